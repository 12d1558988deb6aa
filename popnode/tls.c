/*
 * tls.c - server TLS context and dev mode's self-signed certificate.
 *
 * Clients get TLS 1.2 or 1.3 with OpenSSL's default cipher lists (which
 * are already restricted to AEAD suites at security level 2), no
 * compression, no renegotiation, and no session resumption (below).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls.h"

static void tls_err(char *err, size_t errsz, const char *what, const char *path)
{
	unsigned long e = ERR_get_error();
	char buf[200] = "";

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errsz, "%s%s%s%s%s", what, path ? " " : "", path ? path : "",
		 buf[0] ? ": " : "", buf);
	ERR_clear_error();
}

SSL_CTX *tls_server_ctx(const char *cert, const char *key, char *err, size_t errsz)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		tls_err(err, errsz, "cannot create TLS context", NULL);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
				 SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* No session resumption on the mail listeners (IMAP, POP3, their
	 * STARTTLS forms and IMAPS/POP3S all share this context).  TLS 1.3
	 * sends its NewSessionTicket messages after the handshake, as the
	 * first application-level bytes; a STARTTLS client that starts
	 * reading and writing the fresh TLS object from two threads
	 * (imaplib2, so offlineimap) races on them and hangs or crashes.
	 * Postfix sends tickets only when its session cache is on; Dovecot
	 * can switch them off.  Here resumption would buy little: anycast
	 * sends a client to whichever POP is nearest, every POP (and every
	 * restart) has its own ticket key, and mail sessions are long.  So:
	 * no TLS 1.3 tickets, no TLS 1.2 tickets, no session-ID cache (which
	 * would also hold up to 20,000 sessions in memory). */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_err(err, errsz, "cannot load certificate", cert);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_err(err, errsz, "cannot load private key", key);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_err(err, errsz, "private key does not match certificate", key);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int write_pem(const char *path, mode_t mode, EVP_PKEY *pkey, X509 *x509)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	FILE *f;
	int ok;

	if (fd < 0)
		return -1;
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		return -1;
	}
	ok = pkey ? PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL)
		  : PEM_write_X509(f, x509);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	if (fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

int tls_make_selfsigned(const char *cert, const char *key, char *err, size_t errsz)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	X509_EXTENSION *ext = NULL;
	X509V3_CTX v3;
	int rc = -1;

	if (access(cert, R_OK) == 0 && access(key, R_OK) == 0)
		return 0;
	pkey = EVP_EC_gen("P-256");
	x = X509_new();
	if (pkey == NULL || x == NULL)
		goto fail;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
	X509_set_pubkey(x, pkey);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"popnode dev", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
				  "DNS:localhost,IP:127.0.0.1,IP:::1");
	if (ext == NULL || !X509_add_ext(x, ext, -1))
		goto fail;
	if (!X509_sign(x, pkey, EVP_sha256()))
		goto fail;
	if (write_pem(key, 0600, pkey, NULL) < 0) {
		snprintf(err, errsz, "cannot write %s: %s", key, strerror(errno));
		goto out;
	}
	if (write_pem(cert, 0644, NULL, x) < 0) {
		snprintf(err, errsz, "cannot write %s: %s", cert, strerror(errno));
		goto out;
	}
	rc = 0;
	goto out;
fail:
	tls_err(err, errsz, "cannot make a self-signed certificate", NULL);
out:
	X509_EXTENSION_free(ext);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return rc;
}
