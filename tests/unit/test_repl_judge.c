/*
 * test_repl_judge.c - what the origin does with a copy of its data, by
 * the copy's position answer (repl_judge, repl_rebuild.c;
 * docs/replication.md "Generation and the lost disk"): stream, snapshot,
 * rebuild this POP from it (only while starting), or hold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "repl_snapshot.h"

static const char G1[] = "00112233445566778899aabbccddeeff";
static const char G2[] = "ffeeddccbbaa99887766554433221100";

static struct repl_pos pos(uint64_t applied, const char *gen)
{
	struct repl_pos p;

	memset(&p, 0, sizeof(p));
	p.applied = p.last = applied;
	if (gen != NULL)
		strcpy(p.gen, gen);
	return p;
}

static enum repl_verdict judge(uint64_t last, uint64_t trimmed, bool mail, bool starting,
			       struct repl_pos p)
{
	struct repl_self me = { .last = last, .trimmed = trimmed, .gen = G1, .has_mail = mail,
				.starting = starting };
	const char *why = NULL;
	enum repl_verdict v = repl_judge(&me, &p, &why);

	assert_non_null(why);
	return v;
}

static void test_stream_or_snapshot(void **state)
{
	/* a new copy: the whole log, or a snapshot once trimmed */
	assert_int_equal(judge(100, 0, true, false, pos(0, NULL)), REPL_V_STREAM);
	assert_int_equal(judge(100, 0, true, false, pos(0, G2)), REPL_V_STREAM);
	assert_int_equal(judge(100, 40, true, false, pos(0, NULL)), REPL_V_SNAPSHOT);
	/* a copy of this history: from its position, unless trimmed away */
	assert_int_equal(judge(100, 40, true, false, pos(40, G1)), REPL_V_STREAM);
	assert_int_equal(judge(100, 40, true, false, pos(100, G1)), REPL_V_STREAM);
	assert_int_equal(judge(100, 40, true, false, pos(39, G1)), REPL_V_SNAPSHOT);
	/* a copy of an older popnode (generation unknown): its position counts */
	assert_int_equal(judge(100, 40, true, false, pos(60, NULL)), REPL_V_STREAM);
	assert_int_equal(judge(100, 40, true, false, pos(10, NULL)), REPL_V_SNAPSHOT);
}

static void test_holds_more(void **state)
{
	/* starting, and the copy holds more: rebuild from it */
	assert_int_equal(judge(0, 0, false, true, pos(50, G2)), REPL_V_BEHIND);
	assert_int_equal(judge(7, 0, false, true, pos(50, G2)), REPL_V_BEHIND);	/* dirsync wrote 7 */
	assert_int_equal(judge(70, 0, true, true, pos(50, G1)), REPL_V_STREAM);
	assert_int_equal(judge(40, 0, true, true, pos(50, G1)), REPL_V_BEHIND);	/* restored backup */
	assert_int_equal(judge(40, 0, true, true, pos(50, G2)), REPL_V_BEHIND);
	assert_int_equal(judge(90, 0, true, true, pos(50, G2)), REPL_V_SNAPSHOT);	/* this POP wins */
	assert_int_equal(judge(40, 0, false, true, pos(50, NULL)), REPL_V_BEHIND);
	/* serving already: never rebuild; without mail do not overwrite
	 * either; with mail this POP's data wins */
	assert_int_equal(judge(0, 0, false, false, pos(50, G2)), REPL_V_HOLD);
	assert_int_equal(judge(5, 0, true, false, pos(50, G2)), REPL_V_SNAPSHOT);
	assert_int_equal(judge(5, 0, true, false, pos(50, G1)), REPL_V_SNAPSHOT);
	/* a copy that holds nothing never counts as more */
	assert_int_equal(judge(0, 0, false, true, pos(0, G2)), REPL_V_STREAM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_or_snapshot),
		cmocka_unit_test(test_holds_more),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
