/*
 * metrics.c - the commit latency histogram.
 *
 * Buckets hold plain (non-cumulative) counts: an observation goes into
 * the first bucket whose upper bound is >= the value (Prometheus "le" is
 * inclusive); one above every bound is only in commit_count, which is the
 * +Inf bucket.  status.c makes them cumulative when it renders /metrics.
 *
 * Bounds: a group commit is one fsync on a local disk, so most land
 * between 0.5 ms (NVMe) and 50 ms (spinning disk, busy array); 1 s and
 * 2.5 s catch a stalling device.
 */
#include <math.h>

#include "metrics.h"

const double metrics_commit_bounds[METRICS_COMMIT_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
};

void metrics_commit_observe(struct metrics *m, double seconds, unsigned ops)
{
	/* A clock step can make a duration negative; NaN must not poison
	 * the sum forever. */
	if (!(seconds >= 0.0))
		seconds = 0.0;
	if (isinf(seconds))
		seconds = metrics_commit_bounds[METRICS_COMMIT_BUCKETS - 1] * 2;
	for (unsigned i = 0; i < METRICS_COMMIT_BUCKETS; i++) {
		if (seconds <= metrics_commit_bounds[i]) {
			m->commit_buckets[i]++;
			break;
		}
	}
	m->commit_count++;
	m->commit_sum += seconds;
	m->commit_ops += ops;
}
