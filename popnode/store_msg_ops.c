/*
 * store_msg_ops.c - the IMAP message ops: APPEND, STORE (flags and
 * keywords, with CONDSTORE's UNCHANGEDSINCE) and COPY/MOVE, each inside
 * the nested transaction the writer opened for it (store_write.c).
 *
 * Invariants kept here as everywhere: every message added or changed gets
 * modseq = ++mailbox highestmodseq; an expunge bumps highestmodseq once
 * and leaves a tombstone per UID; the mailbox's messages/bytes/unseen and
 * the user's messages/used follow every message; bodies are referenced
 * once per message record; every change has its changelog record.
 */
#include <stdlib.h>
#include <string.h>

#include "store_private.h"

static int load_mbox_user(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
			  struct store_mailbox *mb_r, struct store_user *u_r)
{
	int err = store_load_mbox_id(st, txn, userid, mboxid, mb_r);

	if (err != STORE_OK)
		return err;
	err = store_load_user_id(st, txn, userid, u_r);
	return err == STORE_NOTFOUND ? STORE_IO : err;
}

static bool over_quota(const struct store_user *u, uint64_t more)
{
	return u->quota != 0 && (u->used > u->quota || more > u->quota - u->used);
}

/* The keyword bitmap of names, creating them in the table if create. */
static int kw_mask(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
		   struct store_kwtable *t, const store_kwname *names, size_t n, bool create,
		   uint64_t *mask_r)
{
	uint64_t mask = 0;
	unsigned idx;
	size_t i;
	int err, found;

	for (i = 0; i < n; i++) {
		if (create) {
			err = store_kw_intern(st, txn, userid, mboxid, t, names[i], &idx);
			if (err != STORE_OK)
				return err;
			mask |= 1ULL << idx;
		} else if ((found = store_kw_find(t, names[i])) >= 0) {
			mask |= 1ULL << found;
		}
	}
	*mask_r = mask;
	return STORE_OK;
}

static int msg_add_log(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
		       const void *rec, size_t len, uint32_t uid)
{
	const struct store_part part = { rec, len };

	return store_changelog_append(st, txn, STORE_CH_MSG_ADD, userid, mboxid, uid, &part, 1);
}

/* ---- append ---------------------------------------------------------------- */

int store_op_append(struct store *st, MDB_txn *txn, struct store_op *op)
{
	uint32_t userid = op->u.append.userid;
	struct store_kwtable *kw = store_xcalloc(1, sizeof(*kw));
	struct store_mailbox mb;
	struct store_user u;
	struct store_msg m = { .internaldate = op->u.append.internaldate,
			       .flags = op->u.append.flags | STORE_F_RECENT,
			       .size = op->u.append.len };
	uint8_t kb[MSG_KEY_LEN], rec[MSG_REC_FIXED];
	int err;

	if ((err = load_mbox_user(st, txn, userid, op->u.append.mboxid, &mb, &u)) != STORE_OK)
		goto out;
	if (over_quota(&u, m.size)) {
		err = STORE_QUOTA;
		goto out;
	}
	if (mb.uidnext == 0 || mb.uidnext == UINT32_MAX) {
		err = STORE_FULL;	/* UID space used up */
		goto out;
	}
	if ((err = store_kw_load(st, txn, userid, mb.id, kw)) != STORE_OK ||
	    (err = kw_mask(st, txn, userid, mb.id, kw, op->u.append.kw, op->u.append.n_kw, true,
			   &m.keywords)) != STORE_OK)
		goto out;
	m.uid = mb.uidnext++;
	m.modseq = ++mb.highestmodseq;
	memcpy(m.hash, op->u.append.hash, STORE_BODY_HASH_LEN);
	msg_rec_encode_fixed(&m, 0, rec);
	msg_key(kb, userid, mb.id, m.uid);
	err = store_put(txn, st->dbi[DBI_MESSAGES], kb, sizeof(kb), rec, sizeof(rec),
			MDB_NOOVERWRITE);
	if (err != STORE_OK) {
		err = err == STORE_EXISTS ? STORE_IO : err;
		goto out;
	}
	err = store_body_ref(st, txn, m.hash, op->u.append.blob, op->u.append.len,
			     op->u.append.blob + op->u.append.len, op->u.append.meta_len);
	if (err != STORE_OK)
		goto out;
	mb.messages++;
	mb.bytes += m.size;
	if (!(m.flags & STORE_F_SEEN))
		mb.unseen++;
	u.messages++;
	u.used += m.size;
	if ((err = store_mbox_put(st, txn, userid, &mb, 0)) != STORE_OK ||
	    (err = store_user_put(st, txn, &u, 0)) != STORE_OK ||
	    (err = msg_add_log(st, txn, userid, mb.id, rec, sizeof(rec), m.uid)) != STORE_OK)
		goto out;
	store_touch(op, userid, mb.id);
	op->u.append.uidvalidity = mb.uidvalidity;
	op->u.append.uid = m.uid;
out:
	free(kw);
	return err;
}

/* ---- store flags ------------------------------------------------------------- */

/* Rewrite the fixed part of the message record at kb with m. */
static int msg_rewrite(struct store *st, MDB_txn *txn, const uint8_t *kb, const MDB_val *v,
		       const struct store_msg *m, size_t prefix_len)
{
	uint8_t *rec = store_xcalloc(1, v->mv_size);
	int err;

	memcpy(rec, v->mv_data, v->mv_size);
	msg_rec_encode_fixed(m, prefix_len, rec);
	err = store_put(txn, st->dbi[DBI_MESSAGES], kb, MSG_KEY_LEN, rec, v->mv_size, 0);
	free(rec);
	return err;
}

int store_op_flags(struct store *st, MDB_txn *txn, struct store_op *op)
{
	uint32_t userid = op->u.flags.userid, mboxid = op->u.flags.mboxid;
	uint32_t want = op->u.flags.flags & ~(uint32_t)STORE_F_RECENT;
	uint64_t since = op->u.flags.unchangedsince, mask;
	struct store_kwtable *kw = store_xcalloc(1, sizeof(*kw));
	enum store_flag_op how = op->u.flags.how;
	struct store_mailbox mb;
	uint8_t kb[MSG_KEY_LEN], pl[20];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	bool changed = false;
	size_t i;
	int err, rc;

	op->u.flags.n_res = 0;
	if ((err = store_load_mbox_id(st, txn, userid, mboxid, &mb)) != STORE_OK ||
	    (err = store_kw_load(st, txn, userid, mboxid, kw)) != STORE_OK ||
	    (err = kw_mask(st, txn, userid, mboxid, kw, op->u.flags.kw, op->u.flags.n_kw,
			   how != STORE_FLAGS_REMOVE, &mask)) != STORE_OK)
		goto out;
	for (i = 0; i < op->u.flags.n; i++) {
		struct store_flag_result *r = &op->u.flags.res[op->u.flags.n_res];
		struct store_msg m;
		size_t prefix_len;
		uint32_t nf;
		uint64_t nk;

		msg_key(kb, userid, mboxid, op->u.flags.uids[i]);
		rc = mdb_get(txn, st->dbi[DBI_MESSAGES], &k, &v);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0) {
			err = store_mdb_err(rc);
			goto out;
		}
		if ((err = msg_rec_decode(&v, &m, NULL, &prefix_len)) != STORE_OK)
			goto out;
		m.uid = op->u.flags.uids[i];
		op->u.flags.n_res++;
		r->uid = m.uid;
		r->flags = m.flags;
		r->keywords = m.keywords;
		r->modseq = m.modseq;
		if (since != 0 && m.modseq > since) {
			r->status = STORE_FLAG_MODIFIED;
			continue;
		}
		switch (how) {
		case STORE_FLAGS_SET:
			nf = want | (m.flags & STORE_F_RECENT);
			nk = mask;
			break;
		case STORE_FLAGS_ADD:
			nf = m.flags | want;
			nk = m.keywords | mask;
			break;
		default:
			nf = m.flags & ~want;
			nk = m.keywords & ~mask;
			break;
		}
		if (nf == m.flags && nk == m.keywords) {
			r->status = STORE_FLAG_UNCHANGED;
			continue;
		}
		if ((m.flags ^ nf) & STORE_F_SEEN) {
			if (nf & STORE_F_SEEN)
				mb.unseen = mb.unseen > 0 ? mb.unseen - 1 : 0;
			else
				mb.unseen++;
		}
		m.flags = nf;
		m.keywords = nk;
		m.modseq = ++mb.highestmodseq;
		if ((err = msg_rewrite(st, txn, kb, &v, &m, prefix_len)) != STORE_OK)
			goto out;
		be64_put(pl, m.modseq);
		be32_put(pl + 8, m.flags);
		be64_put(pl + 12, m.keywords);
		const struct store_part part = { pl, sizeof(pl) };
		err = store_changelog_append(st, txn, STORE_CH_MSG_FLAGS, userid, mboxid, m.uid,
					     &part, 1);
		if (err != STORE_OK)
			goto out;
		r->status = STORE_FLAG_CHANGED;
		r->flags = m.flags;
		r->keywords = m.keywords;
		r->modseq = m.modseq;
		changed = true;
	}
	if (changed) {
		if ((err = store_mbox_put(st, txn, userid, &mb, 0)) != STORE_OK)
			goto out;
		store_touch(op, userid, mboxid);
	}
out:
	free(kw);
	return err;
}

/* ---- copy / move ------------------------------------------------------------- */

struct copy_ctx {
	struct store_mailbox src, dstbuf, *dst;	/* dst == &src when the same */
	struct store_kwtable *src_kw, *dst_kw;	/* the same table when the same */
	struct store_user u;
};

/* The destination bitmap of a source message's keywords. */
static int kw_remap(struct store *st, MDB_txn *txn, uint32_t userid, struct copy_ctx *c,
		    uint64_t keywords, uint64_t *out_r)
{
	uint64_t out = 0;
	unsigned i, idx;
	int err;

	if (c->dst == &c->src) {
		*out_r = keywords;
		return STORE_OK;
	}
	for (i = 0; i < c->src_kw->n && i < 64; i++) {
		if (!(keywords & (1ULL << i)))
			continue;
		err = store_kw_intern(st, txn, userid, c->dst->id, c->dst_kw, c->src_kw->names[i],
				      &idx);
		if (err == STORE_FULL)
			continue;	/* no room in dst: the keyword is dropped */
		if (err != STORE_OK)
			return err;
		out |= 1ULL << idx;
	}
	*out_r = out;
	return STORE_OK;
}

/* Copy the message src uid -> a new UID in dst; returns that UID. */
static int copy_one(struct store *st, MDB_txn *txn, struct store_op *op, struct copy_ctx *c,
		    const MDB_val *v, uint32_t *new_uid_r)
{
	uint32_t userid = op->u.copy.userid;
	struct store_mailbox *dst = c->dst;
	struct store_msg m;
	const char *prefix;
	size_t prefix_len;
	uint8_t kb[MSG_KEY_LEN], *rec;
	int err;

	if ((err = msg_rec_decode(v, &m, &prefix, &prefix_len)) != STORE_OK)
		return err;
	if (dst->uidnext == 0 || dst->uidnext == UINT32_MAX)
		return STORE_FULL;
	if ((err = kw_remap(st, txn, userid, c, m.keywords, &m.keywords)) != STORE_OK)
		return err;
	m.uid = dst->uidnext++;
	m.modseq = ++dst->highestmodseq;
	m.flags |= STORE_F_RECENT;
	rec = store_xcalloc(1, v->mv_size);
	memcpy(rec, v->mv_data, v->mv_size);
	msg_rec_encode_fixed(&m, prefix_len, rec);
	msg_key(kb, userid, dst->id, m.uid);
	err = store_put(txn, st->dbi[DBI_MESSAGES], kb, sizeof(kb), rec, v->mv_size,
			MDB_NOOVERWRITE);
	if (err == STORE_OK)
		err = msg_add_log(st, txn, userid, dst->id, rec, v->mv_size, m.uid);
	free(rec);
	if (err != STORE_OK)
		return err == STORE_EXISTS ? STORE_IO : err;
	if (m.size < prefix_len)
		return STORE_IO;
	if ((err = store_body_ref(st, txn, m.hash, NULL, m.size - prefix_len, NULL, 0)) !=
	    STORE_OK)
		return err;
	dst->messages++;
	dst->bytes += m.size;
	if (!(m.flags & STORE_F_SEEN))
		dst->unseen++;
	if (!op->u.copy.move) {
		c->u.messages++;
		c->u.used += m.size;
	}
	*new_uid_r = m.uid;
	return STORE_OK;
}

/* Move: remove the copied sources, one new highestmodseq for all. */
static int remove_sources(struct store *st, MDB_txn *txn, struct store_op *op,
			  struct copy_ctx *c)
{
	uint32_t userid = op->u.copy.userid;
	uint64_t exp = ++c->src.highestmodseq;
	uint8_t kb[MSG_KEY_LEN], pl[8 + STORE_BODY_HASH_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	size_t i;
	int err, rc;

	for (i = 0; i < op->u.copy.n_out; i++) {
		uint32_t uid = op->u.copy.src_out[i];
		struct store_msg m;

		msg_key(kb, userid, c->src.id, uid);
		if ((rc = mdb_get(txn, st->dbi[DBI_MESSAGES], &k, &v)) != 0)
			return rc == MDB_NOTFOUND ? STORE_IO : store_mdb_err(rc);
		if ((err = msg_rec_decode(&v, &m, NULL, NULL)) != STORE_OK)
			return err;
		if ((err = store_del(txn, st->dbi[DBI_MESSAGES], kb, sizeof(kb))) != STORE_OK ||
		    (err = store_body_unref(st, txn, m.hash)) != STORE_OK ||
		    (err = store_vanish(st, txn, userid, c->src.id, uid, exp)) != STORE_OK)
			return err;
		c->src.messages = c->src.messages > 0 ? c->src.messages - 1 : 0;
		c->src.bytes = c->src.bytes > m.size ? c->src.bytes - m.size : 0;
		if (!(m.flags & STORE_F_SEEN) && c->src.unseen > 0)
			c->src.unseen--;
		be64_put(pl, exp);
		memcpy(pl + 8, m.hash, STORE_BODY_HASH_LEN);
		const struct store_part part = { pl, sizeof(pl) };
		err = store_changelog_append(st, txn, STORE_CH_MSG_EXPUNGE, userid, c->src.id, uid,
					     &part, 1);
		if (err != STORE_OK)
			return err;
	}
	return STORE_OK;
}

/* Sum of the sizes of the sources that exist (for the quota check). */
static int sources_size(struct store *st, MDB_txn *txn, struct store_op *op, uint64_t *sum_r)
{
	uint8_t kb[MSG_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	struct store_msg m;
	uint64_t sum = 0;
	size_t i;
	int err, rc;

	for (i = 0; i < op->u.copy.n; i++) {
		msg_key(kb, op->u.copy.userid, op->u.copy.src, op->u.copy.uids[i]);
		rc = mdb_get(txn, st->dbi[DBI_MESSAGES], &k, &v);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0)
			return store_mdb_err(rc);
		if ((err = msg_rec_decode(&v, &m, NULL, NULL)) != STORE_OK)
			return err;
		sum += m.size;
	}
	*sum_r = sum;
	return STORE_OK;
}

int store_op_copy(struct store *st, MDB_txn *txn, struct store_op *op)
{
	uint32_t userid = op->u.copy.userid;
	struct copy_ctx c;
	uint8_t kb[MSG_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	uint64_t total = 0;
	size_t i;
	int err, rc;

	memset(&c, 0, sizeof(c));
	op->u.copy.n_out = 0;
	if ((err = load_mbox_user(st, txn, userid, op->u.copy.src, &c.src, &c.u)) != STORE_OK)
		return err;
	c.dst = &c.src;
	if (op->u.copy.dst != op->u.copy.src) {
		c.dst = &c.dstbuf;
		if ((err = store_load_mbox_id(st, txn, userid, op->u.copy.dst, c.dst)) != STORE_OK)
			return err;
	}
	if (!op->u.copy.move) {
		if ((err = sources_size(st, txn, op, &total)) != STORE_OK)
			return err;
		if (over_quota(&c.u, total))
			return STORE_QUOTA;
	}
	c.src_kw = store_xcalloc(1, sizeof(*c.src_kw));
	c.dst_kw = c.dst == &c.src ? c.src_kw : store_xcalloc(1, sizeof(*c.dst_kw));
	if ((err = store_kw_load(st, txn, userid, c.src.id, c.src_kw)) != STORE_OK ||
	    (c.dst != &c.src &&
	     (err = store_kw_load(st, txn, userid, c.dst->id, c.dst_kw)) != STORE_OK))
		goto out;
	for (i = 0; i < op->u.copy.n; i++) {
		uint32_t uid = op->u.copy.uids[i], new_uid;

		msg_key(kb, userid, c.src.id, uid);
		rc = mdb_get(txn, st->dbi[DBI_MESSAGES], &k, &v);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0) {
			err = store_mdb_err(rc);
			goto out;
		}
		if ((err = copy_one(st, txn, op, &c, &v, &new_uid)) != STORE_OK)
			goto out;
		op->u.copy.src_out[op->u.copy.n_out] = uid;
		op->u.copy.dst_out[op->u.copy.n_out] = new_uid;
		op->u.copy.n_out++;
	}
	op->u.copy.uidvalidity = c.dst->uidvalidity;
	if (op->u.copy.n_out == 0)
		goto out;
	if (op->u.copy.move && (err = remove_sources(st, txn, op, &c)) != STORE_OK)
		goto out;
	if ((err = store_mbox_put(st, txn, userid, c.dst, 0)) != STORE_OK ||
	    (c.dst != &c.src && (err = store_mbox_put(st, txn, userid, &c.src, 0)) != STORE_OK) ||
	    (!op->u.copy.move && (err = store_user_put(st, txn, &c.u, 0)) != STORE_OK))
		goto out;
	store_touch(op, userid, c.dst->id);
	if (op->u.copy.move)
		store_touch(op, userid, c.src.id);
out:
	if (c.dst_kw != c.src_kw)
		free(c.dst_kw);
	free(c.src_kw);
	return err;
}
