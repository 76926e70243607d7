/* Tests of src/mime and the ENVELOPE/BODYSTRUCTURE writers.
 *
 * The corpus in tests/data/mime/ comes with Dovecot's answers in golden/
 * (recorded by tests/data/mime/record-dovecot.sh). Both sides are brought
 * to one canonical form first (quoted and literal strings alike), so only
 * meaning is compared; every deliberate difference is listed in
 * `differences` below and explained in docs/mime-differences.md. */
#include "harness.h"

#include "core/buf.h"
#include "core/limits.h"
#include "imap/bodystructure.h"
#include "imap/envelope.h"
#include "imap/istring.h"
#include "mime/mime.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CORPUS "tests/data/mime"

static char *read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	struct buf b = BUF_INIT;
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	*len_r = b.len;
	if (b.data == NULL)
		buf_reserve(&b, 1);
	return buf_steal(&b);
}

/* ---- canonical form of an IMAP value: strings always quoted ---- */

static void canon(const char *s, size_t len, struct buf *out)
{
	size_t i = 0;
	bool need_space = false;
	while (i < len) {
		char c = s[i];
		if (c == ' ' || c == '\r' || c == '\n') {
			i++;
			continue;
		}
		if (c == ')') {
			buf_append_char(out, ')');
			need_space = true;
			i++;
			continue;
		}
		if (need_space)
			buf_append_char(out, ' ');
		if (c == '(') {
			buf_append_char(out, '(');
			need_space = false;
			i++;
			continue;
		}
		need_space = true;
		const char *str = NULL;
		size_t slen = 0;
		struct buf tmp = BUF_INIT;
		if (c == '"') {
			for (i++; i < len && s[i] != '"'; i++) {
				if (s[i] == '\\' && i + 1 < len)
					i++;
				buf_append_char(&tmp, s[i]);
			}
			i++;
			str = tmp.data != NULL ? tmp.data : "";
			slen = tmp.len;
		} else if (c == '{') {
			size_t n = strtoul(s + i + 1, NULL, 10);
			const char *nl = memchr(s + i, '\n', len - i);
			i = nl != NULL ? (size_t)(nl - s) + 1 : len;
			if (n > len - i)
				n = len - i;
			str = s + i;
			slen = n;
			i += n;
		} else {
			size_t st = i;
			while (i < len && s[i] != ' ' && s[i] != '(' && s[i] != ')')
				i++;
			buf_append(out, s + st, i - st);
			continue;
		}
		buf_append_char(out, '"');
		for (size_t k = 0; k < slen; k++) {
			if (str[k] == '"' || str[k] == '\\')
				buf_append_char(out, '\\');
			buf_append_char(out, str[k]);
		}
		buf_append_char(out, '"');
		buf_free(&tmp);
	}
}

/* ---- golden comparison ---- */

/* A deliberate difference from Dovecot: in the canonical golden answer for
 * `item` of message `name`, `dovecot` is replaced by `postern` (an empty
 * `dovecot` means the item is not compared at all). */
struct difference {
	const char *name, *item, *dovecot, *postern;
};

static const struct difference differences[] = {
	/* RFC 2045 5.2: an invalid Content-Type means text/plain. */
	{ "bad-content-type", "BODYSTRUCTURE", "(\"text\" \"\" ", "(\"text\" \"plain\" " },
	{ "bad-content-type", "BODY", "(\"text\" \"\" ", "(\"text\" \"plain\" " },
	/* Unstructured values are trimmed at both ends (RFC 2822 2.2.3
	 * unfolding; the blanks carry no meaning). */
	{ "bad-content-type", "BODYSTRUCTURE", "\"<spaced@id>   \"", "\"<spaced@id>\"" },
	{ "bad-content-type", "BODY", "\"<spaced@id>   \"", "\"<spaced@id>\"" },
	{ "bad-addresses", "ENVELOPE", "(\"  \" ", "(\"\" " },
	{ "bad-addresses", "ENVELOPE", "\"  <x@y>\"", "\"<x@y>\"" },
	/* RFC 2046 4.1.2 gives charset values case-insensitively; postern
	 * sends the value as written, Dovecot lowercases US-ASCII. */
	{ "simple-crlf", "BODYSTRUCTURE", "\"us-ascii\"", "\"US-ASCII\"" },
	{ "simple-crlf", "BODY", "\"us-ascii\"", "\"US-ASCII\"" },
	/* NUL in section content: RFC 3501 9 forbids it in a literal. The
	 * test sends the header through the ENVELOPE string writer (U+FFFD);
	 * Dovecot's FETCH sends 0x80. What FETCH sends is the FETCH layer's
	 * choice, not this module's. */
	{ "nul-bytes", "BODY[1.MIME]", "nul\x80in", "nul\xef\xbf\xbdin" },
	/* A multipart without boundary has no part 1 in postern's tree;
	 * Dovecot invents an empty one. */
	{ "multipart-no-boundary", "BODY[1.MIME]", "", NULL },
	{ "wrong-boundary", "BODY[1.MIME]", "", NULL },
};

static const char *apply_differences(const char *name, const char *item, struct buf *golden)
{
	for (size_t i = 0; i < sizeof(differences) / sizeof(differences[0]); i++) {
		const struct difference *d = &differences[i];
		if (strcmp(d->name, name) != 0 || strcmp(d->item, item) != 0)
			continue;
		if (d->dovecot[0] == '\0')
			return "skip";
		char *at = strstr(golden->data, d->dovecot);
		if (at == NULL)
			return d->dovecot;	/* the golden file changed */
		struct buf nb = BUF_INIT;
		buf_append(&nb, golden->data, (size_t)(at - golden->data));
		buf_append_str(&nb, d->postern);
		buf_append_str(&nb, at + strlen(d->dovecot));
		buf_free(golden);
		*golden = nb;
	}
	return NULL;
}

/* What postern would send for one FETCH item. */
static void postern_item(const char *item, const struct mime_part *root,
			 const char *data, struct buf *out)
{
	if (strcmp(item, "ENVELOPE") == 0) {
		imap_write_envelope(out, root, data);
	} else if (strcmp(item, "BODYSTRUCTURE") == 0) {
		imap_write_bodystructure(out, root, data, true);
	} else if (strcmp(item, "BODY") == 0) {
		imap_write_bodystructure(out, root, data, false);
	} else if (strcmp(item, "BODY[1.MIME]") == 0) {
		const struct mime_part *p;
		if (mime_find_section(root, "1", &p) < 0) {
			buf_append_str(out, "NIL");
			return;
		}
		/* The FETCH layer sends lines CRLF-terminated. */
		struct buf h = BUF_INIT;
		for (size_t i = p->header_start; i < p->body_start; i++) {
			if (data[i] == '\n' && (i == p->header_start || data[i - 1] != '\r'))
				buf_append_char(&h, '\r');
			buf_append_char(&h, data[i]);
		}
		CHECK_INT(h.len, p->header_size);
		imap_istring_write(out, h.data != NULL ? h.data : "", h.len);
		buf_free(&h);
	}
}

static int golden_items_checked;

static void check_golden(const char *name)
{
	char path[512];
	size_t len, glen;
	snprintf(path, sizeof(path), CORPUS "/%s.eml", name);
	char *data = read_file(path, &len);
	snprintf(path, sizeof(path), CORPUS "/golden/%s.txt", name);
	char *golden = read_file(path, &glen);
	CHECK(data != NULL && golden != NULL);
	if (data == NULL || golden == NULL) {
		free(data);
		free(golden);
		return;
	}
	struct mime_part *root = mime_parse(data, len);
	size_t pos = 0;
	while (pos < glen && strncmp(golden + pos, "== ", 3) == 0) {
		char item[64];
		size_t n;
		if (sscanf(golden + pos, "== %63s %zu", item, &n) != 2)
			break;
		pos = (size_t)((char *)memchr(golden + pos, '\n', glen - pos) - golden) + 1;
		struct buf want = BUF_INIT, got = BUF_INIT, raw = BUF_INIT;
		canon(golden + pos, n, &want);
		pos += n + 1;
		postern_item(item, root, data, &raw);
		canon(raw.data != NULL ? raw.data : "", raw.len, &got);
		const char *problem = apply_differences(name, item, &want);
		if (problem == NULL || strcmp(problem, "skip") != 0) {
			if (problem != NULL)
				fprintf(stderr, "%s %s: difference not found: %s\n", name, item, problem);
			CHECK(problem == NULL);
			if (got.data == NULL || want.data == NULL ||
			    strcmp(got.data, want.data) != 0)
				fprintf(stderr, "golden mismatch: %s %s\n", name, item);
			CHECK_STR(got.data, want.data);
			golden_items_checked++;
		}
		buf_free(&want);
		buf_free(&got);
		buf_free(&raw);
	}
	mime_free(&root);
	CHECK(root == NULL);
	free(data);
	free(golden);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_golden_corpus(void)
{
	DIR *d = opendir(CORPUS "/golden");
	CHECK(d != NULL);
	if (d == NULL)
		return;
	char *names[256];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n < 256) {
		size_t l = strlen(e->d_name);
		if (l > 4 && strcmp(e->d_name + l - 4, ".txt") == 0)
			names[n++] = strndup(e->d_name, l - 4);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_str);
	CHECK(n >= 15);
	for (size_t i = 0; i < n; i++) {
		check_golden(names[i]);
		free(names[i]);
	}
	printf("     %zu messages, %d items compared with Dovecot\n", n, golden_items_checked);
	CHECK(golden_items_checked >= 4 * 15);
}

/* ---- helpers ---- */

static struct mime_part *parse_str(const char *s)
{
	return mime_parse(s, strlen(s));
}

static char *body_of(const struct mime_part *p, const char *data)
{
	return strndup(data + p->body_start, p->body_end - p->body_start);
}

/* Every part lies inside its parent and its offsets are ordered. */
static void check_invariants(const struct mime_part *p, size_t len, size_t lo, size_t hi)
{
	CHECK(p->header_start >= lo && p->header_start <= p->body_start);
	CHECK(p->body_start <= p->body_end && p->body_end <= hi && hi <= len);
	CHECK(p->depth <= 2 * LIMIT_MIME_DEPTH + 1);
	CHECK(p->type != NULL && p->subtype != NULL);
	unsigned n = 0;
	for (const struct mime_part *c = p->children; c != NULL; c = c->next) {
		CHECK(c->parent == p);
		check_invariants(c, len, p->body_start, p->body_end > c->body_end ? p->body_end : c->body_end);
		n++;
	}
	CHECK_INT(n, p->child_count);
}

/* Parses, checks the invariants and writes everything: no crash, and the
 * parentheses of the BODYSTRUCTURE balance. Returns the tree. */
static struct mime_part *parse_and_write(const char *data, size_t len, struct buf *out)
{
	struct mime_part *root = mime_parse(data, len);
	check_invariants(root, len, 0, len);
	imap_write_envelope(out, root, data);
	size_t start = out->len;
	imap_write_bodystructure(out, root, data, true);
	long depth = 0;
	bool in_quote = false;
	for (size_t i = start; i < out->len; i++) {
		char c = out->data[i];
		if (in_quote) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_quote = false;
		} else if (c == '"') {
			in_quote = true;
		} else if (c == '{') {
			size_t n = strtoul(out->data + i + 1, NULL, 10);
			char *nl = memchr(out->data + i, '\n', out->len - i);
			i = (size_t)(nl - out->data) + n;
		} else if (c == '(') {
			depth++;
		} else if (c == ')') {
			CHECK(--depth >= 0);
		}
	}
	CHECK_INT(depth, 0);
	return root;
}

/* ---- header access ---- */

static void test_header_access(void)
{
	const char *msg =
		"Received: one\r\n"
		"SUBJECT : Hello\r\n"
		"\tfolded   world  \r\n"
		"not a field line\r\n"
		"X-8bit: caf\xe9\r\n"
		"received: two\n"
		" continued\n"
		"\n"
		"Subject: in the body\n";
	struct mime_part *root = parse_str(msg);
	struct buf v = BUF_INIT;
	CHECK_INT(mime_header_get(root, msg, "subject", &v), 1);
	CHECK_STR(v.data, "Hello\tfolded   world");
	CHECK_INT(mime_header_get(root, msg, "x-8BIT", &v), 1);
	CHECK_STR(v.data, "caf\xe9");
	CHECK_INT(mime_header_get(root, msg, "missing", &v), 0);
	struct mime_header_field *f;
	size_t n = mime_header_get_all(root, msg, "Received", &f);
	CHECK_INT(n, 2);
	if (n == 2) {
		buf_clear(&v);
		mime_header_unfold(f[1].value, f[1].value_len, &v);
		CHECK_STR(v.data, "two continued");
		CHECK_INT(f[0].name_len, 8);
	}
	free(f);
	size_t pos = 0, fields = 0;
	struct mime_header_field one;
	while (mime_header_next(root, msg, &pos, &one) > 0)
		fields++;
	CHECK_INT(fields, 4);
	buf_free(&v);
	mime_free(&root);
	mime_free(&root);	/* NULL is accepted */
}

/* ---- decoders ---- */

static void check_qp(const char *in, const char *want)
{
	struct buf out = BUF_INIT;
	mime_decode_qp(in, strlen(in), &out);
	CHECK_STR(out.data != NULL ? out.data : "", want);
	buf_free(&out);
}

static void test_decode_qp(void)
{
	check_qp("Caf=E9 cr=e8me", "Caf\xe9 cr\xe8me");
	check_qp("soft=\r\nbreak", "softbreak");
	check_qp("soft=\nbreak, lf", "softbreak, lf");
	check_qp("soft=  \r\nblanks", "softblanks");
	check_qp("padding   \r\nnext", "padding\r\nnext");
	check_qp("bad =ZZ and =4", "bad =ZZ and =4");
	check_qp("=3D=3d", "==");
	check_qp("end=", "end");
	check_qp("", "");
}

static void check_b64(const char *in, const char *want)
{
	struct buf out = BUF_INIT;
	mime_decode_base64(in, strlen(in), &out);
	CHECK_STR(out.data != NULL ? out.data : "", want);
	buf_free(&out);
}

static void test_decode_base64(void)
{
	check_b64("aGVsbG8gd29ybGQ=", "hello world");
	check_b64("aGVs\r\nbG8g\n d29y bGQ", "hello world");
	check_b64("aGVsbG8*!gd29ybGQ=trailing", "hello world");
	check_b64("YQ==YWJj", "a");
	check_b64("Y", "");
	check_b64("", "");
}

static void check_cs(const char *cs, const char *in, int ret, const char *want)
{
	struct buf out = BUF_INIT;
	CHECK_INT(mime_charset_to_utf8(cs, in, strlen(in), &out), ret);
	CHECK_STR(out.data != NULL ? out.data : "", want);
	buf_free(&out);
}

static void test_charsets(void)
{
	check_cs("iso-8859-1", "caf\xe9", 0, "caf\xc3\xa9");
	check_cs("windows-1252", "\x93q\x94 \x80", 0, "\xe2\x80\x9cq\xe2\x80\x9d \xe2\x82\xac");
	check_cs("UTF-8", "ok \xc3\xa9 bad \xff \xc3", 0, "ok \xc3\xa9 bad \xef\xbf\xbd \xef\xbf\xbd");
	check_cs(NULL, "plain", 0, "plain");
	check_cs("x-no-such-charset", "a\xe9", -1, "a\xef\xbf\xbd");
	check_cs("utf-8//TRANSLIT", "a", -1, "a");
	check_cs("../../etc/passwd", "a", -1, "a");
	/* An overlong encoding and a surrogate are not UTF-8. */
	check_cs("utf-8", "\xc0\xaf\xed\xa0\x80", 0,
		 "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	/* iso-2022-jp is stateful: the shift back is flushed. */
	check_cs("iso-2022-jp", "\x1b$B$3$s\x1b(B!", 0, "\xe3\x81\x93\xe3\x82\x93!");
}

static void check_ew(const char *in, int ret, const char *want)
{
	struct buf out = BUF_INIT;
	CHECK_INT(mime_decode_header_value(in, strlen(in), &out), ret);
	CHECK_STR(out.data != NULL ? out.data : "", want);
	buf_free(&out);
}

static void test_encoded_words(void)
{
	/* RFC 2047 8 examples. */
	check_ew("(=?ISO-8859-1?Q?a?=)", 0, "(a)");
	check_ew("(=?ISO-8859-1?Q?a?= b)", 0, "(a b)");
	check_ew("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", 0, "(ab)");
	check_ew("(=?ISO-8859-1?Q?a?=  \r\n   =?ISO-8859-1?Q?b?=)", 0, "(ab)");
	check_ew("(=?ISO-8859-1?Q?a_b?=)", 0, "(a b)");
	check_ew("(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)", 0, "(a b)");
	check_ew("=?ISO-8859-1?Q?Andr=E9?= Pirard", 0, "Andr\xc3\xa9 Pirard");
	check_ew("=?utf-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?= =?utf-8?Q?_und_mehr?=", 0,
		 "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln und mehr");
	/* A UTF-8 character split across two words. */
	check_ew("=?utf-8?B?w6?= =?utf-8?B?kK?=", 0, "\xc3\x90");
	check_ew("=?utf-8?Q?=C3?= =?utf-8?Q?=A4?=", 0, "\xc3\xa4");
	/* RFC 2231 5 language in the charset. */
	check_ew("=?US-ASCII*EN?Q?Keith_Moore?=", 0, "Keith Moore");
	/* Not encoded words: kept; raw 8-bit kept when UTF-8. */
	check_ew("=?bad word?= =?utf-8?X?abc?= a=?b", 0, "=?bad word?= =?utf-8?X?abc?= a=?b");
	check_ew("J\xc3\xbcrgen and \xe9", 0, "J\xc3\xbcrgen and \xef\xbf\xbd");
	check_ew("=?x-unknown?Q?abc?=", -1, "abc");
	check_ew("a =?utf-8?q?b?= c", 0, "a b c");
}

static void test_body_to_utf8(void)
{
	static const struct { const char *file, *section, *want; } cases[] = {
		{ "qp-latin1", "1", "Caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9" "e, a soft line break, and = signs.\r\n" },
		{ "b64-utf8", "1", "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln \xe2\x80\x94 \xe2\x9c\x93\nzweite Zeile\n" },
		{ "cp1252", "1", "\xe2\x80\x9cSmart quotes\xe2\x80\x9d and the euro \xe2\x82\xac sign." },
		{ "cp1252", "2", "\xe2\x80\x9craw 8bit\xe2\x80\x9d \xe2\x82\xac" },
		{ "rfc822-in-multipart", "2.2", "<b>inner html</b>" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[256];
		size_t len;
		snprintf(path, sizeof(path), CORPUS "/%s.eml", cases[i].file);
		char *data = read_file(path, &len);
		CHECK(data != NULL);
		if (data == NULL)
			continue;
		struct mime_part *root = mime_parse(data, len);
		const struct mime_part *p = NULL;
		struct buf out = BUF_INIT;
		CHECK_INT(mime_find_section(root, cases[i].section, &p), 0);
		if (p != NULL) {
			CHECK_INT(mime_body_to_utf8(p, data, &out), 0);
			CHECK_STR(out.data, cases[i].want);
		}
		if (root->children != NULL)
			CHECK_INT(mime_body_to_utf8(root, data, &out), -1);
		buf_free(&out);
		mime_free(&root);
		free(data);
	}
}

/* ---- structure ---- */

static void test_find_section(void)
{
	size_t len;
	char *data = read_file(CORPUS "/rfc822-in-multipart.eml", &len);
	CHECK(data != NULL);
	if (data == NULL)
		return;
	struct mime_part *root = mime_parse(data, len);
	static const struct { const char *section; int ret; const char *type, *body; } cases[] = {
		{ "", 0, "multipart/mixed", NULL },
		{ "1", 0, "text/plain", "See attached.\r\n" },
		{ "2", 0, "message/rfc822", NULL },
		{ "2.1", 0, "text/plain", "inner text" },
		{ "2.2", 0, "text/html", "<b>inner html</b>" },
		{ "3", 0, "message/rfc822", NULL },
		/* The encapsulated message is not multipart: its part 1 is
		 * the message itself (RFC 3501 6.4.5). */
		{ "3.1", 0, "text/plain", "just text\r\ntwo lines" },
		{ "3.2", -1, NULL, NULL }, { "3.1.1", -1, NULL, NULL },
		{ "4", -1, NULL, NULL }, { "0", -1, NULL, NULL },
		{ "1.1", -1, NULL, NULL }, { "2.3", -1, NULL, NULL },
		{ "1.", -1, NULL, NULL }, { ".1", -1, NULL, NULL },
		{ "01", -1, NULL, NULL }, { "1.MIME", -1, NULL, NULL },
		{ "99999999999999999999", -1, NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct mime_part *p = NULL;
		int ret = mime_find_section(root, cases[i].section, &p);
		if (ret != cases[i].ret)
			fprintf(stderr, "section \"%s\"\n", cases[i].section);
		CHECK_INT(ret, cases[i].ret);
		if (ret != 0 || cases[i].type == NULL)
			continue;
		char type[128];
		snprintf(type, sizeof(type), "%s/%s", p->type, p->subtype);
		CHECK_STR(type, cases[i].type);
		if (cases[i].body != NULL) {
			char *b = body_of(p, data);
			CHECK_STR(b, cases[i].body);
			free(b);
		}
	}
	/* HEADER of part 3 is the encapsulated message's header. */
	const struct mime_part *p;
	CHECK_INT(mime_find_section(root, "3", &p), 0);
	struct buf v = BUF_INIT;
	CHECK(p->children != NULL && mime_header_get(p->children, data, "subject", &v) == 1);
	CHECK_STR(v.data, "second, non-multipart");
	buf_free(&v);
	mime_free(&root);
	free(data);

	/* A single-part message: part 1 is its body. */
	const char *msg = "Subject: x\n\nbody\n";
	root = parse_str(msg);
	CHECK_INT(mime_find_section(root, "1", &p), 0);
	CHECK(p == root);
	CHECK_INT(mime_find_section(root, "2", &p), -1);
	CHECK_INT(mime_find_section(root, "1.1", &p), -1);
	mime_free(&root);
}

static void test_offsets_and_sizes(void)
{
	const char *msg =
		"Content-Type: multipart/mixed; boundary=b\n"
		"\n"
		"--b\n"
		"\n"
		"one\n"
		"--b\r\n"
		"Content-Type: text/plain\r\n"
		"\r\n"
		"two\r\n"
		"lines\r\n"
		"--b--\n";
	struct mime_part *root = parse_str(msg);
	CHECK_INT(root->child_count, 2);
	CHECK((root->flags & MIME_PART_MULTIPART) != 0);
	CHECK((root->flags & MIME_PART_NO_CLOSE) == 0);
	const struct mime_part *a = root->children, *b = a != NULL ? a->next : NULL;
	if (a != NULL && b != NULL) {
		char *s = body_of(a, msg);
		CHECK_STR(s, "one");
		free(s);
		CHECK_INT(a->header_size, 2);	/* "\n" counted as CRLF */
		CHECK_INT(a->body_size, 3);
		CHECK_INT(a->body_lines, 0);
		s = body_of(b, msg);
		CHECK_STR(s, "two\r\nlines");
		free(s);
		CHECK_INT(b->body_size, 10);
		CHECK_INT(b->body_lines, 1);
		CHECK_INT(b->header_size, 28);
	}
	CHECK_INT(root->header_size, 41 + 1 + 1 + 2);
	mime_free(&root);
}

/* The same message with CRLF and with LF line ends has the same IMAP
 * structure: sizes count bare LF as CRLF. */
static void test_crlf_lf_same(void)
{
	DIR *d = opendir(CORPUS);
	CHECK(d != NULL);
	if (d == NULL)
		return;
	struct dirent *e;
	int compared = 0;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name), len;
		if (l < 5 || strcmp(e->d_name + l - 4, ".eml") != 0 ||
		    strcmp(e->d_name, "bare-cr-mixed.eml") == 0)
			continue;
		char path[512];
		snprintf(path, sizeof(path), CORPUS "/%s", e->d_name);
		char *data = read_file(path, &len);
		if (data == NULL)
			continue;
		struct buf lf = BUF_INIT, crlf = BUF_INIT;
		for (size_t i = 0; i < len; i++) {
			if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
				continue;
			buf_append_char(&lf, data[i]);
		}
		for (size_t i = 0; i < lf.len; i++) {
			if (lf.data[i] == '\n')
				buf_append_char(&crlf, '\r');
			buf_append_char(&crlf, lf.data[i]);
		}
		struct buf o1 = BUF_INIT, o2 = BUF_INIT;
		struct mime_part *r1 = mime_parse(lf.data, lf.len), *r2 = mime_parse(crlf.data, crlf.len);
		imap_write_bodystructure(&o1, r1, lf.data, true);
		imap_write_bodystructure(&o2, r2, crlf.data, true);
		CHECK_STR(o1.data, o2.data);
		compared++;
		mime_free(&r1);
		mime_free(&r2);
		buf_free(&o1);
		buf_free(&o2);
		buf_free(&lf);
		buf_free(&crlf);
		free(data);
	}
	closedir(d);
	CHECK(compared >= 15);
}

/* ---- generated and pathological messages ---- */

static void test_deep_nesting(void)
{
	/* 150 nested multiparts, alternating with message/rfc822 levels. */
	struct buf m = BUF_INIT;
	const int levels = 150;
	for (int i = 0; i < levels; i++) {
		if (i % 3 == 2)
			buf_printf(&m, "Content-Type: message/rfc822\r\n\r\n");
		else
			buf_printf(&m, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i);
	}
	buf_printf(&m, "Content-Type: text/plain\r\n\r\ndeep\r\n");
	for (int i = levels - 1; i >= 0; i--) {
		if (i % 3 != 2)
			buf_printf(&m, "--b%d--\r\n", i);
	}
	struct buf out = BUF_INIT;
	struct mime_part *root = parse_and_write(m.data, m.len, &out);
	const struct mime_part *p = root;
	unsigned max_depth = 0;
	bool truncated = false;
	while (p != NULL) {
		if (p->depth > max_depth)
			max_depth = p->depth;
		truncated |= (p->flags & MIME_PART_TRUNCATED) != 0;
		p = p->children;
	}
	CHECK_INT(max_depth, LIMIT_MIME_DEPTH);
	CHECK(truncated);
	/* Sections reach down as far as the tree goes. */
	struct buf sec = BUF_INIT;
	buf_append_str(&sec, "1");
	for (int i = 0; i < 60; i++)
		buf_append_str(&sec, ".1");
	const struct mime_part *found;
	CHECK_INT(mime_find_section(root, sec.data, &found), 0);
	buf_free(&sec);
	mime_free(&root);
	buf_free(&out);
	buf_free(&m);
}

static void test_huge_header(void)
{
	/* A few hundred KB of header: many fields and a long folded one. */
	struct buf m = BUF_INIT;
	buf_append_str(&m, "From: Big <big@example.com>\r\nSubject: start");
	for (int i = 0; i < 20000; i++)
		buf_append_str(&m, "\r\n word");
	buf_append_str(&m, "\r\n");
	for (int i = 0; i < 5000; i++)
		buf_printf(&m, "X-Filler-%d: %s\r\n", i, "some value here to make it long");
	buf_append_str(&m, "Content-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n");
	CHECK(m.len > 200000);
	struct buf out = BUF_INIT, v = BUF_INIT;
	struct mime_part *root = parse_and_write(m.data, m.len, &out);
	CHECK_STR(mime_part_charset(root), "utf-8");
	CHECK_INT(mime_header_get(root, m.data, "subject", &v), 1);
	CHECK_INT(v.len, 5 + 20000 * 5);
	CHECK_INT(root->body_size, 6);
	CHECK_INT(mime_header_get(root, m.data, "X-Filler-4999", &v), 1);
	mime_free(&root);
	buf_free(&out);
	buf_free(&v);
	buf_free(&m);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Megabyte inputs that would be quadratic in a naive parser. Not a
 * benchmark: the bound is loose enough for a slow ASan build and would
 * still be missed by orders of magnitude if the work were quadratic. */
static void test_linear_time(void)
{
	const size_t mb = 1 << 20;
	struct buf m[6];
	for (int i = 0; i < 6; i++)
		m[i] = (struct buf)BUF_INIT;
	/* 1. one field folded a quarter million times */
	buf_append_str(&m[0], "Subject: a");
	while (m[0].len < mb)
		buf_append_str(&m[0], "\r\n b");
	buf_append_str(&m[0], "\r\n\r\nbody");
	/* 2. an address list of a hundred thousand addresses */
	buf_append_str(&m[1], "To: ");
	while (m[1].len < mb)
		buf_append_str(&m[1], "a@b, (c) <d@e>,");
	buf_append_str(&m[1], "\r\n\r\n");
	/* 3. a Content-Type with a huge number of RFC 2231 sections */
	buf_append_str(&m[2], "Content-Type: text/plain");
	for (int i = 0; m[2].len < mb; i++)
		buf_printf(&m[2], ";\r\n x*%d*=%%41", i);
	buf_append_str(&m[2], "\r\n\r\n");
	/* 4. tens of thousands of empty parts between boundaries */
	buf_append_str(&m[3], "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
	while (m[3].len < mb)
		buf_append_str(&m[3], "--b\r\n");
	/* 5. encoded words */
	buf_append_str(&m[4], "Subject: ");
	while (m[4].len < mb)
		buf_append_str(&m[4], "=?utf-8?q?a?= =?iso-8859-1?q?=E9?= ");
	buf_append_str(&m[4], "\r\n\r\n");
	/* 6. one line with no end, full of boundary look-alikes */
	buf_append_str(&m[5], "Content-Type: multipart/mixed; boundary=\"--\"\n\n--");
	while (m[5].len < mb)
		buf_append_str(&m[5], "----=?=?\"(<");
	double t0 = now();
	for (int i = 0; i < 6; i++) {
		struct buf out = BUF_INIT, v = BUF_INIT, d = BUF_INIT;
		struct mime_part *root = parse_and_write(m[i].data, m[i].len, &out);
		if (mime_header_get(root, m[i].data, "subject", &v) > 0)
			mime_decode_header_value(v.data, v.len, &d);
		if (i == 3)
			CHECK_INT(root->child_count, LIMIT_MIME_PARTS - 1);
		if (i == 2)
			CHECK(root->params.count <= LIMIT_MIME_PARAMS);
		mime_free(&root);
		buf_free(&out);
		buf_free(&v);
		buf_free(&d);
		buf_free(&m[i]);
	}
	double t = now() - t0;
	printf("     6 x 1 MB pathological inputs in %.2f s\n", t);
	CHECK(t < 20.0);
}

static void test_malformed(void)
{
	static const char *const msgs[] = {
		"",
		"\n",
		"\r\n\r\n",
		"no colon at all and no line end",
		"Subject: header without end",
		"Content-Type: multipart/mixed; boundary=x\n\n--x",
		"Content-Type: multipart/mixed; boundary=x\n\n--x\n--x\n--x--",
		"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: multipart/mixed; boundary=x\n\n--x\n--x--\n--x--\n",
		"Content-Type: message/rfc822\n\n",
		"Content-Type: message/rfc822\n",
		"Content-Type: multipart/mixed; boundary=\"\"\n\n--\n",
		"Content-Type: multipart/digest; boundary=d\n\n--d\n\n--d\n\nSubject: x\n--d--",
		"Content-Type: ; ;;; = ; =x; a=\"unterminated\n\nbody",
		"Content-Type: text/plain; a*0*=x; a*0=y; a*5=z; a*=q; b*00000000000000000001=1\n\n",
		"From: \"unterminated, (comment <a@b>, <<<>>>, @@@, :;:;, g: a@b, h: ;;\n\n",
		"From: a@[unterminated, x@y\n\n",
		"Content-Type: text/plain\r\r\r\nbare CR\r\r\n",
		" leading continuation\nSubject: x\n\n",
		"Content-Disposition: (comment only)\nContent-Language: ,,,(x),,\n\n",
	};
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		struct buf out = BUF_INIT;
		struct mime_part *root = parse_and_write(msgs[i], strlen(msgs[i]), &out);
		struct buf u = BUF_INIT;
		mime_body_to_utf8(root, msgs[i], &u);
		mime_free(&root);
		buf_free(&out);
		buf_free(&u);
	}
	/* NUL bytes everywhere, and a cut in every position of a message. */
	size_t len;
	char *data = read_file(CORPUS "/rfc822-in-multipart.eml", &len);
	CHECK(data != NULL);
	for (size_t cut = 0; data != NULL && cut <= len; cut += 7) {
		struct buf out = BUF_INIT;
		char *copy = malloc(cut + 1);
		memcpy(copy, data, cut);
		for (size_t k = 0; k < cut; k += 13)
			copy[k] = '\0';
		struct mime_part *root = parse_and_write(copy, cut, &out);
		mime_free(&root);
		buf_free(&out);
		free(copy);
	}
	free(data);
}

static void test_structure_details(void)
{
	const char *msg =
		"Content-Type: multipart/mixed; boundary=\"=_b\"\n\n"
		"--=_b\n"
		"Content-Type: application/x-stuff;\n"
		" title*0*=us-ascii'en'This%20is;\n"
		" title*1=\" 100%\"\n"
		"Content-Disposition: attachment; filename*=utf-8''na%C3%AFve.txt\n"
		"Content-Language: (comment) en-GB,de\n\n"
		"x\n"
		"--=_b--\n";
	struct mime_part *root = parse_str(msg);
	const struct mime_part *p;
	CHECK_INT(mime_find_section(root, "1", &p), 0);
	CHECK_STR(mime_param_get(&p->params, "title*"), "us-ascii'en'This%20is 100%25");
	CHECK_STR(mime_param_get(&p->disposition_params, "filename*"), "utf-8''na%C3%AFve.txt");
	CHECK_INT(p->language_count, 2);
	if (p->language_count == 2) {
		CHECK_STR(p->languages[0], "en-GB");
		CHECK_STR(p->languages[1], "de");
	}
	struct buf out = BUF_INIT;
	imap_write_bodystructure(&out, root, msg, false);
	CHECK_STR(out.data, "((\"application\" \"x-stuff\" (\"title*\" \"us-ascii'en'This%20is 100%25\") NIL NIL \"7bit\" 1) \"mixed\")");
	buf_free(&out);
	mime_free(&root);
}

static void test_istring(void)
{
	struct buf out = BUF_INIT;
	imap_istring_write(&out, "a \"q\" \\", 7);
	buf_append_char(&out, ' ');
	imap_istring_write_nstring(&out, NULL, 0);
	buf_append_char(&out, ' ');
	imap_istring_write(&out, "", 0);
	buf_append_char(&out, ' ');
	imap_istring_write(&out, "caf\xc3\xa9", 5);
	buf_append_char(&out, ' ');
	imap_istring_write(&out, "a\0b", 3);
	buf_append_char(&out, ' ');
	imap_istring_write(&out, "l\r\n", 3);
	CHECK_STR(out.data, "\"a \\\"q\\\" \\\\\" NIL \"\" {5}\r\ncaf\xc3\xa9 {5}\r\na\xef\xbf\xbd" "b {3}\r\nl\r\n");
	buf_clear(&out);
	char big[IMAP_ISTRING_QUOTED_MAX + 1];
	memset(big, 'x', sizeof(big));
	imap_istring_write(&out, big, sizeof(big));
	CHECK(strncmp(out.data, "{1025}\r\n", 8) == 0);
	buf_free(&out);
}

static void test_envelope_details(void)
{
	const char *msg =
		"From: A <a@x>\n"
		"Sender:  \n"
		"To: \"Team\" :a@x, (only comment) ; , solo@y\n"
		"Cc: (no one)\n"
		"Bcc: undisclosed-recipients:;\n"
		"Subject: =?utf-8?q?kept?= \xc3\xa9\n\n";
	struct mime_part *root = parse_str(msg);
	struct buf out = BUF_INIT;
	imap_write_envelope(&out, root, msg);
	CHECK_STR(out.data,
		  "(NIL {19}\r\n=?utf-8?q?kept?= \xc3\xa9 ((\"A\" NIL \"a\" \"x\")) ((\"A\" NIL \"a\" \"x\")) "
		  "((\"A\" NIL \"a\" \"x\")) ((NIL NIL \"Team\" NIL)(NIL NIL \"a\" \"x\")(NIL NIL NIL NIL)"
		  "(NIL NIL \"solo\" \"y\")) NIL ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL)");
	buf_free(&out);
	mime_free(&root);
}

int main(void)
{
	RUN(test_golden_corpus);
	RUN(test_header_access);
	RUN(test_decode_qp);
	RUN(test_decode_base64);
	RUN(test_charsets);
	RUN(test_encoded_words);
	RUN(test_body_to_utf8);
	RUN(test_find_section);
	RUN(test_offsets_and_sizes);
	RUN(test_crlf_lf_same);
	RUN(test_structure_details);
	RUN(test_istring);
	RUN(test_envelope_details);
	RUN(test_deep_nesting);
	RUN(test_huge_header);
	RUN(test_malformed);
	RUN(test_linear_time);
	return harness_finish();
}
