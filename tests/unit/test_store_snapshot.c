/*
 * test_store_snapshot.c - generation, changelog trimming, snapshots and
 * replacing a store (store_generation.c, store_trim.c, store_snapshot.c,
 * store_snapshot_load.c):
 *
 *   - a snapshot of a store with a rich history (store_history.h), read
 *     in steps of one item while the source keeps changing, loaded into
 *     an empty store, equals the source as it was when the snapshot began
 *     (everything a client sees); the source's records after the
 *     snapshot's position then apply to it as to a mirror, after which
 *     it equals the source as it is now;
 *   - the lost disk in small: a mirror's copy is read as a snapshot and
 *     installed as the home's own store (store_replace, in place), which
 *     adopts the generation and position and goes on writing at S+1;
 *     shipped to the mirror, those records apply there;
 *   - trimming deletes records in bounded ops, never past the end, and
 *     store_changelog_last is kept (also across a reopen);
 *   - the loader's refusals, store_replace's conditions, generations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "store_fixture.h"

#include "store_history.h"

/* ---- helpers ------------------------------------------------------------------ */

/* Items copied out of a snapshot (pointers valid after the callback). */
struct items {
	struct store_snap_item *it;
	size_t n, cap;
};

static int keep_cb(const struct store_snap_item *it, void *arg)
{
	struct items *l = arg;
	struct store_snap_item *c;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->it = realloc(l->it, l->cap * sizeof(*l->it));
		assert_non_null(l->it);
	}
	c = &l->it[l->n++];
	*c = *it;
#define DUP(p, len)                                           \
	if (it->p != NULL) {                                  \
		void *q = malloc(it->len + 1);                \
		assert_non_null(q);                           \
		memcpy(q, it->p, it->len);                    \
		c->p = q;                                     \
	}
	DUP(data, data_len)
	DUP(body, body_len)
	DUP(meta, meta_len)
#undef DUP
	return 0;
}

static void items_free(struct items *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free((void *)l->it[i].data);
		free((void *)l->it[i].body);
		free((void *)l->it[i].meta);
	}
	free(l->it);
	memset(l, 0, sizeof(*l));
}

static int load(struct fx *f, const struct store_snap_item *it, size_t n)
{
	struct done d = { 0 };

	store_snap_load(f->st, it, n, done_cb, &d);
	run_until(f, &d.n, 1);
	return d.err;
}

static int finish(struct fx *f, const struct store_snap_info *info, bool mirror)
{
	struct done d = { 0 };

	store_snap_finish(f->st, info, mirror, done_cb, &d);
	run_until(f, &d.n, 1);
	return d.err;
}

/* Load l into f in batches of batch items, then finish. */
static void load_all(struct fx *f, const struct items *l, size_t batch,
		     const struct store_snap_info *info, bool mirror)
{
	for (size_t off = 0; off < l->n; off += batch) {
		size_t k = l->n - off < batch ? l->n - off : batch;

		assert_int_equal(load(f, l->it + off, k), STORE_OK);
	}
	assert_int_equal(finish(f, info, mirror), STORE_OK);
}

/* A fresh store in a new temp directory on a's loop, origin ORIGIN. */
static void fresh(const struct fx *a, struct fx *m)
{
	memset(m, 0, sizeof(*m));
	strcpy(m->dir, "/tmp/test_store_snap.XXXXXX");
	assert_non_null(mkdtemp(m->dir));
	m->base = a->base;
	assert_int_equal(fx_open(m), 0);
}

struct tres {
	int n, err;
	uint64_t trimmed;
};

static void trim_cb(int err, uint64_t trimmed, void *arg)
{
	struct tres *t = arg;

	t->n++;
	t->err = err;
	t->trimmed = trimmed;
}

static uint64_t trim(struct fx *f, uint64_t upto, size_t max)
{
	struct tres t = { 0 };

	store_changelog_trim(f->st, ORIGIN, upto, max, trim_cb, &t);
	run_until(f, &t.n, 1);
	assert_int_equal(t.err, STORE_OK);
	return t.trimmed;
}

static int count_cb(const struct store_change *c, void *arg)
{
	(*(uint64_t *)arg)++;
	return 0;
}

static uint64_t records(struct fx *f)
{
	uint64_t n = 0;

	assert_int_equal(store_changelog_foreach(f->st, ORIGIN, 0, count_cb, &n), 0);
	return n;
}

static void big_body(char *buf, size_t len)
{
	size_t off = (size_t)snprintf(buf, len, "Subject: big\r\n\r\n");

	for (; off + 2 < len; off += 64) {
		size_t k = len - 2 - off < 62 ? len - 2 - off : 62;

		memset(buf + off, 'a' + (char)(off / 64 % 26), k);
		memcpy(buf + off + k, "\r\n", 2);
	}
	buf[len - 1] = '\0';
}

/* ---- tests ------------------------------------------------------------------------ */

/* Read item by item while A changes; load; compare; continue as a mirror. */
static void test_snapshot_equals_source(void **state)
{
	struct fx *a = *state, b, at_snap;
	struct store_snap_info info;
	struct store_snap *sn;
	struct items l = { 0 };
	static char big[300 * 1024];
	char ga[STORE_GEN_HEX], gb[STORE_GEN_HEX];
	int rc, steps = 0;
	uint32_t alice;

	static void (*const phases[])(struct fx *) = { phase1, phase2, phase3, phase4 };

	/* a copy of A as it is when the snapshot begins, for comparing
	 * later (a mirror, shipped while the bodies exist) */
	fresh(a, &at_snap);
	for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
		phases[i](a);
		ship(a, &at_snap, 50, false);
	}
	big_body(big, sizeof(big));
	deliver(a, "alice", big, "META-big");
	ship(a, &at_snap, 50, false);

	assert_int_equal(store_snap_begin(a->st, &sn, &info), STORE_OK);
	assert_int_equal(info.seq, store_changelog_last(a->st, ORIGIN));
	assert_int_equal(store_generation(a->st, ga), STORE_OK);
	assert_string_equal(info.generation, ga);
	assert_true(info.next_userid > 1 && info.next_mboxid > 1 && info.uidvalidity > 0);
	assert_true(info.bytes >= sizeof(big));
	/* a replace cannot happen under a snapshot being read */
	{
		const char *why;

		assert_int_equal(store_replace(a->st, "/nonexistent", &why), STORE_EXISTS);
	}
	/* one item per step, A changing in between: the snapshot does not see it */
	alice = uid_of(a, "alice");
	while ((rc = store_snap_next(sn, 1, keep_cb, &l)) == 1) {
		if (steps++ == 3) {
			deliver(a, "alice", "Subject: during\r\n\r\nduring the snapshot\r\n", NULL);
			assert_int_equal(mbox_create(a, alice, "During", 0, NULL), STORE_OK);
			user_add(a, "erin", 0);
		}
	}
	assert_int_equal(rc, 0);
	assert_true(steps > 40);
	assert_int_equal(store_snap_next(sn, 1000, keep_cb, &l), 0);	/* stays done */
	store_snap_end(&sn);
	assert_null(sn);

	/* the items come in the documented order */
	for (size_t i = 1; i < l.n; i++)
		assert_true(l.it[i - 1].type <= l.it[i].type);
	assert_int_equal(l.it[0].type, STORE_SNAP_BODY);
	assert_int_equal(l.it[l.n - 1].type, STORE_SNAP_MESSAGE);

	fresh(a, &b);
	info.items = l.n;
	load_all(&b, &l, 7, &info, true);
	assert_same_state(&at_snap, &b);
	assert_int_equal(store_changelog_last(b.st, ORIGIN), info.seq);
	assert_int_equal(store_changelog_trimmed(b.st, ORIGIN), info.seq);
	assert_int_equal(store_applied_seq(b.st, ORIGIN), info.seq);
	assert_int_equal(records(&b), 0);	/* the log is not part of it */
	assert_int_equal(store_generation(b.st, gb), STORE_OK);
	assert_string_equal(ga, gb);
	/* the big body and its metadata arrived whole */
	{
		struct store_mailbox in = mbox(&b, alice, "INBOX");
		struct store_msg m = msg_get(&b, alice, in.id, in.uidnext - 1);

		assert_int_equal(m.size, strlen(big) + 8);
	}

	/* the log continues from S+1: B takes A's later records as a mirror */
	ship(a, &b, 3, false);
	assert_same_state(a, &b);
	/* and the id counters came along: the next ids are the same */
	assert_int_equal(user_add(a, "frank", 0), user_add(&b, "frank2", 0));

	items_free(&l);
	mirror_close(&b);
	mirror_close(&at_snap);
}

/* The lost disk in small: the home (R) is rebuilt from its mirror's copy
 * (M) and goes on; the mirror takes what follows. */
static void test_rebuild_home_from_mirror(void **state)
{
	struct fx *a = *state, m, r, staging;
	struct store_snap_info info;
	struct store_snap *sn;
	struct items l = { 0 };
	char ga[STORE_GEN_HEX], gm[STORE_GEN_HEX], gr[STORE_GEN_HEX];
	struct store *before;
	struct done d = { 0 };
	const char *why;
	uint64_t s;

	phase1(a);
	phase2(a);
	fresh(a, &m);
	ship(a, &m, 10, false);
	assert_int_equal(store_generation(a->st, ga), STORE_OK);
	assert_int_equal(store_generation(m.st, gm), STORE_OK);
	assert_string_not_equal(ga, gm);	/* every store starts with its own */
	store_set_generation(m.st, ga, done_cb, &d);	/* as the stream header sets it */
	run_until(&m, &d.n, 1);
	assert_int_equal(d.err, STORE_OK);
	assert_int_equal(store_generation(m.st, gm), STORE_OK);
	assert_string_equal(ga, gm);
	d.n = 0;
	store_set_generation(m.st, "not-a-generation", done_cb, &d);
	run_until(&m, &d.n, 1);
	assert_int_equal(d.err, STORE_INVAL);

	/* A "loses its disk": R is a new, empty home store */
	fresh(a, &r);
	user_add(&r, "placeholder", 0);	/* what dirsync wrote meanwhile: replaced */
	s = store_changelog_last(m.st, ORIGIN);

	/* M's copy, as a snapshot, loaded into a staging store, then installed */
	assert_int_equal(store_snap_begin(m.st, &sn, &info), STORE_OK);
	assert_int_equal(info.seq, s);
	assert_string_equal(info.generation, ga);
	while (store_snap_next(sn, 4096, keep_cb, &l) == 1)
		;
	store_snap_end(&sn);
	fresh(a, &staging);
	load_all(&staging, &l, 1000, &info, false);
	assert_int_equal(store_applied_seq(staging.st, ORIGIN), 0);	/* not a mirror */
	store_close(&staging.st);

	/* busy: an op in flight */
	d.n = 0;
	store_user_del(r.st, "placeholder", done_cb, &d);
	assert_int_equal(store_replace(r.st, staging.dir, &why), STORE_EXISTS);
	run_until(&r, &d.n, 1);
	assert_int_equal(store_replace(r.st, "/nonexistent", &why), STORE_NOTFOUND);
	before = r.st;
	assert_int_equal(store_replace(r.st, staging.dir, &why), STORE_OK);
	assert_ptr_equal(r.st, before);
	{
		struct stat sb;

		assert_int_not_equal(stat(staging.dir, &sb), 0);	/* consumed */
	}
	assert_same_state(&m, &r);
	assert_int_equal(store_generation(r.st, gr), STORE_OK);
	assert_string_equal(gr, ga);
	assert_int_equal(store_changelog_last(r.st, ORIGIN), s);

	/* the rebuilt home writes on at S+1 ... */
	deliver(&r, "alice", "Subject: after\r\n\r\nafter the rebuild\r\n", NULL);
	phase3(&r);
	assert_true(store_changelog_last(r.st, ORIGIN) > s + 1);
	/* ... and its mirror takes it */
	ship(&r, &m, 4, false);
	assert_same_state(&r, &m);
	/* a reopen keeps all of it */
	store_close(&r.st);
	assert_int_equal(fx_open(&r), 0);
	assert_same_state(&r, &m);
	assert_int_equal(store_generation(r.st, gr), STORE_OK);
	assert_string_equal(gr, ga);

	items_free(&l);
	mirror_close(&m);
	mirror_close(&r);
	fx_rmdir(staging.dir);
}

/* Trimming: bounded, never past the end, store_changelog_last kept. */
static void test_trim_keeps_last(void **state)
{
	struct fx *a = *state;
	uint64_t last, n0;

	phase1(a);
	last = store_changelog_last(a->st, ORIGIN);
	n0 = records(a);
	assert_int_equal(n0, last);
	assert_int_equal(store_changelog_trimmed(a->st, ORIGIN), 0);

	assert_int_equal(trim(a, last - 3, 5), 5);		/* bounded */
	assert_int_equal(records(a), last - 5);
	assert_int_equal(trim(a, last - 3, 0), last - 3);	/* the rest of it */
	assert_int_equal(records(a), 3);
	assert_int_equal(store_changelog_trimmed(a->st, ORIGIN), last - 3);
	assert_int_equal(store_changelog_last(a->st, ORIGIN), last);
	assert_int_equal(trim(a, 2, 0), last - 3);		/* never back */
	assert_int_equal(trim(a, UINT64_MAX, 0), last);	/* capped at the end */
	assert_int_equal(records(a), 0);
	assert_int_equal(store_changelog_last(a->st, ORIGIN), last);

	/* the sequence goes on after the end, also across a reopen */
	store_close(&a->st);
	assert_int_equal(fx_open(a), 0);
	assert_int_equal(store_changelog_last(a->st, ORIGIN), last);
	assert_int_equal(store_changelog_trimmed(a->st, ORIGIN), last);
	deliver(a, "alice", "Subject: more\r\n\r\nmore\r\n", NULL);
	assert_int_equal(store_changelog_last(a->st, ORIGIN), last + 1);
	assert_int_equal(records(a), 1);
	{
		struct tres t = { 0 };

		store_changelog_trim(a->st, "", 10, 0, trim_cb, &t);
		run_until(a, &t.n, 1);
		assert_int_equal(t.err, STORE_INVAL);
	}
}

/* The loader refuses what does not fit, and nothing of that op stays. */
static void test_load_refusals(void **state)
{
	struct fx *a = *state, b;
	struct store_snap_info info;
	struct store_snap *sn;
	struct items l = { 0 };
	struct store_snap_item bad;
	size_t first_user = 0, first_mbox = 0, first_msg = 0, i;
	struct store_user u;

	user_add(a, "alice", 0);
	deliver(a, "alice", "Subject: x\r\n\r\nbody x\r\n", "META");
	assert_int_equal(store_snap_begin(a->st, &sn, &info), STORE_OK);
	while (store_snap_next(sn, 1 << 20, keep_cb, &l) == 1)
		;
	store_snap_end(&sn);
	for (i = l.n; i-- > 0;) {
		if (l.it[i].type == STORE_SNAP_USER)
			first_user = i;
		if (l.it[i].type == STORE_SNAP_MAILBOX)
			first_mbox = i;
		if (l.it[i].type == STORE_SNAP_MESSAGE)
			first_msg = i;
	}
	assert_int_equal(first_user, 1);	/* one body, then alice */
	fresh(a, &b);

	/* a message before its body; a mailbox before its user */
	assert_int_equal(load(&b, &l.it[first_msg], 1), STORE_INVAL);
	assert_int_equal(load(&b, &l.it[first_mbox], 1), STORE_INVAL);
	/* a body that is not its hash */
	bad = l.it[0];
	bad.body_len--;
	assert_int_equal(load(&b, &bad, 1), STORE_INVAL);
	/* the user twice in one op: none of it stays */
	assert_int_equal(load(&b, &l.it[first_user], 1), STORE_OK);
	assert_int_equal(store_user_get(b.st, "alice", &u), STORE_OK);
	assert_int_equal(load(&b, &l.it[first_user], 1), STORE_INVAL);
	/* a malformed record */
	bad = l.it[first_mbox];
	bad.data_len -= 1;
	assert_int_equal(load(&b, &bad, 1), STORE_INVAL);
	/* a keyword index out of range, an unknown type */
	bad = l.it[first_msg];
	bad.type = STORE_SNAP_KEYWORD;
	bad.c = STORE_KEYWORDS_MAX;
	bad.data = "kw";
	bad.data_len = 2;
	assert_int_equal(load(&b, &bad, 1), STORE_INVAL);
	bad.type = (enum store_snap_type)42;
	assert_int_equal(load(&b, &bad, 1), STORE_INVAL);
	assert_int_equal(load(&b, l.it, 0), STORE_INVAL);
	/* the rest in order goes through */
	assert_int_equal(load(&b, l.it, 1), STORE_OK);	/* the body */
	assert_int_equal(load(&b, l.it + 2, l.n - 2), STORE_OK);
	/* a finish without a generation is refused */
	{
		struct store_snap_info no = info;

		no.generation[0] = '\0';
		assert_int_equal(finish(&b, &no, true), STORE_INVAL);
	}
	assert_int_equal(finish(&b, &info, true), STORE_OK);
	assert_same_state(a, &b);
	items_free(&l);
	mirror_close(&b);
}

/* Every store has a generation; it survives a reopen. */
static void test_generation(void **state)
{
	struct fx *a = *state;
	char g1[STORE_GEN_HEX], g2[STORE_GEN_HEX];

	assert_int_equal(store_generation(a->st, g1), STORE_OK);
	assert_int_equal(store_generation_check(g1), STORE_OK);
	assert_int_equal(strlen(g1), 32);
	store_close(&a->st);
	assert_int_equal(fx_open(a), 0);
	assert_int_equal(store_generation(a->st, g2), STORE_OK);
	assert_string_equal(g1, g2);
	assert_int_equal(store_generation_check("0123456789abcdef0123456789abcdef"), STORE_OK);
	assert_int_equal(store_generation_check("0123456789ABCDEF0123456789abcdef"), STORE_INVAL);
	assert_int_equal(store_generation_check("0123456789abcdef0123456789abcde"), STORE_INVAL);
	assert_int_equal(store_generation_check("0123456789abcdef0123456789abcdef0"), STORE_INVAL);
	assert_int_equal(store_generation_check(NULL), STORE_INVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_snapshot_equals_source, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_rebuild_home_from_mirror, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_trim_keeps_last, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_load_refusals, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_generation, fx_setup, fx_teardown),
	};

	alarm(120);
	evthread_use_pthreads();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
