/* SPDX-License-Identifier: Apache-2.0 */
/* The hub's HTTP server (libsoup): routing, CORS, Bearer authentication,
 * JSON errors, /healthz, /metrics and /api/v1/cameras. WHEP is in whep.c
 * and the viewer page in web-page.c. */
#include "hub/hub-runtime.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include <gio/gio.h>

#include "auth/report.h"

#define MAX_TOKEN_SIZE 8192

void
cims_http_reply_error (SoupServerMessage *msg, guint status, const char *code, const char *reason)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *body = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "error");
  json_builder_add_string_value (builder, code);
  json_builder_set_member_name (builder, "reason");
  json_builder_add_string_value (builder, reason);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  body = json_generator_to_data (generator, NULL);

  /* libsoup 3.2 has no reason phrase for 429 and would send "Unknown Error". */
  soup_server_message_set_status (msg, status, status == 429 ? "Too Many Requests" : NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY, body, strlen (body));
}

static void
reply_json (SoupServerMessage *msg, guint status, JsonNode *root)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autofree char *body = NULL;
  gsize size = 0;

  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  body = json_generator_to_data (generator, &size);

  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY, body, size);
}

/* An origin listed by name may call every resource. "*" opens only WHEP,
 * so an unknown page cannot drive the admin API with a token it obtained. */
static gboolean
origin_is_allowed (CimsHub *hub, const char *origin, const char *path)
{
  char **origins = hub->config->cors_origins;

  for (guint i = 0; origins != NULL && origins[i] != NULL; i++) {
    if (g_str_equal (origins[i], origin))
      return TRUE;
    if (g_str_equal (origins[i], "*") && g_str_has_prefix (path, "/whep/"))
      return TRUE;
  }
  return FALSE;
}

static void
cors_apply (CimsHub *hub, SoupServerMessage *msg, const char *path)
{
  SoupMessageHeaders *request = soup_server_message_get_request_headers (msg);
  SoupMessageHeaders *response = soup_server_message_get_response_headers (msg);
  const char *origin = soup_message_headers_get_one (request, "Origin");

  if (origin == NULL || !origin_is_allowed (hub, origin, path))
    return;

  /* Echo the origin rather than "*": no cookies are honoured, but an exact
   * origin keeps caches and credentials-mode fetches correct. */
  soup_message_headers_replace (response, "Access-Control-Allow-Origin", origin);
  soup_message_headers_append (response, "Vary", "Origin");
  soup_message_headers_replace (response, "Access-Control-Allow-Methods",
                                "GET, POST, DELETE, PATCH, OPTIONS");
  soup_message_headers_replace (response, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type, If-Match, X-Incident-Number");
  soup_message_headers_replace (response, "Access-Control-Expose-Headers",
                                "Location, ETag, Link, Accept-Post, Retry-After");
  soup_message_headers_replace (response, "Access-Control-Max-Age", "600");
}

CimsAuthIdentity *
cims_http_authenticate (CimsHub *hub, SoupServerMessage *msg)
{
  SoupMessageHeaders *request = soup_server_message_get_request_headers (msg);
  const char *header = soup_message_headers_get_one (request, "Authorization");
  g_autoptr (GError) error = NULL;
  CimsAuthIdentity *identity;

  if (header == NULL || g_ascii_strncasecmp (header, "Bearer ", 7) != 0) {
    soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                  "WWW-Authenticate", "Bearer realm=\"cimshub\"");
    cims_http_reply_error (msg, SOUP_STATUS_UNAUTHORIZED, "unauthorized",
                           "An Authorization: Bearer token is required.");
    return NULL;
  }

  if (strlen (header + 7) > MAX_TOKEN_SIZE) {
    cims_http_reply_error (msg, SOUP_STATUS_UNAUTHORIZED, "invalid-token",
                           "The bearer token is longer than 8192 bytes.");
    return NULL;
  }

  identity = cims_auth_token_verify (hub->keyring, header + 7, hub->config->token_audience,
                                     g_get_real_time (), &error);
  if (identity == NULL) {
    g_autofree char *address = cims_http_client_address (hub, msg);

    soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                  "WWW-Authenticate", "Bearer realm=\"cimshub\", error=\"invalid_token\"");
    cims_http_reply_error (msg, SOUP_STATUS_UNAUTHORIZED, "invalid-token", error->message);
    g_message ("rejected a token from %s: %s", address, error->message);
    return NULL;
  }

  return identity;
}

/* Replies 200 while the hub serves: "ok", or "degraded" with the problem
 * when the audit log could not be written, since new sessions are rejected
 * until it can. Running sessions go on either way, so it is never 503. */
static void
handle_healthz (CimsHub *hub, SoupServerMessage *msg)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "status");
  json_builder_add_string_value (builder, hub->audit_failed_at_us != 0 ? "degraded" : "ok");
  if (hub->audit_failed_at_us != 0) {
    g_autofree char *failed_text = cims_audit_time_format_ms (hub->audit_failed_at_us / 1000);
    g_autofree char *problem = g_strdup_printf ("The audit log could not be written since %s; new "
                                                "sessions are refused until it can.", failed_text);

    json_builder_set_member_name (builder, "problems");
    json_builder_begin_array (builder);
    json_builder_add_string_value (builder, problem);
    json_builder_end_array (builder);
  }
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  reply_json (msg, SOUP_STATUS_OK, root);
}

static void
handle_metrics (CimsHub *hub, SoupServerMessage *msg)
{
  char *body = cims_metrics_format (hub);

  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, "text/plain; version=0.0.4", SOUP_MEMORY_TAKE, body,
                                    strlen (body));
}

static JsonNode *
camera_to_json (CimsHub *hub, const CimsConfigCamera *camera, const CimsAuthIdentity *identity)
{
  g_auto (CimsAuthDecision) decision = { 0 };
  JsonObject *object = json_object_new ();
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);

  cims_hub_access_decide (hub, identity, camera, NULL, g_get_real_time (), &decision);

  json_object_set_string_member (object, "id", camera->id);
  json_object_set_string_member (object, "jurisdiction", camera->jurisdiction);
  json_object_set_string_member (object, "location", camera->location);
  json_object_set_string_member (object, "brand_model", camera->brand_model);
  json_object_set_string_member (object, "installed", camera->installed);
  json_object_set_boolean_member (object, "restricted", camera->restricted);
  json_object_set_boolean_member (object, "out_of_service",
                                  cims_config_camera_is_out_of_service (camera, g_get_real_time ()));
  json_object_set_boolean_member (object, "viewable", decision.allowed);
  json_object_set_string_member (object, "rule", decision.rule_name);
  json_object_set_string_member (object, "reason", decision.reason);
  json_node_take_object (node, object);
  return node;
}

/* Lists the inventory with, for each camera, whether the caller may watch
 * it now. A camera that needs an incident number shows the rule
 * incident-number-missing, and the list never takes X-Incident-Number:
 * only a WHEP request, rate-limited and audited, tries a number, so the
 * list cannot be used to guess one. Credentials and source URLs are never
 * part of the response. */
static void
handle_cameras (CimsHub *hub, SoupServerMessage *msg)
{
  g_autoptr (CimsAuthIdentity) identity = NULL;
  g_autoptr (JsonNode) root = json_node_new (JSON_NODE_OBJECT);
  JsonObject *object = json_object_new ();
  JsonArray *cameras = json_array_new ();

  if (g_strcmp0 (soup_server_message_get_method (msg), "GET") != 0) {
    cims_http_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method-not-allowed",
                           "Only GET is supported on /api/v1/cameras.");
    json_object_unref (object);
    json_array_unref (cameras);
    return;
  }

  identity = cims_http_authenticate (hub, msg);
  if (identity == NULL) {
    json_object_unref (object);
    json_array_unref (cameras);
    return;
  }

  for (guint i = 0; i < hub->config->cameras->len; i++)
    json_array_add_element (cameras, camera_to_json (hub, g_ptr_array_index (hub->config->cameras, i),
                                                     identity));
  json_object_set_array_member (object, "cameras", cameras);
  json_node_take_object (root, object);
  reply_json (msg, SOUP_STATUS_OK, root);
}

static void
handle_options (CimsHub *hub, SoupServerMessage *msg, const char *path)
{
  SoupMessageHeaders *response = soup_server_message_get_response_headers (msg);

  if (g_str_has_prefix (path, "/whep/cameras/")) {
    soup_message_headers_replace (response, "Allow", "OPTIONS, POST");
    soup_message_headers_replace (response, "Accept-Post", "application/sdp");
  } else if (g_str_has_prefix (path, "/whep/sessions/")) {
    soup_message_headers_replace (response, "Allow", "OPTIONS, DELETE, PATCH");
  } else {
    soup_message_headers_replace (response, "Allow", "OPTIONS, GET, POST, DELETE");
  }
  soup_server_message_set_status (msg, SOUP_STATUS_NO_CONTENT, NULL);
}

static void
request_cb (SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
            gpointer user_data)
{
  CimsHub *hub = user_data;
  const char *method = soup_server_message_get_method (msg);

  hub->http_requests++;
  cors_apply (hub, msg, path);
  cims_http_connection_close_after (msg);

  if (g_str_equal (method, "OPTIONS"))
    handle_options (hub, msg, path);
  else if (g_str_has_prefix (path, "/whep/"))
    cims_whep_handle (hub, msg, path, query);
  else if (g_str_equal (path, "/healthz"))
    handle_healthz (hub, msg);
  else if (g_str_equal (path, "/metrics"))
    handle_metrics (hub, msg);
  else if (g_str_equal (path, "/api/v1/cameras"))
    handle_cameras (hub, msg);
  else if (g_str_has_prefix (path, "/api/v1/"))
    cims_api_handle (hub, msg, path, query);
  else if (g_str_equal (path, "/") || g_str_equal (path, "/index.html"))
    cims_web_page_handle (hub, msg);
  else
    cims_http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not-found", "No such resource.");
}

/* A listening socket with a deep accept queue. With GLib's default of 10, a
 * burst of connections (a video wall opening dozens of cameras at once)
 * fails at the TCP level before the hub accepts them. */
#define LISTEN_BACKLOG 1024

static GSocket *
listen_socket_new (GSocketAddress *address, GError **error)
{
  g_autoptr (GSocket) socket = g_socket_new (g_socket_address_get_family (address), G_SOCKET_TYPE_STREAM,
                                             G_SOCKET_PROTOCOL_TCP, error);

  if (socket == NULL || !g_socket_bind (socket, address, TRUE, error))
    return NULL;

  g_socket_set_listen_backlog (socket, LISTEN_BACKLOG);
  if (!g_socket_listen (socket, error))
    return NULL;

  return g_steal_pointer (&socket);
}

/* How often the hub checks that libsoup still accepts connections. */
#define LISTENER_CHECK_INTERVAL_S 2

/* Returns how many connections wait in @socket's accept queue. */
static guint
listener_queue_length (GSocket *socket)
{
  struct tcp_info info;
  socklen_t size = sizeof info;

  /* Linux gives a listening socket's accept queue as tcpi_unacked. */
  if (getsockopt (g_socket_get_fd (socket), IPPROTO_TCP, TCP_INFO, &info, &size) != 0)
    return 0;

  return info.tcpi_unacked;
}

/* Closes the listener that libsoup no longer serves and listens again on
 * the same address. Connections already accepted carry on. */
static void
listener_restart (CimsHub *hub)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocket) listener = NULL;

  soup_server_disconnect (hub->http);
  g_clear_object (&hub->http_listener);

  listener = listen_socket_new (hub->http_address, &error);
  if (listener == NULL || !soup_server_listen_socket (hub->http, listener, 0, &error)) {
    g_warning ("HTTP: listening again on port %u failed: %s; retrying in %d s", hub->http_port,
               error->message, LISTENER_CHECK_INTERVAL_S);
    return;
  }

  hub->http_listener = g_steal_pointer (&listener);
  g_message ("HTTP: listening again on port %u", hub->http_port);
}

/* libsoup 3.2 stops accepting for good after one failed accept(), such as
 * at the open-file limit, and then leaves connections in the queue. This
 * check runs on the loop that accepts them, so connections waiting at two
 * checks in a row with no request started in between mean that libsoup
 * stopped, and the hub listens again. */
static gboolean
listener_check_cb (gpointer user_data)
{
  CimsHub *hub = user_data;
  guint n_queued = 0;

  if (hub->http_listener == NULL) {
    listener_restart (hub);
    return G_SOURCE_CONTINUE;
  }

  n_queued = listener_queue_length (hub->http_listener);
  if (n_queued > 0 && hub->http_queue_seen && hub->http_requests == hub->http_requests_checked) {
    g_warning ("HTTP: %u connections wait unaccepted on port %u, so the server stopped accepting; "
               "listening again", n_queued, hub->http_port);
    listener_restart (hub);
    n_queued = 0;
  }

  hub->http_queue_seen = n_queued > 0;
  hub->http_requests_checked = hub->http_requests;
  return G_SOURCE_CONTINUE;
}

/* Binds and listens on http_listen before the hub creates anything in
 * state_dir, so a hub whose port is taken stops without leaving a new,
 * empty audit log behind. Connections that arrive before
 * cims_http_server_start() wait in the accept queue. */
gboolean
cims_http_server_bind (CimsHub *hub, GError **error)
{
  g_autoptr (GInetAddress) address = g_inet_address_new_from_string (hub->config->http_host);
  g_autoptr (GSocketAddress) socket_address = NULL;
  g_autoptr (GSocket) listener = NULL;

  if (address == NULL) {
    g_set_error (error, CIMS_HUB_ERROR, CIMS_HUB_ERROR_LISTEN,
                 "http_listen host \"%s\" is not an IP address", hub->config->http_host);
    return FALSE;
  }

  socket_address = g_inet_socket_address_new (address, hub->config->http_port);
  listener = listen_socket_new (socket_address, error);
  if (listener == NULL) {
    g_prefix_error (error, "Cannot listen on %s:%u: ", hub->config->http_host, hub->config->http_port);
    return FALSE;
  }

  /* The bound address, with the port the kernel chose for port 0. */
  hub->http_address = g_socket_get_local_address (listener, error);
  if (hub->http_address == NULL)
    return FALSE;

  hub->http_port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (hub->http_address));
  hub->http_listener = g_steal_pointer (&listener);
  return TRUE;
}

gboolean
cims_http_server_start (CimsHub *hub, GError **error)
{
  g_return_val_if_fail (hub->http_listener != NULL, FALSE);

  hub->http = soup_server_new ("server-header", "cimshub", NULL);
  soup_server_add_handler (hub->http, NULL, request_cb, hub, NULL);
  hub->http_connections = cims_http_connections_new (hub, hub->http);

  if (!soup_server_listen_socket (hub->http, hub->http_listener, 0, error)) {
    g_prefix_error (error, "Cannot serve HTTP on %s:%u: ", hub->config->http_host, hub->http_port);
    g_clear_object (&hub->http);
    return FALSE;
  }

  hub->http_check_id = g_timeout_add_seconds (LISTENER_CHECK_INTERVAL_S, listener_check_cb, hub);
  g_message ("listening on http://%s:%u/", hub->config->http_host, hub->http_port);
  return TRUE;
}
