/* SPDX-License-Identifier: Apache-2.0 */
/* The annual transparency report, computed from one year of audit records
 * and the configuration only, so that report and log reconcile; its JSON,
 * CSV and HTML forms; and the JSON and time forms of audit records that the
 * admin API and cimshubctl share. Reading the log is auth/store.h's job. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "auth/auth.h"
#include "auth/store.h"
#include "config/config.h"

G_BEGIN_DECLS

/* Years a report may cover. */
#define CIMS_REPORT_MIN_YEAR 2000
#define CIMS_REPORT_MAX_YEAR 9999

typedef enum {
  CIMS_REPORT_PARTY_JURISDICTION,
  CIMS_REPORT_PARTY_AGENCY,
  CIMS_REPORT_PARTY_UNCONFIGURED,   /* named by the log but not by the configuration */
  CIMS_REPORT_PARTY_TOTAL,          /* the sum of all parties */
} CimsReportPartyKind;

/* The figures of one jurisdiction or agency. Owner figures (cameras,
 * archive approvals, real-time access granted) count what the party owns;
 * user and viewing figures count what its staff did. */
typedef struct {
  char *id;
  char *name;                       /* from the configuration, else the id */
  CimsReportPartyKind kind;
  guint n_cameras_in_service;
  guint n_users;                    /* distinct person_id in the year's records */
  guint *users_by_permission;       /* parallel to the report's permission_names */
  guint *users_by_role;             /* parallel to the report's role_names */
  guint n_users_without_permissions; /* latest session-start listed no permission */
  guint n_users_rights_unrecorded;  /* no session-start with rights in the year */
  guint n_archive_requests_approved;
  guint n_grants_created;
  guint n_incidents_started;
  guint n_viewing_sessions;         /* session-stop records */
  gint64 viewing_ms;                /* sum of their duration_ms */
  guint monthly_sessions[12];       /* session-stop records per UTC month */
} CimsReportParty;

/* Sequence numbers missing from the log: first_missing to last_missing,
 * both included. */
typedef struct {
  guint64 first_missing;
  guint64 last_missing;
} CimsReportSequenceGap;

/* The number of gaps a report lists one by one. It counts the rest. */
#define CIMS_REPORT_MAX_LISTED_GAPS 20
/* Most audit-log-mismatch records that a report names one by one. */
#define CIMS_REPORT_MAX_LISTED_MISMATCHES 5

typedef struct {
  int year;
  gint64 from_ms;                   /* 1 January 00:00 UTC */
  gint64 to_ms;                     /* 1 January of the next year, exclusive */
  gboolean has_camera_counts;       /* FALSE when computed without a configuration */
  char **permission_names;          /* NULL-terminated, the standard ones first */
  char **role_names;
  GPtrArray *parties;               /* of CimsReportParty: configured jurisdictions, agencies, then others */
  guint n_audit_records;            /* records of the year that were read */
  guint64 first_sequence;           /* 0 when the year has no records */
  guint64 last_sequence;

  /* The hash chain of the whole log, checked as the report reads it. */
  gboolean is_chain_intact;
  guint64 n_chain_records;          /* records of every year that were checked */
  guint64 chain_first_bad_sequence; /* 0 while intact */
  char *chain_problem;              /* what was found at chain_first_bad_sequence, or NULL */
  GArray *sequence_gaps;            /* of CimsReportSequenceGap, the first CIMS_REPORT_MAX_LISTED_GAPS */
  guint64 n_sequence_gaps;          /* all gaps, listed or not */
  guint64 n_missing_records;        /* sequence numbers missing in all gaps */
  char *anchor;                     /* "SEQ:HASH" of the last record while intact, as audit verify prints it */
  guint64 n_checkpoint_mismatches;  /* audit-log-mismatch records, of any year */
  char *checkpoint_mismatches;      /* "record 19 (checkpoint-missing), ..." for the first few, or "" */
} CimsAnnualReport;

void cims_annual_report_free (CimsAnnualReport *report);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsAnnualReport, cims_annual_report_free)

/**
 * cims_annual_report_compute:
 * Computes the report of @year (CIMS_REPORT_MIN_YEAR to CIMS_REPORT_MAX_YEAR)
 * from the audit records of that year in @store, counted one at a time as
 * cims_store_audit_foreach() reads them, and @config (may be NULL: then
 * cameras are not counted and only parties named by the log appear). Times
 * are UTC.
 * Cameras in service: cameras in the configuration installed on or before
 * 31 December and not out of service for the whole rest of the year.
 * Users: distinct person_id per person_jurisdiction; their permissions and
 * roles come from the details of each person's latest record that lists
 * them: a session-start, or a grant or incident record, which lists the
 * rights of the person who acted. A role listed in any of that person's
 * grant or incident records of the year counts too, so a grant authority
 * or commander is counted as one even when a later session used a token
 * without that role.
 * Archive approvals: archive-approved records by camera_owner. Real-time
 * access granted: grant-created and incident-started records by
 * camera_owner. Viewing: session-stop records by person_jurisdiction, with
 * the sum of duration_ms, in the month of the stop.
 * Chain: every record of the log, of every year, is read in sequence order
 * and checked against the one before it, as `cimshubctl audit verify`
 * does, and every gap in sequence numbers is noted. An altered log still
 * gives a report, with is_chain_intact FALSE, and the rendered forms state
 * it.
 * NOTE: records cut off the end of the log leave no gap and no break, so
 * they go unnoticed here.
 * Runs on the calling thread. Cancelling @cancellable (may be NULL) stops
 * the reading of the log.
 * Returns: (transfer full) the report, or NULL with CIMS_STORE_ERROR_INVALID
 * for a year out of range, G_IO_ERROR_CANCELLED when @cancellable was
 * cancelled, or the store's read error.
 */
CimsAnnualReport *cims_annual_report_compute (CimsStore *store, const CimsConfig *config,
                                              int year, GCancellable *cancellable,
                                              GError **error);

/* Totals over every party, in a CimsReportParty with id "total". (transfer full) */
CimsReportParty *cims_annual_report_sum (const CimsAnnualReport *report);
void cims_report_party_free (CimsReportParty *party);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsReportParty, cims_report_party_free)

typedef enum {
  CIMS_REPORT_FORMAT_JSON,
  CIMS_REPORT_FORMAT_CSV,
  CIMS_REPORT_FORMAT_HTML,
  CIMS_REPORT_FORMAT_CSV_LONG,  /* one table: table, jurisdiction, name, measure, value */
} CimsReportFormat;

/* "json", "csv", "html", "csv-long". from_string returns FALSE for another name and
 * leaves *out unchanged. content_type returns a static MIME type with its
 * charset. */
gboolean cims_report_format_from_string (const char *name, CimsReportFormat *out);
const char *cims_report_format_content_type (CimsReportFormat format);

/* Renders @report: JSON, CSV (RFC 4180, CRLF, one titled table per
 * section, tables separated by an empty line) or a printable, self-contained
 * HTML page (inline CSS, no scripts, no external resources) with a table
 * per section and an SVG line chart of monthly sessions per viewer
 * jurisdiction. Every form gives near its top the state of the audit
 * log's hash chain: intact, or altered with the first bad record and the
 * gaps in sequence numbers. Returns: (transfer full) UTF-8 text. */
char *cims_annual_report_render (const CimsAnnualReport *report, CimsReportFormat format);

/* ---- audit records in JSON and times ------------------------------------ */

/* Returns: (transfer full) an object with every field of @record. The time
 * is both "time" (ISO 8601 UTC) and "time_ms". Details is the parsed JSON
 * value when it parses, else its text. Missing strings are null. */
JsonObject *cims_audit_record_to_json (const CimsAuditRecord *record);

/* Returns: (transfer full) every field of @grant or @incident, with the
 * member names of the admin API. A grant has id, owner, grantee_kind,
 * grantee, grantee_group, cameras, starts_at, ends_at, purpose,
 * incident_number, authorized_by, authorized_by_name, authorized_at,
 * revoked_by and revoked_at. An incident has id, owner, incident_number,
 * cameras, partners, starts_at, ends_at, description, declared_by,
 * declared_by_name, ended_by and ended_at. Null cameras means all of the
 * owner's, null partners every participating jurisdiction, and a null time
 * no end, not yet revoked or not ended early. Times are ISO 8601 UTC with
 * milliseconds. */
JsonObject *cims_grant_to_json (const CimsGrant *grant);
JsonObject *cims_incident_to_json (const CimsIncident *incident);

/* The details JSON of the records the hub writes about access, built here
 * beside the report that reads them so that both use the same members. The
 * hash chain covers details, so a later edit of the grants or incidents
 * table can be found by comparing it with these copies.
 * from_identity: {"permissions": [...], "roles": [...]} of the viewer of a
 * session-start record; @identity may be NULL (empty lists).
 * from_grant, from_incident: the object of cims_grant_to_json() or
 * cims_incident_to_json(), then actor_permissions and actor_roles of the
 * person who acted (@actor, may be NULL), then note when @note is not NULL.
 * Returns: (transfer full) compact JSON text. */
char *cims_audit_details_from_identity (const CimsAuthIdentity *identity);
char *cims_audit_details_from_grant (const CimsGrant *grant, const CimsAuthIdentity *actor,
                                     const char *note);
char *cims_audit_details_from_incident (const CimsIncident *incident, const CimsAuthIdentity *actor,
                                        const char *note);

/* Formats UTC milliseconds as "2025-03-01T10:00:00.000Z". (transfer full) */
char *cims_audit_time_format_ms (gint64 time_ms);

/* Parses an ISO 8601 time with a zone ("2025-03-01T10:00:00Z") or a date
 * ("2025-03-01", 00:00 UTC) into UTC milliseconds. FALSE when invalid. */
gboolean cims_audit_time_parse_ms (const char *text, gint64 *time_ms);

G_END_DECLS
