/*
 * imap_parse.h - the IMAP4rev1 command parser (RFC 3501 plus LITERAL+,
 * SASL-IR, CONDSTORE/QRESYNC, ENABLE, ID, IDLE, NAMESPACE, UNSELECT, MOVE,
 * UIDPLUS, SPECIAL-USE, LIST-EXTENDED/LIST-STATUS basics, COMPRESS, QUOTA,
 * ESEARCH RETURN options).  No I/O, libc only.
 *
 * Two layers, like Dovecot's imap-parser (limits passed in, "need more"):
 *
 * 1. The reader (struct imap_reader) is fed the session's input bytes in
 *    chunks of any size (one byte at a time works).  It finds where one
 *    command ends, literals included, and tells the session when to send a
 *    continuation request:
 *
 *	for (;;) {
 *		size_t used;
 *		enum imap_read_status st = imap_reader_feed(r, buf, len, &used);
 *		drain `used` bytes from the input buffer;
 *		switch (st) {
 *		case IMAP_READ_MORE:     wait for more input; break loop
 *		case IMAP_READ_CONTINUE: send "+ OK\r\n"; keep feeding
 *		case IMAP_READ_COMMAND:  imap_reader_parse(r, &cmd, &err) ...
 *		case IMAP_READ_ERROR:    reply with imap_reader_error(r) ...
 *		}
 *	}
 *
 *    It stops right after a complete command (so pipelined commands stay
 *    in the session's input buffer until it wants them), copies what it
 *    keeps into its own buffer, and holds no memory between commands
 *    (idle sessions cost only sizeof(struct imap_reader)).
 *
 *    Literals: a line that ends in "{N}" (synchronizing) or "{N+}"
 *    (non-synchronizing, LITERAL+) outside a quoted string, optionally
 *    "~{N}" / "~{N+}" (literal8, RFC 3516 - accepted only as the APPEND
 *    message), is followed by exactly N bytes of literal data and then the
 *    rest of the command.  For a synchronizing literal whose data has not
 *    started to arrive the reader returns IMAP_READ_CONTINUE right after
 *    the marker's CRLF: the session sends "+ ..." and feeds on.
 *
 *    Limits (struct imap_limits): non-literal bytes of one command, each
 *    literal, the APPEND message literal (separately, e.g. the maximum
 *    message size), the whole command, and parenthesis nesting.  When a
 *    limit is hit the reader still finds the end of the command as the
 *    client sees it and only then returns IMAP_READ_ERROR, so the session
 *    stays in step with the client:
 *      - a synchronizing literal over its limit is refused on the spot
 *        (no "+" is ever sent; RFC 3501 7.5): the error is returned right
 *        after the "{N}" line, the client waits for the tagged reply;
 *      - a non-synchronizing literal over its limit (the client is already
 *        sending it) is read and thrown away, then the rest of the command
 *        too; if it is larger than limits.max_skip the error is fatal
 *        (answer "* BYE" and close);
 *      - an over-long line is thrown away up to its end (the same rules
 *        apply to any literal marker at its end).
 *    The error for an APPEND message literal over max_append_literal is
 *    IMAP_ERR_LITERAL_TOO_BIG with no = true and resp_code "TOOBIG"
 *    (RFC 4469/7889: "tag NO [TOOBIG] ...").
 *
 *    Line ends are CRLF; a bare LF is accepted too.  Empty lines between
 *    commands are ignored.  A raw-line mode (imap_reader_feed_line) serves
 *    the AUTHENTICATE continuation response and IDLE's "DONE".
 *
 * 2. The parser turns one complete command (as the reader collected it, or
 *    any buffer: imap_parse_command) into a struct imap_command with a
 *    command id and typed arguments, or a precise error with the tag and a
 *    reason for the BAD reply ("Missing ')' in FETCH attribute list",
 *    "Unknown command FOO", "Invalid sequence set").  Everything the
 *    command holds lives in one arena, freed by imap_command_free().
 *
 * What the parser checks is syntax and the limits; which command is
 * allowed in which state (not authenticated, selected, ...) is the
 * session's business.  Strings are returned decoded (quotes and escapes
 * removed) and NUL-terminated; none contains NUL (a quoted string cannot
 * hold CR or LF either; a literal can), and the APPEND message is raw
 * bytes with a length.  Mailbox names are decoded from modified UTF-7 to UTF-8
 * (imap_utf7.h; invalid mUTF-7 is IMAP_ERR_BAD_MAILBOX) unless
 * limits.utf8_accept is set (after ENABLE UTF8=ACCEPT: they are UTF-8 as
 * sent), and "INBOX" in any case, also as the first level "inbox/...",
 * becomes "INBOX".
 *
 * Syntax is RFC 3501 with these tolerances: command names, keywords (FLAGS,
 * BODY.PEEK, HEADER.FIELDS, search keys, NIL, ...) are case-insensitive;
 * tags may hold any ASTRING-CHAR except '+' (RFC 3501 tag); 8-bit bytes
 * are tolerated in atoms and quoted strings (UTF-8 from clients that do
 * not quote it), except in tags and keywords; once UTF8=ACCEPT is enabled
 * a quoted string must be valid UTF-8 (RFC 6855 3 uQUOTED-CHAR).
 * Arguments must be separated by exactly one SP; no trailing blanks.
 */
#ifndef IMAPPROXY_IMAP_PARSE_H
#define IMAPPROXY_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_arena.h"
#include "imap_search.h"
#include "imap_seqset.h"

/* Longest tag kept; a longer tag is a syntax error (answered untagged). */
#define IMAP_TAG_MAX 64
/* Room for an error text (a sanitized echo of the client's command name
 * included). */
#define IMAP_ERR_TEXT_MAX 160

/* ---- limits ---------------------------------------------------------- */

struct imap_limits {
	/* Non-literal bytes of one command, all its lines together,
	 * CRLFs included (RFC 7162 asks for at least 8192). */
	size_t max_line;
	/* Each literal other than the APPEND message. */
	uint64_t max_literal;
	/* The APPEND message literal (the message size limit). */
	uint64_t max_append_literal;
	/* All bytes of one command (lines and literals) except the APPEND
	 * message literal. */
	uint64_t max_command;
	/* Non-synchronizing literal bytes the reader will read and discard
	 * to stay in step after refusing a command; above that the error is
	 * fatal. */
	uint64_t max_skip;
	/* Nesting of parenthesized lists, search NOT/OR included. */
	unsigned max_depth;
	/* ENABLE UTF8=ACCEPT is in effect (RFC 6855): mailbox names and
	 * patterns are UTF-8 (no mUTF-7 decoding), quoted strings holding
	 * 8-bit bytes must be valid UTF-8, SEARCH takes no CHARSET (BAD),
	 * and APPEND takes the UTF8 (~{n}) form of the message. */
	bool utf8_accept;
};

/* Defaults: max_line 64 KiB, max_literal 64 KiB, max_append_literal
 * 64 MiB, max_command 1 MiB, max_skip 128 MiB, max_depth 64,
 * utf8_accept false. */
void imap_limits_default(struct imap_limits *lim);

/* ---- errors ---------------------------------------------------------- */

enum imap_err {
	IMAP_OK = 0,
	IMAP_ERR_SYNTAX,		/* BAD: argument syntax */
	IMAP_ERR_UNKNOWN_COMMAND,	/* BAD: "Unknown command FOO" */
	IMAP_ERR_LINE_TOO_LONG,		/* BAD: command text over max_line */
	IMAP_ERR_LITERAL_TOO_BIG,	/* BAD; APPEND message: NO [TOOBIG] */
	IMAP_ERR_COMMAND_TOO_BIG,	/* BAD: over max_command */
	IMAP_ERR_NESTING,		/* BAD: over max_depth */
	IMAP_ERR_BAD_SEQSET,		/* BAD: invalid sequence set */
	IMAP_ERR_BAD_CHARSET,		/* NO [BADCHARSET (US-ASCII UTF-8)] */
	IMAP_ERR_BAD_MAILBOX,		/* NO: mailbox name not valid mUTF-7 /
					 * UTF-8, or holds a control character
					 * (C0, DEL, C1) or U+2028/U+2029 */
	IMAP_ERR_USEATTR,		/* NO [USEATTR]: CREATE USE (\Foo) */
	IMAP_ERR_NOMEM,			/* NO [SERVERBUG]: out of memory */
};

struct imap_error {
	enum imap_err code;
	/* The command's tag, "" if it could not be read (answer "* BAD"). */
	char tag[IMAP_TAG_MAX + 1];
	/* Set when the command name was recognised. */
	bool cmd_known;
	int cmd;			/* enum imap_cmd_id if cmd_known */
	bool uid;			/* "UID" prefix seen */
	/* Human text for the reply, NUL-terminated, printable ASCII. */
	char text[IMAP_ERR_TEXT_MAX];
	/* Response code without brackets, or NULL: "TOOBIG",
	 * "BADCHARSET (US-ASCII UTF-8)", "USEATTR", "SERVERBUG",
	 * "CLIENTBUG". */
	const char *resp_code;
	bool no;	/* answer "tag NO" rather than "tag BAD" */
	bool fatal;	/* the input cannot be resynchronised: "* BYE", close */
};

/* "tag BAD [CODE] text" style helper: the status word ("BAD"/"NO"). */
const char *imap_error_status(const struct imap_error *e);

/* ---- commands -------------------------------------------------------- */

enum imap_cmd_id {
	IMAP_CMD_CAPABILITY,
	IMAP_CMD_NOOP,
	IMAP_CMD_LOGOUT,
	IMAP_CMD_STARTTLS,
	IMAP_CMD_AUTHENTICATE,	/* u.auth */
	IMAP_CMD_LOGIN,		/* u.login */
	IMAP_CMD_SELECT,	/* u.select */
	IMAP_CMD_EXAMINE,	/* u.select */
	IMAP_CMD_CREATE,	/* u.create */
	IMAP_CMD_DELETE,	/* u.mailbox */
	IMAP_CMD_RENAME,	/* u.rename */
	IMAP_CMD_SUBSCRIBE,	/* u.mailbox */
	IMAP_CMD_UNSUBSCRIBE,	/* u.mailbox */
	IMAP_CMD_LIST,		/* u.list */
	IMAP_CMD_LSUB,		/* u.list (one pattern, no options) */
	IMAP_CMD_STATUS,	/* u.status */
	IMAP_CMD_APPEND,	/* u.append */
	IMAP_CMD_CHECK,
	IMAP_CMD_CLOSE,
	IMAP_CMD_UNSELECT,
	IMAP_CMD_EXPUNGE,	/* UID EXPUNGE: u.uid_expunge */
	IMAP_CMD_SEARCH,	/* u.search (also UID SEARCH) */
	IMAP_CMD_FETCH,		/* u.fetch (also UID FETCH) */
	IMAP_CMD_STORE,		/* u.store (also UID STORE) */
	IMAP_CMD_COPY,		/* u.copy (also UID COPY) */
	IMAP_CMD_MOVE,		/* u.copy (also UID MOVE) */
	IMAP_CMD_IDLE,
	IMAP_CMD_NAMESPACE,
	IMAP_CMD_ID,		/* u.id */
	IMAP_CMD_ENABLE,	/* u.enable */
	IMAP_CMD_COMPRESS,	/* u.compress */
	IMAP_CMD_GETQUOTAROOT,	/* u.mailbox */
	IMAP_CMD_GETQUOTA,	/* u.quota_root */
	IMAP_CMD_COUNT
};

/* "FETCH", "UID" is not included; "?" if out of range. */
const char *imap_cmd_name(enum imap_cmd_id id);

/* A decoded string: NUL-terminated, len bytes before the NUL. */
struct imap_str {
	const char *s;
	size_t len;
};

/* System flags; the bit values equal popnode's STORE_F_* (store.h). */
enum {
	IMAP_FLAG_SEEN = 1 << 0,
	IMAP_FLAG_ANSWERED = 1 << 1,
	IMAP_FLAG_FLAGGED = 1 << 2,
	IMAP_FLAG_DELETED = 1 << 3,
	IMAP_FLAG_DRAFT = 1 << 4,
	IMAP_FLAG_RECENT = 1 << 5,	/* never in a parsed flag list */
};

/* A flag list: "\Seen \Answered \Flagged \Deleted \Draft" go to `system`;
 * keywords (US-ASCII atoms) are deduplicated case-insensitively, first
 * spelling kept, order of first appearance kept.  "\Recent" and any other "\Xxx"
 * are syntax errors ("Invalid system flag \Recent"). */
struct imap_flags {
	uint32_t system;		/* IMAP_FLAG_* */
	const struct imap_str *keywords;
	size_t n_keywords;
};

/* AUTHENTICATE mechanism [initial-response] (RFC 3501, SASL-IR 4959). */
struct imap_args_auth {
	struct imap_str mech;		/* upper-cased atom, e.g. "PLAIN" */
	bool has_ir;			/* initial response given */
	struct imap_str ir;		/* as sent; "=" (empty response) is
					 * returned as "" with has_ir true */
};

/* LOGIN userid password (astrings). */
struct imap_args_login {
	struct imap_str user;
	struct imap_str pass;
};

/* SELECT/EXAMINE mailbox [(CONDSTORE) / (QRESYNC (...))] (RFC 7162). */
struct imap_args_select {
	struct imap_str mailbox;
	bool condstore;			/* CONDSTORE parameter (or QRESYNC) */
	bool qresync;
	uint32_t uidvalidity;		/* QRESYNC: nz-number */
	uint64_t modseq;		/* QRESYNC: mod-sequence-value */
	const struct imap_seqset *known_uids;	/* QRESYNC, optional (NULL) */
	/* Optional sequence match data: both or neither, same count. */
	const struct imap_seqset *match_seqs;
	const struct imap_seqset *match_uids;
};

/* DELETE, SUBSCRIBE, UNSUBSCRIBE, GETQUOTAROOT: one mailbox. */
struct imap_args_mailbox {
	struct imap_str mailbox;
};

/* SPECIAL-USE attributes (RFC 6154); the first five equal STORE_SU_*. */
enum {
	IMAP_SU_SENT = 1 << 0,
	IMAP_SU_DRAFTS = 1 << 1,
	IMAP_SU_TRASH = 1 << 2,
	IMAP_SU_JUNK = 1 << 3,
	IMAP_SU_ARCHIVE = 1 << 4,
	IMAP_SU_ALL = 1 << 5,
	IMAP_SU_FLAGGED = 1 << 6,
};

/* CREATE mailbox [(USE (\Sent ...))] (RFC 6154). */
struct imap_args_create {
	struct imap_str mailbox;
	uint32_t special_use;		/* IMAP_SU_*; unknown attr: USEATTR */
};

struct imap_args_rename {
	struct imap_str from;
	struct imap_str to;
};

/* LIST selection options (RFC 5258). */
enum {
	IMAP_LIST_SEL_SUBSCRIBED = 1 << 0,
	IMAP_LIST_SEL_REMOTE = 1 << 1,
	IMAP_LIST_SEL_RECURSIVEMATCH = 1 << 2,
	IMAP_LIST_SEL_SPECIAL_USE = 1 << 3,
};
/* LIST return options (RFC 5258, 6154, 5819). */
enum {
	IMAP_LIST_RET_SUBSCRIBED = 1 << 0,
	IMAP_LIST_RET_CHILDREN = 1 << 1,
	IMAP_LIST_RET_SPECIAL_USE = 1 << 2,
	IMAP_LIST_RET_STATUS = 1 << 3,	/* status_items holds the items */
};

/* STATUS items (RFC 3501, 7162, 8438); also LIST RETURN (STATUS (...)). */
enum {
	IMAP_STATUS_MESSAGES = 1 << 0,
	IMAP_STATUS_RECENT = 1 << 1,
	IMAP_STATUS_UIDNEXT = 1 << 2,
	IMAP_STATUS_UIDVALIDITY = 1 << 3,
	IMAP_STATUS_UNSEEN = 1 << 4,
	IMAP_STATUS_HIGHESTMODSEQ = 1 << 5,
	IMAP_STATUS_SIZE = 1 << 6,
};

/* LIST [(selection-options)] reference (pattern / (patterns...))
 *      [RETURN (return-options)]; LSUB reference pattern.
 * Reference and patterns are decoded like mailbox names (but "INBOX" is
 * not normalised in them); '%' and '*' are kept as wildcards. */
struct imap_args_list {
	bool extended;			/* any RFC 5258 syntax was used */
	uint32_t select_opts;		/* IMAP_LIST_SEL_* */
	uint32_t return_opts;		/* IMAP_LIST_RET_* */
	uint32_t status_items;		/* IMAP_STATUS_* for RET_STATUS */
	struct imap_str ref;
	const struct imap_str *patterns;	/* >= 1 */
	size_t n_patterns;
};

/* STATUS mailbox (items). */
struct imap_args_status {
	struct imap_str mailbox;
	uint32_t items;			/* IMAP_STATUS_*, at least one */
};

/* APPEND mailbox [(flags)] [date-time] literal, or with UTF8=ACCEPT
 * enabled also ... UTF8 (literal8) (RFC 6855 4).  The message bytes belong
 * to the command (no copy of the literal is made). */
struct imap_args_append {
	struct imap_str mailbox;
	struct imap_flags flags;
	bool has_date;
	int64_t date;			/* unix time */
	int32_t date_tz;		/* zone of the date-time, seconds east */
	const char *msg;		/* not NUL-terminated */
	size_t msg_len;
	bool literal8;			/* sent as ~{N}: may hold NUL */
	bool utf8;			/* sent as UTF8 (~{N}) */
};

/* SEARCH RETURN options (RFC 4731 ESEARCH); return_given false means a
 * plain "* SEARCH" reply.  SAVE is refused ($ is not supported). */
enum {
	IMAP_SEARCH_RET_MIN = 1 << 0,
	IMAP_SEARCH_RET_MAX = 1 << 1,
	IMAP_SEARCH_RET_ALL = 1 << 2,
	IMAP_SEARCH_RET_COUNT = 1 << 3,
};

/* [UID] SEARCH [RETURN (...)] [CHARSET c] keys.  Only US-ASCII and UTF-8
 * are accepted (anything else: IMAP_ERR_BAD_CHARSET); with utf8_accept a
 * CHARSET is a syntax error (RFC 6855 3: strings are UTF-8 then). */
struct imap_args_search {
	bool return_given;
	uint32_t return_opts;		/* IMAP_SEARCH_RET_*; RETURN () = ALL */
	bool has_modseq;		/* a MODSEQ key is present (reply gets
					 * "(MODSEQ n)", RFC 7162 3.1.5) */
	struct imap_search_node *tree;
};

/* FETCH simple items. */
enum {
	IMAP_FETCH_FLAGS = 1 << 0,
	IMAP_FETCH_INTERNALDATE = 1 << 1,
	IMAP_FETCH_RFC822_SIZE = 1 << 2,
	IMAP_FETCH_ENVELOPE = 1 << 3,
	IMAP_FETCH_BODY = 1 << 4,		/* non-extensible BODYSTRUCTURE */
	IMAP_FETCH_BODYSTRUCTURE = 1 << 5,
	IMAP_FETCH_UID = 1 << 6,
	IMAP_FETCH_MODSEQ = 1 << 7,
	IMAP_FETCH_RFC822 = 1 << 8,		/* reply "RFC822", sets \Seen */
	IMAP_FETCH_RFC822_HEADER = 1 << 9,	/* reply "RFC822.HEADER" */
	IMAP_FETCH_RFC822_TEXT = 1 << 10,	/* reply "RFC822.TEXT", \Seen */
};

enum imap_section_kind {
	IMAP_SECTION_ALL,		/* BODY[] or BODY[1.2]: whole (part) */
	IMAP_SECTION_HEADER,		/* [HEADER] / [1.2.HEADER] */
	IMAP_SECTION_HEADER_FIELDS,	/* [HEADER.FIELDS (..)] */
	IMAP_SECTION_HEADER_FIELDS_NOT,	/* [HEADER.FIELDS.NOT (..)] */
	IMAP_SECTION_TEXT,		/* [TEXT] / [1.2.TEXT] */
	IMAP_SECTION_MIME,		/* [1.2.MIME], only after a part */
};

/* One BODY[section]<partial> or BODY.PEEK[...] item. */
struct imap_fetch_body {
	bool peek;			/* BODY.PEEK: do not set \Seen */
	const uint32_t *part;		/* part numbers, each >= 1 */
	size_t n_part;
	enum imap_section_kind kind;
	const struct imap_str *fields;	/* HEADER.FIELDS(.NOT): >= 1 names */
	size_t n_fields;
	bool partial;
	uint32_t partial_start;		/* <start.count> */
	uint32_t partial_count;		/* >= 1 */
	/* The canonical section text for the reply, without brackets:
	 * "", "1.2", "HEADER", "1.MIME", "HEADER.FIELDS (From Subject)"
	 * (keyword parts upper-case, field names as sent, quoted if they
	 * are not atoms).  The reply item is "BODY[" section "]" plus
	 * "<start>" if partial. */
	struct imap_str section;
};

/* [UID] FETCH set items [(CHANGEDSINCE n [VANISHED])].
 * ALL/FAST/FULL are expanded.  UID FETCH adds IMAP_FETCH_UID and
 * CHANGEDSINCE adds IMAP_FETCH_MODSEQ (RFC 3501 6.4.8, RFC 7162 3.1.4.1).
 * VANISHED needs UID FETCH and CHANGEDSINCE (else BAD). */
struct imap_args_fetch {
	const struct imap_seqset *set;
	uint32_t items;			/* IMAP_FETCH_* */
	const struct imap_fetch_body *bodies;	/* in request order */
	size_t n_bodies;
	bool has_changedsince;
	uint64_t changedsince;
	bool vanished;
};

enum imap_store_mode {
	IMAP_STORE_SET,			/* FLAGS */
	IMAP_STORE_ADD,			/* +FLAGS */
	IMAP_STORE_REMOVE,		/* -FLAGS */
};

/* [UID] STORE set [(UNCHANGEDSINCE n)] [+-]FLAGS[.SILENT] (flags) or
 * flags without parentheses. */
struct imap_args_store {
	const struct imap_seqset *set;
	bool has_unchangedsince;
	uint64_t unchangedsince;
	enum imap_store_mode mode;
	bool silent;
	struct imap_flags flags;
};

/* [UID] COPY / [UID] MOVE set mailbox. */
struct imap_args_copy {
	const struct imap_seqset *set;
	struct imap_str mailbox;
};

/* ID NIL / ID ("name" "value" ...) (RFC 2971): at most 30 pairs, names
 * up to 30 bytes, values up to 1024 bytes or NIL. */
struct imap_id_pair {
	struct imap_str name;
	bool value_nil;
	struct imap_str value;
};
struct imap_args_id {
	const struct imap_id_pair *pairs;	/* NULL, 0 for ID NIL */
	size_t n_pairs;
};

/* ENABLE cap... (RFC 5161).  Known capabilities are flagged; all names
 * are kept (upper-cased) so the session can ignore unknown ones. */
enum {
	IMAP_ENABLE_CONDSTORE = 1 << 0,
	IMAP_ENABLE_QRESYNC = 1 << 1,
	IMAP_ENABLE_UTF8_ACCEPT = 1 << 2,
};
struct imap_args_enable {
	uint32_t known;			/* IMAP_ENABLE_* */
	const struct imap_str *caps;	/* >= 1 */
	size_t n_caps;
};

/* COMPRESS mechanism (RFC 4978); deflate true for DEFLATE. */
struct imap_args_compress {
	struct imap_str mech;		/* upper-cased */
	bool deflate;
};

struct imap_command {
	char tag[IMAP_TAG_MAX + 1];
	enum imap_cmd_id id;
	bool uid;			/* UID FETCH/STORE/COPY/MOVE/SEARCH/EXPUNGE */
	union {
		struct imap_args_auth auth;
		struct imap_args_login login;
		struct imap_args_select select;
		struct imap_args_mailbox mailbox;
		struct imap_args_create create;
		struct imap_args_rename rename;
		struct imap_args_list list;
		struct imap_args_status status;
		struct imap_args_append append;
		struct imap_args_search search;
		struct imap_args_fetch fetch;
		struct imap_args_store store;
		struct imap_args_copy copy;
		const struct imap_seqset *uid_expunge;	/* UID EXPUNGE set */
		struct imap_args_id id;
		struct imap_args_enable enable;
		struct imap_args_compress compress;
		struct imap_str quota_root;		/* GETQUOTA root */
	} u;
	/* The arena holding everything above (the session may allocate
	 * per-command data from it too); the command owns it. */
	struct imap_arena *arena;
};

/* Free the command, its arena and its raw bytes; sets *cmd to NULL;
 * accepts NULL. */
void imap_command_free(struct imap_command **cmd);

/* Parse one complete command: data[0..len) is the command exactly as sent
 * (line, then for every literal "{N}" CRLF and N bytes, then the rest),
 * ending in CRLF or LF.  The bytes are copied (imap_reader_parse avoids
 * the copy).  Returns IMAP_OK with *cmd_r set, or an error with *err_r
 * filled and *cmd_r NULL.  Errors here are never fatal. */
enum imap_err imap_parse_command(const void *data, size_t len, const struct imap_limits *lim,
				 struct imap_command **cmd_r, struct imap_error *err_r);

/* ---- the reader ------------------------------------------------------ */

struct imap_reader;

enum imap_read_status {
	IMAP_READ_MORE,		/* all given bytes used; feed more */
	IMAP_READ_CONTINUE,	/* send a continuation ("+ OK\r\n"), feed on */
	IMAP_READ_COMMAND,	/* a command is complete: imap_reader_parse */
	IMAP_READ_LINE,		/* imap_reader_feed_line: a line is complete */
	IMAP_READ_ERROR,	/* imap_reader_error(); reader reset unless fatal */
};

/* New reader with a copy of *lim.  NULL if out of memory. */
struct imap_reader *imap_reader_new(const struct imap_limits *lim);
/* Sets *r to NULL; accepts NULL. */
void imap_reader_destroy(struct imap_reader **r);

/* Replace the limits (e.g. larger literals after login, utf8_accept after
 * ENABLE UTF8=ACCEPT).  Takes effect from the next command. */
void imap_reader_set_limits(struct imap_reader *r, const struct imap_limits *lim);

/* Feed len bytes; *used_r is set to how many were consumed (the rest
 * belongs to later calls; after COMMAND, ERROR and CONTINUE there may be
 * unconsumed bytes).  Returns MORE, CONTINUE, COMMAND or ERROR.  After
 * COMMAND call imap_reader_parse before feeding again; after a fatal
 * ERROR stop feeding.  len 0 is allowed. */
enum imap_read_status imap_reader_feed(struct imap_reader *r, const void *data, size_t len,
				       size_t *used_r);

/* After IMAP_READ_COMMAND: parse the collected command.  The command takes
 * the reader's buffer (the APPEND message is not copied) and the reader is
 * reset for the next command.  Same results as imap_parse_command. */
enum imap_err imap_reader_parse(struct imap_reader *r, struct imap_command **cmd_r,
				struct imap_error *err_r);

/* After IMAP_READ_ERROR: the error (valid until the next feed). */
const struct imap_error *imap_reader_error(const struct imap_reader *r);

/* Raw-line mode, for the AUTHENTICATE response and IDLE's DONE: collects
 * one line (no literal processing) up to max_line bytes.  Returns MORE, or
 * LINE with *line_r and *line_len_r set to the line without its CRLF/LF (valid
 * until the next call on the reader), or ERROR (line too long: thrown
 * away up to its LF, the error is not fatal).  Do not mix with
 * imap_reader_feed in the middle of a command. */
enum imap_read_status imap_reader_feed_line(struct imap_reader *r, const void *data,
					    size_t len, size_t *used_r,
					    const char **line_r, size_t *line_len_r);

/* Bytes the reader currently holds (0 between commands). */
size_t imap_reader_buffered(const struct imap_reader *r);

/* true if line[0..len) is "DONE" (case-insensitive), with or without a
 * trailing CRLF/LF: the end of IDLE (RFC 2177). */
bool imap_is_done_line(const char *line, size_t len);

/* ---- helpers the session shares with the parser ----------------------- */

/* Parse an IMAP date-time "dd-Mon-yyyy hh:mm:ss +zzzz" (day may be
 * " d"; no quotes) into unix time and the zone in seconds east.  0/-1. */
int imap_parse_date_time(const char *p, size_t len, int64_t *t_r, int32_t *tz_r);

/* Parse an IMAP date "d-Mon-yyyy" / "dd-Mon-yyyy" (no quotes) into days
 * since 1970-01-01.  0/-1. */
int imap_parse_date(const char *p, size_t len, int32_t *day_r);

/* Normalise a decoded (UTF-8) mailbox name in place: "INBOX" and
 * "INBOX/..." in any case become "INBOX...". */
void imap_mailbox_normalize(char *name, size_t len);

#endif
