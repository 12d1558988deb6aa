/*
 * store_merge_int.h - what store_merge.c (the pure rules, the run of a
 * call, the public calls), store_merge_map.c (what a merge learns and
 * keeps) and store_merge_rec.c (the rules of each record) share.  Nobody
 * else includes it.
 *
 * What one call of a merge learnt lives in the meta db under
 * "merge/<mirror>/", one binary-keyed entry each, until store_merge_end:
 *
 *   s                              ver, base B BE64, pos BE64 (the mirror's
 *                                  last seq merged), last L BE64 (the
 *                                  mirror's last seq, as far as known)
 *   w first BE64                   last BE64: home seqs the merge wrote
 *                                  (not "the home's own changes")
 *   u muser BE32                   home userid BE32 (0: the home has no such
 *                                  user)
 *   m muser BE32, mmbox BE32       ver, home mboxid BE32, kind u8, floor
 *                                  BE32, horizon BE32, modseq horizon BE64
 *   i muser, mmbox, muid (BE32)    home uid BE32 (0: not merged); only where
 *                                  the home UID is not the mirror's, or
 *                                  the mailbox joined the home's
 *   r huser, hmbox, huid (BE32)    muser, mmbox, muid: the mirror message a
 *                                  renumbered merged one came from
 *   k muser, mmbox (BE32), idx u8  home keyword index u8 (0xff: dropped)
 *
 * Ids the mirror gave after B (users it added, mailboxes it created) can
 * collide with ids the home gave after B, so they are always mapped; an
 * id the merge has no entry for is one both sides shared at B (the home
 * never reuses ids: if it still has it, it is the same user or mailbox).
 */
#ifndef POPNODE_STORE_MERGE_INT_H
#define POPNODE_STORE_MERGE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "store_private.h"

#define MKEY_MAX (sizeof(META_MERGE_PREFIX) + STORE_POP_MAX + 1 + 12)

enum mkind {
	MK_SAME = 1,	/* one both had at B (same id, same UIDVALIDITY): UIDs and
			 * the keyword table up to B are shared */
	MK_ADOPTED = 2,	/* created here by the merge for one the mirror created,
			 * with its UIDVALIDITY (if free): UIDs kept */
	MK_NAMED = 3,	/* the home's mailbox of that name, another UIDVALIDITY:
			 * the mirror's messages get the next UIDs */
	MK_GONE = 4,	/* deleted at the home, or by the merge */
	MK_SAMEUV = 5,	/* the home's mailbox of that name with the same
			 * UIDVALIDITY (both sides made one after B and the
			 * counters met): to a client the same mailbox, so UIDs
			 * are shared as for MK_SAME; keyword tables are not */
};

struct mmap {
	uint32_t hmbox;
	enum mkind kind;
	uint32_t floor;		/* SAME, SAMEUV: the mailbox's uidnext when the
				 * merge first touched it (below: the home's UIDs) */
	uint32_t horizon;	/* above every UID the mirror can have given in it:
				 * its uidnext at B (or creation) + L - B, at least
				 * (a new UID needs a record); raised by the UIDs
				 * of a call past L */
	uint64_t modhorizon;	/* the same for its modseqs: a record bumps a
				 * mailbox's highestmodseq once at most */
};

/* A mailbox name the home gave after B, with its UIDVALIDITY. */
struct home_mbox {
	uint32_t userid, uidvalidity;
	char name[STORE_MBOX_MAX];
};

/* A home message changed after B by the home itself (MSG_ADD, MSG_FLAGS). */
struct home_change {
	uint32_t userid, mboxid, uid;
	int64_t time;
};

/* Per mirror mailbox of this call: its highest UID and modseq in recs. */
struct extent {
	uint32_t muser, mmbox;
	uint32_t maxuid;
	uint64_t maxmod;
};

struct range {
	uint64_t first, last;
};

/* What a merge's OP_FN (store_merge.c) carries; merge_done (the op's
 * callback) frees it. */
struct store_merge {
	char mirror[STORE_POP_MAX];
	uint8_t prefix[MKEY_MAX];	/* "merge/<mirror>/" */
	size_t prefix_len;
	uint64_t base;
	struct store_apply_rec *recs;	/* data, body, meta point into blob */
	size_t n;
	uint8_t *blob;
	enum { M_RECS, M_BEGIN, M_END } what;
	uint64_t last;			/* M_BEGIN: the mirror's last seq */
	struct store_merge_stats stats;
	struct store_merge_stats *stats_r;
	store_done_cb *cb;
	void *arg;

	/* the run, on the writer thread */
	uint64_t home_base;		/* B of the whole merge */
	uint64_t span;			/* L - B */
	struct home_change *changes;
	size_t n_changes, cap_changes;
	struct home_mbox *hmboxes;	/* names it created or renamed to after B */
	size_t n_hmboxes, cap_hmboxes;
	struct extent *ext;
	size_t n_ext, cap_ext;
	struct range *ranges;
	size_t n_ranges, cap_ranges;
};

struct mkey {
	uint8_t b[MKEY_MAX];
	size_t len;
};

/* ---- store_merge_map.c ---- */

/* Room for element n in *p (*cap elements of size bytes); STORE_IO if none. */
int merge_grow(void **p, size_t *cap, size_t n, size_t size);
/* A key "merge/<mirror>/" type, then a BE32 appended. */
void mkey_start(const struct store_merge *x, struct mkey *k, char type);
void mkey_be32(struct mkey *k, uint32_t v);
/* The meta entry of k: get (STORE_NOTFOUND if none), put. */
int mkey_get(struct store *st, MDB_txn *txn, const struct mkey *k, MDB_val *v);
int mkey_put(struct store *st, MDB_txn *txn, const struct mkey *k, const void *val, size_t len);

/* What a call learns before its records: the seq ranges earlier calls
 * wrote, then (x->home_base set) the home's own changes after B, and the
 * extent of each mirror mailbox in x->recs. */
int mmap_ranges_load(struct store *st, MDB_txn *txn, struct store_merge *x);
int mmap_home_changes_load(struct store *st, MDB_txn *txn, struct store_merge *x);
int mmap_extents_build(struct store_merge *x);
/* Did the home itself change that message after B, at t or later? */
bool mmap_home_changed_since(const struct store_merge *x, uint32_t userid, uint32_t mboxid,
			     uint32_t uid, int64_t t);
/* The extent of the mirror's mailbox (muser, mmbox) in this call, or NULL. */
const struct extent *mmap_extent_find(const struct store_merge *x, uint32_t muser, uint32_t mmbox);

/* A mailbox's first horizons from its uidnext, highestmodseq (x->span set). */
uint32_t mmap_horizon_from(const struct store_merge *x, uint32_t uidnext);
uint64_t mmap_modhorizon_from(const struct store_merge *x, uint64_t highestmodseq);
/* The home's user for the mirror's user muser: *have_r false if none. */
int mmap_user(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
	      struct store_user *u_r, bool *have_r);
/* The "m" entry of mirror mailbox (muser, mmbox): get (NOTFOUND if none), put. */
int mmap_get(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
	     uint32_t mmbox, struct mmap *mm_r);
int mmap_put(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
	     uint32_t mmbox, const struct mmap *mm);
/* The home's mailbox for the mirror's mailbox mmbox of user u (the
 * home's), its entry made if none; mb_r loaded unless MK_GONE. */
int mmap_mbox(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
	      uint32_t mmbox, const struct store_user *u, struct mmap *mm_r,
	      struct store_mailbox *mb_r);
/* The home UID of mirror message (mmbox, muid), 0: not merged; put: set it. */
int mmap_uid(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
	     uint32_t mmbox, uint32_t muid, uint32_t *h_r);
int mmap_uid_put(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
		 uint32_t mmbox, uint32_t muid, uint32_t huid);
/* The home message huid came renumbered from the mirror's muid: the "r"
 * entry; mmap_rev_moved makes both maps follow the home's move from->to. */
int mmap_rev_put(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t huser,
		 uint32_t hmbox, uint32_t huid, uint32_t muser, uint32_t mmbox, uint32_t muid);
int mmap_rev_moved(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t huser,
		   uint32_t hmbox, uint32_t from, uint32_t to);
/* The home's bitmap for the mirror's keywords mask of mailbox mmbox. */
int mmap_kw_translate(struct store *st, MDB_txn *txn, struct store_merge *x, uint32_t muser,
		      uint32_t mmbox, const struct mmap *mm, uint32_t huser, uint64_t mask,
		      uint64_t *out_r);
/* After a call's records: each mailbox's horizon past the UIDs it saw. */
int mmap_horizons_save(struct store *st, MDB_txn *txn, struct store_merge *x);

/* ---- store_merge_rec.c ---- */

/* Merge one of the mirror's records r (docs/store.md "Merge rules"),
 * counted in x->stats; an error refuses the call. */
int merge_rec(struct store *st, MDB_txn *txn, struct store_op *op, struct store_merge *x,
	      const struct store_apply_rec *r);

#endif
