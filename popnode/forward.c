/*
 * forward.c - LMTP mail for users homed at another POP, over the link
 * (forward.h; wire format forward_wire.h, docs/link-deliver.md).
 *
 * Front: one POST /v1/deliver stream per call.  The body is written with
 * backpressure: at most LINK_OUTPUT_HIGH bytes wait in the stream's
 * output, refilled from the caller's buffer (pointer + offset, nothing
 * copied ahead) each time the output drains below LINK_OUTPUT_LOW.  The
 * stream's timeout (FORWARD_TIMEOUT) is re-armed by every refill and by
 * the home's answer, so it measures time without progress.  The answer
 * (status 200, one line per recipient) is read whole (it is small and
 * bounded) and parsed at END_STREAM.  Every way the request can go
 * wrong ends in 451 4.4.1 for the recipients it leaves unanswered; a
 * timeout or a nonsensical answer also counts against the home's
 * circuit breaker.
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "directory.h"
#include "failover.h"
#include "forward.h"
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

static int64_t ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* ==== front ============================================================== */

struct fwd_in;

struct forward_req {
	struct node *n;
	struct link_stream *s;		/* to the home POP (or a mirror) */
	struct fwd_in *local;		/* failover: stored here, in a mirror store */
	forward_cb *cb;
	void *arg;
	char home[STORE_POP_MAX];
	const char *body;		/* the caller's, until cb or cancel */
	size_t len, off;		/* off: bytes handed to the stream */
	bool ended;			/* link_stream_end() called */
	int status;			/* of the answer, 0 before it */
	unsigned timeout;
	size_t n_rcpts;
	char users[FORWARD_RCPTS_MAX][STORE_NAME_MAX];
	struct forward_result res[FORWARD_RCPTS_MAX];
	struct timespec started;
};

static void local_cancel(struct fwd_in *fi);

static void link_failure(struct forward_result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void link_failure(struct forward_result *r, const char *fmt, ...)
{
	va_list ap;

	r->code = 451;
	snprintf(r->enh, sizeof(r->enh), "4.4.1");
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
	r->link_failed = true;
}

void forward_unreachable(struct forward_result *r, const char *home)
{
	link_failure(r, "home POP %s unreachable, try later", home);
}

/* Answer the caller and free the request. */
static void done(struct forward_req *fr)
{
	forward_cb *cb = fr->cb;
	void *arg = fr->arg;

	link_stream_free(&fr->s);
	cb(arg, fr->res, fr->n_rcpts);
	free(fr);
}

/* Every recipient gets 451 4.4.1 with the text fmt makes (it names the
 * home POP); why goes to the log. */
static void fail_all(struct forward_req *fr, const char *why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail_all(struct forward_req *fr, const char *why, const char *fmt, ...)
{
	char text[FORWARD_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_warn("forward.failed", "home=%s rcpts=%zu size=%zu sent=%zu ms=%" PRId64
		 " reason=\"%s\"", fr->home, fr->n_rcpts, fr->len, fr->off,
		 ms_since(&fr->started), why);
	for (size_t i = 0; i < fr->n_rcpts; i++)
		link_failure(&fr->res[i], "%s", text);
	done(fr);
}

#define NO_VALID_ANSWER "home POP %s gave no valid answer, try later"

/* Top the stream's output up from the body; END_STREAM after the last
 * byte.  -1: out of memory. */
static int refill(struct forward_req *fr)
{
	struct evbuffer *out = link_stream_output(fr->s);
	size_t have = evbuffer_get_length(out);

	if (fr->off < fr->len && have < LINK_OUTPUT_HIGH) {
		size_t k = fr->len - fr->off;

		if (k > LINK_OUTPUT_HIGH - have)
			k = LINK_OUTPUT_HIGH - have;
		if (evbuffer_add(out, fr->body + fr->off, k) != 0)
			return -1;
		fr->off += k;
		link_stream_set_timeout(fr->s, fr->timeout);	/* progress */
	}
	if (fr->off == fr->len && !fr->ended) {
		fr->ended = true;
		link_stream_end(fr->s);
	}
	return 0;
}

static void req_response(void *arg, int status, const struct link_hdr *h, size_t n)
{
	struct forward_req *fr = arg;
	const char *err = link_hdr_get(h, n, "x-popnode-error");
	char why[160], e[80];

	fr->status = status;
	if (status != 200) {
		log_sanitize(e, sizeof(e), err, err != NULL ? strlen(err) : 0);
		snprintf(why, sizeof(why), "home answered %d: %s", status, err != NULL ? e : "-");
		fail_all(fr, why, "home POP %s refused the message (status %d), try later",
			 fr->home, status);
		return;
	}
	if (!fr->ended) {
		/* The home answers only after the whole body: this is not it. */
		link_peer_failed(fr->n->link, fr->home);
		fail_all(fr, "answer before the end of the message", NO_VALID_ANSWER, fr->home);
		return;
	}
	link_stream_set_timeout(fr->s, fr->timeout);
}

static void req_read(void *arg)
{
	struct forward_req *fr = arg;
	struct evbuffer *in = link_stream_input(fr->s);

	/* Kept in the input until END_STREAM: a few lines, bounded here. */
	if (evbuffer_get_length(in) > fr->n_rcpts * FORWARD_LINE_MAX) {
		link_peer_failed(fr->n->link, fr->home);
		fail_all(fr, "answer too long", NO_VALID_ANSWER, fr->home);
	}
}

static void req_drained(void *arg)
{
	struct forward_req *fr = arg;

	if (refill(fr) < 0)
		fail_all(fr, "out of memory", "cannot forward to home POP %s now, try later",
			 fr->home);
}

/* END_STREAM after a 200: one line per recipient. */
static void req_answered(struct forward_req *fr)
{
	struct evbuffer *in = link_stream_input(fr->s);
	size_t len = evbuffer_get_length(in), good;
	const char *users[FORWARD_RCPTS_MAX];
	struct forward_reply rep[FORWARD_RCPTS_MAX];
	bool ok[FORWARD_RCPTS_MAX], malformed;
	const char *body = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
	char show[80];

	if (body == NULL) {
		fail_all(fr, "out of memory", "cannot read the answer of home POP %s, try later",
			 fr->home);
		return;
	}
	for (size_t i = 0; i < fr->n_rcpts; i++)
		users[i] = fr->users[i];
	good = forward_replies_parse(body, len, users, fr->n_rcpts, rep, ok, &malformed);
	for (size_t i = 0; i < fr->n_rcpts; i++) {
		struct forward_result *r = &fr->res[i];

		if (!ok[i]) {
			link_failure(r, NO_VALID_ANSWER, fr->home);
			continue;
		}
		r->code = rep[i].code;
		memcpy(r->enh, rep[i].enh, sizeof(r->enh));
		snprintf(r->text, sizeof(r->text), "%s (home POP %s)", rep[i].text, fr->home);
		r->link_failed = false;
	}
	if (malformed) {
		link_peer_failed(fr->n->link, fr->home);
		log_warn("forward.bad_answer", "home=%s rcpts=%zu valid=%zu answer=%s", fr->home,
			 fr->n_rcpts, good, log_sanitize(show, sizeof(show), body, len));
	}
	log_info("forward.done", "home=%s rcpts=%zu answered=%zu size=%zu ms=%" PRId64, fr->home,
		 fr->n_rcpts, good, fr->len, ms_since(&fr->started));
	done(fr);
}

static void req_event(void *arg, enum link_event ev)
{
	struct forward_req *fr = arg;

	switch (ev) {
	case LINK_EV_EOF:
		if (fr->status == 200)
			req_answered(fr);
		else
			fail_all(fr, "stream ended without an answer", NO_VALID_ANSWER, fr->home);
		return;
	case LINK_EV_TIMEOUT:
		link_peer_failed(fr->n->link, fr->home);
		fail_all(fr, "timeout", "home POP %s did not answer in time, try later", fr->home);
		return;
	case LINK_EV_RESET:
	default:
		fail_all(fr, "stream reset", "link to home POP %s lost, try later", fr->home);
		return;
	}
}

static const struct link_stream_cbs req_cbs = {
	.response = req_response,
	.read = req_read,
	.drained = req_drained,
	.event = req_event,
};

const char *forward_route(struct node *n, const char *home)
{
	const char *t[FAILOVER_TARGETS];
	size_t nt = failover_targets(n, home, t);

	for (size_t i = 0; i < nt; i++) {
		if (strcmp(t[i], n->cfg->node_id) == 0) {
			if (failover_store(n, home, false) != NULL)
				return n->cfg->node_id;
		} else if (link_peer_usable(n->link, t[i])) {
			return t[i];
		}
	}
	return NULL;
}

static int local_start(struct forward_req *fr, const char *mail_from,
		       const struct forward_rcpt *rcpts, int64_t internaldate);

struct forward_req *forward_start(struct node *n, const char *home, const char *mail_from,
				  const struct forward_rcpt *rcpts, size_t n_rcpts,
				  const char *body, size_t len, int64_t internaldate,
				  forward_cb *cb, void *arg)
{
	struct link_hdr h[FORWARD_RCPTS_MAX + 5];
	char date[24], clen[24], *vals;
	const char *target;
	struct forward_req *fr;
	size_t k = 0, bytes = 0;
	const size_t vsz = STORE_NAME_MAX + LMTP_ADDR_MAX + 2;

	if (n_rcpts == 0 || n_rcpts > FORWARD_RCPTS_MAX || !forward_valid_addr(mail_from, true) ||
	    strlen(home) >= STORE_POP_MAX || internaldate < 0 || internaldate > FORWARD_DATE_MAX)
		return NULL;
	for (size_t i = 0; i < n_rcpts; i++) {
		if (!dir_valid_username(rcpts[i].user) || !forward_valid_addr(rcpts[i].addr, false))
			return NULL;
		bytes += forward_rcpt_hdr_bytes(rcpts[i].user, rcpts[i].addr);
	}
	if (bytes > FORWARD_RCPT_BYTES_MAX)
		return NULL;
	fr = calloc(1, sizeof(*fr));
	vals = malloc(n_rcpts * vsz);
	if (fr == NULL || vals == NULL) {
		free(fr);
		free(vals);
		return NULL;
	}
	fr->n = n;
	fr->cb = cb;
	fr->arg = arg;
	fr->body = body;
	fr->len = len;
	fr->n_rcpts = n_rcpts;
	fr->timeout = FORWARD_TIMEOUT;
	snprintf(fr->home, sizeof(fr->home), "%s", home);
	clock_gettime(CLOCK_MONOTONIC, &fr->started);
	for (size_t i = 0; i < n_rcpts; i++)
		snprintf(fr->users[i], sizeof(fr->users[i]), "%s", rcpts[i].user);
	target = forward_route(n, home);
	if (target == NULL) {
		free(fr);
		free(vals);
		return NULL;
	}
	if (strcmp(target, n->cfg->node_id) == 0) {
		/* Failover, and this POP is the home's first mirror. */
		free(vals);
		if (local_start(fr, mail_from, rcpts, internaldate) < 0) {
			free(fr);
			return NULL;
		}
		return fr;
	}
	if (strcmp(target, home) != 0) {
		h[k++] = (struct link_hdr){ FAILOVER_HDR, home };
		n->metrics.failover_routed++;
		log_info("forward.failover", "home=%s mirror=%s rcpts=%zu", home, target, n_rcpts);
	}
	snprintf(date, sizeof(date), "%" PRId64, internaldate);
	snprintf(clen, sizeof(clen), "%zu", len);
	h[k++] = (struct link_hdr){ FORWARD_HDR_MAIL_FROM, mail_from };
	h[k++] = (struct link_hdr){ FORWARD_HDR_VIA, n->cfg->node_id };
	h[k++] = (struct link_hdr){ FORWARD_HDR_DATE, date };
	h[k++] = (struct link_hdr){ FORWARD_HDR_LENGTH, clen };
	for (size_t i = 0; i < n_rcpts; i++) {
		char *v = vals + i * vsz;

		snprintf(v, vsz, "%s %s", rcpts[i].user, rcpts[i].addr);
		h[k++] = (struct link_hdr){ FORWARD_HDR_RCPT, v };
	}
	/* nghttp2 copies the headers: vals can go once the request is out. */
	snprintf(fr->home, sizeof(fr->home), "%s", target);	/* who answers */
	fr->s = link_request(n->link, target, "POST", FORWARD_PATH, h, k, true, &req_cbs, fr);
	free(vals);
	if (fr->s == NULL) {
		free(fr);
		return NULL;
	}
	link_stream_set_timeout(fr->s, fr->timeout);
	if (refill(fr) < 0) {
		link_stream_free(&fr->s);
		free(fr);
		return NULL;
	}
	log_debug("forward.start", "home=%s rcpts=%zu size=%zu", fr->home, n_rcpts, len);
	return fr;
}

void forward_cancel(struct forward_req **r)
{
	struct forward_req *fr = *r;

	if (fr == NULL)
		return;
	*r = NULL;
	log_info("forward.cancelled", "home=%s rcpts=%zu size=%zu sent=%zu", fr->home, fr->n_rcpts,
		 fr->len, fr->off);
	link_stream_free(&fr->s);
	if (fr->local != NULL)
		local_cancel(fr->local);
	free(fr);
}

void forward_hurry(struct forward_req *r, unsigned seconds)
{
	if (r == NULL || seconds >= r->timeout)
		return;
	r->timeout = seconds;
	if (r->s != NULL)
		link_stream_set_timeout(r->s, seconds);
}

/* ==== home =============================================================== */

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
		done(fr);
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
		  req->via, req->n_rcpts, req->size, ms_since(&fi->started));
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
		/* As lmtp.c: a user without a home is served where found. */
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
	/* The MIME structure, as lmtp.c computes it: never a reason to refuse. */
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

static void serve(void *arg, struct link_stream *s, const struct link_request *lr)
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

static int local_start(struct forward_req *fr, const char *mail_from,
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
static void local_cancel(struct fwd_in *fi)
{
	fi->front = NULL;
}

int forward_init(struct node *n)
{
	link_set_handler(n->link, FORWARD_PATH, serve, n);
	return 0;
}
