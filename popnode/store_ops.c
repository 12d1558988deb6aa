/*
 * store_ops.c - what each write op does, inside the nested LMDB
 * transaction the writer thread opened for it (store_write.c).
 *
 * An op either finishes every change it makes and returns STORE_OK, or
 * returns an error and the writer aborts its nested transaction, undoing
 * all of it: counters, the changelog sequence and the records together.
 * Nothing here commits, sleeps or talks to the event loop.
 *
 * Every mutation appends its changelog record(s) here, in the same
 * transaction as the mutation; payload formats are in docs/store.md.
 * This file: users, expunge and delivery; the IMAP ops are in
 * store_mbox_ops.c and store_msg_ops.c, the primitives in store_txn.c.
 * Each user op also writes the user's directory record (store_dir.c) in
 * the same transaction: a tombstone for a delete.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_private.h"

static const struct {
	const char *name;
	uint32_t special_use;
} default_mailboxes[] = {
	{ "INBOX", 0 },
	{ "Sent", STORE_SU_SENT },
	{ "Drafts", STORE_SU_DRAFTS },
	{ "Trash", STORE_SU_TRASH },
	{ "Junk", STORE_SU_JUNK },
	{ "Archive", STORE_SU_ARCHIVE },
};

/* ---- users ---------------------------------------------------------------- */

int store_user_create(struct store *st, MDB_txn *txn, struct store_op *op,
		      struct store_user *u)
{
	uint8_t idk[USERID_KEY_LEN], nk[MBOXNAME_KEY_MAX], sub[1 + STORE_MBOX_MAX];
	struct store_mailbox mb;
	size_t i, nklen, len;
	int err;

	if ((err = store_next_id(st, txn, META_NEXT_USERID, &u->id)) != STORE_OK)
		return err;
	u->used = 0;
	u->messages = 0;
	u->created = (int64_t)time(NULL);
	userid_key(idk, u->id);
	err = store_put(txn, st->dbi[DBI_USERIDS], idk, sizeof(idk), u->name, strlen(u->name),
			MDB_NOOVERWRITE);
	if (err != STORE_OK)
		return err == STORE_EXISTS ? STORE_IO : err;
	if ((err = store_user_put(st, txn, u, STORE_CH_USER_ADD)) != STORE_OK)
		return err;
	for (i = 0; i < sizeof(default_mailboxes) / sizeof(default_mailboxes[0]); i++) {
		const char *name = default_mailboxes[i].name;

		err = store_mbox_create(st, txn, u->id, name, default_mailboxes[i].special_use, &mb);
		if (err != STORE_OK)
			return err == STORE_EXISTS ? STORE_IO : err;
		/* subscribed from the start; implied by USER_ADD in the changelog */
		len = strlen(name);
		nklen = mboxname_key(nk, u->id, name);
		sub[0] = STORE_REC_V1;
		memcpy(sub + 1, name, len);
		err = store_put(txn, st->dbi[DBI_SUBS], nk, nklen, sub, 1 + len, 0);
		if (err != STORE_OK)
			return err;
		store_touch(op, u->id, mb.id);
	}
	return STORE_OK;
}

int store_op_user_add(struct store *st, MDB_txn *txn, struct store_op *op)
{
	struct store_user u = op->u.user, old;
	int err = store_load_user(st, txn, u.name, &old);

	if (err != STORE_NOTFOUND)
		return err == STORE_OK ? STORE_EXISTS : err;
	if ((err = store_user_create(st, txn, op, &u)) != STORE_OK)
		return err;
	return store_dir_local(st, txn, u.name, u.home, false);
}

int store_op_user_update(struct store *st, MDB_txn *txn, struct store_op *op)
{
	const struct store_user *in = &op->u.user;
	struct store_user u;
	int err = store_load_user(st, txn, in->name, &u);

	if (err != STORE_OK)
		return err;
	memcpy(u.home, in->home, sizeof(u.home));
	memcpy(u.pwhash, in->pwhash, sizeof(u.pwhash));
	u.quota = in->quota;
	u.enabled = in->enabled;
	if ((err = store_user_put(st, txn, &u, STORE_CH_USER_UPDATE)) != STORE_OK)
		return err;
	return store_dir_local(st, txn, u.name, u.home, false);
}

static int drop_msg_body(struct store *st, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
			 void *ctx)
{
	struct store_msg m;
	int err = msg_rec_decode(v, &m, NULL, NULL);

	(void)k;
	(void)ctx;
	if (err != STORE_OK)
		return err;
	return store_body_unref(st, txn, m.hash);
}

/* Each mailbox of a deleted user: its sessions should notice. */
static int touch_mbox(struct store *st, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
		      void *ctx)
{
	(void)st;
	(void)txn;
	(void)v;
	if (k->mv_size != MBOX_KEY_LEN)
		return STORE_IO;
	store_touch(ctx, be32_get(k->mv_data), be32_get((const uint8_t *)k->mv_data + 4));
	return STORE_OK;
}

int store_user_remove(struct store *st, MDB_txn *txn, struct store_op *op,
		      const struct store_user *u)
{
	static const enum store_dbi by_user[] = {
		DBI_MBOXNAMES, DBI_SUBS, DBI_KEYWORDS, DBI_VANISHED,
	};
	uint8_t pk[4];
	size_t name_len = strlen(u->name), i;
	int err;

	be32_put(pk, u->id);
	if ((err = store_del_prefix(st, txn, st->dbi[DBI_MESSAGES], pk, 4, drop_msg_body,
				    NULL)) != STORE_OK ||
	    (err = store_del_prefix(st, txn, st->dbi[DBI_MAILBOXES], pk, 4, touch_mbox,
				    op)) != STORE_OK)
		return err;
	for (i = 0; i < sizeof(by_user) / sizeof(by_user[0]); i++) {
		err = store_del_prefix(st, txn, st->dbi[by_user[i]], pk, 4, NULL, NULL);
		if (err != STORE_OK)
			return err;
	}
	if ((err = store_recent_del_user(st, txn, u->id)) != STORE_OK)
		return err;
	if ((err = store_del(txn, st->dbi[DBI_USERS], u->name, name_len)) != STORE_OK ||
	    (err = store_del(txn, st->dbi[DBI_USERIDS], pk, 4)) != STORE_OK)
		return err;
	const struct store_part part = { u->name, name_len };
	return store_changelog_append(st, txn, STORE_CH_USER_DEL, u->id, 0, 0, &part, 1);
}

int store_op_user_del(struct store *st, MDB_txn *txn, struct store_op *op)
{
	struct store_user u;
	int err = store_load_user(st, txn, op->u.name, &u);

	if (err != STORE_OK)
		return err;
	if ((err = store_user_remove(st, txn, op, &u)) != STORE_OK)
		return err;
	/* a tombstone, so peers delete it too and an older add cannot revive it */
	return store_dir_local(st, txn, u.name, u.home, true);
}

/* ---- messages ------------------------------------------------------------- */

int store_op_expunge(struct store *st, MDB_txn *txn, struct store_op *op)
{
	uint32_t userid = op->u.expunge.userid, mboxid = op->u.expunge.mboxid;
	struct store_mailbox mb;
	struct store_user u;
	uint8_t kb[MSG_KEY_LEN], pl[8 + STORE_BODY_HASH_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	uint64_t modseq;
	size_t i, removed = 0;
	int err, rc;

	if ((err = store_load_mbox_id(st, txn, userid, mboxid, &mb)) != STORE_OK)
		return err;
	if ((err = store_load_user_id(st, txn, userid, &u)) != STORE_OK)
		return err == STORE_NOTFOUND ? STORE_IO : err;
	modseq = mb.highestmodseq + 1;
	for (i = 0; i < op->u.expunge.n; i++) {
		struct store_msg m;
		uint32_t uid = op->u.expunge.uids[i];

		msg_key(kb, userid, mboxid, uid);
		rc = mdb_get(txn, st->dbi[DBI_MESSAGES], &k, &v);
		if (rc == MDB_NOTFOUND)
			continue;	/* unknown or already expunged */
		if (rc != 0)
			return store_mdb_err(rc);
		if ((err = msg_rec_decode(&v, &m, NULL, NULL)) != STORE_OK)
			return err;
		if ((err = store_del(txn, st->dbi[DBI_MESSAGES], kb, sizeof(kb))) != STORE_OK ||
		    (err = store_body_unref(st, txn, m.hash)) != STORE_OK ||
		    (err = store_vanish(st, txn, userid, mboxid, uid, modseq)) != STORE_OK)
			return err;
		mb.messages = mb.messages > 0 ? mb.messages - 1 : 0;
		mb.bytes = mb.bytes > m.size ? mb.bytes - m.size : 0;
		if (!(m.flags & STORE_F_SEEN) && mb.unseen > 0)
			mb.unseen--;
		u.messages = u.messages > 0 ? u.messages - 1 : 0;
		u.used = u.used > m.size ? u.used - m.size : 0;
		be64_put(pl, modseq);
		memcpy(pl + 8, m.hash, STORE_BODY_HASH_LEN);
		const struct store_part part = { pl, sizeof(pl) };
		err = store_changelog_append(st, txn, STORE_CH_MSG_EXPUNGE, userid, mboxid, uid,
					     &part, 1);
		if (err != STORE_OK)
			return err;
		removed++;
	}
	if (removed == 0)
		return STORE_OK;
	mb.highestmodseq = modseq;
	if ((err = store_mbox_put(st, txn, userid, &mb, 0)) != STORE_OK)
		return err;
	store_touch(op, userid, mboxid);
	return store_user_put(st, txn, &u, 0);
}

int store_op_deliver_one(struct store *st, MDB_txn *txn, struct store_op *op, size_t i)
{
	const uint8_t *hash = op->u.deliver.hash;
	struct store_rcpt *r = &op->u.deliver.rcpts[i];
	const char *body = op->u.deliver.blob;
	size_t body_len = op->u.deliver.body_len;
	struct store_user u;
	struct store_mailbox mb;
	struct store_msg m = { .internaldate = op->u.deliver.internaldate,
			       .flags = STORE_F_RECENT };
	uint8_t kb[MSG_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	int err, rc;

	if ((err = store_load_user(st, txn, r->user, &u)) != STORE_OK)
		return err;
	if (!u.enabled)
		return STORE_DISABLED;
	err = store_load_mbox_name(st, txn, u.id, op->u.deliver.mailbox, &mb);
	if (err != STORE_OK)
		return err;
	m.size = (uint64_t)r->prefix_len + body_len;
	if (u.quota != 0 && (u.used > u.quota || m.size > u.quota - u.used))
		return STORE_QUOTA;
	if (mb.uidnext == 0 || mb.uidnext == UINT32_MAX)
		return STORE_FULL;	/* UID space used up */
	m.uid = mb.uidnext++;
	m.modseq = ++mb.highestmodseq;
	memcpy(m.hash, hash, STORE_BODY_HASH_LEN);

	msg_key(kb, u.id, mb.id, m.uid);
	v.mv_size = MSG_REC_FIXED + r->prefix_len;
	rc = mdb_put(txn, st->dbi[DBI_MESSAGES], &k, &v, MDB_NOOVERWRITE | MDB_RESERVE);
	if (rc != 0)
		return rc == MDB_KEYEXIST ? STORE_IO : store_mdb_err(rc);
	msg_rec_encode_fixed(&m, r->prefix_len, v.mv_data);
	if (r->prefix_len > 0)
		memcpy((uint8_t *)v.mv_data + MSG_REC_FIXED, r->prefix, r->prefix_len);

	err = store_body_ref(st, txn, hash, body, body_len, op->u.deliver.meta,
			     op->u.deliver.meta_len);
	if (err != STORE_OK)
		return err;
	mb.messages++;
	mb.bytes += m.size;
	mb.unseen++;
	if ((err = store_mbox_put(st, txn, u.id, &mb, 0)) != STORE_OK)
		return err;
	u.messages++;
	u.used += m.size;
	if ((err = store_user_put(st, txn, &u, 0)) != STORE_OK)
		return err;

	/* The changelog payload is the message record, prefix included. */
	uint8_t fixed[MSG_REC_FIXED];
	msg_rec_encode_fixed(&m, r->prefix_len, fixed);
	const struct store_part parts[] = { { fixed, sizeof(fixed) },
					    { r->prefix, r->prefix_len } };
	err = store_changelog_append(st, txn, STORE_CH_MSG_ADD, u.id, mb.id, m.uid, parts, 2);
	if (err != STORE_OK)
		return err;
	store_touch(op, u.id, mb.id);
	r->uid = m.uid;
	return STORE_OK;
}
