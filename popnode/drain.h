/*
 * drain.h - taking a POP out of service on purpose (popctl drain).
 *
 * Drained is a file, the maintenance file (config maintenance_file,
 * default DATA_DIR/maintenance): its presence means drained, so the state
 * survives a restart, and the anycast supervisor (which withdraws the
 * service addresses while it exists) sees it even when the mail process
 * or its control socket does not answer.  An operator may also create it
 * by hand.
 *
 * Draining tells every client connected here to go elsewhere: IMAP
 * sessions get "* BYE [UNAVAILABLE]" once their command in flight is
 * done (at once while idle), POP3 sessions "-ERR [SYS/TEMP]" and are
 * closed (after an auth or QUIT in flight), roaming sessions relayed to
 * their home POP are closed.  Once the route has moved, a client's
 * packets reach another POP, which would reset them: ending the sessions
 * here lets clients reconnect at once.  Sessions that other POPs
 * carried here (this is their home) and LMTP are not touched: the
 * route to this POP does not carry them.
 */
#ifndef POPNODE_DRAIN_H
#define POPNODE_DRAIN_H

#include <stdbool.h>
#include <stddef.h>

struct node;

/* The maintenance file's path. */
const char *drain_path(const struct node *n, char *buf, size_t sz);
/* At start-up: n->drained from the file. */
void drain_init(struct node *n);
/* Create (on) or remove (off) the file, then set n->drained and, when
 * draining, ask every session registered with a drain hook to leave.
 * 0, or -1 with err set (the file could not be written or removed). */
int drain_set(struct node *n, bool on, char *err, size_t errsz);
/* Client sessions still connected here (IMAP, POP3, roaming). */
unsigned drain_sessions_left(const struct node *n);

#endif
