/*
 * control_cmd.c - the commands of the control socket (control.c): their
 * table (words, arguments, options, syntax), checking a request against
 * it and running its handler (control_user.c, control_node.c), "help",
 * and the queue of connections waiting for the writer slot.
 */
#include <string.h>

#include "control_int.h"
#include "log.h"
#include "node.h"

struct ctl_cmd {
	const char *w1, *w2;		/* command words; w2 NULL: one word */
	unsigned nargs;			/* positional arguments after them */
	const char *opts[4];		/* allowed option keys */
	bool writes;			/* takes the writer slot */
	const char *syntax;
	ctl_cmd_fn *run;
};

static void cmd_help(struct ctl_conn *c, const char *const *args);

static const struct ctl_cmd commands[] = {
	{ "user", "add", 1, { "hash", "home", "quota" }, true,
	  "user add NAME hash=HASH [home=POP] [quota=SIZE]", ctl_cmd_user_add },
	{ "user", "del", 1, { NULL }, true, "user del NAME", ctl_cmd_user_del },
	{ "user", "passwd", 1, { "hash" }, true, "user passwd NAME hash=HASH",
	  ctl_cmd_user_passwd },
	{ "user", "set", 1, { "quota", "home", "enabled" }, true,
	  "user set NAME [quota=SIZE] [home=POP] [enabled=yes|no]", ctl_cmd_user_set },
	{ "user", "list", 0, { NULL }, false, "user list", ctl_cmd_user_list },
	{ "user", "show", 1, { NULL }, false, "user show NAME", ctl_cmd_user_show },
	{ "status", NULL, 0, { "format" }, false, "status [format=text|json]", ctl_cmd_status },
	{ "peers", NULL, 0, { "format" }, false, "peers [format=text|json]", ctl_cmd_peers },
	{ "lag", "cluster", 0, { "format" }, false, "lag cluster [format=text|json]",
	  ctl_cmd_lag_cluster },
	{ "lag", NULL, 0, { "format" }, false, "lag [format=text|json]", ctl_cmd_lag },
	{ "verify", NULL, 1, { "format" }, false, "verify USER [format=text|json]",
	  ctl_cmd_verify },
	{ "mirror", "list", 1, { NULL }, false, "mirror list ORIGIN", ctl_cmd_mirror_list },
	{ "drain", NULL, 0, { NULL }, false, "drain", ctl_cmd_drain },
	{ "undrain", NULL, 0, { NULL }, false, "undrain", ctl_cmd_undrain },
	{ "help", NULL, 0, { NULL }, false, "help", cmd_help },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void cmd_help(struct ctl_conn *c, const char *const *args)
{
	char body[1024];
	size_t len = 0;

	for (size_t i = 0; i < N_COMMANDS && len < sizeof(body); i++)
		len += (size_t)snprintf(body + len, sizeof(body) - len, "%s\n", commands[i].syntax);
	ctl_reply_ok(c, body, len < sizeof(body) ? len : sizeof(body) - 1);
}

static const struct ctl_cmd *find_command(const struct ctl_request *req, bool *word_known_r)
{
	*word_known_r = false;
	for (size_t i = 0; i < N_COMMANDS; i++) {
		const struct ctl_cmd *cmd = &commands[i];

		if (strcmp(req->args[0], cmd->w1) != 0)
			continue;
		*word_known_r = true;
		if (cmd->w2 == NULL)
			return cmd;
		if (req->n_args >= 2 && strcmp(req->args[1], cmd->w2) == 0)
			return cmd;
	}
	return NULL;
}

static bool opt_allowed(const struct ctl_cmd *cmd, const char *key)
{
	for (size_t i = 0; i < sizeof(cmd->opts) / sizeof(cmd->opts[0]) && cmd->opts[i]; i++) {
		if (strcmp(cmd->opts[i], key) == 0)
			return true;
	}
	return false;
}

/* Answer c->req, at once or (a write) from the store callback. */
void ctl_run_command(struct ctl_conn *c)
{
	const struct ctl_request *req = &c->req;
	unsigned words;
	bool known;
	const struct ctl_cmd *cmd = find_command(req, &known);

	if (cmd == NULL) {
		if (known)
			ctl_reply_err(c, CTL_E_UNKNOWN, "unknown %s command (try \"help\")",
				      req->args[0]);
		else
			ctl_reply_err(c, CTL_E_UNKNOWN, "unknown command (try \"help\")");
		return;
	}
	words = cmd->w2 != NULL ? 2 : 1;
	if (req->n_args != words + cmd->nargs) {
		ctl_reply_err(c, CTL_E_USAGE, "usage: %s", cmd->syntax);
		return;
	}
	for (size_t i = 0; i < req->n_opts; i++) {
		if (!opt_allowed(cmd, req->opts[i].key)) {
			ctl_reply_err(c, CTL_E_USAGE, "unknown option %s; usage: %s",
				      req->opts[i].key, cmd->syntax);
			return;
		}
	}
	if (cmd->writes && c->ctl->n->stopping) {
		ctl_reply_err(c, CTL_E_SHUTDOWN, "popnode is stopping");
		return;
	}
	log_debug("control.request", "conn=%lu peer_uid=%u cmd=\"%s%s%s\"", c->id, c->uid, cmd->w1,
		  cmd->w2 != NULL ? " " : "", cmd->w2 != NULL ? cmd->w2 : "");
	c->dispatching = true;
	cmd->run(c, req->args + words);
	c->dispatching = false;
}

bool ctl_command_writes(const struct ctl_request *req)
{
	bool known;
	const struct ctl_cmd *cmd = find_command(req, &known);

	return cmd != NULL && cmd->writes;
}

/* Give the writer slot to waiting connections, in order, while free. */
void ctl_run_waiting(struct control *ctl)
{
	if (ctl->draining_waiting)
		return;
	ctl->draining_waiting = true;
	while (ctl->writing == NULL && !TAILQ_EMPTY(&ctl->waiting)) {
		struct ctl_conn *c = TAILQ_FIRST(&ctl->waiting);

		TAILQ_REMOVE(&ctl->waiting, c, wait_entry);
		c->waiting = false;
		c->busy = false;
		ctl_run_command(c);
		if (c->op == NULL) {
			/* answered at once: go on with its next request */
			ctl_conn_process(c);
			ctl_conn_settle(c);
		}
	}
	ctl->draining_waiting = false;
}
