/* TLS server contexts. Every certificate gets its own SSL_CTX with the same
 * policy; the first (tls_cert/tls_key) is the default and the one every
 * SSL is made from, and its SNI callback moves a handshake to another
 * context when that one's certificate names the requested host.
 *
 * Files are checked by hand before OpenSSL loads them, so that an admin
 * reads "Permission denied (reading as user postern)" or "does not match
 * the certificate" instead of an OpenSSL error code.
 *
 * Not thread-safe: a tls_server belongs to one event loop (one worker). */
#include "net/tls.h"

#include "core/log.h"
#include "core/xalloc.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Days before expiry from which tls_server_log_expiry warns. */
#define TLS_EXPIRY_WARN_DAYS 14

/* Shared by every context so that a session resumed after SNI switched
 * contexts still matches (OpenSSL checks the id context on resumption). */
static const unsigned char tls_session_id_context[] = "postern";

struct tls_cert {
	char *name;		/* "default" or the [certificate NAME] */
	char *cert_file;
	char *key_file;
	char *subject;		/* CN, or the whole subject when it has no CN */
	time_t not_after;
	SSL_CTX *ctx;		/* owns the certificate and key */
	X509 *x509;		/* borrowed from ctx, for SNI matching */
};

struct tls_server {
	int refcount;
	struct tls_cert *certs;	/* certs[0] is the default */
	size_t count;
};

/* The most useful text for the first error on OpenSSL's queue, which it
 * then empties. */
static const char *openssl_error(char *text, size_t size)
{
	unsigned long e = ERR_get_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

	if (e == 0)
		snprintf(text, size, "unknown OpenSSL error");
	else if (reason != NULL)
		snprintf(text, size, "%s", reason);
	else
		ERR_error_string_n(e, text, size);
	ERR_clear_error();
	return text;
}

/* Keys must be unencrypted: a daemon has nobody to type a passphrase, and
 * OpenSSL's default callback would try to read one from the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	return -1;
}

static void account_name(char *name, size_t size)
{
	uid_t uid = geteuid();
	struct passwd *pw = getpwuid(uid);

	if (pw != NULL && pw->pw_name != NULL)
		snprintf(name, size, "user %s", pw->pw_name);
	else
		snprintf(name, size, "uid %u", (unsigned)uid);
}

/* Opens path for reading, or reports why not as "LABEL PATH: reason". */
static FILE *open_checked(const char *label, const char *path, struct buf *errors)
{
	FILE *f = fopen(path, "r");
	char who[128];

	if (f != NULL)
		return f;
	if (errno == EACCES || errno == EPERM) {
		int saved = errno;
		account_name(who, sizeof(who));
		buf_printf(errors, "%s %s: %s (reading as %s)\n", label, path, strerror(saved), who);
	} else {
		buf_printf(errors, "%s %s: %s\n", label, path, strerror(errno));
	}
	return NULL;
}

static bool asn1_time_to_tm(const ASN1_TIME *t, struct tm *tm)
{
	memset(tm, 0, sizeof(*tm));
	return ASN1_TIME_to_tm(t, tm) == 1;
}

static void format_date(const ASN1_TIME *t, char *text, size_t size)
{
	struct tm tm;

	if (!asn1_time_to_tm(t, &tm) || strftime(text, size, "%Y-%m-%d", &tm) == 0)
		snprintf(text, size, "(unreadable date)");
}

/* The subject's CN for logs; the one-line RFC 2253 subject without one. */
static char *subject_text(X509 *x509)
{
	const X509_NAME *subject = X509_get_subject_name(x509);
	int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	char *result = NULL;

	if (index >= 0) {
		const X509_NAME_ENTRY *entry = X509_NAME_get_entry(subject, index);
		int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
		if (len >= 0) {
			result = xstrndup((const char *)utf8, (size_t)len);
			OPENSSL_free(utf8);
			return result;
		}
	}
	BIO *bio = BIO_new(BIO_s_mem());
	if (bio != NULL) {
		char *data;
		long len;
		if (X509_NAME_print_ex(bio, subject, 0, XN_FLAG_RFC2253) >= 0 &&
		    (len = BIO_get_mem_data(bio, &data)) >= 0)
			result = xstrndup(data, (size_t)len);
		BIO_free(bio);
	}
	ERR_clear_error();
	return result != NULL ? result : xstrdup("");
}

/* One context with the server's protocol policy and no certificate yet. */
static SSL_CTX *new_policy_ctx(const struct config *cfg, struct buf *errors)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int min_version = cfg->tls_min_version != 0 ? cfg->tls_min_version : TLS1_2_VERSION;
	char text[256];
	uint64_t options;

	if (ctx == NULL) {
		buf_printf(errors, "TLS: cannot create a context: %s\n", openssl_error(text, sizeof(text)));
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, min_version) != 1) {
		buf_printf(errors, "tls_min_version %s: %s\n", tls_version_name(min_version),
			   openssl_error(text, sizeof(text)));
		goto fail;
	}
	/* No compression (CRIME), no renegotiation of any kind (a cheap way
	 * for a client to burn server CPU, and pointless with TLS 1.3). */
	options = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE;
#ifdef SSL_OP_NO_CLIENT_RENEGOTIATION
	options |= SSL_OP_NO_CLIENT_RENEGOTIATION;
#endif
	SSL_CTX_set_options(ctx, options);
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
	/* RELEASE_BUFFERS: an idle connection holds no TLS record buffers.
	 * ACCEPT_MOVING_WRITE_BUFFER: a write retried after WANT_WRITE may come
	 * from a buffer that grew (and moved) meanwhile. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	if (SSL_CTX_set_session_id_context(ctx, tls_session_id_context,
					   sizeof(tls_session_id_context) - 1) != 1) {
		buf_printf(errors, "TLS: session id context: %s\n", openssl_error(text, sizeof(text)));
		goto fail;
	}
	if (SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
		buf_printf(errors, "tls_ciphers '%s': %s\n", cfg->tls_ciphers, openssl_error(text, sizeof(text)));
		goto fail;
	}
	if (SSL_CTX_set_ciphersuites(ctx, cfg->tls_ciphersuites) != 1) {
		buf_printf(errors, "tls_ciphersuites '%s': %s\n", cfg->tls_ciphersuites,
			   openssl_error(text, sizeof(text)));
		goto fail;
	}
	if (SSL_CTX_set_dh_auto(ctx, 1) != 1) {
		buf_printf(errors, "TLS: DH parameters: %s\n", openssl_error(text, sizeof(text)));
		goto fail;
	}
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Reads and checks the certificate and key with our own messages: the
 * certificate is PEM, the key is PEM and matches it, and it is valid now.
 * Fills subject and not_after. Returns 0, or -1 after appending lines. */
static int check_files(struct tls_cert *cert, const char *cert_label, const char *key_label,
		       struct buf *errors)
{
	X509 *x509 = NULL;
	EVP_PKEY *pkey = NULL;
	FILE *f;
	char date[32];
	time_t now = time(NULL);
	int ret = -1, cmp;

	f = open_checked(cert_label, cert->cert_file, errors);
	if (f == NULL)
		return -1;
	x509 = PEM_read_X509(f, NULL, no_passphrase, NULL);
	fclose(f);
	if (x509 == NULL) {
		buf_printf(errors, "%s %s: not a PEM certificate\n", cert_label, cert->cert_file);
		goto out;
	}
	ret = 0;

	f = open_checked(key_label, cert->key_file, errors);
	if (f == NULL) {
		ret = -1;
	} else {
		pkey = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
		fclose(f);
		if (pkey == NULL) {
			buf_printf(errors, "%s %s: not a PEM private key (or encrypted with a passphrase, "
				   "which postern cannot use)\n", key_label, cert->key_file);
			ret = -1;
		} else if (X509_check_private_key(x509, pkey) != 1) {
			buf_printf(errors, "%s %s: does not match the certificate %s %s\n",
				   key_label, cert->key_file, cert_label, cert->cert_file);
			ret = -1;
		}
	}

	cmp = X509_cmp_time(X509_get0_notBefore(x509), &now);
	if (cmp == 0) {
		buf_printf(errors, "%s %s: unreadable notBefore date\n", cert_label, cert->cert_file);
		ret = -1;
	} else if (cmp > 0) {
		format_date(X509_get0_notBefore(x509), date, sizeof(date));
		buf_printf(errors, "%s %s: certificate not valid before %s (notBefore)\n",
			   cert_label, cert->cert_file, date);
		ret = -1;
	}
	cmp = X509_cmp_time(X509_get0_notAfter(x509), &now);
	if (cmp == 0) {
		buf_printf(errors, "%s %s: unreadable notAfter date\n", cert_label, cert->cert_file);
		ret = -1;
	} else if (cmp < 0) {
		format_date(X509_get0_notAfter(x509), date, sizeof(date));
		buf_printf(errors, "%s %s: certificate expired on %s (notAfter)\n",
			   cert_label, cert->cert_file, date);
		ret = -1;
	}

	if (ret == 0) {
		struct tm tm;
		cert->subject = subject_text(x509);
		cert->not_after = asn1_time_to_tm(X509_get0_notAfter(x509), &tm) ? timegm(&tm) : 0;
	}
out:
	ERR_clear_error();
	EVP_PKEY_free(pkey);
	X509_free(x509);
	return ret;
}

/* Checks the files, then builds the context and has OpenSSL load the chain
 * and key. Returns 0 or -1 after appending lines. */
static int load_cert(const struct config *cfg, struct tls_cert *cert, const char *cert_label,
		     const char *key_label, struct buf *errors)
{
	char text[256];

	if (check_files(cert, cert_label, key_label, errors) < 0)
		return -1;
	cert->ctx = new_policy_ctx(cfg, errors);
	if (cert->ctx == NULL)
		return -1;
	if (SSL_CTX_use_certificate_chain_file(cert->ctx, cert->cert_file) != 1) {
		buf_printf(errors, "%s %s: %s\n", cert_label, cert->cert_file, openssl_error(text, sizeof(text)));
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(cert->ctx, cert->key_file, SSL_FILETYPE_PEM) != 1) {
		buf_printf(errors, "%s %s: %s\n", key_label, cert->key_file, openssl_error(text, sizeof(text)));
		return -1;
	}
	if (SSL_CTX_check_private_key(cert->ctx) != 1) {
		buf_printf(errors, "%s %s: does not match the certificate %s %s\n",
			   key_label, cert->key_file, cert_label, cert->cert_file);
		ERR_clear_error();
		return -1;
	}
	cert->x509 = SSL_CTX_get0_certificate(cert->ctx);
	return 0;
}

static bool cert_matches(const struct tls_cert *cert, const char *host, unsigned int flags)
{
	return cert->x509 != NULL && X509_check_host(cert->x509, host, 0, flags, NULL) == 1;
}

/* SNI (RFC 6066 3): an exact name wins over a wildcard, then the order of
 * the configuration; no match, or no server name at all, keeps the default
 * certificate rather than failing the handshake, as clients that send a
 * bare IP address expect. */
static int tls_servername_cb(SSL *ssl, int *alert, void *arg)
{
	const struct tls_server *server = arg;
	const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	static const unsigned int passes[] = {
		X509_CHECK_FLAG_ALWAYS_CHECK_SUBJECT | X509_CHECK_FLAG_NO_WILDCARDS,
		X509_CHECK_FLAG_ALWAYS_CHECK_SUBJECT,
	};

	if (server == NULL || host == NULL)
		return SSL_TLSEXT_ERR_OK;
	for (size_t pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < server->count; i++) {
			if (!cert_matches(&server->certs[i], host, passes[pass]))
				continue;
			if (i > 0 && SSL_set_SSL_CTX(ssl, server->certs[i].ctx) == NULL) {
				ERR_clear_error();
				return SSL_TLSEXT_ERR_OK;	/* stay on the default */
			}
			return SSL_TLSEXT_ERR_OK;
		}
	}
	return SSL_TLSEXT_ERR_OK;
}

static void free_cert(struct tls_cert *cert)
{
	SSL_CTX_free(cert->ctx);
	free(cert->name);
	free(cert->cert_file);
	free(cert->key_file);
	free(cert->subject);
}

static void free_server(struct tls_server *server)
{
	if (server->count > 0 && server->certs[0].ctx != NULL) {
		/* Open SSLs keep the default context alive: make sure its
		 * callback never reaches this freed server. */
		SSL_CTX_set_tlsext_servername_callback(server->certs[0].ctx, NULL);
		SSL_CTX_set_tlsext_servername_arg(server->certs[0].ctx, NULL);
	}
	for (size_t i = 0; i < server->count; i++)
		free_cert(&server->certs[i]);
	free(server->certs);
	free(server);
}

struct tls_server *tls_server_new(const struct config *cfg, struct buf *errors)
{
	struct tls_server *server = xcalloc(1, sizeof(*server));
	bool failed = false;

	server->refcount = 1;
	server->count = 1 + cfg->certificate_count;
	server->certs = xcalloc(server->count, sizeof(*server->certs));
	server->certs[0].name = xstrdup("default");
	server->certs[0].cert_file = xstrdup(cfg->tls_cert);
	server->certs[0].key_file = xstrdup(cfg->tls_key);
	for (size_t i = 0; i < cfg->certificate_count; i++) {
		server->certs[i + 1].name = xstrdup(cfg->certificates[i].name);
		server->certs[i + 1].cert_file = xstrdup(cfg->certificates[i].cert_file);
		server->certs[i + 1].key_file = xstrdup(cfg->certificates[i].key_file);
	}

	/* Every certificate is checked even after one failed, so that one
	 * run shows every problem. */
	for (size_t i = 0; i < server->count; i++) {
		char cert_label[256], key_label[256];
		if (i == 0) {
			snprintf(cert_label, sizeof(cert_label), "tls_cert");
			snprintf(key_label, sizeof(key_label), "tls_key");
		} else {
			snprintf(cert_label, sizeof(cert_label), "[certificate %s] cert", server->certs[i].name);
			snprintf(key_label, sizeof(key_label), "[certificate %s] key", server->certs[i].name);
		}
		if (load_cert(cfg, &server->certs[i], cert_label, key_label, errors) < 0) {
			failed = true;
			/* A policy error (ciphers) would repeat for each one. */
			if (server->certs[i].subject != NULL && server->certs[i].ctx == NULL)
				break;
		}
	}

	if (!failed && server->count > 1) {
		SSL_CTX *ctx = server->certs[0].ctx;
		if (SSL_CTX_set_tlsext_servername_callback(ctx, tls_servername_cb) != 1 ||
		    SSL_CTX_set_tlsext_servername_arg(ctx, server) != 1) {
			char text[256];
			buf_printf(errors, "TLS: cannot install the SNI callback: %s\n",
				   openssl_error(text, sizeof(text)));
			failed = true;
		}
	}
	if (failed) {
		free_server(server);
		return NULL;
	}
	return server;
}

struct tls_server *tls_server_ref(struct tls_server *server)
{
	server->refcount++;
	return server;
}

void tls_server_unref(struct tls_server **_server)
{
	struct tls_server *server = *_server;

	if (server == NULL)
		return;
	*_server = NULL;
	if (--server->refcount > 0)
		return;
	free_server(server);
}

SSL *tls_server_new_ssl(struct tls_server *server, int fd)
{
	char text[256];
	SSL *ssl = SSL_new(server->certs[0].ctx);

	if (ssl == NULL) {
		log_msg(LOG_ERROR, "tls_new_ssl", "SSL_new: %s", openssl_error(text, sizeof(text)));
		return NULL;
	}
	if (SSL_set_fd(ssl, fd) != 1) {
		log_msg(LOG_ERROR, "tls_new_ssl", "SSL_set_fd: %s", openssl_error(text, sizeof(text)));
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_accept_state(ssl);
	return ssl;
}

size_t tls_server_cert_count(const struct tls_server *server)
{
	return server->count;
}

void tls_server_cert_info(const struct tls_server *server, size_t index, struct tls_cert_info *info_r)
{
	const struct tls_cert *cert = &server->certs[index];

	info_r->name = cert->name;
	info_r->cert_file = cert->cert_file;
	info_r->subject = cert->subject;
	info_r->not_after = cert->not_after;
}

void tls_server_log_expiry(const struct tls_server *server, time_t now)
{
	for (size_t i = 0; i < server->count; i++) {
		const struct tls_cert *cert = &server->certs[i];
		long long left = (long long)cert->not_after - (long long)now;
		/* Whole days, rounded down also below zero. */
		long long days = left >= 0 ? left / 86400 : -((-left + 86399) / 86400);
		struct log_line l;
		struct tm tm;
		char stamp[32];

		gmtime_r(&cert->not_after, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
		log_begin(&l, days < TLS_EXPIRY_WARN_DAYS ? LOG_WARN : LOG_INFO, "tls_certificate");
		log_str(&l, "name", cert->name);
		log_str(&l, "subject", cert->subject);
		log_str(&l, "not_after", stamp);
		log_int(&l, "days_left", days);
		log_end(&l);
	}
}

/* FNV-1a, 64 bits: not cryptographic, only "did anything change". */
static void fnv_mix(unsigned long long *hash, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		*hash ^= p[i];
		*hash *= 0x100000001b3ULL;
	}
}

static void fingerprint_file(unsigned long long *hash, const char *path)
{
	struct stat st;

	if (path == NULL)
		return;
	fnv_mix(hash, path, strlen(path) + 1);
	if (stat(path, &st) < 0) {
		int e = errno;
		fnv_mix(hash, &e, sizeof(e));
		return;
	}
	unsigned long long fields[] = {
		(unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
		(unsigned long long)st.st_size, (unsigned long long)st.st_mtim.tv_sec,
		(unsigned long long)st.st_mtim.tv_nsec,
	};
	fnv_mix(hash, fields, sizeof(fields));
}

unsigned long long tls_files_fingerprint(const struct config *cfg)
{
	unsigned long long hash = 0xcbf29ce484222325ULL;

	fingerprint_file(&hash, cfg->tls_cert);
	fingerprint_file(&hash, cfg->tls_key);
	for (size_t i = 0; i < cfg->certificate_count; i++) {
		fingerprint_file(&hash, cfg->certificates[i].cert_file);
		fingerprint_file(&hash, cfg->certificates[i].key_file);
	}
	return hash;
}

const char *tls_version_name(int version)
{
	switch (version) {
	case TLS1_VERSION: return "TLSv1";
	case TLS1_1_VERSION: return "TLSv1.1";
	case TLS1_2_VERSION: return "TLSv1.2";
	case TLS1_3_VERSION: return "TLSv1.3";
	}
	return "unknown";
}
