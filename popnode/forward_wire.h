/*
 * forward_wire.h - the wire format of POST /v1/deliver (mail forwarded
 * from the POP an MTA reached to the recipients' home POP), without I/O:
 * the request headers in, checked and parsed; a response line out, and
 * back.  docs/link-deliver.md is the protocol; forward.h does the I/O.
 *
 * Request headers (values as below; any other header is ignored):
 *
 *   x-popnode-mail-from   the MAIL FROM address, "" for <>: 0..LMTP_ADDR_MAX
 *                         printable ASCII bytes, no leading/trailing blank
 *   x-popnode-rcpt        "USER ADDRESS", once per recipient, 1 ..
 *                         FORWARD_RCPTS_MAX of them, no USER twice: USER a
 *                         user name (dir_valid_username), one space, the
 *                         RCPT address as received (1..LMTP_ADDR_MAX
 *                         printable ASCII bytes, no leading/trailing blank)
 *   x-popnode-via         the front POP's id (1-63 of A-Z a-z 0-9 . _ -)
 *   x-popnode-internaldate  unix seconds, decimal, 0 .. FORWARD_DATE_MAX
 *   content-length        the body's size, decimal
 *
 * Numbers: 1-20 digits, no sign, no leading zero (except "0").  Every
 * header but x-popnode-rcpt appears exactly once.
 *
 * Response body (status 200): one line per recipient, in request order:
 *
 *   USER SP CODE SP ENH SP TEXT CRLF
 *
 * CODE: 250, or 4xx / 5xx; ENH: an RFC 3463 enhanced code whose class is
 * CODE's first digit (class "." 1-3 digits "." 1-3 digits); TEXT:
 * 1..FORWARD_TEXT_MAX printable ASCII bytes.
 */
#ifndef POPNODE_FORWARD_WIRE_H
#define POPNODE_FORWARD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "link.h"
#include "lmtp_parse.h"
#include "store.h"

#define FORWARD_PATH "/v1/deliver"

/* At most this many x-popnode-rcpt headers in one request, and at most
 * FORWARD_RCPT_BYTES_MAX bytes of their names and values together: the
 * link takes LINK_MAX_HEADERS headers and 16 KiB of them per stream.  A
 * front with more recipients for one home sends several requests. */
#define FORWARD_RCPTS_MAX 24
#define FORWARD_RCPT_BYTES_MAX 12288
#define FORWARD_TEXT_MAX 200
#define FORWARD_ENH_MAX 10			/* "5.123.123" + NUL */
/* USER CODE ENH TEXT CRLF */
#define FORWARD_LINE_MAX (STORE_NAME_MAX + 4 + FORWARD_ENH_MAX + FORWARD_TEXT_MAX + 2)
#define FORWARD_DATE_MAX ((int64_t)1 << 40)	/* far beyond any real date */

#define FORWARD_HDR_MAIL_FROM "x-popnode-mail-from"
#define FORWARD_HDR_RCPT "x-popnode-rcpt"
#define FORWARD_HDR_VIA "x-popnode-via"
#define FORWARD_HDR_DATE "x-popnode-internaldate"
#define FORWARD_HDR_LENGTH "content-length"

struct forward_hdr_rcpt {
	char user[STORE_NAME_MAX];
	char addr[LMTP_ADDR_MAX + 1];
};

/* A parsed request (about 14 KiB: allocate it). */
struct forward_request {
	char mail_from[LMTP_ADDR_MAX + 1];
	char via[STORE_POP_MAX];
	int64_t internaldate;
	uint64_t size;				/* content-length */
	size_t n_rcpts;
	struct forward_hdr_rcpt rcpts[FORWARD_RCPTS_MAX];
};

/* The bytes one recipient adds to the request's header budget (name and
 * value of its x-popnode-rcpt header). */
size_t forward_rcpt_hdr_bytes(const char *user, const char *addr);

/* Check and parse a request's headers.  max_rcpts: recipients allowed
 * (the smaller of it and FORWARD_RCPTS_MAX applies); max_size: the
 * largest body.  Returns 0 (*r filled), or the status to refuse with:
 * 400 (anything malformed, missing, repeated or over a limit; *err_r
 * says what) or 413 (content-length over max_size).  *err_r is a static
 * string. */
int forward_request_parse(const struct link_hdr *h, size_t n, size_t max_rcpts,
			  uint64_t max_size, struct forward_request *r, const char **err_r);

/* Is s a valid x-popnode-mail-from value (empty allowed) / RCPT address
 * (empty not allowed)? */
bool forward_valid_addr(const char *s, bool empty_ok);
/* Is s a POP id as the directory holds them? */
bool forward_valid_pop(const char *s);

/* ---- response lines ---- */

struct forward_reply {
	unsigned code;				/* 250, 400..599 */
	char enh[FORWARD_ENH_MAX];		/* "2.0.0" */
	char text[FORWARD_TEXT_MAX + 1];
};

/* Write "user code enh text\r\n" into buf (size bytes, NUL added).
 * Characters of text that are not printable ASCII become '?', and text
 * is cut to FORWARD_TEXT_MAX bytes (an empty text becomes "-").
 * Returns the line's length, or -1 if user, code or enh is not valid
 * (as forward_reply_parse checks them) or buf is too small
 * (FORWARD_LINE_MAX + 1 always suffices). */
int forward_reply_format(char *buf, size_t size, const char *user, unsigned code,
			 const char *enh, const char *text);

/* Parse one response line of len bytes (CRLF excluded) that must answer
 * for user.  0 (*r filled), or -1 (*r zeroed). */
int forward_reply_parse(const char *line, size_t len, const char *user, struct forward_reply *r);

/* Parse a whole response body for users[0..n): line i answers users[i].
 * ok[i] is set true where line i is a valid answer for users[i] (out[i]
 * filled), false where it is missing or malformed.  Returns how many
 * recipients got a valid answer; *malformed_r is set true if anything
 * was wrong (a bad or missing line, a line without CRLF, lines beyond
 * n). */
size_t forward_replies_parse(const char *body, size_t len, const char *const *users, size_t n,
			     struct forward_reply *out, bool *ok, bool *malformed_r);

#endif
