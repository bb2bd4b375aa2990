/* SPDX-License-Identifier: Apache-2.0 */
/* Request and reply helpers of the audit, archive-request and report
 * resources of the admin API: JSON bodies, typed members, 403 and store
 * errors. Routing is in api-admin.c. */
#include "hub/hub-runtime.h"

#include <string.h>

#include "auth/report.h"
#include "hub/strict-json.h"

#define MAX_BODY_SIZE (64 * 1024)

void
cims_api_reply_object (SoupServerMessage *msg, guint status, JsonObject *object)
{
  gsize size = 0;
  char *body = cims_api_object_to_data (object, &size);

  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_TAKE, body, size);
}

char *
cims_api_object_to_data (JsonObject *object, gsize *size)
{
  g_autoptr (JsonNode) root = json_node_new (JSON_NODE_OBJECT);
  g_autoptr (JsonGenerator) generator = json_generator_new ();

  json_node_take_object (root, object);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  return json_generator_to_data (generator, size);
}

void
cims_api_reply_forbidden (SoupServerMessage *msg, const char *rule, const char *reason)
{
  JsonObject *object = json_object_new ();

  json_object_set_string_member (object, "error", "forbidden");
  json_object_set_string_member (object, "rule", rule);
  json_object_set_string_member (object, "reason", reason);
  cims_api_reply_object (msg, SOUP_STATUS_FORBIDDEN, object);
}

void
cims_api_reply_store_error (SoupServerMessage *msg, const GError *error)
{
  if (g_error_matches (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_NOT_FOUND))
    cims_http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not-found", error->message);
  else if (g_error_matches (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_CONFLICT))
    cims_http_reply_error (msg, SOUP_STATUS_CONFLICT, "conflict", error->message);
  else if (g_error_matches (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_INVALID))
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field", error->message);
  else
    cims_http_reply_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "store-unavailable", error->message);
}

void
cims_api_reply_method_not_allowed (SoupServerMessage *msg, const char *allow)
{
  g_autofree char *reason = g_strdup_printf ("This resource supports %s only.", allow);

  soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Allow", allow);
  cims_http_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method-not-allowed", reason);
}

JsonObject *
cims_api_body_parse (SoupServerMessage *msg, JsonParser *parser)
{
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  g_autoptr (GBytes) bytes = soup_message_body_flatten (body);
  g_autoptr (GError) error = NULL;
  g_autofree char *strict_reason = NULL;
  gsize size = 0;
  const char *data = g_bytes_get_data (bytes, &size);
  JsonNode *root;

  if (size > MAX_BODY_SIZE) {
    cims_http_reply_error (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "body-too-large",
                           "The request body is larger than 64 KiB.");
    return NULL;
  }

  strict_reason = cims_strict_json_check (data, size);
  if (strict_reason != NULL) {
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-json", strict_reason);
    return NULL;
  }

  if (!json_parser_load_from_data (parser, data != NULL ? data : "", (gssize) size, &error)) {
    g_autofree char *reason = g_strdup_printf ("The body is not valid JSON: %s", error->message);
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-json", reason);
    return NULL;
  }

  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-json", "The body must be a JSON object.");
    return NULL;
  }
  return json_node_get_object (root);
}

gboolean
cims_api_member_get_string (SoupServerMessage *msg, JsonObject *object, const char *member,
                            gboolean required, const char **out)
{
  JsonNode *node = json_object_get_member (object, member);
  g_autofree char *reason = NULL;

  *out = NULL;
  if ((node == NULL || JSON_NODE_HOLDS_NULL (node)) && !required)
    return TRUE;

  if (node != NULL && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING) {
    *out = json_node_get_string (node);
    if (!required || **out != '\0')
      return TRUE;
  }

  if (node == NULL || JSON_NODE_HOLDS_NULL (node)) {
    reason = g_strdup_printf ("\"%s\" is required and must be a non-empty string.", member);
  } else {
    g_autofree char *text = json_to_string (node, FALSE);
    reason = g_strdup_printf ("\"%s\" value %.64s is invalid: expected a%s string.", member, text,
                              required ? " non-empty" : "");
  }
  cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field", reason);
  return FALSE;
}

gboolean
cims_api_member_get_time (SoupServerMessage *msg, JsonObject *object, const char *member, gint64 *out_us)
{
  const char *text = NULL;
  g_autoptr (GDateTime) time = NULL;
  g_autofree char *reason = NULL;

  if (!cims_api_member_get_string (msg, object, member, TRUE, &text))
    return FALSE;

  time = g_date_time_new_from_iso8601 (text, NULL);
  if (time != NULL) {
    *out_us = g_date_time_to_unix (time) * G_USEC_PER_SEC + g_date_time_get_microsecond (time);
    return TRUE;
  }

  reason = g_strdup_printf ("\"%s\" value \"%.64s\" is not an ISO 8601 time with a time zone, "
                            "e.g. 2026-12-04T18:00:00Z.", member, text);
  cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field", reason);
  return FALSE;
}

void
cims_api_object_set_time (JsonObject *object, const char *member, gint64 time_us)
{
  g_autofree char *text = NULL;

  if (time_us == 0) {
    json_object_set_null_member (object, member);
    return;
  }

  text = cims_audit_time_format_ms (time_us / 1000);
  json_object_set_string_member (object, member, text);
}
