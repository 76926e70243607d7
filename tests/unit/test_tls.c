/* Tests for net/tls: certificates are made at test time (the openssl
 * command line for good ones, the X509 API for ones with chosen dates) in a
 * mkdtemp directory; handshakes run in this process over socketpairs. */
#include "net/tls.h"

#include "core/log.h"
#include "core/xalloc.h"

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/postern-tls-XXXXXX";
static bool have_certs;

static char *path_in(const char *name)
{
	static char paths[8][512];
	static int next;
	char *p = paths[next++ % 8];
	snprintf(p, 512, "%s/%s", dir, name);
	return p;
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int run(const char *fmt, ...)
{
	char command[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(command, sizeof(command), fmt, ap);
	va_end(ap);
	return system(command);
}

/* openssl req -x509: a self-signed certificate valid for 30 days. */
static bool make_cert_cli(const char *base, const char *newkey, const char *cn, const char *san)
{
	return run("openssl req -x509 -newkey %s -nodes -keyout %s/%s.key -out %s/%s.pem -days 30 "
		   "-subj '/CN=%s' -addext 'subjectAltName=%s' >/dev/null 2>&1",
		   newkey, dir, base, dir, base, cn, san) == 0;
}

/* A self-signed EC certificate with exactly the dates given ("YYYYMMDDHHMMSSZ"). */
static bool make_cert_dated(const char *base, const char *not_before, const char *not_after)
{
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	FILE *f;
	bool ok = pkey != NULL && x != NULL;

	ok = ok && X509_set_version(x, 2) == 1;
	ok = ok && ASN1_INTEGER_set(X509_get_serialNumber(x), 42) == 1;
	name = ok ? X509_get_subject_name(x) : NULL;
	ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					      (const unsigned char *)"dated.example.com", -1, -1, 0) == 1;
	ok = ok && X509_set_issuer_name(x, name) == 1;
	ok = ok && ASN1_TIME_set_string_X509(X509_getm_notBefore(x), not_before) == 1;
	ok = ok && ASN1_TIME_set_string_X509(X509_getm_notAfter(x), not_after) == 1;
	ok = ok && X509_set_pubkey(x, pkey) == 1;
	ok = ok && X509_sign(x, pkey, EVP_sha256()) > 0;
	if (ok) {
		f = fopen(path_in(base), "w");
		ok = f != NULL && PEM_write_X509(f, x) == 1;
		if (f != NULL)
			fclose(f);
	}
	if (ok) {
		char key[256];
		snprintf(key, sizeof(key), "%s.key", base);
		f = fopen(path_in(key), "w");
		ok = f != NULL && PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) == 1;
		if (f != NULL)
			fclose(f);
	}
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ok;
}

static void setup(void)
{
	const char *ec = "ec -pkeyopt ec_paramgen_curve:prime256v1";

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	have_certs = make_cert_cli("default", ec, "default.example.com", "DNS:default.example.com") &&
		     make_cert_cli("mail", "rsa:2048", "mail.example.org",
				   "DNS:mail.example.org,DNS:imap.example.org") &&
		     make_cert_cli("wild", ec, "*.example.net", "DNS:*.example.net") &&
		     make_cert_cli("exact", ec, "exact.example.net", "DNS:exact.example.net") &&
		     run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 "
			 "-out %s/other.key >/dev/null 2>&1", dir) == 0 &&
		     make_cert_dated("expired.pem", "20200101000000Z", "20210101000000Z") &&
		     make_cert_dated("future.pem", "20990101000000Z", "21000101000000Z") &&
		     run("echo 'hello, not a certificate' > %s/garbage.pem", dir) == 0;
	if (!have_certs) {
		fprintf(stderr, "cannot create test certificates with the openssl command\n");
		exit(1);
	}
}

static void teardown(void)
{
	run("rm -rf '%s'", dir);
}

static void base_config(struct config *cfg, const char *cert, const char *key)
{
	config_init_defaults(cfg);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	cfg->tls_cert = xstrdup(path_in(cert));
	cfg->tls_key = xstrdup(path_in(key));
}

static void add_certificate(struct config *cfg, const char *name, const char *cert, const char *key)
{
	cfg->certificates = realloc(cfg->certificates, (cfg->certificate_count + 1) * sizeof(*cfg->certificates));
	struct config_certificate *c = &cfg->certificates[cfg->certificate_count++];
	memset(c, 0, sizeof(*c));
	c->name = xstrdup(name);
	c->cert_file = xstrdup(path_in(cert));
	c->key_file = xstrdup(path_in(key));
}

/* Expects tls_server_new to fail with exactly `expected`. */
static void expect_errors(const struct config *cfg, const char *expected)
{
	struct buf errors = BUF_INIT;
	struct tls_server *server = tls_server_new(cfg, &errors);
	CHECK(server == NULL);
	CHECK_STR(errors.data, expected);
	tls_server_unref(&server);
	buf_free(&errors);
}

struct handshake {
	int client_min, client_max;	/* 0: library defaults */
	const char *sni;
	bool ok;
	int version;			/* negotiated, when ok */
	char peer_cn[128];		/* subject CN the client saw */
	int server_reason;		/* ERR_GET_REASON of the server's failure */
};

static void peer_cn(SSL *client, char *text, size_t size)
{
	X509 *peer = SSL_get1_peer_certificate(client);
	text[0] = '\0';
	if (peer != NULL) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, text, (int)size);
		X509_free(peer);
	}
}

static bool step(SSL *ssl, bool *done, int *reason_r)
{
	int rc;

	if (*done)
		return true;
	ERR_clear_error();
	rc = SSL_do_handshake(ssl);
	if (rc == 1) {
		*done = true;
		return true;
	}
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return true;
	default:
		if (reason_r != NULL)
			*reason_r = ERR_GET_REASON(ERR_peek_error());
		ERR_clear_error();
		return false;
	}
}

/* A client and a server SSL, both non-blocking, stepped in turn. */
static void handshake(struct tls_server *server, struct handshake *h)
{
	int sv[2];
	SSL_CTX *cctx = NULL;
	SSL *s = NULL, *c = NULL;
	bool s_done = false, c_done = false;

	h->ok = false;
	h->peer_cn[0] = '\0';
	h->server_reason = 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) {
		CHECK(!"socketpair");
		return;
	}
	s = tls_server_new_ssl(server, sv[0]);
	cctx = SSL_CTX_new(TLS_client_method());
	CHECK(s != NULL && cctx != NULL);
	if (s == NULL || cctx == NULL)
		goto out;
	if (h->client_max != 0 && h->client_max < TLS1_2_VERSION) {
		/* Let the client offer what OpenSSL 3 otherwise refuses to. */
		SSL_CTX_set_security_level(cctx, 0);
		CHECK(SSL_CTX_set_cipher_list(cctx, "DEFAULT:@SECLEVEL=0") == 1);
	}
	if (h->client_min != 0)
		CHECK(SSL_CTX_set_min_proto_version(cctx, h->client_min) == 1);
	if (h->client_max != 0)
		CHECK(SSL_CTX_set_max_proto_version(cctx, h->client_max) == 1);
	c = SSL_new(cctx);
	CHECK(c != NULL);
	if (c == NULL)
		goto out;
	CHECK(SSL_set_fd(c, sv[1]) == 1);
	SSL_set_connect_state(c);
	if (h->sni != NULL)
		CHECK(SSL_set_tlsext_host_name(c, h->sni) == 1);

	for (int i = 0; i < 100 && !(s_done && c_done); i++) {
		if (!step(c, &c_done, NULL))
			break;
		if (!step(s, &s_done, &h->server_reason))
			break;
	}
	h->ok = s_done && c_done;
	if (h->ok) {
		h->version = SSL_version(c);
		peer_cn(c, h->peer_cn, sizeof(h->peer_cn));
	}
out:
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
	close(sv[0]);
	close(sv[1]);
	ERR_clear_error();
}

static void test_version_names(void)
{
	CHECK_STR(tls_version_name(TLS1_2_VERSION), "TLSv1.2");
	CHECK_STR(tls_version_name(TLS1_3_VERSION), "TLSv1.3");
	CHECK_STR(tls_version_name(TLS1_1_VERSION), "TLSv1.1");
	CHECK_STR(tls_version_name(12345), "unknown");
}

static void test_valid_certificate(void)
{
	struct config cfg;
	struct buf errors = BUF_INIT;
	struct tls_cert_info info;

	base_config(&cfg, "default.pem", "default.key");
	struct tls_server *server = tls_server_new(&cfg, &errors);
	CHECK(server != NULL);
	CHECK(errors.len == 0);
	if (server != NULL) {
		CHECK_INT(tls_server_cert_count(server), 1);
		tls_server_cert_info(server, 0, &info);
		CHECK_STR(info.name, "default");
		CHECK_STR(info.cert_file, cfg.tls_cert);
		CHECK_STR(info.subject, "default.example.com");
		long long days = ((long long)info.not_after - (long long)time(NULL)) / 86400;
		CHECK(days >= 29 && days <= 30);
	}
	tls_server_unref(&server);
	CHECK(server == NULL);
	tls_server_unref(&server);	/* NULL is fine */

	/* RSA works as well as EC. */
	config_free(&cfg);
	base_config(&cfg, "mail.pem", "mail.key");
	server = tls_server_new(&cfg, &errors);
	CHECK(server != NULL);
	CHECK(errors.len == 0);
	tls_server_unref(&server);
	config_free(&cfg);
	buf_free(&errors);
}

static void test_file_errors(void)
{
	struct config cfg;
	char expected[2048];

	base_config(&cfg, "missing.pem", "default.key");
	snprintf(expected, sizeof(expected), "tls_cert %s: No such file or directory\n", cfg.tls_cert);
	expect_errors(&cfg, expected);
	config_free(&cfg);

	base_config(&cfg, "default.pem", "missing.key");
	snprintf(expected, sizeof(expected), "tls_key %s: No such file or directory\n", cfg.tls_key);
	expect_errors(&cfg, expected);
	config_free(&cfg);

	base_config(&cfg, "garbage.pem", "default.key");
	snprintf(expected, sizeof(expected), "tls_cert %s: not a PEM certificate\n", cfg.tls_cert);
	expect_errors(&cfg, expected);
	config_free(&cfg);

	/* A certificate where the key should be. */
	base_config(&cfg, "default.pem", "default.pem");
	snprintf(expected, sizeof(expected),
		 "tls_key %s: not a PEM private key (or encrypted with a passphrase, which postern cannot use)\n",
		 cfg.tls_key);
	expect_errors(&cfg, expected);
	config_free(&cfg);

	base_config(&cfg, "default.pem", "other.key");
	snprintf(expected, sizeof(expected), "tls_key %s: does not match the certificate tls_cert %s\n",
		 cfg.tls_key, cfg.tls_cert);
	expect_errors(&cfg, expected);
	config_free(&cfg);

	/* An RSA key for an EC certificate: a different key type. */
	base_config(&cfg, "default.pem", "mail.key");
	snprintf(expected, sizeof(expected), "tls_key %s: does not match the certificate tls_cert %s\n",
		 cfg.tls_key, cfg.tls_cert);
	expect_errors(&cfg, expected);
	config_free(&cfg);

	base_config(&cfg, "expired.pem", "expired.pem.key");
	snprintf(expected, sizeof(expected), "tls_cert %s: certificate expired on 2021-01-01 (notAfter)\n",
		 cfg.tls_cert);
	expect_errors(&cfg, expected);
	config_free(&cfg);

	base_config(&cfg, "future.pem", "future.pem.key");
	snprintf(expected, sizeof(expected),
		 "tls_cert %s: certificate not valid before 2099-01-01 (notBefore)\n", cfg.tls_cert);
	expect_errors(&cfg, expected);
	config_free(&cfg);
}

static void test_every_problem_reported(void)
{
	struct config cfg;
	char expected[4096];

	base_config(&cfg, "missing.pem", "default.key");
	add_certificate(&cfg, "ok", "mail.pem", "mail.key");
	add_certificate(&cfg, "bad", "wild.pem", "other.key");
	add_certificate(&cfg, "old", "expired.pem", "default.key");
	snprintf(expected, sizeof(expected),
		 "tls_cert %s: No such file or directory\n"
		 "[certificate bad] key %s: does not match the certificate [certificate bad] cert %s\n"
		 "[certificate old] key %s: does not match the certificate [certificate old] cert %s\n"
		 "[certificate old] cert %s: certificate expired on 2021-01-01 (notAfter)\n",
		 cfg.tls_cert, cfg.certificates[1].key_file, cfg.certificates[1].cert_file,
		 cfg.certificates[2].key_file, cfg.certificates[2].cert_file, cfg.certificates[2].cert_file);
	expect_errors(&cfg, expected);
	config_free(&cfg);
}

static void test_policy_errors(void)
{
	struct config cfg;

	base_config(&cfg, "default.pem", "default.key");
	free(cfg.tls_ciphers);
	cfg.tls_ciphers = xstrdup("NOT-A-CIPHER");
	expect_errors(&cfg, "tls_ciphers 'NOT-A-CIPHER': no cipher match\n");
	config_free(&cfg);

	base_config(&cfg, "default.pem", "default.key");
	free(cfg.tls_ciphersuites);
	cfg.tls_ciphersuites = xstrdup("TLS_NOPE");
	expect_errors(&cfg, "tls_ciphersuites 'TLS_NOPE': no cipher match\n");
	config_free(&cfg);
}

/* As root a chmod 000 file is still readable, so the check then runs in a
 * child that has become "nobody" (the mkdtemp directory is 0700, so the
 * file cannot be opened either way). */
static void test_unreadable(void)
{
	struct config cfg;
	char expected[1024];
	const char *file = path_in("unreadable.pem");

	CHECK(run("cp %s %s && chmod 000 %s", path_in("default.pem"), file, file) == 0);
	base_config(&cfg, "unreadable.pem", "default.key");

	if (geteuid() != 0) {
		struct passwd *pw = getpwuid(geteuid());
		snprintf(expected, sizeof(expected), "tls_cert %s: Permission denied (reading as user %s)\n",
			 cfg.tls_cert, pw != NULL ? pw->pw_name : "?");
		expect_errors(&cfg, expected);
		config_free(&cfg);
		return;
	}
	struct passwd *nobody = getpwnam("nobody");
	if (nobody == NULL) {
		printf("     (running as root and there is no user nobody: unreadable-file check skipped)\n");
		config_free(&cfg);
		return;
	}
	printf("     (running as root: the unreadable-file check runs as user nobody)\n");
	int fds[2];
	CHECK(pipe(fds) == 0);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		struct buf errors = BUF_INIT;
		close(fds[0]);
		if (setgid(nobody->pw_gid) < 0 || setuid(nobody->pw_uid) < 0)
			_exit(2);
		struct tls_server *server = tls_server_new(&cfg, &errors);
		if (errors.len > 0 && write(fds[1], errors.data, errors.len) < 0)
			_exit(3);
		_exit(server == NULL ? 0 : 1);
	}
	close(fds[1]);
	char got[1024] = "";
	ssize_t n, total = 0;
	while ((n = read(fds[0], got + total, sizeof(got) - 1 - (size_t)total)) > 0)
		total += n;
	got[total > 0 ? total : 0] = '\0';
	close(fds[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	snprintf(expected, sizeof(expected), "tls_cert %s: Permission denied (reading as user nobody)\n",
		 cfg.tls_cert);
	CHECK_STR(got, expected);
	config_free(&cfg);
}

static struct tls_server *sni_server(struct config *cfg)
{
	struct buf errors = BUF_INIT;

	base_config(cfg, "default.pem", "default.key");
	add_certificate(cfg, "mail", "mail.pem", "mail.key");
	add_certificate(cfg, "wild", "wild.pem", "wild.key");
	add_certificate(cfg, "exact", "exact.pem", "exact.key");
	struct tls_server *server = tls_server_new(cfg, &errors);
	CHECK(server != NULL);
	CHECK_STR(errors.data, NULL);
	buf_free(&errors);
	return server;
}

static void test_sni(void)
{
	struct config cfg;
	struct tls_server *server = sni_server(&cfg);
	static const struct { const char *sni, *cn; } cases[] = {
		{ "mail.example.org", "mail.example.org" },
		{ "MAIL.Example.ORG", "mail.example.org" },
		{ "imap.example.org", "mail.example.org" },	/* a second SAN name */
		{ "x.example.net", "*.example.net" },
		{ "exact.example.net", "exact.example.net" },	/* exact beats the earlier wildcard */
		{ "a.b.example.net", "default.example.com" },	/* wildcards cover one label */
		{ "unknown.example.com", "default.example.com" },
		{ NULL, "default.example.com" },
	};

	if (server == NULL) {
		config_free(&cfg);
		return;
	}
	CHECK_INT(tls_server_cert_count(server), 4);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct handshake h = { .sni = cases[i].sni };
		handshake(server, &h);
		CHECK(h.ok);
		CHECK_STR(h.peer_cn, cases[i].cn);
	}
	struct tls_cert_info info;
	tls_server_cert_info(server, 1, &info);
	CHECK_STR(info.name, "mail");
	CHECK_STR(info.subject, "mail.example.org");
	tls_server_unref(&server);
	config_free(&cfg);
}

static void test_protocol_versions(void)
{
	struct config cfg;
	struct buf errors = BUF_INIT;
	struct tls_server *server;

	base_config(&cfg, "default.pem", "default.key");
	server = tls_server_new(&cfg, &errors);
	CHECK(server != NULL);
	if (server != NULL) {
		struct handshake h11 = { .client_min = TLS1_1_VERSION, .client_max = TLS1_1_VERSION };
		handshake(server, &h11);
		CHECK(!h11.ok);
		CHECK_INT(h11.server_reason, SSL_R_UNSUPPORTED_PROTOCOL);

		struct handshake h12 = { .client_max = TLS1_2_VERSION };
		handshake(server, &h12);
		CHECK(h12.ok);
		CHECK_INT(h12.version, TLS1_2_VERSION);

		struct handshake h13 = { .client_min = TLS1_3_VERSION };
		handshake(server, &h13);
		CHECK(h13.ok);
		CHECK_INT(h13.version, TLS1_3_VERSION);
	}
	tls_server_unref(&server);

	cfg.tls_min_version = TLS1_3_VERSION;
	server = tls_server_new(&cfg, &errors);
	CHECK(server != NULL);
	if (server != NULL) {
		struct handshake h12 = { .client_max = TLS1_2_VERSION };
		handshake(server, &h12);
		CHECK(!h12.ok);
		CHECK_INT(h12.server_reason, SSL_R_UNSUPPORTED_PROTOCOL);

		struct handshake h13 = { 0 };
		handshake(server, &h13);
		CHECK(h13.ok);
		CHECK_INT(h13.version, TLS1_3_VERSION);
	}
	tls_server_unref(&server);
	config_free(&cfg);
	buf_free(&errors);
}

/* An SSL made before the last reference went away keeps working, on the
 * default certificate (the SNI targets are gone with the server). */
static void test_refcount(void)
{
	struct config cfg;
	struct tls_server *server = sni_server(&cfg);
	if (server == NULL) {
		config_free(&cfg);
		return;
	}
	struct tls_server *extra = tls_server_ref(server);
	CHECK(extra == server);
	tls_server_unref(&extra);
	CHECK(extra == NULL);

	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
	SSL *s = tls_server_new_ssl(server, sv[0]);
	CHECK(s != NULL);
	tls_server_unref(&server);

	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *c = SSL_new(cctx);
	SSL_set_fd(c, sv[1]);
	SSL_set_connect_state(c);
	SSL_set_tlsext_host_name(c, "mail.example.org");
	bool s_done = false, c_done = false;
	for (int i = 0; i < 100 && !(s_done && c_done); i++) {
		if (!step(c, &c_done, NULL) || !step(s, &s_done, NULL))
			break;
	}
	CHECK(s_done && c_done);
	char cn[128];
	peer_cn(c, cn, sizeof(cn));
	CHECK_STR(cn, "default.example.com");
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
	close(sv[0]);
	close(sv[1]);
	config_free(&cfg);
}

static void test_fingerprint(void)
{
	struct config cfg;
	const char *copy = path_in("copy.pem");

	CHECK(run("cp %s %s", path_in("default.pem"), copy) == 0);
	base_config(&cfg, "copy.pem", "default.key");
	add_certificate(&cfg, "mail", "mail.pem", "mail.key");

	unsigned long long a = tls_files_fingerprint(&cfg);
	CHECK(a == tls_files_fingerprint(&cfg));

	/* Rewritten in place, as some ACME clients do. */
	CHECK(run("cat %s > %s", path_in("exact.pem"), copy) == 0);
	unsigned long long b = tls_files_fingerprint(&cfg);
	CHECK(a != b);

	/* Replaced by a rename (certbot's symlink swap looks the same). */
	CHECK(run("cp %s %s.new && mv %s.new %s", path_in("wild.pem"), copy, copy, copy) == 0);
	unsigned long long c = tls_files_fingerprint(&cfg);
	CHECK(c != b);

	/* Symlinks are followed: retargeting one changes the fingerprint. */
	const char *link = path_in("link.pem");
	CHECK(symlink(path_in("default.pem"), link) == 0);
	free(cfg.tls_cert);
	cfg.tls_cert = xstrdup(link);
	unsigned long long d = tls_files_fingerprint(&cfg);
	CHECK(run("ln -sfn %s %s", path_in("mail.pem"), link) == 0);
	CHECK(d != tls_files_fingerprint(&cfg));

	/* A missing file still gives a value, and a different one. */
	CHECK(unlink(path_in("mail.pem.nope")) < 0);
	free(cfg.certificates[0].key_file);
	cfg.certificates[0].key_file = xstrdup(path_in("mail.pem.nope"));
	CHECK(tls_files_fingerprint(&cfg) != d);
	config_free(&cfg);
}

static void test_log_expiry(void)
{
	struct config cfg;
	struct buf errors = BUF_INIT;
	struct tls_cert_info info;
	char log_path[600];

	base_config(&cfg, "default.pem", "default.key");
	add_certificate(&cfg, "mail", "mail.pem", "mail.key");
	struct tls_server *server = tls_server_new(&cfg, &errors);
	CHECK(server != NULL);
	if (server == NULL) {
		config_free(&cfg);
		buf_free(&errors);
		return;
	}
	tls_server_cert_info(server, 0, &info);

	snprintf(log_path, sizeof(log_path), "%s/log", dir);
	int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int saved = dup(STDERR_FILENO);
	CHECK(fd >= 0 && saved >= 0);
	log_setup(LOG_TARGET_STDERR, LOG_DEBUG, "test");
	dup2(fd, STDERR_FILENO);
	tls_server_log_expiry(server, info.not_after - 5 * 86400 - 10);
	tls_server_log_expiry(server, info.not_after - 20 * 86400);
	tls_server_log_expiry(server, info.not_after + 10);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);

	char text[4096] = "";
	FILE *f = fopen(log_path, "r");
	size_t n = f != NULL ? fread(text, 1, sizeof(text) - 1, f) : 0;
	text[n] = '\0';
	if (f != NULL)
		fclose(f);

	char stamp[32], want[256];
	struct tm tm;
	gmtime_r(&info.not_after, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(want, sizeof(want), "level=warn proc=test pid=%d event=tls_certificate name=default "
		 "subject=default.example.com not_after=%s days_left=5\n", (int)getpid(), stamp);
	CHECK(strstr(text, want) != NULL);
	snprintf(want, sizeof(want), "level=info proc=test pid=%d event=tls_certificate name=default "
		 "subject=default.example.com not_after=%s days_left=20\n", (int)getpid(), stamp);
	CHECK(strstr(text, want) != NULL);
	CHECK(strstr(text, "event=tls_certificate name=mail subject=mail.example.org") != NULL);
	CHECK(strstr(text, "name=default subject=default.example.com not_after") != NULL);
	CHECK(strstr(text, "days_left=-1\n") != NULL);	/* just expired */
	if (harness_checks_failed > 0)
		fprintf(stderr, "log was:\n%s", text);

	tls_server_unref(&server);
	config_free(&cfg);
	buf_free(&errors);
}

int main(void)
{
	setup();
	RUN(test_version_names);
	RUN(test_valid_certificate);
	RUN(test_file_errors);
	RUN(test_every_problem_reported);
	RUN(test_policy_errors);
	RUN(test_unreadable);
	RUN(test_sni);
	RUN(test_protocol_versions);
	RUN(test_refcount);
	RUN(test_fingerprint);
	RUN(test_log_expiry);
	teardown();
	return harness_finish();
}
