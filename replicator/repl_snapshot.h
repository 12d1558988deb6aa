/*
 * repl_snapshot.h - snapshots over the link and the start-up check of a
 * home against its mirrors (docs/replication.md "Snapshots",
 * "Generation and the lost disk").  Private to replicator/.
 *
 * repl_snapshot.c: a sender reads a store as a snapshot
 * (store_snap_begin/next) in bounded steps into a link stream's output,
 * as repl_wire frames, while the output is below LINK_OUTPUT_HIGH; a
 * receiver decodes the frames, loads them part by part into a fresh
 * store in a directory of its own, and closes that store once the end
 * frame's position is durable, ready to be installed (store_replace).
 *
 * repl_rebuild.c: the gate.  At start the home asks every peer for its
 * copy of the home's data (GET /v1/repl/position?probe=1), waits at most
 * replication_startup_wait, and when a mirror holds more of it than the
 * home (the home lost its disk), pulls that mirror's copy as a snapshot
 * and installs it as its own store before it serves its users.
 */
#ifndef POPNODE_REPL_SNAPSHOT_H
#define POPNODE_REPL_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "repl_wire.h"
#include "store.h"

struct evbuffer;
struct node;

#define REPL_SNAP_PATH "/v1/repl/snapshot"
#define REPL_POSITION_PATH "/v1/repl/position"
#define REPL_SNAP_TIMEOUT 60		/* seconds without a word on a snapshot stream */

/* ---- sending ----------------------------------------------------------------- */

struct repl_snap_tx;

/* Begin a snapshot of st; info_r says its position, generation and an
 * estimate of its size.  NULL on a read error or out of memory. */
struct repl_snap_tx *repl_snap_tx_new(struct store *st, struct store_snap_info *info_r);
/* Add frames to out while out holds less than LINK_OUTPUT_HIGH: 1 (more
 * to come: call again when it drained), 0 (the end frame is in: done),
 * -1 (*why_r: a read or encoding failure). */
int repl_snap_tx_fill(struct repl_snap_tx *tx, struct evbuffer *out, const char **why_r);
/* Frame bytes added so far. */
uint64_t repl_snap_tx_bytes(const struct repl_snap_tx *tx);
/* Ends the read transaction.  Sets *tx NULL; accepts NULL. */
void repl_snap_tx_free(struct repl_snap_tx **tx);

/* ---- receiving --------------------------------------------------------------- */

struct repl_snap_rx;

struct repl_snap_rx_cbs {
	/* A part is durable (bytes: snapshot bytes durable so far).  The
	 * owner must call repl_snap_rx_input from here (in: the stream's
	 * input, or NULL once the stream is gone): the receiver goes on
	 * from there.  repl_snap_rx_input and _eof may call done. */
	void (*progress)(void *arg, uint64_t bytes);
	/* Finished: err 0, the store in dir is complete, durable and closed
	 * (install it with store_replace); else why (dir is removed when
	 * the receiver is freed).  Called once; free the receiver after. */
	void (*done)(void *arg, int err, const char *why);
};

/* Load a snapshot of origin (hdr: seq and generation as the request's
 * headers say; dir_lseq as store_snap_info) into a fresh store in dir
 * (removed first if there).  mirror: the loaded store is a mirror of
 * origin (its applied position is set).  NULL with *why_r. */
struct repl_snap_rx *repl_snap_rx_new(struct node *n, const char *dir, const char *origin,
				      const struct store_snap_info *hdr, bool mirror,
				      const struct repl_limits *lim,
				      const struct repl_snap_rx_cbs *cbs, void *arg,
				      const char **why_r);
/* Take bytes out of in (a link stream's input) as far as the receiver
 * may buffer (what stays there holds the sender back through the link's
 * flow control), and decode them. */
void repl_snap_rx_input(struct repl_snap_rx *rx, struct evbuffer *in);
/* The sender ended the stream: take all of in; a snapshot without its
 * end frame then fails. */
void repl_snap_rx_eof(struct repl_snap_rx *rx, struct evbuffer *in);
/* Bytes taken so far. */
uint64_t repl_snap_rx_bytes(const struct repl_snap_rx *rx);
/* Abandon or clean up: the store is closed (no callback runs after),
 * and dir removed unless done said 0 and it was installed since.  Sets
 * *rx NULL; accepts NULL. */
void repl_snap_rx_free(struct repl_snap_rx **rx);

/* Remove a flat directory (an LMDB environment) and what is in it. */
void repl_rmdir_flat(const char *dir);

/* ---- judging a copy ---------------------------------------------------------- */

/* A peer's copy of this POP's data, as its position answer says. */
struct repl_pos {
	uint64_t applied;		/* x-popnode-applied-seq */
	uint64_t last;			/* x-popnode-last-seq (= applied if absent) */
	char gen[STORE_GEN_HEX];	/* x-popnode-generation, "" if absent */
	uint64_t dir_lseq;		/* x-popnode-dir-watermark, 0 if absent */
};

/* This POP's own store, for judging. */
struct repl_self {
	uint64_t last, trimmed;		/* changelog end, trimmed position */
	const char *gen;		/* its generation */
	bool has_mail;			/* at least one message */
	bool starting;			/* the start-up check (the gate) is running */
};

enum repl_verdict {
	REPL_V_STREAM,			/* stream from applied + 1 */
	REPL_V_SNAPSHOT,		/* send it a snapshot first */
	REPL_V_BEHIND,			/* it holds more: rebuild this POP from it */
	REPL_V_MERGE,			/* it served for this POP while it was down
					 * (records after its applied position):
					 * take those changes back (repl_merge.h),
					 * then replace it by a snapshot */
	REPL_V_HOLD,			/* it holds more, but this POP already serves
					 * without mail: neither overwrite nor
					 * rebuild (a restart rebuilds) */
};

/* What to do with a copy (docs/replication.md "Generation and the lost
 * disk").  *why_r: a static reason (for logs and status). */
enum repl_verdict repl_judge(const struct repl_self *me, const struct repl_pos *m,
			     const char **why_r);

/* Fill me from the store (starting as given).  0 or -1 (read error). */
int repl_self_read(struct store *st, const char *origin, bool starting, struct repl_self *me,
		   char gen[STORE_GEN_HEX]);

/* ---- the gate (repl_rebuild.c) --------------------------------------------------- */

struct repl_gate;

/* Start the check (no peers or replication_startup_wait 0: ready at
 * once).  NULL out of memory. */
struct repl_gate *repl_gate_new(struct node *n, const struct repl_limits *lim);
/* Stop probes and a rebuild in flight; free.  Sets *g NULL. */
void repl_gate_free(struct repl_gate **g);
/* Serving this POP's own users is allowed; else *why_r says why not. */
bool repl_gate_ready(const struct repl_gate *g, const char **why_r);
/* The start-up check found a copy of this POP's data at peer; *pos_r
 * (if not NULL) is its position answer. */
bool repl_gate_peer_copy(const struct repl_gate *g, const char *peer, struct repl_pos *pos_r);
/* Why it serves or not (for status). */
const char *repl_gate_reason(const struct repl_gate *g);
/* The /status "replication_serving" object (no newline after it). */
void repl_gate_render_json(const struct repl_gate *g, struct evbuffer *out);
/* The same for the node (replicator.c; repl_status.c renders it). */
void replicator_render_serving_json(struct node *n, struct evbuffer *out);
const char *replicator_serving_reason(struct node *n);

#endif
