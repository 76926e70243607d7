/* Flag lists of APPEND and STORE (RFC 9051 6.3.12, 6.4.6). */
#ifndef POSTERN_IMAPD_FLAGS_H
#define POSTERN_IMAPD_FLAGS_H

#include "imap/parser.h"

#include <stddef.h>
#include <stdint.h>

struct flag_list {
	uint32_t flags;			/* enum store_flag bits */
	const char **keywords;		/* point into the command's args */
	size_t keyword_count;
};

/* Parses args[0..count) (the members of a parenthesised list, or the bare
 * atoms STORE also accepts). Returns 0, or -1 with a static message:
 * \Recent and unknown system flags can't be set, keywords must be atoms. */
int flags_parse(const struct imap_arg *args, size_t count, struct flag_list *out, const char **error_r);
void flag_list_free(struct flag_list *list);

#endif
