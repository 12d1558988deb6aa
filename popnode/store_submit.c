/*
 * store_submit.c - the public entry points of the IMAP write ops
 * (mailbox create/delete/rename/subscribe, append, store flags,
 * copy/move): check the arguments, copy everything the op needs (the
 * caller's memory is not ours after return), and queue it with
 * store_submit() (store_write.c).  An op refused here never reaches the
 * writer; its callback still runs on the loop, like any other.
 *
 * Also store_submit_fn: an op given as a function (OP_FN), for the
 * store's files whose ops need no case of their own in the writer
 * (generation, trimming, snapshot loading, \Recent marks).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_private.h"

static struct store_op *op_new(enum store_op_type type, void *arg)
{
	struct store_op *op = store_xcalloc(1, sizeof(*op));

	op->type = type;
	op->arg = arg;
	return op;
}

static void refuse(struct store *st, struct store_op *op, int err)
{
	op->err = err;
	op->prefailed = true;
	store_submit(st, op);
}

/* Check and copy a mailbox name in canonical form ("inbox" -> "INBOX"). */
static int take_name(char dst[STORE_MBOX_MAX], const char *name)
{
	if (store_mailbox_name_check(name) != STORE_OK)
		return STORE_INVAL;
	strcpy(dst, store_mbox_canon(name));
	return STORE_OK;
}

/* Check and copy keyword names.  *out_r stays NULL when n == 0. */
static int take_keywords(const char *const *kw, size_t n, store_kwname **out_r)
{
	store_kwname *out;
	size_t i;

	*out_r = NULL;
	if (n == 0)
		return STORE_OK;
	if (kw == NULL)
		return STORE_INVAL;
	for (i = 0; i < n; i++) {
		if (store_keyword_check(kw[i]) != STORE_OK)
			return STORE_INVAL;
	}
	if (n > SIZE_MAX / sizeof(*out) || (out = malloc(n * sizeof(*out))) == NULL)
		return STORE_IO;
	for (i = 0; i < n; i++)
		strcpy(out[i], kw[i]);
	*out_r = out;
	return STORE_OK;
}

/* Copy uids, sorted and without duplicates; *n_r = how many remain. */
static int take_uids(const uint32_t *uids, size_t n, uint32_t **out_r, size_t *n_r)
{
	uint32_t *out;

	*out_r = NULL;
	*n_r = 0;
	if (n == 0)
		return STORE_OK;
	if (uids == NULL)
		return STORE_INVAL;
	if (n > SIZE_MAX / sizeof(*out) || (out = malloc(n * sizeof(*out))) == NULL)
		return STORE_IO;
	memcpy(out, uids, n * sizeof(*out));
	*out_r = out;
	*n_r = store_uids_normalize(out, n);
	return STORE_OK;
}

/* ---- an op given as a function ---------------------------------------------- */

void store_submit_fn(struct store *st, int (*fn)(struct store *, MDB_txn *, struct store_op *),
		     void *ctx, store_done_cb *done, int prefail)
{
	struct store_op *op = op_new(OP_FN, ctx);

	op->cb = done;
	op->u.fn.fn = fn;
	op->u.fn.ctx = ctx;
	if (prefail != STORE_OK)
		refuse(st, op, prefail);
	else
		store_submit(st, op);
}

/* ---- mailboxes ------------------------------------------------------------- */

void store_mailbox_create(struct store *st, uint32_t userid, const char *name,
			  uint32_t special_use, store_mailbox_cb *cb, void *arg)
{
	struct store_op *op = op_new(OP_MBOX_CREATE, arg);
	const uint32_t su_all = STORE_SU_SENT | STORE_SU_DRAFTS | STORE_SU_TRASH |
				STORE_SU_JUNK | STORE_SU_ARCHIVE;

	op->mbcb = cb;
	op->u.mbox.userid = userid;
	op->u.mbox.special_use = special_use;
	if (take_name(op->u.mbox.name, name) != STORE_OK || (special_use & ~su_all) != 0)
		refuse(st, op, STORE_INVAL);
	else
		store_submit(st, op);
}

void store_mailbox_delete(struct store *st, uint32_t userid, const char *name,
			  store_done_cb *cb, void *arg)
{
	struct store_op *op = op_new(OP_MBOX_DELETE, arg);

	op->cb = cb;
	op->u.mbox.userid = userid;
	if (take_name(op->u.mbox.name, name) != STORE_OK ||
	    strcmp(op->u.mbox.name, "INBOX") == 0)
		refuse(st, op, STORE_INVAL);
	else
		store_submit(st, op);
}

void store_mailbox_rename(struct store *st, uint32_t userid, const char *oldname,
			  const char *newname, store_done_cb *cb, void *arg)
{
	struct store_op *op = op_new(OP_MBOX_RENAME, arg);

	op->cb = cb;
	op->u.mbox.userid = userid;
	if (take_name(op->u.mbox.name, oldname) != STORE_OK ||
	    take_name(op->u.mbox.newname, newname) != STORE_OK)
		refuse(st, op, STORE_INVAL);
	else
		store_submit(st, op);
}

void store_mailbox_subscribe(struct store *st, uint32_t userid, const char *name, bool on,
			     store_done_cb *cb, void *arg)
{
	struct store_op *op = op_new(OP_SUBSCRIBE, arg);

	op->cb = cb;
	op->u.mbox.userid = userid;
	op->u.mbox.on = on;
	if (take_name(op->u.mbox.name, name) != STORE_OK)
		refuse(st, op, STORE_INVAL);
	else
		store_submit(st, op);
}

/* ---- messages -------------------------------------------------------------- */

void store_msg_append(struct store *st, uint32_t userid, uint32_t mboxid,
		      const char *msg, size_t len, const void *meta, size_t meta_len,
		      uint32_t flags, const char *const *keywords, size_t n_kw,
		      int64_t internaldate, store_append_cb *cb, void *arg)
{
	struct store_op *op = op_new(OP_APPEND, arg);
	int err;

	op->acb = cb;
	op->u.append.userid = userid;
	op->u.append.mboxid = mboxid;
	op->u.append.flags = flags;
	op->u.append.internaldate = internaldate != 0 ? internaldate : (int64_t)time(NULL);
	if ((msg == NULL && len > 0) || (meta == NULL && meta_len > 0) ||
	    meta_len > STORE_META_MAX || (flags & ~STORE_F_MASK) != 0 ||
	    len > SIZE_MAX - meta_len - 1) {
		refuse(st, op, STORE_INVAL);
		return;
	}
	if ((err = take_keywords(keywords, n_kw, &op->u.append.kw)) != STORE_OK) {
		refuse(st, op, err);
		return;
	}
	op->u.append.n_kw = n_kw;
	op->u.append.blob = malloc(len + meta_len + 1);
	if (op->u.append.blob == NULL) {
		refuse(st, op, STORE_IO);
		return;
	}
	if (len > 0)
		memcpy(op->u.append.blob, msg, len);
	if (meta_len > 0)
		memcpy(op->u.append.blob + len, meta, meta_len);
	op->u.append.len = len;
	op->u.append.meta_len = meta_len;
	store_submit(st, op);
}

void store_msg_store_flags(struct store *st, uint32_t userid, uint32_t mboxid,
			   const uint32_t *uids, size_t n, enum store_flag_op how,
			   uint32_t flags, const char *const *keywords, size_t n_kw,
			   uint64_t unchangedsince, store_flags_cb *cb, void *arg)
{
	struct store_op *op = op_new(OP_FLAGS, arg);
	int err;

	op->fcb = cb;
	op->u.flags.userid = userid;
	op->u.flags.mboxid = mboxid;
	op->u.flags.how = how;
	op->u.flags.flags = flags;
	op->u.flags.unchangedsince = unchangedsince;
	if ((how != STORE_FLAGS_SET && how != STORE_FLAGS_ADD && how != STORE_FLAGS_REMOVE) ||
	    (flags & ~STORE_F_MASK) != 0) {
		refuse(st, op, STORE_INVAL);
		return;
	}
	if ((err = take_keywords(keywords, n_kw, &op->u.flags.kw)) != STORE_OK ||
	    (err = take_uids(uids, n, &op->u.flags.uids, &op->u.flags.n)) != STORE_OK) {
		refuse(st, op, err);
		return;
	}
	op->u.flags.n_kw = n_kw;
	if (op->u.flags.n > 0 &&
	    (op->u.flags.res = calloc(op->u.flags.n, sizeof(*op->u.flags.res))) == NULL) {
		refuse(st, op, STORE_IO);
		return;
	}
	store_submit(st, op);
}

void store_msg_copy(struct store *st, uint32_t userid, uint32_t src_mboxid,
		    const uint32_t *uids, size_t n, uint32_t dst_mboxid, bool move,
		    store_copy_cb *cb, void *arg)
{
	struct store_op *op = op_new(OP_COPY, arg);
	int err;

	op->ccb = cb;
	op->u.copy.userid = userid;
	op->u.copy.src = src_mboxid;
	op->u.copy.dst = dst_mboxid;
	op->u.copy.move = move;
	if ((err = take_uids(uids, n, &op->u.copy.uids, &op->u.copy.n)) != STORE_OK) {
		refuse(st, op, err);
		return;
	}
	if (op->u.copy.n > 0 &&
	    ((op->u.copy.src_out = calloc(op->u.copy.n, sizeof(uint32_t))) == NULL ||
	     (op->u.copy.dst_out = calloc(op->u.copy.n, sizeof(uint32_t))) == NULL)) {
		refuse(st, op, STORE_IO);
		return;
	}
	store_submit(st, op);
}
