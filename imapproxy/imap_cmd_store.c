/*
 * imap_cmd_store.c - [UID] STORE (RFC 3501 6.4.6) with keywords and the
 * CONDSTORE UNCHANGEDSINCE modifier (RFC 7162 3.1.3).
 *
 * The set is resolved against the view and the UIDs go to the store in
 * one write (store_msg_store_flags: +FLAGS / -FLAGS / FLAGS with system
 * flags and keyword names; new names enter the mailbox's keyword table).
 * When it is durable the callback updates the view's messages in place
 * (flags, keywords, modseq - \Recent stays this session's) and writes
 * the untagged FETCH responses:
 *   - without .SILENT: "* n FETCH (FLAGS (...) [UID u] [MODSEQ (m)])"
 *     for every message of the set still there (changed or not), UID for
 *     UID STORE and under QRESYNC, MODSEQ once CONDSTORE is in effect;
 *   - with .SILENT: nothing, except under CONDSTORE, where each message
 *     this STORE changed is reported as "* n FETCH ([UID u] MODSEQ (m))"
 *     so the client's cached modseq stays right (RFC 7162 3.1.3,
 *     erratum 3401's example).
 * Messages whose modseq is above UNCHANGEDSINCE are left alone and named
 * in "OK [MODIFIED set]" (sequence numbers, or UIDs for UID STORE).
 * UNCHANGEDSINCE 0 fails for every message without asking the store.
 * If the write added keywords, "* FLAGS" and "* OK [PERMANENTFLAGS]" go
 * out first so the client knows the names.  Read-only (EXAMINE): NO.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_body.h"
#include "imap_msgutil.h"
#include "imap_session.h"
#include "log.h"
#include "store.h"

static void write_fetch(struct imap_session *s, bool uid, bool silent, uint32_t seq,
			const struct imap_msg *m)
{
	bool sp = false;

	imap_writef(s, "* %" PRIu32 " FETCH (", seq);
	if (!silent) {
		imap_writes(s, "FLAGS ");
		imap_write_flags(s, &s->view, m->flags, m->keywords);
		sp = true;
	}
	if (uid) {
		imap_writef(s, "%sUID %" PRIu32, sp ? " " : "", m->uid);
		sp = true;
	}
	if (s->condstore)
		imap_writef(s, "%sMODSEQ (%" PRIu64 ")", sp ? " " : "",
			    imap_modseq_out(m->modseq));
	imap_writes(s, ")\r\n");
}

/* Every message of the set failed UNCHANGEDSINCE 0 (or 1). */
static void all_modified(struct imap_session *s, struct imap_command *cmd,
			 const struct imap_range *r, size_t n_r)
{
	struct imap_buf set;
	struct imap_setbuilder sb = { 0 };

	imap_buf_init(&set);
	for (size_t i = 0; i < n_r; i++)
		for (uint32_t seq = r[i].lo;; seq++) {
			const struct imap_msg *m = imap_view_msg(&s->view, seq);
			if (m != NULL)
				imap_setbuilder_add(&sb, &set, cmd->uid ? m->uid : seq);
			if (seq == r[i].hi)
				break;
		}
	imap_setbuilder_finish(&sb, &set);
	if (set.failed)
		imap_cmd_done(s, "NO", "[SERVERBUG] Out of memory");
	else if (set.len == 0)
		imap_cmd_done(s, "OK", "Store completed");
	else
		imap_cmd_done(s, "OK", "[MODIFIED %.*s] Conditional STORE failed", (int)set.len,
			      set.data);
	imap_buf_free(&set);
}

static bool unknown_keyword_bits(const struct imap_view *v, uint64_t kw)
{
	for (unsigned i = 0; i < 64; i++)
		if ((kw >> i) & 1u && (i >= v->n_kw || v->kw_names[i] == NULL))
			return true;
	return false;
}

static void store_cb(int err, const struct store_flag_result *res, size_t n_res, void *arg)
{
	struct imap_session *s = arg;
	struct imap_command *cmd;
	const struct imap_args_store *a;
	struct imap_buf mod;
	struct imap_setbuilder sb = { 0 };
	bool reload = false, with_uid;

	if (!imap_async_end(s)) {
		imap_session_leave(s);
		return;
	}
	cmd = s->cmd;
	a = &cmd->u.store;
	with_uid = cmd->uid || (s->enabled & IMAP_ENABLE_QRESYNC);
	if (err != STORE_OK) {
		if (err == STORE_FULL)
			imap_cmd_done(s, "NO", "[LIMIT] Too many keywords in this mailbox");
		else if (err == STORE_INVAL)
			imap_cmd_done(s, "BAD", "Invalid keyword");
		else
			imap_cmd_done_store_error(s, err, "Cannot store flags");
		imap_session_leave(s);
		return;
	}
	for (size_t i = 0; i < n_res && !reload; i++)
		reload = unknown_keyword_bits(&s->view, res[i].keywords);
	if (reload) {
		int kerr = imap_view_reload_keywords(s, true);
		if (kerr != STORE_OK)
			log_err("imap.keywords", "sid=%" PRIu64 " user=%s error=\"%s\"", s->serial,
				s->username, store_strerror(kerr));
	}
	imap_buf_init(&mod);
	for (size_t i = 0; i < n_res; i++) {
		uint32_t seq = imap_view_seq(&s->view, res[i].uid);
		struct imap_msg *m = imap_view_msg(&s->view, seq);

		if (m == NULL)
			continue;	/* not known to this client */
		if (res[i].status == STORE_FLAG_MODIFIED) {
			imap_setbuilder_add(&sb, &mod, cmd->uid ? m->uid : seq);
			continue;
		}
		m->flags = (res[i].flags & ~(uint32_t)IMAP_FLAG_RECENT) |
			   (m->flags & IMAP_FLAG_RECENT);
		m->keywords = res[i].keywords;
		m->modseq = res[i].modseq;
		if (!a->silent)
			write_fetch(s, with_uid, false, seq, m);
		else if (s->condstore && res[i].status == STORE_FLAG_CHANGED)
			write_fetch(s, with_uid, true, seq, m);
	}
	imap_setbuilder_finish(&sb, &mod);
	if (mod.failed)
		imap_cmd_done(s, "NO", "[SERVERBUG] Out of memory");
	else if (mod.len > 0)
		imap_cmd_done(s, "OK", "[MODIFIED %.*s] Conditional STORE failed", (int)mod.len,
			      mod.data);
	else
		imap_cmd_done(s, "OK", "Store completed");
	imap_buf_free(&mod);
	imap_session_leave(s);
}

void imap_cmd_store(struct imap_session *s, struct imap_command *cmd)
{
	const struct imap_args_store *a = &cmd->u.store;
	struct imap_range *r;
	size_t n_r, n = 0;
	const char *error = NULL;
	uint32_t *uids;
	const char **kw = NULL;
	enum store_flag_op op;

	/* Messages that arrived meanwhile become visible before the set is
	 * resolved (RFC 3501 5.2: "* n EXISTS" as soon as observed; never an
	 * EXPUNGE here, 7.4.1). */
	imap_view_sync(s, false);
	if (a->has_unchangedsince)
		imap_condstore_enable(s);
	if (imap_view_resolve(&s->view, a->set, cmd->uid, cmd->arena, &r, &n_r, &error) < 0) {
		imap_cmd_done(s, "BAD", "%s", error);
		return;
	}
	if (s->view.readonly) {
		imap_cmd_done(s, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	/* Every message has a wire modseq >= 2 (imap_modseq_out), so
	 * UNCHANGEDSINCE 0 and 1 fail for all of them; above that the store
	 * gets the store value (imap_modseq_in), never its "no condition" 0. */
	if (a->has_unchangedsince && a->unchangedsince <= 1) {
		all_modified(s, cmd, r, n_r);
		return;
	}
	for (size_t k = 0; k < a->flags.n_keywords; k++)
		if (store_keyword_check(a->flags.keywords[k].s) != STORE_OK) {
			imap_cmd_done(s, "BAD", "Invalid keyword");
			return;
		}
	uint64_t total = 0;
	for (size_t i = 0; i < n_r; i++)
		total += (uint64_t)r[i].hi - r[i].lo + 1;
	if (total == 0) {
		imap_cmd_done(s, "OK", "Store completed");
		return;
	}
	uids = imap_arena_alloc(cmd->arena, total * sizeof(*uids));
	if (a->flags.n_keywords > 0)
		kw = imap_arena_alloc(cmd->arena, a->flags.n_keywords * sizeof(*kw));
	if (uids == NULL || (a->flags.n_keywords > 0 && kw == NULL)) {
		imap_cmd_done(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	for (size_t i = 0; i < n_r; i++)
		for (uint32_t seq = r[i].lo;; seq++) {
			const struct imap_msg *m = imap_view_msg(&s->view, seq);
			if (m != NULL && !m->expunged)
				uids[n++] = m->uid;
			if (seq == r[i].hi)
				break;
		}
	if (n == 0) {
		imap_cmd_done(s, "NO", "[EXPUNGEISSUED] The messages were expunged meanwhile");
		return;
	}
	for (size_t k = 0; k < a->flags.n_keywords; k++)
		kw[k] = a->flags.keywords[k].s;
	op = a->mode == IMAP_STORE_ADD ? STORE_FLAGS_ADD
	     : a->mode == IMAP_STORE_REMOVE ? STORE_FLAGS_REMOVE : STORE_FLAGS_SET;
	imap_async_begin(s);
	store_msg_store_flags(s->store, s->userid, s->view.mboxid, uids, n, op,
			      a->flags.system & STORE_F_MASK & ~(uint32_t)STORE_F_RECENT, kw,
			      a->flags.n_keywords,
			      a->has_unchangedsince ? imap_modseq_in(a->unchangedsince) : 0,
			      store_cb, s);
}
