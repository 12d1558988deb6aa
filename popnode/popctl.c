/*
 * popctl.c - the operator's command line tool.  It turns a command line
 * into one control request (control_proto.h), sends it over the daemon's
 * Unix control socket, prints the answer and exits with a status a
 * script can test (docs/popctl.md):
 *
 *   0  done
 *   1  the daemon (or popctl itself, e.g. hashing) reported an error
 *   2  usage error: bad command line, bad value, unreadable config
 *   3  the daemon cannot be reached, or broke off its answer
 *
 * except "verify", whose status says what it found (as diff(1)): 0 every
 * copy matches, 1 a copy differs, 2 a copy could not be reached or the
 * check could not be made (usage error, error from the daemon), 3 as
 * above.
 *
 * Passwords: --password-stdin reads the first line of stdin (without
 * echo on a terminal) and hashes it here with yescrypt, so the daemon's
 * event loop never runs crypt(3) and the plain password never crosses
 * the socket.  --hash-stdin takes an existing crypt(3) hash instead.
 *
 * "user list" and "peers" come as TAB-separated rows and are printed
 * as aligned tables.
 *
 * Everything is checked before connecting (names, sizes, POP ids,
 * hashes), so a usage error never reaches the daemon; the daemon checks
 * again.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "control_proto.h"
#include "directory.h"
#include "node.h"
#include "store.h"

#define EXIT_DAEMON 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

#define ANSWER_TIMEOUT_MS 60000
#define SECRET_MAX 1024

static const char usage_text[] =
	"usage: popctl [-s SOCKET | -c CONFIG | --dev DIR] COMMAND [ARGS]\n"
	"\n"
	"commands:\n"
	"  user add NAME [--home POP] [--quota SIZE] (--password-stdin | --hash-stdin)\n"
	"  user del NAME\n"
	"  user passwd NAME (--password-stdin | --hash-stdin)\n"
	"  user set NAME [--quota SIZE] [--home POP] [--enable | --disable]\n"
	"  user list\n"
	"  user show NAME\n"
	"  status [--json]\n"
	"  peers [--json]\n"
	"  lag [--json]         replication: this POP's mirrors, the POPs mirrored here\n"
	"  lag --cluster [--json]\n"
	"                       every POP's replication to its mirrors (asked over the link)\n"
	"  verify USER [--json] compare USER's mail at the home POP and its mirrors;\n"
	"                       exit 0 all match, 1 a copy differs, 2 a copy unreachable\n"
	"  mirror list ORIGIN   per user and mailbox: messages and a digest of the copy\n"
	"                       of ORIGIN's mail held here (ORIGIN = this POP: its own)\n"
	"  drain [--wait]       withdraw this POP; --wait: until no client is left\n"
	"  undrain\n"
	"  help\n"
	"\n"
	"options:\n"
	"  -s, --socket SOCKET  the daemon's control socket\n"
	"                       (default /run/popnode/control.sock)\n"
	"  -c, --config FILE    take control_socket from popnode's config file\n"
	"  --dev DIR            the dev node whose state is in DIR (DIR/control.sock)\n"
	"  -h, --help           this text\n"
	"  --version            popctl's version\n"
	"\n"
	"SIZE is bytes with an optional K, M, G or T suffix (powers of 1024), or\n"
	"\"unlimited\".  --password-stdin reads the password from the first line of\n"
	"stdin and hashes it with yescrypt before sending; --hash-stdin reads a\n"
	"crypt(3) hash ($y$, $7$, $6$, $5$, $2b$) instead.  User names are made\n"
	"lowercase.\n"
	"\n"
	"exit status: 0 ok, 1 error reported by the daemon, 2 usage error,\n"
	"3 cannot reach the daemon.\n";

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("popctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(popctl --help shows the commands)\n", stderr);
	exit(EXIT_USAGE);
}

/* ---- the command line --------------------------------------------------- */

enum {
	O_HOME = 1 << 0,
	O_QUOTA = 1 << 1,
	O_PASSWORD = 1 << 2,
	O_HASH = 1 << 3,
	O_ENABLE = 1 << 4,
	O_DISABLE = 1 << 5,
	O_JSON = 1 << 6,
	O_WAIT = 1 << 7,
	O_CLUSTER = 1 << 8,
};

struct cmdline {
	const char *pos[4];
	size_t n_pos;
	unsigned seen;			/* O_* given */
	const char *home;
	const char *quota;
};

struct cmd {
	const char *w1, *w2;
	size_t npos;			/* positional arguments */
	unsigned allowed;		/* O_* */
	const char *syntax;
};

static const struct cmd cmds[] = {
	{ "user", "add", 1, O_HOME | O_QUOTA | O_PASSWORD | O_HASH,
	  "user add NAME [--home POP] [--quota SIZE] (--password-stdin | --hash-stdin)" },
	{ "user", "del", 1, 0, "user del NAME" },
	{ "user", "passwd", 1, O_PASSWORD | O_HASH,
	  "user passwd NAME (--password-stdin | --hash-stdin)" },
	{ "user", "set", 1, O_HOME | O_QUOTA | O_ENABLE | O_DISABLE,
	  "user set NAME [--quota SIZE] [--home POP] [--enable | --disable]" },
	{ "user", "list", 0, 0, "user list" },
	{ "user", "show", 1, 0, "user show NAME" },
	{ "status", NULL, 0, O_JSON, "status [--json]" },
	{ "peers", NULL, 0, O_JSON, "peers [--json]" },
	{ "lag", NULL, 0, O_JSON | O_CLUSTER, "lag [--cluster] [--json]" },
	{ "verify", NULL, 1, O_JSON, "verify USER [--json]" },
	{ "mirror", "list", 1, 0, "mirror list ORIGIN" },
	{ "drain", NULL, 0, O_WAIT, "drain [--wait]" },
	{ "undrain", NULL, 0, 0, "undrain" },
};
#define N_CMDS (sizeof(cmds) / sizeof(cmds[0]))

static const struct {
	const char *name;
	unsigned flag;
	bool value;
} cmd_opts[] = {
	{ "--home", O_HOME, true },
	{ "--quota", O_QUOTA, true },
	{ "--password-stdin", O_PASSWORD, false },
	{ "--hash-stdin", O_HASH, false },
	{ "--enable", O_ENABLE, false },
	{ "--disable", O_DISABLE, false },
	{ "--json", O_JSON, false },
	{ "--wait", O_WAIT, false },
	{ "--cluster", O_CLUSTER, false },
};

static void parse_cmdline(const struct cmd *cmd, int argc, char **argv, struct cmdline *cl)
{
	memset(cl, 0, sizeof(*cl));
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		size_t k;

		if (a[0] != '-' || a[1] == '\0') {
			if (cl->n_pos == cmd->npos)
				usage_error("too many arguments; usage: popctl %s", cmd->syntax);
			cl->pos[cl->n_pos++] = a;
			continue;
		}
		for (k = 0; k < sizeof(cmd_opts) / sizeof(cmd_opts[0]); k++) {
			size_t len = strlen(cmd_opts[k].name);

			if (strncmp(a, cmd_opts[k].name, len) == 0 &&
			    (a[len] == '\0' || (a[len] == '=' && cmd_opts[k].value)))
				break;
		}
		if (k == sizeof(cmd_opts) / sizeof(cmd_opts[0]) || !(cmd->allowed & cmd_opts[k].flag))
			usage_error("unknown option %s; usage: popctl %s", a, cmd->syntax);
		if (cl->seen & cmd_opts[k].flag)
			usage_error("%s given twice", cmd_opts[k].name);
		cl->seen |= cmd_opts[k].flag;
		if (cmd_opts[k].value) {
			const char *v = strchr(a, '=');

			if (v != NULL) {
				v++;
			} else if (i + 1 < argc) {
				v = argv[++i];
			} else {
				usage_error("%s needs a value", a);
			}
			if (cmd_opts[k].flag == O_HOME)
				cl->home = v;
			else
				cl->quota = v;
		}
	}
	if (cl->n_pos != cmd->npos)
		usage_error("missing argument; usage: popctl %s", cmd->syntax);
}

/* ---- secrets from stdin ------------------------------------------------- */

/* The first line of stdin, without its line end.  On a terminal the
 * prompt goes to stderr and echo is off while typing. */
static void read_line(const char *prompt, char *buf, size_t sz)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	size_t len;
	bool got;

	if (tty) {
		fprintf(stderr, "%s", prompt);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	got = fgets(buf, (int)sz, stdin) != NULL;
	if (tty)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	if (!got) {
		buf[0] = '\0';
		return;
	}
	len = strlen(buf);
	if (len == sz - 1 && buf[len - 1] != '\n' && !feof(stdin)) {
		explicit_bzero(buf, sz);
		usage_error("the line on stdin is longer than %zu bytes", sz - 2);
	}
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
}

/* --password-stdin or --hash-stdin into a crypt(3) hash. */
static void secret_to_hash(const struct cmdline *cl, char *hash, size_t hashsz)
{
	char pw[SECRET_MAX + 2], again[SECRET_MAX + 2];

	if ((cl->seen & (O_PASSWORD | O_HASH)) == 0)
		usage_error("say --password-stdin or --hash-stdin");
	if ((cl->seen & (O_PASSWORD | O_HASH)) == (O_PASSWORD | O_HASH))
		usage_error("--password-stdin and --hash-stdin exclude each other");
	if (cl->seen & O_HASH) {
		read_line("Hash: ", hash, hashsz);
		if (hash[0] == '\0')
			usage_error("no hash on stdin");
		if (!dir_hash_acceptable(hash))
			usage_error("the hash on stdin is not one popnode accepts "
				    "($y$, $7$, $6$, $5$, $2b$/$2y$)");
		return;
	}
	read_line("Password: ", pw, sizeof(pw));
	if (pw[0] == '\0')
		usage_error("empty password (refused)");
	if (isatty(STDIN_FILENO)) {
		read_line("Again: ", again, sizeof(again));
		if (strcmp(pw, again) != 0) {
			explicit_bzero(pw, sizeof(pw));
			explicit_bzero(again, sizeof(again));
			usage_error("the passwords differ");
		}
		explicit_bzero(again, sizeof(again));
	}
	if (dir_hash_password(pw, hash, hashsz) < 0) {
		explicit_bzero(pw, sizeof(pw));
		fprintf(stderr, "popctl: cannot hash the password (crypt failed)\n");
		exit(EXIT_DAEMON);
	}
	explicit_bzero(pw, sizeof(pw));
}

/* ---- building the request ----------------------------------------------- */

struct request {
	const char *args[CTL_ARGS_MAX];
	size_t n_args;
	struct ctl_opt opts[CTL_OPTS_MAX];
	size_t n_opts;
};

static void req_arg(struct request *r, const char *a)
{
	r->args[r->n_args++] = a;
}

static void req_opt(struct request *r, const char *key, const char *value)
{
	r->opts[r->n_opts].key = key;
	r->opts[r->n_opts].value = value;
	r->n_opts++;
}

/* Lowercase copy of a user name, checked. */
static void user_name(const char *in, char *out, size_t outsz)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < outsz; i++)
		out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] - 'A' + 'a') : in[i];
	out[i] = '\0';
	if (in[i] != '\0' || !dir_valid_username(out))
		usage_error("invalid user name \"%.80s\": 1-63 of a-z 0-9 . _ -, starting with a "
			    "letter or digit", in);
}

static char quota_buf[24];
static char name_buf[STORE_NAME_MAX];
static char hash_buf[STORE_HASH_MAX];

static void check_home_quota(const struct cmdline *cl, struct request *r)
{
	uint64_t q;

	if (cl->home != NULL) {
		if (!ctl_valid_pop(cl->home))
			usage_error("invalid POP id \"%.80s\" for --home: 1-63 of A-Z a-z 0-9 . _ -",
				    cl->home);
		req_opt(r, "home", cl->home);
	}
	if (cl->quota != NULL) {
		if (!ctl_parse_size(cl->quota, &q))
			usage_error("invalid --quota \"%.80s\": bytes with an optional K, M, G or T "
				    "suffix, or \"unlimited\"", cl->quota);
		snprintf(quota_buf, sizeof(quota_buf), "%llu", (unsigned long long)q);
		req_opt(r, "quota", quota_buf);
	}
}

/* Fill r from the command line; returns the command. */
static bool wait_flag;

static const struct cmd *build_request(int argc, char **argv, struct request *r)
{
	const struct cmd *cmd = NULL;
	struct cmdline cl;
	int words;

	for (size_t i = 0; i < N_CMDS && cmd == NULL; i++) {
		if (strcmp(argv[0], cmds[i].w1) != 0)
			continue;
		if (cmds[i].w2 == NULL || (argc > 1 && strcmp(argv[1], cmds[i].w2) == 0))
			cmd = &cmds[i];
	}
	if (cmd == NULL) {
		if (strcmp(argv[0], "user") == 0)
			usage_error("user: say add, del, passwd, set, list or show");
		usage_error("unknown command \"%.80s\"", argv[0]);
	}
	words = cmd->w2 != NULL ? 2 : 1;
	parse_cmdline(cmd, argc - words, argv + words, &cl);
	wait_flag = (cl.seen & O_WAIT) != 0;
	memset(r, 0, sizeof(*r));
	req_arg(r, cmd->w1);
	if (cmd->w2 != NULL)
		req_arg(r, cmd->w2);
	if (cl.seen & O_CLUSTER)
		req_arg(r, "cluster");			/* lag cluster */
	if (cmd->npos > 0 && strcmp(cmd->w1, "mirror") == 0) {
		if (!ctl_valid_pop(cl.pos[0]))
			usage_error("invalid POP id \"%.80s\"", cl.pos[0]);
		req_arg(r, cl.pos[0]);
	} else if (cmd->npos > 0) {
		user_name(cl.pos[0], name_buf, sizeof(name_buf));
		req_arg(r, name_buf);
	}
	if (cmd->w2 == NULL) {				/* status, peers, lag, verify */
		if (cl.seen & O_JSON)
			req_opt(r, "format", "json");
	} else if (strcmp(cmd->w2, "add") == 0 || strcmp(cmd->w2, "passwd") == 0) {
		check_home_quota(&cl, r);
		secret_to_hash(&cl, hash_buf, sizeof(hash_buf));
		req_opt(r, "hash", hash_buf);
	} else if (strcmp(cmd->w2, "set") == 0) {
		if ((cl.seen & (O_ENABLE | O_DISABLE)) == (O_ENABLE | O_DISABLE))
			usage_error("--enable and --disable exclude each other");
		if ((cl.seen & (O_HOME | O_QUOTA | O_ENABLE | O_DISABLE)) == 0)
			usage_error("nothing to set; usage: popctl %s", cmd->syntax);
		check_home_quota(&cl, r);
		if (cl.seen & (O_ENABLE | O_DISABLE))
			req_opt(r, "enabled", (cl.seen & O_ENABLE) ? "yes" : "no");
	}
	return cmd;
}

/* ---- talking to the daemon ---------------------------------------------- */

static void unreachable(const char *path, const char *what, const char *why)
	__attribute__((noreturn));
static void unreachable(const char *path, const char *what, const char *why)
{
	fprintf(stderr, "popctl: cannot reach popnode at %s: %s%s%s\n", path, what,
		why != NULL ? ": " : "", why != NULL ? why : "");
	exit(EXIT_UNREACHABLE);
}

static int connect_socket(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		unreachable(path, "socket path too long", NULL);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		unreachable(path, "socket", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int err = errno;

		close(fd);
		unreachable(path, "connect", err == ENOENT || err == ECONNREFUSED
			    ? (err == ENOENT ? "no such socket (is popnode running?)"
			       : "connection refused (is popnode running?)")
			    : strerror(err));
	}
	return fd;
}

static void send_all(int fd, const char *path, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			unreachable(path, "send", strerror(errno));
		data += n;
		len -= (size_t)n;
	}
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void read_answer(int fd, const char *path, struct ctl_reader *rd)
{
	char buf[16384];
	long deadline = now_ms() + ANSWER_TIMEOUT_MS;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		long left = deadline - now_ms();
		const char *error;
		size_t used;
		ssize_t n;
		int rc;

		if (left <= 0)
			unreachable(path, "no answer", "timed out after 60 s");
		rc = poll(&pfd, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			unreachable(path, "poll", strerror(errno));
		if (rc == 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			unreachable(path, "read", strerror(errno));
		if (n == 0)
			unreachable(path, "the daemon closed the connection before answering", NULL);
		switch (ctl_reader_feed(rd, buf, (size_t)n, &used, &error)) {
		case CTL_READ_DONE:
			return;
		case CTL_READ_MORE:
			break;
		case CTL_READ_ERROR:
			unreachable(path, "garbled answer", error);
		}
	}
}

/* ---- printing ----------------------------------------------------------- */

/* Field i of a TAB-separated line [p, end). */
static size_t field_len(const char *p, const char *end)
{
	const char *t = memchr(p, '\t', (size_t)(end - p));

	return t != NULL ? (size_t)(t - p) : (size_t)(end - p);
}

#define TABLE_MAX_COLS 16

/* How to print a TAB-separated answer (header first) as a table. */
struct table {
	size_t ncols;
	unsigned numeric;		/* bit per column: right-aligned below the header */
	int unlimited_col;		/* a "0" in this column reads "unlimited"; -1 none */
};

/* id quota used messages */
static const struct table user_table = { 7, 1u << 1 | 1u << 3 | 1u << 4 | 1u << 5, 3 };
/* RTT FAIL STREAMS DIR */
static const struct table peers_table = { 10, 1u << 3 | 1u << 5 | 1u << 6 | 1u << 7, -1 };

/* LAST SENT APPLIED BEHIND BYTES SECONDS */
static const struct table lag_table = { 11, 0x3f8, -1 };
/* lag --cluster: the same columns, ORIGIN MIRROR first */
static const struct table lag_cluster_table = { 11, 0x3f8, -1 };
/* verify: SEQ MAILBOXES MESSAGES; MESSAGES UIDVALIDITY UIDNEXT */
static const struct table verify_copies_table = { 7, 1u << 3 | 1u << 4 | 1u << 5, -1 };
static const struct table verify_mbox_table = { 7, 1u << 2 | 1u << 3 | 1u << 4, -1 };
/* MESSAGES UIDVALIDITY UIDNEXT */
static const struct table mirror_table = { 6, 1u << 2 | 1u << 3 | 1u << 4, -1 };

/* The rows as an aligned table: columns separated by two spaces, the
 * last one not padded. */
static void print_table(const char *body, size_t len, const struct table *t)
{
	const size_t ncols = t->ncols < TABLE_MAX_COLS ? t->ncols : TABLE_MAX_COLS;
	size_t width[TABLE_MAX_COLS] = { 0 };
	const char *end = body + len;

	for (int pass = 0; pass < 2; pass++) {
		bool header = true;

		for (const char *p = body; p < end;) {
			const char *eol = memchr(p, '\n', (size_t)(end - p));
			const char *q = p;

			if (eol == NULL)
				eol = end;
			for (size_t col = 0; col < ncols && q <= eol; col++) {
				size_t raw = field_len(q, eol), fl = raw;
				const char *text = q;

				if (!header && (int)col == t->unlimited_col && raw == 1 && q[0] == '0') {
					text = "unlimited";
					fl = 9;
				}
				if (pass == 0 && fl > width[col])
					width[col] = fl;
				if (pass == 1) {
					int w = (int)width[col];

					if ((t->numeric & (1u << col)) && !header)
						printf("%*.*s", w, (int)fl, text);
					else if (col + 1 < ncols)
						printf("%-*.*s", w, (int)fl, text);
					else
						printf("%.*s", (int)fl, text);
					if (col + 1 < ncols)
						fputs("  ", stdout);
				}
				q += raw + 1;
			}
			if (pass == 1)
				putchar('\n');
			header = false;
			p = eol + 1;
		}
	}
}

/* The lines in a body (a last line without LF counts). */
static size_t count_lines(const char *body, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += body[i] == '\n';
	return n + (len > 0 && body[len - 1] != '\n');
}

/* "peers": the table, or a plain sentence when only the header came
 * (a POP without peers). */
static void print_peers(const char *body, size_t len)
{
	if (count_lines(body, len) <= 1)
		puts("no peers configured");
	else
		print_table(body, len, &peers_table);
}

/* "verify" in text: the "key: value" lines as they are, then the copies
 * table and the mailboxes table, the three blocks separated by a blank
 * line. */
static void print_verify(const char *body, size_t len)
{
	const char *end = body + len;
	const char *b1 = memmem(body, len, "\n\n", 2);
	const char *b2 = b1 != NULL ? memmem(b1 + 2, (size_t)(end - b1 - 2), "\n\n", 2) : NULL;

	if (b2 == NULL) {
		fwrite(body, 1, len, stdout);
		return;
	}
	fwrite(body, 1, (size_t)(b1 - body) + 2, stdout);
	print_table(b1 + 2, (size_t)(b2 - b1 - 1), &verify_copies_table);
	putchar('\n');
	print_table(b2 + 2, (size_t)(end - b2 - 2), &verify_mbox_table);
}

/* verify's exit status from its answer's "result". */
static int verify_status(const char *body, bool json)
{
	const char *key = json ? "\n  \"result\": \"" : "\nresult: ";
	const char *p = strstr(body, key);

	if (p == NULL)
		return EXIT_USAGE;
	p += strlen(key);
	if (strncmp(p, "match", 5) == 0)
		return 0;
	if (strncmp(p, "differs", 7) == 0)
		return EXIT_DAEMON;
	return EXIT_USAGE;			/* unreachable */
}

/* ---- main --------------------------------------------------------------- */

static const char *socket_path(const char *sock, const char *conf, const char *dev)
{
	static struct config cfg;
	char err[512];

	if (sock != NULL)
		return sock;
	if (dev != NULL) {
		config_dev(&cfg, dev);
		return cfg.control_socket;
	}
	config_defaults(&cfg);
	if (conf != NULL && config_parse_file(&cfg, conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "popctl: %s\n", err);
		exit(EXIT_USAGE);
	}
	return cfg.control_socket[0] != '\0' ? cfg.control_socket : "/run/popnode/control.sock";
}

/* The value of option argv[*i] ("-s X", "--socket X", "--socket=X"). */
static const char *opt_value(int argc, char **argv, int *i, const char *longname)
{
	size_t len = strlen(longname);

	if (strncmp(argv[*i], longname, len) == 0 && argv[*i][len] == '=')
		return argv[*i] + len + 1;
	if (*i + 1 >= argc)
		usage_error("%s needs a value", argv[*i]);
	return argv[++*i];
}

static bool is_opt(const char *a, const char *shortname, const char *longname)
{
	size_t len = strlen(longname);

	return (shortname != NULL && strcmp(a, shortname) == 0) ||
	       (strncmp(a, longname, len) == 0 && (a[len] == '\0' || a[len] == '='));
}

int main(int argc, char **argv)
{
	const char *sock = NULL, *conf = NULL, *dev = NULL, *path, *error;
	char line[CTL_REQUEST_MAX + 1];
	struct ctl_reader rd;
	struct request r;
	const struct cmd *cmd;
	int i, fd, len, status;
	bool json = false;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage_text, stdout);
			return 0;
		} else if (strcmp(a, "--version") == 0) {
			printf("popctl %s\n", POPNODE_VERSION);
			return 0;
		} else if (is_opt(a, "-s", "--socket")) {
			sock = opt_value(argc, argv, &i, "--socket");
		} else if (is_opt(a, "-c", "--config")) {
			conf = opt_value(argc, argv, &i, "--config");
		} else if (is_opt(a, NULL, "--dev")) {
			dev = opt_value(argc, argv, &i, "--dev");
		} else {
			usage_error("unknown option %s", a);
		}
	}
	if ((sock != NULL) + (conf != NULL) + (dev != NULL) > 1)
		usage_error("-s, -c and --dev exclude each other");
	if (i >= argc)
		usage_error("no command given");
	if (strcmp(argv[i], "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	for (int k = i; k < argc; k++) {
		if (strcmp(argv[k], "-h") == 0 || strcmp(argv[k], "--help") == 0) {
			fputs(usage_text, stdout);
			return 0;
		}
	}

	cmd = build_request(argc - i, argv + i, &r);
	for (size_t k = 0; k < r.n_opts; k++)
		json |= strcmp(r.opts[k].key, "format") == 0;
	len = ctl_request_encode(line, sizeof(line), r.args, r.n_args, r.opts, r.n_opts, &error);
	explicit_bzero(hash_buf, sizeof(hash_buf));
	if (len < 0)
		usage_error("cannot encode the request: %s", error);
	path = socket_path(sock, conf, dev);

	fd = connect_socket(path);
	send_all(fd, path, line, (size_t)len);
	ctl_reader_init(&rd, 0);
	read_answer(fd, path, &rd);
	close(fd);
	/* drain --wait: ask again (drain is idempotent) until no client
	 * session is left, saying how many remain when it changes. */
	for (long last = -1; wait_flag && rd.ok; ) {
		const char *p = strstr(rd.body, "\nsessions: ");
		long left = p != NULL ? strtol(p + strlen("\nsessions: "), NULL, 10) : 0;

		if (left == 0) {
			fwrite(rd.body, 1, rd.body_len, stdout);
			puts("POP is empty");
			ctl_reader_clear(&rd);
			return 0;
		}
		if (left != last)
			fprintf(stderr, "popctl: drained, %ld client session%s left\n", left,
				left == 1 ? "" : "s");
		last = left;
		usleep(200 * 1000);
		ctl_reader_clear(&rd);
		fd = connect_socket(path);
		send_all(fd, path, line, (size_t)len);
		ctl_reader_init(&rd, 0);
		read_answer(fd, path, &rd);
		close(fd);
	}
	explicit_bzero(line, sizeof(line));

	if (rd.ok) {
		if (strcmp(cmd->w1, "user") == 0 && cmd->w2 != NULL && strcmp(cmd->w2, "list") == 0)
			print_table(rd.body, rd.body_len, &user_table);
		else if (strcmp(cmd->w1, "peers") == 0 && !json)
			print_peers(rd.body, rd.body_len);
		else if (strcmp(cmd->w1, "lag") == 0 && !json && r.n_args > 1)
			print_table(rd.body, rd.body_len, &lag_cluster_table);
		else if (strcmp(cmd->w1, "lag") == 0 && !json)
			print_table(rd.body, rd.body_len, &lag_table);
		else if (strcmp(cmd->w1, "verify") == 0 && !json)
			print_verify(rd.body, rd.body_len);
		else if (strcmp(cmd->w1, "mirror") == 0)
			print_table(rd.body, rd.body_len, &mirror_table);
		else
			fwrite(rd.body, 1, rd.body_len, stdout);
		status = strcmp(cmd->w1, "verify") == 0 ? verify_status(rd.body, json) : 0;
	} else {
		fprintf(stderr, "popctl: %s\n", rd.message[0] != '\0' ? rd.message : rd.code);
		/* verify: 1 means "differs"; not being able to check is 2 */
		status = strcmp(cmd->w1, "verify") == 0 ? EXIT_USAGE : EXIT_DAEMON;
	}
	ctl_reader_clear(&rd);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "popctl: cannot write the answer: %s\n", strerror(errno));
		return EXIT_DAEMON;
	}
	return status;
}
