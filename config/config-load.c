/* SPDX-License-Identifier: Apache-2.0 */
/* Loading a configuration file: reading it, parsing it with libconfig and
 * running the section parsers, which collect every problem before the load
 * fails. The checks themselves live in the config-*.c section files. */
#include "config/config.h"

#include <string.h>

#include "config/config-private.h"

G_DEFINE_QUARK (cims-config-error-quark, cims_config_error)

static int
text_line_at (const char *text, gsize offset)
{
  int line = 1;

  for (gsize i = 0; i < offset; i++)
    {
      if (text[i] == '\n')
        line++;
    }

  return line;
}

/* Parses @text into @document, reporting syntax errors as "FILE:LINE:". */
static gboolean
config_parse_text (config_t *document, CimsConfigLoader *loader,
                   const char *text, gsize length, GError **error)
{
  const char *nul = memchr (text, '\0', length);
  const char *file;

  /* libconfig reads a C string, so text after a NUL byte would vanish unseen. */
  if (nul != NULL)
    {
      g_set_error (error, CIMS_CONFIG_ERROR, CIMS_CONFIG_ERROR_SYNTAX,
                   "%s:%d: syntax error: NUL byte in the file", loader->path,
                   text_line_at (text, nul - text));
      return FALSE;
    }

  /* Relative @include paths resolve against the file's own directory. */
  config_set_include_dir (document, loader->base_dir);

  if (config_read_string (document, text))
    return TRUE;

  file = config_error_file (document);
  g_set_error (error, CIMS_CONFIG_ERROR, CIMS_CONFIG_ERROR_SYNTAX, "%s:%d: syntax error: %s",
               file != NULL ? file : loader->path, config_error_line (document),
               config_error_text (document));

  return FALSE;
}

static const char *const root_settings[] = {
  "hub", "jurisdictions", "agencies", "cameras", "viewer_profiles", NULL,
};

/* Runs the section parsers in dependency order: cameras need jurisdictions,
 * and the hub's default_profile needs the profiles. */
static void
config_parse_sections (CimsConfigLoader *loader, const config_setting_t *root)
{
  cims_config_parse_jurisdictions (loader, root);
  cims_config_parse_agencies (loader, root);
  cims_config_parse_profiles (loader, root);
  cims_config_parse_cameras (loader, root);
  cims_config_parse_hub (loader, root);
  cims_config_check_members (loader, root, NULL, root_settings);
}

/**
 * cims_config_load:
 * Reads and validates the libconfig file @path. Relative paths inside it
 * resolve against its directory. May run on any thread; it touches no
 * shared state.
 * Returns: (transfer full) (nullable): the configuration, or NULL with
 * @error set: CIMS_CONFIG_ERROR_READ when the file cannot be read,
 * CIMS_CONFIG_ERROR_SYNTAX with "FILE:LINE: syntax error: ...", or
 * CIMS_CONFIG_ERROR_INVALID with one "FILE:LINE: message" line per problem.
 */
CimsConfig *
cims_config_load (const char *path, GError **error)
{
  g_autoptr (GError) read_error = NULL;
  g_autoptr (CimsConfig) config = NULL;
  g_auto (config_t) document = { 0 };
  g_auto (CimsConfigLoader) loader = { 0 };
  g_autofree char *text = NULL;
  g_autofree char *problems = NULL;
  gsize length = 0;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  config_init (&document);

  if (!g_file_get_contents (path, &text, &length, &read_error))
    {
      g_set_error (error, CIMS_CONFIG_ERROR, CIMS_CONFIG_ERROR_READ,
                   "Cannot read the configuration file %s: %s", path, read_error->message);
      return NULL;
    }

  config = cims_config_new_empty (path);
  cims_config_loader_init (&loader, path, config);

  if (!config_parse_text (&document, &loader, text, length, error))
    return NULL;

  config_parse_sections (&loader, config_root_setting (&document));
  problems = cims_config_loader_format_problems (&loader);
  if (problems != NULL)
    {
      g_set_error_literal (error, CIMS_CONFIG_ERROR, CIMS_CONFIG_ERROR_INVALID, problems);
      return NULL;
    }

  g_debug ("loaded %s: %u jurisdictions, %u agencies, %u cameras, %u viewer profiles",
           path, config->jurisdictions->len, config->agencies->len,
           config->cameras->len, config->profiles->len);

  return g_steal_pointer (&config);
}
