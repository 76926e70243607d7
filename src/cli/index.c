#include "cli/index.h"

#include "auth/passwd_file.h"
#include "cli/account.h"
#include "core/buf.h"
#include "core/config.h"
#include "imapd/search_indexer.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

static void usage(void)
{
	fputs("usage: postern index [-c FILE] USER...\n", stderr);
}

static double now_s(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int index_one(const struct config *cfg, const struct passwd_file *pf, const char *user)
{
	if (passwd_file_find(pf, user) == NULL) {
		fprintf(stderr, "postern index: no such user: %s\n", user);
		return EX_NOUSER;
	}
	struct store *st;
	enum store_error error;
	char *text = NULL;
	if (store_open(cfg->data_dir, user, &st, &error, &text) < 0) {
		fprintf(stderr, "postern index: %s: cannot open the store in %s: %s\n", user, cfg->data_dir,
			text ? text : store_error_name(error));
		free(text);
		return EX_IOERR;
	}
	struct search_index_stats stats = { 0 };
	double started = now_s();
	int rc = search_index_user(st, NULL, &stats);
	double seconds = now_s() - started;
	int status = EX_OK;
	if (rc < 0) {
		const char *detail;
		store_last_error(st, &detail);
		fprintf(stderr, "postern index: %s: indexing failed after %zu messages: %s\n", user, stats.indexed,
			detail);
		status = EX_IOERR;
	} else {
		printf("%s: %zu messages indexed, %zu left out, %zu removed in %.2f s (%.0f messages/s)\n", user,
		       stats.indexed, stats.left_out, stats.removed, seconds,
		       seconds > 0 ? (double)stats.indexed / seconds : 0.0);
	}
	store_close(&st);
	return status;
}

static int index_users(const struct config *cfg, char **users, int count)
{
	struct passwd_file pf = { 0 };
	struct buf errors = BUF_INIT;
	int status = EX_OK;
	if (passwd_file_load(&pf, cfg->passwd_file, &errors) < 0) {
		fprintf(stderr, "%s", errors.data ? errors.data : "");
		fprintf(stderr, "postern index: the password file %s is not usable\n", cfg->passwd_file);
		buf_free(&errors);
		return EX_CONFIG;
	}
	buf_free(&errors);
	for (int i = 0; i < count; i++) {
		int rc = index_one(cfg, &pf, users[i]);
		if (rc != EX_OK && status == EX_OK)
			status = rc;
		if (fflush(stdout) != 0 && status == EX_OK)
			status = EX_IOERR;
	}
	passwd_file_free(&pf);
	return status;
}

int cli_index(int argc, char **argv, const char *default_config)
{
	const char *config_path = NULL;
	int opt;
	optind = 1;
	while ((opt = getopt(argc, argv, "c:")) != -1) {
		if (opt != 'c') {
			usage();
			return EX_USAGE;
		}
		config_path = optarg;
	}
	if (optind >= argc) {
		usage();
		return EX_USAGE;
	}
	struct config cfg;
	if (cli_config_as_server(config_path, default_config, "index", &cfg) < 0)
		return EX_CONFIG;
	int status = index_users(&cfg, argv + optind, argc - optind);
	config_free(&cfg);
	return status;
}
