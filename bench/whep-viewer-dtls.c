/* SPDX-License-Identifier: Apache-2.0 */
/* The viewer's DTLS side: its self-signed identity, one DTLS connection per
 * viewer over the ICE component, and the check of the hub's certificate
 * against the answer's fingerprint. SRTP keying is in whep-viewer-srtp.c. */
#include "bench/whep-viewer.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#define DTLS_MTU 1200
#define CERTIFICATE_LIFETIME_S (7 * 24 * 3600)

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EVP_PKEY, EVP_PKEY_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (X509, X509_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SSL_CTX, SSL_CTX_free)

static gboolean
set_tls_error (GError **error, const char *call)
{
  char reason[256] = "no OpenSSL error queued";
  unsigned long code = ERR_get_error ();

  if (code != 0)
    ERR_error_string_n (code, reason, sizeof reason);
  ERR_clear_error ();

  g_set_error (error, CIMS_WHEP_VIEWER_ERROR, CIMS_WHEP_VIEWER_ERROR_TLS, "%s failed: %s", call, reason);
  return FALSE;
}

/* ---- identity --------------------------------------------------------------- */

static X509 *
certificate_make (EVP_PKEY *key, GError **error)
{
  g_autoptr (X509) cert = X509_new ();
  X509_NAME *name;

  if (cert == NULL || !X509_set_version (cert, 2)) {
    set_tls_error (error, "X509_new()");
    return NULL;
  }

  ASN1_INTEGER_set_uint64 (X509_get_serialNumber (cert), g_random_int ());
  X509_gmtime_adj (X509_getm_notBefore (cert), -3600);
  X509_gmtime_adj (X509_getm_notAfter (cert), CERTIFICATE_LIFETIME_S);

  name = X509_get_subject_name (cert);
  X509_NAME_add_entry_by_txt (name, "CN", MBSTRING_ASC, (const unsigned char *) "cimshub-whep-viewer",
                              -1, -1, 0);
  X509_set_issuer_name (cert, name);

  if (!X509_set_pubkey (cert, key) || !X509_sign (cert, key, EVP_sha256 ())) {
    set_tls_error (error, "X509_sign()");
    return NULL;
  }

  return g_steal_pointer (&cert);
}

static char *
certificate_fingerprint (X509 *cert)
{
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  GString *text = g_string_new (NULL);

  X509_digest (cert, EVP_sha256 (), digest, &size);
  for (unsigned int i = 0; i < size; i++)
    g_string_append_printf (text, i == 0 ? "%02X" : ":%02X", digest[i]);

  return g_string_free (text, FALSE);
}

/* WebRTC certificates are self-signed: the handshake accepts any, and
 * cims_whep_viewer_dtls_peer_matches() authenticates the hub afterwards. */
static int
verify_accept_cb (int preverify_ok, X509_STORE_CTX *store)
{
  return 1;
}

/* Whether this libsrtp build can create an AEAD_AES_128_GCM session. */
static gboolean
srtp_has_gcm (void)
{
  srtp_policy_t policy = { 0 };
  guint8 key[16 + 12] = { 0 };
  srtp_t session = NULL;

  srtp_crypto_policy_set_aes_gcm_128_16_auth (&policy.rtp);
  srtp_crypto_policy_set_aes_gcm_128_16_auth (&policy.rtcp);
  policy.ssrc.type = ssrc_any_outbound;
  policy.key = key;
  if (srtp_create (&session, &policy) != srtp_err_status_ok)
    return FALSE;

  srtp_dealloc (session);
  return TRUE;
}

static SSL_CTX *
context_make (EVP_PKEY *key, X509 *cert, const char *srtp_profiles, GError **error)
{
  g_autoptr (SSL_CTX) ctx = SSL_CTX_new (DTLS_method ());

  if (ctx == NULL) {
    set_tls_error (error, "SSL_CTX_new(DTLS_method())");
    return NULL;
  }

  SSL_CTX_set_min_proto_version (ctx, DTLS1_2_VERSION);
  if (!SSL_CTX_use_certificate (ctx, cert) || !SSL_CTX_use_PrivateKey (ctx, key)) {
    set_tls_error (error, "SSL_CTX_use_certificate()");
    return NULL;
  }
  SSL_CTX_set_verify (ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_accept_cb);

  /* SSL_CTX_set_tlsext_use_srtp() returns 0 on success. */
  if (SSL_CTX_set_tlsext_use_srtp (ctx, srtp_profiles) != 0) {
    set_tls_error (error, "SSL_CTX_set_tlsext_use_srtp()");
    g_prefix_error (error, "SRTP profiles \"%s\": ", srtp_profiles);
    return NULL;
  }

  SSL_CTX_set_read_ahead (ctx, 1);
  return g_steal_pointer (&ctx);
}

CimsWhepViewerIdentity *
cims_whep_viewer_identity_new (const char *srtp_profiles, GError **error)
{
  g_autoptr (EVP_PKEY) key = EVP_EC_gen ("P-256");
  g_autoptr (X509) cert = NULL;
  CimsWhepViewerIdentity *identity;
  SSL_CTX *ctx;

  if (key == NULL) {
    set_tls_error (error, "EVP_EC_gen(P-256)");
    return NULL;
  }

  cert = certificate_make (key, error);
  if (cert == NULL)
    return NULL;

  if (srtp_profiles == NULL)
    srtp_profiles = srtp_has_gcm () ? "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80" : "SRTP_AES128_CM_SHA1_80";
  ctx = context_make (key, cert, srtp_profiles, error);
  if (ctx == NULL)
    return NULL;

  identity = g_new0 (CimsWhepViewerIdentity, 1);
  identity->ssl_ctx = ctx;
  identity->fingerprint_sha256 = certificate_fingerprint (cert);
  return identity;
}

void
cims_whep_viewer_identity_free (CimsWhepViewerIdentity *identity)
{
  if (identity == NULL)
    return;

  g_clear_pointer (&identity->ssl_ctx, SSL_CTX_free);
  g_free (identity->fingerprint_sha256);
  g_free (identity);
}

/* ---- the write BIO ------------------------------------------------------------- */

/* Sends each record OpenSSL writes as one ICE datagram, so a flight keeps its
 * datagram boundaries. Records read come from a memory BIO. */
static int
ice_bio_write (BIO *bio, const char *data, int size)
{
  CimsWhepViewerDtls *dtls = BIO_get_data (bio);

  if (dtls != NULL && dtls->agent != NULL && size > 0)
    nice_agent_send (dtls->agent, dtls->stream_id, 1, (guint) size, data);

  return size;
}

static long
ice_bio_ctrl (BIO *bio, int cmd, long num, void *ptr)
{
  if (cmd == BIO_CTRL_FLUSH)
    return 1;
  if (cmd == BIO_CTRL_DGRAM_QUERY_MTU || cmd == BIO_CTRL_DGRAM_GET_FALLBACK_MTU)
    return DTLS_MTU;

  return 0;
}

static int
ice_bio_create (BIO *bio)
{
  BIO_set_init (bio, 1);
  return 1;
}

static BIO_METHOD *
ice_bio_method (void)
{
  static gsize method;

  if (g_once_init_enter (&method)) {
    BIO_METHOD *created = BIO_meth_new (BIO_TYPE_SOURCE_SINK | BIO_get_new_index (), "whep-viewer-ice");

    BIO_meth_set_write (created, ice_bio_write);
    BIO_meth_set_ctrl (created, ice_bio_ctrl);
    BIO_meth_set_create (created, ice_bio_create);
    g_once_init_leave (&method, (gsize) created);
  }

  return (BIO_METHOD *) method;
}

/* ---- the connection ---------------------------------------------------------- */

/* Retransmission timer: 50 ms first, doubling up to 1 s. OpenSSL's own
 * first timer is 1 s, so a first flight that the peer drops because its
 * DTLS is not ready yet (Janus, right after ICE connects) would add a whole
 * second to the measured first-frame time. */
static unsigned int
dtls_timer_cb (SSL *ssl, unsigned int timer_us)
{
  return timer_us == 0 ? 50000 : MIN (timer_us * 2, 1000000);
}

/* Creates the SSL object in the client or server role. @dtls must stay at
 * the same address while it is in use: the write BIO points to it. */
gboolean
cims_whep_viewer_dtls_start (CimsWhepViewerDtls *dtls, CimsWhepViewerIdentity *identity,
                             NiceAgent *agent, guint stream_id, gboolean is_client)
{
  BIO *read_bio;
  BIO *write_bio;

  g_return_val_if_fail (dtls->ssl == NULL, FALSE);

  dtls->ssl = SSL_new (identity->ssl_ctx);
  if (dtls->ssl == NULL)
    return FALSE;

  read_bio = BIO_new (BIO_s_mem ());
  BIO_set_mem_eof_return (read_bio, -1);
  write_bio = BIO_new (ice_bio_method ());
  BIO_set_data (write_bio, dtls);
  SSL_set_bio (dtls->ssl, read_bio, write_bio);

  SSL_set_options (dtls->ssl, SSL_OP_NO_QUERY_MTU);
  DTLS_set_link_mtu (dtls->ssl, DTLS_MTU);
  DTLS_set_timer_cb (dtls->ssl, dtls_timer_cb);
  if (is_client)
    SSL_set_connect_state (dtls->ssl);
  else
    SSL_set_accept_state (dtls->ssl);

  dtls->agent = agent;
  dtls->stream_id = stream_id;
  dtls->is_client = is_client;
  dtls->started_us = g_get_monotonic_time ();
  return TRUE;
}

/* Advances the handshake; a client calls it first when ICE connects. */
CimsWhepViewerDtlsStatus
cims_whep_viewer_dtls_handshake (CimsWhepViewerDtls *dtls)
{
  int result;
  int code;

  if (dtls->is_connected)
    return CIMS_WHEP_VIEWER_DTLS_IN_PROGRESS;

  result = SSL_do_handshake (dtls->ssl);
  if (result == 1) {
    dtls->is_connected = TRUE;
    return CIMS_WHEP_VIEWER_DTLS_CONNECTED;
  }

  code = SSL_get_error (dtls->ssl, result);
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE)
    return CIMS_WHEP_VIEWER_DTLS_IN_PROGRESS;

  ERR_clear_error ();
  return CIMS_WHEP_VIEWER_DTLS_FAILED;
}

/* Feeds one received DTLS datagram. After the handshake the hub sends only
 * alerts, so application data is read and dropped. */
CimsWhepViewerDtlsStatus
cims_whep_viewer_dtls_receive (CimsWhepViewerDtls *dtls, const guint8 *data, gsize size)
{
  guint8 discard[2048];
  int result;

  BIO_write (SSL_get_rbio (dtls->ssl), data, (int) size);
  if (!dtls->is_connected)
    return cims_whep_viewer_dtls_handshake (dtls);

  do
    result = SSL_read (dtls->ssl, discard, sizeof discard);
  while (result > 0);

  if (SSL_get_shutdown (dtls->ssl) & SSL_RECEIVED_SHUTDOWN)
    return CIMS_WHEP_VIEWER_DTLS_CLOSED;

  if (SSL_get_error (dtls->ssl, result) == SSL_ERROR_SSL) {
    ERR_clear_error ();
    return CIMS_WHEP_VIEWER_DTLS_FAILED;
  }

  return CIMS_WHEP_VIEWER_DTLS_IN_PROGRESS;
}

/* Retransmits the last flight when OpenSSL's timer has expired. */
void
cims_whep_viewer_dtls_handle_timeout (CimsWhepViewerDtls *dtls)
{
  if (dtls->ssl != NULL && !dtls->is_connected)
    DTLSv1_handle_timeout (dtls->ssl);
}

static const EVP_MD *
digest_for (const char *algorithm)
{
  if (g_strcmp0 (algorithm, "sha-256") == 0)
    return EVP_sha256 ();
  if (g_strcmp0 (algorithm, "sha-384") == 0)
    return EVP_sha384 ();
  if (g_strcmp0 (algorithm, "sha-512") == 0)
    return EVP_sha512 ();
  if (g_strcmp0 (algorithm, "sha-1") == 0)
    return EVP_sha1 ();

  return NULL;
}

/* Compares the hub's certificate with the answer's a=fingerprint
 * (RFC 8122 section 5). */
gboolean
cims_whep_viewer_dtls_peer_matches (CimsWhepViewerDtls *dtls, const CimsWhepViewerAnswer *answer)
{
  const EVP_MD *digest_type = digest_for (answer->fingerprint_algorithm);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  g_autoptr (X509) peer = NULL;

  if (digest_type == NULL)
    return FALSE;

  peer = SSL_get1_peer_certificate (dtls->ssl);
  if (peer == NULL || !X509_digest (peer, digest_type, digest, &digest_size))
    return FALSE;

  return digest_size == answer->fingerprint_size
         && CRYPTO_memcmp (digest, answer->fingerprint, digest_size) == 0;
}

void
cims_whep_viewer_dtls_clear (CimsWhepViewerDtls *dtls)
{
  g_clear_pointer (&dtls->ssl, SSL_free);
  dtls->agent = NULL;
  dtls->is_connected = FALSE;
}
