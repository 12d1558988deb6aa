/*
 * anycast_addr_probe.c - drives anycast/addr.c from the command line for
 * tests/integration/test_anycast_addr.py, which runs it as root inside a
 * throw-away network namespace:
 *
 *   anycast_addr_probe open IFNAME [--create-dummy] [CMD PREFIX...]...
 *
 * CMD is announce, withdraw or present; each takes the prefixes that
 * follow it up to the next CMD.  One line per step on stdout:
 *
 *   open ok IFNAME ifindex=N
 *   announce ok N            withdraw ok N
 *   present PREFIX yes|no    (one line per prefix)
 *
 * and on failure "STEP error: MESSAGE" with exit status 1 (2 for usage).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

#define MAX_PREFIXES 64

static int usage(void)
{
	fprintf(stderr, "usage: anycast_addr_probe open IFNAME [--create-dummy] "
			"[announce|withdraw|present PREFIX...]...\n");
	return 2;
}

static bool is_cmd(const char *s)
{
	return strcmp(s, "announce") == 0 || strcmp(s, "withdraw") == 0 ||
	       strcmp(s, "present") == 0;
}

int main(int argc, char **argv)
{
	static struct anycast_prefix pfx[MAX_PREFIXES];
	struct anycast_if *ai;
	bool create = false;
	char err[512];
	int i = 3;

	if (argc < 3 || strcmp(argv[1], "open") != 0)
		return usage();
	if (i < argc && strcmp(argv[i], "--create-dummy") == 0) {
		create = true;
		i++;
	}
	ai = anycast_if_open(argv[2], create, err, sizeof(err));
	if (ai == NULL) {
		printf("open error: %s\n", err);
		return 1;
	}
	printf("open ok %s ifindex=%d\n", anycast_if_name(ai), anycast_if_index(ai));
	while (i < argc) {
		const char *cmd = argv[i++];
		size_t n = 0;
		int rc;

		if (!is_cmd(cmd)) {
			anycast_if_close(&ai);
			return usage();
		}
		for (; i < argc && !is_cmd(argv[i]); i++) {
			if (n == MAX_PREFIXES) {
				anycast_if_close(&ai);
				return usage();
			}
			if (anycast_prefix_parse(argv[i], &pfx[n], err, sizeof(err)) < 0) {
				printf("%s error: %s: %s\n", cmd, argv[i], err);
				anycast_if_close(&ai);
				return 1;
			}
			n++;
		}
		if (strcmp(cmd, "present") == 0) {
			bool present[MAX_PREFIXES];

			rc = anycast_if_present(ai, pfx, n, present, err, sizeof(err));
			if (rc < 0) {
				printf("present error: %s\n", err);
				anycast_if_close(&ai);
				return 1;
			}
			for (size_t k = 0; k < n; k++)
				printf("present %s %s\n", pfx[k].text, present[k] ? "yes" : "no");
			continue;
		}
		rc = anycast_if_set(ai, pfx, n, strcmp(cmd, "announce") == 0, err, sizeof(err));
		if (rc < 0) {
			printf("%s error: %s\n", cmd, err);
			anycast_if_close(&ai);
			return 1;
		}
		printf("%s ok %zu\n", cmd, n);
	}
	fflush(stdout);
	anycast_if_close(&ai);
	return 0;
}
