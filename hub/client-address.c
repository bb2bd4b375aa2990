/* SPDX-License-Identifier: Apache-2.0 */
/* The viewer's address, for the audit log, the logs and the per-client WHEP
 * rate: the TCP peer, or behind a reverse proxy listed in trusted_proxies,
 * the address that proxy names in X-Forwarded-For. From any other peer the
 * header is ignored, so a viewer cannot choose the address it is logged
 * under. */
#include "hub/hub-runtime.h"

#include <gio/gio.h>

#include <string.h>

/* Tells whether @text is an IP address inside one of @proxies. */
static gboolean
address_is_trusted (const GPtrArray *proxies, const char *text)
{
  g_autoptr (GInetAddress) address = g_inet_address_new_from_string (text);

  if (address == NULL)
    return FALSE;

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
  const guint8 *bytes = g_inet_address_to_bytes (address);

  if (g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV6 && bytes[10] == 0xff && bytes[11] == 0xff
      && memcmp (bytes, (const guint8[10]) { 0 }, 10) == 0)
    return g_inet_address_new_from_bytes (bytes + 12, G_SOCKET_FAMILY_IPV4);

  return g_object_ref (address);
}

/* Walks @forwarded from its end, the hop nearest the hub, past the trusted
 * proxies. Returns the first address no trusted proxy has, or the last
 * trusted one when an entry is not an address or every entry is trusted. */
static char *
forwarded_client (const GPtrArray *proxies, const char *peer, const char *forwarded)
{
  g_auto (GStrv) hops = g_strsplit (forwarded, ",", -1);
  const char *client = peer;

  g_autofree char *normalized = NULL;

  for (guint i = g_strv_length (hops); i > 0; i--) {
    const char *hop = g_strstrip (hops[i - 1]);
    g_autoptr (GInetAddress) parsed = NULL;
    g_autoptr (GInetAddress) address = NULL;

    /* A scope id (fe80::1%eth0) is free text, so such an entry ends the walk. */
    if (strchr (hop, '%') != NULL || (parsed = g_inet_address_new_from_string (hop)) == NULL)
      break;

    address = address_unmap (parsed);
    g_free (normalized);
    normalized = g_inet_address_to_string (address);
    client = normalized;
    if (!address_is_trusted (proxies, normalized))
      break;
  }
  return g_strdup (client);
}

/* See hub-runtime.h. */
char *
cims_http_client_address (CimsHub *hub, SoupServerMessage *msg)
{
  const GPtrArray *proxies = hub->config->trusted_proxies;
  const char *peer = soup_server_message_get_remote_host (msg);
  const char *forwarded;

  if (peer == NULL || proxies == NULL || proxies->len == 0 || !address_is_trusted (proxies, peer))
    return g_strdup (peer);

  forwarded = soup_message_headers_get_list (soup_server_message_get_request_headers (msg), "X-Forwarded-For");
  if (forwarded == NULL)
    return g_strdup (peer);

  return forwarded_client (proxies, peer, forwarded);
}
