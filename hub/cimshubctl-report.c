/* SPDX-License-Identifier: Apache-2.0 */
/* cimshubctl report annual: computes the annual transparency report from
 * the state database and the configuration on this machine, with the same
 * code as GET /api/v1/reports/annual (auth/report.c). */
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "auth/report.h"
#include "hub/cimshubctl-private.h"
#include "hub/cimshubctl-store.h"

typedef struct {
  char *year;
  char *format;
  char *output_path;
} ReportOptions;

static void
report_options_clear (ReportOptions *options)
{
  g_clear_pointer (&options->year, g_free);
  g_clear_pointer (&options->format, g_free);
  g_clear_pointer (&options->output_path, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ReportOptions, report_options_clear)

/* Reads --year into @year. Fails with a G_OPTION_ERROR when the option is
 * missing, and one naming the value when it is malformed or out of range. */
static gboolean
year_option_parse (const char *text, int *year, GError **error)
{
  gint64 value = 0;

  if (text == NULL) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--year is required: a year from %d to %d",
                 CIMS_REPORT_MIN_YEAR, CIMS_REPORT_MAX_YEAR);
    return FALSE;
  }
  if (!g_ascii_string_to_signed (text, 10, G_MININT64, G_MAXINT64, &value, NULL)) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--year \"%s\" is not a year: use a year from "
                 "%d to %d", text, CIMS_REPORT_MIN_YEAR, CIMS_REPORT_MAX_YEAR);
    return FALSE;
  }
  if (value < CIMS_REPORT_MIN_YEAR || value > CIMS_REPORT_MAX_YEAR) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--year %s is out of range (%d to %d)", text,
                 CIMS_REPORT_MIN_YEAR, CIMS_REPORT_MAX_YEAR);
    return FALSE;
  }

  *year = (int) value;
  return TRUE;
}

static gboolean
report_options_parse (ReportOptions *options, CimsCtlStoreOptions *store_options, int *year,
                      CimsReportFormat *format, int argc, char **argv, GError **error)
{
  const GOptionEntry entries[] = {
    { "year", 0, 0, G_OPTION_ARG_STRING, &options->year, "Calendar year to report (UTC)", "YEAR" },
    { "format", 0, 0, G_OPTION_ARG_STRING, &options->format, "json (default), csv (titled tables), csv-long (one row per figure) or html", "FORMAT" },
    { "output", 0, 0, G_OPTION_ARG_FILENAME, &options->output_path, "Write to FILE instead of standard output",
      "FILE" },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr (GOptionContext) context = g_option_context_new (NULL);

  g_option_context_set_summary (context, "Computes the annual transparency report from the audit log and the "
                                "configuration. Without --config, cameras are not counted. The report checks "
                                "the log's hash chain as audit verify does: over an altered log it is still "
                                "written, with a warning at its top, and the command then warns on stderr and "
                                "exits 1.");
  g_option_context_add_main_entries (context, entries, NULL);
  cims_ctl_store_options_add (context, store_options);
  if (!g_option_context_parse (context, &argc, &argv, error))
    return FALSE;

  if (argc > 1) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "unexpected argument \"%s\"", argv[1]);
    return FALSE;
  }
  if (!year_option_parse (options->year, year, error))
    return FALSE;
  if (!cims_report_format_from_string (options->format != NULL ? options->format : "json", format)) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--format \"%s\" is invalid: use json, csv, "
                 "csv-long or html", options->format);
    return FALSE;
  }
  return TRUE;
}

static int
report_write (const char *text, const char *output_path)
{
  g_autoptr (GError) error = NULL;

  if (output_path == NULL) {
    if (fputs (text, stdout) == EOF || fflush (stdout) != 0) {
      fprintf (stderr, "%s: writing the report to standard output failed\n", g_get_prgname ());
      return CTL_EXIT_FAILED;
    }
    return CTL_EXIT_OK;
  }

  if (!g_file_set_contents (output_path, text, -1, &error)) {
    fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
    return CTL_EXIT_FAILED;
  }
  return CTL_EXIT_OK;
}

int
cims_ctl_report_annual_run (int argc, char **argv)
{
  g_auto (ReportOptions) options = { 0 };
  g_auto (CimsCtlStoreOptions) store_options = { 0 };
  g_autoptr (CimsConfig) config = NULL;
  g_autoptr (CimsStore) store = NULL;
  g_autoptr (CimsAnnualReport) report = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *text = NULL;
  CimsReportFormat format = CIMS_REPORT_FORMAT_JSON;
  int year = 0;
  int status;

  if (!report_options_parse (&options, &store_options, &year, &format, argc, argv, &error))
    return cims_ctl_usage_error (error->message);

  store = cims_ctl_store_open (&store_options, &config, &error);
  if (store == NULL)
    return cims_ctl_store_open_failed (error);

  report = cims_annual_report_compute (store, config, year, NULL, &error);
  if (report == NULL) {
    fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
    return CIMS_CTL_EXIT_NO_DATABASE;
  }

  text = cims_annual_report_render (report, format);
  status = report_write (text, options.output_path);
  if (status == CTL_EXIT_OK && report->n_checkpoint_mismatches > 0)
    fprintf (stderr, "%s: warning: the log has %" G_GUINT64_FORMAT " audit-log-mismatch records (%s): a hub "
             "found the log or its grants and incidents tables changed behind it; each record's reason says how\n",
             g_get_prgname (), report->n_checkpoint_mismatches, report->checkpoint_mismatches);
  if (status != CTL_EXIT_OK || report->is_chain_intact)
    return status;

  fprintf (stderr, "%s: warning: the audit log was altered at record %" G_GUINT64_FORMAT ": %s; the report "
           "says so at its top, and `cimshubctl audit verify` gives the details\n", g_get_prgname (),
           report->chain_first_bad_sequence, report->chain_problem ? report->chain_problem : "see the report");
  return CTL_EXIT_FAILED;
}
