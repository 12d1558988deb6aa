/*
 * store.c - opening and closing the LMDB store, the directory reads and
 * the original message reads, and statistics.  The IMAP reads live in
 * store_read.c; writes in store_write.c / store_submit.c and the
 * store_*ops.c files.
 *
 * The environment is opened with LMDB's default durability (no MDB_NOSYNC,
 * no MDB_NOMETASYNC), so mdb_txn_commit returns only after fsync; MDB_NOTLS
 * lets any thread run reads, each in its own short read-only transaction
 * (begin ... abort), which never waits for the writer.  Reads see the last
 * committed state, i.e. only what has been acknowledged or is about to be.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "log.h"
#include "store_private.h"

static const char *const dbi_names[DBI_COUNT] = {
	[DBI_USERS] = "users",
	[DBI_USERIDS] = "userids",
	[DBI_MAILBOXES] = "mailboxes",
	[DBI_MBOXNAMES] = "mboxnames",
	[DBI_MESSAGES] = "messages",
	[DBI_BODIES] = "bodies",
	[DBI_BODYREFS] = "bodyrefs",
	[DBI_CHANGELOG] = "changelog",
	[DBI_META] = "meta",
	[DBI_SUBS] = "subs",
	[DBI_KEYWORDS] = "keywords",
	[DBI_VANISHED] = "vanished",
	[DBI_BODYMETA] = "bodymeta",
	[DBI_DIRRECS] = "dirrecs",
	[DBI_DIRSEQ] = "dirseq",
};

const char *store_strerror(int err)
{
	switch (err) {
	case STORE_OK:
		return "ok";
	case STORE_NOTFOUND:
		return "not found";
	case STORE_EXISTS:
		return "already exists";
	case STORE_QUOTA:
		return "quota exceeded";
	case STORE_FULL:
		return "store full";
	case STORE_IO:
		return "store I/O error";
	case STORE_INVAL:
		return "invalid argument";
	case STORE_SHUTDOWN:
		return "store shutting down";
	case STORE_DISABLED:
		return "user disabled";
	default:
		return "unknown store error";
	}
}

/* ---- open / close --------------------------------------------------------- */

/* Open every sub-database and check (or stamp) the format version; an
 * environment of an older format is upgraded in the same transaction. */
static int open_dbis(struct store *st, const char **error_r)
{
	MDB_txn *txn;
	MDB_val k = { .mv_size = strlen(META_FORMAT), .mv_data = META_FORMAT }, v;
	uint8_t fmt = STORE_FORMAT;
	bool fresh = false;
	int rc, i;

	rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc != 0) {
		*error_r = mdb_strerror(rc);
		return -1;
	}
	for (i = 0; i < DBI_COUNT; i++) {
		rc = mdb_dbi_open(txn, dbi_names[i], MDB_CREATE, &st->dbi[i]);
		if (rc != 0)
			goto fail;
	}
	rc = mdb_get(txn, st->dbi[DBI_META], &k, &v);
	if (rc == 0 && v.mv_size == 1 && *(const uint8_t *)v.mv_data < STORE_FORMAT &&
	    *(const uint8_t *)v.mv_data >= 1) {
		unsigned from = *(const uint8_t *)v.mv_data;

		rc = store_upgrade(st, txn, from, error_r);
		if (rc != 0) {
			mdb_txn_abort(txn);
			if (rc > 0)
				*error_r = mdb_strerror(rc);
			return -1;
		}
		rc = MDB_NOTFOUND;	/* stamp the new format below */
	} else {
		fresh = rc == MDB_NOTFOUND;
	}
	if (rc == MDB_NOTFOUND) {
		v.mv_size = 1;
		v.mv_data = &fmt;
		rc = mdb_put(txn, st->dbi[DBI_META], &k, &v, 0);
	} else if (rc == 0 && (v.mv_size != 1 || *(const uint8_t *)v.mv_data != STORE_FORMAT)) {
		mdb_txn_abort(txn);
		*error_r = "store: unsupported data format (newer popnode?)";
		return -1;
	}
	if (rc == 0)
		rc = store_generation_init(st, txn, fresh);
	if (rc != 0)
		goto fail;
	rc = mdb_txn_commit(txn);
	if (rc != 0) {
		*error_r = mdb_strerror(rc);
		return -1;
	}
	return 0;
fail:
	mdb_txn_abort(txn);
	*error_r = mdb_strerror(rc);
	return -1;
}

static void store_free(struct store *st)
{
	if (st->done_ev != NULL)
		event_free(st->done_ev);
	if (st->keepalive != NULL)
		event_free(st->keepalive);
	if (st->env != NULL)
		mdb_env_close(st->env);
	pthread_cond_destroy(&st->cond);
	pthread_mutex_destroy(&st->mu);
}

int store_env_open(struct store *st, const char **error_r)
{
	int rc, dead = 0;

	if ((rc = mdb_env_create(&st->env)) != 0) {
		st->env = NULL;
		*error_r = mdb_strerror(rc);
		return -1;
	}
	if ((rc = mdb_env_set_maxdbs(st->env, STORE_MAX_DBS)) != 0 ||
	    (rc = mdb_env_set_mapsize(st->env, (size_t)st->map_size)) != 0 ||
	    (rc = mdb_env_open(st->env, st->dir, MDB_NOTLS, 0600)) != 0)
		goto mdb_fail;
	/* Reader slots of a crashed process would pin old pages forever. */
	if ((rc = mdb_reader_check(st->env, &dead)) != 0)
		goto mdb_fail;
	if (dead > 0)
		log_warn("store.stale_readers", "cleared=%d", dead);
	if (open_dbis(st, error_r) < 0)
		goto fail;
	return 0;
mdb_fail:
	*error_r = mdb_strerror(rc);
fail:
	mdb_env_close(st->env);
	st->env = NULL;
	return -1;
}

int store_writer_start(struct store *st, const char **error_r)
{
	sigset_t all, old;
	int rc;

	/* Signals are for the loop thread; the writer starts with all blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&st->writer, NULL, store_writer_main, st);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		*error_r = "store: cannot start writer thread";
		return -1;
	}
	st->writer_started = true;
	return 0;
}

int store_open(struct store **st_r, const struct store_opts *opts, const char **error_r)
{
	struct store *st;
	size_t origin_len;

	*st_r = NULL;
	if (opts == NULL || opts->dir == NULL || opts->base == NULL || opts->origin == NULL) {
		*error_r = "store: dir, origin and base are required";
		return -1;
	}
	origin_len = strnlen(opts->origin, STORE_POP_MAX);
	if (origin_len == 0 || origin_len >= STORE_POP_MAX) {
		*error_r = "store: origin must be 1..63 bytes";
		return -1;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		*error_r = "store: out of memory";
		return -1;
	}
	if (strlen(opts->dir) >= sizeof(st->dir)) {
		free(st);
		*error_r = "store: directory path too long";
		return -1;
	}
	strcpy(st->dir, opts->dir);
	memcpy(st->origin, opts->origin, origin_len);
	st->origin_len = origin_len;
	st->map_size = opts->map_size != 0 ? opts->map_size : STORE_DEFAULT_MAP;
	st->batch_max = opts->batch_max != 0 ? opts->batch_max : STORE_DEFAULT_BATCH;
	st->base = opts->base;
	STAILQ_INIT(&st->queue);
	STAILQ_INIT(&st->done);
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cond, NULL);

	if (store_env_open(st, error_r) < 0)
		goto fail;

	st->done_ev = event_new(st->base, -1, 0, store_dispatch_cb, st);
	st->keepalive = event_new(st->base, -1, EV_PERSIST, store_keepalive_cb, st);
	if (st->done_ev == NULL || st->keepalive == NULL) {
		*error_r = "store: event_new failed";
		goto fail;
	}
	if (store_writer_start(st, error_r) < 0)
		goto fail;
	log_info("store.open", "dir=%s map_size=%llu batch_max=%u",
		 opts->dir, (unsigned long long)st->map_size, st->batch_max);
	*st_r = st;
	return 0;

fail:
	store_free(st);
	free(st);
	return -1;
}

void store_close(struct store **stp)
{
	struct store *st = *stp;

	if (st == NULL)
		return;
	*stp = NULL;
	pthread_mutex_lock(&st->mu);
	st->stopping = true;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->mu);
	if (st->writer_started)
		pthread_join(st->writer, NULL);
	/* Everything submitted is now on st->done (or st->cur). */
	store_drain_completions(st);
	store_free(st);
	if (st->in_dispatch)
		st->close_deferred = true;	/* store_dispatch_cb frees it */
	else
		free(st);
}

/* ---- reads ---------------------------------------------------------------- */

int store_rd_begin(struct store *st, MDB_txn **txn_r)
{
	int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, txn_r);

	if (rc != 0) {
		log_err("store.read_failed", "error=\"%s\"", mdb_strerror(rc));
		return STORE_IO;
	}
	return STORE_OK;
}

int store_user_get(struct store *st, const char *name, struct store_user *u_r)
{
	MDB_txn *txn;
	int err;

	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	err = store_load_user(st, txn, name, u_r);
	mdb_txn_abort(txn);
	return err;
}

int store_user_get_by_id(struct store *st, uint32_t id, struct store_user *u_r)
{
	uint8_t kb[USERID_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	char name[STORE_NAME_MAX];
	MDB_txn *txn;
	int err, rc;

	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	userid_key(kb, id);
	rc = mdb_get(txn, st->dbi[DBI_USERIDS], &k, &v);
	if (rc != 0) {
		err = rc == MDB_NOTFOUND ? STORE_NOTFOUND : STORE_IO;
	} else if (v.mv_size == 0 || v.mv_size >= sizeof(name)) {
		err = STORE_IO;
	} else {
		memcpy(name, v.mv_data, v.mv_size);
		name[v.mv_size] = '\0';
		err = store_load_user(st, txn, name, u_r);
		if (err == STORE_NOTFOUND)
			err = STORE_IO;	/* index points nowhere */
	}
	mdb_txn_abort(txn);
	return err;
}

int store_user_foreach(struct store *st,
		       int (*cb)(const struct store_user *u, void *arg), void *arg)
{
	struct store_user u;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	MDB_cursor_op how = MDB_FIRST;
	int err, rc;

	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	if (mdb_cursor_open(txn, st->dbi[DBI_USERS], &cur) != 0) {
		mdb_txn_abort(txn);
		return STORE_IO;
	}
	while ((rc = mdb_cursor_get(cur, &k, &v, how)) == 0) {
		how = MDB_NEXT;
		if ((err = user_rec_decode(&k, &v, &u)) != STORE_OK)
			break;
		if (cb(&u, arg) != 0)
			break;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		err = STORE_IO;
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return err;
}

int store_mailbox_get(struct store *st, uint32_t userid, const char *name,
		      struct store_mailbox *mb_r)
{
	MDB_txn *txn;
	int err;

	if (name == NULL)
		return STORE_NOTFOUND;
	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	err = store_load_mbox_name(st, txn, userid, name, mb_r);
	if (err == STORE_OK)
		err = store_fill_subscribed(st, txn, userid, mb_r);
	mdb_txn_abort(txn);
	return err;
}

int store_msg_foreach(struct store *st, uint32_t userid, uint32_t mboxid,
		      int (*cb)(const struct store_msg *m, void *arg), void *arg)
{
	struct store_mailbox mb;
	struct store_msg m;
	uint8_t kb[MSG_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_cursor_op how = MDB_SET_RANGE;
	int err, rc;

	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	if ((err = store_load_mbox_id(st, txn, userid, mboxid, &mb)) != STORE_OK) {
		mdb_txn_abort(txn);
		return err;
	}
	if (mdb_cursor_open(txn, st->dbi[DBI_MESSAGES], &cur) != 0) {
		mdb_txn_abort(txn);
		return STORE_IO;
	}
	msg_key(kb, userid, mboxid, 0);
	while ((rc = mdb_cursor_get(cur, &k, &v, how)) == 0) {
		how = MDB_NEXT;
		if (k.mv_size != MSG_KEY_LEN || memcmp(k.mv_data, kb, 8) != 0)
			break;	/* past this mailbox */
		if ((err = msg_rec_decode(&v, &m, NULL, NULL)) != STORE_OK)
			break;
		m.uid = be32_get((const uint8_t *)k.mv_data + 8);
		if (cb(&m, arg) != 0)
			break;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		err = STORE_IO;
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return err;
}

int store_msg_read(struct store *st, uint32_t userid, uint32_t mboxid, uint32_t uid,
		   int (*cb)(const char *prefix, size_t prefix_len,
			     const char *body, size_t body_len, void *arg),
		   void *arg)
{
	uint8_t kb[MSG_KEY_LEN];
	MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, v, bk, bv;
	struct store_msg m;
	const char *prefix;
	size_t prefix_len;
	MDB_txn *txn;
	int err, rc;

	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	msg_key(kb, userid, mboxid, uid);
	rc = mdb_get(txn, st->dbi[DBI_MESSAGES], &k, &v);
	if (rc != 0) {
		err = rc == MDB_NOTFOUND ? STORE_NOTFOUND : STORE_IO;
		goto out;
	}
	if ((err = msg_rec_decode(&v, &m, &prefix, &prefix_len)) != STORE_OK)
		goto out;
	bk.mv_size = STORE_BODY_HASH_LEN;
	bk.mv_data = m.hash;
	rc = mdb_get(txn, st->dbi[DBI_BODIES], &bk, &bv);
	if (rc != 0 || bv.mv_size < 1 || *(const uint8_t *)bv.mv_data != STORE_REC_V1 ||
	    (uint64_t)prefix_len + (bv.mv_size - 1) != m.size) {
		log_err("store.body_missing", "userid=%u mboxid=%u uid=%u error=\"%s\"",
			userid, mboxid, uid, rc != 0 ? mdb_strerror(rc) : "bad record");
		err = STORE_IO;
		goto out;
	}
	err = cb(prefix, prefix_len, (const char *)bv.mv_data + 1, bv.mv_size - 1, arg);
out:
	mdb_txn_abort(txn);
	return err;
}

/* ---- changelog ------------------------------------------------------------ */

int store_changelog_foreach(struct store *st, const char *origin, uint64_t after,
			    int (*cb)(const struct store_change *c, void *arg), void *arg)
{
	size_t origin_len = origin != NULL ? strnlen(origin, STORE_POP_MAX) : 0;
	uint8_t kb[CHANGE_KEY_MAX];
	MDB_val k = { .mv_data = kb }, v;
	struct store_change c;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_cursor_op how = MDB_SET_RANGE;
	int err, rc;

	if (origin_len == 0 || origin_len >= STORE_POP_MAX || after == UINT64_MAX)
		return STORE_OK;	/* no such origin can have records */
	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	if (mdb_cursor_open(txn, st->dbi[DBI_CHANGELOG], &cur) != 0) {
		mdb_txn_abort(txn);
		return STORE_IO;
	}
	k.mv_size = change_key(kb, origin, origin_len, after + 1);
	while ((rc = mdb_cursor_get(cur, &k, &v, how)) == 0) {
		const uint8_t *p = v.mv_data;

		how = MDB_NEXT;
		if (k.mv_size != 1 + origin_len + 8 || memcmp(k.mv_data, kb, 1 + origin_len) != 0)
			break;	/* next origin */
		if (v.mv_size < CHANGE_REC_FIXED || p[0] != STORE_REC_V1) {
			err = STORE_IO;
			break;
		}
		c.seq = be64_get((const uint8_t *)k.mv_data + 1 + origin_len);
		c.type = (enum store_change_type)p[1];
		c.userid = be32_get(p + 2);
		c.mboxid = be32_get(p + 6);
		c.uid = be32_get(p + 10);
		c.time = (int64_t)be64_get(p + 14);
		c.data = p + CHANGE_REC_FIXED;
		c.data_len = v.mv_size - CHANGE_REC_FIXED;
		if (cb(&c, arg) != 0)
			break;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		err = STORE_IO;
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return err;
}

uint64_t store_changelog_last(struct store *st, const char *origin)
{
	size_t origin_len = origin != NULL ? strnlen(origin, STORE_POP_MAX) : 0;
	char mk[META_KEY_MAX];
	uint64_t seq = 0;
	MDB_txn *txn;

	if (origin_len == 0 || origin_len >= STORE_POP_MAX)
		return 0;
	if (store_rd_begin(st, &txn) != STORE_OK)
		return 0;
	if (store_meta_get_u64(st, txn, mk, meta_seq_key(mk, origin, origin_len), &seq) != STORE_OK)
		seq = 0;
	mdb_txn_abort(txn);
	return seq;
}

/* ---- operations ----------------------------------------------------------- */

void store_stats(struct store *st, struct store_stats *s_r)
{
	MDB_envinfo info;
	MDB_stat est, dst;
	MDB_txn *txn;

	memset(s_r, 0, sizeof(*s_r));
	s_r->map_size = st->map_size;
	if (mdb_env_info(st->env, &info) == 0 && mdb_env_stat(st->env, &est) == 0)
		s_r->used_bytes = ((uint64_t)info.me_last_pgno + 1) * est.ms_psize;
	if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) == 0) {
		if (mdb_stat(txn, st->dbi[DBI_USERS], &dst) == 0)
			s_r->users = dst.ms_entries;
		if (mdb_stat(txn, st->dbi[DBI_BODIES], &dst) == 0)
			s_r->bodies = dst.ms_entries;
		mdb_txn_abort(txn);
	}
	pthread_mutex_lock(&st->mu);
	s_r->commits = st->commits;
	s_r->commit_failures = st->commit_failures;
	s_r->last_commit_failed = st->last_commit_failed;
	s_r->ops = st->ops;
	s_r->pending = st->pending;
	pthread_mutex_unlock(&st->mu);
}
