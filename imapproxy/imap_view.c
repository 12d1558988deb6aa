/*
 * imap_view.c - the selected mailbox as one session knows it, keeping it
 * in step with the store.  The node-wide registry of selected mailboxes
 * (and the \Recent claim marks a view claims from) is imap_registry.c.
 *
 * View.  msgs[] is the client's sequence-number space.  SELECT loads it
 * whole (imap_view_open); afterwards imap_view_sync() updates it
 * incrementally: the mailbox record gives the new highestmodseq, then
 * store_msg_foreach_changed(since the view's highestmodseq) gives new
 * messages and flag changes and store_vanished_foreach(same) the UIDs
 * expunged since.  The mailbox record is read first and its
 * highestmodseq becomes the view's, so anything committed between the
 * reads is seen again at the next sync - harmless, the diff is
 * idempotent.  Output follows RFC 3501 7.4.1 / RFC 7162 3.2.10:
 * expunges first ("* n EXPUNGE" highest first, or one "* VANISHED"
 * with QRESYNC enabled) - only where allowed, else the messages stay
 * in the view marked expunged and are announced later -, then
 * "* n FETCH (FLAGS ...)" for changed messages (with UID under QRESYNC,
 * MODSEQ under CONDSTORE), then EXISTS and RECENT for new ones.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_registry_int.h"
#include "imap_session.h"
#include "node.h"
#include "store.h"

/* ---- lookups ------------------------------------------------------------- */

size_t imap_view_lower_bound(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint32_t imap_view_seq(const struct imap_view *v, uint32_t uid)
{
	size_t i = imap_view_lower_bound(v, uid);

	if (i < v->n && v->msgs[i].uid == uid)
		return (uint32_t)(i + 1);
	return 0;
}

struct imap_msg *imap_view_msg(const struct imap_view *v, uint32_t seq)
{
	if (seq == 0 || seq > v->n)
		return NULL;
	return &v->msgs[seq - 1];
}

int imap_view_resolve(const struct imap_view *v, const struct imap_seqset *set, bool uid,
		      struct imap_arena *a, struct imap_range **r_r, size_t *n_r,
		      const char **error_r)
{
	size_t room = set->n + 1;
	struct imap_range *tmp = imap_arena_alloc(a, room * sizeof(*tmp));

	*r_r = NULL;
	*n_r = 0;
	if (tmp == NULL) {
		*error_r = "Out of memory";
		return -1;
	}
	if (!uid) {
		if (imap_seqset_max_number(set) > v->n) {
			*error_r = "Invalid message sequence number";
			return -1;
		}
		*n_r = imap_seqset_resolve(set, (uint32_t)v->n, tmp);
		*r_r = tmp;
		return 0;
	}
	uint32_t max_uid = v->n > 0 ? v->msgs[v->n - 1].uid : 0;
	size_t nu = imap_seqset_resolve(set, max_uid, tmp);
	size_t out = 0;
	/* tmp is reused in place: output index never passes input index */
	for (size_t i = 0; i < nu; i++) {
		uint32_t lo_uid = tmp[i].lo, hi_uid = tmp[i].hi;
		size_t a_idx = imap_view_lower_bound(v, lo_uid);
		size_t b_idx = hi_uid == UINT32_MAX ? v->n : imap_view_lower_bound(v, hi_uid + 1);
		if (a_idx >= b_idx)
			continue;
		uint32_t lo = (uint32_t)a_idx + 1, hi = (uint32_t)b_idx;
		if (out > 0 && tmp[out - 1].hi + 1 >= lo) {
			if (hi > tmp[out - 1].hi)
				tmp[out - 1].hi = hi;
		} else {
			tmp[out].lo = lo;
			tmp[out].hi = hi;
			out++;
		}
	}
	*r_r = tmp;
	*n_r = out;
	return 0;
}

int imap_view_keyword_lookup(void *view, const char *name, size_t len)
{
	const struct imap_view *v = view;

	for (unsigned i = 0; i < v->n_kw; i++) {
		const char *k = v->kw_names[i];
		if (k != NULL && strlen(k) == len && strncasecmp(k, name, len) == 0)
			return (int)i;
	}
	return -1;
}

/* ---- keywords ------------------------------------------------------------ */

static void kw_clear(struct imap_view *v)
{
	for (unsigned i = 0; i < IMAP_MAX_KEYWORDS; i++) {
		free(v->kw_names[i]);
		v->kw_names[i] = NULL;
	}
	v->n_kw = 0;
}

struct kw_ctx {
	struct imap_view *v;
	bool added;
	bool oom;
};

static int kw_cb(unsigned idx, const char *name, void *arg)
{
	struct kw_ctx *c = arg;

	if (idx >= IMAP_MAX_KEYWORDS || c->v->kw_names[idx] != NULL)
		return 0;
	c->v->kw_names[idx] = strdup(name);
	if (c->v->kw_names[idx] == NULL) {
		c->oom = true;
		return 1;
	}
	if (idx + 1 > c->v->n_kw)
		c->v->n_kw = idx + 1;
	c->added = true;
	return 0;
}

/* Load new names of the keyword table (indexes never change). */
static int kw_load(struct imap_session *s, bool *added_r)
{
	struct kw_ctx c = { .v = &s->view };
	int err = store_mailbox_keywords(s->store, s->userid, s->view.mboxid, kw_cb, &c);

	*added_r = c.added;
	if (c.oom)
		return STORE_IO;
	return err == STORE_NOTFOUND ? STORE_OK : err;
}

void imap_view_write_flags_responses(struct imap_session *s)
{
	const struct imap_view *v = &s->view;
	static const char sys[] = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

	imap_writes(s, "* FLAGS (");
	imap_writes(s, sys);
	for (unsigned i = 0; i < v->n_kw; i++) {
		if (v->kw_names[i] == NULL)
			continue;
		imap_write(s, " ", 1);
		imap_writes(s, v->kw_names[i]);
	}
	imap_writes(s, ")\r\n");
	if (v->readonly) {
		imap_untagged(s, "OK [PERMANENTFLAGS ()] Read-only mailbox");
		return;
	}
	imap_writes(s, "* OK [PERMANENTFLAGS (");
	imap_writes(s, sys);
	for (unsigned i = 0; i < v->n_kw; i++) {
		if (v->kw_names[i] == NULL)
			continue;
		imap_write(s, " ", 1);
		imap_writes(s, v->kw_names[i]);
	}
	/* \* : new keywords can be created while the table has room */
	imap_writes(s, v->n_kw < IMAP_MAX_KEYWORDS ? " \\*)] Flags permitted\r\n"
						    : ")] Flags permitted\r\n");
}

int imap_view_reload_keywords(struct imap_session *s, bool announce)
{
	bool added = false;
	int err = kw_load(s, &added);

	if (err == STORE_OK && added && announce)
		imap_view_write_flags_responses(s);
	return err;
}

/* ---- open / close -------------------------------------------------------- */

static int msgs_reserve(struct imap_view *v, size_t need)
{
	if (need <= v->cap)
		return 0;
	size_t cap = v->cap ? v->cap : 16;
	while (cap < need) {
		if (cap > SIZE_MAX / 2 / sizeof(*v->msgs))
			return -1;
		cap *= 2;
	}
	struct imap_msg *nm = realloc(v->msgs, cap * sizeof(*nm));
	if (nm == NULL)
		return -1;
	v->msgs = nm;
	v->cap = cap;
	return 0;
}

/* Append m to the view, claiming \Recent if nobody has. */
static int view_append(struct imap_view *v, const struct store_msg *m)
{
	if (msgs_reserve(v, v->n + 1) < 0)
		return -1;
	struct imap_msg *x = &v->msgs[v->n++];
	*x = (struct imap_msg){
		.uid = m->uid,
		.flags = m->flags & STORE_F_MASK & ~(uint32_t)IMAP_FLAG_RECENT,
		.keywords = m->keywords,
		.modseq = m->modseq,
		.size = m->size,
		.internaldate = m->internaldate,
	};
	struct imap_view_entry *e = v->entry;
	if (e != NULL && m->uid > e->recent_uid) {
		x->flags |= IMAP_FLAG_RECENT;
		v->n_recent++;
		if (!v->readonly)
			e->recent_uid = m->uid;
	}
	return 0;
}

struct load_ctx {
	struct imap_view *v;
	bool oom;
};

static int load_cb(const struct store_msg *m, void *arg)
{
	struct load_ctx *c = arg;

	if (view_append(c->v, m) < 0) {
		c->oom = true;
		return 1;
	}
	return 0;
}

static void view_free(struct imap_view *v)
{
	free(v->msgs);
	kw_clear(v);
	memset(v, 0, sizeof(*v));
}

int imap_view_open(struct imap_session *s, const struct store_mailbox *mb, bool readonly)
{
	struct imap_registry *r = s->n->imap;
	struct imap_view *v = &s->view;

	imap_view_close(s);
	v->mboxid = mb->id;
	snprintf(v->name, sizeof(v->name), "%s", mb->name);
	v->readonly = readonly;
	v->uidvalidity = mb->uidvalidity;
	v->uidnext = mb->uidnext;
	v->highestmodseq = mb->highestmodseq;
	v->special_use = mb->special_use;
	if (r == NULL)
		return STORE_IO;
	struct imap_view_entry *e = imap_registry_entry_get(r, s->store, s->userid, mb->id);
	if (e == NULL || imap_registry_entry_add(r, e, s) < 0) {
		view_free(v);
		return STORE_IO;
	}
	v->entry = e;
	bool added;
	int err = kw_load(s, &added);
	if (err == STORE_OK && msgs_reserve(v, mb->messages + 1) < 0)
		err = STORE_IO;
	if (err == STORE_OK) {
		struct load_ctx c = { .v = v };
		err = store_msg_foreach(s->store, s->userid, mb->id, load_cb, &c);
		if (c.oom)
			err = STORE_IO;
	}
	imap_registry_save_recent(s);	/* what it claimed stays claimed, also on error */
	if (err != STORE_OK) {
		imap_view_close(s);
		return err;
	}
	v->dirty = false;
	s->state = IMAP_ST_SELECTED;
	return STORE_OK;
}

void imap_view_close(struct imap_session *s)
{
	struct imap_view *v = &s->view;

	if (v->entry != NULL && s->n->imap != NULL)
		imap_registry_entry_remove(s->n->imap, v->entry, s);
	view_free(v);
	s->idling = false;
	if (s->state == IMAP_ST_SELECTED)
		s->state = IMAP_ST_AUTH;
}

/* ---- diff and sync ------------------------------------------------------- */

void imap_view_diff(const struct imap_view *v, const struct store_msg *changed,
		    size_t n_changed, const uint32_t *vanished, size_t n_vanished,
		    const struct imap_view_diff_cbs *cbs, void *arg)
{
	size_t i = 0;

	/* vanished and msgs are both ascending: merge */
	for (size_t k = 0; k < n_vanished && i < v->n; k++) {
		while (i < v->n && v->msgs[i].uid < vanished[k])
			i++;
		if (i < v->n && v->msgs[i].uid == vanished[k] && !v->msgs[i].expunged)
			cbs->gone(arg, i);
	}
	uint32_t last = v->n > 0 ? v->msgs[v->n - 1].uid : 0;
	i = 0;
	for (size_t k = 0; k < n_changed; k++) {
		const struct store_msg *m = &changed[k];
		if (m->uid > last)
			break;
		while (i < v->n && v->msgs[i].uid < m->uid)
			i++;
		if (i >= v->n || v->msgs[i].uid != m->uid || v->msgs[i].expunged)
			continue;
		const struct imap_msg *x = &v->msgs[i];
		uint32_t f = m->flags & STORE_F_MASK & ~(uint32_t)IMAP_FLAG_RECENT;
		if ((x->flags & ~(uint32_t)IMAP_FLAG_RECENT) != f || x->keywords != m->keywords ||
		    x->modseq != m->modseq)
			cbs->changed(arg, i, m);
	}
	for (size_t k = 0; k < n_changed; k++)
		if (changed[k].uid > last)
			cbs->added(arg, &changed[k]);
}

struct sync_ctx {
	struct imap_session *s;
	struct store_msg *changed;
	size_t n_changed, cap_changed;
	uint32_t *uids;			/* vanished, then changed-to-announce */
	size_t n_uids, cap_uids;
	size_t n_added;
	bool oom;
};

static int push_uid(struct sync_ctx *c, uint32_t uid)
{
	if (c->n_uids == c->cap_uids) {
		size_t cap = c->cap_uids ? c->cap_uids * 2 : 64;
		uint32_t *nu = realloc(c->uids, cap * sizeof(*nu));
		if (nu == NULL) {
			c->oom = true;
			return 1;
		}
		c->uids = nu;
		c->cap_uids = cap;
	}
	c->uids[c->n_uids++] = uid;
	return 0;
}

static int changed_cb(const struct store_msg *m, void *arg)
{
	struct sync_ctx *c = arg;

	if (c->n_changed == c->cap_changed) {
		size_t cap = c->cap_changed ? c->cap_changed * 2 : 32;
		if (cap > SIZE_MAX / sizeof(*c->changed)) {
			c->oom = true;
			return 1;
		}
		struct store_msg *nc = realloc(c->changed, cap * sizeof(*nc));
		if (nc == NULL) {
			c->oom = true;
			return 1;
		}
		c->changed = nc;
		c->cap_changed = cap;
	}
	c->changed[c->n_changed++] = *m;
	return 0;
}

static int vanished_cb(uint32_t uid, void *arg)
{
	return push_uid(arg, uid);
}

static void sync_gone(void *arg, size_t idx)
{
	struct sync_ctx *c = arg;
	struct imap_view *v = &c->s->view;

	v->msgs[idx].expunged = true;
	v->n_expunged++;
}

/* Changed messages are announced after the expunges, by UID (their
 * sequence numbers may move); the view is updated now. */
static void sync_changed(void *arg, size_t idx, const struct store_msg *m)
{
	struct sync_ctx *c = arg;
	struct imap_msg *x = &c->s->view.msgs[idx];

	x->flags = (m->flags & STORE_F_MASK & ~(uint32_t)IMAP_FLAG_RECENT) |
		   (x->flags & IMAP_FLAG_RECENT);
	x->keywords = m->keywords;
	x->modseq = m->modseq;
	push_uid(c, m->uid);
}

static void sync_added(void *arg, const struct store_msg *m)
{
	struct sync_ctx *c = arg;

	if (view_append(&c->s->view, m) < 0)
		c->oom = true;
	else
		c->n_added++;
}

void imap_write_uidset(struct imap_session *s, const uint32_t *uids, size_t n)
{
	size_t i = 0;
	bool first = true;

	while (i < n) {
		size_t j = i;
		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (j == i)
			imap_writef(s, "%s%" PRIu32, first ? "" : ",", uids[i]);
		else
			imap_writef(s, "%s%" PRIu32 ":%" PRIu32, first ? "" : ",", uids[i], uids[j]);
		first = false;
		i = j + 1;
	}
}

/* Announce and drop the messages marked expunged. */
static int announce_expunges(struct imap_session *s)
{
	struct imap_view *v = &s->view;

	if (v->n_expunged == 0)
		return STORE_OK;
	if (s->enabled & IMAP_ENABLE_QRESYNC) {
		uint32_t *uids = malloc(v->n_expunged * sizeof(*uids));
		size_t k = 0;
		if (uids == NULL)
			return STORE_IO;
		for (size_t i = 0; i < v->n; i++)
			if (v->msgs[i].expunged)
				uids[k++] = v->msgs[i].uid;
		imap_writes(s, "* VANISHED ");
		imap_write_uidset(s, uids, k);
		imap_writes(s, "\r\n");
		free(uids);
	} else {
		for (size_t i = v->n; i-- > 0;)
			if (v->msgs[i].expunged)
				imap_untagged(s, "%zu EXPUNGE", i + 1);
	}
	size_t out = 0;
	for (size_t i = 0; i < v->n; i++) {
		if (v->msgs[i].expunged) {
			if (v->msgs[i].flags & IMAP_FLAG_RECENT)
				v->n_recent--;
			continue;
		}
		v->msgs[out++] = v->msgs[i];
	}
	v->n = out;
	v->n_expunged = 0;
	return STORE_OK;
}

int imap_view_sync(struct imap_session *s, bool allow_expunge)
{
	struct imap_view *v = &s->view;
	struct sync_ctx c = { .s = s };
	int err = STORE_OK;

	if (s->state != IMAP_ST_SELECTED)
		return STORE_OK;
	if (!v->dirty && !(allow_expunge && v->n_expunged > 0))
		return STORE_OK;
	size_t first_changed = 0;

	if (v->dirty) {
		struct store_mailbox mb;
		struct store *st = s->store;
		err = store_mailbox_get_by_id(st, s->userid, v->mboxid, &mb);
		if (err == STORE_NOTFOUND || (err == STORE_OK && mb.uidvalidity != v->uidvalidity)) {
			/* deleted under us: every message is gone */
			for (size_t i = 0; i < v->n; i++)
				if (!v->msgs[i].expunged)
					sync_gone(&c, i);
			v->dirty = false;
			err = STORE_OK;
			goto announce;
		}
		if (err != STORE_OK)
			return err;
		bool kw_added = false;
		err = kw_load(s, &kw_added);
		if (err == STORE_OK)
			err = store_msg_foreach_changed(st, s->userid, v->mboxid, v->highestmodseq,
							changed_cb, &c);
		if (err == STORE_OK && !c.oom)
			err = store_vanished_foreach(st, s->userid, v->mboxid, v->highestmodseq,
						     vanished_cb, &c);
		if (c.oom)
			err = STORE_IO;
		if (err != STORE_OK)
			goto out;
		if (kw_added)
			imap_view_write_flags_responses(s);
		v->dirty = false;
		v->highestmodseq = mb.highestmodseq;
		v->uidnext = mb.uidnext;
		static const struct imap_view_diff_cbs cbs = {
			.gone = sync_gone,
			.changed = sync_changed,
			.added = sync_added,
		};
		/* c.uids holds the vanished UIDs; changed ones are pushed
		 * after them */
		size_t n_van = c.n_uids;
		first_changed = n_van;
		imap_view_diff(v, c.changed, c.n_changed, c.uids, n_van, &cbs, &c);
		if (c.oom) {
			err = STORE_IO;
			goto out;
		}
	}
announce:
	if (allow_expunge) {
		err = announce_expunges(s);
		if (err != STORE_OK)
			goto out;
	}
	for (size_t k = first_changed; k < c.n_uids; k++) {
		uint32_t seq = imap_view_seq(v, c.uids[k]);
		const struct imap_msg *x = imap_view_msg(v, seq);
		if (x == NULL || x->expunged)
			continue;
		imap_writef(s, "* %" PRIu32 " FETCH (FLAGS ", seq);
		imap_write_flags(s, v, x->flags, x->keywords);
		if (s->enabled & IMAP_ENABLE_QRESYNC)
			imap_writef(s, " UID %" PRIu32, x->uid);
		if (s->condstore)
			imap_writef(s, " MODSEQ (%" PRIu64 ")", imap_modseq_out(x->modseq));
		imap_writes(s, ")\r\n");
	}
	if (c.n_added > 0) {
		imap_untagged(s, "%zu EXISTS", v->n);
		imap_untagged(s, "%" PRIu32 " RECENT", v->n_recent);
	}
out:
	imap_registry_save_recent(s);
	free(c.changed);
	free(c.uids);
	return err;
}
