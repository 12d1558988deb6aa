/*
 * addr.h - the anycast service addresses on their interface, through
 * libnl-route.  Announcing a service = adding its addresses to the
 * interface; BIRD's `protocol direct` exports them and the router's route
 * follows within milliseconds.  Withdrawing = deleting them; the BGP
 * session is not touched.
 *
 * Runs in the privileged parent (CAP_NET_ADMIN), never in the mail event
 * loop: every call is a synchronous netlink exchange, each bounded by a
 * receive timeout (ANYCAST_NL_TIMEOUT_MS), so a call never hangs.
 *
 * Only the given prefixes are ever added or deleted; every other address
 * on the interface, and the interface's link state, are left alone (taking
 * a link down would also delete its IPv6 addresses).  The one exception:
 * an interface found administratively down is set up at open, since a down
 * interface carries no route.  IPv6 addresses are added with IFA_F_NODAD,
 * so they are usable (not "tentative") at once.
 */
#ifndef POPNODE_ANYCAST_ADDR_H
#define POPNODE_ANYCAST_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "prefix.h"

/* Bound on each netlink request/reply exchange. */
#define ANYCAST_NL_TIMEOUT_MS 2000

struct anycast_if;

/*
 * Find the interface ifname (a netlink socket in the caller's network
 * namespace).  If it does not exist and create_dummy is set, create a
 * `dummy` link of that name, up.  A kernel without the dummy driver fails
 * with a message saying so and naming what to do instead (create the
 * interface beforehand, e.g. a veth pair, or name an existing one such as
 * lo, and set anycast_create_dummy no).  NULL with err set on failure.
 */
struct anycast_if *anycast_if_open(const char *ifname, bool create_dummy, char *err,
				   size_t errsz);

/*
 * Make exactly these prefixes present (announce) or absent (withdraw) on
 * the interface.  Idempotent: a prefix already in the wanted state is left
 * as it is.  The interface is looked up again by name on each call, so a
 * deleted and re-created interface is followed (a dummy this handle
 * created is created again).  All prefixes are attempted even if one
 * fails; 0 when all are in the wanted state, -1 with err naming the first
 * failure otherwise.
 */
int anycast_if_set(struct anycast_if *ai, const struct anycast_prefix *prefixes, size_t n,
		   bool announce, char *err, size_t errsz);

/*
 * Read back which prefixes are on the interface (same family, address and
 * length): present[i] for prefixes[i].  Returns how many are present, or
 * -1 with err set.
 */
int anycast_if_present(struct anycast_if *ai, const struct anycast_prefix *prefixes, size_t n,
		       bool *present, char *err, size_t errsz);

/* The interface's name and its current index (0 when unknown). */
const char *anycast_if_name(const struct anycast_if *ai);
int anycast_if_index(const struct anycast_if *ai);

/* Close the netlink socket and free *aip; sets it to NULL; NULL is fine.
 * The addresses stay as they are. */
void anycast_if_close(struct anycast_if **aip);

#endif
