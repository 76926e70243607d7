#include "imap/fetch_parse.h"
#include "core/buf.h"
#include "core/xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A cursor over the text of one fetch-att. */
struct cursor {
	const char *s;
	size_t len;
	size_t pos;
};

static bool at_end(const struct cursor *c)
{
	return c->pos >= c->len;
}

static char peek_char(const struct cursor *c)
{
	return at_end(c) ? '\0' : c->s[c->pos];
}

/* Consumes word if it comes next, case-insensitively (RFC 3501 9: the
 * grammar's strings are case-insensitive). */
static bool take_word(struct cursor *c, const char *word)
{
	size_t n = strlen(word);
	if (c->len - c->pos < n || strncasecmp(c->s + c->pos, word, n) != 0)
		return false;
	c->pos += n;
	return true;
}

/* number / nz-number; RFC 9051 9 widened partial to number64, and so do
 * we: the limit is 2^63 - 1 so origin + octets can't overflow. */
static bool take_number(struct cursor *c, bool nonzero, uint64_t *n_r)
{
	size_t start = c->pos;
	uint64_t n = 0;
	while (!at_end(c) && c->s[c->pos] >= '0' && c->s[c->pos] <= '9') {
		unsigned d = (unsigned)(c->s[c->pos] - '0');
		if (n > (UINT64_C(0x7fffffffffffffff) - d) / 10)
			return false;
		n = n * 10 + d;
		c->pos++;
	}
	if (c->pos == start)
		return false;
	if (nonzero && (n == 0 || c->s[start] == '0'))
		return false;
	*n_r = n;
	return true;
}

/* RFC 2822 2.2: a field name is printable US-ASCII without ':'. */
static bool is_ftext(unsigned char ch)
{
	return ch >= 33 && ch <= 126 && ch != ':';
}

/* ASTRING-CHAR without ']' (which closes the section here). */
static bool is_field_atom_char(unsigned char ch)
{
	return ch > 0x20 && ch < 0x7f && strchr("(){%*\"\\]", ch) == NULL;
}

/* header-fld-name = astring: an atom or a quoted string (a literal can't
 * be inside a section; the command parser refuses it). */
static int take_field_name(struct cursor *c, struct buf *out, const char **error_r)
{
	buf_clear(out);
	if (peek_char(c) == '"') {
		c->pos++;
		for (;;) {
			if (at_end(c)) {
				*error_r = "Unterminated quoted header field name";
				return -1;
			}
			char ch = c->s[c->pos++];
			if (ch == '"')
				break;
			if (ch == '\\') {
				if (at_end(c) || (c->s[c->pos] != '"' && c->s[c->pos] != '\\')) {
					*error_r = "Invalid escape in a quoted header field name";
					return -1;
				}
				ch = c->s[c->pos++];
			}
			buf_append_char(out, ch);
		}
	} else {
		while (!at_end(c) && is_field_atom_char((unsigned char)c->s[c->pos]))
			buf_append_char(out, c->s[c->pos++]);
	}
	if (out->len == 0) {
		*error_r = "Empty header field name in HEADER.FIELDS";
		return -1;
	}
	for (size_t i = 0; i < out->len; i++) {
		if (!is_ftext((unsigned char)out->data[i])) {
			*error_r = "Header field names are printable ASCII without ':' (RFC 2822 2.2)";
			return -1;
		}
	}
	return 0;
}

/* "(" header-fld-name *(SP header-fld-name) ")" */
static int take_header_list(struct cursor *c, struct fetch_section *sec, const char **error_r)
{
	if (!take_word(c, " (")) {
		*error_r = "HEADER.FIELDS must be followed by a space and a parenthesised list of field names";
		return -1;
	}
	struct buf name = BUF_INIT;
	size_t cap = 0;
	for (;;) {
		if (take_field_name(c, &name, error_r) < 0) {
			buf_free(&name);
			return -1;
		}
		if (sec->field_count == FETCH_MAX_FIELDS) {
			buf_free(&name);
			*error_r = "Too many header field names in HEADER.FIELDS (at most 256)";
			return -1;
		}
		if (sec->field_count == cap) {
			cap = cap ? cap * 2 : 8;
			sec->fields = xrealloc(sec->fields, cap * sizeof(*sec->fields));
		}
		sec->fields[sec->field_count++] = xstrndup(name.data, name.len);
		if (peek_char(c) == ')') {
			c->pos++;
			break;
		}
		if (peek_char(c) != ' ') {
			buf_free(&name);
			*error_r = "Header field names must be separated by single spaces and the list closed by ')'";
			return -1;
		}
		c->pos++;
	}
	buf_free(&name);
	return 0;
}

/* section-spec inside the brackets (RFC 3501 9):
 *	section-spec = section-msgtext / (section-part ["." section-text])
 *	section-text = section-msgtext / "MIME" */
static int take_section_spec(struct cursor *c, struct fetch_section *sec, const char **error_r)
{
	struct buf part = BUF_INIT;
	bool want_text = false;		/* a '.' after a number: a specifier must follow */
	while (peek_char(c) >= '0' && peek_char(c) <= '9') {
		uint64_t n;
		if (!take_number(c, true, &n) || n > UINT32_MAX) {
			buf_free(&part);
			*error_r = "Section part numbers are non-zero numbers without leading zeros";
			return -1;
		}
		buf_printf(&part, "%s%llu", part.len ? "." : "", (unsigned long long)n);
		want_text = false;
		if (peek_char(c) == '.') {
			c->pos++;
			want_text = true;
		}
	}
	sec->part = buf_steal(&part);
	if (sec->part == NULL)
		sec->part = xstrdup("");
	bool has_part = sec->part[0] != '\0';
	if (peek_char(c) == ']') {
		if (want_text) {
			*error_r = "Section ends with '.'";
			return -1;
		}
		sec->text = FETCH_TEXT_ALL;
		return 0;
	}
	if (has_part && !want_text) {
		*error_r = "Section part numbers are separated by '.'";
		return -1;
	}
	/* The longest keyword first: HEADER.FIELDS.NOT starts with HEADER. */
	if (take_word(c, "HEADER.FIELDS.NOT")) {
		sec->text = FETCH_TEXT_HEADER_FIELDS_NOT;
		return take_header_list(c, sec, error_r);
	}
	if (take_word(c, "HEADER.FIELDS")) {
		sec->text = FETCH_TEXT_HEADER_FIELDS;
		return take_header_list(c, sec, error_r);
	}
	if (take_word(c, "HEADER")) {
		sec->text = FETCH_TEXT_HEADER;
		return 0;
	}
	if (take_word(c, "TEXT")) {
		sec->text = FETCH_TEXT_TEXT;
		return 0;
	}
	if (take_word(c, "MIME")) {
		if (!has_part) {
			/* RFC 3501 6.4.5: "MIME MUST be prefixed by one or more
			 * numeric part specifiers". */
			*error_r = "MIME needs a part number before it (BODY[1.MIME])";
			return -1;
		}
		sec->text = FETCH_TEXT_MIME;
		return 0;
	}
	*error_r = "Unknown section: expected part numbers, HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT or MIME";
	return -1;
}

static bool field_needs_quotes(const char *name)
{
	for (const char *p = name; *p != '\0'; p++) {
		if (!is_field_atom_char((unsigned char)*p))
			return true;
	}
	return false;
}

/* The response names the section as it was asked (RFC 3501 7.4.2: BODY
 * section), in one canonical spelling: upper-case keywords, the field
 * names as the client wrote them. */
static char *section_name(const struct fetch_section *sec)
{
	static const char *const texts[] = {
		[FETCH_TEXT_ALL] = "",
		[FETCH_TEXT_HEADER] = "HEADER",
		[FETCH_TEXT_HEADER_FIELDS] = "HEADER.FIELDS",
		[FETCH_TEXT_HEADER_FIELDS_NOT] = "HEADER.FIELDS.NOT",
		[FETCH_TEXT_TEXT] = "TEXT",
		[FETCH_TEXT_MIME] = "MIME",
	};
	struct buf b = BUF_INIT;
	buf_printf(&b, "BODY[%s", sec->part);
	if (sec->text != FETCH_TEXT_ALL)
		buf_printf(&b, "%s%s", sec->part[0] ? "." : "", texts[sec->text]);
	if (sec->field_count > 0) {
		buf_append_str(&b, " (");
		for (size_t i = 0; i < sec->field_count; i++) {
			if (i > 0)
				buf_append_char(&b, ' ');
			if (!field_needs_quotes(sec->fields[i])) {
				buf_append_str(&b, sec->fields[i]);
				continue;
			}
			buf_append_char(&b, '"');
			for (const char *p = sec->fields[i]; *p != '\0'; p++) {
				if (*p == '"' || *p == '\\')
					buf_append_char(&b, '\\');
				buf_append_char(&b, *p);
			}
			buf_append_char(&b, '"');
		}
		buf_append_char(&b, ')');
	}
	buf_append_char(&b, ']');
	return buf_steal(&b);
}

static void section_free(struct fetch_section *sec)
{
	if (sec == NULL)
		return;
	free(sec->part);
	for (size_t i = 0; i < sec->field_count; i++)
		free(sec->fields[i]);
	free(sec->fields);
	free(sec->name);
	free(sec);
}

static bool same_section(const struct fetch_section *a, const struct fetch_section *b)
{
	return strcmp(a->name, b->name) == 0 && a->partial == b->partial &&
	       (!a->partial || (a->origin == b->origin && a->octets == b->octets));
}

/* Adds an item unless an equal one is there (a client asking twice gets
 * one answer). A section asked both with and without PEEK sets \Seen. */
static void add_item(struct fetch_request *req, enum fetch_item_type type, struct fetch_section *sec)
{
	for (size_t i = 0; i < req->count; i++) {
		struct fetch_item *it = &req->items[i];
		if (it->type != type)
			continue;
		if (type != FETCH_SECTION) {
			section_free(sec);
			return;
		}
		if (same_section(it->section, sec)) {
			it->section->peek = it->section->peek && sec->peek;
			section_free(sec);
			return;
		}
	}
	req->items = xrealloc(req->items, (req->count + 1) * sizeof(*req->items));
	req->items[req->count++] = (struct fetch_item){ .type = type, .section = sec };
}

static struct fetch_section *legacy_section(const char *name, enum fetch_section_text text, bool peek)
{
	struct fetch_section *sec = xcalloc(1, sizeof(*sec));
	sec->part = xstrdup("");
	sec->text = text;
	sec->peek = peek;
	sec->name = xstrdup(name);
	return sec;
}

/* BODY[...] or BODY.PEEK[...], from the '[' on. */
static int take_body_section(struct cursor *c, bool peek, struct fetch_request *req, const char **error_r)
{
	struct fetch_section *sec = xcalloc(1, sizeof(*sec));
	sec->peek = peek;
	c->pos++;	/* '[' */
	if (take_section_spec(c, sec, error_r) < 0)
		goto fail;
	if (peek_char(c) != ']') {
		*error_r = "Section must end with ']'";
		goto fail;
	}
	c->pos++;
	if (peek_char(c) == '<') {
		/* partial = "<" number "." nz-number ">" */
		c->pos++;
		if (!take_number(c, false, &sec->origin) || peek_char(c) != '.') {
			*error_r = "Partial must be <origin.octets>, e.g. <0.1024>";
			goto fail;
		}
		c->pos++;
		if (!take_number(c, true, &sec->octets) || peek_char(c) != '>') {
			*error_r = "Partial must be <origin.octets> with octets greater than 0";
			goto fail;
		}
		c->pos++;
		sec->partial = true;
	}
	if (!at_end(c)) {
		*error_r = "Unexpected text after the section";
		goto fail;
	}
	sec->name = section_name(sec);
	add_item(req, FETCH_SECTION, sec);
	return 0;
fail:
	section_free(sec);
	return -1;
}

int fetch_parse_item(const char *text, size_t len, struct fetch_request *req, const char **error_r)
{
	static const struct {
		const char *name;
		enum fetch_item_type type;
	} simple[] = {
		{ "UID", FETCH_UID },
		{ "FLAGS", FETCH_FLAGS },
		{ "INTERNALDATE", FETCH_INTERNALDATE },
		{ "RFC822.SIZE", FETCH_RFC822_SIZE },
		{ "ENVELOPE", FETCH_ENVELOPE },
		{ "BODYSTRUCTURE", FETCH_BODYSTRUCTURE },
		{ "BODY", FETCH_BODY },
	};
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		if (strlen(simple[i].name) == len && strncasecmp(text, simple[i].name, len) == 0) {
			add_item(req, simple[i].type, NULL);
			return 0;
		}
	}
	/* RFC 3501 6.4.5: RFC822 is BODY[], RFC822.HEADER is BODY.PEEK[HEADER]
	 * and RFC822.TEXT is BODY[TEXT], each answered under its own name. */
	if (len == 6 && strncasecmp(text, "RFC822", 6) == 0) {
		add_item(req, FETCH_SECTION, legacy_section("RFC822", FETCH_TEXT_ALL, false));
		return 0;
	}
	if (len == 13 && strncasecmp(text, "RFC822.HEADER", 13) == 0) {
		add_item(req, FETCH_SECTION, legacy_section("RFC822.HEADER", FETCH_TEXT_HEADER, true));
		return 0;
	}
	if (len == 11 && strncasecmp(text, "RFC822.TEXT", 11) == 0) {
		add_item(req, FETCH_SECTION, legacy_section("RFC822.TEXT", FETCH_TEXT_TEXT, false));
		return 0;
	}
	struct cursor c = { .s = text, .len = len };
	if (take_word(&c, "BODY.PEEK[")) {
		c.pos--;
		return take_body_section(&c, true, req, error_r);
	}
	if (take_word(&c, "BODY[")) {
		c.pos--;
		return take_body_section(&c, false, req, error_r);
	}
	if (take_word(&c, "BINARY")) {
		*error_r = "BINARY is not supported";
		return -1;
	}
	if (len == 3 && (strncasecmp(text, "ALL", 3) == 0)) {
		*error_r = "The macro ALL must be used alone, not in a list (RFC 3501 6.4.5)";
		return -1;
	}
	if (len == 4 && (strncasecmp(text, "FAST", 4) == 0 || strncasecmp(text, "FULL", 4) == 0)) {
		*error_r = "The macros FAST and FULL must be used alone, not in a list (RFC 3501 6.4.5)";
		return -1;
	}
	*error_r = "Unknown FETCH data item";
	return -1;
}

/* RFC 3501 6.4.5: ALL, FAST and FULL. */
static bool expand_macro(const struct imap_arg *arg, struct fetch_request *req)
{
	static const enum fetch_item_type fast[] = { FETCH_FLAGS, FETCH_INTERNALDATE, FETCH_RFC822_SIZE };
	size_t extra;
	if (strcasecmp(arg->str, "FAST") == 0)
		extra = 0;
	else if (strcasecmp(arg->str, "ALL") == 0)
		extra = 1;
	else if (strcasecmp(arg->str, "FULL") == 0)
		extra = 2;
	else
		return false;
	for (size_t i = 0; i < 3; i++)
		add_item(req, fast[i], NULL);
	if (extra >= 1)
		add_item(req, FETCH_ENVELOPE, NULL);
	if (extra >= 2)
		add_item(req, FETCH_BODY, NULL);
	return true;
}

int fetch_parse(const struct imap_arg *arg, struct fetch_request *req_r, const char **error_r)
{
	*req_r = (struct fetch_request){ 0 };
	if (imap_arg_is_atom(arg)) {
		if (expand_macro(arg, req_r))
			return 0;
		if (fetch_parse_item(arg->str, arg->len, req_r, error_r) < 0) {
			fetch_request_free(req_r);
			return -1;
		}
		return 0;
	}
	if (!imap_arg_is_list(arg)) {
		*error_r = "FETCH data items must be an atom or a parenthesised list";
		return -1;
	}
	if (arg->list_count == 0) {
		*error_r = "Empty list of FETCH data items";
		return -1;
	}
	for (size_t i = 0; i < arg->list_count; i++) {
		const struct imap_arg *a = &arg->list[i];
		if (!imap_arg_is_atom(a)) {
			*error_r = imap_arg_is_list(a) ? "Nested lists are not FETCH data items"
						       : "FETCH data items are atoms, not strings";
			fetch_request_free(req_r);
			return -1;
		}
		if (fetch_parse_item(a->str, a->len, req_r, error_r) < 0) {
			fetch_request_free(req_r);
			return -1;
		}
	}
	return 0;
}

void fetch_request_free(struct fetch_request *req)
{
	for (size_t i = 0; i < req->count; i++)
		section_free(req->items[i].section);
	free(req->items);
	req->items = NULL;
	req->count = 0;
}

bool fetch_request_has(const struct fetch_request *req, enum fetch_item_type type)
{
	for (size_t i = 0; i < req->count; i++) {
		if (req->items[i].type == type)
			return true;
	}
	return false;
}
