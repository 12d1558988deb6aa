/*
 * test_status.c - /status JSON and /metrics text rendered from a real
 * node: a store opened in a temporary directory, a config with TCP and
 * Unix listeners, counters set by hand.
 *
 * The JSON is checked with a small strict parser written here (syntax,
 * string escapes decoded, keys collected as "a.b" paths with their
 * scalar values); the metrics text with a checker of the exposition
 * format rules we rely on: HELP and TYPE before a family's samples,
 * counters ending in _total, histogram buckets cumulative up to +Inf
 * equal to _count.
 *
 * The link's peers are rendered from a hand-made array of
 * struct link_peer_info (up, connecting, breaker open); a single POP's
 * real link (link_new without peers) shows the empty case.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "config.h"
#include "link.h"
#include "log.h"
#include "metrics.h"
#include "node.h"
#include "status.h"
#include "store.h"

/* ---- fixture ------------------------------------------------------------ */

struct fixture {
	char dir[64];
	struct config cfg;
	struct node n;
};

static void add_listen(struct config *c, enum listen_proto p, const char *host, uint16_t port,
		       const char *path, enum listen_tls tls)
{
	struct listen_conf *lc = &c->listens[c->n_listens++];

	memset(lc, 0, sizeof(*lc));
	lc->proto = p;
	lc->tls = tls;
	if (path != NULL) {
		lc->is_unix = true;
		snprintf(lc->path, sizeof(lc->path), "%s", path);
	} else {
		snprintf(lc->host, sizeof(lc->host), "%s", host);
		lc->port = port;
	}
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_opts so;
	const char *error;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_status.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	config_defaults(&f->cfg);
	snprintf(f->cfg.node_id, sizeof(f->cfg.node_id), "fra1");
	snprintf(f->cfg.data_dir, sizeof(f->cfg.data_dir), "%s", f->dir);
	add_listen(&f->cfg, PROTO_LMTP, NULL, 0, "/run/popnode/lmtp.sock", LTLS_NONE);
	add_listen(&f->cfg, PROTO_POP3, "127.0.0.1", 110, NULL, LTLS_STARTTLS);
	add_listen(&f->cfg, PROTO_POP3S, "::1", 995, NULL, LTLS_IMPLICIT);
	add_listen(&f->cfg, PROTO_HTTP, "127.0.0.1", 9100, NULL, LTLS_NONE);

	f->n.base = event_base_new();
	assert_non_null(f->n.base);
	f->n.cfg = &f->cfg;
	f->n.started = (int64_t)time(NULL) - 42;
	TAILQ_INIT(&f->n.sessions);
	memset(&so, 0, sizeof(so));
	so.dir = f->dir;
	so.map_size = 64 << 20;
	so.origin = "fra1";
	so.base = f->n.base;
	if (store_open(&f->n.store, &so, &error) < 0)
		fail_msg("store_open: %s", error);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char path[128];

	store_close(&f->n.store);
	event_base_free(f->n.base);
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", f->dir);
	unlink(path);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

static char *render(struct node *n, void (*fn)(struct node *, struct evbuffer *))
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *s;

	assert_non_null(b);
	fn(n, b);
	len = evbuffer_get_length(b);
	s = malloc(len + 1);
	assert_non_null(s);
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	assert_int_equal(strlen(s), len);	/* no NUL inside */
	return s;
}

/* ---- a strict JSON checker ---------------------------------------------- */

#define JMAX 512

struct jdoc {
	const char *p;
	const char *err;
	int depth;
	/* every member seen: its path ("store.users", "listeners.0.proto")
	 * and, for scalars, its text (strings decoded) */
	size_t n;
	char path[JMAX][96];
	char value[JMAX][256];
};

static bool jvalue(struct jdoc *d, const char *path);

static void jws(struct jdoc *d)
{
	while (*d->p == ' ' || *d->p == '\n' || *d->p == '\t' || *d->p == '\r')
		d->p++;
}

static bool jfail(struct jdoc *d, const char *why)
{
	if (d->err == NULL)
		d->err = why;
	return false;
}

static void put_utf8(char *out, size_t *o, size_t max, unsigned cp)
{
	char tmp[4];
	size_t n;

	if (cp < 0x80) {
		tmp[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		tmp[0] = (char)(0xc0 | (cp >> 6));
		tmp[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else {
		tmp[0] = (char)(0xe0 | (cp >> 12));
		tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		tmp[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	}
	for (size_t i = 0; i < n && *o + 1 < max; i++)
		out[(*o)++] = tmp[i];
}

/* A string; decoded into out (size max). */
static bool jstring(struct jdoc *d, char *out, size_t max)
{
	size_t o = 0;

	if (*d->p != '"')
		return jfail(d, "string expected");
	d->p++;
	for (;;) {
		unsigned char c = (unsigned char)*d->p;

		if (c == '\0')
			return jfail(d, "unterminated string");
		if (c < 0x20)
			return jfail(d, "raw control byte in string");
		d->p++;
		if (c == '"')
			break;
		if (c != '\\') {
			if (o + 1 < max)
				out[o++] = (char)c;
			continue;
		}
		c = (unsigned char)*d->p++;
		switch (c) {
		case '"': case '\\': case '/':
			if (o + 1 < max)
				out[o++] = (char)c;
			break;
		case 'n': if (o + 1 < max) out[o++] = '\n'; break;
		case 'r': if (o + 1 < max) out[o++] = '\r'; break;
		case 't': if (o + 1 < max) out[o++] = '\t'; break;
		case 'b': if (o + 1 < max) out[o++] = '\b'; break;
		case 'f': if (o + 1 < max) out[o++] = '\f'; break;
		case 'u': {
			unsigned cp = 0;

			for (int i = 0; i < 4; i++) {
				char h = *d->p++;

				cp <<= 4;
				if (h >= '0' && h <= '9')
					cp |= (unsigned)(h - '0');
				else if (h >= 'a' && h <= 'f')
					cp |= (unsigned)(h - 'a' + 10);
				else if (h >= 'A' && h <= 'F')
					cp |= (unsigned)(h - 'A' + 10);
				else
					return jfail(d, "bad \\u escape");
			}
			put_utf8(out, &o, max, cp);
			break;
		}
		default:
			return jfail(d, "bad escape");
		}
	}
	out[o] = '\0';
	return true;
}

static void jrecord(struct jdoc *d, const char *path, const char *value)
{
	if (d->n == JMAX)
		return;
	snprintf(d->path[d->n], sizeof(d->path[0]), "%s", path);
	snprintf(d->value[d->n], sizeof(d->value[0]), "%s", value);
	d->n++;
}

static void jpath(char *out, size_t sz, const char *base, const char *key)
{
	if (snprintf(out, sz, "%s%s%s", base, base[0] != '\0' ? "." : "", key) >= (int)sz)
		fail_msg("JSON path too long: %s.%s", base, key);
}

static bool jobject(struct jdoc *d, const char *path)
{
	char key[96], sub[96];

	d->p++;
	jws(d);
	if (*d->p == '}') {
		d->p++;
		return true;
	}
	for (;;) {
		jws(d);
		if (!jstring(d, key, sizeof(key)))
			return false;
		for (size_t i = 0; i < d->n; i++) {
			jpath(sub, sizeof(sub), path, key);
			if (strcmp(d->path[i], sub) == 0)
				return jfail(d, "duplicate key");
		}
		jws(d);
		if (*d->p++ != ':')
			return jfail(d, "':' expected");
		jpath(sub, sizeof(sub), path, key);
		if (!jvalue(d, sub))
			return false;
		jws(d);
		if (*d->p == ',') {
			d->p++;
			continue;
		}
		if (*d->p++ != '}')
			return jfail(d, "',' or '}' expected");
		return true;
	}
}

static bool jarray(struct jdoc *d, const char *path)
{
	char sub[96];
	int i = 0;

	d->p++;
	jws(d);
	if (*d->p == ']') {
		d->p++;
		return true;
	}
	for (;; i++) {
		if (snprintf(sub, sizeof(sub), "%s.%d", path, i) >= (int)sizeof(sub))
			fail_msg("JSON path too long: %s", path);
		if (!jvalue(d, sub))
			return false;
		jws(d);
		if (*d->p == ',') {
			d->p++;
			continue;
		}
		if (*d->p++ != ']')
			return jfail(d, "',' or ']' expected");
		return true;
	}
}

static bool jnumber(struct jdoc *d, char *out, size_t max)
{
	const char *s = d->p;

	if (*d->p == '-')
		d->p++;
	if (*d->p == '0') {
		d->p++;
	} else if (*d->p >= '1' && *d->p <= '9') {
		while (*d->p >= '0' && *d->p <= '9')
			d->p++;
	} else {
		return jfail(d, "bad number");
	}
	if (*d->p == '.') {
		d->p++;
		if (!(*d->p >= '0' && *d->p <= '9'))
			return jfail(d, "bad fraction");
		while (*d->p >= '0' && *d->p <= '9')
			d->p++;
	}
	snprintf(out, max, "%.*s", (int)(d->p - s), s);
	return true;
}

static bool jvalue(struct jdoc *d, const char *path)
{
	char v[256];
	bool ok;

	if (++d->depth > 32)
		return jfail(d, "too deep");
	jws(d);
	if (*d->p == '{') {
		jrecord(d, path, "{");
		ok = jobject(d, path);
	} else if (*d->p == '[') {
		jrecord(d, path, "[");
		ok = jarray(d, path);
	} else if (*d->p == '"') {
		ok = jstring(d, v, sizeof(v));
		if (ok)
			jrecord(d, path, v);
	} else if (strncmp(d->p, "true", 4) == 0 || strncmp(d->p, "null", 4) == 0) {
		snprintf(v, sizeof(v), "%.4s", d->p);
		d->p += 4;
		jrecord(d, path, v);
		ok = true;
	} else if (strncmp(d->p, "false", 5) == 0) {
		d->p += 5;
		jrecord(d, path, "false");
		ok = true;
	} else {
		ok = jnumber(d, v, sizeof(v));
		if (ok)
			jrecord(d, path, v);
	}
	d->depth--;
	return ok;
}

static struct jdoc *jparse(const char *text)
{
	struct jdoc *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	d->p = text;
	if (!jvalue(d, ""))
		fail_msg("JSON error: %s at offset %td in:\n%s", d->err, d->p - text, text);
	jws(d);
	if (*d->p != '\0')
		fail_msg("JSON: trailing bytes at offset %td", d->p - text);
	return d;
}

static const char *jget(const struct jdoc *d, const char *path)
{
	for (size_t i = 0; i < d->n; i++) {
		if (strcmp(d->path[i], path) == 0)
			return d->value[i];
	}
	fail_msg("JSON: no key %s", path);
	return NULL;
}

static bool jhas(const struct jdoc *d, const char *path)
{
	for (size_t i = 0; i < d->n; i++) {
		if (strcmp(d->path[i], path) == 0)
			return true;
	}
	return false;
}

/* The checker itself must refuse bad JSON, or the tests prove nothing. */
static void test_json_checker_refuses(void **state)
{
	static const char *bad[] = {
		"{", "{\"a\" 1}", "{\"a\":1,}", "[1,]", "{\"a\":\"x\ny\"}", "{\"a\":01}",
		"{\"a\":1}}", "{\"a\":1,\"a\":2}", "{\"a\":\"\\x\"}", "{a:1}", "",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct jdoc d;

		memset(&d, 0, sizeof(d));
		d.p = bad[i];
		if (jvalue(&d, "")) {
			jws(&d);
			if (*d.p == '\0')
				fail_msg("checker accepted bad JSON: %s", bad[i]);
		}
	}
}

/* ---- JSON tests --------------------------------------------------------- */

static void test_json_shape(void **state)
{
	struct fixture *f = *state;
	struct metrics *m = &f->n.metrics;
	struct jdoc *d;
	char *s;

	m->sessions_active[PROTO_POP3] = 3;
	m->sessions_active[PROTO_IMAPS] = 2;
	m->sessions_active[PROTO_LMTP] = 1;
	m->deliveries = 17;
	m->delivery_bytes = 123456;
	m->auth_failures[PROTO_POP3] = 4;
	m->auth_failures[PROTO_IMAP] = 1;
	f->cfg.dev_mode = true;

	s = render(&f->n, status_render_json);
	d = jparse(s);
	assert_string_equal(jget(d, ""), "{");
	assert_string_equal(jget(d, "node_id"), "fra1");
	assert_string_equal(jget(d, "version"), POPNODE_VERSION);
	assert_true(atoi(jget(d, "uptime_seconds")) >= 42);
	assert_true(atoi(jget(d, "uptime_seconds")) < 100);
	assert_string_equal(jget(d, "dev_mode"), "true");
	assert_string_equal(jget(d, "stopping"), "false");
	assert_string_equal(jget(d, "sessions.lmtp"), "1");
	assert_string_equal(jget(d, "sessions.pop3"), "3");
	assert_string_equal(jget(d, "sessions.pop3s"), "0");
	assert_string_equal(jget(d, "sessions.imap"), "0");
	assert_string_equal(jget(d, "sessions.imaps"), "2");
	assert_string_equal(jget(d, "sessions.total"), "6");
	assert_string_equal(jget(d, "deliveries"), "17");
	assert_string_equal(jget(d, "delivery_bytes"), "123456");
	assert_string_equal(jget(d, "auth_failures"), "5");
	assert_string_equal(jget(d, "store"), "{");
	assert_string_equal(jget(d, "store.map_size"), "67108864");
	assert_true(atoll(jget(d, "store.used_bytes")) > 0);
	assert_string_equal(jget(d, "store.users"), "0");
	assert_string_equal(jget(d, "store.bodies"), "0");
	assert_true(jhas(d, "store.commits"));
	assert_true(jhas(d, "store.ops"));
	assert_string_equal(jget(d, "store.pending"), "0");
	assert_string_equal(jget(d, "listeners"), "[");
	assert_string_equal(jget(d, "listeners.0.proto"), "lmtp");
	assert_string_equal(jget(d, "listeners.0.address"), "unix:/run/popnode/lmtp.sock");
	assert_string_equal(jget(d, "listeners.0.tls"), "none");
	assert_string_equal(jget(d, "listeners.1.proto"), "pop3");
	assert_string_equal(jget(d, "listeners.1.address"), "127.0.0.1:110");
	assert_string_equal(jget(d, "listeners.1.tls"), "starttls");
	assert_string_equal(jget(d, "listeners.2.address"), "[::1]:995");
	assert_string_equal(jget(d, "listeners.2.tls"), "implicit");
	assert_string_equal(jget(d, "listeners.3.proto"), "http");
	assert_false(jhas(d, "listeners.4"));
	assert_string_equal(jget(d, "peers"), "[");
	assert_false(jhas(d, "peers.0"));
	assert_string_equal(jget(d, "link.node"), "fra1");
	assert_string_equal(jget(d, "link.listen"), "null");
	assert_string_equal(jget(d, "link.peers"), "[");
	assert_false(jhas(d, "link.peers.0"));
	assert_string_equal(jget(d, "roaming.front.total"), "0");
	assert_string_equal(jget(d, "anycast.state"), "not-configured");
	assert_string_equal(jget(d, "replication"), "[");
	free(d);
	free(s);
}

static void test_json_escaping(void **state)
{
	struct fixture *f = *state;
	struct jdoc *d;
	char *s;

	/* quote, backslash, LF, a control byte, valid UTF-8 (a-umlaut),
	 * a stray continuation byte, a truncated sequence, an overlong '/' */
	snprintf(f->cfg.node_id, sizeof(f->cfg.node_id),
		 "a\"b\\c\nd\x01" "e\xc3\xa4" "f\x80g\xe2\x82h\xc0\xaf");
	snprintf(f->cfg.listens[0].path, sizeof(f->cfg.listens[0].path), "/tmp/\"x\"\t.sock");
	s = render(&f->n, status_render_json);
	d = jparse(s);
	assert_string_equal(jget(d, "node_id"),
			    "a\"b\\c\nd\x01" "e\xc3\xa4" "f\xef\xbf\xbdg\xef\xbf\xbd\xef\xbf\xbdh"
			    "\xef\xbf\xbd\xef\xbf\xbd");
	assert_string_equal(jget(d, "listeners.0.address"), "unix:/tmp/\"x\"\t.sock");
	free(d);
	free(s);
}

static void count_cb(int err, void *arg)
{
	int *done = arg;

	*done = err == STORE_OK ? 1 : -1;
}

static void test_json_after_user_add(void **state)
{
	struct fixture *f = *state;
	struct store_user u;
	struct jdoc *d;
	int done = 0;
	char *s;

	memset(&u, 0, sizeof(u));
	snprintf(u.name, sizeof(u.name), "alice");
	snprintf(u.home, sizeof(u.home), "fra1");
	snprintf(u.pwhash, sizeof(u.pwhash), "$y$j9T$abc$def");
	u.enabled = true;
	store_user_add(f->n.store, &u, count_cb, &done);
	for (int i = 0; i < 1000 && done == 0; i++)
		event_base_loop(f->n.base, EVLOOP_ONCE);
	assert_int_equal(done, 1);
	s = render(&f->n, status_render_json);
	d = jparse(s);
	assert_string_equal(jget(d, "store.users"), "1");
	assert_true(atoi(jget(d, "store.commits")) >= 1);
	free(d);
	free(s);
}

static void test_json_no_store(void **state)
{
	struct fixture *f = *state;
	struct store *st = f->n.store;
	struct jdoc *d;
	char *s;

	f->n.store = NULL;
	f->n.stopping = true;
	f->cfg.n_listens = 0;
	s = render(&f->n, status_render_json);
	f->n.store = st;
	d = jparse(s);
	assert_string_equal(jget(d, "store"), "null");
	assert_string_equal(jget(d, "stopping"), "true");
	assert_string_equal(jget(d, "listeners"), "[");
	assert_false(jhas(d, "listeners.0"));
	free(d);
	free(s);
}

/* ---- metrics ------------------------------------------------------------ */

static void test_commit_observe(void **state)
{
	struct metrics m;

	memset(&m, 0, sizeof(m));
	for (unsigned i = 1; i < METRICS_COMMIT_BUCKETS; i++)
		assert_true(metrics_commit_bounds[i] > metrics_commit_bounds[i - 1]);
	assert_true(metrics_commit_bounds[0] <= 0.0005);
	assert_true(metrics_commit_bounds[METRICS_COMMIT_BUCKETS - 1] > 1.0);

	metrics_commit_observe(&m, 0.0005, 3);	/* on a bound: le is inclusive */
	metrics_commit_observe(&m, 0.0006, 1);
	metrics_commit_observe(&m, 0.0, 1);
	metrics_commit_observe(&m, -1.0, 1);	/* clock step */
	metrics_commit_observe(&m, NAN, 1);
	metrics_commit_observe(&m, 100.0, 2);	/* only in +Inf */
	metrics_commit_observe(&m, INFINITY, 1);
	assert_int_equal(m.commit_buckets[0], 4);
	assert_int_equal(m.commit_buckets[1], 1);
	assert_int_equal(m.commit_count, 7);
	assert_int_equal(m.commit_ops, 10);
	assert_true(isfinite(m.commit_sum));
	assert_true(m.commit_sum > 100.0);
	uint64_t in_buckets = 0;

	for (unsigned i = 0; i < METRICS_COMMIT_BUCKETS; i++)
		in_buckets += m.commit_buckets[i];
	assert_int_equal(in_buckets, 5);
}

struct family {
	char name[96];
	char type[16];
	bool help;
	unsigned samples;
};

struct mcheck {
	struct family fam[64];
	size_t n;
	/* the histogram's buckets in order */
	double le[32];
	double bucket[32];
	size_t n_buckets;
	double count, sum;
	bool have_count, have_sum;
};

static struct family *mfam(struct mcheck *mc, const char *name, size_t len)
{
	for (size_t i = 0; i < mc->n; i++) {
		if (strlen(mc->fam[i].name) == len && strncmp(mc->fam[i].name, name, len) == 0)
			return &mc->fam[i];
	}
	return NULL;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
	size_t sl = strlen(suffix);

	return len >= sl && memcmp(s + len - sl, suffix, sl) == 0;
}

/* Check the exposition text line by line; fills mc. */
static void check_metrics_text(const char *text, struct mcheck *mc)
{
	const char *p = text;
	int lineno = 0;

	memset(mc, 0, sizeof(*mc));
	while (*p != '\0') {
		const char *eol = strchr(p, '\n');
		char line[512];
		size_t len;

		lineno++;
		if (eol == NULL)
			fail_msg("metrics line %d has no LF", lineno);
		len = (size_t)(eol - p);
		assert_true(len < sizeof(line));
		memcpy(line, p, len);
		line[len] = '\0';
		p = eol + 1;
		if (strncmp(line, "# HELP ", 7) == 0) {
			char *name = line + 7, *sp = strchr(name, ' ');
			struct family *fm;

			assert_non_null(sp);
			assert_true(sp[1] != '\0');
			fm = mfam(mc, name, (size_t)(sp - name));
			if (fm != NULL)
				fail_msg("line %d: second HELP for %s", lineno, name);
			assert_true(mc->n < 64);
			fm = &mc->fam[mc->n++];
			snprintf(fm->name, sizeof(fm->name), "%.*s", (int)(sp - name), name);
			fm->help = true;
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char *name = line + 7, *sp = strchr(name, ' ');
			struct family *fm;

			assert_non_null(sp);
			fm = mfam(mc, name, (size_t)(sp - name));
			if (fm == NULL || fm->type[0] != '\0' || fm->samples > 0)
				fail_msg("line %d: TYPE without HELP first, twice, or late", lineno);
			snprintf(fm->type, sizeof(fm->type), "%s", sp + 1);
			if (strcmp(fm->type, "counter") != 0 && strcmp(fm->type, "gauge") != 0 &&
			    strcmp(fm->type, "histogram") != 0)
				fail_msg("line %d: bad type %s", lineno, fm->type);
			if (strcmp(fm->type, "counter") == 0 &&
			    !ends_with(fm->name, strlen(fm->name), "_total"))
				fail_msg("line %d: counter %s does not end in _total", lineno, fm->name);
			continue;
		}
		if (line[0] == '#' || line[0] == '\0')
			fail_msg("line %d: unexpected \"%s\"", lineno, line);

		/* a sample: name[{labels}] value */
		size_t nlen = strcspn(line, "{ ");
		const char *rest = line + nlen;
		char labels[256] = "";
		struct family *fm = mfam(mc, line, nlen);
		char *end;
		double v;

		if (fm == NULL) {
			/* histogram series: name_bucket/_sum/_count */
			static const char *const sfx[] = { "_bucket", "_sum", "_count" };

			for (size_t i = 0; i < 3 && fm == NULL; i++) {
				if (ends_with(line, nlen, sfx[i])) {
					fm = mfam(mc, line, nlen - strlen(sfx[i]));
					if (fm != NULL && strcmp(fm->type, "histogram") != 0)
						fm = NULL;
				}
			}
		}
		if (fm == NULL || fm->type[0] == '\0')
			fail_msg("line %d: sample \"%s\" before its HELP/TYPE", lineno, line);
		for (size_t i = 0; i < nlen; i++) {
			char c = line[i];

			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			      (i > 0 && c >= '0' && c <= '9')))
				fail_msg("line %d: bad metric name", lineno);
		}
		if (*rest == '{') {
			const char *close = strchr(rest, '}');

			assert_non_null(close);
			snprintf(labels, sizeof(labels), "%.*s", (int)(close - rest - 1), rest + 1);
			rest = close + 1;
		}
		if (*rest != ' ')
			fail_msg("line %d: no space before the value", lineno);
		if (strcmp(rest + 1, "+Inf") == 0)
			v = INFINITY;
		else
			v = strtod(rest + 1, &end);
		if (strcmp(rest + 1, "+Inf") != 0 && (end == rest + 1 || *end != '\0'))
			fail_msg("line %d: bad value \"%s\"", lineno, rest + 1);
		fm->samples++;
		if (strcmp(fm->type, "histogram") == 0) {
			if (ends_with(line, nlen, "_bucket")) {
				assert_true(strncmp(labels, "le=\"", 4) == 0);
				assert_true(mc->n_buckets < 32);
				mc->le[mc->n_buckets] = strcmp(labels + 4, "+Inf\"") == 0
							? INFINITY : strtod(labels + 4, NULL);
				mc->bucket[mc->n_buckets++] = v;
			} else if (ends_with(line, nlen, "_sum")) {
				mc->sum = v;
				mc->have_sum = true;
			} else {
				mc->count = v;
				mc->have_count = true;
			}
		}
	}
	for (size_t i = 0; i < mc->n; i++) {
		if (mc->fam[i].type[0] == '\0' || !mc->fam[i].help || mc->fam[i].samples == 0)
			fail_msg("family %s lacks TYPE, HELP or samples", mc->fam[i].name);
	}
}

static const char *const expected_families[] = {
	"popnode_deliveries_total", "popnode_delivery_bytes_total",
	"popnode_delivery_failures_total", "popnode_sessions_active", "popnode_sessions_total",
	"popnode_sessions_refused_total", "popnode_auth_success_total",
	"popnode_auth_failures_total", "popnode_pop3_retr_bytes_total",
	"popnode_pop3_deleted_total", "popnode_store_map_bytes", "popnode_store_used_bytes",
	"popnode_store_users", "popnode_store_bodies", "popnode_store_pending_ops",
	"popnode_commit_duration_seconds", "popnode_commit_ops_total", "popnode_uptime_seconds",
	"popnode_build_info", "popnode_roaming_sessions_total", "popnode_roaming_sessions_active",
	"popnode_roaming_failures_total", "popnode_roaming_bytes_total",
	"popnode_tunnel_sessions_served_total", "popnode_tunnel_sessions_served_active",
	"popnode_tunnel_refused_total", "popnode_forward_recipients_total",
};

static void test_metrics_text(void **state)
{
	struct fixture *f = *state;
	struct metrics *m = &f->n.metrics;
	struct mcheck mc;
	char *s;

	m->deliveries = 5;
	m->sessions_active[PROTO_POP3S] = 7;
	m->sessions_total[PROTO_LMTP] = 9;
	m->auth_success[PROTO_IMAP] = 11;
	metrics_commit_observe(m, 0.0003, 1);
	metrics_commit_observe(m, 0.003, 2);
	metrics_commit_observe(m, 0.003, 2);
	metrics_commit_observe(m, 0.2, 4);
	metrics_commit_observe(m, 30.0, 1);

	s = render(&f->n, status_render_metrics);
	check_metrics_text(s, &mc);
	for (size_t i = 0; i < sizeof(expected_families) / sizeof(expected_families[0]); i++) {
		if (mfam(&mc, expected_families[i], strlen(expected_families[i])) == NULL)
			fail_msg("metric family %s missing", expected_families[i]);
	}
	assert_string_equal(mfam(&mc, "popnode_commit_duration_seconds", 31)->type, "histogram");

	/* the histogram: every bound, cumulative, +Inf last and equal to _count */
	assert_int_equal(mc.n_buckets, METRICS_COMMIT_BUCKETS + 1);
	for (size_t i = 0; i < METRICS_COMMIT_BUCKETS; i++)
		assert_true(fabs(mc.le[i] - metrics_commit_bounds[i]) < 1e-12);
	assert_true(isinf(mc.le[METRICS_COMMIT_BUCKETS]));
	for (size_t i = 1; i < mc.n_buckets; i++)
		assert_true(mc.bucket[i] >= mc.bucket[i - 1]);
	assert_true(mc.bucket[0] == 1.0);			/* 0.0003 <= 0.0005 */
	assert_true(mc.bucket[METRICS_COMMIT_BUCKETS - 1] == 4.0);	/* all but 30 s */
	assert_true(mc.have_count && mc.count == 5.0);
	assert_true(mc.bucket[METRICS_COMMIT_BUCKETS] == mc.count);
	assert_true(mc.have_sum && fabs(mc.sum - 30.2063) < 1e-6);

	/* a few samples by text */
	assert_non_null(strstr(s, "\npopnode_deliveries_total 5\n"));
	assert_non_null(strstr(s, "\npopnode_sessions_active{proto=\"pop3s\"} 7\n"));
	assert_non_null(strstr(s, "\npopnode_sessions_total{proto=\"lmtp\"} 9\n"));
	assert_non_null(strstr(s, "\npopnode_auth_success_total{proto=\"imap\"} 11\n"));
	assert_non_null(strstr(s, "\npopnode_commit_ops_total 10\n"));
	assert_non_null(strstr(s, "\npopnode_build_info{version=\"" POPNODE_VERSION "\""));
	assert_non_null(strstr(s, "\npopnode_store_map_bytes 67108864\n"));
	assert_null(strstr(s, "proto=\"http\""));
	free(s);
}

static void test_metrics_label_escaping(void **state)
{
	struct fixture *f = *state;
	struct mcheck mc;
	char *s;

	snprintf(f->cfg.node_id, sizeof(f->cfg.node_id), "x\"y\\z\nw");
	s = render(&f->n, status_render_metrics);
	check_metrics_text(s, &mc);
	assert_non_null(strstr(s, "node_id=\"x\\\"y\\\\z\\nw\"} 1\n"));
	free(s);
}

static void test_metrics_no_store(void **state)
{
	struct fixture *f = *state;
	struct store *st = f->n.store;
	struct mcheck mc;
	char *s;

	f->n.store = NULL;
	s = render(&f->n, status_render_metrics);
	f->n.store = st;
	check_metrics_text(s, &mc);
	assert_null(strstr(s, "popnode_store_"));
	assert_non_null(mfam(&mc, "popnode_deliveries_total", 24));
	free(s);
}

/* ---- the link's peers ---------------------------------------------------- */

/* Three peers in the three interesting conditions; now is 1000000. */
#define NOW 1000000

static void sample_peers(struct link_peer_info p[3])
{
	memset(p, 0, 3 * sizeof(*p));
	p[0].id = "ams1";
	p[0].addr = "10.20.0.2:7443";
	p[0].state = LINK_PEER_UP;
	p[0].inbound = true;
	p[0].rtt_us = 1234;
	p[0].rtt_avg_us = 1995;		/* 1.995 ms: RTT column rounds to 2.00 */
	p[0].connects = 3;
	p[0].disconnects = 2;
	p[0].streams_opened = 40;
	p[0].streams_refused = 1;
	p[0].streams_active = 5;
	p[0].bytes_out = 123456789012ULL;
	p[0].bytes_in = 42;
	p[0].since = NOW - 185;		/* 3m05s */

	p[1].id = "lon1";
	p[1].addr = "[fd00::3]:7443";
	p[1].state = LINK_PEER_CONNECTING;
	p[1].rtt_us = -1;
	p[1].rtt_avg_us = -1;
	p[1].since = NOW - 7;

	p[2].id = "par\"1\\x";		/* not a valid id, but must be escaped */
	p[2].addr = "10.20.0.4:7443";
	p[2].state = LINK_PEER_OPEN;
	p[2].rtt_us = 250000;
	p[2].rtt_avg_us = 1500000;	/* 1.5 s */
	p[2].failures = 5;
	p[2].since = NOW - (4 * 86400 + 3 * 3600 + 59);
	snprintf(p[2].last_error, sizeof(p[2].last_error), "TLS:\tcert\nexpired\r\x1b[31m");
}

static char *render_buf(struct evbuffer *b)
{
	size_t len = evbuffer_get_length(b);
	char *s = malloc(len + 1);

	assert_non_null(s);
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	assert_int_equal(strlen(s), len);
	return s;
}

static void test_peers_rows(void **state)
{
	struct link_peer_info p[3];
	struct evbuffer *b = evbuffer_new();
	char *s;

	sample_peers(p);
	assert_non_null(b);
	status_render_peers(b, p, 3, NOW);
	s = render_buf(b);
	assert_string_equal(s,
		"PEER\tADDR\tSTATE\tRTT\tIN\tFAIL\tSTREAMS\tDIR\tSINCE\tLAST ERROR\n"
		"ams1\t10.20.0.2:7443\tup\t2.00\tyes\t0\t5\t0\t3m05s\t-\n"
		"lon1\t[fd00::3]:7443\tconnecting\t-\tno\t0\t0\t0\t7s\t-\n"
		"par\"1\\x\t10.20.0.4:7443\tbreaker-open\t-\tno\t5\t0\t0\t4d03h\t"
		"TLS: cert expired  [31m\n");
	free(s);

	/* other durations and RTTs, a state change not yet known */
	p[0].since = NOW - 7260;	/* 2h01m */
	p[1].since = 0;
	p[0].rtt_avg_us = 4;		/* rounds to 0.00 */
	p[2].state = LINK_PEER_UP;	/* its 1.5 s RTT is current now */
	b = evbuffer_new();
	assert_non_null(b);
	status_render_peers(b, p, 3, NOW);
	s = render_buf(b);
	assert_non_null(strstr(s, "\nams1\t10.20.0.2:7443\tup\t0.00\tyes\t0\t5\t0\t2h01m\t-\n"));
	assert_non_null(strstr(s, "\nlon1\t[fd00::3]:7443\tconnecting\t-\tno\t0\t0\t0\t-\t-\n"));
	assert_non_null(strstr(s, "\tup\t1500.00\tno\t5\t0\t0\t4d03h\t"));
	free(s);
	/* a peer gone down keeps its last smoothed RTT in the link: not shown */
	p[0].state = LINK_PEER_DOWN;
	p[0].rtt_avg_us = 800;
	b = evbuffer_new();
	assert_non_null(b);
	status_render_peers(b, p, 1, NOW);
	s = render_buf(b);
	assert_non_null(strstr(s, "\nams1\t10.20.0.2:7443\tdown\t-\tyes\t"));
	free(s);
	/* no peers: the header alone */
	b = evbuffer_new();
	assert_non_null(b);
	status_render_peers(b, NULL, 0, NOW);
	s = render_buf(b);
	assert_string_equal(s, "PEER\tADDR\tSTATE\tRTT\tIN\tFAIL\tSTREAMS\tDIR\tSINCE\tLAST ERROR\n");
	free(s);
}

static void test_link_json(void **state)
{
	struct link_peer_info p[3];
	struct config cfg;
	struct evbuffer *b = evbuffer_new();
	struct jdoc *d;
	char *s;

	sample_peers(p);
	config_defaults(&cfg);
	snprintf(cfg.node_id, sizeof(cfg.node_id), "fra1");
	cfg.link_listen_set = true;
	snprintf(cfg.link_host, sizeof(cfg.link_host), "fd00:20::1");
	cfg.link_port = 7443;
	assert_non_null(b);
	status_render_link_json(b, &cfg, p, 3, 0);
	s = render_buf(b);
	d = jparse(s);
	assert_string_equal(jget(d, "node"), "fra1");
	assert_string_equal(jget(d, "listen"), "[fd00:20::1]:7443");
	assert_string_equal(jget(d, "peers.0.id"), "ams1");
	assert_string_equal(jget(d, "peers.0.addr"), "10.20.0.2:7443");
	assert_string_equal(jget(d, "peers.0.state"), "up");
	assert_string_equal(jget(d, "peers.0.inbound"), "true");
	assert_string_equal(jget(d, "peers.0.rtt_ms"), "1.234");
	assert_string_equal(jget(d, "peers.0.rtt_avg_ms"), "1.995");
	assert_string_equal(jget(d, "peers.0.failures"), "0");
	assert_string_equal(jget(d, "peers.0.connects"), "3");
	assert_string_equal(jget(d, "peers.0.disconnects"), "2");
	assert_string_equal(jget(d, "peers.0.streams_active"), "5");
	assert_string_equal(jget(d, "peers.0.streams_opened"), "40");
	assert_string_equal(jget(d, "peers.0.streams_refused"), "1");
	assert_string_equal(jget(d, "peers.0.bytes_in"), "42");
	assert_string_equal(jget(d, "peers.0.bytes_out"), "123456789012");
	assert_string_equal(jget(d, "peers.0.since"), "999815");
	assert_string_equal(jget(d, "peers.0.last_error"), "null");
	assert_string_equal(jget(d, "peers.1.state"), "connecting");
	assert_string_equal(jget(d, "peers.1.inbound"), "false");
	assert_string_equal(jget(d, "peers.1.rtt_ms"), "null");
	assert_string_equal(jget(d, "peers.1.rtt_avg_ms"), "null");
	assert_string_equal(jget(d, "peers.2.id"), "par\"1\\x");
	assert_string_equal(jget(d, "peers.2.state"), "breaker-open");
	assert_string_equal(jget(d, "peers.2.rtt_ms"), "250.000");
	assert_string_equal(jget(d, "peers.2.rtt_avg_ms"), "1500.000");
	assert_string_equal(jget(d, "peers.2.failures"), "5");
	assert_string_equal(jget(d, "peers.2.last_error"), "TLS:\tcert\nexpired\r\x1b[31m");
	assert_false(jhas(d, "peers.3"));
	free(d);
	free(s);

	/* no link_listen, no peers */
	cfg.link_listen_set = false;
	b = evbuffer_new();
	assert_non_null(b);
	status_render_link_json(b, &cfg, NULL, 0, 0);
	s = render_buf(b);
	d = jparse(s);
	assert_string_equal(jget(d, "listen"), "null");
	assert_string_equal(jget(d, "peers"), "[");
	assert_false(jhas(d, "peers.0"));
	free(d);
	free(s);
}

/* A single POP's real link (no peers), and the roaming counters. */
static void test_json_link_and_roaming(void **state)
{
	struct fixture *f = *state;
	struct metrics *m = &f->n.metrics;
	struct link_peer_info *peers = (struct link_peer_info *)&peers;
	size_t n_peers = 99;
	struct jdoc *d;
	char err[256];
	char *s;

	f->n.link = link_new(&f->cfg, err, sizeof(err));
	if (f->n.link == NULL)
		fail_msg("link_new: %s", err);
	assert_int_equal(status_collect_peers(&f->n, &peers, &n_peers), 0);
	assert_null(peers);
	assert_int_equal(n_peers, 0);
	m->roaming_total = 1;
	m->roaming_active = 2;
	m->roaming_failed = 3;
	m->roaming_bytes_up = 4;
	m->roaming_bytes_down = 5;
	m->tunnel_served_total = 6;
	m->tunnel_served_active = 7;
	m->tunnel_refused = 8;
	m->forward_rcpts = 9;
	m->forward_failed = 10;
	m->forward_received = 11;
	s = render(&f->n, status_render_json);
	link_free(&f->n.link);
	d = jparse(s);
	assert_string_equal(jget(d, "link.node"), "fra1");
	assert_string_equal(jget(d, "link.listen"), "null");
	assert_string_equal(jget(d, "link.peers"), "[");
	assert_false(jhas(d, "link.peers.0"));
	assert_string_equal(jget(d, "peers"), "[");
	assert_false(jhas(d, "peers.0"));
	assert_string_equal(jget(d, "roaming.front.total"), "1");
	assert_string_equal(jget(d, "roaming.front.active"), "2");
	assert_string_equal(jget(d, "roaming.front.failed"), "3");
	assert_string_equal(jget(d, "roaming.front.bytes_up"), "4");
	assert_string_equal(jget(d, "roaming.front.bytes_down"), "5");
	assert_string_equal(jget(d, "roaming.home.served_total"), "6");
	assert_string_equal(jget(d, "roaming.home.served_active"), "7");
	assert_string_equal(jget(d, "roaming.home.refused"), "8");
	assert_string_equal(jget(d, "roaming.forward.rcpts"), "9");
	assert_string_equal(jget(d, "roaming.forward.failed"), "10");
	assert_string_equal(jget(d, "roaming.forward.received"), "11");
	free(d);
	free(s);
}

static void test_metrics_peers(void **state)
{
	struct link_peer_info p[3];
	struct evbuffer *b = evbuffer_new();
	struct mcheck mc;
	char *s;

	sample_peers(p);
	assert_non_null(b);
	status_render_peers_metrics(b, p, 3);
	s = render_buf(b);
	check_metrics_text(s, &mc);
	static const char *const fams[][2] = {
		{ "popnode_link_peer_up", "gauge" },
		{ "popnode_link_peer_state", "gauge" },
		{ "popnode_link_rtt_seconds", "gauge" },
		{ "popnode_link_breaker_open", "gauge" },
		{ "popnode_link_failures", "gauge" },
		{ "popnode_link_connects_total", "counter" },
		{ "popnode_link_disconnects_total", "counter" },
		{ "popnode_link_streams_active", "gauge" },
		{ "popnode_link_streams_total", "counter" },
		{ "popnode_link_streams_refused_total", "counter" },
		{ "popnode_link_bytes_total", "counter" },
	};
	for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
		struct family *fm = mfam(&mc, fams[i][0], strlen(fams[i][0]));

		if (fm == NULL)
			fail_msg("family %s missing", fams[i][0]);
		assert_string_equal(fm->type, fams[i][1]);
	}
	assert_int_equal(mc.n, sizeof(fams) / sizeof(fams[0]));
	assert_int_equal(mfam(&mc, "popnode_link_peer_state", 23)->samples, 12);
	assert_int_equal(mfam(&mc, "popnode_link_rtt_seconds", 24)->samples, 1);
	assert_int_equal(mfam(&mc, "popnode_link_bytes_total", 24)->samples, 6);

	assert_non_null(strstr(s, "\npopnode_link_peer_up{peer=\"ams1\"} 1\n"));
	assert_non_null(strstr(s, "\npopnode_link_peer_up{peer=\"lon1\"} 0\n"));
	assert_non_null(strstr(s, "\npopnode_link_peer_state{peer=\"ams1\",state=\"up\"} 1\n"));
	assert_non_null(strstr(s, "\npopnode_link_peer_state{peer=\"ams1\",state=\"down\"} 0\n"));
	assert_non_null(strstr(s, "\npopnode_link_peer_state{peer=\"lon1\",state=\"connecting\"} 1\n"));
	assert_non_null(strstr(s, "\npopnode_link_peer_state{peer=\"lon1\",state=\"up\"} 0\n"));
	assert_non_null(strstr(s, "{peer=\"par\\\"1\\\\x\",state=\"breaker-open\"} 1\n"));
	assert_non_null(strstr(s, "\npopnode_link_rtt_seconds{peer=\"ams1\"} 0.001995\n"));
	assert_null(strstr(s, "popnode_link_rtt_seconds{peer=\"lon1\"}"));	/* unknown */
	assert_null(strstr(s, "popnode_link_rtt_seconds{peer=\"par"));	/* not up */
	assert_non_null(strstr(s, "\npopnode_link_breaker_open{peer=\"ams1\"} 0\n"));
	assert_non_null(strstr(s, "\npopnode_link_breaker_open{peer=\"par\\\"1\\\\x\"} 1\n"));
	assert_non_null(strstr(s, "\npopnode_link_failures{peer=\"par\\\"1\\\\x\"} 5\n"));
	assert_non_null(strstr(s, "\npopnode_link_connects_total{peer=\"ams1\"} 3\n"));
	assert_non_null(strstr(s, "\npopnode_link_disconnects_total{peer=\"ams1\"} 2\n"));
	assert_non_null(strstr(s, "\npopnode_link_streams_active{peer=\"ams1\"} 5\n"));
	assert_non_null(strstr(s, "\npopnode_link_streams_total{peer=\"ams1\"} 40\n"));
	assert_non_null(strstr(s, "\npopnode_link_streams_refused_total{peer=\"ams1\"} 1\n"));
	assert_non_null(strstr(s, "\npopnode_link_bytes_total{peer=\"ams1\",direction=\"in\"} 42\n"));
	assert_non_null(strstr(s, "\npopnode_link_bytes_total{peer=\"ams1\",direction=\"out\"} "
				  "123456789012\n"));
	free(s);

	/* an RTT over a second; then no RTT current anywhere: the family is
	 * left out, not empty */
	p[2].state = LINK_PEER_UP;
	b = evbuffer_new();
	assert_non_null(b);
	status_render_peers_metrics(b, p, 3);
	s = render_buf(b);
	check_metrics_text(s, &mc);
	assert_non_null(strstr(s, "\npopnode_link_rtt_seconds{peer=\"par\\\"1\\\\x\"} 1.500000\n"));
	free(s);
	p[0].rtt_avg_us = -1;
	p[2].state = LINK_PEER_DOWN;
	b = evbuffer_new();
	assert_non_null(b);
	status_render_peers_metrics(b, p, 3);
	s = render_buf(b);
	check_metrics_text(s, &mc);
	assert_null(strstr(s, "popnode_link_rtt_seconds"));
	free(s);

	/* no peers: nothing at all */
	b = evbuffer_new();
	assert_non_null(b);
	status_render_peers_metrics(b, p, 0);
	assert_int_equal(evbuffer_get_length(b), 0);
	evbuffer_free(b);
}

static void test_metrics_roaming(void **state)
{
	struct fixture *f = *state;
	struct metrics *m = &f->n.metrics;
	struct mcheck mc;
	char *s;

	m->roaming_total = 21;
	m->roaming_active = 2;
	m->roaming_failed = 3;
	m->roaming_bytes_up = 400;
	m->roaming_bytes_down = 5000;
	m->tunnel_served_total = 6;
	m->tunnel_served_active = 1;
	m->tunnel_refused = 8;
	m->forward_rcpts = 9;
	m->forward_failed = 10;
	m->forward_received = 11;
	s = render(&f->n, status_render_metrics);
	check_metrics_text(s, &mc);
	assert_non_null(strstr(s, "\n# TYPE popnode_roaming_sessions_total counter\n"));
	assert_non_null(strstr(s, "\npopnode_roaming_sessions_total 21\n"));
	assert_non_null(strstr(s, "\n# TYPE popnode_roaming_sessions_active gauge\n"));
	assert_non_null(strstr(s, "\npopnode_roaming_sessions_active 2\n"));
	assert_non_null(strstr(s, "\npopnode_roaming_failures_total 3\n"));
	assert_non_null(strstr(s, "\npopnode_roaming_bytes_total{direction=\"up\"} 400\n"));
	assert_non_null(strstr(s, "\npopnode_roaming_bytes_total{direction=\"down\"} 5000\n"));
	assert_non_null(strstr(s, "\npopnode_tunnel_sessions_served_total 6\n"));
	assert_non_null(strstr(s, "\n# TYPE popnode_tunnel_sessions_served_active gauge\n"));
	assert_non_null(strstr(s, "\npopnode_tunnel_sessions_served_active 1\n"));
	assert_non_null(strstr(s, "\npopnode_tunnel_refused_total 8\n"));
	assert_non_null(strstr(s, "\npopnode_forward_recipients_total{result=\"delivered\"} 9\n"));
	assert_non_null(strstr(s, "\npopnode_forward_recipients_total{result=\"failed\"} 10\n"));
	assert_non_null(strstr(s, "\npopnode_forward_recipients_total{result=\"received\"} 11\n"));
	/* a node without a link: no peer families */
	assert_null(strstr(s, "popnode_link_"));
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_checker_refuses),
		cmocka_unit_test(test_commit_observe),
		cmocka_unit_test_setup_teardown(test_json_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_after_user_add, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_no_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_label_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_no_store, setup, teardown),
		cmocka_unit_test(test_peers_rows),
		cmocka_unit_test(test_link_json),
		cmocka_unit_test_setup_teardown(test_json_link_and_roaming, setup, teardown),
		cmocka_unit_test(test_metrics_peers),
		cmocka_unit_test_setup_teardown(test_metrics_roaming, setup, teardown),
	};

	const char *error;

	evthread_use_pthreads();
	if (log_open("stderr", LOG_LVL_WARN, &error) < 0)
		fail_msg("log_open: %s", error);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
