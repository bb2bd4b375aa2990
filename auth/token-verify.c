/* SPDX-License-Identifier: Apache-2.0 */
/* Verifies compact JWTs (RFC 7515, RFC 7519) signed with ES256 or RS256
 * against the public keys of the configured jurisdictions and agencies.
 * Signing development tokens is in token-mint.c, the access decision in policy.c. */

#include "auth/auth.h"

#include <math.h>
#include <string.h>

#include <json-glib/json-glib.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "auth/auth-private.h"

G_DEFINE_QUARK (cims-auth-error-quark, cims_auth_error)

/* Maximum token length, in bytes. Real tokens carry a few hundred bytes of
 * claims, and the limit bounds the work done on unauthenticated input. */
#define TOKEN_MAX_LEN 8192

/* Clock skew tolerated between an identity provider and the hub: a token is
 * still accepted up to 30 s after its exp and from 30 s before its nbf. */
#define CLOCK_SKEW_US (30 * G_USEC_PER_SEC)

/* Latest accepted time claim, 9999-12-31T23:59:59Z, so that converting
 * seconds to microseconds cannot overflow a gint64. */
#define TIME_CLAIM_MAX_S G_GINT64_CONSTANT (253402300799)

/* Maximum length of a claim value quoted in an error message, in characters. */
#define MESSAGE_VALUE_MAX_CHARS 64

typedef struct {
  char *issuer;
  char *owner_id;               /* id of the jurisdiction or agency */
  gboolean is_agency;
  const char *algorithm;        /* static: "ES256" or "RS256" */
  EVP_PKEY *key;
  char *key_fingerprint;        /* SHA-256 of the key's DER SubjectPublicKeyInfo, lowercase hex */
} KeyringEntry;

struct _CimsAuthKeyring {
  GHashTable *entries;          /* token_issuer -> KeyringEntry, both owned */
};

/* The parts of a token after decoding, before any claim is trusted. */
typedef struct {
  JsonObject *header;
  JsonObject *claims;
  guint8 *signature;
  gsize signature_len;
  const char *signing_input;    /* points into the token: "HEADER.PAYLOAD" */
  gsize signing_input_len;
} DecodedToken;

static void
secret_free (guint8 *data, gsize len)
{
  if (data == NULL)
    return;

  OPENSSL_cleanse (data, len);
  g_free (data);
}

static void
decoded_token_clear (DecodedToken *decoded)
{
  g_clear_pointer (&decoded->header, json_object_unref);
  g_clear_pointer (&decoded->claims, json_object_unref);
  secret_free (decoded->signature, decoded->signature_len);
  decoded->signature = NULL;
  decoded->signature_len = 0;
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (DecodedToken, decoded_token_clear)

char *
cims_auth_quote_for_message (const char *value)
{
  char non_ascii[129] = { 0 };
  g_autofree char *escaped = NULL;

  for (int i = 0; i < 128; i++)
    non_ascii[i] = (char) (0x80 + i);

  if (!g_utf8_validate (value, -1, NULL))
    return g_strdup ("(not UTF-8)");

  escaped = g_strescape (value, non_ascii);
  if (g_utf8_strlen (escaped, -1) <= MESSAGE_VALUE_MAX_CHARS)
    return g_steal_pointer (&escaped);

  g_autofree char *head = g_utf8_substring (escaped, 0, MESSAGE_VALUE_MAX_CHARS);
  return g_strconcat (head, "...", NULL);
}

static char *
time_for_message (gint64 time_us)
{
  g_autoptr(GDateTime) time = g_date_time_new_from_unix_utc (time_us / G_USEC_PER_SEC);

  if (time == NULL)
    return g_strdup_printf ("%" G_GINT64_FORMAT " us", time_us);

  return g_date_time_format_iso8601 (time);
}

char *
cims_auth_describe_openssl_error (void)
{
  unsigned long code = ERR_get_error ();
  char text[256];

  ERR_clear_error ();
  if (code == 0)
    return g_strdup ("no detail from OpenSSL");

  ERR_error_string_n (code, text, sizeof text);
  return g_strdup (text);
}

/* Maximum size of a PEM key file, in bytes. PEM keys take a few KiB, so
 * the limit only stops a misconfigured path to a large file. */
#define PEM_FILE_MAX_LEN (1024 * 1024)

BIO *
cims_auth_pem_file_read (const char *path, const char *what, GError **error)
{
  g_autoptr(GError) read_error = NULL;
  g_autofree char *contents = NULL;
  gsize len = 0;
  BIO *bio = NULL;

  if (!g_file_get_contents (path, &contents, &len, &read_error)) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_KEY,
                 "cannot read %s: %s", what, read_error->message);
    return NULL;
  }

  if (len > PEM_FILE_MAX_LEN) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_KEY,
                 "%s %s is %" G_GSIZE_FORMAT " bytes, over the 1 MiB limit for a PEM key file",
                 what, path, len);
  } else {
    bio = BIO_new (BIO_s_secmem ());
    if (bio == NULL || BIO_write (bio, contents, (int) len) != (int) len) {
      g_clear_pointer (&bio, BIO_free_all);
      g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_KEY,
                   "cannot buffer %s %s in memory", what, path);
    }
  }

  OPENSSL_cleanse (contents, len);
  return bio;
}

/* ------------------------------------------------------------------ */
/* Identity */

/* Frees @identity and every string it owns. NULL is ignored. */
void
cims_auth_identity_free (CimsAuthIdentity *identity)
{
  if (identity == NULL)
    return;

  g_free (identity->issuer);
  g_free (identity->subject);
  g_free (identity->name);
  g_free (identity->jurisdiction);
  g_strfreev (identity->roles);
  g_strfreev (identity->permissions);
  g_free (identity->client);
  g_strfreev (identity->groups);
  g_free (identity->key_fingerprint);
  g_free (identity);
}

/* Returns TRUE when the token listed @role. Never allocates. */
gboolean
cims_auth_identity_has_role (const CimsAuthIdentity *identity, const char *role)
{
  g_return_val_if_fail (identity != NULL, FALSE);
  g_return_val_if_fail (role != NULL, FALSE);

  return identity->roles != NULL &&
      g_strv_contains ((const char *const *) identity->roles, role);
}

/* Returns TRUE when the token listed @permission. Never allocates. */
gboolean
cims_auth_identity_has_permission (const CimsAuthIdentity *identity, const char *permission)
{
  g_return_val_if_fail (identity != NULL, FALSE);
  g_return_val_if_fail (permission != NULL, FALSE);

  return identity->permissions != NULL &&
      g_strv_contains ((const char *const *) identity->permissions, permission);
}

/* ------------------------------------------------------------------ */
/* Keyring */

static gboolean
key_is_p256 (EVP_PKEY *key)
{
  char group[80];
  size_t group_len = 0;
  int nid;

  if (EVP_PKEY_get_group_name (key, group, sizeof group, &group_len) != 1)
    return FALSE;

  /* OpenSSL names the curve "prime256v1", and "P-256" is its NIST name. */
  nid = OBJ_sn2nid (group);
  if (nid == NID_undef)
    nid = EC_curve_nist2nid (group);

  return nid == NID_X9_62_prime256v1;
}

const char *
cims_auth_key_get_algorithm (EVP_PKEY *key)
{
  g_return_val_if_fail (key != NULL, NULL);

  if (EVP_PKEY_is_a (key, "RSA"))
    return EVP_PKEY_get_bits (key) >= CIMS_AUTH_RSA_MIN_BITS ? "RS256" : NULL;

  if (EVP_PKEY_is_a (key, "EC"))
    return key_is_p256 (key) ? "ES256" : NULL;

  return NULL;
}

static void
keyring_entry_free (KeyringEntry *entry)
{
  g_free (entry->issuer);
  g_free (entry->owner_id);
  g_clear_pointer (&entry->key, EVP_PKEY_free);
  g_free (entry->key_fingerprint);
  g_free (entry);
}

static EVP_PKEY *
keyring_read_public_key (const char *path, GError **error)
{
  g_autoptr(BIO) bio = cims_auth_pem_file_read (path, "token key", error);
  EVP_PKEY *key;

  if (bio == NULL)
    return NULL;

  key = PEM_read_bio_PUBKEY (bio, NULL, NULL, NULL);
  if (key == NULL) {
    g_autofree char *detail = cims_auth_describe_openssl_error ();
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_KEY,
                 "token key %s is not a PEM public key: %s", path, detail);
    return NULL;
  }

  return key;
}

/* Returns: (transfer full): the SHA-256 of @key's DER SubjectPublicKeyInfo
 * as lowercase hex, or NULL when OpenSSL cannot encode it. */
static char *
key_dup_fingerprint (EVP_PKEY *key)
{
  unsigned char *der = NULL;
  int der_len = i2d_PUBKEY (key, &der);
  char *fingerprint;

  if (der_len <= 0)
    return NULL;

  fingerprint = g_compute_checksum_for_data (G_CHECKSUM_SHA256, der, (gsize) der_len);
  OPENSSL_free (der);

  return fingerprint;
}

/* Adds one jurisdiction's or agency's issuer and key. @kind is "jurisdiction"
 * or "agency", used in messages only. */
static gboolean
keyring_add (CimsAuthKeyring *keyring, const char *kind, const char *owner_id,
             gboolean is_agency, const char *issuer, const char *key_path,
             GError **error)
{
  g_autoptr(EVP_PKEY) key = NULL;
  g_autofree char *fingerprint = NULL;
  KeyringEntry *entry;
  const char *algorithm;

  if (issuer == NULL || *issuer == '\0' || key_path == NULL || *key_path == '\0') {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_KEY,
                 "%s \"%s\" needs both token_issuer and token_key", kind, owner_id);
    return FALSE;
  }

  entry = g_hash_table_lookup (keyring->entries, issuer);
  if (entry != NULL) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_KEY,
                 "token issuer \"%s\" of %s \"%s\" is already used by \"%s\"",
                 issuer, kind, owner_id, entry->owner_id);
    return FALSE;
  }

  key = keyring_read_public_key (key_path, error);
  if (key == NULL)
    return FALSE;

  algorithm = cims_auth_key_get_algorithm (key);
  if (algorithm == NULL) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_KEY,
                 "token key %s is a %d-bit %s key; expected an EC P-256 key "
                 "or an RSA key of at least %d bits", key_path,
                 EVP_PKEY_get_bits (key), EVP_PKEY_get0_type_name (key),
                 CIMS_AUTH_RSA_MIN_BITS);
    return FALSE;
  }

  fingerprint = key_dup_fingerprint (key);
  if (fingerprint == NULL) {
    g_autofree char *detail = cims_auth_describe_openssl_error ();
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_KEY,
                 "i2d_PUBKEY() failed on token key %s: %s", key_path, detail);
    return FALSE;
  }

  entry = g_new0 (KeyringEntry, 1);
  entry->issuer = g_strdup (issuer);
  entry->owner_id = g_strdup (owner_id);
  entry->is_agency = is_agency;
  entry->algorithm = algorithm;
  entry->key = g_steal_pointer (&key);
  entry->key_fingerprint = g_steal_pointer (&fingerprint);
  g_hash_table_insert (keyring->entries, entry->issuer, entry);
  g_debug ("loaded the %s key of %s \"%s\" for issuer \"%s\" from %s",
           algorithm, kind, owner_id, issuer, key_path);

  return TRUE;
}

/* Appends @entry_error to @problems as one "FILE:LINE: message" line, or
 * as the bare message when @config was not loaded from a file. */
static void
keyring_problems_add (GString *problems, const CimsConfig *config, int line,
                      const GError *entry_error)
{
  if (problems->len > 0)
    g_string_append_c (problems, '\n');

  if (config->path != NULL)
    g_string_append_printf (problems, "%s:%d: ", config->path, line);
  g_string_append (problems, entry_error->message);
}

/**
 * cims_auth_keyring_new:
 * Loads the public key of every jurisdiction and agency in @config (transfer
 * none, not kept). A jurisdiction that does not take part in the network is
 * loaded too: its staff sign in as an agency. Fails with CIMS_AUTH_ERROR_KEY
 * when a key cannot be read, is not EC P-256 or RSA of 2048 bits or more, or
 * when two entries share an issuer. Every entry is tried, and the message has
 * one "FILE:LINE: message" line for each entry that failed.
 * The keyring is immutable, so verifying from several threads is safe.
 * Returns: (transfer full): the keyring, or NULL with @error set.
 */
CimsAuthKeyring *
cims_auth_keyring_new (const CimsConfig *config, GError **error)
{
  g_autoptr(CimsAuthKeyring) keyring = NULL;
  g_autoptr(GString) problems = g_string_new (NULL);

  g_return_val_if_fail (config != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  keyring = g_new0 (CimsAuthKeyring, 1);
  keyring->entries = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                            (GDestroyNotify) keyring_entry_free);

  for (guint i = 0; config->jurisdictions != NULL && i < config->jurisdictions->len; i++) {
    const CimsConfigJurisdiction *j = g_ptr_array_index (config->jurisdictions, i);
    g_autoptr(GError) entry_error = NULL;

    if (!keyring_add (keyring, "jurisdiction", j->id, !j->participates,
                      j->token_issuer, j->token_key_path, &entry_error))
      keyring_problems_add (problems, config, j->line, entry_error);
  }

  for (guint i = 0; config->agencies != NULL && i < config->agencies->len; i++) {
    const CimsConfigAgency *agency = g_ptr_array_index (config->agencies, i);
    g_autoptr(GError) entry_error = NULL;

    if (!keyring_add (keyring, "agency", agency->id, TRUE,
                      agency->token_issuer, agency->token_key_path, &entry_error))
      keyring_problems_add (problems, config, agency->line, entry_error);
  }

  if (problems->len > 0) {
    g_set_error_literal (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_KEY, problems->str);
    return NULL;
  }

  return g_steal_pointer (&keyring);
}

gboolean
cims_auth_keyring_has_key (const CimsAuthKeyring *keyring, const char *issuer,
                           const char *key_fingerprint)
{
  const KeyringEntry *entry;

  g_return_val_if_fail (keyring != NULL, FALSE);
  g_return_val_if_fail (issuer != NULL, FALSE);

  if (key_fingerprint == NULL)
    return FALSE;

  entry = g_hash_table_lookup (keyring->entries, issuer);

  return entry != NULL && strcmp (entry->key_fingerprint, key_fingerprint) == 0;
}

const char *
cims_auth_keyring_get_fingerprint (const CimsAuthKeyring *keyring, const char *issuer)
{
  const KeyringEntry *entry;

  g_return_val_if_fail (keyring != NULL, NULL);

  entry = issuer != NULL ? g_hash_table_lookup (keyring->entries, issuer) : NULL;
  return entry != NULL ? entry->key_fingerprint : NULL;
}

const char *
cims_auth_keyring_check_identity (const CimsAuthKeyring *keyring, const CimsAuthIdentity *identity)
{
  const KeyringEntry *entry;

  g_return_val_if_fail (keyring != NULL && identity != NULL, "no keyring");

  entry = g_hash_table_lookup (keyring->entries, identity->issuer);
  if (entry == NULL)
    return "its issuer is no longer configured";

  if (identity->key_fingerprint == NULL || strcmp (entry->key_fingerprint, identity->key_fingerprint) != 0)
    return "its issuer's key was replaced";

  /* A jurisdiction that stops taking part keeps its key, and its staff
   * count as an agency's: the policy, not the keyring, decides that case. */
  if (strcmp (entry->owner_id, identity->jurisdiction) != 0)
    return "its issuer now belongs to another jurisdiction or agency id";

  return NULL;
}

/* Frees @keyring and its keys. NULL is ignored. No verification may still
 * be running with it. */
void
cims_auth_keyring_free (CimsAuthKeyring *keyring)
{
  if (keyring == NULL)
    return;

  g_clear_pointer (&keyring->entries, g_hash_table_unref);
  g_free (keyring);
}

/* ------------------------------------------------------------------ */
/* Decoding */

static int
base64url_value (char c)
{
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-')
    return 62;
  if (c == '_')
    return 63;

  return -1;
}

/* Decodes unpadded base64url (RFC 7515 section 2). Strict: any character
 * outside the URL-safe alphabet (including '=' padding), a length that
 * leaves a lone trailing character, or non-zero unused bits in the last
 * character make it fail, so every byte string has exactly one encoding.
 * Returns: (transfer full): the bytes (never NULL on success, even when
 * empty), or NULL when @text is not valid. */
static guint8 *
base64url_decode (const char *text, gsize text_len, gsize *out_len)
{
  g_autofree guint8 *out = NULL;
  guint32 bits = 0;
  guint n_bits = 0;
  gsize n = 0;

  if (text_len % 4 == 1)
    return NULL;

  out = g_malloc0 (text_len * 3 / 4 + 1);
  for (gsize i = 0; i < text_len; i++) {
    int value = base64url_value (text[i]);

    if (value < 0)
      return NULL;

    bits = (bits << 6) | (guint32) value;
    n_bits += 6;
    if (n_bits >= 8) {
      n_bits -= 8;
      out[n++] = (guint8) (bits >> n_bits);
      bits &= (1u << n_bits) - 1;
    }
  }

  if (bits != 0)
    return NULL;

  *out_len = n;
  return g_steal_pointer (&out);
}

/* Records in @user_data (a gboolean) that an object got the same member
 * twice. The "object-member" signal runs after the member is stored, so an
 * object whose size did not grow with it has a repeated name. */
static void
parser_object_member_cb (JsonParser *parser, JsonObject *object,
                         const char *member_name, gpointer user_data)
{
  GHashTable *n_members = g_object_get_data (G_OBJECT (parser), "cims-n-members");
  gboolean *has_duplicate = user_data;
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (n_members, object)) + 1;

  g_hash_table_insert (n_members, object, GUINT_TO_POINTER (n));
  if (json_object_get_size (object) != n)
    *has_duplicate = TRUE;
}

/* Parses one decoded token part as a JSON object. A repeated member name
 * is rejected: json-glib would keep the last value silently, and another
 * JWT library might keep the first one.
 * NOTE: json-glib also accepts some input that is not JSON, such as
 * single-quoted strings and hexadecimal numbers. Such a token still needs a
 * valid signature from a configured issuer.
 * Returns: (transfer full) */
static JsonObject *
token_parse_object (const guint8 *data, gsize len, const char *part_name, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GHashTable) n_members = g_hash_table_new (NULL, NULL);
  g_autoptr(GError) parse_error = NULL;
  gboolean has_duplicate = FALSE;
  JsonNode *root;

  if (!g_utf8_validate ((const char *) data, (gssize) len, NULL)) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_MALFORMED,
                 "token %s is not UTF-8 JSON text", part_name);
    return NULL;
  }

  g_object_set_data (G_OBJECT (parser), "cims-n-members", n_members);
  g_signal_connect (parser, "object-member", G_CALLBACK (parser_object_member_cb), &has_duplicate);
  if (!json_parser_load_from_data (parser, (const char *) data, (gssize) len, &parse_error)) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_MALFORMED,
                 "token %s is not valid JSON: %s", part_name, parse_error->message);
    return NULL;
  }

  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_MALFORMED,
                 "token %s is not a JSON object", part_name);
    return NULL;
  }

  if (has_duplicate) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_MALFORMED,
                 "token %s has a member name more than once", part_name);
    return NULL;
  }

  return json_node_dup_object (root);
}

static JsonObject *
token_decode_object (const char *text, gsize text_len, const char *part_name, GError **error)
{
  gsize len = 0;
  guint8 *data = base64url_decode (text, text_len, &len);
  JsonObject *object;

  if (data == NULL) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_MALFORMED,
                 "token %s is not valid unpadded base64url", part_name);
    return NULL;
  }

  object = token_parse_object (data, len, part_name, error);
  secret_free (data, len);

  return object;
}

/* Splits "HEADER.PAYLOAD.SIGNATURE" and decodes its three parts. An empty
 * signature passes here and fails the signature check later. */
static gboolean
token_decode (const char *token, DecodedToken *decoded, GError **error)
{
  gsize token_len = strnlen (token, TOKEN_MAX_LEN + 1);
  const char *dot1, *dot2, *signature_text;

  if (token_len > TOKEN_MAX_LEN) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_MALFORMED,
                 "token is longer than the %d-byte limit", TOKEN_MAX_LEN);
    return FALSE;
  }

  dot1 = memchr (token, '.', token_len);
  dot2 = dot1 ? memchr (dot1 + 1, '.', token_len - (gsize) (dot1 + 1 - token)) : NULL;
  if (dot2 == NULL || memchr (dot2 + 1, '.', token_len - (gsize) (dot2 + 1 - token)) != NULL) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_MALFORMED,
                 "token is not three base64url parts separated by dots");
    return FALSE;
  }

  decoded->header = token_decode_object (token, (gsize) (dot1 - token), "header", error);
  if (decoded->header == NULL)
    return FALSE;

  decoded->claims = token_decode_object (dot1 + 1, (gsize) (dot2 - dot1 - 1), "payload", error);
  if (decoded->claims == NULL)
    return FALSE;

  signature_text = dot2 + 1;
  decoded->signature = base64url_decode (signature_text, token_len - (gsize) (signature_text - token),
                                         &decoded->signature_len);
  if (decoded->signature == NULL) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_MALFORMED,
                 "token signature is not valid unpadded base64url");
    return FALSE;
  }

  decoded->signing_input = token;
  decoded->signing_input_len = (gsize) (dot2 - token);

  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Header and signature */

/* Returns the header's alg when it is ES256 or RS256. Header parameters
 * that point at a key (jku, jwk, x5u, x5c) are rejected, never followed:
 * the only trusted keys are the configured ones. crit is rejected because
 * no extension is understood (RFC 7515 section 4.1.11). */
static const char *
token_header_get_algorithm (JsonObject *header, GError **error)
{
  static const char *const rejected[] = { "jku", "jwk", "x5u", "x5c", "crit", NULL };
  JsonNode *node;
  const char *alg;

  for (guint i = 0; rejected[i] != NULL; i++) {
    if (json_object_has_member (header, rejected[i])) {
      g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_UNSUPPORTED_ALGORITHM,
                   "token header parameter \"%s\" is not accepted; keys come "
                   "only from the configuration", rejected[i]);
      return NULL;
    }
  }

  node = json_object_get_member (header, "alg");
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_STRING) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_UNSUPPORTED_ALGORITHM,
                 "token header is missing the \"alg\" string");
    return NULL;
  }

  alg = json_node_get_string (node);
  if (strcmp (alg, "ES256") != 0 && strcmp (alg, "RS256") != 0) {
    g_autofree char *quoted = cims_auth_quote_for_message (alg);
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_UNSUPPORTED_ALGORITHM,
                 "token alg \"%s\" is not accepted; only ES256 and RS256 are", quoted);
    return NULL;
  }

  return alg;
}

/* Converts a JWS ES256 signature (r and s as 32-byte big-endian integers,
 * RFC 7518 section 3.4) to the DER form OpenSSL verifies.
 * Returns: (transfer full): the DER bytes, or NULL on an OpenSSL failure. */
static guint8 *
es256_signature_to_der (const guint8 *raw, gsize *der_len)
{
  g_autoptr(ECDSA_SIG) sig = ECDSA_SIG_new ();
  BIGNUM *r = BN_bin2bn (raw, CIMS_AUTH_ES256_HALF_LEN, NULL);
  BIGNUM *s = BN_bin2bn (raw + CIMS_AUTH_ES256_HALF_LEN, CIMS_AUTH_ES256_HALF_LEN, NULL);
  guint8 *der = NULL, *cursor;
  int len;

  if (sig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0 (sig, r, s) != 1)
    goto out;
  r = s = NULL;                 /* owned by sig now */

  len = i2d_ECDSA_SIG (sig, NULL);
  if (len <= 0)
    goto out;

  der = g_malloc (len);
  cursor = der;
  i2d_ECDSA_SIG (sig, &cursor);
  *der_len = (gsize) len;

out:
  BN_free (r);
  BN_free (s);
  return der;
}

static gboolean
token_verify_signature (const KeyringEntry *entry, const DecodedToken *decoded, GError **error)
{
  g_autoptr(EVP_MD_CTX) ctx = EVP_MD_CTX_new ();
  g_autofree guint8 *der = NULL;
  const guint8 *signature = decoded->signature;
  gsize signature_len = decoded->signature_len;
  int status;

  if (strcmp (entry->algorithm, "ES256") == 0) {
    if (signature_len != 2 * CIMS_AUTH_ES256_HALF_LEN) {
      g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_BAD_SIGNATURE,
                   "ES256 signature is %" G_GSIZE_FORMAT " bytes; expected %d",
                   signature_len, 2 * CIMS_AUTH_ES256_HALF_LEN);
      return FALSE;
    }

    der = es256_signature_to_der (signature, &signature_len);
    signature = der;
  }

  status = (ctx != NULL && signature != NULL &&
            EVP_DigestVerifyInit (ctx, NULL, EVP_sha256 (), NULL, entry->key) == 1)
      ? EVP_DigestVerify (ctx, signature, signature_len,
                          (const guint8 *) decoded->signing_input, decoded->signing_input_len)
      : -1;

  /* A failed verification leaves entries on this thread's OpenSSL error
   * queue. Drop them so they do not show up in an unrelated message. */
  ERR_clear_error ();
  if (status != 1) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_BAD_SIGNATURE,
                 "token signature does not verify with the %s key of issuer \"%s\"",
                 entry->algorithm, entry->issuer);
    return FALSE;
  }

  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Claims */

/* Looks up a string claim. A missing optional claim sets *value to NULL
 * and succeeds. A present claim must be a non-empty string. */
static gboolean
claims_get_string (JsonObject *claims, const char *name, gboolean is_required,
                   const char **value, GError **error)
{
  JsonNode *node = json_object_get_member (claims, name);

  *value = NULL;
  if (node == NULL) {
    if (!is_required)
      return TRUE;
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_INVALID_CLAIM,
                 "token is missing the \"%s\" claim", name);
    return FALSE;
  }

  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_INVALID_CLAIM,
                 "token claim \"%s\" is not a string", name);
    return FALSE;
  }

  *value = json_node_get_string (node);
  if (**value == '\0') {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_INVALID_CLAIM,
                 "token claim \"%s\" is empty", name);
    return FALSE;
  }

  return TRUE;
}

static gboolean
node_is_string (JsonNode *node)
{
  return JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING;
}

/* Reads a claim that is an array of strings into a NULL-terminated copy
 * (transfer full) in *value. A missing optional claim sets *value to NULL
 * and succeeds. */
static gboolean
claims_dup_string_array (JsonObject *claims, const char *name, gboolean is_required,
                         char ***value, GError **error)
{
  JsonNode *node = json_object_get_member (claims, name);
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
  JsonArray *array;

  *value = NULL;
  if (node == NULL && !is_required)
    return TRUE;

  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node)) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_INVALID_CLAIM,
                 node == NULL ? "token is missing the \"%s\" claim"
                              : "token claim \"%s\" is not an array of strings", name);
    return FALSE;
  }

  array = json_node_get_array (node);
  for (guint i = 0; i < json_array_get_length (array); i++) {
    JsonNode *element = json_array_get_element (array, i);

    if (!node_is_string (element)) {
      g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_INVALID_CLAIM,
                   "element %u of token claim \"%s\" is not a string", i, name);
      return FALSE;
    }
    g_strv_builder_add (builder, json_node_get_string (element));
  }

  *value = g_strv_builder_end (builder);

  return TRUE;
}

/* Reads a NumericDate claim (seconds since the epoch, RFC 7519 section 2)
 * into microseconds. A missing optional claim leaves *value_us at 0. */
static gboolean
claims_get_time (JsonObject *claims, const char *name, gboolean is_required,
                 gint64 *value_us, GError **error)
{
  JsonNode *node = json_object_get_member (claims, name);
  GType type = node != NULL && JSON_NODE_HOLDS_VALUE (node) ? json_node_get_value_type (node)
                                                             : G_TYPE_INVALID;
  double seconds;

  *value_us = 0;
  if (node == NULL) {
    if (!is_required)
      return TRUE;
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_INVALID_CLAIM,
                 "token is missing the \"%s\" claim", name);
    return FALSE;
  }

  if (type != G_TYPE_INT64 && type != G_TYPE_DOUBLE) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_INVALID_CLAIM,
                 "token claim \"%s\" is not a number of seconds", name);
    return FALSE;
  }

  seconds = type == G_TYPE_INT64 ? (double) json_node_get_int (node) : json_node_get_double (node);
  if (!isfinite (seconds) || seconds < 0 || seconds > (double) TIME_CLAIM_MAX_S) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_INVALID_CLAIM,
                 "token claim \"%s\" is %g, outside 0 to %" G_GINT64_FORMAT " seconds",
                 name, seconds, TIME_CLAIM_MAX_S);
    return FALSE;
  }

  *value_us = type == G_TYPE_INT64 ? json_node_get_int (node) * G_USEC_PER_SEC
                                   : (gint64) (seconds * G_USEC_PER_SEC);

  return TRUE;
}

/* Returns: (transfer container): the strings of an aud claim, or NULL when
 * it is neither a string nor an array of strings. */
static GPtrArray *
audience_dup_values (JsonNode *node)
{
  g_autoptr(GPtrArray) values = g_ptr_array_new ();
  JsonArray *array;

  if (node_is_string (node)) {
    g_ptr_array_add (values, (gpointer) json_node_get_string (node));
    return g_steal_pointer (&values);
  }

  if (!JSON_NODE_HOLDS_ARRAY (node))
    return NULL;

  array = json_node_get_array (node);
  for (guint i = 0; i < json_array_get_length (array); i++) {
    JsonNode *element = json_array_get_element (array, i);

    if (!node_is_string (element))
      return NULL;
    g_ptr_array_add (values, (gpointer) json_node_get_string (element));
  }

  return g_steal_pointer (&values);
}

/* Checks the optional aud claim against @audience. A token that names
 * audiences is meant only for them, so it is rejected when @audience is
 * NULL (RFC 7519 section 4.1.3). */
static gboolean
claims_check_audience (JsonObject *claims, const char *audience, GError **error)
{
  JsonNode *node = json_object_get_member (claims, "aud");
  g_autoptr(GPtrArray) values = NULL;

  if (node == NULL)
    return TRUE;

  values = audience_dup_values (node);
  if (values == NULL) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_INVALID_CLAIM,
                 "token claim \"aud\" is neither a string nor an array of strings");
    return FALSE;
  }

  for (guint i = 0; audience != NULL && i < values->len; i++) {
    if (strcmp (g_ptr_array_index (values, i), audience) == 0)
      return TRUE;
  }

  if (audience == NULL)
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_WRONG_AUDIENCE,
                 "token names an audience, but no audience is expected here");
  else
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_WRONG_AUDIENCE,
                 "token audience does not include \"%s\"", audience);

  return FALSE;
}

static gboolean
identity_check_time (const CimsAuthIdentity *identity, gint64 now_us, GError **error)
{
  if (now_us >= identity->expires_at_us + CLOCK_SKEW_US) {
    g_autofree char *exp = time_for_message (identity->expires_at_us);
    g_autofree char *now = time_for_message (now_us);
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_EXPIRED,
                 "token expired at %s; it is now %s", exp, now);
    return FALSE;
  }

  if (identity->not_before_us != 0 && now_us < identity->not_before_us - CLOCK_SKEW_US) {
    g_autofree char *nbf = time_for_message (identity->not_before_us);
    g_autofree char *now = time_for_message (now_us);
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_NOT_YET_VALID,
                 "token is not valid before %s; it is now %s", nbf, now);
    return FALSE;
  }

  return TRUE;
}

static gboolean
identity_set_strings (CimsAuthIdentity *identity, JsonObject *claims, GError **error)
{
  const char *sub, *name, *jurisdiction, *client;

  if (!claims_get_string (claims, "sub", TRUE, &sub, error) ||
      !claims_get_string (claims, "name", TRUE, &name, error) ||
      !claims_get_string (claims, "jurisdiction", TRUE, &jurisdiction, error) ||
      !claims_get_string (claims, "client", FALSE, &client, error))
    return FALSE;

  /* The client version goes into the audit log. */
  if (client != NULL && !cims_config_client_is_valid (client)) {
    g_autofree char *head = g_strndup (client, 64);
    g_autofree char *escaped = g_strescape (head, NULL);

    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_INVALID_CLAIM,
                 "token claim \"client\" \"%s\" is invalid: use 1 to 64 printable ASCII characters", escaped);
    return FALSE;
  }

  identity->subject = g_strdup (sub);
  identity->name = g_strdup (name);
  identity->jurisdiction = g_strdup (jurisdiction);
  identity->client = g_strdup (client);

  return claims_dup_string_array (claims, "roles", TRUE, &identity->roles, error) &&
      claims_dup_string_array (claims, "permissions", TRUE, &identity->permissions, error) &&
      claims_dup_string_array (claims, "groups", FALSE, &identity->groups, error);
}

/* Builds the identity from claims whose signature has been verified. The
 * jurisdiction claim must name the owner of the issuer: one identity
 * provider cannot vouch for another jurisdiction's staff. */
static CimsAuthIdentity *
identity_new_from_claims (const KeyringEntry *entry, JsonObject *claims, GError **error)
{
  g_autoptr(CimsAuthIdentity) identity = g_new0 (CimsAuthIdentity, 1);

  identity->issuer = g_strdup (entry->issuer);
  identity->is_agency = entry->is_agency;
  identity->key_fingerprint = g_strdup (entry->key_fingerprint);

  if (!identity_set_strings (identity, claims, error))
    return NULL;

  if (strcmp (identity->jurisdiction, entry->owner_id) != 0) {
    g_autofree char *quoted = cims_auth_quote_for_message (identity->jurisdiction);
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_INVALID_CLAIM,
                 "token from issuer \"%s\" claims jurisdiction \"%s\", but that "
                 "issuer belongs to \"%s\"", entry->issuer, quoted, entry->owner_id);
    return NULL;
  }

  if (!claims_get_time (claims, "iat", TRUE, &identity->issued_at_us, error) ||
      !claims_get_time (claims, "exp", TRUE, &identity->expires_at_us, error) ||
      !claims_get_time (claims, "nbf", FALSE, &identity->not_before_us, error))
    return NULL;

  return g_steal_pointer (&identity);
}

/* Finds the keyring entry for the token's iss and checks that the header's
 * alg is the one that entry's key type allows. */
static const KeyringEntry *
keyring_lookup_for_token (const CimsAuthKeyring *keyring, const DecodedToken *decoded,
                          const char *alg, GError **error)
{
  const KeyringEntry *entry;
  const char *iss;

  if (!claims_get_string (decoded->claims, "iss", TRUE, &iss, error))
    return NULL;

  entry = g_hash_table_lookup (keyring->entries, iss);
  if (entry == NULL) {
    g_autofree char *quoted = cims_auth_quote_for_message (iss);
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_UNKNOWN_ISSUER,
                 "token issuer \"%s\" is not configured", quoted);
    return NULL;
  }

  if (strcmp (alg, entry->algorithm) != 0) {
    g_set_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_UNSUPPORTED_ALGORITHM,
                 "token alg \"%s\" does not match issuer \"%s\", whose key takes %s",
                 alg, entry->issuer, entry->algorithm);
    return NULL;
  }

  return entry;
}

/**
 * cims_auth_token_verify:
 * Verifies @token (transfer none) with the keys in @keyring. The signature is
 * checked before any claim other than iss is used. exp and nbf are checked
 * with a 30 s allowance for clock skew. Any thread may call it.
 * Returns: (transfer full): the identity, or NULL with a CIMS_AUTH_ERROR
 * whose message names the failed check and the value, never the token.
 */
CimsAuthIdentity *
cims_auth_token_verify (const CimsAuthKeyring *keyring, const char *token,
                        const char *audience, gint64 now_us, GError **error)
{
  g_auto(DecodedToken) decoded = { 0 };
  g_autoptr(CimsAuthIdentity) identity = NULL;
  const KeyringEntry *entry;
  const char *alg;

  g_return_val_if_fail (keyring != NULL, NULL);
  g_return_val_if_fail (token != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!token_decode (token, &decoded, error))
    return NULL;

  alg = token_header_get_algorithm (decoded.header, error);
  if (alg == NULL)
    return NULL;

  entry = keyring_lookup_for_token (keyring, &decoded, alg, error);
  if (entry == NULL)
    return NULL;

  if (!token_verify_signature (entry, &decoded, error))
    return NULL;

  identity = identity_new_from_claims (entry, decoded.claims, error);
  if (identity == NULL)
    return NULL;

  if (!claims_check_audience (decoded.claims, audience, error) ||
      !identity_check_time (identity, now_us, error))
    return NULL;

  return g_steal_pointer (&identity);
}
