/*
 * mime.h - the MIME structure of a message, computed once at delivery.
 *
 * mime_parse() reads a whole message (RFC 5322 + MIME, RFC 2045-2049) in
 * one linear pass and returns a compact, self-contained "blob" that the
 * store keeps beside the message body.  Everything a mail client asks about
 * a message's structure (ENVELOPE, BODYSTRUCTURE, where part 1.2 starts)
 * is later answered from the blob alone, without reading the body again.
 *
 * This module describes structure only: byte offsets, line counts and
 * header values as they appear in the message (unfolded, never decoded:
 * RFC 2047 encoded words and 8-bit bytes are kept as they are).  It knows
 * nothing of IMAP syntax; imapproxy/imap_body.h renders the IMAP forms.
 * It depends on libc only (it is fuzzed alone).
 *
 * The tree.  Parts are numbered in pre-order; part 0 is the message itself
 * (its header is the message header, its body the message body).  Children:
 *   - multipart/ *: one child per body part between the boundaries;
 *   - message/rfc822 (whatever its Content-Transfer-Encoding, as Dovecot):
 *     exactly one child, the embedded message, whose own header and body
 *     are those of the enclosed message and which carries an envelope
 *     (has_envelope) like part 0;
 *   - every other type: none.
 * A multipart whose boundary parameter is missing (an invalid Content-Type,
 * RFC 2045 5.2) or whose boundary never occurs, and a multipart or
 * message/rfc822 nested deeper than MIME_DEPTH_MAX or met when the tree
 * already has MIME_PARTS_MAX parts, becomes a text/plain leaf (type,
 * subtype and parameters replaced by the default below), so every
 * multipart in the tree has at least one child.  Body parts of a multipart
 * beyond MIME_PARTS_MAX are left out of the tree (their bytes stay inside
 * the multipart's body).
 *
 * Offsets.  All offsets are relative to the first byte given to
 * mime_parse(), so the blob does not depend on where the message is kept.
 * A part's header runs from hdr_off for hdr_len bytes and includes the
 * empty line that ends it (when there is one); its body follows at
 * body_off = hdr_off + hdr_len for body_len bytes.  A body part inside a
 * multipart ends before the CRLF (or LF) that precedes the next boundary
 * line, per RFC 2046 5.1.1 (also when that line break follows the empty
 * line of the part's header: the part is then its header without the
 * empty line, and an empty body).  body_lines is the number of LF bytes in the
 * body (as Dovecot counts: a last line without LF is not counted).  A line
 * that matches a boundary of an enclosing multipart ends a header too.
 * Boundary lines are recognized as Dovecot does: "--" + the longest active
 * boundary that prefixes the rest of the line.  Bare LF line ends are
 * accepted everywhere and counted as they are: sizes are the octets of the
 * message as given.
 *
 * Header values.  For every field used, the value is the text after the
 * colon with the line breaks of folds (CRLF or LF before whitespace)
 * removed, the whitespace kept, and leading/trailing whitespace trimmed;
 * the first occurrence of a field wins.  Content-Type, Content-Disposition
 * and their parameters are tokenized (RFC 2045 / 2183 syntax with quoted strings and comments);
 * RFC 2231 continuations (name*0, name*1*, ...) are joined into one
 * parameter ("name" or "name*" if any segment was extended), values left
 * percent-encoded, and put after the plain parameters (as Dovecot does).
 * Quoted parameter values are unquoted.  Types, subtypes, parameter names
 * and values keep the case used in the message.
 *
 * Defaults written into the blob (RFC 2045, 2046): a part without a valid
 * Content-Type is text/plain with charset=us-ascii (inside a
 * multipart/digest: message/rfc822 without parameters); a text/ * part
 * without a charset parameter gets charset=us-ascii appended; an absent
 * Content-Transfer-Encoding is "7bit".
 *
 * Addresses of the envelope (From, Sender, Reply-To, To, Cc, Bcc) are parsed
 * at delivery into (name, adl, mailbox, host) tuples, RFC 5322 group syntax
 * kept as a start marker (mailbox = group name, the rest absent) and an end
 * marker (all four absent).  A missing local part or domain is given as
 * "MISSING_MAILBOX" / "MISSING_DOMAIN" (as Dovecot does; "<>" gives both).
 * Display names are unquoted with whitespace runs made one space; comments
 * are dropped, except that an address without a display name takes its
 * last comment as name ("a@b (Real Name)").  Parsing is lenient: junk up
 * to the next comma is skipped, the rest of the list still parsed.
 *
 * Blob format (version 1, docs/mime.md): a 28-byte header ("PMIM", version,
 * lengths, counts), then the parts in pre-order, each a fixed record
 * followed by its strings, parameters and, for part 0 and embedded
 * messages, its envelope.  Integers are little-endian; strings are a u32
 * length (0xffffffff = absent) and the bytes.  mime_blob_decode() checks
 * every length, count and offset, so a corrupt or truncated blob is
 * reported, never followed.
 */
#ifndef POPNODE_MIME_H
#define POPNODE_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIME_BLOB_VERSION 1

/* Limits.  Past them the parse still succeeds; the excess is described
 * less finely (see above) or cut short, never rejected. */
#define MIME_DEPTH_MAX 50		/* nesting of multiparts and messages */
#define MIME_PARTS_MAX 1000		/* parts in the whole tree */
#define MIME_PARAMS_MAX 64		/* parameters per Content-Type/-Disposition */
#define MIME_ADDRS_MAX 2000		/* addresses + group markers per header */
#define MIME_ADDRS_TOTAL_MAX 10000	/* ... in all envelopes of a message */
#define MIME_BOUNDARY_MAX 200		/* longer boundaries are not honoured */
#define MIME_TOKEN_MAX 256		/* type, subtype, encoding, disposition,
					 * parameter names: longer ones are cut */
#define MIME_STRINGS_MAX (4u << 20)	/* bytes of header values in a blob; once
					 * used up, further values are cut short */
#define MIME_MSG_MAX 0xfffffffeu	/* longest message mime_parse() takes */

/* With the limits above no blob is larger than this, whatever the message
 * (a few hundred bytes for ordinary mail). */
#define MIME_BLOB_MAX (8u << 20)

/* ---- parsing ------------------------------------------------------------ */

/* Parse msg (len bytes, need not be NUL-terminated; any bytes accepted)
 * and return a malloc()ed blob of at most MIME_BLOB_MAX bytes in *blob_r
 * (free it with free()), its size in *blob_len_r.  Returns 0, or -1 if
 * len > MIME_MSG_MAX, msg is NULL with len > 0, or memory ran out (then
 * *blob_r is NULL).  Never reads outside [msg, msg+len).  Deterministic:
 * the same bytes always give the same blob. */
int mime_parse(const char *msg, size_t len, uint8_t **blob_r, size_t *blob_len_r);

/* ---- the decoded tree ---------------------------------------------------- */

/* A string from the message: p points into the blob (not NUL-terminated);
 * p == NULL means absent (IMAP NIL).  An empty present string has p != NULL
 * and len 0. */
struct mime_str {
	const char *p;
	uint32_t len;
};

struct mime_param {
	struct mime_str name;
	struct mime_str value;
};

/* One address or group marker (see above). */
struct mime_addr {
	struct mime_str name;		/* display name (phrase), unquoted */
	struct mime_str adl;		/* source route ("@a,@b"), usually absent */
	struct mime_str mailbox;	/* local part; group name in a start marker */
	struct mime_str host;		/* domain; absent in group markers */
};

struct mime_addr_list {
	const struct mime_addr *v;
	uint32_t n;			/* 0: header absent, empty or unparsable */
};

/* Envelope header values, unfolded and trimmed, raw (see above). */
struct mime_envelope {
	struct mime_str date;
	struct mime_str subject;
	struct mime_addr_list from;
	struct mime_addr_list sender;	/* as in the header; NOT defaulted to From */
	struct mime_addr_list reply_to;	/* as in the header; NOT defaulted to From */
	struct mime_addr_list to;
	struct mime_addr_list cc;
	struct mime_addr_list bcc;
	struct mime_str in_reply_to;
	struct mime_str message_id;
};

enum mime_kind {
	MIME_KIND_LEAF = 0,		/* any single part (text/ *, image/ *, ...) */
	MIME_KIND_MULTIPART,		/* children = body parts (n_children >= 1) */
	MIME_KIND_MESSAGE,		/* message/rfc822 (any encoding): 1 child */
};

struct mime_part {
	enum mime_kind kind;
	uint32_t index;			/* pre-order number; 0 = the message */
	uint32_t depth;			/* 0 for part 0 */
	struct mime_part *parent;	/* NULL for part 0 */
	struct mime_part *child;	/* first child or NULL */
	struct mime_part *next;		/* next sibling or NULL */
	uint32_t n_children;

	/* offsets relative to the parsed message, see above */
	uint32_t hdr_off, hdr_len;
	uint32_t body_off, body_len;
	uint32_t body_lines;

	struct mime_str type;		/* "text", "multipart", ... never absent */
	struct mime_str subtype;	/* "plain", "mixed", ... never absent */
	const struct mime_param *params;	/* Content-Type parameters */
	uint32_t n_params;
	struct mime_str id;		/* Content-ID */
	struct mime_str description;	/* Content-Description */
	struct mime_str encoding;	/* Content-Transfer-Encoding, default "7bit" */
	struct mime_str md5;		/* Content-MD5 */
	struct mime_str disposition;	/* Content-Disposition type ("inline") */
	const struct mime_param *disp_params;
	uint32_t n_disp_params;
	struct mime_str language;	/* Content-Language, raw ("en, de") */
	struct mime_str location;	/* Content-Location, unfolded, whitespace kept */

	bool has_envelope;		/* part 0 and children of MESSAGE parts */
	struct mime_envelope env;
};

struct mime_msg {
	uint32_t msg_len;		/* length of the parsed message */
	uint32_t n_parts;
	struct mime_part *parts;	/* parts[0] is the message; pre-order */
	/* storage behind the pointers above (one allocation) */
	struct mime_param *param_store;
	struct mime_addr *addr_store;
};

/* Check and decode a blob.  On success *msg_r is a tree whose strings
 * point into blob (keep the blob alive and unchanged while the tree is
 * used) and 0 is returned.  -1: the blob is corrupt, truncated, of another
 * version, or memory ran out; *msg_r is then NULL.  Cost: one allocation
 * and one pass over the blob. */
int mime_blob_decode(const void *blob, size_t blob_len, struct mime_msg **msg_r);

/* Free a decoded tree; *msg is set to NULL.  Accepts NULL and *msg == NULL. */
void mime_msg_free(struct mime_msg **msg);

/* Cheap header check: 0 if blob looks like a version-1 blob (magic,
 * version, total length) and *msg_len_r (may be NULL) gets the parsed
 * message's length; -1 otherwise.  mime_blob_decode() does the full check. */
int mime_blob_peek(const void *blob, size_t blob_len, uint32_t *msg_len_r);

/* Case-insensitive ASCII comparison of a mime_str with a C string;
 * false if s is absent. */
bool mime_str_eq(struct mime_str s, const char *lit);

/* Parameter value by case-insensitive name, or an absent string. */
struct mime_str mime_param_get(const struct mime_param *params, uint32_t n,
			       const char *name);

#endif
