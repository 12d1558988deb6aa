/*
 * lmtp_prefix.h - what a delivery writes and answers per recipient, shared
 * by local LMTP delivery (lmtp.c) and mail forwarded from another POP
 * (forward.c), so a message reads the same whichever POP the MTA reached.
 *
 *   - the lines stored in front of the shared body for each recipient
 *     ("Return-Path: <sender>", "Delivered-To: addr");
 *   - the reply (code, enhanced code, text) for a store_deliver() result;
 *   - the result's name for logs.
 *
 * No I/O, no state.
 */
#ifndef POPNODE_LMTP_PREFIX_H
#define POPNODE_LMTP_PREFIX_H

#include <stddef.h>
#include <stdint.h>

#include "lmtp_parse.h"

/* "Return-Path: <...>\r\nDelivered-To: ...\r\n" for the longest addresses. */
#define LMTP_PREFIX_MAX (2 * LMTP_ADDR_MAX + 64)

/* Write the per-recipient prefix for envelope sender (the MAIL FROM
 * address, "" for <>) and recipient rcpt (the RCPT address as received,
 * without brackets) into buf.  Returns its length, or -1 if it does not
 * fit in size bytes (never with size >= LMTP_PREFIX_MAX and addresses of
 * at most LMTP_ADDR_MAX bytes). */
int lmtp_prefix(char *buf, size_t size, const char *sender, const char *rcpt);

#define LMTP_REPLY_TEXT_MAX 48

/* The per-recipient reply after DATA for a store result. */
struct lmtp_store_reply {
	unsigned code;				/* 250, 452, 550, 451 */
	const char *enh;			/* "2.0.0", ... */
	char text[LMTP_REPLY_TEXT_MAX];		/* "Saved as uid 7", "mailbox full" */
};

/* result: a store_rcpt result (STORE_OK, STORE_QUOTA, STORE_NOTFOUND,
 * STORE_DISABLED; anything else is a temporary store failure).  uid is
 * used for STORE_OK only. */
void lmtp_store_reply(int result, uint32_t uid, struct lmtp_store_reply *r);

/* "ok", "quota", "notfound", "disabled", "store_full", "shutdown", "io". */
const char *lmtp_result_name(int result);

#endif
