/* The IMAP command parser: incremental and non-blocking. Bytes are fed as
 * they arrive (one at a time or ten commands at once); the parser frames
 * command lines and literals, and once a whole command is in, parses it into
 * a tree of arguments.
 *
 * Grammar (RFC 3501 9, RFC 9051 9): tag SP command-name *(SP argument) CRLF,
 * where an argument is an atom, a quoted string (with \" and \\ escapes), a
 * literal {n}, a non-synchronizing literal {n+} (LITERAL+ / LITERAL-,
 * RFC 7888), a literal8 ~{n} (RFC 3516), or a parenthesised list of
 * arguments. An atom may carry a bracketed section, which is kept as part of
 * the atom text with its spaces and parentheses: BODY[HEADER.FIELDS (A B)]<0.10>
 * is one atom. Atoms may start with '\' (flags: \Seen, \*). NIL is an atom;
 * commands decide what it means (it is a valid mailbox name as an astring).
 *
 * Literals are normally kept in memory with the rest of the command. A
 * literal above limits.stream_threshold can instead be streamed: its bytes
 * go to a sink function as they arrive and are never stored (APPEND of a
 * big message goes straight to a file).
 *
 * Return convention for imap_parser_feed(): an enum imap_parse_result.
 * Ownership: everything returned points into the parser and is valid until
 * the next call to imap_parser_feed() or imap_parser_reset(). */
#ifndef POSTERN_IMAP_PARSER_H
#define POSTERN_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum imap_arg_type {
	IMAP_ARG_ATOM,		/* includes NIL, numbers, sequence sets, flags */
	IMAP_ARG_STRING,	/* quoted string, unescaped */
	IMAP_ARG_LITERAL,	/* {n}, {n+}, {n-} or ~{n} */
	IMAP_ARG_LIST,		/* ( ... ) */
};

struct imap_arg {
	enum imap_arg_type type;
	const char *str;	/* ATOM/STRING/LITERAL: the bytes, NUL-terminated */
	size_t len;		/* ATOM/STRING/LITERAL: length (literals may hold NULs) */
	bool literal8;		/* LITERAL: announced as ~{n} */
	/* LITERAL: its bytes went to the sink given to
	 * imap_parser_literal_stream() and are not here: str is "" and len is
	 * the literal's size. Never read len bytes from str. The is_string /
	 * is_astring helpers say false for such an argument. */
	bool streamed;
	struct imap_arg *list;	/* LIST: the members */
	size_t list_count;
};

struct imap_command {
	const char *tag;
	const char *name;	/* upper-cased command name, e.g. "LOGIN", "UID" */
	struct imap_arg *args;	/* the arguments after the name */
	size_t arg_count;
};

struct imap_parser_limits {
	size_t max_line;	/* longest line between literals, e.g. 64 KiB */
	uint64_t max_literal;	/* largest literal accepted */
	unsigned max_depth;	/* deepest list nesting */
	/* Literals larger than this (synchronizing or not, literal8 too) are
	 * offered to the caller with IMAP_PARSE_LITERAL, which may stream
	 * them. 0: never (non-synchronizing literals are then simply read). */
	uint64_t stream_threshold;
};

enum imap_parse_result {
	IMAP_PARSE_MORE,	/* all input consumed, no event yet: feed more */
	IMAP_PARSE_COMMAND,	/* a whole command: imap_parser_command() */
	/* A synchronizing literal {n} was announced, or any literal above
	 * stream_threshold: the caller decides (imap_parser_literal_size(),
	 * imap_parser_literal_is_sync(), imap_parser_partial_tag()/_name())
	 * and calls imap_parser_literal_accept() or imap_parser_literal_stream()
	 * and, for a synchronizing one, sends "+ ..."; or it calls
	 * imap_parser_literal_reject() and sends a tagged NO/BAD. */
	IMAP_PARSE_LITERAL,
	IMAP_PARSE_LINE,	/* in line mode: a raw line, imap_parser_line() */
	/* A bad command: imap_parser_error_tag() (or "*" when no tag could be
	 * read) and imap_parser_error() give the tagged BAD to send. The parser
	 * has skipped (or will skip) the rest of that command, including any
	 * literals, and the connection goes on. An oversized non-synchronizing
	 * literal gives a text starting "[TOOBIG]"; an overlong line is
	 * reported as soon as it oversteps max_line. */
	IMAP_PARSE_ERROR,
	/* Unrecoverable: a non-synchronizing literal whose size overflows 64
	 * bits can't be skipped. Send "* BYE" with imap_parser_error() and
	 * close. */
	IMAP_PARSE_FATAL,
};

struct imap_parser;

struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits);
void imap_parser_free(struct imap_parser **parser);
/* limits may be NULL; a zero field means the default from core/limits.h. */
void imap_parser_set_limits(struct imap_parser *parser, const struct imap_parser_limits *limits);
/* After ENABLE UTF8=ACCEPT or IMAP4rev2: quoted strings may hold valid
 * UTF-8 (RFC 9051 9, RFC 6855 3). Off by default: 8-bit bytes in a quoted
 * string are an error. */
void imap_parser_set_utf8(struct imap_parser *parser, bool utf8);

/* Consumes input up to and including the bytes that complete one event and
 * stores the count in *consumed_r; the caller drops those bytes and calls
 * again with the rest until it gets IMAP_PARSE_MORE. */
enum imap_parse_result imap_parser_feed(struct imap_parser *parser, const char *data,
					size_t len, size_t *consumed_r);

const struct imap_command *imap_parser_command(const struct imap_parser *parser);
const char *imap_parser_error(const struct imap_parser *parser);
const char *imap_parser_error_tag(const struct imap_parser *parser);

/* For IMAP_PARSE_LITERAL. The partial tag/name are "" when not yet known. */
uint64_t imap_parser_literal_size(const struct imap_parser *parser);
/* True for {n} and ~{n}: the client waits for "+" before sending the data.
 * False for {n+} / {n-}, whose data follows at once (only offered when
 * above stream_threshold). */
bool imap_parser_literal_is_sync(const struct imap_parser *parser);
const char *imap_parser_partial_tag(const struct imap_parser *parser);
const char *imap_parser_partial_name(const struct imap_parser *parser);
/* True when the announced literal is larger than max_literal: the caller
 * must reject it (tagged NO [TOOBIG]); accepting it is a bug (assert). */
bool imap_parser_literal_too_large(const struct imap_parser *parser);
/* The literal's bytes are read into the command (in memory). */
void imap_parser_literal_accept(struct imap_parser *parser);
/* Refuses the literal. Synchronizing: the client sends no data and its
 * next line is a new command. Non-synchronizing: the data comes anyway and
 * is skipped with the rest of the command. Either way the command is over:
 * the caller answers it (tagged NO/BAD) and gets no event for it. */
void imap_parser_literal_reject(struct imap_parser *parser);

/* Receives a streamed literal's bytes, in order, in pieces of any size (never
 * 0). Called from inside imap_parser_feed(): it must not call the parser. */
typedef void imap_literal_sink_fn(void *ctx, const char *data, size_t len);
/* Instead of accept: the literal's bytes go to sink as they arrive and are
 * not stored; in the finished command the argument is a LITERAL with
 * streamed set (see struct imap_arg). Any literal may be streamed, but the
 * limit still holds (streaming one that is too large is a bug, as for
 * accept). The sink stays in use until the literal's last byte is fed; if
 * the command then fails (IMAP_PARSE_ERROR) or the parser is reset or
 * freed meanwhile, whatever sink_ctx collected is the caller's to drop. */
void imap_parser_literal_stream(struct imap_parser *parser, imap_literal_sink_fn *sink,
				void *sink_ctx);

/* The next event will be IMAP_PARSE_LINE with the next raw line (without
 * CRLF), for AUTHENTICATE continuations and IDLE's DONE. One line only; the
 * parser then returns to command mode. An empty line is returned too. A line
 * over max_line or with a CR not followed by LF gives IMAP_PARSE_ERROR (tag
 * "*") instead, and the parser is back in command mode after that line.
 * Call it only between commands (after IMAP_PARSE_COMMAND). */
void imap_parser_expect_line(struct imap_parser *parser);
const char *imap_parser_line(const struct imap_parser *parser, size_t *len_r);

/* Forgets all partial state (after STARTTLS). */
void imap_parser_reset(struct imap_parser *parser);

/* Helpers for command handlers. */
bool imap_arg_is_atom(const struct imap_arg *arg);
/* Quoted or literal, not streamed. */
bool imap_arg_is_string(const struct imap_arg *arg);
/* Atom, quoted or literal, not streamed. */
bool imap_arg_is_astring(const struct imap_arg *arg);
/* A LITERAL whose bytes went to a sink (imap_parser_literal_stream). */
bool imap_arg_is_streamed(const struct imap_arg *arg);
/* A LIST pattern: an astring that may also hold the wildcards % and *. */
bool imap_arg_is_list_mailbox(const struct imap_arg *arg);
bool imap_arg_is_nil(const struct imap_arg *arg);	/* the atom NIL, any case */
bool imap_arg_is_list(const struct imap_arg *arg);
/* True when an astring/string holds a NUL byte: such text can't be a C string. */
bool imap_arg_has_nul(const struct imap_arg *arg);

#endif
