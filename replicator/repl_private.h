/*
 * repl_private.h - what the replicator's files need from each other:
 * repl_status.c and repl_noc.c from replicator.c, replicator.c from
 * repl_noc.c.
 */
#ifndef POPNODE_REPL_PRIVATE_H
#define POPNODE_REPL_PRIVATE_H

struct node;
struct store;

/* The store holding origin's data here: this POP's own store for its own
 * id, else the mirror of origin (opened if DATA_DIR/mirror/ORIGIN
 * exists).  NULL if there is none. */
struct store *replicator_store_of(struct node *n, const char *origin);
/* A snapshot of origin is being loaded here to replace this copy: it
 * must not take failover writes meanwhile. */
bool replicator_copy_busy(struct node *n, const char *origin);
/* The mirror set to publish (failover.h), in slot order: a slot's leaving
 * mirror while its new one is still being filled (it has the complete
 * copy), else the slot's mirror.  Ids valid until the set changes. */
size_t replicator_published(struct node *n, const char **out, size_t max);

/* repl_noc.c: register GET /v1/repl/digest and GET /v1/repl/lag on the
 * link (replicator_init; repl_noc.h). */
void repl_noc_init(struct node *n);

#endif
