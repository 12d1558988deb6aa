/*
 * iplimits.c - per remote address session counts and auth failures.
 *
 * A small chained hash table keyed by the address text.  Entries with no
 * session and no failure inside the window are removed (at once when the
 * last session closes; expired failure records by a sweep when the table
 * reaches IPL_MAX_ENTRIES).  If the table is still full after a sweep, a
 * new address is refused a session and its failures count as over the
 * limit: under an address spray the limits fail closed, never open.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iplimits.h"

#define IPL_MAX_ENTRIES 200000

struct ipl_entry {
	struct ipl_entry *next;
	unsigned sessions;
	unsigned failures;
	long first_failure;
	char ip[48];
};

struct iplimits {
	const struct config *cfg;
	struct ipl_entry **buckets;
	size_t n_buckets;
	size_t n_entries;
};

static size_t ipl_hash(const char *s)
{
	size_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

struct iplimits *iplimits_new(const struct config *cfg)
{
	struct iplimits *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	l->cfg = cfg;
	l->n_buckets = 4096;
	l->buckets = calloc(l->n_buckets, sizeof(*l->buckets));
	if (l->buckets == NULL) {
		free(l);
		return NULL;
	}
	return l;
}

void iplimits_free(struct iplimits **lp)
{
	struct iplimits *l = lp != NULL ? *lp : NULL;

	if (l == NULL)
		return;
	*lp = NULL;
	for (size_t i = 0; i < l->n_buckets; i++) {
		struct ipl_entry *e = l->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(l->buckets);
	free(l);
}

static struct ipl_entry **ipl_slot(struct iplimits *l, const char *ip)
{
	struct ipl_entry **pp = &l->buckets[ipl_hash(ip) % l->n_buckets];

	for (; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->ip, ip) == 0)
			break;
	return pp;
}

/* Drop entries with no session whose failures are outside the window. */
static void ipl_sweep(struct iplimits *l, long now)
{
	for (size_t i = 0; i < l->n_buckets; i++) {
		struct ipl_entry **pp = &l->buckets[i];

		while (*pp != NULL) {
			struct ipl_entry *e = *pp;

			if (e->sessions == 0 &&
			    (e->failures == 0 || now - e->first_failure >= (long)l->cfg->auth_fail_window)) {
				*pp = e->next;
				free(e);
				l->n_entries--;
			} else {
				pp = &e->next;
			}
		}
	}
}

static struct ipl_entry *ipl_get(struct iplimits *l, const char *ip, bool create)
{
	struct ipl_entry **pp = ipl_slot(l, ip);
	struct ipl_entry *e;

	if (*pp != NULL || !create)
		return *pp;
	if (strlen(ip) >= sizeof(e->ip))
		return NULL;
	if (l->n_entries >= IPL_MAX_ENTRIES) {
		ipl_sweep(l, (long)time(NULL));
		if (l->n_entries >= IPL_MAX_ENTRIES)
			return NULL;
		pp = ipl_slot(l, ip);
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	strcpy(e->ip, ip);
	*pp = e;
	l->n_entries++;
	return e;
}

static void ipl_maybe_remove(struct iplimits *l, const char *ip, long now)
{
	struct ipl_entry **pp = ipl_slot(l, ip);
	struct ipl_entry *e = *pp;

	if (e == NULL || e->sessions > 0)
		return;
	if (e->failures > 0 && now - e->first_failure < (long)l->cfg->auth_fail_window)
		return;
	*pp = e->next;
	free(e);
	l->n_entries--;
}

static void ipl_expire(struct iplimits *l, struct ipl_entry *e, long now)
{
	if (e->failures > 0 && now - e->first_failure >= (long)l->cfg->auth_fail_window) {
		e->failures = 0;
		e->first_failure = 0;
	}
}

bool iplimits_session_open(struct iplimits *l, const char *ip)
{
	struct ipl_entry *e;

	if (ip[0] == '\0')
		return true;
	e = ipl_get(l, ip, true);
	if (e == NULL)
		return false; /* table full (spray) or out of memory: fail closed */
	if (l->cfg->max_sessions_per_ip != 0 && e->sessions >= l->cfg->max_sessions_per_ip)
		return false;
	e->sessions++;
	return true;
}

void iplimits_session_close(struct iplimits *l, const char *ip)
{
	struct ipl_entry *e;

	if (ip[0] == '\0')
		return;
	e = ipl_get(l, ip, false);
	if (e == NULL)
		return;
	if (e->sessions > 0)
		e->sessions--;
	if (e->sessions == 0 && e->failures == 0)
		ipl_maybe_remove(l, ip, 0);
}

bool iplimits_auth_blocked(struct iplimits *l, const char *ip, long now)
{
	struct ipl_entry *e;

	if (ip[0] == '\0' || l->cfg->auth_fail_max == 0)
		return false;
	e = ipl_get(l, ip, false);
	if (e == NULL)
		return false;
	ipl_expire(l, e, now);
	return e->failures >= l->cfg->auth_fail_max;
}

unsigned iplimits_auth_failed(struct iplimits *l, const char *ip, long now)
{
	struct ipl_entry *e;
	unsigned over;

	if (ip[0] == '\0')
		return 0;
	e = ipl_get(l, ip, true);
	if (e == NULL)
		return l->cfg->auth_fail_delay_ms;
	ipl_expire(l, e, now);
	if (e->failures == 0)
		e->first_failure = now;
	e->failures++;
	if (e->failures <= l->cfg->auth_fail_delay_after)
		return 0;
	over = e->failures - l->cfg->auth_fail_delay_after;
	/* Linear growth, capped at 15 s so a client's own timeout is not hit. */
	return over * l->cfg->auth_fail_delay_ms > 15000 ? 15000 : over * l->cfg->auth_fail_delay_ms;
}

void iplimits_auth_ok(struct iplimits *l, const char *ip)
{
	struct ipl_entry *e;

	if (ip[0] == '\0')
		return;
	e = ipl_get(l, ip, false);
	if (e == NULL)
		return;
	e->failures = 0;
	e->first_failure = 0;
}
