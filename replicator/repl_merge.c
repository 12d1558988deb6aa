/*
 * repl_merge.c - taking back what a mirror changed while it served for
 * this POP (repl_merge.h, docs/failover.md "Return").
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "link.h"
#include "log.h"
#include "node.h"
#include "repl_merge.h"
#include "repl_private.h"
#include "repl_wire.h"
#include "replicator.h"
#include "store.h"

#define FAILOVER_PATH "/v1/repl/failover"
#define FETCH_TIMEOUT 30		/* seconds without progress */

/* ==== mirror side ========================================================= */

struct enc_ctx {
	struct store *st;
	struct evbuffer *out;
	uint64_t next;			/* the seq expected */
	size_t n, bytes;
	const char *error;
};

static int put(struct enc_ctx *e, const struct repl_rec *rec)
{
	size_t sz = repl_wire_record_size(rec);
	struct evbuffer_iovec v;

	if (sz == 0 || evbuffer_reserve_space(e->out, (ev_ssize_t)sz, &v, 1) != 1 ||
	    v.iov_len < sz || repl_wire_record_encode(rec, v.iov_base, sz) != sz)
		return -1;
	v.iov_len = sz;
	if (evbuffer_commit_space(e->out, &v, 1) != 0)
		return -1;
	e->bytes += sz;
	return 0;
}

struct with_body {
	struct enc_ctx *e;
	struct repl_rec *rec;
	int rc;
};

static int body_cb(const void *body, size_t body_len, const void *meta, size_t meta_len,
		   void *arg)
{
	struct with_body *w = arg;

	w->rec->flags = REPL_F_BODY | (meta != NULL ? REPL_F_META : 0);
	w->rec->body = body;
	w->rec->body_len = body_len;
	w->rec->meta = meta;
	w->rec->meta_len = meta != NULL ? meta_len : 0;
	w->rc = put(w->e, w->rec);
	return 0;
}

static int enc_cb(const struct store_change *c, void *arg)
{
	struct enc_ctx *e = arg;
	struct repl_rec rec = {
		.seq = c->seq, .type = (uint8_t)c->type, .userid = c->userid,
		.mboxid = c->mboxid, .uid = c->uid, .time = c->time,
		.data = c->data, .data_len = c->data_len,
	};
	int rc;

	if (c->seq != e->next) {
		e->error = "gap in the changelog";
		return 1;
	}
	if (c->type == STORE_CH_MSG_ADD) {
		struct with_body w = { e, &rec, -1 };
		int err;

		if (!repl_msg_add_hash(c->data, c->data_len, rec.hash)) {
			e->error = "unreadable MSG_ADD record";
			return 1;
		}
		err = store_body_read(e->st, rec.hash, body_cb, &w);
		if (err == STORE_NOTFOUND) {
			rec.flags = REPL_F_GONE;
			rc = put(e, &rec);
		} else {
			rc = err == STORE_OK ? w.rc : -1;
		}
	} else {
		rc = put(e, &rec);
	}
	if (rc < 0) {
		e->error = "cannot encode a record";
		return 1;
	}
	e->next++;
	e->n++;
	return e->n >= REPL_BATCH_RECORDS || e->bytes >= REPL_BATCH_BYTES;
}

static void refuse(struct link_stream *s, int status, const char *why)
{
	struct link_hdr h = { "x-popnode-error", why };

	link_stream_respond(s, status, &h, 1, true);
	link_stream_free(&s);
}

static void serve_failover(void *arg, struct link_stream *s, const struct link_request *req)
{
	struct node *n = arg;
	const char *q = req->query, *amp;
	char origin[STORE_POP_MAX], vb[24], vl[24];
	struct link_hdr h[2] = { { "x-popnode-base", vb }, { "x-popnode-last", vl } };
	uint64_t after, base, last;
	struct store *st;
	struct enc_ctx e;
	size_t olen;

	if (strcmp(req->method, "GET") != 0 || strncmp(q, "origin=", 7) != 0 ||
	    (amp = strchr(q, '&')) == NULL || strncmp(amp, "&after=", 7) != 0 ||
	    (olen = (size_t)(amp - q - 7)) == 0 || olen >= sizeof(origin) ||
	    !link_hdr_u64(amp + 7, &after)) {
		refuse(s, 400, "expected GET " FAILOVER_PATH "?origin=YOUR_ID&after=SEQ");
		return;
	}
	memcpy(origin, q + 7, olen);
	origin[olen] = '\0';
	if (strcmp(origin, req->peer) != 0) {
		refuse(s, 403, "a POP takes back only its own changes");
		return;
	}
	if ((st = replicator_store_of(n, origin)) == NULL || st == n->store) {
		refuse(s, 404, "no copy of that POP here");
		return;
	}
	base = store_applied_seq(st, origin);
	last = store_changelog_last(st, origin);
	snprintf(vb, sizeof(vb), "%" PRIu64, base);
	snprintf(vl, sizeof(vl), "%" PRIu64, last);
	if (after < base)
		after = base;
	e = (struct enc_ctx){ .st = st, .out = evbuffer_new(), .next = after + 1 };
	if (e.out == NULL) {
		refuse(s, 503, "out of memory");
		return;
	}
	if (after < last && store_changelog_foreach(st, origin, after, enc_cb, &e) < 0 &&
	    e.error == NULL)
		e.error = "changelog read failed";
	if (e.error != NULL) {
		evbuffer_free(e.out);
		refuse(s, 500, e.error);
		return;
	}
	if (link_stream_respond(s, 200, h, 2, false) == 0) {
		evbuffer_add_buffer(link_stream_output(s), e.out);
		link_stream_end(s);
	}
	evbuffer_free(e.out);
	link_stream_free(&s);
	log_info("repl.failover_served", "origin=%s base=%" PRIu64 " last=%" PRIu64
		 " from=%" PRIu64 " records=%zu bytes=%zu", origin, base, last, after + 1, e.n,
		 e.bytes);
}

int repl_merge_init(struct node *n)
{
	link_set_handler(n->link, FAILOVER_PATH, serve_failover, n);
	return 0;
}

/* ==== home side ============================================================= */

struct repl_merge {
	struct node *n;
	char mirror[STORE_POP_MAX];
	uint64_t base, last, done_seq;	/* merged up to done_seq */
	struct link_stream *s;
	struct evbuffer *acc;
	int status;
	struct repl_limits lim;
	struct store_apply_rec *recs;
	uint8_t **frames;
	size_t n_recs;
	struct store_merge_stats stats;	/* of the call in flight */
	uint64_t added, renumbered, flags, expunged, skipped;	/* all calls */
	bool merging, cancelled, restarted;
	struct event *later;
	repl_merge_done_cb *done;
	void *arg;
	const char *why;
};

static void free_batch(struct repl_merge *m)
{
	for (size_t i = 0; i < m->n_recs; i++)
		free(m->frames[i]);
	m->n_recs = 0;
}

static void merge_free(struct repl_merge *m)
{
	link_stream_free(&m->s);
	free_batch(m);
	if (m->acc != NULL)
		evbuffer_free(m->acc);
	if (m->later != NULL)
		event_free(m->later);
	free(m->recs);
	free(m->frames);
	free(m);
}

/* Finish (on the next loop turn if asked from a call-in). */
static void finish(struct repl_merge *m, bool ok, const char *why)
{
	repl_merge_done_cb *done = m->done;
	void *arg = m->arg;

	link_stream_free(&m->s);
	if (ok)
		log_info("repl.merge_done", "mirror=%s base=%" PRIu64 " last=%" PRIu64
			 " added=%" PRIu64 " renumbered=%" PRIu64 " flags=%" PRIu64
			 " expunged=%" PRIu64 " skipped=%" PRIu64, m->mirror, m->base, m->last,
			 m->added, m->renumbered, m->flags, m->expunged, m->skipped);
	else
		log_warn("repl.merge_failed", "mirror=%s base=%" PRIu64 " merged=%" PRIu64
			 " reason=\"%s\"", m->mirror, m->base, m->done_seq, why);
	merge_free(m);
	done(arg, ok, why);
}

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct repl_merge *m = arg;

	(void)fd;
	(void)what;
	finish(m, m->why == NULL, m->why);
}

static void finish_later(struct repl_merge *m, const char *why)
{
	struct timeval now = { 0, 0 };

	m->why = why;
	link_stream_free(&m->s);
	if (m->later == NULL)
		m->later = evtimer_new(m->n->base, later_cb, m);
	if (m->later == NULL || evtimer_add(m->later, &now) < 0)
		finish(m, why == NULL, why);	/* cannot defer: at once */
}

static void fetch(struct repl_merge *m);


/* After a durable batch (or the begin): on to the next, or the end. */
static void step(struct repl_merge *m)
{
	uint64_t b, pos;

	if (store_merge_position(m->n->store, m->mirror, &b, &pos) == STORE_OK && b == m->base)
		m->done_seq = pos;
	if (m->done_seq >= m->last) {
		/* The merge's state stays (store_merge_end) until the mirror's
		 * copy is replaced (repl_merge_forget): asked again meanwhile,
		 * it finds everything merged and merges nothing twice. */
		finish(m, true, NULL);
		return;
	}
	fetch(m);
}

static void merged_cb(int err, void *arg)
{
	struct repl_merge *m = arg;

	m->merging = false;
	free_batch(m);
	if (m->cancelled) {
		merge_free(m);
		return;
	}
	if (err != STORE_OK) {
		finish(m, false, store_strerror(err));
		return;
	}
	m->added += m->stats.added + m->stats.added_renumbered;
	m->renumbered += m->stats.added_renumbered + m->stats.home_renumbered;
	m->flags += m->stats.flags_applied;
	m->expunged += m->stats.expunged;
	m->skipped += m->stats.skipped + m->stats.already_present +
		      m->stats.flags_lost_to_newer_home_change + m->stats.flags_lost_to_expunge +
		      m->stats.lost_to_mailbox_delete;
	step(m);
}

/* The whole answer is in acc: decode and merge it. */
static void answered(struct repl_merge *m)
{
	uint64_t next = m->done_seq + 1;

	while (evbuffer_get_length(m->acc) > 0) {
		size_t have = evbuffer_get_length(m->acc), need, used;
		const uint8_t *hdr = evbuffer_pullup(m->acc, have < REPL_FRAME_HDR ? -1 :
								  REPL_FRAME_HDR);
		struct repl_frame f;
		struct store_apply_rec *a;
		const char *why = NULL;
		uint8_t *frame;

		need = hdr != NULL ? repl_wire_frame_size(hdr, have, &m->lim) : SIZE_MAX;
		if (need == SIZE_MAX || need == 0 || need > have || m->n_recs == REPL_BATCH_RECORDS) {
			finish(m, false, "malformed answer");
			return;
		}
		if ((frame = malloc(need)) == NULL) {
			finish(m, false, "out of memory");
			return;
		}
		evbuffer_remove(m->acc, frame, need);
		m->frames[m->n_recs] = frame;
		if (repl_wire_decode(frame, need, &m->lim, &f, &used, &why) != 1 ||
		    f.kind != REPL_RECORD || f.rec.seq != next) {
			m->n_recs++;
			finish(m, false, why != NULL ? why : "record out of sequence");
			return;
		}
		a = &m->recs[m->n_recs++];
		memset(a, 0, sizeof(*a));
		a->c = (struct store_change){ .seq = f.rec.seq,
			.type = (enum store_change_type)f.rec.type, .userid = f.rec.userid,
			.mboxid = f.rec.mboxid, .uid = f.rec.uid, .time = f.rec.time,
			.data = f.rec.data, .data_len = f.rec.data_len };
		if (f.rec.flags & REPL_F_BODY) {
			a->body = f.rec.body;
			a->body_len = f.rec.body_len;
			a->meta = (f.rec.flags & REPL_F_META) ? f.rec.meta : NULL;
			a->meta_len = (f.rec.flags & REPL_F_META) ? f.rec.meta_len : 0;
		}
		a->body_gone = (f.rec.flags & REPL_F_GONE) != 0;
		next++;
	}
	if (m->n_recs == 0) {
		finish(m, false, "the mirror sent nothing to merge");
		return;
	}
	m->merging = true;
	/* the store continues a merge at its position, not at its base */
	store_merge_changes(m->n->store, m->mirror, m->done_seq, m->recs, m->n_recs, &m->stats,
			    merged_cb, m);
}

static void on_response(void *arg, int status, const struct link_hdr *h, size_t nh)
{
	struct repl_merge *m = arg;
	uint64_t base, last;

	m->status = status;
	if (status != 200) {
		finish_later(m, "the mirror refused");
		return;
	}
	if (!link_hdr_u64(link_hdr_get(h, nh, "x-popnode-base"), &base) ||
	    !link_hdr_u64(link_hdr_get(h, nh, "x-popnode-last"), &last) || base != m->base) {
		finish_later(m, "the mirror's copy changed");
		return;
	}
	if (last > m->last)
		m->last = last;	/* it served on meanwhile: take that too */
	link_stream_set_window(m->s, REPL_BATCH_BYTES);	/* bulk: see link.h */
}

static void on_read(void *arg)
{
	struct repl_merge *m = arg;

	evbuffer_add_buffer(m->acc, link_stream_input(m->s));
	if (evbuffer_get_length(m->acc) > 2 * (size_t)REPL_BATCH_BYTES + m->lim.body_max)
		finish_later(m, "answer too long");
}

static void on_event(void *arg, enum link_event ev)
{
	struct repl_merge *m = arg;

	if (ev == LINK_EV_EOF && m->status == 200) {
		evbuffer_add_buffer(m->acc, link_stream_input(m->s));
		link_stream_free(&m->s);
		answered(m);
		return;
	}
	finish_later(m, ev == LINK_EV_TIMEOUT ? "no answer from the mirror" : "link lost");
}

static const struct link_stream_cbs cbs = {
	.response = on_response,
	.read = on_read,
	.event = on_event,
};

static void fetch(struct repl_merge *m)
{
	char path[sizeof(FAILOVER_PATH) + STORE_POP_MAX + 48];

	snprintf(path, sizeof(path), FAILOVER_PATH "?origin=%s&after=%" PRIu64,
		 m->n->cfg->node_id, m->done_seq);
	m->status = 0;
	m->s = link_request(m->n->link, m->mirror, "GET", path, NULL, 0, false, &cbs, m);
	if (m->s == NULL) {
		finish_later(m, "mirror not reachable");
		return;
	}
	link_stream_set_timeout(m->s, FETCH_TIMEOUT);
}

static void begun_cb(int err, void *arg);

/* A stale merge of this mirror from another base was dropped: begin anew. */
static void restarted_cb(int err, void *arg)
{
	struct repl_merge *m = arg;

	m->merging = false;
	if (m->cancelled) {
		merge_free(m);
		return;
	}
	if (err != STORE_OK) {
		finish(m, false, store_strerror(err));
		return;
	}
	m->restarted = true;
	m->merging = true;
	store_merge_begin(m->n->store, m->mirror, m->base, m->last, begun_cb, m);
}

static void begun_cb(int err, void *arg)
{
	struct repl_merge *m = arg;
	uint64_t b, pos;

	m->merging = false;
	if (m->cancelled) {
		merge_free(m);
		return;
	}
	if (err == STORE_EXISTS && !m->restarted &&
	    store_merge_position(m->n->store, m->mirror, &b, &pos) == STORE_OK && b != m->base) {
		/* Left from a merge whose mirror copy is gone since (it was
		 * replaced after that merge ended badly): its changes are in,
		 * its maps mean nothing for this base. */
		log_warn("repl.merge_stale", "mirror=%s base=%" PRIu64 " stale_base=%" PRIu64,
			 m->mirror, m->base, b);
		m->merging = true;
		store_merge_end(m->n->store, m->mirror, restarted_cb, m);
		return;
	}
	if (err != STORE_OK && err != STORE_EXISTS) {
		finish(m, false, store_strerror(err));
		return;
	}
	step(m);	/* STORE_EXISTS: the same merge, cut short: go on */
}

struct repl_merge *repl_merge_start(struct node *n, const char *mirror, uint64_t base,
				    uint64_t last, repl_merge_done_cb *done, void *arg)
{
	struct repl_merge *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->n = n;
	snprintf(m->mirror, sizeof(m->mirror), "%s", mirror);
	m->base = base;
	m->last = last;
	m->done = done;
	m->arg = arg;
	m->lim.body_max = n->cfg->max_message_size + 65536;
	m->lim.meta_max = STORE_META_MAX;
	m->acc = evbuffer_new();
	m->recs = calloc(REPL_BATCH_RECORDS, sizeof(*m->recs));
	m->frames = calloc(REPL_BATCH_RECORDS, sizeof(*m->frames));
	if (m->acc == NULL || m->recs == NULL || m->frames == NULL) {
		merge_free(m);
		return NULL;
	}
	m->done_seq = base;
	log_info("repl.merge_start", "mirror=%s base=%" PRIu64 " last=%" PRIu64, mirror, base,
		 last);
	/* A merge cut short (crash, link lost) goes on from its position;
	 * else it is declared first (store_merge_begin). */
	m->merging = true;
	store_merge_begin(n->store, mirror, base, last, begun_cb, m);
	return m;
}

static void forgot_cb(int err, void *arg)
{
	(void)err;
	(void)arg;
}

void repl_merge_forget(struct node *n, const char *mirror)
{
	uint64_t b, pos;

	if (store_merge_position(n->store, mirror, &b, &pos) != STORE_OK)
		return;
	log_info("repl.merge_forget", "mirror=%s base=%" PRIu64 " merged=%" PRIu64, mirror, b, pos);
	store_merge_end(n->store, mirror, forgot_cb, NULL);
}

void repl_merge_cancel(struct repl_merge **mp)
{
	struct repl_merge *m = *mp;

	if (m == NULL)
		return;
	*mp = NULL;
	if (m->merging) {		/* the store's callback frees it */
		m->cancelled = true;
		link_stream_free(&m->s);
		return;
	}
	merge_free(m);
}
