/* Modified UTF-7 mailbox names (RFC 3501 5.1.3) and UTF-8 helpers.
 *
 * Both converters append to out and return 0, or return -1 on invalid input
 * and leave out as it was. Invalid means: bad UTF-8 (overlong forms,
 * surrogates, beyond U+10FFFF), U+0000 (a mailbox name can't hold a NUL), and
 * for modified UTF-7 also raw 8-bit or control bytes, bad or leftover base64
 * bits, a lone or unpaired UTF-16 surrogate, printable ASCII written in
 * base64 ("&AGE-"), an empty shift other than "&-", a superfluous shift
 * ("&U,BTFw-&ZeVnLIqe-") and an unterminated shift ("&Jjo!"). */
#ifndef POSTERN_IMAP_UTF7_H
#define POSTERN_IMAP_UTF7_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int imap_utf7_to_utf8(const char *in, size_t len, struct buf *out);
int imap_utf8_to_utf7(const char *in, size_t len, struct buf *out);

/* Decodes one UTF-8 sequence at s (len bytes available): returns its length
 * (1-4) and the code point in *cp_r, or 0 when the bytes are not a valid,
 * shortest-form sequence of a Unicode scalar value. */
size_t imap_utf8_decode(const char *s, size_t len, uint32_t *cp_r);
/* True when all len bytes are valid UTF-8 (NUL counts as valid here). */
bool imap_utf8_is_valid(const char *s, size_t len);

#endif
