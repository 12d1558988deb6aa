/*
 * tunnel_private.h - what tunnel.c (front and home) and tunnel_relay.c
 * (passing a tunnel on) share.
 */
#ifndef IMAPPROXY_TUNNEL_PRIVATE_H
#define IMAPPROXY_TUNNEL_PRIVATE_H

struct node;
struct link_stream;
struct link_request;

#define TUNNEL_PATH "/v1/tunnel"

/* s asks this POP to resume user's session, but the user's home is
 * home: open the same request there with hop count hops and splice the
 * two streams.  0: the relay owns s now; -1: home not reachable from
 * here (s is still the caller's, to refuse). */
int tunnel_relay(struct node *n, struct link_stream *s, const struct link_request *req,
		 const char *user, const char *home, unsigned hops);

#endif
