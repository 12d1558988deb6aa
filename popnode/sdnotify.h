/*
 * sdnotify.h - systemd's readiness and watchdog protocol (sd_notify(3)),
 * spoken directly: one datagram to $NOTIFY_SOCKET.  No libsystemd needed;
 * outside systemd every call does nothing.
 */
#ifndef POPNODE_SDNOTIFY_H
#define POPNODE_SDNOTIFY_H

#include <stdint.h>

/* Send "READY=1", "WATCHDOG=1", "STOPPING=1", "STATUS=..." lines.
 * 0 (also when not under systemd), or -1. */
int sdnotify(const char *state);
/* The watchdog interval systemd expects pings within (WatchdogSec=), in
 * microseconds, when it is meant for this process; 0 if none. */
uint64_t sdnotify_watchdog_usec(void);
/* Forget $NOTIFY_SOCKET (a child must not speak for the service). */
void sdnotify_forget(void);

#endif
