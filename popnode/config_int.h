/*
 * config_int.h - what config.c (the parser), config_check.c (the
 * whole-config checks) and config_util.c (dev mode, lookups) share.
 * Private to those three; the public API is config.h.
 */
#ifndef POPNODE_CONFIG_INT_H
#define POPNODE_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "config.h"

/* Longest unix socket path, without the NUL. */
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* The size suffixes K, M, G and T. */
#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define TIB (1024ULL * GIB)

/* Protocol names as the listen directive spells them. */
extern const char *const cfg_proto_names[PROTO_COUNT];

/* printf into err, unless err is NULL or errsz 0. */
void cfg_set_err(char *err, size_t errsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* milliseconds: "200ms", or in whole seconds/minutes/hours when exact */
void cfg_fmt_duration_ms(char *buf, size_t sz, uint64_t v);
/* A node_id: 1-63 characters of a-z, 0-9 and "-". */
bool cfg_valid_node_id(const char *p, size_t len);

/* Numeric hosts as the parser stores them (canonical text). */
bool cfg_host_is_wildcard(const char *host);	/* 0.0.0.0 or :: */
bool cfg_host_is_v6(const char *host);
/* "[::1]:110", "127.0.0.1:110" */
void cfg_fmt_addr(char *buf, size_t sz, const char *host, uint16_t port);

#endif
