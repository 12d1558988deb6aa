/*
 * caps.c - cut the supervisor's capabilities to the kept list (caps.h),
 * through libcap.
 *
 * Order matters: the bounding set is cut first, while CAP_SETPCAP may
 * still be raised in the effective set (cap_drop_bound needs it); then one
 * cap_set_proc() sets permitted, effective and inheritable to the list,
 * which also lets CAP_SETPCAP go.  Inheritable is set too, not only
 * cleared of the rest: a uid 0 process that executes gets permitted =
 * inheritable | bounding, so an extra inheritable bit would come back in
 * the mail process.  Ambient capabilities need no step of their own: the
 * kernel keeps them within permitted and inheritable.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <unistd.h>

#include "caps.h"

/* The one list.  Keep deploy/systemd/popnode.service.in's
 * CapabilityBoundingSet= the same (same order); test_caps checks it. */
#define KEEP(c) { c, #c }
static const struct {
	cap_value_t cap;
	const char *name;
} kept[] = {
	KEEP(CAP_NET_BIND_SERVICE),
	KEEP(CAP_NET_ADMIN),
	KEEP(CAP_SETUID),
	KEEP(CAP_SETGID),
	KEEP(CAP_KILL),
	KEEP(CAP_DAC_OVERRIDE),
};
#define N_KEPT (sizeof(kept) / sizeof(kept[0]))

static bool is_kept(cap_value_t c)
{
	for (size_t i = 0; i < N_KEPT; i++)
		if (kept[i].cap == c)
			return true;
	return false;
}

uint64_t caps_kept_mask(void)
{
	uint64_t m = 0;

	for (size_t i = 0; i < N_KEPT; i++)
		m |= (uint64_t)1 << kept[i].cap;
	return m;
}

int caps_kept_text(char *buf, size_t len)
{
	size_t o = 0;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < N_KEPT; i++) {
		const char *n = kept[i].name;
		size_t nl = strlen(n);

		if (o + (i > 0) + nl + 1 > len) {
			buf[0] = '\0';
			return -1;
		}
		if (i > 0)
			buf[o++] = ',';
		for (size_t j = 0; j < nl; j++)
			buf[o++] = (char)tolower((unsigned char)n[j]);
	}
	buf[o] = '\0';
	return 0;
}

static const char *cap_label(cap_value_t c, char *buf, size_t len)
{
	char *n = cap_to_name(c);

	snprintf(buf, len, "%s", n != NULL ? n : "?");
	cap_free(n);
	return buf;
}

static bool flag(cap_t caps, cap_value_t c, cap_flag_t set)
{
	cap_flag_value_t v = CAP_CLEAR;

	return cap_get_flag(caps, c, set, &v) == 0 && v == CAP_SET;
}

/* Every capability outside the list is gone from all four sets. */
static int check(char *err, size_t errsz)
{
	cap_t now = cap_get_proc();
	cap_value_t max = (cap_value_t)cap_max_bits();
	char name[64];
	int rc = 0;

	if (now == NULL) {
		snprintf(err, errsz, "cap_get_proc: %s", strerror(errno));
		return -1;
	}
	for (cap_value_t c = 0; c < max && rc == 0; c++) {
		const char *where = NULL;

		if (is_kept(c))
			continue;
		if (cap_get_bound(c) > 0)
			where = "bounding";
		else if (flag(now, c, CAP_PERMITTED))
			where = "permitted";
		else if (flag(now, c, CAP_EFFECTIVE))
			where = "effective";
		else if (flag(now, c, CAP_INHERITABLE))
			where = "inheritable";
		if (where != NULL) {
			snprintf(err, errsz, "%s still in the %s set after the drop",
				 cap_label(c, name, sizeof(name)), where);
			rc = -1;
		}
	}
	cap_free(now);
	return rc;
}

int caps_limit(char *err, size_t errsz)
{
	cap_t cur, want = NULL;
	cap_value_t max = (cap_value_t)cap_max_bits();
	cap_value_t setpcap = CAP_SETPCAP;
	bool have_setpcap, extra_bound = false;
	char name[64];
	int rc = -1;

	cur = cap_get_proc();
	if (cur == NULL) {
		snprintf(err, errsz, "cap_get_proc: %s", strerror(errno));
		return -1;
	}
	have_setpcap = flag(cur, CAP_SETPCAP, CAP_PERMITTED);
	if (geteuid() != 0 && !have_setpcap) {
		cap_free(cur);
		return CAPS_UNPRIVILEGED;
	}
	for (cap_value_t c = 0; c < max; c++)
		if (!is_kept(c) && cap_get_bound(c) > 0)
			extra_bound = true;
	if (extra_bound) {
		if (!have_setpcap) {
			snprintf(err, errsz, "the bounding set holds more than the kept list and "
				 "cap_setpcap, needed to drop from it, is not permitted");
			goto out;
		}
		if (cap_set_flag(cur, CAP_EFFECTIVE, 1, &setpcap, CAP_SET) < 0 ||
		    cap_set_proc(cur) < 0) {
			snprintf(err, errsz, "raising cap_setpcap: %s", strerror(errno));
			goto out;
		}
		for (cap_value_t c = 0; c < max; c++) {
			if (is_kept(c) || cap_get_bound(c) <= 0)
				continue;
			if (cap_drop_bound(c) < 0) {
				snprintf(err, errsz, "dropping %s from the bounding set: %s",
					 cap_label(c, name, sizeof(name)), strerror(errno));
				goto out;
			}
		}
	}
	/* permitted = effective = inheritable = the list, as far as held:
	 * a capability cannot be added to permitted, only kept */
	want = cap_init();
	if (want == NULL) {
		snprintf(err, errsz, "cap_init: %s", strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < N_KEPT; i++) {
		cap_value_t c = kept[i].cap;

		if (!flag(cur, c, CAP_PERMITTED))
			continue;
		if (cap_set_flag(want, CAP_PERMITTED, 1, &c, CAP_SET) < 0 ||
		    cap_set_flag(want, CAP_EFFECTIVE, 1, &c, CAP_SET) < 0 ||
		    cap_set_flag(want, CAP_INHERITABLE, 1, &c, CAP_SET) < 0) {
			snprintf(err, errsz, "cap_set_flag: %s", strerror(errno));
			goto out;
		}
	}
	if (cap_set_proc(want) < 0) {
		snprintf(err, errsz, "cap_set_proc: %s", strerror(errno));
		goto out;
	}
	if (check(err, errsz) < 0)
		goto out;
	rc = CAPS_LIMITED;
out:
	if (want != NULL)
		cap_free(want);
	cap_free(cur);
	return rc;
}
