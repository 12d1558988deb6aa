/*
 * imap_utf7.h - modified UTF-7 (RFC 3501 5.1.3) <-> UTF-8 for mailbox
 * names.  libc only; no allocation (the caller gives the output buffer).
 *
 * Decoding is strict, so that every name has exactly one wire form:
 *   - printable US-ASCII (0x20..0x7e) stands for itself, except '&';
 *   - "&-" is '&';
 *   - "&" base64 (alphabet A-Z a-z 0-9 + ',') "-" is UTF-16BE; the base64
 *     must be non-empty, end on a whole 16-bit unit with zero padding bits,
 *     hold no unpaired surrogate, and must not encode printable US-ASCII
 *     (which has to be written directly); two shifted runs must not be
 *     adjacent ("&AOQ-&AOQ-" must be written "&AOQA5A-"); U+0000 is
 *     refused (U+0001..U+001F and U+007F may be shifted: whether a name
 *     may hold control characters is the caller's decision);
 *   - any other byte (raw control characters, 8-bit bytes) is an error.
 * Encoding takes valid UTF-8 (no overlong forms, no surrogates, at most
 * U+10FFFF, no NUL) and produces that canonical form, so
 * decode(encode(x)) == x and encode(decode(y)) == y for every valid y.
 */
#ifndef IMAPPROXY_IMAP_UTF7_H
#define IMAPPROXY_IMAP_UTF7_H

#include <stdbool.h>
#include <stddef.h>

/* Worst-case output sizes (without the NUL) for an input of len bytes. */
#define IMAP_UTF7_DECODED_MAX(len) ((len) * 2)
#define IMAP_UTF7_ENCODED_MAX(len) ((len) * 4 + 1)	/* "\x01&" -> "&AAE-&-" */

/* Decode mUTF-7 in[0..len) to UTF-8 in out (size bytes, including room
 * for a NUL, which is written).  0 with *out_len_r set, or -1 if the input
 * is not valid modified UTF-7 or out is too small. */
int imap_utf7_decode(const char *in, size_t len, char *out, size_t size, size_t *out_len_r);

/* Encode UTF-8 in[0..len) to mUTF-7 in out (NUL-terminated).  0 with
 * *out_len_r set, or -1 if the input is not valid UTF-8 (or contains a
 * NUL) or out is too small. */
int imap_utf7_encode(const char *in, size_t len, char *out, size_t size, size_t *out_len_r);

/* true if in[0..len) is valid UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
bool imap_utf8_valid(const char *in, size_t len);

#endif
