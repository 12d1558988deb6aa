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
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "imap_session.h"
#include "log.h"
#include "mime.h"
#include "store.h"

static void append_cb(int err, uint32_t uidvalidity, uint32_t uid, void *arg)
{
	struct imap_session *s = arg;

	if (!imap_async_end(s)) {
		imap_session_leave(s);
		return;
	}
	switch (err) {
	case STORE_OK:
		imap_cmd_done(s, "OK", "[APPENDUID %" PRIu32 " %" PRIu32 "] Append completed",
			      uidvalidity, uid);
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
	err = store_mailbox_get(s->n->store, s->userid, a->mailbox.s, &mb);
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
	store_msg_append(s->n->store, s->userid, mb.id, a->msg, a->msg_len, blob, blob_len,
			 a->flags.system & STORE_F_MASK & ~(uint32_t)STORE_F_RECENT, kw,
			 a->flags.n_keywords, a->has_date ? a->date : 0, append_cb, s);
	free(blob);	/* the store copied it */
}
