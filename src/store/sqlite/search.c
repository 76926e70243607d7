/* The search index (store.h "Search index"): header rows written with a
 * body, lookups for SEARCH in index.db and the attached search.db. The store only compares bytes: what the text is and
 * how it is folded is the caller's (src/imapd/search_text.c), so the rows
 * mean exactly what the caller's own matcher would compute. */
#include "store/sqlite/sqlite_internal.h"
#include "core/buf.h"
#include "core/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void store_search_text_free(struct store_search_text **textp)
{
	struct store_search_text *text = *textp;
	if (text == NULL)
		return;
	*textp = NULL;
	for (size_t i = 0; i < STORE_SEARCH_HEADER_FIELDS; i++)
		free(text->fields[i]);
	free(text->head);
	free(text->body);
	free(text);
}

void store_search_coverage_free(struct store_search_coverage *cov)
{
	store_uid_list_free(&cov->headers);
	store_uid_list_free(&cov->text);
}

int search_rows_add(struct store *st, int64_t blob_id, const struct store_search_text *text)
{
	if (!text->fields_valid)
		return 0;
	/* OR IGNORE: a body stored again (another delivery of the same
	 * content) has its row already, and it cannot differ. */
	return db_exec(st, "INSERT OR IGNORE INTO search_headers"
		       " (blob_id, hfrom, hto, hcc, hbcc, hsubject) VALUES (?, ?, ?, ?, ?, ?)",
		       "ibbbbb", blob_id,
		       text->fields[STORE_SEARCH_FROM], text->field_lens[STORE_SEARCH_FROM],
		       text->fields[STORE_SEARCH_TO], text->field_lens[STORE_SEARCH_TO],
		       text->fields[STORE_SEARCH_CC], text->field_lens[STORE_SEARCH_CC],
		       text->fields[STORE_SEARCH_BCC], text->field_lens[STORE_SEARCH_BCC],
		       text->fields[STORE_SEARCH_SUBJECT], text->field_lens[STORE_SEARCH_SUBJECT]);
}

/* Ascending UIDs from a statement whose first column is the UID. */
static int collect_uids(struct store *st, sqlite3_stmt *stmt, struct store_uid_list *list)
{
	size_t cap = 0;
	int rc;
	while ((rc = db_step(st, stmt)) == SQLITE_ROW)
		uid_push(list, &cap, (uint32_t)sqlite3_column_int64(stmt, 0));
	if (rc < 0)
		return -1;
	(void)sqlite3_reset(stmt);
	return 0;
}

/* search.db attached to the handle as "search": 1, or 0 when there is
 * none yet (nothing indexed: full text covers nothing), -1 on error.
 * ATTACH cannot run inside a transaction: inside a batch, 0. Attached
 * once for the handle's life; statements naming search.* are prepared
 * only after it. */
static int search_attach(struct store *st)
{
	if (st->search_attached)
		return 1;
	if (st->tx_depth > 0)
		return 0;
	char *path = search_db_path(st);
	if (access(path, F_OK) < 0) {
		int saved = errno;
		free(path);
		errno = saved;
		return saved == ENOENT ? 0 : store_errno_fail(st, "access search.db");
	}
	int rc = db_exec(st, "ATTACH DATABASE ? AS search", "t", path);
	free(path);
	if (rc < 0)
		return -1;
	st->search_attached = true;
	return 1;
}

/* Full text covers a message when its body is marked indexed AND its hash
 * is in search.db, both read by this one statement (it opens its read
 * transaction on both files at its start): search.db commits before the
 * mark, so a mark search.db cannot back (a crash between them, search.db
 * losing its last commit, a drain racing a new copy) leaves the message
 * uncovered, to be read, never missed. */
static const char coverage_text_sql[] =
	"SELECT m.uid, EXISTS (SELECT 1 FROM search_headers h WHERE h.blob_id = m.blob_id),"
	" b.fts = 1 AND b.hash IN (SELECT hash FROM search.docs)"
	" FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? ORDER BY m.uid";
static const char coverage_headers_sql[] =
	"SELECT m.uid, 1, 0 FROM messages m JOIN search_headers h ON h.blob_id = m.blob_id"
	" WHERE m.mailbox_id = ? ORDER BY m.uid";

static int coverage_load(struct store *st, uint64_t mailbox_id, bool text, struct store_search_coverage *cov)
{
	sqlite3_stmt *stmt = db_query(st, text ? coverage_text_sql : coverage_headers_sql, "i", I64(mailbox_id));
	if (stmt == NULL)
		return -1;
	size_t cap_h = 0, cap_t = 0;
	int rc;
	while ((rc = db_step(st, stmt)) == SQLITE_ROW) {
		uint32_t uid = (uint32_t)sqlite3_column_int64(stmt, 0);
		if (sqlite3_column_int64(stmt, 1) != 0)
			uid_push(&cov->headers, &cap_h, uid);
		if (sqlite3_column_int64(stmt, 2) != 0)
			uid_push(&cov->text, &cap_t, uid);
	}
	if (rc < 0)
		return -1;
	(void)sqlite3_reset(stmt);
	return 0;
}

/* One statement per column: the column cannot be a parameter, and the
 * statement cache is keyed by the address of the SQL text. instr() on
 * BLOBs compares bytes, NULs included; an empty needle gives 1, so it
 * matches exactly the rows that have the field. */
static const char *const header_sql[STORE_SEARCH_HEADER_FIELDS] = {
#define HEADER_SQL(col) "SELECT m.uid FROM messages m JOIN search_headers h ON h.blob_id = m.blob_id" \
	" WHERE m.mailbox_id = ? AND instr(h." col ", ?) > 0 ORDER BY m.uid"
	[STORE_SEARCH_FROM] = HEADER_SQL("hfrom"),
	[STORE_SEARCH_TO] = HEADER_SQL("hto"),
	[STORE_SEARCH_CC] = HEADER_SQL("hcc"),
	[STORE_SEARCH_BCC] = HEADER_SQL("hbcc"),
	[STORE_SEARCH_SUBJECT] = HEADER_SQL("hsubject"),
#undef HEADER_SQL
};

static int header_lookup(struct store *st, uint64_t mailbox_id, struct store_search_term *term)
{
	/* A zero-length BLOB, not NULL: NULL would match nothing. */
	const char *needle = term->needle != NULL ? term->needle : "";
	sqlite3_stmt *stmt = db_query(st, header_sql[term->field], "ib", I64(mailbox_id), needle,
				      term->needle_len);
	if (stmt == NULL)
		return -1;
	return collect_uids(st, stmt, &term->matches);
}

/* An FTS5 phrase: the string in double quotes, each quote doubled; the
 * trigram tokenizer turns it into consecutive trigrams, which match where
 * the string occurs. BODY restricts it to the body column. */
static char *fts_query(const struct store_search_term *term)
{
	struct buf q = BUF_INIT;
	if (term->field == STORE_SEARCH_BODY)
		buf_append_str(&q, "body : ");
	buf_append_char(&q, '"');
	for (size_t i = 0; i < term->needle_len; i++) {
		if (term->needle[i] == '"')
			buf_append_char(&q, '"');
		buf_append_char(&q, term->needle[i]);
	}
	buf_append_char(&q, '"');
	return buf_steal(&q);
}

/* Characters of valid UTF-8: the bytes that do not continue one. */
static size_t utf8_chars(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xc0) != 0x80;
	return n;
}

static int text_lookup(struct store *st, uint64_t mailbox_id, struct store_search_term *term)
{
	/* Shorter strings have no trigram, and FTS5 would match nothing. */
	if (term->needle == NULL || utf8_chars(term->needle, term->needle_len) < 3 ||
	    memchr(term->needle, '\0', term->needle_len) != NULL)
		return store_fail(st, STORE_ERR_INVALID, "full-text needle shorter than 3 characters");
	char *query = fts_query(term);
	/* Nested IN, not a join: with a join SQLite scans the mailbox and runs
	 * the MATCH once per message. Matches are found by hash, so a body
	 * whose id was reused for other content cannot match old text. */
	sqlite3_stmt *stmt = db_query(st, "SELECT uid FROM messages WHERE mailbox_id = ? AND blob_id IN"
				      " (SELECT id FROM blobs WHERE hash IN"
				      " (SELECT hash FROM search.docs WHERE docid IN"
				      " (SELECT rowid FROM search.fts_text WHERE fts_text MATCH ?)))", "it",
				      I64(mailbox_id), query);
	int rc = stmt != NULL ? collect_uids(st, stmt, &term->matches) : -1;
	free(query);
	if (rc == 0 && term->matches.count > 1)
		qsort(term->matches.uids, term->matches.count, sizeof(uint32_t), cmp_u32);
	return rc;
}

static bool is_text_field(enum store_search_field field)
{
	return field == STORE_SEARCH_BODY || field == STORE_SEARCH_TEXT;
}

int store_search_index(struct store *st, uint64_t mailbox_id, struct store_search_term *terms,
		       size_t count, struct store_search_coverage *cov_r)
{
	bool began;
	memset(cov_r, 0, sizeof(*cov_r));
	for (size_t i = 0; i < count; i++)
		memset(&terms[i].matches, 0, sizeof(terms[i].matches));
	bool wants_text = false;
	for (size_t i = 0; i < count; i++)
		wants_text |= is_text_field(terms[i].field);
	int attached = wants_text ? search_attach(st) : 0;
	if (attached < 0)
		return -1;
	if (store_read_begin(st, &began) < 0)
		return -1;
	if (coverage_load(st, mailbox_id, attached > 0, cov_r) < 0)
		goto fail;
	for (size_t i = 0; i < count; i++) {
		int rc = 0;
		if (terms[i].field < STORE_SEARCH_HEADER_FIELDS)
			rc = header_lookup(st, mailbox_id, &terms[i]);
		else if (is_text_field(terms[i].field) && attached > 0)
			rc = text_lookup(st, mailbox_id, &terms[i]);
		else if (is_text_field(terms[i].field))
			rc = 0;	/* nothing indexed: no match, nothing covered */
		else
			rc = store_fail(st, STORE_ERR_INVALID, "unknown search field %d", (int)terms[i].field);
		if (rc < 0)
			goto fail;
	}
	store_read_end(st, began);
	return 0;
fail:
	store_read_end(st, began);
	store_search_coverage_free(cov_r);
	for (size_t i = 0; i < count; i++)
		store_uid_list_free(&terms[i].matches);
	return -1;
}
