/* IMAP strings for the ENVELOPE and BODYSTRUCTURE writers (RFC 3501 4.3,
 * 9 "string" / "nstring"). Kept apart from quote.h, which is the general
 * response writer's contract; these names are distinct on purpose. */
#ifndef POSTERN_IMAP_ISTRING_H
#define POSTERN_IMAP_ISTRING_H

#include "core/buf.h"

#include <stddef.h>

/* Longest value written as a quoted string; longer ones go as literals. */
#define IMAP_ISTRING_QUOTED_MAX 1024

/* A quoted string when it has no CR, LF, NUL or 8-bit byte and is short
 * enough, else a literal {n}CRLF + bytes. NUL cannot appear in either
 * (RFC 3501 9: CHAR8 excludes %x00) and is sent as U+FFFD. */
void imap_istring_write(struct buf *out, const char *s, size_t len);
/* NIL for NULL, else imap_istring_write(). */
void imap_istring_write_nstring(struct buf *out, const char *s, size_t len);
/* The same for a NUL-terminated string or NULL. */
void imap_istring_write_cstr(struct buf *out, const char *s);

#endif
