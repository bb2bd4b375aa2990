/* SPDX-License-Identifier: Apache-2.0 */
/* The viewer's address, for the audit log, the logs and the per-client WHEP
 * rate: the TCP peer, or behind a reverse proxy listed in trusted_proxies,
 * the address that proxy names in X-Forwarded-For. From any other peer the
 * header is ignored, so a viewer cannot choose the address it is logged
 * under. */
#include "hub/hub-runtime.h"

#include <gio/gio.h>

#include <string.h>

/* Tells whether @address is inside one of @proxies. */
static gboolean
address_is_trusted (const GPtrArray *proxies, GInetAddress *address)
{
  for (guint i = 0; i < proxies->len; i++) {
    GInetAddressMask *mask = g_ptr_array_index (proxies, i);

    if (g_inet_address_get_family (address) == g_inet_address_mask_get_family (mask)
        && g_inet_address_mask_matches (mask, address))
      return TRUE;
  }
  return FALSE;
}

/* Returns @address in the form GLib gives for a peer: an IPv4 address
 * written as IPv6 (::ffff:a.b.c.d, from a dual-stack proxy) becomes IPv4.
 * (transfer full) */
static GInetAddress *
address_unmap (GInetAddress *address)
{
  static const guint8 mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
  const guint8 *bytes = g_inet_address_to_bytes (address);

  if (g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV6
      && memcmp (bytes, mapped_prefix, sizeof mapped_prefix) == 0)
    return g_inet_address_new_from_bytes (bytes + sizeof mapped_prefix, G_SOCKET_FAMILY_IPV4);

  return g_object_ref (address);
}

/* Parses one X-Forwarded-For entry. A scope id (fe80::1%eth0) is free
 * text, so an entry with one counts as no address. (transfer full) (nullable) */
static GInetAddress *
hop_parse (const char *hop)
{
  g_autoptr (GInetAddress) parsed = NULL;

  if (strchr (hop, '%') != NULL)
    return NULL;

  parsed = g_inet_address_new_from_string (hop);
  return parsed != NULL ? address_unmap (parsed) : NULL;
}

/* Walks @forwarded from its end, the hop nearest the hub, past the trusted
 * proxies. Returns the first address no trusted proxy has, or the last
 * trusted one when an entry is not an address or every entry is trusted. */
static char *
forwarded_client (const GPtrArray *proxies, const char *peer, const char *forwarded)
{
  g_auto (GStrv) hops = g_strsplit (forwarded, ",", -1);
  char *client = g_strdup (peer);

  for (guint i = g_strv_length (hops); i > 0; i--) {
    g_autoptr (GInetAddress) address = hop_parse (g_strstrip (hops[i - 1]));

    if (address == NULL)
      break;

    g_free (client);
    client = g_inet_address_to_string (address);
    if (!address_is_trusted (proxies, address))
      break;
  }
  return client;
}

/* See hub-runtime.h. */
char *
cims_http_client_address (CimsHub *hub, SoupServerMessage *msg)
{
  const GPtrArray *proxies = hub->config->trusted_proxies;
  const char *peer = soup_server_message_get_remote_host (msg);
  g_autoptr (GInetAddress) peer_address = NULL;
  const char *forwarded;

  if (peer == NULL || proxies == NULL || proxies->len == 0)
    return g_strdup (peer);

  peer_address = g_inet_address_new_from_string (peer);
  if (peer_address == NULL || !address_is_trusted (proxies, peer_address))
    return g_strdup (peer);

  forwarded = soup_message_headers_get_list (soup_server_message_get_request_headers (msg), "X-Forwarded-For");
  if (forwarded == NULL)
    return g_strdup (peer);

  return forwarded_client (proxies, peer, forwarded);
}
