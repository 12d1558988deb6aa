/*
 * imap_session.h - private header shared by the IMAP session files
 * (imap_session.c core, imap_view.c, imap_registry.c, imap_cmd_*.c,
 * imap_compress.c).
 * Nothing outside imapproxy/imap*.c includes it; imap.h is the public
 * surface.
 *
 * Model.  One struct imap_session per connection.  The core reads input
 * with the I/O-free reader (imap_parse.h), parses one command at a time
 * and dispatches it through a table (state check, then the handler).
 * A command is "current" (s->cmd) from dispatch until the handler calls
 * imap_cmd_done(): that writes the tagged completion, frees the command
 * and lets the core go on with pipelined input.  While a command is
 * current no other input is processed and reading from the transport is
 * off, so replies always come in order and input cannot pile up.
 *
 * A handler therefore ends in one of three ways:
 *   1. it finishes at once: calls imap_cmd_done() before returning;
 *   2. it started a store write: it calls imap_async_begin(s) before the
 *      store call and, in the store callback,
 *	    if (!imap_async_end(s)) { imap_session_leave(s); return; }
 *	    ... imap_cmd_done(s, "OK", "...");
 *	    imap_session_leave(s);
 *      (imap_async_end enters the session; the session struct is not
 *      freed while an async op is outstanding, but the transport may be
 *      gone: imap_async_end returns false then and nothing may be
 *      written);
 *   3. it produces a lot of output (FETCH, SEARCH on a big mailbox): it
 *      writes until imap_output_full(s), stores its position in
 *      s->cmd_state (memory from s->cmd->arena or freed by
 *      s->cmd_state_free), sets s->resume and returns.  The core calls
 *      s->resume(s, s->cmd) when the output has drained (from the
 *      transport's drained callback), or at once if the output is not
 *      full when the handler returns.  The last call ends with
 *      imap_cmd_done().  This keeps per-session output to about
 *      TRANSPORT_OUTPUT_HIGH plus one item.
 *
 * Lifetime.  Every entry point (transport callbacks, auth and store
 * callbacks, the shutdown hook, the change observer) brackets its work
 * with imap_session_enter()/imap_session_leave() and returns right after
 * leaving; ending a session only marks it, and the last leave frees it.
 * Handlers run inside an entry point and must not leave themselves.
 *
 * Views.  The selected mailbox as this session's client knows it is a
 * struct imap_view: the message array in sequence order.  The session
 * changes it only through imap_view_sync() (which also emits the
 * untagged responses that keep the client in step) and through its own
 * commands (STORE updates flags/modseq of its messages in place and
 * writes the FETCH responses itself).  Sequence numbers change only when
 * EXPUNGE/VANISHED responses are sent.
 */
#ifndef IMAPPROXY_IMAP_SESSION_H
#define IMAPPROXY_IMAP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_parse.h"
#include "node.h"
#include "store.h"

struct event;
struct transport;
struct listen_conf;
struct auth_request;
struct tunnel_req;
struct imap_registry;
struct imap_view_entry;

/* ---- states -------------------------------------------------------------- */

enum imap_state {
	IMAP_ST_NOTAUTH,
	IMAP_ST_AUTH,
	IMAP_ST_SELECTED,
	IMAP_ST_LOGOUT,
};

/* Bits for struct imap_cmd_def.states. */
#define IMAP_S_NOTAUTH (1u << IMAP_ST_NOTAUTH)
#define IMAP_S_AUTH (1u << IMAP_ST_AUTH)
#define IMAP_S_SELECTED (1u << IMAP_ST_SELECTED)
#define IMAP_S_ANY (IMAP_S_NOTAUTH | IMAP_S_AUTH | IMAP_S_SELECTED)
#define IMAP_S_LOGGED_IN (IMAP_S_AUTH | IMAP_S_SELECTED)

/* Most keywords per mailbox (store_msg.keywords is a 64-bit map). */
#define IMAP_MAX_KEYWORDS 64

/* ---- the view of the selected mailbox --------------------------------------- */

/* One message as this session knows it. */
struct imap_msg {
	uint32_t uid;
	uint32_t flags;		/* IMAP_FLAG_* (== STORE_F_*); IMAP_FLAG_RECENT
				 * is session-local (this session owns \Recent
				 * for the message) */
	uint64_t keywords;	/* bit i = v->kw_names[i] */
	uint64_t modseq;
	uint64_t size;		/* RFC822.SIZE */
	int64_t internaldate;	/* unix time */
	/* Gone from the store but not yet announced to the client (an
	 * EXPUNGE response is not allowed right now).  The sequence number
	 * stays valid; FETCH answers from the view for the numbers
	 * (FLAGS, UID) and cannot read the text any more
	 * (NO [EXPUNGEISSUED] is fine; RFC 3501 7.4.1, RFC 5530). */
	bool expunged;
};

struct imap_view {
	uint32_t mboxid;
	char name[STORE_MBOX_MAX];	/* UTF-8, as stored */
	bool readonly;			/* EXAMINE, or no write access */
	uint32_t uidvalidity;
	uint32_t uidnext;		/* as last announced / read */
	uint64_t highestmodseq;		/* as last read from the store */
	uint32_t special_use;		/* STORE_SU_* */

	struct imap_msg *msgs;		/* sequence order: msgs[seq - 1] */
	size_t n, cap;
	size_t n_expunged;		/* msgs[] with expunged set */
	uint32_t n_recent;		/* \Recent in msgs[] */

	/* Keyword names, index = keyword bit; NULL for unused bits.  One
	 * allocation each. */
	char *kw_names[IMAP_MAX_KEYWORDS];
	unsigned n_kw;			/* highest used index + 1 */

	/* Set by the change observer when the store reports a change to
	 * this mailbox; cleared by imap_view_sync(). */
	bool dirty;
	/* The registry entry (user, mailbox) this view is listed under. */
	struct imap_view_entry *entry;
};

/* ---- the session ------------------------------------------------------------- */

enum imap_input_mode {
	IMAP_IN_COMMAND,	/* commands through imap_reader_feed */
	IMAP_IN_SASL,		/* AUTHENTICATE continuation line */
	IMAP_IN_IDLE,		/* waiting for DONE */
};

struct imap_session {
	struct node *n;
	/* The store serving this user: n->store, or the mirror store of the
	 * user's home while a mirror serves for it (docs/failover.md). */
	struct store *store;
	struct transport *t;		/* NULL once freed; the COMPRESS
					 * wrapper once COMPRESS is active */
	const struct listen_conf *lc;
	struct node_session reg;
	enum imap_state state;
	uint64_t serial;		/* for log lines: sid=N */

	/* lifetime (see the top of this file) */
	unsigned depth;
	unsigned async_pending;		/* imap_async_begin without end */
	bool ending;
	bool closing;
	bool shutdown_requested;
	bool drain_pending;		/* BYE once the current command is done */
	const char *end_reason;

	/* input / output flow */
	struct imap_reader *reader;
	struct imap_limits limits;
	enum imap_input_mode in_mode;
	bool reading;			/* what we last told the transport */
	bool processing;		/* inside the input loop */
	bool out_blocked;		/* waiting for the drained callback */
	bool out_failed;		/* an evbuffer add failed: end */
	unsigned bad_commands;		/* consecutive */
	bool tls_started;		/* STARTTLS done */
	bool compressed;		/* COMPRESS DEFLATE active */
	/* Zero-delay timer that resumes a long command on the next loop
	 * turn (so one SEARCH/FETCH cannot hold the loop); made on first
	 * use. */
	struct event *yield_ev;

	/* the current command (NULL between commands) */
	struct imap_command *cmd;
	unsigned cmd_flags;		/* the table row's IMAP_CMDF_* */
	void (*resume)(struct imap_session *s, struct imap_command *cmd);
	void *cmd_state;		/* the handler's, for resume */
	void (*cmd_state_free)(void *state);	/* called at imap_cmd_done if set */

	/* authentication */
	struct auth_request *auth;
	struct tunnel_req *tunnel;	/* waiting for the home POP (tunnel.h) */
	char tunnel_user[STORE_NAME_MAX];
	char tunnel_home[STORE_POP_MAX];
	char front_pop[STORE_POP_MAX];	/* resumed here: the POP the client
					 * reached ("" = this one) */
	bool logged_in;
	uint32_t userid;
	char username[STORE_NAME_MAX];

	/* extensions */
	uint32_t enabled;		/* IMAP_ENABLE_* after ENABLE */
	bool condstore;			/* CONDSTORE in effect (ENABLE, SELECT
					 * (CONDSTORE), or a CONDSTORE command;
					 * RFC 7162 3.1): FETCH responses carry
					 * MODSEQ */

	/* selected state */
	struct imap_view view;		/* valid in IMAP_ST_SELECTED */
	bool idling;			/* IDLE in progress */

	/* for the end-of-session log line */
	unsigned n_commands;
	uint64_t fetch_bytes;
};

/* Command flags (struct imap_cmd_def.flags). */
enum {
	/* FETCH, STORE, SEARCH (and UID forms): no EXPUNGE/VANISHED
	 * responses at the end of the command (RFC 3501 7.4.1). */
	IMAP_CMDF_NO_EXPUNGE = 1 << 0,
	/* No view sync at the end (SELECT/EXAMINE/UNSELECT/CLOSE/LOGOUT
	 * manage the view themselves). */
	IMAP_CMDF_NO_SYNC = 1 << 1,
};

/* One row of the command table (imap_session.c), indexed by
 * enum imap_cmd_id. */
struct imap_cmd_def {
	unsigned states;		/* IMAP_S_* where the command is allowed */
	unsigned flags;			/* IMAP_CMDF_* */
	void (*fn)(struct imap_session *s, struct imap_command *cmd);
};

/* ---- command handlers -------------------------------------------------------- */

/* imap_cmd_auth.c */
void imap_cmd_capability(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_noop(struct imap_session *s, struct imap_command *cmd);	/* NOOP, CHECK */
void imap_cmd_logout(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_starttls(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_login(struct imap_session *s, struct imap_command *cmd);
/* Enter the authenticated state as u (a local login, or a session the
 * front POP carried here); via names which, for the log. */
void imap_login_user(struct imap_session *s, const struct store_user *u, const char *via);
void imap_cmd_authenticate(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_id(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_enable(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_namespace(struct imap_session *s, struct imap_command *cmd);
/* The AUTHENTICATE continuation line (input mode IMAP_IN_SASL). */
void imap_auth_sasl_line(struct imap_session *s, const char *line, size_t len);

/* imap_cmd_mailbox.c */
void imap_cmd_select(struct imap_session *s, struct imap_command *cmd);	/* + EXAMINE */
void imap_cmd_unselect(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_create(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_delete(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_rename(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_subscribe(struct imap_session *s, struct imap_command *cmd); /* + UNSUBSCRIBE */
void imap_cmd_list(struct imap_session *s, struct imap_command *cmd);	/* + LSUB */
void imap_cmd_status(struct imap_session *s, struct imap_command *cmd);

/* imap_cmd_idle.c */
void imap_cmd_idle(struct imap_session *s, struct imap_command *cmd);
/* A line while idling (input mode IMAP_IN_IDLE). */
void imap_idle_line(struct imap_session *s, const char *line, size_t len);

/* imap_compress.c */
void imap_cmd_compress(struct imap_session *s, struct imap_command *cmd);
/* Wrap inner in a COMPRESS=DEFLATE transport (raw deflate both ways):
 * the session's callbacks move from inner to the wrapper, which owns
 * inner from now on.  reading: whether the session reads now.  NULL if
 * out of memory (inner untouched). */
struct event_base;
struct transport *imap_compress_wrap(struct event_base *base, struct transport *inner,
				     bool reading);

/* The message commands (the message-commands helper's files). */
void imap_cmd_fetch(struct imap_session *s, struct imap_command *cmd);	/* [UID] FETCH */
void imap_cmd_search(struct imap_session *s, struct imap_command *cmd);	/* [UID] SEARCH */
void imap_cmd_store(struct imap_session *s, struct imap_command *cmd);	/* [UID] STORE */
void imap_cmd_copy(struct imap_session *s, struct imap_command *cmd);	/* [UID] COPY */
void imap_cmd_move(struct imap_session *s, struct imap_command *cmd);	/* [UID] MOVE */
void imap_cmd_expunge(struct imap_session *s, struct imap_command *cmd);	/* [UID] EXPUNGE */
/* CLOSE: silently expunge \Deleted (unless read-only), then leave the
 * selected state with imap_view_close() and complete. */
void imap_cmd_close(struct imap_session *s, struct imap_command *cmd);
void imap_cmd_append(struct imap_session *s, struct imap_command *cmd);

/* ---- lifetime ---------------------------------------------------------------- */

void imap_session_enter(struct imap_session *s);
/* The caller returns at once after this (the session may be freed). */
void imap_session_leave(struct imap_session *s);
/* true if the session can still talk (transport there, not ending). */
bool imap_session_alive(const struct imap_session *s);

/* An asynchronous operation (store write) is about to start: the session
 * struct will not be freed until the matching imap_async_end(). */
void imap_async_begin(struct imap_session *s);
/* In the operation's callback: enters the session (the caller must call
 * imap_session_leave() afterwards) and returns imap_session_alive(). */
bool imap_async_end(struct imap_session *s);

/* Say goodbye: flush what is queued, then close. */
void imap_session_close(struct imap_session *s, const char *reason);
/* End at once (queued output dropped). */
void imap_session_end(struct imap_session *s, const char *reason);

/* ---- output ------------------------------------------------------------------ */

/* Raw bytes / printf to the output (no CRLF added).  Failures set
 * s->out_failed (the core ends the session); writing to a session whose
 * transport is gone is a no-op. */
void imap_write(struct imap_session *s, const void *p, size_t len);
void imap_writes(struct imap_session *s, const char *str);
void imap_writef(struct imap_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "* " fmt CRLF */
void imap_untagged(struct imap_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* An IMAP string: quoted if it is short and holds only safe bytes
 * (no CR, LF, NUL; 8-bit only as valid UTF-8 to a client that enabled
 * UTF8=ACCEPT), else a literal "{n}\r\n" + bytes. */
void imap_write_string(struct imap_session *s, const char *p, size_t len);
/* As imap_write_string, NIL for p == NULL. */
void imap_write_nstr(struct imap_session *s, const char *p, size_t len);
/* A mailbox name (UTF-8 as stored) as an astring: in modified UTF-7, or
 * as UTF-8 once the client has enabled UTF8=ACCEPT (RFC 6855 3). */
void imap_write_mailbox(struct imap_session *s, const char *utf8name);
/* "(\Seen \Answered $Junk)" for flags (IMAP_FLAG_*, \Recent included
 * when set) and keyword bits named by the view. */
void imap_write_flags(struct imap_session *s, const struct imap_view *v, uint32_t flags,
		      uint64_t keywords);
/* true when the output is above TRANSPORT_OUTPUT_HIGH: a resumable
 * command should stop and return (see the top of this file). */
bool imap_output_full(struct imap_session *s);

/* Complete the current command: runs the end-of-command view sync
 * (untagged EXISTS/FETCH, and EXPUNGE/VANISHED unless the command's row
 * has IMAP_CMDF_NO_EXPUNGE; skipped for IMAP_CMDF_NO_SYNC and for status
 * "BAD"), writes "tag STATUS text" (fmt may start with "[CODE] "), frees
 * the command and its state, and lets the core continue with pipelined
 * input (at once if called inside the handler, or scheduled when called
 * from a callback).  status is "OK", "NO" or "BAD". */
void imap_cmd_done(struct imap_session *s, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* CONDSTORE now in effect (RFC 7162 3.1: a CONDSTORE-enabling command). */
void imap_condstore_enable(struct imap_session *s);

/* Mod-sequences on the wire.  RFC 7162 3.1.2.1 wants HIGHESTMODSEQ >= 1,
 * but the store starts a mailbox at highestmodseq 0 and gives its first
 * message modseq 1.  Showing max(1, hms) would be wrong: a client told 1
 * for the empty mailbox would miss the first message (modseq 1) with
 * CHANGEDSINCE 1, and STATUS would still say 1 once it had arrived.  So
 * every mod-sequence is shown one higher than the store's (HIGHESTMODSEQ,
 * FETCH/SEARCH MODSEQ), and every one a client sends (CHANGEDSINCE,
 * UNCHANGEDSINCE, QRESYNC, the SEARCH MODSEQ key) is taken back before it
 * meets the store.  The store keeps its values and format. */
static inline uint64_t imap_modseq_out(uint64_t store_modseq)
{
	return store_modseq + 1;
}

/* The store value of a client's mod-sequence v, for "changed after v"
 * (store value > result) and "at least v" (>= result) tests: v - 1, and
 * 0 for v 0 (every message and tombstone has a store modseq >= 1). */
static inline uint64_t imap_modseq_in(uint64_t v)
{
	return v > 0 ? v - 1 : 0;
}

/* The capability list for CAPABILITY / the greeting / after login
 * (depends on the state, TLS and COMPRESS), NUL-terminated in buf. */
#define IMAP_CAPS_MAX 320
void imap_capabilities(const struct imap_session *s, char *buf, size_t size);

/* Whether LOGIN / AUTHENTICATE PLAIN may be used now. */
bool imap_plaintext_ok(const struct imap_session *s);

/* Input and idle timeout for the current state. */
void imap_session_set_timeout(struct imap_session *s);

/* ---- the view (imap_view.c) ---------------------------------------------------- */

/* Load the mailbox into s->view (previous view cleared first), register
 * it for change notification, claim \Recent for new messages.  Writes no
 * output.  STORE_OK or a store error (the view is empty then and the
 * session is not in the selected state). */
int imap_view_open(struct imap_session *s, const struct store_mailbox *mb, bool readonly);
/* Leave the selected state: free the view's arrays, unregister; state
 * becomes IMAP_ST_AUTH.  No output. */
void imap_view_close(struct imap_session *s);

/* Re-read the selected mailbox and bring the client up to date:
 * new keywords ("* FLAGS", "* OK [PERMANENTFLAGS]"), expunged messages
 * ("* n EXPUNGE", or "* VANISHED uids" with QRESYNC enabled) if
 * allow_expunge - else they stay in the view marked expunged -, changed
 * flags ("* n FETCH (FLAGS (...) [UID u] [MODSEQ (m)])"), new messages
 * ("* n EXISTS", "* n RECENT").  Nothing is written when nothing changed.
 * Returns STORE_OK or a store error (the view is left as it was). */
int imap_view_sync(struct imap_session *s, bool allow_expunge);

/* Sequence number of uid in the view, 0 if not there (binary search). */
uint32_t imap_view_seq(const struct imap_view *v, uint32_t uid);
/* First index i with msgs[i].uid >= uid (n if none). */
size_t imap_view_lower_bound(const struct imap_view *v, uint32_t uid);
/* The message with sequence number seq (1-based), NULL if out of range. */
struct imap_msg *imap_view_msg(const struct imap_view *v, uint32_t seq);

/* Resolve a parsed sequence set (uid false) or UID set (uid true) against
 * the view into ascending, disjoint *sequence number* ranges allocated
 * from arena a.  For message sequence numbers a number above the message
 * count is an error (-1 with *error_r "Invalid message sequence number"
 * - answer BAD); UIDs that are not in the view are skipped.  0 with
 * *r_r and *n_r set (n may be 0), or -1 (also out of memory: "Out of
 * memory"). */
int imap_view_resolve(const struct imap_view *v, const struct imap_seqset *set, bool uid,
		      struct imap_arena *a, struct imap_range **r_r, size_t *n_r,
		      const char **error_r);

/* Keyword bit for a name (case-insensitive) or -1.  Matches the
 * imap_search_bind_keywords() lookup signature (ctx = the view). */
int imap_view_keyword_lookup(void *view, const char *name, size_t len);

/* Re-read the mailbox's keyword table into the view (after a command of
 * this session added keywords).  If names were added and announce is
 * true, writes "* FLAGS (...)" and "* OK [PERMANENTFLAGS (...)]". */
int imap_view_reload_keywords(struct imap_session *s, bool announce);

/* "* FLAGS (...)" and "* OK [PERMANENTFLAGS (...)] ..." for the view. */
void imap_view_write_flags_responses(struct imap_session *s);

/* The pure part of the sync, exported for unit tests: given the
 * messages changed or added since the view's highestmodseq (ascending
 * UID, as store_msg_foreach_changed gives them) and the UIDs expunged
 * since then (ascending, store_vanished_foreach), call back for every
 * difference with the view, in this order: every vanished message
 * still in the view (gone), every message in the view whose flags,
 * keywords or modseq differ (changed), every message with a UID above
 * the view's last one (added, ascending).  Changed entries for UIDs not
 * in the view and below its last UID (already expunged here) are
 * ignored, as are messages the view marks expunged. */
struct imap_view_diff_cbs {
	void (*gone)(void *arg, size_t idx);	/* v->msgs[idx] */
	void (*changed)(void *arg, size_t idx, const struct store_msg *m);
	void (*added)(void *arg, const struct store_msg *m);
};
void imap_view_diff(const struct imap_view *v, const struct store_msg *changed,
		    size_t n_changed, const uint32_t *vanished, size_t n_vanished,
		    const struct imap_view_diff_cbs *cbs, void *arg);

/* Write ascending UIDs as a compact IMAP set ("1:3,7") to the output. */
void imap_write_uidset(struct imap_session *s, const uint32_t *uids, size_t n);

/* ---- the node-wide registry (imap_registry.c) -------------------------------- */

/* A change in store st for (userid, mboxid) (mboxid 0: any mailbox of
 * the user): every session with it selected is marked dirty; idling ones
 * sync and write at once, others sync at their next command boundary. */
void imap_registry_notify(struct node *n, const struct store *st, uint32_t userid,
			  uint32_t mboxid);

/* Highest UID of the mailbox whose \Recent a session has claimed (0 if
 * none; the mark stored in st when no session had it selected since the
 * start): messages above it count as RECENT for STATUS. */
uint32_t imap_registry_recent_uid(struct node *n, struct store *st, uint32_t userid,
				  uint32_t mboxid);

/* ---- misc shared helpers (imap_cmd_mailbox.c) ---------------------------------- */

/* LIST pattern matching on UTF-8 names with separator '/': '*' matches
 * anything, '%' anything but '/'.  Pure; exported for unit tests. */
bool imap_list_match(const char *pattern, const char *name);

/* Complete the current command for a store error: NO with a response
 * code ([NONEXISTENT], [ALREADYEXISTS], [OVERQUOTA], [CANNOT],
 * [UNAVAILABLE], [LIMIT]) and "what" in the text ("what failed: reason"). */
void imap_cmd_done_store_error(struct imap_session *s, int err, const char *what);

#endif
