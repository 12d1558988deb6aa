/*
 * test_caps.c - the supervisor's kept capabilities (anycast/caps.c): the
 * list's text and mask, the systemd unit's CapabilityBoundingSet= naming
 * the same capabilities in the same order, and caps_limit() itself in
 * forked children (as root: the four sets afterwards, a second call, and
 * the refusal when the bounding set cannot be cut; not root: nothing
 * touched).  Run from the repository root, like `make unit` does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <sys/capability.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "caps.h"

#define UNIT_FILE "deploy/systemd/popnode.service.in"

static const char want_text[] =
	"cap_net_bind_service,cap_net_admin,cap_setuid,cap_setgid,cap_kill,cap_dac_override";

/* The numbers from linux/capability.h, written out on purpose. */
static const uint64_t want_mask = (1ULL << 10) | (1ULL << 12) | (1ULL << 7) | (1ULL << 6) |
				  (1ULL << 5) | (1ULL << 1);

static void test_kept_text(void **state)
{
	char buf[CAPS_TEXT_MAX];

	assert_int_equal(caps_kept_text(buf, sizeof(buf)), 0);
	assert_string_equal(buf, want_text);
	/* exactly fits, one byte short */
	assert_int_equal(caps_kept_text(buf, sizeof(want_text)), 0);
	assert_string_equal(buf, want_text);
	assert_int_equal(caps_kept_text(buf, sizeof(want_text) - 1), -1);
	assert_string_equal(buf, "");
	assert_int_equal(caps_kept_text(buf, 0), -1);
}

static void test_kept_mask(void **state)
{
	char buf[CAPS_TEXT_MAX], *save = NULL;
	uint64_t m = 0;

	assert_true(caps_kept_mask() == want_mask);
	/* the text names the mask's capabilities, as libcap reads them */
	assert_int_equal(caps_kept_text(buf, sizeof(buf)), 0);
	for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		cap_value_t c;

		assert_int_equal(cap_from_name(t, &c), 0);
		m |= 1ULL << c;
	}
	assert_true(m == want_mask);
}

static void test_unit_file(void **state)
{
	FILE *f = fopen(UNIT_FILE, "r");
	char line[512], names[512] = "";
	int found = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		static const char key[] = "CapabilityBoundingSet=";
		char *save = NULL;
		size_t o = 0;

		if (strncmp(line, key, sizeof(key) - 1) != 0)
			continue;
		found++;
		for (char *t = strtok_r(line + sizeof(key) - 1, " \t\r\n", &save); t != NULL;
		     t = strtok_r(NULL, " \t\r\n", &save)) {
			if (o > 0)
				names[o++] = ',';
			for (; *t != '\0' && o + 1 < sizeof(names); t++)
				names[o++] = (char)tolower((unsigned char)*t);
		}
		names[o] = '\0';
	}
	fclose(f);
	assert_int_equal(found, 1);
	assert_string_equal(names, want_text);
}

static int status_mask(const char *key, uint64_t *out)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t kl = strlen(key);
	int rc = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			*out = strtoull(line + kl + 1, NULL, 16);
			rc = 0;
			break;
		}
	fclose(f);
	return rc;
}

struct sets {
	uint64_t bnd, prm, eff, inh;
};

static int read_sets(struct sets *s)
{
	return status_mask("CapBnd", &s->bnd) | status_mask("CapPrm", &s->prm) |
	       status_mask("CapEff", &s->eff) | status_mask("CapInh", &s->inh);
}

/* Run fn in a child; its exit status is the test's verdict (0: passed). */
static void in_child(int (*fn)(void))
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn());
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) != 0)
		fprintf(stderr, "child failed at step %d\n", WEXITSTATUS(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static int limit_child(void)
{
	struct sets before, after;
	char err[256];
	int rc;

	if (read_sets(&before) < 0)
		return 1;
	rc = caps_limit(err, sizeof(err));
	if (read_sets(&after) < 0)
		return 2;
	if (geteuid() != 0 && !(before.prm & (1ULL << CAP_SETPCAP))) {
		/* not root: untouched */
		if (rc != CAPS_UNPRIVILEGED)
			return 3;
		return memcmp(&before, &after, sizeof(before)) == 0 ? 0 : 4;
	}
	if (rc != CAPS_LIMITED) {
		fprintf(stderr, "caps_limit: %s\n", err);
		return 5;
	}
	if (after.bnd != (before.bnd & want_mask))
		return 6;
	if (after.prm != (before.prm & want_mask) || after.eff != after.prm ||
	    after.inh != after.prm)
		return 7;
	if (geteuid() == 0 && before.prm == before.bnd && after.prm != want_mask)
		return 8;	/* plain root: exactly the list */
	/* again, now without cap_setpcap (like under the systemd unit):
	 * nothing left to drop, still fine */
	if (caps_limit(err, sizeof(err)) != CAPS_LIMITED) {
		fprintf(stderr, "caps_limit again: %s\n", err);
		return 9;
	}
	if (read_sets(&before) < 0 || memcmp(&before, &after, sizeof(before)) != 0)
		return 10;
	return 0;
}

static void test_limit(void **state)
{
	in_child(limit_child);
}

/* uid 0 with a full bounding set but cap_setpcap gone from permitted: the
 * bounding set cannot be cut, and caps_limit() must say so. */
static int refuse_child(void)
{
	cap_t c = cap_get_proc();
	cap_value_t v = CAP_SETPCAP;
	char err[256] = "";

	if (c == NULL || cap_set_flag(c, CAP_PERMITTED, 1, &v, CAP_CLEAR) < 0 ||
	    cap_set_flag(c, CAP_EFFECTIVE, 1, &v, CAP_CLEAR) < 0 || cap_set_proc(c) < 0)
		return 1;
	cap_free(c);
	if (caps_limit(err, sizeof(err)) != -1)
		return 2;
	return strstr(err, "cap_setpcap") != NULL ? 0 : 3;
}

static void test_refuse(void **state)
{
	if (geteuid() != 0 || cap_get_bound(CAP_SYS_ADMIN) <= 0)
		skip();
	in_child(refuse_child);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kept_text),
		cmocka_unit_test(test_kept_mask),
		cmocka_unit_test(test_unit_file),
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_refuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
