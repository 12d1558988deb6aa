/*
 * store_merge.c - a home POP takes back what a mirror did for it while it
 * was down, merging it with what it did itself (failover and return).
 *
 * While home X is down, mirror M serves X's users from its mirror store
 * of X with the normal ops, so M's changelog of origin X holds X's
 * records 1..B (B: what M had applied) and then M's own B+1..L.  When X
 * returns it fetches B+1..L with their bodies and merges them into its
 * own store, which may hold records after B that M never got (the other
 * side).  The rules follow Dovecot's dsync (docs/store.md "Merge rules
 * (home return)"): a mailbox is the same by id and UIDVALIDITY, a mailbox
 * the mirror created joins the home's of that name or is created; a UID
 * both sides gave to different messages moves both to new UIDs above
 * every UID either side used, so no client ever sees one UID name two
 * messages and nothing is lost; an expunge beats a flag change; between
 * two flag changes the later wins, the home on a tie.  "Above every UID
 * the mirror used" is known before its records are: it gives at most one
 * new UID (and one modseq) per record, so its uidnext at B + L - B bounds
 * them (L: the mirror's last seq, store_merge_begin or the one call's).
 *
 * Every change is written as the normal op writes it: records of X's
 * origin with X's next seq and the current time (so X's mirrors receive
 * them by normal shipping), modseqs, counters, body references,
 * tombstones, change observer touches.  A call is one op (OP_FN), one
 * nested transaction of a group commit: all or nothing.
 *
 * A failover can bring more records than one call (one LMDB transaction,
 * the caller's memory) holds, so a merge may come in several calls.  What
 * one call learnt lives in the meta db under "merge/<mirror>/", one
 * binary-keyed entry each, until store_merge_end:
 *
 *   s                              ver, base B BE64, pos BE64 (the mirror's
 *                                  last seq merged), last L BE64 (the
 *                                  mirror's last seq, as far as known)
 *   w first BE64                   last BE64: home seqs the merge wrote
 *                                  (not "the home's own changes")
 *   u muser BE32                   home userid BE32 (0: the home has no such
 *                                  user)
 *   m muser BE32, mmbox BE32       ver, home mboxid BE32, kind u8, floor
 *                                  BE32, horizon BE32, modseq horizon BE64
 *   i muser, mmbox, muid (BE32)    home uid BE32 (0: not merged); only where
 *                                  the home UID is not the mirror's, or
 *                                  the mailbox joined the home's
 *   r huser, hmbox, huid (BE32)    muser, mmbox, muid: the mirror message a
 *                                  renumbered merged one came from
 *   k muser, mmbox (BE32), idx u8  home keyword index u8 (0xff: dropped)
 *
 * Ids the mirror gave after B (users it added, mailboxes it created) can
 * collide with ids the home gave after B, so they are always mapped; an
 * id the merge has no entry for is one both sides shared at B (the home
 * never reuses ids: if it still has it, it is the same user or mailbox).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_private.h"

#define MKEY_MAX (sizeof(META_MERGE_PREFIX) + STORE_POP_MAX + 1 + 12)
#define STATE_REC_LEN 25
#define MMAP_REC_LEN 22
#define KW_DROPPED 0xff
#define NAME_TRIES 1000		/* "name-merged-1" .. "-1000" */

enum mkind {
	MK_SAME = 1,	/* one both had at B (same id, same UIDVALIDITY): UIDs and
			 * the keyword table up to B are shared */
	MK_ADOPTED = 2,	/* created here by the merge for one the mirror created,
			 * with its UIDVALIDITY (if free): UIDs kept */
	MK_NAMED = 3,	/* the home's mailbox of that name, another UIDVALIDITY:
			 * the mirror's messages get the next UIDs */
	MK_GONE = 4,	/* deleted at the home, or by the merge */
	MK_SAMEUV = 5,	/* the home's mailbox of that name with the same
			 * UIDVALIDITY (both sides made one after B and the
			 * counters met): to a client the same mailbox, so UIDs
			 * are shared as for MK_SAME; keyword tables are not */
};

struct mmap {
	uint32_t hmbox;
	enum mkind kind;
	uint32_t floor;		/* SAME, SAMEUV: the mailbox's uidnext when the
				 * merge first touched it (below: the home's UIDs) */
	uint32_t horizon;	/* above every UID the mirror can have given in it:
				 * its uidnext at B (or creation) + L - B, at least
				 * (a new UID needs a record); raised by the UIDs
				 * of a call past L */
	uint64_t modhorizon;	/* the same for its modseqs: a record bumps a
				 * mailbox's highestmodseq once at most */
};

/* A mailbox name the home gave after B, with its UIDVALIDITY. */
struct home_mbox {
	uint32_t userid, uidvalidity;
	char name[STORE_MBOX_MAX];
};

/* A home message changed after B by the home itself (MSG_ADD, MSG_FLAGS). */
struct home_change {
	uint32_t userid, mboxid, uid;
	int64_t time;
};

/* Per mirror mailbox of this call: its highest UID and modseq in recs. */
struct extent {
	uint32_t muser, mmbox;
	uint32_t maxuid;
	uint64_t maxmod;
};

struct range {
	uint64_t first, last;
};

/* What an OP_FN of this file carries; merge_done (the op's callback)
 * frees it. */
struct store_merge {
	char mirror[STORE_POP_MAX];
	uint8_t prefix[MKEY_MAX];	/* "merge/<mirror>/" */
	size_t prefix_len;
	uint64_t base;
	struct store_apply_rec *recs;	/* data, body, meta point into blob */
	size_t n;
	uint8_t *blob;
	enum { M_RECS, M_BEGIN, M_END } what;
	uint64_t last;			/* M_BEGIN: the mirror's last seq */
	struct store_merge_stats stats;
	struct store_merge_stats *stats_r;
	store_done_cb *cb;
	void *arg;

	/* the run, on the writer thread */
	uint64_t home_base;		/* B of the whole merge */
	uint64_t span;			/* L - B */
	struct home_change *changes;
	size_t n_changes, cap_changes;
	struct home_mbox *hmboxes;	/* names it created or renamed to after B */
	size_t n_hmboxes, cap_hmboxes;
	struct extent *ext;
	size_t n_ext, cap_ext;
	struct range *ranges;
	size_t n_ranges, cap_ranges;
};

struct mkey {
	uint8_t b[MKEY_MAX];
	size_t len;
};

/* ---- small helpers ------------------------------------------------------- */

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
	size_t nc;
	void *q;

	if (n < *cap)
		return STORE_OK;
	nc = *cap != 0 ? *cap * 2 : 64;
	if (nc > SIZE_MAX / size)
		return STORE_IO;
	q = realloc(*p, nc * size);
	if (q == NULL)
		return STORE_IO;
	*p = q;
	*cap = nc;
	return STORE_OK;
}

static void mkey_start(const struct store_merge *x, struct mkey *k, char type)
{
	memcpy(k->b, x->prefix, x->prefix_len);
	k->b[x->prefix_len] = (uint8_t)type;
	k->len = x->prefix_len + 1;
}

static void mkey_be32(struct mkey *k, uint32_t v)
{
	be32_put(k->b + k->len, v);
	k->len += 4;
}

static int mget(struct store *st, MDB_txn *txn, const struct mkey *k, MDB_val *v)
{
	MDB_val kk = { .mv_size = k->len, .mv_data = (void *)k->b };

	return store_mdb_err(mdb_get(txn, st->dbi[DBI_META], &kk, v));
}

static int mput(struct store *st, MDB_txn *txn, const struct mkey *k, const void *val,
		size_t len)
{
	return store_put(txn, st->dbi[DBI_META], k->b, k->len, val, len, 0);
}

static int mdel(struct store *st, MDB_txn *txn, const struct mkey *k)
{
	MDB_val kk = { .mv_size = k->len, .mv_data = (void *)k->b };
	int rc = mdb_del(txn, st->dbi[DBI_META], &kk, NULL);

	return rc == MDB_NOTFOUND ? STORE_OK : store_mdb_err(rc);
}

/* A POP id as the control socket takes it: 1-63 of A-Z a-z 0-9 . _ -,
 * so never a '/' that would make one mirror's keys another's prefix. */
static bool mirror_ok(const char *s)
{
	size_t len, i;

	if (s == NULL || (len = strnlen(s, STORE_POP_MAX)) == 0 || len >= STORE_POP_MAX ||
	    strcmp(s, "-") == 0)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static size_t merge_prefix(uint8_t buf[MKEY_MAX], const char *mirror)
{
	size_t plen = sizeof(META_MERGE_PREFIX) - 1, len = strlen(mirror);

	memcpy(buf, META_MERGE_PREFIX, plen);
	memcpy(buf + plen, mirror, len);
	buf[plen + len] = '/';
	return plen + len + 1;
}

/* ---- the pure rules ------------------------------------------------------ */

enum store_merge_uid_how store_merge_uid(const struct store_merge_uid_in *in, uint32_t *uid_r,
					 bool *move_home_r)
{
	*move_home_r = false;
	*uid_r = in->uid;
	/* below the floor the home had the UID before the merge: the same
	 * message if it holds the same body from the same INTERNALDATE */
	if (in->home_msg && in->home_same && in->uid < in->floor)
		return STORE_MERGE_UID_SAME;
	if (!in->home_msg && !in->home_vanished && in->uid >= in->floor)
		return STORE_MERGE_UID_KEEP;
	/* the home gave the UID to another message, or used it and expunged
	 * it: the mirror's message goes above everything either side used,
	 * and the home's (if still there) leaves the UID too */
	*uid_r = in->uidnext > in->horizon ? in->uidnext : in->horizon;
	*move_home_r = in->home_msg;
	return STORE_MERGE_UID_NEW;
}

int store_merge_name(const char *name, unsigned n, char out[STORE_MBOX_MAX])
{
	int len;

	if (name == NULL || n == 0)
		return STORE_INVAL;
	len = snprintf(out, STORE_MBOX_MAX, "%s-merged-%u", name, n);
	if (len < 0 || len >= STORE_MBOX_MAX) {
		out[0] = '\0';
		return STORE_INVAL;
	}
	return store_mailbox_name_check(out);
}

/* ---- what the run learns first ------------------------------------------- */

static int cmp_change(const void *a, const void *b)
{
	const struct home_change *x = a, *y = b;

	if (x->userid != y->userid)
		return x->userid < y->userid ? -1 : 1;
	if (x->mboxid != y->mboxid)
		return x->mboxid < y->mboxid ? -1 : 1;
	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static int cmp_extent(const void *a, const void *b)
{
	const struct extent *x = a, *y = b;

	if (x->muser != y->muser)
		return x->muser < y->muser ? -1 : 1;
	return x->mmbox < y->mmbox ? -1 : x->mmbox > y->mmbox;
}

/* The seq ranges earlier calls of this merge wrote ("w" entries, in
 * key order: ascending). */
static int range_cb(const MDB_val *k, const MDB_val *v, void *ctx)
{
	struct store_merge *x = ctx;
	int err;

	if (v->mv_size != 8 || k->mv_size < 8)
		return STORE_IO;
	if ((err = grow((void **)&x->ranges, &x->cap_ranges, x->n_ranges, sizeof(*x->ranges))) !=
	    STORE_OK)
		return err;
	x->ranges[x->n_ranges].first = be64_get((const uint8_t *)k->mv_data + k->mv_size - 8);
	x->ranges[x->n_ranges].last = be64_get(v->mv_data);
	x->n_ranges++;
	return STORE_OK;
}

static int ranges_load(struct store *st, MDB_txn *txn, struct store_merge *x)
{
	struct mkey pk;

	mkey_start(x, &pk, 'w');
	return store_scan_prefix(st, txn, st->dbi[DBI_META], pk.b, pk.len, pk.len, range_cb, x);
}

/* The home's own changes after B (its records past B that the merge did
 * not write): message changes with their time, and the UIDVALIDITY of
 * every mailbox it made. */
static int home_changes_load(struct store *st, MDB_txn *txn, struct store_merge *x)
{
	uint8_t kb[CHANGE_KEY_MAX];
	MDB_val k = { .mv_data = kb }, v;
	MDB_cursor *cur;
	MDB_cursor_op how = MDB_SET_RANGE;
	size_t ri = 0, i, out;
	int rc, err = STORE_OK;

	if ((rc = mdb_cursor_open(txn, st->dbi[DBI_CHANGELOG], &cur)) != 0)
		return store_mdb_err(rc);
	k.mv_size = change_key(kb, st->origin, st->origin_len, x->home_base + 1);
	while ((rc = mdb_cursor_get(cur, &k, &v, how)) == 0) {
		const uint8_t *p = v.mv_data;
		uint64_t seq;

		how = MDB_NEXT;
		if (k.mv_size != 1 + st->origin_len + 8 ||
		    memcmp(k.mv_data, kb, 1 + st->origin_len) != 0)
			break;	/* next origin */
		if (v.mv_size < CHANGE_REC_FIXED || p[0] != STORE_REC_V1) {
			err = STORE_IO;
			break;
		}
		seq = be64_get((const uint8_t *)k.mv_data + 1 + st->origin_len);
		while (ri < x->n_ranges && x->ranges[ri].last < seq)
			ri++;
		if (ri < x->n_ranges && x->ranges[ri].first <= seq)
			continue;	/* the merge wrote it */
		if (p[1] == STORE_CH_MSG_ADD || p[1] == STORE_CH_MSG_FLAGS) {
			if ((err = grow((void **)&x->changes, &x->cap_changes, x->n_changes,
					sizeof(*x->changes))) != STORE_OK)
				break;
			x->changes[x->n_changes++] = (struct home_change){
				.userid = be32_get(p + 2), .mboxid = be32_get(p + 6),
				.uid = be32_get(p + 10), .time = (int64_t)be64_get(p + 14),
			};
		} else if (p[1] == STORE_CH_MAILBOX_ADD || p[1] == STORE_CH_MAILBOX_RENAME) {
			MDB_val mv = { .mv_size = v.mv_size - CHANGE_REC_FIXED,
				       .mv_data = (void *)(p + CHANGE_REC_FIXED) };
			struct store_mailbox mb;

			if ((err = mbox_rec_decode(&mv, &mb)) != STORE_OK ||
			    (err = grow((void **)&x->hmboxes, &x->cap_hmboxes, x->n_hmboxes,
					 sizeof(*x->hmboxes))) != STORE_OK)
				break;
			x->hmboxes[x->n_hmboxes].userid = be32_get(p + 2);
			x->hmboxes[x->n_hmboxes].uidvalidity = mb.uidvalidity;
			strcpy(x->hmboxes[x->n_hmboxes].name, mb.name);
			x->n_hmboxes++;
		}
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		err = store_mdb_err(rc);
	mdb_cursor_close(cur);
	if (err != STORE_OK)
		return err;
	/* one entry per message, with its latest time */
	if (x->n_changes > 0)
		qsort(x->changes, x->n_changes, sizeof(*x->changes), cmp_change);
	for (i = 0, out = 0; i < x->n_changes; i++) {
		if (out > 0 && cmp_change(&x->changes[out - 1], &x->changes[i]) == 0) {
			if (x->changes[out - 1].time < x->changes[i].time)
				x->changes[out - 1].time = x->changes[i].time;
		} else {
			x->changes[out++] = x->changes[i];
		}
	}
	x->n_changes = out;
	return STORE_OK;
}

/* Did the home itself change that message after B, at t or later? */
static bool home_changed_since(const struct store_merge *x, uint32_t userid, uint32_t mboxid,
			       uint32_t uid, int64_t t)
{
	struct home_change key = { .userid = userid, .mboxid = mboxid, .uid = uid };
	const struct home_change *hc;

	if (x->n_changes == 0)
		return false;
	hc = bsearch(&key, x->changes, x->n_changes, sizeof(*x->changes), cmp_change);
	return hc != NULL && hc->time >= t;
}

static void extent_note(struct extent *e, uint32_t uid, uint64_t modseq)
{
	if (uid == UINT32_MAX)
		uid = UINT32_MAX - 1;	/* no valid record has it; keeps maxuid + 1 sound */
	if (e->maxuid < uid)
		e->maxuid = uid;
	if (e->maxmod < modseq)
		e->maxmod = modseq;
}

/* The highest UID and modseq of each mirror mailbox in this call's records. */
static int extents_build(struct store_merge *x)
{
	size_t i, out;
	int err;

	for (i = 0; i < x->n; i++) {
		const struct store_change *c = &x->recs[i].c;
		const uint8_t *p = c->data;
		uint32_t uid = 0;
		uint64_t mod = 0;

		switch (c->type) {
		case STORE_CH_MSG_ADD:
			if (c->data_len < MSG_REC_FIXED)
				continue;
			uid = c->uid;
			mod = be64_get(p + 9);
			break;
		case STORE_CH_MSG_FLAGS:
		case STORE_CH_MSG_EXPUNGE:
			if (c->data_len < 8)
				continue;
			uid = c->uid;
			mod = be64_get(p);
			break;
		case STORE_CH_MAILBOX_ADD:
		case STORE_CH_MAILBOX_RENAME:
			if (c->data_len < MBOX_REC_FIXED)
				continue;
			uid = be32_get(p + 9);		/* uidnext */
			uid = uid > 0 ? uid - 1 : 0;
			mod = be64_get(p + 13);		/* highestmodseq */
			break;
		default:
			continue;
		}
		if ((err = grow((void **)&x->ext, &x->cap_ext, x->n_ext, sizeof(*x->ext))) !=
		    STORE_OK)
			return err;
		x->ext[x->n_ext] = (struct extent){ .muser = c->userid, .mmbox = c->mboxid };
		extent_note(&x->ext[x->n_ext++], uid, mod);
	}
	if (x->n_ext > 0)
		qsort(x->ext, x->n_ext, sizeof(*x->ext), cmp_extent);
	for (i = 0, out = 0; i < x->n_ext; i++) {
		if (out > 0 && cmp_extent(&x->ext[out - 1], &x->ext[i]) == 0)
			extent_note(&x->ext[out - 1], x->ext[i].maxuid, x->ext[i].maxmod);
		else
			x->ext[out++] = x->ext[i];
	}
	x->n_ext = out;
	return STORE_OK;
}

static const struct extent *extent_find(const struct store_merge *x, uint32_t muser,
					uint32_t mmbox)
{
	struct extent key = { .muser = muser, .mmbox = mmbox };

	if (x->n_ext == 0)
		return NULL;
	return bsearch(&key, x->ext, x->n_ext, sizeof(*x->ext), cmp_extent);
}

/* ---- maps ---------------------------------------------------------------- */

/* The first horizon of a mailbox whose UIDs the mirror gave from uidnext
 * on (after B, or since it made it): it cannot have given more than one
 * per record. */
static uint32_t horizon_from(const struct store_merge *x, uint32_t uidnext)
{
	uint64_t h = (uint64_t)uidnext + x->span;

	return h < UINT32_MAX ? (uint32_t)h : UINT32_MAX - 1;
}

static uint64_t modhorizon_from(const struct store_merge *x, uint64_t highestmodseq)
{
	const uint64_t cap = UINT64_MAX / 2;	/* leaves room to count on */

	if (x->span >= cap || highestmodseq >= cap - x->span)
		return cap;
	return highestmodseq + x->span;
}

/* The home's user for the mirror's user muser: *have_r false if none. */
static int user_map(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
		    struct store_user *u_r, bool *have_r)
{
	struct mkey k;
	uint32_t h = muser;
	MDB_val v;
	int err;

	*have_r = false;
	mkey_start(x, &k, 'u');
	mkey_be32(&k, muser);
	err = mget(st, txn, &k, &v);
	if (err == STORE_OK) {
		if (v.mv_size != 4)
			return STORE_IO;
		if ((h = be32_get(v.mv_data)) == 0)
			return STORE_OK;
	} else if (err != STORE_NOTFOUND) {
		return err;
	}
	err = store_load_user_id(st, txn, h, u_r);
	if (err == STORE_NOTFOUND)
		return STORE_OK;
	if (err != STORE_OK)
		return err;
	*have_r = true;
	return STORE_OK;
}

static int mmap_put(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
		    uint32_t mmbox, const struct mmap *mm)
{
	uint8_t rec[MMAP_REC_LEN];
	struct mkey k;

	mkey_start(x, &k, 'm');
	mkey_be32(&k, muser);
	mkey_be32(&k, mmbox);
	rec[0] = STORE_REC_V1;
	be32_put(rec + 1, mm->hmbox);
	rec[5] = (uint8_t)mm->kind;
	be32_put(rec + 6, mm->floor);
	be32_put(rec + 10, mm->horizon);
	be64_put(rec + 14, mm->modhorizon);
	return mput(st, txn, &k, rec, sizeof(rec));
}

/* The entry of the mirror's mailbox (muser, mmbox), NOTFOUND if none. */
static int mmap_get(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
		    uint32_t mmbox, struct mmap *mm_r)
{
	const uint8_t *p;
	struct mkey k;
	MDB_val v;
	int err;

	mkey_start(x, &k, 'm');
	mkey_be32(&k, muser);
	mkey_be32(&k, mmbox);
	if ((err = mget(st, txn, &k, &v)) != STORE_OK)
		return err;
	p = v.mv_data;
	if (v.mv_size != MMAP_REC_LEN || p[0] != STORE_REC_V1 || p[5] < MK_SAME || p[5] > MK_SAMEUV)
		return STORE_IO;
	mm_r->hmbox = be32_get(p + 1);
	mm_r->kind = (enum mkind)p[5];
	mm_r->floor = be32_get(p + 6);
	mm_r->horizon = be32_get(p + 10);
	mm_r->modhorizon = be64_get(p + 14);
	return STORE_OK;
}

/* The home's mailbox for the mirror's mailbox mmbox of user u (the home's
 * user).  Without an entry it is one both had at B: the same if the home
 * still has it (its floor is its uidnext now), else gone.  mb_r is loaded
 * unless the result is MK_GONE. */
static int mbox_map(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
		    uint32_t mmbox, const struct store_user *u, struct mmap *mm_r,
		    struct store_mailbox *mb_r)
{
	int err = mmap_get(st, txn, x, muser, mmbox, mm_r);

	if (err == STORE_NOTFOUND) {
		memset(mm_r, 0, sizeof(*mm_r));
		err = store_load_mbox_id(st, txn, u->id, mmbox, mb_r);
		if (err == STORE_OK) {
			mm_r->kind = MK_SAME;
			mm_r->hmbox = mmbox;
			mm_r->floor = mb_r->uidnext;
			mm_r->horizon = horizon_from(x, mb_r->uidnext);
			mm_r->modhorizon = modhorizon_from(x, mb_r->highestmodseq);
		} else if (err == STORE_NOTFOUND) {
			mm_r->kind = MK_GONE;
		} else {
			return err;
		}
		return mmap_put(st, txn, x, muser, mmbox, mm_r);
	}
	if (err != STORE_OK || mm_r->kind == MK_GONE)
		return err;
	err = store_load_mbox_id(st, txn, u->id, mm_r->hmbox, mb_r);
	if (err == STORE_NOTFOUND) {
		/* deleted at the home since an earlier call mapped it */
		mm_r->kind = MK_GONE;
		return mmap_put(st, txn, x, muser, mmbox, mm_r);
	}
	return err;
}

static void uid_key(struct store_merge *x, struct mkey *k, char type, uint32_t a, uint32_t b,
		    uint32_t c)
{
	mkey_start(x, k, type);
	mkey_be32(k, a);
	mkey_be32(k, b);
	mkey_be32(k, c);
}

/* The home UID of the mirror's message (mmbox, muid): its "i" entry, else
 * the same number.  0: not merged. */
static int uid_map(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
		   uint32_t mmbox, uint32_t muid, uint32_t *h_r)
{
	struct mkey k;
	MDB_val v;
	int err;

	uid_key(x, &k, 'i', muser, mmbox, muid);
	err = mget(st, txn, &k, &v);
	if (err == STORE_NOTFOUND) {
		*h_r = muid;
		return STORE_OK;
	}
	if (err != STORE_OK)
		return err;
	if (v.mv_size != 4)
		return STORE_IO;
	*h_r = be32_get(v.mv_data);
	return STORE_OK;
}

static int uid_map_put(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
		       uint32_t mmbox, uint32_t muid, uint32_t huid)
{
	uint8_t b[4];
	struct mkey k;

	uid_key(x, &k, 'i', muser, mmbox, muid);
	be32_put(b, huid);
	return mput(st, txn, &k, b, 4);
}

static int rev_put(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t huser,
		   uint32_t hmbox, uint32_t huid, uint32_t muser, uint32_t mmbox, uint32_t muid)
{
	uint8_t b[12];
	struct mkey k;

	uid_key(x, &k, 'r', huser, hmbox, huid);
	be32_put(b, muser);
	be32_put(b + 4, mmbox);
	be32_put(b + 8, muid);
	return mput(st, txn, &k, b, sizeof(b));
}

/* The home's message (huser, hmbox, from) moved to `to`: if the merge had
 * put a mirror's message there under a new UID, its map follows. */
static int rev_moved(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t huser,
		     uint32_t hmbox, uint32_t from, uint32_t to)
{
	uint32_t muser, mmbox, muid;
	struct mkey k;
	MDB_val v;
	int err;

	uid_key(x, &k, 'r', huser, hmbox, from);
	err = mget(st, txn, &k, &v);
	if (err == STORE_NOTFOUND)
		return STORE_OK;
	if (err != STORE_OK)
		return err;
	if (v.mv_size != 12)
		return STORE_IO;
	muser = be32_get(v.mv_data);
	mmbox = be32_get((const uint8_t *)v.mv_data + 4);
	muid = be32_get((const uint8_t *)v.mv_data + 8);
	if ((err = mdel(st, txn, &k)) != STORE_OK ||
	    (err = rev_put(st, txn, x, huser, hmbox, to, muser, mmbox, muid)) != STORE_OK)
		return err;
	return uid_map_put(st, txn, x, muser, mmbox, muid, to);
}

/* The home's bitmap for the mirror's keywords of mailbox mmbox. */
static int kw_translate(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
			uint32_t mmbox, const struct mmap *mm, uint32_t huser, uint64_t mask,
			uint64_t *out_r)
{
	uint8_t kb[KEYWORD_KEY_LEN];
	MDB_val hk = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	uint64_t out = 0;
	struct mkey k;
	unsigned i;
	int err, rc;

	for (i = 0; i < 64; i++) {
		if (!(mask & (1ULL << i)))
			continue;
		mkey_start(x, &k, 'k');
		mkey_be32(&k, muser);
		mkey_be32(&k, mmbox);
		k.b[k.len++] = (uint8_t)i;
		err = mget(st, txn, &k, &v);
		if (err == STORE_OK) {
			if (v.mv_size != 1)
				return STORE_IO;
			if (*(const uint8_t *)v.mv_data < STORE_KEYWORDS_MAX)
				out |= 1ULL << *(const uint8_t *)v.mv_data;
			continue;
		}
		if (err != STORE_NOTFOUND)
			return err;
		/* a keyword both tables had at B: only a shared mailbox has one */
		if (mm->kind != MK_SAME)
			continue;
		keyword_key(kb, huser, mm->hmbox, i);
		rc = mdb_get(txn, st->dbi[DBI_KEYWORDS], &hk, &v);
		if (rc == 0)
			out |= 1ULL << i;
		else if (rc != MDB_NOTFOUND)
			return store_mdb_err(rc);
	}
	*out_r = out;
	return STORE_OK;
}

/* ---- message primitives -------------------------------------------------- */

/* Before a change in a mailbox the mirror's clients know (same
 * UIDVALIDITY): its modseqs go above every one the mirror can have given,
 * so a CONDSTORE/QRESYNC client that synced with the mirror sees it. */
static void modseq_raise(const struct store_merge *x, uint32_t muser, uint32_t mmbox,
			 const struct mmap *mm, struct store_mailbox *mb)
{
	const struct extent *e = extent_find(x, muser, mmbox);

	if (mm->kind == MK_NAMED)
		return;
	if (mb->highestmodseq < mm->modhorizon)
		mb->highestmodseq = mm->modhorizon;
	if (e != NULL && mb->highestmodseq < e->maxmod)
		mb->highestmodseq = e->maxmod;
}

/* Load message uid: STORE_NOTFOUND if the home has none.  rec_r (if not
 * NULL) gets a copy of the record to free. */
static int msg_load(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
		    uint32_t uid, struct store_msg *m_r, size_t *prefix_len_r, uint8_t **rec_r,
		    size_t *len_r)
{
	uint8_t kb[MSG_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	int err;

	msg_key(kb, userid, mboxid, uid);
	if ((err = store_mdb_err(mdb_get(txn, st->dbi[DBI_MESSAGES], &k, &v))) != STORE_OK)
		return err;
	if ((err = msg_rec_decode(&v, m_r, NULL, prefix_len_r)) != STORE_OK)
		return err;
	m_r->uid = uid;
	if (rec_r != NULL) {
		*rec_r = store_xcalloc(1, v.mv_size);
		memcpy(*rec_r, v.mv_data, v.mv_size);
		*len_r = v.mv_size;
	}
	return STORE_OK;
}

static int vanished_has(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
			uint32_t uid, bool *r)
{
	uint8_t kb[MSG_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	int rc;

	msg_key(kb, userid, mboxid, uid);
	rc = mdb_get(txn, st->dbi[DBI_VANISHED], &k, &v);
	*r = rc == 0;
	return rc == MDB_NOTFOUND ? STORE_OK : store_mdb_err(rc);
}

/* Expunge the home's message m of mailbox mb as store_op_expunge does
 * (counters of mb and u, body reference, tombstone, MSG_EXPUNGE with a
 * modseq of its own).  The caller puts mb and u. */
static int expunge_one(struct store *st, MDB_txn *txn, struct store_user *u,
		       struct store_mailbox *mb, const struct store_msg *m)
{
	uint8_t kb[MSG_KEY_LEN], pl[8 + STORE_BODY_HASH_LEN];
	uint64_t exp = ++mb->highestmodseq;
	int err;

	msg_key(kb, u->id, mb->id, m->uid);
	if ((err = store_del(txn, st->dbi[DBI_MESSAGES], kb, sizeof(kb))) != STORE_OK ||
	    (err = store_body_unref(st, txn, m->hash)) != STORE_OK ||
	    (err = store_vanish(st, txn, u->id, mb->id, m->uid, exp)) != STORE_OK)
		return err;
	mb->messages = mb->messages > 0 ? mb->messages - 1 : 0;
	mb->bytes = mb->bytes > m->size ? mb->bytes - m->size : 0;
	if (!(m->flags & STORE_F_SEEN) && mb->unseen > 0)
		mb->unseen--;
	u->messages = u->messages > 0 ? u->messages - 1 : 0;
	u->used = u->used > m->size ? u->used - m->size : 0;
	be64_put(pl, exp);
	memcpy(pl + 8, m->hash, STORE_BODY_HASH_LEN);
	const struct store_part part = { pl, sizeof(pl) };
	return store_changelog_append(st, txn, STORE_CH_MSG_EXPUNGE, u->id, mb->id, m->uid, &part,
				      1);
}

/* Move the home's message uid of mb to the next UID, as a move within
 * the mailbox writes it: MSG_ADD of the new UID (fresh modseq), then
 * MSG_EXPUNGE of the old one with its tombstone.  Counters and the body
 * reference do not change.  The caller puts mb. */
static int move_home_msg(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t userid,
			 struct store_mailbox *mb, uint32_t uid)
{
	uint8_t kb[MSG_KEY_LEN], pl[8 + STORE_BODY_HASH_LEN], *rec = NULL;
	struct store_msg m;
	size_t prefix_len, len = 0;
	uint32_t nu;
	uint64_t exp;
	int err;

	if ((err = msg_load(st, txn, userid, mb->id, uid, &m, &prefix_len, &rec, &len)) !=
	    STORE_OK)
		return err == STORE_NOTFOUND ? STORE_IO : err;
	if (mb->uidnext == 0 || mb->uidnext >= UINT32_MAX) {
		err = STORE_FULL;
		goto out;
	}
	nu = mb->uidnext++;
	m.modseq = ++mb->highestmodseq;
	msg_rec_encode_fixed(&m, prefix_len, rec);
	msg_key(kb, userid, mb->id, nu);
	err = store_put(txn, st->dbi[DBI_MESSAGES], kb, sizeof(kb), rec, len, MDB_NOOVERWRITE);
	if (err != STORE_OK) {
		err = err == STORE_EXISTS ? STORE_IO : err;
		goto out;
	}
	const struct store_part add = { rec, len };
	if ((err = store_changelog_append(st, txn, STORE_CH_MSG_ADD, userid, mb->id, nu, &add,
					  1)) != STORE_OK)
		goto out;
	exp = ++mb->highestmodseq;
	msg_key(kb, userid, mb->id, uid);
	if ((err = store_del(txn, st->dbi[DBI_MESSAGES], kb, sizeof(kb))) != STORE_OK ||
	    (err = store_vanish(st, txn, userid, mb->id, uid, exp)) != STORE_OK)
		goto out;
	be64_put(pl, exp);
	memcpy(pl + 8, m.hash, STORE_BODY_HASH_LEN);
	const struct store_part gone = { pl, sizeof(pl) };
	if ((err = store_changelog_append(st, txn, STORE_CH_MSG_EXPUNGE, userid, mb->id, uid, &gone,
					  1)) != STORE_OK)
		goto out;
	err = rev_moved(st, txn, x, userid, mb->id, uid, nu);
out:
	free(rec);
	return err;
}

static int put_mbox_user(struct store *st, MDB_txn *txn, struct store_op *op,
			 const struct store_mailbox *mb, const struct store_user *u)
{
	int err;

	if ((err = store_mbox_put(st, txn, u->id, mb, 0)) != STORE_OK ||
	    (err = store_user_put(st, txn, u, 0)) != STORE_OK)
		return err;
	store_touch(op, u->id, mb->id);
	return STORE_OK;
}

/* ---- message records ----------------------------------------------------- */

/* A mailbox the mirror created that joined the home's of that name: the
 * home's holds mail the mirror never saw. */
static bool joined(const struct mmap *mm)
{
	return mm->kind == MK_NAMED || mm->kind == MK_SAMEUV;
}

/* Add the mirror's message (record r, decoded as m) to mb under uid. */
static int add_msg(struct store *st, MDB_txn *txn, struct store_merge *x,
		   const struct store_apply_rec *r, const struct mmap *mm, struct store_user *u,
		   struct store_mailbox *mb, struct store_msg *m, size_t prefix_len, uint32_t uid)
{
	const struct store_change *c = &r->c;
	uint64_t body_len = m->size - prefix_len;
	uint8_t kb[MSG_KEY_LEN], *rec;
	int err;

	if (uid == 0 || uid >= UINT32_MAX)
		return STORE_FULL;	/* UID space used up */
	if ((err = kw_translate(st, txn, x, c->userid, c->mboxid, mm, u->id, m->keywords,
				&m->keywords)) != STORE_OK)
		return err;
	m->modseq = ++mb->highestmodseq;
	rec = store_xcalloc(1, c->data_len);
	memcpy(rec, c->data, c->data_len);	/* prefix included */
	msg_rec_encode_fixed(m, prefix_len, rec);
	msg_key(kb, u->id, mb->id, uid);
	err = store_put(txn, st->dbi[DBI_MESSAGES], kb, sizeof(kb), rec, c->data_len,
			MDB_NOOVERWRITE);
	if (err == STORE_OK) {
		const struct store_part part = { rec, c->data_len };

		err = store_changelog_append(st, txn, STORE_CH_MSG_ADD, u->id, mb->id, uid, &part,
					     1);
	}
	free(rec);
	if (err != STORE_OK)
		return err == STORE_EXISTS ? STORE_IO : err;
	if ((err = store_body_ref(st, txn, m->hash, r->body, (size_t)body_len, r->meta,
				  r->meta_len)) != STORE_OK)
		return err;
	mb->messages++;
	mb->bytes += m->size;
	if (!(m->flags & STORE_F_SEEN))
		mb->unseen++;
	if (mb->uidnext <= uid)
		mb->uidnext = uid + 1;
	u->messages++;
	u->used += m->size;
	return STORE_OK;
}

static int merge_msg_add(struct store *st, MDB_txn *txn, struct store_op *op,
			 struct store_merge *x, const struct store_apply_rec *r)
{
	const struct store_change *c = &r->c;
	struct store_merge_uid_in in = { .uid = c->uid };
	enum store_merge_uid_how how;
	const struct extent *e;
	struct store_mailbox mb;
	struct store_user u;
	struct store_msg m, hm = { 0 };
	struct mmap mm;
	size_t prefix_len;
	uint32_t uid;
	bool have, body_ok, move = false;
	int err;

	if ((err = store_ch_msg(c, &m, &prefix_len)) != STORE_OK)
		return err;
	err = store_ch_check_body(st, txn, r, &m, m.size - prefix_len);
	if (err != STORE_OK && err != STORE_NOTFOUND)
		return err;
	if (err == STORE_NOTFOUND && !r->body_gone)
		return STORE_NOTFOUND;
	body_ok = err == STORE_OK;
	if ((err = user_map(st, txn, x, c->userid, &u, &have)) != STORE_OK)
		return err;
	if (!have) {
		x->stats.skipped++;
		return STORE_OK;
	}
	if ((err = mbox_map(st, txn, x, c->userid, c->mboxid, &u, &mm, &mb)) != STORE_OK)
		return err;
	if (mm.kind == MK_GONE) {
		x->stats.lost_to_mailbox_delete++;
		return STORE_OK;
	}
	if (mm.kind == MK_NAMED) {
		/* another UIDVALIDITY: the mirror's UIDs mean nothing here */
		how = STORE_MERGE_UID_KEEP;
		uid = mb.uidnext;
	} else {
		e = extent_find(x, c->userid, c->mboxid);
		err = msg_load(st, txn, u.id, mb.id, c->uid, &hm, NULL, NULL, NULL);
		if (err != STORE_OK && err != STORE_NOTFOUND)
			return err;
		in.home_msg = err == STORE_OK;
		in.home_same = in.home_msg && hm.internaldate == m.internaldate &&
			       memcmp(hm.hash, m.hash, STORE_BODY_HASH_LEN) == 0;
		if ((err = vanished_has(st, txn, u.id, mb.id, c->uid, &in.home_vanished)) !=
		    STORE_OK)
			return err;
		in.floor = mm.kind == MK_ADOPTED ? 0 : mm.floor;
		in.uidnext = mb.uidnext;
		in.horizon = mm.horizon;
		if (e != NULL && e->maxuid + 1 > in.horizon)
			in.horizon = e->maxuid + 1;
		how = store_merge_uid(&in, &uid, &move);
	}
	if (how == STORE_MERGE_UID_SAME) {
		x->stats.already_present++;
		return STORE_OK;
	}
	modseq_raise(x, c->userid, c->mboxid, &mm, &mb);
	if (body_ok) {
		if ((err = add_msg(st, txn, x, r, &mm, &u, &mb, &m, prefix_len, uid)) != STORE_OK)
			return err;
	} else {
		/* gone on both sides: later records of it change nothing; the
		 * home's message still leaves the UID, above the mirror's */
		if (move && mb.uidnext < uid)
			mb.uidnext = uid;
		uid = 0;
	}
	if (move && (err = move_home_msg(st, txn, x, u.id, &mb, c->uid)) != STORE_OK)
		return err;
	/* a joined mailbox keeps every entry: its delete at the mirror
	 * takes back only what the merge brought */
	if ((uid != c->uid || joined(&mm)) &&
	    (err = uid_map_put(st, txn, x, c->userid, c->mboxid, c->uid, uid)) != STORE_OK)
		return err;
	if (uid != 0 && how == STORE_MERGE_UID_NEW &&
	    (err = rev_put(st, txn, x, u.id, mb.id, uid, c->userid, c->mboxid, c->uid)) != STORE_OK)
		return err;
	if (body_ok || move) {
		if ((err = put_mbox_user(st, txn, op, &mb, &u)) != STORE_OK)
			return err;
	}
	if (move)
		x->stats.home_renumbered++;
	if (!body_ok)
		x->stats.skipped++;
	else if (how == STORE_MERGE_UID_NEW)
		x->stats.added_renumbered++;
	else
		x->stats.added++;
	return STORE_OK;
}

/* The home's message a MSG_FLAGS or MSG_EXPUNGE names, with its user
 * and mailbox as loaded; target_load's *miss_r says what is missing if
 * the home has none (rec: a copy of the record to free). */
struct target {
	struct store_user u;
	struct store_mailbox mb;
	struct mmap mm;
	struct store_msg m;
	size_t prefix_len;
	uint8_t *rec;
	size_t len;
};

enum miss { MISS_NONE, MISS_USER, MISS_MAILBOX, MISS_UNMERGED, MISS_MESSAGE };

static int target_load(struct store *st, MDB_txn *txn, struct store_merge *x,
		       const struct store_change *c, struct target *t, enum miss *miss_r)
{
	uint32_t huid;
	bool have;
	int err;

	*miss_r = MISS_USER;
	t->rec = NULL;
	if ((err = user_map(st, txn, x, c->userid, &t->u, &have)) != STORE_OK || !have)
		return err;
	*miss_r = MISS_MAILBOX;
	if ((err = mbox_map(st, txn, x, c->userid, c->mboxid, &t->u, &t->mm, &t->mb)) !=
	    STORE_OK || t->mm.kind == MK_GONE)
		return err;
	*miss_r = MISS_UNMERGED;
	if ((err = uid_map(st, txn, x, c->userid, c->mboxid, c->uid, &huid)) != STORE_OK ||
	    huid == 0)
		return err;
	*miss_r = MISS_MESSAGE;
	err = msg_load(st, txn, t->u.id, t->mb.id, huid, &t->m, &t->prefix_len, &t->rec, &t->len);
	if (err == STORE_NOTFOUND)
		return STORE_OK;
	if (err == STORE_OK)
		*miss_r = MISS_NONE;
	return err;
}

/* MSG_FLAGS: modseq BE64, flags BE32, keywords BE64. */
static int merge_msg_flags(struct store *st, MDB_txn *txn, struct store_op *op,
			   struct store_merge *x, const struct store_change *c)
{
	const uint8_t *p = c->data;
	uint8_t kb[MSG_KEY_LEN], pl[20];
	struct target t;
	enum miss miss;
	uint32_t nf;
	uint64_t nk;
	int err;

	if (c->data_len != 20 || be64_get(p) == 0 ||
	    (be32_get(p + 8) & ~(uint32_t)STORE_F_MASK) != 0)
		return STORE_INVAL;
	if ((err = target_load(st, txn, x, c, &t, &miss)) != STORE_OK)
		goto out;
	if (miss == MISS_USER || miss == MISS_UNMERGED) {
		x->stats.skipped++;
		goto out;
	}
	if (miss != MISS_NONE) {
		x->stats.flags_lost_to_expunge++;	/* the expunge wins */
		goto out;
	}
	/* the later change wins, the home's on a tie */
	if (home_changed_since(x, t.u.id, t.mb.id, t.m.uid, c->time)) {
		x->stats.flags_lost_to_newer_home_change++;
		goto out;
	}
	if ((err = kw_translate(st, txn, x, c->userid, c->mboxid, &t.mm, t.u.id, be64_get(p + 12),
				&nk)) != STORE_OK)
		goto out;
	/* \Recent is the home's own, as for a STORE */
	nf = (be32_get(p + 8) & ~(uint32_t)STORE_F_RECENT) | (t.m.flags & STORE_F_RECENT);
	x->stats.flags_applied++;
	if (nf == t.m.flags && nk == t.m.keywords)
		goto out;
	modseq_raise(x, c->userid, c->mboxid, &t.mm, &t.mb);
	if ((t.m.flags ^ nf) & STORE_F_SEEN) {
		if (nf & STORE_F_SEEN)
			t.mb.unseen = t.mb.unseen > 0 ? t.mb.unseen - 1 : 0;
		else
			t.mb.unseen++;
	}
	t.m.flags = nf;
	t.m.keywords = nk;
	t.m.modseq = ++t.mb.highestmodseq;
	msg_rec_encode_fixed(&t.m, t.prefix_len, t.rec);
	msg_key(kb, t.u.id, t.mb.id, t.m.uid);
	if ((err = store_put(txn, st->dbi[DBI_MESSAGES], kb, sizeof(kb), t.rec, t.len, 0)) !=
	    STORE_OK)
		goto out;
	be64_put(pl, t.m.modseq);
	be32_put(pl + 8, t.m.flags);
	be64_put(pl + 12, t.m.keywords);
	const struct store_part part = { pl, sizeof(pl) };
	if ((err = store_changelog_append(st, txn, STORE_CH_MSG_FLAGS, t.u.id, t.mb.id, t.m.uid,
					  &part, 1)) != STORE_OK ||
	    (err = store_mbox_put(st, txn, t.u.id, &t.mb, 0)) != STORE_OK)
		goto out;
	store_touch(op, t.u.id, t.mb.id);
out:
	free(t.rec);
	return err;
}

/* MSG_EXPUNGE: modseq BE64, body SHA-256. */
static int merge_msg_expunge(struct store *st, MDB_txn *txn, struct store_op *op,
			     struct store_merge *x, const struct store_change *c)
{
	struct target t;
	enum miss miss;
	int err;

	if (c->data_len != 8 + STORE_BODY_HASH_LEN || be64_get(c->data) == 0)
		return STORE_INVAL;
	if ((err = target_load(st, txn, x, c, &t, &miss)) != STORE_OK)
		goto out;
	/* gone already, or (never for a sound map) another body: not ours to drop */
	if (miss != MISS_NONE ||
	    memcmp(t.m.hash, (const uint8_t *)c->data + 8, STORE_BODY_HASH_LEN) != 0) {
		x->stats.skipped++;
		goto out;
	}
	modseq_raise(x, c->userid, c->mboxid, &t.mm, &t.mb);
	if ((err = expunge_one(st, txn, &t.u, &t.mb, &t.m)) != STORE_OK ||
	    (err = put_mbox_user(st, txn, op, &t.mb, &t.u)) != STORE_OK)
		goto out;
	x->stats.expunged++;
out:
	free(t.rec);
	return err;
}

/* ---- mailboxes, subscriptions, keywords, users --------------------------- */

/* May the mirror's new mailbox name of userid keep UIDVALIDITY v here?
 * Not if the home gave that name (created or renamed to, after B; names
 * it had at B the mirror's counter is above) a UIDVALIDITY >= v: a name
 * reused must come back with a greater one (RFC 3501 2.3.1.1). */
static bool uidvalidity_ok(const struct store_merge *x, uint32_t userid, const char *name,
			   uint32_t v)
{
	size_t i;

	for (i = 0; i < x->n_hmboxes; i++) {
		const struct home_mbox *h = &x->hmboxes[i];

		if (h->userid == userid && h->uidvalidity >= v && strcmp(h->name, name) == 0)
			return false;
	}
	return true;
}

/* Create, for the mirror's new mailbox in, one at the home with in's
 * name: in's id if the home never gave it (else the next), in's
 * UIDVALIDITY if uidvalidity_ok (else the next); uidnext and
 * highestmodseq as in's (an INBOX rename's new mailbox starts past 1). */
static int adopt_mbox(struct store *st, MDB_txn *txn, struct store_op *op,
		      struct store_merge *x, uint32_t userid, const struct store_mailbox *in,
		      struct store_mailbox *mb_r)
{
	struct store_mailbox mb = { .uidvalidity = in->uidvalidity, .special_use = in->special_use,
				    .uidnext = in->uidnext > 0 ? in->uidnext : 1,
				    .highestmodseq = in->highestmodseq };
	uint8_t nk[MBOXNAME_KEY_MAX], idb[4];
	uint64_t next;
	size_t nklen;
	int err;

	strcpy(mb.name, in->name);
	if ((err = store_meta_u64_or0(st, txn, META_NEXT_MBOXID, strlen(META_NEXT_MBOXID), &next)) !=
	    STORE_OK)
		return err;
	if (in->id >= next && in->id < UINT32_MAX) {
		mb.id = in->id;	/* never given here: the mirror's id stays */
		err = store_meta_raise(st, txn, META_NEXT_MBOXID, (uint64_t)in->id + 1, 4);
	} else {
		err = store_next_id(st, txn, META_NEXT_MBOXID, &mb.id);
	}
	if (err != STORE_OK)
		return err;
	if (!uidvalidity_ok(x, userid, in->name, in->uidvalidity))
		err = store_next_uidvalidity(st, txn, &mb.uidvalidity);
	else
		err = store_meta_raise(st, txn, META_UIDVALIDITY, in->uidvalidity, 4);
	if (err != STORE_OK)
		return err;
	if ((nklen = mboxname_key(nk, userid, mb.name)) == 0)
		return STORE_IO;
	be32_put(idb, mb.id);
	err = store_put(txn, st->dbi[DBI_MBOXNAMES], nk, nklen, idb, 4, MDB_NOOVERWRITE);
	if (err != STORE_OK)
		return err == STORE_EXISTS ? STORE_IO : err;
	if ((err = store_mbox_put(st, txn, userid, &mb, STORE_CH_MAILBOX_ADD)) != STORE_OK)
		return err;
	store_touch(op, userid, mb.id);
	x->stats.mailboxes_created++;
	*mb_r = mb;
	return STORE_OK;
}

static int merge_mbox_add(struct store *st, MDB_txn *txn, struct store_op *op,
			  struct store_merge *x, const struct store_change *c)
{
	struct store_mailbox in, mb;
	struct store_user u;
	struct mmap mm = { 0 };
	bool have;
	int err;

	if ((err = store_ch_mbox(c, &in)) != STORE_OK ||
	    (err = user_map(st, txn, x, c->userid, &u, &have)) != STORE_OK)
		return err;
	if (!have) {
		x->stats.skipped++;
		return STORE_OK;
	}
	/* the mirror never gives an id twice: an entry means this merge
	 * mapped it already (a record repeated in a batch) */
	err = mmap_get(st, txn, x, c->userid, c->mboxid, &mm);
	if (err != STORE_NOTFOUND)
		return err == STORE_OK ? STORE_INVAL : err;
	/* Made at the mirror after B, it is none of the home's, whatever its
	 * id (both sides count ids from the same point): a client knows it
	 * by name, and by UIDVALIDITY whether its UIDs still hold. */
	err = store_load_mbox_name(st, txn, u.id, in.name, &mb);
	if (err == STORE_OK)
		mm.kind = mb.uidvalidity == in.uidvalidity ? MK_SAMEUV : MK_NAMED;
	else if (err == STORE_NOTFOUND &&
		 (err = adopt_mbox(st, txn, op, x, u.id, &in, &mb)) == STORE_OK)
		mm.kind = MK_ADOPTED;
	if (err != STORE_OK)
		return err;
	mm.hmbox = mb.id;
	mm.floor = mm.kind == MK_SAMEUV ? mb.uidnext : 0;
	if (mm.kind != MK_NAMED) {
		mm.horizon = horizon_from(x, mb.uidnext > in.uidnext ? mb.uidnext : in.uidnext);
		mm.modhorizon = modhorizon_from(x, mb.highestmodseq > in.highestmodseq ?
						       mb.highestmodseq : in.highestmodseq);
	}
	return mmap_put(st, txn, x, c->userid, c->mboxid, &mm);
}

/* Point name's index entry at mboxid (the name is free). */
static int name_take(struct store *st, MDB_txn *txn, uint32_t userid, const char *name,
		     uint32_t mboxid)
{
	uint8_t nk[MBOXNAME_KEY_MAX], idb[4];
	size_t nklen = mboxname_key(nk, userid, name);
	int err;

	if (nklen == 0)
		return STORE_IO;
	be32_put(idb, mboxid);
	err = store_put(txn, st->dbi[DBI_MBOXNAMES], nk, nklen, idb, 4, MDB_NOOVERWRITE);
	return err == STORE_EXISTS ? STORE_IO : err;
}

static int merge_mbox_rename(struct store *st, MDB_txn *txn, struct store_op *op,
			     struct store_merge *x, const struct store_change *c)
{
	char name[STORE_MBOX_MAX];
	struct store_mailbox in, mb, other;
	struct store_user u;
	struct mmap mm;
	unsigned n;
	bool have;
	int err;

	if ((err = store_ch_mbox(c, &in)) != STORE_OK ||
	    (err = user_map(st, txn, x, c->userid, &u, &have)) != STORE_OK)
		return err;
	if (!have) {
		x->stats.skipped++;
		return STORE_OK;
	}
	if ((err = mbox_map(st, txn, x, c->userid, c->mboxid, &u, &mm, &mb)) != STORE_OK)
		return err;
	if (mm.kind == MK_GONE || (mm.kind == MK_SAME && mb.uidvalidity != in.uidvalidity) ||
	    strcmp(mb.name, "INBOX") == 0 || strcmp(in.name, "INBOX") == 0) {
		x->stats.skipped++;
		return STORE_OK;
	}
	/* the name, or if the home uses it "name-merged-N", first free */
	for (n = 0; n <= NAME_TRIES; n++) {
		if (n == 0)
			strcpy(name, in.name);
		else if (store_merge_name(in.name, n, name) != STORE_OK)
			break;
		err = store_load_mbox_name(st, txn, u.id, name, &other);
		if (err == STORE_NOTFOUND)
			break;
		if (err != STORE_OK)
			return err;
		if (other.id == mb.id)
			return STORE_OK;	/* it has that name already */
	}
	if (err != STORE_NOTFOUND) {
		x->stats.skipped++;	/* no free name: it keeps its own */
		return STORE_OK;
	}
	if ((err = store_mbox_name_release(st, txn, u.id, mb.name, mb.id)) != STORE_OK ||
	    (err = name_take(st, txn, u.id, name, mb.id)) != STORE_OK)
		return err;
	strcpy(mb.name, name);
	if ((err = store_mbox_put(st, txn, u.id, &mb, STORE_CH_MAILBOX_RENAME)) != STORE_OK)
		return err;
	store_touch(op, u.id, mb.id);
	x->stats.mailboxes_renamed++;
	return STORE_OK;
}

struct uid_list {
	uint32_t *uids;
	size_t n, cap;
};

/* The home UIDs of the messages this merge brought from the mirror's
 * mailbox (muser, mmbox): its "i" entries (a joined mailbox has one per
 * message). */
static int merged_uid_cb(const MDB_val *k, const MDB_val *v, void *ctx)
{
	struct uid_list *l = ctx;
	int err;

	if (v->mv_size != 4)
		return STORE_IO;
	if (be32_get(v->mv_data) == 0)
		return STORE_OK;
	if ((err = grow((void **)&l->uids, &l->cap, l->n, sizeof(*l->uids))) != STORE_OK)
		return err;
	l->uids[l->n++] = be32_get(v->mv_data);
	return STORE_OK;
}

static int merged_uids(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
		       uint32_t mmbox, struct uid_list *l)
{
	struct mkey pk;

	mkey_start(x, &pk, 'i');
	mkey_be32(&pk, muser);
	mkey_be32(&pk, mmbox);
	return store_scan_prefix(st, txn, st->dbi[DBI_META], pk.b, pk.len, pk.len, merged_uid_cb,
				 l);
}

/* Delete the home's mailbox mb as store_op_mbox_delete does. */
static int delete_mbox(struct store *st, MDB_txn *txn, struct store_op *op,
		       struct store_user *u, const struct store_mailbox *mb)
{
	const struct store_part part = { mb->name, strlen(mb->name) };
	int err = store_mbox_remove(st, txn, op, u, mb);

	if (err != STORE_OK)
		return err;
	return store_changelog_append(st, txn, STORE_CH_MAILBOX_DEL, u->id, mb->id, 0, &part, 1);
}

static int merge_mbox_del(struct store *st, MDB_txn *txn, struct store_op *op,
			  struct store_merge *x, const struct store_change *c)
{
	char name[STORE_MBOX_MAX];
	struct uid_list l = { NULL, 0, 0 };
	struct store_mailbox mb;
	struct store_user u;
	struct store_msg m;
	struct mmap mm;
	size_t i;
	bool have, changed = false;
	int err;

	if ((err = store_ch_name(c, 0, name, sizeof(name))) != STORE_OK ||
	    (err = user_map(st, txn, x, c->userid, &u, &have)) != STORE_OK)
		return err;
	if (!have) {
		x->stats.skipped++;
		return STORE_OK;
	}
	if ((err = mbox_map(st, txn, x, c->userid, c->mboxid, &u, &mm, &mb)) != STORE_OK)
		return err;
	if (mm.kind == MK_GONE || strcmp(mb.name, "INBOX") == 0) {
		x->stats.skipped++;
		return STORE_OK;
	}
	if (!joined(&mm)) {
		if ((err = delete_mbox(st, txn, op, &u, &mb)) != STORE_OK)
			return err;
		x->stats.mailboxes_deleted++;
	} else {
		/* the home's mailbox of that name stays; what the mirror put
		 * in it through this mailbox goes */
		if ((err = merged_uids(st, txn, x, c->userid, c->mboxid, &l)) != STORE_OK)
			goto out;
		for (i = 0; i < l.n; i++) {
			err = msg_load(st, txn, u.id, mb.id, l.uids[i], &m, NULL, NULL, NULL);
			if (err == STORE_NOTFOUND)
				continue;
			if (err != STORE_OK ||
			    (err = expunge_one(st, txn, &u, &mb, &m)) != STORE_OK)
				goto out;
			x->stats.expunged++;
			changed = true;
		}
		if (changed && (err = put_mbox_user(st, txn, op, &mb, &u)) != STORE_OK)
			goto out;
	}
	mm.kind = MK_GONE;
	err = mmap_put(st, txn, x, c->userid, c->mboxid, &mm);
out:
	free(l.uids);
	return err;
}

static int merge_subscribe(struct store *st, MDB_txn *txn, struct store_merge *x,
			   const struct store_change *c)
{
	char name[STORE_MBOX_MAX];
	uint8_t nk[MBOXNAME_KEY_MAX], rec[1 + STORE_MBOX_MAX], on;
	struct store_user u;
	size_t nklen, len;
	bool have;
	int err;

	if (c->data_len < 1 || (on = *(const uint8_t *)c->data) > 1)
		return STORE_INVAL;
	if ((err = store_ch_name(c, 1, name, sizeof(name))) != STORE_OK ||
	    store_mailbox_name_check(name) != STORE_OK ||
	    strcmp(store_mbox_canon(name), name) != 0)
		return STORE_INVAL;
	if ((err = user_map(st, txn, x, c->userid, &u, &have)) != STORE_OK)
		return err;
	if (!have) {
		x->stats.skipped++;
		return STORE_OK;
	}
	err = store_sub_get(st, txn, u.id, name);
	if (err != STORE_OK && err != STORE_NOTFOUND)
		return err;
	if ((err == STORE_OK) == (on == 1))
		return STORE_OK;	/* as the mirror wants it already */
	if ((nklen = mboxname_key(nk, u.id, name)) == 0)
		return STORE_IO;
	len = strlen(name);
	if (on) {
		rec[0] = STORE_REC_V1;
		memcpy(rec + 1, name, len);
		err = store_put(txn, st->dbi[DBI_SUBS], nk, nklen, rec, 1 + len, 0);
	} else {
		err = store_del(txn, st->dbi[DBI_SUBS], nk, nklen);
	}
	if (err != STORE_OK)
		return err;
	const struct store_part parts[] = { { &on, 1 }, { name, len } };
	return store_changelog_append(st, txn, STORE_CH_SUBSCRIBE, u.id, 0, 0, parts, 2);
}

static int merge_keyword_add(struct store *st, MDB_txn *txn, struct store_merge *x,
			     const struct store_change *c)
{
	char name[STORE_KEYWORD_MAX + 1];
	struct store_kwtable *t;
	struct store_mailbox mb;
	struct store_user u;
	struct mmap mm;
	struct mkey k;
	unsigned idx;
	uint8_t hidx;
	bool have;
	int err;

	if (store_ch_name(c, 0, name, sizeof(name)) != STORE_OK ||
	    store_keyword_check(name) != STORE_OK || c->uid >= STORE_KEYWORDS_MAX)
		return STORE_INVAL;
	if ((err = user_map(st, txn, x, c->userid, &u, &have)) != STORE_OK)
		return err;
	if (!have) {
		x->stats.skipped++;
		return STORE_OK;
	}
	if ((err = mbox_map(st, txn, x, c->userid, c->mboxid, &u, &mm, &mb)) != STORE_OK)
		return err;
	if (mm.kind == MK_GONE) {
		x->stats.skipped++;
		return STORE_OK;
	}
	t = store_xcalloc(1, sizeof(*t));
	err = store_kw_load(st, txn, u.id, mb.id, t);
	if (err == STORE_OK)
		err = store_kw_intern(st, txn, u.id, mb.id, t, name, &idx);
	free(t);
	if (err == STORE_FULL)
		hidx = KW_DROPPED;	/* no room: the keyword is dropped, as by a copy */
	else if (err == STORE_OK)
		hidx = (uint8_t)idx;
	else
		return err;
	mkey_start(x, &k, 'k');
	mkey_be32(&k, c->userid);
	mkey_be32(&k, c->mboxid);
	k.b[k.len++] = (uint8_t)c->uid;
	return mput(st, txn, &k, &hidx, 1);
}

/* A user the mirror added: the home's of that name, if it has one (the
 * directory is synced apart; the home may have it under another id). */
static int merge_user_add(struct store *st, MDB_txn *txn, struct store_merge *x,
			  const struct store_change *c)
{
	struct store_user in, u;
	uint8_t b[4];
	struct mkey k;
	int err;

	if ((err = store_ch_user(c, &in)) != STORE_OK)
		return err;
	err = store_load_user(st, txn, in.name, &u);
	if (err != STORE_OK && err != STORE_NOTFOUND)
		return err;
	be32_put(b, err == STORE_OK ? u.id : 0);
	mkey_start(x, &k, 'u');
	mkey_be32(&k, c->userid);
	return mput(st, txn, &k, b, 4);
}

/* ---- the op -------------------------------------------------------------- */

static int merge_rec(struct store *st, MDB_txn *txn, struct store_op *op, struct store_merge *x,
		     const struct store_apply_rec *r)
{
	const struct store_change *c = &r->c;
	char name[STORE_NAME_MAX];
	struct store_user u;

	switch (c->type) {
	case STORE_CH_USER_ADD:
		return merge_user_add(st, txn, x, c);
	case STORE_CH_USER_UPDATE:	/* the directory is synced apart */
		return store_ch_user(c, &u);
	case STORE_CH_USER_DEL:
		return store_ch_name(c, 0, name, sizeof(name));
	case STORE_CH_MAILBOX_ADD:
		return merge_mbox_add(st, txn, op, x, c);
	case STORE_CH_MAILBOX_DEL:
		return merge_mbox_del(st, txn, op, x, c);
	case STORE_CH_MAILBOX_RENAME:
		return merge_mbox_rename(st, txn, op, x, c);
	case STORE_CH_MSG_ADD:
		return merge_msg_add(st, txn, op, x, r);
	case STORE_CH_MSG_EXPUNGE:
		return merge_msg_expunge(st, txn, op, x, c);
	case STORE_CH_MSG_FLAGS:
		return merge_msg_flags(st, txn, op, x, c);
	case STORE_CH_SUBSCRIBE:
		return merge_subscribe(st, txn, x, c);
	case STORE_CH_KEYWORD_ADD:
		return merge_keyword_add(st, txn, x, c);
	}
	return STORE_INVAL;
}

static void refused(const struct store_merge *x, uint64_t seq, int type, int err)
{
	log_warn("store.merge_refused", "mirror=%s seq=%" PRIu64 " type=%d error=\"%s\"",
		 x->mirror, seq, type, store_strerror(err));
}

/* Carry each mailbox's horizon (above every mirror UID seen) to later calls. */
static int horizons_save(struct store *st, MDB_txn *txn, struct store_merge *x)
{
	struct mmap mm;
	size_t i;
	int err;

	for (i = 0; i < x->n_ext; i++) {
		const struct extent *e = &x->ext[i];

		err = mmap_get(st, txn, x, e->muser, e->mmbox, &mm);
		if (err == STORE_NOTFOUND)
			continue;	/* never mapped: its user is not here */
		if (err != STORE_OK)
			return err;
		if (mm.kind == MK_GONE || e->maxuid + 1 <= mm.horizon)
			continue;
		mm.horizon = e->maxuid + 1;
		if ((err = mmap_put(st, txn, x, e->muser, e->mmbox, &mm)) != STORE_OK)
			return err;
	}
	return STORE_OK;
}

static int end_run(struct store *st, MDB_txn *txn, struct store_merge *x)
{
	struct mkey k;
	MDB_val v;
	int err;

	mkey_start(x, &k, 's');
	if ((err = mget(st, txn, &k, &v)) != STORE_OK)
		return err;
	return store_del_prefix(st, txn, st->dbi[DBI_META], x->prefix, x->prefix_len, NULL, NULL);
}

struct state {
	uint64_t base, pos, last;
};

static int state_get(struct store *st, MDB_txn *txn, struct store_merge *x, struct state *s_r)
{
	const uint8_t *p;
	struct mkey k;
	MDB_val v;
	int err;

	mkey_start(x, &k, 's');
	if ((err = mget(st, txn, &k, &v)) != STORE_OK)
		return err;
	p = v.mv_data;
	if (v.mv_size != STATE_REC_LEN || p[0] != STORE_REC_V1)
		return STORE_IO;
	s_r->base = be64_get(p + 1);
	s_r->pos = be64_get(p + 9);
	s_r->last = be64_get(p + 17);
	return STORE_OK;
}

static int state_put(struct store *st, MDB_txn *txn, struct store_merge *x,
		     const struct state *s)
{
	uint8_t rec[STATE_REC_LEN];
	struct mkey k;

	mkey_start(x, &k, 's');
	rec[0] = STORE_REC_V1;
	be64_put(rec + 1, s->base);
	be64_put(rec + 9, s->pos);
	be64_put(rec + 17, s->last);
	return mput(st, txn, &k, rec, sizeof(rec));
}

/* Can st start a merge at base?  It must be the home's own store (a
 * mirror store of st's origin, with applied/<origin>, holds another POP's
 * view of it) and have written base (else the mirror holds records the
 * home never wrote: another history). */
static int start_ok(struct store *st, MDB_txn *txn, uint64_t base, uint64_t *home_last_r)
{
	char ak[APPLIED_KEY_MAX], sk[META_KEY_MAX];
	uint64_t applied;
	int err;

	if ((err = store_meta_u64_or0(st, txn, ak, store_applied_key(ak, st->origin, st->origin_len),
			    &applied)) != STORE_OK ||
	    (err = store_meta_u64_or0(st, txn, sk, meta_seq_key(sk, st->origin, st->origin_len),
			    home_last_r)) != STORE_OK)
		return err;
	return applied != 0 || base > *home_last_r ? STORE_INVAL : STORE_OK;
}

static int begin_run(struct store *st, MDB_txn *txn, struct store_merge *x)
{
	struct state s;
	uint64_t home_last;
	int err = state_get(st, txn, x, &s);

	if (err == STORE_OK)	/* begun already: the same is fine */
		return s.base == x->base && s.last == x->last && s.pos == s.base ? STORE_OK
										   : STORE_EXISTS;
	if (err != STORE_NOTFOUND)
		return err;
	if ((err = start_ok(st, txn, x->base, &home_last)) != STORE_OK)
		return err;
	s.base = s.pos = x->base;
	s.last = x->last;
	return state_put(st, txn, x, &s);
}

static int recs_run(struct store *st, MDB_txn *txn, struct store_op *op,
		    struct store_merge *x)
{
	char sk[META_KEY_MAX];
	size_t sklen = meta_seq_key(sk, st->origin, st->origin_len), i;
	uint64_t first, last, call_last = x->recs[x->n - 1].c.seq;
	struct state s;
	struct mkey k;
	uint8_t b[8];
	int err;

	err = state_get(st, txn, x, &s);
	if (err == STORE_NOTFOUND) {
		/* a merge in one call, or one not begun: its L is this call's */
		if ((err = start_ok(st, txn, x->base, &last)) != STORE_OK)
			goto refuse;
		s.base = s.pos = x->base;
		s.last = call_last;
	} else if (err != STORE_OK) {
		return err;
	} else if (s.pos != x->base) {
		err = STORE_INVAL;	/* not where the merge in progress is */
		goto refuse;
	} else if ((err = ranges_load(st, txn, x)) != STORE_OK) {
		return err;
	}
	if (s.last < call_last)
		s.last = call_last;	/* past what was declared: extents cover it */
	x->home_base = s.base;
	x->span = s.last - s.base;
	if ((err = store_meta_u64_or0(st, txn, sk, sklen, &last)) != STORE_OK)
		return err;
	first = last + 1;
	if ((err = home_changes_load(st, txn, x)) != STORE_OK ||
	    (err = extents_build(x)) != STORE_OK)
		return err;
	for (i = 0; i < x->n; i++) {
		const struct store_apply_rec *r = &x->recs[i];

		if ((err = merge_rec(st, txn, op, x, r)) != STORE_OK) {
			refused(x, r->c.seq, (int)r->c.type, err);
			return err;
		}
	}
	if ((err = horizons_save(st, txn, x)) != STORE_OK ||
	    (err = store_meta_u64_or0(st, txn, sk, sklen, &last)) != STORE_OK)
		return err;
	if (last >= first) {
		/* what this call wrote is not "the home's own change" later */
		mkey_start(x, &k, 'w');
		be64_put(k.b + k.len, first);
		k.len += 8;
		be64_put(b, last);
		if ((err = mput(st, txn, &k, b, 8)) != STORE_OK)
			return err;
	}
	s.pos = call_last;
	return state_put(st, txn, x, &s);
refuse:
	refused(x, x->recs[0].c.seq, (int)x->recs[0].c.type, err);
	return err;
}

static int merge_run(struct store *st, MDB_txn *txn, struct store_op *op)
{
	struct store_merge *x = op->u.fn.ctx;

	memset(&x->stats, 0, sizeof(x->stats));
	switch (x->what) {
	case M_BEGIN:
		return begin_run(st, txn, x);
	case M_END:
		return end_run(st, txn, x);
	default:
		return recs_run(st, txn, op, x);
	}
}

/* ---- submit and reads ---------------------------------------------------- */

static void merge_free(struct store_merge *x)
{
	free(x->recs);
	free(x->blob);
	free(x->changes);
	free(x->hmboxes);
	free(x->ext);
	free(x->ranges);
	free(x);
}

static void merge_done(int err, void *arg)
{
	struct store_merge *x = arg;
	store_done_cb *cb = x->cb;
	void *cb_arg = x->arg;
	const struct store_merge_stats *s = &x->stats;

	if (x->what == M_RECS && err == STORE_OK)
		log_info("store.merge",
			 "mirror=%s records=%zu last_seq=%" PRIu64 " added=%" PRIu32
			 " added_renumbered=%" PRIu32 " home_renumbered=%" PRIu32
			 " already_present=%" PRIu32 " lost_to_mailbox_delete=%" PRIu32
			 " flags_applied=%" PRIu32 " flags_lost_to_newer=%" PRIu32
			 " flags_lost_to_expunge=%" PRIu32 " expunged=%" PRIu32
			 " mailboxes_created=%" PRIu32 " mailboxes_renamed=%" PRIu32
			 " mailboxes_deleted=%" PRIu32 " skipped=%" PRIu32,
			 x->mirror, x->n, x->recs[x->n - 1].c.seq, s->added, s->added_renumbered,
			 s->home_renumbered, s->already_present, s->lost_to_mailbox_delete,
			 s->flags_applied, s->flags_lost_to_newer_home_change,
			 s->flags_lost_to_expunge, s->expunged, s->mailboxes_created,
			 s->mailboxes_renamed, s->mailboxes_deleted, s->skipped);
	if (x->stats_r != NULL) {
		if (err == STORE_OK)
			*x->stats_r = x->stats;
		else
			memset(x->stats_r, 0, sizeof(*x->stats_r));
	}
	merge_free(x);
	if (cb != NULL)
		cb(err, cb_arg);
}

static struct store_merge *merge_new(struct store *st, const char *mirror, store_done_cb *cb,
				     void *arg, struct store_op **op_r, int *err_r)
{
	struct store_op *op = store_xcalloc(1, sizeof(*op));
	struct store_merge *x = store_xcalloc(1, sizeof(*x));

	op->type = OP_FN;
	op->cb = merge_done;
	op->arg = x;
	op->u.fn.fn = merge_run;
	op->u.fn.ctx = x;
	x->cb = cb;
	x->arg = arg;
	*err_r = STORE_OK;
	/* a store merges from another POP, never from itself */
	if (!mirror_ok(mirror) || strcmp(mirror, st->origin) == 0) {
		*err_r = STORE_INVAL;
	} else {
		strcpy(x->mirror, mirror);
		x->prefix_len = merge_prefix(x->prefix, mirror);
	}
	*op_r = op;
	return x;
}

static void submit(struct store *st, struct store_op *op, int err)
{
	if (err != STORE_OK) {
		op->err = err;
		op->prefailed = true;
	}
	store_submit(st, op);
}

void store_merge_changes(struct store *st, const char *mirror, uint64_t base,
			 const struct store_apply_rec *recs, size_t n,
			 struct store_merge_stats *stats_r, store_done_cb *cb, void *arg)
{
	struct store_op *op;
	int err;
	struct store_merge *x = merge_new(st, mirror, cb, arg, &op, &err);

	x->stats_r = stats_r;
	x->base = base;
	if (err == STORE_OK && (n == 0 || n > STORE_MERGE_MAX || recs == NULL ||
				base > UINT64_MAX - n))
		err = STORE_INVAL;
	if (err == STORE_OK)
		err = store_ch_copy_recs(recs, n, base + 1, &x->recs, &x->blob);
	if (err == STORE_OK)
		x->n = n;
	submit(st, op, err);
}

void store_merge_begin(struct store *st, const char *mirror, uint64_t base, uint64_t last,
		       store_done_cb *cb, void *arg)
{
	struct store_op *op;
	int err;
	struct store_merge *x = merge_new(st, mirror, cb, arg, &op, &err);

	x->what = M_BEGIN;
	x->base = base;
	x->last = last;
	if (last <= base)
		err = STORE_INVAL;
	submit(st, op, err);
}

void store_merge_end(struct store *st, const char *mirror, store_done_cb *cb, void *arg)
{
	struct store_op *op;
	int err;
	struct store_merge *x = merge_new(st, mirror, cb, arg, &op, &err);

	x->what = M_END;
	submit(st, op, err);
}

int store_merge_position(struct store *st, const char *mirror, uint64_t *base_r,
			 uint64_t *pos_r)
{
	struct store_merge x;
	struct state s;
	MDB_txn *txn;
	int err;

	*base_r = *pos_r = 0;
	if (!mirror_ok(mirror))
		return STORE_INVAL;
	x.prefix_len = merge_prefix(x.prefix, mirror);
	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	err = state_get(st, txn, &x, &s);
	if (err == STORE_OK) {
		*base_r = s.base;
		*pos_r = s.pos;
	} else if (err != STORE_NOTFOUND) {
		err = STORE_IO;
	}
	mdb_txn_abort(txn);
	return err;
}
