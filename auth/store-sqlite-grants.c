/* SPDX-License-Identifier: Apache-2.0 */
/* Grants in the SQLite store: insert, revoke, get and list. The grant type's
 * own helpers (copy, is_active, ...) are in store-records.c. */

#include "auth/store.h"

#include "auth/store-private.h"

/* Column order shared by every SELECT of a grant and grant_from_row. */
#define GRANT_COLUMNS \
  "id, owner, grantee_kind, grantee, grantee_group, cameras, starts_at_us, ends_at_us, " \
  "purpose, incident_number, authorized_by, authorized_by_name, authorized_at_us, " \
  "revoked_by, revoked_at_us"

static const char sql_grant_insert[] =
  "INSERT INTO grants (" GRANT_COLUMNS ") "
  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, NULL, 0)";

/* Only a grant not yet revoked changes, so two revokes cannot both win. */
static const char sql_grant_revoke[] =
  "UPDATE grants SET revoked_by = ?2, revoked_at_us = ?3 WHERE id = ?1 AND revoked_at_us = 0";

static const char sql_grant_get[] = "SELECT " GRANT_COLUMNS " FROM grants WHERE id = ?1";

static const char sql_grant_list[] =
  "SELECT " GRANT_COLUMNS " FROM grants ORDER BY authorized_at_us DESC, rowid DESC";

static CimsGrant *
grant_from_row (sqlite3_stmt *stmt, GError **error)
{
  g_autoptr(CimsGrant) grant = g_new0 (CimsGrant, 1);
  g_autofree char *cameras = NULL;
  const char *kind = (const char *) sqlite3_column_text (stmt, 2);

  grant->id = cims_store_sqlite_column_dup (stmt, 0);
  grant->owner = cims_store_sqlite_column_dup (stmt, 1);
  grant->grantee = cims_store_sqlite_column_dup (stmt, 3);
  grant->grantee_group = cims_store_sqlite_column_dup (stmt, 4);
  cameras = cims_store_sqlite_column_dup (stmt, 5);
  grant->starts_at_us = sqlite3_column_int64 (stmt, 6);
  grant->ends_at_us = sqlite3_column_int64 (stmt, 7);
  grant->purpose = cims_store_sqlite_column_dup (stmt, 8);
  grant->incident_number = cims_store_sqlite_column_dup (stmt, 9);
  grant->authorized_by = cims_store_sqlite_column_dup (stmt, 10);
  grant->authorized_by_name = cims_store_sqlite_column_dup (stmt, 11);
  grant->authorized_at_us = sqlite3_column_int64 (stmt, 12);
  grant->revoked_by = cims_store_sqlite_column_dup (stmt, 13);
  grant->revoked_at_us = sqlite3_column_int64 (stmt, 14);

  if (!cims_grantee_kind_from_string (kind, &grant->grantee_kind)) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_READ,
                 "Cannot read grant %s: grantee kind \"%s\" is unknown", grant->id, kind);
    return NULL;
  }

  if (!cims_store_sqlite_strv_from_json (cameras, &grant->cameras, error)) {
    g_prefix_error (error, "Cannot read grant %s: camera ", grant->id);
    return NULL;
  }

  return g_steal_pointer (&grant);
}

static gboolean
grant_bind_insert (sqlite3_stmt *stmt, const CimsGrant *grant)
{
  g_autofree char *cameras = cims_store_sqlite_strv_to_json (grant->cameras);

  return cims_store_sqlite_bind_text (stmt, 1, grant->id) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 2, grant->owner) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 3, cims_grantee_kind_to_string (grant->grantee_kind))
           == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 4, grant->grantee) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 5, grant->grantee_group) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 6, cameras) == SQLITE_OK &&
         sqlite3_bind_int64 (stmt, 7, grant->starts_at_us) == SQLITE_OK &&
         sqlite3_bind_int64 (stmt, 8, grant->ends_at_us) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 9, grant->purpose) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 10, grant->incident_number) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 11, grant->authorized_by) == SQLITE_OK &&
         cims_store_sqlite_bind_text (stmt, 12, grant->authorized_by_name) == SQLITE_OK &&
         sqlite3_bind_int64 (stmt, 13, grant->authorized_at_us) == SQLITE_OK;
}

/* Stores @grant as a new, unrevoked grant and sets grant->id (replacing any
 * id it had). Any revocation fields in @grant are ignored. */
gboolean
cims_store_sqlite_grant_insert (CimsStore *store, CimsGrant *grant, GError **error)
{
  CimsStoreSqlite *sq = store->data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&sq->lock);
  g_autoptr(CimsSqliteCachedStmt) stmt = NULL;
  g_autofree char *id = cims_store_id_new ("g-", error);

  if (id == NULL)
    return FALSE;

  stmt = cims_store_sqlite_statement_get (sq, sql_grant_insert, CIMS_STORE_ERROR_WRITE, error);
  if (stmt == NULL)
    return FALSE;

  g_free (grant->id);
  grant->id = g_steal_pointer (&id);

  if (!grant_bind_insert (stmt, grant) || sqlite3_step (stmt) != SQLITE_DONE) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_WRITE,
                                 "Cannot insert grant %s for %s from owner %s", grant->id,
                                 grant->grantee, grant->owner);
    g_clear_pointer (&grant->id, g_free);
    return FALSE;
  }

  g_clear_pointer (&grant->revoked_by, g_free);
  grant->revoked_at_us = 0;

  return TRUE;
}

/* Call with sq->lock held. Sets NOT_FOUND when no grant has @grant_id. */
static CimsGrant *
grant_get_locked (CimsStoreSqlite *sq, const char *grant_id, GError **error)
{
  g_autoptr(CimsSqliteCachedStmt) stmt = NULL;
  int rc;

  stmt = cims_store_sqlite_statement_get (sq, sql_grant_get, CIMS_STORE_ERROR_READ, error);
  if (stmt == NULL)
    return NULL;

  cims_store_sqlite_bind_text (stmt, 1, grant_id);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_DONE) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_NOT_FOUND,
                 "Cannot find grant %s: no grant has that id", grant_id);
    return NULL;
  }
  if (rc != SQLITE_ROW) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_READ, "Cannot read grant %s",
                                 grant_id);
    return NULL;
  }

  return grant_from_row (stmt, error);
}

/* Explains why a revoke changed no row: the grant is unknown or was already
 * revoked. */
static void
grant_revoke_explain (CimsStoreSqlite *sq, const char *grant_id, GError **error)
{
  g_autoptr(GError) get_error = NULL;
  g_autoptr(CimsGrant) grant = grant_get_locked (sq, grant_id, &get_error);
  g_autofree char *revoked_at = NULL;

  if (grant == NULL) {
    g_set_error (error, CIMS_STORE_ERROR, get_error->code, "Cannot revoke grant %s: %s",
                 grant_id,
                 get_error->code == CIMS_STORE_ERROR_NOT_FOUND ? "no grant has that id"
                                                                : get_error->message);
    return;
  }

  revoked_at = cims_store_time_format (grant->revoked_at_us);
  g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_CONFLICT,
               "Cannot revoke grant %s: it was already revoked at %s by %s", grant_id,
               revoked_at, grant->revoked_by != NULL ? grant->revoked_by : "(unknown)");
}

gboolean
cims_store_sqlite_grant_revoke (CimsStore *store, const char *grant_id, const char *revoked_by,
                                gint64 revoked_at_us, GError **error)
{
  CimsStoreSqlite *sq = store->data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&sq->lock);
  g_autoptr(CimsSqliteCachedStmt) stmt = NULL;

  stmt = cims_store_sqlite_statement_get (sq, sql_grant_revoke, CIMS_STORE_ERROR_WRITE, error);
  if (stmt == NULL)
    return FALSE;

  cims_store_sqlite_bind_text (stmt, 1, grant_id);
  cims_store_sqlite_bind_text (stmt, 2, revoked_by);
  sqlite3_bind_int64 (stmt, 3, revoked_at_us);
  if (sqlite3_step (stmt) != SQLITE_DONE) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_WRITE, "Cannot revoke grant %s",
                                 grant_id);
    return FALSE;
  }

  if (sqlite3_changes (sq->db) == 0) {
    grant_revoke_explain (sq, grant_id, error);
    return FALSE;
  }

  return TRUE;
}

CimsGrant *
cims_store_sqlite_grant_get (CimsStore *store, const char *grant_id, GError **error)
{
  CimsStoreSqlite *sq = store->data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&sq->lock);

  return grant_get_locked (sq, grant_id, error);
}

GPtrArray *
cims_store_sqlite_grant_list (CimsStore *store, GError **error)
{
  CimsStoreSqlite *sq = store->data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&sq->lock);
  g_autoptr(CimsSqliteCachedStmt) stmt = NULL;
  g_autoptr(GPtrArray) grants = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_grant_free);
  int rc;

  stmt = cims_store_sqlite_statement_get (sq, sql_grant_list, CIMS_STORE_ERROR_READ, error);
  if (stmt == NULL)
    return NULL;

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
    CimsGrant *grant = grant_from_row (stmt, error);

    if (grant == NULL)
      return NULL;
    g_ptr_array_add (grants, grant);
  }

  if (rc != SQLITE_DONE) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_READ, "Cannot list grants");
    return NULL;
  }

  return g_steal_pointer (&grants);
}
