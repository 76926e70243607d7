#include "core/netmask.h"
#include "harness.h"

#include <stdlib.h>
#include <sys/socket.h>

static bool list_contains(const char *networks, const char *ip)
{
	struct netmask_list list = { 0 };
	const char *error;
	char *bad;
	if (netmask_list_parse(networks, &list, &error, &bad) < 0) {
		fprintf(stderr, "parse '%s': %s\n", networks, error);
		free(bad);
		return false;
	}
	bool found = netmask_list_contains(&list, ip);
	netmask_list_free(&list);
	return found;
}

static void test_parse(void)
{
	struct netmask m;
	const char *error = NULL;
	CHECK_INT(netmask_parse("192.0.2.0/24", &m, &error), 0);
	CHECK_INT(m.family, AF_INET);
	CHECK_INT(m.prefix, 24);
	CHECK_INT(netmask_parse("198.51.100.7", &m, &error), 0);
	CHECK_INT(m.prefix, 32);
	CHECK_INT(netmask_parse("2001:db8::/32", &m, &error), 0);
	CHECK_INT(m.family, AF_INET6);
	CHECK_INT(m.prefix, 32);
	CHECK_INT(netmask_parse("::1", &m, &error), 0);
	CHECK_INT(m.prefix, 128);
	CHECK_INT(netmask_parse("0.0.0.0/0", &m, &error), 0);
	CHECK_INT(m.prefix, 0);

	static const struct {
		const char *text, *error;
	} bad[] = {
		{ "", "not an IPv4 or IPv6 address" },
		{ "/8", "not an IPv4 or IPv6 address" },
		{ "mx.example.org", "not an IPv4 or IPv6 address" },
		{ "10.0.0.0/33", "prefix length must be 0 to 32" },
		{ "10.0.0.0/", "prefix length must be 0 to 32" },
		{ "10.0.0.0/-1", "prefix length must be 0 to 32" },
		{ "10.0.0.0/8x", "prefix length must be 0 to 32" },
		{ "2001:db8::/129", "prefix length must be 0 to 128" },
		{ "10.1.0.0/8", "address has bits set past the prefix length" },
		{ "2001:db8::1/64", "address has bits set past the prefix length" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error = NULL;
		CHECK_INT(netmask_parse(bad[i].text, &m, &error), -1);
		CHECK_STR(error, bad[i].error);
	}
}

static void test_list_parse_errors(void)
{
	struct netmask_list list = { 0 };
	const char *error = NULL;
	char *bad = NULL;
	CHECK_INT(netmask_list_parse(" , ", &list, &error, &bad), -1);
	CHECK_STR(error, "no network given");
	CHECK(bad == NULL);
	CHECK_INT(netmask_list_parse("10.0.0.0/8, 300.1.1.1", &list, &error, &bad), -1);
	CHECK_STR(bad, "300.1.1.1");
	CHECK_INT(list.count, 0);
	free(bad);
}

static void test_contains(void)
{
	CHECK(list_contains("192.0.2.0/24", "192.0.2.0"));
	CHECK(list_contains("192.0.2.0/24", "192.0.2.255"));
	CHECK(!list_contains("192.0.2.0/24", "192.0.3.0"));
	CHECK(list_contains("10.0.0.0/13", "10.7.255.255"));
	CHECK(!list_contains("10.0.0.0/13", "10.8.0.0"));
	CHECK(list_contains("0.0.0.0/0", "203.0.113.9"));
	CHECK(!list_contains("0.0.0.0/0", "2001:db8::1"));
	CHECK(list_contains("2001:db8::/32", "2001:db8:ffff::1"));
	CHECK(!list_contains("2001:db8::/32", "2001:db9::1"));
	CHECK(list_contains("2001:db8::/33", "2001:db8:7fff::1"));
	CHECK(!list_contains("2001:db8::/33", "2001:db8:8000::1"));
	CHECK(list_contains("198.51.100.7 192.0.2.0/24", "198.51.100.7"));
	CHECK(!list_contains("198.51.100.7", "198.51.100.8"));
	/* What conn_peer_address writes for a unix socket or a failure. */
	CHECK(!list_contains("0.0.0.0/0", "local"));
	CHECK(!list_contains("0.0.0.0/0", "unknown"));
}

static void test_loopback(void)
{
	CHECK(netmask_is_loopback("127.0.0.1"));
	CHECK(netmask_is_loopback("127.255.0.3"));
	CHECK(netmask_is_loopback("::1"));
	CHECK(!netmask_is_loopback("128.0.0.1"));
	CHECK(!netmask_is_loopback("::2"));
	CHECK(!netmask_is_loopback("::ffff:127.0.0.1"));
	CHECK(!netmask_is_loopback("local"));
}

int main(void)
{
	RUN(test_parse);
	RUN(test_list_parse_errors);
	RUN(test_contains);
	RUN(test_loopback);
	return harness_finish();
}
