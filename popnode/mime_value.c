/*
 * mime_value.c - header field values as the blob keeps them: unfolded and
 * trimmed, tokens cut to MIME_TOKEN_MAX, values to the string budget, and
 * the parameters of Content-Type and Content-Disposition (quoted strings,
 * comments, RFC 2231 continuations joined).
 */
#include <string.h>

#include "mime_int.h"

/* ---- character classes --------------------------------------------------- */

bool mime_mem_ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (mime_lc((unsigned char)a[i]) != mime_lc((unsigned char)b[i]))
			return false;
	return true;
}

bool mime_span_ieq(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);

	return n == l && mime_mem_ieq(s, lit, l);
}

/* RFC 2045 token characters (8-bit bytes accepted, leniently). */
static inline bool is_token_char(unsigned char c)
{
	if (c <= ' ' || c == 0x7f)
		return false;
	switch (c) {
	case '(': case ')': case '<': case '>': case '@': case ',': case ';':
	case ':': case '\\': case '"': case '/': case '[': case ']': case '?':
	case '=':
		return false;
	default:
		return true;
	}
}

/* ---- values ---------------------------------------------------------------- */

/* Unfold field f into scratch (appended): line breaks removed, whitespace
 * kept, leading and trailing whitespace trimmed.  Returns its span. */
struct span mime_unfold(struct parser *p, const struct hfield *f)
{
	const char *m = p->msg;
	size_t a = f->start, b = f->end;
	struct span sp;

	while (a < b && (mime_is_wsp((unsigned char)m[a]) || m[a] == '\r' || m[a] == '\n'))
		a++;
	while (b > a && (mime_is_wsp((unsigned char)m[b - 1]) || m[b - 1] == '\r' || m[b - 1] == '\n'))
		b--;
	sp.off = p->scratch.len;
	if (!mime_wb_reserve(&p->scratch, b - a)) {
		sp.len = 0;
		return sp;
	}
	while (a < b) {
		const char *nl = memchr(m + a, '\n', b - a);
		size_t e = nl ? (size_t)(nl - m) : b;
		size_t ce = e;

		if (nl && ce > a && m[ce - 1] == '\r')
			ce--;
		memcpy(p->scratch.p + p->scratch.len, m + a, ce - a);
		p->scratch.len += ce - a;
		a = nl ? e + 1 : b;
	}
	sp.len = p->scratch.len - sp.off;
	return sp;
}

const char *mime_sp_ptr(const struct parser *p, struct span s)
{
	return (const char *)p->scratch.p + s.off;
}

/* How much of an n-byte value the string budget still allows. */
static size_t budget_take(struct parser *p, size_t n)
{
	if (n > p->budget)
		n = p->budget;
	p->budget -= n;
	return n;
}

/* A value from the message (NULL = absent), cut to the budget. */
void mime_put_val(struct parser *p, const char *s, size_t n)
{
	if (s == NULL)
		mime_wb_str(&p->out, NULL, 0);
	else
		mime_wb_str(&p->out, s, budget_take(p, n));
}

/* A token (type, subtype, encoding, disposition): cut to MIME_TOKEN_MAX,
 * outside the budget so the structure never loses them. */
void mime_put_tok(struct parser *p, const char *s, size_t n)
{
	mime_wb_str(&p->out, s, n > MIME_TOKEN_MAX ? MIME_TOKEN_MAX : n);
}

/* Write field f unfolded, or absent. */
void mime_write_field(struct parser *p, const struct hfield *f)
{
	struct span s;

	if (!f->set) {
		mime_wb_str(&p->out, NULL, 0);
		return;
	}
	p->scratch.len = 0;
	s = mime_unfold(p, f);
	if (p->scratch.failed) {
		p->out.failed = true;
		return;
	}
	mime_put_val(p, mime_sp_ptr(p, s), s.len);
}

/* Skip whitespace and (nested) comments in v[i..n). */
size_t mime_skip_cfws(const char *v, size_t i, size_t n)
{
	while (i < n) {
		if (mime_is_wsp((unsigned char)v[i])) {
			i++;
		} else if (v[i] == '(') {
			int depth = 0;

			for (; i < n; i++) {
				if (v[i] == '\\' && i + 1 < n)
					i++;
				else if (v[i] == '(')
					depth++;
				else if (v[i] == ')' && --depth == 0) {
					i++;
					break;
				}
			}
		} else {
			break;
		}
	}
	return i;
}

size_t mime_token_end(const char *v, size_t i, size_t n)
{
	while (i < n && is_token_char((unsigned char)v[i]))
		i++;
	return i;
}

/* Parse a quoted string at v[i] == '"' (v inside scratch at base offset
 * vo); the unquoted text is appended to scratch.  Returns the index after
 * the closing quote (or n if unterminated). */
static size_t quoted(struct parser *p, size_t vo, size_t i, size_t n, struct span *out)
{
	out->off = p->scratch.len;
	i++;
	while (i < n) {
		char c = (char)p->scratch.p[vo + i];

		if (c == '"') {
			i++;
			break;
		}
		if (c == '\\' && i + 1 < n) {
			i++;
			c = (char)p->scratch.p[vo + i];
		}
		mime_wb_byte(&p->scratch, (uint8_t)c);
		if (p->scratch.failed)
			return n;
		i++;
	}
	out->len = p->scratch.len - out->off;
	return i;
}

/* RFC 2231 suffix of a parameter name: "*", "*N" or "*N*". */
static void param_2231(struct parser *p, struct pparam *pp)
{
	const char *s = mime_sp_ptr(p, pp->name);
	size_t n = pp->name.len;
	size_t star = n, d;
	int sect = 0;

	pp->sect = -1;
	pp->ext = false;
	pp->base_len = n;
	if (n >= 2 && s[n - 1] == '*')
		pp->ext = true;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '*') {
			star = i;
			break;
		}
	if (star == n || star == 0)
		return;
	d = star + 1;
	if (d < n && s[d] >= '0' && s[d] <= '9' &&
	    !(s[d] == '0' && d + 1 < n && s[d + 1] >= '0' && s[d + 1] <= '9')) {
		size_t e = d;

		while (e < n && s[e] >= '0' && s[e] <= '9' && sect < 10000)
			sect = sect * 10 + (s[e++] - '0');
		if (e == n || (e == n - 1 && s[e] == '*')) {
			pp->sect = sect;
			pp->base_len = star;
		}
	}
}

/* Parse "; name=value ..." from v[i..n) (v at scratch offset vo) into
 * p->params. */
void mime_parse_params(struct parser *p, size_t vo, size_t i, size_t n)
{
	p->n_pp = 0;
	while (i < n && !p->scratch.failed) {
		struct pparam pp;
		size_t e;

		i = mime_skip_cfws((const char *)p->scratch.p + vo, i, n);
		if (i >= n)
			break;
		if (p->scratch.p[vo + i] != ';') {
			/* junk: skip to the next ';' */
			while (i < n && p->scratch.p[vo + i] != ';') {
				if (p->scratch.p[vo + i] == '"') {
					struct span dummy;
					size_t keep = p->scratch.len;

					i = quoted(p, vo, i, n, &dummy);
					p->scratch.len = keep;
				} else {
					i++;
				}
			}
			continue;
		}
		i = mime_skip_cfws((const char *)p->scratch.p + vo, i + 1, n);
		e = mime_token_end((const char *)p->scratch.p + vo, i, n);
		if (e == i)
			continue;
		pp.name.off = vo + i;
		pp.name.len = e - i;
		i = mime_skip_cfws((const char *)p->scratch.p + vo, e, n);
		if (i >= n || p->scratch.p[vo + i] != '=')
			continue;
		i = mime_skip_cfws((const char *)p->scratch.p + vo, i + 1, n);
		if (i < n && p->scratch.p[vo + i] == '"') {
			i = quoted(p, vo, i, n, &pp.value);
		} else {
			/* lenient: any run of non-space bytes up to ';' (real
			 * mail has unquoted "boundary=----=_Part_1") */
			e = i;
			while (e < n) {
				unsigned char c = p->scratch.p[vo + e];

				if (c <= ' ' || c == 0x7f || c == ';' || c == '"' || c == '(')
					break;
				e++;
			}
			pp.value.off = vo + i;
			pp.value.len = e - i;
			i = e;
		}
		if (p->scratch.failed)
			return;
		if (p->n_pp < MIME_PARAMS_MAX) {
			param_2231(p, &pp);
			p->params[p->n_pp++] = pp;
		}
	}
}

/* Write the parameters in p->params: plain ones in order, then each
 * RFC 2231 continuation group joined.  Returns how many were written. */
uint32_t mime_write_params(struct parser *p, bool add_charset)
{
	size_t count_at = p->out.len;
	uint32_t n = 0;
	bool done[MIME_PARAMS_MAX] = { false };
	bool have_charset = false;

	mime_wb_u32(&p->out, 0);
	for (size_t i = 0; i < p->n_pp; i++) {
		const struct pparam *pp = &p->params[i];

		if (pp->sect >= 0)
			continue;
		mime_put_val(p, mime_sp_ptr(p, pp->name),
			pp->name.len > MIME_TOKEN_MAX ? MIME_TOKEN_MAX : pp->name.len);
		mime_put_val(p, mime_sp_ptr(p, pp->value), pp->value.len);
		if (mime_span_ieq(mime_sp_ptr(p, pp->name), pp->name.len, "charset"))
			have_charset = true;
		n++;
	}
	for (size_t i = 0; i < p->n_pp; i++) {
		const struct pparam *first = &p->params[i];
		bool ext = false;
		size_t vlen = 0, nlen, left;

		if (first->sect < 0 || done[i])
			continue;
		/* members of this group, written in section order */
		for (size_t j = i; j < p->n_pp; j++) {
			const struct pparam *q = &p->params[j];

			if (q->sect >= 0 && !done[j] && q->base_len == first->base_len &&
			    mime_mem_ieq(mime_sp_ptr(p, q->name), mime_sp_ptr(p, first->name), q->base_len)) {
				ext |= q->ext;
				vlen += q->value.len;
			}
		}
		nlen = first->base_len > MIME_TOKEN_MAX - 1 ? MIME_TOKEN_MAX - 1 : first->base_len;
		nlen = budget_take(p, nlen);
		mime_wb_u32(&p->out, (uint32_t)(nlen + (ext ? 1 : 0)));
		mime_wb_put(&p->out, mime_sp_ptr(p, first->name), nlen);
		if (ext)
			mime_wb_byte(&p->out, '*');
		left = budget_take(p, vlen);
		mime_wb_u32(&p->out, (uint32_t)left);
		for (;;) {
			int pick = -1;

			for (size_t j = i; j < p->n_pp; j++) {
				const struct pparam *q = &p->params[j];

				if (q->sect >= 0 && !done[j] && q->base_len == first->base_len &&
				    mime_mem_ieq(mime_sp_ptr(p, q->name), mime_sp_ptr(p, first->name), q->base_len) &&
				    (pick < 0 || q->sect < p->params[pick].sect))
					pick = (int)j;
			}
			if (pick < 0)
				break;
			done[pick] = true;
			{
				size_t k = p->params[pick].value.len;

				if (k > left)
					k = left;
				mime_wb_put(&p->out, mime_sp_ptr(p, p->params[pick].value), k);
				left -= k;
			}
		}
		n++;
	}
	if (add_charset && !have_charset) {
		mime_wb_lit(&p->out, "charset");
		mime_wb_lit(&p->out, "us-ascii");
		n++;
	}
	mime_wb_patch32(&p->out, count_at, n);
	p->n_params += n;
	return n;
}

