/* SPDX-License-Identifier: Apache-2.0 */
/* The state store interface: grants, major incidents, archive-footage
 * requests and the append-only audit log. The store-sqlite*.c files
 * implement it on an embedded SQLite file, and a PostgreSQL backend would
 * fill the same table of functions. Callers never see SQL. */
#pragma once

#include <gio/gio.h>
#include <glib.h>

G_BEGIN_DECLS

#define CIMS_STORE_ERROR (cims_store_error_quark ())
GQuark cims_store_error_quark (void);

typedef enum {
  CIMS_STORE_ERROR_OPEN,        /* the database could not be opened or created */
  CIMS_STORE_ERROR_WRITE,       /* a write failed (disk full, read-only file, ...) */
  CIMS_STORE_ERROR_READ,
  CIMS_STORE_ERROR_NOT_FOUND,
  CIMS_STORE_ERROR_CONFLICT,    /* e.g. revoking a grant already revoked */
  CIMS_STORE_ERROR_INVALID,     /* a required field is missing, or times are out of order */
  CIMS_STORE_ERROR_CHAIN_BROKEN, /* audit verify found a changed, missing or moved record */
} CimsStoreError;

/* ---- grants ------------------------------------------------------------ */

typedef enum {
  CIMS_GRANTEE_JURISDICTION,
  CIMS_GRANTEE_AGENCY,
} CimsGranteeKind;

/* Permission from an owning jurisdiction for another jurisdiction or an
 * agency to watch some of its cameras live. */
typedef struct {
  char *id;                     /* "g-" + 16 hex digits, made by the store */
  char *owner;                  /* owning jurisdiction id */
  CimsGranteeKind grantee_kind;
  char *grantee;                /* jurisdiction or agency id */
  char *grantee_group;          /* optional group narrowing the grantee, or NULL */
  char **cameras;               /* NULL-terminated camera ids; NULL means all of the owner's */
  gint64 starts_at_us;          /* UTC microseconds */
  gint64 ends_at_us;            /* G_MAXINT64 for an ongoing grant */
  char *purpose;
  char *incident_number;        /* may be NULL */
  char *authorized_by;          /* subject of the grant authority */
  char *authorized_by_name;
  gint64 authorized_at_us;
  char *revoked_by;             /* NULL until revoked */
  gint64 revoked_at_us;         /* 0 until revoked */
  gboolean is_disputed;         /* its row differs from its audit record: never active; not stored */
} CimsGrant;

CimsGrant *cims_grant_copy (const CimsGrant *grant);
void cims_grant_free (CimsGrant *grant);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsGrant, cims_grant_free)

/* is_active: TRUE when the grant is in force at @now_us: started
 * (starts_at <= now), not ended (now < ends_at) and not revoked (revoked_at
 * is 0 or later than now). It does not look at cameras.
 * covers_camera: TRUE when cameras is NULL or lists @camera_id. */
gboolean cims_grant_is_active (const CimsGrant *grant, gint64 now_us);
gboolean cims_grant_covers_camera (const CimsGrant *grant, const char *camera_id);

/* ---- major incidents ----------------------------------------------------- */

/* Mass sharing of a jurisdiction's cameras, switched on by its commander. */
typedef struct {
  char *id;                     /* "i-" + 16 hex digits, made by the store */
  char *owner;                  /* jurisdiction whose cameras are shared */
  char *incident_number;
  char **cameras;               /* NULL: all of the owner's cameras */
  char **partners;              /* NULL: every participating jurisdiction; else jurisdiction or agency ids */
  gint64 starts_at_us;
  gint64 ends_at_us;            /* always set, at most the configured maximum after start */
  char *description;
  char *declared_by;
  char *declared_by_name;
  char *ended_by;               /* NULL unless ended early */
  gint64 ended_at_us;           /* 0 unless ended early */
  gboolean is_disputed;         /* its row differs from its audit record: never active; not stored */
} CimsIncident;

CimsIncident *cims_incident_copy (const CimsIncident *incident);
void cims_incident_free (CimsIncident *incident);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsIncident, cims_incident_free)

/* is_active: TRUE when starts_at <= now < ends_at and the incident was not
 * ended early at or before @now_us. covers_camera: as for grants. */
gboolean cims_incident_is_active (const CimsIncident *incident, gint64 now_us);
gboolean cims_incident_covers_camera (const CimsIncident *incident, const char *camera_id);

/* ---- archive-footage requests ------------------------------------------ */

typedef enum {
  CIMS_ARCHIVE_REQUESTER_JURISDICTION,
  CIMS_ARCHIVE_REQUESTER_AGENCY,
  CIMS_ARCHIVE_REQUESTER_CIVILIAN,
} CimsArchiveRequesterKind;

/* A civilian's request waits for the owner's legal department first; every
 * request then waits for a System Administrator's approval or denial.
 * Legal review may also deny. approved and denied are final. */
typedef enum {
  CIMS_ARCHIVE_STATE_PENDING_LEGAL_REVIEW,
  CIMS_ARCHIVE_STATE_PENDING_APPROVAL,
  CIMS_ARCHIVE_STATE_APPROVED,
  CIMS_ARCHIVE_STATE_DENIED,
} CimsArchiveState;

/* A request for recorded footage of one camera. */
typedef struct {
  char *id;                     /* "a-" + 16 hex digits, made by the store */
  char *camera_id;
  char *owner;                  /* jurisdiction that owns the camera */
  gint64 from_us;               /* footage period, UTC microseconds, from < to */
  gint64 to_us;
  CimsArchiveRequesterKind requester_kind;
  char *requester_id;           /* jurisdiction, agency or person id */
  char *requester_name;
  char *incident_number;        /* may be NULL */
  char *purpose;
  CimsArchiveState state;       /* set by the store on insert */
  gint64 created_at_us;
  char *decided_by;             /* NULL until approved or denied */
  gint64 decided_at_us;         /* 0 until approved or denied */
  char *legal_reviewed_by;      /* NULL until the legal review is done */
  gint64 legal_reviewed_at_us;  /* 0 until the legal review is done */
  char *decision_note;          /* the note of the latest state change that had one */
} CimsArchiveRequest;

CimsArchiveRequest *cims_archive_request_copy (const CimsArchiveRequest *request);
void cims_archive_request_free (CimsArchiveRequest *request);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsArchiveRequest, cims_archive_request_free)

/* Names as used in the API and the database: "jurisdiction", "agency",
 * "civilian"; "pending-legal-review", "pending-approval", "approved",
 * "denied". The to_string results are static. from_string returns FALSE for
 * an unknown name and leaves *out unchanged. */
const char *cims_archive_requester_kind_to_string (CimsArchiveRequesterKind kind);
gboolean cims_archive_requester_kind_from_string (const char *name, CimsArchiveRequesterKind *out);
const char *cims_archive_state_to_string (CimsArchiveState state);
gboolean cims_archive_state_from_string (const char *name, CimsArchiveState *out);

/* ---- audit records ----------------------------------------------------- */

/* One audit event. Strings may be NULL where they do not apply. */
typedef struct {
  guint64 sequence;             /* assigned by the store, from 1, no gaps */
  gint64 time_ms;               /* UTC milliseconds since the Unix epoch */
  char *event;                  /* "session-start", "session-stop", "request-denied", ... */
  char *person_id;
  char *person_name;
  char *person_jurisdiction;    /* jurisdiction or agency id */
  char *camera_id;
  char *camera_owner;
  char *camera_location;
  char *session_id;
  char *grant_id;
  char *incident_id;
  char *incident_number;
  char *viewer_address;
  char *client_version;
  char *reason;                 /* stop reason or deciding rule */
  char *details;                /* free JSON object text, or NULL */
  gint64 bytes_sent;            /* stops only, else 0 */
  gint64 duration_ms;           /* stops only, else 0 */
  char *previous_hash;          /* hex SHA-256 of the previous record, 64 zeros for the first */
  char *hash;                   /* hex SHA-256 of this record's canonical form */
} CimsAuditRecord;

/* The events the hub writes to the audit log, NULL-terminated. A filter on
 * any other name matches nothing, so queries reject it. Add each new event
 * here. */
extern const char *const cims_audit_events[];

/* Returns TRUE when @event is one of cims_audit_events. */
gboolean cims_audit_event_is_known (const char *event);

/* Copies @record and every string it points to. Returns: (transfer full) */
CimsAuditRecord *cims_audit_record_copy (const CimsAuditRecord *record);
void cims_audit_record_free (CimsAuditRecord *record);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsAuditRecord, cims_audit_record_free)

/* Conditions on the records a query or a walk reads. A record must meet
 * every condition that is set. */
typedef struct {
  gint64 from_ms;               /* 0: no lower bound */
  gint64 to_ms;                 /* 0: no upper bound (exclusive) */
  guint64 from_sequence;        /* 0: no lower bound; else sequence >= from_sequence */
  const char *camera_id;
  const char *person_id;
  const char *jurisdiction;     /* matches person_jurisdiction or camera_owner */
  const char *incident_number;
  const char *event;
  const char *const *events;    /* NULL-terminated: event is any of them; NULL: no condition */
  guint limit;                  /* 0: no limit */
} CimsAuditFilter;

/* ---- the store ------------------------------------------------------------ */

typedef struct _CimsStore CimsStore;

/* Opens (creating if needed, mode 0600) the SQLite store at @path, a file
 * name or a SQLite URI such as "file:/var/lib/cimshub/state.db?mode=ro".
 * Audit appends are committed with synchronous=FULL so a power cut cannot
 * lose one. A file that cannot be written opens read-only when its schema is
 * current; every write then fails with CIMS_STORE_ERROR_WRITE.
 * Returns: (transfer full) the store, or NULL with CIMS_STORE_ERROR_OPEN. */
CimsStore *cims_store_sqlite_open (const char *path, GError **error);

/* Opens the existing store at @path for reading only, with no migration and
 * no warning: for a second connection beside the one that writes, such as a
 * report's. Fails with CIMS_STORE_ERROR_OPEN when the file is missing or its
 * schema version is not this cimshub's. */
CimsStore *cims_store_sqlite_open_reader (const char *path, GError **error);

/* Opens the existing store at @path read-only for checking its audit log, as
 * evidence that must not change: no schema, no migration, no journal-mode
 * change, and any schema version up to this cimshub's. Fails with
 * CIMS_STORE_ERROR_CHAIN_BROKEN when the file has no audit_log table, and
 * with CIMS_STORE_ERROR_OPEN when it is missing, cannot be read, is not a
 * SQLite database or has a newer schema. It reads the file's header with a
 * descriptor of its own. Closing that descriptor drops every POSIX lock the
 * process holds on the file, SQLite's too, so only a process with no other
 * connection to @path may call it: cimshubctl, never the hub.
 * Returns: (transfer full) the store, or NULL with @error set. */
CimsStore *cims_store_sqlite_open_audit_reader (const char *path, GError **error);

void cims_store_free (CimsStore *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsStore, cims_store_free)

/* Grants. Insert fills grant->id. List returns (transfer full) CimsGrant*,
 * revoked ones included, newest first. */
gboolean cims_store_grant_insert (CimsStore *store, CimsGrant *grant, GError **error);
gboolean cims_store_grant_revoke (CimsStore *store, const char *grant_id, const char *revoked_by,
                                  gint64 revoked_at_us, GError **error);
CimsGrant *cims_store_grant_get (CimsStore *store, const char *grant_id, GError **error);
GPtrArray *cims_store_grant_list (CimsStore *store, GError **error);

/* Incidents, same conventions. End sets ended_by/ended_at. */
gboolean cims_store_incident_insert (CimsStore *store, CimsIncident *incident, GError **error);
gboolean cims_store_incident_end (CimsStore *store, const char *incident_id, const char *ended_by,
                                  gint64 ended_at_us, GError **error);
CimsIncident *cims_store_incident_get (CimsStore *store, const char *incident_id, GError **error);
GPtrArray *cims_store_incident_list (CimsStore *store, GError **error);

/* Archive-footage requests. Insert fills request->id and request->state
 * (pending-legal-review for a civilian, else pending-approval); it takes
 * created_at_us from the caller. List is newest first.
 * Update_state moves a request from @expected_state to @new_state and fails
 * with CONFLICT when the request is no longer in @expected_state or the move
 * is not allowed (pending-legal-review -> pending-approval or denied;
 * pending-approval -> approved or denied). Leaving pending-legal-review sets
 * legal_reviewed_by/at; reaching approved or denied sets decided_by/at. A
 * non-NULL @note replaces decision_note. */
gboolean cims_store_archive_request_insert (CimsStore *store, CimsArchiveRequest *request,
                                            GError **error);
CimsArchiveRequest *cims_store_archive_request_get (CimsStore *store, const char *request_id,
                                                    GError **error);
GPtrArray *cims_store_archive_request_list (CimsStore *store, GError **error);
gboolean cims_store_archive_request_update_state (CimsStore *store, const char *request_id,
                                                  CimsArchiveState expected_state,
                                                  CimsArchiveState new_state, const char *actor,
                                                  gint64 at_us, const char *note, GError **error);

/* Audit log. Append assigns sequence, previous_hash and hash, and returns
 * only after the record is durable. */
gboolean cims_store_audit_append (CimsStore *store, CimsAuditRecord *record, GError **error);
/* Query returns (transfer full) CimsAuditRecord* in sequence order; a NULL
 * @filter matches every record. */
GPtrArray *cims_store_audit_query (CimsStore *store, const CimsAuditFilter *filter, GError **error);

/* Called by cims_store_audit_foreach() with one record, (transfer none) and
 * valid only during the call. Returns TRUE to go on, FALSE to stop the walk. */
typedef gboolean (*CimsAuditRecordFunc) (const CimsAuditRecord *record, gpointer user_data);

/* Reads the records @filter matches (NULL matches every record) in sequence
 * order and calls @func on each, one record in memory at a time, so a log of
 * any size can be read. The records are one snapshot of the log, as for
 * query. @cancellable (may be NULL) is checked before the walk and then
 * every few hundred records' worth of SQLite work, also while SQLite sorts
 * the records before it returns the first. @func runs on the calling thread
 * with the store's connection locked, so it must not call into @store.
 * Returns TRUE when every record was handed over or @func stopped the walk;
 * FALSE with G_IO_ERROR_CANCELLED when @cancellable was cancelled, or with
 * CIMS_STORE_ERROR_READ when reading failed. */
gboolean cims_store_audit_foreach (CimsStore *store, const CimsAuditFilter *filter,
                                   CimsAuditRecordFunc func, gpointer user_data,
                                   GCancellable *cancellable, GError **error);

/* Walks the whole chain. Returns TRUE when intact (an empty log is);
 * otherwise FALSE with *first_bad_sequence set to the first record changed,
 * removed or reordered, and a CIMS_STORE_ERROR_CHAIN_BROKEN @error saying
 * what was found there. A failure to read sets CIMS_STORE_ERROR_READ and
 * leaves *first_bad_sequence 0. @first_bad_sequence may be NULL. */
gboolean cims_store_audit_verify (CimsStore *store, guint64 *first_bad_sequence, GError **error);

/* Walks the whole chain as cims_store_audit_verify() does, in the one
 * snapshot that cims_store_audit_foreach() reads, and calls @func with each
 * record after it passed its check, so that a caller reports the count and
 * the last record of exactly the records it verified. Returns
 * TRUE when every record passed or @func stopped the walk, and fails as
 * cims_store_audit_verify() does. */
gboolean cims_store_audit_verify_foreach (CimsStore *store, CimsAuditRecordFunc func,
                                          gpointer user_data, guint64 *first_bad_sequence,
                                          GError **error);

G_END_DECLS
