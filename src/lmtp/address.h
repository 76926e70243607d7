/* Envelope addresses of LMTP (RFC 5321 4.1.2): the path argument of MAIL
 * FROM and RCPT TO, its ESMTP parameters, and the parts of a recipient
 * that choose a user and a folder. Syntax only: nothing here knows users. */
#ifndef POSTERN_LMTP_ADDRESS_H
#define POSTERN_LMTP_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

/* The character that separates a user from the folder in the local part
 * ("alice+lists@example.org" is alice, folder "lists"). */
#define LMTP_DETAIL_DELIMITER '+'

/* Parses "<path> [params]" as it follows "MAIL FROM:" or "RCPT TO:". A space
 * before the path and a path without angle brackets are tolerated (common
 * client mistakes); a source route ("<@a,@b:user@d>", RFC 5321 4.1.1.3 and
 * appendix C) is dropped. A quoted local part may hold '>' and spaces.
 * Control characters and paths longer than LIMIT_LMTP_PATH are refused.
 * Returns 0 with *path_r (malloc'd, caller frees; "" for "<>") and
 * *params_r pointing into args at the parameters (maybe ""), or -1 with a
 * static reason in *error_r. */
int lmtp_parse_path(const char *args, char **path_r, const char **params_r, const char **error_r);

/* The parts of a recipient address, each malloc'd. */
struct lmtp_address {
	char *user;		/* local part up to the delimiter */
	char *detail;		/* after the delimiter, NULL when there is none */
	char *domain;		/* after the last '@', NULL when there is none */
};
/* Splits path ("user", "user@domain", "user+detail@domain"). Returns -1
 * when the user part is empty. */
int lmtp_address_split(const char *path, struct lmtp_address *addr_r);
void lmtp_address_free(struct lmtp_address *addr);

/* Iterates over "KEY[=VALUE]" parameters separated by spaces: returns
 * false at the end. key and value are copied into the caller's arrays
 * (truncated to their sizes); value is "" when absent. */
bool lmtp_next_param(const char **params, char *key, size_t key_size, char *value, size_t value_size);

#endif
