/*
 * store_generation.c - the generation (store.h "generation, trimming,
 * snapshots"; docs/store.md): 16 random bytes in meta "generation"
 * naming one history of the origin's data; read, checked and set here,
 * read and written in a snapshot's transactions through
 * snap_gen_get / snap_gen_put (store_snapshot_int.h).
 */
#include <stdlib.h>
#include <string.h>

#include "store_snapshot_int.h"

static const char hexdig[] = "0123456789abcdef";

int store_generation_check(const char *hex)
{
	size_t i;

	if (hex == NULL || strnlen(hex, STORE_GEN_HEX) != STORE_GEN_HEX - 1)
		return STORE_INVAL;
	for (i = 0; i < STORE_GEN_HEX - 1; i++)
		if (strchr(hexdig, hex[i]) == NULL || hex[i] == '\0')
			return STORE_INVAL;
	return STORE_OK;
}

static void gen_from_hex(const char *hex, uint8_t out[STORE_GEN_LEN])
{
	for (size_t i = 0; i < STORE_GEN_LEN; i++)
		out[i] = (uint8_t)((strchr(hexdig, hex[2 * i]) - hexdig) << 4 |
				   (strchr(hexdig, hex[2 * i + 1]) - hexdig));
}

static void gen_to_hex(const uint8_t *g, char hex[STORE_GEN_HEX])
{
	for (size_t i = 0; i < STORE_GEN_LEN; i++) {
		hex[2 * i] = hexdig[g[i] >> 4];
		hex[2 * i + 1] = hexdig[g[i] & 15];
	}
	hex[STORE_GEN_HEX - 1] = '\0';
}

/* The generation in txn: STORE_OK (hex set), STORE_NOTFOUND (hex ""), STORE_IO. */
int snap_gen_get(struct store *st, MDB_txn *txn, char hex[STORE_GEN_HEX])
{
	MDB_val k = { .mv_size = strlen(META_GENERATION), .mv_data = META_GENERATION }, v;
	int rc = mdb_get(txn, st->dbi[DBI_META], &k, &v);

	hex[0] = '\0';
	if (rc == MDB_NOTFOUND)
		return STORE_NOTFOUND;
	if (rc != 0 || v.mv_size != STORE_GEN_LEN)
		return STORE_IO;
	gen_to_hex(v.mv_data, hex);
	return STORE_OK;
}

int snap_gen_put(struct store *st, MDB_txn *txn, const char *hex)
{
	uint8_t g[STORE_GEN_LEN];

	gen_from_hex(hex, g);
	return store_put(txn, st->dbi[DBI_META], META_GENERATION, strlen(META_GENERATION), g,
			 sizeof(g), 0);
}

int store_generation(struct store *st, char hex[STORE_GEN_HEX])
{
	MDB_txn *txn;
	int err;

	hex[0] = '\0';
	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	err = snap_gen_get(st, txn, hex);
	mdb_txn_abort(txn);
	return err;
}

struct gen_set {
	char hex[STORE_GEN_HEX];
	store_done_cb *cb;
	void *arg;
};

static int op_gen_set(struct store *st, MDB_txn *txn, struct store_op *op)
{
	const struct gen_set *g = op->u.fn.ctx;

	return snap_gen_put(st, txn, g->hex);
}

static void gen_set_done(int err, void *arg)
{
	struct gen_set *g = arg;
	store_done_cb *cb = g->cb;
	void *cb_arg = g->arg;

	free(g);
	if (cb != NULL)
		cb(err, cb_arg);
}

void store_set_generation(struct store *st, const char *hex, store_done_cb *cb, void *arg)
{
	struct gen_set *g = store_xcalloc(1, sizeof(*g));
	int err = store_generation_check(hex);

	g->cb = cb;
	g->arg = arg;
	if (err == STORE_OK)
		memcpy(g->hex, hex, STORE_GEN_HEX);
	store_submit_fn(st, op_gen_set, g, gen_set_done, err);
}
