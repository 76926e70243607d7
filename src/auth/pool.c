#include "auth/pool.h"
#include "core/log.h"
#include "core/xalloc.h"

#include <openssl/crypto.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* A FIFO of jobs linked through job->next. */
struct job_queue {
	struct auth_job *head, *tail;
};

struct auth_pool {
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* work queued or stopping */
	struct job_queue waiting, finished;
	unsigned queued;		/* jobs waiting, running or finished */
	bool stopping;
	int notify_fd;
	unsigned nthreads;
	pthread_t *threads;
};

static void queue_push(struct job_queue *q, struct auth_job *job)
{
	job->next = NULL;
	if (q->tail != NULL)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
}

static struct auth_job *queue_pop(struct job_queue *q)
{
	struct auth_job *job = q->head;
	if (job != NULL) {
		q->head = job->next;
		if (q->head == NULL)
			q->tail = NULL;
		job->next = NULL;
	}
	return job;
}

static struct auth_job *job_new(enum auth_job_kind kind, const char *password,
				size_t password_len, void *owner)
{
	struct auth_job *job = xcalloc(1, sizeof(*job));
	job->kind = kind;
	job->password = xmalloc(password_len + 1);
	memcpy(job->password, password, password_len);
	job->password[password_len] = '\0';
	job->password_len = password_len;
	job->result = PASSWORD_ERROR;
	job->owner = owner;
	atomic_init(&job->cancelled, false);
	return job;
}

struct auth_job *auth_job_new_verify(const char *stored, const char *password,
				     size_t password_len, void *owner)
{
	struct auth_job *job = job_new(AUTH_JOB_VERIFY, password, password_len, owner);
	job->stored = xstrdup(stored);
	return job;
}

struct auth_job *auth_job_new_hash(const char *password, size_t password_len, void *owner)
{
	return job_new(AUTH_JOB_HASH, password, password_len, owner);
}

void auth_job_free(struct auth_job **jobp)
{
	struct auth_job *job = *jobp;
	if (job == NULL)
		return;
	OPENSSL_cleanse(job->password, job->password_len);
	free(job->password);
	free(job->stored);
	free(job->hash);
	free(job);
	*jobp = NULL;
}

static void job_run(struct auth_job *job)
{
	if (atomic_load(&job->cancelled)) {
		job->result = PASSWORD_ERROR;
		job->error = "cancelled";
		return;
	}
	switch (job->kind) {
	case AUTH_JOB_VERIFY:
		job->result = password_verify(job->stored, job->password, job->password_len,
					      &job->error);
		break;
	case AUTH_JOB_HASH:
		job->hash = password_hash(job->password, job->password_len, &job->error);
		job->result = job->hash != NULL ? PASSWORD_MATCH : PASSWORD_ERROR;
		break;
	}
	/* The password has served its purpose; do not keep it around in the
	 * finished queue longer than needed. */
	OPENSSL_cleanse(job->password, job->password_len);
}

static void notify(struct auth_pool *pool)
{
	uint64_t one = 1;
	/* EAGAIN means the counter is at its maximum: already readable. */
	while (write(pool->notify_fd, &one, sizeof(one)) < 0) {
		if (errno == EAGAIN)
			break;
		if (errno != EINTR) {
			log_msg(LOG_ERROR, "auth_pool_notify", "eventfd write: %s", strerror(errno));
			break;
		}
	}
}

static void *worker_main(void *arg)
{
	struct auth_pool *pool = arg;

	pthread_mutex_lock(&pool->lock);
	for (;;) {
		while (pool->waiting.head == NULL && !pool->stopping)
			pthread_cond_wait(&pool->wake, &pool->lock);
		if (pool->stopping)
			break;
		struct auth_job *job = queue_pop(&pool->waiting);
		pthread_mutex_unlock(&pool->lock);
		job_run(job);
		pthread_mutex_lock(&pool->lock);
		queue_push(&pool->finished, job);
		/* After the push: see auth_pool_next_done. */
		notify(pool);
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

struct auth_pool *auth_pool_new(unsigned threads, int *notify_fd_r)
{
	struct auth_pool *pool = xcalloc(1, sizeof(*pool));
	int err;

	if (threads == 0)
		threads = 1;
	pool->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pool->notify_fd < 0) {
		free(pool);
		return NULL;
	}
	if ((err = pthread_mutex_init(&pool->lock, NULL)) != 0) {
		close(pool->notify_fd);
		free(pool);
		errno = err;
		return NULL;
	}
	if ((err = pthread_cond_init(&pool->wake, NULL)) != 0) {
		pthread_mutex_destroy(&pool->lock);
		close(pool->notify_fd);
		free(pool);
		errno = err;
		return NULL;
	}
	pool->threads = xcalloc(threads, sizeof(*pool->threads));
	for (unsigned i = 0; i < threads; i++) {
		err = pthread_create(&pool->threads[i], NULL, worker_main, pool);
		if (err != 0) {
			auth_pool_free(&pool);
			errno = err;
			return NULL;
		}
		pool->nthreads++;
	}
	*notify_fd_r = pool->notify_fd;
	return pool;
}

void auth_pool_submit(struct auth_pool *pool, struct auth_job *job)
{
	pthread_mutex_lock(&pool->lock);
	queue_push(&pool->waiting, job);
	pool->queued++;
	pthread_cond_signal(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
}

struct auth_job *auth_pool_next_done(struct auth_pool *pool)
{
	uint64_t count;

	/* Reset before looking, so that a job pushed after our look has
	 * written to the fd after our read and the loop wakes again. */
	if (read(pool->notify_fd, &count, sizeof(count)) < 0 && errno != EAGAIN && errno != EINTR)
		log_msg(LOG_ERROR, "auth_pool_notify", "eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&pool->lock);
	struct auth_job *job = queue_pop(&pool->finished);
	if (job != NULL)
		pool->queued--;
	pthread_mutex_unlock(&pool->lock);
	return job;
}

unsigned auth_pool_pending(struct auth_pool *pool)
{
	pthread_mutex_lock(&pool->lock);
	unsigned n = pool->queued;
	pthread_mutex_unlock(&pool->lock);
	return n;
}

void auth_pool_free(struct auth_pool **poolp)
{
	struct auth_pool *pool = *poolp;
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);

	struct auth_job *job;
	while ((job = queue_pop(&pool->waiting)) != NULL)
		auth_job_free(&job);
	while ((job = queue_pop(&pool->finished)) != NULL)
		auth_job_free(&job);
	pthread_cond_destroy(&pool->wake);
	pthread_mutex_destroy(&pool->lock);
	close(pool->notify_fd);
	free(pool->threads);
	free(pool);
	*poolp = NULL;
}
