/*
 * link.c - the peers of this node: dialling and redialling with backoff,
 * PING for RTT and liveness, the circuit breaker, requests, routes, and
 * the figures status/metrics/popctl show.  One connection and its streams:
 * link_conn.c.  TLS contexts: link_tls.c.
 *
 * Breaker (per peer): failures (a dial or handshake that failed, a
 * connection lost, a PING unanswered for link_timeout, a request the
 * caller reports with link_peer_failed) are kept with their time; when
 * link_breaker_failures of them fall within link_breaker_window the
 * breaker opens: requests fail at once and nothing is dialled for
 * link_breaker_cooloff.  Then one dial is the probe: if it comes up the
 * breaker closes (failures forgotten), otherwise it opens again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "link_private.h"
#include "log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define MAX_PENDING_HANDSHAKES 64

static void retry_cb(evutil_socket_t fd, short what, void *arg);

const char *link_peer_state_name(enum link_peer_state s)
{
	switch (s) {
	case LINK_PEER_CONNECTING: return "connecting";
	case LINK_PEER_UP: return "up";
	case LINK_PEER_DOWN: return "down";
	case LINK_PEER_OPEN: return "breaker-open";
	}
	return "?";
}

static void set_state(struct link_peer *p, enum link_peer_state st)
{
	if (p->state != st) {
		p->state = st;
		p->since = time(NULL);
	}
}

static bool breaker_open(const struct link_peer *p, int64_t now)
{
	return now < p->open_until_ms;
}

static unsigned recent_failures(const struct link_peer *p, int64_t now)
{
	int64_t window = (int64_t)p->l->cfg->link_breaker_window * 1000;
	unsigned cap = p->l->cfg->link_breaker_failures, n = 0;

	for (unsigned i = 0; i < p->fail_n; i++) {
		int64_t t = p->fail_ms[(p->fail_head + cap - 1 - i) % cap];
		if (now - t <= window)
			n++;
	}
	return n;
}

static void peer_fail(struct link_peer *p, const char *reason)
{
	const struct config *cfg = p->l->cfg;
	unsigned cap = cfg->link_breaker_failures;
	int64_t now = link_now_ms();

	snprintf(p->last_error, sizeof(p->last_error), "%s", reason);
	p->fail_ms[p->fail_head] = now;
	p->fail_head = (p->fail_head + 1) % cap;
	if (p->fail_n < cap)
		p->fail_n++;
	if (p->probing || (!breaker_open(p, now) && recent_failures(p, now) >= cap)) {
		p->open_until_ms = now + (int64_t)cfg->link_breaker_cooloff * 1000;
		p->probing = false;
		set_state(p, LINK_PEER_OPEN);
		log_warn("link.breaker_open", "peer=%s failures=%u cooloff=%us reason=\"%s\"",
			 p->pc->id, recent_failures(p, now), cfg->link_breaker_cooloff, reason);
	}
}

static void schedule_retry(struct link_peer *p)
{
	int64_t now = link_now_ms(), delay;
	struct timeval tv;

	if (p->l->freeing)
		return;
	if (breaker_open(p, now)) {
		delay = p->open_until_ms - now;
	} else {
		delay = p->backoff_ms + random() % (p->backoff_ms / 4 + 1);
		p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
								   : p->backoff_ms * 2;
	}
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(p->retry_timer, &tv);
}

static void dial(struct link_peer *p)
{
	if (p->out != NULL || p->l->freeing)
		return;
	if (breaker_open(p, link_now_ms())) {
		schedule_retry(p);
		return;
	}
	if (p->state == LINK_PEER_OPEN) {
		p->probing = true;
		log_info("link.breaker_probe", "peer=%s", p->pc->id);
	}
	p->out = link_conn_dial(p->l, p);
	if (p->out == NULL) {
		peer_fail(p, "cannot start connection");
		schedule_retry(p);
		return;
	}
	if (!p->probing)
		set_state(p, LINK_PEER_CONNECTING);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	dial(arg);
}

/* ---- called by link_conn.c ---------------------------------------------- */

void link_conn_up(struct link_conn *c)
{
	struct link_peer *p = link_conn_peer(c);
	struct link *l = p->l;

	if (!link_conn_outbound(c)) {
		if (p->in != NULL && p->in != c)
			link_conn_close(p->in, "replaced by a new connection");
		p->in = c;
		log_info("link.inbound_up", "peer=%s", p->pc->id);
		/* The peer just proved it is alive: dial it now rather
		 * than wait out a backoff or the breaker's cool-off (the
		 * dial is then the breaker's probe). */
		if (p->out == NULL && !l->freeing) {
			evtimer_del(p->retry_timer);
			p->backoff_ms = BACKOFF_MIN_MS;
			if (breaker_open(p, link_now_ms()))
				p->open_until_ms = link_now_ms();
			dial(p);
		}
		return;
	}
	p->connects++;
	p->backoff_ms = BACKOFF_MIN_MS;
	if (p->probing || p->state == LINK_PEER_OPEN) {
		log_info("link.breaker_closed", "peer=%s", p->pc->id);
		p->probing = false;
		p->open_until_ms = 0;
	}
	p->fail_n = 0;
	p->last_error[0] = '\0';
	set_state(p, LINK_PEER_UP);
	log_info("link.up", "peer=%s addr=%s", p->pc->id, p->addr);
	link_conn_ping(c);
	if (l->peer_cb != NULL)
		l->peer_cb(l->peer_cb_arg, p->pc->id, true);
}

void link_conn_gone(struct link_conn *c, const char *reason)
{
	struct link_peer *p = link_conn_peer(c);
	struct link *l;
	bool was_up;

	if (p == NULL)
		return;
	l = p->l;
	if (!link_conn_outbound(c)) {
		if (p->in == c)
			p->in = NULL;
		log_info("link.inbound_down", "peer=%s reason=\"%s\"", p->pc->id, reason);
		return;
	}
	if (p->out != c)
		return;
	p->out = NULL;
	was_up = p->state == LINK_PEER_UP;
	if (was_up)
		p->disconnects++;
	if (l->freeing)
		return;
	log_warn(was_up ? "link.down" : "link.connect_failed", "peer=%s addr=%s reason=\"%s\"",
		 p->pc->id, p->addr, reason);
	peer_fail(p, reason);
	if (!breaker_open(p, link_now_ms()))
		set_state(p, LINK_PEER_DOWN);
	schedule_retry(p);
	if (was_up && l->peer_cb != NULL)
		l->peer_cb(l->peer_cb_arg, p->pc->id, false);
}

void link_conn_pong(struct link_conn *c, int64_t rtt_us)
{
	struct link_peer *p = link_conn_peer(c);

	if (p == NULL || !link_conn_outbound(c))
		return;
	p->ping_outstanding = false;
	p->rtt_us = rtt_us;
	p->rtt_avg_us = p->rtt_avg_us < 0 ? rtt_us : p->rtt_avg_us + (rtt_us - p->rtt_avg_us) / 8;
}

const struct link_route *link_route_find(struct link *l, const char *path)
{
	for (size_t i = 0; i < l->n_routes; i++)
		if (strcmp(l->routes[i].path, path) == 0)
			return &l->routes[i];
	return NULL;
}

void link_peer_count(struct link_peer *p, uint64_t in, uint64_t out)
{
	p->bytes_in += in;
	p->bytes_out += out;
}

/* ---- PING ------------------------------------------------------------------ */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	int64_t now = link_now_ms();

	for (size_t i = 0; i < l->n_peers; i++) {
		struct link_peer *p = &l->peers[i];

		if (p->out == NULL || !link_conn_ready(p->out))
			continue;
		if (p->ping_outstanding) {
			if (now - p->ping_sent_ms > (int64_t)l->cfg->link_timeout * 1000)
				link_conn_close(p->out, "PING unanswered");
			continue;
		}
		if (link_conn_ping(p->out) == 0) {
			p->ping_outstanding = true;
			p->ping_sent_ms = now;
		}
	}
}

/* ---- the link ---------------------------------------------------------------- */

struct link *link_new(const struct config *cfg, char *err, size_t errsz)
{
	struct link *l = calloc(1, sizeof(*l));

	if (l == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	l->cfg = cfg;
	LIST_INIT(&l->pending);
	if (cfg->n_peers == 0 && !cfg->link_listen_set)
		return l;	/* a single POP: no link */
	if (link_tls_init(l, err, errsz) < 0) {
		free(l);
		return NULL;
	}
	l->peers = calloc(cfg->n_peers ? cfg->n_peers : 1, sizeof(*l->peers));
	if (l->peers == NULL)
		goto oom;
	for (size_t i = 0; i < cfg->n_peers; i++) {
		struct link_peer *p = &l->peers[i];
		const struct peer_conf *pc = &cfg->peers[i];

		l->n_peers++;
		p->l = l;
		p->pc = pc;
		snprintf(p->addr, sizeof(p->addr), strchr(pc->host, ':') ? "[%s]:%u" : "%s:%u",
			 pc->host, pc->port);
		p->fail_ms = calloc(cfg->link_breaker_failures, sizeof(int64_t));
		if (p->fail_ms == NULL)
			goto oom;
		p->state = LINK_PEER_DOWN;
		p->since = time(NULL);
		p->rtt_us = p->rtt_avg_us = -1;
		p->backoff_ms = BACKOFF_MIN_MS;
	}
	return l;
oom:
	snprintf(err, errsz, "out of memory");
	link_free(&l);
	return NULL;
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct link *l = arg;

	if (l->n_pending >= MAX_PENDING_HANDSHAKES) {
		log_warn("link.refused", "reason=too_many_handshakes");
		evutil_closesocket(fd);
		return;
	}
	link_conn_accept(l, fd);
}

int link_start(struct link *l, struct event_base *base, int listen_fd)
{
	struct timeval tv = { l->cfg->link_ping_interval, 0 };

	l->base = base;
	if (listen_fd >= 0) {
		l->listener = evconnlistener_new(l->base, accept_cb, l,
						 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1,
						 listen_fd);
		if (l->listener == NULL) {
			evutil_closesocket(listen_fd);
			return -1;
		}
	}
	for (size_t i = 0; i < l->n_peers; i++) {
		l->peers[i].retry_timer = evtimer_new(base, retry_cb, &l->peers[i]);
		if (l->peers[i].retry_timer == NULL)
			return -1;
	}
	if (l->n_peers > 0) {
		l->tick_ev = event_new(l->base, -1, EV_PERSIST, tick_cb, l);
		if (l->tick_ev == NULL)
			return -1;
		event_add(l->tick_ev, &tv);
	}
	for (size_t i = 0; i < l->n_peers; i++)
		dial(&l->peers[i]);
	return 0;
}

void link_free(struct link **lp)
{
	struct link *l = *lp;
	struct link_conn *c;

	if (l == NULL)
		return;
	*lp = NULL;
	l->freeing = true;
	if (l->listener != NULL)
		evconnlistener_free(l->listener);
	if (l->tick_ev != NULL) {
		event_free(l->tick_ev);
		l->tick_ev = NULL;
	}
	while ((c = LIST_FIRST(&l->pending)) != NULL)
		link_conn_close(c, "shutdown");
	for (size_t i = 0; i < l->n_peers; i++) {
		struct link_peer *p = &l->peers[i];

		if (p->out != NULL)
			link_conn_close(p->out, "shutdown");
		if (p->in != NULL)
			link_conn_close(p->in, "shutdown");
		if (p->retry_timer != NULL)
			event_free(p->retry_timer);
		free(p->fail_ms);
	}
	free(l->peers);
	link_tls_fini(l);
	free(l);
}

void link_set_handler(struct link *l, const char *path, link_handler *h, void *arg)
{
	if (l->n_routes == LINK_MAX_PATHS)
		abort();	/* a programming error: raise LINK_MAX_PATHS */
	snprintf(l->routes[l->n_routes].path, sizeof(l->routes[0].path), "%s", path);
	l->routes[l->n_routes].h = h;
	l->routes[l->n_routes].arg = arg;
	l->n_routes++;
}

const char *link_hdr_get(const struct link_hdr *h, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(h[i].name, name) == 0)
			return h[i].value;
	return NULL;
}

bool link_hdr_u64(const char *value, uint64_t *v)
{
	char *end;

	if (value == NULL || *value < '0' || *value > '9')
		return false;
	errno = 0;
	*v = strtoull(value, &end, 10);
	return errno == 0 && *end == '\0';
}

void link_set_peer_cb(struct link *l, void (*cb)(void *arg, const char *peer, bool up), void *arg)
{
	l->peer_cb = cb;
	l->peer_cb_arg = arg;
}

static struct link_peer *find_peer(struct link *l, const char *id)
{
	for (size_t i = 0; i < l->n_peers; i++)
		if (strcmp(l->peers[i].pc->id, id) == 0)
			return &l->peers[i];
	return NULL;
}

bool link_peer_usable(struct link *l, const char *peer)
{
	struct link_peer *p = find_peer(l, peer);

	return p != NULL && p->out != NULL && link_conn_ready(p->out) &&
	       !breaker_open(p, link_now_ms());
}

struct link_stream *link_request(struct link *l, const char *peer, const char *method,
				 const char *path, const struct link_hdr *h, size_t n,
				 bool has_body, const struct link_stream_cbs *cbs, void *arg)
{
	struct link_peer *p = find_peer(l, peer);
	struct link_stream *s;

	if (p == NULL)
		return NULL;
	if (!link_peer_usable(l, peer)) {
		p->streams_refused++;
		return NULL;
	}
	s = link_conn_request(p->out, method, path, h, n, has_body, cbs, arg);
	if (s == NULL) {
		p->streams_refused++;
		return NULL;
	}
	p->streams_opened++;
	return s;
}

void link_peer_failed(struct link *l, const char *peer)
{
	struct link_peer *p = find_peer(l, peer);

	if (p != NULL)
		peer_fail(p, "request failed");
}

void link_peer_foreach(struct link *l, void (*cb)(const struct link_peer_info *p, void *arg),
		       void *arg)
{
	int64_t now = link_now_ms();

	for (size_t i = 0; i < l->n_peers; i++) {
		struct link_peer *p = &l->peers[i];
		struct link_peer_info pi = {
			.id = p->pc->id,
			.addr = p->addr,
			.state = breaker_open(p, now) ? LINK_PEER_OPEN : p->state,
			.inbound = p->in != NULL && link_conn_ready(p->in),
			.rtt_us = p->out != NULL ? p->rtt_us : -1,
			.rtt_avg_us = p->rtt_avg_us,
			.failures = recent_failures(p, now),
			.connects = p->connects,
			.disconnects = p->disconnects,
			.streams_opened = p->streams_opened,
			.streams_refused = p->streams_refused,
			.streams_active = p->out != NULL ? link_conn_streams(p->out) : 0,
			.bytes_out = p->bytes_out,
			.bytes_in = p->bytes_in,
			.since = p->since,
		};
		snprintf(pi.last_error, sizeof(pi.last_error), "%s", p->last_error);
		cb(&pi, arg);
	}
}

static int cmp_rtt(const void *a, const void *b)
{
	const struct link_peer *x = *(struct link_peer *const *)a, *y = *(struct link_peer *const *)b;
	int64_t rx = x->rtt_avg_us < 0 ? INT64_MAX : x->rtt_avg_us;
	int64_t ry = y->rtt_avg_us < 0 ? INT64_MAX : y->rtt_avg_us;

	if (rx != ry)
		return rx < ry ? -1 : 1;
	return strcmp(x->pc->id, y->pc->id);
}

size_t link_peers_by_rtt(struct link *l, const char **out, size_t max)
{
	struct link_peer **v;
	size_t n = l->n_peers < max ? l->n_peers : max;

	if (l->n_peers == 0)
		return 0;
	v = malloc(l->n_peers * sizeof(*v));
	if (v == NULL)
		return 0;
	for (size_t i = 0; i < l->n_peers; i++)
		v[i] = &l->peers[i];
	qsort(v, l->n_peers, sizeof(*v), cmp_rtt);
	for (size_t i = 0; i < n; i++)
		out[i] = v[i]->pc->id;
	free(v);
	return n;
}
