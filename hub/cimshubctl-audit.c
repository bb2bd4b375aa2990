/* SPDX-License-Identifier: Apache-2.0 */
/* cimshubctl audit verify and audit list: check the audit log's hash chain
 * and query its records straight from the state database, so they work
 * while the hub is down. The admin API's GET /api/v1/audit is api-audit.c. */
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "auth/report.h"
#include "auth/state-tables.h"
#include "hub/cimshubctl-private.h"
#include "hub/cimshubctl-store.h"

#define AUDIT_LIST_DEFAULT_LIMIT 1000

/* ---- audit verify -------------------------------------------------------------- */

/* Length of a hex SHA-256 chain hash, without the terminating NUL. */
#define AUDIT_HASH_HEX_LEN 64

/* A record that --expect SEQ:HASH requires, and what the walk found there. */
typedef struct {
  guint64 sequence;
  char hash[AUDIT_HASH_HEX_LEN + 1];       /* lowercase */
  gboolean is_found;
  char found_hash[AUDIT_HASH_HEX_LEN + 1];
} Expectation;

/* What the verifying walk saw. All of it comes from the snapshot of the log
 * that the walk verified. */
typedef struct {
  guint64 n_records;
  guint64 last_sequence;
  char last_hash[AUDIT_HASH_HEX_LEN + 1];
  GArray *expectations;         /* of Expectation */
  CimsRecordedTables *tables;
  GString *mismatches;          /* one line per audit-log-mismatch record */
} VerifyWalk;

static gboolean
verify_options_parse (CimsCtlStoreOptions *store_options, char ***expect_texts, int argc, char **argv,
                      GError **error)
{
  const GOptionEntry entries[] = {
    { "expect", 0, 0, G_OPTION_ARG_STRING_ARRAY, expect_texts,
      "Fail unless record SEQ exists with chain hash HASH, as an earlier verify printed them on its anchor "
      "line; may be repeated", "SEQ:HASH" },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr (GOptionContext) context = g_option_context_new (NULL);

  g_option_context_set_summary (context, "Opens the state database read-only and walks the audit log's hash chain "
                                "from the first record. Prints \"audit log intact: N records\" and \"anchor: "
                                "SEQ:HASH\", the last record's sequence and chain hash, and exits 0. Prints "
                                "\"audit log altered: ...\" and exits 1 when a record was changed, removed or "
                                "reordered, when the audit_log table is missing or empty, or when an --expect "
                                "does not match. Exits 2 on a command-line error and 3 when the database cannot "
                                "be located, opened or read.");
  g_option_context_set_description (context, "The chain has no secret, so a rewrite that recomputes every hash, "
                                    "a cut of the newest records or an older copy of the whole file still "
                                    "verifies. To detect those, keep the anchor outside the hub (in the annual "
                                    "report, a ticket or on paper) and pass it as --expect at the next verify, "
                                    "which then fails unless records 1 to SEQ are still there and unchanged.\n\n"
                                    "Verify also compares each row of the grants and incidents tables with the "
                                    "latest audit record of that grant or incident, which carries it whole, and "
                                    "exits 1 with \"state tables altered\" lines when they differ. It warns of "
                                    "each audit-log-mismatch record, which a hub appends when the log does not "
                                    "match its recovery checkpoint.\n");
  g_option_context_add_main_entries (context, entries, NULL);
  return cims_ctl_store_options_parse (store_options, context, argc, argv, error);
}

static gboolean
hash_text_is_valid (const char *text)
{
  if (strlen (text) != AUDIT_HASH_HEX_LEN)
    return FALSE;

  for (gsize i = 0; i < AUDIT_HASH_HEX_LEN; i++) {
    if (!g_ascii_isxdigit (text[i]))
      return FALSE;
  }
  return TRUE;
}

/* Parses @text, SEQ:HASH as an anchor line prints it, into @expectation. */
static gboolean
expectation_parse (const char *text, Expectation *expectation, GError **error)
{
  const char *colon = strchr (text, ':');
  g_autofree char *sequence_text = colon != NULL ? g_strndup (text, colon - text) : NULL;

  if (colon == NULL || !g_ascii_string_to_unsigned (sequence_text, 10, 1, G_MAXINT64, &expectation->sequence, NULL)
      || !hash_text_is_valid (colon + 1)) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--expect \"%s\" is invalid: give SEQ:HASH as printed on an anchor line, a record sequence "
                 "from 1 and its 64-digit hex chain hash", text);
    return FALSE;
  }

  for (gsize i = 0; i < AUDIT_HASH_HEX_LEN; i++)
    expectation->hash[i] = g_ascii_tolower (colon[1 + i]);
  expectation->hash[AUDIT_HASH_HEX_LEN] = '\0';
  return TRUE;
}

/* Returns: (transfer full): an array of Expectation, empty for NULL @texts,
 * or NULL with @error naming the first invalid value. */
static GArray *
expectations_parse (char **texts, GError **error)
{
  g_autoptr (GArray) expectations = g_array_new (FALSE, TRUE, sizeof (Expectation));

  for (gsize i = 0; texts != NULL && texts[i] != NULL; i++) {
    Expectation expectation = { 0 };

    if (!expectation_parse (texts[i], &expectation, error))
      return NULL;
    g_array_append_val (expectations, expectation);
  }
  return g_steal_pointer (&expectations);
}

static gboolean
verify_record_cb (const CimsAuditRecord *record, gpointer user_data)
{
  VerifyWalk *walk = user_data;

  walk->n_records++;
  walk->last_sequence = record->sequence;
  cims_recorded_tables_add (walk->tables, record);
  if (g_strcmp0 (record->event, "audit-log-mismatch") == 0)
    g_string_append_printf (walk->mismatches, "warning: record %" G_GUINT64_FORMAT " (%s, %s): %s; see the "
                            "record's details\n", record->sequence, record->event,
                            record->reason ? record->reason : "no reason",
                            g_strcmp0 (record->reason, "state-tables-differ") == 0
                              ? "a hub started on this log found grants or incidents rows that differ from their "
                                "audit records"
                              : "a hub started on this log found that it did not match its recovery checkpoint, "
                                "as after a restore from backup or a replaced log");
  g_strlcpy (walk->last_hash, record->hash, sizeof walk->last_hash);

  for (guint i = 0; i < walk->expectations->len; i++) {
    Expectation *expectation = &g_array_index (walk->expectations, Expectation, i);

    if (expectation->sequence != record->sequence)
      continue;
    expectation->is_found = TRUE;
    g_strlcpy (expectation->found_hash, record->hash, sizeof expectation->found_hash);
  }
  return TRUE;
}

/* Prints an "audit log altered" line for each --expect that the verified
 * log does not meet. Returns TRUE when it meets all of them. A verified
 * chain has every record from 1 to the last, so a record the walk did not
 * reach lies past the end. */
static gboolean
expectations_report_unmet (const VerifyWalk *walk)
{
  gboolean are_met = TRUE;

  for (guint i = 0; i < walk->expectations->len; i++) {
    const Expectation *expectation = &g_array_index (walk->expectations, Expectation, i);

    if (!expectation->is_found) {
      printf ("audit log altered: the log ends at record %" G_GUINT64_FORMAT ", but --expect names record %"
              G_GUINT64_FORMAT ", so the newest records were cut off or the file was replaced by an older copy\n",
              walk->last_sequence, expectation->sequence);
      are_met = FALSE;
    } else if (strcmp (expectation->found_hash, expectation->hash) != 0) {
      printf ("audit log altered: record %" G_GUINT64_FORMAT " has chain hash %s, but --expect names %s, so the "
              "chain was rewritten at or before record %" G_GUINT64_FORMAT ", or the log was cut or replaced by "
              "an older copy and a hub then wrote new records under the same numbers\n",
              expectation->sequence, expectation->found_hash, expectation->hash, expectation->sequence);
      are_met = FALSE;
    }
  }
  return are_met;
}

static void
verify_report_intact (const VerifyWalk *walk)
{
  printf ("audit log intact: %" G_GUINT64_FORMAT " records\n", walk->n_records);
  printf ("anchor: %" G_GUINT64_FORMAT ":%s\n", walk->last_sequence, walk->last_hash);

  for (guint i = 0; i < walk->expectations->len; i++)
    printf ("record %" G_GUINT64_FORMAT " matches --expect\n",
            g_array_index (walk->expectations, Expectation, i).sequence);

  if (walk->expectations->len == 0)
    printf ("Keep the anchor outside the hub and pass it as --expect next time. Without it, verify cannot "
            "detect a chain rewritten with new hashes, a cut of the newest records or an older copy of the "
            "file.\n");

  fputs (walk->mismatches->str, stdout);
}

/* Prints why verify did not pass and returns the exit status: 1 when the
 * log was altered, 2 for a command-line error, else 3. A configuration that
 * does not locate the database also exits 3, because --help promises 1 only
 * for an altered log. */
static int
verify_report_error (const GError *error)
{
  if (g_error_matches (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_CHAIN_BROKEN)) {
    printf ("audit log altered: %s\n", error->message);
    return CTL_EXIT_FAILED;
  }

  if (error->domain == G_OPTION_ERROR)
    return cims_ctl_usage_error (error->message);

  fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
  return CIMS_CTL_EXIT_NO_DATABASE;
}

/* Prints the grant and incident rows that differ from their records, or
 * that only one side has, and returns the exit status: 1 for any. */
static int
tables_report (const GString *problems, guint n_unchecked)
{
  g_auto (GStrv) lines = g_strsplit (problems->str, "\n", -1);

  for (guint i = 0; lines[i] != NULL; i++) {
    if (lines[i][0] != '\0')
      printf ("state tables altered: %s\n", lines[i]);
  }

  if (n_unchecked > 0)
    printf ("%u grants and incidents were recorded before audit records carried their details, so their rows "
            "were not compared\n", n_unchecked);

  if (problems->len == 0)
    return CTL_EXIT_OK;

  printf ("verify failed: the audit log's chain is intact, but the grants or incidents tables differ from it\n");
  return CTL_EXIT_FAILED;
}

int
cims_ctl_audit_verify_run (int argc, char **argv)
{
  g_auto (CimsCtlStoreOptions) options = { 0 };
  g_auto (GStrv) expect_texts = NULL;
  g_autoptr (GArray) expectations = NULL;
  g_autoptr (CimsStore) store = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsRecordedTables) tables = cims_recorded_tables_new ();
  g_autoptr (GString) table_problems = g_string_new (NULL);
  g_autoptr (GString) mismatches = g_string_new (NULL);
  VerifyWalk walk = { .tables = tables, .mismatches = mismatches };
  guint n_unchecked = 0;

  if (!verify_options_parse (&options, &expect_texts, argc, argv, &error))
    return cims_ctl_usage_error (error->message);

  expectations = expectations_parse (expect_texts, &error);
  if (expectations == NULL)
    return cims_ctl_usage_error (error->message);

  store = cims_ctl_store_open (&options, NULL, &error);
  if (store == NULL)
    return verify_report_error (error);

  walk.expectations = expectations;
  if (!cims_store_audit_verify_foreach (store, verify_record_cb, &walk, NULL, &error))
    return verify_report_error (error);

  if (walk.n_records == 0) {
    printf ("audit log altered: the audit_log table has no records. Each hub start appends config-loaded and "
            "hub-started, so records were deleted, unless no hub ever started on this database.\n");
    return CTL_EXIT_FAILED;
  }

  if (!expectations_report_unmet (&walk))
    return CTL_EXIT_FAILED;

  if (!cims_recorded_tables_check (walk.tables, store, table_problems, &n_unchecked, &error))
    return verify_report_error (error);

  verify_report_intact (&walk);
  return tables_report (table_problems, n_unchecked);
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
  if (!cims_ctl_store_options_parse (store_options, context, argc, argv, error))
    return FALSE;

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
  const char *const headers[] = { "SEQ", "TIME", "EVENT", "SESSION", "PERSON", "FROM", "CAMERA", "OWNER", "GRANT",
                                  "INCIDENT", "REASON", NULL };
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
                            cims_ctl_json_dup_text (object, "grant_id", "-"),
                            cims_ctl_json_dup_text (object, "incident_number", "-"),
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
  if (options.print_json) {
    print_records_json (records, n_records, records->len > n_records);
    return CTL_EXIT_OK;
  }

  print_records_table (records, n_records);
  if (records->len > n_records)
    fprintf (stderr, "%s: more records match than the %u listed; raise --limit (0 for all) or narrow the "
             "query with --from and --to\n", g_get_prgname (), n_records);
  return CTL_EXIT_OK;
}
