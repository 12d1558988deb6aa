/*
 * bird_parse_reply.c - the parsers of BIRD's control-socket replies, without
 * I/O: show status, show protocols, show route ... count, enable/disable,
 * and the helpers they share.
 *
 * The reply parsers work on finished replies and copy what they keep into
 * fixed-size fields, with a precise error when a field does not fit.
 */
#include <stdlib.h>
#include <string.h>

#include "bird_parse.h"
#include "bird_parse_int.h"

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

		if (!bird_is_digit((unsigned char)s[i]))
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

		while (bird_is_digit((unsigned char)*s) && digits < 4) {
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
		if (!bird_is_digit((unsigned char)s[i]))
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

		while (i < t->len && bird_is_digit((unsigned char)t->p[i]))
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
