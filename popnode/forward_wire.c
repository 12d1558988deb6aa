/*
 * forward_wire.c - POST /v1/deliver headers and response lines, no I/O
 * (forward_wire.h).  Everything a peer sends is checked against the
 * grammar and the limits before it is used; nothing is copied unbounded.
 */
#include <stdio.h>
#include <string.h>

#include "directory.h"
#include "forward_wire.h"

static bool printable(unsigned char c)
{
	return c >= 0x20 && c <= 0x7e;
}

bool forward_valid_addr(const char *s, bool empty_ok)
{
	size_t len = strnlen(s, LMTP_ADDR_MAX + 1);

	if (len > LMTP_ADDR_MAX || (len == 0 && !empty_ok))
		return false;
	if (len > 0 && (s[0] == ' ' || s[len - 1] == ' '))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!printable((unsigned char)s[i]))
			return false;
	return true;
}

bool forward_valid_pop(const char *s)
{
	return dir_valid_pop(s);
}

/* Decimal, 1-20 digits, no sign, no leading zero, <= max. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *v)
{
	size_t len = strnlen(s, 21);
	uint64_t x = 0;

	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return false;
		d = (unsigned)(s[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
	}
	if (x > max)
		return false;
	*v = x;
	return true;
}

size_t forward_rcpt_hdr_bytes(const char *user, const char *addr)
{
	return sizeof(FORWARD_HDR_RCPT) - 1 + strlen(user) + 1 + strlen(addr);
}

static int parse_rcpt(const char *v, struct forward_hdr_rcpt *r)
{
	const char *sp = strchr(v, ' ');
	size_t ulen;

	if (sp == NULL)
		return -1;
	ulen = (size_t)(sp - v);
	if (ulen == 0 || ulen >= sizeof(r->user))
		return -1;
	memcpy(r->user, v, ulen);
	r->user[ulen] = '\0';
	if (!dir_valid_username(r->user) || !forward_valid_addr(sp + 1, false))
		return -1;
	memcpy(r->addr, sp + 1, strlen(sp + 1) + 1);
	return 0;
}

int forward_request_parse(const struct link_hdr *h, size_t n, size_t max_rcpts,
			  uint64_t max_size, struct forward_request *r, const char **err_r)
{
	bool have_from = false, have_via = false, have_date = false, have_len = false;
	size_t limit = max_rcpts < FORWARD_RCPTS_MAX ? max_rcpts : FORWARD_RCPTS_MAX;
	size_t rcpt_bytes = 0;
	uint64_t v;

	memset(r, 0, sizeof(*r));
#define BAD(msg)                                                                                   \
	do {                                                                                       \
		*err_r = (msg);                                                                    \
		memset(r, 0, sizeof(*r));                                                          \
		return 400;                                                                        \
	} while (0)
	for (size_t i = 0; i < n; i++) {
		const char *name = h[i].name, *val = h[i].value;

		if (strcmp(name, FORWARD_HDR_RCPT) == 0) {
			struct forward_hdr_rcpt *rc;

			if (r->n_rcpts >= limit)
				BAD("too many recipients");
			rc = &r->rcpts[r->n_rcpts];
			if (parse_rcpt(val, rc) < 0)
				BAD("malformed x-popnode-rcpt");
			for (size_t k = 0; k < r->n_rcpts; k++)
				if (strcmp(r->rcpts[k].user, rc->user) == 0)
					BAD("recipient user given twice");
			rcpt_bytes += forward_rcpt_hdr_bytes(rc->user, rc->addr);
			if (rcpt_bytes > FORWARD_RCPT_BYTES_MAX)
				BAD("recipient headers too long");
			r->n_rcpts++;
		} else if (strcmp(name, FORWARD_HDR_MAIL_FROM) == 0) {
			if (have_from)
				BAD("x-popnode-mail-from given twice");
			if (!forward_valid_addr(val, true))
				BAD("malformed x-popnode-mail-from");
			memcpy(r->mail_from, val, strlen(val) + 1);
			have_from = true;
		} else if (strcmp(name, FORWARD_HDR_VIA) == 0) {
			if (have_via)
				BAD("x-popnode-via given twice");
			if (!forward_valid_pop(val))
				BAD("malformed x-popnode-via");
			memcpy(r->via, val, strlen(val) + 1);
			have_via = true;
		} else if (strcmp(name, FORWARD_HDR_DATE) == 0) {
			if (have_date)
				BAD("x-popnode-internaldate given twice");
			if (!parse_u64(val, (uint64_t)FORWARD_DATE_MAX, &v))
				BAD("malformed x-popnode-internaldate");
			r->internaldate = (int64_t)v;
			have_date = true;
		} else if (strcmp(name, FORWARD_HDR_LENGTH) == 0) {
			if (have_len)
				BAD("content-length given twice");
			if (!parse_u64(val, UINT64_MAX, &v))
				BAD("malformed content-length");
			r->size = v;
			have_len = true;
		}
	}
	if (!have_from)
		BAD("x-popnode-mail-from missing");
	if (!have_via)
		BAD("x-popnode-via missing");
	if (!have_date)
		BAD("x-popnode-internaldate missing");
	if (!have_len)
		BAD("content-length missing");
	if (r->n_rcpts == 0)
		BAD("no x-popnode-rcpt");
#undef BAD
	if (r->size > max_size) {
		*err_r = "message too big";
		memset(r, 0, sizeof(*r));
		return 413;
	}
	*err_r = NULL;
	return 0;
}

/* ---- response lines ---- */

static bool valid_code(unsigned code)
{
	return code == 250 || (code >= 400 && code <= 599);
}

/* class "." 1*3digit "." 1*3digit, class matching code. */
static bool valid_enh(const char *e, size_t len, unsigned code)
{
	size_t i = 2, k;

	if (len < 5 || len >= FORWARD_ENH_MAX || e[0] != (char)('0' + code / 100) || e[1] != '.')
		return false;
	for (int part = 0; part < 2; part++) {
		for (k = 0; i < len && e[i] >= '0' && e[i] <= '9'; i++, k++)
			;
		if (k < 1 || k > 3)
			return false;
		if (part == 0) {
			if (i >= len || e[i] != '.')
				return false;
			i++;
		}
	}
	return i == len;
}

int forward_reply_format(char *buf, size_t size, const char *user, unsigned code,
			 const char *enh, const char *text)
{
	char t[FORWARD_TEXT_MAX + 1];
	size_t k = 0;
	int n;

	if (!dir_valid_username(user) || !valid_code(code) || !valid_enh(enh, strlen(enh), code))
		return -1;
	for (; text[k] != '\0' && k < FORWARD_TEXT_MAX; k++)
		t[k] = printable((unsigned char)text[k]) ? text[k] : '?';
	if (k == 0)
		t[k++] = '-';
	t[k] = '\0';
	n = snprintf(buf, size, "%s %u %s %s\r\n", user, code, enh, t);
	if (n < 0 || (size_t)n >= size)
		return -1;
	return n;
}

int forward_reply_parse(const char *line, size_t len, const char *user, struct forward_reply *r)
{
	size_t ulen = strlen(user), i, e0;
	unsigned code = 0;

	memset(r, 0, sizeof(*r));
	/* USER SP */
	if (len < ulen + 1 || memcmp(line, user, ulen) != 0 || line[ulen] != ' ')
		return -1;
	i = ulen + 1;
	/* CODE SP */
	if (len < i + 4 || line[i + 3] != ' ')
		return -1;
	for (size_t k = 0; k < 3; k++) {
		if (line[i + k] < '0' || line[i + k] > '9')
			return -1;
		code = code * 10 + (unsigned)(line[i + k] - '0');
	}
	if (!valid_code(code))
		return -1;
	i += 4;
	/* ENH SP */
	e0 = i;
	while (i < len && line[i] != ' ')
		i++;
	if (i >= len || !valid_enh(line + e0, i - e0, code))
		return -1;
	memcpy(r->enh, line + e0, i - e0);
	r->enh[i - e0] = '\0';
	i++;
	/* TEXT */
	if (len - i < 1 || len - i > FORWARD_TEXT_MAX)
		goto bad;
	for (size_t k = i; k < len; k++)
		if (!printable((unsigned char)line[k]))
			goto bad;
	memcpy(r->text, line + i, len - i);
	r->text[len - i] = '\0';
	r->code = code;
	return 0;
bad:
	memset(r, 0, sizeof(*r));
	return -1;
}

size_t forward_replies_parse(const char *body, size_t len, const char *const *users, size_t n,
			     struct forward_reply *out, bool *ok, bool *malformed_r)
{
	size_t pos = 0, good = 0;

	*malformed_r = false;
	for (size_t i = 0; i < n; i++) {
		const char *lf;
		size_t llen;

		ok[i] = false;
		memset(&out[i], 0, sizeof(out[i]));
		if (pos >= len) {
			*malformed_r = true;	/* missing line */
			continue;
		}
		lf = memchr(body + pos, '\n', len - pos);
		if (lf == NULL) {
			*malformed_r = true;	/* last line without CRLF */
			pos = len;
			continue;
		}
		llen = (size_t)(lf - (body + pos));
		if (llen == 0 || body[pos + llen - 1] != '\r' ||
		    forward_reply_parse(body + pos, llen - 1, users[i], &out[i]) < 0) {
			*malformed_r = true;
		} else {
			ok[i] = true;
			good++;
		}
		pos += llen + 1;
	}
	if (pos < len)
		*malformed_r = true;	/* lines beyond n */
	return good;
}
