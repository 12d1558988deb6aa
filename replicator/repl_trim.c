/*
 * repl_trim.c - trimming, once a second (trim_cb, replicator.c): this
 * POP's changelog up to the lowest position of the chosen mirrors, and
 * each mirror store's copy of its origin's log up to what it applied
 * (repl_int.h, docs/replication.md).
 */
#include <stdint.h>

#include "config.h"
#include "log.h"
#include "node.h"
#include "repl_int.h"
#include "store.h"

static void origin_trimmed(int err, uint64_t trimmed, void *arg)
{
	struct replicator *r = arg;

	r->trimming = false;
	if (err != STORE_OK && err != STORE_SHUTDOWN)
		log_warn("repl.trim_failed", "origin=%s error=\"%s\"", r->n->cfg->node_id,
			 store_strerror(err));
}

/* This POP's changelog: up to the lowest durable position of the chosen
 * mirrors, once every mirror slot that can be filled is, and each has
 * said where it is (a snapshot being sent counts at its position).  No
 * peer at all: nobody needs the log, all of it goes. */
void trim_origin(struct replicator *r)
{
	struct node *n = r->n;
	size_t need = r->n_peers < REPL_MIRRORS ? r->n_peers : REPL_MIRRORS, have = 0;
	uint64_t upto = UINT64_MAX, trimmed, last;

	if (r->trimming || n->store == NULL)
		return;
	for (int s = 0; s < REPL_MIRRORS; s++) {
		const struct shipper *sh;
		uint64_t pos;

		if (r->slot[s] < 0)
			continue;
		sh = &r->sh[r->slot[s]];
		if (sh->state == REPL_SNAPSHOTTING)
			pos = sh->snap_seq;
		else if (sh->pos_known)
			pos = sh->applied;
		else
			return;	/* not known yet: keep everything */
		if (pos < upto)
			upto = pos;
		have++;
	}
	if (have < need)
		return;
	last = store_changelog_last(n->store, n->cfg->node_id);
	trimmed = store_changelog_trimmed(n->store, n->cfg->node_id);
	if (upto > last)
		upto = last;
	if (upto <= trimmed)
		return;
	r->trimming = true;
	store_changelog_trim(n->store, n->cfg->node_id, upto, STORE_TRIM_MAX, origin_trimmed, r);
}

static void mirror_trimmed(int err, uint64_t trimmed, void *arg)
{
	struct mirror_of *mo = arg;

	mo->trimming = false;
	if (err != STORE_OK && err != STORE_SHUTDOWN)
		log_warn("repl.trim_failed", "origin=%s error=\"%s\"", mo->origin,
			 store_strerror(err));
}

/* A mirror keeps none of its copy of the origin's log: the copy is the
 * store itself, and a copy for someone else is made by a snapshot. */
void trim_mirror(struct mirror_of *mo)
{
	if (mo->st == NULL || mo->trimming || mo->rx != NULL || mo->rx_installing ||
	    mo->applied <= store_changelog_trimmed(mo->st, mo->origin))
		return;
	mo->trimming = true;
	store_changelog_trim(mo->st, mo->origin, mo->applied, STORE_TRIM_MAX, mirror_trimmed, mo);
}
