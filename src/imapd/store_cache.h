/* One store handle per user per worker, shared by all that user's
 * sessions there (the loop is single-threaded, and every store call
 * completes before the next begins). A SQLite connection with its caches
 * costs over 100 KiB; a phone, a laptop and a desktop each holding a
 * connection per folder would otherwise pay it a dozen times. A handle no
 * session holds is closed after a short linger, so IDLE sessions, which
 * give theirs back while they wait, hold no database at all. */
#ifndef POSTERN_IMAPD_STORE_CACHE_H
#define POSTERN_IMAPD_STORE_CACHE_H

#include "store/store.h"

struct imapd_context;

/* The user's store, opened if needed; NULL with *error_r and *errtext_r
 * (malloc'd, caller frees) on failure. */
struct store *store_cache_acquire(struct imapd_context *ctx, const char *user,
				  enum store_error *error_r, char **errtext_r);
/* Gives back user's handle from store_cache_acquire; sets *st to NULL. */
void store_cache_release(struct imapd_context *ctx, const char *user, struct store **st);
/* Closes every handle (worker exit). */
void store_cache_deinit(struct imapd_context *ctx);

#endif
