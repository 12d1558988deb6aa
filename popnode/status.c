/*
 * status.c - the figures about the node for operators, and the /status
 * JSON document built from them (also `popctl status --json`); field
 * list in docs/metrics.md.  The Prometheus text for /metrics is
 * status_metrics.c; the link's peers (collecting them from the link,
 * the `popctl peers` table) status_peers.c; what they share,
 * status_int.h.
 *
 * All three read struct node (counters in n->metrics, the store's own numbers
 * from store_stats, the link's from link_peer_foreach) on the loop thread
 * and append to an evbuffer; they never fail halfway in a way that
 * matters (an evbuffer append only fails when memory is gone, and then
 * the caller's reply is short).
 *
 * The JSON has the link's peers twice: in "link.peers" and, for tooling
 * written against 0.1 where it was a placeholder, in the top-level
 * "peers".
 *
 * The JSON keys "anycast" and "replication" are always there (empty
 * when there is nothing to say), so NOC tooling can rely on the
 * document's shape; "replication" (this POP's mirrors) and
 * "replication_origins" (the POPs mirrored here) come from
 * replicator/repl_status.c, "replication_ack" (replication_ack = mirror:
 * its state and waits) from replicator/repl_ack.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "config.h"
#include "link.h"
#include "node.h"
#include "repl_ack.h"
#include "replicator.h"
#include "status.h"
#include "status_int.h"
#include "store.h"

/* The protocols that have sessions (the management listener has none). */
const enum listen_proto status_mail_protos[] = {
	PROTO_LMTP, PROTO_POP3, PROTO_POP3S, PROTO_IMAP, PROTO_IMAPS,
};
_Static_assert(sizeof(status_mail_protos) / sizeof(status_mail_protos[0]) ==
	       STATUS_N_MAIL_PROTOS, "STATUS_N_MAIL_PROTOS counts status_mail_protos");

int64_t status_uptime(const struct node *n)
{
	int64_t up = (int64_t)time(NULL) - n->started;

	return up > 0 ? up : 0;
}

static const char *tls_name(enum listen_tls t)
{
	switch (t) {
	case LTLS_NONE: return "none";
	case LTLS_STARTTLS: return "starttls";
	case LTLS_IMPLICIT: return "implicit";
	}
	return "unknown";
}

/* Length of the valid UTF-8 sequence at s (at most len bytes), 0 if the
 * bytes there are not one (overlong forms and surrogates included). */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* A JSON string literal: quotes, backslash and control bytes escaped,
 * bytes that are not UTF-8 replaced by U+FFFD. */
static void json_str(struct evbuffer *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s);
	size_t i = 0;

	evbuffer_add(out, "\"", 1);
	while (i < len) {
		size_t run = i;
		size_t n;

		/* copy the longest run that needs no escaping at once */
		while (run < len && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' &&
		       p[run] != '\\')
			run++;
		if (run > i) {
			evbuffer_add(out, p + i, run - i);
			i = run;
			continue;
		}
		switch (p[i]) {
		case '"': evbuffer_add(out, "\\\"", 2); i++; continue;
		case '\\': evbuffer_add(out, "\\\\", 2); i++; continue;
		case '\n': evbuffer_add(out, "\\n", 2); i++; continue;
		case '\r': evbuffer_add(out, "\\r", 2); i++; continue;
		case '\t': evbuffer_add(out, "\\t", 2); i++; continue;
		default: break;
		}
		if (p[i] < 0x20) {
			evbuffer_add_printf(out, "\\u%04x", p[i]);
			i++;
			continue;
		}
		n = utf8_seq(p + i, len - i);
		if (n == 0) {
			evbuffer_add(out, "\\ufffd", 6);
			i++;
		} else {
			evbuffer_add(out, p + i, n);
			i += n;
		}
	}
	evbuffer_add(out, "\"", 1);
}

static void listen_address(const struct listen_conf *lc, char *buf, size_t sz)
{
	if (lc->is_unix)
		snprintf(buf, sz, "unix:%s", lc->path);
	else if (strchr(lc->host, ':') != NULL)
		snprintf(buf, sz, "[%s]:%u", lc->host, (unsigned)lc->port);
	else
		snprintf(buf, sz, "%s:%u", lc->host, (unsigned)lc->port);
}

/* Microseconds as a decimal number of milliseconds ("1.234"), exact. */
static void add_us_as_ms(struct evbuffer *out, int64_t us)
{
	evbuffer_add_printf(out, "%" PRId64 ".%03d", us / 1000, (int)(us % 1000));
}

static void peers_json_array(struct evbuffer *out, const struct link_peer_info *p, size_t n,
			     int indent)
{
	evbuffer_add_printf(out, "[");
	for (size_t i = 0; i < n; i++) {
		const struct link_peer_info *pi = &p[i];

		evbuffer_add_printf(out, "%s\n%*s{\"id\": ", i > 0 ? "," : "", indent + 2, "");
		json_str(out, pi->id != NULL ? pi->id : "");
		evbuffer_add_printf(out, ", \"addr\": ");
		json_str(out, pi->addr != NULL ? pi->addr : "");
		evbuffer_add_printf(out, ", \"state\": ");
		json_str(out, link_peer_state_name(pi->state));
		evbuffer_add_printf(out, ", \"inbound\": %s, \"rtt_ms\": ",
				    pi->inbound ? "true" : "false");
		if (pi->rtt_us < 0)
			evbuffer_add_printf(out, "null");
		else
			add_us_as_ms(out, pi->rtt_us);
		evbuffer_add_printf(out, ", \"rtt_avg_ms\": ");
		if (pi->rtt_avg_us < 0)
			evbuffer_add_printf(out, "null");
		else
			add_us_as_ms(out, pi->rtt_avg_us);
		evbuffer_add_printf(out,
				    ", \"failures\": %u, \"connects\": %" PRIu64
				    ", \"disconnects\": %" PRIu64 ", \"streams_active\": %u"
				    ", \"streams_opened\": %" PRIu64 ", \"streams_refused\": %" PRIu64
				    ", \"bytes_in\": %" PRIu64 ", \"bytes_out\": %" PRIu64
				    ", \"dir_lseq\": %" PRIu64
				    ", \"since\": %" PRId64 ", \"last_error\": ",
				    pi->failures, pi->connects, pi->disconnects, pi->streams_active,
				    pi->streams_opened, pi->streams_refused, pi->bytes_in, pi->bytes_out,
				    pi->dir_lseq, pi->since);
		if (pi->last_error[0] == '\0') {
			evbuffer_add_printf(out, "null}");
		} else {
			json_str(out, pi->last_error);
			evbuffer_add_printf(out, "}");
		}
	}
	if (n > 0)
		evbuffer_add_printf(out, "\n%*s", indent, "");
	evbuffer_add_printf(out, "]");
}

void status_render_link_json(struct evbuffer *out, const struct config *cfg,
			     const struct link_peer_info *p, size_t n, int indent)
{
	char addr[96];

	evbuffer_add_printf(out, "{\n%*s\"node\": ", indent + 2, "");
	json_str(out, cfg->node_id);
	evbuffer_add_printf(out, ",\n%*s\"listen\": ", indent + 2, "");
	if (cfg->link_listen_set) {
		snprintf(addr, sizeof(addr), strchr(cfg->link_host, ':') != NULL ? "[%s]:%u"
			 : "%s:%u", cfg->link_host, (unsigned)cfg->link_port);
		json_str(out, addr);
	} else {
		evbuffer_add_printf(out, "null");
	}
	evbuffer_add_printf(out, ",\n%*s\"peers\": ", indent + 2, "");
	peers_json_array(out, p, n, indent + 2);
	evbuffer_add_printf(out, "\n%*s}", indent, "");
}

/* "session_list": who is connected, from where, through which POPs. */
#define STATUS_SESSIONS_MAX 1000

static void sessions_json(struct evbuffer *out, const struct node *n)
{
	const struct node_session *ns;
	int64_t now = time(NULL);
	size_t k = 0;

	evbuffer_add_printf(out, "  \"session_list\": [");
	TAILQ_FOREACH(ns, &n->sessions, entry) {
		if (k == STATUS_SESSIONS_MAX)
			break;
		evbuffer_add_printf(out, "%s\n    {\"proto\": ", k > 0 ? "," : "");
		json_str(out, config_proto_name(ns->proto));
		evbuffer_add_printf(out, ", \"peer\": ");
		json_str(out, ns->peer);
		evbuffer_add_printf(out, ", \"user\": ");
		json_str(out, ns->user);
		evbuffer_add_printf(out, ", \"pop\": ");
		json_str(out, ns->reached);
		evbuffer_add_printf(out, ", \"mailbox_pop\": ");
		json_str(out, ns->mailbox_pop);
		evbuffer_add_printf(out, ", \"seconds\": %" PRId64 "}", now - ns->started);
		k++;
	}
	evbuffer_add_printf(out, "%s],\n  \"session_list_truncated\": %s,\n", k > 0 ? "\n  " : "",
			    k < n->n_sessions ? "true" : "false");
}

/* "anycast": what the supervisor last said (heartbeat.h). */
static void anycast_json(struct evbuffer *out, const struct node *n)
{
	const struct config *c = n->cfg;

	evbuffer_add_printf(out, "  \"anycast\": {\"configured\": %s, \"interface\": ",
			    c->n_anycast > 0 ? "true" : "false");
	json_str(out, c->anycast_interface);
	evbuffer_add_printf(out, ", \"prefixes\": [");
	for (size_t i = 0; i < c->n_anycast; i++) {
		if (i > 0)
			evbuffer_add_printf(out, ", ");
		json_str(out, c->anycast[i].text);
	}
	evbuffer_add_printf(out, "], \"supervised\": %s, \"state\": ",
			    n->anycast_supervised ? "true" : "false");
	json_str(out, c->n_anycast == 0 ? "not-configured"
		 : !n->anycast_known ? "unknown"
		 : n->anycast_announced ? "announced" : "withdrawn");
	evbuffer_add_printf(out, ", \"bird_up\": %s, \"reason\": ",
			    n->anycast_known && n->bird_up ? "true" : "false");
	json_str(out, n->anycast_reason);
	evbuffer_add_printf(out, ", \"failing\": ");
	json_str(out, n->anycast_checks);
	evbuffer_add_printf(out, ", \"drained\": %s, \"bird_protocols\": [",
			    n->drained ? "true" : "false");
	for (size_t i = 0; i < n->n_bird_protos; i++) {
		const struct node_bird_proto *bp = &n->bird_protos[i];

		evbuffer_add_printf(out, "%s{\"name\": ", i > 0 ? ", " : "");
		json_str(out, bp->name);
		evbuffer_add_printf(out, ", \"proto\": ");
		json_str(out, bp->proto);
		evbuffer_add_printf(out, ", \"state\": ");
		json_str(out, bp->state);
		evbuffer_add_printf(out, ", \"info\": ");
		json_str(out, bp->info);
		if (bp->exported >= 0)
			evbuffer_add_printf(out, ", \"routes_exported\": %" PRId64 "}", bp->exported);
		else
			evbuffer_add_printf(out, ", \"routes_exported\": null}");
	}
	evbuffer_add_printf(out, "]},\n");
}

static void roaming_json(struct evbuffer *out, const struct metrics *m)
{
	evbuffer_add_printf(out,
			    "  \"roaming\": {\n"
			    "    \"front\": {\"total\": %" PRIu64 ", \"active\": %" PRIu64
			    ", \"failed\": %" PRIu64 ", \"bytes_up\": %" PRIu64
			    ", \"bytes_down\": %" PRIu64 "},\n"
			    "    \"home\": {\"served_total\": %" PRIu64 ", \"served_active\": %" PRIu64
			    ", \"refused\": %" PRIu64 "},\n"
			    "    \"forward\": {\"rcpts\": %" PRIu64 ", \"failed\": %" PRIu64
			    ", \"received\": %" PRIu64 "},\n"
			    "    \"failover\": {\"routed_to_mirror\": %" PRIu64
			    ", \"sessions_served\": %" PRIu64 ", \"rcpts_stored\": %" PRIu64 "}\n"
			    "  },\n",
			    m->roaming_total, m->roaming_active, m->roaming_failed,
			    m->roaming_bytes_up, m->roaming_bytes_down, m->tunnel_served_total,
			    m->tunnel_served_active, m->tunnel_refused, m->forward_rcpts,
			    m->forward_failed, m->forward_received, m->failover_routed,
			    m->failover_sessions, m->failover_rcpts);
}

/* ---- /status ------------------------------------------------------------ */

void status_render_json(struct node *n, struct evbuffer *out)
{
	const struct metrics *m = &n->metrics;
	struct store_stats ss;
	uint64_t active = 0;
	uint64_t auth_failures = 0;
	char addr[CONFIG_PATH_MAX + 16];
	struct link_peer_info *peers;
	size_t n_peers;

	evbuffer_add_printf(out, "{\n  \"node_id\": ");
	json_str(out, n->cfg->node_id);
	evbuffer_add_printf(out, ",\n  \"version\": ");
	json_str(out, POPNODE_VERSION);
	evbuffer_add_printf(out,
			    ",\n  \"uptime_seconds\": %" PRId64 ",\n  \"started\": %" PRId64
			    ",\n  \"dev_mode\": %s,\n  \"stopping\": %s,\n  \"drained\": %s"
			    ",\n  \"sessions\": {",
			    status_uptime(n), n->started, n->cfg->dev_mode ? "true" : "false",
			    n->stopping ? "true" : "false", n->drained ? "true" : "false");
	for (size_t i = 0; i < STATUS_N_MAIL_PROTOS; i++) {
		enum listen_proto p = status_mail_protos[i];

		evbuffer_add_printf(out, "%s\n    ", i > 0 ? "," : "");
		json_str(out, config_proto_name(p));
		evbuffer_add_printf(out, ": %" PRIu64, m->sessions_active[p]);
		active += m->sessions_active[p];
	}
	for (size_t i = 0; i < PROTO_COUNT; i++)
		auth_failures += m->auth_failures[i];
	evbuffer_add_printf(out,
			    ",\n    \"total\": %" PRIu64 "\n  },\n"
			    "  \"sessions_refused\": %" PRIu64 ",\n"
			    "  \"deliveries\": %" PRIu64 ",\n"
			    "  \"delivery_bytes\": %" PRIu64 ",\n"
			    "  \"delivery_failures\": %" PRIu64 ",\n"
			    "  \"auth_failures\": %" PRIu64 ",\n",
			    active, m->sessions_refused, m->deliveries, m->delivery_bytes,
			    m->delivery_failures, auth_failures);
	if (n->store != NULL) {
		store_stats(n->store, &ss);
		evbuffer_add_printf(out,
				    "  \"store\": {\n"
				    "    \"map_size\": %" PRIu64 ",\n"
				    "    \"used_bytes\": %" PRIu64 ",\n"
				    "    \"users\": %" PRIu64 ",\n"
				    "    \"bodies\": %" PRIu64 ",\n"
				    "    \"commits\": %" PRIu64 ",\n"
				    "    \"ops\": %" PRIu64 ",\n"
				    "    \"pending\": %u,\n"
				    "    \"commit_failures\": %" PRIu64 ",\n"
				    "    \"writable\": %s\n  },\n",
				    ss.map_size, ss.used_bytes, ss.users, ss.bodies, ss.commits,
				    ss.ops, ss.pending, ss.commit_failures,
				    ss.last_commit_failed ? "false" : "true");
	} else {
		evbuffer_add_printf(out, "  \"store\": null,\n");
	}
	evbuffer_add_printf(out, "  \"listeners\": [");
	for (size_t i = 0; i < n->cfg->n_listens; i++) {
		const struct listen_conf *lc = &n->cfg->listens[i];

		listen_address(lc, addr, sizeof(addr));
		evbuffer_add_printf(out, "%s\n    {\"proto\": ", i > 0 ? "," : "");
		json_str(out, config_proto_name(lc->proto));
		evbuffer_add_printf(out, ", \"address\": ");
		json_str(out, addr);
		evbuffer_add_printf(out, ", \"tls\": ");
		json_str(out, tls_name(lc->tls));
		evbuffer_add_printf(out, ", \"plaintext_auth\": %s}",
				    lc->plaintext_auth ? "true" : "false");
	}
	evbuffer_add_printf(out, "%s],\n", n->cfg->n_listens > 0 ? "\n  " : "");
	/* Out of memory: show no peers rather than no document. */
	if (status_collect_peers(n, &peers, &n_peers) < 0) {
		peers = NULL;
		n_peers = 0;
	}
	evbuffer_add_printf(out, "  \"link\": ");
	status_render_link_json(out, n->cfg, peers, n_peers, 2);
	evbuffer_add_printf(out, ",\n");
	roaming_json(out, m);
	anycast_json(out, n);
	sessions_json(out, n);
	evbuffer_add_printf(out, "  \"peers\": ");
	peers_json_array(out, peers, n_peers, 2);
	free(peers);
	evbuffer_add_printf(out, ",\n");
	replicator_render_status_json(n, out);
	evbuffer_add_printf(out, ",\n  \"replication_ack\": ");
	repl_ack_render_status_json(n, out);
	evbuffer_add_printf(out, "\n}\n");
}
