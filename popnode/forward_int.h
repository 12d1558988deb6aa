/*
 * forward_int.h - what the files of forwarding (forward.h) need from
 * each other (private to them):
 *
 *   forward.c        registering the home side; what both sides share
 *   forward_front.c  the front: the message to the home (or a mirror of
 *                    a failed home) over the link, the replies for the
 *                    LMTP caller
 *   forward_home.c   the home: POST /v1/deliver served, stored, answered;
 *                    also the store here when the front itself is the
 *                    failed home's first mirror
 */
#ifndef POPNODE_FORWARD_INT_H
#define POPNODE_FORWARD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "forward.h"
#include "store.h"

struct fwd_in;
struct link_request;
struct link_stream;
struct node;

struct forward_req {
	struct node *n;
	struct link_stream *s;		/* to the home POP (or a mirror) */
	struct fwd_in *local;		/* failover: stored here, in a mirror store */
	forward_cb *cb;
	void *arg;
	char home[STORE_POP_MAX];
	const char *body;		/* the caller's, until cb or cancel */
	size_t len, off;		/* off: bytes handed to the stream */
	bool ended;			/* link_stream_end() called */
	int status;			/* of the answer, 0 before it */
	unsigned timeout;
	size_t n_rcpts;
	char users[FORWARD_RCPTS_MAX][STORE_NAME_MAX];
	struct forward_result res[FORWARD_RCPTS_MAX];
	struct timespec started;
};

/* forward.c: milliseconds since t0 (CLOCK_MONOTONIC), for the log. */
int64_t fwd_ms_since(const struct timespec *t0);

/* forward_front.c: answer the caller (fr->cb with fr->res), free fr. */
void fwd_done(struct forward_req *fr);

/* forward_home.c: the link handler of POST /v1/deliver (arg: the node). */
void fwd_serve(void *arg, struct link_stream *s, const struct link_request *lr);

/* forward_home.c: failover at the front, this POP being fr->home's first
 * mirror: store the message here in the mirror store and answer fr with
 * fwd_done() on a later loop turn.  0 (fr->local set), or -1 (nothing
 * started). */
int fwd_local_start(struct forward_req *fr, const char *mail_from,
		    const struct forward_rcpt *rcpts, int64_t internaldate);

/* forward_home.c: fr went away (forward_cancel): the commit goes on, its
 * answer goes nowhere. */
void fwd_local_cancel(struct fwd_in *fi);

#endif
