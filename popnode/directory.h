/*
 * directory.h - user names and passwords: validation and crypt(3) hashing
 * (libxcrypt, yescrypt by default).  The records themselves live in the
 * store (store.h).
 */
#ifndef POPNODE_DIRECTORY_H
#define POPNODE_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>

/* A POP id as the control socket, the directory and the link accept it:
 * 1-63 of A-Z a-z 0-9 . _ - (node_id itself is stricter: config.c). */
bool dir_valid_pop(const char *s);
/* 1-63 chars of [a-z0-9._-], starting with a letter or digit. */
bool dir_valid_username(const char *name);
/* Lowercase copy of a mail address' local part into out (size outsz);
 * false if it is not a valid user name. */
bool dir_user_from_local(const char *local, size_t len, char *out, size_t outsz);
/* Hash with yescrypt ($y$).  0, or -1 (out untouched). Slow (tens of ms):
 * call off the event loop (auth.h). */
int dir_hash_password(const char *password, char *out, size_t outsz);
/* true if hash is one we accept on import: $y$, $7$, $6$, $5$, $2b$/$2y$. */
bool dir_hash_acceptable(const char *hash);
/* Constant-time compare of crypt(password, hash) with hash. Slow. */
bool dir_verify_password(const char *password, const char *hash);

#endif
