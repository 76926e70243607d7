/* `postern doctor HOST [--port N[/tls|/starttls] ...] [--cafile F]
 *                      [--user U] [--json] [--timeout S]`
 *
 * Checks an IMAP server from the outside, as an admin would with telnet,
 * `openssl s_client` and a TLS scanner: for each port (143 and 993 unless
 * --port is given) whether it connects and how fast, the greeting, the
 * capabilities before and after TLS, STARTTLS, the TLS versions accepted
 * (each probed alone on a fresh connection), the cipher, the certificate
 * chain, its names and days to expiry, whether a password can be sent
 * before TLS, and with --user a login over TLS (the password is one line
 * on stdin, never an argument). It speaks only what RFC 3501 guarantees,
 * so it works against any IMAP server.
 *
 * One line per check with OK, INFO, WARN or FAIL and a hint for each
 * problem, or with --json one JSON object. Every network step has the
 * timeout (default 10 s), so a silent port never hangs it.
 *
 * Returns the exit code: 0 nothing is WARN or FAIL, 1 problems found,
 * 2 usage error. */
#ifndef POSTERN_CLI_DOCTOR_H
#define POSTERN_CLI_DOCTOR_H

/* argv[0] is "doctor". */
int cli_doctor(int argc, char **argv);

#endif
