/*
 * imap_cmd_append.c - APPEND (RFC 3501 6.3.11) with flags, date-time,
 * LITERAL+ and UIDPLUS's APPENDUID (RFC 4315).
 *
 * The core has already taken the message literal (its size limit is
 * cfg->max_message_size; over it the reader answers NO [TOOBIG]).  Here
 * the message is parsed once with mime_parse() so that ENVELOPE and
 * BODYSTRUCTURE never need the text again, and stored with its MIME blob
 * by store_msg_append() (the store copies everything before it returns,
 * so the blob is freed at once).  When the write is durable the command
 * completes with "OK [APPENDUID uidvalidity uid]".  Errors: a missing
 * mailbox is NO [TRYCREATE] (RFC 3501 says the client may then CREATE
 * and retry), a full quota NO [OVERQUOTA], a keyword table that is full
 * NO [LIMIT].  If the target is the selected mailbox the new message is
 * announced by the view sync imap_cmd_done() runs (* n EXISTS).
 *
 * replication_ack mirror (repl_ack.h): the OK waits until a mirror has
 * applied the commit too; the command stays asynchronous meanwhile (the
 * session struct lives until the waiter's callback, which always comes:
 * an ack, degraded state, or shutdown).  With replication_degraded
 * tempfail and no mirror in reach the answer is NO [UNAVAILABLE] (the
 * message is stored: a client that retries makes a duplicate).  Only
 * appends to this POP's own store wait (a mirror store serving a failed
 * home has no mirrors of its own).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "imap_session.h"
#include "log.h"
#include "mime.h"
#include "node.h"
#include "repl_ack.h"
#include "store.h"

/* A durable append waiting for a mirror. */
struct append_wait {
	struct imap_session *s;
	uint32_t uidvalidity, uid;
};

static void append_ok(struct imap_session *s, enum repl_ack_result r, uint32_t uidvalidity,
		      uint32_t uid)
{
	if (repl_ack_ok(r))
		imap_cmd_done(s, "OK", "[APPENDUID %" PRIu32 " %" PRIu32 "] Append completed",
			      uidvalidity, uid);
	else
		imap_cmd_done(s, "NO", "[UNAVAILABLE] Stored, but no mirror acknowledged it; "
			      "try again later");
}

static void append_acked(void *arg, enum repl_ack_result r)
{
	struct append_wait *aw = arg;
	struct imap_session *s = aw->s;
	uint32_t uidvalidity = aw->uidvalidity, uid = aw->uid;

	free(aw);
	if (!imap_async_end(s)) {
		imap_session_leave(s);
		return;
	}
	append_ok(s, r, uidvalidity, uid);
	imap_session_leave(s);
}

/* Wait for a mirror (the command stays asynchronous): true, or false
 * with the answer to give now in *r. */
static bool append_wait(struct imap_session *s, uint32_t uidvalidity, uint32_t uid,
			enum repl_ack_result *r)
{
	struct append_wait *aw;

	*r = REPL_ACK_LOCAL;
	if (s->store != s->n->store)
		return false;
	aw = malloc(sizeof(*aw));
	if (aw == NULL) {
		*r = REPL_ACK_TEMPFAIL;
		return false;
	}
	*aw = (struct append_wait){ s, uidvalidity, uid };
	if (repl_ack_wait_commit(s->n, append_acked, aw, r) == NULL) {
		free(aw);	/* answered at once */
		return false;
	}
	imap_async_begin(s);	/* the callback never runs before this */
	return true;
}

static void append_cb(int err, uint32_t uidvalidity, uint32_t uid, void *arg)
{
	struct imap_session *s = arg;
	enum repl_ack_result r;

	if (!imap_async_end(s)) {
		imap_session_leave(s);
		return;
	}
	switch (err) {
	case STORE_OK:
		if (!append_wait(s, uidvalidity, uid, &r))
			append_ok(s, r, uidvalidity, uid);
		break;
	case STORE_NOTFOUND:
		imap_cmd_done(s, "NO", "[TRYCREATE] Mailbox does not exist");
		break;
	case STORE_QUOTA:
		imap_cmd_done(s, "NO", "[OVERQUOTA] Quota exceeded");
		break;
	case STORE_INVAL:
		imap_cmd_done(s, "NO", "Invalid flags or keywords");
		break;
	default:
		imap_cmd_done_store_error(s, err, "Cannot append");
		break;
	}
	imap_session_leave(s);
}

void imap_cmd_append(struct imap_session *s, struct imap_command *cmd)
{
	const struct imap_args_append *a = &cmd->u.append;
	struct store_mailbox mb;
	const char **kw = NULL;
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	int err;

	if (a->msg_len == 0) {
		imap_cmd_done(s, "NO", "Cannot append an empty message");
		return;
	}
	err = store_mailbox_get(s->store, s->userid, a->mailbox.s, &mb);
	if (err == STORE_NOTFOUND) {
		imap_cmd_done(s, "NO", "[TRYCREATE] Mailbox does not exist");
		return;
	}
	if (err != STORE_OK) {
		imap_cmd_done_store_error(s, err, "Cannot open the mailbox");
		return;
	}
	if (a->flags.n_keywords > 0) {
		kw = imap_arena_alloc(cmd->arena, a->flags.n_keywords * sizeof(*kw));
		if (kw == NULL) {
			imap_cmd_done(s, "NO", "[SERVERBUG] Out of memory");
			return;
		}
		for (size_t i = 0; i < a->flags.n_keywords; i++) {
			if (store_keyword_check(a->flags.keywords[i].s) != STORE_OK) {
				imap_cmd_done(s, "BAD", "Invalid keyword");
				return;
			}
			kw[i] = a->flags.keywords[i].s;
		}
	}
	/* Without a blob FETCH parses the message on demand: never fatal. */
	if (mime_parse(a->msg, a->msg_len, &blob, &blob_len) < 0) {
		log_warn("imap.append_mime", "sid=%" PRIu64 " user=%s size=%zu", s->serial,
			 s->username, a->msg_len);
		blob = NULL;
		blob_len = 0;
	} else if (blob_len > STORE_META_MAX) {
		free(blob);
		blob = NULL;
		blob_len = 0;
	}
	imap_async_begin(s);
	store_msg_append(s->store, s->userid, mb.id, a->msg, a->msg_len, blob, blob_len,
			 a->flags.system & STORE_F_MASK & ~(uint32_t)STORE_F_RECENT, kw,
			 a->flags.n_keywords, a->has_date ? a->date : 0, append_cb, s);
	free(blob);	/* the store copied it */
}
