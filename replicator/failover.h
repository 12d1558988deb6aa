/*
 * failover.h - serving a user whose home POP is down from a mirror
 * (docs/failover.md).
 *
 * Every POP publishes its current mirror set (the replicator's chosen
 * mirrors, in slot order) to every peer over the link
 * (POST /v1/repl/mirrors); each POP keeps the sets it learned, also on
 * disk (DATA_DIR/mirrorsets), so it knows where a home's users can be
 * served while that home is down, even after a restart of its own.
 *
 * Routing a session (tunnel.c) or a delivery (forward.c) for a user
 * homed at H: H first; if H cannot be reached, the first reachable
 * mirror in H's published order.  A mirror asked to serve for H passes
 * the request on to H when it can still reach H, else serves it from its
 * mirror store of H (replicator_store_of).
 */
#ifndef REPLICATOR_FAILOVER_H
#define REPLICATOR_FAILOVER_H

#include <stdbool.h>
#include <stddef.h>

struct node;
struct store;

#define FAILOVER_TARGETS 3		/* the home and its two mirrors */
#define FAILOVER_HDR "x-popnode-failover-for"	/* the failed home, on a request */

/* Register the link handler, load DATA_DIR/mirrorsets, start publishing.
 * 0, or -1 (out of memory). */
int failover_init(struct node *n);
void failover_fini(struct node *n);

/* origin's published mirror set, in its order (at most max ids, each
 * valid until the next set arrives: copy it).  0 if none is known. */
size_t failover_mirrors_of(struct node *n, const char *origin, const char **out, size_t max);

/* Where to send a session or delivery of a user homed at home: home
 * first, then its published mirrors (this POP included, if it is one).
 * Returns how many ids were written to out (at most FAILOVER_TARGETS). */
size_t failover_targets(struct node *n, const char *home, const char **out);

/* The mirror store of home held here, if it has data, and home is not
 * reachable from here (force: even if the link says it is, because home
 * did not answer).  NULL otherwise.  Also makes IMAP sessions on it see
 * each other's changes. */
struct store *failover_store(struct node *n, const char *home, bool force);

#endif
