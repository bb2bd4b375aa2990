/* SPDX-License-Identifier: Apache-2.0 */
/* Parsing the `cameras` list: inventory facts, the RTSP source and who
 * owns or shares each camera. It runs after the jurisdictions so that
 * owners and sharing partners can be checked against them. */
#include "config/config-private.h"

static const char *const camera_settings[] = {
  "id", "jurisdiction", "location", "brand_model", "installed", "source", "source_username",
  "source_password", "has_audio", "shared_with", "restricted", "on_demand", "out_of_service", NULL,
};

static const char *const period_settings[] = { "from", "to", NULL };

/* Reports unless @id names a jurisdiction that takes part in the camera
 * network. @role names the setting that named it, for the message. */
static gboolean
camera_check_jurisdiction (CimsConfigLoader *loader, const config_setting_t *setting,
                           const char *subject, const char *role, const char *id)
{
  const CimsConfigJurisdiction *jurisdiction = cims_config_find_jurisdiction (loader->config, id);

  if (jurisdiction == NULL)
    {
      cims_config_loader_report (loader, setting, subject, "%s \"%s\" is not a configured jurisdiction",
                                 role, id);
      return FALSE;
    }

  if (!jurisdiction->participates)
    {
      cims_config_loader_report (loader, setting, subject,
                                 "%s \"%s\" does not take part in the camera network and cannot %s",
                                 role, id,
                                 g_str_equal (role, "jurisdiction") ? "own cameras" : "receive shared cameras");
      return FALSE;
    }

  return TRUE;
}

static void
camera_check_shared_with (CimsConfigLoader *loader, const config_setting_t *entry,
                          const CimsConfigCamera *camera, const char *subject)
{
  const config_setting_t *setting = config_setting_get_member (entry, "shared_with");

  for (guint i = 0; camera->shared_with[i] != NULL; i++)
    {
      const char *partner = camera->shared_with[i];
      const config_setting_t *element = config_setting_get_elem (setting, i);

      if (g_strcmp0 (partner, camera->jurisdiction) == 0)
        cims_config_loader_report (loader, element, subject,
                                   "shared_with names \"%s\", which already owns the camera", partner);
      else if (g_strv_contains ((const char *const *) camera->shared_with + i + 1, partner))
        cims_config_loader_report (loader, element, subject, "shared_with names \"%s\" twice", partner);
      else
        camera_check_jurisdiction (loader, element, subject, "shared_with", partner);
    }
}

static void
camera_check_installed (CimsConfigLoader *loader, const config_setting_t *entry,
                        const char *installed, const char *subject)
{
  gint64 midnight_us;

  if (cims_config_parse_date (installed, &midnight_us))
    return;

  cims_config_loader_report_member (loader, entry, "installed", subject,
                                    "installed \"%s\" is not a valid date (expected YYYY-MM-DD)",
                                    installed);
}

static void
camera_check_source (CimsConfigLoader *loader, const config_setting_t *entry,
                     const char *source, const char *subject)
{
  g_autofree char *problem = cims_config_check_source_url (source);
  g_autofree char *redacted = NULL;

  if (problem == NULL)
    return;

  redacted = cims_config_redact_url (source);
  cims_config_loader_report_member (loader, entry, "source", subject, "source \"%s\" %s",
                                    redacted, problem);
}

/* Reads one out_of_service period, or reports it and returns FALSE. */
static gboolean
period_parse (CimsConfigLoader *loader, const config_setting_t *group,
              const char *subject, CimsConfigPeriod *period)
{
  const char *from = cims_config_read_string (loader, group, "from", subject, TRUE);
  const char *to = cims_config_read_string (loader, group, "to", subject, TRUE);
  gboolean is_valid = from != NULL && to != NULL;

  cims_config_check_members (loader, group, subject, period_settings);

  if (from != NULL && !cims_config_parse_time_bound (from, FALSE, &period->from_us))
    {
      cims_config_loader_report_member (loader, group, "from", subject,
                                        "out_of_service from \"%s\" is not a valid date or time "
                                        "(expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)", from);
      is_valid = FALSE;
    }

  if (to != NULL && !cims_config_parse_time_bound (to, TRUE, &period->to_us))
    {
      cims_config_loader_report_member (loader, group, "to", subject,
                                        "out_of_service to \"%s\" is not a valid date or time "
                                        "(expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)", to);
      is_valid = FALSE;
    }

  if (is_valid && period->to_us <= period->from_us)
    {
      cims_config_loader_report_member (loader, group, "to", subject,
                                        "out_of_service to \"%s\" is not after from \"%s\"", to, from);
      is_valid = FALSE;
    }

  return is_valid;
}

static GArray *
camera_read_out_of_service (CimsConfigLoader *loader, const config_setting_t *entry, const char *subject)
{
  const config_setting_t *list = cims_config_read_list (loader, entry, "out_of_service", subject, FALSE);
  g_autoptr (GArray) periods = g_array_new (FALSE, TRUE, sizeof (CimsConfigPeriod));

  if (list == NULL)
    return g_steal_pointer (&periods);

  for (int i = 0; i < config_setting_length (list); i++)
    {
      CimsConfigPeriod period = { 0 };

      if (!cims_config_entry_is_group (loader, list, i, subject))
        continue;
      if (period_parse (loader, config_setting_get_elem (list, i), subject, &period))
        g_array_append_val (periods, period);
    }

  return g_steal_pointer (&periods);
}

static void
camera_read_credentials (CimsConfigLoader *loader, const config_setting_t *entry,
                         CimsConfigCamera *camera, const char *subject)
{
  camera->source_username = g_strdup (cims_config_read_string (loader, entry, "source_username", subject, FALSE));
  camera->source_password = g_strdup (cims_config_read_string (loader, entry, "source_password", subject, FALSE));

  if (camera->source_password != NULL && camera->source_username == NULL)
    cims_config_loader_report_member (loader, entry, "source_password", subject,
                                      "source_password is set without source_username");
}

static void
camera_read_fields (CimsConfigLoader *loader, const config_setting_t *entry,
                    CimsConfigCamera *camera, const char *subject)
{
  camera->line = config_setting_source_line (entry);
  camera->id = g_strdup (cims_config_read_id (loader, entry, "id", "camera", subject));
  camera->jurisdiction = g_strdup (cims_config_read_string (loader, entry, "jurisdiction", subject, TRUE));
  camera->location = g_strdup (cims_config_read_string (loader, entry, "location", subject, TRUE));
  camera->brand_model = g_strdup (cims_config_read_string (loader, entry, "brand_model", subject, TRUE));
  camera->installed = g_strdup (cims_config_read_string (loader, entry, "installed", subject, TRUE));
  camera->source = g_strdup (cims_config_read_string (loader, entry, "source", subject, TRUE));
  camera_read_credentials (loader, entry, camera, subject);
  camera->has_audio = cims_config_read_bool (loader, entry, "has_audio", subject, FALSE, FALSE);
  camera->shared_with = cims_config_read_strv (loader, entry, "shared_with", subject, FALSE);
  camera->restricted = cims_config_read_bool (loader, entry, "restricted", subject, FALSE, FALSE);
  camera->on_demand = cims_config_read_bool (loader, entry, "on_demand", subject, FALSE, TRUE);
  camera->out_of_service = camera_read_out_of_service (loader, entry, subject);
  cims_config_check_members (loader, entry, subject, camera_settings);
}

static CimsConfigCamera *
camera_parse (CimsConfigLoader *loader, const config_setting_t *entry, const char *subject)
{
  g_autoptr (CimsConfigCamera) camera = g_new0 (CimsConfigCamera, 1);

  camera_read_fields (loader, entry, camera, subject);

  if (camera->jurisdiction != NULL)
    camera_check_jurisdiction (loader, config_setting_get_member (entry, "jurisdiction"),
                               subject, "jurisdiction", camera->jurisdiction);

  if (camera->shared_with != NULL)
    camera_check_shared_with (loader, entry, camera, subject);

  if (camera->installed != NULL)
    camera_check_installed (loader, entry, camera->installed, subject);

  if (camera->source != NULL)
    camera_check_source (loader, entry, camera->source, subject);

  return g_steal_pointer (&camera);
}

/* Parses the `cameras` list, which must be present but may be empty. */
void
cims_config_parse_cameras (CimsConfigLoader *loader, const config_setting_t *root)
{
  const config_setting_t *list = cims_config_read_list (loader, root, "cameras", NULL, TRUE);
  CimsConfig *config = loader->config;

  if (list == NULL)
    return;

  for (int i = 0; i < config_setting_length (list); i++)
    {
      const config_setting_t *entry = config_setting_get_elem (list, i);
      g_autofree char *subject = cims_config_entry_subject (entry, "camera", "id", i);
      CimsConfigCamera *camera;

      if (!cims_config_entry_is_group (loader, list, i, NULL))
        continue;
      camera = camera_parse (loader, entry, subject);
      g_ptr_array_add (config->cameras, camera);

      /* A duplicate id was reported; the index keeps the first camera. */
      if (camera->id != NULL && !g_hash_table_contains (config->camera_index, camera->id))
        g_hash_table_insert (config->camera_index, camera->id, camera);
    }
}
