/* Admin commands that write into users' stores run as the server's
 * account, so the files they create stay writable by the server. */
#ifndef POSTERN_CLI_ACCOUNT_H
#define POSTERN_CLI_ACCOUNT_H

#include "core/config.h"

/* Started as root: becomes cfg->user (with its groups). Otherwise, or
 * when that account is root: nothing. 0, or -1 after a message on stderr
 * naming command ("deliver", "index"). */
int cli_become_server_user(const struct config *cfg, const char *command);

/* The configuration the command works with: config_path, else
 * default_config when it exists, else the built-in defaults; then the
 * switch to the server's account. 0 with *cfg to config_free, or -1 after
 * a message on stderr (cfg freed). */
int cli_config_as_server(const char *config_path, const char *default_config, const char *command,
			 struct config *cfg);

#endif
