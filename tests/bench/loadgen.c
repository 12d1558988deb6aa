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
 *   loadgen imap-fetch HOST PORT USER PASS SECONDS [WARMUP]
 *	One connection, LOGIN once, then runs of SELECT INBOX + FETCH 1:*
 *	(UID FLAGS ENVELOPE), back to back.  A run counts when both commands
 *	said OK and the FETCH returned one response with an ENVELOPE per
 *	message that SELECT announced (EXISTS).
 *
 *   loadgen imap-body HOST PORT USER PASS SECONDS [WARMUP]
 *	Sessions like the pop3 mode: LOGIN, SELECT INBOX, FETCH 1:N
 *	BODY.PEEK[], LOGOUT, repeated.  Bytes counted are the BODY[]
 *	literals of the FETCH responses completed in the measured window.
 *
 *   loadgen imap-search HOST PORT USER PASS SECONDS WARMUP WORD [EXPECT]
 *	One connection, LOGIN, SELECT INBOX, then SEARCH TEXT "WORD" back
 *	to back.  With EXPECT (>= 0), a search whose result does not hold
 *	exactly EXPECT messages is an error.
 *
 *   loadgen imap-noop HOST PORT USER PASS SECONDS [WARMUP]
 *	One connection, LOGIN, then NOOP back to back, lock-step: the cost
 *	of one command's round trip through the server (and, for a roaming
 *	user, through the link to the home POP).  rate is NOOPs/s; p50/p99
 *	are per NOOP.
 *
 *   loadgen imap-idle HOST PORT USER PASS N SECONDS [NUSERS [THREADS]]
 *	Opens N connections (THREADS threads, default 32, in parallel), each
 *	LOGIN + SELECT INBOX; with NUSERS > 0, connection i logs in as
 *	USER<(i % NUSERS) + 1>.  Then prints "READY <ok> <errors>" on stdout
 *	and holds them idle until a line or EOF arrives on stdin, or SECONDS
 *	pass.  Then NOOP on every connection (each must still answer OK),
 *	close, and the JSON line.  RLIMIT_NOFILE is raised to its hard limit.
 *
 * For lmtp, pop3 and imap-body, only work completed inside the measured
 * window [WARMUP, WARMUP+SECONDS] is counted.  imap-fetch, imap-search and
 * imap-noop run whole runs (a NOOP is one run): warm-up lasts WARMUP
 * seconds and at least one run (the first run fills the server's caches),
 * then runs are counted until SECONDS have passed, and rates are over the
 * time those runs took.
 * IMAP modes check every tagged response (OK counts; NO, BAD, a wrong
 * count or a broken connection is an error) and read literals by their
 * announced size.
 *
 * Output: one JSON object on one line on stdout; diagnostics go to
 * stderr.  Latencies (per LMTP transaction, per POP3 RETR, per IMAP run,
 * FETCH command or NOOP) are kept in a log-linear histogram and reported as
 * p50/p99 in milliseconds.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

/* ---- IMAP --------------------------------------------------------------- */

#define IMAP_MAX_IDLE 100000
#define IMAP_IDLE_THREADS 32
#define IMAP_MAX_LITERAL ((uint64_t)1 << 36)

struct imap_conn {
	struct conn c;
	unsigned long tagn;
};

enum imap_kind { IR_UNTAGGED, IR_TAGGED, IR_CONT };

/* One whole response: its first line classified, every line scanned, every
 * literal read (and dropped) by its announced size. */
struct imap_resp {
	enum imap_kind kind;
	char tag[24];		/* tagged: the tag (truncated) */
	char word[16];		/* status or response name, upper case */
	unsigned long num;	/* "* N WORD": N, when has_num */
	bool has_num;
	uint64_t hits;		/* numbers in a "* SEARCH" response */
	bool envelope;		/* an "ENVELOPE (" item was seen */
	unsigned body_lits;	/* literals announced right after "BODY[]" */
	uint64_t body_bytes;	/* their bytes */
	uint64_t lit_bytes;	/* bytes of every literal */
};

typedef void imap_untagged_fn(void *arg, const struct imap_resp *r);

/* Drop the next n bytes of the stream (a literal).  Past what is already
 * buffered, large runs are discarded inside the kernel (recv with
 * MSG_TRUNC on a TCP socket copies nothing), so the client's CPU stays
 * small next to the server's; the tail is read into the buffer with
 * whatever follows it. */
static int conn_skip(struct conn *c, uint64_t n, char *err)
{
	for (;;) {
		size_t avail = c->len - c->off;
		size_t take = n < avail ? (size_t)n : avail;
		ssize_t r;

		c->off += take;
		n -= take;
		if (n == 0)
			return 0;
		c->off = c->len = 0;
		if (n > RBUF_SIZE) {
			size_t want = n - RBUF_SIZE / 2;

			r = recv(c->fd, NULL, want < (1u << 30) ? want : (1u << 30), MSG_TRUNC);
			if (r > 0) {
				n -= (uint64_t)r;
				continue;
			}
		} else {
			r = recv(c->fd, c->buf, sizeof(c->buf), 0);
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			set_err(err, "recv: %s", errno == EAGAIN ? "timeout" : strerror(errno));
			return -1;
		}
		if (r == 0) {
			set_err(err, "connection closed by server inside a literal");
			return -1;
		}
		c->len = (size_t)r;
	}
}

/* 1 and the size when the line ends with a literal announcement {N} or
 * {N+}; *start is the offset of its '{'.  0 otherwise. */
static int literal_at_end(const char *line, size_t len, uint64_t *n, size_t *start)
{
	size_t i, end;
	uint64_t v = 0;

	if (len < 3 || line[len - 1] != '}')
		return 0;
	end = len - 1;
	if (line[end - 1] == '+')
		end--;
	i = end;
	while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
		i--;
	if (i == end || i == 0 || line[i - 1] != '{' || end - i > 12)
		return 0;
	for (size_t k = i; k < end; k++)
		v = v * 10 + (uint64_t)(line[k] - '0');
	if (v > IMAP_MAX_LITERAL)
		return 0;
	*n = v;
	*start = i - 1;
	return 1;
}

/* Does line[0..start) end with "BODY[]" (and optional spaces)? */
static bool body_before(const char *line, size_t start)
{
	while (start > 0 && line[start - 1] == ' ')
		start--;
	return start >= 6 && memcmp(line + start - 6, "BODY[]", 6) == 0;
}

static int imap_classify(struct imap_resp *r, const char *line, size_t len, const char *shown,
			 char *err)
{
	size_t i = 0, w = 0;

	if (len >= 1 && line[0] == '+') {
		r->kind = IR_CONT;
		return 0;
	}
	if (len >= 2 && line[0] == '*' && line[1] == ' ') {
		r->kind = IR_UNTAGGED;
		i = 2;
		if (i < len && line[i] >= '0' && line[i] <= '9') {
			unsigned long v = 0;

			for (; i < len && line[i] >= '0' && line[i] <= '9'; i++) {
				if (v > 999999999ul)
					goto bad;
				v = v * 10 + (unsigned long)(line[i] - '0');
			}
			if (i == len || line[i] != ' ')
				goto bad;
			i++;
			r->num = v;
			r->has_num = true;
		}
	} else {
		r->kind = IR_TAGGED;
		for (; i < len && line[i] != ' '; i++) {
			if (w < sizeof(r->tag) - 1)
				r->tag[w++] = line[i];
		}
		r->tag[w] = '\0';
		if (w == 0 || i == len)
			goto bad;
		i++;
		w = 0;
	}
	for (; i < len && line[i] != ' ' && line[i] != '[' && w < sizeof(r->word) - 1; i++) {
		char ch = line[i];

		r->word[w++] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 'a' + 'A') : ch;
	}
	r->word[w] = '\0';
	if (w == 0)
		goto bad;
	if (r->kind == IR_UNTAGGED && strcmp(r->word, "SEARCH") == 0) {
		bool in_num = false;

		for (; i < len; i++) {
			if (line[i] >= '0' && line[i] <= '9') {
				if (!in_num)
					r->hits++;
				in_num = true;
			} else if (line[i] == ' ') {
				in_num = false;
			} else {
				set_err(err, "unexpected SEARCH response: %s", shown);
				return -1;
			}
		}
	}
	return 0;
bad:
	set_err(err, "malformed IMAP response: %s", shown);
	return -1;
}

/* Read one whole response.  0, or -1 (I/O error, malformed). */
static int imap_read(struct imap_conn *ic, struct imap_resp *r, char *err)
{
	struct conn *c = &ic->c;
	const char *line;
	size_t len, start;
	uint64_t n;
	bool first = true;

	memset(r, 0, sizeof(*r));
	for (;;) {
		bool body;

		if (read_line(c, &line, &len, err) < 0)
			return -1;
		if (first) {
			first = false;
			remember(c, line, len);
			if (imap_classify(r, line, len, c->last, err) < 0)
				return -1;
		}
		if (!r->envelope && memmem(line, len, "ENVELOPE (", 10) != NULL)
			r->envelope = true;
		if (!literal_at_end(line, len, &n, &start))
			return 0;
		body = body_before(line, start);
		if (conn_skip(c, n, err) < 0)
			return -1;
		r->lit_bytes += n;
		if (body) {
			r->body_lits++;
			r->body_bytes += n;
		}
	}
}

/* Send "TAG cmd" and read up to its tagged reply; untagged responses go to
 * fn.  1 for OK, 0 for NO/BAD (connection still usable), -1 broken. */
static int imap_cmd(struct imap_conn *ic, const char *cmd, imap_untagged_fn *fn, void *arg,
		    char *err)
{
	char tag[24];
	struct iovec iov[3];
	struct imap_resp r;
	size_t name_len = strcspn(cmd, " ");
	bool logout = strcmp(cmd, "LOGOUT") == 0;

	snprintf(tag, sizeof(tag), "a%lu ", ++ic->tagn);
	iov[0].iov_base = tag;
	iov[0].iov_len = strlen(tag);
	iov[1].iov_base = (void *)cmd;
	iov[1].iov_len = strlen(cmd);
	iov[2].iov_base = (void *)"\r\n";
	iov[2].iov_len = 2;
	if (send_iov(&ic->c, iov, 3, err) < 0)
		return -1;
	tag[strlen(tag) - 1] = '\0';
	for (;;) {
		if (imap_read(ic, &r, err) < 0)
			return -1;
		if (r.kind == IR_UNTAGGED) {
			if (strcmp(r.word, "BYE") == 0 && !logout) {
				set_err(err, "%.*s: %s", (int)name_len, cmd, ic->c.last);
				return -1;
			}
			if (fn != NULL)
				fn(arg, &r);
			continue;
		}
		if (r.kind == IR_CONT || strcmp(r.tag, tag) != 0) {
			set_err(err, "%.*s: unexpected response: %s", (int)name_len, cmd, ic->c.last);
			return -1;
		}
		if (strcmp(r.word, "OK") == 0)
			return 1;
		set_err(err, "%.*s: %s", (int)name_len, cmd, ic->c.last);
		return (strcmp(r.word, "NO") == 0 || strcmp(r.word, "BAD") == 0) ? 0 : -1;
	}
}

/* s as an IMAP quoted string into out; -1 if it does not fit or holds CR/LF. */
static int imap_quote(char *out, size_t outsz, const char *s)
{
	size_t o = 0;

	if (outsz < 3)
		return -1;
	out[o++] = '"';
	for (; *s != '\0'; s++) {
		if (*s == '\r' || *s == '\n' || o + 4 > outsz)
			return -1;
		if (*s == '"' || *s == '\\')
			out[o++] = '\\';
		out[o++] = *s;
	}
	out[o++] = '"';
	out[o] = '\0';
	return 0;
}

/* Connect, greeting, LOGIN.  0, or -1 with err set. */
static int imap_open(struct imap_conn *ic, const char *host, const char *port, const char *user,
		     const char *pass, char *err)
{
	struct imap_resp r;
	char quser[300], qpass[300], cmd[700];

	ic->tagn = 0;
	if (conn_open(&ic->c, host, port, err) < 0)
		return -1;
	if (imap_read(ic, &r, err) < 0)
		return -1;
	if (r.kind != IR_UNTAGGED || strcmp(r.word, "OK") != 0) {
		set_err(err, "greeting: %s", ic->c.last);
		return -1;
	}
	if (imap_quote(quser, sizeof(quser), user) < 0 || imap_quote(qpass, sizeof(qpass), pass) < 0) {
		set_err(err, "user or password cannot be quoted");
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "LOGIN %s %s", quser, qpass);
	return imap_cmd(ic, cmd, NULL, NULL, err) == 1 ? 0 : -1;
}

static void imap_logout(struct imap_conn *ic)
{
	char ignore[ERR_MAX] = "";

	if (ic->c.fd >= 0)
		(void)imap_cmd(ic, "LOGOUT", NULL, NULL, ignore);
	conn_close(&ic->c);
}

static void on_exists(void *arg, const struct imap_resp *r)
{
	if (r->has_num && strcmp(r->word, "EXISTS") == 0)
		*(unsigned long *)arg = r->num;
}

/* SELECT INBOX; *exists from its EXISTS response.  As imap_cmd. */
static int imap_select(struct imap_conn *ic, unsigned long *exists, char *err)
{
	*exists = 0;
	return imap_cmd(ic, "SELECT INBOX", on_exists, exists, err);
}

struct fetch_count {
	unsigned long fetches, with_envelope;
};

static void on_fetch_envelope(void *arg, const struct imap_resp *r)
{
	struct fetch_count *f = arg;

	if (r->has_num && strcmp(r->word, "FETCH") == 0) {
		f->fetches++;
		if (r->envelope)
			f->with_envelope++;
	}
}

struct search_count {
	uint64_t hits;
	unsigned responses;
};

static void on_search(void *arg, const struct imap_resp *r)
{
	struct search_count *s = arg;

	if (!r->has_num && strcmp(r->word, "SEARCH") == 0) {
		s->hits += r->hits;
		s->responses++;
	}
}

/* -- imap-fetch, imap-search and imap-noop: whole runs, back to back -- */

enum imap_mode { IM_FETCH, IM_SEARCH, IM_NOOP };

struct imap_rep {
	const char *host, *port, *user, *pass;
	enum imap_mode mode;
	char search_cmd[300];
	long long expect;
	double warm, secs, elapsed;
	unsigned long exists;
	uint64_t runs, warm_runs, items, errors, reconnects;
	struct hist hist;
	char err[ERR_MAX];
	struct imap_conn ic;
};

/* One run.  1 ok (*items: messages fetched or found, 1 for a NOOP), 0
 * failed (connection usable), -1 broken. */
static int imap_run_once(struct imap_rep *p, uint64_t *items)
{
	int rc;

	if (p->mode == IM_NOOP) {
		rc = imap_cmd(&p->ic, "NOOP", NULL, NULL, p->err);
		if (rc == 1)
			*items = 1;
		return rc;
	}
	if (p->mode == IM_FETCH) {
		struct fetch_count f = { 0, 0 };

		rc = imap_select(&p->ic, &p->exists, p->err);
		if (rc != 1)
			return rc;
		if (p->exists == 0) {
			set_err(p->err, "SELECT INBOX: the mailbox is empty");
			return 0;
		}
		rc = imap_cmd(&p->ic, "FETCH 1:* (UID FLAGS ENVELOPE)", on_fetch_envelope, &f, p->err);
		if (rc != 1)
			return rc;
		if (f.fetches != p->exists || f.with_envelope != p->exists) {
			set_err(p->err, "FETCH 1:*: %lu responses, %lu with ENVELOPE, for %lu messages",
				f.fetches, f.with_envelope, p->exists);
			return 0;
		}
		*items = p->exists;
		return 1;
	} else {
		struct search_count s = { 0, 0 };

		rc = imap_cmd(&p->ic, p->search_cmd, on_search, &s, p->err);
		if (rc != 1)
			return rc;
		if (s.responses != 1) {
			set_err(p->err, "SEARCH: %u untagged SEARCH responses", s.responses);
			return 0;
		}
		if (p->expect >= 0 && s.hits != (uint64_t)p->expect) {
			set_err(p->err, "%s: %" PRIu64 " messages found, expected %lld", p->search_cmd,
				s.hits, p->expect);
			return 0;
		}
		*items = s.hits;
		return 1;
	}
}

static int imap_rep_connect(struct imap_rep *p)
{
	if (imap_open(&p->ic, p->host, p->port, p->user, p->pass, p->err) < 0)
		return -1;
	if (p->mode == IM_SEARCH) {
		if (imap_select(&p->ic, &p->exists, p->err) != 1)
			return -1;
		if (p->exists == 0) {
			set_err(p->err, "SELECT INBOX: the mailbox is empty");
			return -1;
		}
	}
	return 0;
}

static void imap_rep_loop(struct imap_rep *p)
{
	double t_begin = now_s(), t_measure = 0, t_last = 0;
	double give_up = t_begin + p->warm + p->secs + 120;
	bool connected = false, measuring = false;

	p->ic.c.fd = -1;
	for (;;) {
		double t0 = now_s(), t1;
		uint64_t items = 0;
		int rc;

		if (t0 > give_up || (!measuring && p->errors >= 3 && t0 > t_begin + p->warm + p->secs)) {
			set_err(p->err, "gave up");
			break;
		}
		if (!connected) {
			if (imap_rep_connect(p) < 0) {
				p->errors++;
				conn_close(&p->ic.c);
				usleep(100 * 1000);
				continue;
			}
			connected = true;
			t0 = now_s();
		}
		rc = imap_run_once(p, &items);
		t1 = now_s();
		if (rc == 1) {
			if (!measuring) {
				/* warm-up: WARMUP seconds and at least one whole run */
				p->warm_runs++;
				if (t1 - t_begin >= p->warm) {
					measuring = true;
					t_measure = t1;
				}
				continue;
			}
			p->runs++;
			p->items += items;
			hist_add(&p->hist, t1 - t0);
			t_last = t1;
			if (t1 - t_measure >= p->secs)
				break;
			continue;
		}
		p->errors++;
		if (rc < 0) {
			conn_close(&p->ic.c);
			connected = false;
			p->reconnects++;
		}
		usleep(10 * 1000);
	}
	p->elapsed = p->runs > 0 ? t_last - t_measure : 0;
	if (connected)
		imap_logout(&p->ic);
}

static int imap_usage(void)
{
	fprintf(stderr,
		"usage: loadgen imap-fetch HOST PORT USER PASS SECONDS [WARMUP]\n"
		"       loadgen imap-body HOST PORT USER PASS SECONDS [WARMUP]\n"
		"       loadgen imap-search HOST PORT USER PASS SECONDS WARMUP WORD [EXPECT]\n"
		"       loadgen imap-noop HOST PORT USER PASS SECONDS [WARMUP]\n"
		"       loadgen imap-idle HOST PORT USER PASS N SECONDS [NUSERS [THREADS]]\n");
	return 2;
}

static int check_userpass(const char *user, const char *pass)
{
	if (strlen(user) > 200 || strlen(pass) > 200) {
		fprintf(stderr, "loadgen: USER/PASS too long\n");
		return -1;
	}
	return 0;
}

static int run_imap_rep(int argc, char **argv, enum imap_mode mode)
{
	static struct imap_rep p;	/* big: holds the read buffer */
	const char *name = mode == IM_FETCH ? "imap-fetch" : mode == IM_NOOP ? "imap-noop"
		: "imap-search";
	double rate, item_rate;

	if ((mode != IM_SEARCH && (argc < 7 || argc > 8)) ||
	    (mode == IM_SEARCH && (argc < 9 || argc > 10)))
		return imap_usage();
	p.mode = mode;
	p.host = argv[2];
	p.port = argv[3];
	p.user = argv[4];
	p.pass = argv[5];
	p.warm = 1.0;
	p.expect = -1;
	if (check_userpass(p.user, p.pass) < 0)
		return 2;
	if (parse_secs(argv[6], &p.secs) < 0 || p.secs <= 0) {
		fprintf(stderr, "loadgen: bad SECONDS %s\n", argv[6]);
		return 2;
	}
	if (argc > 7 && parse_secs(argv[7], &p.warm) < 0) {
		fprintf(stderr, "loadgen: bad WARMUP %s\n", argv[7]);
		return 2;
	}
	if (mode == IM_SEARCH) {
		char q[260];

		if (imap_quote(q, sizeof(q), argv[8]) < 0 || argv[8][0] == '\0') {
			fprintf(stderr, "loadgen: bad WORD\n");
			return 2;
		}
		snprintf(p.search_cmd, sizeof(p.search_cmd), "SEARCH TEXT %s", q);
		if (argc > 9) {
			unsigned long long v;

			if (parse_uint(argv[9], 1000000000ull, &v) < 0) {
				fprintf(stderr, "loadgen: bad EXPECT %s\n", argv[9]);
				return 2;
			}
			p.expect = (long long)v;
		}
	}
	imap_rep_loop(&p);
	rate = p.elapsed > 0 ? (double)p.runs / p.elapsed : 0;
	item_rate = p.elapsed > 0 ? (double)p.items / p.elapsed : 0;
	printf("{\"mode\":\"%s\",\"seconds\":%.3f,\"warmup\":%.3f,\"count\":%" PRIu64
	       ",\"warmup_runs\":%" PRIu64 ",\"rate\":%.3f,\"ms_per_run\":%.3f,\"exists\":%lu,"
	       "\"items\":%" PRIu64 ",\"items_per_s\":%.2f,\"errors\":%" PRIu64
	       ",\"reconnects\":%" PRIu64 ",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"first_error\":",
	       name, p.elapsed, p.warm, p.runs, p.warm_runs, rate,
	       p.runs > 0 ? p.elapsed * 1000.0 / (double)p.runs : 0.0, p.exists, p.items,
	       item_rate, p.errors, p.reconnects, hist_quantile(&p.hist, 0.50),
	       hist_quantile(&p.hist, 0.99));
	json_str(p.err);
	printf("}\n");
	fflush(stdout);
	if (p.runs == 0) {
		fprintf(stderr, "loadgen: FAILED: no %s run succeeded (%" PRIu64 " errors): %s\n",
			name, p.errors, p.err[0] ? p.err : "no error recorded");
		return 1;
	}
	if (p.errors > 0)
		fprintf(stderr, "loadgen: %s: %" PRIu64 " errors, first: %s\n", name, p.errors, p.err);
	return 0;
}

/* -- imap-body: sessions of LOGIN, SELECT, FETCH 1:N BODY.PEEK[], LOGOUT -- */

struct body_count {
	double t_measure, t_end;
	unsigned long fetches, bodies;
	uint64_t msgs_in, bytes_in;
};

static void on_fetch_body(void *arg, const struct imap_resp *r)
{
	struct body_count *b = arg;
	double t;

	if (!r->has_num || strcmp(r->word, "FETCH") != 0)
		return;
	b->fetches++;
	if (r->body_lits != 1)
		return;
	b->bodies++;
	t = now_s();
	if (t >= b->t_measure && t <= b->t_end) {
		b->msgs_in++;
		b->bytes_in += r->body_bytes;
	}
}

struct imap_body_run {
	const char *host, *port, *user, *pass;
	double t_measure, t_end;
	uint64_t msgs, bytes, sessions, errors;
	struct hist hist;	/* per FETCH 1:N command */
	char err[ERR_MAX];
	struct imap_conn ic;
};

static int imap_body_session(struct imap_body_run *p)
{
	struct body_count b = { .t_measure = p->t_measure, .t_end = p->t_end };
	unsigned long exists;
	char cmd[64];
	double t0, t1;

	if (imap_open(&p->ic, p->host, p->port, p->user, p->pass, p->err) < 0)
		return -1;
	if (imap_select(&p->ic, &exists, p->err) != 1)
		return -1;
	if (exists == 0) {
		set_err(p->err, "SELECT INBOX: the mailbox is empty");
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "FETCH 1:%lu BODY.PEEK[]", exists);
	t0 = now_s();
	if (imap_cmd(&p->ic, cmd, on_fetch_body, &b, p->err) != 1)
		return -1;
	t1 = now_s();
	if (b.fetches != exists || b.bodies != exists) {
		set_err(p->err, "%s: %lu responses, %lu with a BODY[] literal", cmd, b.fetches,
			b.bodies);
		return -1;
	}
	p->msgs += b.msgs_in;
	p->bytes += b.bytes_in;
	if (t1 >= p->t_measure && t1 <= p->t_end)
		hist_add(&p->hist, t1 - t0);
	if (imap_cmd(&p->ic, "LOGOUT", NULL, NULL, p->err) != 1)
		return -1;
	conn_close(&p->ic.c);
	return 0;
}

static int run_imap_body(int argc, char **argv)
{
	static struct imap_body_run p;	/* big: holds the read buffer */
	double secs, warm = 1.0, t_start;

	if (argc < 7 || argc > 8)
		return imap_usage();
	p.host = argv[2];
	p.port = argv[3];
	p.user = argv[4];
	p.pass = argv[5];
	if (check_userpass(p.user, p.pass) < 0)
		return 2;
	if (parse_secs(argv[6], &secs) < 0 || secs <= 0) {
		fprintf(stderr, "loadgen: bad SECONDS %s\n", argv[6]);
		return 2;
	}
	if (argc > 7 && parse_secs(argv[7], &warm) < 0) {
		fprintf(stderr, "loadgen: bad WARMUP %s\n", argv[7]);
		return 2;
	}
	p.ic.c.fd = -1;
	t_start = now_s();
	p.t_measure = t_start + warm;
	p.t_end = p.t_measure + secs;
	while (now_s() < p.t_end) {
		if (imap_body_session(&p) < 0) {
			p.errors++;
			conn_close(&p.ic.c);
			if (p.errors <= 3)
				fprintf(stderr, "loadgen: imap-body session failed: %s\n", p.err);
			usleep(100 * 1000);
			continue;
		}
		p.sessions++;
	}
	printf("{\"mode\":\"imap-body\",\"seconds\":%.3f,\"warmup\":%.3f,\"count\":%" PRIu64
	       ",\"sessions\":%" PRIu64 ",\"rate\":%.2f,\"bytes\":%" PRIu64 ",\"mbps\":%.3f,"
	       "\"errors\":%" PRIu64 ",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"first_error\":",
	       secs, warm, p.msgs, p.sessions, (double)p.msgs / secs, p.bytes,
	       (double)p.bytes / 1e6 / secs, p.errors, hist_quantile(&p.hist, 0.50),
	       hist_quantile(&p.hist, 0.99));
	json_str(p.err);
	printf("}\n");
	fflush(stdout);
	if (p.msgs == 0) {
		fprintf(stderr, "loadgen: FAILED: no message fetched (%" PRIu64 " errors): %s\n",
			p.errors, p.err[0] ? p.err : "no error recorded");
		return 1;
	}
	return 0;
}

/* -- imap-idle: N logged-in, selected, idle connections -- */

struct idle_shared {
	const char *host, *port, *user, *pass;
	unsigned n, nusers, nthreads;
	struct imap_conn *conns;
	bool *up;
};

struct idle_worker {
	pthread_t th;
	unsigned id;
	int phase;		/* 1: open, 2: NOOP and close */
	struct idle_shared *sh;
	uint64_t opened, failed, alive, lost;
	char err[ERR_MAX];
};

static void *idle_thread(void *arg)
{
	struct idle_worker *w = arg;
	struct idle_shared *sh = w->sh;

	for (unsigned i = w->id; i < sh->n; i += sh->nthreads) {
		struct imap_conn *ic = &sh->conns[i];

		if (w->phase == 1) {
			char user[256];
			unsigned long exists;

			if (sh->nusers > 0)
				snprintf(user, sizeof(user), "%s%u", sh->user, i % sh->nusers + 1);
			else
				snprintf(user, sizeof(user), "%s", sh->user);
			ic->c.fd = -1;
			if (imap_open(ic, sh->host, sh->port, user, sh->pass, w->err) < 0 ||
			    imap_select(ic, &exists, w->err) != 1) {
				w->failed++;
				conn_close(&ic->c);
				continue;
			}
			sh->up[i] = true;
			w->opened++;
		} else if (sh->up[i]) {
			if (imap_cmd(ic, "NOOP", NULL, NULL, w->err) == 1)
				w->alive++;
			else
				w->lost++;
			conn_close(&ic->c);
		}
	}
	return NULL;
}

static int idle_phase(struct idle_shared *sh, struct idle_worker *ws, int phase)
{
	for (unsigned t = 0; t < sh->nthreads; t++) {
		ws[t].id = t;
		ws[t].sh = sh;
		ws[t].phase = phase;
		if (pthread_create(&ws[t].th, NULL, idle_thread, &ws[t]) != 0) {
			fprintf(stderr, "loadgen: pthread_create failed\n");
			for (unsigned k = 0; k < t; k++)
				pthread_join(ws[k].th, NULL);
			return -1;
		}
	}
	for (unsigned t = 0; t < sh->nthreads; t++)
		pthread_join(ws[t].th, NULL);
	return 0;
}

/* Raise the soft descriptor limit to the hard one (and the hard one when
 * allowed) so that `want` descriptors fit. */
static int raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
		struct rlimit up = { want, want };

		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return 0;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	return (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want) ? 0 : -1;
}

/* Block until a line or EOF on stdin, or `secs` pass. */
static void wait_stdin(double secs)
{
	double end = now_s() + secs;

	for (;;) {
		struct pollfd pfd = { .fd = 0, .events = POLLIN };
		double left = end - now_s();
		char ch;
		int r;

		if (left <= 0)
			return;
		r = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		if (read(0, &ch, 1) != 1 || ch == '\n')
			return;
	}
}

static int run_imap_idle(int argc, char **argv)
{
	struct idle_shared sh = { .nthreads = IMAP_IDLE_THREADS };
	struct idle_worker *ws;
	unsigned long long v;
	uint64_t opened = 0, failed = 0, alive = 0, lost = 0;
	double secs, t0, t_setup, t_held;
	const char *first_err = "";

	if (argc < 8 || argc > 10)
		return imap_usage();
	sh.host = argv[2];
	sh.port = argv[3];
	sh.user = argv[4];
	sh.pass = argv[5];
	if (check_userpass(sh.user, sh.pass) < 0)
		return 2;
	if (parse_uint(argv[6], IMAP_MAX_IDLE, &v) < 0 || v == 0) {
		fprintf(stderr, "loadgen: bad N %s (1..%d)\n", argv[6], IMAP_MAX_IDLE);
		return 2;
	}
	sh.n = (unsigned)v;
	if (parse_secs(argv[7], &secs) < 0 || secs <= 0) {
		fprintf(stderr, "loadgen: bad SECONDS %s\n", argv[7]);
		return 2;
	}
	if (argc > 8) {
		if (parse_uint(argv[8], 1000000, &v) < 0) {
			fprintf(stderr, "loadgen: bad NUSERS %s\n", argv[8]);
			return 2;
		}
		sh.nusers = (unsigned)v;
	}
	if (argc > 9) {
		if (parse_uint(argv[9], MAX_CONNS, &v) < 0 || v == 0) {
			fprintf(stderr, "loadgen: bad THREADS %s\n", argv[9]);
			return 2;
		}
		sh.nthreads = (unsigned)v;
	}
	if (raise_nofile((rlim_t)sh.n + 64) < 0) {
		fprintf(stderr, "loadgen: cannot raise RLIMIT_NOFILE to %u (ulimit -n)\n", sh.n + 64);
		return 1;
	}
	sh.conns = calloc(sh.n, sizeof(*sh.conns));
	sh.up = calloc(sh.n, sizeof(*sh.up));
	ws = calloc(sh.nthreads, sizeof(*ws));
	if (sh.conns == NULL || sh.up == NULL || ws == NULL) {
		fprintf(stderr, "loadgen: out of memory\n");
		free(sh.conns);
		free(sh.up);
		free(ws);
		return 1;
	}
	t0 = now_s();
	if (idle_phase(&sh, ws, 1) < 0)
		return 1;
	t_setup = now_s() - t0;
	for (unsigned t = 0; t < sh.nthreads; t++) {
		opened += ws[t].opened;
		failed += ws[t].failed;
		if (first_err[0] == '\0' && ws[t].err[0] != '\0')
			first_err = ws[t].err;
	}
	printf("READY %" PRIu64 " %" PRIu64 "\n", opened, failed);
	fflush(stdout);
	t0 = now_s();
	wait_stdin(secs);
	t_held = now_s() - t0;
	if (idle_phase(&sh, ws, 2) < 0)
		return 1;
	for (unsigned t = 0; t < sh.nthreads; t++) {
		alive += ws[t].alive;
		lost += ws[t].lost;
		if (first_err[0] == '\0' && ws[t].err[0] != '\0')
			first_err = ws[t].err;
	}
	printf("{\"mode\":\"imap-idle\",\"conns\":%u,\"count\":%" PRIu64 ",\"rate\":%" PRIu64
	       ",\"errors\":%" PRIu64 ",\"setup_s\":%.3f,\"logins_per_s\":%.1f,\"held_s\":%.3f,"
	       "\"alive\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"first_error\":",
	       sh.n, opened, opened, failed + lost, t_setup,
	       t_setup > 0 ? (double)opened / t_setup : 0.0, t_held, alive, lost);
	json_str(first_err);
	printf("}\n");
	fflush(stdout);
	if (failed + lost > 0)
		fprintf(stderr, "loadgen: imap-idle: %" PRIu64 " failed, %" PRIu64 " lost, first: %s\n",
			failed, lost, first_err);
	free(sh.conns);
	free(sh.up);
	free(ws);
	return opened == 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "lmtp") == 0)
		return run_lmtp(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "pop3") == 0)
		return run_pop3(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "imap-fetch") == 0)
		return run_imap_rep(argc, argv, IM_FETCH);
	if (argc >= 2 && strcmp(argv[1], "imap-search") == 0)
		return run_imap_rep(argc, argv, IM_SEARCH);
	if (argc >= 2 && strcmp(argv[1], "imap-noop") == 0)
		return run_imap_rep(argc, argv, IM_NOOP);
	if (argc >= 2 && strcmp(argv[1], "imap-body") == 0)
		return run_imap_body(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "imap-idle") == 0)
		return run_imap_idle(argc, argv);
	fprintf(stderr,
		"usage: loadgen lmtp HOST PORT CONNS SECONDS SIZE USERPREFIX [WARMUP [NUSERS [DOMAIN]]]\n"
		"       loadgen pop3 HOST PORT USER PASS SECONDS [WARMUP]\n");
	(void)imap_usage();
	return 2;
}
