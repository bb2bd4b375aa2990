/* SPDX-License-Identifier: Apache-2.0 */
/* The configuration model once loaded: reference counting, releasing its
 * entries, look-ups and the questions callers ask of it. Reading and
 * checking the file is left to config-load.c and the section parsers. */
#include "config/config.h"

#include <string.h>

#include "config/config-private.h"

#define ID_MAX_LENGTH 64

/* Zeroes a secret before freeing it so it does not linger in freed heap. */
static void
secret_free (char *secret)
{
  if (secret == NULL)
    return;

  explicit_bzero (secret, strlen (secret));
  g_free (secret);
}

void
cims_config_jurisdiction_free (CimsConfigJurisdiction *jurisdiction)
{
  if (jurisdiction == NULL)
    return;

  g_free (jurisdiction->id);
  g_free (jurisdiction->name);
  g_free (jurisdiction->token_issuer);
  g_free (jurisdiction->token_key_path);
  g_free (jurisdiction);
}

void
cims_config_agency_free (CimsConfigAgency *agency)
{
  if (agency == NULL)
    return;

  g_free (agency->id);
  g_free (agency->name);
  g_free (agency->token_issuer);
  g_free (agency->token_key_path);
  g_free (agency);
}

void
cims_config_camera_free (CimsConfigCamera *camera)
{
  if (camera == NULL)
    return;

  g_free (camera->id);
  g_free (camera->jurisdiction);
  g_free (camera->location);
  g_free (camera->brand_model);
  g_free (camera->installed);
  g_free (camera->source);
  g_free (camera->source_username);
  secret_free (camera->source_password);
  g_strfreev (camera->shared_with);
  g_clear_pointer (&camera->out_of_service, g_array_unref);
  g_free (camera);
}

void
cims_config_profile_free (CimsConfigProfile *profile)
{
  if (profile == NULL)
    return;

  g_free (profile->name);
  g_strfreev (profile->codecs);
  g_strfreev (profile->h264_profiles);
  g_free (profile);
}

/* Creates a model with its defaults set and every collection empty. */
CimsConfig *
cims_config_new_empty (const char *path)
{
  CimsConfig *config = g_new0 (CimsConfig, 1);

  config->path = g_strdup (path);
  config->idle_source_stop_s = 30;
  config->source_connect_timeout_ms = 8000;
  config->reconnect_min_ms = 500;
  config->reconnect_max_ms = 30000;
  config->ingest_latency_ms = 50;
  config->incident_max_s = 72 * 3600;
  config->whep_rate_per_client = 10;
  config->whep_rate_total = 200;
  config->max_sessions_per_user = 16;
  config->max_sessions_per_camera = 2000;
  config->http_idle_timeout_s = 60;
  config->token_audience = g_strdup ("cimshub");

  config->jurisdictions = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_config_jurisdiction_free);
  config->agencies = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_config_agency_free);
  config->cameras = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_config_camera_free);
  config->profiles = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_config_profile_free);

  /* Values borrow the camera owned by config->cameras. */
  config->camera_index = g_hash_table_new (g_str_hash, g_str_equal);
  g_atomic_ref_count_init (&config->ref_count);

  return config;
}

/**
 * cims_config_ref:
 * Adds a reference. Safe to call from any thread.
 * Returns: (transfer full): @config
 */
CimsConfig *
cims_config_ref (CimsConfig *config)
{
  g_return_val_if_fail (config != NULL, NULL);

  g_atomic_ref_count_inc (&config->ref_count);

  return config;
}

static void
config_free (CimsConfig *config)
{
  g_free (config->path);
  g_free (config->http_host);
  g_strfreev (config->public_addresses);
  g_free (config->state_dir);
  g_free (config->dtls_certificate_path);
  g_free (config->dtls_private_key_path);
  g_strfreev (config->cors_origins);
  g_clear_pointer (&config->trusted_proxies, g_ptr_array_unref);
  g_free (config->token_audience);
  g_free (config->default_profile);
  g_strfreev (config->regional_auditors);

  /* The index borrows cameras, so it goes before the array that owns them. */
  g_clear_pointer (&config->camera_index, g_hash_table_unref);
  g_clear_pointer (&config->jurisdictions, g_ptr_array_unref);
  g_clear_pointer (&config->agencies, g_ptr_array_unref);
  g_clear_pointer (&config->cameras, g_ptr_array_unref);
  g_clear_pointer (&config->profiles, g_ptr_array_unref);
  g_free (config);
}

/**
 * cims_config_unref:
 * Drops a reference and frees @config with the last one. Safe to call
 * from any thread. Pointers returned by the look-ups die with it.
 */
void
cims_config_unref (CimsConfig *config)
{
  g_return_if_fail (config != NULL);

  if (g_atomic_ref_count_dec (&config->ref_count))
    config_free (config);
}

const CimsConfigCamera *
cims_config_find_camera (const CimsConfig *config, const char *id)
{
  g_return_val_if_fail (config != NULL, NULL);
  g_return_val_if_fail (id != NULL, NULL);

  return g_hash_table_lookup (config->camera_index, id);
}

/* NOTE: jurisdictions, agencies and profiles are found by a linear scan,
 * which is fine for the tens a region has but not for thousands. */
const CimsConfigJurisdiction *
cims_config_find_jurisdiction (const CimsConfig *config, const char *id)
{
  g_return_val_if_fail (config != NULL, NULL);
  g_return_val_if_fail (id != NULL, NULL);

  for (guint i = 0; i < config->jurisdictions->len; i++)
    {
      const CimsConfigJurisdiction *jurisdiction = g_ptr_array_index (config->jurisdictions, i);

      if (g_strcmp0 (jurisdiction->id, id) == 0)
        return jurisdiction;
    }

  return NULL;
}

const CimsConfigAgency *
cims_config_find_agency (const CimsConfig *config, const char *id)
{
  g_return_val_if_fail (config != NULL, NULL);
  g_return_val_if_fail (id != NULL, NULL);

  for (guint i = 0; i < config->agencies->len; i++)
    {
      const CimsConfigAgency *agency = g_ptr_array_index (config->agencies, i);

      if (g_strcmp0 (agency->id, id) == 0)
        return agency;
    }

  return NULL;
}

const CimsConfigProfile *
cims_config_find_profile (const CimsConfig *config, const char *name)
{
  g_return_val_if_fail (config != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);

  for (guint i = 0; i < config->profiles->len; i++)
    {
      const CimsConfigProfile *profile = g_ptr_array_index (config->profiles, i);

      if (g_strcmp0 (profile->name, name) == 0)
        return profile;
    }

  return NULL;
}

/* Periods include their start and exclude their end. */
gboolean
cims_config_camera_is_out_of_service (const CimsConfigCamera *camera, gint64 now_us)
{
  g_return_val_if_fail (camera != NULL, FALSE);

  if (camera->out_of_service == NULL)
    return FALSE;

  for (guint i = 0; i < camera->out_of_service->len; i++)
    {
      const CimsConfigPeriod *period = &g_array_index (camera->out_of_service, CimsConfigPeriod, i);

      if (now_us >= period->from_us && now_us < period->to_us)
        return TRUE;
    }

  return FALSE;
}

static gboolean
id_char_is_valid (char c)
{
  return g_ascii_islower (c) || g_ascii_isdigit (c) || c == '.' || c == '_' || c == '-';
}

gboolean
cims_config_client_is_valid (const char *client)
{
  gsize length;

  if (client == NULL)
    return FALSE;

  length = strnlen (client, ID_MAX_LENGTH + 1);
  if (length == 0 || length > ID_MAX_LENGTH)
    return FALSE;

  for (gsize i = 0; i < length; i++)
    {
      if (client[i] < 0x20 || client[i] > 0x7e)
        return FALSE;
    }

  return TRUE;
}

gboolean
cims_config_id_is_valid (const char *id)
{
  gsize length;

  if (id == NULL)
    return FALSE;

  length = strnlen (id, ID_MAX_LENGTH + 1);
  if (length == 0 || length > ID_MAX_LENGTH)
    return FALSE;

  if (!g_ascii_islower (id[0]) && !g_ascii_isdigit (id[0]))
    return FALSE;

  for (gsize i = 1; i < length; i++)
    {
      if (!id_char_is_valid (id[i]))
        return FALSE;
    }

  return TRUE;
}
