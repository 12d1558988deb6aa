/*
 * repl_snapshot.c - a snapshot over the link (repl_snapshot.h,
 * docs/replication.md "Snapshots").
 *
 * Sending: the store's snapshot read (one LMDB read transaction, kept
 * open across event-loop turns: MDB_NOTLS) is walked in steps of about
 * SNAP_STEP bytes, each item encoded as a frame straight into the
 * stream's output, until the output holds LINK_OUTPUT_HIGH; the link
 * sends it as the peer's window allows and says "drained" below
 * LINK_OUTPUT_LOW, and the owner calls fill again.  So the loop is never
 * held for more than one step plus one item, and memory for no more
 * than the high watermark plus one body.  The read transaction ends as
 * soon as the end frame is written.
 *
 * Receiving: bytes are moved out of the stream's input into acc (so the
 * window reopens even for a frame bigger than it), up to ACC_MAX or the
 * frame being waited for; frames are decoded into a batch of
 * RX_BATCH_ITEMS / RX_BATCH_BYTES, loaded into the fresh store with
 * store_snap_load (one op, one group commit), one batch in flight while
 * the next is collected.  After the end frame (its item count and
 * position checked) and the last batch, store_snap_finish writes the
 * position, generation and counters; once that is durable the store is
 * closed and the owner installs it.  Any failure leaves the directory to
 * be removed: what it replaces was never touched.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "config.h"
#include "link.h"
#include "log.h"
#include "node.h"
#include "repl_snapshot.h"

#define SNAP_STEP (64u << 10)		/* bytes read per store_snap_next */
#define ACC_MAX (8u << 20)		/* receiver: bytes taken out of the link ahead */
#define RX_BATCH_ITEMS 1024		/* items per store_snap_load */
#define RX_BATCH_BYTES (4u << 20)	/* frame bytes per store_snap_load, about */

_Static_assert(STORE_SNAP_BODY == REPL_SNAP_T_BODY && STORE_SNAP_USER == REPL_SNAP_T_ITEM_MIN &&
		       STORE_SNAP_MESSAGE == REPL_SNAP_T_MAX,
	       "snapshot item types on the wire are the store's");
_Static_assert(RX_BATCH_ITEMS <= STORE_SNAP_LOAD_MAX, "a batch fits one load");

/* ==== sending ============================================================== */

struct repl_snap_tx {
	struct store_snap *sn;
	struct store_snap_info info;
	struct evbuffer *out;		/* during a fill */
	uint64_t items, bytes;
	bool done;
};

struct repl_snap_tx *repl_snap_tx_new(struct store *st, struct store_snap_info *info_r)
{
	struct repl_snap_tx *tx = calloc(1, sizeof(*tx));

	if (tx == NULL)
		return NULL;
	if (store_snap_begin(st, &tx->sn, &tx->info) != STORE_OK) {
		free(tx);
		return NULL;
	}
	*info_r = tx->info;
	return tx;
}

static int put_encoded(struct repl_snap_tx *tx, size_t sz, const struct repl_snapitem *w)
{
	struct evbuffer_iovec v;

	if (sz == 0)
		return -1;
	if (evbuffer_reserve_space(tx->out, (ev_ssize_t)sz, &v, 1) != 1 || v.iov_len < sz)
		return -1;
	if (repl_wire_snap_encode(w, v.iov_base, sz) != sz)
		return -1;
	v.iov_len = sz;
	if (evbuffer_commit_space(tx->out, &v, 1) != 0)
		return -1;
	tx->bytes += sz;
	tx->items++;
	return 0;
}

static int emit_cb(const struct store_snap_item *it, void *arg)
{
	struct repl_snap_tx *tx = arg;
	struct repl_snapitem w = {
		.type = (uint8_t)it->type, .a = it->a, .b = it->b, .c = it->c,
		.data = it->data, .data_len = it->data_len,
	};

	if (it->type == STORE_SNAP_BODY) {
		memcpy(w.hash, it->hash, REPL_HASH_LEN);
		w.body = it->body;
		w.body_len = it->body_len;
		w.data = NULL;
		w.data_len = 0;
		if (it->meta != NULL) {
			w.flags = REPL_SF_META;
			w.meta = it->meta;
			w.meta_len = it->meta_len;
		}
	}
	return put_encoded(tx, repl_wire_snap_size(&w), &w) < 0 ? 1 : 0;
}

int repl_snap_tx_fill(struct repl_snap_tx *tx, struct evbuffer *out, const char **why_r)
{
	tx->out = out;
	while (!tx->done && evbuffer_get_length(out) < LINK_OUTPUT_HIGH) {
		struct repl_snapend e;
		uint8_t end[REPL_SNAPEND_SIZE];
		int rc = store_snap_next(tx->sn, SNAP_STEP, emit_cb, tx);

		if (rc == 1)
			continue;
		if (rc != 0) {
			*why_r = rc == STORE_IO ? "snapshot read failed"
						: "cannot encode a snapshot item (out of memory?)";
			return -1;
		}
		e.seq = tx->info.seq;
		e.items = tx->items;
		e.next_userid = tx->info.next_userid;
		e.next_mboxid = tx->info.next_mboxid;
		e.uidvalidity = tx->info.uidvalidity;
		repl_wire_snapend_encode(&e, end);
		if (evbuffer_add(out, end, sizeof(end)) != 0) {
			*why_r = "out of memory";
			return -1;
		}
		tx->bytes += sizeof(end);
		tx->done = true;
		store_snap_end(&tx->sn);	/* the pages it pinned go */
	}
	return tx->done ? 0 : 1;
}

uint64_t repl_snap_tx_bytes(const struct repl_snap_tx *tx)
{
	return tx->bytes;
}

void repl_snap_tx_free(struct repl_snap_tx **txp)
{
	struct repl_snap_tx *tx = *txp;

	if (tx == NULL)
		return;
	*txp = NULL;
	store_snap_end(&tx->sn);
	free(tx);
}

/* ==== receiving ============================================================ */

struct repl_snap_rx {
	char dir[CONFIG_PATH_MAX + 96];
	char origin[STORE_POP_MAX];
	struct store *st;
	struct store_snap_info info;
	bool mirror;
	struct repl_limits lim;
	struct repl_snap_rx_cbs cbs;
	void *arg;
	struct evbuffer *acc;
	size_t want;			/* bytes of the frame being waited for */
	/* the batch being collected; items point into frames */
	struct store_snap_item items[RX_BATCH_ITEMS];
	uint8_t *frames[RX_BATCH_ITEMS];
	size_t n, batch_bytes;
	uint64_t inflight_bytes;	/* frame bytes of the batch being loaded */
	uint64_t received, taken, durable;
	bool loading, finishing, got_end, eof;
	bool failed, complete, closing;
};

void repl_rmdir_flat(const char *dir)
{
	char path[CONFIG_PATH_MAX + 200];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (d != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(dir);
}

static void batch_drop(struct repl_snap_rx *rx)
{
	for (size_t i = 0; i < rx->n; i++)
		free(rx->frames[i]);
	rx->n = rx->batch_bytes = 0;
}

/* Done, once; nothing of rx may be touched after (the owner may free it). */
static void rx_done(struct repl_snap_rx *rx, int err, const char *why)
{
	rx->cbs.done(rx->arg, err, why);
}

static void rx_fail(struct repl_snap_rx *rx, const char *why)
{
	if (rx->failed || rx->complete)
		return;
	rx->failed = true;
	batch_drop(rx);
	evbuffer_drain(rx->acc, evbuffer_get_length(rx->acc));
	log_warn("repl.snapshot_load_failed", "origin=%s dir=%s error=\"%s\"", rx->origin, rx->dir,
		 why);
	rx_done(rx, -1, why);
}

static void rx_parse(struct repl_snap_rx *rx);

static void finished_cb(int err, void *arg)
{
	struct repl_snap_rx *rx = arg;

	rx->finishing = false;
	if (rx->closing || rx->failed)
		return;
	if (err != STORE_OK) {
		rx_fail(rx, store_strerror(err));
		return;
	}
	store_close(&rx->st);	/* from its own callback: allowed */
	rx->complete = true;
	log_info("repl.snapshot_loaded", "origin=%s dir=%s seq=%llu items=%llu bytes=%llu",
		 rx->origin, rx->dir, (unsigned long long)rx->info.seq,
		 (unsigned long long)rx->received, (unsigned long long)rx->taken);
	rx_done(rx, 0, NULL);
}

static void loaded_cb(int err, void *arg)
{
	struct repl_snap_rx *rx = arg;

	rx->loading = false;
	if (rx->closing || rx->failed)
		return;
	if (err != STORE_OK) {
		rx_fail(rx, store_strerror(err));
		return;
	}
	rx->durable += rx->inflight_bytes;
	rx->inflight_bytes = 0;
	/* the owner calls repl_snap_rx_input, which goes on parsing (and
	 * may end in done: rx is not touched after this) */
	rx->cbs.progress(rx->arg, rx->durable);
}

/* Submit the batch if none is in flight; finish after the last. */
static void rx_submit(struct repl_snap_rx *rx)
{
	if (rx->loading || rx->finishing || rx->failed)
		return;
	if (rx->n > 0) {
		rx->loading = true;
		rx->inflight_bytes = rx->batch_bytes;
		store_snap_load(rx->st, rx->items, rx->n, loaded_cb, rx);
		batch_drop(rx);	/* the store copied it */
		return;
	}
	if (rx->got_end) {
		rx->finishing = true;
		store_snap_finish(rx->st, &rx->info, rx->mirror, finished_cb, rx);
	}
}

static void take(struct repl_snap_rx *rx, struct evbuffer *in, bool all)
{
	size_t limit = rx->want > ACC_MAX ? rx->want : ACC_MAX;

	if (in == NULL)
		return;
	if (all || evbuffer_get_length(rx->acc) < limit) {
		size_t before = evbuffer_get_length(rx->acc);

		evbuffer_add_buffer(rx->acc, in);
		rx->taken += evbuffer_get_length(rx->acc) - before;
	}
}

/* Decode what acc holds into the batch, as far as the batch allows. */
static void rx_parse(struct repl_snap_rx *rx)
{
	while (!rx->failed && !rx->got_end) {
		size_t have = evbuffer_get_length(rx->acc), need, used;
		const uint8_t *hdr;
		struct repl_frame f;
		const char *why;
		uint8_t *frame;

		if (have < REPL_FRAME_HDR) {
			if (rx->eof) {
				rx_fail(rx, "snapshot ended before its end frame");
				return;
			}
			break;
		}
		hdr = evbuffer_pullup(rx->acc, REPL_FRAME_HDR);
		need = hdr != NULL ? repl_wire_frame_size(hdr, have, &rx->lim) : SIZE_MAX;
		if (need == SIZE_MAX) {
			rx_fail(rx, "malformed snapshot frame");
			return;
		}
		if (have < need) {
			if (rx->eof) {
				rx_fail(rx, "snapshot ended inside a frame");
				return;
			}
			rx->want = need;
			break;
		}
		rx->want = 0;
		if (rx->n >= RX_BATCH_ITEMS || rx->batch_bytes >= RX_BATCH_BYTES)
			break;	/* wait for the batch in flight */
		frame = malloc(need);
		if (frame == NULL) {
			rx_fail(rx, "out of memory");
			return;
		}
		evbuffer_remove(rx->acc, frame, need);
		if (repl_wire_decode(frame, need, &rx->lim, &f, &used, &why) != 1) {
			free(frame);
			rx_fail(rx, why != NULL ? why : "malformed snapshot frame");
			return;
		}
		if (f.kind == REPL_SNAP_END) {
			free(frame);
			if (f.end.seq != rx->info.seq || f.end.items != rx->received) {
				rx_fail(rx, "the end frame's position or count does not match");
				return;
			}
			rx->info.items = f.end.items;
			rx->info.next_userid = f.end.next_userid;
			rx->info.next_mboxid = f.end.next_mboxid;
			rx->info.uidvalidity = f.end.uidvalidity;
			rx->got_end = true;
			break;
		}
		if (f.kind != REPL_SNAP_BODY && f.kind != REPL_SNAP_ITEM) {
			free(frame);
			rx_fail(rx, "not a snapshot frame");
			return;
		}
		{
			struct store_snap_item *it = &rx->items[rx->n];

			memset(it, 0, sizeof(*it));
			it->type = (enum store_snap_type)f.snap.type;
			it->a = f.snap.a;
			it->b = f.snap.b;
			it->c = f.snap.c;
			it->data = f.snap.data;
			it->data_len = f.snap.data_len;
			memcpy(it->hash, f.snap.hash, REPL_HASH_LEN);
			it->body = f.snap.body;
			it->body_len = f.snap.body_len;
			if (f.snap.flags & REPL_SF_META) {
				it->meta = f.snap.meta;
				it->meta_len = f.snap.meta_len;
			}
			rx->frames[rx->n++] = frame;
			rx->batch_bytes += need;
			rx->received++;
		}
	}
	if (rx->failed)
		return;
	if (rx->got_end && evbuffer_get_length(rx->acc) > 0) {
		rx_fail(rx, "bytes after the snapshot's end frame");
		return;
	}
	rx_submit(rx);
}

struct repl_snap_rx *repl_snap_rx_new(struct node *n, const char *dir, const char *origin,
				      const struct store_snap_info *hdr, bool mirror,
				      const struct repl_limits *lim,
				      const struct repl_snap_rx_cbs *cbs, void *arg,
				      const char **why_r)
{
	struct repl_snap_rx *rx = calloc(1, sizeof(*rx));
	struct store_opts so = {
		.map_size = n->cfg->map_size, .origin = origin,
		.batch_max = n->cfg->commit_batch_max, .base = n->base,
	};

	if (rx == NULL) {
		*why_r = "out of memory";
		return NULL;
	}
	if (strlen(dir) >= sizeof(rx->dir) || strlen(origin) >= sizeof(rx->origin)) {
		free(rx);
		*why_r = "path too long";
		return NULL;
	}
	strcpy(rx->dir, dir);
	strcpy(rx->origin, origin);
	rx->info = *hdr;
	rx->mirror = mirror;
	rx->lim = *lim;
	rx->cbs = *cbs;
	rx->arg = arg;
	rx->acc = evbuffer_new();
	if (rx->acc == NULL) {
		free(rx);
		*why_r = "out of memory";
		return NULL;
	}
	repl_rmdir_flat(dir);	/* a half-loaded leftover */
	so.dir = rx->dir;
	if (mkdir(dir, 0700) != 0) {
		*why_r = "cannot create the snapshot's directory";
		evbuffer_free(rx->acc);
		free(rx);
		return NULL;
	}
	if (store_open(&rx->st, &so, why_r) < 0) {
		repl_rmdir_flat(dir);
		evbuffer_free(rx->acc);
		free(rx);
		return NULL;
	}
	log_info("repl.snapshot_loading", "origin=%s dir=%s seq=%llu generation=%s", origin, dir,
		 (unsigned long long)hdr->seq, hdr->generation);
	return rx;
}

void repl_snap_rx_input(struct repl_snap_rx *rx, struct evbuffer *in)
{
	if (rx->failed || rx->complete)
		return;
	take(rx, in, false);
	rx_parse(rx);
}

void repl_snap_rx_eof(struct repl_snap_rx *rx, struct evbuffer *in)
{
	if (rx->failed || rx->complete)
		return;
	take(rx, in, true);
	rx->eof = true;
	rx_parse(rx);
}

uint64_t repl_snap_rx_bytes(const struct repl_snap_rx *rx)
{
	return rx->taken;
}

void repl_snap_rx_free(struct repl_snap_rx **rxp)
{
	struct repl_snap_rx *rx = *rxp;

	if (rx == NULL)
		return;
	*rxp = NULL;
	rx->closing = true;
	store_close(&rx->st);	/* its callbacks see closing */
	batch_drop(rx);
	if (!rx->complete)
		repl_rmdir_flat(rx->dir);
	evbuffer_free(rx->acc);
	free(rx);
}
