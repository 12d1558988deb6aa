/*
 * imap_seqset.h - IMAP sequence sets (RFC 3501 sequence-set, also used for
 * UID sets): parsing, and turning a set into concrete numbers once the
 * mailbox is known.  libc only.
 *
 * A parsed set is kept as a sorted list of disjoint, non-adjacent closed
 * ranges of concrete numbers plus, symbolically, the part that involves
 * '*' (which means "the largest number in use": the highest message
 * sequence number, or the highest UID, of the selected mailbox, 0 if it is
 * empty):
 *   - "*"      -> star, star_lo = UINT32_MAX   (the set holds {max})
 *   - "n:*" or "*:n" -> star, star_lo = n      (holds min(n,max)..max)
 * Several star ranges keep the smallest star_lo.  With max = 0 (an empty
 * mailbox) the star part is empty, so "1:*" resolves to nothing.
 * Reversed ranges "5:2" are the same as "2:5" (RFC 3501 6.4.8 / 9).
 * Concrete numbers beyond max are simply not in the resolved set; the
 * session decides whether that is an error (RFC 3501 says it is for message
 * sequence numbers, not for UIDs) with imap_seqset_max_number().
 *
 * Errors: an empty set, 0, a number above 4294967295, leading '+'/'-',
 * "$" (SEARCHRES, not supported), junk between elements.
 */
#ifndef IMAPPROXY_IMAP_SEQSET_H
#define IMAPPROXY_IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct imap_arena;

struct imap_range {
	uint32_t lo, hi;		/* 1 <= lo <= hi */
};

struct imap_seqset {
	const struct imap_range *r;	/* sorted, disjoint, non-adjacent */
	size_t n;
	bool star;			/* the set has a '*' part */
	uint32_t star_lo;		/* with star: see above */
};

/* Parse the sequence-set in p[0..len) exactly (the whole input must be a
 * set: the caller cuts the token at SP / ')' first).  The set and its
 * ranges live in arena a.  Returns the set, or NULL with *error_r set to a
 * static message ("Invalid sequence set", "Sequence number 0", "Sequence
 * number too large", "$ (SEARCHRES) not supported", "Out of memory"). */
struct imap_seqset *imap_seqset_parse(const char *p, size_t len, struct imap_arena *a,
				      const char **error_r);

/* Byte length of the longest prefix of p[0..len) made only of characters
 * that can appear in a sequence set (digits, ':', ',', '*', '$').  Used by
 * the command parser to cut the token. */
size_t imap_seqset_span(const char *p, size_t len);

/* true if x (>= 1) is in the set once '*' means max. */
bool imap_seqset_contains(const struct imap_seqset *s, uint32_t max, uint32_t x);

/* The concrete set for a mailbox whose largest number is max: writes the
 * ranges, sorted, disjoint and non-adjacent, every number in 1..max, into
 * out, which must have room for s->n + 1 ranges; returns how many. */
size_t imap_seqset_resolve(const struct imap_seqset *s, uint32_t max, struct imap_range *out);

/* How many numbers the resolved set holds (see imap_seqset_resolve). */
uint64_t imap_seqset_count(const struct imap_seqset *s, uint32_t max);

/* The largest concrete number in the set: concrete ranges only, not the
 * star part ("5:*" counts nothing; RFC 3501 9 makes "5:*" on 3 messages
 * mean "3:5"), 0 if none.  A message-sequence set is out of range if this exceeds the
 * number of messages. */
uint32_t imap_seqset_max_number(const struct imap_seqset *s);

/* Ascending iteration over the resolved set without allocating:
 *	struct imap_seqset_iter it;
 *	uint32_t x;
 *	imap_seqset_iter_init(&it, set, max);
 *	while (imap_seqset_iter_next(&it, &x)) ...
 * The set must not change during the iteration. */
struct imap_seqset_iter {	/* fields are private */
	const struct imap_seqset *s;
	uint32_t max;
	size_t i;		/* next concrete range */
	uint32_t star_a, star_b; /* resolved star range; star_a > star_b: none */
	bool done;		/* no more ranges */
	bool have;		/* cur/hi hold a range being walked */
	uint64_t cur;
	uint32_t hi;
};
void imap_seqset_iter_init(struct imap_seqset_iter *it, const struct imap_seqset *s,
			   uint32_t max);
bool imap_seqset_iter_next(struct imap_seqset_iter *it, uint32_t *x_r);

/* Write the set in canonical IMAP form ("1:3,7,9:*") into buf (size
 * bytes, NUL-terminated).  Returns the length it needs (like snprintf);
 * the output is truncated if that is >= size. */
size_t imap_seqset_format(const struct imap_seqset *s, char *buf, size_t size);

#endif
