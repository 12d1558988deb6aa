/*
 * test_store_imap.c - the store's IMAP mailbox surface: name checks,
 * create (with superiors), foreach and get_by_id, delete (messages and
 * bodies go, inferiors and subscriptions stay), rename (inferiors,
 * subscriptions, INBOX's special case with tombstones), subscriptions of
 * names that do not exist, the keyword table's limits, user delete
 * cleaning the new databases, and the format 1 -> 2 upgrade at open.
 * Messages and flags are in test_store_imap_msgs.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lmdb.h>

#include "store_fixture.h"

/* ---- names ------------------------------------------------------------------ */

static void test_name_checks(void **state)
{
	char longname[STORE_MBOX_MAX + 1], kw[STORE_KEYWORD_MAX + 2];

	(void)state;
	assert_int_equal(store_mailbox_name_check("INBOX"), STORE_OK);
	assert_int_equal(store_mailbox_name_check("a/b/c"), STORE_OK);
	assert_int_equal(store_mailbox_name_check("Entw\xc3\xbcrfe"), STORE_OK);
	assert_int_equal(store_mailbox_name_check("x y.z&-"), STORE_OK);
	assert_int_equal(store_mailbox_name_check(NULL), STORE_INVAL);
	assert_int_equal(store_mailbox_name_check(""), STORE_INVAL);
	assert_int_equal(store_mailbox_name_check("/a"), STORE_INVAL);
	assert_int_equal(store_mailbox_name_check("a/"), STORE_INVAL);
	assert_int_equal(store_mailbox_name_check("a//b"), STORE_INVAL);
	assert_int_equal(store_mailbox_name_check("/"), STORE_INVAL);
	assert_int_equal(store_mailbox_name_check("a\r\nb"), STORE_INVAL);
	assert_int_equal(store_mailbox_name_check("a\nb"), STORE_INVAL);
	assert_int_equal(store_mailbox_name_check("a\tb"), STORE_INVAL);
	assert_int_equal(store_mailbox_name_check("a\x7f"), STORE_INVAL);
	memset(longname, 'x', sizeof(longname));
	longname[STORE_MBOX_MAX - 1] = '\0';	/* 511 bytes: the most */
	assert_int_equal(store_mailbox_name_check(longname), STORE_OK);
	longname[STORE_MBOX_MAX - 1] = 'x';
	longname[STORE_MBOX_MAX] = '\0';
	assert_int_equal(store_mailbox_name_check(longname), STORE_INVAL);

	assert_int_equal(store_keyword_check("$Label1"), STORE_OK);
	assert_int_equal(store_keyword_check("$Junk"), STORE_OK);
	assert_int_equal(store_keyword_check("NonJunk"), STORE_OK);
	assert_int_equal(store_keyword_check(NULL), STORE_INVAL);
	assert_int_equal(store_keyword_check(""), STORE_INVAL);
	assert_int_equal(store_keyword_check("\\Seen"), STORE_INVAL);
	assert_int_equal(store_keyword_check("a b"), STORE_INVAL);
	assert_int_equal(store_keyword_check("a(b"), STORE_INVAL);
	assert_int_equal(store_keyword_check("a]"), STORE_INVAL);
	assert_int_equal(store_keyword_check("a*"), STORE_INVAL);
	assert_int_equal(store_keyword_check("a%"), STORE_INVAL);
	assert_int_equal(store_keyword_check("a\""), STORE_INVAL);
	assert_int_equal(store_keyword_check("a{"), STORE_INVAL);
	assert_int_equal(store_keyword_check("\xc3\xa4"), STORE_INVAL);
	memset(kw, 'k', sizeof(kw));
	kw[STORE_KEYWORD_MAX] = '\0';
	assert_int_equal(store_keyword_check(kw), STORE_OK);
	kw[STORE_KEYWORD_MAX] = 'k';
	kw[STORE_KEYWORD_MAX + 1] = '\0';
	assert_int_equal(store_keyword_check(kw), STORE_INVAL);
}

/* ---- create / foreach ---------------------------------------------------------- */

static int collect_mb(const struct store_mailbox *mb, void *arg)
{
	char *out = arg;

	strcat(out, mb->name);
	strcat(out, mb->subscribed ? "+," : ",");
	return 0;
}

static int stop_at_two(const struct store_mailbox *mb, void *arg)
{
	int *n = arg;

	(void)mb;
	return ++*n == 2 ? 42 : 0;
}

static void test_create(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 0), other = user_add(f, "bob", 0);
	struct store_mailbox mb, mb2, inbox = mbox(f, uid, "INBOX");
	char names[2048] = "";
	int n = 0;

	assert_int_equal(mbox_create(f, uid, "Work", 0, &mb), STORE_OK);
	assert_string_equal(mb.name, "Work");
	assert_int_equal(mb.uidnext, 1);
	assert_int_equal(mb.messages, 0);
	assert_int_equal(mb.unseen, 0);
	assert_false(mb.subscribed);
	assert_true(mb.uidvalidity > inbox.uidvalidity);
	assert_int_equal(store_mailbox_get_by_id(f->st, uid, mb.id, &mb2), STORE_OK);
	assert_string_equal(mb2.name, "Work");
	assert_int_equal(mb2.uidvalidity, mb.uidvalidity);
	assert_int_equal(store_mailbox_get_by_id(f->st, other, mb.id, &mb2), STORE_NOTFOUND);
	assert_int_equal(store_mailbox_get_by_id(f->st, uid, 99999, &mb2), STORE_NOTFOUND);

	/* superiors are created; an existing one is left alone */
	assert_int_equal(mbox_create(f, uid, "a/b/c", STORE_SU_ARCHIVE, &mb), STORE_OK);
	assert_string_equal(mb.name, "a/b/c");
	assert_int_equal(mb.special_use, STORE_SU_ARCHIVE);
	assert_int_equal(mbox(f, uid, "a").special_use, 0);
	assert_int_equal(mbox(f, uid, "a/b").special_use, 0);
	assert_int_equal(mbox_create(f, uid, "a/x", 0, NULL), STORE_OK);
	assert_int_equal(mbox_create(f, uid, "INBOX/Sub", 0, NULL), STORE_OK);

	/* errors */
	assert_int_equal(mbox_create(f, uid, "Work", 0, NULL), STORE_EXISTS);
	assert_int_equal(mbox_create(f, uid, "a/b", 0, NULL), STORE_EXISTS);
	assert_int_equal(mbox_create(f, uid, "inbox", 0, NULL), STORE_EXISTS);
	assert_int_equal(mbox_create(f, uid, "Sent", 0, NULL), STORE_EXISTS);
	assert_int_equal(mbox_create(f, uid, "", 0, NULL), STORE_INVAL);
	assert_int_equal(mbox_create(f, uid, "x//y", 0, NULL), STORE_INVAL);
	assert_int_equal(mbox_create(f, uid, "x/", 0, NULL), STORE_INVAL);
	assert_int_equal(mbox_create(f, uid, "/x", 0, NULL), STORE_INVAL);
	assert_int_equal(mbox_create(f, uid, "x\r\ny", 0, NULL), STORE_INVAL);
	assert_int_equal(mbox_create(f, uid, NULL, 0, NULL), STORE_INVAL);
	assert_int_equal(mbox_create(f, uid, "Bad", 1u << 9, NULL), STORE_INVAL);
	assert_int_equal(mbox_create(f, 4242, "Nobody", 0, NULL), STORE_NOTFOUND);
	assert_int_equal(store_mailbox_get(f->st, uid, "x", &mb2), STORE_NOTFOUND);
	/* names are case-sensitive except INBOX */
	assert_int_equal(mbox_create(f, uid, "work", 0, NULL), STORE_OK);

	/* foreach: name order, this user only, subscribed as stored */
	assert_int_equal(store_mailbox_foreach(f->st, uid, collect_mb, names), 0);
	assert_string_equal(names, "Archive+,Drafts+,INBOX+,INBOX/Sub,Junk+,Sent+,Trash+,Work,"
				   "a,a/b,a/b/c,a/x,work,");
	names[0] = '\0';
	assert_int_equal(store_mailbox_foreach(f->st, other, collect_mb, names), 0);
	assert_string_equal(names, "Archive+,Drafts+,INBOX+,Junk+,Sent+,Trash+,");
	names[0] = '\0';
	assert_int_equal(store_mailbox_foreach(f->st, 4242, collect_mb, names), 0);
	assert_string_equal(names, "");
	assert_int_equal(store_mailbox_foreach(f->st, uid, stop_at_two, &n), 42);
	assert_int_equal(n, 2);
	check_counts(f, uid);
}

static void test_create_long_names(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 0);
	char a[STORE_MBOX_MAX], b[STORE_MBOX_MAX];
	struct store_mailbox ma, mb;

	/* two 511-byte names sharing the first 443+ bytes: hashed keys */
	memset(a, 'n', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	strcpy(b, a);
	b[500] = 'm';
	assert_int_equal(mbox_create(f, uid, a, 0, &ma), STORE_OK);
	assert_int_equal(mbox_create(f, uid, b, 0, &mb), STORE_OK);
	assert_int_equal(mbox_create(f, uid, a, 0, NULL), STORE_EXISTS);
	assert_int_equal(mbox(f, uid, a).id, ma.id);
	assert_int_equal(mbox(f, uid, b).id, mb.id);
	assert_int_equal(subscribe(f, uid, b, true), STORE_OK);
	assert_false(mbox(f, uid, a).subscribed);
	assert_true(mbox(f, uid, b).subscribed);
	assert_int_equal(mbox_delete(f, uid, a), STORE_OK);
	assert_int_equal(mbox(f, uid, b).id, mb.id);
}

static int collect_name(const char *name, void *arg)
{
	strcat(arg, name);
	strcat(arg, ",");
	return 0;
}

static int collect_uid(uint32_t uid, void *arg)
{
	char *out = arg;

	sprintf(out + strlen(out), "%u,", uid);
	return 0;
}

static int collect_kw(unsigned idx, const char *name, void *arg)
{
	char *out = arg;

	sprintf(out + strlen(out), "%u=%s,", idx, name);
	return 0;
}

/* ---- delete ---------------------------------------------------------------------- */

static void test_delete(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 0), u1, u2;
	struct store_mailbox work, child, again;
	struct store_user u;
	uint64_t b0 = bodies(f);
	const char *kw[] = { "$Work" };
	char subs[256] = "";

	assert_int_equal(mbox_create(f, uid, "Work", 0, &work), STORE_OK);
	assert_int_equal(mbox_create(f, uid, "Work/Child", 0, &child), STORE_OK);
	assert_int_equal(subscribe(f, uid, "Work", true), STORE_OK);
	assert_int_equal(append(f, uid, work.id, "Subject: only here\r\n\r\n1\r\n", 0, kw, 1,
				&u1), STORE_OK);
	assert_int_equal(append(f, uid, work.id, "Subject: shared\r\n\r\n2\r\n", STORE_F_SEEN,
				NULL, 0, &u2), STORE_OK);
	/* the same body in the child keeps its body alive */
	assert_int_equal(append(f, uid, child.id, "Subject: shared\r\n\r\n2\r\n", 0, NULL, 0,
				NULL), STORE_OK);
	assert_int_equal(expunge(f, uid, work.id, &u1, 1), STORE_OK);
	assert_int_equal(append(f, uid, work.id, "Subject: only here\r\n\r\n1\r\n", 0, NULL, 0,
				&u1), STORE_OK);
	assert_int_equal(bodies(f), b0 + 2);
	check_counts(f, uid);

	assert_int_equal(mbox_delete(f, uid, "Work"), STORE_OK);
	assert_int_equal(store_mailbox_get(f->st, uid, "Work", &again), STORE_NOTFOUND);
	assert_int_equal(store_mailbox_get_by_id(f->st, uid, work.id, &again), STORE_NOTFOUND);
	assert_int_equal(store_msg_foreach(f->st, uid, work.id, scan_cb, &(struct scan){ 0 }),
			 STORE_NOTFOUND);
	assert_int_equal(bodies(f), b0 + 1);	/* "only here" freed, "shared" kept */
	assert_int_equal(store_user_get(f->st, "alice", &u), STORE_OK);
	assert_int_equal(u.messages, 1);
	assert_int_equal(mbox(f, uid, "Work/Child").id, child.id);	/* inferior stays */
	assert_int_equal(store_subscription_foreach(f->st, uid, collect_name, subs), 0);
	assert_non_null(strstr(subs, ",Work,"));	/* RFC 3501: not removed */
	check_counts(f, uid);

	/* a new "Work": new id, new UIDVALIDITY, empty keyword table, no tombstones */
	assert_int_equal(mbox_create(f, uid, "Work", 0, &again), STORE_OK);
	assert_true(again.id != work.id);
	assert_true(again.uidvalidity > work.uidvalidity);
	assert_true(again.subscribed);	/* subscriptions are by name and stayed */
	assert_int_equal(again.uidnext, 1);

	assert_int_equal(mbox_delete(f, uid, "Work"), STORE_OK);
	assert_int_equal(mbox_delete(f, uid, "Work"), STORE_NOTFOUND);
	assert_int_equal(mbox_delete(f, uid, "INBOX"), STORE_INVAL);
	assert_int_equal(mbox_delete(f, uid, "inbox"), STORE_INVAL);
	assert_int_equal(mbox_delete(f, uid, "a//b"), STORE_INVAL);
	assert_int_equal(mbox_delete(f, 4242, "Sent"), STORE_NOTFOUND);
	assert_int_equal(mbox_delete(f, uid, "Sent"), STORE_OK);	/* special use: allowed */
	assert_int_equal(mbox_delete(f, uid, "Work/Child"), STORE_OK);
	assert_int_equal(bodies(f), b0);
	check_counts(f, uid);
}

/* ---- rename ---------------------------------------------------------------------- */

static void test_rename(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 0), m1;
	struct store_mailbox a, ab, abc, moved;
	char names[1024] = "", subs[512] = "";

	assert_int_equal(mbox_create(f, uid, "a/b/c", 0, &abc), STORE_OK);
	a = mbox(f, uid, "a");
	ab = mbox(f, uid, "a/b");
	assert_int_equal(mbox_create(f, uid, "ab", 0, NULL), STORE_OK);	/* not an inferior */
	assert_int_equal(subscribe(f, uid, "a/b", true), STORE_OK);
	assert_int_equal(subscribe(f, uid, "a/b/c", true), STORE_OK);
	assert_int_equal(append(f, uid, abc.id, "m\r\n", 0, NULL, 0, &m1), STORE_OK);

	/* errors */
	assert_int_equal(mbox_rename(f, uid, "nope", "x"), STORE_NOTFOUND);
	assert_int_equal(mbox_rename(f, uid, "a", "ab"), STORE_EXISTS);
	assert_int_equal(mbox_rename(f, uid, "a", "Inbox"), STORE_EXISTS);
	assert_int_equal(mbox_rename(f, uid, "a", "a"), STORE_EXISTS);
	assert_int_equal(mbox_rename(f, uid, "a", "a/z"), STORE_INVAL);
	assert_int_equal(mbox_rename(f, uid, "a", "x//y"), STORE_INVAL);
	assert_int_equal(mbox_rename(f, uid, "", "x"), STORE_INVAL);
	assert_int_equal(mbox_rename(f, 4242, "a", "x"), STORE_NOTFOUND);

	/* the tree moves, ids and UIDVALIDITY kept, superiors created */
	assert_int_equal(mbox_rename(f, uid, "a/b", "n/m"), STORE_OK);
	moved = mbox(f, uid, "n/m");
	assert_int_equal(moved.id, ab.id);
	assert_int_equal(moved.uidvalidity, ab.uidvalidity);
	moved = mbox(f, uid, "n/m/c");
	assert_int_equal(moved.id, abc.id);
	assert_int_equal(moved.uidvalidity, abc.uidvalidity);
	assert_int_equal(moved.messages, 1);
	assert_true(moved.subscribed);
	assert_int_equal(msg_get(f, uid, abc.id, m1).uid, m1);
	assert_int_equal(mbox(f, uid, "a").id, a.id);
	assert_int_equal(store_mailbox_foreach(f->st, uid, collect_mb, names), 0);
	assert_string_equal(names, "Archive+,Drafts+,INBOX+,Junk+,Sent+,Trash+,a,ab,n,n/m+,"
				   "n/m/c+,");
	assert_int_equal(store_subscription_foreach(f->st, uid, collect_name, subs), 0);
	assert_string_equal(subs, "Archive,Drafts,INBOX,Junk,Sent,Trash,n/m,n/m/c,");

	/* "p/q" -> "p" where "p" was deleted and "p/q/q" becomes "p/q" */
	assert_int_equal(mbox_create(f, uid, "p/q/q", 0, &abc), STORE_OK);
	assert_int_equal(mbox_delete(f, uid, "p"), STORE_OK);
	assert_int_equal(mbox_rename(f, uid, "p/q", "p"), STORE_OK);
	assert_int_equal(mbox(f, uid, "p/q").id, abc.id);
	/* a rename that would make an inferior's name too long fails whole */
	{
		char longname[STORE_MBOX_MAX];

		memset(longname, 'L', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';
		assert_int_equal(mbox_rename(f, uid, "p", longname), STORE_INVAL);
		assert_int_equal(mbox(f, uid, "p/q").id, abc.id);
	}
	/* an inferior's new name already taken: nothing renamed */
	assert_int_equal(mbox_create(f, uid, "z/q", 0, NULL), STORE_OK);
	assert_int_equal(mbox_delete(f, uid, "z"), STORE_OK);
	assert_int_equal(mbox_rename(f, uid, "p", "z"), STORE_EXISTS);
	assert_int_equal(mbox(f, uid, "p/q").id, abc.id);
	check_counts(f, uid);
}

static void test_rename_inbox(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 0), u1, u2, u3;
	struct store_mailbox in, old;
	const char *kw[] = { "$Label2", "$Label1" };
	char gone[128] = "", kws[128] = "";
	uint64_t b0 = bodies(f);

	assert_int_equal(mbox_create(f, uid, "INBOX/Kid", 0, NULL), STORE_OK);
	u1 = deliver(f, "alice", "Subject: one\r\n\r\n1\r\n", NULL);
	in = mbox(f, uid, "INBOX");
	assert_int_equal(append(f, uid, in.id, "two\r\n", STORE_F_SEEN, kw, 2, &u2), STORE_OK);
	assert_int_equal(append(f, uid, in.id, "three\r\n", 0, kw + 1, 1, &u3), STORE_OK);
	assert_int_equal(expunge(f, uid, in.id, &u3, 1), STORE_OK);
	in = mbox(f, uid, "INBOX");

	assert_int_equal(mbox_rename(f, uid, "inbox", "Old/Inbox"), STORE_OK);
	old = mbox(f, uid, "Old/Inbox");
	assert_true(old.id != in.id);
	assert_true(old.uidvalidity > in.uidvalidity);
	assert_int_equal(old.messages, 2);
	assert_int_equal(old.unseen, 1);
	assert_int_equal(old.uidnext, in.uidnext);
	assert_int_equal(msg_get(f, uid, old.id, u1).flags & STORE_F_SEEN, 0);
	assert_int_equal(msg_get(f, uid, old.id, u2).flags & STORE_F_SEEN, STORE_F_SEEN);
	assert_int_equal(msg_get(f, uid, old.id, u2).keywords, 3);	/* same table */
	assert_int_equal(store_mailbox_keywords(f->st, uid, old.id, collect_kw, kws), 0);
	assert_string_equal(kws, "0=$Label2,1=$Label1,");
	kws[0] = '\0';

	/* INBOX: same id and UIDVALIDITY, empty, UIDs not reused, tombstones */
	{
		struct store_mailbox now = mbox(f, uid, "INBOX");

		assert_int_equal(now.id, in.id);
		assert_int_equal(now.uidvalidity, in.uidvalidity);
		assert_int_equal(now.messages, 0);
		assert_int_equal(now.unseen, 0);
		assert_int_equal(now.bytes, 0);
		assert_int_equal(now.uidnext, in.uidnext);
		assert_int_equal(now.highestmodseq, in.highestmodseq + 1);
		assert_int_equal(store_vanished_foreach(f->st, uid, in.id, in.highestmodseq,
							collect_uid, gone), 0);
		sprintf(kws, "%u,%u,", u1, u2);
		assert_string_equal(gone, kws);
	}
	assert_int_equal(mbox(f, uid, "INBOX/Kid").messages, 0);	/* inferiors stay */
	assert_int_equal(bodies(f), b0 + 2);
	/* new deliveries land in the empty INBOX with fresh UIDs */
	assert_true(deliver(f, "alice", "four\r\n", NULL) >= in.uidnext);
	assert_int_equal(mbox_rename(f, uid, "INBOX", "Old/Inbox"), STORE_EXISTS);
	/* renaming an empty INBOX: no tombstone, highestmodseq unchanged */
	assert_int_equal(mbox_rename(f, uid, "INBOX", "Older"), STORE_OK);
	in = mbox(f, uid, "INBOX");
	assert_int_equal(mbox_rename(f, uid, "INBOX", "Oldest"), STORE_OK);
	assert_int_equal(mbox(f, uid, "INBOX").highestmodseq, in.highestmodseq);
	assert_int_equal(mbox(f, uid, "Oldest").messages, 0);
	check_counts(f, uid);
}

static void test_rename_inbox_keywords(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 0), u1;
	const char *kw[] = { "$B", "$A" };
	char out[128] = "";
	struct store_mailbox in = mbox(f, uid, "INBOX"), old;

	assert_int_equal(append(f, uid, in.id, "x\r\n", 0, kw, 2, &u1), STORE_OK);
	assert_int_equal(mbox_rename(f, uid, "INBOX", "Before"), STORE_OK);
	old = mbox(f, uid, "Before");
	assert_int_equal(store_mailbox_keywords(f->st, uid, old.id, collect_kw, out), 0);
	assert_string_equal(out, "0=$B,1=$A,");
	assert_int_equal(msg_get(f, uid, old.id, u1).keywords, 3);
	check_counts(f, uid);
}

/* ---- subscriptions ------------------------------------------------------------------ */

static void test_subscriptions(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 0), other = user_add(f, "bob", 0);
	char subs[512] = "";

	assert_int_equal(subscribe(f, uid, "Ghost/Folder", true), STORE_OK);	/* no mailbox */
	assert_int_equal(subscribe(f, uid, "Ghost/Folder", true), STORE_OK);	/* again: OK */
	assert_int_equal(subscribe(f, uid, "Trash", false), STORE_OK);
	assert_int_equal(subscribe(f, uid, "Trash", false), STORE_NOTFOUND);
	assert_int_equal(subscribe(f, uid, "never", false), STORE_NOTFOUND);
	assert_int_equal(subscribe(f, uid, "inbox", false), STORE_OK);	/* = INBOX */
	assert_false(mbox(f, uid, "INBOX").subscribed);
	assert_int_equal(subscribe(f, uid, "InBoX", true), STORE_OK);
	assert_true(mbox(f, uid, "INBOX").subscribed);
	assert_false(mbox(f, uid, "Trash").subscribed);
	assert_int_equal(subscribe(f, uid, "a//b", true), STORE_INVAL);
	assert_int_equal(subscribe(f, uid, "", true), STORE_INVAL);
	assert_int_equal(subscribe(f, 4242, "x", true), STORE_NOTFOUND);

	assert_int_equal(store_subscription_foreach(f->st, uid, collect_name, subs), 0);
	assert_string_equal(subs, "Archive,Drafts,Ghost/Folder,INBOX,Junk,Sent,");
	subs[0] = '\0';
	assert_int_equal(store_subscription_foreach(f->st, other, collect_name, subs), 0);
	assert_string_equal(subs, "Archive,Drafts,INBOX,Junk,Sent,Trash,");
	/* creating a subscribed name shows it subscribed */
	{
		struct store_mailbox mb;

		assert_int_equal(mbox_create(f, uid, "Ghost/Folder", 0, &mb), STORE_OK);
		assert_true(mb.subscribed);
		assert_false(mbox(f, uid, "Ghost").subscribed);
	}
}

/* ---- keyword table --------------------------------------------------------------------- */

static void flags_done(int err, const struct store_flag_result *res, size_t n, void *arg)
{
	struct done *d = arg;

	(void)res;
	(void)n;
	d->n++;
	d->err = err;
}

static int add_keyword(struct fx *f, uint32_t userid, uint32_t mboxid, uint32_t uid,
		       const char *kw)
{
	struct done d = { 0 };

	store_msg_store_flags(f->st, userid, mboxid, &uid, 1, STORE_FLAGS_ADD, 0, &kw, 1, 0,
			      flags_done, &d);
	run_until(f, &d.n, 1);
	return d.err;
}

static void test_keyword_table(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 0), m1;
	struct store_mailbox in = mbox(f, uid, "INBOX");
	char name[32], out[4096] = "";
	const char *two[] = { "$new", "$Label0" };
	unsigned i;

	assert_int_equal(append(f, uid, in.id, "x\r\n", 0, NULL, 0, &m1), STORE_OK);
	for (i = 0; i < STORE_KEYWORDS_MAX; i++) {
		sprintf(name, "$Label%u", i);
		assert_int_equal(add_keyword(f, uid, in.id, m1, name), STORE_OK);
	}
	assert_int_equal(msg_get(f, uid, in.id, m1).keywords, UINT64_MAX);
	/* case-insensitive: no new entry */
	assert_int_equal(add_keyword(f, uid, in.id, m1, "$LABEL7"), STORE_OK);
	assert_int_equal(add_keyword(f, uid, in.id, m1, "$label63"), STORE_OK);
	/* the 65th name does not fit; nothing of the op is done */
	assert_int_equal(add_keyword(f, uid, in.id, m1, "$Label64"), STORE_FULL);
	{
		struct done d = { 0 };
		uint32_t u = m1;

		store_msg_store_flags(f->st, uid, in.id, &u, 1, STORE_FLAGS_ADD, STORE_F_FLAGGED,
				      two, 2, 0, flags_done, &d);
		run_until(f, &d.n, 1);
		assert_int_equal(d.err, STORE_FULL);
		assert_int_equal(msg_get(f, uid, in.id, m1).flags & STORE_F_FLAGGED, 0);
	}
	assert_int_equal(append(f, uid, in.id, "y\r\n", 0, two, 2, NULL), STORE_FULL);
	assert_int_equal(append(f, uid, in.id, "y\r\n", 0, two + 1, 1, NULL), STORE_OK);
	assert_int_equal(add_keyword(f, uid, in.id, m1, "bad keyword"), STORE_INVAL);
	assert_int_equal(add_keyword(f, uid, in.id, m1, "\\Seen"), STORE_INVAL);
	assert_int_equal(store_mailbox_keywords(f->st, uid, in.id, collect_kw, out), 0);
	assert_true(strncmp(out, "0=$Label0,1=$Label1,", 20) == 0);
	assert_non_null(strstr(out, ",63=$Label63,"));
	assert_null(strstr(out, "64="));
	assert_int_equal(store_mailbox_keywords(f->st, uid, 99999, collect_kw, out),
			 STORE_NOTFOUND);
	/* other mailboxes have their own table */
	out[0] = '\0';
	assert_int_equal(store_mailbox_keywords(f->st, uid, mbox(f, uid, "Sent").id, collect_kw,
						out), 0);
	assert_string_equal(out, "");
	check_counts(f, uid);
}

/* ---- user delete ------------------------------------------------------------------------- */

static void test_user_del_cleans_up(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 0), m1;
	struct store_mailbox in = mbox(f, uid, "INBOX");
	const char *kw[] = { "$K" };
	struct done d = { 0 };
	char out[256] = "";

	assert_int_equal(append(f, uid, in.id, "x\r\n", 0, kw, 1, &m1), STORE_OK);
	assert_int_equal(expunge(f, uid, in.id, &m1, 1), STORE_OK);
	assert_int_equal(subscribe(f, uid, "Ghost", true), STORE_OK);
	store_user_del(f->st, "alice", done_cb, &d);
	run_until(f, &d.n, 1);
	assert_int_equal(d.err, STORE_OK);
	assert_int_equal(store_subscription_foreach(f->st, uid, collect_name, out), 0);
	assert_string_equal(out, "");
	assert_int_equal(store_mailbox_foreach(f->st, uid, collect_mb, out), 0);
	assert_string_equal(out, "");
	assert_int_equal(store_vanished_foreach(f->st, uid, in.id, 0, collect_uid, out),
			 STORE_NOTFOUND);
	assert_int_equal(store_mailbox_keywords(f->st, uid, in.id, collect_kw, out),
			 STORE_NOTFOUND);
	assert_int_equal(bodies(f), 0);
}

/* ---- format upgrade ---------------------------------------------------------------------- */

/* Turn the closed environment at dir back into format 1: v1 mailbox
 * records (with the subscribed byte), no IMAP databases. */
static void downgrade_to_format1(const char *dir)
{
	static const char *const imap_dbs[] = { "subs", "keywords", "vanished", "bodymeta" };
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi mboxes, subs, meta, dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	uint8_t fmt = 1;
	size_t i;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 64 << 20), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "mailboxes", 0, &mboxes), 0);
	assert_int_equal(mdb_dbi_open(txn, "subs", 0, &subs), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	assert_int_equal(mdb_cursor_open(txn, mboxes, &cur), 0);
	while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
		const uint8_t *p = v.mv_data;
		uint8_t rec[40 + STORE_MBOX_MAX], sk[4 + STORE_MBOX_MAX], kcopy[8];
		size_t name_len = ((size_t)p[41] << 8) | p[42];
		MDB_val sv, skv = { .mv_size = 4 + name_len, .mv_data = sk }, nv;

		assert_int_equal(p[0], 2);
		memcpy(rec, p, 37);
		rec[0] = 1;
		memcpy(sk, k.mv_data, 4);
		memcpy(sk + 4, p + 43, name_len);
		rec[37] = mdb_get(txn, subs, &skv, &sv) == 0;
		rec[38] = p[41];
		rec[39] = p[42];
		memcpy(rec + 40, p + 43, name_len);
		nv.mv_size = 40 + name_len;
		nv.mv_data = rec;
		/* the key must not point into the page the put rewrites */
		memcpy(kcopy, k.mv_data, sizeof(kcopy));
		k.mv_data = kcopy;
		assert_int_equal(mdb_cursor_put(cur, &k, &nv, MDB_CURRENT), 0);
	}
	mdb_cursor_close(cur);
	for (i = 0; i < sizeof(imap_dbs) / sizeof(imap_dbs[0]); i++) {
		assert_int_equal(mdb_dbi_open(txn, imap_dbs[i], 0, &dbi), 0);
		assert_int_equal(mdb_drop(txn, dbi, 1), 0);
	}
	k.mv_size = 6;
	k.mv_data = "format";
	v.mv_size = 1;
	v.mv_data = &fmt;
	assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void test_upgrade_from_format1(void **state)
{
	struct fx *f = *state;
	uint32_t uid = user_add(f, "alice", 0), m1, m2;
	struct store_mailbox in = mbox(f, uid, "INBOX"), work;
	char subs[512] = "";

	m1 = deliver(f, "alice", "one\r\n", NULL);
	m2 = deliver(f, "alice", "two\r\n", NULL);
	assert_int_equal(append(f, uid, in.id, "three\r\n", STORE_F_SEEN, NULL, 0, NULL),
			 STORE_OK);
	assert_int_equal(mbox_create(f, uid, "Work", 0, &work), STORE_OK);
	assert_int_equal(subscribe(f, uid, "Junk", false), STORE_OK);
	assert_int_equal(subscribe(f, uid, "Work", true), STORE_OK);
	store_close(&f->st);
	downgrade_to_format1(f->dir);

	assert_int_equal(fx_open(f), 0);
	in = mbox(f, uid, "INBOX");
	assert_int_equal(in.messages, 3);
	assert_int_equal(in.unseen, 2);
	assert_true(mbox(f, uid, "Work").subscribed);
	assert_false(mbox(f, uid, "Junk").subscribed);
	assert_int_equal(store_subscription_foreach(f->st, uid, collect_name, subs), 0);
	assert_string_equal(subs, "Archive,Drafts,INBOX,Sent,Trash,Work,");
	assert_int_equal(msg_get(f, uid, in.id, m1).uid, m1);
	(void)m2;
	check_counts(f, uid);
	/* and it is format 2 now: a second open does not upgrade again */
	store_close(&f->st);
	assert_int_equal(fx_open(f), 0);
	assert_int_equal(mbox(f, uid, "INBOX").unseen, 2);
	/* the new databases work after the upgrade */
	assert_int_equal(mbox_create(f, uid, "New", 0, NULL), STORE_OK);
	check_counts(f, uid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_checks),
		cmocka_unit_test_setup_teardown(test_create, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_create_long_names, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_delete, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_rename, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_rename_inbox, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_rename_inbox_keywords, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_subscriptions, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_keyword_table, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_user_del_cleans_up, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_from_format1, fx_setup, fx_teardown),
	};

	alarm(120);
	evthread_use_pthreads();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
