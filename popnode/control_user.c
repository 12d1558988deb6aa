/*
 * control_user.c - the user commands of the control socket (control.c):
 * user add, del, passwd and set write the directory through the store
 * (one at a time, in the writer slot, answered from the store's callback
 * once the commit is durable); user list and show read it at once.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "config.h"
#include "control_int.h"
#include "directory.h"
#include "log.h"
#include "node.h"

static const char *store_code(int err)
{
	switch (err) {
	case STORE_NOTFOUND: return CTL_E_NOTFOUND;
	case STORE_EXISTS: return CTL_E_EXISTS;
	case STORE_QUOTA: return CTL_E_QUOTA;
	case STORE_FULL: return CTL_E_FULL;
	case STORE_INVAL: return CTL_E_INVAL;
	case STORE_SHUTDOWN: return CTL_E_SHUTDOWN;
	case STORE_DISABLED: return CTL_E_DISABLED;
	default: return CTL_E_IO;
	}
}

static void reply_store_err(struct ctl_conn *c, int err, const char *name)
{
	if (err == STORE_NOTFOUND)
		ctl_reply_err(c, CTL_E_NOTFOUND, "no such user %s", name);
	else if (err == STORE_EXISTS)
		ctl_reply_err(c, CTL_E_EXISTS, "user %s already exists", name);
	else
		ctl_reply_err(c, store_code(err), "store: %s", store_strerror(err));
}

/* ---- the writer slot and store callbacks --------------------------------- */

static const char *op_event(enum op_kind k)
{
	switch (k) {
	case OP_ADD: return "control.user_add";
	case OP_DEL: return "control.user_del";
	case OP_PASSWD: return "control.user_passwd";
	case OP_SET: return "control.user_set";
	}
	return "control.user";
}

static void op_done(int err, void *arg)
{
	struct ctl_op *op = arg;
	struct control *ctl = op->ctl;
	struct ctl_conn *c = op->conn;
	struct store_user u;

	if (err == STORE_OK)
		log_info(op_event(op->kind), "conn=%lu peer_uid=%u user=%s%s%s", op->conn_id, op->uid,
			 op->user.name, op->summary[0] != '\0' ? " " : "", op->summary);
	else
		log_warn(op_event(op->kind), "conn=%lu peer_uid=%u user=%s error=\"%s\"", op->conn_id,
			 op->uid, op->user.name, store_strerror(err));
	if (ctl != NULL)
		ctl->writing = NULL;
	if (c != NULL) {
		c->op = NULL;
		if (err != STORE_OK) {
			reply_store_err(c, err, op->user.name);
		} else if (op->kind == OP_ADD && ctl != NULL &&
			   store_user_get(ctl->n->store, op->user.name, &u) == STORE_OK) {
			ctl_reply_ok_text(c, "user %s added (id %" PRIu32 ", %s)", op->user.name,
					  u.id, op->summary);
		} else if (op->kind == OP_ADD) {
			ctl_reply_ok_text(c, "user %s added (%s)", op->user.name, op->summary);
		} else if (op->kind == OP_DEL) {
			ctl_reply_ok_text(c, "user %s deleted", op->user.name);
		} else if (op->kind == OP_PASSWD) {
			ctl_reply_ok_text(c, "password of %s changed", op->user.name);
		} else {
			ctl_reply_ok_text(c, "user %s changed (%s)", op->user.name, op->summary);
		}
		c->busy = false;
		if (!c->dispatching) {
			ctl_conn_process(c);
			ctl_conn_settle(c);
		}
	}
	explicit_bzero(op->user.pwhash, sizeof(op->user.pwhash));
	free(op);
	if (ctl != NULL)
		ctl_run_waiting(ctl);
}

/* Start a store write for c.  The answer comes from op_done. */
static void op_start(struct ctl_conn *c, enum op_kind kind, const struct store_user *u,
		     const char *summary)
{
	struct control *ctl = c->ctl;
	struct ctl_op *op = calloc(1, sizeof(*op));

	if (op == NULL) {
		ctl_reply_err(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	op->conn = c;
	op->ctl = ctl;
	op->kind = kind;
	op->conn_id = c->id;
	op->uid = c->uid;
	op->user = *u;
	snprintf(op->summary, sizeof(op->summary), "%s", summary);
	ctl->writing = op;
	c->op = op;
	c->busy = true;
	switch (kind) {
	case OP_ADD: store_user_add(ctl->n->store, &op->user, op_done, op); break;
	case OP_DEL: store_user_del(ctl->n->store, op->user.name, op_done, op); break;
	case OP_PASSWD:
	case OP_SET: store_user_update(ctl->n->store, &op->user, op_done, op); break;
	}
}

/* ---- commands ----------------------------------------------------------- */

bool ctl_check_name(struct ctl_conn *c, const char *name)
{
	if (dir_valid_username(name))
		return true;
	ctl_reply_err(c, CTL_E_INVAL, "invalid user name (1-63 of a-z 0-9 . _ -, starting with a letter or digit)");
	return false;
}

static bool check_hash(struct ctl_conn *c, const char *hash)
{
	if (strlen(hash) < STORE_HASH_MAX && dir_hash_acceptable(hash))
		return true;
	ctl_reply_err(c, CTL_E_INVAL,
		      "password hash not acceptable (want $y$, $7$, $6$, $5$ or $2b$)");
	return false;
}

static bool check_home(struct ctl_conn *c, const char *home)
{
	if (ctl_valid_pop(home) && strlen(home) < STORE_POP_MAX)
		return true;
	ctl_reply_err(c, CTL_E_INVAL, "invalid home POP id (1-63 of A-Z a-z 0-9 . _ -)");
	return false;
}

static bool check_quota(struct ctl_conn *c, const char *s, uint64_t *q)
{
	if (ctl_parse_size(s, q))
		return true;
	ctl_reply_err(c, CTL_E_INVAL, "invalid quota (bytes, K/M/G/T suffix, or \"unlimited\")");
	return false;
}

void ctl_cmd_user_add(struct ctl_conn *c, const char *const *args)
{
	const struct config *cfg = c->ctl->n->cfg;
	const char *hash = ctl_request_opt(&c->req, "hash");
	const char *home = ctl_request_opt(&c->req, "home");
	const char *quota = ctl_request_opt(&c->req, "quota");
	struct store_user u;
	char summary[128];

	memset(&u, 0, sizeof(u));
	if (!ctl_check_name(c, args[0]))
		return;
	if (hash == NULL) {
		ctl_reply_err(c, CTL_E_USAGE, "user add needs hash=HASH");
		return;
	}
	if (!check_hash(c, hash))
		return;
	if (home != NULL && !check_home(c, home))
		return;
	u.quota = cfg->default_quota;
	if (quota != NULL && !check_quota(c, quota, &u.quota))
		return;
	snprintf(u.name, sizeof(u.name), "%s", args[0]);
	snprintf(u.home, sizeof(u.home), "%s", home != NULL ? home : cfg->node_id);
	snprintf(u.pwhash, sizeof(u.pwhash), "%s", hash);
	u.enabled = true;
	snprintf(summary, sizeof(summary), "home=%s quota=%" PRIu64, u.home, u.quota);
	op_start(c, OP_ADD, &u, summary);
	explicit_bzero(u.pwhash, sizeof(u.pwhash));
}

void ctl_cmd_user_del(struct ctl_conn *c, const char *const *args)
{
	struct store_user u;

	memset(&u, 0, sizeof(u));
	if (!ctl_check_name(c, args[0]))
		return;
	snprintf(u.name, sizeof(u.name), "%s", args[0]);
	op_start(c, OP_DEL, &u, "");
}

/* Read the record to change; false (answered) if that fails. */
static bool load_user(struct ctl_conn *c, const char *name, struct store_user *u)
{
	int rc;

	if (!ctl_check_name(c, name))
		return false;
	rc = store_user_get(c->ctl->n->store, name, u);
	if (rc != STORE_OK) {
		reply_store_err(c, rc, name);
		return false;
	}
	return true;
}

void ctl_cmd_user_passwd(struct ctl_conn *c, const char *const *args)
{
	const char *hash = ctl_request_opt(&c->req, "hash");
	struct store_user u;

	if (hash == NULL) {
		ctl_reply_err(c, CTL_E_USAGE, "user passwd needs hash=HASH");
		return;
	}
	if (!check_hash(c, hash) || !load_user(c, args[0], &u))
		return;
	snprintf(u.pwhash, sizeof(u.pwhash), "%s", hash);
	op_start(c, OP_PASSWD, &u, "");
	explicit_bzero(u.pwhash, sizeof(u.pwhash));
}

void ctl_cmd_user_set(struct ctl_conn *c, const char *const *args)
{
	const char *home = ctl_request_opt(&c->req, "home");
	const char *quota = ctl_request_opt(&c->req, "quota");
	const char *enabled = ctl_request_opt(&c->req, "enabled");
	struct store_user u;
	uint64_t q = 0;
	char qbuf[32] = "";
	char summary[128];

	if (home == NULL && quota == NULL && enabled == NULL) {
		ctl_reply_err(c, CTL_E_USAGE, "user set needs home=, quota= or enabled=");
		return;
	}
	if (home != NULL && !check_home(c, home))
		return;
	if (quota != NULL && !check_quota(c, quota, &q))
		return;
	if (enabled != NULL && strcmp(enabled, "yes") != 0 && strcmp(enabled, "no") != 0) {
		ctl_reply_err(c, CTL_E_INVAL, "enabled= takes yes or no");
		return;
	}
	if (!load_user(c, args[0], &u))
		return;
	if (home != NULL)
		snprintf(u.home, sizeof(u.home), "%s", home);
	if (quota != NULL) {
		u.quota = q;
		snprintf(qbuf, sizeof(qbuf), "%" PRIu64, q);
	}
	if (enabled != NULL)
		u.enabled = strcmp(enabled, "yes") == 0;
	snprintf(summary, sizeof(summary), "%s%s%s%s%s%s", home != NULL ? " home=" : "",
		 home != NULL ? home : "", quota != NULL ? " quota=" : "", qbuf,
		 enabled != NULL ? " enabled=" : "", enabled != NULL ? enabled : "");
	op_start(c, OP_SET, &u, summary + 1);
	explicit_bzero(u.pwhash, sizeof(u.pwhash));
}

struct list_ctx {
	struct evbuffer *b;
	bool failed;
};

static int list_row(const struct store_user *u, void *arg)
{
	struct list_ctx *lc = arg;

	if (evbuffer_add_printf(lc->b, "%s\t%" PRIu32 "\t%s\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu32
				"\t%s\n", u->name, u->id, u->home, u->quota, u->used,
				u->messages, u->enabled ? "yes" : "no") < 0)
		lc->failed = true;
	return lc->failed;
}

void ctl_cmd_user_list(struct ctl_conn *c, const char *const *args)
{
	struct list_ctx lc = { .b = evbuffer_new(), .failed = false };
	int rc;

	if (lc.b == NULL) {
		ctl_reply_err(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	evbuffer_add_printf(lc.b, "name\tid\thome\tquota\tused\tmessages\tenabled\n");
	rc = store_user_foreach(c->ctl->n->store, list_row, &lc);
	if (lc.failed)
		ctl_reply_err(c, CTL_E_INTERNAL, "out of memory");
	else if (rc < 0)
		reply_store_err(c, rc, "");
	else
		ctl_reply_ok_buffer(c, lc.b);
	evbuffer_free(lc.b);
}

static const char *hash_scheme(const char *h)
{
	if (strncmp(h, "$y$", 3) == 0)
		return "yescrypt";
	if (strncmp(h, "$7$", 3) == 0)
		return "scrypt";
	if (strncmp(h, "$6$", 3) == 0)
		return "sha512crypt";
	if (strncmp(h, "$5$", 3) == 0)
		return "sha256crypt";
	if (strncmp(h, "$2b$", 4) == 0 || strncmp(h, "$2y$", 4) == 0)
		return "bcrypt";
	return h[0] == '\0' ? "none" : "other";
}

void ctl_cmd_user_show(struct ctl_conn *c, const char *const *args)
{
	struct store_user u;
	struct evbuffer *b;
	char created[32] = "-";
	struct tm tm;
	time_t t;

	if (!load_user(c, args[0], &u))
		return;
	b = evbuffer_new();
	if (b == NULL) {
		ctl_reply_err(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	t = (time_t)u.created;
	if (gmtime_r(&t, &tm) != NULL)
		strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	evbuffer_add_printf(b,
			    "name: %s\nid: %" PRIu32 "\nhome: %s\nquota: %" PRIu64 "\n"
			    "used: %" PRIu64 "\nmessages: %" PRIu32 "\nenabled: %s\n"
			    "password: %s\ncreated: %s\n",
			    u.name, u.id, u.home, u.quota, u.used, u.messages,
			    u.enabled ? "yes" : "no", hash_scheme(u.pwhash), created);
	explicit_bzero(u.pwhash, sizeof(u.pwhash));
	ctl_reply_ok_buffer(c, b);
	evbuffer_free(b);
}
