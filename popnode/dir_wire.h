/*
 * dir_wire.h - directory records (store.h's struct store_dir_rec) as text
 * lines for the POP-to-POP directory sync.  No I/O: a line in, a record
 * out, and back.
 *
 * One record per line, nine fields separated by exactly one space:
 *
 *   version origin lseq name home enabled quota deleted pwhash\n
 *
 * version, lseq: decimal 1..2^64-1; quota: decimal 0..2^64-1 (no sign,
 * no leading zeros); origin, home: POP ids (1-63 of A-Z a-z 0-9 . _ -,
 * as the control socket accepts them, except "-" alone, which as home
 * means "none": a live user without a home, or a tombstone whose home
 * was unknown); name: a user name (dir_valid_username); enabled,
 * deleted: 0 or 1; pwhash last, a hash dir_hash_acceptable accepts, or
 * "-" in a tombstone (deleted 1).  lseq is the sender's local sequence
 * of the record (its watermark for store_dir_apply's peer_lseq).
 */
#ifndef POPNODE_DIR_WIRE_H
#define POPNODE_DIR_WIRE_H

#include <stddef.h>

#include "store.h"

/* Longest line, "\n" included: 3 x 20 digits, 3 x 63 ids and name, 2
 * flags, a 255-byte hash, 8 spaces. */
#define DIR_WIRE_LINE_MAX 515

/* Write r as one line, "\n" and a terminating NUL included, into buf
 * (sz bytes; DIR_WIRE_LINE_MAX + 1 always suffices).  Returns the
 * line's length without the NUL, or -1 if r is not a valid record (the
 * same rules as decode: what encode writes, decode accepts) or buf is
 * too small.  A tombstone's pwhash, quota and enabled are written as
 * "-", 0 and 0. */
int dir_wire_encode(const struct store_dir_rec *r, char *buf, size_t sz);

/* Parse one line of len bytes (with or without its final "\n"; no NUL
 * needed) into *r: r->lseq = the sender's lseq, u.home "" for "-", a
 * tombstone's pwhash "", quota 0, enabled false; u.id, used, messages,
 * created 0.  0, or -1 (r zeroed) if any field is malformed or out of
 * range, a field is missing or extra, or a separator is not exactly one
 * space. */
int dir_wire_decode(const char *line, size_t len, struct store_dir_rec *r);

#endif
