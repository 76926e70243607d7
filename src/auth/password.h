/* Password schemes as Dovecot's passwd-file stores them: "{SCHEME}data".
 * ARGON2ID and ARGON2I (libargon2), BLF-CRYPT, SHA512-CRYPT, SHA256-CRYPT
 * and CRYPT (libxcrypt's crypt_r), PLAIN (also CLEAR, CLEARTEXT); scheme
 * names are case-insensitive. A hash without a {SCHEME} prefix is taken as
 * crypt(3) when it starts with '$', as Dovecot's CRYPT default does.
 * A password holding a NUL never matches a crypt(3) scheme.
 *
 * All functions are thread-safe.
 *
 * These are slow by design; call them off the event loop (auth/pool.h). */
#ifndef POSTERN_AUTH_PASSWORD_H
#define POSTERN_AUTH_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

enum password_result {
	PASSWORD_MATCH,
	PASSWORD_MISMATCH,
	PASSWORD_ERROR,		/* unknown scheme, malformed hash: *error_r says */
};

enum password_result password_verify(const char *stored, const char *password,
				     size_t password_len, const char **error_r);
/* "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$salt$hash", malloc'd; NULL and
 * *error_r on failure (no entropy, out of memory). */
char *password_hash(const char *password, size_t password_len, const char **error_r);
/* The scheme name of a stored hash ("ARGON2ID", "SHA512-CRYPT", ...), for
 * logs; writes at most size bytes. */
void password_scheme_name(const char *stored, char *name, size_t size);
/* True for schemes that keep the password readable (PLAIN, CLEAR). */
bool password_scheme_is_plain(const char *stored);

#endif
