/*
 * bird_client.h - an asynchronous client for BIRD 2's control socket, on
 * libevent.
 *
 * One connection to one BIRD (a Unix socket path).  The caller connects,
 * queues commands and gets each reply, parsed into lines by bird_parse.c,
 * through a callback; bird_parse.h's parsers turn it into a struct.
 *
 *   connect:  a non-blocking connect(), then BIRD's greeting
 *             ("0001 BIRD 2.0.12 ready.") within connect_timeout_ms.
 *   commands: sent one at a time (BIRD answers in order; the next one is
 *             written when the previous reply has ended), each with its
 *             own command_timeout_ms from the moment it is written.
 *   failure:  a timeout, EOF, a socket error or bytes that are not BIRD's
 *             protocol close the connection: the command in flight and
 *             every queued one fail with that reason, then the state
 *             callback reports BIRD_CLIENT_DISCONNECTED with it.  The
 *             client never reconnects by itself: the caller decides.
 *
 * Nothing here blocks: connect() on a Unix socket either completes or
 * fails at once (or is waited for with an event), replies are read
 * through a bufferevent and commands written with non-blocking send()s
 * (MSG_NOSIGNAL: a BIRD that went away is a lost connection, never a
 * SIGPIPE in the caller).  The write side is never shut down early (BIRD
 * closes the connection on EOF); the socket is only ever closed whole.
 *
 * Callbacks: every accepted command gets exactly one reply callback,
 * always from the event loop, never from inside a bird_client_*() call.
 * bird_client_free() is the exception: it drops queued commands without
 * calling them.  Any callback may call any bird_client_*() function,
 * bird_client_free() included.
 */
#ifndef POPNODE_BIRD_CLIENT_H
#define POPNODE_BIRD_CLIENT_H

#include <stddef.h>

#include "bird_parse.h"

struct event_base;
struct bird_client;

/* Defaults for zero fields of struct bird_client_config. */
#define BIRD_CLIENT_CONNECT_TIMEOUT_MS 1000
#define BIRD_CLIENT_COMMAND_TIMEOUT_MS 1000
#define BIRD_CLIENT_MAX_QUEUE 64

enum bird_client_err {
	BIRD_CLIENT_OK = 0,
	BIRD_CLIENT_NO_SOCKET,	  /* the socket path does not exist (ENOENT) */
	BIRD_CLIENT_NOT_RUNNING,  /* nobody listens on it (ECONNREFUSED): BIRD
				   * died and left its socket file */
	BIRD_CLIENT_BUSY,	  /* BIRD's listen queue is full (EAGAIN): it is
				   * not accepting, e.g. stopped */
	BIRD_CLIENT_CONNECT,	  /* connect() failed otherwise (EACCES...):
				   * see bird_client_errno() */
	BIRD_CLIENT_GREETING,	  /* the first reply was not "0001 ..." */
	BIRD_CLIENT_TIMEOUT,	  /* no greeting, or no complete reply, in time */
	BIRD_CLIENT_LOST,	  /* EOF or socket error (see bird_client_errno()) */
	BIRD_CLIENT_PROTOCOL,	  /* bytes that are not BIRD's protocol, or a
				   * reply with no command waiting for it */
	BIRD_CLIENT_NOT_CONNECTED, /* a command given while disconnected */
	BIRD_CLIENT_CLOSED,	  /* bird_client_disconnect() was called */
	BIRD_CLIENT_NOMEM,
};

enum bird_client_state {
	BIRD_CLIENT_DISCONNECTED,
	BIRD_CLIENT_CONNECTING,	/* connect() in progress or greeting awaited */
	BIRD_CLIENT_READY,	/* greeting received: commands are being sent */
};

/* The reply to one command.  err BIRD_CLIENT_OK: reply is the complete
 * reply (reply->err says if it broke a reader limit; reply->cls 8/9 is
 * BIRD's own error), valid until the callback returns or calls
 * bird_client_connect() or bird_client_free().  Otherwise reply is NULL
 * and the command may or may not have been executed by BIRD (a timeout
 * does not undo it). */
typedef void bird_reply_cb(struct bird_client *c, enum bird_client_err err,
			   const struct bird_reply *reply, void *arg);

/* READY with BIRD_CLIENT_OK once the greeting arrived; DISCONNECTED with
 * the reason when a connection attempt or a connection ends (not after
 * bird_client_disconnect() or bird_client_free(): the caller knows).  It
 * comes before the failed commands' callbacks, and it is about the
 * connection that ended even if bird_client_connect() was called again
 * before it arrived (check bird_client_state() before reconnecting). */
typedef void bird_state_cb(struct bird_client *c, enum bird_client_state state,
			   enum bird_client_err err, void *arg);

struct bird_client_config {
	const char *socket_path;	/* copied */
	unsigned connect_timeout_ms;	/* connect + greeting */
	unsigned command_timeout_ms;	/* each command, from its write */
	size_t max_queue;		/* commands queued or in flight */
	struct bird_limits limits;	/* for replies; zero fields: defaults */
	bird_state_cb *state_cb;	/* may be NULL */
	void *state_arg;
};

/* A disconnected client.  NULL with *error_r (static) if the path is
 * empty or too long for a Unix socket, or out of memory. */
struct bird_client *bird_client_new(struct event_base *base, const struct bird_client_config *cfg,
				    const char **error_r);
/* Close and free; queued commands are dropped without their callbacks.
 * *cp becomes NULL; accepts NULL. */
void bird_client_free(struct bird_client **cp);

/* Start connecting if disconnected (no-op otherwise).  The outcome comes
 * through the state callback, even when connect() fails at once.  -1 only
 * if no socket could be created (errno set); then nothing is reported. */
int bird_client_connect(struct bird_client *c);
/* Close the connection now.  Commands queued or in flight fail with
 * BIRD_CLIENT_CLOSED (from the event loop); no state callback. */
void bird_client_disconnect(struct bird_client *c);

/* Queue cmd (without LF; see bird_cmd_valid(), bird_cmd_ctl()).  While
 * connecting it waits for the greeting; while disconnected it fails with
 * BIRD_CLIENT_NOT_CONNECTED (or with the reason of a failure not yet
 * reported).  0 if accepted: cb will be called exactly once.  -1 if cmd
 * is not valid, the queue is full or memory ran out: cb is not called. */
int bird_client_command(struct bird_client *c, const char *cmd, bird_reply_cb *cb, void *arg);

enum bird_client_state bird_client_state(const struct bird_client *c);
/* Commands queued, the one in flight included. */
size_t bird_client_queued(const struct bird_client *c);
/* The greeting's text ("BIRD 2.0.12 ready."), "" before the first. */
const char *bird_client_greeting(const struct bird_client *c);
/* The errno behind the last BIRD_CLIENT_CONNECT/LOST/NO_SOCKET/... (0 if
 * none, e.g. for an EOF). */
int bird_client_errno(const struct bird_client *c);
/* "BIRD not running (socket refused connection)", ...: static text. */
const char *bird_client_strerror(enum bird_client_err err);
const char *bird_client_state_str(enum bird_client_state state);

#endif
