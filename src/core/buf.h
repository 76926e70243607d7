/* A growable byte buffer. The buffer owns its memory; buf_free releases it
 * and leaves an empty, reusable buffer. Data is always NUL-terminated past
 * len when cap > 0, so text can be used as a C string. */
#ifndef POSTERN_CORE_BUF_H
#define POSTERN_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;	/* bytes in use */
	size_t cap;	/* bytes allocated, excluding the terminating NUL */
};

#define BUF_INIT { NULL, 0, 0 }

void buf_free(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_append_str(struct buf *b, const char *s);
void buf_append_char(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Drops the first n bytes. An emptied buffer releases large allocations so
 * an idle connection holds no buffer memory. */
void buf_consume(struct buf *b, size_t n);
void buf_clear(struct buf *b);
/* Returns the data as a malloc'd string owned by the caller; b is left empty. */
char *buf_steal(struct buf *b);

#endif
