/*
 * test_bird_client.c - the BIRD control-socket client (anycast/bird_client.c)
 * against a fake BIRD: a Unix socket served in the same event loop that
 * greets like BIRD 2.0.12 and answers each command line from a script
 * (reply at once or after a delay, in two parts, stay silent, close
 * mid-reply, send garbage or an unsolicited reply).
 *
 * The fake also checks what the client must never do: send a second
 * command before the previous reply ended, or shut down its write side
 * while connected.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "bird_client.h"

/* ---- the fake BIRD ------------------------------------------------------- */

enum action {
	A_REPLY,	/* send reply (after delay_ms) */
	A_SPLIT,	/* send reply, then reply2 after delay_ms */
	A_SILENT,	/* never answer */
	A_CLOSE_AFTER,	/* send reply, then close */
};

struct step {
	const char *cmd;	/* expected command line, without LF */
	enum action act;
	const char *reply;
	const char *reply2;
};

struct fake {
	struct event_base *base;
	char path[108];
	int lfd;
	struct event *accept_ev;
	struct bufferevent *bev;
	int accepts;
	const char *greeting;		/* NULL: never greet */
	bool greet_and_close;		/* greet with write(), close at once */
	unsigned delay_ms;
	const struct step *steps;
	size_t n_steps, next;
	char received[16][128];
	size_t n_received;
	int outstanding;		/* commands read, reply not yet sent */
	int max_outstanding;
	bool wrong_command;
	bool saw_eof;
	struct event *later;		/* delayed reply */
	const char *later_text;
	bool later_close;
};

static struct fake F;

static void fake_close(struct fake *f)
{
	if (f->later != NULL)
		event_del(f->later);
	if (f->bev != NULL) {
		bufferevent_free(f->bev);
		f->bev = NULL;
	}
}

static void fake_send(struct fake *f, const char *text)
{
	assert_non_null(f->bev);
	bufferevent_write(f->bev, text, strlen(text));
}

static void fake_later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;

	if (f->bev == NULL)
		return;
	fake_send(f, f->later_text);
	f->outstanding--;
	if (f->later_close)
		fake_close(f);
}

static void fake_send_later(struct fake *f, const char *text, bool close_after)
{
	struct timeval tv = { 0, (suseconds_t)f->delay_ms * 1000 };

	f->later_text = text;
	f->later_close = close_after;
	event_add(f->later, &tv);
}

static void fake_read_cb(struct bufferevent *bev, void *arg)
{
	struct fake *f = arg;
	char *line;
	size_t n;

	while (f->bev != NULL &&
	       (line = evbuffer_readln(bufferevent_get_input(bev), &n, EVBUFFER_EOL_LF)) != NULL) {
		const struct step *s = f->next < f->n_steps ? &f->steps[f->next++] : NULL;

		if (f->n_received < 16)
			snprintf(f->received[f->n_received++], sizeof(f->received[0]), "%s", line);
		f->outstanding++;
		if (f->outstanding > f->max_outstanding)
			f->max_outstanding = f->outstanding;
		if (s == NULL || strcmp(s->cmd, line) != 0) {
			f->wrong_command = true;
			free(line);
			continue;
		}
		free(line);
		switch (s->act) {
		case A_REPLY:
			if (f->delay_ms == 0) {
				fake_send(f, s->reply);
				f->outstanding--;
			} else {
				fake_send_later(f, s->reply, false);
			}
			break;
		case A_SPLIT:
			fake_send(f, s->reply);
			fake_send_later(f, s->reply2, false);
			break;
		case A_SILENT:
			break;
		case A_CLOSE_AFTER:
			fake_send(f, s->reply);
			fake_close(f);
			break;
		}
	}
}

static void fake_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct fake *f = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		f->saw_eof = true;
		fake_close(f);
	}
}

static void fake_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct fake *f = arg;
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	fake_close(f);
	f->accepts++;
	if (f->greet_and_close) {
		assert_int_equal(write(fd, f->greeting, strlen(f->greeting)),
				 (ssize_t)strlen(f->greeting));
		close(fd);
		return;
	}
	f->saw_eof = false;
	f->bev = bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(f->bev);
	bufferevent_setcb(f->bev, fake_read_cb, NULL, fake_event_cb, f);
	bufferevent_enable(f->bev, EV_READ | EV_WRITE);
	if (f->greeting != NULL)
		fake_send(f, f->greeting);
}

/* Listen on a fresh path (listen false: bind only, so connect() is
 * refused as with a BIRD that died and left its socket). */
static void fake_start(struct fake *f, struct event_base *base, bool listen_too)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	memset(f, 0, sizeof(*f));
	f->base = base;
	f->greeting = "0001 BIRD 2.0.12 ready.\n";
	snprintf(f->path, sizeof(f->path), "/tmp/test_bird_client.%d.sock", (int)getpid());
	unlink(f->path);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	f->later = evtimer_new(base, fake_later_cb, f);
	if (!listen_too)
		return;
	assert_int_equal(listen(f->lfd, 8), 0);
	f->accept_ev = event_new(base, f->lfd, EV_READ | EV_PERSIST, fake_accept_cb, f);
	event_add(f->accept_ev, NULL);
}

static void fake_stop(struct fake *f)
{
	if (f->base == NULL)
		return;
	fake_close(f);
	if (f->accept_ev != NULL)
		event_free(f->accept_ev);
	if (f->later != NULL)
		event_free(f->later);
	close(f->lfd);
	unlink(f->path);
	memset(f, 0, sizeof(*f));
}

/* ---- the client side ------------------------------------------------------- */

struct rec {
	int calls;
	int order;
	enum bird_client_err err;
	char text[512];		/* "code|line|line|..." of the reply */
	size_t n_async;
	enum bird_perr perr;
	bool sync_call;		/* called from inside a bird_client_*() call */
	/* optional actions inside the callback */
	bool free_client;
	bool disconnect;
	const char *submit;	/* a command to give from the callback */
	struct rec *submit_rec;
};

static struct event_base *B;
static struct bird_client *C;
static int order_counter;
static bool in_api;		/* set around bird_client_*() calls made by tests */

static struct {
	int calls;
	enum bird_client_state st[8];
	enum bird_client_err err[8];
	bool free_client;
	bool sync_call;
} S;

static void reply_cb(struct bird_client *c, enum bird_client_err err, const struct bird_reply *r,
		     void *arg)
{
	struct rec *x = arg;

	x->calls++;
	x->order = ++order_counter;
	x->err = err;
	x->sync_call = x->sync_call || in_api;
	x->text[0] = '\0';
	if (r != NULL) {
		size_t o = (size_t)snprintf(x->text, sizeof(x->text), "%04u", r->code);

		for (size_t i = 0; i < r->n_lines && o < sizeof(x->text); i++)
			o += (size_t)snprintf(x->text + o, sizeof(x->text) - o, "|%s",
					      r->lines[i].text);
		x->n_async = r->n_async;
		x->perr = r->err;
	} else {
		assert_int_equal(err != BIRD_CLIENT_OK, true);
	}
	if (x->submit != NULL)
		assert_int_equal(bird_client_command(c, x->submit, reply_cb, x->submit_rec), 0);
	if (x->disconnect)
		bird_client_disconnect(c);
	if (x->free_client) {
		assert_ptr_equal(c, C);
		bird_client_free(&C);
	}
}

static void state_cb(struct bird_client *c, enum bird_client_state st, enum bird_client_err err,
		     void *arg)
{
	if (S.calls < 8) {
		S.st[S.calls] = st;
		S.err[S.calls] = err;
	}
	S.calls++;
	S.sync_call = S.sync_call || in_api;
	if (S.free_client)
		bird_client_free(&C);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the loop until *flag >= want or ms pass. */
static bool run_until(const int *flag, int want, int ms)
{
	int64_t end = now_ms() + ms;

	while (*flag < want) {
		struct timeval tv = { 0, 5000 };

		if (now_ms() > end)
			return false;
		event_base_loopexit(B, &tv);
		event_base_dispatch(B);
	}
	return true;
}

static void run_for(int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(B, &tv);
	event_base_dispatch(B);
}

static struct bird_client *new_client(const char *path, unsigned cmd_ms, unsigned conn_ms,
				      size_t max_queue)
{
	struct bird_client_config cfg = {
		.socket_path = path,
		.command_timeout_ms = cmd_ms,
		.connect_timeout_ms = conn_ms,
		.max_queue = max_queue,
		.state_cb = state_cb,
	};
	const char *err = NULL;
	struct bird_client *c = bird_client_new(B, &cfg, &err);

	assert_non_null(c);
	assert_int_equal(bird_client_state(c), BIRD_CLIENT_DISCONNECTED);
	return c;
}

static int cmd(const char *text, struct rec *r)
{
	int ret;

	in_api = true;
	ret = bird_client_command(C, text, reply_cb, r);
	in_api = false;
	return ret;
}

static void connect_client(void)
{
	in_api = true;
	assert_int_equal(bird_client_connect(C), 0);
	in_api = false;
}

static int setup(void **state)
{
	B = event_base_new();
	assert_non_null(B);
	memset(&S, 0, sizeof(S));
	order_counter = 0;
	return 0;
}

static int teardown(void **state)
{
	bird_client_free(&C);
	fake_stop(&F);
	event_base_free(B);
	B = NULL;
	return 0;
}

static const char STATUS_REPLY[] = "1000-BIRD 2.0.12\n"
				   "1011-Router ID is 10.0.0.1\n"
				   " Hostname is vm\n"
				   "0013 Daemon is up and running\n";

/* ---- tests ------------------------------------------------------------------ */

static void test_greeting_and_command(void **state)
{
	static const struct step steps[] = { { "show status", A_REPLY, STATUS_REPLY, NULL } };
	struct rec r = { 0 };
	struct bird_status st;

	fake_start(&F, B, true);
	F.steps = steps;
	F.n_steps = 1;
	C = new_client(F.path, 1000, 1000, 0);
	connect_client();
	assert_int_equal(bird_client_state(C), BIRD_CLIENT_CONNECTING);
	assert_true(run_until(&S.calls, 1, 2000));
	assert_int_equal(S.st[0], BIRD_CLIENT_READY);
	assert_int_equal(S.err[0], BIRD_CLIENT_OK);
	assert_int_equal(bird_client_state(C), BIRD_CLIENT_READY);
	assert_string_equal(bird_client_greeting(C), "BIRD 2.0.12 ready.");
	/* connecting again is a no-op */
	connect_client();
	assert_int_equal(bird_client_state(C), BIRD_CLIENT_READY);

	assert_int_equal(cmd("show status", &r), 0);
	assert_int_equal(bird_client_queued(C), 1);
	assert_true(run_until(&r.calls, 1, 2000));
	run_for(50);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, BIRD_CLIENT_OK);
	assert_false(r.sync_call);
	assert_string_equal(r.text, "0013|BIRD 2.0.12|Router ID is 10.0.0.1|Hostname is vm|"
				    "Daemon is up and running");
	assert_int_equal(bird_client_queued(C), 0);
	assert_int_equal(F.n_received, 1);
	assert_string_equal(F.received[0], "show status");
	assert_false(F.wrong_command);
	/* the client never half-closed: the fake saw no EOF */
	assert_false(F.saw_eof);
	assert_int_equal(S.calls, 1);

	/* the reply parses */
	{
		const struct bird_reply *rep;
		struct bird_parser *p = bird_parser_new(NULL);
		size_t used;

		assert_int_equal(bird_parser_feed(p, STATUS_REPLY, strlen(STATUS_REPLY), &used, &rep),
				 BIRD_FEED_REPLY);
		assert_int_equal(bird_parse_status(rep, &st, NULL), BIRD_R_OK);
		assert_string_equal(st.router_id_text, "10.0.0.1");
		bird_parser_free(&p);
	}

	/* free closes the socket: the fake sees EOF */
	bird_client_free(&C);
	assert_null(C);
	run_for(30);
	assert_true(F.saw_eof);
}

/* Commands given before the greeting wait for it, then go one at a time. */
static void test_queue_one_at_a_time(void **state)
{
	static const struct step steps[] = {
		{ "show status", A_REPLY, STATUS_REPLY, NULL },
		{ "disable \"s1\"", A_REPLY, "0009-s1: disabled\n0000 \n", NULL },
		{ "enable \"s1\"", A_SPLIT, "0011-s1: ena", "bled\n0000 \n" },
		{ "show protocols", A_REPLY, "8003 No protocols match\n", NULL },
	};
	struct rec r[4] = { { 0 } };

	fake_start(&F, B, true);
	F.steps = steps;
	F.n_steps = 4;
	F.delay_ms = 20;
	C = new_client(F.path, 1000, 1000, 0);
	connect_client();
	assert_int_equal(cmd("show status", &r[0]), 0);
	assert_int_equal(cmd("disable \"s1\"", &r[1]), 0);
	assert_int_equal(cmd("enable \"s1\"", &r[2]), 0);
	assert_int_equal(cmd("show protocols", &r[3]), 0);
	assert_int_equal(bird_client_queued(C), 4);
	assert_true(run_until(&r[3].calls, 1, 3000));
	run_for(50);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].order, i + 1);
		assert_int_equal(r[i].err, BIRD_CLIENT_OK);
		assert_false(r[i].sync_call);
	}
	assert_string_equal(r[1].text, "0000|s1: disabled|");
	assert_string_equal(r[2].text, "0000|s1: enabled|");
	assert_string_equal(r[3].text, "8003|No protocols match");
	assert_int_equal(F.max_outstanding, 1);
	assert_false(F.wrong_command);
	assert_int_equal(F.n_received, 4);
	assert_int_equal(bird_client_queued(C), 0);
	assert_int_equal(S.calls, 1);
}

static void test_command_timeout(void **state)
{
	static const struct step steps[] = { { "show status", A_SILENT, NULL, NULL } };
	struct rec r[2] = { { 0 } };
	int64_t t0;

	fake_start(&F, B, true);
	F.steps = steps;
	F.n_steps = 1;
	C = new_client(F.path, 100, 1000, 0);
	connect_client();
	assert_true(run_until(&S.calls, 1, 2000));
	t0 = now_ms();
	assert_int_equal(cmd("show status", &r[0]), 0);
	assert_int_equal(cmd("show protocols", &r[1]), 0);
	assert_true(run_until(&r[1].calls, 1, 2000));
	assert_true(now_ms() - t0 >= 95);
	assert_true(now_ms() - t0 < 900);
	assert_int_equal(r[0].err, BIRD_CLIENT_TIMEOUT);
	assert_int_equal(r[1].err, BIRD_CLIENT_TIMEOUT);
	assert_true(r[0].order < r[1].order);
	/* the second command was never sent */
	assert_int_equal(F.n_received, 1);
	assert_int_equal(S.calls, 2);
	assert_int_equal(S.st[1], BIRD_CLIENT_DISCONNECTED);
	assert_int_equal(S.err[1], BIRD_CLIENT_TIMEOUT);
	assert_int_equal(bird_client_state(C), BIRD_CLIENT_DISCONNECTED);
	/* the state report came before the commands' callbacks */
	run_for(20);
	assert_true(F.saw_eof);
}

static void test_lost_mid_reply(void **state)
{
	static const struct step steps[] = {
		{ "show protocols", A_CLOSE_AFTER,
		  "2002-Name       Proto      Table      State  Since         Info\n"
		  "1002-device1    Device     ---        up     01:58:06.277  \n s1   ",
		  NULL },
	};
	struct rec r[2] = { { 0 } };

	fake_start(&F, B, true);
	F.steps = steps;
	F.n_steps = 1;
	C = new_client(F.path, 1000, 1000, 0);
	connect_client();
	assert_int_equal(cmd("show protocols", &r[0]), 0);
	assert_int_equal(cmd("show status", &r[1]), 0);
	assert_true(run_until(&r[1].calls, 1, 2000));
	assert_int_equal(r[0].calls, 1);
	assert_int_equal(r[0].err, BIRD_CLIENT_LOST);
	assert_int_equal(r[1].err, BIRD_CLIENT_LOST);
	assert_int_equal(S.calls, 2);
	assert_int_equal(S.st[1], BIRD_CLIENT_DISCONNECTED);
	assert_int_equal(S.err[1], BIRD_CLIENT_LOST);
	assert_int_equal(bird_client_errno(C), 0);

	/* the caller reconnects; the new connection works */
	F.steps = (const struct step[]){ { "show status", A_REPLY, STATUS_REPLY, NULL } };
	F.n_steps = 1;
	F.next = 0;
	memset(&r[0], 0, sizeof(r[0]));
	connect_client();
	assert_int_equal(cmd("show status", &r[0]), 0);
	assert_true(run_until(&r[0].calls, 1, 2000));
	assert_int_equal(r[0].err, BIRD_CLIENT_OK);
	assert_int_equal(F.accepts, 2);
	assert_int_equal(S.st[2], BIRD_CLIENT_READY);
}

static void test_lost_when_idle(void **state)
{
	fake_start(&F, B, true);
	C = new_client(F.path, 1000, 1000, 0);
	connect_client();
	assert_true(run_until(&S.calls, 1, 2000));
	fake_close(&F);
	assert_true(run_until(&S.calls, 2, 2000));
	assert_int_equal(S.st[1], BIRD_CLIENT_DISCONNECTED);
	assert_int_equal(S.err[1], BIRD_CLIENT_LOST);
}

static void test_greeting_timeout(void **state)
{
	struct rec r = { 0 };
	int64_t t0 = now_ms();

	fake_start(&F, B, true);
	F.greeting = NULL;
	C = new_client(F.path, 1000, 100, 0);
	connect_client();
	assert_int_equal(cmd("show status", &r), 0);
	assert_true(run_until(&r.calls, 1, 2000));
	assert_true(now_ms() - t0 >= 95);
	assert_int_equal(r.err, BIRD_CLIENT_TIMEOUT);
	assert_int_equal(S.calls, 1);
	assert_int_equal(S.st[0], BIRD_CLIENT_DISCONNECTED);
	assert_int_equal(S.err[0], BIRD_CLIENT_TIMEOUT);
	/* nothing was sent before the greeting */
	assert_int_equal(F.n_received, 0);
}

static void test_bad_greeting(void **state)
{
	struct rec r = { 0 };

	fake_start(&F, B, true);
	F.greeting = "9001 go away\n";
	C = new_client(F.path, 1000, 1000, 0);
	connect_client();
	assert_int_equal(cmd("show status", &r), 0);
	assert_true(run_until(&r.calls, 1, 2000));
	assert_int_equal(r.err, BIRD_CLIENT_GREETING);
	assert_int_equal(S.err[0], BIRD_CLIENT_GREETING);
	assert_int_equal(F.n_received, 0);
}

static void test_no_socket(void **state)
{
	struct rec r = { 0 };

	C = new_client("/tmp/test_bird_client.no.such.sock", 1000, 1000, 0);
	connect_client();
	/* reported from the loop, not from inside connect() */
	assert_int_equal(S.calls, 0);
	assert_int_equal(bird_client_state(C), BIRD_CLIENT_DISCONNECTED);
	assert_int_equal(cmd("show status", &r), 0);
	assert_int_equal(r.calls, 0);
	assert_true(run_until(&r.calls, 1, 1000));
	assert_int_equal(S.calls, 1);
	assert_false(S.sync_call);
	assert_int_equal(S.st[0], BIRD_CLIENT_DISCONNECTED);
	assert_int_equal(S.err[0], BIRD_CLIENT_NO_SOCKET);
	assert_int_equal(r.err, BIRD_CLIENT_NO_SOCKET);
	assert_int_equal(bird_client_errno(C), ENOENT);
	assert_false(r.sync_call);
	/* once reported, a command just finds it not connected */
	memset(&r, 0, sizeof(r));
	assert_int_equal(cmd("show status", &r), 0);
	assert_true(run_until(&r.calls, 1, 1000));
	assert_int_equal(r.err, BIRD_CLIENT_NOT_CONNECTED);
	assert_int_equal(S.calls, 1);
}

static void test_not_running(void **state)
{
	fake_start(&F, B, false);	/* the file is there, nobody listens */
	C = new_client(F.path, 1000, 1000, 0);
	connect_client();
	assert_true(run_until(&S.calls, 1, 1000));
	assert_int_equal(S.err[0], BIRD_CLIENT_NOT_RUNNING);
	assert_int_equal(bird_client_errno(C), ECONNREFUSED);
	assert_string_equal(bird_client_strerror(S.err[0]),
			    "BIRD not running (control socket refused the connection)");
}

static void test_garbage(void **state)
{
	static const struct step steps[] = {
		{ "show status", A_REPLY, "BIRD says hello\n", NULL },
	};
	struct rec r = { 0 };

	fake_start(&F, B, true);
	F.steps = steps;
	F.n_steps = 1;
	C = new_client(F.path, 1000, 1000, 0);
	connect_client();
	assert_int_equal(cmd("show status", &r), 0);
	assert_true(run_until(&r.calls, 1, 2000));
	assert_int_equal(r.err, BIRD_CLIENT_PROTOCOL);
	assert_int_equal(S.err[1], BIRD_CLIENT_PROTOCOL);
}

static void test_unsolicited_reply(void **state)
{
	fake_start(&F, B, true);
	F.greeting = "0001 BIRD 2.0.12 ready.\n0000 \n";
	C = new_client(F.path, 1000, 1000, 0);
	connect_client();
	assert_true(run_until(&S.calls, 2, 2000));
	assert_int_equal(S.st[0], BIRD_CLIENT_READY);
	assert_int_equal(S.st[1], BIRD_CLIENT_DISCONNECTED);
	assert_int_equal(S.err[1], BIRD_CLIENT_PROTOCOL);
}

static void test_async_and_limits(void **state)
{
	static char big[300];
	static const struct step steps[] = {
		{ "show status", A_REPLY, "+Reconfigured\n0013 Daemon is up and running\n", NULL },
		{ "show route", A_REPLY, big, NULL },
		{ "show status", A_REPLY, STATUS_REPLY, NULL },
	};
	struct bird_client_config cfg = {
		.socket_path = NULL,
		.limits = { .max_line = 100 },
		.state_cb = state_cb,
	};
	struct rec r[3] = { { 0 } };
	const char *err;

	memset(big, 'x', sizeof(big));
	memcpy(big, "1007-", 5);
	memcpy(big + sizeof(big) - 9, "\n0000 \n", 8);
	fake_start(&F, B, true);
	F.steps = steps;
	F.n_steps = 3;
	cfg.socket_path = F.path;
	C = bird_client_new(B, &cfg, &err);
	assert_non_null(C);
	connect_client();
	assert_int_equal(cmd("show status", &r[0]), 0);
	assert_int_equal(cmd("show route", &r[1]), 0);
	assert_int_equal(cmd("show status", &r[2]), 0);
	assert_true(run_until(&r[2].calls, 1, 2000));
	assert_int_equal(r[0].err, BIRD_CLIENT_OK);
	assert_int_equal(r[0].n_async, 1);
	assert_string_equal(r[0].text, "0013|Daemon is up and running");
	/* over the line limit: delivered as a reply with its error, and the
	 * connection goes on */
	assert_int_equal(r[1].err, BIRD_CLIENT_OK);
	assert_int_equal(r[1].perr, BIRD_PERR_LINE_TOO_LONG);
	assert_string_equal(r[1].text, "0000");
	assert_int_equal(r[2].err, BIRD_CLIENT_OK);
	assert_int_equal(S.calls, 1);
}

static void test_not_connected_and_invalid(void **state)
{
	struct rec r = { 0 };

	C = new_client("/tmp/none.sock", 1000, 1000, 2);
	assert_int_equal(cmd("show status", &r), 0);
	assert_int_equal(r.calls, 0);
	assert_true(run_until(&r.calls, 1, 1000));
	assert_int_equal(r.err, BIRD_CLIENT_NOT_CONNECTED);
	assert_false(r.sync_call);
	assert_int_equal(S.calls, 0);

	assert_int_equal(cmd("show status\nshow protocols", &r), -1);
	assert_int_equal(cmd("", &r), -1);
	assert_int_equal(bird_client_command(C, "show status", NULL, NULL), -1);
	/* the queue limit counts commands not yet called back */
	assert_int_equal(cmd("a", &r), 0);
	assert_int_equal(cmd("b", &r), 0);
	assert_int_equal(cmd("c", &r), -1);
	run_for(20);
	assert_int_equal(r.calls, 3);
	assert_int_equal(cmd("c", &r), 0);
	run_for(20);

	/* bad paths */
	{
		char longpath[200];
		struct bird_client_config cfg = { .socket_path = longpath };
		const char *err = NULL;

		memset(longpath, 'p', sizeof(longpath) - 1);
		longpath[sizeof(longpath) - 1] = '\0';
		assert_null(bird_client_new(B, &cfg, &err));
		assert_string_equal(err, "BIRD socket path too long for a Unix socket");
		cfg.socket_path = "";
		assert_null(bird_client_new(B, &cfg, &err));
		cfg.socket_path = NULL;
		assert_null(bird_client_new(B, &cfg, &err));
	}
}

static void test_disconnect_by_caller(void **state)
{
	static const struct step steps[] = { { "show status", A_SILENT, NULL, NULL } };
	struct rec r[2] = { { 0 } };

	fake_start(&F, B, true);
	F.steps = steps;
	F.n_steps = 1;
	C = new_client(F.path, 1000, 1000, 0);
	connect_client();
	assert_true(run_until(&S.calls, 1, 2000));
	assert_int_equal(cmd("show status", &r[0]), 0);
	assert_int_equal(cmd("show protocols", &r[1]), 0);
	run_for(20);
	in_api = true;
	bird_client_disconnect(C);
	in_api = false;
	assert_int_equal(bird_client_state(C), BIRD_CLIENT_DISCONNECTED);
	assert_int_equal(r[0].calls, 0);
	assert_true(run_until(&r[1].calls, 1, 1000));
	assert_int_equal(r[0].err, BIRD_CLIENT_CLOSED);
	assert_int_equal(r[1].err, BIRD_CLIENT_CLOSED);
	assert_false(r[0].sync_call);
	run_for(20);
	assert_int_equal(S.calls, 1);	/* no DISCONNECTED report for the caller's own close */
	assert_true(F.saw_eof);
}

/* A reply callback that frees the client: the rest is dropped quietly. */
static void test_free_in_reply_callback(void **state)
{
	static const struct step steps[] = {
		{ "show status", A_REPLY, STATUS_REPLY, NULL },
		{ "show status", A_REPLY, STATUS_REPLY, NULL },
	};
	struct rec r[2] = { { 0 } };

	fake_start(&F, B, true);
	F.steps = steps;
	F.n_steps = 2;
	C = new_client(F.path, 1000, 1000, 0);
	connect_client();
	r[0].free_client = true;
	assert_int_equal(cmd("show status", &r[0]), 0);
	assert_int_equal(cmd("show status", &r[1]), 0);
	assert_true(run_until(&r[0].calls, 1, 2000));
	assert_null(C);
	run_for(50);
	assert_int_equal(r[1].calls, 0);
	assert_true(F.saw_eof);
}

/* Freeing from the failure path: from a failed command's callback, and
 * from the DISCONNECTED report. */
static void test_free_in_failure_callbacks(void **state)
{
	struct rec r[2] = { { 0 } };

	C = new_client("/tmp/test_bird_client.no.such.sock", 1000, 1000, 0);
	connect_client();
	S.free_client = true;
	assert_int_equal(cmd("show status", &r[0]), 0);
	assert_true(run_until(&S.calls, 1, 1000));
	assert_null(C);
	run_for(20);
	assert_int_equal(r[0].calls, 0);

	S.free_client = false;
	C = new_client("/tmp/test_bird_client.no.such.sock", 1000, 1000, 0);
	r[0].free_client = true;
	assert_int_equal(cmd("show status", &r[0]), 0);
	assert_int_equal(cmd("show status", &r[1]), 0);
	assert_true(run_until(&r[0].calls, 1, 1000));
	assert_null(C);
	run_for(20);
	assert_int_equal(r[1].calls, 0);
}

/* A callback that gives the next command, and one that disconnects. */
static void test_callback_actions(void **state)
{
	static const struct step steps[] = {
		{ "show status", A_REPLY, STATUS_REPLY, NULL },
		{ "disable \"s1\"", A_REPLY, "0009-s1: disabled\n0000 \n", NULL },
		{ "show protocols", A_SILENT, NULL, NULL },
	};
	struct rec r[4] = { { 0 } };

	fake_start(&F, B, true);
	F.steps = steps;
	F.n_steps = 3;
	C = new_client(F.path, 1000, 1000, 0);
	connect_client();
	r[0].submit = "disable \"s1\"";
	r[0].submit_rec = &r[1];
	r[1].submit = "show protocols";
	r[1].submit_rec = &r[2];
	assert_int_equal(cmd("show status", &r[0]), 0);
	assert_true(run_until(&F.outstanding, 1, 2000));
	assert_true(run_until(&r[1].calls, 1, 2000));
	run_for(30);
	assert_int_equal(F.n_received, 3);
	assert_int_equal(F.max_outstanding, 1);
	assert_int_equal(r[0].err, BIRD_CLIENT_OK);
	assert_int_equal(r[1].err, BIRD_CLIENT_OK);
	assert_string_equal(r[1].text, "0000|s1: disabled|");
	assert_int_equal(r[2].calls, 0);
	in_api = true;
	bird_client_disconnect(C);
	in_api = false;
	assert_true(run_until(&r[2].calls, 1, 1000));
	assert_int_equal(r[2].err, BIRD_CLIENT_CLOSED);

	/* a reply callback that disconnects: the next queued one is closed */
	F.steps = (const struct step[]){ { "show status", A_REPLY, STATUS_REPLY, NULL } };
	F.n_steps = 1;
	F.next = 0;
	memset(r, 0, sizeof(r));
	connect_client();
	r[0].disconnect = true;
	assert_int_equal(cmd("show status", &r[0]), 0);
	assert_int_equal(cmd("show status", &r[1]), 0);
	assert_true(run_until(&r[1].calls, 1, 2000));
	assert_int_equal(r[0].err, BIRD_CLIENT_OK);
	assert_string_equal(r[0].text, "0013|BIRD 2.0.12|Router ID is 10.0.0.1|Hostname is vm|"
				       "Daemon is up and running");
	assert_int_equal(r[1].err, BIRD_CLIENT_CLOSED);
}

/* BIRD closes right after its greeting: the client's command goes to a
 * closed socket.  With SIGPIPE at its default (deadly) disposition, the
 * client must report the loss, not kill the process. */
static void test_no_sigpipe(void **state)
{
	struct rec r = { 0 };

	signal(SIGPIPE, SIG_DFL);
	fake_start(&F, B, true);
	F.greet_and_close = true;
	C = new_client(F.path, 1000, 1000, 0);
	connect_client();
	assert_int_equal(cmd("show status", &r), 0);
	assert_true(run_until(&r.calls, 1, 2000));
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(r.err, BIRD_CLIENT_LOST);
	assert_int_equal(S.st[0], BIRD_CLIENT_READY);
	assert_int_equal(S.err[1], BIRD_CLIENT_LOST);
}

static void test_strings(void **state)
{
	for (int e = BIRD_CLIENT_OK; e <= BIRD_CLIENT_NOMEM; e++)
		assert_string_not_equal(bird_client_strerror((enum bird_client_err)e),
					"unknown error");
	assert_string_equal(bird_client_state_str(BIRD_CLIENT_READY), "ready");
	assert_string_equal(bird_client_state_str(BIRD_CLIENT_CONNECTING), "connecting");
	assert_string_equal(bird_client_state_str(BIRD_CLIENT_DISCONNECTED), "disconnected");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_greeting_and_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_one_at_a_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_mid_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_when_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_greeting_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_greeting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_running, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsolicited_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_and_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_connected_and_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_by_caller, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_in_reply_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_in_failure_callbacks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_actions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_sigpipe, setup, teardown),
		cmocka_unit_test(test_strings),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
