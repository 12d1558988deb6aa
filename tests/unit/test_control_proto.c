/*
 * test_control_proto.c - the control socket wire format: request
 * encode/parse round trips and every malformed input we refuse, response
 * dot-stuffing round trips fed whole and one byte at a time, the size /
 * POP id value checks, and the fields of TAB-separated answer rows
 * ("peers").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "control_proto.h"

/* ---- requests ----------------------------------------------------------- */

static void parse_ok(struct ctl_request *req, const char *line)
{
	const char *error = NULL;
	int rc = ctl_request_parse(req, line, strlen(line), &error);

	if (rc != 0)
		fail_msg("parse of \"%s\" failed: %s", line, error);
}

static const char *parse_err(const char *line, size_t len)
{
	static struct ctl_request req;
	const char *error = NULL;

	assert_int_equal(ctl_request_parse(&req, line, len, &error), -1);
	assert_non_null(error);
	return error;
}

static void test_request_roundtrip(void **state)
{
	const char *args[] = { "user", "add", "alice" };
	struct ctl_opt opts[] = {
		{ "hash", "$y$j9T$abc/def$ghi=jkl" },	/* '=' and '$' inside a value */
		{ "home", "fra1" },
		{ "quota", "1073741824" },
	};
	char line[CTL_REQUEST_MAX];
	struct ctl_request req;
	const char *error;
	int len = ctl_request_encode(line, sizeof(line), args, 3, opts, 3, &error);

	assert_true(len > 0);
	assert_int_equal((size_t)len, strlen(line));
	assert_string_equal(line,
			    "user\tadd\talice\thash=$y$j9T$abc/def$ghi=jkl\thome=fra1\tquota=1073741824\n");
	assert_int_equal(ctl_request_parse(&req, line, (size_t)len - 1, &error), 0);
	assert_int_equal(req.n_args, 3);
	assert_string_equal(req.args[0], "user");
	assert_string_equal(req.args[1], "add");
	assert_string_equal(req.args[2], "alice");
	assert_int_equal(req.n_opts, 3);
	assert_string_equal(ctl_request_opt(&req, "hash"), "$y$j9T$abc/def$ghi=jkl");
	assert_string_equal(ctl_request_opt(&req, "home"), "fra1");
	assert_string_equal(ctl_request_opt(&req, "quota"), "1073741824");
	assert_null(ctl_request_opt(&req, "enabled"));
}

static void test_request_simple(void **state)
{
	struct ctl_request req;

	parse_ok(&req, "status");
	assert_int_equal(req.n_args, 1);
	assert_int_equal(req.n_opts, 0);
	assert_string_equal(req.args[0], "status");

	/* one CR before the LF is tolerated */
	parse_ok(&req, "status\tformat=json\r");
	assert_int_equal(req.n_args, 1);
	assert_string_equal(ctl_request_opt(&req, "format"), "json");

	/* spaces are ordinary bytes inside a field */
	parse_ok(&req, "user\tshow\ta b");
	assert_string_equal(req.args[2], "a b");
}

static void test_request_max_fields(void **state)
{
	char line[CTL_REQUEST_MAX];
	const char *args[CTL_ARGS_MAX + 1];
	struct ctl_opt opts[CTL_OPTS_MAX + 1];
	char keys[CTL_OPTS_MAX + 1][16];
	struct ctl_request req;
	const char *error;
	int len;

	for (int i = 0; i <= CTL_ARGS_MAX; i++)
		args[i] = "a";
	for (int i = 0; i <= CTL_OPTS_MAX; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		opts[i].key = keys[i];
		opts[i].value = "v";
	}
	len = ctl_request_encode(line, sizeof(line), args, CTL_ARGS_MAX, opts, CTL_OPTS_MAX, &error);
	assert_true(len > 0);
	assert_int_equal(ctl_request_parse(&req, line, (size_t)len - 1, &error), 0);
	assert_int_equal(req.n_args, CTL_ARGS_MAX);
	assert_int_equal(req.n_opts, CTL_OPTS_MAX);

	assert_int_equal(ctl_request_encode(line, sizeof(line), args, CTL_ARGS_MAX + 1, opts, 0,
					    &error), -1);
	assert_int_equal(ctl_request_encode(line, sizeof(line), args, 1, opts, CTL_OPTS_MAX + 1,
					    &error), -1);

	/* one more of either on the wire is refused too */
	strcpy(line, "a\ta\ta\ta\ta\ta\ta\ta\ta");
	assert_string_equal(parse_err(line, strlen(line)), "too many arguments");
	strcpy(line, "a\tk0=v\tk1=v\tk2=v\tk3=v\tk4=v\tk5=v\tk6=v\tk7=v\tk8=v");
	assert_string_equal(parse_err(line, strlen(line)), "too many options");
}

static void test_request_malformed(void **state)
{
	assert_string_equal(parse_err("", 0), "empty request");
	assert_string_equal(parse_err("\r", 1), "empty request");
	assert_string_equal(parse_err("user\t\tadd", 9), "empty field");
	assert_string_equal(parse_err("\tstatus", 7), "empty field");
	assert_string_equal(parse_err("status\t", 7), "empty field");
	assert_string_equal(parse_err("user\tshow\ta\0b", 13), "NUL byte in request");
	assert_string_equal(parse_err("user\tshow\ta\rb", 13), "line break inside request");
	assert_string_equal(parse_err("user\tshow\ta\nb", 13), "line break inside request");
	assert_string_equal(parse_err("status\tformat=json\tx", 20), "argument after options");
	assert_string_equal(parse_err("format=json", 11), "option before the command");
	assert_string_equal(parse_err("status\tFormat=json", 18), "bad option name");
	assert_string_equal(parse_err("status\t=json", 12), "bad option name");
	assert_string_equal(parse_err("status\tformat=", 14), "empty option value");
	assert_string_equal(parse_err("status\tformat=a\tformat=b", 24), "duplicate option");
}

static void test_request_too_long(void **state)
{
	char *line = malloc(CTL_REQUEST_MAX + 16);
	struct ctl_request req;
	const char *error;
	const char *args[2];
	char *big = malloc(CTL_FIELD_MAX + 2);

	assert_non_null(line);
	assert_non_null(big);
	/* the longest line: CTL_REQUEST_MAX - 1 bytes before the LF */
	memset(line, 'a', CTL_REQUEST_MAX);
	for (size_t i = 1000; i < CTL_REQUEST_MAX; i += 1001)
		line[i] = '\t';
	assert_string_equal(parse_err(line, CTL_REQUEST_MAX), "request too long");
	assert_int_equal(ctl_request_parse(&req, line, 8 * 1001 - 1, &error), 0);
	assert_int_equal(req.n_args, 8);

	/* one field over CTL_FIELD_MAX */
	memset(line, 'b', CTL_FIELD_MAX + 1);
	assert_string_equal(parse_err(line, CTL_FIELD_MAX + 1), "field too long");
	assert_int_equal(ctl_request_parse(&req, line, CTL_FIELD_MAX, &error), 0);

	/* the encoder refuses the same */
	memset(big, 'c', CTL_FIELD_MAX + 1);
	big[CTL_FIELD_MAX + 1] = '\0';
	args[0] = "x";
	args[1] = big;
	assert_int_equal(ctl_request_encode(line, CTL_REQUEST_MAX, args, 2, NULL, 0, &error), -1);
	big[CTL_FIELD_MAX] = '\0';
	assert_true(ctl_request_encode(line, CTL_REQUEST_MAX, args, 2, NULL, 0, &error) > 0);
	/* ... and a buffer too small for the line */
	assert_int_equal(ctl_request_encode(line, 100, args, 2, NULL, 0, &error), -1);
	assert_string_equal(error, "request too long");
	free(big);
	free(line);
}

static void test_request_encode_refuses(void **state)
{
	char line[256];
	const char *error;
	const char *a_tab[] = { "user", "show", "a\tb" };
	const char *a_lf[] = { "user", "show", "a\nb" };
	const char *a_cr[] = { "user", "show", "a\rb" };
	const char *a_empty[] = { "user", "show", "" };
	const char *a_eq[] = { "user", "show", "a=b" };
	const char *a_ok[] = { "status" };
	struct ctl_opt o_badkey[] = { { "Format", "json" } };
	struct ctl_opt o_empty[] = { { "format", "" } };
	struct ctl_opt o_tab[] = { { "format", "js\ton" } };
	struct ctl_opt o_dup[] = { { "format", "a" }, { "format", "b" } };

	assert_int_equal(ctl_request_encode(line, sizeof(line), a_tab, 3, NULL, 0, &error), -1);
	assert_int_equal(ctl_request_encode(line, sizeof(line), a_lf, 3, NULL, 0, &error), -1);
	assert_int_equal(ctl_request_encode(line, sizeof(line), a_cr, 3, NULL, 0, &error), -1);
	assert_int_equal(ctl_request_encode(line, sizeof(line), a_empty, 3, NULL, 0, &error), -1);
	assert_int_equal(ctl_request_encode(line, sizeof(line), a_eq, 3, NULL, 0, &error), -1);
	assert_int_equal(ctl_request_encode(line, sizeof(line), a_ok, 0, NULL, 0, &error), -1);
	assert_int_equal(ctl_request_encode(line, sizeof(line), a_ok, 1, o_badkey, 1, &error), -1);
	assert_int_equal(ctl_request_encode(line, sizeof(line), a_ok, 1, o_empty, 1, &error), -1);
	assert_int_equal(ctl_request_encode(line, sizeof(line), a_ok, 1, o_tab, 1, &error), -1);
	assert_int_equal(ctl_request_encode(line, sizeof(line), a_ok, 1, o_dup, 2, &error), -1);
	assert_int_equal(ctl_request_encode(line, 8, a_ok, 1, NULL, 0, &error), 7);
	assert_string_equal(line, "status\n");
	assert_int_equal(ctl_request_encode(line, 7, a_ok, 1, NULL, 0, &error), -1);

	assert_true(ctl_value_ok("x"));
	assert_false(ctl_value_ok(""));
	assert_false(ctl_value_ok(NULL));
	assert_false(ctl_value_ok("a\tb"));
}

/* Random bytes must never crash the parser; whatever it accepts must
 * survive an encode/parse round trip unchanged. */
static void test_request_garbage(void **state)
{
	static const char alphabet[] = "ab=\t\r\n\0.$ -_Z";
	char line[300], again[CTL_REQUEST_MAX];
	struct ctl_request req, req2;
	const char *error;
	unsigned seed = 12345;
	unsigned accepted = 0;

	for (int round = 0; round < 20000; round++) {
		size_t len;

		seed = seed * 1103515245 + 12345;
		len = (seed >> 16) % sizeof(line);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245 + 12345;
			line[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		if (ctl_request_parse(&req, line, len, &error) < 0) {
			assert_non_null(error);
			continue;
		}
		accepted++;
		int n = ctl_request_encode(again, sizeof(again), req.args, req.n_args, req.opts,
					   req.n_opts, &error);
		assert_true(n > 0);
		assert_int_equal(ctl_request_parse(&req2, again, (size_t)n - 1, &error), 0);
		assert_int_equal(req2.n_args, req.n_args);
		assert_int_equal(req2.n_opts, req.n_opts);
		for (size_t i = 0; i < req.n_args; i++)
			assert_string_equal(req2.args[i], req.args[i]);
		for (size_t i = 0; i < req.n_opts; i++) {
			assert_string_equal(req2.opts[i].key, req.opts[i].key);
			assert_string_equal(req2.opts[i].value, req.opts[i].value);
		}
	}
	assert_true(accepted > 0);	/* the generator does reach valid lines */
}

/* ---- responses ---------------------------------------------------------- */

/* Render a response into a malloc'd string. */
static char *render(const char *code, const char *msg, const char *body, size_t body_len,
		    size_t *len_r)
{
	struct evbuffer *b = evbuffer_new();
	char *s;

	assert_non_null(b);
	assert_int_equal(ctl_response_begin(b, code, msg), 0);
	if (body != NULL)
		assert_int_equal(ctl_response_body(b, body, body_len), 0);
	assert_int_equal(ctl_response_end(b), 0);
	*len_r = evbuffer_get_length(b);
	s = malloc(*len_r + 1);
	assert_non_null(s);
	evbuffer_remove(b, s, *len_r);
	s[*len_r] = '\0';
	evbuffer_free(b);
	return s;
}

/* Feed data whole (step 0) or step bytes at a time; expect DONE at the
 * end and report how much was consumed. */
static enum ctl_read_result feed(struct ctl_reader *rd, const char *data, size_t len, size_t step,
				 size_t *consumed_r, const char **error_r)
{
	size_t off = 0;
	enum ctl_read_result rc = CTL_READ_MORE;

	while (off < len) {
		size_t n = step == 0 ? len - off : (len - off < step ? len - off : step);
		size_t used = 0;

		rc = ctl_reader_feed(rd, data + off, n, &used, error_r);
		assert_true(used <= n);
		off += used;
		if (rc != CTL_READ_MORE)
			break;
		assert_int_equal(used, n);
	}
	*consumed_r = off;
	return rc;
}

static void check_body_roundtrip(const char *body, const char *expect)
{
	static const size_t steps[] = { 0, 1, 2, 3, 7 };
	size_t len;
	char *wire = render(NULL, NULL, body, strlen(body), &len);

	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		struct ctl_reader rd;
		const char *error = NULL;
		size_t used;

		ctl_reader_init(&rd, 0);
		assert_int_equal(feed(&rd, wire, len, steps[s], &used, &error), CTL_READ_DONE);
		assert_int_equal(used, len);
		assert_true(rd.ok);
		assert_string_equal(rd.code, "");
		assert_int_equal(rd.body_len, strlen(expect));
		assert_memory_equal(rd.body, expect, rd.body_len);
		assert_int_equal(rd.body[rd.body_len], '\0');
		ctl_reader_clear(&rd);
	}
	free(wire);
}

static void test_response_dot_stuffing(void **state)
{
	size_t len;
	char *wire = render(NULL, NULL, ".\n..x\nplain\n.hidden", 19, &len);

	/* on the wire every line starting with '.' has one more */
	assert_string_equal(wire, "ok\n..\n...x\nplain\n..hidden\n.\n");
	free(wire);

	check_body_roundtrip("", "");
	check_body_roundtrip("one line\n", "one line\n");
	check_body_roundtrip("no final LF", "no final LF\n");
	check_body_roundtrip(".\n", ".\n");
	check_body_roundtrip("..\n", "..\n");
	check_body_roundtrip(".x\n..y\n...z\n", ".x\n..y\n...z\n");
	check_body_roundtrip("a\n\n\nb\n", "a\n\n\nb\n");
	check_body_roundtrip("{\n  \"a\": 1\n}\n.\n", "{\n  \"a\": 1\n}\n.\n");
}

static void test_response_error(void **state)
{
	struct ctl_reader rd;
	const char *error;
	size_t len, used;
	char *wire = render(CTL_E_EXISTS, "user demo\nalready exists", NULL, 0, &len);

	/* a line break in the message must not break the framing */
	assert_string_equal(wire, "err exists user demo already exists\n.\n");
	ctl_reader_init(&rd, 0);
	assert_int_equal(feed(&rd, wire, len, 1, &used, &error), CTL_READ_DONE);
	assert_false(rd.ok);
	assert_string_equal(rd.code, "exists");
	assert_string_equal(rd.message, "user demo already exists");
	assert_int_equal(rd.body_len, 0);
	ctl_reader_clear(&rd);
	free(wire);

	/* an over-long message is cut, the framing stays */
	char *msg = malloc(3 * CTL_STATUS_MAX);

	assert_non_null(msg);
	memset(msg, 'm', 3 * CTL_STATUS_MAX - 1);
	msg[3 * CTL_STATUS_MAX - 1] = '\0';
	wire = render(CTL_E_INVAL, msg, NULL, 0, &len);
	ctl_reader_init(&rd, 0);
	assert_int_equal(feed(&rd, wire, len, 0, &used, &error), CTL_READ_DONE);
	assert_string_equal(rd.code, "inval");
	assert_true(strlen(rd.message) > 100);
	ctl_reader_clear(&rd);
	free(wire);
	free(msg);
}

static void test_response_trailing_bytes(void **state)
{
	static const char two[] = "ok\nx\n.\nerr proto bad\n.\n";
	struct ctl_reader rd;
	const char *error;
	size_t used;

	/* the reader stops after the first response */
	ctl_reader_init(&rd, 0);
	assert_int_equal(ctl_reader_feed(&rd, two, sizeof(two) - 1, &used, &error), CTL_READ_DONE);
	assert_int_equal(used, 7);
	assert_string_equal(rd.body, "x\n");
	ctl_reader_clear(&rd);
	ctl_reader_init(&rd, 0);
	assert_int_equal(ctl_reader_feed(&rd, two + used, sizeof(two) - 1 - used, &used, &error),
			 CTL_READ_DONE);
	assert_false(rd.ok);
	assert_string_equal(rd.code, "proto");
	assert_string_equal(rd.message, "bad");
	ctl_reader_clear(&rd);
}

static void expect_read_error(const char *data, size_t len, size_t body_max)
{
	struct ctl_reader rd;
	const char *error = NULL;
	size_t used;

	ctl_reader_init(&rd, body_max);
	assert_int_equal(feed(&rd, data, len, 0, &used, &error), CTL_READ_ERROR);
	assert_non_null(error);
	/* a failed reader stays failed */
	assert_int_equal(ctl_reader_feed(&rd, "ok\n.\n", 5, &used, &error), CTL_READ_ERROR);
	ctl_reader_clear(&rd);
}

static void test_response_malformed(void **state)
{
	char *big;
	struct ctl_reader rd;
	const char *error;
	size_t used;

	expect_read_error("hello\n", 6, 0);
	expect_read_error("OK\n.\n", 5, 0);
	expect_read_error("err\n.\n", 6, 0);
	expect_read_error("err  x\n.\n", 9, 0);
	expect_read_error("err BAD x\n.\n", 12, 0);
	expect_read_error("ok\n.x\n.\n", 8, 0);		/* unstuffed dot line */
	expect_read_error("o\0k\n", 4, 0);
	expect_read_error("ok\n0123456789\n.\n", 16, 8);	/* body over body_max */

	big = malloc(CTL_LINE_MAX + 16);
	assert_non_null(big);
	memset(big, 's', CTL_STATUS_MAX + 1);
	expect_read_error(big, CTL_STATUS_MAX + 1, 0);
	memcpy(big, "ok\n", 3);
	memset(big + 3, 'l', CTL_LINE_MAX + 2);
	expect_read_error(big, CTL_LINE_MAX + 5, 0);
	/* exactly CTL_LINE_MAX is fine */
	big[3 + CTL_LINE_MAX] = '\n';
	memcpy(big + 4 + CTL_LINE_MAX, ".\n", 2);
	ctl_reader_init(&rd, 0);
	assert_int_equal(feed(&rd, big, CTL_LINE_MAX + 6, 5, &used, &error), CTL_READ_DONE);
	assert_int_equal(rd.body_len, CTL_LINE_MAX + 1);
	ctl_reader_clear(&rd);
	free(big);

	/* truncated: every prefix of a good response wants more */
	static const char good[] = "ok\nline\n..dot\n.\n";
	for (size_t cut = 0; cut < sizeof(good) - 1; cut++) {
		ctl_reader_init(&rd, 0);
		assert_int_equal(ctl_reader_feed(&rd, good, cut, &used, &error), CTL_READ_MORE);
		assert_int_equal(used, cut);
		ctl_reader_clear(&rd);
	}
}

static void test_response_garbage(void **state)
{
	static const char alphabet[] = "ok er.\n\t\0xZ";
	char data[200];
	unsigned seed = 777;

	for (int round = 0; round < 20000; round++) {
		struct ctl_reader rd;
		const char *error;
		size_t len, used;
		enum ctl_read_result rc;

		seed = seed * 1103515245 + 12345;
		len = (seed >> 16) % sizeof(data);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245 + 12345;
			data[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		ctl_reader_init(&rd, 64);
		rc = ctl_reader_feed(&rd, data, len, &used, &error);
		assert_true(used <= len);
		if (rc == CTL_READ_DONE)
			assert_non_null(rd.body);
		ctl_reader_clear(&rd);
	}
}

/* ---- values ------------------------------------------------------------- */

static void test_parse_size(void **state)
{
	uint64_t v;

	assert_true(ctl_parse_size("0", &v));
	assert_int_equal(v, 0);
	assert_true(ctl_parse_size("unlimited", &v));
	assert_int_equal(v, 0);
	assert_true(ctl_parse_size("1234", &v));
	assert_int_equal(v, 1234);
	assert_true(ctl_parse_size("1K", &v));
	assert_int_equal(v, 1024);
	assert_true(ctl_parse_size("1k", &v));
	assert_int_equal(v, 1024);
	assert_true(ctl_parse_size("500M", &v));
	assert_int_equal(v, 500ull << 20);
	assert_true(ctl_parse_size("2G", &v));
	assert_int_equal(v, 2ull << 30);
	assert_true(ctl_parse_size("3t", &v));
	assert_int_equal(v, 3ull << 40);
	assert_true(ctl_parse_size("18446744073709551615", &v));
	assert_int_equal(v, UINT64_MAX);

	assert_false(ctl_parse_size("", &v));
	assert_false(ctl_parse_size("-1", &v));
	assert_false(ctl_parse_size("+1", &v));
	assert_false(ctl_parse_size(" 1", &v));
	assert_false(ctl_parse_size("1 ", &v));
	assert_false(ctl_parse_size("1X", &v));
	assert_false(ctl_parse_size("1KB", &v));
	assert_false(ctl_parse_size("1.5G", &v));
	assert_false(ctl_parse_size("G", &v));
	assert_false(ctl_parse_size("18446744073709551616", &v));
	assert_false(ctl_parse_size("17179869184G", &v));	/* 2^34 G = 2^64 */
	assert_true(ctl_parse_size("17179869183G", &v));
	assert_false(ctl_parse_size(NULL, &v));
}

static void test_valid_pop(void **state)
{
	char long_id[80];

	assert_true(ctl_valid_pop("fra1"));
	assert_true(ctl_valid_pop("DE-fra.1_a"));
	assert_false(ctl_valid_pop(""));
	assert_false(ctl_valid_pop("fra 1"));
	assert_false(ctl_valid_pop("fra/1"));
	assert_false(ctl_valid_pop("fr\xc3\xa4"));
	memset(long_id, 'a', 63);
	long_id[63] = '\0';
	assert_true(ctl_valid_pop(long_id));
	long_id[63] = 'a';
	long_id[64] = '\0';
	assert_false(ctl_valid_pop(long_id));
}

/* ---- body rows ---------------------------------------------------------- */

static void test_row_field(void **state)
{
	char out[16];

	assert_string_equal(ctl_row_field(out, sizeof(out), NULL), "-");
	assert_string_equal(ctl_row_field(out, sizeof(out), ""), "-");
	assert_string_equal(ctl_row_field(out, sizeof(out), "fra1"), "fra1");
	assert_ptr_equal(ctl_row_field(out, sizeof(out), "x"), out);
	/* TAB, LF, CR, ESC, DEL become spaces; UTF-8 passes */
	assert_string_equal(ctl_row_field(out, sizeof(out), "a\tb\nc\rd\x1b" "e\x7f" "f\xc3\xa4"),
			    "a b c d e f\xc3\xa4");
	/* a field of only control bytes is not empty */
	assert_string_equal(ctl_row_field(out, sizeof(out), "\t\n"), "  ");
	/* cut to the buffer */
	assert_string_equal(ctl_row_field(out, 4, "abcdef"), "abc");
	assert_string_equal(ctl_row_field(out, 5, "abcd"), "abcd");
	/* never inside a UTF-8 sequence: 2, 3 and 4 byte ones */
	assert_string_equal(ctl_row_field(out, 4, "ab\xc3\xa4"), "ab");
	assert_string_equal(ctl_row_field(out, 5, "ab\xc3\xa4"), "ab\xc3\xa4");
	assert_string_equal(ctl_row_field(out, 5, "a\xe2\x82\xac" "b"), "a\xe2\x82\xac");
	assert_string_equal(ctl_row_field(out, 4, "a\xe2\x82\xac"), "a");
	assert_string_equal(ctl_row_field(out, 5, "a\xf0\x9f\x98\x80"), "a");
	assert_string_equal(ctl_row_field(out, 6, "a\xf0\x9f\x98\x80"), "a\xf0\x9f\x98\x80");
	/* nothing left after the cut: still "-" */
	assert_string_equal(ctl_row_field(out, 3, "\xe2\x82\xac"), "-");
	/* degenerate buffers */
	out[0] = 'x';
	ctl_row_field(out, 1, "abc");
	assert_int_equal(out[0], '\0');
	assert_string_equal(ctl_row_field(out, 2, "abc"), "a");
}

static void test_peers_exchange(void **state)
{
	const char *args[] = { "peers" };
	struct ctl_opt json = { "format", "json" };
	char line[CTL_REQUEST_MAX];
	struct ctl_request req;
	const char *error;
	int len;

	len = ctl_request_encode(line, sizeof(line), args, 1, NULL, 0, &error);
	assert_int_equal(len, 6);
	assert_string_equal(line, "peers\n");
	len = ctl_request_encode(line, sizeof(line), args, 1, &json, 1, &error);
	assert_string_equal(line, "peers\tformat=json\n");
	assert_int_equal(ctl_request_parse(&req, line, (size_t)len - 1, &error), 0);
	assert_int_equal(req.n_args, 1);
	assert_string_equal(req.args[0], "peers");
	assert_string_equal(ctl_request_opt(&req, "format"), "json");

	/* the answer: rows whose first field may start with '.' (a valid POP
	 * id), and a last field with spaces, survive dot-stuffing */
	check_body_roundtrip(
		"PEER\tADDR\tSTATE\tRTT\tIN\tFAIL\tSTREAMS\tSINCE\tLAST ERROR\n"
		".ams1\t10.20.0.2:7443\tup\t0.41\tyes\t0\t2\t3m05s\t-\n"
		"lon1\t10.20.0.3:7443\tdown\t-\tno\t3\t0\t12s\tconnect: Connection refused\n",
		"PEER\tADDR\tSTATE\tRTT\tIN\tFAIL\tSTREAMS\tSINCE\tLAST ERROR\n"
		".ams1\t10.20.0.2:7443\tup\t0.41\tyes\t0\t2\t3m05s\t-\n"
		"lon1\t10.20.0.3:7443\tdown\t-\tno\t3\t0\t12s\tconnect: Connection refused\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_roundtrip),
		cmocka_unit_test(test_request_simple),
		cmocka_unit_test(test_request_max_fields),
		cmocka_unit_test(test_request_malformed),
		cmocka_unit_test(test_request_too_long),
		cmocka_unit_test(test_request_encode_refuses),
		cmocka_unit_test(test_request_garbage),
		cmocka_unit_test(test_response_dot_stuffing),
		cmocka_unit_test(test_response_error),
		cmocka_unit_test(test_response_trailing_bytes),
		cmocka_unit_test(test_response_malformed),
		cmocka_unit_test(test_response_garbage),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_valid_pop),
		cmocka_unit_test(test_row_field),
		cmocka_unit_test(test_peers_exchange),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
