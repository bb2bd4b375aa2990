/* SPDX-License-Identifier: Apache-2.0 */
/* The auth tests' region: keys made with OpenSSL at start, the config that
 * names them, and a JWT signer written apart from auth/token-mint.c so each
 * side checks the other. */

#include "auth-test-region.h"

#include <string.h>

#include <glib/gstdio.h>

#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#define CONFIG_TEMPLATE \
  "hub: {\n" \
  "  http_listen = \"127.0.0.1:18080\";\n" \
  "  ice_udp_ports = [21000, 21099];\n" \
  "  public_addresses = [\"127.0.0.1\"];\n" \
  "  state_dir = \"state\";\n" \
  "  idle_source_stop_s = 30;\n" \
  "  token_audience = \"" TEST_AUDIENCE "\";\n" \
  "};\n" \
  "jurisdictions = (\n" \
  "  { id = \"boston\"; name = \"Boston\"; participates = true;\n" \
  "    token_issuer = \"" TEST_ISSUER_BOSTON "\";\n" \
  "    token_key = \"@BOSTON_KEY@\"; },\n" \
  "  { id = \"chelsea\"; name = \"Chelsea\"; participates = true;\n" \
  "    token_issuer = \"" TEST_ISSUER_CHELSEA "\";\n" \
  "    token_key = \"chelsea.pub.pem\"; },\n" \
  "  { id = \"everett\"; name = \"Everett\"; participates = true;\n" \
  "    token_issuer = \"" TEST_ISSUER_EVERETT "\";\n" \
  "    token_key = \"everett.pub.pem\"; },\n" \
  "  { id = \"cambridge\"; name = \"Cambridge\"; participates = false;\n" \
  "    token_issuer = \"" TEST_ISSUER_CAMBRIDGE "\";\n" \
  "    token_key = \"cambridge.pub.pem\"; }\n" \
  ");\n" \
  "agencies = (\n" \
  "  { id = \"state-police\"; name = \"State Police\";\n" \
  "    token_issuer = \"" TEST_ISSUER_STATE_POLICE "\";\n" \
  "    token_key = \"state-police.pub.pem\"; }\n" \
  ");\n" \
  "cameras = (\n" \
  "  { id = \"bos-0001\"; jurisdiction = \"boston\";\n" \
  "    location = \"Boylston St at Dartmouth St\";\n" \
  "    brand_model = \"Axis Q6135-LE\"; installed = \"2019-05-02\";\n" \
  "    source = \"rtsp://127.0.0.1:18554/bos-0001\";\n" \
  "    out_of_service = ( { from = \"2024-01-10\"; to = \"2024-02-01\"; } ); },\n" \
  "  { id = \"bos-0002\"; jurisdiction = \"boston\";\n" \
  "    location = \"Tremont St at Park St\";\n" \
  "    brand_model = \"Axis P1455-LE\"; installed = \"2021-03-15\";\n" \
  "    source = \"rtsp://127.0.0.1:18554/bos-0002\";\n" \
  "    restricted = true; },\n" \
  "  { id = \"chl-0001\"; jurisdiction = \"chelsea\";\n" \
  "    location = \"Broadway at Bellingham Square\";\n" \
  "    brand_model = \"Bosch AUTODOME IP 5000i\"; installed = \"2020-08-11\";\n" \
  "    source = \"rtsp://127.0.0.1:18554/chl-0001\"; },\n" \
  "  { id = \"evt-0001\"; jurisdiction = \"everett\";\n" \
  "    location = \"Everett Ave at the Chelsea city line\";\n" \
  "    brand_model = \"Hanwha XNO-8080R\"; installed = \"2021-10-04\";\n" \
  "    source = \"rtsp://127.0.0.1:18554/evt-0001\";\n" \
  "    shared_with = [\"chelsea\"]; }\n" \
  ");\n" \
  "viewer_profiles = (\n" \
  "  { name = \"browser\"; codecs = [\"h264\", \"vp8\"];\n" \
  "    max_width = 1920; max_height = 1080; max_fps = 30; max_kbps = 4000; }\n" \
  ");\n"

char *
auth_test_base64url (const void *data, gssize len)
{
  gsize n = len < 0 ? strlen (data) : (gsize) len;
  char *text = g_base64_encode (data, n);
  char *end;

  g_strdelimit (text, "+", '-');
  g_strdelimit (text, "/", '_');
  end = strchr (text, '=');
  if (end != NULL)
    *end = '\0';

  return text;
}

static GBytes *
sign_sha256 (EVP_PKEY *key, const char *input)
{
  EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
  size_t len = 0;
  guint8 *signature;

  g_assert_cmpint (EVP_DigestSignInit (ctx, NULL, EVP_sha256 (), NULL, key), ==, 1);
  g_assert_cmpint (EVP_DigestSign (ctx, NULL, &len, (const guint8 *) input, strlen (input)), ==, 1);
  signature = g_malloc (len);
  g_assert_cmpint (EVP_DigestSign (ctx, signature, &len, (const guint8 *) input, strlen (input)), ==, 1);
  EVP_MD_CTX_free (ctx);

  return g_bytes_new_take (signature, len);
}

/* Rewrites a DER ECDSA signature as the 64-byte r || s of JWS ES256. */
static GBytes *
der_to_raw_es256 (GBytes *der)
{
  gsize der_len = 0;
  const guint8 *cursor = g_bytes_get_data (der, &der_len);
  ECDSA_SIG *sig = d2i_ECDSA_SIG (NULL, &cursor, (long) der_len);
  guint8 *raw = g_malloc0 (64);
  const BIGNUM *r, *s;

  g_assert_nonnull (sig);
  ECDSA_SIG_get0 (sig, &r, &s);
  g_assert_cmpint (BN_bn2binpad (r, raw, 32), ==, 32);
  g_assert_cmpint (BN_bn2binpad (s, raw + 32, 32), ==, 32);
  ECDSA_SIG_free (sig);

  return g_bytes_new_take (raw, 64);
}

char *
auth_test_sign (EVP_PKEY *key, const char *header_json, const char *payload_json)
{
  g_autofree char *header = auth_test_base64url (header_json, -1);
  g_autofree char *payload = auth_test_base64url (payload_json, -1);
  g_autofree char *input = g_strconcat (header, ".", payload, NULL);
  g_autoptr(GBytes) signature = sign_sha256 (key, input);
  g_autofree char *encoded = NULL;
  gsize len = 0;
  const guint8 *data;

  if (EVP_PKEY_is_a (key, "EC")) {
    g_autoptr(GBytes) raw = der_to_raw_es256 (signature);
    data = g_bytes_get_data (raw, &len);
    encoded = auth_test_base64url (data, (gssize) len);
  } else {
    data = g_bytes_get_data (signature, &len);
    encoded = auth_test_base64url (data, (gssize) len);
  }

  return g_strconcat (input, ".", encoded, NULL);
}

char *
auth_test_region_get_private_key_path (const AuthTestRegion *region, const char *name)
{
  g_autofree char *file_name = g_strconcat (name, ".key.pem", NULL);

  return g_build_filename (region->dir, file_name, NULL);
}

char *
auth_test_region_get_public_key_path (const AuthTestRegion *region, const char *name)
{
  g_autofree char *file_name = g_strconcat (name, ".pub.pem", NULL);

  return g_build_filename (region->dir, file_name, NULL);
}

char *
auth_test_region_write_public_key (const AuthTestRegion *region, const char *file_name,
                                   EVP_PKEY *key)
{
  char *path = g_build_filename (region->dir, file_name, NULL);
  BIO *bio = BIO_new_file (path, "w");

  g_assert_nonnull (bio);
  g_assert_cmpint (PEM_write_bio_PUBKEY (bio, key), ==, 1);
  BIO_free_all (bio);

  return path;
}

static void
region_write_key_pair (const AuthTestRegion *region, const char *name, EVP_PKEY *key)
{
  g_autofree char *private_path = auth_test_region_get_private_key_path (region, name);
  g_autofree char *public_file = g_strconcat (name, ".pub.pem", NULL);
  BIO *bio = BIO_new_file (private_path, "w");

  g_assert_nonnull (bio);
  g_assert_cmpint (PEM_write_bio_PrivateKey (bio, key, NULL, NULL, 0, NULL, NULL), ==, 1);
  BIO_free_all (bio);

  g_free (auth_test_region_write_public_key (region, public_file, key));
}

char *
auth_test_region_write_file (const AuthTestRegion *region, const char *file_name,
                             const char *text)
{
  char *path = g_build_filename (region->dir, file_name, NULL);
  g_autoptr(GError) error = NULL;

  g_file_set_contents (path, text, -1, &error);
  g_assert_no_error (error);

  return path;
}

char *
auth_test_region_write_config (const AuthTestRegion *region, const char *file_name,
                               const char *boston_key_path)
{
  g_autoptr(GString) text = g_string_new (CONFIG_TEMPLATE);

  g_string_replace (text, "@BOSTON_KEY@", boston_key_path ? boston_key_path : "boston.pub.pem", 1);

  return auth_test_region_write_file (region, file_name, text->str);
}

AuthTestRegion *
auth_test_region_new (void)
{
  g_autoptr(GError) error = NULL;
  AuthTestRegion *region = g_new0 (AuthTestRegion, 1);

  region->dir = g_dir_make_tmp ("cimshub-auth-XXXXXX", &error);
  g_assert_no_error (error);

  region->boston_key = EVP_EC_gen ("P-256");
  region->chelsea_key = EVP_RSA_gen (2048);
  region->everett_key = EVP_EC_gen ("P-256");
  region->cambridge_key = EVP_EC_gen ("P-256");
  region->state_police_key = EVP_EC_gen ("P-256");
  region->rogue_key = EVP_EC_gen ("P-256");
  g_assert_true (region->boston_key && region->chelsea_key && region->everett_key &&
                 region->cambridge_key && region->state_police_key && region->rogue_key);

  region_write_key_pair (region, "boston", region->boston_key);
  region_write_key_pair (region, "chelsea", region->chelsea_key);
  region_write_key_pair (region, "everett", region->everett_key);
  region_write_key_pair (region, "cambridge", region->cambridge_key);
  region_write_key_pair (region, "state-police", region->state_police_key);
  region_write_key_pair (region, "rogue", region->rogue_key);

  region->config_path = auth_test_region_write_config (region, "region.conf", NULL);

  return region;
}

void
auth_test_region_free (AuthTestRegion *region)
{
  g_autoptr(GDir) dir = NULL;
  const char *name;

  if (region == NULL)
    return;

  dir = g_dir_open (region->dir, 0, NULL);
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
    g_autofree char *path = g_build_filename (region->dir, name, NULL);
    g_unlink (path);
  }
  g_rmdir (region->dir);

  EVP_PKEY_free (region->boston_key);
  EVP_PKEY_free (region->chelsea_key);
  EVP_PKEY_free (region->everett_key);
  EVP_PKEY_free (region->cambridge_key);
  EVP_PKEY_free (region->state_police_key);
  EVP_PKEY_free (region->rogue_key);
  g_free (region->config_path);
  g_free (region->dir);
  g_free (region);
}
