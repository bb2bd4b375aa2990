/* SPDX-License-Identifier: Apache-2.0 */
/* Renders an annual transparency report as JSON, CSV and a printable,
 * self-contained HTML page with an SVG chart. The figures themselves are
 * computed in report.c; this file only lays them out. */
#include "auth/report.h"

#include <string.h>

static const char *const month_names[12] = {
  "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/* Chart colors (Okabe-Ito and Tableau hues readable on white and in print);
 * series past the end get golden-angle hues. */
static const char *const series_colors[] = {
  "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9",
  "#000000", "#8c564b", "#7f7f7f", "#17becf", "#bcbd22", "#9467bd",
};

gboolean
cims_report_format_from_string (const char *name, CimsReportFormat *out)
{
  if (g_strcmp0 (name, "json") == 0)
    *out = CIMS_REPORT_FORMAT_JSON;
  else if (g_strcmp0 (name, "csv") == 0)
    *out = CIMS_REPORT_FORMAT_CSV;
  else if (g_strcmp0 (name, "html") == 0)
    *out = CIMS_REPORT_FORMAT_HTML;
  else if (g_strcmp0 (name, "csv-long") == 0)
    *out = CIMS_REPORT_FORMAT_CSV_LONG;
  else
    return FALSE;

  return TRUE;
}

const char *
cims_report_format_content_type (CimsReportFormat format)
{
  switch (format) {
  case CIMS_REPORT_FORMAT_CSV:
    /* Tables one after another, each under a title, so the first line is a
     * title and not a header. */
    return "text/csv; charset=utf-8; header=absent";
  case CIMS_REPORT_FORMAT_CSV_LONG:
    return "text/csv; charset=utf-8; header=present";
  case CIMS_REPORT_FORMAT_HTML:
    return "text/html; charset=utf-8";
  case CIMS_REPORT_FORMAT_JSON:
  default:
    return "application/json";
  }
}

static const char *
party_kind_to_string (CimsReportPartyKind kind)
{
  switch (kind) {
  case CIMS_REPORT_PARTY_JURISDICTION:
    return "jurisdiction";
  case CIMS_REPORT_PARTY_AGENCY:
    return "agency";
  case CIMS_REPORT_PARTY_TOTAL:
    return "total";
  case CIMS_REPORT_PARTY_UNCONFIGURED:
  default:
    return "unconfigured";
  }
}

static double
ms_to_hours (gint64 ms)
{
  return (double) ms / (3600.0 * 1000.0);
}

/* Owner tables (cameras, archive approvals, real-time access) list every
 * jurisdiction, and an agency or unconfigured party only when it has a
 * figure there, since agencies own no cameras. */
static gboolean
party_is_owner_row (const CimsReportParty *party)
{
  return party->kind == CIMS_REPORT_PARTY_JURISDICTION || party->n_cameras_in_service > 0
         || party->n_archive_requests_approved > 0 || party->n_grants_created > 0
         || party->n_incidents_started > 0;
}

/* ---- audit chain ------------------------------------------------------------- */

/* Returns the gaps in sequence numbers as "13, 20-22", with the number of
 * gaps left unlisted, or "" when there is none. (transfer full) */
static char *
chain_gaps_format (const CimsAnnualReport *report)
{
  GString *out = g_string_new (NULL);

  for (guint i = 0; i < report->sequence_gaps->len; i++) {
    const CimsReportSequenceGap *gap = &g_array_index (report->sequence_gaps, CimsReportSequenceGap, i);

    if (i > 0)
      g_string_append (out, ", ");
    g_string_append_printf (out, "%" G_GUINT64_FORMAT, gap->first_missing);
    if (gap->last_missing != gap->first_missing)
      g_string_append_printf (out, "-%" G_GUINT64_FORMAT, gap->last_missing);
  }

  if (report->n_sequence_gaps > report->sequence_gaps->len)
    g_string_append_printf (out, " and %" G_GUINT64_FORMAT " more gaps",
                            report->n_sequence_gaps - report->sequence_gaps->len);
  return g_string_free (out, FALSE);
}

/* Adds a warning for the log's audit-log-mismatch records. */
static void
chain_statement_add_mismatches (GString *out, const CimsAnnualReport *report)
{
  if (report->n_checkpoint_mismatches == 0)
    return;

  g_string_append_printf (out, " WARNING: %" G_GUINT64_FORMAT " audit-log-mismatch %s (%s%s): a hub started on "
                          "this log found that it did not match its recovery checkpoint, as after a restore from "
                          "backup or a replaced log, so records may be missing, or that grants or incidents rows "
                          "differ from their records; each record's reason says which.", report->n_checkpoint_mismatches,
                          report->n_checkpoint_mismatches == 1 ? "record" : "records",
                          report->checkpoint_mismatches,
                          report->n_checkpoint_mismatches > CIMS_REPORT_MAX_LISTED_MISMATCHES ? " and more" : "");
}

/* Returns the sentences on the chain's state that every form carries.
 * (transfer full) */
static char *
chain_statement (const CimsAnnualReport *report)
{
  g_autofree char *gaps = chain_gaps_format (report);
  GString *out = g_string_new (NULL);

  if (report->is_chain_intact) {
    g_string_append_printf (out, "The audit log is intact: the hash chain of all %" G_GUINT64_FORMAT " records "
                            "checks out and no sequence number is missing. Records cut off the end of the "
                            "log, a rewritten chain or an older copy of the log would not show here: keep the "
                            "anchor %s outside the hub and check it with cimshubctl audit verify --expect.",
                            report->n_chain_records, report->anchor ? report->anchor : "(none: empty log)");
    chain_statement_add_mismatches (out, report);
    return g_string_free (out, FALSE);
  }

  g_string_append_printf (out, "WARNING: the audit log was altered, so the figures in this report may be "
                          "incomplete or wrong. The hash chain first breaks at record %" G_GUINT64_FORMAT
                          ", where verification found that %s.", report->chain_first_bad_sequence,
                          report->chain_problem);
  if (report->n_sequence_gaps > 0)
    g_string_append_printf (out, " Missing sequence numbers: %s (%" G_GUINT64_FORMAT " %s).", gaps,
                            report->n_missing_records, report->n_missing_records == 1 ? "record" : "records");
  else
    g_string_append (out, " No sequence number is missing.");
  chain_statement_add_mismatches (out, report);
  return g_string_free (out, FALSE);
}

/* The chain's state as named values, in the order both CSV forms list them. */
typedef struct {
  const char *measure;
  char *value;
} ChainMeasure;

#define N_CHAIN_MEASURES 9

static void
chain_measures_init (ChainMeasure *measures, const CimsAnnualReport *report)
{
  gboolean is_intact = report->is_chain_intact;

  measures[0] = (ChainMeasure) { "state", g_strdup (is_intact ? "intact" : "altered") };
  measures[1] = (ChainMeasure) { "records_checked", g_strdup_printf ("%" G_GUINT64_FORMAT, report->n_chain_records) };
  measures[2] = (ChainMeasure) {
    "first_bad_sequence",
    is_intact ? g_strdup ("") : g_strdup_printf ("%" G_GUINT64_FORMAT, report->chain_first_bad_sequence),
  };
  measures[3] = (ChainMeasure) { "missing_records", g_strdup_printf ("%" G_GUINT64_FORMAT, report->n_missing_records) };
  measures[4] = (ChainMeasure) { "missing_sequences", chain_gaps_format (report) };
  measures[5] = (ChainMeasure) { "problem", g_strdup (is_intact ? "" : report->chain_problem) };
  measures[6] = (ChainMeasure) { "anchor", g_strdup (report->anchor ? report->anchor : "") };
  measures[7] = (ChainMeasure) {
    "checkpoint_mismatches", g_strdup_printf ("%" G_GUINT64_FORMAT, report->n_checkpoint_mismatches),
  };
  measures[8] = (ChainMeasure) { "statement", chain_statement (report) };
}

static void
chain_measures_clear (ChainMeasure *measures)
{
  for (guint i = 0; i < N_CHAIN_MEASURES; i++)
    g_clear_pointer (&measures[i].value, g_free);
}

/* ---- JSON -------------------------------------------------------------------- */

static void
builder_add_counts (JsonBuilder *builder, const char *member, char **names, const guint *counts)
{
  json_builder_set_member_name (builder, member);
  json_builder_begin_object (builder);
  for (guint i = 0; names[i] != NULL; i++) {
    json_builder_set_member_name (builder, names[i]);
    json_builder_add_int_value (builder, counts[i]);
  }
  json_builder_end_object (builder);
}

static void
builder_add_int (JsonBuilder *builder, const char *member, gint64 value)
{
  json_builder_set_member_name (builder, member);
  json_builder_add_int_value (builder, value);
}

/* Adds @ms as hours, rounded to two decimals like the CSV and HTML reports. */
static void
builder_add_hours (JsonBuilder *builder, const char *name, gint64 ms)
{
  /* A hundredth of an hour is 36,000 ms. */
  gint64 hundredths = (ms + 18000) / 36000;

  json_builder_set_member_name (builder, name);
  json_builder_add_double_value (builder, (double) hundredths / 100.0);
}

static void
builder_add_party (JsonBuilder *builder, const CimsAnnualReport *report, const CimsReportParty *party)
{
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "id");
  json_builder_add_string_value (builder, party->id);
  json_builder_set_member_name (builder, "name");
  json_builder_add_string_value (builder, party->name);
  json_builder_set_member_name (builder, "kind");
  json_builder_add_string_value (builder, party_kind_to_string (party->kind));

  json_builder_set_member_name (builder, "cameras_in_service");
  if (report->has_camera_counts)
    json_builder_add_int_value (builder, party->n_cameras_in_service);
  else
    json_builder_add_null_value (builder);

  builder_add_int (builder, "users", party->n_users);
  builder_add_counts (builder, "users_by_permission", report->permission_names, party->users_by_permission);
  builder_add_counts (builder, "users_by_role", report->role_names, party->users_by_role);
  builder_add_int (builder, "users_without_permissions", party->n_users_without_permissions);
  builder_add_int (builder, "users_rights_unrecorded", party->n_users_rights_unrecorded);
  builder_add_int (builder, "archive_requests_approved", party->n_archive_requests_approved);
  builder_add_int (builder, "grants_created", party->n_grants_created);
  builder_add_int (builder, "incidents_started", party->n_incidents_started);
  builder_add_int (builder, "real_time_access_granted", party->n_grants_created + party->n_incidents_started);
  builder_add_int (builder, "viewing_sessions", party->n_viewing_sessions);
  builder_add_int (builder, "viewing_ms", party->viewing_ms);
  builder_add_hours (builder, "viewing_hours", party->viewing_ms);

  json_builder_set_member_name (builder, "monthly_sessions");
  json_builder_begin_array (builder);
  for (guint month = 0; month < 12; month++)
    json_builder_add_int_value (builder, party->monthly_sessions[month]);
  json_builder_end_array (builder);
  json_builder_end_object (builder);
}

static void
builder_add_chain (JsonBuilder *builder, const CimsAnnualReport *report)
{
  g_autofree char *statement = chain_statement (report);

  json_builder_set_member_name (builder, "audit_chain");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "state");
  json_builder_add_string_value (builder, report->is_chain_intact ? "intact" : "altered");
  builder_add_int (builder, "records_checked", (gint64) report->n_chain_records);
  json_builder_set_member_name (builder, "first_bad_sequence");
  if (report->is_chain_intact)
    json_builder_add_null_value (builder);
  else
    json_builder_add_int_value (builder, (gint64) report->chain_first_bad_sequence);
  json_builder_set_member_name (builder, "problem");
  if (report->is_chain_intact)
    json_builder_add_null_value (builder);
  else
    json_builder_add_string_value (builder, report->chain_problem);
  builder_add_int (builder, "missing_records", (gint64) report->n_missing_records);
  builder_add_int (builder, "sequence_gaps_total", (gint64) report->n_sequence_gaps);
  json_builder_set_member_name (builder, "anchor");
  if (report->anchor != NULL)
    json_builder_add_string_value (builder, report->anchor);
  else
    json_builder_add_null_value (builder);
  builder_add_int (builder, "checkpoint_mismatches", (gint64) report->n_checkpoint_mismatches);

  json_builder_set_member_name (builder, "sequence_gaps");
  json_builder_begin_array (builder);
  for (guint i = 0; i < report->sequence_gaps->len; i++) {
    const CimsReportSequenceGap *gap = &g_array_index (report->sequence_gaps, CimsReportSequenceGap, i);

    json_builder_begin_object (builder);
    builder_add_int (builder, "first_missing", (gint64) gap->first_missing);
    builder_add_int (builder, "last_missing", (gint64) gap->last_missing);
    json_builder_end_object (builder);
  }
  json_builder_end_array (builder);

  json_builder_set_member_name (builder, "statement");
  json_builder_add_string_value (builder, statement);
  json_builder_end_object (builder);
}

/* Appends the number @token (@length bytes) to @out in its shortest form
 * that reads back as the same double: json-glib 1.6 writes every double
 * with 17 significant digits, so 3.58 hours came out as 3.5800000000000001. */
static void
append_number_shortest (GString *out, const char *token, gsize length)
{
  g_autofree char *text = g_strndup (token, length);
  double value = g_ascii_strtod (text, NULL);
  char shortest[G_ASCII_DTOSTR_BUF_SIZE];

  if (strpbrk (text, ".eE") == NULL) {
    g_string_append (out, text);
    return;
  }

  for (int digits = 1; digits <= 17; digits++) {
    char format[8];

    g_snprintf (format, sizeof format, "%%.%dg", digits);
    g_ascii_formatd (shortest, sizeof shortest, format, value);
    if (g_ascii_strtod (shortest, NULL) == value)
      break;
  }
  g_string_append (out, shortest);
}

/* Returns the generated @json (transfer full) with every number outside a
 * string written in its shortest form. */
static char *
json_numbers_shorten (char *json)
{
  GString *out = g_string_sized_new (strlen (json));
  gboolean in_string = FALSE;
  const char *position = json;

  while (*position != '\0') {
    if (in_string) {
      if (*position == '\\' && position[1] != '\0')
        g_string_append_c (out, *position++);
      else if (*position == '"')
        in_string = FALSE;
      g_string_append_c (out, *position++);
    } else if (*position == '-' || g_ascii_isdigit (*position)) {
      gsize length = strspn (position, "-+0123456789.eE");

      append_number_shortest (out, position, length);
      position += length;
    } else {
      in_string = *position == '"';
      g_string_append_c (out, *position++);
    }
  }

  g_free (json);
  return g_string_free (out, FALSE);
}

static char *
report_to_json (const CimsAnnualReport *report)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (CimsReportParty) total = cims_annual_report_sum (report);
  g_autofree char *from = cims_audit_time_format_ms (report->from_ms);
  g_autofree char *to = cims_audit_time_format_ms (report->to_ms);

  json_builder_begin_object (builder);
  builder_add_int (builder, "year", report->year);
  builder_add_chain (builder, report);
  json_builder_set_member_name (builder, "from");
  json_builder_add_string_value (builder, from);
  json_builder_set_member_name (builder, "to");
  json_builder_add_string_value (builder, to);
  builder_add_int (builder, "audit_records", report->n_audit_records);
  builder_add_int (builder, "first_sequence", (gint64) report->first_sequence);
  builder_add_int (builder, "last_sequence", (gint64) report->last_sequence);

  json_builder_set_member_name (builder, "jurisdictions");
  json_builder_begin_array (builder);
  for (guint i = 0; i < report->parties->len; i++)
    builder_add_party (builder, report, g_ptr_array_index (report->parties, i));
  json_builder_end_array (builder);

  json_builder_set_member_name (builder, "total");
  builder_add_party (builder, report, total);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  return json_numbers_shorten (json_generator_to_data (generator, NULL));
}

/* Adds @value (transfer full) to @builder. */
static void
strv_builder_take (GStrvBuilder *builder, char *value)
{
  g_strv_builder_add (builder, value);
  g_free (value);
}

/* ---- CSV ---------------------------------------------------------------------- */

/* Appends one field, quoted as RFC 4180 section 2 requires when it contains a
 * comma, a quote, CR or LF: inside quotes a quote is doubled. */
static void
csv_add_field (GString *out, gboolean is_first, const char *text)
{
  if (!is_first)
    g_string_append_c (out, ',');

  if (strpbrk (text, ",\"\r\n") == NULL) {
    g_string_append (out, text);
    return;
  }

  g_string_append_c (out, '"');
  for (const char *p = text; *p != '\0'; p++) {
    if (*p == '"')
      g_string_append_c (out, '"');
    g_string_append_c (out, *p);
  }
  g_string_append_c (out, '"');
}

static void
csv_add_uint (GString *out, guint64 value)
{
  g_string_append_printf (out, ",%" G_GUINT64_FORMAT, value);
}

static void
csv_end_row (GString *out)
{
  g_string_append (out, "\r\n");
}

static void
csv_begin_table (GString *out, const char *title, const char *const *columns)
{
  if (out->len > 0)
    csv_end_row (out);
  csv_add_field (out, TRUE, title);
  csv_end_row (out);
  for (guint i = 0; columns[i] != NULL; i++)
    csv_add_field (out, i == 0, columns[i]);
}

static void
csv_begin_row (GString *out, const CimsReportParty *party)
{
  csv_end_row (out);
  csv_add_field (out, TRUE, party->id);
  csv_add_field (out, FALSE, party->name);
}

typedef void (*CsvRowFunc) (GString *out, const CimsAnnualReport *report, const CimsReportParty *party);

/* Writes one row per party (owner rows only when @owner_rows) and a total row. */
static void
csv_add_rows (GString *out, const CimsAnnualReport *report, const CimsReportParty *total,
              gboolean owner_rows, CsvRowFunc add_figures)
{
  for (guint i = 0; i < report->parties->len; i++) {
    const CimsReportParty *party = g_ptr_array_index (report->parties, i);

    if (owner_rows && !party_is_owner_row (party))
      continue;
    csv_begin_row (out, party);
    add_figures (out, report, party);
  }
  csv_begin_row (out, total);
  add_figures (out, report, total);
  csv_end_row (out);
}

static void
csv_cameras (GString *out, const CimsAnnualReport *report, const CimsReportParty *party)
{
  if (report->has_camera_counts)
    csv_add_uint (out, party->n_cameras_in_service);
  else
    g_string_append_c (out, ',');
}

static void
csv_users (GString *out, const CimsAnnualReport *report, const CimsReportParty *party)
{
  csv_add_uint (out, party->n_users);
  for (guint i = 0; report->permission_names[i] != NULL; i++)
    csv_add_uint (out, party->users_by_permission[i]);
  for (guint i = 0; report->role_names[i] != NULL; i++)
    csv_add_uint (out, party->users_by_role[i]);
  csv_add_uint (out, party->n_users_without_permissions);
  csv_add_uint (out, party->n_users_rights_unrecorded);
}

static void
csv_archive (GString *out, const CimsAnnualReport *report, const CimsReportParty *party)
{
  csv_add_uint (out, party->n_archive_requests_approved);
}

static void
csv_real_time (GString *out, const CimsAnnualReport *report, const CimsReportParty *party)
{
  csv_add_uint (out, party->n_grants_created);
  csv_add_uint (out, party->n_incidents_started);
  csv_add_uint (out, party->n_grants_created + party->n_incidents_started);
}

static void
csv_viewing (GString *out, const CimsAnnualReport *report, const CimsReportParty *party)
{
  csv_add_uint (out, party->n_viewing_sessions);
  g_string_append_printf (out, ",%.2f", ms_to_hours (party->viewing_ms));
  g_string_append_printf (out, ",%" G_GINT64_FORMAT, party->viewing_ms);
}

static void
csv_monthly (GString *out, const CimsAnnualReport *report, const CimsReportParty *party)
{
  for (guint month = 0; month < 12; month++)
    csv_add_uint (out, party->monthly_sessions[month]);
  csv_add_uint (out, party->n_viewing_sessions);
}

static char **
csv_users_columns (const CimsAnnualReport *report)
{
  g_autoptr (GStrvBuilder) columns = g_strv_builder_new ();

  g_strv_builder_add_many (columns, "jurisdiction", "name", "users", NULL);
  for (guint i = 0; report->permission_names[i] != NULL; i++)
    strv_builder_take (columns, g_strconcat ("permission:", report->permission_names[i], NULL));
  for (guint i = 0; report->role_names[i] != NULL; i++)
    strv_builder_take (columns, g_strconcat ("role:", report->role_names[i], NULL));
  g_strv_builder_add_many (columns, "without_permissions", "rights_not_recorded", NULL);
  return g_strv_builder_end (columns);
}

static char **
csv_monthly_columns (const CimsAnnualReport *report)
{
  g_autoptr (GStrvBuilder) columns = g_strv_builder_new ();

  g_strv_builder_add_many (columns, "jurisdiction", "name", NULL);
  for (guint month = 1; month <= 12; month++)
    strv_builder_take (columns, g_strdup_printf ("%04d-%02u", report->year, month));
  g_strv_builder_add (columns, "total");
  return g_strv_builder_end (columns);
}

/* One table of the CSV renderings: its key in the long form, its title in
 * the sectioned one, its columns after "jurisdiction" and "name", and the
 * function that appends a party's figures in that order. */
typedef struct {
  const char *key;
  const char *title;
  const char *const *columns;
  gboolean owner_rows;
  CsvRowFunc add_figures;
} CsvTable;

typedef struct {
  char **users_columns;
  char **monthly_columns;
  CsvTable tables[6];
} CsvTables;

static void
csv_tables_init (CsvTables *set, const CimsAnnualReport *report)
{
  static const char *const camera_columns[] = { "jurisdiction", "name", "cameras_in_service", NULL };
  static const char *const archive_columns[] = { "jurisdiction", "name", "archive_requests_approved", NULL };
  static const char *const real_time_columns[] = {
    "jurisdiction", "name", "grants_created", "incidents_started", "real_time_access_granted", NULL,
  };
  static const char *const viewing_columns[] = {
    "jurisdiction", "name", "sessions", "viewing_hours", "viewing_ms", NULL,
  };

  set->users_columns = csv_users_columns (report);
  set->monthly_columns = csv_monthly_columns (report);
  set->tables[0] = (CsvTable) { "cameras", "Cameras in service", camera_columns, TRUE, csv_cameras };
  set->tables[1] = (CsvTable) { "users", "Users and permission levels (by user jurisdiction)",
                                (const char *const *) set->users_columns, FALSE, csv_users };
  set->tables[2] = (CsvTable) { "archive", "Archive-footage requests approved (by owning jurisdiction)",
                                archive_columns, TRUE, csv_archive };
  set->tables[3] = (CsvTable) { "real_time", "Real-time access granted to other agencies (by owning jurisdiction)",
                                real_time_columns, TRUE, csv_real_time };
  set->tables[4] = (CsvTable) { "viewing", "Viewing sessions (by viewer jurisdiction)", viewing_columns, FALSE,
                                csv_viewing };
  set->tables[5] = (CsvTable) { "monthly", "Monthly viewing sessions (by viewer jurisdiction)",
                                (const char *const *) set->monthly_columns, FALSE, csv_monthly };
}

static void
csv_tables_clear (CsvTables *set)
{
  g_strfreev (set->users_columns);
  g_strfreev (set->monthly_columns);
}

static char *
report_to_csv (const CimsAnnualReport *report)
{
  GString *out = g_string_new (NULL);
  g_autoptr (CimsReportParty) total = cims_annual_report_sum (report);
  g_autofree char *title = g_strdup_printf ("Annual transparency report %d (UTC)", report->year);
  const char *const summary_columns[] = { "year", "audit_records", "first_sequence", "last_sequence", NULL };
  const char *chain_columns[N_CHAIN_MEASURES + 1] = { NULL };
  ChainMeasure chain[N_CHAIN_MEASURES];
  CsvTables set;

  csv_begin_table (out, title, summary_columns);
  csv_end_row (out);
  g_string_append_printf (out, "%d,%u,%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "\r\n", report->year,
                          report->n_audit_records, report->first_sequence, report->last_sequence);

  /* The chain's state comes right after the title, so an altered log is
   * the first thing a reader sees. */
  chain_measures_init (chain, report);
  for (guint i = 0; i < N_CHAIN_MEASURES; i++)
    chain_columns[i] = chain[i].measure;
  csv_begin_table (out, "Audit log integrity", chain_columns);
  csv_end_row (out);
  for (guint i = 0; i < N_CHAIN_MEASURES; i++)
    csv_add_field (out, i == 0, chain[i].value);
  csv_end_row (out);
  chain_measures_clear (chain);

  csv_tables_init (&set, report);
  for (guint i = 0; i < G_N_ELEMENTS (set.tables); i++) {
    csv_begin_table (out, set.tables[i].title, set.tables[i].columns);
    csv_add_rows (out, report, total, set.tables[i].owner_rows, set.tables[i].add_figures);
  }
  csv_tables_clear (&set);

  return g_string_free (out, FALSE);
}

/* Appends one row of the long form. */
static void
csv_long_add (GString *out, const char *table, const char *party_id, const char *party_name,
              const char *measure, const char *value)
{
  csv_add_field (out, TRUE, table);
  csv_add_field (out, FALSE, party_id);
  csv_add_field (out, FALSE, party_name);
  csv_add_field (out, FALSE, measure);
  csv_add_field (out, FALSE, value);
  csv_end_row (out);
}

/* Appends @party's figures in @table as one row per measure. The figures
 * are numbers or empty, so the wide row splits on its commas. */
static void
csv_long_add_party (GString *out, const CimsAnnualReport *report, const CsvTable *table,
                    const CimsReportParty *party)
{
  g_autoptr (GString) figures = g_string_new (NULL);
  g_auto (GStrv) values = NULL;

  table->add_figures (figures, report, party);
  values = g_strsplit (figures->str + (figures->len > 0 ? 1 : 0), ",", -1);
  for (guint i = 0; table->columns[i + 2] != NULL && values[i] != NULL; i++)
    csv_long_add (out, table->key, party->id, party->name, table->columns[i + 2], values[i]);
}

/* Renders the report as one table in long form, one figure per row, which
 * a spreadsheet or statistics tool imports and pivots. */
static char *
report_to_csv_long (const CimsAnnualReport *report)
{
  GString *out = g_string_new ("table,jurisdiction,name,measure,value\r\n");
  g_autoptr (CimsReportParty) total = cims_annual_report_sum (report);
  g_autofree char *year = g_strdup_printf ("%d", report->year);
  g_autofree char *n_records = g_strdup_printf ("%u", report->n_audit_records);
  g_autofree char *first = g_strdup_printf ("%" G_GUINT64_FORMAT, report->first_sequence);
  g_autofree char *last = g_strdup_printf ("%" G_GUINT64_FORMAT, report->last_sequence);
  ChainMeasure chain[N_CHAIN_MEASURES];
  CsvTables set;

  csv_long_add (out, "summary", "", "", "year", year);
  csv_long_add (out, "summary", "", "", "audit_records", n_records);
  csv_long_add (out, "summary", "", "", "first_sequence", first);
  csv_long_add (out, "summary", "", "", "last_sequence", last);

  chain_measures_init (chain, report);
  for (guint i = 0; i < N_CHAIN_MEASURES; i++)
    csv_long_add (out, "audit_chain", "", "", chain[i].measure, chain[i].value);
  chain_measures_clear (chain);

  csv_tables_init (&set, report);
  for (guint i = 0; i < G_N_ELEMENTS (set.tables); i++) {
    const CsvTable *table = &set.tables[i];

    for (guint j = 0; j < report->parties->len; j++) {
      const CimsReportParty *party = g_ptr_array_index (report->parties, j);

      if (!table->owner_rows || party_is_owner_row (party))
        csv_long_add_party (out, report, table, party);
    }
    csv_long_add_party (out, report, table, total);
  }
  csv_tables_clear (&set);

  return g_string_free (out, FALSE);
}

/* ---- HTML --------------------------------------------------------------------- */

static const char html_style[] =
  "body{font-family:\"DejaVu Sans\",Arial,sans-serif;color:#111;margin:2em auto;max-width:60em;"
  "padding:0 1em;line-height:1.4}"
  "h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em}"
  "p.meta{color:#444;margin-top:0}"
  "p.chain-intact{border-left:4px solid #2e7d32;padding:.4em .8em;background:#eef6ee}"
  "div.chain-altered{border:3px solid #b00020;padding:.6em 1em;background:#fdecee;color:#5c0010;"
  "font-size:1.05em;font-weight:bold;-webkit-print-color-adjust:exact;print-color-adjust:exact}"
  "table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}"
  "th,td{border:1px solid #999;padding:.25em .6em}"
  "th{background:#eee;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}"
  "tr.total td{font-weight:bold;background:#f6f6f6}"
  "figure{margin:1em 0}figcaption{font-size:.9em;color:#444}"
  "svg text{font-family:\"DejaVu Sans\",Arial,sans-serif}"
  "@page{size:auto;margin:15mm}"
  "@media print{body{margin:0;max-width:none;font-size:10pt}"
  "section{break-inside:avoid;page-break-inside:avoid}"
  "th{background:#eee;-webkit-print-color-adjust:exact;print-color-adjust:exact}"
  "svg{-webkit-print-color-adjust:exact;print-color-adjust:exact}}";

static void
html_add_text (GString *out, const char *text)
{
  g_autofree char *escaped = g_markup_escape_text (text, -1);

  g_string_append (out, escaped);
}

static void
html_begin_table (GString *out, const char *title, const char *const *columns)
{
  g_string_append (out, "<section>\n<h2>");
  html_add_text (out, title);
  g_string_append (out, "</h2>\n<table>\n<thead><tr>");
  for (guint i = 0; columns[i] != NULL; i++) {
    g_string_append (out, "<th>");
    html_add_text (out, columns[i]);
    g_string_append (out, "</th>");
  }
  g_string_append (out, "</tr></thead>\n<tbody>\n");
}

static void
html_end_table (GString *out)
{
  g_string_append (out, "</tbody>\n</table>\n</section>\n");
}

static void
html_add_number (GString *out, guint64 value)
{
  g_string_append_printf (out, "<td class=\"n\">%" G_GUINT64_FORMAT "</td>", value);
}

typedef void (*HtmlRowFunc) (GString *out, const CimsAnnualReport *report, const CimsReportParty *party);

static void
html_add_rows (GString *out, const CimsAnnualReport *report, const CimsReportParty *total,
               gboolean owner_rows, HtmlRowFunc add_figures)
{
  for (guint i = 0; i <= report->parties->len; i++) {
    const CimsReportParty *party = i < report->parties->len ? g_ptr_array_index (report->parties, i) : total;

    if (party != total && owner_rows && !party_is_owner_row (party))
      continue;
    g_string_append_printf (out, "<tr%s><td>", party == total ? " class=\"total\"" : "");
    html_add_text (out, party->name);
    g_string_append (out, "</td>");
    add_figures (out, report, party);
    g_string_append (out, "</tr>\n");
  }
}

static void
html_cameras (GString *out, const CimsAnnualReport *report, const CimsReportParty *party)
{
  if (report->has_camera_counts)
    html_add_number (out, party->n_cameras_in_service);
  else
    g_string_append (out, "<td class=\"n\">n/a</td>");
}

static void
html_users (GString *out, const CimsAnnualReport *report, const CimsReportParty *party)
{
  html_add_number (out, party->n_users);
  for (guint i = 0; report->permission_names[i] != NULL; i++)
    html_add_number (out, party->users_by_permission[i]);
  for (guint i = 0; report->role_names[i] != NULL; i++)
    html_add_number (out, party->users_by_role[i]);
  html_add_number (out, party->n_users_without_permissions);
  html_add_number (out, party->n_users_rights_unrecorded);
}

static void
html_archive (GString *out, const CimsAnnualReport *report, const CimsReportParty *party)
{
  html_add_number (out, party->n_archive_requests_approved);
}

static void
html_real_time (GString *out, const CimsAnnualReport *report, const CimsReportParty *party)
{
  html_add_number (out, party->n_grants_created);
  html_add_number (out, party->n_incidents_started);
  html_add_number (out, party->n_grants_created + party->n_incidents_started);
}

static void
html_viewing (GString *out, const CimsAnnualReport *report, const CimsReportParty *party)
{
  html_add_number (out, party->n_viewing_sessions);
  g_string_append_printf (out, "<td class=\"n\">%.2f</td>", ms_to_hours (party->viewing_ms));
}

static void
html_monthly (GString *out, const CimsAnnualReport *report, const CimsReportParty *party)
{
  for (guint month = 0; month < 12; month++)
    html_add_number (out, party->monthly_sessions[month]);
  html_add_number (out, party->n_viewing_sessions);
}

static char **
html_users_columns (const CimsAnnualReport *report)
{
  g_autoptr (GStrvBuilder) columns = g_strv_builder_new ();

  g_strv_builder_add_many (columns, "Jurisdiction", "Users", NULL);
  for (guint i = 0; report->permission_names[i] != NULL; i++)
    strv_builder_take (columns, g_strdup_printf ("Permission %s", report->permission_names[i]));
  for (guint i = 0; report->role_names[i] != NULL; i++)
    strv_builder_take (columns, g_strdup_printf ("Role %s", report->role_names[i]));
  g_strv_builder_add_many (columns, "No permissions", "Rights not recorded", NULL);
  return g_strv_builder_end (columns);
}

/* ---- SVG chart ------------------------------------------------------------------ */

#define CHART_WIDTH 760
#define CHART_HEIGHT 340
#define CHART_LEFT 64
#define CHART_RIGHT 190
#define CHART_TOP 20
#define CHART_BOTTOM 56
#define CHART_N_TICKS 5

/* Rounds @max up to 1, 2 or 5 times a power of ten, at least 1, so the
 * axis ticks fall on round numbers. */
static guint
chart_axis_max (guint max)
{
  guint step = 1;

  while (TRUE) {
    if (max <= step)
      return step;
    if (max <= 2 * step)
      return 2 * step;
    if (max <= 5 * step)
      return 5 * step;
    step *= 10;
  }
}

static char *
chart_color (guint index)
{
  if (index < G_N_ELEMENTS (series_colors))
    return g_strdup (series_colors[index]);

  return g_strdup_printf ("hsl(%u,65%%,38%%)", (guint) (index * 137.508) % 360);
}

static double
chart_x (guint month)
{
  double plot_width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT;

  return CHART_LEFT + plot_width * (month + 0.5) / 12.0;
}

static double
chart_y (guint value, guint axis_max)
{
  double plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM;

  return CHART_TOP + plot_height * (1.0 - (double) value / axis_max);
}

static void
chart_add_axes (GString *out, int year, guint axis_max)
{
  double bottom = CHART_HEIGHT - CHART_BOTTOM;
  double right = CHART_WIDTH - CHART_RIGHT;

  for (guint tick = 0; tick <= CHART_N_TICKS; tick++) {
    guint value = axis_max * tick / CHART_N_TICKS;
    double y = chart_y (value, axis_max);

    g_string_append_printf (out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                            "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%u</text>\n",
                            CHART_LEFT, y, right, y, CHART_LEFT - 6, y + 4, value);
  }
  for (guint month = 0; month < 12; month++)
    g_string_append_printf (out, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%s</text>\n",
                            chart_x (month), bottom + 16, month_names[month]);

  g_string_append_printf (out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%.1f\" stroke=\"#333\"/>"
                          "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
                          CHART_LEFT, CHART_TOP, CHART_LEFT, bottom, CHART_LEFT, bottom, right, bottom);
  g_string_append_printf (out, "<text x=\"%.1f\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">"
                          "Month of %d (UTC)</text>\n",
                          (CHART_LEFT + right) / 2.0, CHART_HEIGHT - 12, year);
  g_string_append_printf (out, "<text x=\"16\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\" "
                          "transform=\"rotate(-90 16 %.1f)\">Viewing sessions</text>\n",
                          (CHART_TOP + bottom) / 2.0, (CHART_TOP + bottom) / 2.0);
}

static void
chart_add_series (GString *out, const CimsReportParty *party, guint index, guint axis_max)
{
  g_autofree char *color = chart_color (index);
  g_autofree char *id = g_markup_escape_text (party->id, -1);
  g_autofree char *name = g_markup_escape_text (party->name, -1);
  double legend_y = CHART_TOP + 8 + 18.0 * index;

  g_string_append_printf (out, "<g class=\"series\" data-jurisdiction=\"%s\">\n"
                          "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", id, color);
  for (guint month = 0; month < 12; month++)
    g_string_append_printf (out, "%s%.1f,%.1f", month == 0 ? "" : " ", chart_x (month),
                            chart_y (party->monthly_sessions[month], axis_max));
  g_string_append (out, "\"/>\n");

  for (guint month = 0; month < 12; month++)
    g_string_append_printf (out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\">"
                            "<title>%s, %s: %u</title></circle>\n",
                            chart_x (month), chart_y (party->monthly_sessions[month], axis_max), color,
                            name, month_names[month], party->monthly_sessions[month]);

  /* The legend entry sits right of the plot, one line per series. */
  g_string_append_printf (out, "<rect x=\"%d\" y=\"%.1f\" width=\"14\" height=\"4\" fill=\"%s\"/>"
                          "<text x=\"%d\" y=\"%.1f\" font-size=\"12\">%s</text>\n</g>\n",
                          CHART_WIDTH - CHART_RIGHT + 16, legend_y - 4, color,
                          CHART_WIDTH - CHART_RIGHT + 36, legend_y + 1, name);
}

/* A line chart with one series per party that had viewing sessions. */
static void
html_add_chart (GString *out, const CimsAnnualReport *report)
{
  guint max = 0;
  guint n_series = 0;
  guint axis_max;

  for (guint i = 0; i < report->parties->len; i++) {
    const CimsReportParty *party = g_ptr_array_index (report->parties, i);

    for (guint month = 0; month < 12; month++)
      max = MAX (max, party->monthly_sessions[month]);
  }
  axis_max = chart_axis_max (max);

  g_string_append (out, "<section>\n<h2>Monthly viewing sessions per jurisdiction</h2>\n<figure>\n");
  g_string_append_printf (out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                          "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"Monthly viewing sessions "
                          "per viewer jurisdiction in %d\">\n",
                          CHART_WIDTH, CHART_HEIGHT, CHART_WIDTH, CHART_HEIGHT, report->year);
  chart_add_axes (out, report->year, axis_max);
  for (guint i = 0; i < report->parties->len; i++) {
    const CimsReportParty *party = g_ptr_array_index (report->parties, i);

    if (party->n_viewing_sessions > 0)
      chart_add_series (out, party, n_series++, axis_max);
  }
  if (n_series == 0)
    g_string_append_printf (out, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\">"
                            "No viewing sessions in %d</text>\n",
                            (CHART_LEFT + CHART_WIDTH - CHART_RIGHT) / 2.0, CHART_HEIGHT / 2.0, report->year);
  g_string_append (out, "</svg>\n<figcaption>Sessions ended in each month, by the viewer's "
                   "jurisdiction or agency.</figcaption>\n</figure>\n</section>\n");
}

/* Writes the chain's state under the title. An altered log gets a boxed
 * warning that stays visible in print. */
static void
html_add_chain (GString *out, const CimsAnnualReport *report)
{
  g_autofree char *statement = chain_statement (report);

  if (report->is_chain_intact && report->n_checkpoint_mismatches == 0) {
    g_string_append (out, "<p class=\"chain-intact\" id=\"audit-chain\" data-state=\"intact\">");
    html_add_text (out, statement);
    g_string_append (out, "</p>\n");
    return;
  }

  g_string_append_printf (out, "<div class=\"chain-altered\" id=\"audit-chain\" data-state=\"%s\" role=\"alert\">",
                          report->is_chain_intact ? "intact-with-mismatches" : "altered");
  html_add_text (out, statement);
  g_string_append (out, "</div>\n");
}

static void
html_add_header (GString *out, const CimsAnnualReport *report)
{
  g_autofree char *from = cims_audit_time_format_ms (report->from_ms);
  g_autofree char *to = cims_audit_time_format_ms (report->to_ms);

  g_string_append_printf (out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                          "<title>Camera network transparency report %d</title>\n<style>%s</style>\n"
                          "</head>\n<body>\n<h1>Camera network transparency report %d</h1>\n",
                          report->year, html_style, report->year);
  g_string_append_printf (out, "<p class=\"meta\">From %s to %s (exclusive). Computed from %u audit "
                          "records", from, to, report->n_audit_records);
  if (report->n_audit_records > 0)
    g_string_append_printf (out, ", sequence %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT,
                            report->first_sequence, report->last_sequence);
  g_string_append (out, ", and the camera inventory in the hub's configuration.</p>\n");
  html_add_chain (out, report);
}

static char *
report_to_html (const CimsAnnualReport *report)
{
  GString *out = g_string_new (NULL);
  g_autoptr (CimsReportParty) total = cims_annual_report_sum (report);
  g_auto (GStrv) users_columns = html_users_columns (report);
  g_auto (GStrv) monthly_columns = g_new0 (char *, 15);
  const char *const camera_columns[] = { "Jurisdiction", "Cameras in service", NULL };
  const char *const archive_columns[] = { "Owning jurisdiction", "Requests approved", NULL };
  const char *const real_time_columns[] = {
    "Owning jurisdiction", "Grants created", "Major incidents started", "Total", NULL,
  };
  const char *const viewing_columns[] = { "Viewer jurisdiction", "Sessions", "Viewing hours", NULL };

  monthly_columns[0] = g_strdup ("Viewer jurisdiction");
  for (guint month = 0; month < 12; month++)
    monthly_columns[month + 1] = g_strdup (month_names[month]);
  monthly_columns[13] = g_strdup ("Total");

  html_add_header (out, report);
  html_begin_table (out, "Cameras in service", camera_columns);
  html_add_rows (out, report, total, TRUE, html_cameras);
  html_end_table (out);
  html_begin_table (out, "Users on the network and their permission levels",
                    (const char *const *) users_columns);
  html_add_rows (out, report, total, FALSE, html_users);
  html_end_table (out);
  html_begin_table (out, "Archive-footage requests approved", archive_columns);
  html_add_rows (out, report, total, TRUE, html_archive);
  html_end_table (out);
  html_begin_table (out, "Real-time access granted to another agency", real_time_columns);
  html_add_rows (out, report, total, TRUE, html_real_time);
  html_end_table (out);
  html_begin_table (out, "Viewing sessions and hours", viewing_columns);
  html_add_rows (out, report, total, FALSE, html_viewing);
  html_end_table (out);
  html_begin_table (out, "Monthly viewing sessions", (const char *const *) monthly_columns);
  html_add_rows (out, report, total, FALSE, html_monthly);
  html_end_table (out);
  html_add_chart (out, report);
  g_string_append (out, "</body>\n</html>\n");

  return g_string_free (out, FALSE);
}

char *
cims_annual_report_render (const CimsAnnualReport *report, CimsReportFormat format)
{
  g_return_val_if_fail (report != NULL, NULL);

  switch (format) {
  case CIMS_REPORT_FORMAT_CSV:
    return report_to_csv (report);
  case CIMS_REPORT_FORMAT_CSV_LONG:
    return report_to_csv_long (report);
  case CIMS_REPORT_FORMAT_HTML:
    return report_to_html (report);
  case CIMS_REPORT_FORMAT_JSON:
  default:
    return report_to_json (report);
  }
}
