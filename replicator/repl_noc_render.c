/*
 * repl_noc_render.c - comparing copies of a user's mail and rendering the
 * answers of `popctl verify` and `popctl lag --cluster` as text (TAB-
 * separated tables popctl aligns) or JSON (repl_noc_wire.h).  No I/O.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "repl_noc_wire.h"

/* ---- output helpers -------------------------------------------------------------- */

/* Length of the UTF-8 sequence at s (1..4), 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
	    (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	return n;
}

/* A JSON string: UTF-8 kept, control bytes escaped, a byte that is not
 * UTF-8 becomes U+FFFD. */
static void jstr(struct evbuffer *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	evbuffer_add(out, "\"", 1);
	while (*p != '\0') {
		size_t n = utf8_len(p);

		if (*p == '"' || *p == '\\') {
			evbuffer_add_printf(out, "\\%c", *p);
			p++;
		} else if (*p < 0x20 || *p == 0x7f) {
			evbuffer_add_printf(out, "\\u%04x", *p);
			p++;
		} else if (n == 0) {
			evbuffer_add(out, "\\ufffd", 6);
			p++;
		} else {
			evbuffer_add(out, p, n);
			p += n;
		}
	}
	evbuffer_add(out, "\"", 1);
}

static void jstr_or_null(struct evbuffer *out, const char *s)
{
	if (s == NULL || *s == '\0')
		evbuffer_add(out, "null", 4);
	else
		jstr(out, s);
}

/* A text field: TAB, LF and control bytes as spaces, "-" when empty. */
static void tfield(struct evbuffer *out, const char *s)
{
	if (s == NULL || *s == '\0')
		s = "-";
	for (; *s != '\0'; s++)
		evbuffer_add(out, (unsigned char)*s < 0x20 || *s == 0x7f ? " " : s, 1);
}

/* ---- comparing --------------------------------------------------------------------- */

static int mbox_cmp(const void *a, const void *b)
{
	return strcmp(((const struct repl_noc_mbox *)a)->name,
		      ((const struct repl_noc_mbox *)b)->name);
}

static bool same(const struct repl_noc_mbox *a, const struct repl_noc_mbox *b)
{
	return a->messages == b->messages && a->uidvalidity == b->uidvalidity &&
	       a->uidnext == b->uidnext && strcmp(a->digest, b->digest) == 0;
}

/* Mark c's mailboxes against the home's h; true if all match and none
 * is missing. */
static bool compare_one(const struct repl_noc_copy *h, struct repl_noc_copy *c)
{
	size_t i = 0, j = 0;
	bool all = true;

	while (i < h->n_mb || j < c->n_mb) {
		int cmp = i == h->n_mb ? 1 : j == c->n_mb ? -1 : strcmp(h->mb[i].name, c->mb[j].name);

		if (cmp < 0) {
			all = false;		/* missing here */
			i++;
		} else if (cmp > 0) {
			c->mb[j++].status = REPL_NOC_EXTRA;
			all = false;
		} else {
			c->mb[j].status = same(&h->mb[i], &c->mb[j]) ? REPL_NOC_MATCH : REPL_NOC_DIFFERS;
			all &= c->mb[j].status == REPL_NOC_MATCH;
			i++, j++;
		}
	}
	return all;
}

enum repl_noc_status repl_noc_compare(struct repl_noc_copy *c, size_t n)
{
	bool differs = false, unreachable = false;

	for (size_t k = 0; k < n; k++) {
		if (c[k].n_mb > 1)
			qsort(c[k].mb, c[k].n_mb, sizeof(*c[k].mb), mbox_cmp);
	}
	for (size_t k = 0; k < n; k++) {
		struct repl_noc_copy *x = &c[k];

		if (!x->reached || !c[0].reached) {
			x->status = REPL_NOC_UNREACHABLE;
			unreachable = true;
			continue;
		}
		if (k == 0) {
			x->status = REPL_NOC_REFERENCE;
			for (size_t i = 0; i < x->n_mb; i++)
				x->mb[i].status = REPL_NOC_REFERENCE;
			continue;
		}
		if (!x->held || !x->user_found)
			x->status = REPL_NOC_DIFFERS;
		else
			x->status = compare_one(&c[0], x) && x->user_found == c[0].user_found
				    ? REPL_NOC_MATCH : REPL_NOC_DIFFERS;
		differs |= x->status == REPL_NOC_DIFFERS;
	}
	return differs ? REPL_NOC_DIFFERS : unreachable ? REPL_NOC_UNREACHABLE : REPL_NOC_MATCH;
}

/* ---- verify --------------------------------------------------------------------------- */

static uint64_t messages_of(const struct repl_noc_copy *c)
{
	uint64_t n = 0;

	for (size_t i = 0; i < c->n_mb; i++)
		n += c->mb[i].messages;
	return n;
}

/* Why c is as it is, for people ("" if there is nothing to say). */
static void note_of(const struct repl_noc_copy *home, const struct repl_noc_copy *c, char *buf,
		    size_t sz)
{
	buf[0] = '\0';
	if (!c->reached || !c->held)
		snprintf(buf, sz, "%s", c->error);
	else if (!c->user_found)
		snprintf(buf, sz, "user not in this copy");
	else if (c == home || c->status != REPL_NOC_DIFFERS)
		return;
	else if (c->seq < home->seq)
		snprintf(buf, sz, "behind the home by %" PRIu64 " changelog records",
			 home->seq - c->seq);
	else if (c->seq > home->seq)
		snprintf(buf, sz, "%" PRIu64 " records newer than the home's answer (changed "
			 "meanwhile?)", c->seq - home->seq);
	else
		snprintf(buf, sz, "same position as the home, different content");
}

/* The mailbox rows of copy c in text: its own mailboxes, and (for a
 * mirror) the home's mailboxes it lacks, in name order. */
static void text_mailboxes(struct evbuffer *out, const struct repl_noc_copy *home,
			   const struct repl_noc_copy *c)
{
	bool compared = c != home && c->status != REPL_NOC_UNREACHABLE && c->held;
	size_t i = 0, j = 0;

	while (j < c->n_mb || (compared && i < home->n_mb)) {
		int cmp = !compared ? 1 : i == home->n_mb ? 1 : j == c->n_mb ? -1
			  : strcmp(home->mb[i].name, c->mb[j].name);

		tfield(out, c->pop);
		evbuffer_add(out, "\t", 1);
		if (cmp < 0) {
			tfield(out, home->mb[i++].name);
			evbuffer_add_printf(out, "\t-\t-\t-\t-\t%s\n",
					    repl_noc_status_name(REPL_NOC_MISSING));
			continue;
		}
		if (cmp == 0)
			i++;
		tfield(out, c->mb[j].name);
		evbuffer_add_printf(out, "\t%" PRIu32 "\t%" PRIu32 "\t%" PRIu32 "\t%s\t%s\n",
				    c->mb[j].messages, c->mb[j].uidvalidity, c->mb[j].uidnext,
				    c->mb[j].digest,
				    c->status == REPL_NOC_UNREACHABLE ? "-"
				    : repl_noc_status_name(c->mb[j].status));
		j++;
	}
}

static void verify_text(const char *user, const char *home, enum repl_noc_status verdict,
			const struct repl_noc_copy *c, size_t n, struct evbuffer *out)
{
	char note[256];

	evbuffer_add_printf(out, "user: %s\nhome: %s\nresult: %s\n\n", user, home,
			    repl_noc_status_name(verdict));
	evbuffer_add_printf(out, "POP\tROLE\tRESULT\tSEQ\tMAILBOXES\tMESSAGES\tNOTE\n");
	for (size_t k = 0; k < n; k++) {
		tfield(out, c[k].pop);
		evbuffer_add_printf(out, "\t%s\t%s\t", c[k].home ? "home" : "mirror",
				    repl_noc_status_name(c[k].status));
		if (c[k].reached && c[k].held)
			evbuffer_add_printf(out, "%" PRIu64 "\t%zu\t%" PRIu64 "\t", c[k].seq, c[k].n_mb,
					    messages_of(&c[k]));
		else
			evbuffer_add_printf(out, "-\t-\t-\t");
		note_of(&c[0], &c[k], note, sizeof(note));
		tfield(out, note);
		evbuffer_add(out, "\n", 1);
	}
	evbuffer_add_printf(out, "\nPOP\tMAILBOX\tMESSAGES\tUIDVALIDITY\tUIDNEXT\tDIGEST\tRESULT\n");
	for (size_t k = 0; k < n; k++)
		text_mailboxes(out, &c[0], &c[k]);
}

static void json_mbox(struct evbuffer *out, const struct repl_noc_mbox *m, enum repl_noc_status st,
		      bool first)
{
	evbuffer_add_printf(out, "%s\n        {\"name\": ", first ? "" : ",");
	jstr(out, m->name);
	evbuffer_add_printf(out, ", \"messages\": %" PRIu32 ", \"uidvalidity\": %" PRIu32
			    ", \"uidnext\": %" PRIu32 ", \"digest\": \"%s\", \"status\": \"%s\"}",
			    m->messages, m->uidvalidity, m->uidnext, m->digest,
			    repl_noc_status_name(st));
}

static void json_missing(struct evbuffer *out, const char *name, bool first)
{
	evbuffer_add_printf(out, "%s\n        {\"name\": ", first ? "" : ",");
	jstr(out, name);
	evbuffer_add_printf(out, ", \"messages\": null, \"uidvalidity\": null, \"uidnext\": null"
			    ", \"digest\": null, \"status\": \"missing\"}");
}

static void json_copy(struct evbuffer *out, const struct repl_noc_copy *home,
		      const struct repl_noc_copy *c)
{
	bool compared = c != home && c->status != REPL_NOC_UNREACHABLE && c->held;
	bool shown = c->reached && c->held;
	size_t i = 0, j = 0;
	bool first = true;
	char note[256];

	note_of(home, c, note, sizeof(note));
	evbuffer_add_printf(out, "{\"pop\": ");
	jstr(out, c->pop);
	evbuffer_add_printf(out, ", \"role\": \"%s\", \"reachable\": %s, \"status\": \"%s\", "
			    "\"holds_copy\": %s, \"user_found\": %s, \"seq\": ",
			    c->home ? "home" : "mirror", c->reached ? "true" : "false",
			    repl_noc_status_name(c->status), !c->reached ? "null"
			    : c->held ? "true" : "false", shown ? (c->user_found ? "true" : "false")
			    : "null");
	if (shown)
		evbuffer_add_printf(out, "%" PRIu64 ", \"messages\": %" PRIu64, c->seq,
				    messages_of(c));
	else
		evbuffer_add_printf(out, "null, \"messages\": null");
	evbuffer_add_printf(out, ", \"note\": ");
	jstr_or_null(out, note);
	evbuffer_add_printf(out, ",\n      \"mailboxes\": [");
	while (j < c->n_mb || (compared && i < home->n_mb)) {
		int cmp = !compared ? 1 : i == home->n_mb ? 1 : j == c->n_mb ? -1
			  : strcmp(home->mb[i].name, c->mb[j].name);

		if (cmp < 0) {
			json_missing(out, home->mb[i++].name, first);
		} else {
			if (cmp == 0)
				i++;
			json_mbox(out, &c->mb[j], c->status == REPL_NOC_UNREACHABLE
				  ? REPL_NOC_UNREACHABLE : (enum repl_noc_status)c->mb[j].status, first);
			j++;
		}
		first = false;
	}
	evbuffer_add_printf(out, "%s]}", first ? "" : "\n      ");
}

static void verify_json(const char *user, const char *home, enum repl_noc_status verdict,
			const struct repl_noc_copy *c, size_t n, struct evbuffer *out)
{
	evbuffer_add_printf(out, "{\n  \"user\": ");
	jstr(out, user);
	evbuffer_add_printf(out, ",\n  \"home\": ");
	jstr(out, home);
	evbuffer_add_printf(out, ",\n  \"result\": \"%s\",\n  \"copies\": [",
			    repl_noc_status_name(verdict));
	for (size_t k = 0; k < n; k++) {
		evbuffer_add_printf(out, "%s\n    ", k > 0 ? "," : "");
		json_copy(out, &c[0], &c[k]);
	}
	evbuffer_add_printf(out, "%s]\n}\n", n > 0 ? "\n  " : "");
}

int repl_noc_render_verify(const char *user, const char *home, enum repl_noc_status verdict,
			   const struct repl_noc_copy *c, size_t n, bool json,
			   struct evbuffer *out)
{
	size_t before = evbuffer_get_length(out);

	if (json)
		verify_json(user, home, verdict, c, n, out);
	else
		verify_text(user, home, verdict, c, n, out);
	/* evbuffer_add only fails on out of memory: nothing added means that */
	return evbuffer_get_length(out) > before ? 0 : -1;
}

/* ---- lag --cluster --------------------------------------------------------------------- */

static void ago(char *buf, size_t sz, int64_t ms, int64_t now_ms)
{
	if (ms <= 0)
		snprintf(buf, sz, "never");
	else
		snprintf(buf, sz, "%.1fs ago", now_ms > ms ? (double)(now_ms - ms) / 1000.0 : 0.0);
}

static void lag_text(const struct repl_noc_lag *l, size_t n, int64_t now_ms, struct evbuffer *out)
{
	char a[32];

	evbuffer_add_printf(out, "ORIGIN\tMIRROR\tSTATE\tLAST\tSENT\tAPPLIED\tBEHIND\tBYTES\tSECONDS"
			    "\tLAST ACK\tERROR\n");
	for (size_t k = 0; k < n; k++) {
		if (!l[k].reached || l[k].n == 0) {
			tfield(out, l[k].pop);
			evbuffer_add_printf(out, "\t-\t%s\t-\t-\t-\t-\t-\t-\t-\t",
					    l[k].reached ? "none" : "unreachable");
			tfield(out, l[k].reached ? "no mirror chosen" : l[k].error);
			evbuffer_add(out, "\n", 1);
			continue;
		}
		for (size_t i = 0; i < l[k].n; i++) {
			const struct repl_mirror_info *m = &l[k].m[i];

			ago(a, sizeof(a), m->last_ack_ms, now_ms);
			tfield(out, l[k].pop);
			evbuffer_add(out, "\t", 1);
			tfield(out, m->peer);
			evbuffer_add_printf(out, "\t%s\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64
					    "\t%" PRIu64 "\t%.1f\t%s\t", replicator_state_name(m->state),
					    m->last_seq, m->sent_seq, m->applied_seq, m->records_behind,
					    m->bytes_behind, m->seconds_behind, a);
			tfield(out, m->last_error);
			evbuffer_add(out, "\n", 1);
		}
	}
}

static void lag_json_mirror(struct evbuffer *out, const struct repl_mirror_info *m, int64_t now_ms)
{
	evbuffer_add_printf(out, "{\"mirror\": ");
	jstr(out, m->peer);
	evbuffer_add_printf(out, ", \"pinned\": %s, \"state\": \"%s\", \"since\": %" PRId64
			    ", \"last_seq\": %" PRIu64 ", \"sent_seq\": %" PRIu64
			    ", \"applied_seq\": %" PRIu64 ", \"records_behind\": %" PRIu64
			    ", \"bytes_behind\": %" PRIu64 ", \"seconds_behind\": %.3f"
			    ", \"last_ack\": ", m->pinned ? "true" : "false",
			    replicator_state_name(m->state), m->since, m->last_seq, m->sent_seq,
			    m->applied_seq, m->records_behind, m->bytes_behind, m->seconds_behind);
	if (m->last_ack_ms > 0)
		evbuffer_add_printf(out, "%.3f, \"last_ack_age\": %.3f",
				    (double)m->last_ack_ms / 1000.0,
				    now_ms > m->last_ack_ms ? (double)(now_ms - m->last_ack_ms) / 1000.0
				    : 0.0);
	else
		evbuffer_add_printf(out, "null, \"last_ack_age\": null");
	evbuffer_add_printf(out, ", \"reconnects\": %" PRIu64 ", \"last_error\": ", m->reconnects);
	jstr_or_null(out, m->last_error);
	evbuffer_add(out, "}", 1);
}

static void lag_json(const struct repl_noc_lag *l, size_t n, int64_t now_ms, struct evbuffer *out)
{
	evbuffer_add_printf(out, "{\n  \"pops\": [");
	for (size_t k = 0; k < n; k++) {
		evbuffer_add_printf(out, "%s\n    {\"pop\": ", k > 0 ? "," : "");
		jstr(out, l[k].pop);
		evbuffer_add_printf(out, ", \"reachable\": %s, \"error\": ",
				    l[k].reached ? "true" : "false");
		jstr_or_null(out, l[k].reached ? NULL : l[k].error);
		evbuffer_add_printf(out, ", \"mirrors\": [");
		for (size_t i = 0; i < l[k].n && l[k].reached; i++) {
			evbuffer_add_printf(out, "%s\n      ", i > 0 ? "," : "");
			lag_json_mirror(out, &l[k].m[i], now_ms);
		}
		evbuffer_add_printf(out, "%s]}", l[k].reached && l[k].n > 0 ? "\n    " : "");
	}
	evbuffer_add_printf(out, "%s]\n}\n", n > 0 ? "\n  " : "");
}

int repl_noc_render_lag(const struct repl_noc_lag *l, size_t n, int64_t now_ms, bool json,
			struct evbuffer *out)
{
	size_t before = evbuffer_get_length(out);

	if (json)
		lag_json(l, n, now_ms, out);
	else
		lag_text(l, n, now_ms, out);
	return evbuffer_get_length(out) > before ? 0 : -1;
}
