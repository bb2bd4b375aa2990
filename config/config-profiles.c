/* SPDX-License-Identifier: Apache-2.0 */
/* Parsing the `viewer_profiles` list: which codecs, H.264 profiles, frame
 * size, frame rate and bitrate a class of viewer client can take. Choosing
 * a profile for a viewer is left to the hub. */
#include "config/config-private.h"

#include <string.h>

/* Upper limits that catch unit mistakes, such as bit/s typed as kbit/s.
 * 8192 pixels leaves room for 8K video. */
#define PROFILE_MAX_DIMENSION 8192
#define PROFILE_MAX_FPS 240
#define PROFILE_MAX_KBPS 100000

static const char *const profile_settings[] = {
  "name", "codecs", "h264_profiles", "max_width", "max_height", "max_fps", "max_kbps", NULL,
};

static const char *const supported_codecs[] = { "h264", "h265", "vp8", NULL };

static void
profile_check_codecs (CimsConfigLoader *loader, const config_setting_t *entry,
                      CimsConfigProfile *profile, const char *subject)
{
  const config_setting_t *codecs = config_setting_get_member (entry, "codecs");

  if (profile->codecs[0] == NULL)
    cims_config_loader_report (loader, codecs, subject, "codecs must name at least one codec");

  for (guint i = 0; profile->codecs[i] != NULL; i++)
    {
      const char *codec = profile->codecs[i];

      if (!g_strv_contains (supported_codecs, codec))
        cims_config_loader_report (loader, config_setting_get_elem (codecs, i), subject,
                                   "codec \"%s\" is not supported (expected h264, h265 or vp8)", codec);
      else if (g_strv_contains ((const char *const *) profile->codecs + i + 1, codec))
        cims_config_loader_report (loader, config_setting_get_elem (codecs, i), subject,
                                   "codec \"%s\" is listed twice", codec);
    }
}

/* A profile-level-id prefix is 2, 4 or 6 hexadecimal digits: profile_idc,
 * then the constraint flags, then level_idc (RFC 6184, section 8.1). */
static gboolean
h264_profile_prefix_is_valid (const char *prefix)
{
  gsize length = strlen (prefix);

  if (length == 0 || length > 6 || length % 2 != 0)
    return FALSE;

  for (gsize i = 0; i < length; i++)
    {
      if (!g_ascii_isxdigit (prefix[i]))
        return FALSE;
    }

  return TRUE;
}

static void
profile_check_h264_profiles (CimsConfigLoader *loader, const config_setting_t *entry,
                             CimsConfigProfile *profile, const char *subject)
{
  const config_setting_t *setting = config_setting_get_member (entry, "h264_profiles");

  if (profile->h264_profiles[0] != NULL && profile->codecs != NULL &&
      !g_strv_contains ((const char *const *) profile->codecs, "h264"))
    cims_config_loader_report (loader, setting, subject,
                               "h264_profiles is set but codecs does not include \"h264\"");

  for (guint i = 0; profile->h264_profiles[i] != NULL; i++)
    {
      char *prefix = profile->h264_profiles[i];

      if (!h264_profile_prefix_is_valid (prefix))
        {
          cims_config_loader_report (loader, config_setting_get_elem (setting, i), subject,
                                     "h264_profiles entry \"%s\" is not a profile-level-id prefix "
                                     "(2, 4 or 6 hexadecimal digits such as \"42e01f\")", prefix);
          continue;
        }

      /* profile-level-id is hexadecimal, so case carries no meaning. */
      for (char *p = prefix; *p != '\0'; p++)
        *p = g_ascii_tolower (*p);
    }
}

static void
profile_read_limits (CimsConfigLoader *loader, const config_setting_t *entry,
                     CimsConfigProfile *profile, const char *subject)
{
  cims_config_read_uint (loader, entry, "max_width", subject, TRUE,
                         1, PROFILE_MAX_DIMENSION, &profile->max_width);
  cims_config_read_uint (loader, entry, "max_height", subject, TRUE,
                         1, PROFILE_MAX_DIMENSION, &profile->max_height);
  cims_config_read_uint (loader, entry, "max_fps", subject, TRUE, 1, PROFILE_MAX_FPS, &profile->max_fps);
  cims_config_read_uint (loader, entry, "max_kbps", subject, TRUE, 1, PROFILE_MAX_KBPS, &profile->max_kbps);
}

static CimsConfigProfile *
profile_parse (CimsConfigLoader *loader, const config_setting_t *entry, const char *subject)
{
  g_autoptr (CimsConfigProfile) profile = g_new0 (CimsConfigProfile, 1);

  profile->line = config_setting_source_line (entry);
  profile->name = g_strdup (cims_config_read_id (loader, entry, "name", "viewer profile", subject));
  profile->codecs = cims_config_read_strv (loader, entry, "codecs", subject, TRUE);
  profile->h264_profiles = cims_config_read_strv (loader, entry, "h264_profiles", subject, FALSE);
  profile_read_limits (loader, entry, profile, subject);
  cims_config_check_members (loader, entry, subject, profile_settings);

  if (profile->codecs != NULL)
    profile_check_codecs (loader, entry, profile, subject);

  if (profile->h264_profiles != NULL)
    profile_check_h264_profiles (loader, entry, profile, subject);

  return g_steal_pointer (&profile);
}

void
cims_config_parse_profiles (CimsConfigLoader *loader, const config_setting_t *root)
{
  const config_setting_t *list = cims_config_read_list (loader, root, "viewer_profiles", NULL, TRUE);

  if (list == NULL)
    return;

  if (config_setting_length (list) == 0)
    {
      cims_config_loader_report (loader, list, NULL, "viewer_profiles must list at least one profile");
      return;
    }

  for (int i = 0; i < config_setting_length (list); i++)
    {
      const config_setting_t *entry = config_setting_get_elem (list, i);
      g_autofree char *subject = cims_config_entry_subject (entry, "viewer profile", "name", i);

      if (!cims_config_entry_is_group (loader, list, i, NULL))
        continue;
      g_ptr_array_add (loader->config->profiles, profile_parse (loader, entry, subject));
    }
}
