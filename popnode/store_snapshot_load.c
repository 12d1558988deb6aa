/*
 * store_snapshot_load.c - loading a snapshot (store.h "generation,
 * trimming, snapshots"; docs/store.md): into a fresh store, item by item
 * with checks, in ops of the writer thread, then its position and
 * counters; and replacing a store's environment with a loaded one in
 * place, so every holder of the struct store keeps a valid pointer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store_snapshot_int.h"

/* ---- loading a snapshot ------------------------------------------------------ */

struct snap_load {
	struct store_snap_item *items;	/* pointers into blob */
	size_t n;
	uint8_t *blob;
	store_done_cb *cb;
	void *arg;
};

static int load_fit(int err)
{
	return err == STORE_NOTFOUND || err == STORE_EXISTS ? STORE_INVAL : err;
}

/* Copy a name of 1..max-1 bytes without NUL into buf. */
static int item_name(const struct store_snap_item *it, char *buf, size_t max)
{
	if (it->data_len == 0 || it->data_len >= max || memchr(it->data, 0, it->data_len) != NULL)
		return STORE_INVAL;
	memcpy(buf, it->data, it->data_len);
	buf[it->data_len] = '\0';
	return STORE_OK;
}

static int has_user(struct store *st, MDB_txn *txn, uint32_t userid)
{
	uint8_t kb[USERID_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	int rc;

	userid_key(kb, userid);
	rc = mdb_get(txn, st->dbi[DBI_USERIDS], &k, &v);
	return rc == MDB_NOTFOUND ? STORE_INVAL : store_mdb_err(rc);
}

static int has_mbox(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid)
{
	uint8_t kb[MBOX_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	int rc;

	mbox_key(kb, userid, mboxid);
	rc = mdb_get(txn, st->dbi[DBI_MAILBOXES], &k, &v);
	return rc == MDB_NOTFOUND ? STORE_INVAL : store_mdb_err(rc);
}

static int load_body(struct store *st, MDB_txn *txn, const struct store_snap_item *it)
{
	uint8_t hash[STORE_BODY_HASH_LEN], ref[BODYREF_REC_LEN];
	MDB_val k = { .mv_size = STORE_BODY_HASH_LEN, .mv_data = (void *)it->hash }, v;
	int rc, err;

	if (store_sha256(it->body, it->body_len, hash) < 0)
		return STORE_IO;
	if (memcmp(hash, it->hash, sizeof(hash)) != 0 || it->meta_len > STORE_META_MAX)
		return STORE_INVAL;
	v.mv_size = 1 + it->body_len;
	rc = mdb_put(txn, st->dbi[DBI_BODIES], &k, &v, MDB_NOOVERWRITE | MDB_RESERVE);
	if (rc != 0)
		return load_fit(store_mdb_err(rc));
	*(uint8_t *)v.mv_data = STORE_REC_V1;
	if (it->body_len > 0)
		memcpy((uint8_t *)v.mv_data + 1, it->body, it->body_len);
	ref[0] = STORE_REC_V1;
	be64_put(ref + 1, 0);	/* the messages loaded later count */
	be64_put(ref + 9, it->body_len);
	err = store_put(txn, st->dbi[DBI_BODYREFS], it->hash, STORE_BODY_HASH_LEN, ref, sizeof(ref),
			MDB_NOOVERWRITE);
	if (err != STORE_OK || it->meta == NULL || it->meta_len == 0)
		return load_fit(err);
	v.mv_size = 1 + it->meta_len;
	rc = mdb_put(txn, st->dbi[DBI_BODYMETA], &k, &v, MDB_NOOVERWRITE | MDB_RESERVE);
	if (rc != 0)
		return load_fit(store_mdb_err(rc));
	*(uint8_t *)v.mv_data = STORE_REC_V1;
	memcpy((uint8_t *)v.mv_data + 1, it->meta, it->meta_len);
	return STORE_OK;
}

static int load_user(struct store *st, MDB_txn *txn, const struct store_snap_item *it)
{
	const uint8_t *p = it->data;
	uint8_t idk[USERID_KEY_LEN];
	struct store_user u;
	MDB_val k, v;
	size_t nl;
	int err;

	if (it->data_len < 1)
		return STORE_INVAL;
	nl = p[0];
	if (nl == 0 || nl >= STORE_NAME_MAX || it->data_len < 1 + nl || memchr(p + 1, 0, nl))
		return STORE_INVAL;
	k.mv_size = nl;
	k.mv_data = (void *)(p + 1);
	v.mv_size = it->data_len - 1 - nl;
	v.mv_data = (void *)(p + 1 + nl);
	if (user_rec_decode(&k, &v, &u) != STORE_OK || u.id == 0 || u.id != it->a)
		return STORE_INVAL;
	if ((err = store_put(txn, st->dbi[DBI_USERS], p + 1, nl, v.mv_data, v.mv_size,
			     MDB_NOOVERWRITE)) != STORE_OK)
		return load_fit(err);
	userid_key(idk, u.id);
	return load_fit(store_put(txn, st->dbi[DBI_USERIDS], idk, sizeof(idk), p + 1, nl,
				  MDB_NOOVERWRITE));
}

static int load_mbox(struct store *st, MDB_txn *txn, const struct store_snap_item *it)
{
	MDB_val v = { .mv_size = it->data_len, .mv_data = (void *)it->data };
	uint8_t kb[MBOX_KEY_LEN], nk[MBOXNAME_KEY_MAX], idb[4];
	struct store_mailbox mb;
	size_t nklen;
	int err;

	if ((err = has_user(st, txn, it->a)) != STORE_OK)
		return err;
	if (mbox_rec_decode(&v, &mb) != STORE_OK || mb.id == 0 || mb.id != it->b ||
	    store_mailbox_name_check(mb.name) != STORE_OK ||
	    strcmp(store_mbox_canon(mb.name), mb.name) != 0 || strlen(mb.name) != it->data_len -
	    MBOX_REC_FIXED)
		return STORE_INVAL;
	mbox_key(kb, it->a, it->b);
	if ((err = store_put(txn, st->dbi[DBI_MAILBOXES], kb, sizeof(kb), it->data, it->data_len,
			     MDB_NOOVERWRITE)) != STORE_OK)
		return load_fit(err);
	if ((nklen = mboxname_key(nk, it->a, mb.name)) == 0)
		return STORE_IO;
	be32_put(idb, mb.id);
	return load_fit(store_put(txn, st->dbi[DBI_MBOXNAMES], nk, nklen, idb, 4, MDB_NOOVERWRITE));
}

static int load_sub(struct store *st, MDB_txn *txn, const struct store_snap_item *it)
{
	char name[STORE_MBOX_MAX];
	uint8_t nk[MBOXNAME_KEY_MAX], rec[1 + STORE_MBOX_MAX];
	size_t nklen, len;
	int err;

	if ((err = item_name(it, name, sizeof(name))) != STORE_OK ||
	    store_mailbox_name_check(name) != STORE_OK ||
	    strcmp(store_mbox_canon(name), name) != 0)
		return STORE_INVAL;
	if ((err = has_user(st, txn, it->a)) != STORE_OK)
		return err;
	if ((nklen = mboxname_key(nk, it->a, name)) == 0)
		return STORE_IO;
	len = strlen(name);
	rec[0] = STORE_REC_V1;
	memcpy(rec + 1, name, len);
	return load_fit(store_put(txn, st->dbi[DBI_SUBS], nk, nklen, rec, 1 + len,
				  MDB_NOOVERWRITE));
}

static int load_keyword(struct store *st, MDB_txn *txn, const struct store_snap_item *it)
{
	char name[STORE_KEYWORD_MAX + 1];
	uint8_t kb[KEYWORD_KEY_LEN], rec[1 + STORE_KEYWORD_MAX];
	size_t len;
	int err;

	if ((err = item_name(it, name, sizeof(name))) != STORE_OK ||
	    store_keyword_check(name) != STORE_OK || it->c >= STORE_KEYWORDS_MAX)
		return STORE_INVAL;
	if ((err = has_mbox(st, txn, it->a, it->b)) != STORE_OK)
		return err;
	len = strlen(name);
	keyword_key(kb, it->a, it->b, it->c);
	rec[0] = STORE_REC_V1;
	memcpy(rec + 1, name, len);
	return load_fit(store_put(txn, st->dbi[DBI_KEYWORDS], kb, sizeof(kb), rec, 1 + len,
				  MDB_NOOVERWRITE));
}

static int load_vanished(struct store *st, MDB_txn *txn, const struct store_snap_item *it)
{
	uint8_t kb[MSG_KEY_LEN], rec[VANISHED_REC_LEN];
	int err;

	if (it->data_len != 8 || be64_get(it->data) == 0 || it->c == 0)
		return STORE_INVAL;
	if ((err = has_mbox(st, txn, it->a, it->b)) != STORE_OK)
		return err;
	msg_key(kb, it->a, it->b, it->c);
	rec[0] = STORE_REC_V1;
	memcpy(rec + 1, it->data, 8);
	return load_fit(store_put(txn, st->dbi[DBI_VANISHED], kb, sizeof(kb), rec, sizeof(rec),
				  MDB_NOOVERWRITE));
}

static int load_msg(struct store *st, MDB_txn *txn, const struct store_snap_item *it)
{
	MDB_val v = { .mv_size = it->data_len, .mv_data = (void *)it->data }, rk, rv;
	uint8_t kb[MSG_KEY_LEN], ref[BODYREF_REC_LEN];
	struct store_msg m;
	size_t prefix_len;
	int err, rc;

	if (msg_rec_decode(&v, &m, NULL, &prefix_len) != STORE_OK || it->c == 0 ||
	    it->c == UINT32_MAX || (m.flags & ~(uint32_t)STORE_F_MASK) != 0 || m.modseq == 0 ||
	    m.size < prefix_len || prefix_len > STORE_PREFIX_MAX)
		return STORE_INVAL;
	if ((err = has_mbox(st, txn, it->a, it->b)) != STORE_OK)
		return err;
	rk.mv_size = STORE_BODY_HASH_LEN;
	rk.mv_data = m.hash;
	rc = mdb_get(txn, st->dbi[DBI_BODYREFS], &rk, &rv);
	if (rc == MDB_NOTFOUND)
		return STORE_INVAL;	/* its body was not loaded */
	if (rc != 0)
		return store_mdb_err(rc);
	if (rv.mv_size != BODYREF_REC_LEN || *(const uint8_t *)rv.mv_data != STORE_REC_V1)
		return STORE_IO;
	if (be64_get((const uint8_t *)rv.mv_data + 9) != m.size - prefix_len)
		return STORE_INVAL;
	memcpy(ref, rv.mv_data, sizeof(ref));
	be64_put(ref + 1, be64_get(ref + 1) + 1);
	msg_key(kb, it->a, it->b, it->c);
	if ((err = store_put(txn, st->dbi[DBI_MESSAGES], kb, sizeof(kb), it->data, it->data_len,
			     MDB_NOOVERWRITE)) != STORE_OK)
		return load_fit(err);
	return store_put(txn, st->dbi[DBI_BODYREFS], m.hash, STORE_BODY_HASH_LEN, ref, sizeof(ref),
			 0);
}

static int load_item(struct store *st, MDB_txn *txn, const struct store_snap_item *it)
{
	switch (it->type) {
	case STORE_SNAP_BODY:
		return load_body(st, txn, it);
	case STORE_SNAP_USER:
		return load_user(st, txn, it);
	case STORE_SNAP_MAILBOX:
		return load_mbox(st, txn, it);
	case STORE_SNAP_SUB:
		return load_sub(st, txn, it);
	case STORE_SNAP_KEYWORD:
		return load_keyword(st, txn, it);
	case STORE_SNAP_VANISHED:
		return load_vanished(st, txn, it);
	case STORE_SNAP_MESSAGE:
		return load_msg(st, txn, it);
	}
	return STORE_INVAL;
}

static int op_load(struct store *st, MDB_txn *txn, struct store_op *op)
{
	const struct snap_load *l = op->u.fn.ctx;
	int err;

	for (size_t i = 0; i < l->n; i++) {
		if ((err = load_item(st, txn, &l->items[i])) != STORE_OK) {
			log_warn("store.snapshot_refused", "item=%zu type=%d a=%u b=%u c=%u error=\"%s\"",
				 i, (int)l->items[i].type, l->items[i].a, l->items[i].b,
				 l->items[i].c, store_strerror(err));
			return err;
		}
	}
	return STORE_OK;
}

static void load_done(int err, void *arg)
{
	struct snap_load *l = arg;
	store_done_cb *cb = l->cb;
	void *cb_arg = l->arg;

	free(l->items);
	free(l->blob);
	free(l);
	if (cb != NULL)
		cb(err, cb_arg);
}

/* Copy items and what they point to into l. */
static int copy_items(struct snap_load *l, const struct store_snap_item *items, size_t n)
{
	size_t total = 0, off = 0, i;

	for (i = 0; i < n; i++) {
		const struct store_snap_item *it = &items[i];

		if ((it->data == NULL && it->data_len > 0) || (it->body == NULL && it->body_len > 0) ||
		    (it->meta == NULL && it->meta_len > 0) ||
		    it->data_len > SIZE_MAX / 4 || it->body_len > SIZE_MAX / 4 ||
		    it->meta_len > SIZE_MAX / 4 ||
		    total > SIZE_MAX / 4 - it->data_len - it->body_len - it->meta_len)
			return STORE_INVAL;
		total += it->data_len + it->body_len + it->meta_len;
	}
	l->items = malloc(n * sizeof(*items));
	l->blob = malloc(total > 0 ? total : 1);
	if (l->items == NULL || l->blob == NULL)
		return STORE_IO;
	memcpy(l->items, items, n * sizeof(*items));
	for (i = 0; i < n; i++) {
		struct store_snap_item *it = &l->items[i];

#define TAKE(p, len)                                          \
		if (items[i].p != NULL) {                     \
			it->p = l->blob + off;                \
			if (items[i].len > 0)                 \
				memcpy(l->blob + off, items[i].p, items[i].len); \
			off += items[i].len;                  \
		}
		TAKE(data, data_len)
		TAKE(body, body_len)
		TAKE(meta, meta_len)
#undef TAKE
	}
	l->n = n;
	return STORE_OK;
}

void store_snap_load(struct store *st, const struct store_snap_item *items, size_t n,
		     store_done_cb *cb, void *arg)
{
	struct snap_load *l = store_xcalloc(1, sizeof(*l));
	int err = STORE_OK;

	l->cb = cb;
	l->arg = arg;
	if (n == 0 || n > STORE_SNAP_LOAD_MAX || items == NULL)
		err = STORE_INVAL;
	else
		err = copy_items(l, items, n);
	store_submit_fn(st, op_load, l, load_done, err);
}

struct snap_finish {
	struct store_snap_info info;
	bool mirror;
	store_done_cb *cb;
	void *arg;
};

static int op_finish(struct store *st, MDB_txn *txn, struct store_op *op)
{
	const struct snap_finish *f = op->u.fn.ctx;
	char key[TRIMMED_KEY_MAX + APPLIED_KEY_MAX];
	uint64_t seq = f->info.seq;
	int err;

	if ((err = store_meta_put(st, txn, key, meta_seq_key(key, st->origin, st->origin_len), seq,
				  8)) != STORE_OK ||
	    (err = store_meta_put(st, txn, key, snap_prefixed_key(key, META_TRIMMED_PREFIX,
								  st->origin, st->origin_len),
				  seq, 8)) != STORE_OK ||
	    (f->mirror &&
	     (err = store_meta_put(st, txn, key, snap_prefixed_key(key, META_APPLIED_PREFIX,
								   st->origin, st->origin_len),
				   seq, 8)) != STORE_OK) ||
	    (err = snap_gen_put(st, txn, f->info.generation)) != STORE_OK ||
	    (err = store_meta_raise(st, txn, META_NEXT_USERID, f->info.next_userid, 4)) != STORE_OK ||
	    (err = store_meta_raise(st, txn, META_NEXT_MBOXID, f->info.next_mboxid, 4)) != STORE_OK ||
	    (err = store_meta_raise(st, txn, META_UIDVALIDITY, f->info.uidvalidity, 4)) != STORE_OK ||
	    (err = store_meta_raise(st, txn, META_DIR_LSEQ, f->info.dir_lseq, 8)) != STORE_OK)
		return err;
	return STORE_OK;
}

static void finish_done(int err, void *arg)
{
	struct snap_finish *f = arg;
	store_done_cb *cb = f->cb;
	void *cb_arg = f->arg;

	free(f);
	if (cb != NULL)
		cb(err, cb_arg);
}

void store_snap_finish(struct store *st, const struct store_snap_info *info, bool mirror,
		       store_done_cb *cb, void *arg)
{
	struct snap_finish *f = store_xcalloc(1, sizeof(*f));

	f->cb = cb;
	f->arg = arg;
	f->mirror = mirror;
	if (info != NULL)
		f->info = *info;
	store_submit_fn(st, op_finish, f, finish_done,
			info != NULL && store_generation_check(info->generation) == STORE_OK
				? STORE_OK : STORE_INVAL);
}

/* ---- replacing the environment ------------------------------------------------------- */

static void fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		if (fsync(fd) != 0)
			log_warn("store.fsync_dir", "dir=%s error=\"%s\"", dir, strerror(errno));
		close(fd);
	}
}

static void writer_stop(struct store *st)
{
	pthread_mutex_lock(&st->mu);
	st->stopping = true;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->mu);
	if (st->writer_started)
		pthread_join(st->writer, NULL);
	st->writer_started = false;
}

/* Open st->env again and restart the writer; a store that cannot be
 * reopened cannot go on. */
static void reopen_or_die(struct store *st)
{
	const char *why = NULL;

	if (store_env_open(st, &why) < 0) {
		log_err("store.reopen_failed", "dir=%s error=\"%s\"", st->dir, why);
		abort();
	}
	pthread_mutex_lock(&st->mu);
	st->stopping = false;
	pthread_mutex_unlock(&st->mu);
	if (store_writer_start(st, &why) < 0) {
		log_err("store.reopen_failed", "dir=%s error=\"%s\"", st->dir, why);
		abort();
	}
}

int store_replace(struct store *st, const char *src_dir, const char **why_r)
{
	char from[STORE_DIR_MAX + 16], to[STORE_DIR_MAX + 16], lock[STORE_DIR_MAX + 16];
	struct stat sb;
	bool busy;

	pthread_mutex_lock(&st->mu);
	busy = st->pending > 0 || !STAILQ_EMPTY(&st->queue) || !STAILQ_EMPTY(&st->done);
	pthread_mutex_unlock(&st->mu);
	if (busy || st->snap_readers > 0 || st->in_dispatch || st->stopping) {
		*why_r = "store busy";
		return STORE_EXISTS;
	}
	if (strlen(src_dir) >= STORE_DIR_MAX) {
		*why_r = "path too long";
		return STORE_IO;
	}
	snprintf(from, sizeof(from), "%s/data.mdb", src_dir);
	snprintf(to, sizeof(to), "%s/data.mdb", st->dir);
	snprintf(lock, sizeof(lock), "%s/lock.mdb", src_dir);
	if (stat(from, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		*why_r = "no loaded store there";
		return STORE_NOTFOUND;
	}
	writer_stop(st);
	mdb_env_close(st->env);
	st->env = NULL;
	if (rename(from, to) != 0) {
		*why_r = strerror(errno);
		log_err("store.replace_failed", "dir=%s from=%s error=\"%s\"", st->dir, src_dir,
			*why_r);
		reopen_or_die(st);
		return STORE_IO;
	}
	fsync_dir(st->dir);
	unlink(lock);
	rmdir(src_dir);
	reopen_or_die(st);
	log_info("store.replaced", "dir=%s from=%s", st->dir, src_dir);
	return STORE_OK;
}
