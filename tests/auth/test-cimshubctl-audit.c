/* SPDX-License-Identifier: Apache-2.0 */
/* Runs the built cimshubctl (path in CIMSHUBCTL) on a state database made
 * here: audit verify passes on a fresh log without changing the file, names
 * the edited record after an edit made with the triggers dropped, reports a
 * dropped or emptied log, and with --expect catches a cut or a recomputed
 * chain. audit list filters and shows session ids, both find the database
 * through an invalid configuration, and report annual renders. */
#include <string.h>
#include <sys/wait.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <sqlite3.h>

#include "auth/store.h"
#include "auth/store-private.h"

#define N_RECORDS 6

/* The session ids of b1's and c1's sessions, hex like the hub's. */
#define B1_SESSION_ID "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"
#define C1_SESSION_ID "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"

/* A valid configuration whose state_dir is the fixture's directory. */
static const char audit_config[] =
  "hub: {\n"
  "  http_listen = \"127.0.0.1:8080\";\n"
  "  ice_udp_ports = [20000, 20999];\n"
  "  public_addresses = [\"127.0.0.1\"];\n"
  "  state_dir = \".\";\n"
  "};\n"
  "jurisdictions = (\n"
  "  { id = \"boston\"; name = \"Boston\"; participates = true;\n"
  "    token_issuer = \"https://idp.boston.test\"; token_key = \"keys/boston.pub.pem\"; }\n"
  ");\n"
  "cameras = (\n"
  "  { id = \"bos-0001\"; jurisdiction = \"boston\"; location = \"A\"; brand_model = \"M\";\n"
  "    installed = \"2019-05-02\"; source = \"rtsp://192.0.2.1/a\"; }\n"
  ");\n"
  "viewer_profiles = (\n"
  "  { name = \"browser\"; codecs = [\"h264\"];\n"
  "    max_width = 1920; max_height = 1080; max_fps = 30; max_kbps = 4000; }\n"
  ");\n";

static const char *cimshubctl_path;

typedef struct {
  char *dir;
  char *db_path;
  char *config_path;            /* written by config_write() */
} Fixture;

typedef struct {
  int exit_status;
  char *out;
  char *err;
} CtlResult;

static void
ctl_result_free (CtlResult *result)
{
  g_free (result->out);
  g_free (result->err);
  g_free (result);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CtlResult, ctl_result_free)

/* Runs cimshubctl with the NULL-terminated arguments and waits for it. */
static CtlResult *
ctl_run (const char *first_arg, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GError) error = NULL;
  CtlResult *result = g_new0 (CtlResult, 1);
  int wait_status = 0;
  va_list args;

  g_ptr_array_add (argv, (char *) cimshubctl_path);
  va_start (args, first_arg);
  for (const char *arg = first_arg; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, (char *) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);

  g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, &result->out, &result->err,
                &wait_status, &error);
  g_assert_no_error (error);
  g_assert_true (WIFEXITED (wait_status));
  result->exit_status = WEXITSTATUS (wait_status);
  g_test_message ("exit %d, stdout: %s, stderr: %s", result->exit_status, result->out, result->err);
  return result;
}

static void
fixture_set_up (Fixture *fixture, gconstpointer data)
{
  static const char *const events[N_RECORDS] = {
    "hub-started", "session-start", "session-stop", "grant-created", "session-start", "session-stop",
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsStore) store = NULL;

  fixture->dir = g_dir_make_tmp ("cims-ctl-audit-XXXXXX", &error);
  g_assert_no_error (error);
  fixture->db_path = g_build_filename (fixture->dir, "cimshub.db", NULL);
  fixture->config_path = g_build_filename (fixture->dir, "cimshub.conf", NULL);
  store = cims_store_sqlite_open (fixture->db_path, &error);
  g_assert_no_error (error);

  for (guint i = 0; i < N_RECORDS; i++) {
    g_autoptr (CimsAuditRecord) record = g_new0 (CimsAuditRecord, 1);

    record->time_ms = G_GINT64_CONSTANT (1740787200000) + i * 60000; /* 2025-03-01, a minute apart */
    record->event = g_strdup (events[i]);
    /* Records 2 to 4 are b1 of boston, 5 and 6 c1 of chelsea; all on boston's camera. */
    if (i > 0) {
      gboolean is_boston = i < 4;

      record->person_id = g_strdup (is_boston ? "b1" : "c1");
      record->person_jurisdiction = g_strdup (is_boston ? "boston" : "chelsea");
      record->camera_owner = g_strdup ("boston");
    }
    if (g_str_has_prefix (events[i], "session-"))
      record->session_id = g_strdup (i < 4 ? B1_SESSION_ID : C1_SESSION_ID);
    record->duration_ms = g_str_equal (events[i], "session-stop") ? 60000 : 0;
    record->reason = g_strdup ("test");
    g_assert_true (cims_store_audit_append (store, record, &error));
    g_assert_no_error (error);
  }
}

static void
fixture_tear_down (Fixture *fixture, gconstpointer data)
{
  const char *const suffixes[] = { "", "-wal", "-shm" };

  for (gsize i = 0; i < G_N_ELEMENTS (suffixes); i++) {
    g_autofree char *path = g_strconcat (fixture->db_path, suffixes[i], NULL);
    g_unlink (path);
  }
  g_unlink (fixture->config_path);
  g_rmdir (fixture->dir);
  g_free (fixture->config_path);
  g_free (fixture->db_path);
  g_free (fixture->dir);
}

/* Writes audit_config to fixture->config_path with @from replaced by @to,
 * or unchanged when @from is NULL. */
static void
config_write (Fixture *fixture, const char *from, const char *to)
{
  g_autoptr (GString) text = g_string_new (audit_config);
  g_autoptr (GError) error = NULL;

  if (from != NULL)
    g_assert_cmpuint (g_string_replace (text, from, to, 1), ==, 1);
  g_file_set_contents (fixture->config_path, text->str, text->len, &error);
  g_assert_no_error (error);
}

/* Edits one record the way someone with write access to the file could:
 * the append-only triggers go first. */
static void
database_tamper (const char *db_path, const char *sql)
{
  sqlite3 *db = NULL;
  char *message = NULL;

  g_assert_cmpint (sqlite3_open (db_path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;",
                                 NULL, NULL, &message), ==, SQLITE_OK);
  if (sqlite3_exec (db, sql, NULL, NULL, &message) != SQLITE_OK)
    g_error ("%s failed: %s", sql, message);
  g_assert_cmpint (sqlite3_changes (db), ==, 1);
  sqlite3_close (db);
}

/* Runs @sql on the database with no checks of its own, as someone with
 * write access to the file could. */
static void
database_exec (const char *db_path, const char *sql)
{
  sqlite3 *db = NULL;
  char *message = NULL;

  g_assert_cmpint (sqlite3_open (db_path, &db), ==, SQLITE_OK);
  if (sqlite3_exec (db, sql, NULL, NULL, &message) != SQLITE_OK)
    g_error ("%s failed: %s", sql, message);
  sqlite3_close (db);
}

/* Returns: (transfer full): the chain hash of record @sequence, read through
 * the store. */
static char *
store_dup_record_hash (const char *db_path, guint64 sequence)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsStore) store = cims_store_sqlite_open_reader (db_path, &error);
  CimsAuditFilter filter = { .from_sequence = sequence, .limit = 1 };
  g_autoptr (GPtrArray) records = NULL;
  CimsAuditRecord *record;

  g_assert_no_error (error);
  records = cims_store_audit_query (store, &filter, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (records->len, ==, 1);
  record = g_ptr_array_index (records, 0);
  g_assert_cmpuint (record->sequence, ==, sequence);
  return g_strdup (record->hash);
}

/* Changes record @sequence's reason and recomputes the chain from there to
 * the last record with the store's own hash function, as someone with write
 * access and the documented canonical form could. Every link still matches. */
static void
database_rewrite_chain (const char *db_path, guint64 sequence)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsStore) store = cims_store_sqlite_open_reader (db_path, &error);
  g_autoptr (GPtrArray) records = NULL;
  sqlite3 *db = NULL;

  g_assert_no_error (error);
  records = cims_store_audit_query (store, NULL, &error);
  g_assert_no_error (error);
  g_clear_pointer (&store, cims_store_free);

  g_assert_cmpint (sqlite3_open (db_path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, "DROP TRIGGER audit_log_no_update", NULL, NULL, NULL), ==, SQLITE_OK);
  for (guint i = sequence - 1; i < records->len; i++) {
    CimsAuditRecord *record = g_ptr_array_index (records, i);
    g_autoptr (sqlite3_stmt) stmt = NULL;

    if (i == sequence - 1) {
      g_free (record->reason);
      record->reason = g_strdup ("rewritten");
    } else {
      const CimsAuditRecord *previous = g_ptr_array_index (records, i - 1);

      g_free (record->previous_hash);
      record->previous_hash = g_strdup (previous->hash);
    }
    g_free (record->hash);
    record->hash = cims_audit_record_compute_hash (record);

    g_assert_cmpint (sqlite3_prepare_v2 (db, "UPDATE audit_log SET reason = ?1, previous_hash = ?2, hash = ?3 "
                                         "WHERE sequence = ?4", -1, &stmt, NULL), ==, SQLITE_OK);
    sqlite3_bind_text (stmt, 1, record->reason, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, record->previous_hash, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, record->hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 4, (sqlite3_int64) record->sequence);
    g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_DONE);
    g_assert_cmpint (sqlite3_changes (db), ==, 1);
  }
  sqlite3_close (db);
}

/* Returns: (transfer full): the hex SHA-256 of the file's bytes. */
static char *
file_dup_sha256 (const char *path)
{
  g_autofree char *contents = NULL;
  g_autoptr (GError) error = NULL;
  gsize length = 0;

  g_file_get_contents (path, &contents, &length, &error);
  g_assert_no_error (error);
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) contents, length);
}

/* Runs audit verify on the fixture's database, which must pass.
 * Returns: (transfer full): the SEQ:HASH of its anchor line. */
static char *
verify_dup_anchor (Fixture *fixture)
{
  g_autoptr (CtlResult) result = ctl_run ("audit", "verify", "--db", fixture->db_path, NULL);
  const char *anchor;

  g_assert_cmpint (result->exit_status, ==, 0);
  anchor = strstr (result->out, "\nanchor: ");
  g_assert_nonnull (anchor);
  anchor += strlen ("\nanchor: ");
  return g_strndup (anchor, strcspn (anchor, "\n"));
}

/* The anchor line gives the last record's sequence and chain hash. */
static void
test_ctl_audit_verify_intact (Fixture *fixture, gconstpointer data)
{
  g_autoptr (CtlResult) result = ctl_run ("audit", "verify", "--db", fixture->db_path, NULL);
  g_autofree char *last_hash = store_dup_record_hash (fixture->db_path, N_RECORDS);
  g_autofree char *lines = g_strdup_printf ("audit log intact: 6 records\nanchor: 6:%s\n", last_hash);

  g_assert_cmpint (result->exit_status, ==, 0);
  g_assert_true (g_str_has_prefix (result->out, lines));
  g_assert_nonnull (strstr (result->out, "pass it as --expect"));
  g_assert_cmpstr (result->err, ==, "");
}

/* Reading the evidence must not write to it: verify, list and the annual
 * report each leave the file as it was. A database in rollback-journal
 * mode shows a switch to WAL in its header bytes. */
static void
test_ctl_audit_reading_leaves_file_unchanged (Fixture *fixture, gconstpointer data)
{
  g_autofree char *wal_path = g_strconcat (fixture->db_path, "-wal", NULL);
  const char *const commands[][3] = { { "audit", "verify", NULL }, { "audit", "list", NULL },
                                      { "report", "annual", "--year=2025" } };

  database_exec (fixture->db_path, "PRAGMA journal_mode = DELETE");
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++) {
    g_autofree char *before = file_dup_sha256 (fixture->db_path);
    g_autoptr (CtlResult) result = ctl_run (commands[i][0], commands[i][1], "--db", fixture->db_path,
                                            commands[i][2], NULL);
    g_autofree char *after = file_dup_sha256 (fixture->db_path);

    g_test_message ("cimshubctl %s %s", commands[i][0], commands[i][1]);
    g_assert_cmpint (result->exit_status, ==, 0);
    g_assert_cmpstr (after, ==, before);
    g_assert_false (g_file_test (wal_path, G_FILE_TEST_EXISTS));
  }
}

/* A WAL-mode copy without a -wal file, as sqlite3's .backup writes one, is
 * read without making -wal or -shm files beside it, which a reader of a
 * folder it may not write could not make. */
static void
test_ctl_audit_reading_wal_backup_makes_no_files (Fixture *fixture, gconstpointer data)
{
  g_autofree char *wal_path = g_strconcat (fixture->db_path, "-wal", NULL);
  g_autofree char *shm_path = g_strconcat (fixture->db_path, "-shm", NULL);
  const char *const commands[][3] = { { "audit", "verify", NULL }, { "audit", "list", NULL },
                                      { "report", "annual", "--year=2025" } };

  database_exec (fixture->db_path, "PRAGMA journal_mode = WAL");
  g_assert_false (g_file_test (wal_path, G_FILE_TEST_EXISTS));
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++) {
    g_autoptr (CtlResult) result = ctl_run (commands[i][0], commands[i][1], "--db", fixture->db_path,
                                            commands[i][2], NULL);

    g_test_message ("cimshubctl %s %s", commands[i][0], commands[i][1]);
    g_assert_cmpint (result->exit_status, ==, 0);
    g_assert_false (g_file_test (wal_path, G_FILE_TEST_EXISTS));
    g_assert_false (g_file_test (shm_path, G_FILE_TEST_EXISTS));
  }
}

/* Runs verify after @sql removed the audit log, and checks that it reports
 * the log as altered without recreating any of the schema. */
static void
verify_reports_missing_table (Fixture *fixture, const char *sql)
{
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autoptr (CtlResult) result = NULL;

  database_exec (fixture->db_path, sql);
  before = file_dup_sha256 (fixture->db_path);
  result = ctl_run ("audit", "verify", "--db", fixture->db_path, NULL);
  after = file_dup_sha256 (fixture->db_path);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_true (g_str_has_prefix (result->out, "audit log altered: the audit_log table is missing from "));
  g_assert_nonnull (strstr (result->out, fixture->db_path));
  g_assert_cmpstr (result->err, ==, "");
  g_assert_cmpstr (after, ==, before);
}

static void
test_ctl_audit_verify_dropped_table (Fixture *fixture, gconstpointer data)
{
  verify_reports_missing_table (fixture, "DROP TABLE audit_log");
}

/* With user_version 0 a read-write open would create the schema anew. */
static void
test_ctl_audit_verify_wiped_schema (Fixture *fixture, gconstpointer data)
{
  verify_reports_missing_table (fixture, "DROP TABLE audit_log; DROP TABLE grants; DROP TABLE incidents; "
                                "DROP TABLE archive_requests; PRAGMA user_version = 0");
}

static void
test_ctl_audit_verify_empty_log (Fixture *fixture, gconstpointer data)
{
  g_autoptr (CtlResult) result = NULL;

  database_exec (fixture->db_path, "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log");
  result = ctl_run ("audit", "verify", "--db", fixture->db_path, NULL);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_true (g_str_has_prefix (result->out, "audit log altered: the audit_log table has no records."));
  g_assert_cmpstr (result->err, ==, "");
}

/* A file that is not a database is a failure to read it, not an altered log. */
static void
test_ctl_audit_verify_not_a_database (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CtlResult) result = NULL;
  char junk[4096];

  memset (junk, 'x', sizeof junk);
  g_file_set_contents (fixture->db_path, junk, sizeof junk, &error);
  g_assert_no_error (error);
  result = ctl_run ("audit", "verify", "--db", fixture->db_path, NULL);

  g_assert_cmpint (result->exit_status, ==, 3);
  g_assert_cmpstr (result->out, ==, "");
  g_assert_nonnull (strstr (result->err, fixture->db_path));
  g_assert_nonnull (strstr (result->err, "not a database"));
}

/* The current anchor and an older record's hash both pass, each named on
 * its own line. Hex digits in upper case are accepted. */
static void
test_ctl_audit_verify_expect_passes (Fixture *fixture, gconstpointer data)
{
  g_autofree char *anchor = verify_dup_anchor (fixture);
  g_autofree char *hash_3 = store_dup_record_hash (fixture->db_path, 3);
  g_autofree char *hash_3_upper = g_ascii_strup (hash_3, -1);
  g_autofree char *expect_3 = g_strconcat ("3:", hash_3_upper, NULL);
  g_autoptr (CtlResult) result = ctl_run ("audit", "verify", "--db", fixture->db_path, "--expect", anchor,
                                          "--expect", expect_3, NULL);

  g_assert_cmpint (result->exit_status, ==, 0);
  g_assert_true (g_str_has_prefix (result->out, "audit log intact: 6 records\n"));
  g_assert_nonnull (strstr (result->out, "\nrecord 6 matches --expect\n"));
  g_assert_nonnull (strstr (result->out, "\nrecord 3 matches --expect\n"));
  g_assert_cmpstr (result->err, ==, "");
}

/* The shorter chain is whole, so only the kept anchor shows the cut. */
static void
test_ctl_audit_verify_expect_detects_cut (Fixture *fixture, gconstpointer data)
{
  g_autofree char *anchor = verify_dup_anchor (fixture);
  g_autoptr (CtlResult) plain = NULL;
  g_autoptr (CtlResult) result = NULL;

  database_exec (fixture->db_path, "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE sequence >= 5");
  plain = ctl_run ("audit", "verify", "--db", fixture->db_path, NULL);
  result = ctl_run ("audit", "verify", "--db", fixture->db_path, "--expect", anchor, NULL);

  g_assert_cmpint (plain->exit_status, ==, 0);
  g_assert_true (g_str_has_prefix (plain->out, "audit log intact: 4 records\n"));

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_cmpstr (result->out, ==, "audit log altered: the log ends at record 4, but --expect names record 6, "
                   "so the newest records were cut off or the file was replaced by an older copy\n");
}

/* A chain recomputed after an edit verifies on its own. The kept anchor
 * shows the rewrite. */
static void
test_ctl_audit_verify_expect_detects_rewrite (Fixture *fixture, gconstpointer data)
{
  g_autofree char *anchor = verify_dup_anchor (fixture);
  g_autofree char *new_hash = NULL;
  g_autofree char *message = NULL;
  g_autoptr (CtlResult) plain = NULL;
  g_autoptr (CtlResult) result = NULL;

  database_rewrite_chain (fixture->db_path, 3);
  new_hash = store_dup_record_hash (fixture->db_path, N_RECORDS);
  plain = ctl_run ("audit", "verify", "--db", fixture->db_path, NULL);
  result = ctl_run ("audit", "verify", "--db", fixture->db_path, "--expect", anchor, NULL);

  g_assert_cmpint (plain->exit_status, ==, 0);
  g_assert_true (g_str_has_prefix (plain->out, "audit log intact: 6 records\n"));

  g_assert_cmpint (result->exit_status, ==, 1);
  message = g_strdup_printf ("audit log altered: record 6 has chain hash %s, but --expect names %s, so the chain "
                             "was rewritten at or before record 6, or the log was cut or replaced by an older "
                             "copy and a hub then wrote new records under the same numbers\n", new_hash,
                             anchor + strlen ("6:"));
  g_assert_cmpstr (result->out, ==, message);
}

static void
test_ctl_audit_verify_rejects_bad_expect (Fixture *fixture, gconstpointer data)
{
  g_autofree char *hash = store_dup_record_hash (fixture->db_path, 1);
  g_autofree char *short_hash = g_strndup (hash, strlen (hash) - 1);
  g_autofree char *bad_digit = g_strdup (hash);
  g_autoptr (GPtrArray) values = g_ptr_array_new_with_free_func (g_free);

  bad_digit[10] = 'g';
  g_ptr_array_add (values, g_strdup ("6"));
  g_ptr_array_add (values, g_strdup ("6:"));
  g_ptr_array_add (values, g_strconcat (":", hash, NULL));
  g_ptr_array_add (values, g_strconcat ("0:", hash, NULL));
  g_ptr_array_add (values, g_strconcat ("-1:", hash, NULL));
  g_ptr_array_add (values, g_strconcat ("+1:", hash, NULL));
  g_ptr_array_add (values, g_strconcat ("x:", hash, NULL));
  g_ptr_array_add (values, g_strconcat ("1:", short_hash, NULL));
  g_ptr_array_add (values, g_strconcat ("1:", bad_digit, NULL));
  g_ptr_array_add (values, g_strconcat ("1:", hash, ":2", NULL));

  for (guint i = 0; i < values->len; i++) {
    const char *value = g_ptr_array_index (values, i);
    g_autoptr (CtlResult) result = ctl_run ("audit", "verify", "--db", fixture->db_path, "--expect", value, NULL);
    g_autofree char *message = g_strdup_printf ("--expect \"%s\" is invalid", value);

    g_assert_cmpint (result->exit_status, ==, 2);
    g_assert_cmpstr (result->out, ==, "");
    g_assert_nonnull (strstr (result->err, message));
  }
}

static void
test_ctl_audit_verify_edited_record (Fixture *fixture, gconstpointer data)
{
  g_autoptr (CtlResult) result = NULL;
  const char *newline;

  database_tamper (fixture->db_path, "UPDATE audit_log SET duration_ms = 1 WHERE sequence = 3");
  result = ctl_run ("audit", "verify", "--db", fixture->db_path, NULL);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_true (g_str_has_prefix (result->out, "audit log altered: record 3 "));
  newline = strchr (result->out, '\n');
  g_assert_nonnull (newline);
  g_assert_cmpint (newline[1], ==, '\0');
}

static void
test_ctl_audit_verify_deleted_record (Fixture *fixture, gconstpointer data)
{
  g_autoptr (CtlResult) result = NULL;

  database_tamper (fixture->db_path, "DELETE FROM audit_log WHERE sequence = 5");
  result = ctl_run ("audit", "verify", "--db", fixture->db_path, NULL);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_true (g_str_has_prefix (result->out, "audit log altered: record 5 "));
}

static void
test_ctl_audit_verify_missing_database (Fixture *fixture, gconstpointer data)
{
  g_autofree char *missing = g_build_filename (fixture->dir, "missing.db", NULL);
  g_autoptr (CtlResult) result = ctl_run ("audit", "verify", "--db", missing, NULL);
  g_autoptr (CtlResult) usage = ctl_run ("audit", "verify", NULL);

  g_assert_cmpint (result->exit_status, ==, 3);
  g_assert_nonnull (strstr (result->err, "no such file"));
  g_assert_false (g_file_test (missing, G_FILE_TEST_EXISTS));
  g_assert_cmpint (usage->exit_status, ==, 2);
}

static void
test_ctl_audit_list_filters (Fixture *fixture, gconstpointer data)
{
  g_autoptr (CtlResult) result = ctl_run ("audit", "list", "--db", fixture->db_path, "--json",
                                          "--jurisdiction", "chelsea", NULL);
  g_autoptr (CtlResult) limited = ctl_run ("audit", "list", "--db", fixture->db_path, "--json",
                                           "--limit", "2", NULL);
  g_autoptr (CtlResult) table = ctl_run ("audit", "list", "--db", fixture->db_path, "--event",
                                         "grant-created", NULL);
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (JsonNode) limited_root = NULL;
  JsonArray *records;

  g_assert_cmpint (result->exit_status, ==, 0);
  root = json_from_string (result->out, NULL);
  g_assert_nonnull (root);
  records = json_object_get_array_member (json_node_get_object (root), "records");
  g_assert_cmpuint (json_array_get_length (records), ==, 2);
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (records, 0), "person_id"), ==,
                   "c1");
  g_assert_false (json_object_get_boolean_member (json_node_get_object (root), "truncated"));

  limited_root = json_from_string (limited->out, NULL);
  g_assert_nonnull (limited_root);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (json_node_get_object (limited_root),
                                                                         "records")), ==, 2);
  g_assert_true (json_object_get_boolean_member (json_node_get_object (limited_root), "truncated"));

  g_assert_cmpint (table->exit_status, ==, 0);
  g_assert_nonnull (strstr (table->out, "grant-created"));
  g_assert_null (strstr (table->out, "session-start"));
}

/* A misspelt event is an error that lists the known ones, not an empty
 * list. */
static void
test_ctl_audit_list_rejects_unknown_event (Fixture *fixture, gconstpointer data)
{
  g_autoptr (CtlResult) result = ctl_run ("audit", "list", "--db", fixture->db_path, "--event", "session_start",
                                          NULL);

  g_assert_cmpint (result->exit_status, ==, 2);
  g_assert_cmpstr (result->out, ==, "");
  g_assert_nonnull (strstr (result->err, "--event \"session_start\" is not an audit event"));
  g_assert_nonnull (strstr (result->err, "session-start"));
  g_assert_nonnull (strstr (result->err, "archive-denied"));
}

/* Returns: (transfer full) (nullable): the SESSION cell of the table row
 * whose SEQ is @sequence, or of the header for 0, or NULL without one. */
static char *
table_dup_session_cell (const char *table, guint sequence)
{
  g_auto (GStrv) lines = g_strsplit (table, "\n", -1);
  g_autofree char *first_cell = sequence > 0 ? g_strdup_printf ("%u", sequence) : g_strdup ("SEQ");

  for (guint i = 0; lines[i] != NULL; i++) {
    g_auto (GStrv) cells = g_regex_split_simple (" +", lines[i], 0, 0);

    if (g_strv_length (cells) > 3 && g_str_equal (cells[0], first_cell))
      return g_strdup (cells[3]);
  }
  return NULL;
}

/* The start and stop records of one session show the same id, so an
 * auditor can pair them. */
static void
test_ctl_audit_list_shows_session (Fixture *fixture, gconstpointer data)
{
  const struct {
    guint sequence;
    const char *cell;
  } rows[] = {
    { 0, "SESSION" }, { 1, "-" }, { 2, B1_SESSION_ID }, { 3, B1_SESSION_ID }, { 4, "-" },
    { 5, C1_SESSION_ID }, { 6, C1_SESSION_ID },
  };
  g_autoptr (CtlResult) table = ctl_run ("audit", "list", "--db", fixture->db_path, NULL);
  g_autoptr (CtlResult) json = ctl_run ("audit", "list", "--db", fixture->db_path, "--json", NULL);
  g_autoptr (JsonNode) root = NULL;
  JsonArray *records;

  g_assert_cmpint (table->exit_status, ==, 0);
  for (gsize i = 0; i < G_N_ELEMENTS (rows); i++) {
    g_autofree char *cell = table_dup_session_cell (table->out, rows[i].sequence);

    g_assert_cmpstr (cell, ==, rows[i].cell);
  }

  g_assert_cmpint (json->exit_status, ==, 0);
  root = json_from_string (json->out, NULL);
  g_assert_nonnull (root);
  records = json_object_get_array_member (json_node_get_object (root), "records");
  g_assert_true (json_object_get_null_member (json_array_get_object_element (records, 0), "session_id"));
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (records, 1), "session_id"), ==,
                   B1_SESSION_ID);
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (records, 2), "session_id"), ==,
                   B1_SESSION_ID);
}

/* A valid configuration locates the database without a warning. */
static void
test_ctl_audit_reads_valid_config (Fixture *fixture, gconstpointer data)
{
  g_autoptr (CtlResult) result = NULL;

  config_write (fixture, NULL, NULL);
  result = ctl_run ("audit", "verify", "--config", fixture->config_path, NULL);

  g_assert_cmpint (result->exit_status, ==, 0);
  g_assert_true (g_str_has_prefix (result->out, "audit log intact: 6 records\n"));
  g_assert_cmpstr (result->err, ==, "");
}

/* A typo in a camera entry does not stop an audit. The state_dir still
 * locates the database, and a warning names the problem and the database. */
static void
test_ctl_audit_reads_invalid_config (Fixture *fixture, gconstpointer data)
{
  g_autoptr (CtlResult) verify = NULL;
  g_autoptr (CtlResult) list = NULL;

  config_write (fixture, "location = \"A\"", "lcoation = \"A\"");
  verify = ctl_run ("audit", "verify", "--config", fixture->config_path, NULL);
  list = ctl_run ("audit", "list", "--config", fixture->config_path, NULL);

  g_assert_cmpint (verify->exit_status, ==, 0);
  g_assert_true (g_str_has_prefix (verify->out, "audit log intact: 6 records\n"));
  g_assert_nonnull (strstr (verify->err, "is invalid, and cimshub would not load it"));
  g_assert_nonnull (strstr (verify->err, "unknown setting \"lcoation\""));
  g_assert_nonnull (strstr (verify->err, fixture->db_path));

  g_assert_cmpint (list->exit_status, ==, 0);
  g_assert_nonnull (strstr (list->out, "session-start"));
  g_assert_nonnull (strstr (list->err, "unknown setting \"lcoation\""));
}

/* Without a readable state_dir the error names the problem and points to
 * --db. */
static void
test_ctl_audit_config_without_state_dir (Fixture *fixture, gconstpointer data)
{
  g_autoptr (CtlResult) result = NULL;

  config_write (fixture, "  state_dir = \".\";\n", "");
  result = ctl_run ("audit", "list", "--config", fixture->config_path, NULL);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_cmpstr (result->out, ==, "");
  g_assert_nonnull (strstr (result->err, "missing required setting \"state_dir\""));
  g_assert_nonnull (strstr (result->err, "--db STATE_DIR/cimshub.db"));
}

/* --db makes the audit subcommands skip the configuration. */
static void
test_ctl_audit_db_skips_config (Fixture *fixture, gconstpointer data)
{
  g_autoptr (CtlResult) result = NULL;

  config_write (fixture, "hub: {", "hub: {{");
  result = ctl_run ("audit", "verify", "--config", fixture->config_path, "--db", fixture->db_path, NULL);

  g_assert_cmpint (result->exit_status, ==, 0);
  g_assert_true (g_str_has_prefix (result->out, "audit log intact: 6 records\n"));
  g_assert_cmpstr (result->err, ==, "");
}

static void
test_ctl_report_annual_csv (Fixture *fixture, gconstpointer data)
{
  g_autofree char *output = g_build_filename (fixture->dir, "report.csv", NULL);
  g_autoptr (CtlResult) result = ctl_run ("report", "annual", "--year", "2025", "--format", "csv", "--db",
                                          fixture->db_path, "--output", output, NULL);
  g_autoptr (CtlResult) bad_year = ctl_run ("report", "annual", "--year", "99", "--db", fixture->db_path, NULL);
  g_autofree char *csv = NULL;

  g_assert_cmpint (result->exit_status, ==, 0);
  g_assert_true (g_file_get_contents (output, &csv, NULL, NULL));
  g_assert_nonnull (strstr (csv, "\r\nboston,boston,1,0.02,60000\r\n"));
  g_assert_nonnull (strstr (csv, "\r\nchelsea,chelsea,1,0.02,60000\r\n"));
  g_assert_cmpint (bad_year->exit_status, ==, 2);
  g_unlink (output);
}

/* A log with an audit-log-mismatch record still verifies, but verify
 * names that record, since it may mark a replaced log. */
static void
test_ctl_audit_verify_names_mismatch_record (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsStore) store = cims_store_sqlite_open (fixture->db_path, &error);
  g_autoptr (CimsAuditRecord) record = g_new0 (CimsAuditRecord, 1);
  g_autoptr (CtlResult) result = NULL;

  g_assert_no_error (error);
  record->time_ms = G_GINT64_CONSTANT (1740787200000) + N_RECORDS * 60000;
  record->event = g_strdup ("audit-log-mismatch");
  record->reason = g_strdup ("checkpoint-missing");
  g_assert_true (cims_store_audit_append (store, record, &error));
  g_clear_pointer (&store, cims_store_free);

  result = ctl_run ("audit", "verify", "--db", fixture->db_path, NULL);

  g_assert_cmpint (result->exit_status, ==, 0);
  g_assert_nonnull (strstr (result->out, "warning: record 7 (audit-log-mismatch, checkpoint-missing): "));
}

/* The table names each record's grant and incident, and reports on stderr
 * when the limit cut the list, as the JSON form's "truncated" does. */
static void
test_ctl_audit_list_table_says_truncated (Fixture *fixture, gconstpointer data)
{
  g_autoptr (CtlResult) limited = ctl_run ("audit", "list", "--db", fixture->db_path, "--limit", "3", NULL);
  g_autoptr (CtlResult) whole = ctl_run ("audit", "list", "--db", fixture->db_path, NULL);

  g_assert_cmpint (limited->exit_status, ==, 0);
  g_assert_nonnull (strstr (limited->out, " GRANT "));
  g_assert_nonnull (strstr (limited->out, " INCIDENT "));
  g_assert_nonnull (strstr (limited->err, "more records match than the 3 listed"));
  g_assert_cmpint (whole->exit_status, ==, 0);
  g_assert_cmpstr (whole->err, ==, "");
}

/* A grants row without an id, which the schema allows, is reported as a
 * difference and does not crash verify. */
static void
test_ctl_audit_verify_row_without_id (Fixture *fixture, gconstpointer data)
{
  g_autoptr (CtlResult) result = NULL;

  database_exec (fixture->db_path, "INSERT INTO grants (id, owner, grantee_kind, grantee, starts_at_us, "
                 "ends_at_us, purpose, authorized_by, authorized_at_us) VALUES (NULL, 'boston', 'jurisdiction', "
                 "'chelsea', 0, 1, 'forged', 'nobody', 0)");
  result = ctl_run ("audit", "verify", "--db", fixture->db_path, NULL);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_nonnull (strstr (result->out, "state tables altered: a row of the grants table has no id\n"));
}

/* A report over an altered log is still written, states that at its top, and
 * the command warns on stderr and exits 1. */
static void
test_ctl_report_annual_altered_log (Fixture *fixture, gconstpointer data)
{
  g_autoptr (CtlResult) result = NULL;

  database_exec (fixture->db_path, "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE sequence = 3");
  result = ctl_run ("report", "annual", "--year", "2025", "--format", "csv", "--db", fixture->db_path, NULL);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_nonnull (strstr (result->out, "\r\nAudit log integrity\r\n"));
  g_assert_nonnull (strstr (result->out, "WARNING: the audit log was altered"));
  g_assert_nonnull (strstr (result->err, "warning: the audit log was altered at record 3"));
}

/* Each bad option exits 2 with a message that names the value. */
/* The long form is one table with a row per figure. */
static void
test_ctl_report_annual_csv_long (Fixture *fixture, gconstpointer data)
{
  g_autoptr (CtlResult) result = ctl_run ("report", "annual", "--year", "2025", "--format", "csv-long", "--db",
                                          fixture->db_path, NULL);

  g_assert_cmpint (result->exit_status, ==, 0);
  g_assert_true (g_str_has_prefix (result->out, "table,jurisdiction,name,measure,value\r\nsummary,,,year,2025\r\n"));
  g_assert_nonnull (strstr (result->out, "\r\nviewing,boston,boston,sessions,1\r\n"));
  g_assert_nonnull (strstr (result->out, "\r\nviewing,boston,boston,viewing_ms,60000\r\n"));
  g_assert_nonnull (strstr (result->out, "\r\nviewing,total,"));
  g_assert_nonnull (strstr (result->out, "\r\nmonthly,chelsea,chelsea,2025-"));
  g_assert_null (strstr (result->out, "\r\n\r\n"));
}

static void
test_ctl_report_annual_rejects_bad_options (Fixture *fixture, gconstpointer data)
{
  const struct {
    const char *year;
    const char *format;
    const char *message;
  } cases[] = {
    { "0", "json", "--year 0 is out of range (2000 to 9999)" },
    { "-1", "json", "--year -1 is out of range (2000 to 9999)" },
    { "10000", "json", "--year 10000 is out of range (2000 to 9999)" },
    { "1999", "json", "--year 1999 is out of range (2000 to 9999)" },
    { "2025x", "json", "--year \"2025x\" is not a year" },
    { "2025", "pdf", "--format \"pdf\" is invalid: use json, csv, csv-long or html" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (CtlResult) result = ctl_run ("report", "annual", "--year", cases[i].year, "--format",
                                            cases[i].format, "--db", fixture->db_path, NULL);

    g_assert_cmpint (result->exit_status, ==, 2);
    g_assert_nonnull (strstr (result->err, cases[i].message));
    g_assert_cmpstr (result->out, ==, "");
  }
}

static void
add_test (const char *path, void (*func) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  cimshubctl_path = g_getenv ("CIMSHUBCTL");
  if (cimshubctl_path == NULL) {
    g_printerr ("CIMSHUBCTL must name the cimshubctl binary to test\n");
    return 1;
  }

  add_test ("/cimshubctl/audit/verify-intact", test_ctl_audit_verify_intact);
  add_test ("/cimshubctl/audit/verify-edited-record", test_ctl_audit_verify_edited_record);
  add_test ("/cimshubctl/audit/verify-deleted-record", test_ctl_audit_verify_deleted_record);
  add_test ("/cimshubctl/audit/verify-missing-database", test_ctl_audit_verify_missing_database);
  add_test ("/cimshubctl/audit/reading-leaves-file-unchanged", test_ctl_audit_reading_leaves_file_unchanged);
  add_test ("/cimshubctl/audit/verify-dropped-table", test_ctl_audit_verify_dropped_table);
  add_test ("/cimshubctl/audit/verify-wiped-schema", test_ctl_audit_verify_wiped_schema);
  add_test ("/cimshubctl/audit/verify-empty-log", test_ctl_audit_verify_empty_log);
  add_test ("/cimshubctl/audit/verify-not-a-database", test_ctl_audit_verify_not_a_database);
  add_test ("/cimshubctl/audit/verify-expect-passes", test_ctl_audit_verify_expect_passes);
  add_test ("/cimshubctl/audit/verify-expect-detects-cut", test_ctl_audit_verify_expect_detects_cut);
  add_test ("/cimshubctl/audit/verify-expect-detects-rewrite", test_ctl_audit_verify_expect_detects_rewrite);
  add_test ("/cimshubctl/audit/verify-rejects-bad-expect", test_ctl_audit_verify_rejects_bad_expect);
  add_test ("/cimshubctl/audit/list-filters", test_ctl_audit_list_filters);
  add_test ("/cimshubctl/audit/list-rejects-unknown-event", test_ctl_audit_list_rejects_unknown_event);
  add_test ("/cimshubctl/audit/list-shows-session", test_ctl_audit_list_shows_session);
  add_test ("/cimshubctl/audit/reads-valid-config", test_ctl_audit_reads_valid_config);
  add_test ("/cimshubctl/audit/reads-invalid-config", test_ctl_audit_reads_invalid_config);
  add_test ("/cimshubctl/audit/config-without-state-dir", test_ctl_audit_config_without_state_dir);
  add_test ("/cimshubctl/audit/db-skips-config", test_ctl_audit_db_skips_config);
  add_test ("/cimshubctl/report/annual-csv", test_ctl_report_annual_csv);
  add_test ("/cimshubctl/report/annual-csv-long", test_ctl_report_annual_csv_long);
  add_test ("/cimshubctl/report/annual-altered-log", test_ctl_report_annual_altered_log);
  add_test ("/cimshubctl/audit/verify-row-without-id", test_ctl_audit_verify_row_without_id);
  add_test ("/cimshubctl/audit/list-table-says-truncated", test_ctl_audit_list_table_says_truncated);
  add_test ("/cimshubctl/audit/reading-wal-backup-makes-no-files", test_ctl_audit_reading_wal_backup_makes_no_files);
  add_test ("/cimshubctl/audit/verify-names-mismatch-record", test_ctl_audit_verify_names_mismatch_record);
  add_test ("/cimshubctl/report/annual-rejects-bad-options", test_ctl_report_annual_rejects_bad_options);
  return g_test_run ();
}
