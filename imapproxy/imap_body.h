/*
 * imap_body.h - IMAP views of a message's stored MIME structure: ENVELOPE,
 * BODY and BODYSTRUCTURE (RFC 3501 7.4.2) rendered from the blob that
 * popnode/mime.h produced at delivery, and BODY[section] location
 * (RFC 3501 6.4.5): which bytes of the message as served a section is.
 *
 * The message as served is the per-recipient prefix written at delivery
 * ("Return-Path: ...\r\nDelivered-To: ...\r\n", prefix_len bytes) followed
 * by the body that was parsed.  The prefix belongs to the top-level header:
 * BODY[HEADER] starts at 0 and is prefix_len bytes longer than the parsed
 * header; every other offset moves by prefix_len.  RFC822.SIZE is
 * prefix_len + the parsed length.  ENVELOPE and BODYSTRUCTURE do not depend
 * on the prefix (the top-level body's size and lines do not include it).
 *
 * Nothing here does I/O or touches the store; output is appended to a
 * struct imap_buf (a plain growable byte buffer).  Depends on libc and
 * popnode/mime_*.c only (it is fuzzed with them).
 *
 * Typical FETCH use:
 *
 *	struct mime_msg *m;
 *	if (mime_blob_decode(blob, blob_len, &m) < 0) -> "NO" / log corrupt
 *	imap_render_envelope(m, &buf);            "(" date subject ... ")"
 *	imap_render_body(m, true, &buf);          BODYSTRUCTURE value
 *	imap_section_parse("1.2.MIME", 8, &sec);  from BODY[...]
 *	imap_section_locate(m, prefix_len, &sec, &range) -> stream the range
 *	   (or for HEADER.FIELDS: imap_header_filter(&md, &range, &sec, &buf))
 *	mime_msg_free(&m);
 */
#ifndef IMAPPROXY_IMAP_BODY_H
#define IMAPPROXY_IMAP_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mime.h"

/* ---- output buffer ------------------------------------------------------ */

/* A growable buffer.  Zero-initialize it (or imap_buf_init).  After an
 * allocation failure `failed` is set, further appends do nothing, and the
 * functions below return -1. */
struct imap_buf {
	char *data;
	size_t len;
	size_t cap;
	bool failed;
};

void imap_buf_init(struct imap_buf *b);
/* Free the storage; the buffer is empty and usable again afterwards. */
void imap_buf_free(struct imap_buf *b);
/* Forget the contents, keep the storage (and clear `failed`). */
void imap_buf_reset(struct imap_buf *b);
/* Append n bytes / a C string.  0, or -1 on allocation failure. */
int imap_buf_add(struct imap_buf *b, const void *p, size_t n);
int imap_buf_adds(struct imap_buf *b, const char *s);

/* Append an IMAP string for the n bytes at p: NIL if p is NULL, a quoted
 * string if every byte is printable 7-bit ASCII or tab, otherwise (8-bit,
 * CR, LF, NUL, other controls, '"' or '\\', as Dovecot does) a literal
 * "{n}\r\n" + bytes.  0 or -1. */
int imap_write_nstring(struct imap_buf *b, const char *p, size_t n);
/* Same for a struct mime_str. */
int imap_write_mstr(struct imap_buf *b, struct mime_str s);

/* ---- ENVELOPE / BODY / BODYSTRUCTURE ------------------------------------- */

/* Append the ENVELOPE of the message (part 0): "(date subject from sender
 * reply-to to cc bcc in-reply-to message-id)".  Absent fields are NIL,
 * address lists ((name adl mailbox host) ...) with groups as
 * (NIL NIL "group" NIL) ... (NIL NIL NIL NIL); Sender and Reply-To take
 * From's value when absent or empty (RFC 3501).  0 or -1 (allocation). */
int imap_render_envelope(const struct mime_msg *m, struct imap_buf *out);

/* The same for any part carrying an envelope (part->has_envelope).
 * -1 if it has none. */
int imap_render_part_envelope(const struct mime_part *p, struct imap_buf *out);

/* Append the BODY (extended = false) or BODYSTRUCTURE (extended = true)
 * value of the message: body-type-1part or body-type-mpart, with
 * extension data (body-fld-md5 / params, dsp, lang, loc) when extended.
 * 0 or -1 (allocation). */
int imap_render_body(const struct mime_msg *m, bool extended, struct imap_buf *out);

/* ---- BODY[section] ---------------------------------------------------- */

#define IMAP_SECTION_PARTS_MAX 64	/* numbers in "1.2.3..." */
#define IMAP_SECTION_FIELDS_MAX 128	/* names in HEADER.FIELDS (...) */

enum imap_sect_kind {
	IMAP_SECT_BODY = 0,	/* BODY[] (whole message) or BODY[1.2] (content) */
	IMAP_SECT_HEADER,	/* [part.]HEADER */
	IMAP_SECT_TEXT,		/* [part.]TEXT */
	IMAP_SECT_MIME,		/* part.MIME (needs a part number) */
	IMAP_SECT_FIELDS,	/* [part.]HEADER.FIELDS (names) */
	IMAP_SECT_FIELDS_NOT,	/* [part.]HEADER.FIELDS.NOT (names) */
};

struct imap_sect_name {
	const char *p;		/* field name, no quotes; points into caller text */
	size_t len;
};

struct imap_section {
	uint32_t part[IMAP_SECTION_PARTS_MAX];	/* each >= 1 */
	size_t n_part;
	enum imap_sect_kind kind;
	struct imap_sect_name fields[IMAP_SECTION_FIELDS_MAX];
	size_t n_fields;	/* >= 1 for FIELDS / FIELDS_NOT */
};

/* Parse the text between "[" and "]" of a FETCH BODY[...] item, e.g. "",
 * "1.2", "HEADER", "2.MIME", "1.HEADER.FIELDS (From \"To\")".  Keywords are
 * case-insensitive.  Field names are atoms or quoted strings without
 * backslash escapes; sec_r->fields point into s, so s must outlive sec_r.
 * (A command parser that met literals may fill struct imap_section
 * itself.)  Returns 0, or -1 with *error_r set to a static reason for a
 * BAD reply. */
int imap_section_parse(const char *s, size_t len, struct imap_section *sec_r,
		       const char **error_r);

/* Append the canonical form of a section for the FETCH response, e.g.
 * "1.HEADER.FIELDS (FROM TO)" (keywords and field names upper-cased).
 * 0 or -1. */
int imap_section_write(const struct imap_section *sec, struct imap_buf *out);

/* A byte range of the message as served (prefix + parsed message). */
struct imap_byterange {
	uint64_t off;
	uint64_t len;
};

enum imap_loc {
	IMAP_LOC_OK = 0,
	IMAP_LOC_NOPART,	/* no such part: answer NIL (as Dovecot does) */
	IMAP_LOC_EMPTY,		/* HEADER/TEXT/HEADER.FIELDS of a part that is
				 * not a message/rfc822: answer "" (Dovecot) */
};

/* Locate sec in the message described by m, served with a prefix of
 * prefix_len bytes.  Part numbers follow RFC 3501 6.4.5:
 *   - a multipart's children are numbered 1..n;
 *   - a non-multipart message (or embedded message) has exactly part 1,
 *     its body;
 *   - a non-message leaf body part N of a multipart also answers to N.1
 *     (as Dovecot does; not to N.1.1, and the top-level message has no
 *     "1.1");
 *   - a message/rfc822 part N: N.HEADER, N.TEXT, N.HEADER.FIELDS refer to
 *     the embedded message, N.1... to the embedded message's parts;
 *   - N.MIME is the part's own MIME header (for part 1 of a non-multipart
 *     message: the message header);
 *   - HEADER/TEXT/HEADER.FIELDS on a part that is not a message/rfc822:
 *     IMAP_LOC_EMPTY (RFC 3501 does not define them).
 * The range: BODY[] = the whole message; [HEADER], [N.MIME] and the
 * header to filter for HEADER.FIELDS(.NOT) include the blank line ending
 * the header; [TEXT] and [N] are bodies.  For FIELDS/FIELDS_NOT the range
 * is the header to give to imap_header_filter().
 * Returns IMAP_LOC_OK with *r filled, IMAP_LOC_NOPART or IMAP_LOC_EMPTY
 * (then *r is {0, 0}). */
enum imap_loc imap_section_locate(const struct mime_msg *m, uint64_t prefix_len,
				  const struct imap_section *sec, struct imap_byterange *r);

/* The message as served, in its two stored pieces. */
struct imap_msgdata {
	const char *prefix;
	size_t prefix_len;
	const char *body;		/* the parsed message */
	size_t body_len;
};

/* Append the bytes of range r of the message md (r may straddle prefix
 * and body).  -1 if r is outside the message or allocation failed. */
int imap_msgdata_append(const struct imap_msgdata *md, const struct imap_byterange *r,
			struct imap_buf *out);

/* For HEADER.FIELDS / HEADER.FIELDS.NOT: append the header fields of the
 * header at range r (from imap_section_locate) whose names are (FIELDS) or
 * are not (FIELDS_NOT) among sec->fields, compared case-insensitively,
 * each field with its folded continuation lines exactly as stored, then
 * the blank line "\r\n" (always, even if nothing matched).  Lines that are
 * not fields (no colon) are never included.  -1 if r is outside the
 * message, sec is not a FIELDS kind, or allocation failed. */
int imap_header_filter(const struct imap_msgdata *md, const struct imap_byterange *r,
		       const struct imap_section *sec, struct imap_buf *out);

#endif
