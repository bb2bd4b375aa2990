/* SPDX-License-Identifier: Apache-2.0 */
/* Crash recovery of the audit log: a heartbeat file records when the hub
 * was last alive, and at the next start every session that has a start
 * record but no stop record gets a stop with reason "hub-crash-recovered". */
#include "hub/hub-runtime.h"

#include <stdlib.h>

#define HEARTBEAT_INTERVAL_S 2

static char *
heartbeat_path (CimsHub *hub)
{
  return g_build_filename (hub->config->state_dir, "heartbeat", NULL);
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

static GHashTable *
sessions_stopped (CimsHub *hub, GError **error)
{
  CimsAuditFilter filter = { .event = "session-stop" };
  g_autoptr (GPtrArray) stops = cims_store_audit_query (hub->store, &filter, error);
  GHashTable *stopped;

  if (stops == NULL)
    return NULL;

  stopped = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < stops->len; i++) {
    CimsAuditRecord *record = g_ptr_array_index (stops, i);
    if (record->session_id != NULL)
      g_hash_table_add (stopped, g_strdup (record->session_id));
  }
  return stopped;
}

static void
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
    return;
  }

  g_message ("session=%s camera=%s jurisdiction=%s: was open when the hub stopped; recorded its "
             "stop as hub-crash-recovered", start->session_id, start->camera_id,
             start->person_jurisdiction);
}

/* NOTE: recovery reads every session start and stop in the log, so start-up
 * time grows with the log's size. */
void
cims_hub_recover_sessions (CimsHub *hub)
{
  CimsAuditFilter filter = { .event = "session-start" };
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) starts = NULL;
  g_autoptr (GHashTable) stopped = NULL;
  gint64 last_alive_ms = heartbeat_read (hub);

  starts = cims_store_audit_query (hub->store, &filter, &error);
  if (starts != NULL)
    stopped = sessions_stopped (hub, &error);
  if (starts == NULL || stopped == NULL) {
    g_warning ("cannot read the audit log to recover open sessions: %s", error->message);
    return;
  }

  for (guint i = 0; i < starts->len; i++) {
    const CimsAuditRecord *start = g_ptr_array_index (starts, i);

    if (start->session_id != NULL && !g_hash_table_contains (stopped, start->session_id))
      recover_session (hub, start, last_alive_ms);
  }
}
