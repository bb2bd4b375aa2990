/* SPDX-License-Identifier: Apache-2.0 */
/* cimshubctl audit verify and audit list: check the audit log's hash chain
 * and query its records straight from the state database, so they work
 * while the hub is down. The admin API's GET /api/v1/audit is api-audit.c. */
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "auth/report.h"
#include "hub/cimshubctl-private.h"
#include "hub/cimshubctl-store.h"

#define AUDIT_LIST_DEFAULT_LIMIT 1000

/* ---- audit verify -------------------------------------------------------------- */

static gboolean
record_count_cb (const CimsAuditRecord *record, gpointer user_data)
{
  guint64 *n_records = user_data;

  (*n_records)++;
  return TRUE;
}

/* Counts the records in a second walk, one record in memory at a time,
 * because the verify walk returns no count. */
static int
audit_report_intact (CimsStore *store)
{
  g_autoptr (GError) error = NULL;
  guint64 n_records = 0;

  if (!cims_store_audit_foreach (store, NULL, record_count_cb, &n_records, NULL, &error)) {
    fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
    return CIMS_CTL_EXIT_NO_DATABASE;
  }

  printf ("audit log intact: %" G_GUINT64_FORMAT " records\n", n_records);
  return CTL_EXIT_OK;
}

int
cims_ctl_audit_verify_run (int argc, char **argv)
{
  g_auto (CimsCtlStoreOptions) options = { 0 };
  g_autoptr (GOptionContext) context = g_option_context_new (NULL);
  g_autoptr (CimsStore) store = NULL;
  g_autoptr (GError) error = NULL;
  guint64 first_bad = 0; /* named in the error's message */

  g_option_context_set_summary (context, "Walks the audit log's hash chain from the first record. Prints "
                                "\"audit log intact: N records\" and exits 0, or \"audit log altered: "
                                "record N ...\" naming the first bad record and exits 1; exits 3 when the database cannot be opened "
                                "or read.");
  cims_ctl_store_options_add (context, &options);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return cims_ctl_usage_error (error->message);
  if (argc > 1)
    return cims_ctl_usage_error ("unexpected argument");

  store = cims_ctl_store_open (&options, NULL, &error);
  if (store == NULL)
    return cims_ctl_store_open_failed (error);

  if (cims_store_audit_verify (store, &first_bad, &error))
    return audit_report_intact (store);

  if (g_error_matches (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_CHAIN_BROKEN)) {
    printf ("audit log altered: %s\n", error->message);
    return CTL_EXIT_FAILED;
  }

  fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
  return CIMS_CTL_EXIT_NO_DATABASE;
}

/* ---- audit list ------------------------------------------------------------------ */

typedef struct {
  char *from;
  char *to;
  char *camera;
  char *person;
  char *jurisdiction;
  char *incident_number;
  char *event;
  gint64 limit;
  gboolean print_json;
} ListOptions;

static void
list_options_clear (ListOptions *options)
{
  g_clear_pointer (&options->from, g_free);
  g_clear_pointer (&options->to, g_free);
  g_clear_pointer (&options->camera, g_free);
  g_clear_pointer (&options->person, g_free);
  g_clear_pointer (&options->jurisdiction, g_free);
  g_clear_pointer (&options->incident_number, g_free);
  g_clear_pointer (&options->event, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ListOptions, list_options_clear)

static gboolean
list_options_parse (ListOptions *options, CimsCtlStoreOptions *store_options, int argc, char **argv,
                    GError **error)
{
  const GOptionEntry entries[] = {
    { "from", 0, 0, G_OPTION_ARG_STRING, &options->from, "Records at or after TIME (ISO 8601 or YYYY-MM-DD, UTC)", "TIME" },
    { "to", 0, 0, G_OPTION_ARG_STRING, &options->to, "Records before TIME (exclusive)", "TIME" },
    { "camera", 0, 0, G_OPTION_ARG_STRING, &options->camera, "Camera id", "ID" },
    { "person", 0, 0, G_OPTION_ARG_STRING, &options->person, "Person id (token subject)", "ID" },
    { "jurisdiction", 0, 0, G_OPTION_ARG_STRING, &options->jurisdiction,
      "The person's jurisdiction or agency, or the camera's owner", "ID" },
    { "incident-number", 0, 0, G_OPTION_ARG_STRING, &options->incident_number, "Incident number", "N" },
    { "event", 0, 0, G_OPTION_ARG_STRING, &options->event, "Event, e.g. session-start", "EVENT" },
    { "limit", 0, 0, G_OPTION_ARG_INT64, &options->limit, "At most N records (default 1000, 0 for all)", "N" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &options->print_json, "Print {\"records\": [...], \"truncated\": ...}", NULL },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr (GOptionContext) context = g_option_context_new (NULL);

  g_option_context_set_summary (context, "Lists audit records from the state database, oldest first.");
  g_option_context_add_main_entries (context, entries, NULL);
  cims_ctl_store_options_add (context, store_options);
  if (!g_option_context_parse (context, &argc, &argv, error))
    return FALSE;

  if (argc > 1) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "unexpected argument \"%s\"", argv[1]);
    return FALSE;
  }
  if (options->limit < 0 || options->limit >= G_MAXUINT) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--limit must be 0 or a positive count");
    return FALSE;
  }
  if (options->event != NULL && !cims_audit_event_is_known (options->event)) {
    g_autofree char *known = g_strjoinv (", ", (char **) cims_audit_events);

    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--event \"%s\" is not an audit event; use "
                 "one of %s", options->event, known);
    return FALSE;
  }
  return TRUE;
}

static gboolean
filter_set_time (gint64 *time_ms, const char *text, const char *option, GError **error)
{
  if (text == NULL || cims_audit_time_parse_ms (text, time_ms))
    return TRUE;

  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
               "%s \"%s\" is not an ISO 8601 time with a zone or a date YYYY-MM-DD", option, text);
  return FALSE;
}

static void
print_records_json (GPtrArray *records, guint n_records, gboolean is_truncated)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = json_node_new (JSON_NODE_OBJECT);
  JsonObject *object = json_object_new ();
  JsonArray *array = json_array_new ();
  g_autofree char *text = NULL;

  for (guint i = 0; i < n_records; i++)
    json_array_add_object_element (array, cims_audit_record_to_json (g_ptr_array_index (records, i)));
  json_object_set_array_member (object, "records", array);
  json_object_set_boolean_member (object, "truncated", is_truncated);
  json_node_take_object (root, object);

  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, NULL);
  printf ("%s\n", text);
}

/* SESSION is the session id, which pairs a session's start record with its
 * stop record. A record without one, such as hub-started, shows "-". */
static void
print_records_table (GPtrArray *records, guint n_records)
{
  const char *const headers[] = { "SEQ", "TIME", "EVENT", "SESSION", "PERSON", "FROM", "CAMERA", "OWNER", "REASON",
                                  NULL };
  g_autoptr (CimsCtlTable) table = cims_ctl_table_new (headers);

  for (guint i = 0; i < n_records; i++) {
    g_autoptr (JsonObject) object = cims_audit_record_to_json (g_ptr_array_index (records, i));

    cims_ctl_table_add_row (table, cims_ctl_json_dup_text (object, "sequence", "-"),
                            cims_ctl_json_dup_text (object, "time", "-"),
                            cims_ctl_json_dup_text (object, "event", "-"),
                            cims_ctl_json_dup_text (object, "session_id", "-"),
                            cims_ctl_json_dup_text (object, "person_id", "-"),
                            cims_ctl_json_dup_text (object, "person_jurisdiction", "-"),
                            cims_ctl_json_dup_text (object, "camera_id", "-"),
                            cims_ctl_json_dup_text (object, "camera_owner", "-"),
                            cims_ctl_json_dup_text (object, "reason", "-"));
  }
  cims_ctl_table_print (table, stdout);
}

int
cims_ctl_audit_list_run (int argc, char **argv)
{
  g_auto (ListOptions) options = { .limit = AUDIT_LIST_DEFAULT_LIMIT };
  g_auto (CimsCtlStoreOptions) store_options = { 0 };
  g_autoptr (CimsStore) store = NULL;
  g_autoptr (GPtrArray) records = NULL;
  g_autoptr (GError) error = NULL;
  CimsAuditFilter filter = { 0 };
  guint n_records;

  if (!list_options_parse (&options, &store_options, argc, argv, &error)
      || !filter_set_time (&filter.from_ms, options.from, "--from", &error)
      || !filter_set_time (&filter.to_ms, options.to, "--to", &error))
    return cims_ctl_usage_error (error->message);

  store = cims_ctl_store_open (&store_options, NULL, &error);
  if (store == NULL)
    return cims_ctl_store_open_failed (error);

  /* One more than the limit shows whether more records match. */
  filter.camera_id = options.camera;
  filter.person_id = options.person;
  filter.jurisdiction = options.jurisdiction;
  filter.incident_number = options.incident_number;
  filter.event = options.event;
  filter.limit = options.limit > 0 ? (guint) options.limit + 1 : 0;
  records = cims_store_audit_query (store, &filter, &error);
  if (records == NULL) {
    fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
    return CIMS_CTL_EXIT_NO_DATABASE;
  }

  n_records = options.limit > 0 ? MIN (records->len, (guint) options.limit) : records->len;
  if (options.print_json)
    print_records_json (records, n_records, records->len > n_records);
  else
    print_records_table (records, n_records);
  return CTL_EXIT_OK;
}
