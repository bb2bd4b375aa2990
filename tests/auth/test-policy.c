/* SPDX-License-Identifier: Apache-2.0 */
/* The live-viewing policy against the test region's cameras, as a table:
 * each row is one viewer, camera, set of grants and incidents and request
 * incident number at one instant, with the decision it must get. */

#include <string.h>

#include <glib.h>

#include "auth/auth.h"
#include "auth-test-region.h"

#define NOW_S G_GINT64_CONSTANT (1750000000)    /* 2025-06-15T15:06:40Z */
#define DEFAULT_TTL_S 3600
#define MAX_ROW_GRANTS 2
#define MAX_ROW_INCIDENTS 2

/* Incident numbers used by the rows. */
#define NUMBER "BPD-2025-0001"
#define OTHER_NUMBER "BPD-2025-0002"

static AuthTestRegion *region;
static CimsConfig *config;

/* The instant a row's times count from. The outage is bos-0001's
 * out-of-service period, 2024-01-10 through 2024-02-01. */
typedef enum {
  BASE_NOW,                     /* NOW_S, when bos-0001 has no outage ahead */
  BASE_OUTAGE_START,
  BASE_OUTAGE_END,              /* the first instant after the outage */
} TimeBase;

/* A grant in a row. Times are seconds from the row's base. */
typedef struct {
  const char *id;               /* NULL ends the row's list */
  const char *owner;
  const char *grantee;
  const char *group;
  const char *cameras;          /* comma-separated, NULL: all of the owner's */
  gint64 starts_s;
  gint64 ends_s;
  gboolean is_ongoing;          /* ends_s is ignored */
  gboolean is_revoked;
  gint64 revoked_s;
  const char *incident_number;
} GrantRow;

/* A major incident in a row. Times are seconds from the row's base. */
typedef struct {
  const char *id;               /* NULL ends the row's list */
  const char *owner;
  const char *incident_number;
  const char *cameras;          /* comma-separated, NULL: all of the owner's */
  const char *partners;         /* comma-separated, NULL: every participating jurisdiction */
  gint64 starts_s;
  gint64 ends_s;
  gboolean is_ended;
  gint64 ended_s;
} IncidentRow;

typedef struct {
  const char *path;

  /* the viewer */
  const char *jurisdiction;
  gboolean is_agency;
  const char *permissions;      /* comma-separated, "" for none */
  const char *groups;           /* comma-separated, NULL: no groups claim */
  gint64 ttl_s;                 /* token lifetime from now, 0: DEFAULT_TTL_S */

  /* the request */
  const char *camera_id;
  TimeBase base;
  gint64 now_s;                 /* from the base */
  gboolean has_no_input;        /* pass a NULL input */
  GrantRow grants[MAX_ROW_GRANTS];
  IncidentRow incidents[MAX_ROW_INCIDENTS];
  const char *incident_number;

  /* the expected decision */
  gboolean allowed;
  CimsAuthRule rule;
  const char *rule_name;
  gint64 until_s;               /* from the base; ignored when denied */
  guint n_allowances;
  const char *grant_id;
  const char *incident_id;
  const char *reason_part;      /* text the reason contains besides the camera id, or NULL */
  const char *reason_absent;    /* text the reason must not contain, or NULL */
} PolicyCase;

/* Rows start from these defaults and override some fields, which the
 * compiler would otherwise warn about. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Winitializer-overrides"
#else
#pragma GCC diagnostic ignored "-Woverride-init"
#endif

#define GRANT_BOS_CHL(...) { .id = "g-1", .owner = "boston", .grantee = "chelsea", \
                             .starts_s = -3600, .is_ongoing = TRUE, __VA_ARGS__ }
#define INCIDENT_BOS(...) { .id = "i-1", .owner = "boston", .incident_number = NUMBER, \
                            .starts_s = -3600, .ends_s = 7200, __VA_ARGS__ }
#define ALLOWED(RULE, NAME) .allowed = TRUE, .rule = CIMS_AUTH_RULE_##RULE, .rule_name = NAME
#define DENIED(RULE, NAME) .allowed = FALSE, .rule = CIMS_AUTH_RULE_##RULE, .rule_name = NAME

static const PolicyCase policy_cases[] = {
  /* Own jurisdiction and border cameras need `view` and no incident number. */
  { .path = "own/allows-with-view",
    .jurisdiction = "boston", .permissions = "view", .camera_id = "bos-0001",
    ALLOWED (OWN_JURISDICTION, "own-jurisdiction"), .until_s = 3600, .n_allowances = 1,
    .reason_part = "holds the view permission" },
  { .path = "own/denies-without-view",
    .jurisdiction = "boston", .permissions = "rewind,download", .camera_id = "bos-0001",
    DENIED (NO_VIEW_PERMISSION, "no-view-permission"), .reason_part = "view permission" },
  { .path = "own/ignores-malformed-number",
    .jurisdiction = "boston", .permissions = "view", .camera_id = "bos-0001",
    .incident_number = "bad number!",
    ALLOWED (OWN_JURISDICTION, "own-jurisdiction"), .until_s = 3600, .n_allowances = 1 },
  { .path = "own/ignores-grant-to-others",
    .jurisdiction = "boston", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL () },
    ALLOWED (OWN_JURISDICTION, "own-jurisdiction"), .until_s = 3600, .n_allowances = 1 },
  { .path = "own/token-expiry-caps-until",
    .jurisdiction = "boston", .permissions = "view", .camera_id = "bos-0001", .ttl_s = 90,
    ALLOWED (OWN_JURISDICTION, "own-jurisdiction"), .until_s = 90, .n_allowances = 1 },
  { .path = "border/allows-shared-jurisdiction",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "evt-0001",
    ALLOWED (SHARED_BORDER, "shared-border"), .until_s = 3600, .n_allowances = 1,
    .reason_part = "border camera shared with Chelsea" },
  { .path = "border/allows-owner",
    .jurisdiction = "everett", .permissions = "view", .camera_id = "evt-0001",
    ALLOWED (OWN_JURISDICTION, "own-jurisdiction"), .until_s = 3600, .n_allowances = 1 },
  { .path = "border/denies-without-view",
    .jurisdiction = "chelsea", .permissions = "rewind", .camera_id = "evt-0001",
    DENIED (NO_VIEW_PERMISSION, "no-view-permission") },
  { .path = "border/denies-unlisted-jurisdiction",
    .jurisdiction = "boston", .permissions = "view", .camera_id = "evt-0001",
    .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "border/denies-agency",
    .jurisdiction = "state-police", .is_agency = TRUE, .permissions = "view",
    .camera_id = "evt-0001", .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },

  /* Restricted cameras: only own users with `view` and `restrict`. */
  { .path = "restricted/allows-view-and-restrict",
    .jurisdiction = "boston", .permissions = "view,restrict", .camera_id = "bos-0002",
    ALLOWED (OWN_JURISDICTION, "own-jurisdiction"), .until_s = 3600, .n_allowances = 1,
    .reason_part = "restricted by Boston" },
  { .path = "restricted/denies-without-restrict",
    .jurisdiction = "boston", .permissions = "view", .camera_id = "bos-0002",
    DENIED (RESTRICTED, "restricted") },
  { .path = "restricted/denies-without-view",
    .jurisdiction = "boston", .permissions = "restrict", .camera_id = "bos-0002",
    DENIED (RESTRICTED, "restricted") },
  { .path = "restricted/denies-other-jurisdiction",
    .jurisdiction = "chelsea", .permissions = "view,restrict", .camera_id = "bos-0002",
    DENIED (RESTRICTED, "restricted"), .reason_part = "Chelsea" },
  { .path = "restricted/denies-through-grant",
    .jurisdiction = "chelsea", .permissions = "view,restrict", .camera_id = "bos-0002",
    .grants = { GRANT_BOS_CHL () }, .incident_number = NUMBER,
    DENIED (RESTRICTED, "restricted") },
  { .path = "restricted/denies-through-named-grant",
    .jurisdiction = "chelsea", .permissions = "view,restrict", .camera_id = "bos-0002",
    .grants = { GRANT_BOS_CHL (.cameras = "bos-0002") }, .incident_number = NUMBER,
    DENIED (RESTRICTED, "restricted") },
  { .path = "restricted/denies-through-incident",
    .jurisdiction = "chelsea", .permissions = "view,restrict", .camera_id = "bos-0002",
    .incidents = { INCIDENT_BOS () }, .incident_number = NUMBER,
    DENIED (RESTRICTED, "restricted") },

  /* Out of service: denied to every viewer, whatever would allow them otherwise. */
  { .path = "outage/denies-at-start",
    .jurisdiction = "boston", .permissions = "view", .camera_id = "bos-0001",
    .base = BASE_OUTAGE_START,
    DENIED (OUT_OF_SERVICE, "out-of-service"), .reason_part = "Boylston St at Dartmouth St" },
  { .path = "outage/denies-in-last-second",
    .jurisdiction = "boston", .permissions = "view", .camera_id = "bos-0001",
    .base = BASE_OUTAGE_END, .now_s = -1,
    DENIED (OUT_OF_SERVICE, "out-of-service") },
  { .path = "outage/allows-after-end",
    .jurisdiction = "boston", .permissions = "view", .camera_id = "bos-0001",
    .base = BASE_OUTAGE_END,
    ALLOWED (OWN_JURISDICTION, "own-jurisdiction"), .until_s = 3600, .n_allowances = 1 },
  { .path = "outage/denies-with-restrict",
    .jurisdiction = "boston", .permissions = "view,restrict", .camera_id = "bos-0001",
    .base = BASE_OUTAGE_START,
    DENIED (OUT_OF_SERVICE, "out-of-service") },
  { .path = "outage/denies-with-grant",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .base = BASE_OUTAGE_START, .grants = { GRANT_BOS_CHL () }, .incident_number = NUMBER,
    DENIED (OUT_OF_SERVICE, "out-of-service") },
  { .path = "outage/caps-own-allowance",
    .jurisdiction = "boston", .permissions = "view", .camera_id = "bos-0001",
    .base = BASE_OUTAGE_START, .now_s = -1800,
    ALLOWED (OWN_JURISDICTION, "own-jurisdiction"), .until_s = 0, .n_allowances = 1 },
  { .path = "outage/caps-grant-allowance",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .base = BASE_OUTAGE_START, .now_s = -1800,
    .grants = { GRANT_BOS_CHL () }, .incident_number = NUMBER,
    ALLOWED (GRANT, "grant"), .until_s = 0, .n_allowances = 1, .grant_id = "g-1" },

  /* Another jurisdiction, an agency or a non-participating member needs a
   * grant or an incident. */
  { .path = "cross/denies-without-grant",
    .jurisdiction = "chelsea", .permissions = "view,restrict", .camera_id = "bos-0001",
    .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant"),
    .reason_part = "Viewing Boston's camera bos-0001 from Chelsea requires a grant from "
                   "Boston or an active major incident." },
  { .path = "cross/denies-null-input",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .has_no_input = TRUE,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "cross/denies-agency-without-grant",
    .jurisdiction = "state-police", .is_agency = TRUE, .permissions = "view",
    .camera_id = "bos-0001", .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant"), .reason_part = "State Police" },
  { .path = "cross/denies-non-participant-without-grant",
    .jurisdiction = "cambridge", .is_agency = TRUE, .permissions = "view",
    .camera_id = "chl-0001", .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant"), .reason_part = "Cambridge" },
  { .path = "cross/allows-non-participant-with-grant",
    .jurisdiction = "cambridge", .is_agency = TRUE, .permissions = "view",
    .camera_id = "bos-0001", .incident_number = NUMBER,
    .grants = { GRANT_BOS_CHL (.grantee = "cambridge") },
    ALLOWED (GRANT, "grant"), .until_s = 3600, .n_allowances = 1, .grant_id = "g-1" },
  { .path = "cross/allows-agency-with-grant",
    .jurisdiction = "state-police", .is_agency = TRUE, .permissions = "view",
    .camera_id = "bos-0001", .incident_number = NUMBER,
    .grants = { GRANT_BOS_CHL (.grantee = "state-police") },
    ALLOWED (GRANT, "grant"), .until_s = 3600, .n_allowances = 1, .grant_id = "g-1" },
  { .path = "cross/denies-without-view",
    .jurisdiction = "chelsea", .permissions = "rewind", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL () }, .incident_number = NUMBER,
    DENIED (NO_VIEW_PERMISSION, "no-view-permission") },

  /* Grants and their time windows. */
  { .path = "grant/allows-ongoing",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL () }, .incident_number = NUMBER,
    ALLOWED (GRANT, "grant"), .until_s = 3600, .n_allowances = 1, .grant_id = "g-1",
    .reason_part = "g-1" },
  { .path = "grant/allows-starting-now",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.starts_s = 0, .ends_s = 600, .is_ongoing = FALSE) },
    .incident_number = NUMBER,
    ALLOWED (GRANT, "grant"), .until_s = 600, .n_allowances = 1, .grant_id = "g-1" },
  { .path = "grant/denies-starting-in-one-second",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.starts_s = 1, .ends_s = 600, .is_ongoing = FALSE) },
    .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "grant/denies-ending-now",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.ends_s = 0, .is_ongoing = FALSE) }, .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "grant/allows-ending-in-one-second",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.ends_s = 1, .is_ongoing = FALSE) }, .incident_number = NUMBER,
    ALLOWED (GRANT, "grant"), .until_s = 1, .n_allowances = 1, .grant_id = "g-1" },
  { .path = "grant/denies-revoked-now",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.is_revoked = TRUE, .revoked_s = 0) }, .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "grant/ends-at-scheduled-revocation",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.is_revoked = TRUE, .revoked_s = 1) }, .incident_number = NUMBER,
    ALLOWED (GRANT, "grant"), .until_s = 1, .n_allowances = 1, .grant_id = "g-1" },
  { .path = "grant/ignores-other-owner",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.owner = "everett") }, .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "grant/ignores-other-grantee",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.grantee = "everett") }, .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "grant/ignores-uncovered-camera",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.cameras = "bos-0002") }, .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "grant/allows-listed-camera",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.cameras = "bos-0002,bos-0001") }, .incident_number = NUMBER,
    ALLOWED (GRANT, "grant"), .until_s = 3600, .n_allowances = 1, .grant_id = "g-1" },
  { .path = "grant/group-denies-without-groups",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.group = "detectives") }, .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "grant/group-denies-other-group",
    .jurisdiction = "chelsea", .permissions = "view", .groups = "patrol",
    .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.group = "detectives") }, .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "grant/group-allows-member",
    .jurisdiction = "chelsea", .permissions = "view", .groups = "patrol,detectives",
    .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.group = "detectives") }, .incident_number = NUMBER,
    ALLOWED (GRANT, "grant"), .until_s = 3600, .n_allowances = 1, .grant_id = "g-1" },
  { .path = "grant/names-latest-ending",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.id = "g-2", .ends_s = 1200, .is_ongoing = FALSE),
                GRANT_BOS_CHL (.id = "g-1", .ends_s = 600, .is_ongoing = FALSE) },
    .incident_number = NUMBER,
    ALLOWED (GRANT, "grant"), .until_s = 1200, .n_allowances = 2, .grant_id = "g-2" },
  { .path = "grant/token-expiry-caps-until",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001", .ttl_s = 120,
    .grants = { GRANT_BOS_CHL () }, .incident_number = NUMBER,
    ALLOWED (GRANT, "grant"), .until_s = 120, .n_allowances = 1, .grant_id = "g-1" },

  /* Major incidents and their time windows. */
  { .path = "incident/allows-participating-jurisdiction",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .incidents = { INCIDENT_BOS (.ends_s = 1800) }, .incident_number = NUMBER,
    ALLOWED (INCIDENT, "incident"), .until_s = 1800, .n_allowances = 1, .incident_id = "i-1",
    .reason_part = "i-1" },
  { .path = "incident/allows-starting-now",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .incidents = { INCIDENT_BOS (.starts_s = 0) }, .incident_number = NUMBER,
    ALLOWED (INCIDENT, "incident"), .until_s = 3600, .n_allowances = 1, .incident_id = "i-1" },
  { .path = "incident/denies-starting-in-one-second",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .incidents = { INCIDENT_BOS (.starts_s = 1) }, .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "incident/denies-ending-now",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .incidents = { INCIDENT_BOS (.ends_s = 0) }, .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "incident/allows-ending-in-one-second",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .incidents = { INCIDENT_BOS (.ends_s = 1) }, .incident_number = NUMBER,
    ALLOWED (INCIDENT, "incident"), .until_s = 1, .n_allowances = 1, .incident_id = "i-1" },
  { .path = "incident/denies-ended-early-now",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .incidents = { INCIDENT_BOS (.is_ended = TRUE, .ended_s = 0) }, .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "incident/denies-ended-early-before",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .incidents = { INCIDENT_BOS (.is_ended = TRUE, .ended_s = -60) }, .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "incident/ends-at-early-end",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .incidents = { INCIDENT_BOS (.is_ended = TRUE, .ended_s = 1) }, .incident_number = NUMBER,
    ALLOWED (INCIDENT, "incident"), .until_s = 1, .n_allowances = 1, .incident_id = "i-1" },
  { .path = "incident/all-partners-exclude-agency",
    .jurisdiction = "state-police", .is_agency = TRUE, .permissions = "view",
    .camera_id = "bos-0001", .incidents = { INCIDENT_BOS () }, .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "incident/all-partners-exclude-non-participant",
    .jurisdiction = "cambridge", .is_agency = TRUE, .permissions = "view",
    .camera_id = "bos-0001", .incidents = { INCIDENT_BOS () }, .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "incident/named-agency-partner-allows",
    .jurisdiction = "state-police", .is_agency = TRUE, .permissions = "view",
    .camera_id = "bos-0001", .incidents = { INCIDENT_BOS (.partners = "everett,state-police") },
    .incident_number = NUMBER,
    ALLOWED (INCIDENT, "incident"), .until_s = 3600, .n_allowances = 1, .incident_id = "i-1" },
  { .path = "incident/named-partners-exclude-others",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .incidents = { INCIDENT_BOS (.partners = "everett,state-police") },
    .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "incident/ignores-uncovered-camera",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .incidents = { INCIDENT_BOS (.cameras = "bos-0002") }, .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },
  { .path = "incident/ignores-other-owner",
    .jurisdiction = "everett", .permissions = "view", .camera_id = "bos-0001",
    .incidents = { INCIDENT_BOS (.owner = "chelsea") }, .incident_number = NUMBER,
    DENIED (NO_GRANT, "no-grant") },

  /* The request's incident number. */
  { .path = "number/denies-missing",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL () },
    DENIED (INCIDENT_NUMBER_MISSING, "incident-number-missing"),
    .reason_part = "X-Incident-Number" },
  { .path = "number/denies-empty",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL () }, .incident_number = "",
    DENIED (INCIDENT_NUMBER_MISSING, "incident-number-missing") },
  { .path = "number/denies-too-short",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL () }, .incident_number = "A1",
    DENIED (INCIDENT_NUMBER_INVALID, "incident-number-invalid"), .reason_part = "\"A1\"" },
  { .path = "number/denies-space-and-escapes-newline",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL () }, .incident_number = "BPD 2025\nforged",
    DENIED (INCIDENT_NUMBER_INVALID, "incident-number-invalid"),
    .reason_part = "\"BPD 2025\\nforged\"" },
  { .path = "number/denies-and-cuts-long-value",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL () },
    .incident_number = "A123456789B123456789C123456789D123456789E123456789F123456789G123456789",
    DENIED (INCIDENT_NUMBER_INVALID, "incident-number-invalid"),
    .reason_part = "\"A123456789B123456789C123456789D123456789E123456789F123456789G123...\"" },
  { .path = "number/denies-mismatching-grant",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.incident_number = NUMBER) }, .incident_number = OTHER_NUMBER,
    DENIED (INCIDENT_NUMBER_INVALID, "incident-number-invalid"),
    .reason_part = "does not match", .reason_absent = NUMBER },
  { .path = "number/compares-case-sensitively",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.incident_number = NUMBER) }, .incident_number = "bpd-2025-0001",
    DENIED (INCIDENT_NUMBER_INVALID, "incident-number-invalid") },
  { .path = "number/allows-matching-grant",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.incident_number = NUMBER) }, .incident_number = NUMBER,
    ALLOWED (GRANT, "grant"), .until_s = 3600, .n_allowances = 1, .grant_id = "g-1" },
  { .path = "number/denies-mismatching-incident",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .incidents = { INCIDENT_BOS () }, .incident_number = OTHER_NUMBER,
    DENIED (INCIDENT_NUMBER_INVALID, "incident-number-invalid"),
    .reason_part = "does not match", .reason_absent = NUMBER },
  { .path = "number/hides-every-expected-number",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.incident_number = OTHER_NUMBER) },
    .incidents = { INCIDENT_BOS () }, .incident_number = "BPD-2025-0003",
    DENIED (INCIDENT_NUMBER_INVALID, "incident-number-invalid"),
    .reason_part = "any of the 2 grants or incidents", .reason_absent = NUMBER },
  { .path = "number/mismatch-leaves-unlimited-grant",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.id = "g-2", .incident_number = NUMBER),
                GRANT_BOS_CHL (.id = "g-1", .ends_s = 600, .is_ongoing = FALSE) },
    .incident_number = OTHER_NUMBER,
    ALLOWED (GRANT, "grant"), .until_s = 600, .n_allowances = 1, .grant_id = "g-1" },
  { .path = "number/mismatching-grant-leaves-incident",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .grants = { GRANT_BOS_CHL (.incident_number = OTHER_NUMBER) },
    .incidents = { INCIDENT_BOS (.ends_s = 1800) }, .incident_number = NUMBER,
    ALLOWED (INCIDENT, "incident"), .until_s = 1800, .n_allowances = 1, .incident_id = "i-1" },

  /* Several allowances: each is listed and the latest end counts. */
  { .path = "both/grant-and-incident-listed",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001", .ttl_s = 7200,
    .grants = { GRANT_BOS_CHL (.ends_s = 1800, .is_ongoing = FALSE) },
    .incidents = { INCIDENT_BOS (.ends_s = 5400) }, .incident_number = NUMBER,
    ALLOWED (GRANT, "grant"), .until_s = 5400, .n_allowances = 2,
    .grant_id = "g-1", .incident_id = "i-1" },
  { .path = "both/token-expiry-caps-until",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001", .ttl_s = 300,
    .grants = { GRANT_BOS_CHL (.ends_s = 1800, .is_ongoing = FALSE) },
    .incidents = { INCIDENT_BOS (.ends_s = 5400) }, .incident_number = NUMBER,
    ALLOWED (GRANT, "grant"), .until_s = 300, .n_allowances = 2,
    .grant_id = "g-1", .incident_id = "i-1" },
  { .path = "both/incidents-latest-named",
    .jurisdiction = "chelsea", .permissions = "view", .camera_id = "bos-0001",
    .incidents = { INCIDENT_BOS (.ends_s = 600),
                   INCIDENT_BOS (.id = "i-2", .ends_s = 900, .partners = "chelsea") },
    .incident_number = NUMBER,
    ALLOWED (INCIDENT, "incident"), .until_s = 900, .n_allowances = 2, .incident_id = "i-2" },
};

/* ------------------------------------------------------------------ */
/* Building the rows' objects */

static const CimsConfigCamera *
camera_get (const char *id)
{
  const CimsConfigCamera *camera = cims_config_find_camera (config, id);

  g_assert_nonnull (camera);
  return camera;
}

static gint64
time_base_get_us (TimeBase base)
{
  const CimsConfigCamera *camera = camera_get ("bos-0001");
  const CimsConfigPeriod *period = &g_array_index (camera->out_of_service, CimsConfigPeriod, 0);

  g_assert_cmpuint (camera->out_of_service->len, ==, 1);
  switch (base) {
  case BASE_OUTAGE_START:
    return period->from_us;
  case BASE_OUTAGE_END:
    return period->to_us;
  case BASE_NOW:
  default:
    return NOW_S * G_USEC_PER_SEC;
  }
}

static gint64
seconds_to_time_us (gint64 base_us, gint64 offset_s)
{
  return base_us + offset_s * G_USEC_PER_SEC;
}

/* Returns: (transfer full): the items of a comma-separated list, or NULL. */
static char **
list_split (const char *list)
{
  return list != NULL ? g_strsplit (list, ",", -1) : NULL;
}

/* Returns: (transfer full): a viewer whose token was issued a minute
 * before @now_us and expires @ttl_s after it. */
static CimsAuthIdentity *
identity_new (const PolicyCase *row, gint64 now_us)
{
  CimsAuthIdentity *identity = g_new0 (CimsAuthIdentity, 1);
  const char *const roles[] = { "viewer", NULL };
  gint64 ttl_s = row->ttl_s != 0 ? row->ttl_s : DEFAULT_TTL_S;

  identity->issuer = g_strdup_printf ("https://idp.%s.test", row->jurisdiction);
  identity->subject = g_strdup ("u-1001");
  identity->name = g_strdup ("Pat Doe");
  identity->jurisdiction = g_strdup (row->jurisdiction);
  identity->is_agency = row->is_agency;
  identity->roles = g_strdupv ((char **) roles);
  identity->permissions = g_strsplit (row->permissions, ",", -1);
  identity->groups = list_split (row->groups);
  identity->issued_at_us = now_us - 60 * G_USEC_PER_SEC;
  identity->expires_at_us = seconds_to_time_us (now_us, ttl_s);

  return identity;
}

static CimsGrant *
grant_new (const GrantRow *row, gint64 base_us)
{
  CimsGrant *grant = g_new0 (CimsGrant, 1);

  grant->id = g_strdup (row->id);
  grant->owner = g_strdup (row->owner);
  grant->grantee_kind = g_strcmp0 (row->grantee, "state-police") == 0
      ? CIMS_GRANTEE_AGENCY : CIMS_GRANTEE_JURISDICTION;
  grant->grantee = g_strdup (row->grantee);
  grant->grantee_group = g_strdup (row->group);
  grant->cameras = list_split (row->cameras);
  grant->starts_at_us = seconds_to_time_us (base_us, row->starts_s);
  grant->ends_at_us = row->is_ongoing ? G_MAXINT64 : seconds_to_time_us (base_us, row->ends_s);
  grant->purpose = g_strdup ("Joint operation");
  grant->incident_number = g_strdup (row->incident_number);
  grant->authorized_by = g_strdup ("b-1");
  grant->authorized_by_name = g_strdup ("Sam Chief");
  grant->authorized_at_us = grant->starts_at_us;
  if (row->is_revoked) {
    grant->revoked_by = g_strdup ("b-1");
    grant->revoked_at_us = seconds_to_time_us (base_us, row->revoked_s);
  }

  return grant;
}

static CimsIncident *
incident_new (const IncidentRow *row, gint64 base_us)
{
  CimsIncident *incident = g_new0 (CimsIncident, 1);

  incident->id = g_strdup (row->id);
  incident->owner = g_strdup (row->owner);
  incident->incident_number = g_strdup (row->incident_number);
  incident->cameras = list_split (row->cameras);
  incident->partners = list_split (row->partners);
  incident->starts_at_us = seconds_to_time_us (base_us, row->starts_s);
  incident->ends_at_us = seconds_to_time_us (base_us, row->ends_s);
  incident->description = g_strdup ("Marathon finish line");
  incident->declared_by = g_strdup ("b-2");
  incident->declared_by_name = g_strdup ("Lee Commander");
  if (row->is_ended) {
    incident->ended_by = g_strdup ("b-2");
    incident->ended_at_us = seconds_to_time_us (base_us, row->ended_s);
  }

  return incident;
}

/* ------------------------------------------------------------------ */
/* Tests */

static void
assert_allowances_empty_when_denied (const CimsAuthDecision *decision)
{
  g_assert_cmpint (decision->allowed_until_us, ==, 0);
  g_assert_null (decision->allowances);
  g_assert_null (decision->grant_id);
  g_assert_null (decision->incident_id);
  g_assert_null (decision->incident_number);
}

/* Every allowance ends no later than the latest one, and the latest one
 * ends no earlier than allowed_until (which the token may cap). */
static void
assert_allowances_consistent (const CimsAuthDecision *decision)
{
  gint64 latest_us = G_MININT64;

  for (guint i = 0; i < decision->allowances->len; i++) {
    const CimsAuthAllowance *allowance = &g_array_index (decision->allowances, CimsAuthAllowance, i);

    if (allowance->kind == CIMS_AUTH_ALLOWANCE_OWN)
      g_assert_null (allowance->id);
    else
      g_assert_nonnull (allowance->id);
    latest_us = MAX (latest_us, allowance->until_us);
  }

  g_assert_cmpint (latest_us, >=, decision->allowed_until_us);
}

static void
test_policy_decides_case (gconstpointer data)
{
  const PolicyCase *row = data;
  gint64 base_us = time_base_get_us (row->base);
  gint64 now_us = seconds_to_time_us (base_us, row->now_s);
  g_autoptr(CimsAuthIdentity) identity = identity_new (row, now_us);
  g_autoptr(GPtrArray) grants = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_grant_free);
  g_autoptr(GPtrArray) incidents = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_incident_free);
  CimsAuthPolicyInput input = { grants, incidents, row->incident_number };
  gboolean is_cross_allowed = row->rule == CIMS_AUTH_RULE_GRANT || row->rule == CIMS_AUTH_RULE_INCIDENT;
  g_auto(CimsAuthDecision) decision = { 0 };

  for (guint i = 0; i < MAX_ROW_GRANTS && row->grants[i].id != NULL; i++)
    g_ptr_array_add (grants, grant_new (&row->grants[i], base_us));
  for (guint i = 0; i < MAX_ROW_INCIDENTS && row->incidents[i].id != NULL; i++)
    g_ptr_array_add (incidents, incident_new (&row->incidents[i], base_us));

  cims_auth_policy_decide (config, identity, camera_get (row->camera_id),
                           row->has_no_input ? NULL : &input, now_us, &decision);
  g_test_message ("%s: %s", decision.rule_name, decision.reason);

  g_assert_cmpint (decision.rule, ==, row->rule);
  g_assert_cmpstr (decision.rule_name, ==, row->rule_name);
  g_assert_cmpint (decision.allowed, ==, row->allowed);
  g_assert_nonnull (strstr (decision.reason, row->camera_id));
  if (row->reason_part != NULL)
    g_assert_nonnull (strstr (decision.reason, row->reason_part));
  if (row->reason_absent != NULL)
    g_assert_null (strstr (decision.reason, row->reason_absent));

  if (!row->allowed) {
    assert_allowances_empty_when_denied (&decision);
    return;
  }

  g_assert_cmpint (decision.allowed_until_us, ==, seconds_to_time_us (base_us, row->until_s));
  g_assert_nonnull (decision.allowances);
  g_assert_cmpuint (decision.allowances->len, ==, row->n_allowances);
  g_assert_cmpstr (decision.grant_id, ==, row->grant_id);
  g_assert_cmpstr (decision.incident_id, ==, row->incident_id);
  g_assert_cmpstr (decision.incident_number, ==, is_cross_allowed ? row->incident_number : NULL);
  assert_allowances_consistent (&decision);
}

/* Chelsea watches bos-0001 under a grant ending in 30 minutes and an
 * incident ending in 90: both are listed with their own ends. */
static void
test_policy_lists_each_allowance (void)
{
  const PolicyCase *row = NULL;
  gint64 now_us = NOW_S * G_USEC_PER_SEC;
  g_autoptr(GPtrArray) grants = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_grant_free);
  g_autoptr(GPtrArray) incidents = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_incident_free);
  CimsAuthPolicyInput input = { grants, incidents, NUMBER };
  g_autoptr(CimsAuthIdentity) identity = NULL;
  g_auto(CimsAuthDecision) decision = { 0 };
  const CimsAuthAllowance *first, *second;

  for (guint i = 0; i < G_N_ELEMENTS (policy_cases); i++) {
    if (strcmp (policy_cases[i].path, "both/grant-and-incident-listed") == 0)
      row = &policy_cases[i];
  }
  g_assert_nonnull (row);

  identity = identity_new (row, now_us);
  g_ptr_array_add (grants, grant_new (&row->grants[0], now_us));
  g_ptr_array_add (incidents, incident_new (&row->incidents[0], now_us));
  cims_auth_policy_decide (config, identity, camera_get ("bos-0001"), &input, now_us, &decision);

  g_assert_true (decision.allowed);
  g_assert_cmpuint (decision.allowances->len, ==, 2);
  first = &g_array_index (decision.allowances, CimsAuthAllowance, 0);
  second = &g_array_index (decision.allowances, CimsAuthAllowance, 1);
  g_assert_cmpint (first->kind, ==, CIMS_AUTH_ALLOWANCE_GRANT);
  g_assert_cmpstr (first->id, ==, "g-1");
  g_assert_cmpint (first->until_us, ==, seconds_to_time_us (now_us, 1800));
  g_assert_cmpint (second->kind, ==, CIMS_AUTH_ALLOWANCE_INCIDENT);
  g_assert_cmpstr (second->id, ==, "i-1");
  g_assert_cmpint (second->until_us, ==, seconds_to_time_us (now_us, 5400));
}

/* An own allowance has no id and lasts until the next outage, which is
 * no set end after the last configured one. */
static void
test_policy_own_allowance_has_no_end (void)
{
  const PolicyCase row = { .jurisdiction = "boston", .permissions = "view" };
  gint64 now_us = NOW_S * G_USEC_PER_SEC;
  g_autoptr(CimsAuthIdentity) identity = identity_new (&row, now_us);
  g_auto(CimsAuthDecision) decision = { 0 };
  const CimsAuthAllowance *allowance;

  cims_auth_policy_decide (config, identity, camera_get ("bos-0001"), NULL, now_us, &decision);

  g_assert_true (decision.allowed);
  g_assert_cmpuint (decision.allowances->len, ==, 1);
  allowance = &g_array_index (decision.allowances, CimsAuthAllowance, 0);
  g_assert_cmpint (allowance->kind, ==, CIMS_AUTH_ALLOWANCE_OWN);
  g_assert_null (allowance->id);
  g_assert_cmpint (allowance->until_us, ==, G_MAXINT64);
}

/* A cleared decision is all zeros and can be filled again. */
static void
test_policy_decision_clear_allows_reuse (void)
{
  const PolicyCase row = { .jurisdiction = "chelsea", .permissions = "view" };
  gint64 now_us = NOW_S * G_USEC_PER_SEC;
  g_autoptr(CimsAuthIdentity) identity = identity_new (&row, now_us);
  const GrantRow grant_row = GRANT_BOS_CHL ();
  g_autoptr(CimsGrant) grant = grant_new (&grant_row, now_us);
  g_autoptr(GPtrArray) grants = g_ptr_array_new ();
  CimsAuthPolicyInput input = { grants, NULL, NUMBER };
  static const CimsAuthDecision zero;
  g_auto(CimsAuthDecision) decision = { 0 };

  g_ptr_array_add (grants, grant);
  cims_auth_policy_decide (config, identity, camera_get ("bos-0001"), &input, now_us, &decision);
  g_assert_true (decision.allowed);
  g_assert_nonnull (decision.allowances);

  cims_auth_decision_clear (&decision);
  g_assert_cmpmem (&decision, sizeof decision, &zero, sizeof zero);

  input.incident_number = NULL;
  cims_auth_policy_decide (config, identity, camera_get ("bos-0001"), &input, now_us, &decision);
  g_assert_false (decision.allowed);
  g_assert_cmpint (decision.rule, ==, CIMS_AUTH_RULE_INCIDENT_NUMBER_MISSING);
}

typedef struct {
  const char *number;
  gboolean is_valid;
} NumberCase;

static void
test_policy_checks_incident_number_form (void)
{
  const NumberCase cases[] = {
    { "BPD-2025-0001", TRUE },
    { "abc", TRUE },
    { "7/2025:4.1_b", TRUE },
    { "A234567890123456789012345678901234567890", TRUE },   /* 40 characters */
    { "A2345678901234567890123456789012345678901", FALSE },  /* 41 characters */
    { NULL, FALSE },
    { "", FALSE },
    { "ab", FALSE },
    { "-abc", FALSE },
    { "_abc", FALSE },
    { "ab c", FALSE },
    { "ab\n", FALSE },
    { "abc;", FALSE },
    { "ab\xc3\xa7", FALSE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_test_message ("case %u: %s", i, cases[i].number ? cases[i].number : "(null)");
    g_assert_cmpint (cims_auth_incident_number_is_valid (cases[i].number), ==, cases[i].is_valid);
  }
}

/* Times are shown to the millisecond, so that a grant's end and the stop
 * record it caused can be compared. */
static void
test_policy_time_text_has_milliseconds (void)
{
  g_autofree char *exact = cims_auth_time_text (G_GINT64_CONSTANT (1772373909250123));
  g_autofree char *whole = cims_auth_time_text (G_GINT64_CONSTANT (1772373909000000));
  g_autofree char *early = cims_auth_time_text (G_GINT64_CONSTANT (-1500000));
  g_autofree char *too_late = cims_auth_time_text (G_MAXINT64);

  g_assert_cmpstr (exact, ==, "2026-03-01T14:05:09.250Z");
  g_assert_cmpstr (whole, ==, "2026-03-01T14:05:09.000Z");
  g_assert_cmpstr (early, ==, "1969-12-31T23:59:58.500Z");
  g_assert_null (too_late);
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

  for (guint i = 0; i < G_N_ELEMENTS (policy_cases); i++) {
    g_autofree char *path = g_strconcat ("/auth/policy/", policy_cases[i].path, NULL);

    g_test_add_data_func (path, &policy_cases[i], test_policy_decides_case);
  }
  g_test_add_func ("/auth/policy/lists-each-allowance", test_policy_lists_each_allowance);
  g_test_add_func ("/auth/policy/own-allowance-has-no-end", test_policy_own_allowance_has_no_end);
  g_test_add_func ("/auth/policy/decision-clear-allows-reuse", test_policy_decision_clear_allows_reuse);
  g_test_add_func ("/auth/policy/time-text-has-milliseconds", test_policy_time_text_has_milliseconds);
  g_test_add_func ("/auth/policy/checks-incident-number-form", test_policy_checks_incident_number_form);
  status = g_test_run ();

  cims_config_unref (config);
  auth_test_region_free (region);

  return status;
}
