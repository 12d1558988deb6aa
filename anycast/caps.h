/*
 * caps.h - the capabilities the anycast supervisor keeps, and nothing more.
 *
 * The supervisor stays uid 0 for its whole life (netlink, BIRD's socket,
 * restarting and signalling the mail process), and the mail process it
 * executes starts as uid 0 too (it binds, then drops to `user`).  Neither
 * needs full root, so caps_limit() cuts the process down, at the very start
 * of supervisor_run(), to one list (caps.c, the only place it is written):
 *
 *   cap_net_bind_service  the mail process binds ports below 1024
 *   cap_net_admin         service addresses on the anycast interface (netlink)
 *   cap_setuid/setgid     the mail process drops to `user`
 *   cap_kill              signal the mail process once it runs as `user`
 *   cap_dac_override      the mail process reads the TLS key and opens the
 *                         log file in a directory owned by the run user
 *
 * The capability bounding set becomes exactly that list and the permitted,
 * effective and inheritable sets that list (as far as the process held it),
 * so the mail process executed as uid 0 gets exactly the bounding set.  The
 * systemd unit's CapabilityBoundingSet= (deploy/systemd/popnode.service.in)
 * names the same capabilities in the same order; tests/unit/test_caps.c
 * holds the two together.
 */
#ifndef POPNODE_ANYCAST_CAPS_H
#define POPNODE_ANYCAST_CAPS_H

#include <stddef.h>
#include <stdint.h>

/* Longest caps_kept_text() (with its NUL). */
#define CAPS_TEXT_MAX 256

/* caps_limit() results */
#define CAPS_UNPRIVILEGED 0	/* not root and no CAP_SETPCAP: nothing done */
#define CAPS_LIMITED 1		/* bounding, permitted, effective, inheritable cut */

/*
 * Cut this process's capabilities to the kept list when it runs as uid 0
 * or holds CAP_SETPCAP; otherwise do nothing.  Capabilities in the
 * bounding set outside the list are dropped (this needs CAP_SETPCAP; under
 * a unit whose CapabilityBoundingSet= already is the list there is nothing
 * to drop), then permitted = effective = inheritable = the list as far as
 * the process held it.  The result is read back and checked.
 * Returns CAPS_LIMITED, CAPS_UNPRIVILEGED, or -1 with the reason in err
 * (then the process may hold more than the list: do not run).
 */
int caps_limit(char *err, size_t errsz);

/* The kept list as libcap names them, comma-separated and in the order of
 * the unit file: "cap_net_bind_service,cap_net_admin,...".  Writes at most
 * len bytes (CAPS_TEXT_MAX is enough); returns 0, or -1 if it did not fit. */
int caps_kept_text(char *buf, size_t len);

/* The kept list as a mask (bit N: capability number N), the form of
 * CapBnd/CapPrm/CapEff in /proc/PID/status. */
uint64_t caps_kept_mask(void);

#endif
