/*
 * control_int.h - what the files of the control socket (control.h) need
 * from each other (private to them):
 *
 *   control.c       the listening socket, connections, reading requests,
 *                   writing answers
 *   control_cmd.c   the command table, running a request's handler, the
 *                   queue for the writer slot
 *   control_user.c  user add, del, passwd, set, list, show
 *   control_node.c  status, peers, lag, lag cluster, verify, mirror list,
 *                   drain, undrain
 */
#ifndef POPNODE_CONTROL_INT_H
#define POPNODE_CONTROL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <sys/un.h>

#include "control_proto.h"
#include "store.h"

struct bufferevent;
struct evbuffer;
struct event;
struct evconnlistener;
struct node;
struct repl_noc_query;

struct ctl_conn;
TAILQ_HEAD(ctl_conn_list, ctl_conn);

/* What a store write (struct ctl_op) does. */
enum op_kind { OP_ADD, OP_DEL, OP_PASSWD, OP_SET };

/* One asynchronous store write. */
struct ctl_op {
	struct ctl_conn *conn;		/* NULL once the connection is gone */
	struct control *ctl;		/* NULL once the server is stopped */
	enum op_kind kind;
	unsigned long conn_id;
	unsigned uid;
	char summary[128];		/* what changed, for the log and answer */
	struct store_user user;
};

/* The control server: control_start() to control_stop(). */
struct control {
	struct node *n;
	struct evconnlistener *lev;
	struct event *accept_timer;
	char path[sizeof(((struct sockaddr_un *)NULL)->sun_path)];
	dev_t dev;			/* the socket inode we created */
	ino_t ino;
	struct ctl_conn_list conns;
	unsigned n_conns;
	struct ctl_op *writing;		/* the writer slot */
	struct ctl_conn_list waiting;	/* for the writer slot */
	bool draining_waiting;		/* ctl_run_waiting on the stack */
	unsigned long next_id;
};

/* One accepted connection. */
struct ctl_conn {
	TAILQ_ENTRY(ctl_conn) entry;
	TAILQ_ENTRY(ctl_conn) wait_entry;
	struct control *ctl;
	struct bufferevent *bev;
	struct ctl_op *op;		/* store write in flight */
	struct repl_noc_query *noc;	/* verify / lag cluster asking peers */
	unsigned long id;
	unsigned uid;
	int pid;
	unsigned errors;
	bool busy;			/* a request is being answered */
	bool waiting;			/* in ctl->waiting */
	bool dispatching;		/* ctl_run_command on the stack */
	bool eof;			/* the peer closed its side */
	bool closing;			/* free once the output is flushed */
	bool shut_wr;			/* closing: our side is shut down */
	size_t discarded;		/* closing: input bytes thrown away */
	struct ctl_request req;		/* the request being answered */
};

/* control.c: answers, queued on c's output (out of memory: logged, c closed). */
void ctl_reply_ok(struct ctl_conn *c, const char *body, size_t len);
void ctl_reply_ok_buffer(struct ctl_conn *c, struct evbuffer *body);
void ctl_reply_ok_text(struct ctl_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void ctl_reply_err(struct ctl_conn *c, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* control.c: answer the complete request lines in c's input, one by one. */
void ctl_conn_process(struct ctl_conn *c);
/* control.c: free a closing c once its answers are written (or half-close it
 * for the peer's EOF); only at the tail of a libevent callback. */
void ctl_conn_settle(struct ctl_conn *c);

/* control_cmd.c: answer c->req, at once or (a write) from the store callback. */
void ctl_run_command(struct ctl_conn *c);
/* control_cmd.c: whether req is a command that takes the writer slot. */
bool ctl_command_writes(const struct ctl_request *req);
/* control_cmd.c: give the free writer slot to waiting connections, in order. */
void ctl_run_waiting(struct control *ctl);

/* control_user.c: false (answered "err inval") if name is no valid user name. */
bool ctl_check_name(struct ctl_conn *c, const char *name);

/* A command handler (control_cmd.c's table): answer c->req (args: its arguments
 * after the command words), at once or later with c->busy set. */
typedef void ctl_cmd_fn(struct ctl_conn *c, const char *const *args);

/* control_user.c */
ctl_cmd_fn ctl_cmd_user_add, ctl_cmd_user_del, ctl_cmd_user_passwd, ctl_cmd_user_set,
    ctl_cmd_user_list, ctl_cmd_user_show;
/* control_node.c */
ctl_cmd_fn ctl_cmd_status, ctl_cmd_peers, ctl_cmd_lag, ctl_cmd_lag_cluster, ctl_cmd_verify,
    ctl_cmd_mirror_list, ctl_cmd_drain, ctl_cmd_undrain;

#endif
