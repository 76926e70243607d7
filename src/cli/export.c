/* `postern export maildir`: see export.h. Files are written to the folder's
 * tmp/ and renamed into cur/ (the Maildir delivery rule), the index files
 * through a temporary name too, and the whole tree is synced once at the
 * end (syncfs) rather than one fsync per message. */
#include "cli/export.h"
#include "cli/maildir.h"
#include "cli/progress.h"
#include "core/buf.h"
#include "core/xalloc.h"
#include "imap/utf7.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

struct exporter {
	struct store *st;
	struct progress progress;
	const char *dir;
	uint64_t messages;
	uint64_t keywords_dropped;
};

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int fail_errno(struct exporter *ex, const char *what, const char *path)
{
	int saved = errno;
	progress_clear(&ex->progress);
	fprintf(stderr, "postern export: %s %s: %s\n", what, path, strerror(saved));
	return -1;
}

static int fail_store(struct exporter *ex, const char *what)
{
	const char *text = NULL;
	enum store_error e = store_last_error(ex->st, &text);
	progress_clear(&ex->progress);
	fprintf(stderr, "postern export: %s: %s (%s)\n", what, store_error_name(e), text ? text : "");
	return -1;
}

/* Writes path through path.tmp and a rename, so Dovecot never reads half a
 * file. */
static int write_file(struct exporter *ex, const char *path, const struct buf *content)
{
	char *tmp = xasprintf("%s.tmp", path);
	int ret = -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fail_errno(ex, "create", tmp);
		goto out;
	}
	if (write_all(fd, content->data != NULL ? content->data : "", content->len) < 0) {
		fail_errno(ex, "write", tmp);
		close(fd);
		goto out;
	}
	if (close(fd) < 0) {
		fail_errno(ex, "close", tmp);
		goto out;
	}
	if (rename(tmp, path) < 0) {
		fail_errno(ex, "rename", tmp);
		goto out;
	}
	ret = 0;
out:
	free(tmp);
	return ret;
}

static int make_dir(struct exporter *ex, const char *path)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return fail_errno(ex, "mkdir", path);
	return 0;
}

/* Copies the body of uid into tmp/base, sets its mtime to the internal date
 * (Dovecot's maildir takes the internal date from there) and renames it to
 * cur/base:2,info. */
static int export_message(struct exporter *ex, uint64_t mailbox_id, const char *folder,
			  const struct store_msg *msg, const char *base, const char *info)
{
	int in = -1, out = -1, ret = -1;
	size_t size;
	char *tmp = xasprintf("%s/tmp/%s", folder, base);
	char *dst = xasprintf("%s/cur/%s%s", folder, base, info);

	if (store_message_open(ex->st, mailbox_id, msg->uid, &in, &size) < 0) {
		fail_store(ex, "open message");
		goto out;
	}
	out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		fail_errno(ex, "create", tmp);
		goto out;
	}
	char chunk[65536];
	for (;;) {
		ssize_t n = read(in, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fail_errno(ex, "read body for", dst);
			goto out;
		}
		if (n == 0)
			break;
		if (write_all(out, chunk, (size_t)n) < 0) {
			fail_errno(ex, "write", tmp);
			goto out;
		}
	}
	const struct timespec times[2] = {
		{ .tv_sec = (time_t)msg->internaldate, .tv_nsec = 0 },
		{ .tv_sec = (time_t)msg->internaldate, .tv_nsec = 0 },
	};
	if (futimens(out, times) < 0) {
		fail_errno(ex, "set mtime of", tmp);
		goto out;
	}
	int rc = close(out);
	out = -1;
	if (rc < 0) {
		fail_errno(ex, "close", tmp);
		goto out;
	}
	if (rename(tmp, dst) < 0) {
		fail_errno(ex, "rename to", dst);
		goto out;
	}
	ret = 0;
out:
	if (out >= 0) {
		close(out);
		(void)unlink(tmp);
	}
	if (in >= 0)
		close(in);
	free(tmp);
	free(dst);
	return ret;
}

static int export_mailbox(struct exporter *ex, const char *name, uint64_t mailbox_id,
			  const char *folder, bool subfolder)
{
	struct store_view view;
	struct buf uidlist = BUF_INIT, keywords = BUF_INIT, base = BUF_INIT, info = BUF_INIT;
	int ret = -1;

	memset(&view, 0, sizeof(view));
	char *cur = xasprintf("%s/cur", folder), *new = xasprintf("%s/new", folder);
	char *tmp = xasprintf("%s/tmp", folder);
	char *marker = xasprintf("%s/maildirfolder", folder);
	char *uidlist_path = xasprintf("%s/dovecot-uidlist", folder);
	char *keywords_path = xasprintf("%s/dovecot-keywords", folder);
	if ((subfolder && make_dir(ex, folder) < 0) || make_dir(ex, cur) < 0 ||
	    make_dir(ex, new) < 0 || make_dir(ex, tmp) < 0)
		goto out;
	/* Maildir++: a subfolder says so with an empty maildirfolder file. */
	if (subfolder && write_file(ex, marker, &keywords) < 0)
		goto out;
	if (store_view_load(ex->st, mailbox_id, &view) < 0) {
		fail_store(ex, name);
		goto out;
	}
	size_t nkw = view.keywords.count < MAILDIR_MAX_KEYWORDS ? view.keywords.count
								 : MAILDIR_MAX_KEYWORDS;
	for (size_t i = 0; i < nkw; i++)
		buf_printf(&keywords, "%zu %s\n", i, view.keywords.names[i]);
	buf_printf(&uidlist, "3 V%u N%u\n", view.uidvalidity, view.uidnext);
	uint64_t dropped = 0;
	for (size_t i = 0; i < view.count; i++) {
		const struct store_msg *m = &view.msgs[i];
		uint32_t letters = (uint32_t)(m->keywords & ((1u << MAILDIR_MAX_KEYWORDS) - 1));
		if ((m->keywords >> MAILDIR_MAX_KEYWORDS) != 0)
			dropped++;
		/* Unique within the folder by UID; S= is the file size, which
		 * Dovecot then trusts instead of a stat. */
		buf_clear(&base);
		buf_printf(&base, "%lld.M%uP%u.postern,S=%u", (long long)m->internaldate, m->uid,
			   view.uidvalidity, m->size);
		buf_clear(&info);
		maildir_info_write(&info, m->flags, letters);
		if (export_message(ex, mailbox_id, folder, m, base.data, info.data) < 0)
			goto out;
		buf_printf(&uidlist, "%u :%s\n", m->uid, base.data);
		ex->messages++;
		progress_update(&ex->progress, name, i + 1, view.count);
	}
	if ((keywords.len > 0 && write_file(ex, keywords_path, &keywords) < 0) ||
	    write_file(ex, uidlist_path, &uidlist) < 0)
		goto out;
	progress_clear(&ex->progress);
	if (dropped != 0)
		fprintf(stderr, "postern export: %s: keywords beyond the %dth not exported on %llu"
			" messages\n", name, MAILDIR_MAX_KEYWORDS, (unsigned long long)dropped);
	printf("%s: %zu messages\n", name, view.count);
	ex->keywords_dropped += dropped;
	ret = 0;
out:
	store_view_free(&view);
	buf_free(&uidlist);
	buf_free(&keywords);
	buf_free(&base);
	buf_free(&info);
	free(cur);
	free(new);
	free(tmp);
	free(marker);
	free(uidlist_path);
	free(keywords_path);
	return ret;
}

/* Dovecot's subscriptions file, version 2: a header, an empty line, then
 * one name a line with '\t' between levels, in modified UTF-7. */
static int export_subscriptions(struct exporter *ex, const struct store_mailbox_entry *entries,
				size_t count)
{
	struct buf out = BUF_INIT;
	buf_append_str(&out, "V\t2\n\n");
	for (size_t i = 0; i < count; i++) {
		if (!entries[i].subscribed)
			continue;
		size_t start = out.len;
		if (imap_utf8_to_utf7(entries[i].name, strlen(entries[i].name), &out) < 0)
			continue;
		for (size_t k = start; k < out.len; k++)
			if (out.data[k] == '/')
				out.data[k] = '\t';
		buf_append_char(&out, '\n');
	}
	char *path = xasprintf("%s/subscriptions", ex->dir);
	int rc = write_file(ex, path, &out);
	free(path);
	buf_free(&out);
	return rc;
}

static int export_all(struct exporter *ex)
{
	struct store_mailbox_entry *entries = NULL;
	size_t count = 0;
	int ret = -1;

	if (store_mailbox_list(ex->st, &entries, &count) < 0)
		return fail_store(ex, "list mailboxes");
	for (size_t i = 0; i < count; i++) {
		const char *name = entries[i].name;
		if (entries[i].id == 0)
			continue;
		if (strcmp(name, "INBOX") == 0) {
			if (export_mailbox(ex, name, entries[i].id, ex->dir, false) < 0)
				goto out;
			continue;
		}
		char *safe = xstrdup(name);
		for (char *p = strchr(safe, '.'); p != NULL; p = strchr(p, '.'))
			*p = '_';
		struct buf folder = BUF_INIT;
		buf_printf(&folder, "%s/", ex->dir);
		if (strcmp(safe, name) != 0)
			fprintf(stderr, "postern export: %s: '.' cannot be in a Maildir++ name,"
				" exported as %s\n", name, safe);
		struct stat sb;
		int rc = maildir_mailbox_to_folder(safe, &folder);
		if (rc == 0 && stat(folder.data, &sb) == 0) {
			fprintf(stderr, "postern export: %s: %s exists already (skipped)\n", name,
				folder.data);
		} else if (rc == 0) {
			rc = export_mailbox(ex, name, entries[i].id, folder.data, true);
		} else {
			fprintf(stderr, "postern export: %s: name not expressible (skipped)\n", name);
			rc = 0;
		}
		free(safe);
		buf_free(&folder);
		if (rc < 0)
			goto out;
	}
	ret = export_subscriptions(ex, entries, count);
out:
	store_mailbox_list_free(&entries, count);
	return ret;
}

int cli_export(int argc, char **argv, const char *data_dir)
{
	if (argc != 3 || strcmp(argv[0], "maildir") != 0) {
		fprintf(stderr, "usage: postern export maildir USER DIR [-c FILE]\n");
		return EXIT_USAGE;
	}
	const char *user = argv[1], *dir = argv[2];
	struct stat sb;
	/* store_open would create an empty store for a mistyped name. */
	char *user_dir = xasprintf("%s/users/%s", data_dir, user);
	int rc = stat(user_dir, &sb);
	free(user_dir);
	if (rc < 0 || strchr(user, '/') != NULL) {
		fprintf(stderr, "postern export: no mail store for user %s in %s\n", user, data_dir);
		return EXIT_FAIL;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "postern export: mkdir %s: %s\n", dir, strerror(errno));
		return EXIT_FAIL;
	}
	char *cur = xasprintf("%s/cur", dir);
	rc = stat(cur, &sb);
	free(cur);
	if (rc == 0) {
		fprintf(stderr, "postern export: %s is a Maildir already; export into a new directory\n",
			dir);
		return EXIT_FAIL;
	}

	struct exporter ex = { .dir = dir };
	enum store_error error;
	char *text = NULL;
	if (store_open(data_dir, user, &ex.st, &error, &text) < 0) {
		fprintf(stderr, "postern export: store of %s: %s (%s)\n", user, store_error_name(error),
			text ? text : "");
		free(text);
		return EXIT_FAIL;
	}
	progress_init(&ex.progress);
	rc = export_all(&ex);
	store_close(&ex.st);
	progress_clear(&ex.progress);
	if (rc == 0) {
		/* One sync for the whole tree instead of one per file. */
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || syncfs(fd) < 0) {
			fprintf(stderr, "postern export: sync %s: %s\n", dir, strerror(errno));
			rc = -1;
		}
		if (fd >= 0)
			close(fd);
	}
	if (rc == 0)
		printf("exported %llu messages of %s to %s\n", (unsigned long long)ex.messages, user, dir);
	return rc == 0 ? EXIT_OK : EXIT_FAIL;
}
