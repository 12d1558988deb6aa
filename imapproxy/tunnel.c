/*
 * tunnel.c - roaming IMAP/POP3 sessions over the link (tunnel.h).
 *
 * Front: POST /v1/tunnel to the home POP with the user, the protocol,
 * the client's address, whether the client used TLS, a hop count and,
 * for IMAP, the login command's tag.  200 means the home resumed the
 * session and its first bytes answer the login; from then on bytes are
 * relayed both ways with backpressure on each side:
 *   client -> home: client input moves to the stream's output while that
 *     is below LINK_OUTPUT_HIGH; above it, reading from the client stops
 *     until the stream drains;
 *   home -> client: stream input moves to the client's output while that
 *     is below TRANSPORT_OUTPUT_HIGH; above it, the stream's input is no
 *     longer consumed, so HTTP/2 flow control stops the home after one
 *     stream window.  A slow client never makes either POP buffer more
 *     than about a window and a watermark.
 *
 * Failover (docs/failover.md): the front tries the home, then the home's
 * mirrors in their published order (failover_targets), each asked with
 * x-popnode-failover-for: HOME; a target that cannot be asked, does not
 * answer within the timeout or answers 5xx/421 is skipped.  This POP in
 * that list means "serve here" (TUNNEL_LOCAL).
 *
 * Home: the handler checks the request, answers 200 and resumes the
 * session over a transport on the stream, or refuses with a status (and
 * x-popnode-error saying why): 404 unknown user, 403 disabled, 409 POP3
 * maildrop in use, 421 not homed here, 508 hop limit, 503 stopping.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include <event2/event.h>

#include "directory.h"
#include "failover.h"
#include "imap.h"
#include "iplimits.h"
#include "link.h"
#include "log.h"
#include "node.h"
#include "pop3.h"
#include "replicator.h"
#include "store.h"
#include "transport.h"
#include "transport_link.h"
#include "tunnel.h"
#include "tunnel_private.h"


struct tunnel_req {
	struct node *n;
	struct transport *t;		/* the client; ours once spliced */
	struct link_stream *s;		/* to the home POP */
	tunnel_cb *cb;			/* until the home answered */
	void *arg;
	enum listen_proto proto;
	char user[STORE_NAME_MAX];
	char home[STORE_POP_MAX];
	char tag[72];			/* IMAP login tag, "" for POP3 */
	char targets[FAILOVER_TARGETS][STORE_POP_MAX];	/* home, then mirrors */
	size_t n_targets, cur;
	struct event *later;		/* TUNNEL_LOCAL decided in tunnel_open */
	bool spliced;
	bool closing;			/* client close_after_flush started */
	bool up_blocked, down_blocked;
	struct node_session reg;
	uint64_t up, down;
	struct timespec started;
};

static const struct listen_conf resumed_imap = { .proto = PROTO_IMAP, .plaintext_auth = true };
static const struct listen_conf resumed_pop3 = { .proto = PROTO_POP3, .plaintext_auth = true };

static bool is_pop3(enum listen_proto p)
{
	return p == PROTO_POP3 || p == PROTO_POP3S;
}

/* ---- front: relaying ------------------------------------------------------ */

static void finish(struct tunnel_req *tun, const char *why)
{
	struct node *n = tun->n;

	log_info("tunnel.end", "user=%s home=%s peer=%s reason=%s up=%" PRIu64 " down=%" PRIu64,
		 tun->user, tun->home, tun->t != NULL ? tun->t->peer : "-", why, tun->up,
		 tun->down);
	n->metrics.roaming_active--;
	n->metrics.roaming_bytes_up += tun->up;
	n->metrics.roaming_bytes_down += tun->down;
	link_stream_free(&tun->s);
	transport_free(&tun->t);
	node_session_unregister(n, &tun->reg);
	free(tun);
}

static void pump_up(struct tunnel_req *tun)
{
	struct evbuffer *in = transport_input(tun->t), *out;
	size_t len = evbuffer_get_length(in);

	if (tun->s == NULL) {
		evbuffer_drain(in, len);
		return;
	}
	out = link_stream_output(tun->s);
	if (evbuffer_get_length(out) >= LINK_OUTPUT_HIGH) {
		tun->up_blocked = true;
		transport_read_enable(tun->t, false);
		return;
	}
	tun->up += len;
	evbuffer_add_buffer(out, in);
	if (evbuffer_get_length(out) >= LINK_OUTPUT_HIGH) {
		tun->up_blocked = true;
		transport_read_enable(tun->t, false);
	}
}

static void pump_down(struct tunnel_req *tun, bool all)
{
	struct evbuffer *in = link_stream_input(tun->s), *out = transport_output(tun->t);

	if (!all && evbuffer_get_length(out) >= TRANSPORT_OUTPUT_HIGH) {
		tun->down_blocked = true;
		link_stream_read_enable(tun->s, false);
		return;
	}
	tun->down += evbuffer_get_length(in);
	evbuffer_add_buffer(out, in);
	if (!all && evbuffer_get_length(out) >= TRANSPORT_OUTPUT_HIGH) {
		tun->down_blocked = true;
		link_stream_read_enable(tun->s, false);
	}
}

/* The home ended the session (LOGOUT, QUIT, its idle timeout, its
 * shutdown) or the link failed: flush what came and close the client. */
static void home_gone(struct tunnel_req *tun, const char *why)
{
	if (tun->s != NULL && evbuffer_get_length(link_stream_input(tun->s)) > 0)
		pump_down(tun, true);
	link_stream_free(&tun->s);
	if (!tun->closing) {
		log_debug("tunnel.home_closed", "user=%s home=%s reason=%s", tun->user, tun->home,
			  why);
		tun->closing = true;
		transport_close_after_flush(tun->t);
	}
}

static void client_read(void *arg)
{
	pump_up(arg);
}

static void client_drained(void *arg)
{
	struct tunnel_req *tun = arg;

	if (tun->down_blocked && tun->s != NULL) {
		tun->down_blocked = false;
		link_stream_read_enable(tun->s, true);
	}
}

static void client_event(void *arg, enum transport_event ev)
{
	struct tunnel_req *tun = arg;

	switch (ev) {
	case TRANSPORT_TIMEOUT:
		return;		/* the home keeps the idle timeout */
	case TRANSPORT_CLOSED:
		finish(tun, "closed");
		return;
	case TRANSPORT_EOF:
		finish(tun, "client_eof");
		return;
	case TRANSPORT_ERROR:
	default:
		finish(tun, "client_error");
		return;
	}
}

static const struct transport_cbs client_cbs = {
	.read = client_read,
	.drained = client_drained,
	.event = client_event,
};

static void shutdown_hook(void *arg)
{
	struct tunnel_req *tun = arg;

	/* This POP is stopping: the home POP ends its side (our reset
	 * tells it the client is gone); the client reconnects, reaching
	 * another POP once the route has moved. */
	home_gone(tun, "shutdown");
}

static void drain_hook(void *arg)
{
	struct tunnel_req *tun = arg;

	/* The client reached this POP, which is leaving the anycast
	 * route: end the session at the home (it sees its client go) and
	 * close the connection, so the client reconnects to another POP.
	 * (A BYE cannot be injected here: the front does not know where
	 * the home's responses begin and end.) */
	home_gone(tun, "drained");
}

/* ---- front: the request ------------------------------------------------------ */

static void answered(struct tunnel_req *tun, enum tunnel_result r)
{
	tunnel_cb *cb = tun->cb;
	void *arg = tun->arg;

	tun->cb = NULL;
	cb(r, arg);
}

static void tun_free(struct tunnel_req *tun)
{
	link_stream_free(&tun->s);
	if (tun->later != NULL)
		event_free(tun->later);
	free(tun);
}

static int next_target(struct tunnel_req *tun);

static void fail(struct tunnel_req *tun, enum tunnel_result r, const char *why)
{
	log_warn("tunnel.failed", "user=%s home=%s target=%s peer=%s reason=\"%s\"", tun->user,
		 tun->home, tun->targets[tun->cur], tun->t->peer, why);
	link_stream_free(&tun->s);
	if (r == TUNNEL_UNAVAILABLE) {
		/* Failover: the next mirror, if any. */
		tun->cur++;
		if (next_target(tun) == 0)
			return;
		r = tun->cur < tun->n_targets ? TUNNEL_LOCAL : TUNNEL_UNAVAILABLE;
	}
	answered(tun, r);	/* the session keeps its transport */
	tun_free(tun);
}

static void on_response(void *arg, int status, const struct link_hdr *h, size_t n)
{
	struct tunnel_req *tun = arg;
	const char *err = link_hdr_get(h, n, "x-popnode-error");
	char why[160];

	if (status != 200) {
		snprintf(why, sizeof(why), "answered %d%s%s", status, err ? ": " : "",
			 err ? err : "");
		if (status == 409)
			fail(tun, TUNNEL_IN_USE, why);
		else if (tun->cur > 0 && (status == 421 || status >= 500))
			fail(tun, TUNNEL_UNAVAILABLE, why);	/* the next mirror */
		else
			fail(tun, TUNNEL_REFUSED, why);	/* the home itself answered:
							 * it is up (maybe still
							 * checking its store), so
							 * no failover */
		return;
	}
	link_stream_set_timeout(tun->s, 0);
	tun->spliced = true;
	answered(tun, TUNNEL_OK);	/* the session lets go of the transport */
	tun->n->metrics.roaming_total++;
	tun->n->metrics.roaming_active++;
	node_session_register(tun->n, &tun->reg, tun->proto, shutdown_hook, tun);
	tun->reg.drain = drain_hook;
	tun->reg.client_here = true;
	node_session_describe(&tun->reg, tun->t->peer, tun->user, NULL, tun->targets[tun->cur]);
	transport_set_cbs(tun->t, &client_cbs, tun);
	transport_set_timeout(tun->t, 0);
	transport_read_enable(tun->t, true);
	log_info("tunnel.open", "user=%s home=%s served_by=%s peer=%s proto=%s", tun->user,
		 tun->home, tun->targets[tun->cur], tun->t->peer, config_proto_name(tun->proto));
	pump_up(tun);	/* commands the client pipelined after its login */
}

static void stream_read(void *arg)
{
	struct tunnel_req *tun = arg;

	if (tun->spliced)
		pump_down(tun, false);
}

static void stream_drained(void *arg)
{
	struct tunnel_req *tun = arg;

	if (tun->spliced && tun->up_blocked && !tun->closing) {
		tun->up_blocked = false;
		transport_read_enable(tun->t, true);
		pump_up(tun);
	}
}

static void stream_event(void *arg, enum link_event ev)
{
	struct tunnel_req *tun = arg;

	if (!tun->spliced) {
		if (ev == LINK_EV_TIMEOUT)
			link_peer_failed(tun->n->link, tun->targets[tun->cur]);
		fail(tun, TUNNEL_UNAVAILABLE,
		     ev == LINK_EV_TIMEOUT ? "no answer from home" : "link stream reset");
		return;
	}
	if (ev == LINK_EV_RESET)
		log_warn("tunnel.reset", "user=%s home=%s peer=%s", tun->user, tun->home,
			 tun->t->peer);
	home_gone(tun, ev == LINK_EV_EOF ? "home_closed" : "link_reset");
}

static const struct link_stream_cbs stream_cbs = {
	.response = on_response,
	.read = stream_read,
	.drained = stream_drained,
	.event = stream_event,
};

/* Ask targets[cur], or the next one that can be asked.  0: a request is
 * under way; 1: this POP is the target (serve here); -1: none left. */
static int next_target(struct tunnel_req *tun)
{
	struct node *n = tun->n;
	struct link_hdr h[10];
	unsigned wait;

	for (; tun->cur < tun->n_targets; tun->cur++) {
		const char *to = tun->targets[tun->cur];
		size_t k = 0;

		if (strcmp(to, n->cfg->node_id) == 0) {
			if (failover_store(n, tun->home, true) != NULL)
				return 1;
			continue;
		}
		h[k++] = (struct link_hdr){ "x-popnode-proto", is_pop3(tun->proto) ? "pop3" : "imap" };
		h[k++] = (struct link_hdr){ "x-popnode-user", tun->user };
		h[k++] = (struct link_hdr){ "x-popnode-client", tun->t->peer };
		h[k++] = (struct link_hdr){ "x-popnode-tls", tun->t->tls ? "yes" : "no" };
		h[k++] = (struct link_hdr){ "x-popnode-hops", "1" };
		h[k++] = (struct link_hdr){ "x-popnode-via", n->cfg->node_id };
		if (tun->tag[0] != '\0')
			h[k++] = (struct link_hdr){ "x-popnode-tag", tun->tag };
		if (tun->cur > 0)
			h[k++] = (struct link_hdr){ FAILOVER_HDR, tun->home };
		tun->s = link_request(n->link, to, "POST", TUNNEL_PATH, h, k, true, &stream_cbs, tun);
		if (tun->s == NULL)
			continue;
		if (tun->cur > 0) {
			n->metrics.failover_routed++;
			log_info("tunnel.failover", "user=%s home=%s mirror=%s peer=%s", tun->user,
				 tun->home, to, tun->t->peer);
		}
		wait = 2 * n->cfg->link_timeout;
		link_stream_set_timeout(tun->s, wait < 5 ? 5 : wait);
		return 0;
	}
	return -1;
}

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel_req *tun = arg;

	(void)fd;
	(void)what;
	answered(tun, TUNNEL_LOCAL);
	tun_free(tun);
}

struct tunnel_req *tunnel_open(struct node *n, struct transport *t, enum listen_proto proto,
			       const char *user, const char *home, const char *imap_tag,
			       tunnel_cb *cb, void *arg)
{
	struct tunnel_req *tun = calloc(1, sizeof(*tun));
	const char *targets[FAILOVER_TARGETS];
	int rc;

	if (tun == NULL)
		return NULL;
	tun->n = n;
	tun->t = t;
	tun->cb = cb;
	tun->arg = arg;
	tun->proto = proto;
	snprintf(tun->user, sizeof(tun->user), "%s", user);
	snprintf(tun->home, sizeof(tun->home), "%s", home);
	snprintf(tun->tag, sizeof(tun->tag), "%s", imap_tag != NULL ? imap_tag : "");
	tun->n_targets = failover_targets(n, home, targets);
	for (size_t i = 0; i < tun->n_targets; i++)
		snprintf(tun->targets[i], sizeof(tun->targets[i]), "%s", targets[i]);
	clock_gettime(CLOCK_MONOTONIC, &tun->started);
	rc = next_target(tun);
	if (rc == 1) {
		/* cb must not run inside tunnel_open: on the next loop turn */
		struct timeval now = { 0, 0 };

		tun->later = evtimer_new(n->base, later_cb, tun);
		if (tun->later == NULL || evtimer_add(tun->later, &now) < 0)
			rc = -1;
	}
	if (rc < 0) {
		tun_free(tun);
		return NULL;
	}
	return tun;
}

void tunnel_cancel(struct tunnel_req **r)
{
	struct tunnel_req *tun = *r;

	if (tun == NULL)
		return;
	*r = NULL;
	tun_free(tun);
}

/* ---- home ------------------------------------------------------------------ */

static void refuse(struct node *n, struct link_stream *s, int status, const char *why,
		   const char *user, const char *via)
{
	struct link_hdr h = { "x-popnode-error", why };

	n->metrics.tunnel_refused++;
	log_info("tunnel.refused", "user=%s via=%s status=%d reason=\"%s\"", user ? user : "-",
		 via ? via : "-", status, why);
	link_stream_respond(s, status, &h, 1, true);
	link_stream_free(&s);
}

static void served_free(struct transport *t, void *arg)
{
	struct node *n = arg;

	iplimits_session_close(n->limits, t->peer_ip);
	n->metrics.tunnel_served_active--;
}

static void serve(void *arg, struct link_stream *s, const struct link_request *req)
{
	struct node *n = arg;
	const char *proto = link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-proto");
	const char *user = link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-user");
	const char *client = link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-client");
	const char *tls = link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-tls");
	const char *hops = link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-hops");
	const char *tag = link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-tag");
	const char *via = link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-via");
	struct store_user u;
	struct store *st = n->store;
	struct transport *t;
	const char *why = NULL;
	bool pop3;
	int err;

	if (strcmp(req->method, "POST") != 0 || proto == NULL || user == NULL || client == NULL ||
	    hops == NULL || (strcmp(proto, "imap") != 0 && strcmp(proto, "pop3") != 0) ||
	    !dir_valid_username(user) || strlen(client) >= 64 ||
	    (via != NULL && (strlen(via) >= STORE_POP_MAX || strpbrk(via, "\" \\\r\n") != NULL)) ||
	    (strcmp(proto, "imap") == 0 && (tag == NULL || tag[0] == '\0' || strlen(tag) > 64 ||
					    strpbrk(tag, " \r\n") != NULL))) {
		refuse(n, s, 400, "malformed tunnel request", user, via);
		return;
	}
	pop3 = strcmp(proto, "pop3") == 0;
	if (atoi(hops) < 1 || (unsigned)atoi(hops) > n->cfg->link_max_hops) {
		refuse(n, s, 508, "hop limit reached", user, via);
		return;
	}
	if (n->stopping) {
		refuse(n, s, 503, "home POP is stopping", user, via);
		return;
	}
	err = store_user_get(n->store, user, &u);
	if (err == STORE_NOTFOUND && replicator_serving_ready(n, NULL)) {
		refuse(n, s, 404, "no such user", user, via);
		return;
	}
	if (err != STORE_OK) {
		refuse(n, s, 503, "directory read failed", user, via);
		return;
	}
	if (!u.enabled) {
		refuse(n, s, 403, "account disabled", user, via);
		return;
	}
	if (strcmp(u.home, n->cfg->node_id) != 0 &&
	    (st = failover_store(n, u.home, false)) != NULL) {
		/* The home is down and we hold its mirror: serve from it
		 * (docs/failover.md), with the home's record of the user. */
		struct store_user mu;

		if (store_user_get(st, user, &mu) != STORE_OK) {
			refuse(n, s, 503, "this mirror holds no copy of the user", user, via);
			return;
		}
		if (!mu.enabled) {
			refuse(n, s, 403, "account disabled", user, via);
			return;
		}
		u = mu;
		n->metrics.failover_sessions++;
		log_info("tunnel.failover_serve", "user=%s home=%s via=%s", user, u.home, via ? via : "-");
	} else if (strcmp(u.home, n->cfg->node_id) != 0) {
		/* Our directory says the home is elsewhere (or, asked as a
		 * mirror, the home is reachable from here after all): pass
		 * the session on, one hop further. */
		unsigned next = (unsigned)atoi(hops) + 1;

		if (next > n->cfg->link_max_hops) {
			refuse(n, s, 508, "hop limit reached", user, via);
			return;
		}
		if (tunnel_relay(n, s, req, user, u.home, next) < 0)
			refuse(n, s, 421, "user is not homed here and the home is unreachable from here",
			       user, via);
		return;
	}
	if (st == n->store && !replicator_serving_ready(n, &why)) {
		refuse(n, s, 503, why, user, via);	/* the front answers UNAVAILABLE */
		return;
	}
	if (pop3 && node_user_locked(n, u.name)) {
		refuse(n, s, 409, "maildrop in use", user, via);
		return;
	}
	t = transport_link_new(s, client, tls != NULL && strcmp(tls, "yes") == 0);
	if (t == NULL) {
		refuse(n, s, 503, "out of memory", user, via);
		return;
	}
	/* The client's sessions count against max_sessions_per_ip here
	 * too, wherever they entered the cluster. */
	if (!iplimits_session_open(n->limits, t->peer_ip)) {
		struct link_hdr h = { "x-popnode-error", "too many sessions from this address" };

		n->metrics.tunnel_refused++;
		log_warn("tunnel.refused", "user=%s via=%s client=%s status=429 reason=max_sessions_per_ip",
			 user, via ? via : "-", client);
		link_stream_respond(s, 429, &h, 1, true);
		transport_free(&t);
		return;
	}
	if (link_stream_respond(s, 200, NULL, 0, false) < 0) {
		iplimits_session_close(n->limits, t->peer_ip);
		transport_free(&t);
		return;
	}
	n->metrics.tunnel_served_total++;
	n->metrics.tunnel_served_active++;
	n->metrics.sessions_total[pop3 ? PROTO_POP3 : PROTO_IMAP]++;
	t->on_free = served_free;
	t->on_free_arg = n;
	log_info("tunnel.serve", "user=%s via=%s client=%s proto=%s", user, via ? via : "-",
		 client, proto);
	if (pop3)
		pop3_session_resume(n, t, &resumed_pop3, st, &u, via);
	else
		imap_session_resume(n, t, &resumed_imap, st, &u, tag, via);
}

int tunnel_init(struct node *n)
{
	link_set_handler(n->link, TUNNEL_PATH, serve, n);
	return 0;
}
