/* The configuration file: `key = value` lines, `#` comments, `[section name]`
 * headers. Every key is documented in docs/configuration.md.
 *
 * config_load() reports every problem in the file, not only the first, as
 * "FILE:LINE: what is wrong" lines through the errors buffer. */
#ifndef POSTERN_CORE_CONFIG_H
#define POSTERN_CORE_CONFIG_H

#include "core/buf.h"
#include "core/netmask.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum listener_tls {
	LISTENER_TLS_IMPLICIT,	/* TLS from the first byte (993) */
	LISTENER_TLS_STARTTLS,	/* plaintext, STARTTLS offered (143) */
	LISTENER_TLS_NONE,	/* plaintext only, for loopback and tests */
};

enum listener_protocol {
	LISTENER_PROTO_IMAP,
	LISTENER_PROTO_LMTP,
};

struct config_listener {
	char *name;			/* from "[listener NAME]" */
	char *address;			/* as written: "0.0.0.0:993", "[::1]:143"; for
					 * "unix:PATH" (lmtp only) the resolved PATH */
	struct sockaddr_storage addr;	/* parsed form of address (AF_UNIX for a path) */
	socklen_t addr_len;
	enum listener_tls tls;
	enum listener_protocol protocol;
	int line;			/* line of the section header, for messages */
	int address_line;		/* line of its `address` key, 0 when absent */
	/* LMTP: the peers allowed to connect; empty means loopback only
	 * (a unix socket is guarded by its file permissions instead). */
	struct netmask_list trusted_networks;
};

/* An extra certificate chosen by SNI: "[certificate NAME]" sections. */
struct config_certificate {
	char *name;		/* section name, used in logs and metrics */
	char *cert_file;	/* `cert` key */
	char *key_file;		/* `key` key */
	int line;		/* line of the section header */
	int cert_line;		/* line of its `cert` key, 0 when absent */
	int key_line;		/* line of its `key` key, 0 when absent */
};

/* Where [metrics] serves when the section gives no address. */
#define CONFIG_METRICS_DEFAULT_ADDRESS "127.0.0.1:9143"

/* Room for the line of every global key (config.c checks it is enough). */
#define CONFIG_GLOBAL_KEY_SLOTS 48

struct config {
	char *path;			/* the file it was read from, or NULL */
	char *hostname;			/* `hostname`, default gethostname() */
	char *data_dir;			/* `data_dir`, default /var/lib/postern */
	char *passwd_file;		/* `passwd_file`, default /etc/postern/passwd */
	char *user;			/* `user` to drop privileges to, default "postern" */
	int workers;			/* `workers`, default: number of online CPUs */
	char *tls_cert;			/* `tls_cert`, default /etc/postern/tls/cert.pem */
	char *tls_key;			/* `tls_key`, default /etc/postern/tls/key.pem */
	int tls_min_version;		/* TLS1_2_VERSION (default) or TLS1_3_VERSION */
	char *tls_ciphers;		/* `tls_ciphers`: TLS 1.2 cipher list */
	char *tls_ciphersuites;		/* `tls_ciphersuites`: TLS 1.3 suites */
	int tls_watch_interval;		/* `tls_watch_interval` seconds, default 60; 0 disables */
	bool allow_plaintext_auth;	/* `allow_plaintext_auth`, default no */
	size_t max_line_length;		/* `max_line_length`, default 64 KiB */
	uint64_t max_literal_size;	/* `max_literal_size`, default 64 MiB */
	int login_timeout;		/* `login_timeout` seconds, default 60 */
	int idle_timeout;		/* `idle_timeout` seconds after login, default 1800 */
	int slow_command_ms;		/* `slow_command_threshold` ms: slower commands are logged; 0 off; default 1000 */
	int idle_keepalive_interval;	/* `idle_keepalive_interval` seconds between "* OK Still here" in IDLE, default 120 */
	int auth_fail_delay_ms;		/* `auth_failure_delay`, first penalty, default 2000 */
	int auth_fail_delay_max_ms;	/* `auth_failure_delay_max`, default 15000 */
	int auth_spray_users;		/* `auth_spray_threshold`: distinct users failed from one IP, default 5 */
	int auth_threads;		/* `auth_threads`: hashing threads per worker, default 2 */
	int auth_cache_ttl;		/* `auth_cache_ttl` seconds a verified login is trusted, default 600; 0 off */
	int auth_cache_size;		/* `auth_cache_size`: verified logins kept per worker, default 10000 */
	int delivery_threads;		/* `delivery_threads`: LMTP store-writing threads per worker, default 8 */
	bool search_indexer;		/* `search_indexer`: index full text in the background, default yes */
	char *log_target;		/* `log_target`: "stderr" (default) or "syslog" */
	char *log_level;		/* `log_level`: debug, info (default), warn, error */
	char *pid_file;			/* `pid_file`, default none */
	int max_connections_per_ip;	/* `max_connections_per_ip`, default 50; 0 off */
	int max_sessions_per_user;	/* `max_sessions_per_user`, default 100; 0 off */
	int max_sessions_per_user_ip;	/* `max_sessions_per_user_ip`, default 50; 0 off */
	int max_commands_per_second;	/* `max_commands_per_second` per session, default 200; 0 off */
	size_t max_output_buffer;	/* `max_output_buffer`: queued output before a disconnect, default 16 MiB */
	int max_search_body_reads;	/* `max_search_body_reads` per SEARCH, default 50000; 0 off */

	char *metrics_address;		/* `address` in [metrics] (default 127.0.0.1:9143
					 * when the section is there); NULL: no section,
					 * no metrics endpoint */
	struct sockaddr_storage metrics_addr;	/* parsed metrics_address */
	socklen_t metrics_addr_len;
	int metrics_line;		/* line of the [metrics] header, 0 if none */

	struct config_listener *listeners;	/* from [listener] sections, or the defaults */
	size_t listener_count;
	bool listeners_defaulted;		/* true when no [listener] section was given */
	struct config_certificate *certificates;
	size_t certificate_count;
	int global_key_lines[CONFIG_GLOBAL_KEY_SLOTS];	/* see config_key_line() */
};

/* Fills cfg with the built-in defaults (no file). */
void config_init_defaults(struct config *cfg);

/* Reads path into cfg (which it first fills with defaults, so cfg must not
 * hold anything that needs freeing). Relative paths in the file are resolved
 * against the directory of path. Returns 0 when
 * the file is valid, -1 otherwise; every problem is appended to errors as one
 * "FILE:LINE: message\n" line (or "FILE: message\n" for problems not tied to
 * a line, such as an unreadable file). On -1 cfg is still safe to free. */
int config_load(struct config *cfg, const char *path, struct buf *errors);

/* Parses text as if it were the content of a file named name (tests). */
int config_parse_text(struct config *cfg, const char *name, const char *text, struct buf *errors);

/* When no [listener] section was given: 0.0.0.0:143 starttls and
 * 0.0.0.0:993 implicit, plus [::]:143 and [::]:993 when ipv6 is true.
 * Does nothing when listeners were configured. */
void config_add_default_listeners(struct config *cfg, bool ipv6);

/* Parses "HOST:PORT", "[V6]:PORT" or "*:PORT" into addr. Returns 0 or -1 with
 * a static message in *error_r. */
int config_parse_address(const char *text, struct sockaddr_storage *addr,
			 socklen_t *addr_len, const char **error_r);

/* 1 when an AF_INET6 socket can be created and bound to [::]:0, else 0:
 * decides whether the default listeners include IPv6. */
int config_ipv6_available(void);

/* The line of the file where the global key was set (`tls_cert`,
 * `data_dir`...), or 0 when it has its default or is not a global key: lets
 * `postern config check` point at the line behind a problem it finds. */
int config_key_line(const struct config *cfg, const char *key);

/* Frees everything cfg holds and leaves it zeroed; safe to call twice. */
void config_free(struct config *cfg);

#endif
