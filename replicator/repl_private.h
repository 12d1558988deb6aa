/*
 * repl_private.h - what repl_status.c needs from replicator.c.
 */
#ifndef POPNODE_REPL_PRIVATE_H
#define POPNODE_REPL_PRIVATE_H

struct node;
struct store;

/* The store holding origin's data here: this POP's own store for its own
 * id, else the mirror of origin (opened if DATA_DIR/mirror/ORIGIN
 * exists).  NULL if there is none. */
struct store *replicator_store_of(struct node *n, const char *origin);

#endif
