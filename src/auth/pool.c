#include "auth/pool.h"
#include "core/xalloc.h"

#include <openssl/crypto.h>

#include <stdlib.h>
#include <string.h>

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

/* The run hook: on a pool thread. */
static void job_run(struct workpool_job *link, void *thread_ctx)
{
	struct auth_job *job = WORKPOOL_CONTAINER(link, struct auth_job, link);
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

static void job_free_hook(struct workpool_job *link)
{
	struct auth_job *job = WORKPOOL_CONTAINER(link, struct auth_job, link);
	auth_job_free(&job);
}

/* Hashing keeps nothing per thread. */
static const struct workpool_ops auth_pool_ops = {
	.log_event = "auth_pool_notify",
	.run = job_run,
	.job_free = job_free_hook,
};

struct workpool *auth_pool_new(unsigned threads, int *notify_fd_r)
{
	return workpool_new(&auth_pool_ops, threads, notify_fd_r);
}

void auth_pool_submit(struct workpool *pool, struct auth_job *job)
{
	workpool_submit(pool, &job->link);
}

struct auth_job *auth_pool_next_done(struct workpool *pool)
{
	struct workpool_job *link = workpool_next_done(pool);
	return link != NULL ? WORKPOOL_CONTAINER(link, struct auth_job, link) : NULL;
}
