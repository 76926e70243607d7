#include "lmtp/pool.h"
#include "core/xalloc.h"
#include "net/ev.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A store handle a thread keeps open between deliveries. */
struct cached_store {
	char *data_dir;		/* a reload may change it: part of the key */
	char *user;
	struct store *st;
	uint64_t last_ms;	/* ev_clock_ms() of its last delivery */
};

/* A delivery thread's context: only this thread touches it (store.h: one
 * thread a handle). */
struct thread_stores {
	struct cached_store cache[LMTP_POOL_CACHED_STORES];
	size_t cached;
};

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

static void cache_remove(struct thread_stores *t, size_t i)
{
	store_close(&t->cache[i].st);
	free(t->cache[i].data_dir);
	free(t->cache[i].user);
	t->cache[i] = t->cache[--t->cached];
}

/* The open store of user, opening it (and closing the least recently used
 * one when the cache is full) if needed; NULL with r filled on failure. */
static struct store *cache_get(struct thread_stores *t, const char *data_dir, const char *user,
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
static void cache_drop(struct thread_stores *t, const struct store *st)
{
	for (size_t i = 0; i < t->cached; i++) {
		if (t->cache[i].st == st) {
			cache_remove(t, i);
			return;
		}
	}
}

static void cache_expire(struct thread_stores *t, uint64_t now)
{
	for (size_t i = 0; i < t->cached;) {
		if (now - t->cache[i].last_ms >= LMTP_POOL_LINGER_MS)
			cache_remove(t, i);
		else
			i++;
	}
}

/* When the first cached store expires, or 0 when none is cached. */
static uint64_t cache_next_expiry(const struct thread_stores *t)
{
	uint64_t first = 0;
	for (size_t i = 0; i < t->cached; i++) {
		if (first == 0 || t->cache[i].last_ms < first)
			first = t->cache[i].last_ms;
	}
	return t->cached > 0 ? first + LMTP_POOL_LINGER_MS : 0;
}

/* --- Running a job ----------------------------------------------------------- */

static void deliver_one(struct thread_stores *t, struct lmtp_job *job, size_t i)
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

/* The run hook: on a delivery thread, with its stores. */
static void job_run(struct workpool_job *link, void *thread_ctx)
{
	struct lmtp_job *job = WORKPOOL_CONTAINER(link, struct lmtp_job, link);
	struct thread_stores *t = thread_ctx;
	for (size_t i = 0; i < job->rcpt_count; i++) {
		/* The client is gone and will never see a reply: it will send
		 * the message again, so deliver no more copies than needed. */
		if (atomic_load(&job->cancelled))
			break;
		deliver_one(t, job, i);
	}
}

/* --- The workpool hooks ------------------------------------------------------ */

static void *thread_init(void)
{
	return xcalloc(1, sizeof(struct thread_stores));
}

/* Closing may checkpoint the WAL: the pool calls this out of its lock. */
static uint64_t thread_idle(void *thread_ctx)
{
	struct thread_stores *t = thread_ctx;
	cache_expire(t, ev_clock_ms());
	return cache_next_expiry(t);
}

static void thread_deinit(void *thread_ctx)
{
	struct thread_stores *t = thread_ctx;
	while (t->cached > 0)
		cache_remove(t, 0);
	free(t);
}

static void job_free_hook(struct workpool_job *link)
{
	struct lmtp_job *job = WORKPOOL_CONTAINER(link, struct lmtp_job, link);
	lmtp_job_free(&job);
}

static const struct workpool_ops lmtp_pool_ops = {
	.log_event = "lmtp_pool_notify",
	.run = job_run,
	.job_free = job_free_hook,
	.thread_init = thread_init,
	.thread_idle = thread_idle,
	.thread_deinit = thread_deinit,
};

struct workpool *lmtp_pool_new(unsigned threads, int *notify_fd_r)
{
	return workpool_new(&lmtp_pool_ops, threads, notify_fd_r);
}

void lmtp_pool_submit(struct workpool *pool, struct lmtp_job *job)
{
	job->submitted_ms = ev_clock_ms();
	workpool_submit(pool, &job->link);
}

struct lmtp_job *lmtp_pool_next_done(struct workpool *pool)
{
	struct workpool_job *link = workpool_next_done(pool);
	return link != NULL ? WORKPOOL_CONTAINER(link, struct lmtp_job, link) : NULL;
}
