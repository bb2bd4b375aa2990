/* SPDX-License-Identifier: Apache-2.0 */
/* An RTSP extension, loaded by every rtspsrc, that keeps sessions alive on
 * cameras whose OPTIONS response leaves GET_PARAMETER out of Public.
 * rtspsrc 1.22 rejects its "get-parameters" action on such a camera, and over
 * TCP it sends no keep-alive of its own while data flows, so the camera would
 * close the session at its timeout. The extension adds GET_PARAMETER to the
 * response's Public header before rtspsrc parses it, and sends each
 * keep-alive that the ingest requests as OPTIONS, which every camera
 * supports. When to send a keep-alive is left to rtsp-ingest.c. */
#include "pipelines/pipelines-private.h"

#include <gst/rtsp/gstrtspextension.h>

#define KEEP_ALIVE_EXT_ELEMENT "cimsrtspkeepalive"

typedef struct {
  GstElement parent;
} CimsRtspKeepAliveExt;

typedef struct {
  GstElementClass parent_class;
} CimsRtspKeepAliveExtClass;

static void keep_alive_ext_interface_init (GstRTSPExtensionInterface *iface);

G_DEFINE_TYPE_WITH_CODE (CimsRtspKeepAliveExt, cims_rtsp_keep_alive_ext, GST_TYPE_ELEMENT,
                         G_IMPLEMENT_INTERFACE (GST_TYPE_RTSP_EXTENSION, keep_alive_ext_interface_init))

/* Tells whether any @header of @response lists GET_PARAMETER, and through
 * @has_header whether @response has that header at all. */
static gboolean
header_lists_get_parameter (GstRTSPMessage *response, GstRTSPHeaderField header, gboolean *has_header)
{
  gchar *methods = NULL;

  for (gint i = 0; gst_rtsp_message_get_header (response, header, &methods, i) == GST_RTSP_OK; i++) {
    g_auto(GStrv) names = g_strsplit (methods, ",", -1);

    *has_header = TRUE;
    for (guint j = 0; names[j] != NULL; j++) {
      if (g_ascii_strcasecmp (g_strstrip (names[j]), "GET_PARAMETER") == 0)
        return TRUE;
    }
  }

  return FALSE;
}

/* Turns every GET_PARAMETER without a body, i.e. a keep-alive, into OPTIONS
 * with the session: RFC 2326 section 10.1 lets OPTIONS keep a session alive,
 * and every camera implements it, while some respond to GET_PARAMETER with
 * 454 or 405 or leave it out of Public. The hub never requests a parameter.
 * rtspsrc 1.22 calls this from gst_rtspsrc_try_send(), just before it emits
 * "before-send", unless its short-header property is set. That covers the
 * requests of the "get-parameters" action. NOTE: rtspsrc's own timer
 * keep-alive (gst_rtspsrc_send_keep_alive) skips both, so it goes out as
 * GET_PARAMETER on such cameras. Only the keep-alives that rtsp-ingest.c
 * requests refresh their sessions. */
static GstRTSPResult
keep_alive_ext_before_send (GstRTSPExtension *ext, GstRTSPMessage *request)
{
  GstRTSPMethod method;
  const gchar *uri;
  GstRTSPVersion version;
  guint8 *body = NULL;
  guint body_size = 0;

  if (gst_rtsp_message_get_type (request) != GST_RTSP_MESSAGE_REQUEST)
    return GST_RTSP_OK;
  if (gst_rtsp_message_parse_request (request, &method, &uri, &version) != GST_RTSP_OK
      || method != GST_RTSP_GET_PARAMETER)
    return GST_RTSP_OK;

  gst_rtsp_message_get_body (request, &body, &body_size);
  if (body_size > 0)
    return GST_RTSP_OK;

  request->type_data.request.method = GST_RTSP_OPTIONS;
  gst_rtsp_message_remove_header (request, GST_RTSP_HDR_CONTENT_TYPE, -1);
  return GST_RTSP_OK;
}

/* Adds GET_PARAMETER to the methods of a 200 OPTIONS response. rtspsrc
 * calls this after each request and before it parses the response. With
 * neither Public nor Allow, rtspsrc assumes DESCRIBE and SETUP, so those
 * are listed too. */
static GstRTSPResult
keep_alive_ext_after_send (GstRTSPExtension *ext, GstRTSPMessage *request, GstRTSPMessage *response)
{
  GstRTSPMethod method;
  const gchar *uri;
  GstRTSPVersion version;
  GstRTSPStatusCode code;
  gboolean has_methods = FALSE;

  if (gst_rtsp_message_parse_request (request, &method, &uri, &version) != GST_RTSP_OK
      || method != GST_RTSP_OPTIONS)
    return GST_RTSP_OK;
  if (gst_rtsp_message_parse_response (response, &code, NULL, NULL) != GST_RTSP_OK
      || code != GST_RTSP_STS_OK)
    return GST_RTSP_OK;

  if (header_lists_get_parameter (response, GST_RTSP_HDR_PUBLIC, &has_methods)
      || header_lists_get_parameter (response, GST_RTSP_HDR_ALLOW, &has_methods))
    return GST_RTSP_OK;

  g_debug ("camera %s: OPTIONS lists no GET_PARAMETER; keep-alives go out as OPTIONS", uri);
  gst_rtsp_message_add_header (response, GST_RTSP_HDR_PUBLIC,
                               has_methods ? "GET_PARAMETER" : "DESCRIBE, SETUP, GET_PARAMETER");
  return GST_RTSP_OK;
}

static void
keep_alive_ext_interface_init (GstRTSPExtensionInterface *iface)
{
  iface->before_send = keep_alive_ext_before_send;
  iface->after_send = keep_alive_ext_after_send;
}

static void
cims_rtsp_keep_alive_ext_class_init (CimsRtspKeepAliveExtClass *klass)
{
  gst_element_class_set_static_metadata (GST_ELEMENT_CLASS (klass), "cimshub RTSP keep-alive",
                                         "Network/Extension/Protocol",
                                         "Lets rtspsrc keep sessions alive on cameras that do not list "
                                         "GET_PARAMETER", "cimshub");
}

static void
cims_rtsp_keep_alive_ext_init (CimsRtspKeepAliveExt *self)
{
}

static gboolean
rtspsrc_class_exists (void)
{
  GType type = g_type_from_name ("GstRTSPSrc");

  return type != 0 && g_type_class_peek (type) != NULL;
}

/* Registers the extension element. rtspsrc collects extensions from the
 * registry once, in its class init, so this must run before the first rtspsrc. */
void
cims_rtsp_keep_alive_ext_register (void)
{
  static gsize is_registered = 0;

  if (!g_once_init_enter (&is_registered))
    return;

  if (rtspsrc_class_exists ())
    g_warning ("rtspsrc was created before the keep-alive extension was registered; "
               "cameras that leave GET_PARAMETER out of Public will drop sessions over TCP");
  gst_element_register (NULL, KEEP_ALIVE_EXT_ELEMENT, GST_RANK_MARGINAL, cims_rtsp_keep_alive_ext_get_type ());
  g_once_init_leave (&is_registered, 1);
}
