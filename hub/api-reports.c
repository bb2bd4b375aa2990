/* SPDX-License-Identifier: Apache-2.0 */
/* GET /api/v1/reports/annual?year=Y&format=json|csv|csv-long|html: the annual
 * transparency report for auditors, System Administrators and commanders.
 * auth/report.c computes the figures from the audit log and the
 * configuration, on the offload thread (api-offload.c) so that the main
 * context goes on serving viewers, revocations and expiries meanwhile.
 * Stopping the hub cancels the report. */
#include "hub/hub-runtime.h"

#include <string.h>

#include "auth/report.h"

static const char *const report_roles[] = { "auditor", "system-administrator", "commander" };

static gboolean
may_read_reports (const CimsAuthIdentity *identity)
{
  for (gsize i = 0; i < G_N_ELEMENTS (report_roles); i++) {
    if (cims_auth_identity_has_role (identity, report_roles[i]))
      return TRUE;
  }
  return FALSE;
}

static gboolean
query_get_year (SoupServerMessage *msg, GHashTable *query, int *year)
{
  const char *text = query != NULL ? g_hash_table_lookup (query, "year") : NULL;
  g_autofree char *reason = NULL;
  guint64 value = 0;

  if (text != NULL && g_ascii_string_to_unsigned (text, 10, CIMS_REPORT_MIN_YEAR, CIMS_REPORT_MAX_YEAR,
                                                  &value, NULL)) {
    *year = (int) value;
    return TRUE;
  }

  if (text == NULL)
    reason = g_strdup_printf ("Query parameter year is required: a year from %d to %d, e.g. year=2025.",
                              CIMS_REPORT_MIN_YEAR, CIMS_REPORT_MAX_YEAR);
  else
    reason = g_strdup_printf ("Query parameter year=\"%.32s\" is invalid: expected a year from %d to %d, "
                              "e.g. year=2025.", text, CIMS_REPORT_MIN_YEAR, CIMS_REPORT_MAX_YEAR);
  cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-parameter", reason);
  return FALSE;
}

static gboolean
query_get_format (SoupServerMessage *msg, GHashTable *query, CimsReportFormat *format)
{
  const char *text = query != NULL ? g_hash_table_lookup (query, "format") : NULL;
  g_autofree char *reason = NULL;

  *format = CIMS_REPORT_FORMAT_JSON;
  if (text == NULL || cims_report_format_from_string (text, format))
    return TRUE;

  reason = g_strdup_printf ("Query parameter format=\"%.32s\" is invalid: expected json, csv, csv-long or html.", text);
  cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-parameter", reason);
  return FALSE;
}

/* Sends the rendered report. The HTML page needs no script and no outside
 * resource, so its Content-Security-Policy allows inline styles only. */
static void
reply_report (SoupServerMessage *msg, const CimsAnnualReport *report, CimsReportFormat format)
{
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);
  char *body = cims_annual_report_render (report, format);
  g_autofree char *disposition = NULL;

  if (format == CIMS_REPORT_FORMAT_HTML)
    soup_message_headers_replace (headers, "Content-Security-Policy",
                                  "default-src 'none'; style-src 'unsafe-inline'; img-src data:");
  if (format == CIMS_REPORT_FORMAT_CSV || format == CIMS_REPORT_FORMAT_CSV_LONG) {
    disposition = g_strdup_printf ("attachment; filename=\"cimshub-annual-report-%d%s.csv\"", report->year,
                                   format == CIMS_REPORT_FORMAT_CSV_LONG ? "-long" : "");
    soup_message_headers_replace (headers, "Content-Disposition", disposition);
  }
  soup_message_headers_replace (headers, "Cache-Control", "no-store");

  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, cims_report_format_content_type (format), SOUP_MEMORY_TAKE, body,
                                    strlen (body));
}

/* One annual report request. The offload thread fills @report. */
typedef struct {
  CimsConfig *config;           /* the configuration when the request came */
  int year;
  CimsReportFormat format;
  CimsAnnualReport *report;
} ReportJob;

static void
report_job_free (ReportJob *job)
{
  cims_config_unref (job->config);
  g_clear_pointer (&job->report, cims_annual_report_free);
  g_free (job);
}

/* Offload thread. A year's log can contain millions of records, so the
 * report counts them as it reads them. */
static gboolean
report_compute (CimsStore *store, gpointer data, GCancellable *cancellable, GError **error)
{
  ReportJob *job = data;

  job->report = cims_annual_report_compute (store, job->config, job->year, cancellable, error);
  return job->report != NULL;
}

static void
report_reply (SoupServerMessage *msg, gpointer data)
{
  ReportJob *job = data;

  reply_report (msg, job->report, job->format);
}

static void
report_annual (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity, GHashTable *query)
{
  g_autofree char *reason = NULL;
  CimsReportFormat format;
  ReportJob *job;
  int year = 0;

  if (!may_read_reports (identity)) {
    reason = g_strdup_printf ("The annual report needs the auditor, system-administrator or commander role; "
                              "%s (%s) has none of them.", identity->subject, identity->jurisdiction);
    cims_api_reply_forbidden (msg, "role-required", reason);
    return;
  }
  if (!query_get_year (msg, query, &year) || !query_get_format (msg, query, &format))
    return;

  job = g_new0 (ReportJob, 1);
  job->config = cims_config_ref (hub->config);
  job->year = year;
  job->format = format;

  cims_api_offload_push (hub, msg,
                         g_strdup_printf ("annual report %d for %s (%s)", year, identity->subject,
                                          identity->jurisdiction),
                         report_compute, report_reply, job, (GDestroyNotify) report_job_free);
}

void
cims_api_reports_handle (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity,
                         const char *rest, GHashTable *query)
{
  if (!g_str_equal (rest, "/annual")) {
    cims_http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not-found",
                           "No such report; the annual report is /api/v1/reports/annual?year=Y.");
    return;
  }
  if (!g_str_equal (soup_server_message_get_method (msg), "GET")) {
    cims_api_reply_method_not_allowed (msg, "GET");
    return;
  }

  report_annual (hub, msg, identity, query);
}
