/*
 * unixsock.h - Unix socket paths that popnode listens on (LMTP, control,
 * management HTTP): replace a stale socket left by a process that is gone,
 * never a live one and never anything that is not a socket.
 */
#ifndef POPNODE_UNIXSOCK_H
#define POPNODE_UNIXSOCK_H

#include <stddef.h>

/* 0 if path is free now (absent, or a stale socket that was removed);
 * -1 with err set to the reason only ("in use by a running process",
 * "exists and is not a socket", ...): the caller names the path. */
int unixsock_remove_stale(const char *path, char *err, size_t errsz);

#endif
