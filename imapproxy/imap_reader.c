/*
 * imap_reader.c - finds where one IMAP command ends, literals included,
 * in the byte stream a session feeds it (see imap_parse.h, "The reader").
 *
 * State machine, resumable after any byte:
 *   LINE     scanning command text up to LF.  Quote state is tracked so a
 *            "{N}" inside a quoted string is not a literal; a small
 *            sub-machine recognises "{" digits "+"? "}" CR? right before
 *            the LF (a literal8's "~" needs nothing more here).
 *   LITERAL  copying (or, when the command is being thrown away, skipping)
 *            lit_left bytes of literal data; then back to LINE.
 * The collected bytes (text and literals, as sent) go into one buffer that
 * the parsed command takes over, so the reader holds no memory between
 * commands.  A command over a limit is "discarded": its bytes are no longer
 * stored but still scanned, so the reader knows where the client thinks
 * it ends (the final LF, or a synchronizing literal marker the client now
 * waits on) and reports the error exactly there.
 */
#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"
#include "imap_parse_private.h"

enum rstate { RS_LINE, RS_LITERAL, RS_DEAD };

/* literal marker sub-machine */
enum lstate { LM_NONE, LM_OPEN, LM_DIGITS, LM_PLUS, LM_CLOSE, LM_CLOSE_CR };

#define BUF_FIRST 256

struct imap_reader {
	struct imap_limits lim;
	struct imap_limits next_lim;
	bool has_next_lim;

	char *buf;
	size_t len, cap;

	enum rstate state;
	bool in_cmd;		/* at least one byte of a command seen */
	bool in_quote, escape;
	enum lstate lm;
	uint64_t lm_n;
	bool lm_plus;

	uint64_t text_bytes;	/* non-literal bytes of the command */
	uint64_t total;		/* all bytes except the APPEND message */
	uint64_t lit_left;
	uint64_t skipped;	/* literal bytes thrown away */
	int append;		/* -1 unknown, 0 no, 1 yes */
	bool big_used;		/* APPEND message literal seen */

	bool discard;		/* error pending, command thrown away */
	bool complete;		/* COMMAND returned, not parsed yet */
	bool line_ready;	/* feed_line returned a line still in buf */
	struct imap_error err;
};

void imap_limits_default(struct imap_limits *lim)
{
	memset(lim, 0, sizeof(*lim));
	lim->max_line = 64 * 1024;
	lim->max_literal = 64 * 1024;
	lim->max_append_literal = 64ull * 1024 * 1024;
	lim->max_command = 1024 * 1024;
	lim->max_skip = 128ull * 1024 * 1024;
	lim->max_depth = 64;
	lim->utf8_accept = false;
}

struct imap_reader *imap_reader_new(const struct imap_limits *lim)
{
	struct imap_reader *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->lim = *lim;
	r->append = -1;
	return r;
}

void imap_reader_destroy(struct imap_reader **rp)
{
	if (rp == NULL || *rp == NULL)
		return;
	free((*rp)->buf);
	free(*rp);
	*rp = NULL;
}

void imap_reader_set_limits(struct imap_reader *r, const struct imap_limits *lim)
{
	if (!r->in_cmd && r->len == 0) {
		r->lim = *lim;
		r->has_next_lim = false;
	} else {
		r->next_lim = *lim;
		r->has_next_lim = true;
	}
}

const struct imap_error *imap_reader_error(const struct imap_reader *r)
{
	return &r->err;
}

size_t imap_reader_buffered(const struct imap_reader *r)
{
	return r->len;
}

/* Forget the current command (the buffer is freed or was taken). */
static void reset_cmd(struct imap_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->len = r->cap = 0;
	r->state = RS_LINE;
	r->in_cmd = false;
	r->in_quote = r->escape = false;
	r->lm = LM_NONE;
	r->text_bytes = r->total = r->lit_left = r->skipped = 0;
	r->append = -1;
	r->big_used = false;
	r->discard = false;
	r->complete = false;
	r->line_ready = false;
	if (r->has_next_lim) {
		r->lim = r->next_lim;
		r->has_next_lim = false;
	}
}

static int reserve(struct imap_reader *r, size_t extra)
{
	if (extra > SIZE_MAX - r->len)
		return -1;
	size_t need = r->len + extra;
	if (need <= r->cap)
		return 0;
	size_t ncap = r->cap ? r->cap : BUF_FIRST;
	/* double while small; past 1 MiB (an APPEND message) grow by what
	 * is needed plus a little, never to twice the message */
	while (ncap < need)
		ncap = ncap < ((size_t)1 << 20) ? ncap * 2 : need + 4096;
	char *nb = realloc(r->buf, ncap);
	if (nb == NULL)
		return -1;
	r->buf = nb;
	r->cap = ncap;
	return 0;
}

/* Start an error for the current command: tag and command from the bytes
 * kept so far. */
static void set_error(struct imap_reader *r, enum imap_err code, const char *text)
{
	enum imap_cmd_id id;
	bool uid = false;

	imap_error_set(&r->err, code, text);
	imap_scan_tag(r->buf, r->len, r->err.tag);
	if (imap_scan_command(r->buf, r->len, &id, &uid)) {
		r->err.cmd_known = true;
		r->err.cmd = (int)id;
	}
	r->err.uid = uid;
}

static void set_fatal(struct imap_reader *r, enum imap_err code, const char *text)
{
	if (!r->discard)
		set_error(r, code, text);
	r->err.fatal = true;
	r->state = RS_DEAD;
}

/* Throw the rest of the command away; the error shows when it ends. */
static void start_discard(struct imap_reader *r, enum imap_err code, const char *text)
{
	if (r->discard)
		return;
	set_error(r, code, text);
	r->discard = true;
}

/* A literal marker ended a line.  Returns the status to report, or
 * IMAP_READ_MORE to go on scanning. */
static enum imap_read_status literal_marker(struct imap_reader *r, bool input_left)
{
	uint64_t n = r->lm_n;
	bool sync = !r->lm_plus;
	bool message = false;
	uint64_t limit = r->lim.max_literal;

	if (r->append < 0 && r->buf != NULL) {
		enum imap_cmd_id id;
		bool uid;
		r->append = imap_scan_command(r->buf, r->len, &id, &uid) && id == IMAP_CMD_APPEND &&
			    !uid;
	}
	if (r->append == 1 && !r->big_used && n > r->lim.max_literal) {
		message = true;
		limit = r->lim.max_append_literal;
	}
	if (!r->discard) {
		if (n > limit) {
			start_discard(r, IMAP_ERR_LITERAL_TOO_BIG,
				      message ? "Message too big" : "Literal too big");
			if (message) {
				r->err.no = true;
				r->err.resp_code = "TOOBIG";
			}
		} else if (!message && r->total + n > r->lim.max_command) {
			start_discard(r, IMAP_ERR_COMMAND_TOO_BIG, "Command too big");
		}
	}
	if (r->discard) {
		if (sync)
			return IMAP_READ_ERROR;	/* refused: the client waits */
		if (n > r->lim.max_skip || r->skipped > r->lim.max_skip - n) {
			set_fatal(r, IMAP_ERR_LITERAL_TOO_BIG, "Literal too big");
			return IMAP_READ_ERROR;
		}
		r->skipped += n;
		r->lit_left = n;
		r->state = RS_LITERAL;
		return IMAP_READ_MORE;
	}
	if (reserve(r, (size_t)n + 64) < 0) {
		set_fatal(r, IMAP_ERR_NOMEM, "Out of memory");
		r->err.no = true;
		r->err.resp_code = "SERVERBUG";
		return IMAP_READ_ERROR;
	}
	if (message)
		r->big_used = true;
	else
		r->total += n;
	r->lit_left = n;
	r->state = RS_LITERAL;
	if (sync && !input_left)
		return IMAP_READ_CONTINUE;
	return IMAP_READ_MORE;
}

/* One byte of command text (not LF), outside literal data. */
static void scan_text_byte(struct imap_reader *r, unsigned char ch)
{
	if (r->in_quote) {
		if (r->escape)
			r->escape = false;
		else if (ch == '\\')
			r->escape = true;
		else if (ch == '"')
			r->in_quote = false;
		r->lm = LM_NONE;
		return;
	}
	switch (ch) {
	case '{':
		r->lm = LM_OPEN;
		r->lm_n = 0;
		r->lm_plus = false;
		break;
	case '+':
		r->lm = r->lm == LM_DIGITS ? LM_PLUS : LM_NONE;
		r->lm_plus = r->lm == LM_PLUS;
		break;
	case '}':
		r->lm = (r->lm == LM_DIGITS || r->lm == LM_PLUS) ? LM_CLOSE : LM_NONE;
		break;
	case '\r':
		r->lm = r->lm == LM_CLOSE ? LM_CLOSE_CR : LM_NONE;
		break;
	default:
		if (ch >= '0' && ch <= '9' && (r->lm == LM_OPEN || r->lm == LM_DIGITS)) {
			r->lm = LM_DIGITS;
			if (r->lm_n > (UINT64_MAX - 9) / 10)
				r->lm_n = UINT64_MAX;	/* saturate: over any limit */
			else
				r->lm_n = r->lm_n * 10 + (ch - '0');
		} else {
			r->lm = LM_NONE;
		}
		if (ch == '"')
			r->in_quote = true;
		break;
	}
}

/* Account for n text bytes at p, stored unless discarding.  When a limit
 * is crossed the part that still fits is kept (so the error can name the
 * tag) and the rest of the command is thrown away. */
static int keep_text(struct imap_reader *r, const char *p, size_t n)
{
	uint64_t room = n;

	if (!r->discard) {
		if (r->text_bytes + n > r->lim.max_line)
			room = r->text_bytes < r->lim.max_line ? r->lim.max_line - r->text_bytes : 0;
		if (r->total + room > r->lim.max_command)
			room = r->total < r->lim.max_command ? r->lim.max_command - r->total : 0;
		if (reserve(r, (size_t)room) < 0) {
			set_fatal(r, IMAP_ERR_NOMEM, "Out of memory");
			r->err.no = true;
			r->err.resp_code = "SERVERBUG";
			return -1;
		}
		if (room > 0) {
			memcpy(r->buf + r->len, p, (size_t)room);
			r->len += (size_t)room;
		}
	}
	r->text_bytes += n;
	r->total += n;
	if (!r->discard && r->text_bytes > r->lim.max_line)
		start_discard(r, IMAP_ERR_LINE_TOO_LONG, "Command line too long");
	if (!r->discard && r->total > r->lim.max_command)
		start_discard(r, IMAP_ERR_COMMAND_TOO_BIG, "Command too big");
	return 0;
}

enum imap_read_status imap_reader_feed(struct imap_reader *r, const void *data, size_t len,
				       size_t *used_r)
{
	const char *p = data;
	size_t i = 0;

	*used_r = 0;
	if (r->state == RS_DEAD)
		return IMAP_READ_ERROR;
	if (r->complete)
		return IMAP_READ_COMMAND;	/* imap_reader_parse first */
	if (r->line_ready)
		reset_cmd(r);
	while (i < len) {
		if (r->state == RS_LITERAL) {
			size_t n = len - i;
			if (n > r->lit_left)
				n = (size_t)r->lit_left;
			if (!r->discard && n > 0) {
				memcpy(r->buf + r->len, p + i, n);
				r->len += n;
			}
			i += n;
			r->lit_left -= n;
			if (r->lit_left == 0) {
				r->state = RS_LINE;
				r->in_quote = r->escape = false;
				r->lm = LM_NONE;
			}
			continue;
		}
		/* RS_LINE */
		if (!r->in_cmd) {
			/* empty lines between commands are ignored */
			if (p[i] == '\r' || p[i] == '\n') {
				i++;
				continue;
			}
			r->in_cmd = true;
		}
		const char *nl = memchr(p + i, '\n', len - i);
		size_t end = nl != NULL ? (size_t)(nl - p) : len;
		for (size_t k = i; k < end; k++)
			scan_text_byte(r, (unsigned char)p[k]);
		size_t take = end - i + (nl != NULL ? 1 : 0);
		if (keep_text(r, p + i, take) < 0) {
			*used_r = i + take;
			return IMAP_READ_ERROR;
		}
		i += take;
		if (nl == NULL)
			break;
		/* end of a line */
		bool marker = !r->in_quote && (r->lm == LM_CLOSE || r->lm == LM_CLOSE_CR);
		if (marker) {
			r->lm = LM_NONE;
			enum imap_read_status st = literal_marker(r, i < len);
			if (st == IMAP_READ_ERROR) {
				*used_r = i;
				if (r->state != RS_DEAD)
					reset_cmd(r);
				return st;
			}
			if (st == IMAP_READ_CONTINUE) {
				*used_r = i;
				if (r->lit_left == 0) {
					r->state = RS_LINE;
					r->in_quote = r->escape = false;
				}
				return st;
			}
			continue;
		}
		*used_r = i;
		if (r->discard) {
			reset_cmd(r);
			return IMAP_READ_ERROR;
		}
		r->complete = true;
		return IMAP_READ_COMMAND;
	}
	*used_r = i;
	return IMAP_READ_MORE;
}

enum imap_err imap_reader_parse(struct imap_reader *r, struct imap_command **cmd_r,
				struct imap_error *err_r)
{
	char *buf = r->buf;
	size_t len = r->len;
	struct imap_limits lim = r->lim;

	r->buf = NULL;
	r->len = r->cap = 0;
	reset_cmd(r);
	if (buf == NULL) {
		*cmd_r = NULL;
		imap_error_set(err_r, IMAP_ERR_SYNTAX, "No command");
		return IMAP_ERR_SYNTAX;
	}
	return imap_parse_owned(buf, len, &lim, cmd_r, err_r);
}

enum imap_read_status imap_reader_feed_line(struct imap_reader *r, const void *data,
					    size_t len, size_t *used_r,
					    const char **line_r, size_t *line_len_r)
{
	const char *p = data;

	*used_r = 0;
	if (r->state == RS_DEAD)
		return IMAP_READ_ERROR;
	if (r->line_ready)
		reset_cmd(r);
	if (len == 0)
		return IMAP_READ_MORE;
	const char *nl = memchr(p, '\n', len);
	size_t take = nl != NULL ? (size_t)(nl - p) + 1 : len;
	*used_r = take;
	r->in_cmd = true;
	r->text_bytes += take;
	if (!r->discard && r->text_bytes > r->lim.max_line) {
		imap_error_set(&r->err, IMAP_ERR_LINE_TOO_LONG, "Line too long");
		r->discard = true;
	}
	if (!r->discard) {
		if (reserve(r, take) < 0) {
			set_fatal(r, IMAP_ERR_NOMEM, "Out of memory");
			return IMAP_READ_ERROR;
		}
		memcpy(r->buf + r->len, p, take);
		r->len += take;
	}
	if (nl == NULL)
		return IMAP_READ_MORE;
	if (r->discard) {
		reset_cmd(r);
		return IMAP_READ_ERROR;
	}
	size_t l = r->len - 1;
	if (l > 0 && r->buf[l - 1] == '\r')
		l--;
	*line_r = r->buf;
	*line_len_r = l;
	r->line_ready = true;
	return IMAP_READ_LINE;
}

bool imap_is_done_line(const char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	return len == 4 && (line[0] | 0x20) == 'd' && (line[1] | 0x20) == 'o' &&
	       (line[2] | 0x20) == 'n' && (line[3] | 0x20) == 'e';
}
