/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of hub/relay-delay.c: the bucket of a delay, and the Prometheus
 * histogram text with cumulative buckets, sum and count. */
#include "hub/relay-delay.h"

#include <string.h>

static void
test_bucket_bounds (void)
{
  g_assert_cmpuint (cims_relay_delay_bucket (0), ==, 0);
  g_assert_cmpuint (cims_relay_delay_bucket (250), ==, 0);
  g_assert_cmpuint (cims_relay_delay_bucket (251), ==, 1);
  g_assert_cmpuint (cims_relay_delay_bucket (1000), ==, 2);
  g_assert_cmpuint (cims_relay_delay_bucket (1001), ==, 3);
  g_assert_cmpuint (cims_relay_delay_bucket (1000000), ==, CIMS_RELAY_DELAY_N_BOUNDS - 1);
  g_assert_cmpuint (cims_relay_delay_bucket (1000001), ==, CIMS_RELAY_DELAY_N_BOUNDS);
  g_assert_cmpuint (cims_relay_delay_bucket (G_MAXINT64), ==, CIMS_RELAY_DELAY_N_BOUNDS);
}

static void
test_bounds_increase (void)
{
  for (guint i = 1; i < CIMS_RELAY_DELAY_N_BOUNDS; i++)
    g_assert_cmpint (cims_relay_delay_bounds_us[i - 1], <, cims_relay_delay_bounds_us[i]);
}

static void
test_format_is_cumulative (void)
{
  guint64 counts[CIMS_RELAY_DELAY_N_BUCKETS] = { 0 };
  g_autoptr (GString) out = g_string_new (NULL);

  counts[0] = 3;
  counts[2] = 4;
  counts[CIMS_RELAY_DELAY_N_BOUNDS] = 1;
  cims_relay_delay_format (out, counts, 2500000);

  g_assert_nonnull (strstr (out->str, "# TYPE cimshub_relay_delay_seconds histogram\n"));
  g_assert_nonnull (strstr (out->str, "cimshub_relay_delay_seconds_bucket{le=\"0.00025\"} 3\n"));
  g_assert_nonnull (strstr (out->str, "cimshub_relay_delay_seconds_bucket{le=\"0.0005\"} 3\n"));
  g_assert_nonnull (strstr (out->str, "cimshub_relay_delay_seconds_bucket{le=\"0.001\"} 7\n"));
  g_assert_nonnull (strstr (out->str, "cimshub_relay_delay_seconds_bucket{le=\"1\"} 7\n"));
  g_assert_nonnull (strstr (out->str, "cimshub_relay_delay_seconds_bucket{le=\"+Inf\"} 8\n"));
  g_assert_nonnull (strstr (out->str, "cimshub_relay_delay_seconds_sum 2.500000\n"));
  g_assert_nonnull (strstr (out->str, "cimshub_relay_delay_seconds_count 8\n"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/relay-delay/bucket-bounds", test_bucket_bounds);
  g_test_add_func ("/relay-delay/bounds-increase", test_bounds_increase);
  g_test_add_func ("/relay-delay/format-is-cumulative", test_format_is_cumulative);
  return g_test_run ();
}
