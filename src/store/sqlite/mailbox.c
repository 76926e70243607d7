/* Mailboxes and subscriptions. */
#include "store/sqlite/sqlite_internal.h"
#include "core/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MBOX_COLUMNS \
	"id, uidvalidity, uidnext, highestmodseq, special_use, objectid, messages, unseen," \
	" deleted, size, expunge_count, expunge_floor"

/* --- Names ------------------------------------------------------------- */

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + n >= len)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

int mbox_name_check(struct store *st, const char *name, char out[STORE_MAX_NAME_LEN + 1])
{
	size_t len = strlen(name);
	if (len == 0 || len > STORE_MAX_NAME_LEN)
		return store_fail(st, STORE_ERR_INVALID_NAME, "mailbox name length %zu", len);
	if (!utf8_valid((const unsigned char *)name, len))
		return store_fail(st, STORE_ERR_INVALID_NAME, "mailbox name is not UTF-8");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f || c == '*' || c == '%')
			return store_fail(st, STORE_ERR_INVALID_NAME, "mailbox name has a forbidden character");
		if (c == '/' && (i == 0 || i == len - 1 || name[i + 1] == '/'))
			return store_fail(st, STORE_ERR_INVALID_NAME, "mailbox name has an empty component");
	}
	memcpy(out, name, len + 1);
	/* RFC 9051 5.1: INBOX is case-insensitive; its children follow. */
	if (strncasecmp(out, INBOX_NAME, 5) == 0 && (out[5] == '\0' || out[5] == '/'))
		memcpy(out, INBOX_NAME, 5);
	return 0;
}

/* --- Rows -------------------------------------------------------------- */

static void row_read(sqlite3_stmt *stmt, struct mbox_row *row)
{
	row->id = (uint64_t)sqlite3_column_int64(stmt, 0);
	row->uidvalidity = (uint32_t)sqlite3_column_int64(stmt, 1);
	row->uidnext = (uint32_t)sqlite3_column_int64(stmt, 2);
	row->highestmodseq = (uint64_t)sqlite3_column_int64(stmt, 3);
	row->special_use = (enum store_special_use)sqlite3_column_int(stmt, 4);
	row->objectid = (uint64_t)sqlite3_column_int64(stmt, 5);
	row->messages = (uint32_t)sqlite3_column_int64(stmt, 6);
	row->unseen = (uint32_t)sqlite3_column_int64(stmt, 7);
	row->deleted = (uint32_t)sqlite3_column_int64(stmt, 8);
	row->size = (uint64_t)sqlite3_column_int64(stmt, 9);
	row->expunge_count = (uint64_t)sqlite3_column_int64(stmt, 10);
	row->expunge_floor = (uint64_t)sqlite3_column_int64(stmt, 11);
}

static int row_fetch(struct store *st, sqlite3_stmt *stmt, struct mbox_row *row_r)
{
	if (stmt == NULL)
		return -1;
	int rc = db_step(st, stmt);
	if (rc < 0)
		return -1;
	if (rc == SQLITE_ROW)
		row_read(stmt, row_r);
	(void)sqlite3_reset(stmt);
	if (rc == SQLITE_DONE)
		store_fail(st, STORE_ERR_NOT_FOUND, "no such mailbox");
	return rc == SQLITE_ROW ? 1 : 0;
}

int mbox_by_id(struct store *st, uint64_t id, struct mbox_row *row_r)
{
	return row_fetch(st, db_query(st, "SELECT " MBOX_COLUMNS " FROM mailboxes WHERE id = ?",
				      "i", I64(id)), row_r);
}

int mbox_by_name(struct store *st, const char *name, struct mbox_row *row_r)
{
	return row_fetch(st, db_query(st, "SELECT " MBOX_COLUMNS " FROM mailboxes WHERE name = ?",
				      "t", name), row_r);
}

int mbox_insert(struct store *st, const char *name, enum store_special_use special_use,
		uint32_t uidnext, uint64_t highestmodseq, uint64_t *id_r)
{
	uint32_t uidvalidity;
	uint64_t objectid;
	int64_t id;
	bool found;

	if (store_next_uidvalidity(st, &uidvalidity) < 0 || store_random_u64(st, &objectid) < 0)
		return -1;
	if (db_int(st, &id, &found,
		   "INSERT INTO mailboxes (name, uidvalidity, uidnext, highestmodseq, special_use,"
		   " objectid) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
		   "tiiiii", name, I64(uidvalidity), I64(uidnext), I64(highestmodseq),
		   I64(special_use), I64(objectid)) < 0)
		return -1;
	*id_r = (uint64_t)id;
	return 0;
}

/* Children of name are the names in [name "/", name "0"): '0' follows '/'
 * in byte order, so one index range finds them. */
static void child_bounds(const char *name, char **lo_r, char **hi_r)
{
	*lo_r = xasprintf("%s/", name);
	*hi_r = xasprintf("%s0", name);
}

/* --- Listing ----------------------------------------------------------- */

void store_mailbox_list_free(struct store_mailbox_entry **entries, size_t count)
{
	if (*entries == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free((*entries)[i].name);
	free(*entries);
	*entries = NULL;
}

int store_mailbox_list(struct store *st, struct store_mailbox_entry **entries_r, size_t *count_r)
{
	struct store_mailbox_entry *entries = NULL;
	size_t count = 0, cap = 0;

	*entries_r = NULL;
	*count_r = 0;
	sqlite3_stmt *stmt = db_query(st,
		"SELECT m.name, m.id, m.special_use,"
		" EXISTS (SELECT 1 FROM subscriptions s WHERE s.name = m.name) FROM mailboxes m"
		" UNION ALL"
		" SELECT s.name, 0, 0, 1 FROM subscriptions s"
		" WHERE NOT EXISTS (SELECT 1 FROM mailboxes m WHERE m.name = s.name)"
		" ORDER BY 1", "");
	if (stmt == NULL)
		return -1;
	int rc;
	while ((rc = db_step(st, stmt)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			entries = xrealloc(entries, cap * sizeof(*entries));
		}
		struct store_mailbox_entry *e = &entries[count++];
		const char *name = (const char *)sqlite3_column_text(stmt, 0);
		e->name = xstrdup(name != NULL ? name : "");
		e->id = (uint64_t)sqlite3_column_int64(stmt, 1);
		e->special_use = (enum store_special_use)sqlite3_column_int(stmt, 2);
		e->subscribed = sqlite3_column_int(stmt, 3) != 0;
	}
	if (rc < 0) {
		store_mailbox_list_free(&entries, count);
		return -1;
	}
	(void)sqlite3_reset(stmt);
	*entries_r = entries;
	*count_r = count;
	return 0;
}

/* --- Create, delete ---------------------------------------------------- */

int store_mailbox_create(struct store *st, const char *name, enum store_special_use special_use)
{
	char norm[STORE_MAX_NAME_LEN + 1];
	struct mbox_row row;
	uint64_t id;

	if (mbox_name_check(st, name, norm) < 0)
		return -1;
	if ((unsigned)special_use > STORE_SPECIAL_FLAGGED)
		return store_fail(st, STORE_ERR_INVALID, "bad special-use value");
	if (store_tx_begin(st) < 0)
		return -1;
	int rc = mbox_by_name(st, norm, &row);
	if (rc != 0) {
		if (rc > 0)
			store_fail(st, STORE_ERR_EXISTS, "mailbox exists");
		goto fail;
	}
	if (mbox_insert(st, norm, special_use, 1, 1, &id) < 0)
		goto fail;
	st->tx_changed = true;
	return store_tx_commit(st);
fail:
	store_tx_rollback(st);
	return -1;
}

int store_mailbox_delete(struct store *st, const char *name)
{
	char norm[STORE_MAX_NAME_LEN + 1];
	struct mbox_row row;

	if (mbox_name_check(st, name, norm) < 0)
		return -1;
	if (strcmp(norm, INBOX_NAME) == 0)
		return store_fail(st, STORE_ERR_NOT_ALLOWED, "INBOX cannot be deleted");
	if (store_tx_begin(st) < 0)
		return -1;
	if (mbox_by_name(st, norm, &row) <= 0)
		goto fail;
	/* The delete trigger drops body references; purge after commit. */
	if (db_exec(st, "DELETE FROM messages WHERE mailbox_id = ?", "i", I64(row.id)) < 0 ||
	    db_exec(st, "DELETE FROM keywords WHERE mailbox_id = ?", "i", I64(row.id)) < 0 ||
	    db_exec(st, "DELETE FROM expunged WHERE mailbox_id = ?", "i", I64(row.id)) < 0 ||
	    db_exec(st, "DELETE FROM mailboxes WHERE id = ?", "i", I64(row.id)) < 0)
		goto fail;
	st->tx_changed = true;
	st->tx_purge = true;
	return store_tx_commit(st);
fail:
	store_tx_rollback(st);
	return -1;
}

int store_mailbox_has_children(struct store *st, const char *name, bool *has_children_r)
{
	char norm[STORE_MAX_NAME_LEN + 1];
	char *lo, *hi;
	int64_t one;
	bool found;

	if (mbox_name_check(st, name, norm) < 0)
		return -1;
	child_bounds(norm, &lo, &hi);
	int rc = db_int(st, &one, &found,
			"SELECT 1 FROM mailboxes WHERE name >= ? AND name < ? LIMIT 1", "tt", lo, hi);
	free(lo);
	free(hi);
	if (rc < 0)
		return -1;
	*has_children_r = found;
	return 0;
}

int store_mailbox_set_special_use(struct store *st, const char *name, enum store_special_use special_use)
{
	char norm[STORE_MAX_NAME_LEN + 1];
	struct mbox_row row;

	if (mbox_name_check(st, name, norm) < 0)
		return -1;
	if ((unsigned)special_use > STORE_SPECIAL_FLAGGED)
		return store_fail(st, STORE_ERR_INVALID, "bad special-use value");
	if (store_tx_begin(st) < 0)
		return -1;
	if (mbox_by_name(st, norm, &row) <= 0 ||
	    db_exec(st, "UPDATE mailboxes SET special_use = ? WHERE id = ?", "ii",
		    I64(special_use), I64(row.id)) < 0)
		goto fail;
	st->tx_changed = true;
	return store_tx_commit(st);
fail:
	store_tx_rollback(st);
	return -1;
}

/* --- Migration -------------------------------------------------------- */

int store_mailbox_set_uidvalidity(struct store *st, const char *name, uint32_t uidvalidity)
{
	char norm[STORE_MAX_NAME_LEN + 1];
	struct mbox_row row;

	if (mbox_name_check(st, name, norm) < 0)
		return -1;
	if (uidvalidity == 0)
		return store_fail(st, STORE_ERR_INVALID, "UIDVALIDITY 0");
	if (store_tx_begin(st) < 0)
		return -1;
	if (mbox_by_name(st, norm, &row) <= 0)
		goto fail;
	if (row.uidvalidity == uidvalidity) {
		store_tx_rollback(st);
		return 0;
	}
	/* Once a UID has been handed out, a client may hold it: changing
	 * UIDVALIDITY then would be a real (if legal) resync, not a migration. */
	if (row.uidnext != 1) {
		store_fail(st, STORE_ERR_NOT_ALLOWED, "mailbox has held messages");
		goto fail;
	}
	/* The user's UIDVALIDITY counter stays above every value in use, so a
	 * mailbox deleted and created again never gets this value back. */
	if (db_exec(st, "UPDATE mailboxes SET uidvalidity = ? WHERE id = ?", "ii", I64(uidvalidity),
		    I64(row.id)) < 0 ||
	    db_exec(st, "UPDATE meta SET value = max(value, ?) WHERE key = 'uidvalidity'", "i",
		    I64(uidvalidity)) < 0)
		goto fail;
	st->tx_changed = true;
	return store_tx_commit(st);
fail:
	store_tx_rollback(st);
	return -1;
}

int store_mailbox_set_uidnext(struct store *st, uint64_t mailbox_id, uint32_t uidnext)
{
	struct mbox_row row;

	if (store_tx_begin(st) < 0)
		return -1;
	if (mbox_by_id(st, mailbox_id, &row) <= 0)
		goto fail;
	if (uidnext <= row.uidnext) {
		store_tx_rollback(st);
		return 0;
	}
	if (db_exec(st, "UPDATE mailboxes SET uidnext = ? WHERE id = ?", "ii", I64(uidnext),
		    I64(mailbox_id)) < 0)
		goto fail;
	st->tx_changed = true;
	return store_tx_commit(st);
fail:
	store_tx_rollback(st);
	return -1;
}

/* --- Rename ------------------------------------------------------------ */

/* RFC 3501 6.3.5: renaming INBOX moves its messages to a new mailbox and
 * leaves INBOX empty. The messages keep their UIDs under a new UIDVALIDITY;
 * INBOX keeps its UIDNEXT so no UID is ever reused there, and logs the moved
 * UIDs as expunged so QRESYNC clients of INBOX see them vanish. */
static int rename_inbox(struct store *st, const char *new_name)
{
	struct mbox_row inbox;
	uint64_t new_id;
	int64_t moved;

	if (mbox_by_name(st, INBOX_NAME, &inbox) <= 0)
		return -1;
	uint64_t modseq = inbox.highestmodseq + 1;
	if (mbox_insert(st, new_name, STORE_SPECIAL_NONE, inbox.uidnext, modseq, &new_id) < 0 ||
	    db_exec(st, "INSERT INTO keywords (mailbox_id, idx, name)"
		    " SELECT ?, idx, name FROM keywords WHERE mailbox_id = ?", "ii",
		    I64(new_id), I64(inbox.id)) < 0 ||
	    db_exec(st, "INSERT INTO expunged (mailbox_id, uid, modseq)"
		    " SELECT mailbox_id, uid, ? FROM messages WHERE mailbox_id = ?", "ii",
		    I64(modseq), I64(inbox.id)) < 0)
		return -1;
	moved = sqlite3_changes64(st->db);
	if (db_exec(st, "UPDATE messages SET mailbox_id = ? WHERE mailbox_id = ?", "ii",
		    I64(new_id), I64(inbox.id)) < 0 ||
	    db_exec(st, "UPDATE mailboxes SET highestmodseq = ? WHERE id = ?", "ii",
		    I64(modseq), I64(inbox.id)) < 0)
		return -1;
	return msg_log_expunged(st, inbox.id, (uint64_t)moved);
}

struct rename_item {
	uint64_t id;
	char *from;
	char *to;
};

static void rename_items_free(struct rename_item *items, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(items[i].from);
		free(items[i].to);
	}
	free(items);
}

/* Renames the mailbox and its children. Each target is checked against
 * names outside the renamed set; inside the set the names pass through
 * a temporary name (a control character no real name has) so that
 * "a/b" -> "a" with a child "a/b/b" does not trip over itself. */
static int rename_tree(struct store *st, const struct mbox_row *row, const char *old_name,
		       const char *new_name)
{
	struct rename_item *items = NULL;
	size_t count = 0, cap = 0;
	char *lo, *hi;
	size_t old_len = strlen(old_name);
	int ret = -1;

	child_bounds(old_name, &lo, &hi);
	sqlite3_stmt *stmt = db_query(st, "SELECT id, name FROM mailboxes WHERE name >= ? AND name < ?",
				      "tt", lo, hi);
	if (stmt == NULL)
		goto out;
	items = xcalloc(1, sizeof(*items));
	cap = 1;
	items[0].id = row->id;
	items[0].from = xstrdup(old_name);
	items[0].to = xstrdup(new_name);
	count = 1;
	int rc;
	while ((rc = db_step(st, stmt)) == SQLITE_ROW) {
		const char *child = (const char *)sqlite3_column_text(stmt, 1);
		if (child == NULL || strlen(child) <= old_len)
			continue;
		if (count == cap) {
			cap *= 2;
			items = xrealloc(items, cap * sizeof(*items));
		}
		items[count].id = (uint64_t)sqlite3_column_int64(stmt, 0);
		items[count].from = xstrdup(child);
		items[count].to = xasprintf("%s%s", new_name, child + old_len);
		count++;
	}
	if (rc < 0)
		goto out;
	(void)sqlite3_reset(stmt);

	for (size_t i = 0; i < count; i++) {
		struct mbox_row other;
		if (strlen(items[i].to) > STORE_MAX_NAME_LEN) {
			store_fail(st, STORE_ERR_INVALID_NAME, "renamed child name too long");
			goto out;
		}
		rc = mbox_by_name(st, items[i].to, &other);
		if (rc < 0)
			goto out;
		if (rc > 0) {
			bool inside = false;
			for (size_t k = 0; k < count && !inside; k++)
				inside = items[k].id == other.id;
			if (!inside) {
				store_fail(st, STORE_ERR_EXISTS, "a mailbox named %s exists", items[i].to);
				goto out;
			}
		}
	}
	for (size_t i = 0; i < count; i++) {
		char tmp[32];
		snprintf(tmp, sizeof(tmp), "\x01%llu", (unsigned long long)items[i].id);
		if (db_exec(st, "UPDATE mailboxes SET name = ? WHERE id = ?", "ti", tmp,
			    I64(items[i].id)) < 0)
			goto out;
	}
	for (size_t i = 0; i < count; i++) {
		int64_t was;
		bool subscribed;
		if (db_exec(st, "UPDATE mailboxes SET name = ? WHERE id = ?", "ti", items[i].to,
			    I64(items[i].id)) < 0 ||
		    db_int(st, &was, &subscribed, "DELETE FROM subscriptions WHERE name = ? RETURNING 1",
			   "t", items[i].from) < 0)
			goto out;
		if (subscribed &&
		    db_exec(st, "INSERT OR IGNORE INTO subscriptions VALUES (?)", "t", items[i].to) < 0)
			goto out;
	}
	ret = 0;
out:
	free(lo);
	free(hi);
	rename_items_free(items, count);
	return ret;
}

int store_mailbox_rename(struct store *st, const char *old_name, const char *new_name)
{
	char from[STORE_MAX_NAME_LEN + 1], to[STORE_MAX_NAME_LEN + 1];
	struct mbox_row row;

	if (mbox_name_check(st, old_name, from) < 0 || mbox_name_check(st, new_name, to) < 0)
		return -1;
	if (strcmp(to, INBOX_NAME) == 0)
		return store_fail(st, STORE_ERR_EXISTS, "INBOX exists");
	bool from_inbox = strcmp(from, INBOX_NAME) == 0;
	size_t from_len = strlen(from);
	/* INBOX's children are not renamed with it, so INBOX -> INBOX/old is
	 * the classic use of RENAME INBOX, not a rename into itself. */
	if (!from_inbox && strncmp(to, from, from_len) == 0 && to[from_len] == '/')
		return store_fail(st, STORE_ERR_NOT_ALLOWED, "cannot rename a mailbox under itself");
	if (store_tx_begin(st) < 0)
		return -1;
	int rc = mbox_by_name(st, from, &row);
	if (rc <= 0)
		goto fail;
	rc = mbox_by_name(st, to, &row);
	if (rc != 0) {
		if (rc > 0)
			store_fail(st, STORE_ERR_EXISTS, "mailbox exists");
		goto fail;
	}
	if (from_inbox) {
		if (rename_inbox(st, to) < 0)
			goto fail;
	} else {
		if (mbox_by_name(st, from, &row) <= 0 || rename_tree(st, &row, from, to) < 0)
			goto fail;
	}
	st->tx_changed = true;
	return store_tx_commit(st);
fail:
	store_tx_rollback(st);
	return -1;
}

/* --- Subscriptions ----------------------------------------------------- */

int store_subscribe(struct store *st, const char *name)
{
	char norm[STORE_MAX_NAME_LEN + 1];
	if (mbox_name_check(st, name, norm) < 0 || store_tx_begin(st) < 0)
		return -1;
	if (db_exec(st, "INSERT OR IGNORE INTO subscriptions VALUES (?)", "t", norm) < 0) {
		store_tx_rollback(st);
		return -1;
	}
	st->tx_changed = true;
	return store_tx_commit(st);
}

int store_unsubscribe(struct store *st, const char *name)
{
	char norm[STORE_MAX_NAME_LEN + 1];
	int64_t one;
	bool found;

	if (mbox_name_check(st, name, norm) < 0 || store_tx_begin(st) < 0)
		return -1;
	if (db_int(st, &one, &found, "DELETE FROM subscriptions WHERE name = ? RETURNING 1", "t",
		   norm) < 0) {
		store_tx_rollback(st);
		return -1;
	}
	if (!found) {
		store_tx_rollback(st);
		return store_fail(st, STORE_ERR_NOT_FOUND, "not subscribed");
	}
	st->tx_changed = true;
	return store_tx_commit(st);
}

/* --- Status ------------------------------------------------------------ */

int store_mailbox_status(struct store *st, const char *name, uint32_t recent_above,
			 struct store_status *status_r)
{
	char norm[STORE_MAX_NAME_LEN + 1];
	struct mbox_row row;
	int64_t value = 0;
	bool found, began;

	if (mbox_name_check(st, name, norm) < 0 || store_read_begin(st, &began) < 0)
		return -1;
	memset(status_r, 0, sizeof(*status_r));
	if (mbox_by_name(st, norm, &row) <= 0)
		goto fail;
	if (recent_above < UINT32_MAX && recent_above + 1 < row.uidnext &&
	    db_int(st, &value, &found,
		   "SELECT count(*) FROM messages WHERE mailbox_id = ? AND uid > ?", "ii",
		   I64(row.id), I64(recent_above)) < 0)
		goto fail;
	status_r->recent = (uint32_t)value;
	if (db_int(st, &value, &status_r->subscribed, "SELECT 1 FROM subscriptions WHERE name = ?",
		   "t", norm) < 0)
		goto fail;
	store_read_end(st, began);
	status_r->mailbox_id = row.id;
	status_r->messages = row.messages;
	status_r->unseen = row.unseen;
	status_r->deleted = row.deleted;
	status_r->size = row.size;
	status_r->uidnext = row.uidnext;
	status_r->uidvalidity = row.uidvalidity;
	status_r->highestmodseq = row.highestmodseq;
	status_r->special_use = row.special_use;
	store_format_objectid('F', row.objectid, status_r->objectid);
	return 0;
fail:
	store_read_end(st, began);
	return -1;
}
