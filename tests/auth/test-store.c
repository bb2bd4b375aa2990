/* SPDX-License-Identifier: Apache-2.0 */
/* The SQLite state store on a temporary database: grants, incidents,
 * archive requests, and the audit log's chain under tampering done through
 * the sqlite3 API directly, as someone with access to the file would. */

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "auth/store.h"

#define NOW_S G_GINT64_CONSTANT (1796378400)    /* 2026-12-04T10:00:00Z */
#define NOW_US (NOW_S * G_USEC_PER_SEC)
#define SECOND_US G_USEC_PER_SEC
#define HOUR_US (G_GINT64_CONSTANT (3600) * G_USEC_PER_SEC)
#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

typedef struct {
  char *dir;
  char *path;
  CimsStore *store;
} StoreFixture;

static void
store_fixture_set_up (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  fixture->dir = g_dir_make_tmp ("cims-store-XXXXXX", &error);
  g_assert_no_error (error);
  fixture->path = g_build_filename (fixture->dir, "state.db", NULL);
  fixture->store = cims_store_sqlite_open (fixture->path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (fixture->store);
}

static void
store_fixture_tear_down (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(GDir) dir = NULL;
  const char *name;

  g_clear_pointer (&fixture->store, cims_store_free);

  dir = g_dir_open (fixture->dir, 0, NULL);
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
    g_autofree char *file = g_build_filename (fixture->dir, name, NULL);
    g_unlink (file);
  }
  g_rmdir (fixture->dir);
  g_free (fixture->dir);
  g_free (fixture->path);
}

/* Closes and opens the fixture's store again, e.g. after the file was
 * changed behind its back. */
static void
store_fixture_reopen (StoreFixture *fixture)
{
  g_autoptr(GError) error = NULL;

  g_clear_pointer (&fixture->store, cims_store_free);
  fixture->store = cims_store_sqlite_open (fixture->path, &error);
  g_assert_no_error (error);
}

/* Runs @sql on the database file with the plain sqlite3 API, bypassing the
 * store. Returns SQLite's result code and sets *message to its error text. */
static int
sqlite_file_exec (const char *path, const char *sql, char **message)
{
  sqlite3 *db = NULL;
  char *detail = NULL;
  int rc;

  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  rc = sqlite3_exec (db, sql, NULL, NULL, &detail);
  if (message != NULL)
    *message = g_strdup (detail);
  sqlite3_free (detail);
  sqlite3_close (db);

  return rc;
}

static void
sqlite_file_exec_ok (const char *path, const char *sql)
{
  g_autofree char *message = NULL;

  if (sqlite_file_exec (path, sql, &message) != SQLITE_OK)
    g_error ("%s failed: %s", sql, message);
}

/* Returns the first column of the first row of @sql as text.
 * Returns: (transfer full) */
static char *
sqlite_file_query_text (const char *path, const char *sql)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *stmt = NULL;
  char *text = NULL;

  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
  if (sqlite3_step (stmt) == SQLITE_ROW)
    text = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
  sqlite3_finalize (stmt);
  sqlite3_close (db);

  return text;
}

/* ---- records used by the tests ------------------------------------------------ */

static CimsGrant *
grant_new (const char *grantee, const char *const *cameras)
{
  CimsGrant *grant = g_new0 (CimsGrant, 1);

  grant->owner = g_strdup ("chelsea");
  grant->grantee_kind = CIMS_GRANTEE_AGENCY;
  grant->grantee = g_strdup (grantee);
  grant->grantee_group = g_strdup ("investigations");
  grant->cameras = g_strdupv ((char **) cameras);
  grant->starts_at_us = NOW_US;
  grant->ends_at_us = NOW_US + HOUR_US;
  grant->purpose = g_strdup ("Parade route monitoring");
  grant->incident_number = g_strdup ("CH-2026-0412");
  grant->authorized_by = g_strdup ("u-chief-7");
  grant->authorized_by_name = g_strdup ("Chief Ana Ortiz");
  grant->authorized_at_us = NOW_US - SECOND_US;

  return grant;
}

static CimsIncident *
incident_new (void)
{
  static const char *const cameras[] = { "che-0001", "che-0002", NULL };
  CimsIncident *incident = g_new0 (CimsIncident, 1);

  incident->owner = g_strdup ("chelsea");
  incident->incident_number = g_strdup ("CH-2026-0999");
  incident->cameras = g_strdupv ((char **) cameras);
  incident->partners = NULL;
  incident->starts_at_us = NOW_US;
  incident->ends_at_us = NOW_US + 12 * HOUR_US;
  incident->description = g_strdup ("Chemical spill on Marginal St");
  incident->declared_by = g_strdup ("u-cmdr-2");
  incident->declared_by_name = g_strdup ("Cmdr Lee Park");

  return incident;
}

static CimsAuditRecord *
audit_record_new (guint index)
{
  CimsAuditRecord *record = g_new0 (CimsAuditRecord, 1);

  record->time_ms = NOW_S * 1000 + index;
  record->event = g_strdup (index % 2 == 0 ? "session-start" : "session-stop");
  record->person_id = g_strdup_printf ("u-%u", 1000 + index % 3);
  record->person_name = g_strdup ("Pat Doe");
  record->person_jurisdiction = g_strdup (index % 5 == 0 ? "state-police" : "revere");
  record->camera_id = g_strdup_printf ("che-%04u", index % 4);
  record->camera_owner = g_strdup ("chelsea");
  record->camera_location = g_strdup ("Broadway at City Hall Ave");
  record->session_id = g_strdup_printf ("s-%u", index / 2);
  record->incident_number = index % 7 == 0 ? g_strdup ("CH-2026-0412") : NULL;
  record->viewer_address = g_strdup ("127.0.0.1");
  record->client_version = g_strdup ("cims-viewer/2.1");
  record->reason = index % 2 == 0 ? g_strdup ("grant") : g_strdup ("viewer-left");
  record->details = g_strdup ("{\"note\":\"caf\xc3\xa9\"}");
  record->bytes_sent = index % 2 == 0 ? 0 : 1000 * index;
  record->duration_ms = index % 2 == 0 ? 0 : 10 * index;

  return record;
}

static void
audit_append_n (CimsStore *store, guint first_index, guint n)
{
  for (guint i = first_index; i < first_index + n; i++) {
    g_autoptr(CimsAuditRecord) record = audit_record_new (i);
    g_autoptr(GError) error = NULL;

    g_assert_true (cims_store_audit_append (store, record, &error));
    g_assert_no_error (error);
  }
}

/* ---- an independent hash of the documented canonical form --------------------- */

static void
netstring_append (GString *out, const char *value)
{
  if (value == NULL)
    g_string_append (out, "~,");
  else
    g_string_append_printf (out, "%zu:%s,", strlen (value), value);
}

static void
netstring_append_int (GString *out, gint64 value)
{
  g_autofree char *text = g_strdup_printf ("%" G_GINT64_FORMAT, value);

  netstring_append (out, text);
}

/* Hashes @record the way the store documents it, written separately from
 * the store's code so that a change to the form shows up here. */
static char *
expected_hash (const CimsAuditRecord *record)
{
  g_autoptr(GString) form = g_string_new (NULL);
  guint8 digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  GString *hex = g_string_new (NULL);

  netstring_append (form, "cims-audit-v1");
  netstring_append_int (form, (gint64) record->sequence);
  netstring_append_int (form, record->time_ms);
  netstring_append (form, record->event);
  netstring_append (form, record->person_id);
  netstring_append (form, record->person_name);
  netstring_append (form, record->person_jurisdiction);
  netstring_append (form, record->camera_id);
  netstring_append (form, record->camera_owner);
  netstring_append (form, record->camera_location);
  netstring_append (form, record->session_id);
  netstring_append (form, record->grant_id);
  netstring_append (form, record->incident_id);
  netstring_append (form, record->incident_number);
  netstring_append (form, record->viewer_address);
  netstring_append (form, record->client_version);
  netstring_append (form, record->reason);
  netstring_append (form, record->details);
  netstring_append_int (form, record->bytes_sent);
  netstring_append_int (form, record->duration_ms);
  netstring_append (form, record->previous_hash);

  g_assert_cmpint (EVP_Digest (form->str, form->len, digest, &len, EVP_sha256 (), NULL), ==, 1);
  for (unsigned int i = 0; i < len; i++)
    g_string_append_printf (hex, "%02x", digest[i]);

  return g_string_free (hex, FALSE);
}

/* ---- open ------------------------------------------------------------------ */

static void
test_store_open_creates_private_wal_file (StoreFixture *fixture, gconstpointer data)
{
  g_autofree char *journal_mode = NULL;
  g_autofree char *user_version = NULL;
  GStatBuf info;

  g_assert_cmpint (g_stat (fixture->path, &info), ==, 0);
  g_assert_cmpint (info.st_mode & 0777, ==, 0600);

  journal_mode = sqlite_file_query_text (fixture->path, "PRAGMA journal_mode");
  g_assert_cmpstr (journal_mode, ==, "wal");
  user_version = sqlite_file_query_text (fixture->path, "PRAGMA user_version");
  g_assert_cmpstr (user_version, ==, "1");
}

static void
test_store_open_accepts_uri (StoreFixture *fixture, gconstpointer data)
{
  g_autofree char *uri = g_strdup_printf ("file:%s", fixture->path);
  g_autoptr(GError) error = NULL;
  g_autoptr(CimsStore) store = cims_store_sqlite_open (uri, &error);

  g_assert_no_error (error);
  audit_append_n (store, 0, 2);
  g_clear_pointer (&store, cims_store_free);

  audit_append_n (fixture->store, 2, 1);
  g_assert_true (cims_store_audit_verify (fixture->store, NULL, &error));
  g_assert_no_error (error);
}

static void
test_store_open_rejects_newer_schema (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(CimsStore) store = NULL;

  g_clear_pointer (&fixture->store, cims_store_free);
  sqlite_file_exec_ok (fixture->path, "PRAGMA user_version = 99");

  store = cims_store_sqlite_open (fixture->path, &error);
  g_assert_null (store);
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_OPEN);
  g_assert_nonnull (strstr (error->message, "99"));
  g_assert_nonnull (strstr (error->message, fixture->path));
}

static void
test_store_open_reports_missing_directory (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(CimsStore) store = cims_store_sqlite_open ("/nonexistent-cims-dir/state.db", &error);

  g_assert_null (store);
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_OPEN);
  g_assert_nonnull (strstr (error->message, "/nonexistent-cims-dir/state.db"));
}

/* ---- grants ---------------------------------------------------------------- */

static void
assert_grants_equal (const CimsGrant *a, const CimsGrant *b)
{
  g_assert_cmpstr (a->id, ==, b->id);
  g_assert_cmpstr (a->owner, ==, b->owner);
  g_assert_cmpint (a->grantee_kind, ==, b->grantee_kind);
  g_assert_cmpstr (a->grantee, ==, b->grantee);
  g_assert_cmpstr (a->grantee_group, ==, b->grantee_group);
  if (a->cameras == NULL)
    g_assert_null (b->cameras);
  else
    g_assert_true (g_strv_equal ((const char *const *) a->cameras,
                                 (const char *const *) b->cameras));
  g_assert_cmpint (a->starts_at_us, ==, b->starts_at_us);
  g_assert_cmpint (a->ends_at_us, ==, b->ends_at_us);
  g_assert_cmpstr (a->purpose, ==, b->purpose);
  g_assert_cmpstr (a->incident_number, ==, b->incident_number);
  g_assert_cmpstr (a->authorized_by, ==, b->authorized_by);
  g_assert_cmpstr (a->authorized_by_name, ==, b->authorized_by_name);
  g_assert_cmpint (a->authorized_at_us, ==, b->authorized_at_us);
  g_assert_cmpstr (a->revoked_by, ==, b->revoked_by);
  g_assert_cmpint (a->revoked_at_us, ==, b->revoked_at_us);
}

static void
test_store_grant_insert_and_get (StoreFixture *fixture, gconstpointer data)
{
  static const char *const cameras[] = { "che-0001", "che-0007", NULL };
  g_autoptr(CimsGrant) grant = grant_new ("state-police", cameras);
  g_autoptr(CimsGrant) all_cameras = grant_new ("revere", NULL);
  g_autoptr(CimsGrant) read = NULL;
  g_autoptr(GError) error = NULL;

  all_cameras->grantee_kind = CIMS_GRANTEE_JURISDICTION;
  all_cameras->ends_at_us = G_MAXINT64;
  g_clear_pointer (&all_cameras->incident_number, g_free);

  g_assert_true (cims_store_grant_insert (fixture->store, grant, &error));
  g_assert_no_error (error);
  g_assert_true (g_regex_match_simple ("^g-[0-9a-f]{16}$", grant->id, 0, 0));
  g_assert_true (cims_store_grant_insert (fixture->store, all_cameras, &error));
  g_assert_cmpstr (grant->id, !=, all_cameras->id);

  read = cims_store_grant_get (fixture->store, grant->id, &error);
  g_assert_no_error (error);
  assert_grants_equal (grant, read);
  g_clear_pointer (&read, cims_grant_free);

  read = cims_store_grant_get (fixture->store, all_cameras->id, &error);
  g_assert_no_error (error);
  assert_grants_equal (all_cameras, read);
}

static void
test_store_grant_get_unknown (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(CimsGrant) grant = cims_store_grant_get (fixture->store, "g-0000000000000000", &error);

  g_assert_null (grant);
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "g-0000000000000000"));
}

static void
test_store_grant_list_newest_first (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(GPtrArray) grants = NULL;
  g_autoptr(GError) error = NULL;
  const char *grantees[] = { "revere", "state-police", "winthrop" };

  for (guint i = 0; i < G_N_ELEMENTS (grantees); i++) {
    g_autoptr(CimsGrant) grant = grant_new (grantees[i], NULL);

    grant->authorized_at_us = NOW_US + i * SECOND_US;
    g_assert_true (cims_store_grant_insert (fixture->store, grant, &error));
  }

  grants = cims_store_grant_list (fixture->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (grants->len, ==, 3);
  g_assert_cmpstr (((CimsGrant *) grants->pdata[0])->grantee, ==, "winthrop");
  g_assert_cmpstr (((CimsGrant *) grants->pdata[1])->grantee, ==, "state-police");
  g_assert_cmpstr (((CimsGrant *) grants->pdata[2])->grantee, ==, "revere");
}

static void
test_store_grant_revoke (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(CimsGrant) grant = grant_new ("state-police", NULL);
  g_autoptr(CimsGrant) read = NULL;
  g_autoptr(GPtrArray) grants = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (cims_store_grant_insert (fixture->store, grant, &error));
  g_assert_true (cims_store_grant_revoke (fixture->store, grant->id, "u-chief-7",
                                          NOW_US + 10 * SECOND_US, &error));
  g_assert_no_error (error);

  read = cims_store_grant_get (fixture->store, grant->id, &error);
  g_assert_cmpstr (read->revoked_by, ==, "u-chief-7");
  g_assert_cmpint (read->revoked_at_us, ==, NOW_US + 10 * SECOND_US);

  /* Revoked grants stay listed. */
  grants = cims_store_grant_list (fixture->store, &error);
  g_assert_cmpuint (grants->len, ==, 1);
}

static void
test_store_grant_revoke_twice (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(CimsGrant) grant = grant_new ("state-police", NULL);
  g_autoptr(CimsGrant) read = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *expected = NULL;

  g_assert_true (cims_store_grant_insert (fixture->store, grant, &error));
  g_assert_true (cims_store_grant_revoke (fixture->store, grant->id, "u-chief-7", NOW_US, &error));

  g_assert_false (cims_store_grant_revoke (fixture->store, grant->id, "u-chief-8",
                                           NOW_US + SECOND_US, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_CONFLICT);
  expected = g_strdup_printf ("Cannot revoke grant %s: it was already revoked at "
                              "2026-12-04T10:00:00.000Z", grant->id);
  g_assert_true (g_str_has_prefix (error->message, expected));

  /* The first revocation is kept. */
  read = cims_store_grant_get (fixture->store, grant->id, NULL);
  g_assert_cmpstr (read->revoked_by, ==, "u-chief-7");
  g_assert_cmpint (read->revoked_at_us, ==, NOW_US);
}

static void
test_store_grant_revoke_unknown (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  g_assert_false (cims_store_grant_revoke (fixture->store, "g-1234", "u-chief-7", NOW_US, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "Cannot revoke grant g-1234: no grant has that id");
}

static void
test_store_grant_rejects_invalid (StoreFixture *fixture, gconstpointer data)
{
  static const char *const no_cameras[] = { NULL };
  g_autoptr(CimsGrant) backwards = grant_new ("revere", NULL);
  g_autoptr(CimsGrant) empty_list = grant_new ("revere", no_cameras);
  g_autoptr(CimsGrant) no_owner = grant_new ("revere", NULL);
  g_autoptr(GPtrArray) grants = NULL;
  g_autoptr(GError) error = NULL;

  backwards->ends_at_us = backwards->starts_at_us;
  g_assert_false (cims_store_grant_insert (fixture->store, backwards, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_INVALID);
  g_clear_error (&error);

  g_assert_false (cims_store_grant_insert (fixture->store, empty_list, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "cameras"));
  g_clear_error (&error);

  g_clear_pointer (&no_owner->owner, g_free);
  g_assert_false (cims_store_grant_insert (fixture->store, no_owner, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "owner"));
  g_clear_error (&error);

  grants = cims_store_grant_list (fixture->store, &error);
  g_assert_cmpuint (grants->len, ==, 0);
}

static void
test_store_grant_active_window (void)
{
  g_autoptr(CimsGrant) grant = grant_new ("revere", NULL);
  gint64 start = grant->starts_at_us;
  gint64 end = grant->ends_at_us;

  g_assert_false (cims_grant_is_active (grant, start - SECOND_US));
  g_assert_true (cims_grant_is_active (grant, start));
  g_assert_true (cims_grant_is_active (grant, start + SECOND_US));

  g_assert_true (cims_grant_is_active (grant, end - SECOND_US));
  g_assert_false (cims_grant_is_active (grant, end));
  g_assert_false (cims_grant_is_active (grant, end + SECOND_US));

  grant->ends_at_us = G_MAXINT64;
  g_assert_true (cims_grant_is_active (grant, end + 1000 * HOUR_US));
}

static void
test_store_grant_active_until_revoked (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(CimsGrant) grant = grant_new ("revere", NULL);
  g_autoptr(CimsGrant) read = NULL;
  gint64 revoked_at = NOW_US + 30 * SECOND_US;

  g_assert_true (cims_store_grant_insert (fixture->store, grant, NULL));
  g_assert_true (cims_store_grant_revoke (fixture->store, grant->id, "u-chief-7", revoked_at,
                                          NULL));
  read = cims_store_grant_get (fixture->store, grant->id, NULL);

  g_assert_true (cims_grant_is_active (read, revoked_at - SECOND_US));
  g_assert_false (cims_grant_is_active (read, revoked_at));
  g_assert_false (cims_grant_is_active (read, revoked_at + SECOND_US));
}

static void
test_store_grant_covers_camera (void)
{
  static const char *const cameras[] = { "che-0001", "che-0007", NULL };
  g_autoptr(CimsGrant) listed = grant_new ("revere", cameras);
  g_autoptr(CimsGrant) all = grant_new ("revere", NULL);
  g_autoptr(CimsGrant) copy = cims_grant_copy (listed);

  g_assert_true (cims_grant_covers_camera (listed, "che-0007"));
  g_assert_false (cims_grant_covers_camera (listed, "che-0002"));
  g_assert_true (cims_grant_covers_camera (all, "che-0002"));

  g_assert_true (copy->cameras != listed->cameras);
  g_assert_true (cims_grant_covers_camera (copy, "che-0001"));
  g_assert_false (cims_grant_covers_camera (copy, "che-0002"));
}

/* ---- incidents ------------------------------------------------------------- */

static void
test_store_incident_insert_and_get (StoreFixture *fixture, gconstpointer data)
{
  static const char *const partners[] = { "revere", "state-police", NULL };
  g_autoptr(CimsIncident) incident = incident_new ();
  g_autoptr(CimsIncident) read = NULL;
  g_autoptr(GPtrArray) incidents = NULL;
  g_autoptr(GError) error = NULL;

  incident->partners = g_strdupv ((char **) partners);
  g_assert_true (cims_store_incident_insert (fixture->store, incident, &error));
  g_assert_no_error (error);
  g_assert_true (g_regex_match_simple ("^i-[0-9a-f]{16}$", incident->id, 0, 0));

  read = cims_store_incident_get (fixture->store, incident->id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (read->owner, ==, "chelsea");
  g_assert_cmpstr (read->incident_number, ==, "CH-2026-0999");
  g_assert_true (g_strv_equal ((const char *const *) read->cameras,
                               (const char *const *) incident->cameras));
  g_assert_true (g_strv_equal ((const char *const *) read->partners, partners));
  g_assert_cmpint (read->starts_at_us, ==, incident->starts_at_us);
  g_assert_cmpint (read->ends_at_us, ==, incident->ends_at_us);
  g_assert_cmpstr (read->description, ==, incident->description);
  g_assert_cmpstr (read->declared_by, ==, "u-cmdr-2");
  g_assert_cmpstr (read->declared_by_name, ==, "Cmdr Lee Park");
  g_assert_null (read->ended_by);
  g_assert_cmpint (read->ended_at_us, ==, 0);

  incidents = cims_store_incident_list (fixture->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (incidents->len, ==, 1);
  g_assert_null (((CimsIncident *) incidents->pdata[0])->ended_by);
}

static void
test_store_incident_end (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(CimsIncident) incident = incident_new ();
  g_autoptr(CimsIncident) read = NULL;
  g_autoptr(GError) error = NULL;
  gint64 ended_at = NOW_US + HOUR_US;

  g_assert_true (cims_store_incident_insert (fixture->store, incident, &error));
  g_assert_true (cims_store_incident_end (fixture->store, incident->id, "u-cmdr-2", ended_at,
                                          &error));
  g_assert_no_error (error);

  read = cims_store_incident_get (fixture->store, incident->id, &error);
  g_assert_cmpstr (read->ended_by, ==, "u-cmdr-2");
  g_assert_cmpint (read->ended_at_us, ==, ended_at);

  g_assert_false (cims_store_incident_end (fixture->store, incident->id, "u-cmdr-3",
                                           ended_at + SECOND_US, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_CONFLICT);
  g_assert_nonnull (strstr (error->message, incident->id));
  g_assert_nonnull (strstr (error->message, "2026-12-04T11:00:00.000Z"));
  g_clear_error (&error);

  g_assert_false (cims_store_incident_end (fixture->store, "i-ffffffffffffffff", "u-cmdr-2",
                                           ended_at, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "i-ffffffffffffffff"));
}

static void
test_store_incident_active_window (void)
{
  g_autoptr(CimsIncident) incident = incident_new ();
  gint64 start = incident->starts_at_us;
  gint64 end = incident->ends_at_us;
  gint64 ended = start + HOUR_US;

  g_assert_false (cims_incident_is_active (incident, start - SECOND_US));
  g_assert_true (cims_incident_is_active (incident, start));
  g_assert_true (cims_incident_is_active (incident, start + SECOND_US));

  g_assert_true (cims_incident_is_active (incident, end - SECOND_US));
  g_assert_false (cims_incident_is_active (incident, end));
  g_assert_false (cims_incident_is_active (incident, end + SECOND_US));

  /* Ended early: the earlier of ends_at and ended_at closes the window. */
  incident->ended_at_us = ended;
  g_assert_true (cims_incident_is_active (incident, ended - SECOND_US));
  g_assert_false (cims_incident_is_active (incident, ended));
  g_assert_false (cims_incident_is_active (incident, ended + SECOND_US));

  g_assert_true (cims_incident_covers_camera (incident, "che-0002"));
  g_assert_false (cims_incident_covers_camera (incident, "che-0003"));
  g_clear_pointer (&incident->cameras, g_strfreev);
  g_assert_true (cims_incident_covers_camera (incident, "che-0003"));
}

/* ---- audit log ------------------------------------------------------------- */

static GPtrArray *
audit_query_all (CimsStore *store)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *records = cims_store_audit_query (store, NULL, &error);

  g_assert_no_error (error);
  return records;
}

static void
test_store_audit_append_hundred (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(GPtrArray) records = NULL;
  g_autoptr(GError) error = NULL;
  guint64 first_bad = 99;

  audit_append_n (fixture->store, 0, 100);
  records = audit_query_all (fixture->store);
  g_assert_cmpuint (records->len, ==, 100);

  for (guint i = 0; i < records->len; i++) {
    CimsAuditRecord *record = records->pdata[i];
    g_autofree char *hash = expected_hash (record);
    const char *previous = i == 0 ? ZERO_HASH : ((CimsAuditRecord *) records->pdata[i - 1])->hash;

    g_assert_cmpuint (record->sequence, ==, i + 1);
    g_assert_cmpstr (record->previous_hash, ==, previous);
    g_assert_cmpstr (record->hash, ==, hash);
  }

  g_assert_true (cims_store_audit_verify (fixture->store, &first_bad, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (first_bad, ==, 0);
}

static void
test_store_audit_append_fills_chain_fields (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(CimsAuditRecord) first = audit_record_new (0);
  g_autoptr(CimsAuditRecord) second = audit_record_new (1);
  g_autoptr(GPtrArray) records = NULL;
  CimsAuditRecord *stored;

  g_assert_true (cims_store_audit_append (fixture->store, first, NULL));
  g_assert_cmpuint (first->sequence, ==, 1);
  g_assert_cmpstr (first->previous_hash, ==, ZERO_HASH);
  g_assert_cmpuint (strlen (first->hash), ==, 64);

  g_assert_true (cims_store_audit_append (fixture->store, second, NULL));
  g_assert_cmpuint (second->sequence, ==, 2);
  g_assert_cmpstr (second->previous_hash, ==, first->hash);

  /* Every field comes back as written. */
  records = audit_query_all (fixture->store);
  stored = records->pdata[1];
  g_assert_cmpint (stored->time_ms, ==, second->time_ms);
  g_assert_cmpstr (stored->event, ==, second->event);
  g_assert_cmpstr (stored->person_id, ==, second->person_id);
  g_assert_cmpstr (stored->person_name, ==, second->person_name);
  g_assert_cmpstr (stored->person_jurisdiction, ==, second->person_jurisdiction);
  g_assert_cmpstr (stored->camera_id, ==, second->camera_id);
  g_assert_cmpstr (stored->camera_owner, ==, second->camera_owner);
  g_assert_cmpstr (stored->camera_location, ==, second->camera_location);
  g_assert_cmpstr (stored->session_id, ==, second->session_id);
  g_assert_null (stored->grant_id);
  g_assert_null (stored->incident_id);
  g_assert_cmpstr (stored->incident_number, ==, second->incident_number);
  g_assert_cmpstr (stored->viewer_address, ==, second->viewer_address);
  g_assert_cmpstr (stored->client_version, ==, second->client_version);
  g_assert_cmpstr (stored->reason, ==, second->reason);
  g_assert_cmpstr (stored->details, ==, second->details);
  g_assert_cmpint (stored->bytes_sent, ==, 1000);
  g_assert_cmpint (stored->duration_ms, ==, 10);
  g_assert_cmpstr (stored->hash, ==, second->hash);
}

static void
test_store_audit_empty_log_verifies (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  guint64 first_bad = 99;

  g_assert_true (cims_store_audit_verify (fixture->store, &first_bad, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (first_bad, ==, 0);
}

/* Appends 100 records, runs @attack on the file with the triggers dropped,
 * and checks that verify fails at @expected_sequence with @expected_text. */
static void
audit_assert_tamper_detected (StoreFixture *fixture, const char *attack,
                              guint64 expected_sequence, const char *expected_text)
{
  g_autofree char *sql = NULL;
  g_autoptr(GError) error = NULL;
  guint64 first_bad = 0;

  audit_append_n (fixture->store, 0, 100);
  g_clear_pointer (&fixture->store, cims_store_free);

  sql = g_strconcat ("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; ",
                     attack, NULL);
  sqlite_file_exec_ok (fixture->path, sql);
  store_fixture_reopen (fixture);

  g_assert_false (cims_store_audit_verify (fixture->store, &first_bad, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_CHAIN_BROKEN);
  g_test_message ("%s", error->message);
  g_assert_cmpuint (first_bad, ==, expected_sequence);
  g_assert_nonnull (strstr (error->message, expected_text));
}

static void
test_store_audit_detects_changed_record (StoreFixture *fixture, gconstpointer data)
{
  audit_assert_tamper_detected (fixture,
                                "UPDATE audit_log SET person_name = 'Someone Else' "
                                "WHERE sequence = 40",
                                40, "record 40 was changed: its hash does not match its content");
}

static void
test_store_audit_detects_changed_number (StoreFixture *fixture, gconstpointer data)
{
  audit_assert_tamper_detected (fixture,
                                "UPDATE audit_log SET bytes_sent = 0 WHERE sequence = 40",
                                40, "record 40 was changed");
}

static void
test_store_audit_detects_removed_record (StoreFixture *fixture, gconstpointer data)
{
  audit_assert_tamper_detected (fixture, "DELETE FROM audit_log WHERE sequence = 55",
                                55, "record 55 is missing");
}

static void
test_store_audit_detects_removed_first_record (StoreFixture *fixture, gconstpointer data)
{
  audit_assert_tamper_detected (fixture, "DELETE FROM audit_log WHERE sequence = 1",
                                1, "record 1 is missing");
}

static void
test_store_audit_detects_swapped_records (StoreFixture *fixture, gconstpointer data)
{
  audit_assert_tamper_detected (fixture,
                                "UPDATE audit_log SET sequence = -60 WHERE sequence = 60; "
                                "UPDATE audit_log SET sequence = 60 WHERE sequence = 61; "
                                "UPDATE audit_log SET sequence = 61 WHERE sequence = -60",
                                60, "record 60 does not follow record 59");
}

/* An attacker who also recomputes the changed record's hash breaks the link
 * to the next record instead. */
static void
test_store_audit_detects_rehashed_record (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(GPtrArray) records = NULL;
  g_autofree char *new_hash = NULL;
  g_autofree char *attack = NULL;
  CimsAuditRecord *record;

  audit_append_n (fixture->store, 0, 50);
  records = audit_query_all (fixture->store);
  record = records->pdata[39];
  g_free (record->person_name);
  record->person_name = g_strdup ("Someone Else");
  new_hash = expected_hash (record);

  attack = g_strdup_printf ("UPDATE audit_log SET person_name = 'Someone Else', hash = '%s' "
                            "WHERE sequence = 40", new_hash);
  sqlite_file_exec_ok (fixture->path, "DROP TRIGGER audit_log_no_update");
  sqlite_file_exec_ok (fixture->path, attack);

  {
    g_autoptr(GError) error = NULL;
    guint64 first_bad = 0;

    g_assert_false (cims_store_audit_verify (fixture->store, &first_bad, &error));
    g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_CHAIN_BROKEN);
    g_assert_cmpuint (first_bad, ==, 41);
    g_assert_nonnull (strstr (error->message, "record 41 does not follow record 40"));
  }
}

static void
test_store_audit_triggers_reject_changes (StoreFixture *fixture, gconstpointer data)
{
  g_autofree char *update_message = NULL;
  g_autofree char *delete_message = NULL;
  g_autoptr(GError) error = NULL;

  audit_append_n (fixture->store, 0, 5);

  g_assert_cmpint (sqlite_file_exec (fixture->path,
                                     "UPDATE audit_log SET reason = 'x' WHERE sequence = 3",
                                     &update_message), !=, SQLITE_OK);
  g_assert_nonnull (strstr (update_message, "UPDATE is not allowed"));

  g_assert_cmpint (sqlite_file_exec (fixture->path, "DELETE FROM audit_log WHERE sequence = 5",
                                     &delete_message), !=, SQLITE_OK);
  g_assert_nonnull (strstr (delete_message, "DELETE is not allowed"));

  g_assert_true (cims_store_audit_verify (fixture->store, NULL, &error));
  g_assert_no_error (error);
}

/* Root ignores file modes, and the tests run as root, so a chmod 0400 file
 * would still be writable. Opening the store through the URI parameter
 * mode=ro makes SQLite open the file O_RDONLY, which is what it falls back
 * to for a file the hub's user cannot write. */
static void
test_store_audit_read_only_append_fails (StoreFixture *fixture, gconstpointer data)
{
  g_autofree char *uri = g_strdup_printf ("file:%s?mode=ro", fixture->path);
  g_autoptr(CimsStore) store = NULL;
  g_autoptr(CimsAuditRecord) record = audit_record_new (3);
  g_autoptr(CimsGrant) grant = grant_new ("revere", NULL);
  g_autoptr(GPtrArray) records = NULL;
  g_autoptr(GError) error = NULL;

  audit_append_n (fixture->store, 0, 3);
  g_clear_pointer (&fixture->store, cims_store_free);

  store = cims_store_sqlite_open (uri, &error);
  g_assert_no_error (error);

  g_assert_false (cims_store_audit_append (store, record, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_WRITE);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "session-stop of session s-1"));
  g_assert_nonnull (strstr (error->message, "readonly"));
  g_assert_cmpuint (record->sequence, ==, 0);
  g_assert_null (record->hash);
  g_clear_error (&error);

  g_assert_false (cims_store_grant_insert (store, grant, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_WRITE);
  g_clear_error (&error);

  /* Reading still works. */
  records = audit_query_all (store);
  g_assert_cmpuint (records->len, ==, 3);
  g_assert_true (cims_store_audit_verify (store, NULL, &error));
  g_assert_no_error (error);
}

/* A reader connection beside the writing one reads its records, writes
 * nothing, and never creates a missing store. */
static void
test_store_reader_reads_beside_writer (StoreFixture *fixture, gconstpointer data)
{
  g_autofree char *missing = g_build_filename (fixture->dir, "missing.db", NULL);
  g_autoptr(CimsStore) reader = NULL;
  g_autoptr(CimsAuditRecord) record = audit_record_new (5);
  g_autoptr(GPtrArray) records = NULL;
  g_autoptr(GError) error = NULL;

  audit_append_n (fixture->store, 0, 3);
  reader = cims_store_sqlite_open_reader (fixture->path, &error);
  g_assert_no_error (error);

  records = audit_query_all (reader);
  g_assert_cmpuint (records->len, ==, 3);

  /* The writer goes on appending while the reader is open. */
  audit_append_n (fixture->store, 3, 1);
  g_clear_pointer (&records, g_ptr_array_unref);
  records = audit_query_all (reader);
  g_assert_cmpuint (records->len, ==, 4);

  g_assert_false (cims_store_audit_append (reader, record, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_WRITE);
  g_clear_error (&error);

  g_assert_null (cims_store_sqlite_open_reader (missing, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_OPEN);
  g_assert_nonnull (strstr (error->message, missing));
  g_assert_false (g_file_test (missing, G_FILE_TEST_EXISTS));
}

/* The same through file permissions, which only bind a user without
 * CAP_DAC_OVERRIDE. */
static void
test_store_audit_unwritable_file_append_fails (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(CimsAuditRecord) record = audit_record_new (3);
  g_autoptr(GError) error = NULL;

  if (geteuid () == 0) {
    g_test_skip ("root can write a file with mode 0400; the mode=ro test covers this case");
    return;
  }

  audit_append_n (fixture->store, 0, 3);
  g_clear_pointer (&fixture->store, cims_store_free);
  g_assert_cmpint (g_chmod (fixture->path, 0400), ==, 0);
  store_fixture_reopen (fixture);

  g_assert_false (cims_store_audit_append (fixture->store, record, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_WRITE);
}

static void
test_store_audit_read_only_needs_current_schema (StoreFixture *fixture, gconstpointer data)
{
  g_autofree char *uri = g_strdup_printf ("file:%s?mode=ro", fixture->path);
  g_autoptr(CimsStore) store = NULL;
  g_autoptr(GError) error = NULL;

  g_clear_pointer (&fixture->store, cims_store_free);
  g_assert_cmpint (g_unlink (fixture->path), ==, 0);
  sqlite_file_exec_ok (fixture->path, "CREATE TABLE unrelated (x)");

  store = cims_store_sqlite_open (uri, &error);
  g_assert_null (store);
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_OPEN);
  g_assert_nonnull (strstr (error->message, "read-only"));
}

static void
test_store_audit_reopen_continues_chain (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(GPtrArray) records = NULL;
  g_autoptr(GError) error = NULL;

  audit_append_n (fixture->store, 0, 10);
  store_fixture_reopen (fixture);
  audit_append_n (fixture->store, 10, 5);

  records = audit_query_all (fixture->store);
  g_assert_cmpuint (records->len, ==, 15);
  g_assert_cmpuint (((CimsAuditRecord *) records->pdata[10])->sequence, ==, 11);
  g_assert_cmpstr (((CimsAuditRecord *) records->pdata[10])->previous_hash, ==,
                   ((CimsAuditRecord *) records->pdata[9])->hash);
  g_assert_true (cims_store_audit_verify (fixture->store, NULL, &error));
  g_assert_no_error (error);
}

static void
test_store_audit_rejects_invalid_utf8 (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(CimsAuditRecord) record = audit_record_new (0);
  g_autoptr(GPtrArray) records = NULL;
  g_autoptr(GError) error = NULL;

  g_free (record->client_version);
  record->client_version = g_strdup ("viewer\xff");
  g_assert_false (cims_store_audit_append (fixture->store, record, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "client_version"));

  records = audit_query_all (fixture->store);
  g_assert_cmpuint (records->len, ==, 0);
}

/* Returns the number of records @filter matches and checks each one with
 * @check. */
static guint
audit_count (CimsStore *store, const CimsAuditFilter *filter,
             gboolean (*check) (const CimsAuditRecord *record, const CimsAuditFilter *filter))
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) records = cims_store_audit_query (store, filter, &error);

  g_assert_no_error (error);
  for (guint i = 0; i < records->len; i++) {
    const CimsAuditRecord *record = records->pdata[i];

    g_assert_true (check (record, filter));
    if (i > 0)
      g_assert_cmpuint (record->sequence, >, ((CimsAuditRecord *) records->pdata[i - 1])->sequence);
  }

  return records->len;
}

static gboolean
audit_matches (const CimsAuditRecord *r, const CimsAuditFilter *f)
{
  return (f->from_ms == 0 || r->time_ms >= f->from_ms) &&
         (f->to_ms == 0 || r->time_ms < f->to_ms) &&
         r->sequence >= f->from_sequence &&
         (f->events == NULL || g_strv_contains (f->events, r->event)) &&
         (f->camera_id == NULL || g_strcmp0 (r->camera_id, f->camera_id) == 0) &&
         (f->person_id == NULL || g_strcmp0 (r->person_id, f->person_id) == 0) &&
         (f->jurisdiction == NULL || g_strcmp0 (r->person_jurisdiction, f->jurisdiction) == 0 ||
          g_strcmp0 (r->camera_owner, f->jurisdiction) == 0) &&
         (f->incident_number == NULL || g_strcmp0 (r->incident_number, f->incident_number) == 0) &&
         (f->event == NULL || g_strcmp0 (r->event, f->event) == 0);
}

static void
test_store_audit_query_filters (StoreFixture *fixture, gconstpointer data)
{
  const gint64 base_ms = NOW_S * 1000;
  g_autoptr(CimsAuditRecord) other_owner = audit_record_new (100);
  CimsAuditFilter filter;

  /* 100 records with time_ms base+0..base+99 (see audit_record_new), then
   * one whose camera belongs to revere. */
  audit_append_n (fixture->store, 0, 100);
  g_free (other_owner->camera_owner);
  other_owner->camera_owner = g_strdup ("revere");
  g_free (other_owner->person_jurisdiction);
  other_owner->person_jurisdiction = g_strdup ("winthrop");
  g_assert_true (cims_store_audit_append (fixture->store, other_owner, NULL));

  filter = (CimsAuditFilter) { 0 };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 101);

  filter = (CimsAuditFilter) { .from_ms = base_ms + 10, .to_ms = base_ms + 20 };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 10);

  filter = (CimsAuditFilter) { .camera_id = "che-0001" };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 25);

  filter = (CimsAuditFilter) { .person_id = "u-1002" };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 33);

  /* state-police is the viewer's jurisdiction in every fifth record; revere
   * is the viewer's in the other 80 and the camera owner in the last one. */
  filter = (CimsAuditFilter) { .jurisdiction = "state-police" };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 20);
  filter = (CimsAuditFilter) { .jurisdiction = "revere" };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 81);

  filter = (CimsAuditFilter) { .incident_number = "CH-2026-0412" };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 15);

  filter = (CimsAuditFilter) { .event = "session-stop" };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 50);

  filter = (CimsAuditFilter) { .event = "session-start", .limit = 7 };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 7);

  /* All conditions at once: 40 <= i < 80, camera i%4 == 2 (so i is even,
   * a start), person i%3 == 2, viewer from revere (i%5 != 0): 62 and 74. */
  filter = (CimsAuditFilter) { .from_ms = base_ms + 40, .to_ms = base_ms + 80,
                               .camera_id = "che-0002", .person_id = "u-1002",
                               .jurisdiction = "revere", .event = "session-start" };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 2);

  filter = (CimsAuditFilter) { .camera_id = "che-0002", .event = "session-stop" };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 0);
}

/* What a foreach callback saw: the sequences, and when to stop or cancel. */
typedef struct {
  const CimsAuditFilter *filter;
  GArray *sequences;            /* of guint64 */
  guint stop_after;             /* 0: never return FALSE */
  guint cancel_after;           /* 0: never cancel */
  GCancellable *cancellable;
} ForeachVisit;

static gboolean
foreach_visit_cb (const CimsAuditRecord *record, gpointer user_data)
{
  ForeachVisit *visit = user_data;

  if (visit->filter != NULL)
    g_assert_true (audit_matches (record, visit->filter));
  g_array_append_val (visit->sequences, record->sequence);

  if (visit->cancel_after != 0 && visit->sequences->len == visit->cancel_after)
    g_cancellable_cancel (visit->cancellable);

  return visit->stop_after == 0 || visit->sequences->len < visit->stop_after;
}

/* Checks that foreach visits exactly the records query returns for
 * @filter, in the same (sequence) order. Returns how many it visited. */
static guint
audit_foreach_matches_query (CimsStore *store, const CimsAuditFilter *filter)
{
  g_autoptr(GArray) sequences = g_array_new (FALSE, FALSE, sizeof (guint64));
  ForeachVisit visit = { filter, sequences, 0, 0, NULL };
  g_autoptr(GPtrArray) records = cims_store_audit_query (store, filter, NULL);
  g_autoptr(GError) error = NULL;

  g_assert_true (cims_store_audit_foreach (store, filter, foreach_visit_cb, &visit, NULL, &error));
  g_assert_no_error (error);

  g_assert_cmpuint (sequences->len, ==, records->len);
  for (guint i = 0; i < sequences->len; i++) {
    g_assert_cmpuint (g_array_index (sequences, guint64, i), ==,
                      ((CimsAuditRecord *) records->pdata[i])->sequence);
    if (i > 0)
      g_assert_cmpuint (g_array_index (sequences, guint64, i), >,
                        g_array_index (sequences, guint64, i - 1));
  }

  return sequences->len;
}

static void
test_store_audit_query_from_sequence (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(GPtrArray) records = NULL;
  CimsAuditFilter filter;

  audit_append_n (fixture->store, 0, 100);

  filter = (CimsAuditFilter) { .from_sequence = 40 };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 61);

  filter = (CimsAuditFilter) { .from_sequence = 40, .limit = 1 };
  records = cims_store_audit_query (fixture->store, &filter, NULL);
  g_assert_cmpuint (records->len, ==, 1);
  g_assert_cmpuint (((CimsAuditRecord *) records->pdata[0])->sequence, ==, 40);

  filter = (CimsAuditFilter) { .from_sequence = 100 };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 1);

  filter = (CimsAuditFilter) { .from_sequence = 101 };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 0);

  /* Past the largest SQLite integer: no record, not a bound that wraps to
   * a negative number and matches every record. */
  filter = (CimsAuditFilter) { .from_sequence = G_MAXUINT64 };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 0);

  /* Sequences 90 to 100 are records 89 to 99, and the odd ones are stops. */
  filter = (CimsAuditFilter) { .from_sequence = 90, .event = "session-stop" };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 6);
}

static void
test_store_audit_query_any_of_events (StoreFixture *fixture, gconstpointer data)
{
  static const char *const sessions[] = { "session-start", "session-stop", NULL };
  static const char *const stops[] = { "session-stop", NULL };
  static const char *const none[] = { NULL };
  g_autoptr(CimsAuditRecord) lifecycle = audit_record_new (100);
  CimsAuditFilter filter;

  /* 100 session records (see audit_record_new), then one hub-started. */
  audit_append_n (fixture->store, 0, 100);
  g_free (lifecycle->event);
  lifecycle->event = g_strdup ("hub-started");
  g_assert_true (cims_store_audit_append (fixture->store, lifecycle, NULL));

  filter = (CimsAuditFilter) { .events = sessions };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 100);
  g_assert_cmpuint (audit_foreach_matches_query (fixture->store, &filter), ==, 100);

  filter = (CimsAuditFilter) { .events = stops };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 50);

  filter = (CimsAuditFilter) { .events = none };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 0);

  /* Every other condition still applies, and the parameters after the
   * list are numbered after it. */
  filter = (CimsAuditFilter) { .events = sessions, .from_sequence = 61, .camera_id = "che-0001" };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 10);
  g_assert_cmpuint (audit_foreach_matches_query (fixture->store, &filter), ==, 10);

  filter = (CimsAuditFilter) { .events = sessions, .event = "hub-started" };
  g_assert_cmpuint (audit_count (fixture->store, &filter, audit_matches), ==, 0);
}

static void
test_store_audit_record_copy (void)
{
  g_autoptr(CimsAuditRecord) record = audit_record_new (7);
  g_autoptr(CimsAuditRecord) copy = NULL;

  record->sequence = 8;
  record->hash = g_strdup ("ab");
  copy = cims_audit_record_copy (record);

  g_assert_cmpuint (copy->sequence, ==, 8);
  g_assert_cmpint (copy->time_ms, ==, record->time_ms);
  g_assert_cmpint (copy->bytes_sent, ==, record->bytes_sent);
  g_assert_cmpint (copy->duration_ms, ==, record->duration_ms);
  g_assert_cmpstr (copy->session_id, ==, record->session_id);
  g_assert_cmpstr (copy->details, ==, record->details);
  g_assert_cmpstr (copy->hash, ==, "ab");
  g_assert_null (copy->grant_id);
  g_assert_true (copy->session_id != record->session_id);
  g_assert_true (copy->hash != record->hash);
}

static void
test_store_audit_foreach_filters_in_order (StoreFixture *fixture, gconstpointer data)
{
  const gint64 base_ms = NOW_S * 1000;
  CimsAuditFilter filter;

  audit_append_n (fixture->store, 0, 100);

  g_assert_cmpuint (audit_foreach_matches_query (fixture->store, NULL), ==, 100);

  filter = (CimsAuditFilter) { .from_ms = base_ms + 10, .to_ms = base_ms + 20 };
  g_assert_cmpuint (audit_foreach_matches_query (fixture->store, &filter), ==, 10);

  filter = (CimsAuditFilter) { .jurisdiction = "state-police" };
  g_assert_cmpuint (audit_foreach_matches_query (fixture->store, &filter), ==, 20);

  filter = (CimsAuditFilter) { .event = "session-stop", .person_id = "u-1002" };
  g_assert_cmpuint (audit_foreach_matches_query (fixture->store, &filter), ==, 16);

  filter = (CimsAuditFilter) { .event = "session-start", .limit = 7 };
  g_assert_cmpuint (audit_foreach_matches_query (fixture->store, &filter), ==, 7);

  filter = (CimsAuditFilter) { .camera_id = "che-0002", .event = "session-stop" };
  g_assert_cmpuint (audit_foreach_matches_query (fixture->store, &filter), ==, 0);
}

static void
test_store_audit_foreach_stops_when_asked (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(GArray) sequences = g_array_new (FALSE, FALSE, sizeof (guint64));
  ForeachVisit visit = { NULL, sequences, 3, 0, NULL };
  g_autoptr(GError) error = NULL;

  audit_append_n (fixture->store, 0, 10);

  g_assert_true (cims_store_audit_foreach (fixture->store, NULL, foreach_visit_cb, &visit, NULL,
                                           &error));
  g_assert_no_error (error);
  g_assert_cmpuint (sequences->len, ==, 3);
  g_assert_cmpuint (g_array_index (sequences, guint64, 0), ==, 1);
  g_assert_cmpuint (g_array_index (sequences, guint64, 2), ==, 3);
}

/* Rows for the cancel test, written with plain SQL in one transaction:
 * foreach does not look at the hash chain, and 10,000 appends through the
 * store would take one sync each. */
#define FOREACH_CANCEL_ROWS 10000

static void
test_store_audit_foreach_cancelled (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GArray) sequences = g_array_new (FALSE, FALSE, sizeof (guint64));
  ForeachVisit visit = { NULL, sequences, 0, 0, cancellable };
  g_autoptr(GError) error = NULL;
  g_autofree char *fill = g_strdup_printf (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
    "INSERT INTO audit_log (sequence, time_ms, event, bytes_sent, duration_ms, previous_hash, hash) "
    "SELECT i, i, 'session-start', 0, 0, '', '' FROM n", FOREACH_CANCEL_ROWS);

  sqlite_file_exec_ok (fixture->path, fill);

  /* Cancelled before the walk: no record is read. */
  g_cancellable_cancel (cancellable);
  g_assert_false (cims_store_audit_foreach (fixture->store, NULL, foreach_visit_cb, &visit,
                                            cancellable, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpuint (sequences->len, ==, 0);
  g_clear_error (&error);

  /* Cancelled by the fifth record: the walk ends long before the last. */
  g_cancellable_reset (cancellable);
  visit.cancel_after = 5;
  g_assert_false (cims_store_audit_foreach (fixture->store, NULL, foreach_visit_cb, &visit,
                                            cancellable, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_test_message ("%u records read before the cancel took effect", sequences->len);
  g_assert_cmpuint (sequences->len, >=, 5);
  g_assert_cmpuint (sequences->len, <, FOREACH_CANCEL_ROWS / 10);
  g_clear_error (&error);

  /* The same store reads the whole log once nothing cancels. */
  g_cancellable_reset (cancellable);
  g_array_set_size (sequences, 0);
  visit.cancel_after = 0;
  g_assert_true (cims_store_audit_foreach (fixture->store, NULL, foreach_visit_cb, &visit,
                                           cancellable, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (sequences->len, ==, FOREACH_CANCEL_ROWS);
}

typedef struct {
  CimsStore *store;
  guint first_index;
} AppendJob;

static gpointer
audit_append_thread (gpointer data)
{
  AppendJob *job = data;

  for (guint i = 0; i < 25; i++) {
    g_autoptr(CimsAuditRecord) record = audit_record_new (job->first_index + i);
    g_autoptr(GError) error = NULL;

    if (!cims_store_audit_append (job->store, record, &error))
      g_error ("concurrent append failed: %s", error->message);
  }

  return NULL;
}

/* Two connections to one file, two threads on each: the sequences must
 * still run 1..100 with an intact chain. */
static void
test_store_audit_concurrent_appends (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(CimsStore) second = cims_store_sqlite_open (fixture->path, NULL);
  AppendJob jobs[4];
  GThread *threads[4];
  g_autoptr(GPtrArray) records = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_nonnull (second);
  for (guint i = 0; i < G_N_ELEMENTS (jobs); i++) {
    jobs[i] = (AppendJob) { i % 2 == 0 ? fixture->store : second, i * 25 };
    threads[i] = g_thread_new ("append", audit_append_thread, &jobs[i]);
  }
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    g_thread_join (threads[i]);

  records = audit_query_all (fixture->store);
  g_assert_cmpuint (records->len, ==, 100);
  g_assert_cmpuint (((CimsAuditRecord *) records->pdata[99])->sequence, ==, 100);
  g_assert_true (cims_store_audit_verify (fixture->store, NULL, &error));
  g_assert_no_error (error);
}

/* ---- archive-footage requests ---------------------------------------------- */

static CimsArchiveRequest *
archive_request_new (CimsArchiveRequesterKind kind, gint64 created_at_us)
{
  CimsArchiveRequest *request = g_new0 (CimsArchiveRequest, 1);

  request->camera_id = g_strdup ("che-0001");
  request->owner = g_strdup ("chelsea");
  request->from_us = NOW_US - 2 * HOUR_US;
  request->to_us = NOW_US - HOUR_US;
  request->requester_kind = kind;
  request->requester_id = g_strdup (kind == CIMS_ARCHIVE_REQUESTER_CIVILIAN ? "c-77" : "revere");
  request->requester_name = g_strdup ("Sam Rivera");
  request->incident_number = kind == CIMS_ARCHIVE_REQUESTER_CIVILIAN ? NULL : g_strdup ("RV-1");
  request->purpose = g_strdup ("Collision on Broadway");
  request->created_at_us = created_at_us;
  request->state = CIMS_ARCHIVE_STATE_APPROVED;   /* ignored by insert */

  return request;
}

static void
test_store_archive_civilian_needs_legal_review (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(CimsArchiveRequest) request =
    archive_request_new (CIMS_ARCHIVE_REQUESTER_CIVILIAN, NOW_US);
  g_autoptr(CimsArchiveRequest) read = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (cims_store_archive_request_insert (fixture->store, request, &error));
  g_assert_no_error (error);
  g_assert_true (g_regex_match_simple ("^a-[0-9a-f]{16}$", request->id, 0, 0));
  g_assert_cmpint (request->state, ==, CIMS_ARCHIVE_STATE_PENDING_LEGAL_REVIEW);

  /* Approval straight from legal review skips the review. */
  g_assert_false (cims_store_archive_request_update_state (
    fixture->store, request->id, CIMS_ARCHIVE_STATE_PENDING_LEGAL_REVIEW,
    CIMS_ARCHIVE_STATE_APPROVED, "u-admin-1", NOW_US + SECOND_US, NULL, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_CONFLICT);
  g_clear_error (&error);

  g_assert_true (cims_store_archive_request_update_state (
    fixture->store, request->id, CIMS_ARCHIVE_STATE_PENDING_LEGAL_REVIEW,
    CIMS_ARCHIVE_STATE_PENDING_APPROVAL, "u-legal-4", NOW_US + HOUR_US, "Footage may be released",
    &error));
  g_assert_no_error (error);

  g_assert_true (cims_store_archive_request_update_state (
    fixture->store, request->id, CIMS_ARCHIVE_STATE_PENDING_APPROVAL,
    CIMS_ARCHIVE_STATE_APPROVED, "u-admin-1", NOW_US + 2 * HOUR_US, NULL, &error));
  g_assert_no_error (error);

  read = cims_store_archive_request_get (fixture->store, request->id, &error);
  g_assert_no_error (error);
  g_assert_cmpint (read->state, ==, CIMS_ARCHIVE_STATE_APPROVED);
  g_assert_cmpint (read->requester_kind, ==, CIMS_ARCHIVE_REQUESTER_CIVILIAN);
  g_assert_cmpstr (read->legal_reviewed_by, ==, "u-legal-4");
  g_assert_cmpint (read->legal_reviewed_at_us, ==, NOW_US + HOUR_US);
  g_assert_cmpstr (read->decided_by, ==, "u-admin-1");
  g_assert_cmpint (read->decided_at_us, ==, NOW_US + 2 * HOUR_US);
  g_assert_cmpstr (read->decision_note, ==, "Footage may be released");
  g_assert_cmpstr (read->camera_id, ==, "che-0001");
  g_assert_cmpstr (read->owner, ==, "chelsea");
  g_assert_cmpint (read->from_us, ==, NOW_US - 2 * HOUR_US);
  g_assert_cmpint (read->to_us, ==, NOW_US - HOUR_US);
  g_assert_cmpstr (read->requester_id, ==, "c-77");
  g_assert_cmpstr (read->requester_name, ==, "Sam Rivera");
  g_assert_null (read->incident_number);
  g_assert_cmpstr (read->purpose, ==, "Collision on Broadway");
  g_assert_cmpint (read->created_at_us, ==, NOW_US);
}

static void
test_store_archive_agency_goes_to_approval (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(CimsArchiveRequest) request =
    archive_request_new (CIMS_ARCHIVE_REQUESTER_AGENCY, NOW_US);
  g_autoptr(CimsArchiveRequest) read = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (cims_store_archive_request_insert (fixture->store, request, &error));
  g_assert_cmpint (request->state, ==, CIMS_ARCHIVE_STATE_PENDING_APPROVAL);

  g_assert_true (cims_store_archive_request_update_state (
    fixture->store, request->id, CIMS_ARCHIVE_STATE_PENDING_APPROVAL, CIMS_ARCHIVE_STATE_DENIED,
    "u-admin-1", NOW_US + HOUR_US, "No incident on record", &error));
  g_assert_no_error (error);

  read = cims_store_archive_request_get (fixture->store, request->id, &error);
  g_assert_cmpint (read->state, ==, CIMS_ARCHIVE_STATE_DENIED);
  g_assert_null (read->legal_reviewed_by);
  g_assert_cmpint (read->legal_reviewed_at_us, ==, 0);
  g_assert_cmpstr (read->decided_by, ==, "u-admin-1");
  g_assert_cmpstr (read->decision_note, ==, "No incident on record");
  g_assert_cmpstr (read->incident_number, ==, "RV-1");

  /* A final state does not move again. */
  g_assert_false (cims_store_archive_request_update_state (
    fixture->store, request->id, CIMS_ARCHIVE_STATE_DENIED, CIMS_ARCHIVE_STATE_APPROVED,
    "u-admin-1", NOW_US + 2 * HOUR_US, NULL, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_CONFLICT);
}

static void
test_store_archive_wrong_state_conflicts (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(CimsArchiveRequest) request =
    archive_request_new (CIMS_ARCHIVE_REQUESTER_JURISDICTION, NOW_US);
  g_autoptr(CimsArchiveRequest) read = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (cims_store_archive_request_insert (fixture->store, request, &error));

  g_assert_false (cims_store_archive_request_update_state (
    fixture->store, request->id, CIMS_ARCHIVE_STATE_PENDING_LEGAL_REVIEW,
    CIMS_ARCHIVE_STATE_PENDING_APPROVAL, "u-legal-4", NOW_US, NULL, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_CONFLICT);
  g_assert_nonnull (strstr (error->message, request->id));
  g_assert_nonnull (strstr (error->message, "it is pending-approval, not pending-legal-review"));
  g_clear_error (&error);

  read = cims_store_archive_request_get (fixture->store, request->id, NULL);
  g_assert_cmpint (read->state, ==, CIMS_ARCHIVE_STATE_PENDING_APPROVAL);
  g_assert_null (read->legal_reviewed_by);

  g_assert_false (cims_store_archive_request_update_state (
    fixture->store, "a-0000000000000000", CIMS_ARCHIVE_STATE_PENDING_APPROVAL,
    CIMS_ARCHIVE_STATE_APPROVED, "u-admin-1", NOW_US, NULL, &error));
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "a-0000000000000000"));
}

static void
test_store_archive_list_newest_first (StoreFixture *fixture, gconstpointer data)
{
  g_autoptr(GPtrArray) requests = NULL;
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < 3; i++) {
    g_autoptr(CimsArchiveRequest) request =
      archive_request_new ((CimsArchiveRequesterKind) i, NOW_US + i * SECOND_US);

    g_assert_true (cims_store_archive_request_insert (fixture->store, request, &error));
  }

  requests = cims_store_archive_request_list (fixture->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (requests->len, ==, 3);
  g_assert_cmpint (((CimsArchiveRequest *) requests->pdata[0])->requester_kind, ==,
                   CIMS_ARCHIVE_REQUESTER_CIVILIAN);
  g_assert_cmpint (((CimsArchiveRequest *) requests->pdata[2])->requester_kind, ==,
                   CIMS_ARCHIVE_REQUESTER_JURISDICTION);
}

static void
test_store_archive_state_names (void)
{
  for (guint i = CIMS_ARCHIVE_STATE_PENDING_LEGAL_REVIEW; i <= CIMS_ARCHIVE_STATE_DENIED; i++) {
    CimsArchiveState state = CIMS_ARCHIVE_STATE_APPROVED;

    g_assert_true (cims_archive_state_from_string (cims_archive_state_to_string (i), &state));
    g_assert_cmpint (state, ==, i);
  }
  for (guint i = CIMS_ARCHIVE_REQUESTER_JURISDICTION; i <= CIMS_ARCHIVE_REQUESTER_CIVILIAN; i++) {
    CimsArchiveRequesterKind kind = CIMS_ARCHIVE_REQUESTER_AGENCY;

    g_assert_true (cims_archive_requester_kind_from_string (
      cims_archive_requester_kind_to_string (i), &kind));
    g_assert_cmpint (kind, ==, i);
  }

  g_assert_cmpstr (cims_archive_state_to_string (CIMS_ARCHIVE_STATE_PENDING_LEGAL_REVIEW), ==,
                   "pending-legal-review");
  g_assert_cmpstr (cims_archive_requester_kind_to_string (CIMS_ARCHIVE_REQUESTER_CIVILIAN), ==,
                   "civilian");
  {
    CimsArchiveState state = CIMS_ARCHIVE_STATE_DENIED;

    g_assert_false (cims_archive_state_from_string ("pending", &state));
    g_assert_cmpint (state, ==, CIMS_ARCHIVE_STATE_DENIED);
  }
}

#define ADD_STORE_TEST(path, func) \
  g_test_add (path, StoreFixture, NULL, store_fixture_set_up, func, store_fixture_tear_down)

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  /* Opening a read-only store logs a warning on purpose. */
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);

  ADD_STORE_TEST ("/auth/store/open/creates-private-wal-file", test_store_open_creates_private_wal_file);
  ADD_STORE_TEST ("/auth/store/open/accepts-uri", test_store_open_accepts_uri);
  ADD_STORE_TEST ("/auth/store/open/rejects-newer-schema", test_store_open_rejects_newer_schema);
  ADD_STORE_TEST ("/auth/store/open/reader-beside-writer", test_store_reader_reads_beside_writer);
  g_test_add_func ("/auth/store/open/reports-missing-directory", test_store_open_reports_missing_directory);

  ADD_STORE_TEST ("/auth/store/grant/insert-and-get", test_store_grant_insert_and_get);
  ADD_STORE_TEST ("/auth/store/grant/get-unknown", test_store_grant_get_unknown);
  ADD_STORE_TEST ("/auth/store/grant/list-newest-first", test_store_grant_list_newest_first);
  ADD_STORE_TEST ("/auth/store/grant/revoke", test_store_grant_revoke);
  ADD_STORE_TEST ("/auth/store/grant/revoke-twice", test_store_grant_revoke_twice);
  ADD_STORE_TEST ("/auth/store/grant/revoke-unknown", test_store_grant_revoke_unknown);
  ADD_STORE_TEST ("/auth/store/grant/rejects-invalid", test_store_grant_rejects_invalid);
  g_test_add_func ("/auth/store/grant/active-window", test_store_grant_active_window);
  ADD_STORE_TEST ("/auth/store/grant/active-until-revoked", test_store_grant_active_until_revoked);
  g_test_add_func ("/auth/store/grant/covers-camera", test_store_grant_covers_camera);

  ADD_STORE_TEST ("/auth/store/incident/insert-and-get", test_store_incident_insert_and_get);
  ADD_STORE_TEST ("/auth/store/incident/end", test_store_incident_end);
  g_test_add_func ("/auth/store/incident/active-window", test_store_incident_active_window);

  ADD_STORE_TEST ("/auth/store/audit/append-hundred", test_store_audit_append_hundred);
  ADD_STORE_TEST ("/auth/store/audit/append-fills-chain-fields", test_store_audit_append_fills_chain_fields);
  ADD_STORE_TEST ("/auth/store/audit/empty-log-verifies", test_store_audit_empty_log_verifies);
  ADD_STORE_TEST ("/auth/store/audit/detects-changed-record", test_store_audit_detects_changed_record);
  ADD_STORE_TEST ("/auth/store/audit/detects-changed-number", test_store_audit_detects_changed_number);
  ADD_STORE_TEST ("/auth/store/audit/detects-removed-record", test_store_audit_detects_removed_record);
  ADD_STORE_TEST ("/auth/store/audit/detects-removed-first-record", test_store_audit_detects_removed_first_record);
  ADD_STORE_TEST ("/auth/store/audit/detects-swapped-records", test_store_audit_detects_swapped_records);
  ADD_STORE_TEST ("/auth/store/audit/detects-rehashed-record", test_store_audit_detects_rehashed_record);
  ADD_STORE_TEST ("/auth/store/audit/triggers-reject-changes", test_store_audit_triggers_reject_changes);
  ADD_STORE_TEST ("/auth/store/audit/read-only-append-fails", test_store_audit_read_only_append_fails);
  ADD_STORE_TEST ("/auth/store/audit/unwritable-file-append-fails", test_store_audit_unwritable_file_append_fails);
  ADD_STORE_TEST ("/auth/store/audit/read-only-needs-current-schema", test_store_audit_read_only_needs_current_schema);
  ADD_STORE_TEST ("/auth/store/audit/reopen-continues-chain", test_store_audit_reopen_continues_chain);
  ADD_STORE_TEST ("/auth/store/audit/rejects-invalid-utf8", test_store_audit_rejects_invalid_utf8);
  ADD_STORE_TEST ("/auth/store/audit/query-filters", test_store_audit_query_filters);
  ADD_STORE_TEST ("/auth/store/audit/concurrent-appends", test_store_audit_concurrent_appends);
  ADD_STORE_TEST ("/auth/store/audit/query-from-sequence", test_store_audit_query_from_sequence);
  ADD_STORE_TEST ("/auth/store/audit/query-any-of-events", test_store_audit_query_any_of_events);
  g_test_add_func ("/auth/store/audit/record-copy", test_store_audit_record_copy);
  ADD_STORE_TEST ("/auth/store/audit/foreach-filters-in-order", test_store_audit_foreach_filters_in_order);
  ADD_STORE_TEST ("/auth/store/audit/foreach-stops-when-asked", test_store_audit_foreach_stops_when_asked);
  ADD_STORE_TEST ("/auth/store/audit/foreach-cancelled", test_store_audit_foreach_cancelled);

  ADD_STORE_TEST ("/auth/store/archive/civilian-needs-legal-review", test_store_archive_civilian_needs_legal_review);
  ADD_STORE_TEST ("/auth/store/archive/agency-goes-to-approval", test_store_archive_agency_goes_to_approval);
  ADD_STORE_TEST ("/auth/store/archive/wrong-state-conflicts", test_store_archive_wrong_state_conflicts);
  ADD_STORE_TEST ("/auth/store/archive/list-newest-first", test_store_archive_list_newest_first);
  g_test_add_func ("/auth/store/archive/state-names", test_store_archive_state_names);

  return g_test_run ();
}
