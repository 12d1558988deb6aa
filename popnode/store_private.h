/*
 * store_private.h - what the store's own files share and nobody else sees:
 * the struct behind struct store, queued write ops, and the on-disk record
 * layouts with their key encoders.  Only popnode/store*.c include it.
 *
 * Files: store.c (open/close, directory reads, stats), store_read.c (the
 * IMAP reads), store_upgrade.c (format 1 -> 2 -> 3 at open), store_write.c
 * (submitting the original ops, the writer thread, group commit,
 * completions on the loop), store_submit.c (submitting the IMAP ops
 * and ops given as a function),
 * store_txn.c (primitives every op uses: puts, counters, changelog,
 * bodies, keyword table, tombstones), store_ops.c (users, expunge,
 * delivery), store_mbox_ops.c (mailbox create/delete/rename, subscribe),
 * store_msg_ops.c (append, flags, copy/move), store_codec.c (record and
 * key encoding, record loaders shared by reads and ops), store_dir.c
 * (versioned directory records shared across POPs: reads, the local
 * record written by every user op, applying a peer's records),
 * store_recent.c (the per-mailbox IMAP \Recent claim mark),
 * store_apply.c (a mirror applies another POP's changelog records),
 * store_generation.c (the store's generation id), store_trim.c
 * (changelog trimming), store_snapshot.c (reading a whole store as a
 * snapshot), store_snapshot_load.c (loading one into a fresh store,
 * replacing a store's environment), store_merge*.c (taking a mirror's
 * failover changes back; store_merge_int.h).
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
 *   bodymeta   sha256[32]                    -> ver, metadata blob
 *   changelog  origin_len u8, origin, seq BE64 -> change record
 *   meta       ascii name [, binary]         -> counter (see META_*)
 *   subs       userid BE32, name key         -> ver, name
 *   keywords   userid, mboxid (BE32 x2), idx u8 -> ver, name
 *   vanished   userid, mboxid, uid (BE32 x3) -> ver, modseq BE64
 *   dirrecs    name                          -> directory record
 *   dirseq     lseq BE64                     -> name
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
#define STORE_REC_V2 2			/* mailbox records since format 2 */
#define STORE_FORMAT 3			/* meta "format" (1: no IMAP dbs,
					 * v1 mailbox records; 2: users without
					 * directory records; upgraded at open) */
#define STORE_PREFIX_MAX (64 * 1024)	/* per-recipient prefix bytes */
#define STORE_DEFAULT_MAP (1ULL << 30)
#define STORE_DEFAULT_BATCH 256
#define STORE_MAX_DBS 32		/* DBI_COUNT is 15: room to grow */

/* meta keys */
#define META_FORMAT "format"		/* u8 */
#define META_NEXT_USERID "next_userid"	/* BE32: next id to hand out */
#define META_NEXT_MBOXID "next_mboxid"	/* BE32: next id to hand out */
#define META_UIDVALIDITY "uidvalidity"	/* BE32: last value handed out */
#define META_SEQ_PREFIX "seq/"		/* "seq/" origin -> BE64 last seq */
#define META_DIR_CLOCK "dir_clock"	/* BE64: highest directory version seen or made */
#define META_DIR_LSEQ "dir_lseq"	/* BE64: last local directory sequence */
#define META_DIRPEER_PREFIX "dirpeer/"	/* "dirpeer/" peer -> BE64 peer lseq applied */
#define META_APPLIED_PREFIX "applied/"	/* "applied/" origin -> BE64 last seq applied */
#define META_GENERATION "generation"	/* 16 bytes: generation of the origin's data held */
#define META_TRIMMED_PREFIX "trimmed/"	/* "trimmed/" origin -> BE64 last seq trimmed */
#define META_MERGE_PREFIX "merge/"	/* "merge/" mirror "/" type, binary key: a
					 * merge in progress (store_merge.c) */
#define META_RECENT_PREFIX "recent/"	/* "recent/" userid BE32 mboxid BE32 -> BE32:
					 * \Recent claimed up to this UID
					 * (store_recent.c; not in the changelog) */

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
	DBI_SUBS,
	DBI_KEYWORDS,
	DBI_VANISHED,
	DBI_BODYMETA,
	DBI_DIRRECS,
	DBI_DIRSEQ,
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
 * mailbox record (v2): ver u8 (2), id BE32, uidvalidity BE32, uidnext BE32,
 *                  highestmodseq BE64, messages BE32, bytes BE64,
 *                  special_use BE32, unseen BE32, name_len BE16, name
 * (v1, format 1 only: the same up to special_use, then subscribed u8,
 *  name_len BE16, name; store_upgrade.c converts it)
 */
#define MBOX_REC_FIXED 43
#define MBOX_REC_V1_FIXED 40
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

/* keywords value: ver u8, name.  vanished value: ver u8, modseq BE64.
 * subs value: ver u8, name.  bodymeta value: ver u8, blob. */
#define VANISHED_REC_LEN 9
#define KEYWORD_KEY_LEN 9

/*
 * directory record (dirrecs): ver u8, version BE64, origin_len u8, origin,
 *                  lseq BE64, deleted u8, home_len u8, home
 * (home: the user's home POP when written, kept in tombstones).
 * dirseq value: the name.
 */
#define DIRREC_FIXED 20
#define DIRREC_MAX (DIRREC_FIXED + 2 * STORE_POP_MAX)
#define DIRSEQ_KEY_LEN 8

struct store_dirrec {
	uint64_t version;
	char origin[STORE_POP_MAX];
	uint64_t lseq;
	bool deleted;
	char home[STORE_POP_MAX];
};

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
#define DIRPEER_KEY_MAX (sizeof(META_DIRPEER_PREFIX) + STORE_POP_MAX)
#define APPLIED_KEY_MAX (sizeof(META_APPLIED_PREFIX) + STORE_POP_MAX)
#define TRIMMED_KEY_MAX (sizeof(META_TRIMMED_PREFIX) + STORE_POP_MAX)
#define RECENT_KEY_LEN (sizeof(META_RECENT_PREFIX) - 1 + 8)
#define STORE_DIR_MAX 4096		/* bytes of the environment's directory path */

/* ---- queued write ops ----------------------------------------------------- */

enum store_op_type {
	OP_USER_ADD,
	OP_USER_UPDATE,
	OP_USER_DEL,
	OP_EXPUNGE,
	OP_DELIVER,
	OP_MBOX_CREATE,
	OP_MBOX_DELETE,
	OP_MBOX_RENAME,
	OP_SUBSCRIBE,
	OP_APPEND,
	OP_FLAGS,
	OP_COPY,
	OP_DIR_APPLY,
	OP_APPLY,
	OP_FN,			/* u.fn: an op given as a function (snapshot
			 * load, generation, trim, merge, \Recent mark) */
};

typedef void store_deliver_cb(const struct store_rcpt *rcpts, size_t n, void *arg);

/* A mailbox an op changed, for the change observer. */
struct store_touch {
	uint32_t userid, mboxid;
};

typedef char store_kwname[STORE_KEYWORD_MAX + 1];

/* A mailbox's keyword table as loaded in one transaction. */
struct store_kwtable {
	unsigned n;
	store_kwname names[STORE_KEYWORDS_MAX];
};

struct store_op {
	STAILQ_ENTRY(store_op) entry;
	enum store_op_type type;
	int err;		/* result for non-delivery ops */
	bool prefailed;		/* err known at submit: skip the writer */
	store_done_cb *cb;
	store_deliver_cb *dcb;
	store_mailbox_cb *mbcb;
	store_append_cb *acb;
	store_flags_cb *fcb;
	store_copy_cb *ccb;
	void *arg;
	/* mailboxes the op changed (only while it succeeds: a failed nested
	 * txn truncates it back) */
	struct store_touch *touched;
	size_t n_touched, cap_touched;
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
			const char *meta;		/* inside blob, after prefixes */
			size_t meta_len;
		} deliver;
		struct {
			uint32_t userid;
			uint32_t special_use;		/* create */
			bool on;			/* subscribe */
			char name[STORE_MBOX_MAX];	/* canonical */
			char newname[STORE_MBOX_MAX];	/* rename */
			struct store_mailbox result;	/* create */
		} mbox;
		struct {
			uint32_t userid, mboxid;
			char *blob;			/* message, then meta */
			size_t len, meta_len;
			uint8_t hash[STORE_BODY_HASH_LEN];	/* set by the writer */
			uint32_t flags;
			store_kwname *kw;
			size_t n_kw;
			int64_t internaldate;
			uint32_t uidvalidity, uid;	/* out */
		} append;
		struct {
			uint32_t userid, mboxid;
			uint32_t *uids;			/* ascending, no duplicates */
			size_t n;
			enum store_flag_op how;
			uint32_t flags;
			store_kwname *kw;
			size_t n_kw;
			uint64_t unchangedsince;
			struct store_flag_result *res;	/* out, n slots */
			size_t n_res;
		} flags;
		struct {
			uint32_t userid, src, dst;
			bool move;
			uint32_t *uids;			/* ascending, no duplicates */
			size_t n;
			uint32_t *src_out, *dst_out;	/* out, n slots each */
			size_t n_out;
			uint32_t uidvalidity;		/* out: dst's */
		} copy;
		struct store_dir_apply *dir;		/* store_dir.c owns it */
		struct store_apply *apply;		/* store_apply.c owns it */
		struct {
			/* runs in the op's nested txn; ctx is freed by the
			 * op's callback (op->cb) */
			int (*fn)(struct store *st, MDB_txn *txn, struct store_op *op);
			void *ctx;
		} fn;
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
	struct store_touch *touched;	/* sorted, unique; committed only */
	size_t n_touched;
};
STAILQ_HEAD(store_batch_list, store_batch);

struct store {
	MDB_env *env;
	char dir[STORE_DIR_MAX];	/* where data.mdb lives (store_replace) */
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
	uint64_t commit_failures;	/* batches whose commit failed */
	bool last_commit_failed;	/* the latest batch's commit failed */
	unsigned pending;		/* submitted, callback not yet run */

	/* loop thread only (or the thread in store_close) */
	void (*observer)(double seconds, unsigned ops, void *arg);
	void *observer_arg;
	void (*change_observer)(struct store *st, uint32_t userid, uint32_t mboxid, void *arg);
	void *change_observer_arg;
	struct store_batch *cur;	/* batch whose callbacks are running */
	bool in_dispatch;
	bool close_deferred;		/* closed from a callback: free on return */
	unsigned snap_readers;		/* store_snap_begin without _end */
};

/* ---- store_codec.c -------------------------------------------------------- */

int store_mdb_err(int rc);
int store_sha256(const void *data, size_t len, uint8_t out[STORE_BODY_HASH_LEN]);
/* "INBOX" in any case -> "INBOX"; anything else unchanged. */
const char *store_mbox_canon(const char *name);

size_t user_rec_encode(const struct store_user *u, uint8_t *buf);
int user_rec_decode(const MDB_val *key, const MDB_val *val, struct store_user *u_r);
/* v2 records; decode leaves mb_r->subscribed false (it lives in subs). */
size_t mbox_rec_encode(const struct store_mailbox *mb, uint8_t *buf);
int mbox_rec_decode(const MDB_val *val, struct store_mailbox *mb_r);
/* A format-1 record (store_upgrade.c); subscribed is filled. */
int mbox_rec_decode_v1(const MDB_val *val, struct store_mailbox *mb_r);
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
size_t dirpeer_key(char buf[DIRPEER_KEY_MAX], const char *peer, size_t peer_len);
size_t dirrec_encode(const struct store_dirrec *d, uint8_t *buf);
int dirrec_decode(const MDB_val *val, struct store_dirrec *d_r);
void keyword_key(uint8_t buf[KEYWORD_KEY_LEN], uint32_t userid, uint32_t mboxid, unsigned idx);

/* Record loaders usable in any txn.  STORE_OK, STORE_NOTFOUND, STORE_IO. */
int store_load_user(struct store *st, MDB_txn *txn, const char *name, struct store_user *u_r);
int store_load_user_id(struct store *st, MDB_txn *txn, uint32_t id, struct store_user *u_r);
int store_load_mbox_id(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
		       struct store_mailbox *mb_r);
int store_load_mbox_name(struct store *st, MDB_txn *txn, uint32_t userid, const char *name,
			 struct store_mailbox *mb_r);
int store_meta_get_u64(struct store *st, MDB_txn *txn, const char *key, size_t key_len,
		       uint64_t *v_r);
/* Is name (canonical) in userid's subscriptions?  STORE_OK (yes),
 * STORE_NOTFOUND (no), STORE_IO. */
int store_sub_get(struct store *st, MDB_txn *txn, uint32_t userid, const char *name);
/* Set mb->subscribed from the subs db (for the public reads). */
int store_fill_subscribed(struct store *st, MDB_txn *txn, uint32_t userid,
			  struct store_mailbox *mb);
/* Load the keyword table of a mailbox. */
int store_kw_load(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
		  struct store_kwtable *t_r);

/* ---- store.c -------------------------------------------------------------- */

/* A read-only transaction for a public read (logs failure).  STORE_OK, STORE_IO. */
int store_rd_begin(struct store *st, MDB_txn **txn_r);
/* Create and open st->env on st->dir (map size, sub-databases, format,
 * generation).  0, or -1 with *error_r; st->env is NULL then. */
int store_env_open(struct store *st, const char **error_r);
/* Start the writer thread (signals blocked in it).  0 or -1. */
int store_writer_start(struct store *st, const char **error_r);

/* ---- store_upgrade.c ------------------------------------------------------- */

/* Bring an environment of format `from` to STORE_FORMAT inside txn.
 * 0, or an LMDB error code / -1 with *error_r set. */
int store_upgrade(struct store *st, MDB_txn *txn, unsigned from, const char **error_r);
/* Give the store a generation (META_GENERATION) if it has none: a random
 * one if fresh (just created) or not a mirror; an existing mirror store
 * (applied/<origin> present) is left without one (unknown) until its
 * origin names it.  0, or an LMDB error code. */
int store_generation_init(struct store *st, MDB_txn *txn, bool fresh);

/* ---- store_txn.c: primitives shared by the ops (all inside the op's txn) -- */

struct store_part {
	const void *p;
	size_t len;
};

int store_put(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
	      const void *val, size_t vlen, unsigned flags);
/* Delete; a missing key is corruption (STORE_IO), since we just read it. */
int store_del(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen);
int store_meta_put(struct store *st, MDB_txn *txn, const char *key, size_t klen,
		   uint64_t v, size_t width);
int store_next_id(struct store *st, MDB_txn *txn, const char *key, uint32_t *id_r);
int store_next_uidvalidity(struct store *st, MDB_txn *txn, uint32_t *v_r);
int store_changelog_append(struct store *st, MDB_txn *txn, enum store_change_type type,
			   uint32_t userid, uint32_t mboxid, uint32_t uid,
			   const struct store_part *parts, size_t n_parts);
/* Write c as origin's record c->seq, unchanged (time and payload as
 * given), and make c->seq origin's last seq.  STORE_EXISTS if that seq is
 * already written. */
int store_changelog_put(struct store *st, MDB_txn *txn, const char *origin, size_t origin_len,
			const struct store_change *c);
/* log_type 0 = no changelog record */
int store_user_put(struct store *st, MDB_txn *txn, const struct store_user *u,
		   enum store_change_type log_type);
int store_mbox_put(struct store *st, MDB_txn *txn, uint32_t userid,
		   const struct store_mailbox *mb, enum store_change_type log_type);
/* A new mailbox (fresh id and UIDVALIDITY) under canonical name; logs
 * MAILBOX_ADD.  STORE_EXISTS if the name is taken. */
int store_mbox_create(struct store *st, MDB_txn *txn, uint32_t userid, const char *name,
		      uint32_t special_use, struct store_mailbox *mb_r);
/* The same with a first UID other than 1 (an INBOX rename's new mailbox
 * starts at INBOX's uidnext), logged in the MAILBOX_ADD record. */
int store_mbox_create_at(struct store *st, MDB_txn *txn, uint32_t userid, const char *name,
			 uint32_t special_use, uint32_t uidnext, struct store_mailbox *mb_r);
/* Create every missing superior of name ("a/b/c": "a", "a/b"). */
int store_mbox_create_parents(struct store *st, MDB_txn *txn, struct store_op *op,
			      uint32_t userid, const char *name);
/* Add a reference to a body, inserting body (and meta if given and none
 * is stored yet) when new.  body may be NULL when the body must exist. */
int store_body_ref(struct store *st, MDB_txn *txn, const uint8_t hash[STORE_BODY_HASH_LEN],
		   const char *body, size_t body_len, const void *meta, size_t meta_len);
int store_body_unref(struct store *st, MDB_txn *txn, const uint8_t hash[STORE_BODY_HASH_LEN]);
/* Call each() for every record of dbi from key start (start_len bytes)
 * on, in key order, while the key begins with start's first plen bytes.
 * each() returns STORE_OK to go on, 1 to stop there, or an error.
 * STORE_OK (also when stopped) or the error. */
int store_scan_prefix(struct store *st, MDB_txn *txn, MDB_dbi dbi, const uint8_t *start,
		      size_t start_len, size_t plen,
		      int (*each)(const MDB_val *k, const MDB_val *v, void *ctx), void *ctx);
/* Delete every key of dbi starting with prefix, calling each() (if set)
 * on the record first.  Re-seeks after each delete. */
int store_del_prefix(struct store *st, MDB_txn *txn, MDB_dbi dbi,
		     const uint8_t *prefix, size_t plen,
		     int (*each)(struct store *st, MDB_txn *txn, const MDB_val *k,
				 const MDB_val *v, void *ctx),
		     void *ctx);
/* Tombstone (userid, mboxid, uid) -> modseq for QRESYNC. */
int store_vanish(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
		 uint32_t uid, uint64_t modseq);
/* Index of name in t (case-insensitive), or -1. */
int store_kw_find(const struct store_kwtable *t, const char *name);
/* Index of name in t, adding it to the table (and the db, with a
 * KEYWORD_ADD record) when absent.  STORE_FULL when t is full. */
int store_kw_intern(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid,
		    struct store_kwtable *t, const char *name, unsigned *idx_r);
/* Record that op changed (userid, mboxid). */
void store_touch(struct store_op *op, uint32_t userid, uint32_t mboxid);
/* Sort and deduplicate uids in place; returns the new count. */
size_t store_uids_normalize(uint32_t *uids, size_t n);

/* ---- store_ops.c: one op inside its own nested transaction ---------------- */

/* The body of a user add: u (name, home, pwhash, quota, enabled set; no
 * user of that name) gets a fresh id, created = now, the default
 * mailboxes (subscribed) and a USER_ADD record.  No directory record. */
int store_user_create(struct store *st, MDB_txn *txn, struct store_op *op,
		      struct store_user *u);
/* The body of a user delete: u (as loaded) loses its mailboxes,
 * messages (body references dropped), subscriptions, keyword tables,
 * vanished UIDs, \Recent marks and its users/userids records; USER_DEL
 * is logged.  No directory record. */
int store_user_remove(struct store *st, MDB_txn *txn, struct store_op *op,
		      const struct store_user *u);
/* Each returns a store_err; on error the caller aborts the txn. */
int store_op_user_add(struct store *st, MDB_txn *txn, struct store_op *op);
int store_op_user_update(struct store *st, MDB_txn *txn, struct store_op *op);
int store_op_user_del(struct store *st, MDB_txn *txn, struct store_op *op);
int store_op_expunge(struct store *st, MDB_txn *txn, struct store_op *op);
int store_op_deliver_one(struct store *st, MDB_txn *txn, struct store_op *op, size_t i);

/* ---- store_mbox_ops.c / store_msg_ops.c ------------------------------------ */

int store_op_mbox_create(struct store *st, MDB_txn *txn, struct store_op *op);
int store_op_mbox_delete(struct store *st, MDB_txn *txn, struct store_op *op);
int store_op_mbox_rename(struct store *st, MDB_txn *txn, struct store_op *op);
int store_op_subscribe(struct store *st, MDB_txn *txn, struct store_op *op);
int store_op_append(struct store *st, MDB_txn *txn, struct store_op *op);
int store_op_flags(struct store *st, MDB_txn *txn, struct store_op *op);
int store_op_copy(struct store *st, MDB_txn *txn, struct store_op *op);

/* ---- store_dir.c: directory records inside a txn ----------------------------- */

/* The directory record of name.  STORE_OK, STORE_NOTFOUND, STORE_IO. */
int store_dir_load(struct store *st, MDB_txn *txn, const char *name, struct store_dirrec *d_r);
/* Write name's record d (version, origin, deleted, home as given): d->lseq
 * becomes dir_lseq + 1, the old dirseq entry goes, dir_clock is raised to
 * d->version if below. */
int store_dir_put(struct store *st, MDB_txn *txn, const char *name, struct store_dirrec *d);
/* A local change of name: version dir_clock + 1, origin = this store's. */
int store_dir_local(struct store *st, MDB_txn *txn, const char *name, const char *home,
		    bool deleted);
int store_op_dir_apply(struct store *st, MDB_txn *txn, struct store_op *op);

/* ---- store_apply.c: another POP's changelog records ---------------------------- */

int store_op_apply(struct store *st, MDB_txn *txn, struct store_op *op);

/* ---- store_submit.c ------------------------------------------------------- */

/* Submit an OP_FN op running fn with ctx; done (the op's callback) frees
 * ctx.  prefail other than STORE_OK: fails with it without running. */
void store_submit_fn(struct store *st, int (*fn)(struct store *, MDB_txn *, struct store_op *),
		     void *ctx, store_done_cb *done, int prefail);

/* ---- store_recent.c: \Recent marks inside a txn ----------------------------- */

/* Delete the mark of (userid, mboxid), if any. */
int store_recent_del(struct store *st, MDB_txn *txn, uint32_t userid, uint32_t mboxid);
/* Delete every mark of userid. */
int store_recent_del_user(struct store *st, MDB_txn *txn, uint32_t userid);

/* ---- store_write.c -------------------------------------------------------- */

void *store_xcalloc(size_t n, size_t size);
/* Queue op (or, if prefailed / closing, complete it through the loop). */
void store_submit(struct store *st, struct store_op *op);
/* Reset an op's outputs after a failure (also on commit failure). */
void store_op_reset_out(struct store_op *op);
void *store_writer_main(void *arg);
void store_dispatch_cb(evutil_socket_t fd, short what, void *arg);
void store_keepalive_cb(evutil_socket_t fd, short what, void *arg);
/* After the writer is joined: run every remaining completion here. */
void store_drain_completions(struct store *st);

/* store_mbox_ops.c, shared with store_apply.c and store_merge.c. */
/* Add or remove one subscription, with its changelog record.  Removing a
 * name that is not subscribed is STORE_NOTFOUND; adding one that is, OK. */
int store_sub_set(struct store *st, MDB_txn *txn, uint32_t userid, const char *name, bool on);
/* Remove name's index entry if it points to mboxid (a rename may have
 * given the name to another mailbox already). */
int store_mbox_name_release(struct store *st, MDB_txn *txn, uint32_t userid, const char *name,
			    uint32_t mboxid);
/* Remove mailbox mb of user u: its messages (body references dropped,
 * u's counters lowered and u written), keyword table, tombstones,
 * \Recent mark, name and record; observers told.  No changelog record (the caller's). */
int store_mbox_remove(struct store *st, MDB_txn *txn, struct store_op *op, struct store_user *u,
		      const struct store_mailbox *mb);

/* store_change.c: shared by store_apply.c, the merge and the snapshot files. */
/* A meta counter, 0 when absent. */
int store_meta_u64_or0(struct store *st, MDB_txn *txn, const char *key, size_t klen,
		       uint64_t *v_r);
/* Raise a meta counter to at least v (width bytes). */
int store_meta_raise(struct store *st, MDB_txn *txn, const char *key, uint64_t v, size_t width);
/* "applied/" origin into buf; its length. */
size_t store_applied_key(char buf[APPLIED_KEY_MAX], const char *origin, size_t origin_len);
/* Changelog payloads (docs/store.md "Changelog"), strictly: STORE_OK or
 * STORE_INVAL.  A name of 1..max-1 bytes from offset off; USER_ADD /
 * USER_UPDATE; a mailbox record; a MSG_ADD's message record. */
int store_ch_name(const struct store_change *c, size_t off, char *buf, size_t max);
int store_ch_user(const struct store_change *c, struct store_user *u_r);
int store_ch_mbox(const struct store_change *c, struct store_mailbox *mb_r);
int store_ch_msg(const struct store_change *c, struct store_msg *m_r, size_t *prefix_len_r);
/* The largest payload of any changelog record: a MSG_ADD with a full prefix. */
#define STORE_CH_PAYLOAD_MAX (MSG_REC_FIXED + STORE_PREFIX_MAX)
/* Check n records given by a caller (seqs first_seq.. consecutive, known
 * types, bounded payloads, bodies only on MSG_ADD) and copy them, with
 * everything they point to, into *recs_r / *blob_r (malloc'd, pointers of
 * the copies into the blob; the caller frees both, also on error).
 * STORE_OK, STORE_INVAL, STORE_IO. */
int store_ch_copy_recs(const struct store_apply_rec *recs, size_t n, uint64_t first_seq,
		       struct store_apply_rec **recs_r, uint8_t **blob_r);
/* A MSG_ADD's body as given (or held, if not given) fits the message. */
int store_ch_check_body(struct store *st, MDB_txn *txn, const struct store_apply_rec *r,
			const struct store_msg *m, uint64_t body_len);

#endif
