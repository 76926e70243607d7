#include "lmtp/address.h"
#include "core/limits.h"
#include "core/xalloc.h"

#include <stdlib.h>
#include <string.h>

int lmtp_parse_path(const char *args, char **path_r, const char **params_r, const char **error_r)
{
	const char *p = args;
	while (*p == ' ')
		p++;
	bool bracket = *p == '<';
	if (bracket)
		p++;
	const char *start = p;
	bool quoted = false;
	for (; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f) {
			*error_r = "control character in address";
			return -1;
		}
		if (quoted) {
			if (c == '\\' && p[1] != '\0')
				p++;
			else if (c == '"')
				quoted = false;
			continue;
		}
		if (c == '"')
			quoted = true;
		else if (bracket ? c == '>' : c == ' ')
			break;
	}
	if (quoted || (bracket && *p != '>')) {
		*error_r = bracket ? "missing '>' after the address" : "unterminated quoted string";
		return -1;
	}
	const char *end = p;
	if (bracket)
		p++;
	if (*p != '\0' && *p != ' ') {
		*error_r = "text after the address must be separated by a space";
		return -1;
	}
	/* RFC 5321 4.1.1.3: a source route may be ignored; it ends at ':'. */
	if (start < end && *start == '@') {
		const char *colon = memchr(start, ':', (size_t)(end - start));
		if (colon == NULL) {
			*error_r = "source route without ':'";
			return -1;
		}
		start = colon + 1;
	}
	if ((size_t)(end - start) > LIMIT_LMTP_PATH) {
		*error_r = "address too long";
		return -1;
	}
	if (!bracket && start == end) {
		*error_r = "missing address";
		return -1;
	}
	while (*p == ' ')
		p++;
	*path_r = xstrndup(start, (size_t)(end - start));
	*params_r = p;
	return 0;
}

int lmtp_address_split(const char *path, struct lmtp_address *addr_r)
{
	*addr_r = (struct lmtp_address){ 0 };
	const char *at = strrchr(path, '@');
	size_t local_len = at != NULL ? (size_t)(at - path) : strlen(path);
	const char *delim = memchr(path, LMTP_DETAIL_DELIMITER, local_len);
	size_t user_len = delim != NULL ? (size_t)(delim - path) : local_len;
	if (user_len == 0)
		return -1;
	addr_r->user = xstrndup(path, user_len);
	if (delim != NULL)
		addr_r->detail = xstrndup(delim + 1, local_len - user_len - 1);
	if (at != NULL)
		addr_r->domain = xstrdup(at + 1);
	return 0;
}

void lmtp_address_free(struct lmtp_address *addr)
{
	free(addr->user);
	free(addr->detail);
	free(addr->domain);
	*addr = (struct lmtp_address){ 0 };
}

static void copy_token(char *dst, size_t size, const char *src, size_t len)
{
	if (size == 0)
		return;
	if (len >= size)
		len = size - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

bool lmtp_next_param(const char **params, char *key, size_t key_size, char *value, size_t value_size)
{
	const char *p = *params;
	while (*p == ' ')
		p++;
	if (*p == '\0') {
		*params = p;
		return false;
	}
	const char *end = strchr(p, ' ');
	if (end == NULL)
		end = p + strlen(p);
	const char *eq = memchr(p, '=', (size_t)(end - p));
	if (eq != NULL) {
		copy_token(key, key_size, p, (size_t)(eq - p));
		copy_token(value, value_size, eq + 1, (size_t)(end - eq - 1));
	} else {
		copy_token(key, key_size, p, (size_t)(end - p));
		copy_token(value, value_size, "", 0);
	}
	*params = end;
	return true;
}
