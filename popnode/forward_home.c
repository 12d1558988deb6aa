/*
 * forward_home.c - the home side of forwarding (forward.h): serving
 * POST /v1/deliver, storing the message for the recipients homed here
 * and answering once the commit is durable; and the same delivery
 * without a stream when the front itself is the failed home's first
 * mirror (failover at the front, at the end).
 *
 * Home: the handler checks the headers (forward_wire.c) and takes the
 * stream; the body goes into one buffer of content-length bytes
 * (bounded by max_message_size, checked before anything is allocated),
 * draining the stream's input as it arrives so HTTP/2 flow control
 * paces the sender.  At END_STREAM each recipient is checked (known,
 * enabled, homed here) and the message is stored for those that are,
 * exactly as local LMTP delivery stores it (lmtp_prefix.h, mime_parse);
 * the answer is sent from the store's callback, i.e. only once the
 * commit is durable, and with replication_ack mirror only once a mirror
 * applied it too (repl_ack.h; the front turns that answer into its 250).
 *
 * Home lifetime: a delivery is registered as a node session from the
 * headers until its stream is freed, so a shutdown waits for it.
 * States: RECEIVING -> COMMITTING -> LINGER.  If the front resets the
 * stream while the commit runs, the stream is freed and the delivery
 * lives on without it until the store's callback (the message is
 * durable; the front told its MTA 451 and a retry makes a duplicate at
 * worst).  LINGER: an answered stream could be freed at once (the link
 * lets an answered server stream finish), but the delivery stays a node
 * session for LINGER_SECONDS (LINGER_SHUTDOWN once the node stops) so
 * that a shutdown waits for the answer to leave: the link drops output
 * still queued when it closes, and the front would then answer 451 for
 * mail that is stored (a duplicate after the MTA's retry).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "directory.h"
#include "failover.h"
#include "forward_int.h"
#include "link.h"
#include "lmtp_prefix.h"
#include "log.h"
#include "mime.h"
#include "node.h"
#include "repl_ack.h"
#include "replicator.h"
#include "store.h"

#define LINGER_SECONDS 5
#define LINGER_SHUTDOWN 1
/* A body still arriving when the node stops gets at most this long. */
#define RECEIVE_SHUTDOWN 20

enum in_state {
	IN_RECEIVING,		/* the body is arriving */
	IN_COMMITTING,		/* store_deliver() in flight */
	IN_LINGER,		/* answered; the stream is kept until it surely left */
};

#define NOT_STORED SIZE_MAX

struct fwd_in {
	struct node *n;
	struct link_stream *s;		/* NULL once the front went away */
	struct node_session reg;
	enum in_state state;
	char peer[STORE_POP_MAX];
	struct forward_request *req;	/* freed once answered */
	char *body;			/* req->size bytes; freed once stored */
	size_t got;
	bool in_store_call, store_done;
	/* per recipient, request order */
	struct forward_reply *replies;
	const char **results;		/* for the log */
	uint32_t *uids;
	size_t *store_idx;		/* index in the store_deliver call, or NOT_STORED */
	size_t *sizes;			/* prefix + body */
	struct timespec started;
	struct repl_ack_waiter *ack;	/* replication_ack mirror: the commit's records */
	/* Where to store: n->store for users homed here, or the mirror
	 * store of a failed home (docs/failover.md) */
	struct store *st;
	char serving_for[STORE_POP_MAX];	/* the home whose users are stored */
	struct forward_req *front;	/* failover at the front: answer it, no stream */
};

static void in_free(struct fwd_in *fi)
{
	repl_ack_cancel(&fi->ack);
	node_session_unregister(fi->n, &fi->reg);
	link_stream_free(&fi->s);
	free(fi->req);
	free(fi->body);
	free(fi->replies);
	free(fi->results);
	free(fi->uids);
	free(fi->store_idx);
	free(fi->sizes);
	free(fi);
}

/* Answer with an error status and reset the stream (a body may still be
 * arriving); the caller owns nothing of s after. */
static void refuse(struct node *n, struct link_stream *s, int status, const char *why,
		   const char *peer, const char *via)
{
	struct link_hdr h = { "x-popnode-error", why };

	log_info("forward.refused", "peer=%s via=%s status=%d reason=\"%s\"", peer,
		 via != NULL ? via : "-", status, why);
	link_stream_respond(s, status, &h, 1, true);
	link_stream_free(&s);
}

static void set_reply(struct fwd_in *fi, size_t i, unsigned code, const char *enh,
		      const char *text, const char *result)
{
	struct forward_reply *r = &fi->replies[i];

	r->code = code;
	snprintf(r->enh, sizeof(r->enh), "%s", enh);
	snprintf(r->text, sizeof(r->text), "%s", text);
	fi->results[i] = result;
}

static void answer(struct fwd_in *fi);

static void in_refuse(struct fwd_in *fi, int status, const char *why)
{
	struct link_stream *s = fi->s;

	if (fi->front != NULL || s == NULL) {	/* failover at the front: no stream */
		for (size_t i = 0; i < fi->req->n_rcpts; i++)
			set_reply(fi, i, 451, "4.3.0", why, "io");
		answer(fi);
		return;
	}

	fi->s = NULL;
	refuse(fi->n, s, status, why, fi->peer, fi->req->via);
	in_free(fi);
}


/* The commit is back (or nothing needed storing): send the lines. */
static void answer(struct fwd_in *fi)
{
	const struct forward_request *req = fi->req;
	struct metrics *m = &fi->n->metrics;
	struct evbuffer *out;
	char line[FORWARD_LINE_MAX + 1], from[80];

	log_sanitize(from, sizeof(from), req->mail_from, strlen(req->mail_from));
	for (size_t i = 0; i < req->n_rcpts; i++) {
		bool ok = fi->replies[i].code == 250;

		if (ok) {
			m->deliveries++;
			m->delivery_bytes += fi->sizes[i];
			if (fi->st != fi->n->store)
				m->failover_rcpts++;
		} else {
			m->delivery_failures++;
		}
		log_msg(ok ? LOG_LVL_INFO : LOG_LVL_WARN, "forward.deliver",
			"via=%s user=%s uid=%u size=%zu result=%s from=%s%s", req->via,
			req->rcpts[i].user, fi->uids[i], fi->sizes[i], fi->results[i],
			from[0] != '\0' ? from : "<>", fi->s == NULL ? " front=gone" : "");
	}
	if (fi->front != NULL) {
		struct forward_req *fr = fi->front;

		for (size_t i = 0; i < req->n_rcpts; i++) {
			struct forward_result *r = &fr->res[i];

			r->code = fi->replies[i].code;
			memcpy(r->enh, fi->replies[i].enh, sizeof(r->enh));
			snprintf(r->text, sizeof(r->text), "%s (mirror of %s)", fi->replies[i].text,
				 fi->serving_for);
			r->link_failed = false;
		}
		fr->local = NULL;
		in_free(fi);
		fwd_done(fr);
		return;
	}
	if (fi->s == NULL || link_stream_respond(fi->s, 200, NULL, 0, false) < 0) {
		in_free(fi);
		return;
	}
	out = link_stream_output(fi->s);
	for (size_t i = 0; i < req->n_rcpts; i++) {
		const struct forward_reply *r = &fi->replies[i];
		int len = forward_reply_format(line, sizeof(line), req->rcpts[i].user, r->code,
					       r->enh, r->text);

		/* A line left out is a 451 4.4.1 at the front, never a 250. */
		if (len < 0 || evbuffer_add(out, line, (size_t)len) != 0)
			log_err("forward.answer", "via=%s user=%s error=\"line not sent\"",
				req->via, req->rcpts[i].user);
	}
	link_stream_end(fi->s);
	log_debug("forward.answered", "via=%s rcpts=%zu size=%" PRIu64 " ms=%" PRId64,
		  req->via, req->n_rcpts, req->size, fwd_ms_since(&fi->started));
	fi->state = IN_LINGER;
	link_stream_set_timeout(fi->s, fi->n->stopping ? LINGER_SHUTDOWN : LINGER_SECONDS);
	free(fi->req);
	fi->req = NULL;
}

/* replication_degraded tempfail: a stored recipient is not told 250. */
static void acked(void *arg, enum repl_ack_result r)
{
	struct fwd_in *fi = arg;

	fi->ack = NULL;
	for (size_t i = 0; i < fi->req->n_rcpts && !repl_ack_ok(r); i++)
		if (fi->replies[i].code == 250)
			set_reply(fi, i, 451, "4.4.1", "stored, but no mirror acknowledged it "
				  "(replication_degraded tempfail), try later", "unreplicated");
	answer(fi);
}

/* The commit is durable.  replication_ack mirror: the answer (which the
 * front turns into its 250) waits until a mirror applied it too; only
 * for this POP's own store (a mirror store serving a failed home has no
 * mirrors of its own). */
static void committed(struct fwd_in *fi)
{
	enum repl_ack_result r = REPL_ACK_LOCAL;
	bool any = false;

	for (size_t i = 0; i < fi->req->n_rcpts; i++)
		any = any || fi->replies[i].code == 250;
	if (any && fi->st == fi->n->store) {
		fi->ack = repl_ack_wait_commit(fi->n, acked, fi, &r);
		if (fi->ack != NULL)
			return;
	}
	acked(fi, r);
}

static void stored(const struct store_rcpt *rcpts, size_t n, void *arg)
{
	struct fwd_in *fi = arg;
	const struct forward_request *req = fi->req;

	for (size_t i = 0; i < req->n_rcpts; i++) {
		struct lmtp_store_reply rep;
		size_t k = fi->store_idx[i];
		int result;

		if (k == NOT_STORED)
			continue;
		result = k < n ? rcpts[k].result : STORE_IO;
		fi->uids[i] = result == STORE_OK ? rcpts[k].uid : 0;
		lmtp_store_reply(result, fi->uids[i], &rep);
		set_reply(fi, i, rep.code, rep.enh, rep.text, lmtp_result_name(result));
	}
	if (fi->in_store_call) {
		fi->store_done = true;	/* deliver() answers */
		return;
	}
	committed(fi);
}

/* The whole body is in: check each recipient, store for those homed here. */
static void deliver(struct fwd_in *fi)
{
	const struct forward_request *req = fi->req;
	struct node *n = fi->n;
	struct store_rcpt sr[FORWARD_RCPTS_MAX];
	struct store_delivery d;
	char *prefixes;
	uint8_t *meta = NULL;
	size_t k = 0, meta_len = 0;

	if (fi->s != NULL)
		link_stream_set_timeout(fi->s, 0);
	fi->state = IN_COMMITTING;
	n->metrics.forward_received += req->n_rcpts;
	prefixes = malloc(req->n_rcpts * LMTP_PREFIX_MAX);
	if (prefixes == NULL) {
		in_refuse(fi, 503, "out of memory");
		return;
	}
	for (size_t i = 0; i < req->n_rcpts; i++) {
		const struct forward_hdr_rcpt *rc = &req->rcpts[i];
		struct lmtp_store_reply rep;
		struct store_user u;
		char *pfx = prefixes + k * LMTP_PREFIX_MAX;
		int err = store_user_get(fi->st, rc->user, &u), plen;

		fi->store_idx[i] = NOT_STORED;
		fi->sizes[i] = 0;
		if (fi->st == n->store && !replicator_serving_ready(n, NULL)) {	/* replicator.h */
			set_reply(fi, i, 451, "4.3.0", "the home POP is checking its mailboxes "
				  "against its mirrors, try later", "not_ready");
			continue;
		}
		if (err == STORE_NOTFOUND || (err == STORE_OK && !u.enabled)) {
			err = err == STORE_OK ? STORE_DISABLED : err;
			lmtp_store_reply(err, 0, &rep);
			set_reply(fi, i, rep.code, rep.enh, rep.text, lmtp_result_name(err));
			continue;
		}
		if (err != STORE_OK) {
			set_reply(fi, i, 451, "4.3.0", "temporary directory failure", "io");
			continue;
		}
		/* As lmtp_cmd.c: a user without a home is served where found. */
		if (u.home[0] != '\0' && strcmp(u.home, fi->serving_for) != 0) {
			set_reply(fi, i, 451, "4.4.0", "not homed here", "not_homed");
			continue;
		}
		plen = lmtp_prefix(pfx, LMTP_PREFIX_MAX, req->mail_from, rc->addr);
		if (plen < 0) {	/* not with addresses forward_wire.c accepted */
			set_reply(fi, i, 451, "4.3.0", "temporary store failure", "io");
			continue;
		}
		sr[k] = (struct store_rcpt){ .user = rc->user, .prefix = pfx,
					     .prefix_len = (size_t)plen };
		fi->store_idx[i] = k++;
		fi->sizes[i] = (size_t)plen + req->size;
	}
	if (k == 0) {
		free(prefixes);
		free(fi->body);
		fi->body = NULL;
		answer(fi);
		return;
	}
	/* The MIME structure, as lmtp_deliver.c computes it: never a reason to refuse. */
	if (mime_parse(fi->body, req->size, &meta, &meta_len) < 0 || meta_len > STORE_META_MAX) {
		log_warn("forward.mime", "via=%s size=%" PRIu64 " result=%s", req->via, req->size,
			 meta != NULL ? "too_big" : "failed");
		free(meta);
		meta = NULL;
		meta_len = 0;
	}
	d = (struct store_delivery){
		.body = fi->body,
		.body_len = req->size,
		.internaldate = req->internaldate,
		.mailbox = NULL,
		.rcpts = sr,
		.n_rcpts = k,
		.meta = meta,
		.meta_len = meta_len,
	};
	fi->in_store_call = true;
	store_deliver(fi->st, &d, stored, fi);
	fi->in_store_call = false;
	/* The store copied what it needs. */
	free(prefixes);
	free(meta);
	free(fi->body);
	fi->body = NULL;
	if (fi->store_done)
		committed(fi);
}

/* Move what arrived into the body buffer.  -1: refused (fi freed). */
static int take_input(struct fwd_in *fi)
{
	struct evbuffer *in = link_stream_input(fi->s);
	size_t len = evbuffer_get_length(in);

	if (len == 0)
		return 0;
	if (len > fi->req->size - fi->got) {
		in_refuse(fi, 400, "body longer than content-length");
		return -1;
	}
	if (evbuffer_remove(in, fi->body + fi->got, len) != (int)len) {
		in_refuse(fi, 503, "cannot read the body");
		return -1;
	}
	fi->got += len;
	return 0;
}

static void in_read(void *arg)
{
	struct fwd_in *fi = arg;

	if (fi->state != IN_RECEIVING) {
		struct evbuffer *in = link_stream_input(fi->s);

		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	take_input(fi);
}

static void in_event(void *arg, enum link_event ev)
{
	struct fwd_in *fi = arg;

	switch (ev) {
	case LINK_EV_EOF:
		if (fi->state != IN_RECEIVING)
			return;
		if (take_input(fi) < 0)
			return;
		if (fi->got != fi->req->size) {
			in_refuse(fi, 400, "body shorter than content-length");
			return;
		}
		deliver(fi);
		return;
	case LINK_EV_TIMEOUT:
		if (fi->state == IN_RECEIVING) {
			in_refuse(fi, 408, "message body timed out");
			return;
		}
		if (fi->state == IN_LINGER)
			in_free(fi);
		return;
	case LINK_EV_RESET:
	default:
		if (fi->state == IN_COMMITTING) {
			/* The commit goes on; its answer has nowhere to go. */
			log_info("forward.front_gone", "peer=%s via=%s", fi->peer, fi->req->via);
			link_stream_free(&fi->s);
			if (fi->ack != NULL) {	/* committed: no need to wait */
				repl_ack_cancel(&fi->ack);
				answer(fi);	/* frees fi */
			}
			return;
		}
		if (fi->state == IN_RECEIVING)
			log_info("forward.abort", "peer=%s via=%s got=%zu size=%" PRIu64, fi->peer,
				 fi->req->via, fi->got, fi->req->size);
		in_free(fi);
		return;
	}
}

static const struct link_stream_cbs in_cbs = {
	.read = in_read,
	.event = in_event,
};

static void in_shutdown(void *arg)
{
	struct fwd_in *fi = arg;

	/* Let the delivery finish, only sooner. */
	if (fi->s == NULL)
		return;
	if (fi->state == IN_RECEIVING)
		link_stream_set_timeout(fi->s, RECEIVE_SHUTDOWN);
	else if (fi->state == IN_LINGER)
		link_stream_set_timeout(fi->s, LINGER_SHUTDOWN);
}

void fwd_serve(void *arg, struct link_stream *s, const struct link_request *lr)
{
	struct node *n = arg;
	const char *via = link_hdr_get(lr->hdrs, lr->n_hdrs, FORWARD_HDR_VIA), *err = NULL;
	char via_log[80];
	struct fwd_in *fi;
	size_t nr;
	int status;

	log_sanitize(via_log, sizeof(via_log), via, via != NULL ? strlen(via) : 0);
	if (strcmp(lr->method, "POST") != 0) {
		refuse(n, s, 405, "method not allowed", lr->peer, via_log);
		return;
	}
	if (n->stopping) {
		refuse(n, s, 503, "home POP is stopping", lr->peer, via_log);
		return;
	}
	fi = calloc(1, sizeof(*fi));
	if (fi == NULL || (fi->req = malloc(sizeof(*fi->req))) == NULL) {
		free(fi);
		refuse(n, s, 503, "out of memory", lr->peer, via_log);
		return;
	}
	status = forward_request_parse(lr->hdrs, lr->n_hdrs, n->cfg->max_recipients,
				       n->cfg->max_message_size, fi->req, &err);
	if (status != 0) {
		free(fi->req);
		free(fi);
		refuse(n, s, status, err, lr->peer, via_log);
		return;
	}
	fi->st = n->store;
	snprintf(fi->serving_for, sizeof(fi->serving_for), "%s", n->cfg->node_id);
	{
		const char *fo = link_hdr_get(lr->hdrs, lr->n_hdrs, FAILOVER_HDR);

		if (fo != NULL && strcmp(fo, n->cfg->node_id) != 0) {
			/* Asked as a mirror of a failed home. */
			if (!dir_valid_pop(fo) || link_peer_usable(n->link, fo) ||
			    (fi->st = failover_store(n, fo, false)) == NULL) {
				free(fi->req);
				free(fi);
				refuse(n, s, dir_valid_pop(fo) ? 421 : 400,
				       "this POP holds no copy of that home, or can reach it",
				       lr->peer, via_log);
				return;
			}
			snprintf(fi->serving_for, sizeof(fi->serving_for), "%s", fo);
			fi->reg.store = fi->st;	/* a copy in use: not dropped */
			log_info("forward.failover_receive", "home=%s via=%s", fo, via_log);
		}
	}
	nr = fi->req->n_rcpts;
	fi->body = malloc(fi->req->size > 0 ? fi->req->size : 1);
	fi->replies = calloc(nr, sizeof(*fi->replies));
	fi->results = calloc(nr, sizeof(*fi->results));
	fi->uids = calloc(nr, sizeof(*fi->uids));
	fi->store_idx = calloc(nr, sizeof(*fi->store_idx));
	fi->sizes = calloc(nr, sizeof(*fi->sizes));
	fi->n = n;
	node_session_register(n, &fi->reg, PROTO_LMTP, in_shutdown, fi);
	if (fi->body == NULL || fi->replies == NULL || fi->results == NULL || fi->uids == NULL ||
	    fi->store_idx == NULL || fi->sizes == NULL) {
		refuse(n, s, 503, "out of memory", lr->peer, via_log);
		in_free(fi);
		return;
	}
	fi->s = s;
	fi->state = IN_RECEIVING;
	snprintf(fi->peer, sizeof(fi->peer), "%s", lr->peer);
	clock_gettime(CLOCK_MONOTONIC, &fi->started);
	link_stream_set_cbs(s, &in_cbs, fi);
	link_stream_set_timeout(s, FORWARD_TIMEOUT);
	log_debug("forward.receive", "peer=%s via=%s rcpts=%zu size=%" PRIu64, fi->peer,
		  fi->req->via, nr, fi->req->size);
}

/* ==== failover at the front ================================================
 *
 * The home is down and this POP is the first of its mirrors: the message
 * is stored here in the mirror store, by the same code the home side
 * runs (deliver), without a stream; answer() hands the replies to the
 * front request. */

static void local_deliver(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	deliver(arg);
}

int fwd_local_start(struct forward_req *fr, const char *mail_from,
		    const struct forward_rcpt *rcpts, int64_t internaldate)
{
	struct node *n = fr->n;
	struct timeval zero = { 0, 0 };
	struct fwd_in *fi = calloc(1, sizeof(*fi));
	size_t nr = fr->n_rcpts;

	if (fi == NULL)
		return -1;
	fi->n = n;
	fi->front = fr;
	fi->st = failover_store(n, fr->home, false);
	fi->reg.store = fi->st;
	snprintf(fi->serving_for, sizeof(fi->serving_for), "%s", fr->home);
	snprintf(fi->peer, sizeof(fi->peer), "%s", n->cfg->node_id);
	fi->req = calloc(1, sizeof(*fi->req));
	fi->body = malloc(fr->len > 0 ? fr->len : 1);
	fi->replies = calloc(nr, sizeof(*fi->replies));
	fi->results = calloc(nr, sizeof(*fi->results));
	fi->uids = calloc(nr, sizeof(*fi->uids));
	fi->store_idx = calloc(nr, sizeof(*fi->store_idx));
	fi->sizes = calloc(nr, sizeof(*fi->sizes));
	node_session_register(n, &fi->reg, PROTO_LMTP, in_shutdown, fi);
	if (fi->st == NULL || fi->req == NULL || fi->body == NULL || fi->replies == NULL ||
	    fi->results == NULL || fi->uids == NULL || fi->store_idx == NULL || fi->sizes == NULL) {
		in_free(fi);
		return -1;
	}
	snprintf(fi->req->mail_from, sizeof(fi->req->mail_from), "%s", mail_from);
	snprintf(fi->req->via, sizeof(fi->req->via), "%s", n->cfg->node_id);
	fi->req->internaldate = internaldate;
	fi->req->size = fr->len;
	fi->req->n_rcpts = nr;
	for (size_t i = 0; i < nr; i++) {
		snprintf(fi->req->rcpts[i].user, sizeof(fi->req->rcpts[i].user), "%s", rcpts[i].user);
		snprintf(fi->req->rcpts[i].addr, sizeof(fi->req->rcpts[i].addr), "%s", rcpts[i].addr);
	}
	memcpy(fi->body, fr->body, fr->len);
	fi->got = fr->len;
	fr->local = fi;
	clock_gettime(CLOCK_MONOTONIC, &fi->started);
	log_info("forward.failover_local", "home=%s rcpts=%zu size=%zu", fr->home, nr, fr->len);
	/* deliver() may answer at once (no recipient to store): never
	 * inside forward_start, so on the next loop turn. */
	if (event_base_once(n->base, -1, EV_TIMEOUT, local_deliver, fi, &zero) < 0) {
		fr->local = NULL;
		in_free(fi);
		return -1;
	}
	return 0;
}

/* The front request went away: the commit goes on, its answer goes nowhere. */
void fwd_local_cancel(struct fwd_in *fi)
{
	fi->front = NULL;
}
