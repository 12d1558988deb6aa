/*
 * test_pop3_parse.c - unit tests for the POP3 command parser
 * (imapproxy/pop3_parse.c): every command, case and blank handling, every
 * error class, limits at and just past their edge, bytes the line must
 * never contain, and a sweep over truncations and single bytes checking
 * that results are always self-consistent.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "pop3_parse.h"

static int parse(const char *line, struct pop3_command *c)
{
	return pop3_parse_line(line, strlen(line), c);
}

static void assert_arg(const struct pop3_command *c, unsigned i, const char *want)
{
	assert_true(i < c->nargs);
	assert_int_equal(c->args[i].len, strlen(want));
	assert_memory_equal(c->args[i].p, want, strlen(want));
}

/* ---- each command ---------------------------------------------------- */

static void test_no_arg_commands(void **state)
{
	static const struct {
		const char *line;
		enum pop3_cmd_id id;
	} cases[] = {
		{ "STLS", POP3_CMD_STLS }, { "CAPA", POP3_CMD_CAPA }, { "QUIT", POP3_CMD_QUIT },
		{ "STAT", POP3_CMD_STAT }, { "NOOP", POP3_CMD_NOOP }, { "RSET", POP3_CMD_RSET },
		{ "LIST", POP3_CMD_LIST }, { "UIDL", POP3_CMD_UIDL }, { "AUTH", POP3_CMD_AUTH },
	};
	struct pop3_command c;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].line, &c), POP3_PARSE_OK);
		assert_int_equal(c.id, cases[i].id);
		assert_int_equal(c.nargs, 0);
		assert_string_equal(pop3_cmd_name(c.id), cases[i].line);
	}
}

static void test_user(void **state)
{
	struct pop3_command c;

	assert_int_equal(parse("USER alice", &c), POP3_PARSE_OK);
	assert_int_equal(c.id, POP3_CMD_USER);
	assert_int_equal(c.nargs, 1);
	assert_arg(&c, 0, "alice");
	assert_int_equal(c.num[0], 0);

	assert_int_equal(parse("USER alice@example.org", &c), POP3_PARSE_OK);
	assert_arg(&c, 0, "alice@example.org");
	assert_int_equal(parse("USER", &c), POP3_PERR_ARGS);
	assert_int_equal(c.id, POP3_CMD_USER);
	assert_int_equal(parse("USER   ", &c), POP3_PERR_ARGS);
	assert_int_equal(parse("USER alice bob", &c), POP3_PERR_ARGS);
}

static void test_pass_is_rest_of_line(void **state)
{
	struct pop3_command c;

	assert_int_equal(parse("PASS secret", &c), POP3_PARSE_OK);
	assert_int_equal(c.id, POP3_CMD_PASS);
	assert_arg(&c, 0, "secret");
	/* spaces inside and at the end belong to the password */
	assert_int_equal(parse("PASS  correct horse battery ", &c), POP3_PARSE_OK);
	assert_int_equal(c.nargs, 1);
	assert_arg(&c, 0, "correct horse battery ");
	assert_int_equal(parse("PASS\tp\tw", &c), POP3_PARSE_OK);
	assert_arg(&c, 0, "p\tw");
	/* 8-bit bytes are fine in a password */
	assert_int_equal(parse("PASS p\xc3\xa4ss", &c), POP3_PARSE_OK);
	assert_arg(&c, 0, "p\xc3\xa4ss");
	assert_int_equal(parse("PASS", &c), POP3_PERR_ARGS);
	assert_int_equal(parse("PASS \t ", &c), POP3_PERR_ARGS);
}

static void test_auth(void **state)
{
	struct pop3_command c;

	assert_int_equal(parse("AUTH PLAIN", &c), POP3_PARSE_OK);
	assert_int_equal(c.id, POP3_CMD_AUTH);
	assert_int_equal(c.nargs, 1);
	assert_arg(&c, 0, "PLAIN");
	assert_int_equal(parse("auth plain AGFsaWNlAHNlY3JldA==", &c), POP3_PARSE_OK);
	assert_int_equal(c.nargs, 2);
	assert_arg(&c, 0, "plain");
	assert_arg(&c, 1, "AGFsaWNlAHNlY3JldA==");
	assert_int_equal(parse("AUTH PLAIN =", &c), POP3_PARSE_OK);
	assert_arg(&c, 1, "=");
	assert_int_equal(parse("AUTH PLAIN a b", &c), POP3_PERR_ARGS);
}

static void test_numeric_commands(void **state)
{
	struct pop3_command c;

	assert_int_equal(parse("LIST 3", &c), POP3_PARSE_OK);
	assert_int_equal(c.id, POP3_CMD_LIST);
	assert_int_equal(c.nargs, 1);
	assert_int_equal(c.num[0], 3);
	assert_int_equal(parse("UIDL 7", &c), POP3_PARSE_OK);
	assert_int_equal(c.id, POP3_CMD_UIDL);
	assert_int_equal(c.num[0], 7);
	assert_int_equal(parse("RETR 1", &c), POP3_PARSE_OK);
	assert_int_equal(c.id, POP3_CMD_RETR);
	assert_int_equal(c.num[0], 1);
	assert_int_equal(parse("DELE 42", &c), POP3_PARSE_OK);
	assert_int_equal(c.id, POP3_CMD_DELE);
	assert_int_equal(c.num[0], 42);
	assert_int_equal(parse("TOP 2 0", &c), POP3_PARSE_OK);
	assert_int_equal(c.id, POP3_CMD_TOP);
	assert_int_equal(c.nargs, 2);
	assert_int_equal(c.num[0], 2);
	assert_int_equal(c.num[1], 0);
	assert_int_equal(parse("TOP 2 15", &c), POP3_PARSE_OK);
	assert_int_equal(c.num[1], 15);
	/* leading zeros are still decimal */
	assert_int_equal(parse("RETR 0007", &c), POP3_PARSE_OK);
	assert_int_equal(c.num[0], 7);

	assert_int_equal(parse("RETR", &c), POP3_PERR_ARGS);
	assert_int_equal(parse("DELE", &c), POP3_PERR_ARGS);
	assert_int_equal(parse("TOP 1", &c), POP3_PERR_ARGS);
	assert_int_equal(parse("TOP", &c), POP3_PERR_ARGS);
	assert_int_equal(parse("TOP 1 2 3", &c), POP3_PERR_ARGS);
	assert_int_equal(parse("LIST 1 2", &c), POP3_PERR_ARGS);
	assert_int_equal(parse("UIDL 1 2", &c), POP3_PERR_ARGS);
	assert_int_equal(parse("STAT 1", &c), POP3_PERR_ARGS);
	assert_int_equal(parse("QUIT now", &c), POP3_PERR_ARGS);
	assert_int_equal(parse("NOOP x", &c), POP3_PERR_ARGS);
}

/* ---- case, blanks ------------------------------------------------------- */

static void test_case_insensitive(void **state)
{
	struct pop3_command c;

	assert_int_equal(parse("stat", &c), POP3_PARSE_OK);
	assert_int_equal(c.id, POP3_CMD_STAT);
	assert_int_equal(parse("LiSt 2", &c), POP3_PARSE_OK);
	assert_int_equal(c.id, POP3_CMD_LIST);
	assert_int_equal(parse("uidl", &c), POP3_PARSE_OK);
	assert_int_equal(c.id, POP3_CMD_UIDL);
	assert_int_equal(parse("top 1 1", &c), POP3_PARSE_OK);
	assert_int_equal(c.id, POP3_CMD_TOP);
	assert_int_equal(parse("stls", &c), POP3_PARSE_OK);
	assert_int_equal(c.id, POP3_CMD_STLS);
	/* the argument keeps its case */
	assert_int_equal(parse("user Alice", &c), POP3_PARSE_OK);
	assert_arg(&c, 0, "Alice");
}

static void test_blanks(void **state)
{
	struct pop3_command c;

	assert_int_equal(parse("STAT ", &c), POP3_PARSE_OK);
	assert_int_equal(parse("STAT \t  ", &c), POP3_PARSE_OK);
	assert_int_equal(parse("LIST 1 ", &c), POP3_PARSE_OK);
	assert_int_equal(c.num[0], 1);
	assert_int_equal(parse("RETR\t5", &c), POP3_PARSE_OK);
	assert_int_equal(c.num[0], 5);
	assert_int_equal(parse("TOP   3 \t 4\t", &c), POP3_PARSE_OK);
	assert_int_equal(c.num[0], 3);
	assert_int_equal(c.num[1], 4);
	assert_int_equal(parse("USER bob  ", &c), POP3_PARSE_OK);
	assert_arg(&c, 0, "bob");
	/* no leading blanks before the keyword */
	assert_int_equal(parse(" STAT", &c), POP3_PERR_UNKNOWN);
	assert_int_equal(parse("\tSTAT", &c), POP3_PERR_UNKNOWN);
}

/* ---- errors ------------------------------------------------------------- */

static void test_empty_and_unknown(void **state)
{
	struct pop3_command c;

	assert_int_equal(parse("", &c), POP3_PERR_EMPTY);
	assert_int_equal(parse("   ", &c), POP3_PERR_EMPTY);
	assert_int_equal(parse("\t", &c), POP3_PERR_EMPTY);
	assert_int_equal(parse("FOO", &c), POP3_PERR_UNKNOWN);
	assert_int_equal(parse("STATS", &c), POP3_PERR_UNKNOWN);
	assert_int_equal(parse("ST", &c), POP3_PERR_UNKNOWN);
	assert_int_equal(parse("S", &c), POP3_PERR_UNKNOWN);
	assert_int_equal(parse("STA1", &c), POP3_PERR_UNKNOWN);
	assert_int_equal(parse("APOP alice 0123456789abcdef", &c), POP3_PERR_UNKNOWN);
	assert_int_equal(parse("XTND XMIT", &c), POP3_PERR_UNKNOWN);
	assert_int_equal(parse("GET / HTTP/1.1", &c), POP3_PERR_UNKNOWN);
	assert_int_equal(parse("\xff\xfe\xfd\xfc", &c), POP3_PERR_UNKNOWN);
	assert_int_equal(parse("ST\xc3\x84T", &c), POP3_PERR_UNKNOWN);
}

static void test_bad_numbers(void **state)
{
	struct pop3_command c;

	assert_int_equal(parse("RETR abc", &c), POP3_PERR_NOT_NUMBER);
	assert_int_equal(c.bad_arg, 0);
	assert_int_equal(parse("RETR -1", &c), POP3_PERR_NOT_NUMBER);
	assert_int_equal(parse("RETR +1", &c), POP3_PERR_NOT_NUMBER);
	assert_int_equal(parse("RETR 1x", &c), POP3_PERR_NOT_NUMBER);
	assert_int_equal(parse("RETR 0x10", &c), POP3_PERR_NOT_NUMBER);
	assert_int_equal(parse("DELE 1.5", &c), POP3_PERR_NOT_NUMBER);
	assert_int_equal(parse("LIST one", &c), POP3_PERR_NOT_NUMBER);
	assert_int_equal(parse("UIDL ?", &c), POP3_PERR_NOT_NUMBER);
	assert_int_equal(parse("TOP x 1", &c), POP3_PERR_NOT_NUMBER);
	assert_int_equal(c.bad_arg, 0);
	assert_int_equal(parse("TOP 1 x", &c), POP3_PERR_NOT_NUMBER);
	assert_int_equal(c.bad_arg, 1);
	assert_int_equal(parse("TOP 1 -1", &c), POP3_PERR_NOT_NUMBER);
	assert_int_equal(c.bad_arg, 1);

	/* zero is no message number */
	assert_int_equal(parse("RETR 0", &c), POP3_PERR_RANGE);
	assert_int_equal(c.bad_arg, 0);
	assert_true(pop3_arg_is_msgno(c.id, c.bad_arg));
	assert_int_equal(parse("DELE 000", &c), POP3_PERR_RANGE);
	assert_int_equal(parse("LIST 0", &c), POP3_PERR_RANGE);
	assert_int_equal(parse("UIDL 0", &c), POP3_PERR_RANGE);
	assert_int_equal(parse("TOP 0 1", &c), POP3_PERR_RANGE);

	/* 32-bit edge */
	assert_int_equal(parse("RETR 4294967295", &c), POP3_PARSE_OK);
	assert_int_equal(c.num[0], UINT32_MAX);
	assert_int_equal(parse("RETR 4294967296", &c), POP3_PERR_RANGE);
	assert_int_equal(parse("RETR 99999999999999999999999999999999", &c), POP3_PERR_RANGE);
	assert_int_equal(parse("RETR 18446744073709551617", &c), POP3_PERR_RANGE);
	assert_int_equal(parse("TOP 1 4294967295", &c), POP3_PARSE_OK);
	assert_int_equal(c.num[1], UINT32_MAX);
	assert_int_equal(parse("TOP 1 4294967296", &c), POP3_PERR_RANGE);
	assert_int_equal(c.bad_arg, 1);
	assert_false(pop3_arg_is_msgno(c.id, c.bad_arg));
	/* a non-digit after an overflow is still "not a number" */
	assert_int_equal(parse("RETR 99999999999x", &c), POP3_PERR_NOT_NUMBER);
	/* number errors come after argument count errors */
	assert_int_equal(parse("RETR x y", &c), POP3_PERR_ARGS);
}

static void test_arg_limits(void **state)
{
	char line[POP3_AUTH_RESP_MAX + 64];
	struct pop3_command c;

	/* USER argument: POP3_ARG_MAX fits, one more does not */
	memcpy(line, "USER ", 5);
	memset(line + 5, 'a', POP3_ARG_MAX);
	assert_int_equal(pop3_parse_line(line, 5 + POP3_ARG_MAX, &c), POP3_PARSE_OK);
	assert_int_equal(c.args[0].len, POP3_ARG_MAX);
	memset(line + 5, 'a', POP3_ARG_MAX + 1);
	assert_int_equal(pop3_parse_line(line, 5 + POP3_ARG_MAX + 1, &c), POP3_PERR_ARG_TOO_LONG);
	assert_int_equal(c.bad_arg, 0);

	memcpy(line, "PASS ", 5);
	memset(line + 5, 'p', POP3_ARG_MAX);
	assert_int_equal(pop3_parse_line(line, 5 + POP3_ARG_MAX, &c), POP3_PARSE_OK);
	memset(line + 5, 'p', POP3_ARG_MAX + 1);
	assert_int_equal(pop3_parse_line(line, 5 + POP3_ARG_MAX + 1, &c), POP3_PERR_ARG_TOO_LONG);

	/* AUTH initial response has its own, larger limit */
	memcpy(line, "AUTH PLAIN ", 11);
	memset(line + 11, 'A', POP3_AUTH_RESP_MAX);
	assert_int_equal(pop3_parse_line(line, 11 + POP3_AUTH_RESP_MAX, &c), POP3_PARSE_OK);
	assert_int_equal(c.args[1].len, POP3_AUTH_RESP_MAX);
	memset(line + 11, 'A', POP3_AUTH_RESP_MAX + 1);
	assert_int_equal(pop3_parse_line(line, 11 + POP3_AUTH_RESP_MAX + 1, &c),
			 POP3_PERR_ARG_TOO_LONG);
	assert_int_equal(c.bad_arg, 1);
	/* but the mechanism name does not */
	memcpy(line, "AUTH ", 5);
	memset(line + 5, 'M', POP3_ARG_MAX + 1);
	assert_int_equal(pop3_parse_line(line, 5 + POP3_ARG_MAX + 1, &c), POP3_PERR_ARG_TOO_LONG);
	assert_int_equal(c.bad_arg, 0);

	/* a numeric argument of 300 digits is too long before it is too big */
	memcpy(line, "RETR ", 5);
	memset(line + 5, '9', 300);
	assert_int_equal(pop3_parse_line(line, 305, &c), POP3_PERR_ARG_TOO_LONG);
}

static void test_bad_bytes(void **state)
{
	struct pop3_command c;

	assert_int_equal(pop3_parse_line("STAT\0", 5, &c), POP3_PERR_BAD_CHAR);
	assert_int_equal(pop3_parse_line("\0STAT", 5, &c), POP3_PERR_BAD_CHAR);
	assert_int_equal(pop3_parse_line("\0", 1, &c), POP3_PERR_BAD_CHAR);
	assert_int_equal(pop3_parse_line("USER a\0b", 8, &c), POP3_PERR_BAD_CHAR);
	assert_int_equal(pop3_parse_line("PASS se\0cret", 12, &c), POP3_PERR_BAD_CHAR);
	assert_int_equal(pop3_parse_line("RETR 1\0", 7, &c), POP3_PERR_BAD_CHAR);
	assert_int_equal(parse("STAT\r", &c), POP3_PERR_BAD_CHAR);
	assert_int_equal(parse("RETR 1\rDELE 1", &c), POP3_PERR_BAD_CHAR);
	assert_int_equal(parse("USER a\nb", &c), POP3_PERR_BAD_CHAR);
	assert_int_equal(parse("NOOP\x7f", &c), POP3_PERR_BAD_CHAR);
	assert_int_equal(parse("PASS \x1b[2J", &c), POP3_PERR_BAD_CHAR);
	assert_int_equal(parse("\x04", &c), POP3_PERR_BAD_CHAR);
	/* the line is taken by length, not up to a NUL */
	assert_int_equal(pop3_parse_line("STAT", 0, &c), POP3_PERR_EMPTY);
	assert_int_equal(pop3_parse_line("STATX", 4, &c), POP3_PARSE_OK);
	assert_int_equal(c.id, POP3_CMD_STAT);
}

/* ---- consistency sweeps ------------------------------------------------- */

/* Whatever the input, a result must describe the line it came from. */
static void check_consistent(const char *line, size_t len)
{
	struct pop3_command c;
	int r = pop3_parse_line(line, len, &c);

	assert_true(r >= POP3_PARSE_OK && r <= POP3_PERR_RANGE);
	assert_non_null(pop3_parse_strerror(r));
	assert_true(c.nargs <= POP3_MAX_ARGS);
	for (unsigned i = 0; i < c.nargs; i++) {
		assert_true(c.args[i].p >= line);
		assert_true(c.args[i].p + c.args[i].len <= line + len);
		assert_true(c.args[i].len > 0);
	}
	if (r == POP3_PARSE_OK) {
		assert_true((unsigned)c.id < POP3_CMD_COUNT);
		for (unsigned i = 0; i < c.nargs; i++) {
			if (pop3_arg_is_msgno(c.id, i))
				assert_true(c.num[i] >= 1);
		}
	}
}

static void test_truncations(void **state)
{
	static const char *lines[] = {
		"USER alice", "PASS a b c ", "AUTH PLAIN AGFsaWNlAHNlY3JldA==", "TOP 12 345",
		"RETR 4294967295", "LIST 18446744073709551617", "UIDL\t9 ", "stls", "CAPA",
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		size_t len = strlen(lines[i]);
		for (size_t l = 0; l <= len; l++)
			check_consistent(lines[i], l);
	}
	/* every prefix of "TOP 12 345" is one of a known set of results */
	struct pop3_command c;
	assert_int_equal(pop3_parse_line("TOP 12 345", 3, &c), POP3_PERR_ARGS);
	assert_int_equal(pop3_parse_line("TOP 12 345", 6, &c), POP3_PERR_ARGS);
	assert_int_equal(pop3_parse_line("TOP 12 345", 8, &c), POP3_PARSE_OK);
	assert_int_equal(c.num[0], 12);
	assert_int_equal(c.num[1], 3);
}

static void test_all_single_bytes(void **state)
{
	for (int b = 0; b < 256; b++) {
		char line[8];
		line[0] = (char)b;
		check_consistent(line, 1);
		memcpy(line, "LIST ", 5);
		line[5] = (char)b;
		check_consistent(line, 6);
		struct pop3_command c;
		int r = pop3_parse_line(line, 6, &c);
		if (b >= '1' && b <= '9')
			assert_int_equal(r, POP3_PARSE_OK);
		else if (b == '0')
			assert_int_equal(r, POP3_PERR_RANGE);
		else if (b == ' ' || b == '\t')
			assert_int_equal(r, POP3_PARSE_OK);
		else if (b < 0x20 || b == 0x7f)
			assert_int_equal(r, POP3_PERR_BAD_CHAR);
		else
			assert_int_equal(r, POP3_PERR_NOT_NUMBER);
	}
}

static void test_names_and_errors(void **state)
{
	assert_string_equal(pop3_cmd_name(POP3_CMD_TOP), "TOP");
	assert_string_equal(pop3_cmd_name(POP3_CMD_COUNT), "?");
	assert_string_equal(pop3_cmd_name((enum pop3_cmd_id)-1), "?");
	assert_string_equal(pop3_parse_strerror(POP3_PERR_UNKNOWN), "unknown command");
	assert_string_equal(pop3_parse_strerror(POP3_PERR_ARGS), "wrong number of arguments");
	assert_string_equal(pop3_parse_strerror(12345), "parse error");
	assert_false(pop3_arg_is_msgno(POP3_CMD_USER, 0));
	assert_true(pop3_arg_is_msgno(POP3_CMD_TOP, 0));
	assert_false(pop3_arg_is_msgno(POP3_CMD_TOP, 1));
	assert_false(pop3_arg_is_msgno(POP3_CMD_TOP, 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_arg_commands),
		cmocka_unit_test(test_user),
		cmocka_unit_test(test_pass_is_rest_of_line),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_numeric_commands),
		cmocka_unit_test(test_case_insensitive),
		cmocka_unit_test(test_blanks),
		cmocka_unit_test(test_empty_and_unknown),
		cmocka_unit_test(test_bad_numbers),
		cmocka_unit_test(test_arg_limits),
		cmocka_unit_test(test_bad_bytes),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_all_single_bytes),
		cmocka_unit_test(test_names_and_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
