/*
 * listener.h - accept connections for one `listen` line: session limits
 * (all, per IP), the transport (plain, TLS, STARTTLS-capable), session
 * metrics, and hand-off to the protocol's session.
 */
#ifndef POPNODE_LISTENER_H
#define POPNODE_LISTENER_H

#include <stddef.h>

struct node;
struct listen_conf;
struct listener;

/* Bind and listen (IPv4/IPv6 TCP or a Unix socket, mode 0666 so a local
 * MTA can connect: guard it with the directory's permissions).
 * NULL with err set on failure.  lc must outlive the listener. */
struct listener *listener_start(struct node *n, const struct listen_conf *lc, char *err, size_t errsz);
/* Stop accepting (open sessions continue).  Sets *l NULL; accepts NULL. */
void listener_free(struct listener **l);
/* Bind a socket for lc; returns fd or -1 with err set (used by http too). */
int listener_bind(const struct listen_conf *lc, char *err, size_t errsz);
/* "127.0.0.1:110", "[::1]:110" or "unix:/path" */
const char *listener_addr_str(const struct listen_conf *lc, char *buf, size_t bufsz);

#endif
