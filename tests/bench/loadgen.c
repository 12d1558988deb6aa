/*
 * loadgen.c - the load generator behind `make bench` (tests/bench/bench.py).
 *
 * Plain blocking sockets and one pthread per connection: the point is to
 * measure the server, so the client stays simple and cheap.  Every reply
 * code is checked; a transaction counts only when the server said 250 (LMTP)
 * or sent the whole message (POP3).  Errors are counted apart, and the
 * program exits non-zero when nothing succeeded.
 *
 *   loadgen lmtp HOST PORT CONNS SECONDS SIZE USERPREFIX [WARMUP [NUSERS [DOMAIN]]]
 *	Each connection: greeting, LHLO once, then MAIL FROM / RCPT TO / DATA /
 *	message / final reply, in lock-step (no pipelining), until the time is
 *	up.  Connection i delivers to USERPREFIX<(i % NUSERS) + 1>@DOMAIN.
 *	Messages are SIZE bytes, each one different (unique header and body
 *	offset) so a store that de-duplicates bodies gets no free ride.
 *
 *   loadgen pop3 HOST PORT USER PASS SECONDS [WARMUP]
 *	One client: USER/PASS, STAT, RETR 1..n, QUIT, repeated until the time
 *	is up.  Bytes counted are message data (after un-dot-stuffing, without
 *	the final "." line).
 *
 * Only work completed inside the measured window [WARMUP, WARMUP+SECONDS]
 * is counted.  Output: one JSON object on one line on stdout; diagnostics
 * go to stderr.  Latencies (per LMTP transaction, per POP3 RETR) are kept
 * in a log-linear histogram and reported as p50/p99 in milliseconds.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RBUF_SIZE 65536
#define ERR_MAX 256
#define IO_TIMEOUT_S 30
#define MAX_CONNS 1024
#define MAX_SIZE (64u * 1024 * 1024)
#define BODY_LINE 78		/* 76 base64 characters + CRLF */
#define HIST_SUB 16
#define HIST_BUCKETS (40 * HIST_SUB)

/* ---- time and histogram ------------------------------------------------ */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct hist {
	uint64_t b[HIST_BUCKETS];
};

static unsigned hist_index(uint64_t us)
{
	unsigned e;

	if (us < HIST_SUB)
		return (unsigned)us;
	e = 63u - (unsigned)__builtin_clzll(us);	/* us >= 16, so e >= 4 */
	if (e >= HIST_BUCKETS / HIST_SUB)
		return HIST_BUCKETS - 1;
	return (e - 3) * HIST_SUB + (unsigned)((us >> (e - 4)) & (HIST_SUB - 1));
}

static uint64_t hist_value(unsigned idx)
{
	unsigned e;

	if (idx < HIST_SUB)
		return idx;
	e = idx / HIST_SUB + 3;
	return ((uint64_t)1 << e) + ((uint64_t)(idx % HIST_SUB) << (e - 4));
}

static void hist_add(struct hist *h, double seconds)
{
	uint64_t us = seconds <= 0 ? 0 : (uint64_t)(seconds * 1e6);

	h->b[hist_index(us)]++;
}

static void hist_merge(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
}

/* Value (ms) below which fraction q of the samples lie; 0 if empty. */
static double hist_quantile(const struct hist *h, double q)
{
	uint64_t total = 0, seen = 0, want;

	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		total += h->b[i];
	if (total == 0)
		return 0;
	want = (uint64_t)(q * (double)total);
	if (want >= total)
		want = total - 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen > want)
			return (double)hist_value(i) / 1000.0;
	}
	return 0;
}

/* ---- connection with a line reader ------------------------------------ */

struct conn {
	int fd;
	size_t off, len;	/* unread bytes are buf[off..len) */
	char buf[RBUF_SIZE];
	char last[160];		/* last reply line, for error messages */
};

static void set_err(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_err(char *err, const char *fmt, ...)
{
	va_list ap;

	if (err[0] != '\0')
		return;		/* keep the first error */
	va_start(ap, fmt);
	vsnprintf(err, ERR_MAX, fmt, ap);
	va_end(ap);
}

static int conn_open(struct conn *c, const char *host, const char *port, char *err)
{
	struct addrinfo hints, *res, *ai;
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S, .tv_usec = 0 };
	int one = 1, rc;

	c->fd = -1;
	c->off = c->len = 0;
	c->last[0] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		set_err(err, "getaddrinfo %s:%s: %s", host, port, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);

		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			c->fd = fd;
			break;
		}
		set_err(err, "connect %s:%s: %s", host, port, strerror(errno));
		close(fd);
	}
	freeaddrinfo(res);
	return c->fd >= 0 ? 0 : -1;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->off = c->len = 0;
}

static int send_iov(struct conn *c, struct iovec *iov, int n, char *err)
{
	while (n > 0) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			set_err(err, "send: %s", strerror(errno));
			return -1;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int send_str(struct conn *c, const char *s, char *err)
{
	struct iovec iov = { .iov_base = (void *)s, .iov_len = strlen(s) };

	return send_iov(c, &iov, 1, err);
}

/* Next line (without CRLF) into line and len; valid until the next call.
 * 0 on success, -1 on EOF, timeout, error or an over-long line. */
static int read_line(struct conn *c, const char **line, size_t *len, char *err)
{
	for (;;) {
		char *nl = memchr(c->buf + c->off, '\n', c->len - c->off);

		if (nl != NULL) {
			size_t l = (size_t)(nl - (c->buf + c->off));

			*line = c->buf + c->off;
			c->off += l + 1;
			if (l > 0 && (*line)[l - 1] == '\r')
				l--;
			*len = l;
			return 0;
		}
		if (c->off > 0) {
			memmove(c->buf, c->buf + c->off, c->len - c->off);
			c->len -= c->off;
			c->off = 0;
		}
		if (c->len == sizeof(c->buf)) {
			set_err(err, "reply line longer than %zu bytes", sizeof(c->buf));
			return -1;
		}
		ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			set_err(err, "recv: %s", errno == EAGAIN ? "timeout" : strerror(errno));
			return -1;
		}
		if (r == 0) {
			set_err(err, "connection closed by server");
			return -1;
		}
		c->len += (size_t)r;
	}
}

static void remember(struct conn *c, const char *line, size_t len)
{
	size_t n = len < sizeof(c->last) - 1 ? len : sizeof(c->last) - 1;

	for (size_t i = 0; i < n; i++)
		c->last[i] = (line[i] >= 0x20 && line[i] < 0x7f) ? line[i] : '?';
	c->last[n] = '\0';
}

/* SMTP/LMTP reply: "ddd-..." lines then "ddd ...".  The code, or -1. */
static int read_smtp_reply(struct conn *c, char *err)
{
	const char *line;
	size_t len;

	for (;;) {
		if (read_line(c, &line, &len, err) < 0)
			return -1;
		remember(c, line, len);
		if (len < 3 || line[0] < '1' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
		    line[2] < '0' || line[2] > '9' || (len > 3 && line[3] != ' ' && line[3] != '-')) {
			set_err(err, "malformed reply: %s", c->last);
			return -1;
		}
		if (len == 3 || line[3] == ' ')
			return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	}
}

/* POP3 status line: 1 for +OK, 0 for -ERR, -1 on I/O or syntax error. */
static int read_pop3_status(struct conn *c, char *err)
{
	const char *line;
	size_t len;

	if (read_line(c, &line, &len, err) < 0)
		return -1;
	remember(c, line, len);
	if (len >= 3 && memcmp(line, "+OK", 3) == 0)
		return 1;
	if (len >= 4 && memcmp(line, "-ERR", 4) == 0)
		return 0;
	set_err(err, "malformed POP3 status: %s", c->last);
	return -1;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/* ---- LMTP --------------------------------------------------------------- */

struct lmtp_cfg {
	const char *host, *port, *prefix, *domain;
	unsigned conns, nusers;
	size_t size;
	double t_start, t_measure, t_end;
	const char *body;	/* body_lines lines of BODY_LINE bytes */
	size_t body_lines;
};

struct lmtp_worker {
	pthread_t th;
	unsigned id;
	const struct lmtp_cfg *cfg;
	uint64_t ok, ok_warm, bytes, errors, reconnects;
	struct hist hist;
	char err[ERR_MAX];
	struct conn c;
};

static int lmtp_hello(struct lmtp_worker *w)
{
	int code = read_smtp_reply(&w->c, w->err);

	if (code != 220) {
		if (code > 0)
			set_err(w->err, "greeting: %s", w->c.last);
		return -1;
	}
	if (send_str(&w->c, "LHLO loadgen.bench.test\r\n", w->err) < 0)
		return -1;
	code = read_smtp_reply(&w->c, w->err);
	if (code != 250) {
		if (code > 0)
			set_err(w->err, "LHLO: %s", w->c.last);
		return -1;
	}
	return 0;
}

/* One transaction.  1 delivered, 0 refused (connection still usable),
 * -1 connection broken. */
static int lmtp_deliver(struct lmtp_worker *w, uint64_t seq, size_t *sent)
{
	const struct lmtp_cfg *cfg = w->cfg;
	char rcpt[320], hdr[1024];
	struct iovec iov[4];
	size_t hlen, rest, nlines, part, first;
	int code, hl;
	unsigned user = w->id % cfg->nusers + 1;

	snprintf(rcpt, sizeof(rcpt), "RCPT TO:<%s%u@%s>\r\n", cfg->prefix, user, cfg->domain);
	if (send_str(&w->c, "MAIL FROM:<loadgen@bench.test>\r\n", w->err) < 0)
		return -1;
	code = read_smtp_reply(&w->c, w->err);
	if (code != 250)
		goto refused;
	if (send_str(&w->c, rcpt, w->err) < 0)
		return -1;
	code = read_smtp_reply(&w->c, w->err);
	if (code != 250)
		goto refused;
	if (send_str(&w->c, "DATA\r\n", w->err) < 0)
		return -1;
	code = read_smtp_reply(&w->c, w->err);
	if (code != 354)
		goto refused;

	hl = snprintf(hdr, sizeof(hdr),
		      "From: loadgen <loadgen@bench.test>\r\n"
		      "To: %s%u@%s\r\n"
		      "Subject: bench message %u.%" PRIu64 "\r\n"
		      "Message-ID: <%u.%" PRIu64 ".%d@loadgen.bench.test>\r\n"
		      "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
		      "MIME-Version: 1.0\r\n"
		      "Content-Type: text/plain; charset=us-ascii\r\n"
		      "\r\n"
		      "unique %u %" PRIu64 " %d\r\n",
		      cfg->prefix, user, cfg->domain, w->id, seq, w->id, seq, (int)getpid(),
		      w->id, seq, (int)getpid());
	if (hl < 0 || (size_t)hl >= sizeof(hdr)) {
		set_err(w->err, "header too long");
		return -1;
	}
	hlen = (size_t)hl;
	rest = cfg->size > hlen ? cfg->size - hlen : 0;
	nlines = rest / BODY_LINE;
	part = rest % BODY_LINE;
	if (nlines > cfg->body_lines - 1)
		nlines = cfg->body_lines - 1;
	/* A different run of the body per message; lines never start with '.',
	 * so no dot-stuffing is needed. */
	first = (size_t)((seq * 7919u + w->id * 104729u) % (cfg->body_lines - nlines));
	iov[0].iov_base = hdr;
	iov[0].iov_len = hlen;
	iov[1].iov_base = (void *)(cfg->body + first * BODY_LINE);
	iov[1].iov_len = nlines * BODY_LINE;
	/* The partial last line: part-2 characters and CRLF (taken from the
	 * end of the next line), dropped when too short to hold any. */
	if (part > 2) {
		const char *next = cfg->body + (first + nlines) * BODY_LINE;

		iov[2].iov_base = (void *)(next + BODY_LINE - part);
		iov[2].iov_len = part;
	} else {
		iov[2].iov_base = hdr;
		iov[2].iov_len = 0;
	}
	iov[3].iov_base = (void *)".\r\n";
	iov[3].iov_len = 3;
	*sent = iov[0].iov_len + iov[1].iov_len + iov[2].iov_len;
	if (send_iov(&w->c, iov, 4, w->err) < 0)
		return -1;
	code = read_smtp_reply(&w->c, w->err);
	if (code == 250)
		return 1;
	if (code < 0)
		return -1;
	set_err(w->err, "end of DATA: %s", w->c.last);
	return 0;

refused:
	if (code < 0)
		return -1;
	set_err(w->err, "refused: %s", w->c.last);
	if (send_str(&w->c, "RSET\r\n", w->err) < 0 || read_smtp_reply(&w->c, w->err) != 250)
		return -1;
	return 0;
}

static void *lmtp_thread(void *arg)
{
	struct lmtp_worker *w = arg;
	const struct lmtp_cfg *cfg = w->cfg;
	uint64_t seq = 0;
	bool connected = false;

	w->c.fd = -1;
	while (now_s() < cfg->t_end) {
		if (!connected) {
			if (conn_open(&w->c, cfg->host, cfg->port, w->err) < 0 || lmtp_hello(w) < 0) {
				w->errors++;
				conn_close(&w->c);
				usleep(100 * 1000);
				continue;
			}
			connected = true;
		}
		size_t sent = 0;
		double t0 = now_s();
		int r = lmtp_deliver(w, seq++, &sent);
		double t1 = now_s();

		if (r == 1) {
			if (t1 >= cfg->t_measure && t1 <= cfg->t_end) {
				w->ok++;
				w->bytes += sent;
				hist_add(&w->hist, t1 - t0);
			} else if (t1 < cfg->t_measure) {
				w->ok_warm++;
			}
			continue;
		}
		w->errors++;
		if (r < 0) {
			conn_close(&w->c);
			connected = false;
			w->reconnects++;
		}
		usleep(10 * 1000);	/* no busy loop on a refusing server */
	}
	if (connected) {
		char ignore[ERR_MAX] = "";

		if (send_str(&w->c, "QUIT\r\n", ignore) == 0)
			(void)read_smtp_reply(&w->c, ignore);
		conn_close(&w->c);
	}
	return NULL;
}

/* Pseudo-random base64 text: looks like an attachment, does not compress. */
static char *make_body(size_t lines)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *b = malloc(lines * BODY_LINE);
	uint64_t x = 0x9e3779b97f4a7c15ull;

	if (b == NULL)
		return NULL;
	for (size_t l = 0; l < lines; l++) {
		char *p = b + l * BODY_LINE;

		for (size_t i = 0; i < BODY_LINE - 2; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			p[i] = b64[x & 63];
		}
		p[BODY_LINE - 2] = '\r';
		p[BODY_LINE - 1] = '\n';
	}
	return b;
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_secs(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || !(v >= 0 && v <= 3600))
		return -1;
	*out = v;
	return 0;
}

static int run_lmtp(int argc, char **argv)
{
	struct lmtp_cfg cfg = { .domain = "bench.test", .nusers = 16 };
	unsigned long long v;
	double secs, warm = 1.0;
	struct lmtp_worker *ws;
	struct hist all = { { 0 } };
	uint64_t ok = 0, ok_warm = 0, bytes = 0, errors = 0, reconnects = 0;
	const char *first_err = "";

	if (argc < 8 || argc > 11) {
		fprintf(stderr, "usage: loadgen lmtp HOST PORT CONNS SECONDS SIZE USERPREFIX "
				"[WARMUP [NUSERS [DOMAIN]]]\n");
		return 2;
	}
	cfg.host = argv[2];
	cfg.port = argv[3];
	if (parse_uint(argv[4], MAX_CONNS, &v) < 0 || v == 0) {
		fprintf(stderr, "loadgen: bad CONNS %s (1..%d)\n", argv[4], MAX_CONNS);
		return 2;
	}
	cfg.conns = (unsigned)v;
	if (parse_secs(argv[5], &secs) < 0 || secs <= 0) {
		fprintf(stderr, "loadgen: bad SECONDS %s\n", argv[5]);
		return 2;
	}
	if (parse_uint(argv[6], MAX_SIZE, &v) < 0 || v < 512) {
		fprintf(stderr, "loadgen: bad SIZE %s (512..%u)\n", argv[6], MAX_SIZE);
		return 2;
	}
	cfg.size = (size_t)v;
	cfg.prefix = argv[7];
	if (strlen(cfg.prefix) > 64) {
		fprintf(stderr, "loadgen: USERPREFIX too long\n");
		return 2;
	}
	if (argc > 8 && parse_secs(argv[8], &warm) < 0) {
		fprintf(stderr, "loadgen: bad WARMUP %s\n", argv[8]);
		return 2;
	}
	if (argc > 9) {
		if (parse_uint(argv[9], 100000, &v) < 0 || v == 0) {
			fprintf(stderr, "loadgen: bad NUSERS %s\n", argv[9]);
			return 2;
		}
		cfg.nusers = (unsigned)v;
	}
	if (argc > 10) {
		cfg.domain = argv[10];
		if (strlen(cfg.domain) > 200) {
			fprintf(stderr, "loadgen: DOMAIN too long\n");
			return 2;
		}
	}
	cfg.body_lines = cfg.size / BODY_LINE + 1024;
	cfg.body = make_body(cfg.body_lines);
	ws = calloc(cfg.conns, sizeof(*ws));
	if (cfg.body == NULL || ws == NULL) {
		fprintf(stderr, "loadgen: out of memory\n");
		free(ws);
		free((void *)cfg.body);
		return 1;
	}
	cfg.t_start = now_s();
	cfg.t_measure = cfg.t_start + warm;
	cfg.t_end = cfg.t_measure + secs;
	for (unsigned i = 0; i < cfg.conns; i++) {
		ws[i].id = i;
		ws[i].cfg = &cfg;
		if (pthread_create(&ws[i].th, NULL, lmtp_thread, &ws[i]) != 0) {
			fprintf(stderr, "loadgen: pthread_create failed\n");
			return 1;
		}
	}
	for (unsigned i = 0; i < cfg.conns; i++) {
		pthread_join(ws[i].th, NULL);
		ok += ws[i].ok;
		ok_warm += ws[i].ok_warm;
		bytes += ws[i].bytes;
		errors += ws[i].errors;
		reconnects += ws[i].reconnects;
		hist_merge(&all, &ws[i].hist);
		if (first_err[0] == '\0' && ws[i].err[0] != '\0')
			first_err = ws[i].err;
		if (ws[i].err[0] != '\0')
			fprintf(stderr, "loadgen: conn %u: %" PRIu64 " errors, first: %s\n", i,
				ws[i].errors, ws[i].err);
	}
	printf("{\"mode\":\"lmtp\",\"conns\":%u,\"size\":%zu,\"seconds\":%.3f,\"warmup\":%.3f,"
	       "\"count\":%" PRIu64 ",\"warmup_count\":%" PRIu64 ",\"rate\":%.2f,"
	       "\"bytes\":%" PRIu64 ",\"mbps\":%.3f,\"errors\":%" PRIu64 ",\"reconnects\":%" PRIu64
	       ",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"first_error\":",
	       cfg.conns, cfg.size, secs, warm, ok, ok_warm, (double)ok / secs, bytes,
	       (double)bytes / 1e6 / secs, errors, reconnects, hist_quantile(&all, 0.50),
	       hist_quantile(&all, 0.99));
	json_str(first_err);
	printf("}\n");
	fflush(stdout);
	if (ok == 0)
		fprintf(stderr, "loadgen: FAILED: no delivery succeeded (%" PRIu64 " errors): %s\n",
			errors, first_err[0] ? first_err : "no error recorded");
	free(ws);
	free((void *)cfg.body);
	return ok == 0 ? 1 : 0;
}

/* ---- POP3 --------------------------------------------------------------- */

struct pop3_run {
	const char *host, *port, *user, *pass;
	double t_measure, t_end;
	uint64_t msgs, bytes, sessions, errors;
	struct hist hist;
	char err[ERR_MAX];
	struct conn c;
};

/* Read a multi-line body up to the "." line; data bytes into *bytes. */
static int pop3_read_multiline(struct pop3_run *p, uint64_t *bytes)
{
	const char *line;
	size_t len;

	for (;;) {
		if (read_line(&p->c, &line, &len, p->err) < 0)
			return -1;
		if (len == 1 && line[0] == '.')
			return 0;
		if (len > 0 && line[0] == '.')
			len--;	/* dot-stuffed */
		*bytes += len + 2;
	}
}

static int pop3_cmd(struct pop3_run *p, const char *cmd, const char *what)
{
	int st;

	if (send_str(&p->c, cmd, p->err) < 0)
		return -1;
	st = read_pop3_status(&p->c, p->err);
	if (st == 0)
		set_err(p->err, "%s: %s", what, p->c.last);
	return st == 1 ? 0 : -1;
}

/* One session.  0 ok, -1 error (counted by the caller). */
static int pop3_session(struct pop3_run *p)
{
	char cmd[512];
	unsigned long nmsgs;

	if (conn_open(&p->c, p->host, p->port, p->err) < 0)
		return -1;
	if (read_pop3_status(&p->c, p->err) != 1) {
		set_err(p->err, "greeting: %s", p->c.last);
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "USER %s\r\n", p->user);
	if (pop3_cmd(p, cmd, "USER") < 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "PASS %s\r\n", p->pass);
	if (pop3_cmd(p, cmd, "PASS") < 0)
		return -1;
	if (pop3_cmd(p, "STAT\r\n", "STAT") < 0)
		return -1;
	if (sscanf(p->c.last, "+OK %lu", &nmsgs) != 1 || nmsgs == 0) {
		set_err(p->err, "STAT: no messages: %s", p->c.last);
		return -1;
	}
	for (unsigned long i = 1; i <= nmsgs; i++) {
		uint64_t b = 0;
		double t0 = now_s(), t1;

		snprintf(cmd, sizeof(cmd), "RETR %lu\r\n", i);
		if (pop3_cmd(p, cmd, "RETR") < 0 || pop3_read_multiline(p, &b) < 0)
			return -1;
		t1 = now_s();
		if (t1 >= p->t_measure && t1 <= p->t_end) {
			p->msgs++;
			p->bytes += b;
			hist_add(&p->hist, t1 - t0);
		}
		if (t1 > p->t_end)
			break;
	}
	if (pop3_cmd(p, "QUIT\r\n", "QUIT") < 0)
		return -1;
	conn_close(&p->c);
	return 0;
}

static int run_pop3(int argc, char **argv)
{
	static struct pop3_run p;	/* big: holds the read buffer */
	double secs, warm = 1.0, t_start;

	if (argc < 7 || argc > 8) {
		fprintf(stderr, "usage: loadgen pop3 HOST PORT USER PASS SECONDS [WARMUP]\n");
		return 2;
	}
	p.host = argv[2];
	p.port = argv[3];
	p.user = argv[4];
	p.pass = argv[5];
	if (strlen(p.user) > 200 || strlen(p.pass) > 200) {
		fprintf(stderr, "loadgen: USER/PASS too long\n");
		return 2;
	}
	if (parse_secs(argv[6], &secs) < 0 || secs <= 0) {
		fprintf(stderr, "loadgen: bad SECONDS %s\n", argv[6]);
		return 2;
	}
	if (argc > 7 && parse_secs(argv[7], &warm) < 0) {
		fprintf(stderr, "loadgen: bad WARMUP %s\n", argv[7]);
		return 2;
	}
	p.c.fd = -1;
	t_start = now_s();
	p.t_measure = t_start + warm;
	p.t_end = p.t_measure + secs;
	while (now_s() < p.t_end) {
		if (pop3_session(&p) < 0) {
			p.errors++;
			conn_close(&p.c);
			if (p.errors <= 3)
				fprintf(stderr, "loadgen: pop3 session failed: %s\n", p.err);
			usleep(100 * 1000);
			continue;
		}
		p.sessions++;
	}
	printf("{\"mode\":\"pop3\",\"seconds\":%.3f,\"warmup\":%.3f,\"count\":%" PRIu64
	       ",\"sessions\":%" PRIu64 ",\"rate\":%.2f,\"bytes\":%" PRIu64 ",\"mbps\":%.3f,"
	       "\"errors\":%" PRIu64 ",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"first_error\":",
	       secs, warm, p.msgs, p.sessions, (double)p.msgs / secs, p.bytes,
	       (double)p.bytes / 1e6 / secs, p.errors, hist_quantile(&p.hist, 0.50),
	       hist_quantile(&p.hist, 0.99));
	json_str(p.err);
	printf("}\n");
	fflush(stdout);
	if (p.msgs == 0) {
		fprintf(stderr, "loadgen: FAILED: no message retrieved (%" PRIu64 " errors): %s\n",
			p.errors, p.err[0] ? p.err : "no error recorded");
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "lmtp") == 0)
		return run_lmtp(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "pop3") == 0)
		return run_pop3(argc, argv);
	fprintf(stderr,
		"usage: loadgen lmtp HOST PORT CONNS SECONDS SIZE USERPREFIX [WARMUP [NUSERS [DOMAIN]]]\n"
		"       loadgen pop3 HOST PORT USER PASS SECONDS [WARMUP]\n");
	return 2;
}
