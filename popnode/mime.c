/*
 * mime.c - one-pass MIME structure parser and the blob it stores.
 *
 * The parser walks the message once, line by line, with a stack of the
 * boundaries of the enclosing multiparts.  parse_part() reads one entity:
 * its header (stopping at the empty line, at a boundary line of an
 * enclosing multipart, or at the end), classifies it from Content-Type,
 * appends its record to the blob, then consumes its body:
 *   - a leaf scans forward to the next boundary line of any enclosing
 *     multipart (or the end);
 *   - a message/rfc822 parses its one child (the embedded message) in place;
 *   - a multipart pushes its boundary and parses a child after each of its
 *     boundary lines until its close delimiter (then skips the epilogue),
 *     or until an outer boundary / the end (missing close delimiter).
 * Every call returns the boundary line that stopped it ("hit"), so no byte
 * is looked at twice, whatever the nesting.  Line counts come from a
 * running LF count carried along the scan.
 *
 * Records are written in pre-order as soon as a header is known; the
 * values known only later (children count, body length, lines) are
 * patched in place.  A multipart that ends up with no child is the last
 * record in the blob, so it is simply rewritten as text/plain.
 *
 * The decoder checks everything a later reader relies on: lengths inside
 * the blob, counts against the declared totals, kinds vs. children,
 * envelopes exactly where expected, and the byte ranges of every part
 * nested inside its parent's body and inside the message.  imap_body.c
 * trusts a decoded tree.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"

#define BLOB_MAGIC "PMIM"
#define BLOB_HDR_LEN 28
#define REC_FIXED_LEN 24	/* kind, flags, pad, n_children, hdr_off, hdr_len, body_len, lines */
#define STR_NIL 0xffffffffu

#define REC_F_ENVELOPE 0x01

/* ---- growable byte buffer ------------------------------------------------ */

struct wbuf {
	uint8_t *p;
	size_t len;
	size_t cap;
	bool failed;
};

static bool wb_reserve(struct wbuf *w, size_t n)
{
	size_t ncap;
	uint8_t *np;

	if (w->failed)
		return false;
	if (n <= w->cap - w->len)
		return true;
	if (n > SIZE_MAX / 2 - w->len) {
		w->failed = true;
		return false;
	}
	ncap = w->cap ? w->cap : 256;
	while (ncap - w->len < n)
		ncap *= 2;
	np = realloc(w->p, ncap);
	if (np == NULL) {
		w->failed = true;
		return false;
	}
	w->p = np;
	w->cap = ncap;
	return true;
}

static inline void wb_put(struct wbuf *w, const void *d, size_t n)
{
	if (n == 0 || (n > w->cap - w->len && !wb_reserve(w, n)))
		return;
	memcpy(w->p + w->len, d, n);
	w->len += n;
}

static inline void wb_byte(struct wbuf *w, uint8_t b)
{
	if (w->len == w->cap && !wb_reserve(w, 1))
		return;
	w->p[w->len++] = b;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline void wb_u32(struct wbuf *w, uint32_t v)
{
	if (w->cap - w->len < 4 && !wb_reserve(w, 4))
		return;
	put_le32(w->p + w->len, v);
	w->len += 4;
}

static void wb_patch32(struct wbuf *w, size_t at, uint32_t v)
{
	if (!w->failed && at + 4 <= w->len)
		put_le32(w->p + at, v);
}

/* A string: u32 length then bytes; NULL = absent. */
static void wb_str(struct wbuf *w, const char *s, size_t n)
{
	if (s == NULL) {
		wb_u32(w, STR_NIL);
		return;
	}
	if (n >= STR_NIL) {
		w->failed = true;
		return;
	}
	wb_u32(w, (uint32_t)n);
	wb_put(w, s, n);
}

static void wb_lit(struct wbuf *w, const char *s)
{
	wb_str(w, s, strlen(s));
}

/* ---- character classes --------------------------------------------------- */

static inline bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static inline unsigned char lc(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static bool mem_ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lc((unsigned char)a[i]) != lc((unsigned char)b[i]))
			return false;
	return true;
}

static bool span_ieq(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);

	return n == l && mem_ieq(s, lit, l);
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

/* ---- header fields ------------------------------------------------------- */

enum hid {
	H_CTYPE,
	H_CTE,
	H_CID,
	H_CDESC,
	H_CDISP,
	H_CLANG,
	H_CLOC,
	H_CMD5,
	H_DATE,
	H_SUBJECT,
	H_FROM,
	H_SENDER,
	H_REPLY_TO,
	H_TO,
	H_CC,
	H_BCC,
	H_IN_REPLY_TO,
	H_MESSAGE_ID,
	H_COUNT
};

static const struct {
	const char *name;
	size_t len;
	enum hid id;
} hnames[] = {
	{ "content-type", 12, H_CTYPE },
	{ "content-transfer-encoding", 25, H_CTE },
	{ "content-id", 10, H_CID },
	{ "content-description", 19, H_CDESC },
	{ "content-disposition", 19, H_CDISP },
	{ "content-language", 16, H_CLANG },
	{ "content-location", 16, H_CLOC },
	{ "content-md5", 11, H_CMD5 },
	{ "date", 4, H_DATE },
	{ "subject", 7, H_SUBJECT },
	{ "from", 4, H_FROM },
	{ "sender", 6, H_SENDER },
	{ "reply-to", 8, H_REPLY_TO },
	{ "to", 2, H_TO },
	{ "cc", 2, H_CC },
	{ "bcc", 3, H_BCC },
	{ "in-reply-to", 11, H_IN_REPLY_TO },
	{ "message-id", 10, H_MESSAGE_ID },
};

static int hname_lookup(const char *s, size_t n)
{
	unsigned char c0;

	if (n < 2 || n > 25)
		return -1;
	c0 = lc((unsigned char)s[0]);
	if (c0 != 'c' && c0 != 'd' && c0 != 's' && c0 != 'f' && c0 != 'r' &&
	    c0 != 't' && c0 != 'b' && c0 != 'i' && c0 != 'm')
		return -1;
	for (size_t i = 0; i < sizeof(hnames) / sizeof(hnames[0]); i++)
		if (hnames[i].len == n && hnames[i].name[0] == (char)c0 &&
		    mem_ieq(s, hnames[i].name, n))
			return (int)hnames[i].id;
	return -1;
}

/* Value of one field: raw bytes [start, end) after the colon up to the end
 * of its last (continuation) line, line ends inside included. */
struct hfield {
	uint32_t start;
	uint32_t end;
	bool set;
};

/* A boundary line met while scanning ("hit"), or the end (level < 0). */
struct hit {
	int level;		/* index in the boundary stack; -1 = end */
	bool close;		/* "--boundary--" */
	size_t ls;		/* line start */
	size_t le;		/* after the line's LF (or the end) */
	uint64_t lines_ls;	/* LFs before ls */
};

struct hdr {
	size_t start;
	size_t end;		/* header [start, end) */
	uint64_t lines_end;	/* LFs before end */
	bool hit;		/* a boundary line ended the header */
	struct hit h;
	bool delim_after;	/* the empty line is followed by a boundary line */
	struct hit delim;	/* that line */
	size_t blank;		/* start of the empty line */
	struct hfield f[H_COUNT];
};

/* ---- parser state --------------------------------------------------------- */

struct span {
	size_t off;		/* into scratch */
	size_t len;
};

struct pparam {
	struct span name;
	struct span value;
	int sect;		/* RFC 2231 section number, -1 if none */
	bool ext;		/* name ended with '*' (extended value) */
	size_t base_len;	/* name length without the 2231 suffix */
};

struct parser {
	const char *msg;
	size_t len;
	struct wbuf out;
	struct wbuf scratch;
	uint32_t n_parts;
	uint32_t n_params;
	uint32_t n_addrs;
	size_t budget;		/* string bytes still allowed (MIME_STRINGS_MAX) */
	/* boundaries of the open multiparts, outermost first */
	int nb;
	char bnd[MIME_DEPTH_MAX + 1][MIME_BOUNDARY_MAX];
	size_t bnd_len[MIME_DEPTH_MAX + 1];
	struct pparam params[MIME_PARAMS_MAX];
	size_t n_pp;
};

/* Does the line at ls (its bytes up to le) start with "--" + an open
 * boundary?  The longest match wins, innermost first among equals. */
static bool match_boundary(const struct parser *p, size_t ls, size_t le, struct hit *h)
{
	const char *m = p->msg;
	size_t avail;
	int best = -1;

	if (le - ls < 3 || m[ls] != '-' || m[ls + 1] != '-')
		return false;
	avail = le - ls - 2;
	if (m[le - 1] == '\n')
		avail--;
	for (int i = p->nb - 1; i >= 0; i--) {
		size_t bl = p->bnd_len[i];

		if (bl <= avail && (best < 0 || bl > p->bnd_len[best]) &&
		    memcmp(m + ls + 2, p->bnd[i], bl) == 0)
			best = i;
	}
	if (best < 0)
		return false;
	h->level = best;
	h->ls = ls;
	h->le = le;
	{
		size_t after = ls + 2 + p->bnd_len[best];

		h->close = after + 2 <= le && m[after] == '-' && m[after + 1] == '-';
	}
	return true;
}

/* Count LFs in [a, b). */
static uint64_t count_lf(const char *m, size_t a, size_t b)
{
	uint64_t n = 0;
	const char *s = m + a, *e = m + b;

	while (s < e) {
		const char *nl = memchr(s, '\n', (size_t)(e - s));

		if (nl == NULL)
			break;
		n++;
		s = nl + 1;
	}
	return n;
}

/* Scan lines from pos (a line start, lines LFs before it) to the next
 * boundary line of any open multipart, or the end. */
static void scan(const struct parser *p, size_t pos, uint64_t lines, struct hit *h)
{
	const char *m = p->msg;
	size_t len = p->len;

	if (p->nb == 0) {
		h->level = -1;
		h->close = false;
		h->ls = h->le = len;
		h->lines_ls = lines + count_lf(m, pos, len);
		return;
	}
	while (pos < len) {
		const char *nl = memchr(m + pos, '\n', len - pos);
		size_t le = nl ? (size_t)(nl - m) + 1 : len;

		if (m[pos] == '-' && match_boundary(p, pos, le, h)) {
			h->lines_ls = lines;
			return;
		}
		if (nl)
			lines++;
		pos = le;
	}
	h->level = -1;
	h->close = false;
	h->ls = h->le = len;
	h->lines_ls = lines;
}

/* Where content that is stopped by a boundary line at ls ends: the line
 * break before the boundary line belongs to the boundary (RFC 2046
 * 5.1.1).  *lf_r is set if an LF was given up. */
static size_t end_before(const char *m, size_t start, size_t ls, bool *lf_r)
{
	size_t e = ls;

	*lf_r = false;
	if (e > start && m[e - 1] == '\n') {
		e--;
		*lf_r = true;
		if (e > start && m[e - 1] == '\r')
			e--;
	}
	return e;
}

/* Read the header starting at pos (lines LFs before it). */
static void parse_header(const struct parser *p, size_t pos, uint64_t lines, struct hdr *h)
{
	const char *m = p->msg;
	size_t len = p->len;
	int cur = -1;		/* field being extended by continuation lines */

	memset(h, 0, sizeof(*h));
	h->start = pos;
	while (pos < len) {
		const char *nl = memchr(m + pos, '\n', len - pos);
		size_t le = nl ? (size_t)(nl - m) + 1 : len;
		size_t ce = nl ? (size_t)(nl - m) : len;	/* content end */
		unsigned char c = (unsigned char)m[pos];

		if (ce > pos && m[ce - 1] == '\r' && nl)
			ce--;
		if (ce == pos && nl) {
			/* The empty line ends the header and belongs to it.
			 * If a boundary line follows, its line break may be the
			 * delimiter's instead (RFC 2046 5.1.1): noted here,
			 * decided by parse_part() once it knows whether the
			 * part opens a multipart with a longer boundary. */
			if (p->nb > 0 && le < len && m[le] == '-') {
				const char *nl2 = memchr(m + le, '\n', len - le);
				size_t le2 = nl2 ? (size_t)(nl2 - m) + 1 : len;

				if (match_boundary(p, le, le2, &h->delim)) {
					h->delim.lines_ls = lines + 1;
					h->delim_after = true;
					h->blank = pos;
				}
			}
			h->end = le;
			h->lines_end = lines + 1;
			return;
		}
		if (c == '-' && p->nb > 0 && match_boundary(p, pos, le, &h->h)) {
			bool lf;

			h->h.lines_ls = lines;
			h->hit = true;
			h->end = end_before(m, h->start, pos, &lf);
			h->lines_end = lines - (lf ? 1 : 0);
			return;
		}
		if (is_wsp(c)) {
			if (cur >= 0)
				h->f[cur].end = (uint32_t)ce;
		} else {
			const char *colon = memchr(m + pos, ':', ce - pos);

			cur = -1;
			if (colon != NULL) {
				size_t nend = (size_t)(colon - m);
				int id;

				while (nend > pos && is_wsp((unsigned char)m[nend - 1]))
					nend--;
				id = hname_lookup(m + pos, nend - pos);
				if (id >= 0 && !h->f[id].set) {
					h->f[id].set = true;
					h->f[id].start = (uint32_t)(colon - m) + 1;
					h->f[id].end = (uint32_t)ce;
					cur = id;
				}
			}
		}
		if (nl)
			lines++;
		pos = le;
	}
	h->end = len;
	h->lines_end = lines;
}

/* ---- values ---------------------------------------------------------------- */

/* Unfold field f into scratch (appended): line breaks removed, whitespace
 * kept, leading and trailing whitespace trimmed.  Returns its span. */
static struct span unfold(struct parser *p, const struct hfield *f)
{
	const char *m = p->msg;
	size_t a = f->start, b = f->end;
	struct span sp;

	while (a < b && (is_wsp((unsigned char)m[a]) || m[a] == '\r' || m[a] == '\n'))
		a++;
	while (b > a && (is_wsp((unsigned char)m[b - 1]) || m[b - 1] == '\r' || m[b - 1] == '\n'))
		b--;
	sp.off = p->scratch.len;
	if (!wb_reserve(&p->scratch, b - a)) {
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

static const char *sp_ptr(const struct parser *p, struct span s)
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
static void put_val(struct parser *p, const char *s, size_t n)
{
	if (s == NULL)
		wb_str(&p->out, NULL, 0);
	else
		wb_str(&p->out, s, budget_take(p, n));
}

/* A token (type, subtype, encoding, disposition): cut to MIME_TOKEN_MAX,
 * outside the budget so the structure never loses them. */
static void put_tok(struct parser *p, const char *s, size_t n)
{
	wb_str(&p->out, s, n > MIME_TOKEN_MAX ? MIME_TOKEN_MAX : n);
}

/* Write field f unfolded, or absent. */
static void write_field(struct parser *p, const struct hfield *f)
{
	struct span s;

	if (!f->set) {
		wb_str(&p->out, NULL, 0);
		return;
	}
	p->scratch.len = 0;
	s = unfold(p, f);
	if (p->scratch.failed) {
		p->out.failed = true;
		return;
	}
	put_val(p, sp_ptr(p, s), s.len);
}

/* Skip whitespace and (nested) comments in v[i..n). */
static size_t skip_cfws(const char *v, size_t i, size_t n)
{
	while (i < n) {
		if (is_wsp((unsigned char)v[i])) {
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

static size_t token_end(const char *v, size_t i, size_t n)
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
		wb_byte(&p->scratch, (uint8_t)c);
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
	const char *s = sp_ptr(p, pp->name);
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
static void parse_params(struct parser *p, size_t vo, size_t i, size_t n)
{
	p->n_pp = 0;
	while (i < n && !p->scratch.failed) {
		struct pparam pp;
		size_t e;

		i = skip_cfws((const char *)p->scratch.p + vo, i, n);
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
		i = skip_cfws((const char *)p->scratch.p + vo, i + 1, n);
		e = token_end((const char *)p->scratch.p + vo, i, n);
		if (e == i)
			continue;
		pp.name.off = vo + i;
		pp.name.len = e - i;
		i = skip_cfws((const char *)p->scratch.p + vo, e, n);
		if (i >= n || p->scratch.p[vo + i] != '=')
			continue;
		i = skip_cfws((const char *)p->scratch.p + vo, i + 1, n);
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
static uint32_t write_params(struct parser *p, bool add_charset)
{
	size_t count_at = p->out.len;
	uint32_t n = 0;
	bool done[MIME_PARAMS_MAX] = { false };
	bool have_charset = false;

	wb_u32(&p->out, 0);
	for (size_t i = 0; i < p->n_pp; i++) {
		const struct pparam *pp = &p->params[i];

		if (pp->sect >= 0)
			continue;
		put_val(p, sp_ptr(p, pp->name),
			pp->name.len > MIME_TOKEN_MAX ? MIME_TOKEN_MAX : pp->name.len);
		put_val(p, sp_ptr(p, pp->value), pp->value.len);
		if (span_ieq(sp_ptr(p, pp->name), pp->name.len, "charset"))
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
			    mem_ieq(sp_ptr(p, q->name), sp_ptr(p, first->name), q->base_len)) {
				ext |= q->ext;
				vlen += q->value.len;
			}
		}
		nlen = first->base_len > MIME_TOKEN_MAX - 1 ? MIME_TOKEN_MAX - 1 : first->base_len;
		nlen = budget_take(p, nlen);
		wb_u32(&p->out, (uint32_t)(nlen + (ext ? 1 : 0)));
		wb_put(&p->out, sp_ptr(p, first->name), nlen);
		if (ext)
			wb_byte(&p->out, '*');
		left = budget_take(p, vlen);
		wb_u32(&p->out, (uint32_t)left);
		for (;;) {
			int pick = -1;

			for (size_t j = i; j < p->n_pp; j++) {
				const struct pparam *q = &p->params[j];

				if (q->sect >= 0 && !done[j] && q->base_len == first->base_len &&
				    mem_ieq(sp_ptr(p, q->name), sp_ptr(p, first->name), q->base_len) &&
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
				wb_put(&p->out, sp_ptr(p, p->params[pick].value), k);
				left -= k;
			}
		}
		n++;
	}
	if (add_charset && !have_charset) {
		wb_lit(&p->out, "charset");
		wb_lit(&p->out, "us-ascii");
		n++;
	}
	wb_patch32(&p->out, count_at, n);
	p->n_params += n;
	return n;
}

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

		if (is_wsp((unsigned char)c)) {
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
		if (is_wsp((unsigned char)c) || c == '(' || c == '\r' || c == '\n') {
			i = (c == '(') ? a_skip(a, i, NULL) : i + 1;
			space = true;
			continue;
		}
		if (space && s->len > out->off)
			wb_byte(s, ' ');
		space = false;
		if (c == '"') {
			for (i++; i < a->n; i++) {
				c = av(a, i);
				if (c == '\\' && i + 1 < a->n)
					c = av(a, ++i);
				else if (c == '"')
					break;
				wb_byte(s, (uint8_t)c);
			}
			i++;
		} else {
			wb_byte(s, (uint8_t)c);
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
		if (is_wsp((unsigned char)c) || c == '(') {
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
				wb_byte(s, (uint8_t)c);
			}
			i++;
		} else if (c == '[') {
			size_t e = a_skip_quoted(a, i, ']');

			for (; i < e; i++)
				wb_byte(s, (uint8_t)av(a, i));
		} else {
			wb_byte(s, (uint8_t)c);
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
	put_val(p, name ? sp_ptr(p, *name) : NULL, name ? name->len : 0);
	put_val(p, adl ? sp_ptr(p, *adl) : NULL, adl ? adl->len : 0);
	if (mbox_lit != NULL)
		wb_lit(&p->out, mbox_lit);
	else
		put_val(p, mbox ? sp_ptr(p, *mbox) : NULL, mbox ? mbox->len : 0);
	if (host_lit != NULL)
		wb_lit(&p->out, host_lit);
	else
		put_val(p, host ? sp_ptr(p, *host) : NULL, host ? host->len : 0);
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
					if (!is_wsp((unsigned char)av(a, i)))
						wb_byte(s, (uint8_t)av(a, i));
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
			if (av(a, i) == '(' || is_wsp((unsigned char)av(a, i)))
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
static void write_addrs(struct parser *p, const struct hfield *f)
{
	struct alist a;
	size_t count_at = p->out.len;
	struct span v;
	size_t i = 0;

	wb_u32(&p->out, 0);
	if (!f->set)
		return;
	p->scratch.len = 0;
	v = unfold(p, f);
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
	wb_patch32(&p->out, count_at, a.count);
	p->n_addrs += a.count;
}


/* ---- records --------------------------------------------------------------- */

/* How a part is described, decided when its header is read. */
struct ctinfo {
	enum mime_kind kind;
	bool digest;		/* multipart/digest: children default to message/rfc822 */
};

enum ct_how {
	CT_DEFAULT,		/* text/plain; charset=us-ascii */
	CT_MESSAGE_DEFAULT,	/* message/rfc822 (digest child without Content-Type) */
	CT_PARSED,		/* as in Content-Type */
};

/* Content-Transfer-Encoding: its first token, default "7bit". */
static void write_cte(struct parser *p, const struct hfield *f)
{
	if (f->set) {
		struct span s;
		const char *v;
		size_t i, e;

		p->scratch.len = 0;
		s = unfold(p, f);
		v = sp_ptr(p, s);
		i = skip_cfws(v, 0, s.len);
		e = token_end(v, i, s.len);
		if (e > i && !p->scratch.failed) {
			put_tok(p, v + i, e - i);
			return;
		}
	}
	wb_lit(&p->out, "7bit");
}

/* Content-Disposition: type token, then its parameters. */
static void write_disposition(struct parser *p, const struct hfield *f)
{
	if (f->set) {
		struct span s;
		const char *v;
		size_t i, e;

		p->scratch.len = 0;
		s = unfold(p, f);
		v = sp_ptr(p, s);
		i = skip_cfws(v, 0, s.len);
		e = token_end(v, i, s.len);
		if (e > i && !p->scratch.failed) {
			size_t toff = s.off + i;

			parse_params(p, s.off, e, s.len);
			put_tok(p, (const char *)p->scratch.p + toff, e - i);
			write_params(p, false);
			return;
		}
	}
	wb_str(&p->out, NULL, 0);
	wb_u32(&p->out, 0);
}

/*
 * Append the record of the part whose header is h.  want_default forces
 * the text/plain default.  A multipart opens only with a usable boundary
 * and within the depth and part limits; its boundary is then copied to
 * p->bnd[p->nb] (the caller pushes it).  Layout:
 *   u8 kind, u8 flags, u16 0, u32 n_children, u32 hdr_off, u32 hdr_len,
 *   u32 body_len, u32 body_lines, str type, str subtype, params,
 *   str id, str description, str encoding, str md5, str disposition,
 *   disposition params, str language, str location,
 *   [envelope: str date, str subject, 6 address lists, str in-reply-to,
 *    str message-id]
 * where params = u32 n + n * (str name, str value) and an address list =
 * u32 n + n * (str name, str adl, str mailbox, str host).
 */
static void write_record(struct parser *p, const struct hdr *h, unsigned depth,
			 bool envelope, bool digest_child, bool want_default,
			 struct ctinfo *ct)
{
	struct wbuf *o = &p->out;
	enum ct_how how = CT_DEFAULT;
	size_t vo = 0, ts = 0, te = 0, ss = 0, se = 0;

	ct->kind = MIME_KIND_LEAF;
	ct->digest = false;
	p->n_pp = 0;
	p->scratch.len = 0;
	if (want_default) {
		how = CT_DEFAULT;
	} else if (h->f[H_CTYPE].set) {
		struct span s = unfold(p, &h->f[H_CTYPE]);
		const char *v = sp_ptr(p, s);
		size_t n = s.len, i;

		vo = s.off;
		ts = skip_cfws(v, 0, n);
		te = token_end(v, ts, n);
		i = skip_cfws(v, te, n);
		if (te > ts && i < n && v[i] == '/') {
			ss = skip_cfws(v, i + 1, n);
			se = token_end(v, ss, n);
			if (se > ss) {
				how = CT_PARSED;
				parse_params(p, vo, se, n);
			}
		}
	} else if (digest_child) {
		how = CT_MESSAGE_DEFAULT;
	}
#define CTP(off) ((const char *)p->scratch.p + vo + (off))
	if (how == CT_PARSED && span_ieq(CTP(ts), te - ts, "multipart")) {
		bool ok = false;

		for (size_t i = 0; i < p->n_pp; i++) {
			const struct pparam *pp = &p->params[i];

			if (pp->sect < 0 && span_ieq(sp_ptr(p, pp->name), pp->name.len, "boundary")) {
				if (pp->value.len > 0 && pp->value.len <= MIME_BOUNDARY_MAX &&
				    depth < MIME_DEPTH_MAX && p->n_parts < MIME_PARTS_MAX &&
				    p->nb <= MIME_DEPTH_MAX) {
					memcpy(p->bnd[p->nb], sp_ptr(p, pp->value), pp->value.len);
					p->bnd_len[p->nb] = pp->value.len;
					ok = true;
				}
				break;
			}
		}
		if (ok) {
			ct->kind = MIME_KIND_MULTIPART;
			ct->digest = span_ieq(CTP(ss), se - ss, "digest");
		} else {
			how = CT_DEFAULT;
		}
	} else if ((how == CT_PARSED && span_ieq(CTP(ts), te - ts, "message") &&
		    span_ieq(CTP(ss), se - ss, "rfc822")) ||
		   how == CT_MESSAGE_DEFAULT) {
		if (depth < MIME_DEPTH_MAX && p->n_parts < MIME_PARTS_MAX)
			ct->kind = MIME_KIND_MESSAGE;
		else
			how = CT_DEFAULT;
	}
	if (p->scratch.failed) {
		o->failed = true;
		return;
	}

	wb_byte(o, (uint8_t)ct->kind);
	wb_byte(o, envelope ? REC_F_ENVELOPE : 0);
	wb_byte(o, 0);
	wb_byte(o, 0);
	wb_u32(o, 0);					/* n_children, patched */
	wb_u32(o, (uint32_t)h->start);
	wb_u32(o, (uint32_t)(h->end - h->start));
	wb_u32(o, 0);					/* body_len, patched */
	wb_u32(o, 0);					/* body_lines, patched */
	switch (how) {
	case CT_PARSED:
		if (ct->kind == MIME_KIND_MESSAGE) {
			/* as Dovecot: the media-message form, lower case */
			wb_lit(o, "message");
			wb_lit(o, "rfc822");
		} else {
			put_tok(p, CTP(ts), te - ts);
			put_tok(p, CTP(ss), se - ss);
		}
		write_params(p, span_ieq(CTP(ts), te - ts, "text"));
		break;
	case CT_MESSAGE_DEFAULT:
		wb_lit(o, "message");
		wb_lit(o, "rfc822");
		wb_u32(o, 0);
		break;
	case CT_DEFAULT:
		wb_lit(o, "text");
		wb_lit(o, "plain");
		p->n_pp = 0;
		write_params(p, true);
		break;
	}
#undef CTP
	write_field(p, &h->f[H_CID]);
	write_field(p, &h->f[H_CDESC]);
	write_cte(p, &h->f[H_CTE]);
	write_field(p, &h->f[H_CMD5]);
	write_disposition(p, &h->f[H_CDISP]);
	write_field(p, &h->f[H_CLANG]);
	write_field(p, &h->f[H_CLOC]);
	if (envelope) {
		write_field(p, &h->f[H_DATE]);
		write_field(p, &h->f[H_SUBJECT]);
		write_addrs(p, &h->f[H_FROM]);
		write_addrs(p, &h->f[H_SENDER]);
		write_addrs(p, &h->f[H_REPLY_TO]);
		write_addrs(p, &h->f[H_TO]);
		write_addrs(p, &h->f[H_CC]);
		write_addrs(p, &h->f[H_BCC]);
		write_field(p, &h->f[H_IN_REPLY_TO]);
		write_field(p, &h->f[H_MESSAGE_ID]);
	}
	if (p->scratch.failed)
		o->failed = true;
}

/* LFs before the end of a hit's line. */
static uint64_t lines_after(const struct parser *p, const struct hit *h)
{
	return h->lines_ls + (h->le > h->ls && p->msg[h->le - 1] == '\n' ? 1 : 0);
}

/*
 * Parse the entity at pos (a line start, lines LFs before it) and append
 * its records.  pending != NULL: the entity is known to be empty, stopped
 * by that boundary line right away (the body of a message/rfc822 whose
 * header met a boundary).  *hit gets the boundary line (or end) that
 * stopped the entity.
 */
static void parse_part(struct parser *p, size_t pos, uint64_t lines, unsigned depth,
		       bool envelope, bool digest_child, const struct hit *pending,
		       struct hit *hit, size_t *end_r)
{
	struct hdr h;
	struct ctinfo ct;
	size_t rec, body_off, body_end, floor;
	uint32_t params0 = p->n_params, addrs0 = p->n_addrs, children = 0;
	uint64_t body_lf;
	bool lf = false;

	if (pending != NULL) {
		memset(&h, 0, sizeof(h));
		h.start = h.end = pos;
		h.lines_end = lines;
		h.hit = true;
		h.h = *pending;
	} else {
		parse_header(p, pos, lines, &h);
	}
	p->n_parts++;
	rec = p->out.len;
	write_record(p, &h, depth, envelope, digest_child, false, &ct);
	if (h.delim_after) {
		/* An empty line right before a boundary line: its line break
		 * is the delimiter's, so the entity is just the header
		 * without it -- unless the boundary is this multipart's own
		 * (a longer match, as "--abc" in "abc" inside "ab"). */
		struct hit own;
		bool is_own = false;

		if (ct.kind == MIME_KIND_MULTIPART) {
			p->nb++;
			is_own = match_boundary(p, h.delim.ls, h.delim.le, &own) &&
				 own.level == p->nb - 1;
			p->nb--;
		}
		if (!is_own) {
			h.end = h.blank;
			h.lines_end--;
			h.hit = true;
			h.h = h.delim;
			wb_patch32(&p->out, rec + 12, (uint32_t)(h.end - h.start));
		}
	}
	body_off = h.end;
	floor = body_off;	/* the body ends no earlier than its last child */

	switch (ct.kind) {
	case MIME_KIND_LEAF:
		if (h.hit)
			*hit = h.h;
		else
			scan(p, body_off, h.lines_end, hit);
		break;
	case MIME_KIND_MESSAGE:
		parse_part(p, body_off, h.lines_end, depth + 1, true, false,
			   h.hit ? &h.h : NULL, hit, &floor);
		children = 1;
		break;
	case MIME_KIND_MULTIPART: {
		int k = p->nb++;

		if (h.hit)
			*hit = h.h;
		else
			scan(p, body_off, h.lines_end, hit);
		while (hit->level == k && !p->out.failed) {
			if (hit->close) {
				/* epilogue: up to an outer boundary or the end */
				p->nb = k;
				scan(p, hit->le, lines_after(p, hit), hit);
				break;
			}
			if (p->n_parts >= MIME_PARTS_MAX) {
				scan(p, hit->le, lines_after(p, hit), hit);
				continue;
			}
			parse_part(p, hit->le, lines_after(p, hit), depth + 1, false,
				   ct.digest, NULL, hit, &floor);
			children++;
		}
		p->nb = k;
		break;
	}
	}

	if (hit->level < 0) {
		body_end = p->len;
	} else {
		/* Two boundary lines in a row share the line break between
		 * them: an empty part sits right at the second one, and its
		 * parent must not end before it. */
		body_end = end_before(p->msg, floor, hit->ls, &lf);
	}
	body_lf = hit->lines_ls - h.lines_end - (lf ? 1 : 0);

	if (ct.kind == MIME_KIND_MULTIPART && children == 0) {
		/* boundary never seen: describe it as text/plain.  It is the
		 * last record, so it is simply written again. */
		p->out.len = rec;
		p->n_params = params0;
		p->n_addrs = addrs0;
		write_record(p, &h, depth, envelope, digest_child, true, &ct);
	}
	*end_r = body_end;
	wb_patch32(&p->out, rec + 4, children);
	wb_patch32(&p->out, rec + 16, (uint32_t)(body_end - body_off));
	wb_patch32(&p->out, rec + 20, (uint32_t)body_lf);
}

int mime_parse(const char *msg, size_t len, uint8_t **blob_r, size_t *blob_len_r)
{
	struct parser *p;
	struct hit hit;
	size_t end;
	int ret = -1;

	*blob_r = NULL;
	*blob_len_r = 0;
	if (len > MIME_MSG_MAX || (msg == NULL && len > 0))
		return -1;
	/* the boundary and parameter arrays need no clearing */
	p = malloc(sizeof(*p));
	if (p == NULL)
		return -1;
	memset(p, 0, offsetof(struct parser, bnd));
	wb_reserve(&p->out, 1024);
	p->msg = msg != NULL ? msg : "";
	p->len = len;
	p->budget = MIME_STRINGS_MAX;
	wb_put(&p->out, BLOB_MAGIC, 4);
	wb_byte(&p->out, MIME_BLOB_VERSION);
	wb_byte(&p->out, 0);
	wb_byte(&p->out, 0);
	wb_byte(&p->out, 0);
	for (int i = 0; i < 5; i++)
		wb_u32(&p->out, 0);
	parse_part(p, 0, 0, 0, true, false, NULL, &hit, &end);
	if (!p->out.failed && p->out.len <= MIME_BLOB_MAX) {
		wb_patch32(&p->out, 8, (uint32_t)p->out.len);
		wb_patch32(&p->out, 12, (uint32_t)len);
		wb_patch32(&p->out, 16, p->n_parts);
		wb_patch32(&p->out, 20, p->n_params);
		wb_patch32(&p->out, 24, p->n_addrs);
		*blob_r = p->out.p;
		*blob_len_r = p->out.len;
		p->out.p = NULL;
		ret = 0;
	}
	free(p->out.p);
	free(p->scratch.p);
	free(p);
	return ret;
}

/* ---- decoding ---------------------------------------------------------------- */

struct dec {
	const uint8_t *b;
	size_t len;
	size_t pos;
	struct mime_msg *m;
	uint32_t n_parts, n_params, n_addrs;	/* declared totals */
	uint32_t used_parts, used_params, used_addrs;
	bool bad;
};

static uint32_t d_u32(struct dec *d)
{
	uint32_t v;

	if (d->bad || d->len - d->pos < 4) {
		d->bad = true;
		return 0;
	}
	v = get_le32(d->b + d->pos);
	d->pos += 4;
	return v;
}

static struct mime_str d_str(struct dec *d)
{
	struct mime_str s = { NULL, 0 };
	uint32_t n = d_u32(d);

	if (d->bad || n == STR_NIL)
		return s;
	if (n > d->len - d->pos) {
		d->bad = true;
		return s;
	}
	s.p = (const char *)d->b + d->pos;
	s.len = n;
	d->pos += n;
	return s;
}

/* A string that must be present. */
static struct mime_str d_pstr(struct dec *d)
{
	struct mime_str s = d_str(d);

	if (s.p == NULL)
		d->bad = true;
	return s;
}

static void d_params(struct dec *d, const struct mime_param **v, uint32_t *n_r)
{
	uint32_t n = d_u32(d);

	*v = NULL;
	*n_r = 0;
	if (d->bad || n > d->n_params - d->used_params) {
		d->bad = true;
		return;
	}
	if (n == 0)
		return;
	*v = &d->m->param_store[d->used_params];
	for (uint32_t i = 0; i < n && !d->bad; i++) {
		struct mime_param *pp = &d->m->param_store[d->used_params++];

		pp->name = d_pstr(d);
		pp->value = d_pstr(d);
	}
	*n_r = n;
}

static void d_addrs(struct dec *d, struct mime_addr_list *l)
{
	uint32_t n = d_u32(d);
	int open = 0;

	l->v = NULL;
	l->n = 0;
	if (d->bad || n > d->n_addrs - d->used_addrs || n > MIME_ADDRS_MAX) {
		d->bad = true;
		return;
	}
	if (n == 0)
		return;
	l->v = &d->m->addr_store[d->used_addrs];
	for (uint32_t i = 0; i < n && !d->bad; i++) {
		struct mime_addr *a = &d->m->addr_store[d->used_addrs++];

		a->name = d_str(d);
		a->adl = d_str(d);
		a->mailbox = d_str(d);
		a->host = d_str(d);
		/* group markers must pair up and not nest */
		if (a->host.p == NULL) {
			if (a->name.p != NULL || a->adl.p != NULL)
				d->bad = true;
			else if (a->mailbox.p != NULL)
				open++;
			else
				open--;
			if (open < 0 || open > 1)
				d->bad = true;
		} else if (a->mailbox.p == NULL) {
			d->bad = true;
		}
	}
	if (open != 0)
		d->bad = true;
	l->n = n;
}

/* Decode the part record at d->pos and its subtree.  [lo, hi) is where it
 * must lie; exact: it must start at lo and end at hi. */
static struct mime_part *d_part(struct dec *d, struct mime_part *parent, uint32_t depth,
				bool env, uint64_t lo, uint64_t hi, bool exact)
{
	struct mime_part *pt;
	uint32_t kind, flags, nch;
	uint64_t body_end, cursor;
	struct mime_part *prev = NULL;

	if (d->bad || d->used_parts >= d->n_parts || depth > MIME_DEPTH_MAX ||
	    d->len - d->pos < REC_FIXED_LEN) {
		d->bad = true;
		return NULL;
	}
	pt = &d->m->parts[d->used_parts];
	pt->index = d->used_parts++;
	pt->depth = depth;
	pt->parent = parent;
	kind = d->b[d->pos];
	flags = d->b[d->pos + 1];
	if (kind > MIME_KIND_MESSAGE || (flags & ~REC_F_ENVELOPE) != 0 ||
	    d->b[d->pos + 2] != 0 || d->b[d->pos + 3] != 0 ||
	    ((flags & REC_F_ENVELOPE) != 0) != env) {
		d->bad = true;
		return NULL;
	}
	d->pos += 4;
	pt->kind = (enum mime_kind)kind;
	pt->has_envelope = env;
	nch = d_u32(d);
	pt->hdr_off = d_u32(d);
	pt->hdr_len = d_u32(d);
	pt->body_len = d_u32(d);
	pt->body_lines = d_u32(d);
	pt->body_off = pt->hdr_off + pt->hdr_len;
	body_end = (uint64_t)pt->hdr_off + pt->hdr_len + pt->body_len;
	if (pt->hdr_off < lo || body_end > hi || (uint64_t)pt->body_off != (uint64_t)pt->hdr_off + pt->hdr_len ||
	    pt->body_lines > pt->body_len ||
	    (exact && (pt->hdr_off != lo || body_end != hi))) {
		d->bad = true;
		return NULL;
	}
	switch (pt->kind) {
	case MIME_KIND_LEAF:
		if (nch != 0)
			d->bad = true;
		break;
	case MIME_KIND_MULTIPART:
		if (nch == 0 || nch > d->n_parts - d->used_parts)
			d->bad = true;
		break;
	case MIME_KIND_MESSAGE:
		if (nch != 1)
			d->bad = true;
		break;
	}
	pt->type = d_pstr(d);
	pt->subtype = d_pstr(d);
	d_params(d, &pt->params, &pt->n_params);
	pt->id = d_str(d);
	pt->description = d_str(d);
	pt->encoding = d_pstr(d);
	pt->md5 = d_str(d);
	pt->disposition = d_str(d);
	d_params(d, &pt->disp_params, &pt->n_disp_params);
	pt->language = d_str(d);
	pt->location = d_str(d);
	if (!d->bad) {
		bool is_mp = mime_str_eq(pt->type, "multipart");
		bool is_msg = mime_str_eq(pt->type, "message") && mime_str_eq(pt->subtype, "rfc822");

		if ((pt->kind == MIME_KIND_MULTIPART) != is_mp ||
		    (pt->kind == MIME_KIND_MESSAGE) != is_msg)
			d->bad = true;
	}
	if (env) {
		struct mime_envelope *e = &pt->env;

		e->date = d_str(d);
		e->subject = d_str(d);
		d_addrs(d, &e->from);
		d_addrs(d, &e->sender);
		d_addrs(d, &e->reply_to);
		d_addrs(d, &e->to);
		d_addrs(d, &e->cc);
		d_addrs(d, &e->bcc);
		e->in_reply_to = d_str(d);
		e->message_id = d_str(d);
	}
	if (d->bad)
		return NULL;
	pt->n_children = nch;
	cursor = pt->body_off;
	for (uint32_t i = 0; i < nch; i++) {
		struct mime_part *c;

		if (pt->kind == MIME_KIND_MESSAGE)
			c = d_part(d, pt, depth + 1, true, pt->body_off, body_end, true);
		else
			c = d_part(d, pt, depth + 1, false, cursor, body_end, false);
		if (c == NULL)
			return NULL;
		if (prev == NULL)
			pt->child = c;
		else
			prev->next = c;
		prev = c;
		cursor = (uint64_t)c->body_off + c->body_len;
	}
	return pt;
}

int mime_blob_peek(const void *blob, size_t blob_len, uint32_t *msg_len_r)
{
	const uint8_t *b = blob;

	if (blob == NULL || blob_len < BLOB_HDR_LEN || memcmp(b, BLOB_MAGIC, 4) != 0 ||
	    b[4] != MIME_BLOB_VERSION || get_le32(b + 8) != blob_len)
		return -1;
	if (msg_len_r != NULL)
		*msg_len_r = get_le32(b + 12);
	return 0;
}

int mime_blob_decode(const void *blob, size_t blob_len, struct mime_msg **msg_r)
{
	struct dec d;
	struct mime_msg *m;
	size_t sz;
	uint32_t msg_len;

	*msg_r = NULL;
	if (mime_blob_peek(blob, blob_len, &msg_len) < 0)
		return -1;
	memset(&d, 0, sizeof(d));
	d.b = blob;
	d.len = blob_len;
	d.pos = BLOB_HDR_LEN;
	d.n_parts = get_le32(d.b + 16);
	d.n_params = get_le32(d.b + 20);
	d.n_addrs = get_le32(d.b + 24);
	if (d.b[5] != 0 || d.b[6] != 0 || d.b[7] != 0 ||
	    d.n_parts == 0 || d.n_parts > MIME_PARTS_MAX ||
	    d.n_parts > blob_len / REC_FIXED_LEN || d.n_params > blob_len / 8 ||
	    d.n_addrs > blob_len / 16 || d.n_addrs > MIME_ADDRS_TOTAL_MAX ||
	    blob_len > MIME_BLOB_MAX)
		return -1;
	sz = sizeof(*m) + (size_t)d.n_parts * sizeof(struct mime_part) +
	     (size_t)d.n_params * sizeof(struct mime_param) +
	     (size_t)d.n_addrs * sizeof(struct mime_addr);
	m = calloc(1, sz);
	if (m == NULL)
		return -1;
	m->msg_len = msg_len;
	m->n_parts = d.n_parts;
	m->parts = (struct mime_part *)(m + 1);
	m->param_store = (struct mime_param *)(m->parts + d.n_parts);
	m->addr_store = (struct mime_addr *)(m->param_store + d.n_params);
	d.m = m;
	if (d_part(&d, NULL, 0, true, 0, msg_len, true) == NULL || d.bad ||
	    d.pos != d.len || d.used_parts != d.n_parts || d.used_params != d.n_params ||
	    d.used_addrs != d.n_addrs) {
		free(m);
		return -1;
	}
	*msg_r = m;
	return 0;
}

void mime_msg_free(struct mime_msg **msg)
{
	if (msg == NULL || *msg == NULL)
		return;
	free(*msg);
	*msg = NULL;
}

bool mime_str_eq(struct mime_str s, const char *lit)
{
	return s.p != NULL && span_ieq(s.p, s.len, lit);
}

struct mime_str mime_param_get(const struct mime_param *params, uint32_t n, const char *name)
{
	struct mime_str none = { NULL, 0 };

	for (uint32_t i = 0; i < n; i++)
		if (mime_str_eq(params[i].name, name))
			return params[i].value;
	return none;
}
