/*
 * status.c - the node's state for operators, in three renderings:
 *
 *   status_render_json     the /status document (also `popctl status
 *                          --json`); field list in docs/metrics.md
 *   status_render_metrics  Prometheus text exposition format 0.0.4 for
 *                          /metrics: every family has # HELP and # TYPE,
 *                          counters end in _total, the commit histogram
 *                          has cumulative _bucket{le} lines up to +Inf,
 *                          then _sum and _count
 *   status_render_peers    the rows of `popctl peers` (control "peers")
 *
 * They read struct node (counters in n->metrics, the store's own numbers
 * from store_stats, the link's from link_peer_foreach) on the loop thread
 * and append to an evbuffer; they never fail halfway in a way that
 * matters (an evbuffer append only fails when memory is gone, and then
 * the caller's reply is short).
 *
 * The link's figures come from link_peer_foreach, copied into an array
 * (status_collect_peers) so that every peer rendering works on a plain
 * array and is tested without a live link.  The JSON has them twice:
 * in "link.peers" and, for tooling written against 0.1 where it was a
 * placeholder, in the top-level "peers".
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
#include "control_proto.h"
#include "dirsync.h"
#include "link.h"
#include "node.h"
#include "repl_ack.h"
#include "replicator.h"
#include "status.h"
#include "store.h"

/* The protocols that have sessions (the management listener has none). */
static const enum listen_proto mail_protos[] = {
	PROTO_LMTP, PROTO_POP3, PROTO_POP3S, PROTO_IMAP, PROTO_IMAPS,
};
#define N_MAIL_PROTOS (sizeof(mail_protos) / sizeof(mail_protos[0]))

/* The protocols that authenticate users. */
static const enum listen_proto auth_protos[] = {
	PROTO_POP3, PROTO_POP3S, PROTO_IMAP, PROTO_IMAPS,
};
#define N_AUTH_PROTOS (sizeof(auth_protos) / sizeof(auth_protos[0]))

static int64_t uptime(const struct node *n)
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

/* ---- the link's peers ---------------------------------------------------- */

struct collect_ctx {
	struct link_peer_info *peers;
	size_t n, cap;
};

static void collect_cb(const struct link_peer_info *p, void *arg)
{
	struct collect_ctx *cc = arg;

	if (cc->n < cc->cap)
		cc->peers[cc->n++] = *p;
}

int status_collect_peers(struct node *n, struct link_peer_info **peers_r, size_t *n_r)
{
	struct collect_ctx cc = { .peers = NULL, .n = 0, .cap = n->cfg->n_peers };

	*peers_r = NULL;
	*n_r = 0;
	if (n->link == NULL || cc.cap == 0)
		return 0;
	cc.peers = calloc(cc.cap, sizeof(*cc.peers));
	if (cc.peers == NULL)
		return -1;
	link_peer_foreach(n->link, collect_cb, &cc);
	for (size_t i = 0; i < cc.n; i++)
		cc.peers[i].dir_lseq = n->dirsync != NULL ? dirsync_peer_lseq(n, cc.peers[i].id) : 0;
	if (cc.n == 0) {
		free(cc.peers);
		return 0;
	}
	*peers_r = cc.peers;
	*n_r = cc.n;
	return 0;
}

/* Microseconds as a decimal number of milliseconds ("1.234"), exact. */
static void add_us_as_ms(struct evbuffer *out, int64_t us)
{
	evbuffer_add_printf(out, "%" PRId64 ".%03d", us / 1000, (int)(us % 1000));
}

/* The smoothed RTT is shown (table, metric) only while the peer is up:
 * the link keeps the last value through an outage, for ranking, but a
 * flat line for a dead peer would mislead.  The JSON gives it raw. */
static bool rtt_current(const struct link_peer_info *p)
{
	return p->state == LINK_PEER_UP && p->rtt_avg_us >= 0;
}

/* "45s", "3m05s", "2h07m", "4d03h". */
static void human_duration(char *buf, size_t sz, int64_t d)
{
	if (d < 0)
		d = 0;
	if (d < 60)
		snprintf(buf, sz, "%ds", (int)d);
	else if (d < 3600)
		snprintf(buf, sz, "%dm%02ds", (int)(d / 60), (int)(d % 60));
	else if (d < 86400)
		snprintf(buf, sz, "%dh%02dm", (int)(d / 3600), (int)(d % 3600 / 60));
	else
		snprintf(buf, sz, "%" PRId64 "d%02dh", d / 86400, (int)(d % 86400 / 3600));
}

void status_render_peers(struct evbuffer *out, const struct link_peer_info *p, size_t n,
			 int64_t now)
{
	char id[CONFIG_NAME_MAX], addr[96], err[sizeof(p->last_error)], rtt[32], since[32];

	evbuffer_add_printf(out, "PEER\tADDR\tSTATE\tRTT\tIN\tFAIL\tSTREAMS\tDIR\tSINCE\tLAST ERROR\n");
	for (size_t i = 0; i < n; i++) {
		const struct link_peer_info *pi = &p[i];

		if (!rtt_current(pi)) {
			snprintf(rtt, sizeof(rtt), "-");
		} else {
			int64_t cs = (pi->rtt_avg_us + 5) / 10;	/* hundredths of a ms */

			snprintf(rtt, sizeof(rtt), "%" PRId64 ".%02d", cs / 100, (int)(cs % 100));
		}
		if (pi->since <= 0)
			snprintf(since, sizeof(since), "-");
		else
			human_duration(since, sizeof(since), now - pi->since);
		evbuffer_add_printf(out, "%s\t%s\t%s\t%s\t%s\t%u\t%u\t%" PRIu64 "\t%s\t%s\n",
				    ctl_row_field(id, sizeof(id), pi->id),
				    ctl_row_field(addr, sizeof(addr), pi->addr),
				    link_peer_state_name(pi->state), rtt, pi->inbound ? "yes" : "no",
				    pi->failures, pi->streams_active, pi->dir_lseq, since,
				    ctl_row_field(err, sizeof(err), pi->last_error));
	}
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

static void label_value(struct evbuffer *out, const char *s);

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
			    uptime(n), n->started, n->cfg->dev_mode ? "true" : "false",
			    n->stopping ? "true" : "false", n->drained ? "true" : "false");
	for (size_t i = 0; i < N_MAIL_PROTOS; i++) {
		enum listen_proto p = mail_protos[i];

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

/* ---- Prometheus --------------------------------------------------------- */

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
		any_rtt |= rtt_current(&p[i]);
	if (any_rtt) {
		family(out, "popnode_link_rtt_seconds", "gauge",
		       "Smoothed HTTP/2 PING round trip time to the peer.");
		for (size_t i = 0; i < n; i++) {
			if (!rtt_current(&p[i]))
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
		  mail_protos, N_MAIL_PROTOS, m->sessions_active);
	per_proto(out, "popnode_sessions_total", "counter", "Sessions accepted, by protocol.",
		  mail_protos, N_MAIL_PROTOS, m->sessions_total);
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
	evbuffer_add_printf(out, "popnode_uptime_seconds %" PRId64 "\n", uptime(n));
	family(out, "popnode_build_info", "gauge", "Always 1; the version is a label.");
	evbuffer_add_printf(out, "popnode_build_info{version=\"");
	label_value(out, POPNODE_VERSION);
	evbuffer_add_printf(out, "\",node_id=\"");
	label_value(out, n->cfg->node_id);
	evbuffer_add_printf(out, "\"} 1\n");
}
