/*
 * node.h - the running node: what every session and service needs, passed
 * explicitly (no hidden globals).  Owned by main.c.
 */
#ifndef POPNODE_NODE_H
#define POPNODE_NODE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <openssl/ssl.h>

#include "config.h"
#include "metrics.h"

struct event_base;
struct store;
struct iplimits;
struct workq;
struct imap_registry;
struct link;
struct dirsync;
struct replicator;
struct repl_ack;
struct heartbeat;
struct tunnel_stats;

#define POPNODE_VERSION "0.1.0"

/* A live session registers so a shutdown can reach it. */
struct node_session {
	TAILQ_ENTRY(node_session) entry;
	enum listen_proto proto;
	/* Asked once when the node stops: finish what is in flight (an LMTP
	 * DATA being committed), then say goodbye and close.  The session
	 * unregisters itself when it is gone. */
	void (*shutdown)(void *arg);
	void *arg;
	/* drain.h: asked when the POP is drained (NULL: not affected), and
	 * whether the client connected to this POP (counted as "left"). */
	void (*drain)(void *arg);
	bool client_here;
	/* The mirror store this session serves from while the user's home is
	 * down (docs/failover.md); NULL: the node's own store. */
	struct store *store;
	bool end_asked;			/* node_sessions_end_on_store asked it */
	/* For /status (node_session_describe): who, and which POPs. */
	char peer[64];			/* the client's address */
	char user[64];			/* "" until logged in */
	char reached[64];		/* the POP the client connected to */
	char mailbox_pop[64];		/* the POP serving the mailbox, "" unknown */
	int64_t started;		/* unix time */
};
TAILQ_HEAD(node_session_list, node_session);

#define NODE_BIRD_PROTOS_MAX 16
#define NODE_LOCK_NAME_MAX 64		/* = STORE_NAME_MAX */

struct node {
	struct event_base *base;
	const struct config *cfg;
	struct store *store;
	struct iplimits *limits;
	struct workq *workq;		/* CPU work off the loop (crypt) */
	SSL_CTX *ssl_ctx;		/* server TLS context, NULL if no cert */
	struct metrics metrics;
	int64_t started;		/* unix time */
	bool stopping;			/* SIGTERM received */
	bool drained;			/* drain.h */
	/* anycast: under a supervisor (heartbeat.h), its last word */
	struct heartbeat *heartbeat;
	bool anycast_supervised;
	bool anycast_known;		/* a state line arrived */
	bool anycast_announced;
	bool bird_up;
	char anycast_reason[256];
	char anycast_checks[256];	/* health checks failing now, "" none */
	/* BIRD's protocols as the supervisor last read them */
	struct node_bird_proto {
		char name[32], proto[16], state[16], info[96];
		int64_t exported;		/* routes exported (BGP), -1 unknown */
	} bird_protos[NODE_BIRD_PROTOS_MAX];
	size_t n_bird_protos;
	struct node_session_list sessions;
	unsigned n_sessions;
	/* users with an open POP3 maildrop (RFC 1939 exclusive lock), by
	 * name: a mirror serving for a failed home has that home's user
	 * ids, which may equal ids of this POP's own users */
	char (*locked_users)[NODE_LOCK_NAME_MAX];
	size_t n_locked, cap_locked;
	/* IMAP: selected mailboxes and change notification (imap.h) */
	struct imap_registry *imap;
	/* The internal link to the other POPs (link.h); always set, with no
	 * peers on a single POP. */
	struct link *link;
	struct dirsync *dirsync;	/* directory across POPs (dirsync.h) */
	struct replicator *replicator;	/* mirrors (replicator/replicator.h) */
	struct repl_ack *repl_ack;	/* replication_ack waits (replicator/repl_ack.h) */
	struct failover *failover;	/* mirror sets, failover (replicator/failover.h) */
};

void node_session_register(struct node *n, struct node_session *s, enum listen_proto proto,
			   void (*shutdown)(void *arg), void *arg);
void node_session_unregister(struct node *n, struct node_session *s);
/* The home of st's users is back: end every session serving from st
 * (their drain hook: IMAP BYE after the command in flight, POP3 -ERR),
 * so the clients reconnect and reach the home.  Returns how many. */
unsigned node_sessions_end_on_store(struct node *n, struct store *st);
/* true if some session (or failover delivery) serves from a mirror
 * store, also one asked to end that is not gone yet. */
bool node_sessions_on_mirror(const struct node *n);
/* Fill the /status fields (NULL leaves one as it is). */
void node_session_describe(struct node_session *s, const char *peer, const char *user,
			   const char *reached, const char *mailbox_pop);

/* Exclusive maildrop lock (POP3), by user name.  true if taken, false if
 * already held (or the name is too long). */
bool node_user_lock(struct node *n, const char *user);
void node_user_unlock(struct node *n, const char *user);
bool node_user_locked(const struct node *n, const char *user);

#endif
