/* SPDX-License-Identifier: Apache-2.0 */
/* Appends viewing sessions (a start and a stop record each) to a state
 * store's audit log through the store's own append, so that a test can give
 * the annual report a year's worth of records to read. */
#include "auth/store.h"

#include <stdlib.h>

/* Sessions start this far apart, from the year's first instant. */
#define SESSION_SPACING_MS 60000
#define SESSION_DURATION_MS 30000

static gboolean
session_append (CimsStore *store, gint64 start_ms, guint index, GError **error)
{
  g_autofree char *session_id = g_strdup_printf ("fill-%08u", index);
  CimsAuditRecord record = {
    .event = "session-start",
    .time_ms = start_ms,
    .person_id = "fill-viewer",
    .person_name = "Fill Viewer",
    .person_jurisdiction = "boston",
    .camera_id = "bos-0001",
    .camera_owner = "boston",
    .session_id = session_id,
    .reason = "own-camera",
  };
  gboolean is_appended = cims_store_audit_append (store, &record, error);

  g_clear_pointer (&record.previous_hash, g_free);
  g_clear_pointer (&record.hash, g_free);
  if (!is_appended)
    return FALSE;

  record.event = "session-stop";
  record.time_ms = start_ms + SESSION_DURATION_MS;
  record.reason = "viewer-left";
  record.duration_ms = SESSION_DURATION_MS;
  is_appended = cims_store_audit_append (store, &record, error);
  g_clear_pointer (&record.previous_hash, g_free);
  g_clear_pointer (&record.hash, g_free);
  return is_appended;
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsStore) store = NULL;
  g_autoptr (GDateTime) year_start = NULL;
  guint64 year = 0;
  guint64 n_sessions = 0;

  if (argc != 4) {
    g_printerr ("usage: %s STORE YEAR SESSIONS\n", argv[0]);
    return 2;
  }

  if (!g_ascii_string_to_unsigned (argv[2], 10, 2000, 2100, &year, &error)
      || !g_ascii_string_to_unsigned (argv[3], 10, 1, 1000000, &n_sessions, &error)) {
    g_printerr ("%s: invalid argument: %s (YEAR must be 2000 to 2100, SESSIONS 1 to 1000000)\n", argv[0],
                error->message);
    return 2;
  }

  store = cims_store_sqlite_open (argv[1], &error);
  if (store == NULL) {
    g_printerr ("%s\n", error->message);
    return 1;
  }

  year_start = g_date_time_new_utc ((int) year, 1, 1, 0, 0, 0);
  for (guint i = 0; i < n_sessions; i++) {
    gint64 start_ms = g_date_time_to_unix (year_start) * 1000 + (gint64) i * SESSION_SPACING_MS;

    if (!session_append (store, start_ms, i, &error)) {
      g_printerr ("session %u: %s\n", i, error->message);
      return 1;
    }
  }

  g_print ("appended %" G_GUINT64_FORMAT " sessions\n", n_sessions);
  return 0;
}
