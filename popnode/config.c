/*
 * config.c - popnode's configuration file: a table of directives, each with
 * its type, field, range and default, and one line parser that walks it.
 * The check for what spans several directives is in config_check.c, dev
 * mode and the lookups in config_util.c, what they share in config_int.h.
 *
 * The table (directives[] below) is the single source of truth: defaults are
 * written in the file syntax ("50M", "10m") and applied by config_defaults()
 * through the same value parsers a config file goes through, so a default
 * can never be something the file could not say.  docs/config.md describes
 * every row.
 *
 * Parsing does no I/O: config_parse_buf() takes bytes and either fills the
 * struct or reports the first error as "NAME:LINE: reason".  It works on a
 * copy and commits only on success, so a failed reload leaves the running
 * config untouched.  config_parse_file() is the only function that reads a
 * file.  Text quoted back in messages goes through log_sanitize(), so a
 * hostile or binary file cannot put control bytes into an operator's
 * terminal or log.
 *
 * Listen lines carry a policy, not only an address: anything that would put
 * passwords or mail on the network in the clear must be asked for in words
 * ("plaintext-auth", "no-starttls", "plaintext"), and the parser says so when
 * the word is missing.
 *
 * The link directives (link_listen, link_*, peer) use the same numeric
 * address syntax as listen; a peer's id may not repeat, nor may its
 * address.  Whatever depends on another line (files present when the link
 * is used, a peer named like this node, link_listen clashing with a
 * listener) is config_check()'s, since lines may come in any order.
 *
 * The anycast directives add three value types: a prefix (anycast/prefix.h
 * parses it; repeatable, duplicates refused in canonical form), an
 * interface name, yes/no, and a duration in milliseconds that also takes
 * an "ms" suffix (the health timers).  The older durations keep their
 * whole-second syntax and messages.
 */
#include "config_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define CONFIG_LINE_MAX 4096		/* bytes in one config line */
#define CONFIG_FILE_MAX (1024 * 1024)	/* bytes in one config file */
#define CONFIG_TOKENS_MAX 8		/* words on one line */

enum dtype {
	D_NODE_ID,	/* [a-z0-9-]{1,63} */
	D_PATH,		/* absolute path */
	D_LOG_TARGET,	/* stderr | syslog | absolute path */
	D_LOG_LEVEL,	/* error | warn | info | debug */
	D_USER,		/* system user name */
	D_DOMAIN,	/* repeatable; "*" = any domain */
	D_LISTEN,	/* repeatable; PROTO ADDRESS [options] */
	D_LINK_LISTEN,	/* IPv4:port | [IPv6]:port */
	D_PEER,		/* repeatable; ID IPv4:port | ID [IPv6]:port */
	D_UINT,		/* plain decimal number */
	D_SIZE,		/* number with K/M/G/T suffix */
	D_DURATION,	/* seconds, or number with s/m/h suffix */
	D_DURATION_MS,	/* the same, or with ms; stored in milliseconds */
	D_BOOL,		/* yes | no */
	D_IFNAME,	/* a network interface name */
	D_ANYCAST,	/* repeatable; IPv4/len or IPv6/len */
	D_MIRRORS,	/* one or two POP ids */
	D_ACK_MODE,	/* local | mirror (enum config_repl_ack) */
	D_DEGRADED,	/* accept | tempfail (enum config_repl_degraded) */
};

enum fkind { F_STR, F_INT, F_UNSIGNED, F_SIZE_T, F_U64, F_BOOL, F_NONE };

struct directive {
	const char *name;
	enum dtype type;
	enum fkind kind;
	size_t off;		/* field in struct config */
	size_t size;		/* sizeof that field */
	uint64_t min, max;	/* numbers only */
	const char *def;	/* default in file syntax, NULL = empty */
};

#define FIELD(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define STR(n, t, f, d) { n, t, F_STR, FIELD(f), 0, 0, d }
#define NUM(n, t, k, f, lo, hi, d) { n, t, k, FIELD(f), lo, hi, d }

static const char *const repl_ack_words[] = {
	[CONFIG_ACK_LOCAL] = "local", [CONFIG_ACK_MIRROR] = "mirror", NULL,
};
static const char *const repl_degraded_words[] = {
	[CONFIG_DEGRADED_ACCEPT] = "accept", [CONFIG_DEGRADED_TEMPFAIL] = "tempfail", NULL,
};

static const struct directive directives[] = {
	STR("node_id", D_NODE_ID, node_id, NULL),
	STR("data_dir", D_PATH, data_dir, NULL),
	STR("log", D_LOG_TARGET, log_target, "stderr"),
	{ "log_level", D_LOG_LEVEL, F_INT, FIELD(log_level), 0, 0, "info" },
	STR("tls_cert", D_PATH, tls_cert, NULL),
	STR("tls_key", D_PATH, tls_key, NULL),
	STR("control_socket", D_PATH, control_socket, "/run/popnode/control.sock"),
	STR("user", D_USER, run_user, NULL),
	{ "domain", D_DOMAIN, F_NONE, 0, 0, 0, 0, NULL },
	{ "listen", D_LISTEN, F_NONE, 0, 0, 0, 0, NULL },
	NUM("max_line_length", D_SIZE, F_SIZE_T, max_line_length, 512, MIB, "8K"),
	NUM("max_message_size", D_SIZE, F_SIZE_T, max_message_size, KIB, 4 * GIB, "50M"),
	NUM("max_recipients", D_UINT, F_UNSIGNED, max_recipients, 1, 10000, "100"),
	NUM("max_sessions", D_UINT, F_UNSIGNED, max_sessions, 1, 1000000, "10000"),
	NUM("max_sessions_per_ip", D_UINT, F_UNSIGNED, max_sessions_per_ip, 1, 1000000, "50"),
	NUM("auth_fail_delay_after", D_UINT, F_UNSIGNED, auth_fail_delay_after, 0, 1000, "3"),
	NUM("auth_fail_delay_ms", D_UINT, F_UNSIGNED, auth_fail_delay_ms, 0, 60000, "1000"),
	NUM("auth_fail_max", D_UINT, F_UNSIGNED, auth_fail_max, 1, 100000, "10"),
	NUM("auth_fail_window", D_DURATION, F_UNSIGNED, auth_fail_window, 1, 86400, "5m"),
	NUM("idle_timeout", D_DURATION, F_UNSIGNED, idle_timeout, 1, 86400, "10m"),
	NUM("pop3_max_bad_commands", D_UINT, F_UNSIGNED, pop3_max_bad_commands, 1, 1000, "10"),
	NUM("default_quota", D_SIZE, F_U64, default_quota, 0, 1024 * TIB, "1G"),
	NUM("map_size", D_SIZE, F_U64, map_size, MIB, 64 * TIB, "16G"),
	NUM("commit_batch_max", D_UINT, F_UNSIGNED, commit_batch_max, 1, 65536, "256"),
	{ "link_listen", D_LINK_LISTEN, F_NONE, 0, 0, 0, 0, NULL },
	STR("link_ca", D_PATH, link_ca, NULL),
	STR("link_cert", D_PATH, link_cert, NULL),
	STR("link_key", D_PATH, link_key, NULL),
	{ "peer", D_PEER, F_NONE, 0, 0, 0, 0, NULL },
	NUM("link_ping_interval", D_DURATION, F_UNSIGNED, link_ping_interval, 1, 60, "1s"),
	NUM("link_timeout", D_DURATION, F_UNSIGNED, link_timeout, 1, 300, "3s"),
	NUM("link_breaker_failures", D_UINT, F_UNSIGNED, link_breaker_failures, 1, 1000, "5"),
	NUM("link_breaker_window", D_DURATION, F_UNSIGNED, link_breaker_window, 1, 3600, "30s"),
	NUM("link_breaker_cooloff", D_DURATION, F_UNSIGNED, link_breaker_cooloff, 1, 3600, "10s"),
	NUM("link_max_hops", D_UINT, F_UNSIGNED, link_max_hops, 1, 16, "2"),
	{ "mirrors", D_MIRRORS, F_NONE, 0, 0, 0, 0, NULL },
	{ "replication_ack", D_ACK_MODE, F_INT, FIELD(replication_ack), 0, 0, "mirror" },
	NUM("replication_ack_timeout", D_DURATION_MS, F_UNSIGNED, replication_ack_timeout_ms, 2000,
	    600000, "5s"),
	{ "replication_degraded", D_DEGRADED, F_INT, FIELD(replication_degraded), 0, 0, "accept" },
	NUM("replication_startup_wait", D_DURATION, F_UNSIGNED, replication_startup_wait, 0, 3600,
	    "10s"),
	{ "anycast_address", D_ANYCAST, F_NONE, 0, 0, 0, 0, NULL },
	STR("anycast_interface", D_IFNAME, anycast_interface, "any0"),
	{ "anycast_create_dummy", D_BOOL, F_BOOL, FIELD(anycast_create_dummy), 0, 0, "yes" },
	STR("bird_socket", D_PATH, bird_socket, "/run/bird/bird.ctl"),
	NUM("health_interval", D_DURATION_MS, F_UNSIGNED, health_interval_ms, 10, 60000, "200ms"),
	NUM("health_rise", D_UINT, F_UNSIGNED, health_rise, 1, 1000, "3"),
	NUM("health_fall", D_UINT, F_UNSIGNED, health_fall, 1, 1000, "2"),
	NUM("health_hold_down", D_DURATION_MS, F_UNSIGNED, health_hold_down_ms, 0, 3600000, "10s"),
	NUM("health_min_free_disk", D_SIZE, F_U64, health_min_free_disk, 0, 1024 * TIB, "1G"),
	NUM("health_max_loop_delay", D_DURATION_MS, F_UNSIGNED, health_max_loop_delay_ms, 10, 60000,
	    "500ms"),
	NUM("health_max_replication_lag", D_DURATION_MS, F_UNSIGNED, health_max_replication_lag_ms,
	    0, 86400000, "60s"),
	{ "health_require_peer", D_BOOL, F_BOOL, FIELD(health_require_peer), 0, 0, "no" },
	STR("maintenance_file", D_PATH, maintenance_file, NULL),
	NUM("heartbeat_timeout", D_DURATION_MS, F_UNSIGNED, heartbeat_timeout_ms, 100, 60000,
	    "600ms"),
};
#define N_DIRECTIVES (sizeof(directives) / sizeof(directives[0]))

const char *const cfg_proto_names[PROTO_COUNT] = {
	[PROTO_LMTP] = "lmtp", [PROTO_POP3] = "pop3", [PROTO_POP3S] = "pop3s",
	[PROTO_IMAP] = "imap", [PROTO_IMAPS] = "imaps", [PROTO_HTTP] = "http",
};

struct tok {
	const char *p;
	size_t len;
};

struct pctx {
	struct config *c;
	const char *name;
	int line;
	char *err;
	size_t errsz;
	int seen[N_DIRECTIVES];	/* line of first use, 0 = not yet */
};

/* ---- messages ------------------------------------------------------------ */

void cfg_set_err(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

/* "NAME:LINE: " + message; always returns -1. */
static int perr(struct pctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int perr(struct pctx *x, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cfg_set_err(x->err, x->errsz, "%s:%d: %s", x->name, x->line, msg);
	return -1;
}

/* A token made safe to quote in a message. */
struct qbuf {
	char s[80];
};

static const char *q(struct qbuf *b, struct tok t)
{
	return log_sanitize(b->s, sizeof(b->s), t.p, t.len);
}

static bool tok_is(struct tok t, const char *s)
{
	size_t n = strlen(s);

	return t.len == n && memcmp(t.p, s, n) == 0;
}

/* "64T", "1G", "512" - the largest suffix that divides v exactly. */
static void fmt_size(char *buf, size_t sz, uint64_t v)
{
	static const struct { uint64_t mul; char c; } units[] = {
		{ TIB, 'T' }, { GIB, 'G' }, { MIB, 'M' }, { KIB, 'K' },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (v != 0 && v % units[i].mul == 0) {
			snprintf(buf, sz, "%llu%c", (unsigned long long)(v / units[i].mul), units[i].c);
			return;
		}
	}
	snprintf(buf, sz, "%llu", (unsigned long long)v);
}

static void fmt_duration(char *buf, size_t sz, uint64_t v)
{
	if (v != 0 && v % 3600 == 0)
		snprintf(buf, sz, "%lluh", (unsigned long long)(v / 3600));
	else if (v != 0 && v % 60 == 0)
		snprintf(buf, sz, "%llum", (unsigned long long)(v / 60));
	else
		snprintf(buf, sz, "%llus", (unsigned long long)v);
}

/* milliseconds: "200ms", or in whole seconds/minutes/hours when exact */
void cfg_fmt_duration_ms(char *buf, size_t sz, uint64_t v)
{
	if (v % 1000 != 0)
		snprintf(buf, sz, "%llums", (unsigned long long)v);
	else
		fmt_duration(buf, sz, v / 1000);
}

static void fmt_value(char *buf, size_t sz, enum dtype t, uint64_t v)
{
	if (t == D_SIZE)
		fmt_size(buf, sz, v);
	else if (t == D_DURATION)
		fmt_duration(buf, sz, v);
	else if (t == D_DURATION_MS)
		cfg_fmt_duration_ms(buf, sz, v);
	else
		snprintf(buf, sz, "%llu", (unsigned long long)v);
}

/* ---- value parsers --------------------------------------------------------- */

/* Leading decimal digits of t into *v.  Returns the number of digits used,
 * 0 if none, -1 on overflow. */
static int parse_digits(struct tok t, uint64_t *v)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < t.len && t.p[i] >= '0' && t.p[i] <= '9'; i++) {
		unsigned d = (unsigned)(t.p[i] - '0');

		if (n > (UINT64_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	*v = n;
	return (int)i;
}

/* 0 ok, -1 malformed, -2 too big for 64 bits. */
static int parse_number(enum dtype type, struct tok t, uint64_t *out)
{
	uint64_t v, mul = 1;
	int nd = parse_digits(t, &v);

	if (nd < 0)
		return -2;
	if (nd == 0)
		return -1;
	if (type == D_DURATION_MS) {
		struct tok unit = { t.p + nd, t.len - (size_t)nd };

		if (unit.len == 0 || tok_is(unit, "s"))
			mul = 1000;
		else if (tok_is(unit, "ms"))
			mul = 1;
		else if (tok_is(unit, "m"))
			mul = 60000;
		else if (tok_is(unit, "h"))
			mul = 3600000;
		else
			return -1;
		if (v > UINT64_MAX / mul)
			return -2;
		*out = v * mul;
		return 0;
	}
	if ((size_t)nd == t.len) {
		*out = v;
		return 0;
	}
	if ((size_t)nd + 1 != t.len || type == D_UINT)
		return -1;
	switch (type == D_SIZE ? t.p[nd] | 0x20 : t.p[nd]) {
	case 'k': mul = type == D_SIZE ? KIB : 0; break;
	case 'm': mul = type == D_SIZE ? MIB : 60; break;
	case 'g': mul = type == D_SIZE ? GIB : 0; break;
	case 't': mul = type == D_SIZE ? TIB : 0; break;
	case 's': mul = type == D_DURATION ? 1 : 0; break;
	case 'h': mul = type == D_DURATION ? 3600 : 0; break;
	default: mul = 0; break;
	}
	if (mul == 0)
		return -1;
	if (v > UINT64_MAX / mul)
		return -2;
	*out = v * mul;
	return 0;
}

bool cfg_valid_node_id(const char *p, size_t len)
{
	if (len < 1 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = p[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
			return false;
	}
	return true;
}

static bool valid_user(struct tok t)
{
	if (t.len < 1 || t.len >= CONFIG_NAME_MAX || t.p[0] == '-')
		return false;
	for (size_t i = 0; i < t.len; i++) {
		char ch = t.p[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
			return false;
	}
	return true;
}

/* RFC 1035 host name: labels of 1-63 [A-Za-z0-9-], no leading or trailing
 * hyphen, at most 253 bytes, no trailing dot. */
static bool valid_domain(struct tok t)
{
	size_t label = 0;

	if (t.len < 1 || t.len > 253)
		return false;
	for (size_t i = 0; i < t.len; i++) {
		char ch = t.p[i];

		if (ch == '.') {
			if (label == 0 || t.p[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-'))
			return false;
		if (ch == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && t.p[t.len - 1] != '-';
}

/* Copy a token into a fixed buffer of a directive's field. */
static int store_str(struct pctx *x, const char *dname, char *dst, size_t dstsz, struct tok v)
{
	if (v.len >= dstsz)
		return perr(x, "%s: value is longer than %zu bytes", dname, dstsz - 1);
	memcpy(dst, v.p, v.len);
	dst[v.len] = '\0';
	return 0;
}

static int check_abs_path(struct pctx *x, const char *dname, struct tok v)
{
	struct qbuf b;

	if (v.len == 0 || v.p[0] != '/')
		return perr(x, "%s: \"%s\" is not an absolute path", dname, q(&b, v));
	return 0;
}

/* ---- listen ---------------------------------------------------------------- */

static bool is_loopback(const struct listen_conf *l)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (l->is_unix)
		return true;
	if (inet_pton(AF_INET, l->host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, l->host, &a6) == 1) {
		if (IN6_IS_ADDR_LOOPBACK(&a6))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
	}
	return false;
}

bool cfg_host_is_wildcard(const char *host)
{
	return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

bool cfg_host_is_v6(const char *host)
{
	return strchr(host, ':') != NULL;
}

/* "[::1]:110", "127.0.0.1:110" */
void cfg_fmt_addr(char *buf, size_t sz, const char *host, uint16_t port)
{
	if (cfg_host_is_v6(host))
		snprintf(buf, sz, "[%s]:%u", host, (unsigned)port);
	else
		snprintf(buf, sz, "%s:%u", host, (unsigned)port);
}

static int parse_port(struct pctx *x, const char *dname, struct tok t, uint16_t *port)
{
	struct qbuf b;
	uint64_t v;

	if (parse_number(D_UINT, t, &v) != 0 || v < 1 || v > 65535)
		return perr(x, "%s: port \"%s\" is not a number from 1 to 65535", dname, q(&b, t));
	*port = (uint16_t)v;
	return 0;
}

/* "IPv4:port" or "[IPv6]:port" into host (canonical text) and port.
 * dname starts the messages; forms lists what the directive accepts;
 * listening says whether the wildcard addresses are worth suggesting. */
static int parse_ip_port(struct pctx *x, const char *dname, const char *forms, bool listening,
			 struct tok a, char *hostout, size_t hostsz, uint16_t *port)
{
	char host[INET6_ADDRSTRLEN + 1];
	struct tok h, pt;
	struct qbuf b;
	unsigned char bin[sizeof(struct in6_addr)];
	int af;

	if (a.len > 0 && a.p[0] == '[') {
		const char *close = memchr(a.p, ']', a.len);

		if (close == NULL || (size_t)(close - a.p) + 1 >= a.len || close[1] != ':')
			return perr(x, "%s: \"%s\" is not [IPv6]:port", dname, q(&b, a));
		h = (struct tok){ a.p + 1, (size_t)(close - a.p) - 1 };
		pt = (struct tok){ close + 2, a.len - (size_t)(close - a.p) - 2 };
		af = AF_INET6;
	} else {
		const char *colon = memrchr(a.p, ':', a.len);

		if (colon == NULL)
			return perr(x, "%s: \"%s\" has no port (%s)", dname, q(&b, a), forms);
		h = (struct tok){ a.p, (size_t)(colon - a.p) };
		pt = (struct tok){ colon + 1, a.len - h.len - 1 };
		if (memchr(h.p, ':', h.len) != NULL)
			return perr(x, "%s: \"%s\": an IPv6 address goes in brackets, as in "
				    "[::1]:110", dname, q(&b, a));
		af = AF_INET;
	}
	if (h.len >= sizeof(host))
		return perr(x, "%s: \"%s\" is not a numeric IP address", dname, q(&b, h));
	memcpy(host, h.p, h.len);
	host[h.len] = '\0';
	if (inet_pton(af, host, bin) != 1)
		return perr(x, "%s: \"%s\" is not a numeric IP%s address (%s)", dname, q(&b, h),
			    af == AF_INET6 ? "v6" : "v4",
			    listening ? "use 0.0.0.0 or [::] for every address"
				      : "host names are not resolved");
	if (inet_ntop(af, bin, hostout, (socklen_t)hostsz) == NULL)
		return perr(x, "%s: \"%s\" is not a numeric IP address", dname, q(&b, h));
	return parse_port(x, dname, pt, port);
}

static int parse_listen_addr(struct pctx *x, struct listen_conf *l, struct tok a)
{
	if (a.len >= 5 && memcmp(a.p, "unix:", 5) == 0) {
		struct tok path = { a.p + 5, a.len - 5 };

		if (l->proto != PROTO_LMTP && l->proto != PROTO_HTTP)
			return perr(x, "listen: unix sockets are only for lmtp and http, not %s",
				    cfg_proto_names[l->proto]);
		if (check_abs_path(x, "listen", path) < 0)
			return -1;
		if (path.len > SUN_PATH_MAX)
			return perr(x, "listen: unix socket path is longer than %zu bytes",
				    SUN_PATH_MAX);
		l->is_unix = true;
		return store_str(x, "listen", l->path, sizeof(l->path), path);
	}
	return parse_ip_port(x, "listen", "IPv4:port, [IPv6]:port or unix:/path", true, a,
			     l->host, sizeof(l->host), &l->port);
}

static int do_listen(struct pctx *x, const struct tok *v, size_t nv)
{
	struct config *c = x->c;
	struct listen_conf l;
	bool o_auth = false, o_nostarttls = false, o_plain = false;
	struct qbuf b;
	int p;

	if (nv < 2)
		return perr(x, "listen: expected PROTO ADDRESS [options], as in "
			    "\"listen pop3s 0.0.0.0:995\"");
	if (c->n_listens >= CONFIG_MAX_LISTENS)
		return perr(x, "listen: more than %d listeners", CONFIG_MAX_LISTENS);
	memset(&l, 0, sizeof(l));
	for (p = 0; p < PROTO_COUNT; p++)
		if (tok_is(v[0], cfg_proto_names[p]))
			break;
	if (p == PROTO_COUNT)
		return perr(x, "listen: unknown protocol \"%s\" (lmtp, pop3, pop3s, imap, imaps, "
			    "http)", q(&b, v[0]));
	l.proto = (enum listen_proto)p;
	if (parse_listen_addr(x, &l, v[1]) < 0)
		return -1;

	for (size_t i = 2; i < nv; i++) {
		bool *flag;

		if (tok_is(v[i], "plaintext-auth"))
			flag = &o_auth;
		else if (tok_is(v[i], "no-starttls"))
			flag = &o_nostarttls;
		else if (tok_is(v[i], "plaintext"))
			flag = &o_plain;
		else
			return perr(x, "listen: unknown option \"%s\" (plaintext-auth, no-starttls, "
				    "plaintext)", q(&b, v[i]));
		if (*flag)
			return perr(x, "listen: option \"%s\" given twice", q(&b, v[i]));
		*flag = true;
	}

	switch (l.proto) {
	case PROTO_POP3:
	case PROTO_IMAP:
		l.tls = o_nostarttls ? LTLS_NONE : LTLS_STARTTLS;
		break;
	case PROTO_POP3S:
	case PROTO_IMAPS:
		l.tls = LTLS_IMPLICIT;
		break;
	default:
		l.tls = LTLS_NONE;
		break;
	}
	bool mailbox = l.proto == PROTO_POP3 || l.proto == PROTO_IMAP;
	if ((o_auth || o_nostarttls) && !mailbox)
		return perr(x, "listen: option \"%s\" is only for pop3 and imap listeners%s",
			    o_auth ? "plaintext-auth" : "no-starttls",
			    l.tls == LTLS_IMPLICIT ? " (this one is TLS from the first byte)" : "");
	if (o_plain && mailbox)
		return perr(x, "listen: option \"plaintext\" is for lmtp and http; %s listeners "
			    "take \"plaintext-auth\" (and \"no-starttls\")",
			    cfg_proto_names[l.proto]);
	if (o_plain && l.tls == LTLS_IMPLICIT)
		return perr(x, "listen: option \"plaintext\" makes no sense on %s, which is TLS "
			    "from the first byte", cfg_proto_names[l.proto]);
	if (o_nostarttls && !o_auth)
		return perr(x, "listen: no-starttls leaves this %s listener without TLS, so "
			    "passwords would cross the network in the clear; add \"plaintext-auth\" "
			    "too if that is really wanted", cfg_proto_names[l.proto]);
	if ((l.proto == PROTO_LMTP || l.proto == PROTO_HTTP) && !is_loopback(&l) && !o_plain)
		return perr(x, "listen: %s on the non-loopback address %s is plaintext; nothing "
			    "listens in plaintext without an explicit setting: add the option "
			    "\"plaintext\"", cfg_proto_names[l.proto], l.host);
	l.plaintext_auth = o_auth;
	snprintf(l.file, sizeof(l.file), "%s", x->name);
	l.line = x->line;
	c->listens[c->n_listens++] = l;
	return 0;
}

/* ---- one directive ----------------------------------------------------------- */

static int do_domain(struct pctx *x, struct tok v)
{
	struct config *c = x->c;
	struct qbuf b;

	if (tok_is(v, "*")) {
		if (c->any_domain)
			return perr(x, "domain: \"*\" given twice");
		c->any_domain = true;
		return 0;
	}
	if (!valid_domain(v))
		return perr(x, "domain: \"%s\" is not a domain name", q(&b, v));
	for (size_t i = 0; i < c->n_domains; i++)
		if (strlen(c->domains[i]) == v.len && strncasecmp(c->domains[i], v.p, v.len) == 0)
			return perr(x, "domain: \"%s\" given twice", q(&b, v));
	if (c->n_domains >= CONFIG_MAX_DOMAINS)
		return perr(x, "domain: more than %d domains", CONFIG_MAX_DOMAINS);
	char *d = c->domains[c->n_domains];
	for (size_t i = 0; i < v.len; i++)
		d[i] = (v.p[i] >= 'A' && v.p[i] <= 'Z') ? (char)(v.p[i] + 32) : v.p[i];
	d[v.len] = '\0';
	c->n_domains++;
	return 0;
}

/* ---- the link ------------------------------------------------------------------ */

static int do_link_listen(struct pctx *x, struct tok v)
{
	struct config *c = x->c;

	if (v.len >= 5 && memcmp(v.p, "unix:", 5) == 0)
		return perr(x, "link_listen: the link is TCP, not a unix socket (IPv4:port or "
			    "[IPv6]:port)");
	if (parse_ip_port(x, "link_listen", "IPv4:port or [IPv6]:port", true, v, c->link_host,
			  sizeof(c->link_host), &c->link_port) < 0)
		return -1;
	c->link_listen_set = true;
	snprintf(c->link_listen_file, sizeof(c->link_listen_file), "%s", x->name);
	c->link_listen_line = x->line;
	return 0;
}

static int do_peer(struct pctx *x, const struct tok *v, size_t nv)
{
	struct config *c = x->c;
	struct peer_conf p;
	char addr[96];
	struct qbuf b;

	if (nv != 2)
		return perr(x, "peer: expected ID HOST:PORT, as in \"peer ams1 10.0.0.2:7443\"");
	if (!cfg_valid_node_id(v[0].p, v[0].len))
		return perr(x, "peer: id \"%s\" must be 1-63 characters of a-z, 0-9 and \"-\" (the "
			    "peer's node_id)", q(&b, v[0]));
	memset(&p, 0, sizeof(p));
	memcpy(p.id, v[0].p, v[0].len);
	if (parse_ip_port(x, "peer", "IPv4:port or [IPv6]:port", false, v[1], p.host,
			  sizeof(p.host), &p.port) < 0)
		return -1;
	cfg_fmt_addr(addr, sizeof(addr), p.host, p.port);
	if (cfg_host_is_wildcard(p.host))
		return perr(x, "peer %s: %s is not an address to connect to (0.0.0.0 and [::] are "
			    "for listening)", p.id, addr);
	for (size_t i = 0; i < c->n_peers; i++) {
		const struct peer_conf *o = &c->peers[i];

		if (strcmp(o->id, p.id) == 0)
			return perr(x, "peer: \"%s\" given twice (first at %s:%d)", p.id, o->file,
				    o->line);
		if (strcmp(o->host, p.host) == 0 && o->port == p.port)
			return perr(x, "peer %s: address %s already used by peer %s at %s:%d", p.id,
				    addr, o->id, o->file, o->line);
	}
	if (c->n_peers >= CONFIG_MAX_PEERS)
		return perr(x, "peer: more than %d peers", CONFIG_MAX_PEERS);
	snprintf(p.file, sizeof(p.file), "%s", x->name);
	p.line = x->line;
	c->peers[c->n_peers++] = p;
	return 0;
}

/* "mirrors POP [POP]": whether each is a peer is checked in check_link. */
static int do_mirrors(struct pctx *x, const struct tok *v, size_t nv)
{
	struct config *c = x->c;
	struct qbuf b;

	if (nv < 1 || nv > CONFIG_MAX_MIRRORS)
		return perr(x, "mirrors: expected one or two POP ids, as in \"mirrors ams1 ber1\"");
	for (size_t i = 0; i < nv; i++) {
		if (!cfg_valid_node_id(v[i].p, v[i].len))
			return perr(x, "mirrors: \"%s\" is not a POP id (1-63 characters of a-z, 0-9 "
				    "and \"-\")", q(&b, v[i]));
		if (i == 1 && v[0].len == v[1].len && memcmp(v[0].p, v[1].p, v[0].len) == 0)
			return perr(x, "mirrors: \"%s\" given twice", q(&b, v[i]));
		memcpy(c->mirrors[i], v[i].p, v[i].len);
		c->mirrors[i][v[i].len] = '\0';
	}
	c->n_mirrors = nv;
	snprintf(c->mirrors_file, sizeof(c->mirrors_file), "%s", x->name);
	c->mirrors_line = x->line;
	return 0;
}

/* ---- anycast --------------------------------------------------------------------- */

static int do_anycast(struct pctx *x, struct tok v)
{
	struct config *c = x->c;
	struct anycast_prefix p;
	char text[ANYCAST_PREFIX_TEXT], why[128];
	struct qbuf b;

	if (v.len >= sizeof(text))
		return perr(x, "anycast_address: \"%s\" is not an IPv4 or IPv6 address", q(&b, v));
	memcpy(text, v.p, v.len);
	text[v.len] = '\0';
	if (anycast_prefix_parse(text, &p, why, sizeof(why)) < 0)
		return perr(x, "anycast_address: \"%s\": %s", q(&b, v), why);
	for (size_t i = 0; i < c->n_anycast; i++)
		if (anycast_prefix_equal(&c->anycast[i], &p))
			return perr(x, "anycast_address: %s given twice", p.text);
	if (c->n_anycast >= CONFIG_MAX_ANYCAST)
		return perr(x, "anycast_address: more than %d addresses", CONFIG_MAX_ANYCAST);
	c->anycast[c->n_anycast++] = p;
	return 0;
}

/* What the kernel takes as a link name: 1-15 bytes, not "." or "..", no
 * '/', ':' or blank.  Kept to printable ASCII here. */
static bool valid_ifname(struct tok t)
{
	if (t.len < 1 || t.len >= CONFIG_IFNAME_MAX || tok_is(t, ".") || tok_is(t, ".."))
		return false;
	for (size_t i = 0; i < t.len; i++) {
		unsigned char ch = (unsigned char)t.p[i];

		if (ch <= ' ' || ch >= 0x7f || ch == '/' || ch == ':')
			return false;
	}
	return true;
}

static int store_number(const struct directive *d, struct config *c, uint64_t v)
{
	void *f = (char *)c + d->off;

	switch (d->kind) {
	case F_UNSIGNED: {
		unsigned u = (unsigned)v;
		memcpy(f, &u, sizeof(u));
		return 0;
	}
	case F_SIZE_T: {
		size_t s = (size_t)v;
		if ((uint64_t)s != v)
			return -1;
		memcpy(f, &s, sizeof(s));
		return 0;
	}
	case F_U64:
		memcpy(f, &v, sizeof(v));
		return 0;
	default:
		return -1;
	}
}

/* Apply one value (nv == 1 except for listen and peer) to c. */
static int apply(struct pctx *x, const struct directive *d, const struct tok *v, size_t nv)
{
	char *field = (char *)x->c + d->off;
	struct qbuf b;

	switch (d->type) {
	case D_LISTEN:
		return do_listen(x, v, nv);
	case D_DOMAIN:
		return do_domain(x, v[0]);
	case D_LINK_LISTEN:
		return do_link_listen(x, v[0]);
	case D_PEER:
		return do_peer(x, v, nv);
	case D_MIRRORS:
		return do_mirrors(x, v, nv);
	case D_ANYCAST:
		return do_anycast(x, v[0]);
	case D_IFNAME:
		if (!valid_ifname(v[0]))
			return perr(x, "%s: \"%s\" is not an interface name (1-15 characters, no \"/\" "
				    "or \":\")", d->name, q(&b, v[0]));
		return store_str(x, d->name, field, d->size, v[0]);
	case D_BOOL: {
		bool yes = tok_is(v[0], "yes");

		if (!yes && !tok_is(v[0], "no"))
			return perr(x, "%s: \"%s\" is not yes or no", d->name, q(&b, v[0]));
		memcpy(field, &yes, sizeof(yes));
		return 0;
	}
	case D_NODE_ID:
		if (!cfg_valid_node_id(v[0].p, v[0].len))
			return perr(x, "%s: \"%s\" must be 1-63 characters of a-z, 0-9 and \"-\"",
				    d->name, q(&b, v[0]));
		return store_str(x, d->name, field, d->size, v[0]);
	case D_USER:
		if (v[0].len >= d->size)
			return store_str(x, d->name, field, d->size, v[0]);
		if (!valid_user(v[0]))
			return perr(x, "%s: \"%s\" is not a valid user name", d->name, q(&b, v[0]));
		return store_str(x, d->name, field, d->size, v[0]);
	case D_LOG_TARGET:
		if (!tok_is(v[0], "stderr") && !tok_is(v[0], "syslog") &&
		    (v[0].len == 0 || v[0].p[0] != '/'))
			return perr(x, "%s: \"%s\" is not stderr, syslog or an absolute path",
				    d->name, q(&b, v[0]));
		return store_str(x, d->name, field, d->size, v[0]);
	case D_PATH:
		if (check_abs_path(x, d->name, v[0]) < 0)
			return -1;
		return store_str(x, d->name, field, d->size, v[0]);
	case D_ACK_MODE:
	case D_DEGRADED: {
		const char *const *words = d->type == D_ACK_MODE ? repl_ack_words
								 : repl_degraded_words;
		char list[128] = "";

		for (int i = 0; words[i] != NULL; i++) {
			if (tok_is(v[0], words[i])) {
				memcpy(field, &i, sizeof(i));
				return 0;
			}
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
				 i == 0 ? "" : words[i + 1] == NULL ? " or " : ", ", words[i]);
		}
		return perr(x, "%s: \"%s\" is not %s", d->name, q(&b, v[0]), list);
	}
	case D_LOG_LEVEL: {
		char lv[16];
		int lvl = -1;

		if (v[0].len < sizeof(lv)) {
			memcpy(lv, v[0].p, v[0].len);
			lv[v[0].len] = '\0';
			lvl = log_level_parse(lv);
		}
		if (lvl < 0)
			return perr(x, "%s: \"%s\" is not one of error, warn, info, debug", d->name,
				    q(&b, v[0]));
		memcpy(field, &lvl, sizeof(lvl));
		return 0;
	}
	case D_UINT:
	case D_SIZE:
	case D_DURATION:
	case D_DURATION_MS: {
		char lo[32], hi[32];
		uint64_t n;
		int r = parse_number(d->type, v[0], &n);

		if (r == -1) {
			const char *what = d->type == D_UINT ? "a number"
				: d->type == D_SIZE ? "a size (a number with an optional K, M, G or T "
						      "suffix)"
				: d->type == D_DURATION_MS ? "a duration (seconds, or a number with an "
							     "ms, s, m or h suffix)"
				: "a duration (seconds, or a number with an s, m or h suffix)";
			return perr(x, "%s: \"%s\" is not %s", d->name, q(&b, v[0]), what);
		}
		fmt_value(lo, sizeof(lo), d->type, d->min);
		fmt_value(hi, sizeof(hi), d->type, d->max);
		if (r == -2 || n < d->min || n > d->max || store_number(d, x->c, n) < 0)
			return perr(x, "%s: \"%s\" is out of range (%s..%s)", d->name, q(&b, v[0]),
				    lo, hi);
		return 0;
	}
	}
	return perr(x, "%s: internal error: bad directive type", d->name);
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

static int parse_line(struct pctx *x, const char *p, size_t len)
{
	struct tok t[CONFIG_TOKENS_MAX];
	size_t nt = 0, i = 0;
	const char *hash = memchr(p, '#', len);
	struct qbuf b;

	if (memchr(p, '\0', len) != NULL)
		return perr(x, "NUL byte in line");
	if (hash != NULL)
		len = (size_t)(hash - p);
	for (size_t k = 0; k < len; k++) {
		unsigned char ch = (unsigned char)p[k];

		if ((ch < 0x20 && !is_blank((char)ch)) || ch == 0x7f)
			return perr(x, "control character 0x%02x in line", ch);
	}
	while (i < len) {
		while (i < len && is_blank(p[i]))
			i++;
		if (i == len)
			break;
		size_t start = i;
		while (i < len && !is_blank(p[i]))
			i++;
		if (nt == CONFIG_TOKENS_MAX)
			return perr(x, "too many values on one line (at most %d words)",
				    CONFIG_TOKENS_MAX);
		t[nt++] = (struct tok){ p + start, i - start };
	}
	if (nt == 0)
		return 0;

	size_t di;
	for (di = 0; di < N_DIRECTIVES; di++)
		if (tok_is(t[0], directives[di].name))
			break;
	if (di == N_DIRECTIVES)
		return perr(x, "unknown directive \"%s\"", q(&b, t[0]));
	const struct directive *d = &directives[di];
	/* listen, peer and mirrors check their own words */
	if (d->type != D_LISTEN && d->type != D_PEER && d->type != D_MIRRORS) {
		if (nt < 2)
			return perr(x, "%s: missing value", d->name);
		if (nt > 2)
			return perr(x, "%s: extra value \"%s\" (one value expected)", d->name,
				    q(&b, t[2]));
	}
	if (d->type != D_LISTEN && d->type != D_DOMAIN && d->type != D_PEER &&
	    d->type != D_ANYCAST) {
		if (x->seen[di] != 0)
			return perr(x, "%s: given twice (first at line %d)", d->name, x->seen[di]);
		x->seen[di] = x->line;
	}
	return apply(x, d, t + 1, nt - 1);
}

static int parse_all(struct pctx *x, const char *buf, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		const char *start = buf + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t linelen = nl != NULL ? (size_t)(nl - start) : len - pos;

		x->line++;
		if (linelen > CONFIG_LINE_MAX)
			return perr(x, "line is longer than %d bytes", CONFIG_LINE_MAX);
		if (parse_line(x, start, linelen) < 0)
			return -1;
		pos += linelen + (nl != NULL);
	}
	return 0;
}

/* ---- public -------------------------------------------------------------------- */

void config_defaults(struct config *c)
{
	struct pctx x;

	memset(c, 0, sizeof(*c));
	memset(&x, 0, sizeof(x));
	x.c = c;
	x.name = "(defaults)";
	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		const struct directive *d = &directives[i];
		struct tok v;

		if (d->def == NULL)
			continue;
		v = (struct tok){ d->def, strlen(d->def) };
		if (apply(&x, d, &v, 1) < 0)
			abort(); /* the table itself is wrong */
	}
}

int config_parse_buf(struct config *c, const char *name, const char *buf, size_t len,
		     char *err, size_t errsz)
{
	struct config *tmp;
	struct pctx x;
	int rc;

	if (name == NULL)
		name = "(config)";
	tmp = malloc(sizeof(*tmp));
	if (tmp == NULL) {
		cfg_set_err(err, errsz, "%s: out of memory", name);
		return -1;
	}
	memcpy(tmp, c, sizeof(*tmp));
	memset(&x, 0, sizeof(x));
	x.c = tmp;
	x.name = name;
	x.err = err;
	x.errsz = errsz;
	rc = parse_all(&x, buf, len);
	if (rc == 0)
		memcpy(c, tmp, sizeof(*c));
	free(tmp);
	return rc;
}

int config_parse_file(struct config *c, const char *path, char *err, size_t errsz)
{
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		cfg_set_err(err, errsz, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		cfg_set_err(err, errsz, "%s: cannot read: %s", path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		cfg_set_err(err, errsz, "%s: cannot read: %s", path, strerror(EISDIR));
		goto out;
	}
	buf = malloc(CONFIG_FILE_MAX + 1);
	if (buf == NULL) {
		cfg_set_err(err, errsz, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cfg_set_err(err, errsz, "%s: cannot read: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONFIG_FILE_MAX) {
			cfg_set_err(err, errsz, "%s: larger than %d bytes", path, CONFIG_FILE_MAX);
			goto out;
		}
	}
	rc = config_parse_buf(c, path, buf, len, err, errsz);
out:
	free(buf);
	close(fd);
	return rc;
}
