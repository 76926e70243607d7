/* Shared between the files of the SQLite backend; nothing outside
 * src/store/sqlite/ includes this. */
#ifndef POSTERN_STORE_SQLITE_INTERNAL_H
#define POSTERN_STORE_SQLITE_INTERNAL_H

#include "store/store.h"

#include <sqlite3.h>
#include <stdarg.h>

/* Prepared statements are cached by the address of their SQL text (each is
 * a string literal at one call site). */
#define STORE_STMT_CACHE 128

struct store_stmt_slot {
	const char *sql;
	sqlite3_stmt *stmt;
};

struct store {
	sqlite3 *db;
	char *dir;			/* DATA_DIR/users/USER */
	char *blob_root;		/* dir/blobs */
	char *change_path;		/* dir/changes */
	int change_fd;

	unsigned tx_depth;		/* 0: none, 1: BEGIN IMMEDIATE, >1: savepoints */
	bool tx_changed;		/* bump the change counter at commit */
	bool tx_purge;			/* bodies may have lost their last reference */
	uint8_t tx_dirs[32];		/* blob directories to fsync before COMMIT */
	unsigned tx_dir_count;		/* bits set in tx_dirs */
	bool tx_syncfs;			/* unsynced bodies placed: syncfs before COMMIT */

	/* The full-text index (fts.c, search.c): search_db is the indexer's
	 * own connection to search.db, opened on first write; SEARCH instead
	 * ATTACHes search.db to db as "search" (search_attached). */
	sqlite3 *search_db;
	bool search_attached;

	uint32_t expunge_log_limit;
	uint64_t quota_bytes, quota_messages;

	enum store_error error;
	char errtext[512];

	struct store_stmt_slot stmts[STORE_STMT_CACHE];

	/* The messages of the last large mailbox store_view_load read, and
	 * the state they were read at (message.c view_cache_*). */
	struct view_cache {
		uint64_t mailbox_id;
		uint32_t uidvalidity, uidnext;
		uint64_t highestmodseq;
		struct store_msg *msgs;
		size_t count;
	} view_cache;
};

struct store_blob {
	struct blob_writer *writer;
};

void view_cache_clear(struct store *st);

/* Appends uid to list, growing it (*cap is its room). */
void uid_push(struct store_uid_list *list, size_t *cap, uint32_t uid);
/* qsort comparator for uint32_t (UIDs). */
int cmp_u32(const void *a, const void *b);

/* One mailbox row. */
struct mbox_row {
	uint64_t id;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	enum store_special_use special_use;
	uint64_t objectid;
	uint32_t messages, unseen, deleted;
	uint64_t size;
	uint64_t expunge_count;
	uint64_t expunge_floor;
};

#define I64(x) ((int64_t)(x))
#define INBOX_NAME "INBOX"

/* Sets the error and returns -1. */
int store_fail(struct store *st, enum store_error error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Sets an error from the database's last error ("what: message"). */
int store_db_fail(struct store *st, const char *what);
int store_errno_fail(struct store *st, const char *what);

/* Prepares (or reuses) sql and binds args described by types:
 *	'i' int64_t, 't' const char * (NULL binds NULL),
 *	'b' const void *, size_t (NULL binds NULL).
 * Returns NULL with the error set. Callers sqlite3_reset() when done. */
sqlite3_stmt *db_query(struct store *st, const char *sql, const char *types, ...);
/* Steps; returns SQLITE_ROW, SQLITE_DONE or -1 (error set, statement reset). */
int db_step(struct store *st, sqlite3_stmt *stmt);
/* Runs a statement that returns no rows, to completion. */
int db_exec(struct store *st, const char *sql, const char *types, ...);
/* For one-row, one-integer queries; *found_r false when no row. */
int db_int(struct store *st, int64_t *value_r, bool *found_r, const char *sql, const char *types, ...);

/* Write transactions. begin: BEGIN IMMEDIATE at depth 0, a savepoint inside
 * a batch. commit at depth 1 fsyncs marked blob directories, bumps the change
 * counter, COMMITs, then notifies and purges unreferenced bodies. */
int store_tx_begin(struct store *st);
int store_tx_commit(struct store *st);
void store_tx_rollback(struct store *st);
/* Read snapshots: a deferred transaction unless one is open already. */
int store_read_begin(struct store *st, bool *began_r);
void store_read_end(struct store *st, bool began);
void store_tx_mark_dir(struct store *st, unsigned dir_index);
/* Above this many blob directories to fsync, one syncfs is cheaper. */
#define STORE_SYNCFS_DIRS 4

int store_random_u64(struct store *st, uint64_t *value_r);
/* Next UIDVALIDITY: max(now, last + 1), unique for the user. In a tx. */
int store_next_uidvalidity(struct store *st, uint32_t *uidvalidity_r);
void store_format_objectid(char prefix, uint64_t id, char out[STORE_OBJECTID_SIZE]);

/* Mailbox helpers (mailbox.c). Return 1 found, 0 not found, -1 error. */
int mbox_by_id(struct store *st, uint64_t id, struct mbox_row *row_r);
int mbox_by_name(struct store *st, const char *name, struct mbox_row *row_r);
/* Validates and normalises name (INBOX case) into out. */
int mbox_name_check(struct store *st, const char *name, char out[STORE_MAX_NAME_LEN + 1]);
/* Creates a mailbox row in the open transaction. */
int mbox_insert(struct store *st, const char *name, enum store_special_use special_use,
		uint32_t uidnext, uint64_t highestmodseq, uint64_t *id_r);

/* Search index (search.c): the header rows of a body just attached, in the
 * open transaction; nothing if it has them already. */
int search_rows_add(struct store *st, int64_t blob_id, const struct store_search_text *text);
/* The path of search.db (malloc'd). */
char *search_db_path(const struct store *st);
/* Closes the indexer's connection to search.db (store_close). */
void search_db_close(struct store *st);

/* Message helpers (message.c). */
int msg_log_expunged(struct store *st, uint64_t mailbox_id, uint64_t count);

#endif
