/* test_repl_ack.c - replication_ack = mirror (replicator/repl_ack.h): the
 * waiter queue (order, wake, cancel, callbacks that wait again), the
 * in-sync rule, degraded and recovered with both policies (on a real
 * event loop with a short timeout), shutdown, the renderings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "node.h"
#include "repl_ack.h"

static struct config cfg;
static struct node n;

#define MAX_LOG 32
static struct {
	int tag;
	enum repl_ack_result r;
} seen[MAX_LOG];
static size_t n_seen;

static void record(void *arg, enum repl_ack_result r)
{
	assert_true(n_seen < MAX_LOG);
	seen[n_seen].tag = (int)(intptr_t)arg;
	seen[n_seen].r = r;
	n_seen++;
}

/* A node with two peers, replication_ack mirror, timeout_ms. */
static void setup_node(int ack, int degraded, unsigned timeout_ms, size_t peers)
{
	config_defaults(&cfg);
	snprintf(cfg.node_id, sizeof(cfg.node_id), "pop1");
	cfg.n_peers = peers;
	for (size_t i = 0; i < peers; i++)
		snprintf(cfg.peers[i].id, sizeof(cfg.peers[i].id), "pop%zu", i + 2);
	cfg.replication_ack = ack;
	cfg.replication_degraded = degraded;
	cfg.replication_ack_timeout_ms = timeout_ms;
	memset(&n, 0, sizeof(n));
	n.cfg = &cfg;
	n.base = event_base_new();
	assert_non_null(n.base);
	assert_int_equal(repl_ack_init(&n), 0);
	assert_non_null(n.repl_ack);
	n_seen = 0;
}

static void teardown_node(void)
{
	repl_ack_free(&n);
	assert_null(n.repl_ack);
	event_base_free(n.base);
}

static struct repl_ack_waiter *wait_tag(uint64_t seq, int tag, enum repl_ack_result *r)
{
	return repl_ack_wait(&n, seq, record, (void *)(intptr_t)tag, r);
}

static void run_ms(unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(n.base, &tv);
	event_base_dispatch(n.base);
}

static void test_not_applicable(void **state)
{
	struct repl_ack_info i;
	enum repl_ack_result r = REPL_ACK_TEMPFAIL;

	/* replication_ack local */
	setup_node(CONFIG_ACK_LOCAL, CONFIG_DEGRADED_TEMPFAIL, 2000, 2);
	assert_null(wait_tag(7, 1, &r));
	assert_int_equal(r, REPL_ACK_LOCAL);
	repl_ack_info(&n, &i);
	assert_string_equal(i.mode, "local");
	assert_string_equal(i.state, "off");
	teardown_node();

	/* mirror, but no peer: not applicable, whatever the policy */
	setup_node(CONFIG_ACK_MIRROR, CONFIG_DEGRADED_TEMPFAIL, 2000, 0);
	r = REPL_ACK_TEMPFAIL;
	assert_null(wait_tag(7, 1, &r));
	assert_int_equal(r, REPL_ACK_LOCAL);
	r = REPL_ACK_TEMPFAIL;
	assert_null(repl_ack_wait_commit(&n, record, NULL, &r));
	assert_int_equal(r, REPL_ACK_LOCAL);
	repl_ack_info(&n, &i);
	assert_string_equal(i.mode, "mirror");
	assert_string_equal(i.state, "no-mirrors");
	run_ms(10);	/* no timer: nothing happens */
	assert_int_equal(n_seen, 0);
	teardown_node();

	/* no repl_ack at all (a node without the replicator) */
	memset(&n, 0, sizeof(n));
	n.cfg = &cfg;
	r = REPL_ACK_TEMPFAIL;
	assert_null(wait_tag(1, 1, &r));
	assert_int_equal(r, REPL_ACK_LOCAL);
	repl_ack_advance(&n, "pop2", 5, 5);	/* ignored */
	repl_ack_mirror_state(&n, "pop2", true);
	repl_ack_fini(&n);
	repl_ack_free(&n);
}

static void test_order_wake_cancel(void **state)
{
	struct repl_ack_waiter *w5, *w3, *w7, *w3b, *w9;
	struct repl_ack_info i;
	enum repl_ack_result r;

	setup_node(CONFIG_ACK_MIRROR, CONFIG_DEGRADED_ACCEPT, 60000, 2);
	repl_ack_mirror_state(&n, "pop2", true);
	w5 = wait_tag(5, 5, &r);
	w3 = wait_tag(3, 3, &r);
	w7 = wait_tag(7, 7, &r);
	w3b = wait_tag(3, 30, &r);
	w9 = wait_tag(9, 9, &r);
	assert_non_null(w5);
	assert_non_null(w3);
	assert_non_null(w7);
	assert_non_null(w3b);
	assert_non_null(w9);
	repl_ack_info(&n, &i);
	assert_int_equal(i.waiting, 5);
	assert_int_equal(n_seen, 0);	/* never from inside wait */

	/* an ack below every waiter wakes none */
	repl_ack_advance(&n, "pop2", 2, 100);
	assert_int_equal(n_seen, 0);
	/* 4: both 3s, in the order they came */
	repl_ack_advance(&n, "pop3", 4, 100);
	assert_int_equal(n_seen, 2);
	assert_int_equal(seen[0].tag, 3);
	assert_int_equal(seen[1].tag, 30);
	assert_int_equal(seen[0].r, REPL_ACK_ACKED);
	/* the 7 goes away */
	repl_ack_cancel(&w7);
	assert_null(w7);
	repl_ack_cancel(&w7);	/* NULL: nothing */
	/* a lower ack from the other mirror changes nothing */
	repl_ack_advance(&n, "pop2", 3, 100);
	assert_int_equal(n_seen, 2);
	repl_ack_advance(&n, "pop2", 8, 100);
	assert_int_equal(n_seen, 3);
	assert_int_equal(seen[2].tag, 5);
	/* already acknowledged: answered at once, not queued */
	r = REPL_ACK_LOCAL;
	assert_null(wait_tag(8, 88, &r));
	assert_int_equal(r, REPL_ACK_ACKED);
	assert_int_equal(n_seen, 3);
	repl_ack_info(&n, &i);
	assert_int_equal(i.waiting, 1);
	assert_int_equal(i.acked_seq, 8);
	assert_int_equal(i.waits_acked, 4);
	assert_int_equal(i.waits_cancelled, 1);
	assert_int_equal(i.in_sync, 0);	/* 8 < 100: catching up */
	repl_ack_advance(&n, "pop2", 100, 100);
	assert_int_equal(n_seen, 4);
	assert_int_equal(seen[3].tag, 9);
	repl_ack_info(&n, &i);
	assert_int_equal(i.waiting, 0);
	assert_int_equal(i.in_sync, 1);
	(void)w5;
	(void)w3;
	(void)w3b;
	(void)w9;
	teardown_node();
}

/* A callback that waits again and cancels another waiter. */
static struct repl_ack_waiter *victim, *again;
static int reentered;

static void reenter(void *arg, enum repl_ack_result r)
{
	enum repl_ack_result r2;

	reentered++;
	repl_ack_cancel(&victim);
	again = wait_tag(50, 50, &r2);
	assert_non_null(again);
}

static void test_callback_reenters(void **state)
{
	enum repl_ack_result r;
	struct repl_ack_info i;

	setup_node(CONFIG_ACK_MIRROR, CONFIG_DEGRADED_ACCEPT, 60000, 1);
	assert_non_null(repl_ack_wait(&n, 10, reenter, NULL, &r));
	victim = wait_tag(11, 11, &r);
	assert_non_null(wait_tag(12, 12, &r));
	repl_ack_advance(&n, "pop2", 20, 20);
	assert_int_equal(reentered, 1);
	assert_null(victim);
	assert_int_equal(n_seen, 1);		/* 12; 11 was cancelled */
	assert_int_equal(seen[0].tag, 12);
	repl_ack_info(&n, &i);
	assert_int_equal(i.waiting, 1);		/* the new 50 */
	repl_ack_advance(&n, "pop2", 50, 50);
	assert_int_equal(n_seen, 2);
	assert_int_equal(seen[1].tag, 50);
	teardown_node();
}

/* Keep pop2 acknowledging every 20 ms. */
static void keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	repl_ack_advance(&n, "pop2", 1, 1);
}

static void test_degraded_accept_and_recovery(void **state)
{
	struct timeval every = { 0, 20 * 1000 };
	struct event *ka;
	struct repl_ack_info i;
	enum repl_ack_result r;
	struct evbuffer *b = evbuffer_new();
	char *text;

	setup_node(CONFIG_ACK_MIRROR, CONFIG_DEGRADED_ACCEPT, 100, 2);
	repl_ack_mirror_state(&n, "pop2", true);
	repl_ack_advance(&n, "pop2", 1, 1);		/* in sync */
	/* acks every 20 ms keep it ok well past the timeout */
	ka = event_new(n.base, -1, EV_PERSIST, keepalive_cb, NULL);
	event_add(ka, &every);
	assert_non_null(wait_tag(2, 2, &r));
	run_ms(300);
	repl_ack_info(&n, &i);
	assert_string_equal(i.state, "ok");
	assert_int_equal(i.waiting, 1);
	assert_int_equal(n_seen, 0);
	/* silence: degraded after the timeout, the waiter released */
	event_free(ka);
	run_ms(250);
	repl_ack_info(&n, &i);
	assert_string_equal(i.state, "degraded");
	assert_int_equal(i.degraded_total, 1);
	assert_int_equal(i.waiting, 0);
	assert_non_null(strstr(i.reason, "pop2 silent"));
	assert_int_equal(n_seen, 1);
	assert_int_equal(seen[0].tag, 2);
	assert_int_equal(seen[0].r, REPL_ACK_DEGRADED);
	assert_true(repl_ack_ok(seen[0].r));
	/* while degraded: answered at once */
	assert_null(wait_tag(3, 3, &r));
	assert_int_equal(r, REPL_ACK_DEGRADED);
	/* shown */
	repl_ack_render_status_json(&n, b);
	repl_ack_render_metrics(&n, b);
	repl_ack_render_text(&n, b);
	evbuffer_add(b, "", 1);
	text = (char *)evbuffer_pullup(b, -1);
	assert_non_null(strstr(text, "\"mode\": \"mirror\""));
	assert_non_null(strstr(text, "\"state\": \"degraded\""));
	assert_non_null(strstr(text, "\"waits\": {\"acked\": 0, \"degraded\": 2"));
	assert_non_null(strstr(text, "popnode_replication_ack_degraded_total 1\n"));
	assert_non_null(strstr(text, "popnode_replication_ack_degraded 1\n"));
	assert_non_null(strstr(text, "popnode_replication_ack_waits_total{result=\"degraded\"} 2\n"));
	assert_non_null(strstr(text, "popnode_replication_ack_wait_seconds_count 2\n"));
	assert_non_null(strstr(text, "replication: ack mirror, DEGRADED for "));
	evbuffer_free(b);

	/* a mirror that is catching up does not end it, but its acks count */
	repl_ack_mirror_state(&n, "pop2", false);
	repl_ack_advance(&n, "pop2", 5, 9);
	repl_ack_info(&n, &i);
	assert_string_equal(i.state, "degraded");
	assert_null(wait_tag(4, 4, &r));
	assert_int_equal(r, REPL_ACK_ACKED);
	/* in sync again: recovered, waits queue again */
	repl_ack_advance(&n, "pop2", 9, 9);
	repl_ack_info(&n, &i);
	assert_string_equal(i.state, "ok");
	assert_non_null(strstr(i.reason, "pop2 in sync"));
	assert_non_null(wait_tag(10, 10, &r));
	repl_ack_advance(&n, "pop2", 10, 10);
	assert_int_equal(n_seen, 2);
	assert_int_equal(seen[1].r, REPL_ACK_ACKED);
	teardown_node();
}

static void test_degraded_tempfail(void **state)
{
	struct repl_ack_info i;
	enum repl_ack_result r;

	setup_node(CONFIG_ACK_MIRROR, CONFIG_DEGRADED_TEMPFAIL, 60, 2);
	/* no mirror ever streamed: the start gets one timeout of grace */
	assert_non_null(wait_tag(1, 1, &r));
	assert_non_null(wait_tag(2, 2, &r));
	run_ms(20);
	assert_int_equal(n_seen, 0);
	run_ms(150);
	repl_ack_info(&n, &i);
	assert_string_equal(i.state, "degraded");
	assert_non_null(strstr(i.reason, "no mirror streamed yet"));
	assert_int_equal(n_seen, 2);
	assert_int_equal(seen[0].r, REPL_ACK_TEMPFAIL);
	assert_int_equal(seen[1].r, REPL_ACK_TEMPFAIL);
	assert_false(repl_ack_ok(seen[1].r));
	assert_null(wait_tag(3, 3, &r));
	assert_int_equal(r, REPL_ACK_TEMPFAIL);
	repl_ack_info(&n, &i);
	assert_int_equal(i.waits_tempfail, 3);
	teardown_node();
}

static void test_mirror_down_then_timeout(void **state)
{
	struct repl_ack_info i;
	enum repl_ack_result r;

	setup_node(CONFIG_ACK_MIRROR, CONFIG_DEGRADED_ACCEPT, 80, 2);
	repl_ack_mirror_state(&n, "pop2", true);
	repl_ack_advance(&n, "pop2", 3, 3);
	repl_ack_mirror_state(&n, "pop3", true);
	repl_ack_advance(&n, "pop3", 3, 3);
	repl_ack_info(&n, &i);
	assert_int_equal(i.in_sync, 2);
	/* a stream ending is not degraded yet: the timeout is */
	repl_ack_mirror_state(&n, "pop2", false);
	repl_ack_mirror_state(&n, "pop3", false);
	repl_ack_info(&n, &i);
	assert_int_equal(i.in_sync, 0);
	assert_string_equal(i.state, "ok");
	assert_non_null(wait_tag(4, 4, &r));
	run_ms(200);
	repl_ack_info(&n, &i);
	assert_string_equal(i.state, "degraded");
	assert_non_null(strstr(i.reason, "pop2 down, pop3 down"));
	assert_int_equal(n_seen, 1);
	assert_int_equal(seen[0].r, REPL_ACK_DEGRADED);
	teardown_node();
}

static void test_shutdown_releases(void **state)
{
	struct repl_ack_waiter *w;
	struct repl_ack_info i;
	enum repl_ack_result r;

	setup_node(CONFIG_ACK_MIRROR, CONFIG_DEGRADED_TEMPFAIL, 60000, 2);
	assert_non_null(wait_tag(5, 5, &r));
	w = wait_tag(6, 6, &r);
	assert_non_null(w);
	repl_ack_cancel(&w);
	repl_ack_fini(&n);
	assert_int_equal(n_seen, 1);
	assert_int_equal(seen[0].tag, 5);
	assert_int_equal(seen[0].r, REPL_ACK_TEMPFAIL);
	repl_ack_info(&n, &i);
	assert_string_equal(i.state, "stopped");
	/* later waits (the store's last callbacks) are answered at once */
	assert_null(wait_tag(7, 7, &r));
	assert_int_equal(r, REPL_ACK_TEMPFAIL);
	assert_null(repl_ack_wait_commit(&n, record, NULL, &r));
	assert_int_equal(r, REPL_ACK_TEMPFAIL);
	repl_ack_advance(&n, "pop2", 100, 100);	/* ignored */
	repl_ack_fini(&n);			/* twice: nothing */
	assert_int_equal(n_seen, 1);
	teardown_node();
}

static void test_many_waiters(void **state)
{
	enum { N = 2000 };
	static struct repl_ack_waiter *w[N];
	static unsigned expect[501];
	struct repl_ack_info i;
	enum repl_ack_result r;

	setup_node(CONFIG_ACK_MIRROR, CONFIG_DEGRADED_ACCEPT, 60000, 2);
	/* out of order, duplicates; every other one cancelled */
	for (int k = 0; k < N; k++) {
		int seq = (k * 7919) % 500 + 1;

		w[k] = repl_ack_wait(&n, (uint64_t)seq, record, (void *)(intptr_t)seq, &r);
		assert_non_null(w[k]);
		if (k % 2 == 1)
			expect[seq]++;
	}
	for (int k = 0; k < N; k += 2)
		repl_ack_cancel(&w[k]);
	repl_ack_info(&n, &i);
	assert_int_equal(i.waiting, N / 2);
	for (uint64_t s = 1; s <= 500; s++) {
		n_seen = 0;
		repl_ack_advance(&n, "pop2", s, 1000);
		/* exactly the waiters of seq s */
		assert_int_equal(n_seen, expect[s]);
		for (size_t k = 0; k < n_seen; k++) {
			assert_int_equal(seen[k].tag, (int)s);
			assert_int_equal(seen[k].r, REPL_ACK_ACKED);
		}
	}
	repl_ack_info(&n, &i);
	assert_int_equal(i.waiting, 0);
	assert_int_equal(i.waits_acked, N / 2);
	assert_int_equal(i.waits_cancelled, N / 2);
	teardown_node();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_applicable),
		cmocka_unit_test(test_order_wake_cancel),
		cmocka_unit_test(test_callback_reenters),
		cmocka_unit_test(test_degraded_accept_and_recovery),
		cmocka_unit_test(test_degraded_tempfail),
		cmocka_unit_test(test_mirror_down_then_timeout),
		cmocka_unit_test(test_shutdown_releases),
		cmocka_unit_test(test_many_waiters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
