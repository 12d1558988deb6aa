/*
 * imap_parse_private.h - what the IMAP parser's files share and nobody
 * else uses: the parse context, the tokenizer (imap_parse_tok.c) and the
 * argument parsers (imap_parse_cmd.c, imap_fetch_parse.c,
 * imap_search_parse.c).
 *
 * The tokenizer works on one complete command as it was sent (lines with
 * literal markers, the literal bytes inline).  Every function returns 0 or
 * -1; on -1 the first error is recorded in the context (later ones are
 * ignored) and parsing stops.
 */
#ifndef IMAPPROXY_IMAP_PARSE_PRIVATE_H
#define IMAPPROXY_IMAP_PARSE_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_parse.h"

struct pctx {
	const char *buf;
	size_t len;
	size_t pos;
	const struct imap_limits *lim;
	struct imap_arena *a;
	struct imap_command *cmd;
	struct imap_error *err;
	unsigned depth;
	bool failed;
	/* the APPEND message literal (bigger limit) has been used */
	bool big_literal_used;
};

/* Record an error (the first one wins); returns -1. */
int p_fail(struct pctx *c, enum imap_err code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Out of memory; returns -1. */
int p_nomem(struct pctx *c);

/* Nesting: p_enter fails past lim->max_depth. */
int p_enter(struct pctx *c);
void p_leave(struct pctx *c);

/* Next byte, or -1 at the end of the command (CRLF / LF / end of data). */
int p_peek(const struct pctx *c);
/* true at the final line end. */
bool p_at_end(const struct pctx *c);
/* Exactly one SP; "Missing <what>" at the end, else "Expected SP ...". */
int p_sp(struct pctx *c, const char *what);
/* The end of the command; else "Unexpected arguments after <cmd>". */
int p_end(struct pctx *c);
/* A literal byte ch (e.g. '('); error "Missing '<ch>' in <what>". */
int p_char(struct pctx *c, char ch, const char *what);
/* true and consume if the next byte is ch. */
bool p_opt_char(struct pctx *c, char ch);

/* An atom (ATOM-CHAR, plus ']' if bracket_ok); points into the buffer. */
int p_atom(struct pctx *c, const char *what, bool bracket_ok, const char **p_r, size_t *len_r);
/* Case-insensitive compare of an atom with word. */
bool p_word_eq(const char *p, size_t len, const char *word);
/* astring / string / nstring, decoded and copied into the arena.  NUL in
 * the value is an error.  *nil_r (nstring) is set for NIL. */
int p_astring(struct pctx *c, const char *what, struct imap_str *out);
int p_string(struct pctx *c, const char *what, struct imap_str *out);
int p_nstring(struct pctx *c, const char *what, struct imap_str *out, bool *nil_r);
/* number (0..2^32-1), nz-number, and a 63-bit mod-sequence value. */
int p_number(struct pctx *c, const char *what, uint32_t *v_r);
int p_nz_number(struct pctx *c, const char *what, uint32_t *v_r);
int p_number64(struct pctx *c, const char *what, bool zero_ok, uint64_t *v_r);
/* A sequence set token. */
int p_seqset(struct pctx *c, const struct imap_seqset **set_r);
/* A mailbox name (astring), decoded and normalised. */
int p_mailbox(struct pctx *c, const char *what, struct imap_str *out);
/* A date "d-Mon-yyyy", bare or quoted, as a day number. */
int p_date(struct pctx *c, const char *what, int32_t *day_r);

/* Copy into the arena (NUL-terminated). */
int p_dup(struct pctx *c, const char *p, size_t len, struct imap_str *out);

/* ATOM-CHAR (plus ']' if bracket_ok); false for -1 (the end). */
bool p_atom_char(int ch, bool bracket_ok);
/* A quoted string (at its '"'), unescaped into the arena. */
int p_quoted(struct pctx *c, const char *what, struct imap_str *out);
/* A literal "{n}" (or "~{n}" if lit8_ok) left in the buffer; big: may be
 * the APPEND message (max_append_literal, once per command). */
int p_literal_span(struct pctx *c, const char *what, bool big, bool lit8_ok,
		   const char **data_r, size_t *len_r, bool *lit8_r);
/* Decode a mailbox name or list pattern in *s (mUTF-7, or UTF-8 after
 * ENABLE UTF8=ACCEPT), check its characters; normalize: INBOX. */
int p_decode_mailbox(struct pctx *c, struct imap_str *s, bool normalize);
/* list-mailbox (a LIST pattern, '%' and '*' allowed), decoded. */
int p_list_mailbox(struct pctx *c, const char *what, struct imap_str *out);
/* "(" item *(SP item) ")": item() per element; "()" only if empty_ok. */
int p_list(struct pctx *c, const char *what, bool empty_ok,
	   int (*item)(struct pctx *c, void *arg), void *arg);

/* A growable array in the arena (doubling; old storage is abandoned, the
 * total stays linear). */
struct vec {
	void *v;
	size_t n, cap, elem;
};

/* Room for one more element; NULL (error recorded) if out of memory. */
void *p_vec_push(struct pctx *c, struct vec *v);

/* Flags being collected: system flag bits and keywords. */
struct flag_acc {
	uint32_t system;
	struct vec kw;		/* struct imap_str */
};

/* One flag (system flag or keyword) into the struct flag_acc at arg. */
int p_flag(struct pctx *c, void *arg);
/* The collected flags into out, keywords deduplicated. */
int p_finish_flags(struct pctx *c, struct flag_acc *f, struct imap_flags *out);
/* "(" [flag *(SP flag)] ")" */
int p_flag_list(struct pctx *c, struct imap_flags *out);

/* imap_parse_cmd.c: the arguments of command c->cmd->id after its name. */
int imap_parse_args(struct pctx *c);
/* imap_fetch_parse.c: "set SP atts [SP (modifiers)]" after "FETCH ". */
int imap_parse_fetch_args(struct pctx *c);
/* imap_search_parse.c: the arguments after "SEARCH ". */
int imap_parse_search_args(struct pctx *c);

/* Parse a command whose bytes are in buf (malloc'ed, len bytes); the
 * command takes ownership of buf in every case (freed on error). */
enum imap_err imap_parse_owned(char *buf, size_t len, const struct imap_limits *lim,
			       struct imap_command **cmd_r, struct imap_error *err_r);

/* The tag at the start of buf[0..len) if it is a valid tag, copied into
 * tag (IMAP_TAG_MAX + 1 bytes); "" otherwise.  Returns the tag length. */
size_t imap_scan_tag(const char *buf, size_t len, char *tag);

/* After the tag: command name (and UID prefix); true if recognised. */
bool imap_scan_command(const char *buf, size_t len, enum imap_cmd_id *id_r, bool *uid_r);

/* Fill err with code and text (static text, no formatting). */
void imap_error_set(struct imap_error *err, enum imap_err code, const char *text);

#endif
