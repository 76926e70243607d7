/* The full-text indexer: puts the text of delivered messages into each
 * user's search.db after delivery (store.h "Full-text index"), so SEARCH
 * BODY and TEXT can skip reading them, without delivery waiting for it.
 *
 * Two users of the same code: a worker's background thread
 * (search_indexer_new, fed with user names by APPEND, LMTP, logins and
 * searches), and `postern index` (search_index_user, synchronous). Both
 * build the text with search_text.c, the matcher's own code, so an answer
 * from the index is the answer a scan would give. */
#ifndef POSTERN_IMAPD_SEARCH_INDEXER_H
#define POSTERN_IMAPD_SEARCH_INDEXER_H

#include "store/store.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Bodies read per round, and bytes: one search.db transaction and one
 * index.db mark transaction each. */
#define SEARCH_INDEX_BATCH 64
#define SEARCH_INDEX_BATCH_BYTES (8u * 1024 * 1024)
/* A body file larger than this is left out unread (SEARCH reads it): its
 * text would pass SEARCH_TEXT_INDEX_MAX anyway unless it is mostly
 * attachments, and parsing it would grow the worker by its size. */
#define SEARCH_INDEX_FILE_MAX (8u * 1024 * 1024)
/* How long the thread lets its queue fill once woken (see queue_pop). */
#define SEARCH_INDEX_SETTLE_MS 1000
/* Users waiting at most; more are dropped (logged) and picked up at their
 * next login, delivery or search. */
#define SEARCH_INDEX_QUEUE_MAX 10000

struct search_index_stats {
	size_t indexed;		/* bodies now in search.db */
	size_t left_out;	/* too large or unreadable: SEARCH reads them */
	size_t removed;		/* deleted bodies removed from search.db */
};

/* Indexes every pending body of st's user, round by round, until none is
 * left, then drains deleted bodies. stop (optional) is checked between
 * bodies: once it is true the round in progress is dropped, not committed
 * (it stays pending). Blocks on files, the CPU and both databases' locks.
 * 0, or -1 with the store's error. stats are added to. */
int search_index_user(struct store *st, const atomic_bool *stop, struct search_index_stats *stats);

struct search_indexer;
struct metrics_worker;

/* Starts the thread, at the lowest CPU priority (SCHED_IDLE, or nice 19
 * where that is refused), with its own store handles. data_dir is copied;
 * metrics (optional) must outlive the indexer. NULL when the thread cannot
 * be started (logged). */
struct search_indexer *search_indexer_new(const char *data_dir, struct metrics_worker *metrics);
/* Asks for user's pending bodies to be indexed. Safe from any thread;
 * never blocks on indexing; a user already waiting is not queued twice.
 * Does nothing when ix is NULL (indexing off). */
void search_indexer_push(struct search_indexer *ix, const char *user);
/* Stops the thread (the batch in progress is dropped, it stays pending),
 * joins it, frees the queue; sets *ix to NULL; accepts NULL. */
void search_indexer_free(struct search_indexer **ix);

#endif
