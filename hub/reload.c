/* SPDX-License-Identifier: Apache-2.0 */
/* Configuration reload (SIGHUP): validates the new file, swaps in its
 * cameras, jurisdictions and token keys, records what changed in the audit
 * log, and ends only the sessions the new configuration no longer allows. */
#include "hub/hub-runtime.h"

static void
audit_camera_changes (CimsHub *hub, const CimsConfig *old_config, const CimsConfig *new_config)
{
  gint64 now_us = g_get_real_time ();

  for (guint i = 0; i < new_config->cameras->len; i++) {
    const CimsConfigCamera *camera = g_ptr_array_index (new_config->cameras, i);
    const CimsConfigCamera *before = cims_config_find_camera (old_config, camera->id);
    gboolean was_out = before != NULL && cims_config_camera_is_out_of_service (before, now_us);

    if (camera->restricted && (before == NULL || !before->restricted))
      cims_hub_audit_event (hub, "camera-restricted", camera, "configuration reloaded", NULL);
    if (cims_config_camera_is_out_of_service (camera, now_us) && !was_out)
      cims_hub_audit_event (hub, "camera-out-of-service", camera, "configuration reloaded", NULL);
  }

  for (guint i = 0; i < old_config->cameras->len; i++) {
    const CimsConfigCamera *camera = g_ptr_array_index (old_config->cameras, i);

    if (cims_config_find_camera (new_config, camera->id) == NULL)
      cims_hub_audit_event (hub, "camera-removed", camera, "configuration reloaded", NULL);
  }
}

gboolean
cims_hub_reload (CimsHub *hub, GError **error)
{
  g_autoptr (CimsConfig) config = cims_config_load (hub->config->path, error);
  g_autoptr (CimsAuthKeyring) keyring = NULL;
  g_autofree char *details = NULL;
  guint n_ended;

  if (config == NULL)
    return FALSE;

  keyring = cims_auth_keyring_new (config, error);
  if (keyring == NULL) {
    g_prefix_error (error, "%s: ", hub->config->path);
    return FALSE;
  }

  audit_camera_changes (hub, hub->config, config);

  /* Requests in flight still point into the old configuration, so it is
   * kept until the hub stops. */
  g_ptr_array_add (hub->retired_configs, hub->config);
  hub->config = g_steal_pointer (&config);
  cims_auth_keyring_free (hub->keyring);
  hub->keyring = g_steal_pointer (&keyring);

  details = g_strdup_printf ("{\"config\":\"%s\",\"cameras\":%u,\"reload\":true}", hub->config->path,
                             hub->config->cameras->len);
  cims_hub_audit_event (hub, "config-loaded", NULL, "reload", details);

  n_ended = cims_hub_access_recheck_all (hub, CIMS_ACCESS_TRIGGER_CONFIG_RELOADED);
  g_message ("configuration %s reloaded: cameras: %u; sessions no longer allowed, ended: %u",
             hub->config->path, hub->config->cameras->len, n_ended);
  return TRUE;
}
