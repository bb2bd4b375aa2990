/* SPDX-License-Identifier: Apache-2.0 */
/* Internals of the state store: the table of functions each backend fills,
 * helpers every backend shares (ids, times, the audit hash chain) and the
 * SQLite backend's state. Code outside auth/ never includes this header. */
#pragma once

#include <glib.h>

#include <sqlite3.h>

#include "auth/store.h"

G_BEGIN_DECLS

/* ---- backend table -------------------------------------------------------- */

/* One backend's implementation of every store operation. The public
 * functions in store.c check their arguments and dispatch here. Each entry
 * has the contract of the public function of the same name. */
typedef struct {
  const char *name;
  void (*close) (CimsStore *store);

  gboolean (*grant_insert) (CimsStore *store, CimsGrant *grant, GError **error);
  gboolean (*grant_revoke) (CimsStore *store, const char *grant_id, const char *revoked_by,
                            gint64 revoked_at_us, GError **error);
  CimsGrant *(*grant_get) (CimsStore *store, const char *grant_id, GError **error);
  GPtrArray *(*grant_list) (CimsStore *store, GError **error);

  gboolean (*incident_insert) (CimsStore *store, CimsIncident *incident, GError **error);
  gboolean (*incident_end) (CimsStore *store, const char *incident_id, const char *ended_by,
                            gint64 ended_at_us, GError **error);
  CimsIncident *(*incident_get) (CimsStore *store, const char *incident_id, GError **error);
  GPtrArray *(*incident_list) (CimsStore *store, GError **error);

  gboolean (*archive_request_insert) (CimsStore *store, CimsArchiveRequest *request,
                                      GError **error);
  CimsArchiveRequest *(*archive_request_get) (CimsStore *store, const char *request_id,
                                              GError **error);
  GPtrArray *(*archive_request_list) (CimsStore *store, GError **error);
  gboolean (*archive_request_update_state) (CimsStore *store, const char *request_id,
                                            CimsArchiveState expected_state,
                                            CimsArchiveState new_state, const char *actor,
                                            gint64 at_us, const char *note, GError **error);

  gboolean (*audit_append) (CimsStore *store, CimsAuditRecord *record, GError **error);
  GPtrArray *(*audit_query) (CimsStore *store, const CimsAuditFilter *filter, GError **error);
  gboolean (*audit_foreach) (CimsStore *store, const CimsAuditFilter *filter,
                             CimsAuditRecordFunc func, gpointer user_data,
                             GCancellable *cancellable, GError **error);
  gboolean (*audit_verify) (CimsStore *store, guint64 *first_bad_sequence, GError **error);
} CimsStoreBackend;

/* A store is a backend table plus that backend's own data. */
struct _CimsStore {
  const CimsStoreBackend *backend;
  gpointer data;
};

/* ---- shared helpers (store.c, store-records.c) ----------------------------- */

/* Length of a lowercase hex SHA-256 digest, without the terminating NUL. */
#define CIMS_STORE_HASH_HEX_LEN 64

/* Makes an id: @prefix ("g-", "i-", "a-") + 16 lowercase hex digits from
 * OpenSSL's CSPRNG. Fails with CIMS_STORE_ERROR_WRITE when RAND_bytes() does.
 * Returns: (transfer full) */
char *cims_store_id_new (const char *prefix, GError **error);

/* Formats UTC microseconds as "2026-12-04T10:00:00Z" for messages.
 * G_MAXINT64 reads "never". Returns: (transfer full) */
char *cims_store_time_format (gint64 time_us);

/* Checks the fields a grant, incident or archive request needs before it is
 * stored: required strings present, times in order, camera lists not empty.
 * Fail with CIMS_STORE_ERROR_INVALID naming the field. */
gboolean cims_store_grant_validate (const CimsGrant *grant, GError **error);
gboolean cims_store_incident_validate (const CimsIncident *incident, GError **error);
gboolean cims_store_archive_request_validate (const CimsArchiveRequest *request, GError **error);
gboolean cims_store_audit_record_validate (const CimsAuditRecord *record, GError **error);

/* Whether an archive request may move from @from to @to. */
gboolean cims_archive_state_can_move (CimsArchiveState from, CimsArchiveState to);

const char *cims_grantee_kind_to_string (CimsGranteeKind kind);
gboolean cims_grantee_kind_from_string (const char *name, CimsGranteeKind *out);

/* ---- audit hash chain (store-audit-chain.c) -------------------------------- */

/* Computes the hex SHA-256 of @record's canonical form, which covers every
 * field except hash itself, sequence, time_ms and previous_hash included.
 * Returns: (transfer full) */
char *cims_audit_record_compute_hash (const CimsAuditRecord *record);

/* The state of a walk over the audit log in sequence order. */
typedef struct {
  guint64 next_sequence;
  char previous_hash[CIMS_STORE_HASH_HEX_LEN + 1];
} CimsAuditChain;

void cims_audit_chain_init (CimsAuditChain *chain);

/* Checks that @record is the next link of @chain and advances it. On a break,
 * returns FALSE with *first_bad_sequence set and a CIMS_STORE_ERROR_CHAIN_BROKEN
 * error saying what is wrong there. */
gboolean cims_audit_chain_check (CimsAuditChain *chain, const CimsAuditRecord *record,
                                 guint64 *first_bad_sequence, GError **error);

/* ---- SQLite backend (store-sqlite*.c) ------------------------------------- */

typedef struct {
  sqlite3 *db;
  GMutex lock;                  /* held around every use of db and statements */
  char *path;                   /* as given to open, for messages */
  GHashTable *statements;       /* SQL text (static string) -> prepared sqlite3_stmt */
} CimsStoreSqlite;

/* A statement borrowed from the cache: the cleanup resets it and clears its
 * bindings instead of finalizing it. */
typedef sqlite3_stmt CimsSqliteCachedStmt;
void cims_store_sqlite_statement_release (CimsSqliteCachedStmt *stmt);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsSqliteCachedStmt, cims_store_sqlite_statement_release)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)

/* Returns the cached statement for @sql, preparing it on first use. @sql
 * must be a string literal: the cache is keyed by its address. Call with
 * sq->lock held. Returns: (transfer none) or NULL with @error set to @code. */
CimsSqliteCachedStmt *cims_store_sqlite_statement_get (CimsStoreSqlite *sq, const char *sql,
                                                       CimsStoreError code, GError **error);

/* Sets @error to @code with the formatted message, then ": " and SQLite's
 * message for the connection's last failure. */
void cims_store_sqlite_set_error (CimsStoreSqlite *sq, GError **error, CimsStoreError code,
                                  const char *format, ...) G_GNUC_PRINTF (4, 5);

/* Binds @text, or SQL NULL when @text is NULL. */
int cims_store_sqlite_bind_text (sqlite3_stmt *stmt, int index, const char *text);

/* Copies column @index as a string, NULL for SQL NULL. Returns: (transfer full) */
char *cims_store_sqlite_column_dup (sqlite3_stmt *stmt, int index);

/* Converts a camera or partner list to JSON array text (NULL stays NULL) and
 * back. Returns: (transfer full) */
char *cims_store_sqlite_strv_to_json (char **strv);
gboolean cims_store_sqlite_strv_from_json (const char *json, char ***out, GError **error);

/* Runs a statement that returns no rows (BEGIN, COMMIT, ...). */
gboolean cims_store_sqlite_exec (CimsStoreSqlite *sq, const char *sql, CimsStoreError code,
                                 const char *operation, GError **error);

/* Backend entries, one file per kind of record. */
gboolean cims_store_sqlite_grant_insert (CimsStore *store, CimsGrant *grant, GError **error);
gboolean cims_store_sqlite_grant_revoke (CimsStore *store, const char *grant_id,
                                         const char *revoked_by, gint64 revoked_at_us,
                                         GError **error);
CimsGrant *cims_store_sqlite_grant_get (CimsStore *store, const char *grant_id, GError **error);
GPtrArray *cims_store_sqlite_grant_list (CimsStore *store, GError **error);

gboolean cims_store_sqlite_incident_insert (CimsStore *store, CimsIncident *incident,
                                            GError **error);
gboolean cims_store_sqlite_incident_end (CimsStore *store, const char *incident_id,
                                         const char *ended_by, gint64 ended_at_us, GError **error);
CimsIncident *cims_store_sqlite_incident_get (CimsStore *store, const char *incident_id,
                                              GError **error);
GPtrArray *cims_store_sqlite_incident_list (CimsStore *store, GError **error);

gboolean cims_store_sqlite_archive_request_insert (CimsStore *store, CimsArchiveRequest *request,
                                                   GError **error);
CimsArchiveRequest *cims_store_sqlite_archive_request_get (CimsStore *store,
                                                           const char *request_id,
                                                           GError **error);
GPtrArray *cims_store_sqlite_archive_request_list (CimsStore *store, GError **error);
gboolean cims_store_sqlite_archive_request_update_state (CimsStore *store, const char *request_id,
                                                         CimsArchiveState expected_state,
                                                         CimsArchiveState new_state,
                                                         const char *actor, gint64 at_us,
                                                         const char *note, GError **error);

gboolean cims_store_sqlite_audit_append (CimsStore *store, CimsAuditRecord *record,
                                         GError **error);
GPtrArray *cims_store_sqlite_audit_query (CimsStore *store, const CimsAuditFilter *filter,
                                          GError **error);
gboolean cims_store_sqlite_audit_foreach (CimsStore *store, const CimsAuditFilter *filter,
                                          CimsAuditRecordFunc func, gpointer user_data,
                                          GCancellable *cancellable, GError **error);
gboolean cims_store_sqlite_audit_verify (CimsStore *store, guint64 *first_bad_sequence,
                                         GError **error);

G_END_DECLS
