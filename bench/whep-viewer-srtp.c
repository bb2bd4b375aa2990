/* SPDX-License-Identifier: Apache-2.0 */
/* SRTP for one viewer: keys from the DTLS exporter, unprotecting the hub's
 * RTP and RTCP, protecting the viewer's RTCP. What the packets mean is
 * whep-viewer-stats.c's and whep-viewer-rtcp.c's job. */
#include "bench/whep-viewer.h"

#include <string.h>

#include <openssl/crypto.h>

#define MAX_KEY_SIZE 16
#define MAX_SALT_SIZE 14

static gboolean
srtp_policy_for (unsigned long profile_id, srtp_policy_t *policy, gsize *key_size, gsize *salt_size)
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

/* Creates both SRTP sessions from the finished handshake. The exporter's
 * output is client key, server key, client salt, server salt (RFC 5764
 * section 4.2); the hub's keys are the other role's. */
gboolean
cims_whep_viewer_srtp_start (CimsWhepViewerSrtp *srtp, SSL *ssl, gboolean is_client, GError **error)
{
  SRTP_PROTECTION_PROFILE *profile = SSL_get_selected_srtp_profile (ssl);
  guint8 material[2 * (MAX_KEY_SIZE + MAX_SALT_SIZE)];
  guint8 local_key[MAX_KEY_SIZE + MAX_SALT_SIZE];
  guint8 remote_key[MAX_KEY_SIZE + MAX_SALT_SIZE];
  srtp_policy_t in_policy;
  srtp_policy_t out_policy;
  gsize key_size = 0;
  gsize salt_size = 0;
  gboolean ok = FALSE;

  if (profile == NULL || !srtp_policy_for (profile->id, &in_policy, &key_size, &salt_size)) {
    g_set_error (error, CIMS_WHEP_VIEWER_ERROR, CIMS_WHEP_VIEWER_ERROR_SRTP,
                 "The DTLS handshake selected no supported SRTP profile (%s)",
                 profile != NULL ? profile->name : "none");
    return FALSE;
  }
  srtp_policy_for (profile->id, &out_policy, &key_size, &salt_size);

  if (SSL_export_keying_material (ssl, material, 2 * (key_size + salt_size), "EXTRACTOR-dtls_srtp", 19,
                                  NULL, 0, 0) != 1) {
    g_set_error (error, CIMS_WHEP_VIEWER_ERROR, CIMS_WHEP_VIEWER_ERROR_SRTP,
                 "SSL_export_keying_material() failed");
    goto out;
  }

  memcpy (local_key, material + (is_client ? 0 : key_size), key_size);
  memcpy (local_key + key_size, material + 2 * key_size + (is_client ? 0 : salt_size), salt_size);
  memcpy (remote_key, material + (is_client ? key_size : 0), key_size);
  memcpy (remote_key + key_size, material + 2 * key_size + (is_client ? salt_size : 0), salt_size);

  in_policy.ssrc.type = ssrc_any_inbound;
  in_policy.key = remote_key;
  /* The viewer sends no NACK, so the hub never repeats a sequence number
   * to it: libsrtp's replay check stays on, and a replayed packet is
   * dropped as undecryptable, never counted. */
  out_policy.ssrc.type = ssrc_any_outbound;
  out_policy.key = local_key;

  if (srtp_create (&srtp->inbound, &in_policy) != srtp_err_status_ok
      || srtp_create (&srtp->outbound, &out_policy) != srtp_err_status_ok) {
    g_set_error (error, CIMS_WHEP_VIEWER_ERROR, CIMS_WHEP_VIEWER_ERROR_SRTP, "srtp_create() failed");
    goto out;
  }

  srtp->profile_name = profile->name;
  ok = TRUE;

out:
  OPENSSL_cleanse (material, sizeof material);
  OPENSSL_cleanse (local_key, sizeof local_key);
  OPENSSL_cleanse (remote_key, sizeof remote_key);
  return ok;
}

int
cims_whep_viewer_srtp_unprotect_rtp (CimsWhepViewerSrtp *srtp, guint8 *packet, gsize size)
{
  int length = (int) size;

  if (srtp->inbound == NULL || srtp_unprotect (srtp->inbound, packet, &length) != srtp_err_status_ok)
    return -1;

  return length;
}

int
cims_whep_viewer_srtp_unprotect_rtcp (CimsWhepViewerSrtp *srtp, guint8 *packet, gsize size)
{
  int length = (int) size;

  if (srtp->inbound == NULL || srtp_unprotect_rtcp (srtp->inbound, packet, &length) != srtp_err_status_ok)
    return -1;

  return length;
}

int
cims_whep_viewer_srtp_protect_rtcp (CimsWhepViewerSrtp *srtp, guint8 *packet, gsize size)
{
  int length = (int) size;

  if (srtp->outbound == NULL || srtp_protect_rtcp (srtp->outbound, packet, &length) != srtp_err_status_ok)
    return -1;

  return length;
}

void
cims_whep_viewer_srtp_clear (CimsWhepViewerSrtp *srtp)
{
  g_clear_pointer (&srtp->inbound, srtp_dealloc);
  g_clear_pointer (&srtp->outbound, srtp_dealloc);
  srtp->profile_name = NULL;
}
