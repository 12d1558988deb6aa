/*
 * heartbeat.h - the mail process's side of the anycast supervisor
 * (anycast/supervisor.h).
 *
 * Every health_interval the mail process writes one line of health
 * figures to the socket its supervisor gave it:
 *
 *   hb loop_ms=N store=0|1 disk_free=BYTES listeners=0|1 peers_up=N peers=N lag_ms=N|-
 *
 * The lines are written by a timer on the event loop, so they stop when
 * the loop stops (a deadlock, SIGSTOP, a CPU-bound bug): silence is what
 * the supervisor treats as "stuck".  loop_ms is how late that timer ran:
 * the event loop's delay.  The supervisor answers each state change with
 *
 *   state announced|withdrawn bird=up|down reason=TEXT
 *
 * which is kept for /status, /metrics and popctl status.
 */
#ifndef POPNODE_HEARTBEAT_H
#define POPNODE_HEARTBEAT_H

#include <stdbool.h>

struct node;

/* Start reporting on fd (the socketpair end; the heartbeat owns it).
 * 0, or -1 (out of memory; fd closed). */
int heartbeat_start(struct node *n, int fd);
void heartbeat_stop(struct node *n);

#endif
