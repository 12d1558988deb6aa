/*
 * forward_front.c - the front of forwarding (forward.h): the POP that
 * received a delivery for users homed elsewhere sends it to the home, or
 * to a mirror of a failed home, and answers the LMTP caller.  When this
 * POP is that mirror the message is stored here (forward_home.c).
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
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "directory.h"
#include "failover.h"
#include "forward_int.h"
#include "link.h"
#include "log.h"
#include "node.h"
#include "store.h"

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
void fwd_done(struct forward_req *fr)
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
		 fwd_ms_since(&fr->started), why);
	for (size_t i = 0; i < fr->n_rcpts; i++)
		link_failure(&fr->res[i], "%s", text);
	fwd_done(fr);
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
		 fr->n_rcpts, good, fr->len, fwd_ms_since(&fr->started));
	fwd_done(fr);
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
		if (fwd_local_start(fr, mail_from, rcpts, internaldate) < 0) {
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
		fwd_local_cancel(fr->local);
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
