/* The full-text indexer: a round reads a batch of pending bodies, computes
 * their text outside any transaction, and commits them to search.db and
 * then their marks to index.db (store_fts_commit). */
#include "imapd/search_indexer.h"

#include "core/log.h"
#include "core/xalloc.h"
#include "imapd/search_text.h"
#include "metrics/metrics.h"
#include "mime/mime.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- one user ----------------------------------------------------------- */

static bool stopped(const atomic_bool *stop)
{
	return stop != NULL && atomic_load_explicit(stop, memory_order_relaxed);
}

/* The text of one body, or LEFT_OUT when it cannot be indexed (file
 * missing while its row exists, empty, over SEARCH_INDEX_FILE_MAX, or text
 * above the cap): SEARCH
 * reads those. A body deleted meanwhile is LEFT_OUT too; its mark then
 * matches no row. Errors other than a missing file fail the round. */
static int doc_compute(struct store *st, struct store_fts_doc *doc)
{
	int fd;
	size_t size;
	doc->state = STORE_FTS_LEFT_OUT;
	if (doc->size > SEARCH_INDEX_FILE_MAX)
		return 0;
	if (store_fts_blob_open(st, doc->hash, &fd, &size) < 0)
		return store_last_error(st, NULL) == STORE_ERR_NOT_FOUND ? 0 : -1;
	if (size == 0 || size > SEARCH_INDEX_FILE_MAX) {
		(void)close(fd);
		return 0;
	}
	void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	(void)close(fd);
	if (map == MAP_FAILED) {
		log_msg(LOG_WARN, "search_indexer", "mmap body %s: %s", doc->hash, strerror(errno));
		return 0;
	}
	const char *data = map;
	struct mime_part *root = mime_parse(data, size);
	if (root != NULL) {
		doc->text = search_text_headers(root, data);
		if (search_text_full(root, data, doc->text))
			doc->state = STORE_FTS_INDEXED;
		mime_free(&root);
	}
	if (munmap(map, size) < 0)
		log_msg(LOG_WARN, "search_indexer", "munmap: %s", strerror(errno));
	return 0;
}

static void count_docs(const struct store_fts_doc *docs, size_t count, struct search_index_stats *stats)
{
	for (size_t i = 0; i < count; i++) {
		if (docs[i].state == STORE_FTS_INDEXED)
			stats->indexed++;
		else
			stats->left_out++;
	}
}

/* One batch after the body id `after`: 1 done one, 0 none pending there,
 * -1 error. */
static int index_round(struct store *st, const atomic_bool *stop, int64_t *after,
		       struct search_index_stats *stats)
{
	struct store_fts_doc *docs;
	size_t count;
	if (store_fts_pending(st, *after, SEARCH_INDEX_BATCH, SEARCH_INDEX_BATCH_BYTES, &docs, &count) < 0)
		return -1;
	if (count == 0)
		return 0;
	int rc = 1;
	for (size_t i = 0; i < count && rc == 1; i++) {
		if (stopped(stop) || doc_compute(st, &docs[i]) < 0)
			rc = -1;
	}
	/* Stopped: dropped uncommitted, the bodies stay pending. */
	if (rc == 1 && stopped(stop))
		rc = -1;
	if (rc == 1 && store_fts_commit(st, docs, count) < 0)
		rc = -1;
	if (rc == 1) {
		count_docs(docs, count, stats);
		*after = docs[count - 1].blob_id;
	}
	store_fts_docs_free(&docs, count);
	return rc;
}

int search_index_user(struct store *st, const atomic_bool *stop, struct search_index_stats *stats)
{
	int64_t after = 0;
	for (;;) {
		int rc = index_round(st, stop, &after, stats);
		if (rc < 0)
			return stopped(stop) ? 0 : -1;
		if (rc > 0)
			continue;
		/* Ids below `after` can come back pending (an id reused by
		 * new content): one more pass from the start ends it. */
		if (after == 0)
			break;
		after = 0;
	}
	size_t removed = 0;
	int rc = store_fts_drain(st, &removed);
	stats->removed += removed;
	return rc;
}

/* ---- the background thread ---------------------------------------------- */

struct search_indexer {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	char **queue;			/* users waiting, oldest first; under lock */
	size_t count, cap;
	atomic_bool stop;
	char *data_dir;
	struct metrics_worker *metrics;	/* or NULL */
};

static void queue_gauge(struct search_indexer *ix)
{
	if (ix->metrics != NULL)
		__atomic_store_n(&ix->metrics->search_index_queue, (int64_t)ix->count, __ATOMIC_RELAXED);
}

void search_indexer_push(struct search_indexer *ix, const char *user)
{
	if (ix == NULL)
		return;
	if (pthread_mutex_lock(&ix->lock) != 0)
		abort();
	bool queued = false;
	for (size_t i = 0; i < ix->count && !queued; i++)
		queued = strcmp(ix->queue[i], user) == 0;
	if (!queued && ix->count >= SEARCH_INDEX_QUEUE_MAX) {
		log_msg(LOG_WARN, "search_indexer", "queue full, user %s not queued", user);
	} else if (!queued) {
		if (ix->count == ix->cap) {
			ix->cap = ix->cap ? ix->cap * 2 : 16;
			ix->queue = xrealloc(ix->queue, ix->cap * sizeof(*ix->queue));
		}
		ix->queue[ix->count++] = xstrdup(user);
		queue_gauge(ix);
		(void)pthread_cond_signal(&ix->wake);
	}
	(void)pthread_mutex_unlock(&ix->lock);
}

/* Waits on the queue's condition until deadline (CLOCK_REALTIME, as
 * pthread_cond_timedwait measures) or stop. Called with the lock held. */
static void settle(struct search_indexer *ix, const struct timespec *deadline)
{
	while (!atomic_load(&ix->stop) && pthread_cond_timedwait(&ix->wake, &ix->lock, deadline) != ETIMEDOUT)
		;
}

/* The next user, or NULL once stopped. A queue that was empty is left to
 * fill for SEARCH_INDEX_SETTLE_MS first: deliveries arriving one after
 * the other become one round per user instead of one each, and the
 * indexer's commits do not alternate with every delivery's. */
static char *queue_pop(struct search_indexer *ix)
{
	if (pthread_mutex_lock(&ix->lock) != 0)
		abort();
	if (ix->count == 0) {
		while (ix->count == 0 && !atomic_load(&ix->stop))
			(void)pthread_cond_wait(&ix->wake, &ix->lock);
		struct timespec deadline;
		if (clock_gettime(CLOCK_REALTIME, &deadline) == 0) {
			deadline.tv_nsec += (long)SEARCH_INDEX_SETTLE_MS * 1000000L;
			deadline.tv_sec += deadline.tv_nsec / 1000000000L;
			deadline.tv_nsec %= 1000000000L;
			settle(ix, &deadline);
		}
	}
	char *user = NULL;
	if (!atomic_load(&ix->stop)) {
		user = ix->queue[0];
		memmove(ix->queue, ix->queue + 1, (ix->count - 1) * sizeof(*ix->queue));
		ix->count--;
		queue_gauge(ix);
	}
	(void)pthread_mutex_unlock(&ix->lock);
	return user;
}

static void index_one(struct search_indexer *ix, const char *user)
{
	struct store *st;
	enum store_error error;
	char *text = NULL;
	if (store_open(ix->data_dir, user, &st, &error, &text) < 0) {
		log_msg(LOG_WARN, "search_indexer", "user %s: store: %s", user, text ? text : "");
		free(text);
		return;
	}
	/* Marks lost in a power failure are only redone: no fsync per batch
	 * competing with deliveries' own. */
	if (store_set_lazy_sync(st) < 0)
		log_msg(LOG_WARN, "search_indexer", "user %s: %s", user, "cannot relax synchronous");
	struct search_index_stats stats = { 0 };
	uint64_t started = 0;
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
		started = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	int rc = search_index_user(st, &ix->stop, &stats);
	if (ix->metrics != NULL)
		METRIC_ADD(ix->metrics->search_indexed, stats.indexed);
	if (rc < 0) {
		const char *detail;
		store_last_error(st, &detail);
		log_msg(LOG_WARN, "search_indexer", "user %s: %s", user, detail);
	} else if (stats.indexed + stats.left_out + stats.removed > 0) {
		uint64_t ms = 0;
		if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
			ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 - started;
		struct log_line l;
		log_begin(&l, LOG_DEBUG, "search_indexed");
		log_str(&l, "user", user);
		log_uint(&l, "indexed", stats.indexed);
		log_uint(&l, "left_out", stats.left_out);
		log_uint(&l, "removed", stats.removed);
		log_uint(&l, "ms", ms);
		log_end(&l);
	}
	store_close(&st);
}

/* SCHED_IDLE runs the thread only when a CPU has nothing else to do;
 * where it is refused, nice 19 for this thread alone (Linux applies
 * setpriority to a thread id). */
static void lower_priority(void)
{
	struct sched_param sp = { .sched_priority = 0 };
	if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) == 0)
		return;
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), 19) < 0)
		log_msg(LOG_WARN, "search_indexer", "cannot lower the indexer's priority: %s", strerror(errno));
}

static void *indexer_main(void *arg)
{
	struct search_indexer *ix = arg;
	lower_priority();
	char *user;
	while ((user = queue_pop(ix)) != NULL) {
		index_one(ix, user);
		free(user);
	}
	return NULL;
}

struct search_indexer *search_indexer_new(const char *data_dir, struct metrics_worker *metrics)
{
	struct search_indexer *ix = xcalloc(1, sizeof(*ix));
	ix->data_dir = xstrdup(data_dir);
	ix->metrics = metrics;
	atomic_init(&ix->stop, false);
	if (pthread_mutex_init(&ix->lock, NULL) != 0)
		goto fail_mutex;
	if (pthread_cond_init(&ix->wake, NULL) != 0)
		goto fail_cond;
	int rc = pthread_create(&ix->thread, NULL, indexer_main, ix);
	if (rc == 0)
		return ix;
	errno = rc;
	(void)pthread_cond_destroy(&ix->wake);
fail_cond:
	(void)pthread_mutex_destroy(&ix->lock);
fail_mutex:
	log_msg(LOG_ERROR, "search_indexer", "cannot start the indexer thread: %s", strerror(errno));
	free(ix->data_dir);
	free(ix);
	return NULL;
}

void search_indexer_free(struct search_indexer **ixp)
{
	struct search_indexer *ix = *ixp;
	if (ix == NULL)
		return;
	*ixp = NULL;
	if (pthread_mutex_lock(&ix->lock) != 0)
		abort();
	atomic_store(&ix->stop, true);
	(void)pthread_cond_broadcast(&ix->wake);
	(void)pthread_mutex_unlock(&ix->lock);
	if (pthread_join(ix->thread, NULL) != 0)
		abort();
	for (size_t i = 0; i < ix->count; i++)
		free(ix->queue[i]);
	free(ix->queue);
	(void)pthread_cond_destroy(&ix->wake);
	(void)pthread_mutex_destroy(&ix->lock);
	free(ix->data_dir);
	free(ix);
}
