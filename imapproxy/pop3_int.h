/*
 * pop3_int.h - what the files of the POP3 server session (pop3.h) need
 * from each other (private to them):
 *
 *   pop3.c       lifetime, output, input flow, transport callbacks,
 *                session start and resume
 *   pop3_auth.c  the AUTHORIZATION state: CAPA, USER, PASS, AUTH, STLS,
 *                login (lock, snapshot) and roaming to the home POP
 *   pop3_cmd.c   the command table, QUIT and the TRANSACTION commands
 */
#ifndef IMAPPROXY_POP3_INT_H
#define IMAPPROXY_POP3_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node.h"
#include "pop3_parse.h"
#include "store.h"

struct auth_request;
struct listen_conf;
struct transport;
struct tunnel_req;

enum pop3_state { ST_AUTHORIZATION, ST_TRANSACTION, ST_UPDATE };

struct pop3_msg {
	uint32_t uid;
	bool deleted;
	uint64_t size;
};

struct pop3_session {
	struct node *n;
	struct store *store;		/* n->store, or a mirror store (failover) */
	struct transport *t;		/* NULL once freed */
	const struct listen_conf *lc;
	struct node_session reg;
	enum pop3_state state;
	size_t max_line;

	/* lifetime (see the top of pop3.c) */
	unsigned depth;
	bool ending;			/* pop3_end() called; freed at depth 0 */
	bool closing;			/* close_after_flush issued */
	bool shutdown_requested;
	const char *end_reason;

	/* input and output flow */
	bool reading;			/* what we last told the transport */
	bool out_blocked;		/* waiting for the drained callback */
	bool out_failed;		/* an evbuffer add failed: drop */
	bool discarding;		/* skipping the rest of an over-long line */
	bool sasl_wait;			/* "+ " sent: next line is the response */
	bool tls_started;
	unsigned bad_commands;
	char *line;			/* current line, grown up to max_line + 2 */
	size_t line_cap;
	size_t scanned;			/* input already searched for LF */

	/* authorization */
	bool have_user;			/* USER given */
	char user[POP3_ARG_MAX + 1];	/* login name (USER or authcid) */
	char pass[POP3_ARG_MAX + 1];	/* held only while auth runs */
	struct auth_request *auth;
	struct tunnel_req *tunnel;	/* waiting for the home POP (tunnel.h) */
	char tunnel_home[STORE_POP_MAX];

	/* transaction */
	bool logged_in;
	bool locked;
	uint32_t userid;
	char username[STORE_NAME_MAX];
	char tunnel_user[STORE_NAME_MAX];	/* while tunnel_open runs */
	uint32_t mboxid;
	uint32_t uidvalidity;
	struct pop3_msg *msgs;
	size_t n_msgs, cap_msgs;
	bool snap_oom;
	size_t live_count;		/* not DELE'd */
	uint64_t live_bytes;

	/* update */
	bool expunge_pending;
	uint32_t *expunge_uids;
	size_t n_expunge;

	/* for the end-of-session log line */
	unsigned n_retr;
	uint64_t retr_bytes;
	size_t n_expunged;
};

/* pop3.c: bracket every entry point; return right after pop3_leave(),
 * which frees an ended session at the outermost level. */
void pop3_enter(struct pop3_session *s);
void pop3_leave(struct pop3_session *s);
/* pop3.c: mark the session over (idempotent); queued output is dropped. */
void pop3_end(struct pop3_session *s, const char *reason);
/* pop3.c: flush what is queued, then end. */
void pop3_close(struct pop3_session *s, const char *reason);
/* pop3.c: release the user's maildrop lock if held. */
void pop3_unlock(struct pop3_session *s);

/* pop3.c: output (a failed add sets s->out_failed).  pop3_reply: one
 * reply line, CRLF added; pop3_out_stuffed: data with a '.' at the start
 * of a line doubled (*bol: previous byte ended a line; *last: last byte). */
void pop3_out_str(struct pop3_session *s, const char *str);
void pop3_reply(struct pop3_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void pop3_out_stuffed(struct pop3_session *s, const char *p, size_t len, bool *bol,
		      char *last);

/* pop3.c: run queued command lines until something makes us wait. */
void pop3_process(struct pop3_session *s);
/* pop3.c: "-ERR text", or close after too many bad commands. */
void pop3_bad_command(struct pop3_session *s, const char *text);

/* pop3_auth.c: credentials accepted for u: open the maildrop (enter
 * TRANSACTION) or carry the session to u's home POP. */
void pop3_login(struct pop3_session *s, const struct store_user *u);
/* pop3_auth.c: the line after "+ " (a SASL response, or "*" to cancel). */
void pop3_sasl_response(struct pop3_session *s, const char *line, size_t len);
/* pop3_auth.c: command handlers for pop3_cmd.c's table. */
void pop3_cmd_capa(struct pop3_session *s, const struct pop3_command *c);
void pop3_cmd_user(struct pop3_session *s, const struct pop3_command *c);
void pop3_cmd_pass(struct pop3_session *s, const struct pop3_command *c);
void pop3_cmd_auth(struct pop3_session *s, const struct pop3_command *c);
void pop3_cmd_stls(struct pop3_session *s, const struct pop3_command *c);

/* pop3_cmd.c: one command line: parse, check the state, run its handler. */
void pop3_handle_line(struct pop3_session *s, const char *line, size_t len);

#endif
