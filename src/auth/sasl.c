#include "auth/sasl.h"
#include "core/base64.h"
#include "core/limits.h"
#include "core/xalloc.h"

#include <openssl/crypto.h>

#include <stdlib.h>
#include <string.h>

/* RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd, where
 * authcid and passwd are 1*SAFE (no NUL) and authzid may be empty. We do
 * not check that the fields are UTF-8: names are compared as bytes and a
 * password is only ever hashed. */
static int split_plain(const char *msg, size_t len, struct sasl_plain *out,
		       const char **error_r)
{
	const char *nul1 = memchr(msg, '\0', len);
	if (nul1 == NULL) {
		*error_r = "missing NUL separators";
		return -1;
	}
	const char *authcid = nul1 + 1;
	const char *nul2 = memchr(authcid, '\0', len - (size_t)(authcid - msg));
	if (nul2 == NULL) {
		*error_r = "missing NUL separator";
		return -1;
	}
	const char *password = nul2 + 1;
	size_t authzid_len = (size_t)(nul1 - msg);
	size_t authcid_len = (size_t)(nul2 - authcid);
	size_t password_len = len - (size_t)(password - msg);

	if (memchr(password, '\0', password_len) != NULL) {
		*error_r = "too many NUL separators";
		return -1;
	}
	if (authcid_len == 0) {
		*error_r = "empty user name";
		return -1;
	}
	if (password_len == 0) {
		*error_r = "empty password";
		return -1;
	}
	if (authcid_len > LIMIT_USER_LEN || authzid_len > LIMIT_USER_LEN) {
		*error_r = "user name too long";
		return -1;
	}
	if (password_len > LIMIT_PASSWORD_LEN) {
		*error_r = "password too long";
		return -1;
	}
	/* Acting as another user is not offered; naming oneself is harmless. */
	if (authzid_len != 0 &&
	    (authzid_len != authcid_len || memcmp(msg, authcid, authcid_len) != 0)) {
		*error_r = "authorization identity not supported";
		return -1;
	}
	out->authzid = xstrndup(msg, authzid_len);
	out->authcid = xstrndup(authcid, authcid_len);
	out->password = xmalloc(password_len + 1);
	memcpy(out->password, password, password_len);
	out->password[password_len] = '\0';
	out->password_len = password_len;
	return 0;
}

int sasl_plain_decode(const char *base64, size_t len, struct sasl_plain *out, const char **error_r)
{
	struct buf decoded = BUF_INIT;
	int ret;

	memset(out, 0, sizeof(*out));
	*error_r = NULL;
	if (len == 0) {
		*error_r = "empty response";
		return -1;
	}
	if (base64_decode_strict(&decoded, base64, len) < 0) {
		*error_r = "invalid base64";
		ret = -1;
	} else {
		ret = split_plain(decoded.data, decoded.len, out, error_r);
	}
	if (decoded.data != NULL)
		OPENSSL_cleanse(decoded.data, decoded.cap);
	buf_free(&decoded);
	return ret;
}

void sasl_plain_clear(struct sasl_plain *p)
{
	if (p->password != NULL)
		OPENSSL_cleanse(p->password, p->password_len);
	free(p->password);
	free(p->authzid);
	free(p->authcid);
	memset(p, 0, sizeof(*p));
}
