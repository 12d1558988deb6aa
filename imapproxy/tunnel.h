/*
 * tunnel.h - roaming sessions: an IMAP or POP3 client authenticated at
 * this POP whose home is another POP is carried there over the link
 * (docs/link.md, "session tunnel").
 *
 * Front side: the session that authenticated the client calls
 * tunnel_open() and waits; on TUNNEL_OK the tunnel owns the client's
 * transport from then on (the session lets go of it without freeing it,
 * then ends) and relays bytes both ways until either end closes.
 *
 * Home side: tunnel_init() registers the link handler that resumes the
 * session as authenticated (imap_session_resume, pop3_session_resume)
 * over a transport on the stream (transport_link.h).
 */
#ifndef IMAPPROXY_TUNNEL_H
#define IMAPPROXY_TUNNEL_H

#include "config.h"

struct node;
struct transport;
struct tunnel_req;

enum tunnel_result {
	TUNNEL_OK,		/* the tunnel holds the transport now */
	TUNNEL_UNAVAILABLE,	/* home unreachable, timed out or refused */
	TUNNEL_IN_USE,		/* POP3: the maildrop is locked at the home */
	TUNNEL_REFUSED,		/* the home refused (no such user, disabled, ...) */
	TUNNEL_LOCAL,		/* the home is down and this POP is the first
				 * reachable mirror: serve here from
				 * failover_store(n, home, true) */
};

typedef void tunnel_cb(enum tunnel_result r, void *arg);

/* Ask home to resume user's session.  imap_tag: the tag of the LOGIN or
 * AUTHENTICATE command (the home answers it), NULL for POP3.  If the home
 * cannot be reached or does not answer, the session goes to the first
 * reachable mirror in the home's published order (failover.h) instead,
 * which may be this POP (TUNNEL_LOCAL).  The transport must not be read
 * or written until cb.  NULL (nothing started, cb never called) when no
 * POP can be asked right now. */
struct tunnel_req *tunnel_open(struct node *n, struct transport *t, enum listen_proto proto,
			       const char *user, const char *home, const char *imap_tag,
			       tunnel_cb *cb, void *arg);
/* The session goes away first: cb is not called; t stays the caller's. */
void tunnel_cancel(struct tunnel_req **r);

/* Register the home side on n->link.  0, or -1. */
int tunnel_init(struct node *n);

#endif
