/* ENVELOPE (RFC 3501 7.4.2) with an RFC 2822 3.4 address list parser.
 *
 * The address parser is forgiving in the way clients expect of IMAP
 * servers: junk after an address is dropped up to the next comma, a
 * mailbox without a domain still appears (with a placeholder host, since a
 * NIL host would read as a group marker), and obsolete forms (routes,
 * dotted phrases, comments anywhere) are understood. */
#include "imap/envelope.h"
#include "imap/istring.h"

#include <stdbool.h>
#include <string.h>

/* RFC 3501 7.4.2 gives no syntax for an address without a mailbox or
 * domain; these are the placeholders Dovecot uses, which clients know. */
#define MISSING_MAILBOX "MISSING_MAILBOX"
#define MISSING_DOMAIN "MISSING_DOMAIN"

enum tok_type { TOK_END, TOK_ATOM, TOK_QUOTED, TOK_DLITERAL, TOK_SPECIAL };

struct alex {
	const char *s;
	size_t len, pos;
	struct buf word;	/* the current token's text */
	struct buf comment;	/* the first comment since reset */
	bool bad;		/* an unterminated quoted string was seen */
};

struct address {
	struct buf name, adl, mailbox, domain;
	bool has_domain;
};

static bool is_atext(unsigned char c)
{
	/* RFC 2822 3.2.4 atext, plus '.' so a dotted obs-phrase such as
	 * Joe Q. Public stays one word; 8-bit bytes are kept as text. */
	if (c <= 0x20 || c == 0x7f)
		return false;
	return strchr("()<>[]:;@\\,\"", c) == NULL;
}

static void alex_skip_cfws(struct alex *l)
{
	while (l->pos < l->len) {
		char c = l->s[l->pos];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			l->pos++;
			continue;
		}
		if (c != '(')
			return;
		/* RFC 2822 3.2.3 comment; the first one is remembered as a
		 * name for "addr (Name)" when no phrase gives one. */
		bool keep = l->comment.len == 0;
		size_t depth = 0;
		while (l->pos < l->len) {
			c = l->s[l->pos++];
			if (c == '\\' && l->pos < l->len) {
				c = l->s[l->pos++];
			} else if (c == '(') {
				if (depth++ == 0)
					continue;
			} else if (c == ')') {
				if (--depth == 0)
					break;
			}
			if (keep)
				buf_append_char(&l->comment, c);
		}
	}
}

/* Reads the next token into l->word; a special's byte is returned in it. */
static enum tok_type alex_next(struct alex *l)
{
	buf_clear(&l->word);
	alex_skip_cfws(l);
	if (l->pos >= l->len)
		return TOK_END;
	unsigned char c = (unsigned char)l->s[l->pos];
	if (c == '"') {
		l->pos++;
		while (l->pos < l->len && l->s[l->pos] != '"') {
			if (l->s[l->pos] == '\\' && l->pos + 1 < l->len)
				l->pos++;
			buf_append_char(&l->word, l->s[l->pos++]);
		}
		if (l->pos >= l->len)
			l->bad = true;
		else
			l->pos++;
		return TOK_QUOTED;
	}
	if (c == '[') {
		size_t start = l->pos;
		while (l->pos < l->len && l->s[l->pos] != ']') {
			if (l->s[l->pos] == '\\' && l->pos + 1 < l->len)
				l->pos++;
			l->pos++;
		}
		if (l->pos < l->len)
			l->pos++;
		buf_append(&l->word, l->s + start, l->pos - start);
		return TOK_DLITERAL;
	}
	if (is_atext(c)) {
		size_t start = l->pos;
		while (l->pos < l->len && is_atext((unsigned char)l->s[l->pos]))
			l->pos++;
		buf_append(&l->word, l->s + start, l->pos - start);
		return TOK_ATOM;
	}
	l->pos++;
	buf_append_char(&l->word, (char)c);
	return TOK_SPECIAL;
}

/* Looks at the next token without consuming it. */
static enum tok_type alex_peek(struct alex *l, char *special_r)
{
	/* A comment read here stays remembered: reading it again later
	 * does not add it twice, as only the first is kept. */
	size_t pos = l->pos;
	enum tok_type t = alex_next(l);
	*special_r = t == TOK_SPECIAL ? l->word.data[0] : '\0';
	l->pos = pos;
	return t;
}

static void write_buf_nstring(struct buf *out, const struct buf *b, bool nil_if_empty)
{
	if (b->len == 0 && nil_if_empty)
		buf_append_str(out, "NIL");
	else
		imap_istring_write(out, b->data != NULL ? b->data : "", b->len);
}

static void write_address(struct buf *out, struct address *a)
{
	buf_append_char(out, '(');
	write_buf_nstring(out, &a->name, true);
	buf_append_char(out, ' ');
	write_buf_nstring(out, &a->adl, true);
	buf_append_char(out, ' ');
	if (a->mailbox.len == 0)
		buf_append_str(out, "\"" MISSING_MAILBOX "\"");
	else
		write_buf_nstring(out, &a->mailbox, false);
	buf_append_char(out, ' ');
	if (!a->has_domain || a->domain.len == 0)
		buf_append_str(out, "\"" MISSING_DOMAIN "\"");
	else
		write_buf_nstring(out, &a->domain, false);
	buf_append_char(out, ')');
}

/* domain = dot-atom / domain-literal / obs-domain: tokens joined bare. */
static void read_domain(struct alex *l, struct buf *domain)
{
	char sp;
	for (;;) {
		enum tok_type t = alex_peek(l, &sp);
		if (t != TOK_ATOM && t != TOK_DLITERAL)
			return;
		alex_next(l);
		buf_append(domain, l->word.data, l->word.len);
	}
}

/* Skips to the end of the current address: the next ',' (consumed), a ';'
 * closing the group (left), or the end. */
static void skip_rest(struct alex *l, bool in_group)
{
	char sp;
	for (;;) {
		enum tok_type t = alex_peek(l, &sp);
		if (t == TOK_END || (t == TOK_SPECIAL && sp == ';' && in_group))
			return;
		alex_next(l);
		if (t == TOK_SPECIAL && sp == ',')
			return;
	}
}

/* At '<': obs-route, then addr-spec, then '>' (RFC 2822 3.4, 4.4). */
static void read_angle_addr(struct alex *l, struct address *a)
{
	char sp;
	enum tok_type t;
	alex_next(l);	/* '<' */
	while ((t = alex_peek(l, &sp)) == TOK_SPECIAL && (sp == '@' || sp == ',')) {
		alex_next(l);
		if (sp == ',') {
			continue;
		}
		if (a->adl.len > 0)
			buf_append_char(&a->adl, ',');
		buf_append_char(&a->adl, '@');
		read_domain(l, &a->adl);
	}
	if (a->adl.len > 0 && t == TOK_SPECIAL && sp == ':')
		alex_next(l);
	for (;;) {
		t = alex_peek(l, &sp);
		if (t != TOK_ATOM && t != TOK_QUOTED)
			break;
		alex_next(l);
		buf_append(&a->mailbox, l->word.data, l->word.len);
	}
	if (t == TOK_SPECIAL && sp == '@') {
		alex_next(l);
		a->has_domain = true;
		read_domain(l, &a->domain);
	}
	if (alex_peek(l, &sp) == TOK_SPECIAL && sp == '>')
		alex_next(l);
}

/* Reads one mailbox or group and writes it. Returns false at the end or at
 * a ';' closing the group we are in. */
static bool parse_address(struct alex *l, struct buf *out, bool in_group, bool *wrote)
{
	struct address a = { BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, false };
	struct buf phrase = BUF_INIT, local = BUF_INIT;
	bool words = false, ret = true;
	char sp;
	enum tok_type t;

	buf_clear(&l->comment);
	l->bad = false;
	while ((t = alex_peek(l, &sp)) == TOK_SPECIAL && sp == ',')
		alex_next(l);
	if (t == TOK_END || (t == TOK_SPECIAL && sp == ';' && in_group)) {
		ret = false;
		goto out;
	}
	/* The phrase, or the local part of a bare addr-spec. */
	while ((t = alex_peek(l, &sp)) == TOK_ATOM || t == TOK_QUOTED) {
		alex_next(l);
		if (l->word.len > 0) {
			if (phrase.len > 0)
				buf_append_char(&phrase, ' ');
			buf_append(&phrase, l->word.data, l->word.len);
		}
		buf_append(&local, l->word.data, l->word.len);
		words = true;
	}
	if (t == TOK_SPECIAL && sp == ':' && !in_group) {
		/* RFC 2822 3.4 group: start marker, members, end marker. */
		alex_next(l);
		buf_printf(out, "(NIL NIL ");
		imap_istring_write(out, phrase.data != NULL ? phrase.data : "", phrase.len);
		buf_append_str(out, " NIL)");
		bool member = false;
		while (parse_address(l, out, true, &member))
			;
		if (alex_peek(l, &sp) == TOK_SPECIAL && sp == ';')
			alex_next(l);
		buf_append_str(out, "(NIL NIL NIL NIL)");
		*wrote = true;
		skip_rest(l, in_group);
		goto out;
	}
	if (t == TOK_SPECIAL && sp == '<') {
		buf_append(&a.name, phrase.data, phrase.len);
		read_angle_addr(l, &a);
	} else if (t == TOK_SPECIAL && sp == '@') {
		alex_next(l);
		buf_append(&a.mailbox, local.data, local.len);
		a.has_domain = true;
		read_domain(l, &a.domain);
	} else if (words) {
		buf_append(&a.mailbox, local.data, local.len);
	} else if (t == TOK_SPECIAL && sp == ';') {
		/* A ';' with no open group: nothing to say. */
		alex_next(l);
		goto out;
	} else {
		/* A stray special or literal: skip the address. */
		skip_rest(l, in_group);
		goto out;
	}
	if (a.name.len == 0 && l->comment.len > 0)
		buf_append(&a.name, l->comment.data, l->comment.len);
	bool bad = l->bad;
	skip_rest(l, in_group);
	if (!bad) {
		write_address(out, &a);
		*wrote = true;
	}
out:
	buf_free(&a.name);
	buf_free(&a.adl);
	buf_free(&a.mailbox);
	buf_free(&a.domain);
	buf_free(&phrase);
	buf_free(&local);
	return ret;
}

/* Writes an address list, or NIL when nothing parses out of it. */
static void write_address_list(struct buf *out, const char *v, size_t len)
{
	struct alex l = { v, len, 0, BUF_INIT, BUF_INIT, false };
	size_t mark = out->len;
	bool wrote = false;
	buf_append_char(out, '(');
	while (l.pos < l.len) {
		size_t before = l.pos;
		if (!parse_address(&l, out, false, &wrote) && l.pos == before)
			break;
		/* A ';' outside a group returns false but moved on. */
	}
	if (wrote) {
		buf_append_char(out, ')');
	} else {
		out->len = mark;
		buf_append_str(out, "NIL");
	}
	buf_free(&l.word);
	buf_free(&l.comment);
}

enum env_field {
	ENV_DATE, ENV_SUBJECT, ENV_FROM, ENV_SENDER, ENV_REPLY_TO, ENV_TO,
	ENV_CC, ENV_BCC, ENV_IN_REPLY_TO, ENV_MESSAGE_ID, ENV_COUNT
};

static const char *const env_names[ENV_COUNT] = {
	"date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc",
	"in-reply-to", "message-id",
};

static bool name_eq(const char *name, size_t len, const char *want)
{
	if (len != strlen(want))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (c != want[i])
			return false;
	}
	return true;
}

void imap_write_envelope(struct buf *out, const struct mime_part *msg, const char *data)
{
	struct mime_header_field fields[ENV_COUNT], f;
	bool have[ENV_COUNT] = { false };
	size_t pos = 0;

	/* One pass over the header; the first of each field counts
	 * (RFC 2822 3.6 allows each of these once). */
	while (mime_header_next(msg, data, &pos, &f) > 0) {
		for (int i = 0; i < ENV_COUNT; i++) {
			if (!have[i] && name_eq(f.name, f.name_len, env_names[i])) {
				fields[i] = f;
				have[i] = true;
				break;
			}
		}
	}

	struct buf v = BUF_INIT;
	/* RFC 3501 7.4.2: Sender and Reply-To default to From when absent
	 * or empty. */
	for (int i = ENV_SENDER; i <= ENV_REPLY_TO; i++) {
		if (have[i]) {
			buf_clear(&v);
			mime_header_unfold(fields[i].value, fields[i].value_len, &v);
			if (v.len == 0)
				have[i] = false;
		}
		if (!have[i] && have[ENV_FROM]) {
			fields[i] = fields[ENV_FROM];
			have[i] = true;
		}
	}

	buf_append_char(out, '(');
	for (int i = 0; i < ENV_COUNT; i++) {
		if (i > 0)
			buf_append_char(out, ' ');
		if (!have[i]) {
			buf_append_str(out, "NIL");
			continue;
		}
		buf_clear(&v);
		mime_header_unfold(fields[i].value, fields[i].value_len, &v);
		const char *s = v.data != NULL ? v.data : "";
		if (i >= ENV_FROM && i <= ENV_BCC)
			write_address_list(out, s, v.len);
		else
			imap_istring_write(out, s, v.len);
	}
	buf_append_char(out, ')');
	buf_free(&v);
}
