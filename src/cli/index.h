/* `postern index [-c FILE] USER...`: puts every message of each USER that
 * the full-text index lacks into it, now, and returns once none is pending
 * (what the background indexer does, synchronously). Safe while the server
 * runs: indexing is idempotent (store.h "Full-text index"). For each user
 * it prints the messages indexed, the time and the rate on stdout.
 *
 * Started as root, it switches to the configured `user` first, as
 * `postern deliver` does. Exit codes (<sysexits.h>): 0 done, EX_USAGE bad
 * arguments, EX_NOUSER a name not in the password file, EX_IOERR a store
 * that cannot be opened or indexed, EX_CONFIG an unusable configuration or
 * password file. Users after a failing one are still indexed. */
#ifndef POSTERN_CLI_INDEX_H
#define POSTERN_CLI_INDEX_H

/* argv[0] is "index". */
int cli_index(int argc, char **argv, const char *default_config);

#endif
