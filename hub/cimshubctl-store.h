/* SPDX-License-Identifier: Apache-2.0 */
/* cimshubctl subcommands that read the hub's state database directly
 * instead of calling the admin API: audit verify, audit list and report
 * annual. Shared tool helpers are in cimshubctl-private.h. */
#pragma once

#include <glib.h>

#include "auth/store.h"
#include "config/config.h"

G_BEGIN_DECLS

/* Exit status when the database cannot be opened or read. */
#define CIMS_CTL_EXIT_NO_DATABASE 3

/* The options that locate the database: --config FILE (its state_dir's
 * cimshub.db) and --db PATH, which takes precedence for the database. */
typedef struct {
  char *config_path;
  char *db_path;
} CimsCtlStoreOptions;

void cims_ctl_store_options_clear (CimsCtlStoreOptions *options);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (CimsCtlStoreOptions, cims_ctl_store_options_clear)

/* Adds --config and --db, writing to @options, to @context's main group. */
void cims_ctl_store_options_add (GOptionContext *context, CimsCtlStoreOptions *options);

/* Adds --config and --db as cims_ctl_store_options_add() does and parses
 * @argv, where argv[0] is the subcommand, with @context. Fails with a
 * G_OPTION_ERROR on an invalid option or on an argument that is not one. */
gboolean cims_ctl_store_options_parse (CimsCtlStoreOptions *options, GOptionContext *context, int argc,
                                       char **argv, GError **error);

/**
 * cims_ctl_store_open:
 * Opens the existing database read-only, through
 * cims_store_sqlite_open_audit_reader(): the audit log is evidence, and
 * reading it must change nothing in the file. It never creates one. A caller that needs
 * the configuration passes @config: the configuration given with --config
 * then loads into *@config, and any problem in it fails the call. With
 * @config NULL only the database path is needed: --db skips the
 * configuration, and an invalid configuration still gives its state_dir,
 * after a warning on stderr that lists its problems.
 * Fails with a G_OPTION_ERROR when neither option was given, with a
 * CIMS_CONFIG_ERROR when the configuration (or for @config NULL, its
 * state_dir) cannot be read, or with CIMS_STORE_ERROR_OPEN when no
 * database file is there or SQLite cannot open it, and with
 * CIMS_STORE_ERROR_CHAIN_BROKEN when the file has no audit_log table.
 * Returns: (transfer full): the store, or NULL with @error set.
 */
CimsStore *cims_ctl_store_open (const CimsCtlStoreOptions *options, CimsConfig **config, GError **error);


/* Prints why cims_ctl_store_open() failed and returns the exit status:
 * 2 for a command-line error, 3 when the database cannot be opened, 1 for
 * an invalid configuration. */
int cims_ctl_store_open_failed (const GError *error);

/* Each runs one subcommand: argv[0] is the subcommand's last word and its
 * options follow. Each returns the exit status. */
int cims_ctl_audit_verify_run (int argc, char **argv);
int cims_ctl_audit_list_run (int argc, char **argv);
int cims_ctl_report_annual_run (int argc, char **argv);

G_END_DECLS
