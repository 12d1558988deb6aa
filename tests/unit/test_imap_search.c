/*
 * test_imap_search.c - unit tests for SEARCH: parsing every RFC 3501 key
 * and MODSEQ into the tree (imapproxy/imap_search_parse.c), CHARSET and
 * RETURN handling, and the store-free evaluator (imapproxy/imap_search.c):
 * flags, keywords, sequence and UID sets with '*', dates (internal date
 * with a zone offset, Date: header), sizes, modseq, header/body/text
 * substring search with ASCII case folding, folding, RFC 2047 words,
 * text in two pieces, lazy text loading, and KMP against a naive search.
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

#include "imap_parse.h"
#include "imap_search.h"

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
	/* UTF-8 bytes compared as they are: no folding of non-ASCII */
	assert_false(match("CHARSET UTF-8 FROM \"ANDR\xc3\x89\"", &mb));
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
