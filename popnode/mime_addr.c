/*
 * mime_addr.c - the address lists of an envelope (From, Sender, Reply-To,
 * To, Cc, Bcc) parsed into (name, adl, mailbox, host) tuples and group
 * markers, leniently, as mime.h describes.
 */
#include "mime_int.h"

/* ---- addresses ------------------------------------------------------------ */

struct alist {
	struct parser *p;
	size_t vo;		/* value's offset in scratch */
	size_t n;		/* value length */
	uint32_t count;
	uint32_t reserve;	/* entries kept free (a group's end marker) */
};

static inline char av(const struct alist *a, size_t i)
{
	return (char)a->p->scratch.p[a->vo + i];
}

/* Skip whitespace and comments; the text of the last comment is kept in
 * *comment (scratch span) when comment != NULL. */
static size_t a_skip(struct alist *a, size_t i, struct span *comment)
{
	while (i < a->n) {
		char c = av(a, i);

		if (mime_is_wsp((unsigned char)c)) {
			i++;
		} else if (c == '(') {
			int depth = 0;
			size_t start = i + 1;

			for (; i < a->n; i++) {
				c = av(a, i);
				if (c == '\\' && i + 1 < a->n)
					i++;
				else if (c == '(')
					depth++;
				else if (c == ')' && --depth == 0)
					break;
			}
			if (comment != NULL) {
				comment->off = a->vo + start;
				comment->len = (i < a->n ? i : a->n) - start;
			}
			if (i < a->n)
				i++;
		} else {
			break;
		}
	}
	return i;
}

/* Skip a quoted string / domain literal starting at i; returns the index
 * after it. */
static size_t a_skip_quoted(const struct alist *a, size_t i, char close)
{
	for (i++; i < a->n; i++) {
		char c = av(a, i);

		if (c == '\\' && i + 1 < a->n)
			i++;
		else if (c == close)
			return i + 1;
	}
	return a->n;
}

/* The first of "<:@,;" (outside quotes, comments, literals) from i, or 0. */
static char a_lookahead(const struct alist *a, size_t i)
{
	while (i < a->n) {
		char c = av(a, i);

		switch (c) {
		case '"':
			i = a_skip_quoted(a, i, '"');
			continue;
		case '[':
			i = a_skip_quoted(a, i, ']');
			continue;
		case '(': {
			int depth = 0;

			for (; i < a->n; i++) {
				c = av(a, i);
				if (c == '\\' && i + 1 < a->n)
					i++;
				else if (c == '(')
					depth++;
				else if (c == ')' && --depth == 0)
					break;
			}
			i++;
			continue;
		}
		case '<': case ':': case '@': case ',': case ';':
			return c;
		default:
			i++;
		}
	}
	return 0;
}

/* Address specials that end a phrase or word run. */
enum {
	S_LT = 1,
	S_GT = 2,
	S_AT = 4,
	S_COMMA = 8,
	S_SEMI = 16,
	S_COLON = 32,
	S_ALL = 63,
};

static inline unsigned stop_bit(char c)
{
	switch (c) {
	case '<': return S_LT;
	case '>': return S_GT;
	case '@': return S_AT;
	case ',': return S_COMMA;
	case ';': return S_SEMI;
	case ':': return S_COLON;
	default: return 0;
	}
}

/* Append to scratch the text of v[i..] for a phrase up to a stop char in
 * stops: quoted strings unquoted, comments dropped, whitespace runs made
 * one space, trimmed.  Returns the index of the stop (or n). */
static size_t a_phrase(struct alist *a, size_t i, unsigned stops, struct span *out)
{
	struct wbuf *s = &a->p->scratch;
	bool space = false;

	out->off = s->len;
	while (i < a->n && !s->failed) {
		char c = av(a, i);

		if (stop_bit(c) & stops)
			break;
		if (mime_is_wsp((unsigned char)c) || c == '(' || c == '\r' || c == '\n') {
			i = (c == '(') ? a_skip(a, i, NULL) : i + 1;
			space = true;
			continue;
		}
		if (space && s->len > out->off)
			mime_wb_byte(s, ' ');
		space = false;
		if (c == '"') {
			for (i++; i < a->n; i++) {
				c = av(a, i);
				if (c == '\\' && i + 1 < a->n)
					c = av(a, ++i);
				else if (c == '"')
					break;
				mime_wb_byte(s, (uint8_t)c);
			}
			i++;
		} else {
			mime_wb_byte(s, (uint8_t)c);
			i++;
		}
	}
	out->len = s->len - out->off;
	return i < a->n ? i : a->n;
}

/* local-part or domain: words and dots concatenated, whitespace and
 * comments dropped (the last comment remembered), quoted strings
 * unquoted, domain literals kept whole.  Stops at a char in stops. */
static size_t a_word_run(struct alist *a, size_t i, unsigned stops, struct span *out,
			 struct span *comment)
{
	struct wbuf *s = &a->p->scratch;

	out->off = s->len;
	while (i < a->n && !s->failed) {
		char c = av(a, i);

		if (stop_bit(c) & stops)
			break;
		if (mime_is_wsp((unsigned char)c) || c == '(') {
			i = a_skip(a, i, comment);
			continue;
		}
		if (c == '"') {
			for (i++; i < a->n; i++) {
				c = av(a, i);
				if (c == '\\' && i + 1 < a->n)
					c = av(a, ++i);
				else if (c == '"')
					break;
				mime_wb_byte(s, (uint8_t)c);
			}
			i++;
		} else if (c == '[') {
			size_t e = a_skip_quoted(a, i, ']');

			for (; i < e; i++)
				mime_wb_byte(s, (uint8_t)av(a, i));
		} else {
			mime_wb_byte(s, (uint8_t)c);
			i++;
		}
	}
	out->len = s->len - out->off;
	return i < a->n ? i : a->n;
}

/* How many more entries this list may take (per list and in total). */
static uint32_t a_room(const struct alist *a)
{
	uint32_t list = MIME_ADDRS_MAX - a->count;
	uint32_t used = a->p->n_addrs + a->count;
	uint32_t total = used < MIME_ADDRS_TOTAL_MAX ? MIME_ADDRS_TOTAL_MAX - used : 0;

	return list < total ? list : total;
}

static void a_emit(struct alist *a, const struct span *name, const struct span *adl,
		   const struct span *mbox, const char *mbox_lit,
		   const struct span *host, const char *host_lit)
{
	struct parser *p = a->p;

	if (a_room(a) <= a->reserve)
		return;
	mime_put_val(p, name ? mime_sp_ptr(p, *name) : NULL, name ? name->len : 0);
	mime_put_val(p, adl ? mime_sp_ptr(p, *adl) : NULL, adl ? adl->len : 0);
	if (mbox_lit != NULL)
		mime_wb_lit(&p->out, mbox_lit);
	else
		mime_put_val(p, mbox ? mime_sp_ptr(p, *mbox) : NULL, mbox ? mbox->len : 0);
	if (host_lit != NULL)
		mime_wb_lit(&p->out, host_lit);
	else
		mime_put_val(p, host ? mime_sp_ptr(p, *host) : NULL, host ? host->len : 0);
	a->count++;
}

/* One mailbox (name-addr or addr-spec) from i; stops at ',' ';' or end
 * (in_group: ';' ends the group).  Returns the index of the stop. */
static size_t a_mailbox(struct alist *a, size_t i, char kind)
{
	struct span name = { 0, 0 }, local = { 0, 0 }, dom = { 0, 0 }, adl = { 0, 0 };
	struct span comment = { 0, 0 };
	bool has_name = false, has_adl = false, has_at = false;

	if (kind == '<') {
		i = a_phrase(a, i, S_LT, &name);
		has_name = name.len > 0;
		i = a_skip(a, i + 1, NULL);
		if (i < a->n && av(a, i) == '@') {
			/* obsolete source route "@a,@b:" */
			size_t colon = i;

			while (colon < a->n && av(a, colon) != ':' && av(a, colon) != '>')
				colon++;
			if (colon < a->n && av(a, colon) == ':') {
				struct wbuf *s = &a->p->scratch;

				adl.off = s->len;
				for (; i < colon; i++)
					if (!mime_is_wsp((unsigned char)av(a, i)))
						mime_wb_byte(s, (uint8_t)av(a, i));
				adl.len = s->len - adl.off;
				has_adl = true;
				i = colon + 1;
			}
		}
		i = a_word_run(a, i, S_AT | S_GT | S_COMMA | S_SEMI, &local, &comment);
		if (i < a->n && av(a, i) == '@') {
			has_at = true;
			i = a_word_run(a, i + 1, S_AT | S_GT | S_COMMA | S_SEMI, &dom, &comment);
		}
		if (i < a->n && av(a, i) == '>')
			i++;
		/* anything up to the next separator is dropped (a comment after
		 * the address may give the name) */
		while (i < a->n && av(a, i) != ',' && av(a, i) != ';') {
			if (av(a, i) == '(' || mime_is_wsp((unsigned char)av(a, i)))
				i = a_skip(a, i, &comment);
			else if (av(a, i) == '"')
				i = a_skip_quoted(a, i, '"');
			else
				i++;
		}
	} else {
		i = a_word_run(a, i, S_ALL, &local, &comment);
		if (i < a->n && av(a, i) == '@') {
			has_at = true;
			i = a_word_run(a, i + 1, S_ALL, &dom, &comment);
		}
		while (i < a->n && av(a, i) != ',' && av(a, i) != ';')
			i++;
	}
	if (!has_name && comment.len > 0) {
		name = comment;
		has_name = true;
	}
	if (kind != '<' && !has_name && local.len == 0 && !has_at)
		return i;	/* nothing there (junk) */
	a_emit(a, has_name ? &name : NULL, has_adl ? &adl : NULL,
	       local.len ? &local : NULL, local.len ? NULL : "MISSING_MAILBOX",
	       dom.len ? &dom : NULL, dom.len ? NULL : "MISSING_DOMAIN");
	return i;
}

/* Parse an address list field and write it: u32 count, then 4 strings per
 * address or group marker. */
void mime_write_addrs(struct parser *p, const struct hfield *f)
{
	struct alist a;
	size_t count_at = p->out.len;
	struct span v;
	size_t i = 0;

	mime_wb_u32(&p->out, 0);
	if (!f->set)
		return;
	p->scratch.len = 0;
	v = mime_unfold(p, f);
	a.p = p;
	a.vo = v.off;
	a.n = v.len;
	a.count = 0;
	a.reserve = 0;
	while (i < a.n && a_room(&a) > 0 && !p->scratch.failed && !p->out.failed) {
		char kind;

		i = a_skip(&a, i, NULL);
		if (i >= a.n)
			break;
		if (av(&a, i) == ',' || av(&a, i) == ';' || av(&a, i) == '>') {
			i++;
			continue;
		}
		kind = a_lookahead(&a, i);
		if (kind == ':') {
			struct span gname;

			if (a_room(&a) < 2)
				break;
			i = a_phrase(&a, i, S_COLON, &gname);
			i++;
			a_emit(&a, NULL, NULL, &gname, NULL, NULL, NULL);
			a.reserve = 1;
			while (i < a.n && !p->scratch.failed) {
				char k;

				i = a_skip(&a, i, NULL);
				if (i >= a.n)
					break;
				if (av(&a, i) == ';') {
					i++;
					break;
				}
				if (av(&a, i) == ',') {
					i++;
					continue;
				}
				k = a_lookahead(&a, i);
				i = a_mailbox(&a, i, k == '<' ? '<' : '@');
			}
			a.reserve = 0;
			a_emit(&a, NULL, NULL, NULL, NULL, NULL, NULL);
		} else {
			i = a_mailbox(&a, i, kind == '<' ? '<' : '@');
		}
	}
	if (p->scratch.failed)
		p->out.failed = true;
	mime_wb_patch32(&p->out, count_at, a.count);
	p->n_addrs += a.count;
}
