/* What a worker gives its IMAP sessions: the loop, the current settings and
 * certificates, the password file, the login throttle, the hashing pool and
 * the verified-login cache.
 * The worker owns all of it; on reload it swaps cfg and tls, and sessions
 * pick up the new ones at their next command. */
#ifndef POSTERN_IMAPD_IMAPD_H
#define POSTERN_IMAPD_IMAPD_H

#include "core/config.h"
#include "net/ev.h"
#include "net/tls.h"

#include <stdbool.h>
#include <stdint.h>

struct passwd_file;
struct throttle;
struct workpool;
struct auth_cache;
struct session;
struct notify_watch;
struct metrics_worker;
struct store_cache;
struct sync_cache;
struct shcount;
struct search_indexer;

struct imapd_context {
	struct ev_loop *loop;
	const struct config *cfg;
	struct tls_server *tls;
	struct passwd_file *passwd;
	struct throttle *throttle;
	struct workpool *auth_pool;
	struct auth_cache *auth_cache;	/* verified logins; NULL when it could not be made */
	uint64_t next_session_id;
	unsigned worker_index;
	struct session *sessions;	/* every live session, for shutdown */
	unsigned session_count;
	bool draining;			/* SIGTERM: no new commands start */
	struct metrics_worker *metrics;	/* this worker's slot; never NULL */
	struct shcount *counts;		/* connections per address, sessions per user,
					 * shared by every worker; NULL: limits off */
	const struct config_listener *listeners;	/* the boot listeners, for metric indexes */
	struct store_cache *store_cache;
	struct sync_cache *sync_cache;	/* last changes read, see selected.c */	/* open stores by user, see store_cache.h */
	int inotify_fd;			/* change-file watches, -1 when unavailable */
	struct notify_watch *watches;	/* one per watched user */
	struct search_indexer *indexer;	/* the worker's full-text indexer; NULL: off */
};

/* A new session for an accepted socket on listener l. Takes over fd. */
void imapd_accept(struct imapd_context *ctx, int fd, const struct config_listener *l);
/* Sends "* BYE reason" to every session and closes it once written. */
void imapd_shutdown_all(struct imapd_context *ctx, const char *reason);
/* Command names for metrics, by the index sessions record: the command
 * table, then "UNKNOWN" (not a command) and "INVALID" (did not parse). */
size_t imapd_command_name_count(void);
const char *imapd_command_name(size_t index);

/* Frees every session at once, without a goodbye (worker exit). */
void imapd_close_all(struct imapd_context *ctx);
/* Completes finished password checks (call when the pool's fd is readable). */
void imapd_auth_jobs_done(struct imapd_context *ctx);

#endif
