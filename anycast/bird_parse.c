/*
 * bird_parse.c - the reader of BIRD control-socket replies, without I/O.
 *
 * The reader is a byte-resumable state machine over lines:
 *
 *   START --digit--> CODE (4 digits) --'-' or ' '--> TEXT --LF--> START
 *     |  \--' '--> TEXT (continuation: the previous line's code)
 *      \--'+'--> ASYNC --LF--> START   (skipped, counted)
 *
 * Inside TEXT it copies whole runs up to the next LF found with memchr().
 * The texts of a reply go into one growing buffer, each NUL-terminated,
 * and the line records keep offsets into it; the public pointers are set
 * once the reply is complete, so a realloc() never leaves one dangling.
 *
 * Limits: a reply that breaks max_line, max_lines or max_bytes (or whose
 * storage cannot grow) drops what it stored and keeps only counting until
 * its last line, so the caller gets one reply per command even then and
 * the connection stays usable.  What cannot be resynchronised (a line
 * that does not start with a code, a space or '+'; a NUL byte) is fatal.
 *
 * Commands are built in bird_parse_cmd.c, replies parsed in
 * bird_parse_reply.c.
 */
#include <stdlib.h>
#include <string.h>

#include "bird_parse.h"
#include "bird_parse_int.h"

enum line_state {
	LS_START,	/* at the first byte of a line */
	LS_CODE,	/* inside the 4 digits, or at the separator */
	LS_TEXT,	/* inside a line's text */
	LS_ASYNC,	/* inside a "+" line */
};

struct bird_parser {
	struct bird_limits lim;

	/* line state */
	enum line_state ls;
	unsigned code;
	unsigned ndigits;
	bool cont;
	bool final;
	size_t line_len;	/* text bytes of this line seen (kept or not) */
	size_t line_off;	/* where its text starts in buf */

	/* reply state */
	bool started;		/* a non-async line or part of one was read */
	bool have_prev;		/* a line before: a continuation is allowed */
	unsigned prev_code;
	enum bird_perr reply_err;
	size_t lines_seen;	/* counted even once dropped */
	size_t n_async;
	char *buf;
	size_t buf_len, buf_cap;
	struct bird_line *lines;
	size_t *offs;
	size_t n_lines, lines_cap;

	bool handed;		/* out was handed out: clear before going on */
	struct bird_reply out;

	enum bird_perr fatal;
};

/* Storage kept between replies; more is freed once a reply is done. */
#define KEEP_BUF 16384
#define KEEP_LINES 256

/* ---- the reader --------------------------------------------------------- */

static void set_limits(struct bird_limits *dst, const struct bird_limits *src)
{
	dst->max_line = src != NULL && src->max_line != 0 ? src->max_line : BIRD_DEFAULT_MAX_LINE;
	dst->max_lines = src != NULL && src->max_lines != 0 ? src->max_lines
							    : BIRD_DEFAULT_MAX_LINES;
	dst->max_bytes = src != NULL && src->max_bytes != 0 ? src->max_bytes
							    : BIRD_DEFAULT_MAX_BYTES;
}

struct bird_parser *bird_parser_new(const struct bird_limits *limits)
{
	struct bird_parser *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	set_limits(&p->lim, limits);
	return p;
}

static void free_storage(struct bird_parser *p)
{
	free(p->buf);
	free(p->lines);
	free(p->offs);
	p->buf = NULL;
	p->lines = NULL;
	p->offs = NULL;
	p->buf_cap = 0;
	p->lines_cap = 0;
}

void bird_parser_free(struct bird_parser **pp)
{
	if (pp == NULL || *pp == NULL)
		return;
	free_storage(*pp);
	free(*pp);
	*pp = NULL;
}

/* Start a new reply: keep small buffers, free big ones. */
static void reply_clear(struct bird_parser *p)
{
	if (p->buf_cap > KEEP_BUF || p->lines_cap > KEEP_LINES)
		free_storage(p);
	p->buf_len = 0;
	p->n_lines = 0;
	p->lines_seen = 0;
	p->n_async = 0;
	p->reply_err = BIRD_PERR_OK;
	p->started = false;
	p->have_prev = false;
	p->handed = false;
	memset(&p->out, 0, sizeof(p->out));
}

void bird_parser_reset(struct bird_parser *p)
{
	reply_clear(p);
	p->ls = LS_START;
	p->fatal = BIRD_PERR_OK;
}

/* The reply broke a limit: forget what it stored, keep counting. */
static void drop(struct bird_parser *p, enum bird_perr err)
{
	if (p->reply_err == BIRD_PERR_OK)
		p->reply_err = err;
	p->buf_len = 0;
	p->n_lines = 0;
}

static bool grow_buf(struct bird_parser *p, size_t need)
{
	size_t cap = p->buf_cap ? p->buf_cap : 256;
	char *nb;

	if (need <= p->buf_cap)
		return true;
	while (cap < need) {
		if (cap > SIZE_MAX / 2)
			return false;
		cap *= 2;
	}
	nb = realloc(p->buf, cap);
	if (nb == NULL)
		return false;
	p->buf = nb;
	p->buf_cap = cap;
	return true;
}

static bool grow_lines(struct bird_parser *p)
{
	size_t cap;
	struct bird_line *nl;
	size_t *no;

	if (p->n_lines < p->lines_cap)
		return true;
	cap = p->lines_cap ? p->lines_cap * 2 : 16;
	if (cap > SIZE_MAX / sizeof(*nl))
		return false;
	nl = realloc(p->lines, cap * sizeof(*nl));
	if (nl == NULL)
		return false;
	p->lines = nl;
	no = realloc(p->offs, cap * sizeof(*no));
	if (no == NULL)
		return false;
	p->offs = no;
	p->lines_cap = cap;
	return true;
}

static void line_begin(struct bird_parser *p)
{
	p->started = true;
	p->line_len = 0;
	p->lines_seen++;
	p->ls = LS_TEXT;
	if (p->reply_err != BIRD_PERR_OK)
		return;
	if (p->lines_seen > p->lim.max_lines) {
		drop(p, BIRD_PERR_TOO_MANY_LINES);
		return;
	}
	if (!grow_lines(p)) {
		drop(p, BIRD_PERR_NOMEM);
		return;
	}
	p->line_off = p->buf_len;
}

static void line_append(struct bird_parser *p, const char *s, size_t n)
{
	size_t room_line, room_bytes;

	if (p->reply_err != BIRD_PERR_OK || n == 0) {
		p->line_len = n > SIZE_MAX - p->line_len ? SIZE_MAX : p->line_len + n;
		return;
	}
	/* While nothing is dropped, the line and the reply are within their
	 * limits.  The limit this chunk crosses first, byte by byte, is the
	 * one reported, so the error does not depend on the chunking (the
	 * line's, on a tie). */
	room_line = p->lim.max_line - p->line_len;
	/* text bytes stored so far, without the NULs of finished lines */
	room_bytes = p->lim.max_bytes - (p->buf_len - p->n_lines);
	p->line_len = n > SIZE_MAX - p->line_len ? SIZE_MAX : p->line_len + n;
	if (n > room_line || n > room_bytes) {
		drop(p, room_line <= room_bytes ? BIRD_PERR_LINE_TOO_LONG : BIRD_PERR_TOO_MANY_BYTES);
		return;
	}
	if (!grow_buf(p, p->buf_len + n + 1)) {
		drop(p, BIRD_PERR_NOMEM);
		return;
	}
	memcpy(p->buf + p->buf_len, s, n);
	p->buf_len += n;
}

/* The LF of a line was read.  True if it ended the reply. */
static bool line_end(struct bird_parser *p)
{
	p->ls = LS_START;
	p->prev_code = p->code;
	p->have_prev = true;
	if (p->reply_err == BIRD_PERR_OK) {
		struct bird_line *l;
		size_t len = p->buf_len - p->line_off;

		if (len > 0 && p->buf[p->buf_len - 1] == '\r') {
			p->buf_len--;
			len--;
		}
		if (!grow_buf(p, p->buf_len + 1)) {
			drop(p, BIRD_PERR_NOMEM);
		} else {
			p->buf[p->buf_len++] = '\0';
			l = &p->lines[p->n_lines];
			l->code = p->code;
			l->cont = p->cont;
			l->text = NULL;
			l->len = len;
			p->offs[p->n_lines] = p->line_off;
			p->n_lines++;
		}
	}
	if (!p->final)
		return false;

	/* the reply is complete */
	if (p->reply_err != BIRD_PERR_OK) {
		p->n_lines = 0;
		p->buf_len = 0;
	}
	for (size_t i = 0; i < p->n_lines; i++)
		p->lines[i].text = p->buf + p->offs[i];
	p->out.err = p->reply_err;
	p->out.code = p->code;
	p->out.cls = p->code / 1000;
	p->out.n_lines = p->n_lines;
	p->out.lines = p->n_lines > 0 ? p->lines : NULL;
	p->out.n_async = p->n_async;
	p->handed = true;
	return true;
}

static enum bird_feed_status stream_fatal(struct bird_parser *p, enum bird_perr err, size_t used,
				  size_t *used_r)
{
	p->fatal = err;
	*used_r = used;
	return BIRD_FEED_FATAL;
}

bool bird_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

enum bird_feed_status bird_parser_feed(struct bird_parser *p, const void *data, size_t len,
				       size_t *used_r, const struct bird_reply **reply_r)
{
	const char *buf = data;
	size_t i = 0;

	*reply_r = NULL;
	if (p->fatal != BIRD_PERR_OK) {
		*used_r = 0;
		return BIRD_FEED_FATAL;
	}
	if (p->handed)
		reply_clear(p);

	while (i < len) {
		unsigned char ch = (unsigned char)buf[i];
		const char *nl;
		size_t n;

		switch (p->ls) {
		case LS_START:
			if (ch == '+') {
				p->ls = LS_ASYNC;
			} else if (ch == ' ') {
				if (!p->have_prev)
					return stream_fatal(p, BIRD_PERR_ORPHAN_CONTINUATION, i, used_r);
				p->code = p->prev_code;
				p->cont = true;
				p->final = false;
				line_begin(p);
			} else if (ch == '\n') {
				return stream_fatal(p, BIRD_PERR_EMPTY_LINE, i, used_r);
			} else if (bird_is_digit(ch)) {
				p->started = true;
				p->code = ch - '0';
				p->ndigits = 1;
				p->ls = LS_CODE;
			} else if (ch == '\0') {
				return stream_fatal(p, BIRD_PERR_NUL, i, used_r);
			} else {
				return stream_fatal(p, BIRD_PERR_BAD_CODE, i, used_r);
			}
			i++;
			break;

		case LS_CODE:
			if (p->ndigits < 4) {
				if (!bird_is_digit(ch))
					return stream_fatal(p,
							    ch == '\0' ? BIRD_PERR_NUL
									: BIRD_PERR_BAD_CODE,
							    i, used_r);
				p->code = p->code * 10 + (ch - '0');
				p->ndigits++;
			} else if (ch == '-' || ch == ' ') {
				p->final = ch == ' ';
				p->cont = false;
				line_begin(p);
			} else {
				return stream_fatal(p,
						    ch == '\0' ? BIRD_PERR_NUL
								: BIRD_PERR_BAD_SEPARATOR,
						    i, used_r);
			}
			i++;
			break;

		case LS_TEXT: {
			const char *nul;

			nl = memchr(buf + i, '\n', len - i);
			n = nl != NULL ? (size_t)(nl - (buf + i)) : len - i;
			nul = memchr(buf + i, '\0', n);
			if (nul != NULL)
				return stream_fatal(p, BIRD_PERR_NUL, (size_t)(nul - buf), used_r);
			line_append(p, buf + i, n);
			i += n;
			if (nl != NULL) {
				i++;
				if (line_end(p)) {
					*used_r = i;
					*reply_r = &p->out;
					return BIRD_FEED_REPLY;
				}
			}
			break;
		}

		case LS_ASYNC:
			nl = memchr(buf + i, '\n', len - i);
			if (nl == NULL) {
				i = len;
			} else {
				i = (size_t)(nl - buf) + 1;
				p->n_async++;
				p->ls = LS_START;
			}
			break;
		}
	}
	*used_r = len;
	return BIRD_FEED_MORE;
}

enum bird_perr bird_parser_error(const struct bird_parser *p, const char **detail_r)
{
	if (detail_r != NULL)
		*detail_r = bird_perr_str(p->fatal);
	return p->fatal;
}

bool bird_parser_mid_reply(const struct bird_parser *p)
{
	return !p->handed && p->started;
}

const char *bird_perr_str(enum bird_perr err)
{
	switch (err) {
	case BIRD_PERR_OK:
		return "ok";
	case BIRD_PERR_LINE_TOO_LONG:
		return "reply line too long";
	case BIRD_PERR_TOO_MANY_LINES:
		return "too many lines in reply";
	case BIRD_PERR_TOO_MANY_BYTES:
		return "reply too big";
	case BIRD_PERR_NOMEM:
		return "out of memory for reply";
	case BIRD_PERR_EMPTY_LINE:
		return "empty line";
	case BIRD_PERR_BAD_CODE:
		return "line does not start with a 4-digit code";
	case BIRD_PERR_BAD_SEPARATOR:
		return "code not followed by '-' or ' '";
	case BIRD_PERR_ORPHAN_CONTINUATION:
		return "continuation line without a line before it";
	case BIRD_PERR_NUL:
		return "NUL byte in reply";
	}
	return "unknown error";
}
