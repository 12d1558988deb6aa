/*
 * link_stream.c - the streams of a link connection (link_conn.c): struct
 * link_stream's life, opening requests (link_conn_request), serving them
 * (dispatch to the handler registered for the path), the data provider
 * that sends a stream's output, and the link_stream_* API of link.h.
 *
 * link_conn.c's nghttp2 callbacks only record what happened on a stream
 * (p_* flags) and call link_stream_notify(); notify_cb here calls the
 * user.  A stream's window is given back as its consumer drains the
 * input (in_cb).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>

#include "link_private.h"
#include "log.h"

static void notify_cb(evutil_socket_t fd, short what, void *arg);

void link_stream_notify(struct link_stream *s)
{
	if (!s->in_dispatch)
		event_active(s->notify, EV_READ, 0);
}

static void stream_destroy(struct link_stream *s)
{
	if (s->c != NULL) {
		LIST_REMOVE(s, entry);
		s->c->n_streams--;
		nghttp2_session_set_stream_user_data(s->c->h2, s->id, NULL);
		s->c = NULL;
	}
	for (size_t i = 0; i < s->n_hdrs; i++) {
		free(s->hname[i]);
		free(s->hval[i]);
	}
	free(s->method);
	free(s->path);
	if (s->timer != NULL)
		event_free(s->timer);
	event_free(s->notify);
	evbuffer_free(s->in);
	evbuffer_free(s->out);
	free(s);
}

/* The stream is finished at the HTTP/2 level (or its connection is gone). */
void link_stream_detach(struct link_stream *s, bool reset)
{
	if (s->c != NULL) {
		LIST_REMOVE(s, entry);
		s->c->n_streams--;
		s->c = NULL;
	}
	s->closed = true;
	/* Nobody holds a request that was never handed to its handler
	 * (reset, or malformed, before its headers ended). */
	if (s->user_gone || (s->server && !s->dispatched)) {
		if (!s->in_dispatch)
			stream_destroy(s);
		return;
	}
	if (reset) {
		s->p_reset = true;
		link_stream_notify(s);
	}
}

static void in_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct link_stream *s = arg;

	if (info->n_deleted == 0 || s->c == NULL)
		return;
	nghttp2_session_consume_stream(s->c->h2, s->id, info->n_deleted);
	link_conn_schedule(s->c);
}

static void out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct link_stream *s = arg;

	if (info->n_added > 0 && s->deferred && s->c != NULL) {
		s->deferred = false;
		nghttp2_session_resume_data(s->c->h2, s->id);
		link_conn_schedule(s->c);
	}
	/* Like a bufferevent's write callback: whenever bytes went out and
	 * what is left is below the low watermark (a writer that stopped
	 * on its own measure, e.g. COMPRESS on its plain-text buffer,
	 * needs to hear about every such moment, not only crossings). */
	if (info->n_deleted > 0 && evbuffer_get_length(b) < LINK_OUTPUT_LOW && !s->user_gone) {
		s->p_drained = true;
		link_stream_notify(s);
	}
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link_stream *s = arg;

	s->p_timeout = true;
	link_stream_notify(s);
}

void link_stream_touch(struct link_stream *s)
{
	if (s->timer != NULL && s->timeout > 0) {
		struct timeval tv = { s->timeout, 0 };
		evtimer_add(s->timer, &tv);
	}
}

struct link_stream *link_stream_new(struct link_conn *c, bool server)
{
	struct link_stream *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->in = evbuffer_new();
	s->out = evbuffer_new();
	s->notify = event_new(c->l->base, -1, 0, notify_cb, s);
	s->timer = evtimer_new(c->l->base, timer_cb, s);
	if (s->in == NULL || s->out == NULL || s->notify == NULL || s->timer == NULL) {
		if (s->in) evbuffer_free(s->in);
		if (s->out) evbuffer_free(s->out);
		if (s->notify) event_free(s->notify);
		if (s->timer) event_free(s->timer);
		free(s);
		return NULL;
	}
	evbuffer_add_cb(s->in, in_cb, s);
	evbuffer_add_cb(s->out, out_cb, s);
	s->c = c;
	s->peer = c->peer;
	s->server = server;
	s->read_on = true;
	LIST_INSERT_HEAD(&c->streams, s, entry);
	c->n_streams++;
	return s;
}

/* DATA without copying: say how much to send (NO_COPY); send_data_cb
 * then moves those bytes from the stream's output to the connection's,
 * chain by chain, behind the frame header. */
static ssize_t data_read_cb(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
			    uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct link_stream *s = src->ptr;
	size_t have;

	if (s == NULL || (s->user_gone && !s->end_req))
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	have = evbuffer_get_length(s->out);
	if (have > len)
		have = len;
	if (have == evbuffer_get_length(s->out) && s->end_req)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	else if (have == 0) {
		s->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (have > 0)
		*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	return (ssize_t)have;
}

static void fill_nv(nghttp2_nv *nv, const char *name, const char *value)
{
	nv->name = (uint8_t *)name;
	nv->namelen = strlen(name);
	nv->value = (uint8_t *)value;
	nv->valuelen = strlen(value);
	nv->flags = NGHTTP2_NV_FLAG_NONE;
}

struct link_stream *link_conn_request(struct link_conn *c, const char *method, const char *path,
				      const struct link_hdr *h, size_t n, bool has_body,
				      const struct link_stream_cbs *cbs, void *arg)
{
	nghttp2_nv nv[LINK_MAX_HEADERS + 4];
	nghttp2_data_provider prd;
	struct link_stream *s;
	size_t k = 0;
	int32_t id;

	if (!c->up || n > LINK_MAX_HEADERS || !c->outbound)
		return NULL;
	s = link_stream_new(c, false);
	if (s == NULL)
		return NULL;
	fill_nv(&nv[k++], ":method", method);
	fill_nv(&nv[k++], ":scheme", "https");
	fill_nv(&nv[k++], ":authority", c->peer->pc->id);
	fill_nv(&nv[k++], ":path", path);
	for (size_t i = 0; i < n; i++)
		fill_nv(&nv[k++], h[i].name, h[i].value);
	prd.source.ptr = s;
	prd.read_callback = data_read_cb;
	s->provider = has_body;
	s->end_req = !has_body;
	id = nghttp2_submit_request(c->h2, NULL, nv, k, has_body ? &prd : NULL, s);
	if (id < 0) {
		log_warn("link.request_failed", "peer=%s error=\"%s\"", c->peer->pc->id,
			 nghttp2_strerror(id));
		LIST_REMOVE(s, entry);
		c->n_streams--;
		s->c = NULL;
		stream_destroy(s);
		return NULL;
	}
	s->id = id;
	s->cbs = cbs;
	s->arg = arg;
	link_conn_schedule(c);
	return s;
}

int link_stream_respond(struct link_stream *s, int status, const struct link_hdr *h, size_t n,
			bool end)
{
	nghttp2_nv nv[LINK_MAX_HEADERS + 1];
	nghttp2_data_provider prd;
	char st[8];
	int rv;

	if (s->c == NULL || !s->server || n > LINK_MAX_HEADERS)
		return -1;
	snprintf(st, sizeof(st), "%d", status);
	fill_nv(&nv[0], ":status", st);
	for (size_t i = 0; i < n; i++)
		fill_nv(&nv[i + 1], h[i].name, h[i].value);
	prd.source.ptr = s;
	prd.read_callback = data_read_cb;
	if (end)
		s->end_req = true;
	s->provider = !end;
	rv = nghttp2_submit_response(s->c->h2, s->id, nv, n + 1, end ? NULL : &prd);
	if (rv != 0)
		return -1;
	s->responded = true;
	link_conn_schedule(s->c);
	return 0;
}

void link_stream_set_cbs(struct link_stream *s, const struct link_stream_cbs *cbs, void *arg)
{
	s->cbs = cbs;
	s->arg = arg;
	if (evbuffer_get_length(s->in) > 0 || s->remote_eof)
		s->p_read = true;
	if (s->remote_eof)
		s->p_eof = true;
	if (s->closed && !s->remote_eof)
		s->p_reset = true;
	if (s->p_read || s->p_eof || s->p_reset)
		link_stream_notify(s);
}

struct evbuffer *link_stream_input(struct link_stream *s) { return s->in; }
struct evbuffer *link_stream_output(struct link_stream *s) { return s->out; }

const char *link_stream_peer(const struct link_stream *s)
{
	return s->peer != NULL ? s->peer->pc->id : "?";
}

void link_stream_end(struct link_stream *s)
{
	if (s->end_req)
		return;
	s->end_req = true;
	if (s->c != NULL && s->deferred) {
		s->deferred = false;
		nghttp2_session_resume_data(s->c->h2, s->id);
		link_conn_schedule(s->c);
	}
}

void link_stream_read_enable(struct link_stream *s, bool on)
{
	s->read_on = on;
	if (on && (evbuffer_get_length(s->in) > 0 || s->p_eof)) {
		s->p_read = true;
		link_stream_notify(s);
	}
}

int link_stream_set_window(struct link_stream *s, uint32_t bytes)
{
	if (s == NULL || s->c == NULL || s->id <= 0 || bytes < LINK_STREAM_WINDOW ||
	    bytes > LINK_STREAM_WINDOW_MAX)
		return -1;
	if (nghttp2_session_set_local_window_size(s->c->h2, NGHTTP2_FLAG_NONE, s->id,
						  (int32_t)bytes) != 0)
		return -1;
	link_conn_schedule(s->c);
	return 0;
}

void link_stream_set_timeout(struct link_stream *s, unsigned seconds)
{
	s->timeout = seconds;
	if (seconds == 0)
		evtimer_del(s->timer);
	else
		link_stream_touch(s);
}

void link_stream_free(struct link_stream **sp)
{
	struct link_stream *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	s->user_gone = true;
	s->cbs = NULL;
	evtimer_del(s->timer);
	if (s->c != NULL) {
		struct link_conn *c = s->c;
		/* Give the unread window back.  A stream whose peer is done
		 * and whose own end is queued finishes by itself (a server
		 * that answered and let go); any other is stopped now. */
		evbuffer_drain(s->in, evbuffer_get_length(s->in));
		/* (nghttp2 sends RST_STREAM ahead of queued HEADERS, so
		 * resetting a server stream that answered would lose the
		 * answer: the client ends it once it has read it.) */
		bool done = s->end_req && (s->remote_eof || (s->server && s->responded));
		if (!done)
			nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
		link_conn_schedule(c);
		return;		/* freed by on_stream_close */
	}
	if (!s->in_dispatch)
		stream_destroy(s);
}

static void dispatch_request(struct link_stream *s)
{
	struct link_hdr hdrs[LINK_MAX_HEADERS];
	struct link_request req;
	const struct link_route *r;
	char *q;

	for (size_t i = 0; i < s->n_hdrs; i++) {
		hdrs[i].name = s->hname[i];
		hdrs[i].value = s->hval[i];
	}
	q = s->path != NULL ? strchr(s->path, '?') : NULL;
	if (q != NULL)
		*q++ = '\0';
	req.peer = link_stream_peer(s);
	req.method = s->method != NULL ? s->method : "";
	req.path = s->path != NULL ? s->path : "";
	req.query = q != NULL ? q : "";
	req.hdrs = hdrs;
	req.n_hdrs = s->n_hdrs;
	s->dispatched = true;
	r = link_route_find(s->c->l, req.path);
	if (r == NULL) {
		log_info("link.no_route", "peer=%s path=%s", req.peer, req.path);
		link_stream_respond(s, 404, NULL, 0, true);
		s->user_gone = true;	/* nobody holds it: freed when closed */
		return;
	}
	r->h(r->arg, s, &req);
}

static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link_stream *s = arg;

	s->in_dispatch = true;
	if (s->p_request && !s->user_gone && s->c != NULL) {
		s->p_request = false;
		dispatch_request(s);
	}
	if (s->p_response && !s->user_gone && s->cbs != NULL) {
		struct link_hdr hdrs[LINK_MAX_HEADERS];

		s->p_response = false;
		for (size_t i = 0; i < s->n_hdrs; i++) {
			hdrs[i].name = s->hname[i];
			hdrs[i].value = s->hval[i];
		}
		if (s->cbs->response != NULL)
			s->cbs->response(s->arg, s->status, hdrs, s->n_hdrs);
	}
	if (s->p_read && s->read_on && !s->user_gone && s->cbs != NULL) {
		s->p_read = false;
		if (evbuffer_get_length(s->in) > 0 && s->cbs->read != NULL)
			s->cbs->read(s->arg);
	}
	if (s->p_drained && !s->user_gone && s->cbs != NULL) {
		s->p_drained = false;
		if (s->cbs->drained != NULL)
			s->cbs->drained(s->arg);
	}
	if (s->p_reset && !s->user_gone && s->cbs != NULL) {
		s->p_reset = s->p_eof = false;
		s->cbs->event(s->arg, LINK_EV_RESET);
	}
	if (s->p_eof && s->read_on && !s->user_gone && s->cbs != NULL) {
		s->p_eof = false;
		s->cbs->event(s->arg, LINK_EV_EOF);
	}
	if (s->p_timeout && !s->user_gone && s->cbs != NULL) {
		s->p_timeout = false;
		s->cbs->event(s->arg, LINK_EV_TIMEOUT);
	}
	s->in_dispatch = false;
	if ((s->user_gone || (s->server && !s->dispatched)) && s->c == NULL)
		stream_destroy(s);
}
