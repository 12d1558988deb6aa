/*
 * test_repl_wire.c - replication frames (repl_wire.h): exact layout,
 * round trips of every record shape and of heartbeats, decoding a stream
 * byte by byte ("need more"), every malformed frame refused (each built
 * from a frame that decodes), encoder refusals, ack lines, payload
 * hashes; snapshot frames (body, item, end) and their lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "repl_wire.h"

static const struct repl_limits lim = { .body_max = 1 << 20, .meta_max = 4096 };

static uint8_t msgrec[80];
static const char body[] = "Subject: hi\r\n\r\nhello\r\n";
static const char meta[] = "mime-structure";

static struct repl_rec add_rec(void)
{
	struct repl_rec r;

	memset(&r, 0, sizeof(r));
	memset(msgrec, 0, sizeof(msgrec));
	msgrec[0] = 1;
	memset(msgrec + 37, 0xab, REPL_HASH_LEN);
	r.flags = REPL_F_BODY | REPL_F_META;
	r.seq = 42;
	r.type = REPL_TYPE_MSG_ADD;
	r.userid = 7;
	r.mboxid = 9;
	r.uid = 11;
	r.time = 1700000000;
	r.data = msgrec;
	r.data_len = sizeof(msgrec);
	memset(r.hash, 0xab, REPL_HASH_LEN);
	r.body = body;
	r.body_len = strlen(body);
	r.meta = meta;
	r.meta_len = strlen(meta);
	return r;
}

static size_t encode(const struct repl_rec *r, uint8_t **out)
{
	size_t sz = repl_wire_record_size(r);

	assert_true(sz > 0);
	*out = malloc(sz);
	assert_non_null(*out);
	assert_int_equal(repl_wire_record_encode(r, *out, sz), sz);
	return sz;
}

static void same(const struct repl_rec *a, const struct repl_rec *b)
{
	assert_int_equal(a->flags, b->flags);
	assert_true(a->seq == b->seq);
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->userid, b->userid);
	assert_int_equal(a->mboxid, b->mboxid);
	assert_int_equal(a->uid, b->uid);
	assert_true(a->time == b->time);
	assert_int_equal(a->data_len, b->data_len);
	if (a->data_len > 0)
		assert_memory_equal(a->data, b->data, a->data_len);
	if (a->type == REPL_TYPE_MSG_ADD)
		assert_memory_equal(a->hash, b->hash, REPL_HASH_LEN);
	assert_int_equal(a->flags & REPL_F_BODY ? a->body_len : 0, b->body_len);
	if (b->body_len > 0)
		assert_memory_equal(a->body, b->body, b->body_len);
	assert_int_equal(a->flags & REPL_F_META ? a->meta_len : 0, b->meta_len);
	if (b->meta_len > 0)
		assert_memory_equal(a->meta, b->meta, b->meta_len);
}

static void roundtrip(const struct repl_rec *r)
{
	uint8_t *buf;
	size_t sz = encode(r, &buf), used;
	struct repl_frame f;
	const char *why;

	assert_int_equal(repl_wire_frame_size(buf, sz, &lim), sz);
	/* every proper prefix needs more */
	for (size_t k = 0; k < sz; k++)
		assert_int_equal(repl_wire_decode(buf, k, &lim, &f, &used, &why), 0);
	assert_int_equal(repl_wire_decode(buf, sz, &lim, &f, &used, &why), 1);
	assert_int_equal(used, sz);
	assert_int_equal(f.kind, REPL_RECORD);
	same(r, &f.rec);
	free(buf);
}

static void test_layout(void **state)
{
	struct repl_rec r;
	uint8_t buf[64];
	static const uint8_t want[] = {
		0, 0, 0, 38,			/* length: kind + 34 fixed + 3 */
		1,				/* record */
		0,				/* flags */
		0, 0, 0, 0, 0, 0, 1, 2,		/* seq */
		7,				/* MSG_FLAGS */
		0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5,
		0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00,	/* time 1700000000 */
		0, 0, 0, 3, 'a', 'b', 'c',
	};

	memset(&r, 0, sizeof(r));
	r.seq = 258;
	r.type = 7;
	r.userid = 3;
	r.mboxid = 4;
	r.uid = 5;
	r.time = 1700000000;
	r.data = "abc";
	r.data_len = 3;
	assert_int_equal(repl_wire_record_encode(&r, buf, sizeof(buf)), sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	/* too small an output buffer */
	assert_int_equal(repl_wire_record_encode(&r, buf, sizeof(want) - 1), 0);
}

static void test_roundtrip(void **state)
{
	struct repl_rec r = add_rec();

	roundtrip(&r);				/* body and meta */
	r.flags = REPL_F_BODY;			/* body, no meta */
	roundtrip(&r);
	r.flags = 0;				/* body sent before on the stream */
	roundtrip(&r);
	r.flags = REPL_F_GONE;
	roundtrip(&r);
	r.flags = REPL_F_BODY | REPL_F_META;	/* empty body and meta */
	r.body_len = r.meta_len = 0;
	roundtrip(&r);
	for (uint8_t t = REPL_TYPE_MIN; t <= REPL_TYPE_MAX; t++) {
		if (t == REPL_TYPE_MSG_ADD)
			continue;
		r = add_rec();
		r.flags = 0;
		r.type = t;
		roundtrip(&r);
		r.data_len = 0;			/* an empty payload */
		roundtrip(&r);
	}
	r = add_rec();				/* extremes */
	r.seq = UINT64_MAX;
	r.userid = r.mboxid = r.uid = UINT32_MAX;
	r.time = -1;
	roundtrip(&r);
}

static void test_heartbeat_and_stream(void **state)
{
	uint8_t stream[4096];
	struct repl_rec r = add_rec();
	size_t len = 0, off = 0, used;
	struct repl_frame f;
	const char *why;
	int n = 0;

	repl_wire_heartbeat_encode(99, 1700000000123ull, stream);
	len = REPL_HEARTBEAT_SIZE;
	len += repl_wire_record_encode(&r, stream + len, sizeof(stream) - len);
	r.seq++;
	r.flags = 0;
	len += repl_wire_record_encode(&r, stream + len, sizeof(stream) - len);
	repl_wire_heartbeat_encode(43, 5, stream + len);
	len += REPL_HEARTBEAT_SIZE;
	while (off < len) {
		assert_int_equal(repl_wire_decode(stream + off, len - off, &lim, &f, &used, &why), 1);
		if (n == 0) {
			assert_int_equal(f.kind, REPL_HEARTBEAT);
			assert_true(f.last_seq == 99 && f.time_ms == 1700000000123ull);
		} else if (n == 1 || n == 2) {
			assert_int_equal(f.kind, REPL_RECORD);
			assert_true(f.rec.seq == 41u + (unsigned)n);
			assert_int_equal(f.rec.body_len, n == 1 ? strlen(body) : 0);
		} else {
			assert_true(f.kind == REPL_HEARTBEAT && f.last_seq == 43 && f.time_ms == 5);
		}
		off += used;
		n++;
	}
	assert_int_equal(n, 4);
}

/* Decode buf (which must be whole) and expect a refusal. */
static void refused(const uint8_t *buf, size_t len)
{
	struct repl_frame f;
	size_t used = 1;
	const char *why = NULL;

	assert_int_equal(repl_wire_decode(buf, len, &lim, &f, &used, &why), -1);
	assert_non_null(why);
	assert_int_equal(used, 0);
}

static void set32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void test_malformed(void **state)
{
	struct repl_rec r = add_rec();
	uint8_t *good, *b, hb[REPL_HEARTBEAT_SIZE + 1];
	size_t sz = encode(&r, &good);
	/* offsets in the good frame */
	const size_t o_flags = 5, o_seq = 6, o_type = 14, o_dlen = 35;
	const size_t o_blen = 39 + sizeof(msgrec) + REPL_HASH_LEN;
	const size_t o_mlen = o_blen + 4 + strlen(body);

	b = malloc(sz + 8);
	assert_non_null(b);
#define FRESH() memcpy(b, good, sz)
	FRESH(); b[4] = 3; refused(b, sz);			/* unknown kind */
	FRESH(); b[4] = 0; refused(b, sz);
	FRESH(); set32(b, 10); refused(b, sz);			/* shorter than fixed part */
	FRESH(); set32(b, UINT32_MAX); refused(b, sz);		/* over the limits */
	FRESH(); memset(b + o_seq, 0, 8); refused(b, sz);	/* seq 0 */
	FRESH(); b[o_type] = 0; refused(b, sz);			/* type 0 */
	FRESH(); b[o_type] = REPL_TYPE_MAX + 1; refused(b, sz);
	FRESH(); b[o_type] = 4; refused(b, sz);			/* body flags on MAILBOX_ADD */
	FRESH(); b[o_flags] = 0x08; refused(b, sz);		/* unknown flag */
	FRESH(); b[o_flags] = REPL_F_META; refused(b, sz);	/* meta without body */
	FRESH(); b[o_flags] = REPL_F_BODY | REPL_F_GONE; refused(b, sz);
	FRESH(); b[o_flags] = REPL_F_BODY; refused(b, sz);	/* meta bytes left over */
	FRESH(); set32(b + o_dlen, sizeof(msgrec) + 1000); refused(b, sz);	/* data past end */
	FRESH(); set32(b + o_dlen, REPL_DATA_MAX + 1); refused(b, sz);
	FRESH(); set32(b + o_blen, (uint32_t)lim.body_max + 1); refused(b, sz);
	FRESH(); set32(b + o_blen, 100000); refused(b, sz);	/* body past end */
	FRESH(); set32(b + o_mlen, (uint32_t)lim.meta_max + 1); refused(b, sz);
	FRESH(); set32(b + o_mlen, (uint32_t)strlen(meta) - 1); refused(b, sz); /* byte left over */
	/* a frame one byte longer than its fields */
	FRESH(); set32(b, (uint32_t)(sz - 4 + 1)); b[sz] = 0; refused(b, sz + 1);
	/* MSG_ADD cut before its hash: a MSG_FLAGS frame retyped */
	{
		struct repl_rec x = add_rec();
		uint8_t *t;
		size_t tsz;

		x.type = 7;
		x.flags = 0;
		tsz = encode(&x, &t);
		t[o_type] = REPL_TYPE_MSG_ADD;
		refused(t, tsz);
		free(t);
	}
	/* heartbeats: wrong length */
	repl_wire_heartbeat_encode(1, 2, hb);
	set32(hb, 1 + 16 + 1);
	hb[REPL_HEARTBEAT_SIZE] = 0;
	refused(hb, sizeof(hb));
	set32(hb, 1 + 15);
	refused(hb, REPL_HEARTBEAT_SIZE - 1);
	free(b);
	free(good);
#undef FRESH
}

static void test_encoder_refuses(void **state)
{
	struct repl_rec r = add_rec();

	r.seq = 0;
	assert_int_equal(repl_wire_record_size(&r), 0);
	r = add_rec();
	r.type = 0;
	assert_int_equal(repl_wire_record_size(&r), 0);
	r = add_rec();
	r.flags = REPL_F_META;
	assert_int_equal(repl_wire_record_size(&r), 0);
	r = add_rec();
	r.type = 6;				/* body on an expunge */
	assert_int_equal(repl_wire_record_size(&r), 0);
	r = add_rec();
	r.data_len = REPL_DATA_MAX + 1;
	assert_int_equal(repl_wire_record_size(&r), 0);
	r = add_rec();
	r.body = NULL;
	assert_int_equal(repl_wire_record_size(&r), 0);
	r = add_rec();
	r.body_len = (size_t)UINT32_MAX;	/* frame length would not fit */
	assert_int_equal(repl_wire_record_size(&r), 0);
}

static void test_lines(void **state)
{
	uint64_t seq = 7;
	const char *t;
	size_t tl;
	static const char *const badl[] = {
		"applied", "applied ", "applied -1", "applied 01", "applied 1 ", "applied x",
		"applied 18446744073709551616", "Applied 1", "error", "error \x01", "ok 1", "",
	};

	assert_int_equal(repl_wire_parse_line("applied 0", 9, &seq, &t, &tl), REPL_LINE_APPLIED);
	assert_true(seq == 0);
	assert_int_equal(repl_wire_parse_line("applied 18446744073709551615", 28, &seq, &t, &tl),
			 REPL_LINE_APPLIED);
	assert_true(seq == UINT64_MAX);
	assert_int_equal(repl_wire_parse_line("error missing body", 18, &seq, &t, &tl),
			 REPL_LINE_ERROR);
	assert_int_equal(tl, 12);
	assert_memory_equal(t, "missing body", 12);
	assert_int_equal(repl_wire_parse_line("progress 4096", 13, &seq, &t, &tl),
			 REPL_LINE_PROGRESS);
	assert_true(seq == 4096);
	assert_int_equal(repl_wire_parse_line("loaded 12", 9, &seq, &t, &tl), REPL_LINE_LOADED);
	assert_true(seq == 12);
	assert_int_equal(repl_wire_parse_line("loaded 012", 10, &seq, &t, &tl), REPL_LINE_BAD);
	assert_int_equal(repl_wire_parse_line("progress", 8, &seq, &t, &tl), REPL_LINE_BAD);
	for (size_t i = 0; i < sizeof(badl) / sizeof(badl[0]); i++)
		assert_int_equal(repl_wire_parse_line(badl[i], strlen(badl[i]), &seq, &t, &tl),
				 REPL_LINE_BAD);
}

static void test_payload_hashes(void **state)
{
	uint8_t h[REPL_HASH_LEN], ex[40];

	add_rec();
	assert_true(repl_msg_add_hash(msgrec, 73, h));
	assert_memory_equal(h, msgrec + 37, REPL_HASH_LEN);
	assert_false(repl_msg_add_hash(msgrec, 72, h));
	msgrec[0] = 2;
	assert_false(repl_msg_add_hash(msgrec, sizeof(msgrec), h));
	memset(ex, 0, 8);
	memset(ex + 8, 0x5c, 32);
	assert_true(repl_msg_expunge_hash(ex, 40, h));
	assert_memory_equal(h, ex + 8, REPL_HASH_LEN);
	assert_false(repl_msg_expunge_hash(ex, 39, h));
}

/* Snapshot frames: layout, round trips, "need more", refusals. */
static void test_snapshot_frames(void **state)
{
	static const uint8_t userdata[] = "\x05alice-record";
	struct repl_snapitem b, it, back;
	struct repl_snapend e = { 99, 12, 7, 31, 1700000001 }, e2;
	struct repl_frame f;
	uint8_t buf[512], endb[REPL_SNAPEND_SIZE];
	const char *why;
	size_t sz, used;

	memset(&b, 0, sizeof(b));
	b.type = REPL_SNAP_T_BODY;
	b.flags = REPL_SF_META;
	memset(b.hash, 0x5a, REPL_HASH_LEN);
	b.body = body;
	b.body_len = strlen(body);
	b.meta = meta;
	b.meta_len = strlen(meta);
	sz = repl_wire_snap_encode(&b, buf, sizeof(buf));
	assert_int_equal(sz, REPL_FRAME_HDR + 1 + REPL_HASH_LEN + 4 + b.body_len + 4 + b.meta_len);
	assert_int_equal(buf[4], REPL_SNAP_BODY);
	assert_int_equal(buf[5], REPL_SF_META);
	assert_int_equal(repl_wire_frame_size(buf, sz, &lim), sz);
	for (size_t k = 0; k < sz; k++)
		assert_int_equal(repl_wire_decode(buf, k, &lim, &f, &used, &why), 0);
	assert_int_equal(repl_wire_decode(buf, sz, &lim, &f, &used, &why), 1);
	assert_int_equal(used, sz);
	assert_int_equal(f.kind, REPL_SNAP_BODY);
	back = f.snap;
	assert_int_equal(back.type, REPL_SNAP_T_BODY);
	assert_memory_equal(back.hash, b.hash, REPL_HASH_LEN);
	assert_int_equal(back.body_len, b.body_len);
	assert_memory_equal(back.body, body, b.body_len);
	assert_int_equal(back.meta_len, b.meta_len);
	assert_memory_equal(back.meta, meta, b.meta_len);
	/* unknown flags; a body over the limit; a byte too many */
	buf[5] = 3;
	assert_int_equal(repl_wire_decode(buf, sz, &lim, &f, &used, &why), -1);
	buf[5] = 0;	/* no meta: the meta bytes are left over */
	assert_int_equal(repl_wire_decode(buf, sz, &lim, &f, &used, &why), -1);
	assert_string_equal(why, "bytes after the snapshot body's last field");
	b.flags = 9;
	assert_int_equal(repl_wire_snap_size(&b), 0);

	memset(&it, 0, sizeof(it));
	it.type = 2;	/* a user */
	it.a = 7;
	it.data = userdata;
	it.data_len = sizeof(userdata) - 1;
	sz = repl_wire_snap_encode(&it, buf, sizeof(buf));
	assert_int_equal(sz, REPL_FRAME_HDR + 1 + 12 + 4 + it.data_len);
	assert_int_equal(repl_wire_decode(buf, sz, &lim, &f, &used, &why), 1);
	assert_int_equal(f.kind, REPL_SNAP_ITEM);
	assert_int_equal(f.snap.type, 2);
	assert_int_equal(f.snap.a, 7);
	assert_int_equal(f.snap.data_len, it.data_len);
	assert_memory_equal(f.snap.data, userdata, it.data_len);
	buf[5] = 8;	/* unknown type */
	assert_int_equal(repl_wire_decode(buf, sz, &lim, &f, &used, &why), -1);
	buf[5] = 1;	/* a body type in an item frame */
	assert_int_equal(repl_wire_decode(buf, sz, &lim, &f, &used, &why), -1);
	it.type = 1;
	it.flags = 2;
	assert_int_equal(repl_wire_snap_size(&it), 0);	/* no such body flag */
	it.type = 7;
	it.flags = 1;
	assert_int_equal(repl_wire_snap_size(&it), 0);
	it.flags = 0;
	it.data_len = REPL_DATA_MAX + 1;
	assert_int_equal(repl_wire_snap_size(&it), 0);

	repl_wire_snapend_encode(&e, endb);
	assert_int_equal(repl_wire_decode(endb, sizeof(endb), &lim, &f, &used, &why), 1);
	assert_int_equal(used, REPL_SNAPEND_SIZE);
	assert_int_equal(f.kind, REPL_SNAP_END);
	e2 = f.end;
	assert_int_equal(e2.seq, 99);
	assert_int_equal(e2.items, 12);
	assert_int_equal(e2.next_userid, 7);
	assert_int_equal(e2.next_mboxid, 31);
	assert_int_equal(e2.uidvalidity, 1700000001);
	endb[3]++;	/* a longer end */
	assert_int_equal(repl_wire_frame_size(endb, sizeof(endb), &lim), SIZE_MAX);
	endb[3]--;
	endb[4] = 6;	/* no kind 6 */
	assert_int_equal(repl_wire_decode(endb, sizeof(endb), &lim, &f, &used, &why), -1);
	assert_string_equal(why, "unknown frame kind");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_heartbeat_and_stream),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_encoder_refuses),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_payload_hashes),
		cmocka_unit_test(test_snapshot_frames),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
