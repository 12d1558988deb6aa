/*
 * imap_registry.c - the node-wide registry of selected mailboxes: which
 * sessions have a mailbox selected, turning store changes into untagged
 * responses, and the \Recent claim marks.  The view of one session is
 * imap_view.c; what the two share is in imap_registry_int.h.
 *
 * \Recent.  RFC 3501 gives \Recent to one session only.  Each registry
 * entry (user, mailbox) remembers the highest UID whose \Recent has been
 * claimed; a read-write session that sees a message above it claims it
 * at once, in memory.  The mark is kept in the store too (store.h
 * "\Recent claim marks"), so that it survives a restart and the pruning
 * of idle entries: a new entry starts from the stored mark, and a load
 * or sync that raised it writes it (entry_save: one write in flight per
 * entry; when it completes and the mark moved on meanwhile, the next
 * one).  The completion finds its entry again by key, so an entry freed
 * meanwhile (imap_fini) is never touched; prune skips entries with a
 * write in flight.  A failed write is logged: the mark in memory is still
 * right, only a restart (or pruning the entry) before the next write
 * would lose it.  Entries without sessions are kept, up to
 * IDLE_ENTRIES_MAX of them, to spare the store reads.
 *
 * Registry.  A hash table (store, userid, mboxid) -> entry with the
 * sessions that have the mailbox selected.  The store is part of the key
 * because a mirror serving for a failed home (docs/failover.md) serves
 * that home's users from the mirror store, with the home's ids, which
 * can equal ids of this POP's own users.  The stores' change observer
 * (installed by imap_init on the node's store, by imap_observe_store on
 * a mirror store) marks those views dirty; a session in
 * IDLE syncs and writes at once, the others at their next command's end
 * (imap_cmd_done).  Sessions are entered around the work, so one of them
 * going away cannot disturb the walk over the others.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "imap.h"
#include "imap_registry_int.h"
#include "imap_session.h"
#include "log.h"
#include "node.h"
#include "store.h"

#define IDLE_ENTRIES_MAX 100000

struct imap_registry {
	struct node *n;
	struct imap_view_entry **buckets;
	size_t n_buckets;			/* power of two */
	size_t n_entries;
	size_t n_idle;				/* entries without sessions */
};

/* ---- registry ------------------------------------------------------------ */

static size_t hash_key(const struct store *st, uint32_t userid, uint32_t mboxid, size_t nb)
{
	uint64_t h = (((uint64_t)userid << 32 | mboxid) ^ (uint64_t)(uintptr_t)st) *
		     0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 32) & (nb - 1);
}

static size_t bucket_of(const struct imap_registry *r, const struct store *st, uint32_t userid,
			uint32_t mboxid)
{
	return hash_key(st, userid, mboxid, r->n_buckets);
}

static struct imap_view_entry *entry_find(struct imap_registry *r, const struct store *st,
					  uint32_t userid, uint32_t mboxid)
{
	for (struct imap_view_entry *e = r->buckets[bucket_of(r, st, userid, mboxid)]; e != NULL;
	     e = e->next)
		if (e->st == st && e->userid == userid && e->mboxid == mboxid)
			return e;
	return NULL;
}

static void registry_grow(struct imap_registry *r)
{
	size_t nb = r->n_buckets * 2;
	struct imap_view_entry **b = calloc(nb, sizeof(*b));

	if (b == NULL)
		return;		/* longer chains, still correct */
	for (size_t i = 0; i < r->n_buckets; i++) {
		struct imap_view_entry *e = r->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			size_t k = hash_key(e->st, e->userid, e->mboxid, nb);
			e->next = b[k];
			b[k] = e;
		}
	}
	free(r->buckets);
	r->buckets = b;
	r->n_buckets = nb;
}

/* Drop every entry without sessions and without a write in flight (their
 * \Recent marks are in the store, or lost with a write that failed). */
static void registry_prune(struct imap_registry *r)
{
	size_t kept = 0;

	for (size_t i = 0; i < r->n_buckets; i++) {
		struct imap_view_entry **pp = &r->buckets[i];
		while (*pp != NULL) {
			struct imap_view_entry *e = *pp;
			if (e->n == 0 && !e->saving) {
				*pp = e->next;
				free(e->sessions);
				free(e);
				r->n_entries--;
			} else {
				if (e->n == 0)
					kept++;
				pp = &e->next;
			}
		}
	}
	r->n_idle = kept;
}

struct imap_view_entry *imap_registry_entry_get(struct imap_registry *r, struct store *st,
						uint32_t userid, uint32_t mboxid)
{
	struct imap_view_entry *e = entry_find(r, st, userid, mboxid);
	uint32_t mark;
	int err;

	if (e != NULL)
		return e;
	if (r->n_idle >= IDLE_ENTRIES_MAX)
		registry_prune(r);
	/* a failed read starts from 0: messages \Recent once more, as
	 * RFC 3501 allows; the store's mark only ever goes up */
	if ((err = store_recent_get(st, userid, mboxid, &mark)) != STORE_OK)
		log_warn("imap.recent_load_failed", "userid=%" PRIu32 " mboxid=%" PRIu32
			 " error=\"%s\"", userid, mboxid, store_strerror(err));
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	e->st = st;
	e->userid = userid;
	e->mboxid = mboxid;
	e->recent_uid = e->saved_uid = mark;
	size_t k = bucket_of(r, st, userid, mboxid);
	e->next = r->buckets[k];
	r->buckets[k] = e;
	r->n_entries++;
	r->n_idle++;		/* until a session is added */
	if (r->n_entries > r->n_buckets)
		registry_grow(r);
	return e;
}

int imap_registry_entry_add(struct imap_registry *r, struct imap_view_entry *e,
			    struct imap_session *s)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 4;
		struct imap_session **ns = realloc(e->sessions, cap * sizeof(*ns));
		if (ns == NULL)
			return -1;
		e->sessions = ns;
		e->cap = cap;
	}
	if (e->n == 0)
		r->n_idle--;
	e->sessions[e->n++] = s;
	return 0;
}

void imap_registry_entry_remove(struct imap_registry *r, struct imap_view_entry *e,
				struct imap_session *s)
{
	for (size_t i = 0; i < e->n; i++) {
		if (e->sessions[i] == s) {
			e->sessions[i] = e->sessions[--e->n];
			break;
		}
	}
	if (e->n == 0) {
		free(e->sessions);
		e->sessions = NULL;
		e->cap = 0;
		r->n_idle++;
	}
}

/* ---- the \Recent mark in the store ---------------------------------------- */

/* One store_recent_set in flight: the entry's key, so the completion
 * looks the entry up again rather than holding a pointer to it. */
struct recent_save {
	struct node *n;
	struct store *st;
	uint32_t userid, mboxid, uid;
};

static void entry_save(struct imap_registry *r, struct imap_view_entry *e);

/* Runs on the loop once the write is durable or failed, also from
 * store_close (main closes the store before imap_fini; a mirror store
 * may close after it: n->imap NULL then, nothing to update). */
static void recent_saved(int err, void *arg)
{
	struct recent_save *c = arg;
	struct imap_registry *r = c->n->imap;
	struct imap_view_entry *e = r != NULL ? entry_find(r, c->st, c->userid, c->mboxid)
					      : NULL;

	if (err == STORE_OK)
		log_debug("imap.recent_saved", "userid=%" PRIu32 " mboxid=%" PRIu32
			  " uid=%" PRIu32, c->userid, c->mboxid, c->uid);
	else if (err != STORE_NOTFOUND)		/* NOTFOUND: mailbox deleted */
		log_warn("imap.recent_save_failed", "userid=%" PRIu32 " mboxid=%" PRIu32
			 " uid=%" PRIu32 " error=\"%s\"", c->userid, c->mboxid, c->uid,
			 store_strerror(err));
	if (e != NULL && e->saving) {
		e->saving = false;
		if (err == STORE_OK) {
			if (c->uid > e->saved_uid)
				e->saved_uid = c->uid;
			entry_save(r, e);	/* claimed more meanwhile */
		}
	}
	free(c);
}

/* Write e's mark to the store if it is above what the store has, unless
 * a write is in flight already (its completion comes back here). */
static void entry_save(struct imap_registry *r, struct imap_view_entry *e)
{
	struct recent_save *c;

	if (e->saving || e->recent_uid <= e->saved_uid)
		return;
	if ((c = malloc(sizeof(*c))) == NULL) {
		log_warn("imap.recent_save_failed", "userid=%" PRIu32 " mboxid=%" PRIu32
			 " uid=%" PRIu32 " error=\"out of memory\"", e->userid, e->mboxid,
			 e->recent_uid);
		return;
	}
	*c = (struct recent_save){
		.n = r->n, .st = e->st, .userid = e->userid, .mboxid = e->mboxid,
		.uid = e->recent_uid,
	};
	e->saving = true;	/* before: the callback never runs inside the call */
	store_recent_set(e->st, e->userid, e->mboxid, e->recent_uid, recent_saved, c);
}

/* After a load or sync of s's view: persist what it claimed. */
void imap_registry_save_recent(struct imap_session *s)
{
	if (s->view.entry != NULL && s->n->imap != NULL)
		entry_save(s->n->imap, s->view.entry);
}

/* ---- store observer -------------------------------------------------------- */

/* arg is the node, valid for the whole run: a mirror store may close
 * after imap_fini (n->imap NULL then). */
static void on_store_change(struct store *st, uint32_t userid, uint32_t mboxid, void *arg)
{
	imap_registry_notify(arg, st, userid, mboxid);
}

void imap_observe_store(struct node *n, struct store *st)
{
	store_set_change_observer(st, on_store_change, n);
}

int imap_init(struct node *n)
{
	struct imap_registry *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return -1;
	r->n = n;
	r->n_buckets = 256;
	r->buckets = calloc(r->n_buckets, sizeof(*r->buckets));
	if (r->buckets == NULL) {
		free(r);
		return -1;
	}
	n->imap = r;
	imap_observe_store(n, n->store);
	return 0;
}

void imap_fini(struct node *n)
{
	struct imap_registry *r = n->imap;

	if (r == NULL)
		return;
	if (n->store != NULL)
		store_set_change_observer(n->store, NULL, NULL);
	for (size_t i = 0; i < r->n_buckets; i++) {
		struct imap_view_entry *e = r->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			free(e->sessions);
			free(e);
		}
	}
	free(r->buckets);
	free(r);
	n->imap = NULL;
}

static void notify_entry(struct imap_view_entry *e)
{
	struct imap_session *small[16], **list = small;
	size_t n = e->n;

	if (n == 0)
		return;
	if (n > sizeof(small) / sizeof(small[0])) {
		list = malloc(n * sizeof(*list));
		if (list == NULL) {
			/* mark only; they sync at their next command */
			for (size_t i = 0; i < n; i++)
				e->sessions[i]->view.dirty = true;
			return;
		}
	}
	memcpy(list, e->sessions, n * sizeof(*list));
	for (size_t i = 0; i < n; i++)
		list[i]->view.dirty = true;
	for (size_t i = 0; i < n; i++) {
		struct imap_session *s = list[i];
		imap_session_enter(s);
		/* a client that does not read while idling gets nothing more
		 * until its output drains (on_drained syncs then) */
		if (s->idling && imap_session_alive(s) && s->state == IMAP_ST_SELECTED &&
		    !imap_output_full(s)) {
			int err = imap_view_sync(s, true);
			if (err != STORE_OK)
				log_err("imap.sync_failed", "sid=%" PRIu64 " user=%s error=\"%s\"",
					s->serial, s->username, store_strerror(err));
		}
		imap_session_leave(s);
	}
	if (list != small)
		free(list);
}

void imap_registry_notify(struct node *n, const struct store *st, uint32_t userid,
			  uint32_t mboxid)
{
	struct imap_registry *r = n->imap;

	if (r == NULL)
		return;
	if (mboxid != 0) {
		struct imap_view_entry *e = entry_find(r, st, userid, mboxid);
		if (e != NULL)
			notify_entry(e);
		return;
	}
	for (size_t i = 0; i < r->n_buckets; i++)
		for (struct imap_view_entry *e = r->buckets[i]; e != NULL; e = e->next)
			if (e->st == st && e->userid == userid)
				notify_entry(e);
}

uint32_t imap_registry_recent_uid(struct node *n, struct store *st, uint32_t userid,
				  uint32_t mboxid)
{
	struct imap_view_entry *e = n->imap != NULL ? entry_find(n->imap, st, userid, mboxid)
						    : NULL;
	uint32_t mark;

	if (e != NULL)
		return e->recent_uid;
	/* not selected since the start (or since pruned): the stored mark */
	if (store_recent_get(st, userid, mboxid, &mark) != STORE_OK)
		return 0;
	return mark;
}
