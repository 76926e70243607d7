#include "auth/password.h"
#include "core/xalloc.h"

#include <argon2.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* What password_hash produces: RFC 9106's second recommended option
 * (64 MiB, t=3, p=1), as Dovecot's ARGON2ID default. */
#define HASH_T_COST 3
#define HASH_M_COST_KIB 65536
#define HASH_PARALLELISM 1
#define HASH_SALT_LEN 16
#define HASH_LEN 32

enum scheme {
	SCHEME_UNKNOWN,
	SCHEME_ARGON2ID,
	SCHEME_ARGON2I,
	SCHEME_BLF_CRYPT,
	SCHEME_SHA512_CRYPT,
	SCHEME_SHA256_CRYPT,
	SCHEME_CRYPT,
	SCHEME_PLAIN,
};

static const struct {
	const char *name;
	enum scheme scheme;
} scheme_names[] = {
	{ "ARGON2ID", SCHEME_ARGON2ID },
	{ "ARGON2I", SCHEME_ARGON2I },
	{ "BLF-CRYPT", SCHEME_BLF_CRYPT },
	{ "SHA512-CRYPT", SCHEME_SHA512_CRYPT },
	{ "SHA256-CRYPT", SCHEME_SHA256_CRYPT },
	{ "CRYPT", SCHEME_CRYPT },
	{ "PLAIN", SCHEME_PLAIN },
	{ "CLEAR", SCHEME_PLAIN },
	{ "CLEARTEXT", SCHEME_PLAIN },
};

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Splits "{SCHEME}data" or a bare crypt(3) string. Returns 0 with the
 * scheme and the data after the prefix, or -1 when there is no usable
 * prefix; *scheme_r is SCHEME_UNKNOWN for a well-formed but unknown name. */
static int parse_stored(const char *stored, enum scheme *scheme_r, const char **data_r)
{
	*scheme_r = SCHEME_UNKNOWN;
	if (stored[0] == '$') {
		/* libxcrypt has no Argon2; Dovecot writes these with a prefix,
		 * but a bare one is unambiguous. */
		*scheme_r = has_prefix(stored, "$argon2id$") ? SCHEME_ARGON2ID :
			    has_prefix(stored, "$argon2i$") ? SCHEME_ARGON2I : SCHEME_CRYPT;
		*data_r = stored;
		return 0;
	}
	if (stored[0] != '{')
		return -1;
	const char *end = strchr(stored, '}');
	if (end == NULL)
		return -1;
	size_t len = (size_t)(end - stored - 1);
	for (size_t i = 0; i < sizeof(scheme_names) / sizeof(scheme_names[0]); i++) {
		if (strlen(scheme_names[i].name) == len &&
		    strncasecmp(stored + 1, scheme_names[i].name, len) == 0) {
			*scheme_r = scheme_names[i].scheme;
			break;
		}
	}
	*data_r = end + 1;
	return 0;
}

static enum password_result verify_argon2(const char *data, argon2_type type,
					  const char *password, size_t password_len,
					  const char **error_r)
{
	const char *prefix = type == Argon2_id ? "$argon2id$" : "$argon2i$";
	if (!has_prefix(data, prefix)) {
		*error_r = "malformed Argon2 hash";
		return PASSWORD_ERROR;
	}
	int ret = argon2_verify(data, password, password_len, type);
	if (ret == ARGON2_OK)
		return PASSWORD_MATCH;
	if (ret == ARGON2_VERIFY_MISMATCH)
		return PASSWORD_MISMATCH;
	*error_r = argon2_error_message(ret);
	return PASSWORD_ERROR;
}

static enum password_result verify_crypt(const char *data, const char *password,
					 size_t password_len, const char **error_r)
{
	if (data[0] == '\0') {
		*error_r = "empty crypt hash";
		return PASSWORD_ERROR;
	}
	/* crypt(3) takes a C string: a password with a NUL could only match a
	 * truncated form of itself, so it never matches. */
	if (memchr(password, '\0', password_len) != NULL)
		return PASSWORD_MISMATCH;

	char *copy = xmalloc(password_len + 1);
	memcpy(copy, password, password_len);
	copy[password_len] = '\0';
	/* Tens of KiB: too big for a worker thread's stack. libxcrypt wants
	 * it zeroed before first use. */
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));

	enum password_result result;
	const char *out = crypt_r(copy, data, cd);
	/* libxcrypt returns NULL or a "*0"/"*1" failure token for a setting
	 * it cannot use; neither can equal a valid hash. */
	if (out == NULL || out[0] == '*') {
		*error_r = "unsupported or malformed crypt hash";
		result = PASSWORD_ERROR;
	} else {
		size_t out_len = strlen(out), data_len = strlen(data);
		result = out_len == data_len && CRYPTO_memcmp(out, data, out_len) == 0 ?
			 PASSWORD_MATCH : PASSWORD_MISMATCH;
	}
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	OPENSSL_cleanse(copy, password_len);
	free(copy);
	return result;
}

/* Compares digests rather than the strings so that neither the time nor an
 * early length check says how long the stored password is. */
static enum password_result verify_plain(const char *data, const char *password,
					 size_t password_len, const char **error_r)
{
	unsigned char d1[EVP_MAX_MD_SIZE], d2[EVP_MAX_MD_SIZE];
	unsigned int n1 = 0, n2 = 0;

	if (EVP_Digest(data, strlen(data), d1, &n1, EVP_sha256(), NULL) != 1 ||
	    EVP_Digest(password, password_len, d2, &n2, EVP_sha256(), NULL) != 1) {
		*error_r = "SHA-256 failed";
		return PASSWORD_ERROR;
	}
	bool same = n1 == n2 && CRYPTO_memcmp(d1, d2, n1) == 0;
	OPENSSL_cleanse(d1, sizeof(d1));
	OPENSSL_cleanse(d2, sizeof(d2));
	return same ? PASSWORD_MATCH : PASSWORD_MISMATCH;
}

enum password_result password_verify(const char *stored, const char *password,
				     size_t password_len, const char **error_r)
{
	enum scheme scheme;
	const char *data;

	*error_r = NULL;
	if (parse_stored(stored, &scheme, &data) < 0) {
		*error_r = "no {SCHEME} prefix";
		return PASSWORD_ERROR;
	}
	/* The named schemes must hold what their name says; a {SHA512-CRYPT}
	 * holding a DES hash is a broken file, not a password to accept. */
	switch (scheme) {
	case SCHEME_UNKNOWN:
		*error_r = "unknown password scheme";
		return PASSWORD_ERROR;
	case SCHEME_ARGON2ID:
		return verify_argon2(data, Argon2_id, password, password_len, error_r);
	case SCHEME_ARGON2I:
		return verify_argon2(data, Argon2_i, password, password_len, error_r);
	case SCHEME_BLF_CRYPT:
		if (!has_prefix(data, "$2y$") && !has_prefix(data, "$2b$") &&
		    !has_prefix(data, "$2a$")) {
			*error_r = "malformed BLF-CRYPT hash";
			return PASSWORD_ERROR;
		}
		return verify_crypt(data, password, password_len, error_r);
	case SCHEME_SHA512_CRYPT:
		if (!has_prefix(data, "$6$")) {
			*error_r = "malformed SHA512-CRYPT hash";
			return PASSWORD_ERROR;
		}
		return verify_crypt(data, password, password_len, error_r);
	case SCHEME_SHA256_CRYPT:
		if (!has_prefix(data, "$5$")) {
			*error_r = "malformed SHA256-CRYPT hash";
			return PASSWORD_ERROR;
		}
		return verify_crypt(data, password, password_len, error_r);
	case SCHEME_CRYPT:
		return verify_crypt(data, password, password_len, error_r);
	case SCHEME_PLAIN:
		return verify_plain(data, password, password_len, error_r);
	}
	*error_r = "unknown password scheme";
	return PASSWORD_ERROR;
}

char *password_hash(const char *password, size_t password_len, const char **error_r)
{
	static const char prefix[] = "{ARGON2ID}";
	unsigned char salt[HASH_SALT_LEN];

	*error_r = NULL;
	if (password_len > ARGON2_MAX_PWD_LENGTH) {
		*error_r = "password too long";
		return NULL;
	}
	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		*error_r = "no random bytes for a salt";
		return NULL;
	}
	size_t encoded_len = argon2_encodedlen(HASH_T_COST, HASH_M_COST_KIB, HASH_PARALLELISM,
					       HASH_SALT_LEN, HASH_LEN, Argon2_id);
	char *out = xmalloc(sizeof(prefix) - 1 + encoded_len);
	memcpy(out, prefix, sizeof(prefix) - 1);
	int ret = argon2id_hash_encoded(HASH_T_COST, HASH_M_COST_KIB, HASH_PARALLELISM,
					password, password_len, salt, sizeof(salt), HASH_LEN,
					out + sizeof(prefix) - 1, encoded_len);
	if (ret != ARGON2_OK) {
		*error_r = argon2_error_message(ret);
		free(out);
		return NULL;
	}
	return out;
}

void password_scheme_name(const char *stored, char *name, size_t size)
{
	if (size == 0)
		return;
	enum scheme scheme;
	const char *data;
	const char *src = "UNKNOWN";
	size_t len;

	if (parse_stored(stored, &scheme, &data) == 0 && stored[0] == '{' && data - stored > 2) {
		src = stored + 1;
		len = (size_t)(data - stored - 2);
	} else {
		if (stored[0] == '$')
			src = scheme == SCHEME_ARGON2ID ? "ARGON2ID" :
			      scheme == SCHEME_ARGON2I ? "ARGON2I" : "CRYPT";
		len = strlen(src);
	}
	if (len >= size)
		len = size - 1;
	/* Upper case, and nothing a log line would have to escape. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		name[i] = c > 0x20 && c < 0x7f ? (char)(c >= 'a' && c <= 'z' ? c - 32 : c) : '?';
	}
	name[len] = '\0';
}

bool password_scheme_is_plain(const char *stored)
{
	enum scheme scheme;
	const char *data;
	return parse_stored(stored, &scheme, &data) == 0 && scheme == SCHEME_PLAIN;
}
