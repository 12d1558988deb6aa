/*
 * prefix.h - an anycast service address as configured: ADDRESS/LENGTH,
 * IPv4 or IPv6, and its parser.  No I/O and no libnl, so the config
 * parser (and its fuzz target) can use it alone; addr.h manages these
 * prefixes on an interface.
 */
#ifndef POPNODE_ANYCAST_PREFIX_H
#define POPNODE_ANYCAST_PREFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ANYCAST_PREFIX_TEXT 64

struct anycast_prefix {
	int family;			/* AF_INET or AF_INET6 */
	uint8_t addr[16];		/* 4 or 16 bytes used, network order */
	unsigned plen;			/* 1..32 or 1..128 */
	char text[ANYCAST_PREFIX_TEXT];	/* canonical "192.0.2.53/32", "2001:db8::53/128" */
};

/*
 * Parse "ADDRESS/LENGTH" (or a bare ADDRESS, meaning /32 or /128) into *out.
 * The address is added as written: host bits after LENGTH are allowed
 * ("192.0.2.53/24" is the address 192.0.2.53 with a /24), as with
 * `ip addr add`.  Refused, with a reason in err that does not quote the
 * input (the caller does): anything but a numeric address, a length out of
 * 1..32 / 1..128, and addresses that cannot be a service address
 * (unspecified, loopback, multicast, link-local, broadcast, IPv4-mapped).
 * Returns 0 or -1.
 */
int anycast_prefix_parse(const char *s, struct anycast_prefix *out, char *err, size_t errsz);

/* Same family, address and length. */
bool anycast_prefix_equal(const struct anycast_prefix *a, const struct anycast_prefix *b);

/* Address bytes of the family: 4 or 16. */
size_t anycast_prefix_addrlen(const struct anycast_prefix *p);

#endif
