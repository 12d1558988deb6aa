/*
 * supervisor.c - the privileged parent that owns the anycast addresses
 * (supervisor.h).
 *
 * popnode, started with anycast_address lines, becomes this small
 * parent: it stays uid 0 (to change addresses through netlink and reach
 * BIRD's socket) but first cuts its capabilities to the few it and the
 * mail process need (caps.h; if it cannot, it does not start), opens the
 * service interface, withdraws, and starts the
 * mail process by executing itself again with POPNODE_SUPERVISOR_FD set
 * to its end of a socketpair (a fresh process: no event loop, signal
 * handler or descriptor is shared).  The mail process binds, drops root
 * and serves as usual, and writes a heartbeat line every health_interval
 * (popnode/heartbeat.h).
 *
 * Every health_interval the parent feeds the health state machine
 * (health.h) with what it sees itself (the child alive, the age of its
 * last heartbeat, the maintenance file, BIRD answering) and what the
 * child reported (store, disk, event-loop delay, peers), and makes the
 * interface match the decision.  Some things do not wait for the tick:
 * the child's socket closing or SIGCHLD (it died: withdraw now, then
 * restart it with backoff), SIGTERM (withdraw, stop the child, exit).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "addr.h"
#include "bird_client.h"
#include "caps.h"
#include "config.h"
#include "health.h"
#include "log.h"
#include "sdnotify.h"
#include "supervisor.h"

#define RESTART_MIN_MS 500
#define RESTART_MAX_MS 30000
#define STOP_GRACE_S 40
#define BIRD_EVERY_MS 1000
#define BIRD_STALE_MS 3000

struct supervisor {
	const struct config *cfg;
	char **argv;
	struct event_base *base;
	struct anycast_if *ifc;
	struct health health;
	struct health_input in;
	bool announced;			/* what the interface holds */
	bool have_hb;			/* a heartbeat since the child started */
	/* the mail process */
	pid_t child;
	struct bufferevent *bev;	/* our end of its socketpair */
	int64_t last_hb_ms;
	int64_t child_started_ms;
	unsigned restart_ms;
	struct event *restart_ev;
	/* BIRD */
	struct bird_client *bird;
	int64_t bird_ok_ms;		/* last good answer */
	int64_t bird_asked_ms;
	/* */
	struct event *tick_ev, *sigchld_ev, *sigterm_ev, *sigint_ev, *sighup_ev, *kill_ev;
	bool stopping;
	bool ready_told;		/* READY=1 sent to systemd */
	char told_checks[HEALTH_TEXT_MAX];	/* failing checks the child knows */
	int64_t watchdog_ms;		/* WatchdogSec= / 2, 0: none */
	int64_t watchdog_sent_ms;
	int exit_code;
	char maint[CONFIG_PATH_MAX + 16];
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the interface ---------------------------------------------------------- */

static void tell_child(struct supervisor *sv)
{
	if (sv->bev == NULL)
		return;
	/* the checks failing now, then the state and why it last changed */
	snprintf(sv->told_checks, sizeof(sv->told_checks), "%s", health_checks_text(&sv->health));
	evbuffer_add_printf(bufferevent_get_output(sv->bev), "checks %s\nstate %s bird=%s reason=%s\n",
			    sv->told_checks, sv->announced ? "announced" : "withdrawn",
			    sv->in.bird_up ? "up" : "down", health_reason(&sv->health));
}

static void apply(struct supervisor *sv, bool announce, const char *why)
{
	char err[256];

	if (anycast_if_set(sv->ifc, sv->cfg->anycast, sv->cfg->n_anycast, announce, err,
			   sizeof(err)) < 0) {
		log_err("anycast.netlink_failed", "action=%s error=\"%s\"",
			announce ? "announce" : "withdraw", err);
		return;
	}
	if (announce != sv->announced)
		log_warn(announce ? "anycast.announce" : "anycast.withdraw",
			 "interface=%s prefixes=%zu reason=\"%s\"", anycast_if_name(sv->ifc),
			 sv->cfg->n_anycast, why);
	sv->announced = announce;
	tell_child(sv);
}

/* Run the state machine now and make the interface follow it. */
static void evaluate(struct supervisor *sv)
{
	int64_t now = mono_ms();
	struct stat st;
	bool want;

	sv->in.mail_alive = sv->child > 0 && sv->bev != NULL;
	sv->in.heartbeat_age_ms = sv->have_hb ? (uint64_t)(now - sv->last_hb_ms) : UINT64_MAX / 2;
	sv->in.drained = stat(sv->maint, &st) == 0;
	sv->in.bird_up = sv->bird_ok_ms > 0 && now - sv->bird_ok_ms <= BIRD_STALE_MS;
	if (sv->stopping) {
		sv->in.mail_alive = false;
	}
	health_tick(&sv->health, (uint64_t)now, &sv->in);
	want = health_desired(&sv->health) == HEALTH_ANNOUNCE;
	if (want != sv->announced)
		apply(sv, want, health_reason(&sv->health));
	else if (strcmp(sv->told_checks, health_checks_text(&sv->health)) != 0)
		tell_child(sv);	/* why it stays withdrawn, as it changes */
}

/* ---- BIRD ------------------------------------------------------------------ */

static void bird_answer(struct bird_client *c, enum bird_client_err err,
			const struct bird_reply *r, void *arg)
{
	struct supervisor *sv = arg;
	struct bird_status st;
	const char *why = NULL;

	if (err == BIRD_CLIENT_OK && r != NULL && r->cls == 0 &&
	    bird_parse_status(r, &st, &why) == 0 && st.state == BIRD_DAEMON_UP) {
		if (sv->bird_ok_ms == 0)
			log_info("anycast.bird_up", "socket=%s version=%s router_id=%s",
				 sv->cfg->bird_socket, st.version, st.router_id_text);
		sv->bird_ok_ms = mono_ms();
		return;
	}
	if (sv->bird_ok_ms != 0)
		log_warn("anycast.bird_down", "socket=%s error=\"%s\"", sv->cfg->bird_socket,
			 err != BIRD_CLIENT_OK ? bird_client_strerror(err)
			 : why != NULL ? why : "BIRD is not up and running");
	sv->bird_ok_ms = 0;
}

static void bird_state(struct bird_client *c, enum bird_client_state state,
		       enum bird_client_err err, void *arg)
{
	struct supervisor *sv = arg;

	if (state == BIRD_CLIENT_READY && bird_client_queued(c) == 0) {
		bird_client_command(c, "show status", bird_answer, sv);	/* at once */
		return;
	}
	/* BIRD's socket closing is the fastest sign that it died. */
	if (state == BIRD_CLIENT_DISCONNECTED && err != BIRD_CLIENT_OK &&
	    err != BIRD_CLIENT_CLOSED) {
		if (sv->bird_ok_ms != 0) {
			log_warn("anycast.bird_down", "socket=%s error=\"%s\"",
				 sv->cfg->bird_socket, bird_client_strerror(err));
			sv->bird_ok_ms = 0;
			evaluate(sv);
		}
	}
}

/* "show protocols" and, per BGP protocol, "show route export NAME count":
 * passed on to the mail process for /status and /metrics as
 *   birdprotos N
 *   birdproto NAME PROTO STATE EXPORTED INFO...   (EXPORTED -1: unknown) */
struct export_ask {
	struct supervisor *sv;
	char name[BIRD_NAME_MAX + 1];
};

static void clean_field(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

static void export_answer(struct bird_client *c, enum bird_client_err err,
			  const struct bird_reply *r, void *arg)
{
	struct export_ask *ea = arg;
	struct supervisor *sv = ea->sv;
	struct bird_count cnt;
	const char *why = NULL;

	if (err == BIRD_CLIENT_OK && r != NULL && bird_parse_count(r, &cnt, &why) == 0 &&
	    sv->bev != NULL)
		evbuffer_add_printf(bufferevent_get_output(sv->bev), "birdexport %s %" PRIu64 "\n",
				    ea->name, cnt.routes);
	free(ea);
}

static void protocols_answer(struct bird_client *c, enum bird_client_err err,
			     const struct bird_reply *r, void *arg)
{
	struct supervisor *sv = arg;
	struct bird_protocols ps = { 0 };
	const char *why = NULL;

	if (err != BIRD_CLIENT_OK || r == NULL || bird_parse_protocols(r, &ps, &why) != 0)
		return;
	if (sv->bev != NULL) {
		struct evbuffer *out = bufferevent_get_output(sv->bev);

		evbuffer_add_printf(out, "birdprotos %zu\n", ps.n);
		for (size_t i = 0; i < ps.n; i++) {
			struct bird_proto *p = &ps.rows[i];

			clean_field(p->info);
			evbuffer_add_printf(out, "birdproto %s %s %s %s\n", p->name, p->proto,
					    bird_proto_state_str(p->state), p->info);
			if (strcmp(p->proto, "BGP") == 0 && p->state == BIRD_PS_UP) {
				struct export_ask *ea = calloc(1, sizeof(*ea));
				char cmd[BIRD_NAME_MAX + 40];

				if (ea == NULL)
					continue;
				ea->sv = sv;
				snprintf(ea->name, sizeof(ea->name), "%s", p->name);
				snprintf(cmd, sizeof(cmd), "show route export \"%s\" count", p->name);
				if (bird_client_command(c, cmd, export_answer, ea) != 0)
					free(ea);
			}
		}
	}
	bird_protocols_free(&ps);
}

/* Ask "show status" about once a second (it also wakes BIRD's main loop,
 * which can otherwise sit on a new session's first announcement). */
static void ask_bird(struct supervisor *sv)
{
	int64_t now = mono_ms();

	if (now - sv->bird_asked_ms < BIRD_EVERY_MS)
		return;
	sv->bird_asked_ms = now;
	switch (bird_client_state(sv->bird)) {
	case BIRD_CLIENT_DISCONNECTED:
		bird_client_connect(sv->bird);
		break;
	case BIRD_CLIENT_READY:
		if (bird_client_queued(sv->bird) == 0) {
			bird_client_command(sv->bird, "show status", bird_answer, sv);
			bird_client_command(sv->bird, "show protocols", protocols_answer, sv);
		}
		break;
	case BIRD_CLIENT_CONNECTING:
		break;
	}
}

/* ---- the mail process ------------------------------------------------------------ */

static void parse_hb(struct supervisor *sv, const char *line)
{
	struct health_input *in = &sv->in;
	const char *p;

	if (strncmp(line, "hb ", 3) != 0)
		return;
	sv->last_hb_ms = mono_ms();
	sv->have_hb = true;
	if ((p = strstr(line, " loop_ms=")) != NULL)
		in->loop_delay_ms = strtoull(p + 9, NULL, 10);
	if ((p = strstr(line, " store=")) != NULL)
		in->store_writable = p[7] == '1';
	if ((p = strstr(line, " disk_free=")) != NULL)
		in->free_disk_bytes = strtoull(p + 11, NULL, 10);
	if ((p = strstr(line, " listeners=")) != NULL)
		in->listeners_up = p[11] == '1';
	/* absent (an older mail process): serving */
	in->serving = (p = strstr(line, " serving=")) == NULL || p[9] == '1';
	if ((p = strstr(line, " peers_up=")) != NULL)
		in->peers_reachable = (unsigned)strtoul(p + 10, NULL, 10);
	if ((p = strstr(line, " lag_ms=")) != NULL) {
		in->replication_lag_known = p[8] >= '0' && p[8] <= '9';
		in->replication_lag_ms = in->replication_lag_known ? strtoull(p + 8, NULL, 10) : 0;
	}
}

static void child_gone(struct supervisor *sv, const char *why);

static void hb_read(struct bufferevent *bev, void *arg)
{
	struct supervisor *sv = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	bool first = !sv->have_hb;
	char *line;
	size_t len;

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		if (len < 512)
			parse_hb(sv, line);
		free(line);
	}
	if (evbuffer_get_length(in) > 4096)
		evbuffer_drain(in, evbuffer_get_length(in));
	if (first && sv->have_hb) {
		tell_child(sv);	/* it knows where it stands from the start */
		if (!sv->ready_told) {
			sv->ready_told = true;
			sdnotify("READY=1");	/* systemd: the service is up */
		}
	}
}

static void hb_event(struct bufferevent *bev, short what, void *arg)
{
	struct supervisor *sv = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		child_gone(sv, "its socket closed");
}

static void spawn(struct supervisor *sv);

static void restart_cb(evutil_socket_t fd, short what, void *arg)
{
	spawn(arg);
}

/* The mail process died (or is dying): withdraw now, restart later. */
static void child_gone(struct supervisor *sv, const char *why)
{
	if (sv->bev != NULL) {
		bufferevent_free(sv->bev);
		sv->bev = NULL;
		log_err("anycast.mail_process_gone", "pid=%d reason=\"%s\"", (int)sv->child, why);
		evaluate(sv);	/* mail_alive false: a hard failure, withdraws at once */
	}
}

static void reap(struct supervisor *sv)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		char why[80];

		if (pid != sv->child)
			continue;
		if (WIFSIGNALED(status))
			snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(status));
		else
			snprintf(why, sizeof(why), "exited %d", WEXITSTATUS(status));
		child_gone(sv, why);
		log_warn("anycast.mail_process_exit", "pid=%d %s", (int)pid, why);
		sv->child = 0;
		if (sv->stopping) {
			sv->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
			event_base_loopbreak(sv->base);
			return;
		}
		/* A process that ran a minute was fine: start over quickly. */
		if (mono_ms() - sv->child_started_ms > 60000)
			sv->restart_ms = RESTART_MIN_MS;
		struct timeval tv = { sv->restart_ms / 1000, (sv->restart_ms % 1000) * 1000 };
		log_info("anycast.restart_scheduled", "in_ms=%u", sv->restart_ms);
		evtimer_add(sv->restart_ev, &tv);
		sv->restart_ms = sv->restart_ms * 2 > RESTART_MAX_MS ? RESTART_MAX_MS : sv->restart_ms * 2;
	}
}

static void spawn(struct supervisor *sv)
{
	int pair[2];
	char fdbuf[16];
	pid_t pid;

	if (sv->stopping)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
		log_err("anycast.spawn_failed", "error=\"socketpair: %s\"", strerror(errno));
		return;
	}
	pid = fork();
	if (pid < 0) {
		log_err("anycast.spawn_failed", "error=\"fork: %s\"", strerror(errno));
		close(pair[0]);
		close(pair[1]);
		return;
	}
	if (pid == 0) {
		/* the child: a fresh popnode with the same arguments */
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		close(pair[0]);
		if (fcntl(pair[1], F_SETFD, 0) < 0)
			_exit(127);
		snprintf(fdbuf, sizeof(fdbuf), "%d", pair[1]);
		setenv(SUPERVISOR_FD_ENV, fdbuf, 1);
		execv("/proc/self/exe", sv->argv);
		_exit(127);
	}
	close(pair[1]);
	sv->child = pid;
	sv->child_started_ms = mono_ms();
	sv->have_hb = false;
	evutil_make_socket_nonblocking(pair[0]);
	sv->bev = bufferevent_socket_new(sv->base, pair[0], BEV_OPT_CLOSE_ON_FREE);
	if (sv->bev == NULL) {
		close(pair[0]);
		kill(pid, SIGKILL);
		return;
	}
	bufferevent_setcb(sv->bev, hb_read, NULL, hb_event, sv);
	bufferevent_enable(sv->bev, EV_READ | EV_WRITE);
	log_info("anycast.mail_process_started", "pid=%d", (int)pid);
}

/* ---- signals and the tick ------------------------------------------------------ */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct supervisor *sv = arg;
	int64_t now = mono_ms();

	ask_bird(sv);
	evaluate(sv);
	if (sv->watchdog_ms > 0 && now - sv->watchdog_sent_ms >= sv->watchdog_ms) {
		sv->watchdog_sent_ms = now;
		sdnotify("WATCHDOG=1");	/* the supervisor's own loop runs */
	}
}

static void kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct supervisor *sv = arg;

	if (sv->child > 0) {
		log_warn("anycast.mail_process_kill", "pid=%d reason=\"still running %ds after SIGTERM\"",
			 (int)sv->child, STOP_GRACE_S);
		kill(sv->child, SIGKILL);
	}
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct supervisor *sv = arg;

	if (sig == SIGCHLD) {
		reap(sv);
		return;
	}
	if (sig == SIGHUP) {
		if (sv->child > 0)
			kill(sv->child, SIGHUP);
		log_reopen();
		return;
	}
	/* SIGTERM / SIGINT: withdraw first, then stop the mail process. */
	if (sv->stopping) {
		if (sv->child > 0)
			kill(sv->child, SIGKILL);
		return;
	}
	sv->stopping = true;
	sdnotify("STOPPING=1");
	apply(sv, false, "popnode is stopping");
	if (sv->child > 0) {
		struct timeval tv = { STOP_GRACE_S, 0 };

		kill(sv->child, SIGTERM);
		evtimer_add(sv->kill_ev, &tv);
	} else {
		event_base_loopbreak(sv->base);
	}
}

int supervisor_run(const struct config *cfg, char **argv)
{
	struct supervisor sv = { .cfg = cfg, .argv = argv, .restart_ms = RESTART_MIN_MS };
	struct health_conf hc = {
		.min_free_disk = cfg->health_min_free_disk,
		.max_loop_delay_ms = cfg->health_max_loop_delay_ms,
		.max_replication_lag_ms = cfg->health_max_replication_lag_ms,
		.require_peer = cfg->health_require_peer,
		.rise = cfg->health_rise,
		.fall = cfg->health_fall,
		.hold_down_ms = cfg->health_hold_down_ms,
		.heartbeat_timeout_ms = cfg->heartbeat_timeout_ms,
	};
	struct timeval tv = { cfg->health_interval_ms / 1000, (cfg->health_interval_ms % 1000) * 1000 };
	char err[256], kept[CAPS_TEXT_MAX];
	int crc;

	/* First of all, before any interface or child: no more capabilities
	 * than caps.c lists.  Meaning to drop and failing is fatal. */
	crc = caps_limit(err, sizeof(err));
	if (caps_kept_text(kept, sizeof(kept)) < 0)
		snprintf(kept, sizeof(kept), "?");
	if (crc < 0) {
		log_err("anycast.caps", "error=\"%s\"", err);
		fprintf(stderr, "popnode: cannot limit the supervisor's capabilities to %s: %s\n",
			kept, err);
		return 1;
	}
	if (crc == CAPS_LIMITED)
		log_info("anycast.caps", "kept=\"%s\"", kept);
	else
		log_debug("anycast.caps", "not root: capabilities left as they are");

	/* A write to a mail process that just died must not kill the one
	 * process that has to withdraw for it. */
	signal(SIGPIPE, SIG_IGN);
	config_maintenance_file(cfg, sv.maint, sizeof(sv.maint));
	sv.ifc = anycast_if_open(cfg->anycast_interface, cfg->anycast_create_dummy, err, sizeof(err));
	if (sv.ifc == NULL) {
		log_err("anycast.interface", "name=%s error=\"%s\"", cfg->anycast_interface, err);
		fprintf(stderr, "popnode: anycast_interface %s: %s\n", cfg->anycast_interface, err);
		return 1;
	}
	health_init(&sv.health, &hc);
	sv.watchdog_ms = (int64_t)(sdnotify_watchdog_usec() / 2000);
	sv.announced = true;	/* force the first withdraw to clean up */
	apply(&sv, false, "starting: withdrawn until healthy");
	sv.base = event_base_new();
	if (sv.base == NULL)
		return 1;
	struct bird_client_config bc = {
		.socket_path = cfg->bird_socket,
		.connect_timeout_ms = 1000,
		.command_timeout_ms = 1000,
		.max_queue = 32,
		.state_cb = bird_state,
		.state_arg = &sv,
	};
	const char *berr = NULL;
	sv.bird = bird_client_new(sv.base, &bc, &berr);
	sv.tick_ev = event_new(sv.base, -1, EV_PERSIST, tick_cb, &sv);
	sv.restart_ev = evtimer_new(sv.base, restart_cb, &sv);
	sv.kill_ev = evtimer_new(sv.base, kill_cb, &sv);
	sv.sigchld_ev = evsignal_new(sv.base, SIGCHLD, signal_cb, &sv);
	sv.sigterm_ev = evsignal_new(sv.base, SIGTERM, signal_cb, &sv);
	sv.sigint_ev = evsignal_new(sv.base, SIGINT, signal_cb, &sv);
	sv.sighup_ev = evsignal_new(sv.base, SIGHUP, signal_cb, &sv);
	if (sv.bird == NULL || sv.tick_ev == NULL || sv.restart_ev == NULL || sv.kill_ev == NULL ||
	    sv.sigchld_ev == NULL || sv.sigterm_ev == NULL || sv.sigint_ev == NULL ||
	    sv.sighup_ev == NULL)
		return 1;
	event_add(sv.sigchld_ev, NULL);
	event_add(sv.sigterm_ev, NULL);
	event_add(sv.sigint_ev, NULL);
	event_add(sv.sighup_ev, NULL);
	event_add(sv.tick_ev, &tv);
	log_info("anycast.supervisor", "pid=%d interface=%s prefixes=%zu bird_socket=%s",
		 (int)getpid(), anycast_if_name(sv.ifc), cfg->n_anycast, cfg->bird_socket);
	spawn(&sv);
	event_base_dispatch(sv.base);
	apply(&sv, false, "popnode stopped");
	log_info("anycast.supervisor_exit", "code=%d", sv.exit_code);
	bird_client_free(&sv.bird);
	event_free(sv.tick_ev);
	event_free(sv.restart_ev);
	event_free(sv.kill_ev);
	event_free(sv.sigchld_ev);
	event_free(sv.sigterm_ev);
	event_free(sv.sigint_ev);
	event_free(sv.sighup_ev);
	if (sv.bev != NULL)
		bufferevent_free(sv.bev);
	event_base_free(sv.base);
	anycast_if_close(&sv.ifc);
	return sv.exit_code;
}
