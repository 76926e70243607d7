/* `postern deliver [-c FILE] [-m MAILBOX] USER < message`: the MDA for
 * Postfix's mailbox_command or a pipe transport, and Exim's pipe transport.
 *
 * Reads the message from stdin (bare LF becomes CRLF; a leading mbox
 * "From " line is dropped), and appends it to MAILBOX of USER, or to INBOX
 * when MAILBOX is missing (said on stderr). Started as root, it switches to
 * the configured `user` first, so the files it creates stay the server's;
 * otherwise it runs as whoever started it, who must be able to write
 * data_dir/users/USER.
 *
 * Returns the exit code, from <sysexits.h>: 0 delivered, EX_USAGE bad
 * arguments, EX_NOUSER no such user, EX_DATAERR unusable input (empty,
 * larger than max_literal_size), EX_CANTCREAT over quota, EX_TEMPFAIL the
 * store failed or cannot be written (the MTA keeps the message and
 * retries), EX_CONFIG the configuration or password file is unusable.
 * Postfix retries only EX_TEMPFAIL (docs/operations.md has the table).
 * Messages go to stderr, which the MTA puts into its log or bounce. */
#ifndef POSTERN_CLI_DELIVER_H
#define POSTERN_CLI_DELIVER_H

/* argv[0] is "deliver". default_config is read when -c is not given and it
 * exists; otherwise the built-in defaults apply. */
int cli_deliver(int argc, char **argv, const char *default_config);

#endif
