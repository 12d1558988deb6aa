/*
 * test_anycast_health.c - the announce/withdraw state machine
 * (anycast/health.c): start-up, rise and fall, each hard condition, each
 * soft check at and past its threshold, the exact reason texts, hold-down,
 * a clock that goes backwards, and long runs of random flapping input
 * against the machine's promises: it never goes from withdrawn to
 * announced sooner than hold_down after a withdraw, never announces on a
 * failing tick, never announces without `rise` passing ticks before it,
 * and never withdraws without a hard condition or `fall` failing ticks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "health.h"

#define GIB (1024ULL * 1024 * 1024)
#define MIB (1024ULL * 1024)
#define TICK 200 /* ms, the default health_interval */

/* The shipped defaults (docs/config.md). */
static const struct health_conf defconf = {
	.min_free_disk = GIB,
	.max_loop_delay_ms = 500,
	.max_replication_lag_ms = 60000,
	.require_peer = false,
	.rise = 3,
	.fall = 2,
	.hold_down_ms = 10000,
	.heartbeat_timeout_ms = 600,
};

/* Everything healthy. */
static struct health_input good(void)
{
	return (struct health_input){
		.mail_alive = true,
		.heartbeat_age_ms = 150,
		.drained = false,
		.bird_up = true,
		.store_writable = true,
		.free_disk_bytes = 50 * GIB,
		.loop_delay_ms = 3,
		.listeners_up = true,
		.serving = true,
		.replication_lag_known = true,
		.replication_lag_ms = 800,
		.peers_reachable = 2,
	};
}

/* Tick n times with in, TICK ms apart from *now; returns how many ticks
 * reported a change. */
static int run(struct health *h, uint64_t *now, const struct health_input *in, int n)
{
	int changes = 0;

	for (int i = 0; i < n; i++) {
		*now += TICK;
		changes += health_tick(h, *now, in);
	}
	return changes;
}

/* A machine at defaults, announced after its start-up (now = 600). */
static void announced(struct health *h, uint64_t *now)
{
	struct health_input in = good();

	health_init(h, &defconf);
	*now = 0;
	assert_int_equal(run(h, now, &in, 3), 1);
	assert_int_equal(health_desired(h), HEALTH_ANNOUNCE);
}

/* ---- start-up ------------------------------------------------------------- */

static void test_startup(void **state)
{
	struct health h;
	struct health_input in = good();
	uint64_t now = 1000000; /* a monotonic clock does not start at 0 */

	health_init(&h, &defconf);
	assert_int_equal(health_desired(&h), HEALTH_WITHDRAW);
	assert_string_equal(health_reason(&h), "starting");
	assert_int_equal(health_hold_down_left(&h, now), 0);
	/* rise = 3: two passing ticks are not enough, the third announces,
	 * with no hold-down at the first start */
	assert_false(health_tick(&h, now += TICK, &in));
	assert_false(health_tick(&h, now += TICK, &in));
	assert_int_equal(health_desired(&h), HEALTH_WITHDRAW);
	assert_true(health_tick(&h, now += TICK, &in));
	assert_int_equal(health_desired(&h), HEALTH_ANNOUNCE);
	assert_string_equal(health_reason(&h), "all checks pass (3 in a row)");
	assert_int_equal(h.changed_at_ms, now);
	assert_int_equal(health_failing(&h), 0);
	assert_string_equal(health_checks_text(&h), "");
	/* steady: no more changes */
	assert_int_equal(run(&h, &now, &in, 100), 0);
	assert_int_equal(health_desired(&h), HEALTH_ANNOUNCE);
	assert_string_equal(health_state_name(HEALTH_ANNOUNCE), "announce");
	assert_string_equal(health_state_name(HEALTH_WITHDRAW), "withdraw");
}

static void test_startup_interrupted(void **state)
{
	struct health h;
	struct health_input in = good(), bad = good();
	uint64_t now = 0;

	bad.loop_delay_ms = 501;
	health_init(&h, &defconf);
	/* pass, pass, fail: the run starts over */
	assert_int_equal(run(&h, &now, &in, 2), 0);
	assert_false(health_tick(&h, now += TICK, &bad));
	assert_int_equal(h.pass_run, 0);
	assert_int_equal(run(&h, &now, &in, 2), 0);
	assert_int_equal(health_desired(&h), HEALTH_WITHDRAW);
	assert_true(health_tick(&h, now += TICK, &in));
	assert_int_equal(health_desired(&h), HEALTH_ANNOUNCE);

	/* failing from the start: stays withdrawn, no change reported, and the
	 * reason stays "starting" while the failing checks are visible */
	health_init(&h, &defconf);
	now = 0;
	bad = good();
	bad.bird_up = false;
	assert_int_equal(run(&h, &now, &bad, 50), 0);
	assert_int_equal(health_desired(&h), HEALTH_WITHDRAW);
	assert_string_equal(health_reason(&h), "starting");
	assert_string_equal(health_checks_text(&h), "bird down");
	assert_int_equal(health_failing(&h), HEALTH_F_BIRD_DOWN);
	/* once it passes, rise ticks announce: still no hold-down, since it
	 * never was announced */
	assert_int_equal(run(&h, &now, &in, 3), 1);
	assert_int_equal(health_desired(&h), HEALTH_ANNOUNCE);
}

static void test_rise_fall_zero_is_one(void **state)
{
	struct health_conf conf = defconf;
	struct health h;
	struct health_input in = good(), bad = good();
	uint64_t now = 0;

	conf.rise = 0;
	conf.fall = 0;
	conf.hold_down_ms = 0;
	bad.listeners_up = false;
	health_init(&h, &conf);
	assert_int_equal(h.conf.rise, 1);
	assert_int_equal(h.conf.fall, 1);
	assert_true(health_tick(&h, now += TICK, &in));
	assert_true(health_tick(&h, now += TICK, &bad));
	assert_true(health_tick(&h, now += TICK, &in));
	assert_int_equal(health_desired(&h), HEALTH_ANNOUNCE);
}

/* ---- fall ------------------------------------------------------------------- */

static void test_fall(void **state)
{
	struct health h;
	struct health_input in = good(), bad = good();
	uint64_t now;

	announced(&h, &now);
	bad.free_disk_bytes = 812 * MIB;
	/* one failing tick (fall = 2) is tolerated, and a pass resets it */
	assert_false(health_tick(&h, now += TICK, &bad));
	assert_int_equal(health_desired(&h), HEALTH_ANNOUNCE);
	assert_int_equal(health_failing(&h), HEALTH_F_DISK);
	assert_string_equal(health_checks_text(&h), "free_disk 812M < 1G");
	assert_false(health_tick(&h, now += TICK, &in));
	assert_false(health_tick(&h, now += TICK, &bad));
	assert_false(health_tick(&h, now += TICK, &in));
	assert_int_equal(health_desired(&h), HEALTH_ANNOUNCE);
	/* two in a row withdraw */
	assert_false(health_tick(&h, now += TICK, &bad));
	assert_true(health_tick(&h, now += TICK, &bad));
	assert_int_equal(health_desired(&h), HEALTH_WITHDRAW);
	assert_string_equal(health_reason(&h), "free_disk 812M < 1G");
	assert_int_equal(h.withdrawn_at_ms, now);
	/* different soft checks on consecutive ticks count together */
	announced(&h, &now);
	bad = good();
	bad.store_writable = false;
	assert_false(health_tick(&h, now += TICK, &bad));
	bad = good();
	bad.loop_delay_ms = 730;
	assert_true(health_tick(&h, now += TICK, &bad));
	assert_string_equal(health_reason(&h), "loop_delay 730ms > 500ms");

	/* a larger fall */
	struct health_conf conf = defconf;
	conf.fall = 5;
	health_init(&h, &conf);
	now = 0;
	assert_int_equal(run(&h, &now, &in, 3), 1);
	assert_int_equal(run(&h, &now, &bad, 4), 0);
	assert_int_equal(health_desired(&h), HEALTH_ANNOUNCE);
	assert_int_equal(run(&h, &now, &bad, 1), 1);
	assert_int_equal(health_desired(&h), HEALTH_WITHDRAW);
}

/* ---- hard conditions ---------------------------------------------------------- */

static void hard_case(void (*spoil)(struct health_input *), unsigned bit, const char *reason)
{
	struct health_conf conf = defconf;
	struct health h;
	struct health_input in = good(), bad = good();
	uint64_t now = 0;

	conf.fall = 10; /* a soft failure would take 10 ticks */
	spoil(&bad);
	health_init(&h, &conf);
	assert_int_equal(run(&h, &now, &in, 3), 1);
	/* mid-way through a run of soft failures, too */
	in.free_disk_bytes = 0;
	assert_int_equal(run(&h, &now, &in, 3), 0);
	assert_true(health_tick(&h, now += TICK, &bad));
	assert_int_equal(health_desired(&h), HEALTH_WITHDRAW);
	assert_int_equal(health_failing(&h) & HEALTH_F_HARD, bit);
	assert_string_equal(health_reason(&h), reason);

	/* and from a steady announce: the first tick withdraws */
	health_init(&h, &conf);
	in = good();
	now = 0;
	assert_int_equal(run(&h, &now, &in, 3), 1);
	assert_true(health_tick(&h, now += TICK, &bad));
	assert_int_equal(health_desired(&h), HEALTH_WITHDRAW);
	/* staying bad changes nothing more */
	assert_int_equal(run(&h, &now, &bad, 200), 0);
}

static void spoil_mail(struct health_input *in)
{
	in->mail_alive = false;
	/* what it reported before dying is stale and not judged */
	in->free_disk_bytes = 0;
	in->store_writable = false;
	in->heartbeat_age_ms = 99999;
}

static void spoil_heartbeat(struct health_input *in)
{
	in->heartbeat_age_ms = 1200;
	in->listeners_up = false; /* stale */
}

static void spoil_drained(struct health_input *in)
{
	in->drained = true;
}

static void spoil_bird(struct health_input *in)
{
	in->bird_up = false;
}

static void spoil_drained_bird_disk(struct health_input *in)
{
	in->drained = true;
	in->bird_up = false;
	in->free_disk_bytes = 1023 * MIB + 512 * 1024;
}

static void test_hard_conditions(void **state)
{
	hard_case(spoil_mail, HEALTH_F_MAIL_DEAD, "mail process dead");
	hard_case(spoil_heartbeat, HEALTH_F_HEARTBEAT, "heartbeat_age 1.2s > 600ms");
	hard_case(spoil_drained, HEALTH_F_DRAINED, "drained");
	hard_case(spoil_bird, HEALTH_F_BIRD_DOWN, "bird down");
	/* several at once, with a soft one: all named, hard ones first */
	hard_case(spoil_drained_bird_disk, HEALTH_F_DRAINED | HEALTH_F_BIRD_DOWN,
		  "drained, bird down, free_disk 1023.5M < 1G");
}

static void test_heartbeat_boundary(void **state)
{
	struct health h;
	struct health_input in = good();
	uint64_t now;

	announced(&h, &now);
	in.heartbeat_age_ms = 600; /* exactly the timeout: not yet stuck */
	assert_int_equal(run(&h, &now, &in, 10), 0);
	assert_int_equal(health_failing(&h), 0);
	in.heartbeat_age_ms = 601;
	assert_true(health_tick(&h, now += TICK, &in));
	assert_string_equal(health_reason(&h), "heartbeat_age 601ms > 600ms");
	/* a dead process is reported as dead, not as a stale heartbeat */
	in.mail_alive = false;
	health_tick(&h, now += TICK, &in);
	assert_int_equal(health_failing(&h), HEALTH_F_MAIL_DEAD);
	assert_string_equal(health_checks_text(&h), "mail process dead");
}

static void test_undrain(void **state)
{
	struct health h;
	struct health_input in = good(), drained = good();
	uint64_t now;

	drained.drained = true;
	announced(&h, &now);
	assert_true(health_tick(&h, now += TICK, &drained));
	assert_string_equal(health_reason(&h), "drained");
	uint64_t t_withdraw = now;
	/* undrained: back after rise ticks once hold-down has run, like any
	 * other withdraw */
	assert_int_equal(run(&h, &now, &in, 3), 0);
	assert_int_equal(health_hold_down_left(&h, now), 10000 - (now - t_withdraw));
	while (health_desired(&h) == HEALTH_WITHDRAW)
		health_tick(&h, now += TICK, &in);
	assert_int_equal(now - t_withdraw, 10000);
}

/* ---- the soft checks ---------------------------------------------------------- */

static unsigned failing_with(const struct health_conf *conf, const struct health_input *in,
			     char *text, size_t sz)
{
	struct health h;

	health_init(&h, conf);
	health_tick(&h, 1000, in);
	snprintf(text, sz, "%s", health_checks_text(&h));
	return health_failing(&h);
}

static void test_soft_checks(void **state)
{
	struct health_conf conf = defconf;
	struct health_input in;
	char t[HEALTH_TEXT_MAX];

	in = good();
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), 0);
	assert_string_equal(t, "");

	in = good();
	in.store_writable = false;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), HEALTH_F_STORE);
	assert_string_equal(t, "store not writable");

	in = good();
	in.free_disk_bytes = GIB; /* exactly the minimum passes */
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), 0);
	in.free_disk_bytes = GIB - 1;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), HEALTH_F_DISK);
	assert_string_equal(t, "free_disk 1023.9M < 1G");
	in.free_disk_bytes = 0;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), HEALTH_F_DISK);
	assert_string_equal(t, "free_disk 0 < 1G");
	in.free_disk_bytes = 1000;
	conf.min_free_disk = 1536 * 1024;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), HEALTH_F_DISK);
	assert_string_equal(t, "free_disk 1000 < 1.5M");
	conf.min_free_disk = 0; /* not checked */
	in.free_disk_bytes = 0;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), 0);
	conf = defconf;

	in = good();
	in.loop_delay_ms = 500;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), 0);
	in.loop_delay_ms = 501;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), HEALTH_F_LOOP_DELAY);
	assert_string_equal(t, "loop_delay 501ms > 500ms");
	in.loop_delay_ms = 2000;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), HEALTH_F_LOOP_DELAY);
	assert_string_equal(t, "loop_delay 2s > 500ms");

	in = good();
	in.listeners_up = false;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), HEALTH_F_LISTENERS);
	assert_string_equal(t, "listeners down");

	in = good();
	in.replication_lag_ms = 60000;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), 0);
	in.replication_lag_ms = 95000;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), HEALTH_F_REPL_LAG);
	assert_string_equal(t, "replication_lag 95s > 60s");
	in.replication_lag_ms = 60001;
	failing_with(&conf, &in, t, sizeof(t));
	assert_string_equal(t, "replication_lag 60001ms > 60s");
	in.replication_lag_ms = 61500;
	failing_with(&conf, &in, t, sizeof(t));
	assert_string_equal(t, "replication_lag 61.5s > 60s");
	/* unknown (no mirror, not measured yet) passes */
	in.replication_lag_known = false;
	in.replication_lag_ms = 999999999;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), 0);
	/* 0 = not checked */
	conf.max_replication_lag_ms = 0;
	in.replication_lag_known = true;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), 0);
	conf = defconf;

	in = good();
	in.peers_reachable = 0;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), 0); /* not required */
	conf.require_peer = true;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), HEALTH_F_PEERS);
	assert_string_equal(t, "no peer reachable");
	in.peers_reachable = 1;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), 0);

	/* a POP still checking or rebuilding its store does not attract
	 * clients it would only refuse */
	in = good();
	in.serving = false;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)), HEALTH_F_SERVING);
	assert_string_equal(t, "not serving its users yet (checking or rebuilding from mirrors)");

	/* everything at once: every check named, in order, and it fits */
	in = good();
	in.heartbeat_age_ms = 0;
	in.drained = true;
	in.bird_up = false;
	in.store_writable = false;
	in.free_disk_bytes = 812 * MIB + 300 * 1024;
	in.loop_delay_ms = 18446744073709551615ULL;
	in.listeners_up = false;
	in.replication_lag_ms = 18446744073709551615ULL;
	in.peers_reachable = 0;
	assert_int_equal(failing_with(&conf, &in, t, sizeof(t)),
			 HEALTH_F_DRAINED | HEALTH_F_BIRD_DOWN | HEALTH_F_STORE | HEALTH_F_DISK |
				 HEALTH_F_LOOP_DELAY | HEALTH_F_LISTENERS | HEALTH_F_REPL_LAG |
				 HEALTH_F_PEERS);
	assert_string_equal(t, "drained, bird down, store not writable, free_disk 812.2M < 1G, "
			       "loop_delay 18446744073709551615ms > 500ms, listeners down, "
			       "replication_lag 18446744073709551615ms > 60s, no peer reachable");
}

/* ---- hold-down ---------------------------------------------------------------- */

static void test_hold_down(void **state)
{
	struct health h;
	struct health_input in = good(), bad = good();
	uint64_t now, t_withdraw;

	bad.store_writable = false;
	announced(&h, &now);
	assert_int_equal(run(&h, &now, &bad, 2), 1);
	t_withdraw = now;
	assert_int_equal(health_hold_down_left(&h, now), 10000);
	/* healthy again at once: rise is reached after 3 ticks, but hold-down
	 * keeps it withdrawn for 10s from the withdraw */
	assert_int_equal(run(&h, &now, &in, 3), 0);
	assert_int_equal(h.pass_run, 3);
	assert_int_equal(health_hold_down_left(&h, now), 10000 - 600);
	while (now + TICK < t_withdraw + 10000) {
		assert_false(health_tick(&h, now += TICK, &in));
		assert_int_equal(health_desired(&h), HEALTH_WITHDRAW);
	}
	assert_true(health_tick(&h, now += TICK, &in));
	assert_int_equal(now, t_withdraw + 10000);
	assert_int_equal(health_desired(&h), HEALTH_ANNOUNCE);
	assert_string_equal(health_reason(&h), "all checks pass (50 in a row, withdrawn 10s ago)");
	assert_int_equal(health_hold_down_left(&h, now), 0);

	/* hold-down over, but rise not reached yet: rise decides */
	assert_int_equal(run(&h, &now, &bad, 2), 1);
	t_withdraw = now;
	now += 60000;
	assert_int_equal(health_hold_down_left(&h, now), 0);
	assert_false(health_tick(&h, now, &in));
	assert_false(health_tick(&h, now += TICK, &in));
	assert_true(health_tick(&h, now += TICK, &in));
	assert_string_equal(health_reason(&h),
			    "all checks pass (3 in a row, withdrawn 60.4s ago)");

	/* a failure during hold-down restarts the rise count, not the
	 * hold-down (it counts from the withdraw) */
	assert_int_equal(run(&h, &now, &bad, 2), 1);
	t_withdraw = now;
	assert_int_equal(run(&h, &now, &in, 20), 0);
	assert_false(health_tick(&h, now += TICK, &bad));
	assert_int_equal(health_desired(&h), HEALTH_WITHDRAW);
	while (now + TICK < t_withdraw + 10000)
		assert_false(health_tick(&h, now += TICK, &in));
	/* 10s after the withdraw, with more than rise passes since the last
	 * failure: this tick announces */
	assert_true(health_tick(&h, now += TICK, &in));
	assert_int_equal(health_desired(&h), HEALTH_ANNOUNCE);
}

static void test_clock_backwards(void **state)
{
	struct health h;
	struct health_input in = good(), bad = good();
	uint64_t now;

	bad.bird_up = false;
	announced(&h, &now);
	now = 100000;
	assert_true(health_tick(&h, now, &bad));
	/* the clock jumps back 50s: the hold-down restarts from there rather
	 * than waiting 60s, and rather than ending early */
	now = 50000;
	assert_false(health_tick(&h, now, &in));
	assert_int_equal(h.withdrawn_at_ms, 50000);
	assert_int_equal(health_hold_down_left(&h, now), 10000);
	assert_int_equal(run(&h, &now, &in, 49), 0);
	assert_true(health_tick(&h, now += TICK, &in));
	assert_int_equal(now, 60000);
}

/* ---- flapping ----------------------------------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(void)
{
	/* xorshift64*: deterministic, so a failure can be replayed */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

/* Random input: mostly healthy, with bursts; p_bad in percent. */
static struct health_input random_input(unsigned p_bad)
{
	struct health_input in = good();

	if (rnd() % 100 >= p_bad)
		return in;
	switch (rnd() % 10) {
	case 0: in.mail_alive = false; break;
	case 1: in.heartbeat_age_ms = 601 + rnd() % 5000; break;
	case 2: in.drained = true; break;
	case 3: in.bird_up = false; break;
	case 4: in.store_writable = false; break;
	case 5: in.free_disk_bytes = rnd() % GIB; break;
	case 6: in.loop_delay_ms = 501 + rnd() % 3000; break;
	case 7: in.listeners_up = false; break;
	case 8: in.replication_lag_ms = 60001 + rnd() % 100000; break;
	default: in.heartbeat_age_ms = 600; in.loop_delay_ms = 500; break; /* boundary: passes */
	}
	return in;
}

static void flap_run(const struct health_conf *conf, uint64_t seed, unsigned p_bad, int ticks,
		     int *announces_out)
{
	struct health h;
	uint64_t now = 5000, last_withdraw = 0;
	unsigned pass_run = 0, fail_run = 0;
	bool ever_announced = false;
	enum health_state prev = HEALTH_WITHDRAW;
	int announces = 0;

	rng_state = seed;
	health_init(&h, conf);
	for (int i = 0; i < ticks; i++) {
		struct health_input in = random_input(p_bad);
		bool changed;

		now += 50 + rnd() % 400; /* jittery ticks */
		changed = health_tick(&h, now, &in);
		assert_int_equal(changed, health_desired(&h) != prev);
		if (health_failing(&h) != 0) {
			fail_run++;
			pass_run = 0;
		} else {
			pass_run++;
			fail_run = 0;
		}
		if (changed && health_desired(&h) == HEALTH_ANNOUNCE) {
			/* never on a failing tick, only after rise passes, and
			 * never sooner than hold_down after the last withdraw */
			assert_int_equal(health_failing(&h), 0);
			assert_true(pass_run >= h.conf.rise);
			if (ever_announced)
				assert_true(now - last_withdraw >= conf->hold_down_ms);
			assert_non_null(strstr(health_reason(&h), "all checks pass"));
			ever_announced = true;
			announces++;
		}
		if (changed && health_desired(&h) == HEALTH_WITHDRAW) {
			assert_true((health_failing(&h) & HEALTH_F_HARD) != 0 ||
				    fail_run >= h.conf.fall);
			assert_string_equal(health_reason(&h), health_checks_text(&h));
			assert_true(strlen(health_reason(&h)) > 0);
			last_withdraw = now;
		}
		prev = health_desired(&h);
	}
	*announces_out = announces;
}

static void test_flapping(void **state)
{
	struct health_conf conf = defconf;
	int announces;

	/* many seeds and failure rates, default timers */
	for (uint64_t seed = 1; seed <= 40; seed++)
		for (unsigned p = 5; p <= 95; p += 15)
			flap_run(&conf, seed * 0x9e3779b97f4a7c15ULL, p, 3000, &announces);

	/* a failure rate that makes it announce and withdraw often: over
	 * 20000 ticks of at most 450 ms (at most 9000 s) and hold-down 10s,
	 * it cannot announce more than 900 + 1 times, and it does flap */
	flap_run(&conf, 42, 20, 20000, &announces);
	assert_true(announces > 10);
	assert_true(announces <= 901);

	/* other timers, including no hold-down at all and rise/fall of 1 */
	conf.rise = 1;
	conf.fall = 1;
	conf.hold_down_ms = 0;
	for (uint64_t seed = 1; seed <= 10; seed++)
		flap_run(&conf, seed, 30, 3000, &announces);
	conf.rise = 5;
	conf.fall = 3;
	conf.hold_down_ms = 60000;
	for (uint64_t seed = 1; seed <= 10; seed++)
		flap_run(&conf, seed, 10, 5000, &announces);
}

/* Strict alternation, the worst flapping: with rise = 3 it never comes
 * back once withdrawn; with rise = 1 it comes back exactly once per
 * hold-down. */
static void test_alternating(void **state)
{
	struct health_conf conf = defconf;
	struct health h;
	struct health_input in = good(), bad = good();
	uint64_t now;
	int changes = 0;

	bad.bird_up = false;
	announced(&h, &now);
	for (int i = 0; i < 1000; i++)
		changes += health_tick(&h, now += TICK, (i & 1) ? &in : &bad);
	assert_int_equal(changes, 1);
	assert_int_equal(health_desired(&h), HEALTH_WITHDRAW);

	conf.rise = 1;
	health_init(&h, &conf);
	now = 0;
	changes = 0;
	assert_true(health_tick(&h, now += TICK, &in));
	/* 1000 ticks of 200 ms = 200 s; each cycle: withdraw, then 10 s */
	for (int i = 0; i < 1000; i++)
		changes += health_tick(&h, now += TICK, (i & 1) ? &in : &bad);
	/* withdraw at t, announce at the first passing tick >= t + 10s, then
	 * the next failing tick withdraws: 2 changes per ~10.2s */
	assert_true(changes >= 2 * 19 && changes <= 2 * 20 + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_startup),
		cmocka_unit_test(test_startup_interrupted),
		cmocka_unit_test(test_rise_fall_zero_is_one),
		cmocka_unit_test(test_fall),
		cmocka_unit_test(test_hard_conditions),
		cmocka_unit_test(test_heartbeat_boundary),
		cmocka_unit_test(test_undrain),
		cmocka_unit_test(test_soft_checks),
		cmocka_unit_test(test_hold_down),
		cmocka_unit_test(test_clock_backwards),
		cmocka_unit_test(test_flapping),
		cmocka_unit_test(test_alternating),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
