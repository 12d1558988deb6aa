/*
 * test_mime.c - the MIME structure parser and its blob (popnode/mime_*.c).
 *
 * mime_*.c are compiled into this file (not taken from the library) with their
 * allocator redirected, so allocation failures can be injected.  Messages
 * are parsed from exact-size heap copies so ASan catches any read past the
 * end.  Every parsed tree goes through check_tree(), which verifies the
 * invariants imap_body.c relies on (ranges nested, children ordered, line
 * counts equal to the LFs in each body...).  Corrupt blobs (every
 * truncation, every byte flipped) must be rejected or decode into a tree
 * that still satisfies those invariants and renders without harm.
 *
 * The corpus lives in tests/unit/mime (MIME_CORPUS overrides the path);
 * the IMAP renderings of it are checked in test_imap_body.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
#include "../../popnode/mime_blob.c"
#include "../../popnode/mime_value.c"
#include "../../popnode/mime_addr.c"
#include "../../popnode/mime_parse.c"
#undef calloc
#undef realloc

#include "imap_body.h"

/* ---- helpers -------------------------------------------------------------- */

static const char *corpus_dir(void)
{
	const char *d = getenv("MIME_CORPUS");

	return d != NULL ? d : "tests/unit/mime";
}

/* Load a corpus file into an exact-size heap buffer. */
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

static uint64_t lf_count(const char *p, size_t n)
{
	uint64_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += p[i] == '\n';
	return c;
}

/* Everything imap_body.c relies on.  msg may be NULL (ranges are then
 * checked, contents not). */
static void check_tree(const struct mime_msg *m, const char *msg, size_t msg_len)
{
	assert_true(m->n_parts >= 1 && m->n_parts <= MIME_PARTS_MAX);
	assert_int_equal(m->msg_len, msg_len);
	assert_int_equal(m->parts[0].hdr_off, 0);
	assert_int_equal((uint64_t)m->parts[0].body_off + m->parts[0].body_len, msg_len);
	assert_null(m->parts[0].parent);
	for (uint32_t i = 0; i < m->n_parts; i++) {
		const struct mime_part *p = &m->parts[i];
		uint64_t end = (uint64_t)p->body_off + p->body_len;
		uint32_t n = 0;
		uint64_t cursor = p->body_off;

		assert_int_equal(p->index, i);
		assert_int_equal(p->body_off, (uint64_t)p->hdr_off + p->hdr_len);
		assert_true(end <= msg_len);
		assert_non_null(p->type.p);
		assert_non_null(p->subtype.p);
		assert_non_null(p->encoding.p);
		assert_true(p->depth <= MIME_DEPTH_MAX);
		if (msg != NULL)
			assert_int_equal(p->body_lines, lf_count(msg + p->body_off, p->body_len));
		if (p->parent != NULL) {
			assert_int_equal(p->depth, p->parent->depth + 1);
			assert_true(p->index > p->parent->index);
		}
		assert_int_equal(p->has_envelope,
				 p->parent == NULL || p->parent->kind == MIME_KIND_MESSAGE);
		for (const struct mime_part *c = p->child; c != NULL; c = c->next) {
			assert_ptr_equal(c->parent, p);
			assert_true(c->hdr_off >= cursor);
			cursor = (uint64_t)c->body_off + c->body_len;
			assert_true(cursor <= end);
			n++;
		}
		assert_int_equal(n, p->n_children);
		switch (p->kind) {
		case MIME_KIND_LEAF:
			assert_int_equal(p->n_children, 0);
			assert_false(mime_str_eq(p->type, "multipart"));
			break;
		case MIME_KIND_MULTIPART:
			assert_true(p->n_children >= 1);
			assert_true(mime_str_eq(p->type, "multipart"));
			break;
		case MIME_KIND_MESSAGE:
			assert_int_equal(p->n_children, 1);
			assert_int_equal(p->child->hdr_off, p->body_off);
			assert_int_equal((uint64_t)p->child->body_off + p->child->body_len, end);
			assert_true(mime_str_eq(p->type, "message"));
			assert_true(mime_str_eq(p->subtype, "rfc822"));
			break;
		}
		for (uint32_t k = 0; k < p->n_params; k++) {
			assert_non_null(p->params[k].name.p);
			assert_non_null(p->params[k].value.p);
		}
	}
}

struct parsed {
	char *msg;
	size_t len;
	uint8_t *blob;
	size_t blob_len;
	struct mime_msg *m;
};

/* Parse s from an exact-size heap copy, decode, check. */
static void parse_into(struct parsed *ps, const char *s, size_t len)
{
	ps->msg = malloc(len ? len : 1);
	assert_non_null(ps->msg);
	memcpy(ps->msg, s, len);
	ps->len = len;
	assert_int_equal(mime_parse(ps->msg, len, &ps->blob, &ps->blob_len), 0);
	assert_non_null(ps->blob);
	assert_int_equal(mime_blob_decode(ps->blob, ps->blob_len, &ps->m), 0);
	check_tree(ps->m, ps->msg, len);
}

static void parse_str(struct parsed *ps, const char *s)
{
	parse_into(ps, s, strlen(s));
}

static void parsed_free(struct parsed *ps)
{
	mime_msg_free(&ps->m);
	assert_null(ps->m);
	free(ps->blob);
	free(ps->msg);
	memset(ps, 0, sizeof(*ps));
}

static void assert_mstr(struct mime_str s, const char *want)
{
	if (want == NULL) {
		if (s.p != NULL)
			fail_msg("expected NIL, got \"%.*s\"", (int)s.len, s.p);
		return;
	}
	if (s.p == NULL)
		fail_msg("expected \"%s\", got NIL", want);
	if (s.len != strlen(want) || memcmp(s.p, want, s.len) != 0)
		fail_msg("expected \"%s\", got \"%.*s\"", want, (int)s.len, s.p);
}

static void assert_addr(const struct mime_addr *a, const char *name, const char *adl,
			const char *mbox, const char *host)
{
	assert_mstr(a->name, name);
	assert_mstr(a->adl, adl);
	assert_mstr(a->mailbox, mbox);
	assert_mstr(a->host, host);
}

/* The bytes of a part's header / body. */
static void assert_hdr(const struct parsed *ps, uint32_t i, const char *want)
{
	const struct mime_part *p = &ps->m->parts[i];

	assert_int_equal(p->hdr_len, strlen(want));
	assert_memory_equal(ps->msg + p->hdr_off, want, p->hdr_len);
}

static void assert_body(const struct parsed *ps, uint32_t i, const char *want)
{
	const struct mime_part *p = &ps->m->parts[i];

	if (p->body_len != strlen(want))
		fail_msg("part %u body: expected \"%s\", got \"%.*s\"", i, want,
			 (int)p->body_len, ps->msg + p->body_off);
	assert_memory_equal(ps->msg + p->body_off, want, p->body_len);
}

/* ---- basic structure -------------------------------------------------------- */

static void test_simple(void **state)
{
	struct parsed ps;
	const struct mime_part *p;

	parse_str(&ps, "Subject: hi\r\nFrom: A <a@b.c>\r\n\r\nhello\r\nworld");
	assert_int_equal(ps.m->n_parts, 1);
	p = &ps.m->parts[0];
	assert_int_equal(p->kind, MIME_KIND_LEAF);
	assert_hdr(&ps, 0, "Subject: hi\r\nFrom: A <a@b.c>\r\n\r\n");
	assert_body(&ps, 0, "hello\r\nworld");
	assert_int_equal(p->body_lines, 1);
	assert_mstr(p->type, "text");
	assert_mstr(p->subtype, "plain");
	assert_int_equal(p->n_params, 1);
	assert_mstr(p->params[0].name, "charset");
	assert_mstr(p->params[0].value, "us-ascii");
	assert_mstr(p->encoding, "7bit");
	assert_mstr(p->id, NULL);
	assert_mstr(p->disposition, NULL);
	assert_true(p->has_envelope);
	assert_mstr(p->env.subject, "hi");
	assert_mstr(p->env.date, NULL);
	assert_int_equal(p->env.from.n, 1);
	assert_addr(&p->env.from.v[0], "A", NULL, "a", "b.c");
	assert_int_equal(p->env.sender.n, 0);	/* defaulting is the renderer's job */
	assert_int_equal(p->env.to.n, 0);
	parsed_free(&ps);
}

static void test_multipart_offsets(void **state)
{
	struct parsed ps;
	const struct mime_part *r, *c1, *c2;

	parse_str(&ps, "Content-Type: multipart/mixed; boundary=XY\r\n"
		       "\r\n"
		       "preamble\r\n"
		       "--XY\r\n"
		       "Content-Type: text/plain\r\n"
		       "\r\n"
		       "one\r\n"
		       "two\r\n"
		       "--XY  \r\n"	/* transport padding */
		       "\r\n"
		       "no header\r\n"
		       "\r\n"
		       "--XY--\r\n"
		       "epilogue\r\n");
	assert_int_equal(ps.m->n_parts, 3);
	r = &ps.m->parts[0];
	c1 = &ps.m->parts[1];
	c2 = &ps.m->parts[2];
	assert_int_equal(r->kind, MIME_KIND_MULTIPART);
	assert_int_equal(r->n_children, 2);
	assert_ptr_equal(r->child, c1);
	assert_ptr_equal(c1->next, c2);
	assert_null(c2->next);
	assert_mstr(r->subtype, "mixed");
	assert_mstr(mime_param_get(r->params, r->n_params, "BOUNDARY"), "XY");
	assert_hdr(&ps, 1, "Content-Type: text/plain\r\n\r\n");
	assert_body(&ps, 1, "one\r\ntwo");
	assert_int_equal(c1->body_lines, 1);
	assert_hdr(&ps, 2, "\r\n");
	assert_body(&ps, 2, "no header\r\n");
	assert_int_equal(c2->body_lines, 1);
	assert_mstr(c2->type, "text");
	assert_false(c1->has_envelope);
	assert_body(&ps, 0, "preamble\r\n--XY\r\nContent-Type: text/plain\r\n\r\none\r\ntwo\r\n"
			    "--XY  \r\n\r\nno header\r\n\r\n--XY--\r\nepilogue\r\n");
	parsed_free(&ps);
}

static void test_bare_lf(void **state)
{
	struct parsed ps;

	parse_str(&ps, "Content-Type: multipart/alternative; boundary=b\n\n"
		       "--b\nContent-Type: text/plain\n\nline\nline\n--b\n\nx\n--b--\n");
	assert_int_equal(ps.m->n_parts, 3);
	assert_hdr(&ps, 0, "Content-Type: multipart/alternative; boundary=b\n\n");
	assert_hdr(&ps, 1, "Content-Type: text/plain\n\n");
	assert_body(&ps, 1, "line\nline");
	assert_int_equal(ps.m->parts[1].body_lines, 1);
	assert_hdr(&ps, 2, "\n");
	assert_body(&ps, 2, "x");
	parsed_free(&ps);
}

static void test_degenerate_messages(void **state)
{
	struct parsed ps;
	uint8_t *blob;
	size_t bl;
	struct mime_msg *m;

	/* empty message */
	parse_into(&ps, "", 0);
	assert_int_equal(ps.m->n_parts, 1);
	assert_int_equal(ps.m->parts[0].hdr_len, 0);
	assert_int_equal(ps.m->parts[0].body_len, 0);
	parsed_free(&ps);

	/* NULL with length 0 is an empty message; NULL with a length is not */
	assert_int_equal(mime_parse(NULL, 0, &blob, &bl), 0);
	assert_int_equal(mime_blob_decode(blob, bl, &m), 0);
	check_tree(m, NULL, 0);
	mime_msg_free(&m);
	free(blob);
	assert_int_equal(mime_parse(NULL, 5, &blob, &bl), -1);
	assert_null(blob);

	/* only a blank line */
	parse_str(&ps, "\r\n");
	assert_int_equal(ps.m->parts[0].hdr_len, 2);
	assert_int_equal(ps.m->parts[0].body_len, 0);
	parsed_free(&ps);

	/* body without header */
	parse_str(&ps, "\nbody\n");
	assert_hdr(&ps, 0, "\n");
	assert_body(&ps, 0, "body\n");
	parsed_free(&ps);

	/* header without the empty line: all header, no body */
	parse_str(&ps, "Subject: x\r\nFrom: y@z");
	assert_int_equal(ps.m->parts[0].hdr_len, ps.len);
	assert_int_equal(ps.m->parts[0].body_len, 0);
	assert_mstr(ps.m->parts[0].env.subject, "x");
	assert_addr(&ps.m->parts[0].env.from.v[0], NULL, NULL, "y", "z");
	parsed_free(&ps);

	/* lines that are not fields, NUL bytes, lone CR */
	{
		static const char odd[] = "garbage line\r\nSub\0ject: a\r\nSubject: b\rc\r\n\r\n\0";

		parse_into(&ps, odd, sizeof(odd) - 1);
	}
	assert_mstr(ps.m->parts[0].env.subject, "b\rc");
	assert_int_equal(ps.m->parts[0].body_len, 1);
	parsed_free(&ps);
}

static void test_header_values(void **state)
{
	struct parsed ps;
	const struct mime_part *p;

	parse_str(&ps, "Subject : first\r\n"
		       "subject: second\r\n"
		       "DATE:\r\n"
		       "  Mon, 1 Jan 2024\r\n"
		       "\t 10:00  \r\n"
		       "Message-ID:   <a@b>   \r\n"
		       "In-Reply-To: <x@y>\r\n"
		       "  (comment)\r\n"
		       "X-Other: Subject: no\r\n"
		       "Content-ID: <cid>\r\n"
		       "Content-Description: d\r\n"
		       " e\r\n"
		       "Content-MD5: md5==\r\n"
		       "Content-Location: http://x/\r\n"
		       " y\r\n"
		       "Content-Language: en\r\n"
		       "Content-Transfer-Encoding: (c) BASE64 (comment)\r\n"
		       "\r\n"
		       "b");
	p = &ps.m->parts[0];
	assert_mstr(p->env.subject, "first");
	assert_mstr(p->env.date, "Mon, 1 Jan 2024\t 10:00");
	assert_mstr(p->env.message_id, "<a@b>");
	assert_mstr(p->env.in_reply_to, "<x@y>  (comment)");
	assert_mstr(p->id, "<cid>");
	assert_mstr(p->description, "d e");
	assert_mstr(p->md5, "md5==");
	assert_mstr(p->location, "http://x/ y");
	assert_mstr(p->language, "en");
	assert_mstr(p->encoding, "BASE64");
	parsed_free(&ps);

	/* an empty Subject is "", an absent one NIL; CTE without token: 7bit */
	parse_str(&ps, "Subject:\r\nContent-Transfer-Encoding: ;\r\n\r\n");
	assert_mstr(ps.m->parts[0].env.subject, "");
	assert_mstr(ps.m->parts[0].encoding, "7bit");
	parsed_free(&ps);
}

static void test_content_type(void **state)
{
	static const struct {
		const char *ct;
		const char *type, *subtype;
		const char *params;	/* "n=v;n=v" as decoded */
	} cases[] = {
		{ "Text/HTML; Charset=UTF-8", "Text", "HTML", "Charset=UTF-8" },
		{ "text/html", "text", "html", "charset=us-ascii" },
		{ "text / plain ; charset = \"a\\\"b\" ", "text", "plain", "charset=a\"b" },
		{ "(c)text(c)/(c)plain(c); (c) format (c) = (c) flowed (c)", "text", "plain",
		  "format=flowed;charset=us-ascii" },
		{ "image/png; name=a.png;; junk; x=\"unterminated", "image", "png",
		  "name=a.png;x=unterminated" },
		{ "application/x; a=1; a=2", "application", "x", "a=1;a=2" },
		{ "garbage", "text", "plain", "charset=us-ascii" },
		{ "text/", "text", "plain", "charset=us-ascii" },
		{ "/plain", "text", "plain", "charset=us-ascii" },
		{ "", "text", "plain", "charset=us-ascii" },
		{ "multipart/mixed", "text", "plain", "charset=us-ascii" },	/* no boundary */
		{ "multipart/mixed; boundary=\"\"", "text", "plain", "charset=us-ascii" },
		{ "message/RFC822; x=y", "message", "rfc822", "x=y" },
		/* RFC 2231 */
		{ "application/x; title*1=b; title*0=a; title*2*=%41", "application", "x",
		  "title*=ab%41" },
		{ "application/x; t*0=a; t*1=b; name*=utf-8''%41", "application", "x",
		  "name*=utf-8''%41;t=ab" },
		{ "application/x; t*0=\"a b\"; u=1; T*1=c", "application", "x", "u=1;t=a bc" },
		{ "application/x; t*01=a; t*x=b", "application", "x", "t*01=a;t*x=b" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char msg[512], got[512];
		struct parsed ps;
		const struct mime_part *p;
		size_t n = 0;

		snprintf(msg, sizeof(msg), "Content-Type: %s\r\n\r\nbody\r\n", cases[i].ct);
		parse_str(&ps, msg);
		p = &ps.m->parts[0];
		assert_mstr(p->type, cases[i].type);
		assert_mstr(p->subtype, cases[i].subtype);
		got[0] = '\0';
		for (uint32_t k = 0; k < p->n_params; k++)
			n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%.*s=%.*s", k ? ";" : "",
					      (int)p->params[k].name.len, p->params[k].name.p,
					      (int)p->params[k].value.len, p->params[k].value.p);
		if (strcmp(got, cases[i].params) != 0)
			fail_msg("Content-Type: %s: params \"%s\", expected \"%s\"", cases[i].ct,
				 got, cases[i].params);
		parsed_free(&ps);
	}
}

static void test_params_limit(void **state)
{
	char msg[8192];
	size_t n;
	struct parsed ps;

	n = (size_t)snprintf(msg, sizeof(msg), "Content-Type: application/x");
	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(msg + n, sizeof(msg) - n, ";\r\n p%d=v%d", i, i);
	snprintf(msg + n, sizeof(msg) - n, "\r\n\r\n");
	parse_str(&ps, msg);
	assert_int_equal(ps.m->parts[0].n_params, MIME_PARAMS_MAX);
	assert_mstr(ps.m->parts[0].params[MIME_PARAMS_MAX - 1].name, "p63");
	parsed_free(&ps);
}

static void test_disposition(void **state)
{
	struct parsed ps;
	const struct mime_part *p;

	parse_str(&ps, "Content-Disposition: Attachment;\r\n filename*0=\"a\";"
		       " filename*1=\"b.txt\"; size=10\r\n\r\n");
	p = &ps.m->parts[0];
	assert_mstr(p->disposition, "Attachment");
	assert_int_equal(p->n_disp_params, 2);
	assert_mstr(p->disp_params[0].name, "size");
	assert_mstr(p->disp_params[1].name, "filename");
	assert_mstr(p->disp_params[1].value, "ab.txt");
	parsed_free(&ps);

	parse_str(&ps, "Content-Disposition: ; filename=x\r\n\r\n");
	assert_mstr(ps.m->parts[0].disposition, NULL);
	assert_int_equal(ps.m->parts[0].n_disp_params, 0);
	parsed_free(&ps);
}

/* ---- addresses ---------------------------------------------------------------- */

static void test_addresses(void **state)
{
	struct parsed ps;
	const struct mime_envelope *e;

	parse_str(&ps, "From: <>\r\n"
		       "To: a@b@c, \"x y\" z <q@w>, <a@b> extra, foo bar <c@d>,,\r\n"
		       "Cc: (only a comment)\r\n"
		       "Bcc: Empty:;, Grp: x@y (X), <z@w>;, after@x\r\n"
		       "Sender: \"quoted\\\\local\"@host, [1.2.3.4]@lit, u@[5.6.7.8]\r\n"
		       "Reply-To: Name (c) <a (c) . b @ (c) d . e>\r\n"
		       "\r\n");
	e = &ps.m->parts[0].env;
	assert_int_equal(e->from.n, 1);
	assert_addr(&e->from.v[0], NULL, NULL, "MISSING_MAILBOX", "MISSING_DOMAIN");
	assert_int_equal(e->to.n, 4);
	assert_addr(&e->to.v[0], NULL, NULL, "a", "b");
	assert_addr(&e->to.v[1], "x y z", NULL, "q", "w");
	assert_addr(&e->to.v[2], NULL, NULL, "a", "b");
	assert_addr(&e->to.v[3], "foo bar", NULL, "c", "d");
	assert_int_equal(e->cc.n, 0);
	assert_int_equal(e->bcc.n, 7);
	assert_addr(&e->bcc.v[0], NULL, NULL, "Empty", NULL);
	assert_addr(&e->bcc.v[1], NULL, NULL, NULL, NULL);
	assert_addr(&e->bcc.v[2], NULL, NULL, "Grp", NULL);
	assert_addr(&e->bcc.v[3], "X", NULL, "x", "y");
	/* group end comes after <z@w> */
	assert_addr(&e->bcc.v[4], NULL, NULL, "z", "w");
	assert_addr(&e->bcc.v[5], NULL, NULL, NULL, NULL);
	assert_addr(&e->bcc.v[6], NULL, NULL, "after", "x");
	assert_int_equal(e->sender.n, 3);
	assert_addr(&e->sender.v[0], NULL, NULL, "quoted\\local", "host");
	assert_addr(&e->sender.v[1], NULL, NULL, "[1.2.3.4]", "lit");
	assert_addr(&e->sender.v[2], NULL, NULL, "u", "[5.6.7.8]");
	assert_int_equal(e->reply_to.n, 1);
	assert_addr(&e->reply_to.v[0], "Name", NULL, "a.b", "d.e");
	parsed_free(&ps);
}

static void test_address_limit(void **state)
{
	size_t cap = 64 + 12 * 3000, n;
	char *msg = malloc(cap);
	struct parsed ps;
	const struct mime_addr_list *l;

	assert_non_null(msg);
	/* a group with far too many members: cut, but the group is closed */
	n = (size_t)snprintf(msg, cap, "To: G:");
	for (int i = 0; i < 2500; i++)
		n += (size_t)snprintf(msg + n, cap - n, "u%04d@h, ", i);
	n += (size_t)snprintf(msg + n, cap - n, ";\r\n\r\n");
	parse_into(&ps, msg, n);
	l = &ps.m->parts[0].env.to;
	assert_int_equal(l->n, MIME_ADDRS_MAX);
	assert_addr(&l->v[0], NULL, NULL, "G", NULL);
	assert_addr(&l->v[MIME_ADDRS_MAX - 1], NULL, NULL, NULL, NULL);
	assert_addr(&l->v[MIME_ADDRS_MAX - 2], NULL, NULL, "u1997", "h");
	parsed_free(&ps);
	free(msg);
}

/* ---- boundaries ----------------------------------------------------------------- */

static void test_boundary_matching(void **state)
{
	struct parsed ps;

	/* inner "abc" inside outer "ab": the longest match wins */
	parse_str(&ps, "Content-Type: multipart/mixed; boundary=ab\r\n\r\n"
		       "--ab\r\nContent-Type: multipart/alternative; boundary=abc\r\n\r\n"
		       "--abc\r\n\r\nalt\r\n--abc--\r\n"
		       "--ab\r\n\r\nsecond\r\n"
		       "--abcd is an abc boundary? no: abc is closed, so ab\r\n"
		       "--ab--\r\n");
	assert_int_equal(ps.m->n_parts, 5);
	assert_int_equal(ps.m->parts[1].kind, MIME_KIND_MULTIPART);
	assert_body(&ps, 2, "alt");
	/* after abc closed, "--abcd..." matches "ab" by prefix: a new part */
	assert_body(&ps, 3, "second");
	assert_body(&ps, 4, "");
	assert_hdr(&ps, 4, "");
	parsed_free(&ps);

	/* a boundary inside a line, or indented, is text */
	parse_str(&ps, "Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\n"
		       "x --q\r\n --q\r\n--q--\r\n");
	assert_int_equal(ps.m->n_parts, 2);
	assert_body(&ps, 1, "x --q\r\n --q");
	parsed_free(&ps);

	/* unquoted boundary with '=' as real mailers write it */
	parse_str(&ps, "Content-Type: multipart/mixed; boundary=----=_Part_1_2.3\r\n\r\n"
		       "------=_Part_1_2.3\r\n\r\nbody\r\n------=_Part_1_2.3--\r\n");
	assert_int_equal(ps.m->n_parts, 2);
	assert_body(&ps, 1, "body");
	parsed_free(&ps);

	/* same boundary nested: the innermost wins, the outer sees its close */
	parse_str(&ps, "Content-Type: multipart/mixed; boundary=s\r\n\r\n"
		       "--s\r\nContent-Type: multipart/mixed; boundary=s\r\n\r\n"
		       "--s\r\n\r\ninner\r\n--s--\r\n"
		       "--s--\r\n");
	assert_int_equal(ps.m->parts[1].kind, MIME_KIND_MULTIPART);
	assert_body(&ps, 2, "inner");
	parsed_free(&ps);
}

static void test_missing_boundaries(void **state)
{
	struct parsed ps;

	/* boundary never appears: text/plain, whole body */
	parse_str(&ps, "Content-Type: multipart/mixed; boundary=nope\r\n\r\nall text\r\n");
	assert_int_equal(ps.m->n_parts, 1);
	assert_int_equal(ps.m->parts[0].kind, MIME_KIND_LEAF);
	assert_mstr(ps.m->parts[0].type, "text");
	assert_mstr(ps.m->parts[0].params[0].value, "us-ascii");
	assert_body(&ps, 0, "all text\r\n");
	parsed_free(&ps);

	/* the outer close ends an inner multipart without its own close */
	parse_str(&ps, "Content-Type: multipart/mixed; boundary=o\r\n\r\n"
		       "--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n"
		       "--i\r\n\r\nunclosed\r\n"
		       "--o\r\n\r\nnext\r\n--o--\r\n");
	assert_int_equal(ps.m->n_parts, 4);
	assert_int_equal(ps.m->parts[0].n_children, 2);
	assert_body(&ps, 2, "unclosed");
	assert_body(&ps, 3, "next");
	parsed_free(&ps);

	/* an inner multipart whose boundary never shows: demoted to text,
	 * its body up to the outer boundary */
	parse_str(&ps, "Content-Type: multipart/mixed; boundary=o\r\n\r\n"
		       "--o\r\nContent-Type: multipart/mixed; boundary=never\r\n\r\n"
		       "text\r\n--o--\r\n");
	assert_int_equal(ps.m->n_parts, 2);
	assert_int_equal(ps.m->parts[1].kind, MIME_KIND_LEAF);
	assert_mstr(ps.m->parts[1].type, "text");
	assert_body(&ps, 1, "text");
	parsed_free(&ps);
}

static void test_empty_parts(void **state)
{
	struct parsed ps;

	/* RFC 2046: the CRLF before a boundary line is the delimiter's */
	parse_str(&ps, "Content-Type: multipart/mixed; boundary=e\r\n\r\n"
		       "--e\r\n--e\r\nContent-Type: text/html\r\n--e\r\n\r\n--e\r\n"
		       "Content-Type: a/b\r\n\r\n--e--\r\n");
	assert_int_equal(ps.m->n_parts, 5);
	for (uint32_t i = 1; i <= 4; i++)
		assert_int_equal(ps.m->parts[i].body_len, 0);
	assert_hdr(&ps, 1, "");
	assert_hdr(&ps, 2, "Content-Type: text/html");
	assert_mstr(ps.m->parts[2].subtype, "html");
	assert_hdr(&ps, 3, "");
	assert_hdr(&ps, 4, "Content-Type: a/b\r\n");
	assert_mstr(ps.m->parts[4].type, "a");
	parsed_free(&ps);

	/* message/rfc822 whose header meets the boundary: an empty embedded
	 * message, still nested inside its parent's range */
	parse_str(&ps, "Content-Type: multipart/mixed; boundary=e\r\n\r\n"
		       "--e\r\nContent-Type: message/rfc822\r\n\r\n--e\r\n"
		       "Content-Type: message/rfc822\r\n--e--\r\n");
	assert_int_equal(ps.m->n_parts, 5);
	assert_int_equal(ps.m->parts[1].kind, MIME_KIND_MESSAGE);
	assert_int_equal(ps.m->parts[2].hdr_len, 0);
	assert_int_equal(ps.m->parts[2].body_len, 0);
	assert_true(ps.m->parts[2].has_envelope);
	assert_int_equal(ps.m->parts[3].kind, MIME_KIND_MESSAGE);
	parsed_free(&ps);
}

static void test_digest_default(void **state)
{
	struct parsed ps;

	parse_str(&ps, "Content-Type: multipart/digest; boundary=d\r\n\r\n"
		       "--d\r\n\r\nSubject: in\r\n\r\nx\r\n"
		       "--d\r\nContent-Type: text/plain\r\n\r\ny\r\n"
		       "--d\r\nContent-Type: multipart/mixed; boundary=n\r\n\r\n"
		       "--n\r\n\r\nplain again\r\n--n--\r\n--d--\r\n");
	assert_int_equal(ps.m->parts[1].kind, MIME_KIND_MESSAGE);
	assert_int_equal(ps.m->parts[1].n_params, 0);
	assert_mstr(ps.m->parts[2].env.subject, "in");
	assert_int_equal(ps.m->parts[3].kind, MIME_KIND_LEAF);
	/* the digest default does not reach into a nested multipart */
	assert_int_equal(ps.m->parts[5].kind, MIME_KIND_LEAF);
	assert_mstr(ps.m->parts[5].type, "text");
	parsed_free(&ps);
}

static void test_rfc822(void **state)
{
	struct parsed ps;
	const struct mime_part *p, *e;

	parse_str(&ps, "Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n"
		       "Subject: inner\r\nTo: t@x\r\n\r\ninner body\r\n");
	p = &ps.m->parts[0];
	e = &ps.m->parts[1];
	assert_int_equal(p->kind, MIME_KIND_MESSAGE);
	assert_ptr_equal(p->child, e);
	assert_true(e->has_envelope);
	assert_mstr(e->env.subject, "inner");
	assert_addr(&e->env.to.v[0], NULL, NULL, "t", "x");
	assert_hdr(&ps, 1, "Subject: inner\r\nTo: t@x\r\n\r\n");
	assert_body(&ps, 1, "inner body\r\n");
	assert_int_equal(p->body_lines, 4);
	parsed_free(&ps);
}

/* ---- limits ---------------------------------------------------------------------- */

static void load_parse(struct parsed *ps, const char *name)
{
	size_t len;
	char *msg = load(name, &len);

	parse_into(ps, msg, len);
	free(msg);
}

static void test_depth_limit(void **state)
{
	struct parsed ps;
	const struct mime_part *p;
	uint32_t max_depth = 0;

	load_parse(&ps, "deep_nesting");	/* 60 nested multiparts */
	for (uint32_t i = 0; i < ps.m->n_parts; i++)
		if (ps.m->parts[i].depth > max_depth)
			max_depth = ps.m->parts[i].depth;
	assert_int_equal(max_depth, MIME_DEPTH_MAX);
	assert_int_equal(ps.m->n_parts, MIME_DEPTH_MAX + 1);
	for (uint32_t i = 0; i < MIME_DEPTH_MAX; i++)
		assert_int_equal(ps.m->parts[i].kind, MIME_KIND_MULTIPART);
	p = &ps.m->parts[MIME_DEPTH_MAX];
	assert_int_equal(p->kind, MIME_KIND_LEAF);
	assert_mstr(p->type, "text");
	assert_mstr(p->subtype, "plain");
	/* the demoted part holds the rest of the nesting up to its parent's
	 * close delimiter */
	assert_true(p->body_len > 100);
	parsed_free(&ps);

	load_parse(&ps, "deep_rfc822");		/* 60 nested message/rfc822 */
	assert_int_equal(ps.m->n_parts, MIME_DEPTH_MAX + 1);
	assert_int_equal(ps.m->parts[MIME_DEPTH_MAX - 1].kind, MIME_KIND_MESSAGE);
	p = &ps.m->parts[MIME_DEPTH_MAX];
	assert_int_equal(p->kind, MIME_KIND_LEAF);
	assert_true(p->has_envelope);
	assert_mstr(p->env.subject, "r50");
	assert_mstr(p->type, "text");
	parsed_free(&ps);
}

static void test_parts_limit(void **state)
{
	struct parsed ps;
	const struct mime_part *r, *last;

	load_parse(&ps, "many_parts");		/* 1500 body parts */
	assert_int_equal(ps.m->n_parts, MIME_PARTS_MAX);
	r = &ps.m->parts[0];
	assert_int_equal(r->n_children, MIME_PARTS_MAX - 1);
	last = &ps.m->parts[MIME_PARTS_MAX - 1];
	assert_body(&ps, MIME_PARTS_MAX - 1, "part 998");
	assert_null(last->next);
	/* the multipart still spans the whole body */
	assert_int_equal((uint64_t)r->body_off + r->body_len, ps.len);
	parsed_free(&ps);
}

/* Many header fields and a huge address list must stay linear. */
static void test_big_headers(void **state)
{
	size_t cap = 40u * 1000 * 1000, n = 0;
	char *msg = malloc(cap);
	struct parsed ps;
	clock_t t0 = clock();
	double secs;

	assert_non_null(msg);
	for (int i = 0; i < 300000; i++)
		n += (size_t)snprintf(msg + n, cap - n, "X-Header-%d: value %d\r\n", i, i);
	n += (size_t)snprintf(msg + n, cap - n, "To: ");
	for (int i = 0; i < 200000; i++)
		n += (size_t)snprintf(msg + n, cap - n, "u%d@h,\r\n ", i);
	n += (size_t)snprintf(msg + n, cap - n, "x@y\r\nSubject: end\r\n\r\n");
	for (int i = 0; i < 200000; i++)
		n += (size_t)snprintf(msg + n, cap - n, "--no-boundary-here %d\r\n", i);
	parse_into(&ps, msg, n);
	secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	assert_mstr(ps.m->parts[0].env.subject, "end");
	assert_int_equal(ps.m->parts[0].env.to.n, MIME_ADDRS_MAX);
	parsed_free(&ps);
	free(msg);
	if (secs > 20.0)
		fail_msg("parsing took %.1f s: not linear?", secs);
}

/* Adversarial messages cannot blow the blob up: addresses, strings and
 * tokens have budgets. */
static void test_blob_bounded(void **state)
{
	size_t cap = 64u << 20, n = 0;
	char *msg = malloc(cap);
	struct parsed ps;
	uint32_t total_addrs = 0, envs = 0;

	assert_non_null(msg);
	/* 5 MiB subject, a 100 KiB type token, then 999 embedded messages
	 * with 2000 tiny addresses each */
	n += (size_t)snprintf(msg + n, cap - n, "Subject: ");
	memset(msg + n, 's', 5u << 20);
	n += 5u << 20;
	n += (size_t)snprintf(msg + n, cap - n, "\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n");
	for (int i = 0; i < 999; i++) {
		n += (size_t)snprintf(msg + n, cap - n, "--B\r\nContent-Type: message/rfc822\r\n\r\n"
				      "Content-Type: ");
		if (i == 0) {
			memset(msg + n, 't', 100000);
			n += 100000;
		} else {
			n += (size_t)snprintf(msg + n, cap - n, "text");
		}
		n += (size_t)snprintf(msg + n, cap - n, "/plain\r\nTo: ");
		for (int k = 0; k < 2100; k++)
			n += (size_t)snprintf(msg + n, cap - n, "a,");
		n += (size_t)snprintf(msg + n, cap - n, "\r\n\r\nx\r\n");
	}
	n += (size_t)snprintf(msg + n, cap - n, "--B--\r\n");
	assert_true(n < cap);
	parse_into(&ps, msg, n);
	assert_true(ps.blob_len <= MIME_BLOB_MAX);
	/* the root's parameters were written first, then the subject took the rest */
	assert_int_equal(ps.m->parts[0].env.subject.len, MIME_STRINGS_MAX - strlen("boundaryB"));
	assert_int_equal(ps.m->parts[2].type.len, MIME_TOKEN_MAX);
	for (uint32_t i = 0; i < ps.m->n_parts; i++) {
		const struct mime_part *p = &ps.m->parts[i];

		if (!p->has_envelope)
			continue;
		envs++;
		total_addrs += p->env.to.n;
		assert_true(p->env.to.n <= MIME_ADDRS_MAX);
	}
	assert_int_equal(envs, MIME_PARTS_MAX / 2);	/* the root + 499 message/rfc822 */
	assert_int_equal(total_addrs, MIME_ADDRS_TOTAL_MAX);
	/* the budget is spent: later values are cut to nothing, not dropped */
	assert_non_null(ps.m->parts[2].env.to.v[0].mailbox.p);
	assert_int_equal(ps.m->parts[2].env.to.v[0].mailbox.len, 0);
	parsed_free(&ps);
	free(msg);
}

/* ---- the blob ---------------------------------------------------------------------- */

static const char *const corpus[] = {
	"simple", "mixed_alternative", "nested_related", "rfc822_part", "missing_close",
	"missing_boundary_param", "boundary_inside_line", "preamble_epilogue",
	"encoded_words", "raw_8bit_headers", "folded_headers", "headers_only",
	"body_without_headers", "bare_lf", "empty_parts", "params", "groups", "digest",
	"top_level_rfc822", "rfc822_in_rfc822", "invalid_content_type",
	"nested_same_boundary", "multipart_empty_body_part", "deep_nesting", "many_parts",
	"deep_rfc822", "deep_prefix_boundaries",
};
#define N_CORPUS (sizeof(corpus) / sizeof(corpus[0]))

static void test_corpus_invariants(void **state)
{
	for (size_t i = 0; i < N_CORPUS; i++) {
		struct parsed ps;
		uint8_t *blob2;
		size_t bl2;
		uint32_t ml = 0;

		load_parse(&ps, corpus[i]);
		/* deterministic */
		assert_int_equal(mime_parse(ps.msg, ps.len, &blob2, &bl2), 0);
		assert_int_equal(bl2, ps.blob_len);
		assert_memory_equal(blob2, ps.blob, bl2);
		free(blob2);
		assert_int_equal(mime_blob_peek(ps.blob, ps.blob_len, &ml), 0);
		assert_int_equal(ml, ps.len);
		/* the blob is linear in the message and its parts */
		assert_true(ps.blob_len < 1024 + ps.len + 128 * ps.m->n_parts);
		parsed_free(&ps);
	}
}

/* Decode a damaged blob: rejected, or a tree that keeps every invariant
 * and renders. */
static void try_damaged(const uint8_t *blob, size_t len)
{
	struct mime_msg *m = NULL;
	uint32_t ml;

	if (mime_blob_decode(blob, len, &m) < 0) {
		assert_null(m);
		return;
	}
	assert_int_equal(mime_blob_peek(blob, len, &ml), 0);
	check_tree(m, NULL, ml);
	{
		struct imap_buf b;

		imap_buf_init(&b);
		assert_int_equal(imap_render_envelope(m, &b), 0);
		assert_int_equal(imap_render_body(m, true, &b), 0);
		assert_int_equal(imap_render_body(m, false, &b), 0);
		imap_buf_free(&b);
	}
	mime_msg_free(&m);
}

static void test_blob_truncated(void **state)
{
	static const char *const names[] = { "rfc822_part", "groups", "params" };

	for (size_t k = 0; k < 3; k++) {
		struct parsed ps;

		load_parse(&ps, names[k]);
		for (size_t n = 0; n < ps.blob_len; n++) {
			uint8_t *copy = malloc(n ? n : 1);
			struct mime_msg *m = NULL;

			assert_non_null(copy);
			memcpy(copy, ps.blob, n);
			/* as is: the length field disagrees */
			assert_int_equal(mime_blob_decode(copy, n, &m), -1);
			assert_null(m);
			/* with the length field fixed, the deeper checks must
			 * still find the cut */
			if (n >= 12) {
				put_le32(copy + 8, (uint32_t)n);
				assert_int_equal(mime_blob_decode(copy, n, &m), -1);
			}
			free(copy);
		}
		parsed_free(&ps);
	}
}

static void test_blob_bitflips(void **state)
{
	static const char *const names[] = { "rfc822_part", "groups", "params",
					     "empty_parts", "digest" };
	static const uint8_t masks[] = { 0x01, 0x02, 0x04, 0x10, 0x80, 0xff };

	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		struct parsed ps;
		uint8_t *copy;

		load_parse(&ps, names[k]);
		copy = malloc(ps.blob_len);
		assert_non_null(copy);
		for (size_t i = 0; i < ps.blob_len; i++) {
			for (size_t j = 0; j < sizeof(masks); j++) {
				memcpy(copy, ps.blob, ps.blob_len);
				copy[i] ^= masks[j];
				try_damaged(copy, ps.blob_len);
			}
		}
		free(copy);
		parsed_free(&ps);
	}
}

static void test_blob_header(void **state)
{
	struct parsed ps;
	uint8_t *copy;
	struct mime_msg *m;

	parse_str(&ps, "Subject: x\r\n\r\n");
	copy = malloc(ps.blob_len);
	assert_non_null(copy);

	memcpy(copy, ps.blob, ps.blob_len);
	copy[4] = MIME_BLOB_VERSION + 1;
	assert_int_equal(mime_blob_peek(copy, ps.blob_len, NULL), -1);
	assert_int_equal(mime_blob_decode(copy, ps.blob_len, &m), -1);

	memcpy(copy, ps.blob, ps.blob_len);
	copy[0] = 'X';
	assert_int_equal(mime_blob_decode(copy, ps.blob_len, &m), -1);

	/* absurd counts are refused before any allocation is sized by them */
	memcpy(copy, ps.blob, ps.blob_len);
	put_le32(copy + 16, 0xffffffffu);
	assert_int_equal(mime_blob_decode(copy, ps.blob_len, &m), -1);
	memcpy(copy, ps.blob, ps.blob_len);
	put_le32(copy + 24, 0x7fffffffu);
	assert_int_equal(mime_blob_decode(copy, ps.blob_len, &m), -1);

	assert_int_equal(mime_blob_peek(NULL, 0, NULL), -1);
	assert_int_equal(mime_blob_decode(ps.blob, 3, &m), -1);
	assert_null(m);
	mime_msg_free(NULL);
	m = NULL;
	mime_msg_free(&m);
	free(copy);
	parsed_free(&ps);
}

/* ---- random messages --------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

struct gen {
	char *p;
	size_t len, cap;
};

static void gput(struct gen *g, const char *s)
{
	size_t n = strlen(s);

	if (g->len + n > g->cap)
		return;
	memcpy(g->p + g->len, s, n);
	g->len += n;
}

static void gen_entity(struct gen *g, int depth, const char *eol)
{
	static const char *const bnds[] = { "a", "ab", "abc", "b", "=_x" };
	char line[128];
	uint32_t kind = depth > 6 ? 0 : rnd(4);

	if (rnd(5) == 0)
		eol = eol[0] == '\r' ? "\n" : "\r\n";
	if (rnd(3) == 0) {
		snprintf(line, sizeof(line), "Subject: s%u%s", rnd(100), eol);
		gput(g, line);
	}
	if (kind == 1) {
		const char *b = bnds[rnd(5)];
		uint32_t n = rnd(4);

		snprintf(line, sizeof(line), "Content-Type: multipart/%s; boundary=\"%s\"%s%s",
			 rnd(4) ? "mixed" : "digest", b, eol, rnd(6) ? eol : "");
		gput(g, line);
		if (rnd(2))
			gput(g, "preamble\r\n");
		for (uint32_t i = 0; i < n; i++) {
			snprintf(line, sizeof(line), "--%s%s%s", b, rnd(8) ? "" : "  ", eol);
			gput(g, line);
			gen_entity(g, depth + 1, eol);
			gput(g, eol);
		}
		if (rnd(4)) {
			snprintf(line, sizeof(line), "--%s--%s", b, eol);
			gput(g, line);
		}
		if (rnd(3) == 0)
			gput(g, "epilogue\n");
	} else if (kind == 2) {
		snprintf(line, sizeof(line), "Content-Type: message/rfc822%s%s", eol,
			 rnd(6) ? eol : "");
		gput(g, line);
		gen_entity(g, depth + 1, eol);
	} else {
		if (rnd(2)) {
			snprintf(line, sizeof(line), "Content-Type: text/plain%s", eol);
			gput(g, line);
		}
		if (rnd(6))
			gput(g, eol);
		for (uint32_t i = rnd(4); i > 0; i--) {
			switch (rnd(5)) {
			case 0:
				snprintf(line, sizeof(line), "--%s%s", bnds[rnd(5)], eol);
				break;
			case 1:
				snprintf(line, sizeof(line), "%s", eol);
				break;
			default:
				snprintf(line, sizeof(line), "text %u%s", rnd(1000), eol);
			}
			gput(g, line);
		}
	}
}

static void test_random_messages(void **state)
{
	struct gen g;

	g.cap = 1 << 16;
	g.p = malloc(g.cap);
	assert_non_null(g.p);
	for (int iter = 0; iter < 3000; iter++) {
		struct parsed ps;

		g.len = 0;
		gen_entity(&g, 0, "\r\n");
		if (rnd(4) == 0 && g.len > 0)
			g.len = rnd((uint32_t)g.len);	/* truncated anywhere */
		parse_into(&ps, g.p, g.len);
		try_damaged(ps.blob, ps.blob_len);
		parsed_free(&ps);
	}
	free(g.p);
}

/* ---- allocation failures ----------------------------------------------------------- */

static void test_alloc_failures(void **state)
{
	size_t len;
	char *msg = load("rfc822_part", &len);
	bool succeeded = false;

	for (int n = 0; n < 200 && !succeeded; n++) {
		uint8_t *blob = (uint8_t *)"x";
		size_t bl = 1;
		int r;

		fail_alloc_after = n;
		r = mime_parse(msg, len, &blob, &bl);
		fail_alloc_after = -1;
		if (r < 0) {
			assert_null(blob);
			assert_int_equal(bl, 0);
			continue;
		}
		succeeded = true;
		for (int k = 0; k < 3; k++) {
			struct mime_msg *m = (struct mime_msg *)1;

			fail_alloc_after = k;
			r = mime_blob_decode(blob, bl, &m);
			fail_alloc_after = -1;
			if (r < 0) {
				assert_null(m);
			} else {
				check_tree(m, msg, len);
				mime_msg_free(&m);
			}
		}
		free(blob);
	}
	assert_true(succeeded);
	free(msg);
}

static void test_helpers(void **state)
{
	struct mime_str s = { "Text", 4 }, nil = { NULL, 0 };
	struct mime_param pp[2] = { { { "a", 1 }, { "1", 1 } }, { { "Charset", 7 }, { "x", 1 } } };

	assert_true(mime_str_eq(s, "text"));
	assert_true(mime_str_eq(s, "TEXT"));
	assert_false(mime_str_eq(s, "tex"));
	assert_false(mime_str_eq(nil, ""));
	assert_mstr(mime_param_get(pp, 2, "charset"), "x");
	assert_mstr(mime_param_get(pp, 2, "none"), NULL);
	assert_mstr(mime_param_get(NULL, 0, "a"), NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_multipart_offsets),
		cmocka_unit_test(test_bare_lf),
		cmocka_unit_test(test_degenerate_messages),
		cmocka_unit_test(test_header_values),
		cmocka_unit_test(test_content_type),
		cmocka_unit_test(test_params_limit),
		cmocka_unit_test(test_disposition),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_address_limit),
		cmocka_unit_test(test_boundary_matching),
		cmocka_unit_test(test_missing_boundaries),
		cmocka_unit_test(test_empty_parts),
		cmocka_unit_test(test_digest_default),
		cmocka_unit_test(test_rfc822),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_parts_limit),
		cmocka_unit_test(test_big_headers),
		cmocka_unit_test(test_blob_bounded),
		cmocka_unit_test(test_corpus_invariants),
		cmocka_unit_test(test_blob_truncated),
		cmocka_unit_test(test_blob_bitflips),
		cmocka_unit_test(test_blob_header),
		cmocka_unit_test(test_random_messages),
		cmocka_unit_test(test_alloc_failures),
		cmocka_unit_test(test_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
