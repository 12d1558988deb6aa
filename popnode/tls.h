/*
 * tls.h - the server TLS context (OpenSSL 3), and the self-signed
 * certificate dev mode makes on first start.
 */
#ifndef POPNODE_TLS_H
#define POPNODE_TLS_H

#include <openssl/ssl.h>

/* TLS 1.2+ server context from PEM files.  NULL with err set. */
SSL_CTX *tls_server_ctx(const char *cert, const char *key, char *err, size_t errsz);
/* Write a self-signed P-256 certificate for "localhost"/127.0.0.1/::1
 * valid 10 years, unless both files exist.  0, or -1 with err set. */
int tls_make_selfsigned(const char *cert, const char *key, char *err, size_t errsz);

#endif
