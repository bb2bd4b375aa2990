/* SPDX-License-Identifier: Apache-2.0 */
/* Checks of single configuration values: calendar dates and times, camera
 * source URLs, HOST:PORT listen addresses, IP literals and CORS origins.
 * Nothing here reads libconfig settings or reports problems itself. */
#include "config/config-private.h"

#include <gio/gio.h>
#include <stdlib.h>
#include <string.h>

static gint64
date_time_to_unix_us (GDateTime *time)
{
  return g_date_time_to_unix (time) * G_USEC_PER_SEC + g_date_time_get_microsecond (time);
}

static gboolean
text_is_digits (const char *text, gsize length)
{
  for (gsize i = 0; i < length; i++)
    {
      if (!g_ascii_isdigit (text[i]))
        return FALSE;
    }

  return TRUE;
}

/* Parses exactly "YYYY-MM-DD", a real calendar day, and stores 00:00:00 UTC
 * of that day. */
gboolean
cims_config_parse_date (const char *text, gint64 *midnight_us)
{
  g_autoptr (GDateTime) midnight = NULL;
  int year, month, day;

  if (strlen (text) != 10 || text[4] != '-' || text[7] != '-' ||
      !text_is_digits (text, 4) || !text_is_digits (text + 5, 2) || !text_is_digits (text + 8, 2))
    return FALSE;

  year = atoi (text);
  month = atoi (text + 5);
  day = atoi (text + 8);
  if (year < 1 || !g_date_valid_dmy (day, month, year))
    return FALSE;

  midnight = g_date_time_new_utc (year, month, day, 0, 0, 0);
  if (midnight == NULL)
    return FALSE;

  *midnight_us = date_time_to_unix_us (midnight);

  return TRUE;
}

/* Parses one end of an out-of-service period: a date "YYYY-MM-DD" or an
 * ISO 8601 date and time with an explicit zone ("2024-01-10T08:00:00Z").
 * A date that ends a period (@is_end) stands for the next midnight, so the
 * whole day is included and the end stays exclusive. */
gboolean
cims_config_parse_time_bound (const char *text, gboolean is_end, gint64 *time_us)
{
  g_autoptr (GDateTime) time = NULL;

  if (cims_config_parse_date (text, time_us))
    {
      if (is_end)
        *time_us += (gint64) 24 * 60 * 60 * G_USEC_PER_SEC;
      return TRUE;
    }

  /* Only a full date and time: a bare date was handled above, and without a
   * zone GLib would need a default one, which a shared file must not imply. */
  if (strchr (text, 'T') == NULL && strchr (text, 't') == NULL)
    return FALSE;

  time = g_date_time_new_from_iso8601 (text, NULL);
  if (time == NULL)
    return FALSE;

  *time_us = date_time_to_unix_us (time);

  return TRUE;
}

/**
 * cims_config_redact_url:
 * Replaces any user information in @url's authority with "***", so a
 * password typed into a URL never reaches a message. Works on text that
 * does not parse as a URI too.
 * Returns: (transfer full): the redacted copy.
 */
char *
cims_config_redact_url (const char *url)
{
  const char *authority = strstr (url, "://");
  const char *authority_end;
  const char *at = NULL;

  if (authority == NULL)
    return g_strdup (url);

  authority += 3;
  authority_end = authority + strcspn (authority, "/?#");
  for (const char *p = authority; p < authority_end; p++)
    {
      if (*p == '@')
        at = p;
    }

  if (at == NULL)
    return g_strdup (url);

  return g_strdup_printf ("%.*s***%s", (int) (authority - url), url, at);
}

/**
 * cims_config_check_source_url:
 * Checks that @url is an rtsp:// or rtsps:// URL naming a host and carrying
 * no credentials.
 * Returns: (transfer full) (nullable): NULL when valid, otherwise the
 * problem as the end of a sentence that starts with the value.
 */
char *
cims_config_check_source_url (const char *url)
{
  g_autoptr (GUri) uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
  const char *scheme;
  const char *host;

  if (uri == NULL)
    return g_strdup ("is not a valid rtsp:// or rtsps:// URL");

  scheme = g_uri_get_scheme (uri);
  if (g_ascii_strcasecmp (scheme, "rtsp") != 0 && g_ascii_strcasecmp (scheme, "rtsps") != 0)
    return g_strdup ("is not a valid rtsp:// or rtsps:// URL");

  host = g_uri_get_host (uri);
  if (host == NULL || host[0] == '\0')
    return g_strdup ("is not a valid rtsp:// or rtsps:// URL: it names no host");

  if (g_uri_get_userinfo (uri) != NULL)
    return g_strdup ("must not carry credentials in the URL: put them in source_username and source_password");

  return NULL;
}

static gboolean
hostname_is_valid (const char *host)
{
  if (host[0] == '\0' || host[0] == '-' || host[0] == '.')
    return FALSE;

  for (const char *p = host; *p != '\0'; p++)
    {
      if (!g_ascii_isalnum (*p) && *p != '-' && *p != '.')
        return FALSE;
    }

  return TRUE;
}

static gboolean
port_parse (const char *text, guint16 *port)
{
  guint64 value;

  if (text[0] == '\0' || !text_is_digits (text, strlen (text)))
    return FALSE;

  if (!g_ascii_string_to_unsigned (text, 10, 1, G_MAXUINT16, &value, NULL))
    return FALSE;

  *port = (guint16) value;

  return TRUE;
}

/* Splits "HOST:PORT" or "[IPV6]:PORT". HOST is an IPv4 literal or a host
 * name, and an IPv6 literal must be bracketed. Stores HOST without brackets. */
gboolean
cims_config_parse_host_port (const char *text, char **host, guint16 *port)
{
  g_autofree char *name = NULL;
  const char *port_text;

  if (text[0] == '[')
    {
      const char *close = strchr (text, ']');

      if (close == NULL || close[1] != ':')
        return FALSE;
      name = g_strndup (text + 1, close - text - 1);
      if (strchr (name, ':') == NULL || !g_hostname_is_ip_address (name))
        return FALSE;
      port_text = close + 2;
    }
  else
    {
      const char *colon = strrchr (text, ':');

      if (colon == NULL)
        return FALSE;
      name = g_strndup (text, colon - text);
      if (strchr (name, ':') != NULL || !hostname_is_valid (name))
        return FALSE;
      port_text = colon + 1;
    }

  if (!port_parse (port_text, port))
    return FALSE;

  *host = g_steal_pointer (&name);

  return TRUE;
}

/* Returns TRUE for an IPv4 or IPv6 literal that a peer could send to: not
 * the unspecified address (0.0.0.0, ::) and not a multicast group. */
gboolean
cims_config_ip_literal_is_valid (const char *text)
{
  g_autoptr (GInetAddress) address = g_inet_address_new_from_string (text);

  if (address == NULL)
    return FALSE;

  return !g_inet_address_get_is_any (address) && !g_inet_address_get_is_multicast (address);
}

/* Returns TRUE for "*" or a web origin "http(s)://host[:port]" with no path,
 * query, fragment or user information. */
gboolean
cims_config_origin_is_valid (const char *text)
{
  g_autoptr (GUri) uri = NULL;
  const char *scheme;
  const char *path;

  if (g_strcmp0 (text, "*") == 0)
    return TRUE;

  uri = g_uri_parse (text, G_URI_FLAGS_NONE, NULL);
  if (uri == NULL)
    return FALSE;

  scheme = g_uri_get_scheme (uri);
  if (g_strcmp0 (scheme, "http") != 0 && g_strcmp0 (scheme, "https") != 0)
    return FALSE;

  path = g_uri_get_path (uri);

  return g_uri_get_host (uri) != NULL && g_uri_get_host (uri)[0] != '\0' &&
         g_uri_get_userinfo (uri) == NULL && (path == NULL || path[0] == '\0') &&
         g_uri_get_query (uri) == NULL && g_uri_get_fragment (uri) == NULL;
}
