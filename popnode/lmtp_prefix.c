/*
 * lmtp_prefix.c - per-recipient prefix and store-result replies
 * (lmtp_prefix.h).
 */
#include <stdio.h>

#include "lmtp_prefix.h"
#include "store.h"

int lmtp_prefix(char *buf, size_t size, const char *sender, const char *rcpt)
{
	int n = snprintf(buf, size, "Return-Path: <%s>\r\nDelivered-To: %s\r\n", sender, rcpt);

	if (n < 0 || (size_t)n >= size)
		return -1;
	return n;
}

void lmtp_store_reply(int result, uint32_t uid, struct lmtp_store_reply *r)
{
	const char *text;

	switch (result) {
	case STORE_OK:
		r->code = 250;
		r->enh = "2.0.0";
		snprintf(r->text, sizeof(r->text), "Saved as uid %u", uid);
		return;
	case STORE_QUOTA:
		r->code = 452;
		r->enh = "4.2.2";
		text = "mailbox full";
		break;
	case STORE_NOTFOUND:
		r->code = 550;
		r->enh = "5.1.1";
		text = "no such user";
		break;
	case STORE_DISABLED:
		r->code = 550;
		r->enh = "5.2.1";
		text = "mailbox disabled";
		break;
	default:
		r->code = 451;
		r->enh = "4.3.0";
		text = "temporary store failure";
		break;
	}
	snprintf(r->text, sizeof(r->text), "%s", text);
}

const char *lmtp_result_name(int result)
{
	switch (result) {
	case STORE_OK: return "ok";
	case STORE_QUOTA: return "quota";
	case STORE_NOTFOUND: return "notfound";
	case STORE_DISABLED: return "disabled";
	case STORE_FULL: return "store_full";
	case STORE_SHUTDOWN: return "shutdown";
	default: return "io";
	}
}
