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

/* Called on the loop thread after each successful group commit, once per
 * (userid, mboxid) whose messages, flags or mailbox record the commit
 * changed (deliveries, appends, flag stores, copies and moves, expunges,
 * mailbox create/delete/rename, user delete), after the commit observer
 * and BEFORE any op callback of that commit.  For IMAP sessions on other
 * connections to look for changes (IDLE, NOOP).  NULL cb to stop. */
void store_set_change_observer(struct store *st,
			       void (*cb)(uint32_t userid, uint32_t mboxid, void *arg),
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
