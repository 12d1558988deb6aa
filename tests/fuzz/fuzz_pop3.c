/*
 * fuzz_pop3.c - libFuzzer target for the POP3 command parser and the SASL
 * PLAIN decoder.
 *
 * The input is a client byte stream: it is cut into lines at LF (one
 * trailing CR removed, as pop3.c does) and every line goes through
 * pop3_parse_line() and, as if it were the line after "+ ", through
 * sasl_plain_decode().  Results are checked for consistency (arguments
 * inside the line and within their limits, message numbers >= 1 and equal
 * to their digits, PLAIN fields within limits and following the authzid
 * policy) and every base64 string the strict decoder accepts must encode
 * back to exactly itself (canonical form).
 *
 * The Makefile links this file with imapproxy/pop3_parse.c only, so the
 * SASL decoder (libc-only by design) is compiled in here by including its
 * source.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pop3_parse.h"
#include "sasl_plain.h"
#include "sasl_plain.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t b64_encode(const unsigned char *in, size_t len, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t w = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			w |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			w |= in[i + 2];
		out[o++] = tab[(w >> 18) & 63];
		out[o++] = tab[(w >> 12) & 63];
		out[o++] = i + 1 < len ? tab[(w >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? tab[w & 63] : '=';
	}
	return o;
}

static void check_command(const char *line, size_t len)
{
	struct pop3_command c;
	int r = pop3_parse_line(line, len, &c);

	if (r < POP3_PARSE_OK || r > POP3_PERR_RANGE)
		abort();
	if (pop3_parse_strerror(r) == NULL || c.nargs > POP3_MAX_ARGS)
		abort();
	for (unsigned i = 0; i < c.nargs; i++) {
		if (c.args[i].p < line || c.args[i].p + c.args[i].len > line + len ||
		    c.args[i].len == 0)
			abort();
	}
	if (r != POP3_PARSE_OK)
		return;
	if ((unsigned)c.id >= POP3_CMD_COUNT)
		abort();
	for (unsigned i = 0; i < c.nargs; i++) {
		size_t lim = (c.id == POP3_CMD_AUTH && i == 1) ? POP3_AUTH_RESP_MAX : POP3_ARG_MAX;
		if (c.args[i].len > lim)
			abort();
		if (c.id == POP3_CMD_PASS)
			continue;
		for (size_t j = 0; j < c.args[i].len; j++)
			if (c.args[i].p[j] == ' ' || c.args[i].p[j] == '\t')
				abort();
		if (pop3_arg_is_msgno(c.id, i) || (c.id == POP3_CMD_TOP && i == 1)) {
			uint64_t v = 0;
			for (size_t j = 0; j < c.args[i].len; j++) {
				unsigned char d = (unsigned char)c.args[i].p[j];
				if (d < '0' || d > '9')
					abort();
				v = v * 10 + (d - '0');
				if (v > UINT32_MAX)
					abort();
			}
			if (v != c.num[i] || (pop3_arg_is_msgno(c.id, i) && v == 0))
				abort();
		}
	}
}

static void check_sasl(const char *line, size_t len)
{
	struct sasl_plain p;
	int r = sasl_plain_decode(line, len, &p);

	if (r == SASL_PLAIN_OK) {
		size_t zl = strnlen(p.authzid, sizeof(p.authzid));
		size_t cl = strnlen(p.authcid, sizeof(p.authcid));
		size_t wl = strnlen(p.passwd, sizeof(p.passwd));
		if (zl > SASL_PLAIN_FIELD_MAX || cl > SASL_PLAIN_FIELD_MAX ||
		    wl > SASL_PLAIN_FIELD_MAX || cl == 0 || wl == 0)
			abort();
		if (zl != 0 && strcasecmp(p.authzid, p.authcid) != 0)
			abort();
	} else {
		static const struct sasl_plain zero;
		if (memcmp(&p, &zero, sizeof(p)) != 0)
			abort();
	}
	sasl_plain_wipe(&p);

	/* strict base64: accepted input is canonical */
	unsigned char out[SASL_PLAIN_B64_MAX];
	char back[SASL_PLAIN_B64_MAX + 4];
	size_t n = 0;
	if (len <= SASL_PLAIN_B64_MAX &&
	    sasl_base64_decode(line, len, out, sizeof(out), &n) == 0) {
		if (n > len / 4 * 3)
			abort();
		size_t bl = b64_encode(out, n, back);
		if (bl != len || memcmp(back, line, len) != 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t pos = 0;

	while (pos < size) {
		const char *nl = memchr(p + pos, '\n', size - pos);
		size_t end = nl != NULL ? (size_t)(nl - p) : size;
		size_t len = end - pos;
		if (len > 0 && p[pos + len - 1] == '\r')
			len--;
		/* a private copy, so ASan sees reads past the line's end */
		char *line = malloc(len ? len : 1);
		if (line == NULL)
			return 0;
		memcpy(line, p + pos, len);
		check_command(line, len);
		check_sasl(line, len);
		free(line);
		pos = end + 1;
	}
	return 0;
}
