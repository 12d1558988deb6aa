/*
 * store_history.h - what the tests of mirrors and snapshots
 * (test_store_apply.c, test_store_snapshot.c, test_store_merge.c) share: a realistic history
 * built on store A in phases (users added, updated and deleted;
 * mailboxes created, renamed, deleted, INBOX renamed; deliveries with one
 * body to several users, APPEND, flags and keywords, COPY, MOVE, EXPUNGE,
 * subscriptions), shipping A's changelog to a mirror as a replicator
 * does, and comparing two stores in everything a client sees
 * (assert_same_state) and their changelogs (assert_same).  Static
 * functions, included by one test file each.  Include after
 * store_fixture.h.
 */
#ifndef TEST_STORE_HISTORY_H
#define TEST_STORE_HISTORY_H

/* ---- helpers ------------------------------------------------------------------- */

/* A second store on A's loop, with A's origin: a mirror of A. */
static inline void mirror_open(const struct fx *a, struct fx *m)
{
	memset(m, 0, sizeof(*m));
	strcpy(m->dir, "/tmp/test_store_apply.XXXXXX");
	assert_non_null(mkdtemp(m->dir));
	m->base = a->base;
	assert_int_equal(fx_open(m), 0);
}

static inline void mirror_close(struct fx *m)
{
	store_close(&m->st);
	fx_rmdir(m->dir);
}

struct fres {
	int n;
	int err;
};

static inline void fres_cb(int err, const struct store_flag_result *res, size_t n, void *arg)
{
	struct fres *f = arg;

	(void)res;
	(void)n;
	f->n++;
	f->err = err;
}

static inline void flags(struct fx *f, uint32_t userid, uint32_t mboxid, uint32_t uid,
		  enum store_flag_op how, uint32_t fl, const char *const *kw, size_t n_kw)
{
	struct fres r = { 0 };

	store_msg_store_flags(f->st, userid, mboxid, &uid, 1, how, fl, kw, n_kw, 0, fres_cb, &r);
	run_until(f, &r.n, 1);
	assert_int_equal(r.err, STORE_OK);
}

struct cres {
	int n;
	int err;
};

static inline void cres_cb(int err, uint32_t uidvalidity, const uint32_t *src, const uint32_t *dst,
		    size_t n, void *arg)
{
	struct cres *c = arg;

	(void)uidvalidity;
	(void)src;
	(void)dst;
	(void)n;
	c->n++;
	c->err = err;
}

static inline void copy(struct fx *f, uint32_t userid, uint32_t src, const uint32_t *uids, size_t n,
		 uint32_t dst, bool move)
{
	struct cres r = { 0 };

	store_msg_copy(f->st, userid, src, uids, n, dst, move, cres_cb, &r);
	run_until(f, &r.n, 1);
	assert_int_equal(r.err, STORE_OK);
}

struct dres {
	int n;
	uint32_t uid[4];
	int result[4];
};

static inline void deliver_multi_cb(const struct store_rcpt *r, size_t n, void *arg)
{
	struct dres *d = arg;
	size_t i;

	for (i = 0; i < n && i < 4; i++) {
		d->uid[i] = r[i].uid;
		d->result[i] = r[i].result;
	}
	d->n++;
}

/* One body to several users (each with their own prefix), with meta. */
static inline void deliver_to(struct fx *f, const char *const *users, size_t n, const char *body,
		       const char *meta)
{
	struct store_rcpt r[4];
	struct store_delivery d = {
		.body = body, .body_len = strlen(body), .internaldate = 1700000123,
		.rcpts = r, .n_rcpts = n, .meta = meta, .meta_len = meta ? strlen(meta) : 0,
	};
	struct dres res = { 0 };
	static char prefixes[4][64];
	size_t i;

	assert_true(n <= 4);
	for (i = 0; i < n; i++) {
		snprintf(prefixes[i], sizeof(prefixes[i]), "Delivered-To: %s\r\n", users[i]);
		r[i] = (struct store_rcpt){ .user = users[i], .prefix = prefixes[i],
					    .prefix_len = strlen(prefixes[i]) };
	}
	store_deliver(f->st, &d, deliver_multi_cb, &res);
	run_until(f, &res.n, 1);
	for (i = 0; i < n; i++)
		assert_int_equal(res.result[i], STORE_OK);
}

static inline uint32_t uid_of(struct fx *f, const char *user)
{
	struct store_user u;

	assert_int_equal(store_user_get(f->st, user, &u), STORE_OK);
	return u.id;
}

static inline void user_update(struct fx *f, const char *name, uint64_t quota, const char *pwhash)
{
	struct store_user u;
	struct done d = { 0 };

	assert_int_equal(store_user_get(f->st, name, &u), STORE_OK);
	u.quota = quota;
	strcpy(u.pwhash, pwhash);
	strcpy(u.home, "pop-elsewhere");
	store_user_update(f->st, &u, done_cb, &d);
	run_until(f, &d.n, 1);
	assert_int_equal(d.err, STORE_OK);
}

static inline void user_del(struct fx *f, const char *name)
{
	struct done d = { 0 };

	store_user_del(f->st, name, done_cb, &d);
	run_until(f, &d.n, 1);
	assert_int_equal(d.err, STORE_OK);
}

/* ---- shipping: what a replicator does with A's changelog ------------------------ */

struct batchbuf {
	struct store_apply_rec *recs;
	size_t n, cap;
};

static inline int collect_cb(const struct store_change *c, void *arg)
{
	struct batchbuf *b = arg;
	struct store_apply_rec *r;
	void *data = NULL;

	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		b->recs = realloc(b->recs, b->cap * sizeof(*b->recs));
		assert_non_null(b->recs);
	}
	if (c->data_len > 0) {
		data = malloc(c->data_len);
		assert_non_null(data);
		memcpy(data, c->data, c->data_len);
	}
	r = &b->recs[b->n++];
	memset(r, 0, sizeof(*r));
	r->c = *c;
	r->c.data = data;
	return 0;
}

static inline void batch_free(struct batchbuf *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		free((void *)b->recs[i].c.data);
		free((void *)b->recs[i].body);
		free((void *)b->recs[i].meta);
	}
	free(b->recs);
	memset(b, 0, sizeof(*b));
}

static inline int body_cb(const void *body, size_t body_len, const void *meta, size_t meta_len,
		   void *arg)
{
	struct store_apply_rec *r = arg;
	void *bp = malloc(body_len + 1), *mp = NULL;

	assert_non_null(bp);
	memcpy(bp, body, body_len);
	if (meta != NULL) {
		mp = malloc(meta_len);
		assert_non_null(mp);
		memcpy(mp, meta, meta_len);
	}
	r->body = bp;
	r->body_len = body_len;
	r->meta = mp;
	r->meta_len = meta_len;
	return 0;
}

static inline const uint8_t *rec_hash(const struct store_apply_rec *r)
{
	assert_true(r->c.data_len >= 73);
	return (const uint8_t *)r->c.data + 37;	/* message record: ver, size, modseq,
						 * internaldate, flags, keywords, hash */
}

/* Fill in the bodies of b's MSG_ADDs from src, recs [from, to) being one
 * batch: a body goes once per batch, and (unless always) only if dst
 * lacks it. */
static inline void attach_bodies(struct fx *src, struct fx *dst, struct batchbuf *b, size_t from,
			  size_t to, bool always)
{
	size_t i, j;

	for (i = from; i < to; i++) {
		struct store_apply_rec *r = &b->recs[i];
		bool sent = false;

		if (r->c.type != STORE_CH_MSG_ADD)
			continue;
		for (j = from; j < i && !sent; j++)
			sent = b->recs[j].body != NULL &&
			       memcmp(rec_hash(&b->recs[j]), rec_hash(r), STORE_BODY_HASH_LEN) == 0;
		if (sent || (!always && store_has_body(dst->st, rec_hash(r))))
			continue;
		assert_int_equal(store_body_read(src->st, rec_hash(r), body_cb, r), 0);
	}
}

static inline int apply(struct fx *m, const char *origin, const struct store_apply_rec *recs, size_t n)
{
	struct done d = { 0 };

	store_apply_changes(m->st, origin, recs, n, done_cb, &d);
	run_until(m, &d.n, 1);
	return d.err;
}

/* Ship everything src has that dst lacks, batch records at a time. */
static inline void ship(struct fx *src, struct fx *dst, size_t batch, bool always)
{
	struct batchbuf b = { 0 };
	size_t off, n;

	assert_int_equal(store_changelog_foreach(src->st, ORIGIN,
						 store_applied_seq(dst->st, ORIGIN), collect_cb,
						 &b), 0);
	for (off = 0; off < b.n; off += n) {
		n = b.n - off < batch ? b.n - off : batch;
		attach_bodies(src, dst, &b, off, off + n, always);
		assert_int_equal(apply(dst, ORIGIN, b.recs + off, n), STORE_OK);
		assert_int_equal(store_applied_seq(dst->st, ORIGIN), b.recs[off + n - 1].c.seq);
	}
	batch_free(&b);
	assert_int_equal(store_applied_seq(dst->st, ORIGIN), store_changelog_last(src->st, ORIGIN));
}

/* ---- comparing two stores as a client sees them -------------------------------------- */

#define LIST_MAX 64

struct strlist {
	char s[LIST_MAX][STORE_MBOX_MAX + 16];
	size_t n;
};

static inline int sub_cb(const char *name, void *arg)
{
	struct strlist *l = arg;

	assert_true(l->n < LIST_MAX);
	snprintf(l->s[l->n++], sizeof(l->s[0]), "%s", name);
	return 0;
}

static inline int kw_cb(unsigned idx, const char *name, void *arg)
{
	struct strlist *l = arg;

	assert_true(l->n < LIST_MAX);
	snprintf(l->s[l->n++], sizeof(l->s[0]), "%u=%s", idx, name);
	return 0;
}

static inline int vanished_cb(uint32_t uid, void *arg)
{
	struct strlist *l = arg;

	assert_true(l->n < LIST_MAX);
	snprintf(l->s[l->n++], sizeof(l->s[0]), "%u", uid);
	return 0;
}

static inline void same_list(const struct strlist *x, const struct strlist *y)
{
	size_t i;

	assert_int_equal(x->n, y->n);
	for (i = 0; i < x->n; i++)
		assert_string_equal(x->s[i], y->s[i]);
}

struct mblist {
	struct store_mailbox mb[LIST_MAX];
	size_t n;
};

static inline int mb_list_cb(const struct store_mailbox *mb, void *arg)
{
	struct mblist *l = arg;

	assert_true(l->n < LIST_MAX);
	l->mb[l->n++] = *mb;
	return 0;
}

struct msglist {
	struct store_msg m[LIST_MAX];
	size_t n;
};

static inline int msg_list_cb(const struct store_msg *m, void *arg)
{
	struct msglist *l = arg;

	assert_true(l->n < LIST_MAX);
	l->m[l->n++] = *m;
	return 0;
}

struct bytes {
	char buf[512 * 1024];
	size_t len;
	bool null;
};

static inline int read_cb(const char *prefix, size_t prefix_len, const char *body, size_t body_len,
		   void *arg)
{
	struct bytes *b = arg;

	assert_true(prefix_len + body_len < sizeof(b->buf));
	memcpy(b->buf, prefix, prefix_len);
	memcpy(b->buf + prefix_len, body, body_len);
	b->len = prefix_len + body_len;
	return 0;
}

static inline int meta_cb(const void *meta, size_t len, void *arg)
{
	struct bytes *b = arg;

	assert_true(len < sizeof(b->buf));
	b->null = meta == NULL;
	if (len > 0)
		memcpy(b->buf, meta, len);
	b->len = len;
	return 0;
}

static inline void same_msg_bytes(struct fx *a, struct fx *b, uint32_t userid, uint32_t mboxid,
			   uint32_t uid)
{
	static struct bytes x, y;	/* big: not on the stack */

	memset(&x, 0, sizeof(x));
	memset(&y, 0, sizeof(y));
	assert_int_equal(store_msg_read(a->st, userid, mboxid, uid, read_cb, &x), 0);
	assert_int_equal(store_msg_read(b->st, userid, mboxid, uid, read_cb, &y), 0);
	assert_int_equal(x.len, y.len);
	assert_memory_equal(x.buf, y.buf, x.len);
	memset(&x, 0, sizeof(x));
	memset(&y, 0, sizeof(y));
	assert_int_equal(store_msg_read_meta(a->st, userid, mboxid, uid, meta_cb, &x), 0);
	assert_int_equal(store_msg_read_meta(b->st, userid, mboxid, uid, meta_cb, &y), 0);
	assert_int_equal(x.null, y.null);
	assert_int_equal(x.len, y.len);
	assert_memory_equal(x.buf, y.buf, x.len);
}

static inline void same_mailbox(struct fx *a, struct fx *b, uint32_t userid,
			 const struct store_mailbox *x, const struct store_mailbox *y)
{
	struct msglist mx = { .n = 0 }, my = { .n = 0 };
	struct strlist lx, ly;
	uint64_t since[3] = { 0, x->highestmodseq / 2, x->highestmodseq ? x->highestmodseq - 1 : 0 };
	size_t i;

	assert_int_equal(x->id, y->id);
	assert_string_equal(x->name, y->name);
	assert_int_equal(x->uidvalidity, y->uidvalidity);
	assert_int_equal(x->uidnext, y->uidnext);
	assert_int_equal(x->highestmodseq, y->highestmodseq);
	assert_int_equal(x->messages, y->messages);
	assert_int_equal(x->bytes, y->bytes);
	assert_int_equal(x->special_use, y->special_use);
	assert_int_equal(x->subscribed, y->subscribed);
	assert_int_equal(x->unseen, y->unseen);

	assert_int_equal(store_msg_foreach(a->st, userid, x->id, msg_list_cb, &mx), 0);
	assert_int_equal(store_msg_foreach(b->st, userid, y->id, msg_list_cb, &my), 0);
	assert_int_equal(mx.n, my.n);
	for (i = 0; i < mx.n; i++) {
		assert_int_equal(mx.m[i].uid, my.m[i].uid);
		assert_int_equal(mx.m[i].size, my.m[i].size);
		assert_int_equal(mx.m[i].modseq, my.m[i].modseq);
		assert_int_equal(mx.m[i].internaldate, my.m[i].internaldate);
		assert_int_equal(mx.m[i].flags, my.m[i].flags);
		assert_int_equal(mx.m[i].keywords, my.m[i].keywords);
		assert_memory_equal(mx.m[i].hash, my.m[i].hash, STORE_BODY_HASH_LEN);
		same_msg_bytes(a, b, userid, x->id, mx.m[i].uid);
	}
	lx.n = ly.n = 0;
	assert_int_equal(store_mailbox_keywords(a->st, userid, x->id, kw_cb, &lx), 0);
	assert_int_equal(store_mailbox_keywords(b->st, userid, y->id, kw_cb, &ly), 0);
	same_list(&lx, &ly);
	for (i = 0; i < 3; i++) {
		lx.n = ly.n = 0;
		assert_int_equal(store_vanished_foreach(a->st, userid, x->id, since[i],
							vanished_cb, &lx), 0);
		assert_int_equal(store_vanished_foreach(b->st, userid, y->id, since[i],
							vanished_cb, &ly), 0);
		same_list(&lx, &ly);
	}
}

struct ulist {
	struct store_user u[LIST_MAX];
	size_t n;
};

static inline int user_list_cb(const struct store_user *u, void *arg)
{
	struct ulist *l = arg;

	assert_true(l->n < LIST_MAX);
	l->u[l->n++] = *u;
	return 0;
}

/* Everything a client sees. */
static inline void assert_same_state(struct fx *a, struct fx *b)
{
	static struct ulist ux, uy;
	static struct mblist mx, my;
	static struct strlist sx, sy;
	struct store_stats stx, sty;
	size_t i, j;

	ux.n = uy.n = 0;
	assert_int_equal(store_user_foreach(a->st, user_list_cb, &ux), 0);
	assert_int_equal(store_user_foreach(b->st, user_list_cb, &uy), 0);
	assert_int_equal(ux.n, uy.n);
	for (i = 0; i < ux.n; i++) {
		const struct store_user *x = &ux.u[i], *y = &uy.u[i];

		assert_string_equal(x->name, y->name);
		assert_int_equal(x->id, y->id);
		assert_string_equal(x->home, y->home);
		assert_string_equal(x->pwhash, y->pwhash);
		assert_int_equal(x->quota, y->quota);
		assert_int_equal(x->used, y->used);
		assert_int_equal(x->messages, y->messages);
		assert_int_equal(x->enabled, y->enabled);
		assert_int_equal(x->created, y->created);

		mx.n = my.n = 0;
		assert_int_equal(store_mailbox_foreach(a->st, x->id, mb_list_cb, &mx), 0);
		assert_int_equal(store_mailbox_foreach(b->st, y->id, mb_list_cb, &my), 0);
		assert_int_equal(mx.n, my.n);
		for (j = 0; j < mx.n; j++) {
			struct store_mailbox byname;

			same_mailbox(a, b, x->id, &mx.mb[j], &my.mb[j]);
			/* the name index leads to the same mailbox */
			assert_int_equal(store_mailbox_get(b->st, y->id, my.mb[j].name, &byname),
					 STORE_OK);
			assert_int_equal(byname.id, my.mb[j].id);
		}
		sx.n = sy.n = 0;
		assert_int_equal(store_subscription_foreach(a->st, x->id, sub_cb, &sx), 0);
		assert_int_equal(store_subscription_foreach(b->st, y->id, sub_cb, &sy), 0);
		same_list(&sx, &sy);
		check_counts(b, y->id);
	}
	store_stats(a->st, &stx);
	store_stats(b->st, &sty);
	assert_int_equal(stx.bodies, sty.bodies);	/* one body per hash on both */
}

/* Everything a client sees, and the changelog. */
static inline void assert_same(struct fx *a, struct fx *b)
{
	struct batchbuf cx = { 0 }, cy = { 0 };
	size_t i;

	assert_same_state(a, b);
	assert_int_equal(store_changelog_foreach(a->st, ORIGIN, 0, collect_cb, &cx), 0);
	assert_int_equal(store_changelog_foreach(b->st, ORIGIN, 0, collect_cb, &cy), 0);
	assert_int_equal(cx.n, cy.n);
	for (i = 0; i < cx.n; i++) {
		const struct store_change *x = &cx.recs[i].c, *y = &cy.recs[i].c;

		assert_int_equal(x->seq, y->seq);
		assert_int_equal(x->type, y->type);
		assert_int_equal(x->userid, y->userid);
		assert_int_equal(x->mboxid, y->mboxid);
		assert_int_equal(x->uid, y->uid);
		assert_int_equal(x->time, y->time);
		assert_int_equal(x->data_len, y->data_len);
		assert_memory_equal(x->data, y->data, x->data_len);
	}
	assert_int_equal(store_changelog_last(a->st, ORIGIN), store_changelog_last(b->st, ORIGIN));
	batch_free(&cx);
	batch_free(&cy);
}

/* ---- the history ------------------------------------------------------------------------- */

static const char *const alice_bob[] = { "alice", "bob" };
static const char *const carol[] = { "carol" };

/* Users, mailboxes, deliveries (one body to two users), APPEND. */
static inline void phase1(struct fx *a)
{
	const char *kw[] = { "$Label1", "Project" };
	struct store_mailbox mb;
	uint32_t alice, uid;

	alice = user_add(a, "alice", 0);
	user_add(a, "bob", 0);
	user_add(a, "carol", 0);
	user_update(a, "bob", 1000000, "$6$new$hash");
	assert_int_equal(mbox_create(a, alice, "Work/Projects", 0, &mb), STORE_OK);
	assert_int_equal(mbox_create(a, alice, "Old", STORE_SU_ARCHIVE, NULL), STORE_OK);
	deliver_to(a, alice_bob, 2, "Subject: shared\r\n\r\nto both\r\n", "META-shared");
	deliver_to(a, alice_bob, 2, "Subject: two\r\n\r\nsecond\r\n", NULL);
	deliver(a, "alice", "Subject: three\r\n\r\nthird\r\n", "META-3");
	deliver(a, "alice", "Subject: four\r\n\r\nfourth\r\n", NULL);
	deliver(a, "bob", "Subject: bob\r\n\r\nbob only\r\n", NULL);
	deliver(a, "bob", "Subject: bob2\r\n\r\nbob again\r\n", NULL);
	deliver_to(a, carol, 1, "Subject: carol\r\n\r\ncarol only\r\n", "META-c");
	assert_int_equal(append(a, alice, mb.id, "Subject: app\r\n\r\nappended\r\n",
				STORE_F_SEEN | STORE_F_DRAFT, kw, 2, &uid), STORE_OK);
	/* the same body again: shared with the delivery */
	assert_int_equal(append(a, alice, mb.id, "Subject: shared\r\n\r\nto both\r\n", 0, NULL,
				0, &uid), STORE_OK);
}

/* Flags and keywords, COPY, MOVE. */
static inline void phase2(struct fx *a)
{
	const char *kw1[] = { "$Important" }, *kw2[] = { "project", "Later" };
	uint32_t alice = uid_of(a, "alice");
	struct store_mailbox in = mbox(a, alice, "INBOX"), wp = mbox(a, alice, "Work/Projects");
	struct store_mailbox old = mbox(a, alice, "Old");
	uint32_t uids[] = { 1, 2, 3 }, back[] = { 1, 2 };

	flags(a, alice, in.id, 1, STORE_FLAGS_ADD, STORE_F_SEEN, kw1, 1);
	flags(a, alice, in.id, 2, STORE_FLAGS_SET, STORE_F_FLAGGED | STORE_F_ANSWERED, NULL, 0);
	flags(a, alice, in.id, 1, STORE_FLAGS_REMOVE, STORE_F_SEEN, NULL, 0);
	flags(a, alice, wp.id, 1, STORE_FLAGS_ADD, 0, kw2, 2);	/* "project" = "Project" */
	copy(a, alice, in.id, uids, 3, wp.id, false);
	copy(a, alice, wp.id, back, 2, old.id, true);
	copy(a, alice, in.id, back, 1, in.id, false);	/* into itself */
}

/* EXPUNGE, renames (a tree, then INBOX), subscriptions, delete. */
static inline void phase3(struct fx *a)
{
	uint32_t alice = uid_of(a, "alice"), bob = uid_of(a, "bob");
	struct store_mailbox in = mbox(a, alice, "INBOX"), bin = mbox(a, bob, "INBOX");
	uint32_t ex[] = { 2, 4 }, bex[] = { 4 };

	assert_int_equal(expunge(a, alice, in.id, ex, 2), STORE_OK);
	assert_int_equal(subscribe(a, alice, "Work", true), STORE_OK);
	assert_int_equal(subscribe(a, alice, "Work/Projects", true), STORE_OK);
	assert_int_equal(subscribe(a, alice, "Nowhere/yet", true), STORE_OK);
	assert_int_equal(subscribe(a, alice, "Junk", false), STORE_OK);
	assert_int_equal(mbox_rename(a, alice, "Work", "Jobs/Work"), STORE_OK);
	/* bob's highest UID goes before INBOX is renamed: uidnext moves along */
	assert_int_equal(expunge(a, bob, bin.id, bex, 1), STORE_OK);
	assert_int_equal(mbox_rename(a, bob, "INBOX", "Before"), STORE_OK);
	deliver(a, "bob", "Subject: after\r\n\r\nafter the rename\r\n", NULL);
	assert_int_equal(mbox_delete(a, alice, "Old"), STORE_OK);
	assert_int_equal(mbox_create(a, alice, "Old", 0, NULL), STORE_OK);
}

/* A user goes, another comes. */
static inline void phase4(struct fx *a)
{
	user_del(a, "carol");
	user_add(a, "dave", 0);
	deliver(a, "dave", "Subject: dave\r\n\r\nhello dave\r\n", NULL);
}

#endif
