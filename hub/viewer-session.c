/* SPDX-License-Identifier: Apache-2.0 */
/* One WHEP viewer's lifecycle: identity, its ICE agent (libnice), SDP
 * answer, and teardown. The DTLS-SRTP handshake is viewer-dtls.c, the send
 * path and RTCP viewer-media.c, admission whep.c. */
#include "hub/viewer-session-private.h"

#include <string.h>

#include <openssl/rand.h>

/* How long a viewer has, from the start of negotiation, to complete ICE and
 * DTLS. Between reachable candidates both take well under a second on a LAN
 * (an estimate from the browser tests on loopback). */
#define CONNECT_TIMEOUT_MS 15000

/* ---- identity and lifetime --------------------------------------------- */

static char *
random_hex (gsize n_bytes)
{
  guint8 bytes[32];
  GString *text = g_string_new (NULL);

  g_assert (n_bytes <= sizeof bytes);
  if (RAND_bytes (bytes, (int) n_bytes) != 1)
    g_error ("RAND_bytes() failed: the system has no usable random source");

  for (gsize i = 0; i < n_bytes; i++)
    g_string_append_printf (text, "%02x", bytes[i]);

  return g_string_free (text, FALSE);
}

guint32
cims_viewer_session_random_u32 (void)
{
  guint32 value;

  if (RAND_bytes ((guint8 *) &value, sizeof value) != 1)
    g_error ("RAND_bytes() failed: the system has no usable random source");

  return value;
}

CimsViewerSession *
cims_viewer_session_new (CimsHub *hub, const CimsViewerSessionInfo *info)
{
  CimsViewerSession *session = g_new0 (CimsViewerSession, 1);

  g_atomic_ref_count_init (&session->ref_count);
  session->hub = hub;
  session->id = random_hex (16);
  session->cname = random_hex (8);
  session->camera_id = g_strdup (info->camera_id);
  session->owner_jurisdiction = g_strdup (info->owner_jurisdiction);
  session->identity = info->identity;
  session->jurisdiction = g_strdup (info->identity->jurisdiction);
  session->subject = g_strdup (info->identity->subject);
  session->user_name = g_strdup (info->identity->name);
  session->client = g_strdup (info->client ? info->client : info->identity->client);
  session->remote_address = g_strdup (info->remote_address);
  session->incident_number = g_strdup (info->incident_number);
  cims_viewer_session_set_decision (session, info->decision);
  session->started_real_us = g_get_real_time ();
  session->started_us = g_get_monotonic_time ();
  return session;
}

CimsViewerSession *
cims_viewer_session_ref (CimsViewerSession *session)
{
  g_atomic_ref_count_inc (&session->ref_count);
  return session;
}

void
cims_viewer_session_unref (CimsViewerSession *session)
{
  if (!g_atomic_ref_count_dec (&session->ref_count))
    return;

  /* The media thread released the agent, SSL and SRTP before the last ref. */
  g_assert (session->agent == NULL);
  g_clear_pointer (&session->remote_candidates, g_ptr_array_unref);
  g_free (session->remote_ufrag);
  g_free (session->remote_pwd);
  g_free (session->answer_fmtp);
  g_free (session->codec.fmtp);
  g_free (session->fingerprint_algorithm);
  g_free (session->id);
  g_free (session->cname);
  g_free (session->camera_id);
  g_free (session->owner_jurisdiction);
  g_free (session->jurisdiction);
  g_free (session->subject);
  g_free (session->user_name);
  g_free (session->client);
  g_free (session->remote_address);
  g_free (session->rule_name);
  g_free (session->end_reason);
  g_free (session->grant_id);
  g_free (session->incident_id);
  g_free (session->incident_number);
  g_clear_pointer (&session->identity, cims_auth_identity_free);
  g_free (session);
}

const char *
cims_viewer_session_get_id (CimsViewerSession *session)
{
  return session->id;
}

const char *
cims_viewer_session_get_camera_id (CimsViewerSession *session)
{
  return session->camera_id;
}

const char *
cims_viewer_session_get_jurisdiction (CimsViewerSession *session)
{
  return session->jurisdiction;
}

gint64
cims_viewer_session_get_allowed_until (CimsViewerSession *session)
{
  return session->allowed_until_us;
}

const CimsAuthIdentity *
cims_viewer_session_get_identity (CimsViewerSession *session)
{
  return session->identity;
}

const char *
cims_viewer_session_get_incident_number (CimsViewerSession *session)
{
  return session->incident_number;
}

const char *
cims_viewer_session_get_grant_id (CimsViewerSession *session)
{
  return session->grant_id;
}

const char *
cims_viewer_session_get_incident_id (CimsViewerSession *session)
{
  return session->incident_id;
}

const char *
cims_viewer_session_get_rule_name (CimsViewerSession *session)
{
  return session->rule_name;
}

const char *
cims_viewer_session_get_remote_address (CimsViewerSession *session)
{
  return session->remote_address;
}

const char *
cims_viewer_session_get_client (CimsViewerSession *session)
{
  return session->client;
}

CimsSource *
cims_viewer_session_get_source (CimsViewerSession *session)
{
  return session->source;
}

const char *
cims_viewer_session_get_camera_owner (CimsViewerSession *session)
{
  return session->owner_jurisdiction;
}

gint64
cims_viewer_session_get_started_real_us (CimsViewerSession *session)
{
  return session->started_real_us;
}

guint64
cims_viewer_session_get_bytes_sent (CimsViewerSession *session)
{
  return atomic_load (&session->bytes_sent);
}

void
cims_viewer_session_set_decision (CimsViewerSession *session, const CimsAuthDecision *decision)
{
  g_free (session->rule_name);
  session->rule_name = g_strdup (decision->rule_name);
  g_free (session->grant_id);
  session->grant_id = g_strdup (decision->grant_id);
  g_free (session->incident_id);
  session->incident_id = g_strdup (decision->incident_id);
  session->allowed_until_us = decision->allowed_until_us;
}

static char *
format_real_time (gint64 real_us)
{
  if (real_us == G_MAXINT64)
    return NULL;

  return cims_auth_time_text (real_us);
}

JsonObject *
cims_viewer_session_to_json (CimsViewerSession *session)
{
  JsonObject *object = json_object_new ();
  g_autofree char *started = format_real_time (session->started_real_us);
  g_autofree char *until = format_real_time (session->allowed_until_us);

  json_object_set_string_member (object, "id", session->id);
  json_object_set_string_member (object, "camera_id", session->camera_id);
  json_object_set_string_member (object, "camera_owner", session->owner_jurisdiction);
  json_object_set_string_member (object, "viewer_subject", session->subject);
  json_object_set_string_member (object, "viewer_name", session->user_name);
  json_object_set_string_member (object, "viewer_jurisdiction", session->jurisdiction);
  json_object_set_string_member (object, "viewer_address", session->remote_address);
  json_object_set_string_member (object, "client", session->client);
  json_object_set_string_member (object, "allowed_by", session->rule_name);
  json_object_set_string_member (object, "grant_id", session->grant_id);
  json_object_set_string_member (object, "incident_id", session->incident_id);
  json_object_set_string_member (object, "incident_number", session->incident_number);
  json_object_set_string_member (object, "started_at", started);
  json_object_set_string_member (object, "allowed_until", until);
  json_object_set_int_member (object, "bytes_sent",
                              (gint64) atomic_load (&session->bytes_sent));
  json_object_set_int_member (object, "packets_sent",
                              (gint64) atomic_load (&session->packets_sent));
  return object;
}

/* ---- ICE ------------------------------------------------------------------- */

/* RFC 7983 demultiplexing of what arrives on the ICE component: STUN is
 * consumed by libnice, 20-63 is DTLS, 128-191 is RTP or RTCP. */
static void
ice_recv_cb (NiceAgent *agent, guint stream_id, guint component_id, guint size,
             gchar *buffer, gpointer user_data)
{
  CimsViewerSession *session = user_data;
  const guint8 *data = (const guint8 *) buffer;

  if (size < 2 || atomic_load (&session->is_closed))
    return;

  if (data[0] >= 20 && data[0] <= 63)
    cims_viewer_session_handle_dtls (session, data, size);
  else if (data[0] >= 128 && data[0] <= 191 && data[1] >= 192 && data[1] <= 223)
    cims_viewer_session_handle_rtcp (session, data, size);
}

static void
ice_state_changed_cb (NiceAgent *agent, guint stream_id, guint component_id, guint state,
                      gpointer user_data)
{
  CimsViewerSession *session = user_data;

  cims_session_debug (session, "ICE state %s", nice_component_state_to_string (state));

  if (state == NICE_COMPONENT_STATE_READY && session->srtp_out != NULL)
    cims_viewer_session_update_send_path (session);

  if (state == NICE_COMPONENT_STATE_CONNECTED || state == NICE_COMPONENT_STATE_READY) {
    if (session->role == CIMS_DTLS_SETUP_ACTIVE)
      cims_viewer_session_dtls_start (session);
    return;
  }

  if (state == NICE_COMPONENT_STATE_FAILED) {
    CIMS_METRIC_ADD (session->hub, ice_failures, 1);
    cims_session_message (session, "ICE %s; ending the session",
                          session->dtls_done ? "consent expired" : "connectivity checks failed");
    cims_viewer_session_fail (session, session->dtls_done ? "viewer-timed-out" : "ice-failed");
  }
}

/* ---- negotiation ------------------------------------------------------------ */

typedef struct {
  CimsViewerSession *session;
  char *answer;
  GError *error;
} AnswerDelivery;

static gboolean
answer_deliver_cb (gpointer user_data)
{
  AnswerDelivery *delivery = user_data;
  CimsViewerSession *session = delivery->session;

  session->answer_func (session, delivery->answer, delivery->error, session->answer_data);

  g_free (delivery->answer);
  g_clear_error (&delivery->error);
  cims_viewer_session_unref (session);
  g_free (delivery);
  return G_SOURCE_REMOVE;
}

static void
answer_deliver (CimsViewerSession *session, char *answer, GError *error)
{
  AnswerDelivery *delivery = g_new0 (AnswerDelivery, 1);

  if (atomic_exchange (&session->answer_sent, 1)) {
    g_free (answer);
    g_clear_error (&error);
    g_free (delivery);
    return;
  }

  delivery->session = cims_viewer_session_ref (session);
  delivery->answer = answer;
  delivery->error = error;
  g_main_context_invoke (session->hub->main_context, answer_deliver_cb, delivery);
}

static GPtrArray *
local_candidate_lines (CimsViewerSession *session)
{
  GPtrArray *lines = g_ptr_array_new_with_free_func (g_free);
  GSList *candidates = nice_agent_get_local_candidates (session->agent, session->stream_id, 1);

  for (GSList *l = candidates; l != NULL; l = l->next) {
    g_autofree char *line = nice_agent_generate_local_candidate_sdp (session->agent, l->data);
    const char *text = g_str_has_prefix (line, "a=") ? line + 2 : line;
    g_ptr_array_add (lines, g_strdup (text));
  }

  g_slist_free_full (candidates, (GDestroyNotify) nice_candidate_free);
  return lines;
}

static void
remote_candidates_set (CimsViewerSession *session)
{
  GSList *all = NULL;

  for (guint i = 0; session->remote_candidates && i < session->remote_candidates->len; i++) {
    const char *line = g_ptr_array_index (session->remote_candidates, i);
    g_autofree char *sdp = g_strdup_printf ("a=%s", line);
    NiceCandidate *candidate = nice_agent_parse_remote_candidate_sdp (session->agent,
                                                                       session->stream_id, sdp);
    if (candidate != NULL)
      all = g_slist_append (all, candidate);
  }

  if (all != NULL)
    nice_agent_set_remote_candidates (session->agent, session->stream_id, 1, all);
  g_slist_free_full (all, (GDestroyNotify) nice_candidate_free);
  /* libnice attached its check timer, possibly outside the group's pass,
   * where the worker loop would not see it until its next resync. */
  g_main_context_wakeup (session->group_context);
}

static void
gathering_done_cb (NiceAgent *agent, guint stream_id, gpointer user_data)
{
  CimsViewerSession *session = user_data;
  g_autofree char *ufrag = NULL;
  g_autofree char *pwd = NULL;
  g_autoptr (GPtrArray) candidates = NULL;
  CimsSdpAnswerParams params = { 0 };
  g_autofree char *stream_label = NULL;

  if (atomic_load (&session->answer_sent) || atomic_load (&session->is_closed))
    return;

  nice_agent_get_local_credentials (agent, stream_id, &ufrag, &pwd);
  candidates = local_candidate_lines (session);
  if (candidates->len == 0) {
    answer_deliver (session, NULL, g_error_new (CIMS_HUB_ERROR, CIMS_HUB_ERROR_ICE,
                                                "No ICE candidate could be gathered on the "
                                                "configured addresses and UDP ports"));
    return;
  }

  stream_label = g_strdup_printf ("cimshub-%s", session->camera_id);
  params.ice_ufrag = ufrag;
  params.ice_pwd = pwd;
  params.fingerprint_sha256 = session->hub->dtls->fingerprint_sha256;
  params.setup = session->role;
  params.codec = &session->codec;
  params.fmtp = session->answer_fmtp;
  params.ssrc = session->ssrc;
  params.cname = session->cname;
  params.stream_id = stream_label;
  params.track_id = session->camera_id;
  params.local_candidates = candidates;
  params.session_version = 1;

  remote_candidates_set (session);
  answer_deliver (session, cims_sdp_answer_build (session->offer, &params), NULL);
  session->offer = NULL;
}

static void
agent_configure (CimsViewerSession *session)
{
  const CimsConfig *config = session->hub->config;

  g_object_set (session->agent, "controlling-mode", FALSE, "ice-tcp", FALSE, NULL);
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (session->agent), "upnp"))
    g_object_set (session->agent, "upnp", FALSE, NULL);

  /* Only the configured addresses become host candidates: libnice would
   * otherwise announce every interface but loopback. */
  for (guint i = 0; config->public_addresses && config->public_addresses[i]; i++) {
    NiceAddress address;

    nice_address_init (&address);
    if (nice_address_set_from_string (&address, config->public_addresses[i]))
      nice_agent_add_local_address (session->agent, &address);
  }
}

/* Ends a session whose viewer never completed ICE and DTLS. libnice fails
 * a stream whose candidates cannot be reached, but one with no usable
 * candidate at all would wait for ever, holding an ICE port and counting
 * as a live session. */
static gboolean
connect_timeout_cb (gpointer user_data)
{
  CimsViewerSession *session = user_data;

  session->connect_timer = NULL;
  if (session->dtls_done || atomic_load (&session->is_closed))
    return G_SOURCE_REMOVE;

  CIMS_METRIC_ADD (session->hub, ice_failures, 1);
  cims_session_message (session, "no ICE and DTLS connection within %d s of the offer, which named %u "
                        "candidates; ending the session", CONNECT_TIMEOUT_MS / 1000,
                        session->remote_candidates ? session->remote_candidates->len : 0);
  cims_viewer_session_fail (session, "ice-failed");
  return G_SOURCE_REMOVE;
}

static void
connect_timer_start (CimsViewerSession *session)
{
  session->connect_timer = g_timeout_source_new (CONNECT_TIMEOUT_MS);
  g_source_set_callback (session->connect_timer, connect_timeout_cb, session, NULL);
  g_source_attach (session->connect_timer, session->group_context);
  /* The context holds the only reference; the field is cleared before it ends. */
  g_source_unref (session->connect_timer);
}

static gboolean
negotiate_on_media_cb (gpointer user_data)
{
  CimsViewerSession *session = user_data;
  const CimsConfig *config = session->hub->config;

  if (atomic_load (&session->is_closed)) {
    cims_viewer_session_unref (session);
    return G_SOURCE_REMOVE;
  }

  session->group_context = cims_worker_join_group (session->worker);
  session->agent = nice_agent_new_full (session->group_context, NICE_COMPATIBILITY_RFC5245,
                                        NICE_AGENT_OPTION_CONSENT_FRESHNESS);
  agent_configure (session);

  session->stream_id = nice_agent_add_stream (session->agent, 1);
  nice_agent_set_stream_name (session->agent, session->stream_id, "video");
  nice_agent_set_port_range (session->agent, session->stream_id, 1, config->ice_port_min,
                             config->ice_port_max);
  nice_agent_set_remote_credentials (session->agent, session->stream_id, session->remote_ufrag,
                                     session->remote_pwd);

  g_signal_connect (session->agent, "candidate-gathering-done", G_CALLBACK (gathering_done_cb), session);
  g_signal_connect (session->agent, "component-state-changed", G_CALLBACK (ice_state_changed_cb), session);
  nice_agent_attach_recv (session->agent, session->stream_id, 1, session->group_context,
                          ice_recv_cb, session);

  if (session->role == CIMS_DTLS_SETUP_PASSIVE)
    cims_viewer_session_dtls_start (session);
  connect_timer_start (session);

  if (!nice_agent_gather_candidates (session->agent, session->stream_id))
    answer_deliver (session, NULL, g_error_new (CIMS_HUB_ERROR, CIMS_HUB_ERROR_ICE,
                                                "No UDP socket could be opened in the ICE range %u-%u: "
                                                "every port is in use, or the hub is at its open-file limit",
                                                config->ice_port_min, config->ice_port_max));

  cims_viewer_session_unref (session);
  return G_SOURCE_REMOVE;
}

static CimsDtlsSetup
dtls_role_for (CimsDtlsSetup offered)
{
  /* An actpass viewer leaves the choice to us: taking the client role starts
   * the handshake as soon as ICE connects, saving a round trip. */
  return offered == CIMS_DTLS_SETUP_ACTIVE ? CIMS_DTLS_SETUP_PASSIVE : CIMS_DTLS_SETUP_ACTIVE;
}

void
cims_viewer_session_negotiate (CimsViewerSession *session, CimsSource *source,
                               const CimsSdpOffer *offer, const CimsSdpCodec *codec,
                               const char *answer_fmtp,
                               CimsViewerAnswerFunc func, gpointer user_data)
{
  session->source = source;
  session->offer = offer;
  session->codec = *codec;
  session->codec.fmtp = g_strdup (codec->fmtp);
  session->answer_fmtp = g_strdup (answer_fmtp);
  session->answer_func = func;
  session->answer_data = user_data;
  session->role = dtls_role_for (offer->setup);
  session->remote_ufrag = g_strdup (offer->ice_ufrag);
  session->remote_pwd = g_strdup (offer->ice_pwd);
  session->fingerprint_algorithm = g_strdup (offer->fingerprint_algorithm);
  session->fingerprint_size = MIN (offer->fingerprint_size, sizeof session->fingerprint);
  memcpy (session->fingerprint, offer->fingerprint, session->fingerprint_size);
  session->remote_candidates = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; offer->remote_candidates && i < offer->remote_candidates->len; i++)
    g_ptr_array_add (session->remote_candidates, g_strdup (g_ptr_array_index (offer->remote_candidates, i)));

  /* The SSRC is fixed now because the answer announces it. */
  session->ssrc = cims_viewer_session_random_u32 ();

  session->worker = cims_hub_worker_pick (session->hub);
  session->context = cims_worker_get_context (session->worker);
  cims_worker_count_session (session->worker, +1);
  g_main_context_invoke (session->context, negotiate_on_media_cb,
                         cims_viewer_session_ref (session));
}

/* ---- teardown ---------------------------------------------------------------- */

typedef struct {
  CimsViewerSession *session;
  char *reason;
} EndRequest;

static gboolean
end_on_main_cb (gpointer user_data)
{
  EndRequest *request = user_data;

  if (!atomic_load (&request->session->answer_sent))
    answer_deliver (request->session, NULL,
                    g_error_new (CIMS_HUB_ERROR, CIMS_HUB_ERROR_ICE, "The session ended: %s",
                                 request->reason));
  cims_hub_session_end (request->session->hub, request->session->id, request->reason);

  cims_viewer_session_unref (request->session);
  g_free (request->reason);
  g_free (request);
  return G_SOURCE_REMOVE;
}

/* Asks the main context to end this session; media thread. */
void
cims_viewer_session_fail (CimsViewerSession *session, const char *reason)
{
  EndRequest *request = g_new0 (EndRequest, 1);

  request->session = cims_viewer_session_ref (session);
  request->reason = g_strdup (reason);
  g_main_context_invoke (session->hub->main_context, end_on_main_cb, request);
}

static gboolean
teardown_on_media_cb (gpointer user_data)
{
  CimsViewerSession *session = user_data;

  g_clear_pointer (&session->dtls_timer, g_source_destroy);
  g_clear_pointer (&session->connect_timer, g_source_destroy);
  cims_viewer_session_media_stop (session);

  /* A session that ends while the hub gathers its candidates still owes
   * the viewer's POST an SDP answer or an error. */
  if (!atomic_load (&session->answer_sent))
    answer_deliver (session, NULL, g_error_new (CIMS_HUB_ERROR, CIMS_HUB_ERROR_SESSION_ENDED,
                                                "The session ended (%s) before its answer was ready.",
                                                session->end_reason));

  /* close_notify reaches the browser at once. Withdrawing consent and
   * closing the sockets stops media and checks even if it is lost. */
  if (session->ssl != NULL && session->dtls_done)
    SSL_shutdown (session->ssl);

  if (session->agent != NULL) {
    nice_agent_consent_lost (session->agent, session->stream_id, 1);
    nice_agent_remove_stream (session->agent, session->stream_id);
  }

  if (session->feed != NULL)
    cims_worker_unsubscribe (session->worker, g_steal_pointer (&session->feed), session);
  cims_worker_count_session (session->worker, -1);
  g_clear_object (&session->send_socket);
  g_clear_pointer (&session->srtp_out, srtp_dealloc);
  g_clear_pointer (&session->srtp_in, srtp_dealloc);
  g_clear_pointer (&session->ssl, SSL_free);
  g_clear_object (&session->agent);
  if (session->group_context != NULL)
    cims_worker_leave_group (session->worker, g_steal_pointer (&session->group_context));

  cims_viewer_session_unref (session);
  return G_SOURCE_REMOVE;
}

void
cims_viewer_session_close (CimsViewerSession *session, const char *reason)
{
  g_autoptr (GSource) teardown_source = NULL;

  if (atomic_exchange (&session->is_closed, 1))
    return;

  session->end_reason = g_strdup (reason);

  /* From here no worker sends for this session; the worker's teardown
   * unsubscribes it and closes its agent. */

  cims_session_message (session, "session ended (%s) after %.1f s, %" G_GUINT64_FORMAT
                        " packets, %" G_GUINT64_FORMAT " bytes sent",
                        reason, (g_get_monotonic_time () - session->started_us) / 1e6,
                        (guint64) atomic_load (&session->packets_sent),
                        (guint64) atomic_load (&session->bytes_sent));

  if (session->context == NULL) {
    /* Never negotiated: nothing runs on a worker. */
    return;
  }

  /* Always queued, never run in place: a teardown inside a worker's feed
   * drain would unsubscribe from the feed that the drain is walking. At
   * default priority, so it runs before the worker's quit at stop. */
  teardown_source = g_idle_source_new ();
  g_source_set_priority (teardown_source, G_PRIORITY_DEFAULT);
  g_source_set_callback (teardown_source, teardown_on_media_cb, cims_viewer_session_ref (session), NULL);
  g_source_attach (teardown_source, session->context);
}
