/*
 * test_imap_body.c - ENVELOPE / BODY / BODYSTRUCTURE rendering and
 * BODY[section] location (imapproxy/imap_body.c).
 *
 * imap_body.c is compiled into this file with its allocator redirected, so
 * allocation failures can be injected; popnode/mime_*.c come from the
 * library.  The expected strings for the corpus in tests/unit/mime were
 * written per RFC 3501 and compared with what Dovecot 2.3 returns for the
 * same files; where they differ on purpose (see docs/mime.md: sizes of
 * bare-LF messages are octets as stored, an invalid Content-Type or a
 * multipart without usable boundary is text/plain, values are trimmed,
 * RFC 2231 names) the expectation follows our rules.
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

static void *t_realloc(void *p, size_t sz)
{
	if (fail_alloc_after == 0)
		return NULL;
	if (fail_alloc_after > 0)
		fail_alloc_after--;
	return realloc(p, sz);
}

#define realloc t_realloc
#include "../../imapproxy/imap_body.c"
#undef realloc

/* ---- helpers -------------------------------------------------------------- */

static const char *corpus_dir(void)
{
	const char *d = getenv("MIME_CORPUS");

	return d != NULL ? d : "tests/unit/mime";
}

static char *load(const char *name, size_t *len_r)
{
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s.eml", corpus_dir(), name);
	f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s (run from the repository root or set MIME_CORPUS)", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc(n > 0 ? (size_t)n : 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len_r = (size_t)n;
	return buf;
}

struct msg {
	char *data;		/* exact size, as given to mime_parse() */
	char *cstr;		/* the same, NUL-terminated, for expectations */
	size_t len;
	uint8_t *blob;
	size_t blob_len;
	struct mime_msg *m;
};

static void msg_from(struct msg *x, const char *s, size_t len)
{
	x->data = malloc(len ? len : 1);
	assert_non_null(x->data);
	memcpy(x->data, s, len);
	x->cstr = malloc(len + 1);
	assert_non_null(x->cstr);
	memcpy(x->cstr, s, len);
	x->cstr[len] = '\0';
	x->len = len;
	assert_int_equal(mime_parse(x->data, len, &x->blob, &x->blob_len), 0);
	assert_int_equal(mime_blob_decode(x->blob, x->blob_len, &x->m), 0);
}

static void msg_str(struct msg *x, const char *s)
{
	msg_from(x, s, strlen(s));
}

static void msg_load(struct msg *x, const char *name)
{
	size_t len;
	char *d = load(name, &len);

	msg_from(x, d, len);
	free(d);
}

static void msg_free(struct msg *x)
{
	mime_msg_free(&x->m);
	free(x->blob);
	free(x->data);
	free(x->cstr);
	memset(x, 0, sizeof(*x));
}

static void assert_buf(const struct imap_buf *b, const char *want, size_t want_len,
		       const char *what)
{
	assert_false(b->failed);
	if (b->len != want_len || (want_len > 0 && memcmp(b->data, want, want_len) != 0))
		fail_msg("%s:\n  got      [%.*s]\n  expected [%.*s]", what, (int)b->len,
			 b->data ? b->data : "", (int)want_len, want);
}

#define ASSERT_BUF(b, lit, what) assert_buf((b), (lit), sizeof(lit) - 1, (what))

/* ---- the corpus --------------------------------------------------------------- */

static const struct {
	const char *name;
	const char *envelope;
	const char *bodystructure;
	const char *body;
} corpus[] = {
	{
		"bare_lf",
		"(NIL \"bare LF line ends\" ((NIL NIL \"lf\" \"example.com\")) ((NIL NIL"
		" \"lf\" \"example.com\")) ((NIL NIL \"lf\" \"example.com\")) NIL NIL NIL"
		" NIL NIL)",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 17 1 NIL"
		" NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\""
		" 11 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"lf\") NIL NIL NIL)",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 17 1)(\"text\""
		" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0) \"alternative\")",
	},
	{
		"body_without_headers",
		"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 50 2 NIL"
		" NIL NIL NIL)",
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 50 2)",
	},
	{
		"boundary_inside_line",
		"(NIL \"boundary text inside lines\" NIL NIL NIL NIL NIL NIL NIL NIL)",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 92 1 NIL"
		" NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\""
		" 4 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"sep\") NIL NIL NIL)",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 92 1)(\"text\""
		" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 0) \"mixed\")",
	},
	{
		"digest",
		"(NIL \"digest\" NIL NIL NIL NIL NIL NIL NIL NIL)",
		"((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 53 (NIL \"first digested\""
		" ((NIL NIL \"one\" \"example.com\")) ((NIL NIL \"one\" \"example.com\"))"
		" ((NIL NIL \"one\" \"example.com\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\""
		" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL) 3 NIL"
		" NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\""
		" 13 0 NIL NIL NIL NIL) \"digest\" (\"boundary\" \"dg\") NIL NIL NIL)",
		"((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 53 (NIL \"first digested\""
		" ((NIL NIL \"one\" \"example.com\")) ((NIL NIL \"one\" \"example.com\"))"
		" ((NIL NIL \"one\" \"example.com\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\""
		" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0) 3)(\"text\" \"plain\""
		" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 13 0) \"digest\")",
	},
	{
		"empty_parts",
		"(NIL \"empty parts\" NIL NIL NIL NIL NIL NIL NIL NIL)",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL"
		" NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\""
		" 0 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL"
		" NIL \"7bit\" 0 0 NIL NIL NIL NIL)(\"application\" \"octet-stream\" NIL"
		" NIL NIL \"7bit\" 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"e\") NIL"
		" NIL NIL)",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)(\"text\""
		" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)(\"text\" \"plain\""
		" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)(\"application\" \"octet-stream\""
		" NIL NIL NIL \"7bit\" 0) \"mixed\")",
	},
	{
		"encoded_words",
		"(NIL \"=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?= =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=\""
		" ((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\" NIL \"keld\" \"dkuug.dk\"))"
		" ((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\" NIL \"keld\" \"dkuug.dk\"))"
		" ((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\" NIL \"keld\" \"dkuug.dk\"))"
		" ((\"=?US-ASCII?Q?Keith_Moore?=\" NIL \"moore\" \"cs.utk.edu\")) NIL NIL"
		" NIL NIL)",
		"((\"application\" \"octet-stream\" (\"name\" \"=?UTF-8?B?w6TDtsO8LmJpbg==?=\")"
		" NIL NIL \"7bit\" 4 NIL (\"attachment\" (\"filename\" \"=?UTF-8?B?w6TDtsO8LmJpbg==?=\"))"
		" NIL NIL) \"mixed\" (\"boundary\" \"ew\") NIL NIL NIL)",
		"((\"application\" \"octet-stream\" (\"name\" \"=?UTF-8?B?w6TDtsO8LmJpbg==?=\")"
		" NIL NIL \"7bit\" 4) \"mixed\")",
	},
	{
		"folded_headers",
		"(NIL \"a subject that is folded over\tthree lines\" ((\"Folded Name\" NIL"
		" \"folded\" \"example.com\")) ((\"Folded Name\" NIL \"folded\" \"example.com\"))"
		" ((\"Folded Name\" NIL \"folded\" \"example.com\")) ((NIL NIL \"first\""
		" \"example.com\")(NIL NIL \"second\" \"example.com\")(NIL NIL \"third\""
		" \"example.com\")) NIL NIL NIL \"<folded@example.com>\")",
		"(\"text\" \"plain\" (\"charset\" \"iso-8859-1\" \"format\" \"flowed\") NIL"
		" NIL \"7bit\" 6 1 NIL NIL NIL NIL)",
		"(\"text\" \"plain\" (\"charset\" \"iso-8859-1\" \"format\" \"flowed\") NIL"
		" NIL \"7bit\" 6 1)",
	},
	{
		"groups",
		"(\"Thu, 13 Feb 1969 23:32:54 -0330\" \"groups and odd addresses\" ((\"Mary"
		" Smith\" NIL \"mary\" \"x.test\")) ((\"Secretary\" NIL \"sec\" \"x.test\"))"
		" ((\"Mary (home)\" NIL \"mary\" \"home.test\")) ((NIL NIL \"A Group\" NIL)(\"Ed"
		" Jones\" NIL \"c\" \"a.test\")(NIL NIL \"joe\" \"where.test\")(\"John\""
		" NIL \"jdoe\" \"one.test\")(NIL NIL NIL NIL)) ((NIL NIL \"Undisclosed recipients\""
		" NIL)(NIL NIL NIL NIL)) ((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\")(NIL"
		" \"@route1,@route2\" \"box\" \"host.test\")(\"his host\" NIL \"pete\" \"silly.test\")(NIL"
		" NIL \"nodomain\" \"MISSING_DOMAIN\")(NIL NIL \"MISSING_MAILBOX\" \"nolocal.test\"))"
		" NIL NIL)",
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL"
		" NIL NIL NIL)",
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1)",
	},
	{
		"headers_only",
		"(NIL \"headers only, no empty line, no body\" ((NIL NIL \"h\" \"example.com\"))"
		" ((NIL NIL \"h\" \"example.com\")) ((NIL NIL \"h\" \"example.com\")) NIL"
		" NIL NIL NIL NIL)",
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL"
		" NIL NIL NIL)",
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)",
	},
	{
		"invalid_content_type",
		"(NIL \"bad content type\" NIL NIL NIL NIL NIL NIL NIL NIL)",
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL"
		" NIL NIL NIL)",
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1)",
	},
	{
		"missing_boundary_param",
		"(NIL \"no boundary parameter\" NIL NIL NIL NIL NIL NIL NIL NIL)",
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 60 5 NIL"
		" NIL NIL NIL)",
		"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 60 5)",
	},
	{
		"missing_close",
		"(NIL \"missing close delimiter\" NIL NIL NIL NIL NIL NIL NIL NIL)",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL"
		" NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\""
		" 35 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0)(\"text\""
		" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 35 1) \"mixed\")",
	},
	{
		"mixed_alternative",
		"(\"Tue, 1 Oct 2024 10:00:00 +0000\" \"Report\" ((\"Alice Example\" NIL \"alice\""
		" \"example.com\")) ((\"Alice Example\" NIL \"alice\" \"example.com\")) ((\"Alice"
		" Example\" NIL \"alice\" \"example.com\")) ((\"Bob\" NIL \"bob\" \"example.net\")(NIL"
		" NIL \"carol\" \"example.net\")) ((NIL NIL \"dave\" \"example.org\")) NIL"
		" \"<q-7@example.net>\" \"<report-1@example.com>\")",
		"(((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\""
		" 31 1 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL"
		" \"quoted-printable\" 40 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\""
		" \"inner\") NIL NIL NIL)(\"application\" \"pdf\" (\"name\" \"report.pdf\")"
		" \"<pdf-1@example.com>\" \"The report\" \"base64\" 98 NIL (\"attachment\""
		" (\"filename\" \"report.pdf\")) NIL NIL) \"mixed\" (\"boundary\" \"outer\")"
		" NIL NIL NIL)",
		"(((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\""
		" 31 1)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\""
		" 40 0) \"alternative\")(\"application\" \"pdf\" (\"name\" \"report.pdf\")"
		" \"<pdf-1@example.com>\" \"The report\" \"base64\" 98) \"mixed\")",
	},
	{
		"multipart_empty_body_part",
		"(NIL \"part with only a header\" NIL NIL NIL NIL NIL NIL NIL NIL)",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL"
		" NIL NIL NIL) \"mixed\" (\"boundary\" \"z\") NIL NIL NIL)",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")",
	},
	{
		"nested_related",
		"(NIL \"nested\" ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\"))"
		" ((NIL NIL \"a\" \"example.com\")) NIL NIL NIL NIL NIL)",
		"(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL"
		" NIL NIL NIL)((\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\""
		" 18 0 NIL NIL NIL NIL)(\"image\" \"png\" NIL \"<i1>\" NIL \"base64\" 12"
		" NIL NIL NIL NIL) \"related\" (\"boundary\" \"L3\" \"type\" \"text/html\")"
		" NIL NIL NIL) \"alternative\" (\"boundary\" \"L2\") NIL NIL NIL)(\"text\""
		" \"plain\" (\"name\" \"notes.txt\" \"charset\" \"us-ascii\") NIL NIL \"7bit\""
		" 5 0 NIL (\"inline\" NIL) NIL NIL) \"mixed\" (\"boundary\" \"L1\") NIL NIL"
		" NIL)",
		"(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0)((\"text\""
		" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 18 0)(\"image\" \"png\""
		" NIL \"<i1>\" NIL \"base64\" 12) \"related\") \"alternative\")(\"text\""
		" \"plain\" (\"name\" \"notes.txt\" \"charset\" \"us-ascii\") NIL NIL \"7bit\""
		" 5 0) \"mixed\")",
	},
	{
		"nested_same_boundary",
		"(NIL \"inner multipart reuses the outer boundary string as a prefix\" NIL"
		" NIL NIL NIL NIL NIL NIL NIL)",
		"(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 0 NIL"
		" NIL NIL NIL) \"alternative\" (\"boundary\" \"abc\") NIL NIL NIL)(\"text\""
		" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0 NIL NIL NIL NIL)"
		" \"mixed\" (\"boundary\" \"ab\") NIL NIL NIL)",
		"(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 0) \"alternative\")(\"text\""
		" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0) \"mixed\")",
	},
	{
		"params",
		"(NIL \"parameters\" NIL NIL NIL NIL NIL NIL NIL NIL)",
		"(\"text\" \"plain\" (\"charset\" \"UTF-8\" \"format\" \"flowed\" \"delsp\""
		" \"yes\" \"lang*\" \"utf-8''%C3%A4\" \"title*\" \"us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn't"
		" it!\") \"<id@example.com>\" \"parameter torture\" \"Quoted-Printable\""
		" 7 1 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" (\"Attachment\" (\"filename\" {19}\r\na"
		" \"quoted\" name.txt \"size\" \"5\" \"modification-date\" \"Wed, 12 Feb"
		" 1997 16:29:51 -0500\")) (\"en-US\" \"de\") \"http://www.example.com/some/very/long/"
		" path/file.txt\")",
		"(\"text\" \"plain\" (\"charset\" \"UTF-8\" \"format\" \"flowed\" \"delsp\""
		" \"yes\" \"lang*\" \"utf-8''%C3%A4\" \"title*\" \"us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn't"
		" it!\") \"<id@example.com>\" \"parameter torture\" \"Quoted-Printable\""
		" 7 1)",
	},
	{
		"preamble_epilogue",
		"(NIL \"preamble and epilogue\" NIL NIL NIL NIL NIL NIL NIL NIL)",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 40 0 NIL"
		" NIL NIL NIL) \"mixed\" (\"boundary\" \"pe\") NIL NIL NIL)",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 40 0) \"mixed\")",
	},
	{
		"raw_8bit_headers",
		"(NIL {17}\r\nGr\xc3""\xbc""\xc3""\x9f""e aus K\xc3""\xb6""ln (({13}\r\nJ\xc3""\xb6""rg"
		" M\xc3""\xbc""ller NIL \"joerg\" \"example.de\")) (({13}\r\nJ\xc3""\xb6""rg"
		" M\xc3""\xbc""ller NIL \"joerg\" \"example.de\")) (({13}\r\nJ\xc3""\xb6""rg"
		" M\xc3""\xbc""ller NIL \"joerg\" \"example.de\")) (({11}\r\n\xc3""\x9c""n\xc3""\xaf""c\xc3""\xb6""d\xc3""\xa9"""
		" NIL \"u\" \"example.de\")) NIL NIL NIL NIL)",
		"(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"8bit\" 17 1 NIL NIL"
		" NIL NIL)",
		"(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"8bit\" 17 1)",
	},
	{
		"rfc822_in_rfc822",
		"(NIL \"level 0\" NIL NIL NIL NIL NIL NIL NIL NIL)",
		"((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 103 (NIL \"level 1\" NIL NIL"
		" NIL NIL NIL NIL NIL NIL) (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 53"
		" (NIL \"level 2\" NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\""
		" \"us-ascii\") NIL NIL \"7bit\" 7 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL)"
		" 6 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"x0\") NIL NIL NIL)",
		"((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 103 (NIL \"level 1\" NIL NIL"
		" NIL NIL NIL NIL NIL NIL) (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 53"
		" (NIL \"level 2\" NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\""
		" \"us-ascii\") NIL NIL \"7bit\" 7 0) 3) 6) \"mixed\")",
	},
	{
		"rfc822_part",
		"(NIL \"Fwd: original\" ((NIL NIL \"forwarder\" \"example.com\")) ((NIL NIL"
		" \"forwarder\" \"example.com\")) ((NIL NIL \"forwarder\" \"example.com\"))"
		" ((NIL NIL \"someone\" \"example.net\")) NIL NIL NIL NIL)",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0 NIL"
		" NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL \"forwarded message\" \"7bit\""
		" 333 (\"Wed, 2 Oct 2024 08:00:00 +0200\" \"original\" ((\"Original Sender\""
		" NIL \"orig\" \"example.org\")) ((\"Original Sender\" NIL \"orig\" \"example.org\"))"
		" ((\"Original Sender\" NIL \"orig\" \"example.org\")) ((NIL NIL \"forwarder\""
		" \"example.com\")) NIL NIL NIL \"<orig-1@example.org>\") ((\"text\" \"plain\""
		" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 13 0 NIL NIL NIL NIL)(\"text\""
		" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 0 NIL NIL NIL NIL)"
		" \"alternative\" (\"boundary\" \"inner\") NIL NIL NIL) 16 NIL NIL NIL NIL)"
		" \"mixed\" (\"boundary\" \"fwd\") NIL NIL NIL)",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0)(\"message\""
		" \"rfc822\" NIL NIL \"forwarded message\" \"7bit\" 333 (\"Wed, 2 Oct 2024"
		" 08:00:00 +0200\" \"original\" ((\"Original Sender\" NIL \"orig\" \"example.org\"))"
		" ((\"Original Sender\" NIL \"orig\" \"example.org\")) ((\"Original Sender\""
		" NIL \"orig\" \"example.org\")) ((NIL NIL \"forwarder\" \"example.com\"))"
		" NIL NIL NIL \"<orig-1@example.org>\") ((\"text\" \"plain\" (\"charset\""
		" \"us-ascii\") NIL NIL \"7bit\" 13 0)(\"text\" \"html\" (\"charset\" \"us-ascii\")"
		" NIL NIL \"7bit\" 15 0) \"alternative\") 16) \"mixed\")",
	},
	{
		"simple",
		"(\"Mon, 7 Feb 1994 21:52:25 -0800 (PST)\" \"afternoon meeting\" ((\"Fred"
		" Foobar\" NIL \"foobar\" \"Blurdybloop.COM\")) ((\"Fred Foobar\" NIL \"foobar\""
		" \"Blurdybloop.COM\")) ((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.COM\"))"
		" ((NIL NIL \"mooch\" \"owatagu.siam.edu\")) NIL NIL NIL \"<B27397-0100000@Blurdybloop.COM>\")",
		"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7bit\" 55 1 NIL"
		" NIL NIL NIL)",
		"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7bit\" 55 1)",
	},
	{
		"top_level_rfc822",
		"(NIL \"outer\" NIL NIL NIL NIL NIL NIL NIL NIL)",
		"(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 78 (NIL \"inner\" ((NIL NIL"
		" \"in\" \"example.com\")) ((NIL NIL \"in\" \"example.com\")) ((NIL NIL \"in\""
		" \"example.com\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\""
		" \"us-ascii\") NIL NIL \"7bit\" 12 1 NIL NIL NIL NIL) 5 NIL NIL NIL NIL)",
		"(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 78 (NIL \"inner\" ((NIL NIL"
		" \"in\" \"example.com\")) ((NIL NIL \"in\" \"example.com\")) ((NIL NIL \"in\""
		" \"example.com\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\""
		" \"us-ascii\") NIL NIL \"7bit\" 12 1) 5)",
	},
};

static void test_corpus(void **state)
{
	struct imap_buf b;

	imap_buf_init(&b);
	for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
		struct msg x;
		char what[128];

		msg_load(&x, corpus[i].name);
		imap_buf_reset(&b);
		assert_int_equal(imap_render_envelope(x.m, &b), 0);
		snprintf(what, sizeof(what), "%s ENVELOPE", corpus[i].name);
		assert_buf(&b, corpus[i].envelope, strlen(corpus[i].envelope), what);

		imap_buf_reset(&b);
		assert_int_equal(imap_render_body(x.m, true, &b), 0);
		snprintf(what, sizeof(what), "%s BODYSTRUCTURE", corpus[i].name);
		assert_buf(&b, corpus[i].bodystructure, strlen(corpus[i].bodystructure), what);

		imap_buf_reset(&b);
		assert_int_equal(imap_render_body(x.m, false, &b), 0);
		snprintf(what, sizeof(what), "%s BODY", corpus[i].name);
		assert_buf(&b, corpus[i].body, strlen(corpus[i].body), what);
		msg_free(&x);
	}
	imap_buf_free(&b);
}

static size_t count_sub(const char *s, size_t n, const char *sub)
{
	size_t c = 0, k = strlen(sub);

	for (size_t i = 0; i + k <= n; i++)
		if (memcmp(s + i, sub, k) == 0)
			c++;
	return c;
}

static void test_corpus_limits(void **state)
{
	struct imap_buf b;
	struct msg x;
	size_t i;

	imap_buf_init(&b);
	/* 50 nested multiparts, then the demoted text/plain */
	msg_load(&x, "deep_nesting");
	assert_int_equal(imap_render_body(x.m, true, &b), 0);
	for (i = 0; i < MIME_DEPTH_MAX + 1; i++)
		assert_int_equal(b.data[i], '(');
	assert_memory_equal(b.data + i, "\"text\" \"plain\" (\"charset\" \"us-ascii\")", 37);
	assert_int_equal(count_sub(b.data, b.len, "\"mixed\""), MIME_DEPTH_MAX);
	{
		static const char tail[] = " \"mixed\" (\"boundary\" \"=_d00_=\") NIL NIL NIL)";

		assert_true(b.len > sizeof(tail));
		assert_memory_equal(b.data + b.len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
	}
	msg_free(&x);

	/* 1500 parts: 999 rendered */
	imap_buf_reset(&b);
	msg_load(&x, "many_parts");
	assert_int_equal(imap_render_body(x.m, false, &b), 0);
	assert_int_equal(count_sub(b.data, b.len, "(\"text\" \"plain\""), MIME_PARTS_MAX - 1);
	msg_free(&x);

	/* 60 nested message/rfc822: 50 envelopes + bodies, then text */
	imap_buf_reset(&b);
	msg_load(&x, "deep_rfc822");
	assert_int_equal(imap_render_body(x.m, true, &b), 0);
	assert_int_equal(count_sub(b.data, b.len, "(\"message\" \"rfc822\""), MIME_DEPTH_MAX);
	assert_int_equal(count_sub(b.data, b.len, "\"r50\""), 1);
	assert_int_equal(count_sub(b.data, b.len, "\"r51\""), 0);
	msg_free(&x);
	imap_buf_free(&b);
}

/* ---- envelope details ---------------------------------------------------------- */

static void check_envelope(const char *msg, const char *want)
{
	struct msg x;
	struct imap_buf b;

	imap_buf_init(&b);
	msg_str(&x, msg);
	assert_int_equal(imap_render_envelope(x.m, &b), 0);
	assert_buf(&b, want, strlen(want), msg);
	imap_buf_free(&b);
	msg_free(&x);
}

static void test_envelope_defaults(void **state)
{
	/* empty / absent Sender and Reply-To take From */
	check_envelope("From: a@b\r\nSender:\r\nReply-To: \t\r\n\r\n",
		       "(NIL NIL ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\"))"
		       " NIL NIL NIL NIL NIL)");
	check_envelope("From: a@b\r\nSender: s@b\r\n\r\n",
		       "(NIL NIL ((NIL NIL \"a\" \"b\")) ((NIL NIL \"s\" \"b\")) ((NIL NIL \"a\" \"b\"))"
		       " NIL NIL NIL NIL NIL)");
	check_envelope("Reply-To: r@b\r\n\r\n",
		       "(NIL NIL NIL NIL ((NIL NIL \"r\" \"b\")) NIL NIL NIL NIL NIL)");
	/* a group Reply-To is kept */
	check_envelope("From: a@b\r\nReply-To: list:;\r\n\r\n",
		       "(NIL NIL ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) ((NIL NIL \"list\" NIL)"
		       "(NIL NIL NIL NIL)) NIL NIL NIL NIL NIL)");
	/* empty Subject is "", raw encoded words kept, quotes as literal */
	check_envelope("Subject:\r\nTo: \"a \\\"b\\\"\" <x@y>\r\nDate: =?x?q?y?=\r\n\r\n",
		       "(\"=?x?q?y?=\" \"\" NIL NIL NIL (({5}\r\na \"b\" NIL \"x\" \"y\")) NIL NIL NIL"
		       " NIL)");
}

static void test_part_envelope(void **state)
{
	struct msg x;
	struct imap_buf b;

	imap_buf_init(&b);
	msg_load(&x, "rfc822_part");
	assert_int_equal(imap_render_part_envelope(&x.m->parts[1], &b), -1);
	assert_int_equal(x.m->parts[2].kind, MIME_KIND_MESSAGE);
	assert_int_equal(imap_render_part_envelope(&x.m->parts[2], &b), -1);
	assert_int_equal(imap_render_part_envelope(&x.m->parts[3], &b), 0);
	ASSERT_BUF(&b, "(\"Wed, 2 Oct 2024 08:00:00 +0200\" \"original\" ((\"Original Sender\" NIL"
		   " \"orig\" \"example.org\")) ((\"Original Sender\" NIL \"orig\" \"example.org\"))"
		   " ((\"Original Sender\" NIL \"orig\" \"example.org\")) ((NIL NIL \"forwarder\""
		   " \"example.com\")) NIL NIL NIL \"<orig-1@example.org>\")", "part envelope");
	assert_int_equal(imap_render_part_envelope(NULL, &b), -1);
	imap_buf_free(&b);
	msg_free(&x);
}

static void test_nstring(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
		size_t out_len;
	} cases[] = {
#define C(in, out) { in, sizeof(in) - 1, out, sizeof(out) - 1 }
		C("", "\"\""),
		C("abc def", "\"abc def\""),
		C("a\tb", "\"a\tb\""),
		C("a\"b", "{3}\r\na\"b"),
		C("a\\b", "{3}\r\na\\b"),
		C("\xc3\xa4", "{2}\r\n\xc3\xa4"),
		C("a\r\nb", "{4}\r\na\r\nb"),
		C("a\0b", "{3}\r\na\0b"),
		C("\x7f", "{1}\r\n\x7f"),
		C("\x01", "{1}\r\n\x01"),
#undef C
	};
	struct imap_buf b;
	struct mime_str nil = { NULL, 0 }, ms = { "x", 1 };

	imap_buf_init(&b);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		imap_buf_reset(&b);
		assert_int_equal(imap_write_nstring(&b, cases[i].in, cases[i].len), 0);
		assert_buf(&b, cases[i].out, cases[i].out_len, cases[i].out);
	}
	imap_buf_reset(&b);
	assert_int_equal(imap_write_nstring(&b, NULL, 5), 0);
	assert_int_equal(imap_write_mstr(&b, nil), 0);
	assert_int_equal(imap_write_mstr(&b, ms), 0);
	ASSERT_BUF(&b, "NILNIL\"x\"", "NIL");
	assert_int_equal(imap_buf_adds(&b, "!"), 0);
	ASSERT_BUF(&b, "NILNIL\"x\"!", "adds");
	imap_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void test_body_ext_fields(void **state)
{
	struct msg x;
	struct imap_buf b;

	imap_buf_init(&b);
	msg_str(&x, "Content-Type: multipart/mixed; boundary=b; x=y\r\n"
		    "Content-Disposition: inline; a=1\r\n"
		    "Content-Language: , ,(c) en-GB ,\r\n fr (French)\r\n"
		    "Content-Location: loc\r\n"
		    "\r\n--b\r\n"
		    "Content-Type: image/gif\r\n"
		    "Content-Language: ,\r\n"
		    "Content-MD5: m\r\n"
		    "\r\nGIF\r\n--b--\r\n");
	assert_int_equal(imap_render_body(x.m, true, &b), 0);
	ASSERT_BUF(&b, "((\"image\" \"gif\" NIL NIL NIL \"7bit\" 3 \"m\" NIL NIL NIL) \"mixed\""
		   " (\"boundary\" \"b\" \"x\" \"y\") (\"inline\" (\"a\" \"1\")) (\"en-GB\" \"fr\")"
		   " \"loc\")", "extension data");
	imap_buf_reset(&b);
	assert_int_equal(imap_render_body(x.m, false, &b), 0);
	ASSERT_BUF(&b, "((\"image\" \"gif\" NIL NIL NIL \"7bit\" 3) \"mixed\")", "BODY");
	imap_buf_free(&b);
	msg_free(&x);
}

/* ---- sections -------------------------------------------------------------------- */

static void test_section_parse(void **state)
{
	static const char *const bad[] = {
		"0", "01", "1.", ".1", "MIME", "1.MIME.X", "HEADER.FIELDS", "HEADER.FIELDS ()",
		"HEADER.FIELDS (a", "HEADER.FIELDS (a )", "HEADER.FIELDS(a)", "HEADER.FIELDS  (a)",
		"TEXTX", "1.2.", "4294967296", "1.HEADER ", "HEADER.FIELDS (\"a\\\\b\")",
		"HEADER.FIELDS (\"\")", "HEADER.FIELDS (a:b)", "HEADER.FIELDS (\"a)", "1..2",
		"X", "1.X", "HEADER.FIELDS.NO (a)", "HEADER.FIELDS (a) ", "-1", "1 ",
	};
	struct imap_section sec;
	const char *err;
	char big[512];
	size_t n = 0;

	assert_int_equal(imap_section_parse("", 0, &sec, &err), 0);
	assert_int_equal(sec.n_part, 0);
	assert_int_equal(sec.kind, IMAP_SECT_BODY);

	assert_int_equal(imap_section_parse("1.22.333", 8, &sec, &err), 0);
	assert_int_equal(sec.n_part, 3);
	assert_int_equal(sec.part[1], 22);
	assert_int_equal(sec.part[2], 333);
	assert_int_equal(sec.kind, IMAP_SECT_BODY);

	assert_int_equal(imap_section_parse("header", 6, &sec, &err), 0);
	assert_int_equal(sec.kind, IMAP_SECT_HEADER);
	assert_int_equal(imap_section_parse("2.Text", 6, &sec, &err), 0);
	assert_int_equal(sec.kind, IMAP_SECT_TEXT);
	assert_int_equal(imap_section_parse("4294967295.mime", 15, &sec, &err), 0);
	assert_int_equal(sec.kind, IMAP_SECT_MIME);
	assert_int_equal(sec.part[0], 4294967295u);

	{
		const char s[] = "4.2.HEADER.FIELDS (From \"To\" X-Y)";

		assert_int_equal(imap_section_parse(s, sizeof(s) - 1, &sec, &err), 0);
		assert_int_equal(sec.kind, IMAP_SECT_FIELDS);
		assert_int_equal(sec.n_part, 2);
		assert_int_equal(sec.n_fields, 3);
		assert_int_equal(sec.fields[1].len, 2);
		assert_memory_equal(sec.fields[1].p, "To", 2);
		assert_ptr_equal(sec.fields[0].p, s + 19);
	}
	assert_int_equal(imap_section_parse("header.fields.not (x)", 21, &sec, &err), 0);
	assert_int_equal(sec.kind, IMAP_SECT_FIELDS_NOT);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		if (imap_section_parse(bad[i], strlen(bad[i]), &sec, &err) != -1)
			fail_msg("section \"%s\" was accepted", bad[i]);
		assert_non_null(err);
	}

	/* limits */
	for (int i = 0; i < IMAP_SECTION_PARTS_MAX; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%s1", i ? "." : "");
	assert_int_equal(imap_section_parse(big, n, &sec, &err), 0);
	assert_int_equal(sec.n_part, IMAP_SECTION_PARTS_MAX);
	n += (size_t)snprintf(big + n, sizeof(big) - n, ".1");
	assert_int_equal(imap_section_parse(big, n, &sec, &err), -1);

	n = (size_t)snprintf(big, sizeof(big), "HEADER.FIELDS (");
	for (int i = 0; i < IMAP_SECTION_FIELDS_MAX; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%sa", i ? " " : "");
	big[n++] = ')';
	assert_int_equal(imap_section_parse(big, n, &sec, &err), 0);
	assert_int_equal(sec.n_fields, IMAP_SECTION_FIELDS_MAX);
	memcpy(big + n - 1, " b)", 3);
	assert_int_equal(imap_section_parse(big, n + 2, &sec, &err), -1);
}

static void check_write(const char *in, const char *want)
{
	struct imap_section sec;
	const char *err;
	struct imap_buf b;

	imap_buf_init(&b);
	assert_int_equal(imap_section_parse(in, strlen(in), &sec, &err), 0);
	assert_int_equal(imap_section_write(&sec, &b), 0);
	assert_buf(&b, want, strlen(want), in);
	imap_buf_free(&b);
}

static void test_section_write(void **state)
{
	check_write("", "");
	check_write("3", "3");
	check_write("text", "TEXT");
	check_write("2.mime", "2.MIME");
	check_write("1.2.header", "1.2.HEADER");
	check_write("1.2.header.fields (from \"To\" x-Spam)", "1.2.HEADER.FIELDS (FROM TO X-SPAM)");
	check_write("HEADER.FIELDS.NOT (a)", "HEADER.FIELDS.NOT (A)");
}

/* Fetch a section of x served with prefix; NULL want = NIL, "" with
 * empty_kind = IMAP_LOC_EMPTY. */
static void fetch_sec(const struct msg *x, const char *prefix, const char *section,
		      enum imap_loc want_loc, const char *want)
{
	struct imap_section sec;
	struct imap_byterange r = { 99, 99 };
	const char *err;
	struct imap_msgdata md = { prefix, strlen(prefix), x->data, x->len };
	struct imap_buf b;
	enum imap_loc l;

	if (imap_section_parse(section, strlen(section), &sec, &err) < 0)
		fail_msg("section %s: %s", section, err);
	l = imap_section_locate(x->m, strlen(prefix), &sec, &r);
	if (l != want_loc)
		fail_msg("section %s: located %d, expected %d", section, l, want_loc);
	if (l != IMAP_LOC_OK) {
		assert_int_equal(r.off, 0);
		assert_int_equal(r.len, 0);
		return;
	}
	imap_buf_init(&b);
	if (sec.kind == IMAP_SECT_FIELDS || sec.kind == IMAP_SECT_FIELDS_NOT)
		assert_int_equal(imap_header_filter(&md, &r, &sec, &b), 0);
	else
		assert_int_equal(imap_msgdata_append(&md, &r, &b), 0);
	assert_buf(&b, want, strlen(want), section);
	imap_buf_free(&b);
}

#define SEC_OK(x, pfx, s, want) fetch_sec((x), (pfx), (s), IMAP_LOC_OK, (want))
#define SEC_NIL(x, pfx, s) fetch_sec((x), (pfx), (s), IMAP_LOC_NOPART, NULL)
#define SEC_EMPTY(x, pfx, s) fetch_sec((x), (pfx), (s), IMAP_LOC_EMPTY, NULL)

#define FWD_HDR "From: forwarder@example.com\r\nTo: someone@example.net\r\n" \
		"Subject: Fwd: original\r\nContent-Type: multipart/mixed; boundary=\"fwd\"\r\n\r\n"
#define ORIG_HDR "From: Original Sender <orig@example.org>\r\nTo: forwarder@example.com\r\n" \
		 "Subject: original\r\nDate: Wed, 2 Oct 2024 08:00:00 +0200\r\n" \
		 "Message-ID: <orig-1@example.org>\r\n" \
		 "Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
#define ORIG_TEXT "--inner\r\nContent-Type: text/plain\r\n\r\noriginal text\r\n" \
		  "--inner\r\nContent-Type: text/html\r\n\r\n<b>original</b>\r\n--inner--\r\n"

static void test_sections_rfc822_part(void **state)
{
	struct msg x;
	const char *const pfx[] = { "", "Return-Path: <r@x>\r\nDelivered-To: u@y\r\n" };

	msg_load(&x, "rfc822_part");
	for (int k = 0; k < 2; k++) {
		const char *p = pfx[k];
		char want[2048];

		snprintf(want, sizeof(want), "%s%s", p, FWD_HDR);
		SEC_OK(&x, p, "HEADER", want);
		snprintf(want, sizeof(want), "%s%.*s", p, (int)x.len, x.data);
		SEC_OK(&x, p, "", want);
		SEC_OK(&x, p, "TEXT", x.cstr + strlen(FWD_HDR));
		SEC_OK(&x, p, "1", "See below.");
		SEC_OK(&x, p, "1.MIME", "Content-Type: text/plain\r\n\r\n");
		SEC_OK(&x, p, "1.1", "See below.");		/* Dovecot's leniency */
		SEC_NIL(&x, p, "1.1.1");
		SEC_EMPTY(&x, p, "1.HEADER");
		SEC_EMPTY(&x, p, "1.TEXT");
		SEC_EMPTY(&x, p, "1.HEADER.FIELDS (To)");
		SEC_OK(&x, p, "2.MIME", "Content-Type: message/rfc822\r\n"
					"Content-Description: forwarded message\r\n\r\n");
		SEC_OK(&x, p, "2", ORIG_HDR ORIG_TEXT);
		SEC_OK(&x, p, "2.HEADER", ORIG_HDR);
		SEC_OK(&x, p, "2.TEXT", ORIG_TEXT);
		SEC_OK(&x, p, "2.1", "original text");
		SEC_OK(&x, p, "2.1.MIME", "Content-Type: text/plain\r\n\r\n");
		SEC_OK(&x, p, "2.2", "<b>original</b>");
		SEC_OK(&x, p, "2.2.MIME", "Content-Type: text/html\r\n\r\n");
		SEC_OK(&x, p, "2.1.1", "original text");
		SEC_NIL(&x, p, "2.3");
		SEC_NIL(&x, p, "3");
		SEC_NIL(&x, p, "3.MIME");
		SEC_NIL(&x, p, "2.1.1.1");
		SEC_EMPTY(&x, p, "2.1.HEADER");
		SEC_OK(&x, p, "HEADER.FIELDS (subject TO)",
		       "To: someone@example.net\r\nSubject: Fwd: original\r\n\r\n");
		SEC_OK(&x, p, "2.HEADER.FIELDS.NOT (From To Subject Date Message-ID)",
		       "Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n");
		SEC_OK(&x, p, "2.HEADER.FIELDS (X-None)", "\r\n");
	}
	/* the prefix is part of the top-level header, and only of it */
	SEC_OK(&x, pfx[1], "HEADER.FIELDS (Delivered-To subject)",
	       "Delivered-To: u@y\r\nSubject: Fwd: original\r\n\r\n");
	SEC_OK(&x, pfx[1], "HEADER.FIELDS.NOT (Return-Path Delivered-To From To Content-Type)",
	       "Subject: Fwd: original\r\n\r\n");
	SEC_OK(&x, pfx[1], "HEADER.FIELDS (Return-Path)", "Return-Path: <r@x>\r\n\r\n");
	SEC_OK(&x, pfx[1], "2.HEADER.FIELDS (Delivered-To)", "\r\n");
	msg_free(&x);
}

static void test_sections_offsets(void **state)
{
	static const char pfx[] = "Return-Path: <r@x>\r\n";
	struct msg x;
	struct imap_section sec;
	struct imap_byterange r;
	const char *err;
	const char *one;

	msg_load(&x, "rfc822_part");
	one = strstr(x.cstr, "See below.");
	assert_non_null(one);
	assert_int_equal(imap_section_parse("1", 1, &sec, &err), 0);
	assert_int_equal(imap_section_locate(x.m, sizeof(pfx) - 1, &sec, &r), IMAP_LOC_OK);
	assert_int_equal(r.off, sizeof(pfx) - 1 + (size_t)(one - x.cstr));
	assert_int_equal(r.len, 10);
	assert_int_equal(imap_section_parse("HEADER", 6, &sec, &err), 0);
	assert_int_equal(imap_section_locate(x.m, sizeof(pfx) - 1, &sec, &r), IMAP_LOC_OK);
	assert_int_equal(r.off, 0);
	assert_int_equal(r.len, sizeof(pfx) - 1 + strlen(FWD_HDR));
	assert_int_equal(imap_section_parse("", 0, &sec, &err), 0);
	assert_int_equal(imap_section_locate(x.m, sizeof(pfx) - 1, &sec, &r), IMAP_LOC_OK);
	assert_int_equal(r.len, sizeof(pfx) - 1 + x.len);	/* RFC822.SIZE */
	msg_free(&x);
}

static void test_sections_single_part(void **state)
{
	struct msg x;
	static const char pfx[] = "Delivered-To: u@y\r\n";

	msg_str(&x, "Subject: s\r\nContent-Type: text/plain\r\n\r\nhello\r\n");
	SEC_OK(&x, "", "1", "hello\r\n");
	SEC_OK(&x, "", "TEXT", "hello\r\n");
	SEC_OK(&x, pfx, "1.MIME", "Delivered-To: u@y\r\nSubject: s\r\nContent-Type: text/plain\r\n\r\n");
	SEC_NIL(&x, "", "2");
	SEC_NIL(&x, "", "1.1");
	SEC_EMPTY(&x, "", "1.HEADER");
	msg_free(&x);

	/* a top-level message/rfc822: part 1 is the embedded message */
	msg_load(&x, "top_level_rfc822");
	SEC_OK(&x, "", "1.HEADER", "Subject: inner\r\nFrom: in@example.com\r\nContent-Type: text/plain\r\n\r\n");
	SEC_OK(&x, "", "1.TEXT", "inner body\r\n");
	SEC_OK(&x, "", "1.1", "inner body\r\n");
	SEC_NIL(&x, "", "1.1.1");
	SEC_OK(&x, "", "1.MIME", "Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n");
	msg_free(&x);

	/* headers only: HEADER is everything, TEXT empty, fields get a CRLF */
	msg_load(&x, "headers_only");
	SEC_OK(&x, "", "HEADER", "From: h@example.com\r\nSubject: headers only, no empty line, no body");
	SEC_OK(&x, "", "TEXT", "");
	SEC_OK(&x, "", "HEADER.FIELDS (Subject)",
	       "Subject: headers only, no empty line, no body\r\n\r\n");
	msg_free(&x);
}

static void test_sections_nested(void **state)
{
	struct msg x;

	msg_load(&x, "nested_related");
	SEC_OK(&x, "", "1.1", "plain");
	SEC_OK(&x, "", "1.2.1", "<img src=\"cid:i1\">");
	SEC_OK(&x, "", "1.2.2", "iVBORw0KGgo=");
	SEC_OK(&x, "", "1.2.2.MIME", "Content-Type: image/png\r\nContent-ID: <i1>\r\n"
				     "Content-Transfer-Encoding: base64\r\n\r\n");
	SEC_OK(&x, "", "1.2.MIME", "Content-Type: multipart/related; boundary=L3; type=\"text/html\"\r\n\r\n");
	/* a multipart's body ends before the line break of the next outer boundary */
	SEC_OK(&x, "", "1.2", "--L3\r\nContent-Type: text/html\r\n\r\n<img src=\"cid:i1\">\r\n"
			      "--L3\r\nContent-Type: image/png\r\nContent-ID: <i1>\r\n"
			      "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--L3--");
	SEC_OK(&x, "", "2", "notes");
	SEC_NIL(&x, "", "1.3");
	SEC_NIL(&x, "", "1.2.3");
	msg_free(&x);

	msg_load(&x, "empty_parts");
	SEC_OK(&x, "", "1.MIME", "");
	SEC_OK(&x, "", "2.MIME", "Content-Type: text/html");
	SEC_OK(&x, "", "3.MIME", "");
	SEC_OK(&x, "", "4.MIME", "Content-Type: application/octet-stream\r\n");
	SEC_OK(&x, "", "4", "");
	msg_free(&x);
}

static void test_header_filter(void **state)
{
	struct msg x;

	msg_str(&x, "Subject: a\r\n"
		    "X-Folded: one\r\n"
		    " two\r\n"
		    "not a field line\r\n"
		    " continuation of junk\r\n"
		    "SUBJECT: second\r\n"
		    "X-Empty:\r\n"
		    "x-folded : spaced name\r\n"
		    "\r\n"
		    "Subject: in the body\r\n");
	SEC_OK(&x, "", "HEADER.FIELDS (subject x-folded)",
	       "Subject: a\r\nX-Folded: one\r\n two\r\nSUBJECT: second\r\nx-folded : spaced name\r\n\r\n");
	SEC_OK(&x, "", "HEADER.FIELDS.NOT (subject)",
	       "X-Folded: one\r\n two\r\nX-Empty:\r\nx-folded : spaced name\r\n\r\n");
	SEC_OK(&x, "", "HEADER.FIELDS (x-empty)", "X-Empty:\r\n\r\n");
	SEC_OK(&x, "", "HEADER.FIELDS (X-Fold)", "\r\n");
	msg_free(&x);

	/* bare LF kept as stored; the blank line added is CRLF */
	msg_str(&x, "A: 1\nB: 2\n\tcont\n\nbody\n");
	SEC_OK(&x, "", "HEADER.FIELDS (b)", "B: 2\n\tcont\n\r\n");
	msg_free(&x);
}

static void test_filter_errors(void **state)
{
	struct msg x;
	struct imap_section sec;
	const char *err;
	struct imap_byterange r;
	struct imap_buf b;
	struct imap_msgdata md;

	imap_buf_init(&b);
	msg_str(&x, "A: 1\r\n\r\nbody");
	md.prefix = "P: 0\r\n";
	md.prefix_len = 6;
	md.body = x.data;
	md.body_len = x.len;
	assert_int_equal(imap_section_parse("HEADER", 6, &sec, &err), 0);
	assert_int_equal(imap_section_locate(x.m, 6, &sec, &r), IMAP_LOC_OK);
	/* not a FIELDS section */
	assert_int_equal(imap_header_filter(&md, &r, &sec, &b), -1);
	assert_int_equal(imap_section_parse("HEADER.FIELDS (A P)", 19, &sec, &err), 0);
	assert_int_equal(imap_header_filter(&md, &r, &sec, &b), 0);
	ASSERT_BUF(&b, "P: 0\r\nA: 1\r\n\r\n", "straddling filter");
	/* ranges outside the message */
	r.off = 6 + x.len;
	r.len = 1;
	assert_int_equal(imap_header_filter(&md, &r, &sec, &b), -1);
	assert_int_equal(imap_msgdata_append(&md, &r, &b), -1);
	r.off = UINT64_MAX;
	r.len = 2;
	assert_int_equal(imap_msgdata_append(&md, &r, &b), -1);
	/* a range straddling prefix and body */
	imap_buf_reset(&b);
	r.off = 3;
	r.len = 6;
	assert_int_equal(imap_msgdata_append(&md, &r, &b), 0);
	ASSERT_BUF(&b, "0\r\nA: ", "straddling append");
	imap_buf_reset(&b);
	r.off = 6 + x.len;
	r.len = 0;
	assert_int_equal(imap_msgdata_append(&md, &r, &b), 0);
	assert_int_equal(b.len, 0);
	imap_buf_free(&b);
	msg_free(&x);
}

static void test_alloc_failures(void **state)
{
	struct msg x;
	bool done = false;

	msg_load(&x, "rfc822_part");
	for (int n = 0; n < 64 && !done; n++) {
		struct imap_buf b;
		int r1, r2;

		imap_buf_init(&b);
		fail_alloc_after = n;
		r1 = imap_render_body(x.m, true, &b);
		r2 = imap_render_envelope(x.m, &b);
		fail_alloc_after = -1;
		if (r1 == 0 && r2 == 0) {
			assert_false(b.failed);
			done = true;
		} else {
			assert_true(b.failed);
			/* once failed, everything fails until reset */
			assert_int_equal(imap_buf_add(&b, "x", 1), -1);
			imap_buf_reset(&b);
			assert_int_equal(imap_buf_add(&b, "x", 1), 0);
		}
		imap_buf_free(&b);
	}
	assert_true(done);

	/* the straddling HEADER.FIELDS copy */
	{
		struct imap_section sec;
		struct imap_byterange r;
		const char *err;
		struct imap_buf b;
		struct imap_msgdata md = { "P: 1\r\n", 6, x.data, x.len };

		imap_buf_init(&b);
		assert_int_equal(imap_section_parse("HEADER.FIELDS (P)", 17, &sec, &err), 0);
		assert_int_equal(imap_section_locate(x.m, 6, &sec, &r), IMAP_LOC_OK);
		fail_alloc_after = 0;
		assert_int_equal(imap_header_filter(&md, &r, &sec, &b), -1);
		fail_alloc_after = -1;
		imap_buf_free(&b);
	}
	msg_free(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_corpus_limits),
		cmocka_unit_test(test_envelope_defaults),
		cmocka_unit_test(test_part_envelope),
		cmocka_unit_test(test_nstring),
		cmocka_unit_test(test_body_ext_fields),
		cmocka_unit_test(test_section_parse),
		cmocka_unit_test(test_section_write),
		cmocka_unit_test(test_sections_rfc822_part),
		cmocka_unit_test(test_sections_offsets),
		cmocka_unit_test(test_sections_single_part),
		cmocka_unit_test(test_sections_nested),
		cmocka_unit_test(test_header_filter),
		cmocka_unit_test(test_filter_errors),
		cmocka_unit_test(test_alloc_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
