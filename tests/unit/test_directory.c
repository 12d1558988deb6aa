/*
 * test_directory.c - user name rules, "+detail" local parts, yescrypt
 * hashing and verification, imported SHA-512 hashes, accepted prefixes,
 * and hashing from several threads at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <crypt.h>
#include <cmocka.h>

#include "directory.h"

static void test_valid_username(void **state)
{
	assert_true(dir_valid_username("bob"));
	assert_true(dir_valid_username("a"));
	assert_true(dir_valid_username("0day"));
	assert_true(dir_valid_username("john.smith"));
	assert_true(dir_valid_username("j_s-1.x"));
	assert_true(dir_valid_username("x."));
	assert_true(dir_valid_username(
		"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0")); /* 63 */

	assert_false(dir_valid_username(
		"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01")); /* 64 */
	assert_false(dir_valid_username(""));
	assert_false(dir_valid_username(NULL));
	assert_false(dir_valid_username("Bob"));
	assert_false(dir_valid_username(".bob"));
	assert_false(dir_valid_username("-bob"));
	assert_false(dir_valid_username("_bob"));
	assert_false(dir_valid_username("bob smith"));
	assert_false(dir_valid_username("bob@example.com"));
	assert_false(dir_valid_username("bob+tag"));
	assert_false(dir_valid_username("b\xc3\xb6" "b"));
	assert_false(dir_valid_username("bob\n"));
	assert_false(dir_valid_username("bob/.."));
	assert_false(dir_valid_username("bob\"x"));
}

static void test_user_from_local(void **state)
{
	char out[64];
	char small[4];

	assert_true(dir_user_from_local("Bob", 3, out, sizeof(out)));
	assert_string_equal(out, "bob");
	assert_true(dir_user_from_local("John.Smith", 10, out, sizeof(out)));
	assert_string_equal(out, "john.smith");
	/* length-counted: the rest of the address is not looked at */
	assert_true(dir_user_from_local("alice@example.com", 5, out, sizeof(out)));
	assert_string_equal(out, "alice");

	/* +detail is dropped */
	assert_true(dir_user_from_local("user+tag", 8, out, sizeof(out)));
	assert_string_equal(out, "user");
	assert_true(dir_user_from_local("User+Lists+more", 15, out, sizeof(out)));
	assert_string_equal(out, "user");
	assert_true(dir_user_from_local("user+", 5, out, sizeof(out)));
	assert_string_equal(out, "user");
	assert_true(dir_user_from_local("bob+a b\"c", 9, out, sizeof(out))); /* detail ignored */
	assert_string_equal(out, "bob");
	assert_false(dir_user_from_local("+tag", 4, out, sizeof(out)));

	strcpy(out, "unchanged");
	assert_false(dir_user_from_local("", 0, out, sizeof(out)));
	assert_false(dir_user_from_local("bad user", 8, out, sizeof(out)));
	assert_false(dir_user_from_local("\"quoted\"", 8, out, sizeof(out)));
	assert_false(dir_user_from_local(".dot", 4, out, sizeof(out)));
	assert_false(dir_user_from_local("b\0b", 3, out, sizeof(out)));
	assert_false(dir_user_from_local("m\xc3\xbc" "ller", 7, out, sizeof(out)));
	assert_string_equal(out, "unchanged");
	assert_false(dir_user_from_local(
		"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01", 64, out,
		sizeof(out)));
	/* 63 chars + detail is fine */
	assert_true(dir_user_from_local(
		"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0+x", 65, out,
		sizeof(out)));
	assert_int_equal(strlen(out), 63);
	/* out too small */
	assert_false(dir_user_from_local("abcd", 4, small, sizeof(small)));
	assert_true(dir_user_from_local("abc", 3, small, sizeof(small)));
	assert_string_equal(small, "abc");
	assert_false(dir_user_from_local("abc", 3, small, 0));
}

static void test_hash_and_verify(void **state)
{
	char h1[256], h2[256];

	assert_int_equal(dir_hash_password("correct horse", h1, sizeof(h1)), 0);
	assert_true(strncmp(h1, "$y$", 3) == 0);
	assert_true(dir_hash_acceptable(h1));
	assert_true(dir_verify_password("correct horse", h1));
	assert_false(dir_verify_password("correct horsE", h1));
	assert_false(dir_verify_password("correct horse ", h1));
	assert_false(dir_verify_password("", h1));
	assert_false(dir_verify_password(NULL, h1));

	/* salted: the same password hashes differently each time */
	assert_int_equal(dir_hash_password("correct horse", h2, sizeof(h2)), 0);
	assert_string_not_equal(h1, h2);
	assert_true(dir_verify_password("correct horse", h2));

	/* empty password hashes and verifies like any other */
	assert_int_equal(dir_hash_password("", h2, sizeof(h2)), 0);
	assert_true(dir_verify_password("", h2));
	assert_false(dir_verify_password("x", h2));

	/* a tampered hash does not verify */
	char t[256];
	strcpy(t, h1);
	size_t n = strlen(t);
	t[n - 1] = t[n - 1] == 'a' ? 'b' : 'a';
	assert_false(dir_verify_password("correct horse", t));
	t[n - 1] = '\0';
	assert_false(dir_verify_password("correct horse", t));

	/* out too small: -1, out untouched */
	char small[16];
	strcpy(small, "untouched");
	assert_int_equal(dir_hash_password("pw", small, sizeof(small)), -1);
	assert_string_equal(small, "untouched");
	assert_int_equal(dir_hash_password(NULL, h2, sizeof(h2)), -1);
}

static void test_sha512_import(void **state)
{
	struct crypt_data cd;
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	const char *h;

	memset(&cd, 0, sizeof(cd));
	assert_non_null(crypt_gensalt_rn("$6$", 0, NULL, 0, salt, sizeof(salt)));
	h = crypt_rn("s3cret", salt, &cd, sizeof(cd));
	assert_non_null(h);
	assert_true(strncmp(h, "$6$", 3) == 0);
	assert_true(dir_hash_acceptable(h));
	assert_true(dir_verify_password("s3cret", h));
	assert_false(dir_verify_password("s3creT", h));

	/* a fixed, known SHA-512-crypt hash (glibc test vector style) */
	static const char fixed[] = "$6$abc$MtSdWSZbhct2oe.SOqOUM2M/GA/uj5.vyVtJgRHgKi9uqXuWuJqOYE7H/"
				    "YlsYGVg/YYzDV0xt3fEIwYt580.5.";
	assert_true(dir_hash_acceptable(fixed));
	assert_true(dir_verify_password("pw", fixed));
	assert_false(dir_verify_password("pW", fixed));

	/* SHA-256-crypt with explicit rounds */
	memset(&cd, 0, sizeof(cd));
	h = crypt_rn("pw256", "$5$rounds=6000$saltsalt$", &cd, sizeof(cd));
	assert_non_null(h);
	assert_true(dir_hash_acceptable(h));
	assert_true(dir_verify_password("pw256", h));

	/* bcrypt */
	memset(&cd, 0, sizeof(cd));
	assert_non_null(crypt_gensalt_rn("$2b$", 5, NULL, 0, salt, sizeof(salt)));
	h = crypt_rn("bc", salt, &cd, sizeof(cd));
	assert_non_null(h);
	assert_true(dir_hash_acceptable(h));
	assert_true(dir_verify_password("bc", h));
	assert_false(dir_verify_password("bC", h));
}

static void test_weak_and_invalid(void **state)
{
	struct crypt_data cd;
	const char *h;

	/* MD5-crypt and DES: crypt accepts them, we do not */
	memset(&cd, 0, sizeof(cd));
	h = crypt_rn("old", "$1$saltsalt$", &cd, sizeof(cd));
	if (h != NULL && h[0] == '$') {
		assert_false(dir_hash_acceptable(h));
		assert_false(dir_verify_password("old", h));
	}
	memset(&cd, 0, sizeof(cd));
	h = crypt_rn("old", "ab", &cd, sizeof(cd));
	if (h != NULL && h[0] != '*') {
		assert_false(dir_hash_acceptable(h));
		assert_false(dir_verify_password("old", h));
	}

	static const char *const bad[] = {
		"", "*", "!", "!!", "*LK*", "x",
		"!$6$abc$MtSdWSZbhct2oe.SOqOUM2M/GA/uj5.vyVtJgRHgKi9uqXuWuJqOYE7H/YlsYGVg/"
		"YYzDV0xt3fEIwYt580.5.", /* locked by usermod -L */
		"$1$abc$def", "$3$abc$def", "$md5$abc$def", "$sha1$1$abc$def",
		"$6$", "$6$abc$", "$y$j9T$salt$", "$y$", "$2a$05$abcdefghijklmnopqrstuu",
		"$6$ab c$def", "$6$abc$de:f", "$6$abc$def\n", "$y$j9T$sa\xc3\xa9$x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (dir_hash_acceptable(bad[i]))
			print_error("accepted: \"%s\"\n", bad[i]);
		assert_false(dir_hash_acceptable(bad[i]));
		assert_false(dir_verify_password("", bad[i]));
		assert_false(dir_verify_password("abc", bad[i]));
	}
	assert_false(dir_hash_acceptable(NULL));
	assert_false(dir_verify_password("x", NULL));

	char huge[600];
	memset(huge, 'a', sizeof(huge));
	memcpy(huge, "$6$abc$", 7);
	huge[sizeof(huge) - 1] = '\0';
	assert_false(dir_hash_acceptable(huge));
}

static void test_acceptable_prefixes(void **state)
{
	assert_true(dir_hash_acceptable("$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7"));
	assert_true(dir_hash_acceptable("$gy$j9T$salt$Ah2n2Kc3Yb9Mbv1fD0t8Cl0xP2wH0qA9u2g1G9lM0f3"));
	assert_true(dir_hash_acceptable("$7$CU..../....abcdefgh$kBW5X2R8Cd0nS1c9t4Xr0qC3Hq1fJ2wO9eTcY8m5uE2"));
	assert_true(dir_hash_acceptable("$6$saltsalt$abcdefghij"));
	assert_true(dir_hash_acceptable("$5$saltsalt$abcdefghij"));
	assert_true(dir_hash_acceptable("$2b$05$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyzABC"));
	assert_true(dir_hash_acceptable("$2y$05$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyzABC"));
}

#define HASH_THREADS 4

struct hjob {
	char pw[16];
	char hash[256];
	int rc;
	bool ok, wrong_ok;
};

static void *hash_thread(void *arg)
{
	struct hjob *j = arg;

	j->rc = dir_hash_password(j->pw, j->hash, sizeof(j->hash));
	j->ok = dir_verify_password(j->pw, j->hash);
	j->wrong_ok = dir_verify_password("nope", j->hash);
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t th[HASH_THREADS];
	struct hjob jobs[HASH_THREADS];

	for (int i = 0; i < HASH_THREADS; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		snprintf(jobs[i].pw, sizeof(jobs[i].pw), "pw-%d", i);
		assert_int_equal(pthread_create(&th[i], NULL, hash_thread, &jobs[i]), 0);
	}
	for (int i = 0; i < HASH_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(jobs[i].rc, 0);
		assert_true(jobs[i].ok);
		assert_false(jobs[i].wrong_ok);
		for (int k = 0; k < i; k++)
			assert_false(dir_verify_password(jobs[k].pw, jobs[i].hash));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_username),
		cmocka_unit_test(test_user_from_local),
		cmocka_unit_test(test_hash_and_verify),
		cmocka_unit_test(test_sha512_import),
		cmocka_unit_test(test_weak_and_invalid),
		cmocka_unit_test(test_acceptable_prefixes),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
