/* Internals shared by the files of src/mime; not for other modules. */
#ifndef POSTERN_MIME_PRIVATE_H
#define POSTERN_MIME_PRIVATE_H

#include "mime/mime.h"

#include <stddef.h>

struct mime_pool;

/* Zeroed memory and NUL-terminated copies living as long as the tree. */
void *mime_pool_alloc(struct mime_pool *pool, size_t n);
char *mime_pool_strndup(struct mime_pool *pool, const char *s, size_t n);

/* ASCII-only case folding: header syntax is ASCII and the locale must not
 * change how "I" folds. */
static inline char mime_ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

/* Parsers of unfolded Content-* values (mime-content.c). They fill the
 * part's fields from pool memory; an invalid value leaves the defaults. */
void mime_parse_content_type(struct mime_pool *pool, const char *v, size_t len,
			     struct mime_part *part);
void mime_parse_disposition(struct mime_pool *pool, const char *v, size_t len,
			    struct mime_part *part);
void mime_parse_language(struct mime_pool *pool, const char *v, size_t len,
			 struct mime_part *part);
/* The first token of the value, comments skipped ("" when none). */
char *mime_parse_token_value(struct mime_pool *pool, const char *v, size_t len);

#endif
