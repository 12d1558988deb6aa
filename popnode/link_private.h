/*
 * link_private.h - what link.c (peers, dialling, breaker, PING),
 * link_conn.c (one TLS + HTTP/2 connection), link_stream.c (the streams
 * on it) and link_tls.c (the mutual-TLS contexts) share.  Nobody else
 * includes it.
 */
#ifndef POPNODE_LINK_PRIVATE_H
#define POPNODE_LINK_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include "config.h"
#include "link.h"

struct bufferevent;
struct evconnlistener;
struct event;

#define LINK_MAX_PATHS 16
#define LINK_BREAKER_MAX 1000

struct link_conn;

struct link_peer {
	struct link *l;
	const struct peer_conf *pc;
	char addr[80];
	struct link_conn *out;		/* the connection we dialled */
	struct link_conn *in;		/* the latest one the peer dialled */
	enum link_peer_state state;
	struct event *retry_timer;
	unsigned backoff_ms;
	/* breaker: times (ms, monotonic) of recent failures, a ring */
	int64_t *fail_ms;
	unsigned fail_head, fail_n;
	int64_t open_until_ms;		/* breaker open until then */
	bool probing;			/* half-open: this connect is the probe */
	int64_t rtt_us, rtt_avg_us;
	bool ping_outstanding;
	int64_t ping_sent_ms;
	uint64_t connects, disconnects, streams_opened, streams_refused;
	uint64_t bytes_out, bytes_in;
	int64_t since;
	char last_error[128];
};

struct link_route {
	char path[64];
	link_handler *h;
	void *arg;
};

struct link {
	struct event_base *base;
	const struct config *cfg;
	SSL_CTX *client_ctx, *server_ctx;
	struct evconnlistener *listener;
	struct event *tick_ev;			/* PING every link_ping_interval */
	struct link_peer *peers;
	size_t n_peers;
	struct link_route routes[LINK_MAX_PATHS];
	size_t n_routes;
	void (*peer_cb)(void *arg, const char *peer, bool up);
	void *peer_cb_arg;
	LIST_HEAD(, link_conn) pending;	/* inbound, handshake not done */
	unsigned n_pending;
	bool freeing;
};

/* ---- a connection and its streams: link_conn.c's nghttp2 callbacks
 * fill in streams, link_stream.c's streams drive the connection ---- */

struct link_conn {
	struct link *l;
	struct link_peer *peer;		/* NULL until an inbound handshake names it */
	bool outbound;
	bool up;			/* the peer's SETTINGS arrived: usable */
	bool settings_seen;
	struct bufferevent *bev;	/* the TLS filter */
	struct bufferevent *raw;	/* the socket, until the filter owns it */
	SSL *ssl;
	nghttp2_session *h2;
	struct event *flush_ev;
	LIST_HEAD(, link_stream) streams;
	unsigned n_streams;
	LIST_ENTRY(link_conn) pending_entry;	/* inbound before handshake */
	bool in_pending;
};

struct link_stream {
	struct link_conn *c;		/* NULL once the stream or connection closed */
	struct link_peer *peer;
	int32_t id;
	bool server;
	struct evbuffer *in, *out;
	const struct link_stream_cbs *cbs;
	void *arg;
	struct event *notify;
	struct event *timer;
	unsigned timeout;
	/* request (server side) or response (client side) headers */
	char *hname[LINK_MAX_HEADERS], *hval[LINK_MAX_HEADERS];
	size_t n_hdrs, hbytes;
	int status;
	char *method, *path;
	/* pending notifications */
	bool p_request, p_response, p_read, p_drained, p_eof, p_reset, p_timeout;
	bool provider;			/* a data provider is attached */
	bool responded;			/* server: response headers submitted */
	bool deferred;			/* ... and it returned DEFERRED */
	bool end_req;			/* link_stream_end() called */
	bool remote_eof;
	bool closed;			/* nghttp2 closed it, or the connection went */
	bool read_on;
	bool user_gone;
	bool dispatched;		/* server: handed to its handler */
	bool in_dispatch;
	LIST_ENTRY(link_stream) entry;
};

/* ---- link_tls.c ---- */
/* Both contexts: TLS 1.3, cluster CA, our certificate, ALPN h2.  The
 * server demands a client certificate whose name is a configured peer. */
int link_tls_init(struct link *l, char *err, size_t errsz);
void link_tls_fini(struct link *l);
/* The configured peer whose name the verified certificate carries. */
struct link_peer *link_tls_peer_of(struct link *l, SSL *ssl);
/* Is "h2" what ALPN chose? */
bool link_tls_alpn_ok(SSL *ssl);

/* ---- link_conn.c ---- */
/* Dial peer p (TLS handshake, then HTTP/2).  link_conn_up() or
 * link_conn_gone() follows.  NULL if it could not even start. */
struct link_conn *link_conn_dial(struct link *l, struct link_peer *p);
/* An accepted socket: the TLS handshake identifies the peer. */
void link_conn_accept(struct link *l, int fd);
/* Tear down now: every stream gets LINK_EV_RESET, link_conn_gone() is
 * called, reason is logged.  Not from inside nghttp2 callbacks. */
void link_conn_close(struct link_conn *c, const char *reason);
struct link_peer *link_conn_peer(const struct link_conn *c);
bool link_conn_outbound(const struct link_conn *c);
bool link_conn_ready(const struct link_conn *c);
unsigned link_conn_streams(const struct link_conn *c);
int link_conn_ping(struct link_conn *c);
/* Have nghttp2's pending output sent (soon, from the event loop). */
void link_conn_schedule(struct link_conn *c);

/* ---- link_stream.c ---- */
struct link_stream *link_conn_request(struct link_conn *c, const char *method, const char *path,
				      const struct link_hdr *h, size_t n, bool has_body,
				      const struct link_stream_cbs *cbs, void *arg);
/* A stream on c, with its buffers and events, in c->streams. */
struct link_stream *link_stream_new(struct link_conn *c, bool server);
/* Have notify_cb deliver the p_* flags soon (no-op while it runs). */
void link_stream_notify(struct link_stream *s);
/* A frame arrived for it: restart its timeout, if it has one. */
void link_stream_touch(struct link_stream *s);
/* The stream is finished at the HTTP/2 level (or its connection is gone);
 * reset: the user hears LINK_EV_RESET.  May free the stream. */
void link_stream_detach(struct link_stream *s, bool reset);

/* ---- link.c, called by link_conn.c and link_stream.c ---- */
void link_conn_up(struct link_conn *c);			/* handshake done, h2 ready */
void link_conn_gone(struct link_conn *c, const char *reason);	/* before it is freed */
void link_conn_pong(struct link_conn *c, int64_t rtt_us);
const struct link_route *link_route_find(struct link *l, const char *path);
void link_peer_count(struct link_peer *p, uint64_t in, uint64_t out);
int64_t link_now_ms(void);

#endif
