/*
 * repl_rebuild.c - the start-up check of a home against its mirrors, and
 * rebuilding a home that lost its disk (repl_snapshot.h, the gate;
 * docs/replication.md "Generation and the lost disk").
 *
 * At start (peers configured, replication_startup_wait > 0) the gate is
 * closed: LMTP, IMAP, POP3 and tunnels refuse this POP's own users with
 * temporary errors (replicator_serving_ready), and no shipper streams.
 * Every peer is asked, as soon as its link is usable, for its copy of
 * this POP's data without creating one (GET /v1/repl/position?probe=1):
 * applied and last seq, generation, and its directory watermark of this
 * POP.  Once all answered, or replication_startup_wait passed, each
 * answer is judged (repl_judge); a copy that holds more than this POP
 * (different generation or further position, and this POP has no mail
 * or a shorter changelog) makes this POP "behind": it pulls the copy of
 * the peer with the highest position as a snapshot (GET
 * /v1/repl/snapshot?origin=THIS) into DATA_DIR/store.new, and when that
 * store is complete and durable, replaces its own store's data with it in
 * place (store_replace: n->store stays the same pointer for every
 * holder), adopting the copy's generation and position: its changelog
 * goes on at S+1.  Only then the gate opens.  The directory (dirrecs) is
 * not in a snapshot: dirsync pulls it again from every peer (its
 * watermarks went with the old data), and dir_lseq is raised above
 * every peer's watermark of this POP, so the peers see this POP's next
 * directory changes.
 *
 * Why the swap is safe: while the gate is closed no session of a local
 * user exists (logins, tunnels and deliveries for them are refused), the
 * shippers are idle, and store_replace waits until no op is pending (a
 * dirsync apply, say), retrying every TICK_MS.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "link.h"
#include "log.h"
#include "node.h"
#include "repl_merge.h"
#include "repl_snapshot.h"

#define TICK_MS 50
#define PROBE_TIMEOUT 5			/* seconds */
#define PROBE_RETRY_MS 500

enum gate_state {
	GATE_CHECKING,
	GATE_REBUILDING,
	GATE_MERGING,			/* taking mirrors' failover changes back */
	GATE_READY,
};

struct probe {
	struct repl_gate *g;
	const char *peer;
	struct link_stream *s;
	bool answered, got_headers;
	bool has_data;			/* a 200 with a position */
	struct repl_pos pos;
	int64_t next_ms;		/* don't ask before */
};

struct repl_gate {
	struct node *n;
	struct repl_limits lim;
	enum gate_state state;
	char reason[256];
	int64_t since;			/* unix time of the last state change */
	int64_t deadline_ms;
	struct probe *p;
	size_t np;
	struct event *timer;
	/* the rebuild */
	struct probe *src;
	struct link_stream *rs;
	struct repl_snap_rx *rx;
	struct store_snap_info hdr;
	bool installing;
	uint64_t snap_bytes;
	char dir[CONFIG_PATH_MAX + 32];
	char rebuilt_from[STORE_POP_MAX];
	uint64_t rebuilt_seq;
	/* merges of mirrors that served for this POP (repl_merge.h) */
	struct repl_merge *merge;
	size_t merge_next;		/* probe index to look at next */
	unsigned merged, merge_failed;
	const char *ready_why;		/* what decide() found, for ready() */
	char rebuilt_why[256];
};

static int64_t now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ==== judging ============================================================== */

enum repl_verdict repl_judge(const struct repl_self *me, const struct repl_pos *m,
			     const char **why_r)
{
	bool other_gen = m->gen[0] != '\0' && strcmp(m->gen, me->gen) != 0;
	bool holds_more = m->applied > 0 && (other_gen || m->applied > me->last);

	if (!other_gen && m->last > m->applied && m->applied <= me->last) {
		*why_r = "it served this POP's users while this POP was down: take its changes back";
		return REPL_V_MERGE;
	}
	if (holds_more) {
		if (me->starting && (!me->has_mail || me->last < m->applied)) {
			*why_r = "it holds more of this POP than this POP (lost disk?): rebuild from it";
			return REPL_V_BEHIND;
		}
		if (!me->has_mail) {
			*why_r = "it holds more of this POP than this POP, which serves without mail: "
				 "restart this POP to rebuild from it";
			return REPL_V_HOLD;
		}
		*why_r = other_gen ? "it holds another generation of this POP: replaced by a snapshot"
				   : "it holds a history this POP does not have: replaced by a snapshot";
		return REPL_V_SNAPSHOT;
	}
	if (m->applied == 0) {
		*why_r = me->trimmed == 0 ? "new: the whole changelog"
					  : "new, and the changelog no longer starts at 1: snapshot";
		return me->trimmed == 0 ? REPL_V_STREAM : REPL_V_SNAPSHOT;
	}
	if (m->applied < me->trimmed) {
		*why_r = "its position was trimmed away: snapshot";
		return REPL_V_SNAPSHOT;
	}
	*why_r = "continues from its position";
	return REPL_V_STREAM;
}

int repl_self_read(struct store *st, const char *origin, bool starting, struct repl_self *me,
		   char gen[STORE_GEN_HEX])
{
	struct store_stats ss;

	memset(me, 0, sizeof(*me));
	if (store_generation(st, gen) != STORE_OK)
		return -1;
	store_stats(st, &ss);
	me->last = store_changelog_last(st, origin);
	me->trimmed = store_changelog_trimmed(st, origin);
	me->gen = gen;
	me->has_mail = ss.bodies > 0;
	me->starting = starting;
	return 0;
}

/* ==== the gate ============================================================= */

static void set_state(struct repl_gate *g, enum gate_state s)
{
	g->state = s;
	g->since = (int64_t)time(NULL);
}

static void ready(struct repl_gate *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ready(struct repl_gate *g, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g->reason, sizeof(g->reason), fmt, ap);
	va_end(ap);
	set_state(g, GATE_READY);
	if (g->timer != NULL)
		event_del(g->timer);
	log_info("repl.serving", "reason=\"%s\"", g->reason);
}

static void probe_reset(struct probe *p)
{
	link_stream_free(&p->s);
	p->answered = p->got_headers = p->has_data = false;
	memset(&p->pos, 0, sizeof(p->pos));
}

static void probe_response(void *arg, int status, const struct link_hdr *h, size_t n)
{
	struct probe *p = arg;
	const char *gen = link_hdr_get(h, n, "x-popnode-generation");

	p->got_headers = true;
	if (status == 400 || status == 404) {	/* an older peer: nothing to say */
		p->answered = true;
		return;
	}
	if (status != 200 || !link_hdr_u64(link_hdr_get(h, n, "x-popnode-applied-seq"), &p->pos.applied))
		return;		/* asked again */
	if (!link_hdr_u64(link_hdr_get(h, n, "x-popnode-last-seq"), &p->pos.last))
		p->pos.last = p->pos.applied;
	if (!link_hdr_u64(link_hdr_get(h, n, "x-popnode-dir-watermark"), &p->pos.dir_lseq))
		p->pos.dir_lseq = 0;
	if (gen != NULL && store_generation_check(gen) == STORE_OK)
		memcpy(p->pos.gen, gen, STORE_GEN_HEX);
	p->has_data = true;
	p->answered = true;
}

static void probe_event(void *arg, enum link_event ev)
{
	struct probe *p = arg;

	link_stream_free(&p->s);
	if (!p->answered)
		p->next_ms = now_ms() + PROBE_RETRY_MS;
}

static const struct link_stream_cbs probe_cbs = {
	.response = probe_response,
	.event = probe_event,
};

static void probe_ask(struct repl_gate *g, struct probe *p, int64_t now)
{
	char path[128];

	if (p->answered || p->s != NULL || now < p->next_ms ||
	    !link_peer_usable(g->n->link, p->peer))
		return;
	snprintf(path, sizeof(path), REPL_POSITION_PATH "?origin=%s&probe=1", g->n->cfg->node_id);
	p->s = link_request(g->n->link, p->peer, "GET", path, NULL, 0, false, &probe_cbs, p);
	if (p->s != NULL)
		link_stream_set_timeout(p->s, PROBE_TIMEOUT);
	else
		p->next_ms = now + PROBE_RETRY_MS;
}

/* ---- rebuilding ------------------------------------------------------------ */

static void rebuild_failed(struct repl_gate *g, const char *why);
static void merge_next(struct repl_gate *g);
static void merge_done(void *arg, bool ok, const char *why);

static void install_try(struct repl_gate *g)
{
	const char *why = NULL;
	int err = store_replace(g->n->store, g->dir, &why);

	if (err == STORE_EXISTS)
		return;		/* an op is pending: the next tick tries again */
	g->installing = false;
	if (err != STORE_OK) {
		rebuild_failed(g, why);
		return;
	}
	snprintf(g->rebuilt_from, sizeof(g->rebuilt_from), "%s", g->src->peer);
	g->rebuilt_seq = g->hdr.seq;
	log_warn("repl.rebuilt", "from=%s seq=%" PRIu64 " generation=%s bytes=%" PRIu64,
		 g->src->peer, g->hdr.seq, g->hdr.generation, g->snap_bytes);
	snprintf(g->rebuilt_why, sizeof(g->rebuilt_why),
		 "rebuilt from %s's copy (seq %" PRIu64 ", generation %s)", g->src->peer,
		 g->hdr.seq, g->hdr.generation);
	g->src = NULL;
	/* Another mirror may have served this POP's users meanwhile: its
	 * changes are taken back before serving (for the copy rebuilt
	 * from, that finds everything present already). */
	g->ready_why = g->rebuilt_why;
	set_state(g, GATE_MERGING);
	g->merge_next = 0;
	merge_next(g);
}

static void rx_progress(void *arg, uint64_t bytes)
{
	struct repl_gate *g = arg;

	repl_snap_rx_input(g->rx, g->rs != NULL ? link_stream_input(g->rs) : NULL);
}

static void rx_done(void *arg, int err, const char *why)
{
	struct repl_gate *g = arg;

	g->snap_bytes = repl_snap_rx_bytes(g->rx);
	link_stream_free(&g->rs);
	repl_snap_rx_free(&g->rx);	/* keeps the directory if complete */
	if (err != 0) {
		rebuild_failed(g, why);
		return;
	}
	g->installing = true;
	install_try(g);
}

static const struct repl_snap_rx_cbs rx_cbs = {
	.progress = rx_progress,
	.done = rx_done,
};

static void rs_response(void *arg, int status, const struct link_hdr *h, size_t n)
{
	struct repl_gate *g = arg;
	const char *gen = link_hdr_get(h, n, "x-popnode-generation");
	const char *why = NULL;
	char msg[96];

	/* a bulk stream: a larger window than one per round trip (link.h);
	 * only now is the stream open at the HTTP/2 layer */
	if (status == 200)
		link_stream_set_window(g->rs, 8u << 20);

	memset(&g->hdr, 0, sizeof(g->hdr));
	if (status != 200 || gen == NULL || store_generation_check(gen) != STORE_OK ||
	    !link_hdr_u64(link_hdr_get(h, n, "x-popnode-snapshot-seq"), &g->hdr.seq)) {
		snprintf(msg, sizeof(msg), "the mirror answered %d to the snapshot request", status);
		rebuild_failed(g, msg);
		return;
	}
	memcpy(g->hdr.generation, gen, STORE_GEN_HEX);
	for (size_t i = 0; i < g->np; i++)
		if (g->p[i].pos.dir_lseq > g->hdr.dir_lseq)
			g->hdr.dir_lseq = g->p[i].pos.dir_lseq;
	g->rx = repl_snap_rx_new(g->n, g->dir, g->n->cfg->node_id, &g->hdr, false, &g->lim, &rx_cbs,
				 g, &why);
	if (g->rx == NULL)
		rebuild_failed(g, why);
}

static void rs_read(void *arg)
{
	struct repl_gate *g = arg;

	if (g->rx != NULL)
		repl_snap_rx_input(g->rx, link_stream_input(g->rs));
}

static void rs_event(void *arg, enum link_event ev)
{
	struct repl_gate *g = arg;

	if (ev == LINK_EV_EOF && g->rx != NULL) {
		struct link_stream *s = g->rs;

		g->rs = NULL;	/* the receiver has all of it now */
		repl_snap_rx_eof(g->rx, link_stream_input(s));
		link_stream_free(&s);
		return;
	}
	rebuild_failed(g, ev == LINK_EV_TIMEOUT ? "the mirror went silent" : "snapshot stream lost");
}

static const struct link_stream_cbs rs_cbs = {
	.response = rs_response,
	.read = rs_read,
	.event = rs_event,
};

static void rebuild_start(struct repl_gate *g, struct probe *src, const char *why)
{
	char path[128];

	g->src = src;
	set_state(g, GATE_REBUILDING);
	snprintf(g->reason, sizeof(g->reason), "rebuilding from %s's copy (seq %" PRIu64 "): %s",
		 src->peer, src->pos.applied, why);
	log_warn("repl.rebuild", "from=%s applied_seq=%" PRIu64 " generation=%s reason=\"%s\"",
		 src->peer, src->pos.applied, src->pos.gen[0] ? src->pos.gen : "-", why);
	snprintf(path, sizeof(path), REPL_SNAP_PATH "?origin=%s", g->n->cfg->node_id);
	g->rs = link_request(g->n->link, src->peer, "GET", path, NULL, 0, false, &rs_cbs, g);
	if (g->rs == NULL) {
		rebuild_failed(g, "link to the mirror not usable");
		return;
	}
	link_stream_set_timeout(g->rs, REPL_SNAP_TIMEOUT);
}

/* Back to checking: every peer is asked again, with a new deadline. */
static void rebuild_failed(struct repl_gate *g, const char *why)
{
	struct timeval tv = { 0, TICK_MS * 1000 };

	log_warn("repl.rebuild_failed", "from=%s error=\"%s\"", g->src != NULL ? g->src->peer : "-",
		 why != NULL ? why : "?");
	link_stream_free(&g->rs);
	repl_snap_rx_free(&g->rx);
	repl_rmdir_flat(g->dir);
	g->installing = false;
	g->src = NULL;
	for (size_t i = 0; i < g->np; i++) {
		probe_reset(&g->p[i]);
		g->p[i].next_ms = now_ms() + 1000;
	}
	set_state(g, GATE_CHECKING);
	snprintf(g->reason, sizeof(g->reason), "rebuild failed (%s); checking the mirrors again",
		 why != NULL ? why : "?");
	g->deadline_ms = now_ms() + (int64_t)g->n->cfg->replication_startup_wait * 1000;
	event_add(g->timer, &tv);
}

/* ---- deciding ---------------------------------------------------------------- */

static void decide(struct repl_gate *g, bool timed_out)
{
	struct repl_self me;
	char gen[STORE_GEN_HEX];
	struct probe *best = NULL;
	const char *best_why = NULL;
	size_t answered = 0;

	if (repl_self_read(g->n->store, g->n->cfg->node_id, true, &me, gen) < 0) {
		/* a store without a readable generation is broken: say so,
		 * keep checking (and not serving) */
		snprintf(g->reason, sizeof(g->reason), "cannot read this POP's store");
		return;
	}
	for (size_t i = 0; i < g->np; i++) {
		struct probe *p = &g->p[i];
		const char *why;

		if (!p->answered)
			continue;
		answered++;
		if (!p->has_data)
			continue;
		if (repl_judge(&me, &p->pos, &why) == REPL_V_BEHIND &&
		    (best == NULL || p->pos.applied > best->pos.applied)) {
			best = p;
			best_why = why;
		}
	}
	if (best != NULL) {
		rebuild_start(g, best, best_why);
		return;
	}
	for (size_t i = 0; i < g->np; i++)
		link_stream_free(&g->p[i].s);
	if (answered == 0)
		g->ready_why = "no peer answered within replication_startup_wait";
	else if (timed_out)
		g->ready_why = "not every peer answered within replication_startup_wait; none holds "
			       "more of this POP";
	else
		g->ready_why = "checked: no peer holds more of this POP";
	set_state(g, GATE_MERGING);
	g->merge_next = 0;
	merge_next(g);
}

/* Take back, one mirror after the other, what mirrors changed while they
 * served for this POP (REPL_V_MERGE), then serve.  A merge that fails is
 * left to the shipper, which tries again (the mirror keeps its copy until
 * then): it does not keep this POP from serving. */
static void merge_next(struct repl_gate *g)
{
	struct repl_self me;
	char gen[STORE_GEN_HEX];

	if (repl_self_read(g->n->store, g->n->cfg->node_id, true, &me, gen) == 0) {
		for (; g->merge_next < g->np; g->merge_next++) {
			struct probe *p = &g->p[g->merge_next];
			const char *why;

			if (!p->answered || !p->has_data ||
			    repl_judge(&me, &p->pos, &why) != REPL_V_MERGE)
				continue;
			snprintf(g->reason, sizeof(g->reason),
				 "taking back the changes %s made while serving for this POP", p->peer);
			g->merge = repl_merge_start(g->n, p->peer, p->pos.applied, p->pos.last,
						    merge_done, g);
			g->merge_next++;
			if (g->merge != NULL)
				return;
			g->merge_failed++;
		}
	}
	if (g->merged + g->merge_failed == 0)
		ready(g, "%s", g->ready_why);
	else
		ready(g, "%s; failover changes taken back from %u mirror(s)%s", g->ready_why,
		      g->merged, g->merge_failed ? ", some left for later" : "");
}

static void merge_done(void *arg, bool ok, const char *why)
{
	struct repl_gate *g = arg;

	g->merge = NULL;
	if (ok)
		g->merged++;
	else
		g->merge_failed++;
	merge_next(g);
}


static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct repl_gate *g = arg;
	int64_t now = now_ms();
	size_t answered = 0;

	if (g->state == GATE_REBUILDING) {
		if (g->installing)
			install_try(g);
		return;
	}
	if (g->state != GATE_CHECKING)
		return;
	for (size_t i = 0; i < g->np; i++) {
		probe_ask(g, &g->p[i], now);
		answered += g->p[i].answered;
	}
	if (answered == g->np)
		decide(g, false);
	else if (now >= g->deadline_ms)
		decide(g, true);
	else
		snprintf(g->reason, sizeof(g->reason),
			 "checking this POP's copies at its peers (%zu of %zu answered)", answered,
			 g->np);
}

struct repl_gate *repl_gate_new(struct node *n, const struct repl_limits *lim)
{
	const struct config *cfg = n->cfg;
	struct repl_gate *g = calloc(1, sizeof(*g));
	struct timeval tv = { 0, TICK_MS * 1000 };

	if (g == NULL)
		return NULL;
	g->n = n;
	g->lim = *lim;
	snprintf(g->dir, sizeof(g->dir), "%s/store.new", cfg->data_dir);
	repl_rmdir_flat(g->dir);	/* a rebuild that did not finish */
	if (cfg->n_peers == 0) {
		ready(g, "no peers: nothing to check");
		return g;
	}
	if (cfg->replication_startup_wait == 0) {
		ready(g, "replication_startup_wait 0: not checked");
		return g;
	}
	g->p = calloc(cfg->n_peers, sizeof(*g->p));
	g->timer = event_new(n->base, -1, EV_PERSIST, tick_cb, g);
	if (g->p == NULL || g->timer == NULL) {
		free(g->p);
		if (g->timer != NULL)
			event_free(g->timer);
		free(g);
		return NULL;
	}
	g->np = cfg->n_peers;
	for (size_t i = 0; i < g->np; i++) {
		g->p[i].g = g;
		g->p[i].peer = cfg->peers[i].id;
	}
	set_state(g, GATE_CHECKING);
	snprintf(g->reason, sizeof(g->reason), "checking this POP's copies at its peers");
	g->deadline_ms = now_ms() + (int64_t)cfg->replication_startup_wait * 1000;
	event_add(g->timer, &tv);
	log_info("repl.checking", "peers=%zu wait=%us", g->np, cfg->replication_startup_wait);
	return g;
}

void repl_gate_free(struct repl_gate **gp)
{
	struct repl_gate *g = *gp;

	if (g == NULL)
		return;
	*gp = NULL;
	for (size_t i = 0; i < g->np; i++)
		link_stream_free(&g->p[i].s);
	link_stream_free(&g->rs);
	repl_snap_rx_free(&g->rx);
	repl_merge_cancel(&g->merge);
	if (g->timer != NULL)
		event_free(g->timer);
	free(g->p);
	free(g);
}

bool repl_gate_peer_copy(const struct repl_gate *g, const char *peer, struct repl_pos *pos_r)
{
	for (size_t i = 0; g != NULL && i < g->np; i++) {
		if (strcmp(g->p[i].peer, peer) != 0)
			continue;
		if (pos_r != NULL)
			*pos_r = g->p[i].pos;
		return g->p[i].has_data && (g->p[i].pos.applied > 0 || g->p[i].pos.last > 0);
	}
	return false;
}

bool repl_gate_ready(const struct repl_gate *g, const char **why_r)
{
	if (g == NULL || g->state == GATE_READY)
		return true;
	if (why_r != NULL)
		*why_r = g->state == GATE_REBUILDING
				 ? "this POP is rebuilding its mailboxes from a mirror"
			 : g->state == GATE_MERGING
				 ? "this POP is taking back changes made at a mirror while it was down"
				 : "this POP is checking its mailboxes against its mirrors";
	return false;
}

const char *repl_gate_reason(const struct repl_gate *g)
{
	return g != NULL ? g->reason : "no replicator";
}

/* A JSON string of our own text (printable ASCII). */
static void jstr(struct evbuffer *out, const char *s)
{
	evbuffer_add(out, "\"", 1);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			evbuffer_add_printf(out, "\\%c", *s);
		else if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			evbuffer_add(out, "?", 1);
		else
			evbuffer_add(out, s, 1);
	}
	evbuffer_add(out, "\"", 1);
}

void repl_gate_render_json(const struct repl_gate *g, struct evbuffer *out)
{
	static const char *const names[] = {
		[GATE_CHECKING] = "checking", [GATE_REBUILDING] = "rebuilding",
		[GATE_MERGING] = "merging", [GATE_READY] = "ready",
	};

	if (g == NULL) {
		evbuffer_add_printf(out, "{\"ready\": true, \"state\": \"ready\"}");
		return;
	}
	evbuffer_add_printf(out, "{\"ready\": %s, \"state\": \"%s\", \"since\": %" PRId64
			    ", \"reason\": ", g->state == GATE_READY ? "true" : "false",
			    names[g->state], g->since);
	jstr(out, g->reason);
	evbuffer_add_printf(out, ", \"snapshot_bytes\": %" PRIu64 ", \"rebuilt_from\": ",
			    g->rx != NULL ? repl_snap_rx_bytes(g->rx) : g->snap_bytes);
	if (g->rebuilt_from[0] != '\0') {
		jstr(out, g->rebuilt_from);
		evbuffer_add_printf(out, ", \"rebuilt_seq\": %" PRIu64 "}", g->rebuilt_seq);
	} else {
		evbuffer_add_printf(out, "null, \"rebuilt_seq\": null}");
	}
}
