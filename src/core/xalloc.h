/* Allocation that cannot fail: on exhaustion the process logs and aborts.
 * Fine in a worker process, which the master restarts (STYLE.md). */
#ifndef POSTERN_CORE_XALLOC_H
#define POSTERN_CORE_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* A copy of size bytes at p (size 0 gives a valid, unusable pointer). */
void *xmemdup(const void *p, size_t size);
/* Returns a malloc'd string; the caller frees it. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
