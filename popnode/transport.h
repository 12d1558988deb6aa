/*
 * transport.h - the byte pipe a protocol session talks to.
 *
 * A session (LMTP, POP3, IMAP) never touches sockets, TLS or HTTP/2
 * streams: it reads from transport_input(), writes to transport_output()
 * and gets three callbacks.  The implementation is a table of hooks
 * (struct transport_ops); transport_bev.c provides one over a libevent
 * bufferevent (TCP or Unix socket, plain, implicit TLS or STARTTLS), and a
 * tunnelled session will get one over an HTTP/2 stream.
 *
 * Lifetime rule: the session owns the transport and frees it with
 * transport_free().  Callbacks are never invoked after transport_free(),
 * and a session may free itself (and the transport) inside any callback
 * as long as it returns at once.
 */
#ifndef POPNODE_TRANSPORT_H
#define POPNODE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;
struct transport;

enum transport_event {
	TRANSPORT_EOF,		/* peer closed */
	TRANSPORT_ERROR,	/* socket or TLS error */
	TRANSPORT_TIMEOUT,	/* idle timeout passed; output still works: the
				 * session may queue a last line and call
				 * close_after_flush, or free the transport */
	TRANSPORT_CLOSED,	/* close_after_flush finished */
};

struct transport_cbs {
	void (*read)(void *arg);	/* new bytes in transport_input() */
	void (*drained)(void *arg);	/* output fell below the low watermark */
	void (*event)(void *arg, enum transport_event ev);
};

struct transport_ops {
	struct evbuffer *(*input)(struct transport *t);
	struct evbuffer *(*output)(struct transport *t);
	/* Start TLS as server now.  The caller has queued its go-ahead reply
	 * in the output; it is sent in plaintext before the handshake.  Input
	 * not yet read is discarded (no command injection across STARTTLS).
	 * 0, or -1 if TLS is not available. */
	int (*starttls)(struct transport *t);
	void (*read_enable)(struct transport *t, bool on);
	void (*set_timeout)(struct transport *t, unsigned seconds);
	/* Flush output, then report TRANSPORT_CLOSED.  No reads after this. */
	void (*close_after_flush)(struct transport *t);
	void (*free)(struct transport *t);
};

struct transport {
	const struct transport_ops *ops;
	const struct transport_cbs *cbs;
	void *cb_arg;
	char peer[64];		/* "1.2.3.4:5678", "[::1]:5678" or "unix" */
	char peer_ip[48];	/* address only, "" for unix */
	bool local;		/* loopback or unix socket */
	bool tls;		/* TLS is active now */
	bool tls_available;	/* starttls() can succeed */
	/* Called from transport_free(), set by whoever accepted the
	 * connection (session accounting). */
	void (*on_free)(struct transport *t, void *arg);
	void *on_free_arg;
};

static inline void transport_set_cbs(struct transport *t, const struct transport_cbs *cbs,
				     void *arg)
{
	t->cbs = cbs;
	t->cb_arg = arg;
}
static inline struct evbuffer *transport_input(struct transport *t) { return t->ops->input(t); }
static inline struct evbuffer *transport_output(struct transport *t) { return t->ops->output(t); }
static inline int transport_starttls(struct transport *t) { return t->ops->starttls(t); }
static inline void transport_read_enable(struct transport *t, bool on) { t->ops->read_enable(t, on); }
static inline void transport_set_timeout(struct transport *t, unsigned s) { t->ops->set_timeout(t, s); }
static inline void transport_close_after_flush(struct transport *t) { t->ops->close_after_flush(t); }
/* Frees the transport; sets *tp NULL; accepts NULL. */
void transport_free(struct transport **tp);

/* Output above this many bytes: a session should stop producing until
 * the drained callback (backpressure).  */
#define TRANSPORT_OUTPUT_HIGH (256 * 1024)
#define TRANSPORT_OUTPUT_LOW (64 * 1024)

#endif
