/*
 * forward.c - LMTP mail for users homed at another POP, over the link
 * (forward.h; wire format forward_wire.h, docs/link-deliver.md): the
 * registration of the home side and what both sides share.  The front
 * is forward_front.c, the home forward_home.c; what they use of each
 * other is forward_int.h.
 */
#include <stdint.h>
#include <time.h>

#include "forward_int.h"
#include "link.h"
#include "node.h"

int64_t fwd_ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

int forward_init(struct node *n)
{
	link_set_handler(n->link, FORWARD_PATH, fwd_serve, n);
	return 0;
}
