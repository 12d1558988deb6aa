/*
 * store_txn.c - the primitives every write op is built from, all working
 * inside the op's nested LMDB transaction: puts and deletes, meta
 * counters, the changelog, user and mailbox records, body references
 * (with the per-body metadata blob), tombstones, the keyword table, and
 * the op's list of touched mailboxes for the change observer.
 *
 * Nothing here commits; an error return makes the caller (ultimately
 * store_write.c's nested()) abort the op's transaction, which undoes all
 * of it, changelog sequence included.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "store_private.h"

int store_put(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
	      const void *val, size_t vlen, unsigned flags)
{
	MDB_val k = { .mv_size = klen, .mv_data = (void *)key };
	MDB_val v = { .mv_size = vlen, .mv_data = (void *)val };

	return store_mdb_err(mdb_put(txn, dbi, &k, &v, flags));
}

int store_del(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen)
{
	MDB_val k = { .mv_size = klen, .mv_data = (void *)key };
	int rc = mdb_del(txn, dbi, &k, NULL);

	return rc == MDB_NOTFOUND ? STORE_IO : store_mdb_err(rc);
}

int store_meta_put(struct store *st, MDB_txn *txn, const char *key, size_t klen,
		   uint64_t v, size_t width)
{
	uint8_t b[8];

	if (width == 4)
		be32_put(b, (uint32_t)v);
	else
		be64_put(b, v);
	return store_put(txn, st->dbi[DBI_META], key, klen, b, width, 0);
}

/* Hand out the next id from a 32-bit meta counter (ids start at 1). */
int store_next_id(struct store *st, MDB_txn *txn, const char *key, uint32_t *id_r)
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
	return store_meta_put(st, txn, key, strlen(key), next + 1, 4);
}

/* UIDVALIDITY: the current time, but always above the last one given. */
int store_next_uidvalidity(struct store *st, MDB_txn *txn, uint32_t *v_r)
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
	return store_meta_put(st, txn, META_UIDVALIDITY, strlen(META_UIDVALIDITY), v, 4);
}

/* Write record seq of origin (NOOVERWRITE) and make seq origin's last. */
static int changelog_write(struct store *st, MDB_txn *txn, const char *origin, size_t origin_len,
			   uint64_t seq, enum store_change_type type, uint32_t userid,
			   uint32_t mboxid, uint32_t uid, int64_t when,
			   const struct store_part *parts, size_t n_parts)
{
	char mk[META_KEY_MAX];
	size_t mklen = meta_seq_key(mk, origin, origin_len);
	uint8_t kb[CHANGE_KEY_MAX];
	MDB_val k = { .mv_data = kb }, v;
	size_t len = CHANGE_REC_FIXED, i;
	uint8_t *p;
	int rc;

	for (i = 0; i < n_parts; i++)
		len += parts[i].len;
	k.mv_size = change_key(kb, origin, origin_len, seq);
	v.mv_size = len;
	rc = mdb_put(txn, st->dbi[DBI_CHANGELOG], &k, &v, MDB_NOOVERWRITE | MDB_RESERVE);
	if (rc != 0)
		return store_mdb_err(rc);
	p = v.mv_data;
	p[0] = STORE_REC_V1;
	p[1] = (uint8_t)type;
	be32_put(p + 2, userid);
	be32_put(p + 6, mboxid);
	be32_put(p + 10, uid);
	be64_put(p + 14, (uint64_t)when);
	p += CHANGE_REC_FIXED;
	for (i = 0; i < n_parts; i++) {
		if (parts[i].len > 0)
			memcpy(p, parts[i].p, parts[i].len);
		p += parts[i].len;
	}
	return store_meta_put(st, txn, mk, mklen, seq, 8);
}

int store_changelog_append(struct store *st, MDB_txn *txn, enum store_change_type type,
			   uint32_t userid, uint32_t mboxid, uint32_t uid,
			   const struct store_part *parts, size_t n_parts)
{
	char mk[META_KEY_MAX];
	size_t mklen = meta_seq_key(mk, st->origin, st->origin_len);
	uint64_t seq;
	int err = store_meta_get_u64(st, txn, mk, mklen, &seq);

	if (err == STORE_NOTFOUND)
		seq = 0;
	else if (err != STORE_OK)
		return err;
	err = changelog_write(st, txn, st->origin, st->origin_len, seq + 1, type, userid, mboxid,
			      uid, (int64_t)time(NULL), parts, n_parts);
	return err == STORE_EXISTS ? STORE_IO : err;
}

int store_changelog_put(struct store *st, MDB_txn *txn, const char *origin, size_t origin_len,
			const struct store_change *c)
{
	const struct store_part part = { c->data, c->data_len };

	return changelog_write(st, txn, origin, origin_len, c->seq, c->type, c->userid,
			       c->mboxid, c->uid, c->time, &part, 1);
}

int store_user_put(struct store *st, MDB_txn *txn, const struct store_user *u,
		   enum store_change_type log_type)
{
	uint8_t rec[USER_REC_MAX];
	size_t len = user_rec_encode(u, rec), name_len = strlen(u->name);
	uint8_t nl = (uint8_t)name_len;
	int err = store_put(txn, st->dbi[DBI_USERS], u->name, name_len, rec, len, 0);

	if (err != STORE_OK || log_type == 0)
		return err;
	const struct store_part parts[] = { { &nl, 1 }, { u->name, name_len }, { rec, len } };
	return store_changelog_append(st, txn, log_type, u->id, 0, 0, parts, 3);
}

int store_mbox_put(struct store *st, MDB_txn *txn, uint32_t userid,
		   const struct store_mailbox *mb, enum store_change_type log_type)
{
	uint8_t kb[MBOX_KEY_LEN], rec[MBOX_REC_MAX];
	size_t len = mbox_rec_encode(mb, rec);
	int err;

	mbox_key(kb, userid, mb->id);
	err = store_put(txn, st->dbi[DBI_MAILBOXES], kb, sizeof(kb), rec, len, 0);
	if (err != STORE_OK || log_type == 0)
		return err;
	const struct store_part part = { rec, len };
	return store_changelog_append(st, txn, log_type, userid, mb->id, 0, &part, 1);
}

int store_mbox_create(struct store *st, MDB_txn *txn, uint32_t userid, const char *name,
		      uint32_t special_use, struct store_mailbox *mb_r)
{
	return store_mbox_create_at(st, txn, userid, name, special_use, 1, mb_r);
}

int store_mbox_create_at(struct store *st, MDB_txn *txn, uint32_t userid, const char *name,
			 uint32_t special_use, uint32_t uidnext, struct store_mailbox *mb_r)
{
	struct store_mailbox mb = { .uidnext = uidnext, .special_use = special_use };
	uint8_t nk[MBOXNAME_KEY_MAX], idb[4];
	size_t nklen;
	int err;

	if (strlen(name) >= sizeof(mb.name))
		return STORE_INVAL;
	strcpy(mb.name, name);
	if ((err = store_next_id(st, txn, META_NEXT_MBOXID, &mb.id)) != STORE_OK ||
	    (err = store_next_uidvalidity(st, txn, &mb.uidvalidity)) != STORE_OK)
		return err;
	nklen = mboxname_key(nk, userid, name);
	if (nklen == 0)
		return STORE_IO;
	be32_put(idb, mb.id);
	err = store_put(txn, st->dbi[DBI_MBOXNAMES], nk, nklen, idb, 4, MDB_NOOVERWRITE);
	if (err != STORE_OK)
		return err;
	if ((err = store_mbox_put(st, txn, userid, &mb, STORE_CH_MAILBOX_ADD)) != STORE_OK)
		return err;
	if (mb_r != NULL)
		*mb_r = mb;
	return STORE_OK;
}

int store_mbox_create_parents(struct store *st, MDB_txn *txn, struct store_op *op,
			      uint32_t userid, const char *name)
{
	char parent[STORE_MBOX_MAX];
	struct store_mailbox mb;
	const char *slash;
	int err;

	for (slash = strchr(name, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
		size_t len = (size_t)(slash - name);

		if (len >= sizeof(parent))
			return STORE_INVAL;
		memcpy(parent, name, len);
		parent[len] = '\0';
		err = store_load_mbox_name(st, txn, userid, parent, &mb);
		if (err == STORE_OK)
			continue;
		if (err != STORE_NOTFOUND)
			return err;
		/* "inbox/x": its superior is INBOX, which always exists */
		if ((err = store_mbox_create(st, txn, userid, store_mbox_canon(parent), 0,
					     &mb)) != STORE_OK)
			return err == STORE_EXISTS ? STORE_IO : err;
		store_touch(op, userid, mb.id);
	}
	return STORE_OK;
}

/* ---- bodies --------------------------------------------------------------- */

int store_body_ref(struct store *st, MDB_txn *txn, const uint8_t hash[STORE_BODY_HASH_LEN],
		   const char *body, size_t body_len, const void *meta, size_t meta_len)
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
	} else if (rc == MDB_NOTFOUND && body != NULL) {
		v.mv_size = 1 + body_len;
		rc = mdb_put(txn, st->dbi[DBI_BODIES], &k, &v, MDB_RESERVE);
		if (rc != 0)
			return store_mdb_err(rc);
		((uint8_t *)v.mv_data)[0] = STORE_REC_V1;
		if (body_len > 0)
			memcpy((uint8_t *)v.mv_data + 1, body, body_len);
	} else {
		return rc == MDB_NOTFOUND ? STORE_IO : store_mdb_err(rc);
	}
	if (meta_len > 0) {
		/* The blob is a function of the body: the first one stays. */
		rc = mdb_get(txn, st->dbi[DBI_BODYMETA], &k, &v);
		if (rc == MDB_NOTFOUND) {
			v.mv_size = 1 + meta_len;
			rc = mdb_put(txn, st->dbi[DBI_BODYMETA], &k, &v, MDB_RESERVE);
			if (rc != 0)
				return store_mdb_err(rc);
			((uint8_t *)v.mv_data)[0] = STORE_REC_V1;
			memcpy((uint8_t *)v.mv_data + 1, meta, meta_len);
		} else if (rc != 0) {
			return store_mdb_err(rc);
		}
	}
	rec[0] = STORE_REC_V1;
	be64_put(rec + 1, refs + 1);
	be64_put(rec + 9, body_len);
	return store_put(txn, st->dbi[DBI_BODYREFS], hash, STORE_BODY_HASH_LEN, rec, sizeof(rec), 0);
}

int store_body_unref(struct store *st, MDB_txn *txn, const uint8_t hash[STORE_BODY_HASH_LEN])
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
		if ((err = store_del(txn, st->dbi[DBI_BODYREFS], hash, STORE_BODY_HASH_LEN)) !=
		    STORE_OK ||
		    (err = store_del(txn, st->dbi[DBI_BODIES], hash, STORE_BODY_HASH_LEN)) != STORE_OK)
			return err;
		rc = mdb_del(txn, st->dbi[DBI_BODYMETA], &k, NULL);
		return rc == MDB_NOTFOUND ? STORE_OK : store_mdb_err(rc);
	}
	memcpy(rec, p, sizeof(rec));
	be64_put(rec + 1, refs - 1);
	return store_put(txn, st->dbi[DBI_BODYREFS], hash, STORE_BODY_HASH_LEN, rec, sizeof(rec), 0);
}

int store_scan_prefix(struct store *st, MDB_txn *txn, MDB_dbi dbi, const uint8_t *start,
		      size_t start_len, size_t plen,
		      int (*each)(const MDB_val *k, const MDB_val *v, void *ctx), void *ctx)
{
	MDB_cursor *cur;
	MDB_val k = { .mv_size = start_len, .mv_data = (void *)start }, v;
	MDB_cursor_op how = MDB_SET_RANGE;
	int rc, err = STORE_OK;

	(void)st;
	if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return store_mdb_err(rc);
	while ((rc = mdb_cursor_get(cur, &k, &v, how)) == 0) {
		how = MDB_NEXT;
		if (k.mv_size < plen || memcmp(k.mv_data, start, plen) != 0)
			break;
		if ((err = each(&k, &v, ctx)) != STORE_OK)
			break;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		err = store_mdb_err(rc);
	mdb_cursor_close(cur);
	return err > 0 ? STORE_OK : err;
}

int store_del_prefix(struct store *st, MDB_txn *txn, MDB_dbi dbi,
		     const uint8_t *prefix, size_t plen,
		     int (*each)(struct store *st, MDB_txn *txn, const MDB_val *k,
				 const MDB_val *v, void *ctx),
		     void *ctx)
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
		if (each != NULL && (err = each(st, txn, &k, &v, ctx)) != STORE_OK)
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

int store_vanish(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
		 uint32_t uid, uint64_t modseq)
{
	uint8_t kb[MSG_KEY_LEN], rec[VANISHED_REC_LEN];

	msg_key(kb, userid, mboxid, uid);
	rec[0] = STORE_REC_V1;
	be64_put(rec + 1, modseq);
	return store_put(txn, st->dbi[DBI_VANISHED], kb, sizeof(kb), rec, sizeof(rec), 0);
}

/* ---- keywords ------------------------------------------------------------- */

int store_kw_find(const struct store_kwtable *t, const char *name)
{
	unsigned i;

	for (i = 0; i < t->n; i++) {
		if (strcasecmp(t->names[i], name) == 0)
			return (int)i;
	}
	return -1;
}

int store_kw_intern(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
		    struct store_kwtable *t, const char *name, unsigned *idx_r)
{
	int found = store_kw_find(t, name), err;
	uint8_t kb[KEYWORD_KEY_LEN], rec[1 + STORE_KEYWORD_MAX];
	size_t len = strlen(name);

	if (found >= 0) {
		*idx_r = (unsigned)found;
		return STORE_OK;
	}
	if (t->n >= STORE_KEYWORDS_MAX)
		return STORE_FULL;
	if (len == 0 || len > STORE_KEYWORD_MAX)
		return STORE_INVAL;
	keyword_key(kb, userid, mboxid, t->n);
	rec[0] = STORE_REC_V1;
	memcpy(rec + 1, name, len);
	err = store_put(txn, st->dbi[DBI_KEYWORDS], kb, sizeof(kb), rec, 1 + len, MDB_NOOVERWRITE);
	if (err != STORE_OK)
		return err == STORE_EXISTS ? STORE_IO : err;
	const struct store_part part = { name, len };
	err = store_changelog_append(st, txn, STORE_CH_KEYWORD_ADD, userid, mboxid, t->n, &part, 1);
	if (err != STORE_OK)
		return err;
	memcpy(t->names[t->n], name, len + 1);
	*idx_r = t->n++;
	return STORE_OK;
}

/* ---- bookkeeping ------------------------------------------------------------ */

void store_touch(struct store_op *op, uint32_t userid, uint32_t mboxid)
{
	size_t i;

	for (i = 0; i < op->n_touched; i++) {
		if (op->touched[i].userid == userid && op->touched[i].mboxid == mboxid)
			return;
	}
	if (op->n_touched == op->cap_touched) {
		size_t cap = op->cap_touched != 0 ? op->cap_touched * 2 : 4;
		struct store_touch *t = store_xcalloc(cap, sizeof(*t));

		if (op->n_touched > 0)
			memcpy(t, op->touched, op->n_touched * sizeof(*t));
		free(op->touched);
		op->touched = t;
		op->cap_touched = cap;
	}
	op->touched[op->n_touched].userid = userid;
	op->touched[op->n_touched].mboxid = mboxid;
	op->n_touched++;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

size_t store_uids_normalize(uint32_t *uids, size_t n)
{
	size_t i, out = 0;

	if (n == 0)
		return 0;
	qsort(uids, n, sizeof(*uids), cmp_u32);
	for (i = 0; i < n; i++) {
		if (out == 0 || uids[out - 1] != uids[i])
			uids[out++] = uids[i];
	}
	return out;
}
