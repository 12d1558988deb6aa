/*
 * store_dir.c - the user directory shared across POPs: one versioned
 * record per user name, last writer wins, deletions kept as tombstones.
 *
 * Records (dirrecs, layout in store_private.h) carry the Lamport version
 * and origin POP of the name's last change.  A local change (store_ops.c
 * calls store_dir_local in the op's transaction) takes version
 * dir_clock + 1; a change received from a peer (store_dir_apply) wins
 * only if its (version, origin) is greater than the one held, and
 * dir_clock follows the greatest version ever received, so a later local
 * change always outranks everything this node has seen.
 *
 * Every record written, local or applied, gets the next local sequence
 * number (meta dir_lseq), indexed in dirseq (lseq -> name; a rewritten
 * name's old entry is removed), so store_dir_foreach_since(watermark)
 * hands a peer exactly what changed here since it last pulled, relayed
 * records included.  "dirpeer/<peer>" remembers up to which of a peer's
 * lseqs its records were applied here.
 *
 * A record tells only version, origin, whether it is a tombstone and the
 * home; the live user's data (hash, quota, enabled) stays in the users
 * db and is read from there.
 */
#include <stdlib.h>
#include <string.h>

#include "store_private.h"

/* A meta counter, 0 when absent. */
static int meta_u64(struct store *st, MDB_txn *txn, const char *key, size_t klen,
		    uint64_t *v_r)
{
	int err = store_meta_get_u64(st, txn, key, klen, v_r);

	return err == STORE_NOTFOUND ? STORE_OK : err;
}

static int clock_raise(struct store *st, MDB_txn *txn, uint64_t version)
{
	uint64_t clock;
	int err = meta_u64(st, txn, META_DIR_CLOCK, strlen(META_DIR_CLOCK), &clock);

	if (err != STORE_OK || version <= clock)
		return err;
	return store_meta_put(st, txn, META_DIR_CLOCK, strlen(META_DIR_CLOCK), version, 8);
}

static bool str_fits(const char *s, size_t max)
{
	return strnlen(s, max) < max;
}

static bool str_ok(const char *s, size_t max)
{
	return s[0] != '\0' && str_fits(s, max);
}

/* ---- inside a transaction -------------------------------------------------- */

int store_dir_load(struct store *st, MDB_txn *txn, const char *name, struct store_dirrec *d_r)
{
	size_t len = strnlen(name, STORE_NAME_MAX);
	MDB_val k = { .mv_size = len, .mv_data = (void *)name }, v;
	int rc;

	if (len == 0 || len >= STORE_NAME_MAX)
		return STORE_NOTFOUND;
	rc = mdb_get(txn, st->dbi[DBI_DIRRECS], &k, &v);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? STORE_NOTFOUND : STORE_IO;
	return dirrec_decode(&v, d_r);
}

int store_dir_put(struct store *st, MDB_txn *txn, const char *name, struct store_dirrec *d)
{
	struct store_dirrec old;
	uint8_t rec[DIRREC_MAX], sk[DIRSEQ_KEY_LEN];
	size_t name_len = strlen(name), len;
	uint64_t lseq;
	int err = store_dir_load(st, txn, name, &old);

	if (err == STORE_OK) {
		be64_put(sk, old.lseq);
		if ((err = store_del(txn, st->dbi[DBI_DIRSEQ], sk, sizeof(sk))) != STORE_OK)
			return err;
	} else if (err != STORE_NOTFOUND) {
		return err;
	}
	if ((err = meta_u64(st, txn, META_DIR_LSEQ, strlen(META_DIR_LSEQ), &lseq)) != STORE_OK)
		return err;
	if (lseq == UINT64_MAX)
		return STORE_FULL;
	d->lseq = lseq + 1;
	be64_put(sk, d->lseq);
	err = store_put(txn, st->dbi[DBI_DIRSEQ], sk, sizeof(sk), name, name_len, MDB_NOOVERWRITE);
	if (err != STORE_OK)
		return err == STORE_EXISTS ? STORE_IO : err;
	len = dirrec_encode(d, rec);
	if ((err = store_put(txn, st->dbi[DBI_DIRRECS], name, name_len, rec, len, 0)) != STORE_OK ||
	    (err = store_meta_put(st, txn, META_DIR_LSEQ, strlen(META_DIR_LSEQ), d->lseq, 8)) !=
		    STORE_OK)
		return err;
	return clock_raise(st, txn, d->version);
}

int store_dir_local(struct store *st, MDB_txn *txn, const char *name, const char *home,
		    bool deleted)
{
	struct store_dirrec d = { .deleted = deleted };
	size_t home_len = strnlen(home, STORE_POP_MAX - 1);
	uint64_t clock;
	int err = meta_u64(st, txn, META_DIR_CLOCK, strlen(META_DIR_CLOCK), &clock);

	if (err != STORE_OK)
		return err;
	if (clock == UINT64_MAX)
		return STORE_FULL;
	d.version = clock + 1;
	memcpy(d.origin, st->origin, st->origin_len);
	memcpy(d.home, home, home_len);
	return store_dir_put(st, txn, name, &d);
}

/* ---- reads ------------------------------------------------------------------ */

/* The public view of name's record d: a live user from the users db. */
static int fill_rec(struct store *st, MDB_txn *txn, const char *name,
		    const struct store_dirrec *d, struct store_dir_rec *r_r)
{
	int err;

	memset(r_r, 0, sizeof(*r_r));
	r_r->version = d->version;
	memcpy(r_r->origin, d->origin, sizeof(r_r->origin));
	r_r->deleted = d->deleted;
	r_r->lseq = d->lseq;
	if (!d->deleted) {
		err = store_load_user(st, txn, name, &r_r->u);
		return err == STORE_NOTFOUND ? STORE_IO : err;	/* live record, no user */
	}
	strcpy(r_r->u.name, name);
	memcpy(r_r->u.home, d->home, sizeof(r_r->u.home));
	return STORE_OK;
}

uint64_t store_dir_lseq(struct store *st)
{
	uint64_t lseq = 0;
	MDB_txn *txn;

	if (store_rd_begin(st, &txn) != STORE_OK)
		return 0;
	if (meta_u64(st, txn, META_DIR_LSEQ, strlen(META_DIR_LSEQ), &lseq) != STORE_OK)
		lseq = 0;
	mdb_txn_abort(txn);
	return lseq;
}

int store_dir_foreach_since(struct store *st, uint64_t since, size_t max,
			    int (*cb)(const struct store_dir_rec *r, void *arg), void *arg)
{
	uint8_t kb[DIRSEQ_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	MDB_cursor_op how = MDB_SET_RANGE;
	struct store_dirrec d;
	struct store_dir_rec r;
	char name[STORE_NAME_MAX];
	MDB_cursor *cur;
	MDB_txn *txn;
	size_t count = 0;
	int err, rc = 0;

	if (since == UINT64_MAX)
		return STORE_OK;
	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	if (mdb_cursor_open(txn, st->dbi[DBI_DIRSEQ], &cur) != 0) {
		mdb_txn_abort(txn);
		return STORE_IO;
	}
	be64_put(kb, since + 1);
	while ((max == 0 || count < max) && (rc = mdb_cursor_get(cur, &k, &v, how)) == 0) {
		how = MDB_NEXT;
		if (k.mv_size != DIRSEQ_KEY_LEN || v.mv_size == 0 || v.mv_size >= sizeof(name)) {
			err = STORE_IO;
			break;
		}
		memcpy(name, v.mv_data, v.mv_size);
		name[v.mv_size] = '\0';
		err = store_dir_load(st, txn, name, &d);
		if (err == STORE_OK && d.lseq != be64_get(k.mv_data))
			err = STORE_IO;	/* index and record disagree */
		if (err == STORE_NOTFOUND)
			err = STORE_IO;	/* index points nowhere */
		if (err == STORE_OK)
			err = fill_rec(st, txn, name, &d, &r);
		if (err != STORE_OK)
			break;
		count++;
		if (cb(&r, arg) != 0)
			break;
	}
	if (err == STORE_OK && rc != 0 && rc != MDB_NOTFOUND)
		err = STORE_IO;
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return err;
}

int store_dir_get(struct store *st, const char *name, struct store_dir_rec *r_r)
{
	struct store_dirrec d;
	MDB_txn *txn;
	int err;

	if (name == NULL)
		return STORE_NOTFOUND;
	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	err = store_dir_load(st, txn, name, &d);
	if (err == STORE_OK)
		err = fill_rec(st, txn, name, &d, r_r);
	mdb_txn_abort(txn);
	return err;
}

uint64_t store_dir_peer_lseq(struct store *st, const char *peer)
{
	size_t peer_len = peer != NULL ? strnlen(peer, STORE_POP_MAX) : 0;
	char key[DIRPEER_KEY_MAX];
	uint64_t v = 0;
	MDB_txn *txn;

	if (peer_len == 0 || peer_len >= STORE_POP_MAX)
		return 0;
	if (store_rd_begin(st, &txn) != STORE_OK)
		return 0;
	if (meta_u64(st, txn, key, dirpeer_key(key, peer, peer_len), &v) != STORE_OK)
		v = 0;
	mdb_txn_abort(txn);
	return v;
}

/* ---- applying a peer's records ------------------------------------------------ */

/* What an OP_DIR_APPLY carries.  The writer reads recs and writes
 * applied; apply_done (the op's callback, on the loop thread) reports
 * and frees it. */
struct store_dir_apply {
	char peer[STORE_POP_MAX];
	uint64_t peer_lseq;
	struct store_dir_rec *recs;
	size_t n;
	size_t applied;			/* set by the writer */
	size_t *applied_r;		/* the caller's */
	store_done_cb *cb;
	void *arg;
};

static void apply_done(int err, void *arg)
{
	struct store_dir_apply *a = arg;
	store_done_cb *cb = a->cb;
	void *cb_arg = a->arg;

	if (a->applied_r != NULL)
		*a->applied_r = err == STORE_OK ? a->applied : 0;
	free(a->recs);
	free(a);
	if (cb != NULL)
		cb(err, cb_arg);
}

static bool rec_ok(const struct store_dir_rec *r)
{
	return str_ok(r->u.name, STORE_NAME_MAX) && str_fits(r->u.home, STORE_POP_MAX) &&
	       str_fits(r->u.pwhash, STORE_HASH_MAX) && str_ok(r->origin, STORE_POP_MAX) &&
	       r->version != 0;
}

void store_dir_apply(struct store *st, const char *peer, uint64_t peer_lseq,
		     const struct store_dir_rec *recs, size_t n, size_t *n_applied_r,
		     store_done_cb *cb, void *arg)
{
	struct store_op *op = store_xcalloc(1, sizeof(*op));
	struct store_dir_apply *a = store_xcalloc(1, sizeof(*a));
	int err = STORE_OK;
	size_t i;

	op->type = OP_DIR_APPLY;
	op->cb = apply_done;
	op->arg = a;
	op->u.dir = a;
	a->peer_lseq = peer_lseq;
	a->applied_r = n_applied_r;
	a->cb = cb;
	a->arg = arg;
	if (peer == NULL || !str_ok(peer, STORE_POP_MAX) || n > STORE_DIR_APPLY_MAX ||
	    (n > 0 && recs == NULL))
		err = STORE_INVAL;
	for (i = 0; err == STORE_OK && i < n; i++) {
		if (!rec_ok(&recs[i]))
			err = STORE_INVAL;
	}
	if (err == STORE_OK) {
		strcpy(a->peer, peer);
		if (n > 0 && (a->recs = malloc(n * sizeof(*recs))) == NULL)
			err = STORE_IO;
		else if (n > 0)
			memcpy(a->recs, recs, n * sizeof(*recs));
		a->n = a->recs != NULL ? n : 0;
	}
	if (err != STORE_OK) {
		op->err = err;
		op->prefailed = true;
	}
	store_submit(st, op);
}

/* Does r outrank the record held, d? */
static bool newer(const struct store_dir_rec *r, const struct store_dirrec *d)
{
	if (r->version != d->version)
		return r->version > d->version;
	return strcmp(r->origin, d->origin) > 0;
}

/* Make r, which won, this node's state for its name. */
static int apply_one(struct store *st, MDB_txn *txn, struct store_op *op,
		     const struct store_dir_rec *r)
{
	struct store_dirrec d = { .version = r->version, .deleted = r->deleted };
	struct store_user u;
	const char *home = r->u.home;
	bool exists;
	int err = store_load_user(st, txn, r->u.name, &u);

	if (err != STORE_OK && err != STORE_NOTFOUND)
		return err;
	exists = err == STORE_OK;
	if (r->deleted) {
		if (exists && home[0] == '\0')
			home = u.home;	/* the peer did not know it; we do */
		if (exists && (err = store_user_remove(st, txn, op, &u)) != STORE_OK)
			return err;
	} else if (exists) {
		memcpy(u.home, r->u.home, sizeof(u.home));
		memcpy(u.pwhash, r->u.pwhash, sizeof(u.pwhash));
		u.quota = r->u.quota;
		u.enabled = r->u.enabled;
		if ((err = store_user_put(st, txn, &u, STORE_CH_USER_UPDATE)) != STORE_OK)
			return err;
	} else {
		u = r->u;	/* id, used, messages, created: assigned below */
		if ((err = store_user_create(st, txn, op, &u)) != STORE_OK)
			return err;
	}
	memcpy(d.origin, r->origin, sizeof(d.origin));
	memcpy(d.home, home, strnlen(home, STORE_POP_MAX - 1));
	return store_dir_put(st, txn, r->u.name, &d);
}

int store_op_dir_apply(struct store *st, MDB_txn *txn, struct store_op *op)
{
	struct store_dir_apply *a = op->u.dir;
	char key[DIRPEER_KEY_MAX];
	size_t klen = dirpeer_key(key, a->peer, strlen(a->peer)), i;
	struct store_dirrec held;
	uint64_t mark;
	int err;

	a->applied = 0;
	for (i = 0; i < a->n; i++) {
		const struct store_dir_rec *r = &a->recs[i];

		err = store_dir_load(st, txn, r->u.name, &held);
		if (err == STORE_OK && !newer(r, &held))
			continue;	/* stale, or the same change again */
		if (err != STORE_OK && err != STORE_NOTFOUND)
			return err;
		if ((err = apply_one(st, txn, op, r)) != STORE_OK)
			return err;
		a->applied++;
	}
	/* Lamport: store_dir_put raised dir_clock to every winner's version;
	 * a stale record's version is at most the held one's, which is at
	 * most dir_clock already. */
	if ((err = meta_u64(st, txn, key, klen, &mark)) != STORE_OK)
		return err;
	if (a->peer_lseq <= mark)
		return STORE_OK;
	return store_meta_put(st, txn, key, klen, a->peer_lseq, 8);
}
