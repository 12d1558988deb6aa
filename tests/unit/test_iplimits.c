/* test_iplimits.c - per-IP session counts and auth failure delay/block. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "iplimits.h"

static struct config cfg;

static void setup_cfg(void)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_sessions_per_ip = 2;
	cfg.auth_fail_delay_after = 2;
	cfg.auth_fail_delay_ms = 500;
	cfg.auth_fail_max = 5;
	cfg.auth_fail_window = 300;
}

static void test_sessions(void **state)
{
	struct iplimits *l;

	setup_cfg();
	l = iplimits_new(&cfg);
	assert_non_null(l);
	assert_true(iplimits_session_open(l, "10.0.0.1"));
	assert_true(iplimits_session_open(l, "10.0.0.1"));
	assert_false(iplimits_session_open(l, "10.0.0.1"));
	assert_true(iplimits_session_open(l, "10.0.0.2"));
	iplimits_session_close(l, "10.0.0.1");
	assert_true(iplimits_session_open(l, "10.0.0.1"));
	/* unix peers are not limited */
	for (int i = 0; i < 10; i++)
		assert_true(iplimits_session_open(l, ""));
	iplimits_free(&l);
	assert_null(l);
	iplimits_free(&l);
}

static void test_auth_delay_and_block(void **state)
{
	struct iplimits *l;
	long now = 1000;

	setup_cfg();
	l = iplimits_new(&cfg);
	assert_false(iplimits_auth_blocked(l, "192.0.2.1", now));
	assert_int_equal(iplimits_auth_failed(l, "192.0.2.1", now), 0);
	assert_int_equal(iplimits_auth_failed(l, "192.0.2.1", now), 0);
	assert_int_equal(iplimits_auth_failed(l, "192.0.2.1", now), 500);
	assert_int_equal(iplimits_auth_failed(l, "192.0.2.1", now), 1000);
	assert_false(iplimits_auth_blocked(l, "192.0.2.1", now));
	iplimits_auth_failed(l, "192.0.2.1", now);
	assert_true(iplimits_auth_blocked(l, "192.0.2.1", now));
	assert_false(iplimits_auth_blocked(l, "192.0.2.9", now));
	/* the window passes */
	assert_false(iplimits_auth_blocked(l, "192.0.2.1", now + 301));
	/* success clears */
	iplimits_auth_failed(l, "192.0.2.2", now);
	iplimits_auth_failed(l, "192.0.2.2", now);
	iplimits_auth_failed(l, "192.0.2.2", now);
	iplimits_auth_ok(l, "192.0.2.2");
	assert_int_equal(iplimits_auth_failed(l, "192.0.2.2", now), 0);
	iplimits_free(&l);
}

static void test_delay_cap(void **state)
{
	struct iplimits *l;

	setup_cfg();
	cfg.auth_fail_max = 1000;
	cfg.auth_fail_delay_ms = 5000;
	l = iplimits_new(&cfg);
	for (int i = 0; i < 10; i++)
		assert_true(iplimits_auth_failed(l, "192.0.2.3", 1) <= 15000);
	assert_int_equal(iplimits_auth_failed(l, "192.0.2.3", 1), 15000);
	iplimits_free(&l);
}

static void test_table_full_fails_closed(void **state)
{
	struct iplimits *l;
	char ip[48];

	setup_cfg();
	cfg.max_sessions_per_ip = 1;
	l = iplimits_new(&cfg);
	/* 200,000 addresses with one old failure each: swept when full */
	for (unsigned i = 0; i < 200000; i++) {
		snprintf(ip, sizeof(ip), "2001:db8::%x:%x", i >> 16, i & 0xffff);
		iplimits_auth_failed(l, ip, 1);
	}
	assert_true(iplimits_session_open(l, "198.51.100.1"));
	/* now fill it with live sessions, which cannot be swept */
	for (unsigned i = 0; i < 200000; i++) {
		snprintf(ip, sizeof(ip), "2001:db8:1::%x:%x", i >> 16, i & 0xffff);
		iplimits_session_open(l, ip);
	}
	assert_false(iplimits_session_open(l, "198.51.100.2"));
	iplimits_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_auth_delay_and_block),
		cmocka_unit_test(test_delay_cap),
		cmocka_unit_test(test_table_full_fails_closed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
