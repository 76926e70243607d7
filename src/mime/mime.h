/* MIME structure of a message held in memory (RFC 2822, RFC 2045-2049).
 *
 * mime_parse() reads a whole message once and builds a tree of parts. It
 * never copies the message: parts hold offsets into the caller's bytes, which
 * must stay mapped (the store mmaps message files) while the tree is used
 * with functions taking `data`. The tree owns copies of the few header values
 * it has parsed (types, parameters, ids), so it can be kept after the
 * message is unmapped for anything that does not read `data`.
 *
 * The parser never fails: a malformed message gets a best-effort structure
 * (RFC 2049 2: be liberal). It runs in time linear in the message size,
 * bounded by the LIMIT_MIME_* caps in core/limits.h. Both CRLF and bare LF
 * end lines; offsets are always true byte offsets, while the IMAP sizes count
 * every bare LF as CRLF, because FETCH sends lines CRLF-terminated
 * (RFC 3501 2.2, RFC 2822 2.1) and sizes must match what is sent.
 *
 * Return convention of this module: 0 success, -1 failure; predicates and
 * lookups return 1 found / 0 not found.
 */
#ifndef POSTERN_MIME_MIME_H
#define POSTERN_MIME_MIME_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* One parameter of Content-Type or Content-Disposition (RFC 2045 5.1). */
struct mime_param {
	char *name;	/* lowercased; RFC 2231 extended ones end in '*' */
	char *value;	/* unquoted; RFC 2231 continuations joined, an extended
			   value kept encoded as charset'lang'%XX */
};

struct mime_params {
	struct mime_param *v;
	size_t count;
};

enum mime_part_flags {
	/* multipart/x with a boundary: children are its body parts. */
	MIME_PART_MULTIPART = 1 << 0,
	/* message/rfc822 or message/global: the only child is the
	 * encapsulated message (its header, body and own parts). */
	MIME_PART_MESSAGE = 1 << 1,
	/* A Content-Type field was present and valid. */
	MIME_PART_HAS_CONTENT_TYPE = 1 << 2,
	/* It would have been a multipart or message but was past
	 * LIMIT_MIME_DEPTH (or the part cap), so it is a text/plain leaf. */
	MIME_PART_TRUNCATED = 1 << 3,
	/* The multipart's final boundary ("--b--") was never seen. */
	MIME_PART_NO_CLOSE = 1 << 4,
};

/* One entity: the whole message (root), a body part of a multipart, or a
 * message encapsulated in a message/rfc822 part. */
struct mime_part {
	struct mime_part *parent;	/* NULL for the root */
	struct mime_part *next;		/* next sibling in a multipart */
	struct mime_part *children;	/* first child, see the flags */
	unsigned child_count;
	unsigned flags;			/* enum mime_part_flags */
	unsigned depth;			/* 0 for the root */

	size_t header_start;	/* offset of the first header byte */
	size_t body_start;	/* offset after the blank line ending the header */
	size_t body_end;	/* offset after the body (RFC 2046 5.1.1: the
				   line end before a boundary is not body) */
	size_t header_size;	/* IMAP size of the header, blank line included */
	size_t body_size;	/* IMAP size of the body */
	size_t body_lines;	/* line ends in the body (body-fld-lines) */

	char *type;		/* lowercased, "text" when not given */
	char *subtype;		/* lowercased, "plain" when not given */
	struct mime_params params;	/* Content-Type parameters */
	char *id;		/* Content-ID, NULL when absent */
	char *description;	/* Content-Description, raw (encoded words kept) */
	char *encoding;		/* Content-Transfer-Encoding as given, or NULL */
	char *disposition;	/* Content-Disposition type as given, or NULL */
	struct mime_params disposition_params;
	char **languages;	/* Content-Language tags (RFC 3282) */
	size_t language_count;
	char *location;		/* Content-Location (RFC 2557) */
	char *md5;		/* Content-MD5 (RFC 1864) */

	struct mime_pool *pool;	/* root only: the tree's memory */
};

/* Parses the message data[0..len). Never fails; the caller frees the tree
 * with mime_free(). data need not be NUL-terminated and may contain NULs. */
struct mime_part *mime_parse(const char *data, size_t len);
/* Frees a tree returned by mime_parse(); sets *root to NULL; accepts NULL. */
void mime_free(struct mime_part **root);

/* The value of parameter `name` (case-insensitive), or NULL. */
const char *mime_param_get(const struct mime_params *params, const char *name);
/* The part's charset parameter, or NULL. */
const char *mime_part_charset(const struct mime_part *part);
static inline bool mime_part_is(const struct mime_part *part,
				const char *type, const char *subtype);

/* RFC 3501 6.4.5 section numbers: "1.2.3" (no HEADER/TEXT/MIME suffix; the
 * FETCH layer handles those on the part returned). Part 1 of a message that
 * is not multipart is the message itself; inside a message/rfc822 part the
 * next number addresses the encapsulated message's parts. The empty string
 * addresses the root. Returns 0 and sets *part_r, or -1 if no such part. */
int mime_find_section(const struct mime_part *root, const char *section_numbers,
		      const struct mime_part **part_r);

/* ---- header access (mime-header.c) ---- */

/* One header field; pointers into the message data. */
struct mime_header_field {
	const char *name;	/* as written, without trailing blanks */
	size_t name_len;
	const char *value;	/* raw after the colon: folded, line end excluded */
	size_t value_len;
};

/* Iterates over the header fields of `part`: start with *pos = 0; returns 1
 * with *field_r set, or 0 at the end. Lines without a colon are skipped. */
int mime_header_next(const struct mime_part *part, const char *data,
		     size_t *pos, struct mime_header_field *field_r);
/* Finds the first field called `name` (case-insensitive) and replaces the
 * content of value_r by its unfolded value. Returns 1 found, 0 not. */
int mime_header_get(const struct mime_part *part, const char *data,
		    const char *name, struct buf *value_r);
/* All fields called `name`, in order, as an xmalloc'd array the caller
 * frees (NULL when none); returns how many. */
size_t mime_header_get_all(const struct mime_part *part, const char *data,
			   const char *name, struct mime_header_field **fields_r);
/* Appends the unfolded value (RFC 2822 2.2.3: line ends removed, the
 * blanks after them kept), without leading and trailing blanks. */
void mime_header_unfold(const char *value, size_t len, struct buf *out);

/* ---- decoding (mime-decode.c) ---- */

/* A part's Content-Transfer-Encoding (RFC 2045 6.1), as FETCH BINARY
 * needs it (RFC 3516 4.2). */
enum mime_cte {
	MIME_CTE_7BIT,		/* 7bit, 8bit or none given: lines of text */
	MIME_CTE_BINARY,	/* binary: bytes as they are */
	MIME_CTE_BASE64,
	MIME_CTE_QP,		/* quoted-printable */
	MIME_CTE_UNKNOWN,	/* anything else (x-uuencode, ...) */
};
/* Names compare without case; parameters or comments were already
 * dropped by the parser. */
enum mime_cte mime_part_cte(const struct mime_part *part);

/* Appends decoded bytes. Both are lenient and never fail: quoted-printable
 * keeps a malformed '=' as is, base64 skips bytes outside its alphabet and
 * stops at padding (RFC 2045 6.7, 6.8). */
void mime_decode_qp(const char *in, size_t len, struct buf *out);
void mime_decode_base64(const char *in, size_t len, struct buf *out);
/* Appends in[0..len) converted from `charset` to UTF-8 (iconv). Invalid
 * bytes become U+FFFD. NULL charset means US-ASCII. Returns -1 if the
 * charset is unknown (the bytes are then appended as UTF-8 with invalid
 * sequences replaced), else 0. */
int mime_charset_to_utf8(const char *charset, const char *in, size_t len,
			 struct buf *out);
/* Appends a header value decoded to UTF-8: unfolded, RFC 2047 encoded
 * words decoded (blanks between adjacent encoded words dropped, RFC 2047
 * 6.2), raw 8-bit text kept when it is UTF-8, else replaced by U+FFFD.
 * Returns -1 if some encoded word had an unknown charset (it is still
 * appended, best effort), else 0. */
int mime_decode_header_value(const char *in, size_t len, struct buf *out);
/* Appends the body of a leaf part decoded from its Content-Transfer-Encoding
 * and, for text parts, converted from its charset to UTF-8. Returns -1 for a
 * multipart or message part (nothing appended) or an unknown charset (best
 * effort appended), else 0. */
int mime_body_to_utf8(const struct mime_part *part, const char *data,
		      struct buf *out);

static inline bool mime_part_is(const struct mime_part *part,
				const char *type, const char *subtype)
{
	return strcmp(part->type, type) == 0 &&
		(subtype == NULL || strcmp(part->subtype, subtype) == 0);
}

#endif
