/*
 * repl_copy.c - the copy here of an origin's data, as a whole: a
 * snapshot the origin pushes loaded into DATA_DIR/mirror/ORIGIN.new and
 * installed over it (POST /v1/repl/snapshot), the copy served as a
 * snapshot to an origin that rebuilds (GET /v1/repl/snapshot?origin=X),
 * and the copy dropped when the origin chose another mirror
 * (POST /v1/repl/drop).  repl_snapshot.c does the reading and the
 * loading; a copy holding changes made while serving for the origin is
 * never replaced or dropped before the origin took them back
 * (repl_int.h, docs/replication.md, docs/failover.md).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "link.h"
#include "log.h"
#include "node.h"
#include "repl_int.h"
#include "store.h"

/* mirror/ORIGIN.new, where a pushed snapshot is loaded. */
static void mo_new_dir(const struct mirror_of *mo, char *buf, size_t sz)
{
	snprintf(buf, sz, "%s/mirror/%s.new", mo->r->n->cfg->data_dir, mo->origin);
}

/* The pushed snapshot's stream ends: with an error line, or (why NULL)
 * after "loaded". */
static void mo_rx_end(struct mirror_of *mo, const char *why)
{
	if (why != NULL) {
		snprintf(mo->last_error, sizeof(mo->last_error), "snapshot: %s", why);
		log_warn("repl.snapshot_refused", "origin=%s error=\"%s\"", mo->origin, why);
	}
	if (mo->rx_s != NULL) {
		if (why != NULL)
			evbuffer_add_printf(link_stream_output(mo->rx_s), "error %s\n", why);
		link_stream_end(mo->rx_s);
		link_stream_free(&mo->rx_s);	/* the answer still goes out */
	}
}

/* Install the loaded copy over the old one (in place: failover sessions
 * and status keep their store pointer); retried by tick_cb while the
 * old store has an op pending. */
void copy_install(struct mirror_of *mo)
{
	char dir[CONFIG_PATH_MAX + 96];
	const char *why = NULL;
	int err;

	if (mo->st == NULL && mo_open(mo, true, &why) < 0) {
		mo->rx_installing = false;
		mo_new_dir(mo, dir, sizeof(dir));
		repl_rmdir_flat(dir);
		mo_rx_end(mo, why);
		return;
	}
	mo_new_dir(mo, dir, sizeof(dir));
	if (copy_failover_records(mo) > mo->rx_merged) {
		/* written while the snapshot was loading (a failover session
		 * or delivery): never replaced before the origin takes it back */
		mo->rx_installing = false;
		repl_rmdir_flat(dir);
		mo_rx_end(mo, "this copy took changes while the snapshot loaded: take them back first");
		return;
	}
	err = store_replace(mo->st, dir, &why);
	if (err == STORE_EXISTS)
		return;		/* an op is pending: the next tick */
	mo->rx_installing = false;
	if (err != STORE_OK) {
		repl_rmdir_flat(dir);
		mo_rx_end(mo, why);
		return;
	}
	mo->applied = mo->queued = mo->rx_seq;
	if (mo->origin_seq < mo->rx_seq)
		mo->origin_seq = mo->rx_seq;
	mo->snapshots_loaded++;
	mo->last_error[0] = '\0';
	log_info("repl.snapshot_installed", "origin=%s seq=%" PRIu64 " bytes=%" PRIu64, mo->origin,
		 mo->rx_seq, mo->rx_bytes);
	if (mo->rx_s != NULL)
		evbuffer_add_printf(link_stream_output(mo->rx_s), "loaded %" PRIu64 "\n", mo->rx_seq);
	mo_rx_end(mo, NULL);
}

static void mo_rx_progress(void *arg, uint64_t bytes)
{
	struct mirror_of *mo = arg;

	mo->rx_bytes = bytes;
	mo->last_contact_ms = now_ms();
	if (mo->rx_s != NULL)
		evbuffer_add_printf(link_stream_output(mo->rx_s), "progress %" PRIu64 "\n", bytes);
	repl_snap_rx_input(mo->rx, mo->rx_s != NULL ? link_stream_input(mo->rx_s) : NULL);
}

static void mo_rx_done(void *arg, int err, const char *why)
{
	struct mirror_of *mo = arg;

	mo->rx_bytes = repl_snap_rx_bytes(mo->rx);
	repl_snap_rx_free(&mo->rx);	/* keeps the directory if complete */
	if (err != 0 || mo->r->stopping) {
		mo_rx_end(mo, why != NULL ? why : "stopping");
		return;
	}
	mo->rx_installing = true;
	copy_install(mo);
}

static const struct repl_snap_rx_cbs mo_rx_cbs = {
	.progress = mo_rx_progress,
	.done = mo_rx_done,
};

static void mo_rx_read(void *arg)
{
	struct mirror_of *mo = arg;

	mo->last_contact_ms = now_ms();
	if (mo->rx != NULL)
		repl_snap_rx_input(mo->rx, link_stream_input(mo->rx_s));
}

static void mo_rx_event(void *arg, enum link_event ev)
{
	struct mirror_of *mo = arg;

	if (ev == LINK_EV_EOF && mo->rx != NULL) {
		/* all of it is here; the answer still goes back on this stream */
		link_stream_set_timeout(mo->rx_s, 0);
		repl_snap_rx_eof(mo->rx, link_stream_input(mo->rx_s));
		return;
	}
	if (ev == LINK_EV_EOF)
		return;		/* installing: the answer follows */
	log_warn("repl.snapshot_aborted", "origin=%s reason=%s", mo->origin,
		 ev == LINK_EV_TIMEOUT ? "timeout" : "reset");
	snprintf(mo->last_error, sizeof(mo->last_error), "snapshot: origin gone");
	link_stream_free(&mo->rx_s);
	repl_snap_rx_free(&mo->rx);	/* the old copy stays as it was */
	if (mo->rx_installing) {
		char dir[CONFIG_PATH_MAX + 96];

		mo->rx_installing = false;
		mo_new_dir(mo, dir, sizeof(dir));
		repl_rmdir_flat(dir);
	}
}

static const struct link_stream_cbs mo_rx_scbs = {
	.read = mo_rx_read,
	.event = mo_rx_event,
};

/* The last seq of the origin's log here if this copy holds records past
 * its applied position (written while serving for the origin,
 * docs/failover.md), else 0. */
uint64_t copy_failover_records(struct mirror_of *mo)
{
	const char *why;
	uint64_t last;

	if (mo->st == NULL && mo_open(mo, false, &why) < 0)
		return 0;
	last = store_changelog_last(mo->st, mo->origin);
	return last > store_applied_seq(mo->st, mo->origin) ? last : 0;
}

/* x-popnode-merged-seq: the origin took this copy's failover records
 * back up to there (0 if absent). */
static uint64_t merged_seq_hdr(const struct link_request *req)
{
	uint64_t v;

	return link_hdr_u64(link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-merged-seq"), &v) ? v : 0;
}

/* POST: the origin pushes a snapshot of its store. */
static void snapshot_push(struct replicator *r, struct link_stream *s,
			  const struct link_request *req)
{
	const char *gen = link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-generation");
	struct store_snap_info hdr;
	struct mirror_of *mo;
	char dir[CONFIG_PATH_MAX + 96];
	const char *why = NULL;

	memset(&hdr, 0, sizeof(hdr));
	if ((mo = mo_req_origin(r, req, link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-origin"))) == NULL ||
	    gen == NULL || store_generation_check(gen) != STORE_OK ||
	    !link_hdr_u64(link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-snapshot-seq"), &hdr.seq)) {
		mo_answer(s, 400, "expected x-popnode-origin (the sender), x-popnode-generation and "
			       "x-popnode-snapshot-seq");
		return;
	}
	if (r->stopping) {
		mo_answer(s, 503, "stopping");
		return;
	}
	if (mo->applying || mo->rx != NULL || mo->rx_installing || mo->tx != NULL) {
		mo_answer(s, 409, "busy with this origin's copy; try again");
		return;
	}
	if (copy_failover_records(mo) > merged_seq_hdr(req)) {
		/* docs/failover.md: never lose what users did here */
		mo_answer(s, 409, "this copy holds changes made while serving for you: take them back "
			       "first (GET /v1/repl/failover)");
		return;
	}
	if (mo->s != NULL) {		/* a stale stream: the origin moved on */
		link_stream_free(&mo->s);
		mo_batch_clear(&mo->next);
		evbuffer_drain(mo->acc, evbuffer_get_length(mo->acc));
		mo->queued = mo->applied;
	}
	memcpy(hdr.generation, gen, STORE_GEN_HEX);
	snprintf(dir, sizeof(dir), "%s/mirror", r->n->cfg->data_dir);
	if (mo_mkdir_one(dir) < 0) {
		mo_answer(s, 503, "cannot create DATA_DIR/mirror");
		return;
	}
	mo_new_dir(mo, dir, sizeof(dir));
	mo->rx = repl_snap_rx_new(r->n, dir, mo->origin, &hdr, true, &r->lim, &mo_rx_cbs, mo, &why);
	if (mo->rx == NULL) {
		mo_answer(s, 503, why);
		return;
	}
	mo->rx_s = s;
	mo->rx_seq = hdr.seq;
	mo->rx_merged = merged_seq_hdr(req);
	mo->rx_bytes = 0;
	mo->seen = true;
	mo->last_contact_ms = now_ms();
	link_stream_set_cbs(s, &mo_rx_scbs, mo);
	link_stream_set_timeout(s, REPL_SNAP_TIMEOUT);
	link_stream_set_window(s, ACC_MAX);
	link_stream_respond(s, 200, NULL, 0, false);
	log_info("repl.snapshot_receiving", "origin=%s seq=%" PRIu64 " generation=%s", mo->origin,
		 hdr.seq, gen);
	repl_snap_rx_input(mo->rx, link_stream_input(s));
}

void copy_tx_stop(struct mirror_of *mo)
{
	link_stream_free(&mo->tx_s);
	repl_snap_tx_free(&mo->tx);
}

static void mo_tx_fill(struct mirror_of *mo)
{
	const char *why = NULL;
	int rc;

	if (mo->tx == NULL || mo->tx_s == NULL)
		return;
	rc = repl_snap_tx_fill(mo->tx, link_stream_output(mo->tx_s), &why);
	if (rc < 0) {
		log_warn("repl.snapshot_serve_failed", "origin=%s error=\"%s\"", mo->origin, why);
		copy_tx_stop(mo);		/* a reset: the origin tries again */
		return;
	}
	if (rc == 0) {
		log_info("repl.snapshot_served", "origin=%s bytes=%" PRIu64, mo->origin,
			 repl_snap_tx_bytes(mo->tx));
		link_stream_end(mo->tx_s);
		copy_tx_stop(mo);		/* answered: the rest still goes out */
	}
}

static void mo_tx_drained(void *arg)
{
	mo_tx_fill(arg);
}

static void mo_tx_event(void *arg, enum link_event ev)
{
	struct mirror_of *mo = arg;

	if (ev == LINK_EV_EOF)
		return;		/* the request's end (a GET has no body) */
	log_warn("repl.snapshot_serve_aborted", "origin=%s", mo->origin);
	copy_tx_stop(mo);
}

static const struct link_stream_cbs mo_tx_scbs = {
	.drained = mo_tx_drained,
	.event = mo_tx_event,
};

/* GET ?origin=X: X (which lost its disk) pulls its data back from this
 * copy. */
static void snapshot_pull(struct replicator *r, struct link_stream *s,
			  const struct link_request *req)
{
	struct store_snap_info info;
	struct mirror_of *mo;
	const char *why = NULL;
	char seq[24];
	struct link_hdr h[2];

	if (strncmp(req->query, "origin=", 7) != 0 ||
	    (mo = mo_req_origin(r, req, req->query + 7)) == NULL) {
		mo_answer(s, 400, "expected GET " REPL_SNAP_PATH "?origin=YOUR_ID");
		return;
	}
	if (r->stopping) {
		mo_answer(s, 503, "stopping");
		return;
	}
	if (mo_open(mo, false, &why) < 0) {
		mo_answer(s, 404, "no copy of that POP here");
		return;
	}
	if (mo->rx != NULL || mo->rx_installing) {
		mo_answer(s, 409, "a snapshot of that POP is being loaded here");
		return;
	}
	copy_tx_stop(mo);		/* an earlier pull the origin gave up */
	mo->tx = repl_snap_tx_new(mo->st, &info);
	if (mo->tx == NULL) {
		mo_answer(s, 503, "cannot read the copy");
		return;
	}
	if (info.generation[0] == '\0') {
		repl_snap_tx_free(&mo->tx);
		mo_answer(s, 409, "the copy's generation is not known yet");
		return;
	}
	snprintf(seq, sizeof(seq), "%" PRIu64, info.seq);
	h[0] = (struct link_hdr){ "x-popnode-generation", info.generation };
	h[1] = (struct link_hdr){ "x-popnode-snapshot-seq", seq };
	mo->tx_s = s;
	link_stream_set_cbs(s, &mo_tx_scbs, mo);
	link_stream_respond(s, 200, h, 2, false);
	log_warn("repl.snapshot_serving", "origin=%s seq=%" PRIu64 " bytes_estimate=%" PRIu64,
		 mo->origin, info.seq, info.bytes);
	mo_tx_fill(mo);
}

/* POST /v1/repl/drop: the origin chose another mirror, which has caught
 * up: this copy goes, unless it holds changes made while serving for the
 * origin (409: they are taken back first) or is busy (409: asked again
 * at the next change, and a copy too many is never a loss). */
void copy_serve_drop(void *arg, struct link_stream *s, const struct link_request *req)
{
	struct replicator *r = arg;
	struct mirror_of *mo;
	char dir[CONFIG_PATH_MAX + 80];

	if (strcmp(req->method, "POST") != 0 ||
	    (mo = mo_req_origin(r, req, link_hdr_get(req->hdrs, req->n_hdrs, "x-popnode-origin"))) == NULL) {
		mo_answer(s, 400, "expected POST with x-popnode-origin (the sender)");
		return;
	}
	if (copy_failover_records(mo) > merged_seq_hdr(req)) {
		mo_answer(s, 409, "this copy holds changes made while serving for you");
		return;
	}
	if (mo->applying || mo->rx != NULL || mo->rx_installing || mo->tx != NULL ||
	    node_sessions_on_mirror(r->n)) {
		mo_answer(s, 409, "busy with this copy");
		return;
	}
	link_stream_free(&mo->s);
	mo_batch_clear(&mo->next);
	evbuffer_drain(mo->acc, evbuffer_get_length(mo->acc));
	store_close(&mo->st);
	snprintf(dir, sizeof(dir), "%s/mirror/%s", r->n->cfg->data_dir, mo->origin);
	repl_rmdir_flat(dir);
	mo->applied = mo->queued = 0;
	mo->want = 0;
	mo->reading_off = false;
	log_info("repl.copy_dropped", "origin=%s dir=%s", mo->origin, dir);
	link_stream_respond(s, 204, NULL, 0, true);
	link_stream_free(&s);
}

void copy_serve_snapshot(void *arg, struct link_stream *s, const struct link_request *req)
{
	struct replicator *r = arg;

	if (strcmp(req->method, "POST") == 0)
		snapshot_push(r, s, req);
	else if (strcmp(req->method, "GET") == 0)
		snapshot_pull(r, s, req);
	else
		mo_answer(s, 405, "POST or GET");
}
