/* The mail store: one user's mailboxes, messages, flags, UIDs and modseqs.
 * This is the one interface the IMAP and LMTP layers use. It knows mail, not
 * protocol: no IMAP syntax crosses it (mailbox names are UTF-8 with '/' as
 * the hierarchy delimiter; the IMAP layer converts modified UTF-7, quotes
 * strings and maps errors to response codes).
 *
 * Backend: the embedded one (src/store/sqlite/). Per user, one directory
 * DATA_DIR/users/USER/ holding
 *	index.db	SQLite (WAL) with every piece of metadata,
 *	blobs/ab/cd..	message bodies, immutable, named by SHA-256 of content,
 *	blobs/tmp/	bodies being written,
 *	changes		the change file other processes watch with inotify.
 *
 * Conventions
 * - Functions returning int give 0 on success and -1 on failure. After a
 *   failure store_last_error() tells the kind of error and a text with details
 *   for the log (file names, SQLite messages): never show it to a client, map
 *   the enum instead.
 * - Output parameters end in _r. Arrays and strings handed back are owned by
 *   the caller and released with the matching *_free(); free functions
 *   accept already-freed (zeroed) structures.
 * - A struct store is used by one thread at a time. Processes (IMAP workers,
 *   LMTP, `postern deliver`) each open their own handle on the same user;
 *   after fork() the child must open its own handle and never use the
 *   parent's.
 * - Every function may block on disk I/O and, for writes, on the user's
 *   write lock held by another process (up to STORE_BUSY_TIMEOUT_MS, then
 *   STORE_ERR_BUSY). Call them off the event loop when that matters.
 * - Mailboxes are addressed by name for namespace operations and by id once
 *   found. Ids are never reused, so an id held across another process's
 *   DELETE simply yields STORE_ERR_NOT_FOUND.
 *
 * Durability
 * A 0 return from store_append, store_copy, store_flags_update,
 * store_expunge (and every mailbox operation) means the change is committed
 * to disk: the body file is made durable (fdatasync), renamed into place and
 * its directory fsynced before the metadata transaction commits, and SQLite
 * runs in WAL mode with synchronous=FULL, so each commit fsyncs the WAL
 * (NORMAL would only sync at checkpoints, and a power loss could forget an
 * acknowledged message). A body file whose commit never happened (crash,
 * error) is an orphan: harmless, removed by store_collect_orphans.
 *
 * Group commit
 * - Within one process, the caller batches: store_append takes several
 *   messages (MULTIAPPEND, or several LMTP deliveries to one user) and commits
 *   them with one WAL fsync and one syncfs(2) of the blob filesystem, which
 *   makes every body and rename durable with one device flush instead of two
 *   per message (bench: ~450 single appends/s vs ~6,500/s in batches of 500
 *   on the development VM). The cost: syncfs also writes back whatever
 *   else is dirty on that filesystem, so keep mail data on its own
 *   filesystem. A single message uses fdatasync + directory fsync instead.
 *   store_batch_begin/commit group any sequence of write calls (for example
 *   the pending writes of several sessions of one user in one loop turn) into
 *   one transaction; each call inside runs in a savepoint, so one failing
 *   call does not undo the others. Inside a batch a 0 return means "done, but
 *   durable only once store_batch_commit returns 0".
 * - Across processes there is no shared commit: each process's transaction
 *   fsyncs the WAL itself, serialised by SQLite's write lock. Body files are
 *   written and fsynced outside the lock, so the lock is held only for the
 *   renames, one directory fsync per touched directory and the WAL fsync.
 *   The filesystem journal (ext4/xfs) merges concurrent fsyncs into one
 *   journal commit, which is the only sharing there is. A deployment with
 *   very high delivery rates per user should batch in the LMTP process.
 */
#ifndef POSTERN_STORE_STORE_H
#define POSTERN_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How long a write waits for another process's write transaction. */
#define STORE_BUSY_TIMEOUT_MS 15000
/* Expunge log entries kept per mailbox for QRESYNC (RFC 7162 3.2.5.2). */
#define STORE_EXPUNGE_LOG_DEFAULT 100000
/* Keywords per mailbox: each message keeps them as a 64-bit mask. */
#define STORE_MAX_KEYWORDS 64
/* Longest mailbox name in bytes, and longest keyword. */
#define STORE_MAX_NAME_LEN 1000
#define STORE_MAX_KEYWORD_LEN 200
/* RFC 8474 object ids: one letter and 16 hex digits, NUL-terminated. */
#define STORE_OBJECTID_SIZE 18
/* SHA-256 in hex, NUL-terminated. */
#define STORE_HASH_SIZE 65

enum store_error {
	STORE_ERR_NONE = 0,
	STORE_ERR_NOT_FOUND,	/* no such mailbox, message or subscription */
	STORE_ERR_EXISTS,	/* the target name is taken */
	STORE_ERR_INVALID_NAME,	/* mailbox or user name refused (syntax, length) */
	STORE_ERR_NOT_ALLOWED,	/* valid but forbidden: DELETE INBOX, rename under itself */
	STORE_ERR_INVALID,	/* a bad argument: bad keyword, unfinished blob, size */
	STORE_ERR_LIMIT,	/* more than STORE_MAX_KEYWORDS keywords in a mailbox */
	STORE_ERR_QUOTA,	/* the user's quota would be exceeded */
	STORE_ERR_BUSY,		/* another process held the write lock too long */
	STORE_ERR_IO,		/* disk or database failure; details in the text */
	/* ENOSPC/EDQUOT from the filesystem are reported as STORE_ERR_QUOTA. */
	STORE_ERR_VERSION,	/* index.db written by a newer postern */
};

/* System flags (RFC 9051 2.3.2). \Recent is per session, kept by the IMAP
 * layer: the store only counts "UIDs above X". */
enum store_flag {
	STORE_FLAG_SEEN = 1 << 0,
	STORE_FLAG_ANSWERED = 1 << 1,
	STORE_FLAG_FLAGGED = 1 << 2,
	STORE_FLAG_DELETED = 1 << 3,
	STORE_FLAG_DRAFT = 1 << 4,
};
#define STORE_FLAGS_ALL 0x1fu

/* RFC 6154 special-use attributes. */
enum store_special_use {
	STORE_SPECIAL_NONE = 0,
	STORE_SPECIAL_DRAFTS,
	STORE_SPECIAL_SENT,
	STORE_SPECIAL_TRASH,
	STORE_SPECIAL_JUNK,
	STORE_SPECIAL_ARCHIVE,
	STORE_SPECIAL_ALL,
	STORE_SPECIAL_FLAGGED,
};

struct store;
struct store_blob;

/* --- Opening ----------------------------------------------------------- */

/* Opens (creating on first use) the store of user under data_dir, which must
 * exist. user must be non-empty, not "." or "..", without '/'. INBOX is
 * created if missing. On failure *error_r gets the kind and *errtext_r (if
 * not NULL) a malloc'd text the caller frees. */
int store_open(const char *data_dir, const char *user, struct store **st_r,
	       enum store_error *error_r, char **errtext_r);
/* Closes the handle (rolling back an unfinished batch) and sets *st to NULL. */
void store_close(struct store **st);

/* The last failure on this handle; text_r (optional) lives until the next
 * call on the handle. */
enum store_error store_last_error(const struct store *st, const char **text_r);
/* "not found", "exists", ...: a name for logs. */
const char *store_error_name(enum store_error error);

/* 0 means unlimited (the default). Counted as the sum of message sizes over
 * every mailbox (a copy counts again though it shares the file). */
void store_set_quota(struct store *st, uint64_t max_bytes, uint64_t max_messages);
int store_quota_usage(struct store *st, uint64_t *bytes_r, uint64_t *messages_r);
/* For tests and tuning; default STORE_EXPUNGE_LOG_DEFAULT. */
void store_set_expunge_log_limit(struct store *st, uint32_t limit);
/* Commits of this handle no longer fsync the WAL (synchronous = NORMAL):
 * for a writer whose last commits may be lost in a power failure without
 * harm, the full-text indexer (its marks are redone). Commits of other
 * handles still fsync, and with them everything written before, since
 * the WAL is one sequential file. */
int store_set_lazy_sync(struct store *st);

/* --- Change notification ----------------------------------------------- */

/* The per-user change file. After every committed change the store writes a
 * new, larger counter into it (pwrite), so processes watching it with
 * inotify (IN_MODIFY) wake up and then ask store_changes_since. The string
 * lives as long as the handle. */
const char *store_change_path(const struct store *st);
/* The counter in the change file: one pread, no database access. A hint
 * only: compare it with the value seen last; 0 if unreadable. */
uint64_t store_change_counter(struct store *st);

/* --- Mailboxes --------------------------------------------------------- */

/* One name in the list: a mailbox, a subscription, or both. */
struct store_mailbox_entry {
	char *name;			/* UTF-8, '/'-separated */
	uint64_t id;			/* 0: no such mailbox, only subscribed */
	enum store_special_use special_use;
	bool subscribed;
};

/* Every mailbox and every subscribed name, sorted by name (bytewise). The
 * IMAP layer derives \HasChildren, \Noselect for missing parents,
 * \NonExistent and wildcard matching from the names. */
int store_mailbox_list(struct store *st, struct store_mailbox_entry **entries_r, size_t *count_r);
void store_mailbox_list_free(struct store_mailbox_entry **entries, size_t count);

/* Names are validated: valid UTF-8, 1..STORE_MAX_NAME_LEN bytes, no control
 * characters, no '*' or '%' (LIST wildcards), no empty component (leading,
 * trailing or doubled '/'). "INBOX" is case-insensitive, also as the first
 * component ("inbox/x" is "INBOX/x"). Parents need not exist. */
int store_mailbox_create(struct store *st, const char *name, enum store_special_use special_use);
/* Deletes the mailbox and its messages. INBOX cannot be deleted
 * (STORE_ERR_NOT_ALLOWED). Children are untouched: refusing to delete a
 * mailbox with children is the caller's choice (store_mailbox_has_children).
 * Subscriptions stay (RFC 9051 6.3.9). */
int store_mailbox_delete(struct store *st, const char *name);
/* Renames the mailbox and every child ("a/x" follows "a"), with their
 * subscriptions. Renaming INBOX (RFC 3501 6.3.5) creates new_name with all
 * of INBOX's messages (same UIDs, a new UIDVALIDITY) and leaves INBOX empty;
 * INBOX's children stay. Renaming to an existing name or into itself fails. */
int store_mailbox_rename(struct store *st, const char *old_name, const char *new_name);
int store_mailbox_has_children(struct store *st, const char *name, bool *has_children_r);
int store_mailbox_set_special_use(struct store *st, const char *name, enum store_special_use special_use);

/* Migration (`postern import`): gives the mailbox name the UIDVALIDITY an
 * earlier server used (nonzero), so clients keep their caches. Allowed only
 * while the mailbox has never held a message (UIDNEXT 1), when no client can
 * hold a UID of it worth keeping; otherwise STORE_ERR_NOT_ALLOWED. Setting
 * the value it has already is a no-op. Later mailboxes still get
 * UIDVALIDITYs above every value set here. */
int store_mailbox_set_uidvalidity(struct store *st, const char *name, uint32_t uidvalidity);
/* Migration: raises the mailbox's UIDNEXT to uidnext, so the next appended
 * message gets at least that UID (Dovecot's dovecot-uidlist records a next
 * UID above expunged messages). A value at or below the current UIDNEXT is a
 * no-op: UIDs are never reused. */
int store_mailbox_set_uidnext(struct store *st, uint64_t mailbox_id, uint32_t uidnext);

/* Subscriptions are names: they may exist without a mailbox (RFC 3501
 * 6.3.6). Subscribing twice is fine; unsubscribing an unknown name gives
 * STORE_ERR_NOT_FOUND. */
int store_subscribe(struct store *st, const char *name);
int store_unsubscribe(struct store *st, const char *name);

struct store_status {
	uint64_t mailbox_id;
	uint32_t messages;
	uint32_t unseen;		/* without \Seen */
	uint32_t deleted;		/* with \Deleted */
	uint32_t recent;		/* UIDs above the recent_above argument */
	uint64_t size;			/* sum of message sizes (STATUS SIZE) */
	uint32_t uidnext;
	uint32_t uidvalidity;
	uint64_t highestmodseq;
	enum store_special_use special_use;
	bool subscribed;
	char objectid[STORE_OBJECTID_SIZE];	/* MAILBOXID (RFC 8474), kept on rename */
};

/* Also the way to find a mailbox's id from its name (SELECT, APPEND). The
 * counters are kept up to date on every change, so this is one row lookup
 * plus a range count for recent (pass UINT32_MAX for none). */
int store_mailbox_status(struct store *st, const char *name, uint32_t recent_above,
			 struct store_status *status_r);

/* --- Messages ---------------------------------------------------------- */

/* A message as the selected view and change lists hold it: 40 bytes, so a
 * million messages are a 40 MB array. */
struct store_msg {
	uint64_t modseq;
	uint64_t keywords;		/* bit i: the mailbox's keyword i */
	int64_t internaldate;		/* seconds since the epoch */
	uint32_t uid;
	uint32_t size;			/* bytes */
	uint32_t flags;			/* enum store_flag bits */
};

/* An inclusive UID range; lists of ranges need not be sorted or disjoint. */
struct store_uid_range {
	uint32_t lo, hi;
};

struct store_uid_list {
	uint32_t *uids;			/* ascending */
	size_t count;
};
void store_uid_list_free(struct store_uid_list *list);

/* The mailbox's keyword names: index i names bit i of store_msg.keywords.
 * Indexes are never reassigned while the mailbox exists, so an older table
 * stays right for the bits it covers; a bit beyond it means "reload". */
struct store_keywords {
	char **names;
	size_t count;
};
void store_keywords_free(struct store_keywords *kw);

/* A selected mailbox: all messages sorted by UID, from one consistent
 * snapshot (highestmodseq matches the array). One query. */
struct store_view {
	uint64_t mailbox_id;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	struct store_msg *msgs;
	size_t count;
	struct store_keywords keywords;
};
int store_view_load(struct store *st, uint64_t mailbox_id, struct store_view *view_r);
void store_view_free(struct store_view *view);

/* What the caller parsed from a message at delivery, cached with its body and
 * returned unchanged: ENVELOPE, BODYSTRUCTURE and BODY as the IMAP layer will
 * print them, and opaque bytes (MIME part offsets, searchable header fields).
 * Any field may be NULL. Copies share it with the original. */
struct store_message_meta {
	char *envelope;
	char *bodystructure;
	char *body;
	void *extra;
	size_t extra_len;
	/* What SEARCH may answer from the index (see "Search index" below);
	 * NULL: nothing, the message is searched by reading it. Used by
	 * store_append only; store_message_meta_get leaves it NULL. */
	struct store_search_text *search;
};
void store_message_meta_free(struct store_message_meta *meta);

/* Streaming a body in: begin, write any number of times (the data is hashed
 * as it goes to a file in blobs/tmp), finish (fsync), then hand it to
 * store_append as store_append_msg.blob. A blob serves one store_append;
 * free it afterwards in any case (an unused temp file is removed). Memory
 * use does not depend on the message size. */
int store_blob_begin(struct store *st, struct store_blob **blob_r);
int store_blob_write(struct store *st, struct store_blob *blob, const void *data, size_t len);
int store_blob_finish(struct store *st, struct store_blob *blob);
/* Reads a finished blob back before it is appended (to parse the message it
 * holds): *fd_r is a read-only descriptor of its store_blob_size() bytes,
 * the caller's to close; mmap it or read it. It stays valid whatever
 * happens to the blob afterwards. STORE_ERR_INVALID for a blob that is
 * unfinished or already used by store_append. */
int store_blob_open_read(struct store *st, const struct store_blob *blob, int *fd_r);
/* begin + write everything read from fd until EOF + finish. */
int store_blob_from_fd(struct store *st, int fd, struct store_blob **blob_r);
uint64_t store_blob_size(const struct store_blob *blob);
void store_blob_free(struct store_blob **blob);

struct store_append_msg {
	const void *data;		/* the message, or NULL to use blob */
	size_t size;
	struct store_blob *blob;	/* a finished blob when data is NULL */
	uint32_t flags;			/* enum store_flag bits */
	const char *const *keywords;	/* created in the mailbox as needed */
	size_t keyword_count;
	int64_t internaldate;		/* 0: now */
	const struct store_message_meta *meta;	/* NULL: none */
	/* 0: the mailbox's next UID (the normal case). Otherwise this UID,
	 * for migrations that keep a client's cache valid: it must be at or
	 * above the mailbox's UIDNEXT and above the UID of the previous
	 * message in the same call, else the call fails with
	 * STORE_ERR_INVALID. UIDNEXT becomes the last UID + 1. */
	uint32_t uid;
};

/* Appends count messages to the mailbox in one transaction (MULTIAPPEND is
 * all or nothing, RFC 3502). uids_r (count entries) gets the new UIDs,
 * ascending. Bodies already stored for this user are shared, not written
 * again. */
int store_append(struct store *st, uint64_t mailbox_id, const struct store_append_msg *msgs,
		 size_t count, uint32_t *uidvalidity_r, uint32_t *uids_r);

struct store_copy_result {
	uint32_t dst_uidvalidity;
	struct store_uid_list src;	/* source UIDs that existed, ascending */
	struct store_uid_list dst;	/* dst.uids[i] is the copy of src.uids[i] */
};
void store_copy_result_free(struct store_copy_result *result);

/* Copies (or moves: copy and expunge from the source in the same
 * transaction) the messages with UIDs in ranges. Flags, keywords, internal
 * date and EMAILID go along; the save date is now (RFC 8514). UIDs not in the
 * source are skipped; none at all is not an error (count 0). */
int store_copy(struct store *st, uint64_t src_id, const struct store_uid_range *ranges,
	       size_t range_count, uint64_t dst_id, bool move, struct store_copy_result *result_r);

enum store_flags_mode {
	STORE_FLAGS_SET,		/* replace flags and keywords */
	STORE_FLAGS_ADD,
	STORE_FLAGS_REMOVE,
};

struct store_flags_result {
	uint64_t modseq;		/* the modseq given to changed messages */
	struct store_msg *changed;	/* messages whose flags changed, new state */
	size_t changed_count;
	struct store_uid_list failed;	/* modseq above unchangedsince (RFC 7162 MODIFIED) */
};
void store_flags_result_free(struct store_flags_result *result);

/* Changes flags and keywords of the messages in ranges. Messages whose flags
 * would not change keep their modseq. unchangedsince 0 means no check;
 * otherwise messages with a higher modseq are left alone and listed in
 * failed (RFC 7162 3.1.3). Removing a keyword the mailbox never had is a
 * no-op. */
int store_flags_update(struct store *st, uint64_t mailbox_id, const struct store_uid_range *ranges,
		       size_t range_count, enum store_flags_mode mode, uint32_t flags,
		       const char *const *keywords, size_t keyword_count, uint64_t unchangedsince,
		       struct store_flags_result *result_r);

/* Expunges messages with \Deleted: all of them (ranges NULL) or those in
 * ranges (UID EXPUNGE). expunged_r gets their UIDs. A body file goes when its
 * last reference does. */
int store_expunge(struct store *st, uint64_t mailbox_id, const struct store_uid_range *ranges,
		  size_t range_count, struct store_uid_list *expunged_r);

struct store_changes {
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	struct store_msg *changed;	/* modseq > since (new or changed), by UID */
	size_t changed_count;
	struct store_uid_list expunged;	/* expunged with modseq > since */
	/* false: the expunge log was trimmed past since, so expunged may miss
	 * some; the caller must compare its UIDs with a view (QRESYNC without
	 * a usable log, RFC 7162 3.2.5.2). */
	bool expunged_complete;
	struct store_keywords keywords;
};
int store_changes_since(struct store *st, uint64_t mailbox_id, uint64_t since_modseq,
			struct store_changes *changes_r);
void store_changes_free(struct store_changes *changes);

struct store_message_info {
	struct store_msg msg;
	int64_t savedate;			/* RFC 8514 */
	char emailid[STORE_OBJECTID_SIZE];	/* RFC 8474, kept by COPY and MOVE */
	char hash[STORE_HASH_SIZE];		/* SHA-256 of the body */
};
int store_message_get(struct store *st, uint64_t mailbox_id, uint32_t uid,
		      struct store_message_info *info_r);
/* The name the store gives a body (SHA-256 in lowercase hex), as in
 * store_message_info.hash. Returns 0, or -1 if the digest fails (no error
 * is set: there is no handle). */
int store_body_hash(const void *data, size_t len, char hash_r[STORE_HASH_SIZE]);
/* How many messages of the mailbox have the body named hash. For imports
 * run a second time, which must not add a message again. One index lookup. */
int store_message_count_by_hash(struct store *st, uint64_t mailbox_id, const char *hash,
				uint32_t *count_r);
int store_message_meta_get(struct store *st, uint64_t mailbox_id, uint32_t uid,
			   struct store_message_meta *meta_r);
/* Opens the body for reading: *fd_r is the caller's to close (mmap it or
 * read it; the file never changes). */
int store_message_open(struct store *st, uint64_t mailbox_id, uint32_t uid, int *fd_r,
		       size_t *size_r);

/* --- Search index -------------------------------------------------------
 * The text SEARCH matches, prepared by the caller (already decoded and
 * case-folded: the store compares bytes and knows no folding), kept per
 * body, so copies share it and it goes with the body's last reference.
 * Two parts, written at different times:
 * - header fields, in index.db, written by store_append with the body
 *   (meta->search): for each of From, To, Cc, Bcc, Subject the text of
 *   every instance of the field, joined by NUL bytes (an instance's text
 *   may hold NULs itself; a needle without NUL cannot match across the
 *   joint). NULL: the message has no such field.
 * - full text (SQLite FTS5, trigram tokenizer, case-sensitive), in a
 *   second database, DATA_DIR/users/USER/search.db, written only by the
 *   background indexer (see "Full-text index" below): head and body, each
 *   valid UTF-8 without NUL, U+FFFE or U+FFFF (what the tokenizer reads
 *   back exactly), so that a phrase query of a string of 3 or more
 *   characters is an exact substring test.
 * Messages without them (header fields: stored before schema 2 and not yet
 * indexed; full text: not yet indexed, or left out) are reported as not
 * covered by store_search_index, and the caller reads them. */
enum store_search_field {
	STORE_SEARCH_FROM,
	STORE_SEARCH_TO,
	STORE_SEARCH_CC,
	STORE_SEARCH_BCC,
	STORE_SEARCH_SUBJECT,
	STORE_SEARCH_BODY,	/* full text: the body column */
	STORE_SEARCH_TEXT,	/* full text: head or body (a match never spans both) */
};
/* The header fields are the enum's first values. */
#define STORE_SEARCH_HEADER_FIELDS 5

struct store_search_text {
	bool fields_valid;		/* false: header text too large to cache */
	char *fields[STORE_SEARCH_HEADER_FIELDS];
	size_t field_lens[STORE_SEARCH_HEADER_FIELDS];
	/* Full text, NULL (both) when not computed: store_append ignores
	 * them, the indexer (store_fts_commit) stores them. */
	char *head;			/* NUL-terminated, head_len bytes */
	size_t head_len;
	char *body;
	size_t body_len;
};
/* Frees *text and its strings, sets *text to NULL; accepts NULL. */
void store_search_text_free(struct store_search_text **text);

/* One lookup. needle is folded like the stored text. Header fields:
 * needle holds no NUL; an empty needle matches every message that has the
 * field (RFC 3501 6.4.4 HEADER). BODY and TEXT: needle is valid UTF-8
 * without NUL, of at least 3 characters (fewer: STORE_ERR_INVALID). */
struct store_search_term {
	enum store_search_field field;
	const char *needle;
	size_t needle_len;
	struct store_uid_list matches;	/* out: covered messages that match */
};

/* Which messages of a mailbox the index covers, read in one snapshot of
 * index.db (and one of search.db, taken right after: see the .c for why a
 * disagreement between the two can only leave a message uncovered). */
struct store_search_coverage {
	struct store_uid_list headers;	/* header fields cached */
	struct store_uid_list text;	/* marked indexed and present in search.db */
};
void store_search_coverage_free(struct store_search_coverage *cov);

/* Answers every term for the mailbox. The first full-text term attaches
 * search.db to the handle (once; not inside a batch, where full text is
 * simply not covered); a missing search.db covers nothing. Blocks for a
 * scan of the mailbox's index rows and the FTS lookups. On failure nothing
 * is left to free (terms' matches are empty). */
int store_search_index(struct store *st, uint64_t mailbox_id, struct store_search_term *terms,
		       size_t count, struct store_search_coverage *cov_r);

/* --- Full-text index ----------------------------------------------------
 * Written after delivery, never on its path: the indexer reads pending
 * bodies (store_fts_pending), reads their files and computes their text
 * outside any transaction, then store_fts_commit writes them into
 * search.db in one transaction and only then marks them in index.db (one
 * short write transaction). A crash between the two leaves them pending:
 * the next run finds them in search.db already and only marks them, so
 * indexing is idempotent and several processes (workers, `postern index`)
 * may index one user at once. Rows in search.db are keyed by the body's
 * SHA-256, never by blob id: ids can be reused once the highest is
 * deleted, a hash cannot name other text. Deleted bodies that search.db
 * holds are listed in index.db (a trigger) and removed by store_fts_drain.
 * All of these block on disk and locks: call them off the event loop. */
enum store_fts_state {
	STORE_FTS_PENDING = 0,		/* not yet looked at */
	STORE_FTS_INDEXED = 1,		/* its text is in search.db */
	STORE_FTS_LEFT_OUT = 2,		/* too large or unreadable: SEARCH reads it */
};

struct store_fts_doc {
	int64_t blob_id;
	char hash[STORE_HASH_SIZE];
	uint64_t size;			/* bytes of the body file */
	/* Set by the caller before store_fts_commit: INDEXED with text (head
	 * and body set; header fields too, cached if the body has none yet),
	 * or LEFT_OUT (text may be NULL). Owned by the array. */
	enum store_fts_state state;
	struct store_search_text *text;
};
void store_fts_docs_free(struct store_fts_doc **docs, size_t count);

/* Whether any body of the user is pending (one probe of a partial index). */
int store_fts_has_pending(struct store *st, bool *pending_r);
/* Up to max_count pending bodies, lowest id first, stopping once their
 * sizes pass max_bytes (at least one is returned when any is pending).
 * skip_below: only ids above it (a caller walking past bodies it could not
 * finish). *docs_r is NULL when *count_r is 0. */
int store_fts_pending(struct store *st, int64_t skip_below, size_t max_count, uint64_t max_bytes,
		      struct store_fts_doc **docs_r, size_t *count_r);
/* Opens a body file read-only by hash; STORE_ERR_NOT_FOUND when the file
 * is missing (the body was deleted meanwhile). */
int store_fts_blob_open(struct store *st, const char *hash, int *fd_r, size_t *size_r);
/* The two steps of store_fts_commit, apart for tests (a crash between
 * them): the search.db transaction (bodies it has already are skipped),
 * then the index.db marks (guarded by id and hash). */
int store_fts_write(struct store *st, const struct store_fts_doc *docs, size_t count);
int store_fts_mark(struct store *st, const struct store_fts_doc *docs, size_t count);
/* Both, under the user's indexer lock (search.lock, flock), so that a
 * concurrent store_fts_drain cannot interleave with them. */
int store_fts_commit(struct store *st, const struct store_fts_doc *docs, size_t count);
/* Removes the text of deleted bodies from search.db, then their rows from
 * search_gone; removed_r counts them. */
int store_fts_drain(struct store *st, size_t *removed_r);

/* --- Batches and maintenance ------------------------------------------- */

/* Groups write calls into one transaction (see "Group commit" above). Holds
 * the user's write lock until commit or rollback: keep batches short. */
int store_batch_begin(struct store *st);
int store_batch_commit(struct store *st);
void store_batch_rollback(struct store *st);

/* Removes body files no message references and temp files older than an
 * hour (left by crashes). Holds the write lock while it scans: call it at
 * startup, not per command. removed_r (optional) counts removed files. */
int store_collect_orphans(struct store *st, unsigned *removed_r);

#endif
