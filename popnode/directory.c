/*
 * directory.c - user names and password hashes.
 *
 * User names are the local part of a mail address, lowercased, with any
 * "+detail" suffix dropped ("Bob+lists" -> "bob"), and restricted to
 * [a-z0-9._-] so that they are safe in logs, file names and protocol
 * responses without quoting.
 *
 * Passwords are hashed with yescrypt through libxcrypt's reentrant calls
 * (crypt_gensalt_rn, crypt_rn with a heap struct crypt_data): no static
 * buffers, so the auth worker threads may call these at once.  Hashes
 * imported from another system are accepted only for strong methods
 * (yescrypt, gost-yescrypt, scrypt, SHA-512/256-crypt, bcrypt); DES, MD5
 * and locked/disabled markers ("*", "!...") never verify.  The final
 * comparison is constant-time (CRYPTO_memcmp), and the crypt work area is
 * wiped before it is freed.
 */
#include "directory.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#define USERNAME_MAX 63

static bool user_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
	       ch == '-';
}

bool dir_valid_pop(const char *s)
{
	size_t len = strnlen(s, 64);

	if (len == 0 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

bool dir_valid_username(const char *name)
{
	size_t n;

	if (name == NULL)
		return false;
	n = strnlen(name, USERNAME_MAX + 1);
	if (n < 1 || n > USERNAME_MAX)
		return false;
	if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!user_char(name[i]))
			return false;
	return true;
}

bool dir_user_from_local(const char *local, size_t len, char *out, size_t outsz)
{
	const char *plus;
	char buf[USERNAME_MAX + 1];

	if (local == NULL || out == NULL || outsz == 0)
		return false;
	plus = memchr(local, '+', len);
	if (plus != NULL)
		len = (size_t)(plus - local);
	if (len < 1 || len > USERNAME_MAX || len >= outsz)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = local[i];

		buf[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + ('a' - 'A')) : ch;
	}
	buf[len] = '\0';
	if (strlen(buf) != len || !dir_valid_username(buf))
		return false;
	memcpy(out, buf, len + 1);
	return true;
}

int dir_hash_password(const char *password, char *out, size_t outsz)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	const char *h;
	int rc = -1;

	if (password == NULL || out == NULL)
		return -1;
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) == NULL || salt[0] != '$')
		return -1;
	cd = calloc(1, sizeof(*cd));
	if (cd == NULL)
		return -1;
	h = crypt_rn(password, salt, cd, sizeof(*cd));
	if (h != NULL && h[0] == '$' && strlen(h) < outsz) {
		memcpy(out, h, strlen(h) + 1);
		rc = 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return rc;
}

static bool hash_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '/' || ch == '$' || ch == '=' || ch == ',';
}

bool dir_hash_acceptable(const char *hash)
{
	static const char *const prefixes[] = { "$y$", "$gy$", "$7$", "$6$", "$5$", "$2b$", "$2y$" };
	const char *last;
	size_t n, dollars = 0;
	bool known = false;

	if (hash == NULL)
		return false;
	n = strnlen(hash, CRYPT_OUTPUT_SIZE);
	if (n == 0 || n >= CRYPT_OUTPUT_SIZE)
		return false;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(hash, prefixes[i], strlen(prefixes[i])) == 0)
			known = true;
	if (!known)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!hash_char(hash[i]))
			return false;
		dollars += hash[i] == '$';
	}
	/* a whole hash, "$id$[params$]salt$hash", not only a setting */
	last = strrchr(hash, '$');
	if (dollars < 3 || last[1] == '\0')
		return false;
	/* libxcrypt calls $5$ "legacy" but still computes it; the prefix list
	 * above is our policy, crypt_checksalt() only catches malformed ones. */
	int cs = crypt_checksalt(hash);
	return cs == CRYPT_SALT_OK || cs == CRYPT_SALT_METHOD_LEGACY;
}

bool dir_verify_password(const char *password, const char *hash)
{
	struct crypt_data *cd;
	const char *h;
	bool ok = false;

	if (password == NULL || !dir_hash_acceptable(hash))
		return false;
	cd = calloc(1, sizeof(*cd));
	if (cd == NULL)
		return false;
	h = crypt_rn(password, hash, cd, sizeof(*cd));
	if (h != NULL && h[0] == '$') {
		size_t hl = strlen(h), sl = strlen(hash);

		ok = hl == sl && CRYPTO_memcmp(h, hash, hl) == 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}
