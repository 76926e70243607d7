/* The configuration file parser. One pass over the lines; every problem is
 * reported and parsing goes on, so an admin fixes the whole file at once
 * (as OpenSMTPD's parse.y does). Values are checked where they are read;
 * what depends on several keys (a listener's address and protocol, address
 * clashes between listeners) is checked when its section or the file ends. */
#include "core/config.h"

#include "core/limits.h"
#include "core/log.h"
#include "core/netmask.h"
#include "core/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/prov_ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

/* ECDHE key exchange and AEAD ciphers only, for TLS 1.2: forward secrecy,
 * and nothing from RC4, 3DES, NULL, EXPORT, anonymous or MD5. */
#define DEFAULT_TLS_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* OpenSSL 3's own TLS 1.3 default (OSSL_default_ciphersuites()), written out
 * so that core/ does not link against libssl for one string. */
#define DEFAULT_TLS_CIPHERSUITES \
	"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"

#define MAX_WORKERS 256

enum section_kind {
	SEC_GLOBAL,
	SEC_LISTENER,
	SEC_CERTIFICATE,
	SEC_METRICS,
	SEC_BAD,	/* an unusable header: its keys are skipped silently */
};

enum value_kind {
	VAL_STRING,		/* non-empty text */
	VAL_PATH,		/* non-empty, resolved against the file's directory */
	VAL_OPT_PATH,		/* as VAL_PATH, empty means none (NULL) */
	VAL_BOOL,
	VAL_INT,		/* int within [min, max] */
	VAL_SIZE,		/* size_t with an optional K/M/G suffix, within [min, max] */
	VAL_SIZE64,		/* the same, stored as uint64_t */
	VAL_TLS_VERSION,
	VAL_LOG_TARGET,
	VAL_LOG_LEVEL,
	VAL_LISTENER_TLS,
	VAL_PROTOCOL,
	VAL_ADDRESS,		/* kept as text, checked when the section ends */
	VAL_NETWORKS,		/* struct netmask_list */
};

struct key_def {
	const char *name;
	enum section_kind section;
	enum value_kind kind;
	size_t offset;		/* into struct config, config_listener or config_certificate */
	long long min, max;
};

#define G(name, kind, field, min, max) \
	{ name, SEC_GLOBAL, kind, offsetof(struct config, field), min, max }
#define L(name, kind, field) \
	{ name, SEC_LISTENER, kind, offsetof(struct config_listener, field), 0, 0 }
#define C(name, kind, field) \
	{ name, SEC_CERTIFICATE, kind, offsetof(struct config_certificate, field), 0, 0 }

/* Every key; docs/configuration.md describes each one. */
static const struct key_def key_defs[] = {
	G("hostname", VAL_STRING, hostname, 0, 0),
	G("data_dir", VAL_PATH, data_dir, 0, 0),
	G("passwd_file", VAL_PATH, passwd_file, 0, 0),
	G("user", VAL_STRING, user, 0, 0),
	G("workers", VAL_INT, workers, 1, MAX_WORKERS),
	G("tls_cert", VAL_PATH, tls_cert, 0, 0),
	G("tls_key", VAL_PATH, tls_key, 0, 0),
	G("tls_min_version", VAL_TLS_VERSION, tls_min_version, 0, 0),
	G("tls_ciphers", VAL_STRING, tls_ciphers, 0, 0),
	G("tls_ciphersuites", VAL_STRING, tls_ciphersuites, 0, 0),
	G("tls_watch_interval", VAL_INT, tls_watch_interval, 0, 86400),
	G("allow_plaintext_auth", VAL_BOOL, allow_plaintext_auth, 0, 0),
	G("max_line_length", VAL_SIZE, max_line_length, 1024, 1024LL * 1024 * 1024),
	G("max_literal_size", VAL_SIZE64, max_literal_size, 1, 1LL << 40),
	G("login_timeout", VAL_INT, login_timeout, 1, INT_MAX),
	G("idle_timeout", VAL_INT, idle_timeout, 1, INT_MAX),
	G("idle_keepalive_interval", VAL_INT, idle_keepalive_interval, 1, 86400),
	G("slow_command_threshold", VAL_INT, slow_command_ms, 0, INT_MAX),
	G("auth_failure_delay", VAL_INT, auth_fail_delay_ms, 0, 600000),
	G("auth_failure_delay_max", VAL_INT, auth_fail_delay_max_ms, 0, 600000),
	G("auth_spray_threshold", VAL_INT, auth_spray_users, 1, 100000),
	G("auth_threads", VAL_INT, auth_threads, 1, 64),
	G("auth_cache_ttl", VAL_INT, auth_cache_ttl, 0, 86400),
	G("auth_cache_size", VAL_INT, auth_cache_size, 1, 1000000),
	G("delivery_threads", VAL_INT, delivery_threads, 1, 64),
	G("search_indexer", VAL_BOOL, search_indexer, 0, 0),
	G("log_target", VAL_LOG_TARGET, log_target, 0, 0),
	G("log_level", VAL_LOG_LEVEL, log_level, 0, 0),
	G("pid_file", VAL_OPT_PATH, pid_file, 0, 0),
	G("max_connections_per_ip", VAL_INT, max_connections_per_ip, 0, 1000000),
	G("max_sessions_per_user", VAL_INT, max_sessions_per_user, 0, 1000000),
	G("max_sessions_per_user_ip", VAL_INT, max_sessions_per_user_ip, 0, 1000000),
	G("max_commands_per_second", VAL_INT, max_commands_per_second, 0, 1000000),
	G("max_output_buffer", VAL_SIZE, max_output_buffer, 64 * 1024, 1024LL * 1024 * 1024),
	G("max_search_body_reads", VAL_INT, max_search_body_reads, 0, INT_MAX),
	L("address", VAL_ADDRESS, address),
	L("tls", VAL_LISTENER_TLS, tls),
	L("protocol", VAL_PROTOCOL, protocol),
	L("trusted_networks", VAL_NETWORKS, trusted_networks),
	C("cert", VAL_PATH, cert_file),
	C("key", VAL_PATH, key_file),
	{ "address", SEC_METRICS, VAL_ADDRESS, offsetof(struct config, metrics_address), 0, 0 },
};

#define KEY_COUNT (sizeof(key_defs) / sizeof(key_defs[0]))
/* global_key_lines is indexed by the key's place in key_defs. */
_Static_assert(KEY_COUNT <= CONFIG_GLOBAL_KEY_SLOTS, "CONFIG_GLOBAL_KEY_SLOTS too small");

static const char *const section_names[] = { "listener", "certificate", "metrics" };

struct parser {
	struct config *cfg;
	const char *name;		/* file name for messages */
	char *dir;			/* base for relative paths, or NULL */
	struct buf *errors;
	int error_count;
	enum section_kind section;
	int section_line;
	bool discard_section;		/* a duplicate name: parse, then drop it */
	int seen_line[KEY_COUNT];	/* where each key was set in its section */
};

static void problem(struct parser *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void problem(struct parser *p, int line, const char *fmt, ...)
{
	va_list ap;

	if (line > 0)
		buf_printf(p->errors, "%s:%d: ", p->name, line);
	else
		buf_printf(p->errors, "%s: ", p->name);
	va_start(ap, fmt);
	buf_vprintf(p->errors, fmt, ap);
	va_end(ap);
	buf_append_char(p->errors, '\n');
	p->error_count++;
}

/* Levenshtein distance, for "did you mean"; long words get a large number. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[64];

	if (la >= 64 || lb >= 64)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* A candidate close enough to be a typo: at most 2 edits, and fewer edits
 * than the candidate has letters. */
static bool is_close(const char *word, const char *candidate, size_t *best)
{
	size_t d = edit_distance(word, candidate);
	if (d > 2 || d >= strlen(candidate) || d >= *best)
		return false;
	*best = d;
	return true;
}

static const char *suggest_key(const char *word, enum section_kind section)
{
	const char *found = NULL;
	size_t best = SIZE_MAX;

	for (size_t i = 0; i < KEY_COUNT; i++) {
		if (key_defs[i].section == section && is_close(word, key_defs[i].name, &best))
			found = key_defs[i].name;
	}
	return found;
}

static const char *suggest_section(const char *word)
{
	const char *found = NULL;
	size_t best = SIZE_MAX;

	for (size_t i = 0; i < sizeof(section_names) / sizeof(section_names[0]); i++) {
		if (is_close(word, section_names[i], &best))
			found = section_names[i];
	}
	return found;
}

static void set_string(char **field, char *value)
{
	free(*field);
	*field = value;
}

static char *resolve_path(const struct parser *p, const char *value)
{
	if (value[0] == '/' || p->dir == NULL)
		return xstrdup(value);
	while (value[0] == '.' && value[1] == '/')
		value += 2;
	return xasprintf("%s/%s", p->dir, value);
}

static bool parse_bool(const char *value, bool *result_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(value, yes[i]) == 0) {
			*result_r = true;
			return true;
		}
		if (strcasecmp(value, no[i]) == 0) {
			*result_r = false;
			return true;
		}
	}
	return false;
}

/* Decimal digits only: no sign, no spaces, no hex. Returns false on overflow. */
static bool parse_digits(const char *value, const char **end_r, unsigned long long *result_r)
{
	unsigned long long n = 0;
	const char *s = value;

	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned digit = (unsigned)(*s - '0');
		if (n > (ULLONG_MAX - digit) / 10)
			return false;
		n = n * 10 + digit;
	}
	*end_r = s;
	*result_r = n;
	return true;
}

/* "65536", "64K", "64KiB", "1M", "2G" (binary multiples). */
static bool parse_size(const char *value, unsigned long long *result_r)
{
	const char *end;
	unsigned long long n, mult = 1;

	if (!parse_digits(value, &end, &n))
		return false;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': mult = 1024ULL; end++; break;
	case 'm': case 'M': mult = 1024ULL * 1024; end++; break;
	case 'g': case 'G': mult = 1024ULL * 1024 * 1024; end++; break;
	default: return false;
	}
	if (mult > 1 && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
		end += strlen(end);
	if (*end != '\0')
		return false;
	if (n > ULLONG_MAX / mult)
		return false;
	*result_r = n * mult;
	return true;
}

static void range_problem(struct parser *p, int line, const struct key_def *def, unsigned long long n)
{
	if (def->max == INT_MAX)
		problem(p, line, "'%s' must be at least %lld (got %llu)", def->name, def->min, n);
	else
		problem(p, line, "'%s' must be between %lld and %lld (got %llu)",
			def->name, def->min, def->max, n);
}

static bool parse_tls_version(const char *value, int *version_r)
{
	if (strncasecmp(value, "TLSv", 4) == 0)
		value += 4;
	if (strcmp(value, "1.2") == 0) {
		*version_r = TLS1_2_VERSION;
		return true;
	}
	if (strcmp(value, "1.3") == 0) {
		*version_r = TLS1_3_VERSION;
		return true;
	}
	return false;
}

static void *field_base(struct parser *p)
{
	struct config *cfg = p->cfg;

	switch (p->section) {
	case SEC_GLOBAL:
	case SEC_METRICS:
		return cfg;
	case SEC_LISTENER:
		return &cfg->listeners[cfg->listener_count - 1];
	case SEC_CERTIFICATE:
		return &cfg->certificates[cfg->certificate_count - 1];
	case SEC_BAD:
		break;
	}
	return NULL;
}

static void set_networks(struct parser *p, int line, const struct key_def *def, struct netmask_list *field,
			 const char *value)
{
	const char *error;
	char *bad;
	if (netmask_list_parse(value, field, &error, &bad) == 0)
		return;
	if (bad != NULL)
		problem(p, line, "'%s': '%s': %s", def->name, bad, error);
	else
		problem(p, line, "'%s': %s", def->name, error);
	free(bad);
}

static void set_value(struct parser *p, const struct key_def *def, const char *value, int line)
{
	char *base = field_base(p);
	void *field = base + def->offset;
	unsigned long long n;
	const char *end;
	bool b;
	int version;
	enum log_level level;

	if (value[0] == '\0' && def->kind != VAL_OPT_PATH) {
		problem(p, line, "'%s' needs a value", def->name);
		return;
	}
	switch (def->kind) {
	case VAL_STRING:
	case VAL_ADDRESS:
		set_string(field, xstrdup(value));
		break;
	case VAL_PATH:
		set_string(field, resolve_path(p, value));
		break;
	case VAL_OPT_PATH:
		set_string(field, value[0] == '\0' ? NULL : resolve_path(p, value));
		break;
	case VAL_BOOL:
		if (!parse_bool(value, &b))
			problem(p, line, "'%s' must be yes or no (or true/false, on/off, 1/0), not '%s'",
				def->name, value);
		else
			*(bool *)field = b;
		break;
	case VAL_INT:
		if (!parse_digits(value, &end, &n) || *end != '\0') {
			if (value[0] == '-' && parse_digits(value + 1, &end, &n) && *end == '\0')
				problem(p, line, "'%s' must not be negative (got %s)", def->name, value);
			else
				problem(p, line, "'%s' needs a whole number, not '%s'", def->name, value);
		} else if (n < (unsigned long long)def->min || n > (unsigned long long)def->max) {
			range_problem(p, line, def, n);
		} else {
			*(int *)field = (int)n;
		}
		break;
	case VAL_SIZE:
	case VAL_SIZE64:
		if (!parse_size(value, &n))
			problem(p, line, "'%s' needs a size such as 65536, 64K or 1M, not '%s'",
				def->name, value);
		else if (n < (unsigned long long)def->min || n > (unsigned long long)def->max)
			range_problem(p, line, def, n);
		else if (def->kind == VAL_SIZE)
			*(size_t *)field = (size_t)n;
		else
			*(uint64_t *)field = n;
		break;
	case VAL_TLS_VERSION:
		if (!parse_tls_version(value, &version))
			problem(p, line, "'%s' must be 1.2 or 1.3, not '%s'", def->name, value);
		else
			*(int *)field = version;
		break;
	case VAL_LOG_TARGET:
		if (strcmp(value, "stderr") != 0 && strcmp(value, "syslog") != 0)
			problem(p, line, "'%s' must be stderr or syslog, not '%s'", def->name, value);
		else
			set_string(field, xstrdup(value));
		break;
	case VAL_LOG_LEVEL:
		if (log_level_parse(value, &level) < 0)
			problem(p, line, "'%s' must be debug, info, warn or error, not '%s'",
				def->name, value);
		else
			set_string(field, xstrdup(value));
		break;
	case VAL_LISTENER_TLS:
		if (strcmp(value, "implicit") == 0)
			*(enum listener_tls *)field = LISTENER_TLS_IMPLICIT;
		else if (strcmp(value, "starttls") == 0)
			*(enum listener_tls *)field = LISTENER_TLS_STARTTLS;
		else if (strcmp(value, "none") == 0)
			*(enum listener_tls *)field = LISTENER_TLS_NONE;
		else
			problem(p, line, "'%s' must be implicit, starttls or none, not '%s'",
				def->name, value);
		break;
	case VAL_NETWORKS:
		set_networks(p, line, def, field, value);
		break;
	case VAL_PROTOCOL:
		if (strcmp(value, "imap") == 0)
			*(enum listener_protocol *)field = LISTENER_PROTO_IMAP;
		else if (strcmp(value, "lmtp") == 0)
			*(enum listener_protocol *)field = LISTENER_PROTO_LMTP;
		else
			problem(p, line, "'%s' must be imap or lmtp, not '%s'", def->name, value);
		break;
	}
}

static int key_index(const char *name, enum section_kind section)
{
	for (size_t i = 0; i < KEY_COUNT; i++) {
		if (key_defs[i].section == section && strcmp(key_defs[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

static int seen(const struct parser *p, const char *name, enum section_kind section)
{
	int i = key_index(name, section);
	return i < 0 ? 0 : p->seen_line[i];
}

int config_parse_address(const char *text, struct sockaddr_storage *addr,
			 socklen_t *addr_len, const char **error_r)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *port_text, *end;
	unsigned long long port;
	size_t host_len;
	bool v6 = false;

	memset(addr, 0, sizeof(*addr));
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (close == NULL) {
			*error_r = "missing ']' after the IPv6 address";
			return -1;
		}
		if (close[1] != ':') {
			*error_r = "expected ':PORT' after ']'";
			return -1;
		}
		v6 = true;
		host_len = (size_t)(close - text - 1);
		memcpy(host, text + 1, host_len < sizeof(host) ? host_len : 0);
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL) {
			*error_r = "expected HOST:PORT";
			return -1;
		}
		host_len = (size_t)(colon - text);
		if (memchr(text, ':', host_len) != NULL) {
			*error_r = "an IPv6 address must be written in brackets: [::1]:143";
			return -1;
		}
		memcpy(host, text, host_len < sizeof(host) ? host_len : 0);
	}
	if (host_len == 0 || host_len >= sizeof(host)) {
		*error_r = host_len == 0 ? "missing host before the port (use * for every address)"
					 : "host is too long";
		return -1;
	}
	host[host_len] = '\0';

	port_text = colon + 1;
	if (!parse_digits(port_text, &end, &port) || *end != '\0') {
		*error_r = "port must be a number";
		return -1;
	}
	if (port < 1 || port > 65535) {
		*error_r = "port must be between 1 and 65535";
		return -1;
	}

	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)addr;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			*error_r = "not an IPv6 address";
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*addr_len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)addr;
		if (strcmp(host, "*") == 0) {
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		} else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			*error_r = "host must be an IPv4 address, [IPv6 address] or *";
			return -1;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*addr_len = sizeof(*sin);
	}
	return 0;
}

/* "unix:PATH" for an LMTP listener: address becomes the resolved PATH. */
static void check_unix_address(struct parser *p, struct config_listener *l, int line)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&l->addr;
	const char *path = l->address + 5;
	char *resolved;

	if (l->protocol != LISTENER_PROTO_LMTP) {
		problem(p, line, "listener '%s': unix sockets are only for protocol = lmtp", l->name);
		return;
	}
	if (path[0] == '\0') {
		problem(p, line, "listener '%s': bad address '%s': missing path after unix:",
			l->name, l->address);
		return;
	}
	resolved = resolve_path(p, path);
	if (strlen(resolved) >= sizeof(sun->sun_path)) {
		problem(p, line, "listener '%s': unix socket path '%s' is longer than %zu bytes",
			l->name, resolved, sizeof(sun->sun_path) - 1);
		free(resolved);
		return;
	}
	memset(&l->addr, 0, sizeof(l->addr));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, resolved, strlen(resolved) + 1);
	l->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(resolved) + 1);
	set_string(&l->address, resolved);
}

static uint16_t addr_port(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_port;
	return ((const struct sockaddr_in6 *)a)->sin6_port;
}

static bool addr_is_any(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

static bool addr_host_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/* 0: no clash; 1: the same address; 2: one is the wildcard of the other's
 * family on the same port, which Linux refuses to bind while the first
 * listens. IPv4 and IPv6 never clash: listeners bind [::] with IPV6_V6ONLY. */
static int addr_clash(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_UNIX)
		return strcmp(((const struct sockaddr_un *)a)->sun_path,
			      ((const struct sockaddr_un *)b)->sun_path) == 0 ? 1 : 0;
	if (addr_port(a) != addr_port(b))
		return 0;
	if (addr_host_equal(a, b))
		return 1;
	return addr_is_any(a) || addr_is_any(b) ? 2 : 0;
}

static bool addr_is_loopback(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
	return a->ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

/* LMTP has no authentication: whoever reaches it can put mail in any
 * mailbox. So a TCP listener reachable from beyond this host must name the
 * MTAs it serves; without trusted_networks it takes loopback peers only. */
static void check_lmtp_peers(struct parser *p, const struct config_listener *l)
{
	int line = seen(p, "trusted_networks", SEC_LISTENER);
	if (l->protocol != LISTENER_PROTO_LMTP) {
		if (line != 0)
			problem(p, line, "listener '%s': trusted_networks is only for protocol = lmtp", l->name);
		return;
	}
	if (l->addr_len == 0)
		return;		/* the address itself was reported */
	if (l->addr.ss_family == AF_UNIX) {
		if (line != 0)
			problem(p, line, "listener '%s': trusted_networks is for TCP addresses; "
				"a unix socket is guarded by its file permissions", l->name);
		return;
	}
	if (line == 0 && !addr_is_loopback(&l->addr))
		problem(p, l->address_line, "listener '%s': protocol lmtp on '%s' would accept mail for every "
			"user from anyone who can connect; list the MTAs allowed in trusted_networks "
			"(for example trusted_networks = 192.0.2.25, 2001:db8::/64) or listen on loopback "
			"or a unix socket", l->name, l->address);
}

static void close_listener(struct parser *p)
{
	struct config *cfg = p->cfg;
	struct config_listener *l = &cfg->listeners[cfg->listener_count - 1];
	int address_line = seen(p, "address", SEC_LISTENER);
	const char *error;

	l->address_line = address_line;
	if (l->address == NULL) {
		problem(p, l->line, "listener '%s' has no address", l->name);
	} else if (strncmp(l->address, "unix:", 5) == 0) {
		check_unix_address(p, l, address_line);
	} else if (config_parse_address(l->address, &l->addr, &l->addr_len, &error) < 0) {
		problem(p, address_line, "listener '%s': bad address '%s': %s", l->name, l->address, error);
	}
	if (l->protocol == LISTENER_PROTO_LMTP && seen(p, "tls", SEC_LISTENER) != 0 &&
	    l->tls != LISTENER_TLS_NONE) {
		/* LMTP carries no passwords and belongs on a unix socket or
		 * loopback (RFC 2033 1); there is no TLS for it. */
		problem(p, seen(p, "tls", SEC_LISTENER), "listener '%s': protocol lmtp supports only tls = none",
			l->name);
	}
	check_lmtp_peers(p, l);
	if (seen(p, "tls", SEC_LISTENER) == 0) {
		/* Port 993 is implicit TLS everywhere (RFC 8314 3.3); LMTP is
		 * usually spoken on loopback or a unix socket. */
		if (l->protocol == LISTENER_PROTO_LMTP)
			l->tls = LISTENER_TLS_NONE;
		else if (l->addr.ss_family != AF_UNIX && l->addr_len > 0 && ntohs(addr_port(&l->addr)) == 993)
			l->tls = LISTENER_TLS_IMPLICIT;
		else
			l->tls = LISTENER_TLS_STARTTLS;
	}
}

static void free_listener(struct config_listener *l)
{
	free(l->name);
	free(l->address);
	netmask_list_free(&l->trusted_networks);
}

static void free_certificate(struct config_certificate *c)
{
	free(c->name);
	free(c->cert_file);
	free(c->key_file);
}

static void close_section(struct parser *p)
{
	struct config *cfg = p->cfg;
	const char *error;

	switch (p->section) {
	case SEC_LISTENER:
		if (p->discard_section) {
			free_listener(&cfg->listeners[--cfg->listener_count]);
			break;
		}
		close_listener(p);
		break;
	case SEC_CERTIFICATE: {
		struct config_certificate *c = &cfg->certificates[cfg->certificate_count - 1];
		if (p->discard_section) {
			free_certificate(c);
			cfg->certificate_count--;
			break;
		}
		c->cert_line = seen(p, "cert", SEC_CERTIFICATE);
		c->key_line = seen(p, "key", SEC_CERTIFICATE);
		if (c->cert_file == NULL)
			problem(p, c->line, "certificate '%s' has no cert", c->name);
		if (c->key_file == NULL)
			problem(p, c->line, "certificate '%s' has no key", c->name);
		break;
	}
	case SEC_METRICS:
		/* The section alone turns metrics on, on loopback. */
		if (cfg->metrics_address == NULL)
			cfg->metrics_address = xstrdup(CONFIG_METRICS_DEFAULT_ADDRESS);
		if (config_parse_address(cfg->metrics_address, &cfg->metrics_addr,
					      &cfg->metrics_addr_len, &error) < 0)
			problem(p, seen(p, "address", SEC_METRICS), "[metrics]: bad address '%s': %s",
				cfg->metrics_address, error);
		break;
	case SEC_GLOBAL:
	case SEC_BAD:
		break;
	}
	p->discard_section = false;
}

static bool valid_name(const char *name)
{
	for (const char *s = name; *s != '\0'; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return false;
	}
	return name[0] != '\0';
}

static void open_section(struct parser *p, const char *type, const char *name, int line)
{
	struct config *cfg = p->cfg;

	close_section(p);
	p->section = SEC_BAD;
	p->section_line = line;
	for (size_t i = 0; i < KEY_COUNT; i++) {
		if (key_defs[i].section != SEC_GLOBAL)
			p->seen_line[i] = 0;
	}

	if (strcmp(type, "metrics") == 0) {
		if (name[0] != '\0') {
			problem(p, line, "[metrics] takes no name");
			return;
		}
		if (cfg->metrics_line != 0) {
			problem(p, line, "duplicate [metrics] section (first on line %d)", cfg->metrics_line);
			return;
		}
		cfg->metrics_line = line;
		p->section = SEC_METRICS;
		return;
	}
	if (strcmp(type, "listener") != 0 && strcmp(type, "certificate") != 0) {
		const char *hint = suggest_section(type);
		if (hint != NULL)
			problem(p, line, "unknown section type '%s' (did you mean '%s'?)", type, hint);
		else
			problem(p, line, "unknown section type '%s' (expected listener, certificate or metrics)",
				type);
		return;
	}
	if (name[0] == '\0') {
		problem(p, line, "[%s] needs a name: [%s NAME]", type, type);
		return;
	}
	if (!valid_name(name)) {
		problem(p, line, "%s name '%s' may only hold letters, digits, '.', '_' and '-'", type, name);
		return;
	}

	if (strcmp(type, "listener") == 0) {
		for (size_t i = 0; i < cfg->listener_count; i++) {
			if (strcmp(cfg->listeners[i].name, name) == 0) {
				problem(p, line, "duplicate listener name '%s' (first on line %d)",
					name, cfg->listeners[i].line);
				p->discard_section = true;
			}
		}
		cfg->listeners = xrealloc(cfg->listeners, (cfg->listener_count + 1) * sizeof(*cfg->listeners));
		struct config_listener *l = &cfg->listeners[cfg->listener_count++];
		memset(l, 0, sizeof(*l));
		l->name = xstrdup(name);
		l->line = line;
		l->tls = LISTENER_TLS_STARTTLS;
		l->protocol = LISTENER_PROTO_IMAP;
		p->section = SEC_LISTENER;
	} else {
		for (size_t i = 0; i < cfg->certificate_count; i++) {
			if (strcmp(cfg->certificates[i].name, name) == 0) {
				problem(p, line, "duplicate certificate name '%s' (first on line %d)",
					name, cfg->certificates[i].line);
				p->discard_section = true;
			}
		}
		cfg->certificates = xrealloc(cfg->certificates,
					     (cfg->certificate_count + 1) * sizeof(*cfg->certificates));
		struct config_certificate *c = &cfg->certificates[cfg->certificate_count++];
		memset(c, 0, sizeof(*c));
		c->name = xstrdup(name);
		c->line = line;
		p->section = SEC_CERTIFICATE;
	}
}

static const char *section_label(const struct parser *p)
{
	switch (p->section) {
	case SEC_LISTENER: return "[listener]";
	case SEC_CERTIFICATE: return "[certificate]";
	case SEC_METRICS: return "[metrics]";
	case SEC_GLOBAL:
	case SEC_BAD:
		break;
	}
	return "this section";
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static char *trim(char *s)
{
	size_t len;

	while (is_space(*s))
		s++;
	len = strlen(s);
	while (len > 0 && is_space(s[len - 1]))
		s[--len] = '\0';
	return s;
}

/* Only whitespace or a comment may follow; false otherwise. */
static bool rest_is_empty(const char *s)
{
	while (is_space(*s))
		s++;
	return *s == '\0' || *s == '#';
}

static void parse_section_line(struct parser *p, char *s, int line)
{
	char *close = strchr(s, ']');
	char *inner, *name;

	if (close == NULL) {
		problem(p, line, "section header without closing ']'");
		close_section(p);
		p->section = SEC_BAD;	/* skip its keys rather than report each */
		return;
	}
	if (!rest_is_empty(close + 1)) {
		problem(p, line, "unexpected text after ']'");
		close_section(p);
		p->section = SEC_BAD;
		return;
	}
	*close = '\0';
	inner = trim(s + 1);
	name = inner;
	while (*name != '\0' && !is_space(*name))
		name++;
	if (*name != '\0')
		*name++ = '\0';
	open_section(p, inner, trim(name), line);
}

/* Takes the value after '=': a "quoted string" (with \" and \\) or bare
 * text up to a " #" comment. Returns NULL after reporting a problem. */
static char *parse_value(struct parser *p, char *s, int line)
{
	while (is_space(*s))
		s++;
	if (*s == '"') {
		char *out = s, *in = s + 1;
		for (; *in != '"'; in++) {
			if (*in == '\0') {
				problem(p, line, "unterminated quoted value");
				return NULL;
			}
			if (*in == '\\' && (in[1] == '"' || in[1] == '\\'))
				in++;
			*out++ = *in;
		}
		*out = '\0';
		if (!rest_is_empty(in + 1)) {
			problem(p, line, "unexpected text after the quoted value");
			return NULL;
		}
		return s;
	}
	for (char *c = s; *c != '\0'; c++) {
		/* A '#' opens a comment at the start or after whitespace, so
		 * "a#b" stays a value. */
		if (*c == '#' && (c == s || is_space(c[-1]))) {
			*c = '\0';
			break;
		}
	}
	return trim(s);
}

static void parse_key_line(struct parser *p, char *s, int line)
{
	char *eq = strchr(s, '=');
	char *key, *value;
	int index;

	if (eq == NULL) {
		problem(p, line, "expected 'key = value', missing '='");
		return;
	}
	*eq = '\0';
	key = trim(s);
	if (key[0] == '\0') {
		problem(p, line, "missing key before '='");
		return;
	}
	value = parse_value(p, eq + 1, line);
	if (p->section == SEC_BAD)
		return;
	index = key_index(key, p->section);
	if (index < 0) {
		const char *hint = suggest_key(key, p->section);
		if (p->section != SEC_GLOBAL && key_index(key, SEC_GLOBAL) >= 0)
			problem(p, line, "'%s' is a global key: put it before the first section", key);
		else if (hint != NULL)
			problem(p, line, "unknown key '%s' (did you mean '%s'?)", key, hint);
		else if (p->section == SEC_GLOBAL)
			problem(p, line, "unknown key '%s'", key);
		else
			problem(p, line, "unknown key '%s' in %s", key, section_label(p));
		return;
	}
	if (p->seen_line[index] != 0) {
		problem(p, line, "duplicate key '%s' (first set on line %d)", key, p->seen_line[index]);
		return;
	}
	p->seen_line[index] = line;
	if (p->section == SEC_GLOBAL)
		p->cfg->global_key_lines[index] = line;
	if (value != NULL)
		set_value(p, &key_defs[index], value, line);
}

static void check_clashes(struct parser *p)
{
	struct config *cfg = p->cfg;

	for (size_t j = 0; j < cfg->listener_count; j++) {
		const struct config_listener *b = &cfg->listeners[j];
		if (b->addr_len == 0)
			continue;	/* its address was already reported */
		for (size_t i = 0; i < j; i++) {
			const struct config_listener *a = &cfg->listeners[i];
			int clash = a->addr_len == 0 ? 0 : addr_clash(&a->addr, &b->addr);
			if (clash == 1) {
				problem(p, b->line, "listener '%s' uses the same address %s as listener '%s' (line %d)",
					b->name, b->address, a->name, a->line);
				break;
			}
			if (clash == 2) {
				problem(p, b->line, "listener '%s' (%s) overlaps listener '%s' (%s, line %d) on the same port",
					b->name, b->address, a->name, a->address, a->line);
				break;
			}
		}
		if (cfg->metrics_addr_len > 0 && addr_clash(&cfg->metrics_addr, &b->addr) != 0)
			problem(p, cfg->metrics_line, "[metrics] address %s clashes with listener '%s' (line %d)",
				cfg->metrics_address, b->name, b->line);
	}
	if (cfg->auth_fail_delay_max_ms < cfg->auth_fail_delay_ms) {
		int line = seen(p, "auth_failure_delay_max", SEC_GLOBAL);
		problem(p, line != 0 ? line : seen(p, "auth_failure_delay", SEC_GLOBAL),
			"auth_failure_delay_max (%d) is less than auth_failure_delay (%d)",
			cfg->auth_fail_delay_max_ms, cfg->auth_fail_delay_ms);
	}
}

static int parse(struct parser *p, const char *text, size_t text_len)
{
	const char *s = text, *end = text + text_len;
	int line = 0;

	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t len = nl != NULL ? (size_t)(nl - s) : (size_t)(end - s);
		char *copy, *t;

		line++;
		if (memchr(s, '\0', len) != NULL) {
			problem(p, line, "NUL byte in line");
			s += len + 1;
			continue;
		}
		copy = xstrndup(s, len);
		s += len + 1;
		if (len > 0 && copy[len - 1] == '\r')
			copy[len - 1] = '\0';
		t = trim(copy);
		if (t[0] == '[')
			parse_section_line(p, t, line);
		else if (t[0] != '\0' && t[0] != '#')
			parse_key_line(p, t, line);
		free(copy);
	}
	close_section(p);
	p->section = SEC_GLOBAL;
	check_clashes(p);
	p->cfg->listeners_defaulted = p->cfg->listener_count == 0;
	return p->error_count == 0 ? 0 : -1;
}

static int parse_with_dir(struct config *cfg, const char *name, char *dir, const char *text,
			  size_t text_len, struct buf *errors)
{
	struct parser p;
	int ret;

	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.name = name;
	p.dir = dir;
	p.errors = errors;
	p.section = SEC_GLOBAL;
	ret = parse(&p, text, text_len);
	free(dir);
	return ret;
}

/* The directory part of path; NULL for a bare file name (relative paths
 * then stay relative to the working directory). */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return NULL;
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

int config_parse_text(struct config *cfg, const char *name, const char *text, struct buf *errors)
{
	config_init_defaults(cfg);
	cfg->path = xstrdup(name);
	return parse_with_dir(cfg, name, dir_of(name), text, strlen(text), errors);
}

int config_load(struct config *cfg, const char *path, struct buf *errors)
{
	struct buf text = BUF_INIT;
	char chunk[8192];
	char *dir, *real;
	size_t n;
	FILE *f;
	int ret;

	config_init_defaults(cfg);
	cfg->path = xstrdup(path);
	f = fopen(path, "r");
	if (f == NULL) {
		buf_printf(errors, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&text, chunk, n);
	if (ferror(f)) {
		buf_printf(errors, "%s: %s\n", path, strerror(errno));
		fclose(f);
		buf_free(&text);
		return -1;
	}
	fclose(f);

	/* An absolute base, so paths stay right after the daemon changes its
	 * working directory. */
	dir = dir_of(path);
	real = realpath(dir != NULL ? dir : ".", NULL);
	if (real != NULL) {
		free(dir);
		dir = real;
	}
	ret = parse_with_dir(cfg, path, dir, text.data != NULL ? text.data : "", text.len, errors);
	buf_free(&text);
	return ret;
}

static int online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > MAX_WORKERS ? MAX_WORKERS : (int)n;
}

void config_init_defaults(struct config *cfg)
{
	char host[256];

	memset(cfg, 0, sizeof(*cfg));
	if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	cfg->hostname = xstrdup(host);
	cfg->data_dir = xstrdup("/var/lib/postern");
	cfg->passwd_file = xstrdup("/etc/postern/passwd");
	cfg->user = xstrdup("postern");
	cfg->workers = online_cpus();
	cfg->tls_cert = xstrdup("/etc/postern/tls/cert.pem");
	cfg->tls_key = xstrdup("/etc/postern/tls/key.pem");
	cfg->tls_min_version = TLS1_2_VERSION;
	cfg->tls_ciphers = xstrdup(DEFAULT_TLS_CIPHERS);
	cfg->tls_ciphersuites = xstrdup(DEFAULT_TLS_CIPHERSUITES);
	cfg->tls_watch_interval = 60;
	cfg->allow_plaintext_auth = false;
	cfg->max_line_length = LIMIT_LINE_DEFAULT;
	cfg->max_literal_size = LIMIT_LITERAL_DEFAULT;
	cfg->login_timeout = LIMIT_LOGIN_TIMEOUT_S;
	cfg->idle_timeout = LIMIT_AUTH_TIMEOUT_S;
	cfg->idle_keepalive_interval = 120;
	cfg->slow_command_ms = 1000;
	cfg->auth_fail_delay_ms = 2000;
	cfg->auth_fail_delay_max_ms = 15000;
	cfg->auth_spray_users = 5;
	cfg->auth_threads = 2;
	cfg->auth_cache_ttl = 600;
	cfg->auth_cache_size = 10000;
	cfg->delivery_threads = 8;
	cfg->search_indexer = true;
	cfg->log_target = xstrdup("stderr");
	cfg->log_level = xstrdup("info");
	cfg->pid_file = NULL;
	cfg->max_connections_per_ip = LIMIT_CONNECTIONS_PER_IP;
	cfg->max_sessions_per_user = LIMIT_SESSIONS_PER_USER;
	cfg->max_sessions_per_user_ip = LIMIT_SESSIONS_PER_USER_IP;
	cfg->max_commands_per_second = LIMIT_COMMANDS_PER_SECOND;
	cfg->max_output_buffer = LIMIT_OUTPUT_QUEUE;
	cfg->max_search_body_reads = LIMIT_SEARCH_BODY_READS;
	cfg->listeners_defaulted = true;
}

static void add_listener(struct config *cfg, const char *name, const char *address,
			 enum listener_tls tls)
{
	struct config_listener *l;
	const char *error;

	cfg->listeners = xrealloc(cfg->listeners, (cfg->listener_count + 1) * sizeof(*cfg->listeners));
	l = &cfg->listeners[cfg->listener_count++];
	memset(l, 0, sizeof(*l));
	l->name = xstrdup(name);
	l->address = xstrdup(address);
	l->tls = tls;
	l->protocol = LISTENER_PROTO_IMAP;
	if (config_parse_address(address, &l->addr, &l->addr_len, &error) < 0)
		abort();	/* the addresses below are constants */
}

void config_add_default_listeners(struct config *cfg, bool ipv6)
{
	if (cfg->listener_count > 0)
		return;
	add_listener(cfg, "imap", "0.0.0.0:143", LISTENER_TLS_STARTTLS);
	add_listener(cfg, "imaps", "0.0.0.0:993", LISTENER_TLS_IMPLICIT);
	if (ipv6) {
		add_listener(cfg, "imap-v6", "[::]:143", LISTENER_TLS_STARTTLS);
		add_listener(cfg, "imaps-v6", "[::]:993", LISTENER_TLS_IMPLICIT);
	}
	cfg->listeners_defaulted = true;
}

int config_ipv6_available(void)
{
	struct sockaddr_in6 sin6;
	int fd, ok;

	fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_addr = in6addr_any;
	sin6.sin6_port = 0;
	ok = bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
	close(fd);
	return ok ? 1 : 0;
}

int config_key_line(const struct config *cfg, const char *key)
{
	int i = key_index(key, SEC_GLOBAL);

	return i < 0 ? 0 : cfg->global_key_lines[i];
}

void config_free(struct config *cfg)
{
	free(cfg->path);
	free(cfg->hostname);
	free(cfg->data_dir);
	free(cfg->passwd_file);
	free(cfg->user);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->tls_ciphers);
	free(cfg->tls_ciphersuites);
	free(cfg->log_target);
	free(cfg->log_level);
	free(cfg->pid_file);
	free(cfg->metrics_address);
	for (size_t i = 0; i < cfg->listener_count; i++)
		free_listener(&cfg->listeners[i]);
	free(cfg->listeners);
	for (size_t i = 0; i < cfg->certificate_count; i++)
		free_certificate(&cfg->certificates[i]);
	free(cfg->certificates);
	memset(cfg, 0, sizeof(*cfg));
}
