#include "store/blob.h"
#include "core/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

struct blob_writer {
	char *root;
	char tmp_path[PATH_MAX];
	int fd;				/* -1 once closed */
	EVP_MD_CTX *md;
	uint64_t size;
	char hash[BLOB_HASH_HEX + 1];
	bool finished;
	bool placed;
};

static int fail(const char **what_r, const char *what)
{
	*what_r = what;
	return -1;
}

static int make_dir(const char *path, bool *created_r)
{
	if (created_r != NULL)
		*created_r = false;
	if (mkdir(path, 0700) == 0) {
		if (created_r != NULL)
			*created_r = true;
		return 0;
	}
	return errno == EEXIST ? 0 : -1;
}

static int sync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fsync(fd) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return close(fd);
}

int blob_root_init(const char *root, const char **what_r)
{
	char path[PATH_MAX];
	if (make_dir(root, NULL) < 0)
		return fail(what_r, "mkdir blobs");
	if (snprintf(path, sizeof(path), "%s/tmp", root) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return fail(what_r, "blob path");
	}
	if (make_dir(path, NULL) < 0)
		return fail(what_r, "mkdir blobs/tmp");
	return 0;
}

static bool is_hex_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool blob_hash_valid(const char *hash)
{
	size_t i;
	for (i = 0; hash[i] != '\0'; i++) {
		if (!is_hex_char(hash[i]))
			return false;
	}
	return i == BLOB_HASH_HEX;
}

int blob_path(const char *root, const char *hash, char *path, size_t size)
{
	if (!blob_hash_valid(hash))
		return -1;
	int n = snprintf(path, size, "%s/%.2s/%s", root, hash, hash + 2);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int blob_writer_begin(const char *root, struct blob_writer **w_r, const char **what_r)
{
	struct blob_writer *w = xcalloc(1, sizeof(*w));
	w->fd = -1;
	if (snprintf(w->tmp_path, sizeof(w->tmp_path), "%s/tmp/XXXXXX", root) >=
	    (int)sizeof(w->tmp_path)) {
		free(w);
		errno = ENAMETOOLONG;
		return fail(what_r, "blob temp path");
	}
	w->md = EVP_MD_CTX_new();
	if (w->md == NULL || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(w->md);
		free(w);
		errno = ENOMEM;
		return fail(what_r, "sha256 init");
	}
	w->fd = mkostemp(w->tmp_path, O_CLOEXEC);
	if (w->fd < 0) {
		int saved = errno;
		EVP_MD_CTX_free(w->md);
		free(w);
		errno = saved;
		return fail(what_r, "create blob temp file");
	}
	w->root = xstrdup(root);
	*w_r = w;
	return 0;
}

int blob_writer_write(struct blob_writer *w, const void *data, size_t len, const char **what_r)
{
	if (w->finished) {
		errno = EINVAL;
		return fail(what_r, "write to finished blob");
	}
	if (len > 0 && EVP_DigestUpdate(w->md, data, len) != 1) {
		errno = EIO;
		return fail(what_r, "sha256 update");
	}
	const char *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t n = write(w->fd, p, left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail(what_r, "write blob temp file");
		}
		p += n;
		left -= (size_t)n;
	}
	w->size += len;
	return 0;
}

int blob_writer_finish(struct blob_writer *w, bool sync, const char **what_r)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	static const char hex[] = "0123456789abcdef";

	if (w->finished)
		return 0;
	/* fdatasync covers the file size too, which is all rename needs. */
	if (sync && fdatasync(w->fd) < 0)
		return fail(what_r, "fdatasync blob temp file");
	int rc = close(w->fd);
	w->fd = -1;
	if (rc < 0)
		return fail(what_r, "close blob temp file");
	if (EVP_DigestFinal_ex(w->md, digest, &digest_len) != 1 || digest_len * 2 != BLOB_HASH_HEX) {
		errno = EIO;
		return fail(what_r, "sha256 final");
	}
	for (unsigned i = 0; i < digest_len; i++) {
		w->hash[i * 2] = hex[digest[i] >> 4];
		w->hash[i * 2 + 1] = hex[digest[i] & 15];
	}
	w->hash[BLOB_HASH_HEX] = '\0';
	w->finished = true;
	return 0;
}

bool blob_writer_finished(const struct blob_writer *w)
{
	return w->finished;
}

bool blob_writer_placed(const struct blob_writer *w)
{
	return w->placed;
}

const char *blob_writer_hash(const struct blob_writer *w)
{
	return w->finished ? w->hash : NULL;
}

uint64_t blob_writer_size(const struct blob_writer *w)
{
	return w->size;
}

static unsigned hex_value(char c)
{
	return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'a' + 10);
}

int blob_writer_place(struct blob_writer *w, unsigned *dir_index_r, const char **what_r)
{
	char dir[PATH_MAX], path[PATH_MAX];
	bool created;

	if (!w->finished || w->placed) {
		errno = EINVAL;
		return fail(what_r, "place unfinished blob");
	}
	if (snprintf(dir, sizeof(dir), "%s/%.2s", w->root, w->hash) >= (int)sizeof(dir) ||
	    blob_path(w->root, w->hash, path, sizeof(path)) < 0) {
		errno = ENAMETOOLONG;
		return fail(what_r, "blob path");
	}
	if (make_dir(dir, &created) < 0)
		return fail(what_r, "mkdir blob directory");
	if (created && sync_path(w->root) < 0)
		return fail(what_r, "fsync blob root");
	if (rename(w->tmp_path, path) < 0)
		return fail(what_r, "rename blob into place");
	w->placed = true;
	*dir_index_r = hex_value(w->hash[0]) * 16 + hex_value(w->hash[1]);
	return 0;
}

int blob_writer_open_read(const struct blob_writer *w, int *fd_r, const char **what_r)
{
	if (!w->finished || w->placed) {
		errno = EINVAL;
		return fail(what_r, "read unfinished or placed blob");
	}
	int fd = open(w->tmp_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(what_r, "open blob temp file");
	*fd_r = fd;
	return 0;
}

int blob_writer_discard(struct blob_writer *w, const char **what_r)
{
	if (w->placed)
		return 0;
	if (unlink(w->tmp_path) < 0 && errno != ENOENT)
		return fail(what_r, "unlink blob temp file");
	w->placed = true;
	return 0;
}

void blob_writer_free(struct blob_writer **wp)
{
	struct blob_writer *w = *wp;
	if (w == NULL)
		return;
	*wp = NULL;
	if (w->fd >= 0)
		(void)close(w->fd);
	/* Best effort: a temp file left here is removed by blob_tmp_clean. */
	if (!w->placed)
		(void)unlink(w->tmp_path);
	EVP_MD_CTX_free(w->md);
	free(w->root);
	free(w);
}

int blob_fs_sync(const char *root, const char **what_r)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fail(what_r, "open blobs");
	if (syncfs(fd) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return fail(what_r, "syncfs blobs");
	}
	if (close(fd) < 0)
		return fail(what_r, "close blobs");
	return 0;
}

int blob_dir_sync(const char *root, unsigned dir_index, const char **what_r)
{
	char dir[PATH_MAX];
	if (snprintf(dir, sizeof(dir), "%s/%02x", root, dir_index & 0xff) >= (int)sizeof(dir)) {
		errno = ENAMETOOLONG;
		return fail(what_r, "blob path");
	}
	if (sync_path(dir) < 0)
		return fail(what_r, "fsync blob directory");
	return 0;
}

int blob_open(const char *root, const char *hash, int *fd_r, size_t *size_r, const char **what_r)
{
	char path[PATH_MAX];
	struct stat sb;

	if (blob_path(root, hash, path, sizeof(path)) < 0) {
		errno = EINVAL;
		return fail(what_r, "blob path");
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(what_r, "open blob");
	if (fstat(fd, &sb) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return fail(what_r, "fstat blob");
	}
	*fd_r = fd;
	*size_r = (size_t)sb.st_size;
	return 0;
}

int blob_unlink(const char *root, const char *hash, const char **what_r)
{
	char path[PATH_MAX];
	if (blob_path(root, hash, path, sizeof(path)) < 0) {
		errno = EINVAL;
		return fail(what_r, "blob path");
	}
	if (unlink(path) < 0 && errno != ENOENT)
		return fail(what_r, "unlink blob");
	return 0;
}

static bool is_hex2(const char *name)
{
	return is_hex_char(name[0]) && is_hex_char(name[1]) && name[2] == '\0';
}

static int visit_dir(const char *root, const char *sub, blob_visit_fn *fn, void *context,
		     unsigned *removed, const char **what_r)
{
	char dir[PATH_MAX], hash[BLOB_HASH_HEX + 1];
	if (snprintf(dir, sizeof(dir), "%s/%s", root, sub) >= (int)sizeof(dir)) {
		errno = ENAMETOOLONG;
		return fail(what_r, "blob path");
	}
	DIR *d = opendir(dir);
	if (d == NULL)
		return fail(what_r, "opendir blob directory");
	int dfd = dirfd(d);
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (de == NULL) {
			if (errno != 0) {
				int saved = errno;
				closedir(d);
				errno = saved;
				return fail(what_r, "readdir blob directory");
			}
			break;
		}
		if (strlen(de->d_name) != BLOB_HASH_HEX - 2)
			continue;
		memcpy(hash, sub, 2);
		memcpy(hash + 2, de->d_name, BLOB_HASH_HEX - 2 + 1);
		if (!blob_hash_valid(hash))
			continue;
		if (fn(hash, context)) {
			if (unlinkat(dfd, de->d_name, 0) < 0 && errno != ENOENT) {
				int saved = errno;
				closedir(d);
				errno = saved;
				return fail(what_r, "unlink orphan blob");
			}
			(*removed)++;
		}
	}
	if (closedir(d) < 0)
		return fail(what_r, "closedir blob directory");
	return 0;
}

int blob_foreach(const char *root, blob_visit_fn *fn, void *context, unsigned *removed_r,
		 const char **what_r)
{
	unsigned removed = 0;
	DIR *d = opendir(root);
	if (d == NULL)
		return fail(what_r, "opendir blobs");
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (de == NULL) {
			if (errno != 0) {
				int saved = errno;
				closedir(d);
				errno = saved;
				return fail(what_r, "readdir blobs");
			}
			break;
		}
		if (!is_hex2(de->d_name))
			continue;
		if (visit_dir(root, de->d_name, fn, context, &removed, what_r) < 0) {
			int saved = errno;
			closedir(d);
			errno = saved;
			return -1;
		}
	}
	if (closedir(d) < 0)
		return fail(what_r, "closedir blobs");
	if (removed_r != NULL)
		*removed_r = removed;
	return 0;
}

int blob_tmp_clean(const char *root, unsigned max_age, unsigned *removed_r, const char **what_r)
{
	char dir[PATH_MAX];
	unsigned removed = 0;
	time_t now = time(NULL);

	if (snprintf(dir, sizeof(dir), "%s/tmp", root) >= (int)sizeof(dir)) {
		errno = ENAMETOOLONG;
		return fail(what_r, "blob path");
	}
	DIR *d = opendir(dir);
	if (d == NULL)
		return fail(what_r, "opendir blobs/tmp");
	int dfd = dirfd(d);
	for (;;) {
		struct stat sb;
		errno = 0;
		struct dirent *de = readdir(d);
		if (de == NULL) {
			if (errno != 0) {
				int saved = errno;
				closedir(d);
				errno = saved;
				return fail(what_r, "readdir blobs/tmp");
			}
			break;
		}
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;	/* finished by its writer meanwhile */
			int saved = errno;
			closedir(d);
			errno = saved;
			return fail(what_r, "stat blob temp file");
		}
		if (!S_ISREG(sb.st_mode) || now - sb.st_mtime <= (time_t)max_age)
			continue;
		if (unlinkat(dfd, de->d_name, 0) < 0 && errno != ENOENT) {
			int saved = errno;
			closedir(d);
			errno = saved;
			return fail(what_r, "unlink old blob temp file");
		}
		removed++;
	}
	if (closedir(d) < 0)
		return fail(what_r, "closedir blobs/tmp");
	if (removed_r != NULL)
		*removed_r = removed;
	return 0;
}
