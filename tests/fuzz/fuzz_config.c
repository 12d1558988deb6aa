/*
 * fuzz_config.c - libFuzzer target for the config parser: defaults, parse
 * the input as a config file, then the cross-directive check.  Besides
 * memory safety (ASan/UBSan) it checks the parser's promises: an error is a
 * NUL-terminated "fuzz.conf:LINE: reason" with no control bytes, and a
 * failed parse leaves the config exactly as it was.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_message(const char *err, size_t errsz, const char *prefix)
{
	size_t n = strnlen(err, errsz);

	if (n == errsz || n == 0)
		abort();	/* not terminated, or empty */
	if (prefix != NULL && strncmp(err, prefix, strlen(prefix)) != 0)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)err[i] < 0x20 || err[i] == 0x7f)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config c, before;
	char err[512];

	config_defaults(&c);
	memcpy(&before, &c, sizeof(c));
	memset(err, 0, sizeof(err));
	if (config_parse_buf(&c, "fuzz.conf", (const char *)data, size, err, sizeof(err)) < 0) {
		check_message(err, sizeof(err), "fuzz.conf:");
		if (memcmp(&c, &before, sizeof(c)) != 0)
			abort();	/* a failed parse must not change the config */
		return 0;
	}
	memset(err, 0, sizeof(err));
	if (config_check(&c, err, sizeof(err)) < 0)
		check_message(err, sizeof(err), NULL);
	for (size_t i = 0; i < c.n_domains; i++)
		(void)config_domain_is_local(&c, c.domains[i], strlen(c.domains[i]));
	for (size_t i = 0; i < c.n_listens; i++)
		(void)config_proto_name(c.listens[i].proto);
	return 0;
}
