/*
 * auth.h - asynchronous login shared by every protocol: user lookup in the
 * directory (names "user" or "user@local-domain"), password check with
 * crypt(3) on a worker thread, per-IP failure delay and refusal, metrics
 * and a log line per attempt.
 */
#ifndef POPNODE_AUTH_H
#define POPNODE_AUTH_H

#include "config.h"
#include "store.h"

struct node;
struct auth_request;

enum auth_result {
	AUTH_OK,
	AUTH_FAILED,	/* unknown user or wrong password (not told apart) */
	AUTH_DISABLED,	/* right password, account disabled */
	AUTH_BLOCKED,	/* too many failures from this address */
	AUTH_TEMPFAIL,	/* store error */
};

/* u is valid (the user's record) only with AUTH_OK. */
typedef void auth_cb(enum auth_result r, const struct store_user *u, void *arg);

/* Start a login.  cb is always called later (never from inside
 * auth_start), unless auth_cancel() is called first.  NULL on OOM. */
struct auth_request *auth_start(struct node *n, enum listen_proto proto, const char *peer_ip,
				const char *user, const char *password, auth_cb *cb, void *arg);
/* The session is going away: cb will not be called. Sets *req NULL. */
void auth_cancel(struct auth_request **req);

#endif
