/*
 * test_imap_parse.c - unit tests for the IMAP command reader and parser
 * (imapproxy/imap_reader.c, imap_parse.c, imap_fetch_parse.c): every
 * command form, quoting and escapes, literals (synchronizing,
 * non-synchronizing, literal8) fed whole and one byte at a time, every
 * limit at and just past its edge, nesting, FETCH attributes and sections,
 * flags, dates, and precise error texts.  Search and sequence sets have
 * their own files (test_imap_search.c, test_imap_seqset.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "imap_parse.h"

static struct imap_limits lim;

static int setup(void **state)
{
	imap_limits_default(&lim);
	return 0;
}

static struct imap_command *parse_ok(const char *s)
{
	struct imap_command *c = NULL;
	struct imap_error e;
	enum imap_err r = imap_parse_command(s, strlen(s), &lim, &c, &e);

	if (r != IMAP_OK)
		fail_msg("parse of <%s> failed: %s", s, e.text);
	assert_non_null(c);
	return c;
}

/* Expect an error; want_text is a substring of the error text (or NULL). */
static void parse_err(const char *s, enum imap_err code, const char *want_tag,
		      const char *want_text)
{
	struct imap_command *c = NULL;
	struct imap_error e;
	enum imap_err r = imap_parse_command(s, strlen(s), &lim, &c, &e);

	if (r == IMAP_OK)
		fail_msg("parse of <%s> unexpectedly succeeded", s);
	assert_null(c);
	if (r != code)
		fail_msg("parse of <%s>: code %d, want %d (%s)", s, r, code, e.text);
	assert_int_equal(e.code, code);
	if (want_tag != NULL)
		assert_string_equal(e.tag, want_tag);
	if (want_text != NULL && strstr(e.text, want_text) == NULL)
		fail_msg("parse of <%s>: text <%s> lacks <%s>", s, e.text, want_text);
	assert_false(e.fatal);
}

static void assert_str(const struct imap_str *s, const char *want)
{
	assert_int_equal(s->len, strlen(want));
	assert_string_equal(s->s, want);
}

/* ---- simple commands ------------------------------------------------- */

static void test_no_arg_commands(void **state)
{
	static const struct {
		const char *line;
		enum imap_cmd_id id;
	} cases[] = {
		{ "a CAPABILITY\r\n", IMAP_CMD_CAPABILITY }, { "a noop\r\n", IMAP_CMD_NOOP },
		{ "a LOGOUT\r\n", IMAP_CMD_LOGOUT },	      { "a StartTLS\r\n", IMAP_CMD_STARTTLS },
		{ "a CHECK\r\n", IMAP_CMD_CHECK },	      { "a CLOSE\r\n", IMAP_CMD_CLOSE },
		{ "a UNSELECT\r\n", IMAP_CMD_UNSELECT },      { "a EXPUNGE\r\n", IMAP_CMD_EXPUNGE },
		{ "a IDLE\r\n", IMAP_CMD_IDLE },	      { "a NAMESPACE\r\n", IMAP_CMD_NAMESPACE },
		{ "a NOOP\n", IMAP_CMD_NOOP },		      { "a NOOP", IMAP_CMD_NOOP },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct imap_command *c = parse_ok(cases[i].line);
		assert_int_equal(c->id, cases[i].id);
		assert_false(c->uid);
		assert_string_equal(c->tag, "a");
		imap_command_free(&c);
		assert_null(c);
	}
	imap_command_free(NULL);
	parse_err("a NOOP x\r\n", IMAP_ERR_SYNTAX, "a", "Unexpected extra arguments to NOOP");
	parse_err("a NOOP \r\n", IMAP_ERR_SYNTAX, "a", "Trailing space");
	parse_err("a CAPABILITY foo\r\n", IMAP_ERR_SYNTAX, "a", NULL);
}

static void test_tags_and_names(void **state)
{
	struct imap_command *c = parse_ok("A0001.x]y LoGiN bob secret\r\n");
	assert_string_equal(c->tag, "A0001.x]y");
	assert_int_equal(c->id, IMAP_CMD_LOGIN);
	imap_command_free(&c);

	parse_err("a FOO\r\n", IMAP_ERR_UNKNOWN_COMMAND, "a", "Unknown command FOO");
	parse_err("a UID NOOP\r\n", IMAP_ERR_UNKNOWN_COMMAND, "a", "Unknown command UID NOOP");
	parse_err("a UID FOO 1\r\n", IMAP_ERR_UNKNOWN_COMMAND, "a", "Unknown command UID FOO");
	parse_err("a\r\n", IMAP_ERR_SYNTAX, "a", "Missing command name");
	parse_err("+a NOOP\r\n", IMAP_ERR_SYNTAX, "", "tag");
	parse_err(" NOOP\r\n", IMAP_ERR_SYNTAX, "", "tag");
	parse_err("a* NOOP\r\n", IMAP_ERR_SYNTAX, "", "tag");
	parse_err("a  NOOP\r\n", IMAP_ERR_SYNTAX, "a", "command name");

	char longtag[IMAP_TAG_MAX + 20];
	memset(longtag, 'x', IMAP_TAG_MAX + 1);
	strcpy(longtag + IMAP_TAG_MAX + 1, " NOOP\r\n");
	parse_err(longtag, IMAP_ERR_SYNTAX, "", "Tag too long");
	memset(longtag, 'x', IMAP_TAG_MAX);
	strcpy(longtag + IMAP_TAG_MAX, " NOOP\r\n");
	c = parse_ok(longtag);
	assert_int_equal(strlen(c->tag), IMAP_TAG_MAX);
	imap_command_free(&c);

	/* an unknown command name is echoed sanitized */
	struct imap_command *cc;
	struct imap_error e;
	const char bad[] = "t FO\x01O\r\n";
	assert_int_equal(imap_parse_command(bad, sizeof(bad) - 1, &lim, &cc, &e),
			 IMAP_ERR_UNKNOWN_COMMAND);
	assert_string_equal(e.text, "Unknown command FO");
	const char bad8[] = "t F\xc3\xa9O\r\n";
	assert_int_equal(imap_parse_command(bad8, sizeof(bad8) - 1, &lim, &cc, &e),
			 IMAP_ERR_UNKNOWN_COMMAND);
	for (const char *p = e.text; *p; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);
	assert_string_equal(imap_cmd_name(IMAP_CMD_FETCH), "FETCH");
	assert_string_equal(imap_cmd_name(IMAP_CMD_COUNT), "?");
}

/* ---- strings ----------------------------------------------------------- */

static void test_login_strings(void **state)
{
	struct imap_command *c = parse_ok("a LOGIN \"bob smith\" \"p\\\"a\\\\ss\"\r\n");
	assert_str(&c->u.login.user, "bob smith");
	assert_str(&c->u.login.pass, "p\"a\\ss");
	imap_command_free(&c);

	c = parse_ok("a LOGIN {3}\r\nbob {6+}\r\nse cr\"\r\n");
	assert_str(&c->u.login.user, "bob");
	assert_str(&c->u.login.pass, "se cr\"");
	imap_command_free(&c);

	c = parse_ok("a LOGIN \"\" {0}\r\n\r\n");
	assert_str(&c->u.login.user, "");
	assert_str(&c->u.login.pass, "");
	imap_command_free(&c);

	c = parse_ok("a LOGIN b\xc3\xa9 x]y\r\n");
	assert_str(&c->u.login.user, "b\xc3\xa9");
	assert_str(&c->u.login.pass, "x]y");
	imap_command_free(&c);

	parse_err("a LOGIN bob\r\n", IMAP_ERR_SYNTAX, "a", "Missing password");
	parse_err("a LOGIN\r\n", IMAP_ERR_SYNTAX, "a", "Missing user name");
	parse_err("a LOGIN \"bob pass\r\n", IMAP_ERR_SYNTAX, "a", "Unterminated quoted string");
	parse_err("a LOGIN \"b\\ob\" x\r\n", IMAP_ERR_SYNTAX, "a", "Invalid escape");
	parse_err("a LOGIN (bob) x\r\n", IMAP_ERR_SYNTAX, "a", "Invalid user name");
	parse_err("a LOGIN bob x y\r\n", IMAP_ERR_SYNTAX, "a", "Unexpected extra arguments");
	parse_err("a LOGIN {9}\r\nbob\r\n", IMAP_ERR_SYNTAX, "a", "Literal data missing");
	parse_err("a LOGIN {5}\r\nbob\r\n", IMAP_ERR_SYNTAX, "a", "Missing password");
	parse_err("a LOGIN {3} x\r\nbob\r\n", IMAP_ERR_SYNTAX, "a", "Missing line end after literal");
	parse_err("a LOGIN {x}\r\nbob\r\n", IMAP_ERR_SYNTAX, "a", "Invalid literal");
	parse_err("a LOGIN ~{3}\r\nbob x\r\n", IMAP_ERR_SYNTAX, "a", NULL);

	const char nul[] = "a LOGIN {3}\r\nb\0b x\r\n";
	struct imap_command *cc;
	struct imap_error e;
	assert_int_equal(imap_parse_command(nul, sizeof(nul) - 1, &lim, &cc, &e), IMAP_ERR_SYNTAX);
	assert_non_null(strstr(e.text, "NUL"));
	const char qnul[] = "a LOGIN \"b\0b\" x\r\n";
	assert_int_equal(imap_parse_command(qnul, sizeof(qnul) - 1, &lim, &cc, &e),
			 IMAP_ERR_SYNTAX);
}

static void test_authenticate(void **state)
{
	struct imap_command *c = parse_ok("a AUTHENTICATE plain\r\n");
	assert_int_equal(c->id, IMAP_CMD_AUTHENTICATE);
	assert_str(&c->u.auth.mech, "PLAIN");
	assert_false(c->u.auth.has_ir);
	imap_command_free(&c);

	c = parse_ok("a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n");
	assert_true(c->u.auth.has_ir);
	assert_str(&c->u.auth.ir, "AGJvYgBzZWNyZXQ=");
	imap_command_free(&c);

	c = parse_ok("a AUTHENTICATE PLAIN =\r\n");
	assert_true(c->u.auth.has_ir);
	assert_str(&c->u.auth.ir, "");
	imap_command_free(&c);

	parse_err("a AUTHENTICATE\r\n", IMAP_ERR_SYNTAX, "a", "Missing SASL mechanism");
	parse_err("a AUTHENTICATE PLAIN ab!c\r\n", IMAP_ERR_SYNTAX, "a", "not base64");
	parse_err("a AUTHENTICATE PLAIN abc def\r\n", IMAP_ERR_SYNTAX, "a", NULL);
}

/* ---- mailboxes --------------------------------------------------------- */

static void test_mailbox_commands(void **state)
{
	static const struct {
		const char *line;
		enum imap_cmd_id id;
		const char *name;
	} cases[] = {
		{ "a DELETE foo\r\n", IMAP_CMD_DELETE, "foo" },
		{ "a SUBSCRIBE \"a b/c\"\r\n", IMAP_CMD_SUBSCRIBE, "a b/c" },
		{ "a UNSUBSCRIBE {3}\r\nx y\r\n", IMAP_CMD_UNSUBSCRIBE, "x y" },
		{ "a GETQUOTAROOT inbox\r\n", IMAP_CMD_GETQUOTAROOT, "INBOX" },
		{ "a DELETE iNbOx/Sub\r\n", IMAP_CMD_DELETE, "INBOX/Sub" },
		{ "a DELETE INBOXes\r\n", IMAP_CMD_DELETE, "INBOXes" },
		{ "a DELETE Entw&APw-rfe\r\n", IMAP_CMD_DELETE, "Entw\xc3\xbcrfe" },
		{ "a DELETE &-x\r\n", IMAP_CMD_DELETE, "&x" },
		{ "a DELETE \"&ZeVnLIqe-\"\r\n", IMAP_CMD_DELETE, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct imap_command *c = parse_ok(cases[i].line);
		assert_int_equal(c->id, cases[i].id);
		assert_str(&c->u.mailbox.mailbox, cases[i].name);
		imap_command_free(&c);
	}
	parse_err("a DELETE Entw&APw\r\n", IMAP_ERR_BAD_MAILBOX, "a", "modified UTF-7");
	parse_err("a DELETE a&b\r\n", IMAP_ERR_BAD_MAILBOX, "a", NULL);
	parse_err("a DELETE caf\xc3\xa9\r\n", IMAP_ERR_BAD_MAILBOX, "a", NULL);
	parse_err("a DELETE {3}\r\na\tb\r\n", IMAP_ERR_BAD_MAILBOX, "a", NULL);
	parse_err("a DELETE &AAk-\r\n", IMAP_ERR_BAD_MAILBOX, "a", "control character");
	parse_err("a DELETE\r\n", IMAP_ERR_SYNTAX, "a", "Missing mailbox name");

	struct imap_error e;
	struct imap_command *c;
	const char *s = "a DELETE &AOQ-x\r\n";
	imap_parse_command(s, strlen(s), &lim, &c, &e);
	assert_true(e.code == IMAP_ERR_BAD_MAILBOX || c != NULL);
	if (c != NULL) {
		assert_str(&c->u.mailbox.mailbox, "\xc3\xa4x");
		imap_command_free(&c);
	}
	/* with UTF8=ACCEPT names are taken as UTF-8 */
	lim.utf8_accept = true;
	c = parse_ok("a DELETE caf\xc3\xa9&x\r\n");
	assert_str(&c->u.mailbox.mailbox, "caf\xc3\xa9&x");
	imap_command_free(&c);
	parse_err("a DELETE caf\xc3\r\n", IMAP_ERR_BAD_MAILBOX, "a", "UTF-8");
	lim.utf8_accept = false;

	/* BAD_MAILBOX is answered NO */
	s = "a DELETE &Jjo\r\n";
	imap_parse_command(s, strlen(s), &lim, &c, &e);
	assert_true(e.no);
	assert_string_equal(imap_error_status(&e), "NO");
}

static void test_select(void **state)
{
	struct imap_command *c = parse_ok("a SELECT INBOX\r\n");
	assert_int_equal(c->id, IMAP_CMD_SELECT);
	assert_str(&c->u.select.mailbox, "INBOX");
	assert_false(c->u.select.condstore);
	assert_false(c->u.select.qresync);
	imap_command_free(&c);

	c = parse_ok("a EXAMINE Archive (CONDSTORE)\r\n");
	assert_int_equal(c->id, IMAP_CMD_EXAMINE);
	assert_true(c->u.select.condstore);
	imap_command_free(&c);

	c = parse_ok("a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n");
	assert_true(c->u.select.qresync);
	assert_true(c->u.select.condstore);
	assert_int_equal(c->u.select.uidvalidity, 67890007);
	assert_int_equal(c->u.select.modseq, 20050715194045000ull);
	assert_non_null(c->u.select.known_uids);
	assert_int_equal(imap_seqset_count(c->u.select.known_uids, 1000), 1 + 169 + 328);
	assert_null(c->u.select.match_seqs);
	imap_command_free(&c);

	c = parse_ok("a SELECT INBOX (QRESYNC (1 2 1:100 (1:3 10,20,30)))\r\n");
	assert_non_null(c->u.select.match_seqs);
	assert_non_null(c->u.select.match_uids);
	assert_true(imap_seqset_contains(c->u.select.match_uids, 100, 20));
	imap_command_free(&c);

	c = parse_ok("a SELECT INBOX (QRESYNC (1 2 (1:3 10,20,30)))\r\n");
	assert_null(c->u.select.known_uids);
	assert_non_null(c->u.select.match_seqs);
	imap_command_free(&c);

	c = parse_ok("a SELECT INBOX (QRESYNC (1 2))\r\n");
	assert_int_equal(c->u.select.uidvalidity, 1);
	imap_command_free(&c);

	c = parse_ok("a SELECT INBOX ()\r\n");
	imap_command_free(&c);

	parse_err("a SELECT INBOX (QRESYNC (0 2))\r\n", IMAP_ERR_SYNTAX, "a", "UIDVALIDITY");
	parse_err("a SELECT INBOX (QRESYNC (1 0))\r\n", IMAP_ERR_SYNTAX, "a", "modseq");
	parse_err("a SELECT INBOX (QRESYNC (1 2 (1:3 10,20)))\r\n", IMAP_ERR_SYNTAX, "a", "differ");
	parse_err("a SELECT INBOX (QRESYNC (1 2 1:5 1:3))\r\n", IMAP_ERR_SYNTAX, "a", NULL);
	parse_err("a SELECT INBOX (FOO)\r\n", IMAP_ERR_SYNTAX, "a", "Unknown SELECT parameter FOO");
	parse_err("a SELECT INBOX (CONDSTORE\r\n", IMAP_ERR_SYNTAX, "a", "Missing ')'");
	parse_err("a SELECT INBOX CONDSTORE\r\n", IMAP_ERR_SYNTAX, "a", "Missing '('");
	parse_err("a SELECT INBOX (QRESYNC (1 99999999999999999999))\r\n", IMAP_ERR_SYNTAX, "a",
		  "too large");
}

static void test_create_rename(void **state)
{
	struct imap_command *c = parse_ok("a CREATE Sent2\r\n");
	assert_str(&c->u.create.mailbox, "Sent2");
	assert_int_equal(c->u.create.special_use, 0);
	imap_command_free(&c);

	c = parse_ok("a CREATE MySent (USE (\\Sent \\junk))\r\n");
	assert_int_equal(c->u.create.special_use, IMAP_SU_SENT | IMAP_SU_JUNK);
	imap_command_free(&c);

	struct imap_error e;
	const char *s = "a CREATE X (USE (\\Important))\r\n";
	assert_int_equal(imap_parse_command(s, strlen(s), &lim, &c, &e), IMAP_ERR_USEATTR);
	assert_true(e.no);
	assert_string_equal(e.resp_code, "USEATTR");
	parse_err("a CREATE X (FOO (\\Sent))\r\n", IMAP_ERR_SYNTAX, "a", "Unknown CREATE parameter");
	parse_err("a CREATE X ()\r\n", IMAP_ERR_SYNTAX, "a", "Empty");

	c = parse_ok("a RENAME \"Old Name\" inbox/New\r\n");
	assert_int_equal(c->id, IMAP_CMD_RENAME);
	assert_str(&c->u.rename.from, "Old Name");
	assert_str(&c->u.rename.to, "INBOX/New");
	imap_command_free(&c);
	parse_err("a RENAME foo\r\n", IMAP_ERR_SYNTAX, "a", "Missing new mailbox name");
}

static void test_list(void **state)
{
	struct imap_command *c = parse_ok("a LIST \"\" *\r\n");
	assert_int_equal(c->id, IMAP_CMD_LIST);
	assert_false(c->u.list.extended);
	assert_str(&c->u.list.ref, "");
	assert_int_equal(c->u.list.n_patterns, 1);
	assert_str(&c->u.list.patterns[0], "*");
	imap_command_free(&c);

	c = parse_ok("a LIST \"\" %/Entw&APw-rfe]\r\n");
	assert_str(&c->u.list.patterns[0], "%/Entw\xc3\xbcrfe]");
	imap_command_free(&c);

	c = parse_ok("a LIST inbox \"\"\r\n");
	assert_str(&c->u.list.ref, "inbox");	/* references are not normalised */
	assert_str(&c->u.list.patterns[0], "");
	imap_command_free(&c);

	c = parse_ok("a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX* \"Sent\" %) RETURN "
		     "(CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n");
	assert_true(c->u.list.extended);
	assert_int_equal(c->u.list.select_opts,
			 IMAP_LIST_SEL_SUBSCRIBED | IMAP_LIST_SEL_RECURSIVEMATCH);
	assert_int_equal(c->u.list.n_patterns, 3);
	assert_str(&c->u.list.patterns[1], "Sent");
	assert_int_equal(c->u.list.return_opts,
			 IMAP_LIST_RET_CHILDREN | IMAP_LIST_RET_SPECIAL_USE | IMAP_LIST_RET_STATUS);
	assert_int_equal(c->u.list.status_items, IMAP_STATUS_MESSAGES | IMAP_STATUS_UNSEEN);
	imap_command_free(&c);

	c = parse_ok("a LIST () \"\" * RETURN ()\r\n");
	assert_true(c->u.list.extended);
	assert_int_equal(c->u.list.return_opts, 0);
	imap_command_free(&c);

	c = parse_ok("a LIST \"\" * RETURN (SUBSCRIBED)\r\n");
	assert_int_equal(c->u.list.return_opts, IMAP_LIST_RET_SUBSCRIBED);
	imap_command_free(&c);

	c = parse_ok("a LIST (SPECIAL-USE) \"\" *\r\n");
	assert_int_equal(c->u.list.select_opts, IMAP_LIST_SEL_SPECIAL_USE);
	imap_command_free(&c);

	c = parse_ok("a LSUB \"\" %\r\n");
	assert_int_equal(c->id, IMAP_CMD_LSUB);
	assert_int_equal(c->u.list.n_patterns, 1);
	imap_command_free(&c);

	parse_err("a LIST (RECURSIVEMATCH) \"\" *\r\n", IMAP_ERR_SYNTAX, "a", "RECURSIVEMATCH");
	parse_err("a LIST (BOGUS) \"\" *\r\n", IMAP_ERR_SYNTAX, "a", "Unknown LIST selection option");
	parse_err("a LIST \"\" * RETURN (BOGUS)\r\n", IMAP_ERR_SYNTAX, "a", "Unknown LIST return");
	parse_err("a LIST \"\" * FOO (X)\r\n", IMAP_ERR_SYNTAX, "a", "RETURN");
	parse_err("a LIST \"\" ()\r\n", IMAP_ERR_SYNTAX, "a", "Empty mailbox patterns");
	parse_err("a LIST \"\"\r\n", IMAP_ERR_SYNTAX, "a", "Missing mailbox pattern");
	parse_err("a LSUB () \"\" *\r\n", IMAP_ERR_SYNTAX, "a", NULL);
	parse_err("a LIST \"\" * RETURN (STATUS (BOGUS))\r\n", IMAP_ERR_SYNTAX, "a",
		  "Unknown STATUS item");
}

static void test_status(void **state)
{
	struct imap_command *c =
		parse_ok("a STATUS inbox (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN "
			 "HIGHESTMODSEQ size)\r\n");
	assert_int_equal(c->id, IMAP_CMD_STATUS);
	assert_str(&c->u.status.mailbox, "INBOX");
	assert_int_equal(c->u.status.items, 0x7f);
	imap_command_free(&c);

	parse_err("a STATUS inbox ()\r\n", IMAP_ERR_SYNTAX, "a", "Empty STATUS items");
	parse_err("a STATUS inbox (FOO)\r\n", IMAP_ERR_SYNTAX, "a", "Unknown STATUS item FOO");
	parse_err("a STATUS inbox MESSAGES\r\n", IMAP_ERR_SYNTAX, "a", "Missing '('");
	parse_err("a STATUS inbox (MESSAGES\r\n", IMAP_ERR_SYNTAX, "a", "Missing ')'");
}

/* ---- APPEND ------------------------------------------------------------ */

static void test_append(void **state)
{
	struct imap_command *c = parse_ok("a APPEND INBOX {10}\r\nHello\r\nBye\r\n");
	assert_int_equal(c->id, IMAP_CMD_APPEND);
	assert_str(&c->u.append.mailbox, "INBOX");
	assert_int_equal(c->u.append.msg_len, 10);
	assert_memory_equal(c->u.append.msg, "Hello\r\nBye", 10);
	assert_false(c->u.append.has_date);
	assert_int_equal(c->u.append.flags.system, 0);
	imap_command_free(&c);

	c = parse_ok("a APPEND saved-messages (\\Seen \\Draft $Label1 $label1 Foo) "
		     "\"17-Jul-1996 02:44:25 -0700\" {3+}\r\nabc\r\n");
	assert_int_equal(c->u.append.flags.system, IMAP_FLAG_SEEN | IMAP_FLAG_DRAFT);
	assert_int_equal(c->u.append.flags.n_keywords, 2);
	assert_str(&c->u.append.flags.keywords[0], "$Label1");
	assert_str(&c->u.append.flags.keywords[1], "Foo");
	assert_true(c->u.append.has_date);
	assert_int_equal(c->u.append.date, 837596665);	/* 1996-07-17 09:44:25 UTC */
	assert_int_equal(c->u.append.date_tz, -7 * 3600);
	assert_int_equal(c->u.append.msg_len, 3);
	imap_command_free(&c);

	c = parse_ok("a APPEND x \" 1-Jan-2000 00:00:00 +0000\" {0}\r\n\r\n");
	assert_int_equal(c->u.append.date, 946684800);
	assert_int_equal(c->u.append.msg_len, 0);
	imap_command_free(&c);

	c = parse_ok("a APPEND x () {1}\r\nx\r\n");
	assert_int_equal(c->u.append.flags.n_keywords, 0);
	imap_command_free(&c);

	/* literal8 may carry NUL */
	const char l8[] = "a APPEND x ~{3}\r\na\0b\r\n";
	struct imap_error e;
	assert_int_equal(imap_parse_command(l8, sizeof(l8) - 1, &lim, &c, &e), IMAP_OK);
	assert_true(c->u.append.literal8);
	assert_int_equal(c->u.append.msg_len, 3);
	imap_command_free(&c);

	/* the message may exceed max_literal up to max_append_literal */
	lim.max_literal = 4;
	lim.max_append_literal = 10;
	c = parse_ok("a APPEND x {10}\r\n0123456789\r\n");
	imap_command_free(&c);
	const char *big = "a APPEND x {11}\r\n0123456789a\r\n";
	assert_int_equal(imap_parse_command(big, strlen(big), &lim, &c, &e),
			 IMAP_ERR_LITERAL_TOO_BIG);
	assert_true(e.no);
	assert_string_equal(e.resp_code, "TOOBIG");
	/* a mailbox literal is an ordinary literal */
	parse_err("a APPEND {5}\r\nINBOX {1}\r\nx\r\n", IMAP_ERR_LITERAL_TOO_BIG, "a",
		  "Literal too big");
	imap_limits_default(&lim);

	parse_err("a APPEND x \"abc\"\r\n", IMAP_ERR_SYNTAX, "a", "Invalid APPEND date-time");
	parse_err("a APPEND x (\\Seen) \"32-Jul-1996 02:44:25 -0700\" {1}\r\nx\r\n",
		  IMAP_ERR_SYNTAX, "a", "date-time");
	parse_err("a APPEND x (\\Recent) {1}\r\nx\r\n", IMAP_ERR_SYNTAX, "a",
		  "Invalid system flag \\Recent");
	parse_err("a APPEND x (\\Foo) {1}\r\nx\r\n", IMAP_ERR_SYNTAX, "a", "Invalid system flag");
	parse_err("a APPEND x msg\r\n", IMAP_ERR_SYNTAX, "a", "must be a literal");
	parse_err("a APPEND x\r\n", IMAP_ERR_SYNTAX, "a", "Missing message literal");
	parse_err("a APPEND x {1}\r\nx {1}\r\ny\r\n", IMAP_ERR_SYNTAX, "a", "Only one message");
	parse_err("a APPEND x (\\Seen {1}\r\nx\r\n", IMAP_ERR_SYNTAX, "a", NULL);
}

static void test_dates(void **state)
{
	int64_t t;
	int32_t tz, d;

	assert_int_equal(imap_parse_date_time("01-Jan-1970 00:00:00 +0000", 26, &t, &tz), 0);
	assert_int_equal(t, 0);
	assert_int_equal(imap_parse_date_time("01-Jan-1970 00:00:00 +0130", 26, &t, &tz), 0);
	assert_int_equal(t, -5400);
	assert_int_equal(tz, 5400);
	assert_int_equal(imap_parse_date_time("29-Feb-2024 23:59:59 -1200", 26, &t, &tz), 0);
	assert_int_equal(t, 1709294399);
	assert_int_equal(imap_parse_date_time("29-Feb-2023 23:59:59 -1200", 26, &t, &tz), -1);
	assert_int_equal(imap_parse_date_time("01-Foo-2023 23:59:59 -1200", 26, &t, &tz), -1);
	assert_int_equal(imap_parse_date_time("01-Jan-2023 24:00:00 +0000", 26, &t, &tz), -1);
	assert_int_equal(imap_parse_date_time("01-Jan-2023 12:00:00 0000", 25, &t, &tz), -1);
	assert_int_equal(imap_parse_date_time("01-Jan-2023 12:00:00 +0000x", 27, &t, &tz), -1);
	assert_int_equal(imap_parse_date_time("1-Jan-2023 12:00:00 +0000", 25, &t, &tz), 0);

	assert_int_equal(imap_parse_date("1-Feb-1994", 10, &d), 0);
	assert_int_equal(d, imap_days_from_civil(1994, 2, 1));
	assert_int_equal(imap_parse_date("01-feb-1994", 11, &d), 0);
	assert_int_equal(imap_parse_date("31-Apr-1994", 11, &d), -1);
	assert_int_equal(imap_parse_date("1-Feb-94", 8, &d), -1);
	assert_int_equal(imap_parse_date("001-Feb-1994", 12, &d), -1);
	assert_int_equal(imap_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(imap_days_from_civil(2000, 3, 1), 11017);
	assert_int_equal(imap_days_from_civil(1969, 12, 31), -1);
}

/* ---- STORE, COPY, MOVE, EXPUNGE ---------------------------------------- */

static void test_store(void **state)
{
	struct imap_command *c = parse_ok("a STORE 2:4 +FLAGS (\\Deleted)\r\n");
	assert_int_equal(c->id, IMAP_CMD_STORE);
	assert_int_equal(c->u.store.mode, IMAP_STORE_ADD);
	assert_false(c->u.store.silent);
	assert_int_equal(c->u.store.flags.system, IMAP_FLAG_DELETED);
	assert_int_equal(imap_seqset_count(c->u.store.set, 10), 3);
	imap_command_free(&c);

	c = parse_ok("a UID STORE 1:* -flags.silent \\Seen $Junk\r\n");
	assert_true(c->uid);
	assert_int_equal(c->u.store.mode, IMAP_STORE_REMOVE);
	assert_true(c->u.store.silent);
	assert_int_equal(c->u.store.flags.system, IMAP_FLAG_SEEN);
	assert_int_equal(c->u.store.flags.n_keywords, 1);
	assert_str(&c->u.store.flags.keywords[0], "$Junk");
	imap_command_free(&c);

	c = parse_ok("a STORE 1 (UNCHANGEDSINCE 12345) FLAGS ()\r\n");
	assert_int_equal(c->u.store.mode, IMAP_STORE_SET);
	assert_true(c->u.store.has_unchangedsince);
	assert_int_equal(c->u.store.unchangedsince, 12345);
	assert_int_equal(c->u.store.flags.system, 0);
	imap_command_free(&c);

	c = parse_ok("a STORE 1 (UNCHANGEDSINCE 0) FLAGS.SILENT (a b A c B)\r\n");
	assert_int_equal(c->u.store.unchangedsince, 0);
	assert_int_equal(c->u.store.flags.n_keywords, 3);
	assert_str(&c->u.store.flags.keywords[0], "a");
	assert_str(&c->u.store.flags.keywords[1], "b");
	assert_str(&c->u.store.flags.keywords[2], "c");
	imap_command_free(&c);

	parse_err("a STORE 1 FLAGS (\\Recent)\r\n", IMAP_ERR_SYNTAX, "a", "\\Recent");
	parse_err("a STORE 1 LABELS (x)\r\n", IMAP_ERR_SYNTAX, "a", "Invalid STORE data item");
	parse_err("a STORE 1 FLAGS\r\n", IMAP_ERR_SYNTAX, "a", "Missing flags");
	parse_err("a STORE 0 FLAGS (x)\r\n", IMAP_ERR_BAD_SEQSET, "a", "Sequence number 0");
	parse_err("a STORE 1 (FOO 1) FLAGS (x)\r\n", IMAP_ERR_SYNTAX, "a", "Unknown STORE modifier");
	parse_err("a STORE 1 FLAGS (x\r\n", IMAP_ERR_SYNTAX, "a", "Missing ')' in flag list");
	parse_err("a STORE 1 FLAGS (\"x\")\r\n", IMAP_ERR_SYNTAX, "a", NULL);
	parse_err("a STORE 1 FLAGS (caf\xc3\xa9)\r\n", IMAP_ERR_SYNTAX, "a", "not US-ASCII");
}

static void test_copy_move_expunge(void **state)
{
	struct imap_command *c = parse_ok("a COPY 1:3,5 Trash\r\n");
	assert_int_equal(c->id, IMAP_CMD_COPY);
	assert_false(c->uid);
	assert_str(&c->u.copy.mailbox, "Trash");
	assert_int_equal(imap_seqset_count(c->u.copy.set, 100), 4);
	imap_command_free(&c);

	c = parse_ok("a uid move 10:* \"Junk\"\r\n");
	assert_int_equal(c->id, IMAP_CMD_MOVE);
	assert_true(c->uid);
	imap_command_free(&c);

	c = parse_ok("a UID EXPUNGE 3000:3002\r\n");
	assert_int_equal(c->id, IMAP_CMD_EXPUNGE);
	assert_true(c->uid);
	assert_int_equal(imap_seqset_count(c->u.uid_expunge, 5000), 3);
	imap_command_free(&c);

	parse_err("a UID EXPUNGE\r\n", IMAP_ERR_SYNTAX, "a", "Missing UID set");
	parse_err("a EXPUNGE 1\r\n", IMAP_ERR_SYNTAX, "a", "Unexpected extra arguments");
	parse_err("a COPY 1:x Trash\r\n", IMAP_ERR_BAD_SEQSET, "a", "Invalid sequence set");
	parse_err("a COPY $ Trash\r\n", IMAP_ERR_BAD_SEQSET, "a", "SEARCHRES");
	parse_err("a COPY 4294967296 Trash\r\n", IMAP_ERR_BAD_SEQSET, "a", "too large");
	parse_err("a COPY 1\r\n", IMAP_ERR_SYNTAX, "a", "Missing mailbox name");
}

/* ---- FETCH ------------------------------------------------------------- */

static void test_fetch_macros(void **state)
{
	struct imap_command *c = parse_ok("a FETCH 1 ALL\r\n");
	assert_int_equal(c->u.fetch.items, IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE |
						   IMAP_FETCH_RFC822_SIZE | IMAP_FETCH_ENVELOPE);
	imap_command_free(&c);
	c = parse_ok("a FETCH 1 fast\r\n");
	assert_int_equal(c->u.fetch.items,
			 IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE);
	imap_command_free(&c);
	c = parse_ok("a FETCH 1:* FULL\r\n");
	assert_int_equal(c->u.fetch.items, IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE |
						   IMAP_FETCH_RFC822_SIZE | IMAP_FETCH_ENVELOPE |
						   IMAP_FETCH_BODY);
	imap_command_free(&c);
	c = parse_ok("a UID FETCH 1 FLAGS\r\n");
	assert_int_equal(c->u.fetch.items, IMAP_FETCH_FLAGS | IMAP_FETCH_UID);
	imap_command_free(&c);

	parse_err("a FETCH 1 (ALL)\r\n", IMAP_ERR_SYNTAX, "a", "Unknown FETCH attribute ALL");
	parse_err("a FETCH 1 ALL FLAGS\r\n", IMAP_ERR_SYNTAX, "a", NULL);
}

static void test_fetch_simple(void **state)
{
	struct imap_command *c =
		parse_ok("a FETCH 2:4 (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE "
			 "UID MODSEQ RFC822 RFC822.HEADER RFC822.TEXT)\r\n");
	assert_int_equal(c->u.fetch.items, 0x7ff);
	assert_int_equal(c->u.fetch.n_bodies, 0);
	imap_command_free(&c);

	c = parse_ok("a FETCH 1 body\r\n");
	assert_int_equal(c->u.fetch.items, IMAP_FETCH_BODY);
	imap_command_free(&c);

	parse_err("a FETCH 1 (FLAGS\r\n", IMAP_ERR_SYNTAX, "a", "Missing ')' in FETCH attribute list");
	parse_err("a FETCH 1 (FLAGS FOO)\r\n", IMAP_ERR_SYNTAX, "a", "Unknown FETCH attribute FOO");
	parse_err("a FETCH 1 ()\r\n", IMAP_ERR_SYNTAX, "a", "Empty FETCH attribute list");
	parse_err("a FETCH 1\r\n", IMAP_ERR_SYNTAX, "a", "Missing FETCH attributes");
	parse_err("a FETCH FLAGS\r\n", IMAP_ERR_BAD_SEQSET, "a", NULL);
	parse_err("a FETCH 1 BODY.PEEK\r\n", IMAP_ERR_SYNTAX, "a", "needs a section");
	parse_err("a FETCH 1 FLAGS[]\r\n", IMAP_ERR_SYNTAX, "a", NULL);
	parse_err("a FETCH 1 (FLAGS  UID)\r\n", IMAP_ERR_SYNTAX, "a", NULL);
}

static const struct imap_fetch_body *one_body(struct imap_command *c)
{
	assert_int_equal(c->u.fetch.n_bodies, 1);
	return &c->u.fetch.bodies[0];
}

static void test_fetch_sections(void **state)
{
	struct imap_command *c = parse_ok("a FETCH 1 BODY[]\r\n");
	const struct imap_fetch_body *b = one_body(c);
	assert_false(b->peek);
	assert_int_equal(b->kind, IMAP_SECTION_ALL);
	assert_int_equal(b->n_part, 0);
	assert_str(&b->section, "");
	assert_false(b->partial);
	imap_command_free(&c);

	c = parse_ok("a FETCH 1 BODY.PEEK[HEADER]<0.1024>\r\n");
	b = one_body(c);
	assert_true(b->peek);
	assert_int_equal(b->kind, IMAP_SECTION_HEADER);
	assert_str(&b->section, "HEADER");
	assert_true(b->partial);
	assert_int_equal(b->partial_start, 0);
	assert_int_equal(b->partial_count, 1024);
	imap_command_free(&c);

	c = parse_ok("a FETCH 1 (BODY[1.2.3] body.peek[1.2.mime] BODY[2.text] BODY[TEXT]<10.4294967295>)\r\n");
	assert_int_equal(c->u.fetch.n_bodies, 4);
	b = &c->u.fetch.bodies[0];
	assert_int_equal(b->n_part, 3);
	assert_int_equal(b->part[0], 1);
	assert_int_equal(b->part[2], 3);
	assert_int_equal(b->kind, IMAP_SECTION_ALL);
	assert_str(&b->section, "1.2.3");
	b = &c->u.fetch.bodies[1];
	assert_true(b->peek);
	assert_int_equal(b->kind, IMAP_SECTION_MIME);
	assert_str(&b->section, "1.2.MIME");
	b = &c->u.fetch.bodies[2];
	assert_int_equal(b->kind, IMAP_SECTION_TEXT);
	assert_str(&b->section, "2.TEXT");
	b = &c->u.fetch.bodies[3];
	assert_int_equal(b->n_part, 0);
	assert_int_equal(b->partial_start, 10);
	assert_int_equal(b->partial_count, 4294967295u);
	imap_command_free(&c);

	c = parse_ok("a FETCH 1 BODY.PEEK[HEADER.FIELDS (From To \"Message-ID\" {5}\r\nX-A]b)]\r\n");
	b = one_body(c);
	assert_int_equal(b->kind, IMAP_SECTION_HEADER_FIELDS);
	assert_int_equal(b->n_fields, 4);
	assert_str(&b->fields[0], "From");
	assert_str(&b->fields[2], "Message-ID");
	assert_str(&b->fields[3], "X-A]b");
	assert_str(&b->section, "HEADER.FIELDS (From To Message-ID \"X-A]b\")");
	imap_command_free(&c);

	c = parse_ok("a FETCH 1 BODY[1.HEADER.FIELDS.NOT (received)]\r\n");
	b = one_body(c);
	assert_int_equal(b->kind, IMAP_SECTION_HEADER_FIELDS_NOT);
	assert_int_equal(b->n_part, 1);
	assert_str(&b->section, "1.HEADER.FIELDS.NOT (received)");
	imap_command_free(&c);

	parse_err("a FETCH 1 BODY[MIME]\r\n", IMAP_ERR_SYNTAX, "a", "MIME section needs a part");
	parse_err("a FETCH 1 BODY[0]\r\n", IMAP_ERR_SYNTAX, "a", "must not be 0");
	parse_err("a FETCH 1 BODY[1.]\r\n", IMAP_ERR_SYNTAX, "a", "Invalid section");
	parse_err("a FETCH 1 BODY[HEADER\r\n", IMAP_ERR_SYNTAX, "a", "Missing ']'");
	parse_err("a FETCH 1 BODY[FOO]\r\n", IMAP_ERR_SYNTAX, "a", "Invalid section FOO");
	parse_err("a FETCH 1 BODY[HEADER.FIELDS]\r\n", IMAP_ERR_SYNTAX, "a",
		  "header field list");
	parse_err("a FETCH 1 BODY[HEADER.FIELDS", IMAP_ERR_SYNTAX, "a",
		  "Missing header field list");
	parse_err("a FETCH 1 BODY[HEADER.FIELDS ()]\r\n", IMAP_ERR_SYNTAX, "a", NULL);
	parse_err("a FETCH 1 BODY[HEADER.FIELDS (a:b)]\r\n", IMAP_ERR_SYNTAX, "a",
		  "Invalid header field name");
	parse_err("a FETCH 1 BODY[HEADER.FIELDS (From]\r\n", IMAP_ERR_SYNTAX, "a", "Missing ')'");
	parse_err("a FETCH 1 BODY[]<0>\r\n", IMAP_ERR_SYNTAX, "a", "Missing '.'");
	parse_err("a FETCH 1 BODY[]<0.0>\r\n", IMAP_ERR_SYNTAX, "a", "must not be 0");
	parse_err("a FETCH 1 BODY[]<0.5\r\n", IMAP_ERR_SYNTAX, "a", "Missing '>'");
	parse_err("a FETCH 1 BODY[]<4294967296.5>\r\n", IMAP_ERR_SYNTAX, "a", "too large");
	parse_err("a FETCH 1 BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24."
		  "25.26.27.28.29.30.31.32.33.34.35.36.37.38.39.40.41.42.43.44.45.46.47.48.49.50."
		  "51.52.53.54.55.56.57.58.59.60.61.62.63.64.65]\r\n",
		  IMAP_ERR_SYNTAX, "a", "too deep");
}

static void test_fetch_modifiers(void **state)
{
	struct imap_command *c = parse_ok("a FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n");
	assert_true(c->u.fetch.has_changedsince);
	assert_int_equal(c->u.fetch.changedsince, 12345);
	assert_int_equal(c->u.fetch.items, IMAP_FETCH_FLAGS | IMAP_FETCH_MODSEQ);
	assert_false(c->u.fetch.vanished);
	imap_command_free(&c);

	c = parse_ok("a UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n");
	assert_true(c->u.fetch.vanished);
	assert_int_equal(c->u.fetch.items, IMAP_FETCH_FLAGS | IMAP_FETCH_MODSEQ | IMAP_FETCH_UID);
	imap_command_free(&c);

	parse_err("a FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n", IMAP_ERR_SYNTAX, "a",
		  "VANISHED needs UID FETCH");
	parse_err("a UID FETCH 1 (FLAGS) (VANISHED)\r\n", IMAP_ERR_SYNTAX, "a", "VANISHED");
	parse_err("a FETCH 1 FLAGS (FOO)\r\n", IMAP_ERR_SYNTAX, "a", "Unknown FETCH modifier");
	parse_err("a FETCH 1 FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)\r\n", IMAP_ERR_SYNTAX, "a",
		  "twice");
	parse_err("a FETCH 1 FLAGS (CHANGEDSINCE 1\r\n", IMAP_ERR_SYNTAX, "a",
		  "Missing ')' in FETCH modifiers");
	parse_err("a FETCH 1 FLAGS X\r\n", IMAP_ERR_SYNTAX, "a", "Unexpected extra arguments");
	parse_err("a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)\r\n", IMAP_ERR_SYNTAX, "a",
		  "too large");
}

/* ---- ID, ENABLE, COMPRESS, QUOTA ----------------------------------------- */

static void test_misc_commands(void **state)
{
	struct imap_command *c = parse_ok("a ID NIL\r\n");
	assert_int_equal(c->id, IMAP_CMD_ID);
	assert_int_equal(c->u.id.n_pairs, 0);
	imap_command_free(&c);

	c = parse_ok("a ID (\"name\" \"Thunderbird\" \"version\" NIL)\r\n");
	assert_int_equal(c->u.id.n_pairs, 2);
	assert_str(&c->u.id.pairs[0].name, "name");
	assert_str(&c->u.id.pairs[0].value, "Thunderbird");
	assert_true(c->u.id.pairs[1].value_nil);
	imap_command_free(&c);

	c = parse_ok("a ID ()\r\n");
	assert_int_equal(c->u.id.n_pairs, 0);
	imap_command_free(&c);

	parse_err("a ID (\"name\")\r\n", IMAP_ERR_SYNTAX, "a", "ID field value");
	parse_err("a ID (\"name\"\r\n", IMAP_ERR_SYNTAX, "a", "Missing ID field value");
	parse_err("a ID (name \"x\")\r\n", IMAP_ERR_SYNTAX, "a", "expected a string");
	parse_err("a ID FOO\r\n", IMAP_ERR_SYNTAX, "a", "NIL");
	parse_err("a ID (\"0123456789012345678901234567890\" NIL)\r\n", IMAP_ERR_SYNTAX, "a",
		  "too long");
	char many[2048];
	size_t o = (size_t)sprintf(many, "a ID (");
	for (int i = 0; i < 31; i++)
		o += (size_t)sprintf(many + o, "%s\"k%d\" \"v\"", i ? " " : "", i);
	sprintf(many + o, ")\r\n");
	parse_err(many, IMAP_ERR_SYNTAX, "a", "Too many ID fields");

	c = parse_ok("a ENABLE condstore QRESYNC X-FOO utf8=accept\r\n");
	assert_int_equal(c->id, IMAP_CMD_ENABLE);
	assert_int_equal(c->u.enable.known,
			 IMAP_ENABLE_CONDSTORE | IMAP_ENABLE_QRESYNC | IMAP_ENABLE_UTF8_ACCEPT);
	assert_int_equal(c->u.enable.n_caps, 4);
	assert_str(&c->u.enable.caps[0], "CONDSTORE");
	assert_str(&c->u.enable.caps[2], "X-FOO");
	imap_command_free(&c);
	parse_err("a ENABLE\r\n", IMAP_ERR_SYNTAX, "a", "Missing capability");

	c = parse_ok("a COMPRESS deflate\r\n");
	assert_int_equal(c->id, IMAP_CMD_COMPRESS);
	assert_true(c->u.compress.deflate);
	assert_str(&c->u.compress.mech, "DEFLATE");
	imap_command_free(&c);
	c = parse_ok("a COMPRESS LZ4\r\n");
	assert_false(c->u.compress.deflate);
	imap_command_free(&c);

	c = parse_ok("a GETQUOTA \"\"\r\n");
	assert_int_equal(c->id, IMAP_CMD_GETQUOTA);
	assert_str(&c->u.quota_root, "");
	imap_command_free(&c);
}

static void test_nesting(void **state)
{
	char buf[1024];

	lim.max_depth = 3;
	struct imap_command *c =
		parse_ok("a SELECT INBOX (QRESYNC (1 2 1:100 (1:3 10,20,30)))\r\n");
	imap_command_free(&c);
	lim.max_depth = 2;
	parse_err("a SELECT INBOX (QRESYNC (1 2 1:100 (1:3 10,20,30)))\r\n", IMAP_ERR_NESTING, "a",
		  "Too deeply nested");

	/* deep search groups */
	lim.max_depth = 10;
	strcpy(buf, "a SEARCH ");
	for (int i = 0; i < 10; i++)
		strcat(buf, "(");
	strcat(buf, "ALL");
	for (int i = 0; i < 10; i++)
		strcat(buf, ")");
	strcat(buf, "\r\n");
	c = parse_ok(buf);
	imap_command_free(&c);
	lim.max_depth = 9;
	parse_err(buf, IMAP_ERR_NESTING, "a", NULL);

	/* NOT chains count too */
	strcpy(buf, "a SEARCH ");
	for (int i = 0; i < 200; i++)
		strcat(buf, "NOT ");
	strcat(buf, "SEEN\r\n");
	parse_err(buf, IMAP_ERR_NESTING, "a", NULL);
	imap_limits_default(&lim);
}

/* ---- the reader --------------------------------------------------------- */

struct feed_result {
	int commands, continues, errors;
	struct imap_command *cmds[8];
	struct imap_error errs[8];
	size_t consumed;
};

/* Feed s in chunks of `step` bytes (0 = all at once); collect results.
 * Stops at a fatal error. */
static void feed(struct imap_reader *r, const char *s, size_t len, size_t step,
		 struct feed_result *fr)
{
	size_t pos = 0;

	memset(fr, 0, sizeof(*fr));
	while (pos < len) {
		size_t n = step == 0 ? len - pos : (len - pos < step ? len - pos : step);
		size_t off = 0;
		while (off < n) {
			size_t used;
			enum imap_read_status st = imap_reader_feed(r, s + pos + off, n - off, &used);
			assert_true(used <= n - off);
			off += used;
			if (st == IMAP_READ_MORE) {
				assert_int_equal(off, n);
				break;
			}
			if (st == IMAP_READ_CONTINUE) {
				fr->continues++;
				continue;
			}
			if (st == IMAP_READ_COMMAND) {
				struct imap_command *c;
				struct imap_error e;
				assert_int_equal(imap_reader_buffered(r) > 0, 1);
				if (imap_reader_parse(r, &c, &e) == IMAP_OK) {
					assert_true(fr->commands < 8);
					fr->cmds[fr->commands++] = c;
				} else {
					assert_true(fr->errors < 8);
					fr->errs[fr->errors++] = e;
				}
				assert_int_equal(imap_reader_buffered(r), 0);
				continue;
			}
			assert_int_equal(st, IMAP_READ_ERROR);
			assert_true(fr->errors < 8);
			fr->errs[fr->errors++] = *imap_reader_error(r);
			if (imap_reader_error(r)->fatal) {
				fr->consumed = pos + off;
				return;
			}
		}
		pos += n;
	}
	fr->consumed = pos;
}

static void free_results(struct feed_result *fr)
{
	for (int i = 0; i < fr->commands; i++)
		imap_command_free(&fr->cmds[i]);
}

static void test_reader_pipeline(void **state)
{
	static const char in[] = "\r\na1 NOOP\r\na2 LOGIN {3}\r\nbob {4+}\r\npass\r\n"
				 "a3 APPEND INBOX (\\Seen) {5}\r\nhello\r\na4 LOGOUT\n";
	size_t steps[] = { 0, 1, 2, 3, 7, 13 };

	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		struct imap_reader *r = imap_reader_new(&lim);
		struct feed_result fr;
		feed(r, in, sizeof(in) - 1, steps[k], &fr);
		assert_int_equal(fr.errors, 0);
		assert_int_equal(fr.commands, 4);
		assert_int_equal(fr.cmds[0]->id, IMAP_CMD_NOOP);
		assert_int_equal(fr.cmds[1]->id, IMAP_CMD_LOGIN);
		assert_str(&fr.cmds[1]->u.login.user, "bob");
		assert_str(&fr.cmds[1]->u.login.pass, "pass");
		assert_int_equal(fr.cmds[2]->id, IMAP_CMD_APPEND);
		assert_int_equal(fr.cmds[2]->u.append.msg_len, 5);
		assert_memory_equal(fr.cmds[2]->u.append.msg, "hello", 5);
		assert_int_equal(fr.cmds[3]->id, IMAP_CMD_LOGOUT);
		/* one continuation per sync literal when fed in pieces that end
		 * at the marker; none when everything came at once */
		if (steps[k] == 0)
			assert_int_equal(fr.continues, 0);
		if (steps[k] == 1)
			assert_int_equal(fr.continues, 2);
		assert_int_equal(imap_reader_buffered(r), 0);
		free_results(&fr);
		imap_reader_destroy(&r);
		assert_null(r);
	}
	imap_reader_destroy(NULL);
}

static void test_reader_continue_points(void **state)
{
	struct imap_reader *r = imap_reader_new(&lim);
	size_t used;
	const char *l1 = "a LOGIN {3}\r\n";

	/* stops right after the marker line and asks for "+" */
	assert_int_equal(imap_reader_feed(r, l1, strlen(l1), &used), IMAP_READ_CONTINUE);
	assert_int_equal(used, strlen(l1));
	assert_int_equal(imap_reader_feed(r, "bo", 2, &used), IMAP_READ_MORE);
	assert_int_equal(imap_reader_feed(r, "b {0}\r\n", 7, &used), IMAP_READ_CONTINUE);
	assert_int_equal(used, 7);
	/* {0}: nothing to wait for but the client still waits for "+" */
	const char *rest = "\r\nb NOOP\r\n";
	assert_int_equal(imap_reader_feed(r, rest, strlen(rest), &used), IMAP_READ_COMMAND);
	assert_int_equal(used, 2);	/* stops after the command; b NOOP stays */
	/* feeding again before parsing returns COMMAND, consuming nothing */
	assert_int_equal(imap_reader_feed(r, rest + 2, strlen(rest) - 2, &used), IMAP_READ_COMMAND);
	assert_int_equal(used, 0);
	struct imap_command *c;
	struct imap_error e;
	assert_int_equal(imap_reader_parse(r, &c, &e), IMAP_OK);
	assert_str(&c->u.login.user, "bob");
	assert_str(&c->u.login.pass, "");
	imap_command_free(&c);
	assert_int_equal(imap_reader_feed(r, rest + 2, strlen(rest) - 2, &used), IMAP_READ_COMMAND);
	assert_int_equal(imap_reader_parse(r, &c, &e), IMAP_OK);
	assert_int_equal(c->id, IMAP_CMD_NOOP);
	assert_string_equal(c->tag, "b");
	imap_command_free(&c);

	/* non-sync literal: never a continuation */
	const char *ns = "c LOGIN {3+}\r\n";
	assert_int_equal(imap_reader_feed(r, ns, strlen(ns), &used), IMAP_READ_MORE);
	assert_int_equal(imap_reader_feed(r, "bob x\r\n", 7, &used), IMAP_READ_COMMAND);
	assert_int_equal(imap_reader_parse(r, &c, &e), IMAP_OK);
	imap_command_free(&c);

	/* a sync literal whose data already arrived: no continuation */
	const char *pre = "d LOGIN {3}\r\nbob x\r\n";
	assert_int_equal(imap_reader_feed(r, pre, strlen(pre), &used), IMAP_READ_COMMAND);
	assert_int_equal(imap_reader_parse(r, &c, &e), IMAP_OK);
	imap_command_free(&c);
	/* {N} inside a quoted string is not a literal */
	const char *q = "e LOGIN \"{3}\r\n";
	assert_int_equal(imap_reader_feed(r, q, strlen(q), &used), IMAP_READ_COMMAND);
	assert_int_equal(imap_reader_parse(r, &c, &e), IMAP_ERR_SYNTAX);
	assert_non_null(strstr(e.text, "Unterminated"));
	/* ... but after a closed quote it is */
	const char *q2 = "f LOGIN \"a\\\"b\" {3}\r\n";
	assert_int_equal(imap_reader_feed(r, q2, strlen(q2), &used), IMAP_READ_CONTINUE);
	assert_int_equal(imap_reader_feed(r, "xyz\r\n", 5, &used), IMAP_READ_COMMAND);
	assert_int_equal(imap_reader_parse(r, &c, &e), IMAP_OK);
	assert_str(&c->u.login.user, "a\"b");
	assert_str(&c->u.login.pass, "xyz");
	imap_command_free(&c);
	imap_reader_destroy(&r);
}

static void test_reader_literal_limits(void **state)
{
	struct imap_limits l;
	imap_limits_default(&l);
	l.max_literal = 10;
	l.max_append_literal = 100;
	l.max_skip = 50;
	struct imap_reader *r = imap_reader_new(&l);
	size_t used;
	const struct imap_error *e;
	struct imap_command *c;
	struct imap_error pe;

	/* sync literal over the limit: refused at once, nothing read */
	const char *s1 = "a1 LOGIN {11}\r\n";
	assert_int_equal(imap_reader_feed(r, s1, strlen(s1), &used), IMAP_READ_ERROR);
	assert_int_equal(used, strlen(s1));
	e = imap_reader_error(r);
	assert_int_equal(e->code, IMAP_ERR_LITERAL_TOO_BIG);
	assert_string_equal(e->tag, "a1");
	assert_false(e->fatal);
	assert_false(e->no);
	assert_int_equal(imap_reader_buffered(r), 0);
	/* exactly at the limit is fine */
	const char *s2 = "a2 LOGIN {10}\r\n0123456789 x\r\n";
	assert_int_equal(imap_reader_feed(r, s2, strlen(s2), &used), IMAP_READ_COMMAND);
	assert_int_equal(imap_reader_parse(r, &c, &pe), IMAP_OK);
	imap_command_free(&c);

	/* APPEND message: its own limit, answered NO [TOOBIG] */
	const char *s3 = "a3 APPEND INBOX {101}\r\n";
	assert_int_equal(imap_reader_feed(r, s3, strlen(s3), &used), IMAP_READ_ERROR);
	e = imap_reader_error(r);
	assert_int_equal(e->code, IMAP_ERR_LITERAL_TOO_BIG);
	assert_true(e->no);
	assert_string_equal(e->resp_code, "TOOBIG");
	assert_true(e->cmd_known);
	assert_int_equal(e->cmd, IMAP_CMD_APPEND);
	char msg[200];
	memset(msg, 'x', sizeof(msg));
	size_t o = (size_t)sprintf(msg, "a4 APPEND INBOX {100}\r\n");
	memset(msg + o, 'm', 100);
	memcpy(msg + o + 100, "\r\n", 2);
	assert_int_equal(imap_reader_feed(r, msg, o + 102, &used), IMAP_READ_COMMAND);
	assert_int_equal(imap_reader_parse(r, &c, &pe), IMAP_OK);
	assert_int_equal(c->u.append.msg_len, 100);
	imap_command_free(&c);

	/* non-sync literal over the limit: skipped, then the error */
	const char *s5 = "a5 LOGIN {20+}\r\n01234567890123456789 pass\r\na6 NOOP\r\n";
	struct feed_result fr;
	for (size_t step = 0; step < 4; step++) {
		feed(r, s5, strlen(s5), step, &fr);
		assert_int_equal(fr.errors, 1);
		assert_int_equal(fr.errs[0].code, IMAP_ERR_LITERAL_TOO_BIG);
		assert_string_equal(fr.errs[0].tag, "a5");
		assert_false(fr.errs[0].fatal);
		assert_int_equal(fr.commands, 1);
		assert_int_equal(fr.cmds[0]->id, IMAP_CMD_NOOP);
		free_results(&fr);
	}
	/* ... and a later sync literal in the discarded command ends it */
	const char *s6 = "a7 LOGIN {20+}\r\n01234567890123456789 {3}\r\n";
	feed(r, s6, strlen(s6), 0, &fr);
	assert_int_equal(fr.errors, 1);
	assert_int_equal(fr.commands, 0);
	assert_int_equal(imap_reader_buffered(r), 0);
	free_results(&fr);

	/* non-sync over max_skip: fatal */
	const char *s7 = "a8 LOGIN {51+}\r\n";
	assert_int_equal(imap_reader_feed(r, s7, strlen(s7), &used), IMAP_READ_ERROR);
	e = imap_reader_error(r);
	assert_true(e->fatal);
	assert_string_equal(e->tag, "a8");
	assert_int_equal(imap_reader_feed(r, "x", 1, &used), IMAP_READ_ERROR);
	assert_int_equal(used, 0);
	imap_reader_destroy(&r);

	/* a literal length that overflows 64 bits */
	r = imap_reader_new(&l);
	const char *s8 = "a9 LOGIN {99999999999999999999999}\r\n";
	assert_int_equal(imap_reader_feed(r, s8, strlen(s8), &used), IMAP_READ_ERROR);
	assert_false(imap_reader_error(r)->fatal);
	const char *s9 = "b1 LOGIN {99999999999999999999999+}\r\n";
	assert_int_equal(imap_reader_feed(r, s9, strlen(s9), &used), IMAP_READ_ERROR);
	assert_true(imap_reader_error(r)->fatal);
	imap_reader_destroy(&r);
}

static void test_reader_line_limits(void **state)
{
	struct imap_limits l;
	imap_limits_default(&l);
	l.max_line = 40;
	l.max_command = 100;
	l.max_literal = 1000;
	struct imap_reader *r = imap_reader_new(&l);
	struct feed_result fr;

	/* exactly max_line bytes (CRLF included) is fine */
	char line[64];
	memset(line, 'x', sizeof(line));
	memcpy(line, "a SEARCH TEXT ", 14);
	memcpy(line + 38, "\r\n", 2);
	feed(r, line, 40, 0, &fr);
	assert_int_equal(fr.commands, 1);
	assert_int_equal(fr.errors, 0);
	free_results(&fr);
	/* one more byte: thrown away to its end, then the error */
	memcpy(line + 38, "x\r\nb NOOP\r\n", 11);
	for (size_t step = 0; step < 3; step++) {
		feed(r, line, 49, step, &fr);
		assert_int_equal(fr.errors, 1);
		assert_int_equal(fr.errs[0].code, IMAP_ERR_LINE_TOO_LONG);
		assert_string_equal(fr.errs[0].tag, "a");
		assert_int_equal(fr.commands, 1);
		assert_int_equal(fr.cmds[0]->id, IMAP_CMD_NOOP);
		free_results(&fr);
	}
	/* line parts of one command add up; literals do not count */
	const char *s = "a LOGIN {50}\r\n01234567890123456789012345678901234567890123456789 "
			"{2}\r\nxy\r\n";
	feed(r, s, strlen(s), 0, &fr);
	assert_int_equal(fr.errors, 0);
	assert_int_equal(fr.commands, 1);
	free_results(&fr);
	/* ... but they count towards max_command */
	const char *t = "a LOGIN {60}\r\n012345678901234567890123456789012345678901234567890123456789 "
			"{40}\r\n";
	feed(r, t, strlen(t), 0, &fr);
	assert_int_equal(fr.errors, 1);
	assert_int_equal(fr.errs[0].code, IMAP_ERR_COMMAND_TOO_BIG);
	free_results(&fr);
	imap_reader_destroy(&r);

	/* limits changed mid-command apply from the next command */
	imap_limits_default(&l);
	r = imap_reader_new(&l);
	size_t used;
	assert_int_equal(imap_reader_feed(r, "a NO", 4, &used), IMAP_READ_MORE);
	struct imap_limits small = l;
	small.max_line = 5;
	imap_reader_set_limits(r, &small);
	feed(r, "OP\r\nb NOOP\r\n", 12, 0, &fr);
	assert_int_equal(fr.commands, 1);
	assert_int_equal(fr.errors, 1);
	assert_int_equal(fr.errs[0].code, IMAP_ERR_LINE_TOO_LONG);
	free_results(&fr);
	imap_reader_destroy(&r);
}

static void test_reader_lines(void **state)
{
	struct imap_reader *r = imap_reader_new(&lim);
	size_t used;
	const char *line;
	size_t len;

	assert_int_equal(imap_reader_feed_line(r, "AGJv", 4, &used, &line, &len), IMAP_READ_MORE);
	assert_int_equal(imap_reader_feed_line(r, "Yg==\r\nDONE\r\n", 12, &used, &line, &len),
			 IMAP_READ_LINE);
	assert_int_equal(used, 6);
	assert_int_equal(len, 8);
	assert_memory_equal(line, "AGJvYg==", 8);
	assert_int_equal(imap_reader_feed_line(r, "DONE\r\n", 6, &used, &line, &len),
			 IMAP_READ_LINE);
	assert_true(imap_is_done_line(line, len));
	assert_int_equal(imap_reader_feed_line(r, "*\n", 2, &used, &line, &len), IMAP_READ_LINE);
	assert_int_equal(len, 1);
	/* then back to commands */
	assert_int_equal(imap_reader_feed(r, "a NOOP\r\n", 8, &used), IMAP_READ_COMMAND);
	struct imap_command *c;
	struct imap_error e;
	assert_int_equal(imap_reader_parse(r, &c, &e), IMAP_OK);
	imap_command_free(&c);
	imap_reader_destroy(&r);

	struct imap_limits l;
	imap_limits_default(&l);
	l.max_line = 8;
	r = imap_reader_new(&l);
	assert_int_equal(imap_reader_feed_line(r, "123456789", 9, &used, &line, &len), IMAP_READ_MORE);
	assert_int_equal(imap_reader_feed_line(r, "\r\nDONE\r\n", 8, &used, &line, &len),
			 IMAP_READ_ERROR);
	assert_int_equal(imap_reader_error(r)->code, IMAP_ERR_LINE_TOO_LONG);
	assert_int_equal(used, 2);
	assert_int_equal(imap_reader_feed_line(r, "DONE\r\n", 6, &used, &line, &len),
			 IMAP_READ_LINE);
	imap_reader_destroy(&r);

	assert_true(imap_is_done_line("DONE", 4));
	assert_true(imap_is_done_line("done\r\n", 6));
	assert_true(imap_is_done_line("DoNe\n", 5));
	assert_false(imap_is_done_line("DONE ", 5));
	assert_false(imap_is_done_line("DONEX", 5));
	assert_false(imap_is_done_line("", 0));
}

/* Every prefix of a valid command stream, then the rest: the same results
 * as feeding it whole (resumability). */
static void test_reader_split_everywhere(void **state)
{
	static const char in[] =
		"a1 SELECT \"INBOX\" (QRESYNC (1 2))\r\n"
		"a2 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From {7}\r\nSubject)]) "
		"(CHANGEDSINCE 5 VANISHED)\r\n"
		"a3 SEARCH CHARSET UTF-8 OR SUBJECT {4+}\r\n\xc3\xa9t\xc3 FROM \"x\"\r\n"
		"a4 APPEND Drafts (\\Draft) ~{6}\r\na\0b\r\nc\r\n";
	size_t n = sizeof(in) - 1;

	for (size_t cut = 0; cut <= n; cut++) {
		struct imap_reader *r = imap_reader_new(&lim);
		struct feed_result a, b;
		feed(r, in, cut, 0, &a);
		feed(r, in + cut, n - cut, 0, &b);
		assert_int_equal(a.errors + b.errors, 0);
		assert_int_equal(a.commands + b.commands, 4);
		free_results(&a);
		free_results(&b);
		imap_reader_destroy(&r);
	}
}

static void test_error_fields(void **state)
{
	struct imap_command *c;
	struct imap_error e;
	const char *s = "x1 UID FETCH 1 (FLAGS\r\n";

	assert_int_equal(imap_parse_command(s, strlen(s), &lim, &c, &e), IMAP_ERR_SYNTAX);
	assert_string_equal(e.tag, "x1");
	assert_true(e.cmd_known);
	assert_int_equal(e.cmd, IMAP_CMD_FETCH);
	assert_true(e.uid);
	assert_false(e.no);
	assert_null(e.resp_code);
	assert_string_equal(imap_error_status(&e), "BAD");
	assert_string_equal(e.text, "Missing ')' in FETCH attribute list");

	s = "x2 SEARCH CHARSET KOI8-R TEXT x\r\n";
	assert_int_equal(imap_parse_command(s, strlen(s), &lim, &c, &e), IMAP_ERR_BAD_CHARSET);
	assert_true(e.no);
	assert_string_equal(e.resp_code, "BADCHARSET (US-ASCII UTF-8)");
}

/* ---- UTF8=ACCEPT (RFC 6855) ------------------------------------------- */

static void test_utf8_accept(void **state)
{
	struct imap_command *c;
	struct imap_error e;

	/* not enabled: the UTF8 APPEND form is refused, CHARSET is fine,
	 * 8-bit in a quoted string is tolerated as before */
	parse_err("a APPEND x UTF8 (~{1}\r\nx)\r\n", IMAP_ERR_SYNTAX, "a",
		  "needs ENABLE UTF8=ACCEPT");
	c = parse_ok("a SEARCH CHARSET UTF-8 SUBJECT caf\xc3\xa9\r\n");
	imap_command_free(&c);
	c = parse_ok("a SEARCH SUBJECT \"\xe9t\xe9\"\r\n");
	imap_command_free(&c);

	lim.utf8_accept = true;
	/* append-data =/ "UTF8" SP "(" literal8 ")" */
	c = parse_ok("a APPEND INBOX (\\Seen) UTF8 (~{14}\r\nSubject: \xc3\xa9t\xc3\xa9)\r\n");
	assert_int_equal(c->id, IMAP_CMD_APPEND);
	assert_true(c->u.append.utf8);
	assert_true(c->u.append.literal8);
	assert_int_equal(c->u.append.flags.system, IMAP_FLAG_SEEN);
	assert_int_equal(c->u.append.msg_len, 14);
	assert_memory_equal(c->u.append.msg, "Subject: \xc3\xa9t\xc3\xa9", 14);
	imap_command_free(&c);
	c = parse_ok("a APPEND x \"17-Jul-1996 02:44:25 -0700\" utf8 (~{2+}\r\nab)\r\n");
	assert_true(c->u.append.utf8 && c->u.append.has_date);
	imap_command_free(&c);
	/* the plain forms still work and are not "utf8" */
	c = parse_ok("a APPEND x {2}\r\nab\r\n");
	assert_false(c->u.append.utf8);
	imap_command_free(&c);
	/* a NUL inside the literal8 is kept */
	const char l8[] = "a APPEND x UTF8 (~{3}\r\na\0b)\r\n";
	assert_int_equal(imap_parse_command(l8, sizeof(l8) - 1, &lim, &c, &e), IMAP_OK);
	assert_int_equal(c->u.append.msg_len, 3);
	imap_command_free(&c);
	parse_err("a APPEND x UTF8 ({1}\r\nx)\r\n", IMAP_ERR_SYNTAX, "a", "literal8");
	parse_err("a APPEND x UTF8 (~{1}\r\nx\r\n", IMAP_ERR_SYNTAX, "a", "Missing ')'");
	parse_err("a APPEND x UTF8 ~{1}\r\nx\r\n", IMAP_ERR_SYNTAX, "a", "Missing '('");
	parse_err("a APPEND x UTF8(~{1}\r\nx)\r\n", IMAP_ERR_SYNTAX, "a", "Expected space");
	parse_err("a APPEND x UTF9 (~{1}\r\nx)\r\n", IMAP_ERR_SYNTAX, "a", "must be a literal");
	parse_err("a APPEND x UTF8 (~{1}\r\nx) {1}\r\ny\r\n", IMAP_ERR_SYNTAX, "a",
		  "Only one message");
	/* the message limit applies to the literal8 */
	lim.max_literal = 4;
	lim.max_append_literal = 6;
	c = parse_ok("a APPEND x UTF8 (~{6}\r\n012345)\r\n");
	imap_command_free(&c);
	const char *big = "a APPEND x UTF8 (~{7}\r\n0123456)\r\n";
	assert_int_equal(imap_parse_command(big, strlen(big), &lim, &c, &e),
			 IMAP_ERR_LITERAL_TOO_BIG);
	assert_string_equal(e.resp_code, "TOOBIG");
	lim.max_literal = 64 * 1024;
	lim.max_append_literal = 64ull * 1024 * 1024;

	/* UTF-8 mailbox names, quoted or atoms, kept as sent */
	c = parse_ok("a SELECT \"\xc3\x89t\xc3\xa9 \\\"x\\\"\"\r\n");
	assert_str(&c->u.select.mailbox, "\xc3\x89t\xc3\xa9 \"x\"");
	imap_command_free(&c);
	c = parse_ok("a LIST \"\" \"\xc3\x89*\"\r\n");
	assert_str(&c->u.list.patterns[0], "\xc3\x89*");
	imap_command_free(&c);
	c = parse_ok("a RENAME &AMk- \xc3\x89t\xc3\xa9\r\n");
	assert_str(&c->u.rename.from, "&AMk-");	/* no mUTF-7 any more */
	imap_command_free(&c);
	/* uQUOTED-CHAR: a quoted string must be valid UTF-8 */
	parse_err("a SELECT \"\xc9t\xe9\"\r\n", IMAP_ERR_SYNTAX, "a", "Invalid UTF-8");
	parse_err("a SEARCH SUBJECT \"\xe9t\xe9\"\r\n", IMAP_ERR_SYNTAX, "a", "Invalid UTF-8");
	parse_err("a SEARCH SUBJECT \"\xed\xa0\x80\"\r\n", IMAP_ERR_SYNTAX, "a",
		  "Invalid UTF-8");	/* a surrogate */
	c = parse_ok("a SEARCH SUBJECT \"\xc3\xa9t\xc3\xa9\"\r\n");
	imap_command_free(&c);
	/* RFC 6855 3: no CHARSET once enabled */
	parse_err("a SEARCH CHARSET UTF-8 ALL\r\n", IMAP_ERR_SYNTAX, "a", "CHARSET");
	parse_err("a UID SEARCH RETURN (COUNT) CHARSET US-ASCII ALL\r\n", IMAP_ERR_SYNTAX, "a",
		  "CHARSET");
	/* Net-Unicode names: no C1 control, no U+2028 / U+2029 */
	parse_err("a CREATE \"a\xc2\x85z\"\r\n", IMAP_ERR_BAD_MAILBOX, "a", "control");
	parse_err("a CREATE \"a\xe2\x80\xa8z\"\r\n", IMAP_ERR_BAD_MAILBOX, "a", "separator");
	parse_err("a CREATE \"a\xe2\x80\xa9z\"\r\n", IMAP_ERR_BAD_MAILBOX, "a", "separator");
	/* U+00A0 and U+202A are fine */
	c = parse_ok("a CREATE \"a\xc2\xa0z\xe2\x80\xaa\"\r\n");
	imap_command_free(&c);
	lim.utf8_accept = false;
	/* the same names are refused when they come as modified UTF-7 */
	parse_err("a CREATE a&AIU-z\r\n", IMAP_ERR_BAD_MAILBOX, "a", "control");
	parse_err("a CREATE a&ICg-z\r\n", IMAP_ERR_BAD_MAILBOX, "a", "separator");
	c = parse_ok("a CREATE a&AKA-z\r\n");
	assert_str(&c->u.create.mailbox, "a\xc2\xa0z");
	imap_command_free(&c);
}

/* The reader finds the end of an APPEND UTF8 (~{n}) command and asks for
 * the continuation right after the marker, fed in any pieces. */
static void test_reader_utf8_append(void **state)
{
	static const char in[] =
		"a1 APPEND INBOX UTF8 (~{10}\r\nSubj: \xc3\xa9\xc3\xa9)\r\na2 NOOP\r\n";
	size_t steps[] = { 0, 1, 5 };

	lim.utf8_accept = true;
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		struct imap_reader *r = imap_reader_new(&lim);
		struct feed_result fr;
		feed(r, in, sizeof(in) - 1, steps[k], &fr);
		assert_int_equal(fr.errors, 0);
		assert_int_equal(fr.commands, 2);
		assert_true(fr.cmds[0]->u.append.utf8);
		assert_int_equal(fr.cmds[0]->u.append.msg_len, 10);
		assert_memory_equal(fr.cmds[0]->u.append.msg, "Subj: \xc3\xa9\xc3\xa9", 10);
		assert_int_equal(fr.cmds[1]->id, IMAP_CMD_NOOP);
		if (steps[k] == 1)
			assert_int_equal(fr.continues, 1);
		free_results(&fr);
		imap_reader_destroy(&r);
	}
	lim.utf8_accept = false;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_no_arg_commands, setup),
		cmocka_unit_test_setup(test_tags_and_names, setup),
		cmocka_unit_test_setup(test_login_strings, setup),
		cmocka_unit_test_setup(test_authenticate, setup),
		cmocka_unit_test_setup(test_mailbox_commands, setup),
		cmocka_unit_test_setup(test_select, setup),
		cmocka_unit_test_setup(test_create_rename, setup),
		cmocka_unit_test_setup(test_list, setup),
		cmocka_unit_test_setup(test_status, setup),
		cmocka_unit_test_setup(test_append, setup),
		cmocka_unit_test_setup(test_dates, setup),
		cmocka_unit_test_setup(test_store, setup),
		cmocka_unit_test_setup(test_copy_move_expunge, setup),
		cmocka_unit_test_setup(test_fetch_macros, setup),
		cmocka_unit_test_setup(test_fetch_simple, setup),
		cmocka_unit_test_setup(test_fetch_sections, setup),
		cmocka_unit_test_setup(test_fetch_modifiers, setup),
		cmocka_unit_test_setup(test_misc_commands, setup),
		cmocka_unit_test_setup(test_nesting, setup),
		cmocka_unit_test_setup(test_reader_pipeline, setup),
		cmocka_unit_test_setup(test_reader_continue_points, setup),
		cmocka_unit_test_setup(test_reader_literal_limits, setup),
		cmocka_unit_test_setup(test_reader_line_limits, setup),
		cmocka_unit_test_setup(test_reader_lines, setup),
		cmocka_unit_test_setup(test_reader_split_everywhere, setup),
		cmocka_unit_test_setup(test_error_fields, setup),
		cmocka_unit_test_setup(test_utf8_accept, setup),
		cmocka_unit_test_setup(test_reader_utf8_append, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
