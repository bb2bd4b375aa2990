/* SPDX-License-Identifier: Apache-2.0 */
/* Crash recovery of the audit log: a heartbeat file records when the hub
 * was last alive, and at the next start every session that has a start
 * record but no stop record gets a stop with reason "hub-crash-recovered".
 * Where the walk over the log starts is recovery-checkpoint.c. */
#include "hub/hub-runtime.h"

#include <stdlib.h>

#define HEARTBEAT_INTERVAL_S 2

/* Beside the open store, which a reload that changes state_dir keeps. */
static char *
heartbeat_path (CimsHub *hub)
{
  g_autofree char *folder = g_path_get_dirname (hub->store_path);

  return g_build_filename (folder, "heartbeat", NULL);
}

static gboolean
heartbeat_cb (gpointer user_data)
{
  CimsHub *hub = user_data;
  g_autofree char *path = heartbeat_path (hub);
  g_autofree char *text = g_strdup_printf ("%" G_GINT64_FORMAT "\n", g_get_real_time () / 1000);
  g_autoptr (GError) error = NULL;

  if (!g_file_set_contents (path, text, -1, &error))
    g_warning ("cannot write the heartbeat file: %s", error->message);
  return G_SOURCE_CONTINUE;
}

void
cims_hub_heartbeat_start (CimsHub *hub)
{
  heartbeat_cb (hub);
  hub->heartbeat_id = g_timeout_add_seconds (HEARTBEAT_INTERVAL_S, heartbeat_cb, hub);
}

/* Returns the last heartbeat in UTC milliseconds, or 0 when unknown. */
static gint64
heartbeat_read (CimsHub *hub)
{
  g_autofree char *path = heartbeat_path (hub);
  g_autofree char *text = NULL;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return 0;

  return g_ascii_strtoll (text, NULL, 10);
}

/* Appends the hub-crash-recovered stop of @start. Returns the stop's
 * sequence, or 0 when it could not be written (logged and counted). */
static guint64
recover_session (CimsHub *hub, const CimsAuditRecord *start, gint64 last_alive_ms)
{
  g_autoptr (CimsAuditRecord) stop = g_new0 (CimsAuditRecord, 1);
  g_autoptr (GError) error = NULL;
  gint64 end_ms = MAX (last_alive_ms, start->time_ms);

  stop->event = g_strdup ("session-stop");
  stop->time_ms = g_get_real_time () / 1000;
  stop->person_id = g_strdup (start->person_id);
  stop->person_name = g_strdup (start->person_name);
  stop->person_jurisdiction = g_strdup (start->person_jurisdiction);
  stop->camera_id = g_strdup (start->camera_id);
  stop->camera_owner = g_strdup (start->camera_owner);
  stop->camera_location = g_strdup (start->camera_location);
  stop->session_id = g_strdup (start->session_id);
  stop->grant_id = g_strdup (start->grant_id);
  stop->incident_id = g_strdup (start->incident_id);
  stop->incident_number = g_strdup (start->incident_number);
  stop->viewer_address = g_strdup (start->viewer_address);
  stop->client_version = g_strdup (start->client_version);
  stop->reason = g_strdup ("hub-crash-recovered");
  stop->duration_ms = end_ms - start->time_ms;
  stop->details = g_strdup_printf ("{\"last_known_alive_ms\":%" G_GINT64_FORMAT "}", end_ms);

  if (!cims_store_audit_append (hub->store, stop, &error)) {
    CIMS_METRIC_ADD (hub, audit_failures, 1);
    g_warning ("session=%s camera=%s jurisdiction=%s: cannot record its crash-recovery stop: %s",
               start->session_id, start->camera_id, start->person_jurisdiction, error->message);
    return 0;
  }

  g_message ("session=%s camera=%s jurisdiction=%s: was open when the hub stopped; recorded its "
             "stop as hub-crash-recovered", start->session_id, start->camera_id,
             start->person_jurisdiction);
  return stop->sequence;
}

/* The state of one walk over the session records of the audit log. */
typedef struct {
  GHashTable *open;             /* session id -> its start record (CimsAuditRecord) */
  guint64 n_records;            /* session records read */
  guint64 last_sequence;        /* of the last one read, 0 before the first */
} RecoveryWalk;

/* Takes one session record, in sequence order. A start opens its session
 * and a stop closes it. A stop whose start came before the walk's first
 * record finds nothing to close, and a later start of the same session id
 * opens it again. Runs with the store locked, so it only touches @walk. */
static gboolean
walk_record_cb (const CimsAuditRecord *record, gpointer user_data)
{
  RecoveryWalk *walk = user_data;

  walk->n_records++;
  walk->last_sequence = record->sequence;
  if (record->session_id == NULL)
    return TRUE;

  if (g_str_equal (record->event, "session-start"))
    g_hash_table_replace (walk->open, g_strdup (record->session_id), cims_audit_record_copy (record));
  else
    g_hash_table_remove (walk->open, record->session_id);
  return TRUE;
}

static int
record_compare_by_sequence (gconstpointer a, gconstpointer b)
{
  const CimsAuditRecord *first = *(const CimsAuditRecord *const *) a;
  const CimsAuditRecord *second = *(const CimsAuditRecord *const *) b;

  return first->sequence < second->sequence ? -1 : first->sequence > second->sequence;
}

/* Returns (transfer container) the start records of the sessions still open
 * after the walk, oldest first. */
static GPtrArray *
walk_open_sessions (RecoveryWalk *walk)
{
  GPtrArray *starts = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer start;

  g_hash_table_iter_init (&iter, walk->open);
  while (g_hash_table_iter_next (&iter, NULL, &start))
    g_ptr_array_add (starts, start);

  g_ptr_array_sort (starts, record_compare_by_sequence);
  return starts;
}

/* Appends a stop for every session still open after @walk, in the order
 * they started. Returns the sequence of the last stop written, 0 when there
 * was none, and sets *n_failed to the stops that could not be written. */
static guint64
recover_open_sessions (CimsHub *hub, RecoveryWalk *walk, guint *n_failed)
{
  g_autoptr (GPtrArray) starts = walk_open_sessions (walk);
  gint64 last_alive_ms = heartbeat_read (hub);
  guint64 last_stop_sequence = 0;

  *n_failed = 0;
  for (guint i = 0; i < starts->len; i++) {
    guint64 stop_sequence = recover_session (hub, g_ptr_array_index (starts, i), last_alive_ms);

    if (stop_sequence == 0)
      (*n_failed)++;
    last_stop_sequence = MAX (last_stop_sequence, stop_sequence);
  }

  return last_stop_sequence;
}

/* Memory grows with the sessions open at the end of the walk, not with the
 * log, because each stop removes its start from the table. The stops are
 * appended after the walk, because the walk's callback runs with the
 * store's lock held.
 * NOTE: after a crash, recovery reads every session record since the last
 * checkpoint, which only a start-up recovery and a clean stop write, so
 * start-up time after a crash grows with the records of the run that
 * crashed. */
void
cims_hub_recover_sessions (CimsHub *hub)
{
  static const char *const session_events[] = { "session-start", "session-stop", NULL };
  g_autoptr (GHashTable) open = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                      (GDestroyNotify) cims_audit_record_free);
  RecoveryWalk walk = { open, 0, 0 };
  CimsAuditFilter filter = { .events = session_events };
  g_autoptr (GError) error = NULL;
  guint64 checkpoint = cims_hub_recovery_checkpoint_load (hub);
  guint64 last_stop_sequence;
  guint n_open;
  guint n_failed;

  hub->recovery_checkpoint = checkpoint;
  filter.from_sequence = checkpoint + 1;
  if (!cims_store_audit_foreach (hub->store, &filter, walk_record_cb, &walk, NULL, &error)) {
    g_warning ("cannot read the audit log to recover open sessions: %s", error->message);
    return;
  }

  n_open = g_hash_table_size (open);
  last_stop_sequence = recover_open_sessions (hub, &walk, &n_failed);
  g_message ("crash recovery read %" G_GUINT64_FORMAT " session records after sequence %"
             G_GUINT64_FORMAT ": %u sessions were open, %u of them got a hub-crash-recovered stop",
             walk.n_records, checkpoint, n_open, n_open - n_failed);

  /* A session whose stop could not be written is still open in the log,
   * so the checkpoint must stay before its start. */
  if (n_failed > 0)
    return;

  hub->is_recovery_complete = TRUE;
  if (MAX (walk.last_sequence, last_stop_sequence) > checkpoint)
    cims_hub_recovery_checkpoint_write (hub, MAX (walk.last_sequence, last_stop_sequence));
}
