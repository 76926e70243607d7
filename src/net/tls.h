/* TLS server contexts (OpenSSL 3): the default certificate plus one per SNI
 * name, a modern protocol and cipher policy, and the facts about each
 * certificate (expiry) that logs and metrics need.
 *
 * A tls_server is reference-counted: a connection that is still handshaking
 * holds a reference, so a reload that builds a new tls_server never frees
 * what a handshake in progress is using. Open sessions keep their SSL, which
 * holds its own reference to the SSL_CTX it was made from. */
#ifndef POSTERN_NET_TLS_H
#define POSTERN_NET_TLS_H

#include "core/buf.h"
#include "core/config.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <time.h>

struct tls_server;

struct tls_cert_info {
	const char *name;	/* "default" or the [certificate NAME] */
	const char *cert_file;
	const char *subject;	/* the certificate's subject CN, for logs */
	time_t not_after;	/* expiry, Unix time */
};

/* Loads every certificate named by cfg (tls_cert/tls_key and each
 * [certificate] section) and checks it: file missing, unreadable (with the
 * account it was tried as), not PEM, key not matching the certificate, not
 * yet valid or expired. Returns NULL with one line per problem appended to
 * errors. */
struct tls_server *tls_server_new(const struct config *cfg, struct buf *errors);
struct tls_server *tls_server_ref(struct tls_server *server);
void tls_server_unref(struct tls_server **server);

/* A new server-side SSL for an accepted socket, or NULL (logged). */
SSL *tls_server_new_ssl(struct tls_server *server, int fd);

size_t tls_server_cert_count(const struct tls_server *server);
void tls_server_cert_info(const struct tls_server *server, size_t index, struct tls_cert_info *info_r);
/* Logs each certificate's days to expiry; a warning under 14 days. */
void tls_server_log_expiry(const struct tls_server *server, time_t now);

/* A cheap fingerprint (device, inode, size, mtime of each file, following
 * symlinks) of every certificate and key file that cfg names, so a watcher
 * can tell when certbot or another ACME client has replaced them. */
unsigned long long tls_files_fingerprint(const struct config *cfg);

/* "TLSv1.3" etc. for the version number in cfg->tls_min_version. */
const char *tls_version_name(int version);

#endif
