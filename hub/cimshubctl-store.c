/* SPDX-License-Identifier: Apache-2.0 */
/* Locates and opens the hub's state database for the cimshubctl
 * subcommands that read it directly. The subcommands themselves are in
 * cimshubctl-audit.c and cimshubctl-report.c. */
#include "hub/cimshubctl-store.h"

#include <stdio.h>

#include <libconfig.h>

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

gboolean
cims_ctl_store_options_parse (CimsCtlStoreOptions *options, GOptionContext *context, int argc, char **argv,
                              GError **error)
{
  cims_ctl_store_options_add (context, options);
  if (!g_option_context_parse (context, &argc, &argv, error))
    return FALSE;

  if (argc > 1) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "unexpected argument \"%s\"", argv[1]);
    return FALSE;
  }
  return TRUE;
}

static char *
store_path_in (const char *state_dir)
{
  return g_build_filename (state_dir, "cimshub.db", NULL);
}

/* Reads hub.state_dir from @config_path and nothing else, so problems
 * elsewhere in the file do not matter. A relative path resolves against
 * the file's directory, as cims_config_load() resolves it.
 * Returns: (transfer full) (nullable): the absolute state directory, or
 * NULL when libconfig cannot parse the file or hub.state_dir is not a
 * non-empty string. */
static char *
config_read_state_dir (const char *config_path)
{
  g_autofree char *absolute = g_canonicalize_filename (config_path, NULL);
  g_autofree char *base_dir = g_path_get_dirname (absolute);
  const char *value = NULL;
  char *state_dir = NULL;
  config_t document;

  config_init (&document);
  config_set_include_dir (&document, base_dir);
  /* An empty state_dir, which the hub rejects, would name the file's folder. */
  if (config_read_file (&document, absolute) && config_lookup_string (&document, "hub.state_dir", &value)
      && value[0] != '\0')
    state_dir = g_canonicalize_filename (value, base_dir);
  config_destroy (&document);

  return state_dir;
}

/* Locates the database from --config for a subcommand that uses nothing
 * else from the configuration. An invalid configuration still gives its
 * state_dir, after a warning on stderr that lists its problems and names
 * the database. When even state_dir cannot be read, fails with the
 * configuration's error and a hint to give --db instead.
 * Returns: (transfer full): the database path, or NULL with @error set. */
static char *
store_path_from_config (const char *config_path, GError **error)
{
  g_autoptr (CimsConfig) config = NULL;
  g_autoptr (GError) load_error = NULL;
  g_autofree char *state_dir = NULL;
  g_autofree char *path = NULL;

  config = cims_config_load (config_path, &load_error);
  if (config != NULL)
    return store_path_in (config->state_dir);

  state_dir = config_read_state_dir (config_path);
  if (state_dir == NULL) {
    g_set_error (error, CIMS_CONFIG_ERROR, load_error->code,
                 "%s\nCannot read state_dir from %s, so give the database as --db STATE_DIR/cimshub.db, "
                 "where STATE_DIR is the hub's state directory.",
                 load_error->message, config_path);
    return NULL;
  }

  path = store_path_in (state_dir);
  fprintf (stderr, "%s: warning: %s is invalid, and cimshub would not load it:\n%s\n"
           "%s: using the database %s from its state_dir.\n",
           g_get_prgname (), config_path, load_error->message, g_get_prgname (), path);
  return g_steal_pointer (&path);
}

/* Finds the database path: --db, else the configuration's state_dir. When
 * @config is not NULL, loads --config into *@config, and any problem in it
 * fails the call even with --db.
 * Returns: (transfer full): the path, or NULL with @error set. */
static char *
store_path_find (const CimsCtlStoreOptions *options, CimsConfig **config, GError **error)
{
  if (config == NULL && options->db_path != NULL)
    return g_strdup (options->db_path);

  if (config == NULL)
    return store_path_from_config (options->config_path, error);

  if (options->config_path != NULL) {
    *config = cims_config_load (options->config_path, error);
    if (*config == NULL)
      return NULL;
  }

  if (options->db_path != NULL)
    return g_strdup (options->db_path);

  return store_path_in ((*config)->state_dir);
}

/* Finds the database path as store_path_find() does and checks that the
 * file is there, because cims_store_sqlite_open() would create an empty one.
 * Returns: (transfer full): the path, or NULL with @error set. */
static char *
store_path_locate (const CimsCtlStoreOptions *options, CimsConfig **config, GError **error)
{
  g_autofree char *path = NULL;

  if (options->config_path == NULL && options->db_path == NULL) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "--config FILE or --db PATH is required");
    return NULL;
  }

  path = store_path_find (options, config, error);
  if (path == NULL)
    return NULL;

  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_OPEN,
                 "Cannot open state store %s: no such file", path);
    return NULL;
  }

  return g_steal_pointer (&path);
}

CimsStore *
cims_ctl_store_open (const CimsCtlStoreOptions *options, CimsConfig **config, GError **error)
{
  g_autofree char *path = store_path_locate (options, config, error);

  if (path == NULL)
    return NULL;

  return cims_store_sqlite_open_audit_reader (path, error);
}

int
cims_ctl_store_open_failed (const GError *error)
{
  if (error->domain == G_OPTION_ERROR)
    return cims_ctl_usage_error (error->message);

  fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
  return error->domain == CIMS_STORE_ERROR ? CIMS_CTL_EXIT_NO_DATABASE : CTL_EXIT_FAILED;
}
