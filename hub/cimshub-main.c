/* SPDX-License-Identifier: Apache-2.0 */
/* The cimshub daemon's entry point: command-line options, configuration
 * check, signal handling and the main loop. The hub itself is hub.c. */
#include <stdio.h>
#include <stdlib.h>

#include <glib-unix.h>
#include <gst/gst.h>

#include "auth/auth.h"
#include "config/config.h"
#include "hub/hub.h"

static gboolean
quit_cb (gpointer user_data)
{
  g_message ("stop signal received, ending every session");
  g_main_loop_quit (user_data);
  return G_SOURCE_CONTINUE;
}

static gboolean
reload_cb (gpointer user_data)
{
  g_autoptr (GError) error = NULL;

  g_message ("SIGHUP received, reloading the configuration");
  if (!cims_hub_reload (user_data, &error))
    g_warning ("configuration not reloaded, the running one stays in force:\n%s", error->message);
  return G_SOURCE_CONTINUE;
}

static int
check_config (const char *path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsConfig) config = cims_config_load (path, &error);
  g_autoptr (CimsAuthKeyring) keyring = NULL;

  if (config == NULL) {
    fprintf (stderr, "%s\n", error->message);
    return EXIT_FAILURE;
  }

  /* The keyring's message is already one "FILE:LINE: message" line per key. */
  keyring = cims_auth_keyring_new (config, &error);
  if (keyring == NULL) {
    fprintf (stderr, "%s\n", error->message);
    return EXIT_FAILURE;
  }

  printf ("%s: OK (jurisdictions: %u, agencies: %u, cameras: %u, viewer profiles: %u)\n", path,
          config->jurisdictions->len, config->agencies->len, config->cameras->len,
          config->profiles->len);
  if (!g_file_test (config->state_dir, G_FILE_TEST_IS_DIR))
    printf ("note: state_dir %s does not exist; the hub will create it with a new, empty audit log\n",
            config->state_dir);
  return EXIT_SUCCESS;
}

static int
run (const char *path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsConfig) config = cims_config_load (path, &error);
  g_autoptr (GMainLoop) loop = NULL;
  CimsHub *hub;

  if (config == NULL) {
    fprintf (stderr, "%s\n", error->message);
    return EXIT_FAILURE;
  }

  hub = cims_hub_new (config, &error);
  if (hub == NULL || !cims_hub_start (hub, &error)) {
    fprintf (stderr, "cimshub: %s\n", error->message);
    g_clear_pointer (&hub, cims_hub_free);
    return EXIT_FAILURE;
  }

  loop = g_main_loop_new (NULL, FALSE);
  g_unix_signal_add (SIGINT, quit_cb, loop);
  g_unix_signal_add (SIGTERM, quit_cb, loop);
  g_unix_signal_add (SIGHUP, reload_cb, hub);
  g_main_loop_run (loop);

  cims_hub_free (hub);
  g_message ("stopped");
  return EXIT_SUCCESS;
}

int
main (int argc, char **argv)
{
  g_autofree char *config_path = NULL;
  g_autofree char *check_path = NULL;
  gboolean show_version = FALSE;
  GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path, "Run the hub with this configuration file", "FILE" },
    { "check-config", 0, 0, G_OPTION_ARG_FILENAME, &check_path, "Validate this configuration file and exit", "FILE" },
    { "version", 0, 0, G_OPTION_ARG_NONE, &show_version, "Print the version and exit", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) context = g_option_context_new ("- regional camera network media hub");
  g_autoptr (GError) error = NULL;

  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_add_group (context, gst_init_get_option_group ());
  if (!g_option_context_parse (context, &argc, &argv, &error)) {
    fprintf (stderr, "cimshub: %s\nRun cimshub --help for the options.\n", error->message);
    return 2;
  }

  if (show_version) {
    printf ("cimshub %s\n", CIMS_VERSION);
    return EXIT_SUCCESS;
  }

  if (check_path != NULL)
    return check_config (check_path);

  if (config_path == NULL) {
    fprintf (stderr, "cimshub: --config FILE is required (or --check-config FILE).\n");
    return 2;
  }

  return run (config_path);
}
