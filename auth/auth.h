/* SPDX-License-Identifier: Apache-2.0 */
/* Identity and access: verifying signed viewer tokens (JWT, ES256/RS256) and
 * deciding whether an identity may watch a camera. Grants, incidents and the
 * audit log are stored through auth/store.h. */
#pragma once

#include <glib.h>

#include "auth/store.h"
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
  char **groups;                /* optional `groups` claim, NULL-terminated, may be NULL */
  gint64 issued_at_us;
  gint64 expires_at_us;
  gint64 not_before_us;         /* 0 when the token has no nbf */
  char *key_fingerprint;        /* SHA-256 of the verifying public key (DER SubjectPublicKeyInfo),
                                 * 64 lowercase hex digits */
} CimsAuthIdentity;

void cims_auth_identity_free (CimsAuthIdentity *identity);
gboolean cims_auth_identity_has_role (const CimsAuthIdentity *identity, const char *role);
gboolean cims_auth_identity_has_permission (const CimsAuthIdentity *identity, const char *permission);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsAuthIdentity, cims_auth_identity_free)

/* The public keys of every jurisdiction and agency in a configuration. */
typedef struct _CimsAuthKeyring CimsAuthKeyring;

/**
 * cims_auth_keyring_new:
 * Loads every configured token key. Fails when any key file cannot be read
 * or is not an EC P-256 or RSA (2048 bits or more) public key, with one
 * "FILE:LINE: message" line for each entry that failed.
 * Returns: (transfer full)
 */
CimsAuthKeyring *cims_auth_keyring_new (const CimsConfig *config, GError **error);
void cims_auth_keyring_free (CimsAuthKeyring *keyring);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsAuthKeyring, cims_auth_keyring_free)

/* Returns TRUE when @keyring has, for @issuer, the key whose SHA-256
 * fingerprint is @key_fingerprint (as in CimsAuthIdentity). FALSE when the
 * issuer is no longer configured or now has another key, and for a NULL
 * fingerprint. Never allocates. Any thread. */
gboolean cims_auth_keyring_has_key (const CimsAuthKeyring *keyring, const char *issuer,
                                    const char *key_fingerprint);

/* Returns (transfer none) the SHA-256 fingerprint of the key that @keyring
 * has for @issuer, or NULL when it has none. Any thread. */
const char *cims_auth_keyring_get_fingerprint (const CimsAuthKeyring *keyring, const char *issuer);

/* Returns (transfer full) @time_us as ISO 8601 UTC with milliseconds,
 * "2026-03-01T14:05:09.250Z", or NULL after the year 9999. */
char *cims_auth_time_text (gint64 time_us);

/* Returns NULL when @keyring would still accept the token that gave
 * @identity: the same key for its issuer, and that issuer still belonging
 * to @identity's jurisdiction or agency. Otherwise returns (transfer none)
 * why not, for a log line. Never allocates. Any thread. */
const char *cims_auth_keyring_check_identity (const CimsAuthKeyring *keyring, const CimsAuthIdentity *identity);

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
  CIMS_AUTH_RULE_OWN_JURISDICTION,     /* allowed: own camera with `view` (and `restrict` if restricted) */
  CIMS_AUTH_RULE_SHARED_BORDER,        /* allowed: border camera shared with the viewer's jurisdiction */
  CIMS_AUTH_RULE_GRANT,                /* allowed: an active grant covers the camera */
  CIMS_AUTH_RULE_INCIDENT,             /* allowed: an active major incident covers it */
  CIMS_AUTH_RULE_RESTRICTED,           /* denied: restricted camera without `restrict` of its jurisdiction */
  CIMS_AUTH_RULE_OUT_OF_SERVICE,       /* denied */
  CIMS_AUTH_RULE_NO_VIEW_PERMISSION,   /* denied: the viewer lacks `view` */
  CIMS_AUTH_RULE_NO_GRANT,             /* denied: another jurisdiction or agency, no grant or incident */
  CIMS_AUTH_RULE_INCIDENT_NUMBER_MISSING,  /* denied: cross-jurisdiction without X-Incident-Number */
  CIMS_AUTH_RULE_INCIDENT_NUMBER_INVALID,  /* denied: malformed, or not the grant's/incident's number */
} CimsAuthRule;

/* What may allow a session; a session keeps every allowance it had, so
 * the end of one leaves it running under another. */
typedef enum {
  CIMS_AUTH_ALLOWANCE_OWN,             /* own jurisdiction or shared border */
  CIMS_AUTH_ALLOWANCE_GRANT,
  CIMS_AUTH_ALLOWANCE_INCIDENT,
} CimsAuthAllowanceKind;

typedef struct {
  CimsAuthAllowanceKind kind;
  char *id;                     /* grant or incident id; NULL for own */
  gint64 until_us;              /* when this allowance ends (grant/incident end, next outage) */
} CimsAuthAllowance;

typedef struct {
  gboolean allowed;
  CimsAuthRule rule;
  const char *rule_name;        /* static, e.g. "own-jurisdiction" */
  char *reason;                 /* a sentence for the 403 body and the log */
  gint64 allowed_until_us;      /* min (token expiry, latest allowance end); 0 when denied */
  char *grant_id;               /* the allowing grant with the latest end, or NULL */
  char *incident_id;            /* the allowing incident with the latest end, or NULL */
  char *incident_number;        /* the request's incident number when one was required, or NULL */
  GArray *allowances;           /* of CimsAuthAllowance, every one that allows now; NULL when denied */
} CimsAuthDecision;

/* Frees what @decision owns and zeroes it for reuse. */
void cims_auth_decision_clear (CimsAuthDecision *decision);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (CimsAuthDecision, cims_auth_decision_clear)

/* The live state a decision is made against. */
typedef struct {
  GPtrArray *grants;            /* of CimsGrant (transfer none), any state; may be NULL */
  GPtrArray *incidents;         /* of CimsIncident (transfer none), any state; may be NULL */
  const char *incident_number;  /* the request's X-Incident-Number header, or NULL */
} CimsAuthPolicyInput;

/* TRUE when @number is a well-formed incident number: 3 to 40 characters of
 * [A-Za-z0-9-/.:_], starting with a letter or digit. */
gboolean cims_auth_incident_number_is_valid (const char *number);

/**
 * cims_auth_policy_decide:
 * Decides whether @identity may watch @camera live at @now_us, against the
 * grants and incidents in @input (which may be NULL: no grants, no
 * incidents, no incident number), and fills @decision, which must be
 * zeroed or cleared with cims_auth_decision_clear() first.
 */
void cims_auth_policy_decide (const CimsConfig *config,
                              const CimsAuthIdentity *identity,
                              const CimsConfigCamera *camera,
                              const CimsAuthPolicyInput *input,
                              gint64 now_us,
                              CimsAuthDecision *decision);

G_END_DECLS
