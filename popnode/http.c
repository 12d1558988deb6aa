/*
 * http.c - the management listener: libevent's evhttp serving
 *
 *   GET /status    application/json   (status_render_json)
 *   GET /metrics   text/plain; version=0.0.4  (status_render_metrics)
 *
 * A known path with another method gets 405 (Allow: GET); any other path
 * 404.  The query string is ignored.  Answers carry Cache-Control:
 * no-store.  Both documents are rendered on the loop thread from
 * in-memory counters and one store_stats call, so a scrape never blocks.
 *
 * Listening: TCP host:port through evhttp_bind_socket_with_handle, or a
 * Unix socket we create ourselves (stale socket removed, mode 0660:
 * the daemon's group may scrape) and hand over with
 * evhttp_accept_socket_with_handle.
 *
 * Error messages give the reason only; the caller names the listener.
 *
 * Limits: request headers 8 KiB, body 4 KiB (a GET has none), 10 s
 * timeout per connection; evhttp answers oversized requests itself.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "unixsock.h"
#include "node.h"
#include "status.h"

#define HTTP_MAX_HEADERS 8192
#define HTTP_MAX_BODY 4096
#define HTTP_TIMEOUT 10
#define UNIX_MODE 0660

struct mgmt_http {
	struct node *n;
	struct evhttp *http;
	char path[CONFIG_PATH_MAX];	/* unix socket we created, or "" */
	dev_t dev;
	ino_t ino;
};

static char errbuf[512];		/* mgmt_http_start's error message */

static const char *set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	return errbuf;
}

static const char *method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	}
	return "other";
}

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (b != NULL)
		evbuffer_add_printf(b, "%s\n", text);
	evhttp_send_reply(req, code, reason, b);
	if (b != NULL)
		evbuffer_free(b);
}

static void handle(struct evhttp_request *req, void *arg)
{
	struct mgmt_http *mh = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	bool is_status, is_metrics;
	struct evbuffer *b;
	char safe[80];
	int code;

	if (path == NULL || path[0] == '\0')
		path = "/";
	is_status = strcmp(path, "/status") == 0;
	is_metrics = strcmp(path, "/metrics") == 0;
	if (!is_status && !is_metrics) {
		code = 404;
		reply_text(req, code, "Not Found", "not found: try /status or /metrics");
	} else if (method != EVHTTP_REQ_GET) {
		code = 405;
		evhttp_add_header(h, "Allow", "GET");
		reply_text(req, code, "Method Not Allowed", "method not allowed: use GET");
	} else if ((b = evbuffer_new()) == NULL) {
		code = 500;
		reply_text(req, code, "Internal Server Error", "out of memory");
	} else {
		code = 200;
		if (is_status) {
			status_render_json(mh->n, b);
			evhttp_add_header(h, "Content-Type", "application/json");
		} else {
			status_render_metrics(mh->n, b);
			evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
		}
		evhttp_add_header(h, "Cache-Control", "no-store");
		evhttp_send_reply(req, code, "OK", b);
		evbuffer_free(b);
	}
	log_debug("http.request", "method=%s path=%s status=%d", method_name(method),
		  log_sanitize(safe, sizeof(safe), path, strlen(path)), code);
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

static int bind_unix(struct mgmt_http *mh, const struct listen_conf *lc, const char **error_r)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t old;
	int fd, rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (lc->path[0] == '\0' || strlen(lc->path) >= sizeof(sun.sun_path)) {
		*error_r = set_error("socket path is empty or longer than %zu bytes",
				     sizeof(sun.sun_path) - 1);
		return -1;
	}
	memcpy(sun.sun_path, lc->path, strlen(lc->path) + 1);
	if (remove_stale(&sun, error_r) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = set_error("socket: %s", strerror(errno));
		return -1;
	}
	old = umask(0117);
	rc = bind(fd, (const struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0 || chmod(lc->path, UNIX_MODE) < 0 || stat(lc->path, &st) < 0 ||
	    listen(fd, 64) < 0) {
		*error_r = set_error("%s: %s", rc < 0 ? "bind" : "chmod/listen", strerror(errno));
		if (rc == 0)
			unlink(lc->path);
		close(fd);
		return -1;
	}
	if (evhttp_accept_socket_with_handle(mh->http, fd) == NULL) {
		*error_r = set_error("evhttp cannot accept on the socket");
		unlink(lc->path);
		close(fd);
		return -1;
	}
	mh->dev = st.st_dev;
	mh->ino = st.st_ino;
	snprintf(mh->path, sizeof(mh->path), "%s", lc->path);
	log_info("http.listen", "address=unix:%s mode=0%o", lc->path, UNIX_MODE);
	return 0;
}

static int bind_tcp(struct mgmt_http *mh, const struct listen_conf *lc, const char **error_r)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[64];
	unsigned port = lc->port;

	errno = 0;
	bs = evhttp_bind_socket_with_handle(mh->http, lc->host, lc->port);
	if (bs == NULL) {
		*error_r = set_error("bind: %s", errno != 0 ? strerror(errno) : "failed");
		return -1;
	}
	/* port 0 asks for any free port: say which one we got */
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	snprintf(host, sizeof(host), strchr(lc->host, ':') != NULL ? "[%s]" : "%s", lc->host);
	log_info("http.listen", "address=%s:%u", host, port);
	return 0;
}

struct mgmt_http *mgmt_http_start(struct node *n, const struct listen_conf *lc,
				  const char **error_r)
{
	struct mgmt_http *mh = calloc(1, sizeof(*mh));

	if (mh == NULL) {
		*error_r = "http: out of memory";
		return NULL;
	}
	mh->n = n;
	mh->http = evhttp_new(n->base);
	if (mh->http == NULL) {
		*error_r = "http: cannot create evhttp";
		free(mh);
		return NULL;
	}
	evhttp_set_max_headers_size(mh->http, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(mh->http, HTTP_MAX_BODY);
	evhttp_set_timeout(mh->http, HTTP_TIMEOUT);
	/* let every method reach handle() so it can answer 405 itself */
	evhttp_set_allowed_methods(mh->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
				   EVHTTP_REQ_TRACE | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(mh->http, handle, mh);
	if ((lc->is_unix ? bind_unix(mh, lc, error_r) : bind_tcp(mh, lc, error_r)) < 0) {
		mgmt_http_stop(&mh);
		return NULL;
	}
	return mh;
}

void mgmt_http_stop(struct mgmt_http **hp)
{
	struct mgmt_http *mh = hp != NULL ? *hp : NULL;
	struct stat st;

	if (mh == NULL)
		return;
	*hp = NULL;
	if (mh->http != NULL)
		evhttp_free(mh->http);
	/* unlink the socket only if it is still the one we created */
	if (mh->path[0] != '\0' && stat(mh->path, &st) == 0 && st.st_dev == mh->dev &&
	    st.st_ino == mh->ino)
		unlink(mh->path);
	free(mh);
}
