/*
 * health.h - when to announce the anycast service and when to withdraw it:
 * a pure state machine.  No I/O and no clock of its own: the caller (the
 * privileged parent) gathers the check results every health_interval and
 * passes them in with the time, and acts on the desired state it gets
 * back (anycast_if_set() in addr.h).
 *
 * Rules (docs/anycast.md, "Health and announce/withdraw"):
 * - Start withdrawn; announce after `rise` consecutive passing ticks
 *   (no hold-down at the first start).
 * - Withdraw after `fall` consecutive failing ticks.
 * - Hard conditions withdraw at once, whatever `fall` says: the mail
 *   process dead, its heartbeat older than heartbeat_timeout (stuck,
 *   SIGSTOP), drained (maintenance file or popctl drain), BIRD down.
 *   While the mail process is dead or silent, the results it reported
 *   last are stale and are not judged.
 * - Announce again only after `rise` consecutive passing ticks AND
 *   hold_down since the last withdraw, so the output never goes from
 *   withdrawn to announced more often than once per hold_down however
 *   the input flaps.
 * Each change comes with a reason naming the failing checks and their
 * values ("free_disk 812M < 1G, loop_delay 730ms > 500ms").
 */
#ifndef POPNODE_ANYCAST_HEALTH_H
#define POPNODE_ANYCAST_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

enum health_state { HEALTH_WITHDRAW, HEALTH_ANNOUNCE };

/* The checks, as bits of health_failing(). */
enum {
	HEALTH_F_MAIL_DEAD = 1u << 0,	/* hard */
	HEALTH_F_HEARTBEAT = 1u << 1,	/* hard */
	HEALTH_F_DRAINED = 1u << 2,	/* hard */
	HEALTH_F_BIRD_DOWN = 1u << 3,	/* hard */
	HEALTH_F_STORE = 1u << 4,
	HEALTH_F_DISK = 1u << 5,
	HEALTH_F_LOOP_DELAY = 1u << 6,
	HEALTH_F_LISTENERS = 1u << 7,
	HEALTH_F_REPL_LAG = 1u << 8,
	HEALTH_F_PEERS = 1u << 9,
	HEALTH_F_SERVING = 1u << 10,	/* start-up check / rebuild from mirrors */
};
#define HEALTH_F_HARD (HEALTH_F_MAIL_DEAD | HEALTH_F_HEARTBEAT | HEALTH_F_DRAINED | \
		       HEALTH_F_BIRD_DOWN)

/* One tick's observations. */
struct health_input {
	/* seen by the parent itself */
	bool mail_alive;		/* the mail process is running */
	uint64_t heartbeat_age_ms;	/* since its last report */
	bool drained;			/* maintenance file present, or popctl drain */
	bool bird_up;			/* BIRD's control socket answers */
	/* reported by the mail process with its last heartbeat */
	bool store_writable;
	uint64_t free_disk_bytes;	/* on the data_dir filesystem */
	uint64_t loop_delay_ms;		/* event loop lateness */
	bool listeners_up;
	/* the mail process serves its own users (its start-up check against
	 * its mirrors, or a rebuild from them, is done: docs/replication.md) */
	bool serving;
	bool replication_lag_known;	/* false: no mirror, or not measured yet */
	uint64_t replication_lag_ms;	/* worst mirror */
	unsigned peers_reachable;
};

/* Thresholds and timers; config.h's health_* and heartbeat_timeout. */
struct health_conf {
	uint64_t min_free_disk;		/* bytes; 0 = not checked */
	uint64_t max_loop_delay_ms;
	uint64_t max_replication_lag_ms; /* 0 = not checked; unknown lag passes */
	bool require_peer;		/* fail with no peer reachable */
	unsigned rise;			/* passing ticks to announce (0 counts as 1) */
	unsigned fall;			/* failing ticks to withdraw (0 counts as 1) */
	uint64_t hold_down_ms;		/* withdrawn at least this long */
	uint64_t heartbeat_timeout_ms;	/* older heartbeat: the mail process is stuck */
};

#define HEALTH_TEXT_MAX 256

/* The machine.  Fields are readable (status, tests); change them only
 * through the functions below. */
struct health {
	struct health_conf conf;
	enum health_state state;
	unsigned pass_run, fail_run;	/* consecutive ticks */
	bool announced_once;		/* hold-down applies after a real withdraw */
	uint64_t withdrawn_at_ms;	/* the last ANNOUNCE -> WITHDRAW */
	uint64_t changed_at_ms;
	unsigned failing;		/* HEALTH_F_* at the last tick */
	char checks[HEALTH_TEXT_MAX];	/* those checks as text, "" when all pass */
	char reason[HEALTH_TEXT_MAX];	/* why the state last changed */
};

/* Start withdrawn, reason "starting". */
void health_init(struct health *h, const struct health_conf *conf);

/* Judge one tick at now_ms (a monotonic clock).  Returns true when the
 * desired state changed on this tick; health_reason() then says why. */
bool health_tick(struct health *h, uint64_t now_ms, const struct health_input *in);

enum health_state health_desired(const struct health *h);
/* "announce" / "withdraw" */
const char *health_state_name(enum health_state s);
const char *health_reason(const struct health *h);
/* Checks failing at the last tick: HEALTH_F_* bits, and as text. */
unsigned health_failing(const struct health *h);
const char *health_checks_text(const struct health *h);
/* Milliseconds of hold-down still to run before an announce is allowed
 * (0 when none applies). */
uint64_t health_hold_down_left(const struct health *h, uint64_t now_ms);

#endif
