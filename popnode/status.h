/*
 * status.h - the node's state rendered for operators: one JSON document
 * (served by /status and `popctl status --json`) and the Prometheus text
 * for /metrics.  Both append to an evbuffer.
 */
#ifndef POPNODE_STATUS_H
#define POPNODE_STATUS_H

struct evbuffer;
struct node;

void status_render_json(struct node *n, struct evbuffer *out);
void status_render_metrics(struct node *n, struct evbuffer *out);

#endif
