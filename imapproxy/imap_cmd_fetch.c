/*
 * imap_cmd_fetch.c - [UID] FETCH (RFC 3501 6.4.5, 6.4.8; CONDSTORE and
 * QRESYNC modifiers, RFC 7162 3.1.4 / 3.2.6).
 *
 * Shape.  The handler resolves the set against the view, decides which
 * body items are wanted and, if any of them sets \Seen (BODY[...] without
 * PEEK, RFC822, RFC822.TEXT) in a read-write mailbox, first stores +FLAGS
 * (\Seen) for the messages that lack it, in one store write; the FETCH
 * responses of those messages then carry the new FLAGS (and MODSEQ under
 * CONDSTORE).  After that the command is resumable (imap_session.h, way
 * 3): fetch_step() writes message after message and returns whenever the
 * output is above TRANSPORT_OUTPUT_HIGH; the core calls it again from the
 * drained callback.
 *
 * One message.  Everything that needs the MIME structure (ENVELOPE, BODY,
 * BODYSTRUCTURE, the location of every BODY[section]) is worked out first,
 * from the blob stored with the body (store_msg_read_meta; a body without
 * one is parsed on the spot with mime_parse), before a byte of the
 * response is written.  Then the response is written item by item; a
 * section is a byte range of the message as served and is streamed
 * window by window: each window (at most FETCH_WINDOW bytes) is copied
 * out of the store's map inside a store_msg_read callback, and between
 * windows the output's fill level is checked, so a 50 MB body never
 * holds more than about TRANSPORT_OUTPUT_HIGH + FETCH_WINDOW bytes of
 * this session's memory.  HEADER.FIELDS(.NOT) is filtered in one go (it
 * is bounded by the header's size).
 *
 * A message expunged by another session but not yet announced stays in
 * the view: FLAGS/UID/MODSEQ/INTERNALDATE/RFC822.SIZE are answered from
 * the view, anything needing the text is left out and the command ends
 * with NO [EXPUNGEISSUED] (RFC 5530).  If a message disappears in the
 * middle of a literal (the store says NOTFOUND for a later window) the
 * rest of the literal is padded with spaces to keep the protocol in step;
 * the client learns of the expunge at the next command anyway.
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
#include "mime.h"
#include "store.h"

/* Most bytes of a literal copied per store read. */
#define FETCH_WINDOW (256 * 1024)
/* Messages looked at per step when nothing is written (CHANGEDSINCE
 * skipping a big mailbox), so a step stays short. */
#define FETCH_SKIP_BATCH 4096

enum plan_kind {
	PLAN_NIL,		/* no such part: NIL */
	PLAN_EMPTY,		/* defined as empty: "" */
	PLAN_RANGE,		/* a byte range of the served message */
	PLAN_FILTER,		/* HEADER.FIELDS(.NOT) of the header range */
};

/* One body item of the request, in the order asked for. */
struct fitem {
	const struct imap_fetch_body *b;	/* NULL for RFC822* */
	const char *name;		/* "RFC822", "RFC822.HEADER", "RFC822.TEXT" */
	enum imap_section_kind kind;	/* for RFC822*: ALL, HEADER, TEXT */
	bool sets_seen;
	bool needs_mime;		/* not the whole message */
};

/* Where item k's bytes are for the current message. */
struct plan {
	enum plan_kind kind;
	uint64_t off, len;		/* RANGE: before partial; FILTER: header */
};

struct fetch_state {
	struct imap_range *r;		/* resolved sequence ranges */
	size_t n_r;
	size_t ri;			/* current range */
	uint32_t next_seq;		/* next message to start */

	struct fitem *items;
	size_t n_items;
	uint32_t simple;		/* IMAP_FETCH_* without RFC822* */
	bool want_mime;			/* some item needs the MIME structure */
	bool want_text;			/* some item needs the text */

	/* CHANGEDSINCE */
	bool changedsince;
	uint64_t since;

	/* messages whose \Seen this command set: ascending UIDs */
	uint32_t *seen_uids;
	size_t n_seen;

	/* the message being written */
	bool in_msg;
	bool need_sp;			/* an item was written: next needs SP */
	uint32_t uid;
	size_t k;			/* next item */
	bool lit_open;			/* item k-1's literal is streaming */
	uint64_t lit_pos, lit_left;	/* served offset, bytes still due */
	bool lit_pad;			/* message gone: pad the rest */
	struct plan *plans;		/* n_items */

	struct imap_buf meta;		/* " ENVELOPE (...) BODY..." */
	struct imap_buf tmp;		/* HEADER.FIELDS output */

	bool expunge_issued;		/* some message could not be read */
	bool failed;			/* store error */
	uint64_t bytes;			/* literal bytes written */
};

static void state_free(void *p)
{
	struct fetch_state *st = p;

	imap_buf_free(&st->meta);
	imap_buf_free(&st->tmp);
	free(st->seen_uids);
	/* the rest lives in the command's arena */
}

static bool uid_in(const uint32_t *v, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid] < uid)
			lo = mid + 1;
		else if (v[mid] > uid)
			hi = mid;
		else
			return true;
	}
	return false;
}

/* ---- preparing one message -------------------------------------------------- */

struct mime_job {
	struct fetch_state *st;
	const struct imap_msg *m;
	bool have_prefix;
	uint64_t prefix_len;
	int rc;			/* 0, or -1: allocation / corrupt */
	bool no_meta;
};

/* Fill st->meta and st->plans from the decoded structure. */
static int plan_from_mime(struct fetch_state *st, const struct mime_msg *mm, uint64_t prefix_len)
{
	imap_buf_reset(&st->meta);
	if (st->simple & IMAP_FETCH_ENVELOPE) {
		imap_buf_adds(&st->meta, " ENVELOPE ");
		if (imap_render_envelope(mm, &st->meta) < 0)
			return -1;
	}
	if (st->simple & IMAP_FETCH_BODY) {
		imap_buf_adds(&st->meta, " BODY ");
		if (imap_render_body(mm, false, &st->meta) < 0)
			return -1;
	}
	if (st->simple & IMAP_FETCH_BODYSTRUCTURE) {
		imap_buf_adds(&st->meta, " BODYSTRUCTURE ");
		if (imap_render_body(mm, true, &st->meta) < 0)
			return -1;
	}
	for (size_t k = 0; k < st->n_items; k++) {
		const struct fitem *it = &st->items[k];
		struct plan *pl = &st->plans[k];
		struct imap_section sec;
		struct imap_byterange br;
		const char *err;

		if (!it->needs_mime)
			continue;
		if (it->b != NULL) {
			if (imap_fetch_section(it->b, &sec, &err) < 0)
				return -1;	/* checked at the start: cannot happen */
		} else {
			memset(&sec, 0, sizeof(sec));
			sec.kind = it->kind == IMAP_SECTION_HEADER ? IMAP_SECT_HEADER : IMAP_SECT_TEXT;
		}
		switch (imap_section_locate(mm, prefix_len, &sec, &br)) {
		case IMAP_LOC_OK:
			pl->kind = sec.kind == IMAP_SECT_FIELDS || sec.kind == IMAP_SECT_FIELDS_NOT
					   ? PLAN_FILTER : PLAN_RANGE;
			pl->off = br.off;
			pl->len = br.len;
			break;
		case IMAP_LOC_EMPTY:
			pl->kind = PLAN_EMPTY;
			break;
		case IMAP_LOC_NOPART:
		default:
			pl->kind = PLAN_NIL;
			break;
		}
	}
	return st->meta.failed ? -1 : 0;
}

static int meta_cb(const void *meta, size_t len, void *arg)
{
	struct mime_job *j = arg;
	struct mime_msg *mm = NULL;

	if (meta == NULL || len == 0 || mime_blob_decode(meta, len, &mm) < 0) {
		j->no_meta = true;
		return 0;
	}
	if (mm->msg_len > j->m->size) {
		/* the blob does not describe this message: parse instead */
		mime_msg_free(&mm);
		j->no_meta = true;
		return 0;
	}
	j->rc = plan_from_mime(j->st, mm, j->m->size - mm->msg_len);
	mime_msg_free(&mm);
	return 0;
}

/* No stored blob: parse the body now (costs one pass, no copy). */
static int parse_cb(const char *prefix, size_t prefix_len, const char *body, size_t body_len,
		    void *arg)
{
	struct mime_job *j = arg;
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	struct mime_msg *mm = NULL;

	(void)prefix;
	if (mime_parse(body, body_len, &blob, &blob_len) < 0 ||
	    mime_blob_decode(blob, blob_len, &mm) < 0) {
		free(blob);
		j->rc = -1;
		return 0;
	}
	j->rc = plan_from_mime(j->st, mm, prefix_len);
	mime_msg_free(&mm);
	free(blob);
	return 0;
}

/* Work out the plans of message m.  0; 1 if the message is gone from the
 * store; -1 on a store or allocation error. */
static int prepare_msg(struct imap_session *s, struct fetch_state *st, const struct imap_msg *m)
{
	struct mime_job j = { .st = st, .m = m };
	int err;

	for (size_t k = 0; k < st->n_items; k++) {
		st->plans[k].kind = PLAN_RANGE;
		st->plans[k].off = 0;
		st->plans[k].len = m->size;	/* whole message */
	}
	imap_buf_reset(&st->meta);
	if (!st->want_mime)
		return 0;
	err = store_msg_read_meta(s->store, s->userid, s->view.mboxid, m->uid, meta_cb, &j);
	if (err == STORE_OK && j.no_meta) {
		log_debug("imap.fetch_parse", "sid=%" PRIu64 " mbox=%" PRIu32 " uid=%" PRIu32
			  " reason=no_stored_structure", s->serial, s->view.mboxid, m->uid);
		j.rc = 0;
		err = store_msg_read(s->store, s->userid, s->view.mboxid, m->uid, parse_cb, &j);
	}
	if (err == STORE_NOTFOUND)
		return 1;
	if (err != STORE_OK || j.rc < 0) {
		log_err("imap.fetch_failed", "sid=%" PRIu64 " user=%s mbox=%" PRIu32 " uid=%" PRIu32
			" error=\"%s\"", s->serial, s->username, s->view.mboxid, m->uid,
			err != STORE_OK ? store_strerror(err) : "mime structure");
		return -1;
	}
	return 0;
}

/* ---- writing ------------------------------------------------------------ */

static void write_item_name(struct imap_session *s, struct fetch_state *st,
			    const struct fitem *it)
{
	if (st->need_sp)
		imap_writes(s, " ");
	st->need_sp = true;
	if (it->b == NULL) {
		imap_writef(s, "%s ", it->name);
		return;
	}
	imap_writes(s, "BODY[");
	imap_write(s, it->b->section.s, it->b->section.len);
	imap_writes(s, "]");
	if (it->b->partial)
		imap_writef(s, "<%" PRIu32 ">", it->b->partial_start);
	imap_writes(s, " ");
}

struct window_job {
	struct imap_session *s;
	struct fetch_state *st;
	const struct imap_section *sec;	/* FILTER only */
	const struct plan *pl;
	bool ok;
};

/* Copy the next window of the open literal. */
static int window_cb(const char *prefix, size_t prefix_len, const char *body, size_t body_len,
		     void *arg)
{
	struct window_job *w = arg;
	struct fetch_state *st = w->st;
	uint64_t n = st->lit_left < FETCH_WINDOW ? st->lit_left : FETCH_WINDOW;
	const char *p[2];
	size_t l[2];

	if (!imap_msg_pieces(prefix, prefix_len, body, body_len, st->lit_pos, n, p, l))
		return 0;	/* w->ok stays false: pad */
	imap_write(w->s, p[0], l[0]);
	if (l[1] > 0)
		imap_write(w->s, p[1], l[1]);
	st->lit_pos += n;
	st->lit_left -= n;
	st->bytes += n;
	w->ok = true;
	return 0;
}

static void write_pad(struct imap_session *s, struct fetch_state *st)
{
	char spaces[1024];
	uint64_t budget = FETCH_WINDOW;

	memset(spaces, ' ', sizeof(spaces));

	while (st->lit_left > 0 && budget > 0) {
		size_t n = st->lit_left < sizeof(spaces) ? (size_t)st->lit_left : sizeof(spaces);
		imap_write(s, spaces, n);
		st->lit_left -= n;
		budget -= n < budget ? n : budget;
	}
}

/* Stream the open literal until it is done or the output is full.
 * true when done. */
static bool stream_literal(struct imap_session *s, struct fetch_state *st)
{
	while (st->lit_left > 0) {
		if (imap_output_full(s) || s->out_failed || !imap_session_alive(s))
			return false;
		if (st->lit_pad) {
			write_pad(s, st);
			continue;
		}
		struct window_job w = { .s = s, .st = st };
		int err = store_msg_read(s->store, s->userid, s->view.mboxid, st->uid, window_cb,
					 &w);
		if (err != STORE_OK || !w.ok) {
			log_warn("imap.fetch_gone", "sid=%" PRIu64 " user=%s mbox=%" PRIu32
				 " uid=%" PRIu32 " missing=%" PRIu64 " error=\"%s\"", s->serial,
				 s->username, s->view.mboxid, st->uid, st->lit_left,
				 err != STORE_OK ? store_strerror(err) : "range");
			st->lit_pad = true;
			st->expunge_issued = true;
		}
	}
	st->lit_open = false;
	return true;
}

static int filter_cb(const char *prefix, size_t prefix_len, const char *body, size_t body_len,
		     void *arg)
{
	struct window_job *w = arg;
	struct imap_msgdata md = { prefix, prefix_len, body, body_len };
	struct imap_byterange br = { w->pl->off, w->pl->len };

	imap_buf_reset(&w->st->tmp);
	w->ok = imap_header_filter(&md, &br, w->sec, &w->st->tmp) == 0;
	return 0;
}

/* Write the value of item k (its name is written).  true when the item is
 * complete, false when a literal is left streaming. */
static bool write_item_value(struct imap_session *s, struct fetch_state *st, size_t k)
{
	const struct fitem *it = &st->items[k];
	const struct plan *pl = &st->plans[k];
	bool partial = it->b != NULL && it->b->partial;
	uint32_t pstart = partial ? it->b->partial_start : 0;
	uint32_t pcount = partial ? it->b->partial_count : 0;
	uint64_t skip, n;

	switch (pl->kind) {
	case PLAN_NIL:
		imap_writes(s, "NIL");
		return true;
	case PLAN_EMPTY:
		imap_writes(s, "\"\"");
		return true;
	case PLAN_FILTER: {
		struct imap_section sec;
		const char *err;
		struct window_job w = { .s = s, .st = st, .sec = &sec, .pl = pl };
		int rc;

		if (imap_fetch_section(it->b, &sec, &err) < 0)
			rc = STORE_INVAL;
		else
			rc = store_msg_read(s->store, s->userid, s->view.mboxid, st->uid,
					    filter_cb, &w);
		if (rc != STORE_OK || !w.ok) {
			/* gone since it was planned: an empty header */
			imap_buf_reset(&st->tmp);
			imap_buf_adds(&st->tmp, "\r\n");
			st->expunge_issued = true;
		}
		imap_partial_slice(st->tmp.len, partial, pstart, pcount, &skip, &n);
		imap_writef(s, "{%" PRIu64 "}\r\n", n);
		imap_write(s, st->tmp.data + skip, (size_t)n);
		st->bytes += n;
		return true;
	}
	case PLAN_RANGE:
	default:
		imap_partial_slice(pl->len, partial, pstart, pcount, &skip, &n);
		imap_writef(s, "{%" PRIu64 "}\r\n", n);
		st->lit_open = true;
		st->lit_pad = false;
		st->lit_pos = pl->off + skip;
		st->lit_left = n;
		return stream_literal(s, st);
	}
}

static const char *sep(bool *first)
{
	const char *r = *first ? "" : " ";

	*first = false;
	return r;
}

/* Items answered from the view. */
static void write_view_items(struct imap_session *s, struct fetch_state *st,
			     const struct imap_msg *m, bool seen_changed, bool *first)
{
	if (st->simple & IMAP_FETCH_UID)
		imap_writef(s, "%sUID %" PRIu32, sep(first), m->uid);
	if ((st->simple & IMAP_FETCH_FLAGS) || seen_changed) {
		imap_writef(s, "%sFLAGS ", sep(first));
		imap_write_flags(s, &s->view, m->flags, m->keywords);
	}
	if (st->simple & IMAP_FETCH_INTERNALDATE) {
		char d[IMAP_DATE_TIME_LEN + 1];
		imap_format_date_time(m->internaldate, imap_tz_offset(m->internaldate), d);
		imap_writef(s, "%sINTERNALDATE \"%s\"", sep(first), d);
	}
	if (st->simple & IMAP_FETCH_RFC822_SIZE)
		imap_writef(s, "%sRFC822.SIZE %" PRIu64, sep(first), m->size);
	if ((st->simple & IMAP_FETCH_MODSEQ) || (seen_changed && s->condstore))
		imap_writef(s, "%sMODSEQ (%" PRIu64 ")", sep(first), imap_modseq_out(m->modseq));
}

/* Start message seq: work out its plans and write the response up to
 * the body items (continue_msg writes those). */
static void start_msg(struct imap_session *s, struct fetch_state *st, uint32_t seq)
{
	const struct imap_msg *m = imap_view_msg(&s->view, seq);
	bool seen_changed, first = true;
	int rc;

	if (m == NULL)
		return;
	seen_changed = st->n_seen > 0 && uid_in(st->seen_uids, st->n_seen, m->uid);
	if (st->changedsince && m->modseq <= st->since && !seen_changed)
		return;
	if (m->expunged && (st->want_mime || st->want_text)) {
		st->expunge_issued = true;
		return;
	}
	imap_buf_reset(&st->meta);
	rc = m->expunged ? 0 : prepare_msg(s, st, m);
	if (rc == 1) {
		st->expunge_issued = true;
		return;
	}
	if (rc < 0) {
		st->failed = true;
		return;
	}
	imap_writef(s, "* %" PRIu32 " FETCH (", seq);
	write_view_items(s, st, m, seen_changed, &first);
	if (st->meta.len > 0) {
		/* st->meta starts with a space */
		imap_write(s, st->meta.data + (first ? 1 : 0), st->meta.len - (first ? 1 : 0));
		first = false;
	}
	st->in_msg = true;
	st->need_sp = !first;
	st->uid = m->uid;
	st->k = 0;
	st->lit_open = false;
}

/* Go on with the message in progress.  true when its response is done. */
static bool continue_msg(struct imap_session *s, struct fetch_state *st)
{
	if (st->lit_open && !stream_literal(s, st))
		return false;
	while (st->k < st->n_items) {
		size_t k = st->k++;

		if (imap_output_full(s)) {
			st->k--;
			return false;
		}
		write_item_name(s, st, &st->items[k]);
		if (!write_item_value(s, st, k))
			return false;
	}
	imap_writes(s, ")\r\n");
	st->in_msg = false;
	return true;
}

static void fetch_finish(struct imap_session *s, struct fetch_state *st)
{
	s->fetch_bytes += st->bytes;
	if (st->failed)
		imap_cmd_done(s, "NO", "[SERVERBUG] Some messages could not be read");
	else if (st->expunge_issued)
		imap_cmd_done(s, "NO", "[EXPUNGEISSUED] Some messages were expunged meanwhile");
	else
		imap_cmd_done(s, "OK", "Fetch completed");
}

static void fetch_step(struct imap_session *s, struct imap_command *cmd)
{
	struct fetch_state *st = s->cmd_state;
	unsigned looked = 0;

	(void)cmd;
	for (;;) {
		if (s->out_failed || !imap_session_alive(s))
			return;
		if (st->in_msg) {
			if (!continue_msg(s, st))
				return;
		}
		if (imap_output_full(s) || looked >= FETCH_SKIP_BATCH)
			return;	/* resumed by the core */
		if (st->ri >= st->n_r) {
			fetch_finish(s, st);
			return;
		}
		uint32_t seq = st->next_seq;
		if (seq < st->r[st->ri].lo)
			seq = st->r[st->ri].lo;
		if (seq == st->r[st->ri].hi) {
			st->ri++;
			st->next_seq = 0;
		} else {
			st->next_seq = seq + 1;
		}
		looked++;
		start_msg(s, st, seq);	/* its items follow at the loop top */
	}
}

/* Run the resumable part from a callback (outside the core's loop):
 * write until done or the output is full; then the drained callback
 * resumes it. */
static void kick(struct imap_session *s)
{
	struct imap_command *cmd = s->cmd;

	while (s->cmd == cmd && cmd != NULL && s->resume != NULL && imap_session_alive(s) &&
	       !s->out_failed) {
		if (imap_output_full(s)) {
			s->out_blocked = true;
			return;
		}
		s->resume(s, cmd);
	}
}

/* ---- implicit \Seen ------------------------------------------------------ */

static void seen_cb(int err, const struct store_flag_result *res, size_t n_res, void *arg)
{
	struct imap_session *s = arg;
	struct fetch_state *st;

	if (!imap_async_end(s)) {
		imap_session_leave(s);
		return;
	}
	st = s->cmd_state;
	if (err != STORE_OK) {
		imap_cmd_done_store_error(s, err, "Cannot set \\Seen");
		imap_session_leave(s);
		return;
	}
	free(st->seen_uids);
	st->seen_uids = NULL;
	st->n_seen = 0;
	if (n_res > 0) {
		st->seen_uids = malloc(n_res * sizeof(*st->seen_uids));
		if (st->seen_uids == NULL) {
			imap_cmd_done(s, "NO", "[SERVERBUG] Out of memory");
			imap_session_leave(s);
			return;
		}
	}
	for (size_t i = 0; i < n_res; i++) {
		uint32_t seq = imap_view_seq(&s->view, res[i].uid);
		struct imap_msg *m = imap_view_msg(&s->view, seq);

		if (m == NULL || res[i].status != STORE_FLAG_CHANGED)
			continue;
		m->flags = (res[i].flags & ~(uint32_t)IMAP_FLAG_RECENT) |
			   (m->flags & IMAP_FLAG_RECENT);
		m->keywords = res[i].keywords;
		m->modseq = res[i].modseq;
		st->seen_uids[st->n_seen++] = res[i].uid;
	}
	s->resume = fetch_step;
	kick(s);
	imap_session_leave(s);
}

/* UIDs in the resolved ranges without \Seen (malloc'ed; NULL, 0 if none). */
static int collect_unseen(struct imap_session *s, struct fetch_state *st, uint32_t **uids_r,
			  size_t *n_r)
{
	size_t n = 0, cap = 0;
	uint32_t *v = NULL;

	for (size_t i = 0; i < st->n_r; i++)
		for (uint32_t seq = st->r[i].lo;; seq++) {
			const struct imap_msg *m = imap_view_msg(&s->view, seq);

			if (m != NULL && !m->expunged && !(m->flags & IMAP_FLAG_SEEN) &&
			    !(st->changedsince && m->modseq <= st->since)) {
				if (n == cap) {
					size_t nc = cap ? cap * 2 : 64;
					uint32_t *nv = realloc(v, nc * sizeof(*nv));
					if (nv == NULL) {
						free(v);
						return -1;
					}
					v = nv;
					cap = nc;
				}
				v[n++] = m->uid;
			}
			if (seq == st->r[i].hi)
				break;
		}
	*uids_r = v;
	*n_r = n;
	return 0;
}

/* ---- VANISHED (EARLIER) ---------------------------------------------------- */

struct vanished_job {
	const struct imap_view *v;
	const struct imap_seqset *set;
	uint32_t max_uid;
	struct imap_buf out;
	struct imap_setbuilder sb;
	bool oom;
};

static int vanished_cb(uint32_t uid, void *arg)
{
	struct vanished_job *j = arg;

	if (!imap_seqset_contains(j->set, j->max_uid, uid))
		return 0;
	/* still in the view: announced later as a normal expunge */
	if (imap_view_seq(j->v, uid) != 0)
		return 0;
	if (imap_setbuilder_add(&j->sb, &j->out, uid) < 0) {
		j->oom = true;
		return 1;
	}
	return 0;
}

static int write_vanished_earlier(struct imap_session *s, const struct imap_args_fetch *a)
{
	struct vanished_job j = { .v = &s->view, .set = a->set };
	int err;

	j.max_uid = s->view.uidnext > 0 ? s->view.uidnext - 1 : 0;
	if (s->view.n > 0 && s->view.msgs[s->view.n - 1].uid > j.max_uid)
		j.max_uid = s->view.msgs[s->view.n - 1].uid;
	imap_buf_init(&j.out);
	err = store_vanished_foreach(s->store, s->userid, s->view.mboxid,
				     imap_modseq_in(a->changedsince), vanished_cb, &j);
	if (j.oom || (err == STORE_OK && imap_setbuilder_finish(&j.sb, &j.out) < 0))
		err = STORE_IO;
	if (err == STORE_OK && j.out.len > 0) {
		imap_writes(s, "* VANISHED (EARLIER) ");
		imap_write(s, j.out.data, j.out.len);
		imap_writes(s, "\r\n");
	}
	imap_buf_free(&j.out);
	return err;
}

/* ---- the handler ---------------------------------------------------------- */

static int add_item(struct fetch_state *st, size_t cap, const struct imap_fetch_body *b,
		    const char *name, enum imap_section_kind kind, bool sets_seen)
{
	struct fitem *it;

	if (st->n_items >= cap)
		return -1;
	it = &st->items[st->n_items++];
	it->b = b;
	it->name = name;
	it->kind = b != NULL ? b->kind : kind;
	it->sets_seen = sets_seen;
	it->needs_mime = b != NULL ? !(b->kind == IMAP_SECTION_ALL && b->n_part == 0)
				   : kind != IMAP_SECTION_ALL;
	if (it->needs_mime)
		st->want_mime = true;
	st->want_text = true;
	return 0;
}

void imap_cmd_fetch(struct imap_session *s, struct imap_command *cmd)
{
	const struct imap_args_fetch *a = &cmd->u.fetch;
	struct fetch_state *st;
	const char *error = NULL;
	size_t cap;
	bool sets_seen = false;

	/* Messages that arrived meanwhile become visible before the set is
	 * resolved (RFC 3501 5.2: "* n EXISTS" as soon as observed; never an
	 * EXPUNGE here, 7.4.1). */
	imap_view_sync(s, false);
	if (a->vanished && !(s->enabled & IMAP_ENABLE_QRESYNC)) {
		imap_cmd_done(s, "BAD", "VANISHED needs ENABLE QRESYNC");
		return;
	}
	if (a->vanished && (!cmd->uid || !a->has_changedsince)) {
		imap_cmd_done(s, "BAD", "VANISHED needs UID FETCH with CHANGEDSINCE");
		return;
	}
	st = imap_arena_zalloc(cmd->arena, sizeof(*st));
	cap = a->n_bodies + 3;
	if (st == NULL ||
	    (st->items = imap_arena_zalloc(cmd->arena, cap * sizeof(*st->items))) == NULL ||
	    (st->plans = imap_arena_zalloc(cmd->arena, cap * sizeof(*st->plans))) == NULL) {
		imap_cmd_done(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	imap_buf_init(&st->meta);
	imap_buf_init(&st->tmp);
	s->cmd_state = st;
	s->cmd_state_free = state_free;

	if (imap_view_resolve(&s->view, a->set, cmd->uid, cmd->arena, &st->r, &st->n_r,
			      &error) < 0) {
		imap_cmd_done(s, "BAD", "%s", error);
		return;
	}
	st->simple = a->items & ~(uint32_t)(IMAP_FETCH_RFC822 | IMAP_FETCH_RFC822_HEADER |
					     IMAP_FETCH_RFC822_TEXT);
	/* UID FETCH always answers UID (RFC 3501 6.4.8); so does every FETCH
	 * once QRESYNC is enabled, so the client can key its cache by UID
	 * (RFC 7162 3.2). */
	if (cmd->uid || (s->enabled & IMAP_ENABLE_QRESYNC))
		st->simple |= IMAP_FETCH_UID;
	if (a->has_changedsince)
		st->simple |= IMAP_FETCH_MODSEQ;
	if (st->simple & (IMAP_FETCH_ENVELOPE | IMAP_FETCH_BODY | IMAP_FETCH_BODYSTRUCTURE))
		st->want_mime = true;
	for (size_t i = 0; i < a->n_bodies; i++) {
		struct imap_section sec;
		if (imap_fetch_section(&a->bodies[i], &sec, &error) < 0) {
			imap_cmd_done(s, "BAD", "%s", error);
			return;
		}
		add_item(st, cap, &a->bodies[i], NULL, IMAP_SECTION_ALL,
			 !a->bodies[i].peek);
	}
	if (a->items & IMAP_FETCH_RFC822_HEADER)
		add_item(st, cap, NULL, "RFC822.HEADER", IMAP_SECTION_HEADER, false);
	if (a->items & IMAP_FETCH_RFC822_TEXT)
		add_item(st, cap, NULL, "RFC822.TEXT", IMAP_SECTION_TEXT, true);
	if (a->items & IMAP_FETCH_RFC822)
		add_item(st, cap, NULL, "RFC822", IMAP_SECTION_ALL, true);
	for (size_t k = 0; k < st->n_items; k++)
		sets_seen |= st->items[k].sets_seen;
	if (st->simple & IMAP_FETCH_MODSEQ)
		imap_condstore_enable(s);
	st->changedsince = a->has_changedsince;
	st->since = imap_modseq_in(a->changedsince);	/* a store value */
	st->next_seq = 0;

	if (a->vanished) {
		int err = write_vanished_earlier(s, a);
		if (err != STORE_OK) {
			imap_cmd_done_store_error(s, err, "Cannot read expunged messages");
			return;
		}
	}

	if (sets_seen && !s->view.readonly) {
		uint32_t *uids = NULL;
		size_t n = 0;

		if (collect_unseen(s, st, &uids, &n) < 0) {
			imap_cmd_done(s, "NO", "[SERVERBUG] Out of memory");
			return;
		}
		if (n > 0) {
			imap_async_begin(s);
			store_msg_store_flags(s->store, s->userid, s->view.mboxid, uids, n,
					      STORE_FLAGS_ADD, STORE_F_SEEN, NULL, 0, 0, seen_cb, s);
			free(uids);	/* the store copied them */
			return;		/* seen_cb goes on */
		}
		free(uids);
	}
	s->resume = fetch_step;
	fetch_step(s, cmd);
}
