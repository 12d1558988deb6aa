/*
 * sasl_plain.h - the SASL PLAIN mechanism (RFC 4616), server side: decode
 * and validate one base64 client response "authzid NUL authcid NUL passwd".
 * Shared by POP3 (AUTH PLAIN, RFC 5034) and IMAP (AUTHENTICATE PLAIN).
 *
 * Policy: authcid and passwd must not be empty; authzid must be empty or
 * equal to authcid (ASCII case-insensitive): nobody may log in as someone
 * else.  Each field is at most SASL_PLAIN_FIELD_MAX bytes.  Base64 is
 * strict (RFC 4648 section 4): standard alphabet, length a multiple of 4,
 * '=' only as final padding, unused bits zero, no blanks or line breaks.
 * No dependencies beyond libc.
 */
#ifndef IMAPPROXY_SASL_PLAIN_H
#define IMAPPROXY_SASL_PLAIN_H

#include <stddef.h>

#define SASL_PLAIN_FIELD_MAX 255
/* Largest decoded message: three full fields and two NULs. */
#define SASL_PLAIN_MSG_MAX (3 * SASL_PLAIN_FIELD_MAX + 2)
/* Largest base64 form of that (1024). */
#define SASL_PLAIN_B64_MAX (((SASL_PLAIN_MSG_MAX + 2) / 3) * 4)

enum sasl_plain_result {
	SASL_PLAIN_OK = 0,
	SASL_PLAIN_ERR_TOO_LONG,	/* input or a field over its limit */
	SASL_PLAIN_ERR_BASE64,		/* not strict base64 */
	SASL_PLAIN_ERR_FORMAT,		/* not exactly two NUL separators */
	SASL_PLAIN_ERR_EMPTY,		/* empty authcid or passwd */
	SASL_PLAIN_ERR_AUTHZID,		/* authzid differs from authcid */
};

struct sasl_plain {
	char authzid[SASL_PLAIN_FIELD_MAX + 1];	/* NUL-terminated, may be "" */
	char authcid[SASL_PLAIN_FIELD_MAX + 1];
	char passwd[SASL_PLAIN_FIELD_MAX + 1];
};

/* Decode the base64 response b64 (len bytes, no CRLF) into *p.  Returns
 * SASL_PLAIN_OK or an error; on error *p is wiped.  Either way, call
 * sasl_plain_wipe(p) when done with the password. */
int sasl_plain_decode(const char *b64, size_t len, struct sasl_plain *p);

/* Overwrite *p with zeros (explicit_bzero: not optimised away). */
void sasl_plain_wipe(struct sasl_plain *p);

/* Short human text for a result. */
const char *sasl_plain_strerror(int result);

/* Strict base64 decode of in (len bytes) into out (outsz bytes).
 * 0 with *out_len_r set, -1 if the input is not strict base64 or the
 * output does not fit.  The empty string decodes to 0 bytes. */
int sasl_base64_decode(const char *in, size_t len, unsigned char *out, size_t outsz,
		       size_t *out_len_r);

#endif
