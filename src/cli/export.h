/* `postern export maildir USER DIR`: a user's mail as a Maildir++ tree that
 * Dovecot reads with its UIDs, UIDVALIDITYs, flags and keywords intact:
 * DIR/{cur,new,tmp} is INBOX, DIR/.Work.Projects/ is "Work/Projects" (names
 * in modified UTF-7), each folder with dovecot-uidlist (version 3) and
 * dovecot-keywords, flags in the file names, each file's mtime its internal
 * date; subscriptions in Dovecot's "subscriptions" file.
 *
 * DIR may exist but must not already be a Maildir (no DIR/cur): an export
 * never mixes with other mail. Reads the store through its own handle, so
 * the server may run meanwhile (each mailbox is one snapshot).
 *
 * Limits of the format, reported on stderr: keywords beyond the 26th of a
 * mailbox (Maildir has letters a-z only) are not exported; a mailbox whose
 * name holds '.' (the Maildir++ separator) is exported with '_' in its
 * place.
 *
 * argv[0] is "maildir". Returns the exit code: 0 done, 1 failed (reason on
 * stderr), 2 usage. */
#ifndef POSTERN_CLI_EXPORT_H
#define POSTERN_CLI_EXPORT_H

int cli_export(int argc, char **argv, const char *data_dir);

#endif
