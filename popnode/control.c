/*
 * control.c - the Unix control socket: popctl's way in (users, status,
 * peers).  Here: the listening socket, the connections, reading requests
 * and writing answers; the commands are in control_cmd.c (control_int.h).
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
 * libevent callback (ctl_conn_settle), never while a caller up the stack
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "control.h"
#include "control_int.h"
#include "log.h"
#include "unixsock.h"
#include "node.h"
#include "repl_noc.h"

#define CONN_MAX 32		/* concurrent control connections */
#define ERRORS_MAX 10		/* malformed requests before we hang up */
#define IDLE_TIMEOUT 60		/* seconds without a request or progress */
#define ACCEPT_PAUSE_MS 500	/* after an accept error (EMFILE...) */
#define LINGER_SECONDS 2	/* closing: wait this long for the peer's EOF */
#define LINGER_BYTES (64 * 1024) /* closing: discard at most this much input */

static char errbuf[512];		/* control_start's error message */

/* ---- answering ---------------------------------------------------------- */

static struct evbuffer *conn_out(struct ctl_conn *c)
{
	return bufferevent_get_output(c->bev);
}

void ctl_reply_ok(struct ctl_conn *c, const char *body, size_t len)
{
	struct evbuffer *out = conn_out(c);

	if (ctl_response_begin(out, NULL, NULL) < 0 || ctl_response_body(out, body, len) < 0 ||
	    ctl_response_end(out) < 0) {
		log_err("control.oom", "conn=%lu", c->id);
		c->closing = true;
	}
}

void ctl_reply_ok_buffer(struct ctl_conn *c, struct evbuffer *body)
{
	size_t len = evbuffer_get_length(body);
	const char *data = len > 0 ? (const char *)evbuffer_pullup(body, -1) : "";

	if (data == NULL) {
		log_err("control.oom", "conn=%lu", c->id);
		c->closing = true;
		return;
	}
	ctl_reply_ok(c, data, len);
}

void ctl_reply_ok_text(struct ctl_conn *c, const char *fmt, ...)
{
	char body[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	ctl_reply_ok(c, body, (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1);
}

void ctl_reply_err(struct ctl_conn *c, const char *code, const char *fmt, ...)
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
void ctl_conn_settle(struct ctl_conn *c)
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
		ctl_reply_err(c, CTL_E_PROTO, "%s", error);
		if (++c->errors >= ERRORS_MAX) {
			log_warn("control.errors", "conn=%lu peer_uid=%u errors=%u", c->id, c->uid,
				 c->errors);
			conn_close(c);
		}
		return;
	}
	if (ctl_command_writes(&c->req) &&
	    (c->ctl->writing != NULL || !TAILQ_EMPTY(&c->ctl->waiting))) {
		c->busy = true;
		c->waiting = true;
		TAILQ_INSERT_TAIL(&c->ctl->waiting, c, wait_entry);
		return;
	}
	ctl_run_command(c);
}

/* Answer the complete request lines in the input, one at a time. */
void ctl_conn_process(struct ctl_conn *c)
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
				ctl_reply_err(c, CTL_E_TOOLONG, "request longer than %d bytes",
					      CTL_REQUEST_MAX);
				conn_close(c);
			} else if (c->eof) {
				conn_close(c);
			}
			break;
		}
		if (len >= CTL_REQUEST_MAX) {
			ctl_reply_err(c, CTL_E_TOOLONG, "request longer than %d bytes",
				      CTL_REQUEST_MAX);
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

	ctl_conn_process(c);
	ctl_conn_settle(c);
}

static void conn_writecb(struct bufferevent *bev, void *arg)
{
	ctl_conn_settle(arg);
}

static void conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_conn *c = arg;

	if (what & BEV_EVENT_EOF) {
		c->eof = true;
		ctl_conn_process(c);
		ctl_conn_settle(c);
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
		ctl_reply_err(c, CTL_E_DENIED, "uid %u may not use this socket", c->uid);
		conn_close(c);
		return;
	}
	if (ctl->n_conns > CONN_MAX) {
		log_warn("control.busy", "conn=%lu peer_uid=%u conns=%u", c->id, c->uid, ctl->n_conns);
		ctl_reply_err(c, CTL_E_BUSY, "too many control connections, try again");
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
