/* Networks written as "192.0.2.0/24", "2001:db8::/32" or a bare address
 * (a network of one), and the test of an address against them: what an
 * operator names as allowed to reach a listener that has no
 * authentication of its own (LMTP's trusted_networks). */
#ifndef POSTERN_CORE_NETMASK_H
#define POSTERN_CORE_NETMASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct netmask {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* network bytes, host bits cleared; 4 used for AF_INET */
	unsigned prefix;	/* 0..32 or 0..128 */
};

struct netmask_list {
	struct netmask *items;
	size_t count;
};

/* One network. On failure *error_r says what is wrong with text (a
 * static string) and *out is untouched. Host bits set beyond the prefix
 * ("192.0.2.1/24") are refused: they usually mean a typo in the prefix. */
int netmask_parse(const char *text, struct netmask *out, const char **error_r);

/* A comma- or space-separated list of networks, at least one. On failure
 * *bad_r gets a copy of the offending item (caller frees; NULL when the
 * list is empty) and the list is left empty. */
int netmask_list_parse(const char *text, struct netmask_list *list, const char **error_r, char **bad_r);
void netmask_list_free(struct netmask_list *list);

/* Whether the textual address ip (as conn_peer_address writes it: IPv4
 * dotted, IPv6, an IPv4-mapped IPv6 address already reduced to IPv4) is
 * inside any of the networks. Text that is not an address matches none. */
bool netmask_list_contains(const struct netmask_list *list, const char *ip);

/* Whether ip is a loopback address (127.0.0.0/8 or ::1). */
bool netmask_is_loopback(const char *ip);

#endif
