/*
 * bird_client.c - the BIRD control-socket client: one Unix-socket
 * connection, a queue of commands, one in flight at a time.
 *
 * States:
 *
 *   DISCONNECTED --connect()--> CONNECTING --"0001 " greeting--> READY
 *        ^                          |                              |
 *        +------ timeout, EOF, error, bad bytes, disconnect() -----+
 *
 * One timer serves both the connect (connect + greeting) and the command
 * in flight.  When a connection ends, every command it held moves to the
 * `failed` list with the reason, and a notify event (made active, so it
 * runs from the event loop) reports the state change and then calls each
 * failed command's callback.  Commands given while disconnected take the
 * same path, so callbacks never run inside a bird_client_*() call.
 *
 * Callbacks may free the client: around every callback `gone` points to a
 * flag on the caller's stack that bird_client_free() sets; after the
 * callback the code returns at once if it is set.  They may also close
 * and reopen the connection: `conn_gen` changes on every open and close,
 * and code that holds connection state (the input buffer) stops when it
 * has changed.  The reader is reset when a connection opens, not when it
 * closes, so a reply stays valid in a callback that calls
 * bird_client_disconnect().
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "bird_client.h"

struct bird_cmd {
	TAILQ_ENTRY(bird_cmd) entry;
	bird_reply_cb *cb;
	void *arg;
	enum bird_client_err err;	/* on the failed list: why */
	size_t len;			/* of text, LF included */
	char text[];
};

TAILQ_HEAD(bird_cmd_list, bird_cmd);

struct bird_client {
	struct event_base *base;
	struct sockaddr_un sun;
	socklen_t sun_len;
	unsigned connect_ms, command_ms;
	size_t max_queue;
	bird_state_cb *state_cb;
	void *state_arg;

	enum bird_client_state state;
	unsigned conn_gen;
	int fd;				/* while connect() is in progress */
	struct event *conn_ev;		/* ... waiting for it */
	struct bufferevent *bev;	/* once connected: reading */
	struct event *wr_ev;		/* ... writing, when send() would block */
	size_t out_off;			/* bytes of the command in flight sent */
	struct bird_parser *parser;
	struct event *timer;
	struct event *notify_ev;

	struct bird_cmd_list queue;	/* the first is in flight if inflight */
	size_t n_queue;
	bool inflight;
	struct bird_cmd_list failed;	/* callbacks due from notify_ev */
	size_t n_failed;
	bool down_pending;		/* a DISCONNECTED report is due */
	enum bird_client_err down_err;

	int sys_errno;
	char greeting[128];
	bool *gone;
};

/* ---- callbacks into the caller -------------------------------------------- */

/* Around every callback: bird_client_free() sets *c->gone. */
struct guard {
	bool gone;
	bool *prev;
};

static void guard_enter(struct bird_client *c, struct guard *g)
{
	g->gone = false;
	g->prev = c->gone;
	c->gone = &g->gone;
}

/* True if the client was freed during the callback. */
static bool guard_leave(struct bird_client *c, struct guard *g)
{
	if (g->gone) {
		if (g->prev != NULL)
			*g->prev = true;
		return true;
	}
	c->gone = g->prev;
	return false;
}

static bool call_state(struct bird_client *c, enum bird_client_state st, enum bird_client_err err)
{
	struct guard g;

	if (c->state_cb == NULL)
		return false;
	guard_enter(c, &g);
	c->state_cb(c, st, err, c->state_arg);
	return guard_leave(c, &g);
}

/* Call cmd's callback and free cmd.  True if the client was freed. */
static bool call_reply(struct bird_client *c, struct bird_cmd *cmd, enum bird_client_err err,
		       const struct bird_reply *r)
{
	struct guard g;

	guard_enter(c, &g);
	cmd->cb(c, err, r, cmd->arg);
	free(cmd);
	return guard_leave(c, &g);
}

/* ---- connection lifetime ---------------------------------------------- */

static void read_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static void wr_cb(evutil_socket_t fd, short what, void *arg);

static void arm_timer(struct bird_client *c, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	evtimer_add(c->timer, &tv);
}

/* Close the socket and stop the timer; commands stay where they are. */
static void close_conn(struct bird_client *c)
{
	if (c->conn_ev != NULL) {
		event_free(c->conn_ev);
		c->conn_ev = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->wr_ev != NULL) {
		event_free(c->wr_ev);
		c->wr_ev = NULL;
	}
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	evtimer_del(c->timer);
	c->inflight = false;
	c->conn_gen++;
	c->state = BIRD_CLIENT_DISCONNECTED;
}

/* Move every queued command to the failed list with err. */
static void fail_queue(struct bird_client *c, enum bird_client_err err)
{
	struct bird_cmd *cmd;

	while ((cmd = TAILQ_FIRST(&c->queue)) != NULL) {
		TAILQ_REMOVE(&c->queue, cmd, entry);
		cmd->err = err;
		TAILQ_INSERT_TAIL(&c->failed, cmd, entry);
		c->n_failed++;
	}
	c->n_queue = 0;
	if (c->n_failed > 0)
		event_active(c->notify_ev, EV_READ, 0);
}

/* The connection (or the attempt) ended with err. */
static void conn_fail(struct bird_client *c, enum bird_client_err err, int sys_errno)
{
	close_conn(c);
	c->sys_errno = sys_errno;
	fail_queue(c, err);
	c->down_pending = true;
	c->down_err = err;
	event_active(c->notify_ev, EV_READ, 0);
}

static enum bird_client_err connect_err(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		return BIRD_CLIENT_NO_SOCKET;
	case ECONNREFUSED:
		return BIRD_CLIENT_NOT_RUNNING;
	case EAGAIN:
		return BIRD_CLIENT_BUSY;
	case ENOMEM:
	case ENOBUFS:
		return BIRD_CLIENT_NOMEM;
	default:
		return BIRD_CLIENT_CONNECT;
	}
}

/* connect() completed on fd: wrap it and wait for the greeting. */
static void established(struct bird_client *c, int fd)
{
	c->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		conn_fail(c, BIRD_CLIENT_NOMEM, ENOMEM);
		return;
	}
	bird_parser_reset(c->parser);
	bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
	c->wr_ev = event_new(c->base, fd, EV_WRITE, wr_cb, c);
	if (c->wr_ev == NULL || bufferevent_enable(c->bev, EV_READ) < 0) {
		conn_fail(c, BIRD_CLIENT_NOMEM, ENOMEM);
		return;
	}
}

static void conn_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bird_client *c = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	event_free(c->conn_ev);
	c->conn_ev = NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		conn_fail(c, connect_err(err), err);
		return;
	}
	c->fd = -1;
	established(c, fd);
}

int bird_client_connect(struct bird_client *c)
{
	int fd;

	if (c->state != BIRD_CLIENT_DISCONNECTED)
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	c->sys_errno = 0;
	c->greeting[0] = '\0';
	c->state = BIRD_CLIENT_CONNECTING;
	c->conn_gen++;
	arm_timer(c, c->connect_ms);
	if (connect(fd, (struct sockaddr *)&c->sun, c->sun_len) == 0) {
		established(c, fd);
		return 0;
	}
	if (errno == EINPROGRESS) {
		c->fd = fd;
		c->conn_ev = event_new(c->base, fd, EV_WRITE, conn_ev_cb, c);
		if (c->conn_ev == NULL || event_add(c->conn_ev, NULL) < 0)
			conn_fail(c, BIRD_CLIENT_NOMEM, ENOMEM);
		return 0;
	}
	{
		int e = errno;

		close(fd);
		conn_fail(c, connect_err(e), e);
	}
	return 0;
}

void bird_client_disconnect(struct bird_client *c)
{
	if (c->state == BIRD_CLIENT_DISCONNECTED)
		return;
	close_conn(c);
	fail_queue(c, BIRD_CLIENT_CLOSED);
}

/* ---- commands ------------------------------------------------------------ */

/* Send what is left of the command in flight.  send() with MSG_NOSIGNAL
 * rather than the bufferevent's write: a BIRD gone away must not raise
 * SIGPIPE in the (privileged) caller, whatever its signal dispositions.
 * One command is at most BIRD_CMD_MAX + 1 bytes and the previous reply
 * has ended, so it nearly always goes at once; otherwise wr_ev waits. */
static void flush_cmd(struct bird_client *c)
{
	struct bird_cmd *cmd = TAILQ_FIRST(&c->queue);
	int fd = (int)bufferevent_getfd(c->bev);

	while (c->out_off < cmd->len) {
		ssize_t n = send(fd, cmd->text + c->out_off, cmd->len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			c->out_off += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			event_add(c->wr_ev, NULL);
			return;
		} else {
			conn_fail(c, BIRD_CLIENT_LOST, n < 0 ? errno : 0);
			return;
		}
	}
}

static void wr_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bird_client *c = arg;

	if (c->inflight)
		flush_cmd(c);
}

/* Write the next queued command if none is in flight. */
static void send_next(struct bird_client *c)
{
	if (c->state != BIRD_CLIENT_READY || c->inflight || TAILQ_EMPTY(&c->queue))
		return;
	c->inflight = true;
	c->out_off = 0;
	arm_timer(c, c->command_ms);
	flush_cmd(c);
}

int bird_client_command(struct bird_client *c, const char *text, bird_reply_cb *cb, void *arg)
{
	struct bird_cmd *cmd;
	size_t len;

	if (cb == NULL || !bird_cmd_valid(text) || c->n_queue + c->n_failed >= c->max_queue)
		return -1;
	len = strlen(text);
	cmd = malloc(sizeof(*cmd) + len + 1);
	if (cmd == NULL)
		return -1;
	memcpy(cmd->text, text, len);
	cmd->text[len] = '\n';
	cmd->len = len + 1;
	cmd->cb = cb;
	cmd->arg = arg;
	cmd->err = BIRD_CLIENT_OK;
	if (c->state == BIRD_CLIENT_DISCONNECTED) {
		cmd->err = c->down_pending ? c->down_err : BIRD_CLIENT_NOT_CONNECTED;
		TAILQ_INSERT_TAIL(&c->failed, cmd, entry);
		c->n_failed++;
		event_active(c->notify_ev, EV_READ, 0);
		return 0;
	}
	TAILQ_INSERT_TAIL(&c->queue, cmd, entry);
	c->n_queue++;
	send_next(c);
	return 0;
}

/* ---- events ------------------------------------------------------------ */

/* A reply ended.  False if the caller must stop touching the connection
 * (client freed, connection closed or replaced). */
static bool handle_reply(struct bird_client *c, const struct bird_reply *r)
{
	unsigned gen = c->conn_gen;
	struct bird_cmd *cmd;

	if (c->state == BIRD_CLIENT_CONNECTING) {
		if (r->err != BIRD_PERR_OK || r->code != 1) {
			conn_fail(c, BIRD_CLIENT_GREETING, 0);
			return false;
		}
		snprintf(c->greeting, sizeof(c->greeting), "%s", bird_reply_last_text(r));
		c->state = BIRD_CLIENT_READY;
		evtimer_del(c->timer);
		if (call_state(c, BIRD_CLIENT_READY, BIRD_CLIENT_OK))
			return false;
		if (c->conn_gen != gen)
			return false;
		send_next(c);
		return c->conn_gen == gen;
	}

	if (!c->inflight) {
		conn_fail(c, BIRD_CLIENT_PROTOCOL, 0);
		return false;
	}
	cmd = TAILQ_FIRST(&c->queue);
	TAILQ_REMOVE(&c->queue, cmd, entry);
	c->n_queue--;
	c->inflight = false;
	evtimer_del(c->timer);
	if (call_reply(c, cmd, BIRD_CLIENT_OK, r) || c->conn_gen != gen)
		return false;
	send_next(c);
	return c->conn_gen == gen;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct bird_client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		const struct bird_reply *r;
		enum bird_feed_status st;
		size_t used;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		st = bird_parser_feed(c->parser, v.iov_base, v.iov_len, &used, &r);
		evbuffer_drain(in, used);
		if (st == BIRD_FEED_FATAL) {
			conn_fail(c, BIRD_CLIENT_PROTOCOL, 0);
			return;
		}
		if (st == BIRD_FEED_REPLY && !handle_reply(c, r))
			return;
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct bird_client *c = arg;
	int e = 0;

	if (what & BEV_EVENT_ERROR)
		e = EVUTIL_SOCKET_ERROR();
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_fail(c, BIRD_CLIENT_LOST, e);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bird_client *c = arg;

	if (c->state == BIRD_CLIENT_CONNECTING || c->inflight)
		conn_fail(c, BIRD_CLIENT_TIMEOUT, 0);
}

static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bird_client *c = arg;
	struct bird_cmd_list todo = TAILQ_HEAD_INITIALIZER(todo);
	struct bird_cmd *cmd;

	if (c->down_pending) {
		c->down_pending = false;
		if (call_state(c, BIRD_CLIENT_DISCONNECTED, c->down_err))
			return;
	}
	/* only the commands failed so far: one added by a callback below
	 * waits for the next run */
	TAILQ_CONCAT(&todo, &c->failed, entry);
	c->n_failed = 0;
	while ((cmd = TAILQ_FIRST(&todo)) != NULL) {
		TAILQ_REMOVE(&todo, cmd, entry);
		if (call_reply(c, cmd, cmd->err, NULL)) {
			while ((cmd = TAILQ_FIRST(&todo)) != NULL) {
				TAILQ_REMOVE(&todo, cmd, entry);
				free(cmd);
			}
			return;
		}
	}
}

/* ---- the object --------------------------------------------------------- */

struct bird_client *bird_client_new(struct event_base *base, const struct bird_client_config *cfg,
				    const char **error_r)
{
	struct bird_client *c;
	size_t plen;

	if (cfg->socket_path == NULL || cfg->socket_path[0] == '\0') {
		*error_r = "empty BIRD socket path";
		return NULL;
	}
	plen = strlen(cfg->socket_path);
	if (plen >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		*error_r = "BIRD socket path too long for a Unix socket";
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	c->base = base;
	c->sun.sun_family = AF_UNIX;
	memcpy(c->sun.sun_path, cfg->socket_path, plen + 1);
	c->sun_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
	c->connect_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms
						: BIRD_CLIENT_CONNECT_TIMEOUT_MS;
	c->command_ms = cfg->command_timeout_ms ? cfg->command_timeout_ms
						: BIRD_CLIENT_COMMAND_TIMEOUT_MS;
	c->max_queue = cfg->max_queue ? cfg->max_queue : BIRD_CLIENT_MAX_QUEUE;
	c->state_cb = cfg->state_cb;
	c->state_arg = cfg->state_arg;
	c->state = BIRD_CLIENT_DISCONNECTED;
	c->fd = -1;
	TAILQ_INIT(&c->queue);
	TAILQ_INIT(&c->failed);
	c->parser = bird_parser_new(&cfg->limits);
	c->timer = evtimer_new(base, timer_cb, c);
	c->notify_ev = event_new(base, -1, 0, notify_cb, c);
	if (c->parser == NULL || c->timer == NULL || c->notify_ev == NULL) {
		bird_client_free(&c);
		*error_r = "out of memory";
		return NULL;
	}
	return c;
}

static void free_list(struct bird_cmd_list *l)
{
	struct bird_cmd *cmd;

	while ((cmd = TAILQ_FIRST(l)) != NULL) {
		TAILQ_REMOVE(l, cmd, entry);
		free(cmd);
	}
}

void bird_client_free(struct bird_client **cp)
{
	struct bird_client *c;

	if (cp == NULL || *cp == NULL)
		return;
	c = *cp;
	*cp = NULL;
	if (c->timer != NULL)
		close_conn(c);
	free_list(&c->queue);
	free_list(&c->failed);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->notify_ev != NULL)
		event_free(c->notify_ev);
	bird_parser_free(&c->parser);
	if (c->gone != NULL)
		*c->gone = true;
	free(c);
}

/* ---- queries -------------------------------------------------------------- */

enum bird_client_state bird_client_state(const struct bird_client *c)
{
	return c->state;
}

size_t bird_client_queued(const struct bird_client *c)
{
	return c->n_queue;
}

const char *bird_client_greeting(const struct bird_client *c)
{
	return c->greeting;
}

int bird_client_errno(const struct bird_client *c)
{
	return c->sys_errno;
}

const char *bird_client_strerror(enum bird_client_err err)
{
	switch (err) {
	case BIRD_CLIENT_OK:
		return "ok";
	case BIRD_CLIENT_NO_SOCKET:
		return "BIRD control socket missing";
	case BIRD_CLIENT_NOT_RUNNING:
		return "BIRD not running (control socket refused the connection)";
	case BIRD_CLIENT_BUSY:
		return "BIRD not accepting connections (listen queue full)";
	case BIRD_CLIENT_CONNECT:
		return "cannot connect to BIRD's control socket";
	case BIRD_CLIENT_GREETING:
		return "BIRD's greeting missing or wrong";
	case BIRD_CLIENT_TIMEOUT:
		return "BIRD did not answer in time";
	case BIRD_CLIENT_LOST:
		return "connection to BIRD lost";
	case BIRD_CLIENT_PROTOCOL:
		return "BIRD sent something that is not its control protocol";
	case BIRD_CLIENT_NOT_CONNECTED:
		return "not connected to BIRD";
	case BIRD_CLIENT_CLOSED:
		return "connection to BIRD closed by the caller";
	case BIRD_CLIENT_NOMEM:
		return "out of memory";
	}
	return "unknown error";
}

const char *bird_client_state_str(enum bird_client_state state)
{
	switch (state) {
	case BIRD_CLIENT_DISCONNECTED:
		return "disconnected";
	case BIRD_CLIENT_CONNECTING:
		return "connecting";
	case BIRD_CLIENT_READY:
		return "ready";
	}
	return "?";
}
