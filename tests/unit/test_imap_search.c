/*
 * test_imap_search.c - unit tests for SEARCH: parsing every RFC 3501 key
 * and MODSEQ into the tree (imapproxy/imap_search_parse.c), CHARSET and
 * RETURN handling, and the store-free evaluator (imapproxy/imap_search.c):
 * flags, keywords, sequence and UID sets with '*', dates (internal date
 * with a zone offset, Date: header), sizes, modseq, header/body/text
 * substring search with ASCII case folding, folding, RFC 2047 words,
 * text in two pieces, lazy text loading, and KMP against a naive search;
 * BODY/TEXT over the MIME structure (popnode/mime_*.c): base64 and
 * quoted-printable text parts in UTF-8, ISO-8859-1/15 and Windows-1252
 * found by their decoded words with caseless UTF-8 matching and not by
 * their encoded forms, non-text parts and part headers skipped, embedded
 * message headers searched, big parts decoded chunk by chunk with matches
 * across chunk boundaries (checked against a naive search on random
 * text), the lazy get_mime call and its failure.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include "imap_arena.h"
#include "imap_decode.h"
#include "imap_parse.h"
#include "imap_search.h"
#include "mime.h"

static struct imap_limits lim;

static int setup(void **state)
{
	imap_limits_default(&lim);
	return 0;
}

static struct imap_command *search(const char *args)
{
	char buf[4096];
	struct imap_command *c = NULL;
	struct imap_error e;

	snprintf(buf, sizeof(buf), "s SEARCH %s\r\n", args);
	if (imap_parse_command(buf, strlen(buf), &lim, &c, &e) != IMAP_OK)
		fail_msg("SEARCH %s: %s", args, e.text);
	assert_int_equal(c->id, IMAP_CMD_SEARCH);
	return c;
}

static void search_err(const char *args, enum imap_err code, const char *want)
{
	char buf[4096];
	struct imap_command *c = NULL;
	struct imap_error e;

	snprintf(buf, sizeof(buf), "s SEARCH %s\r\n", args);
	enum imap_err r = imap_parse_command(buf, strlen(buf), &lim, &c, &e);
	if (r == IMAP_OK)
		fail_msg("SEARCH %s unexpectedly parsed", args);
	assert_int_equal(r, code);
	if (want != NULL && strstr(e.text, want) == NULL)
		fail_msg("SEARCH %s: <%s> lacks <%s>", args, e.text, want);
}

/* Compact text form of a tree, for comparing shapes. */
static void dump(const struct imap_search_node *n, char *buf, size_t size)
{
	size_t o = strlen(buf);
	static const char *const names[] = {
		[IMAP_SEARCH_ALL] = "ALL",	     [IMAP_SEARCH_AND] = "AND",
		[IMAP_SEARCH_OR] = "OR",	     [IMAP_SEARCH_NOT] = "NOT",
		[IMAP_SEARCH_SEQSET] = "SEQ",	     [IMAP_SEARCH_UIDSET] = "UID",
		[IMAP_SEARCH_FLAG] = "FLAG",	     [IMAP_SEARCH_KEYWORD] = "KW",
		[IMAP_SEARCH_BEFORE] = "BEFORE",     [IMAP_SEARCH_ON] = "ON",
		[IMAP_SEARCH_SINCE] = "SINCE",	     [IMAP_SEARCH_SENTBEFORE] = "SENTBEFORE",
		[IMAP_SEARCH_SENTON] = "SENTON",     [IMAP_SEARCH_SENTSINCE] = "SENTSINCE",
		[IMAP_SEARCH_LARGER] = "LARGER",     [IMAP_SEARCH_SMALLER] = "SMALLER",
		[IMAP_SEARCH_HEADER] = "HEADER",     [IMAP_SEARCH_BODY] = "BODY",
		[IMAP_SEARCH_TEXT] = "TEXT",	     [IMAP_SEARCH_MODSEQ] = "MODSEQ",
	};
	o += (size_t)snprintf(buf + o, size - o, "%s", names[n->type]);
	switch (n->type) {
	case IMAP_SEARCH_FLAG:
		o += (size_t)snprintf(buf + o, size - o, ":%u", n->u.flag);
		break;
	case IMAP_SEARCH_KEYWORD:
		o += (size_t)snprintf(buf + o, size - o, ":%s", n->u.kw.name);
		break;
	case IMAP_SEARCH_HEADER:
		o += (size_t)snprintf(buf + o, size - o, ":%s=%s", n->u.text.field, n->u.text.pat.s);
		break;
	case IMAP_SEARCH_BODY:
	case IMAP_SEARCH_TEXT:
		o += (size_t)snprintf(buf + o, size - o, ":%s", n->u.text.pat.s);
		break;
	case IMAP_SEARCH_LARGER:
	case IMAP_SEARCH_SMALLER:
		o += (size_t)snprintf(buf + o, size - o, ":%llu", (unsigned long long)n->u.size);
		break;
	case IMAP_SEARCH_MODSEQ:
		o += (size_t)snprintf(buf + o, size - o, ":%llu", (unsigned long long)n->u.modseq);
		break;
	case IMAP_SEARCH_SEQSET:
	case IMAP_SEARCH_UIDSET:
		buf[o++] = ':';
		o += imap_seqset_format(n->u.set, buf + o, size - o);
		break;
	default:
		break;
	}
	if (n->child != NULL) {
		o += (size_t)snprintf(buf + o, size - o, "(");
		for (const struct imap_search_node *k = n->child; k != NULL; k = k->next) {
			if (k != n->child)
				strcat(buf, " ");
			dump(k, buf, size);
		}
		strcat(buf, ")");
	}
}

static void shape(const char *args, const char *want)
{
	struct imap_command *c = search(args);
	char buf[4096] = "";

	dump(c->u.search.tree, buf, sizeof(buf));
	if (strcmp(buf, want) != 0)
		fail_msg("SEARCH %s\n got: %s\nwant: %s", args, buf, want);
	imap_command_free(&c);
}

/* ---- parsing ------------------------------------------------------------ */

static void test_parse_keys(void **state)
{
	shape("ALL", "ALL");
	shape("all", "ALL");
	shape("SEEN", "FLAG:1");
	shape("UNSEEN", "NOT(FLAG:1)");
	shape("ANSWERED FLAGGED DELETED DRAFT RECENT",
	      "AND(FLAG:2 FLAG:4 FLAG:8 FLAG:16 FLAG:32)");
	shape("UNANSWERED UNFLAGGED UNDELETED UNDRAFT",
	      "AND(NOT(FLAG:2) NOT(FLAG:4) NOT(FLAG:8) NOT(FLAG:16))");
	shape("NEW", "AND(FLAG:32 NOT(FLAG:1))");
	shape("OLD", "NOT(FLAG:32)");
	shape("KEYWORD $Junk UNKEYWORD foo", "AND(KW:$Junk NOT(KW:foo))");
	shape("FROM alice TO bob CC carol BCC dave SUBJECT \"hi there\"",
	      "AND(HEADER:From=alice HEADER:To=bob HEADER:Cc=carol HEADER:Bcc=dave "
	      "HEADER:Subject=hi there)");
	shape("HEADER X-Spam-Flag YES", "HEADER:X-Spam-Flag=YES");
	shape("HEADER {7}\r\nList-Id \"\"", "HEADER:List-Id=");
	shape("BODY foo TEXT {3}\r\nb r", "AND(BODY:foo TEXT:b r)");
	shape("LARGER 100 SMALLER 5000000000", "AND(LARGER:100 SMALLER:5000000000)");
	shape("1:3,7 UID 5:*", "AND(SEQ:1:3,7 UID:5:*)");
	shape("*", "SEQ:*");
	shape("MODSEQ 620162338", "MODSEQ:620162338");
	shape("MODSEQ \"/flags/\\\\draft\" all 620162338", "MODSEQ:620162338");
	shape("BEFORE 1-Feb-1994 ON \"01-feb-1994\" SINCE 1-Feb-1994",
	      "AND(BEFORE ON SINCE)");
	shape("SENTBEFORE 1-Feb-1994 SENTON 1-Feb-1994 SENTSINCE 1-Feb-1994",
	      "AND(SENTBEFORE SENTON SENTSINCE)");
	/* grouping, flattening, OR arity, cheapest first */
	shape("(SEEN)", "FLAG:1");
	shape("(SEEN (DELETED DRAFT))", "AND(FLAG:1 FLAG:8 FLAG:16)");
	shape("OR SEEN DELETED", "OR(FLAG:1 FLAG:8)");
	shape("OR OR SEEN DELETED DRAFT", "OR(FLAG:1 FLAG:8 FLAG:16)");
	shape("OR SEEN OR DELETED DRAFT", "OR(FLAG:1 FLAG:8 FLAG:16)");
	shape("NOT NOT SEEN", "NOT(NOT(FLAG:1))");
	shape("TEXT x FROM y SEEN", "AND(FLAG:1 HEADER:From=y TEXT:x)");
	shape("BODY x OR FROM a TO b UNSEEN SMALLER 10",
	      "AND(NOT(FLAG:1) SMALLER:10 OR(HEADER:From=a HEADER:To=b) BODY:x)");

	struct imap_command *c = search("UID 1:* NOT DELETED");
	assert_false(c->uid);
	assert_false(c->u.search.return_given);
	assert_false(c->u.search.has_modseq);
	imap_command_free(&c);

	char buf[128];
	struct imap_error e;
	const char *u = "s UID SEARCH MODSEQ 5\r\n";
	assert_int_equal(imap_parse_command(u, strlen(u), &lim, &c, &e), IMAP_OK);
	assert_true(c->uid);
	assert_true(c->u.search.has_modseq);
	imap_command_free(&c);
	(void)buf;
}

static void test_parse_charset_return(void **state)
{
	struct imap_command *c = search("CHARSET UTF-8 SUBJECT \"caf\xc3\xa9\"");
	assert_string_equal(c->u.search.tree->u.text.pat.s, "caf\xc3\xa9");
	imap_command_free(&c);
	c = search("charset us-ascii ALL");
	imap_command_free(&c);
	c = search("CHARSET \"utf-8\" ALL");
	imap_command_free(&c);
	search_err("CHARSET ISO-8859-1 ALL", IMAP_ERR_BAD_CHARSET, NULL);
	search_err("CHARSET", IMAP_ERR_SYNTAX, NULL);

	c = search("RETURN (MIN COUNT) UNSEEN");
	assert_true(c->u.search.return_given);
	assert_int_equal(c->u.search.return_opts, IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_COUNT);
	imap_command_free(&c);
	c = search("RETURN () CHARSET UTF-8 ALL");
	assert_int_equal(c->u.search.return_opts, IMAP_SEARCH_RET_ALL);
	imap_command_free(&c);
	c = search("RETURN (ALL MAX) ALL");
	assert_int_equal(c->u.search.return_opts, IMAP_SEARCH_RET_ALL | IMAP_SEARCH_RET_MAX);
	imap_command_free(&c);
	search_err("RETURN (SAVE) ALL", IMAP_ERR_SYNTAX, "SAVE");
	search_err("RETURN (FOO) ALL", IMAP_ERR_SYNTAX, "Unknown RETURN option");
	search_err("RETURN (MIN ALL", IMAP_ERR_SYNTAX, NULL);
}

static void test_parse_errors(void **state)
{
	struct imap_command *c;
	struct imap_error e;
	const char *s = "s SEARCH\r\n";

	assert_int_equal(imap_parse_command(s, strlen(s), &lim, &c, &e), IMAP_ERR_SYNTAX);
	assert_non_null(strstr(e.text, "Missing search criteria"));
	search_err("FOO", IMAP_ERR_SYNTAX, "Unknown search key FOO");
	search_err("SEEN FOO", IMAP_ERR_SYNTAX, "Unknown search key FOO");
	search_err("BEFORE 1-Foo-2000", IMAP_ERR_SYNTAX, "Invalid search date");
	search_err("BEFORE", IMAP_ERR_SYNTAX, "Missing search date");
	search_err("SINCE 2000-01-01", IMAP_ERR_SYNTAX, "d-Mon-yyyy");
	search_err("(SEEN", IMAP_ERR_SYNTAX, "Missing ')' in search group");
	search_err("()", IMAP_ERR_SYNTAX, "Empty search group");
	search_err("SEEN)", IMAP_ERR_SYNTAX, NULL);
	search_err("NOT", IMAP_ERR_SYNTAX, "Missing search key after NOT");
	search_err("OR SEEN", IMAP_ERR_SYNTAX, "Missing second search key after OR");
	search_err("HEADER", IMAP_ERR_SYNTAX, "Missing header field name");
	search_err("HEADER Subject", IMAP_ERR_SYNTAX, "Missing search string");
	search_err("HEADER \"\" x", IMAP_ERR_SYNTAX, "Empty header field name");
	search_err("HEADER \"a:b\" x", IMAP_ERR_SYNTAX, "Invalid header field name");
	search_err("LARGER x", IMAP_ERR_SYNTAX, "expected a number");
	search_err("LARGER -1", IMAP_ERR_SYNTAX, NULL);
	search_err("KEYWORD \\Seen", IMAP_ERR_SYNTAX, "Invalid keyword");
	search_err("UID 0", IMAP_ERR_BAD_SEQSET, "Sequence number 0");
	search_err("1:$", IMAP_ERR_BAD_SEQSET, "SEARCHRES");
	search_err("MODSEQ", IMAP_ERR_SYNTAX, "Missing MODSEQ value");
	search_err("MODSEQ \"/flags/x\" bogus 5", IMAP_ERR_SYNTAX, "MODSEQ entry type");
	search_err("SEEN  DELETED", IMAP_ERR_SYNTAX, NULL);
	search_err("SEEN ", IMAP_ERR_SYNTAX, NULL);
}

/* ---- matching -------------------------------------------------------------- */

struct msgbuf {
	struct imap_search_msg m;
	int text_calls;
	bool text_fails;
	const char *p0, *p1;
};

static int get_text(void *ctx, struct imap_search_text *t)
{
	struct msgbuf *mb = ctx;

	mb->text_calls++;
	if (mb->text_fails)
		return -1;
	t->p[0] = mb->p0;
	t->len[0] = mb->p0 ? strlen(mb->p0) : 0;
	t->p[1] = mb->p1;
	t->len[1] = mb->p1 ? strlen(mb->p1) : 0;
	return 0;
}

static void msg_init(struct msgbuf *mb, const char *p0, const char *p1)
{
	memset(mb, 0, sizeof(*mb));
	mb->p0 = p0;
	mb->p1 = p1;
	mb->m.seq = 3;
	mb->m.uid = 30;
	mb->m.max_seq = 10;
	mb->m.max_uid = 100;
	mb->m.size = 1000;
	mb->m.modseq = 50;
	mb->m.internaldate = 1057017600 + 12 * 3600;	/* 2003-07-01 12:00 UTC */
	mb->m.get_text = get_text;
	mb->m.ctx = mb;
}

static int kw_lookup(void *ctx, const char *name, size_t len)
{
	static const char *const kws[] = { "$Junk", "$Label1", "Work" };

	for (int i = 0; i < 3; i++)
		if (strlen(kws[i]) == len && strncasecmp(kws[i], name, len) == 0)
			return i;
	return -1;
}

static bool match(const char *args, struct msgbuf *mb)
{
	struct imap_command *c = search(args);

	imap_search_bind_keywords(c->u.search.tree, kw_lookup, NULL);
	bool r = imap_search_match(c->u.search.tree, &mb->m);
	imap_command_free(&c);
	return r;
}

static const char msg1[] =
	"Return-Path: <alice@example.org>\r\n"
	"Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
	"From: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\r\n"
	"To: Bob <bob@example.net>,\r\n"
	"\tCarol <carol@example.net>\r\n"
	"Subject: =?UTF-8?B?SGVsbG8gV29ybGQ=?= =?UTF-8?Q?_and_more?=\r\n"
	"X-Spam-Flag: YES\r\n"
	"Subject : second subject line\r\n"
	"Message-ID: <1234@local>\r\n"
	"\r\n"
	"Hello Bob,\r\n"
	"this is the body with a NEEDLE in it.\r\n"
	"Caf\xc3\xa9 au lait.\r\n";

static void test_match_numbers(void **state)
{
	struct msgbuf mb;

	msg_init(&mb, msg1, NULL);
	mb.m.flags = IMAP_FLAG_SEEN | IMAP_FLAG_FLAGGED;
	mb.m.keywords = 1u << 1;	/* $Label1 */

	assert_true(match("ALL", &mb));
	assert_true(match("SEEN", &mb));
	assert_false(match("UNSEEN", &mb));
	assert_true(match("FLAGGED UNDELETED UNANSWERED UNDRAFT", &mb));
	assert_false(match("DELETED", &mb));
	assert_true(match("OLD", &mb));
	assert_false(match("NEW", &mb));
	assert_false(match("RECENT", &mb));
	mb.m.flags = IMAP_FLAG_RECENT;
	assert_true(match("NEW", &mb));
	assert_true(match("RECENT UNSEEN", &mb));
	assert_false(match("OLD", &mb));

	assert_true(match("KEYWORD $label1", &mb));
	assert_false(match("KEYWORD $Junk", &mb));
	assert_false(match("KEYWORD NoSuchKeyword", &mb));
	assert_true(match("UNKEYWORD NoSuchKeyword", &mb));
	assert_true(match("UNKEYWORD $Junk", &mb));

	assert_true(match("3", &mb));
	assert_true(match("1:2,3", &mb));
	assert_false(match("4:*", &mb));
	assert_false(match("*", &mb));
	mb.m.seq = 10;
	assert_true(match("*", &mb));
	assert_true(match("11:*", &mb));	/* includes max */
	assert_true(match("UID 30", &mb));
	assert_true(match("UID 1:*", &mb));
	assert_false(match("UID 31:99", &mb));
	assert_false(match("UID *", &mb));
	mb.m.uid = 100;
	assert_true(match("UID *", &mb));

	assert_true(match("LARGER 999", &mb));
	assert_false(match("LARGER 1000", &mb));
	assert_true(match("SMALLER 1001", &mb));
	assert_false(match("SMALLER 1000", &mb));
	assert_true(match("MODSEQ 50", &mb));
	assert_true(match("MODSEQ 1", &mb));
	assert_false(match("MODSEQ 51", &mb));

	assert_false(match("OR DELETED SEEN UNSEEN", &mb));
	assert_true(match("OR DELETED UNSEEN", &mb));
	assert_true(match("NOT DELETED", &mb));
	assert_true(match("(UNSEEN LARGER 10) OR SMALLER 5 UID 100", &mb));
	assert_false(match("(UNSEEN LARGER 10) OR SMALLER 5 UID 99", &mb));
	/* none of these needed the text */
	assert_int_equal(mb.text_calls, 0);
}

static void test_match_dates(void **state)
{
	struct msgbuf mb;

	msg_init(&mb, msg1, NULL);
	/* internal date 2003-07-01 12:00 UTC */
	assert_true(match("ON 1-Jul-2003", &mb));
	assert_true(match("SINCE 1-Jul-2003", &mb));
	assert_false(match("SINCE 2-Jul-2003", &mb));
	assert_true(match("BEFORE 2-Jul-2003", &mb));
	assert_false(match("BEFORE 1-Jul-2003", &mb));
	/* with the server's zone 13 hours east it is 2 July */
	mb.m.tz_offset = 13 * 3600;
	assert_true(match("ON 2-Jul-2003", &mb));
	mb.m.tz_offset = -13 * 3600;
	assert_true(match("ON 30-Jun-2003", &mb));
	mb.m.tz_offset = 0;
	/* before 1970 */
	mb.m.internaldate = -1;
	assert_true(match("ON 31-Dec-1969", &mb));
	mb.m.internaldate = 1057017600 + 12 * 3600;

	/* Date: header, its own day whatever its zone */
	assert_true(match("SENTON 1-Jul-2003", &mb));
	assert_true(match("SENTSINCE 1-Jul-2003 SENTBEFORE 2-Jul-2003", &mb));
	assert_false(match("SENTBEFORE 1-Jul-2003", &mb));
	/* no Date: uses the internal date */
	msg_init(&mb, "Subject: x\r\n\r\nbody\r\n", NULL);
	mb.m.internaldate = 1057017600 + 86400 * 3;	/* 4 July */
	assert_true(match("SENTON 4-Jul-2003", &mb));
	msg_init(&mb, "Date: garbage\r\n\r\nbody\r\n", NULL);
	mb.m.internaldate = 1057017600;
	assert_true(match("SENTON 1-Jul-2003", &mb));

	int32_t d;
	assert_int_equal(imap_parse_rfc5322_day("Tue, 1 Jul 2003 10:52:37 +0200", 30, &d), 0);
	assert_int_equal(d, imap_days_from_civil(2003, 7, 1));
	assert_int_equal(imap_parse_rfc5322_day("13 Feb 99 23:32 -0330 (NST)", 27, &d), 0);
	assert_int_equal(d, imap_days_from_civil(1999, 2, 13));
	assert_int_equal(imap_parse_rfc5322_day("1 jan 03", 8, &d), 0);
	assert_int_equal(d, imap_days_from_civil(2003, 1, 1));
	assert_int_equal(imap_parse_rfc5322_day("(Thu) Thu , 29 Feb 2024 00:00", 30, &d), 0);
	assert_int_equal(d, imap_days_from_civil(2024, 2, 29));
	assert_int_equal(imap_parse_rfc5322_day("Thu, 01-Jul-2003 10:52", 22, &d), 0);
	assert_int_equal(imap_parse_rfc5322_day("5 December 2021", 15, &d), 0);
	assert_int_equal(d, imap_days_from_civil(2021, 12, 5));
	assert_int_equal(imap_parse_rfc5322_day("31 Feb 2021", 11, &d), -1);
	assert_int_equal(imap_parse_rfc5322_day("Tue, Jul 2003", 13, &d), -1);
	assert_int_equal(imap_parse_rfc5322_day("1 Foo 2003", 10, &d), -1);
	assert_int_equal(imap_parse_rfc5322_day("1 Jul 20031", 11, &d), -1);
	assert_int_equal(imap_parse_rfc5322_day("", 0, &d), -1);
	assert_int_equal(imap_parse_rfc5322_day("123 Jul 2003", 12, &d), -1);
}

static void test_match_headers(void **state)
{
	struct msgbuf mb;

	msg_init(&mb, msg1, NULL);
	/* ASCII case folding */
	assert_true(match("FROM pirard", &mb));
	assert_true(match("FROM PIRARD@VM1", &mb));
	assert_true(match("from \"vm1.ulg\"", &mb));
	/* RFC 2047 Q in ISO-8859-1, decoded to UTF-8 */
	assert_true(match("CHARSET UTF-8 FROM \"Andr\xc3\xa9 Pirard\"", &mb));
	assert_false(match("FROM Andr=E9", &mb));
	/* caseless beyond ASCII: É matches é */
	assert_true(match("CHARSET UTF-8 FROM \"ANDR\xc3\x89\"", &mb));
	assert_false(match("CHARSET UTF-8 FROM \"ANDR\xc3\x88\"", &mb));
	/* folded To: unfolded with its white space */
	assert_true(match("TO \"net>,\tCarol\"", &mb));
	assert_true(match("TO carol@example", &mb));
	/* B and Q words, white space between adjacent words dropped */
	assert_true(match("SUBJECT \"hello world and more\"", &mb));
	assert_false(match("SUBJECT \"world  and\"", &mb));
	/* every occurrence of the field; "Subject :" tolerated */
	assert_true(match("SUBJECT \"second subject\"", &mb));
	/* field name match is exact (case-insensitive), not a prefix */
	assert_false(match("HEADER Subj x", &mb));
	assert_true(match("HEADER x-spam-flag yes", &mb));
	assert_true(match("HEADER Message-ID \"\"", &mb));	/* exists */
	assert_false(match("HEADER X-Nonexistent \"\"", &mb));
	assert_false(match("SUBJECT NEEDLE", &mb));
	assert_false(match("CC carol", &mb));
	assert_false(match("BCC x", &mb));
	/* text loaded once per match call, however many keys need it */
	mb.text_calls = 0;
	assert_true(match("FROM pirard TO bob SUBJECT hello BODY needle", &mb));
	assert_int_equal(mb.text_calls, 1);
	/* a failed load: text keys do not match, NOT of them does */
	mb.text_fails = true;
	assert_false(match("FROM pirard", &mb));
	assert_true(match("NOT FROM pirard", &mb));
	assert_true(match("SENTON 1-Jul-2003", &mb));	/* falls back to the internal date */
}

static void test_match_body_text(void **state)
{
	struct msgbuf mb;

	msg_init(&mb, msg1, NULL);
	assert_true(match("BODY needle", &mb));
	assert_true(match("BODY \"a NEEDLE in\"", &mb));
	assert_true(match("CHARSET UTF-8 BODY \"caf\xc3\xa9 AU\"", &mb));
	assert_false(match("BODY pirard", &mb));	/* header only */
	assert_true(match("TEXT pirard", &mb));
	assert_true(match("TEXT needle", &mb));
	assert_true(match("TEXT x-spam-flag", &mb));	/* field names are text too */
	assert_true(match("CHARSET UTF-8 TEXT \"Andr\xc3\xa9\"", &mb));	/* decoded */
	/* encoded word split across the two pieces */
	msg_init(&mb, "Subject: =?utf-8?q?caf", "=C3=A9?=\r\n\r\nbody\r\n");
	assert_true(match("CHARSET UTF-8 TEXT \"caf\xc3\xa9\"", &mb));
	msg_init(&mb, "Subject: x=", "?utf-8?q?caf=C3=A9?=\r\n\r\nbody\r\n");
	assert_true(match("CHARSET UTF-8 TEXT \"caf\xc3\xa9\"", &mb));
	msg_init(&mb, msg1, NULL);
	assert_false(match("TEXT nothere", &mb));
	assert_true(match("BODY \"\"", &mb));
	assert_true(match("TEXT \"\"", &mb));

	/* two pieces: prefix lines + stored message */
	msg_init(&mb, "Delivered-To: bob@example.net\r\n",
		 "From: a@b\r\nSubject: split\r\n\r\nbody text\r\n");
	assert_true(match("HEADER Delivered-To bob", &mb));
	assert_true(match("SUBJECT split", &mb));
	assert_true(match("BODY \"body text\"", &mb));
	assert_false(match("BODY split", &mb));
	assert_true(match("TEXT {17}\r\nexample.net\r\nFrom", &mb));	/* across pieces */
	/* the blank line split across pieces */
	msg_init(&mb, "Subject: a\r\n", "\r\nbody only\r\n");
	assert_true(match("BODY \"body only\"", &mb));
	assert_false(match("BODY Subject", &mb));
	/* no header at all, and no blank line at all */
	msg_init(&mb, "\r\njust body\r\n", NULL);
	assert_true(match("BODY just", &mb));
	msg_init(&mb, "Subject: no body\r\n", NULL);
	assert_false(match("BODY no", &mb));
	assert_true(match("SUBJECT body", &mb));
	/* LF-only line ends */
	msg_init(&mb, "Subject: lf\n folded\n\nthe body\n", NULL);
	assert_true(match("SUBJECT \"lf folded\"", &mb));
	assert_true(match("BODY \"the body\"", &mb));
	assert_false(match("BODY folded", &mb));
	/* preloaded text, no callback */
	msg_init(&mb, NULL, NULL);
	mb.m.get_text = NULL;
	mb.m.text.p[0] = "Subject: pre\r\n\r\nloaded";
	mb.m.text.len[0] = strlen(mb.m.text.p[0]);
	assert_true(match("SUBJECT pre BODY loaded", &mb));
}

static void test_match_encoded_words(void **state)
{
	static const struct {
		const char *subject;
		const char *want;
		bool match;
	} cases[] = {
		{ "=?utf-8?q?caf=C3=A9?=", "caf\xc3\xa9", true },
		{ "=?UTF-8?B?Y2Fmw6k=?=", "caf\xc3\xa9", true },
		{ "=?iso-8859-1?q?caf=E9?=", "caf\xc3\xa9", true },
		{ "=?windows-1252?Q?caf=E9?=", "caf\xc3\xa9", true },
		{ "=?utf-8*en?q?caf=C3=A9?=", "caf\xc3\xa9", true },
		{ "=?utf-8?q?a?= =?utf-8?q?b?=", "ab", true },
		{ "=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab", true },
		{ "=?utf-8?q?a?= b", "a b", true },
		{ "a =?utf-8?q?b?=", "a b", true },
		{ "=?utf-8?q?a_b?=", "a b", true },
		{ "=?utf-8?x?abc?=", "=?utf-8?x?abc?=", true },	/* unknown encoding: raw */
		{ "=?utf-8?q?ab c?=", "=?utf-8?q?ab c?=", true },	/* space: not a word */
		{ "=?utf-8?q?abc", "=?utf-8?q?abc", true },
		{ "=?utf-8?q?a=ZZ?=", "a=ZZ", true },
		{ "=?koi8-r?b?9MXT1A==?=", "\xf4\xc5\xd3\xd4", true },	/* left as bytes */
		{ "=?utf-8?b?Y2Fmw6k?=", "caf\xc3\xa9", true },	/* missing padding */
		{ "=?utf-8?q?x?=", "=?", false },
	};
	char msg[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct msgbuf mb;
		snprintf(msg, sizeof(msg), "Subject: %s\r\n\r\n", cases[i].subject);
		msg_init(&mb, msg, NULL);
		char args[256];
		snprintf(args, sizeof(args), "CHARSET UTF-8 SUBJECT {%zu}\r\n%s",
			 strlen(cases[i].want), cases[i].want);
		if (match(args, &mb) != cases[i].match)
			fail_msg("Subject <%s> search <%s>: want %d", cases[i].subject, cases[i].want,
				 cases[i].match);
	}
}

static bool naive_contains(const char *h, size_t hl, const char *n, size_t nl)
{
	if (nl == 0)
		return true;
	for (size_t i = 0; i + nl <= hl; i++) {
		size_t k = 0;
		while (k < nl && (h[i + k] | 0x20) == (n[k] | 0x20))
			k++;
		if (k == nl)
			return true;
	}
	return false;
}

/* KMP against a naive search on random text over a tiny alphabet (lots
 * of partial matches), split into two pieces at every kind of place. */
static void test_match_kmp_random(void **state)
{
	srand(99);
	for (int round = 0; round < 4000; round++) {
		char body[200], pat[12], msg[300];
		size_t bl = (size_t)(rand() % 150), pl = 1 + (size_t)(rand() % 8);
		for (size_t i = 0; i < bl; i++)
			body[i] = "aAbB"[rand() % 4];
		body[bl] = '\0';
		for (size_t i = 0; i < pl; i++)
			pat[i] = "abAB"[rand() % 4];
		pat[pl] = '\0';
		snprintf(msg, sizeof(msg), "S: x\r\n\r\n%s", body);
		size_t cut = (size_t)rand() % (strlen(msg) + 1);
		char p0[300], p1[300];
		memcpy(p0, msg, cut);
		p0[cut] = '\0';
		strcpy(p1, msg + cut);
		struct msgbuf mb;
		msg_init(&mb, p0, p1);
		char args[64];
		snprintf(args, sizeof(args), "BODY %s", pat);
		bool want = naive_contains(body, bl, pat, pl);
		if (match(args, &mb) != want)
			fail_msg("body <%s> pattern <%s> cut %zu: want %d", body, pat, cut, want);
	}
}


/* ---- decoded bodies ------------------------------------------------------ */

struct mimebuf {
	uint8_t *blob;
	struct mime_msg *mm;
};

/* mb describes prefix + body, with body's MIME structure. */
static void mime_msg_init(struct msgbuf *mb, struct mimebuf *x, const char *prefix,
			  const char *body)
{
	size_t blob_len;

	assert_int_equal(mime_parse(body, strlen(body), &x->blob, &blob_len), 0);
	assert_int_equal(mime_blob_decode(x->blob, blob_len, &x->mm), 0);
	msg_init(mb, prefix, body);
	mb->m.mime = x->mm;
	mb->m.mime_off = prefix != NULL ? strlen(prefix) : 0;
}

static void mime_done(struct mimebuf *x)
{
	mime_msg_free(&x->mm);
	free(x->blob);
	x->blob = NULL;
}

static const char prefix1[] = "Return-Path: <a@example.org>\r\nDelivered-To: bob@example.net\r\n";

/* "Grüße aus Köln, Straße" in UTF-8, base64; "café crème brûlée" in
 * ISO-8859-1, quoted-printable with a soft break inside "crème"; a base64
 * application part holding "secretword"; an embedded message. */
static const char mime1[] =
	"From: alice@example.org\r\n"
	"Subject: =?UTF-8?Q?R=C3=A9union?=\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n"
	"\r\n"
	"This is the preamble.\r\n"
	"--XYZ\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"X-Part-Header: partheaderword\r\n"
	"\r\n"
	"R3LDvMOfZSBhdXMgS8O2bG4sIFN0cmHDn2U=\r\n"
	"--XYZ\r\n"
	"Content-Type: text/html; charset=\"ISO-8859-1\"\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n"
	"\r\n"
	"<p>caf=E9 cr=\r\n"
	"=E8me br=FBl=E9e</p>=\r\n"
	"--XYZ\r\n"
	"Content-Type: application/octet-stream\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"c2VjcmV0d29yZA==\r\n"
	"--XYZ\r\n"
	"Content-Type: message/rfc822\r\n"
	"\r\n"
	"Subject: =?ISO-8859-15?Q?=A4uro_forwarded?=\r\n"
	"From: carol@example.org\r\n"
	"\r\n"
	"Inner body with innerword.\r\n"
	"--XYZ--\r\n"
	"Epilogue epilogueword.\r\n";

static void test_match_mime_decoded(void **state)
{
	struct msgbuf mb;
	struct mimebuf x;

	mime_msg_init(&mb, &x, prefix1, mime1);
	/* base64 UTF-8, caseless (ASCII and Latin-1 letters) */
	assert_true(match("CHARSET UTF-8 BODY \"gr\xc3\xbc\xc3\x9f" "e aus\"", &mb));
	assert_true(match("CHARSET UTF-8 BODY \"GR\xc3\x9c\xc3\x9f" "E AUS K\xc3\x96LN\"", &mb));
	assert_true(match("CHARSET UTF-8 TEXT \"stra\xc3\x9f" "e\"", &mb));
	assert_true(match("BODY aus", &mb));
	assert_false(match("BODY R3LDvMOfZSBh", &mb));	/* not the encoded form */
	assert_false(match("TEXT R3LDvMOfZSBh", &mb));
	assert_false(match("CHARSET UTF-8 BODY \"gr\xc3\xbc\xc3\x9f" "e ausk\"", &mb));
	/* QP ISO-8859-1: decoded, converted, soft break joined */
	assert_true(match("CHARSET UTF-8 BODY \"caf\xc3\xa9 cr\xc3\xa8me\"", &mb));
	assert_true(match("CHARSET UTF-8 BODY \"CAF\xc3\x89 CR\xc3\x88ME BR\xc3\x9bL\xc3\x89" "E\"",
			  &mb));
	assert_true(match("CHARSET UTF-8 TEXT \"br\xc3\xbbl\xc3\xa9" "e</p>\"", &mb));
	assert_false(match("BODY caf=E9", &mb));
	assert_false(match("BODY \"cr=\"", &mb));
	assert_false(match("CHARSET UTF-8 BODY \"caf\xe9\"", &mb));	/* raw Latin-1 byte */
	/* non-text parts, part headers, preamble and epilogue are not body text */
	assert_false(match("BODY secretword", &mb));
	assert_false(match("TEXT secretword", &mb));
	assert_false(match("BODY c2VjcmV0d29yZA", &mb));
	assert_false(match("BODY partheaderword", &mb));
	assert_false(match("BODY Content-Transfer-Encoding", &mb));
	assert_false(match("BODY preamble", &mb));
	assert_false(match("BODY epilogueword", &mb));
	/* the embedded message: its header (encoded words decoded) and text */
	assert_true(match("BODY innerword", &mb));
	assert_true(match("BODY carol@example", &mb));
	assert_true(match("CHARSET UTF-8 BODY \"\xe2\x82\xac" "uro forwarded\"", &mb));
	/* TEXT: the message header (prefix included, encoded words decoded) */
	assert_true(match("TEXT content-type", &mb));
	assert_true(match("TEXT delivered-to", &mb));
	assert_true(match("CHARSET UTF-8 TEXT \"R\xc3\x89UNION\"", &mb));
	assert_false(match("BODY alice", &mb));
	assert_true(match("TEXT alice", &mb));
	assert_true(match("NOT BODY secretword", &mb));
	assert_true(match("OR BODY nothere BODY innerword", &mb));
	mime_done(&x);

	/* without a structure: the raw bytes, as before */
	msg_init(&mb, prefix1, mime1);
	assert_true(match("BODY secretword", &mb) == false);
	assert_true(match("BODY c2VjcmV0d29yZA", &mb));
	assert_true(match("BODY partheaderword", &mb));
	/* a structure that does not fit the text is not used */
	mime_msg_init(&mb, &x, prefix1, mime1);
	mb.m.mime_off = strlen(prefix1) + 10;
	assert_true(match("BODY c2VjcmV0d29yZA", &mb));
	mb.m.mime_off = UINT64_MAX;
	assert_true(match("BODY c2VjcmV0d29yZA", &mb));
	mime_done(&x);
}

static void test_match_mime_single(void **state)
{
	static const struct {
		const char *msg;
		const char *key;
		bool match;
	} cases[] = {
		/* single-part messages, every charset and encoding */
		{ "Content-Transfer-Encoding: quoted-printable\r\n"
		  "Content-Type: text/plain; charset=iso-8859-15\r\n\r\nprix: 5 =A4\r\n",
		  "CHARSET UTF-8 BODY \"5 \xe2\x82\xac\"", true },
		{ "Content-Transfer-Encoding: quoted-printable\r\n"
		  "Content-Type: text/plain; charset=windows-1252\r\n\r\n=93quoted=94 =80\r\n",
		  "CHARSET UTF-8 BODY \"\xe2\x80\x9cQUOTED\xe2\x80\x9d \xe2\x82\xac\"", true },
		{ "Content-Type: text/plain; charset=iso-8859-1\r\n"
		  "Content-Transfer-Encoding: 8bit\r\n\r\nna\xefve fa\xe7" "ade\r\n",
		  "CHARSET UTF-8 BODY \"NA\xc3\x8fVE FA\xc3\x87" "ADE\"", true },
		{ "Content-Type: text/plain; charset=us-ascii\r\n"
		  "Content-Transfer-Encoding: BASE64\r\n\r\nSGVsbG8gV29ybGQ=\r\n",
		  "BODY \"hello world\"", true },
		{ "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
		  "SGVs\r\nbG8g\r\nV29y\r\nbGQ=\r\n",
		  "BODY \"hello world\"", true },
		/* unknown charset: the decoded bytes as they are */
		{ "Content-Type: text/plain; charset=koi8-r\r\n"
		  "Content-Transfer-Encoding: base64\r\n\r\n9MXT1A==\r\n",
		  "CHARSET UTF-8 BODY \"\xf4\xc5\xd3\xd4\"", true },
		/* no Content-Type: text/plain us-ascii */
		{ "Subject: x\r\n\r\nplain body\r\n", "BODY \"plain body\"", true },
		/* a non-text message has no body text */
		{ "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
		  "SGVsbG8gV29ybGQ=\r\n", "BODY hello", false },
		{ "Content-Type: image/png\r\n\r\nhello\r\n", "BODY hello", false },
		{ "Content-Type: image/png\r\n\r\nhello\r\n", "TEXT image/png", true },
		/* a malformed base64 body still gives its readable words */
		{ "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
		  "SGVs!!bG8g*V29y\r\nbGQ\r\n", "BODY \"hello wor\"", true },
		/* broken QP escapes are kept */
		{ "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
		  "100=% sure=ZZ\r\n", "BODY \"100=% sure=zz\"", true },
		/* multipart/alternative: both parts searched */
		{ "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
		  "Content-Type: text/plain\r\n\r\nplainword\r\n--b\r\n"
		  "Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
		  "<b>html=\r\nword</b>\r\n--b--\r\n", "BODY htmlword", true },
		/* a match does not span two parts */
		{ "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nab\r\n--b\r\n"
		  "\r\ncd\r\n--b--\r\n", "BODY bc", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct msgbuf mb;
		struct mimebuf x;
		mime_msg_init(&mb, &x, NULL, cases[i].msg);
		if (match(cases[i].key, &mb) != cases[i].match)
			fail_msg("case %zu <%s>: want %d", i, cases[i].key, cases[i].match);
		mime_done(&x);
	}
}

/* get_mime: called once, after the text, only when a body key is reached. */
struct mime_ctx {
	struct msgbuf mb;
	struct mimebuf x;
	int calls;
	bool fails;
};

static int get_text_m(void *ctx, struct imap_search_text *t)
{
	return get_text(&((struct mime_ctx *)ctx)->mb, t);
}

static int get_mime_cb(void *ctx, const struct mime_msg **mm_r, uint64_t *off_r)
{
	struct mime_ctx *c = ctx;

	c->calls++;
	assert_int_equal(c->mb.text_calls, 1);
	if (c->fails)
		return -1;
	*mm_r = c->x.mm;
	*off_r = strlen(prefix1);
	return 0;
}

static void test_match_mime_lazy(void **state)
{
	struct mime_ctx c;

	memset(&c, 0, sizeof(c));
	mime_msg_init(&c.mb, &c.x, prefix1, mime1);
	c.mb.m.mime = NULL;
	c.mb.m.get_text = get_text_m;
	c.mb.m.get_mime = get_mime_cb;
	c.mb.m.ctx = &c;
	assert_true(match("BODY innerword TEXT aus SUBJECT union", &c.mb));
	assert_int_equal(c.calls, 1);
	c.calls = 0;
	c.mb.text_calls = 0;
	assert_false(match("SUBJECT nothere BODY innerword", &c.mb));
	assert_int_equal(c.calls, 0);	/* BODY never reached */
	c.mb.text_calls = 0;
	assert_true(match("TEXT alice", &c.mb));	/* the header is enough */
	assert_int_equal(c.calls, 0);
	/* no structure to be had: BODY does not match, TEXT only on the header */
	c.fails = true;
	c.mb.text_calls = 0;
	assert_false(match("BODY innerword", &c.mb));
	c.mb.text_calls = 0;
	assert_true(match("NOT BODY innerword", &c.mb));
	c.mb.text_calls = 0;
	assert_true(match("TEXT alice", &c.mb));
	c.mb.text_calls = 0;
	assert_false(match("TEXT innerword", &c.mb));
	assert_int_equal(c.calls, 3);
	mime_done(&c.x);
}

static size_t b64enc(const char *in, size_t n, char *out)
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = (const unsigned char *)in;
	size_t w = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
			     (i + 2 < n ? s[i + 2] : 0);
		out[w++] = al[v >> 18];
		out[w++] = al[(v >> 12) & 63];
		out[w++] = i + 1 < n ? al[(v >> 6) & 63] : '=';
		out[w++] = i + 2 < n ? al[v & 63] : '=';
		if (i % 57 == 54) {
			out[w++] = '\r';
			out[w++] = '\n';
		}
	}
	return w;
}

/* QP-encode: every non-ASCII byte and '=' escaped, a soft break every 70
 * characters (also inside words). */
static size_t qpenc(const char *in, size_t n, char *out)
{
	size_t w = 0, col = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];
		if (col >= 70) {
			memcpy(out + w, "=\r\n", 3);
			w += 3;
			col = 0;
		}
		if (ch >= 0x80 || ch == '=') {
			w += (size_t)sprintf(out + w, "=%02X", ch);
			col += 3;
		} else {
			out[w++] = (char)ch;
			col++;
		}
	}
	return w;
}

/* Big parts (many decoding chunks): random Latin-1 / UTF-8 text, the
 * searched word placed at random (also right at chunk boundaries), checked
 * against a naive search on the folded decoded text. */
static void test_match_mime_big(void **state)
{
	static const char *const words_utf8[] = { "caf\xc3\xa9", "Stra\xc3\x9f" "e", "na\xc3\xafve",
						  "\xc3\x89T\xc3\x89", "word", "ABC", "x" };
	enum { TEXT_MAX = 300000 };
	char *text = malloc(TEXT_MAX + 64), *latin = malloc(TEXT_MAX + 64);
	char *enc = malloc(TEXT_MAX * 3 + 4096), *msg = malloc(TEXT_MAX * 3 + 8192);
	char *folded = malloc(TEXT_MAX + 64);
	assert_non_null(text);
	assert_non_null(latin);
	assert_non_null(enc);
	assert_non_null(msg);
	assert_non_null(folded);

	srand(2024);
	for (int round = 0; round < 60; round++) {
		/* the UTF-8 text: words separated by spaces and line breaks */
		size_t target = round < 30 ? 100 + (size_t)rand() % 9000
					   : 100000 + (size_t)rand() % 150000;
		size_t n = 0;
		while (n < target) {
			const char *w = words_utf8[rand() % 7];
			n += (size_t)sprintf(text + n, "%s%s", w, rand() % 9 == 0 ? "\r\n" : " ");
		}
		/* the needle, "zorglub" with an accent, somewhere; in some
		 * rounds it straddles a 2048-byte boundary of the encoded text */
		const char *needle = "zorgl\xc3\xbc" "b";
		size_t at = (size_t)rand() % n;
		while (at < n && ((unsigned char)text[at] & 0xc0) == 0x80)
			at++;	/* not inside a UTF-8 sequence */
		memmove(text + at + 8, text + at, n - at);
		memcpy(text + at, needle, 8);
		n += 8;
		text[n] = '\0';
		/* Latin-1 copy (every character of the words is Latin-1) */
		size_t ln = 0;
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)text[i];
			if (ch == 0xc3) {
				latin[ln++] = (char)(0xc0 | ((unsigned char)text[++i] & 0x3f));
			} else {
				latin[ln++] = (char)ch;
			}
		}
		bool qp = round % 2 == 1;
		size_t el = qp ? qpenc(latin, ln, enc) : b64enc(text, n, enc);
		enc[el] = '\0';
		snprintf(msg, TEXT_MAX * 3 + 8192,
			 "Subject: big\r\nMIME-Version: 1.0\r\n"
			 "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
			 "Content-Type: text/plain; charset=%s\r\n"
			 "Content-Transfer-Encoding: %s\r\n\r\n%s\r\n--b--\r\n",
			 qp ? "iso-8859-1" : "utf-8", qp ? "quoted-printable" : "base64", enc);
		struct imap_fold fs;
		imap_fold_init(&fs);
		size_t fl = imap_fold_utf8(&fs, text, n, folded);
		fl += imap_fold_finish(&fs, folded + fl);
		folded[fl] = '\0';

		struct msgbuf mb;
		struct mimebuf x;
		mime_msg_init(&mb, &x, prefix1, msg);
		/* the needle, upper-cased, always found */
		if (!match("CHARSET UTF-8 BODY \"ZORGL\xc3\x9c" "B\"", &mb))
			fail_msg("round %d (%s, %zu bytes): needle at %zu not found", round,
				 qp ? "qp" : "base64", n, at);
		/* random substrings of the decoded text, some changed: the
		 * result is the naive search's on the folded text */
		for (int k = 0; k < 20; k++) {
			char pat[16], fpat[16];
			size_t pl = 2 + (size_t)rand() % 10, a = (size_t)rand() % (n - pl);
			memcpy(pat, text + a, pl);
			if (rand() % 3 == 0)
				pat[rand() % pl] = "qQ\xc3"[rand() % 3];
			bool skip = false;
			for (size_t i = 0; i < pl; i++)
				if (pat[i] == '\r' || pat[i] == '\n' || pat[i] == '"')
					skip = true;
			if (skip)
				continue;
			pat[pl] = '\0';
			imap_fold_init(&fs);
			size_t fpl = imap_fold_utf8(&fs, pat, pl, fpat);
			fpl += imap_fold_finish(&fs, fpat + fpl);
			bool want = memmem(folded, fl, fpat, fpl) != NULL;
			char args[64];
			snprintf(args, sizeof(args), "CHARSET UTF-8 BODY {%zu}\r\n%s", pl, pat);
			if (match(args, &mb) != want)
				fail_msg("round %d: <%s> want %d", round, pat, want);
		}
		mime_done(&x);
	}
	free(text);
	free(latin);
	free(enc);
	free(msg);
	free(folded);
}

/* The needle's encoded form cut by the 2048-byte decoding chunk boundary
 * at every position: base64 (lines of 76) and quoted-printable (UTF-8
 * escapes, soft breaks). */
static void test_match_mime_chunk_edges(void **state)
{
	static char text[4096], enc[8192], msg[9000];

	for (int qp = 0; qp < 2; qp++) {
		size_t lo = qp ? 2000 : 1480, hi = qp ? 2060 : 1560;
		for (size_t d = lo; d < hi; d++) {
			memset(text, 'x', d);
			size_t n = d + (size_t)sprintf(text + d, "Zorgl\xc3\xbc" "b yyy\r\n");
			size_t el = qp ? qpenc(text, n, enc) : b64enc(text, n, enc);
			enc[el] = '\0';
			snprintf(msg, sizeof(msg),
				 "Content-Type: text/plain; charset=utf-8\r\n"
				 "Content-Transfer-Encoding: %s\r\n\r\n%s",
				 qp ? "quoted-printable" : "base64", enc);
			struct msgbuf mb;
			struct mimebuf x;
			mime_msg_init(&mb, &x, prefix1, msg);
			if (!match("CHARSET UTF-8 BODY \"xZORGL\xc3\x9c" "B Y\"", &mb))
				fail_msg("%s, needle at %zu: not found", qp ? "qp" : "base64", d);
			if (match("CHARSET UTF-8 BODY \"xZORGL\xc3\x9c" "B Z\"", &mb))
				fail_msg("%s, needle at %zu: wrong match", qp ? "qp" : "base64", d);
			mime_done(&x);
		}
	}
}

/* Caseless UTF-8 matching against a naive search of the folded text, in
 * two pieces cut anywhere (also inside a UTF-8 sequence). */
static void test_match_utf8_fold_random(void **state)
{
	static const char *const atoms[] = { "a", "A", "\xc3\xa9", "\xc3\x89", "\xce\xa3",
					     "\xcf\x83", "\xcf\x82", "\xc3", "\xa9", " " };
	srand(5);
	for (int round = 0; round < 3000; round++) {
		char body[400], pat[40], msg[500];
		size_t bl = 0, pl = 0;
		int nb = rand() % 60, np = 1 + rand() % 4;
		body[0] = '\0';
		for (int i = 0; i < nb; i++)
			bl += (size_t)sprintf(body + bl, "%s", atoms[rand() % 10]);
		for (int i = 0; i < np; i++)
			pl += (size_t)sprintf(pat + pl, "%s", atoms[rand() % 9]);
		if (pat[0] == ' ' || pat[pl - 1] == ' ')
			continue;
		int ml = snprintf(msg, sizeof(msg), "S: x\r\n\r\n%s", body);
		size_t cut = (size_t)rand() % ((size_t)ml + 1);
		char p0[500], p1[500];
		memcpy(p0, msg, cut);
		p0[cut] = '\0';
		strcpy(p1, msg + cut);

		char fb[400], fp[40];
		struct imap_fold fs;
		imap_fold_init(&fs);
		size_t fbl = imap_fold_utf8(&fs, body, bl, fb);
		fbl += imap_fold_finish(&fs, fb + fbl);
		imap_fold_init(&fs);
		size_t fpl = imap_fold_utf8(&fs, pat, pl, fp);
		fpl += imap_fold_finish(&fs, fp + fpl);
		bool want = memmem(fb, fbl, fp, fpl) != NULL;

		struct msgbuf mb;
		msg_init(&mb, p0, p1);
		char args[96];
		snprintf(args, sizeof(args), "BODY {%zu}\r\n%.*s", pl, (int)pl, pat);
		if (match(args, &mb) != want)
			fail_msg("round %d cut %zu: want %d", round, cut, want);
	}
}

static void test_needs_and_api(void **state)
{
	struct imap_command *c = search("SEEN UID 1:5");
	assert_int_equal(imap_search_needs(c->u.search.tree), 0);
	imap_command_free(&c);
	c = search("OR SEEN FROM x");
	assert_int_equal(imap_search_needs(c->u.search.tree), IMAP_SEARCH_NEED_HEADER);
	imap_command_free(&c);
	c = search("NOT BODY x");
	assert_int_equal(imap_search_needs(c->u.search.tree), IMAP_SEARCH_NEED_BODY);
	imap_command_free(&c);
	c = search("TEXT x");
	assert_int_equal(imap_search_needs(c->u.search.tree),
			 IMAP_SEARCH_NEED_HEADER | IMAP_SEARCH_NEED_BODY);
	imap_command_free(&c);
	c = search("SENTON 1-Jan-2000");
	assert_int_equal(imap_search_needs(c->u.search.tree), IMAP_SEARCH_NEED_HEADER);
	imap_command_free(&c);
	assert_int_equal(imap_search_needs(NULL), 0);
	imap_search_bind_keywords(NULL, kw_lookup, NULL);

	/* header helper directly, in two pieces */
	struct imap_arena *a = imap_arena_new(0);
	struct imap_search_pattern pat;
	assert_int_equal(imap_search_pattern_init(&pat, "World", 5, a), 0);
	struct imap_search_text t = { { "Subject: Hello W", "orld\r\nX: y\r\n" }, { 16, 13 } };
	assert_true(imap_search_header_contains(&t, "subject", 7, &pat));
	assert_false(imap_search_header_contains(&t, "X", 1, &pat));
	/* a very long header value (heap path) */
	size_t big = 20000;
	char *h = malloc(big + 64);
	strcpy(h, "References: ");
	size_t o = strlen(h);
	for (; o < big; o++)
		h[o] = (o % 77 == 0) ? '\n' : (o % 77 == 1 ? ' ' : 'r');
	strcpy(h + o, "World\r\n");
	struct imap_search_text t2 = { { h, NULL }, { strlen(h), 0 } };
	assert_true(imap_search_header_contains(&t2, "References", 10, &pat));
	free(h);
	imap_arena_destroy(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_parse_keys, setup),
		cmocka_unit_test_setup(test_parse_charset_return, setup),
		cmocka_unit_test_setup(test_parse_errors, setup),
		cmocka_unit_test_setup(test_match_numbers, setup),
		cmocka_unit_test_setup(test_match_dates, setup),
		cmocka_unit_test_setup(test_match_headers, setup),
		cmocka_unit_test_setup(test_match_body_text, setup),
		cmocka_unit_test_setup(test_match_encoded_words, setup),
		cmocka_unit_test_setup(test_match_kmp_random, setup),
		cmocka_unit_test_setup(test_needs_and_api, setup),
		cmocka_unit_test_setup(test_match_mime_decoded, setup),
		cmocka_unit_test_setup(test_match_mime_single, setup),
		cmocka_unit_test_setup(test_match_mime_lazy, setup),
		cmocka_unit_test_setup(test_match_mime_big, setup),
		cmocka_unit_test_setup(test_match_mime_chunk_edges, setup),
		cmocka_unit_test_setup(test_match_utf8_fold_random, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
