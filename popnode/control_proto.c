/*
 * control_proto.c - encoding and decoding of control socket messages.
 *
 * The request parser takes one complete line (the caller frames lines
 * and enforces CTL_REQUEST_MAX while reading); it copies the line into
 * the request, turns the TABs into NULs and checks every field.
 *
 * The response reader is a byte-driven state machine, so popctl can feed
 * it whatever read() returned:
 *   STATUS  collecting the status line
 *   BOL     at the start of a body line
 *   DOT     a body line started with '.': either the end ("." LF) or
 *           a stuffed line (".." -> ".")
 *   LINE    inside a body line
 *   DONE    the "." line has been read
 * Every line and the whole body are bounded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory.h"

#include <event2/buffer.h>

#include "control_proto.h"

enum { RD_STATUS, RD_BOL, RD_DOT, RD_LINE, RD_DONE, RD_FAILED };

#define BODY_MAX_DEFAULT ((size_t)64 << 20)

static bool key_ok(const char *s, size_t len)
{
	if (len == 0 || len > CTL_KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool field_bytes_ok(const char *s, size_t len)
{
	if (len == 0 || len > CTL_FIELD_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\t' || s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			return false;
	}
	return true;
}

bool ctl_value_ok(const char *s)
{
	return s != NULL && field_bytes_ok(s, strnlen(s, CTL_FIELD_MAX + 1));
}

const char *ctl_request_opt(const struct ctl_request *req, const char *key)
{
	for (size_t i = 0; i < req->n_opts; i++) {
		if (strcmp(req->opts[i].key, key) == 0)
			return req->opts[i].value;
	}
	return NULL;
}

/* One field, NUL-terminated inside req->buf. */
static int add_field(struct ctl_request *req, char *f, size_t len, const char **error_r)
{
	char *eq;

	if (len == 0) {
		*error_r = "empty field";
		return -1;
	}
	if (len > CTL_FIELD_MAX) {
		*error_r = "field too long";
		return -1;
	}
	eq = memchr(f, '=', len);
	if (eq == NULL) {
		if (req->n_opts > 0) {
			*error_r = "argument after options";
			return -1;
		}
		if (req->n_args == CTL_ARGS_MAX) {
			*error_r = "too many arguments";
			return -1;
		}
		req->args[req->n_args++] = f;
		return 0;
	}
	if (req->n_args == 0) {
		*error_r = "option before the command";
		return -1;
	}
	if (!key_ok(f, (size_t)(eq - f))) {
		*error_r = "bad option name";
		return -1;
	}
	if (eq + 1 == f + len) {
		*error_r = "empty option value";
		return -1;
	}
	if (req->n_opts == CTL_OPTS_MAX) {
		*error_r = "too many options";
		return -1;
	}
	*eq = '\0';
	if (ctl_request_opt(req, f) != NULL) {
		*error_r = "duplicate option";
		return -1;
	}
	req->opts[req->n_opts].key = f;
	req->opts[req->n_opts].value = eq + 1;
	req->n_opts++;
	return 0;
}

int ctl_request_parse(struct ctl_request *req, const char *line, size_t len,
		      const char **error_r)
{
	size_t start = 0;

	req->n_args = 0;
	req->n_opts = 0;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len >= CTL_REQUEST_MAX) {
		*error_r = "request too long";
		return -1;
	}
	if (len == 0) {
		*error_r = "empty request";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (line[i] == '\0') {
			*error_r = "NUL byte in request";
			return -1;
		}
		if (line[i] == '\r' || line[i] == '\n') {
			*error_r = "line break inside request";
			return -1;
		}
	}
	memcpy(req->buf, line, len);
	req->buf[len] = '\0';
	for (size_t i = 0; i <= len; i++) {
		if (i < len && req->buf[i] != '\t')
			continue;
		req->buf[i] = '\0';
		if (add_field(req, req->buf + start, i - start, error_r) < 0)
			return -1;
		start = i + 1;
	}
	return 0;
}

int ctl_request_encode(char *out, size_t outsz, const char *const *args, size_t n_args,
		       const struct ctl_opt *opts, size_t n_opts, const char **error_r)
{
	size_t len = 0;
	size_t need;

	if (n_args == 0 || n_args > CTL_ARGS_MAX || n_opts > CTL_OPTS_MAX) {
		*error_r = n_args == 0 ? "no command" : "too many fields";
		return -1;
	}
	for (size_t i = 0; i < n_args + n_opts; i++) {
		const char *key = i < n_args ? NULL : opts[i - n_args].key;
		const char *val = i < n_args ? args[i] : opts[i - n_args].value;
		size_t klen = key != NULL ? strlen(key) : 0;
		size_t vlen;

		if (val == NULL || !ctl_value_ok(val)) {
			*error_r = "empty or too long field, or TAB/CR/LF inside";
			return -1;
		}
		vlen = strlen(val);
		if (key == NULL && memchr(val, '=', vlen) != NULL) {
			*error_r = "'=' inside an argument";
			return -1;
		}
		if (key != NULL && !key_ok(key, klen)) {
			*error_r = "bad option name";
			return -1;
		}
		for (size_t j = 0; key != NULL && j < i - n_args; j++) {
			if (strcmp(opts[j].key, key) == 0) {
				*error_r = "duplicate option";
				return -1;
			}
		}
		if (key != NULL && vlen + klen + 1 > CTL_FIELD_MAX) {
			*error_r = "field too long";
			return -1;
		}
		/* this field (with its TAB) plus the final LF must fit in
		 * CTL_REQUEST_MAX, and a NUL after that in out */
		need = (i > 0 ? 1 : 0) + (key != NULL ? klen + 1 : 0) + vlen;
		if (len + need + 1 > CTL_REQUEST_MAX || len + need + 2 > outsz) {
			*error_r = "request too long";
			return -1;
		}
		if (i > 0)
			out[len++] = '\t';
		if (key != NULL) {
			memcpy(out + len, key, klen);
			len += klen;
			out[len++] = '=';
		}
		memcpy(out + len, val, vlen);
		len += vlen;
	}
	out[len++] = '\n';
	out[len] = '\0';
	return (int)len;
}

/* ---- responses: daemon side --------------------------------------------- */

int ctl_response_begin(struct evbuffer *out, const char *code, const char *message)
{
	char line[CTL_STATUS_MAX + 1];
	int n;

	if (code == NULL)
		return evbuffer_add(out, "ok\n", 3);
	n = snprintf(line, sizeof(line) - 1, "err %s %s", code, message != NULL ? message : "");
	if (n < 0)
		return -1;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	for (int i = 0; i < n; i++) {
		if (line[i] == '\r' || line[i] == '\n')
			line[i] = ' ';
	}
	line[n++] = '\n';
	return evbuffer_add(out, line, (size_t)n);
}

int ctl_response_body(struct evbuffer *out, const char *data, size_t len)
{
	while (len > 0) {
		const char *lf = memchr(data, '\n', len);
		size_t n = lf != NULL ? (size_t)(lf - data) : len;

		if (n > 0 && data[0] == '.' && evbuffer_add(out, ".", 1) < 0)
			return -1;
		if (evbuffer_add(out, data, n) < 0 || evbuffer_add(out, "\n", 1) < 0)
			return -1;
		if (lf == NULL)
			break;
		data += n + 1;
		len -= n + 1;
	}
	return 0;
}

int ctl_response_end(struct evbuffer *out)
{
	return evbuffer_add(out, ".\n", 2);
}

/* ---- responses: client side --------------------------------------------- */

void ctl_reader_init(struct ctl_reader *r, size_t body_max)
{
	memset(r, 0, sizeof(*r));
	r->state = RD_STATUS;
	r->body_max = body_max != 0 ? body_max : BODY_MAX_DEFAULT;
	r->message = "";
}

void ctl_reader_clear(struct ctl_reader *r)
{
	free(r->body);
	r->body = NULL;
	r->body_len = r->body_cap = 0;
}

static int body_add(struct ctl_reader *r, const char *p, size_t n)
{
	if (n > r->body_max - r->body_len)
		return -1;
	if (r->body_len + n + 1 > r->body_cap) {
		size_t cap = r->body_cap != 0 ? r->body_cap : 4096;
		char *nb;

		while (cap < r->body_len + n + 1)
			cap *= 2;
		nb = realloc(r->body, cap);
		if (nb == NULL)
			return -1;
		r->body = nb;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, p, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
	return 0;
}

static int parse_status(struct ctl_reader *r, const char **error_r)
{
	char *s = r->status;
	size_t clen;

	if (r->line_len > 0 && s[r->line_len - 1] == '\r')
		s[--r->line_len] = '\0';
	if (strcmp(s, "ok") == 0 || strncmp(s, "ok ", 3) == 0) {
		r->ok = true;
		return 0;
	}
	if (strncmp(s, "err ", 4) != 0) {
		*error_r = "bad status line";
		return -1;
	}
	s += 4;
	clen = strcspn(s, " ");
	if (!key_ok(s, clen) || clen >= CTL_CODE_MAX) {
		*error_r = "bad error code";
		return -1;
	}
	memcpy(r->code, s, clen);
	r->code[clen] = '\0';
	r->message = s[clen] == ' ' ? s + clen + 1 : s + clen;
	return 0;
}

static enum ctl_read_result reader_fail(struct ctl_reader *r, const char *msg, const char **error_r)
{
	r->state = RD_FAILED;
	*error_r = msg;
	return CTL_READ_ERROR;
}

enum ctl_read_result ctl_reader_feed(struct ctl_reader *r, const char *data, size_t len,
				     size_t *used_r, const char **error_r)
{
	size_t i = 0;

	*used_r = 0;
	if (r->state == RD_DONE)
		return CTL_READ_DONE;
	if (r->state == RD_FAILED)
		return reader_fail(r, "reader already failed", error_r);
	while (i < len) {
		char c = data[i];

		switch (r->state) {
		case RD_STATUS:
			i++;
			if (c == '\n') {
				r->status[r->line_len] = '\0';
				if (parse_status(r, error_r) < 0) {
					*used_r = i;
					return reader_fail(r, *error_r, error_r);
				}
				r->state = RD_BOL;
				r->line_len = 0;
				break;
			}
			if (c == '\0' || r->line_len == CTL_STATUS_MAX) {
				*used_r = i;
				return reader_fail(r, c == '\0' ? "NUL in status line"
						   : "status line too long", error_r);
			}
			r->status[r->line_len++] = c;
			break;
		case RD_BOL:
			if (c == '.') {
				i++;
				r->state = RD_DOT;
				break;
			}
			r->state = RD_LINE;
			r->line_len = 0;
			break;
		case RD_DOT:
			i++;
			if (c == '\n') {
				r->state = RD_DONE;
				*used_r = i;
				if (r->body == NULL && body_add(r, "", 0) < 0)
					return reader_fail(r, "out of memory", error_r);
				return CTL_READ_DONE;
			}
			if (c != '.') {
				*used_r = i;
				return reader_fail(r, "body line starts with an unstuffed '.'", error_r);
			}
			if (body_add(r, ".", 1) < 0) {
				*used_r = i;
				return reader_fail(r, "response body too large", error_r);
			}
			r->state = RD_LINE;
			r->line_len = 1;
			break;
		case RD_LINE: {
			const char *lf = memchr(data + i, '\n', len - i);
			size_t n = lf != NULL ? (size_t)(lf - (data + i)) + 1 : len - i;

			if (r->line_len + n > CTL_LINE_MAX + 1) {
				*used_r = i;
				return reader_fail(r, "response line too long", error_r);
			}
			if (body_add(r, data + i, n) < 0) {
				*used_r = i;
				return reader_fail(r, "response body too large", error_r);
			}
			i += n;
			r->line_len += n;
			if (lf != NULL) {
				r->state = RD_BOL;
				r->line_len = 0;
			}
			break;
		}
		default:
			*used_r = i;
			return reader_fail(r, "reader in a bad state", error_r);
		}
	}
	*used_r = i;
	return CTL_READ_MORE;
}

/* ---- body rows ---------------------------------------------------------- */

const char *ctl_row_field(char *out, size_t outsz, const char *s)
{
	size_t i = 0;

	if (outsz < 2) {
		if (outsz == 1)
			out[0] = '\0';
		return out;
	}
	if (s == NULL || s[0] == '\0') {
		out[0] = '-';
		out[1] = '\0';
		return out;
	}
	for (; s[i] != '\0' && i + 1 < outsz; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	if (s[i] != '\0') {
		/* cut: drop a multi-byte sequence the cut left incomplete */
		size_t k = i;
		unsigned char lead;
		size_t need;

		while (k > 0 && ((unsigned char)out[k - 1] & 0xc0) == 0x80)
			k--;
		if (k > 0 && (lead = (unsigned char)out[k - 1]) >= 0xc0) {
			need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
			if (i - (k - 1) < need)
				i = k - 1;
		}
	}
	out[i] = '\0';
	if (i == 0) {
		out[0] = '-';
		out[1] = '\0';
	}
	return out;
}

/* ---- values ------------------------------------------------------------- */

bool ctl_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;
	size_t i = 0;

	if (s == NULL)
		return false;
	if (strcmp(s, "unlimited") == 0) {
		*out = 0;
		return true;
	}
	if (!(s[0] >= '0' && s[0] <= '9'))
		return false;
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	switch (s[i]) {
	case '\0':
		break;
	case 'k': case 'K': shift = 10; i++; break;
	case 'm': case 'M': shift = 20; i++; break;
	case 'g': case 'G': shift = 30; i++; break;
	case 't': case 'T': shift = 40; i++; break;
	default:
		return false;
	}
	if (s[i] != '\0')
		return false;
	if (shift != 0 && v > (UINT64_MAX >> shift))
		return false;
	*out = v << shift;
	return true;
}

bool ctl_valid_pop(const char *s)
{
	return dir_valid_pop(s);
}
