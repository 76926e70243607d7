/* The full-text index's writer (store.h "Full-text index"): search.db, a
 * database of its own next to index.db, so that indexing never holds
 * index.db's write lock except for the short marks, and delivery never
 * waits for the trigram tokenizer.
 *
 * Order of commits, and why it is safe: search.db commits first, the marks
 * in index.db second. A reader counts a message as covered only when its
 * body is marked AND its hash is in search.db, so whatever happens between
 * the two commits (a crash, a power loss that forgets search.db's last
 * commits under synchronous = NORMAL, a concurrent drain) can only leave a
 * message uncovered, which SEARCH then reads: never a missed match. */
#include "store/sqlite/sqlite_internal.h"
#include "core/xalloc.h"
#include "store/blob.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* detail=full: phrase queries (every search is one) need positions;
 * columnsize=0: nothing ranks. Content is kept: SQLite 3.40 cannot delete
 * from a contentless table without the original text. */
static const char search_schema[] =
	"CREATE TABLE IF NOT EXISTS docs (docid INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE);"
	"CREATE VIRTUAL TABLE IF NOT EXISTS fts_text USING fts5(head, body,"
	" tokenize = 'trigram case_sensitive 1', detail = full, columnsize = 0);";

/* Hashes drained from search_gone per transaction pair. */
#define DRAIN_BATCH 256

char *search_db_path(const struct store *st)
{
	return xasprintf("%s/search.db", st->dir);
}

void search_db_close(struct store *st)
{
	if (st->search_db != NULL && sqlite3_close(st->search_db) != SQLITE_OK)
		store_fail(st, STORE_ERR_IO, "close search.db: %s", sqlite3_errmsg(st->search_db));
	st->search_db = NULL;
}

static int search_fail(struct store *st, const char *what)
{
	int code = sqlite3_extended_errcode(st->search_db);
	int primary = code & 0xff;
	enum store_error error = primary == SQLITE_BUSY || primary == SQLITE_LOCKED ? STORE_ERR_BUSY
				 : primary == SQLITE_FULL ? STORE_ERR_QUOTA : STORE_ERR_IO;
	return store_fail(st, error, "search.db %s: %s (sqlite %d)", what, sqlite3_errmsg(st->search_db), code);
}

static int search_exec(struct store *st, const char *sql)
{
	if (sqlite3_exec(st->search_db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return search_fail(st, sql);
	return 0;
}

static void search_rollback(struct store *st)
{
	if (sqlite3_get_autocommit(st->search_db) == 0)
		(void)sqlite3_exec(st->search_db, "ROLLBACK", NULL, NULL, NULL);
}

/* NORMAL, not FULL: a commit search.db forgets in a power loss leaves
 * marked bodies that search.db lacks, which only makes them uncovered
 * (read by SEARCH) until they are indexed again. */
static int search_db_open(struct store *st)
{
	if (st->search_db != NULL)
		return 0;
	char *path = search_db_path(st);
	int rc = sqlite3_open_v2(path, &st->search_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				 NULL);
	free(path);
	if (st->search_db == NULL)
		return store_fail(st, STORE_ERR_IO, "sqlite3_open_v2 search.db: out of memory");
	if (rc != SQLITE_OK || sqlite3_extended_result_codes(st->search_db, 1) != SQLITE_OK ||
	    sqlite3_busy_timeout(st->search_db, STORE_BUSY_TIMEOUT_MS) != SQLITE_OK) {
		search_fail(st, "open");
		search_db_close(st);
		return -1;
	}
	if (search_exec(st, "PRAGMA journal_mode = WAL") < 0 || search_exec(st, "PRAGMA synchronous = NORMAL") < 0 ||
	    search_exec(st, "BEGIN IMMEDIATE") < 0)
		goto fail;
	if (search_exec(st, search_schema) < 0 || search_exec(st, "COMMIT") < 0) {
		search_rollback(st);
		goto fail;
	}
	return 0;
fail:
	search_db_close(st);
	return -1;
}

/* --- Reading what is pending ------------------------------------------- */

void store_fts_docs_free(struct store_fts_doc **docsp, size_t count)
{
	struct store_fts_doc *docs = *docsp;
	if (docs == NULL)
		return;
	*docsp = NULL;
	for (size_t i = 0; i < count; i++)
		store_search_text_free(&docs[i].text);
	free(docs);
}

/* refs > 0: a body waiting for the purge is not worth indexing. */
int store_fts_has_pending(struct store *st, bool *pending_r)
{
	int64_t value;
	bool found;
	if (db_int(st, &value, &found, "SELECT EXISTS (SELECT 1 FROM blobs WHERE fts = 0 AND refs > 0)", "") < 0)
		return -1;
	*pending_r = value != 0;
	return 0;
}

int store_fts_pending(struct store *st, int64_t skip_below, size_t max_count, uint64_t max_bytes,
		      struct store_fts_doc **docs_r, size_t *count_r)
{
	*docs_r = NULL;
	*count_r = 0;
	sqlite3_stmt *stmt = db_query(st, "SELECT id, hash, size FROM blobs"
				      " WHERE fts = 0 AND refs > 0 AND id > ? ORDER BY id LIMIT ?", "ii",
				      skip_below, I64(max_count));
	if (stmt == NULL)
		return -1;
	struct store_fts_doc *docs = xcalloc(max_count ? max_count : 1, sizeof(*docs));
	size_t n = 0;
	uint64_t bytes = 0;
	int rc;
	while (n < max_count && bytes < max_bytes && (rc = db_step(st, stmt)) == SQLITE_ROW) {
		const char *hash = (const char *)sqlite3_column_text(stmt, 1);
		if (hash == NULL || strlen(hash) != STORE_HASH_SIZE - 1)
			continue;	/* not a body name: nothing to read */
		docs[n].blob_id = sqlite3_column_int64(stmt, 0);
		memcpy(docs[n].hash, hash, STORE_HASH_SIZE);
		docs[n].size = (uint64_t)sqlite3_column_int64(stmt, 2);
		bytes += docs[n].size;
		n++;
	}
	(void)sqlite3_reset(stmt);
	if (n < max_count && bytes < max_bytes && rc < 0) {
		free(docs);
		return -1;
	}
	if (n == 0) {
		free(docs);
		return 0;
	}
	*docs_r = docs;
	*count_r = n;
	return 0;
}

int store_fts_blob_open(struct store *st, const char *hash, int *fd_r, size_t *size_r)
{
	const char *what;
	if (blob_open(st->blob_root, hash, fd_r, size_r, &what) == 0)
		return 0;
	if (errno == ENOENT)
		return store_fail(st, STORE_ERR_NOT_FOUND, "body %s is gone", hash);
	return store_errno_fail(st, what);
}

/* --- Writing ------------------------------------------------------------ */

static bool has_text(const struct store_fts_doc *doc)
{
	return doc->state == STORE_FTS_INDEXED && doc->text != NULL && doc->text->head != NULL &&
	       doc->text->body != NULL;
}

/* One body into the open search.db transaction, unless it is there: a
 * hash names one text, so whoever wrote it first wrote the same. */
static int write_doc(struct store *st, sqlite3_stmt *doc_stmt, sqlite3_stmt *text_stmt,
		     const struct store_fts_doc *doc)
{
	if (sqlite3_bind_text(doc_stmt, 1, doc->hash, -1, SQLITE_STATIC) != SQLITE_OK)
		return search_fail(st, "bind");
	int rc = sqlite3_step(doc_stmt);
	(void)sqlite3_reset(doc_stmt);
	if (rc != SQLITE_DONE)
		return search_fail(st, "insert docs");
	if (sqlite3_changes(st->search_db) == 0)
		return 0;
	sqlite3_int64 docid = sqlite3_last_insert_rowid(st->search_db);
	if (sqlite3_bind_int64(text_stmt, 1, docid) != SQLITE_OK ||
	    sqlite3_bind_text64(text_stmt, 2, doc->text->head, doc->text->head_len, SQLITE_STATIC, SQLITE_UTF8) !=
		    SQLITE_OK ||
	    sqlite3_bind_text64(text_stmt, 3, doc->text->body, doc->text->body_len, SQLITE_STATIC, SQLITE_UTF8) !=
		    SQLITE_OK)
		return search_fail(st, "bind");
	rc = sqlite3_step(text_stmt);
	(void)sqlite3_reset(text_stmt);
	if (rc != SQLITE_DONE)
		return search_fail(st, "insert fts_text");
	return 0;
}

int store_fts_write(struct store *st, const struct store_fts_doc *docs, size_t count)
{
	bool any = false;
	for (size_t i = 0; i < count; i++)
		any |= has_text(&docs[i]);
	if (!any)
		return 0;
	if (search_db_open(st) < 0)
		return -1;
	sqlite3_stmt *doc_stmt = NULL, *text_stmt = NULL;
	if (search_exec(st, "BEGIN IMMEDIATE") < 0)
		return -1;
	if (sqlite3_prepare_v2(st->search_db, "INSERT INTO docs (hash) VALUES (?) ON CONFLICT (hash) DO NOTHING", -1,
			       &doc_stmt, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(st->search_db, "INSERT INTO fts_text (rowid, head, body) VALUES (?, ?, ?)", -1,
			       &text_stmt, NULL) != SQLITE_OK) {
		search_fail(st, "prepare");
		goto fail;
	}
	for (size_t i = 0; i < count; i++) {
		if (has_text(&docs[i]) && write_doc(st, doc_stmt, text_stmt, &docs[i]) < 0)
			goto fail;
	}
	(void)sqlite3_finalize(doc_stmt);
	(void)sqlite3_finalize(text_stmt);
	doc_stmt = text_stmt = NULL;
	if (search_exec(st, "COMMIT") < 0)
		goto fail;
	return 0;
fail:
	(void)sqlite3_finalize(doc_stmt);
	(void)sqlite3_finalize(text_stmt);
	search_rollback(st);
	return -1;
}

/* The guard on hash covers id reuse: the blob may have been deleted and
 * its id given to other content since it was read. A body gone meanwhile
 * whose text was just written would leave that text behind with nobody to
 * drain it: listed in search_gone unless another body has the hash. */
static int mark_doc(struct store *st, const struct store_fts_doc *doc)
{
	if (db_exec(st, "UPDATE blobs SET fts = ? WHERE id = ? AND hash = ?", "iit", I64(doc->state), doc->blob_id,
		    doc->hash) < 0)
		return -1;
	if (sqlite3_changes(st->db) == 0) {
		if (!has_text(doc))
			return 0;
		return db_exec(st, "INSERT OR IGNORE INTO search_gone (hash)"
			       " SELECT ?1 WHERE NOT EXISTS (SELECT 1 FROM blobs WHERE hash = ?1)", "t", doc->hash);
	}
	/* Bodies stored before schema 2 get their header fields now. */
	if (doc->text != NULL && search_rows_add(st, doc->blob_id, doc->text) < 0)
		return -1;
	return 0;
}

int store_fts_mark(struct store *st, const struct store_fts_doc *docs, size_t count)
{
	if (count == 0)
		return 0;
	if (store_tx_begin(st) < 0)
		return -1;
	for (size_t i = 0; i < count; i++) {
		if (docs[i].state != STORE_FTS_PENDING && mark_doc(st, &docs[i]) < 0) {
			store_tx_rollback(st);
			return -1;
		}
	}
	return store_tx_commit(st);
}

/* The user's indexer lock: writers and the drain of one user take turns,
 * across processes. Held for the two commits only, never while files are
 * read or text computed. */
static int indexer_lock(struct store *st, int *fd_r)
{
	char *path = xasprintf("%s/search.lock", st->dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(path);
	if (fd < 0)
		return store_errno_fail(st, "open search.lock");
	int rc;
	while ((rc = flock(fd, LOCK_EX)) < 0 && errno == EINTR)
		;
	if (rc < 0) {
		store_errno_fail(st, "flock search.lock");
		(void)close(fd);
		return -1;
	}
	*fd_r = fd;
	return 0;
}

/* Closing the descriptor releases the lock. */
static void indexer_unlock(int fd)
{
	(void)close(fd);
}

int store_fts_commit(struct store *st, const struct store_fts_doc *docs, size_t count)
{
	int fd;
	if (indexer_lock(st, &fd) < 0)
		return -1;
	int rc = store_fts_write(st, docs, count) == 0 && store_fts_mark(st, docs, count) == 0 ? 0 : -1;
	indexer_unlock(fd);
	return rc;
}

/* --- Draining deleted bodies -------------------------------------------- */

static int gone_read(struct store *st, char (*hashes)[STORE_HASH_SIZE], size_t *count_r)
{
	*count_r = 0;
	sqlite3_stmt *stmt = db_query(st, "SELECT hash FROM search_gone LIMIT ?", "i", I64(DRAIN_BATCH));
	if (stmt == NULL)
		return -1;
	int rc;
	while ((rc = db_step(st, stmt)) == SQLITE_ROW) {
		const char *hash = (const char *)sqlite3_column_text(stmt, 0);
		if (hash == NULL || strlen(hash) != STORE_HASH_SIZE - 1)
			continue;
		memcpy(hashes[(*count_r)++], hash, STORE_HASH_SIZE);
	}
	if (rc < 0)
		return -1;
	(void)sqlite3_reset(stmt);
	return 0;
}

static int gone_delete_text(struct store *st, char (*hashes)[STORE_HASH_SIZE], size_t count)
{
	if (search_db_open(st) < 0 || search_exec(st, "BEGIN IMMEDIATE") < 0)
		return -1;
	sqlite3_stmt *stmt = NULL;
	static const char *const sql[2] = {
		"DELETE FROM fts_text WHERE rowid IN (SELECT docid FROM docs WHERE hash = ?)",
		"DELETE FROM docs WHERE hash = ?",
	};
	for (size_t s = 0; s < 2; s++) {
		if (sqlite3_prepare_v2(st->search_db, sql[s], -1, &stmt, NULL) != SQLITE_OK) {
			search_fail(st, "prepare");
			goto fail;
		}
		for (size_t i = 0; i < count; i++) {
			int rc = sqlite3_bind_text(stmt, 1, hashes[i], -1, SQLITE_STATIC);
			if (rc == SQLITE_OK)
				rc = sqlite3_step(stmt);
			(void)sqlite3_reset(stmt);
			if (rc != SQLITE_DONE) {
				search_fail(st, "delete");
				goto fail;
			}
		}
		(void)sqlite3_finalize(stmt);
		stmt = NULL;
	}
	if (search_exec(st, "COMMIT") < 0)
		goto fail;
	return 0;
fail:
	(void)sqlite3_finalize(stmt);
	search_rollback(st);
	return -1;
}

/* A body of the same content stored again after the delete may have been
 * marked meanwhile against the text just removed: pending again. */
static int gone_forget(struct store *st, char (*hashes)[STORE_HASH_SIZE], size_t count)
{
	if (store_tx_begin(st) < 0)
		return -1;
	for (size_t i = 0; i < count; i++) {
		if (db_exec(st, "UPDATE blobs SET fts = 0 WHERE hash = ? AND fts = 1", "t", hashes[i]) < 0 ||
		    db_exec(st, "DELETE FROM search_gone WHERE hash = ?", "t", hashes[i]) < 0) {
			store_tx_rollback(st);
			return -1;
		}
	}
	return store_tx_commit(st);
}

int store_fts_drain(struct store *st, size_t *removed_r)
{
	char (*hashes)[STORE_HASH_SIZE] = xmalloc(DRAIN_BATCH * sizeof(*hashes));
	size_t count;
	int rc = 0;
	*removed_r = 0;
	while (rc == 0 && (rc = gone_read(st, hashes, &count)) == 0 && count > 0) {
		int fd;
		if (indexer_lock(st, &fd) < 0) {
			rc = -1;
			break;
		}
		rc = gone_delete_text(st, hashes, count) == 0 && gone_forget(st, hashes, count) == 0 ? 0 : -1;
		indexer_unlock(fd);
		if (rc == 0)
			*removed_r += count;
	}
	free(hashes);
	return rc;
}
