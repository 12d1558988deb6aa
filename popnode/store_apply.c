/*
 * store_apply.c - a mirror applies another POP's changelog records.
 *
 * A mirror of origin X is a store of its own opened with origin X.  Each
 * record of X's changelog (docs/store.md, "Changelog") is turned back
 * into the change it describes, with X's ids kept exactly: the user and
 * mailbox records carry ids, UIDVALIDITY and UIDNEXT, a MSG_ADD carries
 * the whole message record (UID, MODSEQ, flags, keywords, INTERNALDATE,
 * prefix, body hash), a MSG_EXPUNGE the modseq of its tombstone.  What
 * the records do not carry is derived as X derived it: mailbox and user
 * counters follow the messages, highestmodseq is the greatest modseq
 * seen, uidnext passes every UID added, body refcounts count message
 * records, and USER_ADD implies the six default subscriptions.
 *
 * Every record is then written to the mirror's own changelog unchanged
 * (origin X, same seq, time and payload), so the mirror can be read like
 * X's changelog.  A batch is one op (one nested transaction of a group
 * commit): all of it or none, the position "applied/X" included.
 *
 * A record that does not fit the mirror's state (a mailbox that is not
 * there, a message already there, a keyword index out of order...) is
 * STORE_INVAL: the mirror is not the copy it should be, and nothing of
 * the batch is applied.  One leniency: RENAME moves a whole tree of names
 * in one transaction at X, but its records come one by one, so a
 * MAILBOX_RENAME takes its new name in the name index even if a mailbox
 * to be renamed by a later record of the same op still holds it; that
 * mailbox's later record then leaves the index entry alone.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_private.h"

/* USER_ADD implies these subscriptions (store_ops.c's default mailboxes). */
static const char *const default_subs[] = {
	"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive",
};

/* What an OP_APPLY carries; apply_done (the op's callback) frees it. */
struct store_apply {
	char origin[STORE_POP_MAX];
	struct store_apply_rec *recs;	/* data, body, meta point into blob */
	size_t n;
	uint8_t *blob;
	store_done_cb *cb;
	void *arg;
};

/* A missing or already present record means the state does not fit. */
static int fit(int err)
{
	return err == STORE_NOTFOUND || err == STORE_EXISTS ? STORE_INVAL : err;
}

static int load_user(struct store *st, MDB_txn *txn, uint32_t userid, struct store_user *u_r)
{
	return fit(store_load_user_id(st, txn, userid, u_r));
}

static int load_mbox_user(struct store *st, MDB_txn *txn, const struct store_change *c,
			  struct store_mailbox *mb_r, struct store_user *u_r)
{
	int err = fit(store_load_mbox_id(st, txn, c->userid, c->mboxid, mb_r));

	return err != STORE_OK ? err : load_user(st, txn, c->userid, u_r);
}

static int put_mbox_user(struct store *st, MDB_txn *txn, struct store_op *op, uint32_t userid,
			 const struct store_mailbox *mb, const struct store_user *u)
{
	int err;

	if ((err = store_mbox_put(st, txn, userid, mb, 0)) != STORE_OK ||
	    (err = store_user_put(st, txn, u, 0)) != STORE_OK)
		return err;
	store_touch(op, userid, mb->id);
	return STORE_OK;
}

static int name_take(struct store *st, MDB_txn *txn, uint32_t userid, const char *name,
		     uint32_t mboxid, unsigned flags)
{
	uint8_t nk[MBOXNAME_KEY_MAX], idb[4];
	size_t nklen = mboxname_key(nk, userid, name);

	if (nklen == 0)
		return STORE_IO;
	be32_put(idb, mboxid);
	return fit(store_put(txn, st->dbi[DBI_MBOXNAMES], nk, nklen, idb, 4, flags));
}

static int sub_put(struct store *st, MDB_txn *txn, uint32_t userid, const char *name)
{
	uint8_t nk[MBOXNAME_KEY_MAX], rec[1 + STORE_MBOX_MAX];
	size_t nklen = mboxname_key(nk, userid, name), len = strlen(name);

	if (nklen == 0)
		return STORE_IO;
	rec[0] = STORE_REC_V1;
	memcpy(rec + 1, name, len);
	return store_put(txn, st->dbi[DBI_SUBS], nk, nklen, rec, 1 + len, 0);
}

/* ---- users ---------------------------------------------------------------------- */

static int apply_user_add(struct store *st, MDB_txn *txn, const struct store_change *c)
{
	uint8_t idk[USERID_KEY_LEN];
	struct store_user u, old;
	size_t i;
	int err;

	if ((err = store_ch_user(c, &u)) != STORE_OK)
		return err;
	err = store_load_user(st, txn, u.name, &old);
	if (err != STORE_NOTFOUND)
		return err == STORE_OK ? STORE_INVAL : err;
	userid_key(idk, u.id);
	err = store_put(txn, st->dbi[DBI_USERIDS], idk, sizeof(idk), u.name, strlen(u.name),
			MDB_NOOVERWRITE);
	if (err != STORE_OK)
		return fit(err);
	u.used = 0;		/* counters follow the messages applied */
	u.messages = 0;
	if ((err = store_user_put(st, txn, &u, 0)) != STORE_OK)
		return err;
	for (i = 0; i < sizeof(default_subs) / sizeof(default_subs[0]); i++) {
		if ((err = sub_put(st, txn, u.id, default_subs[i])) != STORE_OK)
			return err;
	}
	return store_meta_raise(st, txn, META_NEXT_USERID, (uint64_t)u.id + 1, 4);
}

static int apply_user_update(struct store *st, MDB_txn *txn, const struct store_change *c)
{
	struct store_user in, u;
	int err;

	if ((err = store_ch_user(c, &in)) != STORE_OK)
		return err;
	if ((err = fit(store_load_user(st, txn, in.name, &u))) != STORE_OK)
		return err;
	if (u.id != in.id)
		return STORE_INVAL;
	memcpy(u.home, in.home, sizeof(u.home));
	memcpy(u.pwhash, in.pwhash, sizeof(u.pwhash));
	u.quota = in.quota;
	u.enabled = in.enabled;
	return store_user_put(st, txn, &u, 0);
}

static int drop_msg_body(struct store *st, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
			 void *ctx)
{
	struct store_msg m;
	int err = msg_rec_decode(v, &m, NULL, NULL);

	(void)k;
	(void)ctx;
	return err != STORE_OK ? err : store_body_unref(st, txn, m.hash);
}

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

/* USER_DEL: the user and everything of theirs, as store_user_remove. */
static int apply_user_del(struct store *st, MDB_txn *txn, struct store_op *op,
			  const struct store_change *c)
{
	static const enum store_dbi by_user[] = {
		DBI_MBOXNAMES, DBI_SUBS, DBI_KEYWORDS, DBI_VANISHED,
	};
	char name[STORE_NAME_MAX];
	struct store_user u;
	uint8_t pk[4];
	size_t i;
	int err;

	if ((err = store_ch_name(c, 0, name, sizeof(name))) != STORE_OK ||
	    (err = fit(store_load_user(st, txn, name, &u))) != STORE_OK)
		return err;
	if (u.id != c->userid)
		return STORE_INVAL;
	be32_put(pk, u.id);
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
	if ((err = store_recent_del_user(st, txn, u.id)) != STORE_OK ||
	    (err = store_del(txn, st->dbi[DBI_USERS], u.name, strlen(u.name))) != STORE_OK)
		return err;
	return store_del(txn, st->dbi[DBI_USERIDS], pk, 4);
}

/* ---- mailboxes ------------------------------------------------------------------- */

static int apply_mbox_add(struct store *st, MDB_txn *txn, struct store_op *op,
			  const struct store_change *c)
{
	struct store_mailbox mb, old;
	struct store_user u;
	int err;

	if ((err = store_ch_mbox(c, &mb)) != STORE_OK ||
	    (err = load_user(st, txn, c->userid, &u)) != STORE_OK)
		return err;
	err = store_load_mbox_id(st, txn, c->userid, mb.id, &old);
	if (err != STORE_NOTFOUND)
		return err == STORE_OK ? STORE_INVAL : err;
	if ((err = name_take(st, txn, c->userid, mb.name, mb.id, MDB_NOOVERWRITE)) != STORE_OK)
		return err;
	mb.messages = 0;	/* counters follow the messages applied */
	mb.bytes = 0;
	mb.unseen = 0;
	if ((err = store_mbox_put(st, txn, c->userid, &mb, 0)) != STORE_OK ||
	    (err = store_meta_raise(st, txn, META_NEXT_MBOXID, (uint64_t)mb.id + 1, 4)) != STORE_OK ||
	    (err = store_meta_raise(st, txn, META_UIDVALIDITY, mb.uidvalidity, 4)) != STORE_OK)
		return err;
	store_touch(op, c->userid, mb.id);
	return STORE_OK;
}

/* MAILBOX_DEL: the mailbox, its messages, keyword table and tombstones. */
static int apply_mbox_del(struct store *st, MDB_txn *txn, struct store_op *op,
			  const struct store_change *c)
{
	char name[STORE_MBOX_MAX];
	struct store_mailbox mb;
	struct store_user u;
	int err;

	if ((err = store_ch_name(c, 0, name, sizeof(name))) != STORE_OK ||
	    (err = load_mbox_user(st, txn, c, &mb, &u)) != STORE_OK)
		return err;
	if (strcmp(mb.name, name) != 0 || strcmp(name, "INBOX") == 0)
		return STORE_INVAL;
	return store_mbox_remove(st, txn, op, &u, &mb);
}

/* MAILBOX_RENAME: the same mailbox (id, UIDVALIDITY) under a new name. */
static int apply_mbox_rename(struct store *st, MDB_txn *txn, struct store_op *op,
			     const struct store_change *c)
{
	struct store_mailbox in, mb;
	int err;

	if ((err = store_ch_mbox(c, &in)) != STORE_OK ||
	    (err = fit(store_load_mbox_id(st, txn, c->userid, c->mboxid, &mb))) != STORE_OK)
		return err;
	if (mb.uidvalidity != in.uidvalidity || strcmp(mb.name, "INBOX") == 0 ||
	    strcmp(in.name, "INBOX") == 0)
		return STORE_INVAL;
	if ((err = store_mbox_name_release(st, txn, c->userid, mb.name, mb.id)) != STORE_OK ||
	    (err = name_take(st, txn, c->userid, in.name, mb.id, 0)) != STORE_OK)
		return err;
	strcpy(mb.name, in.name);
	if ((err = store_mbox_put(st, txn, c->userid, &mb, 0)) != STORE_OK)
		return err;
	store_touch(op, c->userid, mb.id);
	return STORE_OK;
}

static int apply_subscribe(struct store *st, MDB_txn *txn, const struct store_change *c)
{
	char name[STORE_MBOX_MAX];
	uint8_t nk[MBOXNAME_KEY_MAX];
	struct store_user u;
	size_t nklen;
	bool on;
	int err;

	if (c->data_len < 1 || *(const uint8_t *)c->data > 1)
		return STORE_INVAL;
	on = *(const uint8_t *)c->data == 1;
	if ((err = store_ch_name(c, 1, name, sizeof(name))) != STORE_OK ||
	    store_mailbox_name_check(name) != STORE_OK ||
	    strcmp(store_mbox_canon(name), name) != 0)
		return STORE_INVAL;
	if ((err = load_user(st, txn, c->userid, &u)) != STORE_OK)
		return err;
	if (on)
		return sub_put(st, txn, u.id, name);
	if ((err = fit(store_sub_get(st, txn, u.id, name))) != STORE_OK)
		return err;	/* unsubscribing what is not subscribed */
	if ((nklen = mboxname_key(nk, u.id, name)) == 0)
		return STORE_IO;
	return store_del(txn, st->dbi[DBI_SUBS], nk, nklen);
}

static int apply_keyword_add(struct store *st, MDB_txn *txn, const struct store_change *c)
{
	struct store_kwtable *t;
	struct store_mailbox mb;
	char name[STORE_KEYWORD_MAX + 1];
	uint8_t kb[KEYWORD_KEY_LEN], rec[1 + STORE_KEYWORD_MAX];
	size_t len;
	int err;

	if ((err = store_ch_name(c, 0, name, sizeof(name))) != STORE_OK ||
	    store_keyword_check(name) != STORE_OK)
		return STORE_INVAL;
	if ((err = fit(store_load_mbox_id(st, txn, c->userid, c->mboxid, &mb))) != STORE_OK)
		return err;
	t = store_xcalloc(1, sizeof(*t));
	err = store_kw_load(st, txn, c->userid, c->mboxid, t);
	/* indexes are dense: the record must add the next one */
	if (err == STORE_OK && (c->uid != t->n || t->n >= STORE_KEYWORDS_MAX ||
				store_kw_find(t, name) >= 0))
		err = STORE_INVAL;
	free(t);
	if (err != STORE_OK)
		return err;
	len = strlen(name);
	keyword_key(kb, c->userid, c->mboxid, c->uid);
	rec[0] = STORE_REC_V1;
	memcpy(rec + 1, name, len);
	return fit(store_put(txn, st->dbi[DBI_KEYWORDS], kb, sizeof(kb), rec, 1 + len,
			     MDB_NOOVERWRITE));
}

/* ---- messages ---------------------------------------------------------------------- */

static int apply_msg_add(struct store *st, MDB_txn *txn, struct store_op *op,
			 const struct store_apply_rec *r)
{
	const struct store_change *c = &r->c;
	struct store_mailbox mb;
	struct store_user u;
	struct store_msg m;
	uint8_t kb[MSG_KEY_LEN];
	size_t prefix_len;
	uint64_t body_len;
	int err;

	if ((err = store_ch_msg(c, &m, &prefix_len)) != STORE_OK ||
	    (err = load_mbox_user(st, txn, c, &mb, &u)) != STORE_OK)
		return err;
	body_len = m.size - prefix_len;
	err = store_ch_check_body(st, txn, r, &m, body_len);
	if (err == STORE_NOTFOUND && r->body_gone) {
		/* a placeholder: the UID is used, the message never seen */
		if (mb.uidnext <= m.uid)
			mb.uidnext = m.uid + 1;
		if (mb.highestmodseq < m.modseq)
			mb.highestmodseq = m.modseq;
		return put_mbox_user(st, txn, op, c->userid, &mb, &u);
	}
	if (err != STORE_OK)
		return err;
	msg_key(kb, c->userid, c->mboxid, c->uid);
	err = store_put(txn, st->dbi[DBI_MESSAGES], kb, sizeof(kb), c->data, c->data_len,
			MDB_NOOVERWRITE);
	if (err != STORE_OK)
		return fit(err);
	err = store_body_ref(st, txn, m.hash, r->body, body_len, r->meta, r->meta_len);
	if (err != STORE_OK)
		return err;
	mb.messages++;
	mb.bytes += m.size;
	if (!(m.flags & STORE_F_SEEN))
		mb.unseen++;
	if (mb.uidnext <= m.uid)
		mb.uidnext = m.uid + 1;
	if (mb.highestmodseq < m.modseq)
		mb.highestmodseq = m.modseq;
	u.messages++;
	u.used += m.size;
	return put_mbox_user(st, txn, op, c->userid, &mb, &u);
}

/* A UID the mailbox has handed out but holds no message for: the
 * placeholder of a MSG_ADD whose body was gone at the origin (or one
 * expunged already, which a well-formed log never names again). */
static bool ghost(const struct store_mailbox *mb, uint32_t uid)
{
	return uid < mb->uidnext;
}

/* Load the message c names: STORE_INVAL if it is not there. */
static int load_msg(struct store *st, MDB_txn *txn, const struct store_change *c,
		    uint8_t kb[MSG_KEY_LEN], MDB_val *v_r, struct store_msg *m_r,
		    size_t *prefix_len_r)
{
	MDB_val k = { .mv_size = MSG_KEY_LEN, .mv_data = kb };
	int rc;

	msg_key(kb, c->userid, c->mboxid, c->uid);
	rc = mdb_get(txn, st->dbi[DBI_MESSAGES], &k, v_r);
	if (rc != 0)
		return fit(store_mdb_err(rc));
	return msg_rec_decode(v_r, m_r, NULL, prefix_len_r);
}

/* MSG_EXPUNGE: modseq BE64, body SHA-256. */
static int apply_msg_expunge(struct store *st, MDB_txn *txn, struct store_op *op,
			     const struct store_change *c)
{
	const uint8_t *p = c->data;
	struct store_mailbox mb;
	struct store_user u;
	struct store_msg m;
	uint8_t kb[MSG_KEY_LEN];
	uint64_t modseq;
	MDB_val v;
	int err;

	if (c->data_len != 8 + STORE_BODY_HASH_LEN || (modseq = be64_get(p)) == 0)
		return STORE_INVAL;
	if ((err = load_mbox_user(st, txn, c, &mb, &u)) != STORE_OK)
		return err;
	err = load_msg(st, txn, c, kb, &v, &m, NULL);
	if (err == STORE_INVAL && ghost(&mb, c->uid)) {
		/* the placeholder of a body-gone MSG_ADD */
		if ((err = store_vanish(st, txn, c->userid, c->mboxid, c->uid, modseq)) != STORE_OK)
			return err;
		if (mb.highestmodseq < modseq)
			mb.highestmodseq = modseq;
		return put_mbox_user(st, txn, op, c->userid, &mb, &u);
	}
	if (err != STORE_OK)
		return err;
	if (memcmp(m.hash, p + 8, STORE_BODY_HASH_LEN) != 0)
		return STORE_INVAL;
	if ((err = store_del(txn, st->dbi[DBI_MESSAGES], kb, MSG_KEY_LEN)) != STORE_OK ||
	    (err = store_body_unref(st, txn, m.hash)) != STORE_OK ||
	    (err = store_vanish(st, txn, c->userid, c->mboxid, c->uid, modseq)) != STORE_OK)
		return err;
	mb.messages = mb.messages > 0 ? mb.messages - 1 : 0;
	mb.bytes = mb.bytes > m.size ? mb.bytes - m.size : 0;
	if (!(m.flags & STORE_F_SEEN) && mb.unseen > 0)
		mb.unseen--;
	if (mb.highestmodseq < modseq)
		mb.highestmodseq = modseq;
	u.messages = u.messages > 0 ? u.messages - 1 : 0;
	u.used = u.used > m.size ? u.used - m.size : 0;
	return put_mbox_user(st, txn, op, c->userid, &mb, &u);
}

/* MSG_FLAGS: modseq BE64, flags BE32, keywords BE64. */
static int apply_msg_flags(struct store *st, MDB_txn *txn, struct store_op *op,
			   const struct store_change *c)
{
	const uint8_t *p = c->data;
	struct store_mailbox mb;
	struct store_msg m;
	uint8_t kb[MSG_KEY_LEN], *rec;
	size_t prefix_len;
	uint32_t flags;
	MDB_val v;
	int err;

	if (c->data_len != 20 || be64_get(p) == 0 ||
	    ((flags = be32_get(p + 8)) & ~(uint32_t)STORE_F_MASK) != 0)
		return STORE_INVAL;
	if ((err = fit(store_load_mbox_id(st, txn, c->userid, c->mboxid, &mb))) != STORE_OK)
		return err;
	err = load_msg(st, txn, c, kb, &v, &m, &prefix_len);
	if (err == STORE_INVAL && ghost(&mb, c->uid)) {
		if (mb.highestmodseq < be64_get(p))
			mb.highestmodseq = be64_get(p);
		if ((err = store_mbox_put(st, txn, c->userid, &mb, 0)) != STORE_OK)
			return err;
		store_touch(op, c->userid, c->mboxid);
		return STORE_OK;
	}
	if (err != STORE_OK)
		return err;
	if ((m.flags ^ flags) & STORE_F_SEEN) {
		if (flags & STORE_F_SEEN)
			mb.unseen = mb.unseen > 0 ? mb.unseen - 1 : 0;
		else
			mb.unseen++;
	}
	m.flags = flags;
	m.modseq = be64_get(p);
	m.keywords = be64_get(p + 12);
	if (mb.highestmodseq < m.modseq)
		mb.highestmodseq = m.modseq;
	rec = store_xcalloc(1, v.mv_size);
	memcpy(rec, v.mv_data, v.mv_size);
	msg_rec_encode_fixed(&m, prefix_len, rec);
	err = store_put(txn, st->dbi[DBI_MESSAGES], kb, MSG_KEY_LEN, rec, v.mv_size, 0);
	free(rec);
	if (err != STORE_OK || (err = store_mbox_put(st, txn, c->userid, &mb, 0)) != STORE_OK)
		return err;
	store_touch(op, c->userid, c->mboxid);
	return STORE_OK;
}

/* ---- the op ------------------------------------------------------------------------- */

static int apply_rec(struct store *st, MDB_txn *txn, struct store_op *op,
		     const struct store_apply_rec *r)
{
	const struct store_change *c = &r->c;

	switch (c->type) {
	case STORE_CH_USER_ADD:
		return apply_user_add(st, txn, c);
	case STORE_CH_USER_UPDATE:
		return apply_user_update(st, txn, c);
	case STORE_CH_USER_DEL:
		return apply_user_del(st, txn, op, c);
	case STORE_CH_MAILBOX_ADD:
		return apply_mbox_add(st, txn, op, c);
	case STORE_CH_MAILBOX_DEL:
		return apply_mbox_del(st, txn, op, c);
	case STORE_CH_MAILBOX_RENAME:
		return apply_mbox_rename(st, txn, op, c);
	case STORE_CH_MSG_ADD:
		return apply_msg_add(st, txn, op, r);
	case STORE_CH_MSG_EXPUNGE:
		return apply_msg_expunge(st, txn, op, c);
	case STORE_CH_MSG_FLAGS:
		return apply_msg_flags(st, txn, op, c);
	case STORE_CH_SUBSCRIBE:
		return apply_subscribe(st, txn, c);
	case STORE_CH_KEYWORD_ADD:
		return apply_keyword_add(st, txn, c);
	}
	return STORE_INVAL;
}

static void refused(const struct store_apply *a, uint64_t seq, int type, int err)
{
	log_warn("store.apply_refused", "origin=%s seq=%" PRIu64 " type=%d error=\"%s\"",
		 a->origin, seq, type, store_strerror(err));
}

int store_op_apply(struct store *st, MDB_txn *txn, struct store_op *op)
{
	struct store_apply *a = op->u.apply;
	size_t olen = strlen(a->origin), i;
	char ak[APPLIED_KEY_MAX], sk[META_KEY_MAX];
	size_t aklen = store_applied_key(ak, a->origin, olen);
	uint64_t applied, last;
	int err;

	if ((err = store_meta_u64_or0(st, txn, ak, aklen, &applied)) != STORE_OK ||
	    (err = store_meta_u64_or0(st, txn, sk, meta_seq_key(sk, a->origin, olen), &last)) != STORE_OK)
		return err;
	/* a gap, a batch sent again, or records of origin written here by
	 * something other than this function */
	if (a->recs[0].c.seq != applied + 1 || last != applied) {
		refused(a, a->recs[0].c.seq, a->recs[0].c.type, STORE_INVAL);
		return STORE_INVAL;
	}
	for (i = 0; i < a->n; i++) {
		const struct store_apply_rec *r = &a->recs[i];

		err = apply_rec(st, txn, op, r);
		if (err == STORE_OK)
			err = fit(store_changelog_put(st, txn, a->origin, olen, &r->c));
		if (err != STORE_OK) {
			refused(a, r->c.seq, (int)r->c.type, err);
			return err;
		}
	}
	return store_meta_put(st, txn, ak, aklen, a->recs[a->n - 1].c.seq, 8);
}

/* ---- submit and reads ------------------------------------------------------------------ */

static void apply_done(int err, void *arg)
{
	struct store_apply *a = arg;
	store_done_cb *cb = a->cb;
	void *cb_arg = a->arg;

	free(a->recs);
	free(a->blob);
	free(a);
	if (cb != NULL)
		cb(err, cb_arg);
}

void store_apply_changes(struct store *st, const char *origin, const struct store_apply_rec *recs,
			 size_t n, store_done_cb *cb, void *arg)
{
	struct store_op *op = store_xcalloc(1, sizeof(*op));
	struct store_apply *a = store_xcalloc(1, sizeof(*a));
	int err = STORE_OK;

	op->type = OP_APPLY;
	op->cb = apply_done;
	op->arg = a;
	op->u.apply = a;
	a->cb = cb;
	a->arg = arg;
	/* a mirror holds one origin's ids: only its own origin applies */
	if (origin == NULL || origin[0] == '\0' || strnlen(origin, STORE_POP_MAX) >= STORE_POP_MAX ||
	    strcmp(origin, st->origin) != 0 || n == 0 || n > STORE_APPLY_MAX || recs == NULL)
		err = STORE_INVAL;
	else
		strcpy(a->origin, origin);
	if (err == STORE_OK)
		err = store_ch_copy_recs(recs, n, recs[0].c.seq, &a->recs, &a->blob);
	if (err == STORE_OK)
		a->n = n;
	if (err != STORE_OK) {
		op->err = err;
		op->prefailed = true;
	}
	store_submit(st, op);
}

uint64_t store_applied_seq(struct store *st, const char *origin)
{
	size_t origin_len = origin != NULL ? strnlen(origin, STORE_POP_MAX) : 0;
	char key[APPLIED_KEY_MAX];
	uint64_t v = 0;
	MDB_txn *txn;

	if (origin_len == 0 || origin_len >= STORE_POP_MAX)
		return 0;
	if (store_rd_begin(st, &txn) != STORE_OK)
		return 0;
	if (store_meta_u64_or0(st, txn, key, store_applied_key(key, origin, origin_len), &v) != STORE_OK)
		v = 0;
	mdb_txn_abort(txn);
	return v;
}
