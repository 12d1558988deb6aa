/*
 * lmtp.c - the LMTP session (RFC 2033): Postfix (or any MTA) hands us
 * mail for local users over a Unix or TCP socket; we store it and answer
 * once per recipient.
 *
 * Flow: greeting, LHLO, then transactions MAIL / RCPT... / DATA.  Each
 * RCPT is checked at once against the directory (domain local, user
 * known, enabled, not over quota).  After the final dot the message goes
 * to store_deliver() once for all accepted local recipients (the body is
 * stored once, with its MIME structure from one mime_parse() pass, which
 * IMAP serves ENVELOPE and BODYSTRUCTURE from); the store calls back when
 * the group commit is durable.
 *
 * Phases:  COMMANDS --DATA--> DATA --final dot--> DELIVERING --all answered--> COMMANDS
 *
 * Input handling (PIPELINING): every complete line in the input buffer is
 * handled in order; DATA bytes go through the resumable reader in
 * lmtp_parse.c.  While a delivery is in flight nothing more is consumed
 * (pipelined commands wait in the buffer; reading pauses if more than
 * LMTP_PIPELINE_MAX bytes pile up), and while the output holds more than
 * TRANSPORT_OUTPUT_HIGH bytes reading stops until the drained callback.
 *
 * Lifetime rule: the session is freed in exactly two places, the
 * transport event callback (EOF, error, timeout, closed) and the end of
 * a delivery (part_done, when the last part answered).  If the client
 * goes away while a delivery is in flight, the transport is freed at
 * once and the forwards are cancelled, but the session lives on, marked
 * dead, until the store's callback (the commit still happens: the
 * message is durable, the client just never hears about it, and the MTA
 * will retry - a duplicate at worst, never a loss; a cancelled forward
 * may likewise have been committed at its home).  Anything that calls
 * into the transport's close is the last thing its caller does.
 *
 * Shutdown (node_session hook): an idle session gets "421 4.3.2" and is
 * closed; one inside DATA or waiting for a commit or a forward finishes
 * that transaction (forwards get at most LMTP_FORWARD_SHUTDOWN_WAIT more
 * seconds, within the node's shutdown grace), sends its replies, then
 * says 421 and closes.
 *
 * The commands are in lmtp_cmd.c, DATA and delivery in lmtp_deliver.c
 * (lmtp_int.h lists the files).
 */
#include <stdarg.h>
#include <stdlib.h>

#include <event2/buffer.h>

#include "config.h"
#include "forward.h"
#include "lmtp.h"
#include "lmtp_int.h"
#include "lmtp_parse.h"
#include "log.h"
#include "node.h"
#include "repl_ack.h"
#include "transport.h"

/* Pipelined input held while a commit is in flight before reading pauses. */
#define LMTP_PIPELINE_MAX (64 * 1024)
/* RFC 5321 4.5.3.1: command lines of 512 and text lines of 1000 octets
 * (CRLF included) must always be accepted, whatever the config says. */
#define LMTP_MIN_CMD_LINE 510

static unsigned long long lmtp_next_id; /* log correlation only */

static void lmtp_read_cb(void *arg);
static void lmtp_drained_cb(void *arg);
static void lmtp_event_cb(void *arg, enum transport_event ev);

static const struct transport_cbs lmtp_cbs = {
	.read = lmtp_read_cb,
	.drained = lmtp_drained_cb,
	.event = lmtp_event_cb,
};

/* ---- output ----------------------------------------------------------- */

void lmtp_reply(struct lmtp_session *s, const char *fmt, ...)
{
	struct evbuffer *out;
	va_list ap;

	if (s->t == NULL)
		return;
	out = transport_output(s->t);
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

/* ---- lifetime --------------------------------------------------------- */

/* Forget the delivery's parts; a forward still open is cancelled (only
 * when the client went away: otherwise every part has answered). */
static void parts_free(struct lmtp_session *s)
{
	for (size_t i = 0; i < s->n_parts; i++)
		forward_cancel(&s->parts[i].req);
	free(s->parts);
	s->parts = NULL;
	s->n_parts = 0;
	free(s->local_slots);
	s->local_slots = NULL;
	s->n_local = 0;
}

void lmtp_txn_reset(struct lmtp_session *s)
{
	s->have_mail = false;
	s->sender[0] = '\0';
	s->sender_log[0] = '\0';
	s->n_rcpts = 0;
	s->n_slots = 0;
	parts_free(s);
	free(s->results);
	s->results = NULL;
	if (s->data != NULL)
		lmtp_data_reset(s->data);
}

void lmtp_destroy(struct lmtp_session *s, const char *reason)
{
	log_debug("lmtp.close", "session=%llu reason=%s", s->id, reason);
	node_session_unregister(s->n, &s->reg);
	transport_free(&s->t);
	repl_ack_cancel(&s->ack);
	parts_free(s);
	lmtp_data_free(&s->data);
	free(s->results);
	free(s->rcpts);
	free(s->line);
	free(s);
}

void lmtp_set_reading(struct lmtp_session *s, bool on)
{
	if (s->t == NULL || s->closing || s->reading == on)
		return;
	s->reading = on;
	transport_read_enable(s->t, on);
}

/* Queue-and-close: the caller must return right after. */
void lmtp_close(struct lmtp_session *s)
{
	if (s->closing || s->t == NULL)
		return;
	s->closing = true;
	transport_close_after_flush(s->t);
}

/* A transaction ended: go on, or leave if the node is stopping. */
enum act lmtp_txn_end(struct lmtp_session *s)
{
	lmtp_txn_reset(s);
	if (s->stopping) {
		lmtp_reply(s, "421 4.3.2 %s shutting down", s->cfg->node_id);
		return ACT_CLOSE;
	}
	return ACT_CONTINUE;
}

/* ---- the input loop --------------------------------------------------- */

void lmtp_process(struct lmtp_session *s)
{
	struct evbuffer *in = transport_input(s->t);

	for (;;) {
		enum act act;

		if (s->closing || s->phase == PH_DELIVERING)
			return;
		if (evbuffer_get_length(transport_output(s->t)) > TRANSPORT_OUTPUT_HIGH) {
			s->out_blocked = true;
			lmtp_set_reading(s, false);
			return;
		}
		if (s->phase == PH_DATA) {
			if (!lmtp_read_data(s, in))
				return;
			act = lmtp_data_end(s);
		} else {
			act = lmtp_read_line(s, in);
		}
		if (act == ACT_NEED_MORE)
			return;
		if (act == ACT_CLOSE) {
			lmtp_close(s);
			return;
		}
	}
}

static void lmtp_read_cb(void *arg)
{
	struct lmtp_session *s = arg;

	if (s->phase == PH_DELIVERING) {
		if (evbuffer_get_length(transport_input(s->t)) > LMTP_PIPELINE_MAX)
			lmtp_set_reading(s, false);
		return;
	}
	lmtp_process(s);
}

static void lmtp_drained_cb(void *arg)
{
	struct lmtp_session *s = arg;

	if (!s->out_blocked)
		return;
	s->out_blocked = false;
	if (s->phase != PH_DELIVERING)
		lmtp_set_reading(s, true);
	lmtp_process(s);
}

static void lmtp_event_cb(void *arg, enum transport_event ev)
{
	struct lmtp_session *s = arg;
	const char *why = ev == TRANSPORT_EOF	  ? "eof"
			  : ev == TRANSPORT_ERROR   ? "error"
			  : ev == TRANSPORT_TIMEOUT ? "timeout"
						    : "closed";

	if (ev == TRANSPORT_TIMEOUT) {
		log_info("lmtp.timeout", "session=%llu peer=%s phase=%s", s->id, s->t->peer,
			 s->phase == PH_DATA ? "data" : "commands");
		if (s->phase == PH_COMMANDS && !s->closing && !s->dead) {
			/* The transport still writes after an idle timeout. */
			lmtp_reply(s, "421 4.4.2 %s idle timeout, closing", s->cfg->node_id);
			lmtp_close(s);
			return;
		}
	}
	if (s->phase == PH_DATA && ev != TRANSPORT_CLOSED)
		log_info("lmtp.abort", "session=%llu peer=%s reason=%s rcpts=%zu", s->id, s->t->peer,
			 why, s->n_rcpts);
	if (s->phase == PH_DELIVERING) {
		/* The local commit goes on; the session waits for it without
		 * a client (part_done frees it).  Nobody will hear the
		 * forwards' answers: stop them. */
		s->dead = true;
		transport_free(&s->t);
		lmtp_cancel_forwards(s);
		if (s->ack != NULL) {	/* committed: nobody to tell */
			repl_ack_cancel(&s->ack);
			s->pending--;
		}
		if (s->pending == 0)
			lmtp_deliver_finish(s); /* frees s */
		return;
	}
	lmtp_destroy(s, why);
}

static void lmtp_shutdown(void *arg)
{
	struct lmtp_session *s = arg;

	if (s->dead || s->closing)
		return;
	s->stopping = true;
	if (s->phase != PH_COMMANDS) {
		/* lmtp_txn_end() says goodbye after the replies */
		for (size_t i = 0; i < s->n_parts; i++)
			forward_hurry(s->parts[i].req, LMTP_FORWARD_SHUTDOWN_WAIT);
		return;
	}
	lmtp_reply(s, "421 4.3.2 %s shutting down", s->cfg->node_id);
	lmtp_close(s);
}

void lmtp_session_start(struct node *n, struct transport *t)
{
	struct lmtp_session *s = calloc(1, sizeof(*s));
	const struct config *cfg = n->cfg;

	if (s != NULL) {
		s->max_line = cfg->max_line_length > LMTP_MIN_CMD_LINE ? cfg->max_line_length
								       : LMTP_MIN_CMD_LINE;
		s->line = malloc(s->max_line + 2);
	}
	if (s == NULL || s->line == NULL) {
		log_err("lmtp.error", "peer=%s reason=out_of_memory", t->peer);
		free(s);
		transport_free(&t);
		return;
	}
	s->n = n;
	s->cfg = cfg;
	s->t = t;
	s->id = ++lmtp_next_id;
	s->reading = true; /* a new transport reads */
	node_session_register(n, &s->reg, PROTO_LMTP, lmtp_shutdown, s);
	node_session_describe(&s->reg, t->peer, NULL, NULL, NULL);
	transport_set_cbs(t, &lmtp_cbs, s);
	transport_set_timeout(t, cfg->idle_timeout);
	log_debug("lmtp.connect", "session=%llu peer=%s", s->id, t->peer);
	if (n->stopping) {
		lmtp_reply(s, "421 4.3.2 %s shutting down", cfg->node_id);
		lmtp_close(s);
		return;
	}
	lmtp_reply(s, "220 %s LMTP popnode ready", cfg->node_id);
}
