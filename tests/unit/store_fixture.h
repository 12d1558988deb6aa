/*
 * store_fixture.h - what the store's tests (test_store_imap*.c,
 * test_store_dir.c) share: a fresh store per test in a temp directory on
 * a thread-enabled event base, helpers that submit one write and run the
 * loop until its callback came back, and consistency checks (unseen
 * counters against a scan).  Everything is static inline so each test
 * binary takes what it uses.  Include after cmocka.h.
 */
#ifndef TEST_STORE_FIXTURE_H
#define TEST_STORE_FIXTURE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "store.h"

#define ORIGIN "pop-test"

struct fx {
	char dir[64];
	struct event_base *base;
	struct store *st;
};

/* Open the store at f->dir as POP origin. */
static inline int fx_open_as(struct fx *f, const char *origin)
{
	struct store_opts o = {
		.dir = f->dir, .map_size = 64 << 20, .origin = origin, .base = f->base,
	};
	const char *error = NULL;
	int rc = store_open(&f->st, &o, &error);

	if (rc != 0)
		fprintf(stderr, "store_open: %s\n", error);
	return rc;
}

static inline int fx_open(struct fx *f)
{
	return fx_open_as(f, ORIGIN);
}

/* Remove the (flat) temp directory dir and what is in it. */
static inline void fx_rmdir(const char *dir)
{
	char path[512];
	struct dirent *e;
	DIR *d;

	if ((d = opendir(dir)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(dir);
}

static inline int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/test_store_imap.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->base = event_base_new();
	if (f->base == NULL || fx_open(f) != 0)
		return -1;
	*state = f;
	return 0;
}

static inline int fx_teardown(void **state)
{
	struct fx *f = *state;

	store_close(&f->st);
	event_base_free(f->base);
	fx_rmdir(f->dir);
	free(f);
	return 0;
}

static inline void run_until(struct fx *f, const int *counter, int target)
{
	while (*counter < target)
		assert_int_equal(event_base_loop(f->base, EVLOOP_ONCE), 0);
}

/* ---- one write, waited for ------------------------------------------------ */

struct done {
	int n;
	int err;
};

static inline void done_cb(int err, void *arg)
{
	struct done *d = arg;

	d->n++;
	d->err = err;
}

static inline uint32_t user_add(struct fx *f, const char *name, uint64_t quota)
{
	struct store_user u = { .quota = quota, .enabled = true };
	struct done d = { 0 };

	strcpy(u.name, name);
	strcpy(u.home, ORIGIN);
	strcpy(u.pwhash, "x");
	store_user_add(f->st, &u, done_cb, &d);
	run_until(f, &d.n, 1);
	assert_int_equal(d.err, STORE_OK);
	assert_int_equal(store_user_get(f->st, name, &u), STORE_OK);
	return u.id;
}

struct mbres {
	int n;
	int err;
	struct store_mailbox mb;
	bool had_mb;
};

static inline void mb_cb(int err, const struct store_mailbox *mb, void *arg)
{
	struct mbres *r = arg;

	r->n++;
	r->err = err;
	r->had_mb = mb != NULL;
	if (mb != NULL)
		r->mb = *mb;
}

static inline int mbox_create(struct fx *f, uint32_t userid, const char *name, uint32_t su,
			      struct store_mailbox *mb_r)
{
	struct mbres r = { 0 };

	store_mailbox_create(f->st, userid, name, su, mb_cb, &r);
	run_until(f, &r.n, 1);
	assert_true(r.had_mb == (r.err == STORE_OK));
	if (mb_r != NULL)
		*mb_r = r.mb;
	return r.err;
}

static inline int mbox_delete(struct fx *f, uint32_t userid, const char *name)
{
	struct done d = { 0 };

	store_mailbox_delete(f->st, userid, name, done_cb, &d);
	run_until(f, &d.n, 1);
	return d.err;
}

static inline int mbox_rename(struct fx *f, uint32_t userid, const char *from, const char *to)
{
	struct done d = { 0 };

	store_mailbox_rename(f->st, userid, from, to, done_cb, &d);
	run_until(f, &d.n, 1);
	return d.err;
}

static inline int subscribe(struct fx *f, uint32_t userid, const char *name, bool on)
{
	struct done d = { 0 };

	store_mailbox_subscribe(f->st, userid, name, on, done_cb, &d);
	run_until(f, &d.n, 1);
	return d.err;
}

static inline struct store_mailbox mbox(struct fx *f, uint32_t userid, const char *name)
{
	struct store_mailbox mb;

	assert_int_equal(store_mailbox_get(f->st, userid, name, &mb), STORE_OK);
	return mb;
}

static inline void deliver_cb(const struct store_rcpt *r, size_t n, void *arg)
{
	struct done *d = arg;

	assert_int_equal(n, 1);
	d->n++;
	d->err = r[0].result == STORE_OK ? (int)r[0].uid : r[0].result;
}

/* Deliver body to user's INBOX with meta; returns the UID. */
static inline uint32_t deliver(struct fx *f, const char *user, const char *body,
			       const char *meta)
{
	struct store_rcpt r = { .user = user, .prefix = "X-P: 1\r\n", .prefix_len = 8 };
	struct store_delivery d = {
		.body = body, .body_len = strlen(body), .internaldate = 1700000000,
		.rcpts = &r, .n_rcpts = 1, .meta = meta, .meta_len = meta ? strlen(meta) : 0,
	};
	struct done res = { 0 };

	store_deliver(f->st, &d, deliver_cb, &res);
	run_until(f, &res.n, 1);
	assert_true(res.err > 0);
	return (uint32_t)res.err;
}

struct appres {
	int n;
	int err;
	uint32_t uidvalidity, uid;
};

static inline void append_cb(int err, uint32_t uidvalidity, uint32_t uid, void *arg)
{
	struct appres *r = arg;

	r->n++;
	r->err = err;
	r->uidvalidity = uidvalidity;
	r->uid = uid;
}

static inline int append(struct fx *f, uint32_t userid, uint32_t mboxid, const char *msg,
			 uint32_t flags, const char *const *kw, size_t n_kw, uint32_t *uid_r)
{
	struct appres r = { 0 };

	store_msg_append(f->st, userid, mboxid, msg, strlen(msg), NULL, 0, flags, kw, n_kw,
			 1600000000, append_cb, &r);
	run_until(f, &r.n, 1);
	if (r.err == STORE_OK)
		assert_true(r.uid > 0);
	else
		assert_int_equal(r.uid, 0);
	if (uid_r != NULL)
		*uid_r = r.uid;
	return r.err;
}

static inline int expunge(struct fx *f, uint32_t userid, uint32_t mboxid,
			  const uint32_t *uids, size_t n)
{
	struct done d = { 0 };

	store_msg_expunge(f->st, userid, mboxid, uids, n, done_cb, &d);
	run_until(f, &d.n, 1);
	return d.err;
}

static inline struct store_msg msg_get(struct fx *f, uint32_t userid, uint32_t mboxid,
				       uint32_t uid)
{
	struct store_msg m;

	assert_int_equal(store_msg_get(f->st, userid, mboxid, uid, &m), STORE_OK);
	return m;
}

static inline uint64_t bodies(struct fx *f)
{
	struct store_stats s;

	store_stats(f->st, &s);
	return s.bodies;
}

/* ---- consistency ------------------------------------------------------------ */

struct scan {
	uint32_t n, unseen;
	uint64_t bytes, maxmodseq;
	uint32_t maxuid;
};

static inline int scan_cb(const struct store_msg *m, void *arg)
{
	struct scan *s = arg;

	s->n++;
	s->bytes += m->size;
	if (!(m->flags & STORE_F_SEEN))
		s->unseen++;
	if (m->modseq > s->maxmodseq)
		s->maxmodseq = m->modseq;
	s->maxuid = m->uid;
	return 0;
}

struct user_scan {
	struct fx *f;
	uint32_t userid;
	uint32_t messages;
	uint64_t bytes;
};

/* Every mailbox's counters match its messages. */
static inline int check_mbox_cb(const struct store_mailbox *mb, void *arg)
{
	struct user_scan *us = arg;
	struct scan s = { 0 };

	assert_int_equal(store_msg_foreach(us->f->st, us->userid, mb->id, scan_cb, &s), 0);
	assert_int_equal(mb->messages, s.n);
	assert_int_equal(mb->unseen, s.unseen);
	assert_int_equal(mb->bytes, s.bytes);
	assert_true(mb->highestmodseq >= s.maxmodseq);
	assert_true(s.n == 0 || mb->uidnext > s.maxuid);
	us->messages += s.n;
	us->bytes += s.bytes;
	return 0;
}

/* Mailbox counters (unseen above all) and the user's totals against a scan. */
static inline void check_counts(struct fx *f, uint32_t userid)
{
	struct user_scan us = { .f = f, .userid = userid };
	struct store_user u;

	assert_int_equal(store_mailbox_foreach(f->st, userid, check_mbox_cb, &us), 0);
	assert_int_equal(store_user_get_by_id(f->st, userid, &u), STORE_OK);
	assert_int_equal(u.messages, us.messages);
	assert_int_equal(u.used, us.bytes);
}

#endif
