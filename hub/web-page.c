/* SPDX-License-Identifier: Apache-2.0 */
/* Serves the viewer page at / from the resources compiled into the daemon
 * (hub/web/index.html): it takes a token, lists the cameras the token may
 * view and plays one over WHEP. */
#include "hub/hub-runtime.h"

#include <gio/gio.h>

/* Made by glib-compile-resources from web/cimshub.gresource.xml. */
GResource *cims_hub_web_get_resource (void);

void
cims_web_page_handle (CimsHub *hub, SoupServerMessage *msg)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) page = NULL;
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);
  gsize size = 0;
  const char *data;

  if (g_strcmp0 (soup_server_message_get_method (msg), "GET") != 0
      && g_strcmp0 (soup_server_message_get_method (msg), "HEAD") != 0) {
    cims_http_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method-not-allowed",
                           "The viewer page supports GET only.");
    return;
  }

  page = g_resource_lookup_data (cims_hub_web_get_resource (), "/org/cimshub/web/index.html",
                                G_RESOURCE_LOOKUP_FLAGS_NONE, &error);
  if (page == NULL) {
    g_critical ("viewer page missing from the compiled resources: %s", error->message);
    cims_http_reply_error (msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "internal", "The page is missing.");
    return;
  }

  /* The page runs no third-party code and talks only to this hub. */
  soup_message_headers_replace (headers, "Content-Security-Policy",
                                "default-src 'self'; script-src 'unsafe-inline'; "
                                "style-src 'unsafe-inline'; media-src 'self' blob:; img-src 'self' data:");
  soup_message_headers_replace (headers, "Cache-Control", "no-store");
  soup_message_headers_replace (headers, "Referrer-Policy", "no-referrer");

  data = g_bytes_get_data (page, &size);
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, "text/html; charset=utf-8", SOUP_MEMORY_COPY, data, size);
}
