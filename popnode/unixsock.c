/*
 * unixsock.c - stale Unix socket removal.  A socket file is stale when
 * connecting to it is refused; anything else (it answers, it is not a
 * socket, the probe fails oddly) leaves it alone.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "unixsock.h"

int unixsock_remove_stale(const char *path, char *err, size_t errsz)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd, rc, e;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (path[0] == '\0' || strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errsz, "path is empty or longer than %zu bytes", sizeof(sun.sun_path) - 1);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errsz, "%s", strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errsz, "exists and is not a socket");
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errsz, "socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(fd, (const struct sockaddr *)&sun, sizeof(sun));
	e = errno;
	close(fd);
	if (rc == 0) {
		snprintf(err, errsz, "in use by a running process");
		return -1;
	}
	if (e != ECONNREFUSED) {
		snprintf(err, errsz, "probing the existing socket: %s", strerror(e));
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(err, errsz, "cannot remove the stale socket: %s", strerror(errno));
		return -1;
	}
	log_info("unixsock.stale", "path=%s removed=yes", path);
	return 0;
}
