/*
 * imap_cmd_expunge.c - EXPUNGE (RFC 3501 6.4.3), UID EXPUNGE (UIDPLUS,
 * RFC 4315 2.1) and CLOSE (RFC 3501 6.4.2: the same expunge, silently,
 * then back to the authenticated state).
 *
 * Which messages: those of this session's view whose \Deleted flag is set
 * in the store now (a snapshot read, so a \Deleted another session set or
 * cleared a moment ago counts as it is), and for UID EXPUNGE only those
 * whose UID is in the given set.  Messages that arrived since the view
 * was last synced are never expunged behind the client's back.  They go
 * to store_msg_expunge() in one durable write.
 *
 * Responses: EXPUNGE does not write them itself.  imap_cmd_done() runs
 * the view sync, which announces every message gone from the store - this
 * command's and anyone else's - highest sequence number first ("* n
 * EXPUNGE" stays valid for the numbers below it), or as one "* VANISHED
 * uid-set" once QRESYNC is enabled (RFC 7162 3.2.10), before the tagged
 * OK.  CLOSE has no untagged responses (its table row skips the sync): it
 * leaves the selected state with imap_view_close() once the expunge is
 * durable.  A read-only mailbox: EXPUNGE answers NO, CLOSE expunges
 * nothing (RFC 3501).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "imap_session.h"
#include "store.h"

struct collect {
	const struct imap_view *v;
	const struct imap_seqset *set;	/* UID EXPUNGE, else NULL */
	uint32_t max_uid;
	uint32_t *uids;
	size_t n, cap;
	bool oom;
};

static int collect_cb(const struct store_msg *m, void *arg)
{
	struct collect *c = arg;

	if (m->uid > c->max_uid)
		return 1;	/* ascending UIDs: the rest is newer than the view */
	if (!(m->flags & STORE_F_DELETED))
		return 0;
	if (c->set != NULL && !imap_seqset_contains(c->set, c->max_uid, m->uid))
		return 0;
	if (imap_view_seq(c->v, m->uid) == 0)
		return 0;
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 64;
		uint32_t *nv = realloc(c->uids, nc * sizeof(*nv));
		if (nv == NULL) {
			c->oom = true;
			return 1;
		}
		c->uids = nv;
		c->cap = nc;
	}
	c->uids[c->n++] = m->uid;
	return 0;
}

/* The UIDs to expunge (malloc'ed into *c).  STORE_OK or an error. */
static int collect_deleted(struct imap_session *s, const struct imap_seqset *set,
			   struct collect *c)
{
	int err;

	c->v = &s->view;
	c->set = set;
	c->max_uid = s->view.n > 0 ? s->view.msgs[s->view.n - 1].uid : 0;
	if (c->max_uid == 0)
		return STORE_OK;
	err = store_msg_foreach(s->store, s->userid, s->view.mboxid, collect_cb, c);
	if (c->oom)
		return STORE_IO;
	return err == 1 ? STORE_OK : err;
}

static void expunge_cb(int err, void *arg)
{
	struct imap_session *s = arg;

	if (!imap_async_end(s)) {
		imap_session_leave(s);
		return;
	}
	if (err != STORE_OK)
		imap_cmd_done_store_error(s, err, "Cannot expunge");
	else
		imap_cmd_done(s, "OK", "Expunge completed");
	imap_session_leave(s);
}

void imap_cmd_expunge(struct imap_session *s, struct imap_command *cmd)
{
	struct collect c = { 0 };
	int err;

	if (s->view.readonly) {
		imap_cmd_done(s, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	err = collect_deleted(s, cmd->uid ? cmd->u.uid_expunge : NULL, &c);
	if (err != STORE_OK) {
		free(c.uids);
		imap_cmd_done_store_error(s, err, "Cannot expunge");
		return;
	}
	if (c.n == 0) {
		free(c.uids);
		imap_cmd_done(s, "OK", "Expunge completed");
		return;
	}
	imap_async_begin(s);
	store_msg_expunge(s->store, s->userid, s->view.mboxid, c.uids, c.n, expunge_cb, s);
	free(c.uids);	/* the store copied them */
}

static void close_cb(int err, void *arg)
{
	struct imap_session *s = arg;

	if (!imap_async_end(s)) {
		imap_session_leave(s);
		return;
	}
	if (err != STORE_OK) {
		/* still selected: the client may try again */
		imap_cmd_done_store_error(s, err, "Cannot expunge");
	} else {
		imap_view_close(s);
		imap_cmd_done(s, "OK", "Close completed");
	}
	imap_session_leave(s);
}

void imap_cmd_close(struct imap_session *s, struct imap_command *cmd)
{
	struct collect c = { 0 };
	int err;

	(void)cmd;
	if (s->view.readonly) {
		imap_view_close(s);
		imap_cmd_done(s, "OK", "Close completed");
		return;
	}
	err = collect_deleted(s, NULL, &c);
	if (err != STORE_OK) {
		free(c.uids);
		imap_cmd_done_store_error(s, err, "Cannot expunge");
		return;
	}
	if (c.n == 0) {
		free(c.uids);
		imap_view_close(s);
		imap_cmd_done(s, "OK", "Close completed");
		return;
	}
	imap_async_begin(s);
	store_msg_expunge(s->store, s->userid, s->view.mboxid, c.uids, c.n, close_cb, s);
	free(c.uids);
}
