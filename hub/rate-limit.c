/* SPDX-License-Identifier: Apache-2.0 */
/* Admission limits for WHEP requests: token buckets per client address and
 * for the whole hub. A request over either limit gets 429 with Retry-After,
 * so a flood from one address cannot starve everyone else. Session caps
 * are checked in whep.c. */
#include "hub/hub-runtime.h"

/* A bucket that refills at @rate tokens per second up to twice @rate, so a
 * client may burst briefly (a wall opening a dozen cameras) but not
 * sustain more than its rate. */
typedef struct {
  double tokens;
  gint64 updated_us;
} Bucket;

/* Idle client buckets are forgotten after this long, bounding memory. */
#define BUCKET_IDLE_US (60 * G_USEC_PER_SEC)
#define MAX_CLIENT_BUCKETS 100000

struct _CimsRateLimiter {
  GHashTable *clients;          /* address -> Bucket */
  Bucket total;
  gint64 last_sweep_us;
};

CimsRateLimiter *
cims_rate_limiter_new (void)
{
  CimsRateLimiter *limiter = g_new0 (CimsRateLimiter, 1);

  limiter->clients = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  limiter->total.updated_us = g_get_monotonic_time ();
  limiter->total.tokens = -1;
  return limiter;
}

void
cims_rate_limiter_free (CimsRateLimiter *limiter)
{
  if (limiter == NULL)
    return;

  g_hash_table_unref (limiter->clients);
  g_free (limiter);
}

/* Takes one token; returns 0, or the seconds until one is available. */
static guint
bucket_take (Bucket *bucket, guint rate, gint64 now_us)
{
  double capacity = 2.0 * rate;

  if (bucket->tokens < 0)
    bucket->tokens = capacity;

  bucket->tokens = MIN (capacity, bucket->tokens + (now_us - bucket->updated_us) * rate / 1e6);
  bucket->updated_us = now_us;

  if (bucket->tokens >= 1.0) {
    bucket->tokens -= 1.0;
    return 0;
  }

  return (guint) MAX (1.0, (1.0 - bucket->tokens) / rate + 0.999);
}

static void
sweep_idle (CimsRateLimiter *limiter, gint64 now_us)
{
  GHashTableIter iter;
  gpointer value;

  if (now_us - limiter->last_sweep_us < BUCKET_IDLE_US)
    return;

  limiter->last_sweep_us = now_us;
  g_hash_table_iter_init (&iter, limiter->clients);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (now_us - ((Bucket *) value)->updated_us > BUCKET_IDLE_US)
      g_hash_table_iter_remove (&iter);
}

guint
cims_rate_limiter_check (CimsRateLimiter *limiter, const char *address, guint per_client_rate,
                         guint total_rate)
{
  gint64 now_us = g_get_monotonic_time ();
  Bucket *bucket;
  guint wait_s;

  sweep_idle (limiter, now_us);

  bucket = g_hash_table_lookup (limiter->clients, address ? address : "");
  if (bucket == NULL && g_hash_table_size (limiter->clients) < MAX_CLIENT_BUCKETS) {
    bucket = g_new0 (Bucket, 1);
    bucket->tokens = -1;
    bucket->updated_us = now_us;
    g_hash_table_insert (limiter->clients, g_strdup (address ? address : ""), bucket);
  }

  /* With the table full, unknown addresses share only the total bucket. */
  if (bucket != NULL) {
    wait_s = bucket_take (bucket, per_client_rate, now_us);
    if (wait_s > 0)
      return wait_s;
  }

  return bucket_take (&limiter->total, total_rate, now_us);
}
