/* SPDX-License-Identifier: Apache-2.0 */
/* WHEP signalling: POST /whep/cameras/{camera_id} admits a viewer (token,
 * camera, policy, SDP offer) and answers once ICE candidates are gathered;
 * DELETE /whep/sessions/{session_id} ends a session. */
#include "hub/hub-runtime.h"

#include <string.h>

#include "auth/report.h"

#define MAX_OFFER_SIZE (64 * 1024)
/* RFC 6585; libsoup 3.2 has no name for it. */
#define CIMS_HTTP_STATUS_TOO_MANY_REQUESTS 429

typedef struct {
  CimsHub *hub;
  SoupServerMessage *msg;
  CimsAuthIdentity *identity;
  const CimsConfigCamera *camera;
  CimsSdpOffer *offer;
  CimsAuthDecision decision;
  char *incident_number;
  char *client;
  char *client_address;         /* the viewer's, from cims_http_client_address() */
  guint n_fds_needed;           /* admitted in the hub's open-file budget, settled when freed */
} WhepRequest;

static void
whep_request_free (WhepRequest *request)
{
  cims_fd_budget_settle (&request->hub->fd_budget, request->n_fds_needed);
  g_clear_object (&request->msg);
  g_clear_pointer (&request->identity, cims_auth_identity_free);
  g_clear_pointer (&request->offer, cims_sdp_offer_free);
  cims_auth_decision_clear (&request->decision);
  g_free (request->incident_number);
  g_free (request->client);
  g_free (request->client_address);
  g_free (request);
}

static void
count_response (CimsHub *hub, guint status)
{
  if (status >= 500)
    CIMS_METRIC_ADD (hub, whep_responses_5xx, 1);
  else if (status >= 400)
    CIMS_METRIC_ADD (hub, whep_responses_4xx, 1);
  else
    CIMS_METRIC_ADD (hub, whep_responses_2xx, 1);
}

static void
reply_error_counted (CimsHub *hub, SoupServerMessage *msg, guint status, const char *code,
                     const char *reason)
{
  cims_http_reply_error (msg, status, code, reason);
  count_response (hub, status);
}

static void
reply_forbidden (CimsHub *hub, SoupServerMessage *msg, const CimsAuthDecision *decision)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *body = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "error");
  json_builder_add_string_value (builder, "forbidden");
  json_builder_set_member_name (builder, "rule");
  json_builder_add_string_value (builder, decision->rule_name);
  json_builder_set_member_name (builder, "reason");
  json_builder_add_string_value (builder, decision->reason);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  body = json_generator_to_data (generator, NULL);

  soup_server_message_set_status (msg, SOUP_STATUS_FORBIDDEN, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY, body, strlen (body));
  count_response (hub, SOUP_STATUS_FORBIDDEN);
}

/* ---- answer --------------------------------------------------------------- */

/* Frees @request and returns TRUE when the hub's HTTP server has stopped.
 * Its connections are gone, so the paused POST can get no response. */
static gboolean
whep_request_drop_when_stopped (WhepRequest *request)
{
  if (request->hub->http != NULL)
    return FALSE;

  whep_request_free (request);
  return TRUE;
}

static void
answer_ready_cb (CimsViewerSession *session, const char *answer, const GError *error,
                 gpointer user_data)
{
  WhepRequest *request = user_data;
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (request->msg);
  g_autofree char *location = NULL;

  if (whep_request_drop_when_stopped (request))
    return;

  if (g_error_matches (error, CIMS_HUB_ERROR, CIMS_HUB_ERROR_SESSION_ENDED)) {
    cims_session_message (session, "no answer for the viewer: %s", error->message);
    reply_error_counted (request->hub, request->msg, SOUP_STATUS_FORBIDDEN, "session-ended", error->message);
    soup_server_message_unpause (request->msg);
    whep_request_free (request);
    return;
  }

  if (error != NULL) {
    cims_session_warning (session, "no answer for the viewer: %s", error->message);
    cims_hub_session_end (request->hub, cims_viewer_session_get_id (session), "ice-failed");
    reply_error_counted (request->hub, request->msg, SOUP_STATUS_SERVICE_UNAVAILABLE,
                         "ice-unavailable", error->message);
    soup_server_message_unpause (request->msg);
    whep_request_free (request);
    return;
  }

  location = g_strdup_printf ("/whep/sessions/%s", cims_viewer_session_get_id (session));
  soup_message_headers_replace (headers, "Location", location);
  soup_server_message_set_status (request->msg, SOUP_STATUS_CREATED, NULL);
  soup_server_message_set_response (request->msg, "application/sdp", SOUP_MEMORY_COPY, answer,
                                    strlen (answer));
  count_response (request->hub, SOUP_STATUS_CREATED);
  CIMS_METRIC_ADD (request->hub, sessions_started, 1);

  cims_session_message (session, "session started for %s (%s) from %s, allowed by rule %s%s%s%s",
                        cims_viewer_session_get_identity (session)->subject,
                        cims_viewer_session_get_identity (session)->name,
                        request->client_address,
                        cims_viewer_session_get_rule_name (session),
                        request->decision.grant_id ? " under grant " : "",
                        request->decision.grant_id ? request->decision.grant_id : "",
                        request->decision.incident_id ? " under a major incident" : "");
  soup_server_message_unpause (request->msg);
  whep_request_free (request);
}

static char *
answer_fmtp_for (CimsCodec codec, const CimsSdpCodec *offered)
{
  if (codec == CIMS_CODEC_H264)
    return g_strdup_printf ("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=%06x",
                            offered->h264_profile_level_id);

  return g_strdup (offered->fmtp);
}

/* The viewer profile named by the WHEP query's client= or the token's
 * client claim; the configured default otherwise. */
static const CimsConfigProfile *
viewer_profile_for (WhepRequest *request)
{
  const CimsConfig *config = request->hub->config;
  const char *client = request->client ? request->client : request->identity->client;
  const CimsConfigProfile *profile = client ? cims_config_find_profile (config, client) : NULL;

  if (profile != NULL)
    return profile;

  if (client != NULL)
    g_message ("camera=%s: viewer %s names client \"%.64s\", which is no viewer profile; using the default",
               request->camera->id, request->identity->subject, client);
  profile = config->default_profile ? cims_config_find_profile (config, config->default_profile) : NULL;
  return profile ? profile : g_ptr_array_index (config->profiles, 0);
}

/* Decides again for a request that waited for its camera to connect, since
 * a reload or a revocation meanwhile ended only running sessions. Replies
 * and frees @request when its token key, its camera or its allowance is
 * gone, and returns FALSE then. */
static gboolean
request_recheck (WhepRequest *request)
{
  CimsHub *hub = request->hub;
  const CimsAuthIdentity *identity = request->identity;
  const CimsConfigCamera *camera = cims_config_find_camera (hub->config, request->camera->id);
  g_auto (CimsAuthDecision) decision = { 0 };
  const char *invalid_reason;

  invalid_reason = cims_auth_keyring_check_identity (hub->keyring, identity);
  if (invalid_reason != NULL) {
    g_message ("camera=%s: %s of %s refused: a reload while the camera connected refuses the token: %s",
               request->camera->id, identity->subject, identity->jurisdiction, invalid_reason);
    reply_error_counted (hub, request->msg, SOUP_STATUS_UNAUTHORIZED, "invalid-token",
                         "The configuration changed while the camera connected and no longer accepts "
                         "the token.");
    goto refused;
  }

  if (camera == NULL) {
    reply_error_counted (hub, request->msg, SOUP_STATUS_NOT_FOUND, "unknown-camera",
                         "The camera was removed from the configuration while it connected.");
    goto refused;
  }

  cims_hub_access_decide (hub, identity, camera, request->incident_number, g_get_real_time (), &decision);
  if (!decision.allowed) {
    g_message ("camera=%s: denied %s of %s once the camera connected (%s): %s", camera->id, identity->subject,
               identity->jurisdiction, decision.rule_name, decision.reason);
    cims_hub_audit_denied (hub, identity, camera, request->incident_number, request->client_address,
                           decision.rule_name);
    reply_forbidden (hub, request->msg, &decision);
    goto refused;
  }

  request->camera = camera;
  cims_auth_decision_clear (&request->decision);
  request->decision = decision;
  memset (&decision, 0, sizeof decision);
  return TRUE;

refused:
  soup_server_message_unpause (request->msg);
  whep_request_free (request);
  return FALSE;
}

static void
source_ready_cb (CimsSource *source, const GError *error, gpointer user_data)
{
  WhepRequest *request = user_data;
  CimsCodec codec = cims_source_get_codec (source);
  g_autoptr (CimsViewerSession) session = NULL;
  g_autofree char *answer_fmtp = NULL;
  CimsViewerSessionInfo info = { 0 };
  g_autoptr (GError) audit_error = NULL;
  CimsNegotiation negotiation = { 0 };
  CimsCameraVideo video = { 0 };
  const CimsConfigProfile *profile;
  const CimsSdpCodec *chosen;
  CimsSource *feed;

  if (whep_request_drop_when_stopped (request))
    return;

  if (error != NULL) {
    g_warning ("camera=%s: viewer %s refused: %s", request->camera->id, request->identity->subject,
               error->message);
    reply_error_counted (request->hub, request->msg, SOUP_STATUS_SERVICE_UNAVAILABLE,
                         "camera-unavailable", error->message);
    soup_server_message_unpause (request->msg);
    whep_request_free (request);
    return;
  }

  if (!request_recheck (request))
    return;

  profile = viewer_profile_for (request);
  video.codec = codec;
  video.h264_profile_level_id = cims_source_get_profile_level_id (source);
  cims_source_get_size (source, &video.width, &video.height);
  cims_negotiation_decide (request->offer, &video, profile, &negotiation);
  if (negotiation.mode == CIMS_NEGOTIATION_NONE) {
    reply_error_counted (request->hub, request->msg, SOUP_STATUS_BAD_REQUEST, "no-common-codec",
                         negotiation.reason);
    soup_server_message_unpause (request->msg);
    whep_request_free (request);
    return;
  }
  chosen = negotiation.offer_codec;
  feed = source;
  if (negotiation.mode == CIMS_NEGOTIATION_TRANSCODE)
    feed = cims_hub_transcode_acquire (request->hub, source, profile, negotiation.output_codec);

  info.camera_id = request->camera->id;
  info.owner_jurisdiction = request->camera->jurisdiction;
  info.identity = g_steal_pointer (&request->identity);
  info.remote_address = request->client_address;
  info.client = request->client;
  info.incident_number = request->incident_number;
  info.decision = &request->decision;
  session = cims_viewer_session_new (request->hub, &info);

  /* The start record is durable before any media can flow; without an
   * audit log the hub refuses new sessions and keeps the running ones. */
  if (!cims_hub_audit_session_start (request->hub, session, request->camera, &audit_error)) {
    CIMS_METRIC_ADD (request->hub, sessions_refused_audit, 1);
    cims_session_warning (session, "refused: the audit log cannot be written: %s", audit_error->message);
    reply_error_counted (request->hub, request->msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "audit-unavailable",
                         "The audit log cannot be written, so no new session can start. "
                         "Running sessions continue.");
    soup_server_message_unpause (request->msg);
    whep_request_free (request);
    return;
  }
  cims_hub_session_add (request->hub, session);
  cims_session_message (session, "profile %s: %s", profile->name, negotiation.reason);

  answer_fmtp = answer_fmtp_for (negotiation.output_codec, chosen);
  cims_viewer_session_negotiate (session, feed, request->offer, chosen, answer_fmtp,
                                 answer_ready_cb, request);
}

/* ---- admission -------------------------------------------------------------- */

static gboolean
check_rate (CimsHub *hub, SoupServerMessage *msg, const char *address)
{
  guint wait_s = cims_rate_limiter_check (hub->whep_limiter, address, hub->config->whep_rate_per_client,
                                          hub->config->whep_rate_total);
  g_autofree char *retry = NULL;

  if (wait_s == 0)
    return TRUE;

  CIMS_METRIC_ADD (hub, whep_rate_limited, 1);
  retry = g_strdup_printf ("%u", wait_s);
  soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Retry-After", retry);
  reply_error_counted (hub, msg, CIMS_HTTP_STATUS_TOO_MANY_REQUESTS, "too-many-requests",
                       "Too many WHEP requests from this address or in total; retry after the "
                       "Retry-After delay.");
  return FALSE;
}

/* Refuses a session past the per-user or per-camera cap. */
static gboolean
check_session_caps (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity,
                    const CimsConfigCamera *camera)
{
  guint n_user = 0;
  guint n_camera = 0;
  GHashTableIter iter;
  gpointer value;
  g_autofree char *reason = NULL;

  g_hash_table_iter_init (&iter, hub->sessions);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    CimsViewerSession *session = value;
    const CimsAuthIdentity *other = cims_viewer_session_get_identity (session);

    if (g_str_equal (other->subject, identity->subject) && g_str_equal (other->issuer, identity->issuer))
      n_user++;
    if (g_str_equal (cims_viewer_session_get_camera_id (session), camera->id))
      n_camera++;
  }

  if (n_user >= hub->config->max_sessions_per_user)
    reason = g_strdup_printf ("%s already has %u sessions open, the most one person may have.",
                              identity->subject, n_user);
  else if (n_camera >= hub->config->max_sessions_per_camera)
    reason = g_strdup_printf ("Camera %s already has %u viewers, the most it may have.", camera->id, n_camera);
  if (reason == NULL)
    return TRUE;

  soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Retry-After", "30");
  reply_error_counted (hub, msg, CIMS_HTTP_STATUS_TOO_MANY_REQUESTS, "too-many-sessions", reason);
  return FALSE;
}

/* Rejects a session that would leave fewer descriptors free than the
 * budget's reserve, so that cameras, HTTP and the database keep working for
 * everyone already served. Logs at most once a minute. */
static gboolean
check_open_files (CimsHub *hub, SoupServerMessage *msg, const CimsConfigCamera *camera, guint *n_needed)
{
  gint64 now_us = g_get_monotonic_time ();
  guint64 n_open = 0;

  /* The first viewer of a camera the hub is not pulling starts its ingest. */
  *n_needed = CIMS_FD_BUDGET_PER_SESSION;
  if (g_hash_table_lookup (hub->sources, camera->id) == NULL)
    *n_needed += CIMS_FD_BUDGET_PER_SOURCE;
  if (cims_fd_budget_admit (&hub->fd_budget, now_us, *n_needed, &n_open))
    return TRUE;

  *n_needed = 0;

  CIMS_METRIC_ADD (hub, whep_refused_open_files, 1);
  if (hub->fd_limit_logged_us == 0 || now_us - hub->fd_limit_logged_us >= 60 * G_USEC_PER_SEC) {
    hub->fd_limit_logged_us = now_us;
    g_warning ("refusing new viewers: %" G_GUINT64_FORMAT " of the open-file limit of %" G_GUINT64_FORMAT
               " are in use and %" G_GUINT64_FORMAT " stay free for cameras, HTTP and the database; "
               "raise the limit (LimitNOFILE= in the systemd unit, or ulimit -n) and restart the hub",
               n_open, hub->fd_budget.limit, hub->fd_budget.reserve);
  }

  soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Retry-After", "30");
  reply_error_counted (hub, msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "hub-at-capacity",
                       "The hub is at its limit of open files and cannot take another viewer now; "
                       "retry after the Retry-After delay.");
  return FALSE;
}

/* Rejects a ?client= value that is no client version: one that is empty,
 * longer than 64 bytes, or not printable ASCII. It goes into the session's
 * audit record, so it is refused before anything is written. */
static gboolean
check_client (CimsHub *hub, SoupServerMessage *msg, const char *client)
{
  g_autofree char *head = NULL;
  g_autofree char *escaped = NULL;
  g_autofree char *reason = NULL;

  if (client == NULL || cims_config_client_is_valid (client))
    return TRUE;

  head = g_strndup (client, 64);
  escaped = g_strescape (head, NULL);
  reason = g_strdup_printf ("client=\"%s\"%s is invalid: use 1 to 64 printable ASCII characters, such as a "
                            "viewer profile name.", escaped, strlen (client) > 64 ? " (cut at 64 bytes)" : "");
  reply_error_counted (hub, msg, SOUP_STATUS_BAD_REQUEST, "invalid-client", reason);
  return FALSE;
}

/* Rejects a token past its expiry. Token checks allow 30 s of clock skew,
 * but a session's allowance ends at the token's expiry, so such a session
 * would end before its SDP answer. */
static gboolean
check_token_time_left (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity)
{
  g_autofree char *expiry_text = NULL;
  g_autofree char *reason = NULL;

  if (identity->expires_at_us > g_get_real_time ())
    return TRUE;

  expiry_text = cims_audit_time_format_ms (identity->expires_at_us / 1000);
  reason = g_strdup_printf ("The token expired at %s; a session needs a token that is still valid.",
                            expiry_text);
  reply_error_counted (hub, msg, SOUP_STATUS_UNAUTHORIZED, "token-expired", reason);
  return FALSE;
}

static gboolean
check_content_type (CimsHub *hub, SoupServerMessage *msg)
{
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  const char *type = soup_message_headers_get_content_type (headers, NULL);

  if (type != NULL && g_ascii_strcasecmp (type, "application/sdp") == 0)
    return TRUE;

  reply_error_counted (hub, msg, SOUP_STATUS_UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type",
                       "A WHEP offer must be sent with Content-Type: application/sdp.");
  return FALSE;
}

/* Maximum length of a requested camera id that an error message quotes. */
#define QUOTED_ID_MAX 80

/* Returns why @camera_id names no camera, quoting it escaped and shortened. */
static char *
unknown_camera_reason (CimsHub *hub, const char *camera_id)
{
  g_autofree char *head = g_strndup (camera_id, QUOTED_ID_MAX);
  g_autofree char *quoted = g_strescape (head, NULL);
  const char *ellipsis = strlen (camera_id) > QUOTED_ID_MAX ? "..." : "";
  g_autofree char *lower = NULL;

  if (cims_config_id_is_valid (camera_id))
    return g_strdup_printf ("No camera has the id \"%s\".", quoted);

  lower = g_ascii_strdown (camera_id, -1);
  if (cims_config_id_is_valid (lower) && cims_config_find_camera (hub->config, lower) != NULL)
    return g_strdup_printf ("No camera has the id \"%s\"; camera ids are lower case: did you mean \"%s\"?",
                            quoted, lower);

  return g_strdup_printf ("\"%s%s\" is not a camera id: an id is 1 to 64 characters, lower-case letters, "
                          "digits, '.', '_' and '-', starting with a letter or digit.", quoted, ellipsis);
}

static const CimsConfigCamera *
find_camera (CimsHub *hub, SoupServerMessage *msg, const char *camera_id)
{
  const CimsConfigCamera *camera = NULL;
  g_autofree char *reason = NULL;

  if (cims_config_id_is_valid (camera_id))
    camera = cims_config_find_camera (hub->config, camera_id);
  if (camera != NULL)
    return camera;

  reason = unknown_camera_reason (hub, camera_id);
  reply_error_counted (hub, msg, SOUP_STATUS_NOT_FOUND, "unknown-camera", reason);
  return NULL;
}

static CimsSdpOffer *
parse_offer (CimsHub *hub, SoupServerMessage *msg)
{
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  g_autoptr (GBytes) bytes = soup_message_body_flatten (body);
  g_autoptr (GError) error = NULL;
  CimsSdpOffer *offer;
  gsize size = 0;
  const char *data = g_bytes_get_data (bytes, &size);

  if (size > MAX_OFFER_SIZE) {
    reply_error_counted (hub, msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "offer-too-large",
                         "The SDP offer is larger than 64 KiB.");
    return NULL;
  }

  offer = cims_sdp_offer_parse (data ? data : "", size, &error);
  if (offer == NULL) {
    reply_error_counted (hub, msg, SOUP_STATUS_BAD_REQUEST, "invalid-offer", error->message);
    return NULL;
  }

  /* A viewer that will not receive video would get a session, an audit
   * record and an ICE port for nothing. */
  if (!offer->video_is_recvonly_or_sendrecv) {
    reply_error_counted (hub, msg, SOUP_STATUS_BAD_REQUEST, "invalid-offer",
                         "The offer's video is sendonly or inactive; a WHEP viewer must offer to "
                         "receive video (recvonly or sendrecv).");
    cims_sdp_offer_free (offer);
    return NULL;
  }

  return offer;
}

static void
handle_post (CimsHub *hub, SoupServerMessage *msg, const char *camera_id, GHashTable *query)
{
  guint n_fds_needed = 0;
  const char *client;
  const char *incident_number;
  g_autofree char *client_address = NULL;
  g_autoptr (CimsAuthIdentity) identity = NULL;
  g_auto (CimsAuthDecision) decision = { 0 };
  const CimsConfigCamera *camera;
  CimsSdpOffer *offer;
  WhepRequest *request;
  CimsSource *source;

  CIMS_METRIC_ADD (hub, whep_requests, 1);

  client = query != NULL ? g_hash_table_lookup (query, "client") : NULL;
  client_address = cims_http_client_address (hub, msg);
  if (!check_rate (hub, msg, client_address) || !check_content_type (hub, msg)
      || !check_client (hub, msg, client))
    return;

  identity = cims_http_authenticate (hub, msg);
  if (identity == NULL) {
    count_response (hub, SOUP_STATUS_UNAUTHORIZED);
    return;
  }

  camera = find_camera (hub, msg, camera_id);
  if (camera == NULL || !check_session_caps (hub, msg, identity, camera))
    return;

  incident_number = soup_message_headers_get_one (soup_server_message_get_request_headers (msg),
                                                  "X-Incident-Number");
  cims_hub_access_decide (hub, identity, camera, incident_number, g_get_real_time (), &decision);
  if (!decision.allowed) {
    g_message ("camera=%s: denied %s of %s (%s): %s", camera->id, identity->subject,
               identity->jurisdiction, decision.rule_name, decision.reason);
    cims_hub_audit_denied (hub, identity, camera, incident_number, client_address, decision.rule_name);
    reply_forbidden (hub, msg, &decision);
    return;
  }
  if (!check_token_time_left (hub, msg, identity))
    return;

  offer = parse_offer (hub, msg);
  if (offer == NULL)
    return;
  /* Last, so that every admitted request becomes a WhepRequest, whose free
   * settles its descriptors. */
  if (!check_open_files (hub, msg, camera, &n_fds_needed)) {
    cims_sdp_offer_free (offer);
    return;
  }

  request = g_new0 (WhepRequest, 1);
  request->hub = hub;
  request->msg = g_object_ref (msg);
  request->identity = g_steal_pointer (&identity);
  request->camera = camera;
  request->offer = offer;
  request->decision = decision;
  memset (&decision, 0, sizeof decision);
  request->incident_number = g_strdup (incident_number);
  request->client = g_strdup (client);
  request->client_address = g_steal_pointer (&client_address);
  request->n_fds_needed = n_fds_needed;

  source = cims_hub_source_acquire (hub, camera);
  soup_server_message_pause (msg);
  cims_source_when_ready (source, source_ready_cb, request);
}

/* Lets only the viewer who opened a session end it through its WHEP URL,
 * with the Bearer token of the same person. Session ids appear in logs,
 * audit records and the admin API, and an auditor who can read them must
 * not be able to end sessions. Administrators end sessions through the
 * admin API, which records who did it. */
static gboolean
check_session_owner (CimsHub *hub, SoupServerMessage *msg, const char *session_id)
{
  g_autoptr (CimsAuthIdentity) identity = cims_http_authenticate (hub, msg);
  CimsViewerSession *session;
  const CimsAuthIdentity *owner;

  if (identity == NULL)
    return FALSE;

  session = g_hash_table_lookup (hub->sessions, session_id);
  if (session == NULL) {
    cims_http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "unknown-session", "No such WHEP session.");
    return FALSE;
  }

  owner = cims_viewer_session_get_identity (session);
  if (g_str_equal (owner->issuer, identity->issuer) && g_str_equal (owner->subject, identity->subject))
    return TRUE;

  cims_session_message (session, "%s of %s may not end another viewer's session; refused",
                        identity->subject, identity->jurisdiction);
  cims_http_reply_error (msg, SOUP_STATUS_FORBIDDEN, "not-session-owner",
                         "Only the viewer who opened this WHEP session may end it here; an "
                         "administrator can end it with DELETE /api/v1/sessions/ID.");
  return FALSE;
}

static void
handle_session (CimsHub *hub, SoupServerMessage *msg, const char *session_id)
{
  const char *method = soup_server_message_get_method (msg);

  if (g_str_equal (method, "PATCH")) {
    /* Trickle ICE and ICE restarts are not supported: the offer carries
     * every candidate, as WHEP allows. */
    soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Allow", "DELETE");
    cims_http_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method-not-allowed",
                           "This hub does not support trickle ICE; send every candidate in the offer.");
    return;
  }

  if (!g_str_equal (method, "DELETE")) {
    cims_http_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method-not-allowed",
                           "A WHEP session resource supports DELETE only.");
    return;
  }

  if (!check_session_owner (hub, msg, session_id))
    return;

  cims_hub_session_end (hub, session_id, "viewer-left");
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
}

void
cims_whep_handle (CimsHub *hub, SoupServerMessage *msg, const char *path, GHashTable *query)
{
  const char *method = soup_server_message_get_method (msg);

  if (g_str_has_prefix (path, "/whep/cameras/")) {
    const char *camera_id = path + strlen ("/whep/cameras/");

    if (!g_str_equal (method, "POST")) {
      cims_http_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method-not-allowed",
                             "A WHEP endpoint accepts POST with an SDP offer.");
      return;
    }
    handle_post (hub, msg, camera_id, query);
    return;
  }

  if (g_str_has_prefix (path, "/whep/sessions/")) {
    handle_session (hub, msg, path + strlen ("/whep/sessions/"));
    return;
  }

  cims_http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not-found", "No such WHEP resource.");
}
