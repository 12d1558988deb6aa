/*
 * store_snapshot_int.h - what store_generation.c (the generation),
 * store_trim.c (trimming the changelog), store_snapshot.c (reading a
 * snapshot; the small helper) and store_snapshot_load.c (loading one,
 * replacing a store's environment) share.  Nobody else includes it.
 */
#ifndef POPNODE_STORE_SNAPSHOT_INT_H
#define POPNODE_STORE_SNAPSHOT_INT_H

#include <stddef.h>

#include "store_private.h"

/* ---- store_snapshot.c ---- */

/* prefix then origin (origin_len bytes, no NUL) into buf; its length. */
size_t snap_prefixed_key(char *buf, const char *prefix, const char *origin, size_t origin_len);

/* ---- store_generation.c ---- */

/* The generation in txn: STORE_OK (hex set), STORE_NOTFOUND (hex ""), STORE_IO. */
int snap_gen_get(struct store *st, MDB_txn *txn, char hex[STORE_GEN_HEX]);
/* Write hex (checked by store_generation_check) as the generation. */
int snap_gen_put(struct store *st, MDB_txn *txn, const char *hex);

#endif
