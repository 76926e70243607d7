/* A small thread pool that runs password hashing off the event loop.
 *
 * The loop thread makes a job (auth_job_new_verify/_hash), submits it, and
 * from then on the pool owns it until the loop gets it back from
 * auth_pool_next_done(); the loop thread then reads the outputs and frees
 * the job with auth_job_free(), which wipes the password. While a job is in
 * the pool the loop thread may touch only `owner` (its own pointer, never
 * read by the pool) and `cancelled`.
 *
 * Completion is announced on notify_fd, an eventfd the loop watches for
 * reading. When it is readable, call auth_pool_next_done() until it returns
 * NULL; each call also resets notify_fd, so a job finishing meanwhile makes
 * it readable again and none is missed.
 *
 * Every function here is for the loop thread only, except that the pool's
 * own threads run the jobs. Nothing here blocks except auth_pool_free(),
 * which waits for the jobs being run to finish. */
#ifndef POSTERN_AUTH_POOL_H
#define POSTERN_AUTH_POOL_H

#include "auth/password.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

enum auth_job_kind {
	AUTH_JOB_VERIFY,	/* password_verify(stored, password) */
	AUTH_JOB_HASH,		/* password_hash(password) */
};

struct auth_job {
	enum auth_job_kind kind;
	/* Inputs, owned by the job. */
	char *stored;			/* VERIFY: a copy of the stored hash */
	char *password;			/* a copy, NUL-terminated; wiped on free */
	size_t password_len;
	/* Outputs, valid once the job comes back from auth_pool_next_done. */
	enum password_result result;	/* VERIFY; PASSWORD_ERROR when cancelled */
	char *hash;			/* HASH: the new hash, owned by the job, or NULL */
	const char *error;		/* static text when result is PASSWORD_ERROR or hash NULL */
	/* The loop thread's. */
	void *owner;			/* e.g. the session; the pool never reads it */
	/* Set by the loop thread when the owner is gone: a job not yet started
	 * is skipped (its outputs say "cancelled"); it still comes back
	 * through auth_pool_next_done to be freed. */
	atomic_bool cancelled;
	struct auth_job *next;		/* the pool's queue link */
};

/* The job copies stored and password. Never fails (xmalloc). */
struct auth_job *auth_job_new_verify(const char *stored, const char *password,
				     size_t password_len, void *owner);
struct auth_job *auth_job_new_hash(const char *password, size_t password_len, void *owner);
/* Wipes the password and frees everything; sets *job to NULL; accepts NULL. */
void auth_job_free(struct auth_job **job);

struct auth_pool;

/* Starts threads worker threads (at least one). *notify_fd_r is the pool's
 * eventfd, nonblocking and close-on-exec; the pool closes it in
 * auth_pool_free, so take it out of the event loop before. Returns NULL
 * with errno set when the eventfd or a thread cannot be created. */
struct auth_pool *auth_pool_new(unsigned threads, int *notify_fd_r);
/* Queues job; the pool owns it until auth_pool_next_done returns it. */
void auth_pool_submit(struct auth_pool *pool, struct auth_job *job);
/* One finished job, now the caller's, or NULL when none is finished. */
struct auth_job *auth_pool_next_done(struct auth_pool *pool);
/* Jobs waiting and finished, not yet collected. */
unsigned auth_pool_pending(struct auth_pool *pool);
/* Stops the threads after the jobs they are running, frees every job not
 * collected (owners must forget theirs), closes notify_fd, sets *pool to
 * NULL. Accepts NULL. */
void auth_pool_free(struct auth_pool **pool);

#endif
