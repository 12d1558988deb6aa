/*
 * imap_decode.h - streaming decoders for searching message text (SEARCH
 * BODY/TEXT, imap_search.h): the base64 and quoted-printable content
 * transfer encodings (RFC 2045 6.7, 6.8), single-byte charsets to UTF-8,
 * and a simple caseless fold of UTF-8.
 *
 * Every decoder takes its input one chunk at a time and keeps what it
 * needs between chunks in a small state struct, so a body part of any
 * size is decoded with a fixed amount of memory, chunk boundaries may fall
 * anywhere (inside a base64 quantum, a "=XX" escape, a soft line break, a
 * UTF-8 sequence), and the caller may stop after any chunk.  No
 * allocation, no I/O, libc only.
 *
 * Malformed input is decoded leniently, never rejected (a search must
 * still find the readable words around the damage):
 *   - base64: characters outside the alphabet are skipped (line ends and
 *     white space silently, others counted in `bad`); '=' ends a quantum
 *     (the bits of an incomplete quantum are dropped) and decoding goes on
 *     after it, so concatenated encodings work; a truncated last quantum
 *     gives the whole bytes it holds.
 *   - quoted-printable: "=XX" with hex digits of either case is a byte;
 *     "=" followed by optional spaces/tabs and a line end (CRLF, LF or a
 *     bare CR) is a soft line break; any other "=" sequence is kept as
 *     it is (counted in `bad`; white space after such a "=" is kept up to
 *     IMAP_QP_WS_MAX bytes, more is dropped); "=" with optional white
 *     space at the very end of the part is a soft line break (the line
 *     end before a multipart boundary belongs to the boundary); an "=X"
 *     cut off by the end of the part is written by imap_qp_finish().
 *     Trailing white space of lines is kept (harmless for a substring
 *     search).
 */
#ifndef IMAPPROXY_IMAP_DECODE_H
#define IMAPPROXY_IMAP_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room that out must have for decoding n input bytes (base64 or
 * quoted-printable), and for imap_qp_finish (n = 0). */
#define IMAP_DECODE_OUT_MAX(n) ((n) + 32)

/* ---- base64 ------------------------------------------------------------- */

struct imap_b64 {
	uint32_t bits;		/* pending bits, right-aligned */
	unsigned nbits;		/* 0..7 */
	uint64_t bad;		/* characters skipped that are not white space */
};

void imap_b64_init(struct imap_b64 *d);

/* Decode n bytes at in into out (room for IMAP_DECODE_OUT_MAX(n) bytes;
 * at most (6 * n + 7) / 8 are written: each byte is written as soon as its
 * bits are in).  Returns the bytes written.  No finish call is needed. */
size_t imap_b64_decode(struct imap_b64 *d, const void *in, size_t n, void *out);

/* ---- quoted-printable --------------------------------------------------- */

#define IMAP_QP_WS_MAX 16

struct imap_qp {
	uint8_t state;		/* private */
	uint8_t hex;		/* the first character of "=X" */
	uint8_t nws;		/* white space kept after "=" */
	char ws[IMAP_QP_WS_MAX];
	uint64_t bad;		/* "=" sequences that were neither escapes nor
				 * soft line breaks */
};

void imap_qp_init(struct imap_qp *d);

/* Decode n bytes at in into out (room for IMAP_DECODE_OUT_MAX(n) bytes).
 * Returns the bytes written. */
size_t imap_qp_decode(struct imap_qp *d, const void *in, size_t n, void *out);

/* End of the part: write what a cut-off "=X" left pending (room for
 * IMAP_DECODE_OUT_MAX(0) bytes); returns the bytes written.  The decoder
 * is ready for a new part afterwards. */
size_t imap_qp_finish(struct imap_qp *d, void *out);

/* ---- charsets ----------------------------------------------------------- */

enum imap_charset {
	IMAP_CS_UTF8,		/* UTF-8 and US-ASCII: bytes as they are */
	IMAP_CS_UNKNOWN,	/* any other name: bytes as they are */
	IMAP_CS_LATIN1,		/* ISO-8859-1 (0x80-0x9f read as
				 * Windows-1252, as browsers do: mail
				 * labelled Latin-1 with those bytes is
				 * Windows-1252 in practice) */
	IMAP_CS_LATIN9,		/* ISO-8859-15 */
	IMAP_CS_CP1252,		/* Windows-1252 */
};

/* The charset called name[0..len) (case-insensitive; an RFC 2231 "*lang"
 * suffix is ignored).  Known: utf-8, utf8, us-ascii, ascii, us,
 * ansi_x3.4-1968, iso-8859-1 / iso8859-1 / iso_8859-1 / latin1 / latin-1 /
 * l1 / cp819, iso-8859-15 / iso8859-15 / iso_8859-15 / latin9 / latin-9 /
 * l9, windows-1252 / cp1252 / x-cp1252. */
enum imap_charset imap_charset_lookup(const char *name, size_t len);

/* Whether text in cs is searched as it is (no conversion). */
bool imap_charset_is_raw(enum imap_charset cs);

/* Convert n bytes in the single-byte charset cs to UTF-8 into out (room
 * for 3 * n bytes); a raw charset is copied.  Returns the bytes written.
 * Stateless: chunks may be cut anywhere. */
size_t imap_charset_to_utf8(enum imap_charset cs, const void *in, size_t n, void *out);

/* ---- caseless fold ------------------------------------------------------- */

/* Folds UTF-8 text so that a byte comparison is caseless: ASCII A-Z and
 * the upper-case letters of Latin-1, Latin Extended-A, Greek and Cyrillic
 * (U+00C0-U+047F) become their lower-case forms (Unicode simple case
 * folding restricted to those blocks; final sigma folds to sigma, U+0130
 * and U+017F are left alone).  Each of those letters and its folded form
 * take two bytes, so the output is exactly as long as the input.  Other
 * bytes, invalid sequences included, are copied. */
struct imap_fold {
	uint8_t lead;		/* a lead byte waiting for its continuation */
};

void imap_fold_init(struct imap_fold *f);

/* Fold n bytes into out (room for n + 1 bytes: a lead byte kept from the
 * previous call may come out); returns the bytes written.  out may not
 * overlap in. */
size_t imap_fold_utf8(struct imap_fold *f, const void *in, size_t n, void *out);

/* End of the text: write a pending lead byte (room for 1 byte); returns
 * 0 or 1. */
size_t imap_fold_finish(struct imap_fold *f, void *out);

/* The simple fold of one code point (identity outside the set above). */
uint32_t imap_fold_cp(uint32_t cp);

#endif
