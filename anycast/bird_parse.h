/*
 * bird_parse.h - BIRD 2's control-socket protocol without I/O: the
 * incremental reply reader, and parsers for the replies popnode uses.
 *
 * The protocol (BIRD 2.0.12, checked against a running daemon): every
 * line ends with LF and is one of
 *
 *   "DDDD-text"   a line of a reply; more lines follow
 *   "DDDD text"   the last line of a reply (text may be empty: "0000 ")
 *   " text"       continues the previous line's code (exactly one space
 *                 is stripped; the rest, spaces and tabs included, is text)
 *   "+text"       an asynchronous message (after "echo"), between or
 *                 inside replies; skipped
 *
 * The code's first digit is its class: 0 ok, 1 table row, 2 table heading,
 * 8 run-time error, 9 parse error.  A reply ends at its first "DDDD "
 * line, whatever the class: BIRD ends "show symbols NAME" with a single
 * "1010 " line, so waiting for class 0/8/9 would hang there.  The
 * greeting ("0001 BIRD 2.0.12 ready.") is a reply of its own.
 *
 * The reader is fed bytes in chunks of any size and hands out one
 * complete reply at a time.  Memory per reply is bounded by struct
 * bird_limits.  A reply over a limit is still read to its end (so the
 * stream stays in step) and handed out with its lines dropped and
 * reply->err set; bytes that are not this protocol at all are a fatal
 * error for the stream.
 *
 * The reply parsers below take a finished reply and fill a struct or
 * return a precise error; none of them allocates except
 * bird_parse_protocols().
 */
#ifndef POPNODE_BIRD_PARSE_H
#define POPNODE_BIRD_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the reply reader ----------------------------------------------- */

/* Defaults used for a zero field of struct bird_limits. */
#define BIRD_DEFAULT_MAX_LINE 4096		/* text bytes per line */
#define BIRD_DEFAULT_MAX_LINES 4096		/* lines per reply */
#define BIRD_DEFAULT_MAX_BYTES (256 * 1024)	/* text bytes per reply */

struct bird_limits {
	size_t max_line;	/* longest line's text (after code/space) */
	size_t max_lines;	/* most lines in one reply, the last included */
	size_t max_bytes;	/* most text bytes in one reply, all lines */
};

enum bird_perr {
	BIRD_PERR_OK = 0,
	/* per reply: the reply was read to its end but its lines dropped */
	BIRD_PERR_LINE_TOO_LONG,	/* a line over max_line */
	BIRD_PERR_TOO_MANY_LINES,	/* over max_lines */
	BIRD_PERR_TOO_MANY_BYTES,	/* over max_bytes */
	BIRD_PERR_NOMEM,		/* the reply's storage could not grow */
	/* fatal for the stream: nothing after it can be trusted */
	BIRD_PERR_EMPTY_LINE,		/* a line with nothing before LF */
	BIRD_PERR_BAD_CODE,		/* not 4 digits at the start of a line */
	BIRD_PERR_BAD_SEPARATOR,	/* 4 digits not followed by '-' or ' ' */
	BIRD_PERR_ORPHAN_CONTINUATION,	/* " text" as the first line of a reply */
	BIRD_PERR_NUL,			/* a NUL byte in a line */
};

/* One line of a reply.  A continuation line carries the code of the line
 * it continues and has cont set.  text is NUL-terminated, without the
 * code, the separator, the continuation space or the line end (a CR
 * before the LF is dropped too). */
struct bird_line {
	unsigned code;
	bool cont;
	const char *text;
	size_t len;
};

struct bird_reply {
	enum bird_perr err;	/* OK, or the limit it broke (then n_lines 0) */
	unsigned code;		/* the last line's code, 0..9999 */
	unsigned cls;		/* code / 1000 */
	size_t n_lines;		/* lines kept, the last one included */
	const struct bird_line *lines;
	size_t n_async;		/* "+" lines skipped while it was read */
};

struct bird_parser;

enum bird_feed_status {
	BIRD_FEED_MORE,		/* all input used; no reply ended */
	BIRD_FEED_REPLY,	/* a reply ended: *reply_r is set */
	BIRD_FEED_FATAL,	/* not BIRD's protocol: see bird_parser_error() */
};

/* limits NULL (or a zero field) means the defaults.  NULL if out of
 * memory. */
struct bird_parser *bird_parser_new(const struct bird_limits *limits);
/* Frees the parser and the reply it handed out; *pp becomes NULL.
 * Accepts NULL and *pp == NULL. */
void bird_parser_free(struct bird_parser **pp);
/* Forget everything (a new connection): partial line, reply, error. */
void bird_parser_reset(struct bird_parser *p);

/* Feed len bytes.  *used_r is how many were consumed: all of them with
 * MORE; with REPLY the bytes up to and including the LF of the reply's
 * last line (feed the rest again for the next reply); with FATAL the bytes
 * before the offending one.  With REPLY, *reply_r points to the reply,
 * valid until the next call on this parser; otherwise *reply_r is NULL.
 * After FATAL every call returns FATAL and uses nothing until
 * bird_parser_reset(). */
enum bird_feed_status bird_parser_feed(struct bird_parser *p, const void *buf, size_t len,
				       size_t *used_r, const struct bird_reply **reply_r);

/* The fatal error (BIRD_PERR_OK if none) and a static description. */
enum bird_perr bird_parser_error(const struct bird_parser *p, const char **detail_r);
/* True if a reply has been started and not ended (a line or part of one
 * has been read): a connection lost now was lost mid-reply. */
bool bird_parser_mid_reply(const struct bird_parser *p);

/* "line too long", ...: a static string for any error value. */
const char *bird_perr_str(enum bird_perr err);

/* ---- building commands ---------------------------------------------- */

/* Longest command sent, without its LF.  BIRD 2.0.12 drops the connection
 * when a command line reaches 1023 bytes. */
#define BIRD_CMD_MAX 512
/* Longest protocol name (BIRD's symbol limit is 64). */
#define BIRD_NAME_MAX 64

/* A command is sendable if it is 1..BIRD_CMD_MAX bytes of printable ASCII
 * or tabs (no CR, LF, NUL or other control bytes). */
bool bird_cmd_valid(const char *cmd);
/* A protocol name popnode will put in a command: [A-Za-z_][A-Za-z0-9_]*,
 * at most BIRD_NAME_MAX bytes. */
bool bird_name_valid(const char *name);

enum bird_ctl_op { BIRD_CTL_ENABLE, BIRD_CTL_DISABLE };

/* Write `enable "NAME"` (or disable) into buf, without LF.  The name is quoted,
 * so an unknown one gives "8003 No protocols match" instead of a syntax
 * error; bird_name_valid() keeps pattern characters out.  0, or -1 if the
 * name is invalid or the buffer too small. */
int bird_cmd_ctl(char *buf, size_t size, enum bird_ctl_op op, const char *name);

/* ---- parsing replies ------------------------------------------------ */

enum bird_rerr {
	BIRD_R_OK = 0,
	BIRD_R_LIMIT,		/* the reply broke a reader limit (reply->err) */
	BIRD_R_BIRD_ERROR,	/* BIRD answered with class 8 or 9: see the
				 * reply's last line */
	BIRD_R_UNEXPECTED,	/* a final code this command never ends with */
	BIRD_R_MISSING,		/* a required line or field is absent */
	BIRD_R_BAD_FIELD,	/* a field does not parse */
	BIRD_R_TOO_LONG,	/* a field over its size below */
	BIRD_R_NOMEM,
};

const char *bird_rerr_str(enum bird_rerr err);

/* The reply's last line's text ("" if the reply has no lines). */
const char *bird_reply_last_text(const struct bird_reply *r);

/* -- show status -- */

#define BIRD_VERSION_MAX 31
#define BIRD_TIME_MAX 39
#define BIRD_HOSTNAME_MAX 255
#define BIRD_STATE_TEXT_MAX 63

enum bird_daemon_state {
	BIRD_DAEMON_UP,		/* 0013 Daemon is up and running */
	BIRD_DAEMON_SHUTDOWN,	/* 0013 Shutdown in progress */
	BIRD_DAEMON_RECONFIG,	/* 0013 Reconfiguration in progress */
	BIRD_DAEMON_OTHER,	/* 0013 with another text (state_text) */
};

struct bird_status {
	char version[BIRD_VERSION_MAX + 1];	/* "2.0.12" (1000 "BIRD 2.0.12") */
	uint32_t router_id;			/* host order */
	char router_id_text[16];		/* "10.0.0.1" */
	/* The following are copied as BIRD printed them ("timeformat base"),
	 * "" when the line is absent. */
	char hostname[BIRD_HOSTNAME_MAX + 1];
	char server_time[BIRD_TIME_MAX + 1];
	char last_reboot[BIRD_TIME_MAX + 1];
	char last_reconfig[BIRD_TIME_MAX + 1];
	bool has_last_reconfig;
	bool graceful_restart;			/* 0024 "Graceful restart recovery in progress" */
	enum bird_daemon_state state;
	char state_text[BIRD_STATE_TEXT_MAX + 1];
};

/* Reply to "show status": ends "0013 <state>" with 1000 (version) and 1011
 * (router id, then time lines) before it.  Unknown 1011 lines are
 * ignored.  *error_r: static detail on error. */
enum bird_rerr bird_parse_status(const struct bird_reply *r, struct bird_status *st_r,
				 const char **error_r);

/* -- show protocols -- */

#define BIRD_PROTO_NAME_MAX 31
#define BIRD_SINCE_MAX 39
#define BIRD_INFO_MAX 255
#define BIRD_PSTATE_MAX 15

enum bird_proto_state {
	BIRD_PS_UP,
	BIRD_PS_DOWN,
	BIRD_PS_START,
	BIRD_PS_STOP,
	BIRD_PS_FLUSH,
	BIRD_PS_OTHER,		/* see state_text */
};

struct bird_proto {
	char name[BIRD_NAME_MAX + 1];
	char proto[BIRD_PROTO_NAME_MAX + 1];	/* "BGP", "Static", "Device" */
	char table[BIRD_NAME_MAX + 1];		/* "---" when it has none */
	enum bird_proto_state state;
	char state_text[BIRD_PSTATE_MAX + 1];
	/* "02:09:12.797", or "2026-11-25" for older changes, or
	 * "2026-11-25 02:09:12" with "timeformat protocol iso long" */
	char since[BIRD_SINCE_MAX + 1];
	/* "Established", "Active        Socket: Connection closed", "" ...:
	 * the rest of the row, trailing blanks removed, cut at
	 * BIRD_INFO_MAX bytes (then info_cut is set). */
	char info[BIRD_INFO_MAX + 1];
	bool info_cut;
};

struct bird_protocols {
	size_t n;
	struct bird_proto *rows;	/* n rows in BIRD's order; NULL if n 0 */
};

/* Reply to "show protocols [NAME]" (also "show protocols all": its 1006
 * detail lines are skipped): the 2002 heading "Name Proto Table State
 * Since Info" (any spacing) and one 1002 row each.  Columns are split at
 * runs of blanks; "since" takes two words when they are a date and a
 * time.  "8003 No protocols match" (a pattern that matched nothing) is
 * BIRD_R_OK with no rows.  Fills *out_r (free with
 * bird_protocols_free(); it is empty on error). */
enum bird_rerr bird_parse_protocols(const struct bird_reply *r, struct bird_protocols *out_r,
				    const char **error_r);
void bird_protocols_free(struct bird_protocols *p);
/* The row named name, or NULL. */
const struct bird_proto *bird_protocols_find(const struct bird_protocols *p, const char *name);
const char *bird_proto_state_str(enum bird_proto_state s);

/* -- show route ... count -- */

struct bird_count {
	uint64_t routes;	/* routes that matched ("X of ..."), summed */
	uint64_t scanned;	/* routes looked at ("of Y routes"), summed */
	uint64_t networks;	/* networks looked at, summed */
	unsigned tables;	/* 1007 lines seen */
};

/* Reply to "show route [options] count", e.g. "show route export P
 * count": 1007 "X of Y routes for Z networks in table T" per table, then
 * "0014 Total: X of Y routes for Z networks in N tables" (more than one
 * table) or "0000 ".  With a Total line the sums must match it. */
enum bird_rerr bird_parse_count(const struct bird_reply *r, struct bird_count *out_r,
				const char **error_r);

/* -- enable / disable -- */

enum bird_ctl_result {
	BIRD_CTL_DONE,		/* 0009 disabled / 0011 enabled */
	BIRD_CTL_ALREADY,	/* 0008 already disabled / 0010 already enabled */
	BIRD_CTL_UNKNOWN,	/* no such protocol: 8003 No protocols match, or
				 * (unquoted name) 9001 syntax error ...
				 * CF_SYM_UNDEFINED / Protocol name required */
	BIRD_CTL_ERROR,		/* another class 8/9 answer: see the last line */
};

/* Reply to bird_cmd_ctl(op, name).  The line "NAME: disabled" (or a
 * continuation line, when a pattern matched several) must be there with
 * a code that fits op.  BIRD_R_OK with *res_r set, or an error for a
 * reply that does not fit. */
enum bird_rerr bird_parse_ctl(const struct bird_reply *r, enum bird_ctl_op op, const char *name,
			      enum bird_ctl_result *res_r, const char **error_r);
const char *bird_ctl_result_str(enum bird_ctl_result res);

#endif
