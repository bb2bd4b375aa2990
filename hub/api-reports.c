/* SPDX-License-Identifier: Apache-2.0 */
/* GET /api/v1/reports/annual?year=Y&format=json|csv|html: the annual
 * transparency report for auditors, System Administrators and commanders.
 * auth/report.c computes the figures from the audit log and the
 * configuration, on a thread of its own so that the main context goes on
 * serving viewers, revocations and expiries meanwhile. Stopping the hub
 * cancels the report. */
#include "hub/hub-runtime.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

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

  reason = g_strdup_printf ("Query parameter year must be a year from %d to %d, e.g. year=2025.",
                            CIMS_REPORT_MIN_YEAR, CIMS_REPORT_MAX_YEAR);
  cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-parameter", reason);
  return FALSE;
}

static gboolean
query_get_format (SoupServerMessage *msg, GHashTable *query, CimsReportFormat *format)
{
  const char *text = query != NULL ? g_hash_table_lookup (query, "format") : NULL;

  *format = CIMS_REPORT_FORMAT_JSON;
  if (text == NULL || cims_report_format_from_string (text, format))
    return TRUE;

  cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-parameter",
                         "Query parameter format must be json, csv or html.");
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
  if (format == CIMS_REPORT_FORMAT_CSV) {
    disposition = g_strdup_printf ("attachment; filename=\"cimshub-annual-report-%d.csv\"", report->year);
    soup_message_headers_replace (headers, "Content-Disposition", disposition);
  }
  soup_message_headers_replace (headers, "Cache-Control", "no-store");

  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, cims_report_format_content_type (format), SOUP_MEMORY_TAKE, body,
                                    strlen (body));
}

/* The report thread's nice value: background work beside the media. */
#define REPORT_THREAD_NICE 10

/* One annual report request. The report thread fills @report or @error,
 * then the main context replies to the paused @msg. */
typedef struct {
  CimsHub *hub;
  SoupServerMessage *msg;
  char *store_path;
  CimsConfig *config;           /* the configuration when the request came */
  int year;
  CimsReportFormat format;
  char *subject;
  char *jurisdiction;
  GCancellable *cancellable;    /* the hub's, cancelled when it stops */
  CimsAnnualReport *report;
  GError *error;
} ReportJob;

static void
report_job_free (ReportJob *job)
{
  g_object_unref (job->msg);
  g_free (job->store_path);
  cims_config_unref (job->config);
  g_free (job->subject);
  g_free (job->jurisdiction);
  g_object_unref (job->cancellable);
  g_clear_pointer (&job->report, cims_annual_report_free);
  g_clear_error (&job->error);
  g_free (job);
}

static gboolean
report_reply_on_main_cb (gpointer user_data)
{
  ReportJob *job = user_data;

  /* A hub that stopped has closed every connection, this request's too,
   * so there is nothing to send the reply on. */
  if (job->hub->http == NULL) {
    if (g_error_matches (job->error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
      g_message ("annual report %d for %s (%s) stopped: the hub is stopping", job->year, job->subject,
                 job->jurisdiction);
    report_job_free (job);
    return G_SOURCE_REMOVE;
  }

  if (job->report != NULL) {
    reply_report (job->msg, job->report, job->format);
  } else {
    g_warning ("annual report %d for %s (%s) failed: %s", job->year, job->subject, job->jurisdiction,
               job->error->message);
    cims_api_reply_store_error (job->msg, job->error);
  }

  soup_server_message_unpause (job->msg);
  report_job_free (job);
  return G_SOURCE_REMOVE;
}

/* Report thread. A year's log can contain millions of records, so the
 * report reads it through its own connection. In WAL mode that read neither
 * waits for the main context's audit writes nor delays them. */
static void
report_compute (gpointer data, gpointer user_data)
{
  ReportJob *job = data;
  CimsHub *hub = user_data;
  g_autoptr (CimsStore) store = NULL;

  /* On Linux a nice value set with a thread id applies to that thread only:
   * the report then yields the core to the media workers and the main loop. */
  if (setpriority (PRIO_PROCESS, (id_t) gettid (), REPORT_THREAD_NICE) != 0)
    g_debug ("annual report thread: setpriority(%d) failed: %s", REPORT_THREAD_NICE, g_strerror (errno));

  /* A report queued behind the one running is skipped once the hub stops. */
  if (!g_cancellable_set_error_if_cancelled (job->cancellable, &job->error)) {
    store = cims_store_sqlite_open_reader (job->store_path, &job->error);
    if (store != NULL)
      job->report = cims_annual_report_compute (store, job->config, job->year, job->cancellable,
                                                &job->error);
  }

  g_main_context_invoke (hub->main_context, report_reply_on_main_cb, job);
}

/* On first use, makes the report thread and the cancellable that stops its
 * reports. */
static void
report_pool_ensure (CimsHub *hub)
{
  if (hub->report_pool != NULL)
    return;

  /* Exclusive: the thread keeps its nice value to itself, where a shared
   * pool thread would carry it on to GLib's and GStreamer's other work. */
  hub->report_pool = g_thread_pool_new (report_compute, hub, 1, TRUE, NULL);
  hub->reports_cancellable = g_cancellable_new ();
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
  if (hub->store_path == NULL) {
    cims_http_reply_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "store-unavailable",
                           "The audit log is not open.");
    return;
  }

  job = g_new0 (ReportJob, 1);
  job->hub = hub;
  job->msg = g_object_ref (msg);
  job->store_path = g_strdup (hub->store_path);
  job->config = cims_config_ref (hub->config);
  job->year = year;
  job->format = format;
  job->subject = g_strdup (identity->subject);
  job->jurisdiction = g_strdup (identity->jurisdiction);

  report_pool_ensure (hub);
  job->cancellable = g_object_ref (hub->reports_cancellable);

  soup_server_message_pause (msg);
  g_thread_pool_push (hub->report_pool, job, NULL);
}

void
cims_api_reports_stop (CimsHub *hub)
{
  if (hub->report_pool == NULL)
    return;

  /* The running report stops within a few hundred records' worth of
   * reading, also while SQLite sorts the year's records, and queued ones are
   * skipped. Their replies wait on the main context, which the hub owns to
   * the end and iterates once more before it is freed, and are dropped
   * there. */
  g_cancellable_cancel (hub->reports_cancellable);
  g_thread_pool_free (g_steal_pointer (&hub->report_pool), FALSE, TRUE);
  g_clear_object (&hub->reports_cancellable);
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
