/* Maildir++ names, info suffixes, dovecot-uidlist and dovecot-keywords.
 * Formats as documented by Dovecot (doc.dovecot.org, "Maildir format" and
 * "dovecot-uidlist") and seen in files written by Dovecot 2.3. */
#include "cli/maildir.h"
#include "core/xalloc.h"
#include "imap/utf7.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Letters in the order maildir_info_write emits them (ASCII order, as the
 * Maildir specification asks). */
static const struct {
	char letter;
	uint32_t flag;
} flag_letters[] = {
	{ 'D', STORE_FLAG_DRAFT }, { 'F', STORE_FLAG_FLAGGED }, { 'R', STORE_FLAG_ANSWERED },
	{ 'S', STORE_FLAG_SEEN }, { 'T', STORE_FLAG_DELETED },
};
#define N_FLAG_LETTERS (sizeof(flag_letters) / sizeof(flag_letters[0]))

void maildir_name_parse(const char *name, size_t *base_len_r, uint32_t *flags_r,
			uint32_t *keywords_r)
{
	const char *info = strstr(name, ":2,");
	if (info == NULL)
		info = strstr(name, "!2,");	/* Courier on filesystems without ':' */
	*flags_r = 0;
	*keywords_r = 0;
	if (info == NULL) {
		*base_len_r = strlen(name);
		return;
	}
	*base_len_r = (size_t)(info - name);
	for (const char *p = info + 3; *p != '\0'; p++) {
		if (*p >= 'a' && *p <= 'z') {
			*keywords_r |= 1u << (*p - 'a');
			continue;
		}
		for (size_t i = 0; i < N_FLAG_LETTERS; i++)
			if (*p == flag_letters[i].letter)
				*flags_r |= flag_letters[i].flag;
	}
}

void maildir_info_write(struct buf *out, uint32_t flags, uint32_t keywords)
{
	buf_append_str(out, ":2,");
	for (size_t i = 0; i < N_FLAG_LETTERS; i++)
		if ((flags & flag_letters[i].flag) != 0)
			buf_append_char(out, flag_letters[i].letter);
	for (unsigned i = 0; i < MAILDIR_MAX_KEYWORDS; i++)
		if ((keywords & (1u << i)) != 0)
			buf_append_char(out, (char)('a' + i));
}

int maildir_folder_to_mailbox(const char *dirname, struct buf *out)
{
	size_t len = strlen(dirname);
	if (len < 2 || dirname[0] != '.' || dirname[len - 1] == '.' || strstr(dirname, "..") != NULL)
		return -1;
	size_t start = out->len;
	/* '.' is printable ASCII, so it passes through modified UTF-7 as
	 * itself and the name can be decoded whole, then split. */
	if (imap_utf7_to_utf8(dirname + 1, len - 1, out) < 0)
		return -1;
	for (size_t i = start; i < out->len; i++) {
		if (out->data[i] == '/') {
			/* Only reachable through a decoded '/', which the strict
			 * decoder refuses; kept as a guard. */
			out->len = start;
			out->data[start] = '\0';
			return -1;
		}
		if (out->data[i] == '.')
			out->data[i] = '/';
	}
	return 0;
}

int maildir_mailbox_to_folder(const char *name, struct buf *out)
{
	if (strchr(name, '.') != NULL)
		return -1;
	size_t start = out->len;
	buf_append_char(out, '.');
	if (imap_utf8_to_utf7(name, strlen(name), out) < 0) {
		out->len = start;
		out->data[start] = '\0';
		return -1;
	}
	for (size_t i = start + 1; i < out->len; i++)
		if (out->data[i] == '/')
			out->data[i] = '.';
	return 0;
}

/* --- dovecot-uidlist ---------------------------------------------------- */

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct maildir_uid_entry *)a)->base,
		      ((const struct maildir_uid_entry *)b)->base);
}

/* Reads a decimal uint32 at *p, moving past it; 0 when there is none. */
static uint32_t read_u32(const char **p)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(*p, &end, 10);
	if (end == *p || errno != 0 || v > UINT32_MAX)
		return 0;
	*p = end;
	return (uint32_t)v;
}

/* Version 3 header: "3 V<uidvalidity> N<nextuid> G<guid> ...", fields in
 * any order. Version 1 (and Courier): "1 <uidvalidity> <nextuid>". */
static int parse_header(const char *line, struct maildir_uidlist *list)
{
	const char *p = line;
	uint32_t version = read_u32(&p);
	if (version == 1) {
		list->uidvalidity = read_u32(&p);
		list->nextuid = read_u32(&p);
		return list->uidvalidity != 0 ? 1 : -1;
	}
	if (version != 3)
		return -1;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		char key = *p;
		if (key == '\0')
			break;
		p++;
		if (key == 'V')
			list->uidvalidity = read_u32(&p);
		else if (key == 'N')
			list->nextuid = read_u32(&p);
		while (*p != '\0' && *p != ' ')
			p++;
	}
	return list->uidvalidity != 0 ? 3 : -1;
}

/* Record lines: version 3 "UID [EXT ...] :FILENAME" (extension fields are
 * a letter and a value, such as W<vsize>); version 1 "UID FILENAME". */
static bool parse_record(char *line, int version, uint32_t *uid_r, char **base_r)
{
	const char *p = line;
	uint32_t uid = read_u32(&p);
	if (uid == 0 || *p != ' ')
		return false;
	char *name;
	if (version == 3) {
		name = strstr(line, " :");
		if (name == NULL)
			return false;
		name += 2;
	} else {
		name = (char *)p + 1;
	}
	/* The base is what identifies the file; old uidlists may carry the
	 * info suffix too. */
	size_t base_len, name_len = strlen(name);
	uint32_t flags, keywords;
	maildir_name_parse(name, &base_len, &flags, &keywords);
	if (base_len == 0 || name_len == 0 || strchr(name, '/') != NULL)
		return false;
	name[base_len] = '\0';
	*uid_r = uid;
	*base_r = name;
	return true;
}

int maildir_uidlist_read(const char *path, struct maildir_uidlist *list_r, char **error_r)
{
	memset(list_r, 0, sizeof(*list_r));
	*error_r = NULL;
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0, entries_cap = 0;
	ssize_t n;
	int version = 0;
	while ((n = getline(&line, &cap, f)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (version == 0) {
			version = parse_header(line, list_r);
			if (version < 0) {
				*error_r = xasprintf("%s: unknown header \"%.40s\"", path, line);
				break;
			}
			continue;
		}
		uint32_t uid;
		char *base;
		if (!parse_record(line, version, &uid, &base))
			continue;
		if (list_r->count == entries_cap) {
			entries_cap = entries_cap ? entries_cap * 2 : 256;
			list_r->entries = xrealloc(list_r->entries, entries_cap * sizeof(*list_r->entries));
		}
		list_r->entries[list_r->count].uid = uid;
		list_r->entries[list_r->count].base = xstrdup(base);
		list_r->count++;
	}
	if (*error_r == NULL && ferror(f))
		*error_r = xasprintf("%s: read error", path);
	else if (*error_r == NULL && version == 0)
		*error_r = xasprintf("%s: empty", path);
	free(line);
	fclose(f);
	if (*error_r != NULL) {
		maildir_uidlist_free(list_r);
		return -1;
	}
	if (list_r->count > 1)
		qsort(list_r->entries, list_r->count, sizeof(*list_r->entries), cmp_entry);
	return 1;
}

uint32_t maildir_uidlist_find(const struct maildir_uidlist *list, const char *base, size_t len)
{
	size_t lo = 0, hi = list->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *b = list->entries[mid].base;
		int c = strncmp(b, base, len);
		if (c == 0 && b[len] != '\0')
			c = 1;
		if (c == 0)
			return list->entries[mid].uid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

void maildir_uidlist_free(struct maildir_uidlist *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->entries[i].base);
	free(list->entries);
	memset(list, 0, sizeof(*list));
}

/* --- dovecot-keywords --------------------------------------------------- */

int maildir_keywords_read(const char *path, char *names[MAILDIR_MAX_KEYWORDS])
{
	for (unsigned i = 0; i < MAILDIR_MAX_KEYWORDS; i++)
		names[i] = NULL;
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		const char *p = line;
		char *end;
		errno = 0;
		unsigned long idx = strtoul(p, &end, 10);
		if (end == p || *end != ' ' || end[1] == '\0' || errno != 0 ||
		    idx >= MAILDIR_MAX_KEYWORDS)
			continue;
		free(names[idx]);
		names[idx] = xstrdup(end + 1);
	}
	int ret = ferror(f) ? -1 : 1;
	free(line);
	fclose(f);
	if (ret < 0)
		maildir_keywords_free(names);
	return ret;
}

void maildir_keywords_free(char *names[MAILDIR_MAX_KEYWORDS])
{
	for (unsigned i = 0; i < MAILDIR_MAX_KEYWORDS; i++) {
		free(names[i]);
		names[i] = NULL;
	}
}
