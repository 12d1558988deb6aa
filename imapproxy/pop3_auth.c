/*
 * pop3_auth.c - the AUTHORIZATION state of a POP3 session (pop3.c):
 * CAPA, USER, PASS, AUTH (SASL PLAIN), STLS, the authentication request,
 * and the login that locks and snapshots the maildrop, or hands a user
 * homed at another POP over to it (tunnel.h) or to its mirror (failover.h).
 */
#include <inttypes.h>
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
#include "pop3_int.h"
#include "replicator.h"
#include "sasl_plain.h"
#include "transport.h"
#include "tunnel.h"

_Static_assert(POP3_AUTH_RESP_MAX == SASL_PLAIN_B64_MAX,
	       "AUTH initial response limit must match the SASL PLAIN limit");
_Static_assert(POP3_ARG_MAX == SASL_PLAIN_FIELD_MAX,
	       "USER/PASS buffers hold SASL PLAIN fields too");

/* ---- authorization ------------------------------------------------------- */

static bool plaintext_ok(const struct pop3_session *s)
{
	return s->t->tls || s->tls_started || s->lc->plaintext_auth;
}

static void reply_tls_required(struct pop3_session *s)
{
	if (s->t->tls_available)
		pop3_reply(s, "-ERR [AUTH] TLS required: use STLS first");
	else
		pop3_reply(s, "-ERR [AUTH] plaintext authentication disabled on this port");
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
	pop3_enter(s);
	if (s->ending || s->t == NULL) {
		pop3_leave(s);
		return;
	}
	switch (r) {
	case TUNNEL_OK:
		/* The home answered PASS/AUTH and serves from now; the
		 * tunnel holds the transport. */
		s->t = NULL;
		pop3_end(s, "roaming");
		pop3_leave(s);
		return;
	case TUNNEL_LOCAL: {
		/* The home is down and this POP is its first mirror. */
		struct store *st = failover_store(s->n, s->tunnel_home, true);
		struct store_user mu;

		if (st == NULL || store_user_get(st, s->tunnel_user, &mu) != STORE_OK) {
			s->n->metrics.roaming_failed++;
			pop3_reply(s,
				   "-ERR [SYS/TEMP] your mailbox's home POP %s is unreachable, try later",
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
		pop3_reply(s, "-ERR [IN-USE] mailbox already in use");
		break;
	case TUNNEL_UNAVAILABLE:
	default:
		s->n->metrics.roaming_failed++;
		pop3_reply(s, "-ERR [SYS/TEMP] your mailbox's home POP %s is unreachable, try later",
			   s->tunnel_home);
		break;
	}
	pop3_process(s);
	pop3_leave(s);
}

/* Credentials accepted: lock, snapshot, enter TRANSACTION; or, for a
 * user homed at another POP, carry the session there. */
void pop3_login(struct pop3_session *s, const struct store_user *u)
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
			pop3_reply(s,
				   "-ERR [SYS/TEMP] your mailbox's home POP %s is unreachable, try later",
				   u->home);
		}
		return;
	}
	if (s->store == n->store && !replicator_serving_ready(n, &why)) {
		pop3_reply(s, "-ERR [SYS/TEMP] %s, try later", why);
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
		pop3_reply(s, "-ERR [IN-USE] mailbox already in use");
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
		pop3_unlock(s);
		s->n_msgs = 0;
		s->live_bytes = 0;
		if (err == STORE_NOTFOUND)
			pop3_reply(s, "-ERR [SYS/PERM] mailbox not available");
		else
			pop3_reply(s, "-ERR [SYS/TEMP] cannot open mailbox, try later");
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
	pop3_reply(s, "+OK %s has %zu messages (%" PRIu64 " octets)", s->username,
		   s->live_count, s->live_bytes);
}

static void auth_done(enum auth_result r, const struct store_user *u, void *arg)
{
	struct pop3_session *s = arg;

	s->auth = NULL;		/* the request is gone once we are called */
	explicit_bzero(s->pass, sizeof(s->pass));
	pop3_enter(s);
	if (s->ending || s->t == NULL) {
		pop3_leave(s);
		return;
	}
	if (s->shutdown_requested) {
		pop3_reply(s, "-ERR [SYS/TEMP] server shutting down");
		pop3_close(s, "shutdown");
		pop3_leave(s);
		return;
	}
	switch (r) {
	case AUTH_OK:
		pop3_login(s, u);
		break;
	case AUTH_FAILED:
		if (!replicator_serving_ready(s->n, NULL))	/* names may not be known yet */
			pop3_reply(s,
				   "-ERR [SYS/TEMP] this POP is checking its mailboxes, try later");
		else
			pop3_reply(s, "-ERR [AUTH] invalid credentials");
		break;
	case AUTH_DISABLED:
		pop3_reply(s, "-ERR [AUTH] account disabled");
		break;
	case AUTH_BLOCKED:
		pop3_reply(s, "-ERR [AUTH] too many failures, try later");
		pop3_close(s, "auth_blocked");
		break;
	case AUTH_TEMPFAIL:
	default:
		pop3_reply(s, "-ERR [SYS/TEMP] authentication temporarily unavailable");
		break;
	}
	pop3_process(s);
	pop3_leave(s);
}

/* user and pass are already in s->user / s->pass. */
static void start_auth(struct pop3_session *s)
{
	s->have_user = false;
	s->auth = auth_start(s->n, s->lc->proto, s->t->peer_ip, s->user, s->pass, auth_done, s);
	if (s->auth == NULL) {
		explicit_bzero(s->pass, sizeof(s->pass));
		log_err("pop3.auth_oom", "peer=%s", s->t->peer);
		pop3_reply(s, "-ERR [SYS/TEMP] authentication temporarily unavailable");
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
		pop3_reply(s, "-ERR [AUTH] %s", sasl_plain_strerror(r));
		return;
	default:
		sasl_plain_wipe(&sp);
		pop3_bad_command(s, sasl_plain_strerror(r));
		return;
	}
	snprintf(s->user, sizeof(s->user), "%s", sp.authcid);
	snprintf(s->pass, sizeof(s->pass), "%s", sp.passwd);
	sasl_plain_wipe(&sp);
	start_auth(s);
}

/* ---- commands ------------------------------------------------------------ */

void pop3_cmd_capa(struct pop3_session *s, const struct pop3_command *c)
{
	bool plain = plaintext_ok(s);

	pop3_out_str(s, "+OK Capability list follows\r\nTOP\r\nUIDL\r\n");
	if (plain)
		pop3_out_str(s, "USER\r\n");
	pop3_out_str(s, "RESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n");
	if (plain)
		pop3_out_str(s, "SASL PLAIN\r\n");
	if (s->t->tls_available && !s->t->tls && !s->tls_started)
		pop3_out_str(s, "STLS\r\n");
	pop3_out_str(s, "IMPLEMENTATION popnode\r\nEXPIRE NEVER\r\nLOGIN-DELAY 0\r\n.\r\n");
}

void pop3_cmd_user(struct pop3_session *s, const struct pop3_command *c)
{
	if (!plaintext_ok(s)) {
		reply_tls_required(s);
		return;
	}
	copy_arg(s->user, sizeof(s->user), &c->args[0]);
	s->have_user = true;
	pop3_reply(s, "+OK send PASS");
}

void pop3_cmd_pass(struct pop3_session *s, const struct pop3_command *c)
{
	if (!plaintext_ok(s)) {
		reply_tls_required(s);
		return;
	}
	if (!s->have_user) {
		pop3_bad_command(s, "send USER first");
		return;
	}
	copy_arg(s->pass, sizeof(s->pass), &c->args[0]);
	start_auth(s);
}

void pop3_cmd_auth(struct pop3_session *s, const struct pop3_command *c)
{
	if (c->nargs == 0) {
		pop3_out_str(s, "+OK SASL mechanisms follow\r\n");
		if (plaintext_ok(s))
			pop3_out_str(s, "PLAIN\r\n");
		pop3_out_str(s, ".\r\n");
		return;
	}
	if (!arg_is(&c->args[0], "PLAIN")) {
		pop3_reply(s, "-ERR unsupported authentication mechanism");
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
	pop3_out_str(s, "+ \r\n");
	s->sasl_wait = true;
}

/* The line after "+ ": the response, or "*" to cancel. */
void pop3_sasl_response(struct pop3_session *s, const char *line, size_t len)
{
	if (len == 1 && line[0] == '*') {
		pop3_reply(s, "-ERR authentication cancelled");
		return;
	}
	sasl_plain_login(s, line, len);
}

void pop3_cmd_stls(struct pop3_session *s, const struct pop3_command *c)
{
	if (s->t->tls || s->tls_started) {
		pop3_reply(s, "-ERR TLS already active");
		return;
	}
	if (!s->t->tls_available) {
		pop3_reply(s, "-ERR TLS not available");
		return;
	}
	pop3_reply(s, "+OK Begin TLS negotiation");
	if (s->out_failed)
		return;
	/* nothing the client sent before the handshake may be used after it */
	struct evbuffer *in = transport_input(s->t);
	evbuffer_drain(in, evbuffer_get_length(in));
	s->scanned = 0;
	if (transport_starttls(s->t) < 0) {
		log_err("pop3.starttls", "peer=%s", s->t->peer);
		pop3_end(s, "starttls_failed");
		return;
	}
	s->tls_started = true;
	/* a fresh AUTHORIZATION state */
	s->have_user = false;
	explicit_bzero(s->user, sizeof(s->user));
	s->sasl_wait = false;
}
