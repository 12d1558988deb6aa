/*
 * pop3.c - POP3 server session over a transport, serving the local store.
 *
 * RFC 1939 (POP3), RFC 2449 (CAPA, RESP-CODES, PIPELINING), RFC 2595
 * (STLS), RFC 5034 (AUTH, with SASL PLAIN only), RFC 3206 (the [AUTH],
 * [SYS/TEMP], [SYS/PERM] response codes).  docs/pop3.md is the operator's
 * view of what is here.
 *
 * Shape.  Input is cut into lines here (limit cfg->max_line_length; an
 * over-long line is answered once and skipped up to its LF), each line
 * goes to the I/O-free parser (pop3_parse.c) and then through a command
 * table: allowed states and a handler.  Handlers append their whole reply
 * to the transport's output.  Three things stop the line loop until they
 * are over, and reading is disabled meanwhile so the input cannot grow:
 * an authentication in flight (auth_start), the expunge committed at QUIT
 * (store_msg_expunge), and output above TRANSPORT_OUTPUT_HIGH (resumed by
 * the drained callback, below TRANSPORT_OUTPUT_LOW).  That is what makes
 * PIPELINING safe: replies come in order and a RETR of a big message
 * does not let further RETRs pile up behind it.
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
 * s_enter()/s_leave() and returns right after s_leave().  Ending a session
 * (s_end) only marks it; the last s_leave() frees it, so no code below an
 * entry point ever touches freed memory.  An outstanding auth request is
 * cancelled at s_end; an outstanding expunge cannot be, so the transport
 * is freed at once but the session struct stays until its callback.
 */
#include "pop3.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "auth.h"
#include "config.h"
#include "failover.h"
#include "log.h"
#include "metrics.h"
#include "node.h"
#include "pop3_parse.h"
#include "replicator.h"
#include "tunnel.h"
#include "sasl_plain.h"
#include "store.h"
#include "transport.h"

_Static_assert(POP3_AUTH_RESP_MAX == SASL_PLAIN_B64_MAX,
	       "AUTH initial response limit must match the SASL PLAIN limit");
_Static_assert(POP3_ARG_MAX == SASL_PLAIN_FIELD_MAX,
	       "USER/PASS buffers hold SASL PLAIN fields too");

/* RFC 2449 requires room for 255-octet commands: never go below. */
#define POP3_MIN_LINE 512

enum pop3_state { ST_AUTHORIZATION, ST_TRANSACTION, ST_UPDATE };

struct pop3_msg {
	uint32_t uid;
	bool deleted;
	uint64_t size;
};

struct pop3_session {
	struct node *n;
	struct store *store;		/* n->store, or a mirror store (failover) */
	struct transport *t;		/* NULL once freed */
	const struct listen_conf *lc;
	struct node_session reg;
	enum pop3_state state;
	size_t max_line;

	/* lifetime (see the top of the file) */
	unsigned depth;
	bool ending;			/* s_end() called; freed at depth 0 */
	bool closing;			/* close_after_flush issued */
	bool shutdown_requested;
	const char *end_reason;

	/* input and output flow */
	bool reading;			/* what we last told the transport */
	bool out_blocked;		/* waiting for the drained callback */
	bool out_failed;		/* an evbuffer add failed: drop */
	bool discarding;		/* skipping the rest of an over-long line */
	bool sasl_wait;			/* "+ " sent: next line is the response */
	bool tls_started;
	unsigned bad_commands;
	char *line;			/* current line, grown up to max_line + 2 */
	size_t line_cap;
	size_t scanned;			/* input already searched for LF */

	/* authorization */
	bool have_user;			/* USER given */
	char user[POP3_ARG_MAX + 1];	/* login name (USER or authcid) */
	char pass[POP3_ARG_MAX + 1];	/* held only while auth runs */
	struct auth_request *auth;
	struct tunnel_req *tunnel;	/* waiting for the home POP (tunnel.h) */
	char tunnel_home[STORE_POP_MAX];

	/* transaction */
	bool logged_in;
	bool locked;
	uint32_t userid;
	char username[STORE_NAME_MAX];
	char tunnel_user[STORE_NAME_MAX];	/* while tunnel_open runs */
	uint32_t mboxid;
	uint32_t uidvalidity;
	struct pop3_msg *msgs;
	size_t n_msgs, cap_msgs;
	bool snap_oom;
	size_t live_count;		/* not DELE'd */
	uint64_t live_bytes;

	/* update */
	bool expunge_pending;
	uint32_t *expunge_uids;
	size_t n_expunge;

	/* for the end-of-session log line */
	unsigned n_retr;
	uint64_t retr_bytes;
	size_t n_expunged;
};

/* ---- lifetime ------------------------------------------------------------ */

static void s_enter(struct pop3_session *s)
{
	s->depth++;
}

static void s_unlock(struct pop3_session *s)
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
	s_unlock(s);
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
static void s_leave(struct pop3_session *s)
{
	if (--s->depth == 0 && s->ending)
		s_reap(s);
}

/* Mark the session over.  Idempotent.  Output still queued is dropped:
 * use s_close() for a goodbye that must reach the client. */
static void s_end(struct pop3_session *s, const char *reason)
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
		s_unlock(s);
	log_info("pop3.end", "peer=%s user=%s state=%s reason=%s retr=%u retr_bytes=%" PRIu64
		 " deleted=%zu", s->t != NULL ? s->t->peer : "-",
		 s->logged_in ? s->username : "-",
		 s->state == ST_AUTHORIZATION ? "authorization" :
		 s->state == ST_TRANSACTION ? "transaction" : "update",
		 s->end_reason, s->n_retr, s->retr_bytes, s->n_expunged);
}

/* Flush what is queued, then end (TRANSPORT_CLOSED). */
static void s_close(struct pop3_session *s, const char *reason)
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

static void out_str(struct pop3_session *s, const char *str)
{
	out_add(s, str, strlen(str));
}

/* One reply line; CRLF is added. */
__attribute__((format(printf, 2, 3)))
static void reply(struct pop3_session *s, const char *fmt, ...)
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
static void out_stuffed(struct pop3_session *s, const char *p, size_t len, bool *bol,
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

static void bad_command(struct pop3_session *s, const char *text)
{
	s->bad_commands++;
	if (s->bad_commands > s->n->cfg->pop3_max_bad_commands) {
		reply(s, "-ERR too many errors");
		log_info("pop3.errors", "peer=%s count=%u", s->t->peer, s->bad_commands);
		s_close(s, "too_many_errors");
		return;
	}
	reply(s, "-ERR %s", text);
}

static void handle_line(struct pop3_session *s, const char *line, size_t len);
static void expunge_done(int err, void *arg);

/* Run queued command lines until something makes us wait. */
static void s_process(struct pop3_session *s)
{
	while (s->t != NULL && !s->ending && !s->closing && !s_busy(s)) {
		size_t len = 0;
		enum line_result lr = next_line(s, &len);
		if (lr == LINE_NONE && !s->out_failed)
			break;
		if (lr == LINE_TOO_LONG) {
			bool in_sasl = s->sasl_wait;
			s->sasl_wait = false;
			bad_command(s, in_sasl ? "line too long, authentication cancelled"
					       : "line too long");
		} else if (lr == LINE_OK) {
			handle_line(s, s->line, len);
			explicit_bzero(s->line, len);
		}
		if (s->out_failed) {
			log_err("pop3.oom", "peer=%s", s->t != NULL ? s->t->peer : "-");
			s_end(s, "out_of_memory");
			break;
		}
		if (s->t != NULL && evbuffer_get_length(transport_output(s->t)) > TRANSPORT_OUTPUT_HIGH)
			s->out_blocked = true;
	}
	s_update_reading(s);
}

/* ---- authorization ------------------------------------------------------- */

static bool plaintext_ok(const struct pop3_session *s)
{
	return s->t->tls || s->tls_started || s->lc->plaintext_auth;
}

static void reply_tls_required(struct pop3_session *s)
{
	if (s->t->tls_available)
		reply(s, "-ERR [AUTH] TLS required: use STLS first");
	else
		reply(s, "-ERR [AUTH] plaintext authentication disabled on this port");
}

static int snapshot_cb(const struct store_msg *m, void *arg)
{
	struct pop3_session *s = arg;

	if (s->n_msgs == s->cap_msgs) {
		size_t cap = s->cap_msgs ? s->cap_msgs * 2 : 64;
		if (cap > SIZE_MAX / sizeof(*s->msgs)) {
			s->snap_oom = true;
			return 1;
		}
		struct pop3_msg *nm = realloc(s->msgs, cap * sizeof(*nm));
		if (nm == NULL) {
			s->snap_oom = true;
			return 1;
		}
		s->msgs = nm;
		s->cap_msgs = cap;
	}
	s->msgs[s->n_msgs++] = (struct pop3_msg){ .uid = m->uid, .size = m->size };
	s->live_bytes += m->size;
	return 0;
}

static void open_maildrop(struct pop3_session *s, const struct store_user *u);

/* The home POP answered the tunnel request. */
static void tunnel_done(enum tunnel_result r, void *arg)
{
	struct pop3_session *s = arg;

	s->tunnel = NULL;
	s_enter(s);
	if (s->ending || s->t == NULL) {
		s_leave(s);
		return;
	}
	switch (r) {
	case TUNNEL_OK:
		/* The home answered PASS/AUTH and serves from now; the
		 * tunnel holds the transport. */
		s->t = NULL;
		s_end(s, "roaming");
		s_leave(s);
		return;
	case TUNNEL_LOCAL: {
		/* The home is down and this POP is its first mirror. */
		struct store *st = failover_store(s->n, s->tunnel_home, true);
		struct store_user mu;

		if (st == NULL || store_user_get(st, s->tunnel_user, &mu) != STORE_OK) {
			s->n->metrics.roaming_failed++;
			reply(s, "-ERR [SYS/TEMP] your mailbox's home POP %s is unreachable, try later",
			      s->tunnel_home);
			break;
		}
		log_info("pop3.failover", "peer=%s user=%s home=%s", s->t->peer, mu.name,
			 s->tunnel_home);
		s->store = st;
		s->reg.store = st;
		s->n->metrics.failover_sessions++;
		open_maildrop(s, &mu);
		break;
	}
	case TUNNEL_IN_USE:
		reply(s, "-ERR [IN-USE] mailbox already in use");
		break;
	case TUNNEL_UNAVAILABLE:
	default:
		s->n->metrics.roaming_failed++;
		reply(s, "-ERR [SYS/TEMP] your mailbox's home POP %s is unreachable, try later",
		      s->tunnel_home);
		break;
	}
	s_process(s);
	s_leave(s);
}

/* Credentials accepted: lock, snapshot, enter TRANSACTION; or, for a
 * user homed at another POP, carry the session there. */
static void login(struct pop3_session *s, const struct store_user *u)
{
	struct node *n = s->n;
	const char *why = NULL;

	if (strcmp(u->home, n->cfg->node_id) != 0 && s->store == n->store) {
		snprintf(s->tunnel_home, sizeof(s->tunnel_home), "%s", u->home);
		snprintf(s->tunnel_user, sizeof(s->tunnel_user), "%s", u->name);
		s->tunnel = tunnel_open(n, s->t, s->lc->proto, u->name, u->home, NULL, tunnel_done, s);
		if (s->tunnel == NULL) {
			log_info("pop3.home_unreachable", "peer=%s user=%s home=%s", s->t->peer,
				 u->name, u->home);
			n->metrics.roaming_failed++;
			reply(s, "-ERR [SYS/TEMP] your mailbox's home POP %s is unreachable, try later",
			      u->home);
		}
		return;
	}
	if (s->store == n->store && !replicator_serving_ready(n, &why)) {
		reply(s, "-ERR [SYS/TEMP] %s, try later", why);
		return;
	}
	open_maildrop(s, u);
}

/* Lock, snapshot, enter TRANSACTION, from s->store. */
static void open_maildrop(struct pop3_session *s, const struct store_user *u)
{
	struct node *n = s->n;
	struct store_mailbox mb;

	if (!node_user_lock(n, u->name)) {
		log_info("pop3.in_use", "peer=%s user=%s", s->t->peer, u->name);
		reply(s, "-ERR [IN-USE] mailbox already in use");
		return;
	}
	s->locked = true;
	s->userid = u->id;
	snprintf(s->username, sizeof(s->username), "%s", u->name);

	int err = store_mailbox_get(s->store, u->id, "INBOX", &mb);
	if (err == STORE_OK) {
		s->n_msgs = 0;
		s->live_bytes = 0;
		s->snap_oom = false;
		err = store_msg_foreach(s->store, u->id, mb.id, snapshot_cb, s);
		if (s->snap_oom)
			err = STORE_IO;
	}
	if (err != STORE_OK) {
		log_err("pop3.mailbox", "peer=%s user=%s error=\"%s\"", s->t->peer, u->name,
			store_strerror(err));
		s_unlock(s);
		s->n_msgs = 0;
		s->live_bytes = 0;
		if (err == STORE_NOTFOUND)
			reply(s, "-ERR [SYS/PERM] mailbox not available");
		else
			reply(s, "-ERR [SYS/TEMP] cannot open mailbox, try later");
		return;
	}
	s->mboxid = mb.id;
	s->uidvalidity = mb.uidvalidity;
	s->live_count = s->n_msgs;
	s->logged_in = true;
	snprintf(s->username, sizeof(s->username), "%s", u->name);
	node_session_describe(&s->reg, NULL, s->username, NULL, n->cfg->node_id);
	s->state = ST_TRANSACTION;
	s->have_user = false;
	log_info("pop3.login", "peer=%s user=%s messages=%zu bytes=%" PRIu64 " tls=%s",
		 s->t->peer, s->username, s->n_msgs, s->live_bytes,
		 (s->t->tls || s->tls_started) ? "yes" : "no");
	reply(s, "+OK %s has %zu messages (%" PRIu64 " octets)", s->username, s->live_count,
	      s->live_bytes);
}

static void auth_done(enum auth_result r, const struct store_user *u, void *arg)
{
	struct pop3_session *s = arg;

	s->auth = NULL;		/* the request is gone once we are called */
	explicit_bzero(s->pass, sizeof(s->pass));
	s_enter(s);
	if (s->ending || s->t == NULL) {
		s_leave(s);
		return;
	}
	if (s->shutdown_requested) {
		reply(s, "-ERR [SYS/TEMP] server shutting down");
		s_close(s, "shutdown");
		s_leave(s);
		return;
	}
	switch (r) {
	case AUTH_OK:
		login(s, u);
		break;
	case AUTH_FAILED:
		if (!replicator_serving_ready(s->n, NULL))	/* names may not be known yet */
			reply(s, "-ERR [SYS/TEMP] this POP is checking its mailboxes, try later");
		else
			reply(s, "-ERR [AUTH] invalid credentials");
		break;
	case AUTH_DISABLED:
		reply(s, "-ERR [AUTH] account disabled");
		break;
	case AUTH_BLOCKED:
		reply(s, "-ERR [AUTH] too many failures, try later");
		s_close(s, "auth_blocked");
		break;
	case AUTH_TEMPFAIL:
	default:
		reply(s, "-ERR [SYS/TEMP] authentication temporarily unavailable");
		break;
	}
	s_process(s);
	s_leave(s);
}

/* user and pass are already in s->user / s->pass. */
static void start_auth(struct pop3_session *s)
{
	s->have_user = false;
	s->auth = auth_start(s->n, s->lc->proto, s->t->peer_ip, s->user, s->pass, auth_done, s);
	if (s->auth == NULL) {
		explicit_bzero(s->pass, sizeof(s->pass));
		log_err("pop3.auth_oom", "peer=%s", s->t->peer);
		reply(s, "-ERR [SYS/TEMP] authentication temporarily unavailable");
	}
}

static void copy_arg(char *dst, size_t dstsz, const struct pop3_arg *a)
{
	size_t len = a->len < dstsz - 1 ? a->len : dstsz - 1;
	memcpy(dst, a->p, len);
	dst[len] = '\0';
}

static bool arg_is(const struct pop3_arg *a, const char *word)
{
	size_t wl = strlen(word);
	return a->len == wl && strncasecmp(a->p, word, wl) == 0;
}

static void sasl_plain_login(struct pop3_session *s, const char *b64, size_t len)
{
	struct sasl_plain sp;
	int r = sasl_plain_decode(b64, len, &sp);

	switch (r) {
	case SASL_PLAIN_OK:
		break;
	case SASL_PLAIN_ERR_EMPTY:
	case SASL_PLAIN_ERR_AUTHZID:
		sasl_plain_wipe(&sp);
		reply(s, "-ERR [AUTH] %s", sasl_plain_strerror(r));
		return;
	default:
		sasl_plain_wipe(&sp);
		bad_command(s, sasl_plain_strerror(r));
		return;
	}
	snprintf(s->user, sizeof(s->user), "%s", sp.authcid);
	snprintf(s->pass, sizeof(s->pass), "%s", sp.passwd);
	sasl_plain_wipe(&sp);
	start_auth(s);
}

/* ---- commands ------------------------------------------------------------ */

static void cmd_capa(struct pop3_session *s, const struct pop3_command *c)
{
	bool plain = plaintext_ok(s);

	out_str(s, "+OK Capability list follows\r\nTOP\r\nUIDL\r\n");
	if (plain)
		out_str(s, "USER\r\n");
	out_str(s, "RESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n");
	if (plain)
		out_str(s, "SASL PLAIN\r\n");
	if (s->t->tls_available && !s->t->tls && !s->tls_started)
		out_str(s, "STLS\r\n");
	out_str(s, "IMPLEMENTATION popnode\r\nEXPIRE NEVER\r\nLOGIN-DELAY 0\r\n.\r\n");
}

static void cmd_user(struct pop3_session *s, const struct pop3_command *c)
{
	if (!plaintext_ok(s)) {
		reply_tls_required(s);
		return;
	}
	copy_arg(s->user, sizeof(s->user), &c->args[0]);
	s->have_user = true;
	reply(s, "+OK send PASS");
}

static void cmd_pass(struct pop3_session *s, const struct pop3_command *c)
{
	if (!plaintext_ok(s)) {
		reply_tls_required(s);
		return;
	}
	if (!s->have_user) {
		bad_command(s, "send USER first");
		return;
	}
	copy_arg(s->pass, sizeof(s->pass), &c->args[0]);
	start_auth(s);
}

static void cmd_auth(struct pop3_session *s, const struct pop3_command *c)
{
	if (c->nargs == 0) {
		out_str(s, "+OK SASL mechanisms follow\r\n");
		if (plaintext_ok(s))
			out_str(s, "PLAIN\r\n");
		out_str(s, ".\r\n");
		return;
	}
	if (!arg_is(&c->args[0], "PLAIN")) {
		reply(s, "-ERR unsupported authentication mechanism");
		return;
	}
	if (!plaintext_ok(s)) {
		reply_tls_required(s);
		return;
	}
	s->have_user = false;
	if (c->nargs == 2) {
		/* RFC 5034: "=" is an empty initial response */
		if (arg_is(&c->args[1], "="))
			sasl_plain_login(s, "", 0);
		else
			sasl_plain_login(s, c->args[1].p, c->args[1].len);
		return;
	}
	out_str(s, "+ \r\n");
	s->sasl_wait = true;
}

/* The line after "+ ": the response, or "*" to cancel. */
static void sasl_response(struct pop3_session *s, const char *line, size_t len)
{
	if (len == 1 && line[0] == '*') {
		reply(s, "-ERR authentication cancelled");
		return;
	}
	sasl_plain_login(s, line, len);
}

static void cmd_stls(struct pop3_session *s, const struct pop3_command *c)
{
	if (s->t->tls || s->tls_started) {
		reply(s, "-ERR TLS already active");
		return;
	}
	if (!s->t->tls_available) {
		reply(s, "-ERR TLS not available");
		return;
	}
	reply(s, "+OK Begin TLS negotiation");
	if (s->out_failed)
		return;
	/* nothing the client sent before the handshake may be used after it */
	struct evbuffer *in = transport_input(s->t);
	evbuffer_drain(in, evbuffer_get_length(in));
	s->scanned = 0;
	if (transport_starttls(s->t) < 0) {
		log_err("pop3.starttls", "peer=%s", s->t->peer);
		s_end(s, "starttls_failed");
		return;
	}
	s->tls_started = true;
	/* a fresh AUTHORIZATION state */
	s->have_user = false;
	explicit_bzero(s->user, sizeof(s->user));
	s->sasl_wait = false;
}

static void cmd_quit(struct pop3_session *s, const struct pop3_command *c)
{
	if (s->state == ST_AUTHORIZATION) {
		reply(s, "+OK popnode signing off");
		s_close(s, "quit");
		return;
	}
	s->state = ST_UPDATE;
	size_t n = s->n_msgs - s->live_count;
	if (n == 0) {
		reply(s, "+OK popnode signing off");
		s_unlock(s);
		s_close(s, "quit");
		return;
	}
	s->expunge_uids = malloc(n * sizeof(*s->expunge_uids));
	if (s->expunge_uids == NULL) {
		reply(s, "-ERR [SYS/TEMP] some deleted messages not removed");
		s_unlock(s);
		s_close(s, "quit");
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
	reply(s, "+OK %zu %" PRIu64, s->live_count, s->live_bytes);
}

/* The message numbered num, or NULL after answering -ERR. */
static const struct pop3_msg *get_msg(struct pop3_session *s, uint32_t num)
{
	if (num == 0 || num > s->n_msgs) {
		reply(s, "-ERR no such message");
		return NULL;
	}
	const struct pop3_msg *m = &s->msgs[num - 1];
	if (m->deleted) {
		reply(s, "-ERR message %" PRIu32 " already deleted", num);
		return NULL;
	}
	return m;
}

static void cmd_list(struct pop3_session *s, const struct pop3_command *c)
{
	if (c->nargs == 1) {
		const struct pop3_msg *m = get_msg(s, c->num[0]);
		if (m != NULL)
			reply(s, "+OK %" PRIu32 " %" PRIu64, c->num[0], m->size);
		return;
	}
	reply(s, "+OK %zu messages (%" PRIu64 " octets)", s->live_count, s->live_bytes);
	for (size_t i = 0; i < s->n_msgs && !s->out_failed; i++)
		if (!s->msgs[i].deleted)
			reply(s, "%zu %" PRIu64, i + 1, s->msgs[i].size);
	out_str(s, ".\r\n");
}

static void cmd_uidl(struct pop3_session *s, const struct pop3_command *c)
{
	if (c->nargs == 1) {
		const struct pop3_msg *m = get_msg(s, c->num[0]);
		if (m != NULL)
			reply(s, "+OK %" PRIu32 " %" PRIu32 ".%" PRIu32, c->num[0], s->uidvalidity,
			      m->uid);
		return;
	}
	reply(s, "+OK unique-id listing follows");
	for (size_t i = 0; i < s->n_msgs && !s->out_failed; i++)
		if (!s->msgs[i].deleted)
			reply(s, "%zu %" PRIu32 ".%" PRIu32, i + 1, s->uidvalidity, s->msgs[i].uid);
	out_str(s, ".\r\n");
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
	reply(s, "+OK message %" PRIu32 " deleted", c->num[0]);
}

static void cmd_rset(struct pop3_session *s, const struct pop3_command *c)
{
	s->live_count = s->n_msgs;
	s->live_bytes = 0;
	for (size_t i = 0; i < s->n_msgs; i++) {
		s->msgs[i].deleted = false;
		s->live_bytes += s->msgs[i].size;
	}
	reply(s, "+OK maildrop has %zu messages (%" PRIu64 " octets)", s->live_count,
	      s->live_bytes);
}

static void cmd_noop(struct pop3_session *s, const struct pop3_command *c)
{
	reply(s, "+OK");
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
		reply(s, "+OK top of message follows");
	else
		reply(s, "+OK %" PRIu64 " octets", rc->m->size);
	size_t head = evbuffer_get_length(out);
	out_stuffed(s, prefix, prefix_len, &bol, &last);
	if (rc->top)
		body_len = top_cut(body, body_len, rc->lines);
	out_stuffed(s, body, body_len, &bol, &last);
	if (!bol)
		out_str(s, last == '\r' ? "\n" : "\r\n");
	out_str(s, ".\r\n");
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
		reply(s, "-ERR message %" PRIu32 " no longer exists", num);
		return;
	}
	if (err != STORE_OK) {
		log_err("pop3.read_failed", "peer=%s user=%s uid=%" PRIu32 " error=\"%s\"",
			s->t->peer, s->username, m->uid, store_strerror(err));
		reply(s, "-ERR [SYS/TEMP] cannot read message, try later");
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
	[POP3_CMD_USER] = { S_AUTH, cmd_user },
	[POP3_CMD_PASS] = { S_AUTH, cmd_pass },
	[POP3_CMD_AUTH] = { S_AUTH, cmd_auth },
	[POP3_CMD_STLS] = { S_AUTH, cmd_stls },
	[POP3_CMD_CAPA] = { S_AUTH | S_TRANS, cmd_capa },
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

static void handle_line(struct pop3_session *s, const char *line, size_t len)
{
	struct pop3_command c;

	if (s->sasl_wait) {
		s->sasl_wait = false;
		sasl_response(s, line, len);
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
			bad_command(s, "no such message");
		else
			bad_command(s, pop3_parse_strerror(r));
		return;
	}
	if (!(commands[c.id].states & (1u << s->state))) {
		bad_command(s, "command not valid in this state");
		return;
	}
	commands[c.id].fn(s, &c);
}

/* ---- callbacks ----------------------------------------------------------- */

static void on_read(void *arg)
{
	struct pop3_session *s = arg;

	s_enter(s);
	s_process(s);
	s_leave(s);
}

static void on_drained(void *arg)
{
	struct pop3_session *s = arg;

	s_enter(s);
	if (s->out_blocked && s->t != NULL &&
	    evbuffer_get_length(transport_output(s->t)) <= TRANSPORT_OUTPUT_HIGH) {
		s->out_blocked = false;
		s_process(s);
	}
	s_leave(s);
}

static void on_event(void *arg, enum transport_event ev)
{
	struct pop3_session *s = arg;

	s_enter(s);
	switch (ev) {
	case TRANSPORT_EOF:
		s_end(s, "eof");
		break;
	case TRANSPORT_ERROR:
		s_end(s, "error");
		break;
	case TRANSPORT_TIMEOUT:
		/* Idle: the transport still writes, so say why (RFC 1939
		 * servers close an idle session without entering UPDATE). */
		if (s->auth == NULL && !s->expunge_pending && !s->ending && !s->closing) {
			reply(s, "-ERR [SYS/TEMP] idle timeout, closing");
			s_close(s, "timeout");
		} else {
			s_end(s, "timeout");
		}
		break;
	case TRANSPORT_CLOSED:
		s_end(s, "closed");
		break;
	}
	s_leave(s);
}

static void expunge_done(int err, void *arg)
{
	struct pop3_session *s = arg;

	s->expunge_pending = false;
	s_enter(s);
	if (err == STORE_OK) {
		s->n->metrics.pop3_deleted += s->n_expunge;
		s->n_expunged = s->n_expunge;
		reply(s, "+OK popnode signing off (%zu messages deleted)", s->n_expunge);
	} else {
		log_err("pop3.expunge_failed", "user=%s count=%zu error=\"%s\"", s->username,
			s->n_expunge, store_strerror(err));
		reply(s, "-ERR [SYS/TEMP] some deleted messages not removed");
	}
	s_unlock(s);
	s_close(s, "quit");
	s_leave(s);
}

static void on_shutdown(void *arg)
{
	struct pop3_session *s = arg;

	s_enter(s);
	s->shutdown_requested = true;
	/* an auth or expunge in flight finishes first (auth_done,
	 * expunge_done look at shutdown_requested / close anyway) */
	if (s->auth == NULL && !s->expunge_pending && !s->ending && !s->closing) {
		reply(s, "-ERR [SYS/TEMP] server shutting down");
		s_close(s, "shutdown");
	}
	s_leave(s);
}

/* The POP is drained (drain.h): once its anycast route has moved, the
 * client's next packets reach another POP, which resets them; end the
 * session here now, as at shutdown (after an auth or expunge in flight),
 * so the client reconnects at once.  Nothing is lost: DELE marks are only
 * applied by QUIT. */
static void on_drain(void *arg)
{
	struct pop3_session *s = arg;

	s_enter(s);
	s->shutdown_requested = true;
	if (s->auth == NULL && !s->expunge_pending && !s->ending && !s->closing) {
		reply(s, "-ERR [SYS/TEMP] this POP is being drained, please reconnect");
		s_close(s, "drained");
	}
	s_leave(s);
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
	s_enter(s);
	if (n->stopping) {
		reply(s, "-ERR [SYS/TEMP] server shutting down");
		s_close(s, "shutdown");
	} else {
		reply(s, "+OK popnode POP3 ready %s", n->cfg->node_id);
		s->reading = true;
		transport_read_enable(t, true);
		if (s->out_failed)
			s_end(s, "out_of_memory");
	}
	s_leave(s);
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
	s_enter(s);
	login(s, u);	/* answers the client's PASS or AUTH */
	s->reading = true;
	if (s->out_failed)
		s_end(s, "out_of_memory");
	else
		s_process(s);
	s_leave(s);
}
