/*
 * transport_link.h - the transport over a link stream: how a session the
 * home POP resumes for a roaming client talks to it.  The bytes are the
 * client's, relayed by the POP that holds the client's connection (and
 * its TLS); this end sees plaintext inside the mutually authenticated link.
 */
#ifndef POPNODE_TRANSPORT_LINK_H
#define POPNODE_TRANSPORT_LINK_H

#include <stdbool.h>
#include "transport.h"

struct link_stream;

/* Take over s (the transport frees it).  client: the client's address as
 * "ip:port" or "[ip]:port" (shown in logs and status, used for per-IP
 * limits); client_tls: the client reached the front POP over TLS.
 * NULL on out of memory (s is then still the caller's). */
struct transport *transport_link_new(struct link_stream *s, const char *client, bool client_tls);

#endif
