/*
 * metrics.h - counters and histograms for /metrics and /status.
 * All updates happen on the event loop thread (the store reports commit
 * latency there), so no atomics are needed.
 */
#ifndef POPNODE_METRICS_H
#define POPNODE_METRICS_H

#include <stdint.h>
#include "config.h"

struct evbuffer;

#define METRICS_COMMIT_BUCKETS 12

struct metrics {
	uint64_t deliveries;		/* recipients delivered (LMTP 250) */
	uint64_t delivery_bytes;	/* bytes of those */
	uint64_t delivery_failures;	/* recipients refused after DATA */
	uint64_t sessions_total[PROTO_COUNT];
	uint64_t sessions_active[PROTO_COUNT];
	uint64_t sessions_refused;	/* over max_sessions / per IP */
	uint64_t auth_success[PROTO_COUNT];
	uint64_t auth_failures[PROTO_COUNT];
	uint64_t pop3_retr_bytes;
	uint64_t pop3_deleted;
	/* roaming: sessions this POP carried to their home (front side) */
	uint64_t roaming_total;		/* tunnels opened */
	uint64_t roaming_active;
	uint64_t roaming_failed;	/* home unreachable, refused, timed out */
	uint64_t roaming_bytes_up;	/* client -> home */
	uint64_t roaming_bytes_down;	/* home -> client */
	/* sessions other POPs carried here (home side) */
	uint64_t tunnel_served_total;
	uint64_t tunnel_served_active;
	uint64_t tunnel_refused;	/* not homed here, hop limit, in use... */
	/* mail for users homed elsewhere (LMTP forwarding) */
	uint64_t forward_rcpts;		/* recipients forwarded and committed */
	uint64_t forward_failed;	/* recipients answered 451 4.4.1 */
	uint64_t forward_received;	/* recipients other POPs forwarded here */
	/* failover (docs/failover.md) */
	uint64_t failover_routed;	/* sessions/deliveries sent to a mirror, not the home */
	uint64_t failover_sessions;	/* sessions served here from a mirror store */
	uint64_t failover_rcpts;	/* recipients stored here in a mirror store */
	/* commit latency histogram, seconds */
	uint64_t commit_buckets[METRICS_COMMIT_BUCKETS]; /* cumulative on render */
	uint64_t commit_count;
	double commit_sum;
	uint64_t commit_ops;
};

extern const double metrics_commit_bounds[METRICS_COMMIT_BUCKETS];

void metrics_commit_observe(struct metrics *m, double seconds, unsigned ops);

#endif
