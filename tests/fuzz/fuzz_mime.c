/*
 * fuzz_mime.c - libFuzzer target for popnode/mime_*.c and imapproxy/imap_body.c.
 *
 * The input is a message.  It is parsed from an exact-size copy, the blob
 * decoded, and the tree checked for every invariant the IMAP side relies
 * on (ranges nested in the message and in their parents, children in
 * order, line counts equal to the LFs of each body, kinds matching
 * types).  ENVELOPE, BODY and BODYSTRUCTURE are rendered and run through a
 * small IMAP syntax checker (balanced lists, valid quoted strings, exact
 * literal lengths).  A set of sections is located with a per-recipient
 * prefix and the ranges checked to lie inside the served message;
 * HEADER.FIELDS output must end with the blank line.  Finally one byte of
 * the blob is damaged (position and mask from the input): the decoder
 * must refuse it or return a tree that passes the same checks.
 *
 * Any violation aborts, so the fuzzer reports it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_body.h"
#include "mime.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char PREFIX[] = "Return-Path: <a@b>\r\nDelivered-To: u@x\r\n";

static void check_tree(const struct mime_msg *m, const char *msg, size_t len)
{
	CHECK(m->n_parts >= 1 && m->n_parts <= MIME_PARTS_MAX);
	CHECK(m->msg_len == len);
	CHECK(m->parts[0].hdr_off == 0);
	CHECK((uint64_t)m->parts[0].body_off + m->parts[0].body_len == len);
	for (uint32_t i = 0; i < m->n_parts; i++) {
		const struct mime_part *p = &m->parts[i];
		uint64_t end = (uint64_t)p->body_off + p->body_len, cursor = p->body_off;
		uint32_t n = 0;

		CHECK(p->index == i);
		CHECK(p->body_off == (uint64_t)p->hdr_off + p->hdr_len);
		CHECK(end <= len);
		CHECK(p->type.p != NULL && p->subtype.p != NULL && p->encoding.p != NULL);
		CHECK(p->depth <= MIME_DEPTH_MAX);
		CHECK(p->has_envelope == (p->parent == NULL || p->parent->kind == MIME_KIND_MESSAGE));
		if (msg != NULL) {
			uint64_t lf = 0;

			for (uint32_t k = 0; k < p->body_len; k++)
				lf += msg[p->body_off + k] == '\n';
			CHECK(lf == p->body_lines);
		}
		for (const struct mime_part *c = p->child; c != NULL; c = c->next) {
			CHECK(c->parent == p);
			CHECK(c->depth == p->depth + 1);
			CHECK(c->hdr_off >= cursor);
			cursor = (uint64_t)c->body_off + c->body_len;
			CHECK(cursor <= end);
			n++;
		}
		CHECK(n == p->n_children);
		switch (p->kind) {
		case MIME_KIND_LEAF:
			CHECK(n == 0 && !mime_str_eq(p->type, "multipart"));
			break;
		case MIME_KIND_MULTIPART:
			CHECK(n >= 1 && mime_str_eq(p->type, "multipart"));
			break;
		case MIME_KIND_MESSAGE:
			CHECK(n == 1 && p->child->hdr_off == p->body_off &&
			      (uint64_t)p->child->body_off + p->child->body_len == end);
			break;
		}
	}
}

/* IMAP syntax of rendered values: lists, NIL, numbers, quoted strings,
 * literals.  Returns the index after one value. */
static size_t check_value(const char *s, size_t n, size_t i, int depth)
{
	CHECK(i < n && depth < 200);
	if (s[i] == '(') {
		i++;
		for (bool first = true; ; first = false) {
			CHECK(i < n);
			if (s[i] == ')')
				return i + 1;
			if (!first && s[i] == ' ')
				i++;
			i = check_value(s, n, i, depth + 1);
		}
	}
	if (s[i] == '"') {
		for (i++; i < n && s[i] != '"'; i++) {
			unsigned char c = (unsigned char)s[i];

			CHECK(c != '\r' && c != '\n' && c != 0 && c < 0x80 && c != '\\');
		}
		CHECK(i < n);
		return i + 1;
	}
	if (s[i] == '{') {
		size_t len = 0;

		for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			len = len * 10 + (size_t)(s[i] - '0');
		CHECK(i + 3 <= n && s[i] == '}' && s[i + 1] == '\r' && s[i + 2] == '\n');
		i += 3;
		CHECK(len <= n - i);
		return i + len;
	}
	if (n - i >= 3 && memcmp(s + i, "NIL", 3) == 0)
		return i + 3;
	CHECK(s[i] >= '0' && s[i] <= '9');
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	return i;
}

static void check_rendered(const struct imap_buf *b)
{
	CHECK(!b->failed && b->len > 0);
	CHECK(check_value(b->data, b->len, 0, 0) == b->len);
}

static void render_all(const struct mime_msg *m)
{
	struct imap_buf b;

	imap_buf_init(&b);
	CHECK(imap_render_envelope(m, &b) == 0);
	check_rendered(&b);
	imap_buf_reset(&b);
	CHECK(imap_render_body(m, true, &b) == 0);
	check_rendered(&b);
	imap_buf_reset(&b);
	CHECK(imap_render_body(m, false, &b) == 0);
	check_rendered(&b);
	for (uint32_t i = 0; i < m->n_parts; i++) {
		imap_buf_reset(&b);
		CHECK(imap_render_part_envelope(&m->parts[i], &b) == (m->parts[i].has_envelope ? 0 : -1));
		if (m->parts[i].has_envelope)
			check_rendered(&b);
	}
	imap_buf_free(&b);
}

static void check_sections(const struct mime_msg *m, const char *msg, size_t len)
{
	static const char *const secs[] = {
		"", "HEADER", "TEXT", "1", "2", "3", "1.MIME", "2.MIME", "1.1", "1.2",
		"2.1", "1.1.1", "2.2.1", "1.HEADER", "2.TEXT", "1.1.MIME",
		"HEADER.FIELDS (From To Subject Delivered-To)",
		"HEADER.FIELDS.NOT (Return-Path Received)", "1.HEADER.FIELDS (Subject)",
		"2.1.HEADER.FIELDS.NOT (X)",
	};
	struct imap_msgdata md = { PREFIX, sizeof(PREFIX) - 1, msg, len };
	uint64_t total = sizeof(PREFIX) - 1 + (uint64_t)len;
	struct imap_buf b;

	imap_buf_init(&b);
	for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
		struct imap_section sec;
		struct imap_byterange r;
		const char *err;
		enum imap_loc l;

		CHECK(imap_section_parse(secs[i], strlen(secs[i]), &sec, &err) == 0);
		l = imap_section_locate(m, sizeof(PREFIX) - 1, &sec, &r);
		if (l != IMAP_LOC_OK) {
			CHECK(r.off == 0 && r.len == 0);
			continue;
		}
		CHECK(r.off <= total && r.len <= total - r.off);
		imap_buf_reset(&b);
		if (sec.kind == IMAP_SECT_FIELDS || sec.kind == IMAP_SECT_FIELDS_NOT) {
			CHECK(imap_header_filter(&md, &r, &sec, &b) == 0);
			CHECK(b.len >= 2 && memcmp(b.data + b.len - 2, "\r\n", 2) == 0);
			CHECK(b.len <= r.len + 4);
		} else {
			CHECK(imap_msgdata_append(&md, &r, &b) == 0);
			CHECK(b.len == r.len);
		}
	}
	imap_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *msg = malloc(size ? size : 1);
	uint8_t *blob, *blob2;
	size_t bl, bl2;
	struct mime_msg *m;
	uint32_t h = 2166136261u;

	if (msg == NULL)
		return 0;
	memcpy(msg, data, size);
	CHECK(mime_parse(msg, size, &blob, &bl) == 0);
	CHECK(bl <= MIME_BLOB_MAX);
	CHECK(mime_parse(msg, size, &blob2, &bl2) == 0);
	CHECK(bl == bl2 && memcmp(blob, blob2, bl) == 0);
	free(blob2);
	CHECK(mime_blob_decode(blob, bl, &m) == 0);
	check_tree(m, msg, size);
	render_all(m);
	check_sections(m, msg, size);
	mime_msg_free(&m);
	CHECK(m == NULL);

	/* damage one byte of the blob */
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 16777619u;
	blob[h % bl] ^= (uint8_t)(1u << ((h >> 24) & 7));
	if (mime_blob_decode(blob, bl, &m) == 0) {
		check_tree(m, NULL, m->msg_len);
		render_all(m);
		mime_msg_free(&m);
	}
	free(blob);
	free(msg);
	return 0;
}
