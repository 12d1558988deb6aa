/*
 * fuzz_decode.c - libFuzzer target for imapproxy/imap_decode.c and the
 * decoded-body search of imapproxy/imap_search.c.
 *
 * Input: one control byte, then data.  The control byte seeds the piece
 * sizes.  Checks:
 *   - base64, quoted-printable and the UTF-8 fold give the same bytes (and
 *     the same `bad` counts) whether the data comes whole or in pieces;
 *     every call stays within IMAP_DECODE_OUT_MAX; base64 writes at most
 *     (6n + 7) / 8 bytes, quoted-printable at most n in all; the fold
 *     keeps the length and is idempotent;
 *   - each single-byte charset gives valid UTF-8 of at most 3n bytes;
 *   - the data as a message: mime_parse()s it, then SEARCH BODY for a
 *     pattern taken from the data must agree with a reference that decodes
 *     each text part in one go into a heap buffer, converts, folds and
 *     uses memmem (the evaluator streams in chunks with stack buffers).
 * Any disagreement aborts, so the fuzzer reports it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_arena.h"
#include "imap_decode.h"
#include "imap_search.h"
#include "mime.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum dec { DEC_B64, DEC_QP, DEC_FOLD };

/* Decode in pieces chosen by *seed (0: whole); returns the length. */
static size_t run(enum dec which, const uint8_t *in, size_t n, uint32_t seed, uint8_t *out,
		  uint64_t *bad_r)
{
	struct imap_b64 b;
	struct imap_qp q;
	struct imap_fold f;
	size_t w = 0;

	imap_b64_init(&b);
	imap_qp_init(&q);
	imap_fold_init(&f);
	for (size_t i = 0; i < n;) {
		size_t k = n - i;
		if (seed != 0) {
			seed = seed * 1103515245u + 12345u;
			k = 1 + (seed >> 16) % 97;
			if (k > n - i)
				k = n - i;
		}
		size_t got = 0;
		switch (which) {
		case DEC_B64:
			got = imap_b64_decode(&b, in + i, k, out + w);
			CHECK(got <= (6 * k + 7) / 8);
			break;
		case DEC_QP:
			got = imap_qp_decode(&q, in + i, k, out + w);
			break;
		case DEC_FOLD:
			got = imap_fold_utf8(&f, in + i, k, out + w);
			CHECK(got <= k + 1);
			break;
		}
		CHECK(got <= IMAP_DECODE_OUT_MAX(k));
		w += got;
		i += k;
	}
	if (which == DEC_QP)
		w += imap_qp_finish(&q, out + w);
	if (which == DEC_FOLD)
		w += imap_fold_finish(&f, out + w);
	*bad_r = which == DEC_B64 ? b.bad : which == DEC_QP ? q.bad : 0;
	return w;
}

static bool valid_utf8(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = p[i];
		size_t l = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 0;
		if (l == 0 || i + l > n)
			return false;
		for (size_t k = 1; k < l; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
		i += l;
	}
	return true;
}

static void check_decoders(const uint8_t *d, size_t n, uint32_t seed)
{
	uint8_t *a = malloc(3 * n + 64), *b = malloc(3 * n + 64);
	uint64_t bad_a, bad_b;

	CHECK(a != NULL && b != NULL);
	for (int which = DEC_B64; which <= DEC_FOLD; which++) {
		size_t la = run((enum dec)which, d, n, 0, a, &bad_a);
		size_t lb = run((enum dec)which, d, n, seed | 1, b, &bad_b);
		CHECK(la == lb && memcmp(a, b, la) == 0 && bad_a == bad_b);
		if (which == DEC_QP)
			CHECK(la <= n);
		if (which == DEC_FOLD) {
			CHECK(la == n);
			size_t l2 = run(DEC_FOLD, a, la, seed, b, &bad_b);
			CHECK(l2 == la && memcmp(a, b, la) == 0);
		}
	}
	for (int cs = IMAP_CS_LATIN1; cs <= IMAP_CS_CP1252; cs++) {
		size_t l = imap_charset_to_utf8((enum imap_charset)cs, d, n, a);
		CHECK(l >= n && l <= 3 * n && valid_utf8(a, l));
	}
	free(a);
	free(b);
}

/* ---- the decoded-body search against a one-shot reference ---------------- */

static bool is(struct mime_str s, const char *lit)
{
	return mime_str_eq(s, lit);
}

/* Fold-decode-convert one text part in one go; whether fpat is in it. */
static bool ref_part(const uint8_t *body, size_t n, const struct mime_part *p, const uint8_t *fpat,
		     size_t fpl)
{
	uint8_t *dec = malloc(IMAP_DECODE_OUT_MAX(n)), *utf = malloc(3 * IMAP_DECODE_OUT_MAX(n));
	uint8_t *fold = malloc(3 * IMAP_DECODE_OUT_MAX(n) + 1);
	size_t dn = n;
	const uint8_t *d = body;
	bool r;

	CHECK(dec != NULL && utf != NULL && fold != NULL);
	if (is(p->encoding, "base64")) {
		struct imap_b64 b;
		imap_b64_init(&b);
		dn = imap_b64_decode(&b, body, n, dec);
		d = dec;
	} else if (is(p->encoding, "quoted-printable")) {
		struct imap_qp q;
		imap_qp_init(&q);
		dn = imap_qp_decode(&q, body, n, dec);
		dn += imap_qp_finish(&q, dec + dn);
		d = dec;
	}
	struct mime_str cs = mime_param_get(p->params, p->n_params, "charset");
	enum imap_charset c = cs.p != NULL ? imap_charset_lookup(cs.p, cs.len) : IMAP_CS_UTF8;
	size_t un = imap_charset_to_utf8(c, d, dn, utf);
	struct imap_fold f;
	imap_fold_init(&f);
	size_t fl = imap_fold_utf8(&f, utf, un, fold);
	fl += imap_fold_finish(&f, fold + fl);
	r = memmem(fold, fl, fpat, fpl) != NULL;
	free(dec);
	free(utf);
	free(fold);
	return r;
}

static void check_search(const uint8_t *d, size_t n, uint8_t ctl)
{
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	struct mime_msg *mm = NULL;

	if (mime_parse((const char *)d, n, &blob, &blob_len) < 0)
		return;
	CHECK(mime_blob_decode(blob, blob_len, &mm) == 0);

	/* the pattern: 1-8 bytes from the data (where ctl says), no parts
	 * with header look-alikes needed */
	size_t pl = 1 + ctl % 8;
	if (pl > n) {
		mime_msg_free(&mm);
		free(blob);
		return;
	}
	size_t at = ((size_t)ctl * 131) % (n - pl + 1);
	char pat[8];
	memcpy(pat, d + at, pl);

	struct imap_arena *a = imap_arena_new(0);
	CHECK(a != NULL);
	struct imap_search_node node;
	memset(&node, 0, sizeof(node));
	node.type = IMAP_SEARCH_BODY;
	CHECK(imap_search_pattern_init(&node.u.text.pat, pat, pl, a) == 0);

	/* reference: embedded message headers are left out of it, so only
	 * compare for messages without any */
	bool has_embedded = false;
	for (uint32_t i = 1; i < mm->n_parts; i++)
		if (mm->parts[i].has_envelope)
			has_embedded = true;

	struct imap_search_msg m;
	memset(&m, 0, sizeof(m));
	m.text.p[0] = (const char *)d;
	m.text.len[0] = n;
	m.mime = mm;
	m.mime_off = 0;
	bool got = imap_search_match(&node, &m);

	if (!has_embedded) {
		bool want = false;
		for (uint32_t i = 0; i < mm->n_parts && !want; i++) {
			const struct mime_part *p = &mm->parts[i];
			if (p->kind == MIME_KIND_LEAF && is(p->type, "text"))
				want = ref_part(d + p->body_off, p->body_len, p,
						node.u.text.pat.folded, pl);
		}
		CHECK(got == want);
	}
	imap_arena_destroy(&a);
	mime_msg_free(&mm);
	free(blob);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	const uint8_t *d = data + 1;
	size_t n = size - 1;

	check_decoders(d, n, (uint32_t)ctl * 2654435761u);
	check_search(d, n, ctl);
	return 0;
}
