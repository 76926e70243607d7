/* `postern import`: see import.h. One store handle, writes grouped into
 * batches (store_batch_begin/commit) of a few hundred messages or half a
 * second, so a large import does not pay one WAL fsync per message and a
 * server running meanwhile waits at most that long for the write lock. */
#include "cli/import.h"
#include "cli/maildir.h"
#include "cli/progress.h"
#include "core/buf.h"
#include "core/xalloc.h"
#include "imap/utf7.h"
#include "imapd/message_meta.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

#define BATCH_MESSAGES 200
#define BATCH_BYTES (32u << 20)
#define BATCH_MS 500

/* --- Bodies met so far --------------------------------------------------- */

/* How many times each body hash has been met in the current mailbox's
 * source: the n-th copy of a body is imported only while the mailbox holds
 * fewer than n, so two identical messages both arrive, and a second run adds
 * neither. Open addressing on the hash's first bits (SHA-256 is uniform). */
struct hash_count {
	char hash[STORE_HASH_SIZE];
	uint32_t count;
};

struct hash_table {
	struct hash_count *slots;
	size_t cap, used;
};

static size_t hash_slot(const char *hash, size_t cap)
{
	size_t v = 0;
	for (int i = 0; i < 16; i++) {
		char c = hash[i];
		v = v * 16 + (size_t)(c >= 'a' ? c - 'a' + 10 : c - '0');
	}
	return v & (cap - 1);
}

static void hash_table_grow(struct hash_table *t)
{
	size_t cap = t->cap ? t->cap * 2 : 1024;
	struct hash_count *slots = xcalloc(cap, sizeof(*slots));
	for (size_t i = 0; i < t->cap; i++) {
		if (t->slots[i].count == 0)
			continue;
		size_t j = hash_slot(t->slots[i].hash, cap);
		while (slots[j].count != 0)
			j = (j + 1) & (cap - 1);
		slots[j] = t->slots[i];
	}
	free(t->slots);
	t->slots = slots;
	t->cap = cap;
}

/* Counts one more sighting of hash; returns the new count. */
static uint32_t hash_table_bump(struct hash_table *t, const char *hash)
{
	if ((t->used + 1) * 2 > t->cap)
		hash_table_grow(t);
	size_t j = hash_slot(hash, t->cap);
	while (t->slots[j].count != 0 && strcmp(t->slots[j].hash, hash) != 0)
		j = (j + 1) & (t->cap - 1);
	if (t->slots[j].count == 0) {
		memcpy(t->slots[j].hash, hash, STORE_HASH_SIZE);
		t->used++;
	}
	return ++t->slots[j].count;
}

static void hash_table_free(struct hash_table *t)
{
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

/* --- The importer -------------------------------------------------------- */

struct importer {
	struct store *st;
	struct progress progress;

	/* The mailbox being filled. */
	char *mailbox;
	uint64_t mailbox_id;
	uint32_t uidnext;		/* as of the batch start, advanced by our appends */
	struct hash_table seen;
	uint64_t added, skipped, renumbered, keywords_dropped;

	/* The open batch. */
	bool in_batch;
	size_t batch_messages;
	uint64_t batch_bytes;
	struct timespec batch_start;

	uint64_t total_added, total_skipped;
};

/* One message from any source. */
struct import_msg {
	const char *data;
	size_t len;
	uint32_t flags;
	const char *const *keywords;
	size_t keyword_count;
	int64_t internaldate;
	uint32_t uid;			/* 0: none known */
};

static int store_error(struct importer *imp, const char *what)
{
	const char *text = NULL;
	enum store_error e = store_last_error(imp->st, &text);
	progress_clear(&imp->progress);
	fprintf(stderr, "postern import: %s: %s (%s)\n", what, store_error_name(e), text ? text : "");
	return -1;
}

static int64_t ms_since(const struct timespec *t)
{
	struct timespec now;
	if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
		return 0;
	return (int64_t)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

static int refresh_uidnext(struct importer *imp)
{
	struct store_status s;
	if (store_mailbox_status(imp->st, imp->mailbox, UINT32_MAX, &s) < 0)
		return store_error(imp, imp->mailbox);
	imp->uidnext = s.uidnext;
	return 0;
}

static int batch_begin(struct importer *imp)
{
	if (store_batch_begin(imp->st) < 0)
		return store_error(imp, "begin");
	imp->in_batch = true;
	imp->batch_messages = 0;
	imp->batch_bytes = 0;
	(void)clock_gettime(CLOCK_MONOTONIC, &imp->batch_start);
	/* Inside the batch we hold the write lock: nobody else appends until
	 * commit, so this UIDNEXT stays true for the whole batch. */
	return refresh_uidnext(imp);
}

static int batch_commit(struct importer *imp)
{
	if (!imp->in_batch)
		return 0;
	imp->in_batch = false;
	if (store_batch_commit(imp->st) < 0)
		return store_error(imp, "commit");
	return 0;
}

static int batch_maybe_cycle(struct importer *imp)
{
	if (imp->batch_messages < BATCH_MESSAGES && imp->batch_bytes < BATCH_BYTES &&
	    ms_since(&imp->batch_start) < BATCH_MS)
		return 0;
	if (batch_commit(imp) < 0)
		return -1;
	return batch_begin(imp);
}

/* Names clients and our first login treat as special (RFC 6154): marked
 * when the import creates them. */
static enum store_special_use special_use_for(const char *name)
{
	static const struct {
		const char *name;
		enum store_special_use use;
	} names[] = {
		{ "Drafts", STORE_SPECIAL_DRAFTS }, { "Sent", STORE_SPECIAL_SENT },
		{ "Sent Messages", STORE_SPECIAL_SENT }, { "Sent Items", STORE_SPECIAL_SENT },
		{ "Trash", STORE_SPECIAL_TRASH }, { "Deleted Messages", STORE_SPECIAL_TRASH },
		{ "Deleted Items", STORE_SPECIAL_TRASH }, { "Junk", STORE_SPECIAL_JUNK },
		{ "Spam", STORE_SPECIAL_JUNK }, { "Archive", STORE_SPECIAL_ARCHIVE },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i].name) == 0)
			return names[i].use;
	return STORE_SPECIAL_NONE;
}

/* Makes name the current mailbox, creating it if needed. With a nonzero
 * uidvalidity, *keep_uids_r tells whether the mailbox now has it (a new or
 * never used mailbox takes it; one that already held mail keeps its own). */
static int mailbox_start(struct importer *imp, const char *name, uint32_t uidvalidity,
			 bool *created_r, bool *keep_uids_r)
{
	struct store_status s;
	*created_r = false;
	*keep_uids_r = false;
	if (store_mailbox_status(imp->st, name, UINT32_MAX, &s) < 0) {
		if (store_last_error(imp->st, NULL) != STORE_ERR_NOT_FOUND)
			return store_error(imp, name);
		if (store_mailbox_create(imp->st, name, special_use_for(name)) < 0 &&
		    store_last_error(imp->st, NULL) != STORE_ERR_EXISTS)
			return store_error(imp, name);
		*created_r = true;
	}
	if (uidvalidity != 0) {
		if (store_mailbox_set_uidvalidity(imp->st, name, uidvalidity) == 0)
			*keep_uids_r = true;
		else if (store_last_error(imp->st, NULL) != STORE_ERR_NOT_ALLOWED)
			return store_error(imp, name);
	}
	if (store_mailbox_status(imp->st, name, UINT32_MAX, &s) < 0)
		return store_error(imp, name);
	free(imp->mailbox);
	imp->mailbox = xstrdup(name);
	imp->mailbox_id = s.mailbox_id;
	imp->uidnext = s.uidnext;
	hash_table_free(&imp->seen);
	imp->added = imp->skipped = imp->renumbered = imp->keywords_dropped = 0;
	return 0;
}

static void mailbox_report(struct importer *imp)
{
	progress_clear(&imp->progress);
	printf("%s: %llu imported, %llu already there", imp->mailbox, (unsigned long long)imp->added,
	       (unsigned long long)imp->skipped);
	if (imp->renumbered != 0)
		printf(", %llu with new UIDs", (unsigned long long)imp->renumbered);
	if (imp->keywords_dropped != 0)
		printf(", keywords dropped on %llu", (unsigned long long)imp->keywords_dropped);
	printf("\n");
	fflush(stdout);
	imp->total_added += imp->added;
	imp->total_skipped += imp->skipped;
}

/* Imports one message into the current mailbox unless it is there already.
 * Returns 0 (imported or skipped) or -1 on a store failure. */
static int import_message(struct importer *imp, const struct import_msg *m)
{
	char hash[STORE_HASH_SIZE];
	uint32_t uid = m->uid;
	bool renumber = false;

	if (m->len == 0) {
		imp->skipped++;
		return 0;
	}
	if (store_body_hash(m->data, m->len, hash) < 0) {
		progress_clear(&imp->progress);
		fprintf(stderr, "postern import: SHA-256 failed\n");
		return -1;
	}
	uint32_t nth = hash_table_bump(&imp->seen, hash);
	if (uid != 0 && uid < imp->uidnext) {
		/* Below UIDNEXT: imported by an earlier run, or the UID went to
		 * something else (or was expunged since). Only the first is
		 * certain to be this message; otherwise fall back to the body. */
		struct store_message_info info;
		if (store_message_get(imp->st, imp->mailbox_id, uid, &info) == 0) {
			imp->skipped++;
			return 0;
		}
		if (store_last_error(imp->st, NULL) != STORE_ERR_NOT_FOUND)
			return store_error(imp, imp->mailbox);
		uid = 0;
		renumber = true;
	}
	if (uid == 0) {
		uint32_t present;
		if (store_message_count_by_hash(imp->st, imp->mailbox_id, hash, &present) < 0)
			return store_error(imp, imp->mailbox);
		if (present >= nth) {
			imp->skipped++;
			return 0;
		}
	}

	struct store_message_meta meta;
	message_meta_compute(m->data, m->len, &meta);
	struct store_append_msg am = {
		.data = m->data,
		.size = m->len,
		.flags = m->flags,
		.keywords = m->keywords,
		.keyword_count = m->keyword_count,
		.internaldate = m->internaldate,
		.meta = &meta,
		.uid = uid,
	};
	uint32_t uidvalidity, new_uid = 0;
	int rc = -1;
	for (int attempt = 0; attempt < 3 && rc < 0; attempt++) {
		rc = store_append(imp->st, imp->mailbox_id, &am, 1, &uidvalidity, &new_uid);
		if (rc == 0)
			break;
		enum store_error e = store_last_error(imp->st, NULL);
		if (e == STORE_ERR_INVALID && am.uid != 0) {
			/* Something took the UID between our check and the
			 * append (only possible outside a batch). */
			am.uid = 0;
			renumber = true;
		} else if ((e == STORE_ERR_INVALID || e == STORE_ERR_LIMIT) && am.keyword_count != 0) {
			/* A keyword the store refuses, or more than
			 * STORE_MAX_KEYWORDS in the mailbox: keep the message. */
			am.keyword_count = 0;
			imp->keywords_dropped++;
		} else {
			break;
		}
	}
	store_message_meta_free(&meta);
	if (rc < 0)
		return store_error(imp, imp->mailbox);
	if (new_uid >= imp->uidnext)
		imp->uidnext = new_uid + 1;
	imp->added++;
	if (renumber)
		imp->renumbered++;
	imp->batch_messages++;
	imp->batch_bytes += m->len;
	return batch_maybe_cycle(imp);
}

/* --- Files --------------------------------------------------------------- */

/* Reads a whole file; *data_r is malloc'd (NULL for an empty file). */
static int read_file(const char *path, char **data_r, size_t *len_r, int64_t *mtime_r)
{
	*data_r = NULL;
	*len_r = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	struct stat sb;
	if (fstat(fd, &sb) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	*mtime_r = (int64_t)sb.st_mtime;
	size_t cap = (size_t)sb.st_size, len = 0;
	char *data = xmalloc(cap + 1);
	for (;;) {
		if (len == cap) {
			cap = cap * 2 + 4096;
			data = xrealloc(data, cap + 1);
		}
		ssize_t n = read(fd, data + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int saved = errno;
			free(data);
			close(fd);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	*data_r = data;
	*len_r = len;
	return 0;
}

/* When run as root: the server (as owner) must be able to write the store
 * we just wrote. */
static const struct passwd *chown_target;

static int chown_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	if (lchown(path, chown_target->pw_uid, chown_target->pw_gid) < 0)
		fprintf(stderr, "postern import: chown %s: %s\n", path, strerror(errno));
	return 0;
}

static void give_store_to_owner(const char *data_dir, const char *user, const char *owner)
{
	if (geteuid() != 0 || owner == NULL)
		return;
	const struct passwd *pw = getpwnam(owner);
	if (pw == NULL || pw->pw_uid == 0)
		return;
	char *users = xasprintf("%s/users", data_dir);
	char *dir = xasprintf("%s/users/%s", data_dir, user);
	chown_target = pw;
	if (lchown(users, pw->pw_uid, pw->pw_gid) < 0)
		fprintf(stderr, "postern import: chown %s: %s\n", users, strerror(errno));
	if (nftw(dir, chown_entry, 16, FTW_PHYS) != 0)
		fprintf(stderr, "postern import: cannot give %s to %s\n", dir, owner);
	free(users);
	free(dir);
}

/* --- Maildir ------------------------------------------------------------- */

struct mfile {
	char *path;
	const char *name;	/* the file name within path */
	size_t base_len;
	uint32_t flags;
	uint32_t keywords;	/* letter bits */
	uint32_t uid;		/* from the uidlist, 0 if not listed */
};

static void mfiles_free(struct mfile *files, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(files[i].path);
	free(files);
}

/* Listed files in UID order first, then the others by name (Maildir names
 * begin with the delivery time). */
static int cmp_mfile(const void *a, const void *b)
{
	const struct mfile *x = a, *y = b;
	if ((x->uid == 0) != (y->uid == 0))
		return x->uid == 0 ? 1 : -1;
	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int list_messages(const char *folder, const char *sub, struct mfile **files, size_t *count,
			 size_t *cap)
{
	char *dir = xasprintf("%s/%s", folder, sub);
	DIR *d = opendir(dir);
	if (d == NULL) {
		int saved = errno;
		free(dir);
		if (saved == ENOENT)
			return 0;
		fprintf(stderr, "postern import: %s/%s: %s\n", folder, sub, strerror(saved));
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (*count == *cap) {
			*cap = *cap ? *cap * 2 : 256;
			*files = xrealloc(*files, *cap * sizeof(**files));
		}
		struct mfile *f = &(*files)[(*count)++];
		f->path = xasprintf("%s/%s", dir, de->d_name);
		f->name = f->path + strlen(dir) + 1;
		f->uid = 0;
		maildir_name_parse(f->name, &f->base_len, &f->flags, &f->keywords);
	}
	closedir(d);
	free(dir);
	return 0;
}

static int import_maildir_folder(struct importer *imp, const char *folder, const char *mailbox)
{
	struct mfile *files = NULL;
	size_t count = 0, cap = 0;
	struct maildir_uidlist uidlist = { 0 };
	char *kwnames[MAILDIR_MAX_KEYWORDS];
	char *path, *error = NULL;
	int ret = -1;

	for (unsigned i = 0; i < MAILDIR_MAX_KEYWORDS; i++)
		kwnames[i] = NULL;
	if (list_messages(folder, "cur", &files, &count, &cap) < 0 ||
	    list_messages(folder, "new", &files, &count, &cap) < 0)
		goto out;

	path = xasprintf("%s/dovecot-uidlist", folder);
	int have_uids = maildir_uidlist_read(path, &uidlist, &error);
	free(path);
	if (have_uids == 0) {
		path = xasprintf("%s/courierimapuiddb", folder);
		have_uids = maildir_uidlist_read(path, &uidlist, &error);
		free(path);
	}
	if (have_uids < 0) {
		fprintf(stderr, "postern import: %s; UIDs not kept\n", error);
		free(error);
		have_uids = 0;
	}
	path = xasprintf("%s/dovecot-keywords", folder);
	if (maildir_keywords_read(path, kwnames) < 0)
		fprintf(stderr, "postern import: %s: %s; keywords not kept\n", path, strerror(errno));
	free(path);

	bool created, keep_uids;
	if (mailbox_start(imp, mailbox, have_uids > 0 ? uidlist.uidvalidity : 0, &created,
			  &keep_uids) < 0)
		goto out;
	if (have_uids > 0 && !keep_uids) {
		progress_clear(&imp->progress);
		fprintf(stderr, "postern import: %s already held mail under another UIDVALIDITY:"
			" messages get new UIDs (clients download this folder again)\n", mailbox);
	}
	for (size_t i = 0; keep_uids && i < count; i++)
		files[i].uid = maildir_uidlist_find(&uidlist, files[i].name, files[i].base_len);
	if (count > 1)
		qsort(files, count, sizeof(*files), cmp_mfile);

	if (batch_begin(imp) < 0)
		goto out;
	bool raised = !keep_uids;
	for (size_t i = 0; i < count; i++) {
		/* Messages Dovecot has not numbered yet get UIDs from its next
		 * UID on, as Dovecot would give them. */
		if (!raised && files[i].uid == 0) {
			if (store_mailbox_set_uidnext(imp->st, imp->mailbox_id, uidlist.nextuid) < 0 ||
			    refresh_uidnext(imp) < 0) {
				store_error(imp, mailbox);
				goto out;
			}
			raised = true;
		}
		char *data;
		size_t len;
		int64_t mtime = 0;
		if (read_file(files[i].path, &data, &len, &mtime) < 0) {
			progress_clear(&imp->progress);
			fprintf(stderr, "postern import: %s: %s (skipped)\n", files[i].path, strerror(errno));
			continue;
		}
		const char *kw[MAILDIR_MAX_KEYWORDS];
		size_t nkw = 0;
		for (unsigned k = 0; k < MAILDIR_MAX_KEYWORDS; k++)
			if ((files[i].keywords & (1u << k)) != 0 && kwnames[k] != NULL)
				kw[nkw++] = kwnames[k];
		struct import_msg m = {
			.data = data, .len = len, .flags = files[i].flags, .keywords = kw,
			.keyword_count = nkw, .internaldate = mtime, .uid = files[i].uid,
		};
		int rc = import_message(imp, &m);
		free(data);
		if (rc < 0)
			goto out;
		progress_update(&imp->progress, mailbox, i + 1, count);
	}
	if (!raised && store_mailbox_set_uidnext(imp->st, imp->mailbox_id, uidlist.nextuid) < 0) {
		store_error(imp, mailbox);
		goto out;
	}
	if (batch_commit(imp) < 0)
		goto out;
	mailbox_report(imp);
	ret = 0;
out:
	if (imp->in_batch) {
		/* What was added before the failure is kept: a second run
		 * resumes after it. */
		if (batch_commit(imp) < 0)
			ret = -1;
	}
	mfiles_free(files, count);
	maildir_uidlist_free(&uidlist);
	maildir_keywords_free(kwnames);
	return ret;
}

static bool is_maildir(const char *dir)
{
	struct stat sb;
	char *cur = xasprintf("%s/cur", dir), *new = xasprintf("%s/new", dir);
	bool yes = (stat(cur, &sb) == 0 && S_ISDIR(sb.st_mode)) ||
		   (stat(new, &sb) == 0 && S_ISDIR(sb.st_mode));
	free(cur);
	free(new);
	return yes;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Subscribes what the source had subscribed: Dovecot's "subscriptions"
 * (version 2: "V\t2" then names with '\t' between levels; version 1: one
 * name a line, '.' between levels) or Courier's "courierimapsubscribed"
 * ("INBOX.Sent" lines). Returns 0 when no such file exists. */
static int import_subscriptions(struct importer *imp, const char *dir, bool *found_r)
{
	static const char *const files[] = { "subscriptions", "courierimapsubscribed" };
	*found_r = false;
	for (size_t fi = 0; fi < 2 && !*found_r; fi++) {
		char *path = xasprintf("%s/%s", dir, files[fi]);
		FILE *f = fopen(path, "r");
		free(path);
		if (f == NULL)
			continue;
		*found_r = true;
		char *line = NULL;
		size_t cap = 0;
		ssize_t n;
		bool v2 = false, first = true;
		while ((n = getline(&line, &cap, f)) >= 0) {
			while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
				line[--n] = '\0';
			if (first && strcmp(line, "V\t2") == 0) {
				v2 = true;
				first = false;
				continue;
			}
			first = false;
			if (n == 0)
				continue;
			char *name = line;
			if (fi == 1 && strncmp(name, "INBOX.", 6) == 0)
				name += 6;
			/* The separator becomes '/' before decoding: neither '\t'
			 * nor '.' occurs inside a base64 run, and a raw tab is
			 * not valid modified UTF-7. */
			char sep = v2 ? '\t' : '.';
			for (char *p = (char *)name; *p != '\0'; p++)
				if (*p == sep)
					*p = '/';
			struct buf utf8 = BUF_INIT;
			if (imap_utf7_to_utf8(name, strlen(name), &utf8) < 0) {
				buf_free(&utf8);
				continue;
			}
			if (store_subscribe(imp->st, utf8.data) < 0 &&
			    store_last_error(imp->st, NULL) != STORE_ERR_INVALID_NAME) {
				buf_free(&utf8);
				free(line);
				fclose(f);
				return store_error(imp, "subscribe");
			}
			buf_free(&utf8);
		}
		free(line);
		fclose(f);
	}
	return 0;
}

static int import_maildir(struct importer *imp, const char *dir)
{
	if (!is_maildir(dir)) {
		fprintf(stderr, "postern import: %s: not a Maildir (no cur/ or new/)\n", dir);
		return -1;
	}
	/* Maildir++ folders: DIR/.NAME directories that are Maildirs. */
	char **names = NULL;
	size_t count = 0, cap = 0;
	DIR *d = opendir(dir);
	if (d == NULL) {
		fprintf(stderr, "postern import: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *path = xasprintf("%s/%s", dir, de->d_name);
		bool yes = is_maildir(path);
		free(path);
		if (!yes)
			continue;
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[count++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (count > 1)
		qsort(names, count, sizeof(*names), cmp_str);

	int ret = import_maildir_folder(imp, dir, "INBOX");
	char **imported = xcalloc(count + 1, sizeof(*imported));
	size_t nimported = 0;
	for (size_t i = 0; i < count && ret == 0; i++) {
		struct buf mailbox = BUF_INIT;
		if (maildir_folder_to_mailbox(names[i], &mailbox) < 0) {
			fprintf(stderr, "postern import: %s/%s: not a valid folder name (skipped)\n", dir,
				names[i]);
			buf_free(&mailbox);
			continue;
		}
		char *path = xasprintf("%s/%s", dir, names[i]);
		ret = import_maildir_folder(imp, path, mailbox.data);
		free(path);
		imported[nimported++] = buf_steal(&mailbox);
	}
	bool found = false;
	if (ret == 0)
		ret = import_subscriptions(imp, dir, &found);
	/* Without a subscriptions file, subscribe everything imported: most
	 * clients show only subscribed folders. */
	for (size_t i = 0; ret == 0 && !found && i < nimported; i++)
		if (store_subscribe(imp->st, imported[i]) < 0)
			ret = store_error(imp, "subscribe");
	for (size_t i = 0; i < nimported; i++)
		free(imported[i]);
	free(imported);
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	return ret;
}

/* --- mbox ---------------------------------------------------------------- */

static const char *const weekdays[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* The date of a From_ line, "From SENDER Www Mmm dd hh:mm[:ss] [ZONE] yyyy
 * [ZONE]" (ctime format with the variants mbox writers use). Dates without
 * a numeric zone are taken as UTC. Returns false if none is found: then the
 * line is not a separator. */
static bool from_line_date(const char *line, int64_t *date_r)
{
	for (const char *p = strchr(line + 5, ' '); p != NULL; p = strchr(p + 1, ' ')) {
		const char *w = p + 1;
		bool weekday = false;
		for (int i = 0; i < 7 && !weekday; i++)
			weekday = strncmp(w, weekdays[i], 3) == 0 && w[3] == ' ';
		if (!weekday)
			continue;
		int mon = -1;
		for (int i = 0; i < 12; i++)
			if (strncmp(w + 4, months[i], 3) == 0 && w[7] == ' ')
				mon = i;
		if (mon < 0)
			continue;
		struct tm tm = { 0 };
		int pos = 0;
		if (sscanf(w + 8, "%d %d:%d%n", &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &pos) != 3)
			continue;
		const char *q = w + 8 + pos;
		if (*q == ':') {
			int sec = 0, n = 0;
			if (sscanf(q + 1, "%d%n", &sec, &n) != 1)
				continue;
			tm.tm_sec = sec;
			q += 1 + n;
		}
		int year = -1, offset = 0;
		for (int tokens = 0; tokens < 3 && *q == ' '; tokens++) {
			while (*q == ' ')
				q++;
			size_t len = strcspn(q, " \r\n");
			if ((q[0] == '+' || q[0] == '-') && len == 5) {
				int hhmm = atoi(q + 1);
				offset = (hhmm / 100 * 60 + hhmm % 100) * 60 * (q[0] == '-' ? -1 : 1);
			} else if (len == 4 && q[0] >= '0' && q[0] <= '9') {
				year = atoi(q);
			}
			q += len;
		}
		if (year < 1970 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
		    tm.tm_min > 59 || tm.tm_sec > 60)
			continue;
		tm.tm_year = year - 1900;
		tm.tm_mon = mon;
		*date_r = (int64_t)timegm(&tm) - offset;
		return true;
	}
	return false;
}

/* The message being collected from an mbox. */
struct mbox_msg {
	struct buf data;
	uint32_t flags;
	char **keywords;
	size_t keyword_count, keyword_cap;
	int64_t date;
	bool pseudo;		/* UW/Dovecot "FOLDER INTERNAL DATA" message */
	bool in_header;
	bool dropping;		/* inside a header we drop (its folded lines too) */
	bool keywords_header;	/* the dropped header is X-Keywords */
};

static void mbox_msg_reset(struct mbox_msg *m, int64_t date)
{
	buf_clear(&m->data);
	for (size_t i = 0; i < m->keyword_count; i++)
		free(m->keywords[i]);
	m->keyword_count = 0;
	m->flags = 0;
	m->date = date;
	m->pseudo = false;
	m->in_header = true;
	m->dropping = false;
	m->keywords_header = false;
}

static void mbox_msg_free(struct mbox_msg *m)
{
	mbox_msg_reset(m, 0);
	buf_free(&m->data);
	free(m->keywords);
}

static void mbox_add_keywords(struct mbox_msg *m, const char *text)
{
	const char *p = text;
	while (*p != '\0') {
		p += strspn(p, " \t,\r\n");
		size_t len = strcspn(p, " \t,\r\n");
		if (len == 0)
			break;
		if (m->keyword_count == m->keyword_cap) {
			m->keyword_cap = m->keyword_cap ? m->keyword_cap * 2 : 8;
			m->keywords = xrealloc(m->keywords, m->keyword_cap * sizeof(*m->keywords));
		}
		m->keywords[m->keyword_count++] = xstrndup(p, len);
		p += len;
	}
}

static bool header_is(const char *line, const char *name)
{
	size_t len = strlen(name);
	return strncasecmp(line, name, len) == 0 && line[len] == ':';
}

/* A header line of the message: Dovecot's mbox bookkeeping headers are
 * turned into flags and keywords and dropped (RFC 4155 mentions Status;
 * X-Status, X-Keywords, X-UID, X-IMAP, X-IMAPbase and Content-Length are
 * the headers Dovecot and UW-IMAP write and hide). */
static void mbox_header_line(struct mbox_msg *m, const char *line, size_t len)
{
	if (line[0] == ' ' || line[0] == '\t') {
		if (!m->dropping)
			buf_append(&m->data, line, len);
		else if (m->keywords_header)
			mbox_add_keywords(m, line);
		return;
	}
	m->dropping = true;
	m->keywords_header = false;
	if (header_is(line, "Status")) {
		if (strchr(line + 7, 'R') != NULL)
			m->flags |= STORE_FLAG_SEEN;
	} else if (header_is(line, "X-Status")) {
		const char *v = line + 9;
		if (strchr(v, 'A') != NULL)
			m->flags |= STORE_FLAG_ANSWERED;
		if (strchr(v, 'F') != NULL)
			m->flags |= STORE_FLAG_FLAGGED;
		if (strchr(v, 'T') != NULL)
			m->flags |= STORE_FLAG_DRAFT;
		if (strchr(v, 'D') != NULL)
			m->flags |= STORE_FLAG_DELETED;
	} else if (header_is(line, "X-Keywords")) {
		m->keywords_header = true;
		mbox_add_keywords(m, line + 11);
	} else if (header_is(line, "X-IMAP")) {
		m->pseudo = true;
	} else if (!header_is(line, "X-UID") && !header_is(line, "X-IMAPbase") &&
		   !header_is(line, "Content-Length")) {
		m->dropping = false;
		buf_append(&m->data, line, len);
	}
}

static int mbox_flush(struct importer *imp, struct mbox_msg *m)
{
	struct buf *d = &m->data;
	/* The empty line before the next From_ belongs to the mbox, not to
	 * the message (RFC 4155). */
	if (d->len >= 2 && d->data[d->len - 1] == '\n' && d->data[d->len - 2] == '\n')
		d->len--;
	else if (d->len >= 4 && memcmp(d->data + d->len - 4, "\r\n\r\n", 4) == 0)
		d->len -= 2;
	if (m->pseudo)
		return 0;
	struct import_msg im = {
		.data = d->data, .len = d->len, .flags = m->flags,
		.keywords = (const char *const *)m->keywords, .keyword_count = m->keyword_count,
		.internaldate = m->date,
	};
	return import_message(imp, &im);
}

static bool blank_line(const char *line, size_t len)
{
	return (len == 1 && line[0] == '\n') || (len == 2 && line[0] == '\r' && line[1] == '\n');
}

static int import_mbox(struct importer *imp, const char *path, const char *mailbox)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "postern import: %s: %s\n", path, strerror(errno));
		return -1;
	}
	struct stat sb;
	uint64_t total = fstat(fileno(f), &sb) == 0 ? (uint64_t)sb.st_size : 0;
	bool created, keep;
	if (mailbox_start(imp, mailbox, 0, &created, &keep) < 0 || batch_begin(imp) < 0) {
		fclose(f);
		return -1;
	}
	struct mbox_msg m = { .data = BUF_INIT };
	char *label = xasprintf("%s (bytes read)", mailbox);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	uint64_t done = 0;
	bool in_msg = false, prev_blank = true;
	int ret = 0;
	while (ret == 0 && (n = getline(&line, &cap, f)) >= 0) {
		size_t len = (size_t)n;
		done += len;
		int64_t date = 0;
		/* RFC 4155: a From_ line starts a message. Writers that do not
		 * quote "From " in bodies (mboxo) make that ambiguous, so a
		 * line counts only after an empty line and with a date. The
		 * first line of the file is a separator in any case. */
		if (strncmp(line, "From ", 5) == 0 &&
		    ((prev_blank && from_line_date(line, &date)) || !in_msg)) {
			if (in_msg)
				ret = mbox_flush(imp, &m);
			mbox_msg_reset(&m, date);
			in_msg = true;
			prev_blank = false;
			progress_update(&imp->progress, label, done, total);
			continue;
		}
		prev_blank = blank_line(line, len);
		if (!in_msg) {
			if (prev_blank)
				continue;
			fprintf(stderr, "postern import: %s: not an mbox (no From_ line first)\n", path);
			ret = -1;
			break;
		}
		if (m.in_header) {
			if (prev_blank) {
				m.in_header = false;
				buf_append(&m.data, line, len);
			} else {
				mbox_header_line(&m, line, len);
			}
			continue;
		}
		/* mboxrd: ">From ", ">>From "... lose one '>'. */
		size_t quotes = strspn(line, ">");
		if (quotes > 0 && strncmp(line + quotes, "From ", 5) == 0)
			buf_append(&m.data, line + 1, len - 1);
		else
			buf_append(&m.data, line, len);
	}
	if (ret == 0 && ferror(f)) {
		fprintf(stderr, "postern import: %s: read error\n", path);
		ret = -1;
	}
	if (ret == 0 && in_msg)
		ret = mbox_flush(imp, &m);
	if (batch_commit(imp) < 0)
		ret = -1;
	if (ret == 0)
		mailbox_report(imp);
	free(line);
	free(label);
	mbox_msg_free(&m);
	fclose(f);
	return ret;
}

/* --- Entry --------------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr, "usage: postern import maildir DIR USER [-c FILE]\n"
			"       postern import mbox FILE USER [MAILBOX] [-c FILE]\n");
	return EXIT_USAGE;
}

int cli_import(int argc, char **argv, const char *data_dir, const char *owner)
{
	bool maildir = argc >= 1 && strcmp(argv[0], "maildir") == 0;
	bool mbox = argc >= 1 && strcmp(argv[0], "mbox") == 0;
	if ((!maildir && !mbox) || argc < 3 || (maildir && argc != 3) || (mbox && argc > 4))
		return usage();
	const char *source = argv[1], *user = argv[2];
	const char *mailbox = mbox && argc == 4 ? argv[3] : "INBOX";

	if (mkdir(data_dir, 0750) < 0 && errno != EEXIST) {
		fprintf(stderr, "postern import: data_dir %s: %s\n", data_dir, strerror(errno));
		return EXIT_FAIL;
	}
	struct importer imp = { 0 };
	enum store_error error;
	char *text = NULL;
	if (store_open(data_dir, user, &imp.st, &error, &text) < 0) {
		fprintf(stderr, "postern import: store of %s in %s: %s (%s)\n", user, data_dir,
			store_error_name(error), text ? text : "");
		free(text);
		return EXIT_FAIL;
	}
	progress_init(&imp.progress);
	int rc = maildir ? import_maildir(&imp, source) : import_mbox(&imp, source, mailbox);
	progress_clear(&imp.progress);
	if (rc == 0)
		printf("imported %llu messages for %s, %llu were there already\n",
		       (unsigned long long)imp.total_added, user, (unsigned long long)imp.total_skipped);
	store_close(&imp.st);
	free(imp.mailbox);
	hash_table_free(&imp.seen);
	give_store_to_owner(data_dir, user, owner);
	return rc == 0 ? EXIT_OK : EXIT_FAIL;
}
