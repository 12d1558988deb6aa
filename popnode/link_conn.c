/*
 * link_conn.c - one link connection: a TLS bufferevent carrying an
 * nghttp2 session (client if we dialled, server if the peer did), its
 * nghttp2 callbacks, PING and teardown.  The streams on it are in
 * link_stream.c.
 *
 * nghttp2 does no I/O here: input is fed with nghttp2_session_mem_recv
 * from the read callback, output taken with nghttp2_session_mem_send
 * into the bufferevent while its output is below CONN_OUT_HIGH.
 *
 * User callbacks never run inside nghttp2's callbacks: those only record
 * what happened on the stream (p_* flags) and activate the stream's
 * notify event; notify_cb then calls the user, who may free the stream
 * (or write to it) freely.
 *
 * Flow control: the connection window is given back as soon as DATA
 * arrives (consume_connection), a stream's window only when its consumer
 * removes bytes from the input buffer (an evbuffer callback calls
 * consume_stream).  So a stream whose consumer is slow holds at most one
 * stream window, and never stalls the other streams.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>

#include "link_private.h"
#include "log.h"

#define CONN_OUT_HIGH (512 * 1024)
#define CONN_WINDOW (64 * 1024 * 1024)
#define MAX_CONCURRENT 20000
#define MAX_HEADER_BYTES (16 * 1024)
#define MAX_FRAME (128 * 1024)	/* largest DATA frame we accept */

int64_t link_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void link_conn_schedule(struct link_conn *c)
{
	if (c != NULL && c->flush_ev != NULL)
		event_active(c->flush_ev, EV_WRITE, 0);
}

/* ---- nghttp2 callbacks ---------------------------------------------------- */

static struct link_stream *stream_of(nghttp2_session *h2, int32_t id)
{
	return nghttp2_session_get_stream_user_data(h2, id);
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
	struct link_conn *c = user;
	struct link_stream *s;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (c->outbound)
		return NGHTTP2_ERR_CALLBACK_FAILURE;	/* we never serve on our dial */
	s = link_stream_new(c, true);
	if (s == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	s->id = f->hd.stream_id;
	nghttp2_session_set_stream_user_data(h2, s->id, s);
	s->user_gone = false;
	return 0;
}

static char *dupn(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s != NULL) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user)
{
	struct link_stream *s = stream_of(h2, f->hd.stream_id);

	if (s == NULL || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	s->hbytes += namelen + valuelen;
	if (s->hbytes > MAX_HEADER_BYTES)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (namelen > 0 && name[0] == ':') {
		if (namelen == 7 && memcmp(name, ":method", 7) == 0 && s->method == NULL)
			s->method = dupn(value, valuelen);
		else if (namelen == 5 && memcmp(name, ":path", 5) == 0 && s->path == NULL)
			s->path = dupn(value, valuelen);
		else if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
			char buf[8];
			if (valuelen >= sizeof(buf))
				return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
			memcpy(buf, value, valuelen);
			buf[valuelen] = '\0';
			s->status = atoi(buf);
		}
		return 0;
	}
	if (f->headers.cat == NGHTTP2_HCAT_HEADERS)
		return 0;	/* trailers: none in our protocol */
	if (s->n_hdrs == LINK_MAX_HEADERS)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	s->hname[s->n_hdrs] = dupn(name, namelen);
	s->hval[s->n_hdrs] = dupn(value, valuelen);
	if (s->hname[s->n_hdrs] == NULL || s->hval[s->n_hdrs] == NULL) {
		free(s->hname[s->n_hdrs]);
		free(s->hval[s->n_hdrs]);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	s->n_hdrs++;
	return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
	struct link_conn *c = user;
	struct link_stream *s;

	if (f->hd.type == NGHTTP2_SETTINGS && (f->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
		c->settings_seen = true;	/* link_conn_up() after mem_recv */
		return 0;
	}
	if (f->hd.type == NGHTTP2_PING) {
		if ((f->hd.flags & NGHTTP2_FLAG_ACK) != 0) {
			int64_t sent;
			memcpy(&sent, f->ping.opaque_data, sizeof(sent));
			link_conn_pong(c, now_us() - sent);
		}
		return 0;
	}
	if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
		return 0;
	s = stream_of(h2, f->hd.stream_id);
	if (s == NULL)
		return 0;
	link_stream_touch(s);
	if (f->hd.type == NGHTTP2_HEADERS) {
		if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
			if (s->method == NULL || s->path == NULL) {
				nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, s->id,
							  NGHTTP2_PROTOCOL_ERROR);
				return 0;
			}
			s->p_request = true;
		} else if (f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
			if (s->status >= 100 && s->status < 200) {
				s->n_hdrs = 0;	/* interim: wait for the final one */
				return 0;
			}
			s->p_response = true;
		}
	}
	if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
		s->remote_eof = true;
		s->p_eof = true;
		s->p_read = true;
	}
	link_stream_notify(s);
	return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *user)
{
	struct link_conn *c = user;
	struct link_stream *s = stream_of(h2, id);

	nghttp2_session_consume_connection(h2, len);
	if (s == NULL || s->user_gone) {
		nghttp2_session_consume_stream(h2, id, len);
		return 0;
	}
	if (evbuffer_add(s->in, data, len) != 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	(void)c;
	s->p_read = true;
	link_stream_notify(s);
	return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t error_code, void *user)
{
	struct link_stream *s = stream_of(h2, id);

	if (s == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(h2, id, NULL);
	link_stream_detach(s, error_code != NGHTTP2_NO_ERROR || !s->remote_eof);
	return 0;
}

static int send_data_cb(nghttp2_session *h2, nghttp2_frame *frame, const uint8_t *framehd,
			size_t length, nghttp2_data_source *src, void *user)
{
	struct link_conn *c = user;
	struct link_stream *s = src->ptr;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (frame->data.padlen > 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;	/* we never pad */
	if (evbuffer_add(out, framehd, 9) != 0 ||
	    evbuffer_remove_buffer(s->out, out, length) != (int)length)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	if (c->peer != NULL)
		link_peer_count(c->peer, 0, 9 + length);
	return 0;
}

/* ---- the connection -------------------------------------------------------- */

static void conn_flush(struct link_conn *c);

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_flush(arg);
}

static void conn_free(struct link_conn *c)
{
	struct link_stream *s;

	while ((s = LIST_FIRST(&c->streams)) != NULL) {
		if (c->h2 != NULL)
			nghttp2_session_set_stream_user_data(c->h2, s->id, NULL);
		link_stream_detach(s, true);
	}
	if (c->in_pending) {
		LIST_REMOVE(c, pending_entry);
		c->l->n_pending--;
	}
	if (c->h2 != NULL)
		nghttp2_session_del(c->h2);
	if (c->bev != NULL)
		bufferevent_free(c->bev);	/* frees the SSL and closes the fd */
	if (c->flush_ev != NULL)
		event_free(c->flush_ev);
	free(c);
}

void link_conn_close(struct link_conn *c, const char *reason)
{
	if (c->peer != NULL || c->outbound)
		link_conn_gone(c, reason);
	else
		log_info("link.inbound_closed", "reason=\"%s\"", reason);
	conn_free(c);
}

static void conn_flush(struct link_conn *c)
{
	struct evbuffer *out;

	if (c->h2 == NULL)
		return;
	out = bufferevent_get_output(c->bev);
	while (evbuffer_get_length(out) < CONN_OUT_HIGH) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->h2, &data);

		if (n < 0) {
			link_conn_close(c, nghttp2_strerror((int)n));
			return;
		}
		if (n == 0)
			break;
		if (evbuffer_add(out, data, (size_t)n) != 0) {
			link_conn_close(c, "out of memory");
			return;
		}
		if (c->peer != NULL)
			link_peer_count(c->peer, 0, (uint64_t)n);
	}
	if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) &&
	    evbuffer_get_length(out) == 0)
		link_conn_close(c, "session ended");
}

static void set_idle_timeout(struct link_conn *c)
{
	if (c->outbound) {
		bufferevent_set_timeouts(c->bev, NULL, NULL);	/* PING watches it */
	} else {
		/* The peer pings every link_ping_interval: silence for
		 * three intervals (at least link_timeout) means it is gone. */
		struct timeval tv = { 3 * c->l->cfg->link_ping_interval, 0 };
		if (tv.tv_sec < (time_t)c->l->cfg->link_timeout)
			tv.tv_sec = c->l->cfg->link_timeout;
		bufferevent_set_timeouts(c->bev, &tv, NULL);
	}
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct link_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (c->h2 == NULL)
		return;
	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		ssize_t n;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		n = nghttp2_session_mem_recv(c->h2, v.iov_base, v.iov_len);
		if (n < 0) {
			link_conn_close(c, nghttp2_strerror((int)n));
			return;
		}
		if (c->peer != NULL)
			link_peer_count(c->peer, (uint64_t)n, 0);
		evbuffer_drain(in, (size_t)n);
	}
	/* Up only once the peer spoke HTTP/2: with TLS 1.3 a client's
	 * handshake ends before the server has checked its certificate. */
	if (!c->up && c->settings_seen) {
		c->up = true;
		set_idle_timeout(c);
		link_conn_up(c);
	}
	conn_flush(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	conn_flush(arg);
}

static void ssl_errors(struct link_conn *c, char *buf, size_t sz)
{
	unsigned long e;
	long vr = c->ssl != NULL ? SSL_get_verify_result(c->ssl) : X509_V_OK;

	buf[0] = '\0';
	if (vr != X509_V_OK) {
		snprintf(buf, sz, "certificate: %s", X509_verify_cert_error_string(vr));
		while (bufferevent_get_openssl_error(c->bev) != 0)
			;
		return;
	}
	if ((e = bufferevent_get_openssl_error(c->bev)) != 0) {
		ERR_error_string_n(e, buf, sz);
		while (bufferevent_get_openssl_error(c->bev) != 0)
			;
	}
	if (buf[0] == '\0')
		snprintf(buf, sz, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* DATA frames as large as the peer allows (nghttp2 sends 16 KB frames
 * otherwise): fewer frames, fewer copies and TLS records for a FETCH. */
static ssize_t data_length(nghttp2_session *h2, uint8_t type, int32_t id, int32_t conn_window,
			   int32_t stream_window, uint32_t max_frame, void *user)
{
	int32_t n = conn_window < stream_window ? conn_window : stream_window;

	if ((uint32_t)n > max_frame)
		n = (int32_t)max_frame;
	return n > 0 ? n : 1;
}

static int start_h2(struct link_conn *c)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	nghttp2_settings_entry iv[4] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_CONCURRENT },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, LINK_STREAM_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_BYTES },
		{ NGHTTP2_SETTINGS_MAX_FRAME_SIZE, MAX_FRAME },
	};
	int rv;

	if (nghttp2_session_callbacks_new(&cb) != 0)
		return -1;
	if (nghttp2_option_new(&opt) != 0) {
		nghttp2_session_callbacks_del(cb);
		return -1;
	}
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_session_callbacks_set_data_source_read_length_callback(cb, data_length);
	nghttp2_session_callbacks_set_send_data_callback(cb, send_data_cb);
	rv = c->outbound ? nghttp2_session_client_new2(&c->h2, cb, c, opt)
			 : nghttp2_session_server_new2(&c->h2, cb, c, opt);
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (rv != 0)
		return -1;
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 4) != 0 ||
	    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0)
		return -1;
	return 0;
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct link_conn *c = arg;
	char why[200];

	if ((what & BEV_EVENT_CONNECTED) != 0) {
		if (!link_tls_alpn_ok(c->ssl)) {
			link_conn_close(c, "peer did not negotiate h2");
			return;
		}
		if (!c->outbound) {
			c->peer = link_tls_peer_of(c->l, c->ssl);
			if (c->peer == NULL) {
				link_conn_close(c, "certificate names no peer");
				return;
			}
			LIST_REMOVE(c, pending_entry);
			c->in_pending = false;
			c->l->n_pending--;
		}
		if (start_h2(c) < 0) {
			link_conn_close(c, "cannot start HTTP/2");
			return;
		}
		conn_flush(c);	/* our preface */
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) != 0)
		snprintf(why, sizeof(why), c->up ? "idle timeout" : "handshake timeout");
	else if ((what & BEV_EVENT_EOF) != 0 && c->up)
		snprintf(why, sizeof(why), "connection closed by peer");
	else if ((what & BEV_EVENT_EOF) != 0)
		snprintf(why, sizeof(why), "connection failed before the handshake ended: %s",
			 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else
		ssl_errors(c, why, sizeof(why));
	link_conn_close(c, why);
}

/* The socket's own bufferevent under an OpenSSL filter: TLS records then
 * leave in writes of up to 256 KB instead of one write(2) per 16 KB
 * record, and TCP_NODELAY keeps small frames (a command, a PING, a
 * WINDOW_UPDATE) from waiting for the peer's delayed ACK (40 ms). */
static struct link_conn *conn_new(struct link *l, struct link_peer *p, int fd,
				  const struct sockaddr *sa, int salen)
{
	struct link_conn *c = calloc(1, sizeof(*c));
	struct timeval tv = { l->cfg->link_timeout, 0 };
	bool outbound = sa != NULL;
	int one = 1;

	if (c == NULL) {
		if (fd >= 0)
			evutil_closesocket(fd);
		return NULL;
	}
	c->l = l;
	c->peer = p;
	c->outbound = outbound;
	LIST_INIT(&c->streams);
	c->ssl = SSL_new(outbound ? l->client_ctx : l->server_ctx);
	c->flush_ev = event_new(l->base, -1, 0, flush_cb, c);
	if (c->ssl == NULL || c->flush_ev == NULL)
		goto fail;
	if (outbound) {
		SSL_set_tlsext_host_name(c->ssl, p->pc->id);
		if (SSL_set1_host(c->ssl, p->pc->id) != 1)
			goto fail;
	}
	c->raw = bufferevent_socket_new(l->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->raw == NULL)
		goto fail;
	fd = -1;
	bufferevent_set_max_single_write(c->raw, 256 * 1024);
	bufferevent_set_max_single_read(c->raw, 256 * 1024);
	if (outbound && bufferevent_socket_connect(c->raw, sa, salen) != 0)
		goto fail;
	setsockopt(bufferevent_getfd(c->raw), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->bev = bufferevent_openssl_filter_new(l->base, c->raw, c->ssl,
						outbound ? BUFFEREVENT_SSL_CONNECTING
							 : BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (c->bev == NULL)
		goto fail;
	c->raw = NULL;		/* freed with the filter */
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_set_max_single_write(c->bev, 256 * 1024);
	bufferevent_set_max_single_read(c->bev, 256 * 1024);
	bufferevent_setwatermark(c->bev, EV_WRITE, CONN_OUT_HIGH / 2, 0);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_set_timeouts(c->bev, &tv, NULL);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return c;
fail:
	if (c->bev == NULL && c->ssl != NULL)
		SSL_free(c->ssl);
	c->ssl = NULL;
	if (c->raw != NULL)
		bufferevent_free(c->raw);
	c->raw = NULL;
	if (fd >= 0)
		evutil_closesocket(fd);
	conn_free(c);
	return NULL;
}

struct link_conn *link_conn_dial(struct link *l, struct link_peer *p)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char hp[100];

	snprintf(hp, sizeof(hp), "%s", p->addr);
	if (evutil_parse_sockaddr_port(hp, (struct sockaddr *)&ss, &sslen) != 0)
		return NULL;
	return conn_new(l, p, -1, (struct sockaddr *)&ss, sslen);
}

void link_conn_accept(struct link *l, int fd)
{
	struct link_conn *c;

	evutil_make_socket_nonblocking(fd);
	c = conn_new(l, NULL, fd, NULL, 0);
	if (c == NULL)
		return;
	LIST_INSERT_HEAD(&l->pending, c, pending_entry);
	c->in_pending = true;
	l->n_pending++;
}

bool link_conn_ready(const struct link_conn *c) { return c->up; }
unsigned link_conn_streams(const struct link_conn *c) { return c->n_streams; }
struct link_peer *link_conn_peer(const struct link_conn *c) { return c->peer; }
bool link_conn_outbound(const struct link_conn *c) { return c->outbound; }

int link_conn_ping(struct link_conn *c)
{
	int64_t t = now_us();
	uint8_t opaque[8];

	if (!c->up)
		return -1;
	memcpy(opaque, &t, sizeof(t));
	if (nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, opaque) != 0)
		return -1;
	link_conn_schedule(c);
	return 0;
}
