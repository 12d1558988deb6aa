/*
 * test_bird_parse.c - the BIRD control-socket reply reader and the reply
 * parsers (anycast/bird_parse.c, bird_parse_cmd.c, bird_parse_reply.c).
 *
 * The samples marked "real" were captured byte for byte from BIRD 2.0.12
 * (Debian bird2 2.0.12-7) on its control socket, with a config of a
 * device protocol, two static protocols, a pipe and two BGP sessions on
 * loopback.  The few marked "from BIRD's source" are replies this setup
 * cannot provoke (shutdown, graceful restart), written in the format
 * nest/cmds.c prints them.
 *
 * bird_parse.c (the reader) is compiled into this file with realloc()
 * redirected so allocation failures can be injected; the command builders
 * and the parsers come from the library.
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

static int fail_realloc_after = -1; /* -1: never; n: the (n+1)th call fails */

static void *t_realloc(void *p, size_t sz)
{
	if (fail_realloc_after == 0) {
		fail_realloc_after = -1;
		return NULL;
	}
	if (fail_realloc_after > 0)
		fail_realloc_after--;
	return realloc(p, sz);
}

#define realloc t_realloc
#include "../../anycast/bird_parse.c"
#undef realloc

/* ---- real samples --------------------------------------------------------- */

#define GREETING "0001 BIRD 2.0.12 ready.\n"

static const char SHOW_STATUS[] =
	"1000-BIRD 2.0.12\n"
	"1011-Router ID is 10.0.0.1\n"
	" Hostname is vm\n"
	" Current server time is 2026-11-26 02:08:18.943\n"
	" Last reboot on 2026-11-26 01:58:06.277\n"
	" Last reconfiguration on 2026-11-26 01:58:06.886\n"
	"0013 Daemon is up and running\n";

static const char SHOW_PROTOCOLS[] =
	"2002-Name       Proto      Table      State  Since         Info\n"
	"1002-device1    Device     ---        up     01:58:06.277  \n"
	" s1         Static     master4    up     02:08:58.294  \n"
	" s2         Static     master6    up     02:09:12.797  \n"
	" up1        BGP        ---        up     02:09:34.466  Established   \n"
	" up2        BGP        ---        start  02:09:12.797  Active        Socket: Connection closed\n"
	" p1         Pipe       ---        down   02:09:35.329  master4 <=> t2\n"
	"0000 \n";

static const char SHOW_PROTOCOLS_ERR[] =
	"2002-Name       Proto      Table      State  Since         Info\n"
	"1002-device1    Device     ---        up     01:58:06.277  \n"
	" up1        BGP        ---        down   02:09:06.159  Error: Invalid next hop\n"
	"0000 \n";

static const char SHOW_PROTOCOLS_ALL_S1[] =
	"2002-Name       Proto      Table      State  Since         Info\n"
	"1002-s1         Static     master4    up     01:58:06.898  \n"
	"1006-  Channel ipv4\n"
	"     State:          UP\n"
	"     Table:          master4\n"
	"     Preference:     200\n"
	"     Input filter:   ACCEPT\n"
	"     Output filter:  REJECT\n"
	"     Routes:         2 imported, 0 exported, 2 preferred\n"
	"     Route change stats:     received   rejected   filtered    ignored   accepted\n"
	"       Import updates:              2          0          0          0          2\n"
	"       Import withdraws:            0          0        ---          0          0\n"
	"       Export updates:              0          0          0        ---          0\n"
	"       Export withdraws:            0        ---        ---        ---          0\n"
	" \n"
	"0000 \n";

static const char SHOW_ROUTE_COUNT[] =
	"1007-2 of 2 routes for 2 networks in table master4\n"
	" 1 of 1 routes for 1 networks in table master6\n"
	"0014 Total: 3 of 3 routes for 3 networks in 2 tables\n";

static const char SHOW_ROUTE_EXPORT_COUNT[] =
	"1007-2 of 2 routes for 2 networks in table master4\n"
	"0000 \n";

static const char SHOW_ROUTE_EXPORT_COUNT_ZERO[] =
	"1007-0 of 0 routes for 0 networks in table master4\n"
	"0000 \n";

static const char SHOW_ROUTE_EXPORT_PIPE_COUNT[] =
	"1007-2 of 2 routes for 2 networks in table master4\n"
	" 0 of 2 routes for 2 networks in table t2\n"
	"0014 Total: 2 of 4 routes for 4 networks in 2 tables\n";

static const char SHOW_ROUTE[] =
	"1007-Table master4:\n"
	" 192.0.2.2/32         blackhole [s1 02:08:18.949] * (200)\n"
	" 192.0.2.1/32         blackhole [s1 02:08:18.949] * (200)\n"
	" \n"
	" Table master6:\n"
	" 2001:db8::1/128      blackhole [s2 01:58:06.277] * (200)\n"
	"0000 \n";

static const char DISABLE_S1[] = "0009-s1: disabled\n0000 \n";
static const char DISABLE_S1_AGAIN[] = "0008-s1: already disabled\n0000 \n";
static const char ENABLE_S1[] = "0011-s1: enabled\n0000 \n";
static const char ENABLE_S1_AGAIN[] = "0010-s1: already enabled\n0000 \n";
static const char ENABLE_PATTERN[] = "0010-s1: already enabled\n s2: already enabled\n0000 \n";
static const char ENABLE_ALL[] =
	"0010-device1: already enabled\n0011-s1: enabled\n0010-s2: already enabled\n0000 \n";
static const char NO_MATCH[] = "8003 No protocols match\n";
static const char SYNTAX_UNDEFINED[] =
	"9001 syntax error, unexpected CF_SYM_UNDEFINED, expecting CF_SYM_KNOWN or TEXT or ALL\n";
static const char NOT_A_PROTOCOL[] = "9001 Protocol name required\n";
static const char UNTERMINATED[] = "9001 Unterminated string\n";
static const char NETWORK_NOT_FOUND[] = "8001 Network not found\n";
static const char NO_VALID_TABLES[] = "9001 No valid tables\n";
static const char SHOW_SYMBOLS_S1[] = "1010 s1      \tprotocol\n";
static const char CONFIGURE[] = "0002-Reading configuration from bird.conf\n0003 Reconfigured\n";
static const char ASYNC_THEN_STATUS[] =
	"+Reconfiguring\n"
	"+Reconfigured\n"
	"1000-BIRD 2.0.12\n"
	"1011-Router ID is 10.0.0.1\n"
	" Hostname is vm\n"
	" Current server time is 2026-11-26 02:08:59.601\n"
	" Last reboot on 2026-11-26 01:58:06.277\n"
	" Last reconfiguration on 2026-11-26 02:08:59.301\n"
	"0013 Daemon is up and running\n";

/* ---- helpers ---------------------------------------------------------------- */

/* A reply as text: "err=E code=C cls=K async=A|" then "CODE-text|" per line
 * ('~' instead of '-' for a continuation line). */
static void serialize(const struct bird_reply *r, char *out, size_t size)
{
	size_t o = (size_t)snprintf(out, size, "err=%d code=%u cls=%u async=%zu|", r->err, r->code,
				    r->cls, r->n_async);

	for (size_t i = 0; i < r->n_lines; i++) {
		const struct bird_line *l = &r->lines[i];

		assert_int_equal(strlen(l->text), l->len);
		assert_true(o < size);
		o += (size_t)snprintf(out + o, size - o, "%04u%c%s|", l->code, l->cont ? '~' : '-',
				      l->text);
	}
	assert_true(o < size);
}

struct run {
	char replies[16][8192];
	size_t n;
	enum bird_perr fatal;
	size_t fatal_at;	/* stream offset of the offending byte */
	size_t used;		/* bytes used in all */
};

/* Feed text in chunks of chunk bytes (0: all at once) to a new parser. */
static void run_text(const char *text, size_t len, size_t chunk, const struct bird_limits *lim,
		     struct run *out)
{
	struct bird_parser *p = bird_parser_new(lim);
	size_t pos = 0;

	assert_non_null(p);
	memset(out, 0, sizeof(*out));
	while (pos < len) {
		size_t n = chunk == 0 || chunk > len - pos ? len - pos : chunk;
		/* an exact-size heap copy, so ASan sees reads past the chunk */
		char *copy = malloc(n);
		size_t off = 0;

		assert_non_null(copy);
		memcpy(copy, text + pos, n);
		while (off < n) {
			const struct bird_reply *r;
			size_t used;
			enum bird_feed_status st = bird_parser_feed(p, copy + off, n - off, &used, &r);

			assert_true(used <= n - off);
			off += used;
			if (st == BIRD_FEED_FATAL) {
				out->fatal = bird_parser_error(p, NULL);
				out->fatal_at = pos + off;
				out->used = pos + off;
				free(copy);
				bird_parser_free(&p);
				return;
			}
			if (st == BIRD_FEED_REPLY) {
				assert_non_null(r);
				assert_true(out->n < 16);
				serialize(r, out->replies[out->n++], sizeof(out->replies[0]));
			} else {
				assert_null(r);
				assert_int_equal(off, n);
			}
		}
		free(copy);
		pos += n;
	}
	out->used = pos;
	bird_parser_free(&p);
	assert_null(p);
}

/* The same result for every chunking; returns the all-at-once run. */
static void run_all_chunkings(const char *text, const struct bird_limits *lim, struct run *out)
{
	static const size_t chunks[] = { 1, 2, 3, 4, 5, 7, 13, 64 };
	static struct run other;
	size_t len = strlen(text);

	run_text(text, len, 0, lim, out);
	for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
		run_text(text, len, chunks[k], lim, &other);
		assert_int_equal(other.n, out->n);
		assert_int_equal(other.fatal, out->fatal);
		assert_int_equal(other.fatal_at, out->fatal_at);
		assert_int_equal(other.used, out->used);
		for (size_t i = 0; i < out->n; i++)
			assert_string_equal(other.replies[i], out->replies[i]);
	}
}

static struct run R;

/* A parser that reads text as exactly one reply and keeps it for the
 * reply-parser tests. */
static struct bird_parser *keep;

static const struct bird_reply *reply_of_lim(const char *text, const struct bird_limits *lim)
{
	const struct bird_reply *r;
	size_t used;

	bird_parser_free(&keep);
	keep = bird_parser_new(lim);
	assert_non_null(keep);
	assert_int_equal(bird_parser_feed(keep, text, strlen(text), &used, &r), BIRD_FEED_REPLY);
	assert_int_equal(used, strlen(text));
	return r;
}

static const struct bird_reply *reply_of(const char *text)
{
	return reply_of_lim(text, NULL);
}

/* ---- the reader ------------------------------------------------------------ */

static void test_greeting(void **state)
{
	run_all_chunkings(GREETING, NULL, &R);
	assert_int_equal(R.n, 1);
	assert_int_equal(R.fatal, BIRD_PERR_OK);
	assert_string_equal(R.replies[0], "err=0 code=1 cls=0 async=0|0001-BIRD 2.0.12 ready.|");
}

static void test_ok_replies(void **state)
{
	run_all_chunkings(DISABLE_S1, NULL, &R);
	assert_int_equal(R.n, 1);
	assert_string_equal(R.replies[0], "err=0 code=0 cls=0 async=0|0009-s1: disabled|0000-|");

	run_all_chunkings(CONFIGURE, NULL, &R);
	assert_string_equal(R.replies[0], "err=0 code=3 cls=0 async=0|"
					  "0002-Reading configuration from bird.conf|"
					  "0003-Reconfigured|");
}

static void test_error_classes(void **state)
{
	run_all_chunkings(NETWORK_NOT_FOUND, NULL, &R);
	assert_string_equal(R.replies[0], "err=0 code=8001 cls=8 async=0|8001-Network not found|");
	run_all_chunkings(SYNTAX_UNDEFINED, NULL, &R);
	assert_int_equal(R.n, 1);
	assert_true(strncmp(R.replies[0], "err=0 code=9001 cls=9 ", 22) == 0);
	/* a class-1 final line ends the reply too (show symbols NAME) */
	run_all_chunkings(SHOW_SYMBOLS_S1, NULL, &R);
	assert_string_equal(R.replies[0], "err=0 code=1010 cls=1 async=0|1010-s1      \tprotocol|");
}

static void test_continuations(void **state)
{
	run_all_chunkings(SHOW_STATUS, NULL, &R);
	assert_int_equal(R.n, 1);
	assert_string_equal(R.replies[0],
			    "err=0 code=13 cls=0 async=0|"
			    "1000-BIRD 2.0.12|"
			    "1011-Router ID is 10.0.0.1|"
			    "1011~Hostname is vm|"
			    "1011~Current server time is 2026-11-26 02:08:18.943|"
			    "1011~Last reboot on 2026-11-26 01:58:06.277|"
			    "1011~Last reconfiguration on 2026-11-26 01:58:06.886|"
			    "0013-Daemon is up and running|");

	/* exactly one space is stripped; tabs and further spaces stay */
	run_all_chunkings("1003-\t127.0.0.1/8\n \t::1/128\n   two\n \n0000 \n", NULL, &R);
	assert_string_equal(R.replies[0], "err=0 code=0 cls=0 async=0|"
					  "1003-\t127.0.0.1/8|1003~\t::1/128|1003~  two|1003~|0000-|");

	/* a continuation takes the code of the line just before it */
	run_all_chunkings(ENABLE_ALL, NULL, &R);
	assert_string_equal(R.replies[0], "err=0 code=0 cls=0 async=0|"
					  "0010-device1: already enabled|0011-s1: enabled|"
					  "0010-s2: already enabled|0000-|");
	run_all_chunkings(ENABLE_PATTERN, NULL, &R);
	assert_string_equal(R.replies[0], "err=0 code=0 cls=0 async=0|"
					  "0010-s1: already enabled|0010~s2: already enabled|0000-|");
}

static void test_table_rows(void **state)
{
	const struct bird_reply *r;

	run_all_chunkings(SHOW_PROTOCOLS_ALL_S1, NULL, &R);
	assert_int_equal(R.n, 1);
	r = reply_of(SHOW_PROTOCOLS);
	assert_int_equal(r->n_lines, 8);
	assert_int_equal(r->lines[0].code, 2002);
	assert_int_equal(r->lines[0].cont, false);
	assert_int_equal(r->lines[1].code, 1002);
	assert_int_equal(r->lines[2].code, 1002);
	assert_true(r->lines[2].cont);
	assert_string_equal(r->lines[2].text, "s1         Static     master4    up     02:08:58.294  ");
	assert_int_equal(r->code, 0);
	assert_string_equal(bird_reply_last_text(r), "");
}

/* A session's worth of replies back to back, cut everywhere. */
static void test_stream(void **state)
{
	static char stream[8192];

	snprintf(stream, sizeof(stream), "%s%s%s%s%s%s%s%s%s", GREETING, SHOW_STATUS,
		 SHOW_PROTOCOLS, DISABLE_S1, ENABLE_S1, NO_MATCH, SHOW_ROUTE_COUNT, SHOW_ROUTE,
		 ASYNC_THEN_STATUS);
	run_all_chunkings(stream, NULL, &R);
	assert_int_equal(R.fatal, BIRD_PERR_OK);
	assert_int_equal(R.n, 9);
	assert_int_equal(R.used, strlen(stream));
	assert_true(strncmp(R.replies[8], "err=0 code=13 cls=0 async=2|1000-BIRD", 37) == 0);
}

static void test_async_lines(void **state)
{
	/* between replies, inside a reply, before a continuation */
	run_all_chunkings("+hello\n0009-s1: disabled\n+Disabling protocol s1\n0000 \n"
			  "+x\n1002-a\n+y\n b\n0000 \n",
			  NULL, &R);
	assert_int_equal(R.n, 2);
	assert_string_equal(R.replies[0], "err=0 code=0 cls=0 async=2|0009-s1: disabled|0000-|");
	assert_string_equal(R.replies[1], "err=0 code=0 cls=0 async=2|1002-a|1002~b|0000-|");

	/* an async line after the last reply is consumed, and is not a reply */
	run_all_chunkings("0000 \n+Enabling protocol s1\n", NULL, &R);
	assert_int_equal(R.n, 1);
	assert_int_equal(R.used, strlen("0000 \n+Enabling protocol s1\n"));
}

static void test_crlf(void **state)
{
	run_all_chunkings("0009-s1: disabled\r\n0000 \r\n", NULL, &R);
	assert_string_equal(R.replies[0], "err=0 code=0 cls=0 async=0|0009-s1: disabled|0000-|");
}

static void test_used_stops_at_reply(void **state)
{
	struct bird_parser *p = bird_parser_new(NULL);
	const struct bird_reply *r;
	const char *two = "0000 a\n0000 b\n";
	size_t used;

	assert_int_equal(bird_parser_feed(p, two, strlen(two), &used, &r), BIRD_FEED_REPLY);
	assert_int_equal(used, 7);
	assert_string_equal(bird_reply_last_text(r), "a");
	assert_false(bird_parser_mid_reply(p));
	assert_int_equal(bird_parser_feed(p, two + 7, 7, &used, &r), BIRD_FEED_REPLY);
	assert_int_equal(used, 7);
	assert_string_equal(bird_reply_last_text(r), "b");
	/* a zero-length feed is fine and hands out nothing */
	assert_int_equal(bird_parser_feed(p, "", 0, &used, &r), BIRD_FEED_MORE);
	assert_null(r);
	assert_int_equal(used, 0);
	bird_parser_free(&p);
}

static void test_mid_reply(void **state)
{
	struct bird_parser *p = bird_parser_new(NULL);
	const struct bird_reply *r;
	size_t used;

	assert_false(bird_parser_mid_reply(p));
	assert_int_equal(bird_parser_feed(p, "+async", 6, &used, &r), BIRD_FEED_MORE);
	assert_false(bird_parser_mid_reply(p));
	assert_int_equal(bird_parser_feed(p, "\n0", 2, &used, &r), BIRD_FEED_MORE);
	assert_true(bird_parser_mid_reply(p));
	assert_int_equal(bird_parser_feed(p, "000 \n", 5, &used, &r), BIRD_FEED_REPLY);
	assert_false(bird_parser_mid_reply(p));
	assert_int_equal(bird_parser_feed(p, "1002-row\n", 9, &used, &r), BIRD_FEED_MORE);
	assert_true(bird_parser_mid_reply(p));
	bird_parser_reset(p);
	assert_false(bird_parser_mid_reply(p));
	bird_parser_free(&p);
}

static void test_fatal_errors(void **state)
{
	static const struct {
		const char *text;
		size_t len;		/* 0: strlen(text) */
		enum bird_perr err;
		size_t at;
	} cases[] = {
		{ "garbage\n", 0, BIRD_PERR_BAD_CODE, 0 },
		{ "No such command. Press `?' for help.\n", 0, BIRD_PERR_BAD_CODE, 0 },
		{ "12a4 x\n", 0, BIRD_PERR_BAD_CODE, 2 },
		{ "123\n", 0, BIRD_PERR_BAD_CODE, 3 },
		{ "0000x\n", 0, BIRD_PERR_BAD_SEPARATOR, 4 },
		{ "0000\n", 0, BIRD_PERR_BAD_SEPARATOR, 4 },
		{ "00000 \n", 0, BIRD_PERR_BAD_SEPARATOR, 4 },
		{ "\n", 0, BIRD_PERR_EMPTY_LINE, 0 },
		{ "1002-a\n\n", 0, BIRD_PERR_EMPTY_LINE, 7 },
		{ "\r\n", 0, BIRD_PERR_BAD_CODE, 0 },
		{ " orphan\n", 0, BIRD_PERR_ORPHAN_CONTINUATION, 0 },
		/* a continuation never continues the previous reply */
		{ "0000 \n more\n", 0, BIRD_PERR_ORPHAN_CONTINUATION, 6 },
		{ "+async\n cont\n", 0, BIRD_PERR_ORPHAN_CONTINUATION, 7 },
		{ "0000 a\0b\n", 9, BIRD_PERR_NUL, 6 },
		{ "1002-x\n \0", 9, BIRD_PERR_NUL, 8 },
		{ "00\0", 3, BIRD_PERR_NUL, 2 },
		{ "0000\0", 5, BIRD_PERR_NUL, 4 },
		{ "\0", 1, BIRD_PERR_NUL, 0 },
		{ "-0000 \n", 0, BIRD_PERR_BAD_CODE, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);

		for (size_t chunk = 0; chunk <= 3; chunk++) {
			run_text(cases[i].text, len, chunk, NULL, &R);
			if (R.fatal != cases[i].err || R.fatal_at != cases[i].at)
				fail_msg("case %zu chunk %zu: err %d at %zu, want %d at %zu", i, chunk,
					 R.fatal, R.fatal_at, cases[i].err, cases[i].at);
		}
	}
}

static void test_fatal_is_sticky(void **state)
{
	struct bird_parser *p = bird_parser_new(NULL);
	const struct bird_reply *r;
	const char *detail;
	size_t used;

	assert_int_equal(bird_parser_error(p, &detail), BIRD_PERR_OK);
	assert_int_equal(bird_parser_feed(p, "0000 ok\nxx", 10, &used, &r), BIRD_FEED_REPLY);
	assert_int_equal(bird_parser_feed(p, "xx", 2, &used, &r), BIRD_FEED_FATAL);
	assert_int_equal(used, 0);
	assert_null(r);
	assert_int_equal(bird_parser_error(p, &detail), BIRD_PERR_BAD_CODE);
	assert_string_equal(detail, "line does not start with a 4-digit code");
	assert_int_equal(bird_parser_feed(p, "0000 \n", 6, &used, &r), BIRD_FEED_FATAL);
	assert_int_equal(used, 0);
	/* a reset (new connection) starts over */
	bird_parser_reset(p);
	assert_int_equal(bird_parser_error(p, NULL), BIRD_PERR_OK);
	assert_int_equal(bird_parser_feed(p, "0000 \n", 6, &used, &r), BIRD_FEED_REPLY);
	bird_parser_free(&p);
	bird_parser_free(&p);
	bird_parser_free(NULL);
}

static void test_limit_line(void **state)
{
	struct bird_limits lim = { .max_line = 10 };

	/* exactly 10 text bytes: fine */
	run_all_chunkings("1002-0123456789\n0000 \n", &lim, &R);
	assert_string_equal(R.replies[0], "err=0 code=0 cls=0 async=0|1002-0123456789|0000-|");
	/* 11: the reply is read to its end and handed out without lines,
	 * and the next reply is whole again */
	run_all_chunkings("1002-0123456789A\n 0123\n0000 \n0009-s1: off\n0000 \n", &lim, &R);
	assert_int_equal(R.n, 2);
	assert_string_equal(R.replies[0], "err=1 code=0 cls=0 async=0|");
	assert_string_equal(R.replies[1], "err=0 code=0 cls=0 async=0|0009-s1: off|0000-|");
	/* the over-long line is the final one: its code still counts */
	run_all_chunkings("8001 0123456789ABCDEF\n", &lim, &R);
	assert_string_equal(R.replies[0], "err=1 code=8001 cls=8 async=0|");
	/* a CR before LF counts toward the limit but is not kept */
	run_all_chunkings("0000 012345678\r\n", &lim, &R);
	assert_string_equal(R.replies[0], "err=0 code=0 cls=0 async=0|0000-012345678|");
}

static void test_limit_lines(void **state)
{
	struct bird_limits lim = { .max_lines = 3 };

	run_all_chunkings("1002-a\n b\n0000 \n", &lim, &R);
	assert_string_equal(R.replies[0], "err=0 code=0 cls=0 async=0|1002-a|1002~b|0000-|");
	run_all_chunkings("1002-a\n b\n c\n0000 \n0000 next\n", &lim, &R);
	assert_int_equal(R.n, 2);
	assert_string_equal(R.replies[0], "err=2 code=0 cls=0 async=0|");
	assert_string_equal(R.replies[1], "err=0 code=0 cls=0 async=0|0000-next|");
	/* async lines are not reply lines */
	run_all_chunkings("+1\n+2\n+3\n+4\n1002-a\n b\n0000 \n", &lim, &R);
	assert_string_equal(R.replies[0], "err=0 code=0 cls=0 async=4|1002-a|1002~b|0000-|");
}

static void test_limit_bytes(void **state)
{
	struct bird_limits lim = { .max_bytes = 10 };

	run_all_chunkings("1002-abcde\n fghij\n0000 \n", &lim, &R);
	assert_string_equal(R.replies[0], "err=0 code=0 cls=0 async=0|1002-abcde|1002~fghij|0000-|");
	run_all_chunkings("1002-abcde\n fghij\n0000 k\n0000 again\n", &lim, &R);
	assert_int_equal(R.n, 2);
	assert_string_equal(R.replies[0], "err=3 code=0 cls=0 async=0|");
	assert_string_equal(R.replies[1], "err=0 code=0 cls=0 async=0|0000-again|");

	/* both limits crossed in one chunk: the one crossed first, byte by
	 * byte, is reported whatever the chunking */
	lim.max_line = 8;
	run_all_chunkings("1002-abcdef\n ghijklmnopq\n0000 \n", &lim, &R);
	assert_string_equal(R.replies[0], "err=3 code=0 cls=0 async=0|");
	run_all_chunkings("1002-a\n ghijklmnopq\n0000 \n", &lim, &R);
	assert_string_equal(R.replies[0], "err=1 code=0 cls=0 async=0|");
	/* a tie goes to the line limit */
	run_all_chunkings("1002-ab\n ghijklmnop\n0000 \n", &lim, &R);
	assert_string_equal(R.replies[0], "err=1 code=0 cls=0 async=0|");
}

/* A big reply with the defaults: storage grows, and is given back after. */
static void test_big_reply(void **state)
{
	size_t rows = 3000, len = 0;
	char *text = malloc(rows * 64 + 64);
	struct bird_parser *p = bird_parser_new(NULL);
	const struct bird_reply *r;
	size_t used;

	assert_non_null(text);
	assert_non_null(p);
	len += (size_t)sprintf(text, "2002-Name Proto Table State Since Info\n");
	for (size_t i = 0; i < rows; i++)
		len += (size_t)sprintf(text + len, "%sp%zu BGP --- up 01:02:03.456 Established\n",
				       i == 0 ? "1002-" : " ", i);
	len += (size_t)sprintf(text + len, "0000 \n");
	assert_int_equal(bird_parser_feed(p, text, len, &used, &r), BIRD_FEED_REPLY);
	assert_int_equal(r->err, BIRD_PERR_OK);
	assert_int_equal(r->n_lines, rows + 2);
	assert_string_equal(r->lines[rows].text, "p2999 BGP --- up 01:02:03.456 Established");
	assert_true(p->buf_cap > KEEP_BUF);
	assert_int_equal(bird_parser_feed(p, "0000 \n", 6, &used, &r), BIRD_FEED_REPLY);
	assert_true(p->buf_cap <= KEEP_BUF);
	bird_parser_free(&p);
	free(text);
}

static void test_nomem(void **state)
{
	/* each realloc in turn fails once: that reply reports NOMEM, and the
	 * one after it is whole */
	for (int n = 0; n < 4; n++) {
		struct bird_parser *p = bird_parser_new(NULL);
		const struct bird_reply *r;
		const char *t = "1002-abc\n def\n0000 end\n";
		size_t used;

		fail_realloc_after = n;
		assert_int_equal(bird_parser_feed(p, t, strlen(t), &used, &r), BIRD_FEED_REPLY);
		assert_int_equal(used, strlen(t));
		if (fail_realloc_after == -1) {
			assert_int_equal(r->err, BIRD_PERR_NOMEM);
			assert_int_equal(r->n_lines, 0);
			assert_null(r->lines);
		} else {
			assert_int_equal(r->err, BIRD_PERR_OK);
		}
		assert_int_equal(r->code, 0);
		fail_realloc_after = -1;
		assert_int_equal(bird_parser_feed(p, t, strlen(t), &used, &r), BIRD_FEED_REPLY);
		assert_int_equal(r->err, BIRD_PERR_OK);
		assert_int_equal(r->n_lines, 3);
		bird_parser_free(&p);
	}
}

/* Pseudo-random garbage: every chunking agrees, nothing crashes. */
static void test_garbage(void **state)
{
	static const char alphabet[] = "0123456789 -+\n\rab\t";
	static char text[600];
	uint32_t seed = 12345;

	for (int round = 0; round < 300; round++) {
		size_t len = 1 + round % 590;

		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			text[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		text[len] = '\0';
		run_all_chunkings(text, &(struct bird_limits){ .max_line = 16, .max_lines = 8 }, &R);
		if (R.fatal == BIRD_PERR_OK)
			assert_int_equal(R.used, len);
	}
}

static void test_error_strings(void **state)
{
	for (int e = BIRD_PERR_OK; e <= BIRD_PERR_NUL; e++)
		assert_string_not_equal(bird_perr_str((enum bird_perr)e), "unknown error");
	for (int e = BIRD_R_OK; e <= BIRD_R_NOMEM; e++)
		assert_string_not_equal(bird_rerr_str((enum bird_rerr)e), "unknown error");
	assert_string_equal(bird_perr_str((enum bird_perr)99), "unknown error");
}

/* ---- commands ----------------------------------------------------------- */

static void test_commands(void **state)
{
	char buf[128], big[BIRD_CMD_MAX + 2];

	assert_true(bird_cmd_valid("show status"));
	assert_true(bird_cmd_valid("show route export up1 count"));
	assert_true(bird_cmd_valid("show\tstatus"));
	assert_false(bird_cmd_valid(""));
	assert_false(bird_cmd_valid(NULL));
	assert_false(bird_cmd_valid("show status\nshow protocols"));
	assert_false(bird_cmd_valid("show status\r"));
	assert_false(bird_cmd_valid("show \x7f"));
	assert_false(bird_cmd_valid("show \xc3\xa9"));
	memset(big, 'x', sizeof(big));
	big[BIRD_CMD_MAX] = '\0';
	assert_true(bird_cmd_valid(big));
	big[BIRD_CMD_MAX] = 'x';
	big[BIRD_CMD_MAX + 1] = '\0';
	assert_false(bird_cmd_valid(big));

	assert_true(bird_name_valid("s1"));
	assert_true(bird_name_valid("_anycast_v4"));
	assert_true(bird_name_valid("Up1"));
	assert_false(bird_name_valid(""));
	assert_false(bird_name_valid(NULL));
	assert_false(bird_name_valid("1s"));
	assert_false(bird_name_valid("s*"));
	assert_false(bird_name_valid("s?"));
	assert_false(bird_name_valid("a b"));
	assert_false(bird_name_valid("a\"b"));
	assert_false(bird_name_valid("a-b"));
	memset(big, 'a', BIRD_NAME_MAX);
	big[BIRD_NAME_MAX] = '\0';
	assert_true(bird_name_valid(big));
	big[BIRD_NAME_MAX] = 'a';
	big[BIRD_NAME_MAX + 1] = '\0';
	assert_false(bird_name_valid(big));

	assert_int_equal(bird_cmd_ctl(buf, sizeof(buf), BIRD_CTL_DISABLE, "s1"), 0);
	assert_string_equal(buf, "disable \"s1\"");
	assert_true(bird_cmd_valid(buf));
	assert_int_equal(bird_cmd_ctl(buf, sizeof(buf), BIRD_CTL_ENABLE, "anycast"), 0);
	assert_string_equal(buf, "enable \"anycast\"");
	assert_int_equal(bird_cmd_ctl(buf, sizeof(buf), BIRD_CTL_ENABLE, "s*"), -1);
	/* "enable \"s1\"" is 11 bytes + NUL */
	assert_int_equal(bird_cmd_ctl(buf, 12, BIRD_CTL_ENABLE, "s1"), 0);
	assert_int_equal(bird_cmd_ctl(buf, 11, BIRD_CTL_ENABLE, "s1"), -1);
}

/* ---- show status ---------------------------------------------------------- */

static void test_status_real(void **state)
{
	struct bird_status st;
	const char *err = NULL;

	assert_int_equal(bird_parse_status(reply_of(SHOW_STATUS), &st, &err), BIRD_R_OK);
	assert_string_equal(st.version, "2.0.12");
	assert_int_equal(st.router_id, 0x0a000001);
	assert_string_equal(st.router_id_text, "10.0.0.1");
	assert_string_equal(st.hostname, "vm");
	assert_string_equal(st.server_time, "2026-11-26 02:08:18.943");
	assert_string_equal(st.last_reboot, "2026-11-26 01:58:06.277");
	assert_true(st.has_last_reconfig);
	assert_string_equal(st.last_reconfig, "2026-11-26 01:58:06.886");
	assert_false(st.graceful_restart);
	assert_int_equal(st.state, BIRD_DAEMON_UP);
	assert_string_equal(st.state_text, "Daemon is up and running");

	/* async lines before it change nothing */
	assert_int_equal(bird_parse_status(reply_of(ASYNC_THEN_STATUS), &st, &err), BIRD_R_OK);
	assert_string_equal(st.last_reconfig, "2026-11-26 02:08:59.301");
}

static void test_status_states(void **state)
{
	/* from BIRD's source: the other 0013 texts, graceful restart lines,
	 * and 2.0.x before "Hostname is" existed */
	static const char shutdown[] = "1000-BIRD 2.0.12\n"
				       "1011-Router ID is 192.0.2.254\n"
				       " Current server time is 2026-11-26 02:08:18.943\n"
				       " Last reboot on 2026-11-26 01:58:06.277\n"
				       "0013 Shutdown in progress\n";
	static const char reconfig[] = "1000-BIRD 2.0.12\n"
				       "1011-Router ID is 0.0.0.1\n"
				       " Last reconfiguration on 2026-11-26 01:58:06.886\n"
				       "0013 Reconfiguration in progress\n";
	static const char gr[] = "1000-BIRD 2.0.12\n"
				 "1011-Router ID is 10.0.0.1\n"
				 " Hostname is pop-a\n"
				 " Current server time is 2026-11-26 02:08:18.943\n"
				 " Last reboot on 2026-11-26 01:58:06.277\n"
				 " Last reconfiguration on 2026-11-26 01:58:06.886\n"
				 "0024-Graceful restart recovery in progress\n"
				 "   Waiting for 1 channels to recover\n"
				 "   Wait timer is 115.124/240\n"
				 "0013 Daemon is up and running\n";
	static const char other[] = "1000-BIRD 3.0.0\n"
				    "1011-Router ID is 255.255.255.255\n"
				    " Some new line\n"
				    "0013 Something new\n";
	struct bird_status st;
	const char *err;

	assert_int_equal(bird_parse_status(reply_of(shutdown), &st, &err), BIRD_R_OK);
	assert_int_equal(st.state, BIRD_DAEMON_SHUTDOWN);
	assert_int_equal(st.router_id, 0xc00002fe);
	assert_false(st.has_last_reconfig);
	assert_string_equal(st.last_reconfig, "");
	assert_string_equal(st.hostname, "");

	assert_int_equal(bird_parse_status(reply_of(reconfig), &st, &err), BIRD_R_OK);
	assert_int_equal(st.state, BIRD_DAEMON_RECONFIG);
	assert_int_equal(st.router_id, 1);
	assert_true(st.has_last_reconfig);
	assert_string_equal(st.server_time, "");

	assert_int_equal(bird_parse_status(reply_of(gr), &st, &err), BIRD_R_OK);
	assert_true(st.graceful_restart);
	assert_int_equal(st.state, BIRD_DAEMON_UP);
	assert_string_equal(st.hostname, "pop-a");

	assert_int_equal(bird_parse_status(reply_of(other), &st, &err), BIRD_R_OK);
	assert_int_equal(st.state, BIRD_DAEMON_OTHER);
	assert_string_equal(st.state_text, "Something new");
	assert_string_equal(st.version, "3.0.0");
	assert_int_equal(st.router_id, 0xffffffff);
}

static void test_status_errors(void **state)
{
	static const struct {
		const char *text;
		enum bird_rerr err;
	} cases[] = {
		{ "8001 Network not found\n", BIRD_R_BIRD_ERROR },
		{ "9001 syntax error, unexpected END\n", BIRD_R_BIRD_ERROR },
		{ "0000 \n", BIRD_R_UNEXPECTED },
		{ "1000-BIRD 2.0.12\n0000 \n", BIRD_R_UNEXPECTED },
		{ "1000-BIRD 2.0.12\n0013 Daemon is up and running\n", BIRD_R_MISSING },
		{ "1011-Router ID is 10.0.0.1\n0013 Daemon is up and running\n", BIRD_R_MISSING },
		{ "1000-BIRD\n1011-Router ID is 10.0.0.1\n0013 x\n", BIRD_R_BAD_FIELD },
		{ "1000-bird 2\n1011-Router ID is 10.0.0.1\n0013 x\n", BIRD_R_BAD_FIELD },
		{ "1000-BIRD 2.0.12\n1011-Router ID is 10.0.0.256\n0013 x\n", BIRD_R_BAD_FIELD },
		{ "1000-BIRD 2.0.12\n1011-Router ID is 10.0.0\n0013 x\n", BIRD_R_BAD_FIELD },
		{ "1000-BIRD 2.0.12\n1011-Router ID is 10.0.0.1 \n0013 x\n", BIRD_R_BAD_FIELD },
		{ "1000-BIRD 2.0.12\n1011-Router ID is 010.0.0.0001\n0013 x\n", BIRD_R_BAD_FIELD },
		{ "1000-BIRD 2.0.12\n1011-Router ID is 2001:db8::1\n0013 x\n", BIRD_R_BAD_FIELD },
		{ "1000-BIRD 0123456789012345678901234567890123\n1011-Router ID is 1.1.1.1\n0013 x\n",
		  BIRD_R_TOO_LONG },
		{ "1000-BIRD 2\n1011-Router ID is 1.1.1.1\n Current server time is "
		  "0123456789012345678901234567890123456789\n0013 x\n",
		  BIRD_R_TOO_LONG },
	};
	struct bird_status st;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *err = NULL;
		enum bird_rerr got = bird_parse_status(reply_of(cases[i].text), &st, &err);

		if (got != cases[i].err)
			fail_msg("case %zu: got %d (%s), want %d", i, got, err ? err : "-",
				 cases[i].err);
		assert_non_null(err);
		assert_true(err[0] != '\0');
	}
	/* a reply over a limit */
	{
		struct bird_limits lim = { .max_line = 8 };
		const char *err = NULL;

		assert_int_equal(bird_parse_status(reply_of_lim(SHOW_STATUS, &lim), &st, &err),
				 BIRD_R_LIMIT);
		assert_string_equal(err, "reply line too long");
	}
}

/* ---- show protocols -------------------------------------------------------- */

static void check_row(const struct bird_proto *p, const char *name, const char *proto,
		      const char *table, enum bird_proto_state st, const char *since,
		      const char *info)
{
	assert_non_null(p);
	assert_string_equal(p->name, name);
	assert_string_equal(p->proto, proto);
	assert_string_equal(p->table, table);
	assert_int_equal(p->state, st);
	assert_string_equal(p->since, since);
	assert_string_equal(p->info, info);
	assert_false(p->info_cut);
}

static void test_protocols_real(void **state)
{
	struct bird_protocols ps;
	const char *err;

	assert_int_equal(bird_parse_protocols(reply_of(SHOW_PROTOCOLS), &ps, &err), BIRD_R_OK);
	assert_int_equal(ps.n, 6);
	check_row(&ps.rows[0], "device1", "Device", "---", BIRD_PS_UP, "01:58:06.277", "");
	check_row(&ps.rows[1], "s1", "Static", "master4", BIRD_PS_UP, "02:08:58.294", "");
	check_row(&ps.rows[2], "s2", "Static", "master6", BIRD_PS_UP, "02:09:12.797", "");
	check_row(&ps.rows[3], "up1", "BGP", "---", BIRD_PS_UP, "02:09:34.466", "Established");
	check_row(&ps.rows[4], "up2", "BGP", "---", BIRD_PS_START, "02:09:12.797",
		  "Active        Socket: Connection closed");
	check_row(&ps.rows[5], "p1", "Pipe", "---", BIRD_PS_DOWN, "02:09:35.329",
		  "master4 <=> t2");
	assert_string_equal(ps.rows[4].state_text, "start");
	assert_ptr_equal(bird_protocols_find(&ps, "up2"), &ps.rows[4]);
	assert_null(bird_protocols_find(&ps, "up"));
	assert_null(bird_protocols_find(&ps, "up12"));
	bird_protocols_free(&ps);
	assert_null(ps.rows);
	assert_int_equal(ps.n, 0);

	assert_int_equal(bird_parse_protocols(reply_of(SHOW_PROTOCOLS_ERR), &ps, &err), BIRD_R_OK);
	assert_int_equal(ps.n, 2);
	check_row(&ps.rows[1], "up1", "BGP", "---", BIRD_PS_DOWN, "02:09:06.159",
		  "Error: Invalid next hop");
	bird_protocols_free(&ps);

	/* "show protocols all": detail lines are not rows */
	assert_int_equal(bird_parse_protocols(reply_of(SHOW_PROTOCOLS_ALL_S1), &ps, &err),
			 BIRD_R_OK);
	assert_int_equal(ps.n, 1);
	check_row(&ps.rows[0], "s1", "Static", "master4", BIRD_PS_UP, "01:58:06.898", "");
	bird_protocols_free(&ps);

	/* a pattern that matched nothing */
	assert_int_equal(bird_parse_protocols(reply_of(NO_MATCH), &ps, &err), BIRD_R_OK);
	assert_int_equal(ps.n, 0);
	assert_null(ps.rows);
	assert_null(bird_protocols_find(&ps, "s1"));
}

static void test_protocols_spacing(void **state)
{
	static const char text[] =
		"2002-Name\tProto  Table State   Since  Info\n"
		"1002-anycast Direct master4 up 2026-11-25 Established\n"
		"  long_protocol_name_over_ten\tBGP\t---\tstop\t2026-11-25 02:09:12  Active  x  \n"
		" s3 Static master4 flush 2026-11-25 02:09:12.125\n"
		" s4 Kernel master4 weird 12:00\n"
		"1002-k1 Kernel master6 up 2026-11-25 notatime\n"
		"0000 \n";
	struct bird_protocols ps;
	const char *err;

	assert_int_equal(bird_parse_protocols(reply_of(text), &ps, &err), BIRD_R_OK);
	assert_int_equal(ps.n, 5);
	check_row(&ps.rows[0], "anycast", "Direct", "master4", BIRD_PS_UP, "2026-11-25",
		  "Established");
	check_row(&ps.rows[1], "long_protocol_name_over_ten", "BGP", "---", BIRD_PS_STOP,
		  "2026-11-25 02:09:12", "Active  x");
	check_row(&ps.rows[2], "s3", "Static", "master4", BIRD_PS_FLUSH, "2026-11-25 02:09:12.125",
		  "");
	check_row(&ps.rows[3], "s4", "Kernel", "master4", BIRD_PS_OTHER, "12:00", "");
	assert_string_equal(ps.rows[3].state_text, "weird");
	check_row(&ps.rows[4], "k1", "Kernel", "master6", BIRD_PS_UP, "2026-11-25", "notatime");
	bird_protocols_free(&ps);

	assert_string_equal(bird_proto_state_str(BIRD_PS_UP), "up");
	assert_string_equal(bird_proto_state_str(BIRD_PS_FLUSH), "flush");
	assert_string_equal(bird_proto_state_str(BIRD_PS_OTHER), "other");
}

static void test_protocols_info_cut(void **state)
{
	static char text[1024];
	char info[400];
	struct bird_protocols ps;
	const char *err;

	memset(info, 'i', sizeof(info) - 1);
	info[sizeof(info) - 1] = '\0';
	snprintf(text, sizeof(text),
		 "2002-Name Proto Table State Since Info\n1002-b BGP --- up 01:02:03 %s\n0000 \n",
		 info);
	assert_int_equal(bird_parse_protocols(reply_of(text), &ps, &err), BIRD_R_OK);
	assert_true(ps.rows[0].info_cut);
	assert_int_equal(strlen(ps.rows[0].info), BIRD_INFO_MAX);
	bird_protocols_free(&ps);
}

static void test_protocols_errors(void **state)
{
	static char long_name[200];
	static const struct {
		const char *text;
		enum bird_rerr err;
	} cases[] = {
		{ "9001 syntax error, unexpected CF_SYM_UNDEFINED\n", BIRD_R_BIRD_ERROR },
		{ "8002 Something else\n", BIRD_R_BIRD_ERROR },
		{ "0013 Daemon is up and running\n", BIRD_R_UNEXPECTED },
		{ "1002-s1 Static master4 up 01:02:03\n0000 \n", BIRD_R_MISSING },
		{ "2002-Name Proto Table State Since\n1002-s1 Static master4 up 01:02:03\n0000 \n",
		  BIRD_R_BAD_FIELD },
		{ "2002-Name Proto Table State Since Info More\n0000 \n", BIRD_R_BAD_FIELD },
		{ "2002-Name Proto Table State Since Info\n1002-s1 Static master4 up\n0000 \n",
		  BIRD_R_MISSING },
		{ "2002-Name Proto Table State Since Info\n1002-s1 Static master4 up 1\n"
		  " s2 S m u\n0000 \n",
		  BIRD_R_MISSING },
		{ "2002-Name Proto Table State Since Info\n1002-s1 VeryLongProtocolTypeNameOverThirtyTwo"
		  " m up 1\n0000 \n",
		  BIRD_R_TOO_LONG },
		{ "2002-Name Proto Table State Since Info\n1002-s1 S m upupupupupupupupup 1\n0000 \n",
		  BIRD_R_TOO_LONG },
		{ "2002-Name Proto Table State Since Info\n1002-s1 S m up "
		  "2026-11-25-02:09:12.125-and-some-more-and-more\n0000 \n",
		  BIRD_R_TOO_LONG },
		{ long_name, BIRD_R_TOO_LONG },
	};
	struct bird_protocols ps;
	char name[BIRD_NAME_MAX + 2];

	memset(name, 'n', BIRD_NAME_MAX + 1);
	name[BIRD_NAME_MAX + 1] = '\0';
	snprintf(long_name, sizeof(long_name),
		 "2002-Name Proto Table State Since Info\n1002-%s S m up 1\n0000 \n", name);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *err = NULL;
		enum bird_rerr got = bird_parse_protocols(reply_of(cases[i].text), &ps, &err);

		if (got != cases[i].err)
			fail_msg("case %zu: got %d (%s), want %d", i, got, err ? err : "-",
				 cases[i].err);
		assert_int_equal(ps.n, 0);
		assert_null(ps.rows);
	}
	/* the limit: BIRD_NAME_MAX exactly fits */
	name[BIRD_NAME_MAX] = '\0';
	snprintf(long_name, sizeof(long_name),
		 "2002-Name Proto Table State Since Info\n1002-%s S m up 1\n0000 \n", name);
	assert_int_equal(bird_parse_protocols(reply_of(long_name), &ps, NULL), BIRD_R_OK);
	assert_string_equal(ps.rows[0].name, name);
	bird_protocols_free(&ps);
	/* no rows and no heading: nothing to say */
	assert_int_equal(bird_parse_protocols(reply_of("0000 \n"), &ps, NULL), BIRD_R_OK);
	assert_int_equal(ps.n, 0);
	/* limit */
	{
		struct bird_limits lim = { .max_lines = 2 };

		assert_int_equal(bird_parse_protocols(reply_of_lim(SHOW_PROTOCOLS, &lim), &ps, NULL),
				 BIRD_R_LIMIT);
	}
}

/* ---- show route count -------------------------------------------------------- */

static void test_count_real(void **state)
{
	struct bird_count c;
	const char *err;

	assert_int_equal(bird_parse_count(reply_of(SHOW_ROUTE_COUNT), &c, &err), BIRD_R_OK);
	assert_int_equal(c.routes, 3);
	assert_int_equal(c.scanned, 3);
	assert_int_equal(c.networks, 3);
	assert_int_equal(c.tables, 2);

	assert_int_equal(bird_parse_count(reply_of(SHOW_ROUTE_EXPORT_COUNT), &c, &err), BIRD_R_OK);
	assert_int_equal(c.routes, 2);
	assert_int_equal(c.tables, 1);

	assert_int_equal(bird_parse_count(reply_of(SHOW_ROUTE_EXPORT_COUNT_ZERO), &c, &err),
			 BIRD_R_OK);
	assert_int_equal(c.routes, 0);
	assert_int_equal(c.tables, 1);

	assert_int_equal(bird_parse_count(reply_of(SHOW_ROUTE_EXPORT_PIPE_COUNT), &c, &err),
			 BIRD_R_OK);
	assert_int_equal(c.routes, 2);
	assert_int_equal(c.scanned, 4);
	assert_int_equal(c.networks, 4);
	assert_int_equal(c.tables, 2);

	/* no table at all */
	assert_int_equal(bird_parse_count(reply_of("0000 \n"), &c, &err), BIRD_R_OK);
	assert_int_equal(c.tables, 0);
	/* big numbers */
	assert_int_equal(bird_parse_count(reply_of("1007-18446744073709551615 of "
						   "18446744073709551615 routes for 1 networks "
						   "in table t\n0000 \n"),
					  &c, &err),
			 BIRD_R_OK);
	assert_true(c.routes == UINT64_MAX);
	/* BIRD 1.x had no table name */
	assert_int_equal(bird_parse_count(reply_of("0014 \n"), &c, &err), BIRD_R_BAD_FIELD);
	assert_int_equal(bird_parse_count(reply_of("1007-5 of 7 routes for 6 networks\n0000 \n"), &c,
					  &err),
			 BIRD_R_OK);
	assert_int_equal(c.routes, 5);
}

static void test_count_errors(void **state)
{
	static const struct {
		const char *text;
		enum bird_rerr err;
	} cases[] = {
		{ NO_VALID_TABLES, BIRD_R_BIRD_ERROR },
		{ "9001 No export channel for table master6\n", BIRD_R_BIRD_ERROR },
		{ NETWORK_NOT_FOUND, BIRD_R_BIRD_ERROR },
		{ "0013 Daemon is up and running\n", BIRD_R_UNEXPECTED },
		{ SHOW_ROUTE, BIRD_R_BAD_FIELD },
		{ "1007-2 of 2 routes for 2 networks in table master4\n"
		  " 1 of 1 routes for 1 networks in table master6\n"
		  "0014 Total: 4 of 3 routes for 3 networks in 2 tables\n",
		  BIRD_R_BAD_FIELD },
		{ "1007-2 of 2 routes for 2 networks in table master4\n"
		  "0014 Total: 2 of 2 routes for 2 networks in 2 tables\n",
		  BIRD_R_BAD_FIELD },
		{ "1007-2 of 2 routes for 2 networks in table master4\n"
		  "0014 Total: 2 of 2 routes for 2 networks in 1 tables extra\n",
		  BIRD_R_BAD_FIELD },
		{ "1007-2 of 2 routes for 2 networks in table\n0000 \n", BIRD_R_BAD_FIELD },
		{ "1007-2 of 2 routes for 2 networks in table a b\n0000 \n", BIRD_R_BAD_FIELD },
		{ "1007-2 of 2 routes for 2 networks on table a\n0000 \n", BIRD_R_BAD_FIELD },
		{ "1007--2 of 2 routes for 2 networks in table a\n0000 \n", BIRD_R_BAD_FIELD },
		{ "1007-18446744073709551616 of 2 routes for 2 networks in table a\n0000 \n",
		  BIRD_R_BAD_FIELD },
		{ "1007-18446744073709551615 of 2 routes for 2 networks in table a\n"
		  " 1 of 2 routes for 2 networks in table b\n0000 \n",
		  BIRD_R_BAD_FIELD },
		{ "1007-2 of 2 routes\n0000 \n", BIRD_R_BAD_FIELD },
	};
	struct bird_count c;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *err = NULL;
		enum bird_rerr got = bird_parse_count(reply_of(cases[i].text), &c, &err);

		if (got != cases[i].err)
			fail_msg("case %zu: got %d (%s), want %d", i, got, err ? err : "-",
				 cases[i].err);
		assert_non_null(err);
	}
}

/* ---- enable / disable -------------------------------------------------------- */

static void test_ctl(void **state)
{
	static const struct {
		const char *text;
		enum bird_ctl_op op;
		const char *name;
		enum bird_rerr err;
		enum bird_ctl_result res;
	} cases[] = {
		{ DISABLE_S1, BIRD_CTL_DISABLE, "s1", BIRD_R_OK, BIRD_CTL_DONE },
		{ DISABLE_S1_AGAIN, BIRD_CTL_DISABLE, "s1", BIRD_R_OK, BIRD_CTL_ALREADY },
		{ ENABLE_S1, BIRD_CTL_ENABLE, "s1", BIRD_R_OK, BIRD_CTL_DONE },
		{ ENABLE_S1_AGAIN, BIRD_CTL_ENABLE, "s1", BIRD_R_OK, BIRD_CTL_ALREADY },
		{ ENABLE_PATTERN, BIRD_CTL_ENABLE, "s2", BIRD_R_OK, BIRD_CTL_ALREADY },
		{ ENABLE_ALL, BIRD_CTL_ENABLE, "s1", BIRD_R_OK, BIRD_CTL_DONE },
		{ ENABLE_ALL, BIRD_CTL_ENABLE, "s2", BIRD_R_OK, BIRD_CTL_ALREADY },
		{ NO_MATCH, BIRD_CTL_DISABLE, "nosuch", BIRD_R_OK, BIRD_CTL_UNKNOWN },
		{ SYNTAX_UNDEFINED, BIRD_CTL_DISABLE, "nosuch", BIRD_R_OK, BIRD_CTL_UNKNOWN },
		{ NOT_A_PROTOCOL, BIRD_CTL_DISABLE, "master4", BIRD_R_OK, BIRD_CTL_UNKNOWN },
		{ UNTERMINATED, BIRD_CTL_DISABLE, "s1", BIRD_R_OK, BIRD_CTL_ERROR },
		{ "8006 s1: reload failed\n", BIRD_CTL_ENABLE, "s1", BIRD_R_OK, BIRD_CTL_ERROR },
		/* replies that do not fit the command */
		{ ENABLE_S1, BIRD_CTL_DISABLE, "s1", BIRD_R_BAD_FIELD, BIRD_CTL_ERROR },
		{ DISABLE_S1, BIRD_CTL_ENABLE, "s1", BIRD_R_BAD_FIELD, BIRD_CTL_ERROR },
		{ "0009-s1: disabled!\n0000 \n", BIRD_CTL_DISABLE, "s1", BIRD_R_BAD_FIELD,
		  BIRD_CTL_ERROR },
		{ "0011-s1: disabled\n0000 \n", BIRD_CTL_DISABLE, "s1", BIRD_R_BAD_FIELD,
		  BIRD_CTL_ERROR },
		{ "0009-s10: disabled\n0000 \n", BIRD_CTL_DISABLE, "s1", BIRD_R_MISSING,
		  BIRD_CTL_ERROR },
		{ DISABLE_S1, BIRD_CTL_DISABLE, "s", BIRD_R_MISSING, BIRD_CTL_ERROR },
		{ "0000 \n", BIRD_CTL_DISABLE, "s1", BIRD_R_MISSING, BIRD_CTL_ERROR },
		{ "0003 Reconfigured\n", BIRD_CTL_DISABLE, "s1", BIRD_R_UNEXPECTED, BIRD_CTL_ERROR },
		{ "1010 s1 protocol\n", BIRD_CTL_DISABLE, "s1", BIRD_R_UNEXPECTED, BIRD_CTL_ERROR },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum bird_ctl_result res = BIRD_CTL_DONE;
		const char *err = NULL;
		enum bird_rerr got =
			bird_parse_ctl(reply_of(cases[i].text), cases[i].op, cases[i].name, &res, &err);

		if (got != cases[i].err || res != cases[i].res)
			fail_msg("case %zu: got %d/%s (%s), want %d/%s", i, got,
				 bird_ctl_result_str(res), err ? err : "-", cases[i].err,
				 bird_ctl_result_str(cases[i].res));
	}
	{
		struct bird_limits lim = { .max_bytes = 4 };
		enum bird_ctl_result res;

		assert_int_equal(bird_parse_ctl(reply_of_lim(DISABLE_S1, &lim), BIRD_CTL_DISABLE, "s1",
						&res, NULL),
				 BIRD_R_LIMIT);
		assert_int_equal(res, BIRD_CTL_ERROR);
	}
	assert_string_equal(bird_ctl_result_str(BIRD_CTL_UNKNOWN), "unknown protocol");
}

static int teardown(void **state)
{
	bird_parser_free(&keep);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting),
		cmocka_unit_test(test_ok_replies),
		cmocka_unit_test(test_error_classes),
		cmocka_unit_test(test_continuations),
		cmocka_unit_test(test_table_rows),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_async_lines),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_used_stops_at_reply),
		cmocka_unit_test(test_mid_reply),
		cmocka_unit_test(test_fatal_errors),
		cmocka_unit_test(test_fatal_is_sticky),
		cmocka_unit_test(test_limit_line),
		cmocka_unit_test(test_limit_lines),
		cmocka_unit_test(test_limit_bytes),
		cmocka_unit_test(test_big_reply),
		cmocka_unit_test(test_nomem),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_error_strings),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_status_real),
		cmocka_unit_test(test_status_states),
		cmocka_unit_test(test_status_errors),
		cmocka_unit_test(test_protocols_real),
		cmocka_unit_test(test_protocols_spacing),
		cmocka_unit_test(test_protocols_info_cut),
		cmocka_unit_test(test_protocols_errors),
		cmocka_unit_test(test_count_real),
		cmocka_unit_test(test_count_errors),
		cmocka_unit_test(test_ctl),
	};

	return cmocka_run_group_tests(tests, NULL, teardown);
}
