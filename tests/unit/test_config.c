/*
 * test_config.c - the config parser and check: every directive good and
 * bad, the exact "FILE:LINE: reason" of each error, the shipped example,
 * dev mode, the cross-directive checks, the link directives, the anycast
 * and health directives, and that the defaults in docs/config.md are the
 * ones the table applies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include "config.h"
#include "log.h"

static struct config c;
static char err[1024];

static int parse(const char *text)
{
	config_defaults(&c);
	err[0] = '\0';
	return config_parse_buf(&c, "t.conf", text, strlen(text), err, sizeof(err));
}

/* Parse text on top of a minimal valid config, then check. */
static const char *base_conf =
	"node_id t1\n"
	"data_dir /var/lib/popnode\n"
	"tls_cert /etc/popnode/cert.pem\n"
	"tls_key /etc/popnode/key.pem\n"
	"domain example.com\n";

static int parse_checked(const char *extra)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "%s%s", base_conf, extra);
	if (parse(buf) < 0)
		return -1;
	return config_check(&c, err, sizeof(err));
}

#define assert_parse_ok(text)                                     \
	do {                                                      \
		int rc_ = parse(text);                            \
		if (rc_ != 0)                                     \
			print_error("unexpected error: %s\n", err); \
		assert_int_equal(rc_, 0);                         \
	} while (0)

#define assert_parse_err(text, msg)              \
	do {                                     \
		assert_int_equal(parse(text), -1); \
		assert_string_equal(err, msg);   \
	} while (0)

/* ---- defaults ------------------------------------------------------------ */

static void test_defaults(void **state)
{
	config_defaults(&c);
	assert_string_equal(c.node_id, "");
	assert_string_equal(c.data_dir, "");
	assert_string_equal(c.log_target, "stderr");
	assert_int_equal(c.log_level, LOG_LVL_INFO);
	assert_string_equal(c.tls_cert, "");
	assert_string_equal(c.tls_key, "");
	assert_string_equal(c.control_socket, "/run/popnode/control.sock");
	assert_string_equal(c.run_user, "");
	assert_int_equal(c.n_domains, 0);
	assert_false(c.any_domain);
	assert_int_equal(c.n_listens, 0);
	assert_int_equal(c.max_line_length, 8192);
	assert_int_equal(c.max_message_size, 50 * 1024 * 1024);
	assert_int_equal(c.max_recipients, 100);
	assert_int_equal(c.max_sessions, 10000);
	assert_int_equal(c.max_sessions_per_ip, 50);
	assert_int_equal(c.auth_fail_delay_after, 3);
	assert_int_equal(c.auth_fail_delay_ms, 1000);
	assert_int_equal(c.auth_fail_max, 10);
	assert_int_equal(c.auth_fail_window, 300);
	assert_int_equal(c.idle_timeout, 600);
	assert_int_equal(c.pop3_max_bad_commands, 10);
	assert_true(c.default_quota == 1024ULL * 1024 * 1024);
	assert_true(c.map_size == 16ULL * 1024 * 1024 * 1024);
	assert_int_equal(c.commit_batch_max, 256);
	assert_false(c.dev_mode);
	/* the link: off, with its timers at their defaults */
	assert_false(c.link_listen_set);
	assert_string_equal(c.link_host, "");
	assert_int_equal(c.link_port, 0);
	assert_string_equal(c.link_ca, "");
	assert_string_equal(c.link_cert, "");
	assert_string_equal(c.link_key, "");
	assert_int_equal(c.n_peers, 0);
	assert_false(config_link_enabled(&c));
	assert_int_equal(c.link_ping_interval, 1);
	assert_int_equal(c.link_timeout, 3);
	assert_int_equal(c.link_breaker_failures, 5);
	assert_int_equal(c.link_breaker_window, 30);
	assert_int_equal(c.link_breaker_cooloff, 10);
	assert_int_equal(c.link_max_hops, 2);
	/* anycast: no address, the health timers at their defaults */
	assert_int_equal(c.n_anycast, 0);
	assert_string_equal(c.anycast_interface, "any0");
	assert_true(c.anycast_create_dummy);
	assert_string_equal(c.bird_socket, "/run/bird/bird.ctl");
	assert_int_equal(c.health_interval_ms, 200);
	assert_int_equal(c.health_rise, 3);
	assert_int_equal(c.health_fall, 2);
	assert_int_equal(c.health_hold_down_ms, 10000);
	assert_true(c.health_min_free_disk == 1024ULL * 1024 * 1024);
	assert_int_equal(c.health_max_loop_delay_ms, 500);
	assert_int_equal(c.health_max_replication_lag_ms, 60000);
	assert_false(c.health_require_peer);
	assert_string_equal(c.maintenance_file, "");
	assert_int_equal(c.heartbeat_timeout_ms, 600);
	/* defaults alone lack node_id, data_dir and listeners */
	assert_int_equal(config_check(&c, err, sizeof(err)), -1);
}

/* ---- each directive, good values ---------------------------------------------- */

static void test_strings(void **state)
{
	assert_parse_ok("node_id fra-1\n"
			"data_dir /srv/mail\n"
			"log /var/log/popnode.log\n"
			"log_level debug\n"
			"tls_cert /etc/c.pem\n"
			"tls_key /etc/k.pem\n"
			"control_socket /run/p/ctl.sock\n"
			"user mail_user.1\n");
	assert_string_equal(c.node_id, "fra-1");
	assert_string_equal(c.data_dir, "/srv/mail");
	assert_string_equal(c.log_target, "/var/log/popnode.log");
	assert_int_equal(c.log_level, LOG_LVL_DEBUG);
	assert_string_equal(c.tls_cert, "/etc/c.pem");
	assert_string_equal(c.tls_key, "/etc/k.pem");
	assert_string_equal(c.control_socket, "/run/p/ctl.sock");
	assert_string_equal(c.run_user, "mail_user.1");

	assert_parse_ok("log syslog\nlog_level error\n");
	assert_string_equal(c.log_target, "syslog");
	assert_int_equal(c.log_level, LOG_LVL_ERR);
	assert_parse_ok("log stderr\nlog_level warn\n");
	assert_string_equal(c.log_target, "stderr");
	assert_int_equal(c.log_level, LOG_LVL_WARN);
	assert_parse_ok("log_level info\n");
	assert_int_equal(c.log_level, LOG_LVL_INFO);

	/* longest node_id: 63 characters */
	char buf[128];
	snprintf(buf, sizeof(buf), "node_id %.63s\n",
		 "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123");
	assert_parse_ok(buf);
	assert_int_equal(strlen(c.node_id), 63);
}

static void test_numbers(void **state)
{
	assert_parse_ok("max_line_length 512\n"
			"max_message_size 1K\n"
			"max_recipients 1\n"
			"max_sessions 1000000\n"
			"max_sessions_per_ip 7\n"
			"auth_fail_delay_after 0\n"
			"auth_fail_delay_ms 60000\n"
			"auth_fail_max 100000\n"
			"auth_fail_window 1\n"
			"idle_timeout 24h\n"
			"pop3_max_bad_commands 1000\n"
			"default_quota 0\n"
			"map_size 1M\n"
			"commit_batch_max 65536\n");
	assert_int_equal(c.max_line_length, 512);
	assert_int_equal(c.max_message_size, 1024);
	assert_int_equal(c.max_recipients, 1);
	assert_int_equal(c.max_sessions, 1000000);
	assert_int_equal(c.max_sessions_per_ip, 7);
	assert_int_equal(c.auth_fail_delay_after, 0);
	assert_int_equal(c.auth_fail_delay_ms, 60000);
	assert_int_equal(c.auth_fail_max, 100000);
	assert_int_equal(c.auth_fail_window, 1);
	assert_int_equal(c.idle_timeout, 86400);
	assert_int_equal(c.pop3_max_bad_commands, 1000);
	assert_true(c.default_quota == 0);
	assert_true(c.map_size == 1024 * 1024);
	assert_int_equal(c.commit_batch_max, 65536);
}

static void test_suffixes(void **state)
{
	assert_parse_ok("max_message_size 4G\nmap_size 64T\ndefault_quota 2t\nmax_line_length 1m\n");
	assert_true(c.max_message_size == 4ULL << 30);
	assert_true(c.map_size == 64ULL << 40);
	assert_true(c.default_quota == 2ULL << 40);
	assert_int_equal(c.max_line_length, 1 << 20);
	assert_parse_ok("max_message_size 123456\ndefault_quota 10k\n");
	assert_int_equal(c.max_message_size, 123456);
	assert_true(c.default_quota == 10240);
	assert_parse_ok("idle_timeout 90s\nauth_fail_window 2m\n");
	assert_int_equal(c.idle_timeout, 90);
	assert_int_equal(c.auth_fail_window, 120);
	assert_parse_ok("idle_timeout 45\nauth_fail_window 1h\n");
	assert_int_equal(c.idle_timeout, 45);
	assert_int_equal(c.auth_fail_window, 3600);
	assert_parse_ok("max_sessions 007\n");
	assert_int_equal(c.max_sessions, 7);
}

static void test_domains(void **state)
{
	assert_parse_ok("domain Example.COM\ndomain mail.isp.example\ndomain localhost\n");
	assert_int_equal(c.n_domains, 3);
	assert_string_equal(c.domains[0], "example.com");
	assert_false(c.any_domain);
	assert_true(config_domain_is_local(&c, "EXAMPLE.com", 11));
	assert_true(config_domain_is_local(&c, "mail.isp.example", 16));
	assert_true(config_domain_is_local(&c, "example.comXYZ", 11)); /* len-counted */
	assert_false(config_domain_is_local(&c, "example.co", 10));
	assert_false(config_domain_is_local(&c, "isp.example", 11));
	assert_false(config_domain_is_local(&c, "example.com.", 12));
	assert_false(config_domain_is_local(&c, "", 0));
	assert_false(config_domain_is_local(&c, "exa\0ple.com", 11));

	assert_parse_ok("domain *\n");
	assert_true(c.any_domain);
	assert_int_equal(c.n_domains, 0);
	assert_true(config_domain_is_local(&c, "anything.test", 13));

	/* 64 domains fit, the 65th does not */
	char buf[64 * 24 + 64];
	size_t n = 0;
	for (int i = 0; i < CONFIG_MAX_DOMAINS; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "domain d%d.example\n", i);
	assert_parse_ok(buf);
	assert_int_equal(c.n_domains, CONFIG_MAX_DOMAINS);
	snprintf(buf + n, sizeof(buf) - n, "domain more.example\n");
	assert_parse_err(buf, "t.conf:65: domain: more than 64 domains");
}

static void test_listen_good(void **state)
{
	assert_parse_ok("listen pop3 0.0.0.0:110\n"
			"listen pop3s [::]:995\n"
			"listen imap 127.0.0.1:143 plaintext-auth\n"
			"listen imaps [2001:DB8::1]:993\n"
			"listen lmtp unix:/run/popnode/lmtp.sock\n"
			"listen http 127.0.0.2:9110\n"
			"listen lmtp [::1]:24\n"
			"listen pop3 127.0.0.1:1110 no-starttls plaintext-auth\n"
			"listen http 192.0.2.7:9110 plaintext\n"
			"listen lmtp [::ffff:127.0.0.1]:2424\n");
	assert_int_equal(c.n_listens, 10);

	const struct listen_conf *l = &c.listens[0];
	assert_int_equal(l->proto, PROTO_POP3);
	assert_false(l->is_unix);
	assert_string_equal(l->host, "0.0.0.0");
	assert_int_equal(l->port, 110);
	assert_int_equal(l->tls, LTLS_STARTTLS);
	assert_false(l->plaintext_auth);
	assert_string_equal(l->file, "t.conf");
	assert_int_equal(l->line, 1);

	l = &c.listens[1];
	assert_int_equal(l->proto, PROTO_POP3S);
	assert_string_equal(l->host, "::");
	assert_int_equal(l->tls, LTLS_IMPLICIT);

	l = &c.listens[2];
	assert_int_equal(l->proto, PROTO_IMAP);
	assert_int_equal(l->tls, LTLS_STARTTLS);
	assert_true(l->plaintext_auth);
	assert_int_equal(l->line, 3);

	l = &c.listens[3];
	assert_int_equal(l->proto, PROTO_IMAPS);
	assert_string_equal(l->host, "2001:db8::1"); /* canonical form */
	assert_int_equal(l->tls, LTLS_IMPLICIT);

	l = &c.listens[4];
	assert_int_equal(l->proto, PROTO_LMTP);
	assert_true(l->is_unix);
	assert_string_equal(l->path, "/run/popnode/lmtp.sock");
	assert_int_equal(l->tls, LTLS_NONE);

	l = &c.listens[5];
	assert_int_equal(l->proto, PROTO_HTTP);
	assert_int_equal(l->tls, LTLS_NONE);

	l = &c.listens[7];
	assert_int_equal(l->tls, LTLS_NONE);
	assert_true(l->plaintext_auth);

	l = &c.listens[8];
	assert_string_equal(l->host, "192.0.2.7");
	assert_int_equal(l->port, 9110);

	/* 32 listeners fit, the 33rd does not */
	char buf[64 * 40];
	size_t n = 0;
	for (int i = 0; i < CONFIG_MAX_LISTENS; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "listen pop3s 127.0.0.1:%d\n",
				      2000 + i);
	assert_parse_ok(buf);
	assert_int_equal(c.n_listens, CONFIG_MAX_LISTENS);
	snprintf(buf + n, sizeof(buf) - n, "listen pop3s 127.0.0.1:3000\n");
	assert_parse_err(buf, "t.conf:33: listen: more than 32 listeners");
}

static void test_link_good(void **state)
{
	assert_parse_ok("link_listen 10.20.0.1:7443\n"
			"link_ca /etc/popnode/link/ca.pem\n"
			"link_cert /etc/popnode/link/fra1.pem\n"
			"link_key /etc/popnode/link/fra1.key\n"
			"\n"
			"peer ams1 10.20.0.2:7443\n"
			"peer lon1\t[FD00:20:0::3]:7443   # comment\n"
			"peer par-2 10.20.0.2:7444\n"
			"link_ping_interval 2s\n"
			"link_timeout 1m\n"
			"link_breaker_failures 1000\n"
			"link_breaker_window 1h\n"
			"link_breaker_cooloff 1\n"
			"link_max_hops 16\n");
	assert_true(c.link_listen_set);
	assert_string_equal(c.link_host, "10.20.0.1");
	assert_int_equal(c.link_port, 7443);
	assert_string_equal(c.link_listen_file, "t.conf");
	assert_int_equal(c.link_listen_line, 1);
	assert_string_equal(c.link_ca, "/etc/popnode/link/ca.pem");
	assert_string_equal(c.link_cert, "/etc/popnode/link/fra1.pem");
	assert_string_equal(c.link_key, "/etc/popnode/link/fra1.key");
	assert_int_equal(c.n_peers, 3);
	assert_string_equal(c.peers[0].id, "ams1");
	assert_string_equal(c.peers[0].host, "10.20.0.2");
	assert_int_equal(c.peers[0].port, 7443);
	assert_int_equal(c.peers[0].line, 6);
	assert_string_equal(c.peers[0].file, "t.conf");
	assert_string_equal(c.peers[1].id, "lon1");
	assert_string_equal(c.peers[1].host, "fd00:20::3"); /* canonical form */
	assert_int_equal(c.peers[1].port, 7443);
	assert_int_equal(c.peers[1].line, 7);
	/* same host, another port: another address */
	assert_string_equal(c.peers[2].id, "par-2");
	assert_int_equal(c.peers[2].port, 7444);
	assert_int_equal(c.link_ping_interval, 2);
	assert_int_equal(c.link_timeout, 60);
	assert_int_equal(c.link_breaker_failures, 1000);
	assert_int_equal(c.link_breaker_window, 3600);
	assert_int_equal(c.link_breaker_cooloff, 1);
	assert_int_equal(c.link_max_hops, 16);
	assert_true(config_link_enabled(&c));
	assert_ptr_equal(config_peer(&c, "lon1"), &c.peers[1]);
	assert_ptr_equal(config_peer(&c, "ams1"), &c.peers[0]);
	assert_null(config_peer(&c, "lon"));
	assert_null(config_peer(&c, "fra1"));
	assert_null(config_peer(&c, NULL));

	assert_parse_ok("link_listen [::]:7443\n");
	assert_string_equal(c.link_host, "::");
	assert_true(config_link_enabled(&c));
	assert_int_equal(c.n_peers, 0);

	/* 64 peers fit, the 65th does not */
	char buf[CONFIG_MAX_PEERS * 40 + 64];
	size_t n = 0;
	for (int i = 0; i < CONFIG_MAX_PEERS; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "peer p%d 10.0.1.%d:7443\n", i, i + 1);
	assert_parse_ok(buf);
	assert_int_equal(c.n_peers, CONFIG_MAX_PEERS);
	assert_string_equal(c.peers[63].id, "p63");
	snprintf(buf + n, sizeof(buf) - n, "peer more 10.0.2.1:7443\n");
	assert_parse_err(buf, "t.conf:65: peer: more than 64 peers");
}

static void test_anycast_good(void **state)
{
	assert_parse_ok("anycast_address 192.0.2.53/32\n"
			"anycast_address 2001:DB8:0::53/128   # canonical form stored\n"
			"anycast_address 198.51.100.7\n"
			"anycast_address 2001:db8:1::1\n"
			"anycast_address 203.0.113.9/24\n"
			"anycast_interface lo\n"
			"anycast_create_dummy no\n"
			"bird_socket /run/bird/pop1.ctl\n"
			"health_interval 50ms\n"
			"health_rise 5\n"
			"health_fall 1\n"
			"health_hold_down 0\n"
			"health_min_free_disk 512M\n"
			"health_max_loop_delay 2s\n"
			"health_max_replication_lag 5m\n"
			"health_require_peer yes\n"
			"maintenance_file /etc/popnode/maintenance\n"
			"heartbeat_timeout 1500ms\n");
	assert_int_equal(c.n_anycast, 5);
	assert_int_equal(c.anycast[0].family, AF_INET);
	assert_int_equal(c.anycast[0].plen, 32);
	assert_memory_equal(c.anycast[0].addr, "\xc0\x00\x02\x35", 4);
	assert_string_equal(c.anycast[0].text, "192.0.2.53/32");
	assert_int_equal(c.anycast[1].family, AF_INET6);
	assert_int_equal(c.anycast[1].plen, 128);
	assert_string_equal(c.anycast[1].text, "2001:db8::53/128");
	assert_int_equal(c.anycast[1].addr[15], 0x53);
	/* a bare address is a host prefix */
	assert_string_equal(c.anycast[2].text, "198.51.100.7/32");
	assert_string_equal(c.anycast[3].text, "2001:db8:1::1/128");
	/* host bits are kept: the address is added as ADDR/LEN */
	assert_string_equal(c.anycast[4].text, "203.0.113.9/24");
	assert_string_equal(c.anycast_interface, "lo");
	assert_false(c.anycast_create_dummy);
	assert_string_equal(c.bird_socket, "/run/bird/pop1.ctl");
	assert_int_equal(c.health_interval_ms, 50);
	assert_int_equal(c.health_rise, 5);
	assert_int_equal(c.health_fall, 1);
	assert_int_equal(c.health_hold_down_ms, 0);
	assert_true(c.health_min_free_disk == 512ULL * 1024 * 1024);
	assert_int_equal(c.health_max_loop_delay_ms, 2000);
	assert_int_equal(c.health_max_replication_lag_ms, 300000);
	assert_true(c.health_require_peer);
	assert_string_equal(c.maintenance_file, "/etc/popnode/maintenance");
	assert_int_equal(c.heartbeat_timeout_ms, 1500);

	/* the duration-in-ms type: ms, s, m, h, and a bare number of seconds */
	assert_parse_ok("health_interval 1s\nhealth_hold_down 1h\nhealth_max_loop_delay 10ms\n"
			"health_max_replication_lag 0\nheartbeat_timeout 1m\n");
	assert_int_equal(c.health_interval_ms, 1000);
	assert_int_equal(c.health_hold_down_ms, 3600000);
	assert_int_equal(c.health_max_loop_delay_ms, 10);
	assert_int_equal(c.health_max_replication_lag_ms, 0);
	assert_int_equal(c.heartbeat_timeout_ms, 60000);
	assert_parse_ok("health_interval 2\nhealth_hold_down 30\nhealth_require_peer no\n"
			"anycast_create_dummy yes\nanycast_interface eth0.100\n");
	assert_int_equal(c.health_interval_ms, 2000);
	assert_int_equal(c.health_hold_down_ms, 30000);
	assert_false(c.health_require_peer);
	assert_true(c.anycast_create_dummy);
	assert_string_equal(c.anycast_interface, "eth0.100");
	/* 15 characters is the longest interface name */
	assert_parse_ok("anycast_interface abcdefghijklmno\n");
	assert_string_equal(c.anycast_interface, "abcdefghijklmno");

	/* 16 addresses fit, the 17th does not */
	char buf[CONFIG_MAX_ANYCAST * 40 + 64];
	size_t n = 0;
	for (int i = 0; i < CONFIG_MAX_ANYCAST; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "anycast_address 192.0.2.%d/32\n",
				      i + 1);
	assert_parse_ok(buf);
	assert_int_equal(c.n_anycast, CONFIG_MAX_ANYCAST);
	snprintf(buf + n, sizeof(buf) - n, "anycast_address 2001:db8::99/128\n");
	assert_parse_err(buf, "t.conf:17: anycast_address: more than 16 addresses");
}

static void test_maintenance_file(void **state)
{
	char buf[CONFIG_PATH_MAX + 16];

	assert_parse_ok("data_dir /var/lib/popnode\n");
	assert_true(config_maintenance_file(&c, buf, sizeof(buf)));
	assert_string_equal(buf, "/var/lib/popnode/maintenance");
	assert_parse_ok("data_dir /var/lib/popnode\nmaintenance_file /etc/popnode/drain\n");
	assert_true(config_maintenance_file(&c, buf, sizeof(buf)));
	assert_string_equal(buf, "/etc/popnode/drain");
	/* too small a buffer: cut, and said so */
	assert_false(config_maintenance_file(&c, buf, 8));
	assert_string_equal(buf, "/etc/po");
	assert_false(config_maintenance_file(&c, buf, 0));
	config_dev(&c, "/tmp/devnode");
	assert_true(config_maintenance_file(&c, buf, sizeof(buf)));
	assert_string_equal(buf, "/tmp/devnode/maintenance");
}

static void test_syntax(void **state)
{
	/* comments, blank lines, tabs, CRLF, no final newline */
	assert_parse_ok("# comment\n"
			"\n"
			"   \t  \n"
			"node_id\tfra1   # trailing comment\r\n"
			"  data_dir   /var/lib/popnode\r\n"
			"#node_id x\n"
			"max_sessions 5#glued comment");
	assert_string_equal(c.node_id, "fra1");
	assert_string_equal(c.data_dir, "/var/lib/popnode");
	assert_int_equal(c.max_sessions, 5);
	assert_parse_ok("");
	assert_parse_ok("\n\n\n");

	/* line numbers count every line, including blank and comment lines */
	assert_parse_err("# one\n\nnode_id x\n\n# five\nbogus 1\n",
			 "t.conf:6: unknown directive \"bogus\"");
}

/* ---- errors: exact messages ------------------------------------------------------- */

struct bad {
	const char *conf;
	const char *msg;
};

/* The fixtures: one broken config each, and the exact message. */
static const struct bad bad_configs[] = {
	{ "max_sessions abc\n", "t.conf:1: max_sessions: \"abc\" is not a number" },
	{ "node_id a\nmax_sessions 0\n",
	  "t.conf:2: max_sessions: \"0\" is out of range (1..1000000)" },
	{ "max_sessions 1000001\n",
	  "t.conf:1: max_sessions: \"1000001\" is out of range (1..1000000)" },
	{ "max_sessions -1\n", "t.conf:1: max_sessions: \"-1\" is not a number" },
	{ "max_sessions 10K\n", "t.conf:1: max_sessions: \"10K\" is not a number" },
	{ "max_sessions 99999999999999999999999\n",
	  "t.conf:1: max_sessions: \"99999999999999999999999\" is out of range (1..1000000)" },
	{ "max_message_size 5G\n",
	  "t.conf:1: max_message_size: \"5G\" is out of range (1K..4G)" },
	{ "max_message_size 10X\n",
	  "t.conf:1: max_message_size: \"10X\" is not a size (a number with an optional K, "
	  "M, G or T suffix)" },
	{ "max_message_size 10KB\n",
	  "t.conf:1: max_message_size: \"10KB\" is not a size (a number with an optional K, "
	  "M, G or T suffix)" },
	{ "map_size 17179869184T\n",
	  "t.conf:1: map_size: \"17179869184T\" is out of range (1M..64T)" },
	{ "max_line_length 511\n",
	  "t.conf:1: max_line_length: \"511\" is out of range (512..1M)" },
	{ "idle_timeout 2d\n",
	  "t.conf:1: idle_timeout: \"2d\" is not a duration (seconds, or a number with an s, "
	  "m or h suffix)" },
	{ "idle_timeout 10M\n",
	  "t.conf:1: idle_timeout: \"10M\" is not a duration (seconds, or a number with an s, "
	  "m or h suffix)" },
	{ "idle_timeout 25h\n", "t.conf:1: idle_timeout: \"25h\" is out of range (1s..24h)" },
	{ "auth_fail_window 0\n",
	  "t.conf:1: auth_fail_window: \"0\" is out of range (1s..24h)" },
	{ "auth_fail_delay_ms 60001\n",
	  "t.conf:1: auth_fail_delay_ms: \"60001\" is out of range (0..60000)" },
	{ "commit_batch_max 65537\n",
	  "t.conf:1: commit_batch_max: \"65537\" is out of range (1..65536)" },
	{ "frobnicate yes\n", "t.conf:1: unknown directive \"frobnicate\"" },
	{ "Node_id fra1\n", "t.conf:1: unknown directive \"Node_id\"" },
	{ "node_id\n", "t.conf:1: node_id: missing value" },
	{ "node_id fra1 fra2\n", "t.conf:1: node_id: extra value \"fra2\" (one value expected)" },
	{ "node_id fra1\nlog stderr\nnode_id fra2\n",
	  "t.conf:3: node_id: given twice (first at line 1)" },
	{ "node_id Fra1\n",
	  "t.conf:1: node_id: \"Fra1\" must be 1-63 characters of a-z, 0-9 and \"-\"" },
	{ "node_id fra_1\n",
	  "t.conf:1: node_id: \"fra_1\" must be 1-63 characters of a-z, 0-9 and \"-\"" },
	{ "node_id abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01234\n",
	  "t.conf:1: node_id: \"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01"
	  "...\" must be 1-63 characters of a-z, 0-9 and \"-\"" },
	{ "data_dir var/lib/popnode\n",
	  "t.conf:1: data_dir: \"var/lib/popnode\" is not an absolute path" },
	{ "tls_cert cert.pem\n", "t.conf:1: tls_cert: \"cert.pem\" is not an absolute path" },
	{ "tls_key ./key.pem\n", "t.conf:1: tls_key: \"./key.pem\" is not an absolute path" },
	{ "control_socket ctl.sock\n",
	  "t.conf:1: control_socket: \"ctl.sock\" is not an absolute path" },
	{ "log file.log\n", "t.conf:1: log: \"file.log\" is not stderr, syslog or an absolute path" },
	{ "log_level verbose\n",
	  "t.conf:1: log_level: \"verbose\" is not one of error, warn, info, debug" },
	{ "log_level INFO\n", "t.conf:1: log_level: \"INFO\" is not one of error, warn, info, debug" },
	{ "user -x\n", "t.conf:1: user: \"-x\" is not a valid user name" },
	{ "user a/b\n", "t.conf:1: user: \"a/b\" is not a valid user name" },
	{ "user abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01\n",
	  "t.conf:1: user: value is longer than 63 bytes" },
	{ "domain -bad.example\n", "t.conf:1: domain: \"-bad.example\" is not a domain name" },
	{ "domain bad..example\n", "t.conf:1: domain: \"bad..example\" is not a domain name" },
	{ "domain bad.example.\n", "t.conf:1: domain: \"bad.example.\" is not a domain name" },
	{ "domain bad_x.example\n", "t.conf:1: domain: \"bad_x.example\" is not a domain name" },
	{ "domain a.example\ndomain A.example\n", "t.conf:2: domain: \"A.example\" given twice" },
	{ "domain *\ndomain *\n", "t.conf:2: domain: \"*\" given twice" },
	{ "domain\n", "t.conf:1: domain: missing value" },
	{ "domain a.example b.example\n",
	  "t.conf:1: domain: extra value \"b.example\" (one value expected)" },
	/* listen */
	{ "listen\n", "t.conf:1: listen: expected PROTO ADDRESS [options], as in "
		      "\"listen pop3s 0.0.0.0:995\"" },
	{ "listen pop3\n", "t.conf:1: listen: expected PROTO ADDRESS [options], as in "
			   "\"listen pop3s 0.0.0.0:995\"" },
	{ "listen smtp 0.0.0.0:25\n",
	  "t.conf:1: listen: unknown protocol \"smtp\" (lmtp, pop3, pop3s, imap, imaps, http)" },
	{ "listen pop3s 0.0.0.0\n",
	  "t.conf:1: listen: \"0.0.0.0\" has no port (IPv4:port, [IPv6]:port or unix:/path)" },
	{ "listen pop3s 0.0.0.0:0\n",
	  "t.conf:1: listen: port \"0\" is not a number from 1 to 65535" },
	{ "listen pop3s 0.0.0.0:65536\n",
	  "t.conf:1: listen: port \"65536\" is not a number from 1 to 65535" },
	{ "listen pop3s 0.0.0.0:\n",
	  "t.conf:1: listen: port \"\" is not a number from 1 to 65535" },
	{ "listen pop3s 0.0.0.0:pop3s\n",
	  "t.conf:1: listen: port \"pop3s\" is not a number from 1 to 65535" },
	{ "listen pop3s *:995\n",
	  "t.conf:1: listen: \"*\" is not a numeric IPv4 address (use 0.0.0.0 or [::] for every "
	  "address)" },
	{ "listen pop3s mail.example.com:995\n",
	  "t.conf:1: listen: \"mail.example.com\" is not a numeric IPv4 address (use 0.0.0.0 or "
	  "[::] for every address)" },
	{ "listen pop3s 256.1.1.1:995\n",
	  "t.conf:1: listen: \"256.1.1.1\" is not a numeric IPv4 address (use 0.0.0.0 or [::] "
	  "for every address)" },
	{ "listen pop3s ::1:995\n",
	  "t.conf:1: listen: \"::1:995\": an IPv6 address goes in brackets, as in [::1]:110" },
	{ "listen pop3s [::1]995\n", "t.conf:1: listen: \"[::1]995\" is not [IPv6]:port" },
	{ "listen pop3s [::1\n", "t.conf:1: listen: \"[::1\" is not [IPv6]:port" },
	{ "listen pop3s [1.2.3.4]:995\n",
	  "t.conf:1: listen: \"1.2.3.4\" is not a numeric IPv6 address (use 0.0.0.0 or [::] for "
	  "every address)" },
	{ "listen pop3 unix:/run/pop3.sock\n",
	  "t.conf:1: listen: unix sockets are only for lmtp and http, not pop3" },
	{ "listen lmtp unix:run/lmtp.sock\n",
	  "t.conf:1: listen: \"run/lmtp.sock\" is not an absolute path" },
	{ "listen lmtp unix:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
	  "t.conf:1: listen: unix socket path is longer than 107 bytes" },
	{ "listen pop3s 0.0.0.0:995 fast\n",
	  "t.conf:1: listen: unknown option \"fast\" (plaintext-auth, no-starttls, plaintext)" },
	{ "listen pop3 0.0.0.0:110 plaintext-auth plaintext-auth\n",
	  "t.conf:1: listen: option \"plaintext-auth\" given twice" },
	{ "listen pop3s 0.0.0.0:995 plaintext-auth\n",
	  "t.conf:1: listen: option \"plaintext-auth\" is only for pop3 and imap listeners (this "
	  "one is TLS from the first byte)" },
	{ "listen lmtp 127.0.0.1:24 no-starttls\n",
	  "t.conf:1: listen: option \"no-starttls\" is only for pop3 and imap listeners" },
	{ "listen imap 0.0.0.0:143 plaintext\n",
	  "t.conf:1: listen: option \"plaintext\" is for lmtp and http; imap listeners take "
	  "\"plaintext-auth\" (and \"no-starttls\")" },
	{ "listen imaps 0.0.0.0:993 plaintext\n",
	  "t.conf:1: listen: option \"plaintext\" makes no sense on imaps, which is TLS from the "
	  "first byte" },
	{ "# x\nlisten pop3 0.0.0.0:110 no-starttls\n",
	  "t.conf:2: listen: no-starttls leaves this pop3 listener without TLS, so passwords would "
	  "cross the network in the clear; add \"plaintext-auth\" too if that is really wanted" },
	{ "listen lmtp 10.0.0.5:24\n",
	  "t.conf:1: listen: lmtp on the non-loopback address 10.0.0.5 is plaintext; nothing "
	  "listens in plaintext without an explicit setting: add the option \"plaintext\"" },
	{ "listen http [::]:9110\n",
	  "t.conf:1: listen: http on the non-loopback address :: is plaintext; nothing listens in "
	  "plaintext without an explicit setting: add the option \"plaintext\"" },
	{ "listen http 0.0.0.0:9110\n",
	  "t.conf:1: listen: http on the non-loopback address 0.0.0.0 is plaintext; nothing "
	  "listens in plaintext without an explicit setting: add the option \"plaintext\"" },
	/* link_listen, peer */
	{ "link_listen 10.0.0.1\n",
	  "t.conf:1: link_listen: \"10.0.0.1\" has no port (IPv4:port or [IPv6]:port)" },
	{ "link_listen unix:/run/link.sock\n",
	  "t.conf:1: link_listen: the link is TCP, not a unix socket (IPv4:port or [IPv6]:port)" },
	{ "link_listen pop1.example:7443\n",
	  "t.conf:1: link_listen: \"pop1.example\" is not a numeric IPv4 address (use 0.0.0.0 or "
	  "[::] for every address)" },
	{ "link_listen 10.0.0.1:0\n",
	  "t.conf:1: link_listen: port \"0\" is not a number from 1 to 65535" },
	{ "link_listen fd00::1:7443\n",
	  "t.conf:1: link_listen: \"fd00::1:7443\": an IPv6 address goes in brackets, as in "
	  "[::1]:110" },
	{ "link_listen [fd00::1]\n", "t.conf:1: link_listen: \"[fd00::1]\" is not [IPv6]:port" },
	{ "link_listen 10.0.0.1:7443\nlink_listen 10.0.0.1:7444\n",
	  "t.conf:2: link_listen: given twice (first at line 1)" },
	{ "link_ca ca.pem\n", "t.conf:1: link_ca: \"ca.pem\" is not an absolute path" },
	{ "link_cert etc/fra1.pem\n",
	  "t.conf:1: link_cert: \"etc/fra1.pem\" is not an absolute path" },
	{ "link_key ~/fra1.key\n", "t.conf:1: link_key: \"~/fra1.key\" is not an absolute path" },
	{ "peer\n", "t.conf:1: peer: expected ID HOST:PORT, as in \"peer ams1 10.0.0.2:7443\"" },
	{ "peer ams1\n",
	  "t.conf:1: peer: expected ID HOST:PORT, as in \"peer ams1 10.0.0.2:7443\"" },
	{ "peer ams1 10.0.0.2:7443 fast\n",
	  "t.conf:1: peer: expected ID HOST:PORT, as in \"peer ams1 10.0.0.2:7443\"" },
	{ "peer AMS1 10.0.0.2:7443\n",
	  "t.conf:1: peer: id \"AMS1\" must be 1-63 characters of a-z, 0-9 and \"-\" (the peer's "
	  "node_id)" },
	{ "peer ams1 ams1.example:7443\n",
	  "t.conf:1: peer: \"ams1.example\" is not a numeric IPv4 address (host names are not "
	  "resolved)" },
	{ "peer ams1 [ams1.example]:7443\n",
	  "t.conf:1: peer: \"ams1.example\" is not a numeric IPv6 address (host names are not "
	  "resolved)" },
	{ "peer ams1 10.0.0.2\n",
	  "t.conf:1: peer: \"10.0.0.2\" has no port (IPv4:port or [IPv6]:port)" },
	{ "peer ams1 10.0.0.2:99999\n",
	  "t.conf:1: peer: port \"99999\" is not a number from 1 to 65535" },
	{ "peer ams1 0.0.0.0:7443\n",
	  "t.conf:1: peer ams1: 0.0.0.0:7443 is not an address to connect to (0.0.0.0 and [::] are "
	  "for listening)" },
	{ "peer ams1 [::]:7443\n",
	  "t.conf:1: peer ams1: [::]:7443 is not an address to connect to (0.0.0.0 and [::] are "
	  "for listening)" },
	{ "peer ams1 10.0.0.2:7443\n# x\npeer ams1 10.0.0.3:7443\n",
	  "t.conf:3: peer: \"ams1\" given twice (first at t.conf:1)" },
	{ "peer ams1 [fd00::2]:7443\npeer lon1 [fd00:0::2]:7443\n",
	  "t.conf:2: peer lon1: address [fd00::2]:7443 already used by peer ams1 at t.conf:1" },
	{ "link_ping_interval 0\n",
	  "t.conf:1: link_ping_interval: \"0\" is out of range (1s..1m)" },
	{ "link_ping_interval 61\n",
	  "t.conf:1: link_ping_interval: \"61\" is out of range (1s..1m)" },
	{ "link_timeout 301s\n", "t.conf:1: link_timeout: \"301s\" is out of range (1s..5m)" },
	{ "link_timeout 500ms\n",
	  "t.conf:1: link_timeout: \"500ms\" is not a duration (seconds, or a number with an s, m "
	  "or h suffix)" },
	{ "link_breaker_failures 0\n",
	  "t.conf:1: link_breaker_failures: \"0\" is out of range (1..1000)" },
	{ "link_breaker_failures 1001\n",
	  "t.conf:1: link_breaker_failures: \"1001\" is out of range (1..1000)" },
	{ "link_breaker_window 0\n",
	  "t.conf:1: link_breaker_window: \"0\" is out of range (1s..1h)" },
	{ "link_breaker_cooloff 2h\n",
	  "t.conf:1: link_breaker_cooloff: \"2h\" is out of range (1s..1h)" },
	{ "link_max_hops 0\n", "t.conf:1: link_max_hops: \"0\" is out of range (1..16)" },
	{ "link_max_hops 17\n", "t.conf:1: link_max_hops: \"17\" is out of range (1..16)" },
	/* anycast and health */
	{ "anycast_address\n", "t.conf:1: anycast_address: missing value" },
	{ "anycast_address 192.0.2.53/32 2001:db8::53/128\n",
	  "t.conf:1: anycast_address: extra value \"2001:db8::53/128\" (one value expected)" },
	{ "anycast_address 192.0.2.53/33\n",
	  "t.conf:1: anycast_address: \"192.0.2.53/33\": the prefix length must be a number from 1 "
	  "to 32" },
	{ "anycast_address 192.0.2.53/0\n",
	  "t.conf:1: anycast_address: \"192.0.2.53/0\": the prefix length must be a number from 1 "
	  "to 32" },
	{ "anycast_address 192.0.2.53/032\n",
	  "t.conf:1: anycast_address: \"192.0.2.53/032\": the prefix length must be a number from 1 "
	  "to 32" },
	{ "anycast_address 192.0.2.53/\n",
	  "t.conf:1: anycast_address: \"192.0.2.53/\": the prefix length must be a number from 1 "
	  "to 32" },
	{ "anycast_address 2001:db8::53/129\n",
	  "t.conf:1: anycast_address: \"2001:db8::53/129\": the prefix length must be a number from "
	  "1 to 128" },
	{ "anycast_address 2001:db8::53/+64\n",
	  "t.conf:1: anycast_address: \"2001:db8::53/+64\": the prefix length must be a number from "
	  "1 to 128" },
	{ "anycast_address mail.isp.example/32\n",
	  "t.conf:1: anycast_address: \"mail.isp.example/32\": not a numeric IPv4 address (dotted "
	  "quad, as in 192.0.2.53/32)" },
	{ "anycast_address 192.0.2/32\n",
	  "t.conf:1: anycast_address: \"192.0.2/32\": not a numeric IPv4 address (dotted quad, as "
	  "in 192.0.2.53/32)" },
	{ "anycast_address [2001:db8::53]/128\n",
	  "t.conf:1: anycast_address: \"[2001:db8::53]/128\": not a numeric IPv6 address" },
	{ "anycast_address 2001:db8:::53/128\n",
	  "t.conf:1: anycast_address: \"2001:db8:::53/128\": not a numeric IPv6 address" },
	{ "anycast_address /32\n",
	  "t.conf:1: anycast_address: \"/32\": not an IPv4 or IPv6 address" },
	{ "anycast_address 0.0.0.0/32\n",
	  "t.conf:1: anycast_address: \"0.0.0.0/32\": 0.0.0.0/8 is not a usable address" },
	{ "anycast_address 127.0.0.53/32\n",
	  "t.conf:1: anycast_address: \"127.0.0.53/32\": a loopback address cannot be a service "
	  "address" },
	{ "anycast_address 224.0.0.53/32\n",
	  "t.conf:1: anycast_address: \"224.0.0.53/32\": a multicast address cannot be a service "
	  "address" },
	{ "anycast_address 255.255.255.255\n",
	  "t.conf:1: anycast_address: \"255.255.255.255\": the broadcast address cannot be a "
	  "service address" },
	{ "anycast_address 169.254.1.1/32\n",
	  "t.conf:1: anycast_address: \"169.254.1.1/32\": a link-local address (169.254.0.0/16) "
	  "cannot be a service address" },
	{ "anycast_address ::/128\n", "t.conf:1: anycast_address: \"::/128\": :: is not a usable "
				      "address" },
	{ "anycast_address ::1/128\n",
	  "t.conf:1: anycast_address: \"::1/128\": a loopback address cannot be a service address" },
	{ "anycast_address ff02::53/128\n",
	  "t.conf:1: anycast_address: \"ff02::53/128\": a multicast address cannot be a service "
	  "address" },
	{ "anycast_address fe80::53/128\n",
	  "t.conf:1: anycast_address: \"fe80::53/128\": a link-local address (fe80::/10) cannot be "
	  "a service address" },
	{ "anycast_address ::ffff:192.0.2.53/128\n",
	  "t.conf:1: anycast_address: \"::ffff:192.0.2.53/128\": an IPv4-mapped IPv6 address cannot "
	  "be a service address; write the IPv4 address" },
	{ "anycast_address 2001:0db8:0000:0000:0000:0000:0000:0053:0053/128\n",
	  "t.conf:1: anycast_address: \"2001:0db8:0000:0000:0000:0000:0000:0053:0053/128\": not a "
	  "numeric IPv6 address" },
	/* longer than any prefix can be (63 bytes) */
	{ "anycast_address 2001:0db8:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0053/128\n",
	  "t.conf:1: anycast_address: \"2001:0db8:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:"
	  "0053...\" is not an IPv4 or IPv6 address" },
	{ "anycast_address 192.0.2.53/32\n# x\nanycast_address 192.0.2.53\n",
	  "t.conf:3: anycast_address: 192.0.2.53/32 given twice" },
	{ "anycast_address 2001:db8::53/128\nanycast_address 2001:DB8:0:0::53/128\n",
	  "t.conf:2: anycast_address: 2001:db8::53/128 given twice" },
	{ "anycast_interface any0/1\n",
	  "t.conf:1: anycast_interface: \"any0/1\" is not an interface name (1-15 characters, no "
	  "\"/\" or \":\")" },
	{ "anycast_interface eth0:1\n",
	  "t.conf:1: anycast_interface: \"eth0:1\" is not an interface name (1-15 characters, no "
	  "\"/\" or \":\")" },
	{ "anycast_interface abcdefghijklmnop\n",
	  "t.conf:1: anycast_interface: \"abcdefghijklmnop\" is not an interface name (1-15 "
	  "characters, no \"/\" or \":\")" },
	{ "anycast_interface ..\n",
	  "t.conf:1: anycast_interface: \"..\" is not an interface name (1-15 characters, no \"/\" "
	  "or \":\")" },
	{ "anycast_interface \xc3\xa9th0\n",
	  "t.conf:1: anycast_interface: \"??th0\" is not an interface name (1-15 characters, no "
	  "\"/\" or \":\")" },
	{ "anycast_create_dummy true\n",
	  "t.conf:1: anycast_create_dummy: \"true\" is not yes or no" },
	{ "health_require_peer YES\n", "t.conf:1: health_require_peer: \"YES\" is not yes or no" },
	{ "bird_socket bird.ctl\n", "t.conf:1: bird_socket: \"bird.ctl\" is not an absolute path" },
	{ "maintenance_file maintenance\n",
	  "t.conf:1: maintenance_file: \"maintenance\" is not an absolute path" },
	{ "health_interval 5ms\n",
	  "t.conf:1: health_interval: \"5ms\" is out of range (10ms..1m)" },
	{ "health_interval 61s\n",
	  "t.conf:1: health_interval: \"61s\" is out of range (10ms..1m)" },
	{ "health_interval 200MS\n",
	  "t.conf:1: health_interval: \"200MS\" is not a duration (seconds, or a number with an ms, "
	  "s, m or h suffix)" },
	{ "health_interval 200us\n",
	  "t.conf:1: health_interval: \"200us\" is not a duration (seconds, or a number with an ms, "
	  "s, m or h suffix)" },
	{ "health_interval ms\n",
	  "t.conf:1: health_interval: \"ms\" is not a duration (seconds, or a number with an ms, s, "
	  "m or h suffix)" },
	{ "health_interval 0.5s\n",
	  "t.conf:1: health_interval: \"0.5s\" is not a duration (seconds, or a number with an ms, "
	  "s, m or h suffix)" },
	{ "health_hold_down 99999999999999999999h\n",
	  "t.conf:1: health_hold_down: \"99999999999999999999h\" is out of range (0s..1h)" },
	{ "health_hold_down 18446744073709551h\n",
	  "t.conf:1: health_hold_down: \"18446744073709551h\" is out of range (0s..1h)" },
	{ "health_hold_down 3600001ms\n",
	  "t.conf:1: health_hold_down: \"3600001ms\" is out of range (0s..1h)" },
	{ "health_rise 0\n", "t.conf:1: health_rise: \"0\" is out of range (1..1000)" },
	{ "health_fall 1001\n", "t.conf:1: health_fall: \"1001\" is out of range (1..1000)" },
	{ "health_fall 2s\n", "t.conf:1: health_fall: \"2s\" is not a number" },
	{ "health_min_free_disk 1GB\n",
	  "t.conf:1: health_min_free_disk: \"1GB\" is not a size (a number with an optional K, M, G "
	  "or T suffix)" },
	{ "health_max_loop_delay 9ms\n",
	  "t.conf:1: health_max_loop_delay: \"9ms\" is out of range (10ms..1m)" },
	{ "health_max_replication_lag 25h\n",
	  "t.conf:1: health_max_replication_lag: \"25h\" is out of range (0s..24h)" },
	{ "heartbeat_timeout 99ms\n",
	  "t.conf:1: heartbeat_timeout: \"99ms\" is out of range (100ms..1m)" },
	{ "heartbeat_timeout 1500us\n",
	  "t.conf:1: heartbeat_timeout: \"1500us\" is not a duration (seconds, or a number with an "
	  "ms, s, m or h suffix)" },
	/* the older durations do not take ms */
	{ "idle_timeout 100ms\n",
	  "t.conf:1: idle_timeout: \"100ms\" is not a duration (seconds, or a number with an s, m "
	  "or h suffix)" },
	/* the line itself */
	{ "node_id a\nnode_\001id b\n", "t.conf:2: control character 0x01 in line" },
	{ "a b c d e f g h i\n", "t.conf:1: too many values on one line (at most 8 words)" },
	{ "log_level debug\nlog_level info\n", "t.conf:2: log_level: given twice (first at line 1)" },
	{ "data_dir /\xff\xfe\"quoted\" x\n",
	  "t.conf:1: data_dir: extra value \"x\" (one value expected)" },
	{ "frob\"\x1b[31m\n", "t.conf:1: control character 0x1b in line" },
	{ "fr\xc3\xa9 1\n", "t.conf:1: unknown directive \"fr??\"" },
	{ "x\"y 1\n", "t.conf:1: unknown directive \"x?y\"" },
};

static void test_bad_configs(void **state)
{
	for (size_t i = 0; i < sizeof(bad_configs) / sizeof(bad_configs[0]); i++) {
		int rc = parse(bad_configs[i].conf);

		if (rc != -1 || strcmp(err, bad_configs[i].msg) != 0)
			print_error("fixture %zu: rc=%d\n  got:  %s\n  want: %s\n", i, rc, err,
				    bad_configs[i].msg);
		assert_int_equal(rc, -1);
		assert_string_equal(err, bad_configs[i].msg);
	}
}

/* Every single-valued directive: missing value, extra value, given twice. */
static void test_every_directive_arity(void **state)
{
	static const struct {
		const char *name, *good;
	} d[] = {
		{ "node_id", "fra1" }, { "data_dir", "/d" }, { "log", "syslog" },
		{ "log_level", "warn" }, { "tls_cert", "/c" }, { "tls_key", "/k" },
		{ "control_socket", "/s" }, { "user", "popnode" }, { "max_line_length", "1K" },
		{ "max_message_size", "1M" }, { "max_recipients", "5" }, { "max_sessions", "5" },
		{ "max_sessions_per_ip", "5" }, { "auth_fail_delay_after", "5" },
		{ "auth_fail_delay_ms", "5" }, { "auth_fail_max", "5" }, { "auth_fail_window", "5" },
		{ "idle_timeout", "5" }, { "pop3_max_bad_commands", "5" }, { "default_quota", "5" },
		{ "map_size", "5M" }, { "commit_batch_max", "5" },
		{ "link_listen", "10.0.0.1:7443" }, { "link_ca", "/ca.pem" },
		{ "link_cert", "/fra1.pem" }, { "link_key", "/fra1.key" },
		{ "link_ping_interval", "2s" }, { "link_timeout", "5" },
		{ "link_breaker_failures", "3" }, { "link_breaker_window", "1m" },
		{ "link_breaker_cooloff", "20s" }, { "link_max_hops", "3" },
		{ "anycast_interface", "lo" }, { "anycast_create_dummy", "no" },
		{ "bird_socket", "/b.ctl" }, { "health_interval", "100ms" }, { "health_rise", "2" },
		{ "health_fall", "3" }, { "health_hold_down", "5s" },
		{ "health_min_free_disk", "2G" }, { "health_max_loop_delay", "1s" },
		{ "health_max_replication_lag", "2m" }, { "health_require_peer", "yes" },
		{ "maintenance_file", "/m" }, { "heartbeat_timeout", "2s" },
		{ "replication_ack", "local" }, { "replication_ack_timeout", "3s" },
		{ "replication_degraded", "tempfail" }, { "replication_startup_wait", "0" },
	};
	char conf[256], want[256];

	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
		snprintf(conf, sizeof(conf), "# %zu\n%s %s\n", i, d[i].name, d[i].good);
		assert_parse_ok(conf);

		snprintf(conf, sizeof(conf), "# %zu\n%s\n", i, d[i].name);
		snprintf(want, sizeof(want), "t.conf:2: %s: missing value", d[i].name);
		assert_parse_err(conf, want);

		snprintf(conf, sizeof(conf), "%s %s   extra # x\n", d[i].name, d[i].good);
		snprintf(want, sizeof(want), "t.conf:1: %s: extra value \"extra\" (one value expected)",
			 d[i].name);
		assert_parse_err(conf, want);

		snprintf(conf, sizeof(conf), "%s %s\n\n%s %s\n", d[i].name, d[i].good, d[i].name,
			 d[i].good);
		snprintf(want, sizeof(want), "t.conf:3: %s: given twice (first at line 1)", d[i].name);
		assert_parse_err(conf, want);
	}
}

static void test_value_too_long(void **state)
{
	char conf[1024], path[300];

	memset(path, 'a', sizeof(path));
	path[0] = '/';
	path[256] = '\0'; /* 256 bytes: one more than the field holds */
	snprintf(conf, sizeof(conf), "data_dir %s\n", path);
	assert_parse_err(conf, "t.conf:1: data_dir: value is longer than 255 bytes");
	snprintf(conf, sizeof(conf), "log %s\n", path);
	assert_parse_err(conf, "t.conf:1: log: value is longer than 255 bytes");
	path[255] = '\0'; /* exactly 255 fits */
	snprintf(conf, sizeof(conf), "tls_cert %s\n", path);
	assert_parse_ok(conf);
	assert_int_equal(strlen(c.tls_cert), 255);
}

static void test_long_line_and_nul(void **state)
{
	char *buf = malloc(5000);

	assert_non_null(buf);
	memset(buf, ' ', 5000);
	memcpy(buf, "# ", 2);
	buf[4097] = '\n'; /* line 1 is 4097 bytes */
	config_defaults(&c);
	assert_int_equal(config_parse_buf(&c, "t.conf", buf, 4098, err, sizeof(err)), -1);
	assert_string_equal(err, "t.conf:1: line is longer than 4096 bytes");
	buf[4096] = '\n'; /* 4096 bytes is fine, and so is the blank line after it */
	assert_int_equal(config_parse_buf(&c, "t.conf", buf, 4098, err, sizeof(err)), 0);
	free(buf);

	static const char nul[] = "node_id a\nnode_id\0b\n";
	config_defaults(&c);
	assert_int_equal(config_parse_buf(&c, "t.conf", nul, sizeof(nul) - 1, err, sizeof(err)), -1);
	assert_string_equal(err, "t.conf:2: NUL byte in line");
}

static void test_failed_parse_changes_nothing(void **state)
{
	static struct config before;

	config_defaults(&c);
	memcpy(&before, &c, sizeof(c));
	assert_int_equal(config_parse_buf(&c, "t.conf",
					  "node_id fra1\nlisten pop3s 0.0.0.0:995\nmax_sessions x\n",
					  56, err, sizeof(err)), -1);
	assert_memory_equal(&c, &before, sizeof(c));
	/* a second parse adds to what the first set, and still sees duplicates
	 * only within one buffer */
	assert_int_equal(config_parse_buf(&c, "a.conf", "node_id one\n", 12, err, sizeof(err)), 0);
	assert_int_equal(config_parse_buf(&c, "b.conf", "data_dir /x\n", 12, err, sizeof(err)), 0);
	assert_string_equal(c.node_id, "one");
	assert_string_equal(c.data_dir, "/x");
}

static void test_small_error_buffer(void **state)
{
	char small[8];

	config_defaults(&c);
	assert_int_equal(config_parse_buf(&c, "t.conf", "bogus\n", 6, small, sizeof(small)), -1);
	assert_string_equal(small, "t.conf:");
	assert_int_equal(config_parse_buf(&c, "t.conf", "bogus\n", 6, NULL, 0), -1);
}

/* ---- files ---------------------------------------------------------------------- */

static void test_parse_file(void **state)
{
	char path[] = "/tmp/test_config_XXXXXX";
	int fd = mkstemp(path);
	const char *text = "node_id fra1\n\nmax_sessions many\n";

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	config_defaults(&c);
	assert_int_equal(config_parse_file(&c, path, err, sizeof(err)), -1);
	char want[256];
	snprintf(want, sizeof(want), "%s:3: max_sessions: \"many\" is not a number", path);
	assert_string_equal(err, want);
	unlink(path);

	assert_int_equal(config_parse_file(&c, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	assert_string_equal(err, want);

	assert_int_equal(config_parse_file(&c, "/tmp", err, sizeof(err)), -1);
	assert_string_equal(err, "/tmp: cannot read: Is a directory");
}

static void test_example_config(void **state)
{
	config_defaults(&c);
	int rc = config_parse_file(&c, "deploy/examples/popnode.conf", err, sizeof(err));
	if (rc != 0)
		print_error("%s\n", err);
	assert_int_equal(rc, 0);
	rc = config_check(&c, err, sizeof(err));
	if (rc != 0)
		print_error("%s\n", err);
	assert_int_equal(rc, 0);
	assert_string_equal(c.node_id, "fra1");
	assert_string_equal(c.run_user, "popnode");
	assert_true(c.n_listens >= 5);
	assert_false(c.dev_mode);
	for (size_t i = 0; i < c.n_listens; i++) {
		assert_string_equal(c.listens[i].file, "deploy/examples/popnode.conf");
		assert_true(c.listens[i].line > 0);
		assert_false(c.listens[i].plaintext_auth);
	}
	/* a POP of a cluster: the link is configured */
	assert_true(config_link_enabled(&c));
	assert_true(c.link_listen_set);
	assert_true(c.n_peers >= 2);
	assert_string_not_equal(c.link_cert, "");
	/* and it announces the service addresses */
	assert_int_equal(c.n_anycast, 2);
	assert_string_equal(c.anycast[0].text, "192.0.2.53/32");
	assert_string_equal(c.anycast[1].text, "2001:db8::53/128");
}

/* ---- dev mode --------------------------------------------------------------------- */

static void test_dev(void **state)
{
	config_dev(&c, "/home/me/popnode/dev/");
	assert_int_equal(config_check(&c, err, sizeof(err)), 0);
	assert_true(c.dev_mode);
	assert_string_equal(c.node_id, "dev");
	assert_string_equal(c.data_dir, "/home/me/popnode/dev");
	assert_string_equal(c.tls_cert, "/home/me/popnode/dev/cert.pem");
	assert_string_equal(c.tls_key, "/home/me/popnode/dev/key.pem");
	assert_string_equal(c.control_socket, "/home/me/popnode/dev/control.sock");
	assert_string_equal(c.log_target, "stderr");
	assert_true(c.any_domain);
	assert_true(config_domain_is_local(&c, "whatever.example", 16));
	assert_true(c.map_size == 1ULL << 30);
	assert_int_equal(c.max_sessions, 10000); /* the rest are the defaults */

	static const struct {
		enum listen_proto p;
		uint16_t port;
		enum listen_tls tls;
		bool auth;
	} want[] = {
		{ PROTO_IMAP, 10143, LTLS_STARTTLS, true }, { PROTO_IMAPS, 10993, LTLS_IMPLICIT, false },
		{ PROTO_POP3, 10110, LTLS_STARTTLS, true }, { PROTO_POP3S, 10995, LTLS_IMPLICIT, false },
		{ PROTO_LMTP, 10024, LTLS_NONE, false },    { PROTO_HTTP, 10080, LTLS_NONE, false },
	};
	assert_int_equal(c.n_listens, 7);
	for (size_t i = 0; i < 6; i++) {
		const struct listen_conf *l = &c.listens[i];

		assert_int_equal(l->proto, want[i].p);
		assert_false(l->is_unix);
		assert_string_equal(l->host, "127.0.0.1");
		assert_int_equal(l->port, want[i].port);
		assert_int_equal(l->tls, want[i].tls);
		assert_int_equal(l->plaintext_auth, want[i].auth);
		assert_string_equal(l->file, "(dev)");
	}
	assert_int_equal(c.listens[6].proto, PROTO_LMTP);
	assert_true(c.listens[6].is_unix);
	assert_string_equal(c.listens[6].path, "/home/me/popnode/dev/lmtp.sock");
	assert_string_equal(c.listens[6].file, "(dev)");
	/* dev mode runs alone */
	assert_false(config_link_enabled(&c));
	assert_false(c.link_listen_set);
	assert_int_equal(c.n_peers, 0);
	assert_string_equal(c.link_cert, "");
	/* nor anycast: a dev node announces nothing */
	assert_int_equal(c.n_anycast, 0);

	/* a dir too long for a unix socket path is refused by the check */
	char dir[200];
	memset(dir, 'd', sizeof(dir));
	dir[0] = '/';
	dir[sizeof(dir) - 1] = '\0';
	config_dev(&c, dir);
	assert_int_equal(config_check(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unix socket path"));
	assert_true(strncmp(err, "(dev): listen lmtp unix:/ddd", 28) == 0);
}

/* ---- config_check --------------------------------------------------------------- */

static void test_check_ok(void **state)
{
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\n"
				       "listen pop3s [::]:995\n"
				       "listen pop3 0.0.0.0:110\n"
				       "listen lmtp 127.0.0.1:24\n"
				       "listen lmtp unix:/run/popnode/lmtp.sock\n"
				       "listen http 127.0.0.1:9110\n"
				       "listen http 127.0.0.1:9111\n"),
			 0);
	/* no TLS listener needs no certificate */
	assert_parse_ok("node_id a\ndata_dir /d\ndomain *\nlisten lmtp 127.0.0.1:24\n");
	assert_int_equal(config_check(&c, err, sizeof(err)), 0);
	assert_parse_ok("node_id a\ndata_dir /d\n"
			"listen pop3 127.0.0.1:110 no-starttls plaintext-auth\n");
	assert_int_equal(config_check(&c, err, sizeof(err)), 0);
}

static void check_fails(const char *conf, const char *msg)
{
	int rc = parse(conf);

	if (rc != 0)
		print_error("parse: %s\n", err);
	assert_int_equal(rc, 0);
	assert_int_equal(config_check(&c, err, sizeof(err)), -1);
	assert_string_equal(err, msg);
}

static void test_check_errors(void **state)
{
	check_fails("data_dir /d\nlisten lmtp 127.0.0.1:24\n",
		     "node_id is not set (this POP's name, e.g. \"node_id fra1\")");
	check_fails("node_id a\nlisten lmtp 127.0.0.1:24\n", "data_dir is not set");
	check_fails("node_id a\ndata_dir /d\n",
		     "no listen directive: at least one listener is needed");
	check_fails("node_id a\ndata_dir /d\n\nlisten pop3s 0.0.0.0:995\n",
		     "t.conf:4: listen pop3s 0.0.0.0:995 uses TLS, which needs tls_cert and tls_key");
	check_fails("node_id a\ndata_dir /d\nlisten imap [::1]:143\n",
		     "t.conf:3: listen imap [::1]:143 uses TLS, which needs tls_cert and tls_key");
	check_fails("node_id a\ndata_dir /d\ntls_cert /c\nlisten lmtp 127.0.0.1:24\ndomain *\n",
		     "tls_cert is set but tls_key is not: give both or neither");
	check_fails("node_id a\ndata_dir /d\ntls_key /k\nlisten lmtp 127.0.0.1:24\ndomain *\n",
		     "tls_key is set but tls_cert is not: give both or neither");
	check_fails("node_id a\ndata_dir /d\nlisten lmtp 127.0.0.1:24\n",
		     "t.conf:3: listen lmtp: no domain directive, so every recipient would be "
		     "refused; add \"domain example.com\" (or \"domain *\")");

	char want[512];
	int base_lines = 5;
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\nlisten imaps 0.0.0.0:995\n"), -1);
	snprintf(want, sizeof(want), "t.conf:%d: listen imaps 0.0.0.0:995: address already used by "
		 "listen pop3s 0.0.0.0:995 at t.conf:%d", base_lines + 2, base_lines + 1);
	assert_string_equal(err, want);
	/* a wildcard and a specific address on the same port collide too */
	assert_int_equal(parse_checked("listen pop3s 127.0.0.1:995\n\nlisten pop3s 0.0.0.0:995\n"),
			 -1);
	snprintf(want, sizeof(want), "t.conf:%d: listen pop3s 0.0.0.0:995: address already used by "
		 "listen pop3s 127.0.0.1:995 at t.conf:%d", base_lines + 3, base_lines + 1);
	assert_string_equal(err, want);
	assert_int_equal(parse_checked("listen pop3s [::]:995\nlisten pop3s [0::1]:995\n"), -1);
	snprintf(want, sizeof(want), "t.conf:%d: listen pop3s [::1]:995: address already used by "
		 "listen pop3s [::]:995 at t.conf:%d", base_lines + 2, base_lines + 1);
	assert_string_equal(err, want);
	assert_int_equal(parse_checked("listen lmtp unix:/run/l.sock\nlisten http unix:/run/l.sock\n"),
			 -1);
	snprintf(want, sizeof(want), "t.conf:%d: listen http unix:/run/l.sock: address already used "
		 "by listen lmtp unix:/run/l.sock at t.conf:%d", base_lines + 2, base_lines + 1);
	assert_string_equal(err, want);
	/* IPv4 and IPv6 wildcards on one port are separate sockets (V6ONLY) */
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\nlisten pop3s [::]:995\n"), 0);
	/* different ports, same host: fine */
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\nlisten pop3 0.0.0.0:110\n"), 0);

	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\nauth_fail_delay_after 11\n"), -1);
	assert_string_equal(err, "auth_fail_delay_after (11) must not be greater than auth_fail_max "
				 "(10), which must be at least 1");
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\nauth_fail_delay_after 10\n"), 0);
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\nmax_sessions 10\n"), -1);
	assert_string_equal(err, "max_sessions_per_ip (50) must not be greater than max_sessions (10)");
	/* a message larger than the map is allowed (tests fill the map on purpose) */
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\nmax_message_size 8M\n"
				       "map_size 1M\n"), 0);
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\ncontrol_socket /aaaaaaaaaaaaaaaaa"
				       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n"), -1);
	assert_string_equal(err, "control_socket: path is longer than 107 bytes, too long for a "
				 "unix socket");

	/* built by hand, not parsed: a plain pop3 listener without plaintext-auth */
	assert_int_equal(parse_checked("listen pop3 127.0.0.1:110\n"), 0);
	c.listens[0].tls = LTLS_NONE;
	assert_int_equal(config_check(&c, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "t.conf:%d: listen pop3 127.0.0.1:110 has neither TLS nor "
		 "plaintext-auth: no one could log in", base_lines + 1);
	assert_string_equal(err, want);
	c.node_id[0] = 'X';
	assert_int_equal(config_check(&c, err, sizeof(err)), -1);
	assert_string_equal(err, "node_id must be 1-63 characters of a-z, 0-9 and \"-\"");
}

/* base_conf + link files + node_id t1: a peer line appended must pass. */
static const char *link_files =
	"link_ca /etc/popnode/link/ca.pem\n"
	"link_cert /etc/popnode/link/t1.pem\n"
	"link_key /etc/popnode/link/t1.key\n";

static void test_check_link(void **state)
{
	char conf[1024];

	/* base_conf is 5 lines, link_files 3 */
	snprintf(conf, sizeof(conf), "%slisten pop3s 0.0.0.0:995\nlink_listen 10.0.0.1:7443\n"
		 "peer t2 10.0.0.2:7443\npeer t3 10.0.0.3:7443\n", link_files);
	assert_int_equal(parse_checked(conf), 0);
	/* link_listen alone (a node others dial, dialling none yet) is fine */
	snprintf(conf, sizeof(conf), "%slisten pop3s 0.0.0.0:995\nlink_listen 10.0.0.1:7443\n",
		 link_files);
	assert_int_equal(parse_checked(conf), 0);
	/* link files without any link are simply unused */
	snprintf(conf, sizeof(conf), "%slisten pop3s 0.0.0.0:995\n", link_files);
	assert_int_equal(parse_checked(conf), 0);
	/* loopback, another port than the listeners (the lab) */
	snprintf(conf, sizeof(conf), "%slisten pop3s 127.0.0.1:20195\nlink_listen 127.0.0.1:20144\n"
		 "peer t2 127.0.0.1:20244\n", link_files);
	assert_int_equal(parse_checked(conf), 0);
	/* IPv4 and IPv6 wildcards do not collide */
	snprintf(conf, sizeof(conf), "%slisten pop3s 0.0.0.0:995\nlink_listen [::]:995\n",
		 link_files);
	assert_int_equal(parse_checked(conf), 0);

	/* the files, named at the first link line */
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\n\npeer t2 10.0.0.2:7443\n"
				       "link_listen 10.0.0.1:7443\n"), -1);
	assert_string_equal(err, "t.conf:8: peer t2: the link needs link_ca, link_cert and "
				 "link_key (missing: link_ca, link_cert, link_key)");
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\nlink_listen 10.0.0.1:7443\n"
				       "peer t2 10.0.0.2:7443\nlink_ca /ca.pem\n"), -1);
	assert_string_equal(err, "t.conf:7: link_listen 10.0.0.1:7443: the link needs link_ca, "
				 "link_cert and link_key (missing: link_cert, link_key)");
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\nlink_listen [fd00::1]:7443\n"
				       "link_ca /ca.pem\nlink_cert /t1.pem\n"), -1);
	assert_string_equal(err, "t.conf:7: link_listen [fd00::1]:7443: the link needs link_ca, "
				 "link_cert and link_key (missing: link_key)");

	/* peers need link_listen */
	snprintf(conf, sizeof(conf), "%slisten pop3s 0.0.0.0:995\npeer t2 10.0.0.2:7443\n",
		 link_files);
	assert_int_equal(parse_checked(conf), -1);
	assert_string_equal(err, "t.conf:10: peer t2: peers need link_listen, the address this "
				 "node accepts them on");

	/* link_listen on a listener's address */
	snprintf(conf, sizeof(conf), "%slisten pop3s 0.0.0.0:995\nlink_listen 10.0.0.1:995\n",
		 link_files);
	assert_int_equal(parse_checked(conf), -1);
	assert_string_equal(err, "t.conf:10: link_listen 10.0.0.1:995: address already used by "
				 "listen pop3s 0.0.0.0:995 at t.conf:9");
	snprintf(conf, sizeof(conf), "%slink_listen 127.0.0.1:24\nlisten lmtp 127.0.0.1:24\n",
		 link_files);
	assert_int_equal(parse_checked(conf), -1);
	assert_string_equal(err, "t.conf:9: link_listen 127.0.0.1:24: address already used by "
				 "listen lmtp 127.0.0.1:24 at t.conf:10");
	snprintf(conf, sizeof(conf), "%slisten imaps [fd00::1]:993\nlink_listen [::]:993\n",
		 link_files);
	assert_int_equal(parse_checked(conf), -1);
	assert_string_equal(err, "t.conf:10: link_listen [::]:993: address already used by "
				 "listen imaps [fd00::1]:993 at t.conf:9");

	/* a peer that is this node */
	snprintf(conf, sizeof(conf), "%slisten pop3s 0.0.0.0:995\nlink_listen 10.0.0.1:7443\n"
		 "peer t2 10.0.0.2:7443\npeer t1 10.0.0.9:7443\n", link_files);
	assert_int_equal(parse_checked(conf), -1);
	assert_string_equal(err, "t.conf:12: peer t1: that is this node's own node_id");
	snprintf(conf, sizeof(conf), "%slisten pop3s 0.0.0.0:995\nlink_listen 10.0.0.1:7443\n"
		 "peer t2 10.0.0.1:7443\n", link_files);
	assert_int_equal(parse_checked(conf), -1);
	assert_string_equal(err, "t.conf:11: peer t2 10.0.0.1:7443: that is this node's own "
				 "link_listen address");

	/* PINGs must come more often than the dead-peer timeout */
	snprintf(conf, sizeof(conf), "%slisten pop3s 0.0.0.0:995\nlink_ping_interval 5s\n",
		 link_files);
	assert_int_equal(parse_checked(conf), -1);
	assert_string_equal(err, "link_ping_interval (5s) must not be longer than link_timeout "
				 "(3s), and both must be at least 1s");
	snprintf(conf, sizeof(conf), "%slisten pop3s 0.0.0.0:995\nlink_ping_interval 3s\n",
		 link_files);
	assert_int_equal(parse_checked(conf), 0);

	/* built by hand: zero timers are refused */
	snprintf(conf, sizeof(conf), "%slisten pop3s 0.0.0.0:995\nlink_listen 10.0.0.1:7443\n",
		 link_files);
	assert_int_equal(parse_checked(conf), 0);
	c.link_breaker_window = 0;
	assert_int_equal(config_check(&c, err, sizeof(err)), -1);
	assert_string_equal(err, "link_breaker_failures, link_breaker_window, link_breaker_cooloff "
				 "and link_max_hops must be set");
}

static void test_mirrors(void **state)
{
	char conf[1024];

	assert_parse_ok("mirrors ams1 ber-2\n");
	assert_int_equal(c.n_mirrors, 2);
	assert_string_equal(c.mirrors[0], "ams1");
	assert_string_equal(c.mirrors[1], "ber-2");
	assert_int_equal(c.mirrors_line, 1);
	assert_parse_ok("# x\nmirrors ams1   # one pinned, the other chosen\n");
	assert_int_equal(c.n_mirrors, 1);
	assert_string_equal(c.mirrors[0], "ams1");
	assert_int_equal(c.mirrors_line, 2);
	assert_parse_ok("node_id t1\n");
	assert_int_equal(c.n_mirrors, 0);
	assert_parse_err("mirrors\n", "t.conf:1: mirrors: expected one or two POP ids, as in "
			 "\"mirrors ams1 ber1\"");
	assert_parse_err("mirrors a b c\n", "t.conf:1: mirrors: expected one or two POP ids, as "
			 "in \"mirrors ams1 ber1\"");
	assert_parse_err("mirrors ams1 ams1\n", "t.conf:1: mirrors: \"ams1\" given twice");
	assert_parse_err("mirrors AMS1\n", "t.conf:1: mirrors: \"AMS1\" is not a POP id (1-63 "
			 "characters of a-z, 0-9 and \"-\")");
	assert_parse_err("mirrors a\nmirrors b\n", "t.conf:2: mirrors: given twice (first at "
			 "line 1)");

	/* each must be a peer */
	snprintf(conf, sizeof(conf), "%slisten pop3s 0.0.0.0:995\nlink_listen 10.0.0.1:7443\n"
		 "peer t2 10.0.0.2:7443\npeer t3 10.0.0.3:7443\nmirrors t3 t2\n", link_files);
	assert_int_equal(parse_checked(conf), 0);
	snprintf(conf, sizeof(conf), "%slisten pop3s 0.0.0.0:995\nlink_listen 10.0.0.1:7443\n"
		 "peer t2 10.0.0.2:7443\nmirrors t2 t4\n", link_files);
	assert_int_equal(parse_checked(conf), -1);
	assert_string_equal(err, "t.conf:12: mirrors: t4 is not a configured peer");
	snprintf(conf, sizeof(conf), "%slisten pop3s 0.0.0.0:995\nlink_listen 10.0.0.1:7443\n"
		 "peer t2 10.0.0.2:7443\nmirrors t1\n", link_files);
	assert_int_equal(parse_checked(conf), -1);
	assert_string_equal(err, "t.conf:12: mirrors: t1 is this node itself");
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\nmirrors t2\n"), -1);
	assert_string_equal(err, "t.conf:7: mirrors: t2 is not a configured peer");
}

/* replication_ack, _timeout, replication_degraded (docs/replication.md). */
static void test_replication_ack(void **state)
{
	assert_parse_ok("node_id t1\n");
	assert_int_equal(c.replication_ack, CONFIG_ACK_MIRROR);
	assert_int_equal(c.replication_ack_timeout_ms, 5000);
	assert_int_equal(c.replication_degraded, CONFIG_DEGRADED_ACCEPT);
	assert_parse_ok("replication_ack local\nreplication_degraded tempfail\n"
			"replication_ack_timeout 2500ms\n");
	assert_int_equal(c.replication_ack, CONFIG_ACK_LOCAL);
	assert_int_equal(c.replication_degraded, CONFIG_DEGRADED_TEMPFAIL);
	assert_int_equal(c.replication_ack_timeout_ms, 2500);
	assert_parse_ok("replication_ack mirror\nreplication_degraded accept\n"
			"replication_ack_timeout 1m\n");
	assert_int_equal(c.replication_ack, CONFIG_ACK_MIRROR);
	assert_int_equal(c.replication_degraded, CONFIG_DEGRADED_ACCEPT);
	assert_int_equal(c.replication_ack_timeout_ms, 60000);
	assert_parse_err("replication_ack Mirror\n",
			 "t.conf:1: replication_ack: \"Mirror\" is not local or mirror");
	assert_parse_err("replication_degraded reject\n",
			 "t.conf:1: replication_degraded: \"reject\" is not accept or tempfail");
	assert_parse_err("replication_ack_timeout 1s\n",
			 "t.conf:1: replication_ack_timeout: \"1s\" is out of range (2s..10m)");
	assert_parse_err("replication_ack_timeout 11m\n",
			 "t.conf:1: replication_ack_timeout: \"11m\" is out of range (2s..10m)");
}

static void test_check_anycast(void **state)
{
	/* addresses need nothing else: no BIRD socket is checked for, since a
	 * BIRD that is not (yet) running is a health failure, not a config
	 * error */
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\n"
				       "anycast_address 192.0.2.53/32\n"
				       "anycast_address 2001:db8::53/128\n"
				       "bird_socket /nonexistent/bird.ctl\n"), 0);
	assert_int_equal(c.n_anycast, 2);

	/* the mail process reports once per health_interval */
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\nhealth_interval 600ms\n"), -1);
	assert_string_equal(err, "heartbeat_timeout (600ms) must be longer than health_interval "
				 "(600ms): the mail process reports once per interval");
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\nhealth_interval 1s\n"
				       "heartbeat_timeout 800ms\n"), -1);
	assert_string_equal(err, "heartbeat_timeout (800ms) must be longer than health_interval "
				 "(1s): the mail process reports once per interval");
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\nhealth_interval 1s\n"
				       "heartbeat_timeout 3s\n"), 0);

	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\nbird_socket /aaaaaaaaaaaaaaaaaaa"
				       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.ctl\n"), -1);
	assert_string_equal(err, "bird_socket: path is longer than 107 bytes, too long for a unix "
				 "socket");

	/* built by hand: zero timers are refused */
	assert_int_equal(parse_checked("listen pop3s 0.0.0.0:995\n"), 0);
	c.health_rise = 0;
	assert_int_equal(config_check(&c, err, sizeof(err)), -1);
	assert_string_equal(err, "health_interval, health_rise, health_fall, health_max_loop_delay "
				 "and anycast_interface must be set");
}

/* Every row of the "Directives at a glance" table in docs/config.md whose
 * default is written as `VALUE`: parsing "NAME VALUE" over the defaults
 * changes nothing, i.e. the page and the table in config.c agree.  Every
 * directive the table has must have a row. */
static void test_doc_defaults(void **state)
{
	static const char *const names[] = {
		"node_id", "data_dir", "log", "log_level", "tls_cert", "tls_key",
		"control_socket", "user", "domain", "listen", "max_line_length",
		"max_message_size", "max_recipients", "max_sessions", "max_sessions_per_ip",
		"auth_fail_delay_after", "auth_fail_delay_ms", "auth_fail_max",
		"auth_fail_window", "idle_timeout", "pop3_max_bad_commands", "default_quota",
		"map_size", "commit_batch_max", "link_listen", "link_ca", "link_cert", "link_key",
		"peer", "link_ping_interval", "link_timeout", "link_breaker_failures",
		"link_breaker_window", "link_breaker_cooloff", "link_max_hops", "mirrors",
		"replication_ack", "replication_ack_timeout", "replication_degraded",
		"replication_startup_wait", "anycast_address",
		"anycast_interface", "anycast_create_dummy", "bird_socket", "health_interval",
		"health_rise", "health_fall", "health_hold_down", "health_min_free_disk",
		"health_max_loop_delay", "health_max_replication_lag", "health_require_peer",
		"maintenance_file", "heartbeat_timeout",
	};
	static struct config defaults;
	bool seen[sizeof(names) / sizeof(names[0])] = { false };
	char line[1024];
	int checked = 0;
	FILE *f = fopen("docs/config.md", "r");

	assert_non_null(f);
	config_defaults(&defaults);
	while (fgets(line, sizeof(line), f) != NULL) {
		char name[64], value[256], conf[400];
		const char *p, *e;

		/* | [`NAME`](#anchor) | type | `DEFAULT` ... | range | */
		if (strncmp(line, "| [`", 4) != 0)
			continue;
		p = line + 4;
		e = strchr(p, '`');
		assert_non_null(e);
		assert_true((size_t)(e - p) < sizeof(name));
		memcpy(name, p, (size_t)(e - p));
		name[e - p] = '\0';
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcmp(names[i], name) == 0)
				seen[i] = true;
		/* the third column: after the second '|' past the first */
		p = strchr(line + 1, '|');
		assert_non_null(p);
		p = strchr(p + 1, '|');
		assert_non_null(p);
		p++;
		while (*p == ' ')
			p++;
		if (*p != '`')
			continue; /* "none" */
		e = strchr(p + 1, '`');
		assert_non_null(e);
		assert_true((size_t)(e - p - 1) < sizeof(value));
		memcpy(value, p + 1, (size_t)(e - p - 1));
		value[e - p - 1] = '\0';
		snprintf(conf, sizeof(conf), "%s %s\n", name, value);
		if (parse(conf) != 0)
			print_error("docs/config.md: %s: %s\n", conf, err);
		assert_int_equal(parse(conf), 0);
		if (memcmp(&c, &defaults, sizeof(c)) != 0)
			print_error("docs/config.md: default of %s is not %s\n", name, value);
		assert_memory_equal(&c, &defaults, sizeof(c));
		checked++;
	}
	fclose(f);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!seen[i])
			print_error("docs/config.md: no row for %s\n", names[i]);
		assert_true(seen[i]);
	}
	/* every directive with a default was checked */
	assert_int_equal(checked, 39);
}

static void test_proto_names(void **state)
{
	assert_string_equal(config_proto_name(PROTO_LMTP), "lmtp");
	assert_string_equal(config_proto_name(PROTO_POP3), "pop3");
	assert_string_equal(config_proto_name(PROTO_POP3S), "pop3s");
	assert_string_equal(config_proto_name(PROTO_IMAP), "imap");
	assert_string_equal(config_proto_name(PROTO_IMAPS), "imaps");
	assert_string_equal(config_proto_name(PROTO_HTTP), "http");
	assert_string_equal(config_proto_name(PROTO_COUNT), "?");
	assert_string_equal(config_proto_name((enum listen_proto)-1), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_suffixes),
		cmocka_unit_test(test_domains),
		cmocka_unit_test(test_listen_good),
		cmocka_unit_test(test_link_good),
		cmocka_unit_test(test_anycast_good),
		cmocka_unit_test(test_maintenance_file),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_bad_configs),
		cmocka_unit_test(test_every_directive_arity),
		cmocka_unit_test(test_value_too_long),
		cmocka_unit_test(test_long_line_and_nul),
		cmocka_unit_test(test_failed_parse_changes_nothing),
		cmocka_unit_test(test_small_error_buffer),
		cmocka_unit_test(test_parse_file),
		cmocka_unit_test(test_example_config),
		cmocka_unit_test(test_dev),
		cmocka_unit_test(test_check_ok),
		cmocka_unit_test(test_check_errors),
		cmocka_unit_test(test_check_link),
		cmocka_unit_test(test_mirrors),
		cmocka_unit_test(test_check_anycast),
		cmocka_unit_test(test_doc_defaults),
		cmocka_unit_test(test_replication_ack),
		cmocka_unit_test(test_proto_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
