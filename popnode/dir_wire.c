/*
 * dir_wire.c - directory records as text lines (format in dir_wire.h).
 *
 * The decoder takes the line apart field by field, each into a bounded
 * buffer, and checks every field against the same rules the encoder
 * checks before it writes: what one POP sends, another accepts, and
 * nothing else.  Names and hashes are checked with directory.h's rules;
 * POP ids with the control socket's (dir_valid_pop in directory.h; the
 * codec needs no more than directory.c), except that "-" stands for "no
 * home" and is never a POP id.
 */
#include "dir_wire.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "directory.h"

#define NFIELDS 9
#define NUM_MAX 20		/* digits of 2^64-1 */

/* ctl_valid_pop's rule, but "-" means "none" here and is no POP id. */
static bool valid_pop(const char *s)
{
	return strcmp(s, "-") != 0 && dir_valid_pop(s);
}

static bool valid_hash(const char *s)
{
	return strnlen(s, STORE_HASH_MAX) < STORE_HASH_MAX && dir_hash_acceptable(s);
}

/* The rules both directions share. */
static bool rec_valid(const struct store_dir_rec *r)
{
	if (r->version == 0 || r->lseq == 0 || !valid_pop(r->origin) ||
	    strnlen(r->u.name, STORE_NAME_MAX) >= STORE_NAME_MAX ||
	    !dir_valid_username(r->u.name))
		return false;
	if (strnlen(r->u.home, STORE_POP_MAX) >= STORE_POP_MAX ||
	    (r->u.home[0] != '\0' && !valid_pop(r->u.home)))
		return false;
	return r->deleted || valid_hash(r->u.pwhash);
}

int dir_wire_encode(const struct store_dir_rec *r, char *buf, size_t sz)
{
	int n;

	if (r == NULL || buf == NULL || !rec_valid(r))
		return -1;
	n = snprintf(buf, sz, "%" PRIu64 " %s %" PRIu64 " %s %s %d %" PRIu64 " %d %s\n",
		     r->version, r->origin, r->lseq, r->u.name,
		     r->u.home[0] != '\0' ? r->u.home : "-",
		     !r->deleted && r->u.enabled ? 1 : 0, r->deleted ? 0 : r->u.quota,
		     r->deleted ? 1 : 0, r->deleted ? "-" : r->u.pwhash);
	if (n < 0 || (size_t)n >= sz)
		return -1;
	return n;
}

/* Decimal without sign or leading zeros, 0..2^64-1. */
static bool parse_u64(const char *s, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t len = strlen(s);

	if (len == 0 || len > NUM_MAX || (len > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*v_r = v;
	return true;
}

static bool parse_bit(const char *s, bool *v_r)
{
	if (strcmp(s, "0") != 0 && strcmp(s, "1") != 0)
		return false;
	*v_r = s[0] == '1';
	return true;
}

static int decode(const char *line, size_t len, struct store_dir_rec *r)
{
	/* widest field: the hash */
	char f[NFIELDS][STORE_HASH_MAX];
	const char *p, *end, *sp;
	size_t i, flen;
	uint64_t num;

	if (line == NULL || len == 0)
		return -1;
	if (line[len - 1] == '\n')
		len--;
	if (len == 0 || len >= DIR_WIRE_LINE_MAX || memchr(line, '\0', len) != NULL)
		return -1;
	p = line;
	end = line + len;
	for (i = 0; i < NFIELDS; i++) {
		/* the last field runs to the end: a space inside fails its check */
		sp = i + 1 < NFIELDS ? memchr(p, ' ', (size_t)(end - p)) : NULL;
		if (i + 1 < NFIELDS && sp == NULL)
			return -1;	/* a field missing */
		if (sp == NULL)
			sp = end;
		flen = (size_t)(sp - p);
		if (flen == 0 || flen >= sizeof(f[i]))
			return -1;	/* empty (two spaces in a row) or too long */
		memcpy(f[i], p, flen);
		f[i][flen] = '\0';
		p = sp + 1;
	}

	if (!parse_u64(f[0], &r->version) || !parse_u64(f[2], &r->lseq))
		return -1;
	if (strlen(f[1]) >= sizeof(r->origin) || strlen(f[3]) >= sizeof(r->u.name) ||
	    strlen(f[4]) >= sizeof(r->u.home))
		return -1;
	strcpy(r->origin, f[1]);
	strcpy(r->u.name, f[3]);
	if (strcmp(f[4], "-") != 0)
		strcpy(r->u.home, f[4]);
	if (!parse_bit(f[5], &r->u.enabled) || !parse_u64(f[6], &num) ||
	    !parse_bit(f[7], &r->deleted))
		return -1;
	r->u.quota = num;
	if (r->deleted) {
		if (strcmp(f[8], "-") != 0)
			return -1;
		r->u.enabled = false;	/* meaningless in a tombstone */
		r->u.quota = 0;
	} else {
		strcpy(r->u.pwhash, f[8]);	/* f[8] < STORE_HASH_MAX bytes */
	}
	return rec_valid(r) ? 0 : -1;
}

int dir_wire_decode(const char *line, size_t len, struct store_dir_rec *r)
{
	if (r == NULL)
		return -1;
	memset(r, 0, sizeof(*r));
	if (decode(line, len, r) == 0)
		return 0;
	memset(r, 0, sizeof(*r));	/* nothing half-parsed is left */
	return -1;
}
