/*
 * replicator.c - changelog shipping to mirrors, applying at the mirror,
 * mirror choice and lag (replicator.h, docs/replication.md).
 *
 *   GET  /v1/repl/position?origin=X[&probe=1]
 *                                   -> 200, x-popnode-applied-seq: N,
 *                                   x-popnode-last-seq, -generation,
 *                                   -dir-watermark
 *   POST /v1/repl/stream            x-popnode-origin: X,
 *                                   x-popnode-from-seq: N+1,
 *                                   x-popnode-generation: G
 *                                   -> 200; request body: frames
 *                                   (repl_wire.h); response body:
 *                                   "applied SEQ\n" lines
 *   POST /v1/repl/snapshot          x-popnode-origin, -generation,
 *                                   -snapshot-seq: a snapshot of X's
 *                                   store; "progress"/"loaded" lines
 *   GET  /v1/repl/snapshot?origin=X -> 200 and this POP's copy of X as a
 *                                   snapshot (X rebuilds: repl_rebuild.c)
 *
 * X must be the authenticated peer: a POP pushes only its own changelog
 * and pulls only its own data.
 *
 * The position answer is judged (repl_judge): stream from it, send a
 * snapshot first (REPL_SNAPSHOTTING; repl_snapshot.c does the reading and
 * the loading), or hold.  Nothing is shipped while the start-up check
 * (the gate, repl_rebuild.c) runs.  Once a second the changelog is
 * trimmed up to the lowest position of the chosen mirrors, and each
 * mirror store's copy of its origin's log up to what it applied.
 *
 * Origin side: a shipper per configured peer, active while the peer is a
 * chosen mirror.  It reads the changelog in batches while the stream's
 * output is below LINK_OUTPUT_HIGH (flow control of the link bounds what
 * is in flight), sends each body once per stream (a small set of hashes
 * sent recently; the mirror also finds bodies it already stores), and a
 * heartbeat every REPL_HEARTBEAT_MS when idle, which the mirror answers
 * with its applied position, so idle figures stay fresh.
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
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "dirsync.h"
#include "link.h"
#include "log.h"
#include "node.h"
#include "repl_ack.h"
#include "repl_merge.h"
#include "repl_private.h"
#include "repl_snapshot.h"
#include "repl_wire.h"
#include "replicator.h"
#include "store.h"

#define POSITION_PATH REPL_POSITION_PATH
#define STREAM_PATH "/v1/repl/stream"
#define DROP_PATH "/v1/repl/drop"
#define TRIM_EVERY_MS 1000		/* trimming, at most this often */
#define POLL_MS 50			/* look for new changelog records (besides
					 * being woken by every commit) */
#define RING 1024			/* batches in flight, per mirror */
#define RECENT 256			/* body hashes remembered per stream */
#define ACC_MAX (8u << 20)		/* mirror: bytes taken out of the link ahead */

struct replicator;

struct inflight {
	uint64_t seq;			/* last record of a batch sent */
	uint64_t cum;			/* bytes_sent after it */
};

struct shipper {
	struct replicator *r;
	const char *peer;
	struct link_stream *drop;	/* POST /v1/repl/drop in flight */
	bool drop_asked;		/* an orphan copy was told to go */
	int64_t orphan_retry_ms;	/* its merge failed: not before */
	struct repl_merge *merge;	/* taking its failover changes back */
	uint64_t merged_last;		/* ... done up to this seq of its copy */
	bool active, pinned;
	enum repl_state state;
	int64_t since;
	struct link_stream *pos, *st;
	uint64_t pos_seq;		/* the position answer */
	bool pos_ok;
	uint64_t sent, applied;
	int64_t last_ack_ms, last_send_ms, retry_at_ms;
	uint64_t records_sent, bytes_sent, bodies_sent, reconnects;
	uint64_t bytes_acked;		/* bytes_sent of the last acked batch */
	struct inflight ring[RING];
	size_t ring_head, ring_n;
	uint8_t recent[RECENT][REPL_HASH_LEN];
	size_t n_recent, next_recent;
	char last_error[128];
	bool failed_in_fill;
	/* the position answer beyond pos_seq (= pos_ans.applied) */
	struct repl_pos pos_ans;
	/* applied is a durable position of this POP's history at the
	 * mirror (a position answer judged "stream", acks, a snapshot
	 * loaded): what trimming may go up to */
	bool pos_known;
	/* REPL_SNAPSHOTTING: a snapshot being sent on st */
	struct repl_snap_tx *tx;
	bool snap_all_sent;
	uint64_t snap_seq, snap_total, snap_sent, snap_durable, snapshots;
};

struct batch {
	struct store_apply_rec *recs;
	uint8_t **frames;
	size_t n, bytes;
};

struct mirror_of {
	struct replicator *r;
	const char *origin;
	struct store *st;		/* opened on first contact */
	struct link_stream *s;
	struct evbuffer *acc;
	struct batch next;		/* being collected */
	bool applying, reading_off;
	size_t want;			/* bytes of the frame being waited for */
	uint64_t applied, queued, inflight_last;
	int64_t inflight_time, last_record;
	uint64_t origin_seq;
	int64_t last_contact_ms;
	uint64_t records_applied, batches_applied;
	bool seen;			/* has spoken to us or has a store */
	char last_error[128];
	/* a snapshot the origin pushes, loaded into mirror/ORIGIN.new */
	struct repl_snap_rx *rx;
	struct link_stream *rx_s;
	bool rx_installing;		/* loaded: store_replace when idle */
	uint64_t rx_seq, rx_bytes, snapshots_loaded;
	uint64_t rx_merged;		/* the origin took failover records back up to here */
	/* a snapshot of this copy served to the origin (it rebuilds) */
	struct repl_snap_tx *tx;
	struct link_stream *tx_s;
	bool trimming;			/* a trim op in flight */
};

struct replicator {
	struct node *n;
	struct shipper *sh;		/* one per configured peer */
	struct mirror_of *mo;		/* one per configured peer */
	size_t n_peers;
	int slot[REPL_MIRRORS];		/* index into sh, -1 empty */
	/* The mirror a slot had before it was given to a nearer one: still
	 * streamed to until the new one has caught up, then told to drop its
	 * copy (POST /v1/repl/drop); -1 none. */
	int leaving[REPL_MIRRORS];
	const char *challenger;
	int64_t challenger_since;
	struct event *poll, *tick, *trim;
	struct repl_limits lim;
	bool stopping;
	struct repl_gate *gate;		/* the start-up check (repl_rebuild.c) */
	bool trimming;			/* a trim op of this POP's changelog in flight */
};

static void ship_fill(struct shipper *sh);
static void mo_parse(struct mirror_of *mo);

static int64_t now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

const char *replicator_state_name(enum repl_state s)
{
	switch (s) {
	case REPL_STREAMING:
		return "streaming";
	case REPL_SNAPSHOTTING:
		return "snapshotting";
	case REPL_CONNECTING:
		return "connecting";
	default:
		return "down";
	}
}

/* ==== origin side ======================================================== */

static void sh_state(struct shipper *sh, enum repl_state s)
{
	if (sh->state != s) {
		sh->state = s;
		sh->since = (int64_t)time(NULL);
		repl_ack_mirror_state(sh->r->n, sh->peer, s == REPL_STREAMING);
	}
}

static void sh_close(struct shipper *sh)
{
	link_stream_free(&sh->pos);
	link_stream_free(&sh->st);
	repl_snap_tx_free(&sh->tx);
	sh->snap_all_sent = false;
	sh->ring_head = sh->ring_n = 0;
	sh->n_recent = sh->next_recent = 0;
	sh->bytes_acked = sh->bytes_sent;
	sh->sent = sh->applied;
}

static void sh_fail(struct shipper *sh, const char *why)
{
	if (why != NULL) {
		snprintf(sh->last_error, sizeof(sh->last_error), "%s", why);
		log_warn("repl.stream_failed", "mirror=%s error=\"%s\"", sh->peer, why);
	}
	sh_close(sh);
	sh_state(sh, REPL_DOWN);
	sh->retry_at_ms = now_ms() + REPL_RETRY_MS;
}

static bool recent_has(const struct shipper *sh, const uint8_t *h)
{
	for (size_t i = 0; i < sh->n_recent; i++)
		if (memcmp(sh->recent[i], h, REPL_HASH_LEN) == 0)
			return true;
	return false;
}

static void recent_add(struct shipper *sh, const uint8_t *h)
{
	memcpy(sh->recent[sh->next_recent], h, REPL_HASH_LEN);
	sh->next_recent = (sh->next_recent + 1) % RECENT;
	if (sh->n_recent < RECENT)
		sh->n_recent++;
}

static void recent_del(struct shipper *sh, const uint8_t *h)
{
	for (size_t i = 0; i < sh->n_recent; i++)
		if (memcmp(sh->recent[i], h, REPL_HASH_LEN) == 0)
			memset(sh->recent[i], 0, REPL_HASH_LEN);	/* never a real hash */
}

/* Append the encoded frame of rec to the stream's output. */
static int put_frame(struct shipper *sh, const struct repl_rec *rec)
{
	struct evbuffer *out = link_stream_output(sh->st);
	size_t sz = repl_wire_record_size(rec);
	struct evbuffer_iovec v;

	if (sz == 0)
		return -1;
	if (evbuffer_reserve_space(out, (ev_ssize_t)sz, &v, 1) != 1 || v.iov_len < sz)
		return -1;
	if (repl_wire_record_encode(rec, v.iov_base, sz) != sz)
		return -1;
	v.iov_len = sz;
	if (evbuffer_commit_space(out, &v, 1) != 0)
		return -1;
	sh->bytes_sent += sz;
	return 0;
}

struct body_ctx {
	struct shipper *sh;
	struct repl_rec *rec;
	int rc;
};

static int body_cb(const void *body, size_t body_len, const void *meta, size_t meta_len,
		   void *arg)
{
	struct body_ctx *b = arg;

	b->rec->flags = REPL_F_BODY | (meta != NULL ? REPL_F_META : 0);
	b->rec->body = body;
	b->rec->body_len = body_len;
	b->rec->meta = meta;
	b->rec->meta_len = meta != NULL ? meta_len : 0;
	b->rc = put_frame(b->sh, b->rec);
	return 0;
}

struct fill_ctx {
	struct shipper *sh;
	size_t n, bytes0;
	const char *error;
};

static int fill_cb(const struct store_change *c, void *arg)
{
	struct fill_ctx *f = arg;
	struct shipper *sh = f->sh;
	struct store *st = sh->r->n->store;
	struct repl_rec rec = {
		.seq = c->seq, .type = (uint8_t)c->type, .userid = c->userid,
		.mboxid = c->mboxid, .uid = c->uid, .time = c->time,
		.data = c->data, .data_len = c->data_len,
	};
	uint8_t h[REPL_HASH_LEN];
	int rc;

	if (c->seq != sh->sent + 1) {
		f->error = "gap in the changelog";
		return 1;
	}
	if (c->type == STORE_CH_MSG_ADD) {
		if (!repl_msg_add_hash(c->data, c->data_len, rec.hash)) {
			f->error = "unreadable MSG_ADD record";
			return 1;
		}
		if (recent_has(sh, rec.hash)) {
			rc = put_frame(sh, &rec);
		} else {
			struct body_ctx b = { sh, &rec, -1 };
			int err = store_body_read(st, rec.hash, body_cb, &b);

			if (err == STORE_NOTFOUND) {
				rec.flags = REPL_F_GONE;
				rc = put_frame(sh, &rec);
			} else if (err != STORE_OK) {
				f->error = "cannot read a body";
				return 1;
			} else {
				rc = b.rc;
				if (rc == 0) {
					recent_add(sh, rec.hash);
					sh->bodies_sent++;
				}
			}
		}
	} else {
		if (c->type == STORE_CH_MSG_EXPUNGE &&
		    repl_msg_expunge_hash(c->data, c->data_len, h))
			recent_del(sh, h);	/* the mirror may free it */
		else if (c->type == STORE_CH_MAILBOX_DEL || c->type == STORE_CH_USER_DEL)
			sh->n_recent = sh->next_recent = 0;
		rc = put_frame(sh, &rec);
	}
	if (rc < 0) {
		f->error = "cannot encode a record (out of memory?)";
		return 1;
	}
	sh->sent = c->seq;
	sh->records_sent++;
	f->n++;
	if (f->n >= REPL_BATCH_RECORDS || sh->bytes_sent - f->bytes0 >= REPL_BATCH_BYTES ||
	    evbuffer_get_length(link_stream_output(sh->st)) >= LINK_OUTPUT_HIGH)
		return 1;
	return 0;
}

static void ship_fill(struct shipper *sh)
{
	struct replicator *r = sh->r;
	uint64_t last = store_changelog_last(r->n->store, r->n->cfg->node_id);

	while (sh->state == REPL_STREAMING && sh->sent < last && sh->ring_n < RING &&
	       evbuffer_get_length(link_stream_output(sh->st)) < LINK_OUTPUT_HIGH) {
		struct fill_ctx f = { .sh = sh, .bytes0 = sh->bytes_sent };
		int err = store_changelog_foreach(r->n->store, r->n->cfg->node_id, sh->sent,
						  fill_cb, &f);

		if (f.error == NULL && err != STORE_OK)
			f.error = "changelog read failed";
		if (f.n > 0) {
			struct inflight *e = &sh->ring[(sh->ring_head + sh->ring_n) % RING];

			e->seq = sh->sent;
			e->cum = sh->bytes_sent;
			sh->ring_n++;
			sh->last_send_ms = now_ms();
		}
		if (f.error != NULL) {
			sh_fail(sh, f.error);
			return;
		}
		if (f.n == 0)
			break;	/* trimmed or raced: try at the next poll */
	}
}

static void ship_heartbeat(struct shipper *sh, int64_t now)
{
	struct replicator *r = sh->r;
	uint8_t hb[REPL_HEARTBEAT_SIZE];

	if (sh->state != REPL_STREAMING || now - sh->last_send_ms < REPL_HEARTBEAT_MS)
		return;
	repl_wire_heartbeat_encode(store_changelog_last(r->n->store, r->n->cfg->node_id),
				   (uint64_t)now, hb);
	if (evbuffer_add(link_stream_output(sh->st), hb, sizeof(hb)) == 0)
		sh->last_send_ms = now;
}

static void ship_ack(struct shipper *sh, uint64_t seq)
{
	if (seq < sh->applied || seq > sh->sent) {
		char why[96];

		snprintf(why, sizeof(why), "mirror acked %" PRIu64 " outside %" PRIu64 "..%" PRIu64,
			 seq, sh->applied, sh->sent);
		link_peer_failed(sh->r->n->link, sh->peer);
		sh_fail(sh, why);
		return;
	}
	sh->applied = seq;
	sh->last_ack_ms = now_ms();
	while (sh->ring_n > 0 && sh->ring[sh->ring_head].seq <= seq) {
		sh->bytes_acked = sh->ring[sh->ring_head].cum;
		sh->ring_head = (sh->ring_head + 1) % RING;
		sh->ring_n--;
	}
	if (sh->ring_n == 0)
		sh->bytes_acked = sh->bytes_sent;
	repl_ack_advance(sh->r->n, sh->peer, seq,
			 store_changelog_last(sh->r->n->store, sh->r->n->cfg->node_id));
}

static void stream_response(void *arg, int status, const struct link_hdr *h, size_t n)
{
	struct shipper *sh = arg;
	const char *e = link_hdr_get(h, n, "x-popnode-error");
	char why[160];

	if (status != 200) {
		snprintf(why, sizeof(why), "mirror answered %d%s%.100s", status,
			 e != NULL ? ": " : "", e != NULL ? e : "");
		sh_fail(sh, why);
		return;
	}
	sh_state(sh, REPL_STREAMING);
	sh->last_error[0] = '\0';
	sh->last_ack_ms = now_ms();
	log_info("repl.streaming", "mirror=%s from_seq=%" PRIu64, sh->peer, sh->sent + 1);
	ship_fill(sh);
}

/* The mirror's answer lines, on a log stream (applied) or a snapshot
 * stream (progress, loaded); a line of the other kind is malformed. */
static void snap_loaded(struct shipper *sh, uint64_t v);

static void answer_read(void *arg)
{
	struct shipper *sh = arg;
	struct evbuffer *in = link_stream_input(sh->st);
	bool snap = sh->state == REPL_SNAPSHOTTING;
	char *line;
	size_t len;

	while (sh->st != NULL && (line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		enum repl_line kind;
		uint64_t v;
		const char *text;
		size_t tl;
		char why[160];

		kind = repl_wire_parse_line(line, len, &v, &text, &tl);
		if (kind == REPL_LINE_ERROR) {
			snprintf(why, sizeof(why), "mirror: %.*s", (int)(tl > 120 ? 120 : tl), text);
			sh_fail(sh, why);
		} else if (kind == REPL_LINE_APPLIED && !snap) {
			ship_ack(sh, v);
		} else if (kind == REPL_LINE_PROGRESS && snap) {
			sh->snap_durable = v;
			sh->last_ack_ms = now_ms();
		} else if (kind == REPL_LINE_LOADED && snap) {
			snap_loaded(sh, v);
		} else {
			link_peer_failed(sh->r->n->link, sh->peer);
			sh_fail(sh, "malformed answer line");
		}
		free(line);
	}
	if (sh->st == NULL)
		return;
	if (evbuffer_get_length(in) > REPL_LINE_MAX) {
		sh_fail(sh, "answer line too long");
		return;
	}
	if (!snap)
		ship_fill(sh);
}

static void stream_drained(void *arg)
{
	ship_fill(arg);
}

static void stream_event(void *arg, enum link_event ev)
{
	struct shipper *sh = arg;

	sh_fail(sh, ev == LINK_EV_EOF ? "mirror ended the stream"
		    : ev == LINK_EV_TIMEOUT ? "mirror silent (timeout)" : "stream reset");
}

static const struct link_stream_cbs stream_cbs = {
	.response = stream_response,
	.read = answer_read,
	.drained = stream_drained,
	.event = stream_event,
};

static void open_stream(struct shipper *sh, const char *gen)
{
	struct replicator *r = sh->r;
	char from[24];
	struct link_hdr h[3] = {
		{ "x-popnode-origin", r->n->cfg->node_id },
		{ "x-popnode-from-seq", from },
		{ "x-popnode-generation", gen },
	};

	sh->applied = sh->sent = sh->pos_seq;
	sh->bytes_acked = sh->bytes_sent;
	snprintf(from, sizeof(from), "%" PRIu64, sh->pos_seq + 1);
	sh->st = link_request(r->n->link, sh->peer, "POST", STREAM_PATH, h, 3, true, &stream_cbs,
			      sh);
	if (sh->st == NULL) {
		sh_fail(sh, "link to the mirror not usable");
		return;
	}
	link_stream_set_timeout(sh->st, REPL_STREAM_TIMEOUT);
}

static void pos_response(void *arg, int status, const struct link_hdr *h, size_t n)
{
	struct shipper *sh = arg;
	const char *gen = link_hdr_get(h, n, "x-popnode-generation");
	char why[64];

	if (status != 200 || !link_hdr_u64(link_hdr_get(h, n, "x-popnode-applied-seq"), &sh->pos_seq)) {
		snprintf(why, sizeof(why), "position: mirror answered %d", status);
		sh_fail(sh, why);
		return;
	}
	memset(&sh->pos_ans, 0, sizeof(sh->pos_ans));
	sh->pos_ans.applied = sh->pos_seq;
	if (!link_hdr_u64(link_hdr_get(h, n, "x-popnode-last-seq"), &sh->pos_ans.last))
		sh->pos_ans.last = sh->pos_seq;
	if (gen != NULL && store_generation_check(gen) == STORE_OK)
		memcpy(sh->pos_ans.gen, gen, STORE_GEN_HEX);
	sh->pos_ok = true;
}

/* ---- snapshots to a mirror ------------------------------------------------------ */

static void snap_fill(struct shipper *sh)
{
	const char *why = NULL;
	int rc;

	if (sh->state != REPL_SNAPSHOTTING || sh->tx == NULL || sh->st == NULL)
		return;
	rc = repl_snap_tx_fill(sh->tx, link_stream_output(sh->st), &why);
	sh->snap_sent = repl_snap_tx_bytes(sh->tx);
	if (rc < 0) {
		sh_fail(sh, why);
		return;
	}
	if (rc == 0) {
		sh->snap_all_sent = true;
		repl_snap_tx_free(&sh->tx);	/* the read transaction ends */
		link_stream_end(sh->st);
	}
}

static void snap_response(void *arg, int status, const struct link_hdr *h, size_t n)
{
	struct shipper *sh = arg;
	const char *e = link_hdr_get(h, n, "x-popnode-error");
	char why[160];

	if (status != 200) {
		snprintf(why, sizeof(why), "snapshot: mirror answered %d%s%.100s", status,
			 e != NULL ? ": " : "", e != NULL ? e : "");
		sh_fail(sh, why);
		return;
	}
	sh->last_ack_ms = now_ms();
	snap_fill(sh);
}

static void ship_connect(struct shipper *sh);

/* The mirror has loaded the snapshot (its position v): stream from v + 1. */
static void snap_loaded(struct shipper *sh, uint64_t v)
{
	if (v != sh->snap_seq || !sh->snap_all_sent) {
		sh_fail(sh, "mirror loaded another snapshot than the one sent");
		return;
	}
	log_info("repl.snapshot_sent", "mirror=%s seq=%" PRIu64 " bytes=%" PRIu64, sh->peer, v,
		 sh->snap_sent);
	sh->applied = sh->sent = sh->pos_seq = v;
	sh->pos_known = true;
	sh->snapshots++;
	sh->last_ack_ms = now_ms();
	sh_close(sh);
	ship_connect(sh);
}

static void snap_drained(void *arg)
{
	snap_fill(arg);
}

static void snap_event(void *arg, enum link_event ev)
{
	struct shipper *sh = arg;

	sh_fail(sh, ev == LINK_EV_EOF ? "mirror ended the snapshot before loading it"
		    : ev == LINK_EV_TIMEOUT ? "mirror silent during the snapshot" : "snapshot stream reset");
}

static const struct link_stream_cbs snap_cbs = {
	.response = snap_response,
	.read = answer_read,
	.drained = snap_drained,
	.event = snap_event,
};

/* Send the mirror a snapshot of this POP's store; the stream follows. */
static void ship_snapshot(struct shipper *sh, const char *why)
{
	struct replicator *r = sh->r;
	struct store_snap_info info;
	char seq[24], merged_seq[24];
	struct link_hdr h[4];
	size_t nh = 3;

	sh->tx = repl_snap_tx_new(r->n->store, &info);
	if (sh->tx == NULL || info.generation[0] == '\0') {
		sh_fail(sh, "cannot read this POP's store for a snapshot");
		return;
	}
	snprintf(seq, sizeof(seq), "%" PRIu64, info.seq);
	h[0] = (struct link_hdr){ "x-popnode-origin", r->n->cfg->node_id };
	h[1] = (struct link_hdr){ "x-popnode-generation", info.generation };
	h[2] = (struct link_hdr){ "x-popnode-snapshot-seq", seq };
	if (sh->merged_last > 0) {
		snprintf(merged_seq, sizeof(merged_seq), "%" PRIu64, sh->merged_last);
		h[nh++] = (struct link_hdr){ "x-popnode-merged-seq", merged_seq };
	}
	sh->snap_seq = info.seq;
	sh->snap_total = info.bytes;
	sh->snap_sent = sh->snap_durable = 0;
	sh->snap_all_sent = false;
	sh->st = link_request(r->n->link, sh->peer, "POST", REPL_SNAP_PATH, h, nh, true, &snap_cbs,
			      sh);
	if (sh->st == NULL) {
		sh_fail(sh, "link to the mirror not usable");
		return;
	}
	link_stream_set_timeout(sh->st, REPL_SNAP_TIMEOUT);
	sh_state(sh, REPL_SNAPSHOTTING);
	log_info("repl.snapshot_send", "mirror=%s seq=%" PRIu64 " bytes_estimate=%" PRIu64
		 " mirror_applied=%" PRIu64 " reason=\"%s\"", sh->peer, info.seq, info.bytes,
		 sh->pos_seq, why);
}

/* The mirror's position is known: stream, send a snapshot, or hold. */
/* The mirror's failover changes are in this POP's store: its copy is
 * replaced by a snapshot (the header tells it they were taken back). */
static void merged(void *arg, bool ok, const char *why)
{
	struct shipper *sh = arg;

	sh->merge = NULL;
	if (!ok) {
		sh_fail(sh, why);
		return;
	}
	sh->merged_last = sh->pos_ans.last;
	ship_snapshot(sh, "its failover changes were taken back");
}

static void ship_decide(struct shipper *sh)
{
	struct replicator *r = sh->r;
	struct repl_self me;
	char gen[STORE_GEN_HEX];
	const char *why;

	if (repl_self_read(r->n->store, r->n->cfg->node_id, false, &me, gen) < 0) {
		sh_fail(sh, "cannot read this POP's store");
		return;
	}
	enum repl_verdict v = repl_judge(&me, &sh->pos_ans, &why);

	if (v != REPL_V_MERGE && sh->pos_ans.last <= sh->pos_ans.applied)
		repl_merge_forget(r->n, sh->peer);	/* its copy was replaced */
	switch (v) {
	case REPL_V_STREAM:
		sh->applied = sh->pos_seq;
		sh->pos_known = true;
		open_stream(sh, gen);
		break;
	case REPL_V_MERGE:
		if (sh->merge != NULL)
			break;		/* under way */
		sh->pos_known = false;
		sh->merged_last = 0;
		sh->merge = repl_merge_start(r->n, sh->peer, sh->pos_ans.applied, sh->pos_ans.last,
					     merged, sh);
		if (sh->merge == NULL) {
			sh_fail(sh, "out of memory");
			break;
		}
		snprintf(sh->last_error, sizeof(sh->last_error), "%s", why);
		break;
	case REPL_V_SNAPSHOT:
		if (me.has_mail && sh->pos_ans.applied > 0 &&
		    (sh->pos_ans.applied > me.last ||
		     (sh->pos_ans.gen[0] != '\0' && strcmp(sh->pos_ans.gen, gen) != 0)))
			log_warn("repl.mirror_overwritten", "mirror=%s its_generation=%s its_seq=%"
				 PRIu64 " generation=%s seq=%" PRIu64, sh->peer,
				 sh->pos_ans.gen[0] ? sh->pos_ans.gen : "-", sh->pos_ans.applied,
				 gen, me.last);
		sh->pos_known = false;
		ship_snapshot(sh, why);
		break;
	default:
		sh->pos_known = false;
		sh_fail(sh, why);
		break;
	}
}

static void pos_event(void *arg, enum link_event ev)
{
	struct shipper *sh = arg;

	link_stream_free(&sh->pos);
	if (ev != LINK_EV_EOF || !sh->pos_ok) {
		sh_fail(sh, ev == LINK_EV_EOF ? "position: no answer" : "position: stream failed");
		return;
	}
	ship_decide(sh);
}

static const struct link_stream_cbs pos_cbs = {
	.response = pos_response,
	.event = pos_event,
};

static void ship_connect(struct shipper *sh)
{
	struct replicator *r = sh->r;
	char path[128];

	if (sh->merge != NULL)
		return;		/* taking its failover changes back first */
	if (!link_peer_usable(r->n->link, sh->peer)) {
		snprintf(sh->last_error, sizeof(sh->last_error), "link to the mirror not up");
		sh->retry_at_ms = now_ms() + REPL_RETRY_MS;
		return;
	}
	snprintf(path, sizeof(path), POSITION_PATH "?origin=%s", r->n->cfg->node_id);
	sh->pos_ok = false;
	sh->reconnects++;
	sh_state(sh, REPL_CONNECTING);
	sh->pos = link_request(r->n->link, sh->peer, "GET", path, NULL, 0, false, &pos_cbs, sh);
	if (sh->pos == NULL) {
		sh_fail(sh, "link to the mirror not usable");
		return;
	}
	link_stream_set_timeout(sh->pos, REPL_STREAM_TIMEOUT);
}

/* ---- choosing the mirrors ---------------------------------------------------- */

struct rtts {
	const char *id[CONFIG_MAX_PEERS];
	int64_t rtt[CONFIG_MAX_PEERS];
	size_t n;
};

static void rtt_cb(const struct link_peer_info *p, void *arg)
{
	struct rtts *t = arg;

	if (t->n < CONFIG_MAX_PEERS) {
		t->id[t->n] = p->id;
		t->rtt[t->n++] = p->state == LINK_PEER_UP ? p->rtt_avg_us : -1;
	}
}

static int64_t rtt_of(const struct rtts *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->id[i], id) == 0)
			return t->rtt[i];
	return -1;
}

static int sh_index(struct replicator *r, const char *peer)
{
	for (size_t i = 0; i < r->n_peers; i++)
		if (strcmp(r->sh[i].peer, peer) == 0)
			return (int)i;
	return -1;
}

static bool chosen(const struct replicator *r, int idx)
{
	for (int s = 0; s < REPL_MIRRORS; s++)
		if (r->slot[s] == idx || r->leaving[s] == idx)
			return true;
	return false;
}

static void drop_event(void *arg, enum link_event ev)
{
	struct shipper *sh = arg;

	(void)ev;
	link_stream_free(&sh->drop);
}

static void drop_response(void *arg, int status, const struct link_hdr *h, size_t n)
{
	struct shipper *sh = arg;

	log_info("repl.mirror_drop_answer", "mirror=%s status=%d error=\"%s\"", sh->peer, status,
		 status == 204 ? "-" : link_hdr_get(h, n, "x-popnode-error") ? link_hdr_get(h, n, "x-popnode-error")
									 : "-");
}

static const struct link_stream_cbs drop_cbs = {
	.response = drop_response,
	.event = drop_event,
};

/* A leaving mirror's replacement has caught up: stop streaming to it and
 * tell it to drop its copy (it keeps it if that is not possible now: a
 * copy too many is never a loss). */
static void leave(struct replicator *r, int s)
{
	struct shipper *old = &r->sh[r->leaving[s]];

	if (old->merge != NULL)
		return;		/* taking its failover changes back: after that */
	struct link_hdr h = { "x-popnode-origin", r->n->cfg->node_id };

	r->leaving[s] = -1;
	log_info("repl.mirror_dropped", "mirror=%s", old->peer);
	old->active = false;
	sh_close(old);
	sh_state(old, REPL_DOWN);
	link_stream_free(&old->drop);
	old->drop = link_request(r->n->link, old->peer, "POST", DROP_PATH, &h, 1, false,
				 &drop_cbs, old);
	if (old->drop != NULL)
		link_stream_set_timeout(old->drop, REPL_STREAM_TIMEOUT);
}

static void ask_drop(struct replicator *r, struct shipper *sh, uint64_t merged)
{
	char v[24];
	struct link_hdr h[2] = { { "x-popnode-origin", r->n->cfg->node_id },
				 { "x-popnode-merged-seq", v } };

	snprintf(v, sizeof(v), "%" PRIu64, merged);
	sh->drop_asked = true;
	link_stream_free(&sh->drop);
	sh->drop = link_request(r->n->link, sh->peer, "POST", DROP_PATH, h, merged > 0 ? 2 : 1,
				false, &drop_cbs, sh);
	if (sh->drop != NULL)
		link_stream_set_timeout(sh->drop, REPL_STREAM_TIMEOUT);
}

/* An orphan copy's failover changes are in: it may go now. */
static void orphan_merged(void *arg, bool ok, const char *why)
{
	struct shipper *sh = arg;
	struct repl_pos pos;

	sh->merge = NULL;
	if (!ok || !repl_gate_peer_copy(sh->r->gate, sh->peer, &pos)) {
		log_warn("repl.orphan_merge_failed", "peer=%s reason=\"%s\"", sh->peer,
			 why != NULL ? why : "-");
		sh->orphan_retry_ms = now_ms() + 10 * REPL_RETRY_MS;
		return;
	}
	ask_drop(sh->r, sh, pos.last);
}

/* Copies of this POP's data at peers that are no longer its mirrors (the
 * mirrors were re-pinned while it was down: the start-up check saw the
 * copies) are dropped once every chosen mirror has caught up; first,
 * what such a copy took while serving for this POP is taken back. */
static void drop_orphans(struct replicator *r)
{
	uint64_t last = store_changelog_last(r->n->store, r->n->cfg->node_id);
	int filled = 0;

	for (int s = 0; s < REPL_MIRRORS; s++) {
		const struct shipper *sh;

		if (r->slot[s] < 0 || r->leaving[s] >= 0)
			continue;
		sh = &r->sh[r->slot[s]];
		if (sh->state != REPL_STREAMING || !sh->pos_known || sh->applied < last)
			return;
		filled++;
	}
	if (filled == 0)
		return;
	for (size_t i = 0; i < r->n_peers; i++) {
		struct shipper *sh = &r->sh[i];
		struct repl_pos pos;

		if (sh->drop_asked || sh->merge != NULL || chosen(r, (int)i) ||
		    !repl_gate_peer_copy(r->gate, sh->peer, &pos) ||
		    !link_peer_usable(r->n->link, sh->peer) || now_ms() < sh->orphan_retry_ms)
			continue;
		log_info("repl.orphan_copy", "peer=%s applied=%" PRIu64 " last=%" PRIu64, sh->peer,
			 pos.applied, pos.last);
		if (pos.last > pos.applied) {	/* it served for this POP */
			sh->merge = repl_merge_start(r->n, sh->peer, pos.applied, pos.last,
						     orphan_merged, sh);
			continue;
		}
		ask_drop(r, sh, 0);
	}
}

static void set_slot(struct replicator *r, int s, int idx)
{
	if (r->slot[s] >= 0) {
		/* filled first, dropped after (docs/replication.md) */
		if (r->leaving[s] >= 0)
			leave(r, s);
		r->leaving[s] = r->slot[s];
		log_info("repl.mirror_leaving", "mirror=%s replaced_by=%s", r->sh[r->slot[s]].peer,
			 idx >= 0 ? r->sh[idx].peer : "-");
	}
	r->slot[s] = idx;
	if (idx >= 0) {
		log_info("repl.mirror_chosen", "mirror=%s pinned=%s", r->sh[idx].peer,
			 r->sh[idx].pinned ? "yes" : "no");
		r->sh[idx].active = true;
		r->sh[idx].retry_at_ms = 0;
	}
}

/* Unpinned slots: fill empty ones with the nearest peers; replace the
 * farthest chosen one when a candidate has been REPL_SWITCH_RATIO nearer
 * for REPL_SWITCH_SECONDS. */
static void choose_mirrors(struct replicator *r, int64_t now)
{
	const char *order[CONFIG_MAX_PEERS];
	size_t n = link_peers_by_rtt(r->n->link, order, CONFIG_MAX_PEERS);
	struct rtts t = { .n = 0 };
	int worst_slot = -1, best = -1;
	int64_t worst_rtt = -1;

	link_peer_foreach(r->n->link, rtt_cb, &t);
	for (int s = 0; s < REPL_MIRRORS; s++) {
		if (r->slot[s] >= 0 || (size_t)s < r->n->cfg->n_mirrors)
			continue;
		for (size_t i = 0; i < n; i++) {
			int idx = sh_index(r, order[i]);

			if (idx >= 0 && !chosen(r, idx) && rtt_of(&t, order[i]) >= 0) {
				set_slot(r, s, idx);
				break;
			}
		}
	}
	for (int s = (int)r->n->cfg->n_mirrors; s < REPL_MIRRORS; s++) {
		int64_t rt;

		if (r->slot[s] < 0)
			continue;
		rt = rtt_of(&t, r->sh[r->slot[s]].peer);
		if (rt < 0)
			continue;	/* unknown now: not a reason to move data */
		if (rt > worst_rtt) {
			worst_rtt = rt;
			worst_slot = s;
		}
	}
	for (size_t i = 0; i < n && worst_slot >= 0; i++) {
		int idx = sh_index(r, order[i]);

		if (idx >= 0 && !chosen(r, idx) && rtt_of(&t, order[i]) >= 0) {
			best = idx;
			break;
		}
	}
	if (best < 0 || (double)rtt_of(&t, r->sh[best].peer) >= REPL_SWITCH_RATIO * (double)worst_rtt) {
		r->challenger = NULL;
		return;
	}
	if (r->challenger != r->sh[best].peer) {
		r->challenger = r->sh[best].peer;
		r->challenger_since = now;
		return;
	}
	if (now - r->challenger_since >= (int64_t)REPL_SWITCH_SECONDS * 1000) {
		set_slot(r, worst_slot, best);
		r->challenger = NULL;
	}
}

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replicator *r = arg;

	for (int s = 0; s < REPL_MIRRORS; s++) {
		if (r->slot[s] >= 0 && r->sh[r->slot[s]].state == REPL_STREAMING)
			ship_fill(&r->sh[r->slot[s]]);
		if (r->leaving[s] >= 0 && r->sh[r->leaving[s]].state == REPL_STREAMING)
			ship_fill(&r->sh[r->leaving[s]]);
	}
}

void replicator_committed(struct node *n)
{
	struct replicator *r = n->replicator;

	if (r != NULL && !r->stopping && r->poll != NULL)
		poll_cb(-1, 0, r);
}

static void mo_install(struct mirror_of *mo);

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replicator *r = arg;
	int64_t now = now_ms();
	/* while the start-up check runs, nothing of this POP's store goes
	 * out (it may be an empty store about to be rebuilt) */
	bool serving = repl_gate_ready(r->gate, NULL);

	if (r->stopping)
		return;
	choose_mirrors(r, now);
	for (int s = 0; s < REPL_MIRRORS; s++) {
		struct shipper *sh;

		if (r->slot[s] < 0)
			continue;
		sh = &r->sh[r->slot[s]];
		if (sh->state == REPL_DOWN && now >= sh->retry_at_ms && serving)
			ship_connect(sh);
		ship_heartbeat(sh, now);
		if (r->leaving[s] >= 0) {
			struct shipper *old = &r->sh[r->leaving[s]];

			if (sh->state == REPL_STREAMING && sh->pos_known &&
			    sh->applied >= store_changelog_last(r->n->store, r->n->cfg->node_id)) {
				leave(r, s);	/* the new one has everything */
				continue;
			}
			if (old->state == REPL_DOWN && now >= old->retry_at_ms && serving)
				ship_connect(old);
			ship_heartbeat(old, now);
		}
	}
	for (size_t i = 0; i < r->n_peers; i++)
		if (r->mo[i].rx_installing)
			mo_install(&r->mo[i]);
	if (serving)
		drop_orphans(r);
}

/* ---- trimming ----------------------------------------------------------------- */

static void origin_trimmed(int err, uint64_t trimmed, void *arg)
{
	struct replicator *r = arg;

	r->trimming = false;
	if (err != STORE_OK && err != STORE_SHUTDOWN)
		log_warn("repl.trim_failed", "origin=%s error=\"%s\"", r->n->cfg->node_id,
			 store_strerror(err));
}

/* This POP's changelog: up to the lowest durable position of the chosen
 * mirrors, once every mirror slot that can be filled is, and each has
 * said where it is (a snapshot being sent counts at its position).  No
 * peer at all: nobody needs the log, all of it goes. */
static void origin_trim(struct replicator *r)
{
	struct node *n = r->n;
	size_t need = r->n_peers < REPL_MIRRORS ? r->n_peers : REPL_MIRRORS, have = 0;
	uint64_t upto = UINT64_MAX, trimmed, last;

	if (r->trimming || n->store == NULL)
		return;
	for (int s = 0; s < REPL_MIRRORS; s++) {
		const struct shipper *sh;
		uint64_t pos;

		if (r->slot[s] < 0)
			continue;
		sh = &r->sh[r->slot[s]];
		if (sh->state == REPL_SNAPSHOTTING)
			pos = sh->snap_seq;
		else if (sh->pos_known)
			pos = sh->applied;
		else
			return;	/* not known yet: keep everything */
		if (pos < upto)
			upto = pos;
		have++;
	}
	if (have < need)
		return;
	last = store_changelog_last(n->store, n->cfg->node_id);
	trimmed = store_changelog_trimmed(n->store, n->cfg->node_id);
	if (upto > last)
		upto = last;
	if (upto <= trimmed)
		return;
	r->trimming = true;
	store_changelog_trim(n->store, n->cfg->node_id, upto, STORE_TRIM_MAX, origin_trimmed, r);
}

static void mirror_trimmed(int err, uint64_t trimmed, void *arg)
{
	struct mirror_of *mo = arg;

	mo->trimming = false;
	if (err != STORE_OK && err != STORE_SHUTDOWN)
		log_warn("repl.trim_failed", "origin=%s error=\"%s\"", mo->origin,
			 store_strerror(err));
}

/* A mirror keeps none of its copy of the origin's log: the copy is the
 * store itself, and a copy for someone else is made by a snapshot. */
static void mirror_trim(struct mirror_of *mo)
{
	if (mo->st == NULL || mo->trimming || mo->rx != NULL || mo->rx_installing ||
	    mo->applied <= store_changelog_trimmed(mo->st, mo->origin))
		return;
	mo->trimming = true;
	store_changelog_trim(mo->st, mo->origin, mo->applied, STORE_TRIM_MAX, mirror_trimmed, mo);
}

static void trim_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replicator *r = arg;

	if (r->stopping || !repl_gate_ready(r->gate, NULL))
		return;
	origin_trim(r);
	for (size_t i = 0; i < r->n_peers; i++)
		mirror_trim(&r->mo[i]);
}

/* ==== mirror side ======================================================== */

static struct mirror_of *mo_find(struct replicator *r, const char *origin)
{
	for (size_t i = 0; i < r->n_peers; i++)
		if (strcmp(r->mo[i].origin, origin) == 0)
			return &r->mo[i];
	return NULL;
}

static int mkdir_one(const char *p)
{
	return mkdir(p, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

/* Open the mirror's store; create its directory only if create. */
static int mo_open(struct mirror_of *mo, bool create, const char **why_r)
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
	if (create && mkdir_one(dir) < 0) {
		*why_r = "cannot create DATA_DIR/mirror";
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s/mirror/%s", cfg->data_dir, mo->origin);
	if (!create && stat(dir, &sb) != 0) {
		*why_r = "no mirror of that POP here";
		return -1;
	}
	if (create && mkdir_one(dir) < 0) {
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

static void batch_clear(struct batch *b)
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
	batch_clear(&mo->next);
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
	batch_clear(b);			/* the store copied everything */
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
	batch_clear(&mo->next);
	mo->queued = mo->applying ? mo->inflight_last : mo->applied;
	mo->want = 0;
	evbuffer_drain(mo->acc, evbuffer_get_length(mo->acc));
}

static const struct link_stream_cbs mo_cbs = {
	.read = mo_read,
	.event = mo_event,
};

static void answer(struct link_stream *s, int status, const char *error)
{
	struct link_hdr e = { "x-popnode-error", error };

	link_stream_respond(s, status, error != NULL ? &e : NULL, error != NULL, true);
	link_stream_free(&s);
}

/* The origin named in the request, which must be the peer itself. */
static struct mirror_of *req_origin(struct replicator *r, const struct link_request *req,
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
static void serve_position(void *arg, struct link_stream *s, const struct link_request *req)
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
	    (mo = req_origin(r, req, origin)) == NULL) {
		answer(s, 400, "expected GET " POSITION_PATH "?origin=YOUR_ID[&probe=1]");
		return;
	}
	if (r->stopping) {
		answer(s, 503, "stopping");
		return;
	}
	snprintf(dirw, sizeof(dirw), "%" PRIu64, dirsync_peer_lseq(r->n, mo->origin));
	if (mo_open(mo, !probe, &why) < 0) {
		if (!probe) {
			answer(s, 503, why);
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

static uint64_t mo_failover_records(struct mirror_of *mo);

static void serve_stream(void *arg, struct link_stream *s, const struct link_request *req)
{
	struct replicator *r = arg;
	struct mirror_of *mo;
	uint64_t from;
	const char *why = NULL;
	const char *gen = link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-generation");
	char v[24];
	struct link_hdr h = { "x-popnode-applied-seq", v };

	if (strcmp(req->method, "POST") != 0 ||
	    (mo = req_origin(r, req, link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-origin"))) == NULL ||
	    !link_hdr_u64(link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-from-seq"), &from)) {
		answer(s, 400, "expected x-popnode-origin (the sender) and x-popnode-from-seq");
		return;
	}
	if (r->stopping || mo_open(mo, true, &why) < 0) {
		answer(s, 503, why != NULL ? why : "stopping");
		return;
	}
	if (mo->applying) {
		answer(s, 409, "a batch is being applied; ask the position again");
		return;
	}
	if (mo_failover_records(mo) > 0) {
		answer(s, 409, "this copy holds changes made while serving for you: take them back "
			       "first (GET /v1/repl/failover)");
		return;
	}
	if (mo->rx != NULL || mo->rx_installing) {
		answer(s, 409, "a snapshot is being loaded");
		return;
	}
	if (gen != NULL) {
		char mine[STORE_GEN_HEX];

		if (store_generation_check(gen) != STORE_OK) {
			answer(s, 400, "bad x-popnode-generation");
			return;
		}
		if (store_generation(mo->st, mine) != STORE_OK || strcmp(mine, gen) != 0) {
			/* a new copy, or one of an older popnode: it takes the
			 * origin's; any other holds another history */
			if (mo->applied > 0 && mine[0] != '\0') {
				answer(s, 409, "this copy holds another generation: snapshot needed");
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
	batch_clear(&mo->next);
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

/* ---- snapshots: loading the origin's, serving this copy -------------------------- */

/* mirror/ORIGIN.new, where a pushed snapshot is loaded. */
static void mo_new_dir(const struct mirror_of *mo, char *buf, size_t sz)
{
	snprintf(buf, sz, "%s/mirror/%s.new", mo->r->n->cfg->data_dir, mo->origin);
}

/* The pushed snapshot's stream ends: with an error line, or (why NULL)
 * after "loaded". */
static void mo_rx_end(struct mirror_of *mo, const char *why)
{
	if (why != NULL) {
		snprintf(mo->last_error, sizeof(mo->last_error), "snapshot: %s", why);
		log_warn("repl.snapshot_refused", "origin=%s error=\"%s\"", mo->origin, why);
	}
	if (mo->rx_s != NULL) {
		if (why != NULL)
			evbuffer_add_printf(link_stream_output(mo->rx_s), "error %s\n", why);
		link_stream_end(mo->rx_s);
		link_stream_free(&mo->rx_s);	/* the answer still goes out */
	}
}

/* Install the loaded copy over the old one (in place: failover sessions
 * and status keep their store pointer); retried by tick_cb while the
 * old store has an op pending. */
static void mo_install(struct mirror_of *mo)
{
	char dir[CONFIG_PATH_MAX + 96];
	const char *why = NULL;
	int err;

	if (mo->st == NULL && mo_open(mo, true, &why) < 0) {
		mo->rx_installing = false;
		mo_new_dir(mo, dir, sizeof(dir));
		repl_rmdir_flat(dir);
		mo_rx_end(mo, why);
		return;
	}
	mo_new_dir(mo, dir, sizeof(dir));
	if (mo_failover_records(mo) > mo->rx_merged) {
		/* written while the snapshot was loading (a failover session
		 * or delivery): never replaced before the origin takes it back */
		mo->rx_installing = false;
		repl_rmdir_flat(dir);
		mo_rx_end(mo, "this copy took changes while the snapshot loaded: take them back first");
		return;
	}
	err = store_replace(mo->st, dir, &why);
	if (err == STORE_EXISTS)
		return;		/* an op is pending: the next tick */
	mo->rx_installing = false;
	if (err != STORE_OK) {
		repl_rmdir_flat(dir);
		mo_rx_end(mo, why);
		return;
	}
	mo->applied = mo->queued = mo->rx_seq;
	if (mo->origin_seq < mo->rx_seq)
		mo->origin_seq = mo->rx_seq;
	mo->snapshots_loaded++;
	mo->last_error[0] = '\0';
	log_info("repl.snapshot_installed", "origin=%s seq=%" PRIu64 " bytes=%" PRIu64, mo->origin,
		 mo->rx_seq, mo->rx_bytes);
	if (mo->rx_s != NULL)
		evbuffer_add_printf(link_stream_output(mo->rx_s), "loaded %" PRIu64 "\n", mo->rx_seq);
	mo_rx_end(mo, NULL);
}

static void mo_rx_progress(void *arg, uint64_t bytes)
{
	struct mirror_of *mo = arg;

	mo->rx_bytes = bytes;
	mo->last_contact_ms = now_ms();
	if (mo->rx_s != NULL)
		evbuffer_add_printf(link_stream_output(mo->rx_s), "progress %" PRIu64 "\n", bytes);
	repl_snap_rx_input(mo->rx, mo->rx_s != NULL ? link_stream_input(mo->rx_s) : NULL);
}

static void mo_rx_done(void *arg, int err, const char *why)
{
	struct mirror_of *mo = arg;

	mo->rx_bytes = repl_snap_rx_bytes(mo->rx);
	repl_snap_rx_free(&mo->rx);	/* keeps the directory if complete */
	if (err != 0 || mo->r->stopping) {
		mo_rx_end(mo, why != NULL ? why : "stopping");
		return;
	}
	mo->rx_installing = true;
	mo_install(mo);
}

static const struct repl_snap_rx_cbs mo_rx_cbs = {
	.progress = mo_rx_progress,
	.done = mo_rx_done,
};

static void mo_rx_read(void *arg)
{
	struct mirror_of *mo = arg;

	mo->last_contact_ms = now_ms();
	if (mo->rx != NULL)
		repl_snap_rx_input(mo->rx, link_stream_input(mo->rx_s));
}

static void mo_rx_event(void *arg, enum link_event ev)
{
	struct mirror_of *mo = arg;

	if (ev == LINK_EV_EOF && mo->rx != NULL) {
		/* all of it is here; the answer still goes back on this stream */
		link_stream_set_timeout(mo->rx_s, 0);
		repl_snap_rx_eof(mo->rx, link_stream_input(mo->rx_s));
		return;
	}
	if (ev == LINK_EV_EOF)
		return;		/* installing: the answer follows */
	log_warn("repl.snapshot_aborted", "origin=%s reason=%s", mo->origin,
		 ev == LINK_EV_TIMEOUT ? "timeout" : "reset");
	snprintf(mo->last_error, sizeof(mo->last_error), "snapshot: origin gone");
	link_stream_free(&mo->rx_s);
	repl_snap_rx_free(&mo->rx);	/* the old copy stays as it was */
	if (mo->rx_installing) {
		char dir[CONFIG_PATH_MAX + 96];

		mo->rx_installing = false;
		mo_new_dir(mo, dir, sizeof(dir));
		repl_rmdir_flat(dir);
	}
}

static const struct link_stream_cbs mo_rx_scbs = {
	.read = mo_rx_read,
	.event = mo_rx_event,
};

/* The last seq of the origin's log here if this copy holds records past
 * its applied position (written while serving for the origin,
 * docs/failover.md), else 0. */
static uint64_t mo_failover_records(struct mirror_of *mo)
{
	const char *why;
	uint64_t last;

	if (mo->st == NULL && mo_open(mo, false, &why) < 0)
		return 0;
	last = store_changelog_last(mo->st, mo->origin);
	return last > store_applied_seq(mo->st, mo->origin) ? last : 0;
}

/* x-popnode-merged-seq: the origin took this copy's failover records
 * back up to there (0 if absent). */
static uint64_t merged_seq_hdr(const struct link_request *req)
{
	uint64_t v;

	return link_hdr_u64(link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-merged-seq"), &v) ? v : 0;
}

/* POST: the origin pushes a snapshot of its store. */
static void snapshot_push(struct replicator *r, struct link_stream *s,
			  const struct link_request *req)
{
	const char *gen = link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-generation");
	struct store_snap_info hdr;
	struct mirror_of *mo;
	char dir[CONFIG_PATH_MAX + 96];
	const char *why = NULL;

	memset(&hdr, 0, sizeof(hdr));
	if ((mo = req_origin(r, req, link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-origin"))) == NULL ||
	    gen == NULL || store_generation_check(gen) != STORE_OK ||
	    !link_hdr_u64(link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-snapshot-seq"), &hdr.seq)) {
		answer(s, 400, "expected x-popnode-origin (the sender), x-popnode-generation and "
			       "x-popnode-snapshot-seq");
		return;
	}
	if (r->stopping) {
		answer(s, 503, "stopping");
		return;
	}
	if (mo->applying || mo->rx != NULL || mo->rx_installing || mo->tx != NULL) {
		answer(s, 409, "busy with this origin's copy; try again");
		return;
	}
	if (mo_failover_records(mo) > merged_seq_hdr(req)) {
		/* docs/failover.md: never lose what users did here */
		answer(s, 409, "this copy holds changes made while serving for you: take them back "
			       "first (GET /v1/repl/failover)");
		return;
	}
	if (mo->s != NULL) {		/* a stale stream: the origin moved on */
		link_stream_free(&mo->s);
		batch_clear(&mo->next);
		evbuffer_drain(mo->acc, evbuffer_get_length(mo->acc));
		mo->queued = mo->applied;
	}
	memcpy(hdr.generation, gen, STORE_GEN_HEX);
	snprintf(dir, sizeof(dir), "%s/mirror", r->n->cfg->data_dir);
	if (mkdir_one(dir) < 0) {
		answer(s, 503, "cannot create DATA_DIR/mirror");
		return;
	}
	mo_new_dir(mo, dir, sizeof(dir));
	mo->rx = repl_snap_rx_new(r->n, dir, mo->origin, &hdr, true, &r->lim, &mo_rx_cbs, mo, &why);
	if (mo->rx == NULL) {
		answer(s, 503, why);
		return;
	}
	mo->rx_s = s;
	mo->rx_seq = hdr.seq;
	mo->rx_merged = merged_seq_hdr(req);
	mo->rx_bytes = 0;
	mo->seen = true;
	mo->last_contact_ms = now_ms();
	link_stream_set_cbs(s, &mo_rx_scbs, mo);
	link_stream_set_timeout(s, REPL_SNAP_TIMEOUT);
	link_stream_set_window(s, ACC_MAX);
	link_stream_respond(s, 200, NULL, 0, false);
	log_info("repl.snapshot_receiving", "origin=%s seq=%" PRIu64 " generation=%s", mo->origin,
		 hdr.seq, gen);
	repl_snap_rx_input(mo->rx, link_stream_input(s));
}

static void mo_tx_stop(struct mirror_of *mo)
{
	link_stream_free(&mo->tx_s);
	repl_snap_tx_free(&mo->tx);
}

static void mo_tx_fill(struct mirror_of *mo)
{
	const char *why = NULL;
	int rc;

	if (mo->tx == NULL || mo->tx_s == NULL)
		return;
	rc = repl_snap_tx_fill(mo->tx, link_stream_output(mo->tx_s), &why);
	if (rc < 0) {
		log_warn("repl.snapshot_serve_failed", "origin=%s error=\"%s\"", mo->origin, why);
		mo_tx_stop(mo);		/* a reset: the origin tries again */
		return;
	}
	if (rc == 0) {
		log_info("repl.snapshot_served", "origin=%s bytes=%" PRIu64, mo->origin,
			 repl_snap_tx_bytes(mo->tx));
		link_stream_end(mo->tx_s);
		mo_tx_stop(mo);		/* answered: the rest still goes out */
	}
}

static void mo_tx_drained(void *arg)
{
	mo_tx_fill(arg);
}

static void mo_tx_event(void *arg, enum link_event ev)
{
	struct mirror_of *mo = arg;

	if (ev == LINK_EV_EOF)
		return;		/* the request's end (a GET has no body) */
	log_warn("repl.snapshot_serve_aborted", "origin=%s", mo->origin);
	mo_tx_stop(mo);
}

static const struct link_stream_cbs mo_tx_scbs = {
	.drained = mo_tx_drained,
	.event = mo_tx_event,
};

/* GET ?origin=X: X (which lost its disk) pulls its data back from this
 * copy. */
static void snapshot_pull(struct replicator *r, struct link_stream *s,
			  const struct link_request *req)
{
	struct store_snap_info info;
	struct mirror_of *mo;
	const char *why = NULL;
	char seq[24];
	struct link_hdr h[2];

	if (strncmp(req->query, "origin=", 7) != 0 ||
	    (mo = req_origin(r, req, req->query + 7)) == NULL) {
		answer(s, 400, "expected GET " REPL_SNAP_PATH "?origin=YOUR_ID");
		return;
	}
	if (r->stopping) {
		answer(s, 503, "stopping");
		return;
	}
	if (mo_open(mo, false, &why) < 0) {
		answer(s, 404, "no copy of that POP here");
		return;
	}
	if (mo->rx != NULL || mo->rx_installing) {
		answer(s, 409, "a snapshot of that POP is being loaded here");
		return;
	}
	mo_tx_stop(mo);		/* an earlier pull the origin gave up */
	mo->tx = repl_snap_tx_new(mo->st, &info);
	if (mo->tx == NULL) {
		answer(s, 503, "cannot read the copy");
		return;
	}
	if (info.generation[0] == '\0') {
		repl_snap_tx_free(&mo->tx);
		answer(s, 409, "the copy's generation is not known yet");
		return;
	}
	snprintf(seq, sizeof(seq), "%" PRIu64, info.seq);
	h[0] = (struct link_hdr){ "x-popnode-generation", info.generation };
	h[1] = (struct link_hdr){ "x-popnode-snapshot-seq", seq };
	mo->tx_s = s;
	link_stream_set_cbs(s, &mo_tx_scbs, mo);
	link_stream_respond(s, 200, h, 2, false);
	log_warn("repl.snapshot_serving", "origin=%s seq=%" PRIu64 " bytes_estimate=%" PRIu64,
		 mo->origin, info.seq, info.bytes);
	mo_tx_fill(mo);
}

/* POST /v1/repl/drop: the origin chose another mirror, which has caught
 * up: this copy goes, unless it holds changes made while serving for the
 * origin (409: they are taken back first) or is busy (409: asked again
 * at the next change, and a copy too many is never a loss). */
static void serve_drop(void *arg, struct link_stream *s, const struct link_request *req)
{
	struct replicator *r = arg;
	struct mirror_of *mo;
	char dir[CONFIG_PATH_MAX + 80];

	if (strcmp(req->method, "POST") != 0 ||
	    (mo = req_origin(r, req, link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-origin"))) == NULL) {
		answer(s, 400, "expected POST with x-popnode-origin (the sender)");
		return;
	}
	if (mo_failover_records(mo) > merged_seq_hdr(req)) {
		answer(s, 409, "this copy holds changes made while serving for you");
		return;
	}
	if (mo->applying || mo->rx != NULL || mo->rx_installing || mo->tx != NULL ||
	    node_sessions_on_mirror(r->n)) {
		answer(s, 409, "busy with this copy");
		return;
	}
	link_stream_free(&mo->s);
	batch_clear(&mo->next);
	evbuffer_drain(mo->acc, evbuffer_get_length(mo->acc));
	store_close(&mo->st);
	snprintf(dir, sizeof(dir), "%s/mirror/%s", r->n->cfg->data_dir, mo->origin);
	repl_rmdir_flat(dir);
	mo->applied = mo->queued = 0;
	mo->want = 0;
	mo->reading_off = false;
	log_info("repl.copy_dropped", "origin=%s dir=%s", mo->origin, dir);
	link_stream_respond(s, 204, NULL, 0, true);
	link_stream_free(&s);
}

static void serve_snapshot(void *arg, struct link_stream *s, const struct link_request *req)
{
	struct replicator *r = arg;

	if (strcmp(req->method, "POST") == 0)
		snapshot_push(r, s, req);
	else if (strcmp(req->method, "GET") == 0)
		snapshot_pull(r, s, req);
	else
		answer(s, 405, "POST or GET");
}

/* ==== setup and figures ================================================== */

int replicator_init(struct node *n)
{
	const struct config *cfg = n->cfg;
	struct replicator *r = calloc(1, sizeof(*r));
	struct timeval pt = { 0, POLL_MS * 1000 }, tt = { 0, 200 * 1000 };
	struct timeval trt = { TRIM_EVERY_MS / 1000, TRIM_EVERY_MS % 1000 * 1000 };

	if (r == NULL)
		return -1;
	r->n = n;
	n->replicator = r;
	for (int s = 0; s < REPL_MIRRORS; s++)
		r->slot[s] = r->leaving[s] = -1;
	r->lim.body_max = cfg->max_message_size + 65536;
	r->lim.meta_max = STORE_META_MAX;
	link_set_handler(n->link, POSITION_PATH, serve_position, r);
	link_set_handler(n->link, STREAM_PATH, serve_stream, r);
	link_set_handler(n->link, REPL_SNAP_PATH, serve_snapshot, r);
	link_set_handler(n->link, DROP_PATH, serve_drop, r);
	repl_merge_init(n);
	repl_noc_init(n);
	if (repl_ack_init(n) < 0)
		return -1;
	r->gate = repl_gate_new(n, &r->lim);
	r->trim = event_new(n->base, -1, EV_PERSIST, trim_cb, r);
	if (r->gate == NULL || r->trim == NULL)
		return -1;
	event_add(r->trim, &trt);
	if (cfg->n_peers == 0)
		return 0;
	r->sh = calloc(cfg->n_peers, sizeof(*r->sh));
	r->mo = calloc(cfg->n_peers, sizeof(*r->mo));
	r->poll = event_new(n->base, -1, EV_PERSIST, poll_cb, r);
	r->tick = event_new(n->base, -1, EV_PERSIST, tick_cb, r);
	if (r->sh == NULL || r->mo == NULL || r->poll == NULL || r->tick == NULL)
		return -1;
	r->n_peers = cfg->n_peers;
	for (size_t i = 0; i < cfg->n_peers; i++) {
		struct mirror_of *mo = &r->mo[i];

		r->sh[i].r = r;
		r->sh[i].peer = cfg->peers[i].id;
		r->sh[i].since = (int64_t)time(NULL);
		mo->r = r;
		mo->origin = cfg->peers[i].id;
		mo->acc = evbuffer_new();
		mo->next.recs = calloc(REPL_BATCH_RECORDS, sizeof(*mo->next.recs));
		mo->next.frames = calloc(REPL_BATCH_RECORDS, sizeof(*mo->next.frames));
		if (mo->acc == NULL || mo->next.recs == NULL || mo->next.frames == NULL)
			return -1;
	}
	for (size_t m = 0; m < cfg->n_mirrors; m++) {
		int idx = sh_index(r, cfg->mirrors[m]);

		if (idx >= 0) {
			r->sh[idx].pinned = true;
			set_slot(r, (int)m, idx);
		}
	}
	event_add(r->poll, &pt);
	event_add(r->tick, &tt);
	return 0;
}

void replicator_fini(struct node *n)
{
	struct replicator *r = n->replicator;

	repl_ack_fini(n);		/* no more acks: release the waiters */
	if (r == NULL)
		return;
	r->stopping = true;
	repl_gate_free(&r->gate);
	for (size_t i = 0; i < r->n_peers; i++) {
		struct mirror_of *mo = &r->mo[i];

		repl_merge_cancel(&r->sh[i].merge);
		link_stream_free(&r->sh[i].drop);
		sh_close(&r->sh[i]);	/* ends its snapshot read too */
		link_stream_free(&mo->s);
		batch_clear(&mo->next);
		link_stream_free(&mo->rx_s);
		repl_snap_rx_free(&mo->rx);	/* a half-loaded copy goes */
		mo_tx_stop(mo);
	}
	if (r->poll != NULL)
		event_free(r->poll);
	if (r->tick != NULL)
		event_free(r->tick);
	if (r->trim != NULL)
		event_free(r->trim);
	r->poll = r->tick = r->trim = NULL;
}

void replicator_free(struct node *n)
{
	struct replicator *r = n->replicator;

	repl_ack_free(n);
	if (r == NULL)
		return;
	r->stopping = true;
	for (size_t i = 0; i < r->n_peers; i++) {
		struct mirror_of *mo = &r->mo[i];

		store_close(&mo->st);	/* runs the last apply's callback */
		batch_clear(&mo->next);
		free(mo->next.recs);
		free(mo->next.frames);
		if (mo->acc != NULL)
			evbuffer_free(mo->acc);
	}
	n->replicator = NULL;
	free(r->sh);
	free(r->mo);
	free(r);
}

struct first_ctx {
	int64_t time;
	bool found;
};

static int first_cb(const struct store_change *c, void *arg)
{
	struct first_ctx *f = arg;

	f->time = c->time;
	f->found = true;
	return 1;
}

size_t replicator_mirrors(struct node *n, struct repl_mirror_info *out, size_t max)
{
	struct replicator *r = n->replicator;
	size_t k = 0;
	uint64_t last, first;
	int64_t now = now_ms();

	if (r == NULL || n->store == NULL)
		return 0;
	last = store_changelog_last(n->store, n->cfg->node_id);
	first = store_changelog_trimmed(n->store, n->cfg->node_id) + 1;
	for (int s = 0; s < REPL_MIRRORS && k < max; s++) {
		const struct shipper *sh;
		struct repl_mirror_info *m = &out[k];

		if (r->slot[s] < 0)
			continue;
		sh = &r->sh[r->slot[s]];
		memset(m, 0, sizeof(*m));
		snprintf(m->peer, sizeof(m->peer), "%s", sh->peer);
		m->pinned = sh->pinned;
		m->state = sh->state;
		m->since = sh->since;
		m->last_seq = last;
		m->sent_seq = sh->sent;
		m->applied_seq = sh->applied;
		m->records_behind = last > sh->applied ? last - sh->applied : 0;
		m->bytes_behind = sh->bytes_sent - sh->bytes_acked;
		if (last > sh->sent && sh->records_sent > 0)
			m->bytes_behind += (last - sh->sent) * (sh->bytes_sent / sh->records_sent);
		if (m->records_behind > 0) {
			struct first_ctx f = { 0, false };

			store_changelog_foreach(n->store, n->cfg->node_id, sh->applied, first_cb, &f);
			if (f.found && now / 1000 >= f.time)
				m->seconds_behind = (double)now / 1000.0 - (double)f.time;
		}
		m->last_ack_ms = sh->last_ack_ms;
		m->records_sent = sh->records_sent;
		m->bytes_sent = sh->bytes_sent;
		m->bodies_sent = sh->bodies_sent;
		m->reconnects = sh->reconnects;
		snprintf(m->last_error, sizeof(m->last_error), "%s", sh->last_error);
		m->first_seq = first;
		m->snapshots = sh->snapshots;
		if (sh->state == REPL_SNAPSHOTTING) {
			m->snapshot_seq = sh->snap_seq;
			m->snapshot_bytes_sent = sh->snap_sent;
			m->snapshot_bytes_durable = sh->snap_durable;
			m->snapshot_bytes_total = sh->snap_total;
		}
		k++;
	}
	return k;
}

size_t replicator_origins(struct node *n, struct repl_origin_info *out, size_t max)
{
	struct replicator *r = n->replicator;
	size_t k = 0;

	if (r == NULL)
		return 0;
	for (size_t i = 0; i < r->n_peers && k < max; i++) {
		const struct mirror_of *mo = &r->mo[i];
		struct repl_origin_info *o = &out[k];

		if (!mo->seen)
			continue;
		memset(o, 0, sizeof(*o));
		snprintf(o->origin, sizeof(o->origin), "%s", mo->origin);
		o->connected = mo->s != NULL;
		o->applied_seq = mo->applied;
		o->origin_seq = mo->origin_seq > mo->applied ? mo->origin_seq : mo->applied;
		o->last_record = mo->last_record;
		o->last_contact_ms = mo->last_contact_ms;
		o->records_applied = mo->records_applied;
		o->batches_applied = mo->batches_applied;
		snprintf(o->last_error, sizeof(o->last_error), "%s", mo->last_error);
		o->snapshotting = mo->rx != NULL || mo->rx_installing;
		o->snapshot_bytes = mo->rx != NULL ? repl_snap_rx_bytes(mo->rx) : mo->rx_bytes;
		o->snapshots_loaded = mo->snapshots_loaded;
		if (mo->st != NULL)
			store_generation(mo->st, o->generation);
		k++;
	}
	return k;
}

size_t replicator_published(struct node *n, const char **out, size_t max)
{
	struct replicator *r = n->replicator;
	size_t k = 0;

	for (int s = 0; r != NULL && s < REPL_MIRRORS && k < max; s++) {
		if (r->leaving[s] >= 0)
			out[k++] = r->sh[r->leaving[s]].peer;
		else if (r->slot[s] >= 0)
			out[k++] = r->sh[r->slot[s]].peer;
	}
	return k;
}

bool replicator_copy_busy(struct node *n, const char *origin)
{
	struct replicator *r = n->replicator;
	struct mirror_of *mo;

	return r != NULL && (mo = mo_find(r, origin)) != NULL &&
	       (mo->rx != NULL || mo->rx_installing);
}

struct store *replicator_store_of(struct node *n, const char *origin)
{
	struct replicator *r = n->replicator;
	struct mirror_of *mo;
	const char *why;

	if (strcmp(origin, n->cfg->node_id) == 0)
		return n->store;
	if (r == NULL || (mo = mo_find(r, origin)) == NULL)
		return NULL;
	if (mo->st == NULL && mo_open(mo, false, &why) < 0)
		return NULL;
	return mo->st;
}

bool replicator_serving_ready(struct node *n, const char **why_r)
{
	struct replicator *r = n->replicator;

	return r == NULL || repl_gate_ready(r->gate, why_r);
}

const char *replicator_serving_reason(struct node *n)
{
	struct replicator *r = n->replicator;

	return r != NULL ? repl_gate_reason(r->gate) : "no replicator";
}

void replicator_render_serving_json(struct node *n, struct evbuffer *out)
{
	struct replicator *r = n->replicator;

	repl_gate_render_json(r != NULL ? r->gate : NULL, out);
}
