/*
 * addr.c - the anycast service addresses on their interface (addr.h).
 *
 * One NETLINK_ROUTE socket per handle, with SO_RCVTIMEO/SO_SNDTIMEO so
 * that each libnl request gives up after ANYCAST_NL_TIMEOUT_MS instead of
 * waiting forever for an answer.  After any failed request the socket is
 * dropped and a fresh one is made for the next call: a late answer to the
 * failed request must not be taken for the answer to the next one.
 *
 * anycast_if_set() reads the interface's addresses first and only adds
 * what is missing or deletes what is there, so a repeated announce or
 * withdraw sends nothing; EEXIST on add and EADDRNOTAVAIL on delete (a
 * race with someone else) still count as success.  Addresses are matched
 * on family, address and prefix length, so 192.0.2.53/24 put there by an
 * operator is not the service prefix 192.0.2.53/32 and is never deleted.
 */
#include "addr.h"

#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <linux/if_addr.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>

struct anycast_if {
	struct nl_sock *sk;	/* NULL until needed, and after a failure */
	char name[IFNAMSIZ];
	int ifindex;		/* last seen; 0 = unknown */
	bool create_dummy;	/* (re)create a missing interface as a dummy */
};

static void set_err(char *err, size_t errsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

/* A libnl error as text, with the two that deserve words. */
static const char *nlerr(int rc)
{
	if (rc < 0)
		rc = -rc;
	if (rc == NLE_AGAIN)
		return "no answer from the kernel within the netlink timeout";
	if (rc == NLE_PERM)
		return "operation not permitted (needs CAP_NET_ADMIN)";
	return nl_geterror(rc);
}

static void sock_drop(struct anycast_if *ai)
{
	if (ai->sk != NULL) {
		nl_socket_free(ai->sk); /* closes it */
		ai->sk = NULL;
	}
}

static int sock_get(struct anycast_if *ai, char *err, size_t errsz)
{
	struct timeval tv = {
		.tv_sec = ANYCAST_NL_TIMEOUT_MS / 1000,
		.tv_usec = (ANYCAST_NL_TIMEOUT_MS % 1000) * 1000,
	};
	int rc, fd;

	if (ai->sk != NULL)
		return 0;
	ai->sk = nl_socket_alloc();
	if (ai->sk == NULL) {
		set_err(err, errsz, "netlink: out of memory");
		return -1;
	}
	rc = nl_connect(ai->sk, NETLINK_ROUTE);
	if (rc < 0) {
		set_err(err, errsz, "netlink: cannot open a route socket: %s", nlerr(rc));
		sock_drop(ai);
		return -1;
	}
	fd = nl_socket_get_fd(ai->sk);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		set_err(err, errsz, "netlink: cannot set a timeout: %s", strerror(errno));
		sock_drop(ai);
		return -1;
	}
	return 0;
}

static bool valid_ifname(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n >= IFNAMSIZ || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '/' || s[i] == ':' || s[i] <= ' ' || s[i] == 0x7f)
			return false;
	return true;
}

/* The link named ai->name into *out (NULL if there is none).  0 or -1. */
static int link_get(struct anycast_if *ai, struct rtnl_link **out, char *err, size_t errsz)
{
	int rc;

	*out = NULL;
	if (sock_get(ai, err, errsz) < 0)
		return -1;
	rc = rtnl_link_get_kernel(ai->sk, 0, ai->name, out);
	if (rc == -NLE_NODEV || rc == -NLE_OBJ_NOTFOUND) {
		*out = NULL;
		return 0;
	}
	if (rc < 0) {
		set_err(err, errsz, "interface %s: cannot look it up: %s", ai->name, nlerr(rc));
		sock_drop(ai);
		return -1;
	}
	return 0;
}

static int dummy_create(struct anycast_if *ai, char *err, size_t errsz)
{
	struct rtnl_link *l = rtnl_link_alloc();
	int rc;

	if (l == NULL) {
		set_err(err, errsz, "interface %s: out of memory", ai->name);
		return -1;
	}
	rtnl_link_set_name(l, ai->name);
	rc = rtnl_link_set_type(l, "dummy");
	if (rc >= 0) {
		rtnl_link_set_flags(l, IFF_UP);
		rc = rtnl_link_add(ai->sk, l, NLM_F_CREATE | NLM_F_EXCL);
	}
	rtnl_link_put(l);
	if (rc == -NLE_EXIST)
		return 0; /* created meanwhile by someone else: use it */
	if (rc == -NLE_OPNOTSUPP) { /* the kernel's answer to an unknown link kind */
		set_err(err, errsz, "interface %s does not exist and cannot be created: this kernel "
			"has no dummy driver (CONFIG_DUMMY); create the interface beforehand (e.g. "
			"\"ip link add %s type veth peer name %.10sp\" and set both up) or name an "
			"existing one such as lo in anycast_interface, and set anycast_create_dummy "
			"no", ai->name, ai->name, ai->name);
		sock_drop(ai);
		return -1;
	}
	if (rc < 0) {
		set_err(err, errsz, "interface %s does not exist and creating it as a dummy failed: "
			"%s", ai->name, nlerr(rc));
		sock_drop(ai);
		return -1;
	}
	return 0;
}

/* Look the interface up (creating the dummy if allowed), set it up if it
 * is down, and note its index. */
static int link_resolve(struct anycast_if *ai, char *err, size_t errsz)
{
	struct rtnl_link *l;
	int rc;

	if (link_get(ai, &l, err, errsz) < 0)
		return -1;
	if (l == NULL) {
		if (!ai->create_dummy) {
			set_err(err, errsz, "interface %s does not exist (create it, or set "
				"anycast_create_dummy yes where the kernel has the dummy driver)",
				ai->name);
			ai->ifindex = 0;
			return -1;
		}
		if (dummy_create(ai, err, errsz) < 0 || link_get(ai, &l, err, errsz) < 0)
			return -1;
		if (l == NULL) {
			set_err(err, errsz, "interface %s: created, but gone again", ai->name);
			return -1;
		}
	}
	ai->ifindex = rtnl_link_get_ifindex(l);
	if (!(rtnl_link_get_flags(l) & IFF_UP)) {
		struct rtnl_link *chg = rtnl_link_alloc();

		if (chg == NULL) {
			rtnl_link_put(l);
			set_err(err, errsz, "interface %s: out of memory", ai->name);
			return -1;
		}
		rtnl_link_set_flags(chg, IFF_UP);
		rc = rtnl_link_change(ai->sk, l, chg, 0);
		rtnl_link_put(chg);
		if (rc < 0) {
			rtnl_link_put(l);
			set_err(err, errsz, "interface %s is down and cannot be set up: %s", ai->name,
				nlerr(rc));
			sock_drop(ai);
			return -1;
		}
	}
	rtnl_link_put(l);
	return 0;
}

struct anycast_if *anycast_if_open(const char *ifname, bool create_dummy, char *err, size_t errsz)
{
	struct anycast_if *ai;

	if (!valid_ifname(ifname)) {
		set_err(err, errsz, "\"%.32s\" is not a valid interface name (1-15 characters, no "
			"blank, '/' or ':')", ifname != NULL ? ifname : "");
		return NULL;
	}
	ai = calloc(1, sizeof(*ai));
	if (ai == NULL) {
		set_err(err, errsz, "out of memory");
		return NULL;
	}
	snprintf(ai->name, sizeof(ai->name), "%s", ifname);
	ai->create_dummy = create_dummy;
	if (link_resolve(ai, err, errsz) < 0) {
		anycast_if_close(&ai);
		return NULL;
	}
	return ai;
}

/* An rtnl_addr for prefix p on ai's interface; NULL when out of memory. */
static struct rtnl_addr *addr_build(const struct anycast_if *ai, const struct anycast_prefix *p)
{
	struct nl_addr *local = nl_addr_build(p->family, p->addr, anycast_prefix_addrlen(p));
	struct rtnl_addr *a = rtnl_addr_alloc();

	if (local == NULL || a == NULL)
		goto fail;
	nl_addr_set_prefixlen(local, (int)p->plen);
	rtnl_addr_set_ifindex(a, ai->ifindex);
	rtnl_addr_set_family(a, p->family);
	if (rtnl_addr_set_local(a, local) < 0)
		goto fail;
	rtnl_addr_set_prefixlen(a, (int)p->plen);
	if (p->family == AF_INET6)
		rtnl_addr_set_flags(a, IFA_F_NODAD);
	nl_addr_put(local);
	return a;
fail:
	if (local != NULL)
		nl_addr_put(local);
	if (a != NULL)
		rtnl_addr_put(a);
	return NULL;
}

static bool addr_matches(struct rtnl_addr *a, int ifindex, const struct anycast_prefix *p)
{
	struct nl_addr *local;

	if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_family(a) != p->family ||
	    rtnl_addr_get_prefixlen(a) != (int)p->plen)
		return false;
	local = rtnl_addr_get_local(a);
	return local != NULL && nl_addr_get_len(local) == anycast_prefix_addrlen(p) &&
	       memcmp(nl_addr_get_binary_addr(local), p->addr, anycast_prefix_addrlen(p)) == 0;
}

/* present[i] from one dump of the addresses.  Count, or -1. */
static int scan(struct anycast_if *ai, const struct anycast_prefix *pfx, size_t n, bool *present,
		char *err, size_t errsz)
{
	struct nl_cache *cache = NULL;
	int rc, count = 0;

	for (size_t i = 0; i < n; i++)
		present[i] = false;
	if (sock_get(ai, err, errsz) < 0)
		return -1;
	rc = rtnl_addr_alloc_cache(ai->sk, &cache);
	if (rc < 0) {
		set_err(err, errsz, "interface %s: cannot read its addresses: %s", ai->name,
			nlerr(rc));
		sock_drop(ai);
		return -1;
	}
	for (struct nl_object *o = nl_cache_get_first(cache); o != NULL; o = nl_cache_get_next(o)) {
		for (size_t i = 0; i < n; i++) {
			if (!present[i] && addr_matches((struct rtnl_addr *)o, ai->ifindex, &pfx[i])) {
				present[i] = true;
				count++;
			}
		}
	}
	nl_cache_free(cache);
	return count;
}

int anycast_if_present(struct anycast_if *ai, const struct anycast_prefix *prefixes, size_t n,
		       bool *present, char *err, size_t errsz)
{
	struct rtnl_link *l;
	int idx;

	if (link_get(ai, &l, err, errsz) < 0)
		return -1;
	if (l == NULL) {
		/* no interface, no addresses */
		ai->ifindex = 0;
		for (size_t i = 0; i < n; i++)
			present[i] = false;
		return 0;
	}
	idx = rtnl_link_get_ifindex(l);
	rtnl_link_put(l);
	ai->ifindex = idx;
	return scan(ai, prefixes, n, present, err, errsz);
}

int anycast_if_set(struct anycast_if *ai, const struct anycast_prefix *prefixes, size_t n,
		   bool announce, char *err, size_t errsz)
{
	bool *present;
	int rc = 0;

	if (n == 0)
		return 0;
	if (!announce) {
		struct rtnl_link *l;

		/* withdrawing from an interface that is gone: nothing to do */
		if (link_get(ai, &l, err, errsz) < 0)
			return -1;
		if (l == NULL) {
			ai->ifindex = 0;
			return 0;
		}
		ai->ifindex = rtnl_link_get_ifindex(l);
		rtnl_link_put(l);
	} else if (link_resolve(ai, err, errsz) < 0) {
		return -1;
	}
	present = calloc(n, sizeof(*present));
	if (present == NULL) {
		set_err(err, errsz, "out of memory");
		return -1;
	}
	if (scan(ai, prefixes, n, present, err, errsz) < 0) {
		free(present);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct rtnl_addr *a;
		int r;

		if (present[i] == announce)
			continue;
		if (sock_get(ai, rc < 0 ? NULL : err, errsz) < 0) {
			rc = -1;
			continue;
		}
		a = addr_build(ai, &prefixes[i]);
		if (a == NULL) {
			if (rc == 0)
				set_err(err, errsz, "%s: out of memory", prefixes[i].text);
			rc = -1;
			continue;
		}
		r = announce ? rtnl_addr_add(ai->sk, a, 0) : rtnl_addr_delete(ai->sk, a, 0);
		rtnl_addr_put(a);
		if (r >= 0 || (announce && r == -NLE_EXIST) || (!announce && r == -NLE_NOADDR))
			continue;
		if (rc == 0)
			set_err(err, errsz, "interface %s: cannot %s %s: %s", ai->name,
				announce ? "add" : "delete", prefixes[i].text, nlerr(r));
		sock_drop(ai);
		rc = -1;
	}
	free(present);
	return rc;
}

const char *anycast_if_name(const struct anycast_if *ai)
{
	return ai->name;
}

int anycast_if_index(const struct anycast_if *ai)
{
	return ai->ifindex;
}

void anycast_if_close(struct anycast_if **aip)
{
	if (aip == NULL || *aip == NULL)
		return;
	sock_drop(*aip);
	free(*aip);
	*aip = NULL;
}
