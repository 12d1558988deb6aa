/*
 * node.c - the node's session registry and the POP3 maildrop locks.
 */
#include <stdlib.h>
#include <string.h>

#include <stdio.h>
#include <time.h>

#include "node.h"

void node_session_register(struct node *n, struct node_session *s, enum listen_proto proto,
			   void (*shutdown)(void *arg), void *arg)
{
	s->proto = proto;
	s->shutdown = shutdown;
	s->arg = arg;
	s->drain = NULL;
	s->client_here = false;
	s->peer[0] = s->user[0] = s->mailbox_pop[0] = '\0';
	snprintf(s->reached, sizeof(s->reached), "%s", n->cfg != NULL ? n->cfg->node_id : "");
	s->started = time(NULL);
	TAILQ_INSERT_TAIL(&n->sessions, s, entry);
	n->n_sessions++;
}

void node_session_describe(struct node_session *s, const char *peer, const char *user,
			   const char *reached, const char *mailbox_pop)
{
	if (peer != NULL)
		snprintf(s->peer, sizeof(s->peer), "%s", peer);
	if (user != NULL)
		snprintf(s->user, sizeof(s->user), "%s", user);
	if (reached != NULL && reached[0] != '\0')
		snprintf(s->reached, sizeof(s->reached), "%s", reached);
	if (mailbox_pop != NULL)
		snprintf(s->mailbox_pop, sizeof(s->mailbox_pop), "%s", mailbox_pop);
}

void node_session_unregister(struct node *n, struct node_session *s)
{
	TAILQ_REMOVE(&n->sessions, s, entry);
	n->n_sessions--;
}

unsigned node_sessions_end_on_store(struct node *n, struct store *st)
{
	struct node_session *s, *next;
	unsigned k = 0;

	for (s = TAILQ_FIRST(&n->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->store != st || st == NULL || s->end_asked)
			continue;
		s->end_asked = true;	/* asked once; still counted until gone */
		k++;
		if (s->drain != NULL)
			s->drain(s->arg);
		else
			s->shutdown(s->arg);
	}
	return k;
}

bool node_sessions_on_mirror(const struct node *n)
{
	const struct node_session *s;

	TAILQ_FOREACH(s, &n->sessions, entry)
		if (s->store != NULL)
			return true;
	return false;
}

/* Index of the first name >= user in the sorted array. */
static size_t lock_pos(const struct node *n, const char *user)
{
	size_t lo = 0, hi = n->n_locked;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(n->locked_users[mid], user) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool node_user_locked(const struct node *n, const char *user)
{
	size_t pos = lock_pos(n, user);

	return pos < n->n_locked && strcmp(n->locked_users[pos], user) == 0;
}

bool node_user_lock(struct node *n, const char *user)
{
	size_t pos = lock_pos(n, user);

	if (strlen(user) >= NODE_LOCK_NAME_MAX ||
	    (pos < n->n_locked && strcmp(n->locked_users[pos], user) == 0))
		return false;
	if (n->n_locked == n->cap_locked) {
		size_t cap = n->cap_locked ? n->cap_locked * 2 : 64;
		char (*p)[NODE_LOCK_NAME_MAX] = realloc(n->locked_users, cap * sizeof(*p));

		if (p == NULL)
			return false;
		n->locked_users = p;
		n->cap_locked = cap;
	}
	memmove(&n->locked_users[pos + 1], &n->locked_users[pos],
		(n->n_locked - pos) * sizeof(*n->locked_users));
	snprintf(n->locked_users[pos], sizeof(n->locked_users[pos]), "%s", user);
	n->n_locked++;
	return true;
}

void node_user_unlock(struct node *n, const char *user)
{
	size_t pos = lock_pos(n, user);

	if (pos >= n->n_locked || strcmp(n->locked_users[pos], user) != 0)
		return;
	memmove(&n->locked_users[pos], &n->locked_users[pos + 1],
		(n->n_locked - pos - 1) * sizeof(*n->locked_users));
	n->n_locked--;
}
