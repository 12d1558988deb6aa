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
	bool subscribed;
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
 * STORE_NOTFOUND / STORE_IO. */
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

/* ---- operations -------------------------------------------------------- */

struct store_stats {
	uint64_t map_size;		/* configured */
	uint64_t used_bytes;		/* pages in use * page size */
	uint64_t users;
	uint64_t bodies;
	uint64_t commits;		/* group commits since open */
	uint64_t ops;			/* ops committed since open */
	unsigned pending;		/* ops queued or in flight now */
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
