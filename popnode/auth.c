/*
 * auth.c - one login attempt, shared by POP3 and IMAP.
 *
 * Flow (all on the loop thread except the crypt step):
 *   blocked IP?  -> AUTH_BLOCKED, answered on the next loop turn
 *   name -> user record (store_user_get; "user@domain" needs a local domain)
 *   crypt(3) of the password on a worker (workq), compared in constant time
 *   failure -> counted per IP; the answer is held back by the delay
 *   iplimits gives (evtimer), so guessing gets slower and slower.
 * An unknown user is hashed against a fixed dummy hash so the answer time
 * does not tell which names exist.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "auth.h"
#include "directory.h"
#include "iplimits.h"
#include "log.h"
#include "node.h"
#include "workq.h"

/* yescrypt hash of a random string nobody knows; verifying against it
 * costs what a real check costs. */
static const char dummy_hash[] =
	"$y$j9T$g3eI61C/Ca599MlNsqlJH1$/Ctw7epDk1Mavx2U2cKHDTAOUPF8NtdO7Mg5HaidMG9";

struct auth_request {
	struct node *n;
	enum listen_proto proto;
	auth_cb *cb;
	void *arg;
	bool cancelled;
	bool in_worker;		/* freed by the done callback, not by cancel */
	enum auth_result result;
	bool user_found;
	bool verified;		/* set by the worker */
	struct store_user user;
	char peer_ip[48];
	char name[STORE_NAME_MAX];
	char *password;
	struct event *timer;
};

static void req_free(struct auth_request *r)
{
	if (r->password != NULL) {
		OPENSSL_cleanse(r->password, strlen(r->password));
		free(r->password);
	}
	if (r->timer != NULL)
		event_free(r->timer);
	OPENSSL_cleanse(&r->user.pwhash, sizeof(r->user.pwhash));
	free(r);
}

static void finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_request *r = arg;

	if (!r->cancelled)
		r->cb(r->result, r->result == AUTH_OK ? &r->user : NULL, r->arg);
	req_free(r);
}

/* Answer after delay_ms (0 = next loop turn).  false if out of memory
 * (nothing scheduled; the caller decides). */
static bool schedule(struct auth_request *r, enum auth_result res, unsigned delay_ms)
{
	struct timeval tv = { .tv_sec = delay_ms / 1000, .tv_usec = (delay_ms % 1000) * 1000 };

	r->result = res;
	r->timer = evtimer_new(r->n->base, finish_cb, r);
	if (r->timer == NULL)
		return false;
	evtimer_add(r->timer, &tv);
	return true;
}

/* From a worker's done callback: answering now is allowed. */
static void finish_later(struct auth_request *r, enum auth_result res, unsigned delay_ms)
{
	if (schedule(r, res, delay_ms))
		return;
	log_err("auth.oom", "peer=%s", r->peer_ip);
	r->cb(AUTH_TEMPFAIL, NULL, r->arg);
	req_free(r);
}

/* From auth_start: on failure free and report NULL to the caller. */
static struct auth_request *start_answer(struct auth_request *r, enum auth_result res)
{
	if (schedule(r, res, 0))
		return r;
	req_free(r);
	return NULL;
}

static void verify_work(void *arg)
{
	struct auth_request *r = arg;
	const char *hash = r->user_found ? r->user.pwhash : dummy_hash;

	/* A locked or weak hash would answer at once: spend the same time
	 * as a real check so timing tells nothing about the account. */
	if (!dir_hash_acceptable(hash)) {
		(void)dir_verify_password(r->password, dummy_hash);
		r->verified = false;
		return;
	}
	r->verified = dir_verify_password(r->password, hash) && r->user_found;
}

static void verify_done(void *arg)
{
	struct auth_request *r = arg;
	struct node *n = r->n;
	long now = (long)time(NULL);
	char safe[80];

	r->in_worker = false;
	if (r->cancelled) {
		req_free(r);
		return;
	}
	OPENSSL_cleanse(r->password, strlen(r->password));
	log_sanitize(safe, sizeof(safe), r->name, strlen(r->name));
	if (r->verified && !r->user.enabled) {
		log_info("auth.fail", "proto=%s peer=%s user=%s reason=disabled",
			 config_proto_name(r->proto), r->peer_ip, safe);
		n->metrics.auth_failures[r->proto]++;
		finish_later(r, AUTH_DISABLED, 0);
		return;
	}
	if (r->verified) {
		iplimits_auth_ok(n->limits, r->peer_ip);
		n->metrics.auth_success[r->proto]++;
		log_info("auth.ok", "proto=%s peer=%s user=%s", config_proto_name(r->proto),
			 r->peer_ip, safe);
		finish_later(r, AUTH_OK, 0);
		return;
	}
	n->metrics.auth_failures[r->proto]++;
	unsigned delay = iplimits_auth_failed(n->limits, r->peer_ip, now);
	log_info("auth.fail", "proto=%s peer=%s user=%s reason=%s delay_ms=%u",
		 config_proto_name(r->proto), r->peer_ip, safe,
		 r->user_found ? "password" : "unknown-user", delay);
	finish_later(r, AUTH_FAILED, delay);
}

/* "user" or "user@domain" with a local domain -> directory name. */
static bool resolve_name(const struct config *cfg, const char *login, char *out, size_t outsz)
{
	const char *at = strrchr(login, '@');
	size_t local_len = at != NULL ? (size_t)(at - login) : strlen(login);

	if (at != NULL && !config_domain_is_local(cfg, at + 1, strlen(at + 1)))
		return false;
	/* A login name is a user name, not an address: no +detail here. */
	if (memchr(login, '+', local_len) != NULL)
		return false;
	return dir_user_from_local(login, local_len, out, outsz);
}

struct auth_request *auth_start(struct node *n, enum listen_proto proto, const char *peer_ip,
				const char *user, const char *password, auth_cb *cb, void *arg)
{
	struct auth_request *r = calloc(1, sizeof(*r));
	long now = (long)time(NULL);
	int rc;

	if (r == NULL)
		return NULL;
	r->n = n;
	r->proto = proto;
	r->cb = cb;
	r->arg = arg;
	snprintf(r->peer_ip, sizeof(r->peer_ip), "%s", peer_ip);
	r->password = strdup(password);
	if (r->password == NULL) {
		free(r);
		return NULL;
	}
	if (iplimits_auth_blocked(n->limits, r->peer_ip, now)) {
		n->metrics.auth_failures[proto]++;
		log_warn("auth.blocked", "proto=%s peer=%s", config_proto_name(proto), r->peer_ip);
		return start_answer(r, AUTH_BLOCKED);
	}
	if (resolve_name(n->cfg, user, r->name, sizeof(r->name))) {
		rc = store_user_get(n->store, r->name, &r->user);
		if (rc == STORE_OK) {
			r->user_found = true;
		} else if (rc != STORE_NOTFOUND) {
			log_err("auth.store", "proto=%s peer=%s error=\"%s\"", config_proto_name(proto),
				r->peer_ip, store_strerror(rc));
			return start_answer(r, AUTH_TEMPFAIL);
		}
	} else {
		log_sanitize(r->name, sizeof(r->name), user, strlen(user));
	}
	r->in_worker = true;
	if (workq_submit(n->workq, verify_work, verify_done, r) < 0) {
		req_free(r);
		return NULL;
	}
	return r;
}

void auth_cancel(struct auth_request **rp)
{
	struct auth_request *r = rp != NULL ? *rp : NULL;

	if (r == NULL)
		return;
	*rp = NULL;
	r->cancelled = true;
	if (r->in_worker)
		return;	/* verify_done frees it */
	req_free(r);
}
