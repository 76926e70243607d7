/* The delivery threads of one worker: the store appends after an LMTP
 * DATA's final dot run here, so their fsyncs (and a wait of up to
 * STORE_BUSY_TIMEOUT_MS for a user's write lock) never hold the event loop.
 * A core/workpool.h pool, as the hashing one is (auth/pool.h): jobs go in
 * from the loop, come back through an eventfd, and the loop reads and frees
 * them.
 *
 * A job is one DATA: the message and every accepted recipient. One thread
 * delivers its recipients one after the other, in RCPT order, so replies
 * can be sent in that order (RFC 2033 4.2) and the message buffer's
 * headroom can take each recipient's headers in turn. Different DATAs
 * (sessions) run on different threads at once.
 *
 * Each thread keeps its own store handles (store.h: one thread per handle),
 * a few per thread, by user, closed LMTP_POOL_LINGER_MS after their last
 * delivery, so a busy mailbox is not reopened for every message.
 *
 * Ownership: from lmtp_pool_submit until lmtp_pool_next_done returns it the
 * pool owns the job; the loop thread may then touch only `owner` and
 * `cancelled`. A session that goes away meanwhile sets owner to NULL and
 * cancelled to true: recipients not yet started are skipped, the one being
 * written finishes (its commit cannot be taken back), and the job still
 * comes back to be logged and freed by the loop. So the message buffer is
 * freed only by the loop, after every thread is done with it.
 *
 * Every function is for the loop thread, except that the pool's own threads
 * run the jobs. Nothing blocks except workpool_free, which waits for the
 * recipients being written to finish, then has each thread close its
 * stores. */
#ifndef POSTERN_LMTP_POOL_H
#define POSTERN_LMTP_POOL_H

#include "core/buf.h"
#include "core/limits.h"
#include "core/workpool.h"
#include "lmtp/deliver.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room kept in front of the message for the two headers written per
 * recipient, so each delivery prepends them without copying the body. */
#define LMTP_RETURN_PATH_FMT "Return-Path: <%s>\r\n"
#define LMTP_DELIVERED_TO_FMT "Delivered-To: %s\r\n"
#define LMTP_HEADROOM \
	(sizeof(LMTP_RETURN_PATH_FMT) + sizeof(LMTP_DELIVERED_TO_FMT) + 2 * LIMIT_LMTP_PATH)

/* Store handles a thread keeps open, and for how long after last use. */
#define LMTP_POOL_CACHED_STORES 16
#define LMTP_POOL_LINGER_MS 30000

/* A recipient accepted by RCPT. */
struct lmtp_rcpt {
	char *address;		/* as given, for Delivered-To and the replies */
	char *user;		/* the passwd file's name for it */
	char *detail;		/* folder asked for by user+detail, or NULL */
};

/* What one recipient's delivery did. */
struct lmtp_rcpt_outcome {
	bool attempted;		/* false: skipped (cancelled) or not reached */
	struct lmtp_deliver_result result;
	size_t size;		/* bytes stored, headers included */
	uint64_t done_ms;	/* ev_clock_ms() when it was committed or failed */
};

struct lmtp_job {
	/* Inputs, owned by the job. */
	char *data_dir;
	char *sender;			/* MAIL FROM path ("" for <>) */
	struct lmtp_rcpt *rcpts;
	size_t rcpt_count;
	struct buf message;		/* LMTP_HEADROOM bytes, then the message */
	char session_id[24];		/* for the logs */
	uint64_t submitted_ms;		/* ev_clock_ms() at lmtp_pool_submit */
	/* Outputs, one per recipient, valid once the job is back. */
	struct lmtp_rcpt_outcome *outcomes;
	/* The loop thread's: the pool never reads it. */
	void *owner;
	/* Set by the loop thread when the owner is gone. */
	atomic_bool cancelled;
	struct workpool_job link;	/* the pool's */
};

/* A job taking over sender, rcpts (rcpt_count of them) and message, whose
 * ownership moves to it (the caller's pointers are cleared). data_dir and
 * session_id are copied. Never fails (xmalloc). */
struct lmtp_job *lmtp_job_new(const char *data_dir, const char *session_id, char **sender,
			      struct lmtp_rcpt **rcpts, size_t rcpt_count, struct buf *message,
			      void *owner);
/* Frees everything; sets *job to NULL; accepts NULL. */
void lmtp_job_free(struct lmtp_job **job);
void lmtp_rcpts_free(struct lmtp_rcpt **rcpts, size_t count);

/* Starts threads delivery threads (at least one); see workpool_new.
 * workpool_free stops them after the recipients they are writing, closes
 * their stores and frees every job not collected (owners must have
 * forgotten theirs). */
struct workpool *lmtp_pool_new(unsigned threads, int *notify_fd_r);
/* Queues job; the pool owns it until lmtp_pool_next_done returns it. */
void lmtp_pool_submit(struct workpool *pool, struct lmtp_job *job);
/* One finished job, now the caller's, or NULL when none is finished. Call
 * it until NULL whenever notify_fd is readable. */
struct lmtp_job *lmtp_pool_next_done(struct workpool *pool);

#endif
