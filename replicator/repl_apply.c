/*
 * repl_apply.c - the mirror side: each origin's copy in a store of its
 * own (DATA_DIR/mirror/ORIGIN, opened on first contact), its position
 * answered, and the origin's changelog stream applied to it (repl_int.h,
 * docs/replication.md).
 *
 * Mirror side: frames are moved out of the link's input (so its window
 * reopens even for a frame bigger than the window), decoded, collected
 * into batches of REPL_BATCH_RECORDS / REPL_BATCH_BYTES, and each batch
 * goes to store_apply_changes; one batch in flight per origin, reading
 * stops while the next batch is full.  "applied SEQ" goes back after the
 * callback said durable.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/buffer.h>

#include "config.h"
#include "dirsync.h"
#include "link.h"
#include "log.h"
#include "node.h"
#include "repl_int.h"
#include "store.h"

static void mo_parse(struct mirror_of *mo);

struct mirror_of *mo_find(struct replicator *r, const char *origin)
{
	for (size_t i = 0; i < r->n_peers; i++)
		if (strcmp(r->mo[i].origin, origin) == 0)
			return &r->mo[i];
	return NULL;
}

int mo_mkdir_one(const char *p)
{
	return mkdir(p, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

/* Open the mirror's store; create its directory only if create. */
int mo_open(struct mirror_of *mo, bool create, const char **why_r)
{
	const struct config *cfg = mo->r->n->cfg;
	char dir[CONFIG_PATH_MAX + 80];
	struct stat sb;
	struct store_opts so = {
		.dir = dir, .map_size = cfg->map_size, .origin = mo->origin,
		.batch_max = cfg->commit_batch_max, .base = mo->r->n->base,
	};

	if (mo->st != NULL)
		return 0;
	snprintf(dir, sizeof(dir), "%s/mirror", cfg->data_dir);
	if (create && mo_mkdir_one(dir) < 0) {
		*why_r = "cannot create DATA_DIR/mirror";
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s/mirror/%s", cfg->data_dir, mo->origin);
	if (!create && stat(dir, &sb) != 0) {
		*why_r = "no mirror of that POP here";
		return -1;
	}
	if (create && mo_mkdir_one(dir) < 0) {
		*why_r = "cannot create the mirror's directory";
		return -1;
	}
	if (store_open(&mo->st, &so, why_r) < 0) {
		log_err("repl.mirror_open", "origin=%s dir=%s error=\"%s\"", mo->origin, dir, *why_r);
		return -1;
	}
	mo->applied = mo->queued = store_applied_seq(mo->st, mo->origin);
	mo->seen = true;
	log_info("repl.mirror_open", "origin=%s dir=%s applied_seq=%" PRIu64, mo->origin, dir,
		 mo->applied);
	return 0;
}

void mo_batch_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->frames[i]);
	b->n = b->bytes = 0;
}

static void mo_line(struct mirror_of *mo, const char *fmt, uint64_t v)
{
	if (mo->s != NULL)
		evbuffer_add_printf(link_stream_output(mo->s), fmt, v);
}

/* End the stream with an error line; the origin reconnects. */
static void mo_fail(struct mirror_of *mo, const char *why)
{
	snprintf(mo->last_error, sizeof(mo->last_error), "%s", why);
	log_warn("repl.apply_failed", "origin=%s error=\"%s\"", mo->origin, why);
	mo_batch_clear(&mo->next);
	mo->queued = mo->applying ? mo->inflight_last : mo->applied;
	if (mo->s != NULL) {
		evbuffer_add_printf(link_stream_output(mo->s), "error %s\n", why);
		link_stream_end(mo->s);
		link_stream_free(&mo->s);	/* queued answer still goes out */
	}
	evbuffer_drain(mo->acc, evbuffer_get_length(mo->acc));
}

static void mo_submit(struct mirror_of *mo);

static void applied_cb(int err, void *arg)
{
	struct mirror_of *mo = arg;

	mo->applying = false;
	if (err != STORE_OK) {
		mo->queued = mo->applied;
		if (!mo->r->stopping)
			mo_fail(mo, store_strerror(err));
		return;
	}
	mo->applied = mo->inflight_last;
	mo->last_record = mo->inflight_time;
	mo->batches_applied++;
	if (mo->r->stopping)
		return;
	mo_line(mo, "applied %" PRIu64 "\n", mo->applied);
	mo_parse(mo);
}

static void mo_submit(struct mirror_of *mo)
{
	struct batch *b = &mo->next;

	if (mo->applying || b->n == 0)
		return;
	mo->applying = true;
	mo->inflight_last = b->recs[b->n - 1].c.seq;
	mo->inflight_time = b->recs[b->n - 1].c.time;
	mo->records_applied += b->n;
	store_apply_changes(mo->st, mo->origin, b->recs, b->n, applied_cb, mo);
	mo_batch_clear(b);			/* the store copied everything */
}

/* A MSG_ADD without its body: an earlier record of this batch may carry it. */
static void body_from_batch(struct batch *b, struct store_apply_rec *a, const uint8_t *hash)
{
	for (size_t i = b->n; i-- > 0;) {
		const struct store_apply_rec *o = &b->recs[i];
		uint8_t h[REPL_HASH_LEN];

		if (o->c.type == STORE_CH_MSG_ADD && o->body != NULL &&
		    repl_msg_add_hash(o->c.data, o->c.data_len, h) &&
		    memcmp(h, hash, REPL_HASH_LEN) == 0) {
			a->body = o->body;
			a->body_len = o->body_len;
			a->meta = o->meta;
			a->meta_len = o->meta_len;
			return;
		}
	}
}

/* Take one decoded record (frame owns its bytes) into the batch. */
static int mo_take(struct mirror_of *mo, uint8_t *frame, const struct repl_rec *rec)
{
	struct batch *b = &mo->next;
	struct store_apply_rec *a = &b->recs[b->n];

	if (rec->seq != mo->queued + 1) {
		free(frame);
		return -1;
	}
	memset(a, 0, sizeof(*a));
	a->c.seq = rec->seq;
	a->c.type = (enum store_change_type)rec->type;
	a->c.userid = rec->userid;
	a->c.mboxid = rec->mboxid;
	a->c.uid = rec->uid;
	a->c.time = rec->time;
	a->c.data = rec->data;
	a->c.data_len = rec->data_len;
	if (rec->flags & REPL_F_BODY) {
		a->body = rec->body;
		a->body_len = rec->body_len;
		if (rec->flags & REPL_F_META) {
			a->meta = rec->meta;
			a->meta_len = rec->meta_len;
		}
	} else if (rec->type == REPL_TYPE_MSG_ADD) {
		body_from_batch(b, a, rec->hash);
	}
	a->body_gone = (rec->flags & REPL_F_GONE) != 0;
	b->frames[b->n++] = frame;
	mo->queued = rec->seq;
	return 0;
}

/* Move what the link holds into acc, up to ACC_MAX or the frame that is
 * being waited for; reading stops beyond that (the link then holds one
 * window and the origin waits). */
static void mo_take_input(struct mirror_of *mo)
{
	size_t limit = mo->want > ACC_MAX ? mo->want : ACC_MAX;

	if (mo->s == NULL)
		return;
	if (evbuffer_get_length(mo->acc) < limit) {
		evbuffer_add_buffer(mo->acc, link_stream_input(mo->s));
		if (mo->reading_off) {
			mo->reading_off = false;
			link_stream_read_enable(mo->s, true);
		}
	} else if (!mo->reading_off) {
		mo->reading_off = true;
		link_stream_read_enable(mo->s, false);
	}
}

static void mo_parse(struct mirror_of *mo)
{
	struct evbuffer *acc = mo->acc;

	while (mo->s != NULL) {
		struct batch *b = &mo->next;
		size_t have, need, used;
		const uint8_t *hdr;
		struct repl_frame f;
		const char *why;
		uint8_t *frame;

		mo_take_input(mo);
		have = evbuffer_get_length(acc);
		if (have < REPL_FRAME_HDR)
			break;
		hdr = evbuffer_pullup(acc, REPL_FRAME_HDR);
		need = hdr != NULL ? repl_wire_frame_size(hdr, have, &mo->r->lim) : SIZE_MAX;
		if (need == SIZE_MAX) {
			link_peer_failed(mo->r->n->link, mo->origin);
			mo_fail(mo, "malformed frame");
			return;
		}
		if (have < need) {
			mo->want = need;
			break;
		}
		mo->want = 0;
		if (b->n >= REPL_BATCH_RECORDS || b->bytes >= REPL_BATCH_BYTES)
			break;	/* wait for the batch in flight */
		frame = malloc(need);
		if (frame == NULL) {
			mo_fail(mo, "out of memory");
			return;
		}
		evbuffer_remove(acc, frame, need);
		if (repl_wire_decode(frame, need, &mo->r->lim, &f, &used, &why) != 1) {
			free(frame);
			link_peer_failed(mo->r->n->link, mo->origin);
			mo_fail(mo, why != NULL ? why : "malformed frame");
			return;
		}
		mo->last_contact_ms = now_ms();
		if (f.kind == REPL_HEARTBEAT) {
			free(frame);
			mo->origin_seq = f.last_seq;
			if (!mo->applying && b->n == 0)
				mo_line(mo, "applied %" PRIu64 "\n", mo->applied);
			continue;
		}
		if (f.kind != REPL_RECORD) {
			free(frame);
			link_peer_failed(mo->r->n->link, mo->origin);
			mo_fail(mo, "a snapshot frame in the stream");
			return;
		}
		if (f.rec.seq > mo->origin_seq)
			mo->origin_seq = f.rec.seq;
		if (mo_take(mo, frame, &f.rec) < 0) {
			mo_fail(mo, "record out of sequence");
			return;
		}
		b->bytes += need;
	}
	mo_submit(mo);
	mo_take_input(mo);
}

static void mo_read(void *arg)
{
	mo_parse(arg);
}

static void mo_event(void *arg, enum link_event ev)
{
	struct mirror_of *mo = arg;

	log_info("repl.origin_gone", "origin=%s reason=%s", mo->origin,
		 ev == LINK_EV_EOF ? "eof" : ev == LINK_EV_TIMEOUT ? "timeout" : "reset");
	link_stream_free(&mo->s);
	mo_batch_clear(&mo->next);
	mo->queued = mo->applying ? mo->inflight_last : mo->applied;
	mo->want = 0;
	evbuffer_drain(mo->acc, evbuffer_get_length(mo->acc));
}

static const struct link_stream_cbs mo_cbs = {
	.read = mo_read,
	.event = mo_event,
};

void mo_answer(struct link_stream *s, int status, const char *error)
{
	struct link_hdr e = { "x-popnode-error", error };

	link_stream_respond(s, status, error != NULL ? &e : NULL, error != NULL, true);
	link_stream_free(&s);
}

/* The origin named in the request, which must be the peer itself. */
struct mirror_of *mo_req_origin(struct replicator *r, const struct link_request *req,
				    const char *origin)
{
	if (origin == NULL || strcmp(origin, req->peer) != 0)
		return NULL;
	return mo_find(r, origin);
}

/* "origin=X" or "origin=X&probe=1": X into origin; *probe set. */
static bool position_query(const char *q, char origin[STORE_POP_MAX], bool *probe)
{
	const char *amp;
	size_t len;

	if (strncmp(q, "origin=", 7) != 0)
		return false;
	q += 7;
	amp = strchr(q, '&');
	len = amp != NULL ? (size_t)(amp - q) : strlen(q);
	*probe = amp != NULL && strcmp(amp, "&probe=1") == 0;
	if (len == 0 || len >= STORE_POP_MAX || (amp != NULL && !*probe))
		return false;
	memcpy(origin, q, len);
	origin[len] = '\0';
	return true;
}

/* The position of origin's copy here: applied (durable), the copy's
 * changelog end, its generation (if known), and this POP's directory
 * watermark of the origin (for a home that rebuilds).  A probe (the
 * start-up check of a home) does not create a copy that is not there. */
void mo_serve_position(void *arg, struct link_stream *s, const struct link_request *req)
{
	struct replicator *r = arg;
	struct mirror_of *mo;
	const char *why = NULL;
	char origin[STORE_POP_MAX], v[24], last[24], dirw[24], gen[STORE_GEN_HEX];
	struct link_hdr h[4] = {
		{ "x-popnode-applied-seq", v },
		{ "x-popnode-last-seq", last },
		{ "x-popnode-dir-watermark", dirw },
		{ "x-popnode-generation", gen },
	};
	bool probe;
	size_t nh = 3;

	if (strcmp(req->method, "GET") != 0 || !position_query(req->query, origin, &probe) ||
	    (mo = mo_req_origin(r, req, origin)) == NULL) {
		mo_answer(s, 400, "expected GET " POSITION_PATH "?origin=YOUR_ID[&probe=1]");
		return;
	}
	if (r->stopping) {
		mo_answer(s, 503, "stopping");
		return;
	}
	snprintf(dirw, sizeof(dirw), "%" PRIu64, dirsync_peer_lseq(r->n, mo->origin));
	if (mo_open(mo, !probe, &why) < 0) {
		if (!probe) {
			mo_answer(s, 503, why);
			return;
		}
		snprintf(v, sizeof(v), "0");	/* no copy here */
		snprintf(last, sizeof(last), "0");
		link_stream_respond(s, 200, h, 3, true);
		link_stream_free(&s);
		return;
	}
	snprintf(v, sizeof(v), "%" PRIu64, mo->applied);
	snprintf(last, sizeof(last), "%" PRIu64, store_changelog_last(mo->st, mo->origin));
	if (store_generation(mo->st, gen) == STORE_OK)
		nh = 4;
	link_stream_respond(s, 200, h, nh, true);
	link_stream_free(&s);
}

void mo_serve_stream(void *arg, struct link_stream *s, const struct link_request *req)
{
	struct replicator *r = arg;
	struct mirror_of *mo;
	uint64_t from;
	const char *why = NULL;
	const char *gen = link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-generation");
	char v[24];
	struct link_hdr h = { "x-popnode-applied-seq", v };

	if (strcmp(req->method, "POST") != 0 ||
	    (mo = mo_req_origin(r, req, link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-origin"))) == NULL ||
	    !link_hdr_u64(link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-from-seq"), &from)) {
		mo_answer(s, 400, "expected x-popnode-origin (the sender) and x-popnode-from-seq");
		return;
	}
	if (r->stopping || mo_open(mo, true, &why) < 0) {
		mo_answer(s, 503, why != NULL ? why : "stopping");
		return;
	}
	if (mo->applying) {
		mo_answer(s, 409, "a batch is being applied; ask the position again");
		return;
	}
	if (copy_failover_records(mo) > 0) {
		mo_answer(s, 409, "this copy holds changes made while serving for you: take them back "
			       "first (GET /v1/repl/failover)");
		return;
	}
	if (mo->rx != NULL || mo->rx_installing) {
		mo_answer(s, 409, "a snapshot is being loaded");
		return;
	}
	if (gen != NULL) {
		char mine[STORE_GEN_HEX];

		if (store_generation_check(gen) != STORE_OK) {
			mo_answer(s, 400, "bad x-popnode-generation");
			return;
		}
		if (store_generation(mo->st, mine) != STORE_OK || strcmp(mine, gen) != 0) {
			/* a new copy, or one of an older popnode: it takes the
			 * origin's; any other holds another history */
			if (mo->applied > 0 && mine[0] != '\0') {
				mo_answer(s, 409, "this copy holds another generation: snapshot needed");
				return;
			}
			store_set_generation(mo->st, gen, NULL, NULL);	/* before any batch */
		}
	}
	if (from != mo->applied + 1) {
		snprintf(v, sizeof(v), "%" PRIu64, mo->applied);
		link_stream_respond(s, 409, &h, 1, true);
		link_stream_free(&s);
		return;
	}
	if (mo->s != NULL) {		/* the origin reconnected: the old one is stale */
		link_stream_free(&mo->s);
	}
	mo_batch_clear(&mo->next);
	evbuffer_drain(mo->acc, evbuffer_get_length(mo->acc));
	mo->queued = mo->applied;
	mo->reading_off = false;
	mo->want = 0;
	mo->s = s;
	mo->last_contact_ms = now_ms();
	mo->last_error[0] = '\0';
	link_stream_set_cbs(s, &mo_cbs, mo);
	link_stream_set_timeout(s, REPL_STREAM_TIMEOUT);
	/* a window per round trip would cap a distant origin (what the
	 * link holds plus ACC_MAX taken ahead stays bounded) */
	link_stream_set_window(s, ACC_MAX);
	link_stream_respond(s, 200, NULL, 0, false);
	log_info("repl.origin_streaming", "origin=%s from_seq=%" PRIu64, mo->origin, from);
	mo_parse(mo);
}
