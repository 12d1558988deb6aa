/*
 * prefix.c - parse an anycast service prefix.  The canonical text is
 * rebuilt with inet_ntop(), so "2001:DB8:0::53/128" and
 * "2001:db8::53/128" are one prefix, which is how the config finds
 * duplicates.
 */
#include "prefix.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static int fail(char *err, size_t errsz, const char *msg)
{
	if (err != NULL && errsz > 0)
		snprintf(err, errsz, "%s", msg);
	return -1;
}

/* "1".."128", no sign, no leading zero. */
static int parse_plen(const char *s, unsigned *out)
{
	unsigned v = 0;
	size_t i;

	if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 3)
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static const char *v4_refused(const uint8_t *a)
{
	if (a[0] == 0)
		return "0.0.0.0/8 is not a usable address";
	if (a[0] == 127)
		return "a loopback address cannot be a service address";
	if (a[0] >= 224 && a[0] <= 239)
		return "a multicast address cannot be a service address";
	if (a[0] == 255 && a[1] == 255 && a[2] == 255 && a[3] == 255)
		return "the broadcast address cannot be a service address";
	if (a[0] == 169 && a[1] == 254)
		return "a link-local address (169.254.0.0/16) cannot be a service address";
	return NULL;
}

static const char *v6_refused(const struct in6_addr *a)
{
	if (IN6_IS_ADDR_UNSPECIFIED(a))
		return ":: is not a usable address";
	if (IN6_IS_ADDR_LOOPBACK(a))
		return "a loopback address cannot be a service address";
	if (IN6_IS_ADDR_MULTICAST(a))
		return "a multicast address cannot be a service address";
	if (IN6_IS_ADDR_LINKLOCAL(a))
		return "a link-local address (fe80::/10) cannot be a service address";
	if (IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_V4COMPAT(a))
		return "an IPv4-mapped IPv6 address cannot be a service address; write the "
		       "IPv4 address";
	return NULL;
}

int anycast_prefix_parse(const char *s, struct anycast_prefix *out, char *err, size_t errsz)
{
	char host[INET6_ADDRSTRLEN + 1], canon[INET6_ADDRSTRLEN];
	struct anycast_prefix p;
	const char *slash, *why;
	size_t hlen;
	unsigned max;

	if (s == NULL || s[0] == '\0')
		return fail(err, errsz, "empty address");
	slash = strchr(s, '/');
	hlen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if (hlen == 0 || hlen >= sizeof(host))
		return fail(err, errsz, "not an IPv4 or IPv6 address");
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	memset(&p, 0, sizeof(p));
	if (memchr(host, ':', hlen) != NULL) {
		struct in6_addr a6;

		if (inet_pton(AF_INET6, host, &a6) != 1)
			return fail(err, errsz, "not a numeric IPv6 address");
		if ((why = v6_refused(&a6)) != NULL)
			return fail(err, errsz, why);
		p.family = AF_INET6;
		memcpy(p.addr, &a6, 16);
		max = 128;
	} else {
		struct in_addr a4;

		if (inet_pton(AF_INET, host, &a4) != 1)
			return fail(err, errsz, "not a numeric IPv4 address (dotted quad, as in "
					      "192.0.2.53/32)");
		memcpy(p.addr, &a4, 4);
		if ((why = v4_refused(p.addr)) != NULL)
			return fail(err, errsz, why);
		p.family = AF_INET;
		max = 32;
	}
	if (slash == NULL) {
		p.plen = max;
	} else if (parse_plen(slash + 1, &p.plen) < 0 || p.plen < 1 || p.plen > max) {
		return fail(err, errsz, max == 32 ? "the prefix length must be a number from 1 to 32"
						  : "the prefix length must be a number from 1 to 128");
	}
	if (inet_ntop(p.family, p.addr, canon, sizeof(canon)) == NULL)
		return fail(err, errsz, "not an IPv4 or IPv6 address");
	snprintf(p.text, sizeof(p.text), "%s/%u", canon, p.plen);
	*out = p;
	return 0;
}

bool anycast_prefix_equal(const struct anycast_prefix *a, const struct anycast_prefix *b)
{
	return a->family == b->family && a->plen == b->plen &&
	       memcmp(a->addr, b->addr, anycast_prefix_addrlen(a)) == 0;
}

size_t anycast_prefix_addrlen(const struct anycast_prefix *p)
{
	return p->family == AF_INET6 ? 16 : 4;
}
