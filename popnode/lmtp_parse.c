/*
 * lmtp_parse.c - LMTP command lines and the DATA reader, without I/O.
 *
 * Command lines follow RFC 5321 section 4.1 with RFC 2033's LHLO:
 *
 *   MAIL FROM:<reverse-path> [SP mail-parameters]
 *   RCPT TO:<forward-path> [SP rcpt-parameters]
 *   Path = "<" [ A-d-l ":" ] Mailbox ">"     (the source route is dropped)
 *   Mailbox = Local-part "@" ( Domain / address-literal )
 *   Local-part = Dot-string / Quoted-string
 *
 * Deliberate leniencies, because real MTAs send them: blanks after "FROM:"
 * and "TO:", several blanks between parameters, trailing blanks, '_' in
 * domain labels, local parts up to 255 bytes.  Deliberate strictness:
 * the address must be in angle brackets, only ASCII (SMTPUTF8 is not
 * offered), one LHLO argument.  RCPT TO:<postmaster> without a domain is
 * accepted as RFC 5321 4.1.1.3 requires.
 *
 * The DATA reader is a byte-resumable state machine:
 *
 *   LINE_START --'.'--> DOT --CR--> DOT_CR --LF--> DONE
 *        |               |  \--LF---------------> DONE
 *        |               \--other: dot dropped--> IN_LINE
 *        \--other--> IN_LINE --LF--> LINE_START (CRLF emitted)
 *                    IN_LINE --CR at chunk end--> CR --LF--> LINE_START
 *
 * Inside a line it copies whole runs found with memchr(), so a 50 MB
 * message costs a few memcpy()s per chunk, not a switch per byte.  A CR
 * not followed by LF is data (never a line end: no SMTP smuggling with
 * "\r.\r"); a LF without CR ends a line and is stored as CRLF.
 */
#include <stdlib.h>
#include <string.h>

#include "lmtp_parse.h"

/* ---- small helpers ------------------------------------------------------ */

struct cursor {
	const char *p;
	const char *end;
};

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

static unsigned char to_upper(unsigned char c)
{
	return (c >= 'a' && c <= 'z') ? (unsigned char)(c - 'a' + 'A') : c;
}

/* RFC 5322 atext. */
static bool is_atext(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* RFC 5321 qtextSMTP: %d32-33 / %d35-91 / %d93-126. */
static bool is_qtext(unsigned char c)
{
	return c == 32 || c == 33 || (c >= 35 && c <= 91) || (c >= 93 && c <= 126);
}

/* RFC 5321 dtext inside an address literal: %d33-90 / %d94-126. */
static bool is_dtext(unsigned char c)
{
	return (c >= 33 && c <= 90) || (c >= 94 && c <= 126);
}

/* esmtp-value: %d33-60 / %d62-126. */
static bool is_esmtp_value(unsigned char c)
{
	return (c >= 33 && c <= 60) || (c >= 62 && c <= 126);
}

/* Case-insensitive: does the cursor start with the ASCII word w? */
static bool cur_starts(const struct cursor *c, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(c->end - c->p) < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (to_upper((unsigned char)c->p[i]) != to_upper((unsigned char)w[i]))
			return false;
	return true;
}

static bool mem_ieq(const char *a, size_t alen, const char *b)
{
	size_t n = strlen(b);

	if (alen != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (to_upper((unsigned char)a[i]) != to_upper((unsigned char)b[i]))
			return false;
	return true;
}

static size_t skip_blanks(struct cursor *c)
{
	size_t n = 0;

	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) {
		c->p++;
		n++;
	}
	return n;
}

static enum lmtp_perr set_err(struct lmtp_cmd *cmd, enum lmtp_perr err, const char *detail)
{
	cmd->err = err;
	cmd->detail = detail;
	return err;
}

/* ---- addresses ---------------------------------------------------------- */

enum path_kind { PATH_MAIL, PATH_RCPT };

#define NON_ASCII "non-ASCII address (SMTPUTF8 is not supported)"

/* Why the byte at the cursor ends an address. */
static const char *bad_char(const struct cursor *c, const char *dflt)
{
	if (c->p < c->end && (unsigned char)*c->p >= 0x80)
		return NON_ASCII;
	return dflt;
}

/* Domain or address literal at the cursor, copied into out (size
 * LMTP_DOMAIN_MAX + 1).  false (with *detail) if malformed or too long. */
static bool parse_domain(struct cursor *c, char *out, size_t *out_len, const char **detail)
{
	const char *start = c->p;
	size_t n;

	if (c->p < c->end && *c->p == '[') {
		c->p++;
		while (c->p < c->end && is_dtext((unsigned char)*c->p))
			c->p++;
		if (c->p >= c->end || *c->p != ']' || c->p == start + 1) {
			*detail = "bad address literal";
			return false;
		}
		c->p++;
	} else {
		for (;;) {
			const char *label = c->p;

			while (c->p < c->end &&
			       (is_alnum((unsigned char)*c->p) || *c->p == '-' || *c->p == '_'))
				c->p++;
			if (c->p == label) {
				*detail = bad_char(c, "bad domain");
				return false;
			}
			if (c->p < c->end && *c->p == '.') {
				c->p++;
				continue;
			}
			break;
		}
	}
	n = (size_t)(c->p - start);
	if (n > LMTP_DOMAIN_MAX) {
		*detail = "domain too long";
		return false;
	}
	memcpy(out, start, n);
	out[n] = '\0';
	*out_len = n;
	return true;
}

/* Local part at the cursor: unquoted form into a->local, as-received form
 * into a->addr. */
static bool parse_local(struct cursor *c, struct lmtp_addr *a, const char **detail)
{
	const char *start = c->p;
	size_t n = 0;

	if (c->p < c->end && *c->p == '"') {
		c->p++;
		for (;;) {
			unsigned char ch;

			if (c->p >= c->end) {
				*detail = "unterminated quoted local part";
				return false;
			}
			ch = (unsigned char)*c->p++;
			if (ch == '"')
				break;
			if (ch == '\\') {
				if (c->p >= c->end || (unsigned char)*c->p < 32 ||
				    (unsigned char)*c->p > 126) {
					*detail = "bad quoted pair in local part";
					return false;
				}
				ch = (unsigned char)*c->p++;
			} else if (!is_qtext(ch)) {
				*detail = "bad character in quoted local part";
				return false;
			}
			if (n >= LMTP_LOCAL_MAX) {
				*detail = "local part too long";
				return false;
			}
			a->local[n++] = (char)ch;
		}
	} else {
		for (;;) {
			const char *atom = c->p;

			while (c->p < c->end && is_atext((unsigned char)*c->p))
				c->p++;
			if (c->p == atom) {
				*detail = bad_char(c, "bad local part");
				return false;
			}
			if (c->p < c->end && *c->p == '.') {
				c->p++;
				continue;
			}
			break;
		}
		n = (size_t)(c->p - start);
		if (n > LMTP_LOCAL_MAX) {
			*detail = "local part too long";
			return false;
		}
		memcpy(a->local, start, n);
	}
	a->local[n] = '\0';
	a->local_len = n;
	/* The raw form (quotes and escapes kept) is what goes into headers. */
	if ((size_t)(c->p - start) > LMTP_LOCAL_MAX) {
		*detail = "local part too long";
		return false;
	}
	memcpy(a->addr, start, (size_t)(c->p - start));
	a->addr_len = (size_t)(c->p - start);
	a->addr[a->addr_len] = '\0';
	return true;
}

static enum lmtp_perr parse_path(struct cursor *c, enum path_kind kind, struct lmtp_cmd *cmd)
{
	struct lmtp_addr *a = &cmd->addr;
	const char *detail = NULL;

	if (c->p >= c->end || *c->p != '<')
		return set_err(cmd, LMTP_PERR_ADDRESS, "address must be enclosed in <>");
	c->p++;
	if (c->p < c->end && *c->p == '>') {
		if (kind != PATH_MAIL)
			return set_err(cmd, LMTP_PERR_ADDRESS, "empty recipient address");
		c->p++;
		a->null = true;
		return LMTP_PERR_OK;
	}
	/* A source route "@a,@b:" is accepted and ignored (RFC 5321 4.1.1.3). */
	if (c->p < c->end && *c->p == '@') {
		char tmp[LMTP_DOMAIN_MAX + 1];
		size_t tlen;

		for (;;) {
			if (c->p >= c->end || *c->p != '@')
				return set_err(cmd, LMTP_PERR_ADDRESS, "bad source route");
			c->p++;
			if (!parse_domain(c, tmp, &tlen, &detail))
				return set_err(cmd, LMTP_PERR_ADDRESS, "bad source route");
			if (c->p < c->end && *c->p == ',') {
				c->p++;
				continue;
			}
			if (c->p < c->end && *c->p == ':') {
				c->p++;
				break;
			}
			return set_err(cmd, LMTP_PERR_ADDRESS, "bad source route");
		}
	}
	if (!parse_local(c, a, &detail))
		return set_err(cmd, LMTP_PERR_ADDRESS, detail);
	if (c->p < c->end && *c->p == '@') {
		c->p++;
		if (!parse_domain(c, a->domain, &a->domain_len, &detail))
			return set_err(cmd, LMTP_PERR_ADDRESS, detail);
		if (a->addr_len + 1 + a->domain_len > LMTP_ADDR_MAX)
			return set_err(cmd, LMTP_PERR_ADDRESS, "address too long");
		a->addr[a->addr_len++] = '@';
		memcpy(a->addr + a->addr_len, a->domain, a->domain_len);
		a->addr_len += a->domain_len;
		a->addr[a->addr_len] = '\0';
	} else if (kind == PATH_RCPT && c->p < c->end && *c->p == '>' &&
		   mem_ieq(a->addr, a->addr_len, "postmaster")) {
		a->domain[0] = '\0';
		a->domain_len = 0;
	} else if (c->p < c->end && *c->p == '>') {
		return set_err(cmd, LMTP_PERR_ADDRESS, "address needs a domain");
	} else {
		return set_err(cmd, LMTP_PERR_ADDRESS, bad_char(c, "bad character in address"));
	}
	if (c->p >= c->end || *c->p != '>')
		return set_err(cmd, LMTP_PERR_ADDRESS, bad_char(c, "bad character in domain"));
	c->p++;
	return LMTP_PERR_OK;
}

/* ---- parameters --------------------------------------------------------- */

static enum lmtp_perr mail_param(struct lmtp_cmd *cmd, const char *kw, size_t kwlen,
				 const char *val, size_t vlen)
{
	if (mem_ieq(kw, kwlen, "SIZE")) {
		uint64_t v = 0;

		if (cmd->has_size)
			return set_err(cmd, LMTP_PERR_PARAM_VALUE, "SIZE given twice");
		if (val == NULL || vlen == 0 || vlen > 20)
			return set_err(cmd, LMTP_PERR_PARAM_VALUE, "SIZE needs a number");
		for (size_t i = 0; i < vlen; i++) {
			unsigned d;

			if (!is_digit((unsigned char)val[i]))
				return set_err(cmd, LMTP_PERR_PARAM_VALUE, "SIZE needs a number");
			d = (unsigned)(val[i] - '0');
			if (v > (UINT64_MAX - d) / 10)
				return set_err(cmd, LMTP_PERR_PARAM_VALUE, "SIZE out of range");
			v = v * 10 + d;
		}
		cmd->has_size = true;
		cmd->size = v;
		return LMTP_PERR_OK;
	}
	if (mem_ieq(kw, kwlen, "BODY")) {
		if (cmd->body != LMTP_BODY_UNSPEC)
			return set_err(cmd, LMTP_PERR_PARAM_VALUE, "BODY given twice");
		if (val != NULL && mem_ieq(val, vlen, "7BIT"))
			cmd->body = LMTP_BODY_7BIT;
		else if (val != NULL && mem_ieq(val, vlen, "8BITMIME"))
			cmd->body = LMTP_BODY_8BITMIME;
		else
			return set_err(cmd, LMTP_PERR_PARAM_VALUE, "BODY must be 7BIT or 8BITMIME");
		return LMTP_PERR_OK;
	}
	return set_err(cmd, LMTP_PERR_PARAM_UNKNOWN, "unsupported MAIL parameter");
}

/* What follows the path: nothing, or SP esmtp-param *(SP esmtp-param). */
static enum lmtp_perr parse_params(struct cursor *c, enum path_kind kind, struct lmtp_cmd *cmd)
{
	if (c->p < c->end && skip_blanks(c) == 0)
		return set_err(cmd, LMTP_PERR_SYNTAX, "garbage after address");
	while (c->p < c->end) {
		const char *kw = c->p, *val = NULL;
		size_t kwlen, vlen = 0;
		enum lmtp_perr err;

		if (!is_alnum((unsigned char)*c->p))
			return set_err(cmd, LMTP_PERR_SYNTAX, "bad parameter syntax");
		while (c->p < c->end && (is_alnum((unsigned char)*c->p) || *c->p == '-'))
			c->p++;
		kwlen = (size_t)(c->p - kw);
		if (c->p < c->end && *c->p == '=') {
			c->p++;
			val = c->p;
			while (c->p < c->end && is_esmtp_value((unsigned char)*c->p))
				c->p++;
			vlen = (size_t)(c->p - val);
			if (vlen == 0)
				return set_err(cmd, LMTP_PERR_SYNTAX, "bad parameter syntax");
		}
		if (c->p < c->end && skip_blanks(c) == 0)
			return set_err(cmd, LMTP_PERR_SYNTAX, "bad parameter syntax");
		if (kind == PATH_RCPT)
			return set_err(cmd, LMTP_PERR_PARAM_UNKNOWN, "unsupported RCPT parameter");
		err = mail_param(cmd, kw, kwlen, val, vlen);
		if (err != LMTP_PERR_OK)
			return err;
	}
	return LMTP_PERR_OK;
}

/* ---- commands ----------------------------------------------------------- */

static enum lmtp_perr cmd_lhlo(struct cursor *c, struct lmtp_cmd *cmd)
{
	const char *start = c->p;
	size_t n;

	if (c->p >= c->end)
		return set_err(cmd, LMTP_PERR_SYNTAX, "LHLO needs a domain");
	while (c->p < c->end && (unsigned char)*c->p > 32 && (unsigned char)*c->p < 127)
		c->p++;
	if (c->p < c->end)
		return set_err(cmd, LMTP_PERR_SYNTAX, "LHLO takes one domain");
	n = (size_t)(c->p - start);
	if (n > LMTP_DOMAIN_MAX)
		return set_err(cmd, LMTP_PERR_SYNTAX, "LHLO domain too long");
	memcpy(cmd->lhlo, start, n);
	cmd->lhlo[n] = '\0';
	cmd->lhlo_len = n;
	return LMTP_PERR_OK;
}

static enum lmtp_perr cmd_mail_rcpt(struct cursor *c, struct lmtp_cmd *cmd, enum path_kind kind)
{
	const char *kw = kind == PATH_MAIL ? "FROM:" : "TO:";
	enum lmtp_perr err;

	if (!cur_starts(c, kw))
		return set_err(cmd, LMTP_PERR_SYNTAX,
			       kind == PATH_MAIL ? "expected MAIL FROM:<address>" : "expected RCPT TO:<address>");
	c->p += strlen(kw);
	skip_blanks(c);
	err = parse_path(c, kind, cmd);
	if (err != LMTP_PERR_OK)
		return err;
	return parse_params(c, kind, cmd);
}

static const struct {
	const char *name;
	enum lmtp_cmd_type type;
} verbs[] = {
	{ "LHLO", LMTP_CMD_LHLO }, { "MAIL", LMTP_CMD_MAIL }, { "RCPT", LMTP_CMD_RCPT },
	{ "DATA", LMTP_CMD_DATA }, { "RSET", LMTP_CMD_RSET }, { "NOOP", LMTP_CMD_NOOP },
	{ "QUIT", LMTP_CMD_QUIT }, { "VRFY", LMTP_CMD_VRFY }, { "HELP", LMTP_CMD_HELP },
};

/* SMTP verbs we know but do not offer on LMTP. */
static const char *const not_implemented[] = {
	"EXPN", "TURN", "ETRN", "ATRN", "BDAT", "AUTH", "STARTTLS", "SEND", "SOML", "SAML",
};

const char *lmtp_cmd_name(enum lmtp_cmd_type type)
{
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (verbs[i].type == type)
			return verbs[i].name;
	return "?";
}

enum lmtp_perr lmtp_parse_command(const char *line, size_t len, struct lmtp_cmd *cmd)
{
	struct cursor c;
	const char *verb;
	size_t vlen;

	memset(cmd, 0, sizeof(*cmd));
	if (len > 0 && line[len - 1] == '\n') {
		len--;
		if (len > 0 && line[len - 1] == '\r')
			len--;
	}
	if (memchr(line, '\0', len) != NULL)
		return set_err(cmd, LMTP_PERR_LINE, "NUL byte in command");
	if (memchr(line, '\r', len) != NULL || memchr(line, '\n', len) != NULL)
		return set_err(cmd, LMTP_PERR_LINE, "bare CR or LF in command");
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (len == 0)
		return set_err(cmd, LMTP_PERR_LINE, "empty command");

	c.p = line;
	c.end = line + len;
	verb = c.p;
	while (c.p < c.end && *c.p != ' ')
		c.p++;
	vlen = (size_t)(c.p - verb);
	skip_blanks(&c);

	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (mem_ieq(verb, vlen, verbs[i].name))
			cmd->type = verbs[i].type;
	if (cmd->type == LMTP_CMD_NONE) {
		if (mem_ieq(verb, vlen, "HELO") || mem_ieq(verb, vlen, "EHLO"))
			return set_err(cmd, LMTP_PERR_WRONG_PROTO, "this is LMTP, use LHLO");
		for (size_t i = 0; i < sizeof(not_implemented) / sizeof(not_implemented[0]); i++)
			if (mem_ieq(verb, vlen, not_implemented[i]))
				return set_err(cmd, LMTP_PERR_NOT_IMPL, "command not implemented");
		return set_err(cmd, LMTP_PERR_UNKNOWN, "unknown command");
	}

	switch (cmd->type) {
	case LMTP_CMD_LHLO:
		return cmd_lhlo(&c, cmd);
	case LMTP_CMD_MAIL:
		return cmd_mail_rcpt(&c, cmd, PATH_MAIL);
	case LMTP_CMD_RCPT:
		return cmd_mail_rcpt(&c, cmd, PATH_RCPT);
	case LMTP_CMD_DATA:
	case LMTP_CMD_RSET:
	case LMTP_CMD_QUIT:
		if (c.p < c.end)
			return set_err(cmd, LMTP_PERR_SYNTAX, "no arguments allowed");
		return LMTP_PERR_OK;
	case LMTP_CMD_VRFY:
		if (c.p >= c.end)
			return set_err(cmd, LMTP_PERR_SYNTAX, "VRFY needs an argument");
		return LMTP_PERR_OK;
	case LMTP_CMD_NOOP: /* an argument is allowed and ignored */
	case LMTP_CMD_HELP:
		return LMTP_PERR_OK;
	case LMTP_CMD_NONE:
	case LMTP_CMD_COUNT:
		break;
	}
	return set_err(cmd, LMTP_PERR_UNKNOWN, "unknown command");
}

unsigned lmtp_perr_reply(enum lmtp_perr err, enum lmtp_cmd_type type, const char **enh_r)
{
	switch (err) {
	case LMTP_PERR_OK:
		*enh_r = "2.0.0";
		return 250;
	case LMTP_PERR_LINE:
		*enh_r = "5.5.2";
		return 500;
	case LMTP_PERR_UNKNOWN:
	case LMTP_PERR_WRONG_PROTO:
		*enh_r = "5.5.1";
		return 500;
	case LMTP_PERR_NOT_IMPL:
		*enh_r = "5.5.1";
		return 502;
	case LMTP_PERR_SYNTAX:
		*enh_r = "5.5.4";
		return 501;
	case LMTP_PERR_ADDRESS:
		*enh_r = type == LMTP_CMD_MAIL ? "5.1.7" : "5.1.3";
		return 501;
	case LMTP_PERR_PARAM_UNKNOWN:
		*enh_r = "5.5.4";
		return 555;
	case LMTP_PERR_PARAM_VALUE:
		*enh_r = "5.5.4";
		return 501;
	}
	*enh_r = "5.5.0";
	return 500;
}

/* ---- DATA --------------------------------------------------------------- */

enum data_state {
	D_LINE_START,	/* at the first byte of a line */
	D_IN_LINE,	/* inside a line */
	D_CR,		/* a CR was the last byte seen inside a line */
	D_DOT,		/* a line started with '.' */
	D_DOT_CR,	/* the line so far is ".\r" */
	D_DONE,
};

#define DATA_INITIAL_CAP (16 * 1024)

struct lmtp_data {
	size_t max_line;
	size_t max_size;
	enum data_state st;
	char *buf;
	size_t len;
	size_t cap;
	size_t size;		/* message bytes seen, saturating */
	size_t line_len;	/* bytes of the current line so far */
	bool too_big;
	bool long_line;
	bool nomem;
};

struct lmtp_data *lmtp_data_new(size_t max_line, size_t max_size)
{
	struct lmtp_data *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	d->max_line = max_line;
	d->max_size = max_size;
	d->st = D_LINE_START;
	return d;
}

static void data_drop(struct lmtp_data *d)
{
	free(d->buf);
	d->buf = NULL;
	d->len = 0;
	d->cap = 0;
}

void lmtp_data_free(struct lmtp_data **dp)
{
	struct lmtp_data *d = dp != NULL ? *dp : NULL;

	if (d == NULL)
		return;
	*dp = NULL;
	data_drop(d);
	free(d);
}

void lmtp_data_reset(struct lmtp_data *d)
{
	data_drop(d);
	d->st = D_LINE_START;
	d->size = 0;
	d->line_len = 0;
	d->too_big = false;
	d->long_line = false;
	d->nomem = false;
}

/* Append n message bytes: count them, store them while within limits. */
static void data_emit(struct lmtp_data *d, const char *p, size_t n)
{
	if (n == 0)
		return;
	d->size = d->size > SIZE_MAX - n ? SIZE_MAX : d->size + n;
	if (d->too_big || d->nomem)
		return;
	if (d->size > d->max_size) {
		d->too_big = true;
		data_drop(d);
		return;
	}
	if (d->len + n > d->cap) {
		/* len + n <= size <= max_size, so the cap below fits. */
		size_t cap = d->cap ? d->cap : DATA_INITIAL_CAP;
		char *nb;

		while (cap < d->len + n)
			cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
		if (cap > d->max_size)
			cap = d->max_size;
		nb = realloc(d->buf, cap);
		if (nb == NULL) {
			d->nomem = true;
			data_drop(d);
			return;
		}
		d->buf = nb;
		d->cap = cap;
	}
	memcpy(d->buf + d->len, p, n);
	d->len += n;
}

/* Count n bytes of line content (line end excluded) against max_line. */
static void data_line(struct lmtp_data *d, size_t n)
{
	d->line_len = d->line_len > SIZE_MAX - n ? SIZE_MAX : d->line_len + n;
	if (d->max_line != 0 && d->line_len > d->max_line)
		d->long_line = true;
}

static void data_eol(struct lmtp_data *d)
{
	data_emit(d, "\r\n", 2);
	d->st = D_LINE_START;
}

enum lmtp_data_status lmtp_data_feed(struct lmtp_data *d, const void *buf, size_t len,
				     size_t *used_r)
{
	const char *p = buf;
	size_t i = 0;

	while (i < len && d->st != D_DONE) {
		switch (d->st) {
		case D_LINE_START:
			d->line_len = 0;
			if (p[i] == '.') {
				data_line(d, 1);
				d->st = D_DOT;
				i++;
			} else {
				d->st = D_IN_LINE;
			}
			break;
		case D_IN_LINE: {
			const char *nl = memchr(p + i, '\n', len - i);
			size_t run = nl != NULL ? (size_t)(nl - (p + i)) : len - i;
			bool cr = run > 0 && p[i + run - 1] == '\r';
			size_t n = run - (cr ? 1 : 0);

			data_emit(d, p + i, n);
			data_line(d, n);
			i += run;
			if (nl != NULL) {
				i++;
				data_eol(d);
			} else if (cr) {
				d->st = D_CR;
			}
			break;
		}
		case D_CR:
			if (p[i] == '\n') {
				i++;
				data_eol(d);
			} else {
				/* A bare CR is data; p[i] is looked at again. */
				data_emit(d, "\r", 1);
				data_line(d, 1);
				d->st = D_IN_LINE;
			}
			break;
		case D_DOT:
			if (p[i] == '\r') {
				d->st = D_DOT_CR;
				i++;
			} else if (p[i] == '\n') {
				d->st = D_DONE;
				i++;
			} else {
				/* Dot-stuffing: the leading dot is dropped. */
				d->st = D_IN_LINE;
			}
			break;
		case D_DOT_CR:
			if (p[i] == '\n') {
				d->st = D_DONE;
				i++;
			} else {
				data_emit(d, "\r", 1);
				data_line(d, 1);
				d->st = D_IN_LINE;
			}
			break;
		case D_DONE:
			break;
		}
	}
	*used_r = i;
	return d->st == D_DONE ? LMTP_DATA_DONE : LMTP_DATA_MORE;
}

enum lmtp_data_err lmtp_data_error(const struct lmtp_data *d)
{
	if (d->too_big)
		return LMTP_DATA_TOO_BIG;
	if (d->long_line)
		return LMTP_DATA_LINE_TOO_LONG;
	if (d->nomem)
		return LMTP_DATA_NOMEM;
	return LMTP_DATA_OK;
}

size_t lmtp_data_size(const struct lmtp_data *d)
{
	return d->size;
}

const char *lmtp_data_body(const struct lmtp_data *d, size_t *len_r)
{
	*len_r = d->buf != NULL ? d->len : 0;
	return d->buf;
}
