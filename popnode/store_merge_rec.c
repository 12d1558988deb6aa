/*
 * store_merge_rec.c - the merge's rules for each record of the mirror
 * (docs/store.md "Merge rules (home return)"): messages added, flagged,
 * expunged; mailboxes created, renamed, deleted; subscriptions, keywords
 * and users.  Each change is written as the normal op writes it.
 */
#include <stdlib.h>
#include <string.h>

#include "store_merge_int.h"

#define KW_DROPPED 0xff
#define NAME_TRIES 1000		/* "name-merged-1" .. "-1000" */

/* The home's user for the mirror's user muser (mmap_user); a user the
 * home no longer has makes the record one to skip, counted as such. */
static int rec_user(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
		    struct store_user *u, bool *have_r)
{
	int err = mmap_user(st, txn, x, muser, u, have_r);

	if (err == STORE_OK && !*have_r)
		x->stats.skipped++;
	return err;
}

/* ---- message primitives -------------------------------------------------- */

/* Before a change in a mailbox the mirror's clients know (same
 * UIDVALIDITY): its modseqs go above every one the mirror can have given,
 * so a CONDSTORE/QRESYNC client that synced with the mirror sees it. */
static void modseq_raise(const struct store_merge *x, uint32_t muser, uint32_t mmbox,
			 const struct mmap *mm, struct store_mailbox *mb)
{
	const struct extent *e = mmap_extent_find(x, muser, mmbox);

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
	err = mmap_rev_moved(st, txn, x, userid, mb->id, uid, nu);
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
	if ((err = mmap_kw_translate(st, txn, x, c->userid, c->mboxid, mm, u->id, m->keywords,
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
	if ((err = rec_user(st, txn, x, c->userid, &u, &have)) != STORE_OK || !have)
		return err;
	if ((err = mmap_mbox(st, txn, x, c->userid, c->mboxid, &u, &mm, &mb)) != STORE_OK)
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
		e = mmap_extent_find(x, c->userid, c->mboxid);
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
	    (err = mmap_uid_put(st, txn, x, c->userid, c->mboxid, c->uid, uid)) != STORE_OK)
		return err;
	if (uid != 0 && how == STORE_MERGE_UID_NEW &&
	    (err = mmap_rev_put(st, txn, x, u.id, mb.id, uid, c->userid, c->mboxid, c->uid)) !=
	    STORE_OK)
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
	if ((err = mmap_user(st, txn, x, c->userid, &t->u, &have)) != STORE_OK || !have)
		return err;
	*miss_r = MISS_MAILBOX;
	if ((err = mmap_mbox(st, txn, x, c->userid, c->mboxid, &t->u, &t->mm, &t->mb)) !=
	    STORE_OK || t->mm.kind == MK_GONE)
		return err;
	*miss_r = MISS_UNMERGED;
	if ((err = mmap_uid(st, txn, x, c->userid, c->mboxid, c->uid, &huid)) != STORE_OK ||
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
	if (mmap_home_changed_since(x, t.u.id, t.mb.id, t.m.uid, c->time)) {
		x->stats.flags_lost_to_newer_home_change++;
		goto out;
	}
	if ((err = mmap_kw_translate(st, txn, x, c->userid, c->mboxid, &t.mm, t.u.id,
				     be64_get(p + 12), &nk)) != STORE_OK)
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
	    (err = rec_user(st, txn, x, c->userid, &u, &have)) != STORE_OK || !have)
		return err;
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
		mm.horizon = mmap_horizon_from(x, mb.uidnext > in.uidnext ?
						  mb.uidnext : in.uidnext);
		mm.modhorizon = mmap_modhorizon_from(x, mb.highestmodseq > in.highestmodseq ?
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
	    (err = rec_user(st, txn, x, c->userid, &u, &have)) != STORE_OK || !have)
		return err;
	if ((err = mmap_mbox(st, txn, x, c->userid, c->mboxid, &u, &mm, &mb)) != STORE_OK)
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
	if ((err = merge_grow((void **)&l->uids, &l->cap, l->n, sizeof(*l->uids))) != STORE_OK)
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
	    (err = rec_user(st, txn, x, c->userid, &u, &have)) != STORE_OK || !have)
		return err;
	if ((err = mmap_mbox(st, txn, x, c->userid, c->mboxid, &u, &mm, &mb)) != STORE_OK)
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
	struct store_user u;
	uint8_t on;
	bool have;
	int err;

	if (c->data_len < 1 || (on = *(const uint8_t *)c->data) > 1)
		return STORE_INVAL;
	if ((err = store_ch_name(c, 1, name, sizeof(name))) != STORE_OK ||
	    store_mailbox_name_check(name) != STORE_OK ||
	    strcmp(store_mbox_canon(name), name) != 0)
		return STORE_INVAL;
	if ((err = rec_user(st, txn, x, c->userid, &u, &have)) != STORE_OK || !have)
		return err;
	err = store_sub_set(st, txn, u.id, name, on == 1);
	return err == STORE_NOTFOUND ? STORE_OK : err;	/* as the mirror wants it already */
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
	if ((err = rec_user(st, txn, x, c->userid, &u, &have)) != STORE_OK || !have)
		return err;
	if ((err = mmap_mbox(st, txn, x, c->userid, c->mboxid, &u, &mm, &mb)) != STORE_OK)
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
	return mkey_put(st, txn, &k, &hidx, 1);
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
	return mkey_put(st, txn, &k, b, 4);
}

/* ---- one record ---------------------------------------------------------- */

int merge_rec(struct store *st, MDB_txn *txn, struct store_op *op, struct store_merge *x,
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
