/* SPDX-License-Identifier: Apache-2.0 */
/* Signalling with the Janus streaming plugin over Janus's HTTP API, for
 * comparing the hub with Janus: create a session, attach the plugin, "watch"
 * a mountpoint, long-poll for Janus's SDP offer, then "start" with the
 * viewer's answer. ICE, DTLS and media are whep-viewer-session.c's. */
#include "bench/whep-viewer.h"

#include <string.h>

#include <json-glib/json-glib.h>

typedef enum {
  JANUS_STEP_CREATE,
  JANUS_STEP_ATTACH,
  JANUS_STEP_WATCH,
  JANUS_STEP_POLL,
  JANUS_STEP_START,
  JANUS_STEP_DESTROY,
} JanusStep;

struct _CimsWhepViewerJanus {
  SoupSession *soup;                /* transfer none */
  char *base_url;                   /* e.g. http://10.99.0.1:8088/janus */
  guint64 mountpoint_id;
  GCancellable *cancellable;        /* transfer none */
  guint64 session_id;
  guint64 handle_id;
  guint n_transactions;
  SoupMessage *message;             /* the request in flight */
  JanusStep step;
  CimsWhepViewerJanusFunc func;
  gpointer user_data;
};

CimsWhepViewerJanus *
cims_whep_viewer_janus_new (SoupSession *soup, const char *base_url, guint64 mountpoint_id,
                            GCancellable *cancellable)
{
  CimsWhepViewerJanus *janus = g_new0 (CimsWhepViewerJanus, 1);

  janus->soup = soup;
  janus->base_url = g_strdup (base_url);
  janus->mountpoint_id = mountpoint_id;
  janus->cancellable = cancellable;
  return janus;
}

void
cims_whep_viewer_janus_free (CimsWhepViewerJanus *janus)
{
  if (janus == NULL)
    return;

  g_clear_object (&janus->message);
  g_free (janus->base_url);
  g_free (janus);
}

gboolean
cims_whep_viewer_janus_has_session (CimsWhepViewerJanus *janus)
{
  return janus->session_id != 0;
}

/* ---- requests ------------------------------------------------------------------ */

static void janus_response_cb (GObject *source, GAsyncResult *result, gpointer user_data);

static char *
janus_url (CimsWhepViewerJanus *janus)
{
  if (janus->session_id == 0)
    return g_strdup (janus->base_url);
  if (janus->handle_id == 0 || janus->step == JANUS_STEP_DESTROY)
    return g_strdup_printf ("%s/%" G_GUINT64_FORMAT, janus->base_url, janus->session_id);

  return g_strdup_printf ("%s/%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT, janus->base_url, janus->session_id,
                          janus->handle_id);
}

static void
janus_send (CimsWhepViewerJanus *janus, SoupMessage *message, GCancellable *cancellable)
{
  g_clear_object (&janus->message);
  janus->message = message;
  soup_session_send_and_read_async (janus->soup, janus->message, G_PRIORITY_DEFAULT, cancellable,
                                    janus_response_cb, janus);
}

/* Finishes @builder's request object (the transaction is added here) and
 * POSTs it. @cancellable is NULL for the final destroy, which must go out
 * after the viewer's own cancellable has fired. */
static void
janus_post (CimsWhepViewerJanus *janus, JsonBuilder *builder, GCancellable *cancellable)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *url = janus_url (janus);
  g_autofree char *transaction = g_strdup_printf ("t%u", ++janus->n_transactions);
  g_autoptr (GBytes) body = NULL;
  SoupMessage *message;
  char *text;

  json_builder_set_member_name (builder, "transaction");
  json_builder_add_string_value (builder, transaction);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, NULL);
  body = g_bytes_new_take (text, strlen (text));

  message = soup_message_new ("POST", url);
  soup_message_set_request_body_from_bytes (message, "application/json", body);
  janus_send (janus, message, cancellable);
}

static JsonBuilder *
janus_request_begin (const char *verb)
{
  JsonBuilder *builder = json_builder_new ();

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "janus");
  json_builder_add_string_value (builder, verb);
  return builder;
}

static void
janus_create (CimsWhepViewerJanus *janus)
{
  g_autoptr (JsonBuilder) builder = janus_request_begin ("create");

  janus->step = JANUS_STEP_CREATE;
  janus_post (janus, builder, janus->cancellable);
}

static void
janus_attach (CimsWhepViewerJanus *janus)
{
  g_autoptr (JsonBuilder) builder = janus_request_begin ("attach");

  json_builder_set_member_name (builder, "plugin");
  json_builder_add_string_value (builder, "janus.plugin.streaming");
  janus->step = JANUS_STEP_ATTACH;
  janus_post (janus, builder, janus->cancellable);
}

static void
janus_watch_send (CimsWhepViewerJanus *janus)
{
  g_autoptr (JsonBuilder) builder = janus_request_begin ("message");

  json_builder_set_member_name (builder, "body");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "request");
  json_builder_add_string_value (builder, "watch");
  json_builder_set_member_name (builder, "id");
  json_builder_add_int_value (builder, (gint64) janus->mountpoint_id);
  json_builder_end_object (builder);
  janus->step = JANUS_STEP_WATCH;
  janus_post (janus, builder, janus->cancellable);
}

/* Long poll: Janus keeps the GET open until an event is queued for the
 * session, or returns a keepalive when its poll timeout passes. */
static void
janus_poll (CimsWhepViewerJanus *janus)
{
  g_autofree char *url = g_strdup_printf ("%s/%" G_GUINT64_FORMAT "?maxev=1", janus->base_url, janus->session_id);

  janus->step = JANUS_STEP_POLL;
  janus_send (janus, soup_message_new ("GET", url), janus->cancellable);
}

/* ---- responses ------------------------------------------------------------------ */

static void
janus_finish (CimsWhepViewerJanus *janus, const char *offer, const GError *error)
{
  janus->func (janus, offer, error, janus->user_data);
}

static void G_GNUC_PRINTF (2, 3)
janus_fail (CimsWhepViewerJanus *janus, const char *format, ...)
{
  g_autoptr (GError) error = NULL;
  va_list args;

  va_start (args, format);
  error = g_error_new_valist (CIMS_WHEP_VIEWER_ERROR, CIMS_WHEP_VIEWER_ERROR_FAILED, format, args);
  va_end (args);
  janus_finish (janus, NULL, error);
}

/* Returns (transfer none) the object member @name of @object, or NULL when
 * it is missing or not an object. json-glib 1.6 warns when
 * json_object_get_object_member() meets a missing member. */
static JsonObject *
object_member_find (JsonObject *object, const char *name)
{
  JsonNode *node = json_object_get_member (object, name);

  return node != NULL && JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
}

/* Returns (transfer none) the offer SDP of a streaming plugin event, or
 * NULL when @object is some other event. */
static const char *
event_offer_get (JsonObject *object)
{
  JsonObject *jsep = object_member_find (object, "jsep");

  if (jsep == NULL || g_strcmp0 (json_object_get_string_member_with_default (jsep, "type", ""), "offer") != 0)
    return NULL;

  return json_object_get_string_member_with_default (jsep, "sdp", NULL);
}

/* Returns (transfer none) the error text of a plugin event, or NULL. */
static const char *
event_plugin_error_get (JsonObject *object)
{
  JsonObject *plugindata = object_member_find (object, "plugindata");
  JsonObject *data = plugindata != NULL ? object_member_find (plugindata, "data") : NULL;

  if (data == NULL || !json_object_has_member (data, "error"))
    return NULL;

  return json_object_get_string_member_with_default (data, "error", "(no text)");
}

static void
janus_poll_handle (CimsWhepViewerJanus *janus, JsonObject *object, const char *kind)
{
  const char *offer = event_offer_get (object);
  const char *plugin_error = event_plugin_error_get (object);

  if (offer != NULL) {
    janus_finish (janus, offer, NULL);
    return;
  }
  if (plugin_error != NULL) {
    janus_fail (janus, "The streaming plugin rejected watch of mountpoint %" G_GUINT64_FORMAT ": %s",
                janus->mountpoint_id, plugin_error);
    return;
  }

  /* A keepalive or an event without an offer: wait for the next one. */
  g_debug ("Janus session %" G_GUINT64_FORMAT ": \"%s\" while waiting for the offer", janus->session_id, kind);
  janus_poll (janus);
}

static void
janus_object_handle (CimsWhepViewerJanus *janus, JsonObject *object)
{
  const char *kind = json_object_get_string_member_with_default (object, "janus", "");
  JsonObject *data = object_member_find (object, "data");

  if (strcmp (kind, "error") == 0) {
    JsonObject *error = object_member_find (object, "error");

    janus_fail (janus, "Janus returned an error: %s",
                error != NULL ? json_object_get_string_member_with_default (error, "reason", "") : "");
    return;
  }

  switch (janus->step) {
  case JANUS_STEP_CREATE:
  case JANUS_STEP_ATTACH:
    if (strcmp (kind, "success") != 0 || data == NULL || !json_object_has_member (data, "id")) {
      janus_fail (janus, "Janus %s returned \"%s\" without data.id",
                  janus->step == JANUS_STEP_CREATE ? "create" : "attach", kind);
      return;
    }
    if (janus->step == JANUS_STEP_CREATE) {
      janus->session_id = (guint64) json_object_get_int_member (data, "id");
      janus_attach (janus);
    } else {
      janus->handle_id = (guint64) json_object_get_int_member (data, "id");
      janus_watch_send (janus);
    }
    break;
  case JANUS_STEP_WATCH:
    /* Plugin requests are asynchronous: an "ack" here, the offer in an event. */
    janus_poll (janus);
    break;
  case JANUS_STEP_POLL:
    janus_poll_handle (janus, object, kind);
    break;
  case JANUS_STEP_START:
  case JANUS_STEP_DESTROY:
  default:
    janus_finish (janus, NULL, NULL);
    break;
  }
}

static void
janus_response_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CimsWhepViewerJanus *janus = user_data;
  g_autoptr (GBytes) body = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root;
  gsize size = 0;
  const char *text;

  body = soup_session_send_and_read_finish (SOUP_SESSION (source), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (body == NULL) {
    janus_finish (janus, NULL, error);
    return;
  }

  text = g_bytes_get_data (body, &size);
  if (soup_message_get_status (janus->message) != SOUP_STATUS_OK) {
    janus_fail (janus, "Janus returned HTTP %u: %.*s", soup_message_get_status (janus->message),
                (int) MIN (size, 300), text != NULL ? text : "");
    return;
  }
  if (!json_parser_load_from_data (parser, text != NULL ? text : "", (gssize) size, &error)) {
    janus_fail (janus, "Janus returned invalid JSON: %s", error->message);
    return;
  }

  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    janus_fail (janus, "Janus returned JSON that is not an object");
    return;
  }
  janus_object_handle (janus, json_node_get_object (root));
}

/* ---- the three operations --------------------------------------------------------- */

void
cims_whep_viewer_janus_watch (CimsWhepViewerJanus *janus, CimsWhepViewerJanusFunc func, gpointer user_data)
{
  janus->func = func;
  janus->user_data = user_data;
  janus_create (janus);
}

void
cims_whep_viewer_janus_start (CimsWhepViewerJanus *janus, const char *answer, CimsWhepViewerJanusFunc func,
                              gpointer user_data)
{
  g_autoptr (JsonBuilder) builder = janus_request_begin ("message");

  json_builder_set_member_name (builder, "body");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "request");
  json_builder_add_string_value (builder, "start");
  json_builder_end_object (builder);
  json_builder_set_member_name (builder, "jsep");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "type");
  json_builder_add_string_value (builder, "answer");
  json_builder_set_member_name (builder, "sdp");
  json_builder_add_string_value (builder, answer);
  json_builder_end_object (builder);

  janus->func = func;
  janus->user_data = user_data;
  janus->step = JANUS_STEP_START;
  janus_post (janus, builder, janus->cancellable);
}

void
cims_whep_viewer_janus_destroy (CimsWhepViewerJanus *janus, CimsWhepViewerJanusFunc func, gpointer user_data)
{
  g_autoptr (JsonBuilder) builder = janus_request_begin ("destroy");

  janus->func = func;
  janus->user_data = user_data;
  janus->step = JANUS_STEP_DESTROY;
  janus_post (janus, builder, NULL);
}
