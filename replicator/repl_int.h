/*
 * repl_int.h - what the files of the replicator's core need from each
 * other (private to them; repl_private.h is what the rest of replicator/
 * may use, replicator.h the public surface):
 *
 *   replicator.c    setup, the timers (poll, tick, trim), the figures
 *   repl_ship.c     the shipper (origin side): the changelog stream and
 *                   snapshots to a mirror
 *   repl_mirrors.c  choosing the mirrors; dropping copies no longer needed
 *   repl_trim.c     trimming this POP's changelog and the mirror copies' logs
 *   repl_apply.c    the mirror side: the position, applying a stream
 *   repl_copy.c     the copy of an origin here: a snapshot loaded into it,
 *                   served from it (the origin rebuilds), dropping it
 */
#ifndef POPNODE_REPL_INT_H
#define POPNODE_REPL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "repl_snapshot.h"
#include "repl_wire.h"
#include "replicator.h"

struct event;
struct evbuffer;
struct link_request;
struct link_stream;
struct node;
struct repl_gate;
struct repl_merge;
struct repl_snap_rx;
struct repl_snap_tx;
struct store;
struct store_apply_rec;

#define POSITION_PATH REPL_POSITION_PATH
#define STREAM_PATH "/v1/repl/stream"
#define DROP_PATH "/v1/repl/drop"
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

static inline int64_t now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- repl_ship.c: the shipper ---------------------------------------------------- */

/* Set sh's state (and since; repl_ack hears whether it streams). */
void ship_state(struct shipper *sh, enum repl_state s);
/* End its streams; what was not acked is sent again on the next one. */
void ship_close(struct shipper *sh);
/* Ask the mirror's position, then stream, snapshot, merge or hold. */
void ship_connect(struct shipper *sh);
/* Write changelog records to the stream while the link takes them. */
void ship_fill(struct shipper *sh);
/* A heartbeat when nothing went out for REPL_HEARTBEAT_MS. */
void ship_heartbeat(struct shipper *sh, int64_t now);

/* ---- repl_mirrors.c: choosing the mirrors --------------------------------------- */

/* The index of peer in r->sh, -1 if it is not a configured peer. */
int mirrors_index(struct replicator *r, const char *peer);
/* Give slot s to r->sh[idx] (-1 none); its mirror, if any, is leaving. */
void mirrors_set_slot(struct replicator *r, int s, int idx);
/* Fill empty unpinned slots, move one to a nearer peer (hysteresis). */
void mirrors_choose(struct replicator *r, int64_t now);
/* Slot s's leaving mirror goes: no stream, told to drop its copy. */
void mirrors_leave(struct replicator *r, int s);
/* Copies at peers that are not mirrors: changes taken back, dropped. */
void mirrors_drop_orphans(struct replicator *r);

/* ---- repl_trim.c: trimming ------------------------------------------------------ */

/* This POP's changelog, up to what every chosen mirror holds. */
void trim_origin(struct replicator *r);
/* A mirror store's copy of its origin's log, up to what it applied. */
void trim_mirror(struct mirror_of *mo);

/* ---- repl_apply.c: the mirror side ---------------------------------------------- */

/* The mirror_of of origin, NULL if it is not a configured peer. */
struct mirror_of *mo_find(struct replicator *r, const char *origin);
/* Open DATA_DIR/mirror/ORIGIN (made only if create); 0, or -1 and *why_r. */
int mo_open(struct mirror_of *mo, bool create, const char **why_r);
/* mkdir p, 0700: 0 if made or there, else -1. */
int mo_mkdir_one(const char *p);
/* Free a batch's frames: it is empty after. */
void mo_batch_clear(struct batch *b);
/* Respond status, x-popnode-error if error, no body; s is freed. */
void mo_answer(struct link_stream *s, int status, const char *error);
/* origin's mirror_of if origin is the authenticated peer, else NULL. */
struct mirror_of *mo_req_origin(struct replicator *r, const struct link_request *req,
				const char *origin);
/* Link handlers: GET /v1/repl/position, POST /v1/repl/stream. */
void mo_serve_position(void *arg, struct link_stream *s, const struct link_request *req);
void mo_serve_stream(void *arg, struct link_stream *s, const struct link_request *req);

/* ---- repl_copy.c: snapshots into and out of a copy here ------------------------ */

/* Install a loaded snapshot over the copy (tick_cb retries it). */
void copy_install(struct mirror_of *mo);
/* The copy's log end if it holds failover changes past applied, else 0. */
uint64_t copy_failover_records(struct mirror_of *mo);
/* Stop serving a snapshot of the copy. */
void copy_tx_stop(struct mirror_of *mo);
/* Link handlers: POST and GET /v1/repl/snapshot, POST /v1/repl/drop. */
void copy_serve_snapshot(void *arg, struct link_stream *s, const struct link_request *req);
void copy_serve_drop(void *arg, struct link_stream *s, const struct link_request *req);

#endif
