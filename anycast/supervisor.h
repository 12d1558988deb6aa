/*
 * supervisor.h - the privileged parent that owns the anycast service
 * addresses and supervises the mail process (docs/anycast.md).
 *
 * With anycast_address lines in the config, `popnode -c FILE` runs this:
 * it keeps root, holds the addresses on anycast_interface, talks to BIRD,
 * and runs the mail process as a child (the same binary, executed again
 * with SUPERVISOR_FD_ENV naming its end of a socketpair).  It announces
 * only while the mail process reports healthy, withdraws the moment it
 * dies or stops reporting, restarts it, and withdraws before it exits.
 */
#ifndef POPNODE_ANYCAST_SUPERVISOR_H
#define POPNODE_ANYCAST_SUPERVISOR_H

struct config;

#define SUPERVISOR_FD_ENV "POPNODE_SUPERVISOR_FD"

/* Run until SIGTERM/SIGINT; returns the exit code for main(). */
int supervisor_run(const struct config *cfg, char **argv);

#endif
