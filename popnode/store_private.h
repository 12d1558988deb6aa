/*
 * store_private.h - what the store's own files share and nobody else sees:
 * the struct behind struct store, queued write ops, and the on-disk record
 * layouts with their key encoders.  Only popnode/store*.c include it.
 *
 * Files: store.c (open/close, reads, stats), store_write.c (submitting ops,
 * the writer thread, group commit, completions on the loop), store_ops.c
 * (what each op does inside its nested transaction), store_codec.c (record
 * and key encoding, record loaders shared by reads and ops).
 *
 * On-disk layout (docs/store.md has the full story).  Integers are
 * big-endian so LMDB's bytewise key order is numeric order; every value
 * starts with a version byte (STORE_REC_V1).
 *
 *   users      name                          -> user record
 *   userids    userid BE32                   -> name
 *   mailboxes  userid BE32, mboxid BE32      -> mailbox record (incl. name)
 *   mboxnames  userid BE32, name key         -> mboxid BE32
 *   messages   userid, mboxid, uid (BE32 x3) -> message record (incl. prefix)
 *   bodies     sha256[32]                    -> ver, body bytes
 *   bodyrefs   sha256[32]                    -> ver, refcount BE64, length BE64
 *   changelog  origin_len u8, origin, seq BE64 -> change record
 *   meta       ascii name                    -> counter (see META_*)
 *
 * The body's reference count lives apart from the bytes so that a new
 * reference or an expunge rewrites 17 bytes, not the whole (possibly
 * multi-megabyte, overflow-page) body.
 */
#ifndef POPNODE_STORE_PRIVATE_H
#define POPNODE_STORE_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/util.h>
#include <lmdb.h>

#include "store.h"

#define STORE_REC_V1 1
#define STORE_FORMAT 1			/* meta "format" */
#define STORE_PREFIX_MAX (64 * 1024)	/* per-recipient prefix bytes */
#define STORE_DEFAULT_MAP (1ULL << 30)
#define STORE_DEFAULT_BATCH 256
#define STORE_MAX_DBS 16

/* meta keys */
#define META_FORMAT "format"		/* u8 */
#define META_NEXT_USERID "next_userid"	/* BE32: next id to hand out */
#define META_NEXT_MBOXID "next_mboxid"	/* BE32: next id to hand out */
#define META_UIDVALIDITY "uidvalidity"	/* BE32: last value handed out */
#define META_SEQ_PREFIX "seq/"		/* "seq/" origin -> BE64 last seq */

enum store_dbi {
	DBI_USERS,
	DBI_USERIDS,
	DBI_MAILBOXES,
	DBI_MBOXNAMES,
	DBI_MESSAGES,
	DBI_BODIES,
	DBI_BODYREFS,
	DBI_CHANGELOG,
	DBI_META,
	DBI_COUNT
};

/* ---- big-endian helpers --------------------------------------------------- */

static inline void be16_put(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void be64_put(uint8_t *p, uint64_t v)
{
	be32_put(p, (uint32_t)(v >> 32));
	be32_put(p + 4, (uint32_t)v);
}

static inline uint16_t be16_get(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t be32_get(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t be64_get(const uint8_t *p)
{
	return ((uint64_t)be32_get(p) << 32) | be32_get(p + 4);
}

/* ---- record layouts ------------------------------------------------------- */

/*
 * user record:     ver u8, id BE32, quota BE64, used BE64, messages BE32,
 *                  enabled u8, created BE64, home_len u8, home,
 *                  pwhash_len BE16, pwhash
 */
#define USER_REC_FIXED 35
#define USER_REC_MAX (USER_REC_FIXED + STORE_POP_MAX + 2 + STORE_HASH_MAX)

/*
 * mailbox record:  ver u8, id BE32, uidvalidity BE32, uidnext BE32,
 *                  highestmodseq BE64, messages BE32, bytes BE64,
 *                  special_use BE32, subscribed u8, name_len BE16, name
 */
#define MBOX_REC_FIXED 40
#define MBOX_REC_MAX (MBOX_REC_FIXED + STORE_MBOX_MAX)

/*
 * message record:  ver u8, size BE64, modseq BE64, internaldate BE64,
 *                  flags BE32, keywords BE64, hash[32], prefix_len BE32, prefix
 */
#define MSG_REC_FIXED 73

/* bodies value: ver u8, bytes.  bodyrefs value: ver u8, refs BE64, len BE64 */
#define BODYREF_REC_LEN 17

/*
 * change record:   ver u8, type u8, userid BE32, mboxid BE32, uid BE32,
 *                  time BE64, payload (type-specific, docs/store.md)
 */
#define CHANGE_REC_FIXED 22

/* Keys. */
#define USERID_KEY_LEN 4
#define MBOX_KEY_LEN 8
#define MSG_KEY_LEN 12
/* A mailbox name key is the name itself when short enough for LMDB's
 * 511-byte key limit, else its first MBOXNAME_HEAD bytes, a 0 byte (never
 * inside a name) and the SHA-256 of the whole name. */
#define MBOXNAME_DIRECT_MAX 475
#define MBOXNAME_HEAD 443
#define MBOXNAME_KEY_MAX (4 + MBOXNAME_HEAD + 1 + STORE_BODY_HASH_LEN)
#define CHANGE_KEY_MAX (1 + STORE_POP_MAX + 8)
#define META_KEY_MAX (sizeof(META_SEQ_PREFIX) + STORE_POP_MAX)

/* ---- queued write ops ----------------------------------------------------- */

enum store_op_type {
	OP_USER_ADD,
	OP_USER_UPDATE,
	OP_USER_DEL,
	OP_EXPUNGE,
	OP_DELIVER,
};

typedef void store_deliver_cb(const struct store_rcpt *rcpts, size_t n, void *arg);

struct store_op {
	STAILQ_ENTRY(store_op) entry;
	enum store_op_type type;
	int err;		/* result for non-delivery ops */
	bool prefailed;		/* err known at submit: skip the writer */
	store_done_cb *cb;
	store_deliver_cb *dcb;
	void *arg;
	union {
		struct store_user user;			/* add, update */
		char name[STORE_NAME_MAX];		/* del */
		struct {
			uint32_t userid, mboxid;
			uint32_t *uids;
			size_t n;
		} expunge;
		struct {
			char mailbox[STORE_MBOX_MAX];
			char *blob;			/* body, then every prefix */
			size_t body_len;
			uint8_t hash[STORE_BODY_HASH_LEN];	/* set by the writer */
			int64_t internaldate;
			struct store_rcpt *rcpts;	/* user -> names[i] */
			char (*names)[STORE_NAME_MAX];
			size_t n;
		} deliver;
	} u;
};
STAILQ_HEAD(store_op_list, store_op);

/* One group commit's worth of finished ops, handed to the loop thread. */
struct store_batch {
	STAILQ_ENTRY(store_batch) entry;
	struct store_op_list ops;
	unsigned n;
	double seconds;		/* begin .. commit returned */
	int mdb_rc;		/* 0, or why the commit failed */
	bool committed;		/* false: failed, or ops that never ran */
};
STAILQ_HEAD(store_batch_list, store_batch);

struct store {
	MDB_env *env;
	MDB_dbi dbi[DBI_COUNT];
	char origin[STORE_POP_MAX];
	size_t origin_len;
	uint64_t map_size;
	unsigned batch_max;
	struct event_base *base;
	struct event *done_ev;		/* activated by the writer */
	struct event *keepalive;	/* pending while ops are: the loop
					 * does not exit under our feet */

	pthread_t writer;
	bool writer_started;

	/* mu guards everything down to the loop-thread-only part */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct store_op_list queue;
	struct store_batch_list done;
	bool stopping;
	unsigned inject_failures;
	uint64_t commits, ops;
	unsigned pending;		/* submitted, callback not yet run */

	/* loop thread only (or the thread in store_close) */
	void (*observer)(double seconds, unsigned ops, void *arg);
	void *observer_arg;
	struct store_batch *cur;	/* batch whose callbacks are running */
	bool in_dispatch;
	bool close_deferred;		/* closed from a callback: free on return */
};

/* ---- store_codec.c -------------------------------------------------------- */

int store_mdb_err(int rc);
int store_sha256(const void *data, size_t len, uint8_t out[STORE_BODY_HASH_LEN]);
/* "INBOX" in any case -> "INBOX"; anything else unchanged. */
const char *store_mbox_canon(const char *name);

size_t user_rec_encode(const struct store_user *u, uint8_t *buf);
int user_rec_decode(const MDB_val *key, const MDB_val *val, struct store_user *u_r);
size_t mbox_rec_encode(const struct store_mailbox *mb, uint8_t *buf);
int mbox_rec_decode(const MDB_val *val, struct store_mailbox *mb_r);
void msg_rec_encode_fixed(const struct store_msg *m, size_t prefix_len, uint8_t *buf);
int msg_rec_decode(const MDB_val *val, struct store_msg *m_r,
		   const char **prefix_r, size_t *prefix_len_r);

void userid_key(uint8_t buf[USERID_KEY_LEN], uint32_t id);
void mbox_key(uint8_t buf[MBOX_KEY_LEN], uint32_t userid, uint32_t mboxid);
void msg_key(uint8_t buf[MSG_KEY_LEN], uint32_t userid, uint32_t mboxid, uint32_t uid);
size_t mboxname_key(uint8_t buf[MBOXNAME_KEY_MAX], uint32_t userid, const char *name);
size_t change_key(uint8_t buf[CHANGE_KEY_MAX], const char *origin, size_t origin_len,
		  uint64_t seq);
size_t meta_seq_key(char buf[META_KEY_MAX], const char *origin, size_t origin_len);

/* Record loaders usable in any txn.  STORE_OK, STORE_NOTFOUND, STORE_IO. */
int store_load_user(struct store *st, MDB_txn *txn, const char *name, struct store_user *u_r);
int store_load_mbox_id(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
		       struct store_mailbox *mb_r);
int store_load_mbox_name(struct store *st, MDB_txn *txn, uint32_t userid, const char *name,
			 struct store_mailbox *mb_r);
int store_meta_get_u64(struct store *st, MDB_txn *txn, const char *key, size_t key_len,
		       uint64_t *v_r);

/* ---- store_ops.c: one op inside its own nested transaction ---------------- */

/* Each returns a store_err; on error the caller aborts the txn. */
int store_op_user_add(struct store *st, MDB_txn *txn, struct store_op *op);
int store_op_user_update(struct store *st, MDB_txn *txn, struct store_op *op);
int store_op_user_del(struct store *st, MDB_txn *txn, struct store_op *op);
int store_op_expunge(struct store *st, MDB_txn *txn, struct store_op *op);
int store_op_deliver_one(struct store *st, MDB_txn *txn, struct store_op *op, size_t i);

/* ---- store_write.c -------------------------------------------------------- */

void *store_writer_main(void *arg);
void store_dispatch_cb(evutil_socket_t fd, short what, void *arg);
void store_keepalive_cb(evutil_socket_t fd, short what, void *arg);
/* After the writer is joined: run every remaining completion here. */
void store_drain_completions(struct store *st);

#endif
