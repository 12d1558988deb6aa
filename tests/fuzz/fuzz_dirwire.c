/*
 * fuzz_dirwire.c - libFuzzer target for popnode/dir_wire.c, the parser of
 * the directory records POPs send each other (docs/link.md).
 *
 * The input, split at LF, is a stream of lines as a GET /v1/dir answer
 * would carry.  Each line goes to dir_wire_decode() from an exact-size
 * heap copy (so a read past the end is caught).  A line that decodes
 * must encode again, to exactly the same bytes when the line was in
 * canonical form, and in any case to a line that decodes to the same
 * record (round trip).  A line that does not decode must leave the
 * record zeroed.  Any violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dir_wire.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const struct store_dir_rec *a, const struct store_dir_rec *b)
{
	return a->version == b->version && a->lseq == b->lseq && a->deleted == b->deleted &&
	       strcmp(a->origin, b->origin) == 0 && strcmp(a->u.name, b->u.name) == 0 &&
	       strcmp(a->u.home, b->u.home) == 0 && strcmp(a->u.pwhash, b->u.pwhash) == 0 &&
	       a->u.quota == b->u.quota && a->u.enabled == b->u.enabled;
}

static void one_line(const uint8_t *p, size_t len)
{
	char *copy = malloc(len ? len : 1);
	struct store_dir_rec r, r2;
	static const struct store_dir_rec zero;
	char buf[DIR_WIRE_LINE_MAX + 1];
	int n;

	CHECK(copy != NULL);
	memcpy(copy, p, len);
	memset(&r, 0xa5, sizeof(r));
	if (dir_wire_decode(copy, len, &r) != 0) {
		CHECK(memcmp(&r, &zero, sizeof(r)) == 0);
		free(copy);
		return;
	}
	CHECK(len <= DIR_WIRE_LINE_MAX);
	n = dir_wire_encode(&r, buf, sizeof(buf));
	CHECK(n > 0 && (size_t)n < sizeof(buf) && buf[n - 1] == '\n' && buf[n] == '\0');
	CHECK(dir_wire_decode(buf, (size_t)n, &r2) == 0);
	CHECK(same(&r, &r2));
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t start = 0;

	for (size_t i = 0; i <= size; i++) {
		if (i == size || data[i] == '\n') {
			one_line(data + start, i - start + (i < size));
			start = i + 1;
		}
	}
	return 0;
}
