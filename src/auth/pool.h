/* Password hashing off the event loop, on a core/workpool.h pool.
 *
 * The loop thread makes a job (auth_job_new_verify/_hash), submits it, and
 * from then on the pool owns it until the loop gets it back from
 * auth_pool_next_done(); the loop thread then reads the outputs and frees
 * the job with auth_job_free(), which wipes the password. While a job is in
 * the pool the loop thread may touch only `owner` (its own pointer, never
 * read by the pool) and `cancelled`.
 *
 * The pool is a plain struct workpool: watch its notify_fd as workpool.h
 * says, call auth_pool_next_done() until NULL when it is readable, and end
 * it with workpool_free(), which frees the jobs not collected. */
#ifndef POSTERN_AUTH_POOL_H
#define POSTERN_AUTH_POOL_H

#include "auth/password.h"
#include "core/workpool.h"

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
	struct workpool_job link;	/* the pool's */
};

/* The job copies stored and password. Never fails (xmalloc). */
struct auth_job *auth_job_new_verify(const char *stored, const char *password,
				     size_t password_len, void *owner);
struct auth_job *auth_job_new_hash(const char *password, size_t password_len, void *owner);
/* Wipes the password and frees everything; sets *job to NULL; accepts NULL. */
void auth_job_free(struct auth_job **job);

/* Starts threads hashing threads (at least one); see workpool_new. */
struct workpool *auth_pool_new(unsigned threads, int *notify_fd_r);
/* Queues job; the pool owns it until auth_pool_next_done returns it. */
void auth_pool_submit(struct workpool *pool, struct auth_job *job);
/* One finished job, now the caller's, or NULL when none is finished. */
struct auth_job *auth_pool_next_done(struct workpool *pool);

#endif
