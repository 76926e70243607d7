#include "auth/passwd_file.h"
#include "core/limits.h"
#include "core/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Mode of a password file postern creates: the server's group reads it. */
#define PASSWD_FILE_NEW_MODE 0640
/* A password file bigger than this is a mistake, not a user list. */
#define PASSWD_FILE_MAX_SIZE (256 * 1024 * 1024)

bool passwd_user_name_valid(const char *user)
{
	size_t len = strlen(user);

	if (len == 0 || len > LIMIT_USER_LEN)
		return false;
	if (strcmp(user, ".") == 0 || strcmp(user, "..") == 0)
		return false;
	/* A leading '#' would turn the user's line into a comment. */
	if (user[0] == '#')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)user[i];
		if (c <= 0x20 || c == 0x7f || c == ':' || c == '/')
			return false;
	}
	return true;
}

/* Reads all of fd into *buf. Returns 0 or -1 with errno set. */
static int read_all(int fd, struct buf *out)
{
	for (;;) {
		buf_reserve(out, 16384);
		ssize_t n = read(fd, out->data + out->len, out->cap - out->len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
		out->data[out->len] = '\0';
		if (out->len > PASSWD_FILE_MAX_SIZE) {
			errno = EFBIG;
			return -1;
		}
	}
	return 0;
}

/* One line of the file, with the trailing "\n" and "\r" not included. */
struct line {
	const char *start;
	size_t len;
	bool crlf;		/* ended in "\r\n" */
};

/* Steps *pos through text line by line; false at the end. */
static bool next_line(const char *text, size_t text_len, size_t *pos, struct line *line_r)
{
	if (*pos >= text_len)
		return false;
	const char *start = text + *pos;
	const char *nl = memchr(start, '\n', text_len - *pos);
	size_t len = nl != NULL ? (size_t)(nl - start) : text_len - *pos;
	*pos += len + (nl != NULL ? 1 : 0);
	line_r->start = start;
	line_r->crlf = len > 0 && start[len - 1] == '\r';
	line_r->len = line_r->crlf ? len - 1 : len;
	return true;
}

static bool line_is_comment(const struct line *line)
{
	for (size_t i = 0; i < line->len; i++) {
		if (line->start[i] == '#')
			return true;
		if (line->start[i] != ' ' && line->start[i] != '\t')
			return false;
	}
	return true;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct passwd_entry *x = a, *y = b;
	int c = strcmp(x->user, y->user);
	return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

static void entries_free(struct passwd_entry *entries, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(entries[i].user);
		free(entries[i].password);
		free(entries[i].rest);
	}
	free(entries);
}

/* Parses text into pf->entries, sorted by user for passwd_file_find.
 * Every bad line is reported, not just the first (as OpenSMTPD's parse.y
 * does), so one run of `postern config check` shows them all. */
static int parse_entries(struct passwd_file *pf, const char *text, size_t text_len,
			 struct buf *errors)
{
	size_t pos = 0, cap = 0;
	int line_no = 0, ret = 0;
	struct line line;

	while (next_line(text, text_len, &pos, &line)) {
		line_no++;
		if (line_is_comment(&line))
			continue;
		const char *colon = memchr(line.start, ':', line.len);
		if (colon == NULL) {
			buf_printf(errors, "%s:%d: missing ':' after the user name\n", pf->path, line_no);
			ret = -1;
			continue;
		}
		if (colon == line.start) {
			buf_printf(errors, "%s:%d: empty user name\n", pf->path, line_no);
			ret = -1;
			continue;
		}
		char *user = xstrndup(line.start, (size_t)(colon - line.start));
		if (strlen(user) != (size_t)(colon - line.start) || !passwd_user_name_valid(user)) {
			buf_printf(errors, "%s:%d: invalid user name\n", pf->path, line_no);
			free(user);
			ret = -1;
			continue;
		}
		const char *pw = colon + 1;
		const char *end = line.start + line.len;
		const char *colon2 = memchr(pw, ':', (size_t)(end - pw));
		if (pf->count == cap) {
			cap = cap ? cap * 2 : 16;
			pf->entries = xrealloc(pf->entries, cap * sizeof(*pf->entries));
		}
		struct passwd_entry *e = &pf->entries[pf->count++];
		e->user = user;
		e->password = xstrndup(pw, (size_t)((colon2 != NULL ? colon2 : end) - pw));
		e->rest = colon2 != NULL ? xstrndup(colon2 + 1, (size_t)(end - colon2 - 1)) : NULL;
		e->line = line_no;
	}
	if (pf->count > 1)
		qsort(pf->entries, pf->count, sizeof(*pf->entries), entry_cmp);
	for (size_t i = 1; i < pf->count; i++) {
		size_t first = i - 1;
		while (i < pf->count && strcmp(pf->entries[i].user, pf->entries[first].user) == 0) {
			buf_printf(errors, "%s:%d: duplicate user (first on line %d)\n",
				   pf->path, pf->entries[i].line, pf->entries[first].line);
			ret = -1;
			i++;
		}
	}
	return ret;
}

static void report_errno(struct buf *errors, const char *path, int err)
{
	buf_printf(errors, "%s: %s\n", path, strerror(err));
}

int passwd_file_load(struct passwd_file *pf, const char *path, struct buf *errors)
{
	struct buf text = BUF_INIT;
	struct stat st;

	memset(pf, 0, sizeof(*pf));
	pf->path = xstrdup(path);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		report_errno(errors, path, errno);
		return -1;
	}
	if (fstat(fd, &st) < 0 || read_all(fd, &text) < 0) {
		report_errno(errors, path, errno);
		close(fd);
		buf_free(&text);
		return -1;
	}
	close(fd);
	pf->dev = st.st_dev;
	pf->ino = st.st_ino;
	pf->size = st.st_size;
	pf->mtime = st.st_mtim;
	int ret = parse_entries(pf, text.data != NULL ? text.data : "", text.len, errors);
	buf_free(&text);
	if (ret < 0) {
		entries_free(pf->entries, pf->count);
		pf->entries = NULL;
		pf->count = 0;
	}
	return ret;
}

int passwd_file_refresh(struct passwd_file *pf, struct buf *errors)
{
	struct stat st;

	if (stat(pf->path, &st) < 0) {
		report_errno(errors, pf->path, errno);
		return -1;
	}
	/* A rename gives a new inode; an edit in place changes size or mtime
	 * (an edit within the same mtime tick and size is missed). */
	if (st.st_dev == pf->dev && st.st_ino == pf->ino && st.st_size == pf->size &&
	    st.st_mtim.tv_sec == pf->mtime.tv_sec && st.st_mtim.tv_nsec == pf->mtime.tv_nsec)
		return 0;

	struct passwd_file fresh;
	if (passwd_file_load(&fresh, pf->path, errors) < 0) {
		passwd_file_free(&fresh);
		return -1;
	}
	passwd_file_free(pf);
	*pf = fresh;
	return 1;
}

const struct passwd_entry *passwd_file_find(const struct passwd_file *pf, const char *user)
{
	size_t lo = 0, hi = pf->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(user, pf->entries[mid].user);
		if (c == 0)
			return &pf->entries[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

void passwd_file_free(struct passwd_file *pf)
{
	entries_free(pf->entries, pf->count);
	free(pf->path);
	memset(pf, 0, sizeof(*pf));
}

/* --- Editing --- */

/* The line's user field equals user. Comments and lines without ':' never
 * match, so they pass through an edit untouched. */
static bool line_is_user(const struct line *line, const char *user)
{
	if (line_is_comment(line))
		return false;
	const char *colon = memchr(line->start, ':', line->len);
	size_t len = strlen(user);
	return colon != NULL && (size_t)(colon - line->start) == len &&
	       memcmp(line->start, user, len) == 0;
}

/* Writes text to a new file beside path and renames it over path: readers
 * see the old file or the new one, never a mix, and after the directory
 * fsync the new one survives a crash. */
static int replace_file(const char *path, const struct buf *text, const struct stat *old_st,
			char **error_r)
{
	char *tmp = xasprintf("%s.XXXXXX", path);
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash == NULL) {
		free(dir);
		dir = xstrdup(".");
	} else {
		slash[slash == dir ? 1 : 0] = '\0';
	}
	int ret = -1, dfd = -1;
	int fd = mkstemp(tmp);
	if (fd < 0) {
		*error_r = xasprintf("cannot create a temporary file beside %s: %s", path, strerror(errno));
		goto out;
	}
	mode_t mode = old_st != NULL ? old_st->st_mode & 07777 : PASSWD_FILE_NEW_MODE;
	if (fchmod(fd, mode) < 0) {
		*error_r = xasprintf("%s: chmod: %s", tmp, strerror(errno));
		goto fail;
	}
	/* Keep the owner, above all the group the server reads the file as:
	 * root editing a root:postern 0640 file must not make it root:root. */
	if (old_st != NULL && (old_st->st_uid != geteuid() || old_st->st_gid != getegid()) &&
	    fchown(fd, old_st->st_uid, old_st->st_gid) < 0) {
		*error_r = xasprintf("%s: cannot keep owner %u:%u: %s", path,
				     (unsigned)old_st->st_uid, (unsigned)old_st->st_gid, strerror(errno));
		goto fail;
	}
	for (size_t off = 0; off < text->len;) {
		ssize_t n = write(fd, text->data + off, text->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = xasprintf("%s: write: %s", tmp, strerror(errno));
			goto fail;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0) {
		*error_r = xasprintf("%s: fsync: %s", tmp, strerror(errno));
		goto fail;
	}
	int close_ret = close(fd);
	fd = -1;
	if (close_ret < 0) {
		*error_r = xasprintf("%s: close: %s", tmp, strerror(errno));
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		*error_r = xasprintf("rename %s to %s: %s", tmp, path, strerror(errno));
		goto fail;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		/* The new file is in place; only its durability is in doubt. */
		*error_r = xasprintf("%s: fsync: %s", dir, strerror(errno));
		goto out;
	}
	ret = 0;
	goto out;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out:
	if (dfd >= 0)
		close(dfd);
	free(tmp);
	free(dir);
	return ret;
}

enum edit_op { EDIT_SET, EDIT_DELETE };

static int edit_file(const char *path, const char *user, const char *password_hash,
		     enum edit_op op, bool must_exist, bool must_not_exist, char **error_r)
{
	*error_r = NULL;
	if (!passwd_user_name_valid(user)) {
		*error_r = xasprintf("invalid user name");
		return -1;
	}
	if (op == EDIT_SET) {
		for (const char *p = password_hash; *p != '\0'; p++) {
			if (*p == ':' || (unsigned char)*p < 0x20 || *p == 0x7f) {
				*error_r = xasprintf("password hash contains ':' or a control character");
				return -1;
			}
		}
	}

	/* The lock file is never removed: unlinking it would let two editors
	 * hold locks on different inodes. */
	char *lock_path = xasprintf("%s.lock", path);
	struct buf old = BUF_INIT, text = BUF_INIT;
	struct stat st;
	bool exists = true;
	int ret = -1, fd = -1;
	int lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock_fd < 0) {
		*error_r = xasprintf("%s: %s", lock_path, strerror(errno));
		goto out;
	}
	while (flock(lock_fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			*error_r = xasprintf("%s: flock: %s", lock_path, strerror(errno));
			goto out;
		}
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		exists = false;
	} else if (fd < 0 || fstat(fd, &st) < 0 || read_all(fd, &old) < 0) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		goto out;
	}

	size_t pos = 0;
	struct line line;
	bool found = false;
	while (next_line(old.data, old.len, &pos, &line)) {
		if (!line_is_user(&line, user)) {
			buf_append(&text, line.start, line.len);
		} else {
			found = true;
			if (op == EDIT_DELETE)
				continue;
			/* Replace the password field only; uid, home and
			 * extra fields stay as they were. */
			const char *pw = line.start + strlen(user) + 1;
			const char *end = line.start + line.len;
			const char *colon2 = memchr(pw, ':', (size_t)(end - pw));
			buf_printf(&text, "%s:%s", user, password_hash);
			if (colon2 != NULL)
				buf_append(&text, colon2, (size_t)(end - colon2));
		}
		buf_append_str(&text, line.crlf ? "\r\n" : "\n");
	}
	if (found && must_not_exist) {
		*error_r = xasprintf("user %s already exists", user);
		goto out;
	}
	if (!found && (must_exist || op == EDIT_DELETE)) {
		*error_r = xasprintf("no such user %s", user);
		goto out;
	}
	if (!found)
		buf_printf(&text, "%s:%s\n", user, password_hash);
	ret = replace_file(path, &text, exists ? &st : NULL, error_r);
out:
	if (fd >= 0)
		close(fd);
	/* Closing the descriptor releases the lock. */
	if (lock_fd >= 0)
		close(lock_fd);
	buf_free(&old);
	buf_free(&text);
	free(lock_path);
	return ret;
}

int passwd_file_set(const char *path, const char *user, const char *password_hash,
		    bool must_exist, bool must_not_exist, char **error_r)
{
	return edit_file(path, user, password_hash, EDIT_SET, must_exist, must_not_exist, error_r);
}

int passwd_file_delete(const char *path, const char *user, char **error_r)
{
	return edit_file(path, user, NULL, EDIT_DELETE, true, false, error_r);
}
