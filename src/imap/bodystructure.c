/* BODY and BODYSTRUCTURE, following the RFC 3501 9 grammar (body,
 * body-type-1part, body-type-mpart, body-ext-*) and the defaults of
 * RFC 2045 5.2 and 6.1. */
#include "imap/bodystructure.h"
#include "imap/envelope.h"
#include "imap/istring.h"

#include <string.h>

/* body-fld-param: ("name" "value" ...) or NIL. */
static void write_params(struct buf *out, const struct mime_params *params,
			 bool add_charset)
{
	if (params->count == 0 && !add_charset) {
		buf_append_str(out, "NIL");
		return;
	}
	buf_append_char(out, '(');
	bool first = true;
	if (add_charset) {
		/* RFC 2046 4.1.2: text without a charset is US-ASCII;
		 * saying so spares the client the default. */
		buf_append_str(out, "\"charset\" \"us-ascii\"");
		first = false;
	}
	for (size_t i = 0; i < params->count; i++) {
		if (!first)
			buf_append_char(out, ' ');
		first = false;
		imap_istring_write_cstr(out, params->v[i].name);
		buf_append_char(out, ' ');
		imap_istring_write_cstr(out, params->v[i].value);
	}
	buf_append_char(out, ')');
}

/* body-fld-dsp SP body-fld-lang SP body-fld-loc */
static void write_dsp_lang_loc(struct buf *out, const struct mime_part *part)
{
	if (part->disposition == NULL) {
		buf_append_str(out, "NIL");
	} else {
		buf_append_char(out, '(');
		imap_istring_write_cstr(out, part->disposition);
		buf_append_char(out, ' ');
		write_params(out, &part->disposition_params, false);
		buf_append_char(out, ')');
	}
	buf_append_char(out, ' ');
	if (part->language_count == 0) {
		buf_append_str(out, "NIL");
	} else {
		/* Always the list form: one grammar for clients to parse. */
		buf_append_char(out, '(');
		for (size_t i = 0; i < part->language_count; i++) {
			if (i > 0)
				buf_append_char(out, ' ');
			imap_istring_write_cstr(out, part->languages[i]);
		}
		buf_append_char(out, ')');
	}
	buf_append_char(out, ' ');
	imap_istring_write_cstr(out, part->location);
}

static void write_part(struct buf *out, const struct mime_part *part,
		       const char *data, bool extended);

static void write_multipart(struct buf *out, const struct mime_part *part,
			    const char *data, bool extended)
{
	buf_append_char(out, '(');
	if (part->children == NULL || (part->flags & MIME_PART_MULTIPART) == 0) {
		/* RFC 3501 9: body-type-mpart = 1*body; a multipart whose
		 * boundary never appears gets one empty text part. */
		buf_append_str(out, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0");
		if (extended)
			buf_append_str(out, " NIL NIL NIL NIL");
		buf_append_char(out, ')');
	} else {
		for (const struct mime_part *c = part->children; c != NULL; c = c->next)
			write_part(out, c, data, extended);
	}
	buf_append_char(out, ' ');
	imap_istring_write_cstr(out, part->subtype);
	if (extended) {
		/* body-ext-mpart: the parameters (boundary included), then
		 * disposition, language, location. */
		buf_append_char(out, ' ');
		write_params(out, &part->params, false);
		buf_append_char(out, ' ');
		write_dsp_lang_loc(out, part);
	}
	buf_append_char(out, ')');
}

static void write_part(struct buf *out, const struct mime_part *part,
		       const char *data, bool extended)
{
	if (strcmp(part->type, "multipart") == 0) {
		write_multipart(out, part, data, extended);
		return;
	}
	bool text = strcmp(part->type, "text") == 0;
	/* RFC 3501 9 body-type-msg is MESSAGE/RFC822 only: message/global
	 * (RFC 6532) is written as a basic part, as Dovecot does. */
	bool rfc822 = (part->flags & MIME_PART_MESSAGE) != 0 &&
		strcmp(part->subtype, "rfc822") == 0 && part->children != NULL;

	buf_append_char(out, '(');
	imap_istring_write_cstr(out, part->type);
	buf_append_char(out, ' ');
	imap_istring_write_cstr(out, part->subtype);
	buf_append_char(out, ' ');
	write_params(out, &part->params, text && mime_part_charset(part) == NULL);
	buf_append_char(out, ' ');
	imap_istring_write_cstr(out, part->id);
	buf_append_char(out, ' ');
	imap_istring_write_cstr(out, part->description);
	buf_append_char(out, ' ');
	/* RFC 2045 6.1: no Content-Transfer-Encoding means 7bit. */
	imap_istring_write_cstr(out, part->encoding != NULL && part->encoding[0] != '\0' ?
				part->encoding : "7bit");
	buf_printf(out, " %zu", part->body_size);
	if (rfc822) {
		buf_append_char(out, ' ');
		imap_write_envelope(out, part->children, data);
		buf_append_char(out, ' ');
		write_part(out, part->children, data, extended);
		buf_printf(out, " %zu", part->body_lines);
	} else if (text) {
		buf_printf(out, " %zu", part->body_lines);
	}
	if (extended) {
		/* body-ext-1part: md5, disposition, language, location. */
		buf_append_char(out, ' ');
		imap_istring_write_cstr(out, part->md5);
		buf_append_char(out, ' ');
		write_dsp_lang_loc(out, part);
	}
	buf_append_char(out, ')');
}

void imap_write_bodystructure(struct buf *out, const struct mime_part *part,
			      const char *data, bool extended)
{
	write_part(out, part, data, extended);
}
