/*
 * imap_parse.c - IMAP command grammar: the tokenizer over one complete
 * command (literals inline, as sent), the command table, and the argument
 * parsers of every command except FETCH (imap_fetch_parse.c) and SEARCH
 * (imap_search_parse.c).
 *
 * Recursive descent straight over the bytes, no intermediate argument
 * tree: each command parser asks for exactly the tokens its grammar
 * allows, so errors can say what was expected where.  Recursion only
 * happens through p_enter()/p_leave(), which enforce lim->max_depth.
 * Everything a command keeps is copied into its arena except the APPEND
 * message, which stays in the raw buffer the command owns.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parse.h"
#include "imap_parse_private.h"
#include "imap_utf7.h"

/* The command and what it owns, in one arena allocation. */
struct cmd_holder {
	struct imap_command cmd;
	char *raw;		/* the command's bytes (APPEND message inside) */
};

static const char *const cmd_names[IMAP_CMD_COUNT] = {
	[IMAP_CMD_CAPABILITY] = "CAPABILITY",
	[IMAP_CMD_NOOP] = "NOOP",
	[IMAP_CMD_LOGOUT] = "LOGOUT",
	[IMAP_CMD_STARTTLS] = "STARTTLS",
	[IMAP_CMD_AUTHENTICATE] = "AUTHENTICATE",
	[IMAP_CMD_LOGIN] = "LOGIN",
	[IMAP_CMD_SELECT] = "SELECT",
	[IMAP_CMD_EXAMINE] = "EXAMINE",
	[IMAP_CMD_CREATE] = "CREATE",
	[IMAP_CMD_DELETE] = "DELETE",
	[IMAP_CMD_RENAME] = "RENAME",
	[IMAP_CMD_SUBSCRIBE] = "SUBSCRIBE",
	[IMAP_CMD_UNSUBSCRIBE] = "UNSUBSCRIBE",
	[IMAP_CMD_LIST] = "LIST",
	[IMAP_CMD_LSUB] = "LSUB",
	[IMAP_CMD_STATUS] = "STATUS",
	[IMAP_CMD_APPEND] = "APPEND",
	[IMAP_CMD_CHECK] = "CHECK",
	[IMAP_CMD_CLOSE] = "CLOSE",
	[IMAP_CMD_UNSELECT] = "UNSELECT",
	[IMAP_CMD_EXPUNGE] = "EXPUNGE",
	[IMAP_CMD_SEARCH] = "SEARCH",
	[IMAP_CMD_FETCH] = "FETCH",
	[IMAP_CMD_STORE] = "STORE",
	[IMAP_CMD_COPY] = "COPY",
	[IMAP_CMD_MOVE] = "MOVE",
	[IMAP_CMD_IDLE] = "IDLE",
	[IMAP_CMD_NAMESPACE] = "NAMESPACE",
	[IMAP_CMD_ID] = "ID",
	[IMAP_CMD_ENABLE] = "ENABLE",
	[IMAP_CMD_COMPRESS] = "COMPRESS",
	[IMAP_CMD_GETQUOTAROOT] = "GETQUOTAROOT",
	[IMAP_CMD_GETQUOTA] = "GETQUOTA",
};

const char *imap_cmd_name(enum imap_cmd_id id)
{
	if ((unsigned)id >= IMAP_CMD_COUNT)
		return "?";
	return cmd_names[id];
}

static bool uid_allowed(enum imap_cmd_id id)
{
	return id == IMAP_CMD_FETCH || id == IMAP_CMD_STORE || id == IMAP_CMD_COPY ||
	       id == IMAP_CMD_MOVE || id == IMAP_CMD_SEARCH || id == IMAP_CMD_EXPUNGE;
}

/* ---- errors ------------------------------------------------------------ */

void imap_error_set(struct imap_error *err, enum imap_err code, const char *text)
{
	memset(err, 0, sizeof(*err));
	err->code = code;
	snprintf(err->text, sizeof(err->text), "%s", text);
	switch (code) {
	case IMAP_ERR_BAD_CHARSET:
		err->no = true;
		err->resp_code = "BADCHARSET (US-ASCII UTF-8)";
		break;
	case IMAP_ERR_BAD_MAILBOX:
		err->no = true;
		break;
	case IMAP_ERR_USEATTR:
		err->no = true;
		err->resp_code = "USEATTR";
		break;
	case IMAP_ERR_NOMEM:
		err->no = true;
		err->resp_code = "SERVERBUG";
		break;
	default:
		break;
	}
}

const char *imap_error_status(const struct imap_error *e)
{
	return e->no ? "NO" : "BAD";
}

/* Keep error text printable ASCII whatever the client sent. */
static void sanitize(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			*s = '?';
}

int p_fail(struct pctx *c, enum imap_err code, const char *fmt, ...)
{
	if (c->failed)
		return -1;
	char text[IMAP_ERR_TEXT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	sanitize(text);

	/* keep tag and command, reset the rest */
	char tag[IMAP_TAG_MAX + 1];
	bool known = c->err->cmd_known, uid = c->err->uid;
	int id = c->err->cmd;
	memcpy(tag, c->err->tag, sizeof(tag));
	imap_error_set(c->err, code, text);
	memcpy(c->err->tag, tag, sizeof(tag));
	c->err->cmd_known = known;
	c->err->cmd = id;
	c->err->uid = uid;
	c->failed = true;
	return -1;
}

int p_nomem(struct pctx *c)
{
	return p_fail(c, IMAP_ERR_NOMEM, "Out of memory");
}

int p_enter(struct pctx *c)
{
	if (++c->depth > c->lim->max_depth)
		return p_fail(c, IMAP_ERR_NESTING, "Too deeply nested");
	return 0;
}

void p_leave(struct pctx *c)
{
	c->depth--;
}

/* ---- tokenizer --------------------------------------------------------- */

bool p_at_end(const struct pctx *c)
{
	size_t rest = c->len - c->pos;

	return rest == 0 || (rest == 1 && c->buf[c->pos] == '\n') ||
	       (rest == 2 && c->buf[c->pos] == '\r' && c->buf[c->pos + 1] == '\n');
}

int p_peek(const struct pctx *c)
{
	if (c->pos >= c->len)
		return -1;
	unsigned char ch = (unsigned char)c->buf[c->pos];
	if (ch == '\n' || (ch == '\r' && c->pos + 1 < c->len && c->buf[c->pos + 1] == '\n'))
		return -1;
	return ch;
}

static const char *cmdname(const struct pctx *c)
{
	return c->cmd != NULL ? imap_cmd_name(c->cmd->id) : "command";
}

int p_sp(struct pctx *c, const char *what)
{
	int ch = p_peek(c);

	if (ch == ' ') {
		c->pos++;
		return 0;
	}
	if (ch < 0)
		return p_fail(c, IMAP_ERR_SYNTAX, "Missing %s", what);
	return p_fail(c, IMAP_ERR_SYNTAX, "Expected space before %s", what);
}

int p_end(struct pctx *c)
{
	if (p_at_end(c))
		return 0;
	if (p_peek(c) == ' ' && c->pos + 1 < c->len && p_at_end(&(struct pctx){
		.buf = c->buf, .len = c->len, .pos = c->pos + 1 }))
		return p_fail(c, IMAP_ERR_SYNTAX, "Trailing space after %s arguments", cmdname(c));
	return p_fail(c, IMAP_ERR_SYNTAX, "Unexpected extra arguments to %s", cmdname(c));
}

int p_char(struct pctx *c, char ch, const char *what)
{
	if (p_peek(c) == (unsigned char)ch) {
		c->pos++;
		return 0;
	}
	return p_fail(c, IMAP_ERR_SYNTAX, "Missing '%c' in %s", ch, what);
}

bool p_opt_char(struct pctx *c, char ch)
{
	if (p_peek(c) == (unsigned char)ch) {
		c->pos++;
		return true;
	}
	return false;
}

static bool atom_char(int ch, bool bracket_ok)
{
	if (ch < 0)
		return false;
	if (ch >= 0x80)
		return true;	/* 8-bit: tolerated (UTF-8) */
	if (ch <= 0x1f || ch == 0x7f)
		return false;
	switch (ch) {
	case '(': case ')': case '{': case ' ': case '%': case '*': case '"': case '\\':
		return false;
	case ']':
		return bracket_ok;
	default:
		return true;
	}
}

int p_atom(struct pctx *c, const char *what, bool bracket_ok, const char **p_r, size_t *len_r)
{
	size_t start = c->pos;

	while (atom_char(p_peek(c), bracket_ok))
		c->pos++;
	if (c->pos == start) {
		if (p_peek(c) < 0)
			return p_fail(c, IMAP_ERR_SYNTAX, "Missing %s", what);
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s", what);
	}
	*p_r = c->buf + start;
	*len_r = c->pos - start;
	return 0;
}

bool p_word_eq(const char *p, size_t len, const char *word)
{
	size_t wl = strlen(word);

	return len == wl && strncasecmp(p, word, wl) == 0;
}

int p_dup(struct pctx *c, const char *p, size_t len, struct imap_str *out)
{
	char *s = imap_arena_strndup(c->a, p, len);

	if (s == NULL)
		return p_nomem(c);
	out->s = s;
	out->len = len;
	return 0;
}

static int p_quoted(struct pctx *c, const char *what, struct imap_str *out)
{
	size_t start = ++c->pos;	/* after the opening quote */
	size_t n = 0;
	bool esc = false;

	/* first pass: validate and measure */
	for (;;) {
		if (c->pos >= c->len)
			return p_fail(c, IMAP_ERR_SYNTAX, "Unterminated quoted string in %s", what);
		unsigned char ch = (unsigned char)c->buf[c->pos];
		if (ch == '\r' || ch == '\n')
			return p_fail(c, IMAP_ERR_SYNTAX, "Unterminated quoted string in %s", what);
		if (ch == '\0')
			return p_fail(c, IMAP_ERR_SYNTAX, "NUL in quoted string");
		c->pos++;
		if (esc) {
			if (ch != '"' && ch != '\\')
				return p_fail(c, IMAP_ERR_SYNTAX, "Invalid escape \\%c in quoted string",
					      ch);
			esc = false;
			n++;
		} else if (ch == '\\') {
			esc = true;
		} else if (ch == '"') {
			break;
		} else {
			n++;
		}
	}
	char *s = imap_arena_alloc(c->a, n + 1);
	if (s == NULL)
		return p_nomem(c);
	size_t o = 0;
	for (size_t i = start; i < c->pos - 1; i++) {
		if (c->buf[i] == '\\')
			i++;
		s[o++] = c->buf[i];
	}
	s[o] = '\0';
	/* RFC 6855 3: after ENABLE UTF8=ACCEPT a quoted string may carry
	 * UTF-8, and only valid UTF-8 */
	if (c->lim->utf8_accept && !imap_utf8_valid(s, o))
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid UTF-8 in quoted string in %s", what);
	out->s = s;
	out->len = o;
	return 0;
}

/* A literal at pos ('{' or '~{').  big: this may be the APPEND message
 * (max_append_literal).  Sets the data span; *lit8_r for "~{". */
static int p_literal_span(struct pctx *c, const char *what, bool big, bool lit8_ok,
			  const char **data_r, size_t *len_r, bool *lit8_r)
{
	bool lit8 = false;

	if (p_peek(c) == '~') {
		if (!lit8_ok)
			return p_fail(c, IMAP_ERR_SYNTAX, "literal8 not allowed in %s", what);
		lit8 = true;
		c->pos++;
	}
	if (p_char(c, '{', what) < 0)
		return -1;
	uint64_t n = 0;
	size_t digits = 0;
	while (p_peek(c) >= '0' && p_peek(c) <= '9') {
		if (n > (UINT64_MAX - 9) / 10)
			return p_fail(c, IMAP_ERR_LITERAL_TOO_BIG, "Literal too big");
		n = n * 10 + (uint64_t)(c->buf[c->pos] - '0');
		c->pos++;
		digits++;
	}
	p_opt_char(c, '+');
	if (digits == 0 || p_peek(c) != '}')
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid literal in %s", what);
	c->pos++;
	if (c->pos < c->len && c->buf[c->pos] == '\r')
		c->pos++;
	if (c->pos >= c->len || c->buf[c->pos] != '\n')
		return p_fail(c, IMAP_ERR_SYNTAX, "Missing line end after literal in %s", what);
	c->pos++;
	uint64_t limit = c->lim->max_literal;
	bool message = false;
	if (big && !c->big_literal_used && n > limit) {
		limit = c->lim->max_append_literal;
		message = true;
	}
	if (n > limit) {
		p_fail(c, IMAP_ERR_LITERAL_TOO_BIG, big ? "Message too big" : "Literal too big");
		if (big) {
			c->err->no = true;
			c->err->resp_code = "TOOBIG";
		}
		return -1;
	}
	if (n > c->len - c->pos)
		return p_fail(c, IMAP_ERR_SYNTAX, "Literal data missing in %s", what);
	if (message)
		c->big_literal_used = true;
	*data_r = c->buf + c->pos;
	*len_r = (size_t)n;
	c->pos += (size_t)n;
	if (lit8_r != NULL)
		*lit8_r = lit8;
	return 0;
}

static int p_literal_str(struct pctx *c, const char *what, struct imap_str *out)
{
	const char *d;
	size_t n;

	if (p_literal_span(c, what, false, false, &d, &n, NULL) < 0)
		return -1;
	if (memchr(d, '\0', n) != NULL)
		return p_fail(c, IMAP_ERR_SYNTAX, "NUL in literal");
	return p_dup(c, d, n, out);
}

int p_string(struct pctx *c, const char *what, struct imap_str *out)
{
	int ch = p_peek(c);

	if (ch == '"')
		return p_quoted(c, what, out);
	if (ch == '{')
		return p_literal_str(c, what, out);
	if (ch < 0)
		return p_fail(c, IMAP_ERR_SYNTAX, "Missing %s", what);
	return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s: expected a string", what);
}

int p_astring(struct pctx *c, const char *what, struct imap_str *out)
{
	int ch = p_peek(c);

	if (ch == '"' || ch == '{')
		return p_string(c, what, out);
	const char *p;
	size_t n;
	if (p_atom(c, what, true, &p, &n) < 0)
		return -1;
	return p_dup(c, p, n, out);
}

int p_nstring(struct pctx *c, const char *what, struct imap_str *out, bool *nil_r)
{
	int ch = p_peek(c);

	*nil_r = false;
	if (ch == '"' || ch == '{')
		return p_string(c, what, out);
	const char *p;
	size_t n;
	if (p_atom(c, what, false, &p, &n) < 0)
		return -1;
	if (!p_word_eq(p, n, "NIL"))
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s: expected a string or NIL", what);
	*nil_r = true;
	out->s = "";
	out->len = 0;
	return 0;
}

static int p_digits(struct pctx *c, const char *what, uint64_t max, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t start = c->pos;

	while (p_peek(c) >= '0' && p_peek(c) <= '9') {
		unsigned d = (unsigned)(c->buf[c->pos] - '0');
		if (v > (max - d) / 10)
			return p_fail(c, IMAP_ERR_SYNTAX, "Number too large in %s", what);
		v = v * 10 + d;
		c->pos++;
	}
	if (c->pos == start) {
		if (p_peek(c) < 0)
			return p_fail(c, IMAP_ERR_SYNTAX, "Missing %s", what);
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s: expected a number", what);
	}
	if (atom_char(p_peek(c), false))
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s: expected a number", what);
	*v_r = v;
	return 0;
}

int p_number(struct pctx *c, const char *what, uint32_t *v_r)
{
	uint64_t v;

	if (p_digits(c, what, UINT32_MAX, &v) < 0)
		return -1;
	*v_r = (uint32_t)v;
	return 0;
}

int p_nz_number(struct pctx *c, const char *what, uint32_t *v_r)
{
	if (p_number(c, what, v_r) < 0)
		return -1;
	if (*v_r == 0)
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s: must not be 0", what);
	return 0;
}

int p_number64(struct pctx *c, const char *what, bool zero_ok, uint64_t *v_r)
{
	if (p_digits(c, what, INT64_MAX, v_r) < 0)
		return -1;
	if (*v_r == 0 && !zero_ok)
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s: must not be 0", what);
	return 0;
}

int p_seqset(struct pctx *c, const struct imap_seqset **set_r)
{
	size_t n = imap_seqset_span(c->buf + c->pos, c->len - c->pos);
	const char *error = NULL;

	if (n == 0) {
		if (p_peek(c) < 0)
			return p_fail(c, IMAP_ERR_SYNTAX, "Missing sequence set");
		return p_fail(c, IMAP_ERR_BAD_SEQSET, "Invalid sequence set");
	}
	if (atom_char(p_peek(&(struct pctx){ .buf = c->buf, .len = c->len, .pos = c->pos + n }),
		      false))
		return p_fail(c, IMAP_ERR_BAD_SEQSET, "Invalid sequence set");
	struct imap_seqset *s = imap_seqset_parse(c->buf + c->pos, n, c->a, &error);
	if (s == NULL) {
		if (strcmp(error, "Out of memory") == 0)
			return p_nomem(c);
		return p_fail(c, IMAP_ERR_BAD_SEQSET, "%s", error);
	}
	c->pos += n;
	*set_r = s;
	return 0;
}

void imap_mailbox_normalize(char *name, size_t len)
{
	if (len >= 5 && strncasecmp(name, "INBOX", 5) == 0 && (len == 5 || name[5] == '/'))
		memcpy(name, "INBOX", 5);
}

/* Net-Unicode (RFC 5198 2, as RFC 6855 3 asks of mailbox names): no C0
 * or C1 control, no DEL, no U+2028 LINE / U+2029 PARAGRAPH SEPARATOR.
 * name is valid UTF-8. */
static bool name_chars_ok(const char *name, size_t len)
{
	const unsigned char *p = (const unsigned char *)name;

	for (size_t i = 0; i < len; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
		if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
			return false;	/* U+0080..U+009F */
		if (p[i] == 0xe2 && i + 2 < len && p[i + 1] == 0x80 &&
		    (p[i + 2] == 0xa8 || p[i + 2] == 0xa9))
			return false;	/* U+2028, U+2029 */
	}
	return true;
}

/* Decode a mailbox name or list pattern held in *s (arena memory). */
static int decode_mailbox(struct pctx *c, struct imap_str *s, bool normalize)
{
	if (c->lim->utf8_accept) {
		if (!imap_utf8_valid(s->s, s->len))
			return p_fail(c, IMAP_ERR_BAD_MAILBOX, "Mailbox name is not valid UTF-8");
	} else {
		size_t cap = IMAP_UTF7_DECODED_MAX(s->len) + 1;
		char *out = imap_arena_alloc(c->a, cap);
		size_t olen;
		if (out == NULL)
			return p_nomem(c);
		if (imap_utf7_decode(s->s, s->len, out, cap, &olen) < 0)
			return p_fail(c, IMAP_ERR_BAD_MAILBOX,
				      "Mailbox name is not valid modified UTF-7");
		s->s = out;
		s->len = olen;
	}
	if (!name_chars_ok(s->s, s->len))
		return p_fail(c, IMAP_ERR_BAD_MAILBOX,
			      "Mailbox name contains a control character or line separator");
	if (normalize)
		imap_mailbox_normalize((char *)s->s, s->len);
	return 0;
}

int p_mailbox(struct pctx *c, const char *what, struct imap_str *out)
{
	if (p_astring(c, what, out) < 0)
		return -1;
	return decode_mailbox(c, out, true);
}

/* list-mailbox: 1*list-char / string (list-char adds '%', '*', ']'). */
static int p_list_mailbox(struct pctx *c, const char *what, struct imap_str *out)
{
	int ch = p_peek(c);

	if (ch == '"' || ch == '{') {
		if (p_string(c, what, out) < 0)
			return -1;
	} else {
		size_t start = c->pos;
		while (atom_char(p_peek(c), true) || p_peek(c) == '%' || p_peek(c) == '*')
			c->pos++;
		if (c->pos == start) {
			if (p_peek(c) < 0)
				return p_fail(c, IMAP_ERR_SYNTAX, "Missing %s", what);
			return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s", what);
		}
		if (p_dup(c, c->buf + start, c->pos - start, out) < 0)
			return -1;
	}
	return decode_mailbox(c, out, false);
}

int p_date(struct pctx *c, const char *what, int32_t *day_r)
{
	const char *p;
	size_t n;
	struct imap_str q;

	if (p_peek(c) == '"') {
		if (p_quoted(c, what, &q) < 0)
			return -1;
		p = q.s;
		n = q.len;
	} else if (p_atom(c, what, false, &p, &n) < 0) {
		return -1;
	}
	if (imap_parse_date(p, n, day_r) < 0)
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid %s: expected d-Mon-yyyy", what);
	return 0;
}

/* "(" ... ")" list walker: calls item() for each element; empty lists
 * allowed if empty_ok. */
static int p_list(struct pctx *c, const char *what, bool empty_ok,
		  int (*item)(struct pctx *c, void *arg), void *arg)
{
	if (p_char(c, '(', what) < 0 || p_enter(c) < 0)
		return -1;
	if (p_opt_char(c, ')')) {
		p_leave(c);
		if (!empty_ok)
			return p_fail(c, IMAP_ERR_SYNTAX, "Empty %s", what);
		return 0;
	}
	for (;;) {
		if (item(c, arg) < 0)
			return -1;
		if (p_opt_char(c, ')'))
			break;
		if (p_peek(c) != ' ')
			return p_fail(c, IMAP_ERR_SYNTAX, "Missing ')' in %s", what);
		c->pos++;
	}
	p_leave(c);
	return 0;
}

/* A growable array in the arena (doubling; old storage is abandoned, the
 * total stays linear). */
struct vec {
	void *v;
	size_t n, cap, elem;
};

static void *vec_push(struct pctx *c, struct vec *v)
{
	if (v->n == v->cap) {
		size_t ncap = v->cap ? v->cap * 2 : 8;
		void *nv = imap_arena_alloc(c->a, ncap * v->elem);
		if (nv == NULL) {
			p_nomem(c);
			return NULL;
		}
		if (v->n > 0)
			memcpy(nv, v->v, v->n * v->elem);
		v->v = nv;
		v->cap = ncap;
	}
	return (char *)v->v + v->n++ * v->elem;
}

/* ---- flags ------------------------------------------------------------- */

struct flag_acc {
	uint32_t system;
	struct vec kw;		/* struct imap_str */
};

static const struct {
	const char *name;
	uint32_t bit;
} sys_flags[] = {
	{ "\\Seen", IMAP_FLAG_SEEN },	    { "\\Answered", IMAP_FLAG_ANSWERED },
	{ "\\Flagged", IMAP_FLAG_FLAGGED }, { "\\Deleted", IMAP_FLAG_DELETED },
	{ "\\Draft", IMAP_FLAG_DRAFT },
};

static int p_flag(struct pctx *c, void *arg)
{
	struct flag_acc *f = arg;
	size_t start = c->pos;
	const char *p;
	size_t n;

	if (p_opt_char(c, '\\')) {
		if (p_atom(c, "flag", false, &p, &n) < 0)
			return -1;
		n = c->pos - start;
		p = c->buf + start;
		for (size_t i = 0; i < sizeof(sys_flags) / sizeof(sys_flags[0]); i++)
			if (p_word_eq(p, n, sys_flags[i].name)) {
				f->system |= sys_flags[i].bit;
				return 0;
			}
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid system flag %.*s",
			      (int)(n > 40 ? 40 : n), p);
	}
	if (p_atom(c, "flag", false, &p, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return p_fail(c, IMAP_ERR_SYNTAX, "Invalid keyword: not US-ASCII");
	struct imap_str *k = vec_push(c, &f->kw);
	if (k == NULL)
		return -1;
	return p_dup(c, p, n, k);
}

struct kw_ix {
	const struct imap_str *s;
	size_t i;
};

static int kw_cmp(const void *a, const void *b)
{
	const struct kw_ix *x = a, *y = b;
	int r = strcasecmp(x->s->s, y->s->s);

	if (r != 0)
		return r;
	return x->i < y->i ? -1 : (x->i > y->i);
}

/* Deduplicate keywords case-insensitively, first spelling and order kept,
 * in O(n log n). */
static int finish_flags(struct pctx *c, struct flag_acc *f, struct imap_flags *out)
{
	struct imap_str *kw = f->kw.v;
	size_t n = f->kw.n;

	out->system = f->system;
	out->keywords = kw;
	out->n_keywords = n;
	if (n < 2)
		return 0;
	struct kw_ix *ix = imap_arena_alloc(c->a, n * sizeof(*ix));
	bool *drop = imap_arena_zalloc(c->a, n * sizeof(*drop));
	if (ix == NULL || drop == NULL)
		return p_nomem(c);
	for (size_t i = 0; i < n; i++) {
		ix[i].s = &kw[i];
		ix[i].i = i;
	}
	qsort(ix, n, sizeof(*ix), kw_cmp);
	for (size_t i = 1; i < n; i++)
		if (strcasecmp(ix[i].s->s, ix[i - 1].s->s) == 0)
			drop[ix[i].i] = true;
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (!drop[i])
			kw[m++] = kw[i];
	out->n_keywords = m;
	return 0;
}

/* "(" [flag *(SP flag)] ")" */
static int p_flag_list(struct pctx *c, struct imap_flags *out)
{
	struct flag_acc f = { .kw = { .elem = sizeof(struct imap_str) } };

	if (p_list(c, "flag list", true, p_flag, &f) < 0)
		return -1;
	return finish_flags(c, &f, out);
}

/* ---- commands ---------------------------------------------------------- */

static int cmd_noargs(struct pctx *c)
{
	return p_end(c);
}

static int cmd_authenticate(struct pctx *c)
{
	struct imap_args_auth *a = &c->cmd->u.auth;
	const char *p;
	size_t n;

	if (p_sp(c, "SASL mechanism") < 0 || p_atom(c, "SASL mechanism", false, &p, &n) < 0 ||
	    p_dup(c, p, n, &a->mech) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (a->mech.s[i] >= 'a' && a->mech.s[i] <= 'z')
			((char *)a->mech.s)[i] = (char)(a->mech.s[i] - 32);
	if (p_at_end(c))
		return 0;
	if (p_sp(c, "initial response") < 0 || p_atom(c, "initial response", false, &p, &n) < 0)
		return -1;
	a->has_ir = true;
	if (n == 1 && p[0] == '=') {
		a->ir.s = "";
		a->ir.len = 0;
	} else {
		for (size_t i = 0; i < n; i++) {
			char ch = p[i];
			if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			      (ch >= '0' && ch <= '9') || ch == '+' || ch == '/' || ch == '='))
				return p_fail(c, IMAP_ERR_SYNTAX,
					      "Invalid initial response: not base64");
		}
		if (p_dup(c, p, n, &a->ir) < 0)
			return -1;
	}
	return p_end(c);
}

static int cmd_login(struct pctx *c)
{
	struct imap_args_login *a = &c->cmd->u.login;

	if (p_sp(c, "user name") < 0 || p_astring(c, "user name", &a->user) < 0 ||
	    p_sp(c, "password") < 0 || p_astring(c, "password", &a->pass) < 0)
		return -1;
	return p_end(c);
}

static int cmd_mailbox(struct pctx *c)
{
	if (p_sp(c, "mailbox name") < 0 ||
	    p_mailbox(c, "mailbox name", &c->cmd->u.mailbox.mailbox) < 0)
		return -1;
	return p_end(c);
}

static int p_seqset_list_item(struct pctx *c, const struct imap_seqset **s)
{
	return p_seqset(c, s);
}

/* QRESYNC (uidvalidity modseq [known-uids] [(seqs uids)]) */
static int p_qresync(struct pctx *c, struct imap_args_select *s)
{
	const char *what = "QRESYNC parameters";

	if (p_char(c, '(', what) < 0 || p_enter(c) < 0)
		return -1;
	if (p_nz_number(c, "QRESYNC UIDVALIDITY", &s->uidvalidity) < 0 ||
	    p_sp(c, "QRESYNC modseq") < 0 || p_number64(c, "QRESYNC modseq", false, &s->modseq) < 0)
		return -1;
	if (p_opt_char(c, ' ')) {
		if (p_peek(c) != '(' && p_seqset_list_item(c, &s->known_uids) < 0)
			return -1;
		if (s->known_uids != NULL && p_opt_char(c, ' ') && p_peek(c) != '(')
			return p_fail(c, IMAP_ERR_SYNTAX, "Missing '(' in QRESYNC sequence match data");
		if (p_peek(c) == '(') {
			c->pos++;
			if (p_enter(c) < 0 || p_seqset(c, &s->match_seqs) < 0 ||
			    p_sp(c, "known UID set") < 0 || p_seqset(c, &s->match_uids) < 0 ||
			    p_char(c, ')', "QRESYNC sequence match data") < 0)
				return -1;
			p_leave(c);
			if (imap_seqset_count(s->match_seqs, UINT32_MAX) !=
			    imap_seqset_count(s->match_uids, UINT32_MAX))
				return p_fail(c, IMAP_ERR_SYNTAX,
					      "QRESYNC sequence match data sets differ in size");
		}
	}
	if (p_char(c, ')', what) < 0)
		return -1;
	p_leave(c);
	return 0;
}

static int p_select_param(struct pctx *c, void *arg)
{
	struct imap_args_select *s = arg;
	const char *p;
	size_t n;

	if (p_atom(c, "SELECT parameter", false, &p, &n) < 0)
		return -1;
	if (p_word_eq(p, n, "CONDSTORE")) {
		s->condstore = true;
		return 0;
	}
	if (p_word_eq(p, n, "QRESYNC")) {
		if (s->qresync)
			return p_fail(c, IMAP_ERR_SYNTAX, "QRESYNC given twice");
		s->qresync = true;
		s->condstore = true;
		if (p_sp(c, "QRESYNC parameters") < 0)
			return -1;
		return p_qresync(c, s);
	}
	return p_fail(c, IMAP_ERR_SYNTAX, "Unknown SELECT parameter %.*s", (int)(n > 40 ? 40 : n),
		      p);
}

static int cmd_select(struct pctx *c)
{
	struct imap_args_select *s = &c->cmd->u.select;

	if (p_sp(c, "mailbox name") < 0 || p_mailbox(c, "mailbox name", &s->mailbox) < 0)
		return -1;
	if (p_at_end(c))
		return 0;
	if (p_sp(c, "SELECT parameters") < 0 ||
	    p_list(c, "SELECT parameters", true, p_select_param, s) < 0)
		return -1;
	return p_end(c);
}

static const struct {
	const char *name;
	uint32_t bit;
} su_attrs[] = {
	{ "\\Sent", IMAP_SU_SENT },	{ "\\Drafts", IMAP_SU_DRAFTS }, { "\\Trash", IMAP_SU_TRASH },
	{ "\\Junk", IMAP_SU_JUNK },	{ "\\Archive", IMAP_SU_ARCHIVE }, { "\\All", IMAP_SU_ALL },
	{ "\\Flagged", IMAP_SU_FLAGGED },
};

static int p_use_attr(struct pctx *c, void *arg)
{
	uint32_t *bits = arg;
	size_t start = c->pos;
	const char *p;
	size_t n;

	if (p_char(c, '\\', "USE attribute") < 0 || p_atom(c, "USE attribute", false, &p, &n) < 0)
		return -1;
	p = c->buf + start;
	n = c->pos - start;
	for (size_t i = 0; i < sizeof(su_attrs) / sizeof(su_attrs[0]); i++)
		if (p_word_eq(p, n, su_attrs[i].name)) {
			*bits |= su_attrs[i].bit;
			return 0;
		}
	return p_fail(c, IMAP_ERR_USEATTR, "Unsupported special-use attribute %.*s",
		      (int)(n > 40 ? 40 : n), p);
}

static int p_create_param(struct pctx *c, void *arg)
{
	const char *p;
	size_t n;

	if (p_atom(c, "CREATE parameter", false, &p, &n) < 0)
		return -1;
	if (!p_word_eq(p, n, "USE"))
		return p_fail(c, IMAP_ERR_SYNTAX, "Unknown CREATE parameter %.*s",
			      (int)(n > 40 ? 40 : n), p);
	if (p_sp(c, "USE attributes") < 0)
		return -1;
	return p_list(c, "USE attributes", true, p_use_attr, arg);
}

static int cmd_create(struct pctx *c)
{
	struct imap_args_create *a = &c->cmd->u.create;

	if (p_sp(c, "mailbox name") < 0 || p_mailbox(c, "mailbox name", &a->mailbox) < 0)
		return -1;
	if (p_at_end(c))
		return 0;
	if (p_sp(c, "CREATE parameters") < 0 ||
	    p_list(c, "CREATE parameters", false, p_create_param, &a->special_use) < 0)
		return -1;
	return p_end(c);
}

static int cmd_rename(struct pctx *c)
{
	struct imap_args_rename *a = &c->cmd->u.rename;

	if (p_sp(c, "existing mailbox name") < 0 ||
	    p_mailbox(c, "existing mailbox name", &a->from) < 0 ||
	    p_sp(c, "new mailbox name") < 0 || p_mailbox(c, "new mailbox name", &a->to) < 0)
		return -1;
	return p_end(c);
}

static const struct {
	const char *name;
	uint32_t bit;
} status_items[] = {
	{ "MESSAGES", IMAP_STATUS_MESSAGES },	  { "RECENT", IMAP_STATUS_RECENT },
	{ "UIDNEXT", IMAP_STATUS_UIDNEXT },	  { "UIDVALIDITY", IMAP_STATUS_UIDVALIDITY },
	{ "UNSEEN", IMAP_STATUS_UNSEEN },	  { "HIGHESTMODSEQ", IMAP_STATUS_HIGHESTMODSEQ },
	{ "SIZE", IMAP_STATUS_SIZE },
};

static int p_status_item(struct pctx *c, void *arg)
{
	uint32_t *items = arg;
	const char *p;
	size_t n;

	if (p_atom(c, "STATUS item", false, &p, &n) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(status_items) / sizeof(status_items[0]); i++)
		if (p_word_eq(p, n, status_items[i].name)) {
			*items |= status_items[i].bit;
			return 0;
		}
	return p_fail(c, IMAP_ERR_SYNTAX, "Unknown STATUS item %.*s", (int)(n > 40 ? 40 : n), p);
}

static int cmd_status(struct pctx *c)
{
	struct imap_args_status *a = &c->cmd->u.status;

	if (p_sp(c, "mailbox name") < 0 || p_mailbox(c, "mailbox name", &a->mailbox) < 0 ||
	    p_sp(c, "STATUS items") < 0 ||
	    p_list(c, "STATUS items", false, p_status_item, &a->items) < 0)
		return -1;
	return p_end(c);
}

/* LIST ------------------------------------------------------------------ */

static int p_list_select_opt(struct pctx *c, void *arg)
{
	uint32_t *o = arg;
	const char *p;
	size_t n;

	if (p_atom(c, "LIST selection option", false, &p, &n) < 0)
		return -1;
	if (p_word_eq(p, n, "SUBSCRIBED"))
		*o |= IMAP_LIST_SEL_SUBSCRIBED;
	else if (p_word_eq(p, n, "REMOTE"))
		*o |= IMAP_LIST_SEL_REMOTE;
	else if (p_word_eq(p, n, "RECURSIVEMATCH"))
		*o |= IMAP_LIST_SEL_RECURSIVEMATCH;
	else if (p_word_eq(p, n, "SPECIAL-USE"))
		*o |= IMAP_LIST_SEL_SPECIAL_USE;
	else
		return p_fail(c, IMAP_ERR_SYNTAX, "Unknown LIST selection option %.*s",
			      (int)(n > 40 ? 40 : n), p);
	return 0;
}

static int p_list_return_opt(struct pctx *c, void *arg)
{
	struct imap_args_list *l = arg;
	const char *p;
	size_t n;

	if (p_atom(c, "LIST return option", false, &p, &n) < 0)
		return -1;
	if (p_word_eq(p, n, "SUBSCRIBED")) {
		l->return_opts |= IMAP_LIST_RET_SUBSCRIBED;
	} else if (p_word_eq(p, n, "CHILDREN")) {
		l->return_opts |= IMAP_LIST_RET_CHILDREN;
	} else if (p_word_eq(p, n, "SPECIAL-USE")) {
		l->return_opts |= IMAP_LIST_RET_SPECIAL_USE;
	} else if (p_word_eq(p, n, "STATUS")) {
		l->return_opts |= IMAP_LIST_RET_STATUS;
		if (p_sp(c, "LIST STATUS items") < 0 ||
		    p_list(c, "LIST STATUS items", false, p_status_item, &l->status_items) < 0)
			return -1;
	} else {
		return p_fail(c, IMAP_ERR_SYNTAX, "Unknown LIST return option %.*s",
			      (int)(n > 40 ? 40 : n), p);
	}
	return 0;
}

static int p_pattern_item(struct pctx *c, void *arg)
{
	struct imap_str *s = vec_push(c, arg);

	if (s == NULL)
		return -1;
	return p_list_mailbox(c, "mailbox pattern", s);
}

static int cmd_list(struct pctx *c)
{
	struct imap_args_list *l = &c->cmd->u.list;
	struct vec pats = { .elem = sizeof(struct imap_str) };
	bool lsub = c->cmd->id == IMAP_CMD_LSUB;

	if (p_sp(c, "reference name") < 0)
		return -1;
	if (!lsub && p_peek(c) == '(') {
		l->extended = true;
		if (p_list(c, "LIST selection options", true, p_list_select_opt,
			   &l->select_opts) < 0 ||
		    p_sp(c, "reference name") < 0)
			return -1;
		if (l->select_opts == IMAP_LIST_SEL_RECURSIVEMATCH)
			return p_fail(c, IMAP_ERR_SYNTAX,
				      "RECURSIVEMATCH needs another selection option");
	}
	if (p_astring(c, "reference name", &l->ref) < 0 || decode_mailbox(c, &l->ref, false) < 0 ||
	    p_sp(c, "mailbox pattern") < 0)
		return -1;
	if (!lsub && p_peek(c) == '(') {
		l->extended = true;
		if (p_list(c, "mailbox patterns", false, p_pattern_item, &pats) < 0)
			return -1;
	} else if (p_pattern_item(c, &pats) < 0) {
		return -1;
	}
	l->patterns = pats.v;
	l->n_patterns = pats.n;
	if (!lsub && p_peek(c) == ' ') {
		const char *p;
		size_t n;
		c->pos++;
		if (p_atom(c, "RETURN", false, &p, &n) < 0)
			return -1;
		if (!p_word_eq(p, n, "RETURN"))
			return p_fail(c, IMAP_ERR_SYNTAX, "Expected RETURN after LIST pattern");
		l->extended = true;
		if (p_sp(c, "LIST return options") < 0 ||
		    p_list(c, "LIST return options", true, p_list_return_opt, l) < 0)
			return -1;
	}
	return p_end(c);
}

/* APPEND ---------------------------------------------------------------- */

static int cmd_append(struct pctx *c)
{
	struct imap_args_append *a = &c->cmd->u.append;

	if (p_sp(c, "mailbox name") < 0 || p_mailbox(c, "mailbox name", &a->mailbox) < 0 ||
	    p_sp(c, "message literal") < 0)
		return -1;
	if (p_peek(c) == '(') {
		if (p_flag_list(c, &a->flags) < 0 || p_sp(c, "message literal") < 0)
			return -1;
	}
	if (p_peek(c) == '"') {
		struct imap_str d;
		if (p_quoted(c, "APPEND date", &d) < 0)
			return -1;
		if (imap_parse_date_time(d.s, d.len, &a->date, &a->date_tz) < 0)
			return p_fail(c, IMAP_ERR_SYNTAX,
				      "Invalid APPEND date-time: expected \"dd-Mon-yyyy hh:mm:ss +zzzz\"");
		a->has_date = true;
		if (p_sp(c, "message literal") < 0)
			return -1;
	}
	int ch = p_peek(c);
	if (ch == 'U' || ch == 'u') {
		/* RFC 6855 4: append-data =/ "UTF8" SP "(" literal8 ")" */
		const char *p;
		size_t n;
		if (p_atom(c, "message literal", false, &p, &n) < 0)
			return -1;
		if (!p_word_eq(p, n, "UTF8"))
			return p_fail(c, IMAP_ERR_SYNTAX, "APPEND message must be a literal");
		if (!c->lim->utf8_accept)
			return p_fail(c, IMAP_ERR_SYNTAX,
				      "APPEND UTF8 needs ENABLE UTF8=ACCEPT first");
		if (p_sp(c, "UTF8 message literal") < 0 ||
		    p_char(c, '(', "APPEND UTF8 data") < 0)
			return -1;
		if (p_peek(c) != '~')
			return p_fail(c, IMAP_ERR_SYNTAX,
				      "APPEND UTF8 message must be a literal8 (~{n})");
		if (p_literal_span(c, "APPEND message", true, true, &a->msg, &a->msg_len,
				   &a->literal8) < 0 ||
		    p_char(c, ')', "APPEND UTF8 data") < 0)
			return -1;
		a->utf8 = true;
	} else if (ch == '{' || ch == '~') {
		if (p_literal_span(c, "APPEND message", true, true, &a->msg, &a->msg_len,
				   &a->literal8) < 0)
			return -1;
	} else if (ch < 0) {
		return p_fail(c, IMAP_ERR_SYNTAX, "Missing message literal");
	} else {
		return p_fail(c, IMAP_ERR_SYNTAX, "APPEND message must be a literal");
	}
	if (!p_at_end(c))
		return p_fail(c, IMAP_ERR_SYNTAX, "Only one message per APPEND is supported");
	return 0;
}

/* STORE ----------------------------------------------------------------- */

static int p_store_modifier(struct pctx *c, void *arg)
{
	struct imap_args_store *s = arg;
	const char *p;
	size_t n;

	if (p_atom(c, "STORE modifier", false, &p, &n) < 0)
		return -1;
	if (!p_word_eq(p, n, "UNCHANGEDSINCE"))
		return p_fail(c, IMAP_ERR_SYNTAX, "Unknown STORE modifier %.*s",
			      (int)(n > 40 ? 40 : n), p);
	if (s->has_unchangedsince)
		return p_fail(c, IMAP_ERR_SYNTAX, "UNCHANGEDSINCE given twice");
	s->has_unchangedsince = true;
	if (p_sp(c, "UNCHANGEDSINCE value") < 0)
		return -1;
	return p_number64(c, "UNCHANGEDSINCE value", true, &s->unchangedsince);
}

static int cmd_store(struct pctx *c)
{
	struct imap_args_store *s = &c->cmd->u.store;
	const char *p;
	size_t n;

	if (p_sp(c, "sequence set") < 0 || p_seqset(c, &s->set) < 0 ||
	    p_sp(c, "STORE data item") < 0)
		return -1;
	if (p_peek(c) == '(') {
		if (p_list(c, "STORE modifiers", false, p_store_modifier, s) < 0 ||
		    p_sp(c, "STORE data item") < 0)
			return -1;
	}
	s->mode = IMAP_STORE_SET;
	if (p_opt_char(c, '+'))
		s->mode = IMAP_STORE_ADD;
	else if (p_opt_char(c, '-'))
		s->mode = IMAP_STORE_REMOVE;
	if (p_atom(c, "STORE data item", false, &p, &n) < 0)
		return -1;
	if (p_word_eq(p, n, "FLAGS.SILENT"))
		s->silent = true;
	else if (!p_word_eq(p, n, "FLAGS"))
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid STORE data item %.*s",
			      (int)(n > 40 ? 40 : n), p);
	if (p_sp(c, "flags") < 0)
		return -1;
	if (p_peek(c) == '(') {
		if (p_flag_list(c, &s->flags) < 0)
			return -1;
	} else {
		struct flag_acc f = { .kw = { .elem = sizeof(struct imap_str) } };
		for (;;) {
			if (p_flag(c, &f) < 0)
				return -1;
			if (p_peek(c) != ' ')
				break;
			c->pos++;
		}
		if (finish_flags(c, &f, &s->flags) < 0)
			return -1;
	}
	return p_end(c);
}

static int cmd_copy(struct pctx *c)
{
	struct imap_args_copy *a = &c->cmd->u.copy;

	if (p_sp(c, "sequence set") < 0 || p_seqset(c, &a->set) < 0 ||
	    p_sp(c, "mailbox name") < 0 || p_mailbox(c, "mailbox name", &a->mailbox) < 0)
		return -1;
	return p_end(c);
}

static int cmd_expunge(struct pctx *c)
{
	if (!c->cmd->uid)
		return p_end(c);
	if (p_sp(c, "UID set") < 0 || p_seqset(c, &c->cmd->u.uid_expunge) < 0)
		return -1;
	return p_end(c);
}

static int cmd_fetch(struct pctx *c)
{
	return imap_parse_fetch_args(c);
}

static int cmd_search(struct pctx *c)
{
	return imap_parse_search_args(c);
}

/* ID -------------------------------------------------------------------- */

#define ID_MAX_PAIRS 30
#define ID_NAME_MAX 30
#define ID_VALUE_MAX 1024

static int p_id_pair(struct pctx *c, void *arg)
{
	struct vec *v = arg;
	struct imap_id_pair *pr;

	if (v->n >= ID_MAX_PAIRS)
		return p_fail(c, IMAP_ERR_SYNTAX, "Too many ID fields (at most %d)", ID_MAX_PAIRS);
	if ((pr = vec_push(c, v)) == NULL)
		return -1;
	if (p_string(c, "ID field name", &pr->name) < 0)
		return -1;
	if (pr->name.len > ID_NAME_MAX)
		return p_fail(c, IMAP_ERR_SYNTAX, "ID field name too long");
	if (p_sp(c, "ID field value") < 0 ||
	    p_nstring(c, "ID field value", &pr->value, &pr->value_nil) < 0)
		return -1;
	if (pr->value.len > ID_VALUE_MAX)
		return p_fail(c, IMAP_ERR_SYNTAX, "ID field value too long");
	return 0;
}

static int cmd_id(struct pctx *c)
{
	struct imap_args_id *a = &c->cmd->u.id;
	struct vec v = { .elem = sizeof(struct imap_id_pair) };

	if (p_sp(c, "ID parameters") < 0)
		return -1;
	if (p_peek(c) == '(') {
		if (p_list(c, "ID parameters", true, p_id_pair, &v) < 0)
			return -1;
		a->pairs = v.v;
		a->n_pairs = v.n;
	} else {
		const char *p;
		size_t n;
		if (p_atom(c, "ID parameters", false, &p, &n) < 0)
			return -1;
		if (!p_word_eq(p, n, "NIL"))
			return p_fail(c, IMAP_ERR_SYNTAX, "Invalid ID parameters: expected NIL or a list");
	}
	return p_end(c);
}

static void upcase(struct imap_str *s)
{
	char *p = (char *)s->s;

	for (size_t i = 0; i < s->len; i++)
		if (p[i] >= 'a' && p[i] <= 'z')
			p[i] = (char)(p[i] - 32);
}

static int cmd_enable(struct pctx *c)
{
	struct imap_args_enable *a = &c->cmd->u.enable;
	struct vec v = { .elem = sizeof(struct imap_str) };

	do {
		const char *p;
		size_t n;
		struct imap_str *s;
		if (p_sp(c, "capability") < 0 || p_atom(c, "capability", false, &p, &n) < 0 ||
		    (s = vec_push(c, &v)) == NULL || p_dup(c, p, n, s) < 0)
			return -1;
		upcase(s);
		if (strcmp(s->s, "CONDSTORE") == 0)
			a->known |= IMAP_ENABLE_CONDSTORE;
		else if (strcmp(s->s, "QRESYNC") == 0)
			a->known |= IMAP_ENABLE_QRESYNC;
		else if (strcmp(s->s, "UTF8=ACCEPT") == 0)
			a->known |= IMAP_ENABLE_UTF8_ACCEPT;
	} while (!p_at_end(c));
	a->caps = v.v;
	a->n_caps = v.n;
	return 0;
}

static int cmd_compress(struct pctx *c)
{
	struct imap_args_compress *a = &c->cmd->u.compress;
	const char *p;
	size_t n;

	if (p_sp(c, "compression mechanism") < 0 ||
	    p_atom(c, "compression mechanism", false, &p, &n) < 0 || p_dup(c, p, n, &a->mech) < 0)
		return -1;
	upcase(&a->mech);
	a->deflate = strcmp(a->mech.s, "DEFLATE") == 0;
	return p_end(c);
}

static int cmd_getquota(struct pctx *c)
{
	if (p_sp(c, "quota root") < 0 || p_astring(c, "quota root", &c->cmd->u.quota_root) < 0)
		return -1;
	return p_end(c);
}

static int (*const handlers[IMAP_CMD_COUNT])(struct pctx *c) = {
	[IMAP_CMD_CAPABILITY] = cmd_noargs,
	[IMAP_CMD_NOOP] = cmd_noargs,
	[IMAP_CMD_LOGOUT] = cmd_noargs,
	[IMAP_CMD_STARTTLS] = cmd_noargs,
	[IMAP_CMD_AUTHENTICATE] = cmd_authenticate,
	[IMAP_CMD_LOGIN] = cmd_login,
	[IMAP_CMD_SELECT] = cmd_select,
	[IMAP_CMD_EXAMINE] = cmd_select,
	[IMAP_CMD_CREATE] = cmd_create,
	[IMAP_CMD_DELETE] = cmd_mailbox,
	[IMAP_CMD_RENAME] = cmd_rename,
	[IMAP_CMD_SUBSCRIBE] = cmd_mailbox,
	[IMAP_CMD_UNSUBSCRIBE] = cmd_mailbox,
	[IMAP_CMD_LIST] = cmd_list,
	[IMAP_CMD_LSUB] = cmd_list,
	[IMAP_CMD_STATUS] = cmd_status,
	[IMAP_CMD_APPEND] = cmd_append,
	[IMAP_CMD_CHECK] = cmd_noargs,
	[IMAP_CMD_CLOSE] = cmd_noargs,
	[IMAP_CMD_UNSELECT] = cmd_noargs,
	[IMAP_CMD_EXPUNGE] = cmd_expunge,
	[IMAP_CMD_SEARCH] = cmd_search,
	[IMAP_CMD_FETCH] = cmd_fetch,
	[IMAP_CMD_STORE] = cmd_store,
	[IMAP_CMD_COPY] = cmd_copy,
	[IMAP_CMD_MOVE] = cmd_copy,
	[IMAP_CMD_IDLE] = cmd_noargs,
	[IMAP_CMD_NAMESPACE] = cmd_noargs,
	[IMAP_CMD_ID] = cmd_id,
	[IMAP_CMD_ENABLE] = cmd_enable,
	[IMAP_CMD_COMPRESS] = cmd_compress,
	[IMAP_CMD_GETQUOTAROOT] = cmd_mailbox,
	[IMAP_CMD_GETQUOTA] = cmd_getquota,
};

/* ---- command head ------------------------------------------------------ */

static bool tag_char(unsigned char ch)
{
	return ch < 0x80 && ch != '+' && atom_char(ch, true);
}

size_t imap_scan_tag(const char *buf, size_t len, char *tag)
{
	size_t n = 0;

	tag[0] = '\0';
	while (n < len && tag_char((unsigned char)buf[n]))
		n++;
	if (n == 0 || n > IMAP_TAG_MAX || (n < len && buf[n] != ' ' && buf[n] != '\r' &&
					   buf[n] != '\n'))
		return 0;
	memcpy(tag, buf, n);
	tag[n] = '\0';
	return n;
}

static bool lookup_cmd(const char *p, size_t n, enum imap_cmd_id *id_r)
{
	for (unsigned i = 0; i < IMAP_CMD_COUNT; i++)
		if (p_word_eq(p, n, cmd_names[i])) {
			*id_r = (enum imap_cmd_id)i;
			return true;
		}
	return false;
}

static size_t word_len(const char *p, size_t len)
{
	size_t n = 0;

	while (n < len && atom_char((unsigned char)p[n], false))
		n++;
	return n;
}

bool imap_scan_command(const char *buf, size_t len, enum imap_cmd_id *id_r, bool *uid_r)
{
	char tag[IMAP_TAG_MAX + 1];
	size_t t = imap_scan_tag(buf, len, tag);

	*uid_r = false;
	if (t == 0 || t >= len || buf[t] != ' ')
		return false;
	const char *p = buf + t + 1;
	size_t rest = len - t - 1;
	size_t n = word_len(p, rest);
	if (p_word_eq(p, n, "UID") && n < rest && p[n] == ' ') {
		*uid_r = true;
		p += n + 1;
		rest -= n + 1;
		n = word_len(p, rest);
	}
	return lookup_cmd(p, n, id_r) && (!*uid_r || uid_allowed(*id_r));
}

/* ---- entry points ------------------------------------------------------ */

static int parse_head(struct pctx *c)
{
	struct imap_command *cmd = c->cmd;
	size_t t = imap_scan_tag(c->buf, c->len, cmd->tag);
	const char *p;
	size_t n;

	if (t == 0) {
		size_t k = 0;
		while (k < c->len && tag_char((unsigned char)c->buf[k]))
			k++;
		if (k > IMAP_TAG_MAX)
			return p_fail(c, IMAP_ERR_SYNTAX, "Tag too long");
		return p_fail(c, IMAP_ERR_SYNTAX, k == 0 || p_at_end(c) ? "Missing or invalid tag"
								     : "Invalid tag");
	}
	memcpy(c->err->tag, cmd->tag, t + 1);
	c->pos = t;
	if (p_sp(c, "command name") < 0 || p_atom(c, "command name", false, &p, &n) < 0)
		return -1;
	if (p_word_eq(p, n, "UID")) {
		cmd->uid = true;
		c->err->uid = true;
		if (p_sp(c, "UID command") < 0 || p_atom(c, "UID command", false, &p, &n) < 0)
			return -1;
	}
	if (!lookup_cmd(p, n, &cmd->id)) {
		c->cmd = NULL;
		p_fail(c, IMAP_ERR_UNKNOWN_COMMAND, "Unknown command %s%.*s", cmd->uid ? "UID " : "",
		       (int)(n > 32 ? 32 : n), p);
		c->cmd = cmd;
		return -1;
	}
	c->err->cmd_known = true;
	c->err->cmd = (int)cmd->id;
	if (cmd->uid && !uid_allowed(cmd->id))
		return p_fail(c, IMAP_ERR_UNKNOWN_COMMAND, "Unknown command UID %s",
			      imap_cmd_name(cmd->id));
	return 0;
}

enum imap_err imap_parse_owned(char *buf, size_t len, const struct imap_limits *lim,
			       struct imap_command **cmd_r, struct imap_error *err_r)
{
	struct imap_arena *a = imap_arena_new(len < 256 ? 1024 : 4096);
	struct cmd_holder *h = a != NULL ? imap_arena_zalloc(a, sizeof(*h)) : NULL;

	*cmd_r = NULL;
	imap_error_set(err_r, IMAP_OK, "");
	if (h == NULL) {
		imap_error_set(err_r, IMAP_ERR_NOMEM, "Out of memory");
		imap_scan_tag(buf, len, err_r->tag);
		free(buf);
		imap_arena_destroy(&a);
		return IMAP_ERR_NOMEM;
	}
	h->raw = buf;
	h->cmd.arena = a;
	struct pctx c = {
		.buf = buf, .len = len, .lim = lim, .a = a, .cmd = &h->cmd, .err = err_r,
	};
	if (parse_head(&c) == 0)
		handlers[h->cmd.id](&c);
	if (c.failed) {
		struct imap_command *cmd = &h->cmd;
		imap_command_free(&cmd);
		return err_r->code;
	}
	*cmd_r = &h->cmd;
	return IMAP_OK;
}

enum imap_err imap_parse_command(const void *data, size_t len, const struct imap_limits *lim,
				 struct imap_command **cmd_r, struct imap_error *err_r)
{
	char *buf = malloc(len ? len : 1);

	if (buf == NULL) {
		*cmd_r = NULL;
		imap_error_set(err_r, IMAP_ERR_NOMEM, "Out of memory");
		imap_scan_tag(data, len, err_r->tag);
		return IMAP_ERR_NOMEM;
	}
	if (len > 0)
		memcpy(buf, data, len);
	return imap_parse_owned(buf, len, lim, cmd_r, err_r);
}

void imap_command_free(struct imap_command **cmdp)
{
	if (cmdp == NULL || *cmdp == NULL)
		return;
	struct cmd_holder *h = (struct cmd_holder *)*cmdp;	/* cmd is the first member */
	struct imap_arena *a = h->cmd.arena;
	free(h->raw);
	imap_arena_destroy(&a);
	*cmdp = NULL;
}
