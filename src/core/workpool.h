/* A pool of threads that runs blocking work (password hashing, LMTP
 * deliveries) off a worker's event loop.
 *
 * The loop thread submits jobs; a pool thread runs each one with the ops'
 * run hook; finished jobs come back to the loop in workpool_next_done.
 * Completion is announced on notify_fd, an eventfd the loop watches for
 * reading. When it is readable, call workpool_next_done() until it returns
 * NULL; each call resets notify_fd first, so a job finishing meanwhile makes
 * it readable again and none is missed.
 *
 * Jobs are intrusive: the user's job struct embeds a struct workpool_job
 * and gets back to itself with WORKPOOL_CONTAINER. From workpool_submit
 * until workpool_next_done returns it, the pool owns the job (only the run
 * hook reads it); the user's header says which fields the loop may still
 * touch meanwhile (an owner pointer, a cancel flag). Cancelling is the
 * user's business: the pool runs every job it hands to a thread.
 *
 * Per-thread state: each thread may keep a context of the user's (the
 * LMTP threads keep open store handles) made by thread_init when the thread
 * starts, passed to every run, given to thread_idle after each job and
 * whenever the deadline thread_idle returned passes, and handed to
 * thread_deinit when the thread stops. All three run on the thread that
 * owns the context, never under the pool's lock.
 *
 * Every function is for the loop thread. Nothing blocks except
 * workpool_free, which waits for the jobs being run to finish. A pthread
 * call that fails where it cannot (lock, wait, join) is a broken invariant:
 * it is logged and the worker aborts. */
#ifndef POSTERN_CORE_WORKPOOL_H
#define POSTERN_CORE_WORKPOOL_H

#include <stddef.h>
#include <stdint.h>

/* Embedded in the user's job struct; the pool's only field in it. */
struct workpool_job {
	struct workpool_job *next;	/* the pool's queue link */
};

/* The user's job struct of type holding job at member. */
#define WORKPOOL_CONTAINER(job, type, member) \
	((type *)(void *)((char *)(job) - offsetof(type, member)))

struct workpool_ops {
	/* The event of the pool's own error lines (eventfd, pthread). */
	const char *log_event;
	/* Runs job on a pool thread, with that thread's context. Required. */
	void (*run)(struct workpool_job *job, void *thread_ctx);
	/* Frees a job never collected, in workpool_free. Required. */
	void (*job_free)(struct workpool_job *job);
	/* Optional. Makes the thread's context (NULL is a fine one). */
	void *(*thread_init)(void);
	/* Optional. Housekeeping between jobs; returns when to be called
	 * again with no job, in CLOCK_MONOTONIC milliseconds (ev_clock_ms's
	 * clock), or 0 for "only after the next job". */
	uint64_t (*thread_idle)(void *thread_ctx);
	/* Optional. Releases the context; the thread then exits. */
	void (*thread_deinit)(void *thread_ctx);
};

struct workpool;

/* Starts threads threads (at least one); ops must outlive the pool.
 * *notify_fd_r is the pool's eventfd, nonblocking and close-on-exec; the
 * pool closes it in workpool_free, so take it out of the event loop before.
 * Returns NULL with errno set when the eventfd or a thread cannot be
 * created. */
struct workpool *workpool_new(const struct workpool_ops *ops, unsigned threads, int *notify_fd_r);
/* Queues job; the pool owns it until workpool_next_done returns it. */
void workpool_submit(struct workpool *pool, struct workpool_job *job);
/* One finished job, now the caller's, or NULL when none is finished. */
struct workpool_job *workpool_next_done(struct workpool *pool);
/* Jobs submitted and not yet collected: waiting, running or finished. */
unsigned workpool_pending(struct workpool *pool);
/* Stops the threads after the jobs they are running (each thread's
 * thread_deinit runs), frees every job not collected with job_free (owners
 * must forget theirs), closes notify_fd, sets *pool to NULL. Accepts NULL. */
void workpool_free(struct workpool **pool);

#endif
