/*
 * bird_parse.c - BIRD control-socket replies, without I/O.
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
 * The reply parsers work on finished replies and copy what they keep into
 * fixed-size fields, with a precise error when a field does not fit.
 */
#include <stdlib.h>
#include <string.h>

#include "bird_parse.h"

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

static bool is_digit(unsigned char c)
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
			} else if (is_digit(ch)) {
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
				if (!is_digit(ch))
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

/* ---- commands ------------------------------------------------------------ */

bool bird_cmd_valid(const char *cmd)
{
	size_t n = 0;

	if (cmd == NULL)
		return false;
	for (; cmd[n] != '\0'; n++) {
		unsigned char c = (unsigned char)cmd[n];

		if (n >= BIRD_CMD_MAX)
			return false;
		if ((c < 0x20 && c != '\t') || c >= 0x7f)
			return false;
	}
	return n > 0;
}

static bool is_name_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool bird_name_valid(const char *name)
{
	size_t n;

	if (name == NULL || !is_name_start((unsigned char)name[0]))
		return false;
	for (n = 1; name[n] != '\0'; n++)
		if (!is_name_start((unsigned char)name[n]) && !is_digit((unsigned char)name[n]))
			return false;
	return n <= BIRD_NAME_MAX;
}

int bird_cmd_ctl(char *buf, size_t size, enum bird_ctl_op op, const char *name)
{
	const char *verb = op == BIRD_CTL_ENABLE ? "enable" : "disable";
	size_t vl = strlen(verb), nl;

	if (!bird_name_valid(name))
		return -1;
	nl = strlen(name);
	/* verb SP " name " NUL */
	if (size < vl + nl + 4)
		return -1;
	memcpy(buf, verb, vl);
	buf[vl] = ' ';
	buf[vl + 1] = '"';
	memcpy(buf + vl + 2, name, nl);
	buf[vl + 2 + nl] = '"';
	buf[vl + 3 + nl] = '\0';
	return 0;
}

/* ---- helpers for the reply parsers ------------------------------------- */

const char *bird_rerr_str(enum bird_rerr err)
{
	switch (err) {
	case BIRD_R_OK:
		return "ok";
	case BIRD_R_LIMIT:
		return "reply over a reader limit";
	case BIRD_R_BIRD_ERROR:
		return "BIRD answered with an error";
	case BIRD_R_UNEXPECTED:
		return "unexpected final reply code";
	case BIRD_R_MISSING:
		return "missing line or field";
	case BIRD_R_BAD_FIELD:
		return "field does not parse";
	case BIRD_R_TOO_LONG:
		return "field too long";
	case BIRD_R_NOMEM:
		return "out of memory";
	}
	return "unknown error";
}

const char *bird_reply_last_text(const struct bird_reply *r)
{
	if (r == NULL || r->n_lines == 0)
		return "";
	return r->lines[r->n_lines - 1].text;
}

static enum bird_rerr rerr(enum bird_rerr err, const char *detail, const char **error_r)
{
	if (error_r != NULL)
		*error_r = detail;
	return err;
}

/* Checks every parser starts with: a reply that broke a limit, or BIRD's
 * own error.  BIRD_R_OK if the reply may be parsed. */
static enum bird_rerr common_checks(const struct bird_reply *r, const char **error_r)
{
	if (r->err != BIRD_PERR_OK)
		return rerr(BIRD_R_LIMIT, bird_perr_str(r->err), error_r);
	if (r->cls == 8 || r->cls == 9)
		return rerr(BIRD_R_BIRD_ERROR, "BIRD answered with an error", error_r);
	return BIRD_R_OK;
}

static bool is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* Copy len bytes to dst (size dstsz) with a NUL.  False if it does not fit. */
static bool copy_field(char *dst, size_t dstsz, const char *src, size_t len)
{
	if (len >= dstsz)
		return false;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return true;
}

/* If text starts with prefix, the rest; else NULL. */
static const char *after(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(text, prefix, n) == 0 ? text + n : NULL;
}

struct tok {
	const char *p;
	size_t len;
};

/* The next blank-separated word at *s (advanced past it); false at the end. */
static bool next_tok(const char **s, struct tok *t)
{
	const char *p = *s;

	while (is_blank((unsigned char)*p))
		p++;
	if (*p == '\0') {
		*s = p;
		return false;
	}
	t->p = p;
	while (*p != '\0' && !is_blank((unsigned char)*p))
		p++;
	t->len = (size_t)(p - t->p);
	*s = p;
	return true;
}

static bool tok_is(const struct tok *t, const char *word)
{
	return t->len == strlen(word) && memcmp(t->p, word, t->len) == 0;
}

/* Decimal digits only, no sign, fits in uint64_t. */
static bool parse_u64(const char *s, size_t len, uint64_t *v_r)
{
	uint64_t v = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned d;

		if (!is_digit((unsigned char)s[i]))
			return false;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*v_r = v;
	return true;
}

/* Exactly a.b.c.d, each 0..255 in at most 3 digits. */
static bool parse_ipv4(const char *s, uint32_t *v_r)
{
	uint32_t v = 0;

	for (int part = 0; part < 4; part++) {
		unsigned n = 0, digits = 0;

		while (is_digit((unsigned char)*s) && digits < 4) {
			n = n * 10 + (unsigned)(*s - '0');
			s++;
			digits++;
		}
		if (digits == 0 || digits > 3 || n > 255)
			return false;
		v = (v << 8) | n;
		if (part < 3) {
			if (*s != '.')
				return false;
			s++;
		}
	}
	if (*s != '\0')
		return false;
	*v_r = v;
	return true;
}

/* ---- show status ---------------------------------------------------------- */

/* Copy a 1011 value into a field; *err set on overflow. */
static bool status_field(char *dst, size_t dstsz, const char *val, enum bird_rerr *err,
			 const char **detail, const char *what)
{
	if (copy_field(dst, dstsz, val, strlen(val)))
		return true;
	*err = BIRD_R_TOO_LONG;
	*detail = what;
	return false;
}

enum bird_rerr bird_parse_status(const struct bird_reply *r, struct bird_status *st,
				 const char **error_r)
{
	enum bird_rerr err = BIRD_R_OK;
	const char *detail = NULL;
	bool have_version = false, have_rid = false;

	memset(st, 0, sizeof(*st));
	if ((err = common_checks(r, error_r)) != BIRD_R_OK)
		return err;
	if (r->code != 13)
		return rerr(BIRD_R_UNEXPECTED, "show status does not end with 0013", error_r);

	for (size_t i = 0; i < r->n_lines; i++) {
		const struct bird_line *l = &r->lines[i];
		const char *v;

		if (l->code == 1000 && !l->cont) {
			v = after(l->text, "BIRD ");
			if (v == NULL || *v == '\0')
				return rerr(BIRD_R_BAD_FIELD, "1000 line is not \"BIRD <version>\"",
					    error_r);
			if (!status_field(st->version, sizeof(st->version), v, &err, &detail,
					  "version too long"))
				return rerr(err, detail, error_r);
			have_version = true;
		} else if (l->code == 1011) {
			if ((v = after(l->text, "Router ID is ")) != NULL) {
				if (!parse_ipv4(v, &st->router_id))
					return rerr(BIRD_R_BAD_FIELD, "router id is not an IPv4 address",
						    error_r);
				copy_field(st->router_id_text, sizeof(st->router_id_text), v,
					   strlen(v));
				have_rid = true;
			} else if ((v = after(l->text, "Hostname is ")) != NULL) {
				if (!status_field(st->hostname, sizeof(st->hostname), v, &err,
						  &detail, "hostname too long"))
					return rerr(err, detail, error_r);
			} else if ((v = after(l->text, "Current server time is ")) != NULL) {
				if (!status_field(st->server_time, sizeof(st->server_time), v, &err,
						  &detail, "server time too long"))
					return rerr(err, detail, error_r);
			} else if ((v = after(l->text, "Last reboot on ")) != NULL) {
				if (!status_field(st->last_reboot, sizeof(st->last_reboot), v, &err,
						  &detail, "reboot time too long"))
					return rerr(err, detail, error_r);
			} else if ((v = after(l->text, "Last reconfiguration on ")) != NULL) {
				if (!status_field(st->last_reconfig, sizeof(st->last_reconfig), v,
						  &err, &detail, "reconfiguration time too long"))
					return rerr(err, detail, error_r);
				st->has_last_reconfig = true;
			}
		} else if (l->code == 24) {
			st->graceful_restart = true;
		}
	}
	if (!have_version)
		return rerr(BIRD_R_MISSING, "no 1000 version line", error_r);
	if (!have_rid)
		return rerr(BIRD_R_MISSING, "no router id line", error_r);

	{
		const char *s = bird_reply_last_text(r);

		if (!copy_field(st->state_text, sizeof(st->state_text), s, strlen(s)))
			return rerr(BIRD_R_TOO_LONG, "state text too long", error_r);
		if (strcmp(s, "Daemon is up and running") == 0)
			st->state = BIRD_DAEMON_UP;
		else if (strcmp(s, "Shutdown in progress") == 0)
			st->state = BIRD_DAEMON_SHUTDOWN;
		else if (strcmp(s, "Reconfiguration in progress") == 0)
			st->state = BIRD_DAEMON_RECONFIG;
		else
			st->state = BIRD_DAEMON_OTHER;
	}
	return BIRD_R_OK;
}

/* ---- show protocols ------------------------------------------------------- */

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_digit((unsigned char)s[i]))
			return false;
	return true;
}

/* "2026-11-25" */
static bool looks_date(const struct tok *t)
{
	return t->len == 10 && all_digits(t->p, 4) && t->p[4] == '-' && all_digits(t->p + 5, 2) &&
	       t->p[7] == '-' && all_digits(t->p + 8, 2);
}

/* "02:09:12", "02:09:12.797", "02:09" */
static bool looks_time(const struct tok *t)
{
	size_t i = 0;
	unsigned groups = 0;

	while (i < t->len) {
		size_t start = i;

		while (i < t->len && is_digit((unsigned char)t->p[i]))
			i++;
		if (i - start < 1 || i - start > 2)
			return false;
		groups++;
		if (i == t->len)
			break;
		if (t->p[i] == '.') {
			i++;
			if (i == t->len || !all_digits(t->p + i, t->len - i))
				return false;
			i = t->len;
			break;
		}
		if (t->p[i] != ':' || groups == 3)
			return false;
		i++;
		if (i == t->len)
			return false;
	}
	return groups >= 2;
}

static const struct {
	const char *text;
	enum bird_proto_state state;
} pstates[] = {
	{ "up", BIRD_PS_UP },	    { "down", BIRD_PS_DOWN },	{ "start", BIRD_PS_START },
	{ "stop", BIRD_PS_STOP }, { "flush", BIRD_PS_FLUSH },
};

const char *bird_proto_state_str(enum bird_proto_state s)
{
	for (size_t i = 0; i < sizeof(pstates) / sizeof(pstates[0]); i++)
		if (pstates[i].state == s)
			return pstates[i].text;
	return "other";
}

static enum bird_rerr parse_row(const char *s, struct bird_proto *row, const char **error_r)
{
	struct tok t[6];
	const char *info, *end;
	size_t ilen;

	for (int k = 0; k < 5; k++)
		if (!next_tok(&s, &t[k]))
			return rerr(BIRD_R_MISSING, "protocol row has fewer than 5 columns", error_r);
	if (!copy_field(row->name, sizeof(row->name), t[0].p, t[0].len))
		return rerr(BIRD_R_TOO_LONG, "protocol name too long", error_r);
	if (!copy_field(row->proto, sizeof(row->proto), t[1].p, t[1].len))
		return rerr(BIRD_R_TOO_LONG, "protocol type too long", error_r);
	if (!copy_field(row->table, sizeof(row->table), t[2].p, t[2].len))
		return rerr(BIRD_R_TOO_LONG, "table name too long", error_r);
	if (!copy_field(row->state_text, sizeof(row->state_text), t[3].p, t[3].len))
		return rerr(BIRD_R_TOO_LONG, "protocol state too long", error_r);
	row->state = BIRD_PS_OTHER;
	for (size_t i = 0; i < sizeof(pstates) / sizeof(pstates[0]); i++)
		if (tok_is(&t[3], pstates[i].text))
			row->state = pstates[i].state;

	/* since: one word, or a date and a time */
	{
		const char *save = s;
		size_t since_len = t[4].len;

		if (looks_date(&t[4]) && next_tok(&s, &t[5]) && looks_time(&t[5]))
			since_len = (size_t)(t[5].p + t[5].len - t[4].p);
		else
			s = save;
		if (!copy_field(row->since, sizeof(row->since), t[4].p, since_len))
			return rerr(BIRD_R_TOO_LONG, "protocol since too long", error_r);
	}

	/* info: the rest, without leading and trailing blanks */
	info = s;
	while (is_blank((unsigned char)*info))
		info++;
	end = info + strlen(info);
	while (end > info && is_blank((unsigned char)end[-1]))
		end--;
	ilen = (size_t)(end - info);
	if (ilen > BIRD_INFO_MAX) {
		ilen = BIRD_INFO_MAX;
		row->info_cut = true;
	}
	copy_field(row->info, sizeof(row->info), info, ilen);
	return BIRD_R_OK;
}

static bool heading_ok(const char *s)
{
	static const char *const cols[] = { "Name", "Proto", "Table", "State", "Since", "Info" };
	struct tok t;

	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
		if (!next_tok(&s, &t) || !tok_is(&t, cols[i]))
			return false;
	return !next_tok(&s, &t);
}

void bird_protocols_free(struct bird_protocols *p)
{
	if (p == NULL)
		return;
	free(p->rows);
	p->rows = NULL;
	p->n = 0;
}

enum bird_rerr bird_parse_protocols(const struct bird_reply *r, struct bird_protocols *out,
				    const char **error_r)
{
	enum bird_rerr err;
	size_t rows = 0, k = 0;
	bool heading = false;

	out->n = 0;
	out->rows = NULL;
	if (r->err == BIRD_PERR_OK && r->code == 8003)
		return BIRD_R_OK;	/* "No protocols match" */
	if ((err = common_checks(r, error_r)) != BIRD_R_OK)
		return err;
	if (r->code != 0)
		return rerr(BIRD_R_UNEXPECTED, "show protocols does not end with 0000", error_r);

	for (size_t i = 0; i < r->n_lines; i++) {
		const struct bird_line *l = &r->lines[i];

		if (l->code == 2002 && !l->cont) {
			if (!heading_ok(l->text))
				return rerr(BIRD_R_BAD_FIELD,
					    "heading is not \"Name Proto Table State Since Info\"",
					    error_r);
			heading = true;
		} else if (l->code == 1002) {
			rows++;
		}
	}
	if (rows == 0)
		return BIRD_R_OK;
	if (!heading)
		return rerr(BIRD_R_MISSING, "protocol rows without a 2002 heading", error_r);
	out->rows = calloc(rows, sizeof(*out->rows));
	if (out->rows == NULL)
		return rerr(BIRD_R_NOMEM, "out of memory", error_r);
	for (size_t i = 0; i < r->n_lines; i++) {
		if (r->lines[i].code != 1002)
			continue;
		err = parse_row(r->lines[i].text, &out->rows[k], error_r);
		if (err != BIRD_R_OK) {
			bird_protocols_free(out);
			return err;
		}
		k++;
	}
	out->n = rows;
	return BIRD_R_OK;
}

const struct bird_proto *bird_protocols_find(const struct bird_protocols *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->rows[i].name, name) == 0)
			return &p->rows[i];
	return NULL;
}

/* ---- show route ... count ------------------------------------------------- */

/* "X of Y routes for Z networks" at *s; *s is left after it. */
static bool parse_counts(const char **s, uint64_t v[3])
{
	static const char *const words[] = { NULL, "of", NULL, "routes", "for", NULL, "networks" };
	struct tok t;
	int k = 0;

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (!next_tok(s, &t))
			return false;
		if (words[i] == NULL) {
			if (!parse_u64(t.p, t.len, &v[k++]))
				return false;
		} else if (!tok_is(&t, words[i])) {
			return false;
		}
	}
	return true;
}

static bool add_u64(uint64_t *sum, uint64_t v)
{
	if (*sum > UINT64_MAX - v)
		return false;
	*sum += v;
	return true;
}

enum bird_rerr bird_parse_count(const struct bird_reply *r, struct bird_count *out,
				const char **error_r)
{
	enum bird_rerr err;
	struct tok t;

	memset(out, 0, sizeof(*out));
	if ((err = common_checks(r, error_r)) != BIRD_R_OK)
		return err;
	if (r->code != 0 && r->code != 14)
		return rerr(BIRD_R_UNEXPECTED, "count does not end with 0000 or 0014", error_r);

	for (size_t i = 0; i < r->n_lines; i++) {
		const struct bird_line *l = &r->lines[i];
		const char *s = l->text;
		uint64_t v[3];

		if (l->code != 1007)
			continue;
		if (!parse_counts(&s, v))
			return rerr(BIRD_R_BAD_FIELD,
				    "1007 line is not \"X of Y routes for Z networks\"", error_r);
		/* optional " in table NAME" */
		if (next_tok(&s, &t)) {
			if (!tok_is(&t, "in") || !next_tok(&s, &t) || !tok_is(&t, "table") ||
			    !next_tok(&s, &t) || next_tok(&s, &t))
				return rerr(BIRD_R_BAD_FIELD, "1007 line does not end \"in table T\"",
					    error_r);
		}
		if (!add_u64(&out->routes, v[0]) || !add_u64(&out->scanned, v[1]) ||
		    !add_u64(&out->networks, v[2]) || out->tables == UINT32_MAX)
			return rerr(BIRD_R_BAD_FIELD, "route counts overflow", error_r);
		out->tables++;
	}

	if (r->code == 14) {
		const char *s = bird_reply_last_text(r);
		uint64_t v[3], ntab;

		if (!next_tok(&s, &t) || !tok_is(&t, "Total:") || !parse_counts(&s, v) ||
		    !next_tok(&s, &t) || !tok_is(&t, "in") || !next_tok(&s, &t) ||
		    !parse_u64(t.p, t.len, &ntab) || !next_tok(&s, &t) || !tok_is(&t, "tables") ||
		    next_tok(&s, &t))
			return rerr(BIRD_R_BAD_FIELD,
				    "0014 line is not \"Total: X of Y routes for Z networks in N "
				    "tables\"",
				    error_r);
		if (v[0] != out->routes || v[1] != out->scanned || v[2] != out->networks ||
		    ntab != out->tables)
			return rerr(BIRD_R_BAD_FIELD, "total does not match the tables", error_r);
	}
	return BIRD_R_OK;
}

/* ---- enable / disable ---------------------------------------------------- */

const char *bird_ctl_result_str(enum bird_ctl_result res)
{
	switch (res) {
	case BIRD_CTL_DONE:
		return "done";
	case BIRD_CTL_ALREADY:
		return "already";
	case BIRD_CTL_UNKNOWN:
		return "unknown protocol";
	case BIRD_CTL_ERROR:
		return "error";
	}
	return "?";
}

enum bird_rerr bird_parse_ctl(const struct bird_reply *r, enum bird_ctl_op op, const char *name,
			      enum bird_ctl_result *res_r, const char **error_r)
{
	unsigned done_code = op == BIRD_CTL_ENABLE ? 11 : 9;
	unsigned already_code = op == BIRD_CTL_ENABLE ? 10 : 8;
	const char *done_word = op == BIRD_CTL_ENABLE ? "enabled" : "disabled";
	const char *already_word = op == BIRD_CTL_ENABLE ? "already enabled" : "already disabled";
	size_t nlen = strlen(name);

	*res_r = BIRD_CTL_ERROR;
	if (r->err != BIRD_PERR_OK)
		return rerr(BIRD_R_LIMIT, bird_perr_str(r->err), error_r);
	if (r->cls == 8 || r->cls == 9) {
		const char *s = bird_reply_last_text(r);

		if (r->code == 8003 ||
		    (r->cls == 9 && (strstr(s, "CF_SYM_UNDEFINED") != NULL ||
				     strcmp(s, "Protocol name required") == 0)))
			*res_r = BIRD_CTL_UNKNOWN;
		return BIRD_R_OK;
	}
	if (r->code != 0)
		return rerr(BIRD_R_UNEXPECTED, "enable/disable does not end with 0000", error_r);

	for (size_t i = 0; i < r->n_lines; i++) {
		const struct bird_line *l = &r->lines[i];
		const char *v;

		if (l->len <= nlen + 2 || memcmp(l->text, name, nlen) != 0 ||
		    l->text[nlen] != ':' || l->text[nlen + 1] != ' ')
			continue;
		v = l->text + nlen + 2;
		if (l->code == done_code && strcmp(v, done_word) == 0) {
			*res_r = BIRD_CTL_DONE;
			return BIRD_R_OK;
		}
		if (l->code == already_code && strcmp(v, already_word) == 0) {
			*res_r = BIRD_CTL_ALREADY;
			return BIRD_R_OK;
		}
		return rerr(BIRD_R_BAD_FIELD, "the protocol's line does not fit the command",
			    error_r);
	}
	return rerr(BIRD_R_MISSING, "no line for the protocol", error_r);
}
