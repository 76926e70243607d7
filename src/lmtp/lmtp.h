/* The LMTP server (RFC 2033): what a worker gives its LMTP sessions and the
 * calls it makes on them. An MTA (Postfix, Exim) connects to a listener
 * with `protocol = lmtp` and hands over messages; each accepted recipient
 * gets its own reply after the data, and a 250 is sent only once the
 * message is committed in that recipient's store.
 *
 * The worker owns the context; on reload it swaps cfg. Sessions live until
 * their connection closes, QUIT, a timeout or shutdown. */
#ifndef POSTERN_LMTP_LMTP_H
#define POSTERN_LMTP_LMTP_H

#include "core/config.h"
#include "net/ev.h"

#include <stdbool.h>
#include <stdint.h>

struct passwd_file;
struct lmtp_session;
struct metrics_worker;
struct workpool;
struct search_indexer;

struct lmtp_context {
	struct ev_loop *loop;
	const struct config *cfg;	/* data_dir, hostname, max_literal_size */
	struct passwd_file *passwd;	/* which users exist (refreshed per RCPT) */
	unsigned worker_index;
	struct metrics_worker *metrics;	/* deliveries are counted here; never NULL */
	struct workpool *pool;		/* the delivery threads (lmtp/pool.h); the
					   worker's, set before any session */
	const struct config_listener *listeners;	/* the boot listeners, for metric indexes */
	struct search_indexer *indexer;	/* told about each delivered user; NULL: off */
	uint64_t next_session_id;
	struct lmtp_session *sessions;	/* every live session */
	unsigned session_count;
	bool draining;			/* SIGTERM: new sessions get 421 */
};

/* A new session for an accepted socket on listener l. Takes over fd. */
void lmtp_accept(struct lmtp_context *ctx, int fd, const struct config_listener *l);
/* SIGTERM: idle sessions get "421 4.3.2" and close; a session reading a
 * message finishes it, answers, then closes the same way. */
void lmtp_shutdown_all(struct lmtp_context *ctx);
/* Frees every session at once (worker exit); their jobs still in the pool
 * are cancelled and freed by lmtp_jobs_done or workpool_free. */
void lmtp_close_all(struct lmtp_context *ctx);
/* The pool's eventfd is readable: replies for the DATAs whose deliveries
 * are done, and the input that waited for them. */
void lmtp_jobs_done(struct lmtp_context *ctx);

#endif
