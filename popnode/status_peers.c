/*
 * status_peers.c - the link's peers for operators: copied from
 * link_peer_foreach into an array (status_collect_peers), so that every
 * peer rendering works on a plain array and is tested without a live
 * link, and the rows of `popctl peers` (control "peers") rendered from
 * it.  The peers' JSON is in status.c, their Prometheus families in
 * status_metrics.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/buffer.h>

#include "config.h"
#include "control_proto.h"
#include "dirsync.h"
#include "link.h"
#include "node.h"
#include "status.h"
#include "status_int.h"

struct collect_ctx {
	struct link_peer_info *peers;
	size_t n, cap;
};

static void collect_cb(const struct link_peer_info *p, void *arg)
{
	struct collect_ctx *cc = arg;

	if (cc->n < cc->cap)
		cc->peers[cc->n++] = *p;
}

int status_collect_peers(struct node *n, struct link_peer_info **peers_r, size_t *n_r)
{
	struct collect_ctx cc = { .peers = NULL, .n = 0, .cap = n->cfg->n_peers };

	*peers_r = NULL;
	*n_r = 0;
	if (n->link == NULL || cc.cap == 0)
		return 0;
	cc.peers = calloc(cc.cap, sizeof(*cc.peers));
	if (cc.peers == NULL)
		return -1;
	link_peer_foreach(n->link, collect_cb, &cc);
	for (size_t i = 0; i < cc.n; i++)
		cc.peers[i].dir_lseq = n->dirsync != NULL ? dirsync_peer_lseq(n, cc.peers[i].id) : 0;
	if (cc.n == 0) {
		free(cc.peers);
		return 0;
	}
	*peers_r = cc.peers;
	*n_r = cc.n;
	return 0;
}

/* The smoothed RTT is shown (table, metric) only while the peer is up:
 * the link keeps the last value through an outage, for ranking, but a
 * flat line for a dead peer would mislead.  The JSON gives it raw. */
bool status_rtt_current(const struct link_peer_info *p)
{
	return p->state == LINK_PEER_UP && p->rtt_avg_us >= 0;
}

/* "45s", "3m05s", "2h07m", "4d03h". */
static void human_duration(char *buf, size_t sz, int64_t d)
{
	if (d < 0)
		d = 0;
	if (d < 60)
		snprintf(buf, sz, "%ds", (int)d);
	else if (d < 3600)
		snprintf(buf, sz, "%dm%02ds", (int)(d / 60), (int)(d % 60));
	else if (d < 86400)
		snprintf(buf, sz, "%dh%02dm", (int)(d / 3600), (int)(d % 3600 / 60));
	else
		snprintf(buf, sz, "%" PRId64 "d%02dh", d / 86400, (int)(d % 86400 / 3600));
}

void status_render_peers(struct evbuffer *out, const struct link_peer_info *p, size_t n,
			 int64_t now)
{
	char id[CONFIG_NAME_MAX], addr[96], err[sizeof(p->last_error)], rtt[32], since[32];

	evbuffer_add_printf(out, "PEER\tADDR\tSTATE\tRTT\tIN\tFAIL\tSTREAMS\tDIR\tSINCE\tLAST ERROR\n");
	for (size_t i = 0; i < n; i++) {
		const struct link_peer_info *pi = &p[i];

		if (!status_rtt_current(pi)) {
			snprintf(rtt, sizeof(rtt), "-");
		} else {
			int64_t cs = (pi->rtt_avg_us + 5) / 10;	/* hundredths of a ms */

			snprintf(rtt, sizeof(rtt), "%" PRId64 ".%02d", cs / 100, (int)(cs % 100));
		}
		if (pi->since <= 0)
			snprintf(since, sizeof(since), "-");
		else
			human_duration(since, sizeof(since), now - pi->since);
		evbuffer_add_printf(out, "%s\t%s\t%s\t%s\t%s\t%u\t%u\t%" PRIu64 "\t%s\t%s\n",
				    ctl_row_field(id, sizeof(id), pi->id),
				    ctl_row_field(addr, sizeof(addr), pi->addr),
				    link_peer_state_name(pi->state), rtt, pi->inbound ? "yes" : "no",
				    pi->failures, pi->streams_active, pi->dir_lseq, since,
				    ctl_row_field(err, sizeof(err), pi->last_error));
	}
}
