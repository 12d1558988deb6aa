/*
 * bird_probe.c - drive anycast/bird_client.c against a real BIRD and print
 * what the parsers extracted, one JSON object per line (for
 * tests/integration/test_bird.py).
 *
 *   bird_probe [-t TIMEOUT_MS] SOCKET STEP...
 *
 * STEP is one of
 *   status              show status        -> {"status": {...}}
 *   protocols           show protocols     -> {"protocols": [...]}
 *   count:COMMAND       COMMAND (a "... count" command) -> {"count": {...}}
 *   enable:NAME         enable "NAME"      -> {"ctl": "done"|"already"|...}
 *   disable:NAME        disable "NAME"
 *   raw:COMMAND         COMMAND            -> the reply's lines
 *
 * All steps are queued at once, before the greeting, so the client's
 * queue does the ordering.  Each reply prints
 * {"step":..., "code":..., "class":..., <parsed>} or
 * {"step":..., "error": NAME, "message": ...}; the last line is
 * {"done": true, "greeting": ..., "disconnect": NAME|null}.  Exit 0 if
 * every step got a reply, 1 otherwise, 2 on bad usage.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "bird_client.h"

struct step {
	const char *arg;
	enum { S_STATUS, S_PROTOCOLS, S_COUNT, S_ENABLE, S_DISABLE, S_RAW } kind;
	const char *name;	/* enable/disable */
	char cmd[BIRD_CMD_MAX + 1];
};

static struct event_base *base;
static size_t n_steps, n_done;
static int failures;
static const char *disconnect_err;

static const char *err_name(enum bird_client_err err)
{
	static const char *const names[] = {
		[BIRD_CLIENT_OK] = "ok",
		[BIRD_CLIENT_NO_SOCKET] = "no_socket",
		[BIRD_CLIENT_NOT_RUNNING] = "not_running",
		[BIRD_CLIENT_BUSY] = "busy",
		[BIRD_CLIENT_CONNECT] = "connect",
		[BIRD_CLIENT_GREETING] = "greeting",
		[BIRD_CLIENT_TIMEOUT] = "timeout",
		[BIRD_CLIENT_LOST] = "lost",
		[BIRD_CLIENT_PROTOCOL] = "protocol",
		[BIRD_CLIENT_NOT_CONNECTED] = "not_connected",
		[BIRD_CLIENT_CLOSED] = "closed",
		[BIRD_CLIENT_NOMEM] = "nomem",
	};

	return (size_t)err < sizeof(names) / sizeof(names[0]) ? names[err] : "?";
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void print_parse_error(enum bird_rerr err, const char *detail,
			      const struct bird_reply *r)
{
	printf(", \"parse_error\": ");
	json_str(bird_rerr_str(err));
	printf(", \"detail\": ");
	json_str(detail != NULL ? detail : "");
	printf(", \"last\": ");
	json_str(bird_reply_last_text(r));
}

static void print_status(const struct bird_reply *r)
{
	struct bird_status st;
	const char *detail = NULL;
	enum bird_rerr err = bird_parse_status(r, &st, &detail);

	if (err != BIRD_R_OK) {
		print_parse_error(err, detail, r);
		return;
	}
	printf(", \"status\": {\"version\": ");
	json_str(st.version);
	printf(", \"router_id\": ");
	json_str(st.router_id_text);
	printf(", \"router_id_num\": %u, \"hostname\": ", (unsigned)st.router_id);
	json_str(st.hostname);
	printf(", \"server_time\": ");
	json_str(st.server_time);
	printf(", \"last_reboot\": ");
	json_str(st.last_reboot);
	printf(", \"last_reconfig\": ");
	if (st.has_last_reconfig)
		json_str(st.last_reconfig);
	else
		printf("null");
	printf(", \"graceful_restart\": %s, \"state\": \"%s\", \"state_text\": ",
	       st.graceful_restart ? "true" : "false",
	       st.state == BIRD_DAEMON_UP		? "up"
	       : st.state == BIRD_DAEMON_SHUTDOWN ? "shutdown"
	       : st.state == BIRD_DAEMON_RECONFIG ? "reconfig"
						  : "other");
	json_str(st.state_text);
	printf("}");
}

static void print_protocols(const struct bird_reply *r)
{
	struct bird_protocols ps;
	const char *detail = NULL;
	enum bird_rerr err = bird_parse_protocols(r, &ps, &detail);

	if (err != BIRD_R_OK) {
		print_parse_error(err, detail, r);
		return;
	}
	printf(", \"protocols\": [");
	for (size_t i = 0; i < ps.n; i++) {
		const struct bird_proto *p = &ps.rows[i];

		printf("%s{\"name\": ", i ? ", " : "");
		json_str(p->name);
		printf(", \"proto\": ");
		json_str(p->proto);
		printf(", \"table\": ");
		json_str(p->table);
		printf(", \"state\": \"%s\", \"state_text\": ", bird_proto_state_str(p->state));
		json_str(p->state_text);
		printf(", \"since\": ");
		json_str(p->since);
		printf(", \"info\": ");
		json_str(p->info);
		printf("}");
	}
	printf("]");
	bird_protocols_free(&ps);
}

static void print_count(const struct bird_reply *r)
{
	struct bird_count c;
	const char *detail = NULL;
	enum bird_rerr err = bird_parse_count(r, &c, &detail);

	if (err != BIRD_R_OK) {
		print_parse_error(err, detail, r);
		return;
	}
	printf(", \"count\": {\"routes\": %llu, \"scanned\": %llu, \"networks\": %llu, "
	       "\"tables\": %u}",
	       (unsigned long long)c.routes, (unsigned long long)c.scanned,
	       (unsigned long long)c.networks, c.tables);
}

static void print_ctl(const struct step *s, const struct bird_reply *r)
{
	enum bird_ctl_result res;
	const char *detail = NULL;
	enum bird_rerr err = bird_parse_ctl(r, s->kind == S_ENABLE ? BIRD_CTL_ENABLE : BIRD_CTL_DISABLE,
					    s->name, &res, &detail);

	if (err != BIRD_R_OK) {
		print_parse_error(err, detail, r);
		return;
	}
	printf(", \"ctl\": ");
	json_str(bird_ctl_result_str(res));
	printf(", \"last\": ");
	json_str(bird_reply_last_text(r));
}

static void print_raw(const struct bird_reply *r)
{
	printf(", \"lines\": [");
	for (size_t i = 0; i < r->n_lines; i++) {
		printf("%s[%u, %s, ", i ? ", " : "", r->lines[i].code,
		       r->lines[i].cont ? "true" : "false");
		json_str(r->lines[i].text);
		printf("]");
	}
	printf("]");
}

static void step_done(void)
{
	if (++n_done == n_steps)
		event_base_loopbreak(base);
}

static void reply_cb(struct bird_client *c, enum bird_client_err err, const struct bird_reply *r,
		     void *arg)
{
	const struct step *s = arg;

	printf("{\"step\": ");
	json_str(s->arg);
	if (err != BIRD_CLIENT_OK) {
		printf(", \"error\": \"%s\", \"message\": ", err_name(err));
		json_str(bird_client_strerror(err));
		printf("}\n");
		failures++;
		step_done();
		return;
	}
	printf(", \"command\": ");
	json_str(s->cmd);
	printf(", \"code\": %u, \"class\": %u, \"async\": %zu, \"reader_error\": ", r->code, r->cls,
	       r->n_async);
	json_str(r->err != BIRD_PERR_OK ? bird_perr_str(r->err) : "");
	switch (s->kind) {
	case S_STATUS:
		print_status(r);
		break;
	case S_PROTOCOLS:
		print_protocols(r);
		break;
	case S_COUNT:
		print_count(r);
		break;
	case S_ENABLE:
	case S_DISABLE:
		print_ctl(s, r);
		break;
	case S_RAW:
		print_raw(r);
		break;
	}
	printf("}\n");
	fflush(stdout);
	step_done();
}

static void state_cb(struct bird_client *c, enum bird_client_state st, enum bird_client_err err,
		     void *arg)
{
	if (st == BIRD_CLIENT_DISCONNECTED)
		disconnect_err = err_name(err);
}

static int parse_step(const char *arg, struct step *s)
{
	const char *v;

	memset(s, 0, sizeof(*s));
	s->arg = arg;
	if (strcmp(arg, "status") == 0) {
		s->kind = S_STATUS;
		snprintf(s->cmd, sizeof(s->cmd), "show status");
	} else if (strcmp(arg, "protocols") == 0) {
		s->kind = S_PROTOCOLS;
		snprintf(s->cmd, sizeof(s->cmd), "show protocols");
	} else if ((v = strchr(arg, ':')) != NULL) {
		size_t kl = (size_t)(v - arg);

		v++;
		if (kl == 5 && strncmp(arg, "count", 5) == 0)
			s->kind = S_COUNT;
		else if (kl == 3 && strncmp(arg, "raw", 3) == 0)
			s->kind = S_RAW;
		else if (kl == 6 && strncmp(arg, "enable", 6) == 0)
			s->kind = S_ENABLE;
		else if (kl == 7 && strncmp(arg, "disable", 7) == 0)
			s->kind = S_DISABLE;
		else
			return -1;
		if (s->kind == S_ENABLE || s->kind == S_DISABLE) {
			s->name = v;
			return bird_cmd_ctl(s->cmd, sizeof(s->cmd),
					    s->kind == S_ENABLE ? BIRD_CTL_ENABLE : BIRD_CTL_DISABLE,
					    v);
		}
		if (strlen(v) >= sizeof(s->cmd))
			return -1;
		snprintf(s->cmd, sizeof(s->cmd), "%s", v);
	} else {
		return -1;
	}
	return bird_cmd_valid(s->cmd) ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct bird_client_config cfg = { .state_cb = state_cb };
	struct bird_client *c;
	struct step *steps;
	const char *err = NULL;
	int opt;

	signal(SIGPIPE, SIG_IGN);
	while ((opt = getopt(argc, argv, "t:")) != -1) {
		if (opt != 't')
			return 2;
		cfg.command_timeout_ms = (unsigned)atoi(optarg);
		cfg.connect_timeout_ms = cfg.command_timeout_ms;
	}
	if (argc - optind < 2) {
		fprintf(stderr, "usage: bird_probe [-t MS] SOCKET STEP...\n");
		return 2;
	}
	cfg.socket_path = argv[optind];
	n_steps = (size_t)(argc - optind - 1);
	cfg.max_queue = n_steps;
	steps = calloc(n_steps, sizeof(*steps));
	base = event_base_new();
	if (steps == NULL || base == NULL)
		return 1;
	for (size_t i = 0; i < n_steps; i++) {
		if (parse_step(argv[optind + 1 + (int)i], &steps[i]) < 0) {
			fprintf(stderr, "bird_probe: bad step %s\n", argv[optind + 1 + (int)i]);
			return 2;
		}
	}
	c = bird_client_new(base, &cfg, &err);
	if (c == NULL) {
		fprintf(stderr, "bird_probe: %s\n", err);
		return 2;
	}
	if (bird_client_connect(c) < 0) {
		perror("bird_probe: socket");
		return 1;
	}
	for (size_t i = 0; i < n_steps; i++)
		if (bird_client_command(c, steps[i].cmd, reply_cb, &steps[i]) < 0)
			return 1;
	event_base_dispatch(base);

	printf("{\"done\": true, \"greeting\": ");
	json_str(bird_client_greeting(c));
	printf(", \"state\": \"%s\", \"disconnect\": ",
	       bird_client_state_str(bird_client_state(c)));
	if (disconnect_err != NULL)
		json_str(disconnect_err);
	else
		printf("null");
	printf("}\n");
	bird_client_free(&c);
	event_base_free(base);
	free(steps);
	return failures == 0 ? 0 : 1;
}
