/* The full-text indexer (imapd/search_indexer.h) against a real store:
 * a store written by schema 1 (made here with that version's own SQL) is
 * migrated on open and every message indexed, header fields included;
 * indexing twice does nothing; a stop request leaves bodies pending. */
#include "harness.h"
#include "imapd/search_indexer.h"
#include "store/store.h"

#include <ftw.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char data_dir[256];

/* Schema 1 as postern wrote it before the search index (store.c). */
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

static const char old_message[] =
	"From: Zed Walrus <zed@example.org>\r\n"
	"Subject: Logbook\r\n"
	"\r\n"
	"The quarterly lighthouse inventory is due.\r\n";

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static void sha256_hex(const char *data, size_t len, char out[STORE_HASH_SIZE])
{
	unsigned char md[32];
	unsigned int md_len = 0;
	CHECK(EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) == 1 && md_len == 32);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* DATA_DIR/users/alice as schema 1 left it: INBOX with one message. */
static int make_schema_1_store(void)
{
	char path[512], hash[STORE_HASH_SIZE];
	snprintf(data_dir, sizeof(data_dir), "/tmp/postern-indexer-XXXXXX");
	if (mkdtemp(data_dir) == NULL)
		return -1;
	sha256_hex(old_message, sizeof(old_message) - 1, hash);
	const char *dirs[] = { "users", "users/alice", "users/alice/blobs", "users/alice/blobs/tmp" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", data_dir, dirs[i]);
		if (mkdir(path, 0700) < 0)
			return -1;
	}
	snprintf(path, sizeof(path), "%s/users/alice/blobs/%.2s", data_dir, hash);
	if (mkdir(path, 0700) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/users/alice/blobs/%.2s/%s", data_dir, hash, hash + 2);
	FILE *f = fopen(path, "w");
	if (f == NULL || fwrite(old_message, 1, sizeof(old_message) - 1, f) != sizeof(old_message) - 1 ||
	    fclose(f) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/users/alice/index.db", data_dir);
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return -1;
	char sql[1024];
	snprintf(sql, sizeof(sql),
		 "INSERT INTO mailboxes (name, uidvalidity, uidnext, objectid) VALUES ('INBOX', 1, 2, 1);"
		 "INSERT INTO subscriptions VALUES ('INBOX');"
		 "INSERT INTO blobs (hash, size) VALUES ('%s', %zu);"
		 "INSERT INTO messages VALUES (1, 1, 2, 0, 0, %zu, 0, 0, 1, 1);"
		 "UPDATE mailboxes SET highestmodseq = 2 WHERE id = 1;"
		 "PRAGMA user_version = 1;",
		 hash, sizeof(old_message) - 1, sizeof(old_message) - 1);
	int rc = sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL) == SQLITE_OK &&
		 sqlite3_exec(db, schema_v1, NULL, NULL, NULL) == SQLITE_OK &&
		 sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
	sqlite3_close(db);
	return rc;
}

static void cleanup(struct store **st)
{
	store_close(st);
	nftw(data_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Matches of one term as a count, and what the index covers. */
static size_t matches(struct store *st, enum store_search_field field, const char *needle, size_t *hdr_r,
		      size_t *text_r)
{
	struct store_search_term term = { .field = field, .needle = needle, .needle_len = strlen(needle) };
	struct store_search_coverage cov;
	if (store_search_index(st, 1, &term, 1, &cov) < 0)
		return SIZE_MAX;
	size_t n = term.matches.count;
	*hdr_r = cov.headers.count;
	*text_r = cov.text.count;
	store_uid_list_free(&term.matches);
	store_search_coverage_free(&cov);
	return n;
}

static void test_schema_1_store_is_migrated_and_indexed(void)
{
	CHECK(make_schema_1_store() == 0);
	struct store *st = NULL;
	enum store_error err;
	char *text = NULL;
	CHECK(store_open(data_dir, "alice", &st, &err, &text) == 0);
	free(text);
	if (st == NULL)
		return;
	/* Migrated: the old body is pending, nothing covers it yet, and it
	 * can still be read (SEARCH scans it). */
	bool pending = false;
	CHECK(store_fts_has_pending(st, &pending) == 0 && pending);
	size_t hdr = 9, txt = 9;
	CHECK_INT(matches(st, STORE_SEARCH_FROM, "walrus", &hdr, &txt), 0);
	CHECK_INT(hdr, 0);
	int fd;
	size_t size;
	CHECK(store_message_open(st, 1, 1, &fd, &size) == 0 && size == sizeof(old_message) - 1);
	close(fd);
	struct search_index_stats stats = { 0 };
	CHECK(search_index_user(st, NULL, &stats) == 0);
	CHECK_INT(stats.indexed, 1);
	CHECK_INT(stats.left_out, 0);
	CHECK(store_fts_has_pending(st, &pending) == 0 && !pending);
	/* The indexer fills in the header fields of old bodies too. */
	CHECK_INT(matches(st, STORE_SEARCH_FROM, "walrus", &hdr, &txt), 1);
	CHECK_INT(hdr, 1);
	CHECK_INT(matches(st, STORE_SEARCH_BODY, "lighthouse inventory", &hdr, &txt), 1);
	CHECK_INT(txt, 1);
	CHECK_INT(matches(st, STORE_SEARCH_TEXT, "subject: logbook", &hdr, &txt), 1);
	CHECK_INT(matches(st, STORE_SEARCH_BODY, "logbook", &hdr, &txt), 0);
	/* Twice: nothing more to do. */
	struct search_index_stats again = { 0 };
	CHECK(search_index_user(st, NULL, &again) == 0);
	CHECK_INT(again.indexed, 0);
	cleanup(&st);
}

static void test_stop_leaves_bodies_pending(void)
{
	CHECK(make_schema_1_store() == 0);
	struct store *st = NULL;
	enum store_error err;
	CHECK(store_open(data_dir, "alice", &st, &err, NULL) == 0);
	if (st == NULL)
		return;
	atomic_bool stop;
	atomic_init(&stop, true);
	struct search_index_stats stats = { 0 };
	CHECK(search_index_user(st, &stop, &stats) == 0);
	CHECK_INT(stats.indexed, 0);
	bool pending = false;
	CHECK(store_fts_has_pending(st, &pending) == 0 && pending);
	cleanup(&st);
}

int main(void)
{
	RUN(test_schema_1_store_is_migrated_and_indexed);
	RUN(test_stop_leaves_bodies_pending);
	return harness_finish();
}
