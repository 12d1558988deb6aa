/*
 * imap_compress.c - COMPRESS=DEFLATE (RFC 4978): the command, and a
 * transport that wraps the session's transport and (de)compresses.
 *
 * The wrapper implements popnode/transport.h's hooks over an inner
 * transport: the session keeps using transport_input()/output(), which
 * are now the wrapper's plain-text buffers.  Raw deflate (windowBits
 * -15) both ways.
 *
 * Output: whenever the session adds bytes, an event is activated; when
 * it runs (after the session's callback returns, so everything written
 * in one go is one batch) the pending plain text is deflated into the
 * inner output, ending with Z_SYNC_FLUSH so the client can decode all
 * of it at once.  Deflating stops while the inner output is above
 * TRANSPORT_OUTPUT_HIGH; the rest waits in the wrapper's output, which
 * the session sees as full (its backpressure keeps working), and moves
 * on when the inner transport drains.
 *
 * Input: the inner input is inflated only while the session reads, and
 * only until the wrapper holds INFLATE_MAX bytes, so a small compressed
 * input cannot balloon in memory (a "zip bomb" costs at most that).
 *
 * Lifetime: the wrapper owns the inner transport (freeing the wrapper
 * frees it; its on_free accounting runs then).  Every path that calls
 * into the session does so as its last action, because the session may
 * free the wrapper inside that call.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <zlib.h>

#include "imap_session.h"
#include "log.h"
#include "node.h"
#include "transport.h"

#define CHUNK 16384
#define INFLATE_MAX (64 * 1024)

struct ztransport {
	struct transport t;		/* what the session sees */
	struct transport *inner;
	struct event *pump_ev;
	struct evbuffer *in;		/* inflated, for the session */
	struct evbuffer *out;		/* plain, from the session */
	z_stream inf, def;
	bool inf_ok, def_ok;
	bool reading;			/* the session wants input */
	bool closing;
	bool need_flush;		/* deflated since the last sync flush */
	bool failed;			/* a (de)compression error was reported */
};

static struct ztransport *zt_of(struct transport *t)
{
	return (struct ztransport *)t;
}

/* ---- output -------------------------------------------------------------- */

/* Deflate pending output into the inner transport; all of it when force
 * (closing), else while the inner output is below the high mark. */
static int pump_out(struct ztransport *z, bool force)
{
	struct evbuffer *dst = transport_output(z->inner);
	unsigned char buf[CHUNK];

	for (;;) {
		size_t pending = evbuffer_get_length(z->out);
		if (pending == 0)
			break;
		if (!force && evbuffer_get_length(dst) >= TRANSPORT_OUTPUT_HIGH)
			return 0;
		struct evbuffer_iovec v;
		if (evbuffer_peek(z->out, CHUNK, NULL, &v, 1) < 1)
			break;
		size_t take = v.iov_len < CHUNK ? v.iov_len : CHUNK;
		z->def.next_in = v.iov_base;
		z->def.avail_in = (uInt)take;
		do {
			z->def.next_out = buf;
			z->def.avail_out = sizeof(buf);
			if (deflate(&z->def, Z_NO_FLUSH) == Z_STREAM_ERROR)
				return -1;
			size_t have = sizeof(buf) - z->def.avail_out;
			if (have > 0 && evbuffer_add(dst, buf, have) < 0)
				return -1;
		} while (z->def.avail_out == 0);
		evbuffer_drain(z->out, take - z->def.avail_in);
		z->need_flush = true;
	}
	if (z->need_flush) {
		int r;
		z->def.next_in = NULL;
		z->def.avail_in = 0;
		do {
			z->def.next_out = buf;
			z->def.avail_out = sizeof(buf);
			r = deflate(&z->def, Z_SYNC_FLUSH);
			if (r == Z_STREAM_ERROR)
				return -1;
			size_t have = sizeof(buf) - z->def.avail_out;
			if (have > 0 && evbuffer_add(dst, buf, have) < 0)
				return -1;
		} while (z->def.avail_out == 0);
		z->need_flush = false;
	}
	return 0;
}

/* ---- input --------------------------------------------------------------- */

/* Inflate inner input while the session reads and the wrapper's input
 * is below INFLATE_MAX.  -1 on a stream error. */
static int pump_in(struct ztransport *z)
{
	struct evbuffer *src = transport_input(z->inner);
	unsigned char buf[CHUNK];

	while (z->reading && evbuffer_get_length(z->in) < INFLATE_MAX &&
	       evbuffer_get_length(src) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(src, CHUNK, NULL, &v, 1) < 1)
			break;
		size_t take = v.iov_len < CHUNK ? v.iov_len : CHUNK;
		z->inf.next_in = v.iov_base;
		z->inf.avail_in = (uInt)take;
		z->inf.next_out = buf;
		z->inf.avail_out = sizeof(buf);
		int r = inflate(&z->inf, Z_SYNC_FLUSH);
		if (r != Z_OK && r != Z_BUF_ERROR)
			return -1;	/* data error, or the stream ended */
		size_t used = take - z->inf.avail_in;
		size_t have = sizeof(buf) - z->inf.avail_out;
		evbuffer_drain(src, used);
		if (have > 0 && evbuffer_add(z->in, buf, have) < 0)
			return -1;
		if (used == 0 && have == 0)
			break;
	}
	return 0;
}

static void report(struct ztransport *z, enum transport_event ev)
{
	if (z->t.cbs != NULL && z->t.cbs->event != NULL)
		z->t.cbs->event(z->t.cb_arg, ev);
}

/* Move data both ways; may call the session (last action). */
static void pump(struct ztransport *z)
{
	if (z->failed)
		return;
	if (pump_out(z, false) < 0 || pump_in(z) < 0) {
		z->failed = true;
		log_info("imap.compress_error", "peer=%s", z->t.peer);
		report(z, TRANSPORT_ERROR);
		return;
	}
	/* more compressed input may wait behind the cap: in_consumed()
	 * pumps again once the session takes bytes out */
	if (z->reading && evbuffer_get_length(z->in) > 0 && z->t.cbs != NULL &&
	    z->t.cbs->read != NULL)
		z->t.cbs->read(z->t.cb_arg);
}

static void pump_cb(evutil_socket_t fd, short what, void *arg)
{
	pump(arg);
}

static void out_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct ztransport *z = arg;

	if (info->n_added > 0 && !z->closing)
		event_active(z->pump_ev, EV_TIMEOUT, 0);
}

static void in_consumed(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct ztransport *z = arg;

	if (info->n_deleted > 0 && z->reading && !z->closing &&
	    evbuffer_get_length(transport_input(z->inner)) > 0)
		event_active(z->pump_ev, EV_TIMEOUT, 0);
}

/* ---- inner transport callbacks ------------------------------------------- */

static void inner_read(void *arg)
{
	pump(arg);
}

static void inner_drained(void *arg)
{
	struct ztransport *z = arg;

	if (z->closing || z->failed)
		return;
	if (pump_out(z, false) < 0) {
		z->failed = true;
		report(z, TRANSPORT_ERROR);
		return;
	}
	if (evbuffer_get_length(z->out) <= TRANSPORT_OUTPUT_HIGH && z->t.cbs != NULL &&
	    z->t.cbs->drained != NULL)
		z->t.cbs->drained(z->t.cb_arg);
}

static void inner_event(void *arg, enum transport_event ev)
{
	report(arg, ev);
}

static const struct transport_cbs inner_cbs = {
	.read = inner_read,
	.drained = inner_drained,
	.event = inner_event,
};

/* ---- the wrapper's hooks --------------------------------------------------- */

static struct evbuffer *z_input(struct transport *t)
{
	return zt_of(t)->in;
}

static struct evbuffer *z_output(struct transport *t)
{
	return zt_of(t)->out;
}

static int z_starttls(struct transport *t)
{
	return -1;	/* RFC 4978: TLS must come before COMPRESS */
}

static void z_read_enable(struct transport *t, bool on)
{
	struct ztransport *z = zt_of(t);

	z->reading = on;
	transport_read_enable(z->inner, on);
	if (on && (evbuffer_get_length(z->in) > 0 ||
		   evbuffer_get_length(transport_input(z->inner)) > 0))
		event_active(z->pump_ev, EV_TIMEOUT, 0);
}

static void z_set_timeout(struct transport *t, unsigned seconds)
{
	transport_set_timeout(zt_of(t)->inner, seconds);
}

static void z_close_after_flush(struct transport *t)
{
	struct ztransport *z = zt_of(t);

	z->reading = false;
	if (!z->failed)
		(void)pump_out(z, true);
	z->closing = true;
	transport_close_after_flush(z->inner);
}

static void z_free(struct transport *t)
{
	struct ztransport *z = zt_of(t);

	if (z->pump_ev != NULL)
		event_free(z->pump_ev);
	transport_free(&z->inner);
	if (z->in != NULL)
		evbuffer_free(z->in);
	if (z->out != NULL)
		evbuffer_free(z->out);
	if (z->inf_ok)
		inflateEnd(&z->inf);
	if (z->def_ok)
		deflateEnd(&z->def);
	free(z);
}

static const struct transport_ops z_ops = {
	.input = z_input,
	.output = z_output,
	.starttls = z_starttls,
	.read_enable = z_read_enable,
	.set_timeout = z_set_timeout,
	.close_after_flush = z_close_after_flush,
	.free = z_free,
};

struct transport *imap_compress_wrap(struct event_base *base, struct transport *inner,
				     bool reading)
{
	struct ztransport *z = calloc(1, sizeof(*z));

	if (z == NULL)
		return NULL;
	z->t.ops = &z_ops;
	z->inner = inner;
	z->in = evbuffer_new();
	z->out = evbuffer_new();
	z->pump_ev = event_new(base, -1, 0, pump_cb, z);
	if (z->in == NULL || z->out == NULL || z->pump_ev == NULL)
		goto fail;
	if (inflateInit2(&z->inf, -15) != Z_OK)
		goto fail;
	z->inf_ok = true;
	if (deflateInit2(&z->def, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		goto fail;
	z->def_ok = true;
	if (evbuffer_add_cb(z->out, out_added, z) == NULL ||
	    evbuffer_add_cb(z->in, in_consumed, z) == NULL)
		goto fail;
	memcpy(z->t.peer, inner->peer, sizeof(z->t.peer));
	memcpy(z->t.peer_ip, inner->peer_ip, sizeof(z->t.peer_ip));
	z->t.local = inner->local;
	z->t.tls = inner->tls;
	z->t.tls_available = false;
	/* the session's callbacks move to the wrapper */
	transport_set_cbs(&z->t, inner->cbs, inner->cb_arg);
	transport_set_cbs(inner, &inner_cbs, z);
	z->reading = reading;
	/* input pipelined after COMPRESS is already compressed */
	if (evbuffer_get_length(transport_input(inner)) > 0)
		event_active(z->pump_ev, EV_TIMEOUT, 0);
	return &z->t;
fail:
	z->inner = NULL;	/* not ours on failure */
	z_free(&z->t);
	return NULL;
}

void imap_cmd_compress(struct imap_session *s, struct imap_command *cmd)
{
	if (s->compressed) {
		imap_cmd_done(s, "NO", "[COMPRESSIONACTIVE] Compression is already active");
		return;
	}
	if (!cmd->u.compress.deflate) {
		imap_cmd_done(s, "BAD", "Unknown compression mechanism");
		return;
	}
	imap_cmd_done(s, "OK", "DEFLATE active");
	if (!imap_session_alive(s))
		return;
	struct transport *z = imap_compress_wrap(s->n->base, s->t, s->reading);
	if (z == NULL) {
		log_err("imap.oom", "sid=%" PRIu64 " peer=%s what=compress", s->serial, s->t->peer);
		imap_session_end(s, "out_of_memory");
		return;
	}
	s->t = z;
	s->compressed = true;
}
