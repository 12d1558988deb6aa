/*
 * lmtp.h - LMTP ingress (RFC 2033) over a transport.
 */
#ifndef POPNODE_LMTP_H
#define POPNODE_LMTP_H

struct node;
struct transport;

/* Take over t: send the greeting and serve LMTP until QUIT/close. */
void lmtp_session_start(struct node *n, struct transport *t);

#endif
