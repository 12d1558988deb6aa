/*
 * lmtp_int.h - what the files of the LMTP session (lmtp.h) need from
 * each other (private to them):
 *
 *   lmtp.c          the session: output, lifetime, the input loop,
 *                   transport callbacks, shutdown, accepting
 *   lmtp_cmd.c      reading a command line, the command table and the
 *                   LHLO/MAIL/RCPT/DATA/RSET/NOOP/QUIT/VRFY/HELP handlers
 *   lmtp_deliver.c  the DATA body, local store delivery, forwarding to
 *                   home POPs, the per-recipient replies
 *
 * The syntax (commands, DATA) is lmtp_parse.c, without I/O.
 */
#ifndef POPNODE_LMTP_INT_H
#define POPNODE_LMTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "forward.h"
#include "lmtp_parse.h"
#include "node.h"
#include "store.h"

struct config;
struct evbuffer;
struct forward_req;
struct repl_ack_waiter;
struct transport;

/* Seconds a forward may still take once the node is stopping (below the
 * node's shutdown grace). */
#define LMTP_FORWARD_SHUTDOWN_WAIT 20

enum phase {
	PH_COMMANDS,
	PH_DATA,	/* reading the message after 354 */
	PH_DELIVERING,	/* store_deliver() and/or forwards in flight */
};

/* What a step of input handling asks the loop to do next. */
enum act {
	ACT_CONTINUE,	/* go on with the next line */
	ACT_NEED_MORE,	/* no complete line/message in the buffer */
	ACT_CLOSE,	/* a final reply was queued: close after flush */
};

struct rcpt {
	char addr[LMTP_ADDR_MAX + 1];	/* as received, for replies and Delivered-To */
	char user[STORE_NAME_MAX];
	char home[STORE_POP_MAX];	/* "" here; else the POP it is forwarded to */
	size_t slot;			/* index in the delivery (duplicates share one) */
};

struct slot_result {
	int result;			/* local: STORE_* */
	uint32_t uid;
	size_t size;			/* prefix + body */
	bool unreplicated;		/* local, stored, but no mirror ack (tempfail) */
	struct forward_result fwd;	/* remote: the reply to give */
};

struct lmtp_session;

/* One forward request: some remote slots with the same home. */
struct fwd_part {
	struct lmtp_session *s;
	struct forward_req *req;	/* NULL once answered or cancelled */
	char home[STORE_POP_MAX];
	size_t rcpt[FORWARD_RCPTS_MAX];	/* first rcpt of each slot it carries */
	size_t n;
	size_t hdr_bytes;
};

struct lmtp_session {
	struct node *n;
	const struct config *cfg;
	struct transport *t;		/* NULL once dead */
	struct node_session reg;
	unsigned long long id;
	enum phase phase;
	size_t max_line;		/* command lines, CRLF excluded */

	bool lhlo;
	bool skipping;			/* dropping the rest of an over-long line */
	bool reading;			/* what we last asked of transport_read_enable */
	bool out_blocked;		/* output over the high watermark */
	bool closing;			/* close_after_flush called */
	bool stopping;			/* node shutdown: 421 after this transaction */
	bool dead;			/* client gone while a delivery is in flight */
	bool in_data_end;		/* starting the parts: lmtp_data_end() finishes */
	unsigned pending;		/* parts (local commit, forwards) not answered */
	unsigned bad_commands;

	/* transaction */
	bool have_mail;
	char sender[LMTP_ADDR_MAX + 1];	/* "" for <> */
	char sender_log[80];
	struct rcpt *rcpts;
	size_t n_rcpts;
	size_t cap_rcpts;
	size_t n_slots;
	struct slot_result *results;	/* n_slots, during a delivery */
	size_t *local_slots;		/* store_deliver's rcpts[k] is slot local_slots[k] */
	size_t n_local;
	struct fwd_part *parts;		/* forwards of this delivery */
	size_t n_parts;
	struct repl_ack_waiter *ack;	/* local commit durable, waiting for a mirror */
	struct lmtp_data *data;

	char *line;			/* max_line + 2 */
	struct lmtp_cmd cmd;
};

/* lmtp.c */

/* Queue one reply line (CRLF added); nothing once the client is gone. */
void lmtp_reply(struct lmtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Forget the transaction (MAIL, RCPTs, a delivery's state, the body). */
void lmtp_txn_reset(struct lmtp_session *s);
/* A transaction ended: ACT_CONTINUE, or 421 and ACT_CLOSE if stopping. */
enum act lmtp_txn_end(struct lmtp_session *s);
/* Unregister and free the session, its transport and its transaction. */
void lmtp_destroy(struct lmtp_session *s, const char *reason);
/* Ask the transport to read or not (no-op once closing or gone). */
void lmtp_set_reading(struct lmtp_session *s, bool on);
/* Close after the output is flushed; the caller returns right after. */
void lmtp_close(struct lmtp_session *s);
/* Handle buffered input until it runs out, blocks or a delivery starts. */
void lmtp_process(struct lmtp_session *s);

/* lmtp_cmd.c */

/* Take one command line from in and run it, or ACT_NEED_MORE. */
enum act lmtp_read_line(struct lmtp_session *s, struct evbuffer *in);

/* lmtp_deliver.c */

/* Feed in to the DATA reader; true once the final dot is in. */
bool lmtp_read_data(struct lmtp_session *s, struct evbuffer *in);
/* The final dot was read: refuse the message, or start its delivery. */
enum act lmtp_data_end(struct lmtp_session *s);
/* Every part answered: the replies, then lmtp_txn_end() (or, dead, free s). */
enum act lmtp_deliver_finish(struct lmtp_session *s);
/* The client went away: cancel the forwards still in flight. */
void lmtp_cancel_forwards(struct lmtp_session *s);

#endif
