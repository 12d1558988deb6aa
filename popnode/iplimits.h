/*
 * iplimits.h - per remote address limits: concurrent sessions and
 * authentication failures (delay, then refuse for a window).
 * Keys are the textual address; unix-socket peers ("") are not limited.
 */
#ifndef POPNODE_IPLIMITS_H
#define POPNODE_IPLIMITS_H

#include <stdbool.h>
#include "config.h"

struct iplimits;

struct iplimits *iplimits_new(const struct config *cfg);
void iplimits_free(struct iplimits **l);

/* false if ip already has max_sessions_per_ip sessions. */
bool iplimits_session_open(struct iplimits *l, const char *ip);
void iplimits_session_close(struct iplimits *l, const char *ip);

/* true while ip has auth_fail_max failures inside auth_fail_window. */
bool iplimits_auth_blocked(struct iplimits *l, const char *ip, long now);
/* Record a failure; returns how long (ms) to wait before answering it. */
unsigned iplimits_auth_failed(struct iplimits *l, const char *ip, long now);
/* A success clears the address' failures. */
void iplimits_auth_ok(struct iplimits *l, const char *ip);

#endif
