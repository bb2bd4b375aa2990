/* SPDX-License-Identifier: Apache-2.0 */
/* The schedule of instants at which viewer sessions' allowances end, kept in
 * order with one GSource whose ready time is the earliest of them. A timer
 * per session would put one more source on the main context per viewer,
 * and GLib visits every source on each main-loop pass. */
#include "hub/session-expiry.h"

typedef struct {
  char *session_id;
  gint64 ready_us;              /* monotonic clock */
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

  if (entry_a->ready_us != entry_b->ready_us)
    return entry_a->ready_us < entry_b->ready_us ? -1 : 1;
  if (entry_a->order != entry_b->order)
    return entry_a->order < entry_b->order ? -1 : 1;
  return 0;
}

/* Sets the timer's ready time to the earliest instant, or off when none. */
static void
expiry_timer_update (CimsSessionExpiry *expiry)
{
  GSequenceIter *first = g_sequence_get_begin_iter (expiry->schedule);

  if (g_sequence_iter_is_end (first)) {
    g_source_set_ready_time (expiry->timer, -1);
    return;
  }

  g_source_set_ready_time (expiry->timer, ((ExpiryEntry *) g_sequence_get (first))->ready_us);
}

static void
expiry_entry_take_out (CimsSessionExpiry *expiry, ExpiryEntry *entry)
{
  g_sequence_remove (entry->position);
  g_hash_table_remove (expiry->entries, entry->session_id);
}

/* Takes out the earliest entry if its instant has come by @now_us, and
 * returns (transfer full) its session id, or NULL. */
static char *
expiry_take_due (CimsSessionExpiry *expiry, gint64 now_us)
{
  GSequenceIter *first = g_sequence_get_begin_iter (expiry->schedule);
  ExpiryEntry *entry;
  char *session_id;

  if (g_sequence_iter_is_end (first))
    return NULL;

  entry = g_sequence_get (first);
  if (entry->ready_us > now_us)
    return NULL;

  session_id = g_strdup (entry->session_id);
  expiry_entry_take_out (expiry, entry);
  return session_id;
}

/* Calls back for every entry due at the pass's start. The callback may edit
 * the schedule, so each round looks at the earliest entry afresh. An entry
 * the callback sets, even to an instant already past, gets a monotonic
 * instant read after the pass's start and waits for the next pass, so this
 * loop ends. */
static gboolean
expiry_timer_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  CimsSessionExpiry *expiry = ((ExpiryTimer *) source)->expiry;
  gint64 now_us = g_get_monotonic_time ();
  char *session_id;

  while ((session_id = expiry_take_due (expiry, now_us)) != NULL) {
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
  gint64 delay_ms;

  cims_session_expiry_remove (expiry, session_id);
  if (until_us == G_MAXINT64)
    return;

  /* The wall-clock instant becomes a monotonic one, rounded up to the
   * millisecond so that the call never comes before the instant itself. */
  delay_ms = MAX (0, (until_us - g_get_real_time () + 999) / 1000);
  entry = g_new0 (ExpiryEntry, 1);
  entry->session_id = g_strdup (session_id);
  entry->ready_us = g_get_monotonic_time () + delay_ms * 1000;
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
