/*
 * health.c - the announce/withdraw state machine (health.h).
 *
 * Each tick first turns the inputs into a set of failing checks and a
 * text naming them with their values, then moves the counters:
 *
 *   hard failure            -> WITHDRAW now
 *   soft failure            -> fail_run++; WITHDRAW when fail_run >= fall
 *   everything passes       -> pass_run++; ANNOUNCE when pass_run >= rise
 *                              and hold_down has run since the last withdraw
 *
 * A failing tick of either kind resets pass_run, a passing one fail_run.
 * Hold-down counts from the last ANNOUNCE -> WITHDRAW change only: at the
 * first start there was no withdraw, so none applies.  If the caller's
 * clock ever goes backwards, the hold-down starts again from the new time
 * (it may grow, never shrink).
 */
#include "health.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define KIB 1024ULL

struct text {
	char *buf;
	size_t size, len;
	bool full;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append ", " + item.  An item that does not fit ends the text with "..."
 * (or is dropped when even that does not fit), and nothing more is added. */
static void text_add(struct text *t, const char *fmt, ...)
{
	const char *sep = t->len > 0 ? ", " : "";
	char item[96];
	va_list ap;
	size_t need;

	if (t->full)
		return;
	va_start(ap, fmt);
	vsnprintf(item, sizeof(item), fmt, ap);
	va_end(ap);
	need = strlen(sep) + strlen(item);
	if (t->len + need >= t->size) {
		t->full = true;
		if (t->len + 4 <= t->size) {
			memcpy(t->buf + t->len, "...", 4);
			t->len += 3;
		}
		return;
	}
	snprintf(t->buf + t->len, t->size - t->len, "%s%s", sep, item);
	t->len += need;
}

/* "812M", "1G", "1.5G", "512": the largest unit not above v, one decimal
 * (truncated) unless exact. */
static void fmt_bytes(char *buf, size_t sz, uint64_t v)
{
	static const struct { uint64_t mul; char c; } units[] = {
		{ KIB * KIB * KIB * KIB, 'T' }, { KIB * KIB * KIB, 'G' }, { KIB * KIB, 'M' },
		{ KIB, 'K' },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		uint64_t m = units[i].mul;

		if (v < m)
			continue;
		if (v % m == 0)
			snprintf(buf, sz, "%llu%c", (unsigned long long)(v / m), units[i].c);
		else
			snprintf(buf, sz, "%llu.%llu%c", (unsigned long long)(v / m),
				 (unsigned long long)((v % m) * 10 / m), units[i].c);
		return;
	}
	snprintf(buf, sz, "%llu", (unsigned long long)v);
}

/* "730ms", "60s", "1.2s", "1234ms": never rounded. */
static void fmt_ms(char *buf, size_t sz, uint64_t v)
{
	if (v >= 1000 && v % 1000 == 0)
		snprintf(buf, sz, "%llus", (unsigned long long)(v / 1000));
	else if (v >= 1000 && v % 100 == 0)
		snprintf(buf, sz, "%llu.%llus", (unsigned long long)(v / 1000),
			 (unsigned long long)(v % 1000 / 100));
	else
		snprintf(buf, sz, "%llums", (unsigned long long)v);
}

/* The failing checks of one tick, as bits and as text. */
static unsigned evaluate(const struct health_conf *c, const struct health_input *in,
			 char *buf, size_t sz)
{
	struct text t = { buf, sz, 0, false };
	char a[32], b[32];
	unsigned f = 0;
	bool reports_fresh = true;

	buf[0] = '\0';
	if (!in->mail_alive) {
		f |= HEALTH_F_MAIL_DEAD;
		text_add(&t, "mail process dead");
		reports_fresh = false;
	} else if (in->heartbeat_age_ms > c->heartbeat_timeout_ms) {
		f |= HEALTH_F_HEARTBEAT;
		fmt_ms(a, sizeof(a), in->heartbeat_age_ms);
		fmt_ms(b, sizeof(b), c->heartbeat_timeout_ms);
		text_add(&t, "heartbeat_age %s > %s", a, b);
		reports_fresh = false;
	}
	if (in->drained) {
		f |= HEALTH_F_DRAINED;
		text_add(&t, "drained");
	}
	if (!in->bird_up) {
		f |= HEALTH_F_BIRD_DOWN;
		text_add(&t, "bird down");
	}
	if (!reports_fresh)
		return f;
	if (!in->store_writable) {
		f |= HEALTH_F_STORE;
		text_add(&t, "store not writable");
	}
	if (c->min_free_disk > 0 && in->free_disk_bytes < c->min_free_disk) {
		f |= HEALTH_F_DISK;
		fmt_bytes(a, sizeof(a), in->free_disk_bytes);
		fmt_bytes(b, sizeof(b), c->min_free_disk);
		text_add(&t, "free_disk %s < %s", a, b);
	}
	if (in->loop_delay_ms > c->max_loop_delay_ms) {
		f |= HEALTH_F_LOOP_DELAY;
		fmt_ms(a, sizeof(a), in->loop_delay_ms);
		fmt_ms(b, sizeof(b), c->max_loop_delay_ms);
		text_add(&t, "loop_delay %s > %s", a, b);
	}
	if (!in->listeners_up) {
		f |= HEALTH_F_LISTENERS;
		text_add(&t, "listeners down");
	}
	if (!in->serving) {
		f |= HEALTH_F_SERVING;
		text_add(&t, "not serving its users yet (checking or rebuilding from mirrors)");
	}
	if (c->max_replication_lag_ms > 0 && in->replication_lag_known &&
	    in->replication_lag_ms > c->max_replication_lag_ms) {
		f |= HEALTH_F_REPL_LAG;
		fmt_ms(a, sizeof(a), in->replication_lag_ms);
		fmt_ms(b, sizeof(b), c->max_replication_lag_ms);
		text_add(&t, "replication_lag %s > %s", a, b);
	}
	if (c->require_peer && in->peers_reachable == 0) {
		f |= HEALTH_F_PEERS;
		text_add(&t, "no peer reachable");
	}
	return f;
}

static unsigned at_least_1(unsigned v)
{
	return v == 0 ? 1 : v;
}

static void inc(unsigned *v)
{
	if (*v < ~0u)
		(*v)++;
}

void health_init(struct health *h, const struct health_conf *conf)
{
	memset(h, 0, sizeof(*h));
	h->conf = *conf;
	h->conf.rise = at_least_1(conf->rise);
	h->conf.fall = at_least_1(conf->fall);
	h->state = HEALTH_WITHDRAW;
	snprintf(h->reason, sizeof(h->reason), "starting");
}

uint64_t health_hold_down_left(const struct health *h, uint64_t now_ms)
{
	uint64_t since;

	if (h->state != HEALTH_WITHDRAW || !h->announced_once)
		return 0;
	since = now_ms >= h->withdrawn_at_ms ? now_ms - h->withdrawn_at_ms : 0;
	return since >= h->conf.hold_down_ms ? 0 : h->conf.hold_down_ms - since;
}

bool health_tick(struct health *h, uint64_t now_ms, const struct health_input *in)
{
	h->failing = evaluate(&h->conf, in, h->checks, sizeof(h->checks));
	if (h->announced_once && now_ms < h->withdrawn_at_ms)
		h->withdrawn_at_ms = now_ms; /* clock went back: restart the hold-down */

	if (h->failing != 0) {
		h->pass_run = 0;
		inc(&h->fail_run);
		if (h->state == HEALTH_ANNOUNCE &&
		    ((h->failing & HEALTH_F_HARD) != 0 || h->fail_run >= h->conf.fall)) {
			h->state = HEALTH_WITHDRAW;
			h->withdrawn_at_ms = now_ms;
			h->changed_at_ms = now_ms;
			snprintf(h->reason, sizeof(h->reason), "%s", h->checks);
			return true;
		}
		return false;
	}

	h->fail_run = 0;
	inc(&h->pass_run);
	if (h->state == HEALTH_WITHDRAW && h->pass_run >= h->conf.rise &&
	    health_hold_down_left(h, now_ms) == 0) {
		char held[64] = "";

		if (h->announced_once) {
			char d[32];

			fmt_ms(d, sizeof(d), now_ms - h->withdrawn_at_ms);
			snprintf(held, sizeof(held), ", withdrawn %s ago", d);
		}
		h->state = HEALTH_ANNOUNCE;
		h->announced_once = true;
		h->changed_at_ms = now_ms;
		snprintf(h->reason, sizeof(h->reason), "all checks pass (%u in a row%s)", h->pass_run,
			 held);
		return true;
	}
	return false;
}

enum health_state health_desired(const struct health *h)
{
	return h->state;
}

const char *health_state_name(enum health_state s)
{
	return s == HEALTH_ANNOUNCE ? "announce" : "withdraw";
}

const char *health_reason(const struct health *h)
{
	return h->reason;
}

unsigned health_failing(const struct health *h)
{
	return h->failing;
}

const char *health_checks_text(const struct health *h)
{
	return h->checks;
}
