/* SPDX-License-Identifier: Apache-2.0 */
/* Token verification and minting: every accepted form fills the identity,
 * and every rejected form fails with its own error code. Keys are made at
 * start, and tokens for bad cases are built by hand. */

#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>
#include <openssl/x509.h>

#include "auth/auth.h"
#include "auth-test-region.h"

#define NOW_S G_GINT64_CONSTANT (1750000000)    /* 2025-06-15T15:06:40Z */
#define NOW_US (NOW_S * G_USEC_PER_SEC)
#define ES256_HEADER "{\"alg\":\"ES256\",\"typ\":\"JWT\"}"
#define RS256_HEADER "{\"alg\":\"RS256\",\"typ\":\"JWT\"}"

static AuthTestRegion *region;
static CimsConfig *config;
static CimsAuthKeyring *keyring;

/* ------------------------------------------------------------------ */
/* Helpers */

/* Returns: (transfer full): valid claims of a Boston viewer. */
static JsonObject *
claims_new (const char *issuer, const char *jurisdiction)
{
  JsonObject *claims = json_object_new ();
  JsonArray *roles = json_array_new ();
  JsonArray *permissions = json_array_new ();

  json_array_add_string_element (roles, "viewer");
  json_array_add_string_element (permissions, "view");

  json_object_set_string_member (claims, "iss", issuer);
  json_object_set_string_member (claims, "sub", "u-1001");
  json_object_set_string_member (claims, "name", "Pat Doe");
  json_object_set_string_member (claims, "jurisdiction", jurisdiction);
  json_object_set_array_member (claims, "roles", roles);
  json_object_set_array_member (claims, "permissions", permissions);
  json_object_set_int_member (claims, "iat", NOW_S - 60);
  json_object_set_int_member (claims, "exp", NOW_S + 3600);
  json_object_set_string_member (claims, "aud", TEST_AUDIENCE);

  return claims;
}

static JsonObject *
claims_new_boston (void)
{
  return claims_new (TEST_ISSUER_BOSTON, "boston");
}

static char *
json_object_to_text (JsonObject *object)
{
  g_autoptr(JsonNode) node = json_node_new (JSON_NODE_OBJECT);

  json_node_set_object (node, object);
  return json_to_string (node, FALSE);
}

static char *
token_sign (EVP_PKEY *key, const char *header_json, JsonObject *claims)
{
  g_autofree char *payload = json_object_to_text (claims);

  return auth_test_sign (key, header_json, payload);
}

/* Builds "HEADER.PAYLOAD.SIGNATURE" from raw JSON and a signature text. */
static char *
token_assemble (const char *header_json, const char *payload_json, const char *signature)
{
  g_autofree char *header = auth_test_base64url (header_json, -1);
  g_autofree char *payload = auth_test_base64url (payload_json, -1);

  return g_strconcat (header, ".", payload, ".", signature, NULL);
}

static CimsAuthIdentity *
token_verify_ok (const char *token, const char *audience)
{
  g_autoptr(GError) error = NULL;
  CimsAuthIdentity *identity = cims_auth_token_verify (keyring, token, audience, NOW_US, &error);

  g_assert_no_error (error);
  g_assert_nonnull (identity);

  return identity;
}

/* Checks the rejection code, and that the message never quotes the token
 * or its signature. */
static void
assert_token_rejected (const char *token, const char *audience, CimsAuthError code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(CimsAuthIdentity) identity = cims_auth_token_verify (keyring, token, audience,
                                                                 NOW_US, &error);
  const char *signature = strrchr (token, '.');

  g_assert_null (identity);
  g_assert_error (error, CIMS_AUTH_ERROR, (gint) code);
  g_test_message ("rejected: %s", error->message);
  g_assert_null (strstr (error->message, token));
  if (signature != NULL && strlen (signature) > 16)
    g_assert_null (strstr (error->message, signature + 1));
}

static char *
mint_ok (const char *key_name, const CimsAuthTokenClaims *claims)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *key_path = auth_test_region_get_private_key_path (region, key_name);
  char *token = cims_auth_token_mint (key_path, claims, &error);

  g_assert_no_error (error);
  g_assert_nonnull (token);

  return token;
}

static void
assert_strv_equal (char **actual, const char *const *expected)
{
  g_assert_nonnull (actual);
  g_assert_cmpuint (g_strv_length (actual), ==, g_strv_length ((char **) expected));
  for (guint i = 0; expected[i] != NULL; i++)
    g_assert_cmpstr (actual[i], ==, expected[i]);
}

/* ------------------------------------------------------------------ */
/* Accepted tokens */

static void
test_token_verify_accepts_es256 (void)
{
  const char *const roles[] = { "viewer", "auditor", NULL };
  const char *const permissions[] = { "view", "restrict", NULL };
  CimsAuthTokenClaims claims = {
    .issuer = TEST_ISSUER_BOSTON, .subject = "u-1001", .name = "Pat Doe",
    .jurisdiction = "boston", .roles = roles, .permissions = permissions,
    .client = "wall-decoder/2.1", .audience = TEST_AUDIENCE,
    .issued_at_s = NOW_S - 60, .ttl_s = 900,
  };
  g_autofree char *token = mint_ok ("boston", &claims);
  g_autoptr(CimsAuthIdentity) identity = token_verify_ok (token, TEST_AUDIENCE);

  g_assert_true (g_str_has_prefix (token, "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9."));
  g_assert_cmpstr (identity->issuer, ==, TEST_ISSUER_BOSTON);
  g_assert_cmpstr (identity->subject, ==, "u-1001");
  g_assert_cmpstr (identity->name, ==, "Pat Doe");
  g_assert_cmpstr (identity->jurisdiction, ==, "boston");
  g_assert_false (identity->is_agency);
  assert_strv_equal (identity->roles, roles);
  assert_strv_equal (identity->permissions, permissions);
  g_assert_cmpstr (identity->client, ==, "wall-decoder/2.1");
  g_assert_cmpint (identity->issued_at_us, ==, (NOW_S - 60) * G_USEC_PER_SEC);
  g_assert_cmpint (identity->expires_at_us, ==, (NOW_S - 60 + 900) * G_USEC_PER_SEC);
  g_assert_cmpint (identity->not_before_us, ==, 0);
  g_assert_true (cims_auth_identity_has_role (identity, "auditor"));
  g_assert_false (cims_auth_identity_has_role (identity, "commander"));
  g_assert_true (cims_auth_identity_has_permission (identity, "restrict"));
  g_assert_false (cims_auth_identity_has_permission (identity, "download"));
}

static void
test_token_verify_accepts_rs256 (void)
{
  const char *const roles[] = { "viewer", NULL };
  CimsAuthTokenClaims claims = {
    .issuer = TEST_ISSUER_CHELSEA, .subject = "c-77", .name = "Ana Ruiz",
    .jurisdiction = "chelsea", .roles = roles, .permissions = NULL,
    .issued_at_s = NOW_S, .ttl_s = 3600,
  };
  g_autofree char *token = mint_ok ("chelsea", &claims);
  g_autoptr(CimsAuthIdentity) identity = token_verify_ok (token, TEST_AUDIENCE);
  const char *const no_permissions[] = { NULL };

  g_assert_true (g_str_has_prefix (token, "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."));
  g_assert_cmpstr (identity->issuer, ==, TEST_ISSUER_CHELSEA);
  g_assert_cmpstr (identity->subject, ==, "c-77");
  g_assert_cmpstr (identity->name, ==, "Ana Ruiz");
  g_assert_cmpstr (identity->jurisdiction, ==, "chelsea");
  g_assert_false (identity->is_agency);
  assert_strv_equal (identity->roles, roles);
  assert_strv_equal (identity->permissions, no_permissions);
  g_assert_null (identity->client);
  g_assert_cmpint (identity->issued_at_us, ==, NOW_S * G_USEC_PER_SEC);
  g_assert_cmpint (identity->expires_at_us, ==, (NOW_S + 3600) * G_USEC_PER_SEC);
  g_assert_cmpint (identity->not_before_us, ==, 0);
}

/* A token signed outside token-mint.c, with nbf, an aud array and a
 * fractional exp. */
static void
test_token_verify_accepts_hand_signed_claims (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autoptr(JsonArray) audiences = json_array_new ();
  g_autofree char *token = NULL;
  g_autoptr(CimsAuthIdentity) identity = NULL;

  json_array_add_string_element (audiences, "other-service");
  json_array_add_string_element (audiences, TEST_AUDIENCE);
  json_object_set_array_member (claims, "aud", json_array_ref (audiences));
  json_object_set_int_member (claims, "nbf", NOW_S - 10);
  json_object_set_double_member (claims, "exp", (double) NOW_S + 100.5);

  token = token_sign (region->boston_key, ES256_HEADER, claims);
  identity = token_verify_ok (token, TEST_AUDIENCE);

  g_assert_cmpint (identity->not_before_us, ==, (NOW_S - 10) * G_USEC_PER_SEC);
  g_assert_cmpint (identity->expires_at_us, ==, (NOW_S + 100) * G_USEC_PER_SEC + G_USEC_PER_SEC / 2);
}

static void
test_token_verify_accepts_agency (void)
{
  g_autoptr(JsonObject) claims = claims_new (TEST_ISSUER_STATE_POLICE, "state-police");
  g_autofree char *token = token_sign (region->state_police_key, ES256_HEADER, claims);
  g_autoptr(CimsAuthIdentity) identity = token_verify_ok (token, TEST_AUDIENCE);

  g_assert_cmpstr (identity->jurisdiction, ==, "state-police");
  g_assert_true (identity->is_agency);
}

static void
test_token_verify_treats_non_participant_as_agency (void)
{
  g_autoptr(JsonObject) claims = claims_new (TEST_ISSUER_CAMBRIDGE, "cambridge");
  g_autofree char *token = token_sign (region->cambridge_key, ES256_HEADER, claims);
  g_autoptr(CimsAuthIdentity) identity = token_verify_ok (token, TEST_AUDIENCE);

  g_assert_cmpstr (identity->jurisdiction, ==, "cambridge");
  g_assert_true (identity->is_agency);
}

static void
test_token_verify_accepts_exp_within_skew (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = NULL;
  g_autoptr(CimsAuthIdentity) identity = NULL;

  json_object_set_int_member (claims, "exp", NOW_S - 20);
  token = token_sign (region->boston_key, ES256_HEADER, claims);
  identity = token_verify_ok (token, TEST_AUDIENCE);

  g_assert_cmpint (identity->expires_at_us, ==, (NOW_S - 20) * G_USEC_PER_SEC);
}

static void
test_token_verify_accepts_missing_aud (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = NULL;
  g_autoptr(CimsAuthIdentity) identity = NULL;

  json_object_remove_member (claims, "aud");
  token = token_sign (region->boston_key, ES256_HEADER, claims);
  identity = token_verify_ok (token, TEST_AUDIENCE);

  g_assert_cmpstr (identity->subject, ==, "u-1001");
}

/* ------------------------------------------------------------------ */
/* Algorithm and header */

static void
test_token_verify_rejects_alg_none_without_signature (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *payload = json_object_to_text (claims);
  g_autofree char *token = token_assemble ("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, "");

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_UNSUPPORTED_ALGORITHM);
}

static void
test_token_verify_rejects_alg_none_with_signature (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *valid = token_sign (region->boston_key, ES256_HEADER, claims);
  g_autofree char *payload = json_object_to_text (claims);
  g_autofree char *token = token_assemble ("{\"alg\":\"none\"}", payload, strrchr (valid, '.') + 1);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_UNSUPPORTED_ALGORITHM);
}

/* The classic key-confusion attack: HMAC keyed with the issuer's public
 * key PEM, which an attacker can read, as the shared secret. */
static void
test_token_verify_rejects_hs256_with_public_key (void)
{
  g_autofree char *pem_path = auth_test_region_get_public_key_path (region, "boston");
  g_autofree char *pem = NULL;
  gsize pem_len = 0;
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *header = auth_test_base64url ("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", -1);
  g_autofree char *payload_json = json_object_to_text (claims);
  g_autofree char *payload = auth_test_base64url (payload_json, -1);
  g_autofree char *input = g_strconcat (header, ".", payload, NULL);
  g_autoptr(GHmac) hmac = NULL;
  guint8 digest[32];
  gsize digest_len = sizeof digest;
  g_autofree char *mac = NULL;
  g_autofree char *token = NULL;

  g_assert_true (g_file_get_contents (pem_path, &pem, &pem_len, NULL));
  hmac = g_hmac_new (G_CHECKSUM_SHA256, (const guint8 *) pem, pem_len);
  g_hmac_update (hmac, (const guint8 *) input, -1);
  g_hmac_get_digest (hmac, digest, &digest_len);
  mac = auth_test_base64url (digest, (gssize) digest_len);
  token = g_strconcat (input, ".", mac, NULL);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_UNSUPPORTED_ALGORITHM);
}

static void
test_token_verify_rejects_rs256_for_ec_issuer (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = token_sign (region->chelsea_key, RS256_HEADER, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_UNSUPPORTED_ALGORITHM);
}

static void
test_token_verify_rejects_es256_for_rsa_issuer (void)
{
  g_autoptr(JsonObject) claims = claims_new (TEST_ISSUER_CHELSEA, "chelsea");
  g_autofree char *token = token_sign (region->boston_key, ES256_HEADER, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_UNSUPPORTED_ALGORITHM);
}

static void
assert_header_rejected (const char *header_json)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = token_sign (region->boston_key, header_json, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_UNSUPPORTED_ALGORITHM);
}

static void
test_token_verify_rejects_es384 (void)
{
  assert_header_rejected ("{\"alg\":\"ES384\",\"typ\":\"JWT\"}");
}

static void
test_token_verify_rejects_ps256 (void)
{
  assert_header_rejected ("{\"alg\":\"PS256\",\"typ\":\"JWT\"}");
}

static void
test_token_verify_rejects_missing_alg (void)
{
  assert_header_rejected ("{\"typ\":\"JWT\"}");
}

static void
test_token_verify_rejects_jku_header (void)
{
  assert_header_rejected ("{\"alg\":\"ES256\",\"jku\":\"http://127.0.0.1:9/keys.json\"}");
}

static void
test_token_verify_rejects_jwk_header (void)
{
  assert_header_rejected ("{\"alg\":\"ES256\",\"jwk\":{\"kty\":\"EC\",\"crv\":\"P-256\"}}");
}

static void
test_token_verify_rejects_x5u_header (void)
{
  assert_header_rejected ("{\"alg\":\"ES256\",\"x5u\":\"http://127.0.0.1:9/cert.pem\"}");
}

/* ------------------------------------------------------------------ */
/* Signature and issuer */

static void
test_token_verify_rejects_other_signing_key (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = token_sign (region->rogue_key, ES256_HEADER, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_BAD_SIGNATURE);
}

/* Boston's key signs a token that names Cambridge's issuer. */
static void
test_token_verify_rejects_wrong_issuer (void)
{
  g_autoptr(JsonObject) claims = claims_new (TEST_ISSUER_CAMBRIDGE, "cambridge");
  g_autofree char *token = token_sign (region->boston_key, ES256_HEADER, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_BAD_SIGNATURE);
}

static void
test_token_verify_rejects_unknown_issuer (void)
{
  g_autoptr(JsonObject) claims = claims_new ("https://idp.nowhere.test", "boston");
  g_autofree char *token = token_sign (region->boston_key, ES256_HEADER, claims);
  g_autoptr(GError) error = NULL;
  g_autoptr(CimsAuthIdentity) identity = cims_auth_token_verify (keyring, token, TEST_AUDIENCE,
                                                                 NOW_US, &error);

  g_assert_null (identity);
  g_assert_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_UNKNOWN_ISSUER);
  g_assert_cmpstr (error->message, ==, "token issuer \"https://idp.nowhere.test\" is not configured");
}

static void
test_token_verify_rejects_foreign_jurisdiction (void)
{
  g_autoptr(JsonObject) claims = claims_new (TEST_ISSUER_BOSTON, "chelsea");
  g_autofree char *token = token_sign (region->boston_key, ES256_HEADER, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_INVALID_CLAIM);
}

static void
test_token_verify_rejects_tampered_payload (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *valid = token_sign (region->boston_key, ES256_HEADER, claims);
  g_autoptr(JsonArray) permissions = json_array_new ();
  g_autofree char *payload = NULL;
  g_autofree char *token = NULL;

  json_array_add_string_element (permissions, "view");
  json_array_add_string_element (permissions, "restrict");
  json_object_set_array_member (claims, "permissions", json_array_ref (permissions));
  payload = json_object_to_text (claims);
  token = token_assemble (ES256_HEADER, payload, strrchr (valid, '.') + 1);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_BAD_SIGNATURE);
}

/* ------------------------------------------------------------------ */
/* Claims */

static void
test_token_verify_rejects_wrong_audience (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = NULL;

  json_object_set_string_member (claims, "aud", "another-hub");
  token = token_sign (region->boston_key, ES256_HEADER, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_WRONG_AUDIENCE);
}

static void
test_token_verify_rejects_aud_without_expected_audience (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = token_sign (region->boston_key, ES256_HEADER, claims);

  assert_token_rejected (token, NULL, CIMS_AUTH_ERROR_WRONG_AUDIENCE);
}

static void
test_token_verify_rejects_expired (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = NULL;

  json_object_set_int_member (claims, "exp", NOW_S - 31);
  token = token_sign (region->boston_key, ES256_HEADER, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_EXPIRED);
}

static void
test_token_verify_rejects_not_yet_valid (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = NULL;

  json_object_set_int_member (claims, "nbf", NOW_S + 31);
  token = token_sign (region->boston_key, ES256_HEADER, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_NOT_YET_VALID);
}

static void
test_token_verify_rejects_exp_string (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = NULL;

  json_object_set_string_member (claims, "exp", "1750003600");
  token = token_sign (region->boston_key, ES256_HEADER, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_INVALID_CLAIM);
}

static void
test_token_verify_rejects_bad_client (void)
{
  const char *const clients[] = { "", "wall\001decoder", "d\303\251codeur", NULL };
  g_autofree char *long_client = g_strnfill (65, 'a');

  /* The client version goes into the audit log: only 1 to 64 printable
   * ASCII characters are taken. */
  for (guint i = 0; i < G_N_ELEMENTS (clients); i++) {
    g_autoptr(JsonObject) claims = claims_new_boston ();
    g_autofree char *token = NULL;

    json_object_set_string_member (claims, "client", clients[i] != NULL ? clients[i] : long_client);
    token = token_sign (region->boston_key, ES256_HEADER, claims);
    assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_INVALID_CLAIM);
  }
}

static void
test_token_verify_rejects_missing_exp (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = NULL;

  json_object_remove_member (claims, "exp");
  token = token_sign (region->boston_key, ES256_HEADER, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_INVALID_CLAIM);
}

static void
test_token_verify_rejects_missing_iat (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = NULL;

  json_object_remove_member (claims, "iat");
  token = token_sign (region->boston_key, ES256_HEADER, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_INVALID_CLAIM);
}

static void
test_token_verify_rejects_roles_string (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = NULL;

  json_object_set_string_member (claims, "roles", "viewer");
  token = token_sign (region->boston_key, ES256_HEADER, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_INVALID_CLAIM);
}

/* The optional groups claim is copied when present and NULL when absent. */
static void
test_token_verify_reads_groups (void)
{
  const char *const groups[] = { "patrol", "detectives", NULL };
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autoptr(JsonArray) array = json_array_new ();
  g_autofree char *token = NULL;
  g_autofree char *plain_token = NULL;
  g_autoptr(CimsAuthIdentity) identity = NULL;
  g_autoptr(CimsAuthIdentity) plain_identity = NULL;

  plain_token = token_sign (region->boston_key, ES256_HEADER, claims);
  plain_identity = token_verify_ok (plain_token, TEST_AUDIENCE);
  g_assert_null (plain_identity->groups);

  json_array_add_string_element (array, "patrol");
  json_array_add_string_element (array, "detectives");
  json_object_set_array_member (claims, "groups", json_array_ref (array));
  token = token_sign (region->boston_key, ES256_HEADER, claims);
  identity = token_verify_ok (token, TEST_AUDIENCE);

  assert_strv_equal (identity->groups, groups);
}

static void
test_token_verify_rejects_groups_string (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = NULL;

  json_object_set_string_member (claims, "groups", "patrol");
  token = token_sign (region->boston_key, ES256_HEADER, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_INVALID_CLAIM);
}

static void
test_token_verify_rejects_group_number (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autoptr(JsonArray) array = json_array_new ();
  g_autofree char *token = NULL;

  json_array_add_string_element (array, "patrol");
  json_array_add_int_element (array, 3);
  json_object_set_array_member (claims, "groups", json_array_ref (array));
  token = token_sign (region->boston_key, ES256_HEADER, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_INVALID_CLAIM);
}

static void
test_token_verify_rejects_permission_number (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autoptr(JsonArray) permissions = json_array_new ();
  g_autofree char *token = NULL;

  json_array_add_string_element (permissions, "view");
  json_array_add_int_element (permissions, 7);
  json_object_set_array_member (claims, "permissions", json_array_ref (permissions));
  token = token_sign (region->boston_key, ES256_HEADER, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_INVALID_CLAIM);
}

static void
test_token_verify_rejects_missing_sub (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = NULL;

  json_object_remove_member (claims, "sub");
  token = token_sign (region->boston_key, ES256_HEADER, claims);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_INVALID_CLAIM);
}

/* A repeated claim name would let two JWT libraries read two different
 * identities from one signed token. */
static void
test_token_verify_rejects_duplicate_claim (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *json = json_object_to_text (claims);
  g_autofree char *doubled = NULL;
  g_autofree char *token = NULL;

  g_assert_cmpint (json[strlen (json) - 1], ==, '}');
  json[strlen (json) - 1] = '\0';
  doubled = g_strconcat (json, ",\"jurisdiction\":\"chelsea\"}", NULL);
  token = auth_test_sign (region->boston_key, ES256_HEADER, doubled);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_MALFORMED);
}

/* ------------------------------------------------------------------ */
/* Encoding and size */

static void
test_token_verify_rejects_malformed_base64 (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *valid = token_sign (region->boston_key, ES256_HEADER, claims);
  g_auto(GStrv) parts = g_strsplit (valid, ".", -1);
  /* Each variant breaks the payload part in one way. */
  const char *const payload_suffixes[] = { "*", "=", "==", "+", "/", "A", " ", NULL };

  for (guint i = 0; payload_suffixes[i] != NULL; i++) {
    g_autofree char *token = g_strconcat (parts[0], ".", parts[1], payload_suffixes[i], ".",
                                          parts[2], NULL);
    g_test_message ("payload suffix \"%s\"", payload_suffixes[i]);
    assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_MALFORMED);
  }
}

/* An ES256 signature is 86 base64url characters, and the last one carries
 * four unused bits that must be zero. Setting one of them keeps the decoded
 * bytes, and so the signature, the same for a lenient decoder. */
static void
test_token_verify_rejects_noncanonical_base64 (void)
{
  static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = token_sign (region->boston_key, ES256_HEADER, claims);
  char *last = token + strlen (token) - 1;
  int value = (int) (strchr (alphabet, *last) - alphabet);

  g_assert_cmpint (value & 0xf, ==, 0);
  *last = alphabet[value | 1];

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_MALFORMED);
}

static void
test_token_verify_rejects_truncated_token (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *valid = token_sign (region->boston_key, ES256_HEADER, claims);
  g_autofree char *token = g_strndup (valid, (gsize) (strchr (valid, '.') - valid) + 20);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_MALFORMED);
}

/* 86 base64url characters carry the 64 signature bytes. Dropping the last
 * two leaves a canonical 63-byte signature. */
static void
test_token_verify_rejects_truncated_signature (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = token_sign (region->boston_key, ES256_HEADER, claims);

  g_autoptr(GError) error = NULL;
  g_autoptr(CimsAuthIdentity) identity = NULL;

  g_assert_cmpuint (strlen (strrchr (token, '.') + 1), ==, 86);
  token[strlen (token) - 2] = '\0';

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_BAD_SIGNATURE);
  identity = cims_auth_token_verify (keyring, token, TEST_AUDIENCE, NOW_US, &error);
  g_assert_cmpstr (error->message, ==, "ES256 signature is 63 bytes; expected 64");
}

static void
test_token_verify_rejects_oversized_token (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *long_name = g_strnfill (8192, 'x');
  g_autofree char *token = NULL;

  json_object_set_string_member (claims, "name", long_name);
  token = token_sign (region->boston_key, ES256_HEADER, claims);
  g_assert_cmpuint (strlen (token), >, 8192);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_MALFORMED);
}

static void
test_token_verify_rejects_two_parts (void)
{
  g_autofree char *header = auth_test_base64url (ES256_HEADER, -1);
  g_autofree char *token = g_strconcat (header, ".", header, NULL);

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_MALFORMED);
}

static void
test_token_verify_rejects_payload_not_object (void)
{
  g_autofree char *token = auth_test_sign (region->boston_key, ES256_HEADER, "[\"boston\"]");

  assert_token_rejected (token, TEST_AUDIENCE, CIMS_AUTH_ERROR_MALFORMED);
}

/* ------------------------------------------------------------------ */
/* Keyring */

static void
assert_keyring_rejects_boston_key (const char *key_path, const char *expected_text)
{
  g_autofree char *path = auth_test_region_write_config (region, "keyring.conf", key_path);
  g_autoptr(GError) error = NULL;
  g_autoptr(CimsConfig) bad_config = cims_config_load (path, &error);
  g_autoptr(CimsAuthKeyring) bad_keyring = NULL;

  g_assert_no_error (error);
  bad_keyring = cims_auth_keyring_new (bad_config, &error);
  g_assert_null (bad_keyring);
  g_assert_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_KEY);
  g_test_message ("keyring: %s", error->message);
  g_assert_nonnull (strstr (error->message, path));
  g_assert_nonnull (strstr (error->message, expected_text));
}

static void
test_token_keyring_rejects_missing_key_file (void)
{
  assert_keyring_rejects_boston_key ("absent.pub.pem", "absent.pub.pem");
}

static void
test_token_keyring_rejects_small_rsa_key (void)
{
  EVP_PKEY *key = EVP_RSA_gen (1024);
  g_autofree char *path = auth_test_region_write_public_key (region, "rsa1024.pub.pem", key);

  EVP_PKEY_free (key);
  assert_keyring_rejects_boston_key (path, "1024-bit RSA");
}

static void
test_token_keyring_rejects_p384_key (void)
{
  EVP_PKEY *key = EVP_EC_gen ("P-384");
  g_autofree char *path = auth_test_region_write_public_key (region, "p384.pub.pem", key);

  EVP_PKEY_free (key);
  assert_keyring_rejects_boston_key (path, "384-bit EC");
}

static void
test_token_keyring_rejects_non_key_file (void)
{
  g_autofree char *path = auth_test_region_write_file (region, "not-a-key.pem", "hello\n");

  assert_keyring_rejects_boston_key (path, "not a PEM public key");
}

/* Boston's entry starts on line 10 of the region config and the State
 * Police's on line 24. Both keys are bad, and both lines are reported. */
static void
test_token_keyring_reports_every_bad_key (void)
{
  g_autofree char *path = auth_test_region_write_config (region, "two-bad-keys.conf", "absent.pub.pem");
  g_autofree char *text = NULL;
  g_autoptr(GString) edited = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(CimsConfig) bad_config = NULL;
  g_autoptr(CimsAuthKeyring) bad_keyring = NULL;
  g_autofree char *boston_line = NULL;
  g_autofree char *agency_line = NULL;
  g_auto(GStrv) lines = NULL;

  g_file_get_contents (path, &text, NULL, &error);
  g_assert_no_error (error);
  edited = g_string_new (text);
  g_assert_cmpuint (g_string_replace (edited, "\"state-police.pub.pem\"", "\"absent-agency.pub.pem\"", 0), ==, 1);
  g_free (auth_test_region_write_file (region, "two-bad-keys.conf", edited->str));

  bad_config = cims_config_load (path, &error);
  g_assert_no_error (error);
  bad_keyring = cims_auth_keyring_new (bad_config, &error);
  g_assert_null (bad_keyring);
  g_assert_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_KEY);
  g_test_message ("keyring: %s", error->message);

  lines = g_strsplit (error->message, "\n", -1);
  boston_line = g_strconcat (path, ":10: ", NULL);
  agency_line = g_strconcat (path, ":24: ", NULL);
  g_assert_cmpuint (g_strv_length (lines), ==, 2);
  g_assert_true (g_str_has_prefix (lines[0], boston_line));
  g_assert_nonnull (strstr (lines[0], "absent.pub.pem"));
  g_assert_true (g_str_has_prefix (lines[1], agency_line));
  g_assert_nonnull (strstr (lines[1], "absent-agency.pub.pem"));
}

/* Returns: (transfer full): the SHA-256 of @key's DER SubjectPublicKeyInfo
 * in lowercase hex, computed here apart from the keyring. */
static char *
key_fingerprint_new (EVP_PKEY *key)
{
  unsigned char *der = NULL;
  int der_len = i2d_PUBKEY (key, &der);
  char *fingerprint;

  g_assert_cmpint (der_len, >, 0);
  fingerprint = g_compute_checksum_for_data (G_CHECKSUM_SHA256, der, (gsize) der_len);
  OPENSSL_free (der);

  return fingerprint;
}

static void
test_token_verify_records_key_fingerprint (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = token_sign (region->boston_key, ES256_HEADER, claims);
  g_autoptr(CimsAuthIdentity) identity = token_verify_ok (token, TEST_AUDIENCE);
  g_autofree char *expected = key_fingerprint_new (region->boston_key);

  g_assert_cmpstr (identity->key_fingerprint, ==, expected);
  g_assert_true (cims_auth_keyring_has_key (keyring, TEST_ISSUER_BOSTON, identity->key_fingerprint));
  g_assert_false (cims_auth_keyring_has_key (keyring, TEST_ISSUER_CHELSEA, identity->key_fingerprint));
  g_assert_false (cims_auth_keyring_has_key (keyring, "https://idp.unknown.test", identity->key_fingerprint));
  g_assert_false (cims_auth_keyring_has_key (keyring, TEST_ISSUER_BOSTON, NULL));
}

/* The keyring accepts an identity only while its issuer has the same key
 * and still belongs to the identity's jurisdiction. */
static void
test_token_keyring_checks_identity (void)
{
  g_autoptr(JsonObject) claims = claims_new_boston ();
  g_autofree char *token = token_sign (region->boston_key, ES256_HEADER, claims);
  g_autoptr(CimsAuthIdentity) identity = token_verify_ok (token, TEST_AUDIENCE);
  g_autofree char *fingerprint = g_strdup (identity->key_fingerprint);

  g_assert_null (cims_auth_keyring_check_identity (keyring, identity));

  g_free (identity->jurisdiction);
  identity->jurisdiction = g_strdup ("boston-city");
  g_assert_nonnull (cims_auth_keyring_check_identity (keyring, identity));

  g_free (identity->jurisdiction);
  identity->jurisdiction = g_strdup ("boston");
  g_free (identity->key_fingerprint);
  identity->key_fingerprint = g_strdup ("00");
  g_assert_nonnull (cims_auth_keyring_check_identity (keyring, identity));

  g_free (identity->key_fingerprint);
  identity->key_fingerprint = g_steal_pointer (&fingerprint);
  g_assert_null (cims_auth_keyring_check_identity (keyring, identity));
}

/* A keyring loaded after Boston's key file changed has the new key only,
 * and still has Chelsea's unchanged key. */
static void
test_token_keyring_drops_replaced_key (void)
{
  g_autofree char *rogue_path = auth_test_region_get_public_key_path (region, "rogue");
  g_autofree char *path = auth_test_region_write_config (region, "rotated.conf", rogue_path);
  g_autofree char *boston_fingerprint = key_fingerprint_new (region->boston_key);
  g_autofree char *rogue_fingerprint = key_fingerprint_new (region->rogue_key);
  g_autofree char *chelsea_fingerprint = key_fingerprint_new (region->chelsea_key);
  g_autoptr(GError) error = NULL;
  g_autoptr(CimsConfig) rotated_config = cims_config_load (path, &error);
  g_autoptr(CimsAuthKeyring) rotated = NULL;

  g_assert_no_error (error);
  rotated = cims_auth_keyring_new (rotated_config, &error);
  g_assert_no_error (error);

  g_assert_false (cims_auth_keyring_has_key (rotated, TEST_ISSUER_BOSTON, boston_fingerprint));
  g_assert_true (cims_auth_keyring_has_key (rotated, TEST_ISSUER_BOSTON, rogue_fingerprint));
  g_assert_true (cims_auth_keyring_has_key (rotated, TEST_ISSUER_CHELSEA, chelsea_fingerprint));
}

/* ------------------------------------------------------------------ */
/* Minting */

static char *
base64url_decode_text (const char *text)
{
  g_autoptr(GString) padded = g_string_new (text);
  g_autofree guchar *data = NULL;
  gsize len = 0;

  g_strdelimit (padded->str, "-", '+');
  g_strdelimit (padded->str, "_", '/');
  while (padded->len % 4 != 0)
    g_string_append_c (padded, '=');
  data = g_base64_decode (padded->str, &len);

  return g_strndup ((const char *) data, len);
}

static void
test_token_mint_omits_unset_optional_claims (void)
{
  CimsAuthTokenClaims claims = {
    .issuer = TEST_ISSUER_BOSTON, .subject = "u-1", .name = "N",
    .jurisdiction = "boston", .issued_at_s = NOW_S, .ttl_s = 60,
  };
  g_autofree char *token = mint_ok ("boston", &claims);
  g_auto(GStrv) parts = g_strsplit (token, ".", -1);
  g_autofree char *header = base64url_decode_text (parts[0]);
  g_autofree char *payload = base64url_decode_text (parts[1]);

  g_assert_cmpuint (g_strv_length (parts), ==, 3);
  g_assert_cmpstr (header, ==, ES256_HEADER);
  g_assert_cmpstr (payload, ==, "{\"iss\":\"" TEST_ISSUER_BOSTON "\",\"sub\":\"u-1\",\"name\":\"N\","
                   "\"jurisdiction\":\"boston\",\"roles\":[],\"permissions\":[],"
                   "\"iat\":1750000000,\"exp\":1750000060}");
}

static void
test_token_mint_rejects_public_key (void)
{
  CimsAuthTokenClaims claims = {
    .issuer = TEST_ISSUER_BOSTON, .subject = "u-1", .name = "N",
    .jurisdiction = "boston", .issued_at_s = NOW_S, .ttl_s = 60,
  };
  g_autofree char *path = auth_test_region_get_public_key_path (region, "boston");
  g_autoptr(GError) error = NULL;
  g_autofree char *token = cims_auth_token_mint (path, &claims, &error);

  g_assert_null (token);
  g_assert_error (error, CIMS_AUTH_ERROR, CIMS_AUTH_ERROR_KEY);
  g_assert_nonnull (strstr (error->message, path));
}

/* ------------------------------------------------------------------ */

static void
add_tests (void)
{
  g_test_add_func ("/auth/token/verify/accepts-es256", test_token_verify_accepts_es256);
  g_test_add_func ("/auth/token/verify/accepts-rs256", test_token_verify_accepts_rs256);
  g_test_add_func ("/auth/token/verify/rejects-bad-client", test_token_verify_rejects_bad_client);
  g_test_add_func ("/auth/token/verify/accepts-hand-signed-claims", test_token_verify_accepts_hand_signed_claims);
  g_test_add_func ("/auth/token/verify/accepts-agency", test_token_verify_accepts_agency);
  g_test_add_func ("/auth/token/verify/treats-non-participant-as-agency", test_token_verify_treats_non_participant_as_agency);
  g_test_add_func ("/auth/token/verify/accepts-exp-within-skew", test_token_verify_accepts_exp_within_skew);
  g_test_add_func ("/auth/token/verify/accepts-missing-aud", test_token_verify_accepts_missing_aud);

  g_test_add_func ("/auth/token/verify/rejects-alg-none-without-signature", test_token_verify_rejects_alg_none_without_signature);
  g_test_add_func ("/auth/token/verify/rejects-alg-none-with-signature", test_token_verify_rejects_alg_none_with_signature);
  g_test_add_func ("/auth/token/verify/rejects-hs256-with-public-key", test_token_verify_rejects_hs256_with_public_key);
  g_test_add_func ("/auth/token/verify/rejects-rs256-for-ec-issuer", test_token_verify_rejects_rs256_for_ec_issuer);
  g_test_add_func ("/auth/token/verify/rejects-es256-for-rsa-issuer", test_token_verify_rejects_es256_for_rsa_issuer);
  g_test_add_func ("/auth/token/verify/rejects-es384", test_token_verify_rejects_es384);
  g_test_add_func ("/auth/token/verify/rejects-ps256", test_token_verify_rejects_ps256);
  g_test_add_func ("/auth/token/verify/rejects-missing-alg", test_token_verify_rejects_missing_alg);
  g_test_add_func ("/auth/token/verify/rejects-jku-header", test_token_verify_rejects_jku_header);
  g_test_add_func ("/auth/token/verify/rejects-jwk-header", test_token_verify_rejects_jwk_header);
  g_test_add_func ("/auth/token/verify/rejects-x5u-header", test_token_verify_rejects_x5u_header);

  g_test_add_func ("/auth/token/verify/rejects-other-signing-key", test_token_verify_rejects_other_signing_key);
  g_test_add_func ("/auth/token/verify/rejects-wrong-issuer", test_token_verify_rejects_wrong_issuer);
  g_test_add_func ("/auth/token/verify/rejects-unknown-issuer", test_token_verify_rejects_unknown_issuer);
  g_test_add_func ("/auth/token/verify/rejects-foreign-jurisdiction", test_token_verify_rejects_foreign_jurisdiction);
  g_test_add_func ("/auth/token/verify/rejects-tampered-payload", test_token_verify_rejects_tampered_payload);

  g_test_add_func ("/auth/token/verify/rejects-wrong-audience", test_token_verify_rejects_wrong_audience);
  g_test_add_func ("/auth/token/verify/rejects-aud-without-expected-audience", test_token_verify_rejects_aud_without_expected_audience);
  g_test_add_func ("/auth/token/verify/rejects-expired", test_token_verify_rejects_expired);
  g_test_add_func ("/auth/token/verify/rejects-not-yet-valid", test_token_verify_rejects_not_yet_valid);
  g_test_add_func ("/auth/token/verify/rejects-exp-string", test_token_verify_rejects_exp_string);
  g_test_add_func ("/auth/token/verify/rejects-missing-exp", test_token_verify_rejects_missing_exp);
  g_test_add_func ("/auth/token/verify/rejects-missing-iat", test_token_verify_rejects_missing_iat);
  g_test_add_func ("/auth/token/verify/rejects-roles-string", test_token_verify_rejects_roles_string);
  g_test_add_func ("/auth/token/verify/rejects-permission-number", test_token_verify_rejects_permission_number);
  g_test_add_func ("/auth/token/verify/reads-groups", test_token_verify_reads_groups);
  g_test_add_func ("/auth/token/verify/rejects-groups-string", test_token_verify_rejects_groups_string);
  g_test_add_func ("/auth/token/verify/rejects-group-number", test_token_verify_rejects_group_number);
  g_test_add_func ("/auth/token/verify/rejects-missing-sub", test_token_verify_rejects_missing_sub);
  g_test_add_func ("/auth/token/verify/rejects-duplicate-claim", test_token_verify_rejects_duplicate_claim);

  g_test_add_func ("/auth/token/verify/rejects-malformed-base64", test_token_verify_rejects_malformed_base64);
  g_test_add_func ("/auth/token/verify/rejects-noncanonical-base64", test_token_verify_rejects_noncanonical_base64);
  g_test_add_func ("/auth/token/verify/rejects-truncated-token", test_token_verify_rejects_truncated_token);
  g_test_add_func ("/auth/token/verify/rejects-truncated-signature", test_token_verify_rejects_truncated_signature);
  g_test_add_func ("/auth/token/verify/rejects-oversized-token", test_token_verify_rejects_oversized_token);
  g_test_add_func ("/auth/token/verify/rejects-two-parts", test_token_verify_rejects_two_parts);
  g_test_add_func ("/auth/token/verify/rejects-payload-not-object", test_token_verify_rejects_payload_not_object);

  g_test_add_func ("/auth/token/keyring/rejects-missing-key-file", test_token_keyring_rejects_missing_key_file);
  g_test_add_func ("/auth/token/keyring/rejects-small-rsa-key", test_token_keyring_rejects_small_rsa_key);
  g_test_add_func ("/auth/token/keyring/rejects-p384-key", test_token_keyring_rejects_p384_key);
  g_test_add_func ("/auth/token/keyring/rejects-non-key-file", test_token_keyring_rejects_non_key_file);
  g_test_add_func ("/auth/token/keyring/reports-every-bad-key", test_token_keyring_reports_every_bad_key);
  g_test_add_func ("/auth/token/keyring/drops-replaced-key", test_token_keyring_drops_replaced_key);
  g_test_add_func ("/auth/token/keyring/checks-identity", test_token_keyring_checks_identity);
  g_test_add_func ("/auth/token/verify/records-key-fingerprint", test_token_verify_records_key_fingerprint);

  g_test_add_func ("/auth/token/mint/omits-unset-optional-claims", test_token_mint_omits_unset_optional_claims);
  g_test_add_func ("/auth/token/mint/rejects-public-key", test_token_mint_rejects_public_key);
}

int
main (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);

  region = auth_test_region_new ();
  config = cims_config_load (region->config_path, &error);
  g_assert_no_error (error);
  keyring = cims_auth_keyring_new (config, &error);
  g_assert_no_error (error);

  add_tests ();
  status = g_test_run ();

  cims_auth_keyring_free (keyring);
  cims_config_unref (config);
  auth_test_region_free (region);

  return status;
}
