/*
 * tunnel_relay.c - passing a tunnel on: a POP asked to resume a session
 * for a user whose home, by its own directory, is another POP (the
 * directories disagree for a moment after a home move; later a mirror
 * whose home is back) relays the stream there with the hop count raised,
 * and splices the two streams until either end finishes.  The hop count
 * (link_max_hops) ends any loop a misconfigured directory could make.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "link.h"
#include "log.h"
#include "node.h"
#include "tunnel_private.h"

struct relay {
	struct node *n;
	struct link_stream *in;		/* from the POP that asked us */
	struct link_stream *out;	/* to the user's home */
	char user[64], home[64];
	bool spliced;
	bool in_eof, out_eof;
	bool in_blocked, out_blocked;	/* reading stopped: the other side is full */
};

static void relay_free(struct relay *r, const char *why)
{
	log_info("tunnel.relay_end", "user=%s home=%s reason=%s", r->user, r->home, why);
	link_stream_free(&r->in);
	link_stream_free(&r->out);
	free(r);
}

/* Move what src received into dst's output, unless dst is full. */
static void pump(struct link_stream *src, struct link_stream *dst, bool *blocked)
{
	struct evbuffer *o = link_stream_output(dst);

	if (evbuffer_get_length(o) >= LINK_OUTPUT_HIGH) {
		*blocked = true;
		link_stream_read_enable(src, false);
		return;
	}
	evbuffer_add_buffer(o, link_stream_input(src));
}

static void maybe_done(struct relay *r)
{
	if (r->in_eof && r->out_eof)
		relay_free(r, "finished");
}

/* ---- the stream from the asking POP --------------------------------------- */

static void in_read(void *arg)
{
	struct relay *r = arg;

	if (r->spliced)
		pump(r->in, r->out, &r->in_blocked);
}

static void in_drained(void *arg)
{
	struct relay *r = arg;

	if (r->out_blocked) {
		r->out_blocked = false;
		link_stream_read_enable(r->out, true);
	}
}

static void in_event(void *arg, enum link_event ev)
{
	struct relay *r = arg;

	if (ev == LINK_EV_EOF && r->spliced) {
		pump(r->in, r->out, &r->in_blocked);
		r->in_eof = true;
		link_stream_end(r->out);
		maybe_done(r);
		return;
	}
	if (ev == LINK_EV_EOF) {
		r->in_eof = true;	/* not spliced yet: passed on then */
		return;
	}
	relay_free(r, ev == LINK_EV_RESET ? "front_reset" : "front_timeout");
}

static const struct link_stream_cbs in_cbs = {
	.read = in_read,
	.drained = in_drained,
	.event = in_event,
};

/* ---- the stream to the home --------------------------------------------------- */

static void out_response(void *arg, int status, const struct link_hdr *h, size_t n)
{
	struct relay *r = arg;

	if (status != 200) {
		/* the home's answer, passed back as it is */
		link_stream_respond(r->in, status, h, n, true);
		relay_free(r, "refused_by_home");
		return;
	}
	link_stream_set_timeout(r->out, 0);
	if (link_stream_respond(r->in, 200, NULL, 0, false) < 0) {
		relay_free(r, "front_gone");
		return;
	}
	r->spliced = true;
	log_info("tunnel.relay", "user=%s home=%s", r->user, r->home);
	pump(r->in, r->out, &r->in_blocked);	/* what came meanwhile */
	if (r->in_eof)
		link_stream_end(r->out);		/* and its end */
}

static void out_read(void *arg)
{
	struct relay *r = arg;

	if (r->spliced)
		pump(r->out, r->in, &r->out_blocked);
}

static void out_drained(void *arg)
{
	struct relay *r = arg;

	if (r->in_blocked) {
		r->in_blocked = false;
		link_stream_read_enable(r->in, true);
	}
}

static void out_event(void *arg, enum link_event ev)
{
	struct relay *r = arg;

	if (ev == LINK_EV_EOF && r->spliced) {
		pump(r->out, r->in, &r->out_blocked);
		r->out_eof = true;
		link_stream_end(r->in);
		maybe_done(r);
		return;
	}
	if (!r->spliced) {
		struct link_hdr e = { "x-popnode-error", "home unreachable from the relaying POP" };

		if (ev == LINK_EV_TIMEOUT)
			link_peer_failed(r->n->link, r->home);
		link_stream_respond(r->in, 503, &e, 1, true);
	}
	relay_free(r, ev == LINK_EV_TIMEOUT ? "home_timeout" : "home_reset");
}

static const struct link_stream_cbs out_cbs = {
	.response = out_response,
	.read = out_read,
	.drained = out_drained,
	.event = out_event,
};

int tunnel_relay(struct node *n, struct link_stream *s, const struct link_request *req,
		 const char *user, const char *home, unsigned hops)
{
	struct link_hdr h[LINK_MAX_HEADERS];
	char hopbuf[12];
	struct relay *r;
	size_t k = 0;
	unsigned wait;

	if (!link_peer_usable(n->link, home))
		return -1;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -1;
	r->n = n;
	r->in = s;
	snprintf(r->user, sizeof(r->user), "%s", user);
	snprintf(r->home, sizeof(r->home), "%s", home);
	snprintf(hopbuf, sizeof(hopbuf), "%u", hops);
	for (size_t i = 0; i < req->n_hdrs && k < LINK_MAX_HEADERS - 1; i++)
		if (strcmp(req->hdrs[i].name, "x-popnode-hops") != 0)
			h[k++] = req->hdrs[i];
	h[k++] = (struct link_hdr){ "x-popnode-hops", hopbuf };
	r->out = link_request(n->link, home, "POST", TUNNEL_PATH, h, k, true, &out_cbs, r);
	if (r->out == NULL) {
		free(r);
		return -1;
	}
	wait = 2 * n->cfg->link_timeout;
	link_stream_set_timeout(r->out, wait < 5 ? 5 : wait);
	link_stream_set_cbs(s, &in_cbs, r);
	log_info("tunnel.relay_start", "user=%s home=%s hops=%u via=%s", user, home, hops, req->peer);
	return 0;
}
