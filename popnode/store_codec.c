/*
 * store_codec.c - the store's records and keys as bytes, and the record
 * loaders that reads and write ops share.
 *
 * Every decoder checks the version byte and every length against the
 * value's size before touching it: a short or unknown record is STORE_IO
 * (corruption), never an out-of-bounds read.  Layouts are described in
 * store_private.h and docs/store.md.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "store_private.h"

int store_mdb_err(int rc)
{
	switch (rc) {
	case 0:
		return STORE_OK;
	case MDB_NOTFOUND:
		return STORE_NOTFOUND;
	case MDB_KEYEXIST:
		return STORE_EXISTS;
	case MDB_MAP_FULL:
	case ENOSPC:
	case EDQUOT:
		return STORE_FULL;
	default:
		return STORE_IO;
	}
}

int store_sha256(const void *data, size_t len, uint8_t out[STORE_BODY_HASH_LEN])
{
	unsigned int olen = 0;

	if (EVP_Digest(data, len, out, &olen, EVP_sha256(), NULL) != 1 ||
	    olen != STORE_BODY_HASH_LEN)
		return -1;
	return 0;
}

const char *store_mbox_canon(const char *name)
{
	return strcasecmp(name, "INBOX") == 0 ? "INBOX" : name;
}

/* ---- users ---------------------------------------------------------------- */

size_t user_rec_encode(const struct store_user *u, uint8_t *buf)
{
	size_t home_len = strnlen(u->home, STORE_POP_MAX - 1);
	size_t hash_len = strnlen(u->pwhash, STORE_HASH_MAX - 1);
	uint8_t *p = buf;

	*p++ = STORE_REC_V1;
	be32_put(p, u->id);
	be64_put(p + 4, u->quota);
	be64_put(p + 12, u->used);
	be32_put(p + 20, u->messages);
	p[24] = u->enabled ? 1 : 0;
	be64_put(p + 25, (uint64_t)u->created);
	p[33] = (uint8_t)home_len;
	p += 34;
	memcpy(p, u->home, home_len);
	p += home_len;
	be16_put(p, (uint16_t)hash_len);
	p += 2;
	memcpy(p, u->pwhash, hash_len);
	p += hash_len;
	return (size_t)(p - buf);
}

int user_rec_decode(const MDB_val *key, const MDB_val *val, struct store_user *u_r)
{
	const uint8_t *p = val->mv_data;
	size_t left = val->mv_size, home_len, hash_len;

	memset(u_r, 0, sizeof(*u_r));
	if (key->mv_size == 0 || key->mv_size >= STORE_NAME_MAX)
		return STORE_IO;
	if (left < USER_REC_FIXED || p[0] != STORE_REC_V1)
		return STORE_IO;
	memcpy(u_r->name, key->mv_data, key->mv_size);
	u_r->id = be32_get(p + 1);
	u_r->quota = be64_get(p + 5);
	u_r->used = be64_get(p + 13);
	u_r->messages = be32_get(p + 21);
	u_r->enabled = p[25] != 0;
	u_r->created = (int64_t)be64_get(p + 26);
	home_len = p[34];
	p += USER_REC_FIXED;
	left -= USER_REC_FIXED;
	if (home_len >= STORE_POP_MAX || left < home_len + 2)
		return STORE_IO;
	memcpy(u_r->home, p, home_len);
	p += home_len;
	left -= home_len;
	hash_len = be16_get(p);
	p += 2;
	left -= 2;
	if (hash_len >= STORE_HASH_MAX || left != hash_len)
		return STORE_IO;
	memcpy(u_r->pwhash, p, hash_len);
	return STORE_OK;
}

/* ---- mailboxes ------------------------------------------------------------ */

size_t mbox_rec_encode(const struct store_mailbox *mb, uint8_t *buf)
{
	size_t name_len = strnlen(mb->name, STORE_MBOX_MAX - 1);

	buf[0] = STORE_REC_V2;
	be32_put(buf + 1, mb->id);
	be32_put(buf + 5, mb->uidvalidity);
	be32_put(buf + 9, mb->uidnext);
	be64_put(buf + 13, mb->highestmodseq);
	be32_put(buf + 21, mb->messages);
	be64_put(buf + 25, mb->bytes);
	be32_put(buf + 33, mb->special_use);
	be32_put(buf + 37, mb->unseen);
	be16_put(buf + 41, (uint16_t)name_len);
	memcpy(buf + MBOX_REC_FIXED, mb->name, name_len);
	return MBOX_REC_FIXED + name_len;
}

/* The part v1 and v2 share: everything up to special_use. */
static void mbox_rec_decode_common(const uint8_t *p, struct store_mailbox *mb_r)
{
	mb_r->id = be32_get(p + 1);
	mb_r->uidvalidity = be32_get(p + 5);
	mb_r->uidnext = be32_get(p + 9);
	mb_r->highestmodseq = be64_get(p + 13);
	mb_r->messages = be32_get(p + 21);
	mb_r->bytes = be64_get(p + 25);
	mb_r->special_use = be32_get(p + 33);
}

int mbox_rec_decode(const MDB_val *val, struct store_mailbox *mb_r)
{
	const uint8_t *p = val->mv_data;
	size_t name_len;

	memset(mb_r, 0, sizeof(*mb_r));
	if (val->mv_size < MBOX_REC_FIXED || p[0] != STORE_REC_V2)
		return STORE_IO;
	name_len = be16_get(p + 41);
	if (name_len >= STORE_MBOX_MAX || val->mv_size != MBOX_REC_FIXED + name_len)
		return STORE_IO;
	mbox_rec_decode_common(p, mb_r);
	mb_r->unseen = be32_get(p + 37);
	memcpy(mb_r->name, p + MBOX_REC_FIXED, name_len);
	return STORE_OK;
}

int mbox_rec_decode_v1(const MDB_val *val, struct store_mailbox *mb_r)
{
	const uint8_t *p = val->mv_data;
	size_t name_len;

	memset(mb_r, 0, sizeof(*mb_r));
	if (val->mv_size < MBOX_REC_V1_FIXED || p[0] != STORE_REC_V1)
		return STORE_IO;
	name_len = be16_get(p + 38);
	if (name_len >= STORE_MBOX_MAX || val->mv_size != MBOX_REC_V1_FIXED + name_len)
		return STORE_IO;
	mbox_rec_decode_common(p, mb_r);
	mb_r->subscribed = p[37] != 0;
	memcpy(mb_r->name, p + MBOX_REC_V1_FIXED, name_len);
	return STORE_OK;
}

/* ---- messages ------------------------------------------------------------- */

void msg_rec_encode_fixed(const struct store_msg *m, size_t prefix_len, uint8_t *buf)
{
	buf[0] = STORE_REC_V1;
	be64_put(buf + 1, m->size);
	be64_put(buf + 9, m->modseq);
	be64_put(buf + 17, (uint64_t)m->internaldate);
	be32_put(buf + 25, m->flags);
	be64_put(buf + 29, m->keywords);
	memcpy(buf + 37, m->hash, STORE_BODY_HASH_LEN);
	be32_put(buf + 69, (uint32_t)prefix_len);
}

int msg_rec_decode(const MDB_val *val, struct store_msg *m_r,
		   const char **prefix_r, size_t *prefix_len_r)
{
	const uint8_t *p = val->mv_data;
	size_t prefix_len;

	memset(m_r, 0, sizeof(*m_r));
	if (val->mv_size < MSG_REC_FIXED || p[0] != STORE_REC_V1)
		return STORE_IO;
	prefix_len = be32_get(p + 69);
	if (val->mv_size != MSG_REC_FIXED + prefix_len)
		return STORE_IO;
	m_r->size = be64_get(p + 1);
	m_r->modseq = be64_get(p + 9);
	m_r->internaldate = (int64_t)be64_get(p + 17);
	m_r->flags = be32_get(p + 25);
	m_r->keywords = be64_get(p + 29);
	memcpy(m_r->hash, p + 37, STORE_BODY_HASH_LEN);
	if (prefix_r != NULL)
		*prefix_r = (const char *)p + MSG_REC_FIXED;
	if (prefix_len_r != NULL)
		*prefix_len_r = prefix_len;
	return STORE_OK;
}

/* ---- keys ----------------------------------------------------------------- */

void userid_key(uint8_t buf[USERID_KEY_LEN], uint32_t id)
{
	be32_put(buf, id);
}

void mbox_key(uint8_t buf[MBOX_KEY_LEN], uint32_t userid, uint32_t mboxid)
{
	be32_put(buf, userid);
	be32_put(buf + 4, mboxid);
}

void msg_key(uint8_t buf[MSG_KEY_LEN], uint32_t userid, uint32_t mboxid, uint32_t uid)
{
	be32_put(buf, userid);
	be32_put(buf + 4, mboxid);
	be32_put(buf + 8, uid);
}

size_t mboxname_key(uint8_t buf[MBOXNAME_KEY_MAX], uint32_t userid, const char *name)
{
	size_t len = strlen(name);

	be32_put(buf, userid);
	if (len <= MBOXNAME_DIRECT_MAX) {
		memcpy(buf + 4, name, len);
		return 4 + len;
	}
	memcpy(buf + 4, name, MBOXNAME_HEAD);
	buf[4 + MBOXNAME_HEAD] = 0;
	if (store_sha256(name, len, buf + 4 + MBOXNAME_HEAD + 1) < 0)
		return 0;
	return MBOXNAME_KEY_MAX;
}

size_t change_key(uint8_t buf[CHANGE_KEY_MAX], const char *origin, size_t origin_len,
		  uint64_t seq)
{
	buf[0] = (uint8_t)origin_len;
	memcpy(buf + 1, origin, origin_len);
	be64_put(buf + 1 + origin_len, seq);
	return 1 + origin_len + 8;
}

size_t meta_seq_key(char buf[META_KEY_MAX], const char *origin, size_t origin_len)
{
	size_t plen = sizeof(META_SEQ_PREFIX) - 1;

	memcpy(buf, META_SEQ_PREFIX, plen);
	memcpy(buf + plen, origin, origin_len);
	return plen + origin_len;
}

void keyword_key(uint8_t buf[KEYWORD_KEY_LEN], uint32_t userid, uint32_t mboxid, unsigned idx)
{
	be32_put(buf, userid);
	be32_put(buf + 4, mboxid);
	buf[8] = (uint8_t)idx;
}

size_t dirpeer_key(char buf[DIRPEER_KEY_MAX], const char *peer, size_t peer_len)
{
	size_t plen = sizeof(META_DIRPEER_PREFIX) - 1;

	memcpy(buf, META_DIRPEER_PREFIX, plen);
	memcpy(buf + plen, peer, peer_len);
	return plen + peer_len;
}

/* ---- directory records -------------------------------------------------------- */

size_t dirrec_encode(const struct store_dirrec *d, uint8_t *buf)
{
	size_t origin_len = strnlen(d->origin, STORE_POP_MAX - 1);
	size_t home_len = strnlen(d->home, STORE_POP_MAX - 1);
	uint8_t *p = buf;

	*p++ = STORE_REC_V1;
	be64_put(p, d->version);
	p += 8;
	*p++ = (uint8_t)origin_len;
	memcpy(p, d->origin, origin_len);
	p += origin_len;
	be64_put(p, d->lseq);
	p += 8;
	*p++ = d->deleted ? 1 : 0;
	*p++ = (uint8_t)home_len;
	memcpy(p, d->home, home_len);
	p += home_len;
	return (size_t)(p - buf);
}

int dirrec_decode(const MDB_val *val, struct store_dirrec *d_r)
{
	const uint8_t *p = val->mv_data;
	size_t left = val->mv_size, origin_len, home_len;

	memset(d_r, 0, sizeof(*d_r));
	if (left < DIRREC_FIXED || p[0] != STORE_REC_V1)
		return STORE_IO;
	d_r->version = be64_get(p + 1);
	origin_len = p[9];
	if (origin_len == 0 || origin_len >= STORE_POP_MAX || left < DIRREC_FIXED + origin_len)
		return STORE_IO;
	memcpy(d_r->origin, p + 10, origin_len);
	p += 10 + origin_len;
	left -= 10 + origin_len;
	d_r->lseq = be64_get(p);
	if (p[8] > 1)
		return STORE_IO;
	d_r->deleted = p[8] == 1;
	home_len = p[9];
	if (home_len >= STORE_POP_MAX || left != 10 + home_len)
		return STORE_IO;
	memcpy(d_r->home, p + 10, home_len);
	return STORE_OK;
}

/* ---- names ---------------------------------------------------------------- */

int store_mailbox_name_check(const char *name)
{
	size_t len, i;

	if (name == NULL)
		return STORE_INVAL;
	len = strnlen(name, STORE_MBOX_MAX);
	if (len == 0 || len >= STORE_MBOX_MAX || name[0] == '/' || name[len - 1] == '/')
		return STORE_INVAL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x20 || c == 0x7f)
			return STORE_INVAL;
		if (c == '/' && name[i + 1] == '/')
			return STORE_INVAL;
	}
	return STORE_OK;
}

int store_keyword_check(const char *name)
{
	size_t len, i;

	if (name == NULL)
		return STORE_INVAL;
	len = strnlen(name, STORE_KEYWORD_MAX + 1);
	if (len == 0 || len > STORE_KEYWORD_MAX)
		return STORE_INVAL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return STORE_INVAL;
	}
	return STORE_OK;
}

/* ---- loaders -------------------------------------------------------------- */

int store_load_user(struct store *st, MDB_txn *txn, const char *name, struct store_user *u_r)
{
	size_t len = strnlen(name, STORE_NAME_MAX);
	MDB_val k = { .mv_size = len, .mv_data = (void *)name }, v;
	int rc;

	if (len == 0 || len >= STORE_NAME_MAX)
		return STORE_NOTFOUND;
	rc = mdb_get(txn, st->dbi[DBI_USERS], &k, &v);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? STORE_NOTFOUND : STORE_IO;
	return user_rec_decode(&k, &v, u_r);
}

int store_load_user_id(struct store *st, MDB_txn *txn, uint32_t id, struct store_user *u_r)
{
	uint8_t kb[USERID_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	char name[STORE_NAME_MAX];
	int rc, err;

	userid_key(kb, id);
	rc = mdb_get(txn, st->dbi[DBI_USERIDS], &k, &v);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? STORE_NOTFOUND : STORE_IO;
	if (v.mv_size == 0 || v.mv_size >= sizeof(name))
		return STORE_IO;
	memcpy(name, v.mv_data, v.mv_size);
	name[v.mv_size] = '\0';
	err = store_load_user(st, txn, name, u_r);
	return err == STORE_NOTFOUND ? STORE_IO : err;	/* index points nowhere */
}

int store_load_mbox_id(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
		       struct store_mailbox *mb_r)
{
	uint8_t kb[MBOX_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	int rc;

	mbox_key(kb, userid, mboxid);
	rc = mdb_get(txn, st->dbi[DBI_MAILBOXES], &k, &v);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? STORE_NOTFOUND : STORE_IO;
	return mbox_rec_decode(&v, mb_r);
}

int store_load_mbox_name(struct store *st, MDB_txn *txn, uint32_t userid, const char *name,
			 struct store_mailbox *mb_r)
{
	uint8_t kb[MBOXNAME_KEY_MAX];
	MDB_val k = { .mv_data = kb }, v;
	int rc, err;

	if (name[0] == '\0' || strnlen(name, STORE_MBOX_MAX) >= STORE_MBOX_MAX)
		return STORE_NOTFOUND;
	name = store_mbox_canon(name);
	k.mv_size = mboxname_key(kb, userid, name);
	if (k.mv_size == 0)
		return STORE_IO;
	rc = mdb_get(txn, st->dbi[DBI_MBOXNAMES], &k, &v);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? STORE_NOTFOUND : STORE_IO;
	if (v.mv_size != 4)
		return STORE_IO;
	err = store_load_mbox_id(st, txn, userid, be32_get(v.mv_data), mb_r);
	if (err == STORE_NOTFOUND)
		return STORE_IO;	/* index points nowhere */
	if (err == STORE_OK && strcmp(mb_r->name, name) != 0)
		return STORE_NOTFOUND;	/* hashed key of another long name */
	return err;
}

int store_meta_get_u64(struct store *st, MDB_txn *txn, const char *key, size_t key_len,
		       uint64_t *v_r)
{
	MDB_val k = { .mv_size = key_len, .mv_data = (void *)key }, v;
	int rc;

	*v_r = 0;
	rc = mdb_get(txn, st->dbi[DBI_META], &k, &v);
	if (rc == MDB_NOTFOUND)
		return STORE_NOTFOUND;
	if (rc != 0)
		return STORE_IO;
	if (v.mv_size == 4)
		*v_r = be32_get(v.mv_data);
	else if (v.mv_size == 8)
		*v_r = be64_get(v.mv_data);
	else if (v.mv_size == 1)
		*v_r = *(const uint8_t *)v.mv_data;
	else
		return STORE_IO;
	return STORE_OK;
}

int store_sub_get(struct store *st, MDB_txn *txn, uint32_t userid, const char *name)
{
	uint8_t kb[MBOXNAME_KEY_MAX];
	MDB_val k = { .mv_data = kb }, v;
	size_t len = strlen(name);
	int rc;

	k.mv_size = mboxname_key(kb, userid, name);
	if (k.mv_size == 0)
		return STORE_IO;
	rc = mdb_get(txn, st->dbi[DBI_SUBS], &k, &v);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? STORE_NOTFOUND : STORE_IO;
	if (v.mv_size < 1 || *(const uint8_t *)v.mv_data != STORE_REC_V1)
		return STORE_IO;
	/* a hashed key of another long name is not this one */
	if (v.mv_size - 1 != len || memcmp((const uint8_t *)v.mv_data + 1, name, len) != 0)
		return STORE_NOTFOUND;
	return STORE_OK;
}

int store_fill_subscribed(struct store *st, MDB_txn *txn, uint32_t userid,
			  struct store_mailbox *mb)
{
	int err = store_sub_get(st, txn, userid, mb->name);

	if (err != STORE_OK && err != STORE_NOTFOUND)
		return err;
	mb->subscribed = err == STORE_OK;
	return STORE_OK;
}

int store_kw_load(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
		  struct store_kwtable *t_r)
{
	uint8_t kb[KEYWORD_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	MDB_cursor *cur;
	MDB_cursor_op how = MDB_SET_RANGE;
	int rc, err = STORE_OK;

	t_r->n = 0;
	keyword_key(kb, userid, mboxid, 0);
	if (mdb_cursor_open(txn, st->dbi[DBI_KEYWORDS], &cur) != 0)
		return STORE_IO;
	while ((rc = mdb_cursor_get(cur, &k, &v, how)) == 0) {
		const uint8_t *kp = k.mv_data, *vp = v.mv_data;

		how = MDB_NEXT;
		if (k.mv_size != KEYWORD_KEY_LEN || memcmp(kp, kb, 8) != 0)
			break;
		/* indexes are dense from 0: anything else is corruption */
		if (kp[8] != t_r->n || t_r->n >= STORE_KEYWORDS_MAX || v.mv_size < 2 ||
		    v.mv_size > STORE_KEYWORD_MAX + 1 || vp[0] != STORE_REC_V1) {
			err = STORE_IO;
			break;
		}
		memcpy(t_r->names[t_r->n], vp + 1, v.mv_size - 1);
		t_r->names[t_r->n][v.mv_size - 1] = '\0';
		t_r->n++;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		err = STORE_IO;
	mdb_cursor_close(cur);
	return err;
}
