/*
 * imap_parse_tok.c - the IMAP parser's tokenizer: SP and line end, atoms,
 * quoted strings, literals (incl. the APPEND message literal and literal8),
 * astring / nstring, numbers, sequence sets, mailbox names and list
 * patterns (mUTF-7 or UTF-8), dates, parenthesised lists, and flag lists.
 * Works on one complete command as sent; see imap_parse_private.h.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parse.h"
#include "imap_parse_private.h"
#include "imap_utf7.h"

/* ---- tokenizer --------------------------------------------------------- */

bool p_at_end(const struct pctx *c)
{
	size_t rest = c->len - c->pos;

	return rest == 0 || (rest == 1 && c->buf[c->pos] == '\n') ||
	       (rest == 2 && c->buf[c->pos] == '\r' && c->buf[c->pos + 1] == '\n');
}

int p_peek(const struct pctx *c)
{
	if (c->pos >= c->len)
		return -1;
	unsigned char ch = (unsigned char)c->buf[c->pos];
	if (ch == '\n' || (ch == '\r' && c->pos + 1 < c->len && c->buf[c->pos + 1] == '\n'))
		return -1;
	return ch;
}

static const char *cmdname(const struct pctx *c)
{
	return c->cmd != NULL ? imap_cmd_name(c->cmd->id) : "command";
}

int p_sp(struct pctx *c, const char *what)
{
	int ch = p_peek(c);

	if (ch == ' ') {
		c->pos++;
		return 0;
	}
	if (ch < 0)
		return p_fail(c, IMAP_ERR_SYNTAX, "Missing %s", what);
	return p_fail(c, IMAP_ERR_SYNTAX, "Expected space before %s", what);
}

int p_end(struct pctx *c)
{
	if (p_at_end(c))
		return 0;
	if (p_peek(c) == ' ' && c->pos + 1 < c->len && p_at_end(&(struct pctx){
		.buf = c->buf, .len = c->len, .pos = c->pos + 1 }))
		return p_fail(c, IMAP_ERR_SYNTAX, "Trailing space after %s arguments", cmdname(c));
	return p_fail(c, IMAP_ERR_SYNTAX, "Unexpected extra arguments to %s", cmdname(c));
}

int p_char(struct pctx *c, char ch, const char *what)
{
	if (p_peek(c) == (unsigned char)ch) {
		c->pos++;
		return 0;
	}
	return p_fail(c, IMAP_ERR_SYNTAX, "Missing '%c' in %s", ch, what);
}

bool p_opt_char(struct pctx *c, char ch)
{
	if (p_peek(c) == (unsigned char)ch) {
		c->pos++;
		return true;
	}
	return false;
}

bool p_atom_char(int ch, bool bracket_ok)
{
	if (ch < 0)
		return false;
	if (ch >= 0x80)
		return true;	/* 8-bit: tolerated (UTF-8) */
	if (ch <= 0x1f || ch == 0x7f)
		return false;
	switch (ch) {
	case '(': case ')': case '{': case ' ': case '%': case '*': case '"': case '\\':
		return false;
	case ']':
		return bracket_ok;
	default:
		return true;
	}
}

int p_atom(struct pctx *c, const char *what, bool bracket_ok, const char **p_r, size_t *len_r)
{
	size_t start = c->pos;

	while (p_atom_char(p_peek(c), bracket_ok))
		c->pos++;
	if (c->pos == start) {
		if (p_peek(c) < 0)
			return p_fail(c, IMAP_ERR_SYNTAX, "Missing %s", what);
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s", what);
	}
	*p_r = c->buf + start;
	*len_r = c->pos - start;
	return 0;
}

bool p_word_eq(const char *p, size_t len, const char *word)
{
	size_t wl = strlen(word);

	return len == wl && strncasecmp(p, word, wl) == 0;
}

int p_dup(struct pctx *c, const char *p, size_t len, struct imap_str *out)
{
	char *s = imap_arena_strndup(c->a, p, len);

	if (s == NULL)
		return p_nomem(c);
	out->s = s;
	out->len = len;
	return 0;
}

int p_quoted(struct pctx *c, const char *what, struct imap_str *out)
{
	size_t start = ++c->pos;	/* after the opening quote */
	size_t n = 0;
	bool esc = false;

	/* first pass: validate and measure */
	for (;;) {
		if (c->pos >= c->len)
			return p_fail(c, IMAP_ERR_SYNTAX, "Unterminated quoted string in %s", what);
		unsigned char ch = (unsigned char)c->buf[c->pos];
		if (ch == '\r' || ch == '\n')
			return p_fail(c, IMAP_ERR_SYNTAX, "Unterminated quoted string in %s", what);
		if (ch == '\0')
			return p_fail(c, IMAP_ERR_SYNTAX, "NUL in quoted string");
		c->pos++;
		if (esc) {
			if (ch != '"' && ch != '\\')
				return p_fail(c, IMAP_ERR_SYNTAX, "Invalid escape \\%c in quoted string",
					      ch);
			esc = false;
			n++;
		} else if (ch == '\\') {
			esc = true;
		} else if (ch == '"') {
			break;
		} else {
			n++;
		}
	}
	char *s = imap_arena_alloc(c->a, n + 1);
	if (s == NULL)
		return p_nomem(c);
	size_t o = 0;
	for (size_t i = start; i < c->pos - 1; i++) {
		if (c->buf[i] == '\\')
			i++;
		s[o++] = c->buf[i];
	}
	s[o] = '\0';
	/* RFC 6855 3: after ENABLE UTF8=ACCEPT a quoted string may carry
	 * UTF-8, and only valid UTF-8 */
	if (c->lim->utf8_accept && !imap_utf8_valid(s, o))
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid UTF-8 in quoted string in %s", what);
	out->s = s;
	out->len = o;
	return 0;
}

/* A literal at pos ('{' or '~{').  big: this may be the APPEND message
 * (max_append_literal).  Sets the data span; *lit8_r for "~{". */
int p_literal_span(struct pctx *c, const char *what, bool big, bool lit8_ok,
		   const char **data_r, size_t *len_r, bool *lit8_r)
{
	bool lit8 = false;

	if (p_peek(c) == '~') {
		if (!lit8_ok)
			return p_fail(c, IMAP_ERR_SYNTAX, "literal8 not allowed in %s", what);
		lit8 = true;
		c->pos++;
	}
	if (p_char(c, '{', what) < 0)
		return -1;
	uint64_t n = 0;
	size_t digits = 0;
	while (p_peek(c) >= '0' && p_peek(c) <= '9') {
		if (n > (UINT64_MAX - 9) / 10)
			return p_fail(c, IMAP_ERR_LITERAL_TOO_BIG, "Literal too big");
		n = n * 10 + (uint64_t)(c->buf[c->pos] - '0');
		c->pos++;
		digits++;
	}
	p_opt_char(c, '+');
	if (digits == 0 || p_peek(c) != '}')
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid literal in %s", what);
	c->pos++;
	if (c->pos < c->len && c->buf[c->pos] == '\r')
		c->pos++;
	if (c->pos >= c->len || c->buf[c->pos] != '\n')
		return p_fail(c, IMAP_ERR_SYNTAX, "Missing line end after literal in %s", what);
	c->pos++;
	uint64_t limit = c->lim->max_literal;
	bool message = false;
	if (big && !c->big_literal_used && n > limit) {
		limit = c->lim->max_append_literal;
		message = true;
	}
	if (n > limit) {
		p_fail(c, IMAP_ERR_LITERAL_TOO_BIG, big ? "Message too big" : "Literal too big");
		if (big) {
			c->err->no = true;
			c->err->resp_code = "TOOBIG";
		}
		return -1;
	}
	if (n > c->len - c->pos)
		return p_fail(c, IMAP_ERR_SYNTAX, "Literal data missing in %s", what);
	if (message)
		c->big_literal_used = true;
	*data_r = c->buf + c->pos;
	*len_r = (size_t)n;
	c->pos += (size_t)n;
	if (lit8_r != NULL)
		*lit8_r = lit8;
	return 0;
}

static int p_literal_str(struct pctx *c, const char *what, struct imap_str *out)
{
	const char *d;
	size_t n;

	if (p_literal_span(c, what, false, false, &d, &n, NULL) < 0)
		return -1;
	if (memchr(d, '\0', n) != NULL)
		return p_fail(c, IMAP_ERR_SYNTAX, "NUL in literal");
	return p_dup(c, d, n, out);
}

int p_string(struct pctx *c, const char *what, struct imap_str *out)
{
	int ch = p_peek(c);

	if (ch == '"')
		return p_quoted(c, what, out);
	if (ch == '{')
		return p_literal_str(c, what, out);
	if (ch < 0)
		return p_fail(c, IMAP_ERR_SYNTAX, "Missing %s", what);
	return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s: expected a string", what);
}

int p_astring(struct pctx *c, const char *what, struct imap_str *out)
{
	int ch = p_peek(c);

	if (ch == '"' || ch == '{')
		return p_string(c, what, out);
	const char *p;
	size_t n;
	if (p_atom(c, what, true, &p, &n) < 0)
		return -1;
	return p_dup(c, p, n, out);
}

int p_nstring(struct pctx *c, const char *what, struct imap_str *out, bool *nil_r)
{
	int ch = p_peek(c);

	*nil_r = false;
	if (ch == '"' || ch == '{')
		return p_string(c, what, out);
	const char *p;
	size_t n;
	if (p_atom(c, what, false, &p, &n) < 0)
		return -1;
	if (!p_word_eq(p, n, "NIL"))
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s: expected a string or NIL", what);
	*nil_r = true;
	out->s = "";
	out->len = 0;
	return 0;
}

static int p_digits(struct pctx *c, const char *what, uint64_t max, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t start = c->pos;

	while (p_peek(c) >= '0' && p_peek(c) <= '9') {
		unsigned d = (unsigned)(c->buf[c->pos] - '0');
		if (v > (max - d) / 10)
			return p_fail(c, IMAP_ERR_SYNTAX, "Number too large in %s", what);
		v = v * 10 + d;
		c->pos++;
	}
	if (c->pos == start) {
		if (p_peek(c) < 0)
			return p_fail(c, IMAP_ERR_SYNTAX, "Missing %s", what);
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s: expected a number", what);
	}
	if (p_atom_char(p_peek(c), false))
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s: expected a number", what);
	*v_r = v;
	return 0;
}

int p_number(struct pctx *c, const char *what, uint32_t *v_r)
{
	uint64_t v;

	if (p_digits(c, what, UINT32_MAX, &v) < 0)
		return -1;
	*v_r = (uint32_t)v;
	return 0;
}

int p_nz_number(struct pctx *c, const char *what, uint32_t *v_r)
{
	if (p_number(c, what, v_r) < 0)
		return -1;
	if (*v_r == 0)
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s: must not be 0", what);
	return 0;
}

int p_number64(struct pctx *c, const char *what, bool zero_ok, uint64_t *v_r)
{
	if (p_digits(c, what, INT64_MAX, v_r) < 0)
		return -1;
	if (*v_r == 0 && !zero_ok)
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s: must not be 0", what);
	return 0;
}

int p_seqset(struct pctx *c, const struct imap_seqset **set_r)
{
	size_t n = imap_seqset_span(c->buf + c->pos, c->len - c->pos);
	const char *error = NULL;

	if (n == 0) {
		if (p_peek(c) < 0)
			return p_fail(c, IMAP_ERR_SYNTAX, "Missing sequence set");
		return p_fail(c, IMAP_ERR_BAD_SEQSET, "Invalid sequence set");
	}
	if (p_atom_char(p_peek(&(struct pctx){ .buf = c->buf, .len = c->len, .pos = c->pos + n }),
		      false))
		return p_fail(c, IMAP_ERR_BAD_SEQSET, "Invalid sequence set");
	struct imap_seqset *s = imap_seqset_parse(c->buf + c->pos, n, c->a, &error);
	if (s == NULL) {
		if (strcmp(error, "Out of memory") == 0)
			return p_nomem(c);
		return p_fail(c, IMAP_ERR_BAD_SEQSET, "%s", error);
	}
	c->pos += n;
	*set_r = s;
	return 0;
}

void imap_mailbox_normalize(char *name, size_t len)
{
	if (len >= 5 && strncasecmp(name, "INBOX", 5) == 0 && (len == 5 || name[5] == '/'))
		memcpy(name, "INBOX", 5);
}

/* Net-Unicode (RFC 5198 2, as RFC 6855 3 asks of mailbox names): no C0
 * or C1 control, no DEL, no U+2028 LINE / U+2029 PARAGRAPH SEPARATOR.
 * name is valid UTF-8. */
static bool name_chars_ok(const char *name, size_t len)
{
	const unsigned char *p = (const unsigned char *)name;

	for (size_t i = 0; i < len; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
		if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
			return false;	/* U+0080..U+009F */
		if (p[i] == 0xe2 && i + 2 < len && p[i + 1] == 0x80 &&
		    (p[i + 2] == 0xa8 || p[i + 2] == 0xa9))
			return false;	/* U+2028, U+2029 */
	}
	return true;
}

/* Decode a mailbox name or list pattern held in *s (arena memory). */
int p_decode_mailbox(struct pctx *c, struct imap_str *s, bool normalize)
{
	if (c->lim->utf8_accept) {
		if (!imap_utf8_valid(s->s, s->len))
			return p_fail(c, IMAP_ERR_BAD_MAILBOX, "Mailbox name is not valid UTF-8");
	} else {
		size_t cap = IMAP_UTF7_DECODED_MAX(s->len) + 1;
		char *out = imap_arena_alloc(c->a, cap);
		size_t olen;
		if (out == NULL)
			return p_nomem(c);
		if (imap_utf7_decode(s->s, s->len, out, cap, &olen) < 0)
			return p_fail(c, IMAP_ERR_BAD_MAILBOX,
				      "Mailbox name is not valid modified UTF-7");
		s->s = out;
		s->len = olen;
	}
	if (!name_chars_ok(s->s, s->len))
		return p_fail(c, IMAP_ERR_BAD_MAILBOX,
			      "Mailbox name contains a control character or line separator");
	if (normalize)
		imap_mailbox_normalize((char *)s->s, s->len);
	return 0;
}

int p_mailbox(struct pctx *c, const char *what, struct imap_str *out)
{
	if (p_astring(c, what, out) < 0)
		return -1;
	return p_decode_mailbox(c, out, true);
}

/* list-mailbox: 1*list-char / string (list-char adds '%', '*', ']'). */
int p_list_mailbox(struct pctx *c, const char *what, struct imap_str *out)
{
	int ch = p_peek(c);

	if (ch == '"' || ch == '{') {
		if (p_string(c, what, out) < 0)
			return -1;
	} else {
		size_t start = c->pos;
		while (p_atom_char(p_peek(c), true) || p_peek(c) == '%' || p_peek(c) == '*')
			c->pos++;
		if (c->pos == start) {
			if (p_peek(c) < 0)
				return p_fail(c, IMAP_ERR_SYNTAX, "Missing %s", what);
			return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s", what);
		}
		if (p_dup(c, c->buf + start, c->pos - start, out) < 0)
			return -1;
	}
	return p_decode_mailbox(c, out, false);
}

int p_date(struct pctx *c, const char *what, int32_t *day_r)
{
	const char *p;
	size_t n;
	struct imap_str q;

	if (p_peek(c) == '"') {
		if (p_quoted(c, what, &q) < 0)
			return -1;
		p = q.s;
		n = q.len;
	} else if (p_atom(c, what, false, &p, &n) < 0) {
		return -1;
	}
	if (imap_parse_date(p, n, day_r) < 0)
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s: expected d-Mon-yyyy", what);
	return 0;
}

/* "(" ... ")" list walker: calls item() for each element; empty lists
 * allowed if empty_ok. */
int p_list(struct pctx *c, const char *what, bool empty_ok,
	   int (*item)(struct pctx *c, void *arg), void *arg)
{
	if (p_char(c, '(', what) < 0 || p_enter(c) < 0)
		return -1;
	if (p_opt_char(c, ')')) {
		p_leave(c);
		if (!empty_ok)
			return p_fail(c, IMAP_ERR_SYNTAX, "Empty %s", what);
		return 0;
	}
	for (;;) {
		if (item(c, arg) < 0)
			return -1;
		if (p_opt_char(c, ')'))
			break;
		if (p_peek(c) != ' ')
			return p_fail(c, IMAP_ERR_SYNTAX, "Missing ')' in %s", what);
		c->pos++;
	}
	p_leave(c);
	return 0;
}

void *p_vec_push(struct pctx *c, struct vec *v)
{
	if (v->n == v->cap) {
		size_t ncap = v->cap ? v->cap * 2 : 8;
		void *nv = imap_arena_alloc(c->a, ncap * v->elem);
		if (nv == NULL) {
			p_nomem(c);
			return NULL;
		}
		if (v->n > 0)
			memcpy(nv, v->v, v->n * v->elem);
		v->v = nv;
		v->cap = ncap;
	}
	return (char *)v->v + v->n++ * v->elem;
}

/* ---- flags ------------------------------------------------------------- */

static const struct {
	const char *name;
	uint32_t bit;
} sys_flags[] = {
	{ "\\Seen", IMAP_FLAG_SEEN },	    { "\\Answered", IMAP_FLAG_ANSWERED },
	{ "\\Flagged", IMAP_FLAG_FLAGGED }, { "\\Deleted", IMAP_FLAG_DELETED },
	{ "\\Draft", IMAP_FLAG_DRAFT },
};

int p_flag(struct pctx *c, void *arg)
{
	struct flag_acc *f = arg;
	size_t start = c->pos;
	const char *p;
	size_t n;

	if (p_opt_char(c, '\\')) {
		if (p_atom(c, "flag", false, &p, &n) < 0)
			return -1;
		n = c->pos - start;
		p = c->buf + start;
		for (size_t i = 0; i < sizeof(sys_flags) / sizeof(sys_flags[0]); i++)
			if (p_word_eq(p, n, sys_flags[i].name)) {
				f->system |= sys_flags[i].bit;
				return 0;
			}
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid system flag %.*s",
			      (int)(n > 40 ? 40 : n), p);
	}
	if (p_atom(c, "flag", false, &p, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return p_fail(c, IMAP_ERR_SYNTAX, "Invalid keyword: not US-ASCII");
	struct imap_str *k = p_vec_push(c, &f->kw);
	if (k == NULL)
		return -1;
	return p_dup(c, p, n, k);
}

struct kw_ix {
	const struct imap_str *s;
	size_t i;
};

static int kw_cmp(const void *a, const void *b)
{
	const struct kw_ix *x = a, *y = b;
	int r = strcasecmp(x->s->s, y->s->s);

	if (r != 0)
		return r;
	return x->i < y->i ? -1 : (x->i > y->i);
}

/* Deduplicate keywords case-insensitively, first spelling and order kept,
 * in O(n log n). */
int p_finish_flags(struct pctx *c, struct flag_acc *f, struct imap_flags *out)
{
	struct imap_str *kw = f->kw.v;
	size_t n = f->kw.n;

	out->system = f->system;
	out->keywords = kw;
	out->n_keywords = n;
	if (n < 2)
		return 0;
	struct kw_ix *ix = imap_arena_alloc(c->a, n * sizeof(*ix));
	bool *drop = imap_arena_zalloc(c->a, n * sizeof(*drop));
	if (ix == NULL || drop == NULL)
		return p_nomem(c);
	for (size_t i = 0; i < n; i++) {
		ix[i].s = &kw[i];
		ix[i].i = i;
	}
	qsort(ix, n, sizeof(*ix), kw_cmp);
	for (size_t i = 1; i < n; i++)
		if (strcasecmp(ix[i].s->s, ix[i - 1].s->s) == 0)
			drop[ix[i].i] = true;
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (!drop[i])
			kw[m++] = kw[i];
	out->n_keywords = m;
	return 0;
}

/* "(" [flag *(SP flag)] ")" */
int p_flag_list(struct pctx *c, struct imap_flags *out)
{
	struct flag_acc f = { .kw = { .elem = sizeof(struct imap_str) } };

	if (p_list(c, "flag list", true, p_flag, &f) < 0)
		return -1;
	return p_finish_flags(c, &f, out);
}
