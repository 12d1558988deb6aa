/*
 * store_read.c - the synchronous reads an IMAP session needs: mailboxes
 * by id and all of a user's, subscriptions, the keyword table, single
 * message records, windows of message bytes, the per-body metadata blob,
 * messages changed since a modseq and tombstones (VANISHED); and bodies
 * with their metadata by hash, for shipping changelog records to mirrors.
 *
 * Like store.c's reads, each runs in its own short read-only transaction
 * on the caller's thread and never waits for the writer.  A foreach
 * stops when its callback returns non-zero and returns that value.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_private.h"

int store_mailbox_get_by_id(struct store *st, uint32_t userid, uint32_t mboxid,
			    struct store_mailbox *mb_r)
{
	MDB_txn *txn;
	int err;

	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	err = store_load_mbox_id(st, txn, userid, mboxid, mb_r);
	if (err == STORE_OK)
		err = store_fill_subscribed(st, txn, userid, mb_r);
	mdb_txn_abort(txn);
	return err;
}

int store_mailbox_foreach(struct store *st, uint32_t userid,
			  int (*cb)(const struct store_mailbox *mb, void *arg), void *arg)
{
	struct store_mailbox mb;
	uint8_t pk[4];
	MDB_val k = { .mv_size = sizeof(pk), .mv_data = pk }, v;
	MDB_cursor_op how = MDB_SET_RANGE;
	MDB_cursor *cur;
	MDB_txn *txn;
	int err, rc;

	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	if (mdb_cursor_open(txn, st->dbi[DBI_MBOXNAMES], &cur) != 0) {
		mdb_txn_abort(txn);
		return STORE_IO;
	}
	be32_put(pk, userid);
	while ((rc = mdb_cursor_get(cur, &k, &v, how)) == 0) {
		how = MDB_NEXT;
		if (k.mv_size < 4 || memcmp(k.mv_data, pk, 4) != 0)
			break;
		if (v.mv_size != 4) {
			err = STORE_IO;
			break;
		}
		err = store_load_mbox_id(st, txn, userid, be32_get(v.mv_data), &mb);
		if (err == STORE_NOTFOUND)
			err = STORE_IO;	/* index points nowhere */
		if (err == STORE_OK)
			err = store_fill_subscribed(st, txn, userid, &mb);
		if (err != STORE_OK || (err = cb(&mb, arg)) != 0)
			break;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		err = STORE_IO;
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return err;
}

int store_subscription_foreach(struct store *st, uint32_t userid,
			       int (*cb)(const char *name, void *arg), void *arg)
{
	char name[STORE_MBOX_MAX];
	uint8_t pk[4];
	MDB_val k = { .mv_size = sizeof(pk), .mv_data = pk }, v;
	MDB_cursor_op how = MDB_SET_RANGE;
	MDB_cursor *cur;
	MDB_txn *txn;
	int err, rc;

	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	if (mdb_cursor_open(txn, st->dbi[DBI_SUBS], &cur) != 0) {
		mdb_txn_abort(txn);
		return STORE_IO;
	}
	be32_put(pk, userid);
	while ((rc = mdb_cursor_get(cur, &k, &v, how)) == 0) {
		const uint8_t *p = v.mv_data;

		how = MDB_NEXT;
		if (k.mv_size < 4 || memcmp(k.mv_data, pk, 4) != 0)
			break;
		if (v.mv_size < 2 || v.mv_size > STORE_MBOX_MAX || p[0] != STORE_REC_V1) {
			err = STORE_IO;
			break;
		}
		memcpy(name, p + 1, v.mv_size - 1);
		name[v.mv_size - 1] = '\0';
		if ((err = cb(name, arg)) != 0)
			break;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		err = STORE_IO;
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return err;
}

int store_mailbox_keywords(struct store *st, uint32_t userid, uint32_t mboxid,
			   int (*cb)(unsigned idx, const char *name, void *arg), void *arg)
{
	struct store_kwtable *t = store_xcalloc(1, sizeof(*t));
	struct store_mailbox mb;
	MDB_txn *txn;
	unsigned i;
	int err;

	if ((err = store_rd_begin(st, &txn)) != STORE_OK) {
		free(t);
		return err;
	}
	err = store_load_mbox_id(st, txn, userid, mboxid, &mb);
	if (err == STORE_OK)
		err = store_kw_load(st, txn, userid, mboxid, t);
	mdb_txn_abort(txn);	/* t is a copy: no LMDB memory is used below */
	for (i = 0; err == STORE_OK && i < t->n; i++)
		err = cb(i, t->names[i], arg);
	free(t);
	return err;
}

/* ---- single messages ------------------------------------------------------- */

/* The record and the body bytes (without the version byte) of one message. */
static int load_msg_body(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
			 uint32_t uid, struct store_msg *m_r, const char **prefix_r,
			 size_t *prefix_len_r, const char **body_r, size_t *body_len_r)
{
	uint8_t kb[MSG_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v, bk, bv;
	int err, rc;

	msg_key(kb, userid, mboxid, uid);
	rc = mdb_get(txn, st->dbi[DBI_MESSAGES], &k, &v);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? STORE_NOTFOUND : STORE_IO;
	if ((err = msg_rec_decode(&v, m_r, prefix_r, prefix_len_r)) != STORE_OK)
		return err;
	m_r->uid = uid;
	if (body_r == NULL)
		return STORE_OK;
	bk.mv_size = STORE_BODY_HASH_LEN;
	bk.mv_data = m_r->hash;
	rc = mdb_get(txn, st->dbi[DBI_BODIES], &bk, &bv);
	if (rc != 0 || bv.mv_size < 1 || *(const uint8_t *)bv.mv_data != STORE_REC_V1 ||
	    (uint64_t)*prefix_len_r + (bv.mv_size - 1) != m_r->size) {
		log_err("store.body_missing", "userid=%u mboxid=%u uid=%u error=\"%s\"",
			userid, mboxid, uid, rc != 0 ? mdb_strerror(rc) : "bad record");
		return STORE_IO;
	}
	*body_r = (const char *)bv.mv_data + 1;
	*body_len_r = bv.mv_size - 1;
	return STORE_OK;
}

int store_msg_get(struct store *st, uint32_t userid, uint32_t mboxid, uint32_t uid,
		  struct store_msg *m_r)
{
	MDB_txn *txn;
	int err;

	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	err = load_msg_body(st, txn, userid, mboxid, uid, m_r, NULL, NULL, NULL, NULL);
	mdb_txn_abort(txn);
	return err;
}

int store_msg_read_range(struct store *st, uint32_t userid, uint32_t mboxid, uint32_t uid,
			 uint64_t off, void *buf, size_t len, size_t *got_r)
{
	struct store_msg m;
	const char *prefix, *body;
	size_t prefix_len, body_len, got = 0, n;
	MDB_txn *txn;
	int err;

	*got_r = 0;
	if (buf == NULL && len > 0)
		return STORE_INVAL;
	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	err = load_msg_body(st, txn, userid, mboxid, uid, &m, &prefix, &prefix_len, &body,
			    &body_len);
	if (err == STORE_OK) {
		if (off < prefix_len && len > 0) {
			n = prefix_len - (size_t)off < len ? prefix_len - (size_t)off : len;
			memcpy(buf, prefix + off, n);
			got = n;
			off += n;
		}
		if (off >= prefix_len && off - prefix_len < body_len && got < len) {
			size_t boff = (size_t)(off - prefix_len);

			n = body_len - boff < len - got ? body_len - boff : len - got;
			memcpy((char *)buf + got, body + boff, n);
			got += n;
		}
		*got_r = got;
	}
	mdb_txn_abort(txn);
	return err;
}

int store_msg_read_meta(struct store *st, uint32_t userid, uint32_t mboxid, uint32_t uid,
			int (*cb)(const void *meta, size_t len, void *arg), void *arg)
{
	struct store_msg m;
	MDB_val k, v;
	MDB_txn *txn;
	int err, rc;

	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	err = load_msg_body(st, txn, userid, mboxid, uid, &m, NULL, NULL, NULL, NULL);
	if (err != STORE_OK)
		goto out;
	k.mv_size = STORE_BODY_HASH_LEN;
	k.mv_data = m.hash;
	rc = mdb_get(txn, st->dbi[DBI_BODYMETA], &k, &v);
	if (rc == MDB_NOTFOUND) {
		err = cb(NULL, 0, arg);
	} else if (rc != 0 || v.mv_size < 1 || *(const uint8_t *)v.mv_data != STORE_REC_V1) {
		err = STORE_IO;
	} else {
		err = cb(v.mv_size > 1 ? (const uint8_t *)v.mv_data + 1 : NULL, v.mv_size - 1, arg);
	}
out:
	mdb_txn_abort(txn);
	return err;
}

/* ---- bodies by hash (what a replication shipper sends) ------------------------- */

bool store_has_body(struct store *st, const uint8_t hash[STORE_BODY_HASH_LEN])
{
	MDB_val k = { .mv_size = STORE_BODY_HASH_LEN, .mv_data = (void *)hash }, v;
	MDB_txn *txn;
	bool found;

	if (hash == NULL || store_rd_begin(st, &txn) != STORE_OK)
		return false;
	found = mdb_get(txn, st->dbi[DBI_BODIES], &k, &v) == 0;
	mdb_txn_abort(txn);
	return found;
}

int store_body_read(struct store *st, const uint8_t hash[STORE_BODY_HASH_LEN],
		    int (*cb)(const void *body, size_t body_len, const void *meta,
			      size_t meta_len, void *arg),
		    void *arg)
{
	MDB_val k = { .mv_size = STORE_BODY_HASH_LEN, .mv_data = (void *)hash }, bv, mv;
	const uint8_t *meta = NULL;
	size_t meta_len = 0;
	MDB_txn *txn;
	int err, rc;

	if (hash == NULL)
		return STORE_NOTFOUND;
	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	rc = mdb_get(txn, st->dbi[DBI_BODIES], &k, &bv);
	if (rc != 0 || bv.mv_size < 1 || *(const uint8_t *)bv.mv_data != STORE_REC_V1) {
		err = rc == MDB_NOTFOUND ? STORE_NOTFOUND : STORE_IO;
		goto out;
	}
	rc = mdb_get(txn, st->dbi[DBI_BODYMETA], &k, &mv);
	if (rc == 0 && (mv.mv_size < 1 || *(const uint8_t *)mv.mv_data != STORE_REC_V1)) {
		err = STORE_IO;
		goto out;
	} else if (rc == 0 && mv.mv_size > 1) {
		meta = (const uint8_t *)mv.mv_data + 1;
		meta_len = mv.mv_size - 1;
	} else if (rc != 0 && rc != MDB_NOTFOUND) {
		err = STORE_IO;
		goto out;
	}
	err = cb((const uint8_t *)bv.mv_data + 1, bv.mv_size - 1, meta, meta_len, arg);
out:
	mdb_txn_abort(txn);
	return err;
}

/* ---- changes since a modseq -------------------------------------------------- */

int store_msg_foreach_changed(struct store *st, uint32_t userid, uint32_t mboxid,
			      uint64_t since_modseq,
			      int (*cb)(const struct store_msg *m, void *arg), void *arg)
{
	struct store_mailbox mb;
	struct store_msg m;
	uint8_t kb[MSG_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	MDB_cursor_op how = MDB_SET_RANGE;
	MDB_cursor *cur;
	MDB_txn *txn;
	int err, rc;

	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	if ((err = store_load_mbox_id(st, txn, userid, mboxid, &mb)) != STORE_OK) {
		mdb_txn_abort(txn);
		return err;
	}
	if (mb.highestmodseq <= since_modseq || mdb_cursor_open(txn, st->dbi[DBI_MESSAGES],
								&cur) != 0) {
		mdb_txn_abort(txn);
		return mb.highestmodseq <= since_modseq ? STORE_OK : STORE_IO;
	}
	msg_key(kb, userid, mboxid, 0);
	while ((rc = mdb_cursor_get(cur, &k, &v, how)) == 0) {
		how = MDB_NEXT;
		if (k.mv_size != MSG_KEY_LEN || memcmp(k.mv_data, kb, 8) != 0)
			break;
		if ((err = msg_rec_decode(&v, &m, NULL, NULL)) != STORE_OK)
			break;
		if (m.modseq <= since_modseq)
			continue;
		m.uid = be32_get((const uint8_t *)k.mv_data + 8);
		if ((err = cb(&m, arg)) != 0)
			break;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		err = STORE_IO;
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return err;
}

int store_vanished_foreach(struct store *st, uint32_t userid, uint32_t mboxid,
			   uint64_t since_modseq, int (*cb)(uint32_t uid, void *arg), void *arg)
{
	struct store_mailbox mb;
	uint8_t kb[MSG_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	MDB_cursor_op how = MDB_SET_RANGE;
	MDB_cursor *cur;
	MDB_txn *txn;
	int err, rc;

	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	if ((err = store_load_mbox_id(st, txn, userid, mboxid, &mb)) != STORE_OK) {
		mdb_txn_abort(txn);
		return err;
	}
	if (mdb_cursor_open(txn, st->dbi[DBI_VANISHED], &cur) != 0) {
		mdb_txn_abort(txn);
		return STORE_IO;
	}
	msg_key(kb, userid, mboxid, 0);
	while ((rc = mdb_cursor_get(cur, &k, &v, how)) == 0) {
		const uint8_t *p = v.mv_data;

		how = MDB_NEXT;
		if (k.mv_size != MSG_KEY_LEN || memcmp(k.mv_data, kb, 8) != 0)
			break;
		if (v.mv_size != VANISHED_REC_LEN || p[0] != STORE_REC_V1) {
			err = STORE_IO;
			break;
		}
		if (be64_get(p + 1) <= since_modseq)
			continue;
		if ((err = cb(be32_get((const uint8_t *)k.mv_data + 8), arg)) != 0)
			break;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		err = STORE_IO;
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return err;
}
