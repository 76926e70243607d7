#include "auth/pool.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* "secret" in a cheap scheme, so the test is about the pool, not hashing. */
static const char sha256_secret[] =
	"{SHA256-CRYPT}$5$pepperpepper$1gXBgVPH9BVu9zNVdYv6UUB99ZgpVY/EnQWUGTdzAw2";

/* Waits for the eventfd and collects finished jobs until want have come,
 * as an event loop would. Returns how many came. */
static int collect(struct workpool *pool, int fd, struct auth_job **jobs, int want)
{
	int got = 0;
	while (got < want) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int n = poll(&pfd, 1, 10000);
		if (n <= 0)
			break;
		struct auth_job *job;
		while ((job = auth_pool_next_done(pool)) != NULL && got < want)
			jobs[got++] = job;
		if (job != NULL)
			auth_job_free(&job);	/* not expected: more than want */
	}
	return got;
}

static void test_verify_jobs(void)
{
	int fd = -1;
	struct workpool *pool = auth_pool_new(3, &fd);
	CHECK(pool != NULL);
	if (pool == NULL)
		return;
	CHECK(fd >= 0);
	CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
	CHECK(auth_pool_next_done(pool) == NULL);

	enum { N = 12 };
	int owners[N];
	for (int i = 0; i < N; i++) {
		owners[i] = i;
		const char *pw = i % 3 == 0 ? "wrong" : "secret";
		const char *stored = i % 4 == 1 ? "{MD5}nope" : sha256_secret;
		auth_pool_submit(pool, auth_job_new_verify(stored, pw, strlen(pw), &owners[i]));
	}
	struct auth_job *jobs[N];
	int got = collect(pool, fd, jobs, N);
	CHECK_INT(got, N);
	bool seen[N] = { false };
	for (int i = 0; i < got; i++) {
		int k = *(int *)jobs[i]->owner;
		CHECK(k >= 0 && k < N && !seen[k]);
		seen[k] = true;
		if (k % 4 == 1) {
			CHECK_INT(jobs[i]->result, PASSWORD_ERROR);
			CHECK_STR(jobs[i]->error, "unknown password scheme");
		} else {
			CHECK_INT(jobs[i]->result, k % 3 == 0 ? PASSWORD_MISMATCH : PASSWORD_MATCH);
			CHECK(jobs[i]->error == NULL);
		}
		auth_job_free(&jobs[i]);
		CHECK(jobs[i] == NULL);
	}
	CHECK_INT(workpool_pending(pool), 0);
	CHECK(auth_pool_next_done(pool) == NULL);
	/* Drained: the eventfd is quiet again. */
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	CHECK_INT(poll(&pfd, 1, 0), 0);
	workpool_free(&pool);
	CHECK(pool == NULL);
	workpool_free(&pool);
	/* The pool closed its fd. */
	CHECK(fcntl(fd, F_GETFD) < 0 && errno == EBADF);
}

static void test_hash_job(void)
{
	int fd;
	struct workpool *pool = auth_pool_new(1, &fd);
	CHECK(pool != NULL);
	if (pool == NULL)
		return;
	auth_pool_submit(pool, auth_job_new_hash("hunter2", 7, NULL));
	struct auth_job *job = NULL;
	CHECK_INT(collect(pool, fd, &job, 1), 1);
	if (job != NULL) {
		CHECK_INT(job->kind, AUTH_JOB_HASH);
		CHECK_INT(job->result, PASSWORD_MATCH);
		CHECK(job->hash != NULL && strncmp(job->hash, "{ARGON2ID}$argon2id$", 20) == 0);
		/* The password copy is wiped as soon as the work is done. */
		CHECK(memcmp(job->password, "\0\0\0\0\0\0\0", 7) == 0);
		if (job->hash != NULL) {
			const char *error;
			CHECK_INT(password_verify(job->hash, "hunter2", 7, &error), PASSWORD_MATCH);
		}
		auth_job_free(&job);
	}
	workpool_free(&pool);
}

static void test_cancelled(void)
{
	int fd;
	struct workpool *pool = auth_pool_new(1, &fd);
	CHECK(pool != NULL);
	if (pool == NULL)
		return;
	/* The single thread is busy with a slow hash while we cancel the
	 * verify queued behind it. */
	auth_pool_submit(pool, auth_job_new_hash("slow", 4, NULL));
	struct auth_job *victim = auth_job_new_verify(sha256_secret, "secret", 6, NULL);
	auth_pool_submit(pool, victim);
	victim->cancelled = true;
	struct auth_job *jobs[2] = { NULL, NULL };
	CHECK_INT(collect(pool, fd, jobs, 2), 2);
	CHECK(jobs[1] == victim);
	if (jobs[1] == victim) {
		CHECK_INT(victim->result, PASSWORD_ERROR);
		CHECK_STR(victim->error, "cancelled");
	}
	auth_job_free(&jobs[0]);
	auth_job_free(&jobs[1]);
	workpool_free(&pool);
}

static void test_free_with_pending(void)
{
	int fd;
	struct workpool *pool = auth_pool_new(2, &fd);
	CHECK(pool != NULL);
	if (pool == NULL)
		return;
	/* Queued, running and finished jobs are all freed (ASan checks). */
	for (int i = 0; i < 20; i++)
		auth_pool_submit(pool, auth_job_new_verify(sha256_secret, "secret", 6, NULL));
	auth_pool_submit(pool, auth_job_new_hash("x", 1, NULL));
	CHECK(workpool_pending(pool) > 0);
	workpool_free(&pool);
	CHECK(pool == NULL);
}

static void test_zero_threads_means_one(void)
{
	int fd;
	struct workpool *pool = auth_pool_new(0, &fd);
	CHECK(pool != NULL);
	if (pool == NULL)
		return;
	auth_pool_submit(pool, auth_job_new_verify("{PLAIN}a", "a", 1, NULL));
	struct auth_job *job = NULL;
	CHECK_INT(collect(pool, fd, &job, 1), 1);
	CHECK(job != NULL && job->result == PASSWORD_MATCH);
	auth_job_free(&job);
	workpool_free(&pool);
}

int main(void)
{
	RUN(test_verify_jobs);
	RUN(test_hash_job);
	RUN(test_cancelled);
	RUN(test_free_with_pending);
	RUN(test_zero_threads_means_one);
	return harness_finish();
}
