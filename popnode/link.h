/*
 * link.h - the internal POP-to-POP link: HTTP/2 (nghttp2) over mutual TLS
 * (OpenSSL, ALPN "h2") on libevent.  docs/link.md is the protocol.
 *
 * Every node dials one connection to each configured peer and keeps it up
 * (reconnect with backoff, HTTP/2 PING for RTT and liveness, a circuit
 * breaker).  Requests this node makes to peer X travel on the connection
 * it dialled to X; connections that peers dialled to us carry their
 * requests, which are handed to the handler registered for the path.
 * HTTP/2 lets only the dialling side open streams, so a pair of POPs has
 * one connection per direction.
 *
 * A stream, on either side, is a byte pipe much like a transport: an
 * input buffer (DATA received, not yet consumed), an output buffer (to be
 * sent as DATA), and callbacks.  Flow control: the peer may send only as
 * much as the consumer has drained from the input buffer plus one window
 * (LINK_STREAM_WINDOW), so a slow consumer bounds memory at both ends.
 *
 * Lifetime: whoever holds a stream frees it with link_stream_free(); no
 * callback runs after that, and a stream may be freed inside any of its
 * callbacks.  A stream not yet finished is reset (RST_STREAM CANCEL).
 */
#ifndef POPNODE_LINK_H
#define POPNODE_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct config;
struct link;
struct link_stream;

#define LINK_STREAM_WINDOW (256 * 1024)
#define LINK_STREAM_WINDOW_MAX (16 * 1024 * 1024)
#define LINK_MAX_HEADERS 32

struct link_hdr {
	const char *name;	/* lower case */
	const char *value;
};

enum link_event {
	LINK_EV_EOF,		/* the peer ended its side (END_STREAM) */
	LINK_EV_RESET,		/* the stream was reset or the connection lost */
	LINK_EV_TIMEOUT,	/* link_stream_set_timeout() passed without input */
};

struct link_stream_cbs {
	/* Client side only: the response's headers arrived. */
	void (*response)(void *arg, int status, const struct link_hdr *h, size_t n);
	void (*read)(void *arg);	/* new bytes in link_stream_input() */
	void (*drained)(void *arg);	/* output was sent and is below LINK_OUTPUT_LOW */
	void (*event)(void *arg, enum link_event ev);
};

#define LINK_OUTPUT_HIGH (256 * 1024)
#define LINK_OUTPUT_LOW (64 * 1024)

/* A request that arrived from a peer (server side). */
struct link_request {
	const char *peer;	/* authenticated POP id of the dialler */
	const char *method;
	const char *path;	/* without the query */
	const char *query;	/* after '?', "" if none */
	const struct link_hdr *hdrs;
	size_t n_hdrs;
};

/* Server-side handler: must either take the stream (set callbacks with
 * link_stream_set_cbs and answer sooner or later with
 * link_stream_respond) or answer at once.  The request and its headers
 * are valid only during the call. */
typedef void link_handler(void *arg, struct link_stream *s, const struct link_request *req);

/* ---- the link ------------------------------------------------------------ */

/* Create from cfg (peers, link_ca/cert/key, link listener address): the
 * certificates are loaded now (start-up, as root, and --check).  NULL
 * with err set ("link_cert: ...") on a bad certificate or key.  Nothing
 * connects until link_start(). */
struct link *link_new(const struct config *cfg, char *err, size_t errsz);
/* Accept on listen_fd (bound and listening; the link owns it from now,
 * also on failure; < 0: none) and dial every peer.  0 or -1. */
int link_start(struct link *l, struct event_base *base, int listen_fd);
/* Close every connection (GOAWAY), reset every stream.  Sets *lp NULL. */
void link_free(struct link **lp);

void link_set_handler(struct link *l, const char *path, link_handler *h, void *arg);

/* The value of header name (lower case) among h[0..n), NULL if absent. */
const char *link_hdr_get(const struct link_hdr *h, size_t n, const char *name);
/* A header value that is a decimal number without sign that fits a
 * u64 (NULL: false). */
bool link_hdr_u64(const char *value, uint64_t *v);

/* Called when a peer connection comes up (to pull what changed while it
 * was away) or goes down. */
void link_set_peer_cb(struct link *l, void (*cb)(void *arg, const char *peer, bool up),
		      void *arg);

/* ---- streams ------------------------------------------------------------- */

/* Open a request stream to peer.  NULL, at once, if the peer is unknown,
 * not connected, or its circuit breaker is open (never queued: callers
 * answer "temporarily unavailable").  has_body false: END_STREAM with
 * the headers; otherwise write to link_stream_output() and call
 * link_stream_end(). */
struct link_stream *link_request(struct link *l, const char *peer, const char *method,
				 const char *path, const struct link_hdr *h, size_t n,
				 bool has_body, const struct link_stream_cbs *cbs, void *arg);
/* Server side: send the response headers.  end: no body follows. */
int link_stream_respond(struct link_stream *s, int status, const struct link_hdr *h, size_t n,
			bool end);
void link_stream_set_cbs(struct link_stream *s, const struct link_stream_cbs *cbs, void *arg);
struct evbuffer *link_stream_input(struct link_stream *s);
/* Bytes added here are sent as DATA frames as flow control allows. */
struct evbuffer *link_stream_output(struct link_stream *s);
/* Send END_STREAM once the output is sent.  No more output after. */
void link_stream_end(struct link_stream *s);
/* While off, the read callback is not called (input still buffers up to
 * one window). */
void link_stream_read_enable(struct link_stream *s, bool on);
/* LINK_EV_TIMEOUT when no input arrives for that long (0 = never). */
void link_stream_set_timeout(struct link_stream *s, unsigned seconds);
/* Let the peer have up to bytes (LINK_STREAM_WINDOW..LINK_STREAM_WINDOW_MAX)
 * of this stream's DATA in flight instead of LINK_STREAM_WINDOW: for bulk
 * streams (replication, snapshots) whose consumer takes input out of
 * link_stream_input() into a bounded buffer of its own, so that a long
 * round trip does not cap them at a window per RTT.  On the side that
 * opened the stream, call it once the response arrived (before, the
 * stream is not open at the HTTP/2 layer and nothing changes).  0, or
 * -1. */
int link_stream_set_window(struct link_stream *s, uint32_t bytes);
const char *link_stream_peer(const struct link_stream *s);
void link_stream_free(struct link_stream **sp);

/* Count a failure against the peer's breaker (a request that timed out,
 * an answer that made no sense). */
void link_peer_failed(struct link *l, const char *peer);

/* ---- state for status, metrics, popctl peers ------------------------------ */

enum link_peer_state {
	LINK_PEER_CONNECTING,
	LINK_PEER_UP,
	LINK_PEER_DOWN,		/* not connected; retrying after backoff */
	LINK_PEER_OPEN,		/* breaker open: failing fast until probe */
};

struct link_peer_info {
	const char *id;
	const char *addr;		/* "host:port" */
	enum link_peer_state state;
	bool inbound;			/* the peer's connection to us is up */
	int64_t rtt_us;			/* last PING RTT, -1 unknown */
	int64_t rtt_avg_us;		/* smoothed (EWMA 1/8), -1 unknown */
	unsigned failures;		/* in the breaker's window */
	uint64_t connects, disconnects;
	uint64_t streams_opened, streams_refused;
	unsigned streams_active;
	uint64_t bytes_out, bytes_in;
	int64_t since;			/* unix time of the last state change */
	char last_error[128];
	uint64_t dir_lseq;		/* filled by status: the peer's directory
					 * position applied here (dirsync.h) */
};

const char *link_peer_state_name(enum link_peer_state s);
/* Calls cb for every configured peer, in config order. */
void link_peer_foreach(struct link *l, void (*cb)(const struct link_peer_info *p, void *arg),
		       void *arg);
/* true if a request to peer would be attempted now. */
bool link_peer_usable(struct link *l, const char *peer);
/* Peer ids, nearest first by smoothed RTT (unknown RTT last).  Returns
 * how many were written (at most max). */
size_t link_peers_by_rtt(struct link *l, const char **out, size_t max);

#endif
