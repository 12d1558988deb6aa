/*
 * pop3_cmd.c - the command table of a POP3 session (pop3.c), running a
 * parsed line's handler, QUIT with the expunge of the UPDATE state, and
 * the TRANSACTION commands: STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP.
 * The AUTHORIZATION commands are in pop3_auth.c.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "log.h"
#include "metrics.h"
#include "pop3_int.h"
#include "transport.h"

/* ---- commands ------------------------------------------------------------ */

static void expunge_done(int err, void *arg)
{
	struct pop3_session *s = arg;

	s->expunge_pending = false;
	pop3_enter(s);
	if (err == STORE_OK) {
		s->n->metrics.pop3_deleted += s->n_expunge;
		s->n_expunged = s->n_expunge;
		pop3_reply(s, "+OK popnode signing off (%zu messages deleted)", s->n_expunge);
	} else {
		log_err("pop3.expunge_failed", "user=%s count=%zu error=\"%s\"", s->username,
			s->n_expunge, store_strerror(err));
		pop3_reply(s, "-ERR [SYS/TEMP] some deleted messages not removed");
	}
	pop3_unlock(s);
	pop3_close(s, "quit");
	pop3_leave(s);
}

static void cmd_quit(struct pop3_session *s, const struct pop3_command *c)
{
	if (s->state == ST_AUTHORIZATION) {
		pop3_reply(s, "+OK popnode signing off");
		pop3_close(s, "quit");
		return;
	}
	s->state = ST_UPDATE;
	size_t n = s->n_msgs - s->live_count;
	if (n == 0) {
		pop3_reply(s, "+OK popnode signing off");
		pop3_unlock(s);
		pop3_close(s, "quit");
		return;
	}
	s->expunge_uids = malloc(n * sizeof(*s->expunge_uids));
	if (s->expunge_uids == NULL) {
		pop3_reply(s, "-ERR [SYS/TEMP] some deleted messages not removed");
		pop3_unlock(s);
		pop3_close(s, "quit");
		return;
	}
	for (size_t i = 0; i < s->n_msgs; i++)
		if (s->msgs[i].deleted)
			s->expunge_uids[s->n_expunge++] = s->msgs[i].uid;
	s->expunge_pending = true;
	store_msg_expunge(s->store, s->userid, s->mboxid, s->expunge_uids, s->n_expunge,
			  expunge_done, s);
}

static void cmd_stat(struct pop3_session *s, const struct pop3_command *c)
{
	pop3_reply(s, "+OK %zu %" PRIu64, s->live_count, s->live_bytes);
}

/* The message numbered num, or NULL after answering -ERR. */
static const struct pop3_msg *get_msg(struct pop3_session *s, uint32_t num)
{
	if (num == 0 || num > s->n_msgs) {
		pop3_reply(s, "-ERR no such message");
		return NULL;
	}
	const struct pop3_msg *m = &s->msgs[num - 1];
	if (m->deleted) {
		pop3_reply(s, "-ERR message %" PRIu32 " already deleted", num);
		return NULL;
	}
	return m;
}

static void cmd_list(struct pop3_session *s, const struct pop3_command *c)
{
	if (c->nargs == 1) {
		const struct pop3_msg *m = get_msg(s, c->num[0]);
		if (m != NULL)
			pop3_reply(s, "+OK %" PRIu32 " %" PRIu64, c->num[0], m->size);
		return;
	}
	pop3_reply(s, "+OK %zu messages (%" PRIu64 " octets)", s->live_count, s->live_bytes);
	for (size_t i = 0; i < s->n_msgs && !s->out_failed; i++)
		if (!s->msgs[i].deleted)
			pop3_reply(s, "%zu %" PRIu64, i + 1, s->msgs[i].size);
	pop3_out_str(s, ".\r\n");
}

static void cmd_uidl(struct pop3_session *s, const struct pop3_command *c)
{
	if (c->nargs == 1) {
		const struct pop3_msg *m = get_msg(s, c->num[0]);
		if (m != NULL)
			pop3_reply(s, "+OK %" PRIu32 " %" PRIu32 ".%" PRIu32, c->num[0],
				   s->uidvalidity, m->uid);
		return;
	}
	pop3_reply(s, "+OK unique-id listing follows");
	for (size_t i = 0; i < s->n_msgs && !s->out_failed; i++)
		if (!s->msgs[i].deleted)
			pop3_reply(s, "%zu %" PRIu32 ".%" PRIu32, i + 1, s->uidvalidity,
				   s->msgs[i].uid);
	pop3_out_str(s, ".\r\n");
}

static void cmd_dele(struct pop3_session *s, const struct pop3_command *c)
{
	const struct pop3_msg *cm = get_msg(s, c->num[0]);
	if (cm == NULL)
		return;
	struct pop3_msg *m = &s->msgs[c->num[0] - 1];
	m->deleted = true;
	s->live_count--;
	s->live_bytes -= m->size;
	pop3_reply(s, "+OK message %" PRIu32 " deleted", c->num[0]);
}

static void cmd_rset(struct pop3_session *s, const struct pop3_command *c)
{
	s->live_count = s->n_msgs;
	s->live_bytes = 0;
	for (size_t i = 0; i < s->n_msgs; i++) {
		s->msgs[i].deleted = false;
		s->live_bytes += s->msgs[i].size;
	}
	pop3_reply(s, "+OK maildrop has %zu messages (%" PRIu64 " octets)", s->live_count,
		   s->live_bytes);
}

static void cmd_noop(struct pop3_session *s, const struct pop3_command *c)
{
	pop3_reply(s, "+OK");
}

/* Bytes of body to send for TOP: the header lines up to and including
 * the blank line, then at most `lines` more lines. */
static size_t top_cut(const char *b, size_t len, uint32_t lines)
{
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(b + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - b) + 1 : len;
		bool blank = nl != NULL && (end - pos == 1 || (end - pos == 2 && b[pos] == '\r'));
		pos = end;
		if (blank)
			break;
	}
	for (uint32_t i = 0; i < lines && pos < len; i++) {
		const char *nl = memchr(b + pos, '\n', len - pos);
		pos = nl != NULL ? (size_t)(nl - b) + 1 : len;
	}
	return pos;
}

struct read_ctx {
	struct pop3_session *s;
	const struct pop3_msg *m;
	bool top;
	uint32_t lines;
	uint64_t bytes;
};

static int read_cb(const char *prefix, size_t prefix_len, const char *body, size_t body_len,
		   void *arg)
{
	struct read_ctx *rc = arg;
	struct pop3_session *s = rc->s;
	struct evbuffer *out = transport_output(s->t);
	bool bol = true;
	char last = '\n';

	if (rc->top)
		pop3_reply(s, "+OK top of message follows");
	else
		pop3_reply(s, "+OK %" PRIu64 " octets", rc->m->size);
	size_t head = evbuffer_get_length(out);
	pop3_out_stuffed(s, prefix, prefix_len, &bol, &last);
	if (rc->top)
		body_len = top_cut(body, body_len, rc->lines);
	pop3_out_stuffed(s, body, body_len, &bol, &last);
	if (!bol)
		pop3_out_str(s, last == '\r' ? "\n" : "\r\n");
	pop3_out_str(s, ".\r\n");
	size_t after = evbuffer_get_length(out);
	rc->bytes = after >= head ? after - head : 0;
	return s->out_failed ? -1 : 0;
}

static void send_message(struct pop3_session *s, uint32_t num, bool top, uint32_t lines)
{
	const struct pop3_msg *m = get_msg(s, num);
	if (m == NULL)
		return;
	struct read_ctx rc = { .s = s, .m = m, .top = top, .lines = lines };
	int err = store_msg_read(s->store, s->userid, s->mboxid, m->uid, read_cb, &rc);
	if (s->out_failed)
		return;
	if (err == STORE_NOTFOUND) {
		pop3_reply(s, "-ERR message %" PRIu32 " no longer exists", num);
		return;
	}
	if (err != STORE_OK) {
		log_err("pop3.read_failed", "peer=%s user=%s uid=%" PRIu32 " error=\"%s\"",
			s->t->peer, s->username, m->uid, store_strerror(err));
		pop3_reply(s, "-ERR [SYS/TEMP] cannot read message, try later");
		return;
	}
	s->n->metrics.pop3_retr_bytes += rc.bytes;
	s->retr_bytes += rc.bytes;
	if (!top)
		s->n_retr++;
}

static void cmd_retr(struct pop3_session *s, const struct pop3_command *c)
{
	send_message(s, c->num[0], false, 0);
}

static void cmd_top(struct pop3_session *s, const struct pop3_command *c)
{
	send_message(s, c->num[0], true, c->num[1]);
}

#define S_AUTH (1u << ST_AUTHORIZATION)
#define S_TRANS (1u << ST_TRANSACTION)

static const struct {
	unsigned states;
	void (*fn)(struct pop3_session *s, const struct pop3_command *c);
} commands[POP3_CMD_COUNT] = {
	[POP3_CMD_USER] = { S_AUTH, pop3_cmd_user },
	[POP3_CMD_PASS] = { S_AUTH, pop3_cmd_pass },
	[POP3_CMD_AUTH] = { S_AUTH, pop3_cmd_auth },
	[POP3_CMD_STLS] = { S_AUTH, pop3_cmd_stls },
	[POP3_CMD_CAPA] = { S_AUTH | S_TRANS, pop3_cmd_capa },
	[POP3_CMD_QUIT] = { S_AUTH | S_TRANS, cmd_quit },
	[POP3_CMD_STAT] = { S_TRANS, cmd_stat },
	[POP3_CMD_LIST] = { S_TRANS, cmd_list },
	[POP3_CMD_RETR] = { S_TRANS, cmd_retr },
	[POP3_CMD_DELE] = { S_TRANS, cmd_dele },
	[POP3_CMD_NOOP] = { S_TRANS, cmd_noop },
	[POP3_CMD_RSET] = { S_TRANS, cmd_rset },
	[POP3_CMD_TOP] = { S_TRANS, cmd_top },
	[POP3_CMD_UIDL] = { S_TRANS, cmd_uidl },
};

void pop3_handle_line(struct pop3_session *s, const char *line, size_t len)
{
	struct pop3_command c;

	if (s->sasl_wait) {
		s->sasl_wait = false;
		pop3_sasl_response(s, line, len);
		return;
	}
	int r = pop3_parse_line(line, len, &c);
	if (r != POP3_PARSE_OK) {
		char kw[32];
		size_t kl = 0;
		while (kl < len && kl < 8 && line[kl] != ' ' && line[kl] != '\t')
			kl++;
		log_debug("pop3.bad_command", "peer=%s cmd=%s error=\"%s\"", s->t->peer,
			  log_sanitize(kw, sizeof(kw), line, kl), pop3_parse_strerror(r));
		if (r == POP3_PERR_RANGE && pop3_arg_is_msgno(c.id, c.bad_arg))
			pop3_bad_command(s, "no such message");
		else
			pop3_bad_command(s, pop3_parse_strerror(r));
		return;
	}
	if (!(commands[c.id].states & (1u << s->state))) {
		pop3_bad_command(s, "command not valid in this state");
		return;
	}
	commands[c.id].fn(s, &c);
}
