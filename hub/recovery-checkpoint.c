/* SPDX-License-Identifier: Apache-2.0 */
/* The recovery checkpoint: a file beside the state database naming a
 * sequence S of the audit log, and record S's hash, such that every session
 * that started at or before S has its stop at or before S. Crash recovery
 * (recovery.c) then reads only the records after S. */
#include "hub/hub-runtime.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>

/* Length of the hex SHA-256 of a record, as the store writes it. */
#define RECORD_HASH_LEN 64

/* The file is one line, "SEQUENCE HASH\n". It is beside the database file
 * (and the heartbeat file) rather than a row of the store, so the schema
 * stays as it is. The hash ties it to one log: a database restored from a
 * backup or replaced by another one does not match, and recovery then
 * reads the whole log. The folder is the open database's, not state_dir,
 * because a reload may change state_dir but keeps the store it opened. */
static char *
checkpoint_path (CimsHub *hub)
{
  g_autofree char *folder = g_path_get_dirname (hub->store_path);

  return g_build_filename (folder, "recovery-checkpoint", NULL);
}

static gboolean
hash_is_valid (const char *hash)
{
  if (strlen (hash) != RECORD_HASH_LEN)
    return FALSE;

  for (const char *c = hash; *c != '\0'; c++) {
    if (!g_ascii_isxdigit (*c) || g_ascii_isupper (*c))
      return FALSE;
  }
  return TRUE;
}

/* Splits @text into a sequence of at least 1 and a hash. */
static gboolean
checkpoint_parse (const char *text, guint64 *sequence, char **hash)
{
  g_autofree char *line = g_strchomp (g_strdup (text));
  g_auto (GStrv) fields = g_strsplit (line, " ", 3);

  if (g_strv_length (fields) != 2 || !hash_is_valid (fields[1]))
    return FALSE;

  if (!g_ascii_string_to_unsigned (fields[0], 10, 1, G_MAXINT64, sequence, NULL))
    return FALSE;

  *hash = g_strdup (fields[1]);
  return TRUE;
}

/* Reads record @sequence from the log. Returns (transfer full) the record,
 * or NULL when the log has no such record (with @error unset) or cannot be
 * read (with @error set). */
static CimsAuditRecord *
record_read (CimsHub *hub, guint64 sequence, GError **error)
{
  CimsAuditFilter filter = { .from_sequence = sequence, .limit = 1 };
  g_autoptr (GPtrArray) records = cims_store_audit_query (hub->store, &filter, error);
  CimsAuditRecord *record;

  if (records == NULL || records->len == 0)
    return NULL;

  record = g_ptr_array_index (records, 0);
  if (record->sequence != sequence)
    return NULL;

  return g_ptr_array_steal_index (records, 0);
}

/* How the log compares with a checkpoint. */
typedef enum {
  CHECKPOINT_MATCHES,
  CHECKPOINT_LOG_UNREADABLE,
  CHECKPOINT_RECORD_MISSING,    /* the log ends before the checkpoint */
  CHECKPOINT_HASH_DIFFERS,      /* the log has another record there */
} CheckpointMatch;

/* Checks that the log contains record @sequence with @hash. Otherwise sets
 * @reason (transfer full) to how it differs, and @log_hash (transfer full)
 * to the log's hash of that record when it has one. */
static CheckpointMatch
checkpoint_match_log (CimsHub *hub, guint64 sequence, const char *hash, char **reason, char **log_hash)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsAuditRecord) record = record_read (hub, sequence, &error);

  if (error != NULL) {
    *reason = g_strdup_printf ("but the audit log cannot be read: %s", error->message);
    return CHECKPOINT_LOG_UNREADABLE;
  }

  if (record == NULL) {
    *reason = g_strdup ("which the audit log does not contain (a database older than the "
                        "checkpoint, such as one restored from a backup?)");
    return CHECKPOINT_RECORD_MISSING;
  }

  if (g_strcmp0 (record->hash, hash) != 0) {
    *reason = g_strdup_printf ("but the audit log's record has hash %s (a different or restored "
                               "database?)", record->hash);
    *log_hash = g_strdup (record->hash);
    return CHECKPOINT_HASH_DIFFERS;
  }

  return CHECKPOINT_MATCHES;
}

/* Renames the checkpoint file at @path to a name no kept file has yet.
 * Returns (transfer full) the new path, or NULL when it stays. */
static char *
checkpoint_keep (const char *path)
{
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *stamp = g_date_time_format (now, "%Y%m%dT%H%M%SZ");
  g_autofree char *kept_path = g_strdup_printf ("%s.mismatch-%s", path, stamp);

  /* Never over an older kept file: that is evidence too. */
  for (guint n = 2; g_file_test (kept_path, G_FILE_TEST_EXISTS); n++) {
    if (n > 1000)
      return NULL;
    g_free (kept_path);
    kept_path = g_strdup_printf ("%s.mismatch-%s-%u", path, stamp, n);
  }

  if (g_rename (path, kept_path) != 0) {
    g_warning ("cannot keep the mismatched recovery checkpoint as %s: %s", kept_path, g_strerror (errno));
    return NULL;
  }
  return g_steal_pointer (&kept_path);
}

/* Keeps the evidence of a log that no longer matches its checkpoint: an
 * older or different database was put in place, by a restore from backup
 * or by someone hiding records, or the checkpoint was spoilt or deleted.
 * The checkpoint file, if any, is renamed rather than overwritten by the
 * next one, and the log gets an audit-log-mismatch record with @reason
 * that names it, which `cimshubctl audit verify` then reports. @sequence
 * is 0 and @hash NULL when the file named none. */
static void
checkpoint_mismatch_record (CimsHub *hub, const char *path, const char *reason, guint64 sequence,
                            const char *hash, const char *log_hash)
{
  g_autofree char *kept_path = g_file_test (path, G_FILE_TEST_EXISTS) ? checkpoint_keep (path) : NULL;
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *details = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "checkpoint_sequence");
  if (sequence > 0)
    json_builder_add_int_value (builder, (gint64) sequence);
  else
    json_builder_add_null_value (builder);
  cims_hub_json_add_string_or_null (builder, "checkpoint_hash", hash);
  cims_hub_json_add_string_or_null (builder, "log_hash", log_hash);
  cims_hub_json_add_string_or_null (builder, "kept_checkpoint", kept_path);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  details = json_to_string (root, FALSE);

  cims_hub_audit_event (hub, "audit-log-mismatch", NULL, reason, details);
}

/* Tells whether a hub stopped cleanly on this log before: a clean stop
 * writes the checkpoint, so its absence then suggests it was deleted. */
static gboolean
log_has_clean_stop (CimsHub *hub)
{
  CimsAuditFilter filter = { .event = "hub-stopped", .limit = 1 };
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) records = cims_store_audit_query (hub->store, &filter, &error);

  return records != NULL && records->len > 0;
}

guint64
cims_hub_recovery_checkpoint_load (CimsHub *hub)
{
  g_autofree char *path = checkpoint_path (hub);
  g_autofree char *text = NULL;
  g_autofree char *hash = NULL;
  g_autofree char *reason = NULL;
  g_autofree char *log_hash = NULL;
  g_autoptr (GError) error = NULL;
  guint64 sequence = 0;
  CheckpointMatch match;

  if (!g_file_get_contents (path, &text, NULL, &error)) {
    if (!g_error_matches (error, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
      g_warning ("cannot read recovery checkpoint: %s; crash recovery reads the whole audit log",
                 error->message);
    } else if (log_has_clean_stop (hub)) {
      g_warning ("recovery checkpoint %s is missing although a hub stopped cleanly on this audit log, which "
                 "writes it (deleted?): crash recovery reads the whole audit log", path);
      checkpoint_mismatch_record (hub, path, "checkpoint-missing", 0, NULL, NULL);
    } else {
      g_message ("no recovery checkpoint %s: crash recovery reads the whole audit log", path);
    }
    return 0;
  }

  if (!checkpoint_parse (text, &sequence, &hash)) {
    g_autofree char *escaped = g_strescape (text, NULL);

    g_warning ("recovery checkpoint %s is invalid (\"%.160s\", expected \"SEQUENCE HASH\"): crash "
               "recovery reads the whole audit log", path, escaped);
    checkpoint_mismatch_record (hub, path, "checkpoint-invalid", 0, NULL, NULL);
    return 0;
  }

  match = checkpoint_match_log (hub, sequence, hash, &reason, &log_hash);
  if (match != CHECKPOINT_MATCHES) {
    g_warning ("recovery checkpoint %s names record %" G_GUINT64_FORMAT " with hash %s, %s: crash "
               "recovery reads the whole audit log", path, sequence, hash, reason);
    if (match != CHECKPOINT_LOG_UNREADABLE)
      checkpoint_mismatch_record (hub, path,
                                  match == CHECKPOINT_RECORD_MISSING ? "log-ends-before-checkpoint"
                                                                     : "log-differs-at-checkpoint",
                                  sequence, hash, log_hash);
    return 0;
  }

  return sequence;
}

gboolean
cims_hub_recovery_checkpoint_write (CimsHub *hub, guint64 sequence)
{
  g_autofree char *path = checkpoint_path (hub);
  g_autofree char *text = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsAuditRecord) record = record_read (hub, sequence, &error);

  if (record == NULL) {
    g_warning ("recovery checkpoint kept at %" G_GUINT64_FORMAT ": cannot read audit record %"
               G_GUINT64_FORMAT ": %s", hub->recovery_checkpoint, sequence,
               error != NULL ? error->message : "not found");
    return FALSE;
  }

  /* g_file_set_contents() writes a temporary file and renames it over the
   * old one, so a crash leaves the old checkpoint or the new one. */
  text = g_strdup_printf ("%" G_GUINT64_FORMAT " %s\n", sequence, record->hash);
  if (!g_file_set_contents (path, text, -1, &error)) {
    g_warning ("recovery checkpoint kept at %" G_GUINT64_FORMAT ": %s", hub->recovery_checkpoint,
               error->message);
    return FALSE;
  }

  g_debug ("recovery checkpoint moved from %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT,
           hub->recovery_checkpoint, sequence);
  hub->recovery_checkpoint = sequence;
  return TRUE;
}

/* Every session this hub opened has been ended, and session_end appended
 * each stop before the hub-stopped record, so with nothing lost no session
 * is open at or before the last record this hub wrote. Sessions of an
 * earlier run are closed too when the start-up recovery was complete.
 * NOTE: this assumes that only this hub appends session-start records to
 * its log. A start that another process appends and never stops is skipped
 * once the checkpoint moves past it. */
void
cims_hub_recovery_checkpoint_advance (CimsHub *hub)
{
  guint n_open = g_hash_table_size (hub->sessions);

  if (hub->store == NULL || hub->audit_last_sequence <= hub->recovery_checkpoint)
    return;

  if (!hub->is_recovery_complete) {
    g_message ("recovery checkpoint kept at %" G_GUINT64_FORMAT ": the start-up recovery did not "
               "write every stop it needed", hub->recovery_checkpoint);
    return;
  }

  if (hub->n_audit_lost > 0 || n_open > 0) {
    g_warning ("recovery checkpoint kept at %" G_GUINT64_FORMAT ": %u audit records were lost and %u "
               "sessions are still open, so the log may hold a start without a stop",
               hub->recovery_checkpoint, hub->n_audit_lost, n_open);
    return;
  }

  cims_hub_recovery_checkpoint_write (hub, hub->audit_last_sequence);
}
