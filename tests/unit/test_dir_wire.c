/*
 * test_dir_wire.c - directory records as text lines (dir_wire.h): exact
 * encodings, round trips (live, tombstones, extreme values and lengths),
 * and every field, separator and line shape that must be refused, each
 * built from a line that is accepted as it stands.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dir_wire.h"

#define HASH "$6$saltsalt$abcdefghij"

enum { F_VERSION, F_ORIGIN, F_LSEQ, F_NAME, F_HOME, F_ENABLED, F_QUOTA, F_DELETED, F_HASH, NF };

static const char *const good_live[NF] = {
	"5", "pop-a", "7", "alice", "pop-b", "1", "1024", "0", HASH,
};
static const char *const good_tomb[NF] = {
	"9", "pop-a", "8", "bob", "-", "0", "0", "1", "-",
};

/* The fields joined by single spaces, with "\n". */
static size_t join(const char *const f[NF], char *buf, size_t sz)
{
	size_t len = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < NF; i++) {
		int n = snprintf(buf + len, sz - len, "%s%s", f[i], i + 1 < NF ? " " : "\n");

		assert_true(n > 0 && (size_t)n < sz - len);
		len += (size_t)n;
	}
	return len;
}

static int decode_str(const char *line, struct store_dir_rec *r)
{
	return dir_wire_decode(line, strlen(line), r);
}

static struct store_dir_rec live(void)
{
	struct store_dir_rec r;

	memset(&r, 0, sizeof(r));
	r.version = 5;
	strcpy(r.origin, "pop-a");
	r.lseq = 7;
	strcpy(r.u.name, "alice");
	strcpy(r.u.home, "pop-b");
	r.u.enabled = true;
	r.u.quota = 1024;
	strcpy(r.u.pwhash, HASH);
	return r;
}

static void assert_same(const struct store_dir_rec *a, const struct store_dir_rec *b)
{
	assert_int_equal(a->version, b->version);
	assert_string_equal(a->origin, b->origin);
	assert_int_equal(a->lseq, b->lseq);
	assert_string_equal(a->u.name, b->u.name);
	assert_string_equal(a->u.home, b->u.home);
	assert_int_equal(a->u.enabled, b->u.enabled);
	assert_int_equal(a->u.quota, b->u.quota);
	assert_int_equal(a->deleted, b->deleted);
	assert_string_equal(a->u.pwhash, b->u.pwhash);
}

static void roundtrip(const struct store_dir_rec *r)
{
	char buf[DIR_WIRE_LINE_MAX + 1];
	struct store_dir_rec back;
	int len = dir_wire_encode(r, buf, sizeof(buf));

	assert_true(len > 0);
	assert_int_equal((size_t)len, strlen(buf));
	assert_true((size_t)len <= DIR_WIRE_LINE_MAX);
	assert_int_equal(buf[len - 1], '\n');
	assert_null(memchr(buf, '\n', (size_t)len - 1));
	assert_int_equal(dir_wire_decode(buf, (size_t)len, &back), 0);
	assert_same(r, &back);
	/* without the "\n" too */
	assert_int_equal(dir_wire_decode(buf, (size_t)len - 1, &back), 0);
	assert_same(r, &back);
}

/* ---- encoding ------------------------------------------------------------------------------ */

static void test_encode_exact(void **state)
{
	struct store_dir_rec r = live();
	char buf[DIR_WIRE_LINE_MAX + 1], want[DIR_WIRE_LINE_MAX + 1];
	size_t len = join(good_live, want, sizeof(want));

	assert_int_equal(dir_wire_encode(&r, buf, sizeof(buf)), (int)len);
	assert_string_equal(buf, want);

	/* a tombstone: "-" for hash and unknown home, quota and enabled 0 */
	r.deleted = true;
	r.version = 9;
	r.lseq = 8;
	strcpy(r.u.name, "bob");
	r.u.home[0] = '\0';
	r.u.pwhash[0] = '\0';
	len = join(good_tomb, want, sizeof(want));
	assert_int_equal(dir_wire_encode(&r, buf, sizeof(buf)), (int)len);
	assert_string_equal(buf, want);
	/* whatever the tombstone still carries */
	strcpy(r.u.pwhash, HASH);
	assert_int_equal(dir_wire_encode(&r, buf, sizeof(buf)), (int)len);
	assert_string_equal(buf, want);
	strcpy(r.u.home, "pop-old");
	assert_int_equal(dir_wire_encode(&r, buf, sizeof(buf)), (int)len + 6);
	assert_string_equal(buf, "9 pop-a 8 bob pop-old 0 0 1 -\n");
}

static void test_encode_buffer(void **state)
{
	struct store_dir_rec r = live();
	char buf[DIR_WIRE_LINE_MAX + 1];
	int len = dir_wire_encode(&r, buf, sizeof(buf));

	assert_true(len > 0);
	assert_int_equal(dir_wire_encode(&r, buf, (size_t)len + 1), len);
	memset(buf, 'Z', sizeof(buf));
	assert_int_equal(dir_wire_encode(&r, buf, (size_t)len), -1);
	assert_int_equal(dir_wire_encode(&r, buf, 0), -1);
	assert_int_equal(dir_wire_encode(&r, NULL, 100), -1);
	assert_int_equal(dir_wire_encode(NULL, buf, sizeof(buf)), -1);
}

static void test_encode_refuses(void **state)
{
	char buf[DIR_WIRE_LINE_MAX + 1];
	struct store_dir_rec r;

	r = live();
	r.version = 0;
	assert_int_equal(dir_wire_encode(&r, buf, sizeof(buf)), -1);
	r = live();
	r.lseq = 0;
	assert_int_equal(dir_wire_encode(&r, buf, sizeof(buf)), -1);
	r = live();
	strcpy(r.u.name, "Alice");
	assert_int_equal(dir_wire_encode(&r, buf, sizeof(buf)), -1);
	r = live();
	strcpy(r.origin, "pop a");
	assert_int_equal(dir_wire_encode(&r, buf, sizeof(buf)), -1);
	r = live();
	r.origin[0] = '\0';
	assert_int_equal(dir_wire_encode(&r, buf, sizeof(buf)), -1);
	r = live();
	strcpy(r.u.home, "pop\nb");
	assert_int_equal(dir_wire_encode(&r, buf, sizeof(buf)), -1);
	r = live();
	strcpy(r.u.home, "-");		/* would come back as "no home" */
	assert_int_equal(dir_wire_encode(&r, buf, sizeof(buf)), -1);
	r = live();
	strcpy(r.u.pwhash, "x");	/* a live user needs a hash we accept */
	assert_int_equal(dir_wire_encode(&r, buf, sizeof(buf)), -1);
	r = live();
	strcpy(r.u.pwhash, "$6$salt$ab cd");
	assert_int_equal(dir_wire_encode(&r, buf, sizeof(buf)), -1);
	r = live();
	memset(r.origin, 'a', sizeof(r.origin));	/* no NUL */
	assert_int_equal(dir_wire_encode(&r, buf, sizeof(buf)), -1);
}

/* ---- round trips ----------------------------------------------------------------------------- */

static void test_roundtrip(void **state)
{
	struct store_dir_rec r = live();
	size_t i;

	roundtrip(&r);
	r.u.enabled = false;
	r.u.quota = 0;
	roundtrip(&r);
	/* the extremes */
	r.version = UINT64_MAX;
	r.lseq = UINT64_MAX;
	r.u.quota = UINT64_MAX;
	memset(r.origin, 'Z', STORE_POP_MAX - 1);
	r.origin[STORE_POP_MAX - 1] = '\0';
	memset(r.u.name, 'n', STORE_NAME_MAX - 1);
	r.u.name[STORE_NAME_MAX - 1] = '\0';
	memset(r.u.home, '_', STORE_POP_MAX - 1);
	r.u.home[STORE_POP_MAX - 1] = '\0';
	strcpy(r.u.pwhash, "$6$saltsalt$");
	for (i = strlen(r.u.pwhash); i < STORE_HASH_MAX - 1; i++)
		r.u.pwhash[i] = "./09AZaz"[i % 8];
	r.u.pwhash[STORE_HASH_MAX - 1] = '\0';
	roundtrip(&r);
	{
		char buf[DIR_WIRE_LINE_MAX + 1];

		/* the longest line there is */
		assert_int_equal(dir_wire_encode(&r, buf, sizeof(buf)), DIR_WIRE_LINE_MAX);
	}
	/* POP ids with every allowed kind of character, names likewise */
	r = live();
	strcpy(r.origin, "POP.fra_1-x");
	strcpy(r.u.home, "9");
	strcpy(r.u.name, "0a.b_c-d");
	roundtrip(&r);
	r = live();
	strcpy(r.u.pwhash, "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7");
	roundtrip(&r);
	r = live();
	strcpy(r.u.pwhash, "$2b$05$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyzABC");
	roundtrip(&r);
	/* tombstones, with and without a home */
	r = live();
	r.deleted = true;
	r.u.enabled = false;
	r.u.quota = 0;
	r.u.pwhash[0] = '\0';
	roundtrip(&r);
	r.u.home[0] = '\0';
	roundtrip(&r);
}

static void test_decode_fields(void **state)
{
	struct store_dir_rec r;
	char line[DIR_WIRE_LINE_MAX + 1];
	size_t len;

	memset(&r, 0xaa, sizeof(r));
	assert_int_equal(decode_str("18446744073709551615 pop-a 1 alice - 0 0 1 -", &r), 0);
	assert_int_equal(r.version, UINT64_MAX);
	assert_true(r.deleted);
	assert_string_equal(r.u.home, "");
	assert_string_equal(r.u.pwhash, "");
	assert_int_equal(r.u.id, 0);
	assert_int_equal(r.u.used, 0);
	/* a tombstone's quota and enabled mean nothing and come back as 0 */
	assert_int_equal(decode_str("3 pop-a 1 alice pop-b 1 99 1 -\n", &r), 0);
	assert_false(r.u.enabled);
	assert_int_equal(r.u.quota, 0);
	assert_string_equal(r.u.home, "pop-b");
	/* a live record may have no home */
	assert_int_equal(decode_str("3 pop-a 1 alice - 1 0 0 " HASH, &r), 0);
	assert_string_equal(r.u.home, "");
	assert_int_equal(r.u.quota, 0);
	assert_true(r.u.enabled);
	/* not NUL-terminated: only len bytes are read */
	len = join(good_live, line, sizeof(line));
	line[len] = 'X';
	assert_int_equal(dir_wire_decode(line, len, &r), 0);
	assert_string_equal(r.u.pwhash, HASH);
}

/* ---- refusals ------------------------------------------------------------------------------- */

/* good[] with field i replaced by value must be refused. */
static void refuse_field(const char *const good[NF], int i, const char *value)
{
	const char *f[NF];
	char line[4 * DIR_WIRE_LINE_MAX];
	struct store_dir_rec r;
	size_t len;

	memcpy(f, good, sizeof(f));
	len = join(f, line, sizeof(line));
	assert_int_equal(dir_wire_decode(line, len, &r), 0);	/* the base is fine */
	f[i] = value;
	len = join(f, line, sizeof(line));
	memset(&r, 0x55, sizeof(r));
	if (dir_wire_decode(line, len, &r) != -1)
		print_error("accepted field %d = \"%s\"\n", i, value);
	assert_int_equal(dir_wire_decode(line, len, &r), -1);
	assert_int_equal(r.version, 0);	/* zeroed */
	assert_int_equal(r.u.name[0], '\0');
}

static void test_decode_bad_fields(void **state)
{
	char pop64[65], name64[65], hash256[300];
	static const char *const bad_num[] = {
		"", "0", "01", "-1", "+1", " 1", "1a", "0x10", "1.0", "1e3",
		"18446744073709551616", "99999999999999999999", "184467440737095516150",
	};
	static const char *const bad_pop[] = {
		"", "pop/a", "pop:a", "pöp", "pop\ta", "pop\r", "pop,a", "*",
	};
	static const char *const bad_name[] = {
		"", "Alice", ".alice", "-alice", "_alice", "al@ce", "al/ce", "al\"ce", "-",
	};
	static const char *const bad_bit[] = { "", "2", "01", "00", "yes", "true", "-", "1 " };
	static const char *const bad_quota[] = {
		"", "-1", "01", "00", "1k", "1K", "18446744073709551616", "-", "+0",
	};
	static const char *const bad_hash[] = {
		"x", "-", "*", "!", "$1$abc$def", "$6$abc$", "$6$", "$6$abc$de:f",
		"!$6$saltsalt$abcdefghij", "$6$saltsalt$abc\r", "$6$salt$ab\tc",
	};
	size_t i;

	memset(pop64, 'p', 64);
	pop64[64] = '\0';
	memset(name64, 'n', 64);
	name64[64] = '\0';
	strcpy(hash256, "$6$saltsalt$");
	for (i = strlen(hash256); i < 256; i++)
		hash256[i] = 'a';
	hash256[256] = '\0';

	for (i = 0; i < sizeof(bad_num) / sizeof(bad_num[0]); i++) {
		refuse_field(good_live, F_VERSION, bad_num[i]);
		refuse_field(good_live, F_LSEQ, bad_num[i]);
		refuse_field(good_tomb, F_VERSION, bad_num[i]);
	}
	for (i = 0; i < sizeof(bad_pop) / sizeof(bad_pop[0]); i++) {
		refuse_field(good_live, F_ORIGIN, bad_pop[i]);
		refuse_field(good_live, F_HOME, bad_pop[i]);
		refuse_field(good_tomb, F_HOME, bad_pop[i]);
	}
	refuse_field(good_live, F_ORIGIN, "-");		/* "-" is "none", no POP id */
	refuse_field(good_live, F_ORIGIN, pop64);
	refuse_field(good_live, F_HOME, pop64);
	for (i = 0; i < sizeof(bad_name) / sizeof(bad_name[0]); i++) {
		refuse_field(good_live, F_NAME, bad_name[i]);
		refuse_field(good_tomb, F_NAME, bad_name[i]);
	}
	refuse_field(good_live, F_NAME, name64);
	for (i = 0; i < sizeof(bad_bit) / sizeof(bad_bit[0]); i++) {
		refuse_field(good_live, F_ENABLED, bad_bit[i]);
		refuse_field(good_live, F_DELETED, bad_bit[i]);
		refuse_field(good_tomb, F_DELETED, bad_bit[i]);
	}
	for (i = 0; i < sizeof(bad_quota) / sizeof(bad_quota[0]); i++)
		refuse_field(good_live, F_QUOTA, bad_quota[i]);
	for (i = 0; i < sizeof(bad_hash) / sizeof(bad_hash[0]); i++)
		refuse_field(good_live, F_HASH, bad_hash[i]);
	refuse_field(good_live, F_HASH, hash256);	/* over STORE_HASH_MAX - 1 */
	refuse_field(good_live, F_HASH, "");
	/* a tombstone's hash is "-" and nothing else */
	refuse_field(good_tomb, F_HASH, HASH);
	refuse_field(good_tomb, F_HASH, "");
	refuse_field(good_tomb, F_HASH, "--");
	/* deleted 1 turns a live line into a tombstone with a hash: refused */
	refuse_field(good_live, F_DELETED, "1");
	/* deleted 0 turns a tombstone line into a live user without a hash */
	refuse_field(good_tomb, F_DELETED, "0");
}

static void test_decode_bad_shape(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		" ",
		/* fields missing or extra */
		"5 pop-a 7 alice pop-b 1 1024 0",
		"5 pop-a 7 alice pop-b 1 1024 0\n",
		"5 pop-a 7 alice pop-b 1 1024",
		"5",
		"5 pop-a 7 alice pop-b 1 1024 0 " HASH " extra",
		"5 pop-a 7 alice pop-b 1 1024 0 " HASH " ",
		/* separators */
		"5  pop-a 7 alice pop-b 1 1024 0 " HASH,
		" 5 pop-a 7 alice pop-b 1 1024 0 " HASH,
		"5\tpop-a 7 alice pop-b 1 1024 0 " HASH,
		"5 pop-a 7 alice pop-b 1 1024 0  " HASH,
		"5 pop-a 7 alice pop-b 1 1024 0\t" HASH,
		/* line ends */
		"5 pop-a 7 alice pop-b 1 1024 0 " HASH "\r\n",
		"5 pop-a 7 alice pop-b 1 1024 0 " HASH "\n\n",
		"5 pop-a 7 alice pop-b 1 1024 0 " HASH "\r",
		"5 pop-a 7 alice pop-b 1 1024 0 " HASH "\n5 pop-a 7 bob pop-b 1 1024 0 " HASH "\n",
	};
	struct store_dir_rec r;
	char line[2 * DIR_WIRE_LINE_MAX], good[DIR_WIRE_LINE_MAX + 1];
	size_t i, len;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (decode_str(bad[i], &r) != -1)
			print_error("accepted: \"%s\"\n", bad[i]);
		assert_int_equal(decode_str(bad[i], &r), -1);
	}
	assert_int_equal(dir_wire_decode(NULL, 10, &r), -1);
	assert_int_equal(dir_wire_decode("x", 1, NULL), -1);

	/* an embedded NUL anywhere */
	len = join(good_live, good, sizeof(good));
	for (i = 0; i < len - 1; i++) {
		memcpy(line, good, len);
		line[i] = '\0';
		assert_int_equal(dir_wire_decode(line, len, &r), -1);
	}
	/* cut short anywhere before the hash is complete */
	for (i = 0; i < len - 1 - strlen(HASH) + strlen("$6$saltsalt$"); i++)
		assert_int_equal(dir_wire_decode(good, i, &r), -1);
	/* a line over DIR_WIRE_LINE_MAX */
	memset(line, 'a', sizeof(line));
	line[sizeof(line) - 1] = '\n';
	assert_int_equal(dir_wire_decode(line, sizeof(line), &r), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_exact),
		cmocka_unit_test(test_encode_buffer),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_decode_fields),
		cmocka_unit_test(test_decode_bad_fields),
		cmocka_unit_test(test_decode_bad_shape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
