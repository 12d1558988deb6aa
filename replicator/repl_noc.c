/*
 * repl_noc.c - `popctl verify` and `popctl lag --cluster` across POPs
 * (repl_noc.h, docs/replication.md "popctl verify and lag --cluster").
 *
 *   GET /v1/repl/digest?user=U&origin=O -> 200 digest of U in the copy
 *       of O's data held here (O = this POP: its own store), with this
 *       POP's mirrors when O is this POP; 404 no copy of O here; 400
 *   GET /v1/repl/lag                    -> 200 this POP's mirror rows
 *
 * Both are answered at once from synchronous store reads (LMDB, no
 * waiting on anyone) and only to peers: the link is mutual TLS, so the
 * asker is an authenticated POP; the query is still checked strictly.
 *
 * A query (struct repl_noc_query) asks its peers in one round (lag: every
 * configured peer) or two (verify: the home, then the mirrors the home
 * named), each round bounded by one timer of REPL_NOC_TIMEOUT_MS; a peer
 * that is not usable, resets, answers garbage or stays silent is
 * recorded as unreachable with the reason.  The same timer, armed with
 * 0, moves a query on once every answer is in, so the caller's callback
 * always runs from the event loop, never inside the call that started
 * the query or inside a link callback.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/evp.h>

#include "config.h"
#include "directory.h"
#include "link.h"
#include "log.h"
#include "node.h"
#include "repl_noc.h"
#include "repl_private.h"
#include "store.h"

struct ask {
	struct repl_noc_query *q;
	struct link_stream *s;
	char peer[REPL_NOC_ID_MAX];
	size_t slot;			/* index into q->copies or q->lags */
	int status;
	char why[REPL_NOC_ERROR_MAX];	/* x-popnode-error of the answer */
	struct evbuffer *body;
	bool busy;
};

struct repl_noc_query {
	struct node *n;
	bool lag, json;
	repl_noc_done_cb *cb;
	void *arg;
	struct event *timer;
	int round;			/* verify: 1 the home, 2 the mirrors */
	size_t pending;			/* asks in flight */
	char user[REPL_NOC_ID_MAX], home[REPL_NOC_ID_MAX];
	struct repl_noc_copy copies[1 + REPL_MIRRORS];	/* verify: [0] the home */
	size_t n_copies;
	struct repl_noc_lag *lags;	/* lag: this POP, then each peer */
	size_t n_lags;
	struct ask *asks;
	size_t n_asks, cap_asks;
};

static int64_t now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

const char *repl_noc_strerror(int err)
{
	switch (err) {
	case REPL_NOC_OK: return "ok";
	case REPL_NOC_EINVAL: return "not a user name";
	case REPL_NOC_ENOUSER: return "no such user";
	case REPL_NOC_ENOMEM: return "out of memory";
	case REPL_NOC_ESTOPPING: return "popnode is stopping";
	case REPL_NOC_EIO: return "directory read failed";
	}
	return "unknown error";
}

/* ---- digests ------------------------------------------------------------------ */

struct dig {
	struct store *st;
	struct repl_noc_copy *c;
	uint32_t userid;
	EVP_MD_CTX *md;
	uint32_t n;
	int err;
};

static void be(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* A message's part of its mailbox's digest (also `popctl mirror list`'s, repl_status.c). */
static int dig_msg(const struct store_msg *m, void *arg)
{
	struct dig *d = arg;
	uint8_t b[4 + 4 + 8 + STORE_BODY_HASH_LEN];

	be(b, m->uid, 4);
	be(b + 4, m->flags, 4);
	be(b + 8, m->keywords, 8);
	memcpy(b + 16, m->hash, STORE_BODY_HASH_LEN);
	if (EVP_DigestUpdate(d->md, b, sizeof(b)) != 1)
		return d->err = -1;
	d->n++;
	return 0;
}

static int dig_mbox(const struct store_mailbox *mb, void *arg)
{
	struct dig *d = arg;
	uint8_t md[EVP_MAX_MD_SIZE];
	char hex[REPL_NOC_DIGEST_HEX + 1];
	unsigned ml = 0;

	d->n = 0;
	if (EVP_DigestInit_ex(d->md, EVP_sha256(), NULL) != 1 ||
	    store_msg_foreach(d->st, d->userid, mb->id, dig_msg, d) != STORE_OK || d->err != 0 ||
	    EVP_DigestFinal_ex(d->md, md, &ml) != 1 || ml < REPL_NOC_DIGEST_HEX / 2)
		return d->err = -1;
	for (unsigned i = 0; i < REPL_NOC_DIGEST_HEX / 2; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	if (repl_noc_copy_add(d->c, mb->name, d->n, mb->uidvalidity, mb->uidnext, hex) < 0)
		return d->err = -1;
	return 0;
}

int repl_noc_digest(struct store *st, const char *user, struct repl_noc_copy *c)
{
	struct dig d = { .st = st, .c = c };
	struct store_user u;
	int rc = store_user_get(st, user, &u);

	explicit_bzero(u.pwhash, sizeof(u.pwhash));
	repl_noc_copy_clear(c);
	c->user_found = rc == STORE_OK;
	if (rc == STORE_NOTFOUND)
		return 0;
	if (rc != STORE_OK)
		return -1;
	d.userid = u.id;
	d.md = EVP_MD_CTX_new();
	if (d.md == NULL)
		return -1;
	rc = store_mailbox_foreach(st, u.id, dig_mbox, &d);
	EVP_MD_CTX_free(d.md);
	if (rc != STORE_OK || d.err != 0) {
		repl_noc_copy_clear(c);
		return -1;
	}
	return 0;
}

/* c: the copy of origin's data held here, read now. */
static void read_local(struct node *n, const char *origin, struct repl_noc_copy *c,
		       const char *user)
{
	struct store *st = replicator_store_of(n, origin);
	bool own = strcmp(origin, n->cfg->node_id) == 0;

	c->reached = true;
	c->held = st != NULL;
	if (st == NULL) {
		snprintf(c->error, sizeof(c->error), "no copy of %s here", origin);
		return;
	}
	c->seq = own ? store_changelog_last(st, origin) : store_applied_seq(st, origin);
	if (repl_noc_digest(st, user, c) < 0) {
		c->reached = false;
		snprintf(c->error, sizeof(c->error), "store read failed");
	}
}

/* c->mirrors: this POP's mirrors now. */
static void mirrors_of(struct node *n, struct repl_noc_copy *c)
{
	struct repl_mirror_info m[REPL_MIRRORS];
	size_t nm = replicator_mirrors(n, m, REPL_MIRRORS);

	c->n_mirrors = 0;
	for (size_t i = 0; i < nm; i++) {
		size_t len = strnlen(m[i].peer, sizeof(m[i].peer));

		if (len == 0 || len >= REPL_NOC_ID_MAX)
			continue;
		memcpy(c->mirrors[c->n_mirrors], m[i].peer, len + 1);
		c->n_mirrors++;
	}
}

/* ---- the endpoints ----------------------------------------------------------------- */

static void answer_error(struct link_stream *s, int status, const char *why)
{
	struct link_hdr e = { "x-popnode-error", why };

	link_stream_respond(s, status, &e, 1, true);
	link_stream_free(&s);
}

/* The body is in the stream's output: send it after the headers. */
static void answer_ok(struct link_stream *s)
{
	link_stream_end(s);
	link_stream_respond(s, 200, NULL, 0, false);
	link_stream_free(&s);	/* the answer is queued; both sides have ended */
}

static void serve_digest(void *arg, struct link_stream *s, const struct link_request *req)
{
	struct node *n = arg;
	char user[REPL_NOC_ID_MAX], origin[REPL_NOC_ID_MAX], why[96];
	struct repl_noc_copy c;
	struct evbuffer *out = link_stream_output(s);
	const char *bad = "expected GET " REPL_NOC_DIGEST_PATH "?user=U&origin=POP";

	if (strcmp(req->method, "GET") != 0 ||
	    repl_noc_parse_digest_query(req->query, user, origin, &bad) < 0) {
		log_info("repl.noc_refused", "peer=%s path=%s error=\"%s\"", req->peer, req->path, bad);
		answer_error(s, 400, bad);
		return;
	}
	memset(&c, 0, sizeof(c));
	read_local(n, origin, &c, user);
	if (!c.held) {
		snprintf(why, sizeof(why), "no copy of %s here", origin);
		answer_error(s, 404, why);
		return;
	}
	if (!c.reached) {
		answer_error(s, 503, c.error);
		return;
	}
	if (strcmp(origin, n->cfg->node_id) == 0)
		mirrors_of(n, &c);
	if (repl_noc_digest_encode(&c, out) < 0 || evbuffer_get_length(out) > REPL_NOC_ANSWER_MAX) {
		evbuffer_drain(out, evbuffer_get_length(out));
		repl_noc_copy_clear(&c);
		answer_error(s, 503, "answer too large or out of memory");
		return;
	}
	log_debug("repl.noc_digest", "peer=%s user=%s origin=%s mailboxes=%zu", req->peer, user,
		  origin, c.n_mb);
	repl_noc_copy_clear(&c);
	answer_ok(s);
}

static void serve_lag(void *arg, struct link_stream *s, const struct link_request *req)
{
	struct node *n = arg;
	struct repl_mirror_info m[REPL_MIRRORS];
	size_t nm;
	struct evbuffer *out = link_stream_output(s);

	if (strcmp(req->method, "GET") != 0 || req->query[0] != '\0') {
		log_info("repl.noc_refused", "peer=%s path=%s", req->peer, req->path);
		answer_error(s, 400, "expected GET " REPL_NOC_LAG_PATH);
		return;
	}
	nm = replicator_mirrors(n, m, REPL_MIRRORS);
	if (repl_noc_lag_encode(m, nm, now_ms(), out) < 0) {
		evbuffer_drain(out, evbuffer_get_length(out));
		answer_error(s, 503, "out of memory");
		return;
	}
	answer_ok(s);
}

void repl_noc_init(struct node *n)
{
	link_set_handler(n->link, REPL_NOC_DIGEST_PATH, serve_digest, n);
	link_set_handler(n->link, REPL_NOC_LAG_PATH, serve_lag, n);
}

/* ---- queries: asking peers ------------------------------------------------------------ */

static void schedule(struct repl_noc_query *q, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(q->timer, &tv);
}

/* The target of a question to a peer not reached: why. */
static void set_unreached(struct repl_noc_query *q, size_t slot, const char *why)
{
	if (q->lag) {
		q->lags[slot].reached = false;
		snprintf(q->lags[slot].error, sizeof(q->lags[slot].error), "%s", why);
	} else {
		q->copies[slot].reached = false;
		snprintf(q->copies[slot].error, sizeof(q->copies[slot].error), "%s", why);
	}
}

/* The ask is over; why != NULL: its target was not reached. */
static void ask_done(struct ask *a, const char *why)
{
	struct repl_noc_query *q = a->q;

	link_stream_free(&a->s);
	if (a->body != NULL)
		evbuffer_free(a->body);
	a->body = NULL;
	if (why != NULL)
		set_unreached(q, a->slot, why);
	a->busy = false;
	if (--q->pending == 0)
		schedule(q, 0);
}

static void ask_response(void *arg, int status, const struct link_hdr *h, size_t n)
{
	struct ask *a = arg;

	a->status = status;
	for (size_t i = 0; i < n; i++)
		if (strcmp(h[i].name, "x-popnode-error") == 0)
			snprintf(a->why, sizeof(a->why), "%s", h[i].value);
}

static void ask_read(void *arg)
{
	struct ask *a = arg;

	if (evbuffer_add_buffer(a->body, link_stream_input(a->s)) != 0) {
		ask_done(a, "out of memory");
		return;
	}
	if (evbuffer_get_length(a->body) > REPL_NOC_ANSWER_MAX) {
		link_peer_failed(a->q->n->link, a->peer);
		ask_done(a, "answer too large");
	}
}

/* The whole answer is in. */
static void ask_answered(struct ask *a)
{
	struct repl_noc_query *q = a->q;
	size_t len = evbuffer_get_length(a->body);
	const char *body = len > 0 ? (const char *)evbuffer_pullup(a->body, -1) : "";
	const char *why = NULL;
	char buf[REPL_NOC_ERROR_MAX];
	int rc;

	if (body == NULL) {
		ask_done(a, "out of memory");
		return;
	}
	/* our 404 says why; the link's own (no such path: a popnode
	 * without this endpoint) says nothing and is not an answer */
	if (!q->lag && a->status == 404 && a->why[0] != '\0') {
		struct repl_noc_copy *c = &q->copies[a->slot];

		c->reached = true;
		c->held = false;
		snprintf(c->error, sizeof(c->error), "%s", a->why);
		ask_done(a, NULL);
		return;
	}
	if (a->status != 200) {
		snprintf(buf, sizeof(buf), "answered %d%s%.90s", a->status, a->why[0] ? ": " : "",
			 a->status == 404 && a->why[0] == '\0' ? " (a popnode without this check?)"
			 : a->why);
		ask_done(a, buf);
		return;
	}
	if (q->lag)
		rc = repl_noc_lag_parse(body, len, now_ms(), &q->lags[a->slot], &why);
	else
		rc = repl_noc_digest_parse(body, len, &q->copies[a->slot], &why);
	if (rc < 0) {
		log_warn("repl.noc_bad_answer", "peer=%s error=\"%s\"", a->peer, why);
		link_peer_failed(q->n->link, a->peer);
		snprintf(buf, sizeof(buf), "bad answer: %s", why);
		ask_done(a, buf);
		return;
	}
	if (q->lag) {
		q->lags[a->slot].reached = true;
	} else {
		q->copies[a->slot].reached = true;
		q->copies[a->slot].held = true;
	}
	ask_done(a, NULL);
}

static void ask_event(void *arg, enum link_event ev)
{
	struct ask *a = arg;

	if (ev == LINK_EV_EOF && a->status != 0) {
		ask_read(a);
		if (a->busy)
			ask_answered(a);
		return;
	}
	ask_done(a, ev == LINK_EV_EOF ? "ended without an answer"
		 : ev == LINK_EV_TIMEOUT ? "no answer (timeout)" : "stream reset");
}

static const struct link_stream_cbs ask_cbs = {
	.response = ask_response,
	.read = ask_read,
	.event = ask_event,
};

static bool is_peer(const struct config *cfg, const char *id)
{
	for (size_t i = 0; i < cfg->n_peers; i++)
		if (strcmp(cfg->peers[i].id, id) == 0)
			return true;
	return false;
}

/* Ask peer for path; the answer goes to slot.  A peer that cannot be
 * asked now is recorded as not reached at once. */
static void ask(struct repl_noc_query *q, const char *peer, const char *path, size_t slot)
{
	struct ask *a;
	char why[REPL_NOC_ERROR_MAX];

	if (q->n_asks == q->cap_asks) {		/* sized for the most a query asks */
		set_unreached(q, slot, "too many questions (internal error)");
		return;
	}
	if (!is_peer(q->n->cfg, peer)) {
		snprintf(why, sizeof(why), "%s is not a peer of this POP", peer);
		set_unreached(q, slot, why);
		return;
	}
	if (!link_peer_usable(q->n->link, peer)) {
		snprintf(why, sizeof(why), "link to %s not up", peer);
		set_unreached(q, slot, why);
		return;
	}
	a = &q->asks[q->n_asks];
	memset(a, 0, sizeof(*a));
	a->q = q;
	a->slot = slot;
	snprintf(a->peer, sizeof(a->peer), "%s", peer);
	a->body = evbuffer_new();
	if (a->body == NULL) {
		set_unreached(q, slot, "out of memory");
		return;
	}
	a->s = link_request(q->n->link, peer, "GET", path, NULL, 0, false, &ask_cbs, a);
	if (a->s == NULL) {
		evbuffer_free(a->body);
		snprintf(why, sizeof(why), "link to %s not usable", peer);
		set_unreached(q, slot, why);
		return;
	}
	link_stream_set_timeout(a->s, (REPL_NOC_TIMEOUT_MS + 999) / 1000);
	a->busy = true;
	q->n_asks++;
	q->pending++;
}

/* ---- queries: rounds ----------------------------------------------------------------- */

static void query_free(struct repl_noc_query *q)
{
	for (size_t i = 0; i < q->n_asks; i++) {
		link_stream_free(&q->asks[i].s);
		if (q->asks[i].body != NULL)
			evbuffer_free(q->asks[i].body);
	}
	for (size_t i = 0; i < q->n_copies; i++)
		repl_noc_copy_clear(&q->copies[i]);
	if (q->timer != NULL)
		event_free(q->timer);
	free(q->asks);
	free(q->lags);
	free(q);
}

void repl_noc_cancel(struct repl_noc_query **qp)
{
	if (qp == NULL || *qp == NULL)
		return;
	query_free(*qp);
	*qp = NULL;
}

static void digest_path(char *buf, size_t sz, const struct repl_noc_query *q)
{
	snprintf(buf, sz, REPL_NOC_DIGEST_PATH "?user=%s&origin=%s", q->user, q->home);
}

/* Verify, second round: each mirror the home named, read here if it is
 * this POP, else asked. */
static void verify_mirrors(struct repl_noc_query *q)
{
	const struct repl_noc_copy *h = &q->copies[0];
	char path[REPL_NOC_ID_MAX * 2 + 64];

	q->round = 2;
	digest_path(path, sizeof(path), q);
	for (size_t i = 0; i < h->n_mirrors && q->n_copies < 1 + REPL_MIRRORS; i++) {
		struct repl_noc_copy *c = &q->copies[q->n_copies];

		memset(c, 0, sizeof(*c));
		snprintf(c->pop, sizeof(c->pop), "%s", h->mirrors[i]);
		q->n_copies++;
		if (strcmp(c->pop, q->n->cfg->node_id) == 0)
			read_local(q->n, q->home, c, q->user);
		else
			ask(q, c->pop, path, q->n_copies - 1);
	}
}

static int lag_cmp(const void *a, const void *b)
{
	return strcmp(((const struct repl_noc_lag *)a)->pop, ((const struct repl_noc_lag *)b)->pop);
}

static void finish(struct repl_noc_query *q)
{
	struct evbuffer *out = evbuffer_new();
	int rc = -1;

	if (out != NULL && q->lag) {
		qsort(q->lags, q->n_lags, sizeof(*q->lags), lag_cmp);
		rc = repl_noc_render_lag(q->lags, q->n_lags, now_ms(), q->json, out);
	} else if (out != NULL) {
		enum repl_noc_status v = repl_noc_compare(q->copies, q->n_copies);

		log_info("repl.verify", "user=%s home=%s copies=%zu result=%s", q->user, q->home,
			 q->n_copies, repl_noc_status_name(v));
		rc = repl_noc_render_verify(q->user, q->home, v, q->copies, q->n_copies, q->json,
					    out);
	}
	q->cb(q->arg, rc == 0 ? out : NULL);
	if (out != NULL)
		evbuffer_free(out);
	query_free(q);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct repl_noc_query *q = arg;
	char why[64];

	if (q->pending > 0) {		/* the round's time is up */
		snprintf(why, sizeof(why), "no answer within %d ms", REPL_NOC_TIMEOUT_MS);
		for (size_t i = 0; i < q->n_asks; i++) {
			struct ask *a = &q->asks[i];

			if (!a->busy)
				continue;
			link_stream_free(&a->s);
			evbuffer_free(a->body);
			a->body = NULL;
			a->busy = false;
			set_unreached(q, a->slot, why);
		}
		q->pending = 0;
	}
	if (!q->lag && q->round == 1 && q->copies[0].reached && q->copies[0].held) {
		verify_mirrors(q);
		if (q->pending > 0) {
			schedule(q, REPL_NOC_TIMEOUT_MS);
			return;
		}
	}
	finish(q);
}

static struct repl_noc_query *query_new(struct node *n, bool lag, bool json, size_t cap_asks,
					repl_noc_done_cb *cb, void *arg)
{
	struct repl_noc_query *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->n = n;
	q->lag = lag;
	q->json = json;
	q->cb = cb;
	q->arg = arg;
	q->cap_asks = cap_asks;
	q->asks = calloc(cap_asks > 0 ? cap_asks : 1, sizeof(*q->asks));
	q->timer = evtimer_new(n->base, timer_cb, q);
	if (q->asks == NULL || q->timer == NULL) {
		query_free(q);
		return NULL;
	}
	return q;
}

struct repl_noc_query *repl_noc_verify(struct node *n, const char *user, bool json,
				       repl_noc_done_cb *cb, void *arg, int *err_r)
{
	struct repl_noc_query *q;
	struct store_user u;
	char path[REPL_NOC_ID_MAX * 2 + 64];
	int rc;

	if (!dir_valid_username(user) || strlen(user) >= REPL_NOC_ID_MAX) {
		*err_r = REPL_NOC_EINVAL;
		return NULL;
	}
	if (n->stopping) {
		*err_r = REPL_NOC_ESTOPPING;
		return NULL;
	}
	rc = store_user_get(n->store, user, &u);
	explicit_bzero(u.pwhash, sizeof(u.pwhash));
	if (rc != STORE_OK) {
		*err_r = rc == STORE_NOTFOUND ? REPL_NOC_ENOUSER : REPL_NOC_EIO;
		return NULL;
	}
	q = query_new(n, false, json, 1 + REPL_MIRRORS, cb, arg);
	if (q == NULL) {
		*err_r = REPL_NOC_ENOMEM;
		return NULL;
	}
	snprintf(q->user, sizeof(q->user), "%s", user);
	snprintf(q->home, sizeof(q->home), "%s", u.home);
	snprintf(q->copies[0].pop, sizeof(q->copies[0].pop), "%s", u.home);
	q->copies[0].home = true;
	q->n_copies = 1;
	q->round = 1;
	if (strcmp(u.home, n->cfg->node_id) == 0) {
		read_local(n, u.home, &q->copies[0], user);
		mirrors_of(n, &q->copies[0]);
		if (q->copies[0].reached)
			verify_mirrors(q);
	} else {
		digest_path(path, sizeof(path), q);
		ask(q, u.home, path, 0);
	}
	schedule(q, q->pending > 0 ? REPL_NOC_TIMEOUT_MS : 0);
	*err_r = REPL_NOC_OK;
	return q;
}

struct repl_noc_query *repl_noc_lag_cluster(struct node *n, bool json, repl_noc_done_cb *cb,
					    void *arg, int *err_r)
{
	const struct config *cfg = n->cfg;
	struct repl_noc_query *q;
	struct repl_noc_lag *self;

	if (n->stopping) {
		*err_r = REPL_NOC_ESTOPPING;
		return NULL;
	}
	q = query_new(n, true, json, cfg->n_peers, cb, arg);
	if (q != NULL)
		q->lags = calloc(cfg->n_peers + 1, sizeof(*q->lags));
	if (q == NULL || q->lags == NULL) {
		if (q != NULL)
			query_free(q);
		*err_r = REPL_NOC_ENOMEM;
		return NULL;
	}
	self = &q->lags[0];
	snprintf(self->pop, sizeof(self->pop), "%s", cfg->node_id);
	self->reached = true;
	self->n = replicator_mirrors(n, self->m, REPL_MIRRORS);
	q->n_lags = 1;
	for (size_t i = 0; i < cfg->n_peers; i++) {
		snprintf(q->lags[q->n_lags].pop, sizeof(q->lags[0].pop), "%s", cfg->peers[i].id);
		q->n_lags++;
		ask(q, cfg->peers[i].id, REPL_NOC_LAG_PATH, q->n_lags - 1);
	}
	q->round = 1;
	schedule(q, q->pending > 0 ? REPL_NOC_TIMEOUT_MS : 0);
	*err_r = REPL_NOC_OK;
	return q;
}
