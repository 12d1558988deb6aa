/*
 * replicator.h - shipping this POP's changelog to its mirrors, applying
 * other POPs' changelogs here, and the lag figures (docs/replication.md).
 *
 * Origin side: for each chosen mirror (config "mirrors", else the two
 * nearest peers by link RTT with hysteresis) one long-lived
 * POST /v1/repl/stream carries changelog records (repl_wire.h) from the
 * position the mirror reported (GET /v1/repl/position); the mirror
 * answers "applied SEQ" lines once durable.  Mirror side: each origin's
 * data lives in a store of its own, DATA_DIR/mirror/ORIGIN, opened on
 * first contact and written only by store_apply_changes.
 */
#ifndef POPNODE_REPLICATOR_H
#define POPNODE_REPLICATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct node;
struct evbuffer;

#define REPL_MIRRORS 2			/* mirrors per origin */
#define REPL_BATCH_RECORDS 256		/* records per store_apply_changes */
#define REPL_BATCH_BYTES (4u << 20)	/* frame bytes per batch, about */
#define REPL_HEARTBEAT_MS 1000		/* heartbeat when idle */
#define REPL_STREAM_TIMEOUT 10		/* seconds of silence that end a stream */
#define REPL_RETRY_MS 1000		/* before reconnecting a failed stream */
#define REPL_SWITCH_RATIO 0.8		/* a candidate this much nearer ... */
#define REPL_SWITCH_SECONDS 30		/* ... for this long replaces a mirror */

/* Register the link handlers and start the timers.  0, or -1 (out of
 * memory). */
int replicator_init(struct node *n);
/* A group commit of this POP's store is durable: ship its records now
 * (the store's commit observer calls this). */
void replicator_committed(struct node *n);
/* Stop: timers and streams go (before link_free). */
void replicator_fini(struct node *n);
/* Close the mirror stores (their last callbacks run) and free the rest;
 * after the event loop ended. */
void replicator_free(struct node *n);

enum repl_state {
	REPL_DOWN,			/* no stream; retried every REPL_RETRY_MS */
	REPL_CONNECTING,		/* asking the position, opening the stream */
	REPL_STREAMING,
	REPL_SNAPSHOTTING,		/* sending the mirror a snapshot first */
};
const char *replicator_state_name(enum repl_state s);

/* One mirror of this POP, in the manner of pg_stat_replication. */
struct repl_mirror_info {
	char peer[64];
	bool pinned;			/* named by "mirrors" */
	enum repl_state state;
	int64_t since;			/* unix time of the last state change */
	uint64_t last_seq;		/* this POP's changelog end */
	uint64_t sent_seq;		/* written to the stream */
	uint64_t applied_seq;		/* durable (= applied) at the mirror */
	uint64_t records_behind;	/* last_seq - applied_seq */
	uint64_t bytes_behind;		/* estimate, see docs/replication.md */
	double seconds_behind;		/* age of the oldest record not acked */
	int64_t last_ack_ms;		/* unix ms of the last ack, 0 never */
	uint64_t records_sent, bytes_sent, bodies_sent, reconnects;
	char last_error[128];
	uint64_t first_seq;		/* this POP's oldest changelog record held
					 * (trimmed + 1) */
	uint64_t snapshot_seq;		/* REPL_SNAPSHOTTING: its position */
	uint64_t snapshot_bytes_sent;	/* ... frame bytes written to the stream */
	uint64_t snapshot_bytes_durable;	/* ... of which the mirror made durable */
	uint64_t snapshot_bytes_total;	/* ... estimate of all of it (LMDB pages) */
	uint64_t snapshots;		/* snapshots the mirror loaded, since start */
};

/* One origin mirrored here. */
struct repl_origin_info {
	char origin[64];
	bool connected;			/* its stream is open */
	uint64_t applied_seq;		/* durable here */
	uint64_t origin_seq;		/* its changelog end, as last heard */
	int64_t last_record;		/* origin time of the last record applied, 0 none */
	int64_t last_contact_ms;	/* unix ms of the last frame, 0 never */
	uint64_t records_applied, batches_applied;
	char last_error[128];
	bool snapshotting;		/* loading a snapshot the origin sends */
	uint64_t snapshot_bytes;	/* ... bytes received so far */
	uint64_t snapshots_loaded;	/* since start */
	char generation[33];		/* of the copy, "" unknown */
};

/* Fill up to max entries; returns how many (chosen mirrors, in slot
 * order; origins that ever spoke to this POP or have a store here). */
size_t replicator_mirrors(struct node *n, struct repl_mirror_info *out, size_t max);
size_t replicator_origins(struct node *n, struct repl_origin_info *out, size_t max);

/* May this POP serve its own users (LMTP RCPT, IMAP/POP3 login, a
 * tunnel or forwarded delivery for them)?  false while the start-up
 * check against the mirrors runs or the store is being rebuilt from a
 * mirror (docs/replication.md "Generation and the lost disk"); *why_r
 * (may be NULL) says which.  true without a replicator (unit tests). */
bool replicator_serving_ready(struct node *n, const char **why_r);

/* Renderings (repl_status.c). */
/* One line for `popctl status`: "serving:     ...\n" (the start-up check
 * against the mirrors). */
void replicator_render_serving_text(struct node *n, struct evbuffer *out);
/* `popctl lag`: TAB-separated rows with a header, mirrors then origins. */
void replicator_render_lag(struct node *n, struct evbuffer *out);
/* {"mirrors": [...], "origins": [...]} (popctl lag --json). */
void replicator_render_lag_json(struct node *n, struct evbuffer *out);
/* The /status "replication" array (mirrors) and "replication_origins". */
void replicator_render_status_json(struct node *n, struct evbuffer *out);
/* popnode_replication_* families. */
void replicator_render_metrics(struct node *n, struct evbuffer *out);
/* `popctl mirror list ORIGIN`: per user and mailbox, the message count,
 * uidnext and a digest of (uid, flags, keywords, body hash) of every
 * message, from the mirror of origin here, or this POP's own store when
 * origin is this POP.  0, or -1 with *why_r (no such mirror here). */
int replicator_render_content(struct node *n, const char *origin, struct evbuffer *out,
			      const char **why_r);

#endif
