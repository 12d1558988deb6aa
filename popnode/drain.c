/*
 * drain.c - the drained state and telling sessions to leave (drain.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drain.h"
#include "log.h"
#include "node.h"

const char *drain_path(const struct node *n, char *buf, size_t sz)
{
	config_maintenance_file(n->cfg, buf, sz);
	return buf;
}

void drain_init(struct node *n)
{
	char path[CONFIG_PATH_MAX + 16];
	struct stat st;

	n->drained = stat(drain_path(n, path, sizeof(path)), &st) == 0;
	if (n->drained)
		log_warn("drain.active", "file=%s reason=\"present at start-up: popctl undrain ends it\"",
			 path);
}

int drain_set(struct node *n, bool on, char *err, size_t errsz)
{
	char path[CONFIG_PATH_MAX + 16];
	struct node_session *s, *next;

	drain_path(n, path, sizeof(path));
	if (on) {
		/* A few bytes and no fsync: losing the file in a crash
		 * means announcing again after the restart, which the
		 * operator sees; the node never blocks on it. */
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0) {
			snprintf(err, errsz, "%s: %s", path, strerror(errno));
			return -1;
		}
		if (write(fd, "drained by popctl\n", 18) < 0) {
			/* the file's presence is what counts */
		}
		close(fd);
	} else if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (on == n->drained)
		return 0;
	n->drained = on;
	log_warn(on ? "drain.on" : "drain.off", "file=%s sessions=%u", path, drain_sessions_left(n));
	if (!on)
		return 0;
	/* A hook may unregister (and free) its session. */
	for (s = TAILQ_FIRST(&n->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->drain != NULL)
			s->drain(s->arg);
	}
	return 0;
}

unsigned drain_sessions_left(const struct node *n)
{
	const struct node_session *s;
	unsigned k = 0;

	TAILQ_FOREACH(s, &n->sessions, entry)
		k += s->client_here;
	return k;
}
