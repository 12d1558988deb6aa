/*
 * lmtp_parse.h - LMTP (RFC 2033) syntax without I/O: the command-line
 * parser and the resumable DATA reader.
 *
 * Neither part reads or writes anything and neither depends on another
 * popnode module, so both are unit-tested and fuzzed alone.
 *
 * Command lines: lmtp_parse_command() takes one line (with or without its
 * CRLF/LF) and fills a struct lmtp_cmd: the verb, its arguments (the LHLO
 * domain; the MAIL/RCPT address split into local part and domain; the MAIL
 * parameters SIZE= and BODY=) or a precise error.  lmtp_perr_reply() maps an
 * error to its SMTP reply code and enhanced status code (RFC 3463).
 *
 * DATA: a struct lmtp_data is fed the bytes after "354" in chunks of any
 * size (one byte at a time works).  It finds the lines, undoes dot-stuffing
 * (RFC 5321 4.5.2), turns bare LF into CRLF, and stops right after the
 * terminating "CRLF.CRLF", telling how many input bytes it used so the
 * caller can go on with the pipelined commands that follow.  It never
 * stops early: a message over the size limit, a line over the line limit
 * or an allocation failure is remembered and reported once the end has
 * been seen, so the session stays in step with the client and can answer
 * each recipient (552 and friends) after the final dot.
 */
#ifndef POPNODE_LMTP_PARSE_H
#define POPNODE_LMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest local part, domain (RFC 5321 allows 64/255; SRS and similar
 * rewritten senders exceed 64, so 255 is accepted for both) and address
 * ("local@domain", local part in its quoted form if it was quoted). */
#define LMTP_LOCAL_MAX 255
#define LMTP_DOMAIN_MAX 255
#define LMTP_ADDR_MAX (LMTP_LOCAL_MAX + 1 + LMTP_DOMAIN_MAX)

enum lmtp_cmd_type {
	LMTP_CMD_NONE = 0,	/* verb not recognized (err is set) */
	LMTP_CMD_LHLO,
	LMTP_CMD_MAIL,
	LMTP_CMD_RCPT,
	LMTP_CMD_DATA,
	LMTP_CMD_RSET,
	LMTP_CMD_NOOP,
	LMTP_CMD_QUIT,
	LMTP_CMD_VRFY,
	LMTP_CMD_HELP,
	LMTP_CMD_COUNT
};

enum lmtp_perr {
	LMTP_PERR_OK = 0,
	LMTP_PERR_LINE,		 /* empty line, NUL or bare CR: 500 5.5.2 */
	LMTP_PERR_UNKNOWN,	 /* unknown verb: 500 5.5.1 */
	LMTP_PERR_WRONG_PROTO,	 /* HELO/EHLO on LMTP: 500 5.5.1 */
	LMTP_PERR_NOT_IMPL,	 /* EXPN, BDAT, STARTTLS...: 502 5.5.1 */
	LMTP_PERR_SYNTAX,	 /* bad or missing arguments: 501 5.5.4 */
	LMTP_PERR_ADDRESS,	 /* bad address: 501 5.1.7 (MAIL), 501 5.1.3 (RCPT) */
	LMTP_PERR_PARAM_UNKNOWN, /* parameter not supported: 555 5.5.4 */
	LMTP_PERR_PARAM_VALUE,	 /* bad or repeated parameter value: 501 5.5.4 */
};

enum lmtp_body {
	LMTP_BODY_UNSPEC = 0,
	LMTP_BODY_7BIT,
	LMTP_BODY_8BITMIME,
};

struct lmtp_addr {
	bool null;			/* "<>" (MAIL only) */
	/* Local part without quotes and escapes; NUL-terminated. */
	char local[LMTP_LOCAL_MAX + 1];
	size_t local_len;
	/* Domain or address literal ("[192.0.2.1]"); empty only for
	 * RCPT TO:<postmaster> (RFC 5321 4.1.1.3). */
	char domain[LMTP_DOMAIN_MAX + 1];
	size_t domain_len;
	/* The address as received, without the brackets and without a
	 * source route; "" for <>.  Only printable ASCII, safe for headers. */
	char addr[LMTP_ADDR_MAX + 1];
	size_t addr_len;
};

struct lmtp_cmd {
	enum lmtp_cmd_type type;	/* set whenever the verb was recognized */
	enum lmtp_perr err;
	const char *detail;		/* static reply text for err, else NULL */
	/* LHLO */
	char lhlo[LMTP_DOMAIN_MAX + 1];
	size_t lhlo_len;
	/* MAIL, RCPT */
	struct lmtp_addr addr;
	/* MAIL parameters */
	bool has_size;
	uint64_t size;
	enum lmtp_body body;
};

/* Parse one command line of len bytes.  A trailing "\r\n" or "\n" is
 * removed, then trailing blanks; any other CR, LF or NUL is an error.
 * Verbs are case-insensitive.  Fills *cmd_r (entirely) and returns
 * cmd_r->err. */
enum lmtp_perr lmtp_parse_command(const char *line, size_t len, struct lmtp_cmd *cmd_r);

/* Reply code and enhanced status code ("5.5.2") for a parse error;
 * type chooses between the MAIL and RCPT address codes. */
unsigned lmtp_perr_reply(enum lmtp_perr err, enum lmtp_cmd_type type, const char **enh_r);

/* "LHLO", "MAIL", ... ("?" for LMTP_CMD_NONE). */
const char *lmtp_cmd_name(enum lmtp_cmd_type type);

/* ---- DATA ------------------------------------------------------------ */

struct lmtp_data;

enum lmtp_data_status {
	LMTP_DATA_MORE,		/* all input used; feed more */
	LMTP_DATA_DONE,		/* "CRLF.CRLF" seen; see lmtp_data_error() */
};

enum lmtp_data_err {
	LMTP_DATA_OK = 0,
	LMTP_DATA_TOO_BIG,	/* more than max_size bytes */
	LMTP_DATA_LINE_TOO_LONG, /* a line over max_line bytes */
	LMTP_DATA_NOMEM,	/* the buffer could not grow */
};

/* A reader for one message.  max_line: longest line (without its line
 * end) accepted, 0 = no limit.  max_size: most message bytes (after
 * unstuffing, with CRLF line ends) kept; beyond that the reader keeps
 * counting but stores nothing and frees what it held.  NULL if out of
 * memory (nothing is allocated for the body until bytes arrive). */
struct lmtp_data *lmtp_data_new(size_t max_line, size_t max_size);
void lmtp_data_free(struct lmtp_data **dp);
/* Start a new message with the same limits; frees the stored one. */
void lmtp_data_reset(struct lmtp_data *d);

/* Feed len bytes.  *used_r is how many were consumed: all of them with
 * LMTP_DATA_MORE; with LMTP_DATA_DONE the bytes up to and including the
 * final ".\r\n" (or ".\n"), the rest belongs to the next commands.  Once
 * done, further calls use nothing and return LMTP_DATA_DONE. */
enum lmtp_data_status lmtp_data_feed(struct lmtp_data *d, const void *buf, size_t len,
				     size_t *used_r);

/* After DONE: what went wrong, if anything (TOO_BIG wins over
 * LINE_TOO_LONG, which wins over NOMEM). */
enum lmtp_data_err lmtp_data_error(const struct lmtp_data *d);
/* Message bytes seen so far (stored or not), saturating at SIZE_MAX. */
size_t lmtp_data_size(const struct lmtp_data *d);
/* The stored message: CRLF line ends, dot-unstuffed, the CRLF before the
 * final dot included.  Valid until the next feed/reset/free; NULL with
 * *len_r 0 if nothing is stored (empty message or an error). */
const char *lmtp_data_body(const struct lmtp_data *d, size_t *len_r);

#endif
