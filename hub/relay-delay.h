/* SPDX-License-Identifier: Apache-2.0 */
/* The hub's own delay histogram: from a camera packet's arrival at the ingest
 * to the return of the send call that hands it to a viewer (relay-delay.c). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Upper bounds of the buckets, in microseconds; one more bucket takes the rest. */
#define CIMS_RELAY_DELAY_N_BOUNDS 18
#define CIMS_RELAY_DELAY_N_BUCKETS (CIMS_RELAY_DELAY_N_BOUNDS + 1)

extern const gint64 cims_relay_delay_bounds_us[CIMS_RELAY_DELAY_N_BOUNDS];

/* Returns the bucket of a delay of @delay_us microseconds. */
guint cims_relay_delay_bucket (gint64 delay_us);

/* Appends the Prometheus histogram cimshub_relay_delay_seconds to @out, from
 * per-bucket counts and the sum of the delays in microseconds. */
void cims_relay_delay_format (GString *out, const guint64 *counts, guint64 sum_us);

G_END_DECLS
