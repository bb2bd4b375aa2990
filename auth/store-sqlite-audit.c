/* SPDX-License-Identifier: Apache-2.0 */
/* The audit log in the SQLite store: durable append, filtered query, the
 * streaming read that hands over one record at a time, and the walk that
 * verifies the hash chain. The canonical form and the per-record
 * chain check are shared with other backends in store-audit-chain.c. */

#include "auth/store.h"

#include "auth/store-private.h"

/* Column order shared by every SELECT of a record and record_from_row. */
#define AUDIT_COLUMNS \
  "sequence, time_ms, event, person_id, person_name, person_jurisdiction, camera_id, " \
  "camera_owner, camera_location, session_id, grant_id, incident_id, incident_number, " \
  "viewer_address, client_version, reason, details, bytes_sent, duration_ms, " \
  "previous_hash, hash"

static const char sql_audit_last[] =
  "SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1";

static const char sql_audit_insert[] =
  "INSERT INTO audit_log (" AUDIT_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
  "?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)";

static const char sql_audit_all[] =
  "SELECT " AUDIT_COLUMNS " FROM audit_log ORDER BY sequence";

static const char audit_zero_hash[] =
  "0000000000000000000000000000000000000000000000000000000000000000";

static CimsAuditRecord *
record_from_row (sqlite3_stmt *stmt)
{
  CimsAuditRecord *record = g_new0 (CimsAuditRecord, 1);

  record->sequence = (guint64) sqlite3_column_int64 (stmt, 0);
  record->time_ms = sqlite3_column_int64 (stmt, 1);
  record->event = cims_store_sqlite_column_dup (stmt, 2);
  record->person_id = cims_store_sqlite_column_dup (stmt, 3);
  record->person_name = cims_store_sqlite_column_dup (stmt, 4);
  record->person_jurisdiction = cims_store_sqlite_column_dup (stmt, 5);
  record->camera_id = cims_store_sqlite_column_dup (stmt, 6);
  record->camera_owner = cims_store_sqlite_column_dup (stmt, 7);
  record->camera_location = cims_store_sqlite_column_dup (stmt, 8);
  record->session_id = cims_store_sqlite_column_dup (stmt, 9);
  record->grant_id = cims_store_sqlite_column_dup (stmt, 10);
  record->incident_id = cims_store_sqlite_column_dup (stmt, 11);
  record->incident_number = cims_store_sqlite_column_dup (stmt, 12);
  record->viewer_address = cims_store_sqlite_column_dup (stmt, 13);
  record->client_version = cims_store_sqlite_column_dup (stmt, 14);
  record->reason = cims_store_sqlite_column_dup (stmt, 15);
  record->details = cims_store_sqlite_column_dup (stmt, 16);
  record->bytes_sent = sqlite3_column_int64 (stmt, 17);
  record->duration_ms = sqlite3_column_int64 (stmt, 18);
  record->previous_hash = cims_store_sqlite_column_dup (stmt, 19);
  record->hash = cims_store_sqlite_column_dup (stmt, 20);

  return record;
}

static gboolean
record_bind_insert (sqlite3_stmt *stmt, const CimsAuditRecord *record)
{
  const char *texts[] = {
    record->event, record->person_id, record->person_name, record->person_jurisdiction,
    record->camera_id, record->camera_owner, record->camera_location, record->session_id,
    record->grant_id, record->incident_id, record->incident_number, record->viewer_address,
    record->client_version, record->reason, record->details,
  };

  if (sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) record->sequence) != SQLITE_OK ||
      sqlite3_bind_int64 (stmt, 2, record->time_ms) != SQLITE_OK)
    return FALSE;

  /* The strings are columns 3 to 17, in the order of AUDIT_COLUMNS. */
  for (gsize i = 0; i < G_N_ELEMENTS (texts); i++) {
    if (cims_store_sqlite_bind_text (stmt, (int) i + 3, texts[i]) != SQLITE_OK)
      return FALSE;
  }

  return sqlite3_bind_int64 (stmt, 18, record->bytes_sent) == SQLITE_OK &&
         sqlite3_bind_int64 (stmt, 19, record->duration_ms) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 20, record->previous_hash) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 21, record->hash) == SQLITE_OK;
}

/* Names a record in messages: "audit record session-start of session s-1". */
static char *
record_describe (const CimsAuditRecord *record)
{
  if (record->session_id != NULL)
    return g_strdup_printf ("audit record %s of session %s", record->event, record->session_id);

  return g_strdup_printf ("audit record %s", record->event);
}

/* Reads the last record's sequence and hash, or 0 and 64 zeros for an empty
 * log. Call inside the append's transaction. */
static gboolean
audit_read_last (CimsStoreSqlite *sq, guint64 *sequence, char **hash, const char *record_name,
                 GError **error)
{
  g_autoptr(CimsSqliteCachedStmt) stmt = NULL;
  int rc;

  stmt = cims_store_sqlite_statement_get (sq, sql_audit_last, CIMS_STORE_ERROR_WRITE, error);
  if (stmt == NULL)
    return FALSE;

  rc = sqlite3_step (stmt);
  if (rc == SQLITE_DONE) {
    *sequence = 0;
    *hash = g_strdup (audit_zero_hash);
    return TRUE;
  }
  if (rc != SQLITE_ROW) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_WRITE,
                                 "Cannot append %s: reading the last record failed", record_name);
    return FALSE;
  }

  *sequence = (guint64) sqlite3_column_int64 (stmt, 0);
  *hash = cims_store_sqlite_column_dup (stmt, 1);
  return TRUE;
}

/* Fills in the chain fields and inserts @record. Call inside the append's
 * transaction. */
static gboolean
audit_insert_next (CimsStoreSqlite *sq, CimsAuditRecord *record, const char *record_name,
                   GError **error)
{
  g_autoptr(CimsSqliteCachedStmt) stmt = NULL;
  guint64 last_sequence = 0;

  g_clear_pointer (&record->previous_hash, g_free);
  g_clear_pointer (&record->hash, g_free);

  if (!audit_read_last (sq, &last_sequence, &record->previous_hash, record_name, error))
    return FALSE;

  record->sequence = last_sequence + 1;
  record->hash = cims_audit_record_compute_hash (record);

  stmt = cims_store_sqlite_statement_get (sq, sql_audit_insert, CIMS_STORE_ERROR_WRITE, error);
  if (stmt == NULL)
    return FALSE;

  if (!record_bind_insert (stmt, record) || sqlite3_step (stmt) != SQLITE_DONE) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_WRITE,
                                 "Cannot append %s as record %" G_GUINT64_FORMAT, record_name,
                                 record->sequence);
    return FALSE;
  }

  return TRUE;
}

/* The whole read-compute-insert runs in one IMMEDIATE transaction, so no
 * other connection (another hub process, cimshubctl) can take the same
 * sequence. COMMIT returning means the record is in the WAL and synced,
 * because the connection runs with synchronous=FULL. */
gboolean
cims_store_sqlite_audit_append (CimsStore *store, CimsAuditRecord *record, GError **error)
{
  CimsStoreSqlite *sq = store->data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&sq->lock);
  g_autofree char *record_name = record_describe (record);

  if (sqlite3_exec (sq->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_WRITE,
                                 "Cannot append %s: BEGIN IMMEDIATE failed", record_name);
    goto fail;
  }

  if (!audit_insert_next (sq, record, record_name, error))
    goto rollback;

  if (sqlite3_exec (sq->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_WRITE,
                                 "Cannot append %s: COMMIT failed", record_name);
    goto rollback;
  }

  return TRUE;

rollback:
  /* Fails harmlessly when SQLite has already rolled the transaction back. */
  sqlite3_exec (sq->db, "ROLLBACK", NULL, NULL, NULL);
fail:
  record->sequence = 0;
  g_clear_pointer (&record->previous_hash, g_free);
  g_clear_pointer (&record->hash, g_free);
  return FALSE;
}

/* ---- query ----------------------------------------------------------------- */

/* One text condition of a query: @column (or @other_column) equals @value. */
typedef struct {
  const char *value;
  const char *column;
  const char *other_column;
} QueryTextCondition;

#define QUERY_N_TEXTS 5

static void
query_texts_get (const CimsAuditFilter *filter, QueryTextCondition texts[QUERY_N_TEXTS])
{
  texts[0] = (QueryTextCondition) { filter->camera_id, "camera_id", NULL };
  texts[1] = (QueryTextCondition) { filter->person_id, "person_id", NULL };
  texts[2] = (QueryTextCondition) { filter->jurisdiction, "person_jurisdiction", "camera_owner" };
  texts[3] = (QueryTextCondition) { filter->incident_number, "incident_number", NULL };
  texts[4] = (QueryTextCondition) { filter->event, "event", NULL };
}

/* Writes the SELECT for @filter. Every condition present adds one AND
 * clause with its own numbered parameters, and the jurisdiction clause uses
 * its parameter twice. A bound on sequence is a range of the primary key,
 * so a walk from a sequence starts there instead of at the first record. */
static char *
audit_query_sql (const CimsAuditFilter *filter, const QueryTextCondition texts[QUERY_N_TEXTS])
{
  GString *sql = g_string_new ("SELECT " AUDIT_COLUMNS " FROM audit_log WHERE 1");
  int n_params = 0;

  if (filter->from_ms != 0)
    g_string_append_printf (sql, " AND time_ms >= ?%d", ++n_params);
  if (filter->to_ms != 0)
    g_string_append_printf (sql, " AND time_ms < ?%d", ++n_params);
  if (filter->from_sequence != 0)
    g_string_append_printf (sql, " AND sequence >= ?%d", ++n_params);

  for (gsize i = 0; i < QUERY_N_TEXTS; i++) {
    if (texts[i].value == NULL)
      continue;

    n_params++;
    g_string_append_printf (sql, " AND (%s = ?%d", texts[i].column, n_params);
    if (texts[i].other_column != NULL)
      g_string_append_printf (sql, " OR %s = ?%d", texts[i].other_column, n_params);
    g_string_append_c (sql, ')');
  }

  /* SQLite reads an empty list as matching nothing. */
  if (filter->events != NULL) {
    g_string_append (sql, " AND event IN (");
    for (gsize i = 0; filter->events[i] != NULL; i++)
      g_string_append_printf (sql, "%s?%d", i > 0 ? ", " : "", ++n_params);
    g_string_append_c (sql, ')');
  }

  g_string_append (sql, " ORDER BY sequence");
  if (filter->limit != 0)
    g_string_append_printf (sql, " LIMIT %u", filter->limit);

  return g_string_free (sql, FALSE);
}

/* Binds @filter's values in the order audit_query_sql numbered them. */
static void
audit_query_bind (sqlite3_stmt *stmt, const CimsAuditFilter *filter,
                  const QueryTextCondition texts[QUERY_N_TEXTS])
{
  int n_params = 0;

  if (filter->from_ms != 0)
    sqlite3_bind_int64 (stmt, ++n_params, filter->from_ms);
  if (filter->to_ms != 0)
    sqlite3_bind_int64 (stmt, ++n_params, filter->to_ms);
  if (filter->from_sequence != 0)
    sqlite3_bind_int64 (stmt, ++n_params, (sqlite3_int64) MIN (filter->from_sequence, G_MAXINT64));

  for (gsize i = 0; i < QUERY_N_TEXTS; i++) {
    if (texts[i].value != NULL)
      cims_store_sqlite_bind_text (stmt, ++n_params, texts[i].value);
  }

  for (gsize i = 0; filter->events != NULL && filter->events[i] != NULL; i++)
    cims_store_sqlite_bind_text (stmt, ++n_params, filter->events[i]);
}

/* Prepares the SELECT for @filter with its values bound.
 * Returns: (transfer full) */
static sqlite3_stmt *
audit_query_prepare (CimsStoreSqlite *sq, const CimsAuditFilter *filter, GError **error)
{
  QueryTextCondition texts[QUERY_N_TEXTS];
  g_autofree char *sql = NULL;
  sqlite3_stmt *stmt = NULL;

  query_texts_get (filter, texts);
  sql = audit_query_sql (filter, texts);
  if (sqlite3_prepare_v2 (sq->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_READ,
                                 "Cannot query the audit log");
    return NULL;
  }

  audit_query_bind (stmt, filter, texts);
  return stmt;
}

/* SQLite virtual machine instructions between two checks of the
 * cancellable, about 400 rows in the store test. The check runs inside
 * sqlite3_step() too, which matters because SQLite 3.40 reads a query by
 * time through the time index and sorts every matching record before the
 * first step returns. */
#define AUDIT_CANCEL_CHECK_OPS 10000

/* Takes one record, (transfer full). Returns FALSE to stop the walk. */
typedef gboolean (*AuditRecordTakeFunc) (CimsAuditRecord *record, gpointer user_data);

/* SQLite progress handler: a nonzero return interrupts the statement. */
static int
walk_is_cancelled_cb (void *cancellable)
{
  return g_cancellable_is_cancelled (cancellable);
}

/* Steps @stmt and hands each record to @take. Returns FALSE when a step
 * failed, also when it was interrupted, else TRUE. */
static gboolean
audit_rows_take (sqlite3_stmt *stmt, AuditRecordTakeFunc take, gpointer user_data)
{
  int rc;

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
    if (!take (record_from_row (stmt), user_data))
      return TRUE;
  }

  return rc == SQLITE_DONE;
}

/* Runs the query for @filter and hands each record to @take. Call with
 * sq->lock held. Returns FALSE with @error set on a read failure or when
 * @cancellable is cancelled, else TRUE, also when @take stopped the walk. */
static gboolean
audit_query_walk (CimsStoreSqlite *sq, const CimsAuditFilter *filter, AuditRecordTakeFunc take,
                  gpointer user_data, GCancellable *cancellable, GError **error)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  gboolean is_read;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  stmt = audit_query_prepare (sq, filter, error);
  if (stmt == NULL)
    return FALSE;

  if (cancellable != NULL)
    sqlite3_progress_handler (sq->db, AUDIT_CANCEL_CHECK_OPS, walk_is_cancelled_cb, cancellable);
  is_read = audit_rows_take (stmt, take, user_data);
  sqlite3_progress_handler (sq->db, 0, NULL, NULL);

  if (is_read)
    return TRUE;

  /* An interrupted step returns SQLITE_INTERRUPT, which the cancel explains. */
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_READ, "Cannot query the audit log");
  return FALSE;
}

static gboolean
record_collect (CimsAuditRecord *record, gpointer user_data)
{
  g_ptr_array_add (user_data, record);
  return TRUE;
}

GPtrArray *
cims_store_sqlite_audit_query (CimsStore *store, const CimsAuditFilter *filter, GError **error)
{
  CimsStoreSqlite *sq = store->data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&sq->lock);
  g_autoptr(GPtrArray) records =
    g_ptr_array_new_with_free_func ((GDestroyNotify) cims_audit_record_free);

  if (!audit_query_walk (sq, filter, record_collect, records, NULL, error))
    return NULL;

  return g_steal_pointer (&records);
}

/* The function and data given to foreach, for record_pass. */
typedef struct {
  CimsAuditRecordFunc func;
  gpointer user_data;
} AuditRecordCallback;

static gboolean
record_pass (CimsAuditRecord *record, gpointer user_data)
{
  g_autoptr(CimsAuditRecord) owned = record;
  AuditRecordCallback *callback = user_data;

  return callback->func (owned, callback->user_data);
}

gboolean
cims_store_sqlite_audit_foreach (CimsStore *store, const CimsAuditFilter *filter,
                                 CimsAuditRecordFunc func, gpointer user_data,
                                 GCancellable *cancellable, GError **error)
{
  CimsStoreSqlite *sq = store->data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&sq->lock);
  AuditRecordCallback callback = { func, user_data };

  return audit_query_walk (sq, filter, record_pass, &callback, cancellable, error);
}

/* ---- verify ---------------------------------------------------------------- */

/* Walks the records in sequence order. Call inside a read transaction, so
 * appends from other connections do not show up halfway. */
static gboolean
audit_verify_walk (CimsStoreSqlite *sq, guint64 *first_bad_sequence, GError **error)
{
  g_autoptr(CimsSqliteCachedStmt) stmt = NULL;
  CimsAuditChain chain;
  int rc;

  stmt = cims_store_sqlite_statement_get (sq, sql_audit_all, CIMS_STORE_ERROR_READ, error);
  if (stmt == NULL)
    return FALSE;

  cims_audit_chain_init (&chain);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
    g_autoptr(CimsAuditRecord) record = record_from_row (stmt);

    if (!cims_audit_chain_check (&chain, record, first_bad_sequence, error))
      return FALSE;
  }

  if (rc != SQLITE_DONE) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_READ,
                                 "Cannot verify the audit log: reading record %"
                                 G_GUINT64_FORMAT " failed", chain.next_sequence);
    return FALSE;
  }

  return TRUE;
}

/* NOTE: the lock is held for the whole walk, so appends from this process
 * wait until a verify of a large log finishes. */
gboolean
cims_store_sqlite_audit_verify (CimsStore *store, guint64 *first_bad_sequence, GError **error)
{
  CimsStoreSqlite *sq = store->data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&sq->lock);
  gboolean is_intact;

  if (!cims_store_sqlite_exec (sq, "BEGIN", CIMS_STORE_ERROR_READ,
                               "Cannot verify the audit log: BEGIN failed", error))
    return FALSE;

  is_intact = audit_verify_walk (sq, first_bad_sequence, error);

  /* Nothing was written, so ending the read transaction cannot lose data. */
  sqlite3_exec (sq->db, "COMMIT", NULL, NULL, NULL);

  return is_intact;
}
