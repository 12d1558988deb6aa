/*
 * repl_ship.c - the shipper: this POP's changelog streamed to a mirror,
 * and a snapshot sent first when the mirror's copy cannot be streamed to
 * (repl_int.h, docs/replication.md).
 *
 * Origin side: a shipper per configured peer, active while the peer is a
 * chosen mirror.  It reads the changelog in batches while the stream's
 * output is below LINK_OUTPUT_HIGH (flow control of the link bounds what
 * is in flight), sends each body once per stream (a small set of hashes
 * sent recently; the mirror also finds bodies it already stores), and a
 * heartbeat every REPL_HEARTBEAT_MS when idle, which the mirror answers
 * with its applied position, so idle figures stay fresh.
 *
 * The position answer is judged (repl_judge): stream from it, send a
 * snapshot first (REPL_SNAPSHOTTING; repl_snapshot.c does the reading),
 * take the mirror's failover changes back first (repl_merge.c), or hold.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "config.h"
#include "link.h"
#include "log.h"
#include "node.h"
#include "repl_ack.h"
#include "repl_int.h"
#include "repl_merge.h"
#include "store.h"

void ship_state(struct shipper *sh, enum repl_state s)
{
	if (sh->state != s) {
		sh->state = s;
		sh->since = (int64_t)time(NULL);
		repl_ack_mirror_state(sh->r->n, sh->peer, s == REPL_STREAMING);
	}
}

void ship_close(struct shipper *sh)
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
	ship_close(sh);
	ship_state(sh, REPL_DOWN);
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

void ship_fill(struct shipper *sh)
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

void ship_heartbeat(struct shipper *sh, int64_t now)
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
	ship_state(sh, REPL_STREAMING);
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
	ship_close(sh);
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
	ship_state(sh, REPL_SNAPSHOTTING);
	log_info("repl.snapshot_send", "mirror=%s seq=%" PRIu64 " bytes_estimate=%" PRIu64
		 " mirror_applied=%" PRIu64 " reason=\"%s\"", sh->peer, info.seq, info.bytes,
		 sh->pos_seq, why);
}

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

/* The mirror's position is known: stream, send a snapshot, or hold. */
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

void ship_connect(struct shipper *sh)
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
	ship_state(sh, REPL_CONNECTING);
	sh->pos = link_request(r->n->link, sh->peer, "GET", path, NULL, 0, false, &pos_cbs, sh);
	if (sh->pos == NULL) {
		sh_fail(sh, "link to the mirror not usable");
		return;
	}
	link_stream_set_timeout(sh->pos, REPL_STREAM_TIMEOUT);
}
