/* `postern config check [-c FILE]`: loads the configuration (every syntax
 * problem as FILE:LINE) and then checks what it points to, each problem
 * with the FILE:LINE of the key behind it:
 *  - tls_cert/tls_key and every [certificate]: readable, PEM, key matching,
 *    within their dates (tls_server_new), and, as root, readable by `user`
 *    too, since a reload runs as that account;
 *  - data_dir: exists and is writable by the account the server runs as,
 *    or its parent exists so the server can create it;
 *  - passwd_file: every line parses (passwd_file_load), readable by `user`;
 *  - `user` exists, when run as root (the server drops privileges to it);
 *  - each TCP listener's address can be bound now (it is bound and closed
 *    again); a port held by a running postern is noted, not counted.
 * Problems go to stderr; "FILE: ok" to stdout when there is none.
 *
 * argv[0] is "config". Returns the exit code: 0 valid, 1 problems found,
 * 2 usage error. */
#ifndef POSTERN_CLI_CONFIG_CHECK_H
#define POSTERN_CLI_CONFIG_CHECK_H

int cli_config(int argc, char **argv, const char *default_path);

#endif
