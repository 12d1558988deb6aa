/*
 * mime_parse.c - one-pass MIME structure parser: mime_parse().
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
 * Header values go through mime_value.c, address lists through
 * mime_addr.c, and the blob is written with mime_blob.c's buffer.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mime_int.h"

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
	c0 = mime_lc((unsigned char)s[0]);
	if (c0 != 'c' && c0 != 'd' && c0 != 's' && c0 != 'f' && c0 != 'r' &&
	    c0 != 't' && c0 != 'b' && c0 != 'i' && c0 != 'm')
		return -1;
	for (size_t i = 0; i < sizeof(hnames) / sizeof(hnames[0]); i++)
		if (hnames[i].len == n && hnames[i].name[0] == (char)c0 &&
		    mime_mem_ieq(s, hnames[i].name, n))
			return (int)hnames[i].id;
	return -1;
}

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

/* ---- scanning ----------------------------------------------------------------- */

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
		if (mime_is_wsp(c)) {
			if (cur >= 0)
				h->f[cur].end = (uint32_t)ce;
		} else {
			const char *colon = memchr(m + pos, ':', ce - pos);

			cur = -1;
			if (colon != NULL) {
				size_t nend = (size_t)(colon - m);
				int id;

				while (nend > pos && mime_is_wsp((unsigned char)m[nend - 1]))
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
		s = mime_unfold(p, f);
		v = mime_sp_ptr(p, s);
		i = mime_skip_cfws(v, 0, s.len);
		e = mime_token_end(v, i, s.len);
		if (e > i && !p->scratch.failed) {
			mime_put_tok(p, v + i, e - i);
			return;
		}
	}
	mime_wb_lit(&p->out, "7bit");
}

/* Content-Disposition: type token, then its parameters. */
static void write_disposition(struct parser *p, const struct hfield *f)
{
	if (f->set) {
		struct span s;
		const char *v;
		size_t i, e;

		p->scratch.len = 0;
		s = mime_unfold(p, f);
		v = mime_sp_ptr(p, s);
		i = mime_skip_cfws(v, 0, s.len);
		e = mime_token_end(v, i, s.len);
		if (e > i && !p->scratch.failed) {
			size_t toff = s.off + i;

			mime_parse_params(p, s.off, e, s.len);
			mime_put_tok(p, (const char *)p->scratch.p + toff, e - i);
			mime_write_params(p, false);
			return;
		}
	}
	mime_wb_str(&p->out, NULL, 0);
	mime_wb_u32(&p->out, 0);
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
		struct span s = mime_unfold(p, &h->f[H_CTYPE]);
		const char *v = mime_sp_ptr(p, s);
		size_t n = s.len, i;

		vo = s.off;
		ts = mime_skip_cfws(v, 0, n);
		te = mime_token_end(v, ts, n);
		i = mime_skip_cfws(v, te, n);
		if (te > ts && i < n && v[i] == '/') {
			ss = mime_skip_cfws(v, i + 1, n);
			se = mime_token_end(v, ss, n);
			if (se > ss) {
				how = CT_PARSED;
				mime_parse_params(p, vo, se, n);
			}
		}
	} else if (digest_child) {
		how = CT_MESSAGE_DEFAULT;
	}
#define CTP(off) ((const char *)p->scratch.p + vo + (off))
	if (how == CT_PARSED && mime_span_ieq(CTP(ts), te - ts, "multipart")) {
		bool ok = false;

		for (size_t i = 0; i < p->n_pp; i++) {
			const struct pparam *pp = &p->params[i];

			if (pp->sect < 0 && mime_span_ieq(mime_sp_ptr(p, pp->name), pp->name.len, "boundary")) {
				if (pp->value.len > 0 && pp->value.len <= MIME_BOUNDARY_MAX &&
				    depth < MIME_DEPTH_MAX && p->n_parts < MIME_PARTS_MAX &&
				    p->nb <= MIME_DEPTH_MAX) {
					memcpy(p->bnd[p->nb], mime_sp_ptr(p, pp->value), pp->value.len);
					p->bnd_len[p->nb] = pp->value.len;
					ok = true;
				}
				break;
			}
		}
		if (ok) {
			ct->kind = MIME_KIND_MULTIPART;
			ct->digest = mime_span_ieq(CTP(ss), se - ss, "digest");
		} else {
			how = CT_DEFAULT;
		}
	} else if ((how == CT_PARSED && mime_span_ieq(CTP(ts), te - ts, "message") &&
		    mime_span_ieq(CTP(ss), se - ss, "rfc822")) ||
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

	mime_wb_byte(o, (uint8_t)ct->kind);
	mime_wb_byte(o, envelope ? REC_F_ENVELOPE : 0);
	mime_wb_byte(o, 0);
	mime_wb_byte(o, 0);
	mime_wb_u32(o, 0);					/* n_children, patched */
	mime_wb_u32(o, (uint32_t)h->start);
	mime_wb_u32(o, (uint32_t)(h->end - h->start));
	mime_wb_u32(o, 0);					/* body_len, patched */
	mime_wb_u32(o, 0);					/* body_lines, patched */
	switch (how) {
	case CT_PARSED:
		if (ct->kind == MIME_KIND_MESSAGE) {
			/* as Dovecot: the media-message form, lower case */
			mime_wb_lit(o, "message");
			mime_wb_lit(o, "rfc822");
		} else {
			mime_put_tok(p, CTP(ts), te - ts);
			mime_put_tok(p, CTP(ss), se - ss);
		}
		mime_write_params(p, mime_span_ieq(CTP(ts), te - ts, "text"));
		break;
	case CT_MESSAGE_DEFAULT:
		mime_wb_lit(o, "message");
		mime_wb_lit(o, "rfc822");
		mime_wb_u32(o, 0);
		break;
	case CT_DEFAULT:
		mime_wb_lit(o, "text");
		mime_wb_lit(o, "plain");
		p->n_pp = 0;
		mime_write_params(p, true);
		break;
	}
#undef CTP
	mime_write_field(p, &h->f[H_CID]);
	mime_write_field(p, &h->f[H_CDESC]);
	write_cte(p, &h->f[H_CTE]);
	mime_write_field(p, &h->f[H_CMD5]);
	write_disposition(p, &h->f[H_CDISP]);
	mime_write_field(p, &h->f[H_CLANG]);
	mime_write_field(p, &h->f[H_CLOC]);
	if (envelope) {
		mime_write_field(p, &h->f[H_DATE]);
		mime_write_field(p, &h->f[H_SUBJECT]);
		mime_write_addrs(p, &h->f[H_FROM]);
		mime_write_addrs(p, &h->f[H_SENDER]);
		mime_write_addrs(p, &h->f[H_REPLY_TO]);
		mime_write_addrs(p, &h->f[H_TO]);
		mime_write_addrs(p, &h->f[H_CC]);
		mime_write_addrs(p, &h->f[H_BCC]);
		mime_write_field(p, &h->f[H_IN_REPLY_TO]);
		mime_write_field(p, &h->f[H_MESSAGE_ID]);
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
			mime_wb_patch32(&p->out, rec + 12, (uint32_t)(h.end - h.start));
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
	mime_wb_patch32(&p->out, rec + 4, children);
	mime_wb_patch32(&p->out, rec + 16, (uint32_t)(body_end - body_off));
	mime_wb_patch32(&p->out, rec + 20, (uint32_t)body_lf);
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
	mime_wb_reserve(&p->out, 1024);
	p->msg = msg != NULL ? msg : "";
	p->len = len;
	p->budget = MIME_STRINGS_MAX;
	mime_wb_put(&p->out, BLOB_MAGIC, 4);
	mime_wb_byte(&p->out, MIME_BLOB_VERSION);
	mime_wb_byte(&p->out, 0);
	mime_wb_byte(&p->out, 0);
	mime_wb_byte(&p->out, 0);
	for (int i = 0; i < 5; i++)
		mime_wb_u32(&p->out, 0);
	parse_part(p, 0, 0, 0, true, false, NULL, &hit, &end);
	if (!p->out.failed && p->out.len <= MIME_BLOB_MAX) {
		mime_wb_patch32(&p->out, 8, (uint32_t)p->out.len);
		mime_wb_patch32(&p->out, 12, (uint32_t)len);
		mime_wb_patch32(&p->out, 16, p->n_parts);
		mime_wb_patch32(&p->out, 20, p->n_params);
		mime_wb_patch32(&p->out, 24, p->n_addrs);
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
