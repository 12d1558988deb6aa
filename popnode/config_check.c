/*
 * config_check.c - the whole-config rules, run by config_check() after
 * parsing: what spans several directives (TLS files for TLS listeners, no
 * two listeners on one address, the link's files and addresses, pinned
 * mirrors being peers, the anycast timers), since lines may come in any
 * order.  Messages point at the offending line where there is one.
 */
#include "config_int.h"

#include <stdio.h>
#include <string.h>

/* Two TCP sockets that cannot both be bound: one port, and the same host,
 * or a wildcard and any host of the same family (IPv6 sockets are
 * V6ONLY, so 0.0.0.0 and [::] do not collide). */
static bool addr_clash(const char *h1, uint16_t p1, const char *h2, uint16_t p2)
{
	if (p1 != p2)
		return false;
	if (strcmp(h1, h2) == 0)
		return true;
	return cfg_host_is_v6(h1) == cfg_host_is_v6(h2) &&
	       (cfg_host_is_wildcard(h1) || cfg_host_is_wildcard(h2));
}

/* "unix:/path", "[::1]:110", "127.0.0.1:110" */
static void listen_addr(char *buf, size_t sz, const struct listen_conf *l)
{
	if (l->is_unix)
		snprintf(buf, sz, "unix:%s", l->path);
	else
		cfg_fmt_addr(buf, sz, l->host, l->port);
}

/* "FILE:LINE: ", "FILE: " when there is no line (dev), "" when no file. */
static void where_fl(char *buf, size_t sz, const char *file, int line)
{
	if (file[0] == '\0')
		buf[0] = '\0';
	else if (line > 0)
		snprintf(buf, sz, "%s:%d: ", file, line);
	else
		snprintf(buf, sz, "%s: ", file);
}

static void where(char *buf, size_t sz, const struct listen_conf *l)
{
	where_fl(buf, sz, l->file, l->line);
}

static int check_listen(const struct config *c, size_t i, char *err, size_t errsz)
{
	const struct listen_conf *l = &c->listens[i];
	char at[CONFIG_PATH_MAX + 24], addr[CONFIG_PATH_MAX + 16];

	where(at, sizeof(at), l);
	if ((unsigned)l->proto >= PROTO_COUNT) {
		cfg_set_err(err, errsz, "%slisten: invalid protocol", at);
		return -1;
	}
	listen_addr(addr, sizeof(addr), l);
	if (l->is_unix) {
		if (l->path[0] != '/' || strlen(l->path) > SUN_PATH_MAX) {
			cfg_set_err(err, errsz, "%slisten %s %s: unix socket path must be "
				"absolute and at most %zu bytes", at, cfg_proto_names[l->proto],
				addr, SUN_PATH_MAX);
			return -1;
		}
		if (l->proto != PROTO_LMTP && l->proto != PROTO_HTTP) {
			cfg_set_err(err, errsz, "%slisten %s %s: unix sockets are only for lmtp "
				"and http", at, cfg_proto_names[l->proto], addr);
			return -1;
		}
	} else if (l->port == 0) {
		cfg_set_err(err, errsz, "%slisten %s %s: port 0", at, cfg_proto_names[l->proto],
			addr);
		return -1;
	}
	if (l->tls != LTLS_NONE && (c->tls_cert[0] == '\0' || c->tls_key[0] == '\0')) {
		cfg_set_err(err, errsz, "%slisten %s %s uses TLS, which needs tls_cert and tls_key",
			at, cfg_proto_names[l->proto], addr);
		return -1;
	}
	if ((l->proto == PROTO_POP3 || l->proto == PROTO_IMAP) && l->tls == LTLS_NONE &&
	    !l->plaintext_auth) {
		cfg_set_err(err, errsz, "%slisten %s %s has neither TLS nor plaintext-auth: no one "
			"could log in", at, cfg_proto_names[l->proto], addr);
		return -1;
	}
	for (size_t j = 0; j < i; j++) {
		const struct listen_conf *o = &c->listens[j];
		char oat[CONFIG_PATH_MAX + 24], oaddr[CONFIG_PATH_MAX + 16];
		bool clash;

		if (o->is_unix != l->is_unix)
			continue;
		if (l->is_unix)
			clash = strcmp(o->path, l->path) == 0;
		else
			clash = addr_clash(o->host, o->port, l->host, l->port);
		if (!clash)
			continue;
		where(oat, sizeof(oat), o);
		listen_addr(oaddr, sizeof(oaddr), o);
		if (oat[0] != '\0')
			oat[strlen(oat) - 2] = '\0'; /* drop ": " */
		cfg_set_err(err, errsz, "%slisten %s %s: address already used by listen %s %s%s%s",
			at, cfg_proto_names[l->proto], addr, cfg_proto_names[o->proto], oaddr,
			oat[0] != '\0' ? " at " : "", oat);
		return -1;
	}
	return 0;
}

/* Each pinned mirror must be a peer (so not this node). */
static int check_mirrors(const struct config *c, char *err, size_t errsz)
{
	char at[CONFIG_PATH_MAX + 24];

	for (size_t i = 0; i < c->n_mirrors && i < CONFIG_MAX_MIRRORS; i++) {
		if (config_peer(c, c->mirrors[i]) != NULL)
			continue;
		where_fl(at, sizeof(at), c->mirrors_file, c->mirrors_line);
		cfg_set_err(err, errsz, "%smirrors: %s is %s", at, c->mirrors[i],
			strcmp(c->mirrors[i], c->node_id) == 0 ? "this node itself"
			: "not a configured peer");
		return -1;
	}
	return 0;
}

/* The link's cross-directive rules.  Messages start at the first link
 * line (link_listen or the first peer) unless they are about one peer. */
static int check_link(const struct config *c, char *err, size_t errsz)
{
	char at[CONFIG_PATH_MAX + 24] = "", what[CONFIG_NAME_MAX + 112] = "", addr[96] = "";
	char missing[64] = "";

	/* The timers are checked even without a peer: they are defaults the
	 * link takes as soon as one is added. */
	if (c->link_ping_interval == 0 || c->link_timeout == 0 ||
	    c->link_ping_interval > c->link_timeout) {
		cfg_set_err(err, errsz, "link_ping_interval (%us) must not be longer than "
			"link_timeout (%us), and both must be at least 1s", c->link_ping_interval,
			c->link_timeout);
		return -1;
	}
	if (c->link_breaker_failures == 0 || c->link_breaker_window == 0 ||
	    c->link_breaker_cooloff == 0 || c->link_max_hops == 0) {
		cfg_set_err(err, errsz, "link_breaker_failures, link_breaker_window, "
			"link_breaker_cooloff and link_max_hops must be set");
		return -1;
	}
	if (!config_link_enabled(c))
		return check_mirrors(c, err, errsz);
	if (c->n_peers > CONFIG_MAX_PEERS) {
		cfg_set_err(err, errsz, "too many peers");
		return -1;
	}
	if (c->link_listen_set) {
		cfg_fmt_addr(addr, sizeof(addr), c->link_host, c->link_port);
		where_fl(at, sizeof(at), c->link_listen_file, c->link_listen_line);
		snprintf(what, sizeof(what), "link_listen %s", addr);
	}
	if (c->n_peers > 0 && (!c->link_listen_set ||
			       (strcmp(c->peers[0].file, c->link_listen_file) == 0 &&
				c->peers[0].line < c->link_listen_line))) {
		where_fl(at, sizeof(at), c->peers[0].file, c->peers[0].line);
		snprintf(what, sizeof(what), "peer %s", c->peers[0].id);
	}
	if (c->link_ca[0] == '\0')
		strcat(missing, ", link_ca");
	if (c->link_cert[0] == '\0')
		strcat(missing, ", link_cert");
	if (c->link_key[0] == '\0')
		strcat(missing, ", link_key");
	if (missing[0] != '\0') {
		cfg_set_err(err, errsz, "%s%s: the link needs link_ca, link_cert and link_key "
			"(missing: %s)", at, what, missing + 2);
		return -1;
	}
	if (c->n_peers > 0 && !c->link_listen_set) {
		cfg_set_err(err, errsz, "%s%s: peers need link_listen, the address this node "
			"accepts them on", at, what);
		return -1;
	}
	for (size_t i = 0; c->link_listen_set && i < c->n_listens; i++) {
		const struct listen_conf *l = &c->listens[i];
		char lat[CONFIG_PATH_MAX + 24], laddr[CONFIG_PATH_MAX + 16];

		if (l->is_unix || !addr_clash(l->host, l->port, c->link_host, c->link_port))
			continue;
		where_fl(at, sizeof(at), c->link_listen_file, c->link_listen_line);
		where(lat, sizeof(lat), l);
		if (lat[0] != '\0')
			lat[strlen(lat) - 2] = '\0'; /* drop ": " */
		listen_addr(laddr, sizeof(laddr), l);
		cfg_set_err(err, errsz, "%slink_listen %s: address already used by listen %s "
			"%s%s%s", at, addr, cfg_proto_names[l->proto], laddr,
			lat[0] != '\0' ? " at " : "", lat);
		return -1;
	}
	for (size_t i = 0; i < c->n_peers; i++) {
		const struct peer_conf *p = &c->peers[i];

		where_fl(at, sizeof(at), p->file, p->line);
		cfg_fmt_addr(addr, sizeof(addr), p->host, p->port);
		if (strcmp(p->id, c->node_id) == 0) {
			cfg_set_err(err, errsz, "%speer %s: that is this node's own node_id", at,
				p->id);
			return -1;
		}
		if (strcmp(p->host, c->link_host) == 0 && p->port == c->link_port) {
			cfg_set_err(err, errsz, "%speer %s %s: that is this node's own link_listen "
				"address", at, p->id, addr);
			return -1;
		}
	}
	return check_mirrors(c, err, errsz);
}

/* The anycast timers are checked even without an anycast_address, like
 * the link's: they are what an address added later would run with.  A
 * missing BIRD socket is not a config error but a health failure at run
 * time (BIRD may start later). */
static int check_anycast(const struct config *c, char *err, size_t errsz)
{
	char a[32], b[32];

	if (c->n_anycast > CONFIG_MAX_ANYCAST) {
		cfg_set_err(err, errsz, "too many anycast addresses");
		return -1;
	}
	if (c->health_interval_ms == 0 || c->health_rise == 0 || c->health_fall == 0 ||
	    c->health_max_loop_delay_ms == 0 || c->anycast_interface[0] == '\0') {
		cfg_set_err(err, errsz, "health_interval, health_rise, health_fall, "
			"health_max_loop_delay and anycast_interface must be set");
		return -1;
	}
	if (c->heartbeat_timeout_ms <= c->health_interval_ms) {
		cfg_fmt_duration_ms(a, sizeof(a), c->heartbeat_timeout_ms);
		cfg_fmt_duration_ms(b, sizeof(b), c->health_interval_ms);
		cfg_set_err(err, errsz, "heartbeat_timeout (%s) must be longer than "
			"health_interval (%s): the mail process reports once per interval", a, b);
		return -1;
	}
	if (strlen(c->bird_socket) > SUN_PATH_MAX) {
		cfg_set_err(err, errsz, "bird_socket: path is longer than %zu bytes, too long "
			"for a unix socket", SUN_PATH_MAX);
		return -1;
	}
	return 0;
}

int config_check(const struct config *c, char *err, size_t errsz)
{
	if (c->node_id[0] == '\0') {
		cfg_set_err(err, errsz, "node_id is not set (this POP's name, e.g. "
			"\"node_id fra1\")");
		return -1;
	}
	if (!cfg_valid_node_id(c->node_id, strnlen(c->node_id, sizeof(c->node_id)))) {
		cfg_set_err(err, errsz, "node_id must be 1-63 characters of a-z, 0-9 and \"-\"");
		return -1;
	}
	if (c->data_dir[0] == '\0') {
		cfg_set_err(err, errsz, "data_dir is not set");
		return -1;
	}
	if (c->n_listens == 0) {
		cfg_set_err(err, errsz, "no listen directive: at least one listener is needed");
		return -1;
	}
	if (c->n_listens > CONFIG_MAX_LISTENS || c->n_domains > CONFIG_MAX_DOMAINS) {
		cfg_set_err(err, errsz, "too many listeners or domains");
		return -1;
	}
	if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0')) {
		cfg_set_err(err, errsz, "%s is set but %s is not: give both or neither",
			c->tls_cert[0] ? "tls_cert" : "tls_key",
			c->tls_cert[0] ? "tls_key" : "tls_cert");
		return -1;
	}
	for (size_t i = 0; i < c->n_listens; i++)
		if (check_listen(c, i, err, errsz) < 0)
			return -1;
	if (!c->any_domain && c->n_domains == 0) {
		for (size_t i = 0; i < c->n_listens; i++) {
			if (c->listens[i].proto == PROTO_LMTP) {
				char at[CONFIG_PATH_MAX + 24];

				where(at, sizeof(at), &c->listens[i]);
				cfg_set_err(err, errsz, "%slisten lmtp: no domain directive, so "
					"every recipient would be refused; add \"domain "
					"example.com\" (or \"domain *\")", at);
				return -1;
			}
		}
	}
	if (c->control_socket[0] != '\0' && strlen(c->control_socket) > SUN_PATH_MAX) {
		cfg_set_err(err, errsz, "control_socket: path is longer than %zu bytes, too long "
			"for a unix socket", SUN_PATH_MAX);
		return -1;
	}
	if (c->auth_fail_max == 0 || c->auth_fail_delay_after > c->auth_fail_max) {
		cfg_set_err(err, errsz, "auth_fail_delay_after (%u) must not be greater than "
			"auth_fail_max (%u), which must be at least 1", c->auth_fail_delay_after,
			c->auth_fail_max);
		return -1;
	}
	if (c->auth_fail_window == 0 || c->idle_timeout == 0) {
		cfg_set_err(err, errsz, "auth_fail_window and idle_timeout must be at least 1s");
		return -1;
	}
	if (c->max_sessions == 0 || c->max_sessions_per_ip > c->max_sessions) {
		cfg_set_err(err, errsz, "max_sessions_per_ip (%u) must not be greater than "
			"max_sessions (%u)", c->max_sessions_per_ip, c->max_sessions);
		return -1;
	}
	if (c->max_line_length < 512 || c->max_recipients == 0 || c->commit_batch_max == 0 ||
	    c->pop3_max_bad_commands == 0) {
		cfg_set_err(err, errsz, "max_line_length, max_recipients, commit_batch_max and "
			"pop3_max_bad_commands must be set");
		return -1;
	}
	if (check_anycast(c, err, errsz) < 0)
		return -1;
	return check_link(c, err, errsz);
}
