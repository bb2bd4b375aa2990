/* SPDX-License-Identifier: Apache-2.0 */
/* Appends viewing sessions (a start and a stop record each) to a state
 * store's audit log through the store's own append, so that a test can give
 * the annual report a year's worth of records to read. Sessions left
 * without a stop are what a hub that crashed leaves for crash recovery. */
#include "auth/store.h"

#include <stdlib.h>

/* Sessions start this far apart, from the year's first instant. */
#define SESSION_SPACING_MS 60000
#define SESSION_DURATION_MS 30000

/* Appends session @index, with a stop record unless @is_open. Session ids
 * carry @run_tag, so that two runs over one log make no duplicate id. */
static gboolean
session_append (CimsStore *store, guint32 run_tag, gint64 start_ms, guint index, gboolean is_open,
                GError **error)
{
  g_autofree char *session_id = g_strdup_printf ("fill-%08x-%08u", run_tag, index);
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
  if (!is_appended || is_open)
    return is_appended;

  record.event = "session-stop";
  record.time_ms = start_ms + SESSION_DURATION_MS;
  record.reason = "viewer-left";
  record.duration_ms = SESSION_DURATION_MS;
  is_appended = cims_store_audit_append (store, &record, error);
  g_clear_pointer (&record.previous_hash, g_free);
  g_clear_pointer (&record.hash, g_free);
  return is_appended;
}

/* Whether session @index of @n_sessions is one of the @n_open left open,
 * which are spread evenly over the run and include its last session. */
static gboolean
session_is_open (guint64 index, guint64 n_sessions, guint64 n_open)
{
  guint64 stride;

  if (n_open == 0)
    return FALSE;

  stride = n_sessions / n_open;
  return (n_sessions - 1 - index) % stride == 0 && (n_sessions - 1 - index) / stride < n_open;
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsStore) store = NULL;
  g_autoptr (GDateTime) year_start = NULL;
  guint32 run_tag = g_random_int ();
  guint64 year = 0;
  guint64 n_sessions = 0;
  guint64 n_open = 0;

  if (argc != 4 && argc != 5) {
    g_printerr ("usage: %s STORE YEAR SESSIONS [OPEN_SESSIONS]\n", argv[0]);
    return 2;
  }

  if (!g_ascii_string_to_unsigned (argv[2], 10, 2000, 2100, &year, &error)
      || !g_ascii_string_to_unsigned (argv[3], 10, 1, 1000000, &n_sessions, &error)
      || (argc == 5 && !g_ascii_string_to_unsigned (argv[4], 10, 0, n_sessions, &n_open, &error))) {
    g_printerr ("%s: invalid argument: %s (YEAR must be 2000 to 2100, SESSIONS 1 to 1000000, "
                "OPEN_SESSIONS 0 to SESSIONS)\n", argv[0], error->message);
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
    gboolean is_open = session_is_open (i, n_sessions, n_open);

    if (!session_append (store, run_tag, start_ms, i, is_open, &error)) {
      g_printerr ("session %u: %s\n", i, error->message);
      return 1;
    }
  }

  g_print ("appended %" G_GUINT64_FORMAT " sessions, %" G_GUINT64_FORMAT " of them left open\n",
           n_sessions, n_open);
  return 0;
}
