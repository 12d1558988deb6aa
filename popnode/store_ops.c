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
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_private.h"

struct part {
	const void *p;
	size_t len;
};

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

static int put(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
	       const void *val, size_t vlen, unsigned flags)
{
	MDB_val k = { .mv_size = klen, .mv_data = (void *)key };
	MDB_val v = { .mv_size = vlen, .mv_data = (void *)val };

	return store_mdb_err(mdb_put(txn, dbi, &k, &v, flags));
}

/* Delete; a missing key is corruption here, since we just read it. */
static int del(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen)
{
	MDB_val k = { .mv_size = klen, .mv_data = (void *)key };
	int rc = mdb_del(txn, dbi, &k, NULL);

	return rc == MDB_NOTFOUND ? STORE_IO : store_mdb_err(rc);
}

static int meta_put(struct store *st, MDB_txn *txn, const char *key, size_t klen,
		    uint64_t v, size_t width)
{
	uint8_t b[8];

	if (width == 4)
		be32_put(b, (uint32_t)v);
	else
		be64_put(b, v);
	return put(txn, st->dbi[DBI_META], key, klen, b, width, 0);
}

/* Hand out the next id from a 32-bit meta counter (ids start at 1). */
static int next_id(struct store *st, MDB_txn *txn, const char *key, uint32_t *id_r)
{
	uint64_t next;
	int err = store_meta_get_u64(st, txn, key, strlen(key), &next);

	if (err == STORE_NOTFOUND)
		next = 1;
	else if (err != STORE_OK)
		return err;
	if (next == 0 || next >= UINT32_MAX)
		return STORE_FULL;	/* id space exhausted */
	*id_r = (uint32_t)next;
	return meta_put(st, txn, key, strlen(key), next + 1, 4);
}

/* UIDVALIDITY: the current time, but always above the last one given. */
static int next_uidvalidity(struct store *st, MDB_txn *txn, uint32_t *v_r)
{
	uint64_t last, now = (uint64_t)time(NULL), v;
	int err = store_meta_get_u64(st, txn, META_UIDVALIDITY, strlen(META_UIDVALIDITY), &last);

	if (err == STORE_NOTFOUND)
		last = 0;
	else if (err != STORE_OK)
		return err;
	v = now > last ? now : last + 1;
	if (v > UINT32_MAX)
		return STORE_FULL;
	*v_r = (uint32_t)v;
	return meta_put(st, txn, META_UIDVALIDITY, strlen(META_UIDVALIDITY), v, 4);
}

static int changelog_append(struct store *st, MDB_txn *txn, enum store_change_type type,
			    uint32_t userid, uint32_t mboxid, uint32_t uid,
			    const struct part *parts, size_t n_parts)
{
	char mk[META_KEY_MAX];
	size_t mklen = meta_seq_key(mk, st->origin, st->origin_len);
	uint8_t kb[CHANGE_KEY_MAX];
	MDB_val k = { .mv_data = kb }, v;
	uint64_t seq;
	size_t len = CHANGE_REC_FIXED, i;
	uint8_t *p;
	int err, rc;

	err = store_meta_get_u64(st, txn, mk, mklen, &seq);
	if (err == STORE_NOTFOUND)
		seq = 0;
	else if (err != STORE_OK)
		return err;
	seq++;
	for (i = 0; i < n_parts; i++)
		len += parts[i].len;
	k.mv_size = change_key(kb, st->origin, st->origin_len, seq);
	v.mv_size = len;
	rc = mdb_put(txn, st->dbi[DBI_CHANGELOG], &k, &v, MDB_NOOVERWRITE | MDB_RESERVE);
	if (rc != 0)
		return rc == MDB_KEYEXIST ? STORE_IO : store_mdb_err(rc);
	p = v.mv_data;
	p[0] = STORE_REC_V1;
	p[1] = (uint8_t)type;
	be32_put(p + 2, userid);
	be32_put(p + 6, mboxid);
	be32_put(p + 10, uid);
	be64_put(p + 14, (uint64_t)time(NULL));
	p += CHANGE_REC_FIXED;
	for (i = 0; i < n_parts; i++) {
		if (parts[i].len > 0)
			memcpy(p, parts[i].p, parts[i].len);
		p += parts[i].len;
	}
	return meta_put(st, txn, mk, mklen, seq, 8);
}

static int user_put(struct store *st, MDB_txn *txn, const struct store_user *u,
		    enum store_change_type log_type)
{
	uint8_t rec[USER_REC_MAX];
	size_t len = user_rec_encode(u, rec), name_len = strlen(u->name);
	uint8_t nl = (uint8_t)name_len;
	int err = put(txn, st->dbi[DBI_USERS], u->name, name_len, rec, len, 0);

	if (err != STORE_OK || log_type == 0)
		return err;
	const struct part parts[] = { { &nl, 1 }, { u->name, name_len }, { rec, len } };
	return changelog_append(st, txn, log_type, u->id, 0, 0, parts, 3);
}

static int mbox_put(struct store *st, MDB_txn *txn, uint32_t userid,
		    const struct store_mailbox *mb, bool log_add)
{
	uint8_t kb[MBOX_KEY_LEN], rec[MBOX_REC_MAX];
	size_t len = mbox_rec_encode(mb, rec);
	int err;

	mbox_key(kb, userid, mb->id);
	err = put(txn, st->dbi[DBI_MAILBOXES], kb, sizeof(kb), rec, len, 0);
	if (err != STORE_OK || !log_add)
		return err;
	const struct part part = { rec, len };
	return changelog_append(st, txn, STORE_CH_MAILBOX_ADD, userid, mb->id, 0, &part, 1);
}

static int mbox_create(struct store *st, MDB_txn *txn, uint32_t userid, const char *name,
		       uint32_t special_use)
{
	struct store_mailbox mb = { .uidnext = 1, .special_use = special_use, .subscribed = true };
	uint8_t nk[MBOXNAME_KEY_MAX], idb[4];
	size_t nklen;
	int err;

	if (strlen(name) >= sizeof(mb.name))
		return STORE_INVAL;
	strcpy(mb.name, name);
	if ((err = next_id(st, txn, META_NEXT_MBOXID, &mb.id)) != STORE_OK ||
	    (err = next_uidvalidity(st, txn, &mb.uidvalidity)) != STORE_OK)
		return err;
	nklen = mboxname_key(nk, userid, name);
	if (nklen == 0)
		return STORE_IO;
	be32_put(idb, mb.id);
	err = put(txn, st->dbi[DBI_MBOXNAMES], nk, nklen, idb, 4, MDB_NOOVERWRITE);
	if (err != STORE_OK)
		return err;
	return mbox_put(st, txn, userid, &mb, true);
}

/* ---- bodies --------------------------------------------------------------- */

static int body_ref(struct store *st, MDB_txn *txn, const uint8_t hash[STORE_BODY_HASH_LEN],
		    const char *body, size_t body_len)
{
	MDB_val k = { .mv_size = STORE_BODY_HASH_LEN, .mv_data = (void *)hash }, v;
	uint8_t rec[BODYREF_REC_LEN];
	uint64_t refs = 0;
	int rc = mdb_get(txn, st->dbi[DBI_BODYREFS], &k, &v);

	if (rc == 0) {
		const uint8_t *p = v.mv_data;

		if (v.mv_size != BODYREF_REC_LEN || p[0] != STORE_REC_V1 ||
		    be64_get(p + 9) != body_len)
			return STORE_IO;
		refs = be64_get(p + 1);
	} else if (rc == MDB_NOTFOUND) {
		v.mv_size = 1 + body_len;
		rc = mdb_put(txn, st->dbi[DBI_BODIES], &k, &v, MDB_RESERVE);
		if (rc != 0)
			return store_mdb_err(rc);
		((uint8_t *)v.mv_data)[0] = STORE_REC_V1;
		if (body_len > 0)
			memcpy((uint8_t *)v.mv_data + 1, body, body_len);
	} else {
		return store_mdb_err(rc);
	}
	rec[0] = STORE_REC_V1;
	be64_put(rec + 1, refs + 1);
	be64_put(rec + 9, body_len);
	return put(txn, st->dbi[DBI_BODYREFS], hash, STORE_BODY_HASH_LEN, rec, sizeof(rec), 0);
}

static int body_unref(struct store *st, MDB_txn *txn, const uint8_t hash[STORE_BODY_HASH_LEN])
{
	MDB_val k = { .mv_size = STORE_BODY_HASH_LEN, .mv_data = (void *)hash }, v;
	uint8_t rec[BODYREF_REC_LEN];
	const uint8_t *p;
	uint64_t refs;
	int rc = mdb_get(txn, st->dbi[DBI_BODYREFS], &k, &v), err;

	if (rc != 0)
		return rc == MDB_NOTFOUND ? STORE_IO : store_mdb_err(rc);
	p = v.mv_data;
	if (v.mv_size != BODYREF_REC_LEN || p[0] != STORE_REC_V1)
		return STORE_IO;
	refs = be64_get(p + 1);
	if (refs <= 1) {
		if ((err = del(txn, st->dbi[DBI_BODYREFS], hash, STORE_BODY_HASH_LEN)) != STORE_OK)
			return err;
		return del(txn, st->dbi[DBI_BODIES], hash, STORE_BODY_HASH_LEN);
	}
	memcpy(rec, p, sizeof(rec));
	be64_put(rec + 1, refs - 1);
	return put(txn, st->dbi[DBI_BODYREFS], hash, STORE_BODY_HASH_LEN, rec, sizeof(rec), 0);
}

/* ---- users ---------------------------------------------------------------- */

int store_op_user_add(struct store *st, MDB_txn *txn, struct store_op *op)
{
	struct store_user u = op->u.user, old;
	uint8_t idk[USERID_KEY_LEN];
	size_t i;
	int err;

	err = store_load_user(st, txn, u.name, &old);
	if (err != STORE_NOTFOUND)
		return err == STORE_OK ? STORE_EXISTS : err;
	if ((err = next_id(st, txn, META_NEXT_USERID, &u.id)) != STORE_OK)
		return err;
	u.used = 0;
	u.messages = 0;
	u.created = (int64_t)time(NULL);
	userid_key(idk, u.id);
	err = put(txn, st->dbi[DBI_USERIDS], idk, sizeof(idk), u.name, strlen(u.name),
		  MDB_NOOVERWRITE);
	if (err != STORE_OK)
		return err == STORE_EXISTS ? STORE_IO : err;
	if ((err = user_put(st, txn, &u, STORE_CH_USER_ADD)) != STORE_OK)
		return err;
	for (i = 0; i < sizeof(default_mailboxes) / sizeof(default_mailboxes[0]); i++) {
		err = mbox_create(st, txn, u.id, default_mailboxes[i].name,
				  default_mailboxes[i].special_use);
		if (err != STORE_OK)
			return err == STORE_EXISTS ? STORE_IO : err;
	}
	return STORE_OK;
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
	return user_put(st, txn, &u, STORE_CH_USER_UPDATE);
}

/* Delete every key of dbi that starts with prefix, calling each() on the
 * record first.  Re-seeks after every delete, so no cursor state survives
 * a write. */
static int del_prefix(struct store *st, MDB_txn *txn, MDB_dbi dbi,
		      const uint8_t *prefix, size_t plen,
		      int (*each)(struct store *st, MDB_txn *txn, const MDB_val *v))
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, err = STORE_OK;

	rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc != 0)
		return store_mdb_err(rc);
	for (;;) {
		k.mv_size = plen;
		k.mv_data = (void *)prefix;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND)
			break;
		if (rc != 0) {
			err = store_mdb_err(rc);
			break;
		}
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		if (each != NULL && (err = each(st, txn, &v)) != STORE_OK)
			break;
		rc = mdb_cursor_del(cur, 0);
		if (rc != 0) {
			err = store_mdb_err(rc);
			break;
		}
	}
	mdb_cursor_close(cur);
	return err;
}

static int drop_msg_body(struct store *st, MDB_txn *txn, const MDB_val *v)
{
	struct store_msg m;
	int err = msg_rec_decode(v, &m, NULL, NULL);

	if (err != STORE_OK)
		return err;
	return body_unref(st, txn, m.hash);
}

int store_op_user_del(struct store *st, MDB_txn *txn, struct store_op *op)
{
	struct store_user u;
	uint8_t pk[4];
	size_t name_len = strlen(op->u.name);
	int err = store_load_user(st, txn, op->u.name, &u);

	if (err != STORE_OK)
		return err;
	be32_put(pk, u.id);
	if ((err = del_prefix(st, txn, st->dbi[DBI_MESSAGES], pk, 4, drop_msg_body)) != STORE_OK ||
	    (err = del_prefix(st, txn, st->dbi[DBI_MAILBOXES], pk, 4, NULL)) != STORE_OK ||
	    (err = del_prefix(st, txn, st->dbi[DBI_MBOXNAMES], pk, 4, NULL)) != STORE_OK ||
	    (err = del(txn, st->dbi[DBI_USERS], op->u.name, name_len)) != STORE_OK)
		return err;
	err = del(txn, st->dbi[DBI_USERIDS], pk, 4);
	if (err != STORE_OK)
		return err;
	const struct part part = { op->u.name, name_len };
	return changelog_append(st, txn, STORE_CH_USER_DEL, u.id, 0, 0, &part, 1);
}

/* ---- messages ------------------------------------------------------------- */

int store_op_expunge(struct store *st, MDB_txn *txn, struct store_op *op)
{
	uint32_t userid = op->u.expunge.userid, mboxid = op->u.expunge.mboxid;
	struct store_mailbox mb;
	struct store_user u;
	uint8_t kb[MSG_KEY_LEN], ub[USERID_KEY_LEN], pl[8 + STORE_BODY_HASH_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	uint64_t modseq;
	size_t i, removed = 0;
	int err, rc;

	if ((err = store_load_mbox_id(st, txn, userid, mboxid, &mb)) != STORE_OK)
		return err;
	userid_key(ub, userid);
	k.mv_data = ub;
	k.mv_size = sizeof(ub);
	rc = mdb_get(txn, st->dbi[DBI_USERIDS], &k, &v);
	if (rc != 0 || v.mv_size == 0 || v.mv_size >= STORE_NAME_MAX)
		return rc == 0 ? STORE_IO : store_mdb_err(rc);
	{
		char name[STORE_NAME_MAX];

		memcpy(name, v.mv_data, v.mv_size);
		name[v.mv_size] = '\0';
		if ((err = store_load_user(st, txn, name, &u)) != STORE_OK)
			return err == STORE_NOTFOUND ? STORE_IO : err;
	}
	modseq = mb.highestmodseq + 1;
	k.mv_data = kb;
	k.mv_size = sizeof(kb);
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
		if ((err = del(txn, st->dbi[DBI_MESSAGES], kb, sizeof(kb))) != STORE_OK ||
		    (err = body_unref(st, txn, m.hash)) != STORE_OK)
			return err;
		mb.messages = mb.messages > 0 ? mb.messages - 1 : 0;
		mb.bytes = mb.bytes > m.size ? mb.bytes - m.size : 0;
		u.messages = u.messages > 0 ? u.messages - 1 : 0;
		u.used = u.used > m.size ? u.used - m.size : 0;
		be64_put(pl, modseq);
		memcpy(pl + 8, m.hash, STORE_BODY_HASH_LEN);
		const struct part part = { pl, sizeof(pl) };
		err = changelog_append(st, txn, STORE_CH_MSG_EXPUNGE, userid, mboxid, uid, &part, 1);
		if (err != STORE_OK)
			return err;
		removed++;
	}
	if (removed == 0)
		return STORE_OK;
	mb.highestmodseq = modseq;
	if ((err = mbox_put(st, txn, userid, &mb, false)) != STORE_OK)
		return err;
	return user_put(st, txn, &u, 0);
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

	if ((err = body_ref(st, txn, hash, body, body_len)) != STORE_OK)
		return err;
	mb.messages++;
	mb.bytes += m.size;
	if ((err = mbox_put(st, txn, u.id, &mb, false)) != STORE_OK)
		return err;
	u.messages++;
	u.used += m.size;
	if ((err = user_put(st, txn, &u, 0)) != STORE_OK)
		return err;

	/* The changelog payload is the message record, prefix included. */
	uint8_t fixed[MSG_REC_FIXED];
	msg_rec_encode_fixed(&m, r->prefix_len, fixed);
	const struct part parts[] = { { fixed, sizeof(fixed) }, { r->prefix, r->prefix_len } };
	err = changelog_append(st, txn, STORE_CH_MSG_ADD, u.id, mb.id, m.uid, parts, 2);
	if (err != STORE_OK)
		return err;
	r->uid = m.uid;
	return STORE_OK;
}
