/* SPDX-License-Identifier: Apache-2.0 */
/* A test region for the auth tests: fresh keys for every issuer, written as
 * PEM files with a configuration that names them, in a temporary directory,
 * plus a token signer that is independent of the code under test. */
#pragma once

#include <glib.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

G_BEGIN_DECLS

#define TEST_ISSUER_BOSTON "https://idp.boston.test"
#define TEST_ISSUER_CHELSEA "https://idp.chelsea.test"
#define TEST_ISSUER_EVERETT "https://idp.everett.test"
#define TEST_ISSUER_CAMBRIDGE "https://idp.cambridge.test"
#define TEST_ISSUER_STATE_POLICE "https://idp.statepolice.test"
#define TEST_AUDIENCE "cimshub"

/* Key types: boston, everett, cambridge and state-police use EC P-256,
 * chelsea RSA 2048. rogue is an EC P-256 key that no entry names. */
typedef struct {
  char *dir;
  char *config_path;
  EVP_PKEY *boston_key;
  EVP_PKEY *chelsea_key;
  EVP_PKEY *everett_key;
  EVP_PKEY *cambridge_key;
  EVP_PKEY *state_police_key;
  EVP_PKEY *rogue_key;
} AuthTestRegion;

/* Generates the keys and writes NAME.key.pem and NAME.pub.pem for each.
 * Also writes region.conf, with four jurisdictions (cambridge does not
 * participate), one agency, one viewer profile and four cameras:
 *   bos-0001  boston, out of service 2024-01-10 to 2024-02-01 (inclusive)
 *   bos-0002  boston, restricted
 *   chl-0001  chelsea
 *   evt-0001  everett, shared with chelsea */
AuthTestRegion *auth_test_region_new (void);

/* Deletes the directory and everything in it. */
void auth_test_region_free (AuthTestRegion *region);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AuthTestRegion, auth_test_region_free)

/* Returns: (transfer full): the path of NAME.key.pem or NAME.pub.pem. */
char *auth_test_region_get_private_key_path (const AuthTestRegion *region, const char *name);
char *auth_test_region_get_public_key_path (const AuthTestRegion *region, const char *name);

/* Writes @file_name in the region's directory with the region's config,
 * where boston's token_key is @boston_key_path (NULL: boston.pub.pem).
 * Returns: (transfer full): the file's path. */
char *auth_test_region_write_config (const AuthTestRegion *region, const char *file_name,
                                     const char *boston_key_path);

/* Writes @text to @file_name in the region's directory.
 * Returns: (transfer full): the file's path. */
char *auth_test_region_write_file (const AuthTestRegion *region, const char *file_name,
                                   const char *text);

/* Writes @key's public half as PEM to @file_name in the region's directory.
 * Returns: (transfer full): the file's path. */
char *auth_test_region_write_public_key (const AuthTestRegion *region, const char *file_name,
                                         EVP_PKEY *key);

/* Encodes @len bytes (or a C string when @len is -1) as unpadded base64url.
 * Returns: (transfer full) */
char *auth_test_base64url (const void *data, gssize len);

/* Signs "b64(header_json).b64(payload_json)" with @key: ES256 (r || s) for
 * an EC key, RS256 for an RSA key. The header is used as given, so it may
 * name any alg. Returns: (transfer full): the compact token. */
char *auth_test_sign (EVP_PKEY *key, const char *header_json, const char *payload_json);

G_END_DECLS
