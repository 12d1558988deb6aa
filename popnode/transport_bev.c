/*
 * transport_bev.c - the transport hooks over a libevent bufferevent.
 *
 * A connection starts as a socket bufferevent.  Implicit TLS wraps it at
 * once in an OpenSSL filter bufferevent; STARTTLS wraps it later, after
 * the session has queued its go-ahead line on the plain bufferevent (which
 * is flushed before any TLS byte, because the filter writes through it).
 * Plaintext input that arrived after the STARTTLS command is dropped.
 *
 * Closing: close_after_flush disables reading and waits for the output to
 * drain (write callback with an empty buffer), then reports
 * TRANSPORT_CLOSED.  The session then calls transport_free.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "log.h"
#include "transport_bev.h"

struct bev_transport {
	struct transport t;		/* first: the public part */
	struct event_base *base;
	struct bufferevent *bev;	/* what the session reads and writes */
	SSL_CTX *ssl_ctx;
	bool closing;
	bool closed_reported;
	unsigned timeout;
	/* TLS close: the filter's output drains into the socket
	 * bufferevent's; the close is reported when that is empty too. */
	struct event *flushed_ev;
	struct evbuffer_cb_entry *flush_cb;
};

static void bt_readcb(struct bufferevent *bev, void *arg);
static void bt_writecb(struct bufferevent *bev, void *arg);
static void bt_eventcb(struct bufferevent *bev, short what, void *arg);

static struct bev_transport *bt_of(struct transport *t)
{
	return (struct bev_transport *)t;
}

static struct evbuffer *bt_input(struct transport *t)
{
	return bufferevent_get_input(bt_of(t)->bev);
}

static struct evbuffer *bt_output(struct transport *t)
{
	return bufferevent_get_output(bt_of(t)->bev);
}

static void bt_apply_timeout(struct bev_transport *bt)
{
	struct timeval tv = { .tv_sec = bt->timeout, .tv_usec = 0 };

	/* The idle timeout applies to reading; a slow reader of a big
	 * RETR gets the same allowance on the write side. */
	bufferevent_set_timeouts(bt->bev, bt->timeout ? &tv : NULL, bt->timeout ? &tv : NULL);
}

static void bt_setup(struct bev_transport *bt)
{
	struct bufferevent *under = bufferevent_get_underlying(bt->bev);

	/* libevent writes at most 16 KB per syscall by default: a 50 MB
	 * RETR or FETCH would cost 3,200 writes.  Let the kernel take what
	 * fits (the output is bounded by the session's watermarks anyway). */
	bufferevent_set_max_single_write(bt->bev, TRANSPORT_OUTPUT_HIGH);
	bufferevent_set_max_single_read(bt->bev, 64 * 1024);
	if (under != NULL) {
		bufferevent_set_max_single_write(under, TRANSPORT_OUTPUT_HIGH);
		bufferevent_set_max_single_read(under, 64 * 1024);
	}
	bufferevent_setcb(bt->bev, bt_readcb, bt_writecb, bt_eventcb, bt);
	bufferevent_setwatermark(bt->bev, EV_WRITE, TRANSPORT_OUTPUT_LOW, 0);
	bt_apply_timeout(bt);
	bufferevent_enable(bt->bev, EV_READ | EV_WRITE);
}

static int bt_wrap_tls(struct bev_transport *bt, enum bufferevent_ssl_state state)
{
	SSL *ssl = SSL_new(bt->ssl_ctx);
	struct bufferevent *tb;

	if (ssl == NULL)
		return -1;
	tb = bufferevent_openssl_filter_new(bt->base, bt->bev, ssl, state,
					    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tb == NULL) {
		SSL_free(ssl);
		return -1;
	}
	/* Report a clean TLS close_notify-less EOF as EOF, not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	bt->bev = tb;
	bt->t.tls = true;
	bt->t.tls_available = false;
	bt_setup(bt);
	return 0;
}

static int bt_starttls(struct transport *t)
{
	struct bev_transport *bt = bt_of(t);
	struct evbuffer *in;

	if (bt->ssl_ctx == NULL || t->tls)
		return -1;
	/* Anything the client pipelined after STARTTLS is discarded. */
	in = bufferevent_get_input(bt->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	return bt_wrap_tls(bt, BUFFEREVENT_SSL_ACCEPTING);
}

static void bt_read_enable(struct transport *t, bool on)
{
	struct bev_transport *bt = bt_of(t);

	if (bt->closing)
		return;
	if (on)
		bufferevent_enable(bt->bev, EV_READ);
	else
		bufferevent_disable(bt->bev, EV_READ);
}

static void bt_set_timeout(struct transport *t, unsigned seconds)
{
	struct bev_transport *bt = bt_of(t);

	bt->timeout = seconds;
	bt_apply_timeout(bt);
}

static void bt_report(struct bev_transport *bt, enum transport_event ev)
{
	if (bt->closed_reported)
		return;
	if (ev != TRANSPORT_CLOSED && bt->closing)
		ev = TRANSPORT_CLOSED;
	bt->closed_reported = true;
	bufferevent_disable(bt->bev, EV_READ | EV_WRITE);
	if (bt->t.cbs != NULL && bt->t.cbs->event != NULL)
		bt->t.cbs->event(bt->t.cb_arg, ev);
}

/* Both the session-facing output and, under TLS, the socket's output are
 * empty: everything reached the kernel. */
static bool bt_all_flushed(struct bev_transport *bt)
{
	struct bufferevent *under = bufferevent_get_underlying(bt->bev);

	if (evbuffer_get_length(bufferevent_get_output(bt->bev)) != 0)
		return false;
	return under == NULL || evbuffer_get_length(bufferevent_get_output(under)) == 0;
}

static void bt_flushed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bev_transport *bt = arg;

	if (bt_all_flushed(bt))
		bt_report(bt, TRANSPORT_CLOSED);
}

/* Runs inside libevent's write path: only schedule the check. */
static void bt_under_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct bev_transport *bt = arg;

	if (evbuffer_get_length(buf) == 0 && bt->flushed_ev != NULL)
		event_active(bt->flushed_ev, EV_TIMEOUT, 0);
}

static void bt_close_after_flush(struct transport *t)
{
	struct bev_transport *bt = bt_of(t);

	if (bt->closing)
		return;
	bt->closing = true;
	bufferevent_disable(bt->bev, EV_READ);
	if (bufferevent_get_underlying(bt->bev) != NULL) {
		bt->flushed_ev = event_new(bt->base, -1, 0, bt_flushed_cb, bt);
		if (bt->flushed_ev != NULL)
			bt->flush_cb = evbuffer_add_cb(
				bufferevent_get_output(bufferevent_get_underlying(bt->bev)),
				bt_under_out_cb, bt);
	}
	/* Give a slow peer a bounded time to take the last bytes. */
	bt->timeout = bt->timeout ? bt->timeout : 30;
	bt_apply_timeout(bt);
	if (evbuffer_get_length(bufferevent_get_output(bt->bev)) == 0) {
		/* Nothing to flush: report from the loop, not from inside the
		 * session's own call. */
		bufferevent_setwatermark(bt->bev, EV_WRITE, 0, 0);
		bufferevent_trigger(bt->bev, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS | BEV_TRIG_IGNORE_WATERMARKS);
	} else {
		bufferevent_setwatermark(bt->bev, EV_WRITE, 0, 0);
	}
}

static void bt_free(struct transport *t)
{
	struct bev_transport *bt = bt_of(t);

	if (bt->flush_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_output(bufferevent_get_underlying(bt->bev)),
					 bt->flush_cb);
	if (bt->flushed_ev != NULL)
		event_free(bt->flushed_ev);
	if (bt->bev != NULL) {
		if (bt->t.tls) {
			SSL *ssl = bufferevent_openssl_get_ssl(bt->bev);

			if (ssl != NULL)
				SSL_set_shutdown(ssl, SSL_RECEIVED_SHUTDOWN);
		}
		bufferevent_free(bt->bev);
	}
	free(bt);
}

static const struct transport_ops bev_ops = {
	.input = bt_input,
	.output = bt_output,
	.starttls = bt_starttls,
	.read_enable = bt_read_enable,
	.set_timeout = bt_set_timeout,
	.close_after_flush = bt_close_after_flush,
	.free = bt_free,
};

static void bt_readcb(struct bufferevent *bev, void *arg)
{
	struct bev_transport *bt = arg;

	if (bt->closing || bt->closed_reported)
		return;
	if (bt->t.cbs != NULL && bt->t.cbs->read != NULL)
		bt->t.cbs->read(bt->t.cb_arg);
}

static void bt_writecb(struct bufferevent *bev, void *arg)
{
	struct bev_transport *bt = arg;

	if (bt->closing) {
		if (bt_all_flushed(bt))
			bt_report(bt, TRANSPORT_CLOSED);
		else if (bt->flushed_ev == NULL && bufferevent_get_underlying(bev) != NULL)
			bt_report(bt, TRANSPORT_CLOSED); /* out of memory: best effort */
		return;
	}
	if (bt->t.cbs != NULL && bt->t.cbs->drained != NULL)
		bt->t.cbs->drained(bt->t.cb_arg);
}

static void bt_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct bev_transport *bt = arg;

	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_TIMEOUT) {
		if ((what & BEV_EVENT_READING) && !bt->closing && !bt->closed_reported) {
			/* Idle: the session may still say goodbye (a final
			 * line, then close_after_flush) or free at once. */
			bufferevent_disable(bev, EV_READ);
			bufferevent_enable(bev, EV_WRITE);
			if (bt->t.cbs != NULL && bt->t.cbs->event != NULL)
				bt->t.cbs->event(bt->t.cb_arg, TRANSPORT_TIMEOUT);
			return;
		}
		/* The peer does not take our output: nothing more can be
		 * said, so this is final (an error, unless we were closing). */
		bt_report(bt, TRANSPORT_ERROR);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e;

		while ((e = bufferevent_get_openssl_error(bev)) != 0) {
			char buf[256];

			ERR_error_string_n(e, buf, sizeof(buf));
			log_debug("tls.error", "peer=%s error=\"%s\"", bt->t.peer, buf);
		}
		bt_report(bt, TRANSPORT_ERROR);
		return;
	}
	if (what & BEV_EVENT_EOF)
		bt_report(bt, TRANSPORT_EOF);
}

static void describe_peer(struct transport *t, const struct sockaddr *sa, int salen)
{
	char ip[INET6_ADDRSTRLEN];

	t->peer_ip[0] = '\0';
	snprintf(t->peer, sizeof(t->peer), "unix");
	t->local = true;
	if (sa == NULL || salen <= 0)
		return;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(t->peer_ip, sizeof(t->peer_ip), "%s", ip);
		snprintf(t->peer, sizeof(t->peer), "%s:%u", ip, ntohs(s4->sin_port));
		t->local = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(t->peer_ip, sizeof(t->peer_ip), "%s", ip);
		snprintf(t->peer, sizeof(t->peer), "[%s]:%u", ip, ntohs(s6->sin6_port));
		t->local = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			t->local = s6->sin6_addr.s6_addr[12] == 127;
	}
}

struct transport *transport_bev_new(struct event_base *base, int fd, const struct sockaddr *sa,
				    int salen, SSL_CTX *ssl_ctx, bool implicit_tls)
{
	struct bev_transport *bt = calloc(1, sizeof(*bt));

	if (bt == NULL) {
		close(fd);
		return NULL;
	}
	bt->t.ops = &bev_ops;
	bt->base = base;
	bt->ssl_ctx = ssl_ctx;
	describe_peer(&bt->t, sa, salen);
	bt->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bt->bev == NULL) {
		close(fd);
		free(bt);
		return NULL;
	}
	if (implicit_tls) {
		if (ssl_ctx == NULL || bt_wrap_tls(bt, BUFFEREVENT_SSL_ACCEPTING) < 0) {
			bufferevent_free(bt->bev);
			free(bt);
			return NULL;
		}
	} else {
		bt->t.tls_available = ssl_ctx != NULL;
		bt_setup(bt);
	}
	return &bt->t;
}

void transport_free(struct transport **tp)
{
	struct transport *t = tp != NULL ? *tp : NULL;

	if (t == NULL)
		return;
	*tp = NULL;
	if (t->on_free != NULL)
		t->on_free(t, t->on_free_arg);
	t->ops->free(t);
}
