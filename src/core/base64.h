/* Base64 (RFC 4648), for SASL and MIME. */
#ifndef POSTERN_CORE_BASE64_H
#define POSTERN_CORE_BASE64_H

#include "core/buf.h"

#include <stddef.h>

void base64_encode(struct buf *out, const void *data, size_t len);
/* Strict decoding for SASL: no whitespace, correct padding. 0 or -1. */
int base64_decode_strict(struct buf *out, const char *text, size_t len);
/* Lenient decoding for MIME bodies: skips whitespace and garbage, stops at
 * padding, never fails. */
void base64_decode_lenient(struct buf *out, const char *text, size_t len);

#endif
