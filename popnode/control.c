/*
 * control.c - the Unix control socket: popctl's way in (users, status,
 * peers).
 * Wire format: control_proto.h and docs/control-protocol.md.
 *
 * Access: the socket is created mode 0600 (umask held around bind) and
 * every accepted peer is checked with SO_PEERCRED: uid 0 and the
 * daemon's effective uid at accept time (after any privilege drop) are
 * served, anyone else gets "err denied" and is disconnected.
 *
 * A connection answers its requests strictly in order, one at a time:
 * while a request is being answered the connection does not read.  Most
 * commands answer at once from synchronous store reads.  Commands that
 * change the directory call the store asynchronously and answer from the
 * store's callback, after the commit is durable.  They also run one at a
 * time across all connections (the writer slot, ctl->writing): "user
 * set" and "user passwd" read a record, change it and write the whole
 * record back, and two of them interleaved would lose one change.  A
 * connection whose write command finds the slot taken waits in
 * ctl->waiting, in arrival order.  "verify" and "lag cluster" ask other
 * POPs over the link (replicator/repl_noc.h) and answer from that
 * query's callback, at most two rounds of REPL_NOC_TIMEOUT_MS later; a
 * connection that goes away cancels its query.
 *
 * Lifetimes: the store op (struct ctl_op) outlives the connection if the
 * peer goes away (op->conn is then NULL) and even the control server if
 * it is stopped (op->ctl is then NULL); the store always calls back, so
 * the op is freed there.  A connection is freed only at the tail of a
 * libevent callback (conn_settle), never while a caller up the stack
 * still uses it.
 *
 * Hard limits: CTL_REQUEST_MAX per request line (over it: "err toolong"
 * and close), CONN_MAX connections, ERRORS_MAX malformed requests per
 * connection, IDLE_TIMEOUT seconds of silence.
 *
 * Hanging up: after the last answer is written we shut our side down and
 * keep reading (discarding) until the peer's EOF, LINGER_SECONDS or
 * LINGER_BYTES, whichever comes first.  Closing with unread input would
 * reset the connection and could destroy the error that explains why.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "control.h"
#include "drain.h"
#include "control_proto.h"
#include "directory.h"
#include "link.h"
#include "log.h"
#include "unixsock.h"
#include "node.h"
#include "replicator.h"
#include "repl_noc.h"
#include "repl_ack.h"
#include "status.h"
#include "store.h"

#define CONN_MAX 32		/* concurrent control connections */
#define ERRORS_MAX 10		/* malformed requests before we hang up */
#define IDLE_TIMEOUT 60		/* seconds without a request or progress */
#define ACCEPT_PAUSE_MS 500	/* after an accept error (EMFILE...) */
#define LINGER_SECONDS 2	/* closing: wait this long for the peer's EOF */
#define LINGER_BYTES (64 * 1024) /* closing: discard at most this much input */

struct ctl_conn;
TAILQ_HEAD(ctl_conn_list, ctl_conn);

enum op_kind { OP_ADD, OP_DEL, OP_PASSWD, OP_SET };

/* One asynchronous store write. */
struct ctl_op {
	struct ctl_conn *conn;		/* NULL once the connection is gone */
	struct control *ctl;		/* NULL once the server is stopped */
	enum op_kind kind;
	unsigned long conn_id;
	unsigned uid;
	char summary[128];		/* what changed, for the log and answer */
	struct store_user user;
};

struct control {
	struct node *n;
	struct evconnlistener *lev;
	struct event *accept_timer;
	char path[sizeof(((struct sockaddr_un *)NULL)->sun_path)];
	dev_t dev;			/* the socket inode we created */
	ino_t ino;
	struct ctl_conn_list conns;
	unsigned n_conns;
	struct ctl_op *writing;		/* the writer slot */
	struct ctl_conn_list waiting;	/* for the writer slot */
	bool draining_waiting;		/* run_waiting on the stack */
	unsigned long next_id;
};

struct ctl_conn {
	TAILQ_ENTRY(ctl_conn) entry;
	TAILQ_ENTRY(ctl_conn) wait_entry;
	struct control *ctl;
	struct bufferevent *bev;
	struct ctl_op *op;		/* store write in flight */
	struct repl_noc_query *noc;	/* verify / lag cluster asking peers */
	unsigned long id;
	unsigned uid;
	int pid;
	unsigned errors;
	bool busy;			/* a request is being answered */
	bool waiting;			/* in ctl->waiting */
	bool dispatching;		/* run_command on the stack */
	bool eof;			/* the peer closed its side */
	bool closing;			/* free once the output is flushed */
	bool shut_wr;			/* closing: our side is shut down */
	size_t discarded;		/* closing: input bytes thrown away */
	struct ctl_request req;		/* the request being answered */
};

struct ctl_cmd {
	const char *w1, *w2;		/* command words; w2 NULL: one word */
	unsigned nargs;			/* positional arguments after them */
	const char *opts[4];		/* allowed option keys */
	bool writes;			/* takes the writer slot */
	const char *syntax;
	void (*run)(struct ctl_conn *c, const char *const *args);
};

static char errbuf[512];		/* control_start's error message */

static void conn_process(struct ctl_conn *c);
static void conn_settle(struct ctl_conn *c);
static void run_waiting(struct control *ctl);

/* ---- answering ---------------------------------------------------------- */

static struct evbuffer *conn_out(struct ctl_conn *c)
{
	return bufferevent_get_output(c->bev);
}

static void reply_ok(struct ctl_conn *c, const char *body, size_t len)
{
	struct evbuffer *out = conn_out(c);

	if (ctl_response_begin(out, NULL, NULL) < 0 || ctl_response_body(out, body, len) < 0 ||
	    ctl_response_end(out) < 0) {
		log_err("control.oom", "conn=%lu", c->id);
		c->closing = true;
	}
}

static void reply_ok_buffer(struct ctl_conn *c, struct evbuffer *body)
{
	size_t len = evbuffer_get_length(body);
	const char *data = len > 0 ? (const char *)evbuffer_pullup(body, -1) : "";

	if (data == NULL) {
		log_err("control.oom", "conn=%lu", c->id);
		c->closing = true;
		return;
	}
	reply_ok(c, data, len);
}

static void reply_ok_text(struct ctl_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void reply_ok_text(struct ctl_conn *c, const char *fmt, ...)
{
	char body[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	reply_ok(c, body, (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1);
}

static void reply_err(struct ctl_conn *c, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void reply_err(struct ctl_conn *c, const char *code, const char *fmt, ...)
{
	struct evbuffer *out = conn_out(c);
	char msg[CTL_STATUS_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ctl_response_begin(out, code, msg) < 0 || ctl_response_end(out) < 0) {
		log_err("control.oom", "conn=%lu", c->id);
		c->closing = true;
	}
}

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
		reply_err(c, CTL_E_NOTFOUND, "no such user %s", name);
	else if (err == STORE_EXISTS)
		reply_err(c, CTL_E_EXISTS, "user %s already exists", name);
	else
		reply_err(c, store_code(err), "store: %s", store_strerror(err));
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
			reply_ok_text(c, "user %s added (id %" PRIu32 ", %s)", op->user.name, u.id,
				      op->summary);
		} else if (op->kind == OP_ADD) {
			reply_ok_text(c, "user %s added (%s)", op->user.name, op->summary);
		} else if (op->kind == OP_DEL) {
			reply_ok_text(c, "user %s deleted", op->user.name);
		} else if (op->kind == OP_PASSWD) {
			reply_ok_text(c, "password of %s changed", op->user.name);
		} else {
			reply_ok_text(c, "user %s changed (%s)", op->user.name, op->summary);
		}
		c->busy = false;
		if (!c->dispatching) {
			conn_process(c);
			conn_settle(c);
		}
	}
	explicit_bzero(op->user.pwhash, sizeof(op->user.pwhash));
	free(op);
	if (ctl != NULL)
		run_waiting(ctl);
}

/* Start a store write for c.  The answer comes from op_done. */
static void op_start(struct ctl_conn *c, enum op_kind kind, const struct store_user *u,
		     const char *summary)
{
	struct control *ctl = c->ctl;
	struct ctl_op *op = calloc(1, sizeof(*op));

	if (op == NULL) {
		reply_err(c, CTL_E_INTERNAL, "out of memory");
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

static bool check_name(struct ctl_conn *c, const char *name)
{
	if (dir_valid_username(name))
		return true;
	reply_err(c, CTL_E_INVAL, "invalid user name (1-63 of a-z 0-9 . _ -, starting with a letter or digit)");
	return false;
}

static bool check_hash(struct ctl_conn *c, const char *hash)
{
	if (strlen(hash) < STORE_HASH_MAX && dir_hash_acceptable(hash))
		return true;
	reply_err(c, CTL_E_INVAL, "password hash not acceptable (want $y$, $7$, $6$, $5$ or $2b$)");
	return false;
}

static bool check_home(struct ctl_conn *c, const char *home)
{
	if (ctl_valid_pop(home) && strlen(home) < STORE_POP_MAX)
		return true;
	reply_err(c, CTL_E_INVAL, "invalid home POP id (1-63 of A-Z a-z 0-9 . _ -)");
	return false;
}

static bool check_quota(struct ctl_conn *c, const char *s, uint64_t *q)
{
	if (ctl_parse_size(s, q))
		return true;
	reply_err(c, CTL_E_INVAL, "invalid quota (bytes, K/M/G/T suffix, or \"unlimited\")");
	return false;
}

static void cmd_user_add(struct ctl_conn *c, const char *const *args)
{
	const struct config *cfg = c->ctl->n->cfg;
	const char *hash = ctl_request_opt(&c->req, "hash");
	const char *home = ctl_request_opt(&c->req, "home");
	const char *quota = ctl_request_opt(&c->req, "quota");
	struct store_user u;
	char summary[128];

	memset(&u, 0, sizeof(u));
	if (!check_name(c, args[0]))
		return;
	if (hash == NULL) {
		reply_err(c, CTL_E_USAGE, "user add needs hash=HASH");
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

static void cmd_user_del(struct ctl_conn *c, const char *const *args)
{
	struct store_user u;

	memset(&u, 0, sizeof(u));
	if (!check_name(c, args[0]))
		return;
	snprintf(u.name, sizeof(u.name), "%s", args[0]);
	op_start(c, OP_DEL, &u, "");
}

/* Read the record to change; false (answered) if that fails. */
static bool load_user(struct ctl_conn *c, const char *name, struct store_user *u)
{
	int rc;

	if (!check_name(c, name))
		return false;
	rc = store_user_get(c->ctl->n->store, name, u);
	if (rc != STORE_OK) {
		reply_store_err(c, rc, name);
		return false;
	}
	return true;
}

static void cmd_user_passwd(struct ctl_conn *c, const char *const *args)
{
	const char *hash = ctl_request_opt(&c->req, "hash");
	struct store_user u;

	if (hash == NULL) {
		reply_err(c, CTL_E_USAGE, "user passwd needs hash=HASH");
		return;
	}
	if (!check_hash(c, hash) || !load_user(c, args[0], &u))
		return;
	snprintf(u.pwhash, sizeof(u.pwhash), "%s", hash);
	op_start(c, OP_PASSWD, &u, "");
	explicit_bzero(u.pwhash, sizeof(u.pwhash));
}

static void cmd_user_set(struct ctl_conn *c, const char *const *args)
{
	const char *home = ctl_request_opt(&c->req, "home");
	const char *quota = ctl_request_opt(&c->req, "quota");
	const char *enabled = ctl_request_opt(&c->req, "enabled");
	struct store_user u;
	uint64_t q = 0;
	char qbuf[32] = "";
	char summary[128];

	if (home == NULL && quota == NULL && enabled == NULL) {
		reply_err(c, CTL_E_USAGE, "user set needs home=, quota= or enabled=");
		return;
	}
	if (home != NULL && !check_home(c, home))
		return;
	if (quota != NULL && !check_quota(c, quota, &q))
		return;
	if (enabled != NULL && strcmp(enabled, "yes") != 0 && strcmp(enabled, "no") != 0) {
		reply_err(c, CTL_E_INVAL, "enabled= takes yes or no");
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

static void cmd_user_list(struct ctl_conn *c, const char *const *args)
{
	struct list_ctx lc = { .b = evbuffer_new(), .failed = false };
	int rc;

	if (lc.b == NULL) {
		reply_err(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	evbuffer_add_printf(lc.b, "name\tid\thome\tquota\tused\tmessages\tenabled\n");
	rc = store_user_foreach(c->ctl->n->store, list_row, &lc);
	if (lc.failed)
		reply_err(c, CTL_E_INTERNAL, "out of memory");
	else if (rc < 0)
		reply_store_err(c, rc, "");
	else
		reply_ok_buffer(c, lc.b);
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

static void cmd_user_show(struct ctl_conn *c, const char *const *args)
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
		reply_err(c, CTL_E_INTERNAL, "out of memory");
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
	reply_ok_buffer(c, b);
	evbuffer_free(b);
}

static void status_text(struct node *n, struct evbuffer *b)
{
	const struct metrics *m = &n->metrics;
	static const enum listen_proto protos[] = {
		PROTO_LMTP, PROTO_POP3, PROTO_POP3S, PROTO_IMAP, PROTO_IMAPS,
	};
	int64_t up = (int64_t)time(NULL) - n->started;
	uint64_t total = 0, ok = 0, failed = 0;
	struct store_stats ss;

	if (up < 0)
		up = 0;
	evbuffer_add_printf(b, "node:        %s%s\n", n->cfg->node_id,
			    n->cfg->dev_mode ? " (dev mode)" : "");
	evbuffer_add_printf(b, "version:     %s\n", POPNODE_VERSION);
	evbuffer_add_printf(b, "uptime:      %" PRId64 "d %02d:%02d:%02d\n", up / 86400,
			    (int)(up % 86400 / 3600), (int)(up % 3600 / 60), (int)(up % 60));
	evbuffer_add_printf(b, "state:       %s\n", n->stopping ? "stopping" : "running");
	evbuffer_add_printf(b, "sessions:   ");
	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
		evbuffer_add_printf(b, " %s %" PRIu64 "%s", config_proto_name(protos[i]),
				    m->sessions_active[protos[i]],
				    i + 1 < sizeof(protos) / sizeof(protos[0]) ? "," : "");
		total += m->sessions_active[protos[i]];
	}
	evbuffer_add_printf(b, " (total %" PRIu64 ", refused %" PRIu64 ")\n", total,
			    m->sessions_refused);
	evbuffer_add_printf(b, "deliveries:  %" PRIu64 " (%" PRIu64 " bytes), %" PRIu64 " refused\n",
			    m->deliveries, m->delivery_bytes, m->delivery_failures);
	for (size_t i = 0; i < PROTO_COUNT; i++) {
		ok += m->auth_success[i];
		failed += m->auth_failures[i];
	}
	evbuffer_add_printf(b, "logins:      %" PRIu64 " ok, %" PRIu64 " failed\n", ok, failed);
	if (n->store != NULL) {
		store_stats(n->store, &ss);
		evbuffer_add_printf(b,
				    "store:       %" PRIu64 " users, %" PRIu64 " bodies, %" PRIu64
				    " of %" PRIu64 " bytes used\n"
				    "commits:     %" PRIu64 " (%" PRIu64 " ops), %u pending\n",
				    ss.users, ss.bodies, ss.used_bytes, ss.map_size, ss.commits,
				    ss.ops, ss.pending);
	}
	for (size_t i = 0; i < n->cfg->n_listens; i++) {
		const struct listen_conf *lc = &n->cfg->listens[i];
		const char *tls = lc->tls == LTLS_IMPLICIT ? " tls"
				  : lc->tls == LTLS_STARTTLS ? " starttls" : "";

		evbuffer_add_printf(b, "%s%-5s ", i == 0 ? "listeners:   " : "             ",
				    config_proto_name(lc->proto));
		if (lc->is_unix)
			evbuffer_add_printf(b, "unix:%s%s\n", lc->path, tls);
		else if (strchr(lc->host, ':') != NULL)
			evbuffer_add_printf(b, "[%s]:%u%s\n", lc->host, (unsigned)lc->port, tls);
		else
			evbuffer_add_printf(b, "%s:%u%s\n", lc->host, (unsigned)lc->port, tls);
	}
	if (n->cfg->n_peers == 0) {
		evbuffer_add_printf(b, "peers:       none configured\n");
	} else {
		struct link_peer_info *peers;
		size_t n_peers, n_up = 0;

		if (status_collect_peers(n, &peers, &n_peers) == 0) {
			for (size_t i = 0; i < n_peers; i++)
				n_up += peers[i].state == LINK_PEER_UP;
			free(peers);
		}
		evbuffer_add_printf(b, "peers:       %zu configured, %zu up (popctl peers)\n",
				    n->cfg->n_peers, n_up);
	}
	repl_ack_render_text(n, b);
	replicator_render_serving_text(n, b);
	evbuffer_add_printf(b, "drained:     %s\n", n->drained ? "yes (popctl undrain ends it)" : "no");
	if (n->cfg->n_anycast == 0)
		evbuffer_add_printf(b, "anycast:     not configured\n");
	else if (!n->anycast_known)
		evbuffer_add_printf(b, "anycast:     %s\n", n->anycast_supervised
				    ? "waiting for the supervisor" : "not supervised (no announcement)");
	else
		evbuffer_add_printf(b, "anycast:     %s on %s (%zu prefixes), BIRD %s: %s\n",
				    n->anycast_announced ? "announced" : "withdrawn",
				    n->cfg->anycast_interface, n->cfg->n_anycast,
				    n->bird_up ? "up" : "down", n->anycast_reason);
	if (n->cfg->n_anycast > 0 && n->anycast_checks[0] != '\0')
		evbuffer_add_printf(b, "failing:     %s\n", n->anycast_checks);
}

/* Renders one answer into b: 0, or -1 out of memory. */
typedef int render_fn(struct node *n, struct evbuffer *b);

/* Answer a command that takes format=text|json with what text or json
 * renders. */
static void reply_format(struct ctl_conn *c, render_fn *text, render_fn *json)
{
	const char *format = ctl_request_opt(&c->req, "format");
	bool as_json = format != NULL && strcmp(format, "json") == 0;
	struct evbuffer *b;

	if (format != NULL && !as_json && strcmp(format, "text") != 0) {
		reply_err(c, CTL_E_INVAL, "format= takes text or json");
		return;
	}
	b = evbuffer_new();
	if (b == NULL || (as_json ? json : text)(c->ctl->n, b) < 0) {
		if (b != NULL)
			evbuffer_free(b);
		reply_err(c, CTL_E_INTERNAL, "out of memory");
		return;
	}
	reply_ok_buffer(c, b);
	evbuffer_free(b);
}

static int status_as_text(struct node *n, struct evbuffer *b)
{
	status_text(n, b);
	return 0;
}

static int status_as_json(struct node *n, struct evbuffer *b)
{
	status_render_json(n, b);
	return 0;
}

static void cmd_status(struct ctl_conn *c, const char *const *args)
{
	reply_format(c, status_as_text, status_as_json);
}

static int peers_render(struct node *n, struct evbuffer *b, bool json)
{
	struct link_peer_info *peers;
	size_t n_peers;

	if (status_collect_peers(n, &peers, &n_peers) < 0)
		return -1;
	if (json) {
		status_render_link_json(b, n->cfg, peers, n_peers, 0);
		evbuffer_add(b, "\n", 1);
	} else {
		status_render_peers(b, peers, n_peers, (int64_t)time(NULL));
	}
	free(peers);
	return 0;
}

static int peers_as_text(struct node *n, struct evbuffer *b) { return peers_render(n, b, false); }
static int peers_as_json(struct node *n, struct evbuffer *b) { return peers_render(n, b, true); }

static void cmd_peers(struct ctl_conn *c, const char *const *args)
{
	reply_format(c, peers_as_text, peers_as_json);
}

static int lag_as_text(struct node *n, struct evbuffer *b)
{
	replicator_render_lag(n, b);
	return 0;
}

static int lag_as_json(struct node *n, struct evbuffer *b)
{
	replicator_render_lag_json(n, b);
	return 0;
}

/* lag [format=json]: replication figures (replicator.h). */
static void cmd_lag(struct ctl_conn *c, const char *const *args)
{
	reply_format(c, lag_as_text, lag_as_json);
}

/* mirror list ORIGIN: the content digest of origin's data here. */
static void cmd_mirror_list(struct ctl_conn *c, const char *const *args)
{
	const char *why = "out of memory";
	struct evbuffer *b;

	if (!ctl_valid_pop(args[0])) {
		reply_err(c, CTL_E_INVAL, "not a POP id");
		return;
	}
	b = evbuffer_new();
	if (b == NULL || replicator_render_content(c->ctl->n, args[0], b, &why) < 0) {
		if (b != NULL)
			evbuffer_free(b);
		reply_err(c, CTL_E_NOTFOUND, why);
		return;
	}
	reply_ok_buffer(c, b);
	evbuffer_free(b);
}

/* ---- questions to other POPs (repl_noc.h) ---------------------------------- */

/* The answer of verify or lag cluster: the connection was busy meanwhile
 * (it reads no further request), and goes on with the next one now. */
static void noc_done(void *arg, struct evbuffer *answer)
{
	struct ctl_conn *c = arg;

	c->noc = NULL;
	if (answer == NULL)
		reply_err(c, CTL_E_INTERNAL, "out of memory");
	else
		reply_ok_buffer(c, answer);
	c->busy = false;
	if (!c->dispatching) {
		conn_process(c);
		conn_settle(c);
	}
}

/* format= as bool json; false (answered) if it is neither text nor json. */
static bool format_json(struct ctl_conn *c, bool *json)
{
	const char *format = ctl_request_opt(&c->req, "format");

	*json = format != NULL && strcmp(format, "json") == 0;
	if (format != NULL && !*json && strcmp(format, "text") != 0) {
		reply_err(c, CTL_E_INVAL, "format= takes text or json");
		return false;
	}
	return true;
}

static void noc_started(struct ctl_conn *c, int err, const char *user)
{
	if (c->noc != NULL) {
		c->busy = true;		/* noc_done answers */
		return;
	}
	if (err == REPL_NOC_ENOUSER) {
		reply_err(c, CTL_E_NOTFOUND, "no such user %s", user);
		return;
	}
	reply_err(c, err == REPL_NOC_ENOUSER ? CTL_E_NOTFOUND : err == REPL_NOC_EINVAL ? CTL_E_INVAL
		  : err == REPL_NOC_ESTOPPING ? CTL_E_SHUTDOWN : err == REPL_NOC_EIO ? CTL_E_IO
		  : CTL_E_INTERNAL, "%s", repl_noc_strerror(err));
}

/* verify USER [format=json]: USER's copies at the home and its mirrors. */
static void cmd_verify(struct ctl_conn *c, const char *const *args)
{
	bool json;
	int err = REPL_NOC_ENOMEM;

	if (!check_name(c, args[0]) || !format_json(c, &json))
		return;
	c->noc = repl_noc_verify(c->ctl->n, args[0], json, noc_done, c, &err);
	noc_started(c, err, args[0]);
}

/* lag cluster [format=json]: every POP's replication to its mirrors. */
static void cmd_lag_cluster(struct ctl_conn *c, const char *const *args)
{
	bool json;
	int err = REPL_NOC_ENOMEM;

	if (!format_json(c, &json))
		return;
	c->noc = repl_noc_lag_cluster(c->ctl->n, json, noc_done, c, &err);
	noc_started(c, err, "");
}

/* drain / undrain: set the state, answer with what is left. */
static void drain_reply(struct ctl_conn *c, bool on)
{
	struct node *n = c->ctl->n;
	char err[300], path[CONFIG_PATH_MAX + 16], body[512];
	int len;

	if (drain_set(n, on, err, sizeof(err)) < 0) {
		reply_err(c, CTL_E_INTERNAL, err);
		return;
	}
	len = snprintf(body, sizeof(body), "drained: %s\nsessions: %u\nfile: %s\n",
		       n->drained ? "yes" : "no", drain_sessions_left(n),
		       drain_path(n, path, sizeof(path)));
	reply_ok(c, body, (size_t)len < sizeof(body) ? (size_t)len : sizeof(body) - 1);
}

static void cmd_drain(struct ctl_conn *c, const char *const *args)
{
	drain_reply(c, true);
}

static void cmd_undrain(struct ctl_conn *c, const char *const *args)
{
	drain_reply(c, false);
}

static void cmd_help(struct ctl_conn *c, const char *const *args);

static const struct ctl_cmd commands[] = {
	{ "user", "add", 1, { "hash", "home", "quota" }, true,
	  "user add NAME hash=HASH [home=POP] [quota=SIZE]", cmd_user_add },
	{ "user", "del", 1, { NULL }, true, "user del NAME", cmd_user_del },
	{ "user", "passwd", 1, { "hash" }, true, "user passwd NAME hash=HASH", cmd_user_passwd },
	{ "user", "set", 1, { "quota", "home", "enabled" }, true,
	  "user set NAME [quota=SIZE] [home=POP] [enabled=yes|no]", cmd_user_set },
	{ "user", "list", 0, { NULL }, false, "user list", cmd_user_list },
	{ "user", "show", 1, { NULL }, false, "user show NAME", cmd_user_show },
	{ "status", NULL, 0, { "format" }, false, "status [format=text|json]", cmd_status },
	{ "peers", NULL, 0, { "format" }, false, "peers [format=text|json]", cmd_peers },
	{ "lag", "cluster", 0, { "format" }, false, "lag cluster [format=text|json]",
	  cmd_lag_cluster },
	{ "lag", NULL, 0, { "format" }, false, "lag [format=text|json]", cmd_lag },
	{ "verify", NULL, 1, { "format" }, false, "verify USER [format=text|json]", cmd_verify },
	{ "mirror", "list", 1, { NULL }, false, "mirror list ORIGIN", cmd_mirror_list },
	{ "drain", NULL, 0, { NULL }, false, "drain", cmd_drain },
	{ "undrain", NULL, 0, { NULL }, false, "undrain", cmd_undrain },
	{ "help", NULL, 0, { NULL }, false, "help", cmd_help },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void cmd_help(struct ctl_conn *c, const char *const *args)
{
	char body[1024];
	size_t len = 0;

	for (size_t i = 0; i < N_COMMANDS && len < sizeof(body); i++)
		len += (size_t)snprintf(body + len, sizeof(body) - len, "%s\n", commands[i].syntax);
	reply_ok(c, body, len < sizeof(body) ? len : sizeof(body) - 1);
}

static const struct ctl_cmd *find_command(const struct ctl_request *req, bool *word_known_r)
{
	*word_known_r = false;
	for (size_t i = 0; i < N_COMMANDS; i++) {
		const struct ctl_cmd *cmd = &commands[i];

		if (strcmp(req->args[0], cmd->w1) != 0)
			continue;
		*word_known_r = true;
		if (cmd->w2 == NULL)
			return cmd;
		if (req->n_args >= 2 && strcmp(req->args[1], cmd->w2) == 0)
			return cmd;
	}
	return NULL;
}

static bool opt_allowed(const struct ctl_cmd *cmd, const char *key)
{
	for (size_t i = 0; i < sizeof(cmd->opts) / sizeof(cmd->opts[0]) && cmd->opts[i]; i++) {
		if (strcmp(cmd->opts[i], key) == 0)
			return true;
	}
	return false;
}

/* Answer c->req, at once or (a write) from the store callback. */
static void run_command(struct ctl_conn *c)
{
	const struct ctl_request *req = &c->req;
	unsigned words;
	bool known;
	const struct ctl_cmd *cmd = find_command(req, &known);

	if (cmd == NULL) {
		if (known)
			reply_err(c, CTL_E_UNKNOWN, "unknown %s command (try \"help\")", req->args[0]);
		else
			reply_err(c, CTL_E_UNKNOWN, "unknown command (try \"help\")");
		return;
	}
	words = cmd->w2 != NULL ? 2 : 1;
	if (req->n_args != words + cmd->nargs) {
		reply_err(c, CTL_E_USAGE, "usage: %s", cmd->syntax);
		return;
	}
	for (size_t i = 0; i < req->n_opts; i++) {
		if (!opt_allowed(cmd, req->opts[i].key)) {
			reply_err(c, CTL_E_USAGE, "unknown option %s; usage: %s", req->opts[i].key,
				  cmd->syntax);
			return;
		}
	}
	if (cmd->writes && c->ctl->n->stopping) {
		reply_err(c, CTL_E_SHUTDOWN, "popnode is stopping");
		return;
	}
	log_debug("control.request", "conn=%lu peer_uid=%u cmd=\"%s%s%s\"", c->id, c->uid, cmd->w1,
		  cmd->w2 != NULL ? " " : "", cmd->w2 != NULL ? cmd->w2 : "");
	c->dispatching = true;
	cmd->run(c, req->args + words);
	c->dispatching = false;
}

static bool command_writes(const struct ctl_request *req)
{
	bool known;
	const struct ctl_cmd *cmd = find_command(req, &known);

	return cmd != NULL && cmd->writes;
}

/* Give the writer slot to waiting connections, in order, while free. */
static void run_waiting(struct control *ctl)
{
	if (ctl->draining_waiting)
		return;
	ctl->draining_waiting = true;
	while (ctl->writing == NULL && !TAILQ_EMPTY(&ctl->waiting)) {
		struct ctl_conn *c = TAILQ_FIRST(&ctl->waiting);

		TAILQ_REMOVE(&ctl->waiting, c, wait_entry);
		c->waiting = false;
		c->busy = false;
		run_command(c);
		if (c->op == NULL) {
			/* answered at once: go on with its next request */
			conn_process(c);
			conn_settle(c);
		}
	}
	ctl->draining_waiting = false;
}

/* ---- connections -------------------------------------------------------- */

static void conn_free(struct ctl_conn *c)
{
	struct control *ctl = c->ctl;

	if (c->waiting)
		TAILQ_REMOVE(&ctl->waiting, c, wait_entry);
	if (c->op != NULL)
		c->op->conn = NULL;
	repl_noc_cancel(&c->noc);
	TAILQ_REMOVE(&ctl->conns, c, entry);
	ctl->n_conns--;
	bufferevent_free(c->bev);
	log_debug("control.close", "conn=%lu", c->id);
	free(c);
}

/* Hang up after the answers queued so far.  We go on reading (and
 * discarding) meanwhile: closing a Unix socket that still holds unread
 * input resets the connection, and the peer may then lose our last
 * answer (typically the error saying why we hang up). */
static void conn_close(struct ctl_conn *c)
{
	c->closing = true;
	if (!c->eof)
		bufferevent_enable(c->bev, EV_READ);
}

/* For a closing connection, once everything is written: free it if the
 * peer has closed too, else half-close and wait (LINGER_SECONDS at
 * most) for the peer's EOF. */
static void conn_settle(struct ctl_conn *c)
{
	if (!c->closing || c->busy || evbuffer_get_length(conn_out(c)) > 0)
		return;
	if (c->eof || c->discarded > LINGER_BYTES) {
		conn_free(c);
		return;
	}
	if (!c->shut_wr) {
		struct timeval linger = { .tv_sec = LINGER_SECONDS, .tv_usec = 0 };

		shutdown(bufferevent_getfd(c->bev), SHUT_WR);
		c->shut_wr = true;
		bufferevent_set_timeouts(c->bev, &linger, NULL);
	}
}

/* Answer one request line. */
static void conn_line(struct ctl_conn *c, const char *line, size_t len)
{
	const char *error;

	if (ctl_request_parse(&c->req, line, len, &error) < 0) {
		reply_err(c, CTL_E_PROTO, "%s", error);
		if (++c->errors >= ERRORS_MAX) {
			log_warn("control.errors", "conn=%lu peer_uid=%u errors=%u", c->id, c->uid,
				 c->errors);
			conn_close(c);
		}
		return;
	}
	if (command_writes(&c->req) &&
	    (c->ctl->writing != NULL || !TAILQ_EMPTY(&c->ctl->waiting))) {
		c->busy = true;
		c->waiting = true;
		TAILQ_INSERT_TAIL(&c->ctl->waiting, c, wait_entry);
		return;
	}
	run_command(c);
}

/* Answer the complete request lines in the input, one at a time. */
static void conn_process(struct ctl_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	char line[CTL_REQUEST_MAX];

	while (!c->busy && !c->closing) {
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
		size_t avail = evbuffer_get_length(in);
		size_t len, skip;

		if (p.pos >= 0) {
			len = (size_t)p.pos;
			skip = 1;
		} else if (c->eof && avail > 0) {
			len = avail;		/* a last request without its LF */
			skip = 0;
		} else {
			if (avail >= CTL_REQUEST_MAX) {
				reply_err(c, CTL_E_TOOLONG, "request longer than %d bytes",
					  CTL_REQUEST_MAX);
				conn_close(c);
			} else if (c->eof) {
				conn_close(c);
			}
			break;
		}
		if (len >= CTL_REQUEST_MAX) {
			reply_err(c, CTL_E_TOOLONG, "request longer than %d bytes", CTL_REQUEST_MAX);
			conn_close(c);
			break;
		}
		evbuffer_remove(in, line, len);
		evbuffer_drain(in, skip);
		conn_line(c, line, len);
	}
	if (c->closing) {
		c->discarded += evbuffer_get_length(in);
		evbuffer_drain(in, evbuffer_get_length(in));
	}
	/* A busy connection does not read: it must not pile up requests,
	 * and its read timeout must not run while we work.  A closing one
	 * reads to discard. */
	if (c->eof || (c->busy && !c->closing))
		bufferevent_disable(c->bev, EV_READ);
	else
		bufferevent_enable(c->bev, EV_READ);
	explicit_bzero(line, sizeof(line));
}

static void conn_readcb(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *c = arg;

	conn_process(c);
	conn_settle(c);
}

static void conn_writecb(struct bufferevent *bev, void *arg)
{
	conn_settle(arg);
}

static void conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_conn *c = arg;

	if (what & BEV_EVENT_EOF) {
		c->eof = true;
		conn_process(c);
		conn_settle(c);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && !c->closing)
		log_info("control.timeout", "conn=%lu peer_uid=%u", c->id, c->uid);
	else if (what & BEV_EVENT_ERROR)
		log_debug("control.error", "conn=%lu error=\"%s\"", c->id, strerror(errno));
	conn_free(c);
}

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
		      int socklen, void *arg)
{
	struct control *ctl = arg;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct ctl_conn *c;
	struct timeval tv = { .tv_sec = IDLE_TIMEOUT, .tv_usec = 0 };

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		log_err("control.peercred", "error=\"%s\"", strerror(errno));
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		log_err("control.oom", "what=connection");
		close(fd);
		return;
	}
	c->bev = bufferevent_socket_new(ctl->n->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		log_err("control.oom", "what=bufferevent");
		close(fd);
		free(c);
		return;
	}
	c->ctl = ctl;
	c->id = ++ctl->next_id;
	c->uid = (unsigned)cred.uid;
	c->pid = (int)cred.pid;
	TAILQ_INSERT_TAIL(&ctl->conns, c, entry);
	ctl->n_conns++;
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, 2 * CTL_REQUEST_MAX);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_WRITE);

	/* geteuid() now, not at start: the daemon may have dropped root */
	if (cred.uid != 0 && cred.uid != geteuid()) {
		log_warn("control.denied", "conn=%lu peer_uid=%u peer_pid=%d", c->id, c->uid, c->pid);
		reply_err(c, CTL_E_DENIED, "uid %u may not use this socket", c->uid);
		conn_close(c);
		return;
	}
	if (ctl->n_conns > CONN_MAX) {
		log_warn("control.busy", "conn=%lu peer_uid=%u conns=%u", c->id, c->uid, ctl->n_conns);
		reply_err(c, CTL_E_BUSY, "too many control connections, try again");
		conn_close(c);
		return;
	}
	log_debug("control.accept", "conn=%lu peer_uid=%u peer_pid=%d", c->id, c->uid, c->pid);
	bufferevent_enable(c->bev, EV_READ);
}

static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct control *ctl = arg;

	evconnlistener_enable(ctl->lev);
}

/* accept() failed (EMFILE, ENOBUFS...): pause instead of spinning. */
static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct control *ctl = arg;
	struct timeval tv = { .tv_sec = 0, .tv_usec = ACCEPT_PAUSE_MS * 1000 };

	log_err("control.accept", "error=\"%s\" pause_ms=%d", strerror(errno), ACCEPT_PAUSE_MS);
	evconnlistener_disable(lev);
	evtimer_add(ctl->accept_timer, &tv);
}

/* ---- the listening socket ----------------------------------------------- */

static const char *set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	return errbuf;
}

/* The reason only: the caller names the socket. */
static int remove_stale(const struct sockaddr_un *sun, const char **error_r)
{
	char why[200];

	if (unixsock_remove_stale(sun->sun_path, why, sizeof(why)) < 0) {
		*error_r = set_error("%s", why);
		return -1;
	}
	return 0;
}

static int listen_socket(struct control *ctl, const char *path, const char **error_r)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t old;
	int fd, rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (path[0] == '\0' || strlen(path) >= sizeof(sun.sun_path)) {
		*error_r = set_error("path is empty or longer than %zu bytes",
				     sizeof(sun.sun_path) - 1);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (remove_stale(&sun, error_r) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = set_error("socket: %s", strerror(errno));
		return -1;
	}
	old = umask(0177);
	rc = bind(fd, (const struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0) {
		*error_r = set_error("bind: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (chmod(sun.sun_path, 0600) < 0 || stat(sun.sun_path, &st) < 0) {
		*error_r = set_error("chmod: %s", strerror(errno));
		unlink(sun.sun_path);
		close(fd);
		return -1;
	}
	ctl->dev = st.st_dev;
	ctl->ino = st.st_ino;
	snprintf(ctl->path, sizeof(ctl->path), "%s", sun.sun_path);
	return fd;
}

/* Unlink the socket only if it is still the one we created. */
static void unlink_ours(struct control *ctl)
{
	struct stat st;

	if (ctl->path[0] != '\0' && stat(ctl->path, &st) == 0 && st.st_dev == ctl->dev &&
	    st.st_ino == ctl->ino)
		unlink(ctl->path);
}

struct control *control_start(struct node *n, const char *path, const char **error_r)
{
	struct control *ctl = calloc(1, sizeof(*ctl));
	int fd;

	if (ctl == NULL) {
		*error_r = "control: out of memory";
		return NULL;
	}
	ctl->n = n;
	TAILQ_INIT(&ctl->conns);
	TAILQ_INIT(&ctl->waiting);
	fd = listen_socket(ctl, path, error_r);
	if (fd < 0) {
		free(ctl);
		return NULL;
	}
	ctl->accept_timer = evtimer_new(n->base, accept_resume, ctl);
	ctl->lev = evconnlistener_new(n->base, accept_cb, ctl,
				      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16, fd);
	if (ctl->accept_timer == NULL || ctl->lev == NULL) {
		*error_r = set_error("listen: %s", strerror(errno));
		if (ctl->lev == NULL)
			close(fd);
		control_stop(&ctl);
		return NULL;
	}
	evconnlistener_set_error_cb(ctl->lev, accept_error_cb);
	log_info("control.listen", "path=%s mode=0600", path);
	return ctl;
}

void control_stop(struct control **cp)
{
	struct control *ctl = cp != NULL ? *cp : NULL;
	struct ctl_conn *c;

	if (ctl == NULL)
		return;
	*cp = NULL;
	if (ctl->lev != NULL)
		evconnlistener_free(ctl->lev);
	if (ctl->accept_timer != NULL)
		event_free(ctl->accept_timer);
	/* the op in flight (if any) completes without us */
	if (ctl->writing != NULL)
		ctl->writing->ctl = NULL;
	while ((c = TAILQ_FIRST(&ctl->conns)) != NULL)
		conn_free(c);
	unlink_ours(ctl);
	free(ctl);
}
