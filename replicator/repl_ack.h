/*
 * repl_ack.h - replication_ack = mirror: holding an LMTP 250 (also the
 * home's answer to a forwarded delivery) or an IMAP APPEND OK until a
 * mirror has applied the changelog records of the commit
 * (docs/replication.md "Durability: replication_ack").
 *
 * After the store's callback said durable, the caller asks to wait for
 * seq = store_changelog_last(store, own node_id) (every record of its op
 * is <= that).  The waiter sits in a queue ordered by seq; the shipper
 * reports each mirror's "applied SEQ" (repl_ack_advance) and wakes every
 * waiter up to it.  Nothing blocks: a waiter is a callback.
 *
 * Degraded: a mirror counts as in sync once it acknowledged the end of
 * the changelog (a mirror catching up a backlog does not), and stays so
 * while it streams.  When no mirror in sync has acknowledged anything
 * for replication_ack_timeout (a heartbeat brings an ack every second),
 * the node is degraded: logged (event=repl.degraded), counted, shown in
 * /status and popctl status, and every waiter is released, as later
 * waits are at once, with what replication_degraded says (accept:
 * answer as local durability; tempfail: 451 / NO).  The first ack of a
 * mirror in sync ends it (event=repl.recovered).
 *
 * Not applicable (answered at once, REPL_ACK_LOCAL): replication_ack
 * local, or a node without peers (no mirror can exist).
 *
 * All on the event loop thread.
 */
#ifndef POPNODE_REPL_ACK_H
#define POPNODE_REPL_ACK_H

#include <stdbool.h>
#include <stdint.h>

struct node;
struct evbuffer;
struct repl_ack_waiter;

enum repl_ack_result {
	REPL_ACK_LOCAL,		/* no mirror needed (ack=local, no peers) */
	REPL_ACK_ACKED,		/* a mirror applied the records */
	REPL_ACK_DEGRADED,	/* no mirror in reach; replication_degraded accept */
	REPL_ACK_TEMPFAIL,	/* no mirror in reach; replication_degraded tempfail,
				 * or out of memory: answer 451 / NO [UNAVAILABLE] */
};

/* "local", "acked", "degraded", "tempfail" (logs). */
const char *repl_ack_result_name(enum repl_ack_result r);

/* r allows a success answer (everything but REPL_ACK_TEMPFAIL). */
static inline bool repl_ack_ok(enum repl_ack_result r)
{
	return r != REPL_ACK_TEMPFAIL;
}

/* Set up n->repl_ack from n->cfg (replication_ack, _timeout,
 * replication_degraded, peers) on n->base.  0, or -1 out of memory. */
int repl_ack_init(struct node *n);
/* The node stops (the shippers are gone): every waiter is released as
 * in degraded state (reason "shutdown"), and later waits are answered
 * at once so.  Accepts n->repl_ack NULL. */
void repl_ack_fini(struct node *n);
/* Free it (after the store's last callbacks); sets n->repl_ack NULL. */
void repl_ack_free(struct node *n);

typedef void repl_ack_cb(void *arg, enum repl_ack_result r);

/* Wait until a mirror applied seq.  Returns a handle, and cb is called
 * once later (never from inside this call) unless the waiter is
 * cancelled first; or returns NULL, with the answer in *now_r, when
 * there is nothing to wait for (not applicable, already acknowledged,
 * degraded, stopped, out of memory).  n->repl_ack NULL: REPL_ACK_LOCAL. */
struct repl_ack_waiter *repl_ack_wait(struct node *n, uint64_t seq, repl_ack_cb *cb, void *arg,
				      enum repl_ack_result *now_r);
/* The same for "what this node's store has committed so far": seq is
 * store_changelog_last(n->store, node_id), read only when a wait
 * applies.  Call it from a store callback that said durable. */
struct repl_ack_waiter *repl_ack_wait_commit(struct node *n, repl_ack_cb *cb, void *arg,
					     enum repl_ack_result *now_r);
/* The waiter's owner goes away: cb is never called.  Sets *w NULL;
 * accepts NULL. */
void repl_ack_cancel(struct repl_ack_waiter **w);

/* From the shipper (repl_ship.c).  A mirror's stream started or ended
 * streaming. */
void repl_ack_mirror_state(struct node *n, const char *mirror, bool streaming);
/* A mirror acknowledged seq as applied (durable there); last is this
 * POP's changelog end now (seq >= last: the mirror is in sync). */
void repl_ack_advance(struct node *n, const char *mirror, uint64_t seq, uint64_t last);

/* For status: a copy of the figures. */
struct repl_ack_info {
	const char *mode;		/* "local" or "mirror" */
	const char *degraded_policy;	/* "accept" or "tempfail" */
	const char *state;		/* "ok", "degraded", "no-mirrors" (no peer
					 * configured: not applicable), "off"
					 * (replication_ack local), "stopped" */
	int64_t since;			/* unix time of the last state change */
	unsigned timeout_ms;
	uint64_t acked_seq;		/* highest seq a mirror acknowledged */
	unsigned in_sync;		/* mirrors in sync now */
	unsigned waiting;		/* waiters queued now */
	uint64_t waits_acked, waits_degraded, waits_tempfail, waits_cancelled;
	uint64_t degraded_total;	/* times the node entered degraded */
	char reason[160];		/* why the last state change */
};
void repl_ack_info(struct node *n, struct repl_ack_info *i);

/* The /status object "replication_ack": {...} (no trailing newline or
 * comma, first line not indented). */
void repl_ack_render_status_json(struct node *n, struct evbuffer *out);
/* The popnode_replication_ack_* families. */
void repl_ack_render_metrics(struct node *n, struct evbuffer *out);
/* One line for `popctl status`: "replication: ...\n". */
void repl_ack_render_text(struct node *n, struct evbuffer *out);

#endif
