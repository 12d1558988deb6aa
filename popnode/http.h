/*
 * http.h - the management HTTP listener (libevent evhttp): GET /status
 * (JSON) and GET /metrics (Prometheus text format 0.0.4).
 */
#ifndef POPNODE_HTTP_H
#define POPNODE_HTTP_H

struct node;
struct listen_conf;
struct mgmt_http;

struct mgmt_http *mgmt_http_start(struct node *n, const struct listen_conf *lc,
				  const char **error_r);
void mgmt_http_stop(struct mgmt_http **h);

#endif
