/*
 * config.h - popnode's configuration: one table of directives with
 * defaults, a parser that reports "FILE:LINE: reason", and one check
 * function for what spans several directives.
 *
 * File syntax (docs/config.md): one directive per line, "name value...",
 * '#' starts a comment, blank lines ignored, values separated by blanks.
 * Sizes take K/M/G suffixes (powers of 1024), durations s/m/h (default s);
 * the anycast health timers also take ms and are stored in milliseconds.
 */
#ifndef POPNODE_CONFIG_H
#define POPNODE_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prefix.h"

#define CONFIG_MAX_LISTENS 32
#define CONFIG_MAX_DOMAINS 64
#define CONFIG_NAME_MAX 64
#define CONFIG_PATH_MAX 256
#define CONFIG_MAX_PEERS 64
#define CONFIG_MAX_ANYCAST 16
#define CONFIG_MAX_MIRRORS 2
#define CONFIG_IFNAME_MAX 16	/* IFNAMSIZ: 15 characters and the NUL */

enum listen_proto {
	PROTO_LMTP,
	PROTO_POP3,
	PROTO_POP3S,
	PROTO_IMAP,
	PROTO_IMAPS,
	PROTO_HTTP, /* management: /status and /metrics */
	PROTO_COUNT
};

/* replication_ack: when an LMTP 250 / IMAP APPEND OK may be sent
 * (docs/replication.md "Durability: replication_ack"). */
enum config_repl_ack {
	CONFIG_ACK_LOCAL,		/* the home's commit is durable */
	CONFIG_ACK_MIRROR,		/* ... and a mirror applied it */
};

/* replication_degraded: what ack=mirror does while no mirror is in reach. */
enum config_repl_degraded {
	CONFIG_DEGRADED_ACCEPT,		/* answer at local durability (logged, counted) */
	CONFIG_DEGRADED_TEMPFAIL,	/* LMTP 451 4.4.1, IMAP NO [UNAVAILABLE] */
};

enum listen_tls {
	LTLS_NONE,     /* no TLS at all (lmtp, http) */
	LTLS_STARTTLS, /* plaintext first, STLS/STARTTLS offered (pop3, imap) */
	LTLS_IMPLICIT, /* TLS from the first byte (pop3s, imaps) */
};

struct listen_conf {
	enum listen_proto proto;
	bool is_unix;
	char host[64];			/* numeric IPv4/IPv6 address, TCP only */
	uint16_t port;			/* TCP only */
	char path[CONFIG_PATH_MAX];	/* unix socket path */
	enum listen_tls tls;
	/* Allow USER/PASS, LOGIN, AUTH PLAIN before TLS on this listener.
	 * Off unless the listen line says "plaintext-auth". */
	bool plaintext_auth;
	char file[CONFIG_PATH_MAX];	/* where it was declared, for messages */
	int line;
};

/* One "peer ID HOST:PORT" line: another POP of the cluster and the address
 * of its link_listen. */
struct peer_conf {
	char id[CONFIG_NAME_MAX];	/* its node_id, also the name in its certificate */
	char host[64];			/* numeric IPv4/IPv6 address, canonical form */
	uint16_t port;
	char file[CONFIG_PATH_MAX];	/* where it was declared, for messages */
	int line;
};

struct config {
	char node_id[CONFIG_NAME_MAX];		/* this POP's id, e.g. "fra1" */
	char data_dir[CONFIG_PATH_MAX];		/* LMDB environment lives here */
	char log_target[CONFIG_PATH_MAX];	/* stderr | syslog | /path */
	int log_level;				/* enum log_level */
	char tls_cert[CONFIG_PATH_MAX];
	char tls_key[CONFIG_PATH_MAX];
	char control_socket[CONFIG_PATH_MAX];
	char run_user[CONFIG_NAME_MAX];		/* drop root to this user; "" = stay */

	/* Mail domains served: local@domain is user "local".  any_domain
	 * accepts every domain (dev mode, "domain *"). */
	char domains[CONFIG_MAX_DOMAINS][256];
	size_t n_domains;
	bool any_domain;

	struct listen_conf listens[CONFIG_MAX_LISTENS];
	size_t n_listens;

	/* The internal POP-to-POP link (docs/config.md "the link"): HTTP/2 over
	 * mutual TLS on a private address.  No peer and no link_listen: this
	 * node runs alone (dev mode always does). */
	char link_host[64];		/* link_listen address, numeric */
	uint16_t link_port;
	bool link_listen_set;
	char link_listen_file[CONFIG_PATH_MAX];	/* where it was declared */
	int link_listen_line;
	char link_ca[CONFIG_PATH_MAX];		/* cluster CA bundle (PEM) */
	char link_cert[CONFIG_PATH_MAX];	/* this node's cert, name = node_id */
	char link_key[CONFIG_PATH_MAX];
	struct peer_conf peers[CONFIG_MAX_PEERS];
	size_t n_peers;
	unsigned link_ping_interval;	/* seconds between PINGs (1s) */
	unsigned link_timeout;		/* connect/handshake, and no PING answer (3s) */
	unsigned link_breaker_failures;	/* failures in the window that open it (5) */
	unsigned link_breaker_window;	/* seconds (30s) */
	unsigned link_breaker_cooloff;	/* seconds open before a probe (10s) */
	unsigned link_max_hops;		/* POPs a request may cross (2) */

	/* Replication (docs/replication.md): "mirrors POP [POP]" pins the
	 * POPs that mirror this one's mail (each a peer); none given: the
	 * two nearest peers by link RTT. */
	char mirrors[CONFIG_MAX_MIRRORS][CONFIG_NAME_MAX];
	size_t n_mirrors;
	char mirrors_file[CONFIG_PATH_MAX];	/* where it was declared */
	int mirrors_line;
	int replication_ack;			/* enum config_repl_ack (mirror) */
	unsigned replication_ack_timeout_ms;	/* no mirror in sync this long: degraded (5s) */
	int replication_degraded;		/* enum config_repl_degraded (accept) */
	unsigned replication_startup_wait;	/* s: wait for the mirrors' answers at start (10) */

	/* Limits */
	size_t max_line_length;		/* protocol line, bytes (default 8192) */
	size_t max_message_size;	/* LMTP DATA, bytes (default 50M) */
	unsigned max_recipients;	/* per LMTP transaction (default 100) */
	unsigned max_sessions;		/* all protocols (default 10000) */
	unsigned max_sessions_per_ip;	/* per remote address (default 50) */
	unsigned auth_fail_delay_after;	/* failures before responses are delayed (3) */
	unsigned auth_fail_delay_ms;	/* delay per failure beyond that (1000) */
	unsigned auth_fail_max;		/* failures per IP in window before refusal (10) */
	unsigned auth_fail_window;	/* seconds (300) */
	unsigned idle_timeout;		/* seconds, pre- and post-auth (600) */
	unsigned pop3_max_bad_commands;	/* then disconnect (10) */

	/* Store */
	uint64_t default_quota;		/* bytes for new users, 0 = none (1G) */
	uint64_t map_size;		/* LMDB map size (16G; dev 1G) */
	unsigned commit_batch_max;	/* ops per group commit (256) */

	/* Anycast (docs/anycast.md): the service addresses the privileged
	 * parent adds to anycast_interface while the node is healthy (BIRD
	 * exports them) and deletes otherwise.  No anycast_address: nothing
	 * is announced (dev mode never announces).  Times in milliseconds. */
	struct anycast_prefix anycast[CONFIG_MAX_ANYCAST];
	size_t n_anycast;
	char anycast_interface[CONFIG_IFNAME_MAX];	/* "any0" */
	bool anycast_create_dummy;		/* create it as a dummy if missing (yes) */
	char bird_socket[CONFIG_PATH_MAX];	/* BIRD's control socket */
	unsigned health_interval_ms;		/* between health ticks (200ms) */
	unsigned health_rise;			/* passing ticks to announce (3) */
	unsigned health_fall;			/* failing ticks to withdraw (2) */
	unsigned health_hold_down_ms;		/* withdrawn at least this long (10s) */
	uint64_t health_min_free_disk;		/* bytes on data_dir, 0 = unchecked (1G) */
	unsigned health_max_loop_delay_ms;	/* event loop lateness (500ms) */
	unsigned health_max_replication_lag_ms;	/* 0 = unchecked (60s) */
	bool health_require_peer;		/* withdraw with no peer reachable (no) */
	char maintenance_file[CONFIG_PATH_MAX];	/* "" = data_dir/maintenance */
	unsigned heartbeat_timeout_ms;		/* mail process silent this long: stuck (600ms) */

	bool dev_mode;
};

/* Fill every field with its default (production).  No listeners. */
void config_defaults(struct config *c);
/* Dev mode (README): everything under dir, 127.0.0.1 listeners on the
 * fixed dev ports, every domain local, plaintext auth on loopback. */
void config_dev(struct config *c, const char *dir);
/* Parse a file into c (which holds defaults).  0, or -1 with err set to
 * "FILE:LINE: reason" (or "FILE: reason" when the file can't be read). */
int config_parse_file(struct config *c, const char *path, char *err, size_t errsz);
/* The same for an in-memory buffer; name is used in messages. */
int config_parse_buf(struct config *c, const char *name, const char *buf, size_t len,
		     char *err, size_t errsz);
/* Cross-directive checks after parsing (node_id and data_dir set, TLS
 * files given when a TLS listener exists, no duplicate listen address,
 * link files given when there is a peer or link_listen, ...).  Messages
 * point at the offending line where there is one. */
int config_check(const struct config *c, char *err, size_t errsz);

const char *config_proto_name(enum listen_proto p);
/* true if this node takes part in a cluster (a peer or link_listen). */
bool config_link_enabled(const struct config *c);
/* A peer by id, NULL if there is none. */
const struct peer_conf *config_peer(const struct config *c, const char *id);
/* The maintenance file's path: maintenance_file, or data_dir/maintenance
 * when it is not set.  False if it does not fit in buf (then cut). */
bool config_maintenance_file(const struct config *c, char *buf, size_t sz);
/* true if the domain (case-insensitive) is one of ours. */
bool config_domain_is_local(const struct config *c, const char *domain, size_t len);

#endif
