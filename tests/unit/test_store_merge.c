/*
 * test_store_merge.c - a home POP merges what a mirror did for it while
 * it was down (store_merge.c).  Each test builds a home store and a
 * mirror store of it from the same history (the home's changelog applied
 * up to base B), then makes changes on the mirror through the normal
 * store API (a failover: deliveries, APPEND, flags, keywords, expunge,
 * mailboxes) and, for conflicts, on the home after B; reads the mirror's
 * records after B with their bodies and merges them into the home.
 * Checked: every message of both sides there exactly once (by body), no
 * live UID naming another body than the one either side gave it,
 * renumbering, the flag rules (later wins, home on a tie, expunge wins),
 * mailbox mapping, counters and body references, the merge's changelog
 * records (a second mirror of the home applies them and equals it),
 * merges in several calls, and refusals that change nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store_fixture.h"
#include "store_history.h"

#define MIRROR "pop-mirror"

/* ---- helpers ------------------------------------------------------------------- */

static void ex1(struct fx *f, uint32_t userid, uint32_t mboxid, uint32_t uid)
{
	assert_int_equal(expunge(f, userid, mboxid, &uid, 1), STORE_OK);
}

/* Deliver body to user's INBOX (same prefix and INTERNALDATE as
 * store_fixture's deliver); returns the UID. */
static uint32_t dlv(struct fx *f, const char *user, const char *body)
{
	return deliver(f, user, body, NULL);
}

static uint32_t app(struct fx *f, uint32_t userid, uint32_t mboxid, const char *msg,
		    uint32_t fl, const char *kw)
{
	const char *kws[1] = { kw };
	uint32_t uid;

	assert_int_equal(append(f, userid, mboxid, msg, fl, kw ? kws : NULL, kw ? 1 : 0, &uid),
			 STORE_OK);
	return uid;
}

/* ---- shipping and merging ------------------------------------------------------------ */

/* The bodies dst lacks, read at src; body_gone where src has none. */
static void attach_missing(struct fx *src, struct fx *dst, struct batchbuf *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		struct store_apply_rec *r = &b->recs[i];

		if (r->c.type != STORE_CH_MSG_ADD || store_has_body(dst->st, rec_hash(r)))
			continue;
		if (store_body_read(src->st, rec_hash(r), body_cb, r) == STORE_NOTFOUND)
			r->body_gone = true;
	}
}

/* Ship everything of src's changelog dst has not applied. */
static void ship_all(struct fx *src, struct fx *dst)
{
	struct batchbuf b = { 0 };

	assert_int_equal(store_changelog_foreach(src->st, ORIGIN,
						 store_applied_seq(dst->st, ORIGIN), collect_cb,
						 &b), 0);
	if (b.n > 0) {
		attach_missing(src, dst, &b);
		assert_int_equal(apply(dst, ORIGIN, b.recs, b.n), STORE_OK);
	}
	batch_free(&b);
	assert_int_equal(store_applied_seq(dst->st, ORIGIN), store_changelog_last(src->st, ORIGIN));
}

/* The mirror's failover records: its changelog of the home's origin after base. */
static void failover_recs(struct fx *home, struct fx *m, uint64_t base, struct batchbuf *b)
{
	assert_int_equal(store_changelog_foreach(m->st, ORIGIN, base, collect_cb, b), 0);
	assert_true(b->n > 0);
	assert_int_equal(b->recs[0].c.seq, base + 1);
	attach_missing(m, home, b);
}

static int merge(struct fx *home, const char *mirror, uint64_t base,
		 const struct store_apply_rec *recs, size_t n, struct store_merge_stats *s)
{
	struct done d = { 0 };

	store_merge_changes(home->st, mirror, base, recs, n, s, done_cb, &d);
	run_until(home, &d.n, 1);
	return d.err;
}

static int merge_begin(struct fx *home, const char *mirror, uint64_t base, uint64_t last)
{
	struct done d = { 0 };

	store_merge_begin(home->st, mirror, base, last, done_cb, &d);
	run_until(home, &d.n, 1);
	return d.err;
}

static int merge_end(struct fx *home, const char *mirror)
{
	struct done d = { 0 };

	store_merge_end(home->st, mirror, done_cb, &d);
	run_until(home, &d.n, 1);
	return d.err;
}

/* Merge b (the mirror's records after base) in calls of at most chunk
 * records (begun with the mirror's last seq if begin), then end the
 * merge; stats summed. */
static void merge_all(struct fx *home, uint64_t base, struct batchbuf *b, size_t chunk,
		      bool begin, struct store_merge_stats *sum)
{
	struct store_merge_stats s;
	uint64_t pb, pp;
	size_t off, n;

	memset(sum, 0, sizeof(*sum));
	if (begin) {
		assert_int_equal(merge_begin(home, MIRROR, base, base + b->n), STORE_OK);
		assert_int_equal(merge_begin(home, MIRROR, base, base + b->n), STORE_OK);
		assert_int_equal(merge_begin(home, MIRROR, base, base + b->n + 1), STORE_EXISTS);
		assert_int_equal(store_merge_position(home->st, MIRROR, &pb, &pp), STORE_OK);
		assert_int_equal(pp, base);
	}
	for (off = 0; off < b->n; off += n) {
		n = b->n - off < chunk ? b->n - off : chunk;
		assert_int_equal(merge(home, MIRROR, base + off, b->recs + off, n, &s), STORE_OK);
		assert_int_equal(store_merge_position(home->st, MIRROR, &pb, &pp), STORE_OK);
		assert_int_equal(pb, base);
		assert_int_equal(pp, base + off + n);
#define ADD(f) sum->f += s.f
		ADD(added);
		ADD(added_renumbered);
		ADD(already_present);
		ADD(lost_to_mailbox_delete);
		ADD(flags_applied);
		ADD(flags_lost_to_newer_home_change);
		ADD(flags_lost_to_expunge);
		ADD(expunged);
		ADD(home_renumbered);
		ADD(mailboxes_created);
		ADD(mailboxes_renamed);
		ADD(mailboxes_deleted);
		ADD(skipped);
#undef ADD
	}
	assert_int_equal(merge_end(home, MIRROR), STORE_OK);
	assert_int_equal(store_merge_position(home->st, MIRROR, &pb, &pp), STORE_NOTFOUND);
}

/* Set the time of the mirror's MSG_FLAGS records of uid in mailbox mboxid. */
static void flags_time(struct batchbuf *b, uint32_t mboxid, uint32_t uid, int64_t t)
{
	size_t i, n = 0;

	for (i = 0; i < b->n; i++) {
		if (b->recs[i].c.type == STORE_CH_MSG_FLAGS && b->recs[i].c.mboxid == mboxid &&
		    b->recs[i].c.uid == uid) {
			b->recs[i].c.time = t;
			n++;
		}
	}
	assert_true(n > 0);
}

/* ---- what a mailbox holds ------------------------------------------------------------- */


struct mlist {
	struct store_msg m[LIST_MAX];
	char body[LIST_MAX][128];
	size_t n;
};

static int mlist_cb(const struct store_msg *m, void *arg)
{
	struct mlist *l = arg;

	assert_true(l->n < LIST_MAX);
	l->m[l->n++] = *m;
	return 0;
}

static int mlist_read_cb(const char *prefix, size_t prefix_len, const char *body, size_t body_len,
		   void *arg)
{
	char *out = arg;

	(void)prefix;
	(void)prefix_len;
	assert_true(body_len < 128);
	memcpy(out, body, body_len);
	out[body_len] = '\0';
	return 0;
}

/* The messages of a mailbox, ascending UID, with their bodies. */
static void msgs(struct fx *f, uint32_t userid, uint32_t mboxid, struct mlist *l)
{
	size_t i;

	l->n = 0;
	assert_int_equal(store_msg_foreach(f->st, userid, mboxid, mlist_cb, l), 0);
	for (i = 0; i < l->n; i++)
		assert_int_equal(store_msg_read(f->st, userid, mboxid, l->m[i].uid, mlist_read_cb,
						l->body[i]), 0);
}

/* The body under uid ("" if none). */
static const char *body_at(const struct mlist *l, uint32_t uid)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (l->m[i].uid == uid)
			return l->body[i];
	}
	return "";
}

static const struct store_msg *msg_at(const struct mlist *l, uint32_t uid)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (l->m[i].uid == uid)
			return &l->m[i];
	}
	fail_msg("no UID %u", uid);
	return NULL;
}

/* How many messages of the mailbox have body. */
static int count_body(const struct mlist *l, const char *body)
{
	size_t i;
	int n = 0;

	for (i = 0; i < l->n; i++)
		n += strcmp(l->body[i], body) == 0;
	return n;
}

static int vanished_count_cb(uint32_t uid, void *arg)
{
	uint64_t *set = arg;

	if (uid < 64)
		*set |= 1ULL << uid;
	return 0;
}

/* Tombstoned UIDs below 64 as a bitmap. */
static uint64_t vanished(struct fx *f, uint32_t userid, uint32_t mboxid)
{
	uint64_t set = 0;

	assert_int_equal(store_vanished_foreach(f->st, userid, mboxid, 0, vanished_count_cb, &set), 0);
	return set;
}

struct kwname {
	char name[LIST_MAX][STORE_KEYWORD_MAX + 1];
	unsigned n;
};

static int kwname_cb(unsigned idx, const char *name, void *arg)
{
	struct kwname *k = arg;

	assert_int_equal(idx, k->n);
	strcpy(k->name[k->n++], name);
	return 0;
}

/* Bit of keyword name in the mailbox's table (fails if absent). */
static uint64_t kwbit(struct fx *f, uint32_t userid, uint32_t mboxid, const char *name)
{
	struct kwname k = { .n = 0 };
	unsigned i;

	assert_int_equal(store_mailbox_keywords(f->st, userid, mboxid, kwname_cb, &k), 0);
	for (i = 0; i < k.n; i++) {
		if (strcmp(k.name[i], name) == 0)
			return 1ULL << i;
	}
	fail_msg("no keyword %s", name);
	return 0;
}

/* What each UID named in a history: the body hash of every MSG_ADD of
 * (userid, mboxid) in origin's changelog after `after`. */
struct uidhist {
	uint32_t userid, mboxid;
	uint8_t hash[LIST_MAX][STORE_BODY_HASH_LEN];
	bool set[LIST_MAX];
};

static int hist_cb(const struct store_change *c, void *arg)
{
	struct uidhist *h = arg;

	if (c->type != STORE_CH_MSG_ADD || c->userid != h->userid || c->mboxid != h->mboxid)
		return 0;
	assert_true(c->uid < LIST_MAX);
	/* within one history a UID names one body */
	if (h->set[c->uid])
		assert_memory_equal(h->hash[c->uid], (const uint8_t *)c->data + 37,
				    STORE_BODY_HASH_LEN);
	memcpy(h->hash[c->uid], (const uint8_t *)c->data + 37, STORE_BODY_HASH_LEN);
	h->set[c->uid] = true;
	return 0;
}

/* No live UID of the home's mailbox names a body other than the one the
 * mirror's history (its mailbox mmbox, records after base) or the home's
 * own history gave it: a client of either side never sees a UID change
 * meaning.  Only for a mailbox whose UIDVALIDITY both sides share. */
static void uids_consistent(struct fx *home, struct fx *m, uint32_t userid, uint32_t hmbox,
			    uint32_t mmbox)
{
	static struct uidhist hh, mh;
	struct mlist l;
	size_t i;

	memset(&hh, 0, sizeof(hh));
	memset(&mh, 0, sizeof(mh));
	hh.userid = mh.userid = userid;
	hh.mboxid = hmbox;
	mh.mboxid = mmbox;
	assert_int_equal(store_changelog_foreach(home->st, ORIGIN, 0, hist_cb, &hh), 0);
	assert_int_equal(store_changelog_foreach(m->st, ORIGIN, 0, hist_cb, &mh), 0);
	msgs(home, userid, hmbox, &l);
	for (i = 0; i < l.n; i++) {
		uint32_t uid = l.m[i].uid;

		assert_true(hh.set[uid]);
		assert_memory_equal(hh.hash[uid], l.m[i].hash, STORE_BODY_HASH_LEN);
		if (mh.set[uid])
			assert_memory_equal(mh.hash[uid], l.m[i].hash, STORE_BODY_HASH_LEN);
	}
}

/* ---- comparing the home with a mirror of it ------------------------------------------- */

/* b (a mirror of a, shipped) equals a in what a client sees. */
static void assert_same_user(struct fx *a, struct fx *b, uint32_t userid)
{
	static struct mblist mx, my;
	static struct mlist lx, ly;
	static struct strlist sx, sy;
	struct kwname kx, ky;
	struct store_user ux, uy;
	struct store_stats stx, sty;
	size_t i, j;

	assert_int_equal(store_user_get_by_id(a->st, userid, &ux), STORE_OK);
	assert_int_equal(store_user_get_by_id(b->st, userid, &uy), STORE_OK);
	assert_int_equal(ux.used, uy.used);
	assert_int_equal(ux.messages, uy.messages);
	mx.n = my.n = 0;
	assert_int_equal(store_mailbox_foreach(a->st, userid, mb_list_cb, &mx), 0);
	assert_int_equal(store_mailbox_foreach(b->st, userid, mb_list_cb, &my), 0);
	assert_int_equal(mx.n, my.n);
	for (i = 0; i < mx.n; i++) {
		const struct store_mailbox *x = &mx.mb[i], *y = &my.mb[i];

		assert_int_equal(x->id, y->id);
		assert_string_equal(x->name, y->name);
		assert_int_equal(x->uidvalidity, y->uidvalidity);
		assert_int_equal(x->uidnext, y->uidnext);
		assert_int_equal(x->highestmodseq, y->highestmodseq);
		assert_int_equal(x->messages, y->messages);
		assert_int_equal(x->bytes, y->bytes);
		assert_int_equal(x->unseen, y->unseen);
		assert_int_equal(x->subscribed, y->subscribed);
		msgs(a, userid, x->id, &lx);
		msgs(b, userid, y->id, &ly);
		assert_int_equal(lx.n, ly.n);
		for (j = 0; j < lx.n; j++) {
			assert_int_equal(lx.m[j].uid, ly.m[j].uid);
			assert_int_equal(lx.m[j].modseq, ly.m[j].modseq);
			assert_int_equal(lx.m[j].flags, ly.m[j].flags);
			assert_int_equal(lx.m[j].keywords, ly.m[j].keywords);
			assert_string_equal(lx.body[j], ly.body[j]);
		}
		kx.n = ky.n = 0;
		assert_int_equal(store_mailbox_keywords(a->st, userid, x->id, kwname_cb, &kx), 0);
		assert_int_equal(store_mailbox_keywords(b->st, userid, y->id, kwname_cb, &ky), 0);
		assert_int_equal(kx.n, ky.n);
		for (j = 0; j < kx.n; j++)
			assert_string_equal(kx.name[j], ky.name[j]);
		assert_int_equal(vanished(a, userid, x->id), vanished(b, userid, y->id));
	}
	sx.n = sy.n = 0;
	assert_int_equal(store_subscription_foreach(a->st, userid, sub_cb, &sx), 0);
	assert_int_equal(store_subscription_foreach(b->st, userid, sub_cb, &sy), 0);
	assert_int_equal(sx.n, sy.n);
	for (i = 0; i < sx.n; i++)
		assert_string_equal(sx.s[i], sy.s[i]);
	store_stats(a->st, &stx);
	store_stats(b->st, &sty);
	assert_int_equal(stx.bodies, sty.bodies);
	check_counts(a, userid);
	check_counts(b, userid);
}

/* Every body of the store is held by a message of userid: the body
 * references went with the messages (a body whose last message went is
 * gone, store_has_body false). */
static void bodies_match(struct fx *f, uint32_t userid, size_t expect)
{
	static struct mblist ml;
	static struct mlist l;
	uint8_t seen[LIST_MAX][STORE_BODY_HASH_LEN];
	size_t n = 0, i, j, k;

	ml.n = 0;
	assert_int_equal(store_mailbox_foreach(f->st, userid, mb_list_cb, &ml), 0);
	for (i = 0; i < ml.n; i++) {
		msgs(f, userid, ml.mb[i].id, &l);
		for (j = 0; j < l.n; j++) {
			assert_true(store_has_body(f->st, l.m[j].hash));
			for (k = 0; k < n && memcmp(seen[k], l.m[j].hash, STORE_BODY_HASH_LEN); k++)
				;
			if (k == n) {
				assert_true(n < LIST_MAX);
				memcpy(seen[n++], l.m[j].hash, STORE_BODY_HASH_LEN);
			}
		}
	}
	assert_int_equal(n, expect);
	assert_int_equal(bodies(f), expect);
}

/* Expunge every message of userid.  Once every user is drained no body
 * may be left: each body reference the merge took was one message's. */
static void drain(struct fx *f, uint32_t userid)
{
	static struct mblist ml;
	static struct mlist l;
	uint32_t uids[LIST_MAX];
	size_t i, j;

	ml.n = 0;
	assert_int_equal(store_mailbox_foreach(f->st, userid, mb_list_cb, &ml), 0);
	for (i = 0; i < ml.n; i++) {
		msgs(f, userid, ml.mb[i].id, &l);
		for (j = 0; j < l.n; j++)
			uids[j] = l.m[j].uid;
		if (l.n > 0)
			assert_int_equal(expunge(f, userid, ml.mb[i].id, uids, l.n), STORE_OK);
	}
	check_counts(f, userid);
}

/* Which mailboxes the change observer was told of. */
struct touched {
	uint32_t userid[LIST_MAX], mboxid[LIST_MAX];
	size_t n;
};

static void touched_cb(struct store *st, uint32_t userid, uint32_t mboxid, void *arg)
{
	struct touched *t = arg;

	(void)st;
	assert_true(t->n < LIST_MAX);
	t->userid[t->n] = userid;
	t->mboxid[t->n++] = mboxid;
}

static bool was_touched(const struct touched *t, uint32_t userid, uint32_t mboxid)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		if (t->userid[i] == userid && t->mboxid[i] == mboxid)
			return true;
	}
	return false;
}

/* ---- the failover scenario: messages in INBOX ----------------------------------------- */

static const char P1[] = "Subject: p1\r\n\r\nbefore base 1\r\n";
static const char P2[] = "Subject: p2\r\n\r\nbefore base 2\r\n";
static const char P3[] = "Subject: p3\r\n\r\nbefore base 3\r\n";
static const char P4[] = "Subject: p4\r\n\r\nbefore base 4\r\n";
static const char H5[] = "Subject: h5\r\n\r\nat the home after base\r\n";
static const char H6[] = "Subject: h6\r\n\r\nat the home, expunged\r\n";
static const char M5[] = "Subject: m5\r\n\r\nat the mirror 5\r\n";
static const char M6[] = "Subject: m6\r\n\r\nat the mirror 6\r\n";
static const char M7[] = "Subject: m7\r\n\r\nat the mirror 7\r\n";
static const char M8[] = "Subject: m8\r\n\r\nat the mirror, expunged there\r\n";
static const char W1[] = "Subject: w1\r\n\r\nwork\r\n";
static const char W2[] = "Subject: w2\r\n\r\nwork at the mirror\r\n";

struct scenario {
	struct fx m, h2;	/* the mirror; a second mirror of the home */
	uint32_t alice, inbox, work;
	uint64_t base, home_last;
	struct batchbuf recs;
};

/*
 * Before B:  INBOX 1 P1 ($Base), 2 P2, 3 P3, 4 P4; Work 1 W1.
 * Home after B:  5 H5; 6 H6 expunged; 1 +\Flagged; 2 +\Draft; 3 expunged;
 *                4 +HomeKw (INBOX keyword 1).
 * Mirror after B:  5 M5, 6 M6, 7 M7, 8 M8 (expunged there); 1 +\Seen (made
 *                  older than the home's change); 2 +\Answered (newer);
 *                  3 +\Seen; 7 +\Seen +Proj (mirror keyword 1); 5
 *                  +\Flagged; 4 expunged; Work: 2 W2 appended, 1 +\Seen.
 */
static void scenario_build(struct fx *a, struct scenario *s)
{
	const char *base_kw[] = { "$Base" }, *home_kw[] = { "HomeKw" }, *proj[] = { "Proj" };
	struct store_mailbox mb;
	uint32_t uid;

	memset(s, 0, sizeof(*s));
	s->alice = user_add(a, "alice", 0);
	s->inbox = mbox(a, s->alice, "INBOX").id;
	assert_int_equal(mbox_create(a, s->alice, "Work", 0, &mb), STORE_OK);
	s->work = mb.id;
	assert_int_equal(dlv(a, "alice", P1), 1);
	assert_int_equal(dlv(a, "alice", P2), 2);
	assert_int_equal(dlv(a, "alice", P3), 3);
	assert_int_equal(dlv(a, "alice", P4), 4);
	assert_int_equal(app(a, s->alice, s->work, W1, 0, NULL), 1);
	flags(a, s->alice, s->inbox, 1, STORE_FLAGS_ADD, 0, base_kw, 1);

	mirror_open(a, &s->m);
	mirror_open(a, &s->h2);
	ship_all(a, &s->m);
	s->base = store_changelog_last(a->st, ORIGIN);

	/* the home, after B (the mirror never got these) */
	assert_int_equal(dlv(a, "alice", H5), 5);
	assert_int_equal(dlv(a, "alice", H6), 6);
	ex1(a, s->alice, s->inbox, 6);
	flags(a, s->alice, s->inbox, 1, STORE_FLAGS_ADD, STORE_F_FLAGGED, NULL, 0);
	flags(a, s->alice, s->inbox, 2, STORE_FLAGS_ADD, STORE_F_DRAFT, NULL, 0);
	ex1(a, s->alice, s->inbox, 3);
	flags(a, s->alice, s->inbox, 4, STORE_FLAGS_ADD, 0, home_kw, 1);

	/* the mirror, failing over */
	assert_int_equal(dlv(&s->m, "alice", M5), 5);
	assert_int_equal(dlv(&s->m, "alice", M6), 6);
	assert_int_equal(dlv(&s->m, "alice", M7), 7);
	assert_int_equal(dlv(&s->m, "alice", M8), 8);
	ex1(&s->m, s->alice, s->inbox, 8);
	flags(&s->m, s->alice, s->inbox, 1, STORE_FLAGS_ADD, STORE_F_SEEN, NULL, 0);
	flags(&s->m, s->alice, s->inbox, 2, STORE_FLAGS_ADD, STORE_F_ANSWERED, NULL, 0);
	flags(&s->m, s->alice, s->inbox, 3, STORE_FLAGS_ADD, STORE_F_SEEN, NULL, 0);
	flags(&s->m, s->alice, s->inbox, 7, STORE_FLAGS_ADD, STORE_F_SEEN, proj, 1);
	flags(&s->m, s->alice, s->inbox, 5, STORE_FLAGS_ADD, STORE_F_FLAGGED, NULL, 0);
	ex1(&s->m, s->alice, s->inbox, 4);
	uid = app(&s->m, s->alice, s->work, W2, STORE_F_FLAGGED, NULL);
	assert_int_equal(uid, 2);
	flags(&s->m, s->alice, s->work, 1, STORE_FLAGS_ADD, STORE_F_SEEN, NULL, 0);

	s->home_last = store_changelog_last(a->st, ORIGIN);
	failover_recs(a, &s->m, s->base, &s->recs);
	/* M8's body is gone at the mirror: shipped without it */
	flags_time(&s->recs, s->inbox, 1, 1);			/* older than the home's */
	flags_time(&s->recs, s->inbox, 2, (int64_t)time(NULL) + 3600);	/* newer */
}

static void scenario_free(struct scenario *s)
{
	batch_free(&s->recs);
	mirror_close(&s->m);
	mirror_close(&s->h2);
}

/* What every way of merging the scenario must give (known_last: the
 * merge knew the mirror's last seq from its first call). */
static void scenario_check(struct fx *a, struct scenario *s, bool known_last)
{
	static struct mlist in, wk;
	const struct store_msg *m = NULL;
	struct store_mailbox mb;
	uint64_t mseq;

	msgs(a, s->alice, s->inbox, &in);
	/* every message of both sides once, but those expunged on a side */
	assert_int_equal(in.n, 6);
	assert_int_equal(count_body(&in, P1), 1);
	assert_int_equal(count_body(&in, P2), 1);
	assert_int_equal(count_body(&in, P3), 0);	/* expunged at the home */
	assert_int_equal(count_body(&in, P4), 0);	/* expunged at the mirror */
	assert_int_equal(count_body(&in, H5), 1);
	assert_int_equal(count_body(&in, H6), 0);
	assert_int_equal(count_body(&in, M5), 1);
	assert_int_equal(count_body(&in, M6), 1);
	assert_int_equal(count_body(&in, M7), 1);
	assert_int_equal(count_body(&in, M8), 0);	/* gone on both sides */
	/* UIDs both sides gave (5, 6) or that only the mirror gave (7, 8) */
	assert_string_equal(body_at(&in, 1), P1);
	assert_string_equal(body_at(&in, 2), P2);
	assert_string_equal(body_at(&in, 5), "");
	assert_string_equal(body_at(&in, 6), "");
	/* no live UID names another body than a side gave it */
	uids_consistent(a, &s->m, s->alice, s->inbox, s->inbox);
	mb = mbox(a, s->alice, "INBOX");
	assert_true(mb.uidnext > 8);
	/* flags: the home's later change wins (1), the mirror's later one (2) */
	m = msg_at(&in, 1);
	assert_int_equal(m->flags & ~STORE_F_RECENT, STORE_F_FLAGGED);
	assert_int_equal(m->keywords, kwbit(a, s->alice, s->inbox, "$Base"));
	m = msg_at(&in, 2);
	assert_int_equal(m->flags & ~STORE_F_RECENT, STORE_F_ANSWERED);
	/* M5's flags follow it wherever it went (a later call may have moved
	 * it); what the merge changed is above every modseq the mirror gave,
	 * so a CONDSTORE client that synced with the mirror sees it */
	mseq = mbox(&s->m, s->alice, "INBOX").highestmodseq;
	for (size_t i = 0; i < in.n; i++) {
		if (strcmp(in.body[i], M5) == 0)
			assert_int_equal(in.m[i].flags & ~STORE_F_RECENT, STORE_F_FLAGGED);
		if (strcmp(in.body[i], M7) == 0)
			m = &in.m[i];
		if (known_last && strcmp(in.body[i], P1) != 0)
			assert_true(in.m[i].modseq > mseq);
	}
	assert_int_equal(m->flags & ~STORE_F_RECENT, STORE_F_SEEN);
	/* the mirror's keyword 1 is the home's 2 (the home's 1 is HomeKw) */
	assert_int_equal(kwbit(a, s->alice, s->inbox, "HomeKw"), 1u << 1);
	assert_int_equal(kwbit(a, s->alice, s->inbox, "Proj"), 1u << 2);
	assert_int_equal(m->keywords, 1u << 2);
	/* Work: shared, W2 kept under the mirror's UID 2 */
	msgs(a, s->alice, s->work, &wk);
	assert_int_equal(wk.n, 2);
	assert_string_equal(body_at(&wk, 1), W1);
	assert_string_equal(body_at(&wk, 2), W2);
	assert_int_equal(msg_at(&wk, 1)->flags & ~STORE_F_RECENT, STORE_F_SEEN);
	assert_int_equal(msg_at(&wk, 2)->flags & ~STORE_F_RECENT, STORE_F_FLAGGED);
	/* counters against a scan, bodies once each (M8, P3, P4, H6 freed) */
	check_counts(a, s->alice);
	bodies_match(a, s->alice, 8);
	/* the merge wrote normal records: the home's own mirror follows */
	assert_true(store_changelog_last(a->st, ORIGIN) > s->home_last);
	ship_all(a, &s->h2);
	assert_same_user(a, &s->h2, s->alice);
}

/* The UIDs of a merge that knew the mirror's last seq L from the start:
 * M7 kept; M5 and M6 (the home gave 5, used 6) and the home's H5 go
 * above every UID the mirror can have given, INBOX's uidnext at B (7,
 * the floor) + L - B. */
static void scenario_uids(struct fx *a, struct scenario *s)
{
	static struct mlist in;
	uint32_t t = 7 + (uint32_t)s->recs.n;

	msgs(a, s->alice, s->inbox, &in);
	assert_string_equal(body_at(&in, 7), M7);
	assert_string_equal(body_at(&in, 8), "");
	assert_string_equal(body_at(&in, t), M5);
	assert_string_equal(body_at(&in, t + 1), H5);
	assert_string_equal(body_at(&in, t + 2), M6);
	assert_int_equal(mbox(a, s->alice, "INBOX").uidnext, t + 3);
	/* 3 and 6 by the home; 4 by the merge; 5 for the moved H5 */
	assert_int_equal(vanished(a, s->alice, s->inbox), (1u << 3) | (1u << 4) | (1u << 5) |
			 (1u << 6));
}

static void test_merge_one_call(void **state)
{
	struct fx *a = *state;
	struct store_merge_stats st;
	struct scenario s;

	scenario_build(a, &s);
	merge_all(a, s.base, &s.recs, s.recs.n, false, &st);
	/* M5 and M6 renumbered (the home gave 5, used 6), M7 and W2 kept,
	 * M8 skipped (body gone); H5 moved */
	assert_int_equal(st.added, 2);
	assert_int_equal(st.added_renumbered, 2);
	assert_int_equal(st.home_renumbered, 1);
	assert_int_equal(st.already_present, 0);
	assert_int_equal(st.lost_to_mailbox_delete, 0);
	/* 1: the home's change is newer; 3: expunged at the home */
	assert_int_equal(st.flags_applied, 4);
	assert_int_equal(st.flags_lost_to_newer_home_change, 1);
	assert_int_equal(st.flags_lost_to_expunge, 1);
	/* 4 expunged; M8's expunge and add change nothing */
	assert_int_equal(st.expunged, 1);
	assert_int_equal(st.skipped, 2);
	assert_int_equal(st.mailboxes_created + st.mailboxes_renamed + st.mailboxes_deleted, 0);
	scenario_uids(a, &s);
	scenario_check(a, &s, true);
	drain(a, s.alice);
	assert_int_equal(bodies(a), 0);
	scenario_free(&s);
}

/* The same failover merged record by record and in small chunks: what
 * one call learns (maps, floors, horizons, its own records) carries to
 * the next.  Begun with L, the result is the one-call merge's; not
 * begun, a later call may move a message a first one placed, but every
 * rule still holds. */
static void test_merge_chunks(void **state)
{
	static const struct {
		size_t chunk;
		bool begin;
	} runs[] = { { 1, true }, { 3, true }, { 1, false }, { 2, false } };
	struct fx *a = *state;
	struct store_merge_stats st;
	struct scenario s;
	size_t i;

	for (i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		struct fx home;

		/* a fresh home per run */
		mirror_open(a, &home);
		scenario_build(&home, &s);
		merge_all(&home, s.base, &s.recs, runs[i].chunk, runs[i].begin, &st);
		assert_int_equal(st.added + st.added_renumbered, 4);
		assert_int_equal(st.flags_applied, 4);
		assert_int_equal(st.flags_lost_to_newer_home_change, 1);
		assert_int_equal(st.flags_lost_to_expunge, 1);
		assert_int_equal(st.expunged, 1);
		if (runs[i].begin) {
			assert_int_equal(st.added_renumbered, 2);
			assert_int_equal(st.home_renumbered, 1);
			scenario_uids(&home, &s);
		}
		scenario_check(&home, &s, runs[i].begin);
		scenario_free(&s);
		mirror_close(&home);
	}
}

/* ---- mailboxes --------------------------------------------------------------------------- */

static void test_merge_mailboxes(void **state)
{
	struct fx *a = *state, m, h2;
	struct store_merge_stats st;
	struct store_mailbox both_h, both_m, named_h, named_m, new_m, mb, old;
	static struct mlist l;
	struct batchbuf b = { 0 };
	uint32_t alice = user_add(a, "alice", 0), inbox;
	uint64_t base;
	struct strlist subs = { .n = 0 };

	inbox = mbox(a, alice, "INBOX").id;
	assert_int_equal(mbox_create(a, alice, "Old", 0, &old), STORE_OK);
	assert_int_equal(mbox_create(a, alice, "Gone", 0, NULL), STORE_OK);
	assert_int_equal(mbox_create(a, alice, "Doomed", 0, NULL), STORE_OK);
	app(a, alice, mbox(a, alice, "Doomed").id, "Subject: d\r\n\r\ndoomed\r\n", 0, NULL);
	mirror_open(a, &m);
	mirror_open(a, &h2);
	ship_all(a, &m);
	base = store_changelog_last(a->st, ORIGIN);

	/* the home after B: Both, Taken, Named (in that order: the counters
	 * give Both the UIDVALIDITY the mirror's first new mailbox gets),
	 * deletes Gone */
	assert_int_equal(mbox_create(a, alice, "Both", 0, &both_h), STORE_OK);
	app(a, alice, both_h.id, "Subject: hb1\r\n\r\nhome's Both 1\r\n", 0, NULL);
	assert_int_equal(mbox_create(a, alice, "Taken", 0, NULL), STORE_OK);
	assert_int_equal(mbox_create(a, alice, "Named", 0, &named_h), STORE_OK);
	app(a, alice, named_h.id, "Subject: hn1\r\n\r\nhome's Named 1\r\n", 0, NULL);
	assert_int_equal(mbox_delete(a, alice, "Gone"), STORE_OK);

	/* the mirror: Both and Named map by name; Old2 and New are created
	 * at the home (under new ids: the home gave the mirror's) */
	assert_int_equal(mbox_create(&m, alice, "Both", 0, &both_m), STORE_OK);
	app(&m, alice, both_m.id, "Subject: mb1\r\n\r\nmirror's Both 1\r\n", 0, NULL);
	assert_int_equal(mbox_create(&m, alice, "Named", 0, &named_m), STORE_OK);
	app(&m, alice, named_m.id, "Subject: mn1\r\n\r\nmirror's Named 1\r\n", 0, NULL);
	app(&m, alice, named_m.id, "Subject: mn2\r\n\r\nmirror's Named 2\r\n", 0, NULL);
	{
		/* copies in Old keep their bodies after Named goes */
		uint32_t both[] = { 1, 2 };

		copy(&m, alice, named_m.id, both, 2, old.id, false);
	}
	assert_int_equal(mbox_create(&m, alice, "Old2", 0, NULL), STORE_OK);
	assert_int_equal(mbox_create(&m, alice, "New", 0, &new_m), STORE_OK);
	app(&m, alice, new_m.id, "Subject: n1\r\n\r\nnew 1\r\n", 0, "Proj2");
	app(&m, alice, new_m.id, "Subject: n2\r\n\r\nnew 2\r\n", STORE_F_SEEN, NULL);
	assert_int_equal(subscribe(&m, alice, "New", true), STORE_OK);
	/* a message into a mailbox the home deleted */
	app(&m, alice, mbox(&m, alice, "Gone").id, "Subject: g\r\n\r\ninto gone\r\n", 0, NULL);
	/* rename onto a name the home took; rename a mailbox of its own */
	assert_int_equal(mbox_rename(&m, alice, "Old", "Taken"), STORE_OK);
	assert_int_equal(mbox_rename(&m, alice, "Old2", "Renamed"), STORE_OK);
	/* the mirror's own Named is deleted: what it brought goes, the home's stays */
	assert_int_equal(mbox_delete(&m, alice, "Named"), STORE_OK);
	assert_int_equal(mbox_delete(&m, alice, "Doomed"), STORE_OK);

	/* the counters met (see above); if this fails the test ran too slowly */
	assert_int_equal(both_m.uidvalidity, both_h.uidvalidity);
	assert_int_not_equal(named_m.uidvalidity, named_h.uidvalidity);

	failover_recs(a, &m, base, &b);
	merge_all(a, base, &b, b.n, false, &st);
	assert_int_equal(st.added, 6);			/* mn1, mn2, 2 copies, n1, n2 */
	assert_int_equal(st.added_renumbered, 1);	/* mb1 */
	assert_int_equal(st.home_renumbered, 1);	/* hb1 */
	assert_int_equal(st.mailboxes_created, 2);	/* Old2 (-> Renamed), New */
	assert_int_equal(st.mailboxes_renamed, 2);
	assert_int_equal(st.mailboxes_deleted, 1);	/* Doomed */
	assert_int_equal(st.lost_to_mailbox_delete, 1);	/* into Gone */
	assert_int_equal(st.expunged, 2);		/* mn1, mn2 from the home's Named */

	/* Both: one UIDVALIDITY to clients, so UID 1 named two messages: both move */
	msgs(a, alice, both_h.id, &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(body_at(&l, 1), "");
	assert_int_equal(count_body(&l, "Subject: hb1\r\n\r\nhome's Both 1\r\n"), 1);
	assert_int_equal(count_body(&l, "Subject: mb1\r\n\r\nmirror's Both 1\r\n"), 1);
	assert_int_equal(vanished(a, alice, both_h.id), 1u << 1);
	uids_consistent(a, &m, alice, both_h.id, both_m.id);
	/* Named: another UIDVALIDITY; the mirror's messages came and went */
	msgs(a, alice, named_h.id, &l);
	assert_int_equal(l.n, 1);
	assert_string_equal(body_at(&l, 1), "Subject: hn1\r\n\r\nhome's Named 1\r\n");
	assert_int_equal(vanished(a, alice, named_h.id), (1u << 2) | (1u << 3));
	/* New: the mirror's UIDVALIDITY (the home gave its id), its UIDs,
	 * keywords by name */
	mb = mbox(a, alice, "New");
	assert_int_not_equal(mb.id, new_m.id);
	assert_int_equal(mb.uidvalidity, new_m.uidvalidity);
	assert_true(mb.subscribed);
	msgs(a, alice, mb.id, &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(body_at(&l, 1), "Subject: n1\r\n\r\nnew 1\r\n");
	assert_string_equal(body_at(&l, 2), "Subject: n2\r\n\r\nnew 2\r\n");
	assert_int_equal(msg_at(&l, 1)->keywords, kwbit(a, alice, mb.id, "Proj2"));
	assert_int_equal(mb.unseen, 1);
	/* Old -> Taken: taken here, so Taken-merged-1; Old2 -> Renamed */
	mb = mbox(a, alice, "Taken-merged-1");
	assert_int_equal(mb.id, old.id);
	assert_int_equal(mb.uidvalidity, old.uidvalidity);
	msgs(a, alice, mb.id, &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(body_at(&l, 1), "Subject: mn1\r\n\r\nmirror's Named 1\r\n");
	assert_string_equal(body_at(&l, 2), "Subject: mn2\r\n\r\nmirror's Named 2\r\n");
	assert_int_equal(store_mailbox_get(a->st, alice, "Old", &mb), STORE_NOTFOUND);
	assert_int_equal(store_mailbox_get(a->st, alice, "Taken", &mb), STORE_OK);
	assert_int_equal(store_mailbox_get(a->st, alice, "Renamed", &mb), STORE_OK);
	assert_int_equal(store_mailbox_get(a->st, alice, "Old2", &mb), STORE_NOTFOUND);
	assert_int_equal(store_mailbox_get(a->st, alice, "Doomed", &mb), STORE_NOTFOUND);
	assert_int_equal(store_mailbox_get(a->st, alice, "Gone", &mb), STORE_NOTFOUND);
	assert_int_equal(store_subscription_foreach(a->st, alice, sub_cb, &subs), 0);
	assert_true(subs.n == 7);	/* the six defaults and New */
	(void)inbox;
	check_counts(a, alice);
	bodies_match(a, alice, 7);	/* hb1, mb1, hn1, n1, n2, mn1, mn2 */
	ship_all(a, &h2);
	assert_same_user(a, &h2, alice);
	drain(a, alice);
	assert_int_equal(bodies(a), 0);
	batch_free(&b);
	mirror_close(&m);
	mirror_close(&h2);
}

/* The mirror's new mailbox gets a new id where the home gave the
 * mirror's, and a new UIDVALIDITY where the home gave that name one as
 * great (RFC 3501: a name reused comes back with a greater one). */
static void test_merge_mailbox_ids(void **state)
{
	struct fx *a = *state, m;
	struct store_merge_stats st;
	struct store_mailbox h, x, y, got;
	struct batchbuf b = { 0 };
	uint32_t alice = user_add(a, "alice", 0);
	uint64_t base;

	mirror_open(a, &m);
	ship_all(a, &m);
	base = store_changelog_last(a->st, ORIGIN);
	assert_int_equal(mbox_create(a, alice, "Recycled", 0, &h), STORE_OK);
	assert_int_equal(mbox_delete(a, alice, "Recycled"), STORE_OK);
	assert_int_equal(mbox_create(&m, alice, "Recycled", 0, &x), STORE_OK);
	assert_int_equal(mbox_create(&m, alice, "Other", 0, &y), STORE_OK);
	assert_int_equal(x.id, h.id);			/* the same counters */
	assert_true(x.uidvalidity <= h.uidvalidity);
	failover_recs(a, &m, base, &b);
	merge_all(a, base, &b, b.n, false, &st);
	assert_int_equal(st.mailboxes_created, 2);
	got = mbox(a, alice, "Recycled");
	assert_int_not_equal(got.id, x.id);		/* the home gave that id */
	assert_true(got.uidvalidity > h.uidvalidity);
	got = mbox(a, alice, "Other");
	assert_int_not_equal(got.id, y.id);		/* Recycled took the next */
	assert_int_equal(got.uidvalidity, y.uidvalidity);
	batch_free(&b);
	mirror_close(&m);
}

/* The mirror deletes a mailbox it made that joined the home's of that
 * name (same UIDVALIDITY): what the merge brought goes, the home's mail
 * stays, and so does the mailbox. */
static void test_merge_joined_delete(void **state)
{
	struct fx *a = *state, m, h2;
	struct store_merge_stats st;
	struct store_mailbox both_h, both_m;
	static struct mlist l;
	struct batchbuf b = { 0 };
	uint32_t alice = user_add(a, "alice", 0), one = 1, inbox;
	uint64_t base;

	inbox = mbox(a, alice, "INBOX").id;
	mirror_open(a, &m);
	mirror_open(a, &h2);
	ship_all(a, &m);
	base = store_changelog_last(a->st, ORIGIN);
	assert_int_equal(mbox_create(a, alice, "Both", 0, &both_h), STORE_OK);
	app(a, alice, both_h.id, "Subject: hb1\r\n\r\nhome's\r\n", 0, NULL);
	assert_int_equal(mbox_create(&m, alice, "Both", 0, &both_m), STORE_OK);
	assert_int_equal(both_m.uidvalidity, both_h.uidvalidity);	/* the counters met */
	app(&m, alice, both_m.id, "Subject: mb1\r\n\r\nmirror's\r\n", 0, NULL);
	copy(&m, alice, both_m.id, &one, 1, inbox, false);	/* the body outlives Both */
	assert_int_equal(mbox_delete(&m, alice, "Both"), STORE_OK);
	failover_recs(a, &m, base, &b);
	merge_all(a, base, &b, b.n, false, &st);
	assert_int_equal(st.mailboxes_deleted, 0);
	assert_int_equal(st.expunged, 1);
	assert_int_equal(st.added, 1);			/* the copy in INBOX */
	assert_int_equal(st.added_renumbered, 1);	/* mb1 in Both */
	assert_int_equal(st.home_renumbered, 1);	/* hb1 */
	msgs(a, alice, mbox(a, alice, "Both").id, &l);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.body[0], "Subject: hb1\r\n\r\nhome's\r\n");
	msgs(a, alice, inbox, &l);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.body[0], "Subject: mb1\r\n\r\nmirror's\r\n");
	check_counts(a, alice);
	ship_all(a, &h2);
	assert_same_user(a, &h2, alice);
	drain(a, alice);
	assert_int_equal(bodies(a), 0);
	batch_free(&b);
	mirror_close(&m);
	mirror_close(&h2);
}

/* ---- users, INBOX rename, equal times ------------------------------------------------- */

static void test_merge_users_and_rename(void **state)
{
	struct fx *a = *state, m, h2;
	struct store_merge_stats st;
	struct batchbuf b = { 0 };
	static struct mlist l;
	struct store_mailbox moved, keep, got;
	struct store_user zed;
	uint32_t alice = user_add(a, "alice", 0), inbox, uid, dave_h;
	struct touched tch = { .n = 0 };
	struct store_user u;
	uint64_t base;
	int64_t home_time = 0;

	inbox = mbox(a, alice, "INBOX").id;
	assert_int_equal(mbox_create(a, alice, "Keep", 0, &keep), STORE_OK);
	app(a, alice, keep.id, "Subject: k1\r\n\r\nkeep 1\r\n", 0, NULL);
	app(a, alice, keep.id, "Subject: k2\r\n\r\nkeep 2\r\n", 0, NULL);
	user_add(a, "bob", 0);
	dlv(a, "alice", "Subject: a1\r\n\r\nalice 1\r\n");
	dlv(a, "alice", "Subject: a2\r\n\r\nalice 2\r\n");
	dlv(a, "bob", "Subject: b1\r\n\r\nbob 1\r\n");
	mirror_open(a, &m);
	mirror_open(a, &h2);
	ship_all(a, &m);
	base = store_changelog_last(a->st, ORIGIN);

	/* the home: adds dave (the directory: the mirror adds zed and dave,
	 * so its ids and the home's cross), flags Keep's 1, deletes bob */
	dave_h = user_add(a, "dave", 0);
	flags(a, alice, keep.id, 1, STORE_FLAGS_ADD, STORE_F_FLAGGED, NULL, 0);
	{
		struct batchbuf hb = { 0 };

		assert_int_equal(store_changelog_foreach(a->st, ORIGIN, base, collect_cb, &hb), 0);
		assert_true(hb.n > 1);
		assert_int_equal(hb.recs[hb.n - 1].c.type, STORE_CH_MSG_FLAGS);
		home_time = hb.recs[hb.n - 1].c.time;
		batch_free(&hb);
	}
	{
		struct done d = { 0 };

		store_user_del(a->st, "bob", done_cb, &d);
		run_until(a, &d.n, 1);
		assert_int_equal(d.err, STORE_OK);
	}
	/* the mirror: bob gets mail, a user the home does not know gets an
	 * account and mail, Keep's 1 is flagged in the same second as the
	 * home did, alice renames INBOX (a move of its messages) and gets
	 * mail */
	dlv(&m, "bob", "Subject: b2\r\n\r\nbob 2\r\n");
	memset(&zed, 0, sizeof(zed));
	strcpy(zed.name, "zed");
	strcpy(zed.home, ORIGIN);
	strcpy(zed.pwhash, "x");
	zed.enabled = true;
	{
		struct done d = { 0 };

		store_user_add(m.st, &zed, done_cb, &d);
		run_until(&m, &d.n, 1);
		assert_int_equal(d.err, STORE_OK);
	}
	dlv(&m, "zed", "Subject: z\r\n\r\nzed\r\n");
	strcpy(zed.name, "dave");
	{
		struct done d = { 0 };

		store_user_add(m.st, &zed, done_cb, &d);
		run_until(&m, &d.n, 1);
		assert_int_equal(d.err, STORE_OK);
	}
	dlv(&m, "dave", "Subject: d\r\n\r\ndave at the mirror\r\n");
	/* the ids crossed: the mirror's zed has the home's dave's */
	assert_int_equal(store_user_get(m.st, "zed", &u), STORE_OK);
	assert_int_equal(u.id, dave_h);
	assert_int_equal(store_user_get(m.st, "dave", &u), STORE_OK);
	assert_int_not_equal(u.id, dave_h);
	flags(&m, alice, keep.id, 1, STORE_FLAGS_ADD, STORE_F_SEEN, NULL, 0);
	flags(&m, alice, keep.id, 2, STORE_FLAGS_ADD, STORE_F_SEEN, NULL, 0);
	flags(&m, alice, inbox, 2, STORE_FLAGS_ADD, STORE_F_ANSWERED, NULL, 0);
	assert_int_equal(mbox_rename(&m, alice, "INBOX", "Moved"), STORE_OK);
	moved = mbox(&m, alice, "Moved");
	uid = dlv(&m, "alice", "Subject: a3\r\n\r\nalice 3\r\n");
	assert_int_equal(uid, 3);

	failover_recs(a, &m, base, &b);
	flags_time(&b, keep.id, 1, home_time);	/* a tie: the home wins */
	store_set_change_observer(a->st, touched_cb, &tch);
	merge_all(a, base, &b, b.n, false, &st);
	store_set_change_observer(a->st, NULL, NULL);
	assert_int_equal(st.flags_lost_to_newer_home_change, 1);
	assert_int_equal(st.flags_applied, 2);	/* Keep 2; INBOX 2, before the rename */
	/* Keep only had a flag change: its sessions are told all the same */
	assert_true(was_touched(&tch, alice, keep.id));
	assert_true(was_touched(&tch, alice, inbox));
	/* bob's b2; zed's six mailboxes and his message */
	assert_int_equal(st.skipped, 8);
	assert_int_equal(st.added, 4);		/* a1, a2 into Moved; a3; dave's */
	assert_int_equal(st.expunged, 2);	/* a1, a2 out of INBOX */
	assert_int_equal(st.mailboxes_created, 1);
	assert_int_equal(store_user_get(a->st, "zed", &zed), STORE_NOTFOUND);
	/* dave's mail went to the home's dave; zed's (the same id) not */
	assert_int_equal(store_user_get(a->st, "dave", &u), STORE_OK);
	assert_int_equal(u.messages, 1);
	check_counts(a, dave_h);
	assert_int_equal(store_user_get(a->st, "bob", &zed), STORE_NOTFOUND);
	msgs(a, alice, keep.id, &l);
	assert_int_equal(msg_at(&l, 1)->flags & ~STORE_F_RECENT, STORE_F_FLAGGED);
	assert_int_equal(msg_at(&l, 2)->flags & ~STORE_F_RECENT, STORE_F_SEEN);
	/* Moved: created by the mirror after B, which gave more ids than the
	 * home: the mirror's id (above the home's next), UIDVALIDITY,
	 * UIDNEXT and UIDs */
	{
		struct store_mailbox dm;

		assert_int_equal(store_mailbox_get(a->st, dave_h, "Archive", &dm), STORE_OK);
		assert_true(moved.id > dm.id + 1);
	}
	got = mbox(a, alice, "Moved");
	assert_int_equal(got.id, moved.id);
	assert_int_equal(got.uidvalidity, moved.uidvalidity);
	assert_int_equal(got.uidnext, 3);
	msgs(a, alice, got.id, &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(body_at(&l, 1), "Subject: a1\r\n\r\nalice 1\r\n");
	assert_string_equal(body_at(&l, 2), "Subject: a2\r\n\r\nalice 2\r\n");
	/* a move carries the flags it had at the mirror */
	assert_int_equal(msg_at(&l, 2)->flags & ~STORE_F_RECENT, STORE_F_ANSWERED);
	msgs(a, alice, inbox, &l);
	assert_int_equal(l.n, 1);
	assert_string_equal(body_at(&l, 3), "Subject: a3\r\n\r\nalice 3\r\n");
	assert_int_equal(mbox(a, alice, "INBOX").uidnext, 4);
	assert_int_equal(vanished(a, alice, inbox), (1u << 1) | (1u << 2));
	check_counts(a, alice);
	ship_all(a, &h2);
	assert_same_user(a, &h2, alice);
	drain(a, alice);
	drain(a, dave_h);
	assert_int_equal(bodies(a), 0);
	batch_free(&b);
	mirror_close(&m);
	mirror_close(&h2);
}

/* ---- refusals ------------------------------------------------------------------------------ */

static void test_merge_refusals(void **state)
{
	struct fx *a = *state, m;
	struct store_merge_stats st;
	struct batchbuf b = { 0 };
	struct store_apply_rec bad, saved;
	uint32_t alice = user_add(a, "alice", 0);
	uint64_t base, last, pb, pp;
	size_t i;

	dlv(a, "alice", "Subject: 1\r\n\r\none\r\n");
	mirror_open(a, &m);
	ship_all(a, &m);
	base = store_changelog_last(a->st, ORIGIN);
	dlv(&m, "alice", "Subject: 2\r\n\r\ntwo\r\n");
	flags(&m, alice, mbox(a, alice, "INBOX").id, 2, STORE_FLAGS_ADD, STORE_F_SEEN, NULL, 0);
	dlv(&m, "alice", "Subject: 3\r\n\r\nthree\r\n");
	failover_recs(a, &m, base, &b);
	assert_int_equal(b.n, 3);
	assert_int_equal(b.recs[0].c.type, STORE_CH_MSG_ADD);
	assert_non_null(b.recs[0].body);
	last = store_changelog_last(a->st, ORIGIN);

	/* not base + 1, a gap, out of order */
	assert_int_equal(merge(a, MIRROR, base + 1, b.recs, b.n, &st), STORE_INVAL);
	assert_int_equal(merge(a, MIRROR, base, b.recs + 1, 2, &st), STORE_INVAL);
	saved = b.recs[1];
	b.recs[1] = b.recs[2];
	b.recs[2] = saved;
	assert_int_equal(merge(a, MIRROR, base, b.recs, b.n, &st), STORE_INVAL);
	b.recs[2] = b.recs[1];
	b.recs[1] = saved;
	/* the wrong origin: the store's own as the mirror, a bad name, a
	 * mirror store (it holds another POP's view of the origin) */
	assert_int_equal(merge(a, ORIGIN, base, b.recs, b.n, &st), STORE_INVAL);
	assert_int_equal(merge(a, "bad/name", base, b.recs, b.n, &st), STORE_INVAL);
	assert_int_equal(merge(&m, MIRROR, base, b.recs, b.n, &st), STORE_INVAL);
	assert_int_equal(store_merge_position(m.st, MIRROR, &pb, &pp), STORE_NOTFOUND);
	/* a base past the home's changelog: another history */
	for (i = 0; i < b.n; i++)
		b.recs[i].c.seq += 100;
	assert_int_equal(merge(a, MIRROR, base + 100, b.recs, b.n, &st), STORE_INVAL);
	for (i = 0; i < b.n; i++)
		b.recs[i].c.seq -= 100;
	/* empty, too many */
	assert_int_equal(merge(a, MIRROR, base, b.recs, 0, &st), STORE_INVAL);
	assert_int_equal(merge(a, MIRROR, base, b.recs, STORE_MERGE_MAX + 1, &st), STORE_INVAL);
	/* an unknown type, a malformed payload: the whole batch refused */
	bad = b.recs[2];
	b.recs[2].c.type = (enum store_change_type)77;
	assert_int_equal(merge(a, MIRROR, base, b.recs, b.n, &st), STORE_INVAL);
	b.recs[2] = bad;
	b.recs[2].c.data_len = 10;
	assert_int_equal(merge(a, MIRROR, base, b.recs, b.n, &st), STORE_INVAL);
	b.recs[2] = bad;
	/* a body that is not the record's; a body neither sent nor held */
	saved = b.recs[0];
	b.recs[0].body = "Subject: 2\r\n\r\ntwX\r\n";
	assert_int_equal(merge(a, MIRROR, base, b.recs, b.n, &st), STORE_INVAL);
	b.recs[0].body = NULL;
	b.recs[0].body_len = 0;
	b.recs[0].meta = NULL;
	b.recs[0].meta_len = 0;
	assert_int_equal(merge(a, MIRROR, base, b.recs, b.n, &st), STORE_NOTFOUND);
	b.recs[0] = saved;
	/* nothing of any of that was written */
	assert_int_equal(store_changelog_last(a->st, ORIGIN), last);
	assert_int_equal(store_merge_position(a->st, MIRROR, &pb, &pp), STORE_NOTFOUND);
	assert_int_equal(mbox(a, alice, "INBOX").messages, 1);
	assert_int_equal(st.added, 0);	/* zeroed on error */

	/* a first call; then the same again, or another base, is refused */
	assert_int_equal(merge(a, MIRROR, base, b.recs, 1, &st), STORE_OK);
	assert_int_equal(st.added, 1);
	last = store_changelog_last(a->st, ORIGIN);
	assert_int_equal(merge(a, MIRROR, base, b.recs, 1, &st), STORE_INVAL);
	assert_int_equal(merge(a, MIRROR, base + 2, b.recs + 2, 1, &st), STORE_INVAL);
	assert_int_equal(store_changelog_last(a->st, ORIGIN), last);
	/* another mirror's merge is its own */
	assert_int_equal(store_merge_position(a->st, "pop-other", &pb, &pp), STORE_NOTFOUND);
	assert_int_equal(merge(a, MIRROR, base + 1, b.recs + 1, 2, &st), STORE_OK);
	assert_int_equal(store_merge_position(a->st, MIRROR, &pb, &pp), STORE_OK);
	assert_int_equal(pb, base);
	assert_int_equal(pp, base + 3);
	assert_int_equal(merge_end(a, MIRROR), STORE_OK);
	assert_int_equal(merge_end(a, MIRROR), STORE_NOTFOUND);
	assert_int_equal(mbox(a, alice, "INBOX").messages, 3);
	batch_free(&b);
	mirror_close(&m);
}

/* ---- the pure rules -------------------------------------------------------------------------- */

static void test_merge_pure(void **state)
{
	struct store_merge_uid_in in = { .uid = 5, .floor = 5, .uidnext = 7, .horizon = 9 };
	char name[STORE_MBOX_MAX], longname[STORE_MBOX_MAX];
	uint32_t uid;
	bool move;

	(void)state;
	/* free: at or above the floor, no message, no tombstone */
	assert_int_equal(store_merge_uid(&in, &uid, &move), STORE_MERGE_UID_KEEP);
	assert_int_equal(uid, 5);
	assert_false(move);
	/* the home used it and expunged it */
	in.home_vanished = true;
	assert_int_equal(store_merge_uid(&in, &uid, &move), STORE_MERGE_UID_NEW);
	assert_int_equal(uid, 9);
	assert_false(move);
	/* the home gave it to another message: both move */
	in.home_vanished = false;
	in.home_msg = true;
	assert_int_equal(store_merge_uid(&in, &uid, &move), STORE_MERGE_UID_NEW);
	assert_int_equal(uid, 9);
	assert_true(move);
	in.uidnext = 12;
	assert_int_equal(store_merge_uid(&in, &uid, &move), STORE_MERGE_UID_NEW);
	assert_int_equal(uid, 12);
	/* the same message below the floor; above it the merge put it there */
	in.home_same = true;
	in.uid = 4;
	assert_int_equal(store_merge_uid(&in, &uid, &move), STORE_MERGE_UID_SAME);
	assert_int_equal(uid, 4);
	assert_false(move);
	in.uid = 5;
	assert_int_equal(store_merge_uid(&in, &uid, &move), STORE_MERGE_UID_NEW);
	assert_true(move);
	/* below the floor without message or tombstone: used all the same */
	in = (struct store_merge_uid_in){ .uid = 2, .floor = 5, .uidnext = 5, .horizon = 3 };
	assert_int_equal(store_merge_uid(&in, &uid, &move), STORE_MERGE_UID_NEW);
	assert_int_equal(uid, 5);

	assert_int_equal(store_merge_name("Taken", 1, name), STORE_OK);
	assert_string_equal(name, "Taken-merged-1");
	assert_int_equal(store_merge_name("a/b", 12, name), STORE_OK);
	assert_string_equal(name, "a/b-merged-12");
	assert_int_equal(store_merge_name("x", 0, name), STORE_INVAL);
	memset(longname, 'n', sizeof(longname) - 5);
	longname[sizeof(longname) - 5] = '\0';
	assert_int_equal(store_merge_name(longname, 1, name), STORE_INVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_merge_one_call, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_merge_chunks, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_merge_mailboxes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_merge_mailbox_ids, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_merge_joined_delete, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_merge_users_and_rename, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_merge_refusals, fx_setup, fx_teardown),
		cmocka_unit_test(test_merge_pure),
	};

	alarm(120);
	evthread_use_pthreads();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
