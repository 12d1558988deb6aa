/*
 * imap_seqset.c - IMAP sequence sets: parse into sorted merged ranges with
 * a symbolic '*' part, and resolve against a mailbox's largest number.
 *
 * Parsing is one pass over the elements (numbers and ranges) into an
 * array sized by the number of commas, then qsort and a merge: O(n log n)
 * whatever the client sends.  All resolution (resolve, count, contains,
 * iteration) goes through one range iterator that merges the star range
 * [min(star_lo, max), max] into the clipped concrete ranges on the fly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>

#include "imap_arena.h"
#include "imap_seqset.h"

size_t imap_seqset_span(const char *p, size_t len)
{
	size_t i = 0;

	while (i < len && ((p[i] >= '0' && p[i] <= '9') || p[i] == ':' || p[i] == ',' ||
			   p[i] == '*' || p[i] == '$'))
		i++;
	return i;
}

/* One element: number or '*'.  *v = UINT32_MAX + 1 for '*'. */
static int parse_num(const char *p, size_t len, size_t *i, uint64_t *v, const char **error_r)
{
	if (*i < len && p[*i] == '*') {
		(*i)++;
		*v = (uint64_t)UINT32_MAX + 1;
		return 0;
	}
	if (*i < len && p[*i] == '$') {
		*error_r = "$ (SEARCHRES) not supported";
		return -1;
	}
	if (*i >= len || p[*i] < '0' || p[*i] > '9') {
		*error_r = "Invalid sequence set";
		return -1;
	}
	uint64_t n = 0;
	while (*i < len && p[*i] >= '0' && p[*i] <= '9') {
		n = n * 10 + (uint64_t)(p[*i] - '0');
		if (n > UINT32_MAX) {
			*error_r = "Sequence number too large";
			return -1;
		}
		(*i)++;
	}
	if (n == 0) {
		*error_r = "Sequence number 0";
		return -1;
	}
	*v = n;
	return 0;
}

static int range_cmp(const void *a, const void *b)
{
	const struct imap_range *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return 0;
}

struct imap_seqset *imap_seqset_parse(const char *p, size_t len, struct imap_arena *a,
				      const char **error_r)
{
	size_t elems = 1;

	if (len == 0) {
		*error_r = "Invalid sequence set";
		return NULL;
	}
	for (size_t i = 0; i < len; i++)
		if (p[i] == ',')
			elems++;
	struct imap_seqset *s = imap_arena_zalloc(a, sizeof(*s));
	struct imap_range *r = imap_arena_alloc(a, elems * sizeof(*r));
	if (s == NULL || r == NULL) {
		*error_r = "Out of memory";
		return NULL;
	}
	const uint64_t star = (uint64_t)UINT32_MAX + 1;
	size_t n = 0, i = 0;
	s->star_lo = UINT32_MAX;
	for (;;) {
		uint64_t x, y;
		if (parse_num(p, len, &i, &x, error_r) < 0)
			return NULL;
		y = x;
		if (i < len && p[i] == ':') {
			i++;
			if (parse_num(p, len, &i, &y, error_r) < 0)
				return NULL;
		}
		if (x == star || y == star) {
			uint64_t lo = x < y ? x : y;	/* the non-star end, or star */
			s->star = true;
			if (lo != star && lo < s->star_lo)
				s->star_lo = (uint32_t)lo;
		} else {
			r[n].lo = (uint32_t)(x < y ? x : y);
			r[n].hi = (uint32_t)(x < y ? y : x);
			n++;
		}
		if (i == len)
			break;
		if (p[i] != ',') {
			*error_r = "Invalid sequence set";
			return NULL;
		}
		i++;
	}
	if (n > 1)
		qsort(r, n, sizeof(*r), range_cmp);
	/* merge overlapping and adjacent ranges */
	size_t m = 0;
	for (size_t k = 0; k < n; k++) {
		if (m > 0 && (uint64_t)r[k].lo <= (uint64_t)r[m - 1].hi + 1) {
			if (r[k].hi > r[m - 1].hi)
				r[m - 1].hi = r[k].hi;
		} else {
			r[m++] = r[k];
		}
	}
	s->r = r;
	s->n = m;
	if (!s->star)
		s->star_lo = 0;
	return s;
}

/* ---- resolution ------------------------------------------------------ */

static void ranges_init(struct imap_seqset_iter *it, const struct imap_seqset *s, uint32_t max)
{
	it->s = s;
	it->max = max;
	it->i = 0;
	it->done = false;
	it->have = false;
	it->cur = 0;
	it->hi = 0;
	if (s->star && max > 0) {
		it->star_a = s->star_lo < max ? s->star_lo : max;
		it->star_b = max;
	} else {
		it->star_a = 1;
		it->star_b = 0;
	}
}

/* Next resolved range, ascending. */
static bool ranges_next(struct imap_seqset_iter *it, struct imap_range *out)
{
	const struct imap_seqset *s = it->s;

	if (it->done)
		return false;
	bool conc = it->i < s->n && s->r[it->i].lo <= it->max;
	if (it->star_a <= it->star_b) {
		if (conc && (uint64_t)s->r[it->i].hi + 1 < it->star_a) {
			*out = s->r[it->i++];
			return true;
		}
		/* the star range absorbs every remaining clipped range */
		out->lo = conc && s->r[it->i].lo < it->star_a ? s->r[it->i].lo : it->star_a;
		out->hi = it->star_b;
		it->done = true;
		return true;
	}
	if (!conc) {
		it->done = true;
		return false;
	}
	*out = s->r[it->i++];
	if (out->hi > it->max)
		out->hi = it->max;
	return true;
}

size_t imap_seqset_resolve(const struct imap_seqset *s, uint32_t max, struct imap_range *out)
{
	struct imap_seqset_iter it;
	size_t n = 0;

	ranges_init(&it, s, max);
	while (ranges_next(&it, &out[n]))
		n++;
	return n;
}

uint64_t imap_seqset_count(const struct imap_seqset *s, uint32_t max)
{
	struct imap_seqset_iter it;
	struct imap_range r;
	uint64_t c = 0;

	ranges_init(&it, s, max);
	while (ranges_next(&it, &r))
		c += (uint64_t)r.hi - r.lo + 1;
	return c;
}

bool imap_seqset_contains(const struct imap_seqset *s, uint32_t max, uint32_t x)
{
	if (x == 0 || x > max)
		return false;
	if (s->star && x >= (s->star_lo < max ? s->star_lo : max))
		return true;
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (x < s->r[mid].lo)
			hi = mid;
		else if (x > s->r[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

uint32_t imap_seqset_max_number(const struct imap_seqset *s)
{
	return s->n > 0 ? s->r[s->n - 1].hi : 0;
}

void imap_seqset_iter_init(struct imap_seqset_iter *it, const struct imap_seqset *s,
			   uint32_t max)
{
	ranges_init(it, s, max);
}

bool imap_seqset_iter_next(struct imap_seqset_iter *it, uint32_t *x_r)
{
	if (!it->have || it->cur > it->hi) {
		struct imap_range r;
		if (!ranges_next(it, &r)) {
			it->have = false;
			return false;
		}
		it->have = true;
		it->cur = r.lo;
		it->hi = r.hi;
	}
	*x_r = (uint32_t)it->cur++;
	return true;
}

size_t imap_seqset_format(const struct imap_seqset *s, char *buf, size_t size)
{
	size_t o = 0;
	char tmp[32];

	if (size > 0)
		buf[0] = '\0';
	for (size_t i = 0; i <= s->n; i++) {
		int k;
		if (i < s->n) {
			if (s->r[i].lo == s->r[i].hi)
				k = snprintf(tmp, sizeof(tmp), "%s%u", o ? "," : "", s->r[i].lo);
			else
				k = snprintf(tmp, sizeof(tmp), "%s%u:%u", o ? "," : "", s->r[i].lo,
					     s->r[i].hi);
		} else if (s->star) {
			if (s->star_lo == UINT32_MAX)
				k = snprintf(tmp, sizeof(tmp), "%s*", o ? "," : "");
			else
				k = snprintf(tmp, sizeof(tmp), "%s%u:*", o ? "," : "", s->star_lo);
		} else {
			break;
		}
		for (int j = 0; j < k; j++, o++)
			if (o + 1 < size) {
				buf[o] = tmp[j];
				buf[o + 1] = '\0';
			}
	}
	return o;
}
