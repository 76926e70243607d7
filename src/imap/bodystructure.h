/* BODY and BODYSTRUCTURE (RFC 3501 7.4.2) from a parsed MIME tree. */
#ifndef POSTERN_IMAP_BODYSTRUCTURE_H
#define POSTERN_IMAP_BODYSTRUCTURE_H

#include "core/buf.h"
#include "mime/mime.h"

#include <stdbool.h>

/* Appends the body structure of `part` (usually the root from mime_parse())
 * over the message bytes `data`: BODY form without extension data when
 * extended is false, BODYSTRUCTURE form with it when true. Never fails. */
void imap_write_bodystructure(struct buf *out, const struct mime_part *part,
			      const char *data, bool extended);

#endif
