/*
 * test_imap_msgcmd.c - unit tests for the set writers the message
 * commands use (imapproxy/imap_msgutil.c): the incremental sequence-set
 * builder behind [MODIFIED ...], VANISHED (EARLIER) and ESEARCH ALL
 * (runs, gaps, duplicates, the 32-bit edge), and the COPYUID pair writer
 * (ranges only where both sides run in step; lists otherwise).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "imap_body.h"
#include "imap_msgutil.h"

/* Feed v[0..n) and return the set text (static buffer). */
static const char *build(const uint32_t *v, size_t n, uint64_t *count_r)
{
	static char text[1024];
	struct imap_buf b;
	struct imap_setbuilder sb = { 0 };

	imap_buf_init(&b);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(imap_setbuilder_add(&sb, &b, v[i]), 0);
	assert_int_equal(imap_setbuilder_finish(&sb, &b), 0);
	assert_true(b.len < sizeof(text));
	if (b.len > 0)
		memcpy(text, b.data, b.len);
	text[b.len] = '\0';
	if (count_r != NULL)
		*count_r = sb.count;
	imap_buf_free(&b);
	return text;
}

static void test_set_empty(void **state)
{
	uint64_t c;

	(void)state;
	assert_string_equal(build(NULL, 0, &c), "");
	assert_int_equal(c, 0);
}

static void test_set_single_and_runs(void **state)
{
	uint64_t c;

	(void)state;
	assert_string_equal(build((uint32_t[]){ 7 }, 1, &c), "7");
	assert_int_equal(c, 1);
	assert_string_equal(build((uint32_t[]){ 1, 2, 3 }, 3, &c), "1:3");
	assert_int_equal(c, 3);
	assert_string_equal(build((uint32_t[]){ 1, 2, 3, 5, 7, 8, 9, 12 }, 8, &c), "1:3,5,7:9,12");
	assert_int_equal(c, 8);
	assert_string_equal(build((uint32_t[]){ 2, 4, 6 }, 3, NULL), "2,4,6");
}

static void test_set_duplicates(void **state)
{
	uint64_t c;

	(void)state;
	assert_string_equal(build((uint32_t[]){ 1, 1, 2, 2, 2, 4, 4 }, 7, &c), "1:2,4");
	assert_int_equal(c, 3);
}

static void test_set_uint32_edge(void **state)
{
	(void)state;
	assert_string_equal(build((uint32_t[]){ 4294967294u, 4294967295u }, 2, NULL),
			    "4294967294:4294967295");
	assert_string_equal(build((uint32_t[]){ 1, 4294967295u }, 2, NULL), "1,4294967295");
	/* nothing wraps past the top */
	assert_string_equal(build((uint32_t[]){ 4294967295u, 4294967295u }, 2, NULL),
			    "4294967295");
}

static void test_set_reuse_after_finish(void **state)
{
	struct imap_buf b;
	struct imap_setbuilder sb = { 0 };

	(void)state;
	imap_buf_init(&b);
	imap_setbuilder_add(&sb, &b, 1);
	imap_setbuilder_finish(&sb, &b);
	imap_setbuilder_add(&sb, &b, 3);
	imap_setbuilder_finish(&sb, &b);
	imap_buf_add(&b, "", 1);
	assert_string_equal(b.data, "1,3");
	imap_buf_free(&b);
}

static const char *pairs(const uint32_t *src, const uint32_t *dst, size_t n)
{
	static char text[1024];
	struct imap_buf b;

	imap_buf_init(&b);
	assert_int_equal(imap_write_uid_pairs(&b, src, dst, n), 0);
	memcpy(text, b.data, b.len);
	text[b.len] = '\0';
	imap_buf_free(&b);
	return text;
}

static void test_uid_pairs(void **state)
{
	(void)state;
	assert_string_equal(pairs((uint32_t[]){ 1, 2, 3 }, (uint32_t[]){ 10, 11, 12 }, 3),
			    "1:3 10:12");
	/* gaps in the source, contiguous destination: each side on its own */
	assert_string_equal(pairs((uint32_t[]){ 2, 5, 6 }, (uint32_t[]){ 7, 8, 9 }, 3),
			    "2,5:6 7:9");
	assert_string_equal(pairs((uint32_t[]){ 4 }, (uint32_t[]){ 1 }, 1), "4 1");
	/* not ascending: plain lists keep the pairing by position */
	assert_string_equal(pairs((uint32_t[]){ 3, 1, 2 }, (uint32_t[]){ 10, 11, 12 }, 3),
			    "3,1,2 10,11,12");
}

/* imap_buf failure propagates. */
static void test_set_failed_buffer(void **state)
{
	struct imap_buf b;
	struct imap_setbuilder sb = { 0 };

	(void)state;
	imap_buf_init(&b);
	b.failed = true;
	assert_int_equal(imap_setbuilder_add(&sb, &b, 1), -1);
	assert_int_equal(imap_setbuilder_finish(&sb, &b), -1);
	imap_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_empty),
		cmocka_unit_test(test_set_single_and_runs),
		cmocka_unit_test(test_set_duplicates),
		cmocka_unit_test(test_set_uint32_edge),
		cmocka_unit_test(test_set_reuse_after_finish),
		cmocka_unit_test(test_uid_pairs),
		cmocka_unit_test(test_set_failed_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
