/*
 * fuzz_imap.c - libFuzzer target for the IMAP command reader and parser,
 * the search evaluator, sequence sets and modified UTF-7.
 *
 * The first input byte picks the feeding pattern (chunk size, UTF-8
 * mailbox names); the rest is a client byte stream fed through
 * imap_reader_feed() with small limits so that every limit path is
 * reached.  Each complete command is parsed and its result checked for
 * consistency: strings NUL-terminated with no NUL inside, sequence sets
 * sorted and merged, every search tree evaluated against a message made
 * of the input itself, error texts printable.  After AUTHENTICATE and IDLE
 * the next line is read in raw-line mode, as the session does.  The whole
 * input is also given to imap_parse_command() as one (possibly
 * inconsistent) command, and every line is run through mUTF-7 decoding
 * (and, if valid, re-encoding, which must give back the same bytes) and
 * UTF-8 -> mUTF-7 -> UTF-8.
 *
 * Built by the Makefile with clang from this file and the sources listed
 * in FUZZ_imap_SRCS (all libc-only).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"
#include "imap_search.h"
#include "imap_seqset.h"
#include "imap_utf7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *g_data;
static size_t g_size;

static void check_str(const struct imap_str *s)
{
	if (s->s == NULL || s->s[s->len] != '\0' || strlen(s->s) != s->len)
		abort();
}

static void check_set(const struct imap_seqset *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++) {
		if (s->r[i].lo == 0 || s->r[i].lo > s->r[i].hi)
			abort();
		if (i > 0 && (uint64_t)s->r[i - 1].hi + 1 >= s->r[i].lo)
			abort();
	}
	/* resolve and iterate agree for a few mailbox sizes */
	static const uint32_t maxes[] = { 0, 1, 7, 1000 };
	for (size_t k = 0; k < sizeof(maxes) / sizeof(maxes[0]); k++) {
		struct imap_range *out = malloc((s->n + 1) * sizeof(*out));
		if (out == NULL)
			return;
		size_t n = imap_seqset_resolve(s, maxes[k], out);
		uint64_t total = 0;
		for (size_t i = 0; i < n; i++) {
			if (out[i].lo < 1 || out[i].hi > maxes[k] || out[i].lo > out[i].hi)
				abort();
			total += (uint64_t)out[i].hi - out[i].lo + 1;
		}
		if (total != imap_seqset_count(s, maxes[k]))
			abort();
		if (maxes[k] <= 1000) {
			struct imap_seqset_iter it;
			uint32_t x, prev = 0;
			uint64_t seen = 0;
			imap_seqset_iter_init(&it, s, maxes[k]);
			while (imap_seqset_iter_next(&it, &x)) {
				if (x <= prev || !imap_seqset_contains(s, maxes[k], x))
					abort();
				prev = x;
				seen++;
			}
			if (seen != total)
				abort();
		}
		free(out);
	}
	char buf[64];
	imap_seqset_format(s, buf, sizeof(buf));
}

static int kw_lookup(void *ctx, const char *name, size_t len)
{
	(void)ctx;
	return len > 0 ? (int)((unsigned char)name[0] % 70) - 3 : -1;
}

static int get_text(void *ctx, struct imap_search_text *t)
{
	(void)ctx;
	size_t half = g_size / 2;
	t->p[0] = (const char *)g_data;
	t->len[0] = half;
	t->p[1] = (const char *)g_data + half;
	t->len[1] = g_size - half;
	return 0;
}

static void check_tree(const struct imap_search_node *n, unsigned depth)
{
	if (depth > 200)
		abort();
	switch (n->type) {
	case IMAP_SEARCH_AND:
	case IMAP_SEARCH_OR:
	case IMAP_SEARCH_NOT:
		for (const struct imap_search_node *k = n->child; k != NULL; k = k->next)
			check_tree(k, depth + 1);
		if (n->type == IMAP_SEARCH_NOT && (n->child == NULL || n->child->next != NULL))
			abort();
		if (n->type == IMAP_SEARCH_OR && (n->child == NULL || n->child->next == NULL))
			abort();
		break;
	case IMAP_SEARCH_SEQSET:
	case IMAP_SEARCH_UIDSET:
		check_set(n->u.set);
		break;
	case IMAP_SEARCH_HEADER:
		if (n->u.text.field == NULL || n->u.text.field_len == 0)
			abort();
		/* fall through */
	case IMAP_SEARCH_BODY:
	case IMAP_SEARCH_TEXT:
		if (n->u.text.pat.s[n->u.text.pat.len] != '\0')
			abort();
		break;
	default:
		if ((unsigned)n->type >= IMAP_SEARCH_TYPE_COUNT)
			abort();
		break;
	}
}

static void check_search(struct imap_command *c)
{
	struct imap_search_node *t = c->u.search.tree;

	if (t == NULL)
		abort();
	check_tree(t, 0);
	imap_search_bind_keywords(t, kw_lookup, NULL);
	(void)imap_search_needs(t);
	struct imap_search_msg m = {
		.seq = 3, .uid = 7, .max_seq = 5, .max_uid = 9, .flags = IMAP_FLAG_SEEN,
		.keywords = 0x5555, .size = g_size, .modseq = 42, .internaldate = 1000000000,
		.tz_offset = 3600, .get_text = get_text,
	};
	(void)imap_search_match(t, &m);
	m.get_text = NULL;
	m.text.p[0] = (const char *)g_data;
	m.text.len[0] = g_size;
	(void)imap_search_match(t, &m);
}

static void check_flags(const struct imap_flags *f)
{
	if (f->system & ~0x1fu)
		abort();
	for (size_t i = 0; i < f->n_keywords; i++)
		check_str(&f->keywords[i]);
}

static void check_command(struct imap_command *c)
{
	if (c->tag[0] == '\0' || strlen(c->tag) > IMAP_TAG_MAX || (unsigned)c->id >= IMAP_CMD_COUNT)
		abort();
	switch (c->id) {
	case IMAP_CMD_AUTHENTICATE:
		check_str(&c->u.auth.mech);
		if (c->u.auth.has_ir)
			check_str(&c->u.auth.ir);
		break;
	case IMAP_CMD_LOGIN:
		check_str(&c->u.login.user);
		check_str(&c->u.login.pass);
		break;
	case IMAP_CMD_SELECT:
	case IMAP_CMD_EXAMINE:
		check_str(&c->u.select.mailbox);
		check_set(c->u.select.known_uids);
		check_set(c->u.select.match_seqs);
		check_set(c->u.select.match_uids);
		if ((c->u.select.match_seqs == NULL) != (c->u.select.match_uids == NULL))
			abort();
		break;
	case IMAP_CMD_DELETE:
	case IMAP_CMD_SUBSCRIBE:
	case IMAP_CMD_UNSUBSCRIBE:
	case IMAP_CMD_GETQUOTAROOT:
		check_str(&c->u.mailbox.mailbox);
		break;
	case IMAP_CMD_CREATE:
		check_str(&c->u.create.mailbox);
		break;
	case IMAP_CMD_RENAME:
		check_str(&c->u.rename.from);
		check_str(&c->u.rename.to);
		break;
	case IMAP_CMD_LIST:
	case IMAP_CMD_LSUB:
		check_str(&c->u.list.ref);
		if (c->u.list.n_patterns == 0)
			abort();
		for (size_t i = 0; i < c->u.list.n_patterns; i++)
			check_str(&c->u.list.patterns[i]);
		break;
	case IMAP_CMD_STATUS:
		check_str(&c->u.status.mailbox);
		if (c->u.status.items == 0)
			abort();
		break;
	case IMAP_CMD_APPEND:
		check_str(&c->u.append.mailbox);
		check_flags(&c->u.append.flags);
		if (c->u.append.msg == NULL && c->u.append.msg_len > 0)
			abort();
		if (c->u.append.msg_len > 0)
			(void)((volatile const char *)c->u.append.msg)[c->u.append.msg_len - 1];
		break;
	case IMAP_CMD_SEARCH:
		check_search(c);
		break;
	case IMAP_CMD_FETCH:
		check_set(c->u.fetch.set);
		for (size_t i = 0; i < c->u.fetch.n_bodies; i++) {
			const struct imap_fetch_body *b = &c->u.fetch.bodies[i];
			check_str(&b->section);
			for (size_t k = 0; k < b->n_part; k++)
				if (b->part[k] == 0)
					abort();
			for (size_t k = 0; k < b->n_fields; k++)
				check_str(&b->fields[k]);
			if (b->partial && b->partial_count == 0)
				abort();
			if (b->kind == IMAP_SECTION_MIME && b->n_part == 0)
				abort();
		}
		break;
	case IMAP_CMD_STORE:
		check_set(c->u.store.set);
		check_flags(&c->u.store.flags);
		break;
	case IMAP_CMD_COPY:
	case IMAP_CMD_MOVE:
		check_set(c->u.copy.set);
		check_str(&c->u.copy.mailbox);
		break;
	case IMAP_CMD_EXPUNGE:
		if (c->uid)
			check_set(c->u.uid_expunge);
		break;
	case IMAP_CMD_ID:
		for (size_t i = 0; i < c->u.id.n_pairs; i++) {
			check_str(&c->u.id.pairs[i].name);
			check_str(&c->u.id.pairs[i].value);
		}
		break;
	case IMAP_CMD_ENABLE:
		for (size_t i = 0; i < c->u.enable.n_caps; i++)
			check_str(&c->u.enable.caps[i]);
		break;
	case IMAP_CMD_COMPRESS:
		check_str(&c->u.compress.mech);
		break;
	case IMAP_CMD_GETQUOTA:
		check_str(&c->u.quota_root);
		break;
	default:
		break;
	}
}

static void check_error(const struct imap_error *e)
{
	if (e->code == IMAP_OK || strlen(e->tag) > IMAP_TAG_MAX)
		abort();
	for (const char *p = e->text; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			abort();
	if (imap_error_status(e) == NULL)
		abort();
}

static void check_utf7(const char *p, size_t len)
{
	size_t cap = IMAP_UTF7_ENCODED_MAX(len) + IMAP_UTF7_DECODED_MAX(len) + 8;
	char *a = malloc(cap), *b = malloc(cap);
	size_t an, bn;

	if (a == NULL || b == NULL)
		goto out;
	if (imap_utf7_decode(p, len, a, cap, &an) == 0) {
		if (an > IMAP_UTF7_DECODED_MAX(len) || !imap_utf8_valid(a, an))
			abort();
		if (imap_utf7_encode(a, an, b, cap, &bn) != 0 || bn != len || memcmp(b, p, len) != 0)
			abort();
	}
	if (imap_utf8_valid(p, len) && memchr(p, '\0', len) == NULL) {
		if (imap_utf7_encode(p, len, a, cap, &an) != 0 || an > IMAP_UTF7_ENCODED_MAX(len))
			abort();
		if (imap_utf7_decode(a, an, b, cap, &bn) != 0 || bn != len || memcmp(b, p, len) != 0)
			abort();
	}
out:
	free(a);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;
	g_data = data;
	g_size = size;

	struct imap_limits lim;
	imap_limits_default(&lim);
	lim.max_line = 512;
	lim.max_literal = 256;
	lim.max_append_literal = 1024;
	lim.max_command = 2048;
	lim.max_skip = 4096;
	lim.max_depth = 12;
	lim.utf8_accept = (mode & 0x80) != 0;
	size_t chunk = (mode & 0x0f) == 0 ? size : (mode & 0x0f);

	struct imap_reader *r = imap_reader_new(&lim);
	if (r == NULL)
		return 0;
	size_t pos = 0;
	bool line_mode = false;
	while (pos < size) {
		size_t n = size - pos < chunk ? size - pos : chunk;
		size_t used = 0;
		enum imap_read_status st;
		if (line_mode) {
			const char *line;
			size_t ll;
			st = imap_reader_feed_line(r, data + pos, n, &used, &line, &ll);
			if (st == IMAP_READ_LINE) {
				if (ll > lim.max_line || memchr(line, '\n', ll) != NULL)
					abort();
				(void)imap_is_done_line(line, ll);
				line_mode = false;
			}
		} else {
			st = imap_reader_feed(r, data + pos, n, &used);
		}
		if (used > n)
			abort();
		pos += used;
		if (st == IMAP_READ_COMMAND) {
			struct imap_command *c = NULL;
			struct imap_error e;
			if (imap_reader_parse(r, &c, &e) == IMAP_OK) {
				check_command(c);
				if ((c->id == IMAP_CMD_AUTHENTICATE && !c->u.auth.has_ir) ||
				    c->id == IMAP_CMD_IDLE)
					line_mode = (mode & 0x40) != 0;
				imap_command_free(&c);
			} else {
				if (c != NULL)
					abort();
				check_error(&e);
			}
			if (imap_reader_buffered(r) != 0)
				abort();
		} else if (st == IMAP_READ_ERROR) {
			const struct imap_error *e = imap_reader_error(r);
			check_error(e);
			if (e->fatal)
				break;
		} else if (st == IMAP_READ_MORE && used != n) {
			abort();
		}
		if (imap_reader_buffered(r) > lim.max_command + lim.max_append_literal + 64)
			abort();
	}
	imap_reader_destroy(&r);

	/* the whole input as one command */
	struct imap_command *c = NULL;
	struct imap_error e;
	if (imap_parse_command(data, size, &lim, &c, &e) == IMAP_OK) {
		check_command(c);
		imap_command_free(&c);
	} else {
		check_error(&e);
	}

	/* mUTF-7 on every line */
	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i == size || data[i] == '\n') {
			check_utf7((const char *)data + start, i - start);
			start = i + 1;
		}
	}
	return 0;
}
