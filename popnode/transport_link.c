/*
 * transport_link.c - transport hooks over a link stream (HTTP/2 DATA in
 * both directions).  No STARTTLS: TLS with the client ended at the front
 * POP, and the link itself is mutual TLS.
 *
 * Closing: close_after_flush ends our side of the stream (END_STREAM
 * after the queued output); the front POP then closes the client and its
 * side, and the stream's end is reported as TRANSPORT_CLOSED.  A front
 * that never answers is cut after CLOSE_WAIT seconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "link.h"
#include "transport_link.h"

#define CLOSE_WAIT 30

struct link_transport {
	struct transport t;		/* first: the public part */
	struct link_stream *s;
	bool closing;
};

static struct link_transport *lt_of(struct transport *t)
{
	return (struct link_transport *)t;
}

static struct evbuffer *lt_input(struct transport *t) { return link_stream_input(lt_of(t)->s); }
static struct evbuffer *lt_output(struct transport *t) { return link_stream_output(lt_of(t)->s); }
static int lt_starttls(struct transport *t) { return -1; }

static void lt_read_enable(struct transport *t, bool on)
{
	link_stream_read_enable(lt_of(t)->s, on);
}

static void lt_set_timeout(struct transport *t, unsigned seconds)
{
	if (!lt_of(t)->closing)
		link_stream_set_timeout(lt_of(t)->s, seconds);
}

static void lt_close_after_flush(struct transport *t)
{
	struct link_transport *lt = lt_of(t);

	if (lt->closing)
		return;
	lt->closing = true;
	link_stream_read_enable(lt->s, true);	/* to see the end */
	link_stream_set_timeout(lt->s, CLOSE_WAIT);
	link_stream_end(lt->s);
}

static void lt_free(struct transport *t)
{
	struct link_transport *lt = lt_of(t);

	link_stream_free(&lt->s);
	free(lt);
}

static const struct transport_ops lt_ops = {
	.input = lt_input,
	.output = lt_output,
	.starttls = lt_starttls,
	.read_enable = lt_read_enable,
	.set_timeout = lt_set_timeout,
	.close_after_flush = lt_close_after_flush,
	.free = lt_free,
};

static void lt_read(void *arg)
{
	struct link_transport *lt = arg;

	if (lt->closing) {	/* no reads after close_after_flush */
		struct evbuffer *in = link_stream_input(lt->s);
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (lt->t.cbs != NULL && lt->t.cbs->read != NULL)
		lt->t.cbs->read(lt->t.cb_arg);
}

static void lt_drained(void *arg)
{
	struct link_transport *lt = arg;

	if (!lt->closing && lt->t.cbs != NULL && lt->t.cbs->drained != NULL)
		lt->t.cbs->drained(lt->t.cb_arg);
}

static void lt_event(void *arg, enum link_event ev)
{
	struct link_transport *lt = arg;
	enum transport_event te;

	if (lt->t.cbs == NULL || lt->t.cbs->event == NULL)
		return;
	if (lt->closing)
		te = TRANSPORT_CLOSED;
	else if (ev == LINK_EV_EOF)
		te = TRANSPORT_EOF;
	else if (ev == LINK_EV_TIMEOUT)
		te = TRANSPORT_TIMEOUT;
	else
		te = TRANSPORT_ERROR;
	lt->t.cbs->event(lt->t.cb_arg, te);
}

static const struct link_stream_cbs lt_cbs = {
	.read = lt_read,
	.drained = lt_drained,
	.event = lt_event,
};

struct transport *transport_link_new(struct link_stream *s, const char *client, bool client_tls)
{
	struct link_transport *lt = calloc(1, sizeof(*lt));
	const char *colon;
	size_t iplen;

	if (lt == NULL)
		return NULL;
	lt->s = s;
	lt->t.ops = &lt_ops;
	snprintf(lt->t.peer, sizeof(lt->t.peer), "%s", client);
	/* "1.2.3.4:5678" -> "1.2.3.4"; "[::1]:5678" -> "::1" */
	if (client[0] == '[') {
		colon = strchr(client, ']');
		iplen = colon != NULL ? (size_t)(colon - client - 1) : 0;
		client++;
	} else {
		colon = strrchr(client, ':');
		iplen = colon != NULL ? (size_t)(colon - client) : strlen(client);
	}
	if (iplen >= sizeof(lt->t.peer_ip))
		iplen = 0;
	memcpy(lt->t.peer_ip, client, iplen);
	lt->t.peer_ip[iplen] = '\0';
	lt->t.local = false;
	lt->t.tls = client_tls;
	lt->t.tls_available = false;
	link_stream_set_cbs(s, &lt_cbs, lt);
	return &lt->t;
}
