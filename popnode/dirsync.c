/*
 * dirsync.c - pull-based directory sync over the link (dirsync.h).
 *
 *   GET /v1/dir?since=N      -> 200, body: records with lseq > N in
 *                               dir_wire lines, at most DIRSYNC_BATCH;
 *                               x-popnode-dir-lseq: the server's lseq,
 *                               x-popnode-dir-more: 1 if truncated
 *   POST /v1/dir/changed     -> 204; x-popnode-dir-lseq: the sender's
 *                               lseq (the receiver pulls if it is above
 *                               its watermark for the sender)
 *
 * One pull per peer at a time; a notice that arrives meanwhile makes the
 * pull run once more.  A pull's records are applied in one store
 * transaction together with the new watermark, so a crash can neither
 * lose nor double-apply a batch.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "dir_wire.h"
#include "dirsync.h"
#include "link.h"
#include "log.h"
#include "node.h"
#include "store.h"

#define DIR_PATH "/v1/dir"
#define CHANGED_PATH "/v1/dir/changed"
#define MAX_ANSWER ((size_t)DIRSYNC_BATCH * DIR_WIRE_LINE_MAX + 4096)
#define PULL_TIMEOUT 30

struct dirsync;

struct ds_peer {
	struct dirsync *ds;
	const char *id;
	struct link_stream *pull;	/* GET in flight */
	bool applying;			/* store_dir_apply in flight */
	bool again;			/* pull once more when done */
	bool more;			/* the answer was truncated */
	uint64_t answer_lseq;		/* the highest lseq in the answer */
	struct store_dir_rec *recs;	/* being applied */
	size_t n_recs, n_applied;
	struct link_stream *notice;	/* POST in flight */
};

struct dirsync {
	struct node *n;
	struct ds_peer *peers;
	size_t n_peers;
	struct event *notice_timer, *pull_timer;
	uint64_t noticed_lseq;		/* our lseq the peers were told about */
	bool stopping;
};

static void pull(struct ds_peer *p);

static struct ds_peer *peer_of(struct dirsync *ds, const char *id)
{
	for (size_t i = 0; i < ds->n_peers; i++)
		if (strcmp(ds->peers[i].id, id) == 0)
			return &ds->peers[i];
	return NULL;
}

/* ---- serving ------------------------------------------------------------- */

struct dump {
	struct evbuffer *out;
	uint64_t last;
	size_t n;
	bool bad;
};

static int dump_cb(const struct store_dir_rec *r, void *arg)
{
	struct dump *d = arg;
	char line[DIR_WIRE_LINE_MAX + 1];
	int len = dir_wire_encode(r, line, sizeof(line));

	if (len < 0) {
		/* a record we cannot express (should not happen): skip it
		 * rather than stall every peer behind it */
		log_warn("dir.unencodable", "user=%s lseq=%" PRIu64, r->u.name, r->lseq);
		d->last = r->lseq;
		return 0;
	}
	if (evbuffer_add(d->out, line, (size_t)len) != 0) {
		d->bad = true;
		return 1;
	}
	d->last = r->lseq;
	d->n++;
	return 0;
}

static void serve_dir(void *arg, struct link_stream *s, const struct link_request *req)
{
	struct dirsync *ds = arg;
	struct store *st = ds->n->store;
	uint64_t since = 0, top = store_dir_lseq(st);
	char lseq[24], more[4];
	struct dump d = { .out = link_stream_output(s) };
	struct link_hdr h[2];

	if (strcmp(req->method, "GET") != 0 || strncmp(req->query, "since=", 6) != 0 ||
	    !link_hdr_u64(req->query + 6, &since)) {
		struct link_hdr e = { "x-popnode-error", "expected GET /v1/dir?since=N" };
		link_stream_respond(s, 400, &e, 1, true);
		link_stream_free(&s);
		return;
	}
	if (store_dir_foreach_since(st, since, DIRSYNC_BATCH, dump_cb, &d) != STORE_OK || d.bad) {
		struct link_hdr e = { "x-popnode-error", "directory read failed" };
		evbuffer_drain(d.out, evbuffer_get_length(d.out));
		link_stream_respond(s, 503, &e, 1, true);
		link_stream_free(&s);
		return;
	}
	snprintf(lseq, sizeof(lseq), "%" PRIu64, top);
	snprintf(more, sizeof(more), "%d", d.n == DIRSYNC_BATCH && d.last < top);
	h[0] = (struct link_hdr){ "x-popnode-dir-lseq", lseq };
	h[1] = (struct link_hdr){ "x-popnode-dir-more", more };
	link_stream_end(s);
	link_stream_respond(s, 200, h, 2, false);
	link_stream_free(&s);	/* the answer is queued; freeing resets
				 * nothing once both sides ended */
}

static void serve_changed(void *arg, struct link_stream *s, const struct link_request *req)
{
	struct dirsync *ds = arg;
	const char *v = link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-dir-lseq");
	struct ds_peer *p = peer_of(ds, req->peer);
	uint64_t lseq;

	if (p == NULL || !link_hdr_u64(v, &lseq)) {
		link_stream_respond(s, 400, NULL, 0, true);
		link_stream_free(&s);
		return;
	}
	link_stream_respond(s, 204, NULL, 0, true);
	link_stream_free(&s);
	if (lseq > store_dir_peer_lseq(ds->n->store, p->id))
		pull(p);
}

/* ---- pulling ----------------------------------------------------------------- */

static void pull_done(struct ds_peer *p, const char *error)
{
	link_stream_free(&p->pull);
	free(p->recs);
	p->recs = NULL;
	if (error != NULL) {
		log_warn("dir.pull_failed", "peer=%s error=\"%s\"", p->id, error);
		return;	/* the next notice, link up or timer retries */
	}
	if ((p->again || p->more) && !p->ds->stopping) {
		p->again = false;
		pull(p);
	}
}

static void applied_cb(int err, void *arg)
{
	struct ds_peer *p = arg;

	p->applying = false;
	if (err != STORE_OK) {
		pull_done(p, store_strerror(err));
		return;
	}
	if (p->n_applied > 0)
		log_info("dir.sync", "peer=%s records=%zu applied=%zu lseq=%" PRIu64, p->id,
			 p->n_recs, p->n_applied, p->answer_lseq);
	pull_done(p, NULL);
}

/* The whole answer is in: parse it and apply it. */
static void pull_apply(struct ds_peer *p)
{
	struct evbuffer *in = link_stream_input(p->pull);
	size_t cap = 0;
	char *line;
	size_t len;

	p->n_recs = 0;
	p->answer_lseq = 0;
	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		struct store_dir_rec r;
		int bad = dir_wire_decode(line, len, &r);

		free(line);
		if (bad) {
			pull_done(p, "malformed directory record");
			return;
		}
		if (p->n_recs == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct store_dir_rec *nr = realloc(p->recs, nc * sizeof(*nr));
			if (nr == NULL) {
				pull_done(p, "out of memory");
				return;
			}
			p->recs = nr;
			cap = nc;
		}
		if (r.lseq > p->answer_lseq)
			p->answer_lseq = r.lseq;
		p->recs[p->n_recs++] = r;
	}
	if (evbuffer_get_length(in) > 0 || p->n_recs > DIRSYNC_BATCH) {
		pull_done(p, "truncated directory answer");
		return;
	}
	link_stream_free(&p->pull);
	if (p->n_recs == 0) {
		pull_done(p, NULL);
		return;
	}
	p->applying = true;
	store_dir_apply(p->ds->n->store, p->id, p->answer_lseq, p->recs, p->n_recs, &p->n_applied,
			applied_cb, p);
	free(p->recs);		/* the store copied them */
	p->recs = NULL;
}

static void pull_response(void *arg, int status, const struct link_hdr *h, size_t n)
{
	struct ds_peer *p = arg;
	const char *more = link_hdr_get(h, n, "x-popnode-dir-more");
	char why[64];

	if (status != 200) {
		snprintf(why, sizeof(why), "peer answered %d", status);
		pull_done(p, why);
		return;
	}
	p->more = more != NULL && strcmp(more, "1") == 0;
}

static void pull_read(void *arg)
{
	struct ds_peer *p = arg;

	if (evbuffer_get_length(link_stream_input(p->pull)) > MAX_ANSWER)
		pull_done(p, "directory answer too large");
}

static void pull_event(void *arg, enum link_event ev)
{
	struct ds_peer *p = arg;

	if (ev == LINK_EV_EOF)
		pull_apply(p);
	else
		pull_done(p, ev == LINK_EV_TIMEOUT ? "timeout" : "stream reset");
}

static const struct link_stream_cbs pull_cbs = {
	.response = pull_response,
	.read = pull_read,
	.event = pull_event,
};

static void pull(struct ds_peer *p)
{
	struct node *n = p->ds->n;
	char path[64];

	if (p->pull != NULL || p->applying) {
		p->again = true;
		return;
	}
	if (p->ds->stopping || !link_peer_usable(n->link, p->id))
		return;
	snprintf(path, sizeof(path), DIR_PATH "?since=%" PRIu64,
		 store_dir_peer_lseq(n->store, p->id));
	p->more = false;
	p->pull = link_request(n->link, p->id, "GET", path, NULL, 0, false, &pull_cbs, p);
	if (p->pull != NULL)
		link_stream_set_timeout(p->pull, PULL_TIMEOUT);
}

/* ---- telling peers ------------------------------------------------------------- */

static void notice_event(void *arg, enum link_event ev)
{
	struct ds_peer *p = arg;

	link_stream_free(&p->notice);
}

static const struct link_stream_cbs notice_cbs = {
	.event = notice_event,
};

static void notice(struct ds_peer *p, uint64_t lseq)
{
	struct node *n = p->ds->n;
	char v[24];
	struct link_hdr h = { "x-popnode-dir-lseq", v };

	if (p->notice != NULL || !link_peer_usable(n->link, p->id))
		return;
	snprintf(v, sizeof(v), "%" PRIu64, lseq);
	p->notice = link_request(n->link, p->id, "POST", CHANGED_PATH, &h, 1, false, &notice_cbs, p);
	if (p->notice != NULL)
		link_stream_set_timeout(p->notice, PULL_TIMEOUT);
}

static void notice_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dirsync *ds = arg;
	uint64_t lseq = store_dir_lseq(ds->n->store);

	if (lseq == ds->noticed_lseq)
		return;
	ds->noticed_lseq = lseq;
	for (size_t i = 0; i < ds->n_peers; i++)
		notice(&ds->peers[i], lseq);
}

static void pull_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dirsync *ds = arg;

	for (size_t i = 0; i < ds->n_peers; i++)
		pull(&ds->peers[i]);
}

static void peer_cb(void *arg, const char *peer, bool up)
{
	struct dirsync *ds = arg;
	struct ds_peer *p = peer_of(ds, peer);

	if (p == NULL || !up)
		return;
	pull(p);
	notice(p, store_dir_lseq(ds->n->store));
}

/* ---- setup ------------------------------------------------------------------- */

int dirsync_init(struct node *n)
{
	const struct config *cfg = n->cfg;
	struct dirsync *ds = calloc(1, sizeof(*ds));
	struct timeval nt = { 0, DIRSYNC_NOTICE_MS * 1000 }, pt = { DIRSYNC_PULL_EVERY, 0 };

	if (ds == NULL)
		return -1;
	ds->n = n;
	n->dirsync = ds;
	link_set_handler(n->link, DIR_PATH, serve_dir, ds);
	link_set_handler(n->link, CHANGED_PATH, serve_changed, ds);
	if (cfg->n_peers == 0)
		return 0;
	ds->peers = calloc(cfg->n_peers, sizeof(*ds->peers));
	ds->notice_timer = event_new(n->base, -1, EV_PERSIST, notice_timer_cb, ds);
	ds->pull_timer = event_new(n->base, -1, EV_PERSIST, pull_timer_cb, ds);
	if (ds->peers == NULL || ds->notice_timer == NULL || ds->pull_timer == NULL)
		return -1;
	ds->n_peers = cfg->n_peers;
	for (size_t i = 0; i < cfg->n_peers; i++) {
		ds->peers[i].ds = ds;
		ds->peers[i].id = cfg->peers[i].id;
	}
	ds->noticed_lseq = store_dir_lseq(n->store);
	link_set_peer_cb(n->link, peer_cb, ds);
	event_add(ds->notice_timer, &nt);
	event_add(ds->pull_timer, &pt);
	return 0;
}

void dirsync_fini(struct node *n)
{
	struct dirsync *ds = n->dirsync;

	if (ds == NULL)
		return;
	ds->stopping = true;
	for (size_t i = 0; i < ds->n_peers; i++) {
		link_stream_free(&ds->peers[i].pull);
		link_stream_free(&ds->peers[i].notice);
		/* an apply in flight completes in store_close, which runs
		 * its callback: keep the peer array until then */
	}
	if (ds->notice_timer != NULL)
		event_free(ds->notice_timer);
	if (ds->pull_timer != NULL)
		event_free(ds->pull_timer);
	ds->notice_timer = ds->pull_timer = NULL;
}

void dirsync_free(struct node *n)
{
	struct dirsync *ds = n->dirsync;

	if (ds == NULL)
		return;
	n->dirsync = NULL;
	for (size_t i = 0; i < ds->n_peers; i++)
		free(ds->peers[i].recs);
	free(ds->peers);
	free(ds);
}

uint64_t dirsync_peer_lseq(struct node *n, const char *peer)
{
	return store_dir_peer_lseq(n->store, peer);
}
