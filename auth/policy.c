/* SPDX-License-Identifier: Apache-2.0 */
/* The live-viewing access policy: decides from a verified identity, a
 * camera's configuration and the live grants and major incidents whether
 * the viewer may watch, under which rule and until when. Loading grants and
 * incidents is the store's work. */

#include "auth/auth.h"

#include <string.h>

#include "auth/auth-private.h"

/* Incident numbers are 3 to 40 characters long. */
#define INCIDENT_NUMBER_MIN_LEN 3
#define INCIDENT_NUMBER_MAX_LEN 40

static const char *const rule_names[] = {
  [CIMS_AUTH_RULE_OWN_JURISDICTION] = "own-jurisdiction",
  [CIMS_AUTH_RULE_SHARED_BORDER] = "shared-border",
  [CIMS_AUTH_RULE_GRANT] = "grant",
  [CIMS_AUTH_RULE_INCIDENT] = "incident",
  [CIMS_AUTH_RULE_RESTRICTED] = "restricted",
  [CIMS_AUTH_RULE_OUT_OF_SERVICE] = "out-of-service",
  [CIMS_AUTH_RULE_NO_VIEW_PERMISSION] = "no-view-permission",
  [CIMS_AUTH_RULE_NO_GRANT] = "no-grant",
  [CIMS_AUTH_RULE_INCIDENT_NUMBER_MISSING] = "incident-number-missing",
  [CIMS_AUTH_RULE_INCIDENT_NUMBER_INVALID] = "incident-number-invalid",
};

/* A grant or incident that lets a cross-jurisdiction viewer watch the
 * camera now, before the incident number is checked. */
typedef struct {
  CimsAuthAllowanceKind kind;
  const char *id;               /* owned by the grant or incident */
  const char *incident_number;  /* the number it is limited to, or NULL */
  gint64 until_us;              /* its end, capped by the camera's next outage */
} PolicyCandidate;

/* The names a decision's reason uses, all owned by the configuration or
 * the identity. */
typedef struct {
  const char *camera_id;
  const char *owner;            /* display name of the camera's jurisdiction */
  const char *viewer;           /* display name of the viewer's jurisdiction or agency */
  gint64 next_outage_us;        /* start of the camera's next outage, or G_MAXINT64 */
} PolicyContext;

/**
 * cims_auth_incident_number_is_valid:
 * Checks the form of an incident number: 3 to 40 characters of
 * [A-Za-z0-9-/.:_], starting with a letter or digit. NULL is not valid.
 * Any thread may call it.
 */
gboolean
cims_auth_incident_number_is_valid (const char *number)
{
  gsize len;

  if (number == NULL)
    return FALSE;

  len = strlen (number);
  if (len < INCIDENT_NUMBER_MIN_LEN || len > INCIDENT_NUMBER_MAX_LEN)
    return FALSE;

  if (!g_ascii_isalnum (number[0]))
    return FALSE;

  for (gsize i = 1; i < len; i++) {
    if (!g_ascii_isalnum (number[i]) && strchr ("-/.:_", number[i]) == NULL)
      return FALSE;
  }

  return TRUE;
}

static void
allowance_clear (CimsAuthAllowance *allowance)
{
  g_clear_pointer (&allowance->id, g_free);
}

/**
 * cims_auth_decision_clear:
 * Frees everything @decision owns (the reason, the grant, incident and
 * incident-number strings and the allowances with their ids) and zeroes
 * every field, so the decision may be reused.
 */
void
cims_auth_decision_clear (CimsAuthDecision *decision)
{
  g_return_if_fail (decision != NULL);

  g_free (decision->reason);
  g_free (decision->grant_id);
  g_free (decision->incident_id);
  g_free (decision->incident_number);
  g_clear_pointer (&decision->allowances, g_array_unref);
  memset (decision, 0, sizeof *decision);
}

/* Returns the display name of a jurisdiction or agency id, or the id
 * itself when the configuration does not list it. */
static const char *
policy_describe_owner (const CimsConfig *config, const char *id)
{
  const CimsConfigJurisdiction *jurisdiction = cims_config_find_jurisdiction (config, id);
  const CimsConfigAgency *agency;

  if (jurisdiction != NULL)
    return jurisdiction->name;

  agency = cims_config_find_agency (config, id);
  if (agency != NULL)
    return agency->name;

  return id;
}

/* Returns the start of the camera's next out-of-service period after
 * @now_us, or G_MAXINT64 when none is scheduled. */
static gint64
camera_get_next_outage_us (const CimsConfigCamera *camera, gint64 now_us)
{
  gint64 next_us = G_MAXINT64;

  for (guint i = 0; camera->out_of_service != NULL && i < camera->out_of_service->len; i++) {
    const CimsConfigPeriod *period = &g_array_index (camera->out_of_service, CimsConfigPeriod, i);

    if (period->from_us > now_us && period->from_us < next_us)
      next_us = period->from_us;
  }

  return next_us;
}

static gboolean
camera_is_shared_with (const CimsConfigCamera *camera, const char *jurisdiction)
{
  return camera->shared_with != NULL &&
      g_strv_contains ((const char *const *) camera->shared_with, jurisdiction);
}

/* Returns: (transfer full): "until" and @time_us as ISO 8601 UTC, or
 * "with no set end" for G_MAXINT64. */
static char *
policy_describe_until (gint64 time_us)
{
  g_autofree char *text = NULL;

  if (time_us == G_MAXINT64)
    return g_strdup ("with no set end");

  text = cims_auth_time_text (time_us);
  if (text == NULL)
    text = g_strdup_printf ("%" G_GINT64_FORMAT " us", time_us);

  return g_strconcat ("until ", text, NULL);
}

/* Fills @decision as a denial under @rule with @reason (transfer full). */
static void
decision_deny (CimsAuthDecision *decision, CimsAuthRule rule, char *reason)
{
  decision->allowed = FALSE;
  decision->rule = rule;
  decision->rule_name = rule_names[rule];
  decision->reason = reason;
  decision->allowed_until_us = 0;
}

/* Fills @decision as allowed under @rule with @reason (transfer full) and
 * no allowances yet. */
static void
decision_allow (CimsAuthDecision *decision, CimsAuthRule rule, char *reason)
{
  decision->allowed = TRUE;
  decision->rule = rule;
  decision->rule_name = rule_names[rule];
  decision->reason = reason;
  decision->allowances = g_array_new (FALSE, TRUE, sizeof (CimsAuthAllowance));
  g_array_set_clear_func (decision->allowances, (GDestroyNotify) allowance_clear);
}

static void
decision_add_allowance (CimsAuthDecision *decision, CimsAuthAllowanceKind kind,
                        const char *id, gint64 until_us)
{
  CimsAuthAllowance allowance = { .kind = kind, .id = g_strdup (id), .until_us = until_us };

  g_array_append_val (decision->allowances, allowance);
}

/* Sets allowed_until_us to the token's expiry or the latest allowance end,
 * whichever comes first. */
static void
decision_set_allowed_until (CimsAuthDecision *decision, const CimsAuthIdentity *identity)
{
  gint64 latest_us = G_MININT64;

  for (guint i = 0; i < decision->allowances->len; i++)
    latest_us = MAX (latest_us, g_array_index (decision->allowances, CimsAuthAllowance, i).until_us);

  decision->allowed_until_us = MIN (identity->expires_at_us, latest_us);
}

/* Allows an own-jurisdiction or border viewer until the next outage. */
static void
decision_allow_own (CimsAuthDecision *decision, CimsAuthRule rule, char *reason,
                    const CimsAuthIdentity *identity, const PolicyContext *context)
{
  decision_allow (decision, rule, reason);
  decision_add_allowance (decision, CIMS_AUTH_ALLOWANCE_OWN, NULL, context->next_outage_us);
  decision_set_allowed_until (decision, identity);
}

/* ------------------------------------------------------------------ */
/* Restricted cameras, own jurisdiction and border cameras */

/* A restricted camera is visible only to its own jurisdiction's users who
 * hold both `view` and `restrict`. No grant, border sharing or incident
 * covers it. */
static void
policy_decide_restricted (const CimsAuthIdentity *identity, gboolean is_owner,
                          const PolicyContext *context, CimsAuthDecision *decision)
{
  if (is_owner && cims_auth_identity_has_permission (identity, "view") &&
      cims_auth_identity_has_permission (identity, "restrict")) {
    decision_allow_own (decision, CIMS_AUTH_RULE_OWN_JURISDICTION,
                        g_strdup_printf ("Camera %s is restricted by %s, and the viewer "
                                         "from %s holds both the view and restrict permissions.",
                                         context->camera_id, context->owner, context->owner),
                        identity, context);
    return;
  }

  decision_deny (decision, CIMS_AUTH_RULE_RESTRICTED,
                 g_strdup_printf ("Camera %s is restricted by %s: only users of %s "
                                  "with both the view and restrict permissions may "
                                  "watch it, and no grant, incident or border sharing "
                                  "covers it. The viewer from %s does not qualify.",
                                  context->camera_id, context->owner, context->owner,
                                  context->viewer));
}

/* Decides for a viewer whose jurisdiction owns the camera or shares it
 * as a border camera. No incident number is needed. */
static void
policy_decide_member (const CimsAuthIdentity *identity, gboolean is_owner,
                      const PolicyContext *context, CimsAuthDecision *decision)
{
  if (!cims_auth_identity_has_permission (identity, "view")) {
    decision_deny (decision, CIMS_AUTH_RULE_NO_VIEW_PERMISSION,
                   g_strdup_printf ("Watching camera %s of %s requires the view "
                                    "permission, which the viewer from %s does not hold.",
                                    context->camera_id, context->owner, context->viewer));
    return;
  }

  if (is_owner) {
    decision_allow_own (decision, CIMS_AUTH_RULE_OWN_JURISDICTION,
                        g_strdup_printf ("Camera %s belongs to %s, and the viewer from %s "
                                         "holds the view permission.", context->camera_id,
                                         context->owner, context->viewer),
                        identity, context);
    return;
  }

  decision_allow_own (decision, CIMS_AUTH_RULE_SHARED_BORDER,
                      g_strdup_printf ("Camera %s of %s is a border camera shared with %s, "
                                       "and the viewer from %s holds the view permission.",
                                       context->camera_id, context->owner, context->viewer,
                                       context->viewer),
                      identity, context);
}

/* ------------------------------------------------------------------ */
/* Grants and major incidents */

/* A grant names its grantee by id. A grant narrowed to a group applies
 * only to viewers whose token lists that group. */
static gboolean
grant_applies (const CimsGrant *grant, const CimsAuthIdentity *identity,
               const CimsConfigCamera *camera, gint64 now_us)
{
  if (g_strcmp0 (grant->owner, camera->jurisdiction) != 0 ||
      g_strcmp0 (grant->grantee, identity->jurisdiction) != 0)
    return FALSE;

  if (grant->grantee_group != NULL &&
      (identity->groups == NULL ||
       !g_strv_contains ((const char *const *) identity->groups, grant->grantee_group)))
    return FALSE;

  return cims_grant_is_active (grant, now_us) && cims_grant_covers_camera (grant, camera->id);
}

/* An incident without named partners shares with every participating
 * jurisdiction, which excludes agencies and the staff of members that do
 * not take part. Named partners may include agencies. */
static gboolean
incident_applies (const CimsIncident *incident, const CimsConfig *config,
                  const CimsAuthIdentity *identity, const CimsConfigCamera *camera,
                  gint64 now_us)
{
  const CimsConfigJurisdiction *jurisdiction;

  if (g_strcmp0 (incident->owner, camera->jurisdiction) != 0 ||
      !cims_incident_is_active (incident, now_us) ||
      !cims_incident_covers_camera (incident, camera->id))
    return FALSE;

  if (incident->partners != NULL)
    return g_strv_contains ((const char *const *) incident->partners, identity->jurisdiction);

  jurisdiction = cims_config_find_jurisdiction (config, identity->jurisdiction);

  return !identity->is_agency && jurisdiction != NULL && jurisdiction->participates;
}

/* A grant ends at ends_at, or earlier when a revocation is scheduled. */
static gint64
grant_get_end_us (const CimsGrant *grant)
{
  if (grant->revoked_at_us > 0)
    return MIN (grant->ends_at_us, grant->revoked_at_us);

  return grant->ends_at_us;
}

static gint64
incident_get_end_us (const CimsIncident *incident)
{
  if (incident->ended_at_us > 0)
    return MIN (incident->ends_at_us, incident->ended_at_us);

  return incident->ends_at_us;
}

/* Returns: (transfer full): every active grant and incident in @input that
 * would let @identity watch @camera, grants first, as PolicyCandidate. */
static GArray *
policy_collect_candidates (const CimsConfig *config, const CimsAuthIdentity *identity,
                           const CimsConfigCamera *camera, const CimsAuthPolicyInput *input,
                           const PolicyContext *context, gint64 now_us)
{
  GArray *candidates = g_array_new (FALSE, TRUE, sizeof (PolicyCandidate));

  for (guint i = 0; input->grants != NULL && i < input->grants->len; i++) {
    const CimsGrant *grant = g_ptr_array_index (input->grants, i);
    PolicyCandidate candidate = {
      CIMS_AUTH_ALLOWANCE_GRANT, grant->id, grant->incident_number,
      MIN (grant_get_end_us (grant), context->next_outage_us),
    };

    if (grant_applies (grant, identity, camera, now_us))
      g_array_append_val (candidates, candidate);
  }

  for (guint i = 0; input->incidents != NULL && i < input->incidents->len; i++) {
    const CimsIncident *incident = g_ptr_array_index (input->incidents, i);
    PolicyCandidate candidate = {
      CIMS_AUTH_ALLOWANCE_INCIDENT, incident->id, incident->incident_number,
      MIN (incident_get_end_us (incident), context->next_outage_us),
    };

    if (incident_applies (incident, config, identity, camera, now_us))
      g_array_append_val (candidates, candidate);
  }

  return candidates;
}

/* Checks the request's incident number: present, well formed, and equal to
 * the number of each grant or incident limited to one. Candidates whose
 * number differs are removed. Returns FALSE with @decision filled as a
 * denial when none is left. */
static gboolean
policy_check_incident_number (const char *number, GArray *candidates,
                              const PolicyContext *context, CimsAuthDecision *decision)
{
  g_autofree char *quoted = NULL;
  guint n_limited = candidates->len;

  if (number == NULL || number[0] == '\0') {
    decision_deny (decision, CIMS_AUTH_RULE_INCIDENT_NUMBER_MISSING,
                   g_strdup_printf ("Viewing %s's camera %s from %s requires an incident "
                                    "number in the X-Incident-Number header.",
                                    context->owner, context->camera_id, context->viewer));
    return FALSE;
  }

  quoted = cims_auth_quote_for_message (number);
  if (!cims_auth_incident_number_is_valid (number)) {
    decision_deny (decision, CIMS_AUTH_RULE_INCIDENT_NUMBER_INVALID,
                   g_strdup_printf ("Incident number \"%s\" given for camera %s is invalid: "
                                    "it must be 3 to 40 letters, digits or -/.:_ characters, "
                                    "starting with a letter or digit.", quoted,
                                    context->camera_id));
    return FALSE;
  }

  for (guint i = candidates->len; i > 0; i--) {
    const char *limit = g_array_index (candidates, PolicyCandidate, i - 1).incident_number;

    if (limit != NULL && strcmp (limit, number) != 0)
      g_array_remove_index (candidates, i - 1);
  }

  /* The reason never names the expected numbers: a requester who could
   * read them could copy one and retry. */
  if (candidates->len == 0) {
    decision_deny (decision, CIMS_AUTH_RULE_INCIDENT_NUMBER_INVALID,
                   g_strdup_printf ("Incident number \"%s\" does not match the number of any of "
                                    "the %u grants or incidents that cover %s's camera %s for %s; "
                                    "the camera's owner can tell which number applies.", quoted,
                                    n_limited, context->owner, context->camera_id, context->viewer));
    return FALSE;
  }

  return TRUE;
}

/* Returns the id of the candidate of @kind with the latest end, or NULL. */
static const char *
candidates_find_latest (GArray *candidates, CimsAuthAllowanceKind kind, gint64 *until_us)
{
  const char *id = NULL;

  *until_us = G_MININT64;
  for (guint i = 0; i < candidates->len; i++) {
    const PolicyCandidate *candidate = &g_array_index (candidates, PolicyCandidate, i);

    if (candidate->kind == kind && candidate->until_us > *until_us) {
      id = candidate->id;
      *until_us = candidate->until_us;
    }
  }

  return id;
}

/* Allows under every remaining candidate, naming the ones that last longest. */
static void
policy_allow_candidates (GArray *candidates, const char *number, const CimsAuthIdentity *identity,
                         const PolicyContext *context, CimsAuthDecision *decision)
{
  gint64 grant_until_us, incident_until_us;
  const char *grant_id = candidates_find_latest (candidates, CIMS_AUTH_ALLOWANCE_GRANT,
                                                 &grant_until_us);
  const char *incident_id = candidates_find_latest (candidates, CIMS_AUTH_ALLOWANCE_INCIDENT,
                                                    &incident_until_us);
  g_autofree char *until = NULL;
  char *reason;

  if (grant_id != NULL) {
    until = policy_describe_until (grant_until_us);
    reason = g_strdup_printf ("Grant %s from %s lets %s watch camera %s for incident %s, "
                              "%s.", grant_id, context->owner, context->viewer,
                              context->camera_id, number, until);
  } else {
    until = policy_describe_until (incident_until_us);
    reason = g_strdup_printf ("Major incident %s (%s) of %s shares camera %s with %s, %s.",
                              incident_id, number, context->owner, context->camera_id,
                              context->viewer, until);
  }

  decision_allow (decision, grant_id != NULL ? CIMS_AUTH_RULE_GRANT : CIMS_AUTH_RULE_INCIDENT,
                  reason);
  for (guint i = 0; i < candidates->len; i++) {
    const PolicyCandidate *candidate = &g_array_index (candidates, PolicyCandidate, i);

    decision_add_allowance (decision, candidate->kind, candidate->id, candidate->until_us);
  }

  decision->grant_id = g_strdup (grant_id);
  decision->incident_id = g_strdup (incident_id);
  decision->incident_number = g_strdup (number);
  decision_set_allowed_until (decision, identity);
}

/* Decides for a viewer of another jurisdiction, an agency or a member that
 * does not participate: an active grant or major incident must cover the
 * camera, the viewer needs `view`, and the request must name an incident
 * number. */
static void
policy_decide_cross (const CimsConfig *config, const CimsAuthIdentity *identity,
                     const CimsConfigCamera *camera, const CimsAuthPolicyInput *input,
                     const PolicyContext *context, gint64 now_us, CimsAuthDecision *decision)
{
  const CimsAuthPolicyInput no_input = { 0 };
  g_autoptr(GArray) candidates = NULL;

  if (input == NULL)
    input = &no_input;

  candidates = policy_collect_candidates (config, identity, camera, input, context, now_us);
  if (!cims_auth_identity_has_permission (identity, "view")) {
    decision_deny (decision, CIMS_AUTH_RULE_NO_VIEW_PERMISSION,
                   g_strdup_printf ("Watching %s's camera %s requires the view permission, "
                                    "which the viewer from %s does not hold.",
                                    context->owner, context->camera_id, context->viewer));
    return;
  }

  if (candidates->len == 0) {
    decision_deny (decision, CIMS_AUTH_RULE_NO_GRANT,
                   g_strdup_printf ("Viewing %s's camera %s from %s requires a grant from "
                                    "%s or an active major incident.", context->owner,
                                    context->camera_id, context->viewer, context->owner));
    return;
  }

  if (!policy_check_incident_number (input->incident_number, candidates, context, decision))
    return;

  policy_allow_candidates (candidates, input->incident_number, identity, context, decision);
}

/**
 * cims_auth_policy_decide:
 * Decides whether @identity may watch @camera live at @now_us and writes
 * the result to @decision, which must be zeroed or cleared with
 * cims_auth_decision_clear(): every field is overwritten and none is freed.
 * @input (may be NULL) contains the grants and incidents in any state and the
 * request's incident number. The rules apply in this order:
 * 1. A camera that is out of service is denied to everyone.
 * 2. A restricted camera is allowed only to users of its own jurisdiction
 *    who hold both `view` and `restrict`. No grant, incident or border
 *    sharing covers it.
 * 3. A user of the owning jurisdiction, or of a jurisdiction the camera is
 *    shared with, needs `view` and no incident number.
 * 4. Everyone else, including every agency and every member that does not
 *    participate, needs an active grant or major incident of the owner that
 *    covers the camera, `view`, and a well-formed incident number that
 *    matches the grant's or incident's own number where it has one.
 * Each allowance ends at its grant's or incident's end or at the camera's
 * next outage, and allowed_until_us is the latest of them, capped by the
 * token's expiry. All arguments are transfer none, and any thread may call
 * it.
 */
void
cims_auth_policy_decide (const CimsConfig *config,
                         const CimsAuthIdentity *identity,
                         const CimsConfigCamera *camera,
                         const CimsAuthPolicyInput *input,
                         gint64 now_us,
                         CimsAuthDecision *decision)
{
  PolicyContext context;
  gboolean is_owner, is_shared;

  g_return_if_fail (config != NULL);
  g_return_if_fail (identity != NULL && identity->jurisdiction != NULL);
  g_return_if_fail (camera != NULL);
  g_return_if_fail (decision != NULL);

  context = (PolicyContext) {
    .camera_id = camera->id,
    .owner = policy_describe_owner (config, camera->jurisdiction),
    .viewer = policy_describe_owner (config, identity->jurisdiction),
    .next_outage_us = camera_get_next_outage_us (camera, now_us),
  };

  if (cims_config_camera_is_out_of_service (camera, now_us)) {
    decision_deny (decision, CIMS_AUTH_RULE_OUT_OF_SERVICE,
                   g_strdup_printf ("Camera %s of %s at %s is out of service at this time.",
                                    camera->id, context.owner,
                                    camera->location ? camera->location : "(no location)"));
    return;
  }

  is_owner = !identity->is_agency && strcmp (identity->jurisdiction, camera->jurisdiction) == 0;
  is_shared = !identity->is_agency && camera_is_shared_with (camera, identity->jurisdiction);

  if (camera->restricted) {
    policy_decide_restricted (identity, is_owner, &context, decision);
    return;
  }

  if (is_owner || is_shared) {
    policy_decide_member (identity, is_owner, &context, decision);
    return;
  }

  policy_decide_cross (config, identity, camera, input, &context, now_us, decision);
}
