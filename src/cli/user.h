/* `postern user add|passwd|del|list`: editing the password file.
 *
 * argv[0] is the subcommand ("add", "passwd", "del", "list"), argv[1] the
 * user name where one is needed. A new password is read from the terminal
 * without echo, twice, when stdin is a terminal, or else as one line from
 * stdin (the trailing newline stripped) so scripts can pipe it in; never
 * from the command line, where `ps` would show it. New passwords are
 * stored as ARGON2ID. Messages go to stderr, `list` prints one name a line
 * to stdout, in name order.
 *
 * Returns the exit code: 0 done, 1 failed (the reason on stderr), 2 usage. */
#ifndef POSTERN_CLI_USER_H
#define POSTERN_CLI_USER_H

int cli_user(int argc, char **argv, const char *passwd_path);

#endif
