/* FETCH data items (RFC 3501 6.4.5, grammar in 9: fetch-att, section,
 * partial): IMAP syntax only, no mailbox. The command parser hands a
 * section such as BODY.PEEK[HEADER.FIELDS (From "To")]<0.100> over as one
 * atom; this module takes that text apart, expands the ALL/FAST/FULL
 * macros and says exactly what is wrong with a bad request.
 *
 * Return convention: 0, or -1 with a static message in *error_r for a
 * tagged BAD. Ownership: the request owns every string in it; free it with
 * fetch_request_free(). */
#ifndef POSTERN_IMAP_FETCH_PARSE_H
#define POSTERN_IMAP_FETCH_PARSE_H

#include "imap/parser.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest header-list of HEADER.FIELDS accepted: a client asking for more
 * field names than this is not doing anything sensible. */
#define FETCH_MAX_FIELDS 256

enum fetch_item_type {
	FETCH_UID,
	FETCH_FLAGS,
	FETCH_INTERNALDATE,
	FETCH_RFC822_SIZE,
	FETCH_ENVELOPE,
	FETCH_BODY,		/* BODY without a section: BODYSTRUCTURE without extensions */
	FETCH_BODYSTRUCTURE,
	/* BODY[...], BODY.PEEK[...], and RFC822, RFC822.HEADER, RFC822.TEXT,
	 * which are the same with another name in the response. */
	FETCH_SECTION,
};

enum fetch_section_text {
	FETCH_TEXT_ALL,			/* no specifier: the whole part (or message) */
	FETCH_TEXT_HEADER,
	FETCH_TEXT_HEADER_FIELDS,
	FETCH_TEXT_HEADER_FIELDS_NOT,
	FETCH_TEXT_TEXT,
	FETCH_TEXT_MIME,		/* only after a part number */
};

struct fetch_section {
	char *part;			/* "1.2.3" or "" for the message itself */
	enum fetch_section_text text;
	char **fields;			/* HEADER.FIELDS[.NOT]: names as written */
	size_t field_count;
	bool peek;			/* BODY.PEEK or RFC822.HEADER: \Seen stays */
	bool partial;			/* <origin.octets> given */
	uint64_t origin;
	uint64_t octets;		/* > 0 when partial */
	/* The name in the FETCH response, without "<origin>": "BODY[1.MIME]",
	 * "BODY[HEADER.FIELDS (From To)]", "RFC822.TEXT" (RFC 3501 7.4.2). */
	char *name;
};

struct fetch_item {
	enum fetch_item_type type;
	struct fetch_section *section;	/* FETCH_SECTION only */
};

struct fetch_request {
	struct fetch_item *items;	/* in the order asked, duplicates dropped */
	size_t count;
};

/* Parses the data-item argument of FETCH: a macro, one item, or a
 * parenthesised list of items (RFC 3501 9: "ALL" / "FULL" / "FAST" /
 * fetch-att / "(" fetch-att *(SP fetch-att) ")"). On failure *req_r is
 * empty and needs no free. */
int fetch_parse(const struct imap_arg *arg, struct fetch_request *req_r, const char **error_r);
/* Parses one fetch-att written as text (an atom), appending to req. */
int fetch_parse_item(const char *text, size_t len, struct fetch_request *req, const char **error_r);
void fetch_request_free(struct fetch_request *req);
/* True when some item needs the message body (a section). */
bool fetch_request_has(const struct fetch_request *req, enum fetch_item_type type);

#endif
