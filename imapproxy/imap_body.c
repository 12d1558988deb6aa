/*
 * imap_body.c - ENVELOPE, BODY and BODYSTRUCTURE rendered from a decoded
 * MIME tree, and BODY[section] located in the message as served.
 *
 * Rendering is a walk of the tree that mime_blob_decode() checked, so it
 * only formats: every value is an IMAP nstring (NIL, quoted string or
 * literal, see imap_write_nstring), numbers are decimal, lists are in
 * parentheses.  Output goes to a struct imap_buf; its first allocation
 * failure sticks, and every function reports it as -1 at the end.
 *
 * Section location maps RFC 3501 part numbers onto the tree (see
 * imap_body.h for the rules) and shifts the offsets by the per-recipient
 * prefix.  HEADER.FIELDS filtering walks the header's fields once, copying
 * the matching ones as stored.
 */
#include <stdlib.h>
#include <string.h>

#include "imap_body.h"

/* ---- buffer ------------------------------------------------------------ */

void imap_buf_init(struct imap_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->failed = false;
}

void imap_buf_free(struct imap_buf *b)
{
	free(b->data);
	imap_buf_init(b);
}

void imap_buf_reset(struct imap_buf *b)
{
	b->len = 0;
	b->failed = false;
}

int imap_buf_add(struct imap_buf *b, const void *p, size_t n)
{
	if (b->failed)
		return -1;
	if (n == 0)
		return 0;
	if (n > b->cap - b->len) {
		size_t ncap = b->cap ? b->cap : 256;
		char *nd;

		if (n > SIZE_MAX / 2 - b->len) {
			b->failed = true;
			return -1;
		}
		while (ncap - b->len < n)
			ncap *= 2;
		nd = realloc(b->data, ncap);
		if (nd == NULL) {
			b->failed = true;
			return -1;
		}
		b->data = nd;
		b->cap = ncap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int imap_buf_adds(struct imap_buf *b, const char *s)
{
	return imap_buf_add(b, s, strlen(s));
}

/* The renderers append many tiny pieces: copy in place when they fit. */
static inline void put(struct imap_buf *b, const void *p, size_t n)
{
	if (!b->failed && n <= b->cap - b->len) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
	} else {
		imap_buf_add(b, p, n);
	}
}

static void add_u64(struct imap_buf *b, uint64_t v)
{
	char tmp[24];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	put(b, tmp + i, sizeof(tmp) - i);
}

static bool needs_literal(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 0x7f || (c < 0x20 && c != '\t') || c == '"' || c == '\\')
			return true;
	}
	return false;
}

int imap_write_nstring(struct imap_buf *b, const char *p, size_t n)
{
	if (p == NULL) {
		put(b, "NIL", 3);
	} else if (needs_literal(p, n)) {
		put(b, "{", 1);
		add_u64(b, n);
		put(b, "}\r\n", 3);
		put(b, p, n);
	} else {
		put(b, "\"", 1);
		put(b, p, n);
		put(b, "\"", 1);
	}
	return b->failed ? -1 : 0;
}

int imap_write_mstr(struct imap_buf *b, struct mime_str s)
{
	return imap_write_nstring(b, s.p, s.len);
}

static int fin(const struct imap_buf *b)
{
	return b->failed ? -1 : 0;
}

/* ---- ENVELOPE ------------------------------------------------------------ */

static void write_addrs(struct imap_buf *b, const struct mime_addr_list *l)
{
	if (l->n == 0) {
		put(b, "NIL", 3);
		return;
	}
	put(b, "(", 1);
	for (uint32_t i = 0; i < l->n; i++) {
		const struct mime_addr *a = &l->v[i];

		put(b, "(", 1);
		imap_write_mstr(b, a->name);
		put(b, " ", 1);
		imap_write_mstr(b, a->adl);
		put(b, " ", 1);
		imap_write_mstr(b, a->mailbox);
		put(b, " ", 1);
		imap_write_mstr(b, a->host);
		put(b, ")", 1);
	}
	put(b, ")", 1);
}

static void write_envelope(struct imap_buf *b, const struct mime_envelope *e)
{
	const struct mime_addr_list *sender = e->sender.n ? &e->sender : &e->from;
	const struct mime_addr_list *reply_to = e->reply_to.n ? &e->reply_to : &e->from;

	put(b, "(", 1);
	imap_write_mstr(b, e->date);
	put(b, " ", 1);
	imap_write_mstr(b, e->subject);
	put(b, " ", 1);
	write_addrs(b, &e->from);
	put(b, " ", 1);
	write_addrs(b, sender);
	put(b, " ", 1);
	write_addrs(b, reply_to);
	put(b, " ", 1);
	write_addrs(b, &e->to);
	put(b, " ", 1);
	write_addrs(b, &e->cc);
	put(b, " ", 1);
	write_addrs(b, &e->bcc);
	put(b, " ", 1);
	imap_write_mstr(b, e->in_reply_to);
	put(b, " ", 1);
	imap_write_mstr(b, e->message_id);
	put(b, ")", 1);
}

int imap_render_part_envelope(const struct mime_part *p, struct imap_buf *out)
{
	if (p == NULL || !p->has_envelope)
		return -1;
	write_envelope(out, &p->env);
	return fin(out);
}

int imap_render_envelope(const struct mime_msg *m, struct imap_buf *out)
{
	return imap_render_part_envelope(&m->parts[0], out);
}

/* ---- BODY / BODYSTRUCTURE ------------------------------------------------ */

static void write_params(struct imap_buf *b, const struct mime_param *v, uint32_t n)
{
	if (n == 0) {
		put(b, "NIL", 3);
		return;
	}
	put(b, "(", 1);
	for (uint32_t i = 0; i < n; i++) {
		if (i > 0)
			put(b, " ", 1);
		imap_write_mstr(b, v[i].name);
		put(b, " ", 1);
		imap_write_mstr(b, v[i].value);
	}
	put(b, ")", 1);
}

static bool is_lang_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Content-Language "en, de (German)" -> ("en" "de"): tags split at
 * commas, comments and whitespace dropped; nothing usable -> NIL. */
static void write_language(struct imap_buf *b, struct mime_str s)
{
	size_t i = 0, n = s.len;
	bool any = false;

	while (s.p != NULL && i < n) {
		size_t a, e;
		int depth = 0;

		while (i < n && (is_lang_space(s.p[i]) || s.p[i] == ',' || s.p[i] == '(' ||
				 depth > 0)) {
			if (s.p[i] == '(')
				depth++;
			else if (s.p[i] == ')' && depth > 0)
				depth--;
			i++;
		}
		a = i;
		while (i < n && !is_lang_space(s.p[i]) && s.p[i] != ',' && s.p[i] != '(')
			i++;
		e = i;
		if (e > a) {
			put(b, any ? " " : "(", 1);
			imap_write_nstring(b, s.p + a, e - a);
			any = true;
		}
	}
	put(b, any ? ")" : "NIL", any ? 1 : 3);
}

/* body-fld-dsp SP body-fld-lang SP body-fld-loc */
static void write_ext_common(struct imap_buf *b, const struct mime_part *p)
{
	if (p->disposition.p == NULL) {
		put(b, "NIL", 3);
	} else {
		put(b, "(", 1);
		imap_write_mstr(b, p->disposition);
		put(b, " ", 1);
		write_params(b, p->disp_params, p->n_disp_params);
		put(b, ")", 1);
	}
	put(b, " ", 1);
	write_language(b, p->language);
	put(b, " ", 1);
	imap_write_mstr(b, p->location);
}

static void write_body(struct imap_buf *b, const struct mime_part *p, bool ext)
{
	put(b, "(", 1);
	if (p->kind == MIME_KIND_MULTIPART) {
		for (const struct mime_part *c = p->child; c != NULL; c = c->next)
			write_body(b, c, ext);
		put(b, " ", 1);
		imap_write_mstr(b, p->subtype);
		if (ext) {
			put(b, " ", 1);
			write_params(b, p->params, p->n_params);
			put(b, " ", 1);
			write_ext_common(b, p);
		}
		put(b, ")", 1);
		return;
	}
	imap_write_mstr(b, p->type);
	put(b, " ", 1);
	imap_write_mstr(b, p->subtype);
	put(b, " ", 1);
	write_params(b, p->params, p->n_params);
	put(b, " ", 1);
	imap_write_mstr(b, p->id);
	put(b, " ", 1);
	imap_write_mstr(b, p->description);
	put(b, " ", 1);
	imap_write_mstr(b, p->encoding);
	put(b, " ", 1);
	add_u64(b, p->body_len);
	if (p->kind == MIME_KIND_MESSAGE) {
		put(b, " ", 1);
		write_envelope(b, &p->child->env);
		put(b, " ", 1);
		write_body(b, p->child, ext);
		put(b, " ", 1);
		add_u64(b, p->body_lines);
	} else if (mime_str_eq(p->type, "text")) {
		put(b, " ", 1);
		add_u64(b, p->body_lines);
	}
	if (ext) {
		put(b, " ", 1);
		imap_write_mstr(b, p->md5);
		put(b, " ", 1);
		write_ext_common(b, p);
	}
	put(b, ")", 1);
}

int imap_render_body(const struct mime_msg *m, bool extended, struct imap_buf *out)
{
	write_body(out, &m->parts[0], extended);
	return fin(out);
}

/* ---- sections --------------------------------------------------------------- */

static bool kw(const char *s, size_t len, size_t *i, const char *word)
{
	size_t n = strlen(word);

	if (len - *i < n)
		return false;
	for (size_t k = 0; k < n; k++) {
		char c = s[*i + k];

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 32);
		if (c != word[k])
			return false;
	}
	*i += n;
	return true;
}

/* header-fld-name: astring, here an atom or a quoted string without
 * escapes. */
static int parse_field_name(const char *s, size_t len, size_t *i, struct imap_sect_name *f)
{
	if (*i < len && s[*i] == '"') {
		size_t a = ++*i;

		while (*i < len && s[*i] != '"') {
			unsigned char c = (unsigned char)s[*i];

			if (c == '\\' || c < 0x21 || c >= 0x7f || c == ':')
				return -1;
			(*i)++;
		}
		if (*i >= len || *i == a)
			return -1;
		f->p = s + a;
		f->len = *i - a;
		(*i)++;
		return 0;
	}
	{
		size_t a = *i;

		while (*i < len) {
			unsigned char c = (unsigned char)s[*i];

			if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '{' ||
			    c == '"' || c == '\\' || c == '%' || c == '*' || c == ']' || c == ':')
				break;
			(*i)++;
		}
		if (*i == a)
			return -1;
		f->p = s + a;
		f->len = *i - a;
	}
	return 0;
}

int imap_section_parse(const char *s, size_t len, struct imap_section *sec_r,
		       const char **error_r)
{
	size_t i = 0;

	memset(sec_r, 0, sizeof(*sec_r));
	sec_r->kind = IMAP_SECT_BODY;
	*error_r = NULL;
	/* part numbers */
	while (i < len && s[i] >= '0' && s[i] <= '9') {
		uint64_t v = 0;

		if (s[i] == '0') {
			*error_r = "Invalid part number";
			return -1;
		}
		while (i < len && s[i] >= '0' && s[i] <= '9') {
			v = v * 10 + (uint64_t)(s[i] - '0');
			if (v > UINT32_MAX) {
				*error_r = "Part number too large";
				return -1;
			}
			i++;
		}
		if (sec_r->n_part >= IMAP_SECTION_PARTS_MAX) {
			*error_r = "Too many part numbers";
			return -1;
		}
		sec_r->part[sec_r->n_part++] = (uint32_t)v;
		if (i == len)
			return 0;
		if (s[i] != '.') {
			*error_r = "Invalid section";
			return -1;
		}
		i++;
		if (i == len) {
			*error_r = "Invalid section";
			return -1;
		}
	}
	if (i == len)
		return 0;	/* "" */
	if (kw(s, len, &i, "HEADER.FIELDS")) {
		sec_r->kind = IMAP_SECT_FIELDS;
		if (kw(s, len, &i, ".NOT"))
			sec_r->kind = IMAP_SECT_FIELDS_NOT;
		if (i >= len || s[i] != ' ' || i + 1 >= len || s[i + 1] != '(') {
			*error_r = "HEADER.FIELDS needs a list of field names";
			return -1;
		}
		i += 2;
		for (;;) {
			if (sec_r->n_fields >= IMAP_SECTION_FIELDS_MAX) {
				*error_r = "Too many header field names";
				return -1;
			}
			if (parse_field_name(s, len, &i, &sec_r->fields[sec_r->n_fields]) < 0) {
				*error_r = "Invalid header field name";
				return -1;
			}
			sec_r->n_fields++;
			if (i < len && s[i] == ')') {
				i++;
				break;
			}
			if (i >= len || s[i] != ' ') {
				*error_r = "Invalid header field list";
				return -1;
			}
			i++;
		}
	} else if (kw(s, len, &i, "HEADER")) {
		sec_r->kind = IMAP_SECT_HEADER;
	} else if (kw(s, len, &i, "TEXT")) {
		sec_r->kind = IMAP_SECT_TEXT;
	} else if (kw(s, len, &i, "MIME")) {
		if (sec_r->n_part == 0) {
			*error_r = "MIME needs a part number";
			return -1;
		}
		sec_r->kind = IMAP_SECT_MIME;
	} else {
		*error_r = "Invalid section";
		return -1;
	}
	if (i != len) {
		*error_r = "Invalid section";
		return -1;
	}
	return 0;
}

int imap_section_write(const struct imap_section *sec, struct imap_buf *out)
{
	static const char *const names[] = {
		[IMAP_SECT_BODY] = "",
		[IMAP_SECT_HEADER] = "HEADER",
		[IMAP_SECT_TEXT] = "TEXT",
		[IMAP_SECT_MIME] = "MIME",
		[IMAP_SECT_FIELDS] = "HEADER.FIELDS",
		[IMAP_SECT_FIELDS_NOT] = "HEADER.FIELDS.NOT",
	};

	if ((unsigned)sec->kind > IMAP_SECT_FIELDS_NOT)
		return -1;
	for (size_t i = 0; i < sec->n_part; i++) {
		if (i > 0)
			put(out, ".", 1);
		add_u64(out, sec->part[i]);
	}
	if (sec->kind != IMAP_SECT_BODY) {
		if (sec->n_part > 0)
			put(out, ".", 1);
		imap_buf_adds(out, names[sec->kind]);
	}
	if (sec->kind == IMAP_SECT_FIELDS || sec->kind == IMAP_SECT_FIELDS_NOT) {
		put(out, " (", 2);
		for (size_t i = 0; i < sec->n_fields; i++) {
			const struct imap_sect_name *f = &sec->fields[i];

			if (i > 0)
				put(out, " ", 1);
			for (size_t k = 0; k < f->len; k++) {
				char c = f->p[k];

				if (c >= 'a' && c <= 'z')
					c = (char)(c - 32);
				put(out, &c, 1);
			}
		}
		put(out, ")", 1);
	}
	return fin(out);
}

static void hdr_range(const struct mime_part *p, uint64_t prefix_len, struct imap_byterange *r)
{
	if (p->index == 0) {
		r->off = 0;
		r->len = prefix_len + p->hdr_len;
	} else {
		r->off = prefix_len + p->hdr_off;
		r->len = p->hdr_len;
	}
}

static void body_range(const struct mime_part *p, uint64_t prefix_len, struct imap_byterange *r)
{
	r->off = prefix_len + p->body_off;
	r->len = p->body_len;
}

enum imap_loc imap_section_locate(const struct mime_msg *m, uint64_t prefix_len,
				  const struct imap_section *sec, struct imap_byterange *r)
{
	const struct mime_part *cur = &m->parts[0];
	bool selected = false;	/* cur was just picked among a multipart's children */

	r->off = 0;
	r->len = 0;
	if (sec->n_part > IMAP_SECTION_PARTS_MAX)
		return IMAP_LOC_NOPART;
	for (size_t i = 0; i < sec->n_part; i++) {
		uint32_t n = sec->part[i];

		if (i > 0) {
			if (cur->kind == MIME_KIND_MESSAGE)
				cur = cur->child;
			else if (cur->kind == MIME_KIND_LEAF && !selected)
				return IMAP_LOC_NOPART;
			/* else a leaf body part N: N.1 is N itself (as Dovecot) */
		}
		selected = cur->kind == MIME_KIND_MULTIPART;
		if (cur->kind == MIME_KIND_MULTIPART) {
			const struct mime_part *c = cur->child;

			if (n == 0 || n > cur->n_children)
				return IMAP_LOC_NOPART;
			while (--n > 0 && c != NULL)
				c = c->next;
			if (c == NULL)
				return IMAP_LOC_NOPART;
			cur = c;
		} else if (n != 1) {
			return IMAP_LOC_NOPART;
		}
	}

	if (sec->n_part == 0) {
		switch (sec->kind) {
		case IMAP_SECT_BODY:
			r->off = 0;
			r->len = prefix_len + m->msg_len;
			return IMAP_LOC_OK;
		case IMAP_SECT_HEADER:
		case IMAP_SECT_FIELDS:
		case IMAP_SECT_FIELDS_NOT:
			hdr_range(cur, prefix_len, r);
			return IMAP_LOC_OK;
		case IMAP_SECT_TEXT:
			body_range(cur, prefix_len, r);
			return IMAP_LOC_OK;
		case IMAP_SECT_MIME:
			return IMAP_LOC_NOPART;
		}
		return IMAP_LOC_NOPART;
	}
	switch (sec->kind) {
	case IMAP_SECT_BODY:
		body_range(cur, prefix_len, r);
		return IMAP_LOC_OK;
	case IMAP_SECT_MIME:
		hdr_range(cur, prefix_len, r);
		return IMAP_LOC_OK;
	case IMAP_SECT_HEADER:
	case IMAP_SECT_FIELDS:
	case IMAP_SECT_FIELDS_NOT:
		if (cur->kind != MIME_KIND_MESSAGE)
			return IMAP_LOC_EMPTY;
		hdr_range(cur->child, prefix_len, r);
		return IMAP_LOC_OK;
	case IMAP_SECT_TEXT:
		if (cur->kind != MIME_KIND_MESSAGE)
			return IMAP_LOC_EMPTY;
		body_range(cur->child, prefix_len, r);
		return IMAP_LOC_OK;
	}
	return IMAP_LOC_NOPART;
}

/* ---- message bytes ------------------------------------------------------------ */

static bool range_ok(const struct imap_msgdata *md, const struct imap_byterange *r)
{
	uint64_t total = (uint64_t)md->prefix_len + md->body_len;

	return r->off <= total && r->len <= total - r->off;
}

int imap_msgdata_append(const struct imap_msgdata *md, const struct imap_byterange *r,
			struct imap_buf *out)
{
	uint64_t off = r->off, len = r->len;

	if (!range_ok(md, r))
		return -1;
	if (off < md->prefix_len) {
		uint64_t n = md->prefix_len - off;

		if (n > len)
			n = len;
		put(out, md->prefix + off, (size_t)n);
		off += n;
		len -= n;
	}
	if (len > 0)
		put(out, md->body + (off - md->prefix_len), (size_t)len);
	return fin(out);
}

static bool name_listed(const struct imap_section *sec, const char *name, size_t n)
{
	for (size_t i = 0; i < sec->n_fields; i++) {
		const struct imap_sect_name *f = &sec->fields[i];

		if (f->len == n) {
			size_t k = 0;

			for (; k < n; k++) {
				char a = name[k], b = f->p[k];

				if (a >= 'A' && a <= 'Z')
					a = (char)(a + 32);
				if (b >= 'A' && b <= 'Z')
					b = (char)(b + 32);
				if (a != b)
					break;
			}
			if (k == n)
				return true;
		}
	}
	return false;
}

int imap_header_filter(const struct imap_msgdata *md, const struct imap_byterange *r,
		       const struct imap_section *sec, struct imap_buf *out)
{
	const char *h;
	char *copy = NULL;
	size_t n, pos = 0;
	bool want = sec->kind == IMAP_SECT_FIELDS;
	bool include = false, last_eol = true;

	if ((sec->kind != IMAP_SECT_FIELDS && sec->kind != IMAP_SECT_FIELDS_NOT) ||
	    !range_ok(md, r))
		return -1;
	n = (size_t)r->len;
	if (r->off >= md->prefix_len) {
		h = md->body + (r->off - md->prefix_len);
	} else if (r->off + r->len <= md->prefix_len) {
		h = md->prefix + r->off;
	} else {
		/* straddles prefix and body: work on a copy */
		struct imap_buf tmp;

		imap_buf_init(&tmp);
		if (imap_msgdata_append(md, r, &tmp) < 0) {
			imap_buf_free(&tmp);
			out->failed = true;
			return -1;
		}
		copy = tmp.data;
		h = copy;
	}
	while (pos < n) {
		const char *nl = memchr(h + pos, '\n', n - pos);
		size_t le = nl ? (size_t)(nl - h) + 1 : n;
		size_t ce = nl ? (size_t)(nl - h) : n;

		if (ce > pos && h[ce - 1] == '\r')
			ce--;
		if (ce == pos)
			break;	/* the empty line ending the header */
		if (h[pos] != ' ' && h[pos] != '\t') {
			const char *colon = memchr(h + pos, ':', ce - pos);

			include = false;
			if (colon != NULL) {
				size_t e = (size_t)(colon - h);

				while (e > pos && (h[e - 1] == ' ' || h[e - 1] == '\t'))
					e--;
				if (e > pos)
					include = name_listed(sec, h + pos, e - pos) == want;
			}
		}
		if (include) {
			put(out, h + pos, le - pos);
			last_eol = nl != NULL;
		}
		pos = le;
	}
	if (!last_eol)
		put(out, "\r\n", 2);
	put(out, "\r\n", 2);
	free(copy);
	return fin(out);
}
