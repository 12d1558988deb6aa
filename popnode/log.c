/*
 * log.c - one line per event, key=value:
 *
 *   ts=2026-11-25T19:30:00.123Z level=info event=lmtp.deliver user=bob size=1234
 *
 * Targets: stderr, a file opened O_APPEND (reopened on log_reopen() so that
 * logrotate can move it away), or syslog (facility mail, ident "popnode",
 * the ts= part left to syslog).
 *
 * Threads: the LMDB writer thread logs too.  A line is built whole in a
 * stack buffer (at most LOG_LINE_MAX bytes, cut with "..." past that) and
 * handed to the target with one write(2) (or one syslog(3) call), under a
 * mutex that also guards the target against a concurrent reopen/close, so
 * lines never interleave and never go to a closed descriptor.  The level is
 * read without the lock: a filtered-out debug line costs one load.
 *
 * Not async-signal-safe: call it from the event loop (libevent turns
 * signals into events), never from a signal handler.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048	/* bytes in one line, newline included */
#define LOG_SANITIZE_MAX 64	/* characters kept by log_sanitize */

enum log_kind { LK_STDERR, LK_FILE, LK_SYSLOG };

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static enum log_kind log_kind = LK_STDERR;	/* under log_mu */
static int log_fd = STDERR_FILENO;		/* under log_mu */
static char log_path[4096];			/* under log_mu */
static atomic_int log_level = LOG_LVL_INFO;

static const char *const level_names[] = {
	[LOG_LVL_ERR] = "error",
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

static int open_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

/* Drop the current target (caller holds log_mu). */
static void close_target(void)
{
	if (log_kind == LK_FILE && log_fd >= 0)
		close(log_fd);
	else if (log_kind == LK_SYSLOG)
		closelog();
	log_kind = LK_STDERR;
	log_fd = STDERR_FILENO;
	log_path[0] = '\0';
}

int log_open(const char *target, enum log_level level, const char **error_r)
{
	const char *dummy;
	int fd = -1;

	if (error_r == NULL)
		error_r = &dummy;
	if ((int)level < LOG_LVL_ERR || level > LOG_LVL_DEBUG) {
		*error_r = "invalid log level";
		return -1;
	}
	if (target == NULL) {
		*error_r = "no log target";
		return -1;
	}
	if (strcmp(target, "stderr") != 0 && strcmp(target, "syslog") != 0) {
		if (target[0] != '/') {
			*error_r = "log target must be stderr, syslog or an absolute path";
			return -1;
		}
		if (strlen(target) >= sizeof(log_path)) {
			*error_r = "log file path too long";
			return -1;
		}
		fd = open_file(target);
		if (fd < 0) {
			*error_r = strerror(errno);
			return -1;
		}
	}

	pthread_mutex_lock(&log_mu);
	close_target();
	if (fd >= 0) {
		log_kind = LK_FILE;
		log_fd = fd;
		snprintf(log_path, sizeof(log_path), "%s", target);
	} else if (strcmp(target, "syslog") == 0) {
		openlog("popnode", LOG_PID, LOG_MAIL);
		log_kind = LK_SYSLOG;
	}
	atomic_store(&log_level, (int)level);
	pthread_mutex_unlock(&log_mu);
	return 0;
}

void log_reopen(void)
{
	char path[sizeof(log_path)];
	int fd, err = 0;

	pthread_mutex_lock(&log_mu);
	if (log_kind != LK_FILE) {
		pthread_mutex_unlock(&log_mu);
		return;
	}
	memcpy(path, log_path, sizeof(path));
	fd = open_file(path);
	if (fd >= 0) {
		close(log_fd);
		log_fd = fd;
	} else {
		err = errno; /* keep writing to the old file */
	}
	pthread_mutex_unlock(&log_mu);
	if (err != 0)
		log_err("log.reopen", "path=%s error=\"%s\"", path, strerror(err));
}

void log_close(void)
{
	pthread_mutex_lock(&log_mu);
	close_target();
	pthread_mutex_unlock(&log_mu);
}

int log_level_parse(const char *s)
{
	if (s == NULL)
		return -1;
	for (int i = LOG_LVL_ERR; i <= LOG_LVL_DEBUG; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

static int syslog_prio(enum log_level lvl)
{
	switch (lvl) {
	case LOG_LVL_ERR: return LOG_ERR;
	case LOG_LVL_WARN: return LOG_WARNING;
	case LOG_LVL_INFO: return LOG_INFO;
	default: return LOG_DEBUG;
	}
}

static void write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* nowhere left to report it */
		p += n;
		len -= (size_t)n;
	}
}

void log_msg(enum log_level lvl, const char *event, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	size_t n, body, cap = sizeof(line) - 1; /* room for '\n' */
	int r;

	if ((int)lvl > atomic_load(&log_level) || (int)lvl < LOG_LVL_ERR)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	r = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		     tm.tm_sec, ts.tv_nsec / 1000000);
	body = r > 0 && (size_t)r < cap ? (size_t)r : 0;
	r = snprintf(line + body, sizeof(line) - body, "level=%s event=%s",
		     level_names[lvl], event != NULL && event[0] != '\0' ? event : "-");
	n = body + (r > 0 ? (size_t)r : 0);
	if (n < cap && fmt != NULL && fmt[0] != '\0') {
		va_list ap;

		line[n++] = ' ';
		va_start(ap, fmt);
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
		if (r > 0)
			n += (size_t)r;
		else
			n--; /* nothing after the event: no trailing blank */
	}
	if (n > cap) {
		/* cut: the line ends "...\n" and is exactly LOG_LINE_MAX bytes */
		n = cap;
		memcpy(line + cap - 3, "...", 3);
	}
	/* One event, one line: no caller text can start another. */
	for (size_t i = body; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	line[n++] = '\n';

	pthread_mutex_lock(&log_mu);
	if (log_kind == LK_SYSLOG) {
		line[n - 1] = '\0';
		syslog(syslog_prio(lvl), "%s", line + body);
	} else {
		write_all(log_fd, line, n);
	}
	pthread_mutex_unlock(&log_mu);
}

const char *log_sanitize(char *dst, size_t dstsz, const char *src, size_t len)
{
	size_t keep, room, n = 0;
	bool cut;

	if (dst == NULL || dstsz == 0)
		return dst;
	if (src == NULL)
		len = 0;
	keep = len > LOG_SANITIZE_MAX ? LOG_SANITIZE_MAX : len;
	cut = keep < len;
	room = dstsz - 1;
	if (keep + (cut ? 3 : 0) > room) {
		/* dst too small: keep what fits and still mark the cut */
		cut = true;
		keep = room >= 3 ? room - 3 : room;
	}
	for (size_t i = 0; i < keep; i++) {
		unsigned char ch = (unsigned char)src[i];

		dst[n++] = (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\'') ? '?' : (char)ch;
	}
	if (cut && n + 3 <= room) {
		memcpy(dst + n, "...", 3);
		n += 3;
	}
	dst[n] = '\0';
	return dst;
}
