/*
 * imap_cmd_idle.c - IDLE (RFC 2177).
 *
 * The command stays current while idling; the core keeps reading in
 * line mode (IMAP_IN_IDLE) and hands every line to imap_idle_line().
 * Updates while idling come from the change observer (imap_view.c):
 * a session in IDLE syncs and writes as soon as the store reports a
 * change to its mailbox, expunges included (RFC 2177 allows them).
 * The autologout timer keeps running (RFC 2177: clients re-issue IDLE
 * at least every 29 minutes).
 */
#include <inttypes.h>

#include "imap_session.h"
#include "log.h"

void imap_cmd_idle(struct imap_session *s, struct imap_command *cmd)
{
	if (s->state == IMAP_ST_SELECTED) {
		int err = imap_view_sync(s, true);
		if (err != STORE_OK)
			log_err("imap.sync_failed", "sid=%" PRIu64 " user=%s error=\"%s\"", s->serial,
				s->username, store_strerror(err));
	}
	s->idling = true;
	s->in_mode = IMAP_IN_IDLE;
	imap_writes(s, "+ idling\r\n");
}

void imap_idle_line(struct imap_session *s, const char *line, size_t len)
{
	s->idling = false;
	if (imap_is_done_line(line, len))
		imap_cmd_done(s, "OK", "IDLE terminated");
	else
		imap_cmd_done(s, "BAD", "Expected DONE");
}
