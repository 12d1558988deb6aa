/*
 * store_snapshot.c - reading the whole store as a snapshot (store.h
 * "generation, trimming, snapshots"; docs/store.md): one read
 * transaction held open across calls (MDB_NOTLS), walked one
 * sub-database after the other with a cursor that stays open, so a
 * caller on the event loop reads it in bounded steps.
 *
 * Also the small helper that store_generation.c, store_trim.c and
 * store_snapshot_load.c share (store_snapshot_int.h).
 */
#include <stdlib.h>
#include <string.h>

#include "store_snapshot_int.h"

/* ---- small helpers ---------------------------------------------------------- */

size_t snap_prefixed_key(char *buf, const char *prefix, const char *origin, size_t origin_len)
{
	size_t plen = strlen(prefix);

	memcpy(buf, prefix, plen);
	memcpy(buf + plen, origin, origin_len);
	return plen + origin_len;
}

/* ---- reading a snapshot ------------------------------------------------------ */

/* The sub-databases in snapshot order (enum store_snap_type - 1). */
static const enum store_dbi snap_dbis[] = {
	DBI_BODIES, DBI_USERS, DBI_MAILBOXES, DBI_SUBS, DBI_KEYWORDS, DBI_VANISHED, DBI_MESSAGES,
};
#define SNAP_PHASES (sizeof(snap_dbis) / sizeof(snap_dbis[0]))

struct store_snap {
	struct store *st;
	MDB_txn *txn;
	MDB_cursor *cur;		/* in snap_dbis[phase], NULL before its first */
	size_t phase;
	uint8_t user[1 + STORE_NAME_MAX + USER_REC_MAX];	/* a USER item's data */
};

static uint64_t dbi_bytes(MDB_txn *txn, MDB_dbi dbi)
{
	MDB_stat s;

	if (mdb_stat(txn, dbi, &s) != 0)
		return 0;
	return (uint64_t)(s.ms_branch_pages + s.ms_leaf_pages + s.ms_overflow_pages) * s.ms_psize;
}

int store_snap_begin(struct store *st, struct store_snap **sn_r, struct store_snap_info *info_r)
{
	struct store_snap *sn;
	char sk[META_KEY_MAX];
	uint64_t v;
	int err;

	*sn_r = NULL;
	memset(info_r, 0, sizeof(*info_r));
	sn = calloc(1, sizeof(*sn));
	if (sn == NULL)
		return STORE_IO;
	sn->st = st;
	if ((err = store_rd_begin(st, &sn->txn)) != STORE_OK) {
		free(sn);
		return err;
	}
	err = store_meta_u64_or0(st, sn->txn, sk, meta_seq_key(sk, st->origin, st->origin_len), &info_r->seq);
	if (err == STORE_OK) {
		err = snap_gen_get(st, sn->txn, info_r->generation);
		if (err == STORE_NOTFOUND)
			err = STORE_OK;
	}
	if (err == STORE_OK && (err = store_meta_u64_or0(st, sn->txn, META_NEXT_USERID,
					       strlen(META_NEXT_USERID), &v)) == STORE_OK)
		info_r->next_userid = (uint32_t)v;
	if (err == STORE_OK && (err = store_meta_u64_or0(st, sn->txn, META_NEXT_MBOXID,
					       strlen(META_NEXT_MBOXID), &v)) == STORE_OK)
		info_r->next_mboxid = (uint32_t)v;
	if (err == STORE_OK && (err = store_meta_u64_or0(st, sn->txn, META_UIDVALIDITY,
					       strlen(META_UIDVALIDITY), &v)) == STORE_OK)
		info_r->uidvalidity = (uint32_t)v;
	if (err != STORE_OK) {
		mdb_txn_abort(sn->txn);
		free(sn);
		return STORE_IO;
	}
	for (size_t i = 0; i < SNAP_PHASES; i++)
		info_r->bytes += dbi_bytes(sn->txn, st->dbi[snap_dbis[i]]);
	info_r->bytes += dbi_bytes(sn->txn, st->dbi[DBI_BODYMETA]);
	st->snap_readers++;
	*sn_r = sn;
	return STORE_OK;
}

void store_snap_end(struct store_snap **snp)
{
	struct store_snap *sn = *snp;

	if (sn == NULL)
		return;
	*snp = NULL;
	if (sn->cur != NULL)
		mdb_cursor_close(sn->cur);
	mdb_txn_abort(sn->txn);
	sn->st->snap_readers--;
	free(sn);
}

/* Turn the record at k/v of the current phase into an item. */
static int snap_item(struct store_snap *sn, const MDB_val *k, const MDB_val *v,
		     struct store_snap_item *it)
{
	struct store *st = sn->st;
	const uint8_t *kp = k->mv_data, *vp = v->mv_data;

	memset(it, 0, sizeof(*it));
	it->type = (enum store_snap_type)(sn->phase + 1);
	switch (it->type) {
	case STORE_SNAP_BODY: {
		MDB_val mv;
		int rc;

		if (k->mv_size != STORE_BODY_HASH_LEN || v->mv_size < 1 || vp[0] != STORE_REC_V1)
			return STORE_IO;
		memcpy(it->hash, kp, STORE_BODY_HASH_LEN);
		it->body = vp + 1;
		it->body_len = v->mv_size - 1;
		rc = mdb_get(sn->txn, st->dbi[DBI_BODYMETA], (MDB_val *)k, &mv);
		if (rc == 0 && (mv.mv_size < 1 || *(const uint8_t *)mv.mv_data != STORE_REC_V1))
			return STORE_IO;
		if (rc == 0 && mv.mv_size > 1) {
			it->meta = (const uint8_t *)mv.mv_data + 1;
			it->meta_len = mv.mv_size - 1;
		} else if (rc != 0 && rc != MDB_NOTFOUND) {
			return STORE_IO;
		}
		return STORE_OK;
	}
	case STORE_SNAP_USER:
		if (k->mv_size == 0 || k->mv_size >= STORE_NAME_MAX || v->mv_size > USER_REC_MAX ||
		    v->mv_size < USER_REC_FIXED)
			return STORE_IO;
		sn->user[0] = (uint8_t)k->mv_size;
		memcpy(sn->user + 1, kp, k->mv_size);
		memcpy(sn->user + 1 + k->mv_size, vp, v->mv_size);
		it->a = be32_get(vp + 1);
		it->data = sn->user;
		it->data_len = 1 + k->mv_size + v->mv_size;
		return STORE_OK;
	case STORE_SNAP_MAILBOX:
		if (k->mv_size != MBOX_KEY_LEN)
			return STORE_IO;
		it->a = be32_get(kp);
		it->b = be32_get(kp + 4);
		it->data = vp;
		it->data_len = v->mv_size;
		return STORE_OK;
	case STORE_SNAP_SUB:
		if (k->mv_size < 5 || v->mv_size < 2 || vp[0] != STORE_REC_V1)
			return STORE_IO;
		it->a = be32_get(kp);
		it->data = vp + 1;
		it->data_len = v->mv_size - 1;
		return STORE_OK;
	case STORE_SNAP_KEYWORD:
		if (k->mv_size != KEYWORD_KEY_LEN || v->mv_size < 2 || vp[0] != STORE_REC_V1)
			return STORE_IO;
		it->a = be32_get(kp);
		it->b = be32_get(kp + 4);
		it->c = kp[8];
		it->data = vp + 1;
		it->data_len = v->mv_size - 1;
		return STORE_OK;
	case STORE_SNAP_VANISHED:
	case STORE_SNAP_MESSAGE:
		if (k->mv_size != MSG_KEY_LEN || v->mv_size < 1 || vp[0] != STORE_REC_V1)
			return STORE_IO;
		it->a = be32_get(kp);
		it->b = be32_get(kp + 4);
		it->c = be32_get(kp + 8);
		it->data = it->type == STORE_SNAP_VANISHED ? vp + 1 : vp;
		it->data_len = it->type == STORE_SNAP_VANISHED ? v->mv_size - 1 : v->mv_size;
		return STORE_OK;
	}
	return STORE_IO;
}

int store_snap_next(struct store_snap *sn, size_t budget,
		    int (*cb)(const struct store_snap_item *it, void *arg), void *arg)
{
	size_t spent = 0;

	while (sn->phase < SNAP_PHASES) {
		struct store_snap_item it;
		MDB_cursor_op how = MDB_NEXT;
		MDB_val k, v;
		int rc, err;

		if (sn->cur == NULL) {
			if (mdb_cursor_open(sn->txn, sn->st->dbi[snap_dbis[sn->phase]], &sn->cur) != 0) {
				sn->cur = NULL;
				return STORE_IO;
			}
			how = MDB_FIRST;
		}
		rc = mdb_cursor_get(sn->cur, &k, &v, how);
		if (rc == MDB_NOTFOUND) {
			mdb_cursor_close(sn->cur);
			sn->cur = NULL;
			sn->phase++;
			continue;
		}
		if (rc != 0 || snap_item(sn, &k, &v, &it) != STORE_OK)
			return STORE_IO;
		if ((err = cb(&it, arg)) != 0)
			return err;
		spent += 16 + it.data_len + it.body_len + it.meta_len;
		if (spent >= budget)
			return 1;
	}
	return 0;
}
