/*
 * test_store_recent.c - the IMAP \Recent claim mark (store_recent.c):
 *
 *   - no mark reads 0 (also for a mailbox or user that does not exist);
 *   - set / get, and a set never lowers the mark (also two sets in one
 *     group commit, the higher one first);
 *   - a set writes no changelog record, does not touch the mailbox
 *     (highestmodseq) and calls no change observer;
 *   - the mark goes with its mailbox (delete; a rename keeps it, ids
 *     stay) and with its user, and a set on a mailbox that is gone is a
 *     no-op (STORE_NOTFOUND, nothing written);
 *   - it survives a close and reopen, also when the store is closed
 *     before the loop ran the set's callback;
 *   - on a mirror it is not replicated (a mark set at the origin is not
 *     shipped), and the mirror's own marks go when the origin's mailbox
 *     or user delete is applied there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store_fixture.h"

#include "store_history.h"

/* ---- helpers ------------------------------------------------------------------ */

static uint32_t mark(struct fx *f, uint32_t userid, uint32_t mboxid)
{
	uint32_t uid = 12345;

	assert_int_equal(store_recent_get(f->st, userid, mboxid, &uid), STORE_OK);
	return uid;
}

static int mark_set(struct fx *f, uint32_t userid, uint32_t mboxid, uint32_t uid)
{
	struct done d = { 0 };

	store_recent_set(f->st, userid, mboxid, uid, done_cb, &d);
	run_until(f, &d.n, 1);
	return d.err;
}

static void count_change(struct store *st, uint32_t userid, uint32_t mboxid, void *arg)
{
	(void)st;
	(void)userid;
	(void)mboxid;
	(*(int *)arg)++;
}

/* ---- tests --------------------------------------------------------------------- */

static void test_absent(void **state)
{
	struct fx *f = *state;
	uint32_t u = user_add(f, "alice", 0);
	struct store_mailbox in = mbox(f, u, "INBOX");

	assert_int_equal(mark(f, u, in.id), 0);
	assert_int_equal(mark(f, u, in.id + 1000), 0);		/* no such mailbox */
	assert_int_equal(mark(f, u + 1000, in.id), 0);		/* no such user */
}

static void test_set_get_raise(void **state)
{
	struct fx *f = *state;
	uint32_t u = user_add(f, "alice", 0);
	struct store_mailbox in = mbox(f, u, "INBOX"), sent = mbox(f, u, "Sent");
	struct done d1 = { 0 }, d2 = { 0 };
	uint64_t last;
	int changes = 0;

	deliver(f, "alice", "Subject: 1\r\n\r\none\r\n", NULL);
	in = mbox(f, u, "INBOX");
	last = store_changelog_last(f->st, ORIGIN);
	store_set_change_observer(f->st, count_change, &changes);

	assert_int_equal(mark_set(f, u, in.id, 5), STORE_OK);
	assert_int_equal(mark(f, u, in.id), 5);
	assert_int_equal(mark(f, u, sent.id), 0);		/* per mailbox */
	assert_int_equal(mark_set(f, u, in.id, 3), STORE_OK);	/* lower: kept */
	assert_int_equal(mark(f, u, in.id), 5);
	assert_int_equal(mark_set(f, u, in.id, 5), STORE_OK);
	assert_int_equal(mark(f, u, in.id), 5);
	assert_int_equal(mark_set(f, u, in.id, 9), STORE_OK);
	assert_int_equal(mark(f, u, in.id), 9);

	/* both queued before the writer runs: most likely one group commit;
	 * either way the higher one wins */
	store_recent_set(f->st, u, in.id, 12, done_cb, &d1);
	store_recent_set(f->st, u, in.id, 10, done_cb, &d2);
	run_until(f, &d2.n, 1);
	run_until(f, &d1.n, 1);
	assert_int_equal(d1.err, STORE_OK);
	assert_int_equal(d2.err, STORE_OK);
	assert_int_equal(mark(f, u, in.id), 12);

	/* session state, not mail */
	assert_int_equal(store_changelog_last(f->st, ORIGIN), last);
	assert_int_equal(changes, 0);
	assert_int_equal(mbox(f, u, "INBOX").highestmodseq, in.highestmodseq);
	assert_int_equal(mbox(f, u, "INBOX").uidnext, in.uidnext);
	store_set_change_observer(f->st, NULL, NULL);
}

static void test_mailbox_removed(void **state)
{
	struct fx *f = *state;
	uint32_t u = user_add(f, "alice", 0);
	struct store_mailbox in = mbox(f, u, "INBOX"), work, again;
	uint64_t last;

	assert_int_equal(mbox_create(f, u, "Work", 0, &work), STORE_OK);
	assert_int_equal(mark_set(f, u, work.id, 7), STORE_OK);
	assert_int_equal(mark_set(f, u, in.id, 4), STORE_OK);

	/* a rename keeps the mailbox id, and so the mark */
	assert_int_equal(mbox_rename(f, u, "Work", "Job"), STORE_OK);
	assert_int_equal(mbox(f, u, "Job").id, work.id);
	assert_int_equal(mark(f, u, work.id), 7);

	assert_int_equal(mbox_delete(f, u, "Job"), STORE_OK);
	assert_int_equal(mark(f, u, work.id), 0);
	assert_int_equal(mark(f, u, in.id), 4);			/* others stay */

	/* a set on the mailbox that is gone writes nothing */
	last = store_changelog_last(f->st, ORIGIN);
	assert_int_equal(mark_set(f, u, work.id, 8), STORE_NOTFOUND);
	assert_int_equal(mark(f, u, work.id), 0);
	assert_int_equal(mark_set(f, u + 1000, in.id, 8), STORE_NOTFOUND);
	assert_int_equal(mark(f, u + 1000, in.id), 0);
	assert_int_equal(store_changelog_last(f->st, ORIGIN), last);

	/* a new mailbox of the same name is a new id, without a mark */
	assert_int_equal(mbox_create(f, u, "Job", 0, &again), STORE_OK);
	assert_true(again.id != work.id);
	assert_int_equal(mark(f, u, again.id), 0);
}

static void test_user_deleted(void **state)
{
	struct fx *f = *state;
	uint32_t a = user_add(f, "alice", 0), b = user_add(f, "bob", 0);
	struct store_mailbox ain = mbox(f, a, "INBOX"), asent = mbox(f, a, "Sent");
	struct store_mailbox bin = mbox(f, b, "INBOX");
	struct done d = { 0 };

	assert_int_equal(mark_set(f, a, ain.id, 3), STORE_OK);
	assert_int_equal(mark_set(f, a, asent.id, 2), STORE_OK);
	assert_int_equal(mark_set(f, b, bin.id, 6), STORE_OK);
	store_user_del(f->st, "alice", done_cb, &d);
	run_until(f, &d.n, 1);
	assert_int_equal(d.err, STORE_OK);
	assert_int_equal(mark(f, a, ain.id), 0);
	assert_int_equal(mark(f, a, asent.id), 0);
	assert_int_equal(mark(f, b, bin.id), 6);
}

static void test_reopen(void **state)
{
	struct fx *f = *state;
	uint32_t u = user_add(f, "alice", 0);
	struct store_mailbox in = mbox(f, u, "INBOX"), sent = mbox(f, u, "Sent");
	struct done d = { 0 };

	assert_int_equal(mark_set(f, u, in.id, 42), STORE_OK);
	store_close(&f->st);
	assert_int_equal(fx_open(f), 0);
	assert_int_equal(mark(f, u, in.id), 42);

	/* closed before the loop ran the callback: close commits it and
	 * calls back */
	store_recent_set(f->st, u, sent.id, 17, done_cb, &d);
	store_close(&f->st);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.err, STORE_OK);
	assert_int_equal(fx_open(f), 0);
	assert_int_equal(mark(f, u, sent.id), 17);
	assert_int_equal(mark(f, u, in.id), 42);
	assert_int_equal(mark_set(f, u, in.id, 41), STORE_OK);
	assert_int_equal(mark(f, u, in.id), 42);
}

/* A mirror: marks are not shipped; the mirror's own go with the mailbox
 * or user deletes applied from the origin. */
static void test_mirror(void **state)
{
	struct fx *a = *state, b;
	uint32_t u = user_add(a, "alice", 0), v = user_add(a, "bob", 0);
	struct store_mailbox work, in, bin = mbox(a, v, "INBOX");

	mirror_open(a, &b);
	assert_int_equal(mbox_create(a, u, "Work", 0, &work), STORE_OK);
	in = mbox(a, u, "INBOX");
	assert_int_equal(mark_set(a, u, in.id, 9), STORE_OK);
	ship(a, &b, 100, false);
	assert_int_equal(mbox(&b, u, "Work").id, work.id);
	assert_int_equal(mark(&b, u, in.id), 0);		/* not replicated */

	/* the mirror serves in failover: marks of its own */
	assert_int_equal(mark_set(&b, u, work.id, 3), STORE_OK);
	assert_int_equal(mark_set(&b, u, in.id, 4), STORE_OK);
	assert_int_equal(mark_set(&b, v, bin.id, 5), STORE_OK);
	assert_int_equal(mark(a, u, work.id), 0);

	assert_int_equal(mbox_delete(a, u, "Work"), STORE_OK);
	ship(a, &b, 100, false);
	assert_int_equal(mark(&b, u, work.id), 0);
	assert_int_equal(mark(&b, u, in.id), 4);
	user_del(a, "alice");
	ship(a, &b, 100, false);
	assert_int_equal(mark(&b, u, in.id), 0);
	assert_int_equal(mark(&b, v, bin.id), 5);
	assert_int_equal(mark(a, u, in.id), 0);
	mirror_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_absent, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_set_get_raise, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_removed, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_user_deleted, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_reopen, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_mirror, fx_setup, fx_teardown),
	};

	evthread_use_pthreads();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
