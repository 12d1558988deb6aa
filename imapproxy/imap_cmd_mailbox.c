/*
 * imap_cmd_mailbox.c - mailbox commands: SELECT/EXAMINE (RFC 3501, with
 * the CONDSTORE and QRESYNC parameters of RFC 7162), UNSELECT (RFC 3691),
 * CREATE (with USE, RFC 6154), DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
 * LIST (RFC 3501 patterns, RFC 5258 LIST-EXTENDED basics, RFC 3348
 * CHILDREN, RFC 6154 SPECIAL-USE, RFC 5819 RETURN (STATUS)), LSUB and
 * STATUS.
 *
 * Names arrive decoded to UTF-8 by the parser (modified UTF-7 on the
 * wire, or UTF-8 after ENABLE UTF8=ACCEPT) and are stored as UTF-8;
 * every name sent back is re-encoded for the client
 * (imap_write_mailbox).  The hierarchy separator is '/'.
 *
 * LIST builds the answer from one snapshot of the user's mailboxes (and
 * subscriptions when needed): the names, plus every missing superior of
 * a name (shown \Noselect, or \NonExistent under SUBSCRIBED), sorted, so
 * \HasChildren is a look at the names that follow.  The answer is then
 * written in resumable steps (struct list_state), never more than the
 * output's high-water mark at a time.  Pattern matching
 * (imap_list_match) is a dynamic program over pattern x name, linear in
 * their product whatever the wildcards.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_session.h"
#include "imap_utf7.h"
#include "log.h"
#include "node.h"
#include "store.h"

_Static_assert((int)IMAP_SU_SENT == (int)STORE_SU_SENT &&
		       (int)IMAP_SU_DRAFTS == (int)STORE_SU_DRAFTS &&
		       (int)IMAP_SU_TRASH == (int)STORE_SU_TRASH &&
		       (int)IMAP_SU_JUNK == (int)STORE_SU_JUNK &&
		       (int)IMAP_SU_ARCHIVE == (int)STORE_SU_ARCHIVE,
	       "SPECIAL-USE bits of parser and store agree");

/* ---- store errors -------------------------------------------------------- */

void imap_cmd_done_store_error(struct imap_session *s, int err, const char *what)
{
	switch (err) {
	case STORE_NOTFOUND:
		imap_cmd_done(s, "NO", "[NONEXISTENT] %s: no such mailbox", what);
		break;
	case STORE_EXISTS:
		imap_cmd_done(s, "NO", "[ALREADYEXISTS] %s: mailbox already exists", what);
		break;
	case STORE_QUOTA:
		imap_cmd_done(s, "NO", "[OVERQUOTA] %s: quota exceeded", what);
		break;
	case STORE_INVAL:
		imap_cmd_done(s, "NO", "[CANNOT] %s: invalid name or argument", what);
		break;
	case STORE_FULL:
		imap_cmd_done(s, "NO", "[LIMIT] %s: storage limit reached", what);
		break;
	default:
		log_err("imap.store_error", "sid=%" PRIu64 " user=%s op=\"%s\" error=\"%s\"",
			s->serial, s->username, what, store_strerror(err));
		imap_cmd_done(s, "NO", "[UNAVAILABLE] %s: temporary failure, try again", what);
		break;
	}
}

/* ---- SELECT / EXAMINE ---------------------------------------------------- */

struct qresync_ctx {
	const struct imap_seqset *known;	/* NULL = all */
	uint32_t max_known;
	uint32_t *uids;
	size_t n, cap;
	bool oom;
};

static int qr_vanished_cb(uint32_t uid, void *arg)
{
	struct qresync_ctx *c = arg;

	if (c->known != NULL && !imap_seqset_contains(c->known, c->max_known, uid))
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		uint32_t *nu = realloc(c->uids, cap * sizeof(*nu));
		if (nu == NULL) {
			c->oom = true;
			return 1;
		}
		c->uids = nu;
		c->cap = cap;
	}
	c->uids[c->n++] = uid;
	return 0;
}

/* RFC 7162 3.2.5: VANISHED (EARLIER) for UIDs expunged since modseq,
 * then FETCH (UID FLAGS MODSEQ) for messages changed since. */
static int qresync_report(struct imap_session *s, const struct imap_args_select *a)
{
	struct imap_view *v = &s->view;
	struct qresync_ctx c = { .known = a->known_uids };
	uint64_t since = imap_modseq_in(a->modseq);	/* a store value */

	if (a->uidvalidity != v->uidvalidity)
		return STORE_OK;	/* client's cache is void: full resync */
	c.max_known = v->uidnext > 0 ? v->uidnext - 1 : 0;
	int err = store_vanished_foreach(s->store, s->userid, v->mboxid, since, qr_vanished_cb,
					 &c);
	if (c.oom)
		err = STORE_IO;
	if (err == STORE_OK && c.n > 0) {
		imap_writes(s, "* VANISHED (EARLIER) ");
		imap_write_uidset(s, c.uids, c.n);
		imap_writes(s, "\r\n");
	}
	free(c.uids);
	if (err != STORE_OK)
		return err;
	for (size_t i = 0; i < v->n; i++) {
		const struct imap_msg *x = &v->msgs[i];
		if (x->modseq <= since)
			continue;
		if (a->known_uids != NULL &&
		    !imap_seqset_contains(a->known_uids, c.max_known, x->uid))
			continue;
		imap_writef(s, "* %zu FETCH (UID %" PRIu32 " FLAGS ", i + 1, x->uid);
		imap_write_flags(s, v, x->flags, x->keywords);
		imap_writef(s, " MODSEQ (%" PRIu64 "))\r\n", imap_modseq_out(x->modseq));
	}
	return STORE_OK;
}

void imap_cmd_select(struct imap_session *s, struct imap_command *cmd)
{
	const struct imap_args_select *a = &cmd->u.select;
	bool examine = cmd->id == IMAP_CMD_EXAMINE;
	struct store_mailbox mb;

	if (a->qresync && !(s->enabled & IMAP_ENABLE_QRESYNC)) {
		imap_cmd_done(s, "BAD", "QRESYNC parameter needs ENABLE QRESYNC first");
		return;
	}
	if (s->state == IMAP_ST_SELECTED) {
		imap_view_close(s);
		/* RFC 7162 3.2.11 */
		imap_untagged(s, "OK [CLOSED] Previous mailbox closed");
	}
	int err = store_mailbox_get(s->store, s->userid, a->mailbox.s, &mb);
	if (err == STORE_OK)
		err = imap_view_open(s, &mb, examine);
	if (err != STORE_OK) {
		imap_cmd_done_store_error(s, err, examine ? "EXAMINE" : "SELECT");
		return;
	}
	if (a->condstore || a->qresync)
		imap_condstore_enable(s);

	struct imap_view *v = &s->view;
	uint32_t first_unseen = 0;
	for (size_t i = 0; i < v->n; i++) {
		if (!(v->msgs[i].flags & IMAP_FLAG_SEEN)) {
			first_unseen = (uint32_t)i + 1;
			break;
		}
	}
	imap_view_write_flags_responses(s);
	imap_untagged(s, "%zu EXISTS", v->n);
	imap_untagged(s, "%" PRIu32 " RECENT", v->n_recent);
	if (first_unseen > 0)
		imap_untagged(s, "OK [UNSEEN %" PRIu32 "] First unseen", first_unseen);
	imap_untagged(s, "OK [UIDVALIDITY %" PRIu32 "] UIDs valid", v->uidvalidity);
	imap_untagged(s, "OK [UIDNEXT %" PRIu32 "] Predicted next UID", v->uidnext);
	imap_untagged(s, "OK [HIGHESTMODSEQ %" PRIu64 "] Highest",
		      imap_modseq_out(v->highestmodseq));
	if (a->qresync) {
		err = qresync_report(s, a);
		if (err != STORE_OK) {
			imap_view_close(s);
			imap_cmd_done_store_error(s, err, "SELECT");
			return;
		}
	}
	imap_cmd_done(s, "OK", "[%s] %s completed", v->readonly ? "READ-ONLY" : "READ-WRITE",
		      examine ? "EXAMINE" : "SELECT");
}

void imap_cmd_unselect(struct imap_session *s, struct imap_command *cmd)
{
	imap_view_close(s);
	imap_cmd_done(s, "OK", "UNSELECT completed");
}

/* ---- CREATE / DELETE / RENAME / (UN)SUBSCRIBE ------------------------------ */

static bool is_inbox(const char *name)
{
	return strcasecmp(name, "INBOX") == 0;
}

static void done_cb(int err, void *arg)
{
	struct imap_session *s = arg;

	if (!imap_async_end(s)) {
		imap_session_leave(s);
		return;
	}
	const char *name = imap_cmd_name(s->cmd->id);
	if (err == STORE_OK)
		imap_cmd_done(s, "OK", "%s completed", name);
	else if (err == STORE_NOTFOUND && s->cmd->id == IMAP_CMD_UNSUBSCRIBE)
		imap_cmd_done(s, "NO", "[NONEXISTENT] UNSUBSCRIBE: not subscribed");
	else
		imap_cmd_done_store_error(s, err, name);
	imap_session_leave(s);
}

static void create_cb(int err, const struct store_mailbox *mb, void *arg)
{
	done_cb(err, arg);
}

void imap_cmd_create(struct imap_session *s, struct imap_command *cmd)
{
	struct imap_args_create *a = &cmd->u.create;
	char *name = (char *)a->mailbox.s;
	size_t len = a->mailbox.len;

	/* "foo/" declares foo as a place for inferiors: create foo */
	while (len > 0 && name[len - 1] == '/')
		name[--len] = '\0';
	if (is_inbox(name)) {
		imap_cmd_done(s, "NO", "[ALREADYEXISTS] INBOX always exists");
		return;
	}
	if (a->special_use & ~(uint32_t)(STORE_SU_SENT | STORE_SU_DRAFTS | STORE_SU_TRASH |
					 STORE_SU_JUNK | STORE_SU_ARCHIVE)) {
		imap_cmd_done(s, "NO", "[USEATTR] Only \\Sent \\Drafts \\Trash \\Junk \\Archive");
		return;
	}
	if (store_mailbox_name_check(name) != STORE_OK) {
		imap_cmd_done(s, "NO", "[CANNOT] Invalid mailbox name");
		return;
	}
	imap_async_begin(s);
	store_mailbox_create(s->store, s->userid, name, a->special_use, create_cb, s);
}

void imap_cmd_delete(struct imap_session *s, struct imap_command *cmd)
{
	const char *name = cmd->u.mailbox.mailbox.s;

	if (is_inbox(name)) {
		imap_cmd_done(s, "NO", "[CANNOT] INBOX cannot be deleted");
		return;
	}
	imap_async_begin(s);
	store_mailbox_delete(s->store, s->userid, name, done_cb, s);
}

void imap_cmd_rename(struct imap_session *s, struct imap_command *cmd)
{
	const struct imap_args_rename *a = &cmd->u.rename;

	if (is_inbox(a->to.s)) {
		imap_cmd_done(s, "NO", "[ALREADYEXISTS] INBOX always exists");
		return;
	}
	if (store_mailbox_name_check(a->to.s) != STORE_OK) {
		imap_cmd_done(s, "NO", "[CANNOT] Invalid mailbox name");
		return;
	}
	imap_async_begin(s);
	store_mailbox_rename(s->store, s->userid, a->from.s, a->to.s, done_cb, s);
}

void imap_cmd_subscribe(struct imap_session *s, struct imap_command *cmd)
{
	const char *name = cmd->u.mailbox.mailbox.s;

	if (store_mailbox_name_check(name) != STORE_OK) {
		imap_cmd_done(s, "NO", "[CANNOT] Invalid mailbox name");
		return;
	}
	imap_async_begin(s);
	store_mailbox_subscribe(s->store, s->userid, name, cmd->id == IMAP_CMD_SUBSCRIBE,
				done_cb, s);
}

/* ---- LIST / LSUB ---------------------------------------------------------- */

bool imap_list_match(const char *pattern, const char *name)
{
	size_t pl = strlen(pattern), nl = strlen(name);
	char *pat = (char *)pattern;
	bool small = nl < 1024;
	bool stack_row[2][1025];
	bool *prev, *cur;

	/* "INBOX" is case-insensitive as the first level of a pattern */
	if (pl >= 5 && strncasecmp(pattern, "INBOX", 5) == 0 &&
	    (pl == 5 || pattern[5] == '/' || pattern[5] == '*' || pattern[5] == '%') &&
	    strncmp(pattern, "INBOX", 5) != 0) {
		pat = strdup(pattern);
		if (pat == NULL)
			return false;
		memcpy(pat, "INBOX", 5);
	}
	if (small) {
		prev = stack_row[0];
		cur = stack_row[1];
	} else {
		prev = calloc(2 * (nl + 1), sizeof(bool));
		if (prev == NULL) {
			if (pat != pattern)
				free(pat);
			return false;
		}
		cur = prev + nl + 1;
	}
	/* prev[j]: pattern[0..i) matches name[0..j) */
	prev[0] = true;
	for (size_t j = 1; j <= nl; j++)
		prev[j] = false;
	for (size_t i = 1; i <= pl; i++) {
		char pc = pat[i - 1];
		if (pc == '*') {
			cur[0] = prev[0];
			for (size_t j = 1; j <= nl; j++)
				cur[j] = prev[j] || cur[j - 1];
		} else if (pc == '%') {
			cur[0] = prev[0];
			for (size_t j = 1; j <= nl; j++)
				cur[j] = prev[j] || (cur[j - 1] && name[j - 1] != '/');
		} else {
			cur[0] = false;
			for (size_t j = 1; j <= nl; j++)
				cur[j] = prev[j - 1] && name[j - 1] == pc;
		}
		bool *t = prev;
		prev = cur;
		cur = t;
	}
	bool r = prev[nl];
	if (!small)
		free(prev < cur ? prev : cur);
	if (pat != pattern)
		free(pat);
	return r;
}

/* One name in a LIST answer. */
struct list_item {
	char *name;
	uint32_t special_use;
	bool exists;		/* a mailbox (else an implied superior) */
	bool subscribed;
	uint32_t mboxid;
};

struct list_ctx {
	struct imap_arena *a;
	struct list_item *items;
	size_t n, cap;
	bool oom;
	bool want_subs;		/* collect subscriptions into items too */
};

static struct list_item *add_item(struct list_ctx *c, const char *name, size_t len)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;
		struct list_item *ni = realloc(c->items, cap * sizeof(*ni));
		if (ni == NULL) {
			c->oom = true;
			return NULL;
		}
		c->items = ni;
		c->cap = cap;
	}
	char *copy = imap_arena_strndup(c->a, name, len);
	if (copy == NULL) {
		c->oom = true;
		return NULL;
	}
	struct list_item *it = &c->items[c->n++];
	*it = (struct list_item){ .name = copy };
	return it;
}

static int mbox_cb(const struct store_mailbox *mb, void *arg)
{
	struct list_ctx *c = arg;
	struct list_item *it = add_item(c, mb->name, strlen(mb->name));

	if (it == NULL)
		return 1;
	it->exists = true;
	it->special_use = mb->special_use;
	it->mboxid = mb->id;
	return 0;
}

static int sub_cb(const char *name, void *arg)
{
	struct list_ctx *c = arg;
	struct list_item *it = add_item(c, name, strlen(name));

	if (it == NULL)
		return 1;
	it->subscribed = true;
	return 0;
}

static int item_cmp(const void *pa, const void *pb)
{
	const struct list_item *a = pa, *b = pb;

	return strcmp(a->name, b->name);
}

/* Sort, merge duplicates (a mailbox and its subscription), and add the
 * missing superiors of every name. */
static void list_normalize(struct list_ctx *c)
{
	size_t n0 = c->n;

	for (size_t i = 0; i < n0 && !c->oom; i++) {
		const char *name = c->items[i].name;
		for (const char *p = strchr(name, '/'); p != NULL; p = strchr(p + 1, '/'))
			add_item(c, name, (size_t)(p - name));
	}
	if (c->n == 0)
		return;
	qsort(c->items, c->n, sizeof(*c->items), item_cmp);
	size_t out = 0;
	for (size_t i = 0; i < c->n; i++) {
		if (out > 0 && strcmp(c->items[out - 1].name, c->items[i].name) == 0) {
			struct list_item *d = &c->items[out - 1];
			const struct list_item *x = &c->items[i];
			if (x->exists) {
				d->exists = true;
				d->special_use = x->special_use;
				d->mboxid = x->mboxid;
			}
			d->subscribed |= x->subscribed;
			continue;
		}
		c->items[out++] = c->items[i];
	}
	c->n = out;
}

/* Is there an item below name ("name/...") that exists (or, with
 * subscribed_only, is subscribed)? */
static bool has_children(const struct list_ctx *c, size_t idx, bool subscribed_only)
{
	const char *name = c->items[idx].name;
	size_t len = strlen(name);

	for (size_t i = idx + 1; i < c->n; i++) {
		const char *o = c->items[i].name;
		int cmp = strncmp(o, name, len);
		if (cmp != 0)
			break;	/* sorted: no more names with this prefix */
		if (o[len] != '/')
			continue;	/* "name-x" sorts between name and name/ */
		if (subscribed_only ? c->items[i].subscribed : c->items[i].exists)
			return true;
	}
	return false;
}

static void write_special_use(struct imap_session *s, uint32_t su, bool *first)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} attrs[] = {
		{ STORE_SU_SENT, "\\Sent" }, { STORE_SU_DRAFTS, "\\Drafts" },
		{ STORE_SU_TRASH, "\\Trash" }, { STORE_SU_JUNK, "\\Junk" },
		{ STORE_SU_ARCHIVE, "\\Archive" },
	};

	for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
		if (!(su & attrs[i].bit))
			continue;
		imap_writef(s, "%s%s", *first ? "" : " ", attrs[i].name);
		*first = false;
	}
}

static void attr(struct imap_session *s, const char *a, bool *first)
{
	imap_writef(s, "%s%s", *first ? "" : " ", a);
	*first = false;
}

static bool matches_any(const char *const *full, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (imap_list_match(full[i], name))
			return true;
	return false;
}

/* Longest reference + pattern accepted: twice the longest name leaves
 * room for any sensible use of wildcards. */
#define LIST_PATTERN_MAX (2 * STORE_MBOX_MAX)

/* reference + pattern for every pattern, built once per command (the
 * reference is not re-concatenated per mailbox: a long reference and
 * many patterns would otherwise cost their product per name).  NULL
 * if out of memory or (*too_long_r set) a pattern is too long. */
static const char **list_full_patterns(const struct imap_args_list *a, const char *ref,
				       struct imap_arena *ar, bool *too_long_r)
{
	size_t rl = strlen(ref);
	const char **full = imap_arena_alloc(ar, a->n_patterns * sizeof(*full));

	*too_long_r = false;
	if (full == NULL)
		return NULL;
	for (size_t i = 0; i < a->n_patterns; i++) {
		size_t pl = a->patterns[i].len;
		if (rl + pl > LIST_PATTERN_MAX) {
			*too_long_r = true;
			return NULL;
		}
		char *f = imap_arena_alloc(ar, rl + pl + 1);
		if (f == NULL)
			return NULL;
		memcpy(f, ref, rl);
		memcpy(f + rl, a->patterns[i].s, pl + 1);
		full[i] = f;
	}
	return full;
}

static void status_line(struct imap_session *s, const struct store_mailbox *mb, uint32_t items);

/* A LIST/LSUB in progress: the sorted snapshot and how far the answer
 * has got.  The answer is written in steps that stop when the output is
 * full (imap_output_full) and go on when it has drained, so a user with
 * very many mailboxes costs the snapshot (one list_item and the name per
 * name), not the whole answer in the output buffer. */
struct list_state {
	struct list_ctx c;
	const char **full;		/* reference + pattern, per pattern */
	size_t next;			/* next item to consider */
	bool lsub, sel_subscribed, sel_special, ret_subscribed;
};

static void list_state_free(void *arg)
{
	struct list_state *st = arg;

	free(st->c.items);
	st->c.items = NULL;
}

/* Write the LIST/LSUB line (and RETURN STATUS line) of item i if it is
 * part of the answer. */
static void list_item_write(struct imap_session *s, const struct imap_args_list *a,
			    struct list_state *st, size_t i)
{
	const struct list_item *it = &st->c.items[i];
	bool first = true;

	if (!matches_any(st->full, a->n_patterns, it->name))
		return;
	if (st->sel_subscribed && !it->subscribed) {
		/* LSUB shows an unsubscribed superior of a subscribed name
		 * as \Noselect when '%' stops at it */
		if (!(st->lsub && has_children(&st->c, i, true)))
			return;
	}
	if (!st->sel_subscribed && !it->exists && !has_children(&st->c, i, false))
		return;	/* a subscription of a missing name */
	if (st->sel_special && !(it->exists && it->special_use))
		return;
	imap_writef(s, "* %s (", st->lsub ? "LSUB" : "LIST");
	if (st->lsub) {
		if (!it->subscribed || !it->exists)
			attr(s, "\\Noselect", &first);
	} else {
		if (!it->exists)
			attr(s, st->sel_subscribed ? "\\NonExistent" : "\\Noselect", &first);
		if (has_children(&st->c, i, false))
			attr(s, "\\HasChildren", &first);
		else if (it->exists)
			attr(s, "\\HasNoChildren", &first);
		if (st->ret_subscribed && it->subscribed)
			attr(s, "\\Subscribed", &first);
		if (it->exists)
			write_special_use(s, it->special_use, &first);
	}
	imap_writes(s, ") \"/\" ");
	imap_write_mailbox(s, it->name);
	imap_writes(s, "\r\n");
	if (!st->lsub && (a->return_opts & IMAP_LIST_RET_STATUS) && it->exists) {
		struct store_mailbox mb;
		if (store_mailbox_get_by_id(s->store, s->userid, it->mboxid, &mb) == STORE_OK)
			status_line(s, &mb, a->status_items);
	}
}

/* Names looked at per step, so matching a huge list cannot hold the
 * loop either. */
#define LIST_BATCH 4096

static void list_step(struct imap_session *s, struct imap_command *cmd)
{
	struct list_state *st = s->cmd_state;

	for (unsigned done = 0; st->next < st->c.n; done++) {
		if (done >= LIST_BATCH || imap_output_full(s) || s->out_failed || s->t == NULL)
			return;	/* resumed by the core: next loop turn or drained */
		list_item_write(s, &cmd->u.list, st, st->next++);
	}
	imap_cmd_done(s, "OK", "%s completed", st->lsub ? "LSUB" : "LIST");
}

void imap_cmd_list(struct imap_session *s, struct imap_command *cmd)
{
	const struct imap_args_list *a = &cmd->u.list;
	bool lsub = cmd->id == IMAP_CMD_LSUB;
	struct list_state *st;
	const char *ref = a->ref.s != NULL ? a->ref.s : "";
	bool too_long;
	int err = STORE_OK;

	/* LIST "" "": the hierarchy delimiter and root */
	if (!lsub && a->n_patterns == 1 && a->patterns[0].len == 0 && !a->extended) {
		imap_untagged(s, "LIST (\\Noselect) \"/\" \"\"");
		imap_cmd_done(s, "OK", "LIST completed");
		return;
	}
	st = imap_arena_zalloc(cmd->arena, sizeof(*st));
	if (st == NULL) {
		imap_cmd_done(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	st->c.a = cmd->arena;
	st->lsub = lsub;
	st->sel_subscribed = lsub || (a->select_opts & IMAP_LIST_SEL_SUBSCRIBED);
	st->sel_special = (a->select_opts & IMAP_LIST_SEL_SPECIAL_USE) != 0;
	st->ret_subscribed = st->sel_subscribed || (a->return_opts & IMAP_LIST_RET_SUBSCRIBED);
	s->cmd_state = st;
	s->cmd_state_free = list_state_free;
	st->full = list_full_patterns(a, ref, cmd->arena, &too_long);
	if (st->full == NULL) {
		if (too_long)
			imap_cmd_done(s, "BAD", "Mailbox pattern too long");
		else
			imap_cmd_done(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	err = store_mailbox_foreach(s->store, s->userid, mbox_cb, &st->c);
	if (err == STORE_OK && !st->c.oom && st->ret_subscribed)
		err = store_subscription_foreach(s->store, s->userid, sub_cb, &st->c);
	if (st->c.oom)
		err = STORE_IO;
	if (err == STORE_OK)
		list_normalize(&st->c);
	if (st->c.oom)
		err = STORE_IO;
	if (err != STORE_OK) {
		imap_cmd_done_store_error(s, err, lsub ? "LSUB" : "LIST");
		return;
	}
	s->resume = list_step;
	list_step(s, cmd);
}

/* ---- STATUS -------------------------------------------------------------- */

struct recent_ctx {
	uint32_t above;
	uint32_t count;
	const struct imap_view *own;	/* this session's view of the mailbox */
};

/* RECENT: messages above the claim mark (nobody holds their \Recent
 * yet), plus, on the mailbox this session has selected, the messages
 * below it whose \Recent this session holds: they are \Recent to this
 * client (RFC 3501 2.3.2), as its FETCH FLAGS show. */
static int recent_cb(const struct store_msg *m, void *arg)
{
	struct recent_ctx *c = arg;

	if (m->uid > c->above) {
		c->count++;
	} else if (c->own != NULL) {
		const struct imap_msg *x = imap_view_msg(c->own, imap_view_seq(c->own, m->uid));
		if (x != NULL && (x->flags & IMAP_FLAG_RECENT))
			c->count++;
	}
	return 0;
}

static void status_line(struct imap_session *s, const struct store_mailbox *mb, uint32_t items)
{
	const char *sp = "";

	imap_writes(s, "* STATUS ");
	imap_write_mailbox(s, mb->name);
	imap_writes(s, " (");
	if (items & IMAP_STATUS_MESSAGES) {
		imap_writef(s, "%sMESSAGES %" PRIu32, sp, mb->messages);
		sp = " ";
	}
	if (items & IMAP_STATUS_RECENT) {
		struct recent_ctx rc = {
			.above = imap_registry_recent_uid(s->n, s->store, s->userid, mb->id),
		};
		if (s->state == IMAP_ST_SELECTED && s->view.mboxid == mb->id)
			rc.own = &s->view;
		if (store_msg_foreach(s->store, s->userid, mb->id, recent_cb, &rc) != STORE_OK)
			rc.count = 0;
		imap_writef(s, "%sRECENT %" PRIu32, sp, rc.count);
		sp = " ";
	}
	if (items & IMAP_STATUS_UIDNEXT) {
		imap_writef(s, "%sUIDNEXT %" PRIu32, sp, mb->uidnext);
		sp = " ";
	}
	if (items & IMAP_STATUS_UIDVALIDITY) {
		imap_writef(s, "%sUIDVALIDITY %" PRIu32, sp, mb->uidvalidity);
		sp = " ";
	}
	if (items & IMAP_STATUS_UNSEEN) {
		imap_writef(s, "%sUNSEEN %" PRIu32, sp, mb->unseen);
		sp = " ";
	}
	if (items & IMAP_STATUS_HIGHESTMODSEQ) {
		imap_writef(s, "%sHIGHESTMODSEQ %" PRIu64, sp, imap_modseq_out(mb->highestmodseq));
		sp = " ";
	}
	if (items & IMAP_STATUS_SIZE) {
		imap_writef(s, "%sSIZE %" PRIu64, sp, mb->bytes);
		sp = " ";
	}
	imap_writes(s, ")\r\n");
}

void imap_cmd_status(struct imap_session *s, struct imap_command *cmd)
{
	const struct imap_args_status *a = &cmd->u.status;
	struct store_mailbox mb;
	int err = store_mailbox_get(s->store, s->userid, a->mailbox.s, &mb);

	if (err != STORE_OK) {
		imap_cmd_done_store_error(s, err, "STATUS");
		return;
	}
	if (a->items & IMAP_STATUS_HIGHESTMODSEQ)
		imap_condstore_enable(s);	/* RFC 7162 3.1 */
	status_line(s, &mb, a->items);
	imap_cmd_done(s, "OK", "STATUS completed");
}
