/*
 * store_trim.c - trimming the changelog (store.h "generation, trimming,
 * snapshots"; docs/store.md): records the mirrors no longer need are
 * deleted in bounded ops, "trimmed/<origin>" remembers how far, and
 * "seq/<origin>" (store_changelog_last) is left alone.
 */
#include <stdlib.h>
#include <string.h>

#include "store_snapshot_int.h"

static bool origin_ok(const char *origin, size_t *len_r)
{
	size_t len = origin != NULL ? strnlen(origin, STORE_POP_MAX) : 0;

	*len_r = len;
	return len > 0 && len < STORE_POP_MAX;
}

uint64_t store_changelog_trimmed(struct store *st, const char *origin)
{
	char key[TRIMMED_KEY_MAX];
	uint64_t v = 0;
	size_t olen;
	MDB_txn *txn;

	if (!origin_ok(origin, &olen) || store_rd_begin(st, &txn) != STORE_OK)
		return 0;
	if (store_meta_u64_or0(st, txn, key,
			       snap_prefixed_key(key, META_TRIMMED_PREFIX, origin, olen),
			       &v) != STORE_OK)
		v = 0;
	mdb_txn_abort(txn);
	return v;
}

struct trim {
	char origin[STORE_POP_MAX];
	uint64_t upto, trimmed;
	size_t max;
	store_trim_cb *cb;
	void *arg;
};

static int op_trim(struct store *st, MDB_txn *txn, struct store_op *op)
{
	struct trim *t = op->u.fn.ctx;
	size_t olen = strlen(t->origin), n;
	char tk[TRIMMED_KEY_MAX], sk[META_KEY_MAX];
	size_t tklen = snap_prefixed_key(tk, META_TRIMMED_PREFIX, t->origin, olen);
	uint64_t trimmed, last, upto, seq;
	uint8_t kb[CHANGE_KEY_MAX];
	MDB_val k = { .mv_data = kb };
	int err, rc;

	if ((err = store_meta_u64_or0(st, txn, tk, tklen, &trimmed)) != STORE_OK ||
	    (err = store_meta_u64_or0(st, txn, sk, meta_seq_key(sk, t->origin, olen), &last)) != STORE_OK)
		return err;
	upto = t->upto < last ? t->upto : last;
	t->trimmed = trimmed;
	if (upto <= trimmed)
		return STORE_OK;
	/* seqs are consecutive; a record that is not there (never written
	 * on a store loaded from a snapshot) is simply skipped */
	for (seq = trimmed + 1, n = 0; seq <= upto && n < t->max; seq++, n++) {
		k.mv_size = change_key(kb, t->origin, olen, seq);
		rc = mdb_del(txn, st->dbi[DBI_CHANGELOG], &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return store_mdb_err(rc);
	}
	t->trimmed = seq - 1;
	return store_meta_put(st, txn, tk, tklen, t->trimmed, 8);
}

static void trim_done(int err, void *arg)
{
	struct trim *t = arg;

	if (t->cb != NULL)
		t->cb(err, t->trimmed, t->arg);
	free(t);
}

void store_changelog_trim(struct store *st, const char *origin, uint64_t upto, size_t max,
			  store_trim_cb *cb, void *arg)
{
	struct trim *t = store_xcalloc(1, sizeof(*t));
	size_t olen;
	int err = STORE_OK;

	t->cb = cb;
	t->arg = arg;
	t->upto = upto;
	t->max = max == 0 || max > STORE_TRIM_MAX ? STORE_TRIM_MAX : max;
	if (!origin_ok(origin, &olen))
		err = STORE_INVAL;
	else
		memcpy(t->origin, origin, olen);
	store_submit_fn(st, op_trim, t, trim_done, err);
}
