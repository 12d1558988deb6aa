/*
 * repl_noc.h - replication checks across POPs for the NOC
 * (docs/replication.md "popctl verify and lag --cluster"):
 *
 *   `popctl verify USER`: the digest of USER's mailboxes at the home POP
 *   and at each of the home's mirrors, compared;
 *   `popctl lag --cluster`: every POP's replication to its mirrors.
 *
 * They work from any POP: the POP where popctl runs asks the others over
 * the link (GET /v1/repl/digest, GET /v1/repl/lag; repl_noc_wire.h) and
 * reads its own copies directly.  A query is asynchronous: its callback
 * runs once every peer asked has answered or REPL_NOC_TIMEOUT_MS passed
 * (verify asks in two rounds: the home, which names its mirrors, then
 * the mirrors), never inside the call that started it, and never blocks
 * the event loop.
 *
 * The module keeps no state between requests: the endpoints answer at
 * once from the stores, and a query belongs to its caller, who cancels
 * it when it goes away first.  So there is an init (repl_noc_init in
 * repl_private.h, called by replicator_init: it registers the two
 * endpoints on the link) and nothing to finish: handlers go with the
 * link (link_free), and no query outlives the control socket, which is
 * stopped before the replicator.
 */
#ifndef POPNODE_REPL_NOC_H
#define POPNODE_REPL_NOC_H

#include <stdbool.h>

#include "repl_noc_wire.h"

struct node;
struct store;
struct evbuffer;
struct repl_noc_query;

#define REPL_NOC_TIMEOUT_MS 2000	/* per round of questions to peers */

enum repl_noc_err {
	REPL_NOC_OK = 0,
	REPL_NOC_EINVAL = -1,		/* not a user name */
	REPL_NOC_ENOUSER = -2,		/* no such user in this POP's directory */
	REPL_NOC_ENOMEM = -3,
	REPL_NOC_ESTOPPING = -4,	/* the node is stopping */
	REPL_NOC_EIO = -5,		/* the directory could not be read */
};
const char *repl_noc_strerror(int err);

/* answer: the rendered text or JSON (valid during the call), or NULL if
 * rendering ran out of memory.  The query is freed after the callback
 * returns: forget the pointer there. */
typedef void repl_noc_done_cb(void *arg, struct evbuffer *answer);

/* `popctl verify USER`: USER's home from this POP's directory, the
 * home's digest and mirror set, each mirror's digest, compared
 * (repl_noc_compare) and rendered (repl_noc_render_verify).  NULL with
 * *err_r (enum repl_noc_err) if it cannot start. */
struct repl_noc_query *repl_noc_verify(struct node *n, const char *user, bool json,
				       repl_noc_done_cb *cb, void *arg, int *err_r);
/* `popctl lag --cluster`: this POP's mirrors and every configured
 * peer's, one entry per POP sorted by id (repl_noc_render_lag). */
struct repl_noc_query *repl_noc_lag_cluster(struct node *n, bool json, repl_noc_done_cb *cb,
					    void *arg, int *err_r);
/* Stop a query: its callback will not run.  Sets *qp NULL; accepts NULL. */
void repl_noc_cancel(struct repl_noc_query **qp);

/* Fill c (pop, home, held are the caller's) with USER's mailboxes in st:
 * user_found, and per mailbox the message count, UIDVALIDITY, UIDNEXT
 * and the digest (repl_noc_wire.h), in the store's mailbox order.
 * 0, or -1 (store read failed, out of memory). */
int repl_noc_digest(struct store *st, const char *user, struct repl_noc_copy *c);

#endif
