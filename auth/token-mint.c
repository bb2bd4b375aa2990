/* SPDX-License-Identifier: Apache-2.0 */
/* Mints signed development tokens from a local private key, in the same
 * compact JWT form that token-verify.c accepts. Production tokens come from
 * each jurisdiction's identity provider, not from here. */

#include "auth/auth.h"

#include <string.h>

#include <json-glib/json-glib.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "auth/auth-private.h"

/* Encodes @data as unpadded base64url (RFC 7515 section 2).
 * Returns: (transfer full) */
static char *
base64url_encode (const guint8 *data, gsize len)
{
  char *text = g_base64_encode (data, len);
  gsize out = 0;

  for (gsize i = 0; text[i] != '\0' && text[i] != '='; i++) {
    char c = text[i];

    if (c == '+')
      c = '-';
    else if (c == '/')
      c = '_';
    text[out++] = c;
  }
  text[out] = '\0';

  return text;
}

/* The passphrase callback for PEM_read_bio_PrivateKey: fails at once, so an
 * encrypted key is reported as unreadable instead of prompting on a terminal. */
static int
passphrase_none_cb (char *buf, int size, int rwflag, void *user_data)
{
  return -1;
}

static EVP_PKEY *
mint_read_private_key (const char *path, GError **error)
{
  g_autoptr(BIO) bio = cims_auth_pem_file_read (path, "private key", error);
  EVP_PKEY *key;

  if (bio == NULL)
    return NULL;

  key = PEM_read_bio_PrivateKey (bio, NULL, passphrase_none_cb, NULL);
  if (key == NULL) {
    g_autofree char *detail = cims_auth_describe_openssl_error ();
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_KEY,
                 "%s is not an unencrypted PEM private key: %s", path, detail);
    return NULL;
  }

  return key;
}

static void
builder_add_string_array (JsonBuilder *builder, const char *name, const char *const *values)
{
  json_builder_set_member_name (builder, name);
  json_builder_begin_array (builder);
  for (gsize i = 0; values != NULL && values[i] != NULL; i++)
    json_builder_add_string_value (builder, values[i]);
  json_builder_end_array (builder);
}

static void
builder_add_string (JsonBuilder *builder, const char *name, const char *value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_string_value (builder, value);
}

/* Serialises @builder's object and encodes it for a token part.
 * Returns: (transfer full) */
static char *
builder_encode (JsonBuilder *builder)
{
  g_autoptr(JsonNode) root = json_builder_get_root (builder);
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autofree char *json = NULL;
  gsize json_len = 0;

  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, FALSE);
  json = json_generator_to_data (generator, &json_len);

  return base64url_encode ((const guint8 *) json, json_len);
}

static char *
mint_encode_header (const char *algorithm)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();

  json_builder_begin_object (builder);
  builder_add_string (builder, "alg", algorithm);
  builder_add_string (builder, "typ", "JWT");
  json_builder_end_object (builder);

  return builder_encode (builder);
}

static char *
mint_encode_claims (const CimsAuthTokenClaims *claims)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();

  json_builder_begin_object (builder);
  builder_add_string (builder, "iss", claims->issuer);
  builder_add_string (builder, "sub", claims->subject);
  builder_add_string (builder, "name", claims->name);
  builder_add_string (builder, "jurisdiction", claims->jurisdiction);
  builder_add_string_array (builder, "roles", claims->roles);
  builder_add_string_array (builder, "permissions", claims->permissions);
  if (claims->client != NULL)
    builder_add_string (builder, "client", claims->client);
  if (claims->audience != NULL)
    builder_add_string (builder, "aud", claims->audience);

  json_builder_set_member_name (builder, "iat");
  json_builder_add_int_value (builder, claims->issued_at_s);
  json_builder_set_member_name (builder, "exp");
  json_builder_add_int_value (builder, claims->issued_at_s + claims->ttl_s);
  json_builder_end_object (builder);

  return builder_encode (builder);
}

/* Rewrites the DER ECDSA signature OpenSSL produces as the JWS ES256 form:
 * r and s, each left-padded to 32 bytes (RFC 7518 section 3.4).
 * Returns: (transfer full): 64 bytes, or NULL if @der cannot be parsed. */
static guint8 *
es256_signature_from_der (const guint8 *der, gsize der_len)
{
  g_autoptr(ECDSA_SIG) sig = d2i_ECDSA_SIG (NULL, &der, (long) der_len);
  g_autofree guint8 *raw = g_malloc0 (2 * CIMS_AUTH_ES256_HALF_LEN);
  const BIGNUM *r, *s;

  if (sig == NULL)
    return NULL;

  ECDSA_SIG_get0 (sig, &r, &s);
  if (BN_bn2binpad (r, raw, CIMS_AUTH_ES256_HALF_LEN) != CIMS_AUTH_ES256_HALF_LEN ||
      BN_bn2binpad (s, raw + CIMS_AUTH_ES256_HALF_LEN, CIMS_AUTH_ES256_HALF_LEN) != CIMS_AUTH_ES256_HALF_LEN)
    return NULL;

  return g_steal_pointer (&raw);
}

/* Signs @input with SHA-256 and returns the signature as a token part.
 * Returns: (transfer full): base64url text, or NULL with @error set. */
static char *
mint_sign (EVP_PKEY *key, const char *algorithm, const char *input, GError **error)
{
  g_autoptr(EVP_MD_CTX) ctx = EVP_MD_CTX_new ();
  g_autofree guint8 *signature = NULL;
  g_autofree guint8 *raw = NULL;
  size_t signature_len = 0;
  char *encoded = NULL;

  if (ctx == NULL || EVP_DigestSignInit (ctx, NULL, EVP_sha256 (), NULL, key) != 1 ||
      EVP_DigestSign (ctx, NULL, &signature_len, (const guint8 *) input, strlen (input)) != 1)
    goto out;

  signature = g_malloc (signature_len);
  if (EVP_DigestSign (ctx, signature, &signature_len, (const guint8 *) input, strlen (input)) != 1)
    goto out;

  if (strcmp (algorithm, "ES256") == 0) {
    raw = es256_signature_from_der (signature, signature_len);
    if (raw == NULL)
      goto out;
    encoded = base64url_encode (raw, 2 * CIMS_AUTH_ES256_HALF_LEN);
  } else {
    encoded = base64url_encode (signature, signature_len);
  }

out:
  if (encoded == NULL) {
    g_autofree char *detail = cims_auth_describe_openssl_error ();
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_KEY,
                 "signing the token with %s failed: %s", algorithm, detail);
  }
  return encoded;
}

/**
 * cims_auth_token_mint:
 * Signs @claims (transfer none) with the unencrypted PEM private key at
 * @private_key_pem_path: ES256 for an EC P-256 key, RS256 for an RSA key of
 * 2048 bits or more. The header is {"alg":ALG,"typ":"JWT"}. Roles and
 * permissions are always present (empty arrays for NULL), client and aud
 * only when set, and exp is issued_at_s + ttl_s. Fails with
 * CIMS_AUTH_ERROR_KEY when the key cannot be read, is of another type, or
 * signing fails. Any thread may call it.
 * Returns: (transfer full): the compact JWT, or NULL with @error set. The
 * token is a credential: the caller should wipe it before freeing it.
 */
char *
cims_auth_token_mint (const char *private_key_pem_path,
                      const CimsAuthTokenClaims *claims,
                      GError **error)
{
  g_autoptr(EVP_PKEY) key = NULL;
  g_autofree char *header = NULL;
  g_autofree char *payload = NULL;
  g_autofree char *signing_input = NULL;
  g_autofree char *signature = NULL;
  const char *algorithm;

  g_return_val_if_fail (private_key_pem_path != NULL, NULL);
  g_return_val_if_fail (claims != NULL, NULL);
  g_return_val_if_fail (claims->issuer != NULL && claims->subject != NULL, NULL);
  g_return_val_if_fail (claims->name != NULL && claims->jurisdiction != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  key = mint_read_private_key (private_key_pem_path, error);
  if (key == NULL)
    return NULL;

  algorithm = cims_auth_key_get_algorithm (key);
  if (algorithm == NULL) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_KEY,
                 "private key %s is a %d-bit %s key; expected an EC P-256 key "
                 "or an RSA key of at least %d bits", private_key_pem_path,
                 EVP_PKEY_get_bits (key), EVP_PKEY_get0_type_name (key),
                 CIMS_AUTH_RSA_MIN_BITS);
    return NULL;
  }

  header = mint_encode_header (algorithm);
  payload = mint_encode_claims (claims);
  signing_input = g_strconcat (header, ".", payload, NULL);

  signature = mint_sign (key, algorithm, signing_input, error);
  if (signature == NULL)
    return NULL;

  return g_strconcat (signing_input, ".", signature, NULL);
}
