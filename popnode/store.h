/*
 * store.h - popnode's mail store on LMDB: the user directory, mailboxes,
 * messages (bodies stored once per content hash), per-user quota and the
 * changelog.  This header is the store's whole public surface; no other
 * module includes lmdb.h.
 *
 * Threads: reads run on the caller's thread in their own LMDB read
 * transaction and never wait for writes.  Every write is queued to the
 * store's writer thread, which runs all queued operations in one LMDB
 * transaction (each op in a nested transaction, so one op's failure does
 * not undo another's) and commits with fsync: group commit.  Only after
 * that commit is durable is the op's callback run, on the event loop
 * (opts.base) thread.  A callback therefore means "durable" (err == 0)
 * or "nothing of this op was written" (err < 0).
 *
 * Every mutation appends a changelog record in the same transaction,
 * keyed (origin, seq) with a per-origin sequence number.
 */
#ifndef POPNODE_STORE_H
#define POPNODE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store;

#define STORE_NAME_MAX 64	/* user name, incl. NUL */
#define STORE_POP_MAX 64	/* POP id, incl. NUL */
#define STORE_HASH_MAX 256	/* crypt(3) hash, incl. NUL */
#define STORE_MBOX_MAX 512	/* mailbox name (UTF-8, '/'-separated), incl. NUL */
#define STORE_BODY_HASH_LEN 32	/* SHA-256 */

enum store_err {
	STORE_OK = 0,
	STORE_NOTFOUND = -1,
	STORE_EXISTS = -2,
	STORE_QUOTA = -3,	/* the user's quota would be exceeded */
	STORE_FULL = -4,	/* LMDB map or disk full */
	STORE_IO = -5,		/* any other LMDB / I/O failure */
	STORE_INVAL = -6,	/* bad argument (name too long, ...) */
	STORE_SHUTDOWN = -7,	/* store closing, op not run */
	STORE_DISABLED = -8,	/* user exists but is disabled */
};
const char *store_strerror(int err);

/* System flags (IMAP), stored per message. */
enum {
	STORE_F_SEEN = 1 << 0,
	STORE_F_ANSWERED = 1 << 1,
	STORE_F_FLAGGED = 1 << 2,
	STORE_F_DELETED = 1 << 3,
	STORE_F_DRAFT = 1 << 4,
	STORE_F_RECENT = 1 << 5,
};

/* SPECIAL-USE attributes of a mailbox. */
enum {
	STORE_SU_SENT = 1 << 0,
	STORE_SU_DRAFTS = 1 << 1,
	STORE_SU_TRASH = 1 << 2,
	STORE_SU_JUNK = 1 << 3,
	STORE_SU_ARCHIVE = 1 << 4,
};

struct store_opts {
	const char *dir;		/* holds data.mdb and lock.mdb; must exist */
	uint64_t map_size;		/* LMDB map size in bytes */
	const char *origin;		/* this node's POP id (changelog origin) */
	unsigned batch_max;		/* most ops in one group commit (0 = 256) */
	struct event_base *base;	/* callbacks run on this loop's thread;
					 * the base must be thread-enabled
					 * (evthread_use_pthreads before creating it) */
};

/* Open (creating if new) the store and start its writer thread.
 * 0, or -1 with *error_r set to a static or store-owned message. */
int store_open(struct store **st_r, const struct store_opts *opts, const char **error_r);
/* Stop accepting ops, let the writer commit everything queued, run the
 * remaining callbacks on the calling thread, join the writer and close
 * LMDB.  Sets *st to NULL; accepts NULL. */
void store_close(struct store **st);

/* ---- directory ---------------------------------------------------------- */

struct store_user {
	uint32_t id;			/* assigned by store_user_add */
	char name[STORE_NAME_MAX];	/* lowercase, validated by the caller */
	char home[STORE_POP_MAX];	/* home POP id */
	char pwhash[STORE_HASH_MAX];	/* crypt(3) string */
	uint64_t quota;			/* bytes, 0 = unlimited */
	uint64_t used;			/* bytes, maintained by the store */
	uint32_t messages;		/* all mailboxes, maintained by the store */
	bool enabled;
	int64_t created;		/* unix time, set by store_user_add */
};

/* Synchronous reads.  STORE_OK, STORE_NOTFOUND or STORE_IO. */
int store_user_get(struct store *st, const char *name, struct store_user *u_r);
int store_user_get_by_id(struct store *st, uint32_t id, struct store_user *u_r);
/* Calls cb for every user in name order; cb returns non-zero to stop. */
int store_user_foreach(struct store *st,
		       int (*cb)(const struct store_user *u, void *arg), void *arg);

typedef void store_done_cb(int err, void *arg);

/* Create a user (id, used, messages, created are assigned) with INBOX and
 * the special-use folders Sent, Drafts, Trash, Junk, Archive.
 * err: STORE_OK, STORE_EXISTS, STORE_INVAL, STORE_IO... */
void store_user_add(struct store *st, const struct store_user *u, store_done_cb *cb, void *arg);
/* Replace home, pwhash, quota and enabled of the user named u->name. */
void store_user_update(struct store *st, const struct store_user *u, store_done_cb *cb, void *arg);
/* Delete the user, all their mailboxes and messages (body refs dropped). */
void store_user_del(struct store *st, const char *name, store_done_cb *cb, void *arg);

/* ---- directory across POPs ---------------------------------------------- *
 *
 * Every POP holds the whole user directory and syncs it with its peers,
 * last writer wins.  Each user name has a directory record: the version
 * (a Lamport clock) and origin (POP id) of the last change, and whether
 * that change was a delete (a tombstone, kept for ever so an older add
 * arriving late cannot bring the user back).  store_user_add, _update
 * and _del write the record in the same transaction with version =
 * dir_clock + 1 and origin = store_opts.origin; records received from
 * peers go through store_dir_apply.  (version, origin) orders changes:
 * the greater version wins, equal versions go to the greater origin
 * (strcmp).  Every record written here, local or applied, gets the next
 * local sequence number (lseq), so a peer pulls everything it lacks
 * with store_dir_foreach_since(its watermark) and records from a third
 * POP are relayed.  Layout and rules: docs/store.md. */

#define STORE_DIR_APPLY_MAX 8192	/* records in one store_dir_apply */

struct store_dir_rec {
	struct store_user u;		/* name, home, pwhash, quota, enabled; on
					 * apply id/used/messages/created are
					 * ignored */
	uint64_t version;		/* Lamport clock of the change (>= 1) */
	char origin[STORE_POP_MAX];	/* POP that made the change; breaks
					 * version ties (strcmp, greater wins) */
	bool deleted;			/* tombstone */
	uint64_t lseq;			/* out: this node's local sequence of the
					 * record (ignored on apply) */
};

/* Highest local sequence (0 = no records, or a read error). */
uint64_t store_dir_lseq(struct store *st);

/* Calls cb for each record with lseq > since, ascending lseq, all from
 * one read snapshot; at most max records (0 = all).  cb returns non-zero
 * to stop.  For a live user u is filled from the users DB (id, used,
 * ... included); for a tombstone only u.name and u.home (the home the
 * user had when deleted, "" if unknown).  STORE_OK or STORE_IO. */
int store_dir_foreach_since(struct store *st, uint64_t since, size_t max,
			    int (*cb)(const struct store_dir_rec *r, void *arg), void *arg);

/* The record of name, filled as for store_dir_foreach_since.
 * STORE_OK, STORE_NOTFOUND (no record: never known here), STORE_IO. */
int store_dir_get(struct store *st, const char *name, struct store_dir_rec *r_r);

/* Watermark: the peer's lseq up to which its records were applied here
 * (0 if none). */
uint64_t store_dir_peer_lseq(struct store *st, const char *peer);

/* Apply n records received from peer, in one nested transaction of a
 * group commit (all or nothing).  Each record, in order, wins only if
 * its (version, origin) is greater than the record held for the name (a
 * user without a record counts as version 0); else it is skipped.  A
 * winning live record creates the user (fresh local id, INBOX and the
 * special-use folders exactly as store_user_add) or replaces home,
 * pwhash, quota and enabled; a winning tombstone deletes the user's
 * mailboxes and messages as store_user_del does (if the user exists
 * here) and is kept.  The changelog gets the same records as the local
 * ops write.  dir_clock = max(dir_clock, every version received).
 * Winning records get a new local lseq (they are relayed to peers that
 * pull from here).  peer_lseq: the "dirpeer/<peer>" watermark is raised
 * to it in the same transaction (never lowered).  Everything is copied
 * before return but n_applied_r: if not NULL it must stay valid until
 * cb runs, and is set just before, on the loop thread, to how many
 * records won (0 on error).
 * err: STORE_OK (also when some or all were stale); STORE_INVAL (peer or
 * a record's origin not 1..63 bytes, a name not 1..63 bytes, home or
 * pwhash too long, version 0, n > STORE_DIR_APPLY_MAX, recs NULL with
 * n > 0: the whole call is refused); STORE_FULL, STORE_IO (nothing
 * applied, watermark unchanged), STORE_SHUTDOWN. */
void store_dir_apply(struct store *st, const char *peer, uint64_t peer_lseq,
		     const struct store_dir_rec *recs, size_t n, size_t *n_applied_r,
		     store_done_cb *cb, void *arg);

/* ---- mailboxes and messages ---------------------------------------------- */

struct store_mailbox {
	uint32_t id;
	char name[STORE_MBOX_MAX];
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
	uint64_t bytes;
	uint32_t special_use;		/* STORE_SU_* */
	bool subscribed;		/* the name is in the user's subscriptions
					 * (store_mailbox_subscribe) */
	/* added for IMAP: */
	uint32_t unseen;		/* messages without \Seen, maintained by
					 * every op (STATUS UNSEEN without a scan) */
};

/* Synchronous read of one mailbox by name ("INBOX" is case-insensitive). */
int store_mailbox_get(struct store *st, uint32_t userid, const char *name,
		      struct store_mailbox *mb_r);

struct store_msg {
	uint32_t uid;
	uint64_t size;			/* bytes as served: prefix + body */
	uint64_t modseq;
	int64_t internaldate;		/* unix time */
	uint32_t flags;			/* STORE_F_* */
	uint64_t keywords;		/* bit i = mailbox keyword i */
	uint8_t hash[STORE_BODY_HASH_LEN];
};

/* Calls cb for every message of the mailbox in ascending UID order, all
 * from one snapshot.  cb returns non-zero to stop. */
int store_msg_foreach(struct store *st, uint32_t userid, uint32_t mboxid,
		      int (*cb)(const struct store_msg *m, void *arg), void *arg);

/* Calls cb once with the message's bytes: its per-recipient prefix (the
 * Return-Path/Delivered-To lines written at delivery) and the shared body.
 * The pointers are valid only during the call.  Returns cb's result, or
 * STORE_NOTFOUND / STORE_IO.
 * The pointers point into LMDB's read-only map: nothing is copied, so a
 * call costs one read transaction and two B-tree lookups whatever the
 * size.  To stream a big message with bounded memory, call it (or
 * store_msg_read_range) once per window and copy only that window; the
 * bytes of a UID never change while the message exists (a window read
 * after an expunge gets STORE_NOTFOUND). */
int store_msg_read(struct store *st, uint32_t userid, uint32_t mboxid, uint32_t uid,
		   int (*cb)(const char *prefix, size_t prefix_len,
			     const char *body, size_t body_len, void *arg),
		   void *arg);

/* Remove messages by UID (unknown UIDs are ignored); quota and counts are
 * updated, bodies whose last reference goes are freed. */
void store_msg_expunge(struct store *st, uint32_t userid, uint32_t mboxid,
		       const uint32_t *uids, size_t n, store_done_cb *cb, void *arg);

/* ---- delivery ---------------------------------------------------------- */

struct store_rcpt {
	const char *user;		/* user name */
	const char *prefix;		/* per-recipient header lines, CRLF-ended */
	size_t prefix_len;
	/* out, valid in the callback: */
	int result;			/* STORE_OK, STORE_NOTFOUND, STORE_QUOTA,
					 * STORE_DISABLED, STORE_FULL, STORE_IO */
	uint32_t uid;			/* UID given in the mailbox */
};

struct store_delivery {
	const char *body;		/* message, CRLF line ends, dot-unstuffed */
	size_t body_len;
	int64_t internaldate;
	const char *mailbox;		/* NULL = "INBOX" */
	struct store_rcpt *rcpts;
	size_t n_rcpts;
	/* added for IMAP: an opaque per-body blob (popnode/mime.h's MIME
	 * structure of body, offsets relative to body[0], i.e. WITHOUT the
	 * per-recipient prefix).  Stored once per body hash beside the body
	 * (kept if the body already has one), freed with the body; read back
	 * with store_msg_read_meta.  NULL/0 = none.  At most STORE_META_MAX
	 * bytes, else every recipient gets STORE_INVAL. */
	const void *meta;
	size_t meta_len;
};

/* Deliver one message to every recipient: the body is stored once (by
 * SHA-256), each recipient gets a message record in its own nested
 * transaction, so one recipient's quota failure leaves the others.
 * The store copies everything it needs before returning.  cb gets the
 * same rcpts array layout back (results filled in) once the commit is
 * durable; rcpts[i].user/prefix pointers are not valid in cb. */
void store_deliver(struct store *st, const struct store_delivery *d,
		   void (*cb)(const struct store_rcpt *rcpts, size_t n, void *arg), void *arg);

/* ---- changelog ---------------------------------------------------------- */

enum store_change_type {
	STORE_CH_USER_ADD = 1,
	STORE_CH_USER_UPDATE,
	STORE_CH_USER_DEL,
	STORE_CH_MAILBOX_ADD,
	STORE_CH_MSG_ADD,
	STORE_CH_MSG_EXPUNGE,
	STORE_CH_MSG_FLAGS,
	/* added for IMAP (payloads in docs/store.md): */
	STORE_CH_MAILBOX_DEL,		/* userid, mboxid */
	STORE_CH_MAILBOX_RENAME,	/* userid, mboxid; the renamed record */
	STORE_CH_SUBSCRIBE,		/* userid; on u8, name */
	STORE_CH_KEYWORD_ADD,		/* userid, mboxid, uid = index; name */
};

struct store_change {
	uint64_t seq;
	enum store_change_type type;
	uint32_t userid;
	uint32_t mboxid;
	uint32_t uid;
	int64_t time;
	const void *data;		/* type-specific payload, valid in cb */
	size_t data_len;
};

/* Calls cb for each record of origin with seq > after, ascending. */
int store_changelog_foreach(struct store *st, const char *origin, uint64_t after,
			    int (*cb)(const struct store_change *c, void *arg), void *arg);
/* Highest seq written for origin (0 if none). */
uint64_t store_changelog_last(struct store *st, const char *origin);

/* ---- applying another POP's changelog (mirrors) --------------------------- *
 *
 * A mirror of origin X is a store of its own (its own directory and LMDB
 * environment) opened with store_opts.origin = X, and written only by
 * store_apply_changes: X's changelog records, applied in order, with X's
 * ids kept (user and mailbox ids, UIDs, UIDVALIDITY, UIDNEXT, MODSEQs,
 * flags, keyword indexes, subscriptions, INTERNALDATE, prefixes; bodies
 * by SHA-256, stored once).  Each applied record is also written to the
 * mirror's changelog unchanged (origin X, same seq and time), so a mirror
 * can serve as a source in turn.  The mirror's state equals X's at the
 * end of every op of X (a record boundary inside one op of X, e.g. a
 * user add before its mailboxes, can be seen between two batches).
 * Directory records (store_dir_*) are not part of the changelog and are
 * not written on a mirror.  Layout and rules: docs/store.md. */

#define STORE_APPLY_MAX 8192		/* records in one store_apply_changes */

struct store_apply_rec {
	struct store_change c;		/* as store_changelog_foreach gave it at
					 * the origin (data copied) */
	const void *body;		/* MSG_ADD: the body bytes, or NULL if the
					 * mirror already holds the hash */
	size_t body_len;
	const void *meta;		/* MSG_ADD: the body's MIME metadata blob
					 * (store_body_read at the origin), or NULL */
	size_t meta_len;
	/* MSG_ADD: the origin no longer has the body (every message holding
	 * it was expunged there since; the log carries that expunge later).
	 * If the mirror does not hold it either, the message is not stored:
	 * its UID is taken (UIDNEXT, HIGHESTMODSEQ move as if it were), and
	 * the later MSG_FLAGS/MSG_EXPUNGE of that UID only move HIGHESTMODSEQ
	 * (the expunge also records the UID as vanished, for QRESYNC). */
	bool body_gone;
};

/* Apply n records of origin (1..n <= STORE_APPLY_MAX), which must be the
 * store's own origin (store_opts.origin) and continue its sequence:
 * recs[0].c.seq == store_applied_seq(st, origin) + 1 and consecutive.
 * One nested transaction in one group commit: all or nothing; the applied
 * position is stored in the same transaction.  A MSG_ADD's body, if
 * given, must hash to the record's SHA-256 and have the record's length
 * (size - prefix length); the meta blob is stored if the body has none.
 * Everything is copied before return.
 * err: STORE_OK; STORE_INVAL (origin not the store's, n 0 or too big, a
 * gap, a seq already applied, the store's changelog of origin written by
 * something else, an unknown type, a malformed payload, a body that does
 * not match its hash, a record that does not fit the state: e.g. MSG_ADD
 * to a mailbox that does not exist, a flag change of a missing message);
 * STORE_NOTFOUND (a MSG_ADD without body whose body the store lacks);
 * STORE_FULL, STORE_IO, STORE_SHUTDOWN. */
void store_apply_changes(struct store *st, const char *origin, const struct store_apply_rec *recs,
			 size_t n, store_done_cb *cb, void *arg);

/* Seq of origin's last record applied here (0 if none, or a read error). */
uint64_t store_applied_seq(struct store *st, const char *origin);

/* true if the body with this hash is stored (so the shipper may leave it
 * out of a MSG_ADD).  false also on a read error. */
bool store_has_body(struct store *st, const uint8_t hash[STORE_BODY_HASH_LEN]);

/* Calls cb once with the body stored under hash and its metadata blob
 * ((NULL, 0) if none), both valid only during the call: what a shipper
 * sends with a MSG_ADD record (whose payload has the hash).  Returns cb's
 * result, or STORE_NOTFOUND (no such body: every message that had it is
 * gone) / STORE_IO. */
int store_body_read(struct store *st, const uint8_t hash[STORE_BODY_HASH_LEN],
		    int (*cb)(const void *body, size_t body_len, const void *meta,
			      size_t meta_len, void *arg),
		    void *arg);

/* ---- generation, trimming, snapshots (replication) ------------------------ *
 *
 * docs/store.md "Generation, trimming and snapshots".  The generation
 * names one history of an origin's data: a store gets a random one when
 * it is created; a mirror store takes its origin's (store_set_generation,
 * or the snapshot it was loaded from), and a store rebuilt from a
 * snapshot adopts the snapshot's.  Two copies of origin X with the same
 * generation and changelog position hold the same data. */

#define STORE_GEN_LEN 16			/* bytes of a generation */
#define STORE_GEN_HEX (2 * STORE_GEN_LEN + 1)	/* as lowercase hex, NUL included */

/* The generation of the origin's data held here.  STORE_OK, STORE_NOTFOUND
 * (unknown: a mirror store written by an older popnode, whose origin has
 * not named it yet), STORE_IO. */
int store_generation(struct store *st, char hex[STORE_GEN_HEX]);
/* STORE_OK if hex is exactly 32 lowercase hex digits, else STORE_INVAL. */
int store_generation_check(const char *hex);
/* Make hex the store's generation (a mirror learning its origin's).
 * err: STORE_OK, STORE_INVAL (not a generation), STORE_FULL, STORE_IO,
 * STORE_SHUTDOWN. */
void store_set_generation(struct store *st, const char *hex, store_done_cb *cb, void *arg);

/* Seq up to which origin's changelog was trimmed: its records <= that are
 * gone (0: none ever).  The first record held is that + 1, if not past
 * store_changelog_last (which trimming never lowers).  0 on a read
 * error. */
uint64_t store_changelog_trimmed(struct store *st, const char *origin);

#define STORE_TRIM_MAX 16384		/* records deleted by one trim op */

typedef void store_trim_cb(int err, uint64_t trimmed, void *arg);

/* Delete origin's changelog records with seq <= upto (capped at
 * store_changelog_last), at most max of them (0 or more than
 * STORE_TRIM_MAX: STORE_TRIM_MAX), oldest first, in one op.  cb gets the
 * new trimmed position (unchanged if there was nothing to delete).
 * err: STORE_OK, STORE_INVAL (bad origin), STORE_FULL, STORE_IO,
 * STORE_SHUTDOWN. */
void store_changelog_trim(struct store *st, const char *origin, uint64_t upto, size_t max,
			  store_trim_cb *cb, void *arg);

/* A snapshot is everything a client sees of the store, read in ONE read
 * transaction, as a sequence of items: every body (with its metadata
 * blob) once, then users, mailboxes, subscriptions, keyword tables,
 * vanished UIDs and messages, each in key order.  Loaded in that order
 * into a fresh store (store_snap_load, then store_snap_finish) it gives
 * the same store: ids, UIDs, UIDVALIDITY, UIDNEXT, MODSEQs, flags,
 * counters, and the changelog position.  The changelog itself, directory
 * records (dirrecs) and dirsync watermarks are not part of it. */
enum store_snap_type {
	STORE_SNAP_BODY = 1,		/* hash, body, meta (NULL: none) */
	STORE_SNAP_USER = 2,		/* data: name_len u8, name, user record
					 * (a USER_ADD payload) */
	STORE_SNAP_MAILBOX = 3,		/* a = userid; data: mailbox record */
	STORE_SNAP_SUB = 4,		/* a = userid; data: the name */
	STORE_SNAP_KEYWORD = 5,		/* a = userid, b = mboxid, c = index;
					 * data: the name */
	STORE_SNAP_VANISHED = 6,	/* a = userid, b = mboxid, c = uid;
					 * data: modseq BE64 */
	STORE_SNAP_MESSAGE = 7,		/* a = userid, b = mboxid, c = uid;
					 * data: message record (docs/store.md) */
};

struct store_snap_item {
	enum store_snap_type type;
	uint32_t a, b, c;
	const void *data;		/* not BODY */
	size_t data_len;
	uint8_t hash[STORE_BODY_HASH_LEN];	/* BODY */
	const void *body;		/* BODY */
	size_t body_len;
	const void *meta;		/* BODY: NULL if the body has none */
	size_t meta_len;
};

struct store_snap_info {
	uint64_t seq;			/* the origin's changelog position */
	char generation[STORE_GEN_HEX];	/* "" if unknown */
	uint32_t next_userid, next_mboxid, uidvalidity;	/* the id counters */
	uint64_t items;			/* how many items (the sender counts) */
	uint64_t bytes;			/* read: an estimate of the bytes the
					 * items take (LMDB pages of the data) */
	uint64_t dir_lseq;		/* finish: raise dir_lseq to this (0: no) */
};

struct store_snap;

/* Open the snapshot's read transaction (on the loop thread; it stays open
 * until store_snap_end, across event-loop turns: MDB_NOTLS).  It pins the
 * pages it sees, so the map may grow by what is written meanwhile.
 * info_r: origin = the store's own; seq = store_changelog_last of it.
 * STORE_OK or STORE_IO. */
int store_snap_begin(struct store *st, struct store_snap **sn_r, struct store_snap_info *info_r);
/* Give the next items to cb until about budget bytes (data, body, meta)
 * went, at least one item.  Pointers are valid only during cb.  Returns
 * 1 (more to come), 0 (the snapshot is complete), STORE_IO, or cb's
 * non-zero result (cb failed: the snapshot cannot go on). */
int store_snap_next(struct store_snap *sn, size_t budget,
		    int (*cb)(const struct store_snap_item *it, void *arg), void *arg);
/* Close it.  Sets *sn NULL; accepts NULL. */
void store_snap_end(struct store_snap **sn);

#define STORE_SNAP_LOAD_MAX 8192	/* items in one store_snap_load */

/* Load n items (in snapshot order, continuing earlier calls) into a
 * store created for that (empty).  One op: all or nothing.  Everything
 * is copied before return.  Each item is checked: records decode, bodies
 * hash to their hash, ids are new, what an item refers to (user,
 * mailbox, body) was loaded before.  err: STORE_OK, STORE_INVAL (an item
 * that is malformed or does not fit), STORE_FULL, STORE_IO,
 * STORE_SHUTDOWN. */
void store_snap_load(struct store *st, const struct store_snap_item *items, size_t n,
		     store_done_cb *cb, void *arg);
/* The snapshot is complete: store its changelog position (the store's
 * origin's last seq = trimmed = info->seq, and applied = info->seq if
 * mirror), generation, id counters (raised, never lowered), and raise
 * dir_lseq to info->dir_lseq.  err: STORE_OK, STORE_INVAL (no valid
 * generation), STORE_FULL, STORE_IO, STORE_SHUTDOWN. */
void store_snap_finish(struct store *st, const struct store_snap_info *info, bool mirror,
		       store_done_cb *cb, void *arg);

/* Replace st's data with the environment in src_dir (a store loaded and
 * closed; its data.mdb is renamed over st's, src_dir removed), in place:
 * st stays valid for everyone who holds it, observers included.  On the
 * loop thread, with no op pending and no snapshot being read:
 * STORE_EXISTS otherwise (try again later).  STORE_OK; STORE_NOTFOUND
 * (no src_dir/data.mdb); STORE_IO (st unchanged).  A store that cannot
 * be reopened after the rename aborts the process (the new data is in
 * place for the next start). */
int store_replace(struct store *st, const char *src_dir, const char **why_r);

/* ---- merging a mirror's failover changes (home return) -------------------- *
 *
 * While home POP X is down, a mirror M serves X's users from its mirror
 * store of X with the normal ops, so M's changelog of origin X holds X's
 * records 1..B (B: what M had applied) and then M's own B+1..L.  When X
 * returns it fetches B+1..L (with bodies, as store_apply_rec) and merges
 * them into its own store (st: origin X, not a mirror store), which may
 * hold records after B that M never got.  Every change the merge makes is
 * written as the normal op writes it (records of X's origin with X's next
 * seq and the current time, modseqs, counters, body references,
 * tombstones, change observer), so X's mirrors get it by normal shipping.
 * Rules, and why: docs/store.md "Merge rules (home return)".
 *
 * A merge may come in several calls (a failover can be far more than one
 * transaction or the memory of one call holds; declare it with
 * store_merge_begin): what one call learnt (position, id maps) is kept in
 * the store under the mirror's name until store_merge_end. */

#define STORE_MERGE_MAX STORE_APPLY_MAX	/* records in one store_merge_changes */

/* What a call did.  Every MSG_ADD, MSG_FLAGS and MSG_EXPUNGE record counts
 * once: in one of the fields under its name, or in skipped. */
struct store_merge_stats {
	/* MSG_ADD: */
	uint32_t added;			/* added under the mirror's UID (or, in a home
					 * mailbox of the same name with another
					 * UIDVALIDITY, under the next UID) */
	uint32_t added_renumbered;	/* added under a new UID: the home had used
					 * the mirror's */
	uint32_t already_present;	/* the home holds it under that UID */
	uint32_t lost_to_mailbox_delete;/* its mailbox was deleted at the home */
	/* MSG_FLAGS: */
	uint32_t flags_applied;		/* the home's message now has them */
	uint32_t flags_lost_to_newer_home_change;
	uint32_t flags_lost_to_expunge;	/* the message (or mailbox) is gone here */
	/* MSG_EXPUNGE: */
	uint32_t expunged;		/* also messages of a mailbox the mirror
					 * deleted that were merged into a home
					 * mailbox of the same name */
	/* other effects: */
	uint32_t home_renumbered;	/* home messages moved to a new UID */
	uint32_t mailboxes_created;
	uint32_t mailboxes_renamed;
	uint32_t mailboxes_deleted;
	uint32_t skipped;		/* records that change nothing here: about a
					 * user the home does not have, a message
					 * already gone, a body gone on both sides */
};

/* Merge recs (1..STORE_MERGE_MAX records of st's own origin, the mirror's
 * seqs base+1.. consecutive) from mirror (a POP id, not st's origin) into
 * st.  The first call of a merge (or store_merge_begin) sets its base B; a
 * later call must continue it (base = store_merge_position's pos) until
 * store_merge_end.
 * One op (one nested transaction of a group commit): all or nothing, the
 * position included.  MSG_ADD bodies as for store_apply_changes (NULL if
 * st holds the hash; body_gone: the mirror has it no more).  Everything is
 * copied before return but stats_r: if not NULL it must stay valid until
 * cb runs, and is set just before, on the loop thread (zero on error).
 * err: STORE_OK; STORE_INVAL (bad mirror name, mirror = st's origin, st a
 * mirror store, n 0 or too big, recs[0].c.seq != base + 1, a gap, base
 * past st's own changelog, a merge of mirror in progress at another
 * position, an unknown type, a malformed payload, a body not matching its
 * hash); STORE_NOTFOUND (a body neither sent nor held, without
 * body_gone); STORE_FULL (UIDs or ids used up, map full); STORE_IO;
 * STORE_SHUTDOWN. */
void store_merge_changes(struct store *st, const char *mirror, uint64_t base,
			 const struct store_apply_rec *recs, size_t n,
			 struct store_merge_stats *stats_r, store_done_cb *cb, void *arg);

/* Declare a merge of mirror in several calls: its base B and the
 * mirror's last seq L (> B) the calls will bring.  A UID both sides used
 * then moves above every UID the mirror can have given (it gives at most
 * one per record, so below its uidnext at B + L - B): a later call never
 * brings the mirror's own message under a UID the merge already gave.
 * (Without it the first call's last seq counts as L: right for a merge in
 * one call; a later call past it may move the same messages again.)
 * err: STORE_OK (also if begun already with the same base and last);
 * STORE_EXISTS (a merge of mirror is in progress otherwise); STORE_INVAL
 * (bad mirror name, mirror = st's origin, last <= base, st a mirror
 * store, base past st's own changelog); STORE_FULL, STORE_IO,
 * STORE_SHUTDOWN. */
void store_merge_begin(struct store *st, const char *mirror, uint64_t base, uint64_t last,
		       store_done_cb *cb, void *arg);

/* The merge of mirror in progress: its base B and the mirror's last seq
 * merged.  STORE_OK; STORE_NOTFOUND (none); STORE_INVAL (bad name);
 * STORE_IO. */
int store_merge_position(struct store *st, const char *mirror, uint64_t *base_r,
			 uint64_t *pos_r);

/* The merge of mirror is complete: drop its position and maps.
 * err: STORE_OK; STORE_NOTFOUND (none in progress); STORE_INVAL;
 * STORE_FULL, STORE_IO, STORE_SHUTDOWN. */
void store_merge_end(struct store *st, const char *mirror, store_done_cb *cb, void *arg);

/* The UID rule for a mirror's message, pure (exposed for tests). */
enum store_merge_uid_how {
	STORE_MERGE_UID_KEEP,	/* free at the home: keep the mirror's UID */
	STORE_MERGE_UID_SAME,	/* the home holds the same message under it */
	STORE_MERGE_UID_NEW,	/* used at the home: a new UID above both sides' */
};

struct store_merge_uid_in {
	uint32_t uid;		/* the mirror's UID */
	uint32_t floor;		/* UIDs below it were the home's before the merge
				 * (its uidnext then; 0 for a mailbox the merge
				 * created) */
	bool home_msg;		/* the home holds a message under uid */
	bool home_same;		/* ... with the same body hash and INTERNALDATE */
	bool home_vanished;	/* the home has a tombstone for uid */
	uint32_t uidnext;	/* the home mailbox's now */
	uint32_t horizon;	/* above every UID the mirror used in it */
};

/* *uid_r: the UID the mirror's message gets (KEEP, SAME: in->uid; NEW:
 * max(uidnext, horizon)); *move_home_r: the home's message under in->uid
 * must move to a new UID too (NEW while the home holds one). */
enum store_merge_uid_how store_merge_uid(const struct store_merge_uid_in *in, uint32_t *uid_r,
					 bool *move_home_r);

/* "name-merged-n" (n >= 1) into out, the name a mailbox renamed onto a
 * name the home uses gets.  STORE_OK, or STORE_INVAL if not a valid
 * mailbox name (too long). */
int store_merge_name(const char *name, unsigned n, char out[STORE_MBOX_MAX]);

/* ==== IMAP support ========================================================
 *
 * What an IMAP4rev1 session with UIDPLUS, MOVE, CONDSTORE, QRESYNC,
 * SPECIAL-USE and keywords needs.  Same rules as above: reads are
 * synchronous on the caller's thread and return STORE_OK, STORE_NOTFOUND,
 * STORE_INVAL (only where said) or STORE_IO (or the callback's non-zero
 * result when it stopped a foreach); writes are queued and their callback
 * runs on the loop thread once durable (err < 0: nothing of the op was
 * written).  Every write may also fail with STORE_FULL (map/disk full),
 * STORE_IO or STORE_SHUTDOWN.
 *
 * MODSEQ (RFC 7162): each mailbox has highestmodseq; every message added
 * or whose flags change gets modseq = ++highestmodseq; an expunge (or a
 * move out) bumps highestmodseq once and records a tombstone
 * (uid -> that modseq) for VANISHED.  Deleting a mailbox drops its
 * tombstones with it.
 */

#define STORE_KEYWORDS_MAX 64		/* keyword names per mailbox */
#define STORE_KEYWORD_MAX 64		/* bytes of a keyword name (NUL excluded) */
#define STORE_META_MAX (16u << 20)	/* bytes of a per-body metadata blob */
#define STORE_F_MASK 0x3fu		/* every STORE_F_* bit */

/* Mailbox names.  Valid: 1..STORE_MBOX_MAX-1 bytes, no control
 * characters (0x00-0x1f, 0x7f; so no CR/LF), '/' is the hierarchy
 * separator and may not start or end a name nor appear twice in a row.
 * UTF-8 (the IMAP layer decodes modified UTF-7).  "INBOX" in any case
 * means INBOX; every other name is case-sensitive.
 * Returns STORE_OK or STORE_INVAL. */
int store_mailbox_name_check(const char *name);

/* Keyword names: 1..STORE_KEYWORD_MAX bytes of IMAP atom characters
 * (0x21-0x7e except ( ) { % * " \ ]), so no system flag (\Seen).
 * Compared case-insensitively.  STORE_OK or STORE_INVAL. */
int store_keyword_check(const char *name);

/* Synchronous read of one mailbox by id.  STORE_OK, STORE_NOTFOUND, STORE_IO. */
int store_mailbox_get_by_id(struct store *st, uint32_t userid, uint32_t mboxid,
			    struct store_mailbox *mb_r);

/* Calls cb for every mailbox of the user in byte order of names ("Sent"
 * < "Sent-old" < "Sent/x"; names longer than 475 bytes sort by their
 * first 443 bytes), from one snapshot.  cb returns non-zero to stop (that
 * value is returned).  An unknown user has no mailboxes (STORE_OK). */
int store_mailbox_foreach(struct store *st, uint32_t userid,
			  int (*cb)(const struct store_mailbox *mb, void *arg), void *arg);

typedef void store_mailbox_cb(int err, const struct store_mailbox *mb, void *arg);

/* Create mailbox name (fresh id and UIDVALIDITY, uidnext 1, not
 * subscribed) with SPECIAL-USE attributes special_use (STORE_SU_* bits;
 * others are STORE_INVAL).  Missing superior names are created too
 * ("a/b/c" creates "a" and "a/b" if absent, as RFC 3501 CREATE
 * suggests), as plain mailboxes.  mb (the new mailbox) is valid only in
 * cb and NULL on error.
 * err: STORE_OK; STORE_EXISTS (name exists; "inbox" is INBOX);
 * STORE_INVAL (name fails store_mailbox_name_check, bad special_use);
 * STORE_NOTFOUND (no such user); STORE_FULL (ids exhausted, map full). */
void store_mailbox_create(struct store *st, uint32_t userid, const char *name,
			  uint32_t special_use, store_mailbox_cb *cb, void *arg);

/* Delete mailbox name: its messages (counts and quota use go down, body
 * references dropped, bodies freed with their last one), keyword table
 * and tombstones.  Inferior mailboxes ("name/...") stay (RFC 3501 allows
 * deleting a mailbox that has inferiors).  Subscriptions are not touched
 * (RFC 3501: the server must not remove a subscription by itself).
 * err: STORE_OK; STORE_NOTFOUND (no such mailbox/user); STORE_INVAL
 * (INBOX, or a name that is not valid). */
void store_mailbox_delete(struct store *st, uint32_t userid, const char *name,
			  store_done_cb *cb, void *arg);

/* Rename oldname to newname, and every inferior "oldname/x" to
 * "newname/x"; ids, UIDVALIDITY, messages, modseqs stay.  Missing
 * superiors of newname are created.  Subscriptions of the renamed names
 * move to the new names.  Renaming INBOX (RFC 3501) instead creates
 * newname (fresh id and UIDVALIDITY, same keyword table) and moves every
 * INBOX message into it with the same UIDs and new modseqs; INBOX stays,
 * empty (tombstones for the moved UIDs, UIDs never reused), and its
 * inferiors are not renamed.
 * err: STORE_OK; STORE_NOTFOUND (no oldname); STORE_EXISTS (newname, or
 * a renamed inferior's new name, exists; newname "INBOX");
 * STORE_INVAL (invalid name, new name too long, newname equal to or
 * inside oldname, e.g. "a" -> "a/b"). */
void store_mailbox_rename(struct store *st, uint32_t userid, const char *oldname,
			  const char *newname, store_done_cb *cb, void *arg);

/* Add (on) or remove (!on) name in the user's subscriptions.  Names need
 * not exist as mailboxes (RFC 3501) but must pass
 * store_mailbox_name_check ("inbox" is stored as "INBOX").
 * err: STORE_OK (also when subscribing an already subscribed name);
 * STORE_NOTFOUND (unsubscribing a name not subscribed, or no such user);
 * STORE_INVAL. */
void store_mailbox_subscribe(struct store *st, uint32_t userid, const char *name, bool on,
			     store_done_cb *cb, void *arg);

/* Calls cb with every subscribed name of the user, in the same order as
 * store_mailbox_foreach.  cb returns non-zero to stop. */
int store_subscription_foreach(struct store *st, uint32_t userid,
			       int (*cb)(const char *name, void *arg), void *arg);

/* Calls cb for every keyword of the mailbox's table, ascending index:
 * bit idx of store_msg.keywords means keyword idx.  name is spelled as
 * first used.  Indexes are never reused or renumbered while the mailbox
 * exists; the table only grows (up to STORE_KEYWORDS_MAX).
 * STORE_NOTFOUND if no such mailbox. */
int store_mailbox_keywords(struct store *st, uint32_t userid, uint32_t mboxid,
			   int (*cb)(unsigned idx, const char *name, void *arg), void *arg);

/* Synchronous read of one message record.  STORE_OK, STORE_NOTFOUND, STORE_IO. */
int store_msg_get(struct store *st, uint32_t userid, uint32_t mboxid, uint32_t uid,
		  struct store_msg *m_r);

/* Copy up to len bytes of the message as served (prefix + body) starting
 * at off into buf; *got_r = bytes copied (0 at or past the end).
 * For streaming big bodies window by window.  STORE_OK, STORE_NOTFOUND,
 * STORE_INVAL (buf NULL with len > 0), STORE_IO. */
int store_msg_read_range(struct store *st, uint32_t userid, uint32_t mboxid, uint32_t uid,
			 uint64_t off, void *buf, size_t len, size_t *got_r);

/* Calls cb once with the metadata blob stored with the message's body
 * (store_delivery.meta, store_msg_append's meta), valid only during the
 * call; (NULL, 0) if the body has none.  Describes the body without the
 * per-recipient prefix: the served message is prefix + body, so add
 * prefix length (store_msg.size - body length; see store_msg_read) to its
 * offsets.  Returns cb's result, or STORE_NOTFOUND / STORE_IO. */
int store_msg_read_meta(struct store *st, uint32_t userid, uint32_t mboxid, uint32_t uid,
			int (*cb)(const void *meta, size_t len, void *arg), void *arg);

/* Calls cb for every message of the mailbox with modseq > since_modseq,
 * ascending UID, from one snapshot (a scan).  CHANGEDSINCE / QRESYNC.
 * cb returns non-zero to stop.  STORE_NOTFOUND if no such mailbox. */
int store_msg_foreach_changed(struct store *st, uint32_t userid, uint32_t mboxid,
			      uint64_t since_modseq,
			      int (*cb)(const struct store_msg *m, void *arg), void *arg);

/* Calls cb with the UID of every message expunged from the mailbox (by
 * store_msg_expunge, a move out, an INBOX rename) at a modseq >
 * since_modseq, ascending UID.  Tombstones are kept while the mailbox
 * exists.  cb returns non-zero to stop.  STORE_NOTFOUND if no such
 * mailbox. */
int store_vanished_foreach(struct store *st, uint32_t userid, uint32_t mboxid,
			   uint64_t since_modseq, int (*cb)(uint32_t uid, void *arg), void *arg);

typedef void store_append_cb(int err, uint32_t uidvalidity, uint32_t uid, void *arg);

/* APPEND: add msg (len bytes, CRLF lines; no per-recipient prefix) to
 * the mailbox with flags (STORE_F_*; \Recent is always set on a new
 * message) and the n_kw keyword names (created in the mailbox's table on
 * demand; duplicates are fine), INTERNALDATE internaldate (0 = now).
 * The body is stored once per SHA-256 (shared with deliveries), meta as
 * for store_delivery.meta.  Everything is copied before return.
 * err: STORE_OK (uidvalidity, uid of the new message); STORE_NOTFOUND
 * (no such mailbox/user); STORE_QUOTA (used + len > quota); STORE_FULL
 * (the keyword table would need more than STORE_KEYWORDS_MAX names, UIDs
 * used up, map full); STORE_INVAL (bad keyword name, meta too big, NULL
 * pointers with non-zero lengths, unknown flag bits). */
void store_msg_append(struct store *st, uint32_t userid, uint32_t mboxid,
		      const char *msg, size_t len, const void *meta, size_t meta_len,
		      uint32_t flags, const char *const *keywords, size_t n_kw,
		      int64_t internaldate, store_append_cb *cb, void *arg);

enum store_flag_op {
	STORE_FLAGS_SET,	/* FLAGS: replace flags and keywords */
	STORE_FLAGS_ADD,	/* +FLAGS */
	STORE_FLAGS_REMOVE,	/* -FLAGS */
};

enum store_flag_status {
	STORE_FLAG_CHANGED,	/* flags changed; modseq is new */
	STORE_FLAG_UNCHANGED,	/* nothing to change; modseq kept */
	STORE_FLAG_MODIFIED,	/* modseq > unchangedsince: not touched
				 * (goes into [MODIFIED uid-set]) */
};

struct store_flag_result {
	uint32_t uid;
	enum store_flag_status status;
	uint32_t flags;		/* after the op (as it is, if not changed) */
	uint64_t keywords;	/* after the op, bit i = keyword i */
	uint64_t modseq;	/* after the op */
};

typedef void store_flags_cb(int err, const struct store_flag_result *res, size_t n_res,
			    void *arg);

/* STORE: apply op with flags (STORE_F_*; \Recent is ignored: SET keeps a
 * message's \Recent as it is) and the n_kw keyword names to the messages
 * with the given UIDs.  Unknown UIDs are skipped; duplicates count once.
 * res has one entry per existing UID, ascending UID, valid only in cb.
 * Each message whose flags or keywords actually change gets
 * modseq = ++highestmodseq (one each) and a STORE_CH_MSG_FLAGS record;
 * others keep their modseq (UNCHANGED).  unchangedsince != 0
 * (CONDSTORE): a message with modseq > unchangedsince is left alone and
 * reported MODIFIED.  UNCHANGEDSINCE 0 always fails (RFC 7162 3.1.3);
 * the IMAP layer answers it without calling here, since every message
 * has modseq >= 1.  Keyword names are created in the table on demand for
 * SET and ADD (not for REMOVE: a name not in the table is ignored).
 * err: STORE_OK; STORE_NOTFOUND (no such mailbox); STORE_FULL (would need
 * more than STORE_KEYWORDS_MAX keywords: nothing is changed); STORE_INVAL
 * (bad keyword name, bad op, unknown flag bits). */
void store_msg_store_flags(struct store *st, uint32_t userid, uint32_t mboxid,
			   const uint32_t *uids, size_t n, enum store_flag_op op,
			   uint32_t flags, const char *const *keywords, size_t n_kw,
			   uint64_t unchangedsince, store_flags_cb *cb, void *arg);

typedef void store_copy_cb(int err, uint32_t dst_uidvalidity, const uint32_t *src_uids,
			   const uint32_t *dst_uids, size_t n, void *arg);

/* COPY / MOVE the messages with the given UIDs from src_mboxid to
 * dst_mboxid (same user; src == dst is allowed).  Unknown UIDs are
 * skipped, duplicates count once.  The copies get new UIDs ascending in
 * the source's UID order, modseq = ++dst highestmodseq, the source's
 * flags plus \Recent, and its keywords remapped by name into the
 * destination's table (created on demand; a keyword that no longer fits
 * in a full destination table is dropped rather than failing the copy).
 * Bodies are shared (one more reference each).  Copy checks quota for
 * the total size; move does not (the user's use does not change).  Move
 * removes the sources in the same transaction (tombstones, one
 * highestmodseq bump in src).  All or nothing.  cb gets the parallel
 * arrays src_uids[i] -> dst_uids[i] (COPYUID; n may be 0), valid only in
 * cb.  err: STORE_OK; STORE_NOTFOUND (no such mailbox); STORE_QUOTA;
 * STORE_FULL (UIDs used up in dst, map full); STORE_INVAL. */
void store_msg_copy(struct store *st, uint32_t userid, uint32_t src_mboxid,
		    const uint32_t *uids, size_t n, uint32_t dst_mboxid, bool move,
		    store_copy_cb *cb, void *arg);

/* ---- IMAP \Recent claim marks ---------------------------------------------- *
 *
 * RFC 3501 2.3.2 gives a message's \Recent to exactly one session, the
 * first to be told of it.  The IMAP layer remembers per mailbox the
 * highest UID whose \Recent a session has claimed, and keeps that mark
 * here so that it survives a restart.  It is this POP's session state,
 * not mail: no changelog record, so it is not replicated, merged or in
 * snapshots (a mirror serving in failover has a mark of its own, usually
 * none).  It goes with its mailbox (every way a mailbox is removed) and
 * with its user.  docs/store.md, docs/imap.md. */

/* The mark of (userid, mboxid) in *uid_r: 0 when there is none (also for
 * an unknown mailbox).  Synchronous (one read transaction).  STORE_OK or
 * STORE_IO (*uid_r 0). */
int store_recent_get(struct store *st, uint32_t userid, uint32_t mboxid, uint32_t *uid_r);

/* Raise the mark of (userid, mboxid) to uid: the stored value becomes
 * max(old, uid), never lower.  A queued write like the others (group
 * commit; cb on the loop once durable), without a changelog record or a
 * change observer call.  err: STORE_OK (also when the mark was already
 * at or above uid); STORE_NOTFOUND (no such mailbox: nothing written). */
void store_recent_set(struct store *st, uint32_t userid, uint32_t mboxid, uint32_t uid,
		      store_done_cb *cb, void *arg);

/* Called on the loop thread after each successful group commit, once per
 * (userid, mboxid) whose messages, flags or mailbox record the commit
 * changed (deliveries, appends, flag stores, copies and moves, expunges,
 * mailbox create/delete/rename, user delete), after the commit observer
 * and BEFORE any op callback of that commit.  For IMAP sessions on other
 * connections to look for changes (IDLE, NOOP).  NULL cb to stop. */
void store_set_change_observer(struct store *st,
			       void (*cb)(struct store *st, uint32_t userid, uint32_t mboxid,
					  void *arg),
			       void *arg);

/* ---- operations -------------------------------------------------------- */

struct store_stats {
	uint64_t map_size;		/* configured */
	uint64_t used_bytes;		/* pages in use * page size */
	uint64_t users;
	uint64_t bodies;
	uint64_t commits;		/* group commits since open */
	uint64_t ops;			/* ops committed since open */
	unsigned pending;		/* ops queued or in flight now */
	uint64_t commit_failures;	/* group commits that failed since open */
	bool last_commit_failed;	/* the latest one failed: not writable */
};
void store_stats(struct store *st, struct store_stats *s_r);

/* Called on the loop thread after each group commit with its duration
 * (fsync included) and how many ops it carried, before their callbacks. */
void store_set_commit_observer(struct store *st,
			       void (*cb)(double seconds, unsigned ops, void *arg), void *arg);

/* Test hook: make the next n commits fail as if the disk failed
 * (STORE_IO) without writing anything. */
void store_inject_commit_failures(struct store *st, unsigned n);

#endif
