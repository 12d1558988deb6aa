/*
 * fuzz_forward.c - libFuzzer target for popnode/forward_wire.c, the
 * parser of a forwarded delivery (POST /v1/deliver) and of the home's
 * answer lines (docs/link-deliver.md).
 *
 * The input is two bytes that set the limits (the recipients allowed,
 * the largest size), then "name: value" header lines (LF-ended; a line
 * without ':' is a header with an empty value) up to the first empty
 * line, then a response body.  Each header name and value is an exact-size heap copy
 * (so a read past the end is caught).
 *
 * Request: forward_request_parse either accepts, and then every field
 * is within the documented limits (recipients 1..max, no user twice,
 * valid addresses and POP id, date and size within range), or refuses
 * with 400/413, an error text and a zeroed request.
 *
 * Response: the body is parsed for the accepted request's users (or two
 * fixed ones).  Every answer marked ok is formatted again and must parse
 * to the same answer; the number returned is the number of ok flags.
 * Each body line is also used as the text of a reply: formatting cleans
 * any bytes, and the formatted line must parse back.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory.h"
#include "forward_wire.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HDRS 64

static char *copy_of(const uint8_t *p, size_t len)
{
	char *s = malloc(len + 1);

	CHECK(s != NULL);
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

static void check_accepted(const struct forward_request *r, size_t max_rcpts, uint64_t max_size)
{
	CHECK(r->n_rcpts >= 1 && r->n_rcpts <= max_rcpts && r->n_rcpts <= FORWARD_RCPTS_MAX);
	CHECK(forward_valid_addr(r->mail_from, true));
	CHECK(forward_valid_pop(r->via));
	CHECK(r->internaldate >= 0 && r->internaldate <= FORWARD_DATE_MAX);
	CHECK(r->size <= max_size);
	for (size_t i = 0; i < r->n_rcpts; i++) {
		CHECK(dir_valid_username(r->rcpts[i].user));
		CHECK(forward_valid_addr(r->rcpts[i].addr, false));
		for (size_t k = 0; k < i; k++)
			CHECK(strcmp(r->rcpts[k].user, r->rcpts[i].user) != 0);
	}
}

static bool same_reply(const struct forward_reply *a, const struct forward_reply *b)
{
	return a->code == b->code && strcmp(a->enh, b->enh) == 0 && strcmp(a->text, b->text) == 0;
}

static void reparse(const char *user, const struct forward_reply *r)
{
	char line[FORWARD_LINE_MAX + 1];
	struct forward_reply back;
	int n = forward_reply_format(line, sizeof(line), user, r->code, r->enh, r->text);

	CHECK(n >= 2 && line[n - 2] == '\r' && line[n - 1] == '\n');
	CHECK(forward_reply_parse(line, (size_t)n - 2, user, &back) == 0);
	CHECK(same_reply(r, &back));
}

static void responses(const char *body, size_t len, const char *const *users, size_t n)
{
	struct forward_reply out[FORWARD_RCPTS_MAX];
	bool ok[FORWARD_RCPTS_MAX], malformed = false;
	size_t got = forward_replies_parse(body, len, users, n, out, ok, &malformed), count = 0;

	CHECK(got <= n);
	for (size_t i = 0; i < n; i++) {
		if (!ok[i])
			continue;
		count++;
		reparse(users[i], &out[i]);
	}
	CHECK(count == got);
	if (got < n)
		CHECK(malformed);

	/* every line of the body as free text of a reply */
	for (size_t s = 0, i = 0; i <= len; i++) {
		if (i == len || body[i] == '\n') {
			char text[FORWARD_TEXT_MAX + 1], line[FORWARD_LINE_MAX + 1];
			size_t tl = i - s < FORWARD_TEXT_MAX ? i - s : FORWARD_TEXT_MAX;
			struct forward_reply back;
			int k;

			memcpy(text, body + s, tl);
			text[tl] = '\0';
			k = forward_reply_format(line, sizeof(line), users[0], 451, "4.3.0", text);
			CHECK(k >= 2);
			CHECK(forward_reply_parse(line, (size_t)k - 2, users[0], &back) == 0);
			CHECK(back.code == 451 && strcmp(back.enh, "4.3.0") == 0);
			CHECK(strlen(back.text) >= 1 && strlen(back.text) <= FORWARD_TEXT_MAX);
			s = i + 1;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct link_hdr h[MAX_HDRS];
	char *names[MAX_HDRS], *values[MAX_HDRS];
	size_t n = 0, pos = size < 2 ? size : 2;
	static struct forward_request r;
	static const struct forward_request zero;
	const char *err = "unset";
	/* the limits come from the input too: both branches of each get hit */
	size_t max_rcpts = size > 0 ? (size_t)(data[0] % 30) : 24;
	uint64_t max_size = size > 1 ? (uint64_t)data[1] << 12 : 1 << 20;

	/* headers up to the first empty line */
	while (pos < size && n < MAX_HDRS) {
		const uint8_t *line = data + pos, *nl = memchr(line, '\n', size - pos);
		size_t len = nl != NULL ? (size_t)(nl - line) : size - pos;
		const uint8_t *colon = memchr(line, ':', len);

		pos += len + (nl != NULL);
		if (len == 0)
			break;
		if (colon != NULL) {
			const uint8_t *v = colon + 1;

			if (v < line + len && *v == ' ')
				v++;
			names[n] = copy_of(line, (size_t)(colon - line));
			values[n] = copy_of(v, (size_t)(line + len - v));
		} else {
			names[n] = copy_of(line, len);
			values[n] = copy_of(line, 0);
		}
		h[n].name = names[n];
		h[n].value = values[n];
		n++;
	}

	int st = forward_request_parse(h, n, max_rcpts, max_size, &r, &err);

	if (st == 0) {
		CHECK(err == NULL);
		check_accepted(&r, max_rcpts, max_size);
	} else {
		CHECK((st == 400 || st == 413) && err != NULL && err[0] != '\0');
		CHECK(memcmp(&r, &zero, sizeof(r)) == 0);
	}

	/* the rest is a response body */
	{
		const char *users[FORWARD_RCPTS_MAX];
		static const char *const fixed[] = { "alice", "bob.smith" };
		size_t nu;
		char *body = copy_of(data + pos, size - pos);

		if (st == 0) {
			for (nu = 0; nu < r.n_rcpts; nu++)
				users[nu] = r.rcpts[nu].user;
		} else {
			users[0] = fixed[0];
			users[1] = fixed[1];
			nu = 2;
		}
		responses(body, size - pos, users, nu);
		free(body);
	}
	for (size_t i = 0; i < n; i++) {
		free(names[i]);
		free(values[i]);
	}
	return 0;
}
