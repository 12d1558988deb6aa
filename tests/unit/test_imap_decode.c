/*
 * test_imap_decode.c - unit tests for the SEARCH decoders
 * (imapproxy/imap_decode.c): base64 and quoted-printable against known
 * vectors, every kind of malformed input (bad base64 characters, padding
 * in the middle, truncated quanta, broken "=" escapes and soft line
 * breaks, cut-off escapes), the output bound, and chunk independence
 * (the same input fed whole, byte by byte and in random pieces gives the
 * same bytes); charset names and the single-byte tables; the caseless
 * UTF-8 fold (Latin-1, Latin Extended-A, Greek, Cyrillic, invalid
 * sequences, a lead byte cut by a chunk boundary).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "imap_decode.h"

#define BIG 70000

enum dec { DEC_B64, DEC_QP, DEC_FOLD };

/* Decode in[0..n) in pieces of `step` bytes (0: random pieces) into out;
 * checks the output bound of every call.  Returns the length. */
static size_t run(enum dec which, const char *in, size_t n, size_t step, char *out,
		  uint64_t *bad_r)
{
	struct imap_b64 b;
	struct imap_qp q;
	struct imap_fold f;
	size_t w = 0;

	imap_b64_init(&b);
	imap_qp_init(&q);
	imap_fold_init(&f);
	for (size_t i = 0; i < n;) {
		size_t k = step != 0 ? step : 1 + (size_t)rand() % 40;
		if (k > n - i)
			k = n - i;
		size_t got = 0;
		switch (which) {
		case DEC_B64:
			got = imap_b64_decode(&b, in + i, k, out + w);
			assert_true(got <= (6 * k + 7) / 8);
			break;
		case DEC_QP:
			got = imap_qp_decode(&q, in + i, k, out + w);
			break;
		case DEC_FOLD:
			got = imap_fold_utf8(&f, in + i, k, out + w);
			assert_true(got <= k + 1);
			break;
		}
		assert_true(got <= IMAP_DECODE_OUT_MAX(k));
		w += got;
		i += k;
	}
	if (which == DEC_QP)
		w += imap_qp_finish(&q, out + w);
	if (which == DEC_FOLD)
		w += imap_fold_finish(&f, out + w);
	if (bad_r != NULL)
		*bad_r = which == DEC_B64 ? b.bad : q.bad;
	return w;
}

/* The same result whole, byte by byte and in random pieces. */
static void expect(enum dec which, const char *in, size_t n, const char *want, size_t want_len,
		   uint64_t want_bad)
{
	static char out[BIG * 2];
	size_t steps[] = { n > 0 ? n : 1, 1, 2, 3, 0, 0, 0 };

	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		uint64_t bad = 0;
		size_t len = run(which, in, n, steps[s], out, &bad);
		if (len != want_len || memcmp(out, want, len) != 0)
			fail_msg("decoder %d input <%.*s> step %zu: got <%.*s> (%zu bytes), want "
				 "<%.*s> (%zu)", which, (int)(n < 200 ? n : 200), in, steps[s],
				 (int)(len < 200 ? len : 200), out, len,
				 (int)(want_len < 200 ? want_len : 200), want, want_len);
		if (which != DEC_FOLD && bad != want_bad)
			fail_msg("decoder %d input <%s>: bad %llu, want %llu", which, in,
				 (unsigned long long)bad, (unsigned long long)want_bad);
	}
}

static void b64(const char *in, const char *want, uint64_t bad)
{
	expect(DEC_B64, in, strlen(in), want, strlen(want), bad);
}

static void qp(const char *in, const char *want, uint64_t bad)
{
	expect(DEC_QP, in, strlen(in), want, strlen(want), bad);
}

static void fold(const char *in, const char *want)
{
	expect(DEC_FOLD, in, strlen(in), want, strlen(want), 0);
}

static size_t b64_encode(const unsigned char *in, size_t n, char *out, size_t line)
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t w = 0, col = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[w++] = al[v >> 18];
		out[w++] = al[(v >> 12) & 63];
		out[w++] = i + 1 < n ? al[(v >> 6) & 63] : '=';
		out[w++] = i + 2 < n ? al[v & 63] : '=';
		if (line != 0 && (col += 4) >= line) {
			out[w++] = '\r';
			out[w++] = '\n';
			col = 0;
		}
	}
	return w;
}

static void test_base64(void **state)
{
	b64("", "", 0);
	b64("Y2Fmw6k=", "caf\xc3\xa9", 0);
	b64("SGVsbG8gV29ybGQ=", "Hello World", 0);
	b64("SGVs\r\nbG8g\nV29y bGQ=\r\n", "Hello World", 0);
	b64("TWFu", "Man", 0);
	b64("TWE=", "Ma", 0);
	b64("TQ==", "M", 0);
	/* junk characters are skipped and counted */
	b64("TW!Fu", "Man", 1);
	b64("T\x80W\xff" "Fu.", "Man", 3);
	b64("-_TWFu", "Man", 2);	/* base64url characters are junk here */
	/* padding ends a quantum; decoding goes on (concatenated encodings) */
	b64("TQ==TWE=TWFu", "MMaMan", 0);
	b64("TQ=TWFu", "MMan", 0);
	b64("=TWFu", "Man", 0);
	/* truncated: the whole bytes that are in */
	b64("TWFuT", "Man", 0);
	b64("TWFuTW", "ManM", 0);
	b64("Y2Fmw6", "caf\xc3", 0);
	b64("T", "", 0);

	/* random bytes, encoded with line breaks, decoded in every kind of
	 * piece */
	static unsigned char raw[BIG];
	static char enc[BIG * 2];
	srand(7);
	for (int round = 0; round < 20; round++) {
		size_t n = (size_t)rand() % (round < 10 ? 300 : BIG);
		for (size_t i = 0; i < n; i++)
			raw[i] = (unsigned char)rand();
		size_t el = b64_encode(raw, n, enc, round % 2 ? 76 : 0);
		expect(DEC_B64, enc, el, (const char *)raw, n, 0);
	}
}

static void test_qp(void **state)
{
	qp("", "", 0);
	qp("plain text\r\n", "plain text\r\n", 0);
	qp("caf=C3=A9", "caf\xc3\xa9", 0);
	qp("caf=c3=a9", "caf\xc3\xa9", 0);	/* lower-case hex accepted */
	qp("a=3Db", "a=b", 0);
	expect(DEC_QP, "=00", 3, "\0", 1, 0);
	/* soft line breaks: CRLF, LF, bare CR, white space before them */
	qp("M=C3=BCn=\r\nchen", "M\xc3\xbcnchen", 0);
	qp("Mün=\nchen", "München", 0);
	qp("Mün=\rchen", "München", 0);
	qp("Mün= \t \r\nchen", "München", 0);
	qp("Mün=  \nchen", "München", 0);
	qp("a=\r\n=\r\nb", "ab", 0);
	qp("line one\r\nline two=\r\n\r\n", "line one\r\nline two\r\n", 0);
	/* broken "=" sequences are kept as they are */
	qp("a=ZZb", "a=ZZb", 1);
	qp("a=AZ", "a=AZ", 1);
	qp("a=A=41", "a=AA", 1);
	qp("==41", "=A", 1);
	qp("a= x", "a= x", 1);
	qp("a=\t\tx", "a=\t\tx", 1);
	qp("100=% sure", "100=% sure", 1);
	qp("a===", "a==", 2);	/* the last "=" is a soft break at the end */
	/* more than IMAP_QP_WS_MAX blanks after a broken "=": the excess goes */
	qp("=                    x", "=                x", 1);
	/* cut off by the end of the part */
	qp("abc=", "abc", 0);		/* soft break before a boundary */
	qp("abc= \t", "abc", 0);
	qp("abc=\r", "abc", 0);
	qp("abc=4", "abc=4", 1);
	qp("=", "", 0);
	/* 8-bit bytes pass */
	qp("caf\xe9 cr\xe8me", "caf\xe9 cr\xe8me", 0);

	/* random input over the characters that matter: chunking never
	 * changes the result, the output bound holds */
	static char in[4096], whole[8192], piece[8192];
	srand(11);
	for (int round = 0; round < 3000; round++) {
		size_t n = (size_t)rand() % 200;
		for (size_t i = 0; i < n; i++)
			in[i] = "==AF0a9 \t\r\nxZ\x80"[rand() % 15];
		uint64_t bw, bp;
		size_t lw = run(DEC_QP, in, n, n > 0 ? n : 1, whole, &bw);
		size_t lp = run(DEC_QP, in, n, 0, piece, &bp);
		size_t l1 = run(DEC_QP, in, n, 1, piece + 4096, NULL);
		assert_true(lw <= n);
		if (lw != lp || memcmp(whole, piece, lw) != 0 || bw != bp || lw != l1 ||
		    memcmp(whole, piece + 4096, lw) != 0)
			fail_msg("qp chunking differs on <%.*s>", (int)n, in);
	}
}

static void test_charsets(void **state)
{
	assert_int_equal(imap_charset_lookup("utf-8", 5), IMAP_CS_UTF8);
	assert_int_equal(imap_charset_lookup("UTF8", 4), IMAP_CS_UTF8);
	assert_int_equal(imap_charset_lookup("US-ASCII", 8), IMAP_CS_UTF8);
	assert_int_equal(imap_charset_lookup("ISO-8859-1", 10), IMAP_CS_LATIN1);
	assert_int_equal(imap_charset_lookup("latin1", 6), IMAP_CS_LATIN1);
	assert_int_equal(imap_charset_lookup("iso-8859-1*fr", 13), IMAP_CS_LATIN1);
	assert_int_equal(imap_charset_lookup("ISO-8859-15", 11), IMAP_CS_LATIN9);
	assert_int_equal(imap_charset_lookup("Windows-1252", 12), IMAP_CS_CP1252);
	assert_int_equal(imap_charset_lookup("cp1252", 6), IMAP_CS_CP1252);
	assert_int_equal(imap_charset_lookup("iso-8859-2", 10), IMAP_CS_UNKNOWN);
	assert_int_equal(imap_charset_lookup("iso-8859-1x", 11), IMAP_CS_UNKNOWN);
	assert_int_equal(imap_charset_lookup("iso-8859-", 9), IMAP_CS_UNKNOWN);
	assert_int_equal(imap_charset_lookup("", 0), IMAP_CS_UNKNOWN);
	assert_int_equal(imap_charset_lookup(NULL, 0), IMAP_CS_UNKNOWN);
	assert_int_equal(imap_charset_lookup("utf-8\0x", 7), IMAP_CS_UNKNOWN);
	assert_true(imap_charset_is_raw(IMAP_CS_UTF8));
	assert_true(imap_charset_is_raw(IMAP_CS_UNKNOWN));
	assert_false(imap_charset_is_raw(IMAP_CS_LATIN1));

	char out[64];
	size_t n;
	n = imap_charset_to_utf8(IMAP_CS_LATIN1, "caf\xe9 \xc0", 6, out);
	assert_int_equal(n, 8);
	assert_memory_equal(out, "caf\xc3\xa9 \xc3\x80", 8);
	/* Latin-1's 0x80-0x9f read as Windows-1252 */
	n = imap_charset_to_utf8(IMAP_CS_LATIN1, "\x80\x92", 2, out);
	assert_int_equal(n, 6);
	assert_memory_equal(out, "\xe2\x82\xac\xe2\x80\x99", 6);
	n = imap_charset_to_utf8(IMAP_CS_CP1252, "\x80\x9f\x81", 3, out);
	assert_int_equal(n, 7);
	assert_memory_equal(out, "\xe2\x82\xac\xc5\xb8\xc2\x81", 7);
	/* ISO-8859-15: euro, S caron, OE; its 0x80 stays a C1 control */
	n = imap_charset_to_utf8(IMAP_CS_LATIN9, "\xa4\xa6\xbc\xe9\x80", 5, out);
	assert_int_equal(n, 11);
	assert_memory_equal(out, "\xe2\x82\xac\xc5\xa0\xc5\x92\xc3\xa9\xc2\x80", 11);
	/* raw charsets are copied */
	n = imap_charset_to_utf8(IMAP_CS_UNKNOWN, "\xe9\xff", 2, out);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\xe9\xff", 2);
	/* every byte of every table gives valid UTF-8 of at most 3 bytes */
	for (int cs = IMAP_CS_LATIN1; cs <= IMAP_CS_CP1252; cs++)
		for (unsigned b = 0; b < 256; b++) {
			unsigned char in = (unsigned char)b, o[4];
			n = imap_charset_to_utf8((enum imap_charset)cs, &in, 1, o);
			assert_true(n >= 1 && n <= 3);
			if (b < 0x80)
				assert_true(n == 1 && o[0] == b);
			else
				assert_true((o[0] & 0xe0) == 0xc0 ? n == 2 : n == 3);
		}
}

static void test_fold(void **state)
{
	fold("", "");
	fold("Hello WORLD 123", "hello world 123");
	fold("\xc3\x89""COLE", "\xc3\xa9""cole");			/* ÉCOLE */
	fold("GR\xc3\x9c\xc3\x9f""E", "gr\xc3\xbc\xc3\x9f""e");		/* GRÜßE: ß kept */
	fold("\xc3\x97\xc3\xb7", "\xc3\x97\xc3\xb7");			/* × ÷ */
	fold("\xc5\xb8", "\xc3\xbf");					/* Ÿ -> ÿ */
	fold("\xc5\x81\xc3\x93""D\xc5\xb9", "\xc5\x82\xc3\xb3""d\xc5\xba");	/* ŁÓDŹ */
	fold("\xc4\xb0\xc5\xbf", "\xc4\xb0\xc5\xbf");			/* İ ſ kept */
	fold("\xc5\x92", "\xc5\x93");					/* Œ */
	/* ΣΟΦΊΑ, final sigma */
	fold("\xce\xa3\xce\x9f\xce\xa6\xce\x8a\xce\x91 \xcf\x82",
	     "\xcf\x83\xce\xbf\xcf\x86\xce\xaf\xce\xb1 \xcf\x83");
	/* МОСКВА, Ё */
	fold("\xd0\x9c\xd0\x9e\xd0\xa1\xd0\x9a\xd0\x92\xd0\x90 \xd0\x81",
	     "\xd0\xbc\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0 \xd1\x91");
	/* invalid sequences are copied */
	fold("\xc3""A", "\xc3""a");
	fold("\xc3", "\xc3");
	fold("\xc3\xc3\x89", "\xc3\xc3\xa9");
	fold("\x89\xff\xe2\x82\xac", "\x89\xff\xe2\x82\xac");	/* € untouched */

	assert_int_equal(imap_fold_cp('Q'), 'q');
	assert_int_equal(imap_fold_cp(0xd7), 0xd7);
	assert_int_equal(imap_fold_cp(0xdf), 0xdf);
	assert_int_equal(imap_fold_cp(0x100), 0x101);
	assert_int_equal(imap_fold_cp(0x101), 0x101);
	assert_int_equal(imap_fold_cp(0x139), 0x13a);
	assert_int_equal(imap_fold_cp(0x3a2), 0x3a2);
	assert_int_equal(imap_fold_cp(0x42f), 0x44f);
	assert_int_equal(imap_fold_cp(0x460), 0x461);
	assert_int_equal(imap_fold_cp(0x1e9e), 0x1e9e);
	/* folding is idempotent and keeps the length for every two-byte
	 * code point */
	for (uint32_t cp = 0x80; cp < 0x800; cp++) {
		uint32_t f = imap_fold_cp(cp);
		assert_true(f >= 0x80 && f < 0x800);
		assert_int_equal(imap_fold_cp(f), f);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_qp),
		cmocka_unit_test(test_charsets),
		cmocka_unit_test(test_fold),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
