#include "core/workpool.h"
#include "core/log.h"
#include "core/xalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* A FIFO of jobs linked through job->next. */
struct job_queue {
	struct workpool_job *head, *tail;
};

struct workpool {
	const struct workpool_ops *ops;
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* work queued or stopping; CLOCK_MONOTONIC */
	struct job_queue waiting, finished;
	unsigned pending;		/* jobs waiting, running or finished */
	bool stopping;
	int notify_fd;
	unsigned nthreads;		/* started, so joined by workpool_free */
	pthread_t *threads;
};

static void queue_push(struct job_queue *q, struct workpool_job *job)
{
	job->next = NULL;
	if (q->tail != NULL)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
}

static struct workpool_job *queue_pop(struct job_queue *q)
{
	struct workpool_job *job = q->head;
	if (job != NULL) {
		q->head = job->next;
		if (q->head == NULL)
			q->tail = NULL;
		job->next = NULL;
	}
	return job;
}

/* For pthread calls that fail only when the pool itself is broken (a
 * destroyed mutex, a bad deadline): a bug, so the worker dies and the
 * master starts another. */
static void must(const struct workpool *pool, int err, const char *call)
{
	if (err == 0)
		return;
	log_msg(LOG_ERROR, pool->ops->log_event, "%s: %s", call, strerror(err));
	abort();
}

static void pool_lock(struct workpool *pool)
{
	must(pool, pthread_mutex_lock(&pool->lock), "pthread_mutex_lock");
}

static void pool_unlock(struct workpool *pool)
{
	must(pool, pthread_mutex_unlock(&pool->lock), "pthread_mutex_unlock");
}

/* Called with the lock held, after the push: see workpool_next_done. */
static void notify(struct workpool *pool)
{
	uint64_t one = 1;
	/* EAGAIN means the counter is at its maximum: already readable. */
	while (write(pool->notify_fd, &one, sizeof(one)) < 0) {
		if (errno == EAGAIN)
			break;
		if (errno != EINTR) {
			log_msg(LOG_ERROR, pool->ops->log_event, "eventfd write: %s", strerror(errno));
			break;
		}
	}
}

/* Waits on wake until signalled or, when deadline is not 0, until then.
 * True when the deadline passed. */
static bool wait_until(struct workpool *pool, uint64_t deadline_ms)
{
	if (deadline_ms == 0) {
		must(pool, pthread_cond_wait(&pool->wake, &pool->lock), "pthread_cond_wait");
		return false;
	}
	struct timespec ts = {
		.tv_sec = (time_t)(deadline_ms / 1000),
		.tv_nsec = (long)(deadline_ms % 1000) * 1000000,
	};
	int err = pthread_cond_timedwait(&pool->wake, &pool->lock, &ts);
	if (err == ETIMEDOUT)
		return true;
	must(pool, err, "pthread_cond_timedwait");
	return false;
}

/* The next job for a thread, or NULL in *job_r when deadline_ms passed
 * first. False when the pool is stopping: the thread exits, and jobs still
 * waiting are left for workpool_free. */
static bool next_job(struct workpool *pool, uint64_t deadline_ms, struct workpool_job **job_r)
{
	bool timed_out = false;
	pool_lock(pool);
	while (pool->waiting.head == NULL && !pool->stopping && !timed_out)
		timed_out = wait_until(pool, deadline_ms);
	bool stopping = pool->stopping;
	*job_r = stopping ? NULL : queue_pop(&pool->waiting);
	pool_unlock(pool);
	return !stopping;
}

static void job_finished(struct workpool *pool, struct workpool_job *job)
{
	pool_lock(pool);
	queue_push(&pool->finished, job);
	notify(pool);
	pool_unlock(pool);
}

static void *thread_main(void *arg)
{
	struct workpool *pool = arg;
	const struct workpool_ops *ops = pool->ops;
	void *ctx = ops->thread_init != NULL ? ops->thread_init() : NULL;
	uint64_t deadline_ms = 0;
	struct workpool_job *job;

	while (next_job(pool, deadline_ms, &job)) {
		if (job != NULL) {
			ops->run(job, ctx);
			job_finished(pool, job);
		}
		/* Out of the lock: the LMTP threads close stores here, which
		 * may checkpoint a WAL. */
		if (ops->thread_idle != NULL)
			deadline_ms = ops->thread_idle(ctx);
	}
	if (ops->thread_deinit != NULL)
		ops->thread_deinit(ctx);
	return NULL;
}

/* The lock and a wake condition on the monotonic clock, which thread_idle
 * deadlines are in. 0 or an error number. */
static int sync_init(struct workpool *pool)
{
	pthread_condattr_t attr;
	int err = pthread_mutex_init(&pool->lock, NULL);
	if (err != 0)
		return err;
	if ((err = pthread_condattr_init(&attr)) == 0) {
		err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		if (err == 0)
			err = pthread_cond_init(&pool->wake, &attr);
		must(pool, pthread_condattr_destroy(&attr), "pthread_condattr_destroy");
	}
	if (err != 0)
		must(pool, pthread_mutex_destroy(&pool->lock), "pthread_mutex_destroy");
	return err;
}

struct workpool *workpool_new(const struct workpool_ops *ops, unsigned threads, int *notify_fd_r)
{
	struct workpool *pool = xcalloc(1, sizeof(*pool));
	pool->ops = ops;
	pool->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pool->notify_fd < 0) {
		free(pool);
		return NULL;
	}
	int err = sync_init(pool);
	if (err != 0) {
		close(pool->notify_fd);
		free(pool);
		errno = err;
		return NULL;
	}
	if (threads == 0)
		threads = 1;
	pool->threads = xcalloc(threads, sizeof(*pool->threads));
	for (unsigned i = 0; i < threads; i++) {
		err = pthread_create(&pool->threads[i], NULL, thread_main, pool);
		if (err != 0) {
			workpool_free(&pool);
			errno = err;
			return NULL;
		}
		pool->nthreads++;
	}
	*notify_fd_r = pool->notify_fd;
	return pool;
}

void workpool_submit(struct workpool *pool, struct workpool_job *job)
{
	pool_lock(pool);
	queue_push(&pool->waiting, job);
	pool->pending++;
	must(pool, pthread_cond_signal(&pool->wake), "pthread_cond_signal");
	pool_unlock(pool);
}

struct workpool_job *workpool_next_done(struct workpool *pool)
{
	uint64_t count;

	/* Reset before looking, so that a job pushed after our look has
	 * written to the fd after our read and the loop wakes again. */
	if (read(pool->notify_fd, &count, sizeof(count)) < 0 && errno != EAGAIN && errno != EINTR)
		log_msg(LOG_ERROR, pool->ops->log_event, "eventfd read: %s", strerror(errno));
	pool_lock(pool);
	struct workpool_job *job = queue_pop(&pool->finished);
	if (job != NULL)
		pool->pending--;
	pool_unlock(pool);
	return job;
}

unsigned workpool_pending(struct workpool *pool)
{
	pool_lock(pool);
	unsigned n = pool->pending;
	pool_unlock(pool);
	return n;
}

static void stop_threads(struct workpool *pool)
{
	pool_lock(pool);
	pool->stopping = true;
	must(pool, pthread_cond_broadcast(&pool->wake), "pthread_cond_broadcast");
	pool_unlock(pool);
	for (unsigned i = 0; i < pool->nthreads; i++)
		must(pool, pthread_join(pool->threads[i], NULL), "pthread_join");
}

void workpool_free(struct workpool **poolp)
{
	struct workpool *pool = *poolp;
	if (pool == NULL)
		return;
	stop_threads(pool);
	/* The threads are gone: no lock needed from here on. */
	struct workpool_job *job;
	while ((job = queue_pop(&pool->waiting)) != NULL)
		pool->ops->job_free(job);
	while ((job = queue_pop(&pool->finished)) != NULL)
		pool->ops->job_free(job);
	must(pool, pthread_cond_destroy(&pool->wake), "pthread_cond_destroy");
	must(pool, pthread_mutex_destroy(&pool->lock), "pthread_mutex_destroy");
	if (close(pool->notify_fd) < 0)
		log_msg(LOG_ERROR, pool->ops->log_event, "eventfd close: %s", strerror(errno));
	free(pool->threads);
	free(pool);
	*poolp = NULL;
}
