/*
 * sasl_plain.c - SASL PLAIN response decoding (RFC 4616) with a strict
 * base64 decoder of its own (OpenSSL's EVP_DecodeBlock accepts blanks and
 * does not report padding, so it cannot tell a canonical encoding from a
 * sloppy one).  Everything is length-counted; the decoded message lives in
 * a stack buffer that is wiped before returning because it holds the
 * password.  libc only, so the POP3 fuzz target can include it.
 */
#include "sasl_plain.h"

#include <stdint.h>
#include <string.h>

/* 0..63 for a base64 alphabet byte, -1 otherwise. */
static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int sasl_base64_decode(const char *in, size_t len, unsigned char *out, size_t outsz,
		       size_t *out_len_r)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0;

	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		size_t pad = 0;
		int last = (i + 4 == len);

		for (size_t j = 0; j < 4; j++) {
			if (s[i + j] == '=') {
				/* padding: only in the last quantum, only in
				 * positions 2 and 3, and nothing but '=' after */
				if (!last || j < 2)
					return -1;
				pad++;
				v[j] = 0;
			} else {
				if (pad > 0)
					return -1;
				v[j] = b64_value(s[i + j]);
				if (v[j] < 0)
					return -1;
			}
		}
		/* canonical form: bits beyond the data must be zero */
		if (pad == 2 && (v[1] & 0x0f) != 0)
			return -1;
		if (pad == 1 && (v[2] & 0x03) != 0)
			return -1;

		size_t n = 3 - pad;
		if (outsz - o < n)
			return -1;
		uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) |
			     ((uint32_t)v[2] << 6) | (uint32_t)v[3];
		out[o++] = (unsigned char)(w >> 16);
		if (n > 1)
			out[o++] = (unsigned char)(w >> 8);
		if (n > 2)
			out[o++] = (unsigned char)w;
	}
	*out_len_r = o;
	return 0;
}

static int ascii_casecmp_eq(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned char ca = (unsigned char)*a, cb = (unsigned char)*b;
		if (ca >= 'A' && ca <= 'Z')
			ca = (unsigned char)(ca - 'A' + 'a');
		if (cb >= 'A' && cb <= 'Z')
			cb = (unsigned char)(cb - 'A' + 'a');
		if (ca != cb)
			return 0;
		if (ca == '\0')
			return 1;
	}
}

/* Split the decoded message into p's fields.  SASL_PLAIN_OK or error. */
static int split_message(const unsigned char *msg, size_t len, struct sasl_plain *p)
{
	const unsigned char *nul1 = memchr(msg, '\0', len);
	if (nul1 == NULL)
		return SASL_PLAIN_ERR_FORMAT;
	size_t zlen = (size_t)(nul1 - msg);
	const unsigned char *c = nul1 + 1;
	size_t rest = len - zlen - 1;
	const unsigned char *nul2 = memchr(c, '\0', rest);
	if (nul2 == NULL)
		return SASL_PLAIN_ERR_FORMAT;
	size_t clen = (size_t)(nul2 - c);
	const unsigned char *w = nul2 + 1;
	size_t wlen = rest - clen - 1;
	if (memchr(w, '\0', wlen) != NULL)
		return SASL_PLAIN_ERR_FORMAT;

	if (zlen > SASL_PLAIN_FIELD_MAX || clen > SASL_PLAIN_FIELD_MAX ||
	    wlen > SASL_PLAIN_FIELD_MAX)
		return SASL_PLAIN_ERR_TOO_LONG;
	if (clen == 0 || wlen == 0)
		return SASL_PLAIN_ERR_EMPTY;

	memcpy(p->authzid, msg, zlen);
	p->authzid[zlen] = '\0';
	memcpy(p->authcid, c, clen);
	p->authcid[clen] = '\0';
	memcpy(p->passwd, w, wlen);
	p->passwd[wlen] = '\0';

	if (zlen != 0 && !ascii_casecmp_eq(p->authzid, p->authcid))
		return SASL_PLAIN_ERR_AUTHZID;
	return SASL_PLAIN_OK;
}

int sasl_plain_decode(const char *b64, size_t len, struct sasl_plain *p)
{
	/* SASL_PLAIN_B64_MAX characters decode to at most 768 bytes, one
	 * more than a valid message can have: checked after decoding. */
	unsigned char msg[(SASL_PLAIN_B64_MAX / 4) * 3];
	size_t mlen = 0;
	int r;

	memset(p, 0, sizeof(*p));
	if (len > SASL_PLAIN_B64_MAX)
		return SASL_PLAIN_ERR_TOO_LONG;
	if (sasl_base64_decode(b64, len, msg, sizeof(msg), &mlen) < 0)
		r = SASL_PLAIN_ERR_BASE64;
	else if (mlen > SASL_PLAIN_MSG_MAX)
		r = SASL_PLAIN_ERR_TOO_LONG;
	else
		r = split_message(msg, mlen, p);
	explicit_bzero(msg, sizeof(msg));
	if (r != SASL_PLAIN_OK)
		sasl_plain_wipe(p);
	return r;
}

void sasl_plain_wipe(struct sasl_plain *p)
{
	if (p != NULL)
		explicit_bzero(p, sizeof(*p));
}

const char *sasl_plain_strerror(int result)
{
	switch (result) {
	case SASL_PLAIN_OK: return "ok";
	case SASL_PLAIN_ERR_TOO_LONG: return "response too long";
	case SASL_PLAIN_ERR_BASE64: return "invalid base64";
	case SASL_PLAIN_ERR_FORMAT: return "malformed PLAIN message";
	case SASL_PLAIN_ERR_EMPTY: return "empty user name or password";
	case SASL_PLAIN_ERR_AUTHZID: return "authorization identity not allowed";
	}
	return "SASL error";
}
