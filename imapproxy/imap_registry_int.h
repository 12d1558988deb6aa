/*
 * imap_registry_int.h - what the view of one session (imap_view.c) and
 * the node-wide registry of selected mailboxes (imap_registry.c) need
 * from each other (private to them).  The registry itself stays opaque
 * here: the view only passes node->imap along.
 */
#ifndef IMAPPROXY_IMAP_REGISTRY_INT_H
#define IMAPPROXY_IMAP_REGISTRY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct imap_registry;
struct imap_session;
struct store;

/* One (store, user, mailbox) of the registry: the sessions that have it
 * selected and its \Recent claim mark, which the view raises when it
 * claims (view_append). */
struct imap_view_entry {
	struct store *st;
	uint32_t userid, mboxid;
	struct imap_view_entry *next;		/* hash chain */
	uint32_t recent_uid;			/* \Recent claimed up to here */
	uint32_t saved_uid;			/* ... and in the store up to here */
	bool saving;				/* a store_recent_set in flight */
	struct imap_session **sessions;
	size_t n, cap;
};

/* The entry of (st, userid, mboxid), created (from the stored \Recent
 * mark) if there is none; NULL when out of memory. */
struct imap_view_entry *imap_registry_entry_get(struct imap_registry *r, struct store *st,
						uint32_t userid, uint32_t mboxid);

/* Add s to e's sessions; -1 when out of memory. */
int imap_registry_entry_add(struct imap_registry *r, struct imap_view_entry *e,
			    struct imap_session *s);

/* Remove s from e's sessions (e stays, idle, until pruned). */
void imap_registry_entry_remove(struct imap_registry *r, struct imap_view_entry *e,
				struct imap_session *s);

/* After a load or sync of s's view: persist what it claimed. */
void imap_registry_save_recent(struct imap_session *s);

#endif
