/*
 * imap_search.c - evaluates a parsed SEARCH tree against one message
 * described by struct imap_search_msg (see imap_search.h); no store, no
 * I/O.
 *
 * Substring search is Knuth-Morris-Pratt over ASCII-folded bytes, with the
 * folded pattern and failure table prepared once at parse time: linear in
 * the text, streaming (so text in two pieces, unfolded header values,
 * decoded encoded words and decoded body parts all feed the same matcher,
 * and a match may span any chunk boundary), and without allocation.
 * Between candidates it skips ahead with a short byte loop, then memchr.
 * A pattern with non-ASCII bytes has the text folded on the way in
 * (imap_fold_utf8, one pending byte of state).  Header values are
 * unfolded into a stack buffer (heap only for values over 4 KiB) before
 * RFC 2047 decoding, which needs look-ahead.  Body parts are located with
 * the MIME structure (popnode/mime.h) and decoded chunk by chunk through
 * imap_decode.h into stack buffers.  The message text, then its
 * structure, are asked for lazily, at most once per imap_search_match()
 * call, and only when a key needs them: the AND ordering done by the
 * parser puts those keys last.
 */
#include <stdlib.h>
#include <string.h>

#include "imap_arena.h"
#include "imap_decode.h"
#include "imap_parse.h"
#include "imap_search.h"
#include "mime.h"

static unsigned char fold(unsigned char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch + 32) : ch;
}

int imap_search_pattern_init(struct imap_search_pattern *pat, const char *s, size_t len,
			     struct imap_arena *a)
{
	unsigned char *f = imap_arena_alloc(a, len + 1);
	uint32_t *fail = imap_arena_alloc(a, (len ? len : 1) * sizeof(*fail));

	if (f == NULL || fail == NULL || len > UINT32_MAX)
		return -1;
	pat->utf8 = false;
	for (size_t i = 0; i < len; i++) {
		f[i] = fold((unsigned char)s[i]);
		if (f[i] >= 0x80)
			pat->utf8 = true;
	}
	if (pat->utf8) {
		/* the caseless UTF-8 fold keeps the length */
		struct imap_fold fs;
		imap_fold_init(&fs);
		size_t o = imap_fold_utf8(&fs, s, len, f);
		o += imap_fold_finish(&fs, f + o);
		if (o != len)
			return -1;	/* cannot happen (imap_decode.h) */
	}
	f[len] = '\0';
	if (len > 0)
		fail[0] = 0;
	uint32_t k = 0;
	for (size_t i = 1; i < len; i++) {
		while (k > 0 && f[i] != f[k])
			k = fail[k - 1];
		if (f[i] == f[k])
			k++;
		fail[i] = k;
	}
	pat->s = s;
	pat->len = len;
	pat->folded = f;
	pat->fail = fail;
	return 0;
}

/* ---- streaming matcher ------------------------------------------------- */

struct matcher {
	const struct imap_search_pattern *pat;
	uint32_t j;
	bool found;
	struct imap_fold fs;	/* utf8 patterns: the text's fold state */
};

static void m_init(struct matcher *mt, const struct imap_search_pattern *pat)
{
	mt->pat = pat;
	mt->j = 0;
	mt->found = pat->len == 0;
	imap_fold_init(&mt->fs);
}

/* KMP over text whose non-ASCII letters are already folded. */
#define SKIP_BYTES 16

static void m_kmp(struct matcher *mt, const char *p, size_t n)
{
	const unsigned char *f = mt->pat->folded;
	const uint32_t *fail = mt->pat->fail;
	uint32_t len = (uint32_t)mt->pat->len;
	uint32_t j = mt->j;
	const unsigned char *s = (const unsigned char *)p;
	const unsigned char f0 = f[0];
	/* The skip to the next possible first byte: a byte loop for up to
	 * SKIP_BYTES bytes, then memchr for the bytes that fold to f0 (where
	 * it last found each is kept: NULL not looked yet, s + n none left).
	 * memchr wins by far where first bytes are rare; the byte loop first
	 * keeps text dense with them (one memchr call per byte) from costing
	 * more than a plain byte loop. */
	const unsigned char up = f0 >= 'a' && f0 <= 'z' ? (unsigned char)(f0 - 32) : f0;
	const unsigned char *next_lo = NULL, *next_up = NULL;

	if (mt->found)
		return;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch;
		if (j == 0) {
			size_t lim = n - i < SKIP_BYTES ? n : i + SKIP_BYTES;
			while (i < lim && fold(s[i]) != f0)
				i++;
			if (i == n) {
				mt->j = 0;
				return;
			}
		}
		if (j == 0 && fold(s[i]) != f0) {
			const unsigned char *at = s + i;
			if (next_lo == NULL || next_lo < at) {
				next_lo = memchr(at, f0, n - i);
				if (next_lo == NULL)
					next_lo = s + n;
			}
			if (up != f0 && (next_up == NULL || next_up < at)) {
				next_up = memchr(at, up, n - i);
				if (next_up == NULL)
					next_up = s + n;
			}
			const unsigned char *c = up != f0 && next_up < next_lo ? next_up : next_lo;
			if (c == s + n) {
				mt->j = 0;
				return;
			}
			i = (size_t)(c - s);
		}
		ch = fold(s[i]);
		while (j > 0 && ch != f[j])
			j = fail[j - 1];
		if (ch == f[j] && ++j == len) {
			mt->found = true;
			return;
		}
	}
	mt->j = j;
}

#define FOLD_CHUNK 512

/* Feed text.  An ASCII pattern can only match where the ASCII-folded text
 * does (the UTF-8 fold never makes or changes an ASCII byte), so only
 * patterns with other bytes pay for the UTF-8 fold. */
static void m_feed(struct matcher *mt, const char *p, size_t n)
{
	char buf[FOLD_CHUNK + 1];

	if (!mt->pat->utf8) {
		m_kmp(mt, p, n);
		return;
	}
	while (n > 0 && !mt->found) {
		size_t k = n < FOLD_CHUNK ? n : FOLD_CHUNK;
		m_kmp(mt, buf, imap_fold_utf8(&mt->fs, p, k, buf));
		p += k;
		n -= k;
	}
}

static void m_byte(struct matcher *mt, char ch)
{
	m_feed(mt, &ch, 1);
}

/* End of one stream of text: whether the pattern was found in it. */
static bool m_done(struct matcher *mt)
{
	char ch;

	if (!mt->found && mt->pat->utf8 && imap_fold_finish(&mt->fs, &ch) == 1)
		m_kmp(mt, &ch, 1);
	return mt->found;
}

/* ---- message text in up to two pieces ------------------------------------ */

struct vt {
	const char *p[2];
	size_t n[2];
	size_t len;
};

static void vt_init(struct vt *v, const struct imap_search_text *t)
{
	v->p[0] = t->p[0];
	v->n[0] = t->p[0] != NULL ? t->len[0] : 0;
	v->p[1] = t->p[1];
	v->n[1] = t->p[1] != NULL ? t->len[1] : 0;
	v->len = v->n[0] + v->n[1];
}

static inline unsigned char vt_at(const struct vt *v, size_t i)
{
	return (unsigned char)(i < v->n[0] ? v->p[0][i] : v->p[1][i - v->n[0]]);
}

/* Feed [a, b) to the matcher piece by piece. */
static void vt_feed(const struct vt *v, size_t a, size_t b, struct matcher *mt)
{
	if (a < v->n[0]) {
		size_t e = b < v->n[0] ? b : v->n[0];
		m_feed(mt, v->p[0] + a, e - a);
		a = e;
	}
	if (a < b && !mt->found)
		m_feed(mt, v->p[1] + (a - v->n[0]), b - a);
}

/* Whether [0, n) holds "=?" (an encoded word may start there). */
static bool vt_has_ew(const struct vt *v, size_t n)
{
	for (size_t piece = 0, base = 0; piece < 2 && base < n; base += v->n[piece], piece++) {
		size_t len = v->n[piece] < n - base ? v->n[piece] : n - base;
		const char *p = v->p[piece], *q = p;
		while ((q = memchr(q, '=', len - (size_t)(q - p))) != NULL) {
			size_t at = base + (size_t)(q - p);
			if (at + 1 < n && vt_at(v, at + 1) == '?')
				return true;
			if (++q >= p + len)
				break;
		}
	}
	return false;
}

/* Length of the header (up to and including the line end before the
 * blank line) and where the body starts. */
static void vt_split(const struct vt *v, size_t *hdr_len_r, size_t *body_r)
{
	size_t i = 0;

	/* empty header: the message starts with a blank line */
	if (v->len >= 1 && vt_at(v, 0) == '\n') {
		*hdr_len_r = 0;
		*body_r = 1;
		return;
	}
	if (v->len >= 2 && vt_at(v, 0) == '\r' && vt_at(v, 1) == '\n') {
		*hdr_len_r = 0;
		*body_r = 2;
		return;
	}
	for (size_t piece = 0; piece < 2; piece++) {
		const char *p = v->p[piece];
		size_t base = piece == 0 ? 0 : v->n[0];
		size_t n = v->n[piece];
		while (i < base + n) {
			const char *nl = memchr(p + (i - base), '\n', n - (i - base));
			if (nl == NULL) {
				i = base + n;
				break;
			}
			size_t k = base + (size_t)(nl - p) + 1;	/* after the LF */
			if (k < v->len && vt_at(v, k) == '\n') {
				*hdr_len_r = k;
				*body_r = k + 1;
				return;
			}
			if (k + 1 < v->len && vt_at(v, k) == '\r' && vt_at(v, k + 1) == '\n') {
				*hdr_len_r = k;
				*body_r = k + 2;
				return;
			}
			i = k;
		}
	}
	*hdr_len_r = v->len;
	*body_r = v->len;
}

/* ---- RFC 2047 ----------------------------------------------------------- */

static int hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = fold(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

static int b64v(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* Feed one decoded byte, converted from the charset to UTF-8. */
static void feed_cs(struct matcher *mt, enum imap_charset cs, unsigned char b)
{
	if (b >= 0x80 && !imap_charset_is_raw(cs)) {
		char u[3];
		m_feed(mt, u, imap_charset_to_utf8(cs, &b, 1, u));
	} else {
		m_byte(mt, (char)b);
	}
}

#define EW_MAX 1024	/* longest encoded word recognised */

/* If an encoded word starts at s[i], its length; else 0.  Sets the
 * charset span, encoding and text span. */
static size_t ew_scan(const char *s, size_t n, size_t i, size_t *cs_a, size_t *cs_n, char *enc,
		      size_t *tx_a, size_t *tx_n)
{
	size_t lim = n - i < EW_MAX ? n : i + EW_MAX;

	if (i + 1 >= n || s[i] != '=' || s[i + 1] != '?')
		return 0;
	size_t k = i + 2, a = k;
	while (k < lim && s[k] != '?' && s[k] > 0x20 && s[k] < 0x7f)
		k++;
	if (k == a || k + 2 >= lim || s[k] != '?')
		return 0;
	char e = (char)fold((unsigned char)s[k + 1]);
	if ((e != 'b' && e != 'q') || s[k + 2] != '?')
		return 0;
	*cs_a = a;
	*cs_n = k - a;
	*enc = e;
	k += 3;
	size_t t = k;
	while (k + 1 < lim && !(s[k] == '?' && s[k + 1] == '=')) {
		if ((unsigned char)s[k] <= 0x20 || (unsigned char)s[k] >= 0x7f)
			return 0;
		k++;
	}
	if (k + 1 >= lim)
		return 0;
	*tx_a = t;
	*tx_n = k - t;
	return k + 2 - i;
}

static void ew_decode(const char *s, size_t cs_a, size_t cs_n, char enc, size_t tx_a,
		      size_t tx_n, struct matcher *mt)
{
	enum imap_charset cs = imap_charset_lookup(s + cs_a, cs_n);
	const unsigned char *t = (const unsigned char *)s + tx_a;

	if (enc == 'q') {
		for (size_t i = 0; i < tx_n && !mt->found; i++) {
			if (t[i] == '_') {
				feed_cs(mt, cs, ' ');
			} else if (t[i] == '=' && i + 2 < tx_n && hexval(t[i + 1]) >= 0 &&
				   hexval(t[i + 2]) >= 0) {
				feed_cs(mt, cs, (unsigned char)(hexval(t[i + 1]) * 16 + hexval(t[i + 2])));
				i += 2;
			} else {
				feed_cs(mt, cs, t[i]);
			}
		}
		return;
	}
	uint32_t bits = 0;
	unsigned nb = 0;
	for (size_t i = 0; i < tx_n && !mt->found; i++) {
		int v = b64v(t[i]);
		if (v < 0)
			continue;	/* '=' padding, junk */
		bits = (bits << 6) | (uint32_t)v;
		nb += 6;
		if (nb >= 8) {
			nb -= 8;
			feed_cs(mt, cs, (unsigned char)(bits >> nb));
			bits &= (1u << nb) - 1;
		}
	}
}

static bool is_wsp(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Feed an unfolded header value, decoding encoded words. */
static void feed_value(const char *s, size_t n, struct matcher *mt)
{
	size_t i = 0;
	bool after_ew = false;

	while (i < n && !mt->found) {
		size_t cs_a, cs_n, tx_a, tx_n;
		char enc;
		if (after_ew && is_wsp(s[i])) {
			size_t k = i;
			while (k < n && is_wsp(s[k]))
				k++;
			if (ew_scan(s, n, k, &cs_a, &cs_n, &enc, &tx_a, &tx_n) > 0) {
				i = k;	/* white space between encoded words */
				continue;
			}
			m_feed(mt, s + i, k - i);
			i = k;
			after_ew = false;
			continue;
		}
		size_t l = ew_scan(s, n, i, &cs_a, &cs_n, &enc, &tx_a, &tx_n);
		if (l > 0) {
			ew_decode(s, cs_a, cs_n, enc, tx_a, tx_n, mt);
			i += l;
			after_ew = true;
			continue;
		}
		/* copy up to the next '=' in one go */
		size_t k = i + 1;
		while (k < n && s[k] != '=' && !(after_ew && is_wsp(s[k])))
			k++;
		m_feed(mt, s + i, k - i);
		i = k;
		after_ew = false;
	}
}

/* ---- header fields ---------------------------------------------------- */

#define VALUE_STACK 4096

/* Unfold the value of the field whose value starts at `a` (after the
 * colon) into a buffer; returns the index after the field's last line. */
static size_t unfold_value(const struct vt *v, size_t hdr_len, size_t a, char **buf,
			   size_t *len, char *stackbuf, bool *heap)
{
	size_t i = a, end;
	size_t o = 0;

	/* find the end of the field first, to size the buffer */
	for (end = a; end < hdr_len; end++) {
		if (vt_at(v, end) == '\n' && (end + 1 >= hdr_len || !is_wsp((char)vt_at(v, end + 1)))) {
			end++;
			break;
		}
	}
	size_t max = end - a;
	char *out = stackbuf;
	*heap = false;
	if (max > VALUE_STACK) {
		out = malloc(max);
		if (out == NULL) {
			out = stackbuf;	/* degrade: first 4 KiB only */
			max = VALUE_STACK;
		} else {
			*heap = true;
		}
	}
	while (i < hdr_len && is_wsp((char)vt_at(v, i)))
		i++;
	for (; i < end && o < max; i++) {
		char ch = (char)vt_at(v, i);
		if (ch == '\r' || ch == '\n')
			continue;
		out[o++] = ch;
	}
	*buf = out;
	*len = o;
	return end;
}

/* Walk the header fields; field NULL means every field.  With need_day,
 * parse the first matching field's value as a date instead. */
static bool header_walk(const struct vt *v, size_t hdr_len, const char *field, size_t flen,
			const struct imap_search_pattern *pat, int32_t *day_r)
{
	size_t i = 0;
	char stackbuf[VALUE_STACK];

	while (i < hdr_len) {
		/* field name up to ':' on this line */
		size_t k = i;
		while (k < hdr_len && vt_at(v, k) != ':' && vt_at(v, k) != '\n')
			k++;
		if (k >= hdr_len || vt_at(v, k) == '\n' || is_wsp((char)vt_at(v, i))) {
			/* not a field line (or a stray continuation): skip it */
			while (k < hdr_len && vt_at(v, k) != '\n')
				k++;
			i = k + 1;
			continue;
		}
		size_t ne = k;
		while (ne > i && is_wsp((char)vt_at(v, ne - 1)))
			ne--;
		bool match = field == NULL;
		if (!match && ne - i == flen) {
			match = true;
			for (size_t x = 0; x < flen; x++)
				if (fold(vt_at(v, i + x)) != fold((unsigned char)field[x])) {
					match = false;
					break;
				}
		}
		if (!match) {
			/* skip this field including continuation lines */
			size_t e = k;
			for (;;) {
				while (e < hdr_len && vt_at(v, e) != '\n')
					e++;
				e++;
				if (e >= hdr_len || !is_wsp((char)vt_at(v, e)))
					break;
			}
			i = e;
			continue;
		}
		char *val;
		size_t vlen;
		bool heap;
		size_t next = unfold_value(v, hdr_len, k + 1, &val, &vlen, stackbuf, &heap);
		bool found;
		if (day_r != NULL) {
			found = imap_parse_rfc5322_day(val, vlen, day_r) == 0;
		} else {
			struct matcher mt;
			m_init(&mt, pat);
			feed_value(val, vlen, &mt);
			found = m_done(&mt);
		}
		if (heap)
			free(val);
		if (found || day_r != NULL)
			return found;
		i = next;
	}
	return false;
}

bool imap_search_header_contains(const struct imap_search_text *hdr, const char *field,
				 size_t field_len, const struct imap_search_pattern *pat)
{
	struct vt v;

	vt_init(&v, hdr);
	return header_walk(&v, v.len, field, field_len, pat, NULL);
}

/* ---- decoded body ------------------------------------------------------ */

/* A view of [a, b) of v. */
static void vt_sub(const struct vt *v, size_t a, size_t b, struct vt *s)
{
	if (a < v->n[0]) {
		s->p[0] = v->p[0] + a;
		s->n[0] = (b < v->n[0] ? b : v->n[0]) - a;
		s->p[1] = v->p[1];
		s->n[1] = b > v->n[0] ? b - v->n[0] : 0;
	} else {
		s->p[0] = v->p[1] != NULL ? v->p[1] + (a - v->n[0]) : NULL;
		s->n[0] = b - a;
		s->p[1] = NULL;
		s->n[1] = 0;
	}
	s->len = b - a;
}

/* A header block [a, b) (a whole header, or an embedded message's):
 * the raw bytes, then, if it has encoded words, the decoded field values. */
static bool header_block_contains(const struct vt *v, size_t a, size_t b,
				  const struct imap_search_pattern *pat)
{
	struct matcher mt;
	struct vt h;

	vt_sub(v, a, b, &h);
	m_init(&mt, pat);
	vt_feed(&h, 0, h.len, &mt);
	/* decoded values differ from the raw bytes only where encoded words
	 * are */
	return m_done(&mt) || (vt_has_ew(&h, h.len) && header_walk(&h, h.len, NULL, 0, pat, NULL));
}

#define DEC_CHUNK 2048	/* raw bytes decoded at a time */

enum cte { CTE_IDENTITY, CTE_BASE64, CTE_QP };

/* Whether s is lit (lower case) ignoring ASCII case. */
static bool mstr_is(struct mime_str s, const char *lit)
{
	size_t l = strlen(lit);

	if (s.p == NULL || s.len != l)
		return false;
	for (size_t i = 0; i < l; i++)
		if (fold((unsigned char)s.p[i]) != (unsigned char)lit[i])
			return false;
	return true;
}

/* Feed [a, b) of v, transfer-decoded and converted to UTF-8, to mt.  The
 * bytes go through in DEC_CHUNK pieces (stack buffers only); stops once
 * the pattern is found. */
static void feed_decoded(const struct vt *v, size_t a, size_t b, enum cte enc,
			 enum imap_charset cs, struct matcher *mt)
{
	unsigned char dec[IMAP_DECODE_OUT_MAX(DEC_CHUNK)];
	unsigned char utf[3 * IMAP_DECODE_OUT_MAX(DEC_CHUNK)];
	struct imap_b64 b64;
	struct imap_qp qp;

	if (enc == CTE_IDENTITY && imap_charset_is_raw(cs)) {
		vt_feed(v, a, b, mt);
		return;
	}
	imap_b64_init(&b64);
	imap_qp_init(&qp);
	while (a < b && !mt->found) {
		/* a contiguous span of at most DEC_CHUNK bytes */
		const char *p;
		size_t n = b - a;
		if (a < v->n[0]) {
			p = v->p[0] + a;
			if (n > v->n[0] - a)
				n = v->n[0] - a;
		} else {
			p = v->p[1] + (a - v->n[0]);
		}
		if (n > DEC_CHUNK)
			n = DEC_CHUNK;
		a += n;
		const unsigned char *d = (const unsigned char *)p;
		size_t dn = n;
		if (enc == CTE_BASE64) {
			dn = imap_b64_decode(&b64, p, n, dec);
			d = dec;
		} else if (enc == CTE_QP) {
			dn = imap_qp_decode(&qp, p, n, dec);
			d = dec;
		}
		if (imap_charset_is_raw(cs)) {
			m_feed(mt, (const char *)d, dn);
		} else {
			m_feed(mt, (const char *)utf, imap_charset_to_utf8(cs, d, dn, utf));
		}
	}
	if (enc == CTE_QP && !mt->found) {
		size_t dn = imap_qp_finish(&qp, dec);
		m_feed(mt, (const char *)utf, imap_charset_to_utf8(cs, dec, dn, utf));
	}
}

/* Whether the decoded text of a text/ * leaf contains pat. */
static bool part_contains(const struct vt *v, size_t base, const struct mime_part *p,
			  const struct imap_search_pattern *pat)
{
	struct matcher mt;
	enum cte enc = CTE_IDENTITY;
	enum imap_charset cs = IMAP_CS_UTF8;
	size_t a = base + p->body_off, b = a + p->body_len;

	if (b > v->len)
		b = v->len;
	if (a >= b)
		return false;
	if (mstr_is(p->encoding, "base64"))
		enc = CTE_BASE64;
	else if (mstr_is(p->encoding, "quoted-printable"))
		enc = CTE_QP;
	for (uint32_t i = 0; i < p->n_params; i++)
		if (mstr_is(p->params[i].name, "charset") && p->params[i].value.p != NULL) {
			cs = imap_charset_lookup(p->params[i].value.p, p->params[i].value.len);
			break;
		}
	m_init(&mt, pat);
	feed_decoded(v, a, b, enc, cs, &mt);
	return m_done(&mt);
}

/* BODY: with the MIME structure mm of the text from offset base on, the
 * decoded text/ * leaves and the headers of embedded messages; without
 * it, the raw bytes after the header. */
static bool body_contains(const struct vt *v, size_t body, const struct mime_msg *mm,
			  size_t base, const struct imap_search_pattern *pat)
{
	if (mm == NULL || base > v->len || mm->msg_len > v->len - base) {
		struct matcher mt;
		m_init(&mt, pat);
		vt_feed(v, body, v->len, &mt);
		return m_done(&mt);
	}
	for (uint32_t i = 0; i < mm->n_parts; i++) {
		const struct mime_part *p = &mm->parts[i];
		if (i > 0 && p->has_envelope) {
			size_t a = base + p->hdr_off, b = a + p->hdr_len;
			if (b <= v->len && a < b && header_block_contains(v, a, b, pat))
				return true;
		}
		if (p->kind == MIME_KIND_LEAF && mstr_is(p->type, "text") &&
		    part_contains(v, base, p, pat))
			return true;
	}
	return false;
}

/* ---- evaluation --------------------------------------------------------- */

struct eval {
	const struct imap_search_msg *m;
	bool loaded, ok;
	struct vt v;
	size_t hdr_len, body;
	bool sent_done;
	bool sent_ok;
	int32_t sent_day;
	bool mime_loaded, mime_ok;
	const struct mime_msg *mime;
	size_t mime_off;
};

static bool load(struct eval *e)
{
	if (e->loaded)
		return e->ok;
	e->loaded = true;
	struct imap_search_text t = e->m->text;
	if (e->m->get_text != NULL && e->m->get_text(e->m->ctx, &t) < 0) {
		e->ok = false;
		return false;
	}
	vt_init(&e->v, &t);
	vt_split(&e->v, &e->hdr_len, &e->body);
	e->ok = true;
	return true;
}

/* The MIME structure, asked for once (after the text). */
static bool load_mime(struct eval *e)
{
	const struct mime_msg *mm = e->m->mime;
	uint64_t off = e->m->mime_off;

	if (e->mime_loaded)
		return e->mime_ok;
	e->mime_loaded = true;
	if (e->m->get_mime != NULL && e->m->get_mime(e->m->ctx, &mm, &off) < 0) {
		e->mime_ok = false;
		return false;
	}
	e->mime = mm;
	e->mime_off = off <= e->v.len ? (size_t)off : e->v.len;
	if (off > e->v.len)
		e->mime = NULL;	/* does not describe this text */
	e->mime_ok = true;
	return true;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static int32_t internal_day(const struct imap_search_msg *m)
{
	return (int32_t)floor_div(m->internaldate + m->tz_offset, 86400);
}

static int32_t sent_day(struct eval *e)
{
	if (!e->sent_done) {
		e->sent_done = true;
		e->sent_ok = load(e) &&
			     header_walk(&e->v, e->hdr_len, "Date", 4, NULL, &e->sent_day);
		if (!e->sent_ok)
			e->sent_day = internal_day(e->m);
	}
	return e->sent_day;
}

static bool eval(const struct imap_search_node *n, struct eval *e)
{
	const struct imap_search_msg *m = e->m;

	switch (n->type) {
	case IMAP_SEARCH_ALL:
		return true;
	case IMAP_SEARCH_AND:
		for (const struct imap_search_node *k = n->child; k != NULL; k = k->next)
			if (!eval(k, e))
				return false;
		return true;
	case IMAP_SEARCH_OR:
		for (const struct imap_search_node *k = n->child; k != NULL; k = k->next)
			if (eval(k, e))
				return true;
		return false;
	case IMAP_SEARCH_NOT:
		return n->child == NULL || !eval(n->child, e);
	case IMAP_SEARCH_SEQSET:
		return imap_seqset_contains(n->u.set, m->max_seq, m->seq);
	case IMAP_SEARCH_UIDSET:
		return imap_seqset_contains(n->u.set, m->max_uid, m->uid);
	case IMAP_SEARCH_FLAG:
		return (m->flags & n->u.flag) != 0;
	case IMAP_SEARCH_KEYWORD:
		return n->u.kw.bit >= 0 && n->u.kw.bit < 64 &&
		       (m->keywords & ((uint64_t)1 << n->u.kw.bit)) != 0;
	case IMAP_SEARCH_BEFORE:
		return internal_day(m) < n->u.day;
	case IMAP_SEARCH_ON:
		return internal_day(m) == n->u.day;
	case IMAP_SEARCH_SINCE:
		return internal_day(m) >= n->u.day;
	case IMAP_SEARCH_SENTBEFORE:
		return sent_day(e) < n->u.day;
	case IMAP_SEARCH_SENTON:
		return sent_day(e) == n->u.day;
	case IMAP_SEARCH_SENTSINCE:
		return sent_day(e) >= n->u.day;
	case IMAP_SEARCH_LARGER:
		return m->size > n->u.size;
	case IMAP_SEARCH_SMALLER:
		return m->size < n->u.size;
	case IMAP_SEARCH_MODSEQ:
		return m->modseq >= n->u.modseq;
	case IMAP_SEARCH_HEADER:
		if (!load(e))
			return false;
		return header_walk(&e->v, e->hdr_len, n->u.text.field, n->u.text.field_len,
				   &n->u.text.pat, NULL);
	case IMAP_SEARCH_BODY:
	case IMAP_SEARCH_TEXT:
		if (!load(e))
			return false;
		if (n->u.text.pat.len == 0)
			return true;
		if (n->type == IMAP_SEARCH_TEXT &&
		    header_block_contains(&e->v, 0, e->hdr_len, &n->u.text.pat))
			return true;
		if (!load_mime(e))
			return false;
		return body_contains(&e->v, e->body, e->mime, e->mime_off, &n->u.text.pat);
	case IMAP_SEARCH_TYPE_COUNT:
		break;
	}
	return false;
}

bool imap_search_match(const struct imap_search_node *tree, const struct imap_search_msg *m)
{
	struct eval e = { .m = m };

	return eval(tree, &e);
}

static void bind_node(struct imap_search_node *n,
		      int (*lookup)(void *ctx, const char *name, size_t len), void *ctx)
{
	if (n->type == IMAP_SEARCH_KEYWORD)
		n->u.kw.bit = lookup(ctx, n->u.kw.name, n->u.kw.len);
	if (n->type == IMAP_SEARCH_AND || n->type == IMAP_SEARCH_OR || n->type == IMAP_SEARCH_NOT)
		for (struct imap_search_node *k = n->child; k != NULL; k = k->next)
			bind_node(k, lookup, ctx);	/* depth bounded by the parser */
}

void imap_search_bind_keywords(struct imap_search_node *tree,
			       int (*lookup)(void *ctx, const char *name, size_t len), void *ctx)
{
	if (tree != NULL)
		bind_node(tree, lookup, ctx);
}

static unsigned needs_node(const struct imap_search_node *n)
{
	unsigned r = 0;

	switch (n->type) {
	case IMAP_SEARCH_HEADER:
	case IMAP_SEARCH_SENTBEFORE:
	case IMAP_SEARCH_SENTON:
	case IMAP_SEARCH_SENTSINCE:
		return IMAP_SEARCH_NEED_HEADER;
	case IMAP_SEARCH_BODY:
		return IMAP_SEARCH_NEED_BODY;
	case IMAP_SEARCH_TEXT:
		return IMAP_SEARCH_NEED_HEADER | IMAP_SEARCH_NEED_BODY;
	case IMAP_SEARCH_AND:
	case IMAP_SEARCH_OR:
	case IMAP_SEARCH_NOT:
		for (const struct imap_search_node *k = n->child; k != NULL; k = k->next)
			r |= needs_node(k);
		return r;
	default:
		return 0;
	}
}

unsigned imap_search_needs(const struct imap_search_node *tree)
{
	return tree != NULL ? needs_node(tree) : 0;
}
