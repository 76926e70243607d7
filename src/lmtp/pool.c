#include "lmtp/pool.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "net/ev.h"
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* A FIFO of jobs linked through job->next. */
struct job_queue {
	struct lmtp_job *head, *tail;
};

/* A store handle a thread keeps open between deliveries. */
struct cached_store {
	char *data_dir;		/* a reload may change it: part of the key */
	char *user;
	struct store *st;
	uint64_t last_ms;	/* ev_clock_ms() of its last delivery */
};

struct pool_thread {
	struct lmtp_pool *pool;
	pthread_t tid;
	/* Only this thread touches its cache (store.h: one thread a handle). */
	struct cached_store cache[LMTP_POOL_CACHED_STORES];
	size_t cached;
};

struct lmtp_pool {
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* work queued or stopping; CLOCK_MONOTONIC */
	struct job_queue todo, done;
	bool stopping;
	int notify_fd;
	unsigned nthreads;
	struct pool_thread *threads;
};

static void queue_push(struct job_queue *q, struct lmtp_job *job)
{
	job->next = NULL;
	if (q->tail != NULL)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
}

static struct lmtp_job *queue_pop(struct job_queue *q)
{
	struct lmtp_job *job = q->head;
	if (job != NULL) {
		q->head = job->next;
		if (q->head == NULL)
			q->tail = NULL;
		job->next = NULL;
	}
	return job;
}

/* --- Jobs ------------------------------------------------------------------ */

struct lmtp_job *lmtp_job_new(const char *data_dir, const char *session_id, char **sender,
			      struct lmtp_rcpt **rcpts, size_t rcpt_count, struct buf *message,
			      void *owner)
{
	struct lmtp_job *job = xcalloc(1, sizeof(*job));
	job->data_dir = xstrdup(data_dir);
	snprintf(job->session_id, sizeof(job->session_id), "%s", session_id);
	job->sender = *sender;
	*sender = NULL;
	job->rcpts = *rcpts;
	*rcpts = NULL;
	job->rcpt_count = rcpt_count;
	job->message = *message;
	*message = (struct buf)BUF_INIT;
	job->outcomes = xcalloc(rcpt_count ? rcpt_count : 1, sizeof(*job->outcomes));
	job->owner = owner;
	atomic_init(&job->cancelled, false);
	return job;
}

void lmtp_rcpts_free(struct lmtp_rcpt **rcpts, size_t count)
{
	struct lmtp_rcpt *r = *rcpts;
	if (r == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free(r[i].address);
		free(r[i].user);
		free(r[i].detail);
	}
	free(r);
	*rcpts = NULL;
}

void lmtp_job_free(struct lmtp_job **jobp)
{
	struct lmtp_job *job = *jobp;
	if (job == NULL)
		return;
	for (size_t i = 0; i < job->rcpt_count; i++)
		lmtp_deliver_result_free(&job->outcomes[i].result);
	free(job->outcomes);
	lmtp_rcpts_free(&job->rcpts, job->rcpt_count);
	free(job->sender);
	free(job->data_dir);
	buf_free(&job->message);
	free(job);
	*jobp = NULL;
}

/* --- A thread's stores ------------------------------------------------------ */

static void cache_remove(struct pool_thread *t, size_t i)
{
	store_close(&t->cache[i].st);
	free(t->cache[i].data_dir);
	free(t->cache[i].user);
	t->cache[i] = t->cache[--t->cached];
}

/* The open store of user, opening it (and closing the least recently used
 * one when the cache is full) if needed; NULL with r filled on failure. */
static struct store *cache_get(struct pool_thread *t, const char *data_dir, const char *user,
			       struct lmtp_deliver_result *r)
{
	for (size_t i = 0; i < t->cached; i++) {
		struct cached_store *c = &t->cache[i];
		if (strcmp(c->user, user) == 0 && strcmp(c->data_dir, data_dir) == 0) {
			c->last_ms = ev_clock_ms();
			return c->st;
		}
	}
	struct store *st = NULL;
	if (lmtp_deliver_open(data_dir, user, &st, r) < 0)
		return NULL;
	if (t->cached == LMTP_POOL_CACHED_STORES) {
		size_t oldest = 0;
		for (size_t i = 1; i < t->cached; i++) {
			if (t->cache[i].last_ms < t->cache[oldest].last_ms)
				oldest = i;
		}
		cache_remove(t, oldest);
	}
	t->cache[t->cached++] = (struct cached_store){
		.data_dir = xstrdup(data_dir),
		.user = xstrdup(user),
		.st = st,
		.last_ms = ev_clock_ms(),
	};
	return st;
}

/* After a temporary failure the handle may be what is broken (a database
 * replaced underneath, a file descriptor gone bad): the next delivery opens
 * a fresh one. */
static void cache_drop(struct pool_thread *t, const struct store *st)
{
	for (size_t i = 0; i < t->cached; i++) {
		if (t->cache[i].st == st) {
			cache_remove(t, i);
			return;
		}
	}
}

static void cache_expire(struct pool_thread *t, uint64_t now)
{
	for (size_t i = 0; i < t->cached;) {
		if (now - t->cache[i].last_ms >= LMTP_POOL_LINGER_MS)
			cache_remove(t, i);
		else
			i++;
	}
}

/* When the first cached store expires, or 0 when none is cached. */
static uint64_t cache_next_expiry(const struct pool_thread *t)
{
	uint64_t first = 0;
	for (size_t i = 0; i < t->cached; i++) {
		if (first == 0 || t->cache[i].last_ms < first)
			first = t->cache[i].last_ms;
	}
	return t->cached > 0 ? first + LMTP_POOL_LINGER_MS : 0;
}

/* --- Running a job ----------------------------------------------------------- */

static void deliver_one(struct pool_thread *t, struct lmtp_job *job, size_t i)
{
	const struct lmtp_rcpt *rcpt = &job->rcpts[i];
	struct lmtp_rcpt_outcome *out = &job->outcomes[i];
	out->attempted = true;
	/* RFC 2033 4.2 / Dovecot: Return-Path from MAIL FROM, Delivered-To
	 * naming the recipient, written into the headroom just before the
	 * body. Both paths are at most LIMIT_LMTP_PATH bytes, so they fit. */
	char prefix[LMTP_HEADROOM + 1];
	int n = snprintf(prefix, sizeof(prefix), LMTP_RETURN_PATH_FMT LMTP_DELIVERED_TO_FMT,
			 job->sender, rcpt->address);
	if (n < 0 || (size_t)n > LMTP_HEADROOM || job->message.len < LMTP_HEADROOM) {
		out->result = (struct lmtp_deliver_result){
			.status = LMTP_DELIVER_TEMPFAIL,
			.mailbox = "INBOX",
			.error = xstrdup("headers do not fit the headroom"),
		};
		out->done_ms = ev_clock_ms();
		return;
	}
	char *start = job->message.data + LMTP_HEADROOM - n;
	memcpy(start, prefix, (size_t)n);
	out->size = job->message.len - LMTP_HEADROOM + (size_t)n;
	struct store *st = cache_get(t, job->data_dir, rcpt->user, &out->result);
	if (st != NULL) {
		lmtp_deliver_store(st, rcpt->detail, start, out->size, &out->result);
		if (out->result.status == LMTP_DELIVER_TEMPFAIL)
			cache_drop(t, st);
	}
	out->done_ms = ev_clock_ms();
}

static void job_run(struct pool_thread *t, struct lmtp_job *job)
{
	for (size_t i = 0; i < job->rcpt_count; i++) {
		/* The client is gone and will never see a reply: it will send
		 * the message again, so deliver no more copies than needed. */
		if (atomic_load(&job->cancelled))
			break;
		deliver_one(t, job, i);
	}
}

/* --- Threads ------------------------------------------------------------------ */

static void notify(struct lmtp_pool *pool)
{
	uint64_t one = 1;
	/* EAGAIN means the counter is at its maximum: already readable. */
	while (write(pool->notify_fd, &one, sizeof(one)) < 0) {
		if (errno == EAGAIN)
			break;
		if (errno != EINTR) {
			log_msg(LOG_ERROR, "lmtp_pool_notify", "eventfd write: %s", strerror(errno));
			break;
		}
	}
}

static struct timespec deadline_of(uint64_t ms)
{
	return (struct timespec){ .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000 };
}

static void *thread_main(void *arg)
{
	struct pool_thread *t = arg;
	struct lmtp_pool *pool = t->pool;

	for (;;) {
		pthread_mutex_lock(&pool->lock);
		while (pool->todo.head == NULL && !pool->stopping) {
			uint64_t expiry = cache_next_expiry(t);
			if (expiry == 0) {
				pthread_cond_wait(&pool->wake, &pool->lock);
			} else {
				struct timespec ts = deadline_of(expiry);
				if (pthread_cond_timedwait(&pool->wake, &pool->lock, &ts) == ETIMEDOUT)
					break;
			}
		}
		bool stopping = pool->stopping;
		struct lmtp_job *job = stopping ? NULL : queue_pop(&pool->todo);
		pthread_mutex_unlock(&pool->lock);
		if (stopping)
			break;
		if (job != NULL) {
			job_run(t, job);
			pthread_mutex_lock(&pool->lock);
			queue_push(&pool->done, job);
			/* After the push: see lmtp_pool_next_done. */
			notify(pool);
			pthread_mutex_unlock(&pool->lock);
		}
		/* Closing may checkpoint the WAL: never under the lock. */
		cache_expire(t, ev_clock_ms());
	}
	while (t->cached > 0)
		cache_remove(t, 0);
	return NULL;
}

struct lmtp_pool *lmtp_pool_new(unsigned threads, int *notify_fd_r)
{
	struct lmtp_pool *pool = xcalloc(1, sizeof(*pool));
	pthread_condattr_t attr;
	int err;

	if (threads == 0)
		threads = 1;
	pool->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pool->notify_fd < 0) {
		free(pool);
		return NULL;
	}
	if ((err = pthread_mutex_init(&pool->lock, NULL)) != 0)
		goto fail_fd;
	if ((err = pthread_condattr_init(&attr)) != 0)
		goto fail_lock;
	/* Linger deadlines come from ev_clock_ms(), a CLOCK_MONOTONIC time. */
	err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (err == 0)
		err = pthread_cond_init(&pool->wake, &attr);
	pthread_condattr_destroy(&attr);
	if (err != 0)
		goto fail_lock;
	pool->threads = xcalloc(threads, sizeof(*pool->threads));
	for (unsigned i = 0; i < threads; i++) {
		struct pool_thread *t = &pool->threads[i];
		t->pool = pool;
		err = pthread_create(&t->tid, NULL, thread_main, t);
		if (err != 0) {
			lmtp_pool_free(&pool);
			errno = err;
			return NULL;
		}
		pool->nthreads++;
	}
	*notify_fd_r = pool->notify_fd;
	return pool;

fail_lock:
	pthread_mutex_destroy(&pool->lock);
fail_fd:
	close(pool->notify_fd);
	free(pool);
	errno = err;
	return NULL;
}

void lmtp_pool_submit(struct lmtp_pool *pool, struct lmtp_job *job)
{
	job->submitted_ms = ev_clock_ms();
	pthread_mutex_lock(&pool->lock);
	queue_push(&pool->todo, job);
	pthread_cond_signal(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
}

struct lmtp_job *lmtp_pool_next_done(struct lmtp_pool *pool)
{
	uint64_t count;

	/* Reset before looking, so that a job pushed after our look has
	 * written to the fd after our read and the loop wakes again. */
	if (read(pool->notify_fd, &count, sizeof(count)) < 0 && errno != EAGAIN && errno != EINTR)
		log_msg(LOG_ERROR, "lmtp_pool_notify", "eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&pool->lock);
	struct lmtp_job *job = queue_pop(&pool->done);
	pthread_mutex_unlock(&pool->lock);
	return job;
}

void lmtp_pool_free(struct lmtp_pool **poolp)
{
	struct lmtp_pool *pool = *poolp;
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i].tid, NULL);

	struct lmtp_job *job;
	while ((job = queue_pop(&pool->todo)) != NULL)
		lmtp_job_free(&job);
	while ((job = queue_pop(&pool->done)) != NULL)
		lmtp_job_free(&job);
	pthread_cond_destroy(&pool->wake);
	pthread_mutex_destroy(&pool->lock);
	close(pool->notify_fd);
	free(pool->threads);
	free(pool);
	*poolp = NULL;
}
