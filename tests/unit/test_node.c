/* test_node.c - maildrop locks and the session registry; the worker queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "node.h"
#include "workq.h"

static void test_locks(void **state)
{
	struct node n;
	char name[NODE_LOCK_NAME_MAX + 8];

	memset(&n, 0, sizeof(n));
	for (unsigned i = 1000; i > 0; i--) {
		snprintf(name, sizeof(name), "user%u", i * 7);
		assert_true(node_user_lock(&n, name));
	}
	assert_false(node_user_lock(&n, "user7"));
	assert_false(node_user_lock(&n, "user7000"));
	assert_true(node_user_locked(&n, "user7"));
	assert_false(node_user_locked(&n, "user8"));
	for (size_t i = 1; i < n.n_locked; i++)
		assert_true(strcmp(n.locked_users[i - 1], n.locked_users[i]) < 0);
	node_user_unlock(&n, "user7");
	node_user_unlock(&n, "user8"); /* not held: no effect */
	assert_int_equal(n.n_locked, 999);
	assert_false(node_user_locked(&n, "user7"));
	assert_true(node_user_lock(&n, "user7"));
	/* a name too long for the table is refused, not cut */
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_false(node_user_lock(&n, name));
	free(n.locked_users);
}

static int shutdowns;
static void on_shutdown(void *arg)
{
	shutdowns++;
}

static void test_sessions(void **state)
{
	struct node n;
	struct node_session a, b;

	memset(&n, 0, sizeof(n));
	TAILQ_INIT(&n.sessions);
	node_session_register(&n, &a, PROTO_LMTP, on_shutdown, NULL);
	node_session_register(&n, &b, PROTO_POP3, on_shutdown, NULL);
	assert_int_equal(n.n_sessions, 2);
	node_session_unregister(&n, &a);
	assert_int_equal(n.n_sessions, 1);
	TAILQ_FIRST(&n.sessions)->shutdown(NULL);
	assert_int_equal(shutdowns, 1);
	node_session_unregister(&n, &b);
	assert_true(TAILQ_EMPTY(&n.sessions));
}

struct job {
	int in, out;
	int *done;
};
static void job_work(void *arg)
{
	struct job *j = arg;
	j->out = j->in * 2;
}
static void job_done(void *arg)
{
	struct job *j = arg;
	assert_int_equal(j->out, j->in * 2);
	(*j->done)++;
}

static void test_workq(void **state)
{
	struct event_base *base;
	struct workq *wq;
	struct job jobs[100];
	int done = 0;

	evthread_use_pthreads();
	base = event_base_new();
	wq = workq_new(base, 3);
	assert_non_null(wq);
	for (int i = 0; i < 100; i++) {
		jobs[i] = (struct job){ .in = i, .done = &done };
		assert_int_equal(workq_submit(wq, job_work, job_done, &jobs[i]), 0);
	}
	while (done < 50)
		event_base_loop(base, EVLOOP_ONCE);
	/* free runs the rest and their done callbacks */
	workq_free(&wq);
	assert_null(wq);
	assert_int_equal(done, 100);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_locks),
		cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_workq),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
