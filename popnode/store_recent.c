/*
 * store_recent.c - the IMAP \Recent claim mark of a mailbox (store.h
 * "IMAP \Recent claim marks"; docs/store.md): meta
 * "recent/" userid BE32 mboxid BE32 -> BE32, the highest UID whose
 * \Recent a session of this POP has claimed.
 *
 * It is this POP's session state, so it is written without a changelog
 * record and is in no snapshot.  store_mbox_remove (every way a mailbox
 * goes) and store_user_remove take it away with its mailbox or user; the
 * key starts with the user id after the prefix so a user's marks go in
 * one prefix delete.
 */
#include <stdlib.h>
#include <string.h>

#include "store_private.h"

static void recent_key(uint8_t buf[RECENT_KEY_LEN], uint32_t userid, uint32_t mboxid)
{
	size_t plen = sizeof(META_RECENT_PREFIX) - 1;

	memcpy(buf, META_RECENT_PREFIX, plen);
	be32_put(buf + plen, userid);
	be32_put(buf + plen + 4, mboxid);
}

/* The mark in txn, 0 when absent. */
static int recent_load(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
		       uint32_t *uid_r)
{
	uint8_t kb[RECENT_KEY_LEN];
	uint64_t v;
	int err;

	*uid_r = 0;
	recent_key(kb, userid, mboxid);
	if ((err = store_meta_u64_or0(st, txn, (const char *)kb, sizeof(kb), &v)) != STORE_OK)
		return err;
	if (v > UINT32_MAX)
		return STORE_IO;	/* we write 4 bytes only */
	*uid_r = (uint32_t)v;
	return STORE_OK;
}

int store_recent_get(struct store *st, uint32_t userid, uint32_t mboxid, uint32_t *uid_r)
{
	MDB_txn *txn;
	int err;

	*uid_r = 0;
	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	err = recent_load(st, txn, userid, mboxid, uid_r);
	mdb_txn_abort(txn);
	if (err != STORE_OK)
		*uid_r = 0;
	return err;
}

struct recent_set {
	uint32_t userid, mboxid, uid;
	store_done_cb *cb;
	void *arg;
};

static int op_recent_set(struct store *st, MDB_txn *txn, struct store_op *op)
{
	const struct recent_set *r = op->u.fn.ctx;
	uint8_t kb[RECENT_KEY_LEN];
	struct store_mailbox mb;
	uint32_t cur;
	int err;

	/* a mailbox deleted meanwhile gets no mark (nothing would remove it) */
	if ((err = store_load_mbox_id(st, txn, r->userid, r->mboxid, &mb)) != STORE_OK)
		return err;
	if ((err = recent_load(st, txn, r->userid, r->mboxid, &cur)) != STORE_OK)
		return err;
	if (r->uid <= cur)
		return STORE_OK;
	recent_key(kb, r->userid, r->mboxid);
	return store_meta_put(st, txn, (const char *)kb, sizeof(kb), r->uid, 4);
}

static void recent_set_done(int err, void *arg)
{
	struct recent_set *r = arg;
	store_done_cb *cb = r->cb;
	void *cb_arg = r->arg;

	free(r);
	if (cb != NULL)
		cb(err, cb_arg);
}

void store_recent_set(struct store *st, uint32_t userid, uint32_t mboxid, uint32_t uid,
		      store_done_cb *cb, void *arg)
{
	struct recent_set *r = store_xcalloc(1, sizeof(*r));

	r->userid = userid;
	r->mboxid = mboxid;
	r->uid = uid;
	r->cb = cb;
	r->arg = arg;
	store_submit_fn(st, op_recent_set, r, recent_set_done, STORE_OK);
}

/* ---- removal, inside the ops that remove mailboxes and users ---------------- */

int store_recent_del(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid)
{
	uint8_t kb[RECENT_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb };
	int rc;

	recent_key(kb, userid, mboxid);
	rc = mdb_del(txn, st->dbi[DBI_META], &k, NULL);
	return rc == MDB_NOTFOUND ? STORE_OK : store_mdb_err(rc);
}

int store_recent_del_user(struct store *st, MDB_txn *txn, uint32_t userid)
{
	uint8_t pk[RECENT_KEY_LEN];

	recent_key(pk, userid, 0);
	return store_del_prefix(st, txn, st->dbi[DBI_META], pk, RECENT_KEY_LEN - 4, NULL, NULL);
}
