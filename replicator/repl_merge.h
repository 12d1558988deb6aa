/*
 * repl_merge.h - a returning home takes back what its mirrors changed
 * while they served for it (docs/failover.md, "Return").
 *
 * A mirror M that served for X wrote into its mirror store of X: those
 * changes are X's changelog records in M's store after M's applied
 * position B ("failover records", seq B+1..L).  Mirror side:
 *
 *   GET /v1/repl/failover?origin=X&after=S   (asked by X itself)
 *     200, x-popnode-base: B, x-popnode-last: L, body: record frames
 *     (repl_wire.h, bodies always included) for seq S+1.., at most
 *     REPL_BATCH_RECORDS records or REPL_BATCH_BYTES bytes; S below B
 *     counts as B.  404 when M holds no store of X.
 *
 * Home side: repl_merge_start() fetches M's failover records batch by
 * batch and merges each into the home's store (store_merge_changes, with
 * the merged position kept in the same transaction); done says when all
 * is in.  M's copy is then replaced by a snapshot from the home, sent
 * with x-popnode-merged-seq: L (M refuses a snapshot or a stream over
 * failover records not taken back), and the merge state is dropped
 * (repl_merge_forget) once M's position shows no failover records.
 */
#ifndef REPLICATOR_REPL_MERGE_H
#define REPLICATOR_REPL_MERGE_H

#include <stdbool.h>
#include <stdint.h>

struct node;
struct repl_merge;

/* Register the mirror-side handler.  0, or -1. */
int repl_merge_init(struct node *n);

typedef void repl_merge_done_cb(void *arg, bool ok, const char *why);

/* Take back mirror's failover records of this POP, base..last as its
 * position answer said.  done runs once (never inside this call): ok
 * when everything up to last (or more, if the mirror had more) is merged
 * and durable here.  NULL (done never called) if out of memory. */
struct repl_merge *repl_merge_start(struct node *n, const char *mirror, uint64_t base,
				    uint64_t last, repl_merge_done_cb *done, void *arg);
/* Stop early (shutdown): done is not called; what was merged stays. */
void repl_merge_cancel(struct repl_merge **m);

/* The mirror's copy no longer holds failover records (it was replaced):
 * drop what this POP kept of a merge with it (store_merge_end).  Until
 * then a merge asked again continues where the last one stopped. */
void repl_merge_forget(struct node *n, const char *mirror);

#endif
