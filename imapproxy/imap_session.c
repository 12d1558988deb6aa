/*
 * imap_session.c - the IMAP session core: greeting, the input loop over
 * the I/O-free reader (imap_parse.h), command dispatch through a table,
 * command completion, output helpers, backpressure, timeouts, shutdown
 * and the session's lifetime.  Commands live in imap_cmd_*.c; the
 * selected mailbox view in imap_view.c.  imap_session.h explains the
 * command model (done / async / resumable) that this file drives.
 *
 * Input loop (s_process).  Runs until something makes it wait: a
 * command in progress (async store op, auth, IDLE without input), output
 * above TRANSPORT_OUTPUT_HIGH, or no more input.  Input is fed to the
 * reader chunk by chunk; the reader stops after each complete command,
 * so pipelined commands stay in the transport's input until their turn
 * and reading is off while a command runs.  A synchronizing literal gets
 * "+ OK" from here.  Parse errors are answered BAD (or NO for TOOBIG /
 * BADCHARSET) with the parser's reason; ten in a row, or one the reader
 * cannot recover from, end the session with BYE.
 *
 * Lifetime: as imapproxy/pop3.c.  Entry points bracket their work with
 * imap_session_enter/leave; ending marks the session; the last leave
 * frees it - but not while an async store op is outstanding
 * (async_pending): then the transport is freed at once and the struct
 * waits for the op's callback (imap_async_end).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "auth.h"
#include "config.h"
#include "imap.h"
#include "imap_session.h"
#include "tunnel.h"
#include "imap_utf7.h"
#include "log.h"
#include "node.h"
#include "transport.h"

/* Consecutive bad commands before "* BYE". */
#define IMAP_MAX_BAD 10
/* RFC 3501 5.4: the autologout timer after login is at least 30 min. */
#define IMAP_MIN_AUTH_TIMEOUT 1800
/* RFC 7162 3: clients may send 8192-octet lines. */
#define IMAP_MIN_LINE 8192

static uint64_t next_serial = 1;

static const struct imap_cmd_def commands[IMAP_CMD_COUNT] = {
	[IMAP_CMD_CAPABILITY] = { IMAP_S_ANY, 0, imap_cmd_capability },
	[IMAP_CMD_NOOP] = { IMAP_S_ANY, 0, imap_cmd_noop },
	[IMAP_CMD_LOGOUT] = { IMAP_S_ANY, IMAP_CMDF_NO_SYNC, imap_cmd_logout },
	[IMAP_CMD_STARTTLS] = { IMAP_S_NOTAUTH, IMAP_CMDF_NO_SYNC, imap_cmd_starttls },
	[IMAP_CMD_AUTHENTICATE] = { IMAP_S_NOTAUTH, IMAP_CMDF_NO_SYNC, imap_cmd_authenticate },
	[IMAP_CMD_LOGIN] = { IMAP_S_NOTAUTH, IMAP_CMDF_NO_SYNC, imap_cmd_login },
	[IMAP_CMD_SELECT] = { IMAP_S_LOGGED_IN, IMAP_CMDF_NO_SYNC, imap_cmd_select },
	[IMAP_CMD_EXAMINE] = { IMAP_S_LOGGED_IN, IMAP_CMDF_NO_SYNC, imap_cmd_select },
	[IMAP_CMD_CREATE] = { IMAP_S_LOGGED_IN, 0, imap_cmd_create },
	[IMAP_CMD_DELETE] = { IMAP_S_LOGGED_IN, 0, imap_cmd_delete },
	[IMAP_CMD_RENAME] = { IMAP_S_LOGGED_IN, 0, imap_cmd_rename },
	[IMAP_CMD_SUBSCRIBE] = { IMAP_S_LOGGED_IN, 0, imap_cmd_subscribe },
	[IMAP_CMD_UNSUBSCRIBE] = { IMAP_S_LOGGED_IN, 0, imap_cmd_subscribe },
	[IMAP_CMD_LIST] = { IMAP_S_LOGGED_IN, 0, imap_cmd_list },
	[IMAP_CMD_LSUB] = { IMAP_S_LOGGED_IN, 0, imap_cmd_list },
	[IMAP_CMD_STATUS] = { IMAP_S_LOGGED_IN, 0, imap_cmd_status },
	[IMAP_CMD_APPEND] = { IMAP_S_LOGGED_IN, 0, imap_cmd_append },
	[IMAP_CMD_CHECK] = { IMAP_S_SELECTED, 0, imap_cmd_noop },
	[IMAP_CMD_CLOSE] = { IMAP_S_SELECTED, IMAP_CMDF_NO_SYNC, imap_cmd_close },
	[IMAP_CMD_UNSELECT] = { IMAP_S_SELECTED, IMAP_CMDF_NO_SYNC, imap_cmd_unselect },
	[IMAP_CMD_EXPUNGE] = { IMAP_S_SELECTED, 0, imap_cmd_expunge },
	[IMAP_CMD_SEARCH] = { IMAP_S_SELECTED, IMAP_CMDF_NO_EXPUNGE, imap_cmd_search },
	[IMAP_CMD_FETCH] = { IMAP_S_SELECTED, IMAP_CMDF_NO_EXPUNGE, imap_cmd_fetch },
	[IMAP_CMD_STORE] = { IMAP_S_SELECTED, IMAP_CMDF_NO_EXPUNGE, imap_cmd_store },
	[IMAP_CMD_COPY] = { IMAP_S_SELECTED, 0, imap_cmd_copy },
	[IMAP_CMD_MOVE] = { IMAP_S_SELECTED, 0, imap_cmd_move },
	[IMAP_CMD_IDLE] = { IMAP_S_LOGGED_IN, 0, imap_cmd_idle },
	[IMAP_CMD_NAMESPACE] = { IMAP_S_LOGGED_IN, 0, imap_cmd_namespace },
	[IMAP_CMD_ID] = { IMAP_S_ANY, 0, imap_cmd_id },
	[IMAP_CMD_ENABLE] = { IMAP_S_LOGGED_IN, 0, imap_cmd_enable },
	[IMAP_CMD_COMPRESS] = { IMAP_S_LOGGED_IN, IMAP_CMDF_NO_SYNC, imap_cmd_compress },
	/* GETQUOTAROOT / GETQUOTA: QUOTA is not advertised; fn NULL
	 * answers BAD "not supported". */
};

static void s_process(struct imap_session *s);
static void drain_bye(struct imap_session *s);

/* ---- lifetime ------------------------------------------------------------ */

void imap_session_enter(struct imap_session *s)
{
	s->depth++;
}

static void s_reap(struct imap_session *s)
{
	transport_free(&s->t);
	if (s->async_pending > 0)
		return;
	if (s->state == IMAP_ST_SELECTED || s->view.msgs != NULL || s->view.entry != NULL)
		imap_view_close(s);
	node_session_unregister(s->n, &s->reg);
	if (s->cmd_state_free != NULL && s->cmd_state != NULL)
		s->cmd_state_free(s->cmd_state);
	imap_command_free(&s->cmd);
	imap_reader_destroy(&s->reader);
	if (s->yield_ev != NULL)
		event_free(s->yield_ev);
	free(s);
}

void imap_session_leave(struct imap_session *s)
{
	if (--s->depth == 0 && s->ending)
		s_reap(s);
}

bool imap_session_alive(const struct imap_session *s)
{
	return s->t != NULL && !s->ending && !s->closing;
}

void imap_async_begin(struct imap_session *s)
{
	s->async_pending++;
}

bool imap_async_end(struct imap_session *s)
{
	s->async_pending--;
	imap_session_enter(s);
	return imap_session_alive(s);
}

static const char *state_name(enum imap_state st)
{
	switch (st) {
	case IMAP_ST_NOTAUTH:
		return "notauth";
	case IMAP_ST_AUTH:
		return "auth";
	case IMAP_ST_SELECTED:
		return "selected";
	case IMAP_ST_LOGOUT:
		return "logout";
	}
	return "?";
}

void imap_session_end(struct imap_session *s, const char *reason)
{
	if (s->ending)
		return;
	s->ending = true;
	if (s->end_reason == NULL)
		s->end_reason = reason;
	if (s->auth != NULL)
		auth_cancel(&s->auth);
	if (s->tunnel != NULL)
		tunnel_cancel(&s->tunnel);
	log_info("imap.end", "sid=%" PRIu64 " peer=%s user=%s state=%s reason=%s commands=%u",
		 s->serial, s->t != NULL ? s->t->peer : "-", s->logged_in ? s->username : "-",
		 state_name(s->state), s->end_reason, s->n_commands);
	/* The transport goes now; the struct at the last leave (or when the
	 * last async op calls back). */
	transport_free(&s->t);
}

void imap_session_close(struct imap_session *s, const char *reason)
{
	if (s->closing || s->ending || s->t == NULL)
		return;
	s->closing = true;
	if (s->end_reason == NULL)
		s->end_reason = reason;
	if (s->auth != NULL)
		auth_cancel(&s->auth);
	if (s->tunnel != NULL)
		tunnel_cancel(&s->tunnel);
	transport_close_after_flush(s->t);
}

/* ---- output -------------------------------------------------------------- */

static bool can_write(const struct imap_session *s)
{
	return s->t != NULL && !s->ending && !s->out_failed;
}

void imap_write(struct imap_session *s, const void *p, size_t len)
{
	if (!can_write(s) || len == 0)
		return;
	if (evbuffer_add(transport_output(s->t), p, len) < 0)
		s->out_failed = true;
}

void imap_writes(struct imap_session *s, const char *str)
{
	imap_write(s, str, strlen(str));
}

static void write_v(struct imap_session *s, const char *prefix, const char *fmt, va_list ap,
		    const char *suffix)
{
	if (!can_write(s))
		return;
	struct evbuffer *out = transport_output(s->t);
	if (prefix != NULL && evbuffer_add(out, prefix, strlen(prefix)) < 0) {
		s->out_failed = true;
		return;
	}
	if (evbuffer_add_vprintf(out, fmt, ap) < 0) {
		s->out_failed = true;
		return;
	}
	if (suffix != NULL && evbuffer_add(out, suffix, strlen(suffix)) < 0)
		s->out_failed = true;
}

void imap_writef(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	write_v(s, NULL, fmt, ap, NULL);
	va_end(ap);
}

void imap_untagged(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	write_v(s, "* ", fmt, ap, "\r\n");
	va_end(ap);
}

/* Longest string sent quoted; longer ones go as literals. */
#define QUOTED_MAX 1024

void imap_write_string(struct imap_session *s, const char *p, size_t len)
{
	bool quote = len <= QUOTED_MAX, eight_bit = false;

	for (size_t i = 0; quote && i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == 0 || c == '\r' || c == '\n')
			quote = false;
		eight_bit |= c >= 0x80;
	}
	/* UTF-8 goes in a quoted string only to a client that enabled
	 * UTF8=ACCEPT (RFC 6855 3); anything else 8-bit is a literal */
	if (quote && eight_bit)
		quote = (s->enabled & IMAP_ENABLE_UTF8_ACCEPT) && imap_utf8_valid(p, len);
	if (!quote) {
		imap_writef(s, "{%zu}\r\n", len);
		imap_write(s, p, len);
		return;
	}
	imap_write(s, "\"", 1);
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '"' || p[i] == '\\') {
			imap_write(s, p + start, i - start);
			imap_write(s, "\\", 1);
			start = i;
		}
	}
	imap_write(s, p + start, len - start);
	imap_write(s, "\"", 1);
}

void imap_write_nstr(struct imap_session *s, const char *p, size_t len)
{
	if (p == NULL)
		imap_write(s, "NIL", 3);
	else
		imap_write_string(s, p, len);
}

void imap_write_mailbox(struct imap_session *s, const char *utf8name)
{
	char enc[IMAP_UTF7_ENCODED_MAX(STORE_MBOX_MAX) + 1];
	size_t len = strlen(utf8name), elen;

	if (s->enabled & IMAP_ENABLE_UTF8_ACCEPT) {
		imap_write_string(s, utf8name, len);	/* RFC 6855 3: as UTF-8 */
		return;
	}
	if (imap_utf7_encode(utf8name, len, enc, sizeof(enc), &elen) < 0) {
		/* not valid UTF-8 (cannot come from our parser): send bytes */
		imap_write_string(s, utf8name, len);
		return;
	}
	imap_write_string(s, enc, elen);
}

static const struct {
	uint32_t bit;
	const char *name;
} system_flags[] = {
	{ IMAP_FLAG_ANSWERED, "\\Answered" }, { IMAP_FLAG_FLAGGED, "\\Flagged" },
	{ IMAP_FLAG_DELETED, "\\Deleted" },   { IMAP_FLAG_SEEN, "\\Seen" },
	{ IMAP_FLAG_DRAFT, "\\Draft" },	      { IMAP_FLAG_RECENT, "\\Recent" },
};

void imap_write_flags(struct imap_session *s, const struct imap_view *v, uint32_t flags,
		      uint64_t keywords)
{
	bool first = true;

	imap_write(s, "(", 1);
	for (size_t i = 0; i < sizeof(system_flags) / sizeof(system_flags[0]); i++) {
		if (!(flags & system_flags[i].bit))
			continue;
		if (!first)
			imap_write(s, " ", 1);
		imap_writes(s, system_flags[i].name);
		first = false;
	}
	for (unsigned i = 0; v != NULL && i < IMAP_MAX_KEYWORDS; i++) {
		if (!(keywords & ((uint64_t)1 << i)) || v->kw_names[i] == NULL)
			continue;
		if (!first)
			imap_write(s, " ", 1);
		imap_writes(s, v->kw_names[i]);
		first = false;
	}
	imap_write(s, ")", 1);
}

bool imap_output_full(struct imap_session *s)
{
	if (s->t == NULL)
		return false;
	return evbuffer_get_length(transport_output(s->t)) > TRANSPORT_OUTPUT_HIGH;
}

bool imap_plaintext_ok(const struct imap_session *s)
{
	return s->t != NULL && (s->t->tls || s->tls_started || s->lc->plaintext_auth);
}

void imap_capabilities(const struct imap_session *s, char *buf, size_t size)
{
	snprintf(buf, size, "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE"
		 " UNSELECT CHILDREN LIST-EXTENDED SPECIAL-USE CONDSTORE QRESYNC UTF8=ACCEPT"
		 "%s%s%s",
		 s->compressed ? "" : " COMPRESS=DEFLATE",
		 s->state == IMAP_ST_NOTAUTH && s->t != NULL && s->t->tls_available &&
				 !s->t->tls && !s->tls_started ? " STARTTLS" : "",
		 s->state != IMAP_ST_NOTAUTH ? ""
		 : imap_plaintext_ok(s) ? " AUTH=PLAIN" : " LOGINDISABLED");
}

void imap_condstore_enable(struct imap_session *s)
{
	s->condstore = true;
}

void imap_session_set_timeout(struct imap_session *s)
{
	unsigned t = s->n->cfg->idle_timeout;

	if (s->state != IMAP_ST_NOTAUTH && t < IMAP_MIN_AUTH_TIMEOUT)
		t = IMAP_MIN_AUTH_TIMEOUT;
	if (s->t != NULL)
		transport_set_timeout(s->t, t);
}

/* ---- command completion -------------------------------------------------- */

void imap_cmd_done(struct imap_session *s, const char *status, const char *fmt, ...)
{
	va_list ap;
	struct imap_command *cmd = s->cmd;

	if (cmd == NULL)
		return;
	if (strcmp(status, "BAD") != 0 && !(s->cmd_flags & IMAP_CMDF_NO_SYNC) &&
	    s->state == IMAP_ST_SELECTED && can_write(s)) {
		int err = imap_view_sync(s, !(s->cmd_flags & IMAP_CMDF_NO_EXPUNGE));
		if (err != STORE_OK)
			log_err("imap.sync_failed", "sid=%" PRIu64 " user=%s error=\"%s\"",
				s->serial, s->username, store_strerror(err));
	}
	if (can_write(s)) {
		struct evbuffer *out = transport_output(s->t);
		if (evbuffer_add_printf(out, "%s %s ", cmd->tag, status) < 0)
			s->out_failed = true;
		va_start(ap, fmt);
		write_v(s, NULL, fmt, ap, "\r\n");
		va_end(ap);
	}
	if (s->cmd_state_free != NULL && s->cmd_state != NULL)
		s->cmd_state_free(s->cmd_state);
	s->cmd_state = NULL;
	s->cmd_state_free = NULL;
	s->resume = NULL;
	s->cmd_flags = 0;
	s->in_mode = IMAP_IN_COMMAND;
	imap_command_free(&s->cmd);
	if (s->drain_pending && imap_session_alive(s)) {
		s->drain_pending = false;
		drain_bye(s);
		return;
	}
	/* From a callback (store, auth): go on with pipelined input.
	 * Inside s_process (s->processing) the loop does it. */
	s_process(s);
}

/* ---- input --------------------------------------------------------------- */

static void s_update_reading(struct imap_session *s)
{
	if (!imap_session_alive(s))
		return;
	bool want = !s->out_blocked && s->auth == NULL && s->state != IMAP_ST_LOGOUT &&
		    (s->cmd == NULL || s->in_mode != IMAP_IN_COMMAND);
	if (want != s->reading) {
		s->reading = want;
		transport_read_enable(s->t, want);
	}
}

static void too_many_errors(struct imap_session *s)
{
	log_info("imap.errors", "sid=%" PRIu64 " peer=%s count=%u", s->serial, s->t->peer,
		 s->bad_commands);
	imap_untagged(s, "BYE Too many invalid commands");
	imap_session_close(s, "too_many_errors");
}

/* A command the reader or parser refused. */
static void bad_input(struct imap_session *s, const struct imap_error *e)
{
	const char *status = imap_error_status(e);

	log_debug("imap.bad_command", "sid=%" PRIu64 " peer=%s cmd=%s error=\"%s\"", s->serial,
		  s->t->peer, e->cmd_known ? imap_cmd_name(e->cmd) : "?", e->text);
	if (e->fatal) {
		if (e->tag[0] != '\0')
			imap_writef(s, "%s BAD %s\r\n", e->tag, e->text);
		imap_untagged(s, "BYE %s", e->text);
		imap_session_close(s, "bad_input");
		return;
	}
	if (e->tag[0] == '\0')
		imap_untagged(s, "BAD %s", e->text);
	else if (e->resp_code != NULL)
		imap_writef(s, "%s %s [%s] %s\r\n", e->tag, status, e->resp_code, e->text);
	else
		imap_writef(s, "%s %s %s\r\n", e->tag, status, e->text);
	if (!e->no && ++s->bad_commands >= IMAP_MAX_BAD)
		too_many_errors(s);
}

static void dispatch(struct imap_session *s, struct imap_command *cmd)
{
	const struct imap_cmd_def *d = (unsigned)cmd->id < IMAP_CMD_COUNT ? &commands[cmd->id] : NULL;

	s->n_commands++;
	s->cmd = cmd;
	s->cmd_flags = d != NULL ? d->flags : 0;
	s->resume = NULL;
	s->cmd_state = NULL;
	s->cmd_state_free = NULL;
	if (d == NULL || d->fn == NULL) {
		s->cmd_flags = IMAP_CMDF_NO_SYNC;
		imap_cmd_done(s, "BAD", "Command %s not supported", imap_cmd_name(cmd->id));
		if (++s->bad_commands >= IMAP_MAX_BAD)
			too_many_errors(s);
		return;
	}
	if (!(d->states & (1u << s->state))) {
		const char *why = s->state == IMAP_ST_NOTAUTH ? "Please log in first"
				  : s->state == IMAP_ST_AUTH && (d->states & IMAP_S_SELECTED)
				  ? "No mailbox selected"
				  : "Command not valid in this state";
		s->cmd_flags = IMAP_CMDF_NO_SYNC;
		imap_cmd_done(s, "BAD", "%s", why);
		if (++s->bad_commands >= IMAP_MAX_BAD)
			too_many_errors(s);
		return;
	}
	s->bad_commands = 0;
	d->fn(s, cmd);
}

/* One step of input processing.  false when there is nothing to do. */
static bool step(struct imap_session *s)
{
	struct evbuffer *in = transport_input(s->t);
	struct evbuffer_iovec v;
	size_t used = 0;

	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
		return false;
	if (s->in_mode != IMAP_IN_COMMAND) {
		const char *line = NULL;
		size_t ll = 0;
		enum imap_read_status st = imap_reader_feed_line(s->reader, v.iov_base, v.iov_len,
								 &used, &line, &ll);
		evbuffer_drain(in, used);
		if (st == IMAP_READ_LINE) {
			if (s->in_mode == IMAP_IN_SASL)
				imap_auth_sasl_line(s, line, ll);
			else
				imap_idle_line(s, line, ll);
		} else if (st == IMAP_READ_ERROR) {
			if (s->in_mode == IMAP_IN_SASL)
				imap_cmd_done(s, "BAD", "Line too long, authentication cancelled");
			else
				imap_cmd_done(s, "BAD", "Line too long, expected DONE");
		}
		return true;
	}

	enum imap_read_status st = imap_reader_feed(s->reader, v.iov_base, v.iov_len, &used);
	evbuffer_drain(in, used);
	switch (st) {
	case IMAP_READ_MORE:
	case IMAP_READ_LINE:
		break;
	case IMAP_READ_CONTINUE:
		imap_writes(s, "+ OK\r\n");
		break;
	case IMAP_READ_COMMAND: {
		struct imap_command *cmd = NULL;
		struct imap_error err;
		if (imap_reader_parse(s->reader, &cmd, &err) != IMAP_OK) {
			bad_input(s, &err);
			break;
		}
		dispatch(s, cmd);
		break;
	}
	case IMAP_READ_ERROR:
		bad_input(s, imap_reader_error(s->reader));
		break;
	}
	return true;
}

static void on_yield(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;

	(void)fd;
	(void)what;
	imap_session_enter(s);
	if (!s->out_blocked)
		s_process(s);
	imap_session_leave(s);
}

/* Resume the current command on a later loop turn, after other
 * connections had their turn.  false if that cannot be arranged. */
static bool s_yield(struct imap_session *s)
{
	static const struct timeval now = { 0, 0 };

	if (s->yield_ev == NULL)
		s->yield_ev = evtimer_new(s->n->base, on_yield, s);
	return s->yield_ev != NULL && evtimer_add(s->yield_ev, &now) == 0;
}

/* Run queued input until something makes the session wait. */
static void s_process(struct imap_session *s)
{
	bool resumed = false;

	if (s->processing)
		return;
	s->processing = true;
	while (imap_session_alive(s) && !s->out_failed) {
		if (imap_output_full(s)) {
			s->out_blocked = true;
			break;
		}
		if (s->cmd != NULL && s->in_mode == IMAP_IN_COMMAND) {
			if (s->resume == NULL)
				break;	/* async: the callback completes it */
			/* one step per loop turn: the handler returned
			 * because its batch was done, not for output */
			if (resumed && s_yield(s))
				break;
			resumed = true;
			s->resume(s, s->cmd);
			continue;
		}
		if (s->state == IMAP_ST_LOGOUT || s->auth != NULL)
			break;
		if (!step(s))
			break;
	}
	s->processing = false;
	if (s->out_failed && !s->ending) {
		log_err("imap.oom", "sid=%" PRIu64 " peer=%s", s->serial,
			s->t != NULL ? s->t->peer : "-");
		imap_session_end(s, "out_of_memory");
		return;
	}
	s_update_reading(s);
}

/* ---- callbacks ----------------------------------------------------------- */

static void on_read(void *arg)
{
	struct imap_session *s = arg;

	imap_session_enter(s);
	s_process(s);
	imap_session_leave(s);
}

static void on_drained(void *arg)
{
	struct imap_session *s = arg;

	imap_session_enter(s);
	if (s->out_blocked && s->t != NULL && !imap_output_full(s)) {
		s->out_blocked = false;
		s_process(s);
	}
	/* changes held back while an idling client's output was full */
	if (s->idling && s->view.dirty && imap_session_alive(s) && !imap_output_full(s)) {
		int err = imap_view_sync(s, true);
		if (err != STORE_OK)
			log_err("imap.sync_failed", "sid=%" PRIu64 " user=%s error=\"%s\"",
				s->serial, s->username, store_strerror(err));
	}
	imap_session_leave(s);
}

static void on_event(void *arg, enum transport_event ev)
{
	struct imap_session *s = arg;

	imap_session_enter(s);
	switch (ev) {
	case TRANSPORT_EOF:
		imap_session_end(s, "eof");
		break;
	case TRANSPORT_ERROR:
		imap_session_end(s, "error");
		break;
	case TRANSPORT_TIMEOUT:
		if (imap_session_alive(s)) {
			imap_untagged(s, "BYE Autologout; idle for too long");
			imap_session_close(s, "timeout");
		} else {
			imap_session_end(s, "timeout");
		}
		break;
	case TRANSPORT_CLOSED:
		imap_session_end(s, s->end_reason != NULL ? s->end_reason : "closed");
		break;
	}
	imap_session_leave(s);
}

static void drain_bye(struct imap_session *s)
{
	imap_untagged(s, "BYE [UNAVAILABLE] This POP is being drained: please reconnect");
	imap_session_close(s, "drained");
}

/* The POP is drained (drain.h): leave once the command in flight is done;
 * an idle client (no command, or IDLE) is told at once. */
static void on_drain(void *arg)
{
	struct imap_session *s = arg;

	imap_session_enter(s);
	if (imap_session_alive(s)) {
		if (s->cmd == NULL || s->in_mode == IMAP_IN_IDLE)
			drain_bye(s);
		else
			s->drain_pending = true;
	}
	imap_session_leave(s);
}

static void on_shutdown(void *arg)
{
	struct imap_session *s = arg;

	imap_session_enter(s);
	s->shutdown_requested = true;
	if (imap_session_alive(s)) {
		imap_untagged(s, "BYE server shutting down");
		imap_session_close(s, "shutdown");
	}
	imap_session_leave(s);
}

/* (The COMPRESS wrapper takes these over from the transport it wraps.) */
static const struct transport_cbs imap_session_cbs = {
	.read = on_read,
	.drained = on_drained,
	.event = on_event,
};

static struct imap_session *session_new(struct node *n, struct transport *t,
				       const struct listen_conf *lc)
{
	struct imap_session *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		log_err("imap.oom", "peer=%s error=\"out of memory\"", t->peer);
		transport_free(&t);
		return NULL;
	}
	s->n = n;
	s->store = n->store;
	s->t = t;
	s->lc = lc;
	s->serial = next_serial++;
	s->state = IMAP_ST_NOTAUTH;
	imap_limits_default(&s->limits);
	s->limits.max_line = n->cfg->max_line_length < IMAP_MIN_LINE ? IMAP_MIN_LINE
								     : n->cfg->max_line_length;
	/* The APPEND message limit applies after login (imap_cmd_auth.c). */
	s->limits.max_append_literal = s->limits.max_literal;
	s->reader = imap_reader_new(&s->limits);
	node_session_register(n, &s->reg, lc->proto, on_shutdown, s);
	node_session_describe(&s->reg, t->peer, NULL, NULL, NULL);
	transport_set_cbs(t, &imap_session_cbs, s);
	imap_session_set_timeout(s);
	return s;
}

void imap_session_start(struct node *n, struct transport *t, const struct listen_conf *lc)
{
	struct imap_session *s = session_new(n, t, lc);

	if (s == NULL)
		return;
	s->reg.drain = on_drain;	/* the client connected to this POP */
	s->reg.client_here = true;
	imap_session_enter(s);
	if (s->reader == NULL) {
		log_err("imap.oom", "peer=%s error=\"out of memory\"", t->peer);
		imap_session_end(s, "out_of_memory");
	} else if (n->stopping) {
		imap_untagged(s, "BYE server shutting down");
		imap_session_close(s, "shutdown");
	} else {
		log_debug("imap.start", "sid=%" PRIu64 " peer=%s tls=%s", s->serial, t->peer,
			  t->tls ? "yes" : "no");
		char caps[IMAP_CAPS_MAX];
		imap_capabilities(s, caps, sizeof(caps));
		imap_untagged(s, "OK [CAPABILITY %s] popnode IMAP4rev1 ready %s", caps,
			      n->cfg->node_id);
		s->reading = true;
		transport_read_enable(t, true);
		if (s->out_failed)
			imap_session_end(s, "out_of_memory");
	}
	imap_session_leave(s);
}

void imap_session_resume(struct node *n, struct transport *t, const struct listen_conf *lc,
			 struct store *st, const struct store_user *u, const char *tag,
			 const char *front_pop)
{
	struct imap_session *s = session_new(n, t, lc);

	if (s == NULL)
		return;
	s->store = st;
	if (st != n->store) {		/* failover: ended when the home is back */
		s->reg.store = st;
		s->reg.drain = on_drain;
	}
	snprintf(s->front_pop, sizeof(s->front_pop), "%s", front_pop != NULL ? front_pop : "");
	node_session_describe(&s->reg, NULL, NULL, s->front_pop, NULL);
	imap_session_enter(s);
	if (s->reader == NULL) {
		log_err("imap.oom", "peer=%s error=\"out of memory\"", t->peer);
		imap_session_end(s, "out_of_memory");
	} else {
		char caps[IMAP_CAPS_MAX];

		imap_login_user(s, u, "tunnel");
		imap_capabilities(s, caps, sizeof(caps));
		imap_writef(s, "%s OK [CAPABILITY %s] Logged in\r\n", tag, caps);
		s->reading = true;
		transport_read_enable(t, true);
		if (s->out_failed)
			imap_session_end(s, "out_of_memory");
	}
	imap_session_leave(s);
}
