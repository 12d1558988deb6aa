/*
 * store_merge.c - a home POP takes back what a mirror did for it while it
 * was down, merging it with what it did itself (failover and return).
 *
 * While home X is down, mirror M serves X's users from its mirror store
 * of X with the normal ops, so M's changelog of origin X holds X's
 * records 1..B (B: what M had applied) and then M's own B+1..L.  When X
 * returns it fetches B+1..L with their bodies and merges them into its
 * own store, which may hold records after B that M never got (the other
 * side).  The rules follow Dovecot's dsync (docs/store.md "Merge rules
 * (home return)"): a mailbox is the same by id and UIDVALIDITY, a mailbox
 * the mirror created joins the home's of that name or is created; a UID
 * both sides gave to different messages moves both to new UIDs above
 * every UID either side used, so no client ever sees one UID name two
 * messages and nothing is lost; an expunge beats a flag change; between
 * two flag changes the later wins, the home on a tie.  "Above every UID
 * the mirror used" is known before its records are: it gives at most one
 * new UID (and one modseq) per record, so its uidnext at B + L - B bounds
 * them (L: the mirror's last seq, store_merge_begin or the one call's).
 *
 * Every change is written as the normal op writes it: records of X's
 * origin with X's next seq and the current time (so X's mirrors receive
 * them by normal shipping), modseqs, counters, body references,
 * tombstones, change observer touches.  A call is one op (OP_FN), one
 * nested transaction of a group commit: all or nothing.
 *
 * A failover can bring more records than one call (one LMDB transaction,
 * the caller's memory) holds, so a merge may come in several calls.  What
 * one call learnt lives in the meta db under "merge/<mirror>/" until
 * store_merge_end (the layout is in store_merge_int.h).
 *
 * Here: the pure rules, the run of a call (begin, records, end; its
 * state) and the public calls.  store_merge_map.c keeps what the run
 * learns (maps mirror -> home, ranges, the home's changes, extents);
 * store_merge_rec.c has the rules of each record.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_merge_int.h"

#define STATE_REC_LEN 25

/* ---- mirror names -------------------------------------------------------- */

/* A POP id as the control socket takes it: 1-63 of A-Z a-z 0-9 . _ -,
 * so never a '/' that would make one mirror's keys another's prefix. */
static bool mirror_ok(const char *s)
{
	size_t len, i;

	if (s == NULL || (len = strnlen(s, STORE_POP_MAX)) == 0 || len >= STORE_POP_MAX ||
	    strcmp(s, "-") == 0)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static size_t merge_prefix(uint8_t buf[MKEY_MAX], const char *mirror)
{
	size_t plen = sizeof(META_MERGE_PREFIX) - 1, len = strlen(mirror);

	memcpy(buf, META_MERGE_PREFIX, plen);
	memcpy(buf + plen, mirror, len);
	buf[plen + len] = '/';
	return plen + len + 1;
}

/* ---- the pure rules ------------------------------------------------------ */

enum store_merge_uid_how store_merge_uid(const struct store_merge_uid_in *in, uint32_t *uid_r,
					 bool *move_home_r)
{
	*move_home_r = false;
	*uid_r = in->uid;
	/* below the floor the home had the UID before the merge: the same
	 * message if it holds the same body from the same INTERNALDATE */
	if (in->home_msg && in->home_same && in->uid < in->floor)
		return STORE_MERGE_UID_SAME;
	if (!in->home_msg && !in->home_vanished && in->uid >= in->floor)
		return STORE_MERGE_UID_KEEP;
	/* the home gave the UID to another message, or used it and expunged
	 * it: the mirror's message goes above everything either side used,
	 * and the home's (if still there) leaves the UID too */
	*uid_r = in->uidnext > in->horizon ? in->uidnext : in->horizon;
	*move_home_r = in->home_msg;
	return STORE_MERGE_UID_NEW;
}

int store_merge_name(const char *name, unsigned n, char out[STORE_MBOX_MAX])
{
	int len;

	if (name == NULL || n == 0)
		return STORE_INVAL;
	len = snprintf(out, STORE_MBOX_MAX, "%s-merged-%u", name, n);
	if (len < 0 || len >= STORE_MBOX_MAX) {
		out[0] = '\0';
		return STORE_INVAL;
	}
	return store_mailbox_name_check(out);
}

/* ---- the op -------------------------------------------------------------- */

static void refused(const struct store_merge *x, uint64_t seq, int type, int err)
{
	log_warn("store.merge_refused", "mirror=%s seq=%" PRIu64 " type=%d error=\"%s\"",
		 x->mirror, seq, type, store_strerror(err));
}

static int end_run(struct store *st, MDB_txn *txn, struct store_merge *x)
{
	struct mkey k;
	MDB_val v;
	int err;

	mkey_start(x, &k, 's');
	if ((err = mkey_get(st, txn, &k, &v)) != STORE_OK)
		return err;
	return store_del_prefix(st, txn, st->dbi[DBI_META], x->prefix, x->prefix_len, NULL, NULL);
}

struct state {
	uint64_t base, pos, last;
};

static int state_get(struct store *st, MDB_txn *txn, struct store_merge *x, struct state *s_r)
{
	const uint8_t *p;
	struct mkey k;
	MDB_val v;
	int err;

	mkey_start(x, &k, 's');
	if ((err = mkey_get(st, txn, &k, &v)) != STORE_OK)
		return err;
	p = v.mv_data;
	if (v.mv_size != STATE_REC_LEN || p[0] != STORE_REC_V1)
		return STORE_IO;
	s_r->base = be64_get(p + 1);
	s_r->pos = be64_get(p + 9);
	s_r->last = be64_get(p + 17);
	return STORE_OK;
}

static int state_put(struct store *st, MDB_txn *txn, struct store_merge *x,
		     const struct state *s)
{
	uint8_t rec[STATE_REC_LEN];
	struct mkey k;

	mkey_start(x, &k, 's');
	rec[0] = STORE_REC_V1;
	be64_put(rec + 1, s->base);
	be64_put(rec + 9, s->pos);
	be64_put(rec + 17, s->last);
	return mkey_put(st, txn, &k, rec, sizeof(rec));
}

/* Can st start a merge at base?  It must be the home's own store (a
 * mirror store of st's origin, with applied/<origin>, holds another POP's
 * view of it) and have written base (else the mirror holds records the
 * home never wrote: another history). */
static int start_ok(struct store *st, MDB_txn *txn, uint64_t base, uint64_t *home_last_r)
{
	char ak[APPLIED_KEY_MAX], sk[META_KEY_MAX];
	uint64_t applied;
	int err;

	if ((err = store_meta_u64_or0(st, txn, ak, store_applied_key(ak, st->origin, st->origin_len),
			    &applied)) != STORE_OK ||
	    (err = store_meta_u64_or0(st, txn, sk, meta_seq_key(sk, st->origin, st->origin_len),
			    home_last_r)) != STORE_OK)
		return err;
	return applied != 0 || base > *home_last_r ? STORE_INVAL : STORE_OK;
}

static int begin_run(struct store *st, MDB_txn *txn, struct store_merge *x)
{
	struct state s;
	uint64_t home_last;
	int err = state_get(st, txn, x, &s);

	if (err == STORE_OK)	/* begun already: the same is fine */
		return s.base == x->base && s.last == x->last && s.pos == s.base ? STORE_OK
										   : STORE_EXISTS;
	if (err != STORE_NOTFOUND)
		return err;
	if ((err = start_ok(st, txn, x->base, &home_last)) != STORE_OK)
		return err;
	s.base = s.pos = x->base;
	s.last = x->last;
	return state_put(st, txn, x, &s);
}

static int recs_run(struct store *st, MDB_txn *txn, struct store_op *op,
		    struct store_merge *x)
{
	char sk[META_KEY_MAX];
	size_t sklen = meta_seq_key(sk, st->origin, st->origin_len), i;
	uint64_t first, last, call_last = x->recs[x->n - 1].c.seq;
	struct state s;
	struct mkey k;
	uint8_t b[8];
	int err;

	err = state_get(st, txn, x, &s);
	if (err == STORE_NOTFOUND) {
		/* a merge in one call, or one not begun: its L is this call's */
		if ((err = start_ok(st, txn, x->base, &last)) != STORE_OK)
			goto refuse;
		s.base = s.pos = x->base;
		s.last = call_last;
	} else if (err != STORE_OK) {
		return err;
	} else if (s.pos != x->base) {
		err = STORE_INVAL;	/* not where the merge in progress is */
		goto refuse;
	} else if ((err = mmap_ranges_load(st, txn, x)) != STORE_OK) {
		return err;
	}
	if (s.last < call_last)
		s.last = call_last;	/* past what was declared: extents cover it */
	x->home_base = s.base;
	x->span = s.last - s.base;
	if ((err = store_meta_u64_or0(st, txn, sk, sklen, &last)) != STORE_OK)
		return err;
	first = last + 1;
	if ((err = mmap_home_changes_load(st, txn, x)) != STORE_OK ||
	    (err = mmap_extents_build(x)) != STORE_OK)
		return err;
	for (i = 0; i < x->n; i++) {
		const struct store_apply_rec *r = &x->recs[i];

		if ((err = merge_rec(st, txn, op, x, r)) != STORE_OK) {
			refused(x, r->c.seq, (int)r->c.type, err);
			return err;
		}
	}
	if ((err = mmap_horizons_save(st, txn, x)) != STORE_OK ||
	    (err = store_meta_u64_or0(st, txn, sk, sklen, &last)) != STORE_OK)
		return err;
	if (last >= first) {
		/* what this call wrote is not "the home's own change" later */
		mkey_start(x, &k, 'w');
		be64_put(k.b + k.len, first);
		k.len += 8;
		be64_put(b, last);
		if ((err = mkey_put(st, txn, &k, b, 8)) != STORE_OK)
			return err;
	}
	s.pos = call_last;
	return state_put(st, txn, x, &s);
refuse:
	refused(x, x->recs[0].c.seq, (int)x->recs[0].c.type, err);
	return err;
}

static int merge_run(struct store *st, MDB_txn *txn, struct store_op *op)
{
	struct store_merge *x = op->u.fn.ctx;

	memset(&x->stats, 0, sizeof(x->stats));
	switch (x->what) {
	case M_BEGIN:
		return begin_run(st, txn, x);
	case M_END:
		return end_run(st, txn, x);
	default:
		return recs_run(st, txn, op, x);
	}
}

/* ---- submit and reads ---------------------------------------------------- */

static void merge_free(struct store_merge *x)
{
	free(x->recs);
	free(x->blob);
	free(x->changes);
	free(x->hmboxes);
	free(x->ext);
	free(x->ranges);
	free(x);
}

static void merge_done(int err, void *arg)
{
	struct store_merge *x = arg;
	store_done_cb *cb = x->cb;
	void *cb_arg = x->arg;
	const struct store_merge_stats *s = &x->stats;

	if (x->what == M_RECS && err == STORE_OK)
		log_info("store.merge",
			 "mirror=%s records=%zu last_seq=%" PRIu64 " added=%" PRIu32
			 " added_renumbered=%" PRIu32 " home_renumbered=%" PRIu32
			 " already_present=%" PRIu32 " lost_to_mailbox_delete=%" PRIu32
			 " flags_applied=%" PRIu32 " flags_lost_to_newer=%" PRIu32
			 " flags_lost_to_expunge=%" PRIu32 " expunged=%" PRIu32
			 " mailboxes_created=%" PRIu32 " mailboxes_renamed=%" PRIu32
			 " mailboxes_deleted=%" PRIu32 " skipped=%" PRIu32,
			 x->mirror, x->n, x->recs[x->n - 1].c.seq, s->added, s->added_renumbered,
			 s->home_renumbered, s->already_present, s->lost_to_mailbox_delete,
			 s->flags_applied, s->flags_lost_to_newer_home_change,
			 s->flags_lost_to_expunge, s->expunged, s->mailboxes_created,
			 s->mailboxes_renamed, s->mailboxes_deleted, s->skipped);
	if (x->stats_r != NULL) {
		if (err == STORE_OK)
			*x->stats_r = x->stats;
		else
			memset(x->stats_r, 0, sizeof(*x->stats_r));
	}
	merge_free(x);
	if (cb != NULL)
		cb(err, cb_arg);
}

static struct store_merge *merge_new(struct store *st, const char *mirror, store_done_cb *cb,
				     void *arg, int *err_r)
{
	struct store_merge *x = store_xcalloc(1, sizeof(*x));

	x->cb = cb;
	x->arg = arg;
	*err_r = STORE_OK;
	/* a store merges from another POP, never from itself */
	if (!mirror_ok(mirror) || strcmp(mirror, st->origin) == 0) {
		*err_r = STORE_INVAL;
	} else {
		strcpy(x->mirror, mirror);
		x->prefix_len = merge_prefix(x->prefix, mirror);
	}
	return x;
}

void store_merge_changes(struct store *st, const char *mirror, uint64_t base,
			 const struct store_apply_rec *recs, size_t n,
			 struct store_merge_stats *stats_r, store_done_cb *cb, void *arg)
{
	int err;
	struct store_merge *x = merge_new(st, mirror, cb, arg, &err);

	x->stats_r = stats_r;
	x->base = base;
	if (err == STORE_OK && (n == 0 || n > STORE_MERGE_MAX || recs == NULL ||
				base > UINT64_MAX - n))
		err = STORE_INVAL;
	if (err == STORE_OK)
		err = store_ch_copy_recs(recs, n, base + 1, &x->recs, &x->blob);
	if (err == STORE_OK)
		x->n = n;
	store_submit_fn(st, merge_run, x, merge_done, err);
}

void store_merge_begin(struct store *st, const char *mirror, uint64_t base, uint64_t last,
		       store_done_cb *cb, void *arg)
{
	int err;
	struct store_merge *x = merge_new(st, mirror, cb, arg, &err);

	x->what = M_BEGIN;
	x->base = base;
	x->last = last;
	if (last <= base)
		err = STORE_INVAL;
	store_submit_fn(st, merge_run, x, merge_done, err);
}

void store_merge_end(struct store *st, const char *mirror, store_done_cb *cb, void *arg)
{
	int err;
	struct store_merge *x = merge_new(st, mirror, cb, arg, &err);

	x->what = M_END;
	store_submit_fn(st, merge_run, x, merge_done, err);
}

int store_merge_position(struct store *st, const char *mirror, uint64_t *base_r,
			 uint64_t *pos_r)
{
	struct store_merge x;
	struct state s;
	MDB_txn *txn;
	int err;

	*base_r = *pos_r = 0;
	if (!mirror_ok(mirror))
		return STORE_INVAL;
	x.prefix_len = merge_prefix(x.prefix, mirror);
	if ((err = store_rd_begin(st, &txn)) != STORE_OK)
		return err;
	err = state_get(st, txn, &x, &s);
	if (err == STORE_OK) {
		*base_r = s.base;
		*pos_r = s.pos;
	} else if (err != STORE_NOTFOUND) {
		err = STORE_IO;
	}
	mdb_txn_abort(txn);
	return err;
}
