/* SPDX-License-Identifier: Apache-2.0 */
/* A viewer session's DTLS-SRTP handshake (RFC 5764) over its ICE component:
 * the datagram BIO, either DTLS role, the check of the viewer's certificate
 * against its offered fingerprint, and SRTP keys from the exporter. */
#include "hub/viewer-session-private.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#define DTLS_MTU 1200
#define DTLS_HANDSHAKE_TIMEOUT_US (10 * G_USEC_PER_SEC)
#define DTLS_TIMER_INTERVAL_MS 50
/* A flight is retransmitted when the peer's next flight has not arrived
 * within 100 ms, then within twice the last timeout, up to 1 s. */
#define DTLS_FIRST_RETRANSMIT_US 100000
#define DTLS_MAX_RETRANSMIT_US 1000000

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

/* Returns the next retransmission timeout; OpenSSL's own first timeout is
 * 1 s. As DTLS client the hub sends its ClientHello as soon as ICE
 * connects, which can be before the viewer has read the SDP answer. A
 * viewer that dropped it would otherwise wait 1 s for its first frame. */
static unsigned int
dtls_retransmit_timer_cb (SSL *ssl, unsigned int last_timeout_us)
{
  (void) ssl;

  if (last_timeout_us == 0)
    return DTLS_FIRST_RETRANSMIT_US;
  return MIN (last_timeout_us * 2, DTLS_MAX_RETRANSMIT_US);
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
  DTLS_set_timer_cb (session->ssl, dtls_retransmit_timer_cb);

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

  ok = srtp_create (&session->srtp_out, &out_policy) == srtp_err_status_ok;
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
dtls_handshake_done (CimsViewerSession *session)
{
  session->dtls_done = TRUE;
  g_clear_pointer (&session->dtls_timer, g_source_destroy);
  /* A connected viewer keeps no timer of its own: every source in a viewer
   * group's context costs each pass of that group. */
  g_clear_pointer (&session->connect_timer, g_source_destroy);

  if (!dtls_peer_matches_fingerprint (session)) {
    CIMS_METRIC_ADD (session->hub, fingerprint_mismatches, 1);
    cims_session_warning (session, "viewer's DTLS certificate does not match the %s fingerprint "
                          "in its offer; ending the session", session->fingerprint_algorithm);
    cims_viewer_session_fail (session, "dtls-fingerprint-mismatch");
    return;
  }

  if (!srtp_start (session)) {
    cims_session_warning (session, "SRTP could not be set up from the DTLS handshake; ending the session");
    cims_viewer_session_fail (session, "srtp-failed");
    return;
  }

  cims_viewer_session_media_start (session);
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
  cims_viewer_session_fail (session, "dtls-failed");
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
    cims_viewer_session_fail (session, "dtls-timed-out");
    return G_SOURCE_REMOVE;
  }

  /* Retransmits the last flight when OpenSSL's own timer has expired. */
  DTLSv1_handle_timeout (session->ssl);
  return G_SOURCE_CONTINUE;
}

void
cims_viewer_session_dtls_start (CimsViewerSession *session)
{
  if (session->ssl != NULL)
    return;

  if (!dtls_create (session)) {
    cims_viewer_session_fail (session, "dtls-failed");
    return;
  }

  session->dtls_timer = g_timeout_source_new (DTLS_TIMER_INTERVAL_MS);
  g_source_set_callback (session->dtls_timer, dtls_timer_cb, session, NULL);
  g_source_attach (session->dtls_timer, session->group_context);
  /* The context holds the only reference; the field is cleared before it ends. */
  g_source_unref (session->dtls_timer);

  if (session->role == CIMS_DTLS_SETUP_ACTIVE)
    dtls_handshake_step (session);
}

void
cims_viewer_session_handle_dtls (CimsViewerSession *session, const guint8 *data, gsize size)
{
  guint8 discard[2048];

  if (session->ssl == NULL)
    cims_viewer_session_dtls_start (session);
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
    cims_viewer_session_fail (session, "viewer-left");
}

