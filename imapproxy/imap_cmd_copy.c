/*
 * imap_cmd_copy.c - [UID] COPY (RFC 3501 6.4.7, UIDPLUS RFC 4315) and
 * [UID] MOVE (RFC 6851).
 *
 * The set is resolved against the view; the UIDs of the messages still in
 * the store go to store_msg_copy() in one write (all or nothing; bodies
 * are shared, keywords remapped by name into the destination's table).
 * The destination must exist: otherwise NO [TRYCREATE] (RFC 3501), and a
 * full quota is NO [OVERQUOTA] (RFC 9208 / 5530).
 *
 * COPY answers "OK [COPYUID uidvalidity src-uids dst-uids]".  MOVE needs a
 * read-write mailbox; it sends the COPYUID in an untagged OK first, then
 * the expunges of the moved messages ("* n EXPUNGE", or "* VANISHED" with
 * QRESYNC) - written by the view sync that imap_cmd_done() runs, which
 * also reports anything else that changed - and then the tagged OK
 * (RFC 6851 3.3).  Both sides' sequence numbers stay right because the
 * view only drops messages when it writes their EXPUNGE responses.
 * Messages expunged by another session but not yet announced are left
 * out; if nothing is left the answer is NO [EXPUNGEISSUED].
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>

#include "imap_body.h"
#include "imap_msgutil.h"
#include "imap_session.h"
#include "log.h"
#include "store.h"

static void copy_cb(int err, uint32_t dst_uidvalidity, const uint32_t *src_uids,
		    const uint32_t *dst_uids, size_t n, void *arg)
{
	struct imap_session *s = arg;
	struct imap_command *cmd;
	struct imap_buf b;
	bool move;

	if (!imap_async_end(s)) {
		imap_session_leave(s);
		return;
	}
	cmd = s->cmd;
	move = cmd->id == IMAP_CMD_MOVE;
	if (err != STORE_OK) {
		if (err == STORE_NOTFOUND)
			imap_cmd_done(s, "NO", "[TRYCREATE] Mailbox does not exist");
		else if (err == STORE_QUOTA)
			imap_cmd_done(s, "NO", "[OVERQUOTA] Quota exceeded");
		else
			imap_cmd_done_store_error(s, err, move ? "Cannot move" : "Cannot copy");
		imap_session_leave(s);
		return;
	}
	imap_buf_init(&b);
	if (n > 0 && imap_write_uid_pairs(&b, src_uids, dst_uids, n) < 0) {
		imap_buf_free(&b);
		imap_cmd_done(s, "NO", "[SERVERBUG] Out of memory");
		imap_session_leave(s);
		return;
	}
	if (move) {
		if (n > 0)
			imap_writef(s, "* OK [COPYUID %" PRIu32 " %.*s] Moved UIDs\r\n",
				    dst_uidvalidity, (int)b.len, b.data);
		imap_cmd_done(s, "OK", "Move completed");
	} else if (n > 0) {
		imap_cmd_done(s, "OK", "[COPYUID %" PRIu32 " %.*s] Copy completed", dst_uidvalidity,
			      (int)b.len, b.data);
	} else {
		imap_cmd_done(s, "OK", "Copy completed");
	}
	imap_buf_free(&b);
	imap_session_leave(s);
}

/* COPY and MOVE. */
static void copy_or_move(struct imap_session *s, struct imap_command *cmd, bool move)
{
	const struct imap_args_copy *a = &cmd->u.copy;
	struct imap_range *r;
	size_t n_r, n = 0;
	const char *error = NULL;
	struct store_mailbox mb;
	uint32_t *uids;
	uint64_t total = 0;
	int err;

	/* Messages that arrived meanwhile become visible before the set is
	 * resolved (RFC 3501 5.2: "* n EXISTS" as soon as observed; never an
	 * EXPUNGE here, 7.4.1). */
	imap_view_sync(s, false);
	if (imap_view_resolve(&s->view, a->set, cmd->uid, cmd->arena, &r, &n_r, &error) < 0) {
		imap_cmd_done(s, "BAD", "%s", error);
		return;
	}
	if (move && s->view.readonly) {
		imap_cmd_done(s, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	err = store_mailbox_get(s->store, s->userid, a->mailbox.s, &mb);
	if (err == STORE_NOTFOUND) {
		imap_cmd_done(s, "NO", "[TRYCREATE] Mailbox does not exist");
		return;
	}
	if (err != STORE_OK) {
		imap_cmd_done_store_error(s, err, "Cannot open the destination");
		return;
	}
	for (size_t i = 0; i < n_r; i++)
		total += (uint64_t)r[i].hi - r[i].lo + 1;
	if (total == 0) {
		imap_cmd_done(s, "OK", move ? "Move completed" : "Copy completed");
		return;
	}
	uids = imap_arena_alloc(cmd->arena, total * sizeof(*uids));
	if (uids == NULL) {
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
	imap_async_begin(s);
	store_msg_copy(s->store, s->userid, s->view.mboxid, uids, n, mb.id, move, copy_cb, s);
}

void imap_cmd_copy(struct imap_session *s, struct imap_command *cmd)
{
	copy_or_move(s, cmd, false);
}

void imap_cmd_move(struct imap_session *s, struct imap_command *cmd)
{
	copy_or_move(s, cmd, true);
}
