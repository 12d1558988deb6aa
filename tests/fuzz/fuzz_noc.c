/*
 * fuzz_noc.c - libFuzzer target for replicator/repl_noc_wire.c, the
 * parsers of what POPs answer each other for `popctl verify` and
 * `popctl lag --cluster` (GET /v1/repl/digest, GET /v1/repl/lag) and of
 * the digest query.
 *
 * The first byte picks the parser, the rest is its input (an exact-size
 * heap copy, so a read past the end is caught):
 *   0: the digest query (NUL-terminated);
 *   1: a digest answer; one that parses must encode again and parse to
 *      the same copy (round trip);
 *   2: a lag answer; one that parses must encode again and parse to the
 *      same figures.
 * Any violation aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "repl_noc_wire.h"
#include "replicator.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The parser checks state names against replicator_state_name, which
 * lives in replicator.c with the whole replicator behind it: the harness
 * gives the same names (replicator.h's enum). */
const char *replicator_state_name(enum repl_state s)
{
	switch (s) {
	case REPL_DOWN: return "down";
	case REPL_CONNECTING: return "connecting";
	case REPL_STREAMING: return "streaming";
	case REPL_SNAPSHOTTING: return "snapshotting";
	}
	return "?";
}

static bool same_copy(const struct repl_noc_copy *a, const struct repl_noc_copy *b)
{
	if (a->seq != b->seq || a->user_found != b->user_found || a->n_mb != b->n_mb ||
	    a->n_mirrors != b->n_mirrors)
		return false;
	for (size_t i = 0; i < a->n_mirrors; i++)
		if (strcmp(a->mirrors[i], b->mirrors[i]) != 0)
			return false;
	for (size_t i = 0; i < a->n_mb; i++)
		if (strcmp(a->mb[i].name, b->mb[i].name) != 0 ||
		    a->mb[i].messages != b->mb[i].messages ||
		    a->mb[i].uidvalidity != b->mb[i].uidvalidity ||
		    a->mb[i].uidnext != b->mb[i].uidnext ||
		    strcmp(a->mb[i].digest, b->mb[i].digest) != 0)
			return false;
	return true;
}

static void digest(const char *p, size_t len)
{
	struct repl_noc_copy c, d;
	struct evbuffer *out;
	const char *why = NULL;

	memset(&c, 0, sizeof(c));
	memset(&d, 0, sizeof(d));
	if (repl_noc_digest_parse(p, len, &c, &why) == 0) {
		out = evbuffer_new();
		CHECK(out != NULL);
		CHECK(repl_noc_digest_encode(&c, out) == 0);
		size_t n = evbuffer_get_length(out);
		char *q = malloc(n + 1);

		CHECK(q != NULL);
		evbuffer_remove(out, q, n);
		CHECK(repl_noc_digest_parse(q, n, &d, &why) == 0);
		CHECK(same_copy(&c, &d));
		free(q);
		evbuffer_free(out);
	} else {
		CHECK(why != NULL);
	}
	repl_noc_copy_clear(&c);
	repl_noc_copy_clear(&d);
}

static void lag(const char *p, size_t len)
{
	struct repl_noc_lag a, b;
	struct evbuffer *out;
	const char *why = NULL;
	const int64_t now = 1790000000000;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	if (repl_noc_lag_parse(p, len, now, &a, &why) != 0) {
		CHECK(why != NULL);
		return;
	}
	CHECK(a.n <= REPL_MIRRORS);
	out = evbuffer_new();
	CHECK(out != NULL);
	CHECK(repl_noc_lag_encode(a.m, a.n, now, out) == 0);
	size_t n = evbuffer_get_length(out);
	char *q = malloc(n + 1);

	CHECK(q != NULL);
	evbuffer_remove(out, q, n);
	CHECK(repl_noc_lag_parse(q, n, now, &b, &why) == 0);
	CHECK(a.n == b.n);
	for (size_t i = 0; i < a.n; i++) {
		CHECK(strcmp(a.m[i].peer, b.m[i].peer) == 0);
		CHECK(a.m[i].state == b.m[i].state);
		CHECK(a.m[i].applied_seq == b.m[i].applied_seq);
		CHECK(a.m[i].records_behind == b.m[i].records_behind);
	}
	free(q);
	evbuffer_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *p, user[REPL_NOC_ID_MAX], origin[REPL_NOC_ID_MAX];
	const char *why = NULL;

	if (size < 1)
		return 0;
	p = malloc(size);	/* exact size: the NUL-terminated case uses size - 1 + 1 */
	if (p == NULL)
		return 0;
	memcpy(p, data + 1, size - 1);
	switch (data[0] % 3) {
	case 0:
		p[size - 1] = '\0';
		if (strlen(p) == size - 1 &&
		    repl_noc_parse_digest_query(p, user, origin, &why) == 0)
			CHECK(user[0] != '\0' && origin[0] != '\0');
		break;
	case 1:
		digest(p, size - 1);
		break;
	default:
		lag(p, size - 1);
		break;
	}
	free(p);
	return 0;
}
