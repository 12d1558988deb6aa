/*
 * imap_arena.h - a bump allocator for everything one parsed IMAP command
 * owns (strings, argument arrays, search trees, sequence sets), freed in
 * one call.  libc only.
 *
 * Memory comes in blocks that double in size (first block 1 KiB unless
 * asked otherwise, never above 64 KiB per block except for a single
 * allocation larger than that, which gets its own block).  Nothing is
 * freed individually.  Allocations are aligned for any object type.
 */
#ifndef IMAPPROXY_IMAP_ARENA_H
#define IMAPPROXY_IMAP_ARENA_H

#include <stddef.h>

struct imap_arena;

/* A new empty arena whose first block will be about first_block bytes
 * (0 = default).  NULL if out of memory. */
struct imap_arena *imap_arena_new(size_t first_block);

/* Free every block and the arena; sets *a to NULL; accepts NULL. */
void imap_arena_destroy(struct imap_arena **a);

/* n bytes (n may be 0), aligned to max_align_t, uninitialised.  NULL if
 * out of memory or if n is absurd (> SIZE_MAX / 2). */
void *imap_arena_alloc(struct imap_arena *a, size_t n);

/* As imap_arena_alloc, zero-filled. */
void *imap_arena_zalloc(struct imap_arena *a, size_t n);

/* Copy of len bytes of p followed by a NUL.  NULL if out of memory. */
char *imap_arena_strndup(struct imap_arena *a, const char *p, size_t len);

/* Bytes handed out so far (for tests and accounting). */
size_t imap_arena_used(const struct imap_arena *a);

#endif
