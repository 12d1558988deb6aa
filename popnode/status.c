/*
 * status.c - the node's state for operators, in two renderings:
 *
 *   status_render_json     the /status document (also `popctl status
 *                          --json`); field list in docs/metrics.md
 *   status_render_metrics  Prometheus text exposition format 0.0.4 for
 *                          /metrics: every family has # HELP and # TYPE,
 *                          counters end in _total, the commit histogram
 *                          has cumulative _bucket{le} lines up to +Inf,
 *                          then _sum and _count
 *
 * Both read struct node (counters in n->metrics, the store's own numbers
 * from store_stats) on the loop thread and append to an evbuffer; they
 * never fail halfway in a way that matters (an evbuffer append only
 * fails when memory is gone, and then the caller's reply is short).
 *
 * The JSON keys "peers", "anycast" and "replication" are there with
 * empty values until those subsystems exist, so NOC tooling can rely on
 * the document's shape.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "config.h"
#include "node.h"
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

void status_render_json(struct node *n, struct evbuffer *out)
{
	const struct metrics *m = &n->metrics;
	struct store_stats ss;
	uint64_t active = 0;
	uint64_t auth_failures = 0;
	char addr[CONFIG_PATH_MAX + 16];

	evbuffer_add_printf(out, "{\n  \"node_id\": ");
	json_str(out, n->cfg->node_id);
	evbuffer_add_printf(out, ",\n  \"version\": ");
	json_str(out, POPNODE_VERSION);
	evbuffer_add_printf(out,
			    ",\n  \"uptime_seconds\": %" PRId64 ",\n  \"started\": %" PRId64
			    ",\n  \"dev_mode\": %s,\n  \"stopping\": %s,\n  \"sessions\": {",
			    uptime(n), n->started, n->cfg->dev_mode ? "true" : "false",
			    n->stopping ? "true" : "false");
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
				    "    \"pending\": %u\n  },\n",
				    ss.map_size, ss.used_bytes, ss.users, ss.bodies, ss.commits,
				    ss.ops, ss.pending);
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
	evbuffer_add_printf(out,
			    "  \"peers\": [],\n"
			    "  \"anycast\": {\"state\": \"not-configured\"},\n"
			    "  \"replication\": []\n"
			    "}\n");
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

void status_render_metrics(struct node *n, struct evbuffer *out)
{
	const struct metrics *m = &n->metrics;
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
	}

	commit_histogram(out, m);
	family(out, "popnode_commit_ops_total", "counter",
	       "Store operations carried by group commits.");
	sample(out, "popnode_commit_ops_total", m->commit_ops);

	family(out, "popnode_uptime_seconds", "gauge", "Seconds since the node started.");
	evbuffer_add_printf(out, "popnode_uptime_seconds %" PRId64 "\n", uptime(n));
	family(out, "popnode_build_info", "gauge", "Always 1; the version is a label.");
	evbuffer_add_printf(out, "popnode_build_info{version=\"");
	label_value(out, POPNODE_VERSION);
	evbuffer_add_printf(out, "\",node_id=\"");
	label_value(out, n->cfg->node_id);
	evbuffer_add_printf(out, "\"} 1\n");
}
