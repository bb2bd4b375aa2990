/* SPDX-License-Identifier: Apache-2.0 */
/* The SQLite backend's connection: opening the file, the schema and its
 * migrations (PRAGMA user_version), the prepared-statement cache and the
 * helpers its record files share. The records live in store-sqlite-*.c. */

#include "auth/store.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "auth/store-private.h"

/* How long a write waits for another connection's lock before failing. */
#define SQLITE_BUSY_TIMEOUT_MS 5000

/* Schema version n is reached by running migrations[n - 1]. Add new steps
 * at the end and never edit a released one. */
static const char *const migrations[] = {
  /* 1: grants, incidents, archive-footage requests, the audit log. Times are
   * UTC microseconds except the audit log's time_ms. Camera and partner
   * lists are JSON arrays of ids, and NULL means all. */
  "CREATE TABLE grants ("
  "  id TEXT PRIMARY KEY,"
  "  owner TEXT NOT NULL,"
  "  grantee_kind TEXT NOT NULL CHECK (grantee_kind IN ('jurisdiction', 'agency')),"
  "  grantee TEXT NOT NULL,"
  "  grantee_group TEXT,"
  "  cameras TEXT,"
  "  starts_at_us INTEGER NOT NULL,"
  "  ends_at_us INTEGER NOT NULL,"
  "  purpose TEXT NOT NULL,"
  "  incident_number TEXT,"
  "  authorized_by TEXT NOT NULL,"
  "  authorized_by_name TEXT,"
  "  authorized_at_us INTEGER NOT NULL,"
  "  revoked_by TEXT,"
  "  revoked_at_us INTEGER NOT NULL DEFAULT 0"
  ");"
  "CREATE INDEX grants_by_grantee ON grants (grantee);"
  "CREATE TABLE incidents ("
  "  id TEXT PRIMARY KEY,"
  "  owner TEXT NOT NULL,"
  "  incident_number TEXT NOT NULL,"
  "  cameras TEXT,"
  "  partners TEXT,"
  "  starts_at_us INTEGER NOT NULL,"
  "  ends_at_us INTEGER NOT NULL,"
  "  description TEXT,"
  "  declared_by TEXT NOT NULL,"
  "  declared_by_name TEXT,"
  "  ended_by TEXT,"
  "  ended_at_us INTEGER NOT NULL DEFAULT 0"
  ");"
  "CREATE TABLE archive_requests ("
  "  id TEXT PRIMARY KEY,"
  "  camera_id TEXT NOT NULL,"
  "  owner TEXT NOT NULL,"
  "  from_us INTEGER NOT NULL,"
  "  to_us INTEGER NOT NULL,"
  "  requester_kind TEXT NOT NULL"
  "    CHECK (requester_kind IN ('jurisdiction', 'agency', 'civilian')),"
  "  requester_id TEXT NOT NULL,"
  "  requester_name TEXT NOT NULL,"
  "  incident_number TEXT,"
  "  purpose TEXT NOT NULL,"
  "  state TEXT NOT NULL CHECK (state IN"
  "    ('pending-legal-review', 'pending-approval', 'approved', 'denied')),"
  "  created_at_us INTEGER NOT NULL,"
  "  decided_by TEXT,"
  "  decided_at_us INTEGER NOT NULL DEFAULT 0,"
  "  legal_reviewed_by TEXT,"
  "  legal_reviewed_at_us INTEGER NOT NULL DEFAULT 0,"
  "  decision_note TEXT"
  ");"
  /* sequence is set by the append as last + 1 inside its transaction, so
   * there is no AUTOINCREMENT and no gap. */
  "CREATE TABLE audit_log ("
  "  sequence INTEGER PRIMARY KEY,"
  "  time_ms INTEGER NOT NULL,"
  "  event TEXT NOT NULL,"
  "  person_id TEXT,"
  "  person_name TEXT,"
  "  person_jurisdiction TEXT,"
  "  camera_id TEXT,"
  "  camera_owner TEXT,"
  "  camera_location TEXT,"
  "  session_id TEXT,"
  "  grant_id TEXT,"
  "  incident_id TEXT,"
  "  incident_number TEXT,"
  "  viewer_address TEXT,"
  "  client_version TEXT,"
  "  reason TEXT,"
  "  details TEXT,"
  "  bytes_sent INTEGER NOT NULL,"
  "  duration_ms INTEGER NOT NULL,"
  "  previous_hash TEXT NOT NULL,"
  "  hash TEXT NOT NULL"
  ");"
  "CREATE INDEX audit_log_by_time ON audit_log (time_ms);"
  "CREATE INDEX audit_log_by_camera ON audit_log (camera_id);"
  "CREATE INDEX audit_log_by_person ON audit_log (person_id);"
  /* These stop changes made through SQL by mistake. Someone who edits the
   * file directly can drop them, and audit verify catches that. */
  "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN"
  "  SELECT RAISE(ABORT, 'audit records are append-only: UPDATE is not allowed');"
  "END;"
  "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN"
  "  SELECT RAISE(ABORT, 'audit records are append-only: DELETE is not allowed');"
  "END;",
};

#define SCHEMA_VERSION ((int) G_N_ELEMENTS (migrations))

static void store_sqlite_close (CimsStore *store);

static const CimsStoreBackend sqlite_backend = {
  .name = "sqlite",
  .close = store_sqlite_close,
  .grant_insert = cims_store_sqlite_grant_insert,
  .grant_revoke = cims_store_sqlite_grant_revoke,
  .grant_get = cims_store_sqlite_grant_get,
  .grant_list = cims_store_sqlite_grant_list,
  .incident_insert = cims_store_sqlite_incident_insert,
  .incident_end = cims_store_sqlite_incident_end,
  .incident_get = cims_store_sqlite_incident_get,
  .incident_list = cims_store_sqlite_incident_list,
  .archive_request_insert = cims_store_sqlite_archive_request_insert,
  .archive_request_get = cims_store_sqlite_archive_request_get,
  .archive_request_list = cims_store_sqlite_archive_request_list,
  .archive_request_update_state = cims_store_sqlite_archive_request_update_state,
  .audit_append = cims_store_sqlite_audit_append,
  .audit_query = cims_store_sqlite_audit_query,
  .audit_foreach = cims_store_sqlite_audit_foreach,
  .audit_verify = cims_store_sqlite_audit_verify,
};

/* ---- helpers shared by the record files ------------------------------------ */

void
cims_store_sqlite_set_error (CimsStoreSqlite *sq, GError **error, CimsStoreError code,
                             const char *format, ...)
{
  va_list args;
  g_autofree char *context = NULL;

  va_start (args, format);
  context = g_strdup_vprintf (format, args);
  va_end (args);

  g_set_error (error, CIMS_STORE_ERROR, code, "%s: %s", context, sqlite3_errmsg (sq->db));
}

CimsSqliteCachedStmt *
cims_store_sqlite_statement_get (CimsStoreSqlite *sq, const char *sql, CimsStoreError code,
                                 GError **error)
{
  sqlite3_stmt *stmt = g_hash_table_lookup (sq->statements, sql);

  if (stmt != NULL)
    return stmt;

  if (sqlite3_prepare_v3 (sq->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) != SQLITE_OK) {
    cims_store_sqlite_set_error (sq, error, code, "Cannot prepare statement \"%.60s\"", sql);
    return NULL;
  }

  g_hash_table_insert (sq->statements, (gpointer) sql, stmt);
  return stmt;
}

void
cims_store_sqlite_statement_release (CimsSqliteCachedStmt *stmt)
{
  sqlite3_reset (stmt);
  sqlite3_clear_bindings (stmt);
}

int
cims_store_sqlite_bind_text (sqlite3_stmt *stmt, int index, const char *text)
{
  if (text == NULL)
    return sqlite3_bind_null (stmt, index);

  return sqlite3_bind_text (stmt, index, text, -1, SQLITE_TRANSIENT);
}

char *
cims_store_sqlite_column_dup (sqlite3_stmt *stmt, int index)
{
  if (sqlite3_column_type (stmt, index) == SQLITE_NULL)
    return NULL;

  return g_strdup ((const char *) sqlite3_column_text (stmt, index));
}

char *
cims_store_sqlite_strv_to_json (char **strv)
{
  g_autoptr(JsonBuilder) builder = NULL;
  g_autoptr(JsonNode) root = NULL;

  if (strv == NULL)
    return NULL;

  builder = json_builder_new ();
  json_builder_begin_array (builder);
  for (char **item = strv; *item != NULL; item++)
    json_builder_add_string_value (builder, *item);
  json_builder_end_array (builder);

  root = json_builder_get_root (builder);
  return json_to_string (root, FALSE);
}

gboolean
cims_store_sqlite_strv_from_json (const char *json, char ***out, GError **error)
{
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(GStrvBuilder) items = NULL;
  g_autoptr(GError) parse_error = NULL;
  JsonArray *array;

  *out = NULL;
  if (json == NULL)
    return TRUE;

  root = json_from_string (json, &parse_error);
  if (root == NULL || !JSON_NODE_HOLDS_ARRAY (root)) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_READ,
                 "list %.60s is not a JSON array of strings%s%s", json,
                 parse_error != NULL ? ": " : "", parse_error != NULL ? parse_error->message : "");
    return FALSE;
  }

  array = json_node_get_array (root);
  items = g_strv_builder_new ();
  for (guint i = 0; i < json_array_get_length (array); i++) {
    const char *item = json_node_get_string (json_array_get_element (array, i));

    if (item == NULL) {
      g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_READ,
                   "list %.60s is not a JSON array of strings: item %u is not a string",
                   json, i);
      return FALSE;
    }
    g_strv_builder_add (items, item);
  }

  *out = g_strv_builder_end (items);
  return TRUE;
}

gboolean
cims_store_sqlite_exec (CimsStoreSqlite *sq, const char *sql, CimsStoreError code,
                        const char *operation, GError **error)
{
  if (sqlite3_exec (sq->db, sql, NULL, NULL, NULL) == SQLITE_OK)
    return TRUE;

  cims_store_sqlite_set_error (sq, error, code, "%s", operation);
  return FALSE;
}

static void
statement_finalize (gpointer stmt)
{
  sqlite3_finalize (stmt);
}

/* ---- opening --------------------------------------------------------------- */

/* Creates a plain-path database file with mode 0600 before SQLite opens it,
 * so the audit log is never readable by others, not even briefly. SQLite
 * gives the -wal and -shm files the database file's mode. URIs are left to
 * store_sqlite_restrict_new_file. Failures are left for SQLite to report. */
static void
store_sqlite_precreate (const char *path)
{
  int fd;

  if (g_str_has_prefix (path, "file:") || path[0] == '\0' || strcmp (path, ":memory:") == 0)
    return;

  fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0)
    close (fd);
}

static void
store_sqlite_restrict_new_file (CimsStoreSqlite *sq)
{
  const char *file = sqlite3_db_filename (sq->db, "main");

  if (file == NULL || file[0] == '\0')
    return;

  if (g_chmod (file, 0600) != 0)
    g_warning ("chmod(%s, 0600) failed: %s", file, g_strerror (errno));
}

static gboolean
store_sqlite_get_user_version (CimsStoreSqlite *sq, int *version, GError **error)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;

  if (sqlite3_prepare_v2 (sq->db, "PRAGMA user_version", -1, &stmt, NULL) != SQLITE_OK ||
      sqlite3_step (stmt) != SQLITE_ROW) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_OPEN,
                                 "Cannot open state store %s: reading its schema version failed",
                                 sq->path);
    return FALSE;
  }

  *version = sqlite3_column_int (stmt, 0);
  return TRUE;
}

/* Runs one migration step in its own transaction. The version is read again
 * inside it because another process may have migrated the file meanwhile. */
static gboolean
store_sqlite_migrate_step (CimsStoreSqlite *sq, int target, GError **error)
{
  g_autofree char *set_version = g_strdup_printf ("PRAGMA user_version = %d", target);
  int version = 0;

  if (!cims_store_sqlite_exec (sq, "BEGIN IMMEDIATE", CIMS_STORE_ERROR_OPEN,
                               "Cannot migrate state store: BEGIN failed", error))
    return FALSE;

  if (!store_sqlite_get_user_version (sq, &version, error))
    goto rollback;

  if (version >= target)
    return cims_store_sqlite_exec (sq, "COMMIT", CIMS_STORE_ERROR_OPEN,
                                   "Cannot migrate state store: COMMIT failed", error);

  if (sqlite3_exec (sq->db, migrations[target - 1], NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_exec (sq->db, set_version, NULL, NULL, NULL) != SQLITE_OK) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_OPEN,
                                 "Cannot migrate state store %s to schema version %d",
                                 sq->path, target);
    goto rollback;
  }

  return cims_store_sqlite_exec (sq, "COMMIT", CIMS_STORE_ERROR_OPEN,
                                 "Cannot migrate state store: COMMIT failed", error);

rollback:
  sqlite3_exec (sq->db, "ROLLBACK", NULL, NULL, NULL);
  return FALSE;
}

/* Brings the schema to SCHEMA_VERSION. A read-only file must already be
 * there, since nothing can be written to it. */
static gboolean
store_sqlite_migrate (CimsStoreSqlite *sq, gboolean is_read_only, gboolean *was_empty,
                      GError **error)
{
  int version = 0;

  if (!store_sqlite_get_user_version (sq, &version, error))
    return FALSE;

  *was_empty = version == 0;

  if (version > SCHEMA_VERSION) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_OPEN,
                 "Cannot open state store %s: its schema version %d is newer than the %d "
                 "this cimshub knows; run a newer cimshub", sq->path, version, SCHEMA_VERSION);
    return FALSE;
  }

  if (version < SCHEMA_VERSION && is_read_only) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_OPEN,
                 "Cannot open state store %s: it is read-only and its schema version %d is "
                 "older than %d; open it once with write access to migrate it",
                 sq->path, version, SCHEMA_VERSION);
    return FALSE;
  }

  for (int target = version + 1; target <= SCHEMA_VERSION; target++) {
    if (!store_sqlite_migrate_step (sq, target, error))
      return FALSE;
  }

  return TRUE;
}

/* Sets WAL, FULL sync, foreign keys and the busy timeout. A read-only
 * connection cannot switch to WAL, so it is not asked to. A writable file in
 * a folder that is not writable cannot switch either, and stays usable for
 * reading in its current journal mode. */
static gboolean
store_sqlite_configure (CimsStoreSqlite *sq, gboolean is_read_only, GError **error)
{
  sqlite3_extended_result_codes (sq->db, 1);
  sqlite3_busy_timeout (sq->db, SQLITE_BUSY_TIMEOUT_MS);

  if (!cims_store_sqlite_exec (sq, "PRAGMA foreign_keys = ON", CIMS_STORE_ERROR_OPEN,
                               "Cannot open state store: enabling foreign keys failed", error))
    return FALSE;

  if (!is_read_only &&
      sqlite3_exec (sq->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL) != SQLITE_OK)
    g_warning ("state store %s: PRAGMA journal_mode = WAL failed: %s; continuing with the "
               "file's current journal mode", sq->path, sqlite3_errmsg (sq->db));

  /* With WAL, FULL syncs the log at every commit, so a commit that returned
   * survives a power cut. */
  return cims_store_sqlite_exec (sq, "PRAGMA synchronous = FULL", CIMS_STORE_ERROR_OPEN,
                                 "Cannot open state store: PRAGMA synchronous = FULL failed",
                                 error);
}

/* Returns (transfer full) a store for @path with no connection yet. */
static CimsStore *
store_sqlite_new (const char *path)
{
  CimsStoreSqlite *sq = g_new0 (CimsStoreSqlite, 1);
  CimsStore *store = g_new0 (CimsStore, 1);

  g_mutex_init (&sq->lock);
  sq->path = g_strdup (path);
  sq->statements = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL,
                                          statement_finalize);
  store->backend = &sqlite_backend;
  store->data = sq;
  return store;
}

/* Opens the connection of @sq with @flags, to @name, or to its path when
 * @name is NULL. SQLITE_OPEN_URI makes "file:..." a URI, and other names
 * stay plain paths. */
static gboolean
store_sqlite_connect (CimsStoreSqlite *sq, const char *name, int flags, GError **error)
{
  int rc = sqlite3_open_v2 (name != NULL ? name : sq->path, &sq->db, flags | SQLITE_OPEN_URI, NULL);

  if (rc == SQLITE_OK)
    return TRUE;

  g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_OPEN,
               "Cannot open state store %s%s: %s", sq->path,
               (flags & SQLITE_OPEN_READONLY) ? " for reading" : "",
               sq->db != NULL ? sqlite3_errmsg (sq->db) : sqlite3_errstr (rc));
  return FALSE;
}

CimsStore *
cims_store_sqlite_open (const char *path, GError **error)
{
  g_autoptr(CimsStore) store = NULL;
  CimsStoreSqlite *sq;
  gboolean is_read_only;
  gboolean was_empty = FALSE;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  store = store_sqlite_new (path);
  sq = store->data;

  store_sqlite_precreate (path);

  /* SQLite opens a file it may not write read-only instead of failing. */
  if (!store_sqlite_connect (sq, NULL, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, error))
    return NULL;

  is_read_only = sqlite3_db_readonly (sq->db, "main") == 1;

  if (!store_sqlite_configure (sq, is_read_only, error))
    return NULL;

  if (!store_sqlite_migrate (sq, is_read_only, &was_empty, error))
    return NULL;

  if (was_empty)
    store_sqlite_restrict_new_file (sq);

  if (is_read_only)
    g_warning ("state store %s is open read-only: grants, incidents, archive requests and "
               "audit records cannot be written", path);

  return g_steal_pointer (&store);
}

/* Tells whether @path is a WAL-mode database by its header: bytes 18 and
 * 19, the file format versions, are 2 in WAL mode and 1 in rollback mode.
 * Closing this descriptor drops the process's POSIX locks on the file, so
 * a process with a connection to it must never call this. */
static gboolean
header_is_wal (const char *path)
{
  guint8 header[20];
  int fd = g_open (path, O_RDONLY | O_CLOEXEC, 0);
  gboolean is_wal;

  if (fd < 0)
    return FALSE;

  is_wal = read (fd, header, sizeof header) == (ssize_t) sizeof header && header[18] == 2 && header[19] == 2;
  close (fd);
  return is_wal;
}

/* Tells whether a hub holds the state lock in @path's folder, and so may
 * be writing the database. */
static gboolean
hub_holds_lock (const char *path)
{
  g_autofree char *folder = g_path_get_dirname (path);
  g_autofree char *lock_path = g_build_filename (folder, "cimshub.lock", NULL);
  int fd = g_open (lock_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
  gboolean is_held;

  if (fd < 0)
    return FALSE;

  is_held = flock (fd, LOCK_SH | LOCK_NB) != 0;
  close (fd);
  return is_held;
}

/* Returns (transfer full) the URI that opens @path as immutable when no
 * writer can be at work on it, else NULL. Immutable reads take no locks, so
 * every sign of a writer rules them out: a rollback-mode file (a writer
 * leaves no side file between transactions), a -journal, -shm or non-empty
 * -wal file, or a hub holding the state lock beside it. A backup that
 * sqlite3's .backup wrote shows none of them, and the immutable open then
 * needs no -shm file, so it works in a folder the reader cannot write and
 * leaves nothing behind. */
static char *
immutable_uri_new (const char *path)
{
  static const char *const side_files[] = { "-journal", "-shm", NULL };
  g_autofree char *wal_path = g_strconcat (path, "-wal", NULL);
  g_autofree char *absolute = NULL;
  g_autofree char *escaped = NULL;
  GStatBuf wal;

  if (!header_is_wal (path) || (g_stat (wal_path, &wal) == 0 && wal.st_size > 0) || hub_holds_lock (path))
    return NULL;

  for (guint i = 0; side_files[i] != NULL; i++) {
    g_autofree char *side_path = g_strconcat (path, side_files[i], NULL);

    if (g_file_test (side_path, G_FILE_TEST_EXISTS))
      return NULL;
  }

  absolute = g_canonicalize_filename (path, NULL);
  escaped = g_uri_escape_string (absolute, "/", FALSE);
  return g_strconcat ("file:", escaped, "?immutable=1", NULL);
}

/* Opens @path read-only and reads its schema version into *@version. It
 * writes nothing to the file: no schema, no migration, no journal-mode change.
 * @may_be_immutable lets it open the file as immutable when no writer can
 * be at work, which only a process without other connections may ask.
 * NOTE: a WAL-mode file with a non-empty -wal file is read through it and a
 * -shm file, which SQLite creates beside the file when missing and leaves
 * behind; where it cannot create it, the open fails with "attempt to write
 * a readonly database".
 * Returns: (transfer full) the store, or NULL with CIMS_STORE_ERROR_OPEN. */
static CimsStore *
store_sqlite_open_read_only (const char *path, gboolean may_be_immutable, int *version, GError **error)
{
  g_autoptr(CimsStore) store = store_sqlite_new (path);
  CimsStoreSqlite *sq = store->data;
  g_autofree char *immutable_uri = may_be_immutable ? immutable_uri_new (path) : NULL;

  /* Without SQLITE_OPEN_CREATE a missing file is an error, never a new
   * empty store. */
  if (!store_sqlite_connect (sq, immutable_uri, SQLITE_OPEN_READONLY, error))
    return NULL;

  sqlite3_extended_result_codes (sq->db, 1);
  sqlite3_busy_timeout (sq->db, SQLITE_BUSY_TIMEOUT_MS);

  if (!store_sqlite_get_user_version (sq, version, error))
    return NULL;

  return g_steal_pointer (&store);
}

CimsStore *
cims_store_sqlite_open_reader (const char *path, GError **error)
{
  g_autoptr(CimsStore) store = NULL;
  int version = 0;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  store = store_sqlite_open_read_only (path, FALSE, &version, error);
  if (store == NULL)
    return NULL;

  if (version != SCHEMA_VERSION) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_OPEN,
                 "Cannot read state store %s: its schema version is %d, expected %d; start the "
                 "hub once with write access so that it migrates the store", path, version,
                 SCHEMA_VERSION);
    return NULL;
  }

  return g_steal_pointer (&store);
}

static gboolean
store_sqlite_has_table (CimsStoreSqlite *sq, const char *table, gboolean *has_table,
                        GError **error)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  int rc = SQLITE_ERROR;

  if (sqlite3_prepare_v2 (sq->db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                          -1, &stmt, NULL) == SQLITE_OK &&
      sqlite3_bind_text (stmt, 1, table, -1, SQLITE_STATIC) == SQLITE_OK)
    rc = sqlite3_step (stmt);

  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    cims_store_sqlite_set_error (sq, error, CIMS_STORE_ERROR_OPEN,
                                 "Cannot open state store %s: reading its list of tables failed",
                                 sq->path);
    return FALSE;
  }

  *has_table = rc == SQLITE_ROW;
  return TRUE;
}

/* Unlike open_reader, this accepts an older schema version, because verify
 * checks the chain of whatever records are there and the version number is
 * not part of the evidence. */
CimsStore *
cims_store_sqlite_open_audit_reader (const char *path, GError **error)
{
  g_autoptr(CimsStore) store = NULL;
  gboolean has_audit_log = FALSE;
  int version = 0;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  store = store_sqlite_open_read_only (path, TRUE, &version, error);
  if (store == NULL)
    return NULL;

  /* A newer schema may hash records in a form this cimshub does not know, and
   * every record would then look changed. */
  if (version > SCHEMA_VERSION) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_OPEN,
                 "Cannot check state store %s: its schema version %d is newer than the %d "
                 "this cimshub knows; check it with a newer cimshubctl", path, version,
                 SCHEMA_VERSION);
    return NULL;
  }

  if (!store_sqlite_has_table (store->data, "audit_log", &has_audit_log, error))
    return NULL;

  if (!has_audit_log) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_CHAIN_BROKEN,
                 "the audit_log table is missing from %s, so the log was dropped or the file "
                 "is not a cimshub state database (schema version %d)", path, version);
    return NULL;
  }

  return g_steal_pointer (&store);
}

static void
store_sqlite_close (CimsStore *store)
{
  CimsStoreSqlite *sq = store->data;

  if (sq == NULL)
    return;

  /* Statements must be finalized before the connection can close. */
  g_clear_pointer (&sq->statements, g_hash_table_destroy);

  if (sq->db != NULL && sqlite3_close (sq->db) != SQLITE_OK)
    g_critical ("state store %s: sqlite3_close() failed: %s", sq->path, sqlite3_errmsg (sq->db));

  g_mutex_clear (&sq->lock);
  g_free (sq->path);
  g_free (sq);
  store->data = NULL;
}
