/* Writing IMAP strings in responses: the shortest correct form. */
#ifndef POSTERN_IMAP_QUOTE_H
#define POSTERN_IMAP_QUOTE_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>

/* An atom when every byte is an ATOM-CHAR (and it is not "NIL"), else a
 * quoted string when that is possible, else a literal. */
void imap_write_astring(struct buf *out, const char *s, size_t len);
/* A quoted string when possible (no CR, LF, NUL or 8-bit byte, not longer
 * than 1024 bytes), else a literal {n}CRLF followed by the bytes. utf8 allows
 * 8-bit bytes in quoted strings (after ENABLE UTF8=ACCEPT / IMAP4rev2). */
void imap_write_string(struct buf *out, const char *s, size_t len, bool utf8);
/* NIL for NULL, else imap_write_string(). */
void imap_write_nstring(struct buf *out, const char *s, size_t len, bool utf8);
/* Text for the end of a response line (resp-text): CR, LF and NUL replaced
 * by spaces so a client-supplied string can't end the line early. */
void imap_write_text(struct buf *out, const char *s, size_t len);

#endif
