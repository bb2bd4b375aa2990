/* SPDX-License-Identifier: Apache-2.0 */
/* The hub's DTLS identity: the certificate whose fingerprint goes into every
 * SDP answer and the DTLS 1.2 context with the DTLS-SRTP extension. The
 * per-viewer handshake lives in viewer-session.c. */
#include "hub/hub-runtime.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <srtp2/srtp.h>

#define CERTIFICATE_LIFETIME_S (30 * 24 * 3600)

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EVP_PKEY, EVP_PKEY_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (X509, X509_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SSL_CTX, SSL_CTX_free)

static char *
openssl_error_text (void)
{
  unsigned long code = ERR_get_error ();
  char text[256];

  if (code == 0)
    return g_strdup ("no OpenSSL error queued");

  ERR_error_string_n (code, text, sizeof text);
  ERR_clear_error ();
  return g_strdup (text);
}

static void
set_tls_error (GError **error, const char *what)
{
  g_autofree char *reason = openssl_error_text ();

  g_set_error (error, CIMS_HUB_ERROR, CIMS_HUB_ERROR_TLS, "%s failed: %s", what, reason);
}

static X509 *
certificate_make (EVP_PKEY *key, GError **error)
{
  g_autoptr (X509) cert = X509_new ();
  X509_NAME *name;
  guint64 serial;

  if (cert == NULL || !X509_set_version (cert, 2)) {
    set_tls_error (error, "X509_new()");
    return NULL;
  }

  serial = g_random_int ();
  serial = (serial << 31) ^ g_random_int ();
  ASN1_INTEGER_set_uint64 (X509_get_serialNumber (cert), serial);

  /* Browsers ignore the certificate's validity: they trust the fingerprint
   * carried in the signalled SDP. Start a day early for skewed clocks. */
  X509_gmtime_adj (X509_getm_notBefore (cert), -24 * 3600);
  X509_gmtime_adj (X509_getm_notAfter (cert), CERTIFICATE_LIFETIME_S);

  name = X509_get_subject_name (cert);
  X509_NAME_add_entry_by_txt (name, "CN", MBSTRING_ASC, (const unsigned char *) "cimshub", -1, -1, 0);
  X509_set_issuer_name (cert, name);

  if (!X509_set_pubkey (cert, key) || !X509_sign (cert, key, EVP_sha256 ())) {
    set_tls_error (error, "X509_sign()");
    return NULL;
  }

  return g_steal_pointer (&cert);
}

static gboolean
identity_load_or_make (const CimsConfig *config, EVP_PKEY **key_out, X509 **cert_out, GError **error)
{
  g_autoptr (EVP_PKEY) key = NULL;
  g_autoptr (X509) cert = NULL;
  FILE *file;

  if (config->dtls_certificate_path == NULL) {
    key = EVP_EC_gen ("P-256");
    if (key == NULL) {
      set_tls_error (error, "EVP_EC_gen(P-256)");
      return FALSE;
    }
    cert = certificate_make (key, error);
    if (cert == NULL)
      return FALSE;
    goto done;
  }

  file = fopen (config->dtls_certificate_path, "r");
  if (file == NULL) {
    g_set_error (error, CIMS_HUB_ERROR, CIMS_HUB_ERROR_TLS, "Cannot open DTLS certificate %s: %s",
                 config->dtls_certificate_path, g_strerror (errno));
    return FALSE;
  }
  cert = PEM_read_X509 (file, NULL, NULL, NULL);
  fclose (file);

  file = fopen (config->dtls_private_key_path, "r");
  if (file == NULL) {
    g_set_error (error, CIMS_HUB_ERROR, CIMS_HUB_ERROR_TLS, "Cannot open DTLS private key %s: %s",
                 config->dtls_private_key_path, g_strerror (errno));
    return FALSE;
  }
  key = PEM_read_PrivateKey (file, NULL, NULL, NULL);
  fclose (file);

  if (cert == NULL || key == NULL) {
    set_tls_error (error, "Reading the configured DTLS certificate and key");
    return FALSE;
  }

done:
  *key_out = g_steal_pointer (&key);
  *cert_out = g_steal_pointer (&cert);
  return TRUE;
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

/* Accepts any certificate during the handshake: WebRTC certificates are
 * self-signed, and the peer is authenticated afterwards by comparing its
 * certificate's digest with the fingerprint from its SDP offer. */
static int
verify_accept_cb (int preverify_ok, X509_STORE_CTX *store)
{
  return 1;
}

/* Checks whether this libsrtp build can create an AEAD_AES_128_GCM session;
 * some builds lack it, and offering it then would break the handshake. */
static gboolean
srtp_has_gcm (void)
{
  srtp_policy_t policy = { 0 };
  guint8 key[SRTP_AEAD_SALT_LEN + 16] = { 0 };
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
context_make (EVP_PKEY *key, X509 *cert, gboolean has_gcm, GError **error)
{
  g_autoptr (SSL_CTX) ctx = SSL_CTX_new (DTLS_method ());
  const char *profiles = has_gcm ? "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"
                                 : "SRTP_AES128_CM_SHA1_80";

  if (ctx == NULL) {
    set_tls_error (error, "SSL_CTX_new(DTLS)");
    return NULL;
  }

  SSL_CTX_set_min_proto_version (ctx, DTLS1_2_VERSION);
  if (!SSL_CTX_use_certificate (ctx, cert) || !SSL_CTX_use_PrivateKey (ctx, key)
      || !SSL_CTX_check_private_key (ctx)) {
    set_tls_error (error, "Installing the DTLS certificate");
    return NULL;
  }

  SSL_CTX_set_verify (ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_accept_cb);

  /* SSL_CTX_set_tlsext_use_srtp() returns 0 on success. */
  if (SSL_CTX_set_tlsext_use_srtp (ctx, profiles) != 0) {
    set_tls_error (error, "SSL_CTX_set_tlsext_use_srtp()");
    return NULL;
  }

  SSL_CTX_set_read_ahead (ctx, 1);
  return g_steal_pointer (&ctx);
}

CimsDtlsIdentity *
cims_dtls_identity_new (const CimsConfig *config, GError **error)
{
  g_autoptr (EVP_PKEY) key = NULL;
  g_autoptr (X509) cert = NULL;
  CimsDtlsIdentity *identity;
  gboolean has_gcm;
  SSL_CTX *ctx;

  if (!identity_load_or_make (config, &key, &cert, error))
    return NULL;

  has_gcm = srtp_has_gcm ();
  ctx = context_make (key, cert, has_gcm, error);
  if (ctx == NULL)
    return NULL;

  identity = g_new0 (CimsDtlsIdentity, 1);
  identity->ssl_ctx = ctx;
  identity->fingerprint_sha256 = certificate_fingerprint (cert);
  identity->has_gcm = has_gcm;
  return identity;
}

void
cims_dtls_identity_free (CimsDtlsIdentity *identity)
{
  if (identity == NULL)
    return;

  g_clear_pointer (&identity->ssl_ctx, SSL_CTX_free);
  g_free (identity->fingerprint_sha256);
  g_free (identity);
}
