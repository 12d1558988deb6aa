/*
 * test_repl_noc.c - `popctl verify` and `popctl lag --cluster` without the
 * network (replicator/repl_noc_wire.h, repl_noc.h): the digest query,
 * the digest and lag answers (round trips, each refusal), comparing
 * copies (match, differs, missing, extra, unreachable, the verdict's
 * precedence), the text and JSON renderings, and the digest of a real
 * store, byte for byte as `popctl mirror list` computes it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/thread.h>
#include <openssl/evp.h>

#include "repl_noc.h"
#include "repl_noc_wire.h"
#include "store_fixture.h"

static char *text(struct evbuffer *b)
{
	size_t len = evbuffer_get_length(b);
	char *s = malloc(len + 1);

	assert_non_null(s);
	evbuffer_copyout(b, s, len);
	s[len] = '\0';
	return s;
}

/* ---- the query ------------------------------------------------------------------- */

static void test_query(void **state)
{
	char user[REPL_NOC_ID_MAX], origin[REPL_NOC_ID_MAX];
	const char *why = NULL;
	static const char *const bad[] = {
		"", "user=alice", "origin=pop1", "user=alice&origin=pop1&x=1",
		"user=alice&user=bob&origin=pop1", "user=alice&origin=pop1&",
		"user=Alice&origin=pop1", "user=&origin=pop1", "user=alice&origin=",
		"user=alice&origin=po/p", "user=alice&&origin=pop1", "user=al%20ice&origin=pop1",
		"user=alice&origin=pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp",
		"x=1",
	};

	assert_int_equal(repl_noc_parse_digest_query("user=alice&origin=pop1", user, origin, &why), 0);
	assert_string_equal(user, "alice");
	assert_string_equal(origin, "pop1");
	assert_int_equal(repl_noc_parse_digest_query("origin=fra-1.b&user=a_b.c-d", user, origin,
						     &why), 0);
	assert_string_equal(user, "a_b.c-d");
	assert_string_equal(origin, "fra-1.b");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_int_equal(repl_noc_parse_digest_query(bad[i], user, origin, &why), -1);
		assert_non_null(why);
	}
}

/* ---- digest answers ------------------------------------------------------------------- */

static void copy_init(struct repl_noc_copy *c, const char *pop, bool home)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->pop, sizeof(c->pop), "%s", pop);
	c->home = home;
	c->reached = c->held = c->user_found = true;
}

static void add(struct repl_noc_copy *c, const char *name, uint32_t n, uint32_t next,
		const char *digest)
{
	assert_int_equal(repl_noc_copy_add(c, name, n, 1795662441, next, digest), 0);
}

static void test_digest_round_trip(void **state)
{
	struct repl_noc_copy a, b;
	struct evbuffer *buf = evbuffer_new();
	const char *why = NULL;
	char *s;

	copy_init(&a, "pop1", true);
	a.seq = 18446744073709551615u;
	snprintf(a.mirrors[0], REPL_NOC_ID_MAX, "pop2");
	snprintf(a.mirrors[1], REPL_NOC_ID_MAX, "pop3");
	a.n_mirrors = 2;
	add(&a, "Sent", 0, 1, "0000000000000000");
	add(&a, "INBOX", 6, 8, "5c1e0b9a77d2e410");
	add(&a, "Archive/2024 \xc3\xa9t\xc3\xa9", 4294967295u, 4294967295u, "ffffffffffffffff");
	assert_int_equal(repl_noc_digest_encode(&a, buf), 0);
	s = text(buf);
	assert_non_null(strstr(s, "seq\t18446744073709551615\nuser\tfound\nmirror\tpop2\n"
			       "mirror\tpop3\nmailbox\tSent\t0\t1795662441\t1\t0000000000000000\n"));
	memset(&b, 0, sizeof(b));
	assert_int_equal(repl_noc_digest_parse(s, strlen(s), &b, &why), 0);
	assert_true(b.user_found);
	assert_true(b.seq == a.seq);
	assert_int_equal(b.n_mirrors, 2);
	assert_string_equal(b.mirrors[1], "pop3");
	assert_int_equal(b.n_mb, 3);
	/* sorted by name */
	assert_string_equal(b.mb[0].name, "Archive/2024 \xc3\xa9t\xc3\xa9");
	assert_string_equal(b.mb[1].name, "INBOX");
	assert_string_equal(b.mb[2].name, "Sent");
	assert_int_equal(b.mb[0].messages, 4294967295u);
	assert_int_equal(b.mb[1].uidnext, 8);
	assert_string_equal(b.mb[1].digest, "5c1e0b9a77d2e410");
	free(s);

	/* a user absent, no mirrors, no mailboxes */
	evbuffer_drain(buf, evbuffer_get_length(buf));
	repl_noc_copy_clear(&a);
	a.n_mirrors = 0;
	a.user_found = false;
	a.seq = 0;
	assert_int_equal(repl_noc_digest_encode(&a, buf), 0);
	s = text(buf);
	assert_string_equal(s, "seq\t0\nuser\tabsent\n");
	assert_int_equal(repl_noc_digest_parse(s, strlen(s), &b, &why), 0);
	assert_false(b.user_found);
	assert_int_equal(b.n_mb, 0);
	assert_int_equal(b.n_mirrors, 0);
	free(s);
	repl_noc_copy_clear(&b);
	evbuffer_free(buf);
}

static void test_digest_refused(void **state)
{
	static const char *const bad[] = {
		"",
		"seq\t1\n",
		"user\tfound\nseq\t1\n",
		"seq\t1\nuser\tfound",				/* no LF */
		"seq\t01\nuser\tfound\n",
		"seq\t-1\nuser\tfound\n",
		"seq\t18446744073709551616\nuser\tfound\n",
		"seq\t1\nuser\tmaybe\n",
		"seq\t1\t2\nuser\tfound\n",
		"seq\t1\nuser\tfound\nmirror\tp1\nmirror\tp2\nmirror\tp3\n",
		"seq\t1\nuser\tfound\nmirror\tp/1\n",
		"seq\t1\nuser\tfound\nmailbox\tINBOX\t1\t1\t2\t0123456789abcdef\nmirror\tp1\n",
		"seq\t1\nuser\tfound\nmailbox\tINBOX\t1\t1\t2\t0123456789ABCDEF\n",
		"seq\t1\nuser\tfound\nmailbox\tINBOX\t1\t1\t2\t0123456789abcde\n",
		"seq\t1\nuser\tfound\nmailbox\tINBOX\t1\t1\t4294967296\t0123456789abcdef\n",
		"seq\t1\nuser\tfound\nmailbox\t\t1\t1\t2\t0123456789abcdef\n",
		"seq\t1\nuser\tfound\nmailbox\tIN\rBOX\t1\t1\t2\t0123456789abcdef\n",
		"seq\t1\nuser\tfound\nmailbox\tINBOX\t1\t1\t2\n",
		"seq\t1\nuser\tfound\nmailbox\tINBOX\t1\t1\t2\t0123456789abcdef\t\n",
		"seq\t1\nuser\tfound\nmailbox\tINBOX\t1\t1\t2\t0123456789abcdef\n"
		"mailbox\tINBOX\t1\t1\t2\t0123456789abcdef\n",
		"seq\t1\nuser\tfound\nbogus\n",
	};
	struct repl_noc_copy c;
	const char *why;
	char *big;

	memset(&c, 0, sizeof(c));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_int_equal(repl_noc_digest_parse(bad[i], strlen(bad[i]), &c, &why), -1);
		assert_non_null(why);
		assert_int_equal(c.n_mb, 0);
		assert_int_equal(c.n_mirrors, 0);
	}
	/* a NUL inside a line */
	assert_int_equal(repl_noc_digest_parse("seq\t1\0\nuser\tfound\n", 18, &c, &why), -1);
	/* a name one byte too long */
	big = malloc(REPL_NOC_NAME_MAX + 128);
	assert_non_null(big);
	snprintf(big, REPL_NOC_NAME_MAX + 128, "seq\t1\nuser\tfound\nmailbox\t%0*d\t1\t1\t2\t"
		 "0123456789abcdef\n", REPL_NOC_NAME_MAX, 0);
	assert_int_equal(repl_noc_digest_parse(big, strlen(big), &c, &why), -1);
	free(big);
	/* longer than an answer may be */
	assert_int_equal(repl_noc_digest_parse("seq\t1\n", (size_t)REPL_NOC_ANSWER_MAX + 1, &c,
					       &why), -1);
}

/* ---- lag answers ------------------------------------------------------------------------ */

static void test_lag_round_trip(void **state)
{
	struct repl_mirror_info m[2];
	struct repl_noc_lag l;
	struct evbuffer *buf = evbuffer_new();
	const int64_t now = 1700000000000;
	const char *why = NULL;
	char *s;

	memset(m, 0, sizeof(m));
	snprintf(m[0].peer, sizeof(m[0].peer), "pop2");
	m[0].pinned = true;
	m[0].state = REPL_STREAMING;
	m[0].since = 1699999000;
	m[0].last_seq = m[0].sent_seq = m[0].applied_seq = 91234;
	m[0].last_ack_ms = now - 300;
	m[0].reconnects = 1;
	snprintf(m[1].peer, sizeof(m[1].peer), "pop3");
	m[1].state = REPL_DOWN;
	m[1].last_seq = 91234;
	m[1].sent_seq = m[1].applied_seq = 90110;
	m[1].records_behind = 1124;
	m[1].bytes_behind = 2133411;
	m[1].seconds_behind = 41.5;
	snprintf(m[1].last_error, sizeof(m[1].last_error), "position:\tstream\nfailed");
	assert_int_equal(repl_noc_lag_encode(m, 2, now, buf), 0);
	s = text(buf);
	assert_non_null(strstr(s, "mirror\tpop2\t1\tstreaming\t1699999000\t91234\t91234\t91234\t0\t0"
			       "\t0.000\t300\t1\t-\n"));
	assert_non_null(strstr(s, "\t41.500\t-1\t0\tposition: stream failed\n"));
	memset(&l, 0, sizeof(l));
	assert_int_equal(repl_noc_lag_parse(s, strlen(s), now + 1000, &l, &why), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.m[0].peer, "pop2");
	assert_true(l.m[0].pinned);
	assert_int_equal(l.m[0].state, REPL_STREAMING);
	assert_int_equal(l.m[0].since, 1699999000);
	assert_true(l.m[0].last_ack_ms == now + 1000 - 300);
	assert_string_equal(l.m[0].last_error, "");
	assert_false(l.m[1].pinned);
	assert_int_equal(l.m[1].state, REPL_DOWN);
	assert_int_equal(l.m[1].records_behind, 1124);
	assert_int_equal(l.m[1].bytes_behind, 2133411);
	assert_true(l.m[1].seconds_behind > 41.49 && l.m[1].seconds_behind < 41.51);
	assert_int_equal(l.m[1].last_ack_ms, 0);
	assert_string_equal(l.m[1].last_error, "position: stream failed");
	free(s);
	/* every state the replicator names goes through (a state added later too) */
	for (int st = 0; st < 16; st++) {
		evbuffer_drain(buf, evbuffer_get_length(buf));
		m[0].state = (enum repl_state)st;
		assert_int_equal(repl_noc_lag_encode(m, 1, now, buf), 0);
		s = text(buf);
		assert_int_equal(repl_noc_lag_parse(s, strlen(s), now, &l, &why), 0);
		assert_string_equal(replicator_state_name(l.m[0].state),
				    replicator_state_name((enum repl_state)st));
		free(s);
	}
	/* no mirrors: an empty answer */
	assert_int_equal(repl_noc_lag_parse("", 0, now, &l, &why), 0);
	assert_int_equal(l.n, 0);
	evbuffer_free(buf);
}

static void test_lag_refused(void **state)
{
	static const char *const good = "mirror\tpop2\t0\tdown\t0\t1\t1\t1\t0\t0\t0.000\t-1\t0\t-\n";
	static const char *const bad[] = {
		"mirror\tpop2\t0\tdown\t0\t1\t1\t1\t0\t0\t0.000\t-1\t0\t-",		/* no LF */
		"mirror\tpop2\t2\tdown\t0\t1\t1\t1\t0\t0\t0.000\t-1\t0\t-\n",
		"mirror\tpop2\t0\tasleep\t0\t1\t1\t1\t0\t0\t0.000\t-1\t0\t-\n",
		"mirror\tpop2\t0\tdown\t0\t1\t1\t1\t0\t0\t-1.0\t-1\t0\t-\n",
		"mirror\tpop2\t0\tdown\t0\t1\t1\t1\t0\t0\t1e3\t-1\t0\t-\n",
		"mirror\tpop2\t0\tdown\t0\t1\t1\t1\t0\t0\t0.\t-1\t0\t-\n",
		"mirror\tpop2\t0\tdown\t0\t1\t1\t1\t0\t0\t0.0\t-2\t0\t-\n",
		"mirror\tpop2\t0\tdown\t0\t1\t1\t1\t0\t0\t0.0\t-1\t0\n",
		"mirror\tpop2\t0\tdown\t0\t1\t1\t1\t0\t0\t0.0\t-1\t0\t-\t-\n",
		"mirror\tp p\t0\tdown\t0\t1\t1\t1\t0\t0\t0.0\t-1\t0\t-\n",
		"origin\tpop2\t0\tdown\t0\t1\t1\t1\t0\t0\t0.0\t-1\t0\t-\n",
		"mirror\tpop2\t0\tdown\t0\t1\t1\t1\t0\t0\t0.0\t-1\t0\t-\n"
		"mirror\tpop3\t0\tdown\t0\t1\t1\t1\t0\t0\t0.0\t-1\t0\t-\n"
		"mirror\tpop4\t0\tdown\t0\t1\t1\t1\t0\t0\t0.0\t-1\t0\t-\n",
	};
	struct repl_noc_lag l;
	const char *why;

	memset(&l, 0, sizeof(l));
	assert_int_equal(repl_noc_lag_parse(good, strlen(good), 0, &l, &why), 0);
	assert_int_equal(l.n, 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_int_equal(repl_noc_lag_parse(bad[i], strlen(bad[i]), 0, &l, &why), -1);
		assert_non_null(why);
		assert_int_equal(l.n, 0);
	}
}

/* ---- comparing ------------------------------------------------------------------------- */

/* home pop1 with INBOX and Sent; mirrors pop2 and pop3 the same. */
static void three(struct repl_noc_copy c[3])
{
	copy_init(&c[0], "pop1", true);
	copy_init(&c[1], "pop2", false);
	copy_init(&c[2], "pop3", false);
	for (int k = 0; k < 3; k++) {
		c[k].seq = 100;
		add(&c[k], "Sent", 1, 2, "1111111111111111");
		add(&c[k], "INBOX", 6, 8, "5c1e0b9a77d2e410");
	}
}

static void clear3(struct repl_noc_copy c[3])
{
	for (int k = 0; k < 3; k++)
		repl_noc_copy_clear(&c[k]);
}

static void test_compare(void **state)
{
	struct repl_noc_copy c[3];

	three(c);
	assert_int_equal(repl_noc_compare(c, 3), REPL_NOC_MATCH);
	assert_int_equal(c[0].status, REPL_NOC_REFERENCE);
	assert_int_equal(c[1].status, REPL_NOC_MATCH);
	assert_int_equal(c[2].status, REPL_NOC_MATCH);
	assert_string_equal(c[2].mb[0].name, "INBOX");		/* sorted */
	assert_int_equal(c[2].mb[0].status, REPL_NOC_MATCH);
	clear3(c);

	/* one digest differs; uidnext alone differs */
	three(c);
	snprintf(c[1].mb[1].digest, sizeof(c[1].mb[1].digest), "5c1e0b9a77d2e411");
	c[2].mb[0].uidnext = 3;
	assert_int_equal(repl_noc_compare(c, 3), REPL_NOC_DIFFERS);
	assert_int_equal(c[1].status, REPL_NOC_DIFFERS);
	assert_int_equal(c[1].mb[0].status, REPL_NOC_DIFFERS);	/* INBOX */
	assert_int_equal(c[1].mb[1].status, REPL_NOC_MATCH);
	assert_int_equal(c[2].status, REPL_NOC_DIFFERS);
	assert_int_equal(c[2].mb[1].status, REPL_NOC_DIFFERS);	/* Sent */
	clear3(c);

	/* a mailbox missing in one copy, an extra one in another */
	three(c);
	repl_noc_copy_clear(&c[1]);
	add(&c[1], "INBOX", 6, 8, "5c1e0b9a77d2e410");
	add(&c[2], "Junk", 0, 1, "0000000000000000");
	assert_int_equal(repl_noc_compare(c, 3), REPL_NOC_DIFFERS);
	assert_int_equal(c[1].status, REPL_NOC_DIFFERS);
	assert_int_equal(c[1].mb[0].status, REPL_NOC_MATCH);
	assert_int_equal(c[2].status, REPL_NOC_DIFFERS);
	assert_int_equal(c[2].mb[1].status, REPL_NOC_EXTRA);
	clear3(c);

	/* one mirror unreachable, the other matches: unreachable */
	three(c);
	c[2].reached = false;
	assert_int_equal(repl_noc_compare(c, 3), REPL_NOC_UNREACHABLE);
	assert_int_equal(c[1].status, REPL_NOC_MATCH);
	assert_int_equal(c[2].status, REPL_NOC_UNREACHABLE);
	clear3(c);

	/* one unreachable, one differs: a difference found wins */
	three(c);
	c[2].reached = false;
	c[1].mb[0].messages = 2;
	assert_int_equal(repl_noc_compare(c, 3), REPL_NOC_DIFFERS);
	clear3(c);

	/* the home unreachable: nothing to compare with */
	three(c);
	c[0].reached = false;
	assert_int_equal(repl_noc_compare(c, 1), REPL_NOC_UNREACHABLE);
	assert_int_equal(repl_noc_compare(c, 3), REPL_NOC_UNREACHABLE);
	assert_int_equal(c[1].status, REPL_NOC_UNREACHABLE);
	clear3(c);

	/* a mirror without a copy of the home, one without the user */
	three(c);
	c[1].held = false;
	repl_noc_copy_clear(&c[1]);
	c[2].user_found = false;
	repl_noc_copy_clear(&c[2]);
	assert_int_equal(repl_noc_compare(c, 3), REPL_NOC_DIFFERS);
	assert_int_equal(c[1].status, REPL_NOC_DIFFERS);
	assert_int_equal(c[2].status, REPL_NOC_DIFFERS);
	clear3(c);

	/* the home alone (no mirrors): a match */
	three(c);
	assert_int_equal(repl_noc_compare(c, 1), REPL_NOC_MATCH);
	clear3(c);
}

/* ---- rendering ---------------------------------------------------------------------------- */

static void test_render_verify(void **state)
{
	struct repl_noc_copy c[3];
	struct evbuffer *buf = evbuffer_new();
	enum repl_noc_status v;
	char *s;

	three(c);
	c[1].seq = 90;
	c[1].mb[0].messages = 5;
	snprintf(c[1].mb[0].digest, sizeof(c[1].mb[0].digest), "aaaaaaaaaaaaaaaa");
	repl_noc_copy_clear(&c[1]);
	add(&c[1], "INBOX", 5, 7, "aaaaaaaaaaaaaaaa");
	c[2].reached = false;
	repl_noc_copy_clear(&c[2]);
	snprintf(c[2].error, sizeof(c[2].error), "no answer within 2000 ms");
	v = repl_noc_compare(c, 3);
	assert_int_equal(v, REPL_NOC_DIFFERS);

	assert_int_equal(repl_noc_render_verify("alice", "pop1", v, c, 3, false, buf), 0);
	s = text(buf);
	assert_non_null(strstr(s, "user: alice\nhome: pop1\nresult: differs\n\n"
			       "POP\tROLE\tRESULT\tSEQ\tMAILBOXES\tMESSAGES\tNOTE\n"
			       "pop1\thome\treference\t100\t2\t7\t-\n"
			       "pop2\tmirror\tdiffers\t90\t1\t5\tbehind the home by 10 changelog records\n"
			       "pop3\tmirror\tunreachable\t-\t-\t-\tno answer within 2000 ms\n\n"
			       "POP\tMAILBOX\tMESSAGES\tUIDVALIDITY\tUIDNEXT\tDIGEST\tRESULT\n"
			       "pop1\tINBOX\t6\t1795662441\t8\t5c1e0b9a77d2e410\treference\n"
			       "pop1\tSent\t1\t1795662441\t2\t1111111111111111\treference\n"
			       "pop2\tINBOX\t5\t1795662441\t7\taaaaaaaaaaaaaaaa\tdiffers\n"
			       "pop2\tSent\t-\t-\t-\t-\tmissing\n"));
	assert_null(strstr(s, "pop3\tINBOX"));
	free(s);

	evbuffer_drain(buf, evbuffer_get_length(buf));
	assert_int_equal(repl_noc_render_verify("alice", "pop1", v, c, 3, true, buf), 0);
	s = text(buf);
	{
		const char *head = "{\n  \"user\": \"alice\",\n  \"home\": \"pop1\",\n  \"result\": "
				   "\"differs\",\n  \"copies\": [";

		assert_true(strncmp(s, head, strlen(head)) == 0);
	}
	assert_non_null(strstr(s, "{\"pop\": \"pop3\", \"role\": \"mirror\", \"reachable\": false, "
			       "\"status\": \"unreachable\", \"holds_copy\": null, \"user_found\": "
			       "null, \"seq\": null, \"messages\": null, \"note\": \"no answer within "
			       "2000 ms\",\n      \"mailboxes\": []}"));
	assert_non_null(strstr(s, "{\"name\": \"Sent\", \"messages\": null, \"uidvalidity\": null, "
			       "\"uidnext\": null, \"digest\": null, \"status\": \"missing\"}"));
	assert_non_null(strstr(s, "\"holds_copy\": true, \"user_found\": true, \"seq\": 90, "
			       "\"messages\": 5, \"note\": \"behind the home by 10 changelog "
			       "records\""));
	assert_string_equal(s + strlen(s) - 4, "]\n}\n");
	free(s);
	clear3(c);

	/* JSON strings: quotes, control bytes, UTF-8 kept, stray bytes replaced */
	copy_init(&c[0], "pop1", true);
	add(&c[0], "a\"b\\c \xc3\xa9 \xff", 0, 1, "0000000000000000");
	v = repl_noc_compare(c, 1);
	evbuffer_drain(buf, evbuffer_get_length(buf));
	assert_int_equal(repl_noc_render_verify("bob", "pop1", v, c, 1, true, buf), 0);
	s = text(buf);
	assert_non_null(strstr(s, "\"name\": \"a\\\"b\\\\c \xc3\xa9 \\ufffd\""));
	assert_non_null(strstr(s, "\"result\": \"match\""));
	free(s);
	repl_noc_copy_clear(&c[0]);
	evbuffer_free(buf);
}

static void test_render_lag(void **state)
{
	struct repl_noc_lag l[3];
	struct evbuffer *buf = evbuffer_new();
	const int64_t now = 1700000000000;
	char *s;

	memset(l, 0, sizeof(l));
	snprintf(l[0].pop, sizeof(l[0].pop), "pop1");
	l[0].reached = true;
	l[0].n = 1;
	snprintf(l[0].m[0].peer, sizeof(l[0].m[0].peer), "pop2");
	l[0].m[0].state = REPL_STREAMING;
	l[0].m[0].last_seq = l[0].m[0].sent_seq = l[0].m[0].applied_seq = 7;
	l[0].m[0].last_ack_ms = now - 500;
	snprintf(l[1].pop, sizeof(l[1].pop), "pop2");
	l[1].reached = true;
	snprintf(l[2].pop, sizeof(l[2].pop), "pop3");
	snprintf(l[2].error, sizeof(l[2].error), "link to pop3 not up");
	assert_int_equal(repl_noc_render_lag(l, 3, now, false, buf), 0);
	s = text(buf);
	assert_string_equal(s, "ORIGIN\tMIRROR\tSTATE\tLAST\tSENT\tAPPLIED\tBEHIND\tBYTES\tSECONDS"
			    "\tLAST ACK\tERROR\n"
			    "pop1\tpop2\tstreaming\t7\t7\t7\t0\t0\t0.0\t0.5s ago\t-\n"
			    "pop2\t-\tnone\t-\t-\t-\t-\t-\t-\t-\tno mirror chosen\n"
			    "pop3\t-\tunreachable\t-\t-\t-\t-\t-\t-\t-\tlink to pop3 not up\n");
	free(s);
	evbuffer_drain(buf, evbuffer_get_length(buf));
	assert_int_equal(repl_noc_render_lag(l, 3, now, true, buf), 0);
	s = text(buf);
	assert_non_null(strstr(s, "{\"pop\": \"pop3\", \"reachable\": false, \"error\": \"link to "
			       "pop3 not up\", \"mirrors\": []}"));
	assert_non_null(strstr(s, "{\"pop\": \"pop2\", \"reachable\": true, \"error\": null, "
			       "\"mirrors\": []}"));
	assert_non_null(strstr(s, "\"last_ack\": 1699999999.500, \"last_ack_age\": 0.500"));
	free(s);
	evbuffer_free(buf);
}

/* ---- the digest of a store --------------------------------------------------------------- */

struct want {
	EVP_MD_CTX *md;
	uint32_t n;
};

static int want_msg(const struct store_msg *m, void *arg)
{
	struct want *w = arg;
	uint8_t b[48];

	for (int i = 0; i < 4; i++) {
		b[i] = (uint8_t)(m->uid >> (24 - 8 * i));
		b[4 + i] = (uint8_t)(m->flags >> (24 - 8 * i));
	}
	for (int i = 0; i < 8; i++)
		b[8 + i] = (uint8_t)(m->keywords >> (56 - 8 * i));
	memcpy(b + 16, m->hash, 32);
	EVP_DigestUpdate(w->md, b, sizeof(b));
	w->n++;
	return 0;
}

static void test_store_digest(void **state)
{
	struct fx *f = *state;
	uint32_t id = user_add(f, "alice", 0);
	struct store_mailbox inbox;
	struct repl_noc_copy c;
	struct want w = { EVP_MD_CTX_new(), 0 };
	uint8_t md[32];
	unsigned ml;
	char hex[17];
	size_t i;

	user_add(f, "bob", 0);
	deliver(f, "alice", "Subject: one\r\n\r\nbody one\r\n", NULL);
	deliver(f, "alice", "Subject: two\r\n\r\nbody two\r\n", NULL);
	inbox = mbox(f, id, "INBOX");
	EVP_DigestInit_ex(w.md, EVP_sha256(), NULL);
	assert_int_equal(store_msg_foreach(f->st, id, inbox.id, want_msg, &w), STORE_OK);
	EVP_DigestFinal_ex(w.md, md, &ml);
	EVP_MD_CTX_free(w.md);
	for (i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	assert_int_equal(w.n, 2);

	memset(&c, 0, sizeof(c));
	assert_int_equal(repl_noc_digest(f->st, "alice", &c), 0);
	assert_true(c.user_found);
	assert_true(c.n_mb >= 6);	/* INBOX and the special-use folders */
	for (i = 0; i < c.n_mb && strcmp(c.mb[i].name, "INBOX") != 0; i++)
		;
	assert_true(i < c.n_mb);
	assert_int_equal(c.mb[i].messages, 2);
	assert_int_equal(c.mb[i].uidvalidity, inbox.uidvalidity);
	assert_int_equal(c.mb[i].uidnext, 3);
	assert_string_equal(c.mb[i].digest, hex);
	/* an empty mailbox: SHA-256 of nothing */
	for (i = 0; i < c.n_mb && strcmp(c.mb[i].name, "Sent") != 0; i++)
		;
	assert_true(i < c.n_mb);
	assert_string_equal(c.mb[i].digest, "e3b0c44298fc1c14");
	assert_int_equal(c.mb[i].messages, 0);

	/* the same content read twice gives the same bytes */
	{
		struct repl_noc_copy d;
		struct evbuffer *a = evbuffer_new(), *b = evbuffer_new();
		char *sa, *sb;

		memset(&d, 0, sizeof(d));
		assert_int_equal(repl_noc_digest(f->st, "alice", &d), 0);
		assert_int_equal(repl_noc_digest_encode(&c, a), 0);
		assert_int_equal(repl_noc_digest_encode(&d, b), 0);
		sa = text(a);
		sb = text(b);
		assert_string_equal(sa, sb);
		free(sa);
		free(sb);
		evbuffer_free(a);
		evbuffer_free(b);
		repl_noc_copy_clear(&d);
	}

	/* no such user: not found, no mailboxes */
	assert_int_equal(repl_noc_digest(f->st, "nobody", &c), 0);
	assert_false(c.user_found);
	assert_int_equal(c.n_mb, 0);
	repl_noc_copy_clear(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_digest_round_trip),
		cmocka_unit_test(test_digest_refused),
		cmocka_unit_test(test_lag_round_trip),
		cmocka_unit_test(test_lag_refused),
		cmocka_unit_test(test_compare),
		cmocka_unit_test(test_render_verify),
		cmocka_unit_test(test_render_lag),
		cmocka_unit_test_setup_teardown(test_store_digest, fx_setup, fx_teardown),
	};

	evthread_use_pthreads();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
