/*
 * test_sasl_plain.c - unit tests for SASL PLAIN decoding
 * (imapproxy/sasl_plain.c): the strict base64 decoder against the RFC 4648
 * vectors and every way an encoding can be sloppy, then PLAIN messages:
 * valid forms, missing or extra NULs, authzid policy, empty fields, and
 * the length limits at and past their edge.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "sasl_plain.h"

/* Plain RFC 4648 encoder, so tests can build messages containing NULs. */
static size_t b64_encode(const unsigned char *in, size_t len, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t w = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			w |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			w |= in[i + 2];
		out[o++] = tab[(w >> 18) & 63];
		out[o++] = tab[(w >> 12) & 63];
		out[o++] = i + 1 < len ? tab[(w >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? tab[w & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

/* Encode msg (mlen bytes, may contain NULs) and decode it as PLAIN. */
static int decode_raw(const char *msg, size_t mlen, struct sasl_plain *p)
{
	char b64[4096];

	assert_true(mlen < 3000);
	size_t n = b64_encode((const unsigned char *)msg, mlen, b64);
	return sasl_plain_decode(b64, n, p);
}

static int decode_str(const char *b64, struct sasl_plain *p)
{
	return sasl_plain_decode(b64, strlen(b64), p);
}

static void assert_wiped(const struct sasl_plain *p)
{
	static const struct sasl_plain zero;
	assert_memory_equal(p, &zero, sizeof(zero));
}

/* ---- base64 ------------------------------------------------------------- */

static void test_base64_vectors(void **state)
{
	static const struct {
		const char *in, *out;
	} v[] = {
		{ "", "" }, { "Zg==", "f" }, { "Zm8=", "fo" }, { "Zm9v", "foo" },
		{ "Zm9vYg==", "foob" }, { "Zm9vYmE=", "fooba" }, { "Zm9vYmFy", "foobar" },
		{ "+/+/", "\xfb\xff\xbf" },
	};
	unsigned char out[64];
	size_t n;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(sasl_base64_decode(v[i].in, strlen(v[i].in), out, sizeof(out), &n),
				 0);
		assert_int_equal(n, strlen(v[i].out));
		assert_memory_equal(out, v[i].out, n);
	}
}

static void test_base64_strict(void **state)
{
	static const char *bad[] = {
		"Zg",		/* no padding */
		"Zg=",		/* short padding */
		"Zm9vY",	/* length not a multiple of 4 */
		"Z===",		/* padding too early */
		"====",
		"Zg==Zg==",	/* padding in the middle */
		"Zh==",		/* non-zero unused bits */
		"Zm9=",		/* non-zero unused bits */
		"Zm9v\r\n",
		"Zm 9v",
		" Zm9v",
		"Zm9v ",
		"Zm9-",		/* base64url alphabet */
		"Zm9_",
		"Zm*v",
		"Zg=a",
		"Z=g=",
	};
	unsigned char out[64];
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (sasl_base64_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	/* embedded NUL */
	assert_int_equal(sasl_base64_decode("Zm\0v", 4, out, sizeof(out), &n), -1);
	/* output too small */
	assert_int_equal(sasl_base64_decode("Zm9vYmFy", 8, out, 5, &n), -1);
	assert_int_equal(sasl_base64_decode("Zm9vYmFy", 8, out, 6, &n), 0);
	assert_int_equal(n, 6);
	assert_int_equal(sasl_base64_decode("Zg==", 4, out, 0, &n), -1);
}

static void test_base64_all_bytes_roundtrip(void **state)
{
	unsigned char in[256], out[256];
	char b64[400];
	size_t n;

	for (int i = 0; i < 256; i++)
		in[i] = (unsigned char)i;
	for (size_t len = 0; len <= 256; len++) {
		size_t bl = b64_encode(in, len, b64);
		assert_int_equal(sasl_base64_decode(b64, bl, out, sizeof(out), &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(out, in, len);
	}
}

/* ---- PLAIN messages ----------------------------------------------------- */

static void test_valid(void **state)
{
	struct sasl_plain p;

	/* "\0alice\0secret", the usual form */
	assert_int_equal(decode_str("AGFsaWNlAHNlY3JldA==", &p), SASL_PLAIN_OK);
	assert_string_equal(p.authzid, "");
	assert_string_equal(p.authcid, "alice");
	assert_string_equal(p.passwd, "secret");
	sasl_plain_wipe(&p);
	assert_wiped(&p);

	assert_int_equal(decode_raw("alice\0alice\0pw", 14, &p), SASL_PLAIN_OK);
	assert_string_equal(p.authzid, "alice");
	assert_string_equal(p.authcid, "alice");
	assert_string_equal(p.passwd, "pw");

	/* case-insensitive identity */
	assert_int_equal(decode_raw("Alice\0aLICE\0pw", 14, &p), SASL_PLAIN_OK);

	/* user@domain, UTF-8 and blanks in the password pass through */
	assert_int_equal(decode_raw("\0bob@example.org\0p\xc3\xa4ss word ", 28, &p),
			 SASL_PLAIN_OK);
	assert_string_equal(p.authcid, "bob@example.org");
	assert_string_equal(p.passwd, "p\xc3\xa4ss word ");
	sasl_plain_wipe(&p);
	sasl_plain_wipe(NULL);
}

static void test_bad_base64(void **state)
{
	struct sasl_plain p;

	assert_int_equal(decode_str("AGFsaWNlAHNlY3JldA=", &p), SASL_PLAIN_ERR_BASE64);
	assert_wiped(&p);
	assert_int_equal(decode_str("AGFsaWNlAHNlY3JldA== ", &p), SASL_PLAIN_ERR_BASE64);
	assert_int_equal(decode_str("AGFsaWNl AHNlY3JldA==", &p), SASL_PLAIN_ERR_BASE64);
	assert_int_equal(decode_str("AGFsaWNlAHNlY3JldB==", &p), SASL_PLAIN_ERR_BASE64);
	assert_int_equal(decode_str("*", &p), SASL_PLAIN_ERR_BASE64);
	assert_int_equal(decode_str("=", &p), SASL_PLAIN_ERR_BASE64);
	assert_int_equal(sasl_plain_decode("AGFs\0WNlAHNlY3JldA==", 20, &p), SASL_PLAIN_ERR_BASE64);
}

static void test_missing_nuls(void **state)
{
	struct sasl_plain p;

	/* empty response */
	assert_int_equal(sasl_plain_decode("", 0, &p), SASL_PLAIN_ERR_FORMAT);
	assert_int_equal(decode_raw("alicesecret", 11, &p), SASL_PLAIN_ERR_FORMAT);
	assert_wiped(&p);
	assert_int_equal(decode_raw("alice\0secret", 12, &p), SASL_PLAIN_ERR_FORMAT);
	assert_wiped(&p);
	assert_int_equal(decode_raw("\0", 1, &p), SASL_PLAIN_ERR_FORMAT);
	/* one NUL too many */
	assert_int_equal(decode_raw("\0alice\0sec\0ret", 14, &p), SASL_PLAIN_ERR_FORMAT);
	assert_int_equal(decode_raw("\0alice\0secret\0", 14, &p), SASL_PLAIN_ERR_FORMAT);
	assert_wiped(&p);
}

static void test_authzid_policy(void **state)
{
	struct sasl_plain p;

	assert_int_equal(decode_raw("bob\0alice\0secret", 16, &p), SASL_PLAIN_ERR_AUTHZID);
	assert_wiped(&p);
	assert_int_equal(decode_raw("admin\0alice\0secret", 18, &p), SASL_PLAIN_ERR_AUTHZID);
	assert_int_equal(decode_raw("alicex\0alice\0secret", 19, &p), SASL_PLAIN_ERR_AUTHZID);
	assert_int_equal(decode_raw("alice\0alicex\0secret", 19, &p), SASL_PLAIN_ERR_AUTHZID);
}

static void test_empty_fields(void **state)
{
	struct sasl_plain p;

	assert_int_equal(decode_raw("\0alice\0", 7, &p), SASL_PLAIN_ERR_EMPTY);
	assert_wiped(&p);
	assert_int_equal(decode_raw("\0\0secret", 8, &p), SASL_PLAIN_ERR_EMPTY);
	assert_int_equal(decode_raw("\0\0", 2, &p), SASL_PLAIN_ERR_EMPTY);
	assert_int_equal(decode_raw("alice\0\0secret", 13, &p), SASL_PLAIN_ERR_EMPTY);
}

static void test_lengths(void **state)
{
	char msg[3 * SASL_PLAIN_FIELD_MAX + 16];
	struct sasl_plain p;
	const size_t F = SASL_PLAIN_FIELD_MAX;

	/* all three fields at their maximum: the largest valid message */
	memset(msg, 'u', F);
	msg[F] = '\0';
	memset(msg + F + 1, 'u', F);
	msg[2 * F + 1] = '\0';
	memset(msg + 2 * F + 2, 'p', F);
	assert_int_equal(3 * F + 2, SASL_PLAIN_MSG_MAX);
	char b64[SASL_PLAIN_B64_MAX + 16];
	size_t bl = b64_encode((unsigned char *)msg, SASL_PLAIN_MSG_MAX, b64);
	assert_int_equal(bl, SASL_PLAIN_B64_MAX);
	assert_int_equal(sasl_plain_decode(b64, bl, &p), SASL_PLAIN_OK);
	assert_int_equal(strlen(p.authzid), F);
	assert_int_equal(strlen(p.authcid), F);
	assert_int_equal(strlen(p.passwd), F);

	/* one field one byte over */
	memset(msg, 0, sizeof(msg));
	msg[0] = '\0';
	memset(msg + 1, 'u', F + 1);
	msg[F + 2] = '\0';
	memcpy(msg + F + 3, "pw", 2);
	assert_int_equal(decode_raw(msg, F + 5, &p), SASL_PLAIN_ERR_TOO_LONG);
	assert_wiped(&p);

	/* password one byte over */
	memcpy(msg, "\0a\0", 3);
	memset(msg + 3, 'p', F + 1);
	assert_int_equal(decode_raw(msg, 3 + F + 1, &p), SASL_PLAIN_ERR_TOO_LONG);
	/* password exactly at the limit */
	assert_int_equal(decode_raw(msg, 3 + F, &p), SASL_PLAIN_OK);

	/* a 768-byte message: 1024 base64 chars, but one byte too many */
	memset(msg, 'x', sizeof(msg));
	msg[0] = '\0';
	msg[200] = '\0';
	bl = b64_encode((unsigned char *)msg, SASL_PLAIN_MSG_MAX + 1, b64);
	assert_int_equal(bl, SASL_PLAIN_B64_MAX);
	assert_int_equal(sasl_plain_decode(b64, bl, &p), SASL_PLAIN_ERR_TOO_LONG);

	/* over-long base64 is refused before decoding, even if it is junk */
	char big[SASL_PLAIN_B64_MAX + 5];
	memset(big, '*', sizeof(big));
	assert_int_equal(sasl_plain_decode(big, sizeof(big), &p), SASL_PLAIN_ERR_TOO_LONG);
	memset(big, 'A', sizeof(big));
	assert_int_equal(sasl_plain_decode(big, SASL_PLAIN_B64_MAX + 4, &p), SASL_PLAIN_ERR_TOO_LONG);
}

static void test_strerror(void **state)
{
	for (int r = SASL_PLAIN_OK; r <= SASL_PLAIN_ERR_AUTHZID; r++)
		assert_non_null(sasl_plain_strerror(r));
	assert_string_equal(sasl_plain_strerror(SASL_PLAIN_ERR_BASE64), "invalid base64");
	assert_string_equal(sasl_plain_strerror(999), "SASL error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64_vectors),
		cmocka_unit_test(test_base64_strict),
		cmocka_unit_test(test_base64_all_bytes_roundtrip),
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_bad_base64),
		cmocka_unit_test(test_missing_nuls),
		cmocka_unit_test(test_authzid_policy),
		cmocka_unit_test(test_empty_fields),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
