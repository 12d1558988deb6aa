/*
 * transport_bev.h - transport over a libevent bufferevent: an accepted
 * TCP or Unix socket, plain, implicit TLS, or plain with STARTTLS.
 */
#ifndef POPNODE_TRANSPORT_BEV_H
#define POPNODE_TRANSPORT_BEV_H

#include <openssl/ssl.h>
#include <sys/socket.h>
#include "transport.h"

struct event_base;

/* Wrap an accepted fd.  ssl_ctx: NULL = no TLS ever; with implicit_tls the
 * handshake starts at once, otherwise starttls() is available.
 * Returns NULL on failure (fd closed). */
struct transport *transport_bev_new(struct event_base *base, int fd,
				    const struct sockaddr *sa, int salen,
				    SSL_CTX *ssl_ctx, bool implicit_tls);

#endif
