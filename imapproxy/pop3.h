/*
 * pop3.h - POP3 server session (RFC 1939, 2449, 2595, 5034) over a
 * transport, serving the local store.
 */
#ifndef IMAPPROXY_POP3_H
#define IMAPPROXY_POP3_H

struct node;
struct transport;
struct listen_conf;
struct store;
struct store_user;

/* Take over t: greeting, then POP3 until QUIT/close.  lc says whether
 * plaintext auth is allowed before TLS. */
void pop3_session_start(struct node *n, struct transport *t, const struct listen_conf *lc);

/* Home side of a roaming session (tunnel.h): the front POP authenticated
 * u and relays the client over t.  Open the maildrop and answer the
 * client's PASS/AUTH as a local login would, then serve as usual from st
 * (n->store, or the mirror store of a failed home, whose record u is).
 * front_pop: the POP the client reached (for /status). */
void pop3_session_resume(struct node *n, struct transport *t, const struct listen_conf *lc,
			 struct store *st, const struct store_user *u, const char *front_pop);

#endif
