#include "core/workpool.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* What the hooks saw. The hooks run on pool threads, where CHECK (not
 * thread-safe) cannot be used: they count here and the tests check. */
static atomic_int inits, idles, deinits, runs, freed, wrong_thread;
/* Set by a test: thread_idle asks to be called again this many ms later
 * (0: only after the next job). */
static atomic_int idle_every_ms;

struct thread_ctx {
	pthread_t tid;		/* the thread that made it */
	int jobs;		/* run on this thread */
};

struct test_job {
	int id;
	int sleep_ms;		/* how long the run takes */
	atomic_int runs;	/* times it was run: must end as 1 */
	struct workpool_job link;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

static void *thread_init(void)
{
	struct thread_ctx *ctx = calloc(1, sizeof(*ctx));
	ctx->tid = pthread_self();
	atomic_fetch_add(&inits, 1);
	return ctx;
}

static void check_own_thread(const struct thread_ctx *ctx)
{
	if (ctx == NULL || !pthread_equal(ctx->tid, pthread_self()))
		atomic_fetch_add(&wrong_thread, 1);
}

static uint64_t thread_idle(void *thread_ctx)
{
	check_own_thread(thread_ctx);
	atomic_fetch_add(&idles, 1);
	int every = atomic_load(&idle_every_ms);
	return every > 0 ? now_ms() + (uint64_t)every : 0;
}

static void thread_deinit(void *thread_ctx)
{
	check_own_thread(thread_ctx);
	atomic_fetch_add(&deinits, 1);
	free(thread_ctx);
}

static void job_run(struct workpool_job *link, void *thread_ctx)
{
	struct test_job *job = WORKPOOL_CONTAINER(link, struct test_job, link);
	struct thread_ctx *ctx = thread_ctx;
	check_own_thread(ctx);
	ctx->jobs++;
	atomic_fetch_add(&job->runs, 1);
	if (job->sleep_ms > 0)
		sleep_ms(job->sleep_ms);
	atomic_fetch_add(&runs, 1);
}

static void job_free(struct workpool_job *link)
{
	atomic_fetch_add(&freed, 1);
	free(WORKPOOL_CONTAINER(link, struct test_job, link));
}

static const struct workpool_ops with_state = {
	.log_event = "test_pool",
	.run = job_run,
	.job_free = job_free,
	.thread_init = thread_init,
	.thread_idle = thread_idle,
	.thread_deinit = thread_deinit,
};

static void run_plain(struct workpool_job *link, void *thread_ctx)
{
	if (thread_ctx != NULL)
		atomic_fetch_add(&wrong_thread, 1);
	atomic_fetch_add(&runs, 1);
}

/* No per-thread hooks: the hashing pool's shape. */
static const struct workpool_ops stateless = {
	.log_event = "test_pool",
	.run = run_plain,
	.job_free = job_free,
};

static void reset_counts(void)
{
	atomic_store(&inits, 0);
	atomic_store(&idles, 0);
	atomic_store(&deinits, 0);
	atomic_store(&runs, 0);
	atomic_store(&freed, 0);
	atomic_store(&wrong_thread, 0);
	atomic_store(&idle_every_ms, 0);
}

static struct test_job *job_new(int id, int sleep_for)
{
	struct test_job *job = calloc(1, sizeof(*job));
	job->id = id;
	job->sleep_ms = sleep_for;
	atomic_init(&job->runs, 0);
	return job;
}

static bool readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	return poll(&pfd, 1, timeout_ms) == 1;
}

/* As an event loop would: waits for the eventfd, then collects until NULL.
 * Marks each job's id in seen (a second sighting counts in *twice) and
 * frees it. Returns how many came back. */
static int collect(struct workpool *pool, int fd, int want, int *seen, int *twice)
{
	int got = 0;
	while (got < want && readable(fd, 10000)) {
		struct workpool_job *link;
		while ((link = workpool_next_done(pool)) != NULL) {
			struct test_job *job = WORKPOOL_CONTAINER(link, struct test_job, link);
			if (seen[job->id]++ > 0)
				(*twice)++;
			if (atomic_load(&job->runs) != 1)
				(*twice)++;
			free(job);
			got++;
		}
	}
	return got;
}

static void test_eventfd_wakes(void)
{
	reset_counts();
	int fd = -1;
	struct workpool *pool = workpool_new(&stateless, 1, &fd);
	CHECK(pool != NULL);
	if (pool == NULL)
		return;
	CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
	CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
	CHECK(!readable(fd, 0));
	CHECK(workpool_next_done(pool) == NULL);

	struct test_job *job = job_new(0, 0);
	workpool_submit(pool, &job->link);
	CHECK_INT(workpool_pending(pool), 1);
	CHECK(readable(fd, 10000));
	CHECK(workpool_next_done(pool) == &job->link);
	CHECK_INT(workpool_pending(pool), 0);
	CHECK(workpool_next_done(pool) == NULL);
	/* Drained: quiet until the next job finishes. */
	CHECK(!readable(fd, 0));
	free(job);
	CHECK_INT(atomic_load(&runs), 1);
	CHECK_INT(atomic_load(&wrong_thread), 0);
	workpool_free(&pool);
	CHECK(pool == NULL);
	workpool_free(&pool);
	CHECK(fcntl(fd, F_GETFD) < 0 && errno == EBADF);
	CHECK_INT(atomic_load(&freed), 0);
}

static void test_many_threads_many_jobs(void)
{
	reset_counts();
	enum { THREADS = 8, JOBS = 5000 };
	int fd = -1;
	struct workpool *pool = workpool_new(&with_state, THREADS, &fd);
	CHECK(pool != NULL);
	if (pool == NULL)
		return;
	static int seen[JOBS];
	memset(seen, 0, sizeof(seen));
	int twice = 0, got = 0;
	/* Collect while submitting, as the loop does. */
	for (int i = 0; i < JOBS; i++) {
		struct test_job *job = job_new(i, 0);
		workpool_submit(pool, &job->link);
		if (i % 500 == 499)
			got += collect(pool, fd, 1, seen, &twice);
	}
	got += collect(pool, fd, JOBS - got, seen, &twice);
	CHECK_INT(got, JOBS);
	CHECK_INT(twice, 0);
	for (int i = 0; i < JOBS; i++)
		CHECK_INT(seen[i], 1);
	CHECK_INT(workpool_pending(pool), 0);
	CHECK_INT(atomic_load(&runs), JOBS);
	/* Idle runs after every job, on the thread that ran it. */
	CHECK(atomic_load(&idles) >= JOBS);
	CHECK_INT(atomic_load(&inits), THREADS);
	CHECK_INT(atomic_load(&deinits), 0);
	workpool_free(&pool);
	CHECK_INT(atomic_load(&deinits), THREADS);
	CHECK_INT(atomic_load(&wrong_thread), 0);
	CHECK_INT(atomic_load(&freed), 0);
}

static void test_free_with_jobs_in_flight(void)
{
	reset_counts();
	enum { THREADS = 3, JOBS = 30 };
	int fd = -1;
	struct workpool *pool = workpool_new(&with_state, THREADS, &fd);
	CHECK(pool != NULL);
	if (pool == NULL)
		return;
	struct test_job *jobs[JOBS];
	for (int i = 0; i < JOBS; i++) {
		jobs[i] = job_new(i, 30);
		workpool_submit(pool, &jobs[i]->link);
	}
	CHECK_INT(workpool_pending(pool), JOBS);
	/* Let every thread start a job, then stop in the middle of them. */
	for (int i = 0; i < 200; i++) {
		int started = 0;
		for (int k = 0; k < JOBS; k++)
			started += atomic_load(&jobs[k]->runs);
		if (started >= THREADS)
			break;
		sleep_ms(5);
	}
	workpool_free(&pool);
	/* The running jobs finished before the threads were joined; the
	 * ones waiting never ran; every job was freed exactly once. */
	int ran = atomic_load(&runs);
	CHECK(ran >= THREADS && ran < JOBS);
	CHECK_INT(atomic_load(&freed), JOBS);
	CHECK_INT(atomic_load(&deinits), THREADS);
	CHECK_INT(atomic_load(&wrong_thread), 0);
	sleep_ms(50);
	CHECK_INT(atomic_load(&runs), ran);
}

static void test_idle_deadline(void)
{
	reset_counts();
	atomic_store(&idle_every_ms, 10);
	int fd = -1;
	struct workpool *pool = workpool_new(&with_state, 2, &fd);
	CHECK(pool != NULL);
	if (pool == NULL)
		return;
	/* Before any job there is no deadline: idle is not called. */
	sleep_ms(50);
	CHECK_INT(atomic_load(&idles), 0);
	/* After a job, the thread that ran it keeps calling idle at the
	 * deadline it returns, with no job in between. */
	struct test_job *job = job_new(0, 0);
	workpool_submit(pool, &job->link);
	int seen[1] = { 0 }, twice = 0;
	CHECK_INT(collect(pool, fd, 1, seen, &twice), 1);
	sleep_ms(200);
	CHECK(atomic_load(&idles) >= 5);
	/* Once idle says "no deadline", it is not called until a job. */
	atomic_store(&idle_every_ms, 0);
	sleep_ms(50);
	int settled = atomic_load(&idles);
	sleep_ms(100);
	CHECK_INT(atomic_load(&idles), settled);
	workpool_free(&pool);
	CHECK_INT(atomic_load(&inits), 2);
	CHECK_INT(atomic_load(&deinits), 2);
	CHECK_INT(atomic_load(&wrong_thread), 0);
}

static void test_zero_threads_means_one(void)
{
	reset_counts();
	int fd = -1;
	struct workpool *pool = workpool_new(&with_state, 0, &fd);
	CHECK(pool != NULL);
	if (pool == NULL)
		return;
	struct test_job *job = job_new(0, 0);
	workpool_submit(pool, &job->link);
	int seen[1] = { 0 }, twice = 0;
	CHECK_INT(collect(pool, fd, 1, seen, &twice), 1);
	workpool_free(&pool);
	CHECK_INT(atomic_load(&inits), 1);
	CHECK_INT(atomic_load(&deinits), 1);
}

int main(void)
{
	RUN(test_eventfd_wakes);
	RUN(test_many_threads_many_jobs);
	RUN(test_free_with_jobs_in_flight);
	RUN(test_idle_deadline);
	RUN(test_zero_threads_means_one);
	return harness_finish();
}
