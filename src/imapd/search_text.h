/* The text SEARCH compares (RFC 3501 6.4.4: case-insensitive substring),
 * built in one place for both users: the matcher (search_match.c), which
 * builds it from a message file, and the index writers: message_meta.c
 * (header fields, at delivery) and search_indexer.c (full text, later). Sharing the
 * code is what makes an answer from the index the same as a scan's.
 *
 * Every function appends to a caller-owned buf and never fails. */
#ifndef POSTERN_IMAPD_SEARCH_TEXT_H
#define POSTERN_IMAPD_SEARCH_TEXT_H

#include "core/buf.h"
#include "mime/mime.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>

/* Above this many bytes of folded head and body text a message is left
 * out of the full-text index (it is read when searched): one large text
 * attachment would otherwise cost its size several times over in the
 * index. */
#define SEARCH_TEXT_INDEX_MAX (4u * 1024 * 1024)
/* A message whose cached header field text would pass this is not put in
 * the index at all (pathological headers). */
#define SEARCH_TEXT_FIELD_MAX (256u * 1024)

/* Appends text case-folded for matching: Unicode simple case folding for
 * Latin (with Extended-A, -B and Additional), Greek, Cyrillic, Armenian and
 * fullwidth Latin; other code points unchanged. Bytes that are not valid
 * UTF-8 are copied as they are, so raw 8-bit header text can still match
 * itself. */
void search_fold(const char *in, size_t len, struct buf *out);

/* One header field instance as HEADER matches it: the raw value
 * (unfolded) and its RFC 2047 decoding, each folded and followed by LF. */
void search_text_field(const struct mime_header_field *f, struct buf *out);
/* Every field of part's header, "name: " and search_text_field: what
 * TEXT matches besides the body. */
void search_text_header(const struct mime_part *part, const char *data, struct buf *out);
/* What BODY matches: every leaf of type text decoded from its transfer encoding
 * and converted to UTF-8, plus header and body text of attached messages
 * (message/rfc822), each folded and followed by LF. Other leaves (images,
 * archives, application/pdf) are skipped: their bytes mean nothing as
 * text. */
void search_text_body(const struct mime_part *part, const char *data, struct buf *out);

/* Whether needle can be looked up in the full-text index with the
 * matcher's answer: valid UTF-8 without NUL, U+FFFD, U+FFFE or U+FFFF.
 * *chars_r gets its length in characters (a trigram needs 3). */
bool search_text_index_needle(const char *needle, size_t len, size_t *chars_r);
/* text as the full-text index stores it: every byte that is not valid
 * UTF-8, and NUL, U+FFFE and U+FFFF, replaced by U+FFFD. For a needle
 * search_text_index_needle accepts, "occurs in text" and "occurs in the
 * result" are the same (SQLite's tokenizer would read invalid bytes
 * lossily, which could make or miss matches). */
void search_text_for_index(const char *text, size_t len, struct buf *out);

/* The store's field for a header field name of len bytes
 * (case-insensitive), or -1 when the index does not cache that field. */
int search_text_field_id(const char *name, size_t len);

/* The header fields of a parsed message for the store's search index
 * (fields_valid false when their text is too large to cache): cheap, no
 * body is decoded, so it runs on the delivery path. Owned by the caller
 * (store_search_text_free). */
struct store_search_text *search_text_headers(const struct mime_part *root, const char *data);
/* Adds head and body for the full-text index to text (the indexer, off
 * the delivery path); false, leaving them NULL, when the text is larger
 * than SEARCH_TEXT_INDEX_MAX. */
bool search_text_full(const struct mime_part *root, const char *data, struct store_search_text *text);

#endif
