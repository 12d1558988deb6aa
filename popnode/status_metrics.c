/*
 * status_metrics.c - the node's state in Prometheus text exposition
 * format 0.0.4 for /metrics (status_render_metrics): every family has
 * # HELP and # TYPE, counters end in _total, the commit histogram has
 * cumulative _bucket{le} lines up to +Inf, then _sum and _count.  The
 * link's peers are the popnode_link_* families
 * (status_render_peers_metrics).
 *
 * Like the JSON (status.c), it reads struct node on the loop thread and
 * appends to an evbuffer.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "link.h"
#include "metrics.h"
#include "node.h"
#include "repl_ack.h"
#include "replicator.h"
#include "status.h"
#include "status_int.h"
#include "store.h"

/* The protocols that authenticate users. */
static const enum listen_proto auth_protos[] = {
	PROTO_POP3, PROTO_POP3S, PROTO_IMAP, PROTO_IMAPS,
};
#define N_AUTH_PROTOS (sizeof(auth_protos) / sizeof(auth_protos[0]))

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct evbuffer *out, const char *name, uint64_t v)
{
	evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, v);
}

static void sample_proto(struct evbuffer *out, const char *name, enum listen_proto p, uint64_t v)
{
	evbuffer_add_printf(out, "%s{proto=\"%s\"} %" PRIu64 "\n", name, config_proto_name(p), v);
}

/* A label value: backslash, double quote and newline escaped. */
static void label_value(struct evbuffer *out, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(out, "\\%c", *s);
		else if (*s == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, s, 1);
	}
}

static void per_proto(struct evbuffer *out, const char *name, const char *type, const char *help,
		      const enum listen_proto *protos, size_t n, const uint64_t *values)
{
	family(out, name, type, help);
	for (size_t i = 0; i < n; i++)
		sample_proto(out, name, protos[i], values[protos[i]]);
}

/* name{protocol="..",proto=".."} v */
static void bird_sample(struct evbuffer *out, const char *name, const struct node_bird_proto *bp,
			uint64_t v)
{
	evbuffer_add_printf(out, "%s{protocol=\"", name);
	label_value(out, bp->name);
	evbuffer_add_printf(out, "\",proto=\"");
	label_value(out, bp->proto);
	evbuffer_add_printf(out, "\"} %" PRIu64 "\n", v);
}

static void commit_histogram(struct evbuffer *out, const struct metrics *m)
{
	const char *name = "popnode_commit_duration_seconds";
	uint64_t cum = 0;

	family(out, name, "histogram",
	       "Duration of one LMDB group commit, fsync included.");
	for (unsigned i = 0; i < METRICS_COMMIT_BUCKETS; i++) {
		cum += m->commit_buckets[i];
		evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
				    metrics_commit_bounds[i], cum);
	}
	/* commit_count includes observations above the last bound; never let
	 * +Inf be below the last finite bucket. */
	evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name,
			    m->commit_count > cum ? m->commit_count : cum);
	evbuffer_add_printf(out, "%s_sum %.9g\n", name, m->commit_sum);
	evbuffer_add_printf(out, "%s_count %" PRIu64 "\n", name,
			    m->commit_count > cum ? m->commit_count : cum);
}

/* name{peer="id"[,key="value"]} */
static void peer_series(struct evbuffer *out, const char *name, const char *peer,
			const char *key, const char *value)
{
	evbuffer_add_printf(out, "%s{peer=\"", name);
	label_value(out, peer != NULL ? peer : "");
	if (key != NULL) {
		evbuffer_add_printf(out, "\",%s=\"", key);
		label_value(out, value);
	}
	evbuffer_add(out, "\"} ", 3);
}

enum peer_value {
	PV_UP, PV_BREAKER, PV_FAILURES, PV_CONNECTS, PV_DISCONNECTS, PV_STREAMS_ACTIVE,
	PV_STREAMS, PV_REFUSED,
};

static uint64_t peer_value(const struct link_peer_info *p, enum peer_value v)
{
	switch (v) {
	case PV_UP: return p->state == LINK_PEER_UP;
	case PV_BREAKER: return p->state == LINK_PEER_OPEN;
	case PV_FAILURES: return p->failures;
	case PV_CONNECTS: return p->connects;
	case PV_DISCONNECTS: return p->disconnects;
	case PV_STREAMS_ACTIVE: return p->streams_active;
	case PV_STREAMS: return p->streams_opened;
	case PV_REFUSED: return p->streams_refused;
	}
	return 0;
}

static const struct {
	const char *name, *type, *help;
	enum peer_value v;
} peer_families[] = {
	{ "popnode_link_peer_up", "gauge",
	  "1 while this node's connection to the peer is up.", PV_UP },
	{ "popnode_link_breaker_open", "gauge",
	  "1 while the peer's circuit breaker is open (requests fail at once).", PV_BREAKER },
	{ "popnode_link_failures", "gauge",
	  "Link failures with the peer within the breaker window.", PV_FAILURES },
	{ "popnode_link_connects_total", "counter",
	  "Times this node's connection to the peer came up.", PV_CONNECTS },
	{ "popnode_link_disconnects_total", "counter",
	  "Times this node's connection to the peer was lost after being up.", PV_DISCONNECTS },
	{ "popnode_link_streams_active", "gauge",
	  "Requests to the peer open now.", PV_STREAMS_ACTIVE },
	{ "popnode_link_streams_total", "counter",
	  "Requests opened to the peer.", PV_STREAMS },
	{ "popnode_link_streams_refused_total", "counter",
	  "Requests to the peer refused at once: link down, breaker open, no stream free.",
	  PV_REFUSED },
};

static const enum link_peer_state all_states[] = {
	LINK_PEER_UP, LINK_PEER_CONNECTING, LINK_PEER_DOWN, LINK_PEER_OPEN,
};

void status_render_peers_metrics(struct evbuffer *out, const struct link_peer_info *p, size_t n)
{
	bool any_rtt = false;

	if (n == 0)
		return;
	for (size_t f = 0; f < sizeof(peer_families) / sizeof(peer_families[0]); f++) {
		family(out, peer_families[f].name, peer_families[f].type, peer_families[f].help);
		for (size_t i = 0; i < n; i++) {
			peer_series(out, peer_families[f].name, p[i].id, NULL, NULL);
			evbuffer_add_printf(out, "%" PRIu64 "\n", peer_value(&p[i], peer_families[f].v));
		}
		if (peer_families[f].v != PV_UP)
			continue;
		/* right after peer_up: the state as a label */
		family(out, "popnode_link_peer_state", "gauge",
		       "1 for the peer's current link state (up, connecting, down, breaker-open).");
		for (size_t i = 0; i < n; i++) {
			for (size_t s = 0; s < sizeof(all_states) / sizeof(all_states[0]); s++) {
				peer_series(out, "popnode_link_peer_state", p[i].id, "state",
					    link_peer_state_name(all_states[s]));
				evbuffer_add_printf(out, "%d\n", p[i].state == all_states[s]);
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		any_rtt |= status_rtt_current(&p[i]);
	if (any_rtt) {
		family(out, "popnode_link_rtt_seconds", "gauge",
		       "Smoothed HTTP/2 PING round trip time to the peer.");
		for (size_t i = 0; i < n; i++) {
			if (!status_rtt_current(&p[i]))
				continue;
			peer_series(out, "popnode_link_rtt_seconds", p[i].id, NULL, NULL);
			evbuffer_add_printf(out, "%" PRId64 ".%06d\n", p[i].rtt_avg_us / 1000000,
					    (int)(p[i].rtt_avg_us % 1000000));
		}
	}
	family(out, "popnode_link_bytes_total", "counter",
	       "HTTP/2 bytes exchanged with the peer, both connections, by direction.");
	for (size_t i = 0; i < n; i++) {
		peer_series(out, "popnode_link_bytes_total", p[i].id, "direction", "in");
		evbuffer_add_printf(out, "%" PRIu64 "\n", p[i].bytes_in);
		peer_series(out, "popnode_link_bytes_total", p[i].id, "direction", "out");
		evbuffer_add_printf(out, "%" PRIu64 "\n", p[i].bytes_out);
	}
}

static void labelled(struct evbuffer *out, const char *name, const char *key, const char *value,
		     uint64_t v)
{
	evbuffer_add_printf(out, "%s{%s=\"%s\"} %" PRIu64 "\n", name, key, value, v);
}

static void roaming_metrics(struct evbuffer *out, const struct metrics *m)
{
	family(out, "popnode_roaming_sessions_total", "counter",
	       "Sessions of users homed elsewhere carried to their home POP (tunnels opened).");
	sample(out, "popnode_roaming_sessions_total", m->roaming_total);
	family(out, "popnode_roaming_sessions_active", "gauge",
	       "Tunnels to home POPs open now.");
	sample(out, "popnode_roaming_sessions_active", m->roaming_active);
	family(out, "popnode_roaming_failures_total", "counter",
	       "Sessions that could not be carried home: unreachable, refused, timed out.");
	sample(out, "popnode_roaming_failures_total", m->roaming_failed);
	family(out, "popnode_roaming_bytes_total", "counter",
	       "Bytes carried through tunnels to home POPs (up: client to home).");
	labelled(out, "popnode_roaming_bytes_total", "direction", "up", m->roaming_bytes_up);
	labelled(out, "popnode_roaming_bytes_total", "direction", "down", m->roaming_bytes_down);
	family(out, "popnode_tunnel_sessions_served_total", "counter",
	       "Sessions other POPs carried here for users homed here.");
	sample(out, "popnode_tunnel_sessions_served_total", m->tunnel_served_total);
	family(out, "popnode_tunnel_sessions_served_active", "gauge",
	       "Sessions other POPs carry here now.");
	sample(out, "popnode_tunnel_sessions_served_active", m->tunnel_served_active);
	family(out, "popnode_failover_routed_total", "counter",
	       "Sessions and deliveries sent to a mirror because the user's home was down.");
	sample(out, "popnode_failover_routed_total", m->failover_routed);
	family(out, "popnode_failover_sessions_total", "counter",
	       "Sessions served here from a mirror store (the user's home was down).");
	sample(out, "popnode_failover_sessions_total", m->failover_sessions);
	family(out, "popnode_failover_rcpts_total", "counter",
	       "Recipients stored here in a mirror store (the user's home was down).");
	sample(out, "popnode_failover_rcpts_total", m->failover_rcpts);
	family(out, "popnode_tunnel_refused_total", "counter",
	       "Tunnels from other POPs refused: user not homed here, hop limit, in use.");
	sample(out, "popnode_tunnel_refused_total", m->tunnel_refused);
	family(out, "popnode_forward_recipients_total", "counter",
	       "LMTP recipients homed elsewhere: forwarded and committed (delivered), "
	       "answered 451 (failed), or forwarded here by other POPs (received).");
	labelled(out, "popnode_forward_recipients_total", "result", "delivered", m->forward_rcpts);
	labelled(out, "popnode_forward_recipients_total", "result", "failed", m->forward_failed);
	labelled(out, "popnode_forward_recipients_total", "result", "received",
		 m->forward_received);
}

void status_render_metrics(struct node *n, struct evbuffer *out)
{
	const struct metrics *m = &n->metrics;
	struct link_peer_info *peers;
	size_t n_peers;
	struct store_stats ss;

	memset(&ss, 0, sizeof(ss));
	if (n->store != NULL)
		store_stats(n->store, &ss);

	family(out, "popnode_deliveries_total", "counter",
	       "Recipients delivered by LMTP (answered 250 after DATA).");
	sample(out, "popnode_deliveries_total", m->deliveries);
	family(out, "popnode_delivery_bytes_total", "counter",
	       "Message bytes delivered, counted once per recipient.");
	sample(out, "popnode_delivery_bytes_total", m->delivery_bytes);
	family(out, "popnode_delivery_failures_total", "counter",
	       "Recipients refused after DATA (quota, disabled, store error).");
	sample(out, "popnode_delivery_failures_total", m->delivery_failures);

	per_proto(out, "popnode_sessions_active", "gauge", "Sessions open now, by protocol.",
		  status_mail_protos, STATUS_N_MAIL_PROTOS, m->sessions_active);
	per_proto(out, "popnode_sessions_total", "counter", "Sessions accepted, by protocol.",
		  status_mail_protos, STATUS_N_MAIL_PROTOS, m->sessions_total);
	family(out, "popnode_sessions_refused_total", "counter",
	       "Connections refused over max_sessions or max_sessions_per_ip.");
	sample(out, "popnode_sessions_refused_total", m->sessions_refused);

	per_proto(out, "popnode_auth_success_total", "counter", "Successful logins, by protocol.",
		  auth_protos, N_AUTH_PROTOS, m->auth_success);
	per_proto(out, "popnode_auth_failures_total", "counter",
		  "Failed or refused logins, by protocol.", auth_protos, N_AUTH_PROTOS,
		  m->auth_failures);

	family(out, "popnode_pop3_retr_bytes_total", "counter", "Bytes sent by POP3 RETR and TOP.");
	sample(out, "popnode_pop3_retr_bytes_total", m->pop3_retr_bytes);
	family(out, "popnode_pop3_deleted_total", "counter",
	       "Messages expunged by POP3 DELE at QUIT.");
	sample(out, "popnode_pop3_deleted_total", m->pop3_deleted);

	if (n->store != NULL) {
		family(out, "popnode_store_map_bytes", "gauge", "Configured LMDB map size.");
		sample(out, "popnode_store_map_bytes", ss.map_size);
		family(out, "popnode_store_used_bytes", "gauge", "LMDB pages in use, in bytes.");
		sample(out, "popnode_store_used_bytes", ss.used_bytes);
		family(out, "popnode_store_users", "gauge", "Users in the directory.");
		sample(out, "popnode_store_users", ss.users);
		family(out, "popnode_store_bodies", "gauge",
		       "Distinct message bodies stored (each stored once).");
		sample(out, "popnode_store_bodies", ss.bodies);
		family(out, "popnode_store_pending_ops", "gauge",
		       "Store writes queued or being committed now.");
		sample(out, "popnode_store_pending_ops", ss.pending);
		family(out, "popnode_store_commit_failures_total", "counter",
		       "Group commits that failed (nothing of them was acknowledged).");
		sample(out, "popnode_store_commit_failures_total", ss.commit_failures);
		family(out, "popnode_store_writable", "gauge",
		       "0 while the latest group commit failed.");
		sample(out, "popnode_store_writable", ss.last_commit_failed ? 0 : 1);
	}

	commit_histogram(out, m);
	family(out, "popnode_commit_ops_total", "counter",
	       "Store operations carried by group commits.");
	sample(out, "popnode_commit_ops_total", m->commit_ops);

	roaming_metrics(out, m);
	if (n->cfg->n_anycast > 0) {
		family(out, "popnode_anycast_announced", "gauge",
		       "1 while the supervisor has the service addresses announced.");
		sample(out, "popnode_anycast_announced", n->anycast_announced ? 1 : 0);
		family(out, "popnode_bird_up", "gauge",
		       "1 while BIRD's control socket answers the supervisor.");
		sample(out, "popnode_bird_up", n->bird_up ? 1 : 0);
		if (n->n_bird_protos > 0) {
			family(out, "popnode_bird_protocol_up", "gauge",
			       "1 while the BIRD protocol is up, by protocol.");
			for (size_t i = 0; i < n->n_bird_protos; i++)
				bird_sample(out, "popnode_bird_protocol_up", &n->bird_protos[i],
					    strcmp(n->bird_protos[i].state, "up") == 0);
			family(out, "popnode_bird_routes_exported", "gauge",
			       "Routes BIRD exports to the BGP neighbour, by protocol.");
			for (size_t i = 0; i < n->n_bird_protos; i++)
				if (n->bird_protos[i].exported >= 0)
					bird_sample(out, "popnode_bird_routes_exported",
						    &n->bird_protos[i],
						    (uint64_t)n->bird_protos[i].exported);
		}
	}
	family(out, "popnode_drained", "gauge", "1 while the POP is drained (popctl drain).");
	sample(out, "popnode_drained", n->drained ? 1 : 0);
	/* Out of memory: leave the peer families out rather than the rest. */
	if (status_collect_peers(n, &peers, &n_peers) == 0) {
		status_render_peers_metrics(out, peers, n_peers);
		free(peers);
	}

	replicator_render_metrics(n, out);
	repl_ack_render_metrics(n, out);

	family(out, "popnode_uptime_seconds", "gauge", "Seconds since the node started.");
	evbuffer_add_printf(out, "popnode_uptime_seconds %" PRId64 "\n", status_uptime(n));
	family(out, "popnode_build_info", "gauge", "Always 1; the version is a label.");
	evbuffer_add_printf(out, "popnode_build_info{version=\"");
	label_value(out, POPNODE_VERSION);
	evbuffer_add_printf(out, "\",node_id=\"");
	label_value(out, n->cfg->node_id);
	evbuffer_add_printf(out, "\"} 1\n");
}
