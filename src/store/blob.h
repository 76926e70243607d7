/* Body files: immutable, named by the SHA-256 of their content, under one
 * root directory:
 *	ROOT/ab/cdef...		the file whose hash is abcdef... (64 hex digits)
 *	ROOT/tmp/XXXXXX		a file being written
 * The module knows files only; which hashes are referenced is the caller's
 * (the index database) business.
 *
 * Functions return 0 or -1; on -1 errno tells why and *what_r (a static
 * string) names the operation that failed, for the caller's error text. */
#ifndef POSTERN_STORE_BLOB_H
#define POSTERN_STORE_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLOB_HASH_HEX 64
/* Temp files older than this are leftovers of a crash. */
#define BLOB_TMP_MAX_AGE_S 3600

struct blob_writer;

/* Creates ROOT/tmp/ and ROOT if missing. */
int blob_root_init(const char *root, const char **what_r);

/* Starts a body in ROOT/tmp/. */
int blob_writer_begin(const char *root, struct blob_writer **w_r, const char **what_r);
int blob_writer_write(struct blob_writer *w, const void *data, size_t len, const char **what_r);
/* Closes the temp file and computes the hash; with sync, fdatasyncs it
 * first. Without, the caller must make the data durable otherwise
 * (blob_fs_sync) before relying on it. */
int blob_writer_finish(struct blob_writer *w, bool sync, const char **what_r);
bool blob_writer_finished(const struct blob_writer *w);
/* True once placed: the temp file is gone (renamed or dropped). */
bool blob_writer_placed(const struct blob_writer *w);
const char *blob_writer_hash(const struct blob_writer *w);
uint64_t blob_writer_size(const struct blob_writer *w);
/* Renames the finished temp file to its final name (replacing a leftover
 * file of the same content) and returns the index (0..255) of the directory
 * that must be fsynced before the rename counts as durable. A newly made
 * directory is fsynced into ROOT here. */
int blob_writer_place(struct blob_writer *w, unsigned *dir_index_r, const char **what_r);
/* Opens the finished, not yet placed temp file read-only (O_CLOEXEC); the
 * fd is the caller's and stays valid after the file is placed or dropped. */
int blob_writer_open_read(const struct blob_writer *w, int *fd_r, const char **what_r);
/* The body is stored already: drop the temp file. */
int blob_writer_discard(struct blob_writer *w, const char **what_r);
/* Removes an unplaced temp file and frees; accepts NULL. */
void blob_writer_free(struct blob_writer **w);

/* syncfs(2) on ROOT's filesystem: every written file and rename there is
 * durable afterwards. One device flush for a whole batch, where per-file
 * fsyncs would cost one each. */
int blob_fs_sync(const char *root, const char **what_r);
/* fsyncs ROOT/xx for the directory index given by blob_writer_place. */
int blob_dir_sync(const char *root, unsigned dir_index, const char **what_r);

/* Writes ROOT/ab/cdef... into path; -1 if it does not fit or hash is bad. */
int blob_path(const char *root, const char *hash, char *path, size_t size);
bool blob_hash_valid(const char *hash);
int blob_open(const char *root, const char *hash, int *fd_r, size_t *size_r, const char **what_r);
/* Removes the file; a missing file is not an error. */
int blob_unlink(const char *root, const char *hash, const char **what_r);

/* Calls fn for every body file; fn returns true to remove the file. */
typedef bool blob_visit_fn(const char *hash, void *context);
int blob_foreach(const char *root, blob_visit_fn *fn, void *context, unsigned *removed_r,
		 const char **what_r);
/* Removes temp files last modified more than max_age seconds ago. */
int blob_tmp_clean(const char *root, unsigned max_age, unsigned *removed_r, const char **what_r);

#endif
