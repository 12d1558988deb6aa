/*
 * control_node.c - the node commands of the control socket (control.c):
 * status, peers, lag, mirror list, drain and undrain answer at once;
 * verify and lag cluster ask other POPs (repl_noc.h) and answer from
 * that query's callback.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "config.h"
#include "control_int.h"
#include "drain.h"
#include "link.h"
#include "node.h"
#include "replicator.h"
#include "repl_noc.h"
#include "repl_ack.h"
#include "status.h"

static void status_text(struct node *n, struct evbuffer *b)
{
	const struct metrics *m = &n->metrics;
	static const enum listen_proto protos[] = {
		PROTO_LMTP, PROTO_POP3, PROTO_POP3S, PROTO_IMAP, PROTO_IMAPS,
	};
	int64_t up = (int64_t)time(NULL) - n->started;
	uint64_t total = 0, ok = 0, failed = 0;
	struct store_stats ss;

	if (up < 0)
		up = 0;
	evbuffer_add_printf(b, "node:        %s%s\n", n->cfg->node_id,
			    n->cfg->dev_mode ? " (dev mode)" : "");
	evbuffer_add_printf(b, "version:     %s\n", POPNODE_VERSION);
	evbuffer_add_printf(b, "uptime:      %" PRId64 "d %02d:%02d:%02d\n", up / 86400,
			    (int)(up % 86400 / 3600), (int)(up % 3600 / 60), (int)(up % 60));
	evbuffer_add_printf(b, "state:       %s\n", n->stopping ? "stopping" : "running");
	evbuffer_add_printf(b, "sessions:   ");
	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
		evbuffer_add_printf(b, " %s %" PRIu64 "%s", config_proto_name(protos[i]),
				    m->sessions_active[protos[i]],
				    i + 1 < sizeof(protos) / sizeof(protos[0]) ? "," : "");
		total += m->sessions_active[protos[i]];
	}
	evbuffer_add_printf(b, " (total %" PRIu64 ", refused %" PRIu64 ")\n", total,
			    m->sessions_refused);
	evbuffer_add_printf(b, "deliveries:  %" PRIu64 " (%" PRIu64 " bytes), %" PRIu64 " refused\n",
			    m->deliveries, m->delivery_bytes, m->delivery_failures);
	for (size_t i = 0; i < PROTO_COUNT; i++) {
		ok += m->auth_success[i];
		failed += m->auth_failures[i];
	}
	evbuffer_add_printf(b, "logins:      %" PRIu64 " ok, %" PRIu64 " failed\n", ok, failed);
	if (n->store != NULL) {
		store_stats(n->store, &ss);
		evbuffer_add_printf(b,
				    "store:       %" PRIu64 " users, %" PRIu64 " bodies, %" PRIu64
				    " of %" PRIu64 " bytes used\n"
				    "commits:     %" PRIu64 " (%" PRIu64 " ops), %u pending\n",
				    ss.users, ss.bodies, ss.used_bytes, ss.map_size, ss.commits,
				    ss.ops, ss.pending);
	}
	for (size_t i = 0; i < n->cfg->n_listens; i++) {
		const struct listen_conf *lc = &n->cfg->listens[i];
		const char *tls = lc->tls == LTLS_IMPLICIT ? " tls"
				  : lc->tls == LTLS_STARTTLS ? " starttls" : "";

		evbuffer_add_printf(b, "%s%-5s ", i == 0 ? "listeners:   " : "             ",
				    config_proto_name(lc->proto));
		if (lc->is_unix)
			evbuffer_add_printf(b, "unix:%s%s\n", lc->path, tls);
		else if (strchr(lc->host, ':') != NULL)
			evbuffer_add_printf(b, "[%s]:%u%s\n", lc->host, (unsigned)lc->port, tls);
		else
			evbuffer_add_printf(b, "%s:%u%s\n", lc->host, (unsigned)lc->port, tls);
	}
	if (n->cfg->n_peers == 0) {
		evbuffer_add_printf(b, "peers:       none configured\n");
	} else {
		struct link_peer_info *peers;
		size_t n_peers, n_up = 0;

		if (status_collect_peers(n, &peers, &n_peers) == 0) {
			for (size_t i = 0; i < n_peers; i++)
				n_up += peers[i].state == LINK_PEER_UP;
			free(peers);
		}
		evbuffer_add_printf(b, "peers:       %zu configured, %zu up (popctl peers)\n",
				    n->cfg->n_peers, n_up);
	}
	repl_ack_render_text(n, b);
	replicator_render_serving_text(n, b);
	evbuffer_add_printf(b, "drained:     %s\n", n->drained ? "yes (popctl undrain ends it)" : "no");
	if (n->cfg->n_anycast == 0)
		evbuffer_add_printf(b, "anycast:     not configured\n");
	else if (!n->anycast_known)
		evbuffer_add_printf(b, "anycast:     %s\n", n->anycast_supervised
				    ? "waiting for the supervisor" : "not supervised (no announcement)");
	else
		evbuffer_add_printf(b, "anycast:     %s on %s (%zu prefixes), BIRD %s: %s\n",
				    n->anycast_announced ? "announced" : "withdrawn",
				    n->cfg->anycast_interface, n->cfg->n_anycast,
				    n->bird_up ? "up" : "down", n->anycast_reason);
	if (n->cfg->n_anycast > 0 && n->anycast_checks[0] != '\0')
		evbuffer_add_printf(b, "failing:     %s\n", n->anycast_checks);
}

/* Renders one answer into b: 0, or -1 out of memory. */
typedef int render_fn(struct node *n, struct evbuffer *b);

/* Answer a command that takes format=text|json with what text or json
 * renders. */
static void reply_format(struct ctl_conn *c, render_fn *text, render_fn *json)
{
	const char *format = ctl_request_opt(&c->req, "format");
	bool as_json = format != NULL && strcmp(format, "json") == 0;
	struct evbuffer *b;

	if (format != NULL && !as_json && strcmp(format, "text") != 0) {
		ctl_reply_err(c, CTL_E_INVAL, "format= takes text or json");
		return;
	}
	b = evbuffer_new();
	if (b == NULL || (as_json ? json : text)(c->ctl->n, b) < 0) {
		if (b != NULL)
			evbuffer_free(b);
		ctl_reply_err(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	ctl_reply_ok_buffer(c, b);
	evbuffer_free(b);
}

static int status_as_text(struct node *n, struct evbuffer *b)
{
	status_text(n, b);
	return 0;
}

static int status_as_json(struct node *n, struct evbuffer *b)
{
	status_render_json(n, b);
	return 0;
}

void ctl_cmd_status(struct ctl_conn *c, const char *const *args)
{
	reply_format(c, status_as_text, status_as_json);
}

static int peers_render(struct node *n, struct evbuffer *b, bool json)
{
	struct link_peer_info *peers;
	size_t n_peers;

	if (status_collect_peers(n, &peers, &n_peers) < 0)
		return -1;
	if (json) {
		status_render_link_json(b, n->cfg, peers, n_peers, 0);
		evbuffer_add(b, "\n", 1);
	} else {
		status_render_peers(b, peers, n_peers, (int64_t)time(NULL));
	}
	free(peers);
	return 0;
}

static int peers_as_text(struct node *n, struct evbuffer *b) { return peers_render(n, b, false); }
static int peers_as_json(struct node *n, struct evbuffer *b) { return peers_render(n, b, true); }

void ctl_cmd_peers(struct ctl_conn *c, const char *const *args)
{
	reply_format(c, peers_as_text, peers_as_json);
}

static int lag_as_text(struct node *n, struct evbuffer *b)
{
	replicator_render_lag(n, b);
	return 0;
}

static int lag_as_json(struct node *n, struct evbuffer *b)
{
	replicator_render_lag_json(n, b);
	return 0;
}

/* lag [format=json]: replication figures (replicator.h). */
void ctl_cmd_lag(struct ctl_conn *c, const char *const *args)
{
	reply_format(c, lag_as_text, lag_as_json);
}

/* mirror list ORIGIN: the content digest of origin's data here. */
void ctl_cmd_mirror_list(struct ctl_conn *c, const char *const *args)
{
	const char *why = "out of memory";
	struct evbuffer *b;

	if (!ctl_valid_pop(args[0])) {
		ctl_reply_err(c, CTL_E_INVAL, "not a POP id");
		return;
	}
	b = evbuffer_new();
	if (b == NULL || replicator_render_content(c->ctl->n, args[0], b, &why) < 0) {
		if (b != NULL)
			evbuffer_free(b);
		ctl_reply_err(c, CTL_E_NOTFOUND, why);
		return;
	}
	ctl_reply_ok_buffer(c, b);
	evbuffer_free(b);
}

/* ---- questions to other POPs (repl_noc.h) ---------------------------------- */

/* The answer of verify or lag cluster: the connection was busy meanwhile
 * (it reads no further request), and goes on with the next one now. */
static void noc_done(void *arg, struct evbuffer *answer)
{
	struct ctl_conn *c = arg;

	c->noc = NULL;
	if (answer == NULL)
		ctl_reply_err(c, CTL_E_INTERNAL, "out of memory");
	else
		ctl_reply_ok_buffer(c, answer);
	c->busy = false;
	if (!c->dispatching) {
		ctl_conn_process(c);
		ctl_conn_settle(c);
	}
}

/* format= as bool json; false (answered) if it is neither text nor json. */
static bool format_json(struct ctl_conn *c, bool *json)
{
	const char *format = ctl_request_opt(&c->req, "format");

	*json = format != NULL && strcmp(format, "json") == 0;
	if (format != NULL && !*json && strcmp(format, "text") != 0) {
		ctl_reply_err(c, CTL_E_INVAL, "format= takes text or json");
		return false;
	}
	return true;
}

static void noc_started(struct ctl_conn *c, int err, const char *user)
{
	if (c->noc != NULL) {
		c->busy = true;		/* noc_done answers */
		return;
	}
	if (err == REPL_NOC_ENOUSER) {
		ctl_reply_err(c, CTL_E_NOTFOUND, "no such user %s", user);
		return;
	}
	ctl_reply_err(c, err == REPL_NOC_ENOUSER ? CTL_E_NOTFOUND
		      : err == REPL_NOC_EINVAL ? CTL_E_INVAL
		      : err == REPL_NOC_ESTOPPING ? CTL_E_SHUTDOWN : err == REPL_NOC_EIO ? CTL_E_IO
		      : CTL_E_INTERNAL, "%s", repl_noc_strerror(err));
}

/* verify USER [format=json]: USER's copies at the home and its mirrors. */
void ctl_cmd_verify(struct ctl_conn *c, const char *const *args)
{
	bool json;
	int err = REPL_NOC_ENOMEM;

	if (!ctl_check_name(c, args[0]) || !format_json(c, &json))
		return;
	c->noc = repl_noc_verify(c->ctl->n, args[0], json, noc_done, c, &err);
	noc_started(c, err, args[0]);
}

/* lag cluster [format=json]: every POP's replication to its mirrors. */
void ctl_cmd_lag_cluster(struct ctl_conn *c, const char *const *args)
{
	bool json;
	int err = REPL_NOC_ENOMEM;

	if (!format_json(c, &json))
		return;
	c->noc = repl_noc_lag_cluster(c->ctl->n, json, noc_done, c, &err);
	noc_started(c, err, "");
}

/* drain / undrain: set the state, answer with what is left. */
static void drain_reply(struct ctl_conn *c, bool on)
{
	struct node *n = c->ctl->n;
	char err[300], path[CONFIG_PATH_MAX + 16], body[512];
	int len;

	if (drain_set(n, on, err, sizeof(err)) < 0) {
		ctl_reply_err(c, CTL_E_INTERNAL, err);
		return;
	}
	len = snprintf(body, sizeof(body), "drained: %s\nsessions: %u\nfile: %s\n",
		       n->drained ? "yes" : "no", drain_sessions_left(n),
		       drain_path(n, path, sizeof(path)));
	ctl_reply_ok(c, body, (size_t)len < sizeof(body) ? (size_t)len : sizeof(body) - 1);
}

void ctl_cmd_drain(struct ctl_conn *c, const char *const *args)
{
	drain_reply(c, true);
}

void ctl_cmd_undrain(struct ctl_conn *c, const char *const *args)
{
	drain_reply(c, false);
}
