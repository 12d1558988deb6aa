/*
 * test_store.c - the LMDB mail store: directory, delivery, quota, body
 * dedup, expunge, changelog, group commit, injected commit failures,
 * crash recovery (a child SIGKILLed mid-load) and close semantics.
 *
 * Each test gets a fresh directory under /tmp, a thread-enabled event
 * base and an open store.  Write callbacks are driven by running the loop
 * until a counter reaches its target; alarm() bounds every test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "log.h"
#include "store.h"

#define ORIGIN "pop-test"

struct fx {
	char dir[64];
	struct event_base *base;
	struct store *st;
};

static int open_store(struct fx *f, uint64_t map_size)
{
	struct store_opts o = {
		.dir = f->dir, .map_size = map_size, .origin = ORIGIN, .base = f->base,
	};
	const char *error = NULL;
	int rc = store_open(&f->st, &o, &error);

	if (rc != 0)
		fprintf(stderr, "store_open: %s\n", error);
	return rc;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/test_store.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->base = event_base_new();
	if (f->base == NULL || open_store(f, 64 << 20) != 0)
		return -1;
	*state = f;
	return 0;
}

static void rm_dir(const char *dir)
{
	char path[512];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_close(&f->st);
	event_base_free(f->base);
	rm_dir(f->dir);
	free(f);
	return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static void run_until(struct fx *f, const int *counter, int target)
{
	while (*counter < target)
		assert_int_equal(event_base_loop(f->base, EVLOOP_ONCE), 0);
}

struct done {
	int n;
	int err;
};

static void done_cb(int err, void *arg)
{
	struct done *d = arg;

	d->n++;
	d->err = err;
}

static int user_add(struct fx *f, const char *name, uint64_t quota, bool enabled)
{
	struct store_user u = { .quota = quota, .enabled = enabled };
	struct done d = { 0 };

	strcpy(u.name, name);
	strcpy(u.home, ORIGIN);
	strcpy(u.pwhash, "$y$j9T$salt$hash");
	store_user_add(f->st, &u, done_cb, &d);
	run_until(f, &d.n, 1);
	return d.err;
}

static uint32_t user_id(struct fx *f, const char *name)
{
	struct store_user u;

	assert_int_equal(store_user_get(f->st, name, &u), STORE_OK);
	return u.id;
}

static struct store_mailbox inbox(struct fx *f, const char *user)
{
	struct store_mailbox mb;

	assert_int_equal(store_mailbox_get(f->st, user_id(f, user), "INBOX", &mb), STORE_OK);
	return mb;
}

struct dres {
	int n;
	struct store_rcpt r[8];
	size_t nr;
};

static void deliver_cb(const struct store_rcpt *rcpts, size_t n, void *arg)
{
	struct dres *d = arg;

	assert_true(n <= 8);
	memcpy(d->r, rcpts, n * sizeof(*rcpts));
	d->nr = n;
	d->n++;
}

static void deliver(struct fx *f, const char *body, const char *const *users,
		    const char *const *prefixes, size_t n, struct dres *res)
{
	struct store_rcpt r[8];
	struct store_delivery d = {
		.body = body, .body_len = strlen(body), .internaldate = 1700000000,
		.rcpts = r, .n_rcpts = n,
	};
	size_t i;

	memset(r, 0, sizeof(r));
	for (i = 0; i < n; i++) {
		r[i].user = users[i];
		r[i].prefix = prefixes != NULL ? prefixes[i] : "";
		r[i].prefix_len = strlen(r[i].prefix);
	}
	memset(res, 0, sizeof(*res));
	store_deliver(f->st, &d, deliver_cb, res);
	run_until(f, &res->n, 1);
	assert_int_equal(res->nr, n);
}

static uint32_t deliver1(struct fx *f, const char *user, const char *body)
{
	const char *users[] = { user };
	struct dres res;

	deliver(f, body, users, NULL, 1, &res);
	assert_int_equal(res.r[0].result, STORE_OK);
	return res.r[0].uid;
}

struct readback {
	char buf[8192];
	size_t len;
	size_t prefix_len;
};

static int read_cb(const char *prefix, size_t prefix_len, const char *body, size_t body_len,
		   void *arg)
{
	struct readback *rb = arg;

	if (prefix_len + body_len > sizeof(rb->buf))
		return -100;
	memcpy(rb->buf, prefix, prefix_len);
	memcpy(rb->buf + prefix_len, body, body_len);
	rb->len = prefix_len + body_len;
	rb->prefix_len = prefix_len;
	return 0;
}

static int expunge(struct fx *f, uint32_t userid, uint32_t mboxid, const uint32_t *uids,
		   size_t n)
{
	struct done d = { 0 };

	store_msg_expunge(f->st, userid, mboxid, uids, n, done_cb, &d);
	run_until(f, &d.n, 1);
	return d.err;
}

static uint64_t stat_bodies(struct fx *f)
{
	struct store_stats s;

	store_stats(f->st, &s);
	return s.bodies;
}

/* ---- directory -------------------------------------------------------------- */

static int collect_names(const struct store_user *u, void *arg)
{
	char *out = arg;

	strcat(out, u->name);
	strcat(out, ",");
	return 0;
}

static void test_user_crud(void **state)
{
	struct fx *f = *state;
	struct store_user u, u2;
	struct done d = { 0 };
	char names[256] = "";

	assert_int_equal(user_add(f, "bob", 1000, true), STORE_OK);
	assert_int_equal(user_add(f, "alice", 0, true), STORE_OK);
	assert_int_equal(user_add(f, "bob", 5, true), STORE_EXISTS);

	assert_int_equal(store_user_get(f->st, "bob", &u), STORE_OK);
	assert_string_equal(u.name, "bob");
	assert_string_equal(u.home, ORIGIN);
	assert_string_equal(u.pwhash, "$y$j9T$salt$hash");
	assert_int_equal(u.quota, 1000);
	assert_int_equal(u.used, 0);
	assert_int_equal(u.messages, 0);
	assert_true(u.enabled);
	assert_true(u.created > 1600000000);
	assert_int_equal(u.id, 1);
	assert_int_equal(user_id(f, "alice"), 2);
	assert_int_equal(store_user_get_by_id(f->st, 2, &u2), STORE_OK);
	assert_string_equal(u2.name, "alice");
	assert_int_equal(store_user_get_by_id(f->st, 77, &u2), STORE_NOTFOUND);
	assert_int_equal(store_user_get(f->st, "carol", &u2), STORE_NOTFOUND);

	store_user_foreach(f->st, collect_names, names);
	assert_string_equal(names, "alice,bob,");

	/* update replaces home, pwhash, quota, enabled only */
	memset(&u2, 0, sizeof(u2));
	strcpy(u2.name, "bob");
	strcpy(u2.home, "pop-b");
	strcpy(u2.pwhash, "$6$new");
	u2.quota = 42;
	u2.enabled = false;
	u2.id = 999;
	u2.used = 12345;
	store_user_update(f->st, &u2, done_cb, &d);
	run_until(f, &d.n, 1);
	assert_int_equal(d.err, STORE_OK);
	assert_int_equal(store_user_get(f->st, "bob", &u2), STORE_OK);
	assert_string_equal(u2.home, "pop-b");
	assert_string_equal(u2.pwhash, "$6$new");
	assert_int_equal(u2.quota, 42);
	assert_false(u2.enabled);
	assert_int_equal(u2.id, u.id);
	assert_int_equal(u2.used, 0);
	assert_int_equal(u2.created, u.created);

	strcpy(u2.name, "nobody");
	store_user_update(f->st, &u2, done_cb, &d);
	run_until(f, &d.n, 2);
	assert_int_equal(d.err, STORE_NOTFOUND);

	store_user_del(f->st, "bob", done_cb, &d);
	run_until(f, &d.n, 3);
	assert_int_equal(d.err, STORE_OK);
	assert_int_equal(store_user_get(f->st, "bob", &u2), STORE_NOTFOUND);
	assert_int_equal(store_user_get_by_id(f->st, u.id, &u2), STORE_NOTFOUND);
	store_user_del(f->st, "bob", done_cb, &d);
	run_until(f, &d.n, 4);
	assert_int_equal(d.err, STORE_NOTFOUND);

	/* ids are never reused */
	assert_int_equal(user_add(f, "bob", 0, true), STORE_OK);
	assert_int_equal(user_id(f, "bob"), 3);
}

static void test_user_inval(void **state)
{
	struct fx *f = *state;
	struct store_user u = { .enabled = true };
	struct done d = { 0 };
	struct store_stats s;
	char longname[STORE_NAME_MAX + 1];

	memset(longname, 'a', STORE_NAME_MAX);
	longname[STORE_NAME_MAX] = '\0';
	memset(u.name, 'a', STORE_NAME_MAX);	/* no NUL inside the array */
	store_user_add(f->st, &u, done_cb, &d);
	run_until(f, &d.n, 1);
	assert_int_equal(d.err, STORE_INVAL);

	memset(&u, 0, sizeof(u));
	strcpy(u.name, "x");
	memset(u.home, 'h', STORE_POP_MAX);
	store_user_add(f->st, &u, done_cb, &d);
	run_until(f, &d.n, 2);
	assert_int_equal(d.err, STORE_INVAL);

	memset(&u, 0, sizeof(u));
	store_user_add(f->st, &u, done_cb, &d);	/* empty name */
	run_until(f, &d.n, 3);
	assert_int_equal(d.err, STORE_INVAL);

	store_user_del(f->st, longname, done_cb, &d);
	run_until(f, &d.n, 4);
	assert_int_equal(d.err, STORE_INVAL);

	assert_int_equal(store_user_get(f->st, longname, &u), STORE_NOTFOUND);
	store_stats(f->st, &s);
	assert_int_equal(s.users, 0);
	assert_int_equal(s.pending, 0);
	assert_int_equal(store_changelog_last(f->st, ORIGIN), 0);
}

static void test_mailboxes(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *name;
		uint32_t su;
	} want[] = {
		{ "INBOX", 0 }, { "Sent", STORE_SU_SENT }, { "Drafts", STORE_SU_DRAFTS },
		{ "Trash", STORE_SU_TRASH }, { "Junk", STORE_SU_JUNK },
		{ "Archive", STORE_SU_ARCHIVE },
	};
	struct store_mailbox mb, mb2;
	uint32_t uid, last_validity = 0, ids[6];
	char longname[STORE_MBOX_MAX];
	size_t i;

	assert_int_equal(user_add(f, "alice", 0, true), STORE_OK);
	uid = user_id(f, "alice");
	for (i = 0; i < 6; i++) {
		assert_int_equal(store_mailbox_get(f->st, uid, want[i].name, &mb), STORE_OK);
		assert_string_equal(mb.name, want[i].name);
		assert_int_equal(mb.special_use, want[i].su);
		assert_true(mb.subscribed);
		assert_int_equal(mb.uidnext, 1);
		assert_int_equal(mb.messages, 0);
		assert_int_equal(mb.bytes, 0);
		assert_true(mb.uidvalidity > last_validity);	/* strictly increasing */
		last_validity = mb.uidvalidity;
		ids[i] = mb.id;
		if (i > 0)
			assert_true(ids[i] != ids[i - 1]);
	}
	/* INBOX is case-insensitive, other names are exact */
	assert_int_equal(store_mailbox_get(f->st, uid, "inbox", &mb2), STORE_OK);
	assert_int_equal(mb2.id, ids[0]);
	assert_int_equal(store_mailbox_get(f->st, uid, "InBoX", &mb2), STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, uid, "sent", &mb2), STORE_NOTFOUND);
	assert_int_equal(store_mailbox_get(f->st, uid, "Nope", &mb2), STORE_NOTFOUND);
	assert_int_equal(store_mailbox_get(f->st, uid + 1, "INBOX", &mb2), STORE_NOTFOUND);
	/* a long name takes the hashed-key path and is simply not there */
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(store_mailbox_get(f->st, uid, longname, &mb2), STORE_NOTFOUND);

	/* a second user's mailboxes are distinct, with later UIDVALIDITYs */
	assert_int_equal(user_add(f, "bob", 0, true), STORE_OK);
	mb2 = inbox(f, "bob");
	assert_true(mb2.id != ids[0]);
	assert_true(mb2.uidvalidity > last_validity);
}

/* ---- delivery ----------------------------------------------------------------- */

static void test_deliver_per_rcpt(void **state)
{
	struct fx *f = *state;
	static const char body[] = "Subject: hi\r\n\r\nhello world\r\n";
	const char *users[] = { "alice", "bob", "nobody", "carol", "dave" };
	const char *prefixes[] = { "Delivered-To: alice\r\n", "Delivered-To: bob\r\n",
				   "X: 1\r\n", "X: 2\r\n", "Delivered-To: dave\r\n" };
	struct store_user u;
	struct store_mailbox mb;
	struct dres res;

	assert_int_equal(user_add(f, "alice", 0, true), STORE_OK);
	assert_int_equal(user_add(f, "bob", 20, true), STORE_OK);	/* too small */
	assert_int_equal(user_add(f, "carol", 0, false), STORE_OK);	/* disabled */
	assert_int_equal(user_add(f, "dave", 1000, true), STORE_OK);

	deliver(f, body, users, prefixes, 5, &res);
	assert_int_equal(res.r[0].result, STORE_OK);
	assert_int_equal(res.r[0].uid, 1);
	assert_int_equal(res.r[1].result, STORE_QUOTA);
	assert_int_equal(res.r[2].result, STORE_NOTFOUND);
	assert_int_equal(res.r[3].result, STORE_DISABLED);
	assert_int_equal(res.r[4].result, STORE_OK);
	assert_int_equal(res.r[4].uid, 1);

	assert_int_equal(store_user_get(f->st, "alice", &u), STORE_OK);
	assert_int_equal(u.used, strlen(prefixes[0]) + strlen(body));
	assert_int_equal(u.messages, 1);
	assert_int_equal(store_user_get(f->st, "bob", &u), STORE_OK);
	assert_int_equal(u.used, 0);
	assert_int_equal(u.messages, 0);
	mb = inbox(f, "bob");
	assert_int_equal(mb.uidnext, 1);
	assert_int_equal(mb.messages, 0);
	mb = inbox(f, "dave");
	assert_int_equal(mb.uidnext, 2);
	assert_int_equal(mb.messages, 1);
	assert_int_equal(mb.bytes, strlen(prefixes[4]) + strlen(body));
	assert_int_equal(mb.highestmodseq, 1);

	/* exactly at quota is fine, one byte over is not */
	{
		char big[1001];
		const char *d1[] = { "dave" };

		memset(big, 'x', sizeof(big) - 1);
		big[1000 - mb.bytes] = '\0';
		deliver(f, big, d1, NULL, 1, &res);
		assert_int_equal(res.r[0].result, STORE_OK);
		deliver(f, "y", d1, NULL, 1, &res);
		assert_int_equal(res.r[0].result, STORE_QUOTA);
	}
}

static void test_deliver_inval(void **state)
{
	struct fx *f = *state;
	char longname[STORE_NAME_MAX + 8], longmbox[STORE_MBOX_MAX + 8];
	const char *users[] = { "alice", longname };
	struct store_rcpt r[1] = { { .user = "alice", .prefix = "", .prefix_len = 0 } };
	struct store_delivery d = { .body = "x", .body_len = 1, .rcpts = r, .n_rcpts = 1 };
	struct dres res = { 0 };

	assert_int_equal(user_add(f, "alice", 0, true), STORE_OK);
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	deliver(f, "body", users, NULL, 2, &res);
	assert_int_equal(res.r[0].result, STORE_OK);
	assert_int_equal(res.r[1].result, STORE_INVAL);

	memset(longmbox, 'm', sizeof(longmbox) - 1);
	longmbox[sizeof(longmbox) - 1] = '\0';
	d.mailbox = longmbox;
	store_deliver(f->st, &d, deliver_cb, &res);
	run_until(f, &res.n, 2);
	assert_int_equal(res.r[0].result, STORE_INVAL);

	d.mailbox = "NoSuchFolder";
	store_deliver(f->st, &d, deliver_cb, &res);
	run_until(f, &res.n, 3);
	assert_int_equal(res.r[0].result, STORE_NOTFOUND);

	d.mailbox = "Junk";	/* a named folder works */
	store_deliver(f->st, &d, deliver_cb, &res);
	run_until(f, &res.n, 4);
	assert_int_equal(res.r[0].result, STORE_OK);
	assert_int_equal(res.r[0].uid, 1);
	assert_int_equal(inbox(f, "alice").messages, 1);
}

static int collect_msgs(const struct store_msg *m, void *arg)
{
	struct store_msg *out = arg;
	size_t i = 0;

	while (out[i].uid != 0)
		i++;
	out[i] = *m;
	return 0;
}

static int stop_after_one(const struct store_msg *m, void *arg)
{
	(void)m;
	(*(int *)arg)++;
	return 1;
}

static void test_uids_ascending(void **state)
{
	struct fx *f = *state;
	struct store_msg msgs[16];
	struct store_mailbox mb;
	char body[64];
	uint32_t userid, i;
	int calls = 0;

	assert_int_equal(user_add(f, "alice", 0, true), STORE_OK);
	assert_int_equal(user_add(f, "bob", 0, true), STORE_OK);
	for (i = 0; i < 5; i++) {
		snprintf(body, sizeof(body), "message %u\r\n", i);
		assert_int_equal(deliver1(f, "alice", body), i + 1);
	}
	deliver1(f, "bob", "for bob\r\n");	/* other users' messages stay out */
	mb = inbox(f, "alice");
	userid = user_id(f, "alice");
	assert_int_equal(mb.uidnext, 6);
	assert_int_equal(mb.messages, 5);
	assert_int_equal(mb.highestmodseq, 5);

	memset(msgs, 0, sizeof(msgs));
	assert_int_equal(store_msg_foreach(f->st, userid, mb.id, collect_msgs, msgs), STORE_OK);
	for (i = 0; i < 5; i++) {
		assert_int_equal(msgs[i].uid, i + 1);
		assert_int_equal(msgs[i].modseq, i + 1);
		assert_int_equal(msgs[i].internaldate, 1700000000);
		assert_int_equal(msgs[i].size, strlen("message 0\r\n"));
		assert_true(msgs[i].flags & STORE_F_RECENT);
	}
	assert_int_equal(msgs[5].uid, 0);
	assert_int_equal(store_msg_foreach(f->st, userid, mb.id, stop_after_one, &calls), STORE_OK);
	assert_int_equal(calls, 1);
	assert_int_equal(store_msg_foreach(f->st, userid, 9999, collect_msgs, msgs),
			 STORE_NOTFOUND);

	/* expunging the highest UID never lets it be reused */
	{
		uint32_t top = 5;

		assert_int_equal(expunge(f, userid, mb.id, &top, 1), STORE_OK);
		assert_int_equal(deliver1(f, "alice", "next\r\n"), 6);
	}
}

static void test_body_dedup_and_readback(void **state)
{
	struct fx *f = *state;
	static const char body[] = "From: x@example.org\r\nSubject: shared\r\n\r\n"
				   "line one\r\n\0binary\xff ok\r\n";
	const char *users[] = { "alice", "bob", "carol" };
	const char *prefixes[] = { "Return-Path: <x@example.org>\r\nDelivered-To: alice\r\n",
				   "", "Delivered-To: carol\r\n" };
	struct store_rcpt r[3];
	struct store_delivery d = { .body = body, .body_len = sizeof(body) - 1, .rcpts = r,
				    .n_rcpts = 3, .internaldate = 5 };
	struct dres res = { 0 };
	struct readback rb;
	struct store_user u;
	size_t i;

	for (i = 0; i < 3; i++)
		assert_int_equal(user_add(f, users[i], 0, true), STORE_OK);
	for (i = 0; i < 3; i++) {
		r[i].user = users[i];
		r[i].prefix = prefixes[i];
		r[i].prefix_len = strlen(prefixes[i]);
	}
	store_deliver(f->st, &d, deliver_cb, &res);
	memset(r, 0xA5, sizeof(r));	/* the store copied what it needs */
	run_until(f, &res.n, 1);
	for (i = 0; i < 3; i++)
		assert_int_equal(res.r[i].result, STORE_OK);
	assert_int_equal(stat_bodies(f), 1);

	for (i = 0; i < 3; i++) {
		struct store_mailbox mb = inbox(f, users[i]);
		size_t plen = strlen(prefixes[i]);

		memset(&rb, 0, sizeof(rb));
		assert_int_equal(store_msg_read(f->st, user_id(f, users[i]), mb.id, res.r[i].uid,
						read_cb, &rb), 0);
		assert_int_equal(rb.prefix_len, plen);
		assert_int_equal(rb.len, plen + sizeof(body) - 1);
		assert_memory_equal(rb.buf, prefixes[i], plen);
		assert_memory_equal(rb.buf + plen, body, sizeof(body) - 1);
		assert_int_equal(mb.bytes, plen + sizeof(body) - 1);
		assert_int_equal(store_msg_read(f->st, user_id(f, users[i]), mb.id, 99, read_cb, &rb),
				 STORE_NOTFOUND);
	}

	/* a second delivery of the same body adds a reference, not a copy */
	deliver1(f, "alice", "different body\r\n");
	assert_int_equal(stat_bodies(f), 2);
	{
		const char *a[] = { "alice" };
		struct dres res2;

		memset(&rb, 0, sizeof(rb));
		deliver(f, "From: x@example.org\r\nSubject: shared\r\n\r\nline one\r\n", a, NULL, 1,
			&res2);
		assert_int_equal(stat_bodies(f), 3);
	}

	/* bodies are freed only when the last reference goes */
	for (i = 0; i < 3; i++) {
		struct store_mailbox mb = inbox(f, users[i]);
		uint32_t uid = res.r[i].uid;

		assert_int_equal(stat_bodies(f), 3);
		assert_int_equal(expunge(f, user_id(f, users[i]), mb.id, &uid, 1), STORE_OK);
	}
	assert_int_equal(stat_bodies(f), 2);
	assert_int_equal(store_user_get(f->st, "carol", &u), STORE_OK);
	assert_int_equal(u.used, 0);
}

static void test_expunge_quota(void **state)
{
	struct fx *f = *state;
	struct store_user u;
	struct store_mailbox mb, mb2;
	uint32_t userid, uids[] = { 2, 77, 2, 3 };
	uint64_t before;
	int i;

	assert_int_equal(user_add(f, "alice", 100, true), STORE_OK);
	userid = user_id(f, "alice");
	for (i = 0; i < 4; i++)
		deliver1(f, "alice", "0123456789012345678\r\n");	/* 21 bytes */
	{
		const char *a[] = { "alice" };
		struct dres res;

		deliver(f, "0123456789012345678\r\n", a, NULL, 1, &res);
		assert_int_equal(res.r[0].result, STORE_QUOTA);	/* 105 > 100 */
	}
	assert_int_equal(store_user_get(f->st, "alice", &u), STORE_OK);
	assert_int_equal(u.used, 84);
	assert_int_equal(u.messages, 4);
	mb = inbox(f, "alice");
	before = store_changelog_last(f->st, ORIGIN);

	assert_int_equal(expunge(f, userid, mb.id, uids, 4), STORE_OK);
	assert_int_equal(store_user_get(f->st, "alice", &u), STORE_OK);
	assert_int_equal(u.used, 42);
	assert_int_equal(u.messages, 2);
	mb2 = inbox(f, "alice");
	assert_int_equal(mb2.messages, 2);
	assert_int_equal(mb2.bytes, 42);
	assert_int_equal(mb2.highestmodseq, mb.highestmodseq + 1);
	assert_int_equal(mb2.uidnext, mb.uidnext);
	/* one record per removed message; unknown and repeated UIDs are ignored */
	assert_int_equal(store_changelog_last(f->st, ORIGIN), before + 2);

	/* room again: the delivery that failed now fits */
	deliver1(f, "alice", "0123456789012345678\r\n");

	/* nothing to remove: no modseq bump, no changelog */
	before = store_changelog_last(f->st, ORIGIN);
	mb = inbox(f, "alice");
	assert_int_equal(expunge(f, userid, mb.id, uids, 1), STORE_OK);
	assert_int_equal(inbox(f, "alice").highestmodseq, mb.highestmodseq);
	assert_int_equal(store_changelog_last(f->st, ORIGIN), before);
	assert_int_equal(expunge(f, userid, 9999, uids, 1), STORE_NOTFOUND);
}

static void test_user_del_drops_bodies(void **state)
{
	struct fx *f = *state;
	const char *users[] = { "alice", "bob" };
	struct store_mailbox mb;
	struct store_msg msgs[4];
	struct readback rb;
	struct dres res;
	struct done d = { 0 };
	uint32_t bob_id, alice_id;

	assert_int_equal(user_add(f, "alice", 0, true), STORE_OK);
	assert_int_equal(user_add(f, "bob", 0, true), STORE_OK);
	alice_id = user_id(f, "alice");
	bob_id = user_id(f, "bob");
	deliver(f, "shared body\r\n", users, NULL, 2, &res);
	deliver1(f, "alice", "alice only\r\n");
	assert_int_equal(stat_bodies(f), 2);
	mb = inbox(f, "bob");

	store_user_del(f->st, "alice", done_cb, &d);
	run_until(f, &d.n, 1);
	assert_int_equal(d.err, STORE_OK);
	assert_int_equal(stat_bodies(f), 1);
	assert_int_equal(store_mailbox_get(f->st, alice_id, "INBOX", &mb), STORE_NOTFOUND);
	memset(msgs, 0, sizeof(msgs));
	assert_int_equal(store_msg_foreach(f->st, alice_id, mb.id, collect_msgs, msgs),
			 STORE_NOTFOUND);
	mb = inbox(f, "bob");
	memset(&rb, 0, sizeof(rb));
	assert_int_equal(store_msg_read(f->st, bob_id, mb.id, 1, read_cb, &rb), 0);
	assert_memory_equal(rb.buf, "shared body\r\n", rb.len);

	store_user_del(f->st, "bob", done_cb, &d);
	run_until(f, &d.n, 2);
	assert_int_equal(d.err, STORE_OK);
	assert_int_equal(stat_bodies(f), 0);
	assert_int_equal(store_msg_read(f->st, bob_id, mb.id, 1, read_cb, &rb), STORE_NOTFOUND);
}

/* ---- changelog ------------------------------------------------------------------ */

struct chlog {
	struct store_change c[32];
	char first_data[128];
	size_t n;
};

static int collect_changes(const struct store_change *c, void *arg)
{
	struct chlog *l = arg;

	if (l->n == 0 && c->data_len < sizeof(l->first_data))
		memcpy(l->first_data, c->data, c->data_len);
	if (l->n < 32) {
		l->c[l->n] = *c;
		l->c[l->n].data = NULL;
	}
	l->n++;
	return 0;
}

static void test_changelog(void **state)
{
	struct fx *f = *state;
	struct chlog l;
	uint32_t userid, uid;
	struct store_mailbox mb;
	struct done d = { 0 };
	size_t i;

	assert_int_equal(store_changelog_last(f->st, ORIGIN), 0);
	assert_int_equal(user_add(f, "alice", 0, true), STORE_OK);
	userid = user_id(f, "alice");
	assert_int_equal(store_changelog_last(f->st, ORIGIN), 7);	/* user + 6 mailboxes */
	uid = deliver1(f, "alice", "hello\r\n");
	mb = inbox(f, "alice");
	assert_int_equal(expunge(f, userid, mb.id, &uid, 1), STORE_OK);
	{
		struct store_user u = { .quota = 5, .enabled = true };

		strcpy(u.name, "alice");
		store_user_update(f->st, &u, done_cb, &d);
		run_until(f, &d.n, 1);
	}
	store_user_del(f->st, "alice", done_cb, &d);
	run_until(f, &d.n, 2);
	assert_int_equal(store_changelog_last(f->st, ORIGIN), 11);
	assert_int_equal(store_changelog_last(f->st, "other-pop"), 0);

	memset(&l, 0, sizeof(l));
	assert_int_equal(store_changelog_foreach(f->st, ORIGIN, 0, collect_changes, &l), STORE_OK);
	assert_int_equal(l.n, 11);
	for (i = 0; i < l.n; i++) {
		assert_int_equal(l.c[i].seq, i + 1);
		assert_int_equal(l.c[i].userid, userid);
		assert_true(l.c[i].time > 1600000000);
	}
	assert_int_equal(l.c[0].type, STORE_CH_USER_ADD);
	/* USER_ADD payload: name_len, name, user record */
	assert_int_equal((unsigned char)l.first_data[0], 5);
	assert_memory_equal(l.first_data + 1, "alice", 5);
	for (i = 1; i <= 6; i++) {
		assert_int_equal(l.c[i].type, STORE_CH_MAILBOX_ADD);
		assert_true(l.c[i].mboxid != 0);
	}
	assert_int_equal(l.c[1].mboxid, mb.id);
	assert_int_equal(l.c[7].type, STORE_CH_MSG_ADD);
	assert_int_equal(l.c[7].mboxid, mb.id);
	assert_int_equal(l.c[7].uid, uid);
	assert_int_equal(l.c[8].type, STORE_CH_MSG_EXPUNGE);
	assert_int_equal(l.c[8].uid, uid);
	assert_int_equal(l.c[9].type, STORE_CH_USER_UPDATE);
	assert_int_equal(l.c[10].type, STORE_CH_USER_DEL);

	memset(&l, 0, sizeof(l));
	assert_int_equal(store_changelog_foreach(f->st, ORIGIN, 9, collect_changes, &l), STORE_OK);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.c[0].seq, 10);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_changelog_foreach(f->st, "other-pop", 0, collect_changes, &l),
			 STORE_OK);
	assert_int_equal(l.n, 0);
	/* failed ops leave no record and no gap */
	assert_int_equal(user_add(f, "bob", 0, true), STORE_OK);
	assert_int_equal(user_add(f, "bob", 0, true), STORE_EXISTS);
	assert_int_equal(user_add(f, "carl", 0, true), STORE_OK);
	assert_int_equal(store_changelog_last(f->st, ORIGIN), 11 + 7 + 7);
}

/* ---- group commit and failures ---------------------------------------------------- */

struct commits {
	int n;
	unsigned ops;
	double seconds;
};

static void observer(double seconds, unsigned ops, void *arg)
{
	struct commits *c = arg;

	c->n++;
	c->ops += ops;
	c->seconds += seconds;
}

static void test_inject_commit_failure(void **state)
{
	struct fx *f = *state;
	struct store_stats s0, s1;
	struct store_mailbox mb0;
	struct store_user u;
	struct commits c = { 0 };
	struct done d = { 0 };
	struct dres res = { 0 };
	const char *users[] = { "alice" };
	uint64_t seq0;

	assert_int_equal(user_add(f, "alice", 0, true), STORE_OK);
	deliver1(f, "alice", "before\r\n");
	store_set_commit_observer(f->st, observer, &c);
	store_stats(f->st, &s0);
	mb0 = inbox(f, "alice");
	seq0 = store_changelog_last(f->st, ORIGIN);

	store_inject_commit_failures(f->st, 2);
	assert_int_equal(user_add(f, "bob", 0, true), STORE_IO);
	deliver(f, "lost\r\n", users, NULL, 1, &res);
	assert_int_equal(res.r[0].result, STORE_IO);
	assert_int_equal(res.r[0].uid, 0);

	store_stats(f->st, &s1);
	assert_int_equal(s1.commits, s0.commits);
	assert_int_equal(s1.ops, s0.ops);
	assert_int_equal(s1.users, s0.users);
	assert_int_equal(s1.bodies, s0.bodies);
	assert_int_equal(c.n, 0);
	assert_int_equal(store_user_get(f->st, "bob", &u), STORE_NOTFOUND);
	assert_int_equal(inbox(f, "alice").uidnext, mb0.uidnext);
	assert_int_equal(inbox(f, "alice").messages, mb0.messages);
	assert_int_equal(store_changelog_last(f->st, ORIGIN), seq0);

	/* the next commit works and reuses nothing it should not */
	store_user_del(f->st, "bob", done_cb, &d);
	run_until(f, &d.n, 1);
	assert_int_equal(d.err, STORE_NOTFOUND);
	assert_int_equal(deliver1(f, "alice", "after\r\n"), mb0.uidnext);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.ops, 2);
}

static void test_map_full(void **state)
{
	struct fx *f = *state;
	const char *users[] = { "alice" };
	struct dres big = { 0 }, small = { 0 };
	struct store_rcpt r = { .user = "alice", .prefix = "", .prefix_len = 0 };
	struct store_delivery d = { .rcpts = &r, .n_rcpts = 1 };
	size_t len = 4u << 20;
	char *body;

	store_close(&f->st);
	rm_dir(f->dir);
	assert_int_equal(mkdir(f->dir, 0700), 0);
	assert_int_equal(open_store(f, 1u << 20), 0);	/* 1 MiB map */
	assert_int_equal(user_add(f, "alice", 0, true), STORE_OK);

	body = malloc(len);
	assert_non_null(body);
	memset(body, 'b', len);
	d.body = body;
	d.body_len = len;
	store_deliver(f->st, &d, deliver_cb, &big);
	free(body);	/* copied at submit */
	d.body = "small\r\n";
	d.body_len = 7;
	store_deliver(f->st, &d, deliver_cb, &small);
	run_until(f, &big.n, 1);
	run_until(f, &small.n, 1);
	assert_int_equal(big.r[0].result, STORE_FULL);
	assert_int_equal(small.r[0].result, STORE_OK);
	assert_int_equal(small.r[0].uid, 1);
	assert_int_equal(stat_bodies(f), 1);
	deliver(f, "still writable\r\n", users, NULL, 1, &small);
	assert_int_equal(small.r[0].result, STORE_OK);
	assert_int_equal(small.r[0].uid, 2);
}

struct counter {
	int n;
	int ok;
	uint32_t last_uid;
	bool ascending;
};

static void count_deliver_cb(const struct store_rcpt *rcpts, size_t n, void *arg)
{
	struct counter *c = arg;

	c->n++;
	if (n == 1 && rcpts[0].result == STORE_OK) {
		c->ok++;
		if (rcpts[0].uid <= c->last_uid)
			c->ascending = false;
		c->last_uid = rcpts[0].uid;
	}
}

static void submit_deliveries(struct fx *f, int n, struct counter *cnt)
{
	char body[1024];
	struct store_rcpt r = { .user = "alice", .prefix = "Delivered-To: alice\r\n" };
	struct store_delivery d = { .body = body, .body_len = sizeof(body), .rcpts = &r,
				    .n_rcpts = 1 };
	int i;

	r.prefix_len = strlen(r.prefix);
	for (i = 0; i < n; i++) {
		memset(body, 'a' + i % 26, sizeof(body));
		snprintf(body, sizeof(body), "Message-Id: <%d@test>\r\n\r\n", i);
		store_deliver(f->st, &d, count_deliver_cb, cnt);
	}
}

static void test_group_commit(void **state)
{
	struct fx *f = *state;
	struct counter cnt = { .ascending = true };
	struct commits c = { 0 };
	struct store_stats s;

	assert_int_equal(user_add(f, "alice", 0, true), STORE_OK);
	store_set_commit_observer(f->st, observer, &c);
	submit_deliveries(f, 200, &cnt);
	store_stats(f->st, &s);
	assert_true(s.pending > 0);
	run_until(f, &cnt.n, 200);
	assert_int_equal(cnt.ok, 200);
	assert_true(cnt.ascending);
	assert_int_equal(c.ops, 200);
	assert_true(c.n >= 1);
	assert_true(c.n < 200);	/* many ops share a commit */
	store_stats(f->st, &s);
	assert_int_equal(s.pending, 0);
	assert_int_equal(s.commits, (uint64_t)c.n + 1);	/* + the user_add */
	assert_int_equal(s.ops, 201);
	assert_int_equal(s.users, 1);
	assert_int_equal(s.bodies, 200);
	assert_int_equal(s.map_size, 64 << 20);
	assert_true(s.used_bytes > 200 * 1024);
	assert_true(s.used_bytes < s.map_size);
	assert_int_equal(inbox(f, "alice").messages, 200);
	print_message("group commit: 200 deliveries in %d commits\n", c.n);
}

static void test_batch_max(void **state)
{
	struct fx *f = *state;
	struct counter cnt = { .ascending = true };
	struct commits c = { 0 };
	struct store_opts o = { .dir = f->dir, .origin = ORIGIN, .base = f->base,
				.batch_max = 3 };
	const char *error;

	store_close(&f->st);
	assert_int_equal(store_open(&f->st, &o, &error), 0);
	assert_int_equal(user_add(f, "alice", 0, true), STORE_OK);
	store_set_commit_observer(f->st, observer, &c);
	submit_deliveries(f, 30, &cnt);
	run_until(f, &cnt.n, 30);
	assert_int_equal(cnt.ok, 30);
	assert_true(c.n >= 10);	/* at most 3 ops per commit */
	assert_int_equal(c.ops, 30);
}

/* Ops sharing one group commit: a failed op leaves no trace, the others stay. */
static void test_batch_isolation(void **state)
{
	struct fx *f = *state;
	struct store_user u = { .enabled = true };
	struct done d[4] = { { 0 } };
	struct counter cnt = { .ascending = true };
	struct commits c = { 0 };
	struct chlog l;
	uint64_t seq0;
	size_t i;

	assert_int_equal(user_add(f, "alice", 0, true), STORE_OK);
	seq0 = store_changelog_last(f->st, ORIGIN);
	store_set_commit_observer(f->st, observer, &c);
	strcpy(u.name, "carol");
	store_user_add(f->st, &u, done_cb, &d[0]);
	store_user_add(f->st, &u, done_cb, &d[1]);	/* duplicate */
	store_user_del(f->st, "nobody", done_cb, &d[2]);
	submit_deliveries(f, 1, &cnt);
	strcpy(u.name, "dora");
	store_user_add(f->st, &u, done_cb, &d[3]);
	for (i = 0; i < 4; i++)
		run_until(f, &d[i].n, 1);
	run_until(f, &cnt.n, 1);
	assert_int_equal(d[0].err, STORE_OK);
	assert_int_equal(d[1].err, STORE_EXISTS);
	assert_int_equal(d[2].err, STORE_NOTFOUND);
	assert_int_equal(d[3].err, STORE_OK);
	assert_int_equal(cnt.ok, 1);
	assert_int_equal(c.ops, 5);
	assert_int_equal(store_user_get(f->st, "carol", &u), STORE_OK);
	assert_int_equal(store_user_get(f->st, "dora", &u), STORE_OK);
	assert_int_equal(u.id, user_id(f, "carol") + 1);	/* no id burnt by the dup */
	/* 7 + 1 + 7 records, numbered without gaps */
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_changelog_foreach(f->st, ORIGIN, seq0, collect_changes, &l),
			 STORE_OK);
	assert_int_equal(l.n, 15);
	for (i = 0; i < l.n; i++)
		assert_int_equal(l.c[i].seq, seq0 + 1 + i);
	print_message("isolation: 5 ops in %d commit(s)\n", c.n);
}

/* ---- close ------------------------------------------------------------------------- */

static void test_close_commits_queued(void **state)
{
	struct fx *f = *state;
	struct counter cnt = { .ascending = true };
	struct store_stats s;

	assert_int_equal(user_add(f, "alice", 0, true), STORE_OK);
	submit_deliveries(f, 20, &cnt);
	store_close(&f->st);	/* no loop run: close commits and calls back */
	assert_null(f->st);
	assert_int_equal(cnt.n, 20);
	assert_int_equal(cnt.ok, 20);
	assert_int_equal(open_store(f, 64 << 20), 0);
	assert_int_equal(inbox(f, "alice").messages, 20);
	store_stats(f->st, &s);
	assert_int_equal(s.commits, 0);
	/* no stray callback fires on the loop later */
	assert_int_equal(event_base_loop(f->base, EVLOOP_NONBLOCK), 1);
	assert_int_equal(cnt.n, 20);
}

struct late {
	struct store *st;
	struct done first, second;
	bool second_submitted;
};

static void late_first_cb(int err, void *arg)
{
	struct late *l = arg;
	struct store_user u = { .enabled = true };

	done_cb(err, &l->first);
	strcpy(u.name, "latecomer");
	store_user_add(l->st, &u, done_cb, &l->second);	/* store is closing */
	l->second_submitted = true;
}

static void test_submit_while_closing(void **state)
{
	struct fx *f = *state;
	struct late l = { .st = f->st };
	struct store_user u = { .enabled = true };

	strcpy(u.name, "early");
	store_user_add(f->st, &u, late_first_cb, &l);
	store_close(&f->st);
	assert_int_equal(l.first.n, 1);
	assert_int_equal(l.first.err, STORE_OK);
	assert_true(l.second_submitted);
	assert_int_equal(l.second.n, 1);
	assert_int_equal(l.second.err, STORE_SHUTDOWN);
	assert_int_equal(open_store(f, 64 << 20), 0);
	assert_int_equal(store_user_get(f->st, "early", &u), STORE_OK);
	assert_int_equal(store_user_get(f->st, "latecomer", &u), STORE_NOTFOUND);
}

struct closer {
	struct fx *f;
	struct done d[3];
};

static void close_in_cb(int err, void *arg)
{
	struct closer *c = arg;

	done_cb(err, &c->d[0]);
	store_close(&c->f->st);
}

static void test_close_from_callback(void **state)
{
	struct fx *f = *state;
	struct closer c = { .f = f };
	struct store_user u = { .enabled = true };
	struct store_mailbox mb;
	uint32_t uid = 1;

	assert_int_equal(user_add(f, "alice", 0, true), STORE_OK);
	mb = inbox(f, "alice");
	strcpy(u.name, "bob");
	store_user_add(f->st, &u, close_in_cb, &c);
	store_user_del(f->st, "alice", done_cb, &c.d[1]);
	store_msg_expunge(f->st, user_id(f, "alice"), mb.id, &uid, 1, done_cb, &c.d[2]);
	run_until(f, &c.d[0].n, 1);
	assert_null(f->st);
	assert_int_equal(c.d[0].err, STORE_OK);
	/* everything queued behind it was finished by the close */
	assert_int_equal(c.d[1].n, 1);
	assert_int_equal(c.d[2].n, 1);
	assert_int_equal(c.d[1].err, STORE_OK);
	assert_true(c.d[2].err == STORE_OK || c.d[2].err == STORE_NOTFOUND);
	assert_int_equal(event_base_loop(f->base, EVLOOP_NONBLOCK), 1);
	assert_int_equal(open_store(f, 64 << 20), 0);
	assert_int_equal(store_user_get(f->st, "bob", &u), STORE_OK);
	assert_int_equal(store_user_get(f->st, "alice", &u), STORE_NOTFOUND);
}

/* ---- crash ----------------------------------------------------------------------- */

#define CRASH_IN_FLIGHT 16

static size_t crash_body(uint32_t i, char *buf, size_t size)
{
	size_t len = (size_t)snprintf(buf, size, "Message-Id: <%u@crash>\r\n\r\n", i);

	while (len < 600 + i % 300 && len + 1 < size) {
		buf[len] = (char)('a' + (i + len) % 26);
		len++;
	}
	return len;
}

struct child {
	struct store *st;
	int fd;
	uint32_t next;
};

static void child_submit(struct child *c);

struct child_op {
	struct child *c;
	uint32_t i;
	char prefix[64];
};

static void child_done(const struct store_rcpt *r, size_t n, void *arg)
{
	struct child_op *op = arg;
	uint32_t ack[2] = { op->i, r[0].uid };

	if (n != 1 || r[0].result != STORE_OK)
		_exit(3);
	if (write(op->c->fd, ack, sizeof(ack)) != sizeof(ack))
		_exit(4);
	child_submit(op->c);
	free(op);
}

static void child_submit(struct child *c)
{
	char body[1024];
	struct child_op *op = malloc(sizeof(*op));
	struct store_rcpt r = { .user = "alice" };
	struct store_delivery d = { .body = body, .rcpts = &r, .n_rcpts = 1 };

	if (op == NULL)
		_exit(5);
	op->c = c;
	op->i = c->next++;
	snprintf(op->prefix, sizeof(op->prefix), "Delivered-To: alice #%u\r\n", op->i);
	r.prefix = op->prefix;
	r.prefix_len = strlen(op->prefix);
	d.body_len = crash_body(op->i, body, sizeof(body));
	d.internaldate = op->i;
	store_deliver(c->st, &d, child_done, op);
}

static void crash_child(const char *dir, int fd)
{
	struct event_base *base = event_base_new();
	struct store_opts o = { .dir = dir, .map_size = 64 << 20, .origin = ORIGIN,
				.base = base };
	struct child c = { .fd = fd };
	const char *error;
	int i;

	if (base == NULL || store_open(&c.st, &o, &error) != 0)
		_exit(2);
	for (i = 0; i < CRASH_IN_FLIGHT; i++)
		child_submit(&c);
	event_base_dispatch(base);	/* runs until SIGKILL */
	_exit(6);
}

static void test_crash_recovery(void **state)
{
	struct fx *f = *state;
	static uint32_t acks[200000][2];
	size_t n_acks = 0, got = 0, i;
	struct store_mailbox mb;
	uint32_t userid, max_uid = 0;
	int p[2], status;
	pid_t pid;

	assert_int_equal(user_add(f, "alice", 0, true), STORE_OK);
	userid = user_id(f, "alice");
	store_close(&f->st);

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		crash_child(f->dir, p[1]);
	}
	close(p[1]);
	/* Let it acknowledge a few hundred deliveries, then kill it mid-load. */
	while (got < 300 * sizeof(acks[0])) {
		ssize_t r = read(p[0], (char *)acks + got, sizeof(acks) - got);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	assert_true(got >= 300 * sizeof(acks[0]));
	assert_int_equal(kill(pid, SIGKILL), 0);
	for (;;) {	/* acks already written before the kill still count */
		ssize_t r = read(p[0], (char *)acks + got, sizeof(acks) - got);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	n_acks = got / sizeof(acks[0]);

	assert_int_equal(open_store(f, 64 << 20), 0);
	assert_int_equal(store_mailbox_get(f->st, userid, "INBOX", &mb), STORE_OK);
	for (i = 0; i < n_acks; i++) {
		struct readback rb;
		char want[1024], prefix[64];
		size_t wlen = crash_body(acks[i][0], want, sizeof(want));
		size_t plen = (size_t)snprintf(prefix, sizeof(prefix), "Delivered-To: alice #%u\r\n",
					       acks[i][0]);

		memset(&rb, 0, sizeof(rb));
		assert_int_equal(store_msg_read(f->st, userid, mb.id, acks[i][1], read_cb, &rb), 0);
		assert_int_equal(rb.len, plen + wlen);
		assert_memory_equal(rb.buf, prefix, plen);
		assert_memory_equal(rb.buf + plen, want, wlen);
		if (acks[i][1] > max_uid)
			max_uid = acks[i][1];
	}
	assert_true(mb.messages >= n_acks);
	assert_true(mb.uidnext > max_uid);
	assert_int_equal(mb.messages, mb.uidnext - 1);	/* nothing half-written */
	/* and the store takes writes again (the dead writer's lock is gone) */
	assert_int_equal(deliver1(f, "alice", "after crash\r\n"), mb.uidnext);
	print_message("crash: %zu acknowledged, %u on disk, all present\n", n_acks,
		      mb.messages);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_user_crud, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_inval, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailboxes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_per_rcpt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_inval, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uids_ascending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_dedup_and_readback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunge_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_del_drops_bodies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changelog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inject_commit_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_max, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_isolation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_commits_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(test_submit_while_closing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_from_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_recovery, setup, teardown),
	};
	const char *error;

	alarm(300);	/* a hung loop fails the run instead of blocking it */
	if (log_open("stderr", LOG_LVL_WARN, &error) != 0)
		return 1;
	if (evthread_use_pthreads() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
