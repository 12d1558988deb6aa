/*
 * imap_parse_cmd.c - the IMAP handler table and the argument parsers of
 * every command but FETCH (imap_fetch_parse.c) and SEARCH
 * (imap_search_parse.c).  Each asks the tokenizer (imap_parse_tok.c) for
 * exactly the tokens its grammar allows after the command name.
 */
#include <string.h>

#include "imap_parse.h"
#include "imap_parse_private.h"

/* ---- commands ---------------------------------------------------------- */

static int cmd_noargs(struct pctx *c)
{
	return p_end(c);
}

static int cmd_authenticate(struct pctx *c)
{
	struct imap_args_auth *a = &c->cmd->u.auth;
	const char *p;
	size_t n;

	if (p_sp(c, "SASL mechanism") < 0 || p_atom(c, "SASL mechanism", false, &p, &n) < 0 ||
	    p_dup(c, p, n, &a->mech) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (a->mech.s[i] >= 'a' && a->mech.s[i] <= 'z')
			((char *)a->mech.s)[i] = (char)(a->mech.s[i] - 32);
	if (p_at_end(c))
		return 0;
	if (p_sp(c, "initial response") < 0 || p_atom(c, "initial response", false, &p, &n) < 0)
		return -1;
	a->has_ir = true;
	if (n == 1 && p[0] == '=') {
		a->ir.s = "";
		a->ir.len = 0;
	} else {
		for (size_t i = 0; i < n; i++) {
			char ch = p[i];
			if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			      (ch >= '0' && ch <= '9') || ch == '+' || ch == '/' || ch == '='))
				return p_fail(c, IMAP_ERR_SYNTAX,
					      "Invalid initial response: not base64");
		}
		if (p_dup(c, p, n, &a->ir) < 0)
			return -1;
	}
	return p_end(c);
}

static int cmd_login(struct pctx *c)
{
	struct imap_args_login *a = &c->cmd->u.login;

	if (p_sp(c, "user name") < 0 || p_astring(c, "user name", &a->user) < 0 ||
	    p_sp(c, "password") < 0 || p_astring(c, "password", &a->pass) < 0)
		return -1;
	return p_end(c);
}

static int cmd_mailbox(struct pctx *c)
{
	if (p_sp(c, "mailbox name") < 0 ||
	    p_mailbox(c, "mailbox name", &c->cmd->u.mailbox.mailbox) < 0)
		return -1;
	return p_end(c);
}

static int p_seqset_list_item(struct pctx *c, const struct imap_seqset **s)
{
	return p_seqset(c, s);
}

/* QRESYNC (uidvalidity modseq [known-uids] [(seqs uids)]) */
static int p_qresync(struct pctx *c, struct imap_args_select *s)
{
	const char *what = "QRESYNC parameters";

	if (p_char(c, '(', what) < 0 || p_enter(c) < 0)
		return -1;
	if (p_nz_number(c, "QRESYNC UIDVALIDITY", &s->uidvalidity) < 0 ||
	    p_sp(c, "QRESYNC modseq") < 0 || p_number64(c, "QRESYNC modseq", false, &s->modseq) < 0)
		return -1;
	if (p_opt_char(c, ' ')) {
		if (p_peek(c) != '(' && p_seqset_list_item(c, &s->known_uids) < 0)
			return -1;
		if (s->known_uids != NULL && p_opt_char(c, ' ') && p_peek(c) != '(')
			return p_fail(c, IMAP_ERR_SYNTAX, "Missing '(' in QRESYNC sequence match data");
		if (p_peek(c) == '(') {
			c->pos++;
			if (p_enter(c) < 0 || p_seqset(c, &s->match_seqs) < 0 ||
			    p_sp(c, "known UID set") < 0 || p_seqset(c, &s->match_uids) < 0 ||
			    p_char(c, ')', "QRESYNC sequence match data") < 0)
				return -1;
			p_leave(c);
			if (imap_seqset_count(s->match_seqs, UINT32_MAX) !=
			    imap_seqset_count(s->match_uids, UINT32_MAX))
				return p_fail(c, IMAP_ERR_SYNTAX,
					      "QRESYNC sequence match data sets differ in size");
		}
	}
	if (p_char(c, ')', what) < 0)
		return -1;
	p_leave(c);
	return 0;
}

static int p_select_param(struct pctx *c, void *arg)
{
	struct imap_args_select *s = arg;
	const char *p;
	size_t n;

	if (p_atom(c, "SELECT parameter", false, &p, &n) < 0)
		return -1;
	if (p_word_eq(p, n, "CONDSTORE")) {
		s->condstore = true;
		return 0;
	}
	if (p_word_eq(p, n, "QRESYNC")) {
		if (s->qresync)
			return p_fail(c, IMAP_ERR_SYNTAX, "QRESYNC given twice");
		s->qresync = true;
		s->condstore = true;
		if (p_sp(c, "QRESYNC parameters") < 0)
			return -1;
		return p_qresync(c, s);
	}
	return p_fail(c, IMAP_ERR_SYNTAX, "Unknown SELECT parameter %.*s", (int)(n > 40 ? 40 : n),
		      p);
}

static int cmd_select(struct pctx *c)
{
	struct imap_args_select *s = &c->cmd->u.select;

	if (p_sp(c, "mailbox name") < 0 || p_mailbox(c, "mailbox name", &s->mailbox) < 0)
		return -1;
	if (p_at_end(c))
		return 0;
	if (p_sp(c, "SELECT parameters") < 0 ||
	    p_list(c, "SELECT parameters", true, p_select_param, s) < 0)
		return -1;
	return p_end(c);
}

static const struct {
	const char *name;
	uint32_t bit;
} su_attrs[] = {
	{ "\\Sent", IMAP_SU_SENT },	{ "\\Drafts", IMAP_SU_DRAFTS }, { "\\Trash", IMAP_SU_TRASH },
	{ "\\Junk", IMAP_SU_JUNK },	{ "\\Archive", IMAP_SU_ARCHIVE }, { "\\All", IMAP_SU_ALL },
	{ "\\Flagged", IMAP_SU_FLAGGED },
};

static int p_use_attr(struct pctx *c, void *arg)
{
	uint32_t *bits = arg;
	size_t start = c->pos;
	const char *p;
	size_t n;

	if (p_char(c, '\\', "USE attribute") < 0 || p_atom(c, "USE attribute", false, &p, &n) < 0)
		return -1;
	p = c->buf + start;
	n = c->pos - start;
	for (size_t i = 0; i < sizeof(su_attrs) / sizeof(su_attrs[0]); i++)
		if (p_word_eq(p, n, su_attrs[i].name)) {
			*bits |= su_attrs[i].bit;
			return 0;
		}
	return p_fail(c, IMAP_ERR_USEATTR, "Unsupported special-use attribute %.*s",
		      (int)(n > 40 ? 40 : n), p);
}

static int p_create_param(struct pctx *c, void *arg)
{
	const char *p;
	size_t n;

	if (p_atom(c, "CREATE parameter", false, &p, &n) < 0)
		return -1;
	if (!p_word_eq(p, n, "USE"))
		return p_fail(c, IMAP_ERR_SYNTAX, "Unknown CREATE parameter %.*s",
			      (int)(n > 40 ? 40 : n), p);
	if (p_sp(c, "USE attributes") < 0)
		return -1;
	return p_list(c, "USE attributes", true, p_use_attr, arg);
}

static int cmd_create(struct pctx *c)
{
	struct imap_args_create *a = &c->cmd->u.create;

	if (p_sp(c, "mailbox name") < 0 || p_mailbox(c, "mailbox name", &a->mailbox) < 0)
		return -1;
	if (p_at_end(c))
		return 0;
	if (p_sp(c, "CREATE parameters") < 0 ||
	    p_list(c, "CREATE parameters", false, p_create_param, &a->special_use) < 0)
		return -1;
	return p_end(c);
}

static int cmd_rename(struct pctx *c)
{
	struct imap_args_rename *a = &c->cmd->u.rename;

	if (p_sp(c, "existing mailbox name") < 0 ||
	    p_mailbox(c, "existing mailbox name", &a->from) < 0 ||
	    p_sp(c, "new mailbox name") < 0 || p_mailbox(c, "new mailbox name", &a->to) < 0)
		return -1;
	return p_end(c);
}

static const struct {
	const char *name;
	uint32_t bit;
} status_items[] = {
	{ "MESSAGES", IMAP_STATUS_MESSAGES },	  { "RECENT", IMAP_STATUS_RECENT },
	{ "UIDNEXT", IMAP_STATUS_UIDNEXT },	  { "UIDVALIDITY", IMAP_STATUS_UIDVALIDITY },
	{ "UNSEEN", IMAP_STATUS_UNSEEN },	  { "HIGHESTMODSEQ", IMAP_STATUS_HIGHESTMODSEQ },
	{ "SIZE", IMAP_STATUS_SIZE },
};

static int p_status_item(struct pctx *c, void *arg)
{
	uint32_t *items = arg;
	const char *p;
	size_t n;

	if (p_atom(c, "STATUS item", false, &p, &n) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(status_items) / sizeof(status_items[0]); i++)
		if (p_word_eq(p, n, status_items[i].name)) {
			*items |= status_items[i].bit;
			return 0;
		}
	return p_fail(c, IMAP_ERR_SYNTAX, "Unknown STATUS item %.*s", (int)(n > 40 ? 40 : n), p);
}

static int cmd_status(struct pctx *c)
{
	struct imap_args_status *a = &c->cmd->u.status;

	if (p_sp(c, "mailbox name") < 0 || p_mailbox(c, "mailbox name", &a->mailbox) < 0 ||
	    p_sp(c, "STATUS items") < 0 ||
	    p_list(c, "STATUS items", false, p_status_item, &a->items) < 0)
		return -1;
	return p_end(c);
}

/* LIST ------------------------------------------------------------------ */

static int p_list_select_opt(struct pctx *c, void *arg)
{
	uint32_t *o = arg;
	const char *p;
	size_t n;

	if (p_atom(c, "LIST selection option", false, &p, &n) < 0)
		return -1;
	if (p_word_eq(p, n, "SUBSCRIBED"))
		*o |= IMAP_LIST_SEL_SUBSCRIBED;
	else if (p_word_eq(p, n, "REMOTE"))
		*o |= IMAP_LIST_SEL_REMOTE;
	else if (p_word_eq(p, n, "RECURSIVEMATCH"))
		*o |= IMAP_LIST_SEL_RECURSIVEMATCH;
	else if (p_word_eq(p, n, "SPECIAL-USE"))
		*o |= IMAP_LIST_SEL_SPECIAL_USE;
	else
		return p_fail(c, IMAP_ERR_SYNTAX, "Unknown LIST selection option %.*s",
			      (int)(n > 40 ? 40 : n), p);
	return 0;
}

static int p_list_return_opt(struct pctx *c, void *arg)
{
	struct imap_args_list *l = arg;
	const char *p;
	size_t n;

	if (p_atom(c, "LIST return option", false, &p, &n) < 0)
		return -1;
	if (p_word_eq(p, n, "SUBSCRIBED")) {
		l->return_opts |= IMAP_LIST_RET_SUBSCRIBED;
	} else if (p_word_eq(p, n, "CHILDREN")) {
		l->return_opts |= IMAP_LIST_RET_CHILDREN;
	} else if (p_word_eq(p, n, "SPECIAL-USE")) {
		l->return_opts |= IMAP_LIST_RET_SPECIAL_USE;
	} else if (p_word_eq(p, n, "STATUS")) {
		l->return_opts |= IMAP_LIST_RET_STATUS;
		if (p_sp(c, "LIST STATUS items") < 0 ||
		    p_list(c, "LIST STATUS items", false, p_status_item, &l->status_items) < 0)
			return -1;
	} else {
		return p_fail(c, IMAP_ERR_SYNTAX, "Unknown LIST return option %.*s",
			      (int)(n > 40 ? 40 : n), p);
	}
	return 0;
}

static int p_pattern_item(struct pctx *c, void *arg)
{
	struct imap_str *s = p_vec_push(c, arg);

	if (s == NULL)
		return -1;
	return p_list_mailbox(c, "mailbox pattern", s);
}

static int cmd_list(struct pctx *c)
{
	struct imap_args_list *l = &c->cmd->u.list;
	struct vec pats = { .elem = sizeof(struct imap_str) };
	bool lsub = c->cmd->id == IMAP_CMD_LSUB;

	if (p_sp(c, "reference name") < 0)
		return -1;
	if (!lsub && p_peek(c) == '(') {
		l->extended = true;
		if (p_list(c, "LIST selection options", true, p_list_select_opt,
			   &l->select_opts) < 0 ||
		    p_sp(c, "reference name") < 0)
			return -1;
		if (l->select_opts == IMAP_LIST_SEL_RECURSIVEMATCH)
			return p_fail(c, IMAP_ERR_SYNTAX,
				      "RECURSIVEMATCH needs another selection option");
	}
	if (p_astring(c, "reference name", &l->ref) < 0 || p_decode_mailbox(c, &l->ref, false) < 0 ||
	    p_sp(c, "mailbox pattern") < 0)
		return -1;
	if (!lsub && p_peek(c) == '(') {
		l->extended = true;
		if (p_list(c, "mailbox patterns", false, p_pattern_item, &pats) < 0)
			return -1;
	} else if (p_pattern_item(c, &pats) < 0) {
		return -1;
	}
	l->patterns = pats.v;
	l->n_patterns = pats.n;
	if (!lsub && p_peek(c) == ' ') {
		const char *p;
		size_t n;
		c->pos++;
		if (p_atom(c, "RETURN", false, &p, &n) < 0)
			return -1;
		if (!p_word_eq(p, n, "RETURN"))
			return p_fail(c, IMAP_ERR_SYNTAX, "Expected RETURN after LIST pattern");
		l->extended = true;
		if (p_sp(c, "LIST return options") < 0 ||
		    p_list(c, "LIST return options", true, p_list_return_opt, l) < 0)
			return -1;
	}
	return p_end(c);
}

/* APPEND ---------------------------------------------------------------- */

static int cmd_append(struct pctx *c)
{
	struct imap_args_append *a = &c->cmd->u.append;

	if (p_sp(c, "mailbox name") < 0 || p_mailbox(c, "mailbox name", &a->mailbox) < 0 ||
	    p_sp(c, "message literal") < 0)
		return -1;
	if (p_peek(c) == '(') {
		if (p_flag_list(c, &a->flags) < 0 || p_sp(c, "message literal") < 0)
			return -1;
	}
	if (p_peek(c) == '"') {
		struct imap_str d;
		if (p_quoted(c, "APPEND date", &d) < 0)
			return -1;
		if (imap_parse_date_time(d.s, d.len, &a->date, &a->date_tz) < 0)
			return p_fail(c, IMAP_ERR_SYNTAX,
				      "Invalid APPEND date-time: expected \"dd-Mon-yyyy hh:mm:ss +zzzz\"");
		a->has_date = true;
		if (p_sp(c, "message literal") < 0)
			return -1;
	}
	int ch = p_peek(c);
	if (ch == 'U' || ch == 'u') {
		/* RFC 6855 4: append-data =/ "UTF8" SP "(" literal8 ")" */
		const char *p;
		size_t n;
		if (p_atom(c, "message literal", false, &p, &n) < 0)
			return -1;
		if (!p_word_eq(p, n, "UTF8"))
			return p_fail(c, IMAP_ERR_SYNTAX, "APPEND message must be a literal");
		if (!c->lim->utf8_accept)
			return p_fail(c, IMAP_ERR_SYNTAX,
				      "APPEND UTF8 needs ENABLE UTF8=ACCEPT first");
		if (p_sp(c, "UTF8 message literal") < 0 ||
		    p_char(c, '(', "APPEND UTF8 data") < 0)
			return -1;
		if (p_peek(c) != '~')
			return p_fail(c, IMAP_ERR_SYNTAX,
				      "APPEND UTF8 message must be a literal8 (~{n})");
		if (p_literal_span(c, "APPEND message", true, true, &a->msg, &a->msg_len,
				   &a->literal8) < 0 ||
		    p_char(c, ')', "APPEND UTF8 data") < 0)
			return -1;
		a->utf8 = true;
	} else if (ch == '{' || ch == '~') {
		if (p_literal_span(c, "APPEND message", true, true, &a->msg, &a->msg_len,
				   &a->literal8) < 0)
			return -1;
	} else if (ch < 0) {
		return p_fail(c, IMAP_ERR_SYNTAX, "Missing message literal");
	} else {
		return p_fail(c, IMAP_ERR_SYNTAX, "APPEND message must be a literal");
	}
	if (!p_at_end(c))
		return p_fail(c, IMAP_ERR_SYNTAX, "Only one message per APPEND is supported");
	return 0;
}

/* STORE ----------------------------------------------------------------- */

static int p_store_modifier(struct pctx *c, void *arg)
{
	struct imap_args_store *s = arg;
	const char *p;
	size_t n;

	if (p_atom(c, "STORE modifier", false, &p, &n) < 0)
		return -1;
	if (!p_word_eq(p, n, "UNCHANGEDSINCE"))
		return p_fail(c, IMAP_ERR_SYNTAX, "Unknown STORE modifier %.*s",
			      (int)(n > 40 ? 40 : n), p);
	if (s->has_unchangedsince)
		return p_fail(c, IMAP_ERR_SYNTAX, "UNCHANGEDSINCE given twice");
	s->has_unchangedsince = true;
	if (p_sp(c, "UNCHANGEDSINCE value") < 0)
		return -1;
	return p_number64(c, "UNCHANGEDSINCE value", true, &s->unchangedsince);
}

static int cmd_store(struct pctx *c)
{
	struct imap_args_store *s = &c->cmd->u.store;
	const char *p;
	size_t n;

	if (p_sp(c, "sequence set") < 0 || p_seqset(c, &s->set) < 0 ||
	    p_sp(c, "STORE data item") < 0)
		return -1;
	if (p_peek(c) == '(') {
		if (p_list(c, "STORE modifiers", false, p_store_modifier, s) < 0 ||
		    p_sp(c, "STORE data item") < 0)
			return -1;
	}
	s->mode = IMAP_STORE_SET;
	if (p_opt_char(c, '+'))
		s->mode = IMAP_STORE_ADD;
	else if (p_opt_char(c, '-'))
		s->mode = IMAP_STORE_REMOVE;
	if (p_atom(c, "STORE data item", false, &p, &n) < 0)
		return -1;
	if (p_word_eq(p, n, "FLAGS.SILENT"))
		s->silent = true;
	else if (!p_word_eq(p, n, "FLAGS"))
		return p_fail(c, IMAP_ERR_SYNTAX, "Invalid STORE data item %.*s",
			      (int)(n > 40 ? 40 : n), p);
	if (p_sp(c, "flags") < 0)
		return -1;
	if (p_peek(c) == '(') {
		if (p_flag_list(c, &s->flags) < 0)
			return -1;
	} else {
		struct flag_acc f = { .kw = { .elem = sizeof(struct imap_str) } };
		for (;;) {
			if (p_flag(c, &f) < 0)
				return -1;
			if (p_peek(c) != ' ')
				break;
			c->pos++;
		}
		if (p_finish_flags(c, &f, &s->flags) < 0)
			return -1;
	}
	return p_end(c);
}

static int cmd_copy(struct pctx *c)
{
	struct imap_args_copy *a = &c->cmd->u.copy;

	if (p_sp(c, "sequence set") < 0 || p_seqset(c, &a->set) < 0 ||
	    p_sp(c, "mailbox name") < 0 || p_mailbox(c, "mailbox name", &a->mailbox) < 0)
		return -1;
	return p_end(c);
}

static int cmd_expunge(struct pctx *c)
{
	if (!c->cmd->uid)
		return p_end(c);
	if (p_sp(c, "UID set") < 0 || p_seqset(c, &c->cmd->u.uid_expunge) < 0)
		return -1;
	return p_end(c);
}

static int cmd_fetch(struct pctx *c)
{
	return imap_parse_fetch_args(c);
}

static int cmd_search(struct pctx *c)
{
	return imap_parse_search_args(c);
}

/* ID -------------------------------------------------------------------- */

#define ID_MAX_PAIRS 30
#define ID_NAME_MAX 30
#define ID_VALUE_MAX 1024

static int p_id_pair(struct pctx *c, void *arg)
{
	struct vec *v = arg;
	struct imap_id_pair *pr;

	if (v->n >= ID_MAX_PAIRS)
		return p_fail(c, IMAP_ERR_SYNTAX, "Too many ID fields (at most %d)", ID_MAX_PAIRS);
	if ((pr = p_vec_push(c, v)) == NULL)
		return -1;
	if (p_string(c, "ID field name", &pr->name) < 0)
		return -1;
	if (pr->name.len > ID_NAME_MAX)
		return p_fail(c, IMAP_ERR_SYNTAX, "ID field name too long");
	if (p_sp(c, "ID field value") < 0 ||
	    p_nstring(c, "ID field value", &pr->value, &pr->value_nil) < 0)
		return -1;
	if (pr->value.len > ID_VALUE_MAX)
		return p_fail(c, IMAP_ERR_SYNTAX, "ID field value too long");
	return 0;
}

static int cmd_id(struct pctx *c)
{
	struct imap_args_id *a = &c->cmd->u.id;
	struct vec v = { .elem = sizeof(struct imap_id_pair) };

	if (p_sp(c, "ID parameters") < 0)
		return -1;
	if (p_peek(c) == '(') {
		if (p_list(c, "ID parameters", true, p_id_pair, &v) < 0)
			return -1;
		a->pairs = v.v;
		a->n_pairs = v.n;
	} else {
		const char *p;
		size_t n;
		if (p_atom(c, "ID parameters", false, &p, &n) < 0)
			return -1;
		if (!p_word_eq(p, n, "NIL"))
			return p_fail(c, IMAP_ERR_SYNTAX, "Invalid ID parameters: expected NIL or a list");
	}
	return p_end(c);
}

static void upcase(struct imap_str *s)
{
	char *p = (char *)s->s;

	for (size_t i = 0; i < s->len; i++)
		if (p[i] >= 'a' && p[i] <= 'z')
			p[i] = (char)(p[i] - 32);
}

static int cmd_enable(struct pctx *c)
{
	struct imap_args_enable *a = &c->cmd->u.enable;
	struct vec v = { .elem = sizeof(struct imap_str) };

	do {
		const char *p;
		size_t n;
		struct imap_str *s;
		if (p_sp(c, "capability") < 0 || p_atom(c, "capability", false, &p, &n) < 0 ||
		    (s = p_vec_push(c, &v)) == NULL || p_dup(c, p, n, s) < 0)
			return -1;
		upcase(s);
		if (strcmp(s->s, "CONDSTORE") == 0)
			a->known |= IMAP_ENABLE_CONDSTORE;
		else if (strcmp(s->s, "QRESYNC") == 0)
			a->known |= IMAP_ENABLE_QRESYNC;
		else if (strcmp(s->s, "UTF8=ACCEPT") == 0)
			a->known |= IMAP_ENABLE_UTF8_ACCEPT;
	} while (!p_at_end(c));
	a->caps = v.v;
	a->n_caps = v.n;
	return 0;
}

static int cmd_compress(struct pctx *c)
{
	struct imap_args_compress *a = &c->cmd->u.compress;
	const char *p;
	size_t n;

	if (p_sp(c, "compression mechanism") < 0 ||
	    p_atom(c, "compression mechanism", false, &p, &n) < 0 || p_dup(c, p, n, &a->mech) < 0)
		return -1;
	upcase(&a->mech);
	a->deflate = strcmp(a->mech.s, "DEFLATE") == 0;
	return p_end(c);
}

static int cmd_getquota(struct pctx *c)
{
	if (p_sp(c, "quota root") < 0 || p_astring(c, "quota root", &c->cmd->u.quota_root) < 0)
		return -1;
	return p_end(c);
}

static int (*const handlers[IMAP_CMD_COUNT])(struct pctx *c) = {
	[IMAP_CMD_CAPABILITY] = cmd_noargs,
	[IMAP_CMD_NOOP] = cmd_noargs,
	[IMAP_CMD_LOGOUT] = cmd_noargs,
	[IMAP_CMD_STARTTLS] = cmd_noargs,
	[IMAP_CMD_AUTHENTICATE] = cmd_authenticate,
	[IMAP_CMD_LOGIN] = cmd_login,
	[IMAP_CMD_SELECT] = cmd_select,
	[IMAP_CMD_EXAMINE] = cmd_select,
	[IMAP_CMD_CREATE] = cmd_create,
	[IMAP_CMD_DELETE] = cmd_mailbox,
	[IMAP_CMD_RENAME] = cmd_rename,
	[IMAP_CMD_SUBSCRIBE] = cmd_mailbox,
	[IMAP_CMD_UNSUBSCRIBE] = cmd_mailbox,
	[IMAP_CMD_LIST] = cmd_list,
	[IMAP_CMD_LSUB] = cmd_list,
	[IMAP_CMD_STATUS] = cmd_status,
	[IMAP_CMD_APPEND] = cmd_append,
	[IMAP_CMD_CHECK] = cmd_noargs,
	[IMAP_CMD_CLOSE] = cmd_noargs,
	[IMAP_CMD_UNSELECT] = cmd_noargs,
	[IMAP_CMD_EXPUNGE] = cmd_expunge,
	[IMAP_CMD_SEARCH] = cmd_search,
	[IMAP_CMD_FETCH] = cmd_fetch,
	[IMAP_CMD_STORE] = cmd_store,
	[IMAP_CMD_COPY] = cmd_copy,
	[IMAP_CMD_MOVE] = cmd_copy,
	[IMAP_CMD_IDLE] = cmd_noargs,
	[IMAP_CMD_NAMESPACE] = cmd_noargs,
	[IMAP_CMD_ID] = cmd_id,
	[IMAP_CMD_ENABLE] = cmd_enable,
	[IMAP_CMD_COMPRESS] = cmd_compress,
	[IMAP_CMD_GETQUOTAROOT] = cmd_mailbox,
	[IMAP_CMD_GETQUOTA] = cmd_getquota,
};

int imap_parse_args(struct pctx *c)
{
	return handlers[c->cmd->id](c);
}
