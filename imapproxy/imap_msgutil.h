/*
 * imap_msgutil.h - pure helpers of the IMAP message commands (FETCH,
 * SEARCH, STORE, COPY/MOVE, EXPUNGE, APPEND in imap_cmd_*.c): no I/O, no
 * session, no store, so each is unit-tested alone
 * (tests/unit/test_imap_fetch.c, test_imap_msgcmd.c).
 */
#ifndef IMAPPROXY_IMAP_MSGUTIL_H
#define IMAPPROXY_IMAP_MSGUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_parse.h"

struct imap_buf;
struct imap_section;

/* ---- FETCH ------------------------------------------------------------ */

/* BODY[...]<start.count> (RFC 3501 6.4.5): of a section of len bytes, the
 * part to send is [*skip_r, *skip_r + *n_r): everything if !partial, else
 * count bytes from start, cut at the end; a start at or past the end gives
 * 0 bytes (the reply is then "" / {0}). */
void imap_partial_slice(uint64_t len, bool partial, uint32_t start, uint32_t count,
			uint64_t *skip_r, uint64_t *n_r);

/* Split bytes [off, off + n) of the message as served (prefix then body)
 * into at most two contiguous pieces p[0..1] / len[0..1] (unused: NULL, 0).
 * Returns false (pieces empty) if the range is not inside the message. */
bool imap_msg_pieces(const char *prefix, size_t prefix_len, const char *body, size_t body_len,
		     uint64_t off, uint64_t n, const char *p_r[2], size_t len_r[2]);

/* Fill an imap_body.h section from a parsed FETCH body item.  -1 with
 * *error_r set if it does not fit (more than IMAP_SECTION_FIELDS_MAX
 * header field names or IMAP_SECTION_PARTS_MAX part numbers).  The field
 * names point into b. */
int imap_fetch_section(const struct imap_fetch_body *b, struct imap_section *sec_r,
		       const char **error_r);

/* INTERNALDATE as RFC 3501 date-time, "dd-Mon-yyyy hh:mm:ss +zzzz" (day
 * space-padded: " 1-Feb-2026 ..."), for unix time t shown at tz seconds
 * east of UTC.  buf gets 26 characters and a NUL. */
#define IMAP_DATE_TIME_LEN 26
void imap_format_date_time(int64_t t, int32_t tz, char buf[IMAP_DATE_TIME_LEN + 1]);

/* The local time zone's offset (seconds east of UTC) at unix time t: the
 * zone INTERNALDATE is shown in and SEARCH BEFORE/ON/SINCE take the day
 * in (the store keeps unix time only).  Not pure: reads the TZ rules. */
int32_t imap_tz_offset(int64_t t);

/* ---- sets ----------------------------------------------------------------- */

/* Builds an IMAP sequence set ("1:3,7,9:12") from numbers fed in
 * ascending order (duplicates ignored), into an imap_buf.  Used for
 * COPYUID, VANISHED, [MODIFIED ...] and ESEARCH ALL.  Zero-initialize. */
struct imap_setbuilder {
	bool have;		/* a range is open */
	bool written;		/* a range was written (next needs ',') */
	uint32_t lo, hi;
	uint64_t count;		/* distinct numbers added */
};
/* Add x (>= the last one added).  -1 on allocation failure (buf->failed). */
int imap_setbuilder_add(struct imap_setbuilder *sb, struct imap_buf *out, uint32_t x);
/* Write the range still open.  -1 on allocation failure. */
int imap_setbuilder_finish(struct imap_setbuilder *sb, struct imap_buf *out);

/* Builds a set from numbers in any order that come in pairs (COPYUID
 * "source-uids dest-uids" must correspond element by element, RFC 4315):
 * writes "src dst" for n pairs, each list compressed into ranges only
 * where both run consecutively in step.  0 or -1 (allocation). */
int imap_write_uid_pairs(struct imap_buf *out, const uint32_t *src, const uint32_t *dst,
			 size_t n);

#endif
