/*
 * store_mbox_ops.c - mailbox create, delete, rename and subscriptions,
 * each inside the nested transaction the writer opened for the op
 * (store_write.c), built from store_txn.c's primitives.
 *
 * Names arrive canonical ("inbox" -> "INBOX") and checked by
 * store_mailbox_name_check (store_submit.c).  Semantics follow RFC 3501:
 * CREATE and RENAME create missing superiors; DELETE of a mailbox with
 * inferiors removes only that mailbox; RENAME moves the inferiors along,
 * except for INBOX, whose messages move into a new mailbox while INBOX
 * stays (empty, with tombstones for QRESYNC).
 */
#include <stdlib.h>
#include <string.h>

#include "store_private.h"

int store_sub_set(struct store *st, MDB_txn *txn, uint32_t userid, const char *name, bool on)
{
	uint8_t nk[MBOXNAME_KEY_MAX], rec[1 + STORE_MBOX_MAX], flag = on ? 1 : 0;
	size_t nklen, len = strlen(name);
	int err = store_sub_get(st, txn, userid, name);

	if (err != STORE_OK && err != STORE_NOTFOUND)
		return err;
	if (on && err == STORE_OK)
		return STORE_OK;
	if (!on && err == STORE_NOTFOUND)
		return STORE_NOTFOUND;
	nklen = mboxname_key(nk, userid, name);
	if (nklen == 0)
		return STORE_IO;
	if (on) {
		rec[0] = STORE_REC_V1;
		memcpy(rec + 1, name, len);
		/* overwrites a hashed key held by another long name: rare, and
		 * the subscription list stays a list of valid names */
		err = store_put(txn, st->dbi[DBI_SUBS], nk, nklen, rec, 1 + len, 0);
	} else {
		err = store_del(txn, st->dbi[DBI_SUBS], nk, nklen);
	}
	if (err != STORE_OK)
		return err;
	const struct store_part parts[] = { { &flag, 1 }, { name, len } };
	return store_changelog_append(st, txn, STORE_CH_SUBSCRIBE, userid, 0, 0, parts, 2);
}

int store_op_subscribe(struct store *st, MDB_txn *txn, struct store_op *op)
{
	struct store_user u;
	int err = store_load_user_id(st, txn, op->u.mbox.userid, &u);

	if (err != STORE_OK)
		return err;
	return store_sub_set(st, txn, u.id, op->u.mbox.name, op->u.mbox.on);
}

/* ---- create ----------------------------------------------------------------- */

int store_op_mbox_create(struct store *st, MDB_txn *txn, struct store_op *op)
{
	uint32_t userid = op->u.mbox.userid;
	const char *name = op->u.mbox.name;
	struct store_mailbox *mb = &op->u.mbox.result;
	struct store_user u;
	int err;

	if ((err = store_load_user_id(st, txn, userid, &u)) != STORE_OK)
		return err;
	err = store_load_mbox_name(st, txn, userid, name, mb);
	if (err != STORE_NOTFOUND)
		return err == STORE_OK ? STORE_EXISTS : err;
	if ((err = store_mbox_create_parents(st, txn, op, userid, name)) != STORE_OK ||
	    (err = store_mbox_create(st, txn, userid, name, op->u.mbox.special_use, mb)) !=
	    STORE_OK)
		return err;
	if ((err = store_fill_subscribed(st, txn, userid, mb)) != STORE_OK)
		return err;
	store_touch(op, userid, mb->id);
	return STORE_OK;
}

/* ---- delete ----------------------------------------------------------------- */

struct drop_count {
	uint64_t bytes;
	uint32_t messages;
};

static int drop_msg(struct store *st, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
		    void *ctx)
{
	struct drop_count *c = ctx;
	struct store_msg m;
	int err = msg_rec_decode(v, &m, NULL, NULL);

	(void)k;
	if (err != STORE_OK)
		return err;
	c->bytes += m.size;
	c->messages++;
	return store_body_unref(st, txn, m.hash);
}

int store_mbox_name_release(struct store *st, MDB_txn *txn, uint32_t userid, const char *name,
			    uint32_t mboxid)
{
	uint8_t nk[MBOXNAME_KEY_MAX];
	MDB_val k = { .mv_data = nk }, v;
	int rc;

	if ((k.mv_size = mboxname_key(nk, userid, name)) == 0)
		return STORE_IO;
	rc = mdb_get(txn, st->dbi[DBI_MBOXNAMES], &k, &v);
	if (rc == MDB_NOTFOUND)
		return STORE_OK;
	if (rc != 0)
		return store_mdb_err(rc);
	if (v.mv_size != 4 || be32_get(v.mv_data) != mboxid)
		return STORE_OK;
	return store_del(txn, st->dbi[DBI_MBOXNAMES], nk, k.mv_size);
}

int store_mbox_remove(struct store *st, MDB_txn *txn, struct store_op *op, struct store_user *u,
		      const struct store_mailbox *mb)
{
	struct drop_count c = { 0, 0 };
	uint8_t pk[MBOX_KEY_LEN];
	int err;

	mbox_key(pk, u->id, mb->id);
	if ((err = store_del_prefix(st, txn, st->dbi[DBI_MESSAGES], pk, sizeof(pk), drop_msg,
				    &c)) != STORE_OK ||
	    (err = store_del_prefix(st, txn, st->dbi[DBI_KEYWORDS], pk, sizeof(pk), NULL,
				    NULL)) != STORE_OK ||
	    (err = store_del_prefix(st, txn, st->dbi[DBI_VANISHED], pk, sizeof(pk), NULL,
				    NULL)) != STORE_OK ||
	    (err = store_recent_del(st, txn, u->id, mb->id)) != STORE_OK ||
	    (err = store_mbox_name_release(st, txn, u->id, mb->name, mb->id)) != STORE_OK ||
	    (err = store_del(txn, st->dbi[DBI_MAILBOXES], pk, sizeof(pk))) != STORE_OK)
		return err;
	u->messages = u->messages > c.messages ? u->messages - c.messages : 0;
	u->used = u->used > c.bytes ? u->used - c.bytes : 0;
	if ((err = store_user_put(st, txn, u, 0)) != STORE_OK)
		return err;
	store_touch(op, u->id, mb->id);
	return STORE_OK;
}

int store_op_mbox_delete(struct store *st, MDB_txn *txn, struct store_op *op)
{
	uint32_t userid = op->u.mbox.userid;
	const char *name = op->u.mbox.name;
	struct store_mailbox mb;
	struct store_user u;
	int err;

	if (strcmp(name, "INBOX") == 0)
		return STORE_INVAL;
	if ((err = store_load_mbox_name(st, txn, userid, name, &mb)) != STORE_OK)
		return err;
	if ((err = store_load_user_id(st, txn, userid, &u)) != STORE_OK)
		return err == STORE_NOTFOUND ? STORE_IO : err;
	if ((err = store_mbox_remove(st, txn, op, &u, &mb)) != STORE_OK)
		return err;
	const struct store_part part = { name, strlen(name) };
	return store_changelog_append(st, txn, STORE_CH_MAILBOX_DEL, userid, mb.id, 0, &part, 1);
}

/* ---- rename ----------------------------------------------------------------- */

/* Ids of oldname and of every mailbox below it ("oldname/..."), the
 * first being oldname's. */
static int collect_renamed(struct store *st, MDB_txn *txn, uint32_t userid,
			   const struct store_mailbox *old, uint32_t **ids_r, size_t *n_r)
{
	size_t olen = strlen(old->name), n = 1, cap = 8;
	uint32_t *ids = store_xcalloc(cap, sizeof(*ids));
	uint8_t pk[4];
	MDB_val k = { .mv_size = sizeof(pk), .mv_data = pk }, v;
	MDB_cursor *cur;
	MDB_cursor_op how = MDB_SET_RANGE;
	struct store_mailbox mb;
	int rc, err = STORE_OK;

	ids[0] = old->id;
	be32_put(pk, userid);
	if (mdb_cursor_open(txn, st->dbi[DBI_MAILBOXES], &cur) != 0) {
		free(ids);
		return STORE_IO;
	}
	while ((rc = mdb_cursor_get(cur, &k, &v, how)) == 0) {
		how = MDB_NEXT;
		if (k.mv_size != MBOX_KEY_LEN || memcmp(k.mv_data, pk, 4) != 0)
			break;
		if ((err = mbox_rec_decode(&v, &mb)) != STORE_OK)
			break;
		if (strncmp(mb.name, old->name, olen) != 0 || mb.name[olen] != '/')
			continue;
		if (n == cap) {
			uint32_t *more = store_xcalloc(cap * 2, sizeof(*ids));

			memcpy(more, ids, n * sizeof(*ids));
			free(ids);
			ids = more;
			cap *= 2;
		}
		ids[n++] = mb.id;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		err = STORE_IO;
	mdb_cursor_close(cur);
	if (err != STORE_OK) {
		free(ids);
		return err;
	}
	*ids_r = ids;
	*n_r = n;
	return STORE_OK;
}

static int name_key_del(struct store *st, MDB_txn *txn, uint32_t userid, const char *name)
{
	uint8_t nk[MBOXNAME_KEY_MAX];
	size_t nklen = mboxname_key(nk, userid, name);

	return nklen == 0 ? STORE_IO : store_del(txn, st->dbi[DBI_MBOXNAMES], nk, nklen);
}

static int name_key_add(struct store *st, MDB_txn *txn, uint32_t userid, const char *name,
			uint32_t mboxid)
{
	uint8_t nk[MBOXNAME_KEY_MAX], idb[4];
	size_t nklen = mboxname_key(nk, userid, name);

	if (nklen == 0)
		return STORE_IO;
	be32_put(idb, mboxid);
	/* MDB_KEYEXIST -> STORE_EXISTS: the new name is taken */
	return store_put(txn, st->dbi[DBI_MBOXNAMES], nk, nklen, idb, 4, MDB_NOOVERWRITE);
}

/* Rename one mailbox (already out of the name index) to newname. */
static int rename_one(struct store *st, MDB_txn *txn, struct store_op *op, uint32_t userid,
		      struct store_mailbox *mb, const char *newname)
{
	char oldname[STORE_MBOX_MAX];
	int err;

	if ((err = name_key_add(st, txn, userid, newname, mb->id)) != STORE_OK)
		return err;
	strcpy(oldname, mb->name);
	strcpy(mb->name, newname);
	if ((err = store_mbox_put(st, txn, userid, mb, STORE_CH_MAILBOX_RENAME)) != STORE_OK)
		return err;
	store_touch(op, userid, mb->id);
	/* the subscription follows the mailbox */
	err = store_sub_get(st, txn, userid, oldname);
	if (err == STORE_NOTFOUND)
		return STORE_OK;
	if (err != STORE_OK ||
	    (err = store_sub_set(st, txn, userid, oldname, false)) != STORE_OK)
		return err;
	return store_sub_set(st, txn, userid, newname, true);
}

static int rename_tree(struct store *st, MDB_txn *txn, struct store_op *op, uint32_t userid,
		       const struct store_mailbox *old, const char *newname)
{
	size_t olen = strlen(old->name), nlen = strlen(newname), n, i;
	struct store_mailbox mb;
	uint32_t *ids;
	int err;

	if ((err = collect_renamed(st, txn, userid, old, &ids, &n)) != STORE_OK)
		return err;
	/* First take every old name out of the index, then insert the new
	 * ones: a new name may be an old one ("a/b" -> "a" with "a/b/b"). */
	for (i = 0; i < n && err == STORE_OK; i++) {
		err = store_load_mbox_id(st, txn, userid, ids[i], &mb);
		if (err == STORE_OK)
			err = name_key_del(st, txn, userid, mb.name);
	}
	for (i = 0; i < n && err == STORE_OK; i++) {
		char name[STORE_MBOX_MAX];

		if ((err = store_load_mbox_id(st, txn, userid, ids[i], &mb)) != STORE_OK)
			break;
		if (nlen + strlen(mb.name) - olen >= sizeof(name)) {
			err = STORE_INVAL;
			break;
		}
		memcpy(name, newname, nlen);
		strcpy(name + nlen, mb.name + olen);
		err = rename_one(st, txn, op, userid, &mb, name);
	}
	free(ids);
	return err;
}

/* RFC 3501: renaming INBOX moves its messages to a new mailbox; INBOX
 * stays, empty.  UIDs are kept (the new mailbox has its own UIDVALIDITY). */
static int rename_inbox(struct store *st, MDB_txn *txn, struct store_op *op, uint32_t userid,
			struct store_mailbox *in, const char *newname)
{
	struct store_kwtable *kw = store_xcalloc(1, sizeof(*kw));
	struct store_mailbox nb;
	uint8_t pk[MSG_KEY_LEN], nk[MSG_KEY_LEN], pl[8 + STORE_BODY_HASH_LEN];
	MDB_val k, v;
	MDB_cursor *cur = NULL;
	uint64_t exp = in->highestmodseq + 1;
	uint8_t *rec = NULL;
	unsigned i, idx;
	int err, rc;

	if ((err = store_mbox_create_parents(st, txn, op, userid, newname)) != STORE_OK ||
	    (err = store_mbox_create_at(st, txn, userid, newname, 0, in->uidnext, &nb)) !=
	    STORE_OK ||
	    (err = store_kw_load(st, txn, userid, in->id, kw)) != STORE_OK)
		goto out;
	{
		struct store_kwtable *fresh = store_xcalloc(1, sizeof(*fresh));

		for (i = 0; i < kw->n && err == STORE_OK; i++)
			err = store_kw_intern(st, txn, userid, nb.id, fresh, kw->names[i], &idx);
		free(fresh);
		if (err != STORE_OK)
			goto out;
	}
	msg_key(pk, userid, in->id, 0);
	/* A fresh cursor per message: its position is not trusted across
	 * the puts made below through other paths. */
	for (;;) {
		struct store_msg m;
		const char *prefix;
		size_t prefix_len, len;
		uint32_t uid;

		if (cur != NULL)
			mdb_cursor_close(cur);
		if ((rc = mdb_cursor_open(txn, st->dbi[DBI_MESSAGES], &cur)) != 0) {
			cur = NULL;
			err = store_mdb_err(rc);
			goto out;
		}
		k.mv_size = sizeof(pk);
		k.mv_data = pk;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND || (rc == 0 && (k.mv_size != MSG_KEY_LEN ||
						       memcmp(k.mv_data, pk, 8) != 0)))
			break;
		if (rc != 0) {
			err = store_mdb_err(rc);
			goto out;
		}
		uid = be32_get((const uint8_t *)k.mv_data + 8);
		if ((err = msg_rec_decode(&v, &m, &prefix, &prefix_len)) != STORE_OK)
			goto out;
		len = v.mv_size;
		free(rec);
		rec = store_xcalloc(1, len);
		memcpy(rec, v.mv_data, len);
		if ((rc = mdb_cursor_del(cur, 0)) != 0) {
			err = store_mdb_err(rc);
			goto out;
		}
		m.uid = uid;
		m.modseq = ++nb.highestmodseq;
		msg_rec_encode_fixed(&m, prefix_len, rec);
		msg_key(nk, userid, nb.id, uid);
		err = store_put(txn, st->dbi[DBI_MESSAGES], nk, sizeof(nk), rec, len,
				MDB_NOOVERWRITE);
		if (err != STORE_OK) {
			err = err == STORE_EXISTS ? STORE_IO : err;
			goto out;
		}
		if ((err = store_vanish(st, txn, userid, in->id, uid, exp)) != STORE_OK)
			goto out;
		nb.messages++;
		nb.bytes += m.size;
		if (!(m.flags & STORE_F_SEEN))
			nb.unseen++;
		const struct store_part add = { rec, len };
		be64_put(pl, exp);
		memcpy(pl + 8, m.hash, STORE_BODY_HASH_LEN);
		const struct store_part gone = { pl, sizeof(pl) };
		if ((err = store_changelog_append(st, txn, STORE_CH_MSG_ADD, userid, nb.id, uid,
						  &add, 1)) != STORE_OK ||
		    (err = store_changelog_append(st, txn, STORE_CH_MSG_EXPUNGE, userid, in->id,
						  uid, &gone, 1)) != STORE_OK)
			goto out;
	}
	if (nb.messages > 0)
		in->highestmodseq = exp;
	in->messages = 0;
	in->bytes = 0;
	in->unseen = 0;
	if ((err = store_mbox_put(st, txn, userid, in, 0)) != STORE_OK ||
	    (err = store_mbox_put(st, txn, userid, &nb, 0)) != STORE_OK)
		goto out;
	store_touch(op, userid, in->id);
	store_touch(op, userid, nb.id);
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	free(rec);
	free(kw);
	return err;
}

int store_op_mbox_rename(struct store *st, MDB_txn *txn, struct store_op *op)
{
	uint32_t userid = op->u.mbox.userid;
	const char *oldname = op->u.mbox.name, *newname = op->u.mbox.newname;
	size_t olen = strlen(oldname);
	struct store_mailbox old, taken;
	int err;

	if (strcmp(newname, "INBOX") == 0)
		return STORE_EXISTS;
	if ((err = store_load_mbox_name(st, txn, userid, oldname, &old)) != STORE_OK)
		return err;
	err = store_load_mbox_name(st, txn, userid, newname, &taken);
	if (err != STORE_NOTFOUND)
		return err == STORE_OK ? STORE_EXISTS : err;
	if (strcmp(oldname, "INBOX") == 0)
		return rename_inbox(st, txn, op, userid, &old, newname);
	if (strncmp(newname, oldname, olen) == 0 && newname[olen] == '/')
		return STORE_INVAL;	/* under itself */
	if ((err = rename_tree(st, txn, op, userid, &old, newname)) != STORE_OK)
		return err;
	return store_mbox_create_parents(st, txn, op, userid, newname);
}
