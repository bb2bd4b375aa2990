/* SPDX-License-Identifier: Apache-2.0 */
/* One WHEP viewer: its ICE agent (libnice), DTLS-SRTP handshake (OpenSSL),
 * SRTP contexts (libsrtp), per-viewer RTP rewriting, RTCP sender reports and
 * feedback. Admission and the HTTP side are in whep.c; packets come from
 * source.c. */
#include "hub/hub-runtime.h"

#include <string.h>

#include <agent.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <srtp2/srtp.h>

#define DTLS_MTU 1200
#define DTLS_HANDSHAKE_TIMEOUT_US (10 * G_USEC_PER_SEC)
#define DTLS_TIMER_INTERVAL_MS 50
#define SENDER_REPORT_INTERVAL_MS 1000
/* A PLI resends the whole keyframe cache, so one viewer may trigger that at
 * most twice a second. */
#define PLI_MIN_INTERVAL_US (500 * 1000)
#define SRTP_MAX_OVERHEAD 32

struct _CimsViewerSession {
  gatomicrefcount ref_count;
  CimsHub *hub;

  char *id;
  char *camera_id;
  char *owner_jurisdiction;
  char *jurisdiction;
  char *subject;
  char *user_name;
  char *client;
  char *remote_address;
  char *rule_name;
  char *grant_id;
  char *incident_id;
  char *incident_number;
  CimsAuthIdentity *identity;
  char *cname;
  guint32 ssrc;                 /* announced in the answer */
  gint64 allowed_until_us;
  gint64 started_real_us;
  gint64 started_us;

  /* Media thread only. */
  NiceAgent *agent;
  guint stream_id;
  SSL *ssl;
  CimsDtlsSetup role;
  gboolean dtls_done;
  gint64 dtls_started_us;
  char *fingerprint_algorithm;
  guint8 fingerprint[64];
  gsize fingerprint_size;
  srtp_t srtp_in;
  GSource *dtls_timer;
  GSource *report_timer;
  GPtrArray *remote_candidates;
  char *remote_ufrag;
  char *remote_pwd;
  const CimsSdpOffer *offer;    /* borrowed until the answer is delivered */
  CimsSdpCodec codec;
  char *answer_fmtp;
  CimsViewerAnswerFunc answer_func;
  gpointer answer_data;
  gboolean answer_sent;

  /* Send path: rewriter and outbound SRTP, used by the source's streaming
   * thread and the media thread. */
  GMutex send_lock;
  srtp_t srtp_out;
  CimsRtpRewriter rewriter;
  gboolean waiting_for_keyframe;
  gint64 last_snapshot_us;

  CimsSource *source;
  atomic_int is_media_ready;
  atomic_int wants_keyframe;
  atomic_int is_closed;
  atomic_uint_fast64_t bytes_sent;
  atomic_uint_fast64_t packets_sent;
};

static void session_fail (CimsViewerSession *session, const char *reason);

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

static guint32
random_u32 (void)
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
  g_mutex_init (&session->send_lock);
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
  g_mutex_clear (&session->send_lock);
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
  g_autoptr (GDateTime) time = NULL;

  if (real_us == G_MAXINT64)
    return NULL;

  time = g_date_time_new_from_unix_utc (real_us / G_USEC_PER_SEC);
  return time ? g_date_time_format_iso8601 (time) : NULL;
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

/* ---- sending ------------------------------------------------------------ */

/* Protects and sends one rewritten packet in @buffer (@size bytes of RTP,
 * with room for the SRTP trailer). Send lock held. */
static void
send_protected (CimsViewerSession *session, guint8 *buffer, gsize size)
{
  int length = (int) size;
  int sent;

  if (srtp_protect (session->srtp_out, buffer, &length) != srtp_err_status_ok) {
    CIMS_METRIC_ADD (session->hub, packets_dropped, 1);
    return;
  }

  sent = nice_agent_send (session->agent, session->stream_id, 1, (guint) length, (const char *) buffer);
  if (sent < 0) {
    CIMS_METRIC_ADD (session->hub, packets_dropped, 1);
    return;
  }

  atomic_fetch_add_explicit (&session->packets_sent, 1, memory_order_relaxed);
  atomic_fetch_add_explicit (&session->bytes_sent, (guint64) length, memory_order_relaxed);
  CIMS_METRIC_ADD (session->hub, packets_relayed, 1);
  CIMS_METRIC_ADD (session->hub, bytes_relayed, (guint64) length);
}

static void
send_packet_locked (CimsViewerSession *session, const CimsRtpPacket *packet)
{
  guint8 buffer[CIMS_RTP_MAX_PACKET + SRTP_MAX_OVERHEAD];
  gsize size;

  size = cims_rtp_rewriter_write (&session->rewriter, packet, buffer, CIMS_RTP_MAX_PACKET);
  if (size == 0) {
    CIMS_METRIC_ADD (session->hub, packets_dropped, 1);
    return;
  }

  send_protected (session, buffer, size);
}

static void
send_snapshot_locked (CimsViewerSession *session, GPtrArray *snapshot)
{
  cims_rtp_rewriter_begin_catch_up (&session->rewriter);
  for (guint i = 0; i < snapshot->len; i++)
    send_packet_locked (session, g_ptr_array_index (snapshot, i));
  cims_rtp_rewriter_end_catch_up (&session->rewriter);

  session->waiting_for_keyframe = FALSE;
  session->last_snapshot_us = g_get_monotonic_time ();
  CIMS_METRIC_ADD (session->hub, keyframe_snapshots_sent, 1);
}

static gboolean
session_takes_pli (CimsViewerSession *session)
{
  if (!atomic_exchange (&session->wants_keyframe, 0))
    return FALSE;

  return g_get_monotonic_time () - session->last_snapshot_us >= PLI_MIN_INTERVAL_US;
}

void
cims_viewer_session_deliver (CimsViewerSession *session, CimsSource *source,
                             CimsKeyframeCache *cache, CimsRtpPacket *packet,
                             gboolean starts_keyframe)
{
  gboolean wants_snapshot;

  if (!atomic_load (&session->is_media_ready) || atomic_load (&session->is_closed))
    return;

  g_mutex_lock (&session->send_lock);

  wants_snapshot = session->waiting_for_keyframe || session_takes_pli (session);
  if (!wants_snapshot) {
    send_packet_locked (session, packet);
  } else if (cims_keyframe_cache_has_keyframe (cache)) {
    g_autoptr (GPtrArray) snapshot = cims_keyframe_cache_snapshot (cache);
    send_snapshot_locked (session, snapshot);
  } else if (!session->waiting_for_keyframe) {
    /* A PLI with no keyframe cached: the next keyframe reaches this viewer
     * in the normal stream. */
    send_packet_locked (session, packet);
  }

  g_mutex_unlock (&session->send_lock);
}

/* ---- RTCP ---------------------------------------------------------------- */

static guint64
ntp_time_now (void)
{
  /* NTP counts from 1900, Unix from 1970: 2208988800 s apart. */
  gint64 now_us = g_get_real_time ();
  guint64 seconds = (guint64) (now_us / G_USEC_PER_SEC) + G_GUINT64_CONSTANT (2208988800);
  guint64 fraction = ((guint64) (now_us % G_USEC_PER_SEC) << 32) / G_USEC_PER_SEC;

  return (seconds << 32) | fraction;
}

static gboolean
report_timer_cb (gpointer user_data)
{
  CimsViewerSession *session = user_data;
  guint8 buffer[256 + SRTP_MAX_OVERHEAD];
  CimsRtpRewriter *rewriter = &session->rewriter;
  gsize size;
  int length;
  guint32 rtp_ts;

  g_mutex_lock (&session->send_lock);
  if (session->srtp_out == NULL || !rewriter->started) {
    g_mutex_unlock (&session->send_lock);
    return G_SOURCE_CONTINUE;
  }

  /* The RTP time now, extrapolated from the last packet sent. */
  rtp_ts = rewriter->last_out_ts
           + (guint32) ((g_get_monotonic_time () - rewriter->last_out_us) * rewriter->clock_rate
                        / G_USEC_PER_SEC);
  size = cims_rtcp_build_sender_report (buffer, 256, rewriter->ssrc, ntp_time_now (), rtp_ts,
                                        (guint32) rewriter->packets_sent,
                                        (guint32) rewriter->octets_sent, session->cname);
  length = (int) size;
  if (size > 0 && srtp_protect_rtcp (session->srtp_out, buffer, &length) == srtp_err_status_ok)
    nice_agent_send (session->agent, session->stream_id, 1, (guint) length, (const char *) buffer);

  g_mutex_unlock (&session->send_lock);
  return G_SOURCE_CONTINUE;
}

static void
retransmit (CimsViewerSession *session, guint16 out_seq)
{
  guint8 buffer[CIMS_RTP_MAX_PACKET + SRTP_MAX_OVERHEAD];
  g_autoptr (CimsRtpPacket) packet = NULL;
  CimsRtpRewriter copy;
  guint16 src_seq;
  gsize size;

  g_mutex_lock (&session->send_lock);
  if (!cims_rtp_rewriter_map_seq_to_source (&session->rewriter, out_seq, &src_seq)) {
    g_mutex_unlock (&session->send_lock);
    return;
  }
  g_mutex_unlock (&session->send_lock);

  packet = cims_source_lookup_packet (session->source, src_seq);
  if (packet == NULL)
    return;

  /* A copy of the rewriter maps the old packet to the sequence number and
   * timestamp it had, without moving the live stream's state. */
  g_mutex_lock (&session->send_lock);
  copy = session->rewriter;
  size = cims_rtp_rewriter_write (&copy, packet, buffer, CIMS_RTP_MAX_PACKET);
  if (size > 0) {
    send_protected (session, buffer, size);
    CIMS_METRIC_ADD (session->hub, retransmissions_sent, 1);
  }
  g_mutex_unlock (&session->send_lock);
}

static void
handle_rtcp (CimsViewerSession *session, const guint8 *data, gsize size)
{
  guint8 buffer[CIMS_RTP_MAX_PACKET];
  g_autoptr (GArray) nacked = g_array_new (FALSE, FALSE, sizeof (guint16));
  CimsRtcpSummary summary = { .nacked_seqs = nacked };
  int length = (int) size;

  if (size > sizeof buffer || session->srtp_in == NULL)
    return;

  memcpy (buffer, data, size);
  /* Replayed or damaged SRTCP is routine on lossy links: debug only. */
  if (srtp_unprotect_rtcp (session->srtp_in, buffer, &length) != srtp_err_status_ok) {
    cims_session_debug (session, "SRTCP packet of %" G_GSIZE_FORMAT " bytes failed to unprotect", size);
    return;
  }

  cims_rtcp_parse_compound (buffer, (gsize) length, session->ssrc, &summary);

  if (summary.feedback & (CIMS_RTCP_FEEDBACK_PLI | CIMS_RTCP_FEEDBACK_FIR)) {
    CIMS_METRIC_ADD (session->hub, plis_received, 1);
    atomic_store (&session->wants_keyframe, 1);
  }

  if (summary.feedback & CIMS_RTCP_FEEDBACK_NACK) {
    CIMS_METRIC_ADD (session->hub, nacks_received, 1);
    for (guint i = 0; i < nacked->len; i++)
      retransmit (session, g_array_index (nacked, guint16, i));
  }
}

/* ---- DTLS-SRTP ------------------------------------------------------------- */

/* A BIO that sends each DTLS record OpenSSL writes as one ICE datagram, so
 * flights keep their datagram boundaries. Reads come from a memory BIO. */
static int
dtls_bio_write (BIO *bio, const char *data, int size)
{
  CimsViewerSession *session = BIO_get_data (bio);

  if (session == NULL || session->agent == NULL || size <= 0)
    return size;

  nice_agent_send (session->agent, session->stream_id, 1, (guint) size, data);
  return size;
}

static long
dtls_bio_ctrl (BIO *bio, int cmd, long num, void *ptr)
{
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_DGRAM_QUERY_MTU:
    case BIO_CTRL_DGRAM_GET_FALLBACK_MTU:
      return DTLS_MTU;
    default:
      return 0;
  }
}

static int
dtls_bio_create (BIO *bio)
{
  BIO_set_init (bio, 1);
  return 1;
}

static BIO_METHOD *
dtls_bio_method (void)
{
  static gsize method;

  if (g_once_init_enter (&method)) {
    BIO_METHOD *created = BIO_meth_new (BIO_TYPE_SOURCE_SINK | BIO_get_new_index (), "cims-ice");
    BIO_meth_set_write (created, dtls_bio_write);
    BIO_meth_set_ctrl (created, dtls_bio_ctrl);
    BIO_meth_set_create (created, dtls_bio_create);
    g_once_init_leave (&method, (gsize) created);
  }

  return (BIO_METHOD *) method;
}

static gboolean
dtls_create (CimsViewerSession *session)
{
  BIO *read_bio;
  BIO *write_bio;

  session->ssl = SSL_new (session->hub->dtls->ssl_ctx);
  if (session->ssl == NULL)
    return FALSE;

  read_bio = BIO_new (BIO_s_mem ());
  BIO_set_mem_eof_return (read_bio, -1);
  write_bio = BIO_new (dtls_bio_method ());
  BIO_set_data (write_bio, session);
  SSL_set_bio (session->ssl, read_bio, write_bio);

  SSL_set_options (session->ssl, SSL_OP_NO_QUERY_MTU);
  DTLS_set_link_mtu (session->ssl, DTLS_MTU);

  if (session->role == CIMS_DTLS_SETUP_ACTIVE)
    SSL_set_connect_state (session->ssl);
  else
    SSL_set_accept_state (session->ssl);

  session->dtls_started_us = g_get_monotonic_time ();
  return TRUE;
}

static gboolean
dtls_peer_matches_fingerprint (CimsViewerSession *session)
{
  const EVP_MD *digest_type = NULL;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  X509 *peer;
  gboolean matches;

  if (g_strcmp0 (session->fingerprint_algorithm, "sha-256") == 0)
    digest_type = EVP_sha256 ();
  else if (g_strcmp0 (session->fingerprint_algorithm, "sha-384") == 0)
    digest_type = EVP_sha384 ();
  else if (g_strcmp0 (session->fingerprint_algorithm, "sha-512") == 0)
    digest_type = EVP_sha512 ();
  if (digest_type == NULL)
    return FALSE;

  peer = SSL_get1_peer_certificate (session->ssl);
  if (peer == NULL)
    return FALSE;

  X509_digest (peer, digest_type, digest, &digest_size);
  X509_free (peer);

  matches = digest_size == session->fingerprint_size
            && CRYPTO_memcmp (digest, session->fingerprint, digest_size) == 0;
  return matches;
}

static gboolean
srtp_policy_for (guint64 profile_id, srtp_policy_t *policy, gsize *key_size, gsize *salt_size)
{
  memset (policy, 0, sizeof *policy);

  if (profile_id == SRTP_AEAD_AES_128_GCM) {
    srtp_crypto_policy_set_aes_gcm_128_16_auth (&policy->rtp);
    srtp_crypto_policy_set_aes_gcm_128_16_auth (&policy->rtcp);
    *key_size = 16;
    *salt_size = 12;
    return TRUE;
  }

  if (profile_id == SRTP_AES128_CM_SHA1_80) {
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80 (&policy->rtp);
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80 (&policy->rtcp);
    *key_size = 16;
    *salt_size = 14;
    return TRUE;
  }

  return FALSE;
}

/* Derives both directions' SRTP keys from the finished handshake
 * (RFC 5764 section 4.2: client key, server key, client salt, server salt). */
static gboolean
srtp_start (CimsViewerSession *session)
{
  SRTP_PROTECTION_PROFILE *profile = SSL_get_selected_srtp_profile (session->ssl);
  guint8 material[2 * (16 + 14)];
  guint8 local_key[16 + 14];
  guint8 remote_key[16 + 14];
  srtp_policy_t out_policy;
  srtp_policy_t in_policy;
  gsize key_size = 0;
  gsize salt_size = 0;
  gboolean is_client = session->role == CIMS_DTLS_SETUP_ACTIVE;
  gboolean ok = FALSE;

  if (profile == NULL || !srtp_policy_for (profile->id, &out_policy, &key_size, &salt_size))
    return FALSE;
  srtp_policy_for (profile->id, &in_policy, &key_size, &salt_size);

  if (SSL_export_keying_material (session->ssl, material, 2 * (key_size + salt_size),
                                  "EXTRACTOR-dtls_srtp", 19, NULL, 0, 0) != 1)
    goto out;

  memcpy (local_key, material + (is_client ? 0 : key_size), key_size);
  memcpy (local_key + key_size, material + 2 * key_size + (is_client ? 0 : salt_size), salt_size);
  memcpy (remote_key, material + (is_client ? key_size : 0), key_size);
  memcpy (remote_key + key_size, material + 2 * key_size + (is_client ? salt_size : 0), salt_size);

  out_policy.ssrc.type = ssrc_any_outbound;
  out_policy.key = local_key;
  /* Retransmissions after a NACK resend a sequence number already used. */
  out_policy.allow_repeat_tx = 1;
  in_policy.ssrc.type = ssrc_any_inbound;
  in_policy.key = remote_key;

  g_mutex_lock (&session->send_lock);
  ok = srtp_create (&session->srtp_out, &out_policy) == srtp_err_status_ok;
  g_mutex_unlock (&session->send_lock);
  ok = ok && srtp_create (&session->srtp_in, &in_policy) == srtp_err_status_ok;

  cims_session_message (session, "DTLS-SRTP established with %s as DTLS %s",
                        profile->name, is_client ? "client" : "server");

out:
  OPENSSL_cleanse (material, sizeof material);
  OPENSSL_cleanse (local_key, sizeof local_key);
  OPENSSL_cleanse (remote_key, sizeof remote_key);
  return ok;
}

static void
media_start (CimsViewerSession *session)
{
  g_mutex_lock (&session->send_lock);
  cims_rtp_rewriter_init (&session->rewriter, session->ssrc, session->codec.payload_type,
                          session->codec.clock_rate ? session->codec.clock_rate : 90000,
                          (guint16) random_u32 (), random_u32 ());
  session->waiting_for_keyframe = TRUE;
  g_mutex_unlock (&session->send_lock);

  atomic_store (&session->is_media_ready, 1);
  cims_source_add_subscriber (session->source, session);

  session->report_timer = g_timeout_source_new (SENDER_REPORT_INTERVAL_MS);
  g_source_set_callback (session->report_timer, report_timer_cb, session, NULL);
  g_source_attach (session->report_timer, session->hub->media_context);
}

static void
dtls_handshake_done (CimsViewerSession *session)
{
  session->dtls_done = TRUE;
  g_clear_pointer (&session->dtls_timer, g_source_destroy);

  if (!dtls_peer_matches_fingerprint (session)) {
    CIMS_METRIC_ADD (session->hub, fingerprint_mismatches, 1);
    cims_session_warning (session, "viewer's DTLS certificate does not match the %s fingerprint "
                          "in its offer; ending the session", session->fingerprint_algorithm);
    session_fail (session, "dtls-fingerprint-mismatch");
    return;
  }

  if (!srtp_start (session)) {
    cims_session_warning (session, "SRTP could not be set up from the DTLS handshake; ending the session");
    session_fail (session, "srtp-failed");
    return;
  }

  media_start (session);
}

static void
dtls_handshake_step (CimsViewerSession *session)
{
  int result = SSL_do_handshake (session->ssl);
  int code;
  char reason[256];

  if (result == 1) {
    dtls_handshake_done (session);
    return;
  }

  code = SSL_get_error (session->ssl, result);
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE)
    return;

  ERR_error_string_n (ERR_get_error (), reason, sizeof reason);
  ERR_clear_error ();
  CIMS_METRIC_ADD (session->hub, dtls_failures, 1);
  cims_session_warning (session, "SSL_do_handshake() failed: %s; ending the session", reason);
  session_fail (session, "dtls-failed");
}

static gboolean
dtls_timer_cb (gpointer user_data)
{
  CimsViewerSession *session = user_data;

  if (session->ssl == NULL || session->dtls_done)
    return G_SOURCE_CONTINUE;

  if (g_get_monotonic_time () - session->dtls_started_us > DTLS_HANDSHAKE_TIMEOUT_US) {
    CIMS_METRIC_ADD (session->hub, dtls_failures, 1);
    cims_session_warning (session, "DTLS handshake did not finish within %d s; ending the session",
                          (int) (DTLS_HANDSHAKE_TIMEOUT_US / G_USEC_PER_SEC));
    session->dtls_timer = NULL;
    session_fail (session, "dtls-timed-out");
    return G_SOURCE_REMOVE;
  }

  /* Retransmits the last flight when OpenSSL's own timer has expired. */
  DTLSv1_handle_timeout (session->ssl);
  return G_SOURCE_CONTINUE;
}

static void
dtls_start (CimsViewerSession *session)
{
  if (session->ssl != NULL)
    return;

  if (!dtls_create (session)) {
    session_fail (session, "dtls-failed");
    return;
  }

  session->dtls_timer = g_timeout_source_new (DTLS_TIMER_INTERVAL_MS);
  g_source_set_callback (session->dtls_timer, dtls_timer_cb, session, NULL);
  g_source_attach (session->dtls_timer, session->hub->media_context);

  if (session->role == CIMS_DTLS_SETUP_ACTIVE)
    dtls_handshake_step (session);
}

static void
handle_dtls (CimsViewerSession *session, const guint8 *data, gsize size)
{
  guint8 discard[2048];

  if (session->ssl == NULL)
    dtls_start (session);
  if (session->ssl == NULL)
    return;

  BIO_write (SSL_get_rbio (session->ssl), data, (int) size);

  if (!session->dtls_done) {
    dtls_handshake_step (session);
    return;
  }

  /* After the handshake only alerts are expected: a close_notify means the
   * viewer hung up. */
  if (SSL_read (session->ssl, discard, sizeof discard) <= 0
      && SSL_get_error (session->ssl, 0) == SSL_ERROR_ZERO_RETURN)
    session_fail (session, "viewer-left");
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
    handle_dtls (session, data, size);
  else if (data[0] >= 128 && data[0] <= 191 && data[1] >= 192 && data[1] <= 223)
    handle_rtcp (session, data, size);
}

static void
ice_state_changed_cb (NiceAgent *agent, guint stream_id, guint component_id, guint state,
                      gpointer user_data)
{
  CimsViewerSession *session = user_data;

  cims_session_debug (session, "ICE state %s", nice_component_state_to_string (state));

  if (state == NICE_COMPONENT_STATE_CONNECTED || state == NICE_COMPONENT_STATE_READY) {
    if (session->role == CIMS_DTLS_SETUP_ACTIVE)
      dtls_start (session);
    return;
  }

  if (state == NICE_COMPONENT_STATE_FAILED) {
    CIMS_METRIC_ADD (session->hub, ice_failures, 1);
    cims_session_message (session, "ICE %s; ending the session",
                          session->dtls_done ? "consent expired" : "connectivity checks failed");
    session_fail (session, session->dtls_done ? "viewer-timed-out" : "ice-failed");
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

  if (session->answer_sent) {
    g_free (answer);
    g_clear_error (&error);
    g_free (delivery);
    return;
  }
  session->answer_sent = TRUE;

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

  if (session->answer_sent || atomic_load (&session->is_closed))
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

static gboolean
negotiate_on_media_cb (gpointer user_data)
{
  CimsViewerSession *session = user_data;
  const CimsConfig *config = session->hub->config;

  if (atomic_load (&session->is_closed)) {
    cims_viewer_session_unref (session);
    return G_SOURCE_REMOVE;
  }

  session->agent = nice_agent_new_full (session->hub->media_context, NICE_COMPATIBILITY_RFC5245,
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
  nice_agent_attach_recv (session->agent, session->stream_id, 1, session->hub->media_context,
                          ice_recv_cb, session);

  if (session->role == CIMS_DTLS_SETUP_PASSIVE)
    dtls_start (session);

  if (!nice_agent_gather_candidates (session->agent, session->stream_id))
    answer_deliver (session, NULL, g_error_new (CIMS_HUB_ERROR, CIMS_HUB_ERROR_ICE,
                                                "No free UDP port in the ICE range %u-%u",
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
  session->ssrc = random_u32 ();

  g_main_context_invoke (session->hub->media_context, negotiate_on_media_cb,
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

  if (!request->session->answer_sent)
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
static void
session_fail (CimsViewerSession *session, const char *reason)
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
  g_clear_pointer (&session->report_timer, g_source_destroy);

  /* close_notify tells the browser at once; withdrawing consent and closing
   * the sockets makes sure media and checks stop even if it is lost. */
  if (session->ssl != NULL && session->dtls_done)
    SSL_shutdown (session->ssl);

  if (session->agent != NULL) {
    nice_agent_consent_lost (session->agent, session->stream_id, 1);
    nice_agent_remove_stream (session->agent, session->stream_id);
  }

  g_mutex_lock (&session->send_lock);
  g_clear_pointer (&session->srtp_out, srtp_dealloc);
  g_mutex_unlock (&session->send_lock);
  g_clear_pointer (&session->srtp_in, srtp_dealloc);
  g_clear_pointer (&session->ssl, SSL_free);
  g_clear_object (&session->agent);

  cims_viewer_session_unref (session);
  return G_SOURCE_REMOVE;
}

void
cims_viewer_session_close (CimsViewerSession *session, const char *reason)
{
  if (atomic_exchange (&session->is_closed, 1))
    return;

  /* After removal no streaming thread can be inside deliver() for us. */
  if (session->source != NULL && atomic_load (&session->is_media_ready))
    cims_source_remove_subscriber (session->source, session);

  cims_session_message (session, "session ended (%s) after %.1f s, %" G_GUINT64_FORMAT
                        " packets, %" G_GUINT64_FORMAT " bytes sent",
                        reason, (g_get_monotonic_time () - session->started_us) / 1e6,
                        (guint64) atomic_load (&session->packets_sent),
                        (guint64) atomic_load (&session->bytes_sent));

  g_main_context_invoke (session->hub->media_context, teardown_on_media_cb,
                         cims_viewer_session_ref (session));
}
