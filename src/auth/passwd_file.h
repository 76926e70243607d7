/* The password file, in Dovecot's passwd-file format:
 *	user:{SCHEME}hash:uid:gid:gecos:home:shell:extra_fields
 * Only user and password are required; the other fields are kept as they
 * are so that a file shared with Dovecot survives editing by postern.
 * Blank lines and lines starting with '#' are comments. */
#ifndef POSTERN_AUTH_PASSWD_FILE_H
#define POSTERN_AUTH_PASSWD_FILE_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

struct passwd_entry {
	char *user;
	char *password;		/* "{SCHEME}data" as stored */
	char *rest;		/* everything after the second ':' verbatim, or NULL */
	int line;		/* line number in the file */
};

struct passwd_file {
	char *path;
	struct passwd_entry *entries;
	size_t count;
	/* What was read, to notice a change on disk cheaply. */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

/* Reads path into pf (which is overwritten: free a loaded one first).
 * Returns 0, or -1 with "FILE:LINE: problem" lines appended to errors (a
 * line without ':', with an empty or invalid user name; a duplicated user),
 * every bad line reported; on -1 pf holds no entries, and
 * passwd_file_free(pf) is needed either way. A missing file gives -1 and
 * "FILE: No such file or directory". A "\r" before "\n" is ignored.
 * Entries are sorted by user name (line keeps their place in the file). */
int passwd_file_load(struct passwd_file *pf, const char *path, struct buf *errors);
/* Reloads when the file changed on disk since it was read; returns 1 when
 * reloaded, 0 when unchanged, -1 on error (the old contents are kept). */
int passwd_file_refresh(struct passwd_file *pf, struct buf *errors);
const struct passwd_entry *passwd_file_find(const struct passwd_file *pf, const char *user);
void passwd_file_free(struct passwd_file *pf);

/* Editing, for `postern user`. Each rewrites the file atomically (write a
 * temporary file in the same directory with the old file's mode, fsync,
 * rename, fsync the directory) under an exclusive lock (a lock file beside
 * it) so concurrent edits never lose one another. Return 0 or -1 with a
 * message in *error_r (malloc'd, the caller frees): "invalid user name",
 * "user NAME already exists", "no such user NAME", or a system error.
 * Set replaces only the password field of the user's line(s) and appends
 * "user:hash" when there is none; every other line is kept verbatim. A new
 * file gets mode 0640; an existing one keeps its mode and owner. The lock
 * file PATH.lock is left in place. */
int passwd_file_set(const char *path, const char *user, const char *password_hash,
		    bool must_exist, bool must_not_exist, char **error_r);
int passwd_file_delete(const char *path, const char *user, char **error_r);

/* A valid user name: 1..LIMIT_USER_LEN bytes, no ':', no control characters,
 * no whitespace, and not "." or ".." or containing '/' (user names become
 * directory names under data_dir), and not starting with '#' (the line
 * would read as a comment). */
bool passwd_user_name_valid(const char *user);

#endif
