/*
 * listener.c - one accepting socket per `listen` line.
 *
 * Accept path: refuse when the node is stopping, over max_sessions or over
 * max_sessions_per_ip (the client gets a one-line protocol error, then the
 * connection closes); otherwise wrap the fd in a transport, count the
 * session, and start the protocol's session on it.  The transport's
 * on_free hook undoes the accounting, whatever way the session ends.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "imap.h"
#include "iplimits.h"
#include "listener.h"
#include "lmtp.h"
#include "log.h"
#include "node.h"
#include "pop3.h"
#include "transport_bev.h"
#include "unixsock.h"

struct listener {
	struct node *n;
	const struct listen_conf *lc;
	struct evconnlistener *evl;
	struct event *resume;	/* re-enables accepting after EMFILE & co. */
};

/* Per-connection accounting, freed with the transport. */
struct conn_acct {
	struct node *n;
	enum listen_proto proto;
	char ip[48];
};

const char *listener_addr_str(const struct listen_conf *lc, char *buf, size_t bufsz)
{
	if (lc->is_unix)
		snprintf(buf, bufsz, "unix:%s", lc->path);
	else if (strchr(lc->host, ':') != NULL)
		snprintf(buf, bufsz, "[%s]:%u", lc->host, lc->port);
	else
		snprintf(buf, bufsz, "%s:%u", lc->host, lc->port);
	return buf;
}

int listener_bind(const struct listen_conf *lc, char *err, size_t errsz)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	char addr[300];
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	listener_addr_str(lc, addr, sizeof(addr));
	if (lc->is_unix) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
		char why[200];

		if (strlen(lc->path) >= sizeof(sun->sun_path)) {
			snprintf(err, errsz, "%s: path too long", addr);
			return -1;
		}
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, lc->path);
		sslen = sizeof(*sun);
		if (unixsock_remove_stale(lc->path, why, sizeof(why)) < 0) {
			snprintf(err, errsz, "%s: %s", addr, why);
			return -1;
		}
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET, lc->host, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			s4->sin_port = htons(lc->port);
			sslen = sizeof(*s4);
		} else if (inet_pton(AF_INET6, lc->host, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons(lc->port);
			sslen = sizeof(*s6);
		} else {
			snprintf(err, errsz, "%s: not a numeric address", addr);
			return -1;
		}
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errsz, "%s: socket: %s", addr, strerror(errno));
		return -1;
	}
	if (!lc->is_unix) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* Bind even if the address is not (yet) on an interface: an
		 * anycast service address comes and goes with announce and
		 * withdraw, and start-up order must not matter. */
		setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
		if (ss.ss_family == AF_INET6) {
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
#ifdef IPV6_FREEBIND
			setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
#endif
		}
	}
	if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
		snprintf(err, errsz, "%s: bind: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	if (lc->is_unix)
		chmod(lc->path, 0666);
	if (listen(fd, 511) < 0) {
		snprintf(err, errsz, "%s: listen: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void acct_on_free(struct transport *t, void *arg)
{
	struct conn_acct *a = arg;

	iplimits_session_close(a->n->limits, a->ip);
	a->n->metrics.sessions_active[a->proto]--;
	free(a);
}

static void refuse(int fd, enum listen_proto proto, const char *why)
{
	char line[200];
	int len;

	switch (proto) {
	case PROTO_LMTP:
		len = snprintf(line, sizeof(line), "421 4.7.0 %s\r\n", why);
		break;
	case PROTO_POP3:
		len = snprintf(line, sizeof(line), "-ERR [SYS/TEMP] %s\r\n", why);
		break;
	case PROTO_IMAP:
		len = snprintf(line, sizeof(line), "* BYE %s\r\n", why);
		break;
	default:
		len = 0; /* TLS listeners: nothing readable can be said */
		break;
	}
	/* Best effort, non-blocking: a refused client gets no more. */
	if (len > 0 && write(fd, line, (size_t)len) < 0) {
		/* nothing to do */
	}
	close(fd);
}

static void accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct listener *l = arg;
	struct node *n = l->n;
	const struct listen_conf *lc = l->lc;
	struct conn_acct *a;
	struct transport *t;
	char ip[48] = "";
	int one = 1;

	if (sa != NULL && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
	else if (sa != NULL && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
	if (n->stopping) {
		refuse(fd, lc->proto, "server shutting down");
		return;
	}
	if (n->cfg->max_sessions != 0 && n->n_sessions >= n->cfg->max_sessions) {
		n->metrics.sessions_refused++;
		log_warn("session.refused", "proto=%s peer=%s reason=max_sessions",
			 config_proto_name(lc->proto), ip);
		refuse(fd, lc->proto, "too many sessions, try later");
		return;
	}
	if (!iplimits_session_open(n->limits, ip)) {
		n->metrics.sessions_refused++;
		log_warn("session.refused", "proto=%s peer=%s reason=max_sessions_per_ip",
			 config_proto_name(lc->proto), ip);
		refuse(fd, lc->proto, "too many sessions from your address");
		return;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		iplimits_session_close(n->limits, ip);
		close(fd);
		return;
	}
	if (!lc->is_unix)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	t = transport_bev_new(n->base, fd, lc->is_unix ? NULL : sa, lc->is_unix ? 0 : salen,
			      lc->tls == LTLS_NONE ? NULL : n->ssl_ctx, lc->tls == LTLS_IMPLICIT);
	if (t == NULL) {
		log_err("session.error", "proto=%s peer=%s reason=transport", config_proto_name(lc->proto), ip);
		iplimits_session_close(n->limits, ip);
		free(a);
		return;
	}
	a->n = n;
	a->proto = lc->proto;
	snprintf(a->ip, sizeof(a->ip), "%s", ip);
	t->on_free = acct_on_free;
	t->on_free_arg = a;
	n->metrics.sessions_total[lc->proto]++;
	n->metrics.sessions_active[lc->proto]++;
	log_debug("session.open", "proto=%s peer=%s tls=%s", config_proto_name(lc->proto), t->peer,
		  t->tls ? "yes" : "no");

	switch (lc->proto) {
	case PROTO_LMTP:
		lmtp_session_start(n, t);
		break;
	case PROTO_POP3:
	case PROTO_POP3S:
		pop3_session_start(n, t, lc);
		break;
	case PROTO_IMAP:
	case PROTO_IMAPS:
		imap_session_start(n, t, lc);
		break;
	default:
		/* main.c starts listeners only for protocols served here. */
		transport_free(&t);
		break;
	}
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	evconnlistener_enable(l->evl);
}

static void accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct listener *l = arg;
	struct timeval one_second = { 1, 0 };
	int e = EVUTIL_SOCKET_ERROR();

	/* EMFILE and friends: the pending connection stays in the backlog
	 * and the socket stays readable, so accepting again at once would
	 * spin.  Pause this listener for a second. */
	log_err("listener.accept", "proto=%s error=\"%s\" action=pause-1s",
		config_proto_name(l->lc->proto), evutil_socket_error_to_string(e));
	evconnlistener_disable(evl);
	evtimer_add(l->resume, &one_second);
}

struct listener *listener_start(struct node *n, const struct listen_conf *lc, char *err, size_t errsz)
{
	struct listener *l;
	int fd = listener_bind(lc, err, errsz);

	if (fd < 0)
		return NULL;
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		close(fd);
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	l->n = n;
	l->lc = lc;
	l->evl = evconnlistener_new(n->base, accept_cb, l, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (l->evl == NULL) {
		close(fd);
		free(l);
		snprintf(err, errsz, "cannot listen");
		return NULL;
	}
	l->resume = evtimer_new(n->base, resume_cb, l);
	if (l->resume == NULL) {
		evconnlistener_free(l->evl);
		free(l);
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	evconnlistener_set_error_cb(l->evl, accept_error_cb);
	return l;
}

void listener_free(struct listener **lp)
{
	struct listener *l = lp != NULL ? *lp : NULL;

	if (l == NULL)
		return;
	*lp = NULL;
	event_free(l->resume);
	evconnlistener_free(l->evl);
	if (l->lc->is_unix)
		unlink(l->lc->path);
	free(l);
}
