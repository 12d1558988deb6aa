/*
 * test_store_apply.c - a mirror applies another POP's changelog
 * (store_apply.c): a realistic history on store A (users added, updated
 * and deleted; mailboxes created, renamed, deleted, INBOX renamed;
 * deliveries with one body to several users, APPEND, flags and keywords,
 * COPY, MOVE, EXPUNGE, subscriptions) is shipped in phases, with batches
 * of several sizes, to mirrors opened with A's origin, which must then
 * equal A in everything a client sees and hold the same changelog.  Also
 * a mirror of the mirror, reopen, and the refusals: gap, re-sent batch,
 * records out of order, a missing or wrong body, a record that does not
 * fit the state, a foreign origin, a mirror written by something else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store_fixture.h"

#include "store_history.h"

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_mirror_equals_origin(void **state)
{
	static void (*const phases[])(struct fx *) = { phase1, phase2, phase3, phase4 };
	/* batch sizes per phase: b and c from A, d from b (a mirror's mirror) */
	static const size_t bb[] = { 1, 3, 7, 4 }, cb[] = { 1000, 2, 5, 1 }, db[] = { 6, 1, 2, 100 };
	struct fx *a = *state;
	struct fx b, c, d;
	size_t i;

	mirror_open(a, &b);
	mirror_open(a, &c);
	mirror_open(a, &d);
	for (i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
		phases[i](a);
		ship(a, &b, bb[i], i % 2 == 0);	/* every body sent, or */
		ship(a, &c, cb[i], i % 2 == 1);	/* only those the mirror lacks */
		ship(&b, &d, db[i], false);
		assert_same(a, &b);
		assert_same(a, &c);
		assert_same(a, &d);
	}

	/* the position survives a reopen, and applying goes on from it */
	store_close(&b.st);
	assert_int_equal(fx_open(&b), 0);
	assert_int_equal(store_applied_seq(b.st, ORIGIN), store_changelog_last(a->st, ORIGIN));
	assert_same(a, &b);
	deliver(a, "alice", "Subject: later\r\n\r\nafter the reopen\r\n", NULL);
	ship(a, &b, 2, false);
	assert_same(a, &b);

	mirror_close(&b);
	mirror_close(&c);
	mirror_close(&d);
}

/* The INBOX rename's new mailbox starts at INBOX's uidnext, and the
 * MAILBOX_ADD record says so. */
static void test_inbox_rename_uidnext(void **state)
{
	struct fx *a = *state, b;
	uint32_t u = user_add(a, "erin", 0), ex[] = { 2 };
	struct store_mailbox in;

	mirror_open(a, &b);
	deliver(a, "erin", "Subject: 1\r\n\r\none\r\n", NULL);
	deliver(a, "erin", "Subject: 2\r\n\r\ntwo\r\n", NULL);
	ship(a, &b, 100, false);	/* while the bodies exist */
	in = mbox(a, u, "INBOX");
	assert_int_equal(expunge(a, u, in.id, ex, 1), STORE_OK);
	assert_int_equal(mbox_rename(a, u, "INBOX", "Moved"), STORE_OK);
	assert_int_equal(mbox(a, u, "Moved").uidnext, 3);
	ship(a, &b, 100, false);
	assert_int_equal(mbox(&b, u, "Moved").uidnext, 3);
	assert_same(a, &b);
	mirror_close(&b);
}

/* RENAME moves a tree of names in one transaction; replayed record by
 * record, a new name can still be held by a mailbox renamed later
 * ("a/b" -> "a": a/b/b/c becomes a/b/c before a/b/c becomes a/c). */
static void test_rename_tree_collision(void **state)
{
	struct fx *a = *state, b, c;
	uint32_t u = user_add(a, "frank", 0);

	mirror_open(a, &b);
	mirror_open(a, &c);
	assert_int_equal(mbox_create(a, u, "a/b/b/c", 0, NULL), STORE_OK);
	assert_int_equal(mbox_create(a, u, "a/b/c", 0, NULL), STORE_OK);
	assert_true(mbox(a, u, "a/b/b/c").id < mbox(a, u, "a/b/c").id);
	assert_int_equal(subscribe(a, u, "a/b/c", true), STORE_OK);
	assert_int_equal(mbox_delete(a, u, "a"), STORE_OK);
	assert_int_equal(mbox_rename(a, u, "a/b", "a"), STORE_OK);
	ship(a, &b, 1, false);		/* every record its own commit */
	ship(a, &c, 1000, false);
	assert_same(a, &b);
	assert_same(a, &c);
	/* and the names work on: delete one that was displaced for a while */
	assert_int_equal(mbox_delete(a, u, "a/c"), STORE_OK);
	assert_int_equal(mbox_rename(a, u, "a/b/c", "x"), STORE_OK);
	ship(a, &b, 1, false);
	assert_same(a, &b);
	mirror_close(&b);
	mirror_close(&c);
}

/* Refusals leave nothing behind. */
static void test_refusals(void **state)
{
	struct fx *a = *state, b, other;
	struct batchbuf r = { 0 };
	struct store_apply_rec bad;
	struct store_user u;
	uint8_t *data;
	size_t i, msg_add = 0;

	mirror_open(a, &b);
	user_add(a, "alice", 0);
	deliver(a, "alice", "Subject: x\r\n\r\nbody x\r\n", "META");
	assert_int_equal(store_changelog_foreach(a->st, ORIGIN, 0, collect_cb, &r), 0);
	assert_true(r.n == 8);	/* USER_ADD, 6 MAILBOX_ADD, MSG_ADD */
	for (i = 0; i < r.n; i++) {
		if (r.recs[i].c.type == STORE_CH_MSG_ADD)
			msg_add = i;
	}
	assert_int_equal(msg_add, 7);

	/* a gap: nothing applied */
	assert_int_equal(apply(&b, ORIGIN, r.recs + 1, 2), STORE_INVAL);
	assert_int_equal(store_applied_seq(b.st, ORIGIN), 0);
	assert_int_equal(store_changelog_last(b.st, ORIGIN), 0);
	assert_int_equal(store_user_get(b.st, "alice", &u), STORE_NOTFOUND);

	/* not consecutive inside the batch */
	bad = r.recs[2];
	r.recs[2] = r.recs[3];
	assert_int_equal(apply(&b, ORIGIN, r.recs, 3), STORE_INVAL);
	r.recs[3] = r.recs[2];
	r.recs[2] = bad;

	/* a foreign origin, an empty batch */
	assert_int_equal(apply(&b, "pop-other", r.recs, 1), STORE_INVAL);
	assert_int_equal(apply(&b, ORIGIN, r.recs, 0), STORE_INVAL);
	assert_int_equal(store_applied_seq(b.st, ORIGIN), 0);

	/* the body missing: the whole batch (user and mailboxes too) refused */
	assert_int_equal(apply(&b, ORIGIN, r.recs, r.n), STORE_NOTFOUND);
	assert_int_equal(store_applied_seq(b.st, ORIGIN), 0);
	assert_int_equal(store_user_get(b.st, "alice", &u), STORE_NOTFOUND);

	/* records up to the MSG_ADD go through; then a re-sent batch is refused */
	assert_int_equal(apply(&b, ORIGIN, r.recs, 7), STORE_OK);
	assert_int_equal(store_applied_seq(b.st, ORIGIN), 7);
	assert_int_equal(apply(&b, ORIGIN, r.recs + 5, 3), STORE_INVAL);
	assert_int_equal(store_applied_seq(b.st, ORIGIN), 7);

	/* a body that is not the record's */
	bad = r.recs[msg_add];
	bad.body = "Subject: x\r\n\r\nbody y\r\n";
	bad.body_len = strlen(bad.body);
	assert_int_equal(apply(&b, ORIGIN, &bad, 1), STORE_INVAL);
	bad.body_len--;
	assert_int_equal(apply(&b, ORIGIN, &bad, 1), STORE_INVAL);

	/* a record that does not fit: MSG_ADD to a mailbox that is not there */
	data = malloc(r.recs[msg_add].c.data_len);
	assert_non_null(data);
	memcpy(data, r.recs[msg_add].c.data, r.recs[msg_add].c.data_len);
	bad = r.recs[msg_add];
	bad.c.mboxid = 999;
	bad.c.data = data;
	attach_bodies(a, &b, &r, msg_add, msg_add + 1, true);
	bad.body = r.recs[msg_add].body;
	bad.body_len = r.recs[msg_add].body_len;
	assert_int_equal(apply(&b, ORIGIN, &bad, 1), STORE_INVAL);
	/* a malformed payload */
	bad.c.mboxid = r.recs[msg_add].c.mboxid;
	bad.c.data_len = 10;
	assert_int_equal(apply(&b, ORIGIN, &bad, 1), STORE_INVAL);
	/* an unknown type */
	bad.c.type = (enum store_change_type)77;
	assert_int_equal(apply(&b, ORIGIN, &bad, 1), STORE_INVAL);
	free(data);
	assert_int_equal(store_applied_seq(b.st, ORIGIN), 7);
	assert_int_equal(store_changelog_last(b.st, ORIGIN), 7);

	/* the real one applies */
	assert_int_equal(apply(&b, ORIGIN, r.recs + msg_add, 1), STORE_OK);
	assert_same(a, &b);

	/* a mirror written by something else is refused */
	user_add(&b, "intruder", 0);
	deliver(a, "alice", "Subject: z\r\n\r\nbody z\r\n", NULL);
	batch_free(&r);
	assert_int_equal(store_changelog_foreach(a->st, ORIGIN, 8, collect_cb, &r), 0);
	assert_int_equal(r.n, 1);
	attach_bodies(a, &b, &r, 0, 1, true);
	assert_int_equal(apply(&b, ORIGIN, r.recs, 1), STORE_INVAL);
	assert_int_equal(store_applied_seq(b.st, ORIGIN), 8);
	batch_free(&r);

	/* a store of another origin applies nothing of this one */
	memset(&other, 0, sizeof(other));
	strcpy(other.dir, "/tmp/test_store_apply.XXXXXX");
	assert_non_null(mkdtemp(other.dir));
	other.base = a->base;
	assert_int_equal(fx_open_as(&other, "pop-other"), 0);
	assert_int_equal(store_changelog_foreach(a->st, ORIGIN, 0, collect_cb, &r), 0);
	assert_int_equal(apply(&other, ORIGIN, r.recs, 1), STORE_INVAL);
	assert_int_equal(store_applied_seq(other.st, ORIGIN), 0);
	batch_free(&r);
	mirror_close(&other);
	mirror_close(&b);
}

/* The shipper's reads: bodies by hash, with their metadata. */
static void test_body_reads(void **state)
{
	struct fx *a = *state;
	struct store_apply_rec r;
	struct store_msg m;
	uint8_t none[STORE_BODY_HASH_LEN] = { 0 };
	uint32_t u = user_add(a, "alice", 0);
	struct store_mailbox in;

	deliver(a, "alice", "Subject: m\r\n\r\nwith meta\r\n", "META-m");
	in = mbox(a, u, "INBOX");
	m = msg_get(a, u, in.id, 1);
	assert_true(store_has_body(a->st, m.hash));
	assert_false(store_has_body(a->st, none));
	memset(&r, 0, sizeof(r));
	assert_int_equal(store_body_read(a->st, m.hash, body_cb, &r), 0);
	assert_int_equal(r.body_len, strlen("Subject: m\r\n\r\nwith meta\r\n"));
	assert_memory_equal(r.body, "Subject: m\r\n\r\nwith meta\r\n", r.body_len);
	assert_int_equal(r.meta_len, 6);
	assert_memory_equal(r.meta, "META-m", 6);
	free((void *)r.body);
	free((void *)r.meta);
	assert_int_equal(store_body_read(a->st, none, body_cb, &r), STORE_NOTFOUND);
	/* gone with its last message */
	assert_int_equal(expunge(a, u, in.id, &m.uid, 1), STORE_OK);
	assert_false(store_has_body(a->st, m.hash));
	assert_int_equal(store_body_read(a->st, m.hash, body_cb, &r), STORE_NOTFOUND);
}

/* A mirror behind while a message came and went at the origin: its
 * MSG_ADD can only be shipped without the body (body_gone); the UID is
 * taken, the later flag change and expunge of it apply, and the mirror
 * ends up as the origin is. */
static void test_body_gone(void **state)
{
	struct fx *a = *state, m;
	struct batchbuf b = { 0 };
	uint32_t u = user_add(a, "alice", 0), gone;
	struct store_mailbox in;

	deliver(a, "alice", "Subject: stays\r\n\r\nstays\r\n", NULL);
	deliver(a, "alice", "Subject: goes\r\n\r\ngoes soon\r\n", NULL);
	in = mbox(a, u, "INBOX");
	gone = 2;
	flags(a, u, in.id, gone, STORE_FLAGS_ADD, STORE_F_SEEN, NULL, 0);
	assert_int_equal(expunge(a, u, in.id, &gone, 1), STORE_OK);
	deliver(a, "alice", "Subject: later\r\n\r\nlater\r\n", NULL);

	mirror_open(a, &m);
	assert_int_equal(store_changelog_foreach(a->st, ORIGIN, 0, collect_cb, &b), 0);
	for (size_t i = 0; i < b.n; i++) {
		struct store_apply_rec *r = &b.recs[i];

		if (r->c.type != STORE_CH_MSG_ADD)
			continue;
		if (store_body_read(a->st, rec_hash(r), body_cb, r) == STORE_NOTFOUND)
			r->body_gone = true;
	}
	/* without the flag the mirror cannot take it */
	for (size_t i = 0; i < b.n; i++)
		if (b.recs[i].body_gone) {
			b.recs[i].body_gone = false;
			assert_int_equal(apply(&m, ORIGIN, b.recs, b.n), STORE_NOTFOUND);
			b.recs[i].body_gone = true;
		}
	assert_int_equal(apply(&m, ORIGIN, b.recs, b.n), STORE_OK);
	assert_same(a, &m);
	batch_free(&b);
	mirror_close(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mirror_equals_origin, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_inbox_rename_uidnext, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_rename_tree_collision, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_refusals, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_body_reads, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_body_gone, fx_setup, fx_teardown),
	};

	alarm(120);
	evthread_use_pthreads();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
