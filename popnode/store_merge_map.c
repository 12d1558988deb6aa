/*
 * store_merge_map.c - what a merge learns and keeps (store_merge.c): its
 * entries under "merge/<mirror>/" in meta (the layout is in
 * store_merge_int.h), the seq ranges it wrote, the home's own changes
 * after B, each mirror mailbox's extent in a call, and the maps of the
 * mirror's users, mailboxes, UIDs and keywords to the home's, with each
 * mailbox's floor and horizons.
 */
#include <stdlib.h>
#include <string.h>

#include "store_merge_int.h"

#define MMAP_REC_LEN 22

/* ---- small helpers ------------------------------------------------------- */

int merge_grow(void **p, size_t *cap, size_t n, size_t size)
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

void mkey_start(const struct store_merge *x, struct mkey *k, char type)
{
	memcpy(k->b, x->prefix, x->prefix_len);
	k->b[x->prefix_len] = (uint8_t)type;
	k->len = x->prefix_len + 1;
}

void mkey_be32(struct mkey *k, uint32_t v)
{
	be32_put(k->b + k->len, v);
	k->len += 4;
}

int mkey_get(struct store *st, MDB_txn *txn, const struct mkey *k, MDB_val *v)
{
	MDB_val kk = { .mv_size = k->len, .mv_data = (void *)k->b };

	return store_mdb_err(mdb_get(txn, st->dbi[DBI_META], &kk, v));
}

int mkey_put(struct store *st, MDB_txn *txn, const struct mkey *k, const void *val,
	     size_t len)
{
	return store_put(txn, st->dbi[DBI_META], k->b, k->len, val, len, 0);
}

static int mkey_del(struct store *st, MDB_txn *txn, const struct mkey *k)
{
	MDB_val kk = { .mv_size = k->len, .mv_data = (void *)k->b };
	int rc = mdb_del(txn, st->dbi[DBI_META], &kk, NULL);

	return rc == MDB_NOTFOUND ? STORE_OK : store_mdb_err(rc);
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
	if ((err = merge_grow((void **)&x->ranges, &x->cap_ranges, x->n_ranges,
			      sizeof(*x->ranges))) != STORE_OK)
		return err;
	x->ranges[x->n_ranges].first = be64_get((const uint8_t *)k->mv_data + k->mv_size - 8);
	x->ranges[x->n_ranges].last = be64_get(v->mv_data);
	x->n_ranges++;
	return STORE_OK;
}

int mmap_ranges_load(struct store *st, MDB_txn *txn, struct store_merge *x)
{
	struct mkey pk;

	mkey_start(x, &pk, 'w');
	return store_scan_prefix(st, txn, st->dbi[DBI_META], pk.b, pk.len, pk.len, range_cb, x);
}

/* The home's own changes after B (its records past B that the merge did
 * not write): message changes with their time, and the UIDVALIDITY of
 * every mailbox it made. */
int mmap_home_changes_load(struct store *st, MDB_txn *txn, struct store_merge *x)
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
			if ((err = merge_grow((void **)&x->changes, &x->cap_changes, x->n_changes,
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
			    (err = merge_grow((void **)&x->hmboxes, &x->cap_hmboxes, x->n_hmboxes,
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
bool mmap_home_changed_since(const struct store_merge *x, uint32_t userid, uint32_t mboxid,
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
int mmap_extents_build(struct store_merge *x)
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
		if ((err = merge_grow((void **)&x->ext, &x->cap_ext, x->n_ext, sizeof(*x->ext))) !=
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

const struct extent *mmap_extent_find(const struct store_merge *x, uint32_t muser,
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
uint32_t mmap_horizon_from(const struct store_merge *x, uint32_t uidnext)
{
	uint64_t h = (uint64_t)uidnext + x->span;

	return h < UINT32_MAX ? (uint32_t)h : UINT32_MAX - 1;
}

uint64_t mmap_modhorizon_from(const struct store_merge *x, uint64_t highestmodseq)
{
	const uint64_t cap = UINT64_MAX / 2;	/* leaves room to count on */

	if (x->span >= cap || highestmodseq >= cap - x->span)
		return cap;
	return highestmodseq + x->span;
}

/* The home's user for the mirror's user muser: *have_r false if none. */
int mmap_user(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
	      struct store_user *u_r, bool *have_r)
{
	struct mkey k;
	uint32_t h = muser;
	MDB_val v;
	int err;

	*have_r = false;
	mkey_start(x, &k, 'u');
	mkey_be32(&k, muser);
	err = mkey_get(st, txn, &k, &v);
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

int mmap_put(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
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
	return mkey_put(st, txn, &k, rec, sizeof(rec));
}

/* The entry of the mirror's mailbox (muser, mmbox), NOTFOUND if none. */
int mmap_get(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
	     uint32_t mmbox, struct mmap *mm_r)
{
	const uint8_t *p;
	struct mkey k;
	MDB_val v;
	int err;

	mkey_start(x, &k, 'm');
	mkey_be32(&k, muser);
	mkey_be32(&k, mmbox);
	if ((err = mkey_get(st, txn, &k, &v)) != STORE_OK)
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
int mmap_mbox(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
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
			mm_r->horizon = mmap_horizon_from(x, mb_r->uidnext);
			mm_r->modhorizon = mmap_modhorizon_from(x, mb_r->highestmodseq);
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
int mmap_uid(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
	     uint32_t mmbox, uint32_t muid, uint32_t *h_r)
{
	struct mkey k;
	MDB_val v;
	int err;

	uid_key(x, &k, 'i', muser, mmbox, muid);
	err = mkey_get(st, txn, &k, &v);
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

int mmap_uid_put(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
		 uint32_t mmbox, uint32_t muid, uint32_t huid)
{
	uint8_t b[4];
	struct mkey k;

	uid_key(x, &k, 'i', muser, mmbox, muid);
	be32_put(b, huid);
	return mkey_put(st, txn, &k, b, 4);
}

int mmap_rev_put(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t huser,
		 uint32_t hmbox, uint32_t huid, uint32_t muser, uint32_t mmbox, uint32_t muid)
{
	uint8_t b[12];
	struct mkey k;

	uid_key(x, &k, 'r', huser, hmbox, huid);
	be32_put(b, muser);
	be32_put(b + 4, mmbox);
	be32_put(b + 8, muid);
	return mkey_put(st, txn, &k, b, sizeof(b));
}

/* The home's message (huser, hmbox, from) moved to `to`: if the merge had
 * put a mirror's message there under a new UID, its map follows. */
int mmap_rev_moved(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t huser,
		   uint32_t hmbox, uint32_t from, uint32_t to)
{
	uint32_t muser, mmbox, muid;
	struct mkey k;
	MDB_val v;
	int err;

	uid_key(x, &k, 'r', huser, hmbox, from);
	err = mkey_get(st, txn, &k, &v);
	if (err == STORE_NOTFOUND)
		return STORE_OK;
	if (err != STORE_OK)
		return err;
	if (v.mv_size != 12)
		return STORE_IO;
	muser = be32_get(v.mv_data);
	mmbox = be32_get((const uint8_t *)v.mv_data + 4);
	muid = be32_get((const uint8_t *)v.mv_data + 8);
	if ((err = mkey_del(st, txn, &k)) != STORE_OK ||
	    (err = mmap_rev_put(st, txn, x, huser, hmbox, to, muser, mmbox, muid)) != STORE_OK)
		return err;
	return mmap_uid_put(st, txn, x, muser, mmbox, muid, to);
}

/* The home's bitmap for the mirror's keywords of mailbox mmbox. */
int mmap_kw_translate(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
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
		err = mkey_get(st, txn, &k, &v);
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

/* Carry each mailbox's horizon (above every mirror UID seen) to later calls. */
int mmap_horizons_save(struct store *st, MDB_txn *txn, struct store_merge *x)
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
