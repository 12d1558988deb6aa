/*
 * forward.h - mail for users homed at another POP, forwarded over the
 * link (POST /v1/deliver; the wire format is forward_wire.h and
 * docs/link-deliver.md).
 *
 * Front side (the POP the MTA reached): lmtp.c accepts RCPT for a user
 * homed elsewhere while that home is reachable, and after DATA calls
 * forward_start() once per home (and per FORWARD_RCPTS_MAX recipients).
 * The callback gives one reply per recipient: the home's own answer,
 * sent by the home only after its store commit is durable, or
 * "451 4.4.1" when the home could not be asked, did not answer in time,
 * reset the stream or answered nonsense.  So a 250 always means the
 * message is durable at the home.
 *
 * Home side: forward_init() registers the handler that receives the
 * message, checks each recipient (known, enabled, homed here), stores it
 * with the same per-recipient prefix and MIME structure a local LMTP
 * delivery writes, and answers once the commit is durable.
 */
#ifndef POPNODE_FORWARD_H
#define POPNODE_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "forward_wire.h"

struct node;
struct forward_req;

/* Seconds a forward may go without progress (body accepted by the home,
 * or its answer arriving) before it fails with 451 4.4.1 and counts as
 * a failure against the home's circuit breaker.  The home applies the
 * same limit to a body that stops arriving. */
#define FORWARD_TIMEOUT 120

struct forward_rcpt {
	const char *user;		/* user name (the directory's) */
	const char *addr;		/* the RCPT address as received */
};

/* What to answer the MTA for one recipient. */
struct forward_result {
	unsigned code;			/* 250, 4xx, 5xx */
	char enh[FORWARD_ENH_MAX];	/* "2.0.0", "4.4.1", ... */
	char text[FORWARD_TEXT_MAX + STORE_POP_MAX + 48];
	bool link_failed;		/* a 451 4.4.1 made here: no usable answer */
};

/* res[i] answers rcpts[i] of forward_start; valid during the call only.
 * The request is freed right after cb returns: forget it in cb, do not
 * forward_cancel() it. */
typedef void forward_cb(void *arg, const struct forward_result *res, size_t n);

/* Send the message to home for rcpts (1..FORWARD_RCPTS_MAX recipients,
 * distinct users, at most FORWARD_RCPT_BYTES_MAX header bytes by
 * forward_rcpt_hdr_bytes).  mail_from: the MAIL FROM address ("" for
 * <>); body: the message as LMTP stored it (dot-unstuffed, CRLF), which
 * must stay valid and unchanged until cb runs or forward_cancel();
 * internaldate: unix seconds.  The strings are copied.  cb is never
 * called from inside forward_start.  NULL (nothing started, cb never
 * called) when home cannot be asked now (not a peer, not connected,
 * breaker open, out of memory): answer with forward_unreachable(). */
struct forward_req *forward_start(struct node *n, const char *home, const char *mail_from,
				  const struct forward_rcpt *rcpts, size_t n_rcpts,
				  const char *body, size_t len, int64_t internaldate,
				  forward_cb *cb, void *arg);

/* The caller goes away first: the stream is reset, cb is never called.
 * The home may still commit the message (the MTA, told nothing, sends it
 * again: a duplicate at worst, never a loss).  Sets *r NULL; accepts
 * NULL. */
void forward_cancel(struct forward_req **r);

/* Wait at most seconds more for progress (node shutdown). */
void forward_hurry(struct forward_req *r, unsigned seconds);

/* The reply for a recipient whose home cannot be asked:
 * "451 4.4.1 home POP <home> unreachable, try later". */
void forward_unreachable(struct forward_result *r, const char *home);

/* Where mail for a user homed at home goes now: home if it can be asked,
 * else the first of its mirrors that can (failover.h; this POP's own id
 * when it is that mirror and holds a copy).  NULL: nowhere now (answer
 * 451 4.4.1).  forward_start() routes the same way. */
const char *forward_route(struct node *n, const char *home);

/* Register the home side (POST /v1/deliver) on n->link.  0, or -1. */
int forward_init(struct node *n);

#endif
