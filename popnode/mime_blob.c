/*
 * mime_blob.c - the blob (format: mime.h, docs/mime.md): the growable
 * buffer the parser writes its records into, and the decoder that turns a
 * stored blob back into a tree.
 *
 * The decoder checks everything a later reader relies on: lengths inside
 * the blob, counts against the declared totals, kinds vs. children,
 * envelopes exactly where expected, and the byte ranges of every part
 * nested inside its parent's body and inside the message.  imap_body.c
 * trusts a decoded tree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime_int.h"

#define BLOB_HDR_LEN 28
#define REC_FIXED_LEN 24	/* kind, flags, pad, n_children, hdr_off, hdr_len, body_len, lines */
#define STR_NIL 0xffffffffu

/* ---- growable byte buffer ------------------------------------------------ */

bool mime_wb_reserve(struct wbuf *w, size_t n)
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

void mime_wb_u32(struct wbuf *w, uint32_t v)
{
	if (w->cap - w->len < 4 && !mime_wb_reserve(w, 4))
		return;
	put_le32(w->p + w->len, v);
	w->len += 4;
}

void mime_wb_patch32(struct wbuf *w, size_t at, uint32_t v)
{
	if (!w->failed && at + 4 <= w->len)
		put_le32(w->p + at, v);
}

/* A string: u32 length then bytes; NULL = absent. */
void mime_wb_str(struct wbuf *w, const char *s, size_t n)
{
	if (s == NULL) {
		mime_wb_u32(w, STR_NIL);
		return;
	}
	if (n >= STR_NIL) {
		w->failed = true;
		return;
	}
	mime_wb_u32(w, (uint32_t)n);
	mime_wb_put(w, s, n);
}

void mime_wb_lit(struct wbuf *w, const char *s)
{
	mime_wb_str(w, s, strlen(s));
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
	return s.p != NULL && mime_span_ieq(s.p, s.len, lit);
}

struct mime_str mime_param_get(const struct mime_param *params, uint32_t n, const char *name)
{
	struct mime_str none = { NULL, 0 };

	for (uint32_t i = 0; i < n; i++)
		if (mime_str_eq(params[i].name, name))
			return params[i].value;
	return none;
}
