/* SPDX-License-Identifier: Apache-2.0 */
/* cimshub-whep-viewer: runs N WHEP viewers of one camera in one process and
 * one GMainContext, then prints per-viewer results. Option parsing, start
 * ramp, timers and the summary are here; one viewer is whep-viewer-session.c. */
#include "bench/whep-viewer.h"
#include "hub/fd-budget.h"

#include <stdlib.h>
#include <string.h>

#include <glib-unix.h>
#include <json-glib/json-glib.h>

#define TICK_INTERVAL_MS 20
#define DEFAULT_IDLE_TIMEOUT_MS 5000
#define EXIT_USAGE 2

typedef struct {
  CimsWhepViewerOptions options;
  CimsWhepViewerShared shared;
  GPtrArray *viewers;              /* of CimsWhepViewer, in start order */
  guint n_started;
  guint n_done;
  gint64 started_us;
} Run;

/* ---- options ------------------------------------------------------------------ */

typedef struct {
  char *url;
  char *camera;
  char *token;
  char *token_file;
  char *incident_number;
  char *client;
  char *setup;
  char *srtp_profiles;
  int n_viewers;
  int ramp_ms;
  int duration_s;
  int idle_timeout_ms;
  int pli_interval_ms;
  int dtls_drops;
  int answer_delay_ms;
  int expected_status;
  gboolean offers_vp8;
  gboolean offers_h265;
  gboolean omits_h264;
  gboolean has_bad_fingerprint;
  gboolean prints_json;
  gboolean prints_events;
  char *local_address;
  gboolean is_janus;
  int latency_after_ms;
  gboolean takes_socket_timestamps;
} RawOptions;

static G_GNUC_NORETURN G_GNUC_PRINTF (1, 2) void
usage_fail (const char *format, ...)
{
  va_list args;

  va_start (args, format);
  fputs ("cimshub-whep-viewer: ", stderr);
  vfprintf (stderr, format, args);
  fputs ("\nRun with --help for the options.\n", stderr);
  va_end (args);
  exit (EXIT_USAGE);
}

static void
options_parse_raw (int *argc, char ***argv, RawOptions *raw)
{
  GOptionEntry entries[] = {
    { "url", 0, 0, G_OPTION_ARG_STRING, &raw->url, "Hub base URL, e.g. http://127.0.0.1:8080 (required)", "BASE" },
    { "camera", 0, 0, G_OPTION_ARG_STRING, &raw->camera, "Camera id to watch (required)", "ID" },
    { "token", 0, 0, G_OPTION_ARG_STRING, &raw->token, "Bearer token", "TOKEN" },
    { "token-file", 0, 0, G_OPTION_ARG_FILENAME, &raw->token_file, "File holding the bearer token", "FILE" },
    { "incident-number", 0, 0, G_OPTION_ARG_STRING, &raw->incident_number, "X-Incident-Number header value", "N" },
    { "client", 0, 0, G_OPTION_ARG_STRING, &raw->client, "Client version sent as ?client=", "C" },
    { "viewers", 0, 0, G_OPTION_ARG_INT, &raw->n_viewers, "Number of viewers (default 1)", "N" },
    { "ramp-ms", 0, 0, G_OPTION_ARG_INT, &raw->ramp_ms, "Milliseconds between viewer starts (default 0)", "MS" },
    { "duration", 0, 0, G_OPTION_ARG_INT, &raw->duration_s,
      "Seconds each viewer watches after its answer before DELETE; 0 until the hub ends it (default 0)", "S" },
    { "idle-timeout", 0, 0, G_OPTION_ARG_INT, &raw->idle_timeout_ms,
      "End a viewer after this many ms without media (default 5000)", "MS" },
    { "pli-interval", 0, 0, G_OPTION_ARG_INT, &raw->pli_interval_ms, "Send a PLI every MS milliseconds", "MS" },
    { "drop-dtls", 0, 0, G_OPTION_ARG_INT, &raw->dtls_drops,
      "Drop the first N DTLS datagrams from the hub, as if they were lost (default 0)", "N" },
    { "answer-delay-ms", 0, 0, G_OPTION_ARG_INT, &raw->answer_delay_ms,
      "Apply the hub's answer this many ms after it arrives, as a slow client would (default 0)", "MS" },
    { "setup", 0, 0, G_OPTION_ARG_STRING, &raw->setup, "Offered DTLS role: actpass (default), active or passive",
      "ROLE" },
    { "srtp-profiles", 0, 0, G_OPTION_ARG_STRING, &raw->srtp_profiles,
      "OpenSSL DTLS-SRTP profile list to offer (default: GCM, then SRTP_AES128_CM_SHA1_80)", "LIST" },
    { "vp8", 0, 0, G_OPTION_ARG_NONE, &raw->offers_vp8, "Offer VP8 after H.264", NULL },
    { "h265", 0, 0, G_OPTION_ARG_NONE, &raw->offers_h265, "Offer H.265 after H.264", NULL },
    { "no-h264", 0, 0, G_OPTION_ARG_NONE, &raw->omits_h264, "Offer no H.264 (with --vp8: a VP8-only client)", NULL },
    { "bad-fingerprint", 0, 0, G_OPTION_ARG_NONE, &raw->has_bad_fingerprint,
      "Offer a fingerprint that does not match the viewer's certificate", NULL },
    { "expect-status", 0, 0, G_OPTION_ARG_INT, &raw->expected_status,
      "Exit 0 only if every POST returned this HTTP status", "CODE" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &raw->prints_json, "Print one JSON object per viewer and a summary", NULL },
    { "events", 0, 0, G_OPTION_ARG_NONE, &raw->prints_events,
      "Print a JSON line at each viewer's first keyframe and end", NULL },
    { "local-address", 0, 0, G_OPTION_ARG_STRING, &raw->local_address,
      "IPv4 address of the viewers' ICE host candidates (default 127.0.0.1)", "ADDRESS" },
    { "janus", 0, 0, G_OPTION_ARG_NONE, &raw->is_janus,
      "Watch through the Janus streaming plugin's HTTP API instead of WHEP: --url is Janus's base "
      "(e.g. http://HOST:8088/janus), --camera the numeric mountpoint id, no token", NULL },
    { "latency-after-ms", 0, 0, G_OPTION_ARG_INT, &raw->latency_after_ms,
      "Count source-to-viewer latency only from this many ms after the start (default 0)", "MS" },
    { "socket-timestamps", 0, 0, G_OPTION_ARG_NONE, &raw->takes_socket_timestamps,
      "Also measure latency to the kernel's receive time in each viewer's socket, and report each "
      "viewer's join_burst_packets: the most packets before its first whole keyframe that arrived "
      "less than 0.5 ms apart. The kernel then timestamps every packet it receives, at a cost to "
      "the sender's CPU", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) context = g_option_context_new ("- WebRTC WHEP viewers for tests and benchmarks");
  g_autoptr (GError) error = NULL;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, argc, argv, &error))
    usage_fail ("%s", error->message);
  if (*argc > 1)
    usage_fail ("unexpected argument \"%s\"", (*argv)[1]);
}

static char *
token_read (const char *path)
{
  g_autofree char *contents = NULL;
  g_autoptr (GError) error = NULL;

  if (!g_file_get_contents (path, &contents, NULL, &error))
    usage_fail ("cannot read --token-file: %s", error->message);

  return g_strdup (g_strstrip (contents));
}

static CimsWhepViewerSetup
setup_parse (const char *text)
{
  if (text == NULL || strcmp (text, "actpass") == 0)
    return CIMS_WHEP_VIEWER_SETUP_ACTPASS;
  if (strcmp (text, "active") == 0)
    return CIMS_WHEP_VIEWER_SETUP_ACTIVE;
  if (strcmp (text, "passive") == 0)
    return CIMS_WHEP_VIEWER_SETUP_PASSIVE;

  usage_fail ("--setup is \"%s\"; expected actpass, active or passive", text);
}

static void
options_check_numbers (const RawOptions *raw)
{
  if (raw->n_viewers < 1 || raw->n_viewers > 100000)
    usage_fail ("--viewers must be 1 to 100000, not %d", raw->n_viewers);
  if (raw->ramp_ms < 0 || raw->duration_s < 0 || raw->pli_interval_ms < 0)
    usage_fail ("--ramp-ms, --duration and --pli-interval must not be negative");
  if (raw->dtls_drops < 0 || raw->dtls_drops > 100)
    usage_fail ("--drop-dtls must be 0 to 100, not %d", raw->dtls_drops);
  if (raw->answer_delay_ms < 0 || raw->answer_delay_ms > 10000)
    usage_fail ("--answer-delay-ms must be 0 to 10000, not %d", raw->answer_delay_ms);
  if (raw->idle_timeout_ms < 1)
    usage_fail ("--idle-timeout must be at least 1 ms, not %d", raw->idle_timeout_ms);
  if (raw->expected_status != 0 && (raw->expected_status < 100 || raw->expected_status > 599))
    usage_fail ("--expect-status must be an HTTP status 100-599, not %d", raw->expected_status);
}

static void
options_parse (int *argc, char ***argv, CimsWhepViewerOptions *options)
{
  RawOptions raw = { .n_viewers = 1, .idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS };

  options_parse_raw (argc, argv, &raw);
  if (raw.url == NULL || raw.camera == NULL)
    usage_fail ("--url and --camera are required");
  if (!g_str_has_prefix (raw.url, "http://") && !g_str_has_prefix (raw.url, "https://"))
    usage_fail ("--url must start with http:// or https://, not \"%s\"", raw.url);
  if (!raw.is_janus && (raw.token == NULL) == (raw.token_file == NULL))
    usage_fail ("give exactly one of --token and --token-file");
  if (raw.is_janus
      && !g_ascii_string_to_unsigned (raw.camera, 10, 1, G_MAXINT64, &options->janus_mountpoint_id, NULL))
    usage_fail ("with --janus, --camera is a numeric mountpoint id, not \"%s\"", raw.camera);
  if (raw.latency_after_ms < 0)
    usage_fail ("--latency-after-ms must not be negative");
  options_check_numbers (&raw);

  options->base_url = g_strdup (raw.url);
  if (g_str_has_suffix (options->base_url, "/"))
    options->base_url[strlen (options->base_url) - 1] = '\0';
  options->camera_id = raw.camera;
  options->token = raw.token != NULL ? raw.token : raw.token_file != NULL ? token_read (raw.token_file)
                                                                           : g_strdup ("");
  options->incident_number = raw.incident_number;
  options->client = raw.client;
  options->n_viewers = (guint) raw.n_viewers;
  options->ramp_ms = (guint) raw.ramp_ms;
  options->duration_s = (guint) raw.duration_s;
  options->idle_timeout_ms = (guint) raw.idle_timeout_ms;
  options->pli_interval_ms = (guint) raw.pli_interval_ms;
  options->dtls_drops = (guint) raw.dtls_drops;
  options->answer_delay_ms = (guint) raw.answer_delay_ms;
  options->setup = setup_parse (raw.setup);
  options->srtp_profiles = raw.srtp_profiles;
  options->offers_vp8 = raw.offers_vp8;
  options->offers_h265 = raw.offers_h265;
  options->omits_h264 = raw.omits_h264;
  options->has_bad_fingerprint = raw.has_bad_fingerprint;
  options->expected_status = (guint) raw.expected_status;
  options->prints_json = raw.prints_json;
  options->prints_events = raw.prints_events;
  options->local_address = raw.local_address != NULL ? raw.local_address : g_strdup ("127.0.0.1");
  options->is_janus = raw.is_janus;
  options->latency_after_ms = (guint) raw.latency_after_ms;
  options->takes_socket_timestamps = raw.takes_socket_timestamps;
  g_free (raw.url);
  g_free (raw.token_file);
  g_free (raw.setup);
}

/* ---- running --------------------------------------------------------------------- */

static void
viewer_ended_cb (CimsWhepViewer *viewer, gpointer user_data)
{
  Run *run = user_data;

  run->n_done++;
  if (run->n_done == run->viewers->len)
    cims_worker_loop_quit (run->shared.loop);
}

/* Starts the viewers whose turn has come and runs every started viewer's
 * timers. One timer for all viewers keeps the cost per viewer to a few
 * comparisons per tick. */
static gboolean
tick_cb (gpointer user_data)
{
  Run *run = user_data;
  gint64 now_us = g_get_monotonic_time ();
  gint64 elapsed_ms = (now_us - run->started_us) / 1000;

  while (run->n_started < run->viewers->len && (gint64) run->n_started * run->options.ramp_ms <= elapsed_ms)
    cims_whep_viewer_start (g_ptr_array_index (run->viewers, run->n_started++));

  for (guint i = 0; i < run->n_started; i++)
    cims_whep_viewer_tick (g_ptr_array_index (run->viewers, i), now_us);

  return G_SOURCE_CONTINUE;
}

static gboolean
interrupt_cb (gpointer user_data)
{
  Run *run = user_data;

  g_message ("interrupted: ending %u viewers", run->viewers->len - run->n_done);
  for (guint i = 0; i < run->viewers->len; i++) {
    CimsWhepViewer *viewer = g_ptr_array_index (run->viewers, i);

    if (i >= run->n_started) {
      run->n_done++;
      continue;
    }
    cims_whep_viewer_interrupt (viewer);
  }
  run->n_started = run->viewers->len;
  if (run->n_done == run->viewers->len)
    cims_worker_loop_quit (run->shared.loop);

  return G_SOURCE_CONTINUE;
}

static void
run_loop (Run *run)
{
  guint tick_id;
  guint sigint_id;
  guint sigterm_id;

  run->started_us = g_get_monotonic_time ();
  tick_cb (run);
  tick_id = g_timeout_add (TICK_INTERVAL_MS, tick_cb, run);
  sigint_id = g_unix_signal_add (SIGINT, interrupt_cb, run);
  sigterm_id = g_unix_signal_add (SIGTERM, interrupt_cb, run);

  cims_worker_loop_run (run->shared.loop);

  g_source_remove (tick_id);
  g_source_remove (sigint_id);
  g_source_remove (sigterm_id);
  /* Lets cancelled requests report before their viewers are freed. */
  while (g_main_context_iteration (run->shared.context, FALSE))
    ;
}

/* ---- results ------------------------------------------------------------------------ */

static int
compare_doubles (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a;
  double y = *(const double *) b;

  return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted @values; -1 when empty. */
static double
percentile (GArray *values, double fraction)
{
  guint rank;

  if (values->len == 0)
    return -1;

  rank = (guint) (fraction * values->len + 0.999999);
  return g_array_index (values, double, CLAMP (rank, 1, values->len) - 1);
}

static void
summary_member_ms (JsonBuilder *builder, const char *name, double ms)
{
  json_builder_set_member_name (builder, name);
  if (ms < 0)
    json_builder_add_null_value (builder);
  else
    json_builder_add_double_value (builder, ms);
}

/* Adds the latency percentiles and the non-empty histogram buckets, as
 * [bucket, count] pairs, so that runs of several processes can be merged.
 * Member names start with @prefix. */
static void
summary_latency_add (JsonBuilder *builder, const char *prefix, const CimsWhepViewerLatency *latency)
{
  g_autofree char *samples = g_strconcat (prefix, "_samples", NULL);
  g_autofree char *p50 = g_strconcat (prefix, "_ms_p50", NULL);
  g_autofree char *p99 = g_strconcat (prefix, "_ms_p99", NULL);
  g_autofree char *bucket = g_strconcat (prefix, "_bucket_us", NULL);
  g_autofree char *histogram = g_strconcat (prefix, "_histogram", NULL);

  json_builder_set_member_name (builder, samples);
  json_builder_add_int_value (builder, (gint64) latency->n_samples);
  summary_member_ms (builder, p50, cims_whep_viewer_latency_percentile_ms (latency, 0.50));
  summary_member_ms (builder, p99, cims_whep_viewer_latency_percentile_ms (latency, 0.99));
  json_builder_set_member_name (builder, bucket);
  json_builder_add_int_value (builder, CIMS_WHEP_VIEWER_LATENCY_BUCKET_US);
  json_builder_set_member_name (builder, histogram);
  json_builder_begin_array (builder);
  for (guint i = 0; i < CIMS_WHEP_VIEWER_LATENCY_N_BUCKETS; i++) {
    if (latency->counts[i] == 0)
      continue;
    json_builder_begin_array (builder);
    json_builder_add_int_value (builder, i);
    json_builder_add_int_value (builder, (gint64) latency->counts[i]);
    json_builder_end_array (builder);
  }
  json_builder_end_array (builder);
}

static char *
summary_to_json (Run *run, guint n_successful)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (GArray) keyframe_ms = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr (JsonNode) root = NULL;

  for (guint i = 0; i < run->viewers->len; i++) {
    double ms = cims_whep_viewer_get_first_keyframe_ms (g_ptr_array_index (run->viewers, i));

    if (ms >= 0)
      g_array_append_val (keyframe_ms, ms);
  }
  g_array_sort (keyframe_ms, compare_doubles);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "summary");
  json_builder_add_boolean_value (builder, TRUE);
  json_builder_set_member_name (builder, "viewers");
  json_builder_add_int_value (builder, run->viewers->len);
  json_builder_set_member_name (builder, "successful");
  json_builder_add_int_value (builder, n_successful);
  json_builder_set_member_name (builder, "with_keyframe");
  json_builder_add_int_value (builder, keyframe_ms->len);
  summary_member_ms (builder, "first_keyframe_ms_p50", percentile (keyframe_ms, 0.50));
  summary_member_ms (builder, "first_keyframe_ms_p99", percentile (keyframe_ms, 0.99));
  summary_member_ms (builder, "first_keyframe_ms_max", percentile (keyframe_ms, 1.0));
  summary_latency_add (builder, "latency", run->shared.latency);
  summary_latency_add (builder, "frame_latency", run->shared.frame_latency);
  if (run->shared.socket_latency != NULL) {
    summary_latency_add (builder, "socket_latency", run->shared.socket_latency);
    summary_latency_add (builder, "socket_frame_latency", run->shared.socket_frame_latency);
  }
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  return json_generator_to_data (generator, NULL);
}

/* Prints the results and returns how many viewers met the exit conditions. */
static guint
results_print (Run *run)
{
  g_autofree char *summary = NULL;
  guint n_successful = 0;

  for (guint i = 0; i < run->viewers->len; i++) {
    CimsWhepViewer *viewer = g_ptr_array_index (run->viewers, i);
    g_autofree char *line = cims_whep_viewer_result_to_json (viewer);

    if (cims_whep_viewer_is_successful (viewer))
      n_successful++;
    if (run->options.prints_json)
      printf ("%s\n", line);
  }

  summary = summary_to_json (run, n_successful);
  if (run->options.prints_json)
    printf ("%s\n", summary);
  else
    printf ("cimshub-whep-viewer: %u of %u viewers succeeded: %s\n", n_successful, run->viewers->len, summary);
  fflush (stdout);

  return n_successful;
}

static void
options_clear (CimsWhepViewerOptions *options)
{
  if (options->token != NULL)
    memset (options->token, 0, strlen (options->token));
  g_free (options->token);
  g_free (options->base_url);
  g_free (options->camera_id);
  g_free (options->incident_number);
  g_free (options->client);
  g_free (options->srtp_profiles);
  g_free (options->local_address);
}

/* Raises the open-file limit for @n_viewers viewers, which each have an ICE
 * socket and an HTTP connection, and warns when it stays too low. */
static void
open_file_limit_raise (guint n_viewers)
{
  guint64 previous = 0;
  guint64 limit = cims_fd_limit_raise (&previous);

  if (limit != 0 && limit < (guint64) n_viewers * 3 + 64)
    g_printerr ("cimshub-whep-viewer: the open-file limit of %" G_GUINT64_FORMAT " is low for %u viewers, "
                "which need about %u; raise the hard limit (ulimit -Hn)\n",
                limit, n_viewers, n_viewers * 3 + 64);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  Run run = { 0 };
  guint n_successful;

  options_parse (&argc, &argv, &run.options);
  open_file_limit_raise (run.options.n_viewers);

  if (srtp_init () != srtp_err_status_ok) {
    g_printerr ("cimshub-whep-viewer: srtp_init() failed\n");
    return 1;
  }
  run.shared.identity = cims_whep_viewer_identity_new (run.options.srtp_profiles, &error);
  if (run.shared.identity == NULL) {
    g_printerr ("cimshub-whep-viewer: %s\n", error->message);
    return EXIT_USAGE;
  }

  run.shared.options = &run.options;
  run.shared.context = g_main_context_default ();
  run.shared.loop = cims_worker_loop_new (&error);
  if (run.shared.loop == NULL) {
    g_printerr ("cimshub-whep-viewer: %s\n", error->message);
    return 1;
  }
  /* Before any source is attached to it, as the loop requires. */
  cims_worker_loop_add_context (run.shared.loop, run.shared.context);
  run.shared.soup = soup_session_new_with_options ("max-conns", 4096, "max-conns-per-host", 4096,
                                                   "timeout", 30, NULL);
  run.shared.real_minus_monotonic_us = g_get_real_time () - g_get_monotonic_time ();
  run.shared.latency = g_new0 (CimsWhepViewerLatency, 1);
  run.shared.frame_latency = g_new0 (CimsWhepViewerLatency, 1);
  if (run.options.takes_socket_timestamps) {
    run.shared.socket_latency = g_new0 (CimsWhepViewerLatency, 1);
    run.shared.socket_frame_latency = g_new0 (CimsWhepViewerLatency, 1);
  }
  run.shared.latency_from_us = g_get_monotonic_time () + (gint64) run.options.latency_after_ms * 1000;
  run.shared.ended_func = viewer_ended_cb;
  run.shared.ended_data = &run;

  run.viewers = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_whep_viewer_free);
  for (guint i = 0; i < run.options.n_viewers; i++)
    g_ptr_array_add (run.viewers, cims_whep_viewer_new (&run.shared, i));

  run_loop (&run);
  n_successful = results_print (&run);

  g_ptr_array_unref (run.viewers);
  g_object_unref (run.shared.soup);
  cims_worker_loop_free (run.shared.loop);
  cims_whep_viewer_identity_free (run.shared.identity);
  g_free (run.shared.latency);
  g_free (run.shared.frame_latency);
  g_free (run.shared.socket_latency);
  g_free (run.shared.socket_frame_latency);
  srtp_shutdown ();
  options_clear (&run.options);

  return n_successful == run.options.n_viewers ? 0 : 1;
}
