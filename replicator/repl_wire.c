/*
 * repl_wire.c - replication frames (records, heartbeats, snapshots) and
 * answer lines (repl_wire.h).  No I/O.
 */
#include <stdint.h>
#include <string.h>

#include "repl_wire.h"

/* after the kind byte: flags, seq, type, userid, mboxid, uid, time, data_len */
#define REC_FIXED (1 + 8 + 1 + 4 + 4 + 4 + 8 + 4)
#define HB_PAYLOAD 16
/* after the kind byte: flags, hash, body_len / type, a, b, c, data_len */
#define SNAP_BODY_FIXED (1 + REPL_HASH_LEN + 4)
#define SNAP_ITEM_FIXED (1 + 4 + 4 + 4 + 4)
#define SNAP_END_PAYLOAD 28

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static bool flags_fit(uint8_t flags, uint8_t type)
{
	if (flags & ~(REPL_F_BODY | REPL_F_META | REPL_F_GONE))
		return false;
	if (type != REPL_TYPE_MSG_ADD)
		return flags == 0;
	if ((flags & REPL_F_META) && !(flags & REPL_F_BODY))
		return false;
	if ((flags & REPL_F_GONE) && (flags & REPL_F_BODY))
		return false;
	return true;
}

size_t repl_wire_record_size(const struct repl_rec *r)
{
	uint64_t sz = REPL_FRAME_HDR + REC_FIXED;

	if (r->seq == 0 || r->type < REPL_TYPE_MIN || r->type > REPL_TYPE_MAX ||
	    !flags_fit(r->flags, r->type) || r->data_len > REPL_DATA_MAX ||
	    (r->data_len > 0 && r->data == NULL))
		return 0;
	sz += r->data_len;
	if (r->type == REPL_TYPE_MSG_ADD)
		sz += REPL_HASH_LEN;
	if (r->flags & REPL_F_BODY) {
		if (r->body_len > UINT32_MAX || (r->body_len > 0 && r->body == NULL))
			return 0;
		sz += 4 + (uint64_t)r->body_len;
	}
	if (r->flags & REPL_F_META) {
		if (r->meta_len > UINT32_MAX || (r->meta_len > 0 && r->meta == NULL))
			return 0;
		sz += 4 + (uint64_t)r->meta_len;
	}
	if (sz - 4 > UINT32_MAX || sz > SIZE_MAX)
		return 0;
	return (size_t)sz;
}

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t len)
{
	if (len > 0)
		memcpy(p, src, len);
	return p + len;
}

size_t repl_wire_record_encode(const struct repl_rec *r, uint8_t *out, size_t cap)
{
	size_t sz = repl_wire_record_size(r);
	uint8_t *p = out;

	if (sz == 0 || sz > cap)
		return 0;
	put32(p, (uint32_t)(sz - 4));
	p[4] = REPL_RECORD;
	p[5] = r->flags;
	put64(p + 6, r->seq);
	p[14] = r->type;
	put32(p + 15, r->userid);
	put32(p + 19, r->mboxid);
	put32(p + 23, r->uid);
	put64(p + 27, (uint64_t)r->time);
	put32(p + 35, (uint32_t)r->data_len);
	p = put_bytes(p + REPL_FRAME_HDR + REC_FIXED, r->data, r->data_len);
	if (r->type == REPL_TYPE_MSG_ADD)
		p = put_bytes(p, r->hash, REPL_HASH_LEN);
	if (r->flags & REPL_F_BODY) {
		put32(p, (uint32_t)r->body_len);
		p = put_bytes(p + 4, r->body, r->body_len);
	}
	if (r->flags & REPL_F_META) {
		put32(p, (uint32_t)r->meta_len);
		p = put_bytes(p + 4, r->meta, r->meta_len);
	}
	return (size_t)(p - out);
}

void repl_wire_heartbeat_encode(uint64_t last_seq, uint64_t time_ms,
				uint8_t out[REPL_HEARTBEAT_SIZE])
{
	put32(out, 1 + HB_PAYLOAD);
	out[4] = REPL_HEARTBEAT;
	put64(out + 5, last_seq);
	put64(out + 13, time_ms);
}

size_t repl_wire_snap_size(const struct repl_snapitem *it)
{
	uint64_t sz = REPL_FRAME_HDR;

	if (it->type == REPL_SNAP_T_BODY) {
		if ((it->flags & ~REPL_SF_META) != 0 || it->body_len > UINT32_MAX ||
		    (it->body_len > 0 && it->body == NULL))
			return 0;
		sz += SNAP_BODY_FIXED + (uint64_t)it->body_len;
		if (it->flags & REPL_SF_META) {
			if (it->meta_len > UINT32_MAX || (it->meta_len > 0 && it->meta == NULL))
				return 0;
			sz += 4 + (uint64_t)it->meta_len;
		}
	} else {
		if (it->type < REPL_SNAP_T_ITEM_MIN || it->type > REPL_SNAP_T_MAX ||
		    it->flags != 0 || it->data_len > REPL_DATA_MAX ||
		    (it->data_len > 0 && it->data == NULL))
			return 0;
		sz += SNAP_ITEM_FIXED + it->data_len;
	}
	if (sz - 4 > UINT32_MAX || sz > SIZE_MAX)
		return 0;
	return (size_t)sz;
}

size_t repl_wire_snap_encode(const struct repl_snapitem *it, uint8_t *out, size_t cap)
{
	size_t sz = repl_wire_snap_size(it);
	uint8_t *p = out;

	if (sz == 0 || sz > cap)
		return 0;
	put32(p, (uint32_t)(sz - 4));
	if (it->type == REPL_SNAP_T_BODY) {
		p[4] = REPL_SNAP_BODY;
		p[5] = it->flags;
		memcpy(p + 6, it->hash, REPL_HASH_LEN);
		p += 6 + REPL_HASH_LEN;
		put32(p, (uint32_t)it->body_len);
		p = put_bytes(p + 4, it->body, it->body_len);
		if (it->flags & REPL_SF_META) {
			put32(p, (uint32_t)it->meta_len);
			p = put_bytes(p + 4, it->meta, it->meta_len);
		}
	} else {
		p[4] = REPL_SNAP_ITEM;
		p[5] = it->type;
		put32(p + 6, it->a);
		put32(p + 10, it->b);
		put32(p + 14, it->c);
		put32(p + 18, (uint32_t)it->data_len);
		p = put_bytes(p + 22, it->data, it->data_len);
	}
	return (size_t)(p - out);
}

void repl_wire_snapend_encode(const struct repl_snapend *e, uint8_t out[REPL_SNAPEND_SIZE])
{
	put32(out, 1 + SNAP_END_PAYLOAD);
	out[4] = REPL_SNAP_END;
	put64(out + 5, e->seq);
	put64(out + 13, e->items);
	put32(out + 21, e->next_userid);
	put32(out + 25, e->next_mboxid);
	put32(out + 29, e->uidvalidity);
}

/* The largest frame lim allows, as the u32 length field counts it. */
static uint64_t max_frame(const struct repl_limits *lim)
{
	uint64_t m = 1 + REC_FIXED + (uint64_t)REPL_DATA_MAX + REPL_HASH_LEN + 4 +
		     (uint64_t)lim->body_max + 4 + (uint64_t)lim->meta_max;

	return m > UINT32_MAX ? UINT32_MAX : m;
}

size_t repl_wire_frame_size(const uint8_t *buf, size_t len, const struct repl_limits *lim)
{
	uint32_t flen;

	if (len < REPL_FRAME_HDR)
		return 0;
	flen = get32(buf);
	switch (buf[4]) {
	case REPL_HEARTBEAT:
		if (flen != 1 + HB_PAYLOAD)
			return SIZE_MAX;
		break;
	case REPL_RECORD:
		if (flen < 1 + REC_FIXED || flen > max_frame(lim))
			return SIZE_MAX;
		break;
	case REPL_SNAP_BODY:
		if (flen < 1 + SNAP_BODY_FIXED ||
		    flen > 1 + SNAP_BODY_FIXED + (uint64_t)lim->body_max + 4 + lim->meta_max)
			return SIZE_MAX;
		break;
	case REPL_SNAP_ITEM:
		if (flen < 1 + SNAP_ITEM_FIXED || flen > 1 + SNAP_ITEM_FIXED + REPL_DATA_MAX)
			return SIZE_MAX;
		break;
	case REPL_SNAP_END:
		if (flen != 1 + SNAP_END_PAYLOAD)
			return SIZE_MAX;
		break;
	default:
		return SIZE_MAX;
	}
	return (size_t)flen + 4;
}

static int bad(const char **why_r, const char *why)
{
	*why_r = why;
	return -1;
}

/* A u32-length-prefixed field at *p of at most max bytes, within end. */
static int take(const uint8_t **p, const uint8_t *end, size_t max, const void **v_r,
		size_t *len_r)
{
	uint32_t len;

	if (end - *p < 4)
		return -1;
	len = get32(*p);
	*p += 4;
	if (len > max || (size_t)(end - *p) < len)
		return -1;
	*v_r = *p;
	*len_r = len;
	*p += len;
	return 0;
}

static int decode_record(const uint8_t *p, const uint8_t *end, const struct repl_limits *lim,
			 struct repl_rec *r, const char **why_r)
{
	memset(r, 0, sizeof(*r));
	if (end - p < REC_FIXED)
		return bad(why_r, "record shorter than its fixed part");
	r->flags = p[0];
	r->seq = get64(p + 1);
	r->type = p[9];
	r->userid = get32(p + 10);
	r->mboxid = get32(p + 14);
	r->uid = get32(p + 18);
	r->time = (int64_t)get64(p + 22);
	if (r->seq == 0)
		return bad(why_r, "record seq 0");
	if (r->type < REPL_TYPE_MIN || r->type > REPL_TYPE_MAX)
		return bad(why_r, "unknown record type");
	if (!flags_fit(r->flags, r->type))
		return bad(why_r, "record flags do not fit its type");
	p += REC_FIXED - 4;
	if (take(&p, end, REPL_DATA_MAX, &r->data, &r->data_len) < 0)
		return bad(why_r, "bad record data length");
	if (r->type == REPL_TYPE_MSG_ADD) {
		if (end - p < REPL_HASH_LEN)
			return bad(why_r, "record without its body hash");
		memcpy(r->hash, p, REPL_HASH_LEN);
		p += REPL_HASH_LEN;
	}
	if ((r->flags & REPL_F_BODY) && take(&p, end, lim->body_max, &r->body, &r->body_len) < 0)
		return bad(why_r, "bad body length");
	if ((r->flags & REPL_F_META) && take(&p, end, lim->meta_max, &r->meta, &r->meta_len) < 0)
		return bad(why_r, "bad metadata length");
	if (p != end)
		return bad(why_r, "bytes after the record's last field");
	return 0;
}

static int decode_snap_body(const uint8_t *p, const uint8_t *end,
			    const struct repl_limits *lim, struct repl_snapitem *it,
			    const char **why_r)
{
	memset(it, 0, sizeof(*it));
	it->type = REPL_SNAP_T_BODY;
	if (end - p < SNAP_BODY_FIXED - 4)
		return bad(why_r, "snapshot body shorter than its fixed part");
	it->flags = p[0];
	if ((it->flags & ~REPL_SF_META) != 0)
		return bad(why_r, "unknown snapshot body flags");
	memcpy(it->hash, p + 1, REPL_HASH_LEN);
	p += 1 + REPL_HASH_LEN;
	if (take(&p, end, lim->body_max, &it->body, &it->body_len) < 0)
		return bad(why_r, "bad body length");
	if ((it->flags & REPL_SF_META) &&
	    take(&p, end, lim->meta_max, &it->meta, &it->meta_len) < 0)
		return bad(why_r, "bad metadata length");
	if (p != end)
		return bad(why_r, "bytes after the snapshot body's last field");
	return 0;
}

static int decode_snap_item(const uint8_t *p, const uint8_t *end, struct repl_snapitem *it,
			    const char **why_r)
{
	memset(it, 0, sizeof(*it));
	if (end - p < SNAP_ITEM_FIXED)
		return bad(why_r, "snapshot item shorter than its fixed part");
	it->type = p[0];
	if (it->type < REPL_SNAP_T_ITEM_MIN || it->type > REPL_SNAP_T_MAX)
		return bad(why_r, "unknown snapshot item type");
	it->a = get32(p + 1);
	it->b = get32(p + 5);
	it->c = get32(p + 9);
	p += SNAP_ITEM_FIXED - 4;
	if (take(&p, end, REPL_DATA_MAX, &it->data, &it->data_len) < 0)
		return bad(why_r, "bad snapshot item data length");
	if (p != end)
		return bad(why_r, "bytes after the snapshot item's data");
	return 0;
}

int repl_wire_decode(const uint8_t *buf, size_t len, const struct repl_limits *lim,
		     struct repl_frame *f, size_t *used_r, const char **why_r)
{
	size_t need = repl_wire_frame_size(buf, len, lim);

	*used_r = 0;
	*why_r = NULL;
	memset(f, 0, sizeof(*f));
	if (need == SIZE_MAX)
		return bad(why_r, len >= REPL_FRAME_HDR &&
				      (buf[4] < REPL_RECORD || buf[4] > REPL_SNAP_END)
				      ? "unknown frame kind" : "bad frame length");
	if (need == 0 || len < need)
		return 0;
	f->kind = (enum repl_kind)buf[4];
	switch (f->kind) {
	case REPL_HEARTBEAT:
		f->last_seq = get64(buf + 5);
		f->time_ms = get64(buf + 13);
		break;
	case REPL_RECORD:
		if (decode_record(buf + REPL_FRAME_HDR, buf + need, lim, &f->rec, why_r) < 0)
			return -1;
		break;
	case REPL_SNAP_BODY:
		if (decode_snap_body(buf + REPL_FRAME_HDR, buf + need, lim, &f->snap, why_r) < 0)
			return -1;
		break;
	case REPL_SNAP_ITEM:
		if (decode_snap_item(buf + REPL_FRAME_HDR, buf + need, &f->snap, why_r) < 0)
			return -1;
		break;
	case REPL_SNAP_END:
		f->end.seq = get64(buf + 5);
		f->end.items = get64(buf + 13);
		f->end.next_userid = get32(buf + 21);
		f->end.next_mboxid = get32(buf + 25);
		f->end.uidvalidity = get32(buf + 29);
		break;
	}
	*used_r = need;
	return 1;
}

static bool parse_dec(const char *s, size_t len, uint64_t *v_r)
{
	uint64_t v = 0;

	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return false;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*v_r = v;
	return true;
}

enum repl_line repl_wire_parse_line(const char *line, size_t len, uint64_t *seq_r,
				    const char **text_r, size_t *text_len_r)
{
	if (len >= 8 && memcmp(line, "applied ", 8) == 0)
		return parse_dec(line + 8, len - 8, seq_r) ? REPL_LINE_APPLIED : REPL_LINE_BAD;
	if (len >= 9 && memcmp(line, "progress ", 9) == 0)
		return parse_dec(line + 9, len - 9, seq_r) ? REPL_LINE_PROGRESS : REPL_LINE_BAD;
	if (len >= 7 && memcmp(line, "loaded ", 7) == 0)
		return parse_dec(line + 7, len - 7, seq_r) ? REPL_LINE_LOADED : REPL_LINE_BAD;
	if (len >= 6 && memcmp(line, "error ", 6) == 0) {
		for (size_t i = 6; i < len; i++)
			if (line[i] < 0x20 || line[i] > 0x7e)
				return REPL_LINE_BAD;
		*text_r = line + 6;
		*text_len_r = len - 6;
		return REPL_LINE_ERROR;
	}
	return REPL_LINE_BAD;
}

bool repl_msg_add_hash(const void *data, size_t len, uint8_t hash[REPL_HASH_LEN])
{
	const uint8_t *p = data;
	const size_t off = 1 + 8 + 8 + 8 + 4 + 8;	/* ver size modseq date flags kw */

	if (len < off + REPL_HASH_LEN + 4 || p[0] != 1)
		return false;
	memcpy(hash, p + off, REPL_HASH_LEN);
	return true;
}

bool repl_msg_expunge_hash(const void *data, size_t len, uint8_t hash[REPL_HASH_LEN])
{
	if (len != 8 + REPL_HASH_LEN)
		return false;
	memcpy(hash, (const uint8_t *)data + 8, REPL_HASH_LEN);
	return true;
}
