/* Maildir and Maildir++ as Dovecot and Courier write them, as far as
 * `postern import maildir` and `postern export maildir` need it. Pure format
 * code: no store, no messages read.
 *
 * The layout (Maildir++): DIR/{cur,new,tmp} is INBOX; DIR/.Work.Projects/
 * is the folder "Work/Projects", its name in modified UTF-7 (RFC 3501
 * 5.1.3) with '.' as the hierarchy separator. A message file is
 * "BASE:2,INFO"; INFO lists the flags as letters in ASCII order: D draft,
 * F flagged, P passed (no IMAP flag), R replied, S seen, T trashed; then
 * 'a'..'z' for keywords 0..25 of the folder's dovecot-keywords file. BASE
 * is unique in the folder and is what dovecot-uidlist (or Courier's
 * courierimapuiddb) names to give the file its UID.
 *
 * Functions returning int give 0 on success and -1 on failure unless said
 * otherwise. */
#ifndef POSTERN_CLI_MAILDIR_H
#define POSTERN_CLI_MAILDIR_H

#include "core/buf.h"

#include <stddef.h>
#include <stdint.h>

/* Keyword letters 'a'..'z': Dovecot's limit per Maildir folder. */
#define MAILDIR_MAX_KEYWORDS 26

/* Splits a message file name: *base_len_r is the length of BASE (the whole
 * name when it has no ":2," info), *flags_r the store flags (enum
 * store_flag), *keywords_r bit i for letter 'a' + i. Unknown letters and P
 * are ignored. Courier's "!2," variant of the separator is accepted. */
void maildir_name_parse(const char *name, size_t *base_len_r, uint32_t *flags_r,
			uint32_t *keywords_r);
/* Appends ":2," and the letters for flags and the keyword bits, in the
 * order Dovecot writes and expects them. */
void maildir_info_write(struct buf *out, uint32_t flags, uint32_t keywords);

/* ".Work.Projects" -> "Work/Projects" (UTF-8) appended to out. -1 when the
 * name does not start with '.', has an empty component or is not valid
 * modified UTF-7 (out is then left as it was). */
int maildir_folder_to_mailbox(const char *dirname, struct buf *out);
/* "Work/Projects" -> ".Work.Projects" appended to out. -1 when a component
 * holds a '.', which Maildir++ cannot express. */
int maildir_mailbox_to_folder(const char *name, struct buf *out);

struct maildir_uid_entry {
	uint32_t uid;
	char *base;		/* BASE of the file name, without ":2,..." */
};

/* A dovecot-uidlist (versions 1 and 3) or courierimapuiddb (same shape as
 * Dovecot's version 1). */
struct maildir_uidlist {
	uint32_t uidvalidity;
	uint32_t nextuid;
	struct maildir_uid_entry *entries;	/* sorted by base */
	size_t count;
};

/* Returns 1 when read, 0 when the file does not exist, -1 when it cannot be
 * read or is not in a known format (*error_r: malloc'd text to free). A
 * malformed record line is skipped, as Dovecot does. */
int maildir_uidlist_read(const char *path, struct maildir_uidlist *list_r, char **error_r);
/* The UID recorded for BASE (len bytes), or 0. */
uint32_t maildir_uidlist_find(const struct maildir_uidlist *list, const char *base, size_t len);
void maildir_uidlist_free(struct maildir_uidlist *list);

/* dovecot-keywords: "INDEX NAME" lines. names[i] gets a malloc'd name for
 * each index below MAILDIR_MAX_KEYWORDS found, NULL for the others.
 * Returns 1 read, 0 absent, -1 unreadable. */
int maildir_keywords_read(const char *path, char *names[MAILDIR_MAX_KEYWORDS]);
void maildir_keywords_free(char *names[MAILDIR_MAX_KEYWORDS]);

#endif
