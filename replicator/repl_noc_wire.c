/*
 * repl_noc_wire.c - the answers of GET /v1/repl/digest and
 * GET /v1/repl/lag, encoded and parsed without I/O (repl_noc_wire.h).
 *
 * Both are TAB-separated lines.  Parsing is strict (every field checked,
 * exact field counts, LF after every line) and bounded: at most
 * REPL_NOC_ANSWER_MAX bytes, REPL_NOC_MBOX_MAX mailboxes, REPL_MIRRORS
 * mirrors, so a peer's answer cannot make us allocate without limit.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "control_proto.h"
#include "directory.h"
#include "repl_noc_wire.h"

#define MAX_FIELDS 16

const char *repl_noc_status_name(enum repl_noc_status s)
{
	switch (s) {
	case REPL_NOC_REFERENCE: return "reference";
	case REPL_NOC_MATCH: return "match";
	case REPL_NOC_DIFFERS: return "differs";
	case REPL_NOC_UNREACHABLE: return "unreachable";
	case REPL_NOC_MISSING: return "missing";
	case REPL_NOC_EXTRA: return "extra";
	}
	return "?";
}

/* ---- small parsers ---------------------------------------------------------- */

/* Decimal, no sign, no leading zero (but "0"), fits u64. */
static bool dec_u64(const char *s, uint64_t *v)
{
	uint64_t x = 0;

	if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
		return false;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || x > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		x = x * 10 + (uint64_t)(*s - '0');
	}
	*v = x;
	return true;
}

static bool dec_u32(const char *s, uint32_t *v)
{
	uint64_t x;

	if (!dec_u64(s, &x) || x > UINT32_MAX)
		return false;
	*v = (uint32_t)x;
	return true;
}

/* "-1" or a dec_u64 that fits int64. */
static bool dec_age(const char *s, int64_t *v)
{
	uint64_t x;

	if (strcmp(s, "-1") == 0) {
		*v = -1;
		return true;
	}
	if (!dec_u64(s, &x) || x > INT64_MAX)
		return false;
	*v = (int64_t)x;
	return true;
}

/* Digits, optionally "." and digits: a non-negative number of seconds. */
static bool dec_seconds(const char *s, double *v)
{
	const char *p = s;
	char *end;

	while (*p >= '0' && *p <= '9')
		p++;
	if (p == s || p - s > 15)
		return false;
	if (*p == '.') {
		const char *f = ++p;

		while (*p >= '0' && *p <= '9')
			p++;
		if (p == f || p - f > 9)
			return false;
	}
	if (*p != '\0')
		return false;
	errno = 0;
	*v = strtod(s, &end);
	return errno == 0 && *end == '\0';
}

static bool valid_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len >= REPL_NOC_NAME_MAX)
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static bool valid_digest(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == REPL_NOC_DIGEST_HEX;
}

static bool valid_pop(const char *s)
{
	return strlen(s) < REPL_NOC_ID_MAX && ctl_valid_pop(s);
}

/* Split line (NUL-terminated, modified) at TABs: the number of fields, or
 * MAX_FIELDS + 1 if there are more. */
static size_t split(char *line, char **f)
{
	size_t n = 0;

	for (char *p = line;; p++) {
		if (n == MAX_FIELDS)
			return MAX_FIELDS + 1;
		f[n++] = p;
		p = strchr(p, '\t');
		if (p == NULL)
			return n;
		*p = '\0';
	}
}

/* Line by line over body: calls cb with each line (NUL-terminated copy,
 * without its LF).  -1 with *why_r if a line lacks its LF, is longer
 * than a field set can be, or cb fails. */
static int each_line(const char *body, size_t len, int (*cb)(char *line, void *arg, const char **why_r),
		     void *arg, const char **why_r)
{
	char line[REPL_NOC_NAME_MAX + 256];

	if (len > REPL_NOC_ANSWER_MAX) {
		*why_r = "answer too long";
		return -1;
	}
	while (len > 0) {
		const char *lf = memchr(body, '\n', len);
		size_t ll;

		if (lf == NULL) {
			*why_r = "last line without LF";
			return -1;
		}
		ll = (size_t)(lf - body);
		if (ll >= sizeof(line) || memchr(body, '\0', ll) != NULL) {
			*why_r = "line too long or with a NUL";
			return -1;
		}
		memcpy(line, body, ll);
		line[ll] = '\0';
		if (cb(line, arg, why_r) < 0)
			return -1;
		body += ll + 1;
		len -= ll + 1;
	}
	return 0;
}

/* ---- queries ------------------------------------------------------------------ */

int repl_noc_parse_digest_query(const char *query, char user[REPL_NOC_ID_MAX],
				char origin[REPL_NOC_ID_MAX], const char **why_r)
{
	bool have_user = false, have_origin = false;
	const char *p = query;

	while (*p != '\0') {
		const char *amp = strchr(p, '&');
		size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
		char *dst;
		bool *have;
		size_t klen;

		if (strncmp(p, "user=", 5) == 0) {
			dst = user, have = &have_user, klen = 5;
		} else if (strncmp(p, "origin=", 7) == 0) {
			dst = origin, have = &have_origin, klen = 7;
		} else {
			*why_r = "expected user=U&origin=POP";
			return -1;
		}
		if (*have) {
			*why_r = "a parameter given twice";
			return -1;
		}
		if (len - klen >= REPL_NOC_ID_MAX) {
			*why_r = "a value too long";
			return -1;
		}
		memcpy(dst, p + klen, len - klen);
		dst[len - klen] = '\0';
		*have = true;
		p += len;
		if (*p == '&' && *++p == '\0') {
			*why_r = "empty parameter";
			return -1;
		}
	}
	if (!have_user || !have_origin) {
		*why_r = "expected user=U&origin=POP";
		return -1;
	}
	if (!dir_valid_username(user)) {
		*why_r = "not a user name";
		return -1;
	}
	if (!valid_pop(origin)) {
		*why_r = "not a POP id";
		return -1;
	}
	return 0;
}

/* ---- copies ------------------------------------------------------------------- */

int repl_noc_copy_add(struct repl_noc_copy *c, const char *name, uint32_t messages,
		      uint32_t uidvalidity, uint32_t uidnext, const char *digest)
{
	struct repl_noc_mbox *m;

	if (!valid_name(name) || !valid_digest(digest) || c->n_mb >= REPL_NOC_MBOX_MAX)
		return -1;
	if (c->n_mb == c->cap_mb) {
		size_t cap = c->cap_mb > 0 ? c->cap_mb * 2 : 16;
		struct repl_noc_mbox *nm = realloc(c->mb, cap * sizeof(*nm));

		if (nm == NULL)
			return -1;
		c->mb = nm;
		c->cap_mb = cap;
	}
	m = &c->mb[c->n_mb];
	memset(m, 0, sizeof(*m));
	m->name = strdup(name);
	if (m->name == NULL)
		return -1;
	m->messages = messages;
	m->uidvalidity = uidvalidity;
	m->uidnext = uidnext;
	memcpy(m->digest, digest, REPL_NOC_DIGEST_HEX + 1);
	c->n_mb++;
	return 0;
}

void repl_noc_copy_clear(struct repl_noc_copy *c)
{
	for (size_t i = 0; i < c->n_mb; i++)
		free(c->mb[i].name);
	free(c->mb);
	c->mb = NULL;
	c->n_mb = c->cap_mb = 0;
}

int repl_noc_digest_encode(const struct repl_noc_copy *c, struct evbuffer *out)
{
	if (evbuffer_add_printf(out, "seq\t%" PRIu64 "\nuser\t%s\n", c->seq,
				c->user_found ? "found" : "absent") < 0)
		return -1;
	for (size_t i = 0; i < c->n_mirrors; i++)
		if (evbuffer_add_printf(out, "mirror\t%s\n", c->mirrors[i]) < 0)
			return -1;
	for (size_t i = 0; i < c->n_mb; i++) {
		const struct repl_noc_mbox *m = &c->mb[i];

		if (evbuffer_add_printf(out, "mailbox\t%s\t%" PRIu32 "\t%" PRIu32 "\t%" PRIu32 "\t%s\n",
					m->name, m->messages, m->uidvalidity, m->uidnext,
					m->digest) < 0)
			return -1;
	}
	return 0;
}

static int mbox_cmp(const void *a, const void *b)
{
	return strcmp(((const struct repl_noc_mbox *)a)->name,
		      ((const struct repl_noc_mbox *)b)->name);
}

struct digest_parse {
	struct repl_noc_copy *c;
	int state;			/* 0: want seq, 1: want user, 2: mirrors, 3: mailboxes */
};

static int digest_line(char *line, void *arg, const char **why_r)
{
	struct digest_parse *dp = arg;
	struct repl_noc_copy *c = dp->c;
	char *f[MAX_FIELDS];
	size_t n = split(line, f);
	uint32_t v[3];

	*why_r = "malformed digest line";
	if (dp->state == 0) {
		if (n != 2 || strcmp(f[0], "seq") != 0 || !dec_u64(f[1], &c->seq))
			return -1;
		dp->state = 1;
	} else if (dp->state == 1) {
		if (n != 2 || strcmp(f[0], "user") != 0 ||
		    (strcmp(f[1], "found") != 0 && strcmp(f[1], "absent") != 0))
			return -1;
		c->user_found = strcmp(f[1], "found") == 0;
		dp->state = 2;
	} else if (dp->state == 2 && n == 2 && strcmp(f[0], "mirror") == 0) {
		if (c->n_mirrors >= REPL_MIRRORS || !valid_pop(f[1])) {
			*why_r = "too many mirrors, or not a POP id";
			return -1;
		}
		snprintf(c->mirrors[c->n_mirrors++], REPL_NOC_ID_MAX, "%s", f[1]);
	} else {
		if (n != 6 || strcmp(f[0], "mailbox") != 0 || !dec_u32(f[2], &v[0]) ||
		    !dec_u32(f[3], &v[1]) || !dec_u32(f[4], &v[2]))
			return -1;
		if (repl_noc_copy_add(c, f[1], v[0], v[1], v[2], f[5]) < 0) {
			*why_r = "bad mailbox name or digest, too many mailboxes, or out of memory";
			return -1;
		}
		dp->state = 3;
	}
	return 0;
}

int repl_noc_digest_parse(const char *body, size_t len, struct repl_noc_copy *c,
			  const char **why_r)
{
	struct digest_parse dp = { .c = c, .state = 0 };

	repl_noc_copy_clear(c);
	c->n_mirrors = 0;
	c->seq = 0;
	c->user_found = false;
	if (each_line(body, len, digest_line, &dp, why_r) < 0)
		goto fail;
	if (dp.state < 2) {
		*why_r = "seq or user line missing";
		goto fail;
	}
	if (c->n_mb > 1)
		qsort(c->mb, c->n_mb, sizeof(*c->mb), mbox_cmp);
	for (size_t i = 1; i < c->n_mb; i++) {
		if (strcmp(c->mb[i - 1].name, c->mb[i].name) == 0) {
			*why_r = "a mailbox listed twice";
			goto fail;
		}
	}
	return 0;
fail:
	repl_noc_copy_clear(c);
	c->n_mirrors = 0;
	return -1;
}

/* ---- lag ------------------------------------------------------------------------ */

/* s with TAB, LF and other control bytes as spaces, "-" when empty. */
static int add_field(struct evbuffer *out, const char *s)
{
	if (*s == '\0')
		return evbuffer_add(out, "-", 1);
	for (; *s != '\0'; s++) {
		char ch = (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s;

		if (evbuffer_add(out, &ch, 1) < 0)
			return -1;
	}
	return 0;
}

int repl_noc_lag_encode(const struct repl_mirror_info *m, size_t n, int64_t now_ms,
			struct evbuffer *out)
{
	for (size_t i = 0; i < n; i++) {
		const struct repl_mirror_info *x = &m[i];
		int64_t age = x->last_ack_ms <= 0 ? -1
			      : now_ms > x->last_ack_ms ? now_ms - x->last_ack_ms : 0;

		if (evbuffer_add_printf(out, "mirror\t%s\t%d\t%s\t%" PRId64 "\t%" PRIu64 "\t%" PRIu64
					"\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%.3f\t%" PRId64
					"\t%" PRIu64 "\t", x->peer, x->pinned ? 1 : 0,
					replicator_state_name(x->state), x->since < 0 ? 0 : x->since,
					x->last_seq, x->sent_seq, x->applied_seq, x->records_behind,
					x->bytes_behind, x->seconds_behind < 0 ? 0.0 : x->seconds_behind,
					age, x->reconnects) < 0 ||
		    add_field(out, x->last_error) < 0 || evbuffer_add(out, "\n", 1) < 0)
			return -1;
	}
	return 0;
}

struct lag_parse {
	struct repl_noc_lag *l;
	int64_t now_ms;
};

/* A state name replicator_state_name gives.  Every value of the enum is
 * tried (a few more than there are today: a state added later parses
 * without a change here; names of values that do not exist come out as
 * an existing one's). */
static bool parse_state(const char *s, enum repl_state *st)
{
	for (int i = 0; i < 16; i++) {
		if (strcmp(s, replicator_state_name((enum repl_state)i)) == 0) {
			*st = (enum repl_state)i;
			return true;
		}
	}
	return false;
}

static int lag_line(char *line, void *arg, const char **why_r)
{
	struct lag_parse *lp = arg;
	struct repl_noc_lag *l = lp->l;
	struct repl_mirror_info *m;
	char *f[MAX_FIELDS];
	size_t n = split(line, f);
	uint64_t since;
	int64_t age;

	if (l->n >= REPL_MIRRORS) {
		*why_r = "more mirrors than a POP has";
		return -1;
	}
	m = &l->m[l->n];
	memset(m, 0, sizeof(*m));
	*why_r = "malformed lag line";
	if (n != 14 || strcmp(f[0], "mirror") != 0 || !valid_pop(f[1]) ||
	    (strcmp(f[2], "0") != 0 && strcmp(f[2], "1") != 0) || !parse_state(f[3], &m->state) ||
	    !dec_u64(f[4], &since) || since > INT64_MAX || !dec_u64(f[5], &m->last_seq) ||
	    !dec_u64(f[6], &m->sent_seq) || !dec_u64(f[7], &m->applied_seq) ||
	    !dec_u64(f[8], &m->records_behind) || !dec_u64(f[9], &m->bytes_behind) ||
	    !dec_seconds(f[10], &m->seconds_behind) || !dec_age(f[11], &age) ||
	    !dec_u64(f[12], &m->reconnects) || strlen(f[13]) >= sizeof(m->last_error))
		return -1;
	for (const char *p = f[13]; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return -1;
	snprintf(m->peer, sizeof(m->peer), "%s", f[1]);
	m->pinned = f[2][0] == '1';
	m->since = (int64_t)since;
	m->last_ack_ms = age < 0 ? 0 : lp->now_ms - age;
	if (strcmp(f[13], "-") != 0)
		snprintf(m->last_error, sizeof(m->last_error), "%s", f[13]);
	l->n++;
	return 0;
}

int repl_noc_lag_parse(const char *body, size_t len, int64_t now_ms, struct repl_noc_lag *l,
		       const char **why_r)
{
	struct lag_parse lp = { .l = l, .now_ms = now_ms };

	l->n = 0;
	if (each_line(body, len, lag_line, &lp, why_r) < 0) {
		l->n = 0;
		return -1;
	}
	return 0;
}
