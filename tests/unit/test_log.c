/*
 * test_log.c - log lines in a temp file: format, level filter, the 2 KB cap,
 * one line per event, sanitize, reopen after rename (logrotate), and many
 * threads writing at once without interleaving.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <regex.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_log_XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/popnode.log", dir);
	return 0;
}

static int teardown(void **state)
{
	char p[160];

	log_close();
	unlink(path);
	snprintf(p, sizeof(p), "%s.1", path);
	unlink(p);
	rmdir(dir);
	return 0;
}

#define SLURP_MAX (4 << 20)

/* Whole file as a string (caller frees). */
static char *slurp(const char *p, size_t *len)
{
	FILE *f = fopen(p, "r");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	buf = malloc(SLURP_MAX);
	if (buf == NULL) {
		fclose(f);
		return NULL;
	}
	n = fread(buf, 1, SLURP_MAX - 1, f);
	buf[n] = '\0';
	fclose(f);
	if (len != NULL)
		*len = n;
	return buf;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

static void open_file(enum log_level lvl)
{
	const char *error = NULL;

	unlink(path);
	assert_int_equal(log_open(path, lvl, &error), 0);
	assert_null(error);
}

static void test_format(void **state)
{
	regex_t re;
	char *s;

	open_file(LOG_LVL_INFO);
	log_info("lmtp.deliver", "user=%s size=%d", "bob", 1234);
	log_err("startup", "error=\"%s\"", "no store");
	log_warn("x", "%s", "");
	log_info("bare", "%s", "");
	s = slurp(path, NULL);
	assert_non_null(s);
	assert_int_equal(regcomp(&re,
				 "^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
				 "level=info event=lmtp\\.deliver user=bob size=1234\n"
				 "ts=[-0-9T:.]{23}Z level=error event=startup error=\"no store\"\n"
				 "ts=[-0-9T:.]{23}Z level=warn event=x\n"
				 "ts=[-0-9T:.]{23}Z level=info event=bare\n$",
				 REG_EXTENDED),
			 0);
	if (regexec(&re, s, 0, NULL, 0) != 0)
		print_error("log file:\n%s", s);
	assert_int_equal(regexec(&re, s, 0, NULL, 0), 0);
	regfree(&re);
	free(s);
}

static void test_empty_fmt_and_event(void **state)
{
	char *s;

	open_file(LOG_LVL_DEBUG);
	log_msg(LOG_LVL_INFO, "tick", "%s", "a=1");
	log_msg(LOG_LVL_INFO, "", "%s", "b=2");
	s = slurp(path, NULL);
	assert_non_null(strstr(s, " level=info event=tick a=1\n"));
	assert_non_null(strstr(s, " level=info event=- b=2\n"));
	free(s);
}

static void test_level_filter(void **state)
{
	char *s;

	open_file(LOG_LVL_WARN);
	log_debug("d", "n=1");
	log_info("i", "n=2");
	log_warn("w", "n=3");
	log_err("e", "n=4");
	s = slurp(path, NULL);
	assert_int_equal(count_lines(s), 2);
	assert_null(strstr(s, "event=d"));
	assert_null(strstr(s, "event=i"));
	assert_non_null(strstr(s, "level=warn event=w n=3\n"));
	assert_non_null(strstr(s, "level=error event=e n=4\n"));
	free(s);

	open_file(LOG_LVL_DEBUG);
	log_debug("d", "n=1");
	s = slurp(path, NULL);
	assert_non_null(strstr(s, "level=debug event=d n=1\n"));
	free(s);

	open_file(LOG_LVL_ERR);
	log_warn("w", "n=1");
	log_err("e", "n=2");
	s = slurp(path, NULL);
	assert_int_equal(count_lines(s), 1);
	free(s);
}

static void test_long_line_cut(void **state)
{
	char big[5000];
	char *s;
	size_t len;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	open_file(LOG_LVL_INFO);
	log_info("big", "v=%s", big);
	log_info("after", "ok=1");
	s = slurp(path, &len);
	char *nl = strchr(s, '\n');
	assert_non_null(nl);
	assert_int_equal(nl - s + 1, 2048); /* the cap, newline included */
	assert_memory_equal(nl - 3, "...", 3);
	assert_int_equal(count_lines(s), 2);
	assert_non_null(strstr(nl + 1, "event=after ok=1\n"));
	free(s);

	/* exactly at the cap: not cut */
	open_file(LOG_LVL_INFO);
	log_info("e", "%s", "");
	s = slurp(path, &len);
	size_t prefix = len; /* "ts=... level=info event=e" and a blank before the text */
	free(s);
	open_file(LOG_LVL_INFO);
	big[2047 - prefix] = '\0';
	log_info("e", "%s", big);
	s = slurp(path, &len);
	assert_int_equal(len, 2048);
	assert_int_equal(s[2046], 'x');
	assert_int_equal(s[2047], '\n');
	free(s);
}

static void test_one_line_per_event(void **state)
{
	char *s;

	open_file(LOG_LVL_INFO);
	log_info("evil", "user=%s", "bob\nts=fake level=error event=forged\r\x1b[2J");
	s = slurp(path, NULL);
	assert_int_equal(count_lines(s), 1);
	assert_non_null(strstr(s, "user=bob?ts=fake level=error event=forged??[2J\n"));
	free(s);
}

static void test_reopen_after_rename(void **state)
{
	char rotated[160];
	char *s;

	snprintf(rotated, sizeof(rotated), "%s.1", path);
	open_file(LOG_LVL_INFO);
	log_info("before", "n=1");
	assert_int_equal(rename(path, rotated), 0);
	log_info("still_old", "n=2"); /* the fd still points at the renamed file */
	log_reopen();
	log_info("after", "n=3");

	s = slurp(rotated, NULL);
	assert_non_null(strstr(s, "event=before n=1\n"));
	assert_non_null(strstr(s, "event=still_old n=2\n"));
	assert_null(strstr(s, "event=after"));
	free(s);
	s = slurp(path, NULL);
	assert_non_null(s);
	assert_int_equal(count_lines(s), 1);
	assert_non_null(strstr(s, "event=after n=3\n"));
	free(s);

	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);

	/* reopen when the file cannot be created: keeps writing to the old
	 * file and says so there */
	char sub[160], subpath[200];
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	snprintf(subpath, sizeof(subpath), "%s/popnode.log", sub);
	assert_int_equal(mkdir(sub, 0700), 0);
	const char *error = NULL;
	assert_int_equal(log_open(subpath, LOG_LVL_INFO, &error), 0);
	log_info("in_sub", "n=1");
	assert_int_equal(rename(subpath, rotated), 0);
	assert_int_equal(rmdir(sub), 0);
	log_reopen();
	log_info("kept", "n=2");
	s = slurp(rotated, NULL);
	assert_non_null(strstr(s, "event=in_sub n=1\n"));
	assert_non_null(strstr(s, "level=error event=log.reopen path="));
	assert_non_null(strstr(s, "No such file or directory"));
	assert_non_null(strstr(s, "event=kept n=2\n"));
	free(s);
	log_close();
	unlink(rotated);
}

static void test_open_errors(void **state)
{
	const char *error = NULL;

	assert_int_equal(log_open("relative.log", LOG_LVL_INFO, &error), -1);
	assert_string_equal(error, "log target must be stderr, syslog or an absolute path");
	error = NULL;
	assert_int_equal(log_open("/nonexistent-dir-xyz/popnode.log", LOG_LVL_INFO, &error), -1);
	assert_string_equal(error, "No such file or directory");
	assert_int_equal(log_open("stderr", (enum log_level)9, &error), -1);
	assert_int_equal(log_open("stderr", LOG_LVL_INFO, &error), 0);
	log_reopen(); /* harmless on stderr */
	assert_int_equal(log_open("syslog", LOG_LVL_ERR, &error), 0);
	log_reopen();
	log_close();
}

static void test_level_parse(void **state)
{
	assert_int_equal(log_level_parse("error"), LOG_LVL_ERR);
	assert_int_equal(log_level_parse("warn"), LOG_LVL_WARN);
	assert_int_equal(log_level_parse("info"), LOG_LVL_INFO);
	assert_int_equal(log_level_parse("debug"), LOG_LVL_DEBUG);
	assert_int_equal(log_level_parse("Info"), -1);
	assert_int_equal(log_level_parse("warning"), -1);
	assert_int_equal(log_level_parse(""), -1);
	assert_int_equal(log_level_parse(NULL), -1);
}

static void test_sanitize(void **state)
{
	char out[128];
	char small[8];
	char src[100];

	assert_string_equal(log_sanitize(out, sizeof(out), "bob@example.com", 15), "bob@example.com");
	assert_string_equal(log_sanitize(out, sizeof(out), "a b\"c'd\te\r\nf", 12), "a?b?c?d?e??f");
	assert_string_equal(log_sanitize(out, sizeof(out), "caf\xc3\xa9\x7f\x01", 7), "caf????");
	/* length-counted: stops at len, and a NUL inside becomes '?' */
	assert_string_equal(log_sanitize(out, sizeof(out), "abcdef", 3), "abc");
	assert_string_equal(log_sanitize(out, sizeof(out), "a\0b", 3), "a?b");
	assert_string_equal(log_sanitize(out, sizeof(out), "", 0), "");
	assert_string_equal(log_sanitize(out, sizeof(out), NULL, 5), "");

	/* 64 characters are kept whole; past that, cut with "..." */
	memset(src, 'z', sizeof(src));
	log_sanitize(out, sizeof(out), src, 64);
	assert_int_equal(strlen(out), 64);
	log_sanitize(out, sizeof(out), src, 65);
	assert_int_equal(strlen(out), 67);
	assert_string_equal(out + 64, "...");

	/* a small dst still gets a terminated, marked string */
	assert_ptr_equal(log_sanitize(small, sizeof(small), "abcdefghij", 10), small);
	assert_string_equal(small, "abcd...");
	assert_string_equal(log_sanitize(small, sizeof(small), "abcdefg", 7), "abcdefg");
	assert_string_equal(log_sanitize(small, 3, "abcdefg", 7), "ab");
	assert_string_equal(log_sanitize(small, 1, "abcdefg", 7), "");
	small[0] = 'q';
	log_sanitize(small, 0, "abc", 3); /* nothing written */
	assert_int_equal(small[0], 'q');
}

#define THREADS 8
#define PER_THREAD 500

static void *writer(void *arg)
{
	char pad[300];

	memset(pad, 'a' + (int)(intptr_t)arg, sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	for (int i = 0; i < PER_THREAD; i++)
		log_info("thread", "t=%d i=%d pad=%s end=1", (int)(intptr_t)arg, i, pad);
	return NULL;
}

static void *rotator(void *arg)
{
	for (int i = 0; i < 50; i++) {
		log_reopen();
		usleep(100);
	}
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t th[THREADS + 1];
	char *s, *line, *save = NULL;
	size_t n = 0;

	open_file(LOG_LVL_INFO);
	for (intptr_t i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, writer, (void *)i), 0);
	assert_int_equal(pthread_create(&th[THREADS], NULL, rotator, NULL), 0);
	for (int i = 0; i <= THREADS; i++)
		pthread_join(th[i], NULL);
	s = slurp(path, NULL);
	for (line = strtok_r(s, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		int t, i;
		char pad[300];

		assert_int_equal(sscanf(strstr(line, "event=thread"),
					"event=thread t=%d i=%d pad=%299s end=1", &t, &i, pad), 3);
		assert_int_equal(strlen(pad), 299);
		char want[2] = { (char)('a' + t), 0 };
		if (strspn(pad, want) != 299)
			print_error("bad line: %s\n", line);
		assert_int_equal(strspn(pad, want), 299);
		assert_non_null(strstr(line, " end=1"));
		n++;
	}
	assert_int_equal(n, THREADS * PER_THREAD);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_empty_fmt_and_event),
		cmocka_unit_test(test_level_filter),
		cmocka_unit_test(test_long_line_cut),
		cmocka_unit_test(test_one_line_per_event),
		cmocka_unit_test(test_reopen_after_rename),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test(test_sanitize),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
