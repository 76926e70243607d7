/* The IMAP command parser (RFC 3501 9, RFC 9051 9, RFC 7888, RFC 3516).
 *
 * Two layers. The framer takes bytes as they come and splits a command into
 * line segments and literals, all appended to one raw buffer; it enforces
 * the line and literal limits where the bytes arrive. Each completed segment
 * goes to the tokenizer, which records arguments as (offset, length) tokens
 * into that buffer and resumes across literals. When the last segment is in,
 * the tokens become the imap_arg tree, pointing into the raw buffer: strings
 * are unescaped and NUL-terminated in place, so a literal is never copied
 * a second time. A literal the caller chose to stream is not kept at all:
 * its bytes go to the caller's sink and its token only records the size, so
 * a command's memory is its lines plus its small literals.
 *
 * Splitting the input anywhere gives the same events: every decision is
 * taken on a whole segment, and the one taken early (an overlong line) only
 * looks at bytes that every split has already seen. */
#include "imap/parser.h"

#include "core/buf.h"
#include "core/limits.h"
#include "core/xalloc.h"
#include "imap/utf7.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Buffers above these sizes are released after each command rather than
 * kept: an idle connection should hold almost nothing. */
#define RAW_KEEP_MAX 16384
#define TOKENS_KEEP_MAX 256

enum frame_state {
	FRAME_LINE,		/* collecting a line segment into raw */
	FRAME_LITERAL_WAIT,	/* sync literal announced: caller accepts or rejects */
	FRAME_LITERAL,		/* copying literal bytes into raw, or to the sink */
	FRAME_SKIP_LINE,	/* discarding up to LF, watching for a final {n+} */
	FRAME_SKIP_LITERAL,	/* discarding the bytes of a non-sync literal */
};

enum stage { STAGE_TAG, STAGE_ARGS };

enum expect {
	EXPECT_TOKEN,		/* after SP: an argument must follow */
	EXPECT_TOKEN_OR_CLOSE,	/* after '(': an argument or ')' */
	EXPECT_SEP,		/* after an argument: SP, ')' or end of line */
};

/* How a line ends, as far as literals go: what the client will send next. */
enum tail_state {
	TAIL_NONE,
	TAIL_OPEN,		/* "{" and digits */
	TAIL_SIGN,		/* "{n+" or "{n-" */
	TAIL_SYNC,		/* "{n}" */
	TAIL_NONSYNC,		/* "{n+}" */
	TAIL_SYNC_CR,		/* "{n}" CR */
	TAIL_NONSYNC_CR,	/* "{n+}" CR */
};

struct token {
	enum imap_arg_type type;
	bool literal8;
	bool streamed;		/* LITERAL: the bytes went to a sink, not to raw */
	int32_t parent;		/* index of the enclosing LIST token, -1 at top */
	uint32_t children;	/* LIST: members */
	uint32_t first, fill;	/* LIST, while building: slots of the members */
	size_t off, len;	/* ATOM/STRING/LITERAL: bytes in raw */
};

struct imap_parser {
	struct imap_parser_limits limits;
	bool utf8;		/* quoted strings may hold UTF-8 (RFC 9051) */

	enum frame_state frame;
	bool line_mode;		/* next line is returned raw (expect_line) */
	bool skip_in_command;	/* SKIP_LINE: a final {n+} continues the skip */
	bool done;		/* an event ended a command: clear on next feed */

	struct buf raw;		/* segments (each ending in '\n') and literals */
	size_t seg_start;	/* where the segment being collected starts */
	bool first_segment;	/* no segment of this command tokenized yet */

	enum stage stage;
	enum expect expect;
	struct token *tokens;
	size_t token_count, token_cap;
	size_t root_count;	/* top-level arguments */
	uint32_t *stack;	/* open LIST tokens */
	size_t depth, stack_cap;
	size_t literal_count;

	uint64_t lit_size;	/* the literal announced last */
	bool lit_sync;		/* ... and whether it waits for "+" */
	uint64_t lit_left;	/* FRAME_LITERAL: bytes still to come */
	imap_literal_sink_fn *sink;	/* FRAME_LITERAL: streaming to it, or NULL */
	void *sink_ctx;
	uint64_t skip_left;	/* FRAME_SKIP_LITERAL: bytes still to drop */

	enum tail_state tail;
	uint64_t tail_num;
	bool tail_digits, tail_overflow;

	char tag[LIMIT_TAG_LEN + 1];
	struct buf name;
	char error_tag[LIMIT_TAG_LEN + 1];
	char error[192];

	struct imap_arg *args;
	size_t args_cap;
	struct imap_command cmd;
	const char *line;
	size_t line_len;
};

/* ASTRING-CHAR except '+' (RFC 9051 9: tag). */
static bool is_tag_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\+", c) == NULL;
}

/* ATOM-CHAR (RFC 3501 9): command names. */
static bool is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\]", c) == NULL;
}

/* What may appear in an argument atom: ATOM-CHAR plus ']' (ASTRING-CHAR),
 * '%' and '*' (list-mailbox, sequence sets). '[' opens a section and '\'
 * may only start a flag, both handled by the caller. */
static bool is_arg_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){\"\\[", c) == NULL;
}

static void set_error(struct imap_parser *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_error(struct imap_parser *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->error, sizeof(p->error), fmt, ap);
	va_end(ap);
}

static void bad_char(struct imap_parser *p, unsigned char c, const char *where)
{
	if (c == '\r')
		set_error(p, "CR without LF");
	else if (c == '\0')
		set_error(p, "NUL byte in %s", where);
	else if (c >= 0x80)
		set_error(p, "8-bit byte in %s", where);
	else if (c < 0x20 || c == 0x7f)
		set_error(p, "Control character 0x%02x in %s", c, where);
	else
		set_error(p, "Invalid character '%c' in %s", c, where);
}

/* ---- the tail of a line: does a non-synchronizing literal follow? ---- */

static void tail_reset(struct imap_parser *p)
{
	p->tail = TAIL_NONE;
}

static void tail_feed(struct imap_parser *p, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '{') {
			p->tail = TAIL_OPEN;
			p->tail_num = 0;
			p->tail_digits = false;
			p->tail_overflow = false;
			continue;
		}
		switch (p->tail) {
		case TAIL_OPEN:
			if (c >= '0' && c <= '9') {
				unsigned d = c - '0';
				if (p->tail_num > (UINT64_MAX - d) / 10)
					p->tail_overflow = true;
				else
					p->tail_num = p->tail_num * 10 + d;
				p->tail_digits = true;
			} else if ((c == '+' || c == '-') && p->tail_digits) {
				p->tail = TAIL_SIGN;
			} else if (c == '}' && p->tail_digits) {
				p->tail = TAIL_SYNC;
			} else {
				p->tail = TAIL_NONE;
			}
			break;
		case TAIL_SIGN:
			p->tail = c == '}' ? TAIL_NONSYNC : TAIL_NONE;
			break;
		case TAIL_SYNC:
			p->tail = c == '\r' ? TAIL_SYNC_CR : TAIL_NONE;
			break;
		case TAIL_NONSYNC:
			p->tail = c == '\r' ? TAIL_NONSYNC_CR : TAIL_NONE;
			break;
		default:
			p->tail = TAIL_NONE;
			break;
		}
	}
}

static bool tail_is_nonsync(const struct imap_parser *p)
{
	return p->tail == TAIL_NONSYNC || p->tail == TAIL_NONSYNC_CR;
}

/* ---- command state ---- */

static void command_clear(struct imap_parser *p)
{
	if (p->raw.cap > RAW_KEEP_MAX)
		buf_free(&p->raw);
	else
		buf_clear(&p->raw);
	if (p->token_cap > TOKENS_KEEP_MAX) {
		free(p->tokens);
		p->tokens = NULL;
		p->token_cap = 0;
		free(p->args);
		p->args = NULL;
		p->args_cap = 0;
	}
	p->token_count = 0;
	p->root_count = 0;
	p->depth = 0;
	p->literal_count = 0;
	p->seg_start = 0;
	p->first_segment = true;
	p->stage = STAGE_TAG;
	p->expect = EXPECT_TOKEN;
	p->tag[0] = '\0';
	buf_clear(&p->name);
	p->line = NULL;
	p->line_len = 0;
	p->done = false;
}

static void set_error_tag(struct imap_parser *p)
{
	strcpy(p->error_tag, p->tag[0] != '\0' ? p->tag : "*");
}

/* A syntax error in the segment just completed, whose tail was fed to the
 * tail machine: the command ends here unless the client is about to send a
 * non-synchronizing literal, which must then be skipped (RFC 7888 4). */
static enum imap_parse_result command_error(struct imap_parser *p)
{
	set_error_tag(p);
	p->done = true;
	if (!tail_is_nonsync(p)) {
		p->frame = FRAME_LINE;
		return IMAP_PARSE_ERROR;
	}
	if (p->tail_overflow) {
		set_error(p, "Non-synchronizing literal size overflows 64 bits: can't skip it");
		return IMAP_PARSE_FATAL;
	}
	p->skip_in_command = true;
	p->skip_left = p->tail_num;
	p->frame = FRAME_SKIP_LITERAL;
	if (p->skip_left == 0) {
		p->frame = FRAME_SKIP_LINE;
		tail_reset(p);
	}
	return IMAP_PARSE_ERROR;
}

static bool add_token(struct imap_parser *p, enum imap_arg_type type, size_t off, size_t len)
{
	if (p->token_count >= LIMIT_ARGS) {
		set_error(p, "Too many arguments (limit %d)", LIMIT_ARGS);
		return false;
	}
	if (p->token_count == p->token_cap) {
		p->token_cap = p->token_cap ? p->token_cap * 2 : 16;
		p->tokens = xrealloc(p->tokens, p->token_cap * sizeof(*p->tokens));
	}
	struct token *t = &p->tokens[p->token_count++];
	memset(t, 0, sizeof(*t));
	t->type = type;
	t->off = off;
	t->len = len;
	t->parent = p->depth > 0 ? (int32_t)p->stack[p->depth - 1] : -1;
	if (t->parent >= 0)
		p->tokens[t->parent].children++;
	else
		p->root_count++;
	return true;
}

static void build_command(struct imap_parser *p)
{
	size_t n = p->token_count;
	if (p->args_cap < n) {
		free(p->args);
		p->args_cap = n;
		p->args = xmalloc(n * sizeof(*p->args));
	}
	/* Tokens are in preorder, so a list's slots are assigned before its
	 * members are placed; each list's members are contiguous. */
	size_t next = p->root_count, root_fill = 0;
	char *s = p->raw.data;
	for (size_t k = 0; k < n; k++) {
		struct token *t = &p->tokens[k];
		size_t slot;
		if (t->parent < 0) {
			slot = root_fill++;
		} else {
			struct token *parent = &p->tokens[t->parent];
			slot = parent->first + parent->fill++;
		}
		struct imap_arg *a = &p->args[slot];
		memset(a, 0, sizeof(*a));
		a->type = t->type;
		if (t->type == IMAP_ARG_LIST) {
			t->first = (uint32_t)next;
			t->fill = 0;
			a->list = t->children > 0 ? p->args + next : NULL;
			a->list_count = t->children;
			next += t->children;
		} else if (t->streamed) {
			a->str = "";
			a->len = t->len;
			a->literal8 = t->literal8;
			a->streamed = true;
		} else {
			/* The byte after every string is a separator, a closing
			 * quote or the next segment's first byte: all consumed. */
			s[t->off + t->len] = '\0';
			a->str = s + t->off;
			a->len = t->len;
			a->literal8 = t->literal8;
		}
	}
	p->cmd.tag = p->tag;
	p->cmd.name = p->name.data != NULL ? p->name.data : "";
	p->cmd.args = n > 0 ? p->args : NULL;
	p->cmd.arg_count = p->root_count;
}

/* ---- the tokenizer ---- */

enum tok_result { TOK_DONE, TOK_LITERAL, TOK_ERROR };

static bool parse_tag_and_name(struct imap_parser *p, size_t *ip, size_t end)
{
	const unsigned char *s = (const unsigned char *)p->raw.data;
	size_t i = *ip, t = i;
	while (i < end && is_tag_char(s[i]))
		i++;
	if (i == t) {
		if (s[i] == ' ')
			set_error(p, "Missing tag");
		else
			bad_char(p, s[i], "tag");
		return false;
	}
	if (i - t > LIMIT_TAG_LEN) {
		set_error(p, "Tag too long (limit %d)", LIMIT_TAG_LEN);
		return false;
	}
	if (i < end && s[i] != ' ') {
		bad_char(p, s[i], "tag");
		return false;
	}
	memcpy(p->tag, s + t, i - t);
	p->tag[i - t] = '\0';
	if (i == end) {
		set_error(p, "Missing command name");
		return false;
	}
	i++;
	size_t n = i;
	while (i < end && is_atom_char(s[i]))
		i++;
	if (i == n && (i == end || s[i] == ' ')) {
		set_error(p, "Missing command name");
		return false;
	}
	if (i < end && s[i] != ' ') {
		bad_char(p, s[i], "command name");
		return false;
	}
	buf_clear(&p->name);
	for (size_t k = n; k < i; k++) {
		unsigned char c = s[k];
		buf_append_char(&p->name, (char)(c >= 'a' && c <= 'z' ? c - 32 : c));
	}
	p->stage = STAGE_ARGS;
	p->expect = EXPECT_SEP;
	*ip = i;
	return true;
}

/* A quoted string (RFC 9051 9: quoted), unescaped in place. */
static bool parse_quoted(struct imap_parser *p, size_t *ip, size_t end)
{
	unsigned char *s = (unsigned char *)p->raw.data;
	size_t start = *ip + 1, j = start, w = start;
	for (;;) {
		if (j == end) {
			set_error(p, "Unterminated quoted string");
			return false;
		}
		unsigned char c = s[j];
		if (c == '"')
			break;
		if (c == '\\') {
			if (j + 1 == end) {
				set_error(p, "Unterminated quoted string");
				return false;
			}
			unsigned char e = s[j + 1];
			if (e != '"' && e != '\\') {
				if (e >= 0x21 && e < 0x7f)
					set_error(p, "Invalid escape \\%c in quoted string", e);
				else
					set_error(p, "Invalid escape of byte 0x%02x in quoted string", e);
				return false;
			}
			s[w++] = e;
			j += 2;
			continue;
		}
		if (c == '\0' || c == '\r') {
			bad_char(p, c, "quoted string");
			return false;
		}
		if (c >= 0x80) {
			uint32_t cp;
			size_t n = p->utf8 ? imap_utf8_decode((char *)s + j, end - j, &cp) : 0;
			if (!p->utf8) {
				bad_char(p, c, "quoted string");
				return false;
			}
			if (n == 0) {
				set_error(p, "Invalid UTF-8 in quoted string");
				return false;
			}
			memmove(s + w, s + j, n);
			w += n;
			j += n;
			continue;
		}
		s[w++] = c;
		j++;
	}
	if (!add_token(p, IMAP_ARG_STRING, start, w - start))
		return false;
	*ip = j + 1;
	p->expect = EXPECT_SEP;
	return true;
}

/* A literal announcement, which must end the segment: "{" number64 ["+"]
 * "}" (RFC 7888 8), "~" for literal8 (RFC 3516). "{n-}" is taken as a
 * non-synchronizing literal too, though LITERAL- itself writes "{n+}". */
static enum tok_result parse_literal(struct imap_parser *p, size_t i, size_t end)
{
	const unsigned char *s = (const unsigned char *)p->raw.data;
	bool lit8 = s[i] == '~';
	size_t j = i + (lit8 ? 2 : 1), digits = j;
	uint64_t n = 0;
	bool overflow = false;
	while (j < end && s[j] >= '0' && s[j] <= '9') {
		unsigned d = s[j] - '0';
		if (n > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			n = n * 10 + d;
		j++;
	}
	if (j == digits) {
		set_error(p, "Missing literal size after '{'");
		return TOK_ERROR;
	}
	bool sync = true;
	if (j < end && (s[j] == '+' || s[j] == '-')) {
		sync = false;
		j++;
	}
	if (j == end || s[j] != '}') {
		set_error(p, "Invalid literal size: expected '}'");
		return TOK_ERROR;
	}
	if (j + 1 != end) {
		set_error(p, "Literal size must be followed by CRLF");
		return TOK_ERROR;
	}
	if (overflow) {
		set_error(p, "[TOOBIG] Literal size overflows 64 bits");
		return TOK_ERROR;
	}
	if (p->literal_count >= LIMIT_LITERALS) {
		set_error(p, "Too many literals in one command (limit %d)", LIMIT_LITERALS);
		return TOK_ERROR;
	}
	if (!sync && n > p->limits.max_literal) {
		set_error(p, "[TOOBIG] Literal of %llu bytes exceeds the limit of %llu",
			  (unsigned long long)n, (unsigned long long)p->limits.max_literal);
		return TOK_ERROR;
	}
	/* The data will start right after this segment's '\n' in raw. */
	if (!add_token(p, IMAP_ARG_LITERAL, end + 1, (size_t)n))
		return TOK_ERROR;
	p->tokens[p->token_count - 1].literal8 = lit8;
	p->literal_count++;
	p->lit_size = n;
	p->lit_sync = sync;
	p->expect = EXPECT_SEP;
	return TOK_LITERAL;
}

/* An atom, with any bracketed sections kept in it as written (RFC 3501 9:
 * fetch-att "BODY" section ["<" number "." nz-number ">"]). */
static bool parse_atom(struct imap_parser *p, size_t *ip, size_t end)
{
	const unsigned char *s = (const unsigned char *)p->raw.data;
	size_t i = *ip, j = i;
	if (s[j] == '\\')
		j++;		/* a flag: \Seen, \* */
	size_t body = j;
	while (j < end) {
		unsigned char c = s[j];
		if (c == '[') {
			bool quoted = false;
			for (j++;; j++) {
				if (j == end) {
					set_error(p, "Missing ']' in section");
					return false;
				}
				c = s[j];
				if (c < 0x20 || c >= 0x7f) {
					bad_char(p, c, "section");
					return false;
				}
				if (quoted) {
					if (c == '\\' && j + 1 < end)
						j++;
					else if (c == '"')
						quoted = false;
				} else if (c == '"') {
					quoted = true;
				} else if (c == '[') {
					bad_char(p, c, "section");
					return false;
				} else if (c == '{') {
					set_error(p, "Literals inside a section are not supported");
					return false;
				} else if (c == ']') {
					break;
				}
			}
			j++;
			continue;
		}
		if (!is_arg_atom_char(c))
			break;
		j++;
	}
	if (j == body) {
		if (j == end || s[j] == ' ' || s[j] == ')')
			set_error(p, "Missing flag name after '\\'");
		else
			bad_char(p, s[j], j > i ? "flag" : "argument");
		return false;
	}
	if (j < end && s[j] != ' ' && s[j] != ')') {
		bad_char(p, s[j], "atom");
		return false;
	}
	if (!add_token(p, IMAP_ARG_ATOM, i, j - i))
		return false;
	*ip = j;
	p->expect = EXPECT_SEP;
	return true;
}

/* Tokenizes raw[i..end), a whole segment; the state carries over from the
 * previous segment of the same command. */
static enum tok_result tokenize(struct imap_parser *p, size_t i, size_t end)
{
	const unsigned char *s = (const unsigned char *)p->raw.data;
	if (p->stage == STAGE_TAG && !parse_tag_and_name(p, &i, end))
		return TOK_ERROR;
	while (i < end) {
		unsigned char c = s[i];
		if (p->expect == EXPECT_SEP) {
			if (c == ' ') {
				p->expect = EXPECT_TOKEN;
				i++;
				continue;
			}
			if (c != ')') {
				set_error(p, "Missing space between arguments");
				return TOK_ERROR;
			}
		}
		switch (c) {
		case ')':
			if (p->depth == 0) {
				set_error(p, "Unexpected ')'");
				return TOK_ERROR;
			}
			if (p->expect == EXPECT_TOKEN) {
				set_error(p, "Unexpected space before ')'");
				return TOK_ERROR;
			}
			p->depth--;
			p->expect = EXPECT_SEP;
			i++;
			break;
		case ' ':
			set_error(p, p->expect == EXPECT_TOKEN_OR_CLOSE ?
				  "Unexpected space after '('" : "Double space between arguments");
			return TOK_ERROR;
		case '(':
			if (p->depth >= p->limits.max_depth) {
				set_error(p, "Lists nested too deeply (limit %u)", p->limits.max_depth);
				return TOK_ERROR;
			}
			if (!add_token(p, IMAP_ARG_LIST, 0, 0))
				return TOK_ERROR;
			if (p->depth == p->stack_cap) {
				p->stack_cap = p->stack_cap ? p->stack_cap * 2 : 8;
				p->stack = xrealloc(p->stack, p->stack_cap * sizeof(*p->stack));
			}
			p->stack[p->depth++] = (uint32_t)(p->token_count - 1);
			p->expect = EXPECT_TOKEN_OR_CLOSE;
			i++;
			break;
		case '"':
			if (!parse_quoted(p, &i, end))
				return TOK_ERROR;
			break;
		case '{':
			return parse_literal(p, i, end);
		default:
			if (c == '~' && i + 1 < end && s[i + 1] == '{')
				return parse_literal(p, i, end);
			if (!parse_atom(p, &i, end))
				return TOK_ERROR;
			break;
		}
	}
	switch (p->expect) {
	case EXPECT_TOKEN:
		set_error(p, "Unexpected space at end of line");
		return TOK_ERROR;
	case EXPECT_TOKEN_OR_CLOSE:
		set_error(p, "Missing ')'");
		return TOK_ERROR;
	case EXPECT_SEP:
		break;
	}
	if (p->depth > 0) {
		set_error(p, "Missing ')'");
		return TOK_ERROR;
	}
	return TOK_DONE;
}

/* ---- the framer ---- */

static void literal_done(struct imap_parser *p)
{
	p->frame = FRAME_LINE;
	p->seg_start = p->raw.len;
	p->sink = NULL;
	p->sink_ctx = NULL;
}

/* A line segment is complete in raw[seg_start..] (LF not stored). */
static enum imap_parse_result segment_complete(struct imap_parser *p)
{
	size_t end = p->raw.len;
	if (end > p->seg_start && p->raw.data[end - 1] == '\r')
		end--;
	p->raw.len = end;
	p->raw.data[end] = '\0';
	char *seg = p->raw.data + p->seg_start;
	size_t n = end - p->seg_start;

	if (p->line_mode) {
		p->line_mode = false;
		p->done = true;
		if (memchr(seg, '\r', n) != NULL) {
			set_error(p, "CR without LF");
			strcpy(p->error_tag, "*");
			return IMAP_PARSE_ERROR;
		}
		p->line = seg;
		p->line_len = n;
		return IMAP_PARSE_LINE;
	}
	if (p->first_segment && n == 0)
		return IMAP_PARSE_MORE;		/* empty line: ignored */
	p->first_segment = false;
	buf_append_char(&p->raw, '\n');
	seg = p->raw.data + p->seg_start;	/* the append may have moved it */

	/* Known before tokenizing, which unescapes in place. */
	const char *brace = memrchr(seg, '{', n);
	tail_reset(p);
	if (brace != NULL)
		tail_feed(p, brace, n - (size_t)(brace - seg));

	switch (tokenize(p, p->seg_start, end)) {
	case TOK_ERROR:
		return command_error(p);
	case TOK_DONE:
		build_command(p);
		p->done = true;
		return IMAP_PARSE_COMMAND;
	case TOK_LITERAL:
		break;
	}
	p->seg_start = p->raw.len;
	/* A big non-synchronizing literal is offered too, though the client
	 * is already sending it: the caller may want it streamed. */
	if (p->lit_sync ||
	    (p->limits.stream_threshold > 0 && p->lit_size > p->limits.stream_threshold)) {
		p->frame = FRAME_LITERAL_WAIT;
		return IMAP_PARSE_LITERAL;
	}
	p->frame = FRAME_LITERAL;
	p->lit_left = p->lit_size;
	if (p->lit_left == 0)
		literal_done(p);
	return IMAP_PARSE_MORE;
}

/* The line being collected is longer than max_line. Reported now, once;
 * the rest of the line is dropped. The tag is looked for only in the first
 * max_line + 1 bytes, which every way of splitting the input has seen. */
static enum imap_parse_result line_overlong(struct imap_parser *p, const char *chunk,
					    size_t chunk_len)
{
	const char *seg = p->raw.data != NULL ? p->raw.data + p->seg_start : "";
	size_t seg_len = p->raw.len - p->seg_start;
	if (p->line_mode) {
		strcpy(p->error_tag, "*");
	} else if (p->first_segment) {
		char head[LIMIT_TAG_LEN + 2];
		size_t view = sizeof(head);
		if (view > p->limits.max_line + 1)
			view = p->limits.max_line + 1;
		size_t from_seg = seg_len < view ? seg_len : view;
		size_t from_chunk = view - from_seg < chunk_len ? view - from_seg : chunk_len;
		if (from_seg > 0)
			memcpy(head, seg, from_seg);
		if (from_chunk > 0)
			memcpy(head + from_seg, chunk, from_chunk);
		size_t k = 0, avail = from_seg + from_chunk;
		while (k < avail && is_tag_char((unsigned char)head[k]))
			k++;
		if (k > 0 && k <= LIMIT_TAG_LEN && k < avail && head[k] == ' ') {
			memcpy(p->error_tag, head, k);
			p->error_tag[k] = '\0';
		} else {
			strcpy(p->error_tag, "*");
		}
	} else {
		set_error_tag(p);
	}
	set_error(p, "Line too long (limit %zu bytes)", p->limits.max_line);
	tail_reset(p);
	tail_feed(p, seg, seg_len);
	p->skip_in_command = !p->line_mode;
	p->line_mode = false;
	p->frame = FRAME_SKIP_LINE;
	p->done = true;
	return IMAP_PARSE_ERROR;
}

static enum imap_parse_result feed_line(struct imap_parser *p, const char *data, size_t len,
					size_t *pos)
{
	const char *start = data + *pos;
	size_t avail = len - *pos;
	const char *lf = memchr(start, '\n', avail);
	size_t chunk = lf != NULL ? (size_t)(lf - start) : avail;
	size_t seg_len = p->raw.len - p->seg_start;
	size_t max = p->limits.max_line;
	bool overlong;
	if (lf != NULL) {
		size_t content = seg_len + chunk;
		char last = chunk > 0 ? start[chunk - 1] :
			    seg_len > 0 ? p->raw.data[p->raw.len - 1] : '\0';
		if (last == '\r')
			content--;
		overlong = content > max;
	} else {
		/* One byte of slack: it may be the CR of CRLF. */
		overlong = seg_len + chunk > max + 1;
	}
	if (overlong)
		return line_overlong(p, start, chunk);
	buf_append(&p->raw, start, chunk);
	*pos += chunk;
	if (lf == NULL)
		return IMAP_PARSE_MORE;
	*pos += 1;
	return segment_complete(p);
}

/* Dropping a line after an error, up to its LF. */
static enum imap_parse_result feed_skip_line(struct imap_parser *p, const char *data,
					     size_t len, size_t *pos)
{
	const char *start = data + *pos;
	size_t avail = len - *pos;
	const char *lf = memchr(start, '\n', avail);
	size_t chunk = lf != NULL ? (size_t)(lf - start) : avail;
	tail_feed(p, start, chunk);
	*pos += chunk;
	if (lf == NULL)
		return IMAP_PARSE_MORE;
	*pos += 1;
	if (!p->skip_in_command || !tail_is_nonsync(p)) {
		/* The skipped command is over. A final sync literal ends it
		 * too: the client waits for a "+" that never comes. */
		p->frame = FRAME_LINE;
		command_clear(p);
		return IMAP_PARSE_MORE;
	}
	if (p->tail_overflow) {
		set_error(p, "Non-synchronizing literal size overflows 64 bits: can't skip it");
		strcpy(p->error_tag, "*");
		p->done = true;
		return IMAP_PARSE_FATAL;
	}
	p->skip_left = p->tail_num;
	p->frame = p->skip_left > 0 ? FRAME_SKIP_LITERAL : FRAME_SKIP_LINE;
	tail_reset(p);
	return IMAP_PARSE_MORE;
}

enum imap_parse_result imap_parser_feed(struct imap_parser *p, const char *data,
					size_t len, size_t *consumed_r)
{
	assert(p->frame != FRAME_LITERAL_WAIT);
	if (p->done)
		command_clear(p);
	size_t pos = 0;
	enum imap_parse_result res = IMAP_PARSE_MORE;
	while (pos < len && res == IMAP_PARSE_MORE) {
		size_t avail = len - pos;
		switch (p->frame) {
		case FRAME_LINE:
			res = feed_line(p, data, len, &pos);
			break;
		case FRAME_LITERAL: {
			size_t n = p->lit_left < avail ? (size_t)p->lit_left : avail;
			if (p->sink != NULL)
				p->sink(p->sink_ctx, data + pos, n);
			else
				buf_append(&p->raw, data + pos, n);
			pos += n;
			p->lit_left -= n;
			if (p->lit_left == 0)
				literal_done(p);
			break;
		}
		case FRAME_SKIP_LINE:
			res = feed_skip_line(p, data, len, &pos);
			break;
		case FRAME_SKIP_LITERAL: {
			size_t n = p->skip_left < avail ? (size_t)p->skip_left : avail;
			pos += n;
			p->skip_left -= n;
			if (p->skip_left == 0) {
				p->frame = FRAME_SKIP_LINE;
				tail_reset(p);
			}
			break;
		}
		case FRAME_LITERAL_WAIT:
			abort();
		}
	}
	*consumed_r = pos;
	return res;
}

/* ---- lifecycle and accessors ---- */

struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));
	imap_parser_set_limits(p, limits);
	p->frame = FRAME_LINE;
	command_clear(p);
	strcpy(p->error_tag, "*");
	return p;
}

void imap_parser_free(struct imap_parser **parser)
{
	struct imap_parser *p = *parser;
	if (p == NULL)
		return;
	buf_free(&p->raw);
	buf_free(&p->name);
	free(p->tokens);
	free(p->stack);
	free(p->args);
	free(p);
	*parser = NULL;
}

void imap_parser_set_limits(struct imap_parser *p, const struct imap_parser_limits *limits)
{
	struct imap_parser_limits l = { 0 };
	if (limits != NULL)
		l = *limits;
	if (l.max_line == 0 || l.max_line > SIZE_MAX / 4)
		l.max_line = LIMIT_LINE_DEFAULT;
	if (l.max_literal == 0)
		l.max_literal = LIMIT_LITERAL_DEFAULT;
	if (l.max_depth == 0)
		l.max_depth = LIMIT_LIST_DEPTH;
	p->limits = l;
}

void imap_parser_set_utf8(struct imap_parser *p, bool utf8)
{
	p->utf8 = utf8;
}

const struct imap_command *imap_parser_command(const struct imap_parser *p)
{
	return &p->cmd;
}

const char *imap_parser_error(const struct imap_parser *p)
{
	return p->error;
}

const char *imap_parser_error_tag(const struct imap_parser *p)
{
	return p->error_tag;
}

uint64_t imap_parser_literal_size(const struct imap_parser *p)
{
	return p->lit_size;
}

bool imap_parser_literal_is_sync(const struct imap_parser *p)
{
	return p->lit_sync;
}

bool imap_parser_literal_too_large(const struct imap_parser *p)
{
	return p->lit_size > p->limits.max_literal;
}

const char *imap_parser_partial_tag(const struct imap_parser *p)
{
	return p->tag;
}

const char *imap_parser_partial_name(const struct imap_parser *p)
{
	return p->name.data != NULL ? p->name.data : "";
}

void imap_parser_literal_accept(struct imap_parser *p)
{
	assert(p->frame == FRAME_LITERAL_WAIT);
	/* Accepting more than the limit would be a caller bug: the limit is
	 * what keeps a client from making us allocate without bound. */
	assert(p->lit_size <= p->limits.max_literal);
	p->frame = FRAME_LITERAL;
	p->lit_left = p->lit_size;
	if (p->lit_left == 0)
		literal_done(p);
}

void imap_parser_literal_stream(struct imap_parser *p, imap_literal_sink_fn *sink, void *sink_ctx)
{
	assert(p->frame == FRAME_LITERAL_WAIT);
	assert(p->lit_size <= p->limits.max_literal);
	assert(sink != NULL);
	/* The literal's token is the last one: the announcement ends its
	 * segment. Its bytes never reach raw, so the next segment starts
	 * where they would have. */
	p->tokens[p->token_count - 1].streamed = true;
	p->frame = FRAME_LITERAL;
	p->lit_left = p->lit_size;
	p->sink = sink;
	p->sink_ctx = sink_ctx;
	if (p->lit_left == 0)
		literal_done(p);
}

void imap_parser_literal_reject(struct imap_parser *p)
{
	assert(p->frame == FRAME_LITERAL_WAIT);
	p->done = true;
	if (p->lit_sync) {
		/* RFC 9051 7.5: after a NO/BAD instead of "+", the client sends
		 * no literal; its next line is a new command. */
		p->frame = FRAME_LINE;
		return;
	}
	/* RFC 7888 4: the data of {n+} is on its way; skip it and whatever
	 * follows up to the end of the command, as after a syntax error. */
	p->skip_in_command = true;
	p->skip_left = p->lit_size;
	p->frame = FRAME_SKIP_LITERAL;
	if (p->skip_left == 0) {
		p->frame = FRAME_SKIP_LINE;
		tail_reset(p);
	}
}

void imap_parser_expect_line(struct imap_parser *p)
{
	assert(p->frame == FRAME_LINE && (p->done || p->first_segment));
	p->line_mode = true;
}

const char *imap_parser_line(const struct imap_parser *p, size_t *len_r)
{
	*len_r = p->line_len;
	return p->line != NULL ? p->line : "";
}

void imap_parser_reset(struct imap_parser *p)
{
	command_clear(p);
	buf_free(&p->raw);
	buf_free(&p->name);
	free(p->tokens);
	p->tokens = NULL;
	p->token_cap = 0;
	free(p->args);
	p->args = NULL;
	p->args_cap = 0;
	free(p->stack);
	p->stack = NULL;
	p->stack_cap = 0;
	p->frame = FRAME_LINE;
	p->line_mode = false;
	p->skip_in_command = false;
	p->sink = NULL;
	p->sink_ctx = NULL;
	tail_reset(p);
	memset(&p->cmd, 0, sizeof(p->cmd));
}

/* ---- argument helpers ---- */

bool imap_arg_is_list_mailbox(const struct imap_arg *arg)
{
	if (imap_arg_is_string(arg))
		return true;
	if (arg->type != IMAP_ARG_ATOM)
		return false;
	/* RFC 9051 9: list-mailbox = 1*list-char / string, where list-char
	 * adds the wildcards % and * to ASTRING-CHAR. */
	for (size_t i = 0; i < arg->len; i++) {
		unsigned char c = (unsigned char)arg->str[i];
		if (!is_atom_char(c) && c != ']' && c != '%' && c != '*')
			return false;
	}
	return arg->len > 0;
}

bool imap_arg_is_atom(const struct imap_arg *arg)
{
	return arg->type == IMAP_ARG_ATOM;
}

bool imap_arg_is_string(const struct imap_arg *arg)
{
	/* A streamed literal's bytes are elsewhere: no command may take it
	 * for a string it can read. */
	return arg->type == IMAP_ARG_STRING || (arg->type == IMAP_ARG_LITERAL && !arg->streamed);
}

bool imap_arg_is_streamed(const struct imap_arg *arg)
{
	return arg->type == IMAP_ARG_LITERAL && arg->streamed;
}

bool imap_arg_is_astring(const struct imap_arg *arg)
{
	if (imap_arg_is_string(arg))
		return true;
	if (arg->type != IMAP_ARG_ATOM)
		return false;
	/* RFC 9051 9: astring = 1*ASTRING-CHAR / string; no flags,
	 * wildcards or sections. */
	for (size_t i = 0; i < arg->len; i++) {
		unsigned char c = (unsigned char)arg->str[i];
		if (!is_atom_char(c) && c != ']')
			return false;
	}
	return arg->len > 0;
}

bool imap_arg_is_nil(const struct imap_arg *arg)
{
	return arg->type == IMAP_ARG_ATOM && arg->len == 3 && strcasecmp(arg->str, "NIL") == 0;
}

bool imap_arg_is_list(const struct imap_arg *arg)
{
	return arg->type == IMAP_ARG_LIST;
}

bool imap_arg_has_nul(const struct imap_arg *arg)
{
	return arg->type != IMAP_ARG_LIST && !arg->streamed && memchr(arg->str, '\0', arg->len) != NULL;
}
