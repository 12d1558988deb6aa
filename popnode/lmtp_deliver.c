/*
 * lmtp_deliver.c - DATA and delivery for the LMTP session (lmtp.c): the
 * body goes through the DATA reader (lmtp_parse.c); after the final dot
 * it goes to store_deliver() once for all accepted local recipients and
 * to the home POPs of the others, and once every part has answered each
 * recipient gets its reply, in RCPT order.
 *
 * Recipients homed at another POP (forward.h): RCPT accepts them only
 * while the home is reachable over the link (else 451 4.4.1 at once);
 * after the final dot they are forwarded, one request per home (split
 * past FORWARD_RCPTS_MAX recipients or the header budget), alongside the
 * local commit.  Each home answers per recipient once its own commit is
 * durable; a home that fails or stays silent makes its recipients 451
 * 4.4.1.  Only when every part (local commit, each forward) has answered
 * do we send one reply per accepted recipient, in RCPT order.  The body
 * stays in the DATA reader until then: the forwards read it in place.
 *
 * replication_ack mirror (repl_ack.h): the local part answers only once
 * a mirror applied the commit too (a waiter from the store's callback),
 * or per replication_degraded when no mirror is in reach: tempfail makes
 * the stored recipients 451 4.4.1.  A client that goes away cancels the
 * waiter (the message is durable here and reaches the mirrors anyway).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "config.h"
#include "forward.h"
#include "lmtp_int.h"
#include "lmtp_parse.h"
#include "lmtp_prefix.h"
#include "log.h"
#include "metrics.h"
#include "mime.h"
#include "node.h"
#include "repl_ack.h"
#include "store.h"

static void deliver_reply_local(struct lmtp_session *s, const struct rcpt *r,
				const struct slot_result *res)
{
	struct metrics *m = &s->n->metrics;
	struct lmtp_store_reply rep;

	if (res->unreplicated) {
		/* replication_degraded tempfail: stored here, but the MTA
		 * keeps it (a retry stores a duplicate, never a loss). */
		lmtp_reply(s, "451 4.4.1 <%s> stored, but no mirror acknowledged it "
			   "(replication_degraded tempfail), try later", r->addr);
		m->delivery_failures++;
		log_warn("lmtp.deliver", "session=%llu user=%s uid=%u size=%zu result=unreplicated "
			 "from=%s%s", s->id, r->user, res->uid, res->size, s->sender_log,
			 s->dead ? " client=gone" : "");
		return;
	}
	lmtp_store_reply(res->result, res->uid, &rep);
	lmtp_reply(s, "%u %s <%s> %s", rep.code, rep.enh, r->addr, rep.text);
	if (res->result == STORE_OK) {
		m->deliveries++;
		m->delivery_bytes += res->size;
	} else {
		m->delivery_failures++;
	}
	log_msg(res->result == STORE_OK ? LOG_LVL_INFO : LOG_LVL_WARN, "lmtp.deliver",
		"session=%llu user=%s uid=%u size=%zu result=%s from=%s%s", s->id, r->user,
		res->uid, res->size, lmtp_result_name(res->result), s->sender_log,
		s->dead ? " client=gone" : "");
}

static void deliver_reply_remote(struct lmtp_session *s, const struct rcpt *r,
				 const struct forward_result *f, size_t size)
{
	struct metrics *m = &s->n->metrics;

	lmtp_reply(s, "%u %s <%s> %s", f->code, f->enh, r->addr, f->text);
	if (f->code == 250) {
		m->forward_rcpts++;
	} else {
		m->delivery_failures++;
		if (f->link_failed && !s->dead)
			m->forward_failed++;	/* answered 451 4.4.1 */
	}
	log_msg(f->code == 250 ? LOG_LVL_INFO : LOG_LVL_WARN, "lmtp.forward",
		"session=%llu user=%s home=%s size=%zu code=%u enh=%s result=%s from=%s%s", s->id,
		r->user, r->home, size, f->code, f->enh,
		f->code == 250 ? "ok" : f->link_failed ? "unreachable" : "refused", s->sender_log,
		s->dead ? " client=gone" : "");
}

/* Every part is back: one reply per recipient, in RCPT order. */
enum act lmtp_deliver_finish(struct lmtp_session *s)
{
	s->phase = PH_COMMANDS;
	for (size_t i = 0; i < s->n_rcpts; i++) {
		const struct rcpt *r = &s->rcpts[i];
		const struct slot_result *res = &s->results[r->slot];

		if (r->home[0] != '\0')
			deliver_reply_remote(s, r, &res->fwd, res->size);
		else
			deliver_reply_local(s, r, res);
	}
	if (s->dead) {
		lmtp_destroy(s, "client_gone");
		return ACT_NEED_MORE; /* not reached by callers: see part_done */
	}
	return lmtp_txn_end(s);
}

/* A part (the local commit, a forward) answered. */
static void part_done(struct lmtp_session *s)
{
	enum act act;

	if (--s->pending > 0 || s->in_data_end)
		return;	/* more to come, or lmtp_data_end() finishes */
	if (s->dead) {
		lmtp_deliver_finish(s); /* frees s */
		return;
	}
	act = lmtp_deliver_finish(s);
	if (act == ACT_CLOSE) {
		lmtp_close(s);
		return;
	}
	if (!s->out_blocked)
		lmtp_set_reading(s, true);
	lmtp_process(s);
}

/* The local part is answered: a mirror applied the commit, or what
 * replication_ack / replication_degraded say instead. */
static void local_acked(void *arg, enum repl_ack_result r)
{
	struct lmtp_session *s = arg;

	s->ack = NULL;
	for (size_t k = 0; k < s->n_local && !repl_ack_ok(r); k++) {
		struct slot_result *res = &s->results[s->local_slots[k]];

		res->unreplicated = res->result == STORE_OK;
	}
	part_done(s);
}

static void deliver_cb(const struct store_rcpt *rcpts, size_t n, void *arg)
{
	struct lmtp_session *s = arg;
	enum repl_ack_result r = REPL_ACK_LOCAL;
	bool stored = false;

	for (size_t k = 0; k < s->n_local; k++) {
		struct slot_result *res = &s->results[s->local_slots[k]];

		res->result = k < n ? rcpts[k].result : STORE_IO;
		res->uid = k < n && rcpts[k].result == STORE_OK ? rcpts[k].uid : 0;
		stored = stored || res->result == STORE_OK;
	}
	/* Durable here; replication_ack mirror: 250 once a mirror has it. */
	if (stored && !s->dead) {
		s->ack = repl_ack_wait_commit(s->n, local_acked, s, &r);
		if (s->ack != NULL)
			return;
	}
	local_acked(s, r);
}

static void forward_done(void *arg, const struct forward_result *res, size_t n)
{
	struct fwd_part *p = arg;
	struct lmtp_session *s = p->s;

	p->req = NULL;	/* freed by forward.c after we return */
	for (size_t j = 0; j < p->n; j++) {
		struct forward_result *f = &s->results[s->rcpts[p->rcpt[j]].slot].fwd;

		if (j < n)
			*f = res[j];
		else
			forward_unreachable(f, p->home);
	}
	part_done(s);
}

/* The client went away while forwards were in flight: stop them. */
void lmtp_cancel_forwards(struct lmtp_session *s)
{
	for (size_t i = 0; i < s->n_parts; i++) {
		struct fwd_part *p = &s->parts[i];

		if (p->req == NULL)
			continue;
		forward_cancel(&p->req);
		for (size_t j = 0; j < p->n; j++) {
			struct forward_result *f = &s->results[s->rcpts[p->rcpt[j]].slot].fwd;

			forward_unreachable(f, p->home);
		}
		s->pending--;
	}
}

/* Answer every recipient with the same reply (message refused whole). */
static enum act refuse_all(struct lmtp_session *s, const char *code_enh, const char *text,
			   const char *result)
{
	for (size_t i = 0; i < s->n_rcpts; i++) {
		const struct rcpt *r = &s->rcpts[i];

		lmtp_reply(s, "%s <%s> %s", code_enh, r->addr, text);
		s->n->metrics.delivery_failures++;
		log_warn("lmtp.deliver", "session=%llu user=%s uid=0 size=%zu result=%s from=%s",
			 s->id, r->user, lmtp_data_size(s->data), result, s->sender_log);
	}
	s->phase = PH_COMMANDS;
	return lmtp_txn_end(s);
}

/* Group the remote slots by home into parts of at most FORWARD_RCPTS_MAX
 * (and max_recipients) recipients within the header budget, RCPT order
 * kept within each.  s->parts has room for one part per remote slot. */
static void plan_forwards(struct lmtp_session *s, size_t body_len)
{
	size_t limit = s->cfg->max_recipients < FORWARD_RCPTS_MAX ? s->cfg->max_recipients
								  : FORWARD_RCPTS_MAX;
	size_t next_slot = 0;

	for (size_t i = 0; i < s->n_rcpts; i++) {
		const struct rcpt *r = &s->rcpts[i];
		size_t bytes, k;

		if (r->slot != next_slot)
			continue; /* a duplicate: its slot is already placed */
		next_slot++;
		if (r->home[0] == '\0')
			continue;
		s->results[r->slot].size = body_len;	/* for the log */
		bytes = forward_rcpt_hdr_bytes(r->user, r->addr);
		for (k = 0; k < s->n_parts; k++) {
			const struct fwd_part *p = &s->parts[k];

			if (strcmp(p->home, r->home) == 0 && p->n < limit &&
			    p->hdr_bytes + bytes <= FORWARD_RCPT_BYTES_MAX)
				break;
		}
		if (k == s->n_parts) {
			s->parts[k].s = s;
			memcpy(s->parts[k].home, r->home, sizeof(r->home));
			s->n_parts++;
		}
		s->parts[k].rcpt[s->parts[k].n++] = i;
		s->parts[k].hdr_bytes += bytes;
	}
}

static void start_forwards(struct lmtp_session *s, const char *body, size_t body_len,
			   int64_t now)
{
	for (size_t i = 0; i < s->n_parts; i++) {
		struct fwd_part *p = &s->parts[i];
		struct forward_rcpt fr[FORWARD_RCPTS_MAX];

		for (size_t j = 0; j < p->n; j++)
			fr[j] = (struct forward_rcpt){ s->rcpts[p->rcpt[j]].user,
						       s->rcpts[p->rcpt[j]].addr };
		p->req = forward_start(s->n, p->home, s->sender, fr, p->n, body, body_len, now,
				       forward_done, p);
		if (p->req != NULL) {
			s->pending++;
			if (s->stopping)
				forward_hurry(p->req, LMTP_FORWARD_SHUTDOWN_WAIT);
			continue;
		}
		log_warn("lmtp.forward_unreachable", "session=%llu home=%s rcpts=%zu", s->id,
			 p->home, p->n);
		for (size_t j = 0; j < p->n; j++)
			forward_unreachable(&s->results[s->rcpts[p->rcpt[j]].slot].fwd, p->home);
	}
}

/* store_deliver() for the local slots; sr and prefixes have room for
 * n_local. */
static void start_local(struct lmtp_session *s, const char *body, size_t body_len, int64_t now,
			struct store_rcpt *sr, char *prefixes)
{
	struct store_delivery d;
	uint8_t *meta = NULL;
	size_t meta_len = 0;

	for (size_t i = 0, k = 0, next_slot = 0; i < s->n_rcpts; i++) {
		const struct rcpt *r = &s->rcpts[i];
		char *pfx = prefixes + k * LMTP_PREFIX_MAX;
		int plen;

		if (r->slot != next_slot)
			continue; /* a duplicate: the first address names the slot */
		next_slot++;
		if (r->home[0] != '\0')
			continue;
		plen = lmtp_prefix(pfx, LMTP_PREFIX_MAX, s->sender, r->addr);
		sr[k] = (struct store_rcpt){ .user = r->user, .prefix = pfx,
					     .prefix_len = plen > 0 ? (size_t)plen : 0 };
		s->local_slots[k] = r->slot;
		s->results[r->slot].size = sr[k].prefix_len + body_len;
		k++;
	}
	/* The MIME structure, once per message (IMAP ENVELOPE/BODYSTRUCTURE
	 * and section offsets come from it).  Without it IMAP parses the
	 * message when asked: a failure here never refuses mail. */
	if (mime_parse(body, body_len, &meta, &meta_len) < 0 || meta_len > STORE_META_MAX) {
		log_warn("lmtp.mime", "session=%llu size=%zu result=%s", s->id, body_len,
			 meta != NULL ? "too_big" : "failed");
		free(meta);
		meta = NULL;
		meta_len = 0;
	}
	d = (struct store_delivery){
		.body = body,
		.body_len = body_len,
		.internaldate = now,
		.mailbox = NULL,
		.rcpts = sr,
		.n_rcpts = s->n_local,
		.meta = meta,
		.meta_len = meta_len,
	};
	s->pending++;
	store_deliver(s->n->store, &d, deliver_cb, s);
	/* The store copied what it needs. */
	free(meta);
}

/* The final dot was read. */
enum act lmtp_data_end(struct lmtp_session *s)
{
	struct store_rcpt *sr = NULL;
	char *prefixes = NULL;
	const char *body;
	size_t body_len, n_local = 0, n_remote = 0;
	int64_t now = (int64_t)time(NULL);
	bool forwarding = false;

	switch (lmtp_data_error(s->data)) {
	case LMTP_DATA_OK:
		break;
	case LMTP_DATA_TOO_BIG:
		return refuse_all(s, "552 5.3.4", "message too big", "too_big");
	case LMTP_DATA_LINE_TOO_LONG:
		return refuse_all(s, "554 5.6.0", "message has a line too long", "line_too_long");
	case LMTP_DATA_NOMEM:
		return refuse_all(s, "451 4.3.0", "out of memory, try later", "nomem");
	}

	body = lmtp_data_body(s->data, &body_len);
	if (body == NULL)
		body = "";
	for (size_t i = 0, next = 0; i < s->n_rcpts; i++) {
		if (s->rcpts[i].slot != next)
			continue;
		next++;
		if (s->rcpts[i].home[0] != '\0')
			n_remote++;
		else
			n_local++;
	}
	s->results = calloc(s->n_slots, sizeof(*s->results));
	if (n_local > 0) {
		sr = calloc(n_local, sizeof(*sr));
		prefixes = malloc(n_local * LMTP_PREFIX_MAX);
		s->local_slots = calloc(n_local, sizeof(*s->local_slots));
	}
	if (n_remote > 0)
		s->parts = calloc(n_remote, sizeof(*s->parts));
	if (s->results == NULL || (n_local > 0 && (sr == NULL || prefixes == NULL ||
						   s->local_slots == NULL)) ||
	    (n_remote > 0 && s->parts == NULL)) {
		free(sr);
		free(prefixes);
		return refuse_all(s, "451 4.3.0", "out of memory, try later", "nomem");
	}
	s->n_local = n_local;
	s->phase = PH_DELIVERING;
	s->pending = 0;
	s->in_data_end = true;
	if (n_remote > 0) {
		plan_forwards(s, body_len);
		start_forwards(s, body, body_len, now);
	}
	if (n_local > 0)
		start_local(s, body, body_len, now, sr, prefixes);
	s->in_data_end = false;
	free(sr);
	free(prefixes);
	for (size_t i = 0; i < s->n_parts; i++)
		forwarding = forwarding || s->parts[i].req != NULL;
	/* The message can go now, unless a forward still reads it. */
	if (!forwarding)
		lmtp_data_reset(s->data);
	if (s->pending == 0)
		return lmtp_deliver_finish(s); /* not dead: no event ran meanwhile */
	return ACT_CONTINUE;
}

/* Feed buffered input to the DATA reader; true once the final dot is in. */
bool lmtp_read_data(struct lmtp_session *s, struct evbuffer *in)
{
	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v[8];
		int nv = evbuffer_peek(in, -1, NULL, v, 8);
		size_t used_total = 0;
		bool done = false;

		for (int i = 0; i < nv && i < 8 && !done; i++) {
			size_t used;

			done = lmtp_data_feed(s->data, v[i].iov_base, v[i].iov_len, &used) ==
			       LMTP_DATA_DONE;
			used_total += used;
		}
		evbuffer_drain(in, used_total);
		if (done)
			return true;
	}
	return false;
}
