/*
 * workq.c - worker threads for CPU-heavy jobs, results back on the loop.
 *
 * Jobs wait in a FIFO guarded by a mutex; workers take one at a time and
 * run work().  Finished jobs go on a done list and an event is activated
 * (the base is thread-enabled), whose handler runs done() on the loop.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "workq.h"

struct job {
	STAILQ_ENTRY(job) entry;
	void (*work)(void *arg);
	void (*done)(void *arg);
	void *arg;
};
STAILQ_HEAD(job_list, job);

struct workq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job_list todo;
	struct job_list finished;
	struct event *ev;
	pthread_t *threads;
	unsigned n_threads;
	bool stop;
};

static void run_finished(struct workq *wq)
{
	struct job_list list = STAILQ_HEAD_INITIALIZER(list);
	struct job *j;

	pthread_mutex_lock(&wq->lock);
	STAILQ_CONCAT(&list, &wq->finished);
	pthread_mutex_unlock(&wq->lock);
	while ((j = STAILQ_FIRST(&list)) != NULL) {
		STAILQ_REMOVE_HEAD(&list, entry);
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
}

static void finished_cb(evutil_socket_t fd, short what, void *arg)
{
	run_finished(arg);
}

static void *worker(void *arg)
{
	struct workq *wq = arg;

	pthread_mutex_lock(&wq->lock);
	for (;;) {
		struct job *j;

		while (STAILQ_EMPTY(&wq->todo) && !wq->stop)
			pthread_cond_wait(&wq->cond, &wq->lock);
		j = STAILQ_FIRST(&wq->todo);
		if (j == NULL)
			break; /* stopping and nothing left */
		STAILQ_REMOVE_HEAD(&wq->todo, entry);
		pthread_mutex_unlock(&wq->lock);
		j->work(j->arg);
		pthread_mutex_lock(&wq->lock);
		STAILQ_INSERT_TAIL(&wq->finished, j, entry);
		event_active(wq->ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&wq->lock);
	return NULL;
}

struct workq *workq_new(struct event_base *base, unsigned threads)
{
	struct workq *wq = calloc(1, sizeof(*wq));

	if (wq == NULL)
		return NULL;
	if (threads == 0)
		threads = 1;
	pthread_mutex_init(&wq->lock, NULL);
	pthread_cond_init(&wq->cond, NULL);
	STAILQ_INIT(&wq->todo);
	STAILQ_INIT(&wq->finished);
	wq->ev = event_new(base, -1, 0, finished_cb, wq);
	wq->threads = calloc(threads, sizeof(*wq->threads));
	if (wq->ev == NULL || wq->threads == NULL)
		goto fail;
	for (; wq->n_threads < threads; wq->n_threads++)
		if (pthread_create(&wq->threads[wq->n_threads], NULL, worker, wq) != 0)
			goto fail;
	return wq;
fail:
	workq_free(&wq);
	return NULL;
}

void workq_free(struct workq **wqp)
{
	struct workq *wq = wqp != NULL ? *wqp : NULL;

	if (wq == NULL)
		return;
	*wqp = NULL;
	pthread_mutex_lock(&wq->lock);
	wq->stop = true;
	pthread_cond_broadcast(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
	for (unsigned i = 0; i < wq->n_threads; i++)
		pthread_join(wq->threads[i], NULL);
	run_finished(wq);
	if (wq->ev != NULL)
		event_free(wq->ev);
	free(wq->threads);
	pthread_cond_destroy(&wq->cond);
	pthread_mutex_destroy(&wq->lock);
	free(wq);
}

int workq_submit(struct workq *wq, void (*work)(void *arg), void (*done)(void *arg), void *arg)
{
	struct job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return -1;
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&wq->lock);
	STAILQ_INSERT_TAIL(&wq->todo, j, entry);
	pthread_cond_signal(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
	return 0;
}
