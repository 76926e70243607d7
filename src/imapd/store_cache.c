#include "imapd/store_cache.h"
#include "core/xalloc.h"
#include "imapd/imapd.h"
#include "imapd/search_indexer.h"
#include "net/ev.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/* How long an unused handle stays open: a user's IDLE sessions woken by
 * one delivery (all in one loop pass) and a client's next command a moment
 * later reuse one open instead of opening once each. */
#define STORE_LINGER_MS 1000
#define STORE_CACHE_BUCKETS 4096

struct store_cache_entry {
	struct store_cache_entry *next;	/* in its bucket */
	struct imapd_context *ctx;
	char *user;
	struct store *store;
	unsigned refs;
	struct ev_timer linger;
};

struct store_cache {
	struct store_cache_entry *buckets[STORE_CACHE_BUCKETS];
};

static size_t bucket_of(const char *user)
{
	/* FNV-1a: user names are ours (from the password file) by now. */
	uint64_t h = 1469598103934665603ull;
	for (const unsigned char *p = (const unsigned char *)user; *p != '\0'; p++)
		h = (h ^ *p) * 1099511628211ull;
	return (size_t)(h % STORE_CACHE_BUCKETS);
}

static void entry_close(struct store_cache_entry *e)
{
	struct store_cache *cache = e->ctx->store_cache;
	struct store_cache_entry **link = &cache->buckets[bucket_of(e->user)];
	while (*link != e)
		link = &(*link)->next;
	*link = e->next;
	ev_timer_stop(e->ctx->loop, &e->linger);
	store_close(&e->store);
	free(e->user);
	free(e);
}

static void linger_cb(void *ctx)
{
	struct store_cache_entry *e = ctx;
	if (e->refs != 0)
		return;
	entry_close(e);
	/* A closed SQLite connection leaves its caches as free heap, which
	 * glibc keeps: give it back, so thousands of IDLE sessions cost what
	 * they hold, not what the busiest moment left behind. */
	malloc_trim(0);
}

struct store *store_cache_acquire(struct imapd_context *ctx, const char *user,
				  enum store_error *error_r, char **errtext_r)
{
	if (ctx->store_cache == NULL)
		ctx->store_cache = xcalloc(1, sizeof(*ctx->store_cache));
	size_t b = bucket_of(user);
	for (struct store_cache_entry *e = ctx->store_cache->buckets[b]; e != NULL; e = e->next) {
		if (strcmp(e->user, user) == 0) {
			e->refs++;
			ev_timer_stop(ctx->loop, &e->linger);
			return e->store;
		}
	}
	struct store *st = NULL;
	if (store_open(ctx->cfg->data_dir, user, &st, error_r, errtext_r) < 0)
		return NULL;
	/* Bodies left pending (stored before the index, by `postern
	 * deliver`, or while the indexer was off or stopped): one probe. */
	bool pending = false;
	if (ctx->indexer != NULL && store_fts_has_pending(st, &pending) == 0 && pending)
		search_indexer_push(ctx->indexer, user);
	struct store_cache_entry *e = xcalloc(1, sizeof(*e));
	e->ctx = ctx;
	e->user = xstrdup(user);
	e->store = st;
	e->refs = 1;
	ev_timer_init(&e->linger, linger_cb, e);
	e->next = ctx->store_cache->buckets[b];
	ctx->store_cache->buckets[b] = e;
	return st;
}

void store_cache_release(struct imapd_context *ctx, const char *user, struct store **stp)
{
	struct store *st = *stp;
	if (st == NULL)
		return;
	*stp = NULL;
	for (struct store_cache_entry *e = ctx->store_cache->buckets[bucket_of(user)]; e != NULL; e = e->next) {
		if (e->store != st)
			continue;
		if (--e->refs == 0)
			ev_timer_start(ctx->loop, &e->linger, STORE_LINGER_MS);
		return;
	}
}

void store_cache_deinit(struct imapd_context *ctx)
{
	if (ctx->store_cache == NULL)
		return;
	for (size_t b = 0; b < STORE_CACHE_BUCKETS; b++) {
		while (ctx->store_cache->buckets[b] != NULL)
			entry_close(ctx->store_cache->buckets[b]);
	}
	free(ctx->store_cache);
	ctx->store_cache = NULL;
}
