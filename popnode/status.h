/*
 * status.h - the node's state rendered for operators: one JSON document
 * (served by /status and `popctl status --json`), the Prometheus text
 * for /metrics, and the link's peers for `popctl peers`.  All append to
 * an evbuffer.
 *
 * The peer renderings take an array of struct link_peer_info (link.h),
 * so they can be tested without a live link; status_collect_peers fills
 * such an array from the running link.
 */
#ifndef POPNODE_STATUS_H
#define POPNODE_STATUS_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct evbuffer;
struct link_peer_info;
struct node;

void status_render_json(struct node *n, struct evbuffer *out);
void status_render_metrics(struct node *n, struct evbuffer *out);

/* The link's peers, in config order, into a new array (*peers_r, free it;
 * NULL when there are none).  n->link NULL counts as no peers.  The id
 * and addr pointers point into the link: use the array before the loop
 * runs again.  0, or -1 when out of memory. */
int status_collect_peers(struct node *n, struct link_peer_info **peers_r, size_t *n_r);

/* The control protocol's "peers" answer (docs/control-protocol.md): a
 * header line "PEER ADDR STATE RTT IN FAIL STREAMS SINCE LAST ERROR",
 * then one line per peer, fields separated by one TAB: RTT is the
 * smoothed RTT in ms with 2 decimals ("-" unknown or the peer not up,
 * as in popnode_link_rtt_seconds), IN yes/no, SINCE the
 * time in this state as "45s", "3m05s", "2h07m" or "4d03h" counted to
 * now (unix time), LAST ERROR "-" if none.  No field holds TAB or LF. */
void status_render_peers(struct evbuffer *out, const struct link_peer_info *p, size_t n,
			 int64_t now);

/* The "link" JSON object: {"node", "listen" ("host:port" or null),
 * "peers": [...]}, its first line not indented, nested lines indented
 * by indent spaces more.  No trailing newline. */
void status_render_link_json(struct evbuffer *out, const struct config *cfg,
			     const struct link_peer_info *p, size_t n, int indent);

/* The popnode_link_* families (absent when n is 0). */
void status_render_peers_metrics(struct evbuffer *out, const struct link_peer_info *p, size_t n);

#endif
