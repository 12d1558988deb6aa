/*
 * imap_fetch_parse.c - the arguments of [UID] FETCH (RFC 3501 6.4.5,
 * RFC 7162 CHANGEDSINCE/VANISHED): sequence set, data items (macros,
 * simple items, BODY[section]<partial> and BODY.PEEK[...]) and modifiers.
 *
 * Items are read as a name made of letters, digits and '.', then an
 * optional "[section]" and "<start.count>".  The section is parsed into
 * part numbers and a kind, and a canonical text is built for the reply
 * ("BODY[1.HEADER.FIELDS (From To)]"), so the session echoes exactly what
 * it serves.
 */
#include <stdio.h>
#include <string.h>

#include "imap_parse.h"
#include "imap_parse_private.h"

struct fetch_acc {
	uint32_t items;
	struct imap_fetch_body *bodies;
	size_t n, cap;
	struct imap_str *fields;	/* header-list being collected */
	size_t nf, capf;
};

/* Digits up to UINT32_MAX, whatever follows (sections use '.' and '>'
 * right after numbers). */
static int p_uint_raw(struct pctx *c, const char *what, bool nz, uint32_t *v_r)
{
	uint64_t v = 0;
	size_t start = c->pos;

	while (p_peek(c) >= '0' && p_peek(c) <= '9') {
		v = v * 10 + (uint64_t)(c->buf[c->pos] - '0');
		if (v > UINT32_MAX)
			return p_fail(c, IMAP_ERR_SYNTAX, "Number too large in %s", what);
		c->pos++;
	}
	if (c->pos == start)
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s: expected a number", what);
	if (nz && v == 0)
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s: must not be 0", what);
	*v_r = (uint32_t)v;
	return 0;
}

static bool is_name_char(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '.';
}

static bool is_atom_str(const struct imap_str *s)
{
	if (s->len == 0)
		return false;
	for (size_t i = 0; i < s->len; i++) {
		unsigned char ch = (unsigned char)s->s[i];
		if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\]", ch) != NULL)
			return false;
	}
	return true;
}

/* A small string builder in the arena. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static int sb_add(struct pctx *c, struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 32;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		char *np = imap_arena_alloc(c->a, ncap);
		if (np == NULL)
			return p_nomem(c);
		if (b->len > 0)
			memcpy(np, b->p, b->len);
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int sb_str(struct pctx *c, struct sbuf *b, const char *s)
{
	return sb_add(c, b, s, strlen(s));
}

static int p_header_field(struct pctx *c, void *arg)
{
	struct fetch_acc *f = arg;

	if (f->nf == f->capf) {
		size_t ncap = f->capf ? f->capf * 2 : 8;
		struct imap_str *nv = imap_arena_alloc(c->a, ncap * sizeof(*nv));
		if (nv == NULL)
			return p_nomem(c);
		if (f->nf > 0)
			memcpy(nv, f->fields, f->nf * sizeof(*nv));
		f->fields = nv;
		f->capf = ncap;
	}
	struct imap_str *s = &f->fields[f->nf];
	if (p_astring(c, "header field name", s) < 0)
		return -1;
	if (s->len == 0)
		return p_fail(c, IMAP_ERR_SYNTAX, "Empty header field name");
	for (size_t i = 0; i < s->len; i++) {
		unsigned char ch = (unsigned char)s->s[i];
		if (ch <= 0x20 || ch >= 0x7f || ch == ':')
			return p_fail(c, IMAP_ERR_SYNTAX, "Invalid header field name");
	}
	f->nf++;
	return 0;
}

/* Header-list list walker (same shape as the generic one, kept local so
 * the error names the FETCH context). */
static int p_header_list(struct pctx *c, struct fetch_acc *f)
{
	const char *what = "header field list";

	if (p_char(c, '(', what) < 0 || p_enter(c) < 0)
		return -1;
	for (;;) {
		if (p_header_field(c, f) < 0)
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

/* "[" section-spec "]" into b (the '[' is next). */
static int p_section(struct pctx *c, struct fetch_acc *f, struct imap_fetch_body *b)
{
	uint32_t parts[64];
	size_t np = 0;
	struct sbuf sb = { 0 };
	char num[16];
	bool need_text = false;	/* "1." must be followed by a section-text */

	c->pos++;	/* '[' */
	if (sb_add(c, &sb, "", 0) < 0)
		return -1;
	while (p_peek(c) >= '0' && p_peek(c) <= '9') {
		uint32_t v;
		if (p_uint_raw(c, "section part number", true, &v) < 0)
			return -1;
		if (np == sizeof(parts) / sizeof(parts[0]))
			return p_fail(c, IMAP_ERR_SYNTAX, "Section part number too deep");
		parts[np++] = v;
		int k = snprintf(num, sizeof(num), "%s%u", np > 1 ? "." : "", v);
		if (sb_add(c, &sb, num, (size_t)k) < 0)
			return -1;
		if (p_peek(c) != '.')
			break;
		c->pos++;
		if (!(p_peek(c) >= '0' && p_peek(c) <= '9')) {
			need_text = true;	/* section-text follows */
			break;
		}
	}
	b->kind = IMAP_SECTION_ALL;
	if (p_peek(c) != ']' || need_text) {
		size_t start = c->pos;
		while (is_name_char(p_peek(c)))
			c->pos++;
		const char *w = c->buf + start;
		size_t n = c->pos - start;
		if (n == 0)
			return p_fail(c, IMAP_ERR_SYNTAX, "Invalid section in FETCH");
		if (p_word_eq(w, n, "HEADER"))
			b->kind = IMAP_SECTION_HEADER;
		else if (p_word_eq(w, n, "HEADER.FIELDS"))
			b->kind = IMAP_SECTION_HEADER_FIELDS;
		else if (p_word_eq(w, n, "HEADER.FIELDS.NOT"))
			b->kind = IMAP_SECTION_HEADER_FIELDS_NOT;
		else if (p_word_eq(w, n, "TEXT"))
			b->kind = IMAP_SECTION_TEXT;
		else if (p_word_eq(w, n, "MIME"))
			b->kind = IMAP_SECTION_MIME;
		else
			return p_fail(c, IMAP_ERR_SYNTAX, "Invalid section %.*s in FETCH",
				      (int)(n > 40 ? 40 : n), w);
		if (b->kind == IMAP_SECTION_MIME && np == 0)
			return p_fail(c, IMAP_ERR_SYNTAX, "MIME section needs a part number");
		if (np > 0 && sb_str(c, &sb, ".") < 0)
			return -1;
		static const char *const kw[] = {
			[IMAP_SECTION_HEADER] = "HEADER",
			[IMAP_SECTION_HEADER_FIELDS] = "HEADER.FIELDS",
			[IMAP_SECTION_HEADER_FIELDS_NOT] = "HEADER.FIELDS.NOT",
			[IMAP_SECTION_TEXT] = "TEXT",
			[IMAP_SECTION_MIME] = "MIME",
		};
		if (sb_str(c, &sb, kw[b->kind]) < 0)
			return -1;
		if (b->kind == IMAP_SECTION_HEADER_FIELDS || b->kind == IMAP_SECTION_HEADER_FIELDS_NOT) {
			f->fields = NULL;
			f->nf = f->capf = 0;
			if (p_sp(c, "header field list") < 0 || p_header_list(c, f) < 0)
				return -1;
			b->fields = f->fields;
			b->n_fields = f->nf;
			if (sb_str(c, &sb, " (") < 0)
				return -1;
			for (size_t i = 0; i < f->nf; i++) {
				const struct imap_str *s = &f->fields[i];
				if (i > 0 && sb_str(c, &sb, " ") < 0)
					return -1;
				if (is_atom_str(s)) {
					if (sb_add(c, &sb, s->s, s->len) < 0)
						return -1;
				} else if (sb_str(c, &sb, "\"") < 0 || sb_add(c, &sb, s->s, s->len) < 0 ||
					   sb_str(c, &sb, "\"") < 0) {
					/* field names are printable without '"' or '\' */
					return -1;
				}
			}
			if (sb_str(c, &sb, ")") < 0)
				return -1;
		}
	}
	if (p_peek(c) != ']')
		return p_fail(c, IMAP_ERR_SYNTAX, "Missing ']' in FETCH section");
	c->pos++;
	if (np > 0) {
		uint32_t *pp = imap_arena_alloc(c->a, np * sizeof(*pp));
		if (pp == NULL)
			return p_nomem(c);
		memcpy(pp, parts, np * sizeof(*pp));
		b->part = pp;
		b->n_part = np;
	}
	b->section.s = sb.p;
	b->section.len = sb.len;
	if (p_peek(c) == '<') {
		c->pos++;
		if (p_uint_raw(c, "partial start", false, &b->partial_start) < 0 ||
		    p_char(c, '.', "FETCH partial") < 0 ||
		    p_uint_raw(c, "partial length", true, &b->partial_count) < 0 ||
		    p_char(c, '>', "FETCH partial") < 0)
			return -1;
		b->partial = true;
	}
	return 0;
}

static const struct {
	const char *name;
	uint32_t bits;
} simple_items[] = {
	{ "FLAGS", IMAP_FETCH_FLAGS },
	{ "INTERNALDATE", IMAP_FETCH_INTERNALDATE },
	{ "RFC822.SIZE", IMAP_FETCH_RFC822_SIZE },
	{ "ENVELOPE", IMAP_FETCH_ENVELOPE },
	{ "BODY", IMAP_FETCH_BODY },
	{ "BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE },
	{ "UID", IMAP_FETCH_UID },
	{ "MODSEQ", IMAP_FETCH_MODSEQ },
	{ "RFC822", IMAP_FETCH_RFC822 },
	{ "RFC822.HEADER", IMAP_FETCH_RFC822_HEADER },
	{ "RFC822.TEXT", IMAP_FETCH_RFC822_TEXT },
};

static int p_fetch_att(struct pctx *c, void *arg)
{
	struct fetch_acc *f = arg;
	size_t start = c->pos;

	while (is_name_char(p_peek(c)))
		c->pos++;
	const char *w = c->buf + start;
	size_t n = c->pos - start;
	if (n == 0) {
		if (p_peek(c) < 0)
			return p_fail(c, IMAP_ERR_SYNTAX, "Missing FETCH attribute");
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid FETCH attribute");
	}
	bool peek = p_word_eq(w, n, "BODY.PEEK");
	if (p_peek(c) == '[') {
		if (!peek && !p_word_eq(w, n, "BODY"))
			return p_fail(c, IMAP_ERR_SYNTAX, "Invalid FETCH attribute %.*s[",
				      (int)(n > 40 ? 40 : n), w);
		if (f->n == f->cap) {
			size_t ncap = f->cap ? f->cap * 2 : 4;
			struct imap_fetch_body *nb = imap_arena_alloc(c->a, ncap * sizeof(*nb));
			if (nb == NULL)
				return p_nomem(c);
			if (f->n > 0)
				memcpy(nb, f->bodies, f->n * sizeof(*nb));
			f->bodies = nb;
			f->cap = ncap;
		}
		struct imap_fetch_body *b = &f->bodies[f->n];
		memset(b, 0, sizeof(*b));
		b->peek = peek;
		if (p_section(c, f, b) < 0)
			return -1;
		f->n++;
		return 0;
	}
	if (peek)
		return p_fail(c, IMAP_ERR_SYNTAX, "BODY.PEEK needs a section");
	for (size_t i = 0; i < sizeof(simple_items) / sizeof(simple_items[0]); i++)
		if (p_word_eq(w, n, simple_items[i].name)) {
			f->items |= simple_items[i].bits;
			if (p_peek(c) >= 0 && p_peek(c) != ' ' && p_peek(c) != ')')
				return p_fail(c, IMAP_ERR_SYNTAX, "Invalid FETCH attribute %.*s",
					      (int)(n > 40 ? 40 : n), w);
			return 0;
		}
	return p_fail(c, IMAP_ERR_SYNTAX, "Unknown FETCH attribute %.*s", (int)(n > 40 ? 40 : n), w);
}

static int p_fetch_modifier(struct pctx *c, void *arg)
{
	struct imap_args_fetch *a = arg;
	const char *p;
	size_t n;

	if (p_atom(c, "FETCH modifier", false, &p, &n) < 0)
		return -1;
	if (p_word_eq(p, n, "CHANGEDSINCE")) {
		if (a->has_changedsince)
			return p_fail(c, IMAP_ERR_SYNTAX, "CHANGEDSINCE given twice");
		a->has_changedsince = true;
		if (p_sp(c, "CHANGEDSINCE value") < 0)
			return -1;
		return p_number64(c, "CHANGEDSINCE value", true, &a->changedsince);
	}
	if (p_word_eq(p, n, "VANISHED")) {
		a->vanished = true;
		return 0;
	}
	return p_fail(c, IMAP_ERR_SYNTAX, "Unknown FETCH modifier %.*s", (int)(n > 40 ? 40 : n), p);
}

int imap_parse_fetch_args(struct pctx *c)
{
	struct imap_args_fetch *a = &c->cmd->u.fetch;
	struct fetch_acc f = { 0 };

	if (p_sp(c, "sequence set") < 0 || p_seqset(c, &a->set) < 0 ||
	    p_sp(c, "FETCH attributes") < 0)
		return -1;
	if (p_peek(c) == '(') {
		c->pos++;
		if (p_enter(c) < 0)
			return -1;
		if (p_peek(c) == ')')
			return p_fail(c, IMAP_ERR_SYNTAX, "Empty FETCH attribute list");
		for (;;) {
			if (p_fetch_att(c, &f) < 0)
				return -1;
			if (p_opt_char(c, ')'))
				break;
			if (p_peek(c) != ' ')
				return p_fail(c, IMAP_ERR_SYNTAX,
					      "Missing ')' in FETCH attribute list");
			c->pos++;
		}
		p_leave(c);
	} else {
		size_t save = c->pos;
		const char *w = c->buf + c->pos;
		size_t n = 0;
		while (is_name_char(p_peek(c)))
			c->pos++, n++;
		if (p_word_eq(w, n, "ALL")) {
			f.items = IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE |
				  IMAP_FETCH_ENVELOPE;
		} else if (p_word_eq(w, n, "FAST")) {
			f.items = IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE;
		} else if (p_word_eq(w, n, "FULL")) {
			f.items = IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE |
				  IMAP_FETCH_ENVELOPE | IMAP_FETCH_BODY;
		} else {
			c->pos = save;
			if (p_fetch_att(c, &f) < 0)
				return -1;
		}
	}
	if (p_peek(c) == ' ') {
		c->pos++;
		if (p_peek(c) != '(')
			return p_fail(c, IMAP_ERR_SYNTAX, "Unexpected extra arguments to FETCH");
		c->pos++;
		if (p_enter(c) < 0)
			return -1;
		for (;;) {
			if (p_fetch_modifier(c, a) < 0)
				return -1;
			if (p_opt_char(c, ')'))
				break;
			if (p_peek(c) != ' ')
				return p_fail(c, IMAP_ERR_SYNTAX, "Missing ')' in FETCH modifiers");
			c->pos++;
		}
		p_leave(c);
	}
	if (p_end(c) < 0)
		return -1;
	if (a->vanished && (!c->cmd->uid || !a->has_changedsince))
		return p_fail(c, IMAP_ERR_SYNTAX, "VANISHED needs UID FETCH with CHANGEDSINCE");
	if (c->cmd->uid)
		f.items |= IMAP_FETCH_UID;
	if (a->has_changedsince)
		f.items |= IMAP_FETCH_MODSEQ;
	a->items = f.items;
	a->bodies = f.bodies;
	a->n_bodies = f.n;
	return 0;
}
