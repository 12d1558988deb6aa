/*
 * pop3_parse.c - POP3 command line parser.
 *
 * A table describes every command: its keyword, how many arguments it
 * takes and what kind each one is.  Parsing a line is three passes over
 * at most one line: reject control bytes, split off the keyword and look
 * it up, then split and check the arguments against the table row.
 * Errors are reported in a fixed order (bad byte, unknown keyword,
 * argument count, argument length, number syntax, number range) so the
 * same line always gives the same answer.  See pop3_parse.h for the
 * syntax accepted.  Depends on libc only (the fuzz target links this file
 * alone).
 */
#include "pop3_parse.h"

#include <string.h>

enum arg_kind {
	ARG_NONE,
	ARG_WORD,	/* blank-free token, POP3_ARG_MAX */
	ARG_REST,	/* rest of the line verbatim, POP3_ARG_MAX */
	ARG_B64,	/* blank-free token, POP3_AUTH_RESP_MAX */
	ARG_MSGNO,	/* 1..UINT32_MAX */
	ARG_COUNT,	/* 0..UINT32_MAX */
};

struct cmd_spec {
	char name[5];
	unsigned char min_args, max_args;
	unsigned char kind[POP3_MAX_ARGS];
};

static const struct cmd_spec specs[POP3_CMD_COUNT] = {
	[POP3_CMD_USER] = { "USER", 1, 1, { ARG_WORD, ARG_NONE } },
	[POP3_CMD_PASS] = { "PASS", 1, 1, { ARG_REST, ARG_NONE } },
	[POP3_CMD_AUTH] = { "AUTH", 0, 2, { ARG_WORD, ARG_B64 } },
	[POP3_CMD_STLS] = { "STLS", 0, 0, { ARG_NONE, ARG_NONE } },
	[POP3_CMD_CAPA] = { "CAPA", 0, 0, { ARG_NONE, ARG_NONE } },
	[POP3_CMD_QUIT] = { "QUIT", 0, 0, { ARG_NONE, ARG_NONE } },
	[POP3_CMD_STAT] = { "STAT", 0, 0, { ARG_NONE, ARG_NONE } },
	[POP3_CMD_LIST] = { "LIST", 0, 1, { ARG_MSGNO, ARG_NONE } },
	[POP3_CMD_RETR] = { "RETR", 1, 1, { ARG_MSGNO, ARG_NONE } },
	[POP3_CMD_DELE] = { "DELE", 1, 1, { ARG_MSGNO, ARG_NONE } },
	[POP3_CMD_NOOP] = { "NOOP", 0, 0, { ARG_NONE, ARG_NONE } },
	[POP3_CMD_RSET] = { "RSET", 0, 0, { ARG_NONE, ARG_NONE } },
	[POP3_CMD_TOP] = { "TOP", 2, 2, { ARG_MSGNO, ARG_COUNT } },
	[POP3_CMD_UIDL] = { "UIDL", 0, 1, { ARG_MSGNO, ARG_NONE } },
};

static int is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static unsigned char ascii_upper(unsigned char c)
{
	return (c >= 'a' && c <= 'z') ? (unsigned char)(c - 'a' + 'A') : c;
}

/* Index into specs of the keyword, or -1. */
static int lookup_keyword(const char *kw, size_t len)
{
	if (len < 3 || len > 4)
		return -1;
	for (int i = 0; i < POP3_CMD_COUNT; i++) {
		const char *name = specs[i].name;
		if (strlen(name) != len)
			continue;
		size_t j;
		for (j = 0; j < len; j++)
			if (ascii_upper((unsigned char)kw[j]) != (unsigned char)name[j])
				break;
		if (j == len)
			return i;
	}
	return -1;
}

static size_t kind_max_len(unsigned char kind)
{
	return kind == ARG_B64 ? POP3_AUTH_RESP_MAX : POP3_ARG_MAX;
}

/* Decimal digits only -> *v_r.  POP3_PARSE_OK, NOT_NUMBER or RANGE
 * (> UINT32_MAX).  Zero is the caller's decision. */
static int parse_u32(const char *p, size_t len, uint32_t *v_r)
{
	uint64_t v = 0;
	int overflow = 0;

	if (len == 0)
		return POP3_PERR_NOT_NUMBER;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < '0' || c > '9')
			return POP3_PERR_NOT_NUMBER;
		if (!overflow) {
			v = v * 10 + (uint64_t)(c - '0');
			if (v > UINT32_MAX)
				overflow = 1;
		}
	}
	if (overflow)
		return POP3_PERR_RANGE;
	*v_r = (uint32_t)v;
	return POP3_PARSE_OK;
}

int pop3_parse_line(const char *line, size_t len, struct pop3_command *cmd_r)
{
	memset(cmd_r, 0, sizeof(*cmd_r));

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return POP3_PERR_BAD_CHAR;
	}

	size_t kwlen = 0;
	while (kwlen < len && !is_blank((unsigned char)line[kwlen]))
		kwlen++;
	if (kwlen == 0) {
		size_t i = 0;
		while (i < len && is_blank((unsigned char)line[i]))
			i++;
		return i == len ? POP3_PERR_EMPTY : POP3_PERR_UNKNOWN;
	}
	int idx = lookup_keyword(line, kwlen);
	if (idx < 0)
		return POP3_PERR_UNKNOWN;
	const struct cmd_spec *spec = &specs[idx];
	cmd_r->id = (enum pop3_cmd_id)idx;

	size_t pos = kwlen;
	if (spec->kind[0] == ARG_REST) {
		while (pos < len && is_blank((unsigned char)line[pos]))
			pos++;
		if (pos < len) {
			cmd_r->args[0].p = line + pos;
			cmd_r->args[0].len = len - pos;
			cmd_r->nargs = 1;
		}
	} else {
		for (;;) {
			while (pos < len && is_blank((unsigned char)line[pos]))
				pos++;
			if (pos == len)
				break;
			size_t start = pos;
			while (pos < len && !is_blank((unsigned char)line[pos]))
				pos++;
			if (cmd_r->nargs == spec->max_args)
				return POP3_PERR_ARGS;
			cmd_r->args[cmd_r->nargs].p = line + start;
			cmd_r->args[cmd_r->nargs].len = pos - start;
			cmd_r->nargs++;
		}
	}
	if (cmd_r->nargs < spec->min_args)
		return POP3_PERR_ARGS;

	for (unsigned i = 0; i < cmd_r->nargs; i++) {
		if (cmd_r->args[i].len > kind_max_len(spec->kind[i])) {
			cmd_r->bad_arg = i;
			return POP3_PERR_ARG_TOO_LONG;
		}
	}
	for (unsigned i = 0; i < cmd_r->nargs; i++) {
		unsigned char kind = spec->kind[i];
		if (kind != ARG_MSGNO && kind != ARG_COUNT)
			continue;
		int r = parse_u32(cmd_r->args[i].p, cmd_r->args[i].len, &cmd_r->num[i]);
		if (r == POP3_PARSE_OK && kind == ARG_MSGNO && cmd_r->num[i] == 0)
			r = POP3_PERR_RANGE;
		if (r != POP3_PARSE_OK) {
			cmd_r->num[i] = 0;
			cmd_r->bad_arg = i;
			return r;
		}
	}
	return POP3_PARSE_OK;
}

const char *pop3_cmd_name(enum pop3_cmd_id id)
{
	if ((unsigned)id >= POP3_CMD_COUNT)
		return "?";
	return specs[id].name;
}

bool pop3_arg_is_msgno(enum pop3_cmd_id id, unsigned i)
{
	if ((unsigned)id >= POP3_CMD_COUNT || i >= POP3_MAX_ARGS)
		return false;
	return specs[id].kind[i] == ARG_MSGNO;
}

const char *pop3_parse_strerror(int result)
{
	switch (result) {
	case POP3_PARSE_OK: return "ok";
	case POP3_PERR_EMPTY: return "empty command";
	case POP3_PERR_UNKNOWN: return "unknown command";
	case POP3_PERR_BAD_CHAR: return "invalid character in command";
	case POP3_PERR_ARGS: return "wrong number of arguments";
	case POP3_PERR_ARG_TOO_LONG: return "argument too long";
	case POP3_PERR_NOT_NUMBER: return "invalid number";
	case POP3_PERR_RANGE: return "number out of range";
	}
	return "parse error";
}
