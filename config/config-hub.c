/* SPDX-License-Identifier: Apache-2.0 */
/* Parsing the `hub` group: listen address, ICE port range and announced
 * addresses, state directory, source timings, DTLS identity, CORS, the
 * token audience and the regional auditors. It runs last because
 * default_profile names a profile and regional_auditors names parties. */
#include "config/config-private.h"

#include <gio/gio.h>

#include <string.h>

#define HUB_SUBJECT "hub"

/* Upper limits that catch unit mistakes (seconds typed as milliseconds). */
#define HUB_MAX_IDLE_STOP_S (24 * 60 * 60)
#define HUB_MAX_TIMEOUT_MS (10 * 60 * 1000)
#define HUB_MAX_BACKOFF_MS (60 * 60 * 1000)
#define HUB_MAX_INGEST_LATENCY_MS 10000
/* A major incident may be declared for at most 30 days at once. */
#define HUB_MAX_INCIDENT_S (30 * 24 * 3600)
#define HUB_MAX_RATE 100000
#define HUB_MAX_SESSIONS 1000000
#define HUB_MAX_HTTP_IDLE_S 3600
#define HUB_MAX_WORKERS 64

static const char *const hub_settings[] = {
  "http_listen", "ice_udp_ports", "public_addresses", "state_dir", "idle_source_stop_s",
  "source_connect_timeout_ms", "reconnect_backoff_ms", "ingest_latency_ms", "incident_max_s",
  "whep_rate_per_client", "whep_rate_total", "max_sessions_per_user", "max_sessions_per_camera",
  "media_workers", "http_idle_timeout_s", "dtls_certificate", "dtls_private_key", "cors_origins",
  "trusted_proxies", "token_audience", "default_profile", "regional_auditors", NULL,
};

static void
hub_read_http_listen (CimsConfigLoader *loader, const config_setting_t *hub)
{
  const char *listen = cims_config_read_string (loader, hub, "http_listen", HUB_SUBJECT, TRUE);
  CimsConfig *config = loader->config;

  if (listen == NULL)
    return;

  if (!cims_config_parse_host_port (listen, &config->http_host, &config->http_port))
    cims_config_loader_report_member (loader, hub, "http_listen", HUB_SUBJECT,
                                      "http_listen \"%s\" is not HOST:PORT with a port from 1 to 65535 "
                                      "(e.g. \"127.0.0.1:8080\" or \"[::1]:8080\")", listen);
}

static void
hub_read_ice_ports (CimsConfigLoader *loader, const config_setting_t *hub)
{
  CimsConfig *config = loader->config;
  guint min = 0;
  guint max = 0;
  guint n_ports;

  if (!cims_config_read_uint_pair (loader, hub, "ice_udp_ports", HUB_SUBJECT, TRUE,
                                   1, G_MAXUINT16, &min, &max))
    return;

  n_ports = max - min + 1;
  if (n_ports < CIMS_CONFIG_MIN_ICE_PORTS)
    {
      cims_config_loader_report_member (loader, hub, "ice_udp_ports", HUB_SUBJECT,
                                        "ice_udp_ports [%u, %u] spans %u ports, fewer than the %u "
                                        "the hub needs (one per viewer session)",
                                        min, max, n_ports, CIMS_CONFIG_MIN_ICE_PORTS);
      return;
    }

  config->ice_port_min = (guint16) min;
  config->ice_port_max = (guint16) max;
}

static void
hub_read_public_addresses (CimsConfigLoader *loader, const config_setting_t *hub)
{
  const config_setting_t *setting = config_setting_get_member (hub, "public_addresses");
  CimsConfig *config = loader->config;

  config->public_addresses = cims_config_read_strv (loader, hub, "public_addresses", HUB_SUBJECT, TRUE);
  if (config->public_addresses == NULL)
    return;

  if (config->public_addresses[0] == NULL)
    cims_config_loader_report (loader, setting, HUB_SUBJECT,
                               "public_addresses must list at least one IP address");

  for (guint i = 0; config->public_addresses[i] != NULL; i++)
    {
      const char *address = config->public_addresses[i];

      if (!cims_config_ip_literal_is_valid (address))
        cims_config_loader_report (loader, config_setting_get_elem (setting, i), HUB_SUBJECT,
                                   "public_addresses entry \"%s\" is not a unicast IPv4 or IPv6 "
                                   "address literal", address);
    }
}

static void
hub_read_timings (CimsConfigLoader *loader, const config_setting_t *hub)
{
  CimsConfig *config = loader->config;

  cims_config_read_uint (loader, hub, "idle_source_stop_s", HUB_SUBJECT, FALSE,
                         0, HUB_MAX_IDLE_STOP_S, &config->idle_source_stop_s);
  cims_config_read_uint (loader, hub, "source_connect_timeout_ms", HUB_SUBJECT, FALSE,
                         1, HUB_MAX_TIMEOUT_MS, &config->source_connect_timeout_ms);
  cims_config_read_uint_pair (loader, hub, "reconnect_backoff_ms", HUB_SUBJECT, FALSE,
                              1, HUB_MAX_BACKOFF_MS, &config->reconnect_min_ms, &config->reconnect_max_ms);
  cims_config_read_uint (loader, hub, "ingest_latency_ms", HUB_SUBJECT, FALSE,
                         0, HUB_MAX_INGEST_LATENCY_MS, &config->ingest_latency_ms);
  cims_config_read_uint (loader, hub, "incident_max_s", HUB_SUBJECT, FALSE,
                         60, HUB_MAX_INCIDENT_S, &config->incident_max_s);
}

static void
hub_read_limits (CimsConfigLoader *loader, const config_setting_t *hub)
{
  CimsConfig *config = loader->config;

  cims_config_read_uint (loader, hub, "whep_rate_per_client", HUB_SUBJECT, FALSE,
                         1, HUB_MAX_RATE, &config->whep_rate_per_client);
  cims_config_read_uint (loader, hub, "whep_rate_total", HUB_SUBJECT, FALSE,
                         1, HUB_MAX_RATE, &config->whep_rate_total);
  cims_config_read_uint (loader, hub, "max_sessions_per_user", HUB_SUBJECT, FALSE,
                         1, HUB_MAX_SESSIONS, &config->max_sessions_per_user);
  cims_config_read_uint (loader, hub, "max_sessions_per_camera", HUB_SUBJECT, FALSE,
                         1, HUB_MAX_SESSIONS, &config->max_sessions_per_camera);
  cims_config_read_uint (loader, hub, "media_workers", HUB_SUBJECT, FALSE,
                         0, HUB_MAX_WORKERS, &config->media_workers);
  cims_config_read_uint (loader, hub, "http_idle_timeout_s", HUB_SUBJECT, FALSE,
                         1, HUB_MAX_HTTP_IDLE_S, &config->http_idle_timeout_s);
}

static void
hub_read_dtls_identity (CimsConfigLoader *loader, const config_setting_t *hub)
{
  CimsConfig *config = loader->config;
  gboolean has_certificate = config_setting_get_member (hub, "dtls_certificate") != NULL;
  gboolean has_key = config_setting_get_member (hub, "dtls_private_key") != NULL;

  config->dtls_certificate_path = cims_config_read_path (loader, hub, "dtls_certificate", HUB_SUBJECT, FALSE);
  config->dtls_private_key_path = cims_config_read_path (loader, hub, "dtls_private_key", HUB_SUBJECT, FALSE);

  if (has_certificate && !has_key)
    cims_config_loader_report_member (loader, hub, "dtls_certificate", HUB_SUBJECT,
                                      "dtls_certificate is set without dtls_private_key: set both or neither");
  else if (has_key && !has_certificate)
    cims_config_loader_report_member (loader, hub, "dtls_private_key", HUB_SUBJECT,
                                      "dtls_private_key is set without dtls_certificate: set both or neither");
}

static void
hub_read_cors_origins (CimsConfigLoader *loader, const config_setting_t *hub)
{
  const config_setting_t *setting = config_setting_get_member (hub, "cors_origins");
  CimsConfig *config = loader->config;

  config->cors_origins = cims_config_read_strv (loader, hub, "cors_origins", HUB_SUBJECT, FALSE);
  if (config->cors_origins == NULL)
    return;

  for (guint i = 0; config->cors_origins[i] != NULL; i++)
    {
      if (!cims_config_origin_is_valid (config->cors_origins[i]))
        cims_config_loader_report (loader, config_setting_get_elem (setting, i), HUB_SUBJECT,
                                   "cors_origins entry \"%s\" is not \"*\" or an origin such as "
                                   "\"https://viewer.example\"", config->cors_origins[i]);
    }
}

/* Tells whether @address is an IPv4 address written as IPv6 (::ffff:a.b.c.d). */
static gboolean
address_is_ipv4_mapped (GInetAddress *address)
{
  static const guint8 prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

  return g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV6
         && memcmp (g_inet_address_to_bytes (address), prefix, sizeof prefix) == 0;
}

/* Reads the reverse proxies, each an IP address or a network such as
 * "10.0.0.0/8", whose X-Forwarded-For header the hub takes as the viewer's
 * address. */
static void
hub_read_trusted_proxies (CimsConfigLoader *loader, const config_setting_t *hub)
{
  const config_setting_t *setting = config_setting_get_member (hub, "trusted_proxies");
  CimsConfig *config = loader->config;
  g_auto (GStrv) entries = NULL;

  config->trusted_proxies = g_ptr_array_new_with_free_func (g_object_unref);
  entries = cims_config_read_strv (loader, hub, "trusted_proxies", HUB_SUBJECT, FALSE);
  for (guint i = 0; entries != NULL && entries[i] != NULL; i++)
    {
      g_autoptr (GError) error = NULL;
      GInetAddressMask *mask = g_inet_address_mask_new_from_string (entries[i], &error);

      if (mask == NULL)
        {
          cims_config_loader_report (loader, config_setting_get_elem (setting, i), HUB_SUBJECT,
                                     "trusted_proxies entry \"%s\" is not an IP address or a network "
                                     "such as \"10.0.0.0/8\": %s", entries[i], error->message);
          continue;
        }

      if (address_is_ipv4_mapped (g_inet_address_mask_get_address (mask)))
        {
          cims_config_loader_report (loader, config_setting_get_elem (setting, i), HUB_SUBJECT,
                                     "trusted_proxies entry \"%s\" is an IPv4-mapped IPv6 address, which "
                                     "never matches: write the IPv4 address, the form GLib gives for IPv4 "
                                     "peers", entries[i]);
          g_object_unref (mask);
          continue;
        }

      g_ptr_array_add (config->trusted_proxies, mask);
    }
}

/* Checks one "PARTY:SUBJECT" entry: PARTY is a configured jurisdiction or
 * agency id and SUBJECT is the auditor's token subject (`sub`), which may
 * itself contain colons. Returns the problem, or NULL. (transfer full) */
static char *
regional_auditor_check (const CimsConfig *config, const char *entry)
{
  const char *colon = strchr (entry, ':');
  g_autofree char *party = NULL;

  if (colon == NULL || colon == entry || colon[1] == '\0')
    return g_strdup_printf ("regional_auditors entry \"%s\" is not \"PARTY:SUBJECT\" "
                            "(e.g. \"boston:auditor-17\")", entry);

  party = g_strndup (entry, colon - entry);
  if (cims_config_find_jurisdiction (config, party) == NULL && cims_config_find_agency (config, party) == NULL)
    return g_strdup_printf ("regional_auditors entry \"%s\": \"%s\" is not a configured jurisdiction "
                            "or agency", entry, party);

  for (const char *p = colon + 1; *p != '\0'; p++)
    {
      if (g_ascii_iscntrl (*p))
        return g_strdup_printf ("regional_auditors entry \"%s\": the subject contains a control character",
                                entry);
    }

  return NULL;
}

/* Reads regional_auditors: the auditors who may query every jurisdiction's
 * audit records instead of only their own jurisdiction's. */
static void
hub_read_regional_auditors (CimsConfigLoader *loader, const config_setting_t *hub)
{
  const config_setting_t *setting = config_setting_get_member (hub, "regional_auditors");
  CimsConfig *config = loader->config;

  config->regional_auditors = cims_config_read_strv (loader, hub, "regional_auditors", HUB_SUBJECT, FALSE);
  if (config->regional_auditors == NULL)
    return;

  for (guint i = 0; config->regional_auditors[i] != NULL; i++)
    {
      const char *entry = config->regional_auditors[i];
      g_autofree char *problem = regional_auditor_check (config, entry);

      for (guint j = 0; problem == NULL && j < i; j++)
        {
          if (g_str_equal (config->regional_auditors[j], entry))
            problem = g_strdup_printf ("regional_auditors entry \"%s\" is listed twice", entry);
        }

      if (problem != NULL)
        cims_config_loader_report (loader, config_setting_get_elem (setting, i), HUB_SUBJECT, "%s", problem);
    }
}

/* Sets token_audience and default_profile, keeping their defaults when the
 * settings are absent. */
static void
hub_read_names (CimsConfigLoader *loader, const config_setting_t *hub)
{
  CimsConfig *config = loader->config;
  const char *audience = cims_config_read_string (loader, hub, "token_audience", HUB_SUBJECT, FALSE);
  const char *profile = cims_config_read_string (loader, hub, "default_profile", HUB_SUBJECT, FALSE);

  if (audience != NULL)
    {
      g_free (config->token_audience);
      config->token_audience = g_strdup (audience);
    }

  if (profile != NULL && cims_config_find_profile (config, profile) == NULL)
    cims_config_loader_report_member (loader, hub, "default_profile", HUB_SUBJECT,
                                      "default_profile \"%s\" is not a configured viewer profile", profile);
  else if (profile != NULL)
    config->default_profile = g_strdup (profile);
  else if (config->profiles->len > 0)
    config->default_profile = g_strdup (((CimsConfigProfile *) g_ptr_array_index (config->profiles, 0))->name);
}

void
cims_config_parse_hub (CimsConfigLoader *loader, const config_setting_t *root)
{
  const config_setting_t *hub = config_setting_get_member (root, "hub");

  if (hub == NULL)
    {
      cims_config_loader_report (loader, root, NULL, "missing required setting \"hub\"");
      return;
    }

  if (config_setting_type (hub) != CONFIG_TYPE_GROUP)
    {
      cims_config_loader_report (loader, hub, NULL, "hub must be a group { ... }");
      return;
    }

  hub_read_http_listen (loader, hub);
  hub_read_ice_ports (loader, hub);
  hub_read_public_addresses (loader, hub);
  loader->config->state_dir = cims_config_read_path (loader, hub, "state_dir", HUB_SUBJECT, TRUE);
  hub_read_timings (loader, hub);
  hub_read_limits (loader, hub);
  hub_read_dtls_identity (loader, hub);
  hub_read_cors_origins (loader, hub);
  hub_read_trusted_proxies (loader, hub);
  hub_read_names (loader, hub);
  hub_read_regional_auditors (loader, hub);
  cims_config_check_members (loader, hub, HUB_SUBJECT, hub_settings);
}
