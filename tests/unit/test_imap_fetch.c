/*
 * test_imap_fetch.c - unit tests for the FETCH helpers in
 * imapproxy/imap_msgutil.c: <start.count> slicing at and past every edge,
 * splitting a byte range of the served message (prefix + body) into
 * pieces, converting parsed BODY[...] items (from the real command
 * parser) into imap_body.h sections and locating them in a real MIME
 * blob, and the INTERNALDATE date-time format.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "imap_body.h"
#include "imap_msgutil.h"
#include "imap_parse.h"
#include "mime.h"

/* ---- partial --------------------------------------------------------- */

static void test_partial_none(void **state)
{
	uint64_t skip, n;

	(void)state;
	imap_partial_slice(100, false, 7, 3, &skip, &n);
	assert_int_equal(skip, 0);
	assert_int_equal(n, 100);
	imap_partial_slice(0, false, 0, 1, &skip, &n);
	assert_int_equal(skip, 0);
	assert_int_equal(n, 0);
}

static void test_partial_edges(void **state)
{
	uint64_t skip, n;

	(void)state;
	imap_partial_slice(100, true, 0, 10, &skip, &n);
	assert_int_equal(skip, 0);
	assert_int_equal(n, 10);
	imap_partial_slice(100, true, 95, 10, &skip, &n);	/* cut at the end */
	assert_int_equal(skip, 95);
	assert_int_equal(n, 5);
	imap_partial_slice(100, true, 99, 1, &skip, &n);
	assert_int_equal(skip, 99);
	assert_int_equal(n, 1);
	imap_partial_slice(100, true, 100, 1, &skip, &n);	/* at the end: empty */
	assert_int_equal(n, 0);
	imap_partial_slice(100, true, 4000000000u, 4000000000u, &skip, &n);
	assert_int_equal(n, 0);
	imap_partial_slice(0, true, 0, 5, &skip, &n);
	assert_int_equal(n, 0);
	imap_partial_slice(100, true, 10, 4294967295u, &skip, &n);
	assert_int_equal(skip, 10);
	assert_int_equal(n, 90);
}

/* ---- pieces ------------------------------------------------------------- */

static void test_pieces(void **state)
{
	const char *pre = "AB";
	const char *body = "cdefg";
	const char *p[2];
	size_t l[2];

	(void)state;
	/* inside the prefix */
	assert_true(imap_msg_pieces(pre, 2, body, 5, 0, 2, p, l));
	assert_ptr_equal(p[0], pre);
	assert_int_equal(l[0], 2);
	assert_null(p[1]);
	assert_int_equal(l[1], 0);
	/* straddling */
	assert_true(imap_msg_pieces(pre, 2, body, 5, 1, 3, p, l));
	assert_ptr_equal(p[0], pre + 1);
	assert_int_equal(l[0], 1);
	assert_ptr_equal(p[1], body);
	assert_int_equal(l[1], 2);
	/* inside the body */
	assert_true(imap_msg_pieces(pre, 2, body, 5, 4, 3, p, l));
	assert_ptr_equal(p[0], body + 2);
	assert_int_equal(l[0], 3);
	assert_null(p[1]);
	/* whole */
	assert_true(imap_msg_pieces(pre, 2, body, 5, 0, 7, p, l));
	assert_int_equal(l[0] + l[1], 7);
	/* empty at the very end */
	assert_true(imap_msg_pieces(pre, 2, body, 5, 7, 0, p, l));
	assert_int_equal(l[0] + l[1], 0);
	/* out of range */
	assert_false(imap_msg_pieces(pre, 2, body, 5, 6, 2, p, l));
	assert_false(imap_msg_pieces(pre, 2, body, 5, 8, 0, p, l));
	assert_false(imap_msg_pieces(pre, 2, body, 5, 1, UINT64_MAX, p, l));
	/* no prefix */
	assert_true(imap_msg_pieces("", 0, body, 5, 0, 5, p, l));
	assert_ptr_equal(p[0], body);
	assert_int_equal(l[0], 5);
}

/* ---- sections ----------------------------------------------------------- */

static struct imap_command *parse(const char *text)
{
	struct imap_limits lim;
	struct imap_command *cmd = NULL;
	struct imap_error err;

	imap_limits_default(&lim);
	assert_int_equal(imap_parse_command(text, strlen(text), &lim, &cmd, &err), IMAP_OK);
	return cmd;
}

static const char msg_text[] =
	"From: a@example.org\r\n"
	"Subject: hi\r\n"
	"Content-Type: multipart/mixed; boundary=b\r\n"
	"\r\n"
	"--b\r\n"
	"Content-Type: text/plain\r\n"
	"\r\n"
	"one\r\n"
	"--b\r\n"
	"Content-Type: text/html\r\n"
	"\r\n"
	"<p>two</p>\r\n"
	"--b--\r\n";

static const char prefix_text[] = "Return-Path: <x@y>\r\n";

/* Locate and return the section bytes of item i of FETCH text. */
static char *fetch_section(const char *text, size_t item, enum imap_loc *loc_r, size_t *len_r)
{
	struct imap_command *cmd = parse(text);
	struct imap_section sec;
	const char *error = NULL;
	uint8_t *blob;
	size_t blob_len;
	struct mime_msg *m;
	struct imap_byterange r;
	struct imap_msgdata md = { prefix_text, strlen(prefix_text), msg_text, strlen(msg_text) };
	struct imap_buf out;
	char *res;

	assert_int_equal(cmd->id, IMAP_CMD_FETCH);
	assert_true(item < cmd->u.fetch.n_bodies);
	assert_int_equal(imap_fetch_section(&cmd->u.fetch.bodies[item], &sec, &error), 0);
	assert_int_equal(mime_parse(msg_text, strlen(msg_text), &blob, &blob_len), 0);
	assert_int_equal(mime_blob_decode(blob, blob_len, &m), 0);
	imap_buf_init(&out);
	*loc_r = imap_section_locate(m, md.prefix_len, &sec, &r);
	if (*loc_r == IMAP_LOC_OK) {
		if (sec.kind == IMAP_SECT_FIELDS || sec.kind == IMAP_SECT_FIELDS_NOT)
			assert_int_equal(imap_header_filter(&md, &r, &sec, &out), 0);
		else
			assert_int_equal(imap_msgdata_append(&md, &r, &out), 0);
	}
	imap_buf_adds(&out, "");
	imap_buf_add(&out, "", 1);
	res = strdup(out.data);
	*len_r = out.len - 1;
	imap_buf_free(&out);
	mime_msg_free(&m);
	free(blob);
	imap_command_free(&cmd);
	return res;
}

static void test_section_convert(void **state)
{
	struct imap_command *cmd;
	struct imap_section sec;
	const char *error = NULL;

	(void)state;
	cmd = parse("a FETCH 1 (BODY[1.2.HEADER.FIELDS (From \"Subject\")] BODY.PEEK[2.MIME] "
		    "BODY[] BODY[TEXT]<3.4>)\r\n");
	assert_int_equal(cmd->u.fetch.n_bodies, 4);
	assert_int_equal(imap_fetch_section(&cmd->u.fetch.bodies[0], &sec, &error), 0);
	assert_int_equal(sec.kind, IMAP_SECT_FIELDS);
	assert_int_equal(sec.n_part, 2);
	assert_int_equal(sec.part[0], 1);
	assert_int_equal(sec.part[1], 2);
	assert_int_equal(sec.n_fields, 2);
	assert_memory_equal(sec.fields[0].p, "From", 4);
	assert_int_equal(sec.fields[1].len, 7);
	assert_int_equal(imap_fetch_section(&cmd->u.fetch.bodies[1], &sec, &error), 0);
	assert_int_equal(sec.kind, IMAP_SECT_MIME);
	assert_int_equal(sec.n_part, 1);
	assert_int_equal(imap_fetch_section(&cmd->u.fetch.bodies[2], &sec, &error), 0);
	assert_int_equal(sec.kind, IMAP_SECT_BODY);
	assert_int_equal(sec.n_part, 0);
	assert_int_equal(imap_fetch_section(&cmd->u.fetch.bodies[3], &sec, &error), 0);
	assert_int_equal(sec.kind, IMAP_SECT_TEXT);
	assert_true(cmd->u.fetch.bodies[3].partial);
	imap_command_free(&cmd);
}

static void test_section_too_many_fields(void **state)
{
	char text[4096];
	size_t k;
	struct imap_command *cmd;
	struct imap_section sec;
	const char *error = NULL;

	(void)state;
	k = (size_t)snprintf(text, sizeof(text), "a FETCH 1 BODY[HEADER.FIELDS (");
	for (int i = 0; i <= IMAP_SECTION_FIELDS_MAX; i++)
		k += (size_t)snprintf(text + k, sizeof(text) - k, "%sX%d", i ? " " : "", i);
	snprintf(text + k, sizeof(text) - k, ")]\r\n");
	cmd = parse(text);
	assert_int_equal(imap_fetch_section(&cmd->u.fetch.bodies[0], &sec, &error), -1);
	assert_non_null(error);
	imap_command_free(&cmd);
}

static void test_section_locate_real(void **state)
{
	enum imap_loc loc;
	size_t len;
	char *s;

	(void)state;
	s = fetch_section("a FETCH 1 BODY[1]\r\n", 0, &loc, &len);
	assert_int_equal(loc, IMAP_LOC_OK);
	assert_string_equal(s, "one");
	free(s);
	s = fetch_section("a FETCH 1 BODY[2.MIME]\r\n", 0, &loc, &len);
	assert_string_equal(s, "Content-Type: text/html\r\n\r\n");
	free(s);
	s = fetch_section("a FETCH 1 BODY[HEADER.FIELDS (SUBJECT)]\r\n", 0, &loc, &len);
	assert_string_equal(s, "Subject: hi\r\n\r\n");
	free(s);
	/* the prefix belongs to the top-level header */
	s = fetch_section("a FETCH 1 BODY[HEADER]\r\n", 0, &loc, &len);
	assert_true(strncmp(s, prefix_text, strlen(prefix_text)) == 0);
	assert_true(len > 4 && memcmp(s + len - 4, "\r\n\r\n", 4) == 0);
	free(s);
	s = fetch_section("a FETCH 1 BODY[3]\r\n", 0, &loc, &len);
	assert_int_equal(loc, IMAP_LOC_NOPART);
	free(s);
}

/* ---- date-time -------------------------------------------------------- */

static void test_date_time(void **state)
{
	char buf[IMAP_DATE_TIME_LEN + 1];
	int64_t t;
	int32_t tz;

	(void)state;
	imap_format_date_time(0, 0, buf);
	assert_string_equal(buf, " 1-Jan-1970 00:00:00 +0000");
	imap_format_date_time(837596665, -7 * 3600, buf);	/* RFC 3501's example */
	assert_string_equal(buf, "17-Jul-1996 02:44:25 -0700");
	imap_format_date_time(1795510800, 3600 + 1800, buf);
	assert_int_equal(strlen(buf), IMAP_DATE_TIME_LEN);
	/* round trip through the parser */
	assert_int_equal(imap_parse_date_time(buf, strlen(buf), &t, &tz), 0);
	assert_int_equal(t, 1795510800);
	assert_int_equal(tz, 5400);
	imap_format_date_time(951782400, 0, buf);	/* leap day 2000 */
	assert_string_equal(buf, "29-Feb-2000 00:00:00 +0000");
	imap_format_date_time(-1, 0, buf);
	assert_string_equal(buf, "31-Dec-1969 23:59:59 +0000");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_partial_none),
		cmocka_unit_test(test_partial_edges),
		cmocka_unit_test(test_pieces),
		cmocka_unit_test(test_section_convert),
		cmocka_unit_test(test_section_too_many_fields),
		cmocka_unit_test(test_section_locate_real),
		cmocka_unit_test(test_date_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
