/*
 * test_imap_view.c - unit tests for the pure parts of the IMAP session
 * core: the view's UID <-> sequence number mapping (imap_view_seq,
 * imap_view_lower_bound), resolving sequence and UID sets against a
 * view (imap_view_resolve: '*', ranges beyond the mailbox, empty
 * mailbox, gaps between UIDs), the sync diff (imap_view_diff: gone,
 * changed, added, idempotence), keyword lookup, and LIST pattern
 * matching (imap_list_match: '*', '%', INBOX case, long names, many
 * wildcards).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "imap_arena.h"
#include "imap_seqset.h"
#include "imap_session.h"

static struct imap_seqset *ss(struct imap_arena *a, const char *s)
{
	const char *err = NULL;
	struct imap_seqset *set = imap_seqset_parse(s, strlen(s), a, &err);

	if (set == NULL)
		fail_msg("seqset <%s>: %s", s, err);
	return set;
}

/* A view with the given UIDs (flags 0, modseq = uid). */
static void view_make(struct imap_view *v, const uint32_t *uids, size_t n)
{
	memset(v, 0, sizeof(*v));
	v->msgs = calloc(n ? n : 1, sizeof(*v->msgs));
	assert_non_null(v->msgs);
	for (size_t i = 0; i < n; i++) {
		v->msgs[i].uid = uids[i];
		v->msgs[i].modseq = uids[i];
	}
	v->n = v->cap = n;
}

static void view_free(struct imap_view *v)
{
	free(v->msgs);
	for (unsigned i = 0; i < IMAP_MAX_KEYWORDS; i++)
		free(v->kw_names[i]);
	memset(v, 0, sizeof(*v));
}

/* Resolve and render as "lo:hi,lo:hi" for easy comparison. */
static const char *resolve(struct imap_arena *a, const struct imap_view *v, const char *set,
			   bool uid)
{
	static char buf[256];
	struct imap_range *r;
	size_t n;
	const char *err = NULL;

	if (imap_view_resolve(v, ss(a, set), uid, a, &r, &n, &err) < 0) {
		snprintf(buf, sizeof(buf), "ERR %s", err);
		return buf;
	}
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(buf);
		snprintf(buf + l, sizeof(buf) - l, "%s%u:%u", i ? "," : "", r[i].lo, r[i].hi);
	}
	return buf;
}

static void test_seq_uid_mapping(void **state)
{
	static const uint32_t uids[] = { 2, 4, 6, 8, 10 };
	struct imap_view v;

	view_make(&v, uids, 5);
	assert_int_equal(imap_view_seq(&v, 2), 1);
	assert_int_equal(imap_view_seq(&v, 10), 5);
	assert_int_equal(imap_view_seq(&v, 6), 3);
	assert_int_equal(imap_view_seq(&v, 1), 0);
	assert_int_equal(imap_view_seq(&v, 5), 0);
	assert_int_equal(imap_view_seq(&v, 11), 0);
	assert_int_equal(imap_view_lower_bound(&v, 0), 0);
	assert_int_equal(imap_view_lower_bound(&v, 5), 2);
	assert_int_equal(imap_view_lower_bound(&v, 10), 4);
	assert_int_equal(imap_view_lower_bound(&v, 11), 5);
	assert_non_null(imap_view_msg(&v, 1));
	assert_int_equal(imap_view_msg(&v, 5)->uid, 10);
	assert_null(imap_view_msg(&v, 0));
	assert_null(imap_view_msg(&v, 6));
	view_free(&v);

	/* big view: every UID odd, check all */
	uint32_t *big = malloc(10000 * sizeof(*big));
	assert_non_null(big);
	for (uint32_t i = 0; i < 10000; i++)
		big[i] = 2 * i + 1;
	view_make(&v, big, 10000);
	for (uint32_t i = 0; i < 10000; i++) {
		assert_int_equal(imap_view_seq(&v, 2 * i + 1), i + 1);
		assert_int_equal(imap_view_seq(&v, 2 * i + 2), 0);
	}
	free(big);
	view_free(&v);
}

static void test_resolve_seq(void **state)
{
	static const uint32_t uids[] = { 2, 4, 6, 8, 10 };
	struct imap_arena *a = imap_arena_new(0);
	struct imap_view v;

	view_make(&v, uids, 5);
	assert_string_equal(resolve(a, &v, "1", false), "1:1");
	assert_string_equal(resolve(a, &v, "2:3,5", false), "2:3,5:5");
	assert_string_equal(resolve(a, &v, "3:2", false), "2:3");
	assert_string_equal(resolve(a, &v, "*", false), "5:5");
	assert_string_equal(resolve(a, &v, "1:*", false), "1:5");
	assert_string_equal(resolve(a, &v, "4:*", false), "4:5");
	assert_string_equal(resolve(a, &v, "6", false), "ERR Invalid message sequence number");
	assert_string_equal(resolve(a, &v, "1:6", false), "ERR Invalid message sequence number");
	view_free(&v);

	view_make(&v, NULL, 0);
	assert_string_equal(resolve(a, &v, "1:*", false), "");
	assert_string_equal(resolve(a, &v, "*", false), "");
	assert_string_equal(resolve(a, &v, "1", false), "ERR Invalid message sequence number");
	view_free(&v);
	imap_arena_destroy(&a);
}

static void test_resolve_uid(void **state)
{
	static const uint32_t uids[] = { 2, 4, 6, 8, 10 };
	struct imap_arena *a = imap_arena_new(0);
	struct imap_view v;

	view_make(&v, uids, 5);
	assert_string_equal(resolve(a, &v, "3:7", true), "2:3");
	assert_string_equal(resolve(a, &v, "1:*", true), "1:5");
	assert_string_equal(resolve(a, &v, "2", true), "1:1");
	assert_string_equal(resolve(a, &v, "3", true), "");
	assert_string_equal(resolve(a, &v, "100", true), "");
	/* "n:*" with n above the last UID still means the last message */
	assert_string_equal(resolve(a, &v, "11:*", true), "5:5");
	assert_string_equal(resolve(a, &v, "*", true), "5:5");
	/* adjacent UID ranges merge into one sequence range */
	assert_string_equal(resolve(a, &v, "2,4,6", true), "1:3");
	assert_string_equal(resolve(a, &v, "2,3,8:9", true), "1:1,4:4");
	assert_string_equal(resolve(a, &v, "1:4294967295", true), "1:5");
	view_free(&v);

	view_make(&v, NULL, 0);
	assert_string_equal(resolve(a, &v, "1:*", true), "");
	assert_string_equal(resolve(a, &v, "5", true), "");
	view_free(&v);
	imap_arena_destroy(&a);
}

/* ---- diff ----------------------------------------------------------------- */

struct rec {
	char log[512];
};

static void r_gone(void *arg, size_t idx)
{
	struct rec *r = arg;
	size_t l = strlen(r->log);
	snprintf(r->log + l, sizeof(r->log) - l, "G%zu ", idx);
}

static void r_changed(void *arg, size_t idx, const struct store_msg *m)
{
	struct rec *r = arg;
	size_t l = strlen(r->log);
	snprintf(r->log + l, sizeof(r->log) - l, "C%zu:%u ", idx, m->uid);
}

static void r_added(void *arg, const struct store_msg *m)
{
	struct rec *r = arg;
	size_t l = strlen(r->log);
	snprintf(r->log + l, sizeof(r->log) - l, "A%u ", m->uid);
}

static const struct imap_view_diff_cbs rcbs = { r_gone, r_changed, r_added };

static struct store_msg sm(uint32_t uid, uint32_t flags, uint64_t kw, uint64_t modseq)
{
	struct store_msg m;
	memset(&m, 0, sizeof(m));
	m.uid = uid;
	m.flags = flags;
	m.keywords = kw;
	m.modseq = modseq;
	return m;
}

static void test_diff(void **state)
{
	static const uint32_t uids[] = { 2, 4, 6, 8, 10 };
	struct imap_view v;
	struct rec r;

	view_make(&v, uids, 5);
	v.msgs[1].flags = IMAP_FLAG_SEEN;
	v.msgs[2].flags = IMAP_FLAG_RECENT;	/* session-local, never "changed" */

	/* nothing new: no callbacks */
	memset(&r, 0, sizeof(r));
	struct store_msg same[] = { sm(4, IMAP_FLAG_SEEN, 0, 4), sm(6, 0, 0, 6) };
	imap_view_diff(&v, same, 2, NULL, 0, &rcbs, &r);
	assert_string_equal(r.log, "");

	/* flags, keywords and modseq changes; vanished; added; an entry for
	 * a UID below the last that the view does not have is ignored */
	memset(&r, 0, sizeof(r));
	struct store_msg ch[] = {
		sm(3, 0, 0, 20),			/* unknown, below last */
		sm(4, IMAP_FLAG_SEEN | IMAP_FLAG_FLAGGED, 0, 21),
		sm(6, 0, 1, 22),			/* keyword */
		sm(8, 0, 0, 23),			/* modseq only */
		sm(11, 0, 0, 24),
		sm(12, IMAP_FLAG_SEEN, 0, 25),
	};
	static const uint32_t van[] = { 1, 2, 9, 10 };
	imap_view_diff(&v, ch, 6, van, 4, &rcbs, &r);
	assert_string_equal(r.log, "G0 G4 C1:4 C2:6 C3:8 A11 A12 ");

	/* already-marked expunged messages are neither gone again nor changed */
	v.msgs[0].expunged = true;
	memset(&r, 0, sizeof(r));
	struct store_msg ch2[] = { sm(2, IMAP_FLAG_SEEN, 0, 30) };
	static const uint32_t van2[] = { 2 };
	imap_view_diff(&v, ch2, 1, van2, 1, &rcbs, &r);
	assert_string_equal(r.log, "");
	view_free(&v);

	/* empty view: everything is added */
	view_make(&v, NULL, 0);
	memset(&r, 0, sizeof(r));
	struct store_msg ch3[] = { sm(1, 0, 0, 1), sm(2, 0, 0, 2) };
	imap_view_diff(&v, ch3, 2, van, 4, &rcbs, &r);
	assert_string_equal(r.log, "A1 A2 ");
	view_free(&v);
}

static void test_keyword_lookup(void **state)
{
	struct imap_view v;

	view_make(&v, NULL, 0);
	v.kw_names[0] = strdup("$Junk");
	v.kw_names[3] = strdup("MyTag");
	v.n_kw = 4;
	assert_int_equal(imap_view_keyword_lookup(&v, "$junk", 5), 0);
	assert_int_equal(imap_view_keyword_lookup(&v, "MYTAG", 5), 3);
	assert_int_equal(imap_view_keyword_lookup(&v, "MyTa", 4), -1);
	assert_int_equal(imap_view_keyword_lookup(&v, "Other", 5), -1);
	view_free(&v);
}

/* ---- LIST patterns --------------------------------------------------------- */

static void test_list_match(void **state)
{
	assert_true(imap_list_match("*", "INBOX"));
	assert_true(imap_list_match("*", "a/b/c"));
	assert_true(imap_list_match("%", "Sent"));
	assert_false(imap_list_match("%", "a/b"));
	assert_true(imap_list_match("a/%", "a/b"));
	assert_false(imap_list_match("a/%", "a/b/c"));
	assert_false(imap_list_match("a/%", "a"));
	assert_true(imap_list_match("a/*", "a/b/c"));
	assert_true(imap_list_match("a*", "a"));
	assert_true(imap_list_match("a*", "abc/d"));
	assert_true(imap_list_match("%/%", "x/y"));
	assert_false(imap_list_match("%/%", "x"));
	assert_true(imap_list_match("Work*", "Work/2026"));
	assert_false(imap_list_match("Work*", "Projects/2026"));
	assert_true(imap_list_match("*2026", "Projects/2026"));
	assert_true(imap_list_match("", ""));
	assert_false(imap_list_match("", "a"));
	assert_false(imap_list_match("a", ""));
	assert_true(imap_list_match("%", ""));
	/* names are case-sensitive, INBOX is not */
	assert_false(imap_list_match("sent", "Sent"));
	assert_true(imap_list_match("inbox", "INBOX"));
	assert_true(imap_list_match("Inbox/%", "INBOX/x"));
	assert_true(imap_list_match("inbox*", "INBOX"));
	assert_false(imap_list_match("inboxes", "INBOX"));
	/* UTF-8 bytes compare as they are */
	assert_true(imap_list_match("\xc3\x89t%", "\xc3\x89t\xc3\xa9"));

	/* many wildcards: polynomial, not exponential */
	char pat[200], name[2000];
	memset(pat, 0, sizeof(pat));
	for (int i = 0; i < 90; i++) {
		pat[2 * i] = '%';
		pat[2 * i + 1] = '*';
	}
	pat[180] = 'z';
	memset(name, 'a', 1999);
	name[1999] = '\0';
	assert_false(imap_list_match(pat, name));	/* long name: heap rows */
	name[1998] = 'z';
	assert_true(imap_list_match(pat, name));
	name[20] = '\0';
	assert_false(imap_list_match(pat, name));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seq_uid_mapping),
		cmocka_unit_test(test_resolve_seq),
		cmocka_unit_test(test_resolve_uid),
		cmocka_unit_test(test_diff),
		cmocka_unit_test(test_keyword_lookup),
		cmocka_unit_test(test_list_match),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
