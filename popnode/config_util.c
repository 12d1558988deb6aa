/*
 * config_util.c - the config functions that are neither parsing nor
 * checking: dev mode's built-in configuration (config_dev) and small
 * lookups on a parsed config (protocol names, peers, the maintenance
 * file, local domains).
 */
#include "config_int.h"

#include <stdio.h>
#include <string.h>

/* dir + "/" + leaf into dst, cut to fit; false if it was cut. */
static bool join(char *dst, size_t sz, const char *dir, const char *leaf)
{
	size_t dl = strlen(dir), ll = strlen(leaf), n = 0;
	bool fits = dl + 1 + ll < sz;

	for (size_t i = 0; i < dl && n + 1 < sz; i++)
		dst[n++] = dir[i];
	if (n + 1 < sz)
		dst[n++] = '/';
	for (size_t i = 0; i < ll && n + 1 < sz; i++)
		dst[n++] = leaf[i];
	dst[n] = '\0';
	return fits;
}

static void dev_listen(struct config *c, enum listen_proto p, enum listen_tls tls,
		       bool plaintext_auth, uint16_t port, const char *path)
{
	struct listen_conf *l;

	if (c->n_listens >= CONFIG_MAX_LISTENS)
		return;
	l = &c->listens[c->n_listens++];
	memset(l, 0, sizeof(*l));
	l->proto = p;
	l->tls = tls;
	l->plaintext_auth = plaintext_auth;
	if (path != NULL) {
		l->is_unix = true;
		snprintf(l->path, sizeof(l->path), "%s", path);
	} else {
		snprintf(l->host, sizeof(l->host), "127.0.0.1");
		l->port = port;
	}
	snprintf(l->file, sizeof(l->file), "(dev)");
	l->line = 0;
}

void config_dev(struct config *c, const char *dir)
{
	char sock[CONFIG_PATH_MAX];
	size_t n = strlen(dir);

	config_defaults(c);
	snprintf(c->node_id, sizeof(c->node_id), "dev");
	/* "dir/" and "dir" name the same place. */
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n >= sizeof(c->data_dir))
		n = sizeof(c->data_dir) - 1;
	memcpy(c->data_dir, dir, n);
	c->data_dir[n] = '\0';
	/* A dir too long for these paths leaves them cut at 255 bytes; the
	 * socket paths are then longer than a unix socket allows and
	 * config_check() refuses them with a message, so nothing runs on a
	 * truncated path. */
	(void)join(c->tls_cert, sizeof(c->tls_cert), c->data_dir, "cert.pem");
	(void)join(c->tls_key, sizeof(c->tls_key), c->data_dir, "key.pem");
	(void)join(c->control_socket, sizeof(c->control_socket), c->data_dir, "control.sock");
	(void)join(sock, sizeof(sock), c->data_dir, "lmtp.sock");
	snprintf(c->log_target, sizeof(c->log_target), "stderr");
	c->any_domain = true;
	dev_listen(c, PROTO_IMAP, LTLS_STARTTLS, true, 10143, NULL);
	dev_listen(c, PROTO_IMAPS, LTLS_IMPLICIT, false, 10993, NULL);
	dev_listen(c, PROTO_POP3, LTLS_STARTTLS, true, 10110, NULL);
	dev_listen(c, PROTO_POP3S, LTLS_IMPLICIT, false, 10995, NULL);
	dev_listen(c, PROTO_LMTP, LTLS_NONE, false, 10024, NULL);
	dev_listen(c, PROTO_HTTP, LTLS_NONE, false, 10080, NULL);
	dev_listen(c, PROTO_LMTP, LTLS_NONE, false, 0, sock);
	c->map_size = GIB;
	c->dev_mode = true;
}

const char *config_proto_name(enum listen_proto p)
{
	if ((unsigned)p >= PROTO_COUNT)
		return "?";
	return cfg_proto_names[p];
}

bool config_link_enabled(const struct config *c)
{
	return c->link_listen_set || c->n_peers > 0;
}

const struct peer_conf *config_peer(const struct config *c, const char *id)
{
	if (id == NULL)
		return NULL;
	for (size_t i = 0; i < c->n_peers && i < CONFIG_MAX_PEERS; i++)
		if (strcmp(c->peers[i].id, id) == 0)
			return &c->peers[i];
	return NULL;
}

bool config_maintenance_file(const struct config *c, char *buf, size_t sz)
{
	if (sz == 0)
		return false;
	if (c->maintenance_file[0] != '\0') {
		size_t n = strlen(c->maintenance_file);

		snprintf(buf, sz, "%s", c->maintenance_file);
		return n < sz;
	}
	return join(buf, sz, c->data_dir, "maintenance");
}

bool config_domain_is_local(const struct config *c, const char *domain, size_t len)
{
	if (c->any_domain)
		return true;
	if (domain == NULL || len == 0)
		return false;
	for (size_t i = 0; i < c->n_domains; i++) {
		const char *d = c->domains[i];
		size_t k;

		if (strlen(d) != len)
			continue;
		for (k = 0; k < len; k++) {
			unsigned char x = (unsigned char)d[k], y = (unsigned char)domain[k];

			if (x >= 'A' && x <= 'Z')
				x = (unsigned char)(x + 32);
			if (y >= 'A' && y <= 'Z')
				y = (unsigned char)(y + 32);
			if (x != y)
				break;
		}
		if (k == len)
			return true;
	}
	return false;
}
