/*
 * test_store_dir.c - the directory across POPs (store_dir.c): the record
 * every local user add/update/delete writes (versions, local sequence,
 * tombstones), reading records since a sequence, applying a peer's
 * records (newer wins, older and equal skipped, ties to the greater
 * origin, tombstones delete, the clock follows, the watermark), all of it
 * across a reopen, the format 2 -> 3 upgrade, and two stores syncing each
 * other through the wire codec (dir_wire.h) until they agree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <lmdb.h>

#include "dir_wire.h"
#include "store_fixture.h"

#define HASH "$6$saltsalt$abcdefghij"
#define HASH2 "$5$saltsalt$abcdefghij"

/* ---- helpers ------------------------------------------------------------------------------ */

static int user_write(struct fx *f, int op, const char *name, const char *home, uint64_t quota)
{
	struct store_user u = { .quota = quota, .enabled = true };
	struct done d = { 0 };

	strcpy(u.name, name);
	strcpy(u.home, home);
	strcpy(u.pwhash, HASH);
	if (op == 'a')
		store_user_add(f->st, &u, done_cb, &d);
	else if (op == 'u')
		store_user_update(f->st, &u, done_cb, &d);
	else
		store_user_del(f->st, name, done_cb, &d);
	run_until(f, &d.n, 1);
	return d.err;
}

#define ADD(f, name) user_write(f, 'a', name, ORIGIN, 0)
#define DEL(f, name) user_write(f, 'd', name, "", 0)

static struct store_dir_rec rec(const char *name, uint64_t version, const char *origin,
				bool deleted)
{
	struct store_dir_rec r;

	memset(&r, 0, sizeof(r));
	strcpy(r.u.name, name);
	strcpy(r.u.home, deleted ? "" : "pop-home");
	strcpy(r.u.pwhash, deleted ? "" : HASH2);
	r.u.quota = deleted ? 0 : 12345;
	r.u.enabled = !deleted;
	r.u.id = 999;		/* ignored on apply */
	r.u.used = 777;
	r.version = version;
	strcpy(r.origin, origin);
	r.deleted = deleted;
	return r;
}

static int apply(struct fx *f, const char *peer, uint64_t peer_lseq,
		 const struct store_dir_rec *r, size_t n, size_t *applied_r)
{
	struct done d = { 0 };
	size_t applied = 12345;

	store_dir_apply(f->st, peer, peer_lseq, r, n, &applied, done_cb, &d);
	assert_int_equal(applied, 12345);	/* written on the loop, with cb */
	run_until(f, &d.n, 1);
	if (applied_r != NULL)
		*applied_r = applied;
	return d.err;
}

static int apply1(struct fx *f, struct store_dir_rec r, size_t *applied_r)
{
	return apply(f, "pop-peer", 0, &r, 1, applied_r);
}

struct list {
	size_t n, stop_at;
	struct store_dir_rec r[64];
};

static int collect(const struct store_dir_rec *r, void *arg)
{
	struct list *l = arg;

	assert_true(l->n < 64);
	l->r[l->n++] = *r;
	return l->stop_at != 0 && l->n == l->stop_at;
}

static struct list since(struct fx *f, uint64_t lseq, size_t max)
{
	struct list l;

	memset(&l, 0, sizeof(l));
	assert_int_equal(store_dir_foreach_since(f->st, lseq, max, collect, &l), STORE_OK);
	for (size_t i = 1; i < l.n; i++)
		assert_true(l.r[i].lseq > l.r[i - 1].lseq);
	return l;
}

static struct store_dir_rec get(struct fx *f, const char *name)
{
	struct store_dir_rec r;

	assert_int_equal(store_dir_get(f->st, name, &r), STORE_OK);
	assert_string_equal(r.u.name, name);
	return r;
}

static int count_mb(const struct store_mailbox *mb, void *arg)
{
	(void)mb;
	++*(int *)arg;
	return 0;
}

static int mailboxes(struct fx *f, uint32_t userid)
{
	int n = 0;

	assert_int_equal(store_mailbox_foreach(f->st, userid, count_mb, &n), STORE_OK);
	return n;
}

/* The version the next local change gets is the clock + 1. */
static uint64_t next_local_version(struct fx *f, const char *probe)
{
	assert_int_equal(ADD(f, probe), STORE_OK);
	return get(f, probe).version;
}

/* ---- local ops ---------------------------------------------------------------------------- */

static void test_local_versions(void **state)
{
	struct fx *f = *state;
	struct store_dir_rec r;
	struct store_user u;
	struct list l;

	assert_int_equal(store_dir_lseq(f->st), 0);
	assert_int_equal(store_dir_get(f->st, "alice", &r), STORE_NOTFOUND);
	assert_int_equal(since(f, 0, 0).n, 0);

	assert_int_equal(ADD(f, "alice"), STORE_OK);
	r = get(f, "alice");
	assert_int_equal(r.version, 1);
	assert_int_equal(r.lseq, 1);
	assert_string_equal(r.origin, ORIGIN);
	assert_false(r.deleted);
	assert_string_equal(r.u.pwhash, HASH);
	assert_true(r.u.id != 0);
	assert_int_equal(store_dir_lseq(f->st), 1);

	assert_int_equal(ADD(f, "bob"), STORE_OK);
	assert_int_equal(get(f, "bob").version, 2);
	assert_int_equal(get(f, "bob").lseq, 2);

	assert_int_equal(user_write(f, 'u', "alice", "pop-x", 500), STORE_OK);
	r = get(f, "alice");
	assert_int_equal(r.version, 3);
	assert_int_equal(r.lseq, 3);
	assert_string_equal(r.u.home, "pop-x");
	assert_int_equal(r.u.quota, 500);

	/* bob's delete leaves a tombstone with his last home */
	assert_int_equal(DEL(f, "bob"), STORE_OK);
	assert_int_equal(store_user_get(f->st, "bob", &u), STORE_NOTFOUND);
	r = get(f, "bob");
	assert_true(r.deleted);
	assert_int_equal(r.version, 4);
	assert_int_equal(r.lseq, 4);
	assert_string_equal(r.u.home, ORIGIN);
	assert_string_equal(r.u.pwhash, "");
	assert_int_equal(r.u.id, 0);
	assert_int_equal(store_dir_lseq(f->st), 4);

	/* failed ops write no record */
	assert_int_equal(ADD(f, "alice"), STORE_EXISTS);
	assert_int_equal(user_write(f, 'u', "nobody", "pop-x", 0), STORE_NOTFOUND);
	assert_int_equal(DEL(f, "nobody"), STORE_NOTFOUND);
	assert_int_equal(DEL(f, "bob"), STORE_NOTFOUND);
	assert_int_equal(store_dir_lseq(f->st), 4);
	assert_int_equal(store_dir_get(f->st, "nobody", &r), STORE_NOTFOUND);

	/* one index entry per name: the rewritten ones moved up */
	l = since(f, 0, 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.r[0].u.name, "alice");
	assert_int_equal(l.r[0].lseq, 3);
	assert_string_equal(l.r[1].u.name, "bob");
	assert_int_equal(l.r[1].lseq, 4);
}

static void test_foreach_since(void **state)
{
	struct fx *f = *state;
	static const char *const names[] = { "u1", "u2", "u3", "u4", "u5" };
	struct list l;
	size_t i;

	for (i = 0; i < 5; i++)
		assert_int_equal(ADD(f, names[i]), STORE_OK);
	assert_int_equal(DEL(f, "u2"), STORE_OK);	/* lseq 6 */
	l = since(f, 0, 0);
	assert_int_equal(l.n, 5);
	assert_string_equal(l.r[0].u.name, "u1");
	assert_string_equal(l.r[4].u.name, "u2");
	assert_true(l.r[4].deleted);
	l = since(f, 2, 0);	/* u2 moved to 6: u3, u4, u5, u2 */
	assert_int_equal(l.n, 4);
	assert_int_equal(l.r[0].lseq, 3);
	assert_string_equal(l.r[0].u.name, "u3");
	/* max */
	l = since(f, 0, 2);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.r[1].lseq, 3);
	l = since(f, 3, 1);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.r[0].lseq, 4);
	/* a callback that stops */
	memset(&l, 0, sizeof(l));
	l.stop_at = 3;
	assert_int_equal(store_dir_foreach_since(f->st, 0, 0, collect, &l), STORE_OK);
	assert_int_equal(l.n, 3);
	/* nothing after the last */
	assert_int_equal(since(f, 6, 0).n, 0);
	assert_int_equal(since(f, 1000, 0).n, 0);
	assert_int_equal(since(f, UINT64_MAX, 0).n, 0);
}

/* ---- applying ----------------------------------------------------------------------------- */

static void test_apply_newer_wins(void **state)
{
	struct fx *f = *state;
	struct store_dir_rec r;
	struct store_user u, before;
	struct list l;
	size_t applied;

	/* a new user from a peer, created as store_user_add would */
	assert_int_equal(apply1(f, rec("carol", 10, "pop-b", false), &applied), STORE_OK);
	assert_int_equal(applied, 1);
	assert_int_equal(store_user_get(f->st, "carol", &u), STORE_OK);
	assert_true(u.id != 0 && u.id != 999);
	assert_int_equal(u.used, 0);
	assert_string_equal(u.home, "pop-home");
	assert_string_equal(u.pwhash, HASH2);
	assert_int_equal(u.quota, 12345);
	assert_true(u.enabled);
	assert_true(u.created > 1600000000);
	assert_int_equal(mailboxes(f, u.id), 6);
	assert_int_equal(mbox(f, u.id, "Sent").special_use, STORE_SU_SENT);
	assert_int_equal(mbox(f, u.id, "Archive").special_use, STORE_SU_ARCHIVE);
	assert_true(mbox(f, u.id, "INBOX").subscribed);
	assert_int_equal(deliver(f, "carol", "hi\r\n", NULL), 1);
	r = get(f, "carol");
	assert_int_equal(r.version, 10);
	assert_string_equal(r.origin, "pop-b");
	assert_int_equal(r.lseq, 1);	/* relayed: a local sequence of its own */

	/* the clock passed 10: the next local change outranks it */
	assert_int_equal(next_local_version(f, "dave"), 11);

	/* a newer change of an existing user: home, hash, quota, enabled */
	assert_int_equal(store_user_get(f->st, "dave", &before), STORE_OK);
	r = rec("dave", 12, "pop-a", false);
	r.u.enabled = false;
	assert_int_equal(apply1(f, r, &applied), STORE_OK);
	assert_int_equal(applied, 1);
	assert_int_equal(store_user_get(f->st, "dave", &u), STORE_OK);
	assert_int_equal(u.id, before.id);
	assert_int_equal(u.created, before.created);
	assert_string_equal(u.home, "pop-home");
	assert_string_equal(u.pwhash, HASH2);
	assert_int_equal(u.quota, 12345);
	assert_false(u.enabled);
	assert_int_equal(mailboxes(f, u.id), 6);
	r = get(f, "dave");
	assert_int_equal(r.version, 12);
	assert_string_equal(r.origin, "pop-a");
	assert_int_equal(r.lseq, 3);
	l = since(f, 0, 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.r[0].u.name, "carol");
	assert_string_equal(l.r[1].u.name, "dave");
	assert_int_equal(store_dir_lseq(f->st), 3);
	check_counts(f, get(f, "carol").u.id);
}

static void test_apply_older_skipped(void **state)
{
	struct fx *f = *state;
	struct store_dir_rec recs[3];
	struct store_user u;
	size_t applied;

	assert_int_equal(ADD(f, "alice"), STORE_OK);
	assert_int_equal(user_write(f, 'u', "alice", "pop-x", 7), STORE_OK);	/* version 2 */
	assert_int_equal(get(f, "alice").version, 2);

	recs[0] = rec("alice", 1, "pop-z", false);
	recs[1] = rec("alice", 1, "pop-a", true);
	recs[2] = rec("alice", 2, ORIGIN, false);	/* the same change again */
	assert_int_equal(apply(f, "pop-peer", 0, recs, 3, &applied), STORE_OK);
	assert_int_equal(applied, 0);
	assert_int_equal(store_user_get(f->st, "alice", &u), STORE_OK);
	assert_string_equal(u.home, "pop-x");
	assert_int_equal(u.quota, 7);
	assert_int_equal(get(f, "alice").version, 2);
	assert_int_equal(get(f, "alice").lseq, 2);
	assert_int_equal(store_dir_lseq(f->st), 2);	/* nothing rewritten */

	/* an empty apply is fine too */
	assert_int_equal(apply(f, "pop-peer", 0, NULL, 0, &applied), STORE_OK);
	assert_int_equal(applied, 0);

	/* in one batch, the later of two changes of a name is compared with the first */
	recs[0] = rec("zed", 5, "pop-a", false);
	recs[1] = rec("zed", 4, "pop-a", true);
	recs[2] = rec("zed", 6, "pop-a", true);
	assert_int_equal(apply(f, "pop-peer", 0, recs, 3, &applied), STORE_OK);
	assert_int_equal(applied, 2);
	assert_true(get(f, "zed").deleted);
	assert_int_equal(get(f, "zed").version, 6);
	assert_int_equal(store_user_get(f->st, "zed", &u), STORE_NOTFOUND);
}

static void test_apply_tie_origin(void **state)
{
	struct fx *f = *state;
	struct store_user u;
	size_t applied;

	assert_int_equal(ADD(f, "alice"), STORE_OK);	/* version 1, origin "pop-test" */
	/* same version, smaller origin: skipped */
	assert_int_equal(apply1(f, rec("alice", 1, "pop-a", false), &applied), STORE_OK);
	assert_int_equal(applied, 0);
	assert_int_equal(store_user_get(f->st, "alice", &u), STORE_OK);
	assert_string_equal(u.home, ORIGIN);
	/* same version, greater origin: wins */
	assert_int_equal(apply1(f, rec("alice", 1, "pop-z", false), &applied), STORE_OK);
	assert_int_equal(applied, 1);
	assert_int_equal(store_user_get(f->st, "alice", &u), STORE_OK);
	assert_string_equal(u.home, "pop-home");
	assert_string_equal(get(f, "alice").origin, "pop-z");
	/* and now the local origin is the smaller one */
	assert_int_equal(apply1(f, rec("alice", 1, ORIGIN, true), &applied), STORE_OK);
	assert_int_equal(applied, 0);
	assert_int_equal(store_user_get(f->st, "alice", &u), STORE_OK);
}

static void test_apply_tombstone(void **state)
{
	struct fx *f = *state;
	uint32_t id = user_add(f, "alice", 0);
	struct store_dir_rec r;
	struct store_user u;
	size_t applied;

	deliver(f, "alice", "one\r\n", NULL);
	deliver(f, "alice", "two\r\n", "meta");
	assert_int_equal(mbox_create(f, id, "Work/Old", 0, NULL), STORE_OK);
	assert_int_equal(mailboxes(f, id), 8);
	assert_int_equal(bodies(f), 2);

	assert_int_equal(apply1(f, rec("alice", 50, "pop-b", true), &applied), STORE_OK);
	assert_int_equal(applied, 1);
	assert_int_equal(store_user_get(f->st, "alice", &u), STORE_NOTFOUND);
	assert_int_equal(store_user_get_by_id(f->st, id, &u), STORE_NOTFOUND);
	assert_int_equal(mailboxes(f, id), 0);
	assert_int_equal(bodies(f), 0);
	r = get(f, "alice");
	assert_true(r.deleted);
	assert_int_equal(r.version, 50);
	assert_string_equal(r.origin, "pop-b");
	assert_string_equal(r.u.home, ORIGIN);	/* the peer sent none; ours is kept */

	/* an older live record does not bring alice back */
	assert_int_equal(apply1(f, rec("alice", 49, "pop-z", false), &applied), STORE_OK);
	assert_int_equal(applied, 0);
	assert_int_equal(store_user_get(f->st, "alice", &u), STORE_NOTFOUND);

	/* a tombstone for a name never seen here is kept (and relayed) */
	r = rec("ghost", 3, "pop-b", true);
	strcpy(r.u.home, "pop-g");
	assert_int_equal(apply1(f, r, &applied), STORE_OK);
	assert_int_equal(applied, 1);
	assert_int_equal(store_user_get(f->st, "ghost", &u), STORE_NOTFOUND);
	r = get(f, "ghost");
	assert_true(r.deleted);
	assert_string_equal(r.u.home, "pop-g");
	assert_int_equal(r.lseq, store_dir_lseq(f->st));
	/* and an older add of it is refused */
	assert_int_equal(apply1(f, rec("ghost", 2, "pop-z", false), &applied), STORE_OK);
	assert_int_equal(applied, 0);
}

static void test_add_after_tombstone(void **state)
{
	struct fx *f = *state;
	struct store_dir_rec r;
	struct store_user u;
	uint32_t old_id = user_add(f, "alice", 0);
	size_t applied;

	/* deleted here, added again here */
	assert_int_equal(DEL(f, "alice"), STORE_OK);
	assert_int_equal(get(f, "alice").version, 2);
	assert_int_equal(ADD(f, "alice"), STORE_OK);
	r = get(f, "alice");
	assert_false(r.deleted);
	assert_int_equal(r.version, 3);
	assert_true(r.u.id != old_id);
	assert_int_equal(mailboxes(f, r.u.id), 6);

	/* deleted by a peer far ahead, added again here: above the tombstone */
	assert_int_equal(apply1(f, rec("alice", 1000, "pop-b", true), &applied), STORE_OK);
	assert_int_equal(applied, 1);
	assert_int_equal(store_user_get(f->st, "alice", &u), STORE_NOTFOUND);
	assert_int_equal(ADD(f, "alice"), STORE_OK);
	r = get(f, "alice");
	assert_false(r.deleted);
	assert_int_equal(r.version, 1001);
	assert_string_equal(r.origin, ORIGIN);
	assert_int_equal(mailboxes(f, r.u.id), 6);

	/* a newer live record from a peer after a tombstone recreates the user */
	assert_int_equal(DEL(f, "alice"), STORE_OK);
	assert_int_equal(apply1(f, rec("alice", 1003, "pop-b", false), &applied), STORE_OK);
	assert_int_equal(applied, 1);
	assert_int_equal(store_user_get(f->st, "alice", &u), STORE_OK);
	assert_int_equal(mailboxes(f, u.id), 6);
}

static void test_watermark_and_reopen(void **state)
{
	struct fx *f = *state;
	struct store_dir_rec recs[2] = { rec("carol", 20, "pop-b", false),
					 rec("dan", 21, "pop-c", true) };
	size_t applied;
	uint32_t alice;
	struct list l;

	assert_int_equal(store_dir_peer_lseq(f->st, "pop-b"), 0);
	assert_int_equal(store_dir_peer_lseq(f->st, NULL), 0);
	assert_int_equal(store_dir_peer_lseq(f->st, ""), 0);
	alice = user_add(f, "alice", 0);
	assert_int_equal(apply(f, "pop-b", 7, recs, 2, &applied), STORE_OK);
	assert_int_equal(applied, 2);
	assert_int_equal(store_dir_peer_lseq(f->st, "pop-b"), 7);
	/* never lowered; stale records still move it up */
	assert_int_equal(apply(f, "pop-b", 5, recs, 2, &applied), STORE_OK);
	assert_int_equal(applied, 0);
	assert_int_equal(store_dir_peer_lseq(f->st, "pop-b"), 7);
	assert_int_equal(apply(f, "pop-b", 9, recs, 2, &applied), STORE_OK);
	assert_int_equal(store_dir_peer_lseq(f->st, "pop-b"), 9);
	assert_int_equal(apply(f, "pop-c", 3, NULL, 0, &applied), STORE_OK);
	assert_int_equal(store_dir_peer_lseq(f->st, "pop-c"), 3);
	assert_int_equal(store_dir_peer_lseq(f->st, "pop-d"), 0);
	assert_int_equal(store_dir_lseq(f->st), 3);

	/* everything survives a reopen: records, index, counters, watermarks */
	store_close(&f->st);
	assert_int_equal(fx_open(f), 0);
	assert_int_equal(store_dir_lseq(f->st), 3);
	assert_int_equal(store_dir_peer_lseq(f->st, "pop-b"), 9);
	assert_int_equal(store_dir_peer_lseq(f->st, "pop-c"), 3);
	l = since(f, 0, 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.r[0].u.name, "alice");
	assert_int_equal(l.r[0].u.id, alice);
	assert_int_equal(l.r[0].version, 1);
	assert_string_equal(l.r[1].u.name, "carol");
	assert_int_equal(l.r[1].version, 20);
	assert_string_equal(l.r[1].origin, "pop-b");
	assert_string_equal(l.r[2].u.name, "dan");
	assert_true(l.r[2].deleted);
	assert_string_equal(l.r[2].origin, "pop-c");
	/* the clock too: the next local change is above 21 */
	assert_int_equal(next_local_version(f, "erin"), 22);
	assert_int_equal(get(f, "erin").lseq, 4);
}

static void test_apply_inval(void **state)
{
	struct fx *f = *state;
	struct store_dir_rec r = rec("alice", 1, "pop-b", false), bad;
	char longname[STORE_POP_MAX + 1];
	size_t applied;

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(apply(f, NULL, 0, &r, 1, &applied), STORE_INVAL);
	assert_int_equal(applied, 0);
	assert_int_equal(apply(f, "", 0, &r, 1, &applied), STORE_INVAL);
	assert_int_equal(apply(f, longname, 0, &r, 1, &applied), STORE_INVAL);
	assert_int_equal(apply(f, "pop-b", 0, NULL, 1, &applied), STORE_INVAL);
	assert_int_equal(apply(f, "pop-b", 0, &r, STORE_DIR_APPLY_MAX + 1, &applied),
			 STORE_INVAL);
	bad = r;
	bad.version = 0;
	assert_int_equal(apply(f, "pop-b", 0, &bad, 1, &applied), STORE_INVAL);
	bad = r;
	bad.origin[0] = '\0';
	assert_int_equal(apply(f, "pop-b", 0, &bad, 1, &applied), STORE_INVAL);
	bad = r;
	memset(bad.origin, 'x', sizeof(bad.origin));
	assert_int_equal(apply(f, "pop-b", 0, &bad, 1, &applied), STORE_INVAL);
	bad = r;
	bad.u.name[0] = '\0';
	assert_int_equal(apply(f, "pop-b", 0, &bad, 1, &applied), STORE_INVAL);
	bad = r;
	memset(bad.u.home, 'h', sizeof(bad.u.home));
	assert_int_equal(apply(f, "pop-b", 0, &bad, 1, &applied), STORE_INVAL);
	bad = r;
	memset(bad.u.pwhash, 'p', sizeof(bad.u.pwhash));
	assert_int_equal(apply(f, "pop-b", 0, &bad, 1, &applied), STORE_INVAL);
	/* a bad record refuses the whole call, the good ones included */
	{
		struct store_dir_rec two[2] = { r, bad };

		assert_int_equal(apply(f, "pop-b", 4, two, 2, &applied), STORE_INVAL);
	}
	assert_int_equal(store_dir_lseq(f->st), 0);
	assert_int_equal(store_dir_peer_lseq(f->st, "pop-b"), 0);
	assert_int_equal(store_dir_get(f->st, "alice", &r), STORE_NOTFOUND);
	/* NULL n_applied_r and NULL cb are allowed */
	r = rec("alice", 1, "pop-b", false);
	store_dir_apply(f->st, "pop-b", 1, &r, 1, NULL, NULL, NULL);
	assert_int_equal(apply(f, "pop-b", 0, NULL, 0, NULL), STORE_OK);	/* after it */
	assert_int_equal(get(f, "alice").version, 1);
}

static void test_apply_commit_failure(void **state)
{
	struct fx *f = *state;
	struct store_dir_rec r = rec("alice", 5, "pop-b", false);
	struct store_user u;
	size_t applied;

	store_inject_commit_failures(f->st, 1);
	assert_int_equal(apply(f, "pop-b", 3, &r, 1, &applied), STORE_IO);
	assert_int_equal(applied, 0);
	assert_int_equal(store_user_get(f->st, "alice", &u), STORE_NOTFOUND);
	assert_int_equal(store_dir_get(f->st, "alice", &r), STORE_NOTFOUND);
	assert_int_equal(store_dir_peer_lseq(f->st, "pop-b"), 0);
	assert_int_equal(store_dir_lseq(f->st), 0);
	/* and the same records again, successfully */
	r = rec("alice", 5, "pop-b", false);
	assert_int_equal(apply(f, "pop-b", 3, &r, 1, &applied), STORE_OK);
	assert_int_equal(applied, 1);
	assert_int_equal(store_dir_peer_lseq(f->st, "pop-b"), 3);
}

/* A whole directory in one call (a new POP's first pull). */
static void test_apply_bulk(void **state)
{
	struct fx *f = *state;
	const size_t n = 3000;
	struct store_dir_rec *recs = calloc(n, sizeof(*recs));
	struct store_stats s;
	struct store_user u;
	size_t i, applied;
	char name[32];

	assert_non_null(recs);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "user%zu", i);
		recs[i] = rec(name, 100 + i, "pop-b", i % 10 == 9);
	}
	assert_int_equal(apply(f, "pop-b", n, recs, n, &applied), STORE_OK);
	assert_int_equal(applied, n);
	store_stats(f->st, &s);
	assert_int_equal(s.users, n - n / 10);
	assert_int_equal(store_dir_lseq(f->st), n);
	assert_int_equal(store_user_get(f->st, "user2998", &u), STORE_OK);
	assert_int_equal(mailboxes(f, u.id), 6);
	assert_int_equal(store_user_get(f->st, "user2999", &u), STORE_NOTFOUND);
	assert_int_equal(next_local_version(f, "probe"), 100 + n);
	free(recs);
}

/* ---- format 2 -> 3 -------------------------------------------------------------------------- */

/* Turn the closed environment at dir back into format 2: no directory
 * records, counters or watermarks. */
static void downgrade_to_format2(const char *dir)
{
	static const char *const keys[] = { "dir_clock", "dir_lseq", "dirpeer/pop-b" };
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta, dbi;
	MDB_val k, v;
	uint8_t fmt = 2;
	size_t i;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 64 << 20), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	assert_int_equal(mdb_dbi_open(txn, "dirrecs", 0, &dbi), 0);
	assert_int_equal(mdb_drop(txn, dbi, 1), 0);
	assert_int_equal(mdb_dbi_open(txn, "dirseq", 0, &dbi), 0);
	assert_int_equal(mdb_drop(txn, dbi, 1), 0);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		k.mv_size = strlen(keys[i]);
		k.mv_data = (void *)keys[i];
		assert_int_equal(mdb_del(txn, meta, &k, NULL), 0);
	}
	k.mv_size = 6;
	k.mv_data = "format";
	v.mv_size = 1;
	v.mv_data = &fmt;
	assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void test_upgrade_from_format2(void **state)
{
	struct fx *f = *state;
	struct store_dir_rec r = rec("zoe", 9, "pop-b", false);
	uint32_t alice, bob;
	size_t applied;
	struct list l;

	alice = user_add(f, "alice", 0);
	bob = user_add(f, "bob", 0);
	assert_int_equal(apply(f, "pop-b", 4, &r, 1, &applied), STORE_OK);
	assert_int_equal(DEL(f, "zoe"), STORE_OK);
	store_close(&f->st);
	downgrade_to_format2(f->dir);

	assert_int_equal(fx_open(f), 0);
	/* every user got a record: version 1, this POP, in name order */
	l = since(f, 0, 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.r[0].u.name, "alice");
	assert_int_equal(l.r[0].u.id, alice);
	assert_int_equal(l.r[0].version, 1);
	assert_int_equal(l.r[0].lseq, 1);
	assert_string_equal(l.r[0].origin, ORIGIN);
	assert_false(l.r[0].deleted);
	assert_string_equal(l.r[1].u.name, "bob");
	assert_int_equal(l.r[1].u.id, bob);
	assert_int_equal(l.r[1].lseq, 2);
	assert_int_equal(store_dir_lseq(f->st), 2);
	/* the mail is untouched */
	assert_int_equal(mailboxes(f, alice), 6);
	/* it is format 3 now: a second open changes nothing */
	store_close(&f->st);
	assert_int_equal(fx_open(f), 0);
	assert_int_equal(store_dir_lseq(f->st), 2);
	assert_int_equal(next_local_version(f, "carl"), 2);
	/* a peer's version 1 of alice with a greater origin wins the tie */
	r = rec("alice", 1, "pop-z", false);
	assert_int_equal(apply1(f, r, &applied), STORE_OK);
	assert_int_equal(applied, 1);
}

/* ---- two POPs through the wire -------------------------------------------------------------- */

struct pull {
	struct store_dir_rec *recs;
	size_t n, cap;
	uint64_t last;
};

/* Through the text codec, as a peer would send it. */
static int pull_cb(const struct store_dir_rec *r, void *arg)
{
	struct pull *p = arg;
	char line[DIR_WIRE_LINE_MAX + 1];
	int len = dir_wire_encode(r, line, sizeof(line));

	assert_true(len > 0);
	assert_true(p->n < p->cap);
	assert_int_equal(dir_wire_decode(line, (size_t)len, &p->recs[p->n]), 0);
	assert_int_equal(p->recs[p->n].lseq, r->lseq);
	p->last = r->lseq;
	p->n++;
	return 0;
}

/* to pulls everything new from `from` (POP id from_id); returns how many won. */
static size_t sync_once(struct fx *to, struct fx *from, const char *from_id)
{
	struct store_dir_rec recs[32];
	struct pull p = { .recs = recs, .cap = 32 };
	size_t applied;

	p.last = store_dir_peer_lseq(to->st, from_id);
	assert_int_equal(store_dir_foreach_since(from->st, p.last, 32, pull_cb, &p), STORE_OK);
	assert_int_equal(apply(to, from_id, p.last, recs, p.n, &applied), STORE_OK);
	assert_int_equal(store_dir_peer_lseq(to->st, from_id), p.last);
	return applied;
}

static int same_user(struct fx *a, struct fx *b, const char *name)
{
	struct store_dir_rec x = get(a, name), y = get(b, name);

	assert_int_equal(x.version, y.version);
	assert_string_equal(x.origin, y.origin);
	assert_int_equal(x.deleted, y.deleted);
	assert_string_equal(x.u.home, y.u.home);
	if (!x.deleted) {
		assert_string_equal(x.u.pwhash, y.u.pwhash);
		assert_int_equal(x.u.quota, y.u.quota);
		assert_int_equal(x.u.enabled, y.u.enabled);
	}
	return x.deleted;
}

static void test_two_pops_converge(void **state)
{
	struct fx *a = *state, b = { .base = a->base };
	struct store_user u;
	static const char *const names[] = { "alice", "bob", "carol", "dave" };
	size_t i;

	/* a second POP on the same loop */
	strcpy(b.dir, "/tmp/test_store_dir.XXXXXX");
	assert_non_null(mkdtemp(b.dir));
	assert_int_equal(fx_open_as(&b, "pop-b"), 0);

	assert_int_equal(ADD(a, "alice"), STORE_OK);		/* a: v1 */
	assert_int_equal(ADD(a, "bob"), STORE_OK);		/* a: v2 */
	assert_int_equal(ADD(&b, "carol"), STORE_OK);		/* b: v1 */
	assert_int_equal(ADD(&b, "bob"), STORE_OK);		/* b: v2 */
	assert_int_equal(user_write(&b, 'u', "bob", "pop-b", 42), STORE_OK);	/* b: v3 */
	assert_int_equal(ADD(&b, "dave"), STORE_OK);		/* b: v4 */
	assert_int_equal(DEL(&b, "dave"), STORE_OK);		/* b: v5 */

	/* b takes alice; a's bob (v2) loses to b's (v3) */
	assert_int_equal(sync_once(&b, a, ORIGIN), 1);
	/* a takes carol, bob v3, dave's tombstone; alice, relayed back, is equal */
	assert_int_equal(sync_once(a, &b, "pop-b"), 3);
	/* what a relays back to b is equal too: nothing moves any more */
	assert_int_equal(sync_once(&b, a, ORIGIN), 0);
	assert_int_equal(sync_once(a, &b, "pop-b"), 0);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		same_user(a, &b, names[i]);
	assert_int_equal(store_user_get(a->st, "bob", &u), STORE_OK);
	assert_int_equal(u.quota, 42);
	assert_int_equal(store_user_get(a->st, "dave", &u), STORE_NOTFOUND);

	/* concurrent changes of one name: the greater version, then origin, wins */
	assert_int_equal(user_write(a, 'u', "alice", "pop-a1", 1), STORE_OK);
	assert_int_equal(user_write(&b, 'u', "alice", "pop-b1", 2), STORE_OK);
	assert_int_equal(get(a, "alice").version, get(&b, "alice").version);
	sync_once(&b, a, ORIGIN);
	sync_once(a, &b, "pop-b");
	sync_once(&b, a, ORIGIN);
	same_user(a, &b, "alice");
	assert_string_equal(get(a, "alice").origin, ORIGIN);	/* "pop-test" > "pop-b" */
	assert_string_equal(get(a, "alice").u.home, "pop-a1");

	/* a delete on one side and a later re-add on the other */
	assert_int_equal(DEL(a, "carol"), STORE_OK);
	sync_once(&b, a, ORIGIN);
	assert_int_equal(store_user_get(b.st, "carol", &u), STORE_NOTFOUND);
	assert_int_equal(ADD(&b, "carol"), STORE_OK);
	sync_once(a, &b, "pop-b");
	assert_int_equal(store_user_get(a->st, "carol", &u), STORE_OK);
	assert_int_equal(mailboxes(a, u.id), 6);
	same_user(a, &b, "carol");

	store_close(&b.st);
	fx_rmdir(b.dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_local_versions, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_foreach_since, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_apply_newer_wins, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_apply_older_skipped, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_apply_tie_origin, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_apply_tombstone, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_add_after_tombstone, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_watermark_and_reopen, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_apply_inval, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_apply_commit_failure, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_apply_bulk, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_from_format2, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_two_pops_converge, fx_setup, fx_teardown),
	};

	alarm(120);
	evthread_use_pthreads();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
