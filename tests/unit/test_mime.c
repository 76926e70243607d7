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

int main(void)
{
	RUN(test_golden_corpus);
	return harness_finish();
}
