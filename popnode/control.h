/*
 * control.h - the Unix control socket popctl talks to (users, status).
 * The wire protocol is in docs/control-protocol.md.
 */
#ifndef POPNODE_CONTROL_H
#define POPNODE_CONTROL_H

struct node;
struct control;

/* Listen on path (replacing a stale socket), mode 0600.  NULL with
 * *error_r set on failure. */
struct control *control_start(struct node *n, const char *path, const char **error_r);
void control_stop(struct control **c);

#endif
