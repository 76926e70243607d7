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
 * sasl_plain_clear(), which also wipes the password. On -1 *out is zeroed
 * (clearing it is harmless). An empty response (len 0) is an error: SASL-IR's
 * "=" is the caller's to turn into an empty challenge response. An authzid
 * other than empty or the authcid gives "authorization identity not
 * supported". User names over LIMIT_USER_LEN and passwords over
 * LIMIT_PASSWORD_LEN are refused. */
int sasl_plain_decode(const char *base64, size_t len, struct sasl_plain *out, const char **error_r);
void sasl_plain_clear(struct sasl_plain *p);

#endif
