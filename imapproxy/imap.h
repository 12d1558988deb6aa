/*
 * imap.h - IMAP4rev1 server session (RFC 3501 plus the extensions listed
 * in docs/imap.md) over a transport, serving the local store.
 *
 * The session code lives in imapproxy/imap_*.c; imap_session.h is their
 * private shared header.  This header is what the rest of popnode sees.
 */
#ifndef IMAPPROXY_IMAP_H
#define IMAPPROXY_IMAP_H

struct node;
struct transport;
struct listen_conf;
struct store;
struct store_user;

/* Take over t: greeting, then IMAP until LOGOUT/close.  lc says whether
 * plaintext authentication is allowed before TLS. */
void imap_session_start(struct node *n, struct transport *t, const struct listen_conf *lc);

/* Home side of a roaming session (tunnel.h): the front POP authenticated
 * u and relays the client over t.  Answer the client's login command
 * (tag) as a local login would, then serve as usual from st (n->store,
 * or the mirror store of a failed home, whose user record u is).
 * front_pop: the POP the client reached (for ID). */
void imap_session_resume(struct node *n, struct transport *t, const struct listen_conf *lc,
			 struct store *st, const struct store_user *u, const char *tag,
			 const char *front_pop);

/* Node-wide IMAP state: the registry of selected mailboxes and the store
 * change observer that tells concurrent sessions about each other's
 * changes and about deliveries.  imap_init() once after the store is
 * open and before any session starts (0, or -1 out of memory);
 * imap_fini() after every session is gone and before the store closes. */
int imap_init(struct node *n);
void imap_fini(struct node *n);
/* Tell the sessions about changes in st too (a mirror store served in
 * failover; the node's store is observed by imap_init).  Idempotent. */
void imap_observe_store(struct node *n, struct store *st);

#endif
