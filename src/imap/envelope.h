/* The ENVELOPE of a message (RFC 3501 7.4.2) from its parsed header. */
#ifndef POSTERN_IMAP_ENVELOPE_H
#define POSTERN_IMAP_ENVELOPE_H

#include "core/buf.h"
#include "mime/mime.h"

/* Appends the parenthesised envelope of `msg`: a root from mime_parse() or
 * the encapsulated message of a message/rfc822 part, over the message
 * bytes `data` it was parsed from. Date, Subject, In-Reply-To and
 * Message-ID go as they are (unfolded, encoded words kept); address fields
 * are parsed per RFC 2822 3.4, groups included. Never fails. */
void imap_write_envelope(struct buf *out, const struct mime_part *msg, const char *data);

#endif
