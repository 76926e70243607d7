/* postern: one binary, subcommands like git. */
#include "cli/deliver.h"
#include "cli/config_check.h"
#include "cli/doctor.h"
#include "cli/index.h"
#include "cli/export.h"
#include "cli/import.h"
#include "cli/user.h"
#include "core/config.h"
#include "core/log.h"
#include "daemon/daemon.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CONFIG "/etc/postern/postern.conf"
#define POSTERN_VERSION "0.1.0"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: postern COMMAND [ARGS]\n"
		"\n"
		"  serve [-c FILE]                 run the IMAP server (default config " DEFAULT_CONFIG ")\n"
		"  user add|passwd|del NAME [-c FILE | -f PASSWD_FILE]\n"
		"                                  edit the password file; the password is read\n"
		"                                  from the terminal or standard input\n"
		"  user list [-c FILE | -f PASSWD_FILE]\n"
		"  deliver [-c FILE] [-m MAILBOX] USER < message\n"
		"                                  deliver one message (MDA for Postfix, Exim)\n"
		"  index [-c FILE] USER...         put every message of USER into the full-text index now\n"
		"  config check [-c FILE]          check the configuration and the files and ports it names\n"
		"  doctor HOST [--port N[/tls|/starttls]]... [--cafile F] [--user U] [--json] [--timeout S]\n"
		"                                  check an IMAP server from the outside\n"
		"  import maildir DIR USER [-c FILE]\n"
		"  import mbox FILE USER [MAILBOX] [-c FILE]\n"
		"                                  move mail in (Dovecot, Courier, mbox)\n"
		"  export maildir USER DIR [-c FILE]\n"
		"                                  write a Maildir++ tree Dovecot reads\n"
		"  version                         print the version\n");
}

/* Loads the config named by -c (or the default path); prints every problem. */
static int load_config(struct config *cfg, const char *path)
{
	struct buf errors = BUF_INIT;
	if (config_load(cfg, path, &errors) < 0) {
		fprintf(stderr, "%s", errors.data ? errors.data : "");
		fprintf(stderr, "postern: %s: configuration not valid\n", path);
		buf_free(&errors);
		return -1;
	}
	buf_free(&errors);
	config_add_default_listeners(cfg, config_ipv6_available());
	return 0;
}

static int cmd_serve(int argc, char **argv)
{
	const char *path = DEFAULT_CONFIG;
	int opt;
	optind = 1;
	while ((opt = getopt(argc, argv, "c:")) != -1) {
		if (opt != 'c') {
			usage(stderr);
			return 2;
		}
		path = optarg;
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	struct config cfg;
	if (load_config(&cfg, path) < 0) {
		config_free(&cfg);
		return 1;
	}
	int status = master_run(&cfg);
	config_free(&cfg);
	return status;
}

/* `postern user VERB [NAME] [-c FILE | -f PASSWD]`: options may come
 * anywhere after the verb. */
static int cmd_user(int argc, char **argv)
{
	const char *config_path = NULL, *passwd_path = NULL;
	char **rest = calloc((size_t)argc + 1, sizeof(char *));
	if (rest == NULL)
		return 1;
	int n = 0;
	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "-f") == 0) && i + 1 < argc) {
			if (argv[i][1] == 'c')
				config_path = argv[++i];
			else
				passwd_path = argv[++i];
		} else {
			rest[n++] = argv[i];
		}
	}
	int status = 1;
	struct config cfg;
	config_init_defaults(&cfg);
	if (passwd_path == NULL) {
		if (config_path == NULL && access(DEFAULT_CONFIG, F_OK) == 0)
			config_path = DEFAULT_CONFIG;
		if (config_path != NULL) {
			config_free(&cfg);
			if (load_config(&cfg, config_path) < 0)
				goto out;
		}
		passwd_path = cfg.passwd_file;
	}
	status = cli_user(n, rest, passwd_path);
out:
	config_free(&cfg);
	free(rest);
	return status;
}

/* `postern import|export ...`: -c may come anywhere; without it the default
 * config is read if it exists, else the built-in defaults apply. */
static int cmd_migrate(int argc, char **argv, bool import)
{
	const char *config_path = NULL;
	char **rest = calloc((size_t)argc + 1, sizeof(char *));
	if (rest == NULL)
		return 1;
	int n = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			config_path = argv[++i];
		else
			rest[n++] = argv[i];
	}
	int status = 1;
	struct config cfg;
	config_init_defaults(&cfg);
	if (config_path == NULL && access(DEFAULT_CONFIG, F_OK) == 0)
		config_path = DEFAULT_CONFIG;
	if (config_path != NULL) {
		config_free(&cfg);
		if (load_config(&cfg, config_path) < 0)
			goto out;
	}
	status = import ? cli_import(n, rest, cfg.data_dir, cfg.user) : cli_export(n, rest, cfg.data_dir);
out:
	config_free(&cfg);
	free(rest);
	return status;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *command = argv[1];
	if (strcmp(command, "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(command, "user") == 0)
		return cmd_user(argc - 1, argv + 1);
	if (strcmp(command, "deliver") == 0)
		return cli_deliver(argc - 1, argv + 1, DEFAULT_CONFIG);
	if (strcmp(command, "index") == 0)
		return cli_index(argc - 1, argv + 1, DEFAULT_CONFIG);
	if (strcmp(command, "config") == 0)
		return cli_config(argc - 1, argv + 1, DEFAULT_CONFIG);
	if (strcmp(command, "doctor") == 0)
		return cli_doctor(argc - 1, argv + 1);
	if (strcmp(command, "import") == 0 || strcmp(command, "export") == 0)
		return cmd_migrate(argc - 1, argv + 1, command[0] == 'i');
	if (strcmp(command, "version") == 0 || strcmp(command, "--version") == 0) {
		printf("postern %s\n", POSTERN_VERSION);
		return 0;
	}
	if (strcmp(command, "help") == 0 || strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "postern: unknown command '%s'\n", command);
	usage(stderr);
	return 2;
}
