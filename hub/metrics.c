/* SPDX-License-Identifier: Apache-2.0 */
/* Prometheus text exposition of the hub's counters for /metrics. The
 * counters themselves are atomics in CimsMetrics, updated where they happen. */
#include "hub/hub-runtime.h"

static void
metric_append (GString *out, const char *name, const char *type, const char *help, gint64 value)
{
  g_string_append_printf (out, "# HELP %s %s\n# TYPE %s %s\n%s %" G_GINT64_FORMAT "\n",
                          name, help, name, type, name, value);
}

/* Sums the workers' relay-delay histograms into one. */
static void
metric_append_relay_delay (GString *out, CimsHub *hub)
{
  guint64 counts[CIMS_RELAY_DELAY_N_BUCKETS];

  for (guint i = 0; i < CIMS_RELAY_DELAY_N_BUCKETS; i++)
    counts[i] = cims_hub_worker_counters_sum (hub, G_STRUCT_OFFSET (CimsWorkerCounters, relay_delay_counts)
                                                   + i * sizeof (atomic_uint_fast64_t));

  cims_relay_delay_format (out, counts,
                           cims_hub_worker_counters_sum (hub, G_STRUCT_OFFSET (CimsWorkerCounters,
                                                                               relay_delay_sum_us)));
}

static void
metric_append_responses (GString *out, CimsHub *hub)
{
  g_string_append (out, "# HELP cimshub_whep_responses_total WHEP responses by status class.\n"
                        "# TYPE cimshub_whep_responses_total counter\n");
  g_string_append_printf (out, "cimshub_whep_responses_total{class=\"2xx\"} %" G_GINT64_FORMAT "\n",
                          CIMS_METRIC_GET (hub, whep_responses_2xx));
  g_string_append_printf (out, "cimshub_whep_responses_total{class=\"4xx\"} %" G_GINT64_FORMAT "\n",
                          CIMS_METRIC_GET (hub, whep_responses_4xx));
  g_string_append_printf (out, "cimshub_whep_responses_total{class=\"5xx\"} %" G_GINT64_FORMAT "\n",
                          CIMS_METRIC_GET (hub, whep_responses_5xx));
}

typedef struct {
  const char *name;
  const char *type;
  const char *help;
} TranscoderMetric;

static const TranscoderMetric transcoder_metrics[] = {
  { "cimshub_transcoder_viewers", "gauge", "Viewers fed by each transcoder." },
  { "cimshub_transcoder_frames_in_total", "counter", "Frames each transcoder decoded." },
  { "cimshub_transcoder_frames_out_total", "counter", "Frames each transcoder encoded." },
  { "cimshub_transcoder_frames_dropped_total", "counter",
    "Frames each transcoder dropped for its frame-rate cap or for lateness." },
  { "cimshub_transcoder_encode_time_mean_microseconds", "gauge", "Mean encode time per frame." },
  { "cimshub_transcoder_encode_time_max_microseconds", "gauge", "Longest encode time of a frame." },
  { "cimshub_transcoder_keyframe_requests_total", "counter",
    "Viewer keyframe requests forwarded to the encoder." },
  { "cimshub_transcoder_keyframe_requests_suppressed_total", "counter",
    "Viewer keyframe requests within 500 ms of the previous one, not forwarded." },
};

static guint64
transcoder_metric_value (guint index, CimsSource *source, const CimsTranscoderStats *stats)
{
  switch (index) {
    case 0: return cims_source_get_n_subscribers (source);
    case 1: return stats->n_frames_in;
    case 2: return stats->n_frames_out;
    case 3: return stats->n_frames_dropped;
    case 4: return stats->mean_encode_us;
    case 5: return stats->max_encode_us;
    case 6: return stats->n_keyframe_requests;
    default: return stats->n_keyframe_requests_suppressed;
  }
}

/* One series per running transcoder, labelled with its camera and profile. */
static void
metric_append_transcoders (GString *out, CimsHub *hub)
{
  GHashTableIter iter;
  gpointer value;
  guint n_running = 0;

  g_hash_table_iter_init (&iter, hub->sources);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (cims_source_get_transcoder (value) != NULL)
      n_running++;
  metric_append (out, "cimshub_transcoders_running", "gauge",
                 "Transcoders running, one per camera and viewer profile in use.", n_running);

  for (guint m = 0; m < G_N_ELEMENTS (transcoder_metrics); m++) {
    g_string_append_printf (out, "# HELP %s %s\n# TYPE %s %s\n", transcoder_metrics[m].name,
                            transcoder_metrics[m].help, transcoder_metrics[m].name, transcoder_metrics[m].type);
    g_hash_table_iter_init (&iter, hub->sources);
    while (g_hash_table_iter_next (&iter, NULL, &value)) {
      CimsTranscoder *transcoder = cims_source_get_transcoder (value);
      CimsTranscoderStats stats;

      if (transcoder == NULL)
        continue;
      cims_transcoder_get_stats (transcoder, &stats);
      g_string_append_printf (out, "%s{camera=\"%s\",profile=\"%s\",codec=\"%s\"} %" G_GUINT64_FORMAT "\n",
                              transcoder_metrics[m].name, cims_source_get_camera_id (value),
                              cims_source_get_profile_name (value),
                              cims_codec_to_string (cims_source_get_codec (value)),
                              transcoder_metric_value (m, value, &stats));
    }
  }
}

char *
cims_metrics_format (CimsHub *hub)
{
  GString *out = g_string_new (NULL);

  metric_append (out, "cimshub_whep_requests_total", "counter",
                 "WHEP session requests received.", CIMS_METRIC_GET (hub, whep_requests));
  metric_append_responses (out, hub);
  metric_append (out, "cimshub_whep_rate_limited_total", "counter",
                 "WHEP requests answered 429 Too Many Requests.", CIMS_METRIC_GET (hub, whep_rate_limited));
  metric_append (out, "cimshub_whep_refused_open_files_total", "counter",
                 "WHEP requests answered 503 because the hub was at its open-file limit.",
                 CIMS_METRIC_GET (hub, whep_refused_open_files));
  metric_append (out, "cimshub_http_refused_open_files_total", "counter",
                 "HTTP connections closed unanswered because the hub was near its open-file limit.",
                 CIMS_METRIC_GET (hub, http_refused_open_files));
  metric_append (out, "cimshub_audit_failures_total", "counter",
                 "Audit records that could not be written.", CIMS_METRIC_GET (hub, audit_failures));
  metric_append (out, "cimshub_sessions_refused_audit_total", "counter",
                 "WHEP requests refused because the audit log could not be written.",
                 CIMS_METRIC_GET (hub, sessions_refused_audit));

  metric_append (out, "cimshub_sessions_started_total", "counter",
                 "Viewer sessions that received an SDP answer.", CIMS_METRIC_GET (hub, sessions_started));
  metric_append (out, "cimshub_sessions_ended_total", "counter",
                 "Viewer sessions ended for any reason.", CIMS_METRIC_GET (hub, sessions_ended));
  metric_append (out, "cimshub_sessions_active", "gauge",
                 "Viewer sessions currently open.", CIMS_METRIC_GET (hub, sessions_active));
  metric_append (out, "cimshub_sources_active", "gauge",
                 "Camera ingests currently running.", CIMS_METRIC_GET (hub, sources_active));
  metric_append (out, "cimshub_source_reconnects_total", "counter",
                 "Camera reconnection attempts.", CIMS_METRIC_GET (hub, source_reconnects));

  metric_append (out, "cimshub_rtp_packets_relayed_total", "counter", "SRTP packets sent to viewers.",
                 cims_hub_worker_counters_sum (hub, G_STRUCT_OFFSET (CimsWorkerCounters, packets_relayed)));
  metric_append (out, "cimshub_rtp_bytes_relayed_total", "counter", "SRTP bytes sent to viewers.",
                 cims_hub_worker_counters_sum (hub, G_STRUCT_OFFSET (CimsWorkerCounters, bytes_relayed)));
  metric_append (out, "cimshub_feed_overflows_total", "counter",
                 "Packets a media worker missed because it fell behind its camera.",
                 CIMS_METRIC_GET (hub, feed_overflows));
  metric_append (out, "cimshub_rtp_packets_dropped_total", "counter",
                 "Packets not sent because protection or sending failed.",
                 CIMS_METRIC_GET (hub, packets_dropped)
                 + cims_hub_worker_counters_sum (hub, G_STRUCT_OFFSET (CimsWorkerCounters, packets_dropped)));
  metric_append_relay_delay (out, hub);
  metric_append (out, "cimshub_keyframe_snapshots_sent_total", "counter",
                 "Keyframe caches sent to joining viewers or after a PLI.",
                 CIMS_METRIC_GET (hub, keyframe_snapshots_sent));
  metric_append (out, "cimshub_rtcp_nacks_received_total", "counter",
                 "Generic NACK messages received from viewers.", CIMS_METRIC_GET (hub, nacks_received));
  metric_append (out, "cimshub_rtp_retransmissions_total", "counter",
                 "Packets resent from the history after a NACK.",
                 CIMS_METRIC_GET (hub, retransmissions_sent));
  metric_append (out, "cimshub_rtcp_plis_received_total", "counter",
                 "PLI and FIR messages received from viewers.", CIMS_METRIC_GET (hub, plis_received));

  metric_append (out, "cimshub_dtls_failures_total", "counter",
                 "DTLS handshakes that failed.", CIMS_METRIC_GET (hub, dtls_failures));
  metric_append (out, "cimshub_dtls_fingerprint_mismatches_total", "counter",
                 "Viewer certificates that did not match the offered fingerprint.",
                 CIMS_METRIC_GET (hub, fingerprint_mismatches));
  metric_append (out, "cimshub_ice_failures_total", "counter",
                 "Sessions whose ICE connectivity or consent failed.", CIMS_METRIC_GET (hub, ice_failures));
  metric_append_transcoders (out, hub);
  metric_append (out, "cimshub_uptime_seconds", "gauge", "Seconds since the hub started.",
                 (g_get_monotonic_time () - hub->started_us) / G_USEC_PER_SEC);

  return g_string_free (out, FALSE);
}
