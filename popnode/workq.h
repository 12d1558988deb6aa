/*
 * workq.h - a small pool of worker threads for CPU-heavy work (password
 * hashing) so it never blocks the event loop.  The work function runs on
 * a worker; the done function runs afterwards on the loop thread.
 */
#ifndef POPNODE_WORKQ_H
#define POPNODE_WORKQ_H

struct event_base;
struct workq;

/* base must be thread-enabled (evthread_use_pthreads). NULL on failure. */
struct workq *workq_new(struct event_base *base, unsigned threads);
/* Runs queued work to the end, joins the threads; done callbacks still
 * pending are run on the calling thread.  Accepts NULL; sets *wq NULL. */
void workq_free(struct workq **wq);
/* 0, or -1 (out of memory: nothing will be called). */
int workq_submit(struct workq *wq, void (*work)(void *arg), void (*done)(void *arg), void *arg);

#endif
