/*
 * repl_status.c - the replication figures for operators (replicator.h):
 * `popctl lag` rows and JSON, /status "replication", /metrics
 * popnode_replication_*, and `popctl mirror list` (a store's content,
 * digested per mailbox, to compare a mirror with its origin).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "config.h"
#include "node.h"
#include "repl_noc.h"
#include "repl_noc_wire.h"
#include "repl_private.h"
#include "repl_snapshot.h"
#include "replicator.h"
#include "store.h"

#define MAX_ROWS (2 * 64)

/* A JSON string of s (POP ids and our own error texts: printable ASCII). */
static void jstr(struct evbuffer *out, const char *s)
{
	evbuffer_add(out, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			evbuffer_add_printf(out, "\\%c", ch);
		else if (ch < 0x20 || ch > 0x7e)
			evbuffer_add_printf(out, "\\u%04x", ch);
		else
			evbuffer_add(out, s, 1);
	}
	evbuffer_add(out, "\"", 1);
}

/* A text field: no TAB or LF, "-" when empty. */
static void tfield(struct evbuffer *out, const char *s)
{
	if (*s == '\0')
		s = "-";
	for (; *s != '\0'; s++)
		evbuffer_add(out, *s == '\t' || *s == '\n' ? " " : s, 1);
}

/* Seconds since unix ms, "never" for 0. */
static void ago(char *buf, size_t sz, int64_t ms)
{
	struct timespec ts;
	int64_t now;

	if (ms <= 0) {
		snprintf(buf, sz, "never");
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	snprintf(buf, sz, "%.1fs ago", now > ms ? (double)(now - ms) / 1000.0 : 0.0);
}

void replicator_render_serving_text(struct node *n, struct evbuffer *out)
{
	bool ready = replicator_serving_ready(n, NULL);

	evbuffer_add_printf(out, "serving:     %s (%s)\n", ready ? "yes" : "NOT YET",
			    replicator_serving_reason(n));
}

void replicator_render_lag(struct node *n, struct evbuffer *out)
{
	struct repl_mirror_info m[REPL_MIRRORS];
	struct repl_origin_info *o = calloc(64, sizeof(*o));
	size_t nm = replicator_mirrors(n, m, REPL_MIRRORS), no;
	char a[32];

	evbuffer_add_printf(out, "ROLE\tPOP\tSTATE\tLAST\tSENT\tAPPLIED\tBEHIND\tBYTES\tSECONDS"
				 "\tLAST ACK\tERROR\n");
	for (size_t i = 0; i < nm; i++) {
		ago(a, sizeof(a), m[i].last_ack_ms);
		evbuffer_add_printf(out, "mirror\t%s\t%s\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64
				    "\t%" PRIu64 "\t%" PRIu64 "\t%.1f\t%s\t", m[i].peer,
				    replicator_state_name(m[i].state), m[i].last_seq, m[i].sent_seq,
				    m[i].applied_seq, m[i].records_behind, m[i].bytes_behind,
				    m[i].seconds_behind, a);
		tfield(out, m[i].last_error);
		evbuffer_add(out, "\n", 1);
	}
	if (o == NULL)
		return;
	no = replicator_origins(n, o, 64);
	for (size_t i = 0; i < no; i++) {
		ago(a, sizeof(a), o[i].last_contact_ms);
		evbuffer_add_printf(out, "origin\t%s\t%s\t%" PRIu64 "\t-\t%" PRIu64 "\t%" PRIu64
				    "\t-\t-\t%s\t", o[i].origin,
				    o[i].snapshotting ? "snapshotting"
				    : o[i].connected ? "streaming" : "down", o[i].origin_seq,
				    o[i].applied_seq, o[i].origin_seq - o[i].applied_seq, a);
		tfield(out, o[i].last_error);
		evbuffer_add(out, "\n", 1);
	}
	free(o);
}

static void mirror_json(struct evbuffer *out, const struct repl_mirror_info *m, const char *ind)
{
	evbuffer_add_printf(out, "{\"mirror\": ");
	jstr(out, m->peer);
	evbuffer_add_printf(out, ", \"pinned\": %s, \"state\": \"%s\", \"since\": %" PRId64
			    ", \"last_seq\": %" PRIu64 ", \"sent_seq\": %" PRIu64
			    ", \"applied_seq\": %" PRIu64 ", \"records_behind\": %" PRIu64
			    ", \"bytes_behind\": %" PRIu64 ", \"seconds_behind\": %.3f"
			    ", \"last_ack\": ",
			    m->pinned ? "true" : "false", replicator_state_name(m->state), m->since,
			    m->last_seq, m->sent_seq, m->applied_seq, m->records_behind,
			    m->bytes_behind, m->seconds_behind);
	if (m->last_ack_ms > 0)
		evbuffer_add_printf(out, "%.3f", (double)m->last_ack_ms / 1000.0);
	else
		evbuffer_add_printf(out, "null");
	evbuffer_add_printf(out, ",%s \"records_sent\": %" PRIu64 ", \"bytes_sent\": %" PRIu64
			    ", \"bodies_sent\": %" PRIu64 ", \"reconnects\": %" PRIu64
			    ", \"last_error\": ", ind, m->records_sent, m->bytes_sent,
			    m->bodies_sent, m->reconnects);
	if (m->last_error[0] != '\0')
		jstr(out, m->last_error);
	else
		evbuffer_add_printf(out, "null");
	evbuffer_add_printf(out, ",%s \"first_seq\": %" PRIu64 ", \"snapshots\": %" PRIu64
			    ", \"snapshot_seq\": %" PRIu64 ", \"snapshot_bytes_sent\": %" PRIu64
			    ", \"snapshot_bytes_durable\": %" PRIu64
			    ", \"snapshot_bytes_total\": %" PRIu64, ind, m->first_seq, m->snapshots,
			    m->snapshot_seq, m->snapshot_bytes_sent, m->snapshot_bytes_durable,
			    m->snapshot_bytes_total);
	evbuffer_add(out, "}", 1);
}

static void origin_json(struct evbuffer *out, const struct repl_origin_info *o, const char *ind)
{
	evbuffer_add_printf(out, "{\"origin\": ");
	jstr(out, o->origin);
	evbuffer_add_printf(out, ", \"state\": \"%s\", \"applied_seq\": %" PRIu64
			    ", \"origin_seq\": %" PRIu64 ", \"records_behind\": %" PRIu64
			    ", \"last_record\": %" PRId64 ",%s \"last_contact\": ",
			    o->snapshotting ? "snapshotting" : o->connected ? "streaming" : "down",
			    o->applied_seq, o->origin_seq,
			    o->origin_seq - o->applied_seq, o->last_record, ind);
	if (o->last_contact_ms > 0)
		evbuffer_add_printf(out, "%.3f", (double)o->last_contact_ms / 1000.0);
	else
		evbuffer_add_printf(out, "null");
	evbuffer_add_printf(out, ", \"records_applied\": %" PRIu64 ", \"batches_applied\": %"
			    PRIu64 ", \"last_error\": ", o->records_applied, o->batches_applied);
	if (o->last_error[0] != '\0')
		jstr(out, o->last_error);
	else
		evbuffer_add_printf(out, "null");
	evbuffer_add_printf(out, ",%s \"snapshot_bytes\": %" PRIu64 ", \"snapshots_loaded\": %"
			    PRIu64 ", \"generation\": ", ind, o->snapshot_bytes, o->snapshots_loaded);
	if (o->generation[0] != '\0')
		jstr(out, o->generation);
	else
		evbuffer_add_printf(out, "null");
	evbuffer_add(out, "}", 1);
}

/* "MKEY": [mirror rows], "OKEY": [origin rows] at two spaces of indent,
 * rows at four; no newline after the last "]". */
static void arrays(struct node *n, struct evbuffer *out, const char *mkey, const char *okey)
{
	struct repl_mirror_info m[REPL_MIRRORS];
	struct repl_origin_info *o = calloc(64, sizeof(*o));
	size_t nm = replicator_mirrors(n, m, REPL_MIRRORS);
	size_t no = o != NULL ? replicator_origins(n, o, 64) : 0;

	evbuffer_add_printf(out, "  \"%s\": [", mkey);
	for (size_t i = 0; i < nm; i++) {
		evbuffer_add_printf(out, "%s\n    ", i > 0 ? "," : "");
		mirror_json(out, &m[i], "");
	}
	evbuffer_add_printf(out, "%s],\n  \"%s\": [", nm > 0 ? "\n  " : "", okey);
	for (size_t i = 0; i < no; i++) {
		evbuffer_add_printf(out, "%s\n    ", i > 0 ? "," : "");
		origin_json(out, &o[i], "");
	}
	evbuffer_add_printf(out, "%s]", no > 0 ? "\n  " : "");
	free(o);
}

/* This POP's changelog: first held, last, trimmed (no newline). */
static void changelog_json(struct node *n, struct evbuffer *out)
{
	uint64_t last = 0, trimmed = 0;

	if (n->store != NULL) {
		last = store_changelog_last(n->store, n->cfg->node_id);
		trimmed = store_changelog_trimmed(n->store, n->cfg->node_id);
	}
	evbuffer_add_printf(out, "{\"first_seq\": %" PRIu64 ", \"last_seq\": %" PRIu64
			    ", \"trimmed_seq\": %" PRIu64 "}", trimmed + 1, last, trimmed);
}

void replicator_render_lag_json(struct node *n, struct evbuffer *out)
{
	evbuffer_add_printf(out, "{\n");
	arrays(n, out, "mirrors", "origins");
	evbuffer_add_printf(out, ",\n  \"changelog\": ");
	changelog_json(n, out);
	evbuffer_add_printf(out, ",\n  \"serving\": ");
	replicator_render_serving_json(n, out);
	evbuffer_add_printf(out, "\n}\n");
}

void replicator_render_status_json(struct node *n, struct evbuffer *out)
{
	arrays(n, out, "replication", "replication_origins");
	evbuffer_add_printf(out, ",\n  \"replication_changelog\": ");
	changelog_json(n, out);
	evbuffer_add_printf(out, ",\n  \"replication_serving\": ");
	replicator_render_serving_json(n, out);
}

static void series(struct evbuffer *out, const char *name, const char *lk, const char *lv,
		   const char *fmt, double v)
{
	evbuffer_add_printf(out, "%s{%s=\"%s\"} ", name, lk, lv);
	evbuffer_add_printf(out, fmt, v);
	evbuffer_add(out, "\n", 1);
}

void replicator_render_metrics(struct node *n, struct evbuffer *out)
{
	struct repl_mirror_info m[REPL_MIRRORS];
	struct repl_origin_info *o = calloc(64, sizeof(*o));
	size_t nm = replicator_mirrors(n, m, REPL_MIRRORS), no = o != NULL ? replicator_origins(n, o, 64) : 0;
	static const struct {
		const char *name, *type, *help;
	} mf[] = {
		{ "popnode_replication_up", "gauge", "1 while the stream to the mirror is streaming." },
		{ "popnode_replication_sent_seq", "gauge", "Last changelog seq written to the mirror's stream." },
		{ "popnode_replication_applied_seq", "gauge", "Last changelog seq the mirror acked as durable." },
		{ "popnode_replication_records_behind", "gauge", "Changelog records not yet durable at the mirror." },
		{ "popnode_replication_bytes_behind", "gauge", "Estimated bytes not yet durable at the mirror." },
		{ "popnode_replication_lag_seconds", "gauge", "Age of the oldest record the mirror has not acked (0 when caught up)." },
		{ "popnode_replication_last_ack_timestamp_seconds", "gauge", "Unix time of the mirror's last ack." },
		{ "popnode_replication_records_sent_total", "counter", "Changelog records sent to the mirror." },
		{ "popnode_replication_bytes_sent_total", "counter", "Frame bytes sent to the mirror." },
		{ "popnode_replication_bodies_sent_total", "counter", "Message bodies sent to the mirror." },
		{ "popnode_replication_connects_total", "counter", "Streams opened (or tried) to the mirror." },
	};

	for (size_t f = 0; f < sizeof(mf) / sizeof(mf[0]) && nm > 0; f++) {
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", mf[f].name, mf[f].help,
				    mf[f].name, mf[f].type);
		for (size_t i = 0; i < nm; i++) {
			const struct repl_mirror_info *x = &m[i];
			double v[] = {
				x->state == REPL_STREAMING, (double)x->sent_seq,
				(double)x->applied_seq, (double)x->records_behind,
				(double)x->bytes_behind, x->seconds_behind,
				(double)x->last_ack_ms / 1000.0, (double)x->records_sent,
				(double)x->bytes_sent, (double)x->bodies_sent, (double)x->reconnects,
			};

			series(out, mf[f].name, "mirror", x->peer, f == 5 || f == 6 ? "%.3f" : "%.0f",
			       v[f]);
		}
	}
	if (no > 0) {
		evbuffer_add_printf(out, "# HELP popnode_replication_origin_applied_seq Last seq of "
				    "the origin's changelog durable here.\n"
				    "# TYPE popnode_replication_origin_applied_seq gauge\n");
		for (size_t i = 0; i < no; i++)
			series(out, "popnode_replication_origin_applied_seq", "origin", o[i].origin,
			       "%.0f", (double)o[i].applied_seq);
		evbuffer_add_printf(out, "# HELP popnode_replication_origin_records_behind Records "
				    "the origin said it has and are not applied here.\n"
				    "# TYPE popnode_replication_origin_records_behind gauge\n");
		for (size_t i = 0; i < no; i++)
			series(out, "popnode_replication_origin_records_behind", "origin",
			       o[i].origin, "%.0f", (double)(o[i].origin_seq - o[i].applied_seq));
		evbuffer_add_printf(out, "# HELP popnode_replication_origin_up 1 while the "
				    "origin's stream is open.\n"
				    "# TYPE popnode_replication_origin_up gauge\n");
		for (size_t i = 0; i < no; i++)
			series(out, "popnode_replication_origin_up", "origin", o[i].origin, "%.0f",
			       o[i].connected);
	}
	free(o);
	if (nm > 0) {
		evbuffer_add_printf(out, "# HELP popnode_replication_snapshots_total Snapshots the "
				    "mirror loaded from this POP.\n"
				    "# TYPE popnode_replication_snapshots_total counter\n");
		for (size_t i = 0; i < nm; i++)
			series(out, "popnode_replication_snapshots_total", "mirror", m[i].peer,
			       "%.0f", (double)m[i].snapshots);
	}
	if (n->store != NULL)
		evbuffer_add_printf(out, "# HELP popnode_replication_changelog_first_seq This POP's "
				    "oldest changelog record held (older ones are trimmed).\n"
				    "# TYPE popnode_replication_changelog_first_seq gauge\n"
				    "popnode_replication_changelog_first_seq %" PRIu64 "\n",
				    store_changelog_trimmed(n->store, n->cfg->node_id) + 1);
	evbuffer_add_printf(out, "# HELP popnode_replication_serving_ready 1 once this POP may "
			    "serve its own users (start-up check against the mirrors done).\n"
			    "# TYPE popnode_replication_serving_ready gauge\n"
			    "popnode_replication_serving_ready %d\n",
			    replicator_serving_ready(n, NULL) ? 1 : 0);
}

/* ---- content digests ------------------------------------------------------- */

/* `popctl mirror list`: one user's mailboxes, digested as
 * `popctl verify` does (repl_noc_digest). */
struct content {
	struct store *st;
	struct evbuffer *out;
	struct repl_noc_copy copy;
	int err;
};

static int user_cb(const struct store_user *u, void *arg)
{
	struct content *c = arg;

	if (repl_noc_digest(c->st, u->name, &c->copy) < 0)
		return c->err = -1;
	for (size_t i = 0; i < c->copy.n_mb; i++) {
		const struct repl_noc_mbox *mb = &c->copy.mb[i];

		evbuffer_add_printf(c->out, "%s\t", u->name);
		tfield(c->out, mb->name);
		evbuffer_add_printf(c->out, "\t%u\t%u\t%u\t%s\n", mb->messages, mb->uidvalidity,
				    mb->uidnext, mb->digest);
	}
	return 0;
}

int replicator_render_content(struct node *n, const char *origin, struct evbuffer *out,
			      const char **why_r)
{
	struct content c = { .out = out };
	int rc;

	c.st = replicator_store_of(n, origin);
	if (c.st == NULL) {
		*why_r = "no mirror of that POP here";
		return -1;
	}
	evbuffer_add_printf(out, "USER\tMAILBOX\tMESSAGES\tUIDVALIDITY\tUIDNEXT\tDIGEST\n");
	rc = store_user_foreach(c.st, user_cb, &c);
	repl_noc_copy_clear(&c.copy);
	if (rc != STORE_OK || c.err != 0) {
		*why_r = "store read failed";
		return -1;
	}
	return 0;
}
