/*
 * link_tls.c - mutual TLS for the internal link.
 *
 * Both ends present a certificate issued by the cluster CA (link_ca);
 * its name (subjectAltName DNS, or CN) is the POP id.  TLS 1.3 only, ALPN
 * "h2" only.  The dialler checks that the server's certificate names the
 * peer it meant to reach (SSL_set1_host, in link_conn.c); the server
 * refuses, inside the handshake, a client whose certificate does not
 * chain to the CA or does not name a configured peer.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "link_private.h"
#include "log.h"

static const unsigned char alpn_h2[] = { 2, 'h', '2' };

static void ssl_error(char *err, size_t errsz, const char *what, const char *path)
{
	unsigned long e = ERR_get_error();
	char buf[200] = "";

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errsz, "%s %s%s%s", what, path, buf[0] ? ": " : "", buf);
	ERR_clear_error();
}

static struct link_peer *peer_named_in(struct link *l, X509 *cert)
{
	for (size_t i = 0; i < l->n_peers; i++) {
		const char *id = l->peers[i].pc->id;

		if (X509_check_host(cert, id, strlen(id), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
				    NULL) == 1)
			return &l->peers[i];
	}
	return NULL;
}

/* Server side: after the chain verified, the leaf must name a peer. */
static int verify_client(int preverify_ok, X509_STORE_CTX *xctx)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct link *l = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	X509 *cert = X509_STORE_CTX_get_current_cert(xctx);
	char name[256] = "?";

	if (cert != NULL)
		X509_NAME_oneline(X509_get_subject_name(cert), name, sizeof(name));
	if (!preverify_ok) {
		int e = X509_STORE_CTX_get_error(xctx);
		log_warn("link.refused", "reason=untrusted_certificate subject=\"%s\" error=\"%s\"",
			 name, X509_verify_cert_error_string(e));
		return 0;
	}
	if (X509_STORE_CTX_get_error_depth(xctx) != 0)
		return 1;
	if (cert == NULL || peer_named_in(l, cert) == NULL) {
		log_warn("link.refused", "reason=not_a_peer subject=\"%s\"", name);
		X509_STORE_CTX_set_error(xctx, X509_V_ERR_HOSTNAME_MISMATCH);
		return 0;
	}
	return 1;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel;

	if (SSL_select_next_proto(&sel, outlen, alpn_h2, sizeof(alpn_h2), in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *make_ctx(const struct config *cfg, bool server, char *err, size_t errsz)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	if (ctx == NULL) {
		ssl_error(err, errsz, "cannot create TLS context", "");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
				 SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->link_cert) != 1) {
		ssl_error(err, errsz, "link_cert: cannot load", cfg->link_cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->link_key, SSL_FILETYPE_PEM) != 1) {
		ssl_error(err, errsz, "link_key: cannot load", cfg->link_key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_error(err, errsz, "link_key: does not match link_cert", cfg->link_key);
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(ctx, cfg->link_ca, NULL) != 1) {
		ssl_error(err, errsz, "link_ca: cannot load", cfg->link_ca);
		goto fail;
	}
	if (server) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->link_ca);
		if (names != NULL)
			SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
				   verify_client);
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_num_tickets(ctx, 0);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2)) != 0) {
			ssl_error(err, errsz, "cannot set ALPN", "");
			goto fail;
		}
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int link_tls_init(struct link *l, char *err, size_t errsz)
{
	l->client_ctx = make_ctx(l->cfg, false, err, errsz);
	if (l->client_ctx == NULL)
		return -1;
	l->server_ctx = make_ctx(l->cfg, true, err, errsz);
	if (l->server_ctx == NULL) {
		SSL_CTX_free(l->client_ctx);
		l->client_ctx = NULL;
		return -1;
	}
	SSL_CTX_set_app_data(l->server_ctx, l);
	return 0;
}

void link_tls_fini(struct link *l)
{
	SSL_CTX_free(l->client_ctx);
	SSL_CTX_free(l->server_ctx);
	l->client_ctx = l->server_ctx = NULL;
}

struct link_peer *link_tls_peer_of(struct link *l, SSL *ssl)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);

	if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
		return NULL;
	return peer_named_in(l, cert);
}

bool link_tls_alpn_ok(SSL *ssl)
{
	const unsigned char *p;
	unsigned int len;

	SSL_get0_alpn_selected(ssl, &p, &len);
	return len == 2 && memcmp(p, "h2", 2) == 0;
}
