/*
 * log.h - one line per event, key=value, to stderr, a file or syslog.
 *
 * Every line is "ts=... level=... event=NAME key=value ...".  The caller
 * writes the key=value part with printf syntax; text that came from a peer
 * must go through log_sanitize() first.  Logging is process-wide state
 * (like syslog itself); everything else in popnode is passed explicitly.
 */
#ifndef POPNODE_LOG_H
#define POPNODE_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* target: "stderr", "syslog" or an absolute file path.  0 or -1 with
 * *error_r set (static string). */
int log_open(const char *target, enum log_level level, const char **error_r);
/* Reopen a file target (SIGHUP, after logrotate).  Safe to call for any target. */
void log_reopen(void);
void log_close(void);
/* Parse "error"/"warn"/"info"/"debug"; -1 if unknown. */
int log_level_parse(const char *s);

void log_msg(enum log_level lvl, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_err(ev, ...) log_msg(LOG_LVL_ERR, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_msg(LOG_LVL_WARN, ev, __VA_ARGS__)
#define log_info(ev, ...) log_msg(LOG_LVL_INFO, ev, __VA_ARGS__)
#define log_debug(ev, ...) log_msg(LOG_LVL_DEBUG, ev, __VA_ARGS__)

/* Copy at most len bytes of peer-supplied src into dst (size dstsz, always
 * NUL-terminated) so it is safe inside a log value: no spaces, quotes,
 * control bytes or non-ASCII (each becomes '?'), cut at 64 chars with "...".
 * Returns dst. */
const char *log_sanitize(char *dst, size_t dstsz, const char *src, size_t len);

#endif
