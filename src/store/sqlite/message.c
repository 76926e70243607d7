/* Messages: append, copy/move, flags, expunge, views, changes, bodies.
 *
 * Modseqs: every write transaction that changes a mailbox gives all its
 * changes in that mailbox one new modseq, highestmodseq + 1 (RFC 7162 3.1:
 * messages changed by one command may share a modseq). UIDs come from
 * mailboxes.uidnext, read and advanced inside the same BEGIN IMMEDIATE
 * transaction that inserts the rows, so no two processes can hand out the
 * same UID and a UID is never reused: uidnext only grows, commits with the
 * rows, and expunged rows leave it untouched. */
#include "store/sqlite/sqlite_internal.h"
#include "store/blob.h"
#include "core/log.h"
#include "core/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#define MSG_COLUMNS "uid, flags, keywords, modseq, size, internaldate"

/* --- Small containers -------------------------------------------------- */

void store_uid_list_free(struct store_uid_list *list)
{
	free(list->uids);
	list->uids = NULL;
	list->count = 0;
}

void uid_push(struct store_uid_list *list, size_t *cap, uint32_t uid)
{
	if (list->count == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		list->uids = xrealloc(list->uids, *cap * sizeof(*list->uids));
	}
	list->uids[list->count++] = uid;
}

static struct store_msg *msg_push(struct store_msg **msgs, size_t *count, size_t *cap)
{
	if (*count == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*msgs = xrealloc(*msgs, *cap * sizeof(**msgs));
	}
	return &(*msgs)[(*count)++];
}

static void msg_read(sqlite3_stmt *stmt, struct store_msg *msg)
{
	msg->uid = (uint32_t)sqlite3_column_int64(stmt, 0);
	msg->flags = (uint32_t)sqlite3_column_int64(stmt, 1);
	msg->keywords = (uint64_t)sqlite3_column_int64(stmt, 2);
	msg->modseq = (uint64_t)sqlite3_column_int64(stmt, 3);
	msg->size = (uint32_t)sqlite3_column_int64(stmt, 4);
	msg->internaldate = sqlite3_column_int64(stmt, 5);
}

int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_msg(const void *a, const void *b)
{
	return cmp_u32(&((const struct store_msg *)a)->uid, &((const struct store_msg *)b)->uid);
}

static int cmp_range(const void *a, const void *b)
{
	return cmp_u32(&((const struct store_uid_range *)a)->lo, &((const struct store_uid_range *)b)->lo);
}

/* Sorted, disjoint copies of the caller's ranges, so queries per range
 * return each message once and in UID order. */
static struct store_uid_range *ranges_normalise(const struct store_uid_range *in, size_t count,
						size_t *count_r)
{
	struct store_uid_range *r = xcalloc(count ? count : 1, sizeof(*r));
	for (size_t i = 0; i < count; i++) {
		r[i].lo = in[i].lo <= in[i].hi ? in[i].lo : in[i].hi;
		r[i].hi = in[i].lo <= in[i].hi ? in[i].hi : in[i].lo;
	}
	qsort(r, count, sizeof(*r), cmp_range);
	size_t n = 0;
	for (size_t i = 0; i < count; i++) {
		if (n > 0 && (uint64_t)r[n - 1].hi + 1 >= r[i].lo) {
			if (r[i].hi > r[n - 1].hi)
				r[n - 1].hi = r[i].hi;
		} else {
			r[n++] = r[i];
		}
	}
	*count_r = n;
	return r;
}

/* --- Keywords ---------------------------------------------------------- */

void store_keywords_free(struct store_keywords *kw)
{
	for (size_t i = 0; i < kw->count; i++)
		free(kw->names[i]);
	free(kw->names);
	kw->names = NULL;
	kw->count = 0;
}

/* A keyword is an IMAP atom (RFC 9051 flag-keyword) not starting with '\'.
 * Checked here too, because a stored name is returned to every client. */
static bool keyword_valid(const char *kw)
{
	size_t len = strlen(kw);
	if (len == 0 || len > STORE_MAX_KEYWORD_LEN || kw[0] == '\\')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)kw[i];
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

static int keywords_load(struct store *st, uint64_t mailbox_id, struct store_keywords *kw)
{
	size_t cap = 0;
	memset(kw, 0, sizeof(*kw));
	sqlite3_stmt *stmt = db_query(st, "SELECT idx, name FROM keywords WHERE mailbox_id = ? ORDER BY idx",
				      "i", I64(mailbox_id));
	if (stmt == NULL)
		return -1;
	int rc;
	while ((rc = db_step(st, stmt)) == SQLITE_ROW) {
		size_t idx = (size_t)sqlite3_column_int64(stmt, 0);
		const char *name = (const char *)sqlite3_column_text(stmt, 1);
		if (idx >= STORE_MAX_KEYWORDS)
			continue;
		if (idx >= cap) {
			size_t ncap = STORE_MAX_KEYWORDS;
			kw->names = xrealloc(kw->names, ncap * sizeof(*kw->names));
			memset(kw->names + cap, 0, (ncap - cap) * sizeof(*kw->names));
			cap = ncap;
		}
		free(kw->names[idx]);
		kw->names[idx] = xstrdup(name != NULL ? name : "");
		if (idx + 1 > kw->count)
			kw->count = idx + 1;
	}
	if (rc < 0) {
		kw->count = cap;
		store_keywords_free(kw);
		return -1;
	}
	(void)sqlite3_reset(stmt);
	/* Indexes are dense; fill any hole defensively so names[i] is never NULL. */
	for (size_t i = 0; i < kw->count; i++)
		if (kw->names[i] == NULL)
			kw->names[i] = xstrdup("");
	return 0;
}

/* The index of keyword name in the mailbox, created if asked; *idx_r = -1
 * if absent and not created. */
static int keyword_index(struct store *st, uint64_t mailbox_id, const char *name, bool create,
			 int *idx_r)
{
	int64_t idx;
	bool found;

	if (db_int(st, &idx, &found, "SELECT idx FROM keywords WHERE mailbox_id = ? AND name = ?", "it",
		   I64(mailbox_id), name) < 0)
		return -1;
	if (found || !create) {
		*idx_r = found ? (int)idx : -1;
		return 0;
	}
	if (db_int(st, &idx, &found, "SELECT coalesce(max(idx) + 1, 0) FROM keywords WHERE mailbox_id = ?",
		   "i", I64(mailbox_id)) < 0)
		return -1;
	if (idx >= STORE_MAX_KEYWORDS)
		return store_fail(st, STORE_ERR_LIMIT, "mailbox has %d keywords already", STORE_MAX_KEYWORDS);
	if (db_exec(st, "INSERT INTO keywords (mailbox_id, idx, name) VALUES (?, ?, ?)", "iit",
		    I64(mailbox_id), idx, name) < 0)
		return -1;
	st->tx_changed = true;
	*idx_r = (int)idx;
	return 0;
}

static int keywords_mask(struct store *st, uint64_t mailbox_id, const char *const *names, size_t count,
			 bool create, uint64_t *mask_r)
{
	uint64_t mask = 0;
	for (size_t i = 0; i < count; i++) {
		int idx;
		if (names[i] == NULL || !keyword_valid(names[i]))
			return store_fail(st, STORE_ERR_INVALID, "invalid keyword");
		if (keyword_index(st, mailbox_id, names[i], create, &idx) < 0)
			return -1;
		if (idx >= 0)
			mask |= (uint64_t)1 << idx;
	}
	*mask_r = mask;
	return 0;
}

/* --- Expunge log ------------------------------------------------------- */

/* Accounts for added rows in the mailbox's expunge log and trims it to the
 * limit, oldest modseqs first. expunge_floor is the largest modseq trimmed:
 * "changes since M" is complete for M >= floor. */
int msg_log_expunged(struct store *st, uint64_t mailbox_id, uint64_t added)
{
	int64_t total, cut;
	bool found;

	if (added == 0)
		return 0;
	if (db_int(st, &total, &found,
		   "UPDATE mailboxes SET expunge_count = expunge_count + ? WHERE id = ? RETURNING expunge_count",
		   "ii", I64(added), I64(mailbox_id)) < 0)
		return -1;
	if (!found || total <= (int64_t)st->expunge_log_limit)
		return 0;
	if (db_int(st, &cut, &found,
		   "SELECT modseq FROM expunged WHERE mailbox_id = ? ORDER BY modseq LIMIT 1 OFFSET ?",
		   "ii", I64(mailbox_id), total - (int64_t)st->expunge_log_limit - 1) < 0)
		return -1;
	if (!found)
		return 0;
	if (db_exec(st, "DELETE FROM expunged WHERE mailbox_id = ? AND modseq <= ?", "ii",
		    I64(mailbox_id), cut) < 0)
		return -1;
	int64_t removed = sqlite3_changes64(st->db);
	return db_exec(st, "UPDATE mailboxes SET expunge_count = expunge_count - ?,"
		       " expunge_floor = max(expunge_floor, ?) WHERE id = ?", "iii",
		       removed, cut, I64(mailbox_id));
}

/* --- Append ------------------------------------------------------------ */

static int quota_check(struct store *st, uint64_t add_bytes, uint64_t add_messages)
{
	uint64_t bytes, messages;
	if (st->quota_bytes == 0 && st->quota_messages == 0)
		return 0;
	if (store_quota_usage(st, &bytes, &messages) < 0)
		return -1;
	if ((st->quota_bytes != 0 && bytes + add_bytes > st->quota_bytes) ||
	    (st->quota_messages != 0 && messages + add_messages > st->quota_messages))
		return store_fail(st, STORE_ERR_QUOTA, "quota exceeded");
	return 0;
}

/* Makes the body of w present and referenced by a blobs row, in the open
 * transaction. A row with refs > 0 guarantees the file (nobody removes it
 * while referenced), so the new copy is dropped; otherwise the file is
 * renamed into place, replacing any leftover of the same content. */
static int blob_attach(struct store *st, struct blob_writer *w, const struct store_message_meta *meta,
		       int64_t *blob_id_r, bool *placed_r)
{
	const char *what, *hash = blob_writer_hash(w);
	const struct store_message_meta none = { 0 };
	int64_t id = 0, refs = 0;
	bool found;

	if (meta == NULL)
		meta = &none;
	sqlite3_stmt *stmt = db_query(st, "SELECT id, refs FROM blobs WHERE hash = ?", "t", hash);
	if (stmt == NULL)
		return -1;
	int rc = db_step(st, stmt);
	if (rc < 0)
		return -1;
	found = rc == SQLITE_ROW;
	if (found) {
		id = sqlite3_column_int64(stmt, 0);
		refs = sqlite3_column_int64(stmt, 1);
	}
	(void)sqlite3_reset(stmt);

	if (found && refs > 0) {
		if (blob_writer_discard(w, &what) < 0)
			return store_errno_fail(st, what);
	} else {
		unsigned dir;
		if (blob_writer_place(w, &dir, &what) < 0)
			return store_errno_fail(st, what);
		*placed_r = true;
		store_tx_mark_dir(st, dir);
	}
	if (!found) {
		if (db_int(st, &id, &found,
			   "INSERT INTO blobs (hash, size, envelope, bodystructure, body, extra)"
			   " VALUES (?, ?, ?, ?, ?, ?) RETURNING id", "titttb", hash,
			   I64(blob_writer_size(w)), meta->envelope, meta->bodystructure, meta->body,
			   meta->extra, meta->extra_len) < 0)
			return -1;
	} else if (meta != &none &&
		   db_exec(st, "UPDATE blobs SET envelope = coalesce(?, envelope),"
			   " bodystructure = coalesce(?, bodystructure), body = coalesce(?, body),"
			   " extra = coalesce(?, extra) WHERE id = ?", "tttbi", meta->envelope,
			   meta->bodystructure, meta->body, meta->extra, meta->extra_len, id) < 0) {
		return -1;
	}
	if (meta->search != NULL && search_rows_add(st, id, meta->search) < 0)
		return -1;
	*blob_id_r = id;
	return 0;
}

static int append_check(struct store *st, const struct store_append_msg *m)
{
	if ((m->flags & ~STORE_FLAGS_ALL) != 0)
		return store_fail(st, STORE_ERR_INVALID, "unknown flag bits");
	for (size_t i = 0; i < m->keyword_count; i++)
		if (m->keywords[i] == NULL || !keyword_valid(m->keywords[i]))
			return store_fail(st, STORE_ERR_INVALID, "invalid keyword");
	if (m->data != NULL)
		return m->size > UINT32_MAX ? store_fail(st, STORE_ERR_INVALID, "message too large") : 0;
	if (m->blob == NULL || !blob_writer_finished(m->blob->writer) ||
	    blob_writer_placed(m->blob->writer))
		return store_fail(st, STORE_ERR_INVALID, "blob not finished or already used");
	if (blob_writer_size(m->blob->writer) > UINT32_MAX)
		return store_fail(st, STORE_ERR_INVALID, "message too large");
	return 0;
}

int store_append(struct store *st, uint64_t mailbox_id, const struct store_append_msg *msgs,
		 size_t count, uint32_t *uidvalidity_r, uint32_t *uids_r)
{
	struct blob_writer **owned, **writers;
	bool *placed;
	struct mbox_row row;
	uint64_t total = 0;
	const char *what;
	int ret = -1;

	if (count == 0)
		return store_fail(st, STORE_ERR_INVALID, "nothing to append");
	for (size_t i = 0; i < count; i++)
		if (append_check(st, &msgs[i]) < 0)
			return -1;
	owned = xcalloc(count, sizeof(*owned));
	writers = xcalloc(count, sizeof(*writers));
	placed = xcalloc(count, sizeof(*placed));
	/* Bodies are written before taking the write lock: one alone is
	 * fdatasynced here, several are made durable together by one syncfs
	 * at commit (fsyncing each costs a device flush per message). */
	size_t owned_count = 0;
	for (size_t i = 0; i < count; i++)
		owned_count += msgs[i].data != NULL;
	bool sync_each = owned_count <= 1;
	for (size_t i = 0; i < count; i++) {
		if (msgs[i].data == NULL) {
			writers[i] = msgs[i].blob->writer;
		} else {
			if (blob_writer_begin(st->blob_root, &owned[i], &what) < 0 ||
			    blob_writer_write(owned[i], msgs[i].data, msgs[i].size, &what) < 0 ||
			    blob_writer_finish(owned[i], sync_each, &what) < 0) {
				store_errno_fail(st, what);
				goto out;
			}
			writers[i] = owned[i];
		}
		total += blob_writer_size(writers[i]);
	}

	if (store_tx_begin(st) < 0)
		goto out;
	if (!sync_each)
		st->tx_syncfs = true;
	if (mbox_by_id(st, mailbox_id, &row) <= 0 || quota_check(st, total, count) < 0)
		goto fail;
	if ((uint64_t)row.uidnext + count > UINT32_MAX) {
		store_fail(st, STORE_ERR_LIMIT, "mailbox UID space exhausted");
		goto fail;
	}
	uint64_t modseq = row.highestmodseq + 1;
	uint32_t uid = row.uidnext;
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; i < count; i++) {
		uint64_t kw, emailid;
		int64_t blob_id = 0;
		/* A given UID (migration) may skip ahead, never back: uid is
		 * the lowest UID still unused here, so UIDs stay unique and
		 * ascending and UIDNEXT only grows. */
		if (msgs[i].uid != 0) {
			if (msgs[i].uid < uid) {
				store_fail(st, STORE_ERR_INVALID, "UID %u is below UIDNEXT %u",
					   msgs[i].uid, uid);
				goto fail;
			}
			if ((uint64_t)msgs[i].uid + (count - i) > UINT32_MAX) {
				store_fail(st, STORE_ERR_LIMIT, "mailbox UID space exhausted");
				goto fail;
			}
			uid = msgs[i].uid;
		}
		if (keywords_mask(st, mailbox_id, msgs[i].keywords, msgs[i].keyword_count, true, &kw) < 0 ||
		    blob_attach(st, writers[i], msgs[i].meta, &blob_id, &placed[i]) < 0 ||
		    store_random_u64(st, &emailid) < 0)
			goto fail;
		if (db_exec(st, "INSERT INTO messages (mailbox_id, uid, modseq, flags, keywords, size,"
			    " internaldate, savedate, emailid, blob_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			    "iiiiiiiiii", I64(mailbox_id), I64(uid), I64(modseq), I64(msgs[i].flags),
			    I64(kw), I64(blob_writer_size(writers[i])),
			    msgs[i].internaldate != 0 ? msgs[i].internaldate : now, now, I64(emailid),
			    blob_id) < 0)
			goto fail;
		uids_r[i] = uid++;
	}
	if (db_exec(st, "UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?", "iii",
		    I64(uid), I64(modseq), I64(mailbox_id)) < 0)
		goto fail;
	st->tx_changed = true;
	if (store_tx_commit(st) < 0)
		goto out;
	*uidvalidity_r = row.uidvalidity;
	ret = 0;
	goto out;
fail:
	/* Files placed by this call have no referencing row once it rolls
	 * back (a row with references would have made us drop the copy), and
	 * the write lock is still ours: remove them now rather than leave
	 * them to the orphan collector. */
	for (size_t i = 0; i < count; i++)
		if (placed[i] && blob_unlink(st->blob_root, blob_writer_hash(writers[i]), &what) < 0)
			log_msg(LOG_WARN, "store_append", "%s: %s", what, strerror(errno));
	store_tx_rollback(st);
out:
	for (size_t i = 0; i < count; i++)
		blob_writer_free(&owned[i]);
	free(owned);
	free(writers);
	free(placed);
	return ret;
}

/* --- Copy and move ----------------------------------------------------- */

struct copy_src {
	uint32_t uid;
	uint32_t flags;
	uint64_t keywords;
	int64_t size;
	int64_t internaldate;
	int64_t emailid;
	int64_t blob_id;
};

void store_copy_result_free(struct store_copy_result *result)
{
	store_uid_list_free(&result->src);
	store_uid_list_free(&result->dst);
}

static int copy_collect(struct store *st, uint64_t src_id, const struct store_uid_range *ranges,
			size_t range_count, struct copy_src **items_r, size_t *count_r)
{
	struct copy_src *items = NULL;
	size_t count = 0, cap = 0;

	for (size_t r = 0; r < range_count; r++) {
		sqlite3_stmt *stmt = db_query(st,
			"SELECT uid, flags, keywords, size, internaldate, emailid, blob_id FROM messages"
			" WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid", "iii",
			I64(src_id), I64(ranges[r].lo), I64(ranges[r].hi));
		if (stmt == NULL)
			goto fail;
		int rc;
		while ((rc = db_step(st, stmt)) == SQLITE_ROW) {
			if (count == cap) {
				cap = cap ? cap * 2 : 64;
				items = xrealloc(items, cap * sizeof(*items));
			}
			struct copy_src *c = &items[count++];
			c->uid = (uint32_t)sqlite3_column_int64(stmt, 0);
			c->flags = (uint32_t)sqlite3_column_int64(stmt, 1);
			c->keywords = (uint64_t)sqlite3_column_int64(stmt, 2);
			c->size = sqlite3_column_int64(stmt, 3);
			c->internaldate = sqlite3_column_int64(stmt, 4);
			c->emailid = sqlite3_column_int64(stmt, 5);
			c->blob_id = sqlite3_column_int64(stmt, 6);
		}
		if (rc < 0)
			goto fail;
		(void)sqlite3_reset(stmt);
	}
	*items_r = items;
	*count_r = count;
	return 0;
fail:
	free(items);
	return -1;
}

/* Source keyword index -> destination index, creating names as needed. */
static int keywords_remap(struct store *st, uint64_t src_id, uint64_t dst_id, uint64_t used,
			  int map[STORE_MAX_KEYWORDS])
{
	struct store_keywords kw;
	for (int i = 0; i < STORE_MAX_KEYWORDS; i++)
		map[i] = src_id == dst_id ? i : -1;
	if (src_id == dst_id || used == 0)
		return 0;
	if (keywords_load(st, src_id, &kw) < 0)
		return -1;
	for (size_t i = 0; i < kw.count; i++) {
		if ((used & ((uint64_t)1 << i)) == 0)
			continue;
		if (keyword_index(st, dst_id, kw.names[i], true, &map[i]) < 0) {
			store_keywords_free(&kw);
			return -1;
		}
	}
	store_keywords_free(&kw);
	return 0;
}

static uint64_t keywords_apply_map(uint64_t mask, const int map[STORE_MAX_KEYWORDS])
{
	uint64_t out = 0;
	for (int i = 0; i < STORE_MAX_KEYWORDS; i++)
		if ((mask & ((uint64_t)1 << i)) != 0 && map[i] >= 0)
			out |= (uint64_t)1 << map[i];
	return out;
}

int store_copy(struct store *st, uint64_t src_id, const struct store_uid_range *ranges,
	       size_t range_count, uint64_t dst_id, bool move, struct store_copy_result *result_r)
{
	struct mbox_row src, dst;
	struct copy_src *items = NULL;
	size_t count = 0, src_cap = 0, dst_cap = 0, nranges;
	int map[STORE_MAX_KEYWORDS];

	memset(result_r, 0, sizeof(*result_r));
	struct store_uid_range *norm = ranges_normalise(ranges, range_count, &nranges);
	if (store_tx_begin(st) < 0)
		goto out;
	if (mbox_by_id(st, src_id, &src) <= 0 || mbox_by_id(st, dst_id, &dst) <= 0 ||
	    copy_collect(st, src_id, norm, nranges, &items, &count) < 0)
		goto fail;
	uint64_t bytes = 0, used = 0;
	for (size_t i = 0; i < count; i++) {
		bytes += (uint64_t)items[i].size;
		used |= items[i].keywords;
	}
	if (!move && quota_check(st, bytes, count) < 0)
		goto fail;
	if ((uint64_t)dst.uidnext + count > UINT32_MAX) {
		store_fail(st, STORE_ERR_LIMIT, "mailbox UID space exhausted");
		goto fail;
	}
	if (keywords_remap(st, src_id, dst_id, used, map) < 0)
		goto fail;

	uint64_t dst_modseq = dst.highestmodseq + 1;
	uint64_t src_modseq = src_id == dst_id ? dst_modseq : src.highestmodseq + 1;
	uint32_t uid = dst.uidnext;
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; i < count; i++) {
		const struct copy_src *c = &items[i];
		if (db_exec(st, "INSERT INTO messages (mailbox_id, uid, modseq, flags, keywords, size,"
			    " internaldate, savedate, emailid, blob_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			    "iiiiiiiiii", I64(dst_id), I64(uid), I64(dst_modseq), I64(c->flags),
			    I64(keywords_apply_map(c->keywords, map)), c->size, c->internaldate, now,
			    c->emailid, c->blob_id) < 0)
			goto fail;
		/* Inserted before the source row goes, so the body's
		 * reference count never touches zero during a move. */
		if (move &&
		    (db_exec(st, "DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", "ii",
			     I64(src_id), I64(c->uid)) < 0 ||
		     db_exec(st, "INSERT INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)", "iii",
			     I64(src_id), I64(c->uid), I64(src_modseq)) < 0))
			goto fail;
		uid_push(&result_r->src, &src_cap, c->uid);
		uid_push(&result_r->dst, &dst_cap, uid);
		uid++;
	}
	if (count > 0) {
		if (db_exec(st, "UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?", "iii",
			    I64(uid), I64(dst_modseq), I64(dst_id)) < 0)
			goto fail;
		if (move &&
		    (db_exec(st, "UPDATE mailboxes SET highestmodseq = max(highestmodseq, ?) WHERE id = ?",
			     "ii", I64(src_modseq), I64(src_id)) < 0 ||
		     msg_log_expunged(st, src_id, count) < 0))
			goto fail;
		st->tx_changed = true;
	}
	if (store_tx_commit(st) < 0)
		goto fail_result;
	result_r->dst_uidvalidity = dst.uidvalidity;
	free(items);
	free(norm);
	return 0;
fail:
	store_tx_rollback(st);
fail_result:
	store_copy_result_free(result_r);
out:
	free(items);
	free(norm);
	return -1;
}

/* --- Flags ------------------------------------------------------------- */

void store_flags_result_free(struct store_flags_result *result)
{
	free(result->changed);
	result->changed = NULL;
	result->changed_count = 0;
	store_uid_list_free(&result->failed);
}

static const char *const flags_sql[] = {
	[STORE_FLAGS_SET] =
		"UPDATE messages SET flags = ?1, keywords = ?2, modseq = ?3"
		" WHERE mailbox_id = ?4 AND uid BETWEEN ?5 AND ?6 AND modseq <= ?7"
		" AND (flags != ?1 OR keywords != ?2) RETURNING " MSG_COLUMNS,
	[STORE_FLAGS_ADD] =
		"UPDATE messages SET flags = flags | ?1, keywords = keywords | ?2, modseq = ?3"
		" WHERE mailbox_id = ?4 AND uid BETWEEN ?5 AND ?6 AND modseq <= ?7"
		" AND ((flags | ?1) != flags OR (keywords | ?2) != keywords) RETURNING " MSG_COLUMNS,
	[STORE_FLAGS_REMOVE] =
		"UPDATE messages SET flags = flags & ~?1, keywords = keywords & ~?2, modseq = ?3"
		" WHERE mailbox_id = ?4 AND uid BETWEEN ?5 AND ?6 AND modseq <= ?7"
		" AND ((flags & ?1) != 0 OR (keywords & ?2) != 0) RETURNING " MSG_COLUMNS,
};

int store_flags_update(struct store *st, uint64_t mailbox_id, const struct store_uid_range *ranges,
		       size_t range_count, enum store_flags_mode mode, uint32_t flags,
		       const char *const *keywords, size_t keyword_count, uint64_t unchangedsince,
		       struct store_flags_result *result_r)
{
	struct mbox_row row;
	size_t nranges, changed_cap = 0, failed_cap = 0;
	uint64_t kw;

	memset(result_r, 0, sizeof(*result_r));
	if ((unsigned)mode > STORE_FLAGS_REMOVE || (flags & ~STORE_FLAGS_ALL) != 0)
		return store_fail(st, STORE_ERR_INVALID, "bad flags or mode");
	struct store_uid_range *norm = ranges_normalise(ranges, range_count, &nranges);
	if (store_tx_begin(st) < 0)
		goto out;
	if (mbox_by_id(st, mailbox_id, &row) <= 0 ||
	    keywords_mask(st, mailbox_id, keywords, keyword_count, mode != STORE_FLAGS_REMOVE, &kw) < 0)
		goto fail;
	uint64_t modseq = row.highestmodseq + 1;
	int64_t limit = unchangedsince != 0 ? I64(unchangedsince) : INT64_MAX;
	for (size_t r = 0; r < nranges; r++) {
		sqlite3_stmt *stmt;
		int rc;
		if (unchangedsince != 0) {
			stmt = db_query(st, "SELECT uid FROM messages WHERE mailbox_id = ?"
					" AND uid BETWEEN ? AND ? AND modseq > ? ORDER BY uid", "iiii",
					I64(mailbox_id), I64(norm[r].lo), I64(norm[r].hi), limit);
			if (stmt == NULL)
				goto fail;
			while ((rc = db_step(st, stmt)) == SQLITE_ROW)
				uid_push(&result_r->failed, &failed_cap,
					 (uint32_t)sqlite3_column_int64(stmt, 0));
			if (rc < 0)
				goto fail;
			(void)sqlite3_reset(stmt);
		}
		stmt = db_query(st, flags_sql[mode], "iiiiiii", I64(flags), I64(kw), I64(modseq),
				I64(mailbox_id), I64(norm[r].lo), I64(norm[r].hi), limit);
		if (stmt == NULL)
			goto fail;
		while ((rc = db_step(st, stmt)) == SQLITE_ROW)
			msg_read(stmt, msg_push(&result_r->changed, &result_r->changed_count, &changed_cap));
		if (rc < 0)
			goto fail;
		(void)sqlite3_reset(stmt);
	}
	if (result_r->changed_count > 0) {
		if (db_exec(st, "UPDATE mailboxes SET highestmodseq = ? WHERE id = ?", "ii", I64(modseq),
			    I64(mailbox_id)) < 0)
			goto fail;
		st->tx_changed = true;
	}
	if (store_tx_commit(st) < 0)
		goto fail_result;
	/* RETURNING gives no order guarantee. */
	if (result_r->changed_count > 1)
		qsort(result_r->changed, result_r->changed_count, sizeof(*result_r->changed), cmp_msg);
	result_r->modseq = result_r->changed_count > 0 ? modseq : row.highestmodseq;
	free(norm);
	return 0;
fail:
	store_tx_rollback(st);
fail_result:
	store_flags_result_free(result_r);
out:
	free(norm);
	return -1;
}

/* --- Expunge ----------------------------------------------------------- */

int store_expunge(struct store *st, uint64_t mailbox_id, const struct store_uid_range *ranges,
		  size_t range_count, struct store_uid_list *expunged_r)
{
	static const struct store_uid_range all = { 1, UINT32_MAX };
	struct mbox_row row;
	size_t nranges, cap = 0;

	memset(expunged_r, 0, sizeof(*expunged_r));
	if (ranges == NULL) {
		ranges = &all;
		range_count = 1;
	}
	struct store_uid_range *norm = ranges_normalise(ranges, range_count, &nranges);
	if (store_tx_begin(st) < 0)
		goto out;
	if (mbox_by_id(st, mailbox_id, &row) <= 0)
		goto fail;
	uint64_t modseq = row.highestmodseq + 1;
	for (size_t r = 0; r < nranges; r++) {
		sqlite3_stmt *stmt = db_query(st,
			"DELETE FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ?"
			" AND (flags & 8) != 0 RETURNING uid", "iii",
			I64(mailbox_id), I64(norm[r].lo), I64(norm[r].hi));
		if (stmt == NULL)
			goto fail;
		int rc;
		while ((rc = db_step(st, stmt)) == SQLITE_ROW)
			uid_push(expunged_r, &cap, (uint32_t)sqlite3_column_int64(stmt, 0));
		if (rc < 0)
			goto fail;
		(void)sqlite3_reset(stmt);
	}
	for (size_t i = 0; i < expunged_r->count; i++)
		if (db_exec(st, "INSERT INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)", "iii",
			    I64(mailbox_id), I64(expunged_r->uids[i]), I64(modseq)) < 0)
			goto fail;
	if (expunged_r->count > 0) {
		if (db_exec(st, "UPDATE mailboxes SET highestmodseq = ? WHERE id = ?", "ii", I64(modseq),
			    I64(mailbox_id)) < 0 ||
		    msg_log_expunged(st, mailbox_id, expunged_r->count) < 0)
			goto fail;
		st->tx_changed = true;
		st->tx_purge = true;
	}
	if (store_tx_commit(st) < 0)
		goto fail_result;
	if (expunged_r->count > 1)
		qsort(expunged_r->uids, expunged_r->count, sizeof(*expunged_r->uids), cmp_u32);
	free(norm);
	return 0;
fail:
	store_tx_rollback(st);
fail_result:
	store_uid_list_free(expunged_r);
out:
	free(norm);
	return -1;
}

/* --- Views and changes ------------------------------------------------- */

void store_view_free(struct store_view *view)
{
	free(view->msgs);
	view->msgs = NULL;
	view->count = 0;
	store_keywords_free(&view->keywords);
}

/* Reading a mailbox's rows costs about 190 ns each (19 ms for 100,000),
 * paid again by every SELECT and every IDLE that ends. So the last large
 * mailbox read on a handle is kept with the state it was read at, and the
 * next load brings it up to date instead of reading it again: unchanged
 * when the mailbox row says nothing happened (every change to a message
 * gives the mailbox a new HIGHESTMODSEQ, the top of this file), otherwise
 * with the messages of a higher modseq and the expunged UIDs since (both
 * indexed by modseq: cost by the changes, not the mailbox). A re-created
 * mailbox (new UIDVALIDITY), an expunge log trimmed past the kept modseq,
 * or a count that does not add up reads everything. Only mailboxes of
 * VIEW_CACHE_MIN messages or more: below that the read is cheaper than
 * the memory kept. One mailbox per handle; handles are shared by a user's
 * sessions in a worker, so devices on one large INBOX share it. */
#define VIEW_CACHE_MIN 10000

void view_cache_clear(struct store *st)
{
	free(st->view_cache.msgs);
	memset(&st->view_cache, 0, sizeof(st->view_cache));
}

static bool view_cache_matches(const struct store *st, const struct mbox_row *row)
{
	const struct view_cache *vc = &st->view_cache;
	return vc->msgs != NULL && vc->mailbox_id == row->id && vc->uidvalidity == row->uidvalidity &&
	       vc->uidnext == row->uidnext && vc->highestmodseq == row->highestmodseq &&
	       vc->count == row->messages;
}

static void view_cache_keep(struct store *st, const struct mbox_row *row, const struct store_msg *msgs,
			    size_t count)
{
	view_cache_clear(st);
	if (count < VIEW_CACHE_MIN)
		return;
	st->view_cache = (struct view_cache){
		.mailbox_id = row->id, .uidvalidity = row->uidvalidity, .uidnext = row->uidnext,
		.highestmodseq = row->highestmodseq, .count = count,
		.msgs = xmemdup(msgs, count * sizeof(*msgs)),
	};
}

static int changes_read(struct store *st, const struct mbox_row *row, uint64_t since_modseq,
			struct store_changes *changes_r);

/* The kept messages with changes applied: all three lists ascend by UID.
 * Returns the new count. */
static size_t view_merge(const struct store_msg *kept, size_t kept_count, const struct store_changes *ch,
			 struct store_msg *out)
{
	size_t i = 0, j = 0, x = 0, n = 0;
	while (i < kept_count || j < ch->changed_count) {
		bool take_changed = i == kept_count ||
				    (j < ch->changed_count && ch->changed[j].uid <= kept[i].uid);
		if (take_changed) {
			if (i < kept_count && kept[i].uid == ch->changed[j].uid)
				i++;
			out[n++] = ch->changed[j++];
			continue;
		}
		while (x < ch->expunged.count && ch->expunged.uids[x] < kept[i].uid)
			x++;
		if (x == ch->expunged.count || ch->expunged.uids[x] != kept[i].uid)
			out[n++] = kept[i];
		i++;
	}
	return n;
}

/* 0: the cache now matches row; -1: a store error; 1: it cannot be
 * brought up to date (read everything). */
static int view_cache_update(struct store *st, const struct mbox_row *row)
{
	struct view_cache *vc = &st->view_cache;
	if (vc->msgs == NULL || vc->mailbox_id != row->id || vc->uidvalidity != row->uidvalidity ||
	    vc->highestmodseq > row->highestmodseq)
		return 1;
	if (view_cache_matches(st, row))
		return 0;
	struct store_changes ch = { 0 };
	if (changes_read(st, row, vc->highestmodseq, &ch) < 0) {
		store_changes_free(&ch);
		return -1;
	}
	int rc = 1;
	if (ch.expunged_complete) {
		struct store_msg *merged = xmalloc((vc->count + ch.changed_count) * sizeof(*merged));
		size_t n = view_merge(vc->msgs, vc->count, &ch, merged);
		if (n == row->messages) {
			free(vc->msgs);
			*vc = (struct view_cache){ .mailbox_id = row->id, .uidvalidity = row->uidvalidity,
						   .uidnext = row->uidnext, .highestmodseq = row->highestmodseq,
						   .msgs = merged, .count = n };
			rc = 0;
		} else {
			free(merged);
		}
	}
	store_changes_free(&ch);
	return rc;
}

static int view_msgs_read(struct store *st, const struct mbox_row *row, struct store_view *view)
{
	int rc = view_cache_update(st, row);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		view->count = st->view_cache.count;
		view->msgs = xmemdup(st->view_cache.msgs, view->count * sizeof(*view->msgs));
		return 0;
	}
	/* The counter is exact in this snapshot: one allocation. */
	size_t cap = row->messages;
	view->msgs = xmalloc((cap ? cap : 1) * sizeof(*view->msgs));
	sqlite3_stmt *stmt = db_query(st, "SELECT " MSG_COLUMNS " FROM messages WHERE mailbox_id = ?"
				      " ORDER BY uid", "i", I64(row->id));
	if (stmt == NULL)
		return -1;
	while ((rc = db_step(st, stmt)) == SQLITE_ROW)
		msg_read(stmt, msg_push(&view->msgs, &view->count, &cap));
	if (rc < 0)
		return -1;
	(void)sqlite3_reset(stmt);
	view_cache_keep(st, row, view->msgs, view->count);
	return 0;
}

int store_view_load(struct store *st, uint64_t mailbox_id, struct store_view *view_r)
{
	struct mbox_row row;
	bool began;

	memset(view_r, 0, sizeof(*view_r));
	if (store_read_begin(st, &began) < 0)
		return -1;
	if (mbox_by_id(st, mailbox_id, &row) <= 0)
		goto fail;
	if (view_msgs_read(st, &row, view_r) < 0)
		goto fail;
	if (keywords_load(st, mailbox_id, &view_r->keywords) < 0)
		goto fail;
	store_read_end(st, began);
	view_r->mailbox_id = mailbox_id;
	view_r->uidvalidity = row.uidvalidity;
	view_r->uidnext = row.uidnext;
	view_r->highestmodseq = row.highestmodseq;
	return 0;
fail:
	store_read_end(st, began);
	store_view_free(view_r);
	return -1;
}

void store_changes_free(struct store_changes *changes)
{
	free(changes->changed);
	changes->changed = NULL;
	changes->changed_count = 0;
	store_uid_list_free(&changes->expunged);
	store_keywords_free(&changes->keywords);
}

/* The changes since since_modseq, in the caller's read snapshot. On
 * failure changes_r holds what was read: the caller frees it. */
static int changes_read(struct store *st, const struct mbox_row *row, uint64_t since_modseq,
			struct store_changes *changes_r)
{
	size_t changed_cap = 0, expunged_cap = 0;
	int rc;

	sqlite3_stmt *stmt = db_query(st, "SELECT " MSG_COLUMNS " FROM messages WHERE mailbox_id = ?"
				      " AND modseq > ?", "ii", I64(row->id), I64(since_modseq));
	if (stmt == NULL)
		return -1;
	while ((rc = db_step(st, stmt)) == SQLITE_ROW)
		msg_read(stmt, msg_push(&changes_r->changed, &changes_r->changed_count, &changed_cap));
	if (rc < 0)
		return -1;
	(void)sqlite3_reset(stmt);
	stmt = db_query(st, "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
			"ii", I64(row->id), I64(since_modseq));
	if (stmt == NULL)
		return -1;
	while ((rc = db_step(st, stmt)) == SQLITE_ROW)
		uid_push(&changes_r->expunged, &expunged_cap, (uint32_t)sqlite3_column_int64(stmt, 0));
	if (rc < 0)
		return -1;
	(void)sqlite3_reset(stmt);
	if (changes_r->changed_count > 1)
		qsort(changes_r->changed, changes_r->changed_count, sizeof(*changes_r->changed), cmp_msg);
	changes_r->uidvalidity = row->uidvalidity;
	changes_r->uidnext = row->uidnext;
	changes_r->highestmodseq = row->highestmodseq;
	changes_r->expunged_complete = since_modseq >= row->expunge_floor;
	return 0;
}

int store_changes_since(struct store *st, uint64_t mailbox_id, uint64_t since_modseq,
			struct store_changes *changes_r)
{
	struct mbox_row row;
	bool began;

	memset(changes_r, 0, sizeof(*changes_r));
	if (store_read_begin(st, &began) < 0)
		return -1;
	if (mbox_by_id(st, mailbox_id, &row) <= 0 || changes_read(st, &row, since_modseq, changes_r) < 0 ||
	    keywords_load(st, mailbox_id, &changes_r->keywords) < 0) {
		store_read_end(st, began);
		store_changes_free(changes_r);
		return -1;
	}
	store_read_end(st, began);
	return 0;
}

/* --- Single messages --------------------------------------------------- */

int store_message_get(struct store *st, uint64_t mailbox_id, uint32_t uid,
		      struct store_message_info *info_r)
{
	memset(info_r, 0, sizeof(*info_r));
	sqlite3_stmt *stmt = db_query(st,
		"SELECT m.uid, m.flags, m.keywords, m.modseq, m.size, m.internaldate, m.savedate,"
		" m.emailid, b.hash FROM messages m JOIN blobs b ON b.id = m.blob_id"
		" WHERE m.mailbox_id = ? AND m.uid = ?", "ii", I64(mailbox_id), I64(uid));
	if (stmt == NULL)
		return -1;
	int rc = db_step(st, stmt);
	if (rc < 0)
		return -1;
	if (rc == SQLITE_DONE) {
		(void)sqlite3_reset(stmt);
		return store_fail(st, STORE_ERR_NOT_FOUND, "no message with UID %u", uid);
	}
	msg_read(stmt, &info_r->msg);
	info_r->savedate = sqlite3_column_int64(stmt, 6);
	store_format_objectid('M', (uint64_t)sqlite3_column_int64(stmt, 7), info_r->emailid);
	const char *hash = (const char *)sqlite3_column_text(stmt, 8);
	snprintf(info_r->hash, sizeof(info_r->hash), "%s", hash != NULL ? hash : "");
	(void)sqlite3_reset(stmt);
	return 0;
}

void store_message_meta_free(struct store_message_meta *meta)
{
	free(meta->envelope);
	free(meta->bodystructure);
	free(meta->body);
	free(meta->extra);
	store_search_text_free(&meta->search);
	memset(meta, 0, sizeof(*meta));
}

static char *column_strdup(sqlite3_stmt *stmt, int col)
{
	const char *text = (const char *)sqlite3_column_text(stmt, col);
	return text != NULL ? xstrdup(text) : NULL;
}

int store_body_hash(const void *data, size_t len, char hash_r[STORE_HASH_SIZE])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;
	if (EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len * 2 + 1 != STORE_HASH_SIZE)
		return -1;
	for (unsigned i = 0; i < md_len; i++)
		snprintf(hash_r + 2 * i, 3, "%02x", md[i]);
	return 0;
}

int store_message_count_by_hash(struct store *st, uint64_t mailbox_id, const char *hash,
				uint32_t *count_r)
{
	int64_t n;
	bool found;
	/* blobs.hash is unique and messages_blob indexes blob_id: one probe
	 * each, however large the mailbox. */
	if (db_int(st, &n, &found,
		   "SELECT count(*) FROM blobs b JOIN messages m ON m.blob_id = b.id"
		   " WHERE b.hash = ? AND m.mailbox_id = ?", "ti", hash, I64(mailbox_id)) < 0)
		return -1;
	*count_r = found ? (uint32_t)n : 0;
	return 0;
}

int store_message_meta_get(struct store *st, uint64_t mailbox_id, uint32_t uid,
			   struct store_message_meta *meta_r)
{
	memset(meta_r, 0, sizeof(*meta_r));
	sqlite3_stmt *stmt = db_query(st,
		"SELECT b.envelope, b.bodystructure, b.body, b.extra FROM messages m"
		" JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? AND m.uid = ?", "ii",
		I64(mailbox_id), I64(uid));
	if (stmt == NULL)
		return -1;
	int rc = db_step(st, stmt);
	if (rc < 0)
		return -1;
	if (rc == SQLITE_DONE) {
		(void)sqlite3_reset(stmt);
		return store_fail(st, STORE_ERR_NOT_FOUND, "no message with UID %u", uid);
	}
	meta_r->envelope = column_strdup(stmt, 0);
	meta_r->bodystructure = column_strdup(stmt, 1);
	meta_r->body = column_strdup(stmt, 2);
	if (sqlite3_column_type(stmt, 3) != SQLITE_NULL) {
		size_t len = (size_t)sqlite3_column_bytes(stmt, 3);
		const void *data = sqlite3_column_blob(stmt, 3);
		meta_r->extra = xmalloc(len ? len : 1);
		if (len > 0)
			memcpy(meta_r->extra, data, len);
		meta_r->extra_len = len;
	}
	(void)sqlite3_reset(stmt);
	return 0;
}

int store_message_open(struct store *st, uint64_t mailbox_id, uint32_t uid, int *fd_r, size_t *size_r)
{
	struct store_message_info info;
	const char *what;

	if (store_message_get(st, mailbox_id, uid, &info) < 0)
		return -1;
	/* The row and the file can only part by damage from outside. */
	if (blob_open(st->blob_root, info.hash, fd_r, size_r, &what) < 0)
		return errno == ENOENT
			? store_fail(st, STORE_ERR_IO, "body file %s of UID %u is missing", info.hash, uid)
			: store_errno_fail(st, what);
	return 0;
}
