/* SASL mechanisms for AUTHENTICATE. Only PLAIN (RFC 4616) for now. */
#ifndef POSTERN_AUTH_SASL_H
#define POSTERN_AUTH_SASL_H

#include <stddef.h>

struct sasl_plain {
	char *authzid;	/* may be empty */
	char *authcid;
	char *password;
	size_t password_len;
};

/* Decodes the base64 client response and splits authzid NUL authcid NUL
 * password. Returns 0, or -1 with a static message in *error_r (bad base64,
 * wrong number of fields, empty user, NUL-free rules). The caller frees with
 * sasl_plain_clear(), which also wipes the password. */
int sasl_plain_decode(const char *base64, size_t len, struct sasl_plain *out, const char **error_r);
void sasl_plain_clear(struct sasl_plain *p);

#endif
