/* What postern computes once per message when it is stored (APPEND, LMTP,
 * deliver, import) and caches with it: ENVELOPE, BODYSTRUCTURE and BODY as
 * FETCH prints them, a few facts FETCH needs without reading the body, and
 * the text SEARCH looks up in the store's search index. */
#ifndef POSTERN_IMAPD_MESSAGE_META_H
#define POSTERN_IMAPD_MESSAGE_META_H

#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The opaque `extra` bytes of store_message_meta, decoded. */
struct message_extra {
	uint64_t imap_size;	/* RFC822.SIZE: every bare LF counted as CRLF */
	bool bare_lf;		/* the stored bytes have a LF without CR: FETCH
				   converts them to CRLF as it sends (RFC 9051 2.2) */
};

/* Parses data and fills meta (strings malloc'd; free with
 * store_message_meta_free). Never fails. */
void message_meta_compute(const char *data, size_t len, struct store_message_meta *meta_r);
/* Returns 0, or -1 when extra is missing or from an unknown version. */
int message_extra_decode(const void *extra, size_t len, struct message_extra *out);

#endif
