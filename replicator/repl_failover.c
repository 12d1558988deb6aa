/*
 * repl_failover.c - publishing mirror sets, and where a user whose home
 * is down is served (failover.h, docs/failover.md).
 *
 * Publishing: once a second the POP compares its chosen mirrors
 * (replicator_mirrors, slot order) with what it last published; a change
 * marks every peer "to tell", and so does a peer that was unreachable
 * and is back (it may have restarted or lost its disk).  A peer to tell
 * gets POST /v1/repl/mirrors with x-popnode-mirrors: "A B" (ids separated
 * by a space, "" for none) and answers 204; until then it is asked again
 * at the next tick.  What a POP learns is kept in memory and in
 * DATA_DIR/mirrorsets ("ORIGIN A B" per line, written to a temporary
 * file and renamed: a few hundred bytes, page cache only, no fsync — it
 * is a cache that the next publication refreshes).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "directory.h"
#include "failover.h"
#include "imap.h"
#include "link.h"
#include "log.h"
#include "node.h"
#include "repl_private.h"
#include "replicator.h"
#include "store.h"

#define MIRRORS_PATH "/v1/repl/mirrors"
#define MIRRORS_HDR "x-popnode-mirrors"
#define TICK_MS 1000

struct fo_peer {
	const char *id;			/* config's */
	char set[REPL_MIRRORS][STORE_POP_MAX];	/* its published mirrors */
	size_t n_set;
	bool to_tell, was_usable;
	struct link_stream *s;		/* our publication in flight */
};

struct failover {
	struct node *n;
	struct fo_peer *p;
	size_t n_peers;
	char mine[REPL_MIRRORS][STORE_POP_MAX];	/* what we published */
	size_t n_mine;
	struct event *tick;
	char path[CONFIG_PATH_MAX + 16];
};

static struct failover *fo_of(struct node *n)
{
	return n->failover;
}

static struct fo_peer *peer_find(struct failover *f, const char *id)
{
	for (size_t i = 0; i < f->n_peers; i++)
		if (strcmp(f->p[i].id, id) == 0)
			return &f->p[i];
	return NULL;
}

/* ---- the sets ---------------------------------------------------------------- */

/* Parse "A B" into set: each a known POP id (a peer or this POP), no
 * repeats, at most REPL_MIRRORS.  false if anything else. */
static bool parse_set(struct failover *f, const char *v, char set[][STORE_POP_MAX], size_t *n_r)
{
	char buf[REPL_MIRRORS * STORE_POP_MAX + 8], *save = NULL, *tok;
	size_t k = 0;

	if (strlen(v) >= sizeof(buf))
		return false;
	snprintf(buf, sizeof(buf), "%s", v);
	for (tok = strtok_r(buf, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
		if (k == REPL_MIRRORS || !dir_valid_pop(tok) ||
		    (peer_find(f, tok) == NULL && strcmp(tok, f->n->cfg->node_id) != 0))
			return false;
		for (size_t i = 0; i < k; i++)
			if (strcmp(set[i], tok) == 0)
				return false;
		snprintf(set[k++], STORE_POP_MAX, "%s", tok);
	}
	*n_r = k;
	return true;
}

static void save(struct failover *f)
{
	char tmp[sizeof(f->path) + 8];
	FILE *fp;

	snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
	fp = fopen(tmp, "w");
	if (fp == NULL) {
		log_warn("failover.save_failed", "file=%s error=\"%s\"", tmp, strerror(errno));
		return;
	}
	for (size_t i = 0; i < f->n_peers; i++) {
		fprintf(fp, "%s", f->p[i].id);
		for (size_t k = 0; k < f->p[i].n_set; k++)
			fprintf(fp, " %s", f->p[i].set[k]);
		fputc('\n', fp);
	}
	if (fclose(fp) != 0 || rename(tmp, f->path) != 0) {
		log_warn("failover.save_failed", "file=%s error=\"%s\"", f->path, strerror(errno));
		unlink(tmp);
	}
}

static void load(struct failover *f)
{
	FILE *fp = fopen(f->path, "r");
	char line[512];

	if (fp == NULL)
		return;
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *sp, *nl = strchr(line, '\n');
		struct fo_peer *p;

		if (nl != NULL)
			*nl = '\0';
		sp = strchr(line, ' ');
		if (sp != NULL)
			*sp++ = '\0';
		p = peer_find(f, line);
		if (p == NULL || !parse_set(f, sp != NULL ? sp : "", p->set, &p->n_set))
			continue;	/* a peer no longer configured, or junk */
	}
	fclose(fp);
}

size_t failover_mirrors_of(struct node *n, const char *origin, const char **out, size_t max)
{
	struct failover *f = fo_of(n);
	struct fo_peer *p;
	size_t k = 0;

	if (f == NULL)
		return 0;
	if (strcmp(origin, n->cfg->node_id) == 0) {
		for (; k < f->n_mine && k < max; k++)
			out[k] = f->mine[k];
		return k;
	}
	if ((p = peer_find(f, origin)) == NULL)
		return 0;
	for (; k < p->n_set && k < max; k++)
		out[k] = p->set[k];
	return k;
}

size_t failover_targets(struct node *n, const char *home, const char **out)
{
	size_t k = 0;

	out[k++] = home;
	k += failover_mirrors_of(n, home, out + k, FAILOVER_TARGETS - 1);
	return k;
}

struct store *failover_store(struct node *n, const char *home, bool force)
{
	struct store *st;

	if (strcmp(home, n->cfg->node_id) == 0 || (!force && link_peer_usable(n->link, home)) ||
	    replicator_copy_busy(n, home))
		return NULL;
	st = replicator_store_of(n, home);
	if (st == NULL || (store_applied_seq(st, home) == 0 && store_changelog_last(st, home) == 0))
		return NULL;
	imap_observe_store(n, st);
	return st;
}

/* ---- publishing ----------------------------------------------------------------- */

static void pub_response(void *arg, int status, const struct link_hdr *h, size_t nh)
{
	struct fo_peer *p = arg;

	(void)h;
	(void)nh;
	if (status == 204 || status == 200)
		p->to_tell = false;
	link_stream_free(&p->s);
}

static void pub_event(void *arg, enum link_event ev)
{
	struct fo_peer *p = arg;

	(void)ev;
	link_stream_free(&p->s);
}

static const struct link_stream_cbs pub_cbs = {
	.response = pub_response,
	.event = pub_event,
};

static void publish(struct failover *f, struct fo_peer *p)
{
	char v[REPL_MIRRORS * STORE_POP_MAX + 8] = "";
	struct link_hdr h = { MIRRORS_HDR, v };
	size_t off = 0;

	for (size_t k = 0; k < f->n_mine; k++)
		off += (size_t)snprintf(v + off, sizeof(v) - off, "%s%s", k ? " " : "", f->mine[k]);
	p->s = link_request(f->n->link, p->id, "POST", MIRRORS_PATH, &h, 1, false, &pub_cbs, p);
	if (p->s != NULL)
		link_stream_set_timeout(p->s, 5);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct failover *f = arg;
	const char *ids[REPL_MIRRORS];
	size_t n = replicator_published(f->n, ids, REPL_MIRRORS);
	bool changed = n != f->n_mine;

	(void)fd;
	(void)what;
	for (size_t k = 0; !changed && k < n; k++)
		changed = strcmp(ids[k], f->mine[k]) != 0;
	if (changed) {
		char list[REPL_MIRRORS * STORE_POP_MAX + 8] = "";
		size_t off = 0;

		for (size_t k = 0; k < n; k++) {
			snprintf(f->mine[k], sizeof(f->mine[k]), "%s", ids[k]);
			off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", k ? "," : "",
						ids[k]);
		}
		f->n_mine = n;
		log_info("failover.mirrors_published", "mirrors=%s", n ? list : "-");
		for (size_t i = 0; i < f->n_peers; i++)
			f->p[i].to_tell = true;
	}
	bool on_mirror = node_sessions_on_mirror(f->n);	/* once per tick */

	for (size_t i = 0; i < f->n_peers; i++) {
		struct fo_peer *p = &f->p[i];
		bool usable = link_peer_usable(f->n->link, p->id);
		struct store *st;
		unsigned k;

		/* The home is back: failover sessions end, so their clients
		 * reconnect to it and no change lands here after it started
		 * taking this copy's changes back. */
		if (usable && on_mirror &&
		    (st = replicator_store_of(f->n, p->id)) != NULL &&
		    (k = node_sessions_end_on_store(f->n, st)) > 0)
			log_info("failover.home_back", "origin=%s sessions_ended=%u", p->id, k);

		if (usable && !p->was_usable)
			p->to_tell = true;
		p->was_usable = usable;
		if (usable && p->to_tell && p->s == NULL)
			publish(f, p);
	}
}

static void serve_mirrors(void *arg, struct link_stream *s, const struct link_request *req)
{
	struct failover *f = arg;
	const char *v = NULL;
	struct fo_peer *p = peer_find(f, req->peer);
	char set[REPL_MIRRORS][STORE_POP_MAX];
	size_t n = 0;
	bool same;

	for (size_t i = 0; i < req->n_hdrs; i++)
		if (strcmp(req->hdrs[i].name, MIRRORS_HDR) == 0)
			v = req->hdrs[i].value;
	if (strcmp(req->method, "POST") != 0 || p == NULL || v == NULL ||
	    !parse_set(f, v, set, &n)) {
		struct link_hdr h = { "x-popnode-error", "expected POST with " MIRRORS_HDR
							 ": up to two POP ids" };

		link_stream_respond(s, 400, &h, 1, true);
		link_stream_free(&s);
		return;
	}
	same = n == p->n_set;
	for (size_t k = 0; same && k < n; k++)
		same = strcmp(set[k], p->set[k]) == 0;
	if (!same) {
		memcpy(p->set, set, sizeof(set));
		p->n_set = n;
		log_info("failover.mirrors_learned", "origin=%s mirrors=\"%s\"", p->id, v);
		save(f);
	}
	link_stream_respond(s, 204, NULL, 0, true);
	link_stream_free(&s);
}

/* ---- setup ------------------------------------------------------------------------ */

int failover_init(struct node *n)
{
	const struct config *cfg = n->cfg;
	struct failover *f = calloc(1, sizeof(*f));
	struct timeval tv = { TICK_MS / 1000, (TICK_MS % 1000) * 1000 };

	if (f == NULL)
		return -1;
	f->n = n;
	n->failover = f;
	snprintf(f->path, sizeof(f->path), "%s/mirrorsets", cfg->data_dir);
	link_set_handler(n->link, MIRRORS_PATH, serve_mirrors, f);
	if (cfg->n_peers == 0)
		return 0;
	f->p = calloc(cfg->n_peers, sizeof(*f->p));
	f->tick = event_new(n->base, -1, EV_PERSIST, tick_cb, f);
	if (f->p == NULL || f->tick == NULL)
		return -1;
	f->n_peers = cfg->n_peers;
	for (size_t i = 0; i < cfg->n_peers; i++)
		f->p[i].id = cfg->peers[i].id;
	load(f);
	event_add(f->tick, &tv);
	return 0;
}

void failover_fini(struct node *n)
{
	struct failover *f = fo_of(n);

	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n_peers; i++)
		link_stream_free(&f->p[i].s);
	if (f->tick != NULL)
		event_free(f->tick);
	free(f->p);
	free(f);
	n->failover = NULL;
}
