/*
 * imap_search_parse.c - the arguments of [UID] SEARCH: RETURN options
 * (RFC 4731), CHARSET, and every RFC 3501 search key plus MODSEQ
 * (RFC 7162), into the tree described in imap_search.h.
 *
 * Recursive descent; "(", NOT and OR each count one nesting level
 * (p_enter), so both this parser and the evaluator recurse at most
 * lim->max_depth deep.  Rewrites (UNSEEN -> NOT SEEN, FROM -> HEADER
 * From, ...) and flattening happen while building, and every AND's
 * children are ordered cheapest first.
 */
#include <string.h>
#include <strings.h>

#include "imap_parse.h"
#include "imap_parse_private.h"

static struct imap_search_node *node_new(struct pctx *c, enum imap_search_type t)
{
	struct imap_search_node *n = imap_arena_zalloc(c->a, sizeof(*n));

	if (n == NULL) {
		p_nomem(c);
		return NULL;
	}
	n->type = t;
	return n;
}

/* Append child (or, if it has the same n-ary type, its children) to
 * parent's child list; *tail tracks the last child. */
static void add_child(struct imap_search_node *parent, struct imap_search_node **tail,
		      struct imap_search_node *ch)
{
	struct imap_search_node *first = ch, *last = ch;

	if (ch->type == parent->type && (ch->type == IMAP_SEARCH_AND || ch->type == IMAP_SEARCH_OR) &&
	    ch->child != NULL) {
		first = ch->child;
		for (last = first; last->next != NULL; last = last->next)
			;
	} else {
		ch->next = NULL;
	}
	if (*tail == NULL)
		parent->child = first;
	else
		(*tail)->next = first;
	*tail = last;
}

static unsigned cost(const struct imap_search_node *n)
{
	switch (n->type) {
	case IMAP_SEARCH_SENTBEFORE:
	case IMAP_SEARCH_SENTON:
	case IMAP_SEARCH_SENTSINCE:
	case IMAP_SEARCH_HEADER:
		return 1;
	case IMAP_SEARCH_BODY:
	case IMAP_SEARCH_TEXT:
		return 2;
	case IMAP_SEARCH_AND:
	case IMAP_SEARCH_OR:
	case IMAP_SEARCH_NOT: {
		unsigned m = 0;
		for (const struct imap_search_node *k = n->child; k != NULL; k = k->next) {
			unsigned x = cost(k);	/* depth bounded by the parser */
			if (x > m)
				m = x;
		}
		return m;
	}
	default:
		return 0;
	}
}

/* Stable reorder of an AND's children by cost (three buckets). */
static void order_and(struct imap_search_node *and)
{
	struct imap_search_node *head[3] = { 0 }, *tail[3] = { 0 };

	for (struct imap_search_node *k = and->child, *nx; k != NULL; k = nx) {
		nx = k->next;
		unsigned b = cost(k);
		k->next = NULL;
		if (tail[b] == NULL)
			head[b] = k;
		else
			tail[b]->next = k;
		tail[b] = k;
	}
	struct imap_search_node *first = NULL, *last = NULL;
	for (int b = 0; b < 3; b++) {
		if (head[b] == NULL)
			continue;
		if (last == NULL)
			first = head[b];
		else
			last->next = head[b];
		last = tail[b];
	}
	and->child = first;
}

static struct imap_search_node *flag_node(struct pctx *c, uint32_t flag, bool neg)
{
	struct imap_search_node *f = node_new(c, IMAP_SEARCH_FLAG);

	if (f == NULL)
		return NULL;
	f->u.flag = flag;
	if (!neg)
		return f;
	struct imap_search_node *n = node_new(c, IMAP_SEARCH_NOT);
	if (n == NULL)
		return NULL;
	n->child = f;
	return n;
}

static struct imap_search_node *not_of(struct pctx *c, struct imap_search_node *x)
{
	struct imap_search_node *n = node_new(c, IMAP_SEARCH_NOT);

	if (n == NULL)
		return NULL;
	x->next = NULL;
	n->child = x;
	return n;
}

static int p_text(struct pctx *c, const char *what, enum imap_search_type t, const char *field,
		  struct imap_search_node **out)
{
	struct imap_str v;
	struct imap_search_node *n;

	if (p_sp(c, what) < 0 || p_astring(c, what, &v) < 0 || (n = node_new(c, t)) == NULL)
		return -1;
	if (field != NULL) {
		n->u.text.field = field;
		n->u.text.field_len = strlen(field);
	}
	if (imap_search_pattern_init(&n->u.text.pat, v.s, v.len, c->a) < 0)
		return p_nomem(c);
	*out = n;
	return 0;
}

static const struct {
	const char *name;
	uint32_t flag;
	bool neg;
} flag_keys[] = {
	{ "ANSWERED", IMAP_FLAG_ANSWERED, false },   { "DELETED", IMAP_FLAG_DELETED, false },
	{ "DRAFT", IMAP_FLAG_DRAFT, false },	     { "FLAGGED", IMAP_FLAG_FLAGGED, false },
	{ "RECENT", IMAP_FLAG_RECENT, false },	     { "SEEN", IMAP_FLAG_SEEN, false },
	{ "UNANSWERED", IMAP_FLAG_ANSWERED, true },  { "UNDELETED", IMAP_FLAG_DELETED, true },
	{ "UNDRAFT", IMAP_FLAG_DRAFT, true },	     { "UNFLAGGED", IMAP_FLAG_FLAGGED, true },
	{ "UNSEEN", IMAP_FLAG_SEEN, true },
};

static const struct {
	const char *name;
	const char *field;
} header_keys[] = {
	{ "BCC", "Bcc" }, { "CC", "Cc" }, { "FROM", "From" }, { "SUBJECT", "Subject" }, { "TO", "To" },
};

static const struct {
	const char *name;
	enum imap_search_type t;
} date_keys[] = {
	{ "BEFORE", IMAP_SEARCH_BEFORE },	  { "ON", IMAP_SEARCH_ON },
	{ "SINCE", IMAP_SEARCH_SINCE },		  { "SENTBEFORE", IMAP_SEARCH_SENTBEFORE },
	{ "SENTON", IMAP_SEARCH_SENTON },	  { "SENTSINCE", IMAP_SEARCH_SENTSINCE },
};

static int p_key(struct pctx *c, struct imap_search_node **out);

/* "(" key *(SP key) ")" -> AND (or the single key) */
static int p_group(struct pctx *c, struct imap_search_node **out)
{
	struct imap_search_node *and, *tail = NULL, *k;
	unsigned count = 0;

	c->pos++;	/* '(' */
	if (p_enter(c) < 0 || (and = node_new(c, IMAP_SEARCH_AND)) == NULL)
		return -1;
	if (p_peek(c) == ')')
		return p_fail(c, IMAP_ERR_SYNTAX, "Empty search group");
	for (;;) {
		if (p_key(c, &k) < 0)
			return -1;
		add_child(and, &tail, k);
		count++;
		if (p_opt_char(c, ')'))
			break;
		if (p_peek(c) != ' ')
			return p_fail(c, IMAP_ERR_SYNTAX, "Missing ')' in search group");
		c->pos++;
	}
	p_leave(c);
	if (count == 1 && and->child->next == NULL) {
		*out = and->child;
		return 0;
	}
	order_and(and);
	*out = and;
	return 0;
}

static int p_modseq_key(struct pctx *c, struct imap_search_node **out)
{
	struct imap_search_node *n;

	if (p_sp(c, "MODSEQ value") < 0)
		return -1;
	if (p_peek(c) == '"' || p_peek(c) == '{') {
		/* entry-name SP entry-type-req: accepted, not used (we keep
		 * one modseq per message) */
		struct imap_str name;
		const char *p;
		size_t len;
		if (p_string(c, "MODSEQ entry name", &name) < 0 || p_sp(c, "MODSEQ entry type") < 0 ||
		    p_atom(c, "MODSEQ entry type", false, &p, &len) < 0)
			return -1;
		if (!p_word_eq(p, len, "priv") && !p_word_eq(p, len, "shared") &&
		    !p_word_eq(p, len, "all"))
			return p_fail(c, IMAP_ERR_SYNTAX, "Invalid MODSEQ entry type");
		if (p_sp(c, "MODSEQ value") < 0)
			return -1;
	}
	if ((n = node_new(c, IMAP_SEARCH_MODSEQ)) == NULL ||
	    p_number64(c, "MODSEQ value", true, &n->u.modseq) < 0)
		return -1;
	c->cmd->u.search.has_modseq = true;
	*out = n;
	return 0;
}

static int p_key(struct pctx *c, struct imap_search_node **out)
{
	int ch = p_peek(c);
	struct imap_search_node *n = NULL;
	const char *w;
	size_t len;

	if (ch == '(')
		return p_group(c, out);
	if ((ch >= '0' && ch <= '9') || ch == '*' || ch == '$') {
		if ((n = node_new(c, IMAP_SEARCH_SEQSET)) == NULL || p_seqset(c, &n->u.set) < 0)
			return -1;
		*out = n;
		return 0;
	}
	if (ch < 0)
		return p_fail(c, IMAP_ERR_SYNTAX, "Missing search key");
	if (p_atom(c, "search key", false, &w, &len) < 0)
		return -1;

	for (size_t i = 0; i < sizeof(flag_keys) / sizeof(flag_keys[0]); i++)
		if (p_word_eq(w, len, flag_keys[i].name)) {
			if ((n = flag_node(c, flag_keys[i].flag, flag_keys[i].neg)) == NULL)
				return -1;
			*out = n;
			return 0;
		}
	for (size_t i = 0; i < sizeof(header_keys) / sizeof(header_keys[0]); i++)
		if (p_word_eq(w, len, header_keys[i].name))
			return p_text(c, "search string", IMAP_SEARCH_HEADER, header_keys[i].field,
				      out);
	for (size_t i = 0; i < sizeof(date_keys) / sizeof(date_keys[0]); i++)
		if (p_word_eq(w, len, date_keys[i].name)) {
			if ((n = node_new(c, date_keys[i].t)) == NULL || p_sp(c, "search date") < 0 ||
			    p_date(c, "search date", &n->u.day) < 0)
				return -1;
			*out = n;
			return 0;
		}
	if (p_word_eq(w, len, "ALL")) {
		n = node_new(c, IMAP_SEARCH_ALL);
	} else if (p_word_eq(w, len, "NEW")) {
		struct imap_search_node *r = flag_node(c, IMAP_FLAG_RECENT, false);
		struct imap_search_node *s = flag_node(c, IMAP_FLAG_SEEN, true);
		if (r == NULL || s == NULL || (n = node_new(c, IMAP_SEARCH_AND)) == NULL)
			return -1;
		n->child = r;
		r->next = s;
	} else if (p_word_eq(w, len, "OLD")) {
		n = flag_node(c, IMAP_FLAG_RECENT, true);
	} else if (p_word_eq(w, len, "KEYWORD") || p_word_eq(w, len, "UNKEYWORD")) {
		bool neg = (w[0] | 0x20) == 'u';
		const char *k;
		size_t klen;
		if (p_sp(c, "keyword") < 0 || p_atom(c, "keyword", false, &k, &klen) < 0 ||
		    (n = node_new(c, IMAP_SEARCH_KEYWORD)) == NULL)
			return -1;
		if ((n->u.kw.name = imap_arena_strndup(c->a, k, klen)) == NULL)
			return p_nomem(c);
		n->u.kw.len = klen;
		n->u.kw.bit = -1;
		if (neg)
			n = not_of(c, n);
	} else if (p_word_eq(w, len, "BODY")) {
		return p_text(c, "search string", IMAP_SEARCH_BODY, NULL, out);
	} else if (p_word_eq(w, len, "TEXT")) {
		return p_text(c, "search string", IMAP_SEARCH_TEXT, NULL, out);
	} else if (p_word_eq(w, len, "HEADER")) {
		struct imap_str f;
		if (p_sp(c, "header field name") < 0 || p_astring(c, "header field name", &f) < 0)
			return -1;
		if (f.len == 0)
			return p_fail(c, IMAP_ERR_SYNTAX, "Empty header field name");
		for (size_t i = 0; i < f.len; i++)
			if ((unsigned char)f.s[i] <= 0x20 || (unsigned char)f.s[i] >= 0x7f ||
			    f.s[i] == ':')
				return p_fail(c, IMAP_ERR_SYNTAX, "Invalid header field name");
		if (p_text(c, "search string", IMAP_SEARCH_HEADER, NULL, &n) < 0)
			return -1;
		n->u.text.field = f.s;
		n->u.text.field_len = f.len;
	} else if (p_word_eq(w, len, "LARGER") || p_word_eq(w, len, "SMALLER")) {
		enum imap_search_type t = (w[0] | 0x20) == 'l' ? IMAP_SEARCH_LARGER
							      : IMAP_SEARCH_SMALLER;
		if ((n = node_new(c, t)) == NULL || p_sp(c, "size") < 0 ||
		    p_number64(c, "size", true, &n->u.size) < 0)
			return -1;
	} else if (p_word_eq(w, len, "UID")) {
		if ((n = node_new(c, IMAP_SEARCH_UIDSET)) == NULL || p_sp(c, "UID set") < 0 ||
		    p_seqset(c, &n->u.set) < 0)
			return -1;
	} else if (p_word_eq(w, len, "NOT")) {
		struct imap_search_node *k;
		if (p_sp(c, "search key after NOT") < 0 || p_enter(c) < 0 || p_key(c, &k) < 0)
			return -1;
		p_leave(c);
		n = not_of(c, k);
	} else if (p_word_eq(w, len, "OR")) {
		struct imap_search_node *a, *b, *tail = NULL;
		if (p_sp(c, "search key after OR") < 0 || p_enter(c) < 0 || p_key(c, &a) < 0 ||
		    p_sp(c, "second search key after OR") < 0 || p_key(c, &b) < 0)
			return -1;
		p_leave(c);
		if ((n = node_new(c, IMAP_SEARCH_OR)) == NULL)
			return -1;
		add_child(n, &tail, a);
		add_child(n, &tail, b);
	} else if (p_word_eq(w, len, "MODSEQ")) {
		return p_modseq_key(c, out);
	} else {
		return p_fail(c, IMAP_ERR_SYNTAX, "Unknown search key %.*s", (int)(len > 40 ? 40 : len),
			      w);
	}
	if (n == NULL)
		return -1;
	*out = n;
	return 0;
}

static int p_return_opts(struct pctx *c, struct imap_args_search *s)
{
	if (p_sp(c, "RETURN options") < 0 || p_char(c, '(', "RETURN options") < 0)
		return -1;
	s->return_given = true;
	if (!p_opt_char(c, ')')) {
		for (;;) {
			const char *w;
			size_t len;
			if (p_atom(c, "RETURN option", false, &w, &len) < 0)
				return -1;
			if (p_word_eq(w, len, "MIN"))
				s->return_opts |= IMAP_SEARCH_RET_MIN;
			else if (p_word_eq(w, len, "MAX"))
				s->return_opts |= IMAP_SEARCH_RET_MAX;
			else if (p_word_eq(w, len, "ALL"))
				s->return_opts |= IMAP_SEARCH_RET_ALL;
			else if (p_word_eq(w, len, "COUNT"))
				s->return_opts |= IMAP_SEARCH_RET_COUNT;
			else if (p_word_eq(w, len, "SAVE"))
				return p_fail(c, IMAP_ERR_SYNTAX, "RETURN SAVE (SEARCHRES) not supported");
			else
				return p_fail(c, IMAP_ERR_SYNTAX, "Unknown RETURN option %.*s",
					      (int)(len > 40 ? 40 : len), w);
			if (p_opt_char(c, ')'))
				break;
			if (p_peek(c) != ' ')
				return p_fail(c, IMAP_ERR_SYNTAX, "Missing ')' in RETURN options");
			c->pos++;
		}
	}
	if (s->return_opts == 0)
		s->return_opts = IMAP_SEARCH_RET_ALL;
	return 0;
}

/* The next atom, without consuming it, if it equals word. */
static bool next_word_is(struct pctx *c, const char *word)
{
	size_t wl = strlen(word);

	if (c->len - c->pos < wl + 1 || strncasecmp(c->buf + c->pos, word, wl) != 0)
		return false;
	return c->buf[c->pos + wl] == ' ';
}

int imap_parse_search_args(struct pctx *c)
{
	struct imap_args_search *s = &c->cmd->u.search;
	struct imap_search_node *and, *tail = NULL, *k;
	unsigned count = 0;

	if (p_sp(c, "search criteria") < 0)
		return -1;
	if (next_word_is(c, "RETURN")) {
		c->pos += 6;
		if (p_return_opts(c, s) < 0 || p_sp(c, "search criteria") < 0)
			return -1;
	}
	if (next_word_is(c, "CHARSET")) {
		struct imap_str cs;
		/* RFC 6855 3 (and erratum 4029): strings are UTF-8 once
		 * UTF8=ACCEPT is enabled; a charset label is a BAD */
		if (c->lim->utf8_accept)
			return p_fail(c, IMAP_ERR_SYNTAX,
				      "SEARCH CHARSET is not allowed after ENABLE UTF8=ACCEPT");
		c->pos += 7;
		if (p_sp(c, "charset") < 0 || p_astring(c, "charset", &cs) < 0)
			return -1;
		if (strcasecmp(cs.s, "US-ASCII") != 0 && strcasecmp(cs.s, "UTF-8") != 0)
			return p_fail(c, IMAP_ERR_BAD_CHARSET, "Unsupported charset");
		if (p_sp(c, "search criteria") < 0)
			return -1;
	}
	if ((and = node_new(c, IMAP_SEARCH_AND)) == NULL)
		return -1;
	for (;;) {
		if (p_key(c, &k) < 0)
			return -1;
		add_child(and, &tail, k);
		count++;
		if (p_at_end(c))
			break;
		if (p_sp(c, "search key") < 0)
			return -1;
	}
	if (count == 1 && and->child->next == NULL) {
		s->tree = and->child;
	} else {
		order_and(and);
		s->tree = and;
	}
	return 0;
}
