/*
 * repl_noc_wire.h - what `popctl verify` and `popctl lag --cluster` carry
 * over the link (docs/replication.md "popctl verify and lag --cluster"),
 * and how their answers are compared and rendered.  No I/O: answers are
 * encoded into and parsed from memory (an evbuffer used as a plain
 * buffer), so everything here is unit-tested (tests/unit/test_repl_noc.c).
 *
 *   GET /v1/repl/digest?user=U&origin=O
 *     200, body (lines, LF-terminated, fields separated by one TAB):
 *       seq     N             O's changelog end (O = the answering POP)
 *                             or the seq of O applied here (a mirror)
 *       user    found|absent
 *       mirror  POP           0..REPL_MIRRORS lines, only when O is the
 *                             answering POP: its mirrors now
 *       mailbox NAME MESSAGES UIDVALIDITY UIDNEXT DIGEST
 *                             one per mailbox of U in that copy
 *     404: this POP holds no copy of O; 400: a bad query.
 *
 *   GET /v1/repl/lag
 *     200, body: one line per mirror of the answering POP:
 *       mirror PEER PINNED(0|1) STATE SINCE LAST SENT APPLIED
 *              RECORDS_BEHIND BYTES_BEHIND SECONDS_BEHIND ACK_AGE_MS
 *              RECONNECTS ERROR
 *     ACK_AGE_MS is how long ago the last ack came (-1: never), so the
 *     asking POP's clock does not matter; ERROR "-" when none.
 *
 * DIGEST is the one `popctl mirror list` shows: the first 8 bytes, in
 * lowercase hex, of a SHA-256 over each message's UID (u32), flags (u32),
 * keywords (u64), all big-endian, and body hash (32 bytes), in ascending
 * UID order.  The same content gives the same line at every POP.
 */
#ifndef POPNODE_REPL_NOC_WIRE_H
#define POPNODE_REPL_NOC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replicator.h"

struct evbuffer;

#define REPL_NOC_DIGEST_PATH "/v1/repl/digest"
#define REPL_NOC_LAG_PATH "/v1/repl/lag"
#define REPL_NOC_ID_MAX 64		/* a user name or POP id, NUL included */
#define REPL_NOC_NAME_MAX 512		/* a mailbox name, NUL included (STORE_MBOX_MAX) */
#define REPL_NOC_DIGEST_HEX 16		/* hex digits of a mailbox digest */
#define REPL_NOC_MBOX_MAX 65536		/* mailboxes in one answer */
#define REPL_NOC_ANSWER_MAX (8u << 20)	/* bytes of one answer */
#define REPL_NOC_ERROR_MAX 128

/* ---- queries ------------------------------------------------------------- */

/* The query of GET /v1/repl/digest: "user=U&origin=O" in either order,
 * each exactly once, nothing else.  U must be a valid user name
 * (dir_valid_username), O a POP id (ctl_valid_pop).  0, or -1 with
 * *why_r (static). */
int repl_noc_parse_digest_query(const char *query, char user[REPL_NOC_ID_MAX],
				char origin[REPL_NOC_ID_MAX], const char **why_r);

/* ---- a copy of a user's mail ------------------------------------------------ */

struct repl_noc_mbox {
	char *name;			/* owned */
	uint32_t messages, uidvalidity, uidnext;
	char digest[REPL_NOC_DIGEST_HEX + 1];
	int status;			/* enum repl_noc_status, set by compare */
};

enum repl_noc_status {
	REPL_NOC_REFERENCE,		/* the home's copy: what the others are compared with */
	REPL_NOC_MATCH,
	REPL_NOC_DIFFERS,
	REPL_NOC_UNREACHABLE,		/* no answer, or one that made no sense */
	REPL_NOC_MISSING,		/* mailbox: at the home, not in this copy */
	REPL_NOC_EXTRA,			/* mailbox: in this copy, not at the home */
};
const char *repl_noc_status_name(enum repl_noc_status s);

/* One POP's copy of one user's mail (or why it is not known). */
struct repl_noc_copy {
	char pop[REPL_NOC_ID_MAX];	/* where the copy is */
	bool home;			/* role: the home, else a mirror */
	bool reached;			/* answered (or read here) */
	bool held;			/* the POP holds a copy of the home's data */
	bool user_found;
	uint64_t seq;			/* see "seq" above */
	struct repl_noc_mbox *mb;	/* sorted by name once compared */
	size_t n_mb, cap_mb;
	char mirrors[REPL_MIRRORS][REPL_NOC_ID_MAX];	/* home: its mirrors */
	size_t n_mirrors;
	char error[REPL_NOC_ERROR_MAX];	/* why not reached, why not held */
	enum repl_noc_status status;	/* set by compare */
};

/* Append a mailbox (name copied).  0, or -1: out of memory, more than
 * REPL_NOC_MBOX_MAX, a name that is empty, too long or holds a control
 * byte, a digest that is not REPL_NOC_DIGEST_HEX lowercase hex digits. */
int repl_noc_copy_add(struct repl_noc_copy *c, const char *name, uint32_t messages,
		      uint32_t uidvalidity, uint32_t uidnext, const char *digest);
/* Free the mailboxes; the rest of *c stays. */
void repl_noc_copy_clear(struct repl_noc_copy *c);

/* The 200 answer of GET /v1/repl/digest for c (seq, user_found,
 * mirrors, mailboxes).  0 or -1 (out of memory). */
int repl_noc_digest_encode(const struct repl_noc_copy *c, struct evbuffer *out);
/* Parse such an answer (len bytes) into c: seq, user_found, mirrors,
 * mailboxes (c's earlier mailboxes are freed; the new ones sorted by
 * name).  Strict: the lines in the order above, decimal numbers without
 * sign or leading zeros, names as repl_noc_copy_add and none twice, POP
 * ids as ctl_valid_pop, every line ending in LF.  0, or -1 with *why_r
 * (static). */
int repl_noc_digest_parse(const char *body, size_t len, struct repl_noc_copy *c,
			  const char **why_r);

/* ---- replication figures of one POP ----------------------------------------- */

struct repl_noc_lag {
	char pop[REPL_NOC_ID_MAX];	/* the origin */
	bool reached;
	char error[REPL_NOC_ERROR_MAX];	/* why not reached */
	struct repl_mirror_info m[REPL_MIRRORS];
	size_t n;
};

/* The 200 answer of GET /v1/repl/lag for m[0..n); now_ms: this POP's
 * clock (unix ms), for the ack ages.  0 or -1 (out of memory). */
int repl_noc_lag_encode(const struct repl_mirror_info *m, size_t n, int64_t now_ms,
			struct evbuffer *out);
/* Parse such an answer into l->m / l->n (last_ack_ms = now_ms - age).
 * At most REPL_MIRRORS lines.  0, or -1 with *why_r (static). */
int repl_noc_lag_parse(const char *body, size_t len, int64_t now_ms, struct repl_noc_lag *l,
		       const char **why_r);

/* ---- comparing and rendering ------------------------------------------------- */

/* Compare every reached, held copy with c[0] (the home, which must be
 * first): mailboxes are sorted by name and each gets MATCH, DIFFERS,
 * MISSING or EXTRA; a copy is MATCH when every mailbox matches and none
 * is missing or extra.  A copy not reached (the home included) is
 * UNREACHABLE; one reached but not holding a copy, or without the user,
 * DIFFERS.  With the home unreachable the others stay UNREACHABLE: there
 * is nothing to compare them with.  Returns the verdict: DIFFERS if any
 * copy differs (a difference found is one, whatever else could not be
 * reached), else UNREACHABLE if any copy could not be reached, else
 * MATCH. */
enum repl_noc_status repl_noc_compare(struct repl_noc_copy *c, size_t n);

/* `popctl verify` answers.  Text: "user:", "home:", "result:" lines, a
 * blank line, the copies table (TAB-separated, header first: POP ROLE
 * RESULT SEQ MAILBOXES MESSAGES NOTE), a blank line, the mailboxes
 * table (POP MAILBOX MESSAGES UIDVALIDITY UIDNEXT DIGEST RESULT).
 * JSON: {"user", "home", "result", "copies": [...]}.  0 or -1. */
int repl_noc_render_verify(const char *user, const char *home, enum repl_noc_status verdict,
			   const struct repl_noc_copy *c, size_t n, bool json,
			   struct evbuffer *out);

/* `popctl lag --cluster` answers, one entry per POP in l[0..n) order.
 * Text: ORIGIN MIRROR STATE LAST SENT APPLIED BEHIND BYTES SECONDS
 * LAST ACK ERROR, one row per mirror, one row for a POP without mirrors
 * (STATE "none") and one for a POP not reached (STATE "unreachable").
 * JSON: {"pops": [{"pop", "reached", "error", "mirrors": [...]}]}.
 * now_ms: for "LAST ACK" ages.  0 or -1. */
int repl_noc_render_lag(const struct repl_noc_lag *l, size_t n, int64_t now_ms, bool json,
			struct evbuffer *out);

#endif
