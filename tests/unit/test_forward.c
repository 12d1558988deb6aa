/*
 * test_forward.c - the wire format of POST /v1/deliver (forward_wire.c):
 * request header checks, response line format and parse; and the shared
 * per-recipient prefix and store-result replies (lmtp_prefix.c).
 *
 * Response lines and bodies are parsed from exact-size heap copies, so
 * ASan catches any read past the given length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "forward_wire.h"
#include "lmtp_prefix.h"
#include "store.h"

/* ---- helpers ------------------------------------------------------------ */

/* 63 characters: the longest user name (and POP id). */
#define LONGEST_USER "a123456789b123456789c123456789d123456789e123456789f123456789g12"

static int parse_line(const char *s, const char *user, struct forward_reply *r)
{
	size_t len = strlen(s);
	char *copy = malloc(len ? len : 1);
	int rv;

	assert_non_null(copy);
	memcpy(copy, s, len);
	rv = forward_reply_parse(copy, len, user, r);
	free(copy);
	return rv;
}

static size_t parse_body(const char *s, size_t len, const char *const *users, size_t n,
			 struct forward_reply *out, bool *ok, bool *malformed)
{
	char *copy = malloc(len ? len : 1);
	size_t good;

	assert_non_null(copy);
	memcpy(copy, s, len);
	good = forward_replies_parse(copy, len, users, n, out, ok, malformed);
	free(copy);
	return good;
}

/* A valid request's headers; tests change one thing at a time. */
struct req_builder {
	struct link_hdr h[LINK_MAX_HEADERS + 8];
	size_t n;
	char vals[LINK_MAX_HEADERS + 8][700];
};

static void add(struct req_builder *b, const char *name, const char *value)
{
	assert_true(b->n < sizeof(b->h) / sizeof(b->h[0]));
	snprintf(b->vals[b->n], sizeof(b->vals[b->n]), "%s", value);
	b->h[b->n] = (struct link_hdr){ name, b->vals[b->n] };
	b->n++;
}

static void base_request(struct req_builder *b)
{
	b->n = 0;
	add(b, FORWARD_HDR_MAIL_FROM, "sender@example.org");
	add(b, FORWARD_HDR_VIA, "pop1");
	add(b, FORWARD_HDR_DATE, "1700000000");
	add(b, FORWARD_HDR_LENGTH, "1234");
	add(b, FORWARD_HDR_RCPT, "bob bob@example.com");
}

static int parse_req(struct req_builder *b, struct forward_request *r, const char **err)
{
	return forward_request_parse(b->h, b->n, 100, 50u << 20, r, err);
}

/* Replace the value of the first header called name. */
static void set(struct req_builder *b, const char *name, const char *value)
{
	for (size_t i = 0; i < b->n; i++) {
		if (strcmp(b->h[i].name, name) == 0) {
			snprintf(b->vals[i], sizeof(b->vals[i]), "%s", value);
			return;
		}
	}
	fail_msg("no header %s", name);
}

static void drop(struct req_builder *b, const char *name)
{
	for (size_t i = 0; i < b->n; i++) {
		if (strcmp(b->h[i].name, name) == 0) {
			for (size_t k = i; k + 1 < b->n; k++) {
				b->h[k] = b->h[k + 1];
				memcpy(b->vals[k], b->vals[k + 1], sizeof(b->vals[k]));
				b->h[k].value = b->vals[k];
			}
			b->n--;
			return;
		}
	}
	fail_msg("no header %s", name);
}

/* ---- request headers ---------------------------------------------------- */

static void test_request_ok(void **state)
{
	struct forward_request *r = malloc(sizeof(*r));
	struct req_builder b;
	const char *err = "x";

	assert_non_null(r);
	base_request(&b);
	add(&b, FORWARD_HDR_RCPT, "carol \"carol+x y\"@example.com");
	add(&b, "x-unknown-header", "ignored");
	assert_int_equal(parse_req(&b, r, &err), 0);
	assert_null(err);
	assert_string_equal(r->mail_from, "sender@example.org");
	assert_string_equal(r->via, "pop1");
	assert_int_equal(r->internaldate, 1700000000);
	assert_int_equal(r->size, 1234);
	assert_int_equal(r->n_rcpts, 2);
	assert_string_equal(r->rcpts[0].user, "bob");
	assert_string_equal(r->rcpts[0].addr, "bob@example.com");
	assert_string_equal(r->rcpts[1].user, "carol");
	assert_string_equal(r->rcpts[1].addr, "\"carol+x y\"@example.com");

	/* the null sender, an empty body, date 0, postmaster without domain */
	set(&b, FORWARD_HDR_MAIL_FROM, "");
	set(&b, FORWARD_HDR_LENGTH, "0");
	set(&b, FORWARD_HDR_DATE, "0");
	set(&b, FORWARD_HDR_RCPT, "postmaster postmaster");
	assert_int_equal(parse_req(&b, r, &err), 0);
	assert_string_equal(r->mail_from, "");
	assert_int_equal(r->size, 0);
	assert_int_equal(r->internaldate, 0);
	assert_string_equal(r->rcpts[0].addr, "postmaster");
	free(r);
}

static void expect_bad(struct req_builder *b, int status)
{
	struct forward_request *r = malloc(sizeof(*r));
	const char *err = NULL;

	assert_non_null(r);
	assert_int_equal(parse_req(b, r, &err), status);
	assert_non_null(err);
	assert_int_equal(r->n_rcpts, 0);	/* zeroed on failure */
	free(r);
}

static void test_request_missing(void **state)
{
	static const char *const names[] = { FORWARD_HDR_MAIL_FROM, FORWARD_HDR_VIA,
					     FORWARD_HDR_DATE, FORWARD_HDR_LENGTH,
					     FORWARD_HDR_RCPT };
	struct req_builder b;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		base_request(&b);
		drop(&b, names[i]);
		expect_bad(&b, 400);
	}
	base_request(&b);
	b.n = 0;
	expect_bad(&b, 400);
}

static void test_request_repeated(void **state)
{
	static const char *const names[] = { FORWARD_HDR_MAIL_FROM, FORWARD_HDR_VIA,
					     FORWARD_HDR_DATE, FORWARD_HDR_LENGTH };
	struct req_builder b;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		base_request(&b);
		for (size_t k = 0; k < b.n; k++)
			if (strcmp(b.h[k].name, names[i]) == 0) {
				char v[700];

				memcpy(v, b.vals[k], sizeof(v));
				add(&b, names[i], v);
				break;
			}
		expect_bad(&b, 400);
	}
	/* the same user twice, even with another address */
	base_request(&b);
	add(&b, FORWARD_HDR_RCPT, "bob bob+other@example.com");
	expect_bad(&b, 400);
}

static void test_request_bad_rcpt(void **state)
{
	static const char *const bad[] = {
		"bob",				/* no address */
		"bob ",				/* empty address */
		" bob@example.com",		/* empty user */
		"Bob bob@example.com",		/* not a directory name */
		"-bob bob@example.com",
		"b\x01ob bob@example.com",
		"bob  bob@example.com",		/* address starts with a blank */
		"bob bob@example.com ",		/* ... ends with one */
		"bob bob@exa\x7fmple.com",	/* not printable */
		"bob bob@ex\xc3\xa9.com",	/* not ASCII */
		"bob bob@example.com\r\nx",
	};
	struct req_builder b;
	char longuser[80], longaddr[LMTP_ADDR_MAX + 20];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		base_request(&b);
		set(&b, FORWARD_HDR_RCPT, bad[i]);
		expect_bad(&b, 400);
	}
	memset(longuser, 'a', 64);
	snprintf(longuser + 64, sizeof(longuser) - 64, " a@b");
	base_request(&b);
	set(&b, FORWARD_HDR_RCPT, longuser);
	expect_bad(&b, 400);
	/* an address of exactly LMTP_ADDR_MAX bytes passes, one more not */
	longaddr[0] = 'b';
	longaddr[1] = ' ';
	memset(longaddr + 2, 'x', LMTP_ADDR_MAX);
	longaddr[2 + LMTP_ADDR_MAX] = '\0';
	base_request(&b);
	set(&b, FORWARD_HDR_RCPT, longaddr);
	{
		struct forward_request *r = malloc(sizeof(*r));
		const char *err;

		assert_non_null(r);
		assert_int_equal(parse_req(&b, r, &err), 0);
		assert_int_equal(strlen(r->rcpts[0].addr), LMTP_ADDR_MAX);
		free(r);
	}
	longaddr[2 + LMTP_ADDR_MAX] = 'x';
	longaddr[3 + LMTP_ADDR_MAX] = '\0';
	set(&b, FORWARD_HDR_RCPT, longaddr);
	expect_bad(&b, 400);
}

static void test_request_bad_values(void **state)
{
	static const struct {
		const char *name, *value;
	} bad[] = {
		{ FORWARD_HDR_LENGTH, "" },
		{ FORWARD_HDR_LENGTH, "-1" },
		{ FORWARD_HDR_LENGTH, "+1" },
		{ FORWARD_HDR_LENGTH, "01" },
		{ FORWARD_HDR_LENGTH, "1 " },
		{ FORWARD_HDR_LENGTH, "12a" },
		{ FORWARD_HDR_LENGTH, "18446744073709551616" },	/* 2^64 */
		{ FORWARD_HDR_LENGTH, "123456789012345678901" },
		{ FORWARD_HDR_DATE, "" },
		{ FORWARD_HDR_DATE, "-5" },
		{ FORWARD_HDR_DATE, "1099511627777" },		/* 2^40 + 1 */
		{ FORWARD_HDR_VIA, "" },
		{ FORWARD_HDR_VIA, "pop 1" },
		{ FORWARD_HDR_VIA, "pop/1" },
		{ FORWARD_HDR_VIA,
		  "a123456789b123456789c123456789d123456789e123456789f123456789g123" },
		{ FORWARD_HDR_MAIL_FROM, " a@b" },
		{ FORWARD_HDR_MAIL_FROM, "a@b " },
		{ FORWARD_HDR_MAIL_FROM, "a\tb@c" },
	};
	struct req_builder b;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		base_request(&b);
		set(&b, bad[i].name, bad[i].value);
		expect_bad(&b, 400);
	}
	/* the largest values that pass */
	base_request(&b);
	set(&b, FORWARD_HDR_DATE, "1099511627776");
	set(&b, FORWARD_HDR_VIA, LONGEST_USER);
	{
		struct forward_request *r = malloc(sizeof(*r));
		const char *err;

		assert_non_null(r);
		assert_int_equal(parse_req(&b, r, &err), 0);
		assert_int_equal(r->internaldate, (int64_t)1 << 40);
		free(r);
	}
}

static void test_request_limits(void **state)
{
	struct forward_request *r = malloc(sizeof(*r));
	struct req_builder b;
	const char *err;
	char v[700];

	assert_non_null(r);
	/* content-length over max_size: 413; at it: fine */
	base_request(&b);
	set(&b, FORWARD_HDR_LENGTH, "52428801");
	expect_bad(&b, 413);
	set(&b, FORWARD_HDR_LENGTH, "52428800");
	assert_int_equal(parse_req(&b, r, &err), 0);
	set(&b, FORWARD_HDR_LENGTH, "18446744073709551615");
	expect_bad(&b, 413);

	/* recipients: FORWARD_RCPTS_MAX, and max_rcpts when smaller */
	base_request(&b);
	for (int i = 1; i < FORWARD_RCPTS_MAX; i++) {
		snprintf(v, sizeof(v), "u%d u%d@example.com", i, i);
		add(&b, FORWARD_HDR_RCPT, v);
	}
	assert_int_equal(parse_req(&b, r, &err), 0);
	assert_int_equal(r->n_rcpts, FORWARD_RCPTS_MAX);
	assert_int_equal(forward_request_parse(b.h, b.n, 3, 100000, r, &err), 400);
	assert_int_equal(forward_request_parse(b.h, b.n, FORWARD_RCPTS_MAX, 100000, r, &err), 0);
	add(&b, FORWARD_HDR_RCPT, "toomany x@example.com");
	expect_bad(&b, 400);

	/* the header budget: long addresses run out before the count */
	base_request(&b);
	b.n--;	/* drop bob */
	{
		size_t used = 0, i = 0;
		char addr[LMTP_ADDR_MAX + 1];

		memset(addr, 'x', LMTP_ADDR_MAX - 12);
		snprintf(addr + LMTP_ADDR_MAX - 12, 13, "@example.com");
		for (;; i++) {
			char user[16];
			size_t bytes;

			snprintf(user, sizeof(user), "u%zu", i);
			bytes = forward_rcpt_hdr_bytes(user, addr);
			snprintf(v, sizeof(v), "%s %s", user, addr);
			add(&b, FORWARD_HDR_RCPT, v);
			used += bytes;
			if (used > FORWARD_RCPT_BYTES_MAX)
				break;
			assert_int_equal(parse_req(&b, r, &err), 0);
		}
		assert_true(i < FORWARD_RCPTS_MAX);
		expect_bad(&b, 400);
	}
	free(r);
}

/* ---- response lines ------------------------------------------------------ */

static void test_reply_parse_ok(void **state)
{
	struct forward_reply r;
	char text[FORWARD_TEXT_MAX + 40];

	assert_int_equal(parse_line("bob 250 2.0.0 Saved as uid 7", "bob", &r), 0);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.enh, "2.0.0");
	assert_string_equal(r.text, "Saved as uid 7");
	assert_int_equal(parse_line("bob 452 4.2.2 mailbox full", "bob", &r), 0);
	assert_int_equal(r.code, 452);
	assert_int_equal(parse_line("a.b-c 550 5.1.1 no such user", "a.b-c", &r), 0);
	assert_int_equal(parse_line("bob 451 4.123.999 x", "bob", &r), 0);
	assert_string_equal(r.enh, "4.123.999");
	assert_string_equal(r.text, "x");
	/* text keeps its blanks, also leading ones */
	assert_int_equal(parse_line("bob 451 4.4.0  not  homed ", "bob", &r), 0);
	assert_string_equal(r.text, " not  homed ");
	/* text of exactly FORWARD_TEXT_MAX bytes */
	snprintf(text, sizeof(text), "bob 250 2.0.0 ");
	memset(text + 14, 'y', FORWARD_TEXT_MAX);
	text[14 + FORWARD_TEXT_MAX] = '\0';
	assert_int_equal(parse_line(text, "bob", &r), 0);
	assert_int_equal(strlen(r.text), FORWARD_TEXT_MAX);
}

static void test_reply_parse_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"bob",
		"bob ",
		"bob 250",
		"bob 250 ",
		"bob 250 2.0.0",
		"bob 250 2.0.0 ",		/* empty text */
		"bobby 250 2.0.0 ok",		/* another user */
		"bo 250 2.0.0 ok",
		"alice 250 2.0.0 ok",
		"BOB 250 2.0.0 ok",
		" bob 250 2.0.0 ok",
		"bob  250 2.0.0 ok",		/* two blanks */
		"bob 250  2.0.0 ok",
		"bob 200 2.0.0 ok",		/* only 250 among 2xx */
		"bob 251 2.0.0 ok",
		"bob 354 3.0.0 ok",
		"bob 199 1.0.0 ok",
		"bob 600 6.0.0 ok",
		"bob 25 2.0.0 ok",
		"bob 2500 2.0.0 ok",
		"bob 2x0 2.0.0 ok",
		"bob 250 4.0.0 ok",		/* class does not match */
		"bob 451 5.0.0 ok",
		"bob 550 4.1.1 ok",
		"bob 250 2.0 ok",
		"bob 250 2..0 ok",
		"bob 250 2.0. ok",
		"bob 250 2.0.0. ok",
		"bob 250 2.0.0.0 ok",
		"bob 250 2.1234.0 ok",
		"bob 250 2.0.1234 ok",
		"bob 250 20.0.0 ok",
		"bob 250 x.0.0 ok",
		"bob 250 2.a.0 ok",
		"bob 250 2.0.0\tok",
		"bob 250 2.0.0 o\x01k",
		"bob 250 2.0.0 o\x7fk",
		"bob 250 2.0.0 caf\xc3\xa9",
		"bob 250 2.0.0 ok\r",
	};
	struct forward_reply r;
	char text[FORWARD_TEXT_MAX + 40];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse_line(bad[i], "bob", &r) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(r.code, 0);	/* zeroed */
	}
	snprintf(text, sizeof(text), "bob 250 2.0.0 ");
	memset(text + 14, 'y', FORWARD_TEXT_MAX + 1);
	text[15 + FORWARD_TEXT_MAX] = '\0';
	assert_int_equal(parse_line(text, "bob", &r), -1);
}

static void test_reply_format(void **state)
{
	char line[FORWARD_LINE_MAX + 1], text[FORWARD_TEXT_MAX + 50];
	struct forward_reply r;
	int n;

	n = forward_reply_format(line, sizeof(line), "bob", 250, "2.0.0", "Saved as uid 3");
	assert_int_equal(n, strlen("bob 250 2.0.0 Saved as uid 3\r\n"));
	assert_string_equal(line, "bob 250 2.0.0 Saved as uid 3\r\n");
	/* what format writes, parse takes back */
	assert_int_equal(forward_reply_parse(line, (size_t)n - 2, "bob", &r), 0);
	assert_string_equal(r.text, "Saved as uid 3");

	/* control bytes and non-ASCII become '?', an empty text "-" */
	n = forward_reply_format(line, sizeof(line), "bob", 451, "4.3.0", "a\r\nb\x80");
	assert_string_equal(line, "bob 451 4.3.0 a??b?\r\n");
	n = forward_reply_format(line, sizeof(line), "bob", 451, "4.3.0", "");
	assert_string_equal(line, "bob 451 4.3.0 -\r\n");
	assert_int_equal(forward_reply_parse(line, (size_t)n - 2, "bob", &r), 0);

	/* a long text is cut to FORWARD_TEXT_MAX; the line still parses */
	memset(text, 'z', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	n = forward_reply_format(line, sizeof(line), LONGEST_USER, 550, "5.123.123", text);
	assert_true(n > 0 && n <= FORWARD_LINE_MAX);
	assert_int_equal(forward_reply_parse(line, (size_t)n - 2, LONGEST_USER, &r), 0);
	assert_int_equal(strlen(r.text), FORWARD_TEXT_MAX);

	/* invalid fields and a short buffer */
	assert_int_equal(forward_reply_format(line, sizeof(line), "Bob", 250, "2.0.0", "x"), -1);
	assert_int_equal(forward_reply_format(line, sizeof(line), "bob", 200, "2.0.0", "x"), -1);
	assert_int_equal(forward_reply_format(line, sizeof(line), "bob", 451, "5.0.0", "x"), -1);
	assert_int_equal(forward_reply_format(line, sizeof(line), "bob", 451, "4.0", "x"), -1);
	assert_int_equal(forward_reply_format(line, 10, "bob", 250, "2.0.0", "x"), -1);
}

/* ---- response bodies ----------------------------------------------------- */

static void test_replies_ok(void **state)
{
	static const char *const users[] = { "bob", "carol", "dave" };
	static const char body[] = "bob 250 2.0.0 Saved as uid 1\r\n"
				   "carol 452 4.2.2 mailbox full\r\n"
				   "dave 550 5.1.1 no such user\r\n";
	struct forward_reply out[3];
	bool ok[3], malformed = true;

	assert_int_equal(parse_body(body, strlen(body), users, 3, out, ok, &malformed), 3);
	assert_false(malformed);
	assert_true(ok[0] && ok[1] && ok[2]);
	assert_int_equal(out[0].code, 250);
	assert_int_equal(out[1].code, 452);
	assert_string_equal(out[1].enh, "4.2.2");
	assert_int_equal(out[2].code, 550);
	assert_string_equal(out[2].text, "no such user");
}

static void test_replies_bad(void **state)
{
	static const char *const users[] = { "bob", "carol" };
	struct forward_reply out[2];
	bool ok[2], malformed;
	const char *b;

	/* empty: both missing */
	assert_int_equal(parse_body("", 0, users, 2, out, ok, &malformed), 0);
	assert_true(malformed);
	assert_false(ok[0] || ok[1]);

	/* the second line missing */
	b = "bob 250 2.0.0 ok\r\n";
	assert_int_equal(parse_body(b, strlen(b), users, 2, out, ok, &malformed), 1);
	assert_true(malformed && ok[0] && !ok[1]);

	/* the last line without CRLF, or with a bare LF */
	b = "bob 250 2.0.0 ok\r\ncarol 250 2.0.0 ok";
	assert_int_equal(parse_body(b, strlen(b), users, 2, out, ok, &malformed), 1);
	assert_true(malformed && ok[0] && !ok[1]);
	b = "bob 250 2.0.0 ok\r\ncarol 250 2.0.0 ok\n";
	assert_int_equal(parse_body(b, strlen(b), users, 2, out, ok, &malformed), 1);
	assert_true(malformed && ok[0] && !ok[1]);
	b = "bob 250 2.0.0 ok\ncarol 250 2.0.0 ok\r\n";
	assert_int_equal(parse_body(b, strlen(b), users, 2, out, ok, &malformed), 1);
	assert_true(malformed && !ok[0] && ok[1]);

	/* out of order: neither counts */
	b = "carol 250 2.0.0 ok\r\nbob 250 2.0.0 ok\r\n";
	assert_int_equal(parse_body(b, strlen(b), users, 2, out, ok, &malformed), 0);
	assert_true(malformed);

	/* a bad line does not spoil the next */
	b = "bob 250 9.9.9 ok\r\ncarol 250 2.0.0 ok\r\n";
	assert_int_equal(parse_body(b, strlen(b), users, 2, out, ok, &malformed), 1);
	assert_true(malformed && !ok[0] && ok[1]);

	/* an extra line: the answers stand, the body is malformed */
	b = "bob 250 2.0.0 ok\r\ncarol 250 2.0.0 ok\r\nmallory 250 2.0.0 ok\r\n";
	assert_int_equal(parse_body(b, strlen(b), users, 2, out, ok, &malformed), 2);
	assert_true(malformed);
	b = "bob 250 2.0.0 ok\r\ncarol 250 2.0.0 ok\r\n\r\n";
	assert_int_equal(parse_body(b, strlen(b), users, 2, out, ok, &malformed), 2);
	assert_true(malformed);

	/* an empty line in place of one */
	b = "\r\ncarol 250 2.0.0 ok\r\n";
	assert_int_equal(parse_body(b, strlen(b), users, 2, out, ok, &malformed), 1);
	assert_true(malformed && !ok[0] && ok[1]);
}

/* Random bytes, and random mutations of a valid body: never a crash, and
 * an answer counts only when its line is exactly valid. */
static void test_replies_random(void **state)
{
	static const char *const users[] = { "bob", "carol" };
	static const char good[] = "bob 250 2.0.0 ok\r\ncarol 452 4.2.2 full\r\n";
	struct forward_reply out[2];
	bool ok[2], malformed;
	char buf[128];

	srand(42);
	for (int iter = 0; iter < 20000; iter++) {
		size_t len;

		if (iter % 2 == 0) {
			len = (size_t)rand() % sizeof(buf);
			for (size_t i = 0; i < len; i++)
				buf[i] = (char)(rand() % 256);
		} else {
			len = sizeof(good) - 1;
			memcpy(buf, good, len);
			buf[rand() % len] = (char)(rand() % 256);
			if (rand() % 4 == 0)
				len -= (size_t)rand() % len;
		}
		(void)parse_body(buf, len, users, 2, out, ok, &malformed);
		for (int k = 0; k < 2; k++) {
			if (!ok[k])
				continue;
			assert_true(out[k].code == 250 ||
				    (out[k].code >= 400 && out[k].code <= 599));
			assert_true(out[k].enh[0] == (char)('0' + out[k].code / 100));
			assert_true(strlen(out[k].text) >= 1);
		}
	}
}

/* ---- shared LMTP prefix and replies -------------------------------------- */

static void test_prefix(void **state)
{
	char buf[LMTP_PREFIX_MAX], addr[LMTP_ADDR_MAX + 1];
	int n;

	n = lmtp_prefix(buf, sizeof(buf), "alice@example.org", "bob+x@example.com");
	assert_string_equal(buf, "Return-Path: <alice@example.org>\r\n"
				 "Delivered-To: bob+x@example.com\r\n");
	assert_int_equal(n, strlen(buf));
	n = lmtp_prefix(buf, sizeof(buf), "", "bob@example.com");
	assert_string_equal(buf, "Return-Path: <>\r\nDelivered-To: bob@example.com\r\n");
	/* the longest addresses fit LMTP_PREFIX_MAX */
	memset(addr, 'a', LMTP_ADDR_MAX);
	addr[LMTP_ADDR_MAX] = '\0';
	n = lmtp_prefix(buf, sizeof(buf), addr, addr);
	assert_true(n > 2 * LMTP_ADDR_MAX);
	assert_int_equal(lmtp_prefix(buf, 20, "a@b", "c@d"), -1);
}

static void test_store_reply(void **state)
{
	struct lmtp_store_reply r;

	lmtp_store_reply(STORE_OK, 42, &r);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.enh, "2.0.0");
	assert_string_equal(r.text, "Saved as uid 42");
	lmtp_store_reply(STORE_QUOTA, 0, &r);
	assert_int_equal(r.code, 452);
	assert_string_equal(r.enh, "4.2.2");
	assert_string_equal(r.text, "mailbox full");
	lmtp_store_reply(STORE_NOTFOUND, 0, &r);
	assert_int_equal(r.code, 550);
	assert_string_equal(r.enh, "5.1.1");
	lmtp_store_reply(STORE_DISABLED, 0, &r);
	assert_int_equal(r.code, 550);
	assert_string_equal(r.enh, "5.2.1");
	for (int e = STORE_FULL; e >= STORE_DISABLED; e--) {
		if (e == STORE_NOTFOUND || e == STORE_QUOTA || e == STORE_DISABLED)
			continue;
		lmtp_store_reply(e, 0, &r);
		assert_int_equal(r.code, 451);
		assert_string_equal(r.enh, "4.3.0");
		assert_string_equal(r.text, "temporary store failure");
	}
	/* every reply is a valid response line at the home */
	for (int e = STORE_OK; e >= STORE_DISABLED; e--) {
		char line[FORWARD_LINE_MAX + 1];

		lmtp_store_reply(e, 7, &r);
		assert_true(forward_reply_format(line, sizeof(line), "bob", r.code, r.enh,
						 r.text) > 0);
	}
	assert_string_equal(lmtp_result_name(STORE_OK), "ok");
	assert_string_equal(lmtp_result_name(STORE_FULL), "store_full");
	assert_string_equal(lmtp_result_name(STORE_INVAL), "io");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_ok),
		cmocka_unit_test(test_request_missing),
		cmocka_unit_test(test_request_repeated),
		cmocka_unit_test(test_request_bad_rcpt),
		cmocka_unit_test(test_request_bad_values),
		cmocka_unit_test(test_request_limits),
		cmocka_unit_test(test_reply_parse_ok),
		cmocka_unit_test(test_reply_parse_bad),
		cmocka_unit_test(test_reply_format),
		cmocka_unit_test(test_replies_ok),
		cmocka_unit_test(test_replies_bad),
		cmocka_unit_test(test_replies_random),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_store_reply),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
