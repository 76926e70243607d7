/* The embedded backend: opening, schema, transactions, change notification,
 * orphan collection. Mailboxes are in mailbox.c, messages in message.c.
 *
 * Locking: SQLite's own. Readers never block (WAL); writers take the
 * database write lock with BEGIN IMMEDIATE, waiting up to busy_timeout, so
 * UID and modseq allocation (read uidnext, insert, write uidnext) is atomic
 * across processes. Body files are placed (renamed) inside the write
 * transaction, and unreferenced ones removed inside one too, so "a row
 * references it" and "the file exists" can never be observed out of step by
 * another process. */
#include "store/sqlite/sqlite_internal.h"
#include "store/blob.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#define SCHEMA_VERSION 2

/* Version 1. Choices:
 * - messages is WITHOUT ROWID, clustered on (mailbox_id, uid): loading a view
 *   is one sequential range scan and UID order comes free. The parsed
 *   metadata lives with the body in blobs (it is a function of the content),
 *   which keeps message rows small (about 40 bytes) and lets copies share it.
 * - Counters (messages, unseen, deleted, size) and body reference counts are
 *   kept by triggers, so no code path can forget them and STATUS is one row.
 * - keywords: a mask per message, names per mailbox (64 at most), so views
 *   need no per-message allocation.
 * - blobs.refs = 0 marks a body whose file may be removed; the partial index
 *   finds those without scanning. */
static const char schema_v1[] =
	"CREATE TABLE meta ("
	" key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
	"INSERT INTO meta VALUES ('changes', 0), ('uidvalidity', 0);"
	"CREATE TABLE mailboxes ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL UNIQUE,"
	" uidvalidity INTEGER NOT NULL,"
	" uidnext INTEGER NOT NULL DEFAULT 1,"
	" highestmodseq INTEGER NOT NULL DEFAULT 1,"
	" special_use INTEGER NOT NULL DEFAULT 0,"
	" objectid INTEGER NOT NULL,"
	" messages INTEGER NOT NULL DEFAULT 0,"
	" unseen INTEGER NOT NULL DEFAULT 0,"
	" deleted INTEGER NOT NULL DEFAULT 0,"
	" size INTEGER NOT NULL DEFAULT 0,"
	" expunge_count INTEGER NOT NULL DEFAULT 0,"
	" expunge_floor INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE subscriptions (name TEXT PRIMARY KEY) WITHOUT ROWID;"
	"CREATE TABLE keywords ("
	" mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),"
	" idx INTEGER NOT NULL,"
	" name TEXT NOT NULL COLLATE NOCASE,"
	" PRIMARY KEY (mailbox_id, idx),"
	" UNIQUE (mailbox_id, name)) WITHOUT ROWID;"
	"CREATE TABLE blobs ("
	" id INTEGER PRIMARY KEY,"
	" hash TEXT NOT NULL UNIQUE,"
	" size INTEGER NOT NULL,"
	" refs INTEGER NOT NULL DEFAULT 0,"
	" envelope TEXT, bodystructure TEXT, body TEXT, extra BLOB);"
	"CREATE INDEX blobs_unref ON blobs(refs) WHERE refs = 0;"
	"CREATE TABLE messages ("
	" mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),"
	" uid INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL,"
	" flags INTEGER NOT NULL,"
	" keywords INTEGER NOT NULL,"
	" size INTEGER NOT NULL,"
	" internaldate INTEGER NOT NULL,"
	" savedate INTEGER NOT NULL,"
	" emailid INTEGER NOT NULL,"
	" blob_id INTEGER NOT NULL REFERENCES blobs(id),"
	" PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;"
	"CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);"
	"CREATE INDEX messages_blob ON messages(blob_id);"
	"CREATE TABLE expunged ("
	" mailbox_id INTEGER NOT NULL,"
	" uid INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL,"
	" PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;"
	"CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);"
	"CREATE TRIGGER messages_insert AFTER INSERT ON messages BEGIN"
	" UPDATE blobs SET refs = refs + 1 WHERE id = NEW.blob_id;"
	" UPDATE mailboxes SET messages = messages + 1,"
	"  unseen = unseen + ((NEW.flags & 1) = 0),"
	"  deleted = deleted + ((NEW.flags & 8) != 0),"
	"  size = size + NEW.size WHERE id = NEW.mailbox_id;"
	"END;"
	"CREATE TRIGGER messages_delete AFTER DELETE ON messages BEGIN"
	" UPDATE blobs SET refs = refs - 1 WHERE id = OLD.blob_id;"
	" UPDATE mailboxes SET messages = messages - 1,"
	"  unseen = unseen - ((OLD.flags & 1) = 0),"
	"  deleted = deleted - ((OLD.flags & 8) != 0),"
	"  size = size - OLD.size WHERE id = OLD.mailbox_id;"
	"END;"
	"CREATE TRIGGER messages_flags AFTER UPDATE OF flags ON messages"
	" WHEN (OLD.flags & 9) != (NEW.flags & 9) AND OLD.mailbox_id = NEW.mailbox_id BEGIN"
	" UPDATE mailboxes SET"
	"  unseen = unseen + ((NEW.flags & 1) = 0) - ((OLD.flags & 1) = 0),"
	"  deleted = deleted + ((NEW.flags & 8) != 0) - ((OLD.flags & 8) != 0)"
	"  WHERE id = NEW.mailbox_id;"
	"END;"
	"CREATE TRIGGER messages_move AFTER UPDATE OF mailbox_id ON messages"
	" WHEN OLD.mailbox_id != NEW.mailbox_id BEGIN"
	" UPDATE mailboxes SET messages = messages - 1,"
	"  unseen = unseen - ((OLD.flags & 1) = 0),"
	"  deleted = deleted - ((OLD.flags & 8) != 0),"
	"  size = size - OLD.size WHERE id = OLD.mailbox_id;"
	" UPDATE mailboxes SET messages = messages + 1,"
	"  unseen = unseen + ((NEW.flags & 1) = 0),"
	"  deleted = deleted + ((NEW.flags & 8) != 0),"
	"  size = size + NEW.size WHERE id = NEW.mailbox_id;"
	"END;";

/* Version 2: the search index (store.h "Search index"). Choices:
 * - Header fields are per body (blob_id), not per message: the text is a
 *   function of the content, so COPY, MOVE and identical deliveries share
 *   it, and a search reaches a mailbox's messages by joining through
 *   messages, which an expunge leaves at once. The row goes with the blobs
 *   row (the trigger), in the transaction that drops the last reference,
 *   so a reused blob id never finds an old row.
 * - search_headers is its own narrow table, not columns of blobs: a header
 *   search scans it, and blobs rows carry ENVELOPE and BODYSTRUCTURE. A
 *   row's presence is the "cached" mark (bodies stored before version 2
 *   get theirs from the indexer).
 * - The full text is not here but in search.db, written by the background
 *   indexer (store.h "Full-text index"); blobs.fts is the indexer's state
 *   for the body (0 pending, 1 in search.db, 2 left out), with a partial
 *   index so "what is pending" costs O(pending). Bodies of version 1 are
 *   simply pending.
 * - search.db keys its rows by content hash, since blob ids can be reused;
 *   search_gone lists hashes of deleted bodies that search.db has, for the
 *   indexer to remove there (another file: a trigger cannot reach it). */
static const char schema_v2[] =
	"ALTER TABLE blobs ADD COLUMN fts INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX blobs_fts_pending ON blobs(id) WHERE fts = 0;"
	"CREATE TABLE search_headers ("
	" blob_id INTEGER PRIMARY KEY,"
	" hfrom BLOB, hto BLOB, hcc BLOB, hbcc BLOB, hsubject BLOB);"
	"CREATE TABLE search_gone (hash TEXT PRIMARY KEY) WITHOUT ROWID;"
	"CREATE TRIGGER blobs_delete_search AFTER DELETE ON blobs BEGIN"
	" DELETE FROM search_headers WHERE blob_id = OLD.id;"
	" INSERT OR IGNORE INTO search_gone (hash) SELECT OLD.hash WHERE OLD.fts = 1;"
	"END;";

/* --- Errors ------------------------------------------------------------ */

int store_fail(struct store *st, enum store_error error, const char *fmt, ...)
{
	va_list ap;
	st->error = error;
	va_start(ap, fmt);
	vsnprintf(st->errtext, sizeof(st->errtext), fmt, ap);
	va_end(ap);
	return -1;
}

static enum store_error error_from_sqlite(int code)
{
	switch (code & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return STORE_ERR_BUSY;
	default:
		return STORE_ERR_IO;
	}
}

int store_db_fail(struct store *st, const char *what)
{
	int code = sqlite3_extended_errcode(st->db);
	return store_fail(st, error_from_sqlite(code), "%s: %s (sqlite %d)", what,
			  sqlite3_errmsg(st->db), code);
}

int store_errno_fail(struct store *st, const char *what)
{
	int saved = errno;
	return store_fail(st, saved == ENOSPC || saved == EDQUOT ? STORE_ERR_QUOTA : STORE_ERR_IO,
			  "%s: %s", what, strerror(saved));
}

enum store_error store_last_error(const struct store *st, const char **text_r)
{
	if (text_r != NULL)
		*text_r = st->errtext;
	return st->error;
}

const char *store_error_name(enum store_error error)
{
	switch (error) {
	case STORE_ERR_NONE: return "none";
	case STORE_ERR_NOT_FOUND: return "not found";
	case STORE_ERR_EXISTS: return "exists";
	case STORE_ERR_INVALID_NAME: return "invalid name";
	case STORE_ERR_NOT_ALLOWED: return "not allowed";
	case STORE_ERR_INVALID: return "invalid argument";
	case STORE_ERR_LIMIT: return "limit reached";
	case STORE_ERR_QUOTA: return "quota exceeded";
	case STORE_ERR_BUSY: return "busy";
	case STORE_ERR_IO: return "i/o error";
	case STORE_ERR_VERSION: return "newer schema";
	}
	return "unknown";
}

/* --- Statements -------------------------------------------------------- */

static sqlite3_stmt *stmt_get(struct store *st, const char *sql)
{
	for (size_t i = 0; i < STORE_STMT_CACHE; i++) {
		struct store_stmt_slot *slot = &st->stmts[i];
		if (slot->sql == sql) {
			/* reset cannot fail in a way that matters here: it
			 * returns the error of the previous step, already
			 * handled by db_step. */
			(void)sqlite3_reset(slot->stmt);
			if (sqlite3_clear_bindings(slot->stmt) != SQLITE_OK) {
				store_db_fail(st, "clear bindings");
				return NULL;
			}
			return slot->stmt;
		}
		if (slot->sql == NULL) {
			sqlite3_stmt *stmt;
			if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt,
					       NULL) != SQLITE_OK) {
				store_db_fail(st, "prepare");
				return NULL;
			}
			slot->sql = sql;
			slot->stmt = stmt;
			return stmt;
		}
	}
	/* More distinct statements than slots is a programming error. */
	store_fail(st, STORE_ERR_IO, "statement cache full");
	return NULL;
}

static sqlite3_stmt *db_vquery(struct store *st, const char *sql, const char *types, va_list ap)
{
	sqlite3_stmt *stmt = stmt_get(st, sql);
	if (stmt == NULL)
		return NULL;
	for (int i = 0; types[i] != '\0'; i++) {
		int rc;
		if (types[i] == 'i') {
			rc = sqlite3_bind_int64(stmt, i + 1, va_arg(ap, int64_t));
		} else if (types[i] == 't') {
			const char *text = va_arg(ap, const char *);
			rc = text == NULL ? sqlite3_bind_null(stmt, i + 1)
					  : sqlite3_bind_text(stmt, i + 1, text, -1, SQLITE_STATIC);
		} else {
			const void *data = va_arg(ap, const void *);
			size_t len = va_arg(ap, size_t);
			rc = data == NULL ? sqlite3_bind_null(stmt, i + 1)
					  : sqlite3_bind_blob64(stmt, i + 1, data, len, SQLITE_STATIC);
		}
		if (rc != SQLITE_OK) {
			store_db_fail(st, "bind");
			return NULL;
		}
	}
	return stmt;
}

sqlite3_stmt *db_query(struct store *st, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	sqlite3_stmt *stmt = db_vquery(st, sql, types, ap);
	va_end(ap);
	return stmt;
}

int db_step(struct store *st, sqlite3_stmt *stmt)
{
	int rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return rc;
	store_db_fail(st, "step");
	(void)sqlite3_reset(stmt);
	return -1;
}

int db_exec(struct store *st, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	sqlite3_stmt *stmt = db_vquery(st, sql, types, ap);
	va_end(ap);
	if (stmt == NULL)
		return -1;
	int rc;
	while ((rc = db_step(st, stmt)) == SQLITE_ROW)
		;
	if (rc < 0)
		return -1;
	(void)sqlite3_reset(stmt);
	return 0;
}

int db_int(struct store *st, int64_t *value_r, bool *found_r, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	sqlite3_stmt *stmt = db_vquery(st, sql, types, ap);
	va_end(ap);
	if (stmt == NULL)
		return -1;
	int rc = db_step(st, stmt);
	if (rc < 0)
		return -1;
	*found_r = rc == SQLITE_ROW;
	*value_r = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
	(void)sqlite3_reset(stmt);
	return 0;
}

/* Plain statements without parameters (transaction control, pragmas). */
static int exec_plain(struct store *st, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int code = sqlite3_extended_errcode(st->db);
		store_fail(st, error_from_sqlite(code), "%s: %s (sqlite %d)", sql,
			   msg != NULL ? msg : sqlite3_errmsg(st->db), code);
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* --- Change notification ----------------------------------------------- */

static uint64_t read_counter(int fd)
{
	char text[32];
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
	if (n <= 0)
		return 0;
	text[n] = '\0';
	return strtoull(text, NULL, 10);
}

/* The counter only grows in the file, even when two processes' writes
 * cross: the flock makes read-compare-write atomic between them. Failures
 * are logged, not returned: the change is committed already, and watchers
 * also poll slowly. */
static void notify(struct store *st, uint64_t counter)
{
	char text[32];
	int len = snprintf(text, sizeof(text), "%020" PRIu64 "\n", counter);

	if (flock(st->change_fd, LOCK_EX) < 0) {
		log_msg(LOG_WARN, "store_notify", "flock %s: %s", st->change_path, strerror(errno));
		return;
	}
	if (read_counter(st->change_fd) < counter &&
	    pwrite(st->change_fd, text, (size_t)len, 0) != len)
		log_msg(LOG_WARN, "store_notify", "pwrite %s: %s", st->change_path, strerror(errno));
	if (flock(st->change_fd, LOCK_UN) < 0)
		log_msg(LOG_WARN, "store_notify", "unlock %s: %s", st->change_path, strerror(errno));
}

const char *store_change_path(const struct store *st)
{
	return st->change_path;
}

uint64_t store_change_counter(struct store *st)
{
	return read_counter(st->change_fd);
}

/* --- Transactions ------------------------------------------------------ */

static void reset_all(struct store *st)
{
	for (size_t i = 0; i < STORE_STMT_CACHE && st->stmts[i].sql != NULL; i++)
		(void)sqlite3_reset(st->stmts[i].stmt);
}

int store_tx_begin(struct store *st)
{
	if (st->tx_depth == 0) {
		reset_all(st);
		if (exec_plain(st, "BEGIN IMMEDIATE") < 0)
			return -1;
		st->tx_changed = false;
		st->tx_purge = false;
		memset(st->tx_dirs, 0, sizeof(st->tx_dirs));
		st->tx_dir_count = 0;
		st->tx_syncfs = false;
	} else if (exec_plain(st, "SAVEPOINT store_op") < 0) {
		return -1;
	}
	st->tx_depth++;
	return 0;
}

void store_tx_rollback(struct store *st)
{
	if (st->tx_depth == 0)
		return;
	reset_all(st);
	/* Errors here leave nothing to do: ROLLBACK failing means SQLite
	 * rolled back already (or will on close). Keep the first error. */
	char saved[sizeof(st->errtext)];
	enum store_error saved_error = st->error;
	memcpy(saved, st->errtext, sizeof(saved));
	if (st->tx_depth > 1) {
		if (exec_plain(st, "ROLLBACK TO store_op") == 0)
			(void)exec_plain(st, "RELEASE store_op");
	} else if (sqlite3_get_autocommit(st->db) == 0) {
		(void)exec_plain(st, "ROLLBACK");
	}
	st->tx_depth--;
	st->error = saved_error;
	memcpy(st->errtext, saved, sizeof(saved));
}

void store_tx_mark_dir(struct store *st, unsigned dir_index)
{
	uint8_t bit = (uint8_t)(1u << (dir_index % 8));
	uint8_t *byte = &st->tx_dirs[(dir_index & 0xff) / 8];
	if ((*byte & bit) == 0)
		st->tx_dir_count++;
	*byte |= bit;
}

static void purge_unreferenced(struct store *st);

int store_tx_commit(struct store *st)
{
	const char *what;
	int64_t counter = 0;
	bool found;

	if (st->tx_depth > 1) {
		if (exec_plain(st, "RELEASE store_op") < 0) {
			store_tx_rollback(st);
			return -1;
		}
		st->tx_depth--;
		return 0;
	}
	/* Body files and their renames must be durable before the rows
	 * naming them. A few directories: fsync each. Many, or bodies
	 * written without fsync (batched appends): one syncfs. */
	if (st->tx_syncfs || st->tx_dir_count > STORE_SYNCFS_DIRS) {
		if (blob_fs_sync(st->blob_root, &what) < 0) {
			store_errno_fail(st, what);
			store_tx_rollback(st);
			return -1;
		}
	} else {
		for (unsigned i = 0; i < 256 && st->tx_dir_count > 0; i++) {
			if ((st->tx_dirs[i / 8] & (1u << (i % 8))) == 0)
				continue;
			if (blob_dir_sync(st->blob_root, i, &what) < 0) {
				store_errno_fail(st, what);
				store_tx_rollback(st);
				return -1;
			}
		}
	}
	if (st->tx_changed &&
	    db_int(st, &counter, &found,
		   "UPDATE meta SET value = value + 1 WHERE key = 'changes' RETURNING value", "") < 0) {
		store_tx_rollback(st);
		return -1;
	}
	reset_all(st);
	if (exec_plain(st, "COMMIT") < 0) {
		store_tx_rollback(st);
		return -1;
	}
	st->tx_depth = 0;
	if (st->tx_changed)
		notify(st, (uint64_t)counter);
	if (st->tx_purge)
		purge_unreferenced(st);
	return 0;
}

int store_read_begin(struct store *st, bool *began_r)
{
	*began_r = false;
	if (st->tx_depth > 0)
		return 0;
	reset_all(st);
	if (exec_plain(st, "BEGIN DEFERRED") < 0)
		return -1;
	*began_r = true;
	return 0;
}

void store_read_end(struct store *st, bool began)
{
	if (!began)
		return;
	reset_all(st);
	/* A read-only COMMIT only releases the snapshot. */
	if (sqlite3_get_autocommit(st->db) == 0 && exec_plain(st, "COMMIT") < 0)
		(void)exec_plain(st, "ROLLBACK");
}

int store_batch_begin(struct store *st)
{
	if (st->tx_depth != 0)
		return store_fail(st, STORE_ERR_INVALID, "batch already open");
	return store_tx_begin(st);
}

int store_batch_commit(struct store *st)
{
	if (st->tx_depth != 1)
		return store_fail(st, STORE_ERR_INVALID, "no batch open");
	return store_tx_commit(st);
}

void store_batch_rollback(struct store *st)
{
	while (st->tx_depth > 0)
		store_tx_rollback(st);
}

/* Removes files of bodies whose last reference went, in a write transaction
 * of its own after the change committed: removing them before the commit
 * would lose the bodies if the commit then failed. A crash between the two
 * leaves refs = 0 rows, which the next purge or orphan collection finishes.
 * Errors are logged: the caller's change is committed already. */
static void purge_unreferenced(struct store *st)
{
	const char *what;
	enum store_error saved_error = st->error;

	if (store_tx_begin(st) < 0)
		goto fail;
	sqlite3_stmt *stmt = db_query(st, "SELECT hash FROM blobs WHERE refs = 0", "");
	if (stmt == NULL)
		goto fail_tx;
	int rc;
	while ((rc = db_step(st, stmt)) == SQLITE_ROW) {
		const char *hash = (const char *)sqlite3_column_text(stmt, 0);
		if (hash != NULL && blob_unlink(st->blob_root, hash, &what) < 0) {
			store_errno_fail(st, what);
			(void)sqlite3_reset(stmt);
			goto fail_tx;
		}
	}
	if (rc < 0)
		goto fail_tx;
	(void)sqlite3_reset(stmt);
	if (db_exec(st, "DELETE FROM blobs WHERE refs = 0", "") < 0)
		goto fail_tx;
	if (store_tx_commit(st) < 0)
		goto fail;
	st->error = saved_error;
	return;
fail_tx:
	store_tx_rollback(st);
fail:
	log_msg(LOG_WARN, "store_purge", "%s", st->errtext);
	st->error = saved_error;
}

/* --- Helpers ----------------------------------------------------------- */

int store_random_u64(struct store *st, uint64_t *value_r)
{
	unsigned char bytes[8];
	if (RAND_bytes(bytes, sizeof(bytes)) != 1)
		return store_fail(st, STORE_ERR_IO, "RAND_bytes failed");
	uint64_t v = 0;
	for (size_t i = 0; i < sizeof(bytes); i++)
		v = (v << 8) | bytes[i];
	*value_r = v;
	return 0;
}

void store_format_objectid(char prefix, uint64_t id, char out[STORE_OBJECTID_SIZE])
{
	snprintf(out, STORE_OBJECTID_SIZE, "%c%016" PRIx64, prefix, id);
}

int store_next_uidvalidity(struct store *st, uint32_t *uidvalidity_r)
{
	int64_t last;
	bool found;
	if (db_int(st, &last, &found, "SELECT value FROM meta WHERE key = 'uidvalidity'", "") < 0)
		return -1;
	int64_t now = (int64_t)time(NULL);
	int64_t next = now > last ? now : last + 1;
	/* Wraps only after 2106 or 4 billion creations in the future. */
	if (next > UINT32_MAX || next < 1)
		return store_fail(st, STORE_ERR_LIMIT, "UIDVALIDITY space exhausted");
	if (db_exec(st, "UPDATE meta SET value = ? WHERE key = 'uidvalidity'", "i", next) < 0)
		return -1;
	*uidvalidity_r = (uint32_t)next;
	return 0;
}

void store_set_quota(struct store *st, uint64_t max_bytes, uint64_t max_messages)
{
	st->quota_bytes = max_bytes;
	st->quota_messages = max_messages;
}

int store_set_lazy_sync(struct store *st)
{
	return exec_plain(st, "PRAGMA synchronous = NORMAL");
}

void store_set_expunge_log_limit(struct store *st, uint32_t limit)
{
	st->expunge_log_limit = limit > 0 ? limit : 1;
}

int store_quota_usage(struct store *st, uint64_t *bytes_r, uint64_t *messages_r)
{
	sqlite3_stmt *stmt = db_query(st, "SELECT total(size), total(messages) FROM mailboxes", "");
	if (stmt == NULL)
		return -1;
	int rc = db_step(st, stmt);
	if (rc < 0)
		return -1;
	/* An aggregate always yields one row. */
	*bytes_r = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_double(stmt, 0) : 0;
	*messages_r = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_double(stmt, 1) : 0;
	(void)sqlite3_reset(stmt);
	return 0;
}

/* --- Opening ----------------------------------------------------------- */

static bool user_name_valid(const char *user)
{
	size_t len = strlen(user);
	if (len == 0 || len > LIMIT_USER_LEN || strcmp(user, ".") == 0 || strcmp(user, "..") == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)user[i];
		if (c == '/' || c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

static int make_dir(struct store *st, const char *path, bool *created_r)
{
	*created_r = false;
	if (mkdir(path, 0700) == 0) {
		*created_r = true;
		return 0;
	}
	if (errno != EEXIST) {
		int saved = errno;
		return store_fail(st, STORE_ERR_IO, "mkdir %s: %s", path, strerror(saved));
	}
	return 0;
}

static int sync_dir(struct store *st, const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		int saved = errno;
		if (fd >= 0)
			close(fd);
		return store_fail(st, STORE_ERR_IO, "fsync %s: %s", path, strerror(saved));
	}
	if (close(fd) < 0)
		return store_errno_fail(st, "close directory");
	return 0;
}

static int schema_init(struct store *st)
{
	int64_t version;
	bool found;

	if (db_int(st, &version, &found, "PRAGMA user_version", "") < 0)
		return -1;
	if (version == SCHEMA_VERSION)
		return 0;
	if (version > SCHEMA_VERSION)
		return store_fail(st, STORE_ERR_VERSION, "index.db has schema %lld, this postern knows %d",
				  (long long)version, SCHEMA_VERSION);
	/* Another process may be creating it right now: decide under the lock. */
	if (store_tx_begin(st) < 0)
		return -1;
	if (db_int(st, &version, &found, "PRAGMA user_version", "") < 0)
		goto fail;
	if (version == 0) {
		if (exec_plain(st, schema_v1) < 0 || exec_plain(st, "PRAGMA user_version = 1") < 0)
			goto fail;
		version = 1;
	}
	/* Later versions migrate here, one step at a time. Bodies stored
	 * before version 2 are pending for the indexer (fts = 0). */
	if (version == 1) {
		if (exec_plain(st, schema_v2) < 0 || exec_plain(st, "PRAGMA user_version = 2") < 0)
			goto fail;
		version = 2;
	}
	if (version != SCHEMA_VERSION) {
		store_fail(st, STORE_ERR_VERSION, "index.db has schema %lld", (long long)version);
		goto fail;
	}
	return store_tx_commit(st);
fail:
	store_tx_rollback(st);
	return -1;
}

static int ensure_inbox(struct store *st)
{
	struct mbox_row row;
	int rc = mbox_by_name(st, INBOX_NAME, &row);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	if (store_tx_begin(st) < 0)
		return -1;
	rc = mbox_by_name(st, INBOX_NAME, &row);
	if (rc < 0)
		goto fail;
	if (rc == 0) {
		uint64_t id;
		if (mbox_insert(st, INBOX_NAME, STORE_SPECIAL_NONE, 1, 1, &id) < 0 ||
		    db_exec(st, "INSERT OR IGNORE INTO subscriptions VALUES (?)", "t", INBOX_NAME) < 0)
			goto fail;
		st->tx_changed = true;
	}
	return store_tx_commit(st);
fail:
	store_tx_rollback(st);
	return -1;
}

static int set_wal(struct store *st)
{
	/* Switching an existing database to WAL needs an exclusive lock for a
	 * moment; a concurrent first open may make it busy. */
	for (int attempt = 0; attempt < 100; attempt++) {
		sqlite3_stmt *stmt;
		if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL) != SQLITE_OK)
			return store_db_fail(st, "prepare journal_mode");
		int rc = sqlite3_step(stmt);
		bool wal = rc == SQLITE_ROW &&
			   strcmp((const char *)sqlite3_column_text(stmt, 0), "wal") == 0;
		(void)sqlite3_finalize(stmt);
		if (wal)
			return 0;
		if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED && rc != SQLITE_ROW)
			return store_db_fail(st, "journal_mode = WAL");
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return store_fail(st, STORE_ERR_BUSY, "could not switch index.db to WAL");
}

static int open_db(struct store *st)
{
	char *path = xasprintf("%s/index.db", st->dir);
	int rc = sqlite3_open_v2(path, &st->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	free(path);
	if (rc != SQLITE_OK) {
		if (st->db == NULL)
			return store_fail(st, STORE_ERR_IO, "sqlite3_open_v2: out of memory");
		return store_db_fail(st, "open index.db");
	}
	if (sqlite3_extended_result_codes(st->db, 1) != SQLITE_OK ||
	    sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS) != SQLITE_OK)
		return store_db_fail(st, "configure index.db");
	if (set_wal(st) < 0)
		return -1;
	/* FULL: every commit fsyncs the WAL, which is what "0 means on disk"
	 * needs; NORMAL would leave the last commits to the next checkpoint. */
	if (exec_plain(st, "PRAGMA synchronous = FULL") < 0 ||
	    exec_plain(st, "PRAGMA foreign_keys = ON") < 0)
		return -1;
	if (schema_init(st) < 0 || ensure_inbox(st) < 0)
		return -1;
	return 0;
}

int store_open(const char *data_dir, const char *user, struct store **st_r,
	       enum store_error *error_r, char **errtext_r)
{
	struct store *st = xcalloc(1, sizeof(*st));
	st->change_fd = -1;
	st->expunge_log_limit = STORE_EXPUNGE_LOG_DEFAULT;
	*st_r = NULL;

	if (!user_name_valid(user)) {
		store_fail(st, STORE_ERR_INVALID_NAME, "invalid user name");
		goto fail;
	}
	bool created;
	char *users = xasprintf("%s/users", data_dir);
	int rc = make_dir(st, users, &created);
	if (rc == 0 && created)
		rc = sync_dir(st, data_dir);
	st->dir = xasprintf("%s/users/%s", data_dir, user);
	st->blob_root = xasprintf("%s/blobs", st->dir);
	st->change_path = xasprintf("%s/changes", st->dir);
	if (rc == 0)
		rc = make_dir(st, st->dir, &created);
	if (rc == 0 && created)
		rc = sync_dir(st, users);
	free(users);
	if (rc < 0)
		goto fail;
	const char *what;
	if (blob_root_init(st->blob_root, &what) < 0) {
		store_errno_fail(st, what);
		goto fail;
	}
	st->change_fd = open(st->change_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (st->change_fd < 0) {
		store_errno_fail(st, "open changes file");
		goto fail;
	}
	/* SQLite fsyncs its files but not the directory entry of a WAL file
	 * it creates on first use (this open); blobs/, blobs/tmp and changes
	 * may be new too. One fsync of the user directory covers them. */
	if (open_db(st) < 0 || sync_dir(st, st->dir) < 0 || sync_dir(st, st->blob_root) < 0)
		goto fail;
	*st_r = st;
	*error_r = STORE_ERR_NONE;
	if (errtext_r != NULL)
		*errtext_r = NULL;
	return 0;
fail:
	*error_r = st->error;
	if (errtext_r != NULL)
		*errtext_r = xstrdup(st->errtext);
	store_close(&st);
	return -1;
}

void store_close(struct store **stp)
{
	struct store *st = *stp;
	if (st == NULL)
		return;
	*stp = NULL;
	store_batch_rollback(st);
	view_cache_clear(st);
	for (size_t i = 0; i < STORE_STMT_CACHE && st->stmts[i].sql != NULL; i++)
		(void)sqlite3_finalize(st->stmts[i].stmt);
	search_db_close(st);
	if (st->db != NULL && sqlite3_close(st->db) != SQLITE_OK)
		log_msg(LOG_WARN, "store_close", "sqlite3_close: %s", sqlite3_errmsg(st->db));
	if (st->change_fd >= 0 && close(st->change_fd) < 0)
		log_msg(LOG_WARN, "store_close", "close %s: %s", st->change_path, strerror(errno));
	free(st->dir);
	free(st->blob_root);
	free(st->change_path);
	free(st);
}

/* --- Orphans ----------------------------------------------------------- */

struct orphan_ctx {
	struct store *st;
	bool failed;
};

static bool orphan_visit(const char *hash, void *context)
{
	struct orphan_ctx *ctx = context;
	int64_t refs;
	bool found;
	if (ctx->failed)
		return false;
	if (db_int(ctx->st, &refs, &found, "SELECT refs FROM blobs WHERE hash = ?", "t", hash) < 0) {
		ctx->failed = true;
		return false;
	}
	return !found || refs <= 0;
}

int store_collect_orphans(struct store *st, unsigned *removed_r)
{
	const char *what;
	unsigned tmp_removed = 0, blob_removed = 0;
	struct orphan_ctx ctx = { st, false };

	/* Under the write lock: no other process can be between placing a
	 * file and committing the row that names it. */
	if (store_tx_begin(st) < 0)
		return -1;
	if (blob_tmp_clean(st->blob_root, BLOB_TMP_MAX_AGE_S, &tmp_removed, &what) < 0) {
		store_errno_fail(st, what);
		goto fail;
	}
	if (blob_foreach(st->blob_root, orphan_visit, &ctx, &blob_removed, &what) < 0) {
		store_errno_fail(st, what);
		goto fail;
	}
	if (ctx.failed)
		goto fail;
	if (db_exec(st, "DELETE FROM blobs WHERE refs <= 0", "") < 0)
		goto fail;
	if (store_tx_commit(st) < 0)
		return -1;
	if (removed_r != NULL)
		*removed_r = tmp_removed + blob_removed;
	return 0;
fail:
	store_tx_rollback(st);
	return -1;
}

/* --- Blob streaming ---------------------------------------------------- */

int store_blob_begin(struct store *st, struct store_blob **blob_r)
{
	const char *what;
	struct blob_writer *w;
	if (blob_writer_begin(st->blob_root, &w, &what) < 0)
		return store_errno_fail(st, what);
	struct store_blob *blob = xcalloc(1, sizeof(*blob));
	blob->writer = w;
	*blob_r = blob;
	return 0;
}

int store_blob_write(struct store *st, struct store_blob *blob, const void *data, size_t len)
{
	const char *what;
	if (blob_writer_write(blob->writer, data, len, &what) < 0)
		return store_errno_fail(st, what);
	return 0;
}

int store_blob_finish(struct store *st, struct store_blob *blob)
{
	const char *what;
	if (blob_writer_finish(blob->writer, true, &what) < 0)
		return store_errno_fail(st, what);
	return 0;
}

int store_blob_open_read(struct store *st, const struct store_blob *blob, int *fd_r)
{
	const char *what;
	if (!blob_writer_finished(blob->writer) || blob_writer_placed(blob->writer))
		return store_fail(st, STORE_ERR_INVALID, "blob not finished or already used");
	if (blob_writer_open_read(blob->writer, fd_r, &what) < 0)
		return store_errno_fail(st, what);
	return 0;
}

int store_blob_from_fd(struct store *st, int fd, struct store_blob **blob_r)
{
	struct store_blob *blob;
	char chunk[64 * 1024];

	if (store_blob_begin(st, &blob) < 0)
		return -1;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			store_errno_fail(st, "read message");
			goto fail;
		}
		if (n == 0)
			break;
		if (store_blob_write(st, blob, chunk, (size_t)n) < 0)
			goto fail;
	}
	if (store_blob_finish(st, blob) < 0)
		goto fail;
	*blob_r = blob;
	return 0;
fail:
	store_blob_free(&blob);
	return -1;
}

uint64_t store_blob_size(const struct store_blob *blob)
{
	return blob_writer_size(blob->writer);
}

void store_blob_free(struct store_blob **blobp)
{
	struct store_blob *blob = *blobp;
	if (blob == NULL)
		return;
	*blobp = NULL;
	blob_writer_free(&blob->writer);
	free(blob);
}
