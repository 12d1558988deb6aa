/*
 * test_lmtp_parse.c - the LMTP command parser and the DATA reader.
 *
 * lmtp_parse.c is compiled into this file (not taken from the library) with
 * its allocator redirected, so allocation failures can be injected into
 * the DATA reader.  Every command line is parsed from an exact-size heap
 * copy, so ASan catches any read past the given length.
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

/* ---- allocation failure injection -------------------------------------- */

static int fail_alloc_after = -1; /* -1: never; n: the (n+1)th call fails */

static bool alloc_should_fail(void)
{
	if (fail_alloc_after < 0)
		return false;
	if (fail_alloc_after == 0)
		return true;
	fail_alloc_after--;
	return false;
}

static void *t_calloc(size_t n, size_t sz)
{
	return alloc_should_fail() ? NULL : calloc(n, sz);
}

static void *t_realloc(void *p, size_t sz)
{
	return alloc_should_fail() ? NULL : realloc(p, sz);
}

#define calloc t_calloc
#define realloc t_realloc
#include "../../popnode/lmtp_parse.c"
#undef calloc
#undef realloc

/* ---- command helpers ---------------------------------------------------- */

static struct lmtp_cmd cmd;

/* Parse s from an exact-length heap copy (no NUL after it). */
static enum lmtp_perr parse_n(const char *s, size_t len)
{
	char *copy = malloc(len ? len : 1);
	enum lmtp_perr err;

	assert_non_null(copy);
	memcpy(copy, s, len);
	err = lmtp_parse_command(copy, len, &cmd);
	free(copy);
	return err;
}

static enum lmtp_perr parse(const char *s)
{
	return parse_n(s, strlen(s));
}

static void expect_err(const char *line, enum lmtp_perr err)
{
	enum lmtp_perr got = parse(line);

	if (got != err)
		fail_msg("\"%s\": expected error %d, got %d (%s)", line, err, got,
			 cmd.detail ? cmd.detail : "-");
	if (err != LMTP_PERR_OK)
		assert_non_null(cmd.detail);
}

static void expect_reply(enum lmtp_perr err, enum lmtp_cmd_type type, unsigned code,
			 const char *enh)
{
	const char *e = NULL;

	assert_int_equal(lmtp_perr_reply(err, type, &e), code);
	assert_string_equal(e, enh);
}

/* ---- commands ----------------------------------------------------------- */

static void test_lhlo(void **state)
{
	expect_err("LHLO mx.example.org\r\n", LMTP_PERR_OK);
	assert_int_equal(cmd.type, LMTP_CMD_LHLO);
	assert_string_equal(cmd.lhlo, "mx.example.org");
	assert_int_equal(cmd.lhlo_len, 14);

	expect_err("lhlo [192.0.2.1]", LMTP_PERR_OK);
	assert_string_equal(cmd.lhlo, "[192.0.2.1]");
	expect_err("LhLo   host\n", LMTP_PERR_OK);
	assert_string_equal(cmd.lhlo, "host");
	expect_err("LHLO host  \r\n", LMTP_PERR_OK);
	assert_string_equal(cmd.lhlo, "host");

	expect_err("LHLO\r\n", LMTP_PERR_SYNTAX);
	assert_int_equal(cmd.type, LMTP_CMD_LHLO);
	expect_err("LHLO   \r\n", LMTP_PERR_SYNTAX);
	expect_err("LHLO a b\r\n", LMTP_PERR_SYNTAX);
	expect_err("LHLO a\x01\r\n", LMTP_PERR_SYNTAX);
	expect_err("LHLO h\xc3\xa9st\r\n", LMTP_PERR_SYNTAX);

	char line[300] = "LHLO ";
	memset(line + 5, 'a', 255);
	line[260] = '\0';
	expect_err(line, LMTP_PERR_OK);
	assert_int_equal(cmd.lhlo_len, 255);
	line[260] = 'a';
	line[261] = '\0';
	expect_err(line, LMTP_PERR_SYNTAX);
}

static void test_simple_commands(void **state)
{
	static const struct {
		const char *line;
		enum lmtp_cmd_type type;
	} ok[] = {
		{ "DATA\r\n", LMTP_CMD_DATA }, { "data", LMTP_CMD_DATA },
		{ "RSET\r\n", LMTP_CMD_RSET }, { "rset \r\n", LMTP_CMD_RSET },
		{ "NOOP\r\n", LMTP_CMD_NOOP }, { "NOOP anything at all\r\n", LMTP_CMD_NOOP },
		{ "QUIT\r\n", LMTP_CMD_QUIT }, { "Quit\n", LMTP_CMD_QUIT },
		{ "VRFY user\r\n", LMTP_CMD_VRFY }, { "HELP\r\n", LMTP_CMD_HELP },
		{ "HELP DATA\r\n", LMTP_CMD_HELP },
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		expect_err(ok[i].line, LMTP_PERR_OK);
		assert_int_equal(cmd.type, ok[i].type);
		assert_null(cmd.detail);
	}
	expect_err("DATA now\r\n", LMTP_PERR_SYNTAX);
	assert_int_equal(cmd.type, LMTP_CMD_DATA);
	expect_err("RSET x\r\n", LMTP_PERR_SYNTAX);
	expect_err("QUIT please\r\n", LMTP_PERR_SYNTAX);
	expect_err("VRFY\r\n", LMTP_PERR_SYNTAX);
	expect_err("VRFY  \r\n", LMTP_PERR_SYNTAX);
	assert_string_equal(lmtp_cmd_name(LMTP_CMD_MAIL), "MAIL");
	assert_string_equal(lmtp_cmd_name(LMTP_CMD_NONE), "?");
}

static void test_bad_lines(void **state)
{
	expect_err("HELO host\r\n", LMTP_PERR_WRONG_PROTO);
	expect_err("ehlo host\r\n", LMTP_PERR_WRONG_PROTO);
	expect_err("EXPN list\r\n", LMTP_PERR_NOT_IMPL);
	expect_err("BDAT 100 LAST\r\n", LMTP_PERR_NOT_IMPL);
	expect_err("STARTTLS\r\n", LMTP_PERR_NOT_IMPL);
	expect_err("FOO\r\n", LMTP_PERR_UNKNOWN);
	assert_int_equal(cmd.type, LMTP_CMD_NONE);
	expect_err("DATAX\r\n", LMTP_PERR_UNKNOWN);
	expect_err("DAT\r\n", LMTP_PERR_UNKNOWN);
	expect_err(" DATA\r\n", LMTP_PERR_UNKNOWN);
	expect_err("\tQUIT\r\n", LMTP_PERR_UNKNOWN);
	expect_err("\xff\xfe\xfd\r\n", LMTP_PERR_UNKNOWN);
	expect_err("", LMTP_PERR_LINE);
	expect_err("\r\n", LMTP_PERR_LINE);
	expect_err("\n", LMTP_PERR_LINE);
	expect_err("   \r\n", LMTP_PERR_LINE);
	assert_int_equal(parse_n("QUIT\0\r\n", 7), LMTP_PERR_LINE);
	assert_int_equal(parse_n("\0", 1), LMTP_PERR_LINE);
	expect_err("NOOP a\rb\r\n", LMTP_PERR_LINE);
	expect_err("QUIT\r", LMTP_PERR_LINE);
	expect_err("QUIT\r\r\n", LMTP_PERR_LINE);
	expect_err("QUIT\n\n", LMTP_PERR_LINE);
}

static void test_mail(void **state)
{
	expect_err("MAIL FROM:<alice@example.com>\r\n", LMTP_PERR_OK);
	assert_int_equal(cmd.type, LMTP_CMD_MAIL);
	assert_false(cmd.addr.null);
	assert_string_equal(cmd.addr.local, "alice");
	assert_int_equal(cmd.addr.local_len, 5);
	assert_string_equal(cmd.addr.domain, "example.com");
	assert_int_equal(cmd.addr.domain_len, 11);
	assert_string_equal(cmd.addr.addr, "alice@example.com");
	assert_int_equal(cmd.addr.addr_len, 17);
	assert_false(cmd.has_size);
	assert_int_equal(cmd.body, LMTP_BODY_UNSPEC);

	expect_err("MAIL FROM:<>\r\n", LMTP_PERR_OK);
	assert_true(cmd.addr.null);
	assert_string_equal(cmd.addr.addr, "");
	assert_int_equal(cmd.addr.addr_len, 0);

	expect_err("mail from:<Bob.Smith+tag@Mail.Example.COM>", LMTP_PERR_OK);
	assert_string_equal(cmd.addr.local, "Bob.Smith+tag");
	assert_string_equal(cmd.addr.domain, "Mail.Example.COM");
	expect_err("MAIL FROM: <a@b.example>\r\n", LMTP_PERR_OK);
	assert_string_equal(cmd.addr.addr, "a@b.example");
	expect_err("MAIL FROM:<SRS0=abcd=XY=example.org=user@fwd.example>\r\n", LMTP_PERR_OK);
	assert_string_equal(cmd.addr.local, "SRS0=abcd=XY=example.org=user");
	expect_err("MAIL FROM:<user@under_score.example>\r\n", LMTP_PERR_OK);

	/* missing brackets, broken paths */
	expect_err("MAIL FROM:alice@example.com\r\n", LMTP_PERR_ADDRESS);
	assert_int_equal(cmd.type, LMTP_CMD_MAIL);
	expect_err("MAIL FROM:<alice@example.com\r\n", LMTP_PERR_ADDRESS);
	expect_err("MAIL FROM:alice@example.com>\r\n", LMTP_PERR_ADDRESS);
	expect_err("MAIL FROM:<alice>\r\n", LMTP_PERR_ADDRESS);
	expect_err("MAIL FROM:<postmaster>\r\n", LMTP_PERR_ADDRESS);
	expect_err("MAIL FROM:<@example.com>\r\n", LMTP_PERR_ADDRESS);
	expect_err("MAIL FROM:<a b@example.com>\r\n", LMTP_PERR_ADDRESS);
	expect_err("MAIL FROM:\r\n", LMTP_PERR_ADDRESS);
	expect_err("MAIL FROM:<<>>\r\n", LMTP_PERR_ADDRESS);
	/* wrong keyword */
	expect_err("MAIL\r\n", LMTP_PERR_SYNTAX);
	expect_err("MAIL <a@b.c>\r\n", LMTP_PERR_SYNTAX);
	expect_err("MAIL TO:<a@b.c>\r\n", LMTP_PERR_SYNTAX);
	expect_err("MAIL FROM <a@b.c>\r\n", LMTP_PERR_SYNTAX);
	expect_err("MAIL FROM:<a@b.c>junk\r\n", LMTP_PERR_SYNTAX);
	expect_err("MAIL FROM:<>junk\r\n", LMTP_PERR_SYNTAX);
}

static void test_mail_params(void **state)
{
	expect_err("MAIL FROM:<a@b.c> SIZE=12345 BODY=8BITMIME\r\n", LMTP_PERR_OK);
	assert_true(cmd.has_size);
	assert_int_equal(cmd.size, 12345);
	assert_int_equal(cmd.body, LMTP_BODY_8BITMIME);
	expect_err("MAIL FROM:<> body=7bit   size=0\r\n", LMTP_PERR_OK);
	assert_true(cmd.addr.null);
	assert_int_equal(cmd.body, LMTP_BODY_7BIT);
	assert_true(cmd.has_size);
	assert_int_equal(cmd.size, 0);
	expect_err("MAIL FROM:<a@b.c> SIZE=18446744073709551615\r\n", LMTP_PERR_OK);
	assert_true(cmd.size == UINT64_MAX);

	expect_err("MAIL FROM:<a@b.c> SIZE=18446744073709551616\r\n", LMTP_PERR_PARAM_VALUE);
	expect_err("MAIL FROM:<a@b.c> SIZE=999999999999999999999\r\n", LMTP_PERR_PARAM_VALUE);
	expect_err("MAIL FROM:<a@b.c> SIZE=12k\r\n", LMTP_PERR_PARAM_VALUE);
	expect_err("MAIL FROM:<a@b.c> SIZE=-1\r\n", LMTP_PERR_PARAM_VALUE);
	expect_err("MAIL FROM:<a@b.c> SIZE\r\n", LMTP_PERR_PARAM_VALUE);
	expect_err("MAIL FROM:<a@b.c> SIZE=1 SIZE=2\r\n", LMTP_PERR_PARAM_VALUE);
	expect_err("MAIL FROM:<a@b.c> BODY=BINARYMIME\r\n", LMTP_PERR_PARAM_VALUE);
	expect_err("MAIL FROM:<a@b.c> BODY\r\n", LMTP_PERR_PARAM_VALUE);
	expect_err("MAIL FROM:<a@b.c> BODY=7BIT BODY=7BIT\r\n", LMTP_PERR_PARAM_VALUE);
	expect_err("MAIL FROM:<a@b.c> SMTPUTF8\r\n", LMTP_PERR_PARAM_UNKNOWN);
	expect_err("MAIL FROM:<a@b.c> AUTH=<>\r\n", LMTP_PERR_PARAM_UNKNOWN);
	expect_err("MAIL FROM:<a@b.c> X-FOO=bar SIZE=1\r\n", LMTP_PERR_PARAM_UNKNOWN);
	expect_err("MAIL FROM:<a@b.c> SIZE=\r\n", LMTP_PERR_SYNTAX);
	expect_err("MAIL FROM:<a@b.c> =1\r\n", LMTP_PERR_SYNTAX);
	expect_err("MAIL FROM:<a@b.c> -X=1\r\n", LMTP_PERR_SYNTAX);
	expect_err("MAIL FROM:<a@b.c> SIZE=1=2\r\n", LMTP_PERR_SYNTAX);
	expect_err("MAIL FROM:<a@b.c> SIZE=1\xff\r\n", LMTP_PERR_SYNTAX);
	expect_err("MAIL FROM:<a@b.c> SI_ZE=1\r\n", LMTP_PERR_SYNTAX);

	expect_reply(LMTP_PERR_PARAM_UNKNOWN, LMTP_CMD_MAIL, 555, "5.5.4");
	expect_reply(LMTP_PERR_PARAM_VALUE, LMTP_CMD_MAIL, 501, "5.5.4");
}

static void test_rcpt(void **state)
{
	expect_err("RCPT TO:<user@example.org>\r\n", LMTP_PERR_OK);
	assert_int_equal(cmd.type, LMTP_CMD_RCPT);
	assert_string_equal(cmd.addr.local, "user");
	assert_string_equal(cmd.addr.domain, "example.org");
	assert_string_equal(cmd.addr.addr, "user@example.org");

	expect_err("rcpt to: <User.Name@Example.ORG>\r\n", LMTP_PERR_OK);
	assert_string_equal(cmd.addr.local, "User.Name");
	assert_string_equal(cmd.addr.domain, "Example.ORG");

	/* postmaster without a domain (RFC 5321 4.1.1.3) */
	expect_err("RCPT TO:<postmaster>\r\n", LMTP_PERR_OK);
	assert_string_equal(cmd.addr.local, "postmaster");
	assert_int_equal(cmd.addr.domain_len, 0);
	assert_string_equal(cmd.addr.addr, "postmaster");
	expect_err("RCPT TO:<PostMaster>\r\n", LMTP_PERR_OK);
	expect_err("RCPT TO:<webmaster>\r\n", LMTP_PERR_ADDRESS);

	/* address literal */
	expect_err("RCPT TO:<u@[192.0.2.1]>\r\n", LMTP_PERR_OK);
	assert_string_equal(cmd.addr.domain, "[192.0.2.1]");
	expect_err("RCPT TO:<u@[IPv6:2001:db8::1]>\r\n", LMTP_PERR_OK);
	assert_string_equal(cmd.addr.domain, "[IPv6:2001:db8::1]");
	expect_err("RCPT TO:<u@[]>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<u@[1.2.3.4>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<u@[1.2[3.4]>\r\n", LMTP_PERR_ADDRESS);

	/* bad forms */
	expect_err("RCPT TO:<>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:user@example.org\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<user@example.org\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<user@>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<@example.org>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<.user@x.org>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<user.@x.org>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<us..er@x.org>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<user@x..org>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<user@x.org.>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<user@.x.org>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<user@x!org>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<user@x.org@y.org>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<us(er@x.org>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<j\xc3\xbcrgen@x.org>\r\n", LMTP_PERR_ADDRESS);
	assert_non_null(strstr(cmd.detail, "SMTPUTF8"));
	expect_err("RCPT TO:<user@x.org> NOTIFY=NEVER\r\n", LMTP_PERR_PARAM_UNKNOWN);
	expect_err("RCPT TO:<user@x.org> ORCPT=rfc822;user@x.org\r\n", LMTP_PERR_PARAM_UNKNOWN);
	expect_err("RCPT TO:<user@x.org> !!\r\n", LMTP_PERR_SYNTAX);
	expect_err("RCPT TO <user@x.org>\r\n", LMTP_PERR_SYNTAX);
	expect_err("RCPT FROM:<user@x.org>\r\n", LMTP_PERR_SYNTAX);
	expect_err("RCPT\r\n", LMTP_PERR_SYNTAX);

	expect_reply(LMTP_PERR_ADDRESS, LMTP_CMD_RCPT, 501, "5.1.3");
	expect_reply(LMTP_PERR_ADDRESS, LMTP_CMD_MAIL, 501, "5.1.7");
}

static void test_quoted_local(void **state)
{
	expect_err("RCPT TO:<\"john doe\"@example.org>\r\n", LMTP_PERR_OK);
	assert_string_equal(cmd.addr.local, "john doe");
	assert_int_equal(cmd.addr.local_len, 8);
	assert_string_equal(cmd.addr.addr, "\"john doe\"@example.org");

	expect_err("RCPT TO:<\"a\\\"b\\\\c\"@x.org>\r\n", LMTP_PERR_OK);
	assert_string_equal(cmd.addr.local, "a\"b\\c");
	assert_string_equal(cmd.addr.addr, "\"a\\\"b\\\\c\"@x.org");

	expect_err("RCPT TO:<\"user\"@x.org>\r\n", LMTP_PERR_OK);
	assert_string_equal(cmd.addr.local, "user");
	expect_err("MAIL FROM:<\"\"@x.org>\r\n", LMTP_PERR_OK);
	assert_int_equal(cmd.addr.local_len, 0);
	expect_err("MAIL FROM:<\"<>@\"@x.org>\r\n", LMTP_PERR_OK);
	assert_string_equal(cmd.addr.local, "<>@");

	expect_err("RCPT TO:<\"unterminated@x.org>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<\"a\"b@x.org>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<\"a\tb\"@x.org>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<\"a\\\tb\"@x.org>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<\"a\\\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<\"a\\", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<\"postmaster\">\r\n", LMTP_PERR_ADDRESS);
}

static void test_source_route(void **state)
{
	expect_err("RCPT TO:<@relay1.example,@relay2.example:user@example.org>\r\n", LMTP_PERR_OK);
	assert_string_equal(cmd.addr.addr, "user@example.org");
	assert_string_equal(cmd.addr.local, "user");
	assert_string_equal(cmd.addr.domain, "example.org");
	expect_err("MAIL FROM:<@[192.0.2.1]:a@b.example> SIZE=10\r\n", LMTP_PERR_OK);
	assert_string_equal(cmd.addr.addr, "a@b.example");
	assert_int_equal(cmd.size, 10);

	expect_err("RCPT TO:<@relay1.example user@example.org>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<@relay1.example,user@example.org>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<@:user@example.org>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<@relay1.example:>\r\n", LMTP_PERR_ADDRESS);
	expect_err("RCPT TO:<@relay1.example,:u@x.org>\r\n", LMTP_PERR_ADDRESS);
}

static void test_address_limits(void **state)
{
	char line[1200];
	int n;

	/* local part of exactly LMTP_LOCAL_MAX, then one more */
	n = snprintf(line, sizeof(line), "RCPT TO:<");
	memset(line + n, 'l', LMTP_LOCAL_MAX);
	n += LMTP_LOCAL_MAX;
	snprintf(line + n, sizeof(line) - (size_t)n, "@x.org>\r\n");
	expect_err(line, LMTP_PERR_OK);
	assert_int_equal(cmd.addr.local_len, LMTP_LOCAL_MAX);
	memmove(line + 10, line + 9, strlen(line + 9) + 1);
	line[9] = 'l';
	expect_err(line, LMTP_PERR_ADDRESS);

	/* quoted: the raw form counts */
	n = snprintf(line, sizeof(line), "RCPT TO:<\"");
	for (int i = 0; i < 200; i++) {
		line[n++] = '\\';
		line[n++] = 'q';
	}
	snprintf(line + n, sizeof(line) - (size_t)n, "\"@x.org>\r\n");
	expect_err(line, LMTP_PERR_ADDRESS);

	/* domain of exactly LMTP_DOMAIN_MAX (labels of 63), then one more */
	n = snprintf(line, sizeof(line), "RCPT TO:<u@");
	for (int i = 0; i < LMTP_DOMAIN_MAX; i++)
		line[n++] = (i % 64 == 63) ? '.' : 'd';
	snprintf(line + n, sizeof(line) - (size_t)n, ">\r\n");
	expect_err(line, LMTP_PERR_OK);
	assert_int_equal(cmd.addr.domain_len, LMTP_DOMAIN_MAX);
	assert_int_equal(cmd.addr.addr_len, 2 + LMTP_DOMAIN_MAX);
	memmove(line + 12, line + 11, strlen(line + 11) + 1);
	line[11] = 'd';
	expect_err(line, LMTP_PERR_ADDRESS);

	/* both at the maximum: the whole address still fits */
	n = snprintf(line, sizeof(line), "MAIL FROM:<");
	memset(line + n, 'l', LMTP_LOCAL_MAX);
	n += LMTP_LOCAL_MAX;
	line[n++] = '@';
	for (int i = 0; i < LMTP_DOMAIN_MAX; i++)
		line[n++] = (i % 64 == 63) ? '.' : 'd';
	snprintf(line + n, sizeof(line) - (size_t)n, ">\r\n");
	expect_err(line, LMTP_PERR_OK);
	assert_int_equal(cmd.addr.addr_len, LMTP_ADDR_MAX);
	assert_int_equal(strlen(cmd.addr.addr), LMTP_ADDR_MAX);
}

static void test_replies(void **state)
{
	expect_reply(LMTP_PERR_LINE, LMTP_CMD_NONE, 500, "5.5.2");
	expect_reply(LMTP_PERR_UNKNOWN, LMTP_CMD_NONE, 500, "5.5.1");
	expect_reply(LMTP_PERR_WRONG_PROTO, LMTP_CMD_NONE, 500, "5.5.1");
	expect_reply(LMTP_PERR_NOT_IMPL, LMTP_CMD_NONE, 502, "5.5.1");
	expect_reply(LMTP_PERR_SYNTAX, LMTP_CMD_LHLO, 501, "5.5.4");
}

/* Every prefix of a valid line parses without reading past it. */
static void test_prefixes(void **state)
{
	static const char *const lines[] = {
		"MAIL FROM:<@r.example:\"a\\\"b\"@[192.0.2.1]> SIZE=123 BODY=8BITMIME\r\n",
		"RCPT TO:<first.last@sub.example.org>\r\n",
		"LHLO mx.example.org\r\n",
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		for (size_t len = 0; len <= strlen(lines[i]); len++)
			parse_n(lines[i], len);
	assert_int_equal(parse_n(lines[0], strlen(lines[0])), LMTP_PERR_OK);
}

/* ---- DATA helpers ------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

enum chunking { WHOLE, BYTES, RANDOM };

struct data_result {
	enum lmtp_data_status status;
	size_t used;
	enum lmtp_data_err err;
	size_t size;
	char *body;
	size_t body_len;
};

static void data_result_free(struct data_result *r)
{
	free(r->body);
	r->body = NULL;
}

/* Feed wire (len bytes) in the given chunking until DONE or the end. */
static struct data_result run_data(const char *wire, size_t len, size_t max_line, size_t max_size,
				   enum chunking how)
{
	struct lmtp_data *d = lmtp_data_new(max_line, max_size);
	struct data_result r = { .status = LMTP_DATA_MORE };
	size_t pos = 0;
	const char *b;

	assert_non_null(d);
	while (pos < len) {
		size_t n = how == WHOLE ? len - pos : how == BYTES ? 1 : 1 + rng() % 4096;
		size_t used = (size_t)-1;
		char *chunk;

		if (n > len - pos)
			n = len - pos;
		/* exact-size copy: ASan catches reads past the chunk */
		chunk = malloc(n);
		assert_non_null(chunk);
		memcpy(chunk, wire + pos, n);
		r.status = lmtp_data_feed(d, chunk, n, &used);
		free(chunk);
		assert_true(used <= n);
		pos += used;
		if (r.status == LMTP_DATA_DONE)
			break;
		assert_int_equal(used, n);
	}
	r.used = pos;
	r.err = lmtp_data_error(d);
	r.size = lmtp_data_size(d);
	b = lmtp_data_body(d, &r.body_len);
	if (b != NULL) {
		r.body = malloc(r.body_len + 1);
		assert_non_null(r.body);
		memcpy(r.body, b, r.body_len);
		r.body[r.body_len] = '\0';
	} else {
		assert_int_equal(r.body_len, 0);
	}
	lmtp_data_free(&d);
	assert_null(d);
	return r;
}

/* The same wire gives the same result in every chunking. */
static void expect_data(const char *wire, size_t len, const char *body, size_t body_len,
			size_t used)
{
	static const enum chunking hows[] = { WHOLE, BYTES, RANDOM, RANDOM, RANDOM };

	for (size_t i = 0; i < sizeof(hows) / sizeof(hows[0]); i++) {
		struct data_result r = run_data(wire, len, 0, 1 << 20, hows[i]);

		assert_int_equal(r.status, LMTP_DATA_DONE);
		assert_int_equal(r.err, LMTP_DATA_OK);
		assert_int_equal(r.used, used);
		assert_int_equal(r.size, body_len);
		assert_int_equal(r.body_len, body_len);
		if (body_len > 0)
			assert_memory_equal(r.body, body, body_len);
		data_result_free(&r);
	}
}

#define EXPECT_DATA(wire, body) \
	expect_data(wire, sizeof(wire) - 1, body, sizeof(body) - 1, sizeof(wire) - 1)

static void test_data_basic(void **state)
{
	EXPECT_DATA("hello\r\n.\r\n", "hello\r\n");
	EXPECT_DATA("Subject: x\r\n\r\nbody\r\nline 2\r\n.\r\n", "Subject: x\r\n\r\nbody\r\nline 2\r\n");
	EXPECT_DATA(".\r\n", "");
	EXPECT_DATA("\r\n.\r\n", "\r\n");
	EXPECT_DATA("a\r\n\r\n\r\n.\r\n", "a\r\n\r\n\r\n");
	/* 8-bit and NUL bytes are data */
	expect_data("\xc3\xa9\0x\r\n.\r\n", 9, "\xc3\xa9\0x\r\n", 6, 9);
}

static void test_data_dots(void **state)
{
	EXPECT_DATA("..\r\n.\r\n", ".\r\n");
	EXPECT_DATA("..foo\r\n.\r\n", ".foo\r\n");
	EXPECT_DATA("...\r\n.\r\n", "..\r\n");
	/* a single leading dot is dropped too (RFC 5321 4.5.2) */
	EXPECT_DATA(".foo\r\n.\r\n", "foo\r\n");
	EXPECT_DATA("a\r\n.b\r\n..c\r\nd.\r\n.\r\n", "a\r\nb\r\n.c\r\nd.\r\n");
	EXPECT_DATA("a.\r\n.\r\n", "a.\r\n");
	EXPECT_DATA("x\r\n. \r\n.\r\n", "x\r\n \r\n");
	/* ".\r" not followed by LF is not the end */
	EXPECT_DATA(".\rx\r\n.\r\n", "\rx\r\n");
	EXPECT_DATA(".\r\r\n.\r\n", "\r\r\n");
	EXPECT_DATA(".\r.\r\n.\r\n", "\r.\r\n");
}

static void test_data_line_ends(void **state)
{
	/* bare LF becomes CRLF, and ends DATA too */
	EXPECT_DATA("a\nb\n.\n", "a\r\nb\r\n");
	EXPECT_DATA("a\r\nb\n.\r\n", "a\r\nb\r\n");
	EXPECT_DATA("a\n.\r\n", "a\r\n");
	EXPECT_DATA("..x\n.\n", ".x\r\n");
	EXPECT_DATA("\n\n.\n", "\r\n\r\n");
	/* bare CR stays data and never ends anything (no smuggling) */
	EXPECT_DATA("a\rb\r\n.\r\n", "a\rb\r\n");
	EXPECT_DATA("a\r\r\n.\r\n", "a\r\r\n");
	EXPECT_DATA("a\r.\rb\r\n.\r\n", "a\r.\rb\r\n");
	EXPECT_DATA("a\r\n.\rQUIT\r\n.\r\n", "a\r\n\rQUIT\r\n");
	EXPECT_DATA("\r\r\r\n.\r\n", "\r\r\r\n");
}

static void test_data_pipelined_rest(void **state)
{
	static const char wire[] = "x\r\n.\r\nQUIT\r\n";
	static const char wire_lf[] = "x\n.\nMAIL FROM:<>\n";

	expect_data(wire, sizeof(wire) - 1, "x\r\n", 3, 6);
	expect_data(wire_lf, sizeof(wire_lf) - 1, "x\r\n", 3, 4);

	/* after DONE nothing more is used */
	struct lmtp_data *d = lmtp_data_new(0, 100);
	size_t used;

	assert_int_equal(lmtp_data_feed(d, wire, sizeof(wire) - 1, &used), LMTP_DATA_DONE);
	assert_int_equal(used, 6);
	assert_int_equal(lmtp_data_feed(d, "more\r\n", 6, &used), LMTP_DATA_DONE);
	assert_int_equal(used, 0);
	assert_int_equal(lmtp_data_feed(d, "", 0, &used), LMTP_DATA_DONE);

	/* reset: a second message through the same reader */
	lmtp_data_reset(d);
	assert_int_equal(lmtp_data_size(d), 0);
	assert_int_equal(lmtp_data_feed(d, "", 0, &used), LMTP_DATA_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(lmtp_data_feed(d, "second\r\n", 8, &used), LMTP_DATA_MORE);
	assert_int_equal(lmtp_data_feed(d, ".", 1, &used), LMTP_DATA_MORE);
	assert_int_equal(lmtp_data_feed(d, "\r", 1, &used), LMTP_DATA_MORE);
	assert_int_equal(lmtp_data_feed(d, "\nX", 2, &used), LMTP_DATA_DONE);
	assert_int_equal(used, 1);
	size_t blen;
	const char *b = lmtp_data_body(d, &blen);
	assert_int_equal(blen, 8);
	assert_memory_equal(b, "second\r\n", 8);
	lmtp_data_free(&d);
	lmtp_data_free(&d); /* NULL is fine */
	lmtp_data_free(NULL);
}

/* A message cut anywhere: never DONE before the terminator. */
static void test_data_incomplete(void **state)
{
	static const char wire[] = "a\r\n..b\r\n.c\r\n\r\n.\r\n";

	for (size_t cut = 0; cut < sizeof(wire) - 1; cut++) {
		struct data_result r = run_data(wire, cut, 0, 1000, BYTES);

		assert_int_equal(r.status, LMTP_DATA_MORE);
		assert_int_equal(r.used, cut);
		data_result_free(&r);
	}
}

static void test_data_size_limit(void **state)
{
	static const char wire[] = "0123456789\r\n0123456789\r\n.\r\nNOOP\r\n";
	struct data_result r;

	/* 24 bytes of message: fits at 24, not at 23 */
	r = run_data(wire, sizeof(wire) - 1, 0, 24, BYTES);
	assert_int_equal(r.status, LMTP_DATA_DONE);
	assert_int_equal(r.err, LMTP_DATA_OK);
	assert_int_equal(r.body_len, 24);
	data_result_free(&r);

	for (int how = WHOLE; how <= RANDOM; how++) {
		r = run_data(wire, sizeof(wire) - 1, 0, 23, (enum chunking)how);
		assert_int_equal(r.status, LMTP_DATA_DONE);
		assert_int_equal(r.err, LMTP_DATA_TOO_BIG);
		assert_int_equal(r.size, 24); /* still counted */
		assert_int_equal(r.used, sizeof(wire) - 1 - 6); /* end still found */
		assert_null(r.body);
		data_result_free(&r);
	}

	r = run_data(wire, sizeof(wire) - 1, 0, 0, WHOLE);
	assert_int_equal(r.err, LMTP_DATA_TOO_BIG);
	data_result_free(&r);
	r = run_data(".\r\n", 3, 0, 0, WHOLE);
	assert_int_equal(r.err, LMTP_DATA_OK);
	assert_int_equal(r.size, 0);
	data_result_free(&r);
}

static void test_data_line_limit(void **state)
{
	struct data_result r;

	/* 5 bytes per line allowed; CR split across chunks does not count */
	r = run_data("12345\r\n.2345\r\n.\r\n", 17, 5, 100, BYTES);
	assert_int_equal(r.err, LMTP_DATA_OK);
	assert_string_equal(r.body, "12345\r\n2345\r\n");
	data_result_free(&r);
	r = run_data("12345\n.\n", 8, 5, 100, BYTES);
	assert_int_equal(r.err, LMTP_DATA_OK);
	data_result_free(&r);

	r = run_data("123456\r\n.\r\n", 11, 5, 100, BYTES);
	assert_int_equal(r.status, LMTP_DATA_DONE);
	assert_int_equal(r.err, LMTP_DATA_LINE_TOO_LONG);
	assert_int_equal(r.used, 11);
	data_result_free(&r);
	r = run_data("ok\r\n..2345\r\n.\r\n", 15, 5, 100, WHOLE);
	assert_int_equal(r.err, LMTP_DATA_LINE_TOO_LONG);
	data_result_free(&r);
	r = run_data("1234\r\r\n.\r\n", 10, 5, 100, WHOLE); /* bare CR counts */
	assert_int_equal(r.err, LMTP_DATA_OK);
	data_result_free(&r);
	r = run_data("12345\r\r\n.\r\n", 11, 5, 100, RANDOM);
	assert_int_equal(r.err, LMTP_DATA_LINE_TOO_LONG);
	data_result_free(&r);

	/* too big wins over a long line */
	r = run_data("1234567890\r\n.\r\n", 15, 5, 4, WHOLE);
	assert_int_equal(r.err, LMTP_DATA_TOO_BIG);
	data_result_free(&r);
}

static void test_data_nomem(void **state)
{
	struct lmtp_data *d;
	size_t used;

	fail_alloc_after = 0;
	assert_null(lmtp_data_new(0, 100));

	/* the body buffer cannot be allocated: the end is still found */
	fail_alloc_after = 1;
	d = lmtp_data_new(0, 100);
	assert_non_null(d);
	assert_int_equal(lmtp_data_feed(d, "abc\r\n.\r\nQUIT", 12, &used), LMTP_DATA_DONE);
	assert_int_equal(used, 8);
	assert_int_equal(lmtp_data_error(d), LMTP_DATA_NOMEM);
	assert_int_equal(lmtp_data_size(d), 5);
	fail_alloc_after = -1;
	lmtp_data_reset(d);
	assert_int_equal(lmtp_data_feed(d, "abc\r\n.\r\n", 8, &used), LMTP_DATA_DONE);
	assert_int_equal(lmtp_data_error(d), LMTP_DATA_OK);
	lmtp_data_free(&d);

	/* growth fails half-way through a big message */
	fail_alloc_after = 2;
	d = lmtp_data_new(0, 1 << 20);
	char *big = malloc(100000);
	assert_non_null(big);
	memset(big, 'x', 100000);
	for (int i = 99; i < 100000; i += 100)
		big[i] = '\n';
	assert_int_equal(lmtp_data_feed(d, big, 100000, &used), LMTP_DATA_MORE);
	assert_int_equal(lmtp_data_feed(d, ".\n", 2, &used), LMTP_DATA_DONE);
	fail_alloc_after = -1;
	assert_int_equal(lmtp_data_error(d), LMTP_DATA_NOMEM);
	size_t blen;
	assert_null(lmtp_data_body(d, &blen));
	assert_int_equal(blen, 0);
	free(big);
	lmtp_data_free(&d);
}

/* Random message of about target bytes: lines of random length, many
 * starting with dots, bytes of every value but LF (bare CR included). */
static char *random_body(size_t target, size_t *len_r)
{
	char *b = malloc(target + 4096);
	size_t len = 0;

	assert_non_null(b);
	while (len < target) {
		size_t ll = rng() % 8 == 0 ? rng() % 2000 : rng() % 100;

		if (rng() % 4 == 0)
			b[len++] = '.';
		for (size_t i = 0; i < ll && len < target + 2048; i++) {
			char c = (char)(rng() % 256);

			if (c == '\n')
				c = 'n';
			if (c == '\r' && rng() % 2)
				c = 'r';
			b[len++] = c;
		}
		/* no CR right before the line end: it would be part of it */
		if (len > 0 && b[len - 1] == '\r')
			b[len - 1] = 'R';
		b[len++] = '\r';
		b[len++] = '\n';
	}
	*len_r = len;
	return b;
}

/* Dot-stuff body and append the terminator (and a pipelined command). */
static char *stuff(const char *body, size_t len, size_t *wire_len_r, size_t *used_r)
{
	char *w = malloc(2 * len + 32);
	size_t n = 0;
	bool bol = true;

	assert_non_null(w);
	for (size_t i = 0; i < len; i++) {
		if (bol && body[i] == '.')
			w[n++] = '.';
		w[n++] = body[i];
		bol = body[i] == '\n';
	}
	memcpy(w + n, ".\r\n", 3);
	n += 3;
	*used_r = n;
	memcpy(w + n, "QUIT\r\n", 6);
	*wire_len_r = n + 6;
	return w;
}

static void test_data_big_random(void **state)
{
	for (int round = 0; round < 3; round++) {
		size_t body_len, wire_len, used;
		char *body = random_body(round == 0 ? 2 * 1024 * 1024 : 300000, &body_len);
		char *wire = stuff(body, body_len, &wire_len, &used);

		for (int how = WHOLE; how <= RANDOM; how++) {
			struct data_result r = run_data(wire, wire_len, 0, 4 * 1024 * 1024,
							(enum chunking)how);

			assert_int_equal(r.status, LMTP_DATA_DONE);
			assert_int_equal(r.err, LMTP_DATA_OK);
			assert_int_equal(r.used, used);
			assert_int_equal(r.body_len, body_len);
			assert_int_equal(r.size, body_len);
			assert_memory_equal(r.body, body, body_len);
			data_result_free(&r);
		}
		/* and over the limit, in random chunks */
		struct data_result r = run_data(wire, wire_len, 0, body_len - 1, RANDOM);
		assert_int_equal(r.err, LMTP_DATA_TOO_BIG);
		assert_int_equal(r.used, used);
		assert_int_equal(r.size, body_len);
		data_result_free(&r);
		free(body);
		free(wire);
	}
}

/* Bare LFs in a big body come out as CRLF. */
static void test_data_big_bare_lf(void **state)
{
	size_t body_len, wire_len, used, lf_len = 0, lf_used;
	char *body = random_body(500000, &body_len);
	char *wire = stuff(body, body_len, &wire_len, &used);
	char *lf = malloc(wire_len);

	assert_non_null(lf);
	/* drop every CR that precedes an LF */
	for (size_t i = 0; i < wire_len; i++) {
		if (wire[i] == '\r' && i + 1 < wire_len && wire[i + 1] == '\n')
			continue;
		lf[lf_len++] = wire[i];
	}
	lf_used = lf_len - 5; /* "QUIT\n" follows */
	expect_data(lf, lf_len, body, body_len, lf_used);
	free(lf);
	free(body);
	free(wire);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lhlo),
		cmocka_unit_test(test_simple_commands),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_mail),
		cmocka_unit_test(test_mail_params),
		cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_quoted_local),
		cmocka_unit_test(test_source_route),
		cmocka_unit_test(test_address_limits),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_data_basic),
		cmocka_unit_test(test_data_dots),
		cmocka_unit_test(test_data_line_ends),
		cmocka_unit_test(test_data_pipelined_rest),
		cmocka_unit_test(test_data_incomplete),
		cmocka_unit_test(test_data_size_limit),
		cmocka_unit_test(test_data_line_limit),
		cmocka_unit_test(test_data_nomem),
		cmocka_unit_test(test_data_big_random),
		cmocka_unit_test(test_data_big_bare_lf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
