/* Tests for the mail store (src/store/store.h) on the SQLite backend. Each
 * test works in a fresh directory under /tmp. */
#include "core/xalloc.h"
#include "harness.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <sqlite3.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char data_dir[256];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void dir_setup(void)
{
	snprintf(data_dir, sizeof(data_dir), "/tmp/postern-store-XXXXXX");
	if (mkdtemp(data_dir) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
}

static void dir_cleanup(void)
{
	nftw(data_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct store *open_user(const char *user)
{
	struct store *st = NULL;
	enum store_error err;
	char *text = NULL;
	if (store_open(data_dir, user, &st, &err, &text) < 0) {
		fprintf(stderr, "store_open(%s): %s\n", user, text);
		free(text);
		return NULL;
	}
	return st;
}

/* Reports the store's error text when a call fails unexpectedly. */
#define OK(st, call) do { \
	int rc_ = (call); \
	if (rc_ != 0) { \
		const char *t_; \
		store_last_error((st), &t_); \
		fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, t_); \
	} \
	CHECK(rc_ == 0); \
} while (0)

#define FAILS(st, call, expected) do { \
	CHECK((call) == -1); \
	CHECK_INT(store_last_error((st), NULL), (expected)); \
} while (0)

static uint64_t mailbox_id(struct store *st, const char *name)
{
	struct store_status s;
	if (store_mailbox_status(st, name, UINT32_MAX, &s) < 0)
		return 0;
	return s.mailbox_id;
}

static uint32_t append_text(struct store *st, uint64_t mbox, const char *text, uint32_t flags)
{
	struct store_append_msg m = { .data = text, .size = strlen(text), .flags = flags };
	uint32_t uidvalidity, uid = 0;
	OK(st, store_append(st, mbox, &m, 1, &uidvalidity, &uid));
	return uid;
}

static unsigned count_blob_files(void)
{
	char path[512];
	unsigned n = 0;
	for (unsigned i = 0; i < 256; i++) {
		snprintf(path, sizeof(path), "%s/users/alice/blobs/%02x", data_dir, i);
		DIR *d = opendir(path);
		if (d == NULL)
			continue;
		struct dirent *de;
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				n++;
		closedir(d);
	}
	return n;
}

static bool blob_file_exists(const char *hash)
{
	char path[512];
	struct stat sb;
	snprintf(path, sizeof(path), "%s/users/alice/blobs/%.2s/%s", data_dir, hash, hash + 2);
	return stat(path, &sb) == 0;
}

static const struct store_mailbox_entry *find_entry(const struct store_mailbox_entry *e, size_t n,
						    const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(e[i].name, name) == 0)
			return &e[i];
	return NULL;
}

/* --- Opening ----------------------------------------------------------- */

static void test_open_invalid_user(void)
{
	static const char *const bad[] = { "", ".", "..", "a/b", "/", "x\n" };
	struct store *st;
	enum store_error err;
	char *text;

	dir_setup();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		text = NULL;
		CHECK(store_open(data_dir, bad[i], &st, &err, &text) == -1);
		CHECK(st == NULL);
		CHECK_INT(err, STORE_ERR_INVALID_NAME);
		CHECK(text != NULL);
		free(text);
	}
	CHECK(store_open("/nonexistent/postern", "bob", &st, &err, NULL) == -1);
	CHECK_INT(err, STORE_ERR_IO);
	dir_cleanup();
}

static void test_open_creates_inbox(void)
{
	struct store_mailbox_entry *e;
	size_t n;
	char path[512];
	struct stat sb;

	dir_setup();
	struct store *st = open_user("alice");
	CHECK(st != NULL);
	if (st == NULL)
		return;
	OK(st, store_mailbox_list(st, &e, &n));
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_STR(e[0].name, "INBOX");
		CHECK(e[0].id != 0);
		CHECK(e[0].subscribed);
	}
	store_mailbox_list_free(&e, n);
	CHECK(e == NULL);
	snprintf(path, sizeof(path), "%s/users/alice/blobs/tmp", data_dir);
	CHECK(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode));
	snprintf(path, sizeof(path), "%s/users/alice/index.db-wal", data_dir);
	CHECK(stat(path, &sb) == 0);
	CHECK(stat(store_change_path(st), &sb) == 0);
	uint64_t id = mailbox_id(st, "INBOX");
	store_close(&st);
	CHECK(st == NULL);
	store_close(&st);	/* NULL is fine */

	/* Reopening keeps INBOX as it was. */
	st = open_user("alice");
	CHECK(st != NULL);
	if (st != NULL) {
		CHECK_INT(mailbox_id(st, "inbox"), id);
		OK(st, store_mailbox_list(st, &e, &n));
		CHECK_INT(n, 1);
		store_mailbox_list_free(&e, n);
		store_close(&st);
	}
	dir_cleanup();
}

static void test_schema_version(void)
{
	char path[512];
	sqlite3 *db;
	struct store *st;
	enum store_error err;
	char *text = NULL;

	dir_setup();
	st = open_user("alice");
	if (st == NULL)
		return;
	store_close(&st);
	/* A database from a newer postern is refused, not damaged. */
	snprintf(path, sizeof(path), "%s/users/alice/index.db", data_dir);
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	CHECK(store_open(data_dir, "alice", &st, &err, &text) == -1);
	CHECK_INT(err, STORE_ERR_VERSION);
	CHECK(text != NULL && strstr(text, "99") != NULL);
	free(text);
	dir_cleanup();
}

/* --- Mailboxes --------------------------------------------------------- */

static void test_invalid_names(void)
{
	static const char *const bad[] = {
		"", "/a", "a/", "a//b", "a*", "a%b", "tab\there", "del\x7f", "\xc3\x28",
		"\xc0\xaf", "\xed\xa0\x80", "\xf5\x80\x80\x80", "\xe2\x82",
	};
	char longname[STORE_MAX_NAME_LEN + 2];

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FAILS(st, store_mailbox_create(st, bad[i], STORE_SPECIAL_NONE), STORE_ERR_INVALID_NAME);
		FAILS(st, store_subscribe(st, bad[i]), STORE_ERR_INVALID_NAME);
	}
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	FAILS(st, store_mailbox_create(st, longname, STORE_SPECIAL_NONE), STORE_ERR_INVALID_NAME);
	longname[STORE_MAX_NAME_LEN] = '\0';
	OK(st, store_mailbox_create(st, longname, STORE_SPECIAL_NONE));
	OK(st, store_mailbox_create(st, "Entw\xc3\xbcrfe", STORE_SPECIAL_DRAFTS));
	OK(st, store_mailbox_create(st, "\xf0\x9f\x93\xa7 mail", STORE_SPECIAL_NONE));
	FAILS(st, store_mailbox_create(st, "x", (enum store_special_use)99), STORE_ERR_INVALID);
	store_close(&st);
	dir_cleanup();
}

static void test_create_delete(void)
{
	struct store_mailbox_entry *e;
	struct store_status s;
	size_t n;
	bool children;

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	OK(st, store_mailbox_create(st, "Sent", STORE_SPECIAL_SENT));
	OK(st, store_mailbox_create(st, "Archive/2024", STORE_SPECIAL_NONE));
	FAILS(st, store_mailbox_create(st, "Sent", STORE_SPECIAL_NONE), STORE_ERR_EXISTS);
	FAILS(st, store_mailbox_create(st, "inbox", STORE_SPECIAL_NONE), STORE_ERR_EXISTS);
	OK(st, store_mailbox_create(st, "inbox/Sub", STORE_SPECIAL_NONE));
	OK(st, store_mailbox_status(st, "INBOX/sub", UINT32_MAX, &s) == 0 ? -1 : 0);
	OK(st, store_mailbox_status(st, "INBOX/Sub", UINT32_MAX, &s));

	OK(st, store_mailbox_list(st, &e, &n));
	CHECK_INT(n, 4);
	if (n == 4) {
		/* Sorted bytewise; Archive's parent is not a mailbox. */
		CHECK_STR(e[0].name, "Archive/2024");
		CHECK_STR(e[1].name, "INBOX");
		CHECK_STR(e[2].name, "INBOX/Sub");
		CHECK_STR(e[3].name, "Sent");
		CHECK_INT(e[3].special_use, STORE_SPECIAL_SENT);
		CHECK(!e[3].subscribed);
	}
	store_mailbox_list_free(&e, n);

	OK(st, store_mailbox_has_children(st, "Archive", &children));
	CHECK(children);
	OK(st, store_mailbox_has_children(st, "Archive/2024", &children));
	CHECK(!children);
	OK(st, store_mailbox_has_children(st, "Inbox", &children));
	CHECK(children);
	OK(st, store_mailbox_has_children(st, "Sent", &children));
	CHECK(!children);

	OK(st, store_mailbox_set_special_use(st, "Archive/2024", STORE_SPECIAL_ARCHIVE));
	OK(st, store_mailbox_status(st, "Archive/2024", UINT32_MAX, &s));
	CHECK_INT(s.special_use, STORE_SPECIAL_ARCHIVE);
	FAILS(st, store_mailbox_set_special_use(st, "Nope", STORE_SPECIAL_ALL), STORE_ERR_NOT_FOUND);

	FAILS(st, store_mailbox_delete(st, "INBOX"), STORE_ERR_NOT_ALLOWED);
	FAILS(st, store_mailbox_delete(st, "iNbOx"), STORE_ERR_NOT_ALLOWED);
	FAILS(st, store_mailbox_delete(st, "Nope"), STORE_ERR_NOT_FOUND);
	uint64_t sent = mailbox_id(st, "Sent");
	append_text(st, sent, "Subject: x\r\n\r\nbody\r\n", 0);
	OK(st, store_mailbox_delete(st, "Sent"));
	FAILS(st, store_mailbox_status(st, "Sent", UINT32_MAX, &s), STORE_ERR_NOT_FOUND);

	/* The old id is dead even when the name comes back. */
	OK(st, store_mailbox_create(st, "Sent", STORE_SPECIAL_NONE));
	CHECK(mailbox_id(st, "Sent") != sent);
	struct store_view v;
	FAILS(st, store_view_load(st, sent, &v), STORE_ERR_NOT_FOUND);
	struct store_append_msg m = { .data = "x", .size = 1 };
	uint32_t uv, uid;
	FAILS(st, store_append(st, sent, &m, 1, &uv, &uid), STORE_ERR_NOT_FOUND);
	store_close(&st);
	dir_cleanup();
}

static void test_uidvalidity_unique(void)
{
	struct store_status a, b, c;
	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	OK(st, store_mailbox_create(st, "a", STORE_SPECIAL_NONE));
	OK(st, store_mailbox_status(st, "a", UINT32_MAX, &a));
	OK(st, store_mailbox_delete(st, "a"));
	OK(st, store_mailbox_create(st, "a", STORE_SPECIAL_NONE));
	OK(st, store_mailbox_status(st, "a", UINT32_MAX, &b));
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &c));
	CHECK(a.uidvalidity != b.uidvalidity);
	CHECK(b.uidvalidity > a.uidvalidity);
	CHECK(c.uidvalidity != a.uidvalidity && c.uidvalidity != b.uidvalidity);
	CHECK(strcmp(a.objectid, b.objectid) != 0);
	CHECK_INT(strlen(a.objectid), STORE_OBJECTID_SIZE - 1);
	CHECK(a.objectid[0] == 'F');
	store_close(&st);
	dir_cleanup();
}

static void test_subscriptions(void)
{
	struct store_mailbox_entry *e;
	struct store_status s;
	size_t n;

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	OK(st, store_mailbox_create(st, "Lists", STORE_SPECIAL_NONE));
	OK(st, store_subscribe(st, "Lists"));
	OK(st, store_subscribe(st, "Lists"));
	OK(st, store_subscribe(st, "Ghost/child"));
	OK(st, store_mailbox_list(st, &e, &n));
	CHECK_INT(n, 3);
	const struct store_mailbox_entry *ghost = find_entry(e, n, "Ghost/child");
	const struct store_mailbox_entry *lists = find_entry(e, n, "Lists");
	CHECK(ghost != NULL && ghost->id == 0 && ghost->subscribed);
	CHECK(lists != NULL && lists->id != 0 && lists->subscribed);
	store_mailbox_list_free(&e, n);

	OK(st, store_mailbox_status(st, "Lists", UINT32_MAX, &s));
	CHECK(s.subscribed);
	/* RFC 9051 6.3.9: DELETE leaves the subscription. */
	OK(st, store_mailbox_delete(st, "Lists"));
	OK(st, store_mailbox_list(st, &e, &n));
	lists = find_entry(e, n, "Lists");
	CHECK(lists != NULL && lists->id == 0 && lists->subscribed);
	store_mailbox_list_free(&e, n);

	OK(st, store_unsubscribe(st, "Lists"));
	FAILS(st, store_unsubscribe(st, "Lists"), STORE_ERR_NOT_FOUND);
	OK(st, store_unsubscribe(st, "inbox"));
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &s));
	CHECK(!s.subscribed);
	OK(st, store_mailbox_list(st, &e, &n));
	CHECK_INT(n, 2);
	store_mailbox_list_free(&e, n);
	store_close(&st);
	dir_cleanup();
}

static void test_rename_children(void)
{
	struct store_status s1, s2;
	struct store_mailbox_entry *e;
	size_t n;

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	OK(st, store_mailbox_create(st, "a", STORE_SPECIAL_NONE));
	OK(st, store_mailbox_create(st, "a/b", STORE_SPECIAL_NONE));
	OK(st, store_mailbox_create(st, "a/b/c", STORE_SPECIAL_NONE));
	OK(st, store_mailbox_create(st, "ab", STORE_SPECIAL_NONE));
	OK(st, store_mailbox_create(st, "z", STORE_SPECIAL_NONE));
	OK(st, store_subscribe(st, "a/b"));
	uint64_t ab = mailbox_id(st, "a/b");
	uint32_t uid = append_text(st, ab, "Subject: keep\r\n\r\nme\r\n", STORE_FLAG_SEEN);
	OK(st, store_mailbox_status(st, "a/b", UINT32_MAX, &s1));

	FAILS(st, store_mailbox_rename(st, "a", "a/b/x"), STORE_ERR_NOT_ALLOWED);
	FAILS(st, store_mailbox_rename(st, "a", "z"), STORE_ERR_EXISTS);
	FAILS(st, store_mailbox_rename(st, "a", "INBOX"), STORE_ERR_EXISTS);
	FAILS(st, store_mailbox_rename(st, "a", "inbox"), STORE_ERR_EXISTS);
	FAILS(st, store_mailbox_rename(st, "nope", "y"), STORE_ERR_NOT_FOUND);
	FAILS(st, store_mailbox_rename(st, "a", "y/"), STORE_ERR_INVALID_NAME);

	OK(st, store_mailbox_rename(st, "a", "x/y"));
	OK(st, store_mailbox_list(st, &e, &n));
	CHECK(find_entry(e, n, "a") == NULL);
	CHECK(find_entry(e, n, "a/b") == NULL);
	CHECK(find_entry(e, n, "ab") != NULL);		/* not a child of "a" */
	CHECK(find_entry(e, n, "x/y") != NULL);
	CHECK(find_entry(e, n, "x/y/b/c") != NULL);
	const struct store_mailbox_entry *moved = find_entry(e, n, "x/y/b");
	CHECK(moved != NULL && moved->id == ab && moved->subscribed);
	store_mailbox_list_free(&e, n);

	/* Messages, UIDVALIDITY and MAILBOXID stay with the mailbox. */
	OK(st, store_mailbox_status(st, "x/y/b", UINT32_MAX, &s2));
	CHECK_INT(s2.uidvalidity, s1.uidvalidity);
	CHECK_INT(s2.messages, 1);
	CHECK_STR(s2.objectid, s1.objectid);
	struct store_message_info info;
	OK(st, store_message_get(st, ab, uid, &info));

	/* Renaming a child out keeps its own children with it. */
	OK(st, store_mailbox_rename(st, "x/y/b", "v"));
	CHECK_INT(mailbox_id(st, "v"), ab);
	CHECK(mailbox_id(st, "v/c") != 0);
	CHECK(mailbox_id(st, "x/y/b/c") == 0);
	/* A child taking its parent's place: "r/r" -> "r" turns "r/r/r" into
	 * "r/r", the name the renamed mailbox itself had. */
	OK(st, store_mailbox_create(st, "r/r", STORE_SPECIAL_NONE));
	OK(st, store_mailbox_create(st, "r/r/r", STORE_SPECIAL_NONE));
	uint64_t rr = mailbox_id(st, "r/r"), rrr = mailbox_id(st, "r/r/r");
	OK(st, store_mailbox_rename(st, "r/r", "r"));
	CHECK_INT(mailbox_id(st, "r"), rr);
	CHECK_INT(mailbox_id(st, "r/r"), rrr);
	CHECK(mailbox_id(st, "r/r/r") == 0);
	/* The parent's own name inside the renamed set is not a conflict. */
	OK(st, store_mailbox_create(st, "p", STORE_SPECIAL_NONE));
	OK(st, store_mailbox_create(st, "p/p", STORE_SPECIAL_NONE));
	OK(st, store_mailbox_create(st, "p/p/p", STORE_SPECIAL_NONE));
	uint64_t ppp = mailbox_id(st, "p/p/p");
	OK(st, store_mailbox_rename(st, "p/p", "q"));
	CHECK_INT(mailbox_id(st, "q/p"), ppp);
	store_close(&st);
	dir_cleanup();
}

static void test_rename_inbox(void)
{
	struct store_status inbox1, inbox2, old;
	struct store_changes ch;

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	OK(st, store_mailbox_create(st, "INBOX/child", STORE_SPECIAL_NONE));
	const char *kw[] = { "$Important" };
	struct store_append_msg m[3] = {
		{ .data = "one", .size = 3, .flags = STORE_FLAG_SEEN, .keywords = kw, .keyword_count = 1 },
		{ .data = "two", .size = 3 },
		{ .data = "three", .size = 5, .flags = STORE_FLAG_DELETED },
	};
	uint32_t uv, uids[3];
	OK(st, store_append(st, inbox, m, 3, &uv, uids));
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &inbox1));

	OK(st, store_mailbox_rename(st, "inbox", "Old Inbox"));
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &inbox2));
	OK(st, store_mailbox_status(st, "Old Inbox", UINT32_MAX, &old));
	CHECK_INT(inbox2.mailbox_id, inbox);
	CHECK_INT(inbox2.messages, 0);
	CHECK_INT(inbox2.unseen, 0);
	CHECK_INT(inbox2.deleted, 0);
	CHECK_INT(inbox2.size, 0);
	CHECK_INT(inbox2.uidnext, inbox1.uidnext);
	CHECK(inbox2.highestmodseq > inbox1.highestmodseq);
	CHECK_INT(old.messages, 3);
	CHECK_INT(old.unseen, 2);
	CHECK_INT(old.deleted, 1);
	CHECK_INT(old.size, 11);
	CHECK_INT(old.uidnext, inbox1.uidnext);
	CHECK(old.uidvalidity != inbox1.uidvalidity);
	CHECK(mailbox_id(st, "INBOX/child") != 0);

	struct store_view v;
	OK(st, store_view_load(st, old.mailbox_id, &v));
	CHECK_INT(v.count, 3);
	if (v.count == 3) {
		CHECK_INT(v.msgs[0].uid, uids[0]);
		CHECK_INT(v.msgs[2].uid, uids[2]);
		CHECK_INT(v.keywords.count, 1);
		if (v.keywords.count == 1)
			CHECK_STR(v.keywords.names[0], "$Important");
		CHECK_INT(v.msgs[0].keywords, 1);
	}
	store_view_free(&v);

	/* QRESYNC clients of INBOX see the messages vanish. */
	OK(st, store_changes_since(st, inbox, inbox1.highestmodseq, &ch));
	CHECK_INT(ch.expunged.count, 3);
	CHECK(ch.expunged_complete);
	store_changes_free(&ch);

	/* UIDs in INBOX go on from where they were. */
	CHECK_INT(append_text(st, inbox, "four", 0), uids[2] + 1);
	store_close(&st);
	dir_cleanup();
}

/* --- Messages ---------------------------------------------------------- */

static void test_append_view_get(void)
{
	static const char body[] = "From: a@example.org\r\nSubject: hi\r\n\r\nHello\r\n";
	struct store_message_meta meta = {
		.envelope = "(\"env\")", .bodystructure = "(\"text\" \"plain\")", .body = "(\"b\")",
		.extra = "\x00\x01\x02", .extra_len = 3,
	}, got;
	const char *kw[] = { "$Forwarded", "Work" };
	struct store_message_info info;
	struct store_view v;
	uint32_t uv, uid;

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	struct store_status s;
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &s));
	struct store_append_msg m = {
		.data = body, .size = sizeof(body) - 1, .flags = STORE_FLAG_FLAGGED | STORE_FLAG_DRAFT,
		.keywords = kw, .keyword_count = 2, .internaldate = 1000000000, .meta = &meta,
	};
	time_t before = time(NULL);
	OK(st, store_append(st, inbox, &m, 1, &uv, &uid));
	CHECK_INT(uv, s.uidvalidity);
	CHECK_INT(uid, 1);

	OK(st, store_view_load(st, inbox, &v));
	CHECK_INT(v.mailbox_id, inbox);
	CHECK_INT(v.count, 1);
	CHECK_INT(v.uidnext, 2);
	CHECK_INT(v.uidvalidity, uv);
	CHECK(v.highestmodseq > s.highestmodseq);
	if (v.count == 1) {
		CHECK_INT(v.msgs[0].uid, 1);
		CHECK_INT(v.msgs[0].flags, STORE_FLAG_FLAGGED | STORE_FLAG_DRAFT);
		CHECK_INT(v.msgs[0].keywords, 3);
		CHECK_INT(v.msgs[0].size, sizeof(body) - 1);
		CHECK_INT(v.msgs[0].internaldate, 1000000000);
		CHECK_INT(v.msgs[0].modseq, v.highestmodseq);
	}
	CHECK_INT(v.keywords.count, 2);
	if (v.keywords.count == 2) {
		CHECK_STR(v.keywords.names[0], "$Forwarded");
		CHECK_STR(v.keywords.names[1], "Work");
	}
	store_view_free(&v);
	CHECK(v.msgs == NULL);

	OK(st, store_message_get(st, inbox, uid, &info));
	CHECK(info.savedate >= before && info.savedate <= time(NULL));
	CHECK(info.emailid[0] == 'M');
	CHECK_INT(strlen(info.emailid), STORE_OBJECTID_SIZE - 1);
	CHECK_INT(strlen(info.hash), 64);
	CHECK(blob_file_exists(info.hash));
	FAILS(st, store_message_get(st, inbox, 99, &info), STORE_ERR_NOT_FOUND);

	OK(st, store_message_meta_get(st, inbox, uid, &got));
	CHECK_STR(got.envelope, meta.envelope);
	CHECK_STR(got.bodystructure, meta.bodystructure);
	CHECK_STR(got.body, meta.body);
	CHECK_INT(got.extra_len, 3);
	CHECK(got.extra != NULL && memcmp(got.extra, "\x00\x01\x02", 3) == 0);
	store_message_meta_free(&got);
	CHECK(got.envelope == NULL);

	int fd;
	size_t size;
	char buf[128];
	OK(st, store_message_open(st, inbox, uid, &fd, &size));
	CHECK_INT(size, sizeof(body) - 1);
	CHECK(read(fd, buf, sizeof(buf)) == (ssize_t)(sizeof(body) - 1));
	CHECK(memcmp(buf, body, sizeof(body) - 1) == 0);
	close(fd);
	FAILS(st, store_message_open(st, inbox, 42, &fd, &size), STORE_ERR_NOT_FOUND);

	/* A message without meta has NULL fields. */
	uid = append_text(st, inbox, "bare", 0);
	OK(st, store_message_meta_get(st, inbox, uid, &got));
	CHECK(got.envelope == NULL && got.extra == NULL && got.extra_len == 0);
	store_message_meta_free(&got);
	store_close(&st);
	dir_cleanup();
}

static void test_append_rejects(void)
{
	uint32_t uv, uids[3];
	struct store_status s1, s2;
	const char *bad_kw[] = { "\\Seen" };
	const char *bad_kw2[] = { "has space" };

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &s1));
	struct store_append_msg m[3] = {
		{ .data = "a", .size = 1 },
		{ .data = "b", .size = 1 },
		{ .data = "c", .size = 1, .keywords = bad_kw, .keyword_count = 1 },
	};
	/* MULTIAPPEND is all or nothing. */
	FAILS(st, store_append(st, inbox, m, 3, &uv, uids), STORE_ERR_INVALID);
	m[2].keywords = bad_kw2;
	FAILS(st, store_append(st, inbox, m, 3, &uv, uids), STORE_ERR_INVALID);
	m[2].keyword_count = 0;
	m[2].flags = 0x100;
	FAILS(st, store_append(st, inbox, m, 3, &uv, uids), STORE_ERR_INVALID);
	FAILS(st, store_append(st, inbox, m, 0, &uv, uids), STORE_ERR_INVALID);
	struct store_append_msg nobody = { 0 };
	FAILS(st, store_append(st, inbox, &nobody, 1, &uv, uids), STORE_ERR_INVALID);
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &s2));
	CHECK_INT(s2.messages, 0);
	CHECK_INT(s2.uidnext, s1.uidnext);
	CHECK_INT(count_blob_files(), 0);

	m[2].flags = STORE_FLAG_ANSWERED;
	OK(st, store_append(st, inbox, m, 3, &uv, uids));
	CHECK_INT(uids[0], 1);
	CHECK_INT(uids[1], 2);
	CHECK_INT(uids[2], 3);
	store_close(&st);
	dir_cleanup();
}

static void test_uid_monotonic(void)
{
	struct store_uid_list ex;
	struct store_flags_result fr;
	struct store_uid_range all = { 1, UINT32_MAX };

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	for (uint32_t i = 1; i <= 3; i++)
		CHECK_INT(append_text(st, inbox, "same body", STORE_FLAG_DELETED), i);
	OK(st, store_expunge(st, inbox, NULL, 0, &ex));
	CHECK_INT(ex.count, 3);
	store_uid_list_free(&ex);
	CHECK_INT(append_text(st, inbox, "after expunge", 0), 4);
	store_close(&st);

	st = open_user("alice");
	if (st == NULL)
		return;
	CHECK_INT(append_text(st, inbox, "after reopen", STORE_FLAG_DELETED), 5);
	/* Expunging the highest UID does not give it back either. */
	OK(st, store_flags_update(st, inbox, &all, 1, STORE_FLAGS_ADD, STORE_FLAG_DELETED, NULL, 0, 0, &fr));
	store_flags_result_free(&fr);
	OK(st, store_expunge(st, inbox, NULL, 0, &ex));
	CHECK_INT(ex.count, 2);
	store_uid_list_free(&ex);
	store_close(&st);
	st = open_user("alice");
	if (st == NULL)
		return;
	CHECK_INT(append_text(st, inbox, "again", 0), 6);
	store_close(&st);
	dir_cleanup();
}

static void test_status_counts(void)
{
	struct store_status s;
	struct store_flags_result fr;

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	append_text(st, inbox, "12345", STORE_FLAG_SEEN);
	append_text(st, inbox, "123", STORE_FLAG_DELETED);
	append_text(st, inbox, "1", STORE_FLAG_SEEN | STORE_FLAG_DELETED);
	append_text(st, inbox, "12", 0);
	OK(st, store_mailbox_status(st, "INBOX", 2, &s));
	CHECK_INT(s.messages, 4);
	CHECK_INT(s.unseen, 2);
	CHECK_INT(s.deleted, 2);
	CHECK_INT(s.size, 11);
	CHECK_INT(s.recent, 2);
	CHECK_INT(s.uidnext, 5);
	OK(st, store_mailbox_status(st, "INBOX", 0, &s));
	CHECK_INT(s.recent, 4);
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &s));
	CHECK_INT(s.recent, 0);

	struct store_uid_range r = { 1, 4 };
	OK(st, store_flags_update(st, inbox, &r, 1, STORE_FLAGS_SET, STORE_FLAG_SEEN, NULL, 0, 0, &fr));
	store_flags_result_free(&fr);
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &s));
	CHECK_INT(s.unseen, 0);
	CHECK_INT(s.deleted, 0);

	uint64_t bytes, msgs;
	OK(st, store_quota_usage(st, &bytes, &msgs));
	CHECK_INT(bytes, 11);
	CHECK_INT(msgs, 4);
	store_close(&st);
	dir_cleanup();
}

static void test_flags(void)
{
	struct store_flags_result fr;
	struct store_view v;
	const char *work[] = { "Work" };
	const char *work_lc[] = { "work", "$Later" };
	const char *unknown[] = { "Never" };

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	for (int i = 0; i < 4; i++)
		append_text(st, inbox, "m", 0);
	OK(st, store_view_load(st, inbox, &v));
	uint64_t base = v.highestmodseq;
	store_view_free(&v);

	struct store_uid_range r13 = { 3, 1 };	/* reversed on purpose */
	OK(st, store_flags_update(st, inbox, &r13, 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN, work, 1, 0, &fr));
	CHECK_INT(fr.changed_count, 3);
	CHECK_INT(fr.modseq, base + 1);
	if (fr.changed_count == 3) {
		CHECK_INT(fr.changed[0].uid, 1);
		CHECK_INT(fr.changed[2].uid, 3);
		CHECK_INT(fr.changed[1].flags, STORE_FLAG_SEEN);
		CHECK_INT(fr.changed[1].keywords, 1);
		CHECK_INT(fr.changed[1].modseq, base + 1);
	}
	CHECK_INT(fr.failed.count, 0);
	store_flags_result_free(&fr);

	/* Nothing changes: no modseq bump, nothing reported. */
	OK(st, store_flags_update(st, inbox, &r13, 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN, work_lc, 1, 0, &fr));
	CHECK_INT(fr.changed_count, 0);
	CHECK_INT(fr.modseq, base + 1);
	store_flags_result_free(&fr);

	/* Keyword names are case-insensitive; a new one gets the next bit. */
	struct store_uid_range r2[] = { { 2, 2 }, { 4, 4 }, { 2, 4 } };
	OK(st, store_flags_update(st, inbox, r2, 3, STORE_FLAGS_SET, STORE_FLAG_ANSWERED, work_lc, 2, 0, &fr));
	CHECK_INT(fr.changed_count, 3);
	if (fr.changed_count == 3) {
		CHECK_INT(fr.changed[0].uid, 2);
		CHECK_INT(fr.changed[0].flags, STORE_FLAG_ANSWERED);
		CHECK_INT(fr.changed[0].keywords, 3);
	}
	store_flags_result_free(&fr);

	struct store_uid_range all = { 1, UINT32_MAX };
	OK(st, store_flags_update(st, inbox, &all, 1, STORE_FLAGS_REMOVE, 0, unknown, 1, 0, &fr));
	CHECK_INT(fr.changed_count, 0);
	store_flags_result_free(&fr);
	OK(st, store_flags_update(st, inbox, &all, 1, STORE_FLAGS_REMOVE, STORE_FLAG_ANSWERED, work, 1, 0, &fr));
	CHECK_INT(fr.changed_count, 4);
	store_flags_result_free(&fr);

	OK(st, store_view_load(st, inbox, &v));
	CHECK_INT(v.count, 4);
	if (v.count == 4) {
		CHECK_INT(v.msgs[0].flags, STORE_FLAG_SEEN);
		CHECK_INT(v.msgs[0].keywords, 0);
		CHECK_INT(v.msgs[1].flags, 0);
		CHECK_INT(v.msgs[1].keywords, 2);	/* $Later */
		CHECK_INT(v.msgs[3].modseq, v.highestmodseq);
	}
	CHECK_INT(v.keywords.count, 2);

	/* UNCHANGEDSINCE (RFC 7162 3.1.3): UID 1 was last changed at an older
	 * modseq than the others. */
	uint64_t m1 = v.msgs[0].modseq;
	store_view_free(&v);
	struct store_uid_range r24 = { 2, 4 };
	OK(st, store_flags_update(st, inbox, &r24, 1, STORE_FLAGS_ADD, STORE_FLAG_DRAFT, NULL, 0, 0, &fr));
	CHECK_INT(fr.changed_count, 3);
	store_flags_result_free(&fr);
	OK(st, store_flags_update(st, inbox, &all, 1, STORE_FLAGS_ADD, STORE_FLAG_FLAGGED, NULL, 0, m1, &fr));
	CHECK_INT(fr.failed.count, 3);
	if (fr.failed.count == 3) {
		CHECK_INT(fr.failed.uids[0], 2);
		CHECK_INT(fr.failed.uids[2], 4);
	}
	CHECK_INT(fr.changed_count, m1 == 0 ? 0 : 1);
	if (fr.changed_count == 1)
		CHECK_INT(fr.changed[0].uid, 1);
	store_flags_result_free(&fr);

	FAILS(st, store_flags_update(st, inbox, &all, 1, STORE_FLAGS_ADD, 0x40, NULL, 0, 0, &fr), STORE_ERR_INVALID);
	const char *bad[] = { "a(b" };
	FAILS(st, store_flags_update(st, inbox, &all, 1, STORE_FLAGS_ADD, 0, bad, 1, 0, &fr), STORE_ERR_INVALID);
	FAILS(st, store_flags_update(st, 9999, &all, 1, STORE_FLAGS_ADD, 0, NULL, 0, 0, &fr), STORE_ERR_NOT_FOUND);
	store_close(&st);
	dir_cleanup();
}

static void test_keyword_limit(void)
{
	struct store_flags_result fr;
	struct store_uid_range r = { 1, 1 };
	char name[32];
	const char *kw[1] = { name };

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	append_text(st, inbox, "m", 0);
	for (int i = 0; i < STORE_MAX_KEYWORDS; i++) {
		snprintf(name, sizeof(name), "kw%d", i);
		OK(st, store_flags_update(st, inbox, &r, 1, STORE_FLAGS_ADD, 0, kw, 1, 0, &fr));
		store_flags_result_free(&fr);
	}
	snprintf(name, sizeof(name), "one-too-many");
	FAILS(st, store_flags_update(st, inbox, &r, 1, STORE_FLAGS_ADD, 0, kw, 1, 0, &fr), STORE_ERR_LIMIT);
	/* A MULTIAPPEND failing on its second message leaves no body of the
	 * first behind. */
	struct store_append_msg two[2] = {
		{ .data = "fresh body", .size = 10 },
		{ .data = "other body", .size = 10, .keywords = kw, .keyword_count = 1 },
	};
	uint32_t uv, uids[2];
	FAILS(st, store_append(st, inbox, two, 2, &uv, uids), STORE_ERR_LIMIT);
	CHECK_INT(count_blob_files(), 1);
	struct store_view v;
	OK(st, store_view_load(st, inbox, &v));
	CHECK_INT(v.keywords.count, STORE_MAX_KEYWORDS);
	if (v.count == 1)
		CHECK(v.msgs[0].keywords == UINT64_MAX);
	if (v.keywords.count == STORE_MAX_KEYWORDS)
		CHECK_STR(v.keywords.names[63], "kw63");
	store_view_free(&v);
	store_close(&st);
	dir_cleanup();
}

static void test_expunge(void)
{
	struct store_uid_list ex;
	struct store_status s;

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	for (int i = 1; i <= 6; i++)
		append_text(st, inbox, i % 2 ? "odd" : "even", i <= 4 ? STORE_FLAG_DELETED : 0);
	/* UID EXPUNGE 2:3,6: only \Deleted ones among them. */
	struct store_uid_range r[] = { { 2, 3 }, { 6, 6 } };
	OK(st, store_expunge(st, inbox, r, 2, &ex));
	CHECK_INT(ex.count, 2);
	if (ex.count == 2) {
		CHECK_INT(ex.uids[0], 2);
		CHECK_INT(ex.uids[1], 3);
	}
	store_uid_list_free(&ex);
	OK(st, store_expunge(st, inbox, NULL, 0, &ex));
	CHECK_INT(ex.count, 2);
	if (ex.count == 2) {
		CHECK_INT(ex.uids[0], 1);
		CHECK_INT(ex.uids[1], 4);
	}
	store_uid_list_free(&ex);
	uint64_t before = 0;
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &s));
	before = s.highestmodseq;
	OK(st, store_expunge(st, inbox, NULL, 0, &ex));
	CHECK_INT(ex.count, 0);
	CHECK(ex.uids == NULL);
	store_uid_list_free(&ex);
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &s));
	CHECK_INT(s.highestmodseq, before);	/* nothing happened, no modseq */
	CHECK_INT(s.messages, 2);
	CHECK_INT(s.deleted, 0);
	FAILS(st, store_expunge(st, 12345, NULL, 0, &ex), STORE_ERR_NOT_FOUND);
	store_close(&st);
	dir_cleanup();
}

static void test_copy_move(void)
{
	struct store_copy_result cr;
	struct store_message_info a, b;
	struct store_view v;
	const char *kw[] = { "Blue" };
	const char *kw2[] = { "Green" };

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	OK(st, store_mailbox_create(st, "Dest", STORE_SPECIAL_NONE));
	uint64_t dest = mailbox_id(st, "Dest");
	/* Dest has its own keyword at index 0, so Blue must be remapped. */
	struct store_append_msg d = { .data = "dest", .size = 4, .keywords = kw2, .keyword_count = 1 };
	uint32_t uv, uid;
	OK(st, store_append(st, dest, &d, 1, &uv, &uid));
	struct store_append_msg m[3] = {
		{ .data = "first", .size = 5, .flags = STORE_FLAG_SEEN, .keywords = kw, .keyword_count = 1,
		  .internaldate = 12345 },
		{ .data = "second", .size = 6 },
		{ .data = "third", .size = 5 },
	};
	uint32_t uids[3];
	OK(st, store_append(st, inbox, m, 3, &uv, uids));
	unsigned files = count_blob_files();

	struct store_uid_range r[] = { { 1, 1 }, { 3, 10 } };
	OK(st, store_copy(st, inbox, r, 2, dest, false, &cr));
	CHECK_INT(cr.src.count, 2);
	CHECK_INT(cr.dst.count, 2);
	struct store_status ds;
	OK(st, store_mailbox_status(st, "Dest", UINT32_MAX, &ds));
	CHECK_INT(cr.dst_uidvalidity, ds.uidvalidity);
	if (cr.src.count == 2 && cr.dst.count == 2) {
		CHECK_INT(cr.src.uids[0], 1);
		CHECK_INT(cr.src.uids[1], 3);
		CHECK_INT(cr.dst.uids[0], 2);
		CHECK_INT(cr.dst.uids[1], 3);
		OK(st, store_message_get(st, inbox, 1, &a));
		OK(st, store_message_get(st, dest, cr.dst.uids[0], &b));
		CHECK_STR(a.emailid, b.emailid);
		CHECK_STR(a.hash, b.hash);
		CHECK_INT(b.msg.flags, STORE_FLAG_SEEN);
		CHECK_INT(b.msg.internaldate, 12345);
		CHECK_INT(b.msg.keywords, 2);	/* Blue is Dest's index 1 */
	}
	store_copy_result_free(&cr);
	CHECK_INT(count_blob_files(), files);	/* COPY adds references only */

	OK(st, store_view_load(st, dest, &v));
	CHECK_INT(v.count, 3);
	CHECK_INT(v.keywords.count, 2);
	if (v.keywords.count == 2)
		CHECK_STR(v.keywords.names[1], "Blue");
	store_view_free(&v);

	/* MOVE: source loses them and logs them as expunged. */
	struct store_status before;
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &before));
	struct store_uid_range r2 = { 2, 3 };
	OK(st, store_copy(st, inbox, &r2, 1, dest, true, &cr));
	CHECK_INT(cr.src.count, 2);
	if (cr.dst.count == 2) {
		CHECK_INT(cr.dst.uids[0], 4);
		CHECK_INT(cr.dst.uids[1], 5);
	}
	store_copy_result_free(&cr);
	struct store_status after;
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &after));
	CHECK_INT(after.messages, 1);
	struct store_changes ch;
	OK(st, store_changes_since(st, inbox, before.highestmodseq, &ch));
	CHECK_INT(ch.expunged.count, 2);
	CHECK_INT(ch.changed_count, 0);
	store_changes_free(&ch);
	CHECK_INT(count_blob_files(), files);

	/* Nothing to copy is not an error. */
	struct store_uid_range none = { 100, 200 };
	OK(st, store_copy(st, inbox, &none, 1, dest, false, &cr));
	CHECK_INT(cr.src.count, 0);
	store_copy_result_free(&cr);
	FAILS(st, store_copy(st, inbox, &none, 1, 777, false, &cr), STORE_ERR_NOT_FOUND);

	/* MOVE within one mailbox renumbers. */
	struct store_uid_range one = { 1, 1 };
	OK(st, store_copy(st, inbox, &one, 1, inbox, true, &cr));
	CHECK_INT(cr.dst.count, 1);
	if (cr.dst.count == 1)
		CHECK_INT(cr.dst.uids[0], 4);
	store_copy_result_free(&cr);
	OK(st, store_view_load(st, inbox, &v));
	CHECK_INT(v.count, 1);
	if (v.count == 1)
		CHECK_INT(v.msgs[0].uid, 4);
	store_view_free(&v);
	store_close(&st);
	dir_cleanup();
}

static void test_dedup_refcount(void)
{
	struct store_uid_list ex;
	struct store_message_info info;
	struct store_copy_result cr;
	struct store_flags_result fr;
	struct store_uid_range all = { 1, UINT32_MAX };
	static const char body[] = "Subject: dup\r\n\r\nsame bytes\r\n";

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	OK(st, store_mailbox_create(st, "Other", STORE_SPECIAL_NONE));
	uint64_t other = mailbox_id(st, "Other");
	uint32_t u1 = append_text(st, inbox, body, 0);
	uint32_t u2 = append_text(st, inbox, body, STORE_FLAG_DELETED);
	CHECK_INT(count_blob_files(), 1);
	OK(st, store_message_get(st, inbox, u1, &info));
	CHECK(blob_file_exists(info.hash));

	OK(st, store_expunge(st, inbox, NULL, 0, &ex));
	CHECK_INT(ex.count, 1);
	if (ex.count == 1)
		CHECK_INT(ex.uids[0], u2);
	store_uid_list_free(&ex);
	CHECK(blob_file_exists(info.hash));

	/* A copy keeps the body alive after the original goes. */
	OK(st, store_copy(st, inbox, &all, 1, other, false, &cr));
	store_copy_result_free(&cr);
	OK(st, store_flags_update(st, inbox, &all, 1, STORE_FLAGS_ADD, STORE_FLAG_DELETED, NULL, 0, 0, &fr));
	store_flags_result_free(&fr);
	OK(st, store_expunge(st, inbox, NULL, 0, &ex));
	store_uid_list_free(&ex);
	CHECK(blob_file_exists(info.hash));
	CHECK_INT(count_blob_files(), 1);

	/* Deleting the mailbox with the last reference removes the file. */
	OK(st, store_mailbox_delete(st, "Other"));
	CHECK(!blob_file_exists(info.hash));
	CHECK_INT(count_blob_files(), 0);

	/* And the same content can come back afterwards. */
	uint32_t u3 = append_text(st, inbox, body, STORE_FLAG_DELETED);
	CHECK(blob_file_exists(info.hash));
	OK(st, store_expunge(st, inbox, NULL, 0, &ex));
	CHECK_INT(ex.count, 1);
	if (ex.count == 1)
		CHECK_INT(ex.uids[0], u3);
	store_uid_list_free(&ex);
	CHECK(!blob_file_exists(info.hash));
	store_close(&st);
	dir_cleanup();
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
}

static void test_orphans(void)
{
	char path[600], dir[512];
	struct store_message_info info;
	struct stat sb;
	unsigned removed = 99;

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	uint32_t uid = append_text(st, inbox, "kept", 0);
	OK(st, store_message_get(st, inbox, uid, &info));

	/* A body nobody references (a crash after rename, before commit). */
	snprintf(dir, sizeof(dir), "%s/users/alice/blobs/ee", data_dir);
	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/%062d", dir, 0);
	write_file(path, "orphan");
	/* Files that do not look like bodies are left alone. */
	char odd[600];
	snprintf(odd, sizeof(odd), "%s/README", dir);
	write_file(odd, "not mine");
	/* Temp files: an old one (crashed writer) and a fresh one (a writer
	 * in another process right now). */
	char old_tmp[600], new_tmp[600];
	snprintf(old_tmp, sizeof(old_tmp), "%s/users/alice/blobs/tmp/old", data_dir);
	snprintf(new_tmp, sizeof(new_tmp), "%s/users/alice/blobs/tmp/new", data_dir);
	write_file(old_tmp, "x");
	write_file(new_tmp, "y");
	struct timespec times[2] = { { time(NULL) - 7200, 0 }, { time(NULL) - 7200, 0 } };
	CHECK(utimensat(AT_FDCWD, old_tmp, times, 0) == 0);

	OK(st, store_collect_orphans(st, &removed));
	CHECK_INT(removed, 2);
	CHECK(stat(path, &sb) < 0 && errno == ENOENT);
	CHECK(stat(old_tmp, &sb) < 0 && errno == ENOENT);
	CHECK(stat(new_tmp, &sb) == 0);
	CHECK(stat(odd, &sb) == 0);
	CHECK(blob_file_exists(info.hash));
	int fd;
	size_t size;
	OK(st, store_message_open(st, inbox, uid, &fd, &size));
	if (fd >= 0)
		close(fd);
	OK(st, store_collect_orphans(st, &removed));
	CHECK_INT(removed, 0);
	store_close(&st);
	dir_cleanup();
}

/* --- Concurrency ------------------------------------------------------- */

static void test_two_handles(void)
{
	struct store_view v;
	struct store_changes ch;

	dir_setup();
	struct store *a = open_user("alice");
	struct store *b = open_user("alice");
	CHECK(a != NULL && b != NULL);
	if (a == NULL || b == NULL) {
		store_close(&a);
		store_close(&b);
		return;
	}
	uint64_t inbox = mailbox_id(a, "INBOX");
	CHECK_INT(mailbox_id(b, "INBOX"), inbox);
	uint64_t c0 = store_change_counter(b);
	uint32_t last = 0;
	for (int i = 0; i < 20; i++) {
		struct store *st = i % 2 ? b : a;
		uint32_t uid = append_text(st, inbox, i % 3 ? "alpha" : "beta", 0);
		CHECK(uid > last);
		last = uid;
	}
	CHECK_INT(last, 20);
	CHECK(store_change_counter(a) >= c0 + 20);
	CHECK_INT(store_change_counter(a), store_change_counter(b));
	OK(b, store_view_load(b, inbox, &v));
	CHECK_INT(v.count, 20);
	uint64_t seen = v.highestmodseq;
	store_view_free(&v);

	/* A mailbox created by one handle is seen by the other. */
	OK(a, store_mailbox_create(a, "FromA", STORE_SPECIAL_NONE));
	CHECK(mailbox_id(b, "FromA") != 0);
	FAILS(b, store_mailbox_create(b, "FromA", STORE_SPECIAL_NONE), STORE_ERR_EXISTS);

	append_text(a, inbox, "late", 0);
	OK(b, store_changes_since(b, inbox, seen, &ch));
	CHECK_INT(ch.changed_count, 1);
	if (ch.changed_count == 1)
		CHECK_INT(ch.changed[0].uid, 21);
	store_changes_free(&ch);

	/* A batch in one handle holds the write lock; the other waits for
	 * it (here: sees its commit afterwards). */
	OK(a, store_batch_begin(a));
	append_text(a, inbox, "batched", 0);
	OK(b, store_view_load(b, inbox, &v));	/* readers never block */
	CHECK_INT(v.count, 21);
	store_view_free(&v);
	OK(a, store_batch_commit(a));
	OK(b, store_view_load(b, inbox, &v));
	CHECK_INT(v.count, 22);
	store_view_free(&v);
	store_close(&a);
	store_close(&b);
	dir_cleanup();
}

#define FORK_APPENDS 40

static int child_appends_n(const char *user, int count)
{
	struct store *st = NULL;
	enum store_error err;
	if (store_open(data_dir, user, &st, &err, NULL) < 0)
		return 1;
	struct store_status s;
	if (store_mailbox_status(st, "INBOX", UINT32_MAX, &s) < 0)
		return 2;
	for (int i = 0; i < count; i++) {
		char text[64];
		uint32_t uv, uid;
		snprintf(text, sizeof(text), "child %d message %d", (int)getpid(), i);
		struct store_append_msg m = { .data = text, .size = strlen(text) };
		if (store_append(st, s.mailbox_id, &m, 1, &uv, &uid) < 0)
			return 3;
	}
	store_close(&st);
	return 0;
}

static void test_fork_concurrent(void)
{
	struct store_view v;

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(child_appends_n("alice", FORK_APPENDS));
	int failures = 0;
	for (int i = 0; i < FORK_APPENDS; i++) {
		char text[64];
		uint32_t uv, uid;
		snprintf(text, sizeof(text), "parent message %d", i);
		struct store_append_msg m = { .data = text, .size = strlen(text) };
		if (store_append(st, inbox, &m, 1, &uv, &uid) < 0)
			failures++;
	}
	CHECK_INT(failures, 0);
	int status = 0;
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	OK(st, store_view_load(st, inbox, &v));
	CHECK_INT(v.count, 2 * FORK_APPENDS);
	bool dense = true;
	for (size_t i = 0; i < v.count; i++)
		dense = dense && v.msgs[i].uid == i + 1;
	CHECK(dense);
	CHECK_INT(v.uidnext, 2 * FORK_APPENDS + 1);
	store_view_free(&v);
	CHECK_INT(count_blob_files(), 2 * FORK_APPENDS);
	store_close(&st);
	dir_cleanup();
}

/* Several processes opening a user's store for the first time at once:
 * one creates the schema and INBOX, the others wait for it. */
static void test_fork_first_open_race(void)
{
	enum { CHILDREN = 4, EACH = 10 };
	pid_t pids[CHILDREN];
	struct store_view v;

	dir_setup();
	fflush(NULL);
	for (int c = 0; c < CHILDREN; c++) {
		pids[c] = fork();
		CHECK(pids[c] >= 0);
		if (pids[c] == 0)
			_exit(child_appends_n("race", EACH));
	}
	for (int c = 0; c < CHILDREN; c++) {
		int status = 0;
		CHECK(waitpid(pids[c], &status, 0) == pids[c]);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	struct store *st = open_user("race");
	if (st == NULL)
		return;
	struct store_mailbox_entry *e;
	size_t n;
	OK(st, store_mailbox_list(st, &e, &n));
	CHECK_INT(n, 1);
	store_mailbox_list_free(&e, n);
	OK(st, store_view_load(st, mailbox_id(st, "INBOX"), &v));
	CHECK_INT(v.count, CHILDREN * EACH);
	CHECK_INT(v.uidnext, CHILDREN * EACH + 1);
	store_view_free(&v);
	store_close(&st);
	dir_cleanup();
}

/* --- Changes ----------------------------------------------------------- */

static void test_changes_since(void)
{
	struct store_changes ch;
	struct store_flags_result fr;
	struct store_uid_list ex;
	struct store_view v;

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	for (int i = 0; i < 5; i++)
		append_text(st, inbox, "msg", 0);
	OK(st, store_view_load(st, inbox, &v));
	uint64_t m0 = v.highestmodseq;
	store_view_free(&v);

	OK(st, store_changes_since(st, inbox, m0, &ch));
	CHECK_INT(ch.changed_count, 0);
	CHECK_INT(ch.expunged.count, 0);
	CHECK(ch.expunged_complete);
	CHECK_INT(ch.highestmodseq, m0);
	store_changes_free(&ch);

	struct store_uid_range r = { 2, 3 };
	OK(st, store_flags_update(st, inbox, &r, 1, STORE_FLAGS_ADD, STORE_FLAG_DELETED, NULL, 0, 0, &fr));
	store_flags_result_free(&fr);
	struct store_uid_range r4 = { 4, 4 };
	const char *kw[] = { "New" };
	OK(st, store_flags_update(st, inbox, &r4, 1, STORE_FLAGS_ADD, 0, kw, 1, 0, &fr));
	uint64_t m1 = fr.modseq;
	store_flags_result_free(&fr);
	struct store_uid_range r3 = { 3, 3 };
	OK(st, store_expunge(st, inbox, &r3, 1, &ex));
	store_uid_list_free(&ex);
	append_text(st, inbox, "six", 0);

	OK(st, store_changes_since(st, inbox, m0, &ch));
	CHECK_INT(ch.changed_count, 3);	/* 2 (flag), 4 (keyword), 6 (new) */
	if (ch.changed_count == 3) {
		CHECK_INT(ch.changed[0].uid, 2);
		CHECK_INT(ch.changed[0].flags, STORE_FLAG_DELETED);
		CHECK_INT(ch.changed[1].uid, 4);
		CHECK_INT(ch.changed[1].keywords, 1);
		CHECK_INT(ch.changed[2].uid, 6);
	}
	CHECK_INT(ch.expunged.count, 1);
	if (ch.expunged.count == 1)
		CHECK_INT(ch.expunged.uids[0], 3);
	CHECK_INT(ch.keywords.count, 1);
	CHECK_INT(ch.uidnext, 7);
	CHECK(ch.highestmodseq > m1);
	uint64_t top = ch.highestmodseq;
	store_changes_free(&ch);

	OK(st, store_changes_since(st, inbox, m1, &ch));
	CHECK_INT(ch.changed_count, 1);
	CHECK_INT(ch.expunged.count, 1);
	store_changes_free(&ch);
	OK(st, store_changes_since(st, inbox, top, &ch));
	CHECK_INT(ch.changed_count, 0);
	CHECK_INT(ch.expunged.count, 0);
	store_changes_free(&ch);
	FAILS(st, store_changes_since(st, 5555, 0, &ch), STORE_ERR_NOT_FOUND);
	store_close(&st);
	dir_cleanup();
}

static void test_expunge_log_bound(void)
{
	struct store_changes ch;
	struct store_uid_list ex;
	struct store_view v;

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	store_set_expunge_log_limit(st, 5);
	uint64_t inbox = mailbox_id(st, "INBOX");
	for (int i = 0; i < 12; i++)
		append_text(st, inbox, "gone soon", STORE_FLAG_DELETED);
	OK(st, store_view_load(st, inbox, &v));
	uint64_t start = v.highestmodseq;
	store_view_free(&v);
	uint64_t modseq_after[13] = { 0 };
	for (uint32_t uid = 1; uid <= 12; uid++) {
		struct store_uid_range r = { uid, uid };
		OK(st, store_expunge(st, inbox, &r, 1, &ex));
		CHECK_INT(ex.count, 1);
		store_uid_list_free(&ex);
		OK(st, store_view_load(st, inbox, &v));
		modseq_after[uid] = v.highestmodseq;
		store_view_free(&v);
	}
	/* Only the last 5 expunges are remembered. */
	OK(st, store_changes_since(st, inbox, start, &ch));
	CHECK(!ch.expunged_complete);
	CHECK_INT(ch.expunged.count, 5);
	if (ch.expunged.count == 5) {
		CHECK_INT(ch.expunged.uids[0], 8);
		CHECK_INT(ch.expunged.uids[4], 12);
	}
	store_changes_free(&ch);
	/* Since the modseq of the 7th expunge, the log is complete. */
	OK(st, store_changes_since(st, inbox, modseq_after[7], &ch));
	CHECK(ch.expunged_complete);
	CHECK_INT(ch.expunged.count, 5);
	store_changes_free(&ch);
	OK(st, store_changes_since(st, inbox, modseq_after[6], &ch));
	CHECK(!ch.expunged_complete);
	store_changes_free(&ch);
	OK(st, store_changes_since(st, inbox, modseq_after[10], &ch));
	CHECK(ch.expunged_complete);
	CHECK_INT(ch.expunged.count, 2);
	store_changes_free(&ch);
	store_close(&st);
	dir_cleanup();
}

/* --- Streaming, batches, quota, notification -------------------------- */

#define LARGE_SIZE (20u * 1024 * 1024)

static void test_streaming_large(void)
{
	struct store_blob *blob = NULL;
	char chunk[65536];
	uint32_t uv, uids[2];
	int fd;
	size_t size;

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");

	OK(st, store_blob_begin(st, &blob));
	for (size_t off = 0; off < LARGE_SIZE; off += sizeof(chunk)) {
		for (size_t i = 0; i < sizeof(chunk); i++)
			chunk[i] = (char)('a' + (off / sizeof(chunk) + i) % 26);
		OK(st, store_blob_write(st, blob, chunk, sizeof(chunk)));
	}
	/* Not finished: append refuses it. */
	struct store_append_msg m = { .blob = blob };
	FAILS(st, store_append(st, inbox, &m, 1, &uv, uids), STORE_ERR_INVALID);
	OK(st, store_blob_finish(st, blob));
	CHECK_INT(store_blob_size(blob), LARGE_SIZE);

	/* The same body again, from a file descriptor (a spooled literal). */
	char spool[512];
	snprintf(spool, sizeof(spool), "%s/spool", data_dir);
	int sfd = open(spool, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(sfd >= 0);
	for (size_t off = 0; sfd >= 0 && off < LARGE_SIZE; off += sizeof(chunk)) {
		for (size_t i = 0; i < sizeof(chunk); i++)
			chunk[i] = (char)('a' + (off / sizeof(chunk) + i) % 26);
		CHECK(write(sfd, chunk, sizeof(chunk)) == (ssize_t)sizeof(chunk));
	}
	struct store_blob *blob2 = NULL;
	CHECK(lseek(sfd, 0, SEEK_SET) == 0);
	OK(st, store_blob_from_fd(st, sfd, &blob2));
	close(sfd);

	struct store_append_msg two[2] = { { .blob = blob }, { .blob = blob2, .flags = STORE_FLAG_SEEN } };
	OK(st, store_append(st, inbox, two, 2, &uv, uids));
	/* A blob serves one append. */
	FAILS(st, store_append(st, inbox, two, 1, &uv, uids), STORE_ERR_INVALID);
	store_blob_free(&blob);
	store_blob_free(&blob2);
	CHECK(blob == NULL);
	CHECK_INT(count_blob_files(), 1);

	OK(st, store_message_open(st, inbox, uids[1], &fd, &size));
	CHECK_INT(size, LARGE_SIZE);
	char last[4];
	CHECK(pread(fd, last, 4, LARGE_SIZE - 4) == 4);
	size_t off = LARGE_SIZE - sizeof(chunk);
	for (size_t i = sizeof(chunk) - 4, k = 0; k < 4; i++, k++)
		CHECK(last[k] == (char)('a' + (off / sizeof(chunk) + i) % 26));
	close(fd);

	/* An abandoned blob leaves no temp file behind. */
	OK(st, store_blob_begin(st, &blob));
	OK(st, store_blob_write(st, blob, "partial", 7));
	store_blob_free(&blob);
	char tmpdir[512];
	snprintf(tmpdir, sizeof(tmpdir), "%s/users/alice/blobs/tmp", data_dir);
	DIR *d = opendir(tmpdir);
	int entries = 0;
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL)
		entries += de->d_name[0] != '.';
	if (d != NULL)
		closedir(d);
	CHECK_INT(entries, 0);
	store_close(&st);
	dir_cleanup();
}

/* Reading a finished blob back before it is appended: what APPEND does to
 * parse a streamed message. The fd outlives the rename into place. */
static void test_blob_open_read(void)
{
	struct store_blob *blob = NULL;
	uint32_t uv, uid;
	int fd = -1;

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	static const char text[] = "Subject: read back\r\n\r\nbody\r\n";
	const size_t len = sizeof(text) - 1;

	OK(st, store_blob_begin(st, &blob));
	OK(st, store_blob_write(st, blob, text, 10));
	FAILS(st, store_blob_open_read(st, blob, &fd), STORE_ERR_INVALID);
	OK(st, store_blob_write(st, blob, text + 10, len - 10));
	OK(st, store_blob_finish(st, blob));
	OK(st, store_blob_open_read(st, blob, &fd));
	CHECK(fd >= 0);
	struct stat sb;
	CHECK(fstat(fd, &sb) == 0 && (size_t)sb.st_size == len);
	char *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	CHECK(map != MAP_FAILED);
	if (map != MAP_FAILED)
		CHECK(memcmp(map, text, len) == 0);
	/* Read-only. */
	CHECK(write(fd, "x", 1) == -1);

	struct store_append_msg m = { .blob = blob };
	OK(st, store_append(st, inbox, &m, 1, &uv, &uid));
	/* Placed: the mapping and the fd still read the same bytes. */
	if (map != MAP_FAILED) {
		CHECK(memcmp(map, text, len) == 0);
		munmap(map, len);
	}
	char back[64];
	CHECK(pread(fd, back, sizeof(back), 0) == (ssize_t)len);
	CHECK(memcmp(back, text, len) == 0);
	close(fd);
	/* Used by store_append: no longer readable through the blob. */
	FAILS(st, store_blob_open_read(st, blob, &fd), STORE_ERR_INVALID);
	store_blob_free(&blob);
	store_close(&st);
	dir_cleanup();
}

static void test_batch(void)
{
	struct store_status s;
	uint32_t uv, uid;

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	OK(st, store_batch_begin(st));
	FAILS(st, store_batch_begin(st), STORE_ERR_INVALID);
	append_text(st, inbox, "one", 0);
	/* A failing call inside the batch undoes only itself. */
	struct store_append_msg m = { .data = "x", .size = 1 };
	FAILS(st, store_append(st, 424242, &m, 1, &uv, &uid), STORE_ERR_NOT_FOUND);
	OK(st, store_mailbox_create(st, "InBatch", STORE_SPECIAL_NONE));
	FAILS(st, store_mailbox_create(st, "InBatch", STORE_SPECIAL_NONE), STORE_ERR_EXISTS);
	append_text(st, inbox, "two", 0);
	OK(st, store_batch_commit(st));
	FAILS(st, store_batch_commit(st), STORE_ERR_INVALID);
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &s));
	CHECK_INT(s.messages, 2);
	CHECK(mailbox_id(st, "InBatch") != 0);

	/* A rolled-back batch leaves nothing, and no UID is spent. */
	OK(st, store_batch_begin(st));
	append_text(st, inbox, "three", 0);
	OK(st, store_mailbox_create(st, "Gone", STORE_SPECIAL_NONE));
	store_batch_rollback(st);
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &s));
	CHECK_INT(s.messages, 2);
	CHECK_INT(s.uidnext, 3);
	CHECK(mailbox_id(st, "Gone") == 0);
	/* Its body file is an orphan now, for the collector. */
	unsigned removed = 0;
	OK(st, store_collect_orphans(st, &removed));
	CHECK_INT(removed, 1);
	store_close(&st);
	dir_cleanup();
}

static void test_quota(void)
{
	struct store_copy_result cr;
	uint32_t uv, uid;

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	store_set_quota(st, 10, 0);
	append_text(st, inbox, "123456", 0);
	struct store_append_msg m = { .data = "12345", .size = 5 };
	FAILS(st, store_append(st, inbox, &m, 1, &uv, &uid), STORE_ERR_QUOTA);
	struct store_uid_range all = { 1, UINT32_MAX };
	FAILS(st, store_copy(st, inbox, &all, 1, inbox, false, &cr), STORE_ERR_QUOTA);
	/* MOVE does not grow the usage. */
	OK(st, store_mailbox_create(st, "M", STORE_SPECIAL_NONE));
	OK(st, store_copy(st, inbox, &all, 1, mailbox_id(st, "M"), true, &cr));
	store_copy_result_free(&cr);
	store_set_quota(st, 0, 1);
	FAILS(st, store_append(st, inbox, &m, 1, &uv, &uid), STORE_ERR_QUOTA);
	store_set_quota(st, 0, 0);
	OK(st, store_append(st, inbox, &m, 1, &uv, &uid));
	store_close(&st);
	dir_cleanup();
}

static void test_change_notification(void)
{
	char buf[4096];

	dir_setup();
	struct store *st = open_user("alice");
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	CHECK(in >= 0);
	int wd = inotify_add_watch(in, store_change_path(st), IN_MODIFY);
	CHECK(wd >= 0);
	uint64_t c0 = store_change_counter(st);
	CHECK(read(in, buf, sizeof(buf)) < 0 && errno == EAGAIN);
	append_text(st, inbox, "wake up", 0);
	CHECK(read(in, buf, sizeof(buf)) > 0);
	CHECK_INT(store_change_counter(st), c0 + 1);
	OK(st, store_subscribe(st, "x"));
	CHECK_INT(store_change_counter(st), c0 + 2);
	/* Reads do not notify. */
	struct store_view v;
	OK(st, store_view_load(st, inbox, &v));
	store_view_free(&v);
	CHECK_INT(store_change_counter(st), c0 + 2);
	close(in);
	store_close(&st);
	dir_cleanup();
}

static void test_error_names(void)
{
	CHECK_STR(store_error_name(STORE_ERR_NOT_FOUND), "not found");
	CHECK_STR(store_error_name(STORE_ERR_QUOTA), "quota exceeded");
	CHECK_STR(store_error_name((enum store_error)1000), "unknown");
}

/* Migration: a fresh mailbox takes a given UIDVALIDITY, a used one refuses;
 * later mailboxes still get larger values. */
static void test_set_uidvalidity(void)
{
	dir_setup();
	struct store *st = open_user("alice");
	CHECK(st != NULL);
	if (st == NULL)
		return;
	struct store_status s;
	uint32_t future = (uint32_t)time(NULL) + 100000;
	OK(st, store_mailbox_create(st, "Old", STORE_SPECIAL_NONE));
	OK(st, store_mailbox_set_uidvalidity(st, "Old", future));
	OK(st, store_mailbox_status(st, "Old", UINT32_MAX, &s));
	CHECK_INT(s.uidvalidity, future);
	OK(st, store_mailbox_set_uidvalidity(st, "INBOX", 1234));
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &s));
	CHECK_INT(s.uidvalidity, 1234);
	FAILS(st, store_mailbox_set_uidvalidity(st, "INBOX", 0), STORE_ERR_INVALID);
	FAILS(st, store_mailbox_set_uidvalidity(st, "Nosuch", 5), STORE_ERR_NOT_FOUND);
	append_text(st, s.mailbox_id, "Subject: a\r\n\r\nx\r\n", 0);
	OK(st, store_mailbox_set_uidvalidity(st, "INBOX", 1234));	/* same: no-op */
	FAILS(st, store_mailbox_set_uidvalidity(st, "INBOX", 99), STORE_ERR_NOT_ALLOWED);
	/* Delete and create again: never the imported value back. */
	OK(st, store_mailbox_delete(st, "Old"));
	OK(st, store_mailbox_create(st, "Old", STORE_SPECIAL_NONE));
	OK(st, store_mailbox_status(st, "Old", UINT32_MAX, &s));
	CHECK(s.uidvalidity > future);
	store_close(&st);
	dir_cleanup();
}

/* Migration: appends with given UIDs skip ahead, never back; UIDNEXT only
 * rises. */
static void test_append_given_uids(void)
{
	dir_setup();
	struct store *st = open_user("alice");
	CHECK(st != NULL);
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	const char *text = "Subject: u\r\n\r\nx\r\n";
	struct store_append_msg m[2] = {
		{ .data = text, .size = strlen(text), .uid = 5 },
		{ .data = "Subject: v\r\n\r\n", .size = 14, .uid = 9, .flags = STORE_FLAG_SEEN },
	};
	uint32_t uidvalidity, uids[2] = { 0, 0 };
	OK(st, store_append(st, inbox, m, 2, &uidvalidity, uids));
	CHECK_INT(uids[0], 5);
	CHECK_INT(uids[1], 9);
	struct store_status s;
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &s));
	CHECK_INT(s.uidnext, 10);
	CHECK_INT(s.messages, 2);
	/* Below UIDNEXT, or not ascending within a call: refused, nothing added. */
	m[0].uid = 7;
	FAILS(st, store_append(st, inbox, m, 1, &uidvalidity, uids), STORE_ERR_INVALID);
	m[0].uid = 20;
	m[1].uid = 20;
	FAILS(st, store_append(st, inbox, m, 2, &uidvalidity, uids), STORE_ERR_INVALID);
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &s));
	CHECK_INT(s.messages, 2);
	CHECK_INT(s.uidnext, 10);
	/* A given UID then an automatic one follows it. */
	m[0].uid = 12;
	m[1].uid = 0;
	OK(st, store_append(st, inbox, m, 2, &uidvalidity, uids));
	CHECK_INT(uids[0], 12);
	CHECK_INT(uids[1], 13);
	m[0].uid = UINT32_MAX;
	FAILS(st, store_append(st, inbox, m, 1, &uidvalidity, uids), STORE_ERR_LIMIT);
	/* set_uidnext raises only. */
	OK(st, store_mailbox_set_uidnext(st, inbox, 100));
	OK(st, store_mailbox_set_uidnext(st, inbox, 50));
	OK(st, store_mailbox_status(st, "INBOX", UINT32_MAX, &s));
	CHECK_INT(s.uidnext, 100);
	CHECK_INT(append_text(st, inbox, "Subject: w\r\n\r\n", 0), 100);
	FAILS(st, store_mailbox_set_uidnext(st, 999999, 5), STORE_ERR_NOT_FOUND);
	store_close(&st);
	dir_cleanup();
}

/* Migration: "is this body already in the mailbox", by the store's hash. */
static void test_count_by_hash(void)
{
	dir_setup();
	struct store *st = open_user("alice");
	CHECK(st != NULL);
	if (st == NULL)
		return;
	uint64_t inbox = mailbox_id(st, "INBOX");
	OK(st, store_mailbox_create(st, "Other", STORE_SPECIAL_NONE));
	uint64_t other = mailbox_id(st, "Other");
	const char *text = "Subject: h\r\n\r\nsame body\r\n";
	char hash[STORE_HASH_SIZE];
	CHECK_INT(store_body_hash(text, strlen(text), hash), 0);
	CHECK_INT(strlen(hash), 64);
	uint32_t n = 99;
	OK(st, store_message_count_by_hash(st, inbox, hash, &n));
	CHECK_INT(n, 0);
	uint32_t uid = append_text(st, inbox, text, 0);
	append_text(st, inbox, text, 0);
	append_text(st, other, text, 0);
	OK(st, store_message_count_by_hash(st, inbox, hash, &n));
	CHECK_INT(n, 2);
	OK(st, store_message_count_by_hash(st, other, hash, &n));
	CHECK_INT(n, 1);
	struct store_message_info info;
	OK(st, store_message_get(st, inbox, uid, &info));
	CHECK_STR(info.hash, hash);
	store_close(&st);
	dir_cleanup();
}

/* A large mailbox's view is read once per handle and copied while the
 * mailbox is unchanged (message.c VIEW_CACHE_MIN): every kind of change
 * made through another handle (another worker) must still be seen, and a
 * caller's changes to its copy must not leak into the next load. */
static bool views_equal(const struct store_view *a, const struct store_view *b)
{
	if (a->count != b->count || a->uidnext != b->uidnext || a->highestmodseq != b->highestmodseq)
		return false;
	/* Field by field: struct padding is not part of the value. */
	for (size_t i = 0; i < a->count; i++) {
		const struct store_msg *x = &a->msgs[i], *y = &b->msgs[i];
		if (x->uid != y->uid || x->modseq != y->modseq || x->flags != y->flags ||
		    x->keywords != y->keywords || x->size != y->size || x->internaldate != y->internaldate)
			return false;
	}
	return true;
}

static void check_same_as_fresh_read(struct store *cached, uint64_t inbox)
{
	struct store *fresh = open_user("big");
	struct store_view v, w;
	OK(cached, store_view_load(cached, inbox, &v));
	OK(fresh, store_view_load(fresh, inbox, &w));
	CHECK(views_equal(&v, &w));
	store_view_free(&v);
	store_view_free(&w);
	store_close(&fresh);
}

static void test_view_cache_sees_every_change(void)
{
	dir_setup();
	struct store *a = open_user("big"), *b = open_user("big");
	uint64_t inbox = mailbox_id(a, "INBOX");
	enum { N = 10000 };
	static const char text[] = "Subject: many\r\n\r\nthe same body\r\n";
	struct store_append_msg *msgs = xcalloc(N, sizeof(*msgs));
	for (size_t i = 0; i < N; i++)
		msgs[i] = (struct store_append_msg){ .data = text, .size = sizeof(text) - 1,
						     .flags = i % 3 ? 0 : STORE_FLAG_SEEN };
	uint32_t uidvalidity, *uids = xcalloc(N, sizeof(*uids));
	OK(b, store_append(b, inbox, msgs, N, &uidvalidity, uids));

	struct store_view first, again;
	OK(a, store_view_load(a, inbox, &first));
	CHECK_INT(first.count, N);
	uint32_t flags0 = first.msgs[0].flags;
	first.msgs[0].flags ^= STORE_FLAG_FLAGGED;
	OK(a, store_view_load(a, inbox, &again));
	CHECK_INT(again.msgs[0].flags, flags0);
	store_view_free(&first);
	store_view_free(&again);
	check_same_as_fresh_read(a, inbox);

	struct store_flags_result fr;
	struct store_uid_range r = { uids[5], uids[5] };
	OK(b, store_flags_update(b, inbox, &r, 1, STORE_FLAGS_ADD, STORE_FLAG_FLAGGED, NULL, 0, 0, &fr));
	store_flags_result_free(&fr);
	check_same_as_fresh_read(a, inbox);

	const char *kw = "$Important";
	r = (struct store_uid_range){ uids[N - 1], uids[N - 1] };
	OK(b, store_flags_update(b, inbox, &r, 1, STORE_FLAGS_ADD, 0, &kw, 1, 0, &fr));
	store_flags_result_free(&fr);
	check_same_as_fresh_read(a, inbox);

	r = (struct store_uid_range){ uids[7], uids[8] };
	OK(b, store_flags_update(b, inbox, &r, 1, STORE_FLAGS_ADD, STORE_FLAG_DELETED, NULL, 0, 0, &fr));
	store_flags_result_free(&fr);
	struct store_uid_list ex = { 0 };
	OK(b, store_expunge(b, inbox, &r, 1, &ex));
	CHECK_INT(ex.count, 2);
	store_uid_list_free(&ex);
	check_same_as_fresh_read(a, inbox);
	struct store_view after;
	OK(a, store_view_load(a, inbox, &after));
	CHECK_INT(after.count, N - 2);
	store_view_free(&after);

	append_text(b, inbox, "Subject: one more\r\n\r\nx\r\n", 0);
	check_same_as_fresh_read(a, inbox);
	OK(a, store_view_load(a, inbox, &after));
	CHECK_INT(after.count, N - 1);
	store_view_free(&after);

	/* Proof that loads are served from what was kept, and brought up to
	 * date by the changes only: a row changed behind the store's back
	 * (no new modseq) stays unseen through a's loads, before and after
	 * another message's change, while a fresh handle reads it. */
	char path[512];
	sqlite3 *db;
	snprintf(path, sizeof(path), "%s/users/big/index.db", data_dir);
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	char sql[128];
	snprintf(sql, sizeof(sql), "UPDATE messages SET size = 4242 WHERE uid = %u", uids[100]);
	CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	r = (struct store_uid_range){ uids[200], uids[200] };
	OK(b, store_flags_update(b, inbox, &r, 1, STORE_FLAGS_ADD, STORE_FLAG_ANSWERED, NULL, 0, 0, &fr));
	store_flags_result_free(&fr);
	struct store *fresh = open_user("big");
	struct store_view v, w;
	OK(a, store_view_load(a, inbox, &v));
	OK(fresh, store_view_load(fresh, inbox, &w));
	/* Two messages before them were expunged above. */
	CHECK(v.msgs[98].uid == uids[100] && w.msgs[98].uid == uids[100]);
	CHECK(v.msgs[98].size != 4242);
	CHECK_INT(w.msgs[98].size, 4242);
	CHECK(v.msgs[198].uid == uids[200] && (v.msgs[198].flags & STORE_FLAG_ANSWERED));
	store_view_free(&v);
	store_view_free(&w);
	store_close(&fresh);

	free(msgs);
	free(uids);
	store_close(&a);
	store_close(&b);
	dir_cleanup();
}

int main(void)
{
	RUN(test_open_invalid_user);
	RUN(test_open_creates_inbox);
	RUN(test_schema_version);
	RUN(test_invalid_names);
	RUN(test_create_delete);
	RUN(test_uidvalidity_unique);
	RUN(test_subscriptions);
	RUN(test_rename_children);
	RUN(test_rename_inbox);
	RUN(test_append_view_get);
	RUN(test_append_rejects);
	RUN(test_uid_monotonic);
	RUN(test_status_counts);
	RUN(test_flags);
	RUN(test_keyword_limit);
	RUN(test_expunge);
	RUN(test_copy_move);
	RUN(test_dedup_refcount);
	RUN(test_orphans);
	RUN(test_two_handles);
	RUN(test_fork_concurrent);
	RUN(test_fork_first_open_race);
	RUN(test_changes_since);
	RUN(test_expunge_log_bound);
	RUN(test_streaming_large);
	RUN(test_blob_open_read);
	RUN(test_batch);
	RUN(test_quota);
	RUN(test_change_notification);
	RUN(test_error_names);
	RUN(test_set_uidvalidity);
	RUN(test_append_given_uids);
	RUN(test_view_cache_sees_every_change);
	RUN(test_count_by_hash);
	return harness_finish();
}
