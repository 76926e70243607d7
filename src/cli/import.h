/* `postern import maildir DIR USER` and `postern import mbox FILE USER
 * [MAILBOX]`: moving a user's mail into postern's store.
 *
 * Maildir (and Maildir++ folders, as Dovecot and Courier keep them): every
 * folder becomes a mailbox ("Work.Projects" -> "Work/Projects", modified
 * UTF-7 decoded), flags and keywords come from the file names and
 * dovecot-keywords, the internal date from the file's mtime, and where a
 * dovecot-uidlist (or courierimapuiddb) exists, the folder keeps its
 * UIDVALIDITY, its UIDs and its next UID, so clients keep their caches.
 *
 * mbox: From_ separated (mboxrd unquoting, mboxo best effort), flags from
 * Status/X-Status, keywords from X-Keywords, internal date from the From_
 * line; these headers are dropped as Dovecot drops them.
 *
 * Running an import again adds nothing already imported: a message whose
 * UID exists is skipped, and without UIDs a body already in the mailbox as
 * often as it has been met so far in the source is skipped. An interrupted
 * import can therefore be run again. A counter on stderr shows progress
 * when it is a terminal; a summary line per mailbox goes to stdout.
 *
 * owner: the account the server runs as (the config's `user`); when run as
 * root the user's store is given to it afterwards, so the server can write.
 * argv[0] is "maildir" or "mbox". Returns the exit code: 0 done, 1 failed
 * (reason on stderr), 2 usage. */
#ifndef POSTERN_CLI_IMPORT_H
#define POSTERN_CLI_IMPORT_H

int cli_import(int argc, char **argv, const char *data_dir, const char *owner);

#endif
