/*
 * imap_utf7.c - modified UTF-7 (RFC 3501 5.1.3) <-> UTF-8.
 *
 * Decoding walks the input once: direct characters are copied, each
 * "&...-" run is base64-decoded (alphabet with ',' instead of '/') into
 * UTF-16BE units that are paired into code points and written as UTF-8.
 * Everything that would give a second spelling of the same name is
 * refused (see imap_utf7.h), so names compare bytewise after decoding.
 * Encoding is the exact inverse.  The output buffer is the caller's; every
 * write is bounds-checked.
 */
#include <stdint.h>
#include <string.h>

#include "imap_utf7.h"

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

/* Append code point cp as UTF-8; -1 if it does not fit (keeping room for
 * the final NUL). */
static int put_utf8(char *out, size_t size, size_t *o, uint32_t cp)
{
	unsigned char b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | (cp >> 6));
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | (cp >> 12));
		b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | (cp >> 18));
		b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	if (size == 0 || *o + n > size - 1)
		return -1;
	memcpy(out + *o, b, n);
	*o += n;
	return 0;
}

int imap_utf7_decode(const char *in, size_t len, char *out, size_t size, size_t *out_len_r)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, o = 0;
	bool prev_shift = false;	/* the previous element was a base64 run */

	if (size == 0)
		return -1;
	while (i < len) {
		unsigned char c = s[i];
		if (c != '&') {
			if (c < 0x20 || c > 0x7e)
				return -1;
			if (o + 1 > size - 1)
				return -1;
			out[o++] = (char)c;
			i++;
			prev_shift = false;
			continue;
		}
		i++;
		if (i < len && s[i] == '-') {
			if (o + 1 > size - 1)
				return -1;
			out[o++] = '&';
			i++;
			prev_shift = false;
			continue;
		}
		if (prev_shift)
			return -1;	/* two adjacent runs: not canonical */
		uint32_t bits = 0;
		unsigned nbits = 0;
		uint32_t high = 0;	/* pending high surrogate */
		size_t units = 0;
		for (;;) {
			if (i >= len)
				return -1;	/* no closing '-' */
			if (s[i] == '-') {
				i++;
				break;
			}
			int v = b64val(s[i]);
			if (v < 0)
				return -1;
			i++;
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			if (nbits < 16)
				continue;
			nbits -= 16;
			uint32_t u = (bits >> nbits) & 0xffff;
			bits &= (1u << nbits) - 1;
			units++;
			if (high != 0) {
				if (u < 0xdc00 || u > 0xdfff)
					return -1;
				uint32_t cp = 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00);
				high = 0;
				if (put_utf8(out, size, &o, cp) < 0)
					return -1;
				continue;
			}
			if (u >= 0xd800 && u <= 0xdbff) {
				high = u;
				continue;
			}
			if (u >= 0xdc00 && u <= 0xdfff)
				return -1;
			if (u == 0 || (u >= 0x20 && u <= 0x7e))
				return -1;	/* NUL, or must be direct */
			if (put_utf8(out, size, &o, u) < 0)
				return -1;
		}
		/* non-empty, whole units, zero padding, no dangling surrogate */
		if (units == 0 || nbits >= 6 || bits != 0 || high != 0)
			return -1;
		prev_shift = true;
	}
	out[o] = '\0';
	*out_len_r = o;
	return 0;
}

/* Next code point of strict UTF-8 at s[*i..len); -1 if invalid. */
static int32_t next_cp(const unsigned char *s, size_t len, size_t *i)
{
	unsigned char c = s[*i];
	uint32_t cp;
	size_t n;

	if (c < 0x80) {
		(*i)++;
		return c;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		cp = c & 0x1f;
		n = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		cp = c & 0x0f;
		n = 2;
	} else if (c >= 0xf0 && c <= 0xf4) {
		cp = c & 0x07;
		n = 3;
	} else {
		return -1;
	}
	if (len - *i <= n)
		return -1;
	for (size_t k = 1; k <= n; k++) {
		unsigned char d = s[*i + k];
		if ((d & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (d & 0x3f);
	}
	if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*i += n + 1;
	return (int32_t)cp;
}

bool imap_utf8_valid(const char *in, size_t len)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (next_cp(s, len, &i) < 0)
			return false;
	}
	return true;
}

struct enc {
	char *out;
	size_t size, o;
	uint32_t bits;
	unsigned nbits;
	bool in_run;
};

static int enc_put(struct enc *e, char c)
{
	if (e->o + 1 > e->size - 1)
		return -1;
	e->out[e->o++] = c;
	return 0;
}

static int enc_unit(struct enc *e, uint32_t u)
{
	e->bits = (e->bits << 16) | u;
	e->nbits += 16;
	while (e->nbits >= 6) {
		e->nbits -= 6;
		if (enc_put(e, b64chars[(e->bits >> e->nbits) & 0x3f]) < 0)
			return -1;
	}
	e->bits &= (1u << e->nbits) - 1;
	return 0;
}

static int enc_close(struct enc *e)
{
	if (!e->in_run)
		return 0;
	if (e->nbits > 0 && enc_put(e, b64chars[(e->bits << (6 - e->nbits)) & 0x3f]) < 0)
		return -1;
	e->bits = 0;
	e->nbits = 0;
	e->in_run = false;
	return enc_put(e, '-');
}

int imap_utf7_encode(const char *in, size_t len, char *out, size_t size, size_t *out_len_r)
{
	const unsigned char *s = (const unsigned char *)in;
	struct enc e = { .out = out, .size = size };
	size_t i = 0;

	if (size == 0)
		return -1;
	while (i < len) {
		int32_t cp = next_cp(s, len, &i);
		if (cp <= 0)
			return -1;	/* invalid UTF-8 or NUL */
		if (cp >= 0x20 && cp <= 0x7e) {
			if (enc_close(&e) < 0 || enc_put(&e, (char)cp) < 0)
				return -1;
			if (cp == '&' && enc_put(&e, '-') < 0)
				return -1;
			continue;
		}
		if (!e.in_run) {
			if (enc_put(&e, '&') < 0)
				return -1;
			e.in_run = true;
		}
		if (cp >= 0x10000) {
			uint32_t v = (uint32_t)cp - 0x10000;
			if (enc_unit(&e, 0xd800 | (v >> 10)) < 0 ||
			    enc_unit(&e, 0xdc00 | (v & 0x3ff)) < 0)
				return -1;
		} else if (enc_unit(&e, (uint32_t)cp) < 0) {
			return -1;
		}
	}
	if (enc_close(&e) < 0)
		return -1;
	out[e.o] = '\0';
	*out_len_r = e.o;
	return 0;
}
