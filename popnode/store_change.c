/*
 * store_change.c - what applying another POP's changelog (store_apply.c),
 * merging a mirror's failover changes (store_merge.c) and loading a
 * snapshot (store_snapshot.c) share: decoding changelog payloads
 * (docs/store.md "Changelog") and small meta-counter helpers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store_private.h"

/* A meta counter, 0 when absent. */
int store_meta_u64_or0(struct store *st, MDB_txn *txn, const char *key, size_t klen,
		       uint64_t *v_r)
{
	int err = store_meta_get_u64(st, txn, key, klen, v_r);

	return err == STORE_NOTFOUND ? STORE_OK : err;
}

/* Raise a meta counter to at least v. */
int store_meta_raise(struct store *st, MDB_txn *txn, const char *key, uint64_t v, size_t width)
{
	uint64_t cur;
	int err = store_meta_u64_or0(st, txn, key, strlen(key), &cur);

	if (err != STORE_OK || cur >= v)
		return err;
	return store_meta_put(st, txn, key, strlen(key), v, width);
}

size_t store_applied_key(char buf[APPLIED_KEY_MAX], const char *origin, size_t origin_len)
{
	size_t plen = sizeof(META_APPLIED_PREFIX) - 1;

	memcpy(buf, META_APPLIED_PREFIX, plen);
	memcpy(buf + plen, origin, origin_len);
	return plen + origin_len;
}

/* A payload that is a name of 1..max-1 bytes without NUL, copied to buf. */
int store_ch_name(const struct store_change *c, size_t off, char *buf, size_t max)
{
	size_t len;

	if (c->data_len <= off)
		return STORE_INVAL;
	len = c->data_len - off;
	if (len >= max || memchr((const uint8_t *)c->data + off, 0, len) != NULL)
		return STORE_INVAL;
	memcpy(buf, (const uint8_t *)c->data + off, len);
	buf[len] = '\0';
	return STORE_OK;
}

/* USER_ADD, USER_UPDATE payload: name_len u8, name, user record. */
int store_ch_user(const struct store_change *c, struct store_user *u_r)
{
	const uint8_t *p = c->data;
	MDB_val k, v;
	size_t nl;

	if (c->data_len < 1)
		return STORE_INVAL;
	nl = p[0];
	if (nl == 0 || nl >= STORE_NAME_MAX || c->data_len < 1 + nl || memchr(p + 1, 0, nl))
		return STORE_INVAL;
	k.mv_size = nl;
	k.mv_data = (void *)(p + 1);
	v.mv_size = c->data_len - 1 - nl;
	v.mv_data = (void *)(p + 1 + nl);
	if (user_rec_decode(&k, &v, u_r) != STORE_OK || u_r->id != c->userid || u_r->id == 0)
		return STORE_INVAL;
	return STORE_OK;
}

int store_ch_mbox(const struct store_change *c, struct store_mailbox *mb_r)
{
	MDB_val v = { .mv_size = c->data_len, .mv_data = (void *)c->data };

	if (mbox_rec_decode(&v, mb_r) != STORE_OK || mb_r->id != c->mboxid || mb_r->id == 0 ||
	    strlen(mb_r->name) != be16_get((const uint8_t *)c->data + 41) ||
	    store_mailbox_name_check(mb_r->name) != STORE_OK ||
	    strcmp(store_mbox_canon(mb_r->name), mb_r->name) != 0)
		return STORE_INVAL;
	return STORE_OK;
}

int store_ch_msg(const struct store_change *c, struct store_msg *m_r, size_t *prefix_len_r)
{
	MDB_val v = { .mv_size = c->data_len, .mv_data = (void *)c->data };

	if (msg_rec_decode(&v, m_r, NULL, prefix_len_r) != STORE_OK || c->uid == 0 ||
	    c->uid == UINT32_MAX || (m_r->flags & ~(uint32_t)STORE_F_MASK) != 0 ||
	    m_r->size < *prefix_len_r || m_r->modseq == 0)
		return STORE_INVAL;
	m_r->uid = c->uid;
	return STORE_OK;
}

/* The body r brings, or the one the store holds, fits the record's hash
 * and length.  STORE_NOTFOUND: no body given and none held. */
int store_ch_check_body(struct store *st, MDB_txn *txn, const struct store_apply_rec *r,
			const struct store_msg *m, uint64_t body_len)
{
	MDB_val k = { .mv_size = STORE_BODY_HASH_LEN, .mv_data = (void *)m->hash }, v;
	uint8_t hash[STORE_BODY_HASH_LEN];
	int rc;

	if (r->body != NULL) {
		if (r->body_len != body_len)
			return STORE_INVAL;
		if (store_sha256(r->body, r->body_len, hash) < 0)
			return STORE_IO;
		if (memcmp(hash, m->hash, sizeof(hash)) != 0)
			return STORE_INVAL;
	}
	rc = mdb_get(txn, st->dbi[DBI_BODYREFS], &k, &v);
	if (rc == MDB_NOTFOUND)
		return r->body != NULL ? STORE_OK : STORE_NOTFOUND;
	if (rc != 0)
		return store_mdb_err(rc);
	if (v.mv_size != BODYREF_REC_LEN || *(const uint8_t *)v.mv_data != STORE_REC_V1)
		return STORE_IO;
	return be64_get((const uint8_t *)v.mv_data + 9) == body_len ? STORE_OK : STORE_INVAL;
}

/* One record as a caller gives it: the expected seq, a known type, a
 * payload no longer than any record's, a body and meta only on MSG_ADD. */
static bool rec_ok(const struct store_apply_rec *r, uint64_t want_seq)
{
	const struct store_change *c = &r->c;

	if (c->seq != want_seq || c->type < STORE_CH_USER_ADD || c->type > STORE_CH_KEYWORD_ADD ||
	    c->data_len > STORE_CH_PAYLOAD_MAX || (c->data == NULL && c->data_len > 0) ||
	    (r->body == NULL && r->body_len > 0) || (r->meta == NULL && r->meta_len > 0) ||
	    r->meta_len > STORE_META_MAX)
		return false;
	/* only a MSG_ADD brings a body */
	return c->type == STORE_CH_MSG_ADD || (r->body == NULL && r->meta == NULL);
}

int store_ch_copy_recs(const struct store_apply_rec *recs, size_t n, uint64_t first_seq,
		       struct store_apply_rec **recs_r, uint8_t **blob_r)
{
	size_t total = 0, off = 0, i;
	struct store_apply_rec *out;
	uint8_t *blob;

	if (first_seq == 0 || first_seq > UINT64_MAX - n)
		return STORE_INVAL;
	for (i = 0; i < n; i++) {
		size_t len = recs[i].c.data_len;

		if (!rec_ok(&recs[i], first_seq + i))
			return STORE_INVAL;
		if (recs[i].body_len > SIZE_MAX - len ||
		    recs[i].meta_len > SIZE_MAX - len - recs[i].body_len ||
		    total > SIZE_MAX - len - recs[i].body_len - recs[i].meta_len)
			return STORE_INVAL;
		total += len + recs[i].body_len + recs[i].meta_len;
	}
	*recs_r = out = malloc(n * sizeof(*recs));
	*blob_r = blob = malloc(total > 0 ? total : 1);
	if (out == NULL || blob == NULL)
		return STORE_IO;
	memcpy(out, recs, n * sizeof(*recs));
	for (i = 0; i < n; i++) {
		struct store_apply_rec *r = &out[i];

		r->c.data = blob + off;
		if (recs[i].c.data_len > 0)
			memcpy(blob + off, recs[i].c.data, recs[i].c.data_len);
		off += recs[i].c.data_len;
		if (recs[i].body != NULL) {
			r->body = blob + off;
			if (r->body_len > 0)
				memcpy(blob + off, recs[i].body, r->body_len);
			off += r->body_len;
		}
		if (recs[i].meta != NULL) {
			r->meta = blob + off;
			if (r->meta_len > 0)
				memcpy(blob + off, recs[i].meta, r->meta_len);
			off += r->meta_len;
		}
	}
	return STORE_OK;
}

