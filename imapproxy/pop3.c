/*
 * pop3.c - POP3 server session over a transport, serving the local store:
 * its lifetime, output, input flow and transport callbacks (pop3_int.h
 * lists the other files: pop3_auth.c, pop3_cmd.c).
 *
 * RFC 1939 (POP3), RFC 2449 (CAPA, RESP-CODES, PIPELINING), RFC 2595
 * (STLS), RFC 5034 (AUTH, with SASL PLAIN only), RFC 3206 (the [AUTH],
 * [SYS/TEMP], [SYS/PERM] response codes).  docs/pop3.md is the operator's
 * view of what is here.
 *
 * Shape.  Input is cut into lines here (limit cfg->max_line_length; an
 * over-long line is answered once and skipped up to its LF), each line
 * goes to the I/O-free parser (pop3_parse.c) and then through a command
 * table (pop3_cmd.c): allowed states and a handler.  Handlers append
 * their whole reply to the transport's output.  Three things stop the
 * line loop until they are over, and reading is disabled meanwhile so the
 * input cannot grow: an authentication in flight (auth_start), the
 * expunge committed at QUIT (store_msg_expunge), and output above
 * TRANSPORT_OUTPUT_HIGH (resumed by the drained callback, below
 * TRANSPORT_OUTPUT_LOW).  That is what makes PIPELINING safe: replies
 * come in order and a RETR of a big message does not let further RETRs
 * pile up behind it.
 *
 * Maildrop.  At login INBOX is snapshotted (uid, size) into an array;
 * message numbers are indexes into it and never change during the
 * session.  DELE only marks; QUIT in TRANSACTION state expunges the marked
 * UIDs in one durable store operation and answers +OK only after the
 * commit.  Any other end of the session (EOF, error, timeout, shutdown)
 * deletes nothing.  The RFC 1939 exclusive lock is node_user_lock(),
 * taken at login and released when the session is over (after the
 * expunge commit if there is one).
 *
 * Lifetime rule.  Every entry point (transport callbacks, auth and store
 * callbacks, the shutdown hook, session start) brackets its work with
 * pop3_enter()/pop3_leave() and returns right after pop3_leave().  Ending
 * a session (pop3_end) only marks it; the last pop3_leave() frees it, so
 * no code below an entry point ever touches freed memory.  An outstanding
 * auth request is cancelled at pop3_end; an outstanding expunge cannot
 * be, so the transport is freed at once but the session struct stays
 * until its callback.
 */
#include "pop3.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "auth.h"
#include "config.h"
#include "log.h"
#include "pop3_int.h"
#include "transport.h"
#include "tunnel.h"

/* RFC 2449 requires room for 255-octet commands: never go below. */
#define POP3_MIN_LINE 512

/* ---- lifetime ------------------------------------------------------------ */

void pop3_enter(struct pop3_session *s)
{
	s->depth++;
}

void pop3_unlock(struct pop3_session *s)
{
	if (s->locked) {
		node_user_unlock(s->n, s->username);
		s->locked = false;
	}
}

/* Free what can be freed; the struct itself only when no store callback
 * is outstanding. */
static void s_reap(struct pop3_session *s)
{
	transport_free(&s->t);
	if (s->expunge_pending)
		return;
	pop3_unlock(s);
	node_session_unregister(s->n, &s->reg);
	if (s->line != NULL) {
		explicit_bzero(s->line, s->line_cap);
		free(s->line);
	}
	explicit_bzero(s->pass, sizeof(s->pass));
	free(s->msgs);
	free(s->expunge_uids);
	free(s);
}

/* Callers return at once after this. */
void pop3_leave(struct pop3_session *s)
{
	if (--s->depth == 0 && s->ending)
		s_reap(s);
}

/* Mark the session over.  Idempotent.  Output still queued is dropped:
 * use pop3_close() for a goodbye that must reach the client. */
void pop3_end(struct pop3_session *s, const char *reason)
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
	explicit_bzero(s->pass, sizeof(s->pass));
	if (!s->expunge_pending)
		pop3_unlock(s);
	log_info("pop3.end", "peer=%s user=%s state=%s reason=%s retr=%u retr_bytes=%" PRIu64
		 " deleted=%zu", s->t != NULL ? s->t->peer : "-",
		 s->logged_in ? s->username : "-",
		 s->state == ST_AUTHORIZATION ? "authorization" :
		 s->state == ST_TRANSACTION ? "transaction" : "update",
		 s->end_reason, s->n_retr, s->retr_bytes, s->n_expunged);
}

/* Flush what is queued, then end (TRANSPORT_CLOSED). */
void pop3_close(struct pop3_session *s, const char *reason)
{
	if (s->closing || s->ending || s->t == NULL)
		return;
	s->closing = true;
	if (s->end_reason == NULL)
		s->end_reason = reason;
	transport_close_after_flush(s->t);
}
/* ---- output -------------------------------------------------------------- */

static void out_add(struct pop3_session *s, const void *p, size_t len)
{
	if (s->t == NULL || s->out_failed || len == 0)
		return;
	if (evbuffer_add(transport_output(s->t), p, len) < 0)
		s->out_failed = true;
}

void pop3_out_str(struct pop3_session *s, const char *str)
{
	out_add(s, str, strlen(str));
}

/* One reply line; CRLF is added. */
__attribute__((format(printf, 2, 3)))
void pop3_reply(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;

	if (s->t == NULL || s->out_failed)
		return;
	struct evbuffer *out = transport_output(s->t);
	va_start(ap, fmt);
	int r = evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	if (r < 0 || evbuffer_add(out, "\r\n", 2) < 0)
		s->out_failed = true;
}

/* Append data with byte-stuffing: a '.' at the start of a line is
 * doubled.  *bol says whether the previous byte ended a line (it carries
 * over from prefix to body); *last is the last byte written. */
void pop3_out_stuffed(struct pop3_session *s, const char *p, size_t len, bool *bol,
		      char *last)
{
	size_t start = 0, i = 0;

	if (len == 0)
		return;
	if (*bol && p[0] == '.')
		out_add(s, ".", 1);
	for (;;) {
		const char *nl = memchr(p + i, '\n', len - i);
		if (nl == NULL)
			break;
		i = (size_t)(nl - p) + 1;
		if (i < len && p[i] == '.') {
			out_add(s, p + start, i - start);
			out_add(s, ".", 1);
			start = i;
		}
	}
	out_add(s, p + start, len - start);
	*last = p[len - 1];
	*bol = *last == '\n';
}
/* ---- flow ---------------------------------------------------------------- */

static bool s_busy(const struct pop3_session *s)
{
	return s->auth != NULL || s->tunnel != NULL || s->expunge_pending || s->out_blocked;
}

static void s_update_reading(struct pop3_session *s)
{
	if (s->t == NULL || s->ending || s->closing)
		return;
	bool want = !s_busy(s);
	if (want != s->reading) {
		s->reading = want;
		transport_read_enable(s->t, want);
	}
}

enum line_result { LINE_NONE, LINE_OK, LINE_TOO_LONG };

/* Take the next complete line from the input into s->line (LF and one
 * trailing CR removed).  s->scanned remembers how much of a partial line
 * was already searched for LF, so a line arriving byte by byte costs
 * linear, not quadratic, time. */
static enum line_result next_line(struct pop3_session *s, size_t *len_r)
{
	struct evbuffer *in = transport_input(s->t);

	for (;;) {
		size_t avail = evbuffer_get_length(in);
		if (avail == 0) {
			s->scanned = 0;
			return LINE_NONE;
		}
		struct evbuffer_ptr from;
		if (s->scanned > avail ||
		    evbuffer_ptr_set(in, &from, s->scanned, EVBUFFER_PTR_SET) < 0) {
			s->scanned = 0;
			evbuffer_ptr_set(in, &from, 0, EVBUFFER_PTR_SET);
		}
		struct evbuffer_ptr lf = evbuffer_search_eol(in, &from, NULL, EVBUFFER_EOL_LF);
		if (lf.pos < 0)
			s->scanned = avail;
		else
			s->scanned = 0;
		if (s->discarding) {
			if (lf.pos < 0) {
				evbuffer_drain(in, avail);
				s->scanned = 0;
				return LINE_NONE;
			}
			evbuffer_drain(in, (size_t)lf.pos + 1);
			s->discarding = false;
			continue;
		}
		if (lf.pos < 0) {
			/* no LF yet: too long once it cannot fit even with CRLF */
			if (avail > s->max_line + 1) {
				evbuffer_drain(in, avail);
				s->scanned = 0;
				s->discarding = true;
				return LINE_TOO_LONG;
			}
			return LINE_NONE;
		}
		size_t total = (size_t)lf.pos + 1;
		if (total > s->max_line + 2) {
			evbuffer_drain(in, total);
			return LINE_TOO_LONG;
		}
		if (s->line_cap < total) {
			size_t cap = s->max_line + 2;
			char *nl = malloc(cap);
			if (nl == NULL) {
				s->out_failed = true;
				return LINE_NONE;
			}
			if (s->line != NULL) {
				explicit_bzero(s->line, s->line_cap);
				free(s->line);
			}
			s->line = nl;
			s->line_cap = cap;
		}
		if (evbuffer_remove(in, s->line, total) != (int)total) {
			s->out_failed = true;
			return LINE_NONE;
		}
		size_t len = total - 1;
		if (len > 0 && s->line[len - 1] == '\r')
			len--;
		if (len > s->max_line)
			return LINE_TOO_LONG;
		*len_r = len;
		return LINE_OK;
	}
}

void pop3_bad_command(struct pop3_session *s, const char *text)
{
	s->bad_commands++;
	if (s->bad_commands > s->n->cfg->pop3_max_bad_commands) {
		pop3_reply(s, "-ERR too many errors");
		log_info("pop3.errors", "peer=%s count=%u", s->t->peer, s->bad_commands);
		pop3_close(s, "too_many_errors");
		return;
	}
	pop3_reply(s, "-ERR %s", text);
}

/* Run queued command lines until something makes us wait. */
void pop3_process(struct pop3_session *s)
{
	while (s->t != NULL && !s->ending && !s->closing && !s_busy(s)) {
		size_t len = 0;
		enum line_result lr = next_line(s, &len);
		if (lr == LINE_NONE && !s->out_failed)
			break;
		if (lr == LINE_TOO_LONG) {
			bool in_sasl = s->sasl_wait;
			s->sasl_wait = false;
			pop3_bad_command(s, in_sasl ? "line too long, authentication cancelled"
						    : "line too long");
		} else if (lr == LINE_OK) {
			pop3_handle_line(s, s->line, len);
			explicit_bzero(s->line, len);
		}
		if (s->out_failed) {
			log_err("pop3.oom", "peer=%s", s->t != NULL ? s->t->peer : "-");
			pop3_end(s, "out_of_memory");
			break;
		}
		if (s->t != NULL && evbuffer_get_length(transport_output(s->t)) > TRANSPORT_OUTPUT_HIGH)
			s->out_blocked = true;
	}
	s_update_reading(s);
}

/* ---- callbacks ----------------------------------------------------------- */

static void on_read(void *arg)
{
	struct pop3_session *s = arg;

	pop3_enter(s);
	pop3_process(s);
	pop3_leave(s);
}

static void on_drained(void *arg)
{
	struct pop3_session *s = arg;

	pop3_enter(s);
	if (s->out_blocked && s->t != NULL &&
	    evbuffer_get_length(transport_output(s->t)) <= TRANSPORT_OUTPUT_HIGH) {
		s->out_blocked = false;
		pop3_process(s);
	}
	pop3_leave(s);
}

static void on_event(void *arg, enum transport_event ev)
{
	struct pop3_session *s = arg;

	pop3_enter(s);
	switch (ev) {
	case TRANSPORT_EOF:
		pop3_end(s, "eof");
		break;
	case TRANSPORT_ERROR:
		pop3_end(s, "error");
		break;
	case TRANSPORT_TIMEOUT:
		/* Idle: the transport still writes, so say why (RFC 1939
		 * servers close an idle session without entering UPDATE). */
		if (s->auth == NULL && !s->expunge_pending && !s->ending && !s->closing) {
			pop3_reply(s, "-ERR [SYS/TEMP] idle timeout, closing");
			pop3_close(s, "timeout");
		} else {
			pop3_end(s, "timeout");
		}
		break;
	case TRANSPORT_CLOSED:
		pop3_end(s, "closed");
		break;
	}
	pop3_leave(s);
}

static void on_shutdown(void *arg)
{
	struct pop3_session *s = arg;

	pop3_enter(s);
	s->shutdown_requested = true;
	/* an auth or expunge in flight finishes first (auth_done,
	 * expunge_done look at shutdown_requested / close anyway) */
	if (s->auth == NULL && !s->expunge_pending && !s->ending && !s->closing) {
		pop3_reply(s, "-ERR [SYS/TEMP] server shutting down");
		pop3_close(s, "shutdown");
	}
	pop3_leave(s);
}

/* The POP is drained (drain.h): once its anycast route has moved, the
 * client's next packets reach another POP, which resets them; end the
 * session here now, as at shutdown (after an auth or expunge in flight),
 * so the client reconnects at once.  Nothing is lost: DELE marks are only
 * applied by QUIT. */
static void on_drain(void *arg)
{
	struct pop3_session *s = arg;

	pop3_enter(s);
	s->shutdown_requested = true;
	if (s->auth == NULL && !s->expunge_pending && !s->ending && !s->closing) {
		pop3_reply(s, "-ERR [SYS/TEMP] this POP is being drained, please reconnect");
		pop3_close(s, "drained");
	}
	pop3_leave(s);
}

static const struct transport_cbs pop3_cbs = {
	.read = on_read,
	.drained = on_drained,
	.event = on_event,
};

static struct pop3_session *session_new(struct node *n, struct transport *t,
					const struct listen_conf *lc)
{
	struct pop3_session *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		log_err("pop3.oom", "peer=%s error=\"out of memory\"", t->peer);
		transport_free(&t);
		return NULL;
	}
	s->n = n;
	s->store = n->store;
	s->t = t;
	s->lc = lc;
	s->state = ST_AUTHORIZATION;
	s->max_line = n->cfg->max_line_length < POP3_MIN_LINE ? POP3_MIN_LINE
							       : n->cfg->max_line_length;
	node_session_register(n, &s->reg, lc->proto, on_shutdown, s);
	node_session_describe(&s->reg, t->peer, NULL, NULL, NULL);
	transport_set_cbs(t, &pop3_cbs, s);
	transport_set_timeout(t, n->cfg->idle_timeout);
	return s;
}

void pop3_session_start(struct node *n, struct transport *t, const struct listen_conf *lc)
{
	struct pop3_session *s = session_new(n, t, lc);

	if (s == NULL)
		return;
	s->reg.drain = on_drain;	/* the client connected to this POP */
	s->reg.client_here = true;
	pop3_enter(s);
	if (n->stopping) {
		pop3_reply(s, "-ERR [SYS/TEMP] server shutting down");
		pop3_close(s, "shutdown");
	} else {
		pop3_reply(s, "+OK popnode POP3 ready %s", n->cfg->node_id);
		s->reading = true;
		transport_read_enable(t, true);
		if (s->out_failed)
			pop3_end(s, "out_of_memory");
	}
	pop3_leave(s);
}

void pop3_session_resume(struct node *n, struct transport *t, const struct listen_conf *lc,
			 struct store *st, const struct store_user *u, const char *front_pop)
{
	struct pop3_session *s = session_new(n, t, lc);

	if (s == NULL)
		return;
	s->store = st;
	if (st != n->store) {		/* failover: ended when the home is back */
		s->reg.store = st;
		s->reg.drain = on_drain;
	}
	node_session_describe(&s->reg, NULL, NULL, front_pop, NULL);
	pop3_enter(s);
	pop3_login(s, u);	/* answers the client's PASS or AUTH */
	s->reading = true;
	if (s->out_failed)
		pop3_end(s, "out_of_memory");
	else
		pop3_process(s);
	pop3_leave(s);
}
