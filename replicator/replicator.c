/*
 * replicator.c - changelog shipping to mirrors, applying at the mirror,
 * mirror choice and lag (replicator.h, docs/replication.md).
 *
 *   GET  /v1/repl/position?origin=X -> 200, x-popnode-applied-seq: N
 *   POST /v1/repl/stream            x-popnode-origin: X,
 *                                   x-popnode-from-seq: N+1
 *                                   -> 200; request body: frames
 *                                   (repl_wire.h); response body:
 *                                   "applied SEQ\n" lines
 *
 * X must be the authenticated peer: a POP pushes only its own changelog.
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
#include "link.h"
#include "log.h"
#include "node.h"
#include "repl_private.h"
#include "repl_wire.h"
#include "replicator.h"
#include "store.h"

#define POSITION_PATH "/v1/repl/position"
#define STREAM_PATH "/v1/repl/stream"
#define POLL_MS 5			/* look for new changelog records */
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
};

struct replicator {
	struct node *n;
	struct shipper *sh;		/* one per configured peer */
	struct mirror_of *mo;		/* one per configured peer */
	size_t n_peers;
	int slot[REPL_MIRRORS];		/* index into sh, -1 empty */
	const char *challenger;
	int64_t challenger_since;
	struct event *poll, *tick;
	struct repl_limits lim;
	bool stopping;
};

static void ship_fill(struct shipper *sh);
static void mo_parse(struct mirror_of *mo);

static int64_t now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static const char *hdr_get(const struct link_hdr *h, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(h[i].name, name) == 0)
			return h[i].value;
	return NULL;
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0';
}

const char *replicator_state_name(enum repl_state s)
{
	switch (s) {
	case REPL_STREAMING:
		return "streaming";
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
	}
}

static void sh_close(struct shipper *sh)
{
	link_stream_free(&sh->pos);
	link_stream_free(&sh->st);
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
}

static void stream_response(void *arg, int status, const struct link_hdr *h, size_t n)
{
	struct shipper *sh = arg;
	const char *e = hdr_get(h, n, "x-popnode-error");
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

static void stream_read(void *arg)
{
	struct shipper *sh = arg;
	struct evbuffer *in = link_stream_input(sh->st);
	char *line;
	size_t len;

	while (sh->st != NULL && (line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		uint64_t seq;
		const char *text;
		size_t tl;
		char why[160];

		switch (repl_wire_parse_line(line, len, &seq, &text, &tl)) {
		case REPL_LINE_APPLIED:
			ship_ack(sh, seq);
			break;
		case REPL_LINE_ERROR:
			snprintf(why, sizeof(why), "mirror: %.*s", (int)(tl > 120 ? 120 : tl), text);
			sh_fail(sh, why);
			break;
		default:
			link_peer_failed(sh->r->n->link, sh->peer);
			sh_fail(sh, "malformed answer line");
			break;
		}
		free(line);
	}
	if (sh->st == NULL)
		return;
	if (evbuffer_get_length(in) > REPL_LINE_MAX) {
		sh_fail(sh, "answer line too long");
		return;
	}
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
	.read = stream_read,
	.drained = stream_drained,
	.event = stream_event,
};

static void open_stream(struct shipper *sh)
{
	struct replicator *r = sh->r;
	uint64_t last = store_changelog_last(r->n->store, r->n->cfg->node_id);
	char from[24];
	struct link_hdr h[2] = {
		{ "x-popnode-origin", r->n->cfg->node_id },
		{ "x-popnode-from-seq", from },
	};

	if (sh->pos_seq > last) {
		sh_fail(sh, "mirror holds more of this POP than this POP (resync not built yet)");
		return;
	}
	sh->applied = sh->sent = sh->pos_seq;
	sh->bytes_acked = sh->bytes_sent;
	snprintf(from, sizeof(from), "%" PRIu64, sh->pos_seq + 1);
	sh->st = link_request(r->n->link, sh->peer, "POST", STREAM_PATH, h, 2, true, &stream_cbs,
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
	char why[64];

	if (status != 200 || !parse_u64(hdr_get(h, n, "x-popnode-applied-seq"), &sh->pos_seq)) {
		snprintf(why, sizeof(why), "position: mirror answered %d", status);
		sh_fail(sh, why);
		return;
	}
	sh->pos_ok = true;
}

static void pos_event(void *arg, enum link_event ev)
{
	struct shipper *sh = arg;

	link_stream_free(&sh->pos);
	if (ev != LINK_EV_EOF || !sh->pos_ok) {
		sh_fail(sh, ev == LINK_EV_EOF ? "position: no answer" : "position: stream failed");
		return;
	}
	open_stream(sh);
}

static const struct link_stream_cbs pos_cbs = {
	.response = pos_response,
	.event = pos_event,
};

static void ship_connect(struct shipper *sh)
{
	struct replicator *r = sh->r;
	char path[128];

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
		if (r->slot[s] == idx)
			return true;
	return false;
}

static void set_slot(struct replicator *r, int s, int idx)
{
	if (r->slot[s] >= 0) {
		struct shipper *old = &r->sh[r->slot[s]];

		log_info("repl.mirror_dropped", "mirror=%s", old->peer);
		old->active = false;
		sh_close(old);
		sh_state(old, REPL_DOWN);
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

	for (int s = 0; s < REPL_MIRRORS; s++)
		if (r->slot[s] >= 0 && r->sh[r->slot[s]].state == REPL_STREAMING)
			ship_fill(&r->sh[r->slot[s]]);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replicator *r = arg;
	int64_t now = now_ms();

	if (r->stopping)
		return;
	choose_mirrors(r, now);
	for (int s = 0; s < REPL_MIRRORS; s++) {
		struct shipper *sh;

		if (r->slot[s] < 0)
			continue;
		sh = &r->sh[r->slot[s]];
		if (sh->state == REPL_DOWN && now >= sh->retry_at_ms)
			ship_connect(sh);
		ship_heartbeat(sh, now);
	}
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

static void serve_position(void *arg, struct link_stream *s, const struct link_request *req)
{
	struct replicator *r = arg;
	struct mirror_of *mo;
	const char *why = NULL;
	char v[24];
	struct link_hdr h = { "x-popnode-applied-seq", v };

	if (strcmp(req->method, "GET") != 0 || strncmp(req->query, "origin=", 7) != 0 ||
	    (mo = req_origin(r, req, req->query + 7)) == NULL) {
		answer(s, 400, "expected GET " POSITION_PATH "?origin=YOUR_ID");
		return;
	}
	if (r->stopping || mo_open(mo, true, &why) < 0) {
		answer(s, 503, why != NULL ? why : "stopping");
		return;
	}
	snprintf(v, sizeof(v), "%" PRIu64, mo->applied);
	link_stream_respond(s, 200, &h, 1, true);
	link_stream_free(&s);
}

static void serve_stream(void *arg, struct link_stream *s, const struct link_request *req)
{
	struct replicator *r = arg;
	struct mirror_of *mo;
	uint64_t from;
	const char *why = NULL;
	char v[24];
	struct link_hdr h = { "x-popnode-applied-seq", v };

	if (strcmp(req->method, "POST") != 0 ||
	    (mo = req_origin(r, req, hdr_get(req->hdrs, req->n_hdrs, "x-popnode-origin"))) == NULL ||
	    !parse_u64(hdr_get(req->hdrs, req->n_hdrs, "x-popnode-from-seq"), &from)) {
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
	link_stream_respond(s, 200, NULL, 0, false);
	log_info("repl.origin_streaming", "origin=%s from_seq=%" PRIu64, mo->origin, from);
	mo_parse(mo);
}

/* ==== setup and figures ================================================== */

int replicator_init(struct node *n)
{
	const struct config *cfg = n->cfg;
	struct replicator *r = calloc(1, sizeof(*r));
	struct timeval pt = { 0, POLL_MS * 1000 }, tt = { 0, 200 * 1000 };

	if (r == NULL)
		return -1;
	r->n = n;
	n->replicator = r;
	for (int s = 0; s < REPL_MIRRORS; s++)
		r->slot[s] = -1;
	r->lim.body_max = cfg->max_message_size + 65536;
	r->lim.meta_max = STORE_META_MAX;
	link_set_handler(n->link, POSITION_PATH, serve_position, r);
	link_set_handler(n->link, STREAM_PATH, serve_stream, r);
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

	if (r == NULL)
		return;
	r->stopping = true;
	for (size_t i = 0; i < r->n_peers; i++) {
		sh_close(&r->sh[i]);
		link_stream_free(&r->mo[i].s);
		batch_clear(&r->mo[i].next);
	}
	if (r->poll != NULL)
		event_free(r->poll);
	if (r->tick != NULL)
		event_free(r->tick);
	r->poll = r->tick = NULL;
}

void replicator_free(struct node *n)
{
	struct replicator *r = n->replicator;

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
	uint64_t last;
	int64_t now = now_ms();

	if (r == NULL || n->store == NULL)
		return 0;
	last = store_changelog_last(n->store, n->cfg->node_id);
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
		k++;
	}
	return k;
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
