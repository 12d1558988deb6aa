/*
 * imap_cmd_auth.c - the commands of any state and of the not-authenticated
 * state: CAPABILITY, NOOP/CHECK, LOGOUT, STARTTLS (RFC 3501), LOGIN,
 * AUTHENTICATE PLAIN with SASL-IR (RFC 4959) or a continuation, ID
 * (RFC 2971), ENABLE (RFC 5161: CONDSTORE, QRESYNC, UTF8=ACCEPT) and NAMESPACE
 * (RFC 2342).
 *
 * Logins go through auth_start() exactly like POP3: the password check
 * runs off the loop, the command stays current (reading off) until
 * auth_done().  LOGIN and AUTHENTICATE are refused before TLS unless the
 * listener allows plaintext (the greeting then says LOGINDISABLED and no
 * AUTH=PLAIN).  A user homed at another POP is refused for now; the
 * tunnel to the home POP will take that branch over.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "config.h"
#include "imap_session.h"
#include "failover.h"
#include "log.h"
#include "node.h"
#include "replicator.h"
#include "sasl_plain.h"
#include "tunnel.h"
#include "transport.h"

void imap_cmd_capability(struct imap_session *s, struct imap_command *cmd)
{
	char caps[IMAP_CAPS_MAX];

	imap_capabilities(s, caps, sizeof(caps));
	imap_untagged(s, "CAPABILITY %s", caps);
	imap_cmd_done(s, "OK", "CAPABILITY completed");
}

/* NOOP and CHECK: the end-of-command sync sends what changed. */
void imap_cmd_noop(struct imap_session *s, struct imap_command *cmd)
{
	imap_cmd_done(s, "OK", "%s completed", imap_cmd_name(cmd->id));
}

void imap_cmd_logout(struct imap_session *s, struct imap_command *cmd)
{
	if (s->state == IMAP_ST_SELECTED)
		imap_view_close(s);
	s->state = IMAP_ST_LOGOUT;
	imap_untagged(s, "BYE popnode logging out");
	imap_cmd_done(s, "OK", "LOGOUT completed");
	imap_session_close(s, "logout");
}

void imap_cmd_starttls(struct imap_session *s, struct imap_command *cmd)
{
	if (s->t->tls || s->tls_started) {
		imap_cmd_done(s, "BAD", "TLS is already active");
		return;
	}
	if (!s->t->tls_available || s->compressed) {
		imap_cmd_done(s, "NO", "TLS is not available");
		return;
	}
	imap_cmd_done(s, "OK", "Begin TLS negotiation now");
	/* The reader stops right after each command, so it holds nothing
	 * here; the transport discards any input pipelined after STARTTLS
	 * (RFC 3501 6.2.1: no plaintext command injection). */
	if (transport_starttls(s->t) < 0) {
		log_err("imap.starttls_failed", "sid=%" PRIu64 " peer=%s", s->serial, s->t->peer);
		imap_session_end(s, "starttls_failed");
		return;
	}
	s->tls_started = true;
}

/* ---- login --------------------------------------------------------------- */

void imap_login_user(struct imap_session *s, const struct store_user *u, const char *via)
{
	struct node *n = s->n;

	s->logged_in = true;
	s->userid = u->id;
	snprintf(s->username, sizeof(s->username), "%s", u->name);
	s->state = IMAP_ST_AUTH;
	node_session_describe(&s->reg, NULL, s->username, NULL, n->cfg->node_id);
	s->limits.max_append_literal = n->cfg->max_message_size;
	imap_reader_set_limits(s->reader, &s->limits);
	imap_session_set_timeout(s);
	log_info("imap.login", "sid=%" PRIu64 " peer=%s user=%s tls=%s via=%s", s->serial,
		 s->t->peer, s->username, (s->t->tls || s->tls_started) ? "yes" : "no", via);
}

/* The home POP answered the tunnel request. */
static void tunnel_done(enum tunnel_result r, void *arg)
{
	struct imap_session *s = arg;

	s->tunnel = NULL;
	imap_session_enter(s);
	if (!imap_session_alive(s)) {
		imap_session_leave(s);
		return;
	}
	switch (r) {
	case TUNNEL_OK:
		/* The home answers the login and serves from now; the
		 * tunnel holds the transport. */
		log_info("imap.roaming", "sid=%" PRIu64 " peer=%s user=%s home=%s", s->serial,
			 s->t->peer, s->tunnel_user, s->tunnel_home);
		s->t = NULL;
		imap_session_end(s, "roaming");
		break;
	case TUNNEL_LOCAL: {
		/* The home is down and this POP is its first mirror. */
		struct store *st = failover_store(s->n, s->tunnel_home, true);
		struct store_user mu;
		char caps[IMAP_CAPS_MAX];

		if (st == NULL || store_user_get(st, s->tunnel_user, &mu) != STORE_OK) {
			s->n->metrics.roaming_failed++;
			imap_cmd_done(s, "NO", "[UNAVAILABLE] Your mailbox's home POP %s is unreachable, try again later",
				      s->tunnel_home);
			break;
		}
		log_info("imap.failover", "sid=%" PRIu64 " peer=%s user=%s home=%s", s->serial,
			 s->t->peer, s->tunnel_user, s->tunnel_home);
		s->store = st;
		s->reg.store = st;
		s->n->metrics.failover_sessions++;
		imap_login_user(s, &mu, "failover");
		imap_capabilities(s, caps, sizeof(caps));
		imap_cmd_done(s, "OK", "[CAPABILITY %s] Logged in", caps);
		break;
	}
	case TUNNEL_IN_USE:
	case TUNNEL_UNAVAILABLE:
	default:
		s->n->metrics.roaming_failed++;
		imap_cmd_done(s, "NO", "[UNAVAILABLE] Your mailbox's home POP %s is unreachable, try again later",
			      s->tunnel_home);
		break;
	}
	imap_session_leave(s);
}

static void logged_in(struct imap_session *s, const struct store_user *u)
{
	struct node *n = s->n;
	char caps[IMAP_CAPS_MAX];
	const char *why = NULL;

	if (strcmp(u->home, n->cfg->node_id) != 0) {
		snprintf(s->tunnel_user, sizeof(s->tunnel_user), "%s", u->name);
		snprintf(s->tunnel_home, sizeof(s->tunnel_home), "%s", u->home);
		s->tunnel = tunnel_open(n, s->t, s->lc->proto, u->name, u->home, s->cmd->tag,
					tunnel_done, s);
		if (s->tunnel == NULL) {
			log_info("imap.home_unreachable", "sid=%" PRIu64 " peer=%s user=%s home=%s",
				 s->serial, s->t->peer, u->name, u->home);
			n->metrics.roaming_failed++;
			imap_cmd_done(s, "NO", "[UNAVAILABLE] Your mailbox's home POP %s is unreachable, try again later",
				      u->home);
		}
		return;
	}
	if (!replicator_serving_ready(n, &why)) {
		imap_cmd_done(s, "NO", "[UNAVAILABLE] %s, try again later", why);
		return;
	}
	imap_login_user(s, u, "local");
	imap_capabilities(s, caps, sizeof(caps));
	imap_cmd_done(s, "OK", "[CAPABILITY %s] Logged in", caps);
}

static void auth_done(enum auth_result r, const struct store_user *u, void *arg)
{
	struct imap_session *s = arg;

	s->auth = NULL;		/* the request is gone once we are called */
	imap_session_enter(s);
	if (!imap_session_alive(s)) {
		imap_session_leave(s);
		return;
	}
	if (s->shutdown_requested) {
		imap_cmd_done(s, "NO", "[UNAVAILABLE] server shutting down");
		imap_untagged(s, "BYE server shutting down");
		imap_session_close(s, "shutdown");
		imap_session_leave(s);
		return;
	}
	switch (r) {
	case AUTH_OK:
		logged_in(s, u);
		break;
	case AUTH_FAILED:
		if (!replicator_serving_ready(s->n, NULL))	/* names may not be known yet */
			imap_cmd_done(s, "NO", "[UNAVAILABLE] This POP is checking its mailboxes, "
					       "try again later");
		else
			imap_cmd_done(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
		break;
	case AUTH_DISABLED:
		imap_cmd_done(s, "NO", "[AUTHORIZATIONFAILED] Account disabled");
		break;
	case AUTH_BLOCKED:
		imap_cmd_done(s, "NO", "[UNAVAILABLE] Too many failures, try later");
		imap_untagged(s, "BYE Too many authentication failures");
		imap_session_close(s, "auth_blocked");
		break;
	case AUTH_TEMPFAIL:
	default:
		imap_cmd_done(s, "NO", "[UNAVAILABLE] Authentication temporarily unavailable");
		break;
	}
	imap_session_leave(s);
}

/* Start the password check; false (nothing started) if out of memory.
 * The caller completes the command then, after wiping secrets. */
static bool start_auth(struct imap_session *s, const char *user, const char *pass)
{
	s->in_mode = IMAP_IN_COMMAND;
	s->auth = auth_start(s->n, s->lc->proto, s->t->peer_ip, user, pass, auth_done, s);
	if (s->auth == NULL) {
		log_err("imap.auth_oom", "sid=%" PRIu64 " peer=%s", s->serial, s->t->peer);
		return false;
	}
	return true;	/* auth_done completes the command */
}

static void auth_unavailable(struct imap_session *s)
{
	imap_cmd_done(s, "NO", "[UNAVAILABLE] Authentication temporarily unavailable");
}

static void wipe(const struct imap_str *str)
{
	if (str->s != NULL)
		explicit_bzero((char *)str->s, str->len);
}

/* Refuse LOGIN/AUTHENTICATE before TLS where plaintext is not allowed.
 * secret is wiped first: completing the command frees it. */
static bool refuse_plaintext(struct imap_session *s, const struct imap_str *secret)
{
	if (imap_plaintext_ok(s))
		return false;
	wipe(secret);
	imap_cmd_done(s, "NO", "[PRIVACYREQUIRED] Plaintext authentication is disabled here%s",
		      s->t->tls_available ? ": use STARTTLS first" : "");
	return true;
}

void imap_cmd_login(struct imap_session *s, struct imap_command *cmd)
{
	struct imap_args_login *a = &cmd->u.login;

	if (refuse_plaintext(s, &a->pass))
		return;
	if (a->user.len >= STORE_NAME_MAX * 4 || a->pass.len > SASL_PLAIN_FIELD_MAX * 4) {
		wipe(&a->pass);
		imap_cmd_done(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
		return;
	}
	bool started = start_auth(s, a->user.s, a->pass.s);
	wipe(&a->pass);
	if (!started)
		auth_unavailable(s);
}

/* Decode and start the check.  The caller wipes b64 and, if this
 * returns false, the command has been completed here. */
static void sasl_plain_login(struct imap_session *s, const char *b64, size_t len, bool *done_r)
{
	struct sasl_plain sp;
	int r = sasl_plain_decode(b64, len, &sp);

	s->in_mode = IMAP_IN_COMMAND;
	*done_r = true;
	if (r != SASL_PLAIN_OK) {
		sasl_plain_wipe(&sp);
		if (r == SASL_PLAIN_ERR_EMPTY || r == SASL_PLAIN_ERR_AUTHZID)
			imap_cmd_done(s, "NO", "[AUTHENTICATIONFAILED] %s", sasl_plain_strerror(r));
		else
			imap_cmd_done(s, "BAD", "%s", sasl_plain_strerror(r));
		return;
	}
	bool started = start_auth(s, sp.authcid, sp.passwd);
	sasl_plain_wipe(&sp);
	if (!started)
		auth_unavailable(s);
	else
		*done_r = false;
}

void imap_cmd_authenticate(struct imap_session *s, struct imap_command *cmd)
{
	struct imap_args_auth *a = &cmd->u.auth;

	if (strcmp(a->mech.s, "PLAIN") != 0) {
		imap_cmd_done(s, "NO", "[CANNOT] Unsupported authentication mechanism");
		return;
	}
	if (refuse_plaintext(s, &a->ir))
		return;
	if (a->has_ir) {
		/* wipe the response before the command (and its arena) can
		 * be freed by a completion */
		char b64[SASL_PLAIN_B64_MAX + 1];
		size_t len = a->ir.len;
		bool done;
		if (len > SASL_PLAIN_B64_MAX) {
			wipe(&a->ir);
			imap_cmd_done(s, "BAD", "%s", sasl_plain_strerror(SASL_PLAIN_ERR_TOO_LONG));
			return;
		}
		memcpy(b64, a->ir.s, len);
		wipe(&a->ir);
		sasl_plain_login(s, b64, len, &done);
		explicit_bzero(b64, sizeof(b64));
		return;
	}
	s->in_mode = IMAP_IN_SASL;
	imap_writes(s, "+ \r\n");
}

void imap_auth_sasl_line(struct imap_session *s, const char *line, size_t len)
{
	if (len == 1 && line[0] == '*') {
		s->in_mode = IMAP_IN_COMMAND;
		imap_cmd_done(s, "BAD", "Authentication cancelled");
		return;
	}
	bool done;
	sasl_plain_login(s, line, len, &done);
	explicit_bzero((char *)line, len);
}

/* ---- ID, ENABLE, NAMESPACE ------------------------------------------------ */

void imap_cmd_id(struct imap_session *s, struct imap_command *cmd)
{
	const struct imap_args_id *a = &cmd->u.id;

	if (a->n_pairs > 0) {
		char name[40], val[72];
		for (size_t i = 0; i < a->n_pairs; i++) {
			if (strcasecmp(a->pairs[i].name.s, "name") != 0 || a->pairs[i].value_nil)
				continue;
			log_debug("imap.id", "sid=%" PRIu64 " %s=%s", s->serial,
				  log_sanitize(name, sizeof(name), a->pairs[i].name.s,
					       a->pairs[i].name.len),
				  log_sanitize(val, sizeof(val), a->pairs[i].value.s,
					       a->pairs[i].value.len));
		}
	}
	/* "pop": the POP the client reached; after login also the POP
	 * that serves the mailbox (they differ for a roaming session), so a
	 * user or the NOC can tell which POP answered. */
	if (s->logged_in)
		imap_untagged(s, "ID (\"name\" \"popnode\" \"version\" \"%s\" \"pop\" \"%s\" \"mailbox-pop\" \"%s\")",
			      POPNODE_VERSION, s->front_pop[0] ? s->front_pop : s->n->cfg->node_id,
			      s->n->cfg->node_id);
	else
		imap_untagged(s, "ID (\"name\" \"popnode\" \"version\" \"%s\" \"pop\" \"%s\")",
			      POPNODE_VERSION, s->n->cfg->node_id);
	imap_cmd_done(s, "OK", "ID completed");
}

void imap_cmd_enable(struct imap_session *s, struct imap_command *cmd)
{
	const struct imap_args_enable *a = &cmd->u.enable;
	uint32_t newly = 0;

	/* QRESYNC implies CONDSTORE (RFC 7162 3.2.3). */
	if ((a->known & IMAP_ENABLE_CONDSTORE) && !(s->enabled & IMAP_ENABLE_CONDSTORE))
		newly |= IMAP_ENABLE_CONDSTORE;
	if ((a->known & IMAP_ENABLE_QRESYNC) && !(s->enabled & IMAP_ENABLE_QRESYNC))
		newly |= IMAP_ENABLE_QRESYNC;
	/* UTF8=ACCEPT (RFC 6855 3) is only valid in the authenticated
	 * state: with a mailbox selected it is not enabled (and not listed
	 * in ENABLED).  From the next command on, the parser takes names
	 * as UTF-8 and the UTF8 APPEND form; output sends names as UTF-8
	 * and may quote UTF-8 strings. */
	if ((a->known & IMAP_ENABLE_UTF8_ACCEPT) && !(s->enabled & IMAP_ENABLE_UTF8_ACCEPT) &&
	    s->state == IMAP_ST_AUTH) {
		newly |= IMAP_ENABLE_UTF8_ACCEPT;
		s->limits.utf8_accept = true;
		imap_reader_set_limits(s->reader, &s->limits);
	}
	s->enabled |= newly;
	if (s->enabled & IMAP_ENABLE_QRESYNC)
		s->enabled |= IMAP_ENABLE_CONDSTORE;
	if (s->enabled & IMAP_ENABLE_CONDSTORE)
		imap_condstore_enable(s);
	/* Unknown names are ignored, as RFC 5161 3.1 asks. */
	imap_untagged(s, "ENABLED%s%s%s", (newly & IMAP_ENABLE_CONDSTORE) ? " CONDSTORE" : "",
		      (newly & IMAP_ENABLE_QRESYNC) ? " QRESYNC" : "",
		      (newly & IMAP_ENABLE_UTF8_ACCEPT) ? " UTF8=ACCEPT" : "");
	imap_cmd_done(s, "OK", "ENABLE completed");
}

void imap_cmd_namespace(struct imap_session *s, struct imap_command *cmd)
{
	imap_untagged(s, "NAMESPACE ((\"\" \"/\")) NIL NIL");
	imap_cmd_done(s, "OK", "NAMESPACE completed");
}
