#include "cli/account.h"
#include "core/buf.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Root would leave files in the user's store that the server, running as
 * `user`, cannot write: become that account first, as `serve` does. */
int cli_become_server_user(const struct config *cfg, const char *command)
{
	if (geteuid() != 0)
		return 0;
	errno = 0;
	struct passwd *pw = getpwnam(cfg->user);
	if (pw == NULL) {
		fprintf(stderr, "postern %s: run as root, and the account '%s' (`user` in the "
			"configuration) does not exist\n", command, cfg->user);
		return -1;
	}
	if (pw->pw_uid == 0)
		return 0;
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		fprintf(stderr, "postern %s: cannot switch to user %s: %s\n", command, pw->pw_name, strerror(errno));
		return -1;
	}
	return 0;
}

int cli_config_as_server(const char *config_path, const char *default_config, const char *command,
			 struct config *cfg)
{
	struct buf errors = BUF_INIT;
	if (config_path == NULL && access(default_config, F_OK) == 0)
		config_path = default_config;
	if (config_path == NULL) {
		config_init_defaults(cfg);
	} else if (config_load(cfg, config_path, &errors) < 0) {
		fprintf(stderr, "%s", errors.data ? errors.data : "");
		fprintf(stderr, "postern %s: %s: configuration not valid\n", command, config_path);
		buf_free(&errors);
		config_free(cfg);
		return -1;
	}
	buf_free(&errors);
	if (cli_become_server_user(cfg, command) < 0) {
		config_free(cfg);
		return -1;
	}
	return 0;
}
