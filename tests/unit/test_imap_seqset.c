/*
 * test_imap_seqset.c - unit tests for IMAP sequence sets
 * (imapproxy/imap_seqset.c), modified UTF-7 mailbox names
 * (imapproxy/imap_utf7.c) and the arena (imapproxy/imap_arena.c):
 * '*' on empty and non-empty mailboxes, reversed ranges, merging, every
 * error, resolution/iteration/contains/count checked against a bitmap
 * on random sets; mUTF-7 RFC vectors, round trips over every BMP code
 * point, and each kind of invalid input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "imap_arena.h"
#include "imap_seqset.h"
#include "imap_utf7.h"

static struct imap_seqset *ss(struct imap_arena *a, const char *s)
{
	const char *err = NULL;
	struct imap_seqset *set = imap_seqset_parse(s, strlen(s), a, &err);

	if (set == NULL)
		fail_msg("seqset <%s>: %s", s, err);
	return set;
}

static void ss_err(struct imap_arena *a, const char *s, const char *want)
{
	const char *err = NULL;

	if (imap_seqset_parse(s, strlen(s), a, &err) != NULL)
		fail_msg("seqset <%s> unexpectedly parsed", s);
	assert_non_null(err);
	if (want != NULL)
		assert_string_equal(err, want);
}

static void fmt_is(const struct imap_seqset *s, const char *want)
{
	char buf[256];
	size_t n = imap_seqset_format(s, buf, sizeof(buf));

	assert_int_equal(n, strlen(want));
	assert_string_equal(buf, want);
}

static void resolved_is(const struct imap_seqset *s, uint32_t max, const char *want)
{
	struct imap_range out[64];
	char buf[512] = "";
	size_t n = imap_seqset_resolve(s, max, out), o = 0;

	assert_true(n <= s->n + 1);
	for (size_t i = 0; i < n; i++) {
		if (out[i].lo == out[i].hi)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%u", i ? "," : "", out[i].lo);
		else
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%u:%u", i ? "," : "",
					      out[i].lo, out[i].hi);
	}
	assert_string_equal(buf, want);
}

static void test_seqset_parse(void **state)
{
	struct imap_arena *a = imap_arena_new(0);
	struct imap_seqset *s;

	s = ss(a, "1");
	assert_int_equal(s->n, 1);
	assert_false(s->star);
	fmt_is(s, "1");
	fmt_is(ss(a, "1:3,5,4"), "1:5");
	fmt_is(ss(a, "5:2"), "2:5");
	fmt_is(ss(a, "10,1,5:7,6,2"), "1:2,5:7,10");
	fmt_is(ss(a, "1:5,2:3"), "1:5");
	fmt_is(ss(a, "3,1:2,*"), "1:3,*");
	fmt_is(ss(a, "4294967295"), "4294967295");
	fmt_is(ss(a, "4294967294:4294967295,1"), "1,4294967294:4294967295");
	fmt_is(ss(a, "007"), "7");

	s = ss(a, "*");
	assert_true(s->star);
	assert_int_equal(s->star_lo, UINT32_MAX);
	assert_int_equal(s->n, 0);
	s = ss(a, "*:4");
	assert_true(s->star);
	assert_int_equal(s->star_lo, 4);
	fmt_is(s, "4:*");
	s = ss(a, "4:*,2:*,*");
	assert_int_equal(s->star_lo, 2);
	s = ss(a, "*:*");
	assert_int_equal(s->star_lo, UINT32_MAX);
	fmt_is(s, "*");

	ss_err(a, "", "Invalid sequence set");
	ss_err(a, "0", "Sequence number 0");
	ss_err(a, "1:0", "Sequence number 0");
	ss_err(a, "0:*", "Sequence number 0");
	ss_err(a, "4294967296", "Sequence number too large");
	ss_err(a, "1:99999999999999999999", "Sequence number too large");
	ss_err(a, "$", "$ (SEARCHRES) not supported");
	ss_err(a, "1,$", "$ (SEARCHRES) not supported");
	ss_err(a, "1,", "Invalid sequence set");
	ss_err(a, ",1", "Invalid sequence set");
	ss_err(a, "1,,2", "Invalid sequence set");
	ss_err(a, "1:", "Invalid sequence set");
	ss_err(a, ":1", "Invalid sequence set");
	ss_err(a, "1:2:3", "Invalid sequence set");
	ss_err(a, "+1", "Invalid sequence set");
	ss_err(a, "-1", "Invalid sequence set");
	ss_err(a, "1 2", "Invalid sequence set");
	ss_err(a, "**", "Invalid sequence set");

	assert_int_equal(imap_seqset_span("1:3,*) x", 8), 5);
	assert_int_equal(imap_seqset_span("abc", 3), 0);
	imap_arena_destroy(&a);
	assert_null(a);
}

static void test_seqset_resolve(void **state)
{
	struct imap_arena *a = imap_arena_new(0);
	struct imap_seqset *s;

	/* RFC 3501 9: 2,4:7,9,12:* on 15 messages */
	s = ss(a, "2,4:7,9,12:*");
	resolved_is(s, 15, "2,4:7,9,12:15");
	assert_int_equal(imap_seqset_count(s, 15), 10);
	/* 1:* on an empty mailbox is empty; so is * */
	resolved_is(ss(a, "1:*"), 0, "");
	assert_int_equal(imap_seqset_count(ss(a, "1:*"), 0), 0);
	resolved_is(ss(a, "*"), 0, "");
	assert_false(imap_seqset_contains(ss(a, "*"), 0, 1));
	/* n:* with n beyond max includes max (RFC 3501 6.4.8) */
	resolved_is(ss(a, "559:*"), 3, "3");
	resolved_is(ss(a, "*:4"), 10, "4:10");
	resolved_is(ss(a, "*"), 10, "10");
	resolved_is(ss(a, "4294967295:*"), 10, "10");
	/* concrete numbers beyond max drop out */
	s = ss(a, "1:10,20");
	resolved_is(s, 5, "1:5");
	assert_int_equal(imap_seqset_max_number(s), 20);
	assert_int_equal(imap_seqset_max_number(ss(a, "5:*")), 0);
	assert_int_equal(imap_seqset_max_number(ss(a, "3,5:*")), 3);
	/* star range absorbing and adjacent to concrete ranges */
	resolved_is(ss(a, "1:2,5,7:*"), 10, "1:2,5,7:10");
	resolved_is(ss(a, "1:2,5,6:*"), 10, "1:2,5:10");
	resolved_is(ss(a, "1:2,5:8,3:*"), 10, "1:10");
	resolved_is(ss(a, "8,*"), 5, "5");
	resolved_is(ss(a, "2,*"), 5, "2,5");
	resolved_is(ss(a, "4,*"), 5, "4:5");
	resolved_is(ss(a, "5,*"), 5, "5");
	assert_true(imap_seqset_contains(ss(a, "2,*"), 5, 5));
	assert_false(imap_seqset_contains(ss(a, "2,*"), 5, 4));
	assert_false(imap_seqset_contains(ss(a, "2,*"), 5, 0));
	assert_false(imap_seqset_contains(ss(a, "1:100"), 5, 6));

	/* iteration */
	struct imap_seqset_iter it;
	uint32_t x, got[32];
	size_t n = 0;
	imap_seqset_iter_init(&it, ss(a, "2,4:5,9:*"), 10);
	while (imap_seqset_iter_next(&it, &x))
		got[n++] = x;
	assert_int_equal(n, 5);
	assert_int_equal(got[0], 2);
	assert_int_equal(got[2], 5);
	assert_int_equal(got[4], 10);
	assert_false(imap_seqset_iter_next(&it, &x));
	/* up to the very top without wrapping */
	imap_seqset_iter_init(&it, ss(a, "4294967294:4294967295"), UINT32_MAX);
	n = 0;
	while (imap_seqset_iter_next(&it, &x))
		n++;
	assert_int_equal(n, 2);
	assert_int_equal(imap_seqset_count(ss(a, "1:*"), UINT32_MAX), UINT32_MAX);

	/* truncated format */
	char small[4];
	assert_int_equal(imap_seqset_format(ss(a, "1:3,100"), small, sizeof(small)), 7);
	assert_string_equal(small, "1:3");
	imap_arena_destroy(&a);
}

/* Random sets against a bitmap. */
static void test_seqset_random(void **state)
{
	srand(12345);
	for (int round = 0; round < 3000; round++) {
		struct imap_arena *a = imap_arena_new(0);
		char text[512];
		size_t o = 0;
		bool in[64] = { 0 };
		uint32_t star_lo = 0;
		bool star = false;
		uint32_t max = (uint32_t)(rand() % 40);
		int elems = 1 + rand() % 6;

		for (int e = 0; e < elems; e++) {
			uint32_t x = 1 + (uint32_t)(rand() % 45), y = 1 + (uint32_t)(rand() % 45);
			int kind = rand() % 5;
			if (e > 0)
				text[o++] = ',';
			if (kind == 0) {
				o += (size_t)sprintf(text + o, "%u", x);
				if (x <= max)
					in[x] = true;
			} else if (kind == 1) {
				o += (size_t)sprintf(text + o, "*");
				star = true;
				if (star_lo == 0)
					star_lo = UINT32_MAX;
			} else if (kind == 2) {
				o += (size_t)sprintf(text + o, rand() % 2 ? "%u:*" : "*:%u", x);
				star = true;
				if (star_lo == 0 || x < star_lo)
					star_lo = x;
			} else {
				o += (size_t)sprintf(text + o, "%u:%u", x, y);
				for (uint32_t k = x < y ? x : y; k <= (x < y ? y : x); k++)
					if (k <= max)
						in[k] = true;
			}
		}
		text[o] = '\0';
		if (star && max > 0)
			for (uint32_t k = star_lo < max ? star_lo : max; k <= max; k++)
				in[k] = true;

		const char *err;
		struct imap_seqset *s = imap_seqset_parse(text, o, a, &err);
		assert_non_null(s);
		uint64_t count = 0;
		for (uint32_t k = 1; k < 64; k++) {
			assert_int_equal(imap_seqset_contains(s, max, k), in[k]);
			count += in[k];
		}
		assert_int_equal(imap_seqset_count(s, max), count);
		struct imap_seqset_iter it;
		uint32_t x, prev = 0;
		uint64_t seen = 0;
		imap_seqset_iter_init(&it, s, max);
		while (imap_seqset_iter_next(&it, &x)) {
			assert_true(x > prev);
			assert_true(x < 64 && in[x]);
			prev = x;
			seen++;
		}
		assert_int_equal(seen, count);
		struct imap_range r[16];
		size_t n = imap_seqset_resolve(s, max, r);
		for (size_t i = 0; i < n; i++) {
			assert_true(r[i].lo <= r[i].hi && r[i].lo >= 1 && r[i].hi <= max);
			if (i > 0)
				assert_true((uint64_t)r[i - 1].hi + 1 < r[i].lo);
		}
		/* formatting and re-parsing gives the same set */
		char f[512];
		imap_seqset_format(s, f, sizeof(f));
		struct imap_seqset *s2 = imap_seqset_parse(f, strlen(f), a, &err);
		assert_non_null(s2);
		assert_int_equal(s2->n, s->n);
		assert_int_equal(s2->star, s->star);
		if (s->star)
			assert_int_equal(s2->star_lo, s->star_lo);
		imap_arena_destroy(&a);
	}
}

static void test_seqset_big(void **state)
{
	/* 50,000 elements, reversed order: sorted and merged in n log n */
	size_t cap = 50000 * 12;
	char *text = malloc(cap);
	size_t o = 0;
	struct imap_arena *a = imap_arena_new(0);

	for (uint32_t i = 50000; i >= 1; i--)
		o += (size_t)sprintf(text + o, "%s%u", o ? "," : "", i * 2);
	const char *err;
	struct imap_seqset *s = imap_seqset_parse(text, o, a, &err);
	assert_non_null(s);
	assert_int_equal(s->n, 50000);
	assert_int_equal(s->r[0].lo, 2);
	assert_true(imap_seqset_contains(s, 200000, 99990));
	assert_false(imap_seqset_contains(s, 200000, 99991));
	free(text);
	imap_arena_destroy(&a);
}

/* ---- arena --------------------------------------------------------------- */

static void test_arena(void **state)
{
	struct imap_arena *a = imap_arena_new(16);
	char *prev = NULL;

	for (int i = 0; i < 5000; i++) {
		char *p = imap_arena_alloc(a, (size_t)(i % 37));
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
		memset(p, 0xab, (size_t)(i % 37));
		assert_true(p != prev || i % 37 == 0);
		prev = p;
	}
	char *big = imap_arena_alloc(a, 1 << 20);
	assert_non_null(big);
	memset(big, 1, 1 << 20);
	char *after = imap_arena_alloc(a, 8);	/* small allocations go on */
	assert_non_null(after);
	int *z = imap_arena_zalloc(a, 100 * sizeof(int));
	for (int i = 0; i < 100; i++)
		assert_int_equal(z[i], 0);
	char *s = imap_arena_strndup(a, "hello world", 5);
	assert_string_equal(s, "hello");
	assert_null(imap_arena_alloc(a, SIZE_MAX));
	assert_true(imap_arena_used(a) > (1 << 20));
	imap_arena_destroy(&a);
	assert_null(a);
	imap_arena_destroy(&a);
	imap_arena_destroy(NULL);
}

/* ---- modified UTF-7 ------------------------------------------------------ */

static void dec_ok(const char *in, const char *want)
{
	char out[256];
	size_t n;

	if (imap_utf7_decode(in, strlen(in), out, sizeof(out), &n) != 0)
		fail_msg("decode <%s> failed", in);
	assert_int_equal(n, strlen(want));
	assert_string_equal(out, want);
	/* and back to exactly the input */
	char back[256];
	size_t bn;
	assert_int_equal(imap_utf7_encode(out, n, back, sizeof(back), &bn), 0);
	assert_string_equal(back, in);
}

static void dec_bad(const char *in)
{
	char out[256];
	size_t n;

	if (imap_utf7_decode(in, strlen(in), out, sizeof(out), &n) == 0)
		fail_msg("decode <%s> unexpectedly succeeded", in);
}

static void test_utf7_vectors(void **state)
{
	dec_ok("INBOX", "INBOX");
	dec_ok("", "");
	dec_ok("&-", "&");
	dec_ok("a&-b&-", "a&b&");
	dec_ok("Entw&APw-rfe", "Entw\xc3\xbcrfe");
	/* RFC 3501 5.1.3 */
	dec_ok("~peter/mail/&U,BTFw-/&ZeVnLIqe-",
	       "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	dec_ok("&AOQA9gD8-", "\xc3\xa4\xc3\xb6\xc3\xbc");
	dec_ok("&AOQ-&-&APY-", "\xc3\xa4&\xc3\xb6");
	/* U+1F600 as a surrogate pair */
	dec_ok("&2D3eAA-", "\xf0\x9f\x98\x80");
	/* control characters may be shifted */
	dec_ok("a&AAE-b", "a\x01" "b");
	dec_ok("&AH8-", "\x7f");

	dec_bad("&");
	dec_bad("&Jjo");
	dec_bad("&U,BTFw");
	dec_bad("a&b");
	dec_bad("&AGE-");		/* 'a' must be written directly */
	dec_bad("&ACY-");		/* '&' must be "&-" */
	dec_bad("&AOQ-&AOQ-");		/* adjacent shifted runs */
	dec_bad("&AOR-");		/* non-zero padding bits */
	dec_bad("&AOQA-");		/* partial 16-bit unit */
	dec_bad("&AAA-");		/* U+0000 */
	dec_bad("&2D0-");		/* unpaired high surrogate */
	dec_bad("&2D0AYQ-");		/* high surrogate then 'a' */
	dec_bad("&3gA-");		/* lone low surrogate */
	dec_bad("&A/Q-");		/* '/' is not in the alphabet */
	dec_bad("caf\xc3\xa9");		/* raw 8-bit */
	dec_bad("a\tb");		/* raw control */
	dec_bad("a\x7f");

	/* output buffer limits */
	char out[8];
	size_t n;
	assert_int_equal(imap_utf7_decode("abcdefg", 7, out, 8, &n), 0);
	assert_int_equal(imap_utf7_decode("abcdefgh", 8, out, 8, &n), -1);
	assert_int_equal(imap_utf7_decode("", 0, out, 0, &n), -1);
	assert_int_equal(imap_utf7_encode("\xc3\xa4\xc3\xa4", 4, out, 8, &n), -1);
	char out9[9];
	assert_int_equal(imap_utf7_encode("\xc3\xa4\xc3\xa4", 4, out9, 9, &n), 0);
	assert_string_equal(out9, "&AOQA5A-");
	assert_int_equal(imap_utf7_encode("\xc3\xa4\xc3\xa4x", 5, out, 8, &n), -1);
	assert_int_equal(imap_utf7_encode("&&&&", 4, out, 8, &n), -1);
	assert_int_equal(imap_utf7_encode("&&&", 3, out, 8, &n), 0);
	/* the worst case for the encoded size: control characters and '&' */
	char worst[64];
	assert_int_equal(imap_utf7_encode("\x01&\x01&\x01", 5, worst, sizeof(worst), &n), 0);
	assert_string_equal(worst, "&AAE-&-&AAE-&-&AAE-");
	assert_true(n <= IMAP_UTF7_ENCODED_MAX(5));
	assert_string_equal(out, "&-&-&-");
}

static void test_utf7_encode_invalid(void **state)
{
	static const char *const bad[] = {
		"\xc3",		    /* truncated */
		"\xc0\x80",	    /* overlong NUL */
		"\xc1\xbf",	    /* overlong */
		"\xe0\x80\xaf",	    /* overlong */
		"\xed\xa0\x80",	    /* surrogate */
		"\xf4\x90\x80\x80", /* above U+10FFFF */
		"\xf8\x88\x80\x80\x80",
		"\x80",
		"a\xffz",
	};
	char out[64];
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(imap_utf7_encode(bad[i], strlen(bad[i]), out, sizeof(out), &n), -1);
		assert_false(imap_utf8_valid(bad[i], strlen(bad[i])));
	}
	assert_int_equal(imap_utf7_encode("a\0b", 3, out, sizeof(out), &n), -1);
	assert_true(imap_utf8_valid("a\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80", 10));
	assert_true(imap_utf8_valid("", 0));
}

static size_t put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Every code point alone and between ASCII letters survives both ways. */
static void test_utf7_roundtrip_all(void **state)
{
	char in[16], enc[64], dec[64];
	size_t n, en, dn;

	for (uint32_t cp = 1; cp <= 0x10ffff; cp += (cp < 0x10000 ? 1 : 97)) {
		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		for (int wrap = 0; wrap < 2; wrap++) {
			n = 0;
			if (wrap)
				in[n++] = 'x';
			n += put_utf8(in + n, cp);
			if (wrap)
				in[n++] = 'y';
			assert_int_equal(imap_utf7_encode(in, n, enc, sizeof(enc), &en), 0);
			assert_true(en <= IMAP_UTF7_ENCODED_MAX(n));
			for (size_t k = 0; k < en; k++)
				assert_true(enc[k] >= 0x20 && enc[k] <= 0x7e);
			assert_int_equal(imap_utf7_decode(enc, en, dec, sizeof(dec), &dn), 0);
			assert_true(dn <= IMAP_UTF7_DECODED_MAX(en));
			assert_int_equal(dn, n);
			assert_memory_equal(dec, in, n);
		}
	}
	/* long mixed strings */
	srand(7);
	for (int round = 0; round < 2000; round++) {
		char s[256], e[1024], d[1024];
		size_t sl = 0;
		while (sl < 200) {
			uint32_t cp;
			switch (rand() % 4) {
			case 0: cp = 0x20 + (uint32_t)(rand() % 0x5f); break;
			case 1: cp = '&'; break;
			case 2: cp = 0x80 + (uint32_t)(rand() % 0x700); break;
			default: cp = 0x10000 + (uint32_t)(rand() % 0x1000); break;
			}
			sl += put_utf8(s + sl, cp);
		}
		assert_int_equal(imap_utf7_encode(s, sl, e, sizeof(e), &en), 0);
		assert_true(en <= IMAP_UTF7_ENCODED_MAX(sl));
		assert_int_equal(imap_utf7_decode(e, en, d, sizeof(d), &dn), 0);
		assert_int_equal(dn, sl);
		assert_memory_equal(d, s, sl);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seqset_parse),
		cmocka_unit_test(test_seqset_resolve),
		cmocka_unit_test(test_seqset_random),
		cmocka_unit_test(test_seqset_big),
		cmocka_unit_test(test_arena),
		cmocka_unit_test(test_utf7_vectors),
		cmocka_unit_test(test_utf7_encode_invalid),
		cmocka_unit_test(test_utf7_roundtrip_all),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
