#include "core/netmask.h"
#include "core/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Fills family and bytes from a textual address; 0 or -1. */
static int address_bytes(const char *text, int *family_r, uint8_t bytes[16])
{
	struct in_addr v4;
	struct in6_addr v6;
	if (inet_pton(AF_INET, text, &v4) == 1) {
		*family_r = AF_INET;
		memcpy(bytes, &v4, 4);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &v6) == 1) {
		*family_r = AF_INET6;
		memcpy(bytes, &v6, 16);
		return 0;
	}
	return -1;
}

static bool host_bits_clear(const uint8_t *addr, unsigned prefix, unsigned bits)
{
	for (unsigned i = prefix; i < bits; i++) {
		if (addr[i / 8] & (0x80u >> (i % 8)))
			return false;
	}
	return true;
}

static bool prefix_matches(const uint8_t *net, const uint8_t *addr, unsigned prefix)
{
	unsigned whole = prefix / 8, rest = prefix % 8;
	if (memcmp(net, addr, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));
	return (net[whole] & mask) == (addr[whole] & mask);
}

int netmask_parse(const char *text, struct netmask *out, const char **error_r)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(text, '/');
	size_t host_len = slash != NULL ? (size_t)(slash - text) : strlen(text);
	if (host_len == 0 || host_len >= sizeof(host)) {
		*error_r = "not an IPv4 or IPv6 address";
		return -1;
	}
	memcpy(host, text, host_len);
	host[host_len] = '\0';
	struct netmask m = { 0 };
	if (address_bytes(host, &m.family, m.addr) < 0) {
		*error_r = "not an IPv4 or IPv6 address";
		return -1;
	}
	unsigned bits = m.family == AF_INET ? 32 : 128;
	m.prefix = bits;
	if (slash != NULL) {
		char *end;
		errno = 0;
		unsigned long prefix = strtoul(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || errno != 0 || prefix > bits) {
			*error_r = m.family == AF_INET ? "prefix length must be 0 to 32" : "prefix length must be 0 to 128";
			return -1;
		}
		m.prefix = (unsigned)prefix;
	}
	if (!host_bits_clear(m.addr, m.prefix, bits)) {
		*error_r = "address has bits set past the prefix length";
		return -1;
	}
	*out = m;
	return 0;
}

static bool is_separator(char c)
{
	return c == ',' || c == ' ' || c == '\t';
}

int netmask_list_parse(const char *text, struct netmask_list *list, const char **error_r, char **bad_r)
{
	struct netmask_list parsed = { 0 };
	*bad_r = NULL;
	for (const char *p = text; *p != '\0';) {
		while (is_separator(*p))
			p++;
		size_t len = 0;
		while (p[len] != '\0' && !is_separator(p[len]))
			len++;
		if (len == 0)
			break;
		char *item = xstrndup(p, len);
		struct netmask m;
		if (netmask_parse(item, &m, error_r) < 0) {
			*bad_r = item;
			netmask_list_free(&parsed);
			return -1;
		}
		free(item);
		parsed.items = xrealloc(parsed.items, (parsed.count + 1) * sizeof(*parsed.items));
		parsed.items[parsed.count++] = m;
		p += len;
	}
	if (parsed.count == 0) {
		*error_r = "no network given";
		return -1;
	}
	netmask_list_free(list);
	*list = parsed;
	return 0;
}

void netmask_list_free(struct netmask_list *list)
{
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

static bool any_contains(const struct netmask *items, size_t count, const char *ip)
{
	int family;
	uint8_t bytes[16];
	if (address_bytes(ip, &family, bytes) < 0)
		return false;
	for (size_t i = 0; i < count; i++) {
		if (items[i].family == family && prefix_matches(items[i].addr, bytes, items[i].prefix))
			return true;
	}
	return false;
}

bool netmask_list_contains(const struct netmask_list *list, const char *ip)
{
	return any_contains(list->items, list->count, ip);
}

bool netmask_is_loopback(const char *ip)
{
	static const struct netmask loopback[] = {
		{ .family = AF_INET, .addr = { 127 }, .prefix = 8 },
		{ .family = AF_INET6, .addr = { [15] = 1 }, .prefix = 128 },
	};
	return any_contains(loopback, sizeof(loopback) / sizeof(loopback[0]), ip);
}
