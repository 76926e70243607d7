/* The store's search index (store.h "Search index", "Full-text index"):
 * header rows written with a body, full text written afterwards into
 * search.db and keyed by hash, shared by copies, gone with the body's last
 * reference (search_gone, drained); lookups and what they cover; blob ids
 * reused; a crash between the search.db commit and the marks. */
#include "harness.h"
#include "store/store.h"

#include <ftw.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char data_dir[256];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static struct store *setup(void)
{
	snprintf(data_dir, sizeof(data_dir), "/tmp/postern-search-XXXXXX");
	if (mkdtemp(data_dir) == NULL)
		exit(2);
	struct store *st = NULL;
	enum store_error err;
	if (store_open(data_dir, "alice", &st, &err, NULL) < 0)
		return NULL;
	return st;
}

static void cleanup(struct store **st)
{
	store_close(st);
	nftw(data_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t mailbox_id(struct store *st, const char *name)
{
	struct store_status s;
	return store_mailbox_status(st, name, UINT32_MAX, &s) < 0 ? 0 : s.mailbox_id;
}

static char *dup_bytes(const char *s, size_t len)
{
	char *copy = malloc(len + 1);
	memcpy(copy, s, len);
	copy[len] = '\0';
	return copy;
}

/* Index rows as the IMAP layer would give them (already folded). from
 * may hold NULs (several From fields); NULL fields are absent. */
static struct store_search_text *text_new(const char *from, size_t from_len, const char *subject,
					  const char *head, const char *body)
{
	struct store_search_text *t = calloc(1, sizeof(*t));
	t->fields_valid = true;
	if (from != NULL) {
		t->fields[STORE_SEARCH_FROM] = dup_bytes(from, from_len);
		t->field_lens[STORE_SEARCH_FROM] = from_len;
	}
	if (subject != NULL) {
		t->fields[STORE_SEARCH_SUBJECT] = dup_bytes(subject, strlen(subject));
		t->field_lens[STORE_SEARCH_SUBJECT] = strlen(subject);
	}
	if (head != NULL) {
		t->head = dup_bytes(head, strlen(head));
		t->head_len = strlen(head);
		t->body = dup_bytes(body, strlen(body));
		t->body_len = strlen(body);
	}
	return t;
}

/* Appends data with t (taken) as its index rows; returns the UID. */
static uint32_t append(struct store *st, uint64_t mbox, const char *data, struct store_search_text *t)
{
	struct store_message_meta meta = { .search = t };
	struct store_append_msg m = { .data = data, .size = strlen(data), .meta = t ? &meta : NULL };
	uint32_t uidvalidity, uid = 0;
	CHECK(store_append(st, mbox, &m, 1, &uidvalidity, &uid) == 0);
	store_message_meta_free(&meta);
	return uid;
}

/* The matches of one term as "1 3", or "error" when the lookup fails. */
static const char *lookup(struct store *st, uint64_t mbox, enum store_search_field field, const char *needle,
			  size_t len, char *out, size_t out_size)
{
	struct store_search_term term = { .field = field, .needle = needle, .needle_len = len };
	struct store_search_coverage cov;
	if (store_search_index(st, mbox, &term, 1, &cov) < 0)
		return "error";
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < term.matches.count && used + 12 < out_size; i++)
		used += (size_t)snprintf(out + used, out_size - used, "%s%u", i ? " " : "", term.matches.uids[i]);
	store_uid_list_free(&term.matches);
	store_search_coverage_free(&cov);
	return out;
}

#define LOOKUP(st, mbox, field, needle) lookup(st, mbox, field, needle, strlen(needle), buf, sizeof(buf))

/* What the indexer does, with the caller's text: every pending body gets
 * head and body (or is left out when head is NULL). Returns how many. */
static size_t index_pending(struct store *st, const char *head, const char *body)
{
	struct store_fts_doc *docs;
	size_t count;
	CHECK(store_fts_pending(st, 0, 64, UINT64_MAX, &docs, &count) == 0);
	for (size_t i = 0; i < count; i++) {
		docs[i].state = head != NULL ? STORE_FTS_INDEXED : STORE_FTS_LEFT_OUT;
		docs[i].text = head != NULL ? text_new(NULL, 0, NULL, head, body) : NULL;
	}
	CHECK(store_fts_commit(st, docs, count) == 0);
	store_fts_docs_free(&docs, count);
	return count;
}

/* Appends and indexes at once. */
static uint32_t append_indexed(struct store *st, uint64_t mbox, const char *data, struct store_search_text *t,
			       const char *head, const char *body)
{
	uint32_t uid = append(st, mbox, data, t);
	index_pending(st, head, body);
	return uid;
}

static int64_t count_in(const char *file, const char *table)
{
	char path[512], sql[160];
	sqlite3 *db;
	sqlite3_stmt *stmt;
	int64_t n = -1;
	snprintf(path, sizeof(path), "%s/users/alice/%s", data_dir, file);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	if (sqlite3_open(path, &db) == SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK) {
		if (sqlite3_step(stmt) == SQLITE_ROW)
			n = sqlite3_column_int64(stmt, 0);
		sqlite3_finalize(stmt);
	}
	sqlite3_close(db);
	return n;
}

#define count_rows(table) count_in("index.db", table)
#define count_search(table) count_in("search.db", table)

/* UIDs covered by the full-text index, as "1 3". */
static const char *text_covered(struct store *st, uint64_t mbox, char *out, size_t out_size)
{
	struct store_search_coverage cov;
	/* A full-text term makes the lookup attach search.db. */
	struct store_search_term term = { .field = STORE_SEARCH_BODY, .needle = "zzz", .needle_len = 3 };
	if (store_search_index(st, mbox, &term, 1, &cov) < 0)
		return "error";
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < cov.text.count && used + 12 < out_size; i++)
		used += (size_t)snprintf(out + used, out_size - used, "%s%u", i ? " " : "", cov.text.uids[i]);
	store_uid_list_free(&term.matches);
	store_search_coverage_free(&cov);
	return out;
}

static void test_header_cache(void)
{
	char buf[128];
	struct store *st = setup();
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	/* Two From fields, joined by NUL: "ab\n" then "cd\n". */
	append(st, inbox, "From: a\r\n\r\n1", text_new("x ab\nx ab\n\0cd y\ncd y\n", 20, "hello\nhello\n", "h", "b"));
	append(st, inbox, "From: b\r\n\r\n2", text_new(NULL, 0, "re: hello\nre: hello\n", "h", "b"));
	append(st, inbox, "From: c\r\n\r\n3", NULL);	/* not covered */
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_FROM, "ab"), "1");
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_FROM, "cd y"), "1");
	/* No match across the joint of two instances. */
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_FROM, "ab\ncd"), "");
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_SUBJECT, "hello"), "1 2");
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_SUBJECT, "re: h"), "2");
	/* An empty needle: the messages that have the field. */
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_FROM, ""), "1");
	CHECK_STR(lookup(st, inbox, STORE_SEARCH_FROM, NULL, 0, buf, sizeof(buf)), "1");
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_CC, ""), "");
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_SUBJECT, "hello there, longer than any subject"), "");
	struct store_search_coverage cov;
	CHECK(store_search_index(st, inbox, NULL, 0, &cov) == 0);
	CHECK_INT(cov.headers.count, 2);
	CHECK_INT(cov.text.count, 0);	/* nothing indexed yet */
	CHECK(cov.headers.count == 2 && cov.headers.uids[0] == 1 && cov.headers.uids[1] == 2);
	store_search_coverage_free(&cov);
	cleanup(&st);
}

static void test_full_text(void)
{
	char buf[128];
	struct store *st = setup();
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	/* Before any indexing there is no search.db: nothing matches, nothing
	 * is covered. */
	append(st, inbox, "1", text_new(NULL, 0, NULL, NULL, NULL));
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_BODY, "lighthouse"), "");
	CHECK_STR(text_covered(st, inbox, buf, sizeof(buf)), "");
	CHECK_INT(index_pending(st, "subject: quarterly\n", "the lighthouse inventory\n"), 1);
	append_indexed(st, inbox, "2", text_new(NULL, 0, NULL, NULL, NULL), "subject: lighthouse\n",
		       "say \"hi\" to \xc3\xa9t\xc3\xa9\n");
	append_indexed(st, inbox, "3", text_new("f\nf\n", 4, NULL, NULL, NULL), NULL, NULL);	/* left out */
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_BODY, "lighthouse"), "1");
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_TEXT, "lighthouse"), "1 2");
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_TEXT, "house inv"), "1");
	/* A phrase never spans head and body. */
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_TEXT, "quarterly\nthe"), "");
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_BODY, "\"hi\""), "2");
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_BODY, "\"\"\""), "");
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_BODY, "\xc3\xa9t\xc3\xa9"), "2");	/* 3 characters */
	/* Query syntax inside the string is only text. */
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_BODY, "lighthouse OR say"), "");
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_BODY, "inv*"), "");
	/* Under 3 characters a trigram index cannot answer: refused. */
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_BODY, "th"), "error");
	CHECK_INT(store_last_error(st, NULL), STORE_ERR_INVALID);
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_BODY, "\xc3\xa9t"), "error");
	struct store_search_coverage cov;
	CHECK(store_search_index(st, inbox, NULL, 0, &cov) == 0);
	CHECK_INT(cov.headers.count, 3);
	store_search_coverage_free(&cov);
	CHECK_STR(text_covered(st, inbox, buf, sizeof(buf)), "1 2");
	cleanup(&st);
}

static void test_shared_by_copies_gone_with_the_body(void)
{
	char buf[128];
	struct store *st = setup();
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	CHECK(store_mailbox_create(st, "Keep", STORE_SPECIAL_NONE) == 0);
	uint64_t keep = mailbox_id(st, "Keep");
	append_indexed(st, inbox, "same body", text_new("walrus\nwalrus\n", 14, NULL, NULL, NULL), "h", "walrus body");
	/* The same content again: one body, one set of rows, nothing pending. */
	append(st, inbox, "same body", text_new("walrus\nwalrus\n", 14, NULL, NULL, NULL));
	CHECK_INT(index_pending(st, "h", "other"), 0);
	CHECK_INT(count_rows("search_headers"), 1);
	CHECK_INT(count_search("docs"), 1);
	CHECK_INT(count_search("fts_text"), 1);
	struct store_uid_range all = { 1, UINT32_MAX };
	struct store_copy_result copied;
	CHECK(store_copy(st, inbox, &all, 1, keep, false, &copied) == 0);
	store_copy_result_free(&copied);
	CHECK_STR(LOOKUP(st, keep, STORE_SEARCH_FROM, "walrus"), "1 2");
	CHECK_STR(LOOKUP(st, keep, STORE_SEARCH_BODY, "walrus"), "1 2");
	struct store_flags_result fr;
	struct store_uid_list gone;
	CHECK(store_flags_update(st, inbox, &all, 1, STORE_FLAGS_ADD, STORE_FLAG_DELETED, NULL, 0, 0, &fr) == 0);
	store_flags_result_free(&fr);
	CHECK(store_expunge(st, inbox, NULL, 0, &gone) == 0);
	store_uid_list_free(&gone);
	/* Expunged: out of the answers at once; the copies keep the rows. */
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_FROM, "walrus"), "");
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_BODY, "walrus"), "");
	CHECK_INT(count_rows("search_headers"), 1);
	CHECK(store_flags_update(st, keep, &all, 1, STORE_FLAGS_ADD, STORE_FLAG_DELETED, NULL, 0, 0, &fr) == 0);
	store_flags_result_free(&fr);
	CHECK(store_expunge(st, keep, NULL, 0, &gone) == 0);
	store_uid_list_free(&gone);
	CHECK_INT(count_rows("search_headers"), 0);
	/* search.db is another file: the trigger lists the hash, the drain
	 * removes the text and then the list's row. */
	CHECK_INT(count_rows("search_gone"), 1);
	CHECK_INT(count_search("docs"), 1);
	size_t removed = 0;
	CHECK(store_fts_drain(st, &removed) == 0);
	CHECK_INT(removed, 1);
	CHECK_INT(count_search("docs"), 0);
	CHECK_INT(count_search("fts_text"), 0);
	CHECK_INT(count_rows("search_gone"), 0);
	CHECK(store_fts_drain(st, &removed) == 0);
	CHECK_INT(removed, 0);
	cleanup(&st);
}

static int64_t blob_id_of(uint32_t uid)
{
	char path[512];
	sqlite3 *db;
	sqlite3_stmt *stmt;
	int64_t id = -1;
	snprintf(path, sizeof(path), "%s/users/alice/index.db", data_dir);
	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT blob_id FROM messages WHERE uid = ?", -1, &stmt, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(stmt, 1, uid);
		if (sqlite3_step(stmt) == SQLITE_ROW)
			id = sqlite3_column_int64(stmt, 0);
		sqlite3_finalize(stmt);
	}
	sqlite3_close(db);
	return id;
}

static void expunge_all(struct store *st, uint64_t mbox)
{
	struct store_uid_range all = { 1, UINT32_MAX };
	struct store_flags_result fr;
	struct store_uid_list gone;
	CHECK(store_flags_update(st, mbox, &all, 1, STORE_FLAGS_ADD, STORE_FLAG_DELETED, NULL, 0, 0, &fr) == 0);
	store_flags_result_free(&fr);
	CHECK(store_expunge(st, mbox, NULL, 0, &gone) == 0);
	store_uid_list_free(&gone);
}

/* blobs.id has no AUTOINCREMENT: once the highest body is deleted, the
 * next body gets its id. Keyed by hash, the old text cannot match it. */
static void test_reused_blob_id_never_matches_old_text(void)
{
	char buf[128];
	struct store *st = setup();
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	uint32_t old = append_indexed(st, inbox, "old body", text_new(NULL, 0, NULL, NULL, NULL), "h",
				      "the walrus text");
	int64_t old_id = blob_id_of(old);
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_BODY, "walrus"), "1");
	expunge_all(st, inbox);
	uint32_t fresh = append(st, inbox, "new body", text_new(NULL, 0, NULL, NULL, NULL));
	CHECK_INT(blob_id_of(fresh), old_id);
	/* Not drained, not indexed: the old text is still in search.db. */
	CHECK_INT(count_search("docs"), 1);
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_BODY, "walrus"), "");
	CHECK_STR(text_covered(st, inbox, buf, sizeof(buf)), "");
	CHECK_INT(index_pending(st, "h", "a fresh lighthouse"), 1);
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_BODY, "walrus"), "");
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_BODY, "lighthouse"), "2");
	CHECK_STR(text_covered(st, inbox, buf, sizeof(buf)), "2");
	size_t removed;
	CHECK(store_fts_drain(st, &removed) == 0 && removed == 1);
	CHECK_INT(count_search("docs"), 1);
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_BODY, "lighthouse"), "2");
	cleanup(&st);
}

/* The text reached search.db but the process died before the marks: the
 * message is not covered (SEARCH reads it), and indexing again only marks
 * it, without an error or a second row. */
static void test_crash_between_the_two_commits(void)
{
	char buf[128];
	struct store *st = setup();
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	append(st, inbox, "body one", text_new(NULL, 0, NULL, NULL, NULL));
	struct store_fts_doc *docs;
	size_t count;
	CHECK(store_fts_pending(st, 0, 64, UINT64_MAX, &docs, &count) == 0 && count == 1);
	for (size_t i = 0; i < count; i++) {
		docs[i].state = STORE_FTS_INDEXED;
		docs[i].text = text_new(NULL, 0, NULL, "h", "crashed walrus");
	}
	CHECK(store_fts_write(st, docs, count) == 0);
	store_fts_docs_free(&docs, count);
	CHECK_INT(count_search("docs"), 1);
	CHECK_STR(text_covered(st, inbox, buf, sizeof(buf)), "");
	bool pending = false;
	CHECK(store_fts_has_pending(st, &pending) == 0 && pending);
	CHECK_INT(index_pending(st, "h", "crashed walrus"), 1);
	CHECK_INT(count_search("docs"), 1);
	CHECK_INT(count_search("fts_text"), 1);
	CHECK_STR(text_covered(st, inbox, buf, sizeof(buf)), "1");
	CHECK_STR(LOOKUP(st, inbox, STORE_SEARCH_BODY, "walrus"), "1");
	CHECK(store_fts_has_pending(st, &pending) == 0 && !pending);
	/* The same write again (another process indexing the same body). */
	CHECK(store_fts_pending(st, 0, 64, UINT64_MAX, &docs, &count) == 0 && count == 0);
	cleanup(&st);
}

/* A body deleted while it was being indexed: its mark finds no row, and
 * the text just written is listed for the drain. */
static void test_body_gone_while_indexed(void)
{
	struct store *st = setup();
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	append(st, inbox, "short lived", text_new(NULL, 0, NULL, NULL, NULL));
	struct store_fts_doc *docs;
	size_t count;
	CHECK(store_fts_pending(st, 0, 64, UINT64_MAX, &docs, &count) == 0 && count == 1);
	expunge_all(st, inbox);
	CHECK_INT(count_rows("search_gone"), 0);	/* it was not indexed */
	for (size_t i = 0; i < count; i++) {
		docs[i].state = STORE_FTS_INDEXED;
		docs[i].text = text_new(NULL, 0, NULL, "h", "gone text");
	}
	CHECK(store_fts_commit(st, docs, count) == 0);
	store_fts_docs_free(&docs, count);
	CHECK_INT(count_rows("search_gone"), 1);
	size_t removed;
	CHECK(store_fts_drain(st, &removed) == 0 && removed == 1);
	CHECK_INT(count_search("docs"), 0);
	cleanup(&st);
}

int main(void)
{
	RUN(test_header_cache);
	RUN(test_full_text);
	RUN(test_shared_by_copies_gone_with_the_body);
	RUN(test_reused_blob_id_never_matches_old_text);
	RUN(test_crash_between_the_two_commits);
	RUN(test_body_gone_while_indexed);
	return harness_finish();
}
