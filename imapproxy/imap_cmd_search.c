/*
 * imap_cmd_search.c - [UID] SEARCH (RFC 3501 6.4.4), with the ESEARCH
 * RETURN options (RFC 4731) and the CONDSTORE MODSEQ key and response
 * addition (RFC 7162 3.1.5).
 *
 * The parser has already built the search tree and refused charsets other
 * than US-ASCII and UTF-8 (NO [BADCHARSET (US-ASCII UTF-8)]).  Here each
 * message of the view is described to imap_search_match() from the view's
 * numbers (flags, keywords bound to the mailbox's table, size, dates,
 * modseq).  The text is only read when a key needs it: the first match
 * runs with a text source that only notes the need; if the result
 * depended on the text the match is run again inside a store_msg_read
 * callback, where the message's two pieces (per-recipient prefix and the
 * shared body) are handed to the evaluator straight from the store's map,
 * without a copy.  AND children come cheapest first, so a message that
 * fails a flag or date key is never read.
 *
 * BODY and TEXT search the decoded text parts (imap_search.h), which
 * needs the MIME structure stored with the body at delivery: when the
 * evaluator asks for it (get_mime, inside the text callback) the blob is
 * read with store_msg_read_meta (a second read transaction, which the
 * store's MDB_NOTLS environment allows), copied into a buffer kept for the
 * whole SEARCH and decoded; a body without a blob (or with one that does
 * not describe it) is parsed there and then, as FETCH does.
 *
 * Resumable: at most SEARCH_BATCH messages per step; the result line is
 * written as it grows ("* SEARCH" then " n" per hit), or for ESEARCH kept
 * as MIN/MAX/COUNT and an ALL set built incrementally.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_body.h"
#include "imap_msgutil.h"
#include "imap_search.h"
#include "imap_session.h"
#include "log.h"
#include "mime.h"
#include "store.h"

/* Messages matched per step. */
#define SEARCH_BATCH 2000
/* Message text scanned per step (each text key reads the message:
 * bytes x keys are counted). */
#define SEARCH_TEXT_BUDGET (8u << 20)
/* Most keys that scan the text (HEADER, SENT*, BODY, TEXT) in one
 * SEARCH: one message costs (its size x these keys) without a break. */
#define SEARCH_TEXT_KEYS_MAX 64

struct search_state {
	uint32_t next;			/* next sequence number */
	uint32_t max_uid;
	bool started;			/* "* SEARCH" written */
	uint64_t max_modseq;		/* of the matches (MODSEQ key), as shown */
	/* ESEARCH */
	bool esearch;
	uint32_t min, max;
	uint64_t count;
	struct imap_buf all;
	struct imap_setbuilder sb;
	bool failed;
	uint64_t step_text;		/* text bytes read in this step */
	unsigned text_keys;		/* keys that scan the text, >= 1 */
	struct imap_buf blob;		/* copy of the current MIME blob */
};

/* A blob buffer bigger than this is freed after its message. */
#define SEARCH_BLOB_KEEP (64u << 10)

static void state_free(void *p)
{
	struct search_state *st = p;

	imap_buf_free(&st->all);
	imap_buf_free(&st->blob);
}

/* The first pass: note that the text is needed, offer none. */
static int note_text(void *ctx, struct imap_search_text *t)
{
	bool *needed = ctx;

	*needed = true;
	memset(t, 0, sizeof(*t));
	return -1;
}

struct text_job {
	struct imap_session *s;
	struct search_state *st;
	const struct imap_search_node *tree;
	struct imap_search_msg *msg;
	const struct imap_msg *m;
	bool result;
	uint64_t len;			/* bytes handed to the evaluator */
	/* get_mime */
	const char *body;
	size_t prefix_len, body_len;
	struct mime_msg *mm;		/* freed after the match */
	uint8_t *parsed;		/* blob made by mime_parse, or NULL */
	bool no_blob;
	bool mime_failed;
};

static int blob_cb(const void *meta, size_t len, void *arg)
{
	struct text_job *j = arg;

	imap_buf_reset(&j->st->blob);
	if (meta == NULL || len == 0) {
		j->no_blob = true;
		return STORE_OK;
	}
	if (imap_buf_add(&j->st->blob, meta, len) < 0)
		j->mime_failed = true;
	return STORE_OK;
}

/* imap_search_msg.get_mime: the stored structure, else a fresh parse. */
static int get_mime(void *ctx, const struct mime_msg **mm_r, uint64_t *off_r)
{
	struct text_job *j = ctx;
	struct imap_session *s = j->s;
	int err;

	err = store_msg_read_meta(s->store, s->userid, s->view.mboxid, j->m->uid, blob_cb, j);
	if (err == STORE_NOTFOUND)
		return -1;	/* expunged meanwhile */
	if (err != STORE_OK || j->mime_failed) {
		log_err("imap.search_mime", "sid=%" PRIu64 " user=%s mbox=%" PRIu32 " uid=%" PRIu32
			" error=\"%s\"", s->serial, s->username, s->view.mboxid, j->m->uid,
			err != STORE_OK ? store_strerror(err) : "out of memory");
		j->st->failed = true;
		return -1;
	}
	if (!j->no_blob &&
	    (mime_blob_decode(j->st->blob.data, j->st->blob.len, &j->mm) < 0 ||
	     j->mm->msg_len != j->body_len)) {
		mime_msg_free(&j->mm);	/* does not describe this body */
		j->no_blob = true;
	}
	if (j->no_blob) {
		size_t blob_len = 0;
		log_debug("imap.search_parse", "sid=%" PRIu64 " mbox=%" PRIu32 " uid=%" PRIu32
			  " reason=no_stored_structure", s->serial, s->view.mboxid, j->m->uid);
		if (mime_parse(j->body, j->body_len, &j->parsed, &blob_len) < 0 ||
		    mime_blob_decode(j->parsed, blob_len, &j->mm) < 0) {
			log_err("imap.search_mime", "sid=%" PRIu64 " user=%s mbox=%" PRIu32
				" uid=%" PRIu32 " error=\"mime structure\"", s->serial,
				s->username, s->view.mboxid, j->m->uid);
			j->st->failed = true;
			return -1;
		}
	}
	*mm_r = j->mm;
	*off_r = j->prefix_len;
	return 0;
}

static int text_cb(const char *prefix, size_t prefix_len, const char *body, size_t body_len,
		   void *arg)
{
	struct text_job *j = arg;

	j->msg->get_text = NULL;
	j->msg->text.p[0] = prefix;
	j->msg->text.len[0] = prefix_len;
	j->msg->text.p[1] = body;
	j->msg->text.len[1] = body_len;
	j->msg->get_mime = get_mime;
	j->msg->ctx = j;
	j->body = body;
	j->prefix_len = prefix_len;
	j->body_len = body_len;
	j->len = (uint64_t)prefix_len + body_len;
	j->result = imap_search_match(j->tree, j->msg);
	mime_msg_free(&j->mm);
	free(j->parsed);
	j->parsed = NULL;
	if (j->st->blob.cap > SEARCH_BLOB_KEEP)
		imap_buf_free(&j->st->blob);
	return 0;
}

static bool match_one(struct imap_session *s, struct search_state *st,
		      const struct imap_search_node *tree, uint32_t seq)
{
	const struct imap_msg *m = imap_view_msg(&s->view, seq);
	struct imap_search_msg msg;
	bool needed = false;
	bool r;

	memset(&msg, 0, sizeof(msg));
	msg.seq = seq;
	msg.uid = m->uid;
	msg.max_seq = (uint32_t)s->view.n;
	msg.max_uid = st->max_uid;
	msg.flags = m->flags;
	msg.keywords = m->keywords;
	msg.size = m->size;
	msg.modseq = imap_modseq_out(m->modseq);	/* the MODSEQ key is a wire value */
	msg.internaldate = m->internaldate;
	msg.tz_offset = imap_tz_offset(m->internaldate);
	msg.get_text = note_text;
	msg.ctx = &needed;
	r = imap_search_match(tree, &msg);
	if (!needed || m->expunged)
		return r;	/* decided without the text (or it is gone) */

	struct text_job j = { .s = s, .st = st, .tree = tree, .msg = &msg, .m = m };
	int err = store_msg_read(s->store, s->userid, s->view.mboxid, m->uid, text_cb, &j);
	st->step_text += j.len * st->text_keys;
	if (err == STORE_OK)
		return j.result;
	if (err != STORE_NOTFOUND) {
		log_err("imap.search_read", "sid=%" PRIu64 " user=%s mbox=%" PRIu32 " uid=%" PRIu32
			" error=\"%s\"", s->serial, s->username, s->view.mboxid, m->uid,
			store_strerror(err));
		st->failed = true;
	}
	return r;	/* text unavailable: text keys do not match */
}

static void search_finish(struct imap_session *s, struct imap_command *cmd,
			  struct search_state *st)
{
	const struct imap_args_search *a = &cmd->u.search;

	if (st->esearch) {
		imap_writef(s, "* ESEARCH (TAG \"%s\")%s", cmd->tag, cmd->uid ? " UID" : "");
		if (st->count > 0) {
			if (a->return_opts & IMAP_SEARCH_RET_MIN)
				imap_writef(s, " MIN %" PRIu32, st->min);
			if (a->return_opts & IMAP_SEARCH_RET_MAX)
				imap_writef(s, " MAX %" PRIu32, st->max);
		}
		if (a->return_opts & IMAP_SEARCH_RET_COUNT)
			imap_writef(s, " COUNT %" PRIu64, st->count);
		if ((a->return_opts & IMAP_SEARCH_RET_ALL) && st->count > 0) {
			if (imap_setbuilder_finish(&st->sb, &st->all) < 0) {
				imap_writes(s, "\r\n");
				imap_cmd_done(s, "NO", "[SERVERBUG] Out of memory");
				return;
			}
			imap_writes(s, " ALL ");
			imap_write(s, st->all.data, st->all.len);
		}
		if (a->has_modseq && st->count > 0)
			imap_writef(s, " MODSEQ %" PRIu64, st->max_modseq);
		imap_writes(s, "\r\n");
	} else {
		if (!st->started)
			imap_writes(s, "* SEARCH");
		if (a->has_modseq && st->max_modseq > 0)
			imap_writef(s, " (MODSEQ %" PRIu64 ")", st->max_modseq);
		imap_writes(s, "\r\n");
	}
	if (st->failed)
		imap_cmd_done(s, "NO", "[SERVERBUG] Some messages could not be read");
	else
		imap_cmd_done(s, "OK", "Search completed");
}

static void search_step(struct imap_session *s, struct imap_command *cmd)
{
	struct search_state *st = s->cmd_state;
	const struct imap_search_node *tree = cmd->u.search.tree;
	unsigned done = 0;

	st->step_text = 0;
	while (st->next <= s->view.n) {
		uint32_t seq = st->next;

		if (done >= SEARCH_BATCH || st->step_text >= SEARCH_TEXT_BUDGET ||
		    imap_output_full(s) || s->out_failed)
			return;	/* resumed by the core */
		st->next++;
		done++;
		if (!match_one(s, st, tree, seq))
			continue;
		const struct imap_msg *m = imap_view_msg(&s->view, seq);
		uint32_t num = cmd->uid ? m->uid : seq;
		if (imap_modseq_out(m->modseq) > st->max_modseq)	/* shown as a wire value */
			st->max_modseq = imap_modseq_out(m->modseq);
		if (st->esearch) {
			if (st->count == 0)
				st->min = num;
			st->max = num;
			st->count++;
			if ((cmd->u.search.return_opts & IMAP_SEARCH_RET_ALL) &&
			    imap_setbuilder_add(&st->sb, &st->all, num) < 0) {
				imap_cmd_done(s, "NO", "[SERVERBUG] Out of memory");
				return;
			}
		} else {
			if (!st->started) {
				imap_writes(s, "* SEARCH");
				st->started = true;
			}
			imap_writef(s, " %" PRIu32, num);
		}
	}
	search_finish(s, cmd, st);
}

static unsigned count_text_keys(const struct imap_search_node *n)
{
	unsigned c = 0;

	for (; n != NULL; n = n->next) {
		switch (n->type) {
		case IMAP_SEARCH_HEADER:
		case IMAP_SEARCH_SENTBEFORE:
		case IMAP_SEARCH_SENTON:
		case IMAP_SEARCH_SENTSINCE:
		case IMAP_SEARCH_BODY:
		case IMAP_SEARCH_TEXT:
			c++;
			break;
		default:
			c += count_text_keys(n->child);
			break;
		}
	}
	return c;
}

void imap_cmd_search(struct imap_session *s, struct imap_command *cmd)
{
	struct imap_args_search *a = &cmd->u.search;
	struct search_state *st = imap_arena_zalloc(cmd->arena, sizeof(*st));

	if (st == NULL) {
		imap_cmd_done(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	imap_buf_init(&st->all);
	imap_buf_init(&st->blob);
	s->cmd_state = st;
	s->cmd_state_free = state_free;
	st->text_keys = count_text_keys(a->tree);
	if (st->text_keys > SEARCH_TEXT_KEYS_MAX) {
		imap_cmd_done(s, "NO", "[LIMIT] Too many text search keys (at most %u)",
			      SEARCH_TEXT_KEYS_MAX);
		return;
	}
	if (st->text_keys == 0)
		st->text_keys = 1;
	/* Messages that arrived meanwhile become visible before the set is
	 * resolved (RFC 3501 5.2: "* n EXISTS" as soon as observed; never an
	 * EXPUNGE here, 7.4.1). */
	imap_view_sync(s, false);
	imap_search_bind_keywords(a->tree, imap_view_keyword_lookup, &s->view);
	st->next = 1;
	st->max_uid = s->view.n > 0 ? s->view.msgs[s->view.n - 1].uid : 0;
	st->esearch = a->return_given;
	if (a->has_modseq)
		imap_condstore_enable(s);
	s->resume = search_step;
	search_step(s, cmd);
}
