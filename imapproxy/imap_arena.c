/*
 * imap_arena.c - bump allocator for one IMAP command's parse results.
 *
 * A singly linked list of blocks; allocation takes from the newest block
 * and opens a new one (double the previous size, capped) when it does not
 * fit.  An allocation larger than the cap gets a block of its own, linked
 * behind the current one so the current block keeps serving small
 * requests.  Freeing walks the list once.
 */
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_arena.h"

#define ARENA_FIRST_DEFAULT 1024
#define ARENA_BLOCK_CAP (64 * 1024)
#define ARENA_ALIGN (alignof(max_align_t))

struct arena_block {
	struct arena_block *next;
	size_t size;		/* usable bytes in data */
	size_t used;
	alignas(max_align_t) unsigned char data[];
};

struct imap_arena {
	struct arena_block *head;	/* current block (newest small block) */
	size_t next_size;
	size_t total;			/* bytes handed out */
};

struct imap_arena *imap_arena_new(size_t first_block)
{
	struct imap_arena *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->next_size = first_block ? first_block : ARENA_FIRST_DEFAULT;
	if (a->next_size > ARENA_BLOCK_CAP)
		a->next_size = ARENA_BLOCK_CAP;
	return a;
}

void imap_arena_destroy(struct imap_arena **ap)
{
	if (ap == NULL || *ap == NULL)
		return;
	struct arena_block *b = (*ap)->head;
	while (b != NULL) {
		struct arena_block *n = b->next;
		free(b);
		b = n;
	}
	free(*ap);
	*ap = NULL;
}

static struct arena_block *block_new(size_t size)
{
	struct arena_block *b = malloc(sizeof(*b) + size);

	if (b == NULL)
		return NULL;
	b->next = NULL;
	b->size = size;
	b->used = 0;
	return b;
}

void *imap_arena_alloc(struct imap_arena *a, size_t n)
{
	if (n > SIZE_MAX / 2)
		return NULL;
	size_t need = (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
	if (need == 0)
		need = ARENA_ALIGN;

	struct arena_block *b = a->head;
	if (b != NULL && b->size - b->used >= need) {
		void *p = b->data + b->used;
		b->used += need;
		a->total += n;
		return p;
	}
	if (need > ARENA_BLOCK_CAP / 2) {
		/* a block of its own, behind the current one */
		struct arena_block *big = block_new(need);
		if (big == NULL)
			return NULL;
		big->used = need;
		if (b != NULL) {
			big->next = b->next;
			b->next = big;
		} else {
			a->head = big;
		}
		a->total += n;
		return big->data;
	}
	size_t size = a->next_size;
	while (size < need)
		size *= 2;
	struct arena_block *nb = block_new(size);
	if (nb == NULL)
		return NULL;
	if (a->next_size < ARENA_BLOCK_CAP)
		a->next_size *= 2;
	nb->next = b;
	a->head = nb;
	nb->used = need;
	a->total += n;
	return nb->data;
}

void *imap_arena_zalloc(struct imap_arena *a, size_t n)
{
	void *p = imap_arena_alloc(a, n);

	if (p != NULL)
		memset(p, 0, n);
	return p;
}

char *imap_arena_strndup(struct imap_arena *a, const char *p, size_t len)
{
	if (len == SIZE_MAX)
		return NULL;
	char *s = imap_arena_alloc(a, len + 1);

	if (s == NULL)
		return NULL;
	if (len > 0)
		memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

size_t imap_arena_used(const struct imap_arena *a)
{
	return a->total;
}
