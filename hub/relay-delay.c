/* SPDX-License-Identifier: Apache-2.0 */
/* Buckets and Prometheus text of the relay-delay histogram. The delay runs
 * from a camera packet's arrival at the ingest, after the RTSP jitter buffer,
 * to the return of the sendmmsg() that hands it to one viewer. For
 * transcoded video it starts at the encoder's output. It counts the wait for the frame's
 * end, the queue to the worker, and the worker's turn through the viewers
 * before this one, with the other work that the worker serves between
 * slices of a long fan-out. Keyframe snapshots sent to joining viewers are
 * left out because their packets are old on purpose. */
#include "hub/relay-delay.h"

const gint64 cims_relay_delay_bounds_us[CIMS_RELAY_DELAY_N_BOUNDS] = {
  250, 500, 1000, 2000, 3000, 5000, 7500, 10000, 15000,
  20000, 30000, 50000, 75000, 100000, 150000, 250000, 500000, 1000000,
};

guint
cims_relay_delay_bucket (gint64 delay_us)
{
  guint bucket = 0;

  while (bucket < CIMS_RELAY_DELAY_N_BOUNDS && delay_us > cims_relay_delay_bounds_us[bucket])
    bucket++;

  return bucket;
}

void
cims_relay_delay_format (GString *out, const guint64 *counts, guint64 sum_us)
{
  guint64 cumulative = 0;
  char sum[G_ASCII_DTOSTR_BUF_SIZE];

  g_string_append (out, "# HELP cimshub_relay_delay_seconds Time from a camera packet's arrival to its "
                        "send to one viewer, per packet and viewer; keyframe snapshots left out.\n"
                        "# TYPE cimshub_relay_delay_seconds histogram\n");
  for (guint i = 0; i < CIMS_RELAY_DELAY_N_BOUNDS; i++) {
    char bound[G_ASCII_DTOSTR_BUF_SIZE];

    cumulative += counts[i];
    g_ascii_formatd (bound, sizeof bound, "%g", cims_relay_delay_bounds_us[i] / 1e6);
    g_string_append_printf (out, "cimshub_relay_delay_seconds_bucket{le=\"%s\"} %" G_GUINT64_FORMAT "\n", bound,
                            cumulative);
  }

  cumulative += counts[CIMS_RELAY_DELAY_N_BOUNDS];
  g_string_append_printf (out, "cimshub_relay_delay_seconds_bucket{le=\"+Inf\"} %" G_GUINT64_FORMAT "\n",
                          cumulative);
  g_ascii_formatd (sum, sizeof sum, "%.6f", sum_us / 1e6);
  g_string_append_printf (out, "cimshub_relay_delay_seconds_sum %s\n", sum);
  g_string_append_printf (out, "cimshub_relay_delay_seconds_count %" G_GUINT64_FORMAT "\n", cumulative);
}
