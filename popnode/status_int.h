/*
 * status_int.h - what the files of the operators' status (status.h)
 * share (private to them):
 *
 *   status.c          the figures about the node, the /status JSON
 *   status_peers.c    the link's peers collected, the `popctl peers` rows
 *   status_metrics.c  the Prometheus text for /metrics
 */
#ifndef POPNODE_STATUS_INT_H
#define POPNODE_STATUS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct link_peer_info;
struct node;

/* The protocols that have sessions (the management listener has none),
 * in the order /status and /metrics list them. */
#define STATUS_N_MAIL_PROTOS 5
extern const enum listen_proto status_mail_protos[STATUS_N_MAIL_PROTOS];

/* Seconds since the node started, never negative. */
int64_t status_uptime(const struct node *n);

/* Whether the peer's smoothed RTT is shown in the table and the metric:
 * only while the peer is up (status_peers.c). */
bool status_rtt_current(const struct link_peer_info *p);

#endif
