/* SPDX-License-Identifier: Apache-2.0 */
/* Cameras pulled from the start (on_demand = false). The hub keeps their
 * ingest running whether or not anyone watches, so that a camera's first
 * viewer gets the cached keyframe at once instead of waiting up to the
 * camera's keyframe interval. Cameras out of service are not pulled. */
#include "hub/hub-runtime.h"

#define KEEP_SOURCES_CHECK_S 60

static gboolean
camera_is_kept (const CimsConfigCamera *camera, gint64 now_us)
{
  return !camera->on_demand && !cims_config_camera_is_out_of_service (camera, now_us);
}

/* Releases the camera sources whose camera was removed, is pulled on
 * demand now or went out of service, then starts or keeps the others. */
static void
keep_sources_apply (CimsHub *hub)
{
  gint64 now_us = g_get_real_time ();
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, hub->sources);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    CimsSource *source = value;
    const CimsConfigCamera *camera;

    if (cims_source_get_transcoder (source) != NULL)
      continue;

    camera = cims_config_find_camera (hub->config, cims_source_get_camera_id (source));
    if (camera == NULL)
      cims_source_set_kept (source, FALSE, "the camera was removed from the configuration");
    else if (camera->on_demand)
      cims_source_set_kept (source, FALSE, "on_demand is true");
    else if (!camera_is_kept (camera, now_us))
      cims_source_set_kept (source, FALSE, "the camera is out of service");
  }

  /* A kept camera's ingest that gave up is tried again at each check. */
  for (guint i = 0; i < hub->config->cameras->len; i++) {
    const CimsConfigCamera *camera = g_ptr_array_index (hub->config->cameras, i);
    CimsSource *source;

    if (!camera_is_kept (camera, now_us))
      continue;

    source = cims_hub_source_acquire (hub, camera);
    cims_source_set_kept (source, TRUE, NULL);
    cims_source_retry_stopped (source, camera);
  }
}

static gboolean
keep_sources_check_cb (gpointer user_data)
{
  keep_sources_apply (user_data);
  return G_SOURCE_CONTINUE;
}

void
cims_hub_keep_sources_start (CimsHub *hub)
{
  keep_sources_apply (hub);
  hub->keep_sources_id = g_timeout_add_seconds (KEEP_SOURCES_CHECK_S, keep_sources_check_cb, hub);
}

void
cims_hub_keep_sources_update (CimsHub *hub)
{
  if (hub->keep_sources_id != 0)
    keep_sources_apply (hub);
}

void
cims_hub_keep_sources_stop (CimsHub *hub)
{
  g_clear_handle_id (&hub->keep_sources_id, g_source_remove);
}
