/*
 * fuzz_bird.c - libFuzzer target for anycast/bird_parse*.c.
 *
 * Input layout: byte 0 picks the reader's limits, byte 1 seeds the
 * chunking; the rest is what BIRD sends on its control socket.  Two
 * readers take the stream in lockstep, one byte at a time and in
 * pseudo-random chunks; they must hand out the same replies (error, code,
 * lines, async count) and stop at the same fatal error at the same
 * offset.  Every reply must respect the limits (line length, line count,
 * bytes), have NUL-terminated lines of the stated length without LF or
 * NUL, and a class that is code / 1000.  Each reply then goes through
 * every reply parser, whose results must be NUL-terminated within their
 * fields and self-consistent.
 *
 * Any violation aborts, so the fuzzer reports it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bird_parse.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK_FIELD(f) CHECK(memchr((f), '\0', sizeof(f)) != NULL)

struct feeder {
	struct bird_parser *p;
	const uint8_t *buf;
	size_t len, pos;
	uint32_t seed;
	int bytewise;
};

/* Feed until a reply ends, a fatal error, or the input ends (MORE). */
static enum bird_feed_status next_reply(struct feeder *f, const struct bird_reply **r)
{
	*r = NULL;
	while (f->pos < f->len) {
		size_t n, used;
		enum bird_feed_status st;

		if (f->bytewise) {
			n = 1;
		} else {
			f->seed = f->seed * 1103515245u + 12345u;
			n = 1 + (f->seed >> 16) % 97;
		}
		if (n > f->len - f->pos)
			n = f->len - f->pos;
		st = bird_parser_feed(f->p, f->buf + f->pos, n, &used, r);
		CHECK(used <= n);
		f->pos += used;
		if (st != BIRD_FEED_MORE) {
			CHECK((st == BIRD_FEED_REPLY) == (*r != NULL));
			return st;
		}
		CHECK(*r == NULL);
		CHECK(used == n);
	}
	return BIRD_FEED_MORE;
}

static void check_reply(const struct bird_reply *r, const struct bird_limits *lim)
{
	size_t bytes = 0;

	CHECK(r->code <= 9999);
	CHECK(r->cls == r->code / 1000);
	if (r->err != BIRD_PERR_OK) {
		CHECK(r->err <= BIRD_PERR_NOMEM);
		CHECK(r->n_lines == 0 && r->lines == NULL);
		return;
	}
	CHECK(r->n_lines >= 1 && r->n_lines <= lim->max_lines);
	for (size_t i = 0; i < r->n_lines; i++) {
		const struct bird_line *l = &r->lines[i];

		CHECK(l->code <= 9999);
		CHECK(strlen(l->text) == l->len);
		CHECK(l->len <= lim->max_line);
		CHECK(memchr(l->text, '\n', l->len) == NULL);
		CHECK(i > 0 || !l->cont);
		if (l->cont)
			CHECK(l->code == r->lines[i - 1].code);
		bytes += l->len;
	}
	CHECK(bytes <= lim->max_bytes);
	CHECK(r->lines[r->n_lines - 1].code == r->code);
	CHECK(!r->lines[r->n_lines - 1].cont);
}

static void same_reply(const struct bird_reply *a, const struct bird_reply *b)
{
	CHECK(a->err == b->err && a->code == b->code && a->cls == b->cls);
	CHECK(a->n_lines == b->n_lines && a->n_async == b->n_async);
	for (size_t i = 0; i < a->n_lines; i++) {
		CHECK(a->lines[i].code == b->lines[i].code);
		CHECK(a->lines[i].cont == b->lines[i].cont);
		CHECK(a->lines[i].len == b->lines[i].len);
		CHECK(memcmp(a->lines[i].text, b->lines[i].text, a->lines[i].len) == 0);
	}
}

static void check_parsers(const struct bird_reply *r)
{
	struct bird_status st;
	struct bird_protocols ps;
	struct bird_count cnt;
	enum bird_ctl_result res;
	const char *err = NULL;
	enum bird_rerr e;

	e = bird_parse_status(r, &st, &err);
	CHECK(e <= BIRD_R_NOMEM);
	if (e == BIRD_R_OK) {
		CHECK(r->code == 13);
		CHECK_FIELD(st.version);
		CHECK_FIELD(st.router_id_text);
		CHECK_FIELD(st.hostname);
		CHECK_FIELD(st.server_time);
		CHECK_FIELD(st.last_reboot);
		CHECK_FIELD(st.last_reconfig);
		CHECK_FIELD(st.state_text);
		CHECK(st.version[0] != '\0');
		CHECK(st.has_last_reconfig || st.last_reconfig[0] == '\0');
	} else {
		CHECK(err != NULL && err[0] != '\0');
	}

	err = NULL;
	e = bird_parse_protocols(r, &ps, &err);
	CHECK(e <= BIRD_R_NOMEM);
	if (e == BIRD_R_OK) {
		CHECK((ps.n == 0) == (ps.rows == NULL));
		for (size_t i = 0; i < ps.n; i++) {
			const struct bird_proto *p = &ps.rows[i];

			CHECK_FIELD(p->name);
			CHECK_FIELD(p->proto);
			CHECK_FIELD(p->table);
			CHECK_FIELD(p->state_text);
			CHECK_FIELD(p->since);
			CHECK_FIELD(p->info);
			CHECK(p->name[0] != '\0' && p->since[0] != '\0');
			CHECK(!p->info_cut || strlen(p->info) == BIRD_INFO_MAX);
			CHECK(bird_protocols_find(&ps, p->name) != NULL);
		}
		bird_protocols_free(&ps);
		CHECK(ps.rows == NULL && ps.n == 0);
	} else {
		CHECK(ps.rows == NULL && ps.n == 0);
		CHECK(err != NULL && err[0] != '\0');
	}

	err = NULL;
	e = bird_parse_count(r, &cnt, &err);
	CHECK(e <= BIRD_R_NOMEM);
	if (e == BIRD_R_OK)
		CHECK(r->code == 0 || r->code == 14);
	else
		CHECK(err != NULL && err[0] != '\0');

	for (int op = 0; op < 2; op++) {
		err = NULL;
		e = bird_parse_ctl(r, op ? BIRD_CTL_DISABLE : BIRD_CTL_ENABLE, "s1", &res, &err);
		CHECK(e <= BIRD_R_NOMEM);
		CHECK(res <= BIRD_CTL_ERROR);
		if (e != BIRD_R_OK)
			CHECK(res == BIRD_CTL_ERROR && err != NULL);
		if (e == BIRD_R_OK && (res == BIRD_CTL_DONE || res == BIRD_CTL_ALREADY))
			CHECK(r->code == 0);
	}
	CHECK(bird_reply_last_text(r) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t line_limits[] = { 0, 1, 8, 80 };
	static const size_t lines_limits[] = { 0, 1, 3, 50 };
	static const size_t bytes_limits[] = { 0, 1, 16, 300 };
	struct bird_limits lim;
	struct feeder a, b;

	if (size < 2)
		return 0;
	lim.max_line = line_limits[data[0] & 3];
	lim.max_lines = lines_limits[(data[0] >> 2) & 3];
	lim.max_bytes = bytes_limits[(data[0] >> 4) & 3];
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.p = bird_parser_new(&lim);
	b.p = bird_parser_new(&lim);
	if (a.p == NULL || b.p == NULL) {
		bird_parser_free(&a.p);
		bird_parser_free(&b.p);
		return 0;
	}
	/* the limits in force (zero fields mean the defaults) */
	if (lim.max_line == 0)
		lim.max_line = BIRD_DEFAULT_MAX_LINE;
	if (lim.max_lines == 0)
		lim.max_lines = BIRD_DEFAULT_MAX_LINES;
	if (lim.max_bytes == 0)
		lim.max_bytes = BIRD_DEFAULT_MAX_BYTES;
	a.buf = b.buf = data + 2;
	a.len = b.len = size - 2;
	a.bytewise = 1;
	b.seed = data[1];

	for (;;) {
		const struct bird_reply *ra, *rb;
		enum bird_feed_status sa = next_reply(&a, &ra);
		enum bird_feed_status sb = next_reply(&b, &rb);

		CHECK(sa == sb);
		CHECK(a.pos == b.pos);
		if (sa == BIRD_FEED_FATAL) {
			CHECK(bird_parser_error(a.p, NULL) == bird_parser_error(b.p, NULL));
			CHECK(bird_parser_error(a.p, NULL) > BIRD_PERR_NOMEM);
			break;
		}
		if (sa == BIRD_FEED_MORE) {
			CHECK(a.pos == a.len);
			CHECK(bird_parser_mid_reply(a.p) == bird_parser_mid_reply(b.p));
			break;
		}
		check_reply(ra, &lim);
		same_reply(ra, rb);
		check_parsers(ra);
	}
	bird_parser_free(&a.p);
	bird_parser_free(&b.p);
	CHECK(a.p == NULL && b.p == NULL);
	return 0;
}
