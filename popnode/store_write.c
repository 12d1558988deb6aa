/*
 * store_write.c - the write path: ops are copied and queued here, the
 * writer thread commits them in groups, and their callbacks run on the
 * event loop thread once the commit is durable.
 *
 * Submit (any thread): the op is copied (the caller's memory is not ours
 * after return), checked, and appended to st->queue under st->mu; the
 * writer is woken through st->cond.  An op that fails its checks, or
 * arrives while the store is closing, never reaches the writer: it goes
 * straight to the done list as a batch of its own, so its callback still
 * runs on the loop thread (or in store_close).
 *
 * Writer thread: takes everything queued (at most batch_max ops), opens
 * one write transaction, runs each op in a nested transaction (each
 * delivery recipient in its own), then commits the parent - one fsync for
 * the whole group.  If the commit fails, every op of the group gets the
 * error: nothing is reported durable that is not.  The finished batch goes
 * on st->done and st->done_ev is activated (the base is thread-enabled).
 *
 * Loop thread (store_dispatch_cb): pops batches one at a time, tells the
 * commit observer, then runs each op's callback.  A callback may call
 * store_close(): close then runs everything still pending and leaves the
 * final free() of struct store to the dispatcher (close_deferred), which
 * returns at once.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"
#include "store_private.h"

/* Small fixed-size bookkeeping allocations: failing those leaves no way to
 * report anything, so the process stops loudly (like Dovecot's i_malloc). */
void *store_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL) {
		log_err("store.oom", "n=%zu size=%zu", n, size);
		abort();
	}
	return p;
}

static void op_free(struct store_op *op)
{
	switch (op->type) {
	case OP_EXPUNGE:
		free(op->u.expunge.uids);
		break;
	case OP_DELIVER:
		free(op->u.deliver.blob);
		free(op->u.deliver.rcpts);
		free(op->u.deliver.names);
		break;
	case OP_APPEND:
		free(op->u.append.blob);
		free(op->u.append.kw);
		break;
	case OP_FLAGS:
		free(op->u.flags.uids);
		free(op->u.flags.kw);
		free(op->u.flags.res);
		break;
	case OP_COPY:
		free(op->u.copy.uids);
		free(op->u.copy.src_out);
		free(op->u.copy.dst_out);
		break;
	default:
		break;
	}
	free(op->touched);
	free(op);
}

void store_op_reset_out(struct store_op *op)
{
	switch (op->type) {
	case OP_APPEND:
		op->u.append.uidvalidity = 0;
		op->u.append.uid = 0;
		break;
	case OP_FLAGS:
		op->u.flags.n_res = 0;
		break;
	case OP_COPY:
		op->u.copy.n_out = 0;
		op->u.copy.uidvalidity = 0;
		break;
	default:
		break;
	}
}

/* Give the op (and every recipient of a delivery) the result err. */
static void op_fail(struct store_op *op, int err)
{
	size_t i;

	op->err = err;
	op->n_touched = 0;
	store_op_reset_out(op);
	if (op->type == OP_DELIVER) {
		for (i = 0; i < op->u.deliver.n; i++) {
			op->u.deliver.rcpts[i].result = err;
			op->u.deliver.rcpts[i].uid = 0;
		}
	}
}

/* st->mu held.  An op in flight keeps the loop alive: done_ev is only
 * ever activated, never added, so without this a loop with nothing else
 * to wait for would return before the commit comes back. */
static void pending_inc(struct store *st)
{
	static const struct timeval hour = { 3600, 0 };

	if (st->pending++ == 0)
		event_add(st->keepalive, &hour);
}

static void pending_dec(struct store *st)
{
	if (--st->pending == 0)
		event_del(st->keepalive);
}

void store_keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static void op_complete(struct store *st, struct store_op *op)
{
	pthread_mutex_lock(&st->mu);
	pending_dec(st);
	pthread_mutex_unlock(&st->mu);
	switch (op->type) {
	case OP_DELIVER:
		if (op->dcb != NULL)
			op->dcb(op->u.deliver.rcpts, op->u.deliver.n, op->arg);
		break;
	case OP_MBOX_CREATE:
		if (op->mbcb != NULL)
			op->mbcb(op->err, op->err == STORE_OK ? &op->u.mbox.result : NULL, op->arg);
		break;
	case OP_APPEND:
		if (op->acb != NULL)
			op->acb(op->err, op->u.append.uidvalidity, op->u.append.uid, op->arg);
		break;
	case OP_FLAGS:
		if (op->fcb != NULL)
			op->fcb(op->err, op->u.flags.res, op->u.flags.n_res, op->arg);
		break;
	case OP_COPY:
		if (op->ccb != NULL)
			op->ccb(op->err, op->u.copy.uidvalidity, op->u.copy.src_out,
				op->u.copy.dst_out, op->u.copy.n_out, op->arg);
		break;
	default:
		if (op->cb != NULL)
			op->cb(op->err, op->arg);
		break;
	}
	op_free(op);
}

void store_submit(struct store *st, struct store_op *op)
{
	struct store_batch *b;

	pthread_mutex_lock(&st->mu);
	pending_inc(st);
	if (!op->prefailed && !st->stopping) {
		STAILQ_INSERT_TAIL(&st->queue, op, entry);
		pthread_cond_signal(&st->cond);
		pthread_mutex_unlock(&st->mu);
		return;
	}
	if (!op->prefailed)
		op_fail(op, STORE_SHUTDOWN);
	b = store_xcalloc(1, sizeof(*b));
	STAILQ_INIT(&b->ops);
	STAILQ_INSERT_TAIL(&b->ops, op, entry);
	b->n = 1;
	STAILQ_INSERT_TAIL(&st->done, b, entry);
	pthread_mutex_unlock(&st->mu);
	event_active(st->done_ev, EV_READ, 0);
}

static bool str_fits(const char *s, size_t max)
{
	return s != NULL && strnlen(s, max) < max;
}

/* ---- public write API ----------------------------------------------------- */

static void user_op(struct store *st, enum store_op_type type, const struct store_user *u,
		    store_done_cb *cb, void *arg)
{
	struct store_op *op = store_xcalloc(1, sizeof(*op));

	op->type = type;
	op->cb = cb;
	op->arg = arg;
	if (u == NULL || !str_fits(u->name, STORE_NAME_MAX) || u->name[0] == '\0' ||
	    !str_fits(u->home, STORE_POP_MAX) || !str_fits(u->pwhash, STORE_HASH_MAX)) {
		op->err = STORE_INVAL;
		op->prefailed = true;
	} else {
		op->u.user = *u;
	}
	store_submit(st, op);
}

void store_user_add(struct store *st, const struct store_user *u, store_done_cb *cb, void *arg)
{
	user_op(st, OP_USER_ADD, u, cb, arg);
}

void store_user_update(struct store *st, const struct store_user *u, store_done_cb *cb, void *arg)
{
	user_op(st, OP_USER_UPDATE, u, cb, arg);
}

void store_user_del(struct store *st, const char *name, store_done_cb *cb, void *arg)
{
	struct store_op *op = store_xcalloc(1, sizeof(*op));

	op->type = OP_USER_DEL;
	op->cb = cb;
	op->arg = arg;
	if (!str_fits(name, STORE_NAME_MAX) || name[0] == '\0') {
		op->err = STORE_INVAL;
		op->prefailed = true;
	} else {
		strcpy(op->u.name, name);
	}
	store_submit(st, op);
}

void store_msg_expunge(struct store *st, uint32_t userid, uint32_t mboxid,
		       const uint32_t *uids, size_t n, store_done_cb *cb, void *arg)
{
	struct store_op *op = store_xcalloc(1, sizeof(*op));

	op->type = OP_EXPUNGE;
	op->cb = cb;
	op->arg = arg;
	op->u.expunge.userid = userid;
	op->u.expunge.mboxid = mboxid;
	if (n > 0 && uids == NULL) {
		op->err = STORE_INVAL;
		op->prefailed = true;
	} else if (n > 0) {
		op->u.expunge.uids = malloc(n * sizeof(*uids));
		if (n > SIZE_MAX / sizeof(*uids) || op->u.expunge.uids == NULL) {
			op->err = STORE_IO;
			op->prefailed = true;
		} else {
			memcpy(op->u.expunge.uids, uids, n * sizeof(*uids));
			op->u.expunge.n = n;
		}
	}
	store_submit(st, op);
}

void store_deliver(struct store *st, const struct store_delivery *d,
		   void (*cb)(const struct store_rcpt *rcpts, size_t n, void *arg), void *arg)
{
	struct store_op *op = store_xcalloc(1, sizeof(*op));
	const char *mailbox = d->mailbox != NULL ? d->mailbox : "INBOX";
	size_t n = d->n_rcpts, i, total, off;
	int whole_err = STORE_OK;

	op->type = OP_DELIVER;
	op->dcb = cb;
	op->arg = arg;
	op->u.deliver.n = n;
	op->u.deliver.internaldate = d->internaldate;
	op->u.deliver.body_len = d->body_len;
	if (n > 0) {
		op->u.deliver.rcpts = store_xcalloc(n, sizeof(*op->u.deliver.rcpts));
		op->u.deliver.names = store_xcalloc(n, sizeof(*op->u.deliver.names));
	}

	if (!str_fits(mailbox, STORE_MBOX_MAX) || mailbox[0] == '\0' ||
	    (d->body == NULL && d->body_len > 0) || (n > 0 && d->rcpts == NULL) ||
	    d->meta_len > STORE_META_MAX || (d->meta == NULL && d->meta_len > 0))
		whole_err = STORE_INVAL;
	else
		strcpy(op->u.deliver.mailbox, store_mbox_canon(mailbox));

	/* Size the copy: body, then each valid recipient's prefix. */
	total = d->body_len;
	for (i = 0; i < n && whole_err == STORE_OK; i++) {
		const struct store_rcpt *in = &d->rcpts[i];
		struct store_rcpt *r = &op->u.deliver.rcpts[i];

		r->result = STORE_OK;
		if (!str_fits(in->user, STORE_NAME_MAX) || in->user[0] == '\0' ||
		    in->prefix_len > STORE_PREFIX_MAX || (in->prefix == NULL && in->prefix_len > 0)) {
			r->result = STORE_INVAL;
			continue;
		}
		strcpy(op->u.deliver.names[i], in->user);
		r->user = op->u.deliver.names[i];
		r->prefix_len = in->prefix_len;
		if (total > SIZE_MAX - in->prefix_len)
			whole_err = STORE_INVAL;
		else
			total += in->prefix_len;
	}
	if (whole_err == STORE_OK && total > SIZE_MAX - d->meta_len)
		whole_err = STORE_INVAL;
	if (whole_err == STORE_OK) {
		total += d->meta_len;
		op->u.deliver.blob = malloc(total > 0 ? total : 1);
		if (op->u.deliver.blob == NULL)
			whole_err = STORE_IO;
	}
	if (whole_err != STORE_OK) {
		op_fail(op, whole_err);
		op->prefailed = true;
		store_submit(st, op);
		return;
	}
	if (d->body_len > 0)
		memcpy(op->u.deliver.blob, d->body, d->body_len);
	off = d->body_len;
	for (i = 0; i < n; i++) {
		struct store_rcpt *r = &op->u.deliver.rcpts[i];

		if (r->result != STORE_OK)
			continue;
		r->prefix = op->u.deliver.blob + off;
		if (r->prefix_len > 0)
			memcpy(op->u.deliver.blob + off, d->rcpts[i].prefix, r->prefix_len);
		off += r->prefix_len;
	}
	op->u.deliver.meta = op->u.deliver.blob + off;
	op->u.deliver.meta_len = d->meta_len;
	if (d->meta_len > 0)
		memcpy(op->u.deliver.blob + off, d->meta, d->meta_len);
	store_submit(st, op);
}

void store_set_commit_observer(struct store *st,
			       void (*cb)(double seconds, unsigned ops, void *arg), void *arg)
{
	st->observer = cb;
	st->observer_arg = arg;
}

void store_set_change_observer(struct store *st,
			       void (*cb)(struct store *st, uint32_t userid, uint32_t mboxid,
					  void *arg),
			       void *arg)
{
	st->change_observer = cb;
	st->change_observer_arg = arg;
}

void store_inject_commit_failures(struct store *st, unsigned n)
{
	pthread_mutex_lock(&st->mu);
	st->inject_failures = n;
	pthread_mutex_unlock(&st->mu);
}

/* ---- writer thread -------------------------------------------------------- */

/* Run fn in a transaction nested in parent: commit it on success, abort
 * it (undoing everything fn did) on failure. */
static int nested(struct store *st, MDB_txn *parent, struct store_op *op, size_t rcpt)
{
	size_t touched = op->n_touched;
	MDB_txn *txn;
	int rc, err;

	rc = mdb_txn_begin(st->env, parent, 0, &txn);
	if (rc != 0)
		return store_mdb_err(rc);
	switch (op->type) {
	case OP_USER_ADD:
		err = store_op_user_add(st, txn, op);
		break;
	case OP_USER_UPDATE:
		err = store_op_user_update(st, txn, op);
		break;
	case OP_USER_DEL:
		err = store_op_user_del(st, txn, op);
		break;
	case OP_EXPUNGE:
		err = store_op_expunge(st, txn, op);
		break;
	case OP_DELIVER:
		err = store_op_deliver_one(st, txn, op, rcpt);
		break;
	case OP_MBOX_CREATE:
		err = store_op_mbox_create(st, txn, op);
		break;
	case OP_MBOX_DELETE:
		err = store_op_mbox_delete(st, txn, op);
		break;
	case OP_MBOX_RENAME:
		err = store_op_mbox_rename(st, txn, op);
		break;
	case OP_SUBSCRIBE:
		err = store_op_subscribe(st, txn, op);
		break;
	case OP_APPEND:
		err = store_op_append(st, txn, op);
		break;
	case OP_FLAGS:
		err = store_op_flags(st, txn, op);
		break;
	case OP_COPY:
		err = store_op_copy(st, txn, op);
		break;
	case OP_DIR_APPLY:
		err = store_op_dir_apply(st, txn, op);
		break;
	case OP_APPLY:
		err = store_op_apply(st, txn, op);
		break;
	case OP_FN:
		err = op->u.fn.fn(st, txn, op);
		break;
	default:
		err = STORE_INVAL;
		break;
	}
	if (err == STORE_OK) {
		rc = mdb_txn_commit(txn);	/* nested: no I/O, merges into parent */
		err = store_mdb_err(rc);
	} else {
		mdb_txn_abort(txn);
	}
	if (err != STORE_OK) {
		op->n_touched = touched;	/* what it changed is undone */
		if (op->type != OP_DELIVER)
			store_op_reset_out(op);
	}
	return err;
}

static void run_op(struct store *st, MDB_txn *parent, struct store_op *op)
{
	size_t i;

	if (op->type != OP_DELIVER) {
		if (op->err == STORE_OK)	/* else hashing failed */
			op->err = nested(st, parent, op, 0);
		return;
	}
	if (op->err != STORE_OK) {
		op_fail(op, op->err);	/* hashing failed */
		return;
	}
	for (i = 0; i < op->u.deliver.n; i++) {
		struct store_rcpt *r = &op->u.deliver.rcpts[i];

		if (r->result != STORE_OK)
			continue;	/* refused at submit */
		r->uid = 0;
		r->result = nested(st, parent, op, i);
		if (r->result != STORE_OK)
			r->uid = 0;
	}
}

/* Hash every body once, before the write transaction is opened, so a big
 * message does not hold the write lock while it is hashed. */
static void hash_bodies(struct store_batch *b)
{
	struct store_op *op;

	STAILQ_FOREACH(op, &b->ops, entry) {
		if (op->type == OP_DELIVER &&
		    store_sha256(op->u.deliver.blob, op->u.deliver.body_len, op->u.deliver.hash) < 0)
			op->err = STORE_IO;
		if (op->type == OP_APPEND &&
		    store_sha256(op->u.append.blob, op->u.append.len, op->u.append.hash) < 0)
			op->err = STORE_IO;
	}
}

static int cmp_touch(const void *a, const void *b)
{
	const struct store_touch *x = a, *y = b;

	if (x->userid != y->userid)
		return x->userid < y->userid ? -1 : 1;
	return x->mboxid < y->mboxid ? -1 : x->mboxid > y->mboxid;
}

/* The committed batch's touched mailboxes, sorted and unique. */
static void collect_touched(struct store_batch *b)
{
	struct store_op *op;
	size_t n = 0, i, out = 0;

	STAILQ_FOREACH(op, &b->ops, entry)
		n += op->n_touched;
	if (n == 0)
		return;
	b->touched = store_xcalloc(n, sizeof(*b->touched));
	STAILQ_FOREACH(op, &b->ops, entry) {
		if (op->n_touched > 0)
			memcpy(b->touched + out, op->touched, op->n_touched * sizeof(*b->touched));
		out += op->n_touched;
	}
	qsort(b->touched, n, sizeof(*b->touched), cmp_touch);
	for (i = 0, out = 0; i < n; i++) {
		if (out == 0 || cmp_touch(&b->touched[out - 1], &b->touched[i]) != 0)
			b->touched[out++] = b->touched[i];
	}
	b->n_touched = out;
}

static double elapsed(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void run_batch(struct store *st, struct store_batch *b)
{
	struct timespec t0, t1;
	struct store_op *op;
	MDB_txn *txn;
	bool inject;
	int rc;

	hash_bodies(b);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc == 0) {
		STAILQ_FOREACH(op, &b->ops, entry)
			run_op(st, txn, op);
		pthread_mutex_lock(&st->mu);
		inject = st->inject_failures > 0;
		if (inject)
			st->inject_failures--;
		pthread_mutex_unlock(&st->mu);
		if (inject) {
			mdb_txn_abort(txn);
			rc = EIO;
		} else {
			rc = mdb_txn_commit(txn);	/* writes and fsyncs */
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	b->seconds = elapsed(&t0, &t1);
	b->mdb_rc = rc;
	b->committed = rc == 0;
	if (rc != 0) {
		int err = store_mdb_err(rc);

		if (err != STORE_FULL)
			err = STORE_IO;
		STAILQ_FOREACH(op, &b->ops, entry)
			op_fail(op, err);
	} else {
		collect_touched(b);
	}
}

void *store_writer_main(void *arg)
{
	struct store *st = arg;

	pthread_mutex_lock(&st->mu);
	for (;;) {
		struct store_batch *b;
		struct store_op *op;

		while (STAILQ_EMPTY(&st->queue) && !st->stopping)
			pthread_cond_wait(&st->cond, &st->mu);
		if (STAILQ_EMPTY(&st->queue))
			break;	/* stopping, and everything is committed */
		b = store_xcalloc(1, sizeof(*b));
		STAILQ_INIT(&b->ops);
		while (b->n < st->batch_max && (op = STAILQ_FIRST(&st->queue)) != NULL) {
			STAILQ_REMOVE_HEAD(&st->queue, entry);
			STAILQ_INSERT_TAIL(&b->ops, op, entry);
			b->n++;
		}
		pthread_mutex_unlock(&st->mu);

		run_batch(st, b);

		pthread_mutex_lock(&st->mu);
		if (b->committed) {
			st->commits++;
			st->ops += b->n;
			st->last_commit_failed = false;
		} else if (b->mdb_rc != 0) {
			st->commit_failures++;
			st->last_commit_failed = true;
		}
		STAILQ_INSERT_TAIL(&st->done, b, entry);
		pthread_mutex_unlock(&st->mu);
		event_active(st->done_ev, EV_READ, 0);
		pthread_mutex_lock(&st->mu);
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

/* ---- completions on the loop thread --------------------------------------- */

static struct store_batch *pop_done(struct store *st)
{
	struct store_batch *b;

	pthread_mutex_lock(&st->mu);
	b = STAILQ_FIRST(&st->done);
	if (b != NULL)
		STAILQ_REMOVE_HEAD(&st->done, entry);
	pthread_mutex_unlock(&st->mu);
	return b;
}

/* Report a batch's commit (log, observers) as it starts being
 * dispatched.  Stops early if an observer closed the store. */
static void batch_begin(struct store *st, struct store_batch *b)
{
	size_t i;

	st->cur = b;
	if (b->committed) {
		if (st->observer != NULL)
			st->observer(b->seconds, b->n, st->observer_arg);
		/* close_deferred first: a close in an observer freed b */
		for (i = 0; !st->close_deferred && i < b->n_touched; i++) {
			if (st->change_observer != NULL)
				st->change_observer(st, b->touched[i].userid, b->touched[i].mboxid,
						    st->change_observer_arg);
		}
	} else if (b->mdb_rc != 0) {
		log_err("store.commit_failed", "ops=%u seconds=%.6f error=\"%s\"",
			b->n, b->seconds, mdb_strerror(b->mdb_rc));
	}
}

void store_dispatch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct store *st = arg;
	struct store_batch *b;
	struct store_op *op;

	(void)fd;
	(void)what;
	st->in_dispatch = true;
	while ((b = pop_done(st)) != NULL) {
		batch_begin(st, b);
		if (st->close_deferred)
			goto closed;
		while ((op = STAILQ_FIRST(&b->ops)) != NULL) {
			STAILQ_REMOVE_HEAD(&b->ops, entry);
			op_complete(st, op);
			if (st->close_deferred)
				goto closed;	/* store_close ran in the callback */
		}
		st->cur = NULL;
		free(b->touched);
		free(b);
	}
	st->in_dispatch = false;
	return;
closed:
	free(st);
}

void store_drain_completions(struct store *st)
{
	struct store_batch *b;
	struct store_op *op;

	/* A callback may submit more ops; they come back as STORE_SHUTDOWN
	 * batches on st->done, so loop until nothing is left. */
	for (;;) {
		b = st->cur;
		if (b == NULL) {
			b = pop_done(st);
			if (b == NULL)
				break;
			batch_begin(st, b);
		}
		while ((op = STAILQ_FIRST(&b->ops)) != NULL) {
			STAILQ_REMOVE_HEAD(&b->ops, entry);
			op_complete(st, op);
		}
		st->cur = NULL;
		free(b->touched);
		free(b);
	}
}
