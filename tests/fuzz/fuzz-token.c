/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for viewer tokens: cims_auth_token_verify against a keyring
 * built at start from a fixed EC P-256 key. The first input byte picks the
 * mode. Bit 0 clear: the rest is a compact token string. Bit 0 set: the
 * rest is header JSON, a NUL byte and payload JSON, signed here with the
 * private key, so the claim checks after the signature are reached.
 * Bit 1 picks the expected audience ("cimshub" or none). */

#include <stdint.h>
#include <string.h>

#include <glib/gstdio.h>
#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth/auth.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

/* A key made once for this target. It signs nothing outside the fuzz tests. */
static const char fuzz_private_key_pem[] =
  "-----BEGIN PRIVATE KEY-----\n"
  "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgts7/qX05yKByCQdB\n"
  "R6FAJG6JiP31rLZCEf5tux8sP1+hRANCAASclw6M0Pf+3HWF/wGHJxYpj+oDoaRL\n"
  "o8s3qqBJw3IJX8nxtg9abCsOSW47daMALLb89DLsZDGbfgfh6wBZtjP3\n"
  "-----END PRIVATE KEY-----\n";

static const char fuzz_public_key_pem[] =
  "-----BEGIN PUBLIC KEY-----\n"
  "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEnJcOjND3/tx1hf8BhycWKY/qA6Gk\n"
  "S6PLN6qgScNyCV/J8bYPWmwrDkluO3WjACy2/PQy7GQxm34H4esAWbYz9w==\n"
  "-----END PUBLIC KEY-----\n";

/* The corpus tokens are issued by this issuer for jurisdiction boston and
 * valid at FUZZ_NOW_S (2023-11-14T22:13:20Z). */
#define FUZZ_ISSUER "https://idp.boston.fuzz"
#define FUZZ_AUDIENCE "cimshub"
#define FUZZ_NOW_S G_GINT64_CONSTANT (1700000000)

#define FUZZ_CONFIG \
  "hub: { http_listen = \"127.0.0.1:18080\"; ice_udp_ports = [21000, 21099];\n" \
  "  public_addresses = [\"127.0.0.1\"]; state_dir = \"state\"; idle_source_stop_s = 30; };\n" \
  "jurisdictions = (\n" \
  "  { id = \"boston\"; name = \"Boston\"; participates = true;\n" \
  "    token_issuer = \"" FUZZ_ISSUER "\"; token_key = \"boston.pub.pem\"; }\n" \
  ");\n" \
  "agencies = ();\n" \
  "cameras = (\n" \
  "  { id = \"bos-0001\"; jurisdiction = \"boston\"; location = \"Boylston St\";\n" \
  "    brand_model = \"Axis Q6135-LE\"; installed = \"2019-05-02\";\n" \
  "    source = \"rtsp://127.0.0.1:18554/bos-0001\"; }\n" \
  ");\n" \
  "viewer_profiles = (\n" \
  "  { name = \"browser\"; codecs = [\"h264\"]; max_width = 1920; max_height = 1080;\n" \
  "    max_fps = 30; max_kbps = 4000; }\n" \
  ");\n"

static CimsAuthKeyring *keyring;
static EVP_PKEY *private_key;

/* Writes the public key and a configuration naming it into a fresh folder,
 * loads the keyring from them and removes the folder again. */
static CimsAuthKeyring *
keyring_build (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("cims-fuzz-token-XXXXXX", &error);
  g_autofree char *key_path = NULL;
  g_autofree char *config_path = NULL;
  g_autoptr(CimsConfig) config = NULL;
  CimsAuthKeyring *result;

  g_assert_no_error (error);
  key_path = g_build_filename (dir, "boston.pub.pem", NULL);
  config_path = g_build_filename (dir, "region.conf", NULL);
  g_file_set_contents (key_path, fuzz_public_key_pem, -1, &error);
  g_assert_no_error (error);
  g_file_set_contents (config_path, FUZZ_CONFIG, -1, &error);
  g_assert_no_error (error);

  config = cims_config_load (config_path, &error);
  g_assert_no_error (error);
  result = cims_auth_keyring_new (config, &error);
  g_assert_no_error (error);

  g_unlink (key_path);
  g_unlink (config_path);
  g_rmdir (dir);

  return result;
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  BIO *bio = BIO_new_mem_buf (fuzz_private_key_pem, -1);

  private_key = PEM_read_bio_PrivateKey (bio, NULL, NULL, NULL);
  BIO_free (bio);
  g_assert_nonnull (private_key);

  keyring = keyring_build ();

  return 0;
}

static char *
base64url_encode (const guint8 *data, gsize size)
{
  char *text = g_base64_encode (data, size);
  char *padding;

  g_strdelimit (text, "+", '-');
  g_strdelimit (text, "/", '_');
  padding = strchr (text, '=');
  if (padding != NULL)
    *padding = '\0';

  return text;
}

/* Signs @input with ES256 and returns the 64-byte r || s of JWS. */
static GBytes *
es256_sign (const char *input)
{
  EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
  guint8 der[128];
  size_t der_size = sizeof der;
  const guint8 *cursor = der;
  ECDSA_SIG *signature;
  const BIGNUM *r, *s;
  guint8 *raw = g_malloc0 (64);

  g_assert_cmpint (EVP_DigestSignInit (ctx, NULL, EVP_sha256 (), NULL, private_key), ==, 1);
  g_assert_cmpint (EVP_DigestSign (ctx, der, &der_size, (const guint8 *) input, strlen (input)), ==, 1);
  EVP_MD_CTX_free (ctx);

  signature = d2i_ECDSA_SIG (NULL, &cursor, (long) der_size);
  g_assert_nonnull (signature);
  ECDSA_SIG_get0 (signature, &r, &s);
  g_assert_cmpint (BN_bn2binpad (r, raw, 32), ==, 32);
  g_assert_cmpint (BN_bn2binpad (s, raw + 32, 32), ==, 32);
  ECDSA_SIG_free (signature);

  return g_bytes_new_take (raw, 64);
}

/* Returns (transfer full) "b64(header).b64(payload).b64(signature)" for the
 * header and payload split at the first NUL of @data. */
static char *
token_sign (const guint8 *data, gsize size)
{
  const guint8 *separator = memchr (data, '\0', size);
  gsize header_size = separator != NULL ? (gsize) (separator - data) : size;
  const guint8 *payload = separator != NULL ? separator + 1 : data + size;
  gsize payload_size = size - (gsize) (payload - data);
  g_autofree char *header_text = base64url_encode (data, header_size);
  g_autofree char *payload_text = base64url_encode (payload, payload_size);
  g_autofree char *input = g_strconcat (header_text, ".", payload_text, NULL);
  g_autoptr(GBytes) signature = es256_sign (input);
  gsize signature_size = 0;
  const guint8 *signature_data = g_bytes_get_data (signature, &signature_size);
  g_autofree char *signature_text = base64url_encode (signature_data, signature_size);

  return g_strconcat (input, ".", signature_text, NULL);
}

static void
identity_check (const CimsAuthIdentity *identity)
{
  g_assert_cmpstr (identity->issuer, ==, FUZZ_ISSUER);
  g_assert_cmpstr (identity->jurisdiction, ==, "boston");
  g_assert_nonnull (identity->subject);
  g_assert_nonnull (identity->name);
  g_assert_nonnull (identity->roles);
  g_assert_nonnull (identity->permissions);
  g_assert_cmpint (identity->expires_at_us + 30 * G_USEC_PER_SEC, >, FUZZ_NOW_S * G_USEC_PER_SEC);
  (void) cims_auth_identity_has_role (identity, "viewer");
  (void) cims_auth_identity_has_permission (identity, "view");
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(CimsAuthIdentity) identity = NULL;
  g_autofree char *token = NULL;
  const char *audience;

  if (size < 1)
    return 0;

  audience = (data[0] & 0x02) ? NULL : FUZZ_AUDIENCE;
  if (data[0] & 0x01)
    token = token_sign (data + 1, size - 1);
  else
    token = g_strndup ((const char *) data + 1, size - 1);

  identity = cims_auth_token_verify (keyring, token, audience, FUZZ_NOW_S * G_USEC_PER_SEC, &error);
  if (identity == NULL) {
    g_assert_nonnull (error);
    g_assert_true (error->domain == CIMS_AUTH_ERROR);
    return 0;
  }

  g_assert_no_error (error);
  identity_check (identity);

  return 0;
}
