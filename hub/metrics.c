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

char *
cims_metrics_format (CimsHub *hub)
{
  GString *out = g_string_new (NULL);

  metric_append (out, "cimshub_whep_requests_total", "counter",
                 "WHEP session requests received.", CIMS_METRIC_GET (hub, whep_requests));
  metric_append_responses (out, hub);
  metric_append (out, "cimshub_whep_rate_limited_total", "counter",
                 "WHEP requests answered 429 Too Many Requests.", CIMS_METRIC_GET (hub, whep_rate_limited));
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

  metric_append (out, "cimshub_rtp_packets_relayed_total", "counter",
                 "SRTP packets sent to viewers.", CIMS_METRIC_GET (hub, packets_relayed));
  metric_append (out, "cimshub_rtp_bytes_relayed_total", "counter",
                 "SRTP bytes sent to viewers.", CIMS_METRIC_GET (hub, bytes_relayed));
  metric_append (out, "cimshub_feed_overflows_total", "counter",
                 "Packets a media worker missed because it fell behind its camera.",
                 CIMS_METRIC_GET (hub, feed_overflows));
  metric_append (out, "cimshub_rtp_packets_dropped_total", "counter",
                 "Packets not sent because protection or sending failed.",
                 CIMS_METRIC_GET (hub, packets_dropped));
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
  metric_append (out, "cimshub_uptime_seconds", "gauge", "Seconds since the hub started.",
                 (g_get_monotonic_time () - hub->started_us) / G_USEC_PER_SEC);

  return g_string_free (out, FALSE);
}
