/*
 * test_imap_compress.c - unit tests for the COMPRESS=DEFLATE transport
 * wrapper (imapproxy/imap_compress.c) over a fake in-memory transport:
 * output round trip (one batch ends with a sync flush the peer can
 * decode at once), input round trip fed a byte at a time, the bound on
 * inflated input (a small "zip bomb" never becomes more than ~64 KiB
 * buffered), backpressure (plain output waits while the inner output is
 * full and moves on when it drains), corrupt input reported as an error,
 * and freeing the wrapper frees the inner transport.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <zlib.h>

#include "imap_session.h"
#include "transport.h"

/* ---- a fake transport ------------------------------------------------------ */

struct fake {
	struct transport t;
	struct evbuffer *in, *out;
	bool reading;
	bool closed;
	int *freed;
};

static struct evbuffer *f_input(struct transport *t) { return ((struct fake *)t)->in; }
static struct evbuffer *f_output(struct transport *t) { return ((struct fake *)t)->out; }
static int f_starttls(struct transport *t) { return -1; }
static void f_read_enable(struct transport *t, bool on) { ((struct fake *)t)->reading = on; }
static void f_set_timeout(struct transport *t, unsigned s) { }
static void f_close(struct transport *t) { ((struct fake *)t)->closed = true; }
static void f_free(struct transport *t)
{
	struct fake *f = (struct fake *)t;
	(*f->freed)++;
	evbuffer_free(f->in);
	evbuffer_free(f->out);
	free(f);
}

static const struct transport_ops f_ops = {
	f_input, f_output, f_starttls, f_read_enable, f_set_timeout, f_close, f_free,
};

/* what the "session" saw */
struct sess {
	unsigned reads, drains, events;
	enum transport_event last_ev;
	bool consume;			/* drain the wrapper's input on read */
	struct evbuffer *got;
	struct transport *z;
};

static void s_read(void *arg)
{
	struct sess *s = arg;
	s->reads++;
	if (s->consume)
		evbuffer_add_buffer(s->got, transport_input(s->z));
}
static void s_drained(void *arg) { ((struct sess *)arg)->drains++; }
static void s_event(void *arg, enum transport_event ev)
{
	struct sess *s = arg;
	s->events++;
	s->last_ev = ev;
}

static const struct transport_cbs s_cbs = { s_read, s_drained, s_event };

struct fx {
	struct event_base *base;
	struct fake *inner;
	struct transport *z;
	struct sess s;
	int freed;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	x->base = event_base_new();
	x->inner = calloc(1, sizeof(*x->inner));
	x->inner->t.ops = &f_ops;
	x->inner->in = evbuffer_new();
	x->inner->out = evbuffer_new();
	x->inner->freed = &x->freed;
	snprintf(x->inner->t.peer, sizeof(x->inner->t.peer), "test");
	x->s.got = evbuffer_new();
	x->s.consume = true;
	transport_set_cbs(&x->inner->t, &s_cbs, &x->s);
	x->z = imap_compress_wrap(x->base, &x->inner->t, true);
	assert_non_null(x->z);
	x->s.z = x->z;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	transport_free(&x->z);
	assert_int_equal(x->freed, 1);
	evbuffer_free(x->s.got);
	event_base_free(x->base);
	free(x);
	return 0;
}

static void run(struct fx *x)
{
	event_base_loop(x->base, EVLOOP_NONBLOCK);
}

/* Inflate all of buf (raw deflate) with a persistent stream. */
static size_t inflate_all(z_stream *zs, struct evbuffer *buf, unsigned char *out, size_t cap)
{
	size_t len = evbuffer_get_length(buf);
	unsigned char *in = malloc(len ? len : 1);
	assert_non_null(in);
	evbuffer_remove(buf, in, len);
	zs->next_in = in;
	zs->avail_in = (uInt)len;
	zs->next_out = out;
	zs->avail_out = (uInt)cap;
	int r = inflate(zs, Z_SYNC_FLUSH);
	assert_true(r == Z_OK || r == Z_BUF_ERROR);
	assert_int_equal(zs->avail_in, 0);
	free(in);
	return cap - zs->avail_out;
}

static void test_output_round_trip(void **state)
{
	struct fx *x = *state;
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(inflateInit2(&zs, -15), Z_OK);

	size_t n = 100000;
	unsigned char *plain = malloc(n), *back = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		plain[i] = (unsigned char)("* 1 FETCH (FLAGS (\\Seen))\r\n"[i % 28]);
	evbuffer_add(transport_output(x->z), plain, n);
	/* nothing moves until the batch event runs */
	assert_int_equal(evbuffer_get_length(x->inner->out), 0);
	run(x);
	assert_int_equal(evbuffer_get_length(transport_output(x->z)), 0);
	assert_true(evbuffer_get_length(x->inner->out) > 0);
	assert_true(evbuffer_get_length(x->inner->out) < n / 10);
	size_t got = inflate_all(&zs, x->inner->out, back, n + 1);
	assert_int_equal(got, n);
	assert_memory_equal(back, plain, n);

	/* a second batch continues the same stream */
	evbuffer_add(transport_output(x->z), "a OK done\r\n", 11);
	run(x);
	got = inflate_all(&zs, x->inner->out, back, n);
	assert_int_equal(got, 11);
	assert_memory_equal(back, "a OK done\r\n", 11);
	inflateEnd(&zs);
	free(plain);
	free(back);
}

static void deflate_into(struct evbuffer *dst, const void *p, size_t len)
{
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	size_t cap = deflateBound(&zs, len) + 64;
	unsigned char *out = malloc(cap);
	zs.next_in = (unsigned char *)p;
	zs.avail_in = (uInt)len;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	assert_int_equal(deflate(&zs, Z_SYNC_FLUSH), Z_OK);
	evbuffer_add(dst, out, cap - zs.avail_out);
	deflateEnd(&zs);
	free(out);
}

static void test_input_round_trip(void **state)
{
	struct fx *x = *state;
	const char *cmd = "c SELECT INBOX\r\nd FETCH 1 (BODY.PEEK[])\r\ne LOGOUT\r\n";
	struct evbuffer *tmp = evbuffer_new();

	deflate_into(tmp, cmd, strlen(cmd));
	/* feed the compressed bytes one at a time */
	while (evbuffer_get_length(tmp) > 0) {
		evbuffer_remove_buffer(tmp, x->inner->in, 1);
		x->inner->t.cbs->read(x->inner->t.cb_arg);
		run(x);
	}
	evbuffer_free(tmp);
	assert_int_equal(evbuffer_get_length(x->s.got), strlen(cmd));
	assert_memory_equal(evbuffer_pullup(x->s.got, -1), cmd, strlen(cmd));
	assert_true(x->s.reads > 0);
	assert_int_equal(x->s.events, 0);
}

static void test_inflate_bound(void **state)
{
	struct fx *x = *state;
	size_t n = 8 << 20;
	char *zeros = calloc(1, n);

	x->s.consume = false;	/* a busy session does not read */
	deflate_into(x->inner->in, zeros, n);
	free(zeros);
	size_t comp = evbuffer_get_length(x->inner->in);
	assert_true(comp < 64 * 1024);
	x->inner->t.cbs->read(x->inner->t.cb_arg);
	run(x);
	size_t held = evbuffer_get_length(transport_input(x->z));
	assert_true(held > 0);
	assert_true(held <= 64 * 1024 + 16384);
	assert_true(evbuffer_get_length(x->inner->in) > 0);	/* rest waits */

	/* the session drains and reads on: everything arrives, bounded */
	x->s.consume = true;
	size_t total = 0;
	for (int i = 0; i < 100000 && total < n; i++) {
		total += evbuffer_get_length(transport_input(x->z));
		evbuffer_drain(transport_input(x->z), evbuffer_get_length(transport_input(x->z)));
		x->s.consume = false;
		transport_read_enable(x->z, true);
		run(x);
		assert_true(evbuffer_get_length(transport_input(x->z)) <= 64 * 1024 + 16384);
	}
	assert_int_equal(total, n);
}

static void test_backpressure(void **state)
{
	struct fx *x = *state;
	size_t n = 2 << 20;
	unsigned char *rnd = malloc(n);
	uint32_t seed = 1;

	/* incompressible data so the inner output fills up */
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245 + 12345;
		rnd[i] = (unsigned char)(seed >> 16);
	}
	evbuffer_add(transport_output(x->z), rnd, n);
	run(x);
	size_t inner = evbuffer_get_length(x->inner->out);
	assert_true(inner >= TRANSPORT_OUTPUT_HIGH);
	assert_true(inner < TRANSPORT_OUTPUT_HIGH + 64 * 1024);
	assert_true(evbuffer_get_length(transport_output(x->z)) > 0);

	/* the peer reads everything: drained moves the rest along */
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(inflateInit2(&zs, -15), Z_OK);
	unsigned char *back = malloc(n);
	size_t got = 0;
	for (int i = 0; i < 1000 && got < n; i++) {
		got += inflate_all(&zs, x->inner->out, back + got, n - got);
		x->inner->t.cbs->drained(x->inner->t.cb_arg);
		run(x);
	}
	assert_int_equal(got, n);
	assert_memory_equal(back, rnd, n);
	assert_true(x->s.drains > 0);
	inflateEnd(&zs);
	free(back);
	free(rnd);
}

static void test_corrupt_input(void **state)
{
	struct fx *x = *state;

	evbuffer_add(x->inner->in, "\xff\xff\xff\xff garbage", 12);
	x->inner->t.cbs->read(x->inner->t.cb_arg);
	run(x);
	assert_int_equal(x->s.events, 1);
	assert_int_equal(x->s.last_ev, TRANSPORT_ERROR);
}

static void test_close_flushes(void **state)
{
	struct fx *x = *state;
	z_stream zs;
	unsigned char back[64];

	memset(&zs, 0, sizeof(zs));
	assert_int_equal(inflateInit2(&zs, -15), Z_OK);
	evbuffer_add(transport_output(x->z), "* BYE\r\n", 7);
	transport_close_after_flush(x->z);	/* before the batch event ran */
	assert_true(x->inner->closed);
	assert_int_equal(inflate_all(&zs, x->inner->out, back, sizeof(back)), 7);
	assert_memory_equal(back, "* BYE\r\n", 7);
	inflateEnd(&zs);
	/* events from the inner transport reach the session */
	x->inner->t.cbs->event(x->inner->t.cb_arg, TRANSPORT_CLOSED);
	assert_int_equal(x->s.last_ev, TRANSPORT_CLOSED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_output_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_input_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inflate_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_flushes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
