/*
 * heartbeat.c - health figures to the anycast supervisor, its state back
 * (heartbeat.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "heartbeat.h"
#include "link.h"
#include "log.h"
#include "node.h"
#include "replicator.h"
#include "store.h"

#define HB_OUT_MAX 4096		/* a supervisor that stops reading: drop */
#define HB_LINE_MAX 512

struct heartbeat {
	struct node *n;
	struct bufferevent *bev;
	struct event *timer;
	int64_t next_due_ms;
	int64_t interval_ms;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count_peer(const struct link_peer_info *p, void *arg)
{
	unsigned *up = arg;

	*up += p->state == LINK_PEER_UP;
}

static void beat(evutil_socket_t fd, short what, void *arg)
{
	struct heartbeat *hb = arg;
	struct node *n = hb->n;
	int64_t now = mono_ms(), late = now - hb->next_due_ms;
	struct store_stats ss;
	struct statvfs vfs;
	uint64_t disk_free = 0;
	unsigned peers_up = 0;
	struct evbuffer *out = bufferevent_get_output(hb->bev);

	if (late < 0)
		late = 0;
	hb->next_due_ms = now + hb->interval_ms;
	store_stats(n->store, &ss);
	if (statvfs(n->cfg->data_dir, &vfs) == 0)
		disk_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	link_peer_foreach(n->link, count_peer, &peers_up);
	if (evbuffer_get_length(out) > HB_OUT_MAX)
		return;	/* the supervisor is not reading; it sees silence */
	/* replication: the worst streaming mirror's age of its oldest
	 * unacked record: this POP falling behind its own mirrors.  A mirror
	 * that is down does not count (a partition must not withdraw every
	 * POP); none streaming: "-", unknown, which passes. */
	struct repl_mirror_info mi[8];
	size_t nm = replicator_mirrors(n, mi, 8);
	double worst = -1;
	for (size_t i = 0; i < nm; i++)
		if (mi[i].state == REPL_STREAMING && mi[i].seconds_behind > worst)
			worst = mi[i].seconds_behind;
	evbuffer_add_printf(out,
			    "hb loop_ms=%" PRId64 " store=%d disk_free=%" PRIu64
			    " listeners=1 serving=%d peers_up=%u peers=%zu lag_ms=",
			    late, !ss.last_commit_failed, disk_free,
			    replicator_serving_ready(n, NULL) ? 1 : 0, peers_up, n->cfg->n_peers);
	if (worst >= 0)
		evbuffer_add_printf(out, "%" PRIu64 "\n", (uint64_t)(worst * 1000));
	else
		evbuffer_add_printf(out, "-\n");
}

/* "birdprotos N", then "birdproto NAME PROTO STATE INFO...", and
 * "birdexport NAME ROUTES" (supervisor.c). */
static void parse_bird(struct node *n, const char *line)
{
	char name[32], proto[16], state[16];
	int used = 0;
	unsigned long long routes;

	if (strncmp(line, "birdprotos ", 11) == 0) {
		n->n_bird_protos = 0;
		return;
	}
	if (sscanf(line, "birdproto %31s %15s %15s %n", name, proto, state, &used) == 3 &&
	    used > 0 && n->n_bird_protos < NODE_BIRD_PROTOS_MAX) {
		struct node_bird_proto *bp = &n->bird_protos[n->n_bird_protos++];

		snprintf(bp->name, sizeof(bp->name), "%s", name);
		snprintf(bp->proto, sizeof(bp->proto), "%s", proto);
		snprintf(bp->state, sizeof(bp->state), "%s", state);
		snprintf(bp->info, sizeof(bp->info), "%s", line + used);
		bp->exported = -1;
		return;
	}
	if (sscanf(line, "birdexport %31s %llu", name, &routes) == 2) {
		for (size_t i = 0; i < n->n_bird_protos; i++)
			if (strcmp(n->bird_protos[i].name, name) == 0)
				n->bird_protos[i].exported = (int64_t)routes;
	}
}

/* "state announced bird=up reason=..." */
static void parse_state(struct node *n, const char *line)
{
	const char *bird = strstr(line, " bird=");
	const char *reason = strstr(line, " reason=");

	if (strncmp(line, "checks ", 7) == 0 || strcmp(line, "checks") == 0) {
		snprintf(n->anycast_checks, sizeof(n->anycast_checks), "%s",
			 line[6] == ' ' ? line + 7 : "");
		return;
	}
	if (strncmp(line, "state ", 6) != 0)
		return;
	n->anycast_announced = strncmp(line + 6, "announced", 9) == 0;
	n->anycast_known = true;
	n->bird_up = bird != NULL && strncmp(bird + 6, "up", 2) == 0;
	snprintf(n->anycast_reason, sizeof(n->anycast_reason), "%s",
		 reason != NULL ? reason + 8 : "");
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct heartbeat *hb = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t len;

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		if (len < HB_LINE_MAX && strncmp(line, "bird", 4) == 0)
			parse_bird(hb->n, line);
		else if (len < HB_LINE_MAX)
			parse_state(hb->n, line);
		free(line);
	}
	if (evbuffer_get_length(in) > HB_LINE_MAX)
		evbuffer_drain(in, evbuffer_get_length(in));
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct heartbeat *hb = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		/* The supervisor is gone: it withdrew on its way out, and
		 * nothing here can announce.  Keep serving what comes. */
		log_err("anycast.supervisor_gone", "action=\"serving, no longer announced\"");
		hb->n->anycast_announced = false;
		bufferevent_disable(bev, EV_READ);
		event_del(hb->timer);
	}
}

int heartbeat_start(struct node *n, int fd)
{
	struct heartbeat *hb = calloc(1, sizeof(*hb));
	struct timeval tv;

	if (hb == NULL) {
		close(fd);
		return -1;
	}
	hb->n = n;
	hb->interval_ms = n->cfg->health_interval_ms;
	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	hb->bev = bufferevent_socket_new(n->base, fd, BEV_OPT_CLOSE_ON_FREE);
	hb->timer = event_new(n->base, -1, EV_PERSIST, beat, hb);
	if (hb->bev == NULL || hb->timer == NULL) {
		if (hb->bev != NULL)
			bufferevent_free(hb->bev);
		else
			close(fd);
		if (hb->timer != NULL)
			event_free(hb->timer);
		free(hb);
		return -1;
	}
	bufferevent_setcb(hb->bev, read_cb, NULL, event_cb, hb);
	bufferevent_enable(hb->bev, EV_READ | EV_WRITE);
	tv.tv_sec = hb->interval_ms / 1000;
	tv.tv_usec = (hb->interval_ms % 1000) * 1000;
	hb->next_due_ms = mono_ms() + hb->interval_ms;
	event_add(hb->timer, &tv);
	n->heartbeat = hb;
	n->anycast_supervised = true;
	beat(-1, 0, hb);	/* the first report now: the supervisor may rise */
	return 0;
}

void heartbeat_stop(struct node *n)
{
	struct heartbeat *hb = n->heartbeat;

	if (hb == NULL)
		return;
	n->heartbeat = NULL;
	event_free(hb->timer);
	bufferevent_free(hb->bev);
	free(hb);
}
