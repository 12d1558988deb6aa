/*
 * repl_wire.h - the replication stream's framing (docs/replication.md
 * "Wire format"), without I/O.
 *
 * The origin's request body (POST /v1/repl/stream) is a sequence of
 * frames, all integers big-endian:
 *
 *   frame     = length u32 (bytes after this field), kind u8, payload
 *   record    = kind 1: flags u8, seq u64, type u8, userid u32,
 *               mboxid u32, uid u32, time u64, data_len u32, data,
 *               [hash 32]                  type MSG_ADD only
 *               [body_len u32, body]       flag REPL_F_BODY
 *               [meta_len u32, meta]       flag REPL_F_META
 *   heartbeat = kind 2: last_seq u64 (the origin's changelog end),
 *               time_ms u64 (the origin's clock, unix milliseconds)
 *
 * A record is one changelog record (store.h struct store_change) of the
 * origin.  MSG_ADD carries the body's SHA-256 and, unless the origin
 * already sent that body on this stream (REPL_F_BODY clear), the body
 * and the body's metadata blob.  REPL_F_GONE: the body no longer exists
 * at the origin (a later record removes the message).
 *
 * The mirror's response body is lines: "applied SEQ\n" once records up
 * to SEQ are durable there (and in answer to each heartbeat), or
 * "error TEXT\n" before it ends the stream.
 *
 * A snapshot (POST /v1/repl/snapshot from the origin, or the answer to
 * GET /v1/repl/snapshot from a mirror) is a sequence of frames too:
 *
 *   snap body = kind 3: flags u8, hash 32, body_len u32, body,
 *               [meta_len u32, meta]       flag REPL_SF_META
 *   snap item = kind 4: type u8 (2..7), a u32, b u32, c u32,
 *               data_len u32, data
 *   snap end  = kind 5: seq u64, items u64, next_userid u32,
 *               next_mboxid u32, uidvalidity u32
 *
 * Types and fields are store.h's enum store_snap_type and struct
 * store_snap_item (body = type 1); end carries the snapshot's changelog
 * position, how many body and item frames came before it, and the id
 * counters.  Lines answering a pushed snapshot: "progress BYTES\n" after
 * each part made durable, "loaded SEQ\n" once installed, or "error".
 */
#ifndef POPNODE_REPL_WIRE_H
#define POPNODE_REPL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REPL_HASH_LEN 32
#define REPL_FRAME_HDR 5		/* length u32, kind u8 */
#define REPL_DATA_MAX (1u << 20)	/* changelog payload bytes */
#define REPL_LINE_MAX 256		/* a response line, LF included */

enum repl_kind {
	REPL_RECORD = 1,
	REPL_HEARTBEAT = 2,
	REPL_SNAP_BODY = 3,
	REPL_SNAP_ITEM = 4,
	REPL_SNAP_END = 5,
};

/* Snapshot item types (store.h enum store_snap_type). */
#define REPL_SNAP_T_BODY 1		/* kind REPL_SNAP_BODY */
#define REPL_SNAP_T_ITEM_MIN 2		/* kind REPL_SNAP_ITEM: 2..7 */
#define REPL_SNAP_T_MAX 7
#define REPL_SF_META 1			/* snap body flag: meta follows */

enum {
	REPL_F_BODY = 1 << 0,	/* body (and meta if REPL_F_META) follow */
	REPL_F_META = 1 << 1,
	REPL_F_GONE = 1 << 2,	/* the body is no longer at the origin */
};

/* The changelog types a record may carry (store.h enum store_change_type). */
#define REPL_TYPE_MIN 1
#define REPL_TYPE_MAX 11
#define REPL_TYPE_MSG_ADD 5

struct repl_rec {
	uint8_t flags;			/* REPL_F_* */
	uint64_t seq;			/* >= 1 */
	uint8_t type;			/* REPL_TYPE_MIN..REPL_TYPE_MAX */
	uint32_t userid, mboxid, uid;
	int64_t time;
	const void *data;
	size_t data_len;		/* <= REPL_DATA_MAX */
	uint8_t hash[REPL_HASH_LEN];	/* MSG_ADD only */
	const void *body;		/* REPL_F_BODY */
	size_t body_len;
	const void *meta;		/* REPL_F_META (needs REPL_F_BODY) */
	size_t meta_len;
};

/* A snapshot body or item. */
struct repl_snapitem {
	uint8_t type;			/* REPL_SNAP_T_BODY .. REPL_SNAP_T_MAX */
	uint8_t flags;			/* body: REPL_SF_META or 0; item: 0 */
	uint32_t a, b, c;		/* item */
	const void *data;		/* item, <= REPL_DATA_MAX */
	size_t data_len;
	uint8_t hash[REPL_HASH_LEN];	/* body */
	const void *body;		/* body */
	size_t body_len;
	const void *meta;		/* body with REPL_SF_META */
	size_t meta_len;
};

struct repl_snapend {
	uint64_t seq, items;
	uint32_t next_userid, next_mboxid, uidvalidity;
};

struct repl_frame {
	enum repl_kind kind;
	struct repl_rec rec;		/* REPL_RECORD: pointers into the input */
	uint64_t last_seq;		/* REPL_HEARTBEAT */
	uint64_t time_ms;
	struct repl_snapitem snap;	/* REPL_SNAP_BODY, _ITEM: pointers into the input */
	struct repl_snapend end;	/* REPL_SNAP_END */
};

struct repl_limits {
	size_t body_max;		/* largest body accepted */
	size_t meta_max;		/* largest metadata blob accepted */
};

/* Bytes r takes on the wire; 0 if it cannot be encoded (bad type, seq 0,
 * flags that do not fit the type, a length over REPL_DATA_MAX or that
 * makes the frame longer than a u32 says). */
size_t repl_wire_record_size(const struct repl_rec *r);
/* Encode r into out (cap bytes).  Bytes written, 0 as above or if cap is
 * too small. */
size_t repl_wire_record_encode(const struct repl_rec *r, uint8_t *out, size_t cap);

#define REPL_HEARTBEAT_SIZE (REPL_FRAME_HDR + 16)
/* Encode a heartbeat into out (REPL_HEARTBEAT_SIZE bytes). */
void repl_wire_heartbeat_encode(uint64_t last_seq, uint64_t time_ms,
				uint8_t out[REPL_HEARTBEAT_SIZE]);

/* Bytes a snapshot body or item takes on the wire; 0 if it cannot be
 * encoded (bad type, flags, a length over its limit). */
size_t repl_wire_snap_size(const struct repl_snapitem *it);
/* Encode it into out (cap bytes).  Bytes written, 0 as above. */
size_t repl_wire_snap_encode(const struct repl_snapitem *it, uint8_t *out, size_t cap);

#define REPL_SNAPEND_SIZE (REPL_FRAME_HDR + 28)
void repl_wire_snapend_encode(const struct repl_snapend *e, uint8_t out[REPL_SNAPEND_SIZE]);

/* How many bytes the frame starting at buf needs in all, from its first
 * REPL_FRAME_HDR bytes: 0 if len < REPL_FRAME_HDR, SIZE_MAX if the
 * header alone shows it is malformed (unknown kind, longer than lim
 * allows).  For reading a stream: wait for that many bytes, then
 * decode. */
size_t repl_wire_frame_size(const uint8_t *buf, size_t len, const struct repl_limits *lim);

/* Decode one frame from buf.  1: decoded, *used_r = its bytes (pointers
 * in f point into buf); 0: more bytes needed; -1: malformed, *why_r a
 * static reason.  Strict: every length must match the frame's exactly,
 * flags and types must be known and fit each other. */
int repl_wire_decode(const uint8_t *buf, size_t len, const struct repl_limits *lim,
		     struct repl_frame *f, size_t *used_r, const char **why_r);

enum repl_line {
	REPL_LINE_BAD = -1,
	REPL_LINE_APPLIED = 1,		/* *seq_r set */
	REPL_LINE_ERROR = 2,		/* text_r/text_len_r: the text */
	REPL_LINE_PROGRESS = 3,		/* *seq_r: snapshot bytes durable */
	REPL_LINE_LOADED = 4,		/* *seq_r: the snapshot installed at seq */
};

/* One response line without its LF.  "applied N", "progress N", "loaded
 * N": N decimal without sign or leading zeros (0 alone allowed), fits
 * u64.  "error TEXT": printable ASCII.  Anything else is
 * REPL_LINE_BAD. */
enum repl_line repl_wire_parse_line(const char *line, size_t len, uint64_t *seq_r,
				    const char **text_r, size_t *text_len_r);

/* The body hash in a changelog payload (docs/store.md "Changelog"): a
 * MSG_ADD's message record (version 1, hash after size, modseq,
 * internaldate, flags, keywords) or a MSG_EXPUNGE's (modseq, hash).
 * false if the payload is too short or of an unknown version. */
bool repl_msg_add_hash(const void *data, size_t len, uint8_t hash[REPL_HASH_LEN]);
bool repl_msg_expunge_hash(const void *data, size_t len, uint8_t hash[REPL_HASH_LEN]);

#endif
