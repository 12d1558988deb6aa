/*
 * main.c - popnode's entry point.
 *
 *   popnode --dev DIR          one node, all state under DIR, loopback only
 *   popnode -c FILE [--check]  production, from a config file
 *
 * Start-up order: config (refused with FILE:LINE: reason, exit 2), logs,
 * TLS, bind every listener (as root, for ports < 1024), drop privileges,
 * open the store, then serve.  SIGTERM/SIGINT: stop accepting, let every
 * session finish what is in flight (an LMTP DATA being committed), commit
 * everything queued, exit 0.  SIGHUP: reopen logs.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "config.h"
#include "control.h"
#include "directory.h"
#include "dirsync.h"
#include "failover.h"
#include "replicator.h"
#include "drain.h"
#include "heartbeat.h"
#include "forward.h"
#include "http.h"
#include "imap.h"
#include "iplimits.h"
#include "link.h"
#include "listener.h"
#include "log.h"
#include "node.h"
#include "sdnotify.h"
#include "store.h"
#include "supervisor.h"
#include "tls.h"
#include "tunnel.h"
#include "workq.h"

#define SHUTDOWN_GRACE_SECONDS 30

struct daemon {
	struct node node;
	struct config cfg;
	struct listener *listeners[CONFIG_MAX_LISTENS];
	struct mgmt_http *http[CONFIG_MAX_LISTENS];
	struct control *control;
	struct event *sig_term, *sig_int, *sig_hup;
	struct event *stop_timer;
	int64_t stop_started;
	int link_fd;
	struct event *watchdog;		/* systemd WatchdogSec= pings */
};

/* The loop is running: tell systemd's watchdog (sdnotify.h). */
static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	sdnotify("WATCHDOG=1");
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: popnode --dev DIR       run a development node with state in DIR\n"
		"       popnode -c FILE         run with a config file\n"
		"       popnode -c FILE --check check the config file and exit\n"
		"       popnode --version\n");
}

static bool served(enum listen_proto p)
{
	/* every protocol of the config is served here */
	return p < PROTO_COUNT;
}

static void stop_services(struct daemon *d)
{
	for (size_t i = 0; i < d->cfg.n_listens; i++) {
		listener_free(&d->listeners[i]);
		mgmt_http_stop(&d->http[i]);
	}
	control_stop(&d->control);
}

static void stop_check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct store_stats ss;

	store_stats(d->node.store, &ss);
	if (d->node.n_sessions == 0 && ss.pending == 0) {
		event_base_loopbreak(d->node.base);
		return;
	}
	if (time(NULL) - d->stop_started >= SHUTDOWN_GRACE_SECONDS) {
		log_warn("shutdown.timeout", "sessions=%u pending_ops=%u", d->node.n_sessions,
			 ss.pending);
		event_base_loopbreak(d->node.base);
	}
}

static void begin_shutdown(struct daemon *d, const char *why)
{
	struct timeval tv = { 0, 50 * 1000 };
	struct node_session *s, *next;

	if (d->node.stopping) {
		log_warn("shutdown.now", "reason=%s", why);
		event_base_loopbreak(d->node.base);
		return;
	}
	log_info("shutdown.begin", "reason=%s sessions=%u", why, d->node.n_sessions);
	sdnotify("STOPPING=1");
	d->node.stopping = true;
	d->stop_started = time(NULL);
	stop_services(d);
	/* A session may unregister (and free itself) from its hook. */
	for (s = TAILQ_FIRST(&d->node.sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		s->shutdown(s->arg);
	}
	d->stop_timer = event_new(d->node.base, -1, EV_PERSIST, stop_check_cb, d);
	event_add(d->stop_timer, &tv);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	if (sig == SIGHUP) {
		log_reopen();
		log_info("signal.hup", "action=logs-reopened");
		return;
	}
	begin_shutdown(d, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[CONFIG_PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -1;
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int drop_privileges(const char *user)
{
	struct passwd *pw;

	if (user[0] == '\0' || geteuid() != 0)
		return 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		fprintf(stderr, "popnode: user %s: no such user\n", user);
		return -1;
	}
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		fprintf(stderr, "popnode: cannot drop privileges to %s: %s\n", user, strerror(errno));
		return -1;
	}
	return 0;
}

/* Dev mode: the demo user exists with password "demo". */
struct add_wait {
	bool done;
	int err;
};

static void add_done(int err, void *arg)
{
	struct add_wait *w = arg;

	w->done = true;
	w->err = err;
}

static int ensure_demo_user(struct node *n)
{
	struct store_user u;
	struct add_wait w = { false, 0 };

	if (store_user_get(n->store, "demo", &u) == STORE_OK)
		return 0;
	memset(&u, 0, sizeof(u));
	snprintf(u.name, sizeof(u.name), "demo");
	snprintf(u.home, sizeof(u.home), "%s", n->cfg->node_id);
	u.quota = n->cfg->default_quota;
	u.enabled = true;
	if (dir_hash_password("demo", u.pwhash, sizeof(u.pwhash)) < 0)
		return -1;
	store_user_add(n->store, &u, add_done, &w);
	while (!w.done)
		event_base_loop(n->base, EVLOOP_ONCE);
	if (w.err != STORE_OK && w.err != STORE_EXISTS) {
		fprintf(stderr, "popnode: cannot create user demo: %s\n", store_strerror(w.err));
		return -1;
	}
	return 0;
}

static void print_dev_banner(const struct config *c)
{
	printf("popnode %s dev node \"%s\" running, state in %s\n", POPNODE_VERSION, c->node_id,
	       c->data_dir);
	printf("  user demo, password demo; every mail domain is local (demo@anything)\n");
	printf("  deliver: swaks --protocol LMTP --server 127.0.0.1:10024 --to demo@example.com\n");
	printf("  read:    curl -u demo:demo pop3://127.0.0.1:10110/1\n");
	printf("           POP3 10110 (STLS), POP3S 10995 (self-signed cert %s)\n", c->tls_cert);
	printf("           IMAP 10143 (STARTTLS), IMAPS 10993:\n");
	printf("           curl -u demo:demo 'imap://127.0.0.1:10143/INBOX;UID=1'\n");
	printf("  status:  curl http://127.0.0.1:10080/status   metrics: /metrics\n");
	printf("  admin:   bin/popctl --dev %s user list\n", c->data_dir);
	printf("  several POPs: deploy/lab up --pops 3 --dir /tmp/lab   (docs/lab.md)\n");
	printf("  stop:    Ctrl-C\n");
	fflush(stdout);
}

static void commit_observer(double seconds, unsigned ops, void *arg)
{
	struct node *n = arg;

	metrics_commit_observe(&n->metrics, seconds, ops);
	replicator_committed(n);	/* no waiting for the next poll */
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dev", required_argument, NULL, 'd' },
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct daemon d;
	struct node *n = &d.node;
	const char *dev_dir = NULL, *config_file = NULL, *error = NULL;
	bool check_only = false;
	char err[512];
	int opt, rc = 1;

	d.link_fd = -1;
	while ((opt = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd': dev_dir = optarg; break;
		case 'c': config_file = optarg; break;
		case 'k': check_only = true; break;
		case 'V': printf("popnode %s\n", POPNODE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || (dev_dir == NULL) == (config_file == NULL)) {
		usage(stderr);
		return 2;
	}

	/* ---- configuration ---- */
	if (dev_dir != NULL) {
		char abs[CONFIG_PATH_MAX];

		if (mkdir_p(dev_dir, 0700) < 0 || realpath(dev_dir, abs) == NULL) {
			fprintf(stderr, "popnode: %s: %s\n", dev_dir, strerror(errno));
			return 2;
		}
		config_dev(&d.cfg, abs);
	} else {
		config_defaults(&d.cfg);
		if (config_parse_file(&d.cfg, config_file, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			return 2;
		}
	}
	if (config_check(&d.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	if (dev_dir != NULL &&
	    tls_make_selfsigned(d.cfg.tls_cert, d.cfg.tls_key, err, sizeof(err)) < 0) {
		fprintf(stderr, "popnode: %s\n", err);
		return 1;
	}
	if (d.cfg.tls_cert[0] != '\0') {
		n->ssl_ctx = tls_server_ctx(d.cfg.tls_cert, d.cfg.tls_key, err, sizeof(err));
		if (n->ssl_ctx == NULL) {
			fprintf(stderr, "%s: %s\n", config_file ? config_file : "dev", err);
			return 2;
		}
	}
	/* The link's certificates are read here, as root, like tls_key. */
	n->link = link_new(&d.cfg, err, sizeof(err));
	if (n->link == NULL) {
		fprintf(stderr, "%s: %s\n", config_file ? config_file : "dev", err);
		SSL_CTX_free(n->ssl_ctx);
		return 2;
	}
	if (check_only) {
		link_free(&n->link);
		printf("%s: configuration OK\n", config_file ? config_file : dev_dir);
		SSL_CTX_free(n->ssl_ctx);
		return 0;
	}
	if (log_open(d.cfg.log_target, d.cfg.log_level, &error) < 0) {
		fprintf(stderr, "popnode: log %s: %s\n", d.cfg.log_target, error);
		return 1;
	}
	/* With anycast addresses this process becomes the privileged
	 * supervisor; the mail process is this program run again, with
	 * SUPERVISOR_FD_ENV set (anycast/supervisor.h). */
	const char *sup_fd = getenv(SUPERVISOR_FD_ENV);
	pid_t sup_pid = getppid();
	if (sup_fd != NULL)
		sdnotify_forget();	/* the supervisor speaks to systemd */
	if (d.cfg.n_anycast > 0 && sup_fd == NULL) {
		link_free(&n->link);
		SSL_CTX_free(n->ssl_ctx);
		rc = supervisor_run(&d.cfg, argv);
		log_close();
		return rc;
	}

	/* ---- event loop and listeners (bound before dropping root) ---- */
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0 || (n->base = event_base_new()) == NULL) {
		log_err("startup", "error=\"cannot create event loop\"");
		return 1;
	}
	n->cfg = &d.cfg;
	n->started = time(NULL);
	TAILQ_INIT(&n->sessions);
	n->limits = iplimits_new(&d.cfg);
	n->workq = workq_new(n->base, 2);
	if (n->limits == NULL || n->workq == NULL) {
		log_err("startup", "error=\"out of memory\"");
		return 1;
	}
	if (mkdir_p(d.cfg.data_dir, 0700) < 0) {
		log_err("startup", "data_dir=%s error=\"%s\"", d.cfg.data_dir, strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < d.cfg.n_listens; i++) {
		const struct listen_conf *lc = &d.cfg.listens[i];
		char addr[300];

		listener_addr_str(lc, addr, sizeof(addr));
		if (!served(lc->proto)) {
			log_info("listen.reserved", "proto=%s addr=%s", config_proto_name(lc->proto), addr);
			continue;
		}
		if (lc->proto == PROTO_HTTP)
			d.http[i] = mgmt_http_start(n, lc, &error);
		else
			d.listeners[i] = listener_start(n, lc, err, sizeof(err));
		if (d.http[i] == NULL && d.listeners[i] == NULL) {
			log_err("startup", "listen=%s error=\"%s\"", addr,
				lc->proto == PROTO_HTTP ? error : err);
			fprintf(stderr, "popnode: %s:%d: listen %s: %s\n", lc->file, lc->line, addr,
				lc->proto == PROTO_HTTP ? error : err);
			goto out;
		}
		log_info("listen", "proto=%s addr=%s tls=%s", config_proto_name(lc->proto), addr,
			 lc->tls == LTLS_IMPLICIT ? "implicit" : lc->tls == LTLS_STARTTLS ? "starttls" : "no");
	}
	if (d.cfg.link_listen_set) {
		struct listen_conf lk = { .port = d.cfg.link_port };
		char addr[100];

		snprintf(lk.host, sizeof(lk.host), "%s", d.cfg.link_host);
		listener_addr_str(&lk, addr, sizeof(addr));
		d.link_fd = listener_bind(&lk, err, sizeof(err));
		if (d.link_fd < 0) {
			log_err("startup", "link_listen=%s error=\"%s\"", addr, err);
			fprintf(stderr, "popnode: %s:%d: link_listen %s: %s\n", d.cfg.link_listen_file,
				d.cfg.link_listen_line, addr, err);
			goto out;
		}
		log_info("listen", "proto=link addr=%s tls=mutual", addr);
	}
	/* The control socket too is bound as root (its directory, e.g.
	 * /run/popnode, is usually root's); requests are served only once the
	 * loop runs, after the store is open. */
	d.control = control_start(n, d.cfg.control_socket, &error);
	if (d.control == NULL) {
		log_err("startup", "control_socket=%s error=\"%s\"", d.cfg.control_socket, error);
		fprintf(stderr, "popnode: control socket %s: %s\n", d.cfg.control_socket, error);
		goto out;
	}
	if (drop_privileges(d.cfg.run_user) < 0)
		goto out;
	/* Under the supervisor: die with it (set after the drop, which clears
	 * it).  A supervisor killed outright cannot withdraw; the one systemd
	 * starts next withdraws first and needs the ports and the store. */
	if (sup_fd != NULL) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != sup_pid)
			goto out;	/* it died before we asked */
	}

	/* ---- store ---- */
	struct store_opts so = {
		.dir = d.cfg.data_dir,
		.map_size = d.cfg.map_size,
		.origin = d.cfg.node_id,
		.batch_max = d.cfg.commit_batch_max,
		.base = n->base,
	};
	if (store_open(&n->store, &so, &error) < 0) {
		log_err("startup", "store=%s error=\"%s\"", d.cfg.data_dir, error);
		fprintf(stderr, "popnode: store %s: %s\n", d.cfg.data_dir, error);
		goto out;
	}
	store_set_commit_observer(n->store, commit_observer, n);
	if (imap_init(n) < 0) {
		log_err("startup", "error=\"out of memory (imap)\"");
		goto out;
	}
	if (d.cfg.dev_mode && ensure_demo_user(n) < 0)
		goto out;
	drain_init(n);
	if (sup_fd != NULL) {
		int fd = atoi(sup_fd);

		unsetenv(SUPERVISOR_FD_ENV);
		if (fd < 3 || heartbeat_start(n, fd) < 0) {
			log_err("startup", "error=\"cannot talk to the anycast supervisor\"");
			goto out;
		}
	}
	/* What peers may ask of this node over the link, then the link. */
	int link_fd = d.link_fd;
	d.link_fd = -1;	/* the link owns it */
	if (tunnel_init(n) < 0 || forward_init(n) < 0 || dirsync_init(n) < 0 || replicator_init(n) < 0 || failover_init(n) < 0 || link_start(n->link, n->base, link_fd) < 0) {
		log_err("startup", "error=\"cannot start the link\"");
		goto out;
	}

	d.sig_term = evsignal_new(n->base, SIGTERM, signal_cb, &d);
	d.sig_int = evsignal_new(n->base, SIGINT, signal_cb, &d);
	d.sig_hup = evsignal_new(n->base, SIGHUP, signal_cb, &d);
	event_add(d.sig_term, NULL);
	event_add(d.sig_int, NULL);
	event_add(d.sig_hup, NULL);

	log_info("startup", "node=%s version=%s pid=%d dev=%s", d.cfg.node_id, POPNODE_VERSION,
		 (int)getpid(), d.cfg.dev_mode ? "yes" : "no");
	if (d.cfg.dev_mode)
		print_dev_banner(&d.cfg);
	uint64_t wd = sdnotify_watchdog_usec();
	if (wd > 0) {
		struct timeval wtv = { (time_t)(wd / 2 / 1000000), (suseconds_t)(wd / 2 % 1000000) };

		d.watchdog = event_new(n->base, -1, EV_PERSIST, watchdog_cb, NULL);
		if (d.watchdog != NULL)
			event_add(d.watchdog, &wtv);
	}
	sdnotify("READY=1");
	event_base_dispatch(n->base);
	rc = 0;
	log_info("shutdown.done", "sessions_left=%u", n->n_sessions);
out:
	stop_services(&d);
	heartbeat_stop(n);
	dirsync_fini(n);
	failover_fini(n);
	replicator_fini(n);
	link_free(&n->link);	/* resets tunnels and forwards still open */
	/* Link connections use deferred callbacks: one loop pass lets
	 * libevent finish freeing their bufferevents. */
	if (n->base != NULL)
		event_base_loop(n->base, EVLOOP_NONBLOCK);
	if (d.link_fd >= 0)
		close(d.link_fd);
	store_close(&n->store); /* commits whatever is still queued */
	imap_fini(n);		/* after the store's last callbacks */
	dirsync_free(n);
	replicator_free(n);	/* closes the mirror stores */
	workq_free(&n->workq);
	if (d.stop_timer != NULL)
		event_free(d.stop_timer);
	if (d.watchdog != NULL)
		event_free(d.watchdog);
	if (d.sig_term != NULL) {
		event_free(d.sig_term);
		event_free(d.sig_int);
		event_free(d.sig_hup);
	}
	iplimits_free(&n->limits);
	free(n->locked_users);
	SSL_CTX_free(n->ssl_ctx);
	if (n->base != NULL)
		event_base_free(n->base);
	log_close();
	return rc;
}
