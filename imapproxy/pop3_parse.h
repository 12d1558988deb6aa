/*
 * pop3_parse.h - the POP3 command parser (RFC 1939, 2449, 2595, 5034).
 *
 * One call parses one command line (without its CRLF) into a command id
 * and up to two arguments, or a precise error.  No I/O, no allocation,
 * nothing but libc: the session (pop3.c) reads lines, the fuzzer
 * (tests/fuzz/fuzz_pop3.c) feeds bytes.  Which commands are valid in
 * which state is the session's business, not the parser's.
 *
 * Syntax accepted (a little more liberal than RFC 1939 where harmless):
 *   - the keyword is case-insensitive, 3 or 4 letters;
 *   - arguments are separated by runs of SP or HTAB; trailing SP/HTAB is
 *     ignored -- except for PASS, whose argument is the rest of the line
 *     after the separator, verbatim (RFC 1939 lets a server treat spaces
 *     as part of the password);
 *   - any byte < 0x20 other than HTAB, and 0x7F, anywhere in the line is
 *     an error (this includes NUL and a stray CR);
 *   - message numbers are decimal, 1..UINT32_MAX; the TOP line count is
 *     decimal 0..UINT32_MAX; no sign, no blanks inside.
 */
#ifndef IMAPPROXY_POP3_PARSE_H
#define IMAPPROXY_POP3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POP3_MAX_ARGS 2
/* Longest ordinary argument (user name, password, mechanism name):
 * RFC 2449 allows 255 octets for a whole command; we allow it per
 * argument. */
#define POP3_ARG_MAX 255
/* Longest AUTH initial response (base64).  Matches SASL_PLAIN_B64_MAX in
 * sasl_plain.h (pop3.c checks they agree). */
#define POP3_AUTH_RESP_MAX 1024

enum pop3_cmd_id {
	POP3_CMD_USER,		/* USER name */
	POP3_CMD_PASS,		/* PASS string (rest of line) */
	POP3_CMD_AUTH,		/* AUTH [mechanism [initial-response]] */
	POP3_CMD_STLS,		/* STLS */
	POP3_CMD_CAPA,		/* CAPA */
	POP3_CMD_QUIT,		/* QUIT */
	POP3_CMD_STAT,		/* STAT */
	POP3_CMD_LIST,		/* LIST [msg] */
	POP3_CMD_RETR,		/* RETR msg */
	POP3_CMD_DELE,		/* DELE msg */
	POP3_CMD_NOOP,		/* NOOP */
	POP3_CMD_RSET,		/* RSET */
	POP3_CMD_TOP,		/* TOP msg lines */
	POP3_CMD_UIDL,		/* UIDL [msg] */
	POP3_CMD_COUNT
};

enum pop3_parse_result {
	POP3_PARSE_OK = 0,
	POP3_PERR_EMPTY,	/* empty or blank line */
	POP3_PERR_UNKNOWN,	/* keyword is not a POP3 command we know */
	POP3_PERR_BAD_CHAR,	/* control byte (NUL, CR, ...) in the line */
	POP3_PERR_ARGS,		/* wrong number of arguments */
	POP3_PERR_ARG_TOO_LONG,	/* an argument exceeds its limit */
	POP3_PERR_NOT_NUMBER,	/* a numeric argument has a non-digit */
	POP3_PERR_RANGE,	/* message number 0, or a number > UINT32_MAX */
};

struct pop3_arg {
	const char *p;		/* points into the parsed line, not NUL-terminated */
	size_t len;
};

struct pop3_command {
	enum pop3_cmd_id id;	/* valid unless the result is EMPTY/UNKNOWN/BAD_CHAR */
	unsigned nargs;
	struct pop3_arg args[POP3_MAX_ARGS];
	/* For numeric arguments (LIST, RETR, DELE, TOP, UIDL), the value of
	 * args[i]; 0 for non-numeric ones. */
	uint32_t num[POP3_MAX_ARGS];
	/* On ARG_TOO_LONG, NOT_NUMBER or RANGE: index of the bad argument. */
	unsigned bad_arg;
};

/* Parse one command line of len bytes (CRLF already removed; the line may
 * contain any bytes, including NUL).  Fills *cmd_r (args point into line)
 * and returns POP3_PARSE_OK or an enum pop3_parse_result error. */
int pop3_parse_line(const char *line, size_t len, struct pop3_command *cmd_r);

/* "USER", "PASS", ... for a command id; "?" if out of range. */
const char *pop3_cmd_name(enum pop3_cmd_id id);

/* Short human text for a parse result, suitable after "-ERR ". */
const char *pop3_parse_strerror(int result);

/* true if arg i of command id is a message number (1..UINT32_MAX). */
bool pop3_arg_is_msgno(enum pop3_cmd_id id, unsigned i);

#endif
