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
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "config.h"
#include "directory.h"
#include "forward.h"
#include "link.h"
#include "lmtp.h"
#include "lmtp_parse.h"
#include "lmtp_prefix.h"
#include "log.h"
#include "metrics.h"
#include "mime.h"
#include "node.h"
#include "repl_ack.h"
#include "replicator.h"
#include "store.h"
#include "transport.h"

/* Bad commands (syntax, unknown, out of sequence) before 421 and close. */
#define LMTP_MAX_BAD_COMMANDS 10
/* Pipelined input held while a commit is in flight before reading pauses. */
#define LMTP_PIPELINE_MAX (64 * 1024)
/* RFC 5321 4.5.3.1: command lines of 512 and text lines of 1000 octets
 * (CRLF included) must always be accepted, whatever the config says. */
#define LMTP_MIN_CMD_LINE 510
#define LMTP_MIN_TEXT_LINE 998
/* Seconds a forward may still take once the node is stopping (below the
 * node's shutdown grace). */
#define LMTP_FORWARD_SHUTDOWN_WAIT 20

enum phase {
	PH_COMMANDS,
	PH_DATA,	/* reading the message after 354 */
	PH_DELIVERING,	/* store_deliver() and/or forwards in flight */
};

/* What a step of input handling asks the loop to do next. */
enum act {
	ACT_CONTINUE,	/* go on with the next line */
	ACT_NEED_MORE,	/* no complete line/message in the buffer */
	ACT_CLOSE,	/* a final reply was queued: close after flush */
};

struct rcpt {
	char addr[LMTP_ADDR_MAX + 1];	/* as received, for replies and Delivered-To */
	char user[STORE_NAME_MAX];
	char home[STORE_POP_MAX];	/* "" here; else the POP it is forwarded to */
	size_t slot;			/* index in the delivery (duplicates share one) */
};

struct slot_result {
	int result;			/* local: STORE_* */
	uint32_t uid;
	size_t size;			/* prefix + body */
	bool unreplicated;		/* local, stored, but no mirror ack (tempfail) */
	struct forward_result fwd;	/* remote: the reply to give */
};

struct lmtp_session;

/* One forward request: some remote slots with the same home. */
struct fwd_part {
	struct lmtp_session *s;
	struct forward_req *req;	/* NULL once answered or cancelled */
	char home[STORE_POP_MAX];
	size_t rcpt[FORWARD_RCPTS_MAX];	/* first rcpt of each slot it carries */
	size_t n;
	size_t hdr_bytes;
};

struct lmtp_session {
	struct node *n;
	const struct config *cfg;
	struct transport *t;		/* NULL once dead */
	struct node_session reg;
	unsigned long long id;
	enum phase phase;
	size_t max_line;		/* command lines, CRLF excluded */

	bool lhlo;
	bool skipping;			/* dropping the rest of an over-long line */
	bool reading;			/* what we last asked of transport_read_enable */
	bool out_blocked;		/* output over the high watermark */
	bool closing;			/* close_after_flush called */
	bool stopping;			/* node shutdown: 421 after this transaction */
	bool dead;			/* client gone while a delivery is in flight */
	bool in_data_end;		/* starting the parts: data_end() finishes */
	unsigned pending;		/* parts (local commit, forwards) not answered */
	unsigned bad_commands;

	/* transaction */
	bool have_mail;
	char sender[LMTP_ADDR_MAX + 1];	/* "" for <> */
	char sender_log[80];
	struct rcpt *rcpts;
	size_t n_rcpts;
	size_t cap_rcpts;
	size_t n_slots;
	struct slot_result *results;	/* n_slots, during a delivery */
	size_t *local_slots;		/* store_deliver's rcpts[k] is slot local_slots[k] */
	size_t n_local;
	struct fwd_part *parts;		/* forwards of this delivery */
	size_t n_parts;
	struct repl_ack_waiter *ack;	/* local commit durable, waiting for a mirror */
	struct lmtp_data *data;

	char *line;			/* max_line + 2 */
	struct lmtp_cmd cmd;
};

static unsigned long long lmtp_next_id; /* log correlation only */

static void lmtp_read_cb(void *arg);
static void lmtp_drained_cb(void *arg);
static void lmtp_event_cb(void *arg, enum transport_event ev);
static void lmtp_process(struct lmtp_session *s);

static const struct transport_cbs lmtp_cbs = {
	.read = lmtp_read_cb,
	.drained = lmtp_drained_cb,
	.event = lmtp_event_cb,
};

/* ---- output ----------------------------------------------------------- */

static void reply(struct lmtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reply(struct lmtp_session *s, const char *fmt, ...)
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

static void txn_reset(struct lmtp_session *s)
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

static void lmtp_destroy(struct lmtp_session *s, const char *reason)
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

static void set_reading(struct lmtp_session *s, bool on)
{
	if (s->t == NULL || s->closing || s->reading == on)
		return;
	s->reading = on;
	transport_read_enable(s->t, on);
}

/* Queue-and-close: the caller must return right after. */
static void lmtp_close(struct lmtp_session *s)
{
	if (s->closing || s->t == NULL)
		return;
	s->closing = true;
	transport_close_after_flush(s->t);
}

/* A transaction ended: go on, or leave if the node is stopping. */
static enum act txn_end(struct lmtp_session *s)
{
	txn_reset(s);
	if (s->stopping) {
		reply(s, "421 4.3.2 %s shutting down", s->cfg->node_id);
		return ACT_CLOSE;
	}
	return ACT_CONTINUE;
}

/* A 5xx for a bad command; too many of them end the session. */
static enum act bad_command(struct lmtp_session *s, unsigned code, const char *enh,
			    const char *text)
{
	reply(s, "%u %s %s", code, enh, text);
	if (++s->bad_commands >= LMTP_MAX_BAD_COMMANDS) {
		log_info("lmtp.errors", "session=%llu peer=%s bad_commands=%u", s->id, s->t->peer,
			 s->bad_commands);
		reply(s, "421 4.7.0 %s too many errors, closing connection", s->cfg->node_id);
		return ACT_CLOSE;
	}
	return ACT_CONTINUE;
}

/* ---- commands ----------------------------------------------------------- */

static enum act cmd_lhlo(struct lmtp_session *s, const struct lmtp_cmd *c)
{
	txn_reset(s);
	s->lhlo = true;
	reply(s, "250-%s", s->cfg->node_id);
	reply(s, "250-PIPELINING");
	reply(s, "250-ENHANCEDSTATUSCODES");
	reply(s, "250-8BITMIME");
	reply(s, "250 SIZE %zu", s->cfg->max_message_size);
	return ACT_CONTINUE;
}

static enum act cmd_mail(struct lmtp_session *s, const struct lmtp_cmd *c)
{
	if (s->have_mail)
		return bad_command(s, 503, "5.5.1", "nested MAIL command");
	if (c->has_size && c->size > s->cfg->max_message_size) {
		reply(s, "552 5.3.4 message size exceeds fixed limit of %zu bytes",
		      s->cfg->max_message_size);
		return ACT_CONTINUE;
	}
	txn_reset(s);
	s->have_mail = true;
	memcpy(s->sender, c->addr.addr, c->addr.addr_len + 1);
	log_sanitize(s->sender_log, sizeof(s->sender_log), c->addr.addr, c->addr.addr_len);
	if (s->sender_log[0] == '\0')
		snprintf(s->sender_log, sizeof(s->sender_log), "<>");
	reply(s, "250 2.1.0 sender ok");
	return ACT_CONTINUE;
}

static enum act cmd_rcpt(struct lmtp_session *s, const struct lmtp_cmd *c)
{
	const struct lmtp_addr *a = &c->addr;
	struct store_user u;
	struct rcpt *r;
	char user[STORE_NAME_MAX];
	const char *why = NULL;
	bool remote;
	int err;

	if (!s->have_mail)
		return bad_command(s, 503, "5.5.1", "need MAIL before RCPT");
	if (s->n_rcpts >= s->cfg->max_recipients) {
		reply(s, "452 4.5.3 too many recipients");
		return ACT_CONTINUE;
	}
	if (a->domain_len > 0 && !config_domain_is_local(s->cfg, a->domain, a->domain_len)) {
		reply(s, "550 5.1.2 <%s> domain not served here", a->addr);
		return ACT_CONTINUE;
	}
	if (!dir_user_from_local(a->local, a->local_len, user, sizeof(user))) {
		reply(s, "550 5.1.1 <%s> no such user", a->addr);
		return ACT_CONTINUE;
	}
	err = store_user_get(s->n->store, user, &u);
	/* This POP checks (or rebuilds) its store against its mirrors: its
	 * own users, and names it may not know yet, wait (replicator.h). */
	if (!replicator_serving_ready(s->n, &why) &&
	    (err != STORE_OK || u.home[0] == '\0' || strcmp(u.home, s->cfg->node_id) == 0)) {
		reply(s, "451 4.3.0 <%s> %s, try later", a->addr, why);
		return ACT_CONTINUE;
	}
	if (err == STORE_NOTFOUND) {
		reply(s, "550 5.1.1 <%s> no such user", a->addr);
		return ACT_CONTINUE;
	}
	if (err != STORE_OK) {
		log_err("lmtp.directory", "session=%llu user=%s error=%d", s->id, user, err);
		reply(s, "451 4.3.0 <%s> temporary directory failure", a->addr);
		return ACT_CONTINUE;
	}
	if (!u.enabled) {
		reply(s, "550 5.2.1 <%s> mailbox disabled", a->addr);
		return ACT_CONTINUE;
	}
	if (u.quota != 0 && u.used >= u.quota) {
		reply(s, "452 4.2.2 <%s> mailbox full", a->addr);
		return ACT_CONTINUE;
	}
	if (u.quota != 0 && c->has_size && c->size > u.quota - u.used) {
		reply(s, "452 4.2.2 <%s> mailbox full", a->addr);
		return ACT_CONTINUE;
	}
	/* Mail for a user homed at another POP belongs there; storing it
	 * here would hide it from them.  It is forwarded after DATA, so
	 * accept it only while the home can be asked: otherwise it stays
	 * queued at the MTA, which retries. */
	remote = u.home[0] != '\0' && strcmp(u.home, s->cfg->node_id) != 0;
	if (remote && forward_route(s->n, u.home) == NULL) {
		s->n->metrics.forward_failed++;
		log_info("lmtp.forward_unreachable", "session=%llu user=%s home=%s", s->id, user,
			 u.home);
		reply(s, "451 4.4.1 <%s> home POP %s unreachable, try later", a->addr, u.home);
		return ACT_CONTINUE;
	}

	if (s->n_rcpts == s->cap_rcpts) {
		size_t cap = s->cap_rcpts ? s->cap_rcpts * 2 : 8;
		struct rcpt *nr = realloc(s->rcpts, cap * sizeof(*nr));

		if (nr == NULL) {
			reply(s, "452 4.3.0 <%s> out of memory", a->addr);
			return ACT_CONTINUE;
		}
		s->rcpts = nr;
		s->cap_rcpts = cap;
	}
	r = &s->rcpts[s->n_rcpts];
	memcpy(r->addr, a->addr, a->addr_len + 1);
	memcpy(r->user, user, sizeof(r->user));
	snprintf(r->home, sizeof(r->home), "%s", remote ? u.home : "");
	/* The same mailbox twice (user@a, USER@b): stored once, both told. */
	r->slot = s->n_slots;
	for (size_t i = 0; i < s->n_rcpts; i++) {
		if (strcmp(s->rcpts[i].user, user) == 0) {
			r->slot = s->rcpts[i].slot;
			break;
		}
	}
	if (r->slot == s->n_slots)
		s->n_slots++;
	s->n_rcpts++;
	reply(s, "250 2.1.5 <%s> recipient ok", a->addr);
	return ACT_CONTINUE;
}

static enum act cmd_data(struct lmtp_session *s, const struct lmtp_cmd *c)
{
	if (!s->have_mail)
		return bad_command(s, 503, "5.5.1", "need MAIL before DATA");
	if (s->n_rcpts == 0)
		return bad_command(s, 503, "5.5.1", "no valid recipients");
	if (s->data == NULL) {
		size_t text_line = s->cfg->max_line_length > LMTP_MIN_TEXT_LINE
					   ? s->cfg->max_line_length
					   : LMTP_MIN_TEXT_LINE;

		s->data = lmtp_data_new(text_line, s->cfg->max_message_size);
		if (s->data == NULL) {
			reply(s, "451 4.3.0 out of memory");
			return ACT_CONTINUE;
		}
	}
	lmtp_data_reset(s->data);
	s->phase = PH_DATA;
	reply(s, "354 start mail input; end with <CRLF>.<CRLF>");
	return ACT_CONTINUE;
}

static enum act cmd_rset(struct lmtp_session *s, const struct lmtp_cmd *c)
{
	txn_reset(s);
	reply(s, "250 2.0.0 ok");
	return ACT_CONTINUE;
}

static enum act cmd_noop(struct lmtp_session *s, const struct lmtp_cmd *c)
{
	reply(s, "250 2.0.0 ok");
	return ACT_CONTINUE;
}

static enum act cmd_quit(struct lmtp_session *s, const struct lmtp_cmd *c)
{
	reply(s, "221 2.0.0 %s closing connection", s->cfg->node_id);
	return ACT_CLOSE;
}

static enum act cmd_vrfy(struct lmtp_session *s, const struct lmtp_cmd *c)
{
	/* RFC 5321 3.5.3: 252 rather than 502 when we will not verify. */
	reply(s, "252 2.3.3 try RCPT instead");
	return ACT_CONTINUE;
}

static enum act cmd_help(struct lmtp_session *s, const struct lmtp_cmd *c)
{
	reply(s, "214 2.0.0 commands: LHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
	return ACT_CONTINUE;
}

static const struct {
	bool before_lhlo;	/* allowed before LHLO */
	enum act (*fn)(struct lmtp_session *s, const struct lmtp_cmd *c);
} commands[LMTP_CMD_COUNT] = {
	[LMTP_CMD_LHLO] = { .before_lhlo = true, .fn = cmd_lhlo },
	[LMTP_CMD_MAIL] = { .fn = cmd_mail },
	[LMTP_CMD_RCPT] = { .fn = cmd_rcpt },
	[LMTP_CMD_DATA] = { .fn = cmd_data },
	[LMTP_CMD_RSET] = { .before_lhlo = true, .fn = cmd_rset },
	[LMTP_CMD_NOOP] = { .before_lhlo = true, .fn = cmd_noop },
	[LMTP_CMD_QUIT] = { .before_lhlo = true, .fn = cmd_quit },
	[LMTP_CMD_VRFY] = { .fn = cmd_vrfy },
	[LMTP_CMD_HELP] = { .fn = cmd_help },
};

static enum act run_command(struct lmtp_session *s, const char *line, size_t len)
{
	struct lmtp_cmd *c = &s->cmd;

	if (lmtp_parse_command(line, len, c) != LMTP_PERR_OK) {
		const char *enh;
		unsigned code = lmtp_perr_reply(c->err, c->type, &enh);

		return bad_command(s, code, enh, c->detail);
	}
	if (commands[c->type].fn == NULL)
		return bad_command(s, 500, "5.5.1", "unknown command");
	if (!s->lhlo && !commands[c->type].before_lhlo)
		return bad_command(s, 503, "5.5.1", "send LHLO first");
	return commands[c->type].fn(s, c);
}

/* One command line from the input, or ACT_NEED_MORE. */
static enum act read_line(struct lmtp_session *s, struct evbuffer *in)
{
	struct evbuffer_ptr eol;
	size_t eol_len, have = evbuffer_get_length(in), len, content;

	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	if (eol.pos < 0) {
		/* No line end yet.  Past the limit (plus a CR) the line is
		 * hopeless: drop what we have and skip to its end. */
		if (s->skipping || have > s->max_line + 1) {
			evbuffer_drain(in, have);
			s->skipping = true;
		}
		return ACT_NEED_MORE;
	}
	len = (size_t)eol.pos + 1;
	if (s->skipping || len > s->max_line + 2) {
		evbuffer_drain(in, len);
		s->skipping = false;
		return bad_command(s, 500, "5.5.2", "line too long");
	}
	if (evbuffer_remove(in, s->line, len) != (int)len)
		return bad_command(s, 451, "4.3.0", "cannot read command");
	content = len - 1;
	if (content > 0 && s->line[content - 1] == '\r')
		content--;
	if (content > s->max_line)
		return bad_command(s, 500, "5.5.2", "line too long");
	return run_command(s, s->line, len);
}

/* ---- DATA and delivery -------------------------------------------------- */

static void deliver_reply_local(struct lmtp_session *s, const struct rcpt *r,
				const struct slot_result *res)
{
	struct metrics *m = &s->n->metrics;
	struct lmtp_store_reply rep;

	if (res->unreplicated) {
		/* replication_degraded tempfail: stored here, but the MTA
		 * keeps it (a retry stores a duplicate, never a loss). */
		reply(s, "451 4.4.1 <%s> stored, but no mirror acknowledged it "
		      "(replication_degraded tempfail), try later", r->addr);
		m->delivery_failures++;
		log_warn("lmtp.deliver", "session=%llu user=%s uid=%u size=%zu result=unreplicated "
			 "from=%s%s", s->id, r->user, res->uid, res->size, s->sender_log,
			 s->dead ? " client=gone" : "");
		return;
	}
	lmtp_store_reply(res->result, res->uid, &rep);
	reply(s, "%u %s <%s> %s", rep.code, rep.enh, r->addr, rep.text);
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

	reply(s, "%u %s <%s> %s", f->code, f->enh, r->addr, f->text);
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
static enum act deliver_finish(struct lmtp_session *s)
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
	return txn_end(s);
}

/* A part (the local commit, a forward) answered. */
static void part_done(struct lmtp_session *s)
{
	enum act act;

	if (--s->pending > 0 || s->in_data_end)
		return;	/* more to come, or data_end() finishes */
	if (s->dead) {
		deliver_finish(s); /* frees s */
		return;
	}
	act = deliver_finish(s);
	if (act == ACT_CLOSE) {
		lmtp_close(s);
		return;
	}
	if (!s->out_blocked)
		set_reading(s, true);
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
static void cancel_forwards(struct lmtp_session *s)
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

		reply(s, "%s <%s> %s", code_enh, r->addr, text);
		s->n->metrics.delivery_failures++;
		log_warn("lmtp.deliver", "session=%llu user=%s uid=0 size=%zu result=%s from=%s",
			 s->id, r->user, lmtp_data_size(s->data), result, s->sender_log);
	}
	s->phase = PH_COMMANDS;
	return txn_end(s);
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
static enum act data_end(struct lmtp_session *s)
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
		return deliver_finish(s); /* not dead: no event ran meanwhile */
	return ACT_CONTINUE;
}

/* Feed buffered input to the DATA reader; true once the final dot is in. */
static bool read_data(struct lmtp_session *s, struct evbuffer *in)
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

/* ---- the input loop --------------------------------------------------- */

static void lmtp_process(struct lmtp_session *s)
{
	struct evbuffer *in = transport_input(s->t);

	for (;;) {
		enum act act;

		if (s->closing || s->phase == PH_DELIVERING)
			return;
		if (evbuffer_get_length(transport_output(s->t)) > TRANSPORT_OUTPUT_HIGH) {
			s->out_blocked = true;
			set_reading(s, false);
			return;
		}
		if (s->phase == PH_DATA) {
			if (!read_data(s, in))
				return;
			act = data_end(s);
		} else {
			act = read_line(s, in);
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
			set_reading(s, false);
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
		set_reading(s, true);
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
			reply(s, "421 4.4.2 %s idle timeout, closing", s->cfg->node_id);
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
		cancel_forwards(s);
		if (s->ack != NULL) {	/* committed: nobody to tell */
			repl_ack_cancel(&s->ack);
			s->pending--;
		}
		if (s->pending == 0)
			deliver_finish(s); /* frees s */
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
		/* txn_end() says goodbye after the replies */
		for (size_t i = 0; i < s->n_parts; i++)
			forward_hurry(s->parts[i].req, LMTP_FORWARD_SHUTDOWN_WAIT);
		return;
	}
	reply(s, "421 4.3.2 %s shutting down", s->cfg->node_id);
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
		reply(s, "421 4.3.2 %s shutting down", cfg->node_id);
		lmtp_close(s);
		return;
	}
	reply(s, "220 %s LMTP popnode ready", cfg->node_id);
}
