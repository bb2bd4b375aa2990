/* SPDX-License-Identifier: Apache-2.0 */
/* The schedule of instants at which viewer sessions' allowances end, kept in
 * order with one GSource whose ready time is the earliest of them. A timer
 * per session would put one more source on the main context per viewer,
 * and GLib visits every source on each main-loop pass. */
#include "hub/session-expiry.h"

/* Instants are wall-clock times, but GSource waits on the monotonic clock.
 * The timer wakes at least this often to compare the two again, so a step
 * of the wall clock (or a suspended VM) delays an end by at most this. */
#define WALL_CLOCK_RECHECK_MS 60000

typedef struct {
  char *session_id;
  gint64 until_us;              /* wall clock, as g_get_real_time() */
  guint64 order;                /* ties between equal instants go first-set-first */
  GSequenceIter *position;
} ExpiryEntry;

typedef struct {
  GSource source;
  CimsSessionExpiry *expiry;
} ExpiryTimer;

struct _CimsSessionExpiry {
  GSource *timer;
  GSequence *schedule;          /* ExpiryEntry, earliest first; owned by entries */
  GHashTable *entries;          /* session id -> ExpiryEntry (owned) */
  guint64 n_set;
  CimsSessionExpiryFunc func;
  gpointer user_data;
};

static void
expiry_entry_free (ExpiryEntry *entry)
{
  g_free (entry->session_id);
  g_free (entry);
}

static gint
expiry_entry_compare (gconstpointer a, gconstpointer b, gpointer user_data)
{
  const ExpiryEntry *entry_a = a;
  const ExpiryEntry *entry_b = b;

  if (entry_a->until_us != entry_b->until_us)
    return entry_a->until_us < entry_b->until_us ? -1 : 1;
  if (entry_a->order != entry_b->order)
    return entry_a->order < entry_b->order ? -1 : 1;
  return 0;
}

/* Sets the timer's ready time to the earliest instant, or at most
 * WALL_CLOCK_RECHECK_MS away, or off when there is none. The wait is
 * rounded up to the millisecond, so the timer never wakes before the
 * instant unless the wall clock moves. */
static void
expiry_timer_update (CimsSessionExpiry *expiry)
{
  GSequenceIter *first = g_sequence_get_begin_iter (expiry->schedule);
  gint64 wait_ms;

  if (g_sequence_iter_is_end (first)) {
    g_source_set_ready_time (expiry->timer, -1);
    return;
  }

  wait_ms = (((ExpiryEntry *) g_sequence_get (first))->until_us - g_get_real_time () + 999) / 1000;
  wait_ms = CLAMP (wait_ms, 0, WALL_CLOCK_RECHECK_MS);
  g_source_set_ready_time (expiry->timer, g_get_monotonic_time () + wait_ms * 1000);
}

static void
expiry_entry_take_out (CimsSessionExpiry *expiry, ExpiryEntry *entry)
{
  g_sequence_remove (entry->position);
  g_hash_table_remove (expiry->entries, entry->session_id);
}

/* Takes out the earliest entry if its instant has come by @now_us (wall
 * clock) and it was set before the @order_limit'th call to set, and returns
 * (transfer full) its session id, or NULL. */
static char *
expiry_take_due (CimsSessionExpiry *expiry, gint64 now_us, guint64 order_limit)
{
  GSequenceIter *first = g_sequence_get_begin_iter (expiry->schedule);
  ExpiryEntry *entry;
  char *session_id;

  if (g_sequence_iter_is_end (first))
    return NULL;

  entry = g_sequence_get (first);
  if (entry->until_us > now_us || entry->order >= order_limit)
    return NULL;

  session_id = g_strdup (entry->session_id);
  expiry_entry_take_out (expiry, entry);
  return session_id;
}

/* Calls back for every entry due at the pass's start. The callback may edit
 * the schedule, so each round looks at the earliest entry afresh. An entry
 * the callback sets, even to an instant already past, waits for the next
 * pass, so this loop ends. */
static gboolean
expiry_timer_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  CimsSessionExpiry *expiry = ((ExpiryTimer *) source)->expiry;
  gint64 now_us = g_get_real_time ();
  guint64 order_limit = expiry->n_set;
  char *session_id;

  while ((session_id = expiry_take_due (expiry, now_us, order_limit)) != NULL) {
    expiry->func (session_id, expiry->user_data);
    g_free (session_id);
  }

  expiry_timer_update (expiry);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs expiry_timer_funcs = {
  .dispatch = expiry_timer_dispatch,
};

CimsSessionExpiry *
cims_session_expiry_new (GMainContext *context, CimsSessionExpiryFunc func, gpointer user_data)
{
  CimsSessionExpiry *expiry;

  g_return_val_if_fail (func != NULL, NULL);

  expiry = g_new0 (CimsSessionExpiry, 1);
  expiry->schedule = g_sequence_new (NULL);
  expiry->entries = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                           (GDestroyNotify) expiry_entry_free);
  expiry->func = func;
  expiry->user_data = user_data;

  expiry->timer = g_source_new (&expiry_timer_funcs, sizeof (ExpiryTimer));
  ((ExpiryTimer *) expiry->timer)->expiry = expiry;
  g_source_set_name (expiry->timer, "cims-session-expiry");
  g_source_set_priority (expiry->timer, G_PRIORITY_HIGH);
  g_source_set_ready_time (expiry->timer, -1);
  g_source_attach (expiry->timer, context);
  return expiry;
}

void
cims_session_expiry_free (CimsSessionExpiry *expiry)
{
  if (expiry == NULL)
    return;

  g_source_destroy (expiry->timer);
  g_source_unref (expiry->timer);
  g_sequence_free (expiry->schedule);
  g_hash_table_unref (expiry->entries);
  g_free (expiry);
}

void
cims_session_expiry_remove (CimsSessionExpiry *expiry, const char *session_id)
{
  ExpiryEntry *entry = g_hash_table_lookup (expiry->entries, session_id);

  if (entry == NULL)
    return;

  expiry_entry_take_out (expiry, entry);
  expiry_timer_update (expiry);
}

void
cims_session_expiry_set (CimsSessionExpiry *expiry, const char *session_id, gint64 until_us)
{
  ExpiryEntry *entry;

  cims_session_expiry_remove (expiry, session_id);
  if (until_us == G_MAXINT64)
    return;

  entry = g_new0 (ExpiryEntry, 1);
  entry->session_id = g_strdup (session_id);
  entry->until_us = until_us;
  entry->order = expiry->n_set++;
  entry->position = g_sequence_insert_sorted (expiry->schedule, entry, expiry_entry_compare, NULL);
  g_hash_table_insert (expiry->entries, entry->session_id, entry);

  expiry_timer_update (expiry);
}

guint
cims_session_expiry_get_n_pending (CimsSessionExpiry *expiry)
{
  return g_hash_table_size (expiry->entries);
}
