/*
 * lmtp_cmd.c - the commands of the LMTP session (lmtp.c): reading a
 * command line (bounded; an over-long one is skipped to its end), the
 * command table (which may come before LHLO) and the handlers for LHLO,
 * MAIL, RCPT (checked at once against the directory, or routed to the
 * user's home POP), DATA (hands over to lmtp_deliver.c), RSET, NOOP,
 * QUIT, VRFY and HELP.  Bad commands are counted; too many end the
 * session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "directory.h"
#include "forward.h"
#include "lmtp_int.h"
#include "lmtp_parse.h"
#include "log.h"
#include "metrics.h"
#include "node.h"
#include "replicator.h"
#include "store.h"
#include "transport.h"

/* Bad commands (syntax, unknown, out of sequence) before 421 and close. */
#define LMTP_MAX_BAD_COMMANDS 10
/* RFC 5321 4.5.3.1: command lines of 512 and text lines of 1000 octets
 * (CRLF included) must always be accepted, whatever the config says. */
#define LMTP_MIN_TEXT_LINE 998

/* A 5xx for a bad command; too many of them end the session. */
static enum act bad_command(struct lmtp_session *s, unsigned code, const char *enh,
			    const char *text)
{
	lmtp_reply(s, "%u %s %s", code, enh, text);
	if (++s->bad_commands >= LMTP_MAX_BAD_COMMANDS) {
		log_info("lmtp.errors", "session=%llu peer=%s bad_commands=%u", s->id, s->t->peer,
			 s->bad_commands);
		lmtp_reply(s, "421 4.7.0 %s too many errors, closing connection", s->cfg->node_id);
		return ACT_CLOSE;
	}
	return ACT_CONTINUE;
}

static enum act cmd_lhlo(struct lmtp_session *s, const struct lmtp_cmd *c)
{
	lmtp_txn_reset(s);
	s->lhlo = true;
	lmtp_reply(s, "250-%s", s->cfg->node_id);
	lmtp_reply(s, "250-PIPELINING");
	lmtp_reply(s, "250-ENHANCEDSTATUSCODES");
	lmtp_reply(s, "250-8BITMIME");
	lmtp_reply(s, "250 SIZE %zu", s->cfg->max_message_size);
	return ACT_CONTINUE;
}

static enum act cmd_mail(struct lmtp_session *s, const struct lmtp_cmd *c)
{
	if (s->have_mail)
		return bad_command(s, 503, "5.5.1", "nested MAIL command");
	if (c->has_size && c->size > s->cfg->max_message_size) {
		lmtp_reply(s, "552 5.3.4 message size exceeds fixed limit of %zu bytes",
			   s->cfg->max_message_size);
		return ACT_CONTINUE;
	}
	lmtp_txn_reset(s);
	s->have_mail = true;
	memcpy(s->sender, c->addr.addr, c->addr.addr_len + 1);
	log_sanitize(s->sender_log, sizeof(s->sender_log), c->addr.addr, c->addr.addr_len);
	if (s->sender_log[0] == '\0')
		snprintf(s->sender_log, sizeof(s->sender_log), "<>");
	lmtp_reply(s, "250 2.1.0 sender ok");
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
		lmtp_reply(s, "452 4.5.3 too many recipients");
		return ACT_CONTINUE;
	}
	if (a->domain_len > 0 && !config_domain_is_local(s->cfg, a->domain, a->domain_len)) {
		lmtp_reply(s, "550 5.1.2 <%s> domain not served here", a->addr);
		return ACT_CONTINUE;
	}
	if (!dir_user_from_local(a->local, a->local_len, user, sizeof(user))) {
		lmtp_reply(s, "550 5.1.1 <%s> no such user", a->addr);
		return ACT_CONTINUE;
	}
	err = store_user_get(s->n->store, user, &u);
	/* This POP checks (or rebuilds) its store against its mirrors: its
	 * own users, and names it may not know yet, wait (replicator.h). */
	if (!replicator_serving_ready(s->n, &why) &&
	    (err != STORE_OK || u.home[0] == '\0' || strcmp(u.home, s->cfg->node_id) == 0)) {
		lmtp_reply(s, "451 4.3.0 <%s> %s, try later", a->addr, why);
		return ACT_CONTINUE;
	}
	if (err == STORE_NOTFOUND) {
		lmtp_reply(s, "550 5.1.1 <%s> no such user", a->addr);
		return ACT_CONTINUE;
	}
	if (err != STORE_OK) {
		log_err("lmtp.directory", "session=%llu user=%s error=%d", s->id, user, err);
		lmtp_reply(s, "451 4.3.0 <%s> temporary directory failure", a->addr);
		return ACT_CONTINUE;
	}
	if (!u.enabled) {
		lmtp_reply(s, "550 5.2.1 <%s> mailbox disabled", a->addr);
		return ACT_CONTINUE;
	}
	if (u.quota != 0 && u.used >= u.quota) {
		lmtp_reply(s, "452 4.2.2 <%s> mailbox full", a->addr);
		return ACT_CONTINUE;
	}
	if (u.quota != 0 && c->has_size && c->size > u.quota - u.used) {
		lmtp_reply(s, "452 4.2.2 <%s> mailbox full", a->addr);
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
		lmtp_reply(s, "451 4.4.1 <%s> home POP %s unreachable, try later", a->addr, u.home);
		return ACT_CONTINUE;
	}

	if (s->n_rcpts == s->cap_rcpts) {
		size_t cap = s->cap_rcpts ? s->cap_rcpts * 2 : 8;
		struct rcpt *nr = realloc(s->rcpts, cap * sizeof(*nr));

		if (nr == NULL) {
			lmtp_reply(s, "452 4.3.0 <%s> out of memory", a->addr);
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
	lmtp_reply(s, "250 2.1.5 <%s> recipient ok", a->addr);
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
			lmtp_reply(s, "451 4.3.0 out of memory");
			return ACT_CONTINUE;
		}
	}
	lmtp_data_reset(s->data);
	s->phase = PH_DATA;
	lmtp_reply(s, "354 start mail input; end with <CRLF>.<CRLF>");
	return ACT_CONTINUE;
}

static enum act cmd_rset(struct lmtp_session *s, const struct lmtp_cmd *c)
{
	lmtp_txn_reset(s);
	lmtp_reply(s, "250 2.0.0 ok");
	return ACT_CONTINUE;
}

static enum act cmd_noop(struct lmtp_session *s, const struct lmtp_cmd *c)
{
	lmtp_reply(s, "250 2.0.0 ok");
	return ACT_CONTINUE;
}

static enum act cmd_quit(struct lmtp_session *s, const struct lmtp_cmd *c)
{
	lmtp_reply(s, "221 2.0.0 %s closing connection", s->cfg->node_id);
	return ACT_CLOSE;
}

static enum act cmd_vrfy(struct lmtp_session *s, const struct lmtp_cmd *c)
{
	/* RFC 5321 3.5.3: 252 rather than 502 when we will not verify. */
	lmtp_reply(s, "252 2.3.3 try RCPT instead");
	return ACT_CONTINUE;
}

static enum act cmd_help(struct lmtp_session *s, const struct lmtp_cmd *c)
{
	lmtp_reply(s, "214 2.0.0 commands: LHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
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
enum act lmtp_read_line(struct lmtp_session *s, struct evbuffer *in)
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
