/*
 * control_proto.h - the control socket's wire format (docs/control-protocol.md),
 * shared by the daemon (control.c) and popctl.  No I/O here: requests are
 * encoded into and parsed from memory, responses are appended to an
 * evbuffer (used as a plain memory buffer) and decoded by an incremental
 * reader that can be fed any number of bytes at a time.
 *
 * Request: one line, LF-terminated, at most CTL_REQUEST_MAX bytes with
 * the LF.  Fields are separated by one TAB.  Positional fields (the
 * command words and their arguments) come first and contain no '=';
 * then option fields "key=value" (key [a-z0-9_-]+, value up to the end
 * of the field).  No field is empty; no field contains TAB, CR, LF or
 * NUL.  One CR before the LF is tolerated and ignored.
 *
 * Response: a status line, "ok" or "err CODE message", then body lines,
 * then a line holding only ".".  A body line that starts with "." is
 * sent with one more "." in front (dot-stuffing, as in SMTP/POP3).
 */
#ifndef POPNODE_CONTROL_PROTO_H
#define POPNODE_CONTROL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define CTL_REQUEST_MAX 8192	/* one request line including its LF */
#define CTL_FIELD_MAX 1024	/* bytes in one field */
#define CTL_ARGS_MAX 8		/* positional fields */
#define CTL_OPTS_MAX 8		/* key=value fields */
#define CTL_KEY_MAX 32		/* bytes in an option name */
#define CTL_STATUS_MAX 1024	/* response status line, without LF */
#define CTL_LINE_MAX 16384	/* one response body line, without LF */
#define CTL_CODE_MAX 32		/* error code token, incl. NUL */

/* Error codes (the CODE of "err CODE message"). */
#define CTL_E_PROTO "proto"		/* malformed request line */
#define CTL_E_TOOLONG "toolong"		/* request line over CTL_REQUEST_MAX */
#define CTL_E_UNKNOWN "unknown"		/* no such command */
#define CTL_E_USAGE "usage"		/* wrong arguments or options */
#define CTL_E_INVAL "inval"		/* a value is not acceptable */
#define CTL_E_DENIED "denied"		/* peer uid not allowed */
#define CTL_E_BUSY "busy"		/* too many control connections */
#define CTL_E_EXISTS "exists"		/* store: already exists */
#define CTL_E_NOTFOUND "notfound"	/* store: no such user */
#define CTL_E_QUOTA "quota"
#define CTL_E_FULL "full"		/* store: map or disk full */
#define CTL_E_IO "io"			/* store: I/O error */
#define CTL_E_SHUTDOWN "shutdown"	/* daemon stopping */
#define CTL_E_DISABLED "disabled"
#define CTL_E_INTERNAL "internal"	/* out of memory, ... */

struct ctl_opt {
	const char *key;
	const char *value;
};

struct ctl_request {
	char buf[CTL_REQUEST_MAX];	/* the fields, NUL-separated */
	const char *args[CTL_ARGS_MAX];
	size_t n_args;
	struct ctl_opt opts[CTL_OPTS_MAX];
	size_t n_opts;
};

/* Parse one request line (line[0..len), without its LF).  Pointers in
 * req point into req->buf.  0, or -1 with *error_r set to a static
 * message. */
int ctl_request_parse(struct ctl_request *req, const char *line, size_t len,
		      const char **error_r);
/* The value of option key, or NULL. */
const char *ctl_request_opt(const struct ctl_request *req, const char *key);

/* Encode a request line, LF included, into out (NUL-terminated).
 * Returns its length, or -1 with *error_r set (a field is empty, holds
 * TAB/CR/LF, is too long, an argument holds '=', a key is not
 * [a-z0-9_-]+, too many fields, or out / CTL_REQUEST_MAX too small). */
int ctl_request_encode(char *out, size_t outsz, const char *const *args, size_t n_args,
		       const struct ctl_opt *opts, size_t n_opts, const char **error_r);

/* true if s may be a field value: 1..CTL_FIELD_MAX bytes, no TAB/CR/LF. */
bool ctl_value_ok(const char *s);

/* ---- responses (daemon side) -------------------------------------------- */

/* Status line: code NULL gives "ok", otherwise "err CODE message".  Any
 * CR or LF in message becomes a space; message is cut to fit
 * CTL_STATUS_MAX.  0 or -1 (out of memory). */
int ctl_response_begin(struct evbuffer *out, const char *code, const char *message);
/* Body text: split at LF, each line dot-stuffed and LF-terminated (a
 * last line without LF gets one).  0 or -1. */
int ctl_response_body(struct evbuffer *out, const char *data, size_t len);
/* The final "." line.  0 or -1. */
int ctl_response_end(struct evbuffer *out);

/* ---- responses (client side) -------------------------------------------- */

enum ctl_read_result {
	CTL_READ_ERROR = -1,
	CTL_READ_MORE = 0,	/* every byte consumed, the response goes on */
	CTL_READ_DONE = 1,	/* the response is complete */
};

struct ctl_reader {
	int state;
	size_t line_len;		/* current line, for the limits */
	size_t body_max;
	char status[CTL_STATUS_MAX + 1];
	/* results */
	bool ok;
	char code[CTL_CODE_MAX];	/* "" when ok */
	const char *message;		/* points into status; "" when ok */
	char *body;			/* unstuffed body, NUL-terminated */
	size_t body_len;
	size_t body_cap;
};

/* body_max bounds the body the reader accepts (0 = 64 MiB). */
void ctl_reader_init(struct ctl_reader *r, size_t body_max);
/* Feed bytes.  *used_r is how many were consumed (on DONE, the bytes
 * after the final "." line are not).  ERROR sets *error_r (static). */
enum ctl_read_result ctl_reader_feed(struct ctl_reader *r, const char *data, size_t len,
				     size_t *used_r, const char **error_r);
/* Free the body; the reader can be initialised again. */
void ctl_reader_clear(struct ctl_reader *r);

/* ---- body rows ---------------------------------------------------------- */

/* One field of a TAB-separated body row ("user list", "peers"): s copied
 * into out (outsz >= 2) with TAB, CR, LF and every other control byte
 * (below 0x20, and 0x7f) turned into a space; cut to outsz - 1 bytes,
 * never inside a UTF-8 sequence.  NULL or "" gives "-", so a field is
 * never empty.  Returns out. */
const char *ctl_row_field(char *out, size_t outsz, const char *s);

/* ---- values ------------------------------------------------------------- */

/* A byte count: decimal digits with an optional K, M, G or T suffix
 * (powers of 1024, either case), or "unlimited" (0).  false on garbage
 * or overflow. */
bool ctl_parse_size(const char *s, uint64_t *out);
/* A POP id (home): 1..63 bytes of [A-Za-z0-9._-]. */
bool ctl_valid_pop(const char *s);

#endif
