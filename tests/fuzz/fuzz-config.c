/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for configuration files: the input is written to
 * cims-fuzz-config-XXXXXX/fuzz.conf in the temporary folder (one folder per
 * process, removed at exit) and loaded with cims_config_load. */

#include <stdint.h>
#include <stdlib.h>

#include <glib/gstdio.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static char *fuzz_dir;
static char *fuzz_path;

static void
fuzz_dir_remove (void)
{
  g_unlink (fuzz_path);
  g_rmdir (fuzz_dir);
  g_clear_pointer (&fuzz_path, g_free);
  g_clear_pointer (&fuzz_dir, g_free);
}

static void
fuzz_dir_ensure (void)
{
  g_autoptr(GError) error = NULL;

  if (fuzz_dir != NULL)
    return;

  fuzz_dir = g_dir_make_tmp ("cims-fuzz-config-XXXXXX", &error);
  g_assert_no_error (error);
  fuzz_path = g_build_filename (fuzz_dir, "fuzz.conf", NULL);
  atexit (fuzz_dir_remove);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(CimsConfig) config = NULL;

  fuzz_dir_ensure ();
  g_file_set_contents (fuzz_path, (const char *) data, (gssize) size, &error);
  g_assert_no_error (error);

  config = cims_config_load (fuzz_path, &error);
  if (config == NULL) {
    g_assert_nonnull (error);
    g_assert_true (error->domain == CIMS_CONFIG_ERROR);
    g_assert_nonnull (error->message);
    return 0;
  }

  g_assert_no_error (error);
  for (guint i = 0; i < config->cameras->len; i++) {
    const CimsConfigCamera *camera = g_ptr_array_index (config->cameras, i);

    g_assert_true (cims_config_find_camera (config, camera->id) != NULL);
  }

  return 0;
}
