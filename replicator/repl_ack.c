/*
 * repl_ack.c - replication_ack = mirror: the waiter queue, the in-sync /
 * degraded state and its figures (repl_ack.h, docs/replication.md
 * "Durability: replication_ack").
 *
 * Waiters: a TAILQ ordered by seq.  Commits end in seq order and a
 * waiter is queued from its commit's callback, so an insert almost
 * always goes at the tail (it walks back from there otherwise).  An ack
 * pops waiters from the head while their seq is covered.  The queue is
 * bounded by what waits on it: LMTP sessions, forwarded deliveries and
 * IMAP sessions, each with at most one waiter, all under max_sessions.
 *
 * Mirrors: a small table by id, fed by the shipper: streaming or not,
 * and in sync (it acknowledged the changelog's end while streaming; a
 * stream that ends clears it).  last_good is the last time a mirror in
 * sync acknowledged (heartbeats make that every second when idle).
 *
 * States: OK --(now - last_good >= timeout, one timer)--> DEGRADED
 * --(an ack from a mirror in sync)--> OK.  Entering DEGRADED releases
 * every waiter with the replication_degraded result.  OFF (ack=local)
 * and NO_MIRRORS (no peer) never wait; STOPPED after repl_ack_fini.
 * At start last_good is the start time: the mirrors get one timeout to
 * come up before the node says it is degraded.
 *
 * Callbacks run after the waiter is unlinked and freed, with the queue
 * consistent, so a callback may wait again or cancel another waiter.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "node.h"
#include "repl_ack.h"
#include "store.h"

#define HIST_BUCKETS 12

static const double hist_bounds[HIST_BUCKETS] = {
	0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

enum ra_state {
	RA_OFF,			/* replication_ack local */
	RA_NO_MIRRORS,		/* no peer configured */
	RA_OK,
	RA_DEGRADED,
	RA_STOPPED,
};

struct repl_ack_waiter {
	TAILQ_ENTRY(repl_ack_waiter) entry;
	struct repl_ack *ra;
	uint64_t seq;
	int64_t started_ms;		/* monotonic */
	repl_ack_cb *cb;
	void *arg;
};
TAILQ_HEAD(waitq, repl_ack_waiter);

struct mirror_st {
	char id[CONFIG_NAME_MAX];
	bool streaming, in_sync;
};

struct repl_ack {
	struct node *n;
	enum ra_state state;
	bool tempfail;			/* replication_degraded tempfail */
	unsigned timeout_ms;
	struct event *timer;
	struct waitq q;
	unsigned waiting;
	uint64_t acked;			/* highest seq a mirror applied */
	int64_t last_good_ms;		/* monotonic: last ack of a mirror in sync */
	int64_t since;			/* unix time of the last state change */
	char reason[160];
	struct mirror_st m[CONFIG_MAX_PEERS];
	size_t n_m;
	uint64_t waits_acked, waits_degraded, waits_tempfail, waits_cancelled;
	uint64_t degraded_total;
	uint64_t hist[HIST_BUCKETS];	/* not cumulative */
	uint64_t hist_count;
	double hist_sum;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *repl_ack_result_name(enum repl_ack_result r)
{
	switch (r) {
	case REPL_ACK_LOCAL:
		return "local";
	case REPL_ACK_ACKED:
		return "acked";
	case REPL_ACK_DEGRADED:
		return "degraded";
	case REPL_ACK_TEMPFAIL:
		return "tempfail";
	}
	return "?";
}

static const char *state_name(enum ra_state s)
{
	switch (s) {
	case RA_OFF:
		return "off";
	case RA_NO_MIRRORS:
		return "no-mirrors";
	case RA_OK:
		return "ok";
	case RA_DEGRADED:
		return "degraded";
	case RA_STOPPED:
		return "stopped";
	}
	return "?";
}

/* What a wait gets while no mirror is in reach. */
static enum repl_ack_result degraded_result(const struct repl_ack *ra)
{
	return ra->tempfail ? REPL_ACK_TEMPFAIL : REPL_ACK_DEGRADED;
}

static bool applies(const struct repl_ack *ra)
{
	return ra != NULL && ra->state != RA_OFF && ra->state != RA_NO_MIRRORS;
}

static void set_state(struct repl_ack *ra, enum ra_state s, const char *reason)
{
	ra->state = s;
	ra->since = (int64_t)time(NULL);
	snprintf(ra->reason, sizeof(ra->reason), "%s", reason);
}

/* Count a wait that ended (not cancelled); waited_ms < 0: answered at once. */
static void count(struct repl_ack *ra, enum repl_ack_result r, int64_t waited_ms)
{
	double s = waited_ms > 0 ? (double)waited_ms / 1000.0 : 0.0;

	switch (r) {
	case REPL_ACK_ACKED:
		ra->waits_acked++;
		break;
	case REPL_ACK_DEGRADED:
		ra->waits_degraded++;
		break;
	case REPL_ACK_TEMPFAIL:
		ra->waits_tempfail++;
		break;
	case REPL_ACK_LOCAL:
		return;
	}
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		if (s <= hist_bounds[i]) {
			ra->hist[i]++;
			break;
		}
	}
	ra->hist_count++;
	ra->hist_sum += s;
}

static void unlink_waiter(struct repl_ack *ra, struct repl_ack_waiter *w)
{
	TAILQ_REMOVE(&ra->q, w, entry);
	ra->waiting--;
}

/* Unlink, free, then call back (the callback may touch the queue). */
static void finish(struct repl_ack *ra, struct repl_ack_waiter *w, enum repl_ack_result r)
{
	repl_ack_cb *cb = w->cb;
	void *arg = w->arg;

	unlink_waiter(ra, w);
	count(ra, r, mono_ms() - w->started_ms);
	free(w);
	cb(arg, r);
}

/* Every waiter gets r; returns how many there were. */
static unsigned release_all(struct repl_ack *ra, enum repl_ack_result r)
{
	struct repl_ack_waiter *w;
	unsigned k = 0;

	while ((w = TAILQ_FIRST(&ra->q)) != NULL) {
		finish(ra, w, r);
		k++;
	}
	return k;
}

static struct mirror_st *mirror_get(struct repl_ack *ra, const char *id)
{
	for (size_t i = 0; i < ra->n_m; i++)
		if (strcmp(ra->m[i].id, id) == 0)
			return &ra->m[i];
	if (ra->n_m == CONFIG_MAX_PEERS || strlen(id) >= CONFIG_NAME_MAX)
		return NULL;
	memset(&ra->m[ra->n_m], 0, sizeof(ra->m[0]));
	snprintf(ra->m[ra->n_m].id, CONFIG_NAME_MAX, "%s", id);
	return &ra->m[ra->n_m++];
}

static unsigned in_sync(const struct repl_ack *ra)
{
	unsigned k = 0;

	for (size_t i = 0; i < ra->n_m; i++)
		k += ra->m[i].in_sync;
	return k;
}

/* "no mirror in sync acknowledged for 5000ms (pop2 down, pop3 silent)" */
static void degraded_reason(const struct repl_ack *ra, char *buf, size_t sz)
{
	size_t len;

	snprintf(buf, sz, "no mirror in sync acknowledged for %ums (", ra->timeout_ms);
	if (ra->n_m == 0)
		snprintf(buf + strlen(buf), sz - strlen(buf), "no mirror streamed yet");
	for (size_t i = 0; i < ra->n_m; i++) {
		const struct mirror_st *m = &ra->m[i];

		len = strlen(buf);
		snprintf(buf + len, sz - len, "%s%s %s", i > 0 ? ", " : "", m->id,
			 !m->streaming ? "down" : !m->in_sync ? "catching up" : "silent");
	}
	len = strlen(buf);
	snprintf(buf + len, sz - len, ")");
}

static void arm(struct repl_ack *ra)
{
	int64_t left = ra->last_good_ms + ra->timeout_ms - mono_ms();
	struct timeval tv;

	if (ra->timer == NULL || ra->state != RA_OK)
		return;
	if (left < 0)
		left = 0;
	left++;				/* past the deadline, not on it */
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	evtimer_add(ra->timer, &tv);
}

static void degrade(struct repl_ack *ra)
{
	char why[sizeof(ra->reason)];
	unsigned waiting = ra->waiting, k;

	degraded_reason(ra, why, sizeof(why));
	set_state(ra, RA_DEGRADED, why);
	ra->degraded_total++;
	log_warn("repl.degraded", "reason=\"%s\" policy=%s waiting=%u", why,
		 ra->tempfail ? "tempfail" : "accept", waiting);
	k = release_all(ra, degraded_result(ra));
	if (k > 0)
		log_warn("repl.ack_released", "waiters=%u result=%s reason=degraded", k,
			 repl_ack_result_name(degraded_result(ra)));
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct repl_ack *ra = arg;

	(void)fd;
	(void)what;
	if (ra->state != RA_OK)
		return;
	if (mono_ms() - ra->last_good_ms >= (int64_t)ra->timeout_ms)
		degrade(ra);
	else
		arm(ra);
}

int repl_ack_init(struct node *n)
{
	const struct config *cfg = n->cfg;
	struct repl_ack *ra = calloc(1, sizeof(*ra));

	if (ra == NULL)
		return -1;
	ra->n = n;
	TAILQ_INIT(&ra->q);
	ra->tempfail = cfg->replication_degraded == CONFIG_DEGRADED_TEMPFAIL;
	ra->timeout_ms = cfg->replication_ack_timeout_ms;
	ra->last_good_ms = mono_ms();
	if (cfg->replication_ack != CONFIG_ACK_MIRROR) {
		set_state(ra, RA_OFF, "replication_ack local: answers at local durability");
	} else if (cfg->n_peers == 0) {
		set_state(ra, RA_NO_MIRRORS, "no peer configured: answers at local durability");
	} else {
		set_state(ra, RA_OK, "started");
		ra->timer = evtimer_new(n->base, timer_cb, ra);
		if (ra->timer == NULL) {
			free(ra);
			return -1;
		}
	}
	n->repl_ack = ra;
	arm(ra);
	return 0;
}

void repl_ack_fini(struct node *n)
{
	struct repl_ack *ra = n->repl_ack;
	enum repl_ack_result r;
	unsigned k;

	if (ra == NULL)
		return;
	if (ra->timer != NULL) {
		event_free(ra->timer);
		ra->timer = NULL;
	}
	if (!applies(ra) || ra->state == RA_STOPPED)
		return;
	r = degraded_result(ra);
	set_state(ra, RA_STOPPED, "shutdown");
	k = release_all(ra, r);
	if (k > 0)
		log_warn("repl.ack_released", "waiters=%u result=%s reason=shutdown", k,
			 repl_ack_result_name(r));
}

void repl_ack_free(struct node *n)
{
	if (n->repl_ack == NULL)
		return;
	repl_ack_fini(n);
	free(n->repl_ack);
	n->repl_ack = NULL;
}

struct repl_ack_waiter *repl_ack_wait(struct node *n, uint64_t seq, repl_ack_cb *cb, void *arg,
				      enum repl_ack_result *now_r)
{
	struct repl_ack *ra = n->repl_ack;
	struct repl_ack_waiter *w, *after;

	if (!applies(ra)) {
		*now_r = REPL_ACK_LOCAL;
		return NULL;
	}
	if (seq <= ra->acked) {
		*now_r = REPL_ACK_ACKED;
		count(ra, *now_r, -1);
		return NULL;
	}
	if (ra->state != RA_OK) {
		*now_r = degraded_result(ra);
		count(ra, *now_r, -1);
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		log_err("repl.ack_wait", "seq=%" PRIu64 " error=\"out of memory\"", seq);
		*now_r = REPL_ACK_TEMPFAIL;
		count(ra, *now_r, -1);
		return NULL;
	}
	w->ra = ra;
	w->seq = seq;
	w->started_ms = mono_ms();
	w->cb = cb;
	w->arg = arg;
	for (after = TAILQ_LAST(&ra->q, waitq); after != NULL && after->seq > seq;
	     after = TAILQ_PREV(after, waitq, entry))
		;
	if (after != NULL)
		TAILQ_INSERT_AFTER(&ra->q, after, w, entry);
	else
		TAILQ_INSERT_HEAD(&ra->q, w, entry);
	ra->waiting++;
	return w;
}

struct repl_ack_waiter *repl_ack_wait_commit(struct node *n, repl_ack_cb *cb, void *arg,
					     enum repl_ack_result *now_r)
{
	struct repl_ack *ra = n->repl_ack;

	if (!applies(ra)) {
		*now_r = REPL_ACK_LOCAL;
		return NULL;
	}
	if (ra->state == RA_STOPPED || n->store == NULL) {
		/* the store may be closing: no read */
		*now_r = degraded_result(ra);
		count(ra, *now_r, -1);
		return NULL;
	}
	return repl_ack_wait(n, store_changelog_last(n->store, n->cfg->node_id), cb, arg, now_r);
}

void repl_ack_cancel(struct repl_ack_waiter **wp)
{
	struct repl_ack_waiter *w = *wp;

	if (w == NULL)
		return;
	*wp = NULL;
	unlink_waiter(w->ra, w);
	w->ra->waits_cancelled++;
	free(w);
}

void repl_ack_mirror_state(struct node *n, const char *mirror, bool streaming)
{
	struct repl_ack *ra = n->repl_ack;
	struct mirror_st *m;

	if (!applies(ra) || (m = mirror_get(ra, mirror)) == NULL)
		return;
	m->streaming = streaming;
	if (!streaming)
		m->in_sync = false;
}

void repl_ack_advance(struct node *n, const char *mirror, uint64_t seq, uint64_t last)
{
	struct repl_ack *ra = n->repl_ack;
	struct repl_ack_waiter *w;
	struct mirror_st *m;

	if (!applies(ra) || ra->state == RA_STOPPED || (m = mirror_get(ra, mirror)) == NULL)
		return;
	m->streaming = true;		/* acks come only on a stream */
	if (seq > ra->acked)
		ra->acked = seq;
	if (!m->in_sync && seq >= last) {
		m->in_sync = true;
		log_info("repl.in_sync", "mirror=%s seq=%" PRIu64, m->id, seq);
	}
	if (m->in_sync) {
		ra->last_good_ms = mono_ms();
		if (ra->state == RA_DEGRADED) {
			char why[sizeof(ra->reason)];
			int64_t lasted = (int64_t)time(NULL) - ra->since;

			snprintf(why, sizeof(why), "mirror %s in sync", m->id);
			set_state(ra, RA_OK, why);
			log_info("repl.recovered", "reason=\"%s\" degraded_seconds=%" PRId64, why,
				 lasted);
			arm(ra);
		}
	}
	while ((w = TAILQ_FIRST(&ra->q)) != NULL && w->seq <= ra->acked)
		finish(ra, w, REPL_ACK_ACKED);
}

/* ---- figures ------------------------------------------------------------- */

void repl_ack_info(struct node *n, struct repl_ack_info *i)
{
	const struct config *cfg = n->cfg;
	const struct repl_ack *ra = n->repl_ack;

	memset(i, 0, sizeof(*i));
	i->mode = cfg->replication_ack == CONFIG_ACK_MIRROR ? "mirror" : "local";
	i->degraded_policy = cfg->replication_degraded == CONFIG_DEGRADED_TEMPFAIL ? "tempfail"
										    : "accept";
	i->timeout_ms = cfg->replication_ack_timeout_ms;
	if (ra == NULL) {
		i->state = cfg->replication_ack != CONFIG_ACK_MIRROR ? "off"
			   : cfg->n_peers == 0 ? "no-mirrors" : "stopped";
		return;
	}
	i->state = state_name(ra->state);
	i->since = ra->since;
	i->acked_seq = ra->acked;
	i->in_sync = in_sync(ra);
	i->waiting = ra->waiting;
	i->waits_acked = ra->waits_acked;
	i->waits_degraded = ra->waits_degraded;
	i->waits_tempfail = ra->waits_tempfail;
	i->waits_cancelled = ra->waits_cancelled;
	i->degraded_total = ra->degraded_total;
	snprintf(i->reason, sizeof(i->reason), "%s", ra->reason);
}

/* A JSON string of our own text (POP ids, reasons): printable ASCII. */
static void jstr(struct evbuffer *out, const char *s)
{
	evbuffer_add(out, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			evbuffer_add_printf(out, "\\%c", ch);
		else if (ch < 0x20 || ch > 0x7e)
			evbuffer_add_printf(out, "\\u%04x", ch);
		else
			evbuffer_add(out, s, 1);
	}
	evbuffer_add(out, "\"", 1);
}

void repl_ack_render_status_json(struct node *n, struct evbuffer *out)
{
	struct repl_ack_info i;

	repl_ack_info(n, &i);
	evbuffer_add_printf(out, "{\"mode\": ");
	jstr(out, i.mode);
	evbuffer_add_printf(out, ", \"degraded_policy\": ");
	jstr(out, i.degraded_policy);
	evbuffer_add_printf(out, ", \"timeout_ms\": %u, \"state\": ", i.timeout_ms);
	jstr(out, i.state);
	evbuffer_add_printf(out, ", \"since\": %" PRId64 ", \"reason\": ", i.since);
	jstr(out, i.reason);
	evbuffer_add_printf(out,
			    ", \"waiting\": %u, \"mirrors_in_sync\": %u, \"acked_seq\": %" PRIu64
			    ", \"waits\": {\"acked\": %" PRIu64 ", \"degraded\": %" PRIu64
			    ", \"tempfail\": %" PRIu64 ", \"cancelled\": %" PRIu64
			    "}, \"degraded_total\": %" PRIu64 "}",
			    i.waiting, i.in_sync, i.acked_seq, i.waits_acked, i.waits_degraded,
			    i.waits_tempfail, i.waits_cancelled, i.degraded_total);
}

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void repl_ack_render_metrics(struct node *n, struct evbuffer *out)
{
	const struct repl_ack *ra = n->repl_ack;
	const char *w = "popnode_replication_ack_waits_total";
	const char *h = "popnode_replication_ack_wait_seconds";
	struct repl_ack_info i;
	uint64_t cum = 0;

	repl_ack_info(n, &i);
	family(out, w, "counter",
	       "Answers held for a mirror's ack (replication_ack mirror), by how they ended.");
	evbuffer_add_printf(out, "%s{result=\"acked\"} %" PRIu64 "\n", w, i.waits_acked);
	evbuffer_add_printf(out, "%s{result=\"degraded\"} %" PRIu64 "\n", w, i.waits_degraded);
	evbuffer_add_printf(out, "%s{result=\"tempfail\"} %" PRIu64 "\n", w, i.waits_tempfail);
	evbuffer_add_printf(out, "%s{result=\"cancelled\"} %" PRIu64 "\n", w, i.waits_cancelled);
	family(out, "popnode_replication_ack_degraded_total", "counter",
	       "Times no mirror in sync acknowledged for replication_ack_timeout.");
	evbuffer_add_printf(out, "popnode_replication_ack_degraded_total %" PRIu64 "\n",
			    i.degraded_total);
	family(out, "popnode_replication_ack_degraded", "gauge",
	       "1 while replication_ack mirror is degraded (answers per replication_degraded).");
	evbuffer_add_printf(out, "popnode_replication_ack_degraded %d\n",
			    strcmp(i.state, "degraded") == 0);
	family(out, "popnode_replication_ack_waiting", "gauge",
	       "Answers waiting for a mirror's ack now.");
	evbuffer_add_printf(out, "popnode_replication_ack_waiting %u\n", i.waiting);
	if (!applies(ra))
		return;		/* nothing ever waits: no histogram */
	family(out, h, "histogram",
	       "Time an answer waited for a mirror's ack (0 when already acknowledged).");
	for (unsigned k = 0; k < HIST_BUCKETS; k++) {
		cum += ra->hist[k];
		evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", h, hist_bounds[k], cum);
	}
	evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", h, ra->hist_count);
	evbuffer_add_printf(out, "%s_sum %.9g\n", h, ra->hist_sum);
	evbuffer_add_printf(out, "%s_count %" PRIu64 "\n", h, ra->hist_count);
}

void repl_ack_render_text(struct node *n, struct evbuffer *out)
{
	struct repl_ack_info i;
	int64_t ago;

	repl_ack_info(n, &i);
	ago = (int64_t)time(NULL) - i.since;
	if (ago < 0)
		ago = 0;
	if (strcmp(i.mode, "local") == 0) {
		evbuffer_add_printf(out, "replication: ack local (answers at local durability)\n");
		return;
	}
	if (strcmp(i.state, "no-mirrors") == 0) {
		evbuffer_add_printf(out, "replication: ack mirror, no mirrors configured (no peer): "
				    "answers at local durability\n");
		return;
	}
	if (strcmp(i.state, "ok") == 0) {
		evbuffer_add_printf(out, "replication: ack mirror, ok for %" PRId64 "s, %u mirror%s "
				    "in sync, %u waiting\n", ago, i.in_sync,
				    i.in_sync == 1 ? "" : "s", i.waiting);
		return;
	}
	evbuffer_add_printf(out, "replication: ack mirror, %s for %" PRId64 "s (%s: %s), %u waiting\n",
			    strcmp(i.state, "degraded") == 0 ? "DEGRADED" : i.state, ago,
			    i.degraded_policy,
			    strcmp(i.degraded_policy, "accept") == 0 ? "answering at local durability"
								     : "answering 451 / NO",
			    i.waiting);
	evbuffer_add_printf(out, "             %s\n", i.reason);
}
