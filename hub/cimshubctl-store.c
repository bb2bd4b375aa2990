/* SPDX-License-Identifier: Apache-2.0 */
/* Locates and opens the hub's state database for the cimshubctl
 * subcommands that read it directly. The subcommands themselves are in
 * cimshubctl-audit.c and cimshubctl-report.c. */
#include "hub/cimshubctl-store.h"

#include <stdio.h>

#include "hub/cimshubctl-private.h"

void
cims_ctl_store_options_clear (CimsCtlStoreOptions *options)
{
  g_clear_pointer (&options->config_path, g_free);
  g_clear_pointer (&options->db_path, g_free);
}

void
cims_ctl_store_options_add (GOptionContext *context, CimsCtlStoreOptions *options)
{
  const GOptionEntry entries[] = {
    { "config", 0, 0, G_OPTION_ARG_FILENAME, &options->config_path,
      "Hub configuration; the database is STATE_DIR/cimshub.db", "FILE" },
    { "db", 0, 0, G_OPTION_ARG_FILENAME, &options->db_path,
      "State database to read (overrides the configuration's)", "PATH" },
    G_OPTION_ENTRY_NULL
  };

  g_option_context_add_main_entries (context, entries, NULL);
}

CimsStore *
cims_ctl_store_open (const CimsCtlStoreOptions *options, CimsConfig **config, GError **error)
{
  g_autoptr (CimsConfig) loaded = NULL;
  g_autofree char *path = NULL;

  if (options->config_path == NULL && options->db_path == NULL) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "--config FILE or --db PATH is required");
    return NULL;
  }

  if (options->config_path != NULL) {
    loaded = cims_config_load (options->config_path, error);
    if (loaded == NULL)
      return NULL;
  }

  path = options->db_path != NULL ? g_strdup (options->db_path)
                                  : g_build_filename (loaded->state_dir, "cimshub.db", NULL);

  /* Opening would create an empty database, which would then verify. */
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_OPEN,
                 "Cannot open state store %s: no such file", path);
    return NULL;
  }

  if (config != NULL)
    *config = g_steal_pointer (&loaded);
  return cims_store_sqlite_open (path, error);
}

int
cims_ctl_store_open_failed (const GError *error)
{
  if (error->domain == G_OPTION_ERROR)
    return cims_ctl_usage_error (error->message);

  fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
  return error->domain == CIMS_STORE_ERROR ? CIMS_CTL_EXIT_NO_DATABASE : CTL_EXIT_FAILED;
}
