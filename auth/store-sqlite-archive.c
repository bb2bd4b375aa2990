/* SPDX-License-Identifier: Apache-2.0 */
/* Archive-footage requests in the SQLite store: insert, get, list and the
 * state change. Which changes are allowed is decided in store-records.c. */

#include "auth/store.h"

#include "auth/store-private.h"

/* Column order shared by every SELECT of a request and request_from_row. */
#define REQUEST_COLUMNS \
  "id, camera_id, owner, from_us, to_us, requester_kind, requester_id, requester_name, " \
  "incident_number, purpose, state, created_at_us, decided_by, decided_at_us, " \
  "legal_reviewed_by, legal_reviewed_at_us, decision_note"

static const char sql_request_insert[] =
  "INSERT INTO archive_requests (" REQUEST_COLUMNS ") "
  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, NULL, 0, NULL, 0, NULL)";

/* ?4 is the actor and ?5 the time. ?7 is 1 when the move ends the legal
 * review and ?8 is 1 when it is the final decision. The state condition
 * makes the move atomic: of two racing moves from one state, one wins. */
static const char sql_request_update_state[] =
  "UPDATE archive_requests SET state = ?3,"
  "  legal_reviewed_by = CASE WHEN ?7 THEN ?4 ELSE legal_reviewed_by END,"
  "  legal_reviewed_at_us = CASE WHEN ?7 THEN ?5 ELSE legal_reviewed_at_us END,"
  "  decided_by = CASE WHEN ?8 THEN ?4 ELSE decided_by END,"
  "  decided_at_us = CASE WHEN ?8 THEN ?5 ELSE decided_at_us END,"
  "  decision_note = COALESCE (?6, decision_note) "
  "WHERE id = ?1 AND state = ?2";

static const char sql_request_get[] =
  "SELECT " REQUEST_COLUMNS " FROM archive_requests WHERE id = ?1";

static const char sql_request_list[] =
  "SELECT " REQUEST_COLUMNS " FROM archive_requests ORDER BY created_at_us DESC, rowid DESC";

static CimsArchiveRequest *
request_from_row (sqlite3_stmt *stmt, GError **error)
{
  g_autoptr(CimsArchiveRequest) request = g_new0 (CimsArchiveRequest, 1);
  const char *kind = (const char *) sqlite3_column_text (stmt, 5);
  const char *state = (const char *) sqlite3_column_text (stmt, 10);

  request->id = cims_store_sqlite_column_dup (stmt, 0);
  request->camera_id = cims_store_sqlite_column_dup (stmt, 1);
  request->owner = cims_store_sqlite_column_dup (stmt, 2);
  request->from_us = sqlite3_column_int64 (stmt, 3);
  request->to_us = sqlite3_column_int64 (stmt, 4);
  request->requester_id = cims_store_sqlite_column_dup (stmt, 6);
  request->requester_name = cims_store_sqlite_column_dup (stmt, 7);
  request->incident_number = cims_store_sqlite_column_dup (stmt, 8);
  request->purpose = cims_store_sqlite_column_dup (stmt, 9);
  request->created_at_us = sqlite3_column_int64 (stmt, 11);
  request->decided_by = cims_store_sqlite_column_dup (stmt, 12);
  request->decided_at_us = sqlite3_column_int64 (stmt, 13);
  request->legal_reviewed_by = cims_store_sqlite_column_dup (stmt, 14);
  request->legal_reviewed_at_us = sqlite3_column_int64 (stmt, 15);
  request->decision_note = cims_store_sqlite_column_dup (stmt, 16);

  if (!cims_archive_requester_kind_from_string (kind, &request->requester_kind)) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_READ,
                 "Cannot read archive request %s: requester kind \"%s\" is unknown",
                 request->id, kind);
    return NULL;
  }

  if (!cims_archive_state_from_string (state, &request->state)) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_READ,
                 "Cannot read archive request %s: state \"%s\" is unknown", request->id, state);
    return NULL;
  }

  return g_steal_pointer (&request);
}

static gboolean
request_bind_insert (sqlite3_stmt *stmt, const CimsArchiveRequest *request,
                     CimsArchiveState state)
{
  const char *kind = cims_archive_requester_kind_to_string (request->requester_kind);

  return cims_store_sqlite_bind_text (stmt, 1, request->id) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 2, request->camera_id) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 3, request->owner) == SQLITE_OK &&
         sqlite3_bind_int64 (stmt, 4, request->from_us) == SQLITE_OK &&
         sqlite3_bind_int64 (stmt, 5, request->to_us) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 6, kind) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 7, request->requester_id) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 8, request->requester_name) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 9, request->incident_number) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 10, request->purpose) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 11, cims_archive_state_to_string (state))
           == SQLITE_OK &&
         sqlite3_bind_int64 (stmt, 12, request->created_at_us) == SQLITE_OK;
}

/* Stores @request as a new request and sets its id and first state. Review
 * and decision fields start empty whatever @request contains. */
gboolean
cims_store_sqlite_archive_request_insert (CimsStore *store, CimsArchiveRequest *request,
                                          GError **error)
{
  CimsStoreSqlite *sq = store->data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&sq->lock);
  g_autoptr(CimsSqliteCachedStmt) stmt = NULL;
  g_autofree char *id = cims_store_id_new ("a-", error);
  CimsArchiveState state = request->requester_kind == CIMS_ARCHIVE_REQUESTER_CIVILIAN
                             ? CIMS_ARCHIVE_STATE_PENDING_LEGAL_REVIEW
                             : CIMS_ARCHIVE_STATE_PENDING_APPROVAL;

  if (id == NULL)
    return FALSE;

  stmt = cims_store_sqlite_statement_get (sq, sql_request_insert, CIMS_STORE_ERROR_WRITE, error);
  if (stmt == NULL)
    return FALSE;

  g_free (request->id);
  request->id = g_steal_pointer (&id);

  if (!request_bind_insert (stmt, request, state) || sqlite3_step (stmt) != SQLITE_DONE) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_WRITE,
                                 "Cannot insert archive request %s for camera %s by %s",
                                 request->id, request->camera_id, request->requester_id);
    g_clear_pointer (&request->id, g_free);
    return FALSE;
  }

  request->state = state;
  g_clear_pointer (&request->decided_by, g_free);
  request->decided_at_us = 0;
  g_clear_pointer (&request->legal_reviewed_by, g_free);
  request->legal_reviewed_at_us = 0;
  g_clear_pointer (&request->decision_note, g_free);

  return TRUE;
}

/* Call with sq->lock held. Sets NOT_FOUND when no request has @request_id. */
static CimsArchiveRequest *
request_get_locked (CimsStoreSqlite *sq, const char *request_id, GError **error)
{
  g_autoptr(CimsSqliteCachedStmt) stmt = NULL;
  int rc;

  stmt = cims_store_sqlite_statement_get (sq, sql_request_get, CIMS_STORE_ERROR_READ, error);
  if (stmt == NULL)
    return NULL;

  cims_store_sqlite_bind_text (stmt, 1, request_id);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_DONE) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_NOT_FOUND,
                 "Cannot find archive request %s: no request has that id", request_id);
    return NULL;
  }
  if (rc != SQLITE_ROW) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_READ,
                                 "Cannot read archive request %s", request_id);
    return NULL;
  }

  return request_from_row (stmt, error);
}

/* Explains why a state change changed no row: the request is unknown or is
 * no longer in the expected state. */
static void
request_update_explain (CimsStoreSqlite *sq, const char *request_id, CimsArchiveState expected,
                        CimsArchiveState new_state, GError **error)
{
  g_autoptr(GError) get_error = NULL;
  g_autoptr(CimsArchiveRequest) request = request_get_locked (sq, request_id, &get_error);
  const char *new_state_name = cims_archive_state_to_string (new_state);

  if (request == NULL) {
    g_set_error (error, CIMS_STORE_ERROR, get_error->code,
                 "Cannot move archive request %s to %s: %s", request_id, new_state_name,
                 get_error->code == CIMS_STORE_ERROR_NOT_FOUND ? "no request has that id"
                                                                : get_error->message);
    return;
  }

  g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_CONFLICT,
               "Cannot move archive request %s to %s: it is %s, not %s", request_id,
               new_state_name, cims_archive_state_to_string (request->state),
               cims_archive_state_to_string (expected));
}

gboolean
cims_store_sqlite_archive_request_update_state (CimsStore *store, const char *request_id,
                                                CimsArchiveState expected_state,
                                                CimsArchiveState new_state, const char *actor,
                                                gint64 at_us, const char *note, GError **error)
{
  CimsStoreSqlite *sq = store->data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&sq->lock);
  g_autoptr(CimsSqliteCachedStmt) stmt = NULL;
  gboolean ends_legal_review = expected_state == CIMS_ARCHIVE_STATE_PENDING_LEGAL_REVIEW;
  gboolean is_decision = new_state == CIMS_ARCHIVE_STATE_APPROVED ||
                         new_state == CIMS_ARCHIVE_STATE_DENIED;

  stmt = cims_store_sqlite_statement_get (sq, sql_request_update_state, CIMS_STORE_ERROR_WRITE,
                                          error);
  if (stmt == NULL)
    return FALSE;

  cims_store_sqlite_bind_text (stmt, 1, request_id);
  cims_store_sqlite_bind_text (stmt, 2, cims_archive_state_to_string (expected_state));
  cims_store_sqlite_bind_text (stmt, 3, cims_archive_state_to_string (new_state));
  cims_store_sqlite_bind_text (stmt, 4, actor);
  sqlite3_bind_int64 (stmt, 5, at_us);
  cims_store_sqlite_bind_text (stmt, 6, note);
  sqlite3_bind_int (stmt, 7, ends_legal_review);
  sqlite3_bind_int (stmt, 8, is_decision);
  if (sqlite3_step (stmt) != SQLITE_DONE) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_WRITE,
                                 "Cannot move archive request %s to %s", request_id,
                                 cims_archive_state_to_string (new_state));
    return FALSE;
  }

  if (sqlite3_changes (sq->db) == 0) {
    request_update_explain (sq, request_id, expected_state, new_state, error);
    return FALSE;
  }

  return TRUE;
}

CimsArchiveRequest *
cims_store_sqlite_archive_request_get (CimsStore *store, const char *request_id, GError **error)
{
  CimsStoreSqlite *sq = store->data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&sq->lock);

  return request_get_locked (sq, request_id, error);
}

GPtrArray *
cims_store_sqlite_archive_request_list (CimsStore *store, GError **error)
{
  CimsStoreSqlite *sq = store->data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&sq->lock);
  g_autoptr(CimsSqliteCachedStmt) stmt = NULL;
  g_autoptr(GPtrArray) requests =
    g_ptr_array_new_with_free_func ((GDestroyNotify) cims_archive_request_free);
  int rc;

  stmt = cims_store_sqlite_statement_get (sq, sql_request_list, CIMS_STORE_ERROR_READ, error);
  if (stmt == NULL)
    return NULL;

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
    CimsArchiveRequest *request = request_from_row (stmt, error);

    if (request == NULL)
      return NULL;
    g_ptr_array_add (requests, request);
  }

  if (rc != SQLITE_DONE) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_READ,
                                 "Cannot list archive requests");
    return NULL;
  }

  return g_steal_pointer (&requests);
}
