/*
 * fuzz_lmtp.c - libFuzzer target for popnode/lmtp_parse.c.
 *
 * Input layout: byte 0 picks the DATA limits, byte 1 seeds the chunking;
 * the rest is the client's byte stream.  It is used twice:
 *
 *  1. split at LF, each line (LF included) goes to lmtp_parse_command()
 *     from an exact-size heap copy; the result's invariants are checked
 *     (NUL-terminated fields whose lengths match, only printable ASCII in
 *     addresses, a detail and a known reply code on error);
 *  2. as a DATA stream, fed to two readers: one byte at a time and in
 *     pseudo-random chunks.  Both must agree on every message (status,
 *     bytes used, size, error, body).  After each message's end the rest of
 *     the stream starts a new message, like pipelined transactions.  The
 *     body must be within the size limit, use CRLF only, and never end
 *     without CRLF.
 *
 * Any violation aborts, so the fuzzer reports it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtp_parse.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_printable(const char *s, size_t len)
{
	CHECK(strlen(s) == len);
	for (size_t i = 0; i < len; i++)
		CHECK((unsigned char)s[i] >= 32 && (unsigned char)s[i] < 127);
}

static void check_line(const uint8_t *line, size_t len)
{
	struct lmtp_cmd cmd;
	char *copy = malloc(len ? len : 1);
	enum lmtp_perr err;
	const char *enh = NULL;
	unsigned code;

	if (copy == NULL)
		return;
	memcpy(copy, line, len);
	err = lmtp_parse_command(copy, len, &cmd);
	CHECK(err == cmd.err);
	code = lmtp_perr_reply(err, cmd.type, &enh);
	CHECK(enh != NULL && strlen(enh) == 5);
	CHECK(cmd.type < LMTP_CMD_COUNT);
	CHECK(lmtp_cmd_name(cmd.type) != NULL);
	if (err != LMTP_PERR_OK) {
		CHECK(cmd.detail != NULL && cmd.detail[0] != '\0');
		CHECK(code >= 500 && code < 600);
	} else {
		CHECK(cmd.detail == NULL);
		CHECK(cmd.type != LMTP_CMD_NONE);
		if (cmd.type == LMTP_CMD_LHLO) {
			CHECK(cmd.lhlo_len > 0 && cmd.lhlo_len <= LMTP_DOMAIN_MAX);
			check_printable(cmd.lhlo, cmd.lhlo_len);
		}
		if (cmd.type == LMTP_CMD_MAIL || cmd.type == LMTP_CMD_RCPT) {
			const struct lmtp_addr *a = &cmd.addr;

			CHECK(a->addr_len <= LMTP_ADDR_MAX);
			CHECK(a->local_len <= LMTP_LOCAL_MAX);
			CHECK(a->domain_len <= LMTP_DOMAIN_MAX);
			check_printable(a->addr, a->addr_len);
			check_printable(a->domain, a->domain_len);
			CHECK(strlen(a->local) == a->local_len);
			if (a->null) {
				CHECK(cmd.type == LMTP_CMD_MAIL && a->addr_len == 0);
			} else {
				CHECK(a->addr_len > 0);
				/* the address ends with its domain */
				CHECK(a->addr_len >= a->domain_len);
				CHECK(memcmp(a->addr + a->addr_len - a->domain_len, a->domain,
					     a->domain_len) == 0);
				CHECK(a->domain_len > 0 || cmd.type == LMTP_CMD_RCPT);
			}
		}
	}
	free(copy);
}

struct reader_out {
	enum lmtp_data_status st;
	size_t used;
	enum lmtp_data_err err;
	size_t size;
	const char *body;
	size_t body_len;
};

/* Feed buf to d in chunks; stop at DONE. */
static struct reader_out feed(struct lmtp_data *d, const uint8_t *buf, size_t len,
			      uint32_t *seed, bool bytewise)
{
	struct reader_out o = { .st = LMTP_DATA_MORE };
	size_t pos = 0;

	while (pos < len) {
		size_t n, used;

		if (bytewise) {
			n = 1;
		} else {
			*seed = *seed * 1103515245u + 12345u;
			n = 1 + (*seed >> 16) % 97;
		}
		if (n > len - pos)
			n = len - pos;
		o.st = lmtp_data_feed(d, buf + pos, n, &used);
		CHECK(used <= n);
		pos += used;
		if (o.st == LMTP_DATA_DONE)
			break;
		CHECK(used == n);
	}
	o.used = pos;
	o.err = lmtp_data_error(d);
	o.size = lmtp_data_size(d);
	o.body = lmtp_data_body(d, &o.body_len);
	return o;
}

static void check_data(const uint8_t *buf, size_t len, size_t max_line, size_t max_size,
		       uint32_t seed)
{
	struct lmtp_data *a = lmtp_data_new(max_line, max_size);
	struct lmtp_data *b = lmtp_data_new(max_line, max_size);
	size_t pos = 0;

	if (a == NULL || b == NULL) {
		lmtp_data_free(&a);
		lmtp_data_free(&b);
		return;
	}
	while (pos < len) {
		struct reader_out x = feed(a, buf + pos, len - pos, &seed, true);
		struct reader_out y = feed(b, buf + pos, len - pos, &seed, false);

		CHECK(x.st == y.st && x.used == y.used && x.err == y.err && x.size == y.size);
		CHECK(x.body_len == y.body_len);
		CHECK(x.body_len == 0 || memcmp(x.body, y.body, x.body_len) == 0);
		CHECK(x.body_len <= max_size);
		CHECK(x.body_len <= x.size);
		if (x.err != LMTP_DATA_TOO_BIG)
			CHECK(x.size <= max_size);
		/* every LF is preceded by CR */
		for (size_t i = 0; i < x.body_len; i++)
			if (x.body[i] == '\n')
				CHECK(i > 0 && x.body[i - 1] == '\r');
		if (x.st == LMTP_DATA_DONE && x.err == LMTP_DATA_OK) {
			CHECK(x.body_len == x.size);
			CHECK(x.body_len == 0 ||
			      (x.body_len >= 2 && x.body[x.body_len - 2] == '\r' &&
			       x.body[x.body_len - 1] == '\n'));
		}
		if (x.st != LMTP_DATA_DONE) {
			CHECK(x.used == len - pos);
			break;
		}
		CHECK(x.used > 0);
		pos += x.used;
		lmtp_data_reset(a);
		lmtp_data_reset(b);
	}
	lmtp_data_free(&a);
	lmtp_data_free(&b);
	CHECK(a == NULL && b == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t line_limits[] = { 0, 1, 5, 78, 998 };
	static const size_t size_limits[] = { 0, 1, 7, 100, 4096, 1 << 20 };
	size_t max_line, max_size;
	uint32_t seed;
	size_t start;

	if (size < 2)
		return 0;
	max_line = line_limits[data[0] % 5];
	max_size = size_limits[(data[0] / 5) % 6];
	seed = data[1];
	data += 2;
	size -= 2;

	/* 1. command lines */
	start = 0;
	for (size_t i = 0; i < size; i++) {
		if (data[i] == '\n') {
			check_line(data + start, i + 1 - start);
			start = i + 1;
		}
	}
	if (start < size)
		check_line(data + start, size - start);

	/* 2. the same bytes as DATA */
	check_data(data, size, max_line, max_size, seed);
	return 0;
}
