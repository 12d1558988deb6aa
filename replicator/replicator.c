/*
 * replicator.c - changelog shipping to mirrors, applying at the mirror,
 * mirror choice and lag (replicator.h, docs/replication.md): setup, the
 * timers (poll, tick, trim) and the figures; the rest is in the files
 * repl_int.h lists.  The link's replication paths, served by
 * repl_apply.c (position, stream) and repl_copy.c (snapshot, drop):
 *
 *   GET  /v1/repl/position?origin=X[&probe=1]
 *                                   -> 200, x-popnode-applied-seq: N,
 *                                   x-popnode-last-seq, -generation,
 *                                   -dir-watermark
 *   POST /v1/repl/stream            x-popnode-origin: X,
 *                                   x-popnode-from-seq: N+1,
 *                                   x-popnode-generation: G
 *                                   -> 200; request body: frames
 *                                   (repl_wire.h); response body:
 *                                   "applied SEQ\n" lines
 *   POST /v1/repl/snapshot          x-popnode-origin, -generation,
 *                                   -snapshot-seq: a snapshot of X's
 *                                   store; "progress"/"loaded" lines
 *   GET  /v1/repl/snapshot?origin=X -> 200 and this POP's copy of X as a
 *                                   snapshot (X rebuilds: repl_rebuild.c)
 *   POST /v1/repl/drop              x-popnode-origin[, -merged-seq]
 *                                   -> 204: this POP's copy of X goes
 *
 * X must be the authenticated peer: a POP pushes only its own changelog
 * and pulls only its own data.
 *
 * Nothing is shipped while the start-up check (the gate, repl_rebuild.c)
 * runs.  Once a second the changelog is trimmed up to the lowest position
 * of the chosen mirrors, and each mirror store's copy of its origin's log
 * up to what it applied (repl_trim.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "link.h"
#include "node.h"
#include "repl_ack.h"
#include "repl_int.h"
#include "repl_merge.h"
#include "repl_private.h"
#include "store.h"

#define TRIM_EVERY_MS 1000		/* trimming, at most this often */
#define POLL_MS 50			/* look for new changelog records (besides
					 * being woken by every commit) */

const char *replicator_state_name(enum repl_state s)
{
	switch (s) {
	case REPL_STREAMING:
		return "streaming";
	case REPL_SNAPSHOTTING:
		return "snapshotting";
	case REPL_CONNECTING:
		return "connecting";
	default:
		return "down";
	}
}

/* ==== timers ============================================================ */

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replicator *r = arg;

	for (int s = 0; s < REPL_MIRRORS; s++) {
		if (r->slot[s] >= 0 && r->sh[r->slot[s]].state == REPL_STREAMING)
			ship_fill(&r->sh[r->slot[s]]);
		if (r->leaving[s] >= 0 && r->sh[r->leaving[s]].state == REPL_STREAMING)
			ship_fill(&r->sh[r->leaving[s]]);
	}
}

void replicator_committed(struct node *n)
{
	struct replicator *r = n->replicator;

	if (r != NULL && !r->stopping && r->poll != NULL)
		poll_cb(-1, 0, r);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replicator *r = arg;
	int64_t now = now_ms();
	/* while the start-up check runs, nothing of this POP's store goes
	 * out (it may be an empty store about to be rebuilt) */
	bool serving = repl_gate_ready(r->gate, NULL);

	if (r->stopping)
		return;
	mirrors_choose(r, now);
	for (int s = 0; s < REPL_MIRRORS; s++) {
		struct shipper *sh;

		if (r->slot[s] < 0)
			continue;
		sh = &r->sh[r->slot[s]];
		if (sh->state == REPL_DOWN && now >= sh->retry_at_ms && serving)
			ship_connect(sh);
		ship_heartbeat(sh, now);
		if (r->leaving[s] >= 0) {
			struct shipper *old = &r->sh[r->leaving[s]];

			if (sh->state == REPL_STREAMING && sh->pos_known &&
			    sh->applied >= store_changelog_last(r->n->store, r->n->cfg->node_id)) {
				mirrors_leave(r, s);	/* the new one has everything */
				continue;
			}
			if (old->state == REPL_DOWN && now >= old->retry_at_ms && serving)
				ship_connect(old);
			ship_heartbeat(old, now);
		}
	}
	for (size_t i = 0; i < r->n_peers; i++)
		if (r->mo[i].rx_installing)
			copy_install(&r->mo[i]);
	if (serving)
		mirrors_drop_orphans(r);
}

static void trim_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replicator *r = arg;

	if (r->stopping || !repl_gate_ready(r->gate, NULL))
		return;
	trim_origin(r);
	for (size_t i = 0; i < r->n_peers; i++)
		trim_mirror(&r->mo[i]);
}

/* ==== setup and figures ================================================== */

int replicator_init(struct node *n)
{
	const struct config *cfg = n->cfg;
	struct replicator *r = calloc(1, sizeof(*r));
	struct timeval pt = { 0, POLL_MS * 1000 }, tt = { 0, 200 * 1000 };
	struct timeval trt = { TRIM_EVERY_MS / 1000, TRIM_EVERY_MS % 1000 * 1000 };

	if (r == NULL)
		return -1;
	r->n = n;
	n->replicator = r;
	for (int s = 0; s < REPL_MIRRORS; s++)
		r->slot[s] = r->leaving[s] = -1;
	r->lim.body_max = cfg->max_message_size + 65536;
	r->lim.meta_max = STORE_META_MAX;
	link_set_handler(n->link, POSITION_PATH, mo_serve_position, r);
	link_set_handler(n->link, STREAM_PATH, mo_serve_stream, r);
	link_set_handler(n->link, REPL_SNAP_PATH, copy_serve_snapshot, r);
	link_set_handler(n->link, DROP_PATH, copy_serve_drop, r);
	repl_merge_init(n);
	repl_noc_init(n);
	if (repl_ack_init(n) < 0)
		return -1;
	r->gate = repl_gate_new(n, &r->lim);
	r->trim = event_new(n->base, -1, EV_PERSIST, trim_cb, r);
	if (r->gate == NULL || r->trim == NULL)
		return -1;
	event_add(r->trim, &trt);
	if (cfg->n_peers == 0)
		return 0;
	r->sh = calloc(cfg->n_peers, sizeof(*r->sh));
	r->mo = calloc(cfg->n_peers, sizeof(*r->mo));
	r->poll = event_new(n->base, -1, EV_PERSIST, poll_cb, r);
	r->tick = event_new(n->base, -1, EV_PERSIST, tick_cb, r);
	if (r->sh == NULL || r->mo == NULL || r->poll == NULL || r->tick == NULL)
		return -1;
	r->n_peers = cfg->n_peers;
	for (size_t i = 0; i < cfg->n_peers; i++) {
		struct mirror_of *mo = &r->mo[i];

		r->sh[i].r = r;
		r->sh[i].peer = cfg->peers[i].id;
		r->sh[i].since = (int64_t)time(NULL);
		mo->r = r;
		mo->origin = cfg->peers[i].id;
		mo->acc = evbuffer_new();
		mo->next.recs = calloc(REPL_BATCH_RECORDS, sizeof(*mo->next.recs));
		mo->next.frames = calloc(REPL_BATCH_RECORDS, sizeof(*mo->next.frames));
		if (mo->acc == NULL || mo->next.recs == NULL || mo->next.frames == NULL)
			return -1;
	}
	for (size_t m = 0; m < cfg->n_mirrors; m++) {
		int idx = mirrors_index(r, cfg->mirrors[m]);

		if (idx >= 0) {
			r->sh[idx].pinned = true;
			mirrors_set_slot(r, (int)m, idx);
		}
	}
	event_add(r->poll, &pt);
	event_add(r->tick, &tt);
	return 0;
}

void replicator_fini(struct node *n)
{
	struct replicator *r = n->replicator;

	repl_ack_fini(n);		/* no more acks: release the waiters */
	if (r == NULL)
		return;
	r->stopping = true;
	repl_gate_free(&r->gate);
	for (size_t i = 0; i < r->n_peers; i++) {
		struct mirror_of *mo = &r->mo[i];

		repl_merge_cancel(&r->sh[i].merge);
		link_stream_free(&r->sh[i].drop);
		ship_close(&r->sh[i]);	/* ends its snapshot read too */
		link_stream_free(&mo->s);
		mo_batch_clear(&mo->next);
		link_stream_free(&mo->rx_s);
		repl_snap_rx_free(&mo->rx);	/* a half-loaded copy goes */
		copy_tx_stop(mo);
	}
	if (r->poll != NULL)
		event_free(r->poll);
	if (r->tick != NULL)
		event_free(r->tick);
	if (r->trim != NULL)
		event_free(r->trim);
	r->poll = r->tick = r->trim = NULL;
}

void replicator_free(struct node *n)
{
	struct replicator *r = n->replicator;

	repl_ack_free(n);
	if (r == NULL)
		return;
	r->stopping = true;
	for (size_t i = 0; i < r->n_peers; i++) {
		struct mirror_of *mo = &r->mo[i];

		store_close(&mo->st);	/* runs the last apply's callback */
		mo_batch_clear(&mo->next);
		free(mo->next.recs);
		free(mo->next.frames);
		if (mo->acc != NULL)
			evbuffer_free(mo->acc);
	}
	n->replicator = NULL;
	free(r->sh);
	free(r->mo);
	free(r);
}

struct first_ctx {
	int64_t time;
	bool found;
};

static int first_cb(const struct store_change *c, void *arg)
{
	struct first_ctx *f = arg;

	f->time = c->time;
	f->found = true;
	return 1;
}

size_t replicator_mirrors(struct node *n, struct repl_mirror_info *out, size_t max)
{
	struct replicator *r = n->replicator;
	size_t k = 0;
	uint64_t last, first;
	int64_t now = now_ms();

	if (r == NULL || n->store == NULL)
		return 0;
	last = store_changelog_last(n->store, n->cfg->node_id);
	first = store_changelog_trimmed(n->store, n->cfg->node_id) + 1;
	for (int s = 0; s < REPL_MIRRORS && k < max; s++) {
		const struct shipper *sh;
		struct repl_mirror_info *m = &out[k];

		if (r->slot[s] < 0)
			continue;
		sh = &r->sh[r->slot[s]];
		memset(m, 0, sizeof(*m));
		snprintf(m->peer, sizeof(m->peer), "%s", sh->peer);
		m->pinned = sh->pinned;
		m->state = sh->state;
		m->since = sh->since;
		m->last_seq = last;
		m->sent_seq = sh->sent;
		m->applied_seq = sh->applied;
		m->records_behind = last > sh->applied ? last - sh->applied : 0;
		m->bytes_behind = sh->bytes_sent - sh->bytes_acked;
		if (last > sh->sent && sh->records_sent > 0)
			m->bytes_behind += (last - sh->sent) * (sh->bytes_sent / sh->records_sent);
		if (m->records_behind > 0) {
			struct first_ctx f = { 0, false };

			store_changelog_foreach(n->store, n->cfg->node_id, sh->applied, first_cb, &f);
			if (f.found && now / 1000 >= f.time)
				m->seconds_behind = (double)now / 1000.0 - (double)f.time;
		}
		m->last_ack_ms = sh->last_ack_ms;
		m->records_sent = sh->records_sent;
		m->bytes_sent = sh->bytes_sent;
		m->bodies_sent = sh->bodies_sent;
		m->reconnects = sh->reconnects;
		snprintf(m->last_error, sizeof(m->last_error), "%s", sh->last_error);
		m->first_seq = first;
		m->snapshots = sh->snapshots;
		if (sh->state == REPL_SNAPSHOTTING) {
			m->snapshot_seq = sh->snap_seq;
			m->snapshot_bytes_sent = sh->snap_sent;
			m->snapshot_bytes_durable = sh->snap_durable;
			m->snapshot_bytes_total = sh->snap_total;
		}
		k++;
	}
	return k;
}

size_t replicator_origins(struct node *n, struct repl_origin_info *out, size_t max)
{
	struct replicator *r = n->replicator;
	size_t k = 0;

	if (r == NULL)
		return 0;
	for (size_t i = 0; i < r->n_peers && k < max; i++) {
		const struct mirror_of *mo = &r->mo[i];
		struct repl_origin_info *o = &out[k];

		if (!mo->seen)
			continue;
		memset(o, 0, sizeof(*o));
		snprintf(o->origin, sizeof(o->origin), "%s", mo->origin);
		o->connected = mo->s != NULL;
		o->applied_seq = mo->applied;
		o->origin_seq = mo->origin_seq > mo->applied ? mo->origin_seq : mo->applied;
		o->last_record = mo->last_record;
		o->last_contact_ms = mo->last_contact_ms;
		o->records_applied = mo->records_applied;
		o->batches_applied = mo->batches_applied;
		snprintf(o->last_error, sizeof(o->last_error), "%s", mo->last_error);
		o->snapshotting = mo->rx != NULL || mo->rx_installing;
		o->snapshot_bytes = mo->rx != NULL ? repl_snap_rx_bytes(mo->rx) : mo->rx_bytes;
		o->snapshots_loaded = mo->snapshots_loaded;
		if (mo->st != NULL)
			store_generation(mo->st, o->generation);
		k++;
	}
	return k;
}

size_t replicator_published(struct node *n, const char **out, size_t max)
{
	struct replicator *r = n->replicator;
	size_t k = 0;

	for (int s = 0; r != NULL && s < REPL_MIRRORS && k < max; s++) {
		if (r->leaving[s] >= 0)
			out[k++] = r->sh[r->leaving[s]].peer;
		else if (r->slot[s] >= 0)
			out[k++] = r->sh[r->slot[s]].peer;
	}
	return k;
}

bool replicator_copy_busy(struct node *n, const char *origin)
{
	struct replicator *r = n->replicator;
	struct mirror_of *mo;

	return r != NULL && (mo = mo_find(r, origin)) != NULL &&
	       (mo->rx != NULL || mo->rx_installing);
}

struct store *replicator_store_of(struct node *n, const char *origin)
{
	struct replicator *r = n->replicator;
	struct mirror_of *mo;
	const char *why;

	if (strcmp(origin, n->cfg->node_id) == 0)
		return n->store;
	if (r == NULL || (mo = mo_find(r, origin)) == NULL)
		return NULL;
	if (mo->st == NULL && mo_open(mo, false, &why) < 0)
		return NULL;
	return mo->st;
}

bool replicator_serving_ready(struct node *n, const char **why_r)
{
	struct replicator *r = n->replicator;

	return r == NULL || repl_gate_ready(r->gate, why_r);
}

const char *replicator_serving_reason(struct node *n)
{
	struct replicator *r = n->replicator;

	return r != NULL ? repl_gate_reason(r->gate) : "no replicator";
}

void replicator_render_serving_json(struct node *n, struct evbuffer *out)
{
	struct replicator *r = n->replicator;

	repl_gate_render_json(r != NULL ? r->gate : NULL, out);
}
