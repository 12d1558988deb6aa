/*
 * mime_int.h - what the files of the MIME structure parser share:
 * mime_parse.c (the scan, the records, mime_parse()), mime_value.c
 * (header values and parameters), mime_addr.c (address lists) and
 * mime_blob.c (the blob writer and the checked decoder).  Nobody else
 * includes it; the public API is mime.h.
 */
#ifndef POPNODE_MIME_INT_H
#define POPNODE_MIME_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mime.h"

#define BLOB_MAGIC "PMIM"	/* first bytes of a blob */
#define REC_F_ENVELOPE 0x01	/* record flag: an envelope follows */

/* ---- growable byte buffer ------------------------------------------------ */

struct wbuf {
	uint8_t *p;
	size_t len;
	size_t cap;
	bool failed;
};

/* Make room for n more bytes; false (and w->failed) if memory ran out. */
bool mime_wb_reserve(struct wbuf *w, size_t n);

static inline void mime_wb_put(struct wbuf *w, const void *d, size_t n)
{
	if (n == 0 || (n > w->cap - w->len && !mime_wb_reserve(w, n)))
		return;
	memcpy(w->p + w->len, d, n);
	w->len += n;
}

static inline void mime_wb_byte(struct wbuf *w, uint8_t b)
{
	if (w->len == w->cap && !mime_wb_reserve(w, 1))
		return;
	w->p[w->len++] = b;
}

/* Append a u32, little-endian. */
void mime_wb_u32(struct wbuf *w, uint32_t v);
/* Overwrite the u32 at offset at (written before). */
void mime_wb_patch32(struct wbuf *w, size_t at, uint32_t v);
/* A string: u32 length then bytes; NULL = absent. */
void mime_wb_str(struct wbuf *w, const char *s, size_t n);
/* A NUL-terminated string. */
void mime_wb_lit(struct wbuf *w, const char *s);

/* ---- character classes --------------------------------------------------- */

static inline bool mime_is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static inline unsigned char mime_lc(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* Case-insensitive ASCII comparison of n bytes. */
bool mime_mem_ieq(const char *a, const char *b, size_t n);
/* Case-insensitive ASCII comparison of s (n bytes) with lit. */
bool mime_span_ieq(const char *s, size_t n, const char *lit);

/* ---- parser state --------------------------------------------------------- */

/* Value of one field: raw bytes [start, end) after the colon up to the end
 * of its last (continuation) line, line ends inside included. */
struct hfield {
	uint32_t start;
	uint32_t end;
	bool set;
};

struct span {
	size_t off;		/* into scratch */
	size_t len;
};

struct pparam {
	struct span name;
	struct span value;
	int sect;		/* RFC 2231 section number, -1 if none */
	bool ext;		/* name ended with '*' (extended value) */
	size_t base_len;	/* name length without the 2231 suffix */
};

struct parser {
	const char *msg;
	size_t len;
	struct wbuf out;
	struct wbuf scratch;
	uint32_t n_parts;
	uint32_t n_params;
	uint32_t n_addrs;
	size_t budget;		/* string bytes still allowed (MIME_STRINGS_MAX) */
	/* boundaries of the open multiparts, outermost first */
	int nb;
	char bnd[MIME_DEPTH_MAX + 1][MIME_BOUNDARY_MAX];
	size_t bnd_len[MIME_DEPTH_MAX + 1];
	struct pparam params[MIME_PARAMS_MAX];
	size_t n_pp;
};

/* ---- mime_value.c ------------------------------------------------------------ */

/* Field f unfolded and trimmed, appended to scratch. */
struct span mime_unfold(struct parser *p, const struct hfield *f);
/* Where span s lies in scratch. */
const char *mime_sp_ptr(const struct parser *p, struct span s);
/* Write a value (NULL = absent), cut to the string budget. */
void mime_put_val(struct parser *p, const char *s, size_t n);
/* Write a token, cut to MIME_TOKEN_MAX. */
void mime_put_tok(struct parser *p, const char *s, size_t n);
/* Write field f unfolded, or absent. */
void mime_write_field(struct parser *p, const struct hfield *f);
/* Skip whitespace and comments; token end (RFC 2045). */
size_t mime_skip_cfws(const char *v, size_t i, size_t n);
size_t mime_token_end(const char *v, size_t i, size_t n);
/* Parse "; name=value ..." into p->params; write them (u32 n + pairs). */
void mime_parse_params(struct parser *p, size_t vo, size_t i, size_t n);
uint32_t mime_write_params(struct parser *p, bool add_charset);

/* ---- mime_addr.c ------------------------------------------------------------- */

/* Parse an address list field and write it (u32 n + 4 strings each). */
void mime_write_addrs(struct parser *p, const struct hfield *f);

#endif
