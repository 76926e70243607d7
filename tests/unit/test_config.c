/* Tests for core/config: good files, defaults, one test per kind of bad
 * line with its exact "FILE:LINE: message", several problems at once,
 * addresses, default listeners and relative paths. */
#include "core/config.h"
#include "core/limits.h"

#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/prov_ssl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Parses text as "t.conf" and returns the error text (static buffer). */
static char error_text[8192];

static int parse(struct config *cfg, const char *text)
{
	struct buf errors = BUF_INIT;
	int ret = config_parse_text(cfg, "t.conf", text, &errors);
	snprintf(error_text, sizeof(error_text), "%s", errors.data != NULL ? errors.data : "");
	buf_free(&errors);
	return ret;
}

static void test_defaults(void)
{
	struct config cfg;
	char host[256] = "";

	config_init_defaults(&cfg);
	gethostname(host, sizeof(host));
	CHECK_STR(cfg.hostname, host[0] != '\0' ? host : "localhost");
	CHECK_STR(cfg.data_dir, "/var/lib/postern");
	CHECK_STR(cfg.passwd_file, "/etc/postern/passwd");
	CHECK_STR(cfg.user, "postern");
	CHECK_INT(cfg.workers, sysconf(_SC_NPROCESSORS_ONLN) > 256 ? 256 : sysconf(_SC_NPROCESSORS_ONLN));
	CHECK_STR(cfg.tls_cert, "/etc/postern/tls/cert.pem");
	CHECK_STR(cfg.tls_key, "/etc/postern/tls/key.pem");
	CHECK_INT(cfg.tls_min_version, TLS1_2_VERSION);
	CHECK(strstr(cfg.tls_ciphers, "ECDHE-RSA-AES128-GCM-SHA256") != NULL);
	CHECK(strstr(cfg.tls_ciphers, "RC4") == NULL && strstr(cfg.tls_ciphers, "3DES") == NULL);
	CHECK_STR(cfg.tls_ciphersuites,
		  "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256");
	CHECK_INT(cfg.tls_watch_interval, 60);
	CHECK(!cfg.allow_plaintext_auth);
	CHECK_INT(cfg.max_line_length, 64 * 1024);
	CHECK_INT(cfg.max_literal_size, 64 * 1024 * 1024);
	CHECK_INT(cfg.login_timeout, 60);
	CHECK_INT(cfg.idle_timeout, 1800);
	CHECK_INT(cfg.auth_fail_delay_ms, 2000);
	CHECK_INT(cfg.auth_fail_delay_max_ms, 15000);
	CHECK_INT(cfg.auth_spray_users, 5);
	CHECK_INT(cfg.auth_threads, 2);
	CHECK_INT(cfg.auth_cache_ttl, 600);
	CHECK_INT(cfg.auth_cache_size, 10000);
	CHECK_INT(cfg.delivery_threads, 8);
	CHECK(cfg.search_indexer);
	CHECK_STR(cfg.log_target, "stderr");
	CHECK_STR(cfg.log_level, "info");
	CHECK(cfg.pid_file == NULL);
	CHECK(cfg.metrics_address == NULL);
	CHECK_INT(cfg.max_connections_per_ip, 50);
	CHECK_INT(cfg.max_sessions_per_user, 100);
	CHECK_INT(cfg.max_sessions_per_user_ip, 50);
	CHECK_INT(cfg.max_commands_per_second, 200);
	CHECK_INT(cfg.max_output_buffer, 16 * 1024 * 1024);
	CHECK_INT(cfg.max_search_body_reads, LIMIT_SEARCH_BODY_READS);
	CHECK_INT(cfg.listener_count, 0);
	CHECK(cfg.listeners_defaulted);
	config_free(&cfg);
	config_free(&cfg);	/* safe twice */
}

static void test_empty_file(void)
{
	struct config cfg;
	CHECK_INT(parse(&cfg, "# nothing here\n\n   \n"), 0);
	CHECK_STR(error_text, "");
	CHECK_INT(cfg.workers > 0, 1);
	CHECK(cfg.listeners_defaulted);
	config_free(&cfg);
}

static void test_good_file(void)
{
	struct config cfg;
	const char *text =
		"# postern\n"
		"hostname = mail.example.org   # trailing comment\n"
		"data_dir = /srv/mail\n"
		"passwd_file = \"/etc/postern/pass words\"\n"
		"user = mail\n"
		"workers = 4\n"
		"tls_cert = /etc/ssl/a.pem\n"
		"tls_key = /etc/ssl/a.key\n"
		"tls_min_version = TLSv1.3\n"
		"tls_ciphers = ECDHE-RSA-AES128-GCM-SHA256\n"
		"tls_ciphersuites = TLS_AES_128_GCM_SHA256\n"
		"tls_watch_interval = 0\n"
		"allow_plaintext_auth = YES\r\n"
		"max_line_length = 128K\n"
		"max_literal_size = 1GiB\n"
		"login_timeout = 30\n"
		"idle_timeout=3600\n"
		"auth_failure_delay = 0\n"
		"auth_failure_delay_max = 0\n"
		"auth_spray_threshold = 10\n"
		"auth_threads = 4\n"
		"auth_cache_ttl = 0\n"
		"auth_cache_size = 50\n"
		"delivery_threads = 3\n"
		"search_indexer = no\n"
		"log_target = syslog\n"
		"log_level = debug\n"
		"pid_file = /run/postern.pid\n"
		"[listener imaps]\n"
		"address = *:993\n"
		"[listener imap]\n"
		"  address = 127.0.0.1:143\n"
		"  tls = none\n"
		"[listener lmtp]\n"
		"protocol = lmtp\n"
		"address = unix:/run/postern/lmtp.sock\n"
		"[listener lmtp-net]\n"
		"protocol = lmtp\n"
		"address = *:24\n"
		"trusted_networks = 192.0.2.0/24, 2001:db8::/32 198.51.100.7\n"
		"[ certificate   other ]\n"
		"cert = /etc/ssl/b.pem\n"
		"key = /etc/ssl/b.key\n"
		"[metrics]\n"
		"address = 127.0.0.1:9143\n";

	CHECK_INT(parse(&cfg, text), 0);
	CHECK_STR(error_text, "");
	CHECK_STR(cfg.hostname, "mail.example.org");
	CHECK_STR(cfg.data_dir, "/srv/mail");
	CHECK_STR(cfg.passwd_file, "/etc/postern/pass words");
	CHECK_STR(cfg.user, "mail");
	CHECK_INT(cfg.workers, 4);
	CHECK_STR(cfg.tls_cert, "/etc/ssl/a.pem");
	CHECK_STR(cfg.tls_key, "/etc/ssl/a.key");
	CHECK_INT(cfg.tls_min_version, TLS1_3_VERSION);
	CHECK_STR(cfg.tls_ciphers, "ECDHE-RSA-AES128-GCM-SHA256");
	CHECK_STR(cfg.tls_ciphersuites, "TLS_AES_128_GCM_SHA256");
	CHECK_INT(cfg.tls_watch_interval, 0);
	CHECK(cfg.allow_plaintext_auth);
	CHECK_INT(cfg.max_line_length, 128 * 1024);
	CHECK_INT(cfg.max_literal_size, 1024 * 1024 * 1024);
	CHECK_INT(cfg.login_timeout, 30);
	CHECK_INT(cfg.idle_timeout, 3600);
	CHECK(!cfg.search_indexer);
	CHECK_INT(cfg.auth_fail_delay_ms, 0);
	CHECK_INT(cfg.auth_fail_delay_max_ms, 0);
	CHECK_INT(cfg.auth_spray_users, 10);
	CHECK_INT(cfg.auth_threads, 4);
	CHECK_INT(cfg.auth_cache_ttl, 0);
	CHECK_INT(cfg.auth_cache_size, 50);
	CHECK_INT(cfg.delivery_threads, 3);
	CHECK_STR(cfg.log_target, "syslog");
	CHECK_STR(cfg.log_level, "debug");
	CHECK_STR(cfg.pid_file, "/run/postern.pid");

	CHECK(!cfg.listeners_defaulted);
	CHECK_INT(cfg.listener_count, 4);
	if (cfg.listener_count == 4) {
		const struct config_listener *l = cfg.listeners;
		CHECK_STR(l[0].name, "imaps");
		CHECK_STR(l[0].address, "*:993");
		CHECK_INT(l[0].tls, LISTENER_TLS_IMPLICIT);	/* default for port 993 */
		CHECK_INT(l[0].protocol, LISTENER_PROTO_IMAP);
		CHECK_INT(l[0].addr.ss_family, AF_INET);
		CHECK_INT(ntohs(((const struct sockaddr_in *)&l[0].addr)->sin_port), 993);
		CHECK_INT(l[0].line, 29);
		CHECK_STR(l[1].name, "imap");
		CHECK_INT(l[1].tls, LISTENER_TLS_NONE);
		CHECK_INT(ntohl(((const struct sockaddr_in *)&l[1].addr)->sin_addr.s_addr), 0x7f000001);
		CHECK_STR(l[2].name, "lmtp");
		CHECK_INT(l[2].protocol, LISTENER_PROTO_LMTP);
		CHECK_INT(l[2].tls, LISTENER_TLS_NONE);
		CHECK_STR(l[2].address, "/run/postern/lmtp.sock");
		CHECK_INT(l[2].addr.ss_family, AF_UNIX);
		CHECK_STR(((const struct sockaddr_un *)&l[2].addr)->sun_path, "/run/postern/lmtp.sock");
		CHECK_INT(l[2].trusted_networks.count, 0);
		CHECK_INT(l[3].protocol, LISTENER_PROTO_LMTP);
		CHECK_INT(l[3].trusted_networks.count, 3);
		CHECK(netmask_list_contains(&l[3].trusted_networks, "192.0.2.200"));
		CHECK(netmask_list_contains(&l[3].trusted_networks, "2001:db8:1::5"));
		CHECK(netmask_list_contains(&l[3].trusted_networks, "198.51.100.7"));
		CHECK(!netmask_list_contains(&l[3].trusted_networks, "198.51.100.8"));
	}
	CHECK_INT(cfg.certificate_count, 1);
	if (cfg.certificate_count == 1) {
		CHECK_STR(cfg.certificates[0].name, "other");
		CHECK_STR(cfg.certificates[0].cert_file, "/etc/ssl/b.pem");
		CHECK_STR(cfg.certificates[0].key_file, "/etc/ssl/b.key");
		CHECK_INT(cfg.certificates[0].line, 41);
	}
	CHECK_STR(cfg.metrics_address, "127.0.0.1:9143");
	CHECK_INT(cfg.metrics_addr.ss_family, AF_INET);
	CHECK_INT(cfg.metrics_line, 44);
	config_free(&cfg);
}

static void test_values(void)
{
	struct config cfg;

	/* Quotes keep '#' and spaces; \" and \\ escape. A bare '#' not after
	 * whitespace is part of the value. */
	CHECK_INT(parse(&cfg, "hostname = \"a # b\" # c\nuser = x#y\ntls_ciphers = \"q\\\"\\\\\"\n"), 0);
	CHECK_STR(cfg.hostname, "a # b");
	CHECK_STR(cfg.user, "x#y");
	CHECK_STR(cfg.tls_ciphers, "q\"\\");
	config_free(&cfg);

	static const struct { const char *text; bool value; } bools[] = {
		{ "yes", true }, { "no", false }, { "true", true }, { "false", false },
		{ "on", true }, { "off", false }, { "1", true }, { "0", false }, { "On", true },
	};
	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		char text[64];
		snprintf(text, sizeof(text), "allow_plaintext_auth = %s\n", bools[i].text);
		CHECK_INT(parse(&cfg, text), 0);
		CHECK_INT(cfg.allow_plaintext_auth, bools[i].value);
		config_free(&cfg);
	}

	static const struct { const char *text; int version; } versions[] = {
		{ "1.2", TLS1_2_VERSION }, { "TLSv1.2", TLS1_2_VERSION },
		{ "1.3", TLS1_3_VERSION }, { "TLSv1.3", TLS1_3_VERSION },
	};
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		char text[64];
		snprintf(text, sizeof(text), "tls_min_version = %s\n", versions[i].text);
		CHECK_INT(parse(&cfg, text), 0);
		CHECK_INT(cfg.tls_min_version, versions[i].version);
		config_free(&cfg);
	}

	CHECK_INT(parse(&cfg, "workers = 1\nmax_line_length = 1024\nmax_literal_size = 3M\npid_file =\n"), 0);
	CHECK_INT(cfg.workers, 1);
	CHECK_INT(cfg.max_line_length, 1024);
	CHECK_INT(cfg.max_literal_size, 3 * 1024 * 1024);
	CHECK(cfg.pid_file == NULL);
	config_free(&cfg);

	CHECK_INT(parse(&cfg, "workers = 256\n"), 0);
	CHECK_INT(cfg.workers, 256);
	config_free(&cfg);
}

/* One problem per file, exact messages. */
static void test_bad_lines(void)
{
	static const struct { const char *text, *error; } cases[] = {
		{ "tls_certs = /x\n",
		  "t.conf:1: unknown key 'tls_certs' (did you mean 'tls_cert'?)\n" },
		{ "# c\nwrokers = 2\n",
		  "t.conf:2: unknown key 'wrokers' (did you mean 'workers'?)\n" },
		{ "frobnicate = 2\n", "t.conf:1: unknown key 'frobnicate'\n" },
		{ "[listener a]\naddress = *:143\nadress = x\n",
		  "t.conf:3: unknown key 'adress' (did you mean 'address'?)\n" },
		{ "[listener a]\naddress = *:143\nflavour = x\n",
		  "t.conf:3: unknown key 'flavour' in [listener]\n" },
		{ "[listener a]\naddress = *:143\nworkers = 2\n",
		  "t.conf:3: 'workers' is a global key: put it before the first section\n" },
		{ "allow_plaintext_auth = maybe\n",
		  "t.conf:1: 'allow_plaintext_auth' must be yes or no (or true/false, on/off, 1/0), not 'maybe'\n" },
		{ "workers = many\n", "t.conf:1: 'workers' needs a whole number, not 'many'\n" },
		{ "workers = 4x\n", "t.conf:1: 'workers' needs a whole number, not '4x'\n" },
		{ "workers = 0\n", "t.conf:1: 'workers' must be between 1 and 256 (got 0)\n" },
		{ "workers = 257\n", "t.conf:1: 'workers' must be between 1 and 256 (got 257)\n" },
		{ "workers = 99999999999999999999999\n",
		  "t.conf:1: 'workers' needs a whole number, not '99999999999999999999999'\n" },
		{ "login_timeout = 0\n", "t.conf:1: 'login_timeout' must be at least 1 (got 0)\n" },
		{ "auth_cache_ttl = 86401\n", "t.conf:1: 'auth_cache_ttl' must be between 0 and 86400 (got 86401)\n" },
		{ "auth_cache_ttl = 10m\n", "t.conf:1: 'auth_cache_ttl' needs a whole number, not '10m'\n" },
		{ "auth_cache_size = 0\n", "t.conf:1: 'auth_cache_size' must be between 1 and 1000000 (got 0)\n" },
		{ "idle_timeout = -5\n", "t.conf:1: 'idle_timeout' must not be negative (got -5)\n" },
		{ "max_line_length = 10\n",
		  "t.conf:1: 'max_line_length' must be between 1024 and 1073741824 (got 10)\n" },
		{ "max_literal_size = 12Q\n",
		  "t.conf:1: 'max_literal_size' needs a size such as 65536, 64K or 1M, not '12Q'\n" },
		{ "hostname mail.example.org\n", "t.conf:1: expected 'key = value', missing '='\n" },
		{ " = x\n", "t.conf:1: missing key before '='\n" },
		{ "hostname =\n", "t.conf:1: 'hostname' needs a value\n" },
		{ "hostname = \"abc\n", "t.conf:1: unterminated quoted value\n" },
		{ "hostname = \"abc\" def\n", "t.conf:1: unexpected text after the quoted value\n" },
		{ "[server main]\nfoo = 1\n",
		  "t.conf:1: unknown section type 'server' (expected listener, certificate or metrics)\n" },
		{ "[listner a]\n", "t.conf:1: unknown section type 'listner' (did you mean 'listener'?)\n" },
		{ "[listener a\naddress = *:1\n", "t.conf:1: section header without closing ']'\n" },
		{ "[listener a] x\n", "t.conf:1: unexpected text after ']'\n" },
		{ "[listener]\n", "t.conf:1: [listener] needs a name: [listener NAME]\n" },
		{ "[listener a b]\n",
		  "t.conf:1: listener name 'a b' may only hold letters, digits, '.', '_' and '-'\n" },
		{ "[metrics x]\n", "t.conf:1: [metrics] takes no name\n" },
		{ "max_output_buffer = 1K\n", "t.conf:1: 'max_output_buffer' must be between 65536 and 1073741824 (got 1024)\n" },
		{ "max_connections_per_ip = -1\n", "t.conf:1: 'max_connections_per_ip' must not be negative (got -1)\n" },
		{ "[metrics]\naddress = 1.2.3.4\n",
		  "t.conf:2: [metrics]: bad address '1.2.3.4': expected HOST:PORT\n" },
		{ "[metrics]\naddress = *:9000\n[metrics]\naddress = *:9001\n",
		  "t.conf:3: duplicate [metrics] section (first on line 1)\n" },
		{ "[listener a]\naddress = *:143\n[listener a]\naddress = *:144\n",
		  "t.conf:3: duplicate listener name 'a' (first on line 1)\n" },
		{ "[certificate a]\ncert = /c\nkey = /k\n[certificate a]\ncert = /c\nkey = /k\n",
		  "t.conf:4: duplicate certificate name 'a' (first on line 1)\n" },
		{ "[certificate a]\ncert = /c\n", "t.conf:1: certificate 'a' has no key\n" },
		{ "[certificate a]\nkey = /k\n", "t.conf:1: certificate 'a' has no cert\n" },
		{ "workers = 2\nworkers = 3\n", "t.conf:2: duplicate key 'workers' (first set on line 1)\n" },
		{ "[listener a]\naddress = *:143\ntls = none\ntls = none\n",
		  "t.conf:4: duplicate key 'tls' (first set on line 3)\n" },
		{ "# x\n[listener a]\ntls = none\n", "t.conf:2: listener 'a' has no address\n" },
		{ "[listener a]\naddress = mail.example.org:143\n",
		  "t.conf:2: listener 'a': bad address 'mail.example.org:143': "
		  "host must be an IPv4 address, [IPv6 address] or *\n" },
		{ "[listener a]\naddress = 1.2.3.4:0\n",
		  "t.conf:2: listener 'a': bad address '1.2.3.4:0': port must be between 1 and 65535\n" },
		{ "[listener a]\naddress = 1.2.3.4:imap\n",
		  "t.conf:2: listener 'a': bad address '1.2.3.4:imap': port must be a number\n" },
		{ "[listener a]\naddress = ::1:143\n",
		  "t.conf:2: listener 'a': bad address '::1:143': an IPv6 address must be written in brackets: [::1]:143\n" },
		{ "[listener a]\naddress = [::1:143\n",
		  "t.conf:2: listener 'a': bad address '[::1:143': missing ']' after the IPv6 address\n" },
		{ "[listener a]\naddress = [1.2.3.4]:143\n",
		  "t.conf:2: listener 'a': bad address '[1.2.3.4]:143': not an IPv6 address\n" },
		{ "[listener a]\naddress = :143\n",
		  "t.conf:2: listener 'a': bad address ':143': missing host before the port (use * for every address)\n" },
		{ "[listener a]\naddress = unix:/run/x.sock\n",
		  "t.conf:2: listener 'a': unix sockets are only for protocol = lmtp\n" },
		{ "[listener a]\nprotocol = lmtp\naddress = unix:\n",
		  "t.conf:3: listener 'a': bad address 'unix:': missing path after unix:\n" },
		{ "[listener a]\ntls = starttls\nprotocol = lmtp\naddress = 127.0.0.1:24\n",
		  "t.conf:2: listener 'a': protocol lmtp supports only tls = none\n" },
		{ "[listener a]\nprotocol = lmtp\naddress = *:24\n",
		  "t.conf:3: listener 'a': protocol lmtp on '*:24' would accept mail for every user from anyone "
		  "who can connect; list the MTAs allowed in trusted_networks (for example trusted_networks = "
		  "192.0.2.25, 2001:db8::/64) or listen on loopback or a unix socket\n" },
		{ "[listener a]\nprotocol = lmtp\naddress = [2001:db8::1]:24\n",
		  "t.conf:3: listener 'a': protocol lmtp on '[2001:db8::1]:24' would accept mail for every user "
		  "from anyone who can connect; list the MTAs allowed in trusted_networks (for example "
		  "trusted_networks = 192.0.2.25, 2001:db8::/64) or listen on loopback or a unix socket\n" },
		{ "[listener a]\naddress = *:143\ntrusted_networks = 10.0.0.0/8\n",
		  "t.conf:3: listener 'a': trusted_networks is only for protocol = lmtp\n" },
		{ "[listener a]\nprotocol = lmtp\naddress = unix:/run/l.sock\ntrusted_networks = 10.0.0.0/8\n",
		  "t.conf:4: listener 'a': trusted_networks is for TCP addresses; a unix socket is guarded by "
		  "its file permissions\n" },
		{ "[listener a]\nprotocol = lmtp\naddress = *:24\ntrusted_networks = 10.0.0.1/8\n",
		  "t.conf:4: 'trusted_networks': '10.0.0.1/8': address has bits set past the prefix length\n" },
		{ "[listener a]\nprotocol = lmtp\naddress = *:24\ntrusted_networks = 10.0.0.0/8, mx.example\n",
		  "t.conf:4: 'trusted_networks': 'mx.example': not an IPv4 or IPv6 address\n" },
		{ "[listener a]\nprotocol = lmtp\naddress = *:24\ntrusted_networks = ::/129\n",
		  "t.conf:4: 'trusted_networks': '::/129': prefix length must be 0 to 128\n" },
		{ "[listener a]\naddress = *:143\ntls = yes\n",
		  "t.conf:3: 'tls' must be implicit, starttls or none, not 'yes'\n" },
		{ "[listener a]\naddress = *:143\nprotocol = pop3\n",
		  "t.conf:3: 'protocol' must be imap or lmtp, not 'pop3'\n" },
		{ "tls_min_version = 1.1\n", "t.conf:1: 'tls_min_version' must be 1.2 or 1.3, not '1.1'\n" },
		{ "tls_min_version = TLSv1.0\n",
		  "t.conf:1: 'tls_min_version' must be 1.2 or 1.3, not 'TLSv1.0'\n" },
		{ "log_target = file\n", "t.conf:1: 'log_target' must be stderr or syslog, not 'file'\n" },
		{ "log_level = loud\n",
		  "t.conf:1: 'log_level' must be debug, info, warn or error, not 'loud'\n" },
		{ "auth_failure_delay = 5000\nauth_failure_delay_max = 1000\n",
		  "t.conf:2: auth_failure_delay_max (1000) is less than auth_failure_delay (5000)\n" },
		{ "[listener a]\naddress = 0.0.0.0:143\n[listener b]\naddress = 0.0.0.0:143\n",
		  "t.conf:3: listener 'b' uses the same address 0.0.0.0:143 as listener 'a' (line 1)\n" },
		{ "[listener a]\naddress = *:143\n[listener b]\naddress = 127.0.0.1:143\n",
		  "t.conf:3: listener 'b' (127.0.0.1:143) overlaps listener 'a' (*:143, line 1) on the same port\n" },
		{ "[listener a]\naddress = [::]:143\n[listener b]\naddress = [0::0]:143\n",
		  "t.conf:3: listener 'b' uses the same address [0::0]:143 as listener 'a' (line 1)\n" },
		{ "[listener a]\nprotocol = lmtp\naddress = unix:/s\n"
		  "[listener b]\nprotocol = lmtp\naddress = unix:/s\n",
		  "t.conf:4: listener 'b' uses the same address /s as listener 'a' (line 1)\n" },
		{ "[listener a]\naddress = 127.0.0.1:9100\n[metrics]\naddress = 127.0.0.1:9100\n",
		  "t.conf:3: [metrics] address 127.0.0.1:9100 clashes with listener 'a' (line 1)\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config cfg;
		int ret = parse(&cfg, cases[i].text);
		if (ret != -1 || strcmp(error_text, cases[i].error) != 0)
			fprintf(stderr, "case %zu: %s", i, cases[i].text);
		CHECK_INT(ret, -1);
		CHECK_STR(error_text, cases[i].error);
		config_free(&cfg);
	}
}

static void test_nul_byte(void)
{
	struct config cfg;
	struct buf errors = BUF_INIT;
	char path[] = "/tmp/postern-conf-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK_INT(write(fd, "workers = 2\nuser = a\0b\n", 23), 23);
	close(fd);
	CHECK_INT(config_load(&cfg, path, &errors), -1);
	char expected[128];
	snprintf(expected, sizeof(expected), "%s:2: NUL byte in line\n", path);
	CHECK_STR(errors.data, expected);
	CHECK_INT(cfg.workers, 2);
	buf_free(&errors);
	config_free(&cfg);
	unlink(path);
}

static void test_many_problems(void)
{
	struct config cfg;
	const char *text =
		"workers = 0\n"
		"tls_cert = /ok.pem\n"
		"bogus\n"
		"tls_min_version = 1.0\n"
		"tls_min_version = 1.3\n"
		"[listener a]\n"
		"address = 1.2.3.4:99999\n"
		"tls = sometimes\n"
		"[weird x]\n"
		"anything = goes\n"
		"[listener b]\n";

	CHECK_INT(parse(&cfg, text), -1);
	CHECK_STR(error_text,
		  "t.conf:1: 'workers' must be between 1 and 256 (got 0)\n"
		  "t.conf:3: expected 'key = value', missing '='\n"
		  "t.conf:4: 'tls_min_version' must be 1.2 or 1.3, not '1.0'\n"
		  "t.conf:5: duplicate key 'tls_min_version' (first set on line 4)\n"
		  "t.conf:8: 'tls' must be implicit, starttls or none, not 'sometimes'\n"
		  "t.conf:7: listener 'a': bad address '1.2.3.4:99999': port must be between 1 and 65535\n"
		  "t.conf:9: unknown section type 'weird' (expected listener, certificate or metrics)\n"
		  "t.conf:11: listener 'b' has no address\n");
	/* The good lines still took effect. */
	CHECK_STR(cfg.tls_cert, "/ok.pem");
	config_free(&cfg);
}

static void test_ipv6_addresses(void)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	const char *error = NULL;
	char text[INET6_ADDRSTRLEN];

	CHECK_INT(config_parse_address("[::1]:143", &ss, &len, &error), 0);
	CHECK_INT(ss.ss_family, AF_INET6);
	CHECK_INT(len, sizeof(struct sockaddr_in6));
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
	CHECK_INT(ntohs(sin6->sin6_port), 143);
	CHECK(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));

	CHECK_INT(config_parse_address("[2001:db8::25]:993", &ss, &len, &error), 0);
	inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&ss)->sin6_addr, text, sizeof(text));
	CHECK_STR(text, "2001:db8::25");

	CHECK_INT(config_parse_address("[::ffff:192.0.2.1]:143", &ss, &len, &error), 0);
	CHECK_INT(config_parse_address("[::]:1", &ss, &len, &error), 0);
	CHECK(IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&ss)->sin6_addr));

	CHECK_INT(config_parse_address("*:143", &ss, &len, &error), 0);
	CHECK_INT(ss.ss_family, AF_INET);
	CHECK_INT(len, sizeof(struct sockaddr_in));

	CHECK_INT(config_parse_address("[::1]143", &ss, &len, &error), -1);
	CHECK_STR(error, "expected ':PORT' after ']'");
	CHECK_INT(config_parse_address("[fe80::1%eth0]:143", &ss, &len, &error), -1);
	CHECK_STR(error, "not an IPv6 address");
	CHECK_INT(config_parse_address("[]:143", &ss, &len, &error), -1);
	CHECK_INT(config_parse_address("1.2.3.4:65536", &ss, &len, &error), -1);
	CHECK_INT(config_parse_address("1.2.3.4:+1", &ss, &len, &error), -1);
	CHECK_INT(config_parse_address("1.2.3:143", &ss, &len, &error), -1);

	/* IPv4 and IPv6 wildcards on one port do not clash (IPV6_V6ONLY). */
	struct config cfg;
	CHECK_INT(parse(&cfg, "[listener a]\naddress = *:143\n[listener b]\naddress = [::]:143\n"
			      "[listener c]\naddress = [::1]:144\n"), 0);
	CHECK_STR(error_text, "");
	CHECK_INT(cfg.listener_count, 3);
	if (cfg.listener_count == 3)
		CHECK_STR(cfg.listeners[2].address, "[::1]:144");
	config_free(&cfg);
}

static void test_default_listeners(void)
{
	struct config cfg;

	config_init_defaults(&cfg);
	config_add_default_listeners(&cfg, false);
	CHECK_INT(cfg.listener_count, 2);
	CHECK(cfg.listeners_defaulted);
	if (cfg.listener_count == 2) {
		CHECK_STR(cfg.listeners[0].name, "imap");
		CHECK_STR(cfg.listeners[0].address, "0.0.0.0:143");
		CHECK_INT(cfg.listeners[0].tls, LISTENER_TLS_STARTTLS);
		CHECK_INT(cfg.listeners[0].addr.ss_family, AF_INET);
		CHECK_STR(cfg.listeners[1].name, "imaps");
		CHECK_STR(cfg.listeners[1].address, "0.0.0.0:993");
		CHECK_INT(cfg.listeners[1].tls, LISTENER_TLS_IMPLICIT);
		CHECK_INT(ntohs(((const struct sockaddr_in *)&cfg.listeners[1].addr)->sin_port), 993);
	}
	config_add_default_listeners(&cfg, true);	/* already has listeners: no-op */
	CHECK_INT(cfg.listener_count, 2);
	config_free(&cfg);

	config_init_defaults(&cfg);
	config_add_default_listeners(&cfg, true);
	CHECK_INT(cfg.listener_count, 4);
	if (cfg.listener_count == 4) {
		CHECK_STR(cfg.listeners[2].name, "imap-v6");
		CHECK_STR(cfg.listeners[2].address, "[::]:143");
		CHECK_INT(cfg.listeners[2].tls, LISTENER_TLS_STARTTLS);
		CHECK_INT(cfg.listeners[2].addr.ss_family, AF_INET6);
		CHECK_STR(cfg.listeners[3].name, "imaps-v6");
		CHECK_INT(cfg.listeners[3].tls, LISTENER_TLS_IMPLICIT);
		CHECK_INT(cfg.listeners[3].addr_len, sizeof(struct sockaddr_in6));
	}
	config_free(&cfg);

	CHECK_INT(parse(&cfg, "[listener only]\naddress = 127.0.0.1:1143\n"), 0);
	config_add_default_listeners(&cfg, true);
	CHECK_INT(cfg.listener_count, 1);
	CHECK(!cfg.listeners_defaulted);
	config_free(&cfg);

	int v6 = config_ipv6_available();
	CHECK(v6 == 0 || v6 == 1);
	printf("     (IPv6 available here: %s)\n", v6 ? "yes" : "no");
}

static void test_relative_paths(void)
{
	struct config cfg;
	struct buf errors = BUF_INIT;

	CHECK_INT(config_parse_text(&cfg, "/etc/postern/postern.conf",
				    "tls_cert = tls/cert.pem\ntls_key = ./tls/key.pem\n"
				    "data_dir = /abs/data\npasswd_file = passwd\npid_file = ../run/p.pid\n"
				    "[certificate b]\ncert = b.pem\nkey = /k/b.key\n"
				    "[listener lmtp]\nprotocol = lmtp\naddress = unix:lmtp.sock\n", &errors), 0);
	CHECK(errors.len == 0);
	CHECK_STR(cfg.tls_cert, "/etc/postern/tls/cert.pem");
	CHECK_STR(cfg.tls_key, "/etc/postern/tls/key.pem");
	CHECK_STR(cfg.data_dir, "/abs/data");
	CHECK_STR(cfg.passwd_file, "/etc/postern/passwd");
	CHECK_STR(cfg.pid_file, "/etc/postern/../run/p.pid");
	CHECK_STR(cfg.certificates[0].cert_file, "/etc/postern/b.pem");
	CHECK_STR(cfg.certificates[0].key_file, "/k/b.key");
	CHECK_STR(cfg.listeners[0].address, "/etc/postern/lmtp.sock");
	config_free(&cfg);

	/* A real file: the base is the file's directory, made absolute. */
	char dir[] = "/tmp/postern-conf-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char *real = realpath(dir, NULL);
	char path[256], expected[512];
	snprintf(path, sizeof(path), "%s/postern.conf", dir);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f != NULL) {
		fputs("tls_cert = cert.pem\n", f);
		fclose(f);
	}
	CHECK_INT(config_load(&cfg, path, &errors), 0);
	snprintf(expected, sizeof(expected), "%s/cert.pem", real);
	CHECK_STR(cfg.tls_cert, expected);
	CHECK_STR(cfg.path, path);
	config_free(&cfg);
	free(real);
	unlink(path);
	rmdir(dir);
	buf_free(&errors);
}

static void test_load_missing(void)
{
	struct config cfg;
	struct buf errors = BUF_INIT;

	CHECK_INT(config_load(&cfg, "/nonexistent/postern.conf", &errors), -1);
	CHECK_STR(errors.data, "/nonexistent/postern.conf: No such file or directory\n");
	config_free(&cfg);
	buf_free(&errors);
}

/* config check points at the line of each key it finds a problem with. */
/* [metrics] without an address serves on loopback port 9143; the limit
 * keys parse and 0 turns a limit off. */
static void test_metrics_default_and_limits(void)
{
	struct config cfg;
	CHECK_INT(parse(&cfg, "max_connections_per_ip = 0\nmax_sessions_per_user = 3\n"
			      "max_sessions_per_user_ip = 2\nmax_commands_per_second = 10\n"
			      "max_output_buffer = 1M\nmax_search_body_reads = 7\n[metrics]\n"), 0);
	CHECK_STR(error_text, "");
	CHECK_STR(cfg.metrics_address, "127.0.0.1:9143");
	CHECK_INT(cfg.metrics_addr.ss_family, AF_INET);
	CHECK_INT(ntohs(((struct sockaddr_in *)&cfg.metrics_addr)->sin_port), 9143);
	CHECK_INT(cfg.max_connections_per_ip, 0);
	CHECK_INT(cfg.max_sessions_per_user, 3);
	CHECK_INT(cfg.max_sessions_per_user_ip, 2);
	CHECK_INT(cfg.max_commands_per_second, 10);
	CHECK_INT(cfg.max_output_buffer, 1024 * 1024);
	CHECK_INT(cfg.max_search_body_reads, 7);
	config_free(&cfg);
	CHECK_INT(parse(&cfg, "log_target = syslog\n"), 0);
	CHECK_STR(cfg.log_target, "syslog");
	config_free(&cfg);
}

static void test_key_lines(void)
{
	struct config cfg;

	CHECK_INT(parse(&cfg, "# comment\ndata_dir = /d\n\ntls_cert = /c\n"
			"[listener a]\ntls = none\naddress = 127.0.0.1:1143\n"
			"[certificate x]\nkey = /k\ncert = /x\n"), 0);
	CHECK_INT(config_key_line(&cfg, "data_dir"), 2);
	CHECK_INT(config_key_line(&cfg, "tls_cert"), 4);
	CHECK_INT(config_key_line(&cfg, "tls_key"), 0);
	CHECK_INT(config_key_line(&cfg, "address"), 0);
	CHECK_INT(config_key_line(&cfg, "no_such_key"), 0);
	CHECK_INT(cfg.listeners[0].address_line, 7);
	CHECK_INT(cfg.certificates[0].key_line, 9);
	CHECK_INT(cfg.certificates[0].cert_line, 10);
	config_free(&cfg);
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_empty_file);
	RUN(test_good_file);
	RUN(test_values);
	RUN(test_bad_lines);
	RUN(test_nul_byte);
	RUN(test_many_problems);
	RUN(test_ipv6_addresses);
	RUN(test_default_listeners);
	RUN(test_relative_paths);
	RUN(test_load_missing);
	RUN(test_key_lines);
	RUN(test_metrics_default_and_limits);
	return harness_finish();
}
