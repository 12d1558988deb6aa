/*
 * test_store_imap_msgs.c - the store's IMAP message surface: APPEND
 * (flags, keywords, date, quota, body dedup, metadata blob), reading
 * windows and metadata, STORE flags (SET/ADD/REMOVE, modseq rules,
 * UNCHANGEDSINCE), COPY/MOVE (COPYUID mapping, keyword remapping, shared
 * bodies, quota, tombstones), VANISHED and CHANGEDSINCE reads, and the
 * change observer (once per mailbox per commit, before the callbacks).
 * Every test checks the unseen/message/byte counters against a scan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "store_fixture.h"

/* ---- helpers ------------------------------------------------------------------- */

struct fres {
	int n;
	int err;
	struct store_flag_result r[16];
	size_t nr;
};

static void fres_cb(int err, const struct store_flag_result *res, size_t n, void *arg)
{
	struct fres *f = arg;

	assert_true(n <= 16);
	f->n++;
	f->err = err;
	f->nr = n;
	if (n > 0)
		memcpy(f->r, res, n * sizeof(*res));
}

static int store_flags(struct fx *f, uint32_t userid, uint32_t mboxid, const uint32_t *uids,
		       size_t n, enum store_flag_op how, uint32_t flags, const char *const *kw,
		       size_t n_kw, uint64_t unchangedsince, struct fres *out)
{
	memset(out, 0, sizeof(*out));
	store_msg_store_flags(f->st, userid, mboxid, uids, n, how, flags, kw, n_kw,
			      unchangedsince, fres_cb, out);
	run_until(f, &out->n, 1);
	return out->err;
}

struct cres {
	int n;
	int err;
	uint32_t uidvalidity;
	uint32_t src[16], dst[16];
	size_t nr;
};

static void cres_cb(int err, uint32_t uidvalidity, const uint32_t *src, const uint32_t *dst,
		    size_t n, void *arg)
{
	struct cres *c = arg;

	assert_true(n <= 16);
	c->n++;
	c->err = err;
	c->uidvalidity = uidvalidity;
	c->nr = n;
	if (n > 0) {
		memcpy(c->src, src, n * sizeof(*src));
		memcpy(c->dst, dst, n * sizeof(*dst));
	}
}

static int copy(struct fx *f, uint32_t userid, uint32_t src, const uint32_t *uids, size_t n,
		uint32_t dst, bool move, struct cres *out)
{
	memset(out, 0, sizeof(*out));
	store_msg_copy(f->st, userid, src, uids, n, dst, move, cres_cb, out);
	run_until(f, &out->n, 1);
	return out->err;
}

struct bytes {
	char buf[256];
	size_t len;
	bool null;
};

static int meta_cb(const void *meta, size_t len, void *arg)
{
	struct bytes *b = arg;

	assert_true(len < sizeof(b->buf));
	b->null = meta == NULL;
	if (len > 0)
		memcpy(b->buf, meta, len);
	b->buf[len] = '\0';
	b->len = len;
	return 0;
}

static const char *read_meta(struct fx *f, uint32_t userid, uint32_t mboxid, uint32_t uid,
			     struct bytes *b)
{
	assert_int_equal(store_msg_read_meta(f->st, userid, mboxid, uid, meta_cb, b), 0);
	return b->null ? NULL : b->buf;
}

static int read_all(const char *prefix, size_t plen, const char *body, size_t blen, void *arg)
{
	struct bytes *b = arg;

	assert_true(plen + blen < sizeof(b->buf));
	memcpy(b->buf, prefix, plen);
	memcpy(b->buf + plen, body, blen);
	b->len = plen + blen;
	b->buf[b->len] = '\0';
	return 0;
}

static int collect_uid(uint32_t uid, void *arg)
{
	char *out = arg;

	sprintf(out + strlen(out), "%u,", uid);
	return 0;
}

static int collect_changed(const struct store_msg *m, void *arg)
{
	char *out = arg;

	sprintf(out + strlen(out), "%u:%llu,", m->uid, (unsigned long long)m->modseq);
	return 0;
}

struct chcount {
	int n[STORE_CH_KEYWORD_ADD + 1];
};

static int count_change(const struct store_change *c, void *arg)
{
	struct chcount *cc = arg;

	assert_true(c->type >= 1 && c->type <= STORE_CH_KEYWORD_ADD);
	cc->n[c->type]++;
	return 0;
}

/* ---- append ------------------------------------------------------------------------ */

static void test_append(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 0), u1, u2;
	struct store_mailbox in = mbox(f, uid, "INBOX"), after;
	const char *kw[] = { "$Label1", "$label1", "Work" };
	const char body[] = "Subject: appended\r\n\r\nbody\r\n";
	struct appres r = { 0 };
	struct store_msg m;
	struct bytes b;
	char win[8];
	size_t got;
	time_t now = time(NULL);

	store_msg_append(f->st, uid, in.id, body, strlen(body), "META", 4,
			 STORE_F_SEEN | STORE_F_DRAFT, kw, 3, 1234567890, append_cb, &r);
	run_until(f, &r.n, 1);
	assert_int_equal(r.err, STORE_OK);
	assert_int_equal(r.uidvalidity, in.uidvalidity);
	assert_int_equal(r.uid, 1);
	u1 = r.uid;
	m = msg_get(f, uid, in.id, u1);
	assert_int_equal(m.flags, STORE_F_SEEN | STORE_F_DRAFT | STORE_F_RECENT);
	assert_int_equal(m.keywords, 3);	/* $Label1 = 0 (twice), Work = 1 */
	assert_int_equal(m.internaldate, 1234567890);
	assert_int_equal(m.size, strlen(body));
	after = mbox(f, uid, "INBOX");
	assert_int_equal(m.modseq, after.highestmodseq);
	assert_int_equal(after.uidnext, 2);
	assert_int_equal(after.unseen, 0);
	assert_int_equal(store_msg_read(f->st, uid, in.id, u1, read_all, &b), 0);
	assert_string_equal(b.buf, body);
	assert_string_equal(read_meta(f, uid, in.id, u1, &b), "META");
	/* windows of the bytes as served */
	assert_int_equal(store_msg_read_range(f->st, uid, in.id, u1, 9, win, 8, &got), 0);
	assert_int_equal(got, 8);
	assert_memory_equal(win, "appended", 8);
	assert_int_equal(store_msg_read_range(f->st, uid, in.id, u1, strlen(body) - 3, win, 8,
					      &got), 0);
	assert_int_equal(got, 3);
	assert_int_equal(store_msg_read_range(f->st, uid, in.id, u1, 999, win, 8, &got), 0);
	assert_int_equal(got, 0);
	assert_int_equal(store_msg_read_range(f->st, uid, in.id, 77, 0, win, 8, &got),
			 STORE_NOTFOUND);
	assert_int_equal(store_msg_read_range(f->st, uid, in.id, u1, 0, NULL, 8, &got),
			 STORE_INVAL);

	/* INTERNALDATE 0 = now; no flags: unseen */
	memset(&r, 0, sizeof(r));
	store_msg_append(f->st, uid, in.id, "x\r\n", 3, NULL, 0, 0, NULL, 0, 0, append_cb, &r);
	run_until(f, &r.n, 1);
	assert_int_equal(r.err, STORE_OK);
	u2 = r.uid;
	assert_int_equal(u2, 2);
	m = msg_get(f, uid, in.id, u2);
	assert_true(m.internaldate >= now && m.internaldate <= now + 5);
	assert_int_equal(m.flags, STORE_F_RECENT);
	assert_null(read_meta(f, uid, in.id, u2, &b));
	assert_int_equal(mbox(f, uid, "INBOX").unseen, 1);
	check_counts(f, uid);

	/* errors */
	assert_int_equal(append(f, uid, 99999, "x\r\n", 0, NULL, 0, NULL), STORE_NOTFOUND);
	assert_int_equal(append(f, 4242, in.id, "x\r\n", 0, NULL, 0, NULL), STORE_NOTFOUND);
	assert_int_equal(append(f, uid, in.id, "x\r\n", 1u << 12, NULL, 0, NULL), STORE_INVAL);
	{
		const char *bad[] = { "ok", "not ok" };

		assert_int_equal(append(f, uid, in.id, "x\r\n", 0, bad, 2, NULL), STORE_INVAL);
		assert_int_equal(append(f, uid, in.id, "x\r\n", 0, NULL, 1, NULL), STORE_INVAL);
	}
	memset(&r, 0, sizeof(r));
	store_msg_append(f->st, uid, in.id, "x", 1, "m", (size_t)STORE_META_MAX + 1, 0, NULL, 0,
			 0, append_cb, &r);
	run_until(f, &r.n, 1);
	assert_int_equal(r.err, STORE_INVAL);
	memset(&r, 0, sizeof(r));
	store_msg_append(f->st, uid, in.id, NULL, 5, NULL, 0, 0, NULL, 0, 0, append_cb, &r);
	run_until(f, &r.n, 1);
	assert_int_equal(r.err, STORE_INVAL);
	assert_int_equal(mbox(f, uid, "INBOX").uidnext, 3);	/* nothing used a UID */
	check_counts(f, uid);
}

static void test_append_quota_dedup_meta(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 100), u1, u2, d1;
	struct store_mailbox in = mbox(f, uid, "INBOX");
	char big[101];
	struct appres r = { 0 };
	struct store_user u;
	struct bytes b;
	uint64_t b0;

	memset(big, 'b', 100);
	big[100] = '\0';
	assert_int_equal(append(f, uid, in.id, big, 0, NULL, 0, NULL), STORE_OK);	/* = quota */
	assert_int_equal(append(f, uid, in.id, "1", 0, NULL, 0, NULL), STORE_QUOTA);
	assert_int_equal(store_user_get(f->st, "alice", &u), STORE_OK);
	assert_int_equal(u.used, 100);
	assert_int_equal(mbox(f, uid, "INBOX").messages, 1);

	/* dedup with delivery, meta first-wins and follows the body */
	uid = user_add(f, "bob", 0);
	in = mbox(f, uid, "INBOX");
	b0 = bodies(f);
	d1 = deliver(f, "bob", "shared body\r\n", NULL);
	assert_null(read_meta(f, uid, in.id, d1, &b));	/* delivered without meta */
	memset(&r, 0, sizeof(r));
	store_msg_append(f->st, uid, in.id, "shared body\r\n", 13, "M1", 2, 0, NULL, 0, 0,
			 append_cb, &r);
	run_until(f, &r.n, 1);
	u1 = r.uid;
	assert_int_equal(bodies(f), b0 + 1);
	assert_string_equal(read_meta(f, uid, in.id, u1, &b), "M1");
	assert_string_equal(read_meta(f, uid, in.id, d1, &b), "M1");	/* per body */
	memset(&r, 0, sizeof(r));
	store_msg_append(f->st, uid, in.id, "shared body\r\n", 13, "M2", 2, 0, NULL, 0, 0,
			 append_cb, &r);
	run_until(f, &r.n, 1);
	u2 = r.uid;
	assert_string_equal(read_meta(f, uid, in.id, u2, &b), "M1");	/* first one stays */
	/* the delivered copy has its prefix, the appended ones none */
	assert_int_equal(msg_get(f, uid, in.id, d1).size, 8 + 13);
	assert_int_equal(msg_get(f, uid, in.id, u1).size, 13);
	/* the blob goes with the last reference */
	{
		uint32_t all[] = { d1, u1, u2 };

		assert_int_equal(expunge(f, uid, in.id, all, 3), STORE_OK);
	}
	assert_int_equal(bodies(f), b0);
	u1 = deliver(f, "bob", "shared body\r\n", NULL);
	assert_null(read_meta(f, uid, in.id, u1, &b));
	/* a delivery with meta stores it */
	u2 = deliver(f, "bob", "other body\r\n", "D-META");
	assert_string_equal(read_meta(f, uid, in.id, u2, &b), "D-META");
	assert_int_equal(store_msg_read_meta(f->st, uid, in.id, 999, meta_cb, &b),
			 STORE_NOTFOUND);
	check_counts(f, uid);
}

static void deliver_res_cb(const struct store_rcpt *r, size_t n, void *arg)
{
	struct done *d = arg;

	assert_int_equal(n, 1);
	d->n++;
	d->err = r[0].result;
}

static void test_deliver_meta_limits(void **state)
{
	struct fx *f = *state;
	struct store_rcpt r = { .user = "alice", .prefix = "", .prefix_len = 0 };
	struct store_delivery d = {
		.body = "b\r\n", .body_len = 3, .rcpts = &r, .n_rcpts = 1,
		.meta = "m", .meta_len = (size_t)STORE_META_MAX + 1,
	};
	struct done res = { 0 };

	user_add(f, "alice", 0);
	store_deliver(f->st, &d, deliver_res_cb, &res);
	run_until(f, &res.n, 1);
	assert_int_equal(res.err, STORE_INVAL);
	d.meta = NULL;
	d.meta_len = 1;
	store_deliver(f->st, &d, deliver_res_cb, &res);
	run_until(f, &res.n, 2);
	assert_int_equal(res.err, STORE_INVAL);
	d.meta_len = 0;
	store_deliver(f->st, &d, deliver_res_cb, &res);
	run_until(f, &res.n, 3);
	assert_int_equal(res.err, STORE_OK);
}

/* ---- store flags ------------------------------------------------------------------------- */

static void test_store_flags(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 0), u[5], i;
	struct store_mailbox in = mbox(f, uid, "INBOX");
	struct fres r;
	uint64_t hms, ch0;
	struct chcount cc = { { 0 } };

	for (i = 0; i < 5; i++)
		u[i] = deliver(f, "alice", i % 2 ? "odd\r\n" : "even\r\n", NULL);
	assert_int_equal(mbox(f, uid, "INBOX").unseen, 5);
	ch0 = store_changelog_last(f->st, ORIGIN);

	/* SET on 2 messages (plus an unknown UID and a duplicate) */
	{
		uint32_t set[] = { u[1], 999, u[0], u[1] };

		assert_int_equal(store_flags(f, uid, in.id, set, 4, STORE_FLAGS_SET,
					     STORE_F_SEEN | STORE_F_FLAGGED, NULL, 0, 0, &r), 0);
	}
	assert_int_equal(r.nr, 2);
	assert_int_equal(r.r[0].uid, u[0]);
	assert_int_equal(r.r[1].uid, u[1]);
	for (i = 0; i < 2; i++) {
		assert_int_equal(r.r[i].status, STORE_FLAG_CHANGED);
		/* \Recent is kept by SET */
		assert_int_equal(r.r[i].flags, STORE_F_SEEN | STORE_F_FLAGGED | STORE_F_RECENT);
	}
	assert_true(r.r[1].modseq == r.r[0].modseq + 1);	/* one each */
	hms = mbox(f, uid, "INBOX").highestmodseq;
	assert_int_equal(hms, r.r[1].modseq);
	assert_int_equal(msg_get(f, uid, in.id, u[0]).modseq, r.r[0].modseq);
	assert_int_equal(mbox(f, uid, "INBOX").unseen, 3);
	check_counts(f, uid);

	/* ADD: already set -> UNCHANGED, modseq kept */
	assert_int_equal(store_flags(f, uid, in.id, u, 3, STORE_FLAGS_ADD, STORE_F_SEEN, NULL, 0,
				     0, &r), 0);
	assert_int_equal(r.nr, 3);
	assert_int_equal(r.r[0].status, STORE_FLAG_UNCHANGED);
	assert_int_equal(r.r[0].modseq, msg_get(f, uid, in.id, u[0]).modseq);
	assert_true(r.r[0].modseq <= hms);
	assert_int_equal(r.r[1].status, STORE_FLAG_UNCHANGED);
	assert_int_equal(r.r[2].status, STORE_FLAG_CHANGED);
	assert_int_equal(r.r[2].modseq, hms + 1);
	assert_int_equal(r.r[2].flags, STORE_F_SEEN | STORE_F_RECENT);
	assert_int_equal(mbox(f, uid, "INBOX").unseen, 2);

	/* a store that changes nothing leaves highestmodseq alone */
	hms = mbox(f, uid, "INBOX").highestmodseq;
	assert_int_equal(store_flags(f, uid, in.id, u, 3, STORE_FLAGS_ADD, STORE_F_SEEN, NULL, 0,
				     0, &r), 0);
	assert_int_equal(mbox(f, uid, "INBOX").highestmodseq, hms);
	/* \Recent can be neither added nor removed */
	assert_int_equal(store_flags(f, uid, in.id, u, 1, STORE_FLAGS_REMOVE, STORE_F_RECENT,
				     NULL, 0, 0, &r), 0);
	assert_int_equal(r.r[0].status, STORE_FLAG_UNCHANGED);
	assert_true(msg_get(f, uid, in.id, u[0]).flags & STORE_F_RECENT);

	/* REMOVE with keywords: unknown names are not created */
	{
		const char *kw[] = { "$A", "$B" }, *nope[] = { "$Nope", "$a" };

		assert_int_equal(store_flags(f, uid, in.id, u + 3, 2, STORE_FLAGS_ADD, 0, kw, 2,
					     0, &r), 0);
		assert_int_equal(r.r[0].keywords, 3);
		assert_int_equal(store_flags(f, uid, in.id, u + 3, 1, STORE_FLAGS_REMOVE, 0, nope,
					     2, 0, &r), 0);
		assert_int_equal(r.r[0].status, STORE_FLAG_CHANGED);
		assert_int_equal(r.r[0].keywords, 2);	/* $A (as "$a") removed */
		/* SET with keywords replaces the set */
		assert_int_equal(store_flags(f, uid, in.id, u + 4, 1, STORE_FLAGS_SET,
					     STORE_F_ANSWERED, kw, 1, 0, &r), 0);
		assert_int_equal(r.r[0].keywords, 1);
		assert_int_equal(r.r[0].flags, STORE_F_ANSWERED | STORE_F_RECENT);
	}

	/* UNCHANGEDSINCE: u[3] was changed after u[2]'s last change */
	{
		uint64_t m2 = msg_get(f, uid, in.id, u[2]).modseq;
		uint64_t m3 = msg_get(f, uid, in.id, u[3]).modseq;
		uint32_t two[] = { u[2], u[3] };

		assert_true(m3 > m2);
		assert_int_equal(store_flags(f, uid, in.id, two, 2, STORE_FLAGS_ADD,
					     STORE_F_DELETED, NULL, 0, m2, &r), 0);
		assert_int_equal(r.r[0].status, STORE_FLAG_CHANGED);
		assert_int_equal(r.r[1].status, STORE_FLAG_MODIFIED);
		assert_int_equal(r.r[1].modseq, m3);	/* as it is */
		assert_int_equal(msg_get(f, uid, in.id, u[3]).flags & STORE_F_DELETED, 0);
		/* equal to the message's modseq passes */
		assert_int_equal(store_flags(f, uid, in.id, u + 3, 1, STORE_FLAGS_ADD,
					     STORE_F_DELETED, NULL, 0, m3, &r), 0);
		assert_int_equal(r.r[0].status, STORE_FLAG_CHANGED);
	}

	/* errors */
	assert_int_equal(store_flags(f, uid, 99999, u, 1, STORE_FLAGS_ADD, STORE_F_SEEN, NULL, 0,
				     0, &r), STORE_NOTFOUND);
	assert_int_equal(r.nr, 0);
	assert_int_equal(store_flags(f, uid, in.id, u, 1, (enum store_flag_op)7, STORE_F_SEEN,
				     NULL, 0, 0, &r), STORE_INVAL);
	assert_int_equal(store_flags(f, uid, in.id, u, 1, STORE_FLAGS_ADD, 1u << 8, NULL, 0, 0,
				     &r), STORE_INVAL);
	assert_int_equal(store_flags(f, uid, in.id, NULL, 1, STORE_FLAGS_ADD, 0, NULL, 0, 0, &r),
			 STORE_INVAL);
	assert_int_equal(store_flags(f, uid, in.id, NULL, 0, STORE_FLAGS_ADD, 0, NULL, 0, 0, &r),
			 STORE_OK);
	assert_int_equal(r.nr, 0);

	/* one MSG_FLAGS record per changed message (9 above), 2 KEYWORD_ADDs */
	assert_int_equal(store_changelog_foreach(f->st, ORIGIN, ch0, count_change, &cc), 0);
	assert_int_equal(cc.n[STORE_CH_MSG_FLAGS], 9);
	assert_int_equal(cc.n[STORE_CH_KEYWORD_ADD], 2);
	check_counts(f, uid);
}

/* ---- copy / move ------------------------------------------------------------------------ */

static void test_copy(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 0), u[3], i;
	struct store_mailbox in = mbox(f, uid, "INBOX"), work, w2;
	const char *kw_src[] = { "$X", "$Y" }, *kw_dst[] = { "$y" };
	struct store_user before, after;
	struct cres c;
	struct bytes b1, b2;
	uint64_t b0;

	for (i = 0; i < 3; i++)
		u[i] = deliver(f, "alice", i == 1 ? "two\r\n" : "one/three\r\n", NULL);
	assert_int_equal(mbox_create(f, uid, "Work", 0, &work), STORE_OK);
	/* dst already has "$y" at index 0: names are remapped */
	assert_int_equal(append(f, uid, work.id, "w\r\n", 0, kw_dst, 1, NULL), STORE_OK);
	{
		struct fres r;
		uint32_t one = u[0];

		assert_int_equal(store_flags(f, uid, in.id, &one, 1, STORE_FLAGS_ADD,
					     STORE_F_SEEN, kw_src, 2, 0, &r), 0);
	}
	b0 = bodies(f);
	assert_int_equal(store_user_get(f->st, "alice", &before), STORE_OK);
	{
		uint32_t set[] = { u[2], 999, u[0] };

		assert_int_equal(copy(f, uid, in.id, set, 3, work.id, false, &c), STORE_OK);
	}
	w2 = mbox(f, uid, "Work");
	assert_int_equal(c.uidvalidity, work.uidvalidity);
	assert_int_equal(c.nr, 2);
	assert_int_equal(c.src[0], u[0]);	/* source UID order */
	assert_int_equal(c.src[1], u[2]);
	assert_int_equal(c.dst[0], 2);
	assert_int_equal(c.dst[1], 3);
	assert_int_equal(w2.uidnext, 4);
	assert_int_equal(w2.messages, 3);
	{
		struct store_msg m = msg_get(f, uid, work.id, c.dst[0]);
		struct store_msg s = msg_get(f, uid, in.id, u[0]);

		assert_int_equal(m.flags, STORE_F_SEEN | STORE_F_RECENT);
		assert_int_equal(s.keywords, 3);	/* $X = 0, $Y = 1 in INBOX */
		assert_int_equal(m.keywords, 3);	/* $y = 0, $X = 1 in Work */
		assert_int_equal(m.size, s.size);
		assert_int_equal(m.internaldate, s.internaldate);
		assert_int_equal(m.modseq, w2.highestmodseq - 1);
		assert_memory_equal(m.hash, s.hash, STORE_BODY_HASH_LEN);
	}
	assert_int_equal(bodies(f), b0);	/* shared */
	assert_int_equal(store_user_get(f->st, "alice", &after), STORE_OK);
	assert_int_equal(after.used, before.used + 2 * msg_get(f, uid, in.id, u[0]).size);
	assert_int_equal(after.messages, before.messages + 2);
	/* the copies outlive the originals, byte for byte */
	assert_int_equal(store_msg_read(f->st, uid, in.id, u[0], read_all, &b1), 0);
	assert_int_equal(expunge(f, uid, in.id, u, 3), STORE_OK);
	assert_int_equal(store_msg_read(f->st, uid, work.id, c.dst[0], read_all, &b2), 0);
	assert_string_equal(b1.buf, b2.buf);
	assert_int_equal(bodies(f), b0 - 1);	/* "two" only was in INBOX */

	/* nothing to copy: OK, n = 0; unknown mailboxes: NOTFOUND */
	assert_int_equal(copy(f, uid, in.id, u, 3, work.id, false, &c), STORE_OK);
	assert_int_equal(c.nr, 0);
	assert_int_equal(c.uidvalidity, work.uidvalidity);
	assert_int_equal(copy(f, uid, in.id, NULL, 0, work.id, true, &c), STORE_OK);
	assert_int_equal(copy(f, uid, 99999, u, 1, work.id, false, &c), STORE_NOTFOUND);
	assert_int_equal(copy(f, uid, work.id, u, 1, 99999, false, &c), STORE_NOTFOUND);
	assert_int_equal(copy(f, uid, work.id, NULL, 2, in.id, false, &c), STORE_INVAL);
	check_counts(f, uid);
}

static void test_copy_quota_move(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 30), u1, u2;
	struct store_mailbox in = mbox(f, uid, "INBOX"), trash = mbox(f, uid, "Trash"), in2;
	struct store_user usr;
	struct cres c;
	char gone[64] = "", want[64];

	u1 = deliver(f, "alice", "0123456\r\n", NULL);	/* 8 + 9 = 17 bytes */
	assert_int_equal(append(f, uid, in.id, "x\r\n", STORE_F_SEEN, NULL, 0, &u2), STORE_OK);
	/* copying both would need 20 more bytes: refused whole */
	{
		uint32_t both[] = { u1, u2 };

		assert_int_equal(copy(f, uid, in.id, both, 2, trash.id, false, &c), STORE_QUOTA);
		assert_int_equal(c.nr, 0);
		assert_int_equal(mbox(f, uid, "Trash").messages, 0);
		assert_int_equal(mbox(f, uid, "Trash").uidnext, 1);

		/* a move does not need quota */
		in = mbox(f, uid, "INBOX");
		assert_int_equal(copy(f, uid, in.id, both, 2, trash.id, true, &c), STORE_OK);
	}
	assert_int_equal(c.nr, 2);
	assert_int_equal(c.uidvalidity, trash.uidvalidity);
	assert_int_equal(store_user_get(f->st, "alice", &usr), STORE_OK);
	assert_int_equal(usr.used, 20);
	assert_int_equal(usr.messages, 2);
	in2 = mbox(f, uid, "INBOX");
	assert_int_equal(in2.messages, 0);
	assert_int_equal(in2.unseen, 0);
	assert_int_equal(in2.highestmodseq, in.highestmodseq + 1);
	assert_int_equal(mbox(f, uid, "Trash").unseen, 1);
	assert_true(msg_get(f, uid, trash.id, c.dst[0]).flags & STORE_F_RECENT);
	/* tombstones for the moved-out UIDs at the new highestmodseq */
	assert_int_equal(store_vanished_foreach(f->st, uid, in.id, in.highestmodseq, collect_uid,
						gone), 0);
	sprintf(want, "%u,%u,", u1, u2);
	assert_string_equal(gone, want);
	gone[0] = '\0';
	assert_int_equal(store_vanished_foreach(f->st, uid, in.id, in2.highestmodseq,
						collect_uid, gone), 0);
	assert_string_equal(gone, "");

	/* move within one mailbox: new UIDs, old ones vanish */
	{
		struct store_mailbox t0 = mbox(f, uid, "Trash"), t1;
		uint32_t one = c.dst[0];

		assert_int_equal(copy(f, uid, trash.id, &one, 1, trash.id, true, &c), STORE_OK);
		t1 = mbox(f, uid, "Trash");
		assert_int_equal(c.nr, 1);
		assert_int_equal(c.dst[0], t0.uidnext);
		assert_int_equal(t1.messages, 2);
		assert_int_equal(t1.highestmodseq, t0.highestmodseq + 2);
		assert_int_equal(msg_get(f, uid, trash.id, c.dst[0]).modseq,
				 t0.highestmodseq + 1);
		gone[0] = '\0';
		assert_int_equal(store_vanished_foreach(f->st, uid, trash.id, t0.highestmodseq,
							collect_uid, gone), 0);
		sprintf(want, "%u,", one);
		assert_string_equal(gone, want);
	}
	check_counts(f, uid);
}

static void test_copy_keyword_table_full(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 0), m, i;
	struct store_mailbox in = mbox(f, uid, "INBOX"), work;
	const char *kw[] = { "$Keep", "$Lost" };
	char name[16];
	const char *one[1] = { name };
	struct fres r;
	struct cres c;

	assert_int_equal(mbox_create(f, uid, "Work", 0, &work), STORE_OK);
	assert_int_equal(append(f, uid, work.id, "w\r\n", 0, NULL, 0, &m), STORE_OK);
	for (i = 0; i < STORE_KEYWORDS_MAX - 1; i++) {
		sprintf(name, "$k%u", i);
		assert_int_equal(store_flags(f, uid, work.id, &m, 1, STORE_FLAGS_ADD, 0, one, 1, 0,
					     &r), 0);
	}
	assert_int_equal(append(f, uid, in.id, "x\r\n", 0, kw, 2, &m), STORE_OK);
	assert_int_equal(copy(f, uid, in.id, &m, 1, work.id, false, &c), STORE_OK);
	/* $Keep took the last slot (63); $Lost did not fit and was dropped */
	assert_int_equal(msg_get(f, uid, work.id, c.dst[0]).keywords, 1ULL << 63);
	check_counts(f, uid);
}

/* ---- vanished / changed since ---------------------------------------------------------- */

static void test_vanished_and_changed(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 0), u[6], i;
	struct store_mailbox in, m0, m1;
	char out[256] = "", want[256];
	struct fres r;

	for (i = 0; i < 6; i++)
		u[i] = deliver(f, "alice", "m\r\n", NULL);
	in = m0 = mbox(f, uid, "INBOX");
	assert_int_equal(store_vanished_foreach(f->st, uid, in.id, 0, collect_uid, out), 0);
	assert_string_equal(out, "");
	assert_int_equal(expunge(f, uid, in.id, u + 4, 1), STORE_OK);	/* at m0 + 1 */
	assert_int_equal(expunge(f, uid, in.id, u + 1, 1), STORE_OK);	/* at m0 + 2 */
	m1 = mbox(f, uid, "INBOX");
	assert_int_equal(m1.highestmodseq, m0.highestmodseq + 2);
	assert_int_equal(store_vanished_foreach(f->st, uid, in.id, 0, collect_uid, out), 0);
	sprintf(want, "%u,%u,", u[1], u[4]);	/* ascending UID */
	assert_string_equal(out, want);
	out[0] = '\0';
	assert_int_equal(store_vanished_foreach(f->st, uid, in.id, m0.highestmodseq + 1,
						collect_uid, out), 0);
	sprintf(want, "%u,", u[1]);
	assert_string_equal(out, want);
	assert_int_equal(store_vanished_foreach(f->st, uid, 99999, 0, collect_uid, out),
			 STORE_NOTFOUND);
	/* expunging an unknown UID changes nothing */
	assert_int_equal(expunge(f, uid, in.id, u + 1, 1), STORE_OK);
	assert_int_equal(mbox(f, uid, "INBOX").highestmodseq, m1.highestmodseq);

	/* changed since: flags bump two messages */
	{
		uint32_t two[] = { u[5], u[0] };

		assert_int_equal(store_flags(f, uid, in.id, two, 2, STORE_FLAGS_ADD,
					     STORE_F_FLAGGED, NULL, 0, 0, &r), 0);
	}
	out[0] = '\0';
	assert_int_equal(store_msg_foreach_changed(f->st, uid, in.id, m1.highestmodseq,
						   collect_changed, out), 0);
	sprintf(want, "%u:%llu,%u:%llu,", u[0], (unsigned long long)m1.highestmodseq + 1, u[5],
		(unsigned long long)m1.highestmodseq + 2);
	assert_string_equal(out, want);
	out[0] = '\0';
	assert_int_equal(store_msg_foreach_changed(f->st, uid, in.id, 0, collect_changed, out),
			 0);
	assert_int_equal(strlen(out) > 0 && out[strlen(out) - 1] == ',', 1);
	{
		int commas = 0;

		for (i = 0; out[i] != '\0'; i++)
			commas += out[i] == ',';
		assert_int_equal(commas, 4);	/* every message left */
	}
	out[0] = '\0';
	assert_int_equal(store_msg_foreach_changed(f->st, uid, in.id, m1.highestmodseq + 2,
						   collect_changed, out), 0);
	assert_string_equal(out, "");
	assert_int_equal(store_msg_foreach_changed(f->st, uid, 99999, 0, collect_changed, out),
			 STORE_NOTFOUND);
	check_counts(f, uid);
}

/* ---- change observer ------------------------------------------------------------------ */

#define EV_MAX 512

struct evlog {
	char ev[EV_MAX];	/* 'C' commit, 'M' mailbox changed, 'O' op callback */
	uint32_t id[EV_MAX];
	int n;
	int ops;
};

static void ev_add(struct evlog *l, char ev, uint32_t id)
{
	assert_true(l->n < EV_MAX);
	l->ev[l->n] = ev;
	l->id[l->n] = id;
	l->n++;
}

static void on_commit(double seconds, unsigned ops, void *arg)
{
	(void)seconds;
	(void)ops;
	ev_add(arg, 'C', 0);
}

static void on_change(struct store *st, uint32_t userid, uint32_t mboxid, void *arg)
{
	assert_true(userid != 0);
	ev_add(arg, 'M', mboxid);
}

struct evop {
	struct evlog *l;
	uint32_t mboxid;	/* 0: the op is expected to fail */
};

static void ev_deliver_cb(const struct store_rcpt *r, size_t n, void *arg)
{
	struct evop *o = arg;

	(void)n;
	assert_int_equal(r[0].result, STORE_OK);
	ev_add(o->l, 'O', o->mboxid);
	o->l->ops++;
}

static void ev_append_cb(int err, uint32_t uidvalidity, uint32_t uid, void *arg)
{
	struct evop *o = arg;

	(void)uidvalidity;
	(void)uid;
	assert_int_equal(err == STORE_OK, o->mboxid != 0);
	ev_add(o->l, 'O', o->mboxid);
	o->l->ops++;
}

/* Within each commit: no mailbox twice, and every successful op's
 * mailbox was announced before its callback; failed ops announce nothing. */
static void check_evlog(const struct evlog *l, uint32_t bogus_id)
{
	int start = 0, i, j;

	for (i = 0; i <= l->n; i++) {
		if (i < l->n && l->ev[i] != 'C')
			continue;
		for (j = start; j < i; j++) {
			int k, seen = 0;

			if (l->ev[j] == 'M') {
				assert_int_not_equal(l->id[j], bogus_id);
				for (k = start; k < i; k++)
					seen += l->ev[k] == 'M' && l->id[k] == l->id[j];
				assert_int_equal(seen, 1);
			} else if (l->ev[j] == 'O' && l->id[j] != 0) {
				for (k = start; k < j; k++)
					seen += l->ev[k] == 'M' && l->id[k] == l->id[j];
				assert_int_equal(seen, 1);
			}
		}
		start = i;
	}
}

static void test_change_observer(void **state)
{
	struct fx *f = *state;
	struct evlog *l = calloc(1, sizeof(*l));
	uint32_t uid = user_add(f, "alice", 0), i, commits = 0, notes = 0;
	struct store_mailbox in = mbox(f, uid, "INBOX"), sent = mbox(f, uid, "Sent");
	struct store_rcpt r = { .user = "alice", .prefix = "", .prefix_len = 0 };
	struct store_delivery d = { .body = "b\r\n", .body_len = 3, .rcpts = &r, .n_rcpts = 1 };
	struct evop ev_in = { l, in.id }, ev_sent = { l, sent.id }, ev_bad = { l, 0 };
	struct fres fr;

	store_set_commit_observer(f->st, on_commit, l);
	store_set_change_observer(f->st, on_change, l);
	/* many ops in flight: they share commits */
	for (i = 0; i < 60; i++) {
		if (i % 3 == 2)
			store_msg_append(f->st, uid, sent.id, "s\r\n", 3, NULL, 0, 0, NULL, 0, 0,
					 ev_append_cb, &ev_sent);
		else
			store_deliver(f->st, &d, ev_deliver_cb, &ev_in);
		if (i % 10 == 0)	/* fails: no notification for mailbox 99999 */
			store_msg_append(f->st, uid, 99999, "s\r\n", 3, NULL, 0, 0, NULL, 0, 0,
					 ev_append_cb, &ev_bad);
	}
	run_until(f, &l->ops, 66);
	check_evlog(l, 99999);
	for (i = 0; i < (uint32_t)l->n; i++) {
		commits += l->ev[i] == 'C';
		notes += l->ev[i] == 'M' && l->id[i] == in.id;
	}
	assert_true(commits < 60);	/* some sharing happened */
	assert_true(notes <= commits);
	assert_true(notes > 0);

	/* a flag store that changes nothing, and a commit that fails, notify nobody */
	l->n = 0;
	{
		uint32_t one = 1;

		assert_int_equal(store_flags(f, uid, in.id, &one, 1, STORE_FLAGS_ADD, STORE_F_RECENT,
					     NULL, 0, 0, &fr), 0);
		assert_int_equal(fr.r[0].status, STORE_FLAG_UNCHANGED);
		store_inject_commit_failures(f->st, 1);
		assert_int_equal(store_flags(f, uid, in.id, &one, 1, STORE_FLAGS_ADD, STORE_F_SEEN,
					     NULL, 0, 0, &fr), STORE_IO);
		assert_int_equal(fr.nr, 0);
	}
	for (i = 0; i < (uint32_t)l->n; i++)
		assert_true(l->ev[i] != 'M');
	/* every kind of change notifies: flags, expunge, copy, create, rename, delete */
	{
		uint32_t one = 1;
		struct cres c;
		struct store_mailbox work;

		l->n = 0;
		assert_int_equal(store_flags(f, uid, in.id, &one, 1, STORE_FLAGS_ADD, STORE_F_SEEN,
					     NULL, 0, 0, &fr), 0);
		assert_int_equal(expunge(f, uid, in.id, &one, 1), 0);
		assert_int_equal(mbox_create(f, uid, "W", 0, &work), 0);
		one = 2;
		assert_int_equal(copy(f, uid, in.id, &one, 1, work.id, true, &c), 0);
		assert_int_equal(mbox_rename(f, uid, "W", "W2"), 0);
		assert_int_equal(mbox_delete(f, uid, "W2"), 0);
		assert_int_equal(subscribe(f, uid, "X", true), 0);	/* not a mailbox change */
		notes = 0;
		for (i = 0; i < (uint32_t)l->n; i++)
			notes += l->ev[i] == 'M';
		assert_int_equal(notes, 1 + 1 + 1 + 2 + 1 + 1);
	}
	store_set_change_observer(f->st, NULL, NULL);
	store_set_commit_observer(f->st, NULL, NULL);
	check_counts(f, uid);
	free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_append_quota_dedup_meta, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_deliver_meta_limits, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_flags, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_copy, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_copy_quota_move, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_copy_keyword_table_full, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_vanished_and_changed, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_change_observer, fx_setup, fx_teardown),
	};

	alarm(120);
	evthread_use_pthreads();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
