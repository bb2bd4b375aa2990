/* SPDX-License-Identifier: Apache-2.0 */
/* Identity and access: verifying signed viewer tokens (JWT, ES256/RS256) and
 * deciding whether an identity may watch a camera. Grants, incidents and the
 * audit log will also live in this module. */
#pragma once

#include <glib.h>

#include "config/config.h"

G_BEGIN_DECLS

#define CIMS_AUTH_ERROR (cims_auth_error_quark ())
GQuark cims_auth_error_quark (void);

typedef enum {
  CIMS_AUTH_ERROR_KEY,                /* a configured public key could not be loaded */
  CIMS_AUTH_ERROR_MALFORMED,          /* not three base64url parts of JSON */
  CIMS_AUTH_ERROR_UNSUPPORTED_ALGORITHM, /* alg none, HS*, or anything but ES256/RS256 */
  CIMS_AUTH_ERROR_UNKNOWN_ISSUER,
  CIMS_AUTH_ERROR_BAD_SIGNATURE,
  CIMS_AUTH_ERROR_EXPIRED,
  CIMS_AUTH_ERROR_NOT_YET_VALID,
  CIMS_AUTH_ERROR_WRONG_AUDIENCE,
  CIMS_AUTH_ERROR_INVALID_CLAIM,      /* missing required claim or wrong type */
} CimsAuthError;

/* A verified token's claims. */
typedef struct {
  char *issuer;
  char *subject;                /* the person's id */
  char *name;                   /* the person's name */
  char *jurisdiction;           /* jurisdiction or agency id; matches the issuer's entry */
  gboolean is_agency;           /* TRUE for an agency, or a non-participating member */
  char **roles;                 /* NULL-terminated */
  char **permissions;           /* NULL-terminated */
  char *client;                 /* optional viewer client version, or NULL */
  gint64 issued_at_us;
  gint64 expires_at_us;
  gint64 not_before_us;         /* 0 when the token has no nbf */
} CimsAuthIdentity;

void cims_auth_identity_free (CimsAuthIdentity *identity);
gboolean cims_auth_identity_has_role (const CimsAuthIdentity *identity, const char *role);
gboolean cims_auth_identity_has_permission (const CimsAuthIdentity *identity, const char *permission);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsAuthIdentity, cims_auth_identity_free)

/* The public keys of every jurisdiction and agency in a configuration. */
typedef struct _CimsAuthKeyring CimsAuthKeyring;

/**
 * cims_auth_keyring_new:
 * Loads every configured token key. Fails naming the first key file that
 * cannot be read or is not an EC P-256 or RSA (2048 bits or more) public key.
 * Returns: (transfer full)
 */
CimsAuthKeyring *cims_auth_keyring_new (const CimsConfig *config, GError **error);
void cims_auth_keyring_free (CimsAuthKeyring *keyring);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsAuthKeyring, cims_auth_keyring_free)

/**
 * cims_auth_token_verify:
 * Verifies a compact JWT: the header's alg must be ES256 or RS256 and match
 * the issuer's key type; the signature must verify against the key configured
 * for `iss`; `exp` must be after @now_us, `nbf` (if present) not after it, and
 * `aud` (if present) must equal @audience. The `jurisdiction` claim must equal
 * the id of the configured entry whose token_issuer is `iss`.
 * Thread-safe. The token is never logged.
 * Returns: (transfer full): the identity, or NULL with a CIMS_AUTH_ERROR.
 */
CimsAuthIdentity *cims_auth_token_verify (const CimsAuthKeyring *keyring,
                                          const char *token,
                                          const char *audience,
                                          gint64 now_us,
                                          GError **error);

/* Claims for minting a development token. */
typedef struct {
  const char *issuer;
  const char *subject;
  const char *name;
  const char *jurisdiction;
  const char *const *roles;        /* NULL-terminated, may be NULL */
  const char *const *permissions;  /* NULL-terminated, may be NULL */
  const char *client;              /* may be NULL */
  const char *audience;            /* may be NULL: no aud claim */
  gint64 issued_at_s;
  gint64 ttl_s;
} CimsAuthTokenClaims;

/**
 * cims_auth_token_mint:
 * Signs @claims with the private key in @private_key_pem_path: ES256 for an
 * EC P-256 key, RS256 for an RSA key.
 * Returns: (transfer full): the compact JWT, or NULL with @error set.
 */
char *cims_auth_token_mint (const char *private_key_pem_path,
                            const CimsAuthTokenClaims *claims,
                            GError **error);

/* The rule that decided an access request. */
typedef enum {
  CIMS_AUTH_RULE_OWN_JURISDICTION,     /* allowed: own camera with `view` */
  CIMS_AUTH_RULE_SHARED_BORDER,        /* allowed: border camera shared with the viewer's jurisdiction */
  CIMS_AUTH_RULE_RESTRICTED,           /* allowed or denied by the `restrict` rule */
  CIMS_AUTH_RULE_OUT_OF_SERVICE,       /* denied */
  CIMS_AUTH_RULE_NO_VIEW_PERMISSION,   /* denied: own camera but no `view` */
  CIMS_AUTH_RULE_NO_GRANT,             /* denied: another jurisdiction or agency, no grant or incident */
} CimsAuthRule;

typedef struct {
  gboolean allowed;
  CimsAuthRule rule;
  const char *rule_name;        /* static, e.g. "own-jurisdiction" */
  char *reason;                 /* a sentence for the 403 body and the log */
  gint64 allowed_until_us;      /* G_MAXINT64 when only the token's expiry limits it */
} CimsAuthDecision;

void cims_auth_decision_clear (CimsAuthDecision *decision);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (CimsAuthDecision, cims_auth_decision_clear)

/**
 * cims_auth_policy_decide:
 * Decides whether @identity may watch @camera live at @now_us and fills
 * @decision. The allowance also ends at the token's expiry.
 */
void cims_auth_policy_decide (const CimsConfig *config,
                              const CimsAuthIdentity *identity,
                              const CimsConfigCamera *camera,
                              gint64 now_us,
                              CimsAuthDecision *decision);

G_END_DECLS
