/*
 * repl_mirrors.c - choosing this POP's mirrors: pinned ("mirrors"), else
 * the nearest peers by link RTT with hysteresis; a replaced mirror is
 * streamed to until its successor has caught up, then told to drop its
 * copy, as are copies at peers that are no longer mirrors (repl_int.h,
 * docs/replication.md).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "link.h"
#include "log.h"
#include "node.h"
#include "repl_int.h"
#include "repl_merge.h"
#include "store.h"

struct rtts {
	const char *id[CONFIG_MAX_PEERS];
	int64_t rtt[CONFIG_MAX_PEERS];
	size_t n;
};

static void rtt_cb(const struct link_peer_info *p, void *arg)
{
	struct rtts *t = arg;

	if (t->n < CONFIG_MAX_PEERS) {
		t->id[t->n] = p->id;
		t->rtt[t->n++] = p->state == LINK_PEER_UP ? p->rtt_avg_us : -1;
	}
}

static int64_t rtt_of(const struct rtts *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->id[i], id) == 0)
			return t->rtt[i];
	return -1;
}

int mirrors_index(struct replicator *r, const char *peer)
{
	for (size_t i = 0; i < r->n_peers; i++)
		if (strcmp(r->sh[i].peer, peer) == 0)
			return (int)i;
	return -1;
}

static bool chosen(const struct replicator *r, int idx)
{
	for (int s = 0; s < REPL_MIRRORS; s++)
		if (r->slot[s] == idx || r->leaving[s] == idx)
			return true;
	return false;
}

static void drop_event(void *arg, enum link_event ev)
{
	struct shipper *sh = arg;

	(void)ev;
	link_stream_free(&sh->drop);
}

static void drop_response(void *arg, int status, const struct link_hdr *h, size_t n)
{
	struct shipper *sh = arg;

	log_info("repl.mirror_drop_answer", "mirror=%s status=%d error=\"%s\"", sh->peer, status,
		 status == 204 ? "-" : link_hdr_get(h, n, "x-popnode-error") ? link_hdr_get(h, n, "x-popnode-error")
									 : "-");
}

static const struct link_stream_cbs drop_cbs = {
	.response = drop_response,
	.event = drop_event,
};

/* A leaving mirror's replacement has caught up: stop streaming to it and
 * tell it to drop its copy (it keeps it if that is not possible now: a
 * copy too many is never a loss). */
void mirrors_leave(struct replicator *r, int s)
{
	struct shipper *old = &r->sh[r->leaving[s]];

	if (old->merge != NULL)
		return;		/* taking its failover changes back: after that */
	struct link_hdr h = { "x-popnode-origin", r->n->cfg->node_id };

	r->leaving[s] = -1;
	log_info("repl.mirror_dropped", "mirror=%s", old->peer);
	old->active = false;
	ship_close(old);
	ship_state(old, REPL_DOWN);
	link_stream_free(&old->drop);
	old->drop = link_request(r->n->link, old->peer, "POST", DROP_PATH, &h, 1, false,
				 &drop_cbs, old);
	if (old->drop != NULL)
		link_stream_set_timeout(old->drop, REPL_STREAM_TIMEOUT);
}

static void ask_drop(struct replicator *r, struct shipper *sh, uint64_t merged)
{
	char v[24];
	struct link_hdr h[2] = { { "x-popnode-origin", r->n->cfg->node_id },
				 { "x-popnode-merged-seq", v } };

	snprintf(v, sizeof(v), "%" PRIu64, merged);
	sh->drop_asked = true;
	link_stream_free(&sh->drop);
	sh->drop = link_request(r->n->link, sh->peer, "POST", DROP_PATH, h, merged > 0 ? 2 : 1,
				false, &drop_cbs, sh);
	if (sh->drop != NULL)
		link_stream_set_timeout(sh->drop, REPL_STREAM_TIMEOUT);
}

/* An orphan copy's failover changes are in: it may go now. */
static void orphan_merged(void *arg, bool ok, const char *why)
{
	struct shipper *sh = arg;
	struct repl_pos pos;

	sh->merge = NULL;
	if (!ok || !repl_gate_peer_copy(sh->r->gate, sh->peer, &pos)) {
		log_warn("repl.orphan_merge_failed", "peer=%s reason=\"%s\"", sh->peer,
			 why != NULL ? why : "-");
		sh->orphan_retry_ms = now_ms() + 10 * REPL_RETRY_MS;
		return;
	}
	ask_drop(sh->r, sh, pos.last);
}

/* Copies of this POP's data at peers that are no longer its mirrors (the
 * mirrors were re-pinned while it was down: the start-up check saw the
 * copies) are dropped once every chosen mirror has caught up; first,
 * what such a copy took while serving for this POP is taken back. */
void mirrors_drop_orphans(struct replicator *r)
{
	uint64_t last = store_changelog_last(r->n->store, r->n->cfg->node_id);
	int filled = 0;

	for (int s = 0; s < REPL_MIRRORS; s++) {
		const struct shipper *sh;

		if (r->slot[s] < 0 || r->leaving[s] >= 0)
			continue;
		sh = &r->sh[r->slot[s]];
		if (sh->state != REPL_STREAMING || !sh->pos_known || sh->applied < last)
			return;
		filled++;
	}
	if (filled == 0)
		return;
	for (size_t i = 0; i < r->n_peers; i++) {
		struct shipper *sh = &r->sh[i];
		struct repl_pos pos;

		if (sh->drop_asked || sh->merge != NULL || chosen(r, (int)i) ||
		    !repl_gate_peer_copy(r->gate, sh->peer, &pos) ||
		    !link_peer_usable(r->n->link, sh->peer) || now_ms() < sh->orphan_retry_ms)
			continue;
		log_info("repl.orphan_copy", "peer=%s applied=%" PRIu64 " last=%" PRIu64, sh->peer,
			 pos.applied, pos.last);
		if (pos.last > pos.applied) {	/* it served for this POP */
			sh->merge = repl_merge_start(r->n, sh->peer, pos.applied, pos.last,
						     orphan_merged, sh);
			continue;
		}
		ask_drop(r, sh, 0);
	}
}

void mirrors_set_slot(struct replicator *r, int s, int idx)
{
	if (r->slot[s] >= 0) {
		/* filled first, dropped after (docs/replication.md) */
		if (r->leaving[s] >= 0)
			mirrors_leave(r, s);
		r->leaving[s] = r->slot[s];
		log_info("repl.mirror_leaving", "mirror=%s replaced_by=%s", r->sh[r->slot[s]].peer,
			 idx >= 0 ? r->sh[idx].peer : "-");
	}
	r->slot[s] = idx;
	if (idx >= 0) {
		log_info("repl.mirror_chosen", "mirror=%s pinned=%s", r->sh[idx].peer,
			 r->sh[idx].pinned ? "yes" : "no");
		r->sh[idx].active = true;
		r->sh[idx].retry_at_ms = 0;
	}
}

/* Unpinned slots: fill empty ones with the nearest peers; replace the
 * farthest chosen one when a candidate has been REPL_SWITCH_RATIO nearer
 * for REPL_SWITCH_SECONDS. */
void mirrors_choose(struct replicator *r, int64_t now)
{
	const char *order[CONFIG_MAX_PEERS];
	size_t n = link_peers_by_rtt(r->n->link, order, CONFIG_MAX_PEERS);
	struct rtts t = { .n = 0 };
	int worst_slot = -1, best = -1;
	int64_t worst_rtt = -1;

	link_peer_foreach(r->n->link, rtt_cb, &t);
	for (int s = 0; s < REPL_MIRRORS; s++) {
		if (r->slot[s] >= 0 || (size_t)s < r->n->cfg->n_mirrors)
			continue;
		for (size_t i = 0; i < n; i++) {
			int idx = mirrors_index(r, order[i]);

			if (idx >= 0 && !chosen(r, idx) && rtt_of(&t, order[i]) >= 0) {
				mirrors_set_slot(r, s, idx);
				break;
			}
		}
	}
	for (int s = (int)r->n->cfg->n_mirrors; s < REPL_MIRRORS; s++) {
		int64_t rt;

		if (r->slot[s] < 0)
			continue;
		rt = rtt_of(&t, r->sh[r->slot[s]].peer);
		if (rt < 0)
			continue;	/* unknown now: not a reason to move data */
		if (rt > worst_rtt) {
			worst_rtt = rt;
			worst_slot = s;
		}
	}
	for (size_t i = 0; i < n && worst_slot >= 0; i++) {
		int idx = mirrors_index(r, order[i]);

		if (idx >= 0 && !chosen(r, idx) && rtt_of(&t, order[i]) >= 0) {
			best = idx;
			break;
		}
	}
	if (best < 0 || (double)rtt_of(&t, r->sh[best].peer) >= REPL_SWITCH_RATIO * (double)worst_rtt) {
		r->challenger = NULL;
		return;
	}
	if (r->challenger != r->sh[best].peer) {
		r->challenger = r->sh[best].peer;
		r->challenger_since = now;
		return;
	}
	if (now - r->challenger_since >= (int64_t)REPL_SWITCH_SECONDS * 1000) {
		mirrors_set_slot(r, worst_slot, best);
		r->challenger = NULL;
	}
}
