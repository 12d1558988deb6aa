/*
 * imap_search.h - IMAP SEARCH criteria as a tree (built by the command
 * parser, imap_parse.h) and an evaluator that needs no store: the session
 * describes one message in a struct imap_search_msg and asks whether it
 * matches.  libc only.
 *
 * Tree shape.  Every RFC 3501 key plus MODSEQ (RFC 7162) maps onto a few
 * node types; the parser rewrites the rest:
 *   ANSWERED DELETED DRAFT FLAGGED RECENT SEEN -> FLAG
 *   UNANSWERED ... UNSEEN                      -> NOT(FLAG)
 *   NEW -> AND(FLAG RECENT, NOT(FLAG SEEN)); OLD -> NOT(FLAG RECENT)
 *   KEYWORD k -> KEYWORD; UNKEYWORD k -> NOT(KEYWORD)
 *   BCC/CC/FROM/SUBJECT/TO s -> HEADER with that field name
 *   a sequence set -> SEQSET; UID set -> UIDSET
 *   the top-level key list and "( ... )" -> AND (a single key is kept as
 *   is); nested ANDs and ORs are flattened (OR is n-ary).
 * Children of an AND are ordered cheapest first (flags, numbers, dates
 * before headers before bodies), so a message is only read when needed.
 *
 * Matching (imap_search_match):
 *   - strings: case-insensitive substring over UTF-8: ASCII letters, and
 *     for a string with non-ASCII bytes also the letters of Latin-1,
 *     Latin Extended-A, Greek and Cyrillic (imap_fold_utf8 in
 *     imap_decode.h); other bytes compared as they are.  An empty string
 *     matches everything (HEADER f "" matches messages that have field f).
 *   - charsets (encoded words and text parts): UTF-8 and US-ASCII as
 *     they are; ISO-8859-1, ISO-8859-15 and Windows-1252 converted to
 *     UTF-8; other charsets left as bytes (imap_decode.h).
 *   - HEADER: every occurrence of the field, unfolded, with RFC 2047
 *     encoded words decoded (B and Q); whitespace between adjacent encoded
 *     words is dropped.
 *   - BODY: with the message's MIME structure (popnode/mime.h; get_mime
 *     or mime below), the text of every text/ * leaf part, base64 or
 *     quoted-printable decoded and converted to UTF-8, plus the header of
 *     every embedded message/rfc822 (as TEXT searches a header); parts
 *     that are not text (images, application/ *, ...), MIME part headers,
 *     preambles and epilogues are not searched.  Each part is decoded
 *     in DEC_CHUNK pieces with stack buffers, stopping at the first
 *     match.  Without a structure: the raw bytes after the header's blank
 *     line.
 *   - TEXT: the header (raw, and with encoded words decoded) or BODY.
 *   - BEFORE/ON/SINCE: the internal date's calendar day at the offset the
 *     session gives (tz_offset).  SENTBEFORE/SENTON/SENTSINCE: the day
 *     written in the Date: header (its own zone ignored); a message
 *     without a parsable Date: uses its internal date.
 *   - LARGER/SMALLER: RFC822.SIZE strictly greater/less.
 *   - MODSEQ n: modseq >= n.
 *   - KEYWORD: the bit bound by imap_search_bind_keywords (a keyword the
 *     mailbox does not know never matches).
 */
#ifndef IMAPPROXY_IMAP_SEARCH_H
#define IMAPPROXY_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_seqset.h"

struct mime_msg;

enum imap_search_type {
	IMAP_SEARCH_ALL,	/* every message */
	IMAP_SEARCH_AND,	/* children: all match (no children: true) */
	IMAP_SEARCH_OR,		/* children: at least one matches (>= 2) */
	IMAP_SEARCH_NOT,	/* child: does not match (exactly 1) */
	IMAP_SEARCH_SEQSET,	/* u.set: message sequence number in set */
	IMAP_SEARCH_UIDSET,	/* u.set: UID in set */
	IMAP_SEARCH_FLAG,	/* u.flag: one IMAP_FLAG_* bit is set */
	IMAP_SEARCH_KEYWORD,	/* u.kw: the keyword is set */
	IMAP_SEARCH_BEFORE,	/* u.day: internal date < day */
	IMAP_SEARCH_ON,		/* u.day: internal date == day */
	IMAP_SEARCH_SINCE,	/* u.day: internal date >= day */
	IMAP_SEARCH_SENTBEFORE,	/* u.day: Date: header < day */
	IMAP_SEARCH_SENTON,	/* u.day */
	IMAP_SEARCH_SENTSINCE,	/* u.day */
	IMAP_SEARCH_LARGER,	/* u.size: size > n */
	IMAP_SEARCH_SMALLER,	/* u.size: size < n */
	IMAP_SEARCH_HEADER,	/* u.text with field: header field contains */
	IMAP_SEARCH_BODY,	/* u.text: body contains */
	IMAP_SEARCH_TEXT,	/* u.text: header or body contains */
	IMAP_SEARCH_MODSEQ,	/* u.modseq: modseq >= n */
	IMAP_SEARCH_TYPE_COUNT
};

/* A substring to look for, prepared at parse time. */
struct imap_search_pattern {
	const char *s;		/* as given by the client, NUL-terminated */
	size_t len;
	const unsigned char *folded;	/* s folded: ASCII A-Z to a-z, and if
					 * utf8, imap_fold_utf8 (same length) */
	bool utf8;		/* s has non-ASCII bytes: the text is folded
				 * with imap_fold_utf8 before comparing */
	const uint32_t *fail;	/* KMP failure table, len entries */
};

struct imap_search_node {
	enum imap_search_type type;
	struct imap_search_node *child;	/* first child (AND, OR, NOT) */
	struct imap_search_node *next;	/* next sibling */
	union {
		const struct imap_seqset *set;
		uint32_t flag;		/* IMAP_FLAG_* (imap_parse.h) */
		struct {
			const char *name;	/* NUL-terminated atom */
			size_t len;
			int bit;		/* 0..63, or -1: never set */
		} kw;
		int32_t day;		/* days since 1970-01-01 */
		uint64_t size;
		uint64_t modseq;
		struct {
			const char *field;	/* HEADER only: field name */
			size_t field_len;
			struct imap_search_pattern pat;
		} text;
	} u;
};

/* What imap_search_match may need from the message beyond the numbers. */
enum {
	IMAP_SEARCH_NEED_HEADER = 1 << 0,	/* HEADER, SENT*, TEXT */
	IMAP_SEARCH_NEED_BODY = 1 << 1,		/* BODY, TEXT */
};

/* Where the message text is: up to two contiguous pieces that together are
 * the whole message as served (popnode: the per-recipient prefix lines and
 * the stored message).  Unused pieces have len 0. */
struct imap_search_text {
	const char *p[2];
	size_t len[2];
};

/* One message as the evaluator sees it. */
struct imap_search_msg {
	uint32_t seq;		/* message sequence number */
	uint32_t uid;
	uint32_t max_seq;	/* what '*' means in sequence sets */
	uint32_t max_uid;	/* what '*' means in UID sets */
	uint32_t flags;		/* IMAP_FLAG_* including IMAP_FLAG_RECENT */
	uint64_t keywords;	/* bit i = keyword bound to bit i */
	uint64_t size;		/* RFC822.SIZE */
	uint64_t modseq;
	int64_t internaldate;	/* unix time */
	int32_t tz_offset;	/* seconds east of UTC used to take the
				 * internal date's calendar day */
	/* The text: if get_text is set it is called (at most once per
	 * imap_search_match call, and only if a key needs the text) and
	 * returns 0 after filling *t, or -1 if the text cannot be had (text
	 * keys then do not match); otherwise `text` is used as it is. */
	int (*get_text)(void *ctx, struct imap_search_text *t);
	void *ctx;
	struct imap_search_text text;
	/* The MIME structure of the text from offset mime_off on (popnode's
	 * per-recipient prefix comes before it), for BODY and TEXT.  If
	 * get_mime is set it is called (with ctx, at most once per
	 * imap_search_match call, after get_text, and only when a BODY or
	 * TEXT key gets to the body) and returns 0 after setting *mm_r and
	 * *off_r, or -1 if the structure cannot be had (BODY then does not
	 * match; TEXT only on the header); otherwise `mime` and `mime_off`
	 * are used as they are.  The structure must stay valid until
	 * imap_search_match returns.  NULL, or one that does not fit in the
	 * text (mime_off + msg_len beyond its end): the body is searched as
	 * raw bytes. */
	int (*get_mime)(void *ctx, const struct mime_msg **mm_r, uint64_t *off_r);
	const struct mime_msg *mime;
	uint64_t mime_off;
};

/* Set the bit of every KEYWORD node: lookup returns the mailbox's bit
 * (0..63) for the keyword name (case-insensitive), or -1 if the mailbox
 * has no such keyword.  Call once per search before matching; until then
 * every KEYWORD node has bit -1. */
void imap_search_bind_keywords(struct imap_search_node *tree,
			       int (*lookup)(void *ctx, const char *name, size_t len),
			       void *ctx);

/* IMAP_SEARCH_NEED_* bits the tree may use. */
unsigned imap_search_needs(const struct imap_search_node *tree);

/* true if the message matches.  The recursion depth is bounded by the
 * parser's nesting limit. */
bool imap_search_match(const struct imap_search_node *tree, const struct imap_search_msg *m);

/* Lower-level helpers, exported for the session and tests. */

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). */
int32_t imap_days_from_civil(int y, unsigned m, unsigned d);

/* Parse the date part of an RFC 5322 date ("Tue, 1 Jul 2003 10:52:37
 * +0200", obsolete forms with 2-digit years and zone names too) into days
 * since 1970-01-01 of the date as written.  0 or -1. */
int imap_parse_rfc5322_day(const char *p, size_t len, int32_t *day_r);

/* Prepare pat for s[0..len) with memory from arena a (the arena keeps s;
 * s is not copied).  0 or -1 on allocation failure. */
struct imap_arena;
int imap_search_pattern_init(struct imap_search_pattern *pat, const char *s, size_t len,
			     struct imap_arena *a);

/* Whether the header block (the bytes before the blank line, CRLF or LF
 * line ends, folded lines allowed) has field `field` (case-insensitive)
 * whose unfolded, RFC 2047-decoded value contains pat.  hdr may be in two
 * pieces. */
bool imap_search_header_contains(const struct imap_search_text *hdr, const char *field,
				 size_t field_len, const struct imap_search_pattern *pat);

#endif
