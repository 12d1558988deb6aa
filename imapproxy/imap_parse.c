/*
 * imap_parse.c - IMAP command parser entry points: errors, the command
 * names, the command head (tag, UID, command name) and parsing one
 * command into its arena.  The tokenizer is in imap_parse_tok.c, the
 * argument parsers in imap_parse_cmd.c, imap_fetch_parse.c and
 * imap_search_parse.c.
 *
 * Recursive descent straight over the bytes, no intermediate argument
 * tree: each command parser asks for exactly the tokens its grammar
 * allows, so errors can say what was expected where.  Recursion only
 * happens through p_enter()/p_leave(), which enforce lim->max_depth.
 * Everything a command keeps is copied into its arena except the APPEND
 * message, which stays in the raw buffer the command owns.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"
#include "imap_parse_private.h"


/* The command and what it owns, in one arena allocation. */
struct cmd_holder {
	struct imap_command cmd;
	char *raw;		/* the command's bytes (APPEND message inside) */
};

static const char *const cmd_names[IMAP_CMD_COUNT] = {
	[IMAP_CMD_CAPABILITY] = "CAPABILITY",
	[IMAP_CMD_NOOP] = "NOOP",
	[IMAP_CMD_LOGOUT] = "LOGOUT",
	[IMAP_CMD_STARTTLS] = "STARTTLS",
	[IMAP_CMD_AUTHENTICATE] = "AUTHENTICATE",
	[IMAP_CMD_LOGIN] = "LOGIN",
	[IMAP_CMD_SELECT] = "SELECT",
	[IMAP_CMD_EXAMINE] = "EXAMINE",
	[IMAP_CMD_CREATE] = "CREATE",
	[IMAP_CMD_DELETE] = "DELETE",
	[IMAP_CMD_RENAME] = "RENAME",
	[IMAP_CMD_SUBSCRIBE] = "SUBSCRIBE",
	[IMAP_CMD_UNSUBSCRIBE] = "UNSUBSCRIBE",
	[IMAP_CMD_LIST] = "LIST",
	[IMAP_CMD_LSUB] = "LSUB",
	[IMAP_CMD_STATUS] = "STATUS",
	[IMAP_CMD_APPEND] = "APPEND",
	[IMAP_CMD_CHECK] = "CHECK",
	[IMAP_CMD_CLOSE] = "CLOSE",
	[IMAP_CMD_UNSELECT] = "UNSELECT",
	[IMAP_CMD_EXPUNGE] = "EXPUNGE",
	[IMAP_CMD_SEARCH] = "SEARCH",
	[IMAP_CMD_FETCH] = "FETCH",
	[IMAP_CMD_STORE] = "STORE",
	[IMAP_CMD_COPY] = "COPY",
	[IMAP_CMD_MOVE] = "MOVE",
	[IMAP_CMD_IDLE] = "IDLE",
	[IMAP_CMD_NAMESPACE] = "NAMESPACE",
	[IMAP_CMD_ID] = "ID",
	[IMAP_CMD_ENABLE] = "ENABLE",
	[IMAP_CMD_COMPRESS] = "COMPRESS",
	[IMAP_CMD_GETQUOTAROOT] = "GETQUOTAROOT",
	[IMAP_CMD_GETQUOTA] = "GETQUOTA",
};

const char *imap_cmd_name(enum imap_cmd_id id)
{
	if ((unsigned)id >= IMAP_CMD_COUNT)
		return "?";
	return cmd_names[id];
}

static bool uid_allowed(enum imap_cmd_id id)
{
	return id == IMAP_CMD_FETCH || id == IMAP_CMD_STORE || id == IMAP_CMD_COPY ||
	       id == IMAP_CMD_MOVE || id == IMAP_CMD_SEARCH || id == IMAP_CMD_EXPUNGE;
}

/* ---- errors ------------------------------------------------------------ */

void imap_error_set(struct imap_error *err, enum imap_err code, const char *text)
{
	memset(err, 0, sizeof(*err));
	err->code = code;
	snprintf(err->text, sizeof(err->text), "%s", text);
	switch (code) {
	case IMAP_ERR_BAD_CHARSET:
		err->no = true;
		err->resp_code = "BADCHARSET (US-ASCII UTF-8)";
		break;
	case IMAP_ERR_BAD_MAILBOX:
		err->no = true;
		break;
	case IMAP_ERR_USEATTR:
		err->no = true;
		err->resp_code = "USEATTR";
		break;
	case IMAP_ERR_NOMEM:
		err->no = true;
		err->resp_code = "SERVERBUG";
		break;
	default:
		break;
	}
}

const char *imap_error_status(const struct imap_error *e)
{
	return e->no ? "NO" : "BAD";
}

/* Keep error text printable ASCII whatever the client sent. */
static void sanitize(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			*s = '?';
}

int p_fail(struct pctx *c, enum imap_err code, const char *fmt, ...)
{
	if (c->failed)
		return -1;
	char text[IMAP_ERR_TEXT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	sanitize(text);

	/* keep tag and command, reset the rest */
	char tag[IMAP_TAG_MAX + 1];
	bool known = c->err->cmd_known, uid = c->err->uid;
	int id = c->err->cmd;
	memcpy(tag, c->err->tag, sizeof(tag));
	imap_error_set(c->err, code, text);
	memcpy(c->err->tag, tag, sizeof(tag));
	c->err->cmd_known = known;
	c->err->cmd = id;
	c->err->uid = uid;
	c->failed = true;
	return -1;
}

int p_nomem(struct pctx *c)
{
	return p_fail(c, IMAP_ERR_NOMEM, "Out of memory");
}

int p_enter(struct pctx *c)
{
	if (++c->depth > c->lim->max_depth)
		return p_fail(c, IMAP_ERR_NESTING, "Too deeply nested");
	return 0;
}

void p_leave(struct pctx *c)
{
	c->depth--;
}

/* ---- command head ------------------------------------------------------ */

static bool tag_char(unsigned char ch)
{
	return ch < 0x80 && ch != '+' && p_atom_char(ch, true);
}

size_t imap_scan_tag(const char *buf, size_t len, char *tag)
{
	size_t n = 0;

	tag[0] = '\0';
	while (n < len && tag_char((unsigned char)buf[n]))
		n++;
	if (n == 0 || n > IMAP_TAG_MAX || (n < len && buf[n] != ' ' && buf[n] != '\r' &&
					   buf[n] != '\n'))
		return 0;
	memcpy(tag, buf, n);
	tag[n] = '\0';
	return n;
}

static bool lookup_cmd(const char *p, size_t n, enum imap_cmd_id *id_r)
{
	for (unsigned i = 0; i < IMAP_CMD_COUNT; i++)
		if (p_word_eq(p, n, cmd_names[i])) {
			*id_r = (enum imap_cmd_id)i;
			return true;
		}
	return false;
}

static size_t word_len(const char *p, size_t len)
{
	size_t n = 0;

	while (n < len && p_atom_char((unsigned char)p[n], false))
		n++;
	return n;
}

bool imap_scan_command(const char *buf, size_t len, enum imap_cmd_id *id_r, bool *uid_r)
{
	char tag[IMAP_TAG_MAX + 1];
	size_t t = imap_scan_tag(buf, len, tag);

	*uid_r = false;
	if (t == 0 || t >= len || buf[t] != ' ')
		return false;
	const char *p = buf + t + 1;
	size_t rest = len - t - 1;
	size_t n = word_len(p, rest);
	if (p_word_eq(p, n, "UID") && n < rest && p[n] == ' ') {
		*uid_r = true;
		p += n + 1;
		rest -= n + 1;
		n = word_len(p, rest);
	}
	return lookup_cmd(p, n, id_r) && (!*uid_r || uid_allowed(*id_r));
}

/* ---- entry points ------------------------------------------------------ */

static int parse_head(struct pctx *c)
{
	struct imap_command *cmd = c->cmd;
	size_t t = imap_scan_tag(c->buf, c->len, cmd->tag);
	const char *p;
	size_t n;

	if (t == 0) {
		size_t k = 0;
		while (k < c->len && tag_char((unsigned char)c->buf[k]))
			k++;
		if (k > IMAP_TAG_MAX)
			return p_fail(c, IMAP_ERR_SYNTAX, "Tag too long");
		return p_fail(c, IMAP_ERR_SYNTAX, k == 0 || p_at_end(c) ? "Missing or invalid tag"
								     : "Invalid tag");
	}
	memcpy(c->err->tag, cmd->tag, t + 1);
	c->pos = t;
	if (p_sp(c, "command name") < 0 || p_atom(c, "command name", false, &p, &n) < 0)
		return -1;
	if (p_word_eq(p, n, "UID")) {
		cmd->uid = true;
		c->err->uid = true;
		if (p_sp(c, "UID command") < 0 || p_atom(c, "UID command", false, &p, &n) < 0)
			return -1;
	}
	if (!lookup_cmd(p, n, &cmd->id)) {
		c->cmd = NULL;
		p_fail(c, IMAP_ERR_UNKNOWN_COMMAND, "Unknown command %s%.*s", cmd->uid ? "UID " : "",
		       (int)(n > 32 ? 32 : n), p);
		c->cmd = cmd;
		return -1;
	}
	c->err->cmd_known = true;
	c->err->cmd = (int)cmd->id;
	if (cmd->uid && !uid_allowed(cmd->id))
		return p_fail(c, IMAP_ERR_UNKNOWN_COMMAND, "Unknown command UID %s",
			      imap_cmd_name(cmd->id));
	return 0;
}

enum imap_err imap_parse_owned(char *buf, size_t len, const struct imap_limits *lim,
			       struct imap_command **cmd_r, struct imap_error *err_r)
{
	struct imap_arena *a = imap_arena_new(len < 256 ? 1024 : 4096);
	struct cmd_holder *h = a != NULL ? imap_arena_zalloc(a, sizeof(*h)) : NULL;

	*cmd_r = NULL;
	imap_error_set(err_r, IMAP_OK, "");
	if (h == NULL) {
		imap_error_set(err_r, IMAP_ERR_NOMEM, "Out of memory");
		imap_scan_tag(buf, len, err_r->tag);
		free(buf);
		imap_arena_destroy(&a);
		return IMAP_ERR_NOMEM;
	}
	h->raw = buf;
	h->cmd.arena = a;
	struct pctx c = {
		.buf = buf, .len = len, .lim = lim, .a = a, .cmd = &h->cmd, .err = err_r,
	};
	if (parse_head(&c) == 0)
		imap_parse_args(&c);
	if (c.failed) {
		struct imap_command *cmd = &h->cmd;
		imap_command_free(&cmd);
		return err_r->code;
	}
	*cmd_r = &h->cmd;
	return IMAP_OK;
}

enum imap_err imap_parse_command(const void *data, size_t len, const struct imap_limits *lim,
				 struct imap_command **cmd_r, struct imap_error *err_r)
{
	char *buf = malloc(len ? len : 1);

	if (buf == NULL) {
		*cmd_r = NULL;
		imap_error_set(err_r, IMAP_ERR_NOMEM, "Out of memory");
		imap_scan_tag(data, len, err_r->tag);
		return IMAP_ERR_NOMEM;
	}
	if (len > 0)
		memcpy(buf, data, len);
	return imap_parse_owned(buf, len, lim, cmd_r, err_r);
}

void imap_command_free(struct imap_command **cmdp)
{
	if (cmdp == NULL || *cmdp == NULL)
		return;
	struct cmd_holder *h = (struct cmd_holder *)*cmdp;	/* cmd is the first member */
	struct imap_arena *a = h->cmd.arena;
	free(h->raw);
	imap_arena_destroy(&a);
	*cmdp = NULL;
}
