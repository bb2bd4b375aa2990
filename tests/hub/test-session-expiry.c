/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the session-expiry schedule: order, never early, replaced
 * and removed instants, and callbacks that edit the schedule, on a private
 * main context. */
#include "hub/session-expiry.h"

typedef struct {
  GMainContext *context;
  CimsSessionExpiry *expiry;
  GPtrArray *fired;             /* session ids in call order */
  GArray *lateness_us;          /* real time at the call minus the instant */
  GHashTable *until_us;         /* session id -> the instant it was set to */
  char *remove_on_call;         /* the callback removes this id */
  char *reset_on_call;          /* the callback sets this id again */
  gint64 reset_until_us;
} Fixture;

static void
record_cb (const char *session_id, gpointer user_data)
{
  Fixture *fixture = user_data;
  gint64 until_us = *(gint64 *) g_hash_table_lookup (fixture->until_us, session_id);
  gint64 lateness_us = g_get_real_time () - until_us;

  g_ptr_array_add (fixture->fired, g_strdup (session_id));
  g_array_append_val (fixture->lateness_us, lateness_us);

  if (fixture->remove_on_call != NULL)
    cims_session_expiry_remove (fixture->expiry, fixture->remove_on_call);
  if (g_strcmp0 (fixture->reset_on_call, session_id) == 0) {
    g_clear_pointer (&fixture->reset_on_call, g_free);
    g_hash_table_insert (fixture->until_us, g_strdup (session_id),
                         g_memdup2 (&fixture->reset_until_us, sizeof (gint64)));
    cims_session_expiry_set (fixture->expiry, session_id, fixture->reset_until_us);
  }
}

static void
fixture_set_up (Fixture *fixture, gconstpointer data)
{
  fixture->context = g_main_context_new ();
  fixture->expiry = cims_session_expiry_new (fixture->context, record_cb, fixture);
  fixture->fired = g_ptr_array_new_with_free_func (g_free);
  fixture->lateness_us = g_array_new (FALSE, FALSE, sizeof (gint64));
  fixture->until_us = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
}

static void
fixture_tear_down (Fixture *fixture, gconstpointer data)
{
  cims_session_expiry_free (fixture->expiry);
  g_main_context_unref (fixture->context);
  g_ptr_array_unref (fixture->fired);
  g_array_unref (fixture->lateness_us);
  g_hash_table_unref (fixture->until_us);
  g_free (fixture->remove_on_call);
  g_free (fixture->reset_on_call);
}

/* Sets @session_id to end @delay_ms from now and remembers the instant. */
static void
set_in (Fixture *fixture, const char *session_id, gint64 delay_ms)
{
  gint64 until_us = g_get_real_time () + delay_ms * 1000;

  g_hash_table_insert (fixture->until_us, g_strdup (session_id), g_memdup2 (&until_us, sizeof until_us));
  cims_session_expiry_set (fixture->expiry, session_id, until_us);
}

/* Runs the context for @duration_ms, bounded in time. */
static void
run_for (Fixture *fixture, gint64 duration_ms)
{
  gint64 end_us = g_get_monotonic_time () + duration_ms * 1000;

  while (g_get_monotonic_time () < end_us) {
    g_main_context_iteration (fixture->context, FALSE);
    g_usleep (200);
  }
}

static void
assert_fired (Fixture *fixture, const char *const *expected)
{
  guint n_expected = g_strv_length ((char **) expected);

  g_assert_cmpuint (fixture->fired->len, ==, n_expected);
  for (guint i = 0; i < n_expected; i++)
    g_assert_cmpstr (g_ptr_array_index (fixture->fired, i), ==, expected[i]);

  for (guint i = 0; i < fixture->lateness_us->len; i++)
    g_assert_cmpint (g_array_index (fixture->lateness_us, gint64, i), >=, 0);
}

static void
test_order_and_never_early (Fixture *fixture, gconstpointer data)
{
  const char *const expected[] = { "b", "c", "a", NULL };

  set_in (fixture, "a", 60);
  set_in (fixture, "b", 20);
  set_in (fixture, "c", 40);
  g_assert_cmpuint (cims_session_expiry_get_n_pending (fixture->expiry), ==, 3);

  run_for (fixture, 10);
  g_assert_cmpuint (fixture->fired->len, ==, 0);

  run_for (fixture, 120);
  assert_fired (fixture, expected);
  g_assert_cmpuint (cims_session_expiry_get_n_pending (fixture->expiry), ==, 0);
}

static void
test_set_again_replaces (Fixture *fixture, gconstpointer data)
{
  const char *const expected[] = { "b", "a", NULL };

  set_in (fixture, "a", 10);
  set_in (fixture, "b", 40);
  set_in (fixture, "a", 80);
  g_assert_cmpuint (cims_session_expiry_get_n_pending (fixture->expiry), ==, 2);

  run_for (fixture, 150);
  assert_fired (fixture, expected);
}

static void
test_set_earlier_moves_timer (Fixture *fixture, gconstpointer data)
{
  const char *const expected[] = { "a", NULL };

  set_in (fixture, "a", 5000);
  set_in (fixture, "a", 20);

  run_for (fixture, 80);
  assert_fired (fixture, expected);
}

static void
test_remove_and_no_end (Fixture *fixture, gconstpointer data)
{
  const char *const expected[] = { "c", NULL };

  set_in (fixture, "a", 10);
  set_in (fixture, "b", 10);
  set_in (fixture, "c", 30);
  cims_session_expiry_remove (fixture->expiry, "a");
  cims_session_expiry_set (fixture->expiry, "b", G_MAXINT64);
  cims_session_expiry_remove (fixture->expiry, "not-scheduled");
  g_assert_cmpuint (cims_session_expiry_get_n_pending (fixture->expiry), ==, 1);

  run_for (fixture, 80);
  assert_fired (fixture, expected);
}

static void
test_past_instant_due_at_once (Fixture *fixture, gconstpointer data)
{
  const char *const expected[] = { "a", NULL };

  set_in (fixture, "a", -1000);
  g_main_context_iteration (fixture->context, FALSE);
  assert_fired (fixture, expected);
}

/* Two sessions due in the same pass: the first one's call removes the
 * second, which then must not be called. */
static void
test_callback_removes_due_entry (Fixture *fixture, gconstpointer data)
{
  const char *const expected[] = { "a", NULL };

  set_in (fixture, "a", 10);
  set_in (fixture, "b", 10);
  fixture->remove_on_call = g_strdup ("b");

  run_for (fixture, 60);
  assert_fired (fixture, expected);
  g_assert_cmpuint (cims_session_expiry_get_n_pending (fixture->expiry), ==, 0);
}

/* A call that schedules the same session again, as a renewed grant does. */
static void
test_callback_sets_again (Fixture *fixture, gconstpointer data)
{
  const char *const expected[] = { "a", "a", NULL };

  set_in (fixture, "a", 10);
  fixture->reset_on_call = g_strdup ("a");
  fixture->reset_until_us = g_get_real_time () + 50 * 1000;

  run_for (fixture, 120);
  assert_fired (fixture, expected);
}

/* A call that sets its session due at once again waits for the next pass
 * instead of calling back within the same one without end. */
static void
test_callback_sets_past_instant (Fixture *fixture, gconstpointer data)
{
  const char *const expected_first[] = { "a", NULL };
  const char *const expected_second[] = { "a", "a", NULL };

  set_in (fixture, "a", -1);
  fixture->reset_on_call = g_strdup ("a");
  fixture->reset_until_us = g_get_real_time () - 1000;

  g_main_context_iteration (fixture->context, FALSE);
  assert_fired (fixture, expected_first);
  g_assert_cmpuint (cims_session_expiry_get_n_pending (fixture->expiry), ==, 1);

  g_main_context_iteration (fixture->context, FALSE);
  assert_fired (fixture, expected_second);
}

/* Many sessions with random instants: each is called once, in the order of
 * its instant, never before it. */
static void
test_many_in_order (Fixture *fixture, gconstpointer data)
{
  const guint n_sessions = 2000;
  GRand *rand = g_rand_new_with_seed (7);
  gint64 previous_until_us = 0;

  for (guint i = 0; i < n_sessions; i++) {
    g_autofree char *id = g_strdup_printf ("session-%u", i);

    set_in (fixture, id, g_rand_int_range (rand, 1, 100));
  }
  g_rand_free (rand);
  g_assert_cmpuint (cims_session_expiry_get_n_pending (fixture->expiry), ==, n_sessions);

  run_for (fixture, 250);
  g_assert_cmpuint (fixture->fired->len, ==, n_sessions);
  for (guint i = 0; i < n_sessions; i++) {
    const char *id = g_ptr_array_index (fixture->fired, i);
    gint64 until_us = *(gint64 *) g_hash_table_lookup (fixture->until_us, id);

    g_assert_cmpint (g_array_index (fixture->lateness_us, gint64, i), >=, 0);
    g_assert_cmpint (until_us, >=, previous_until_us);
    previous_until_us = until_us;
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/session-expiry/order-and-never-early", Fixture, NULL, fixture_set_up,
              test_order_and_never_early, fixture_tear_down);
  g_test_add ("/session-expiry/set-again-replaces", Fixture, NULL, fixture_set_up,
              test_set_again_replaces, fixture_tear_down);
  g_test_add ("/session-expiry/set-earlier-moves-timer", Fixture, NULL, fixture_set_up,
              test_set_earlier_moves_timer, fixture_tear_down);
  g_test_add ("/session-expiry/remove-and-no-end", Fixture, NULL, fixture_set_up,
              test_remove_and_no_end, fixture_tear_down);
  g_test_add ("/session-expiry/past-instant-due-at-once", Fixture, NULL, fixture_set_up,
              test_past_instant_due_at_once, fixture_tear_down);
  g_test_add ("/session-expiry/callback-removes-due-entry", Fixture, NULL, fixture_set_up,
              test_callback_removes_due_entry, fixture_tear_down);
  g_test_add ("/session-expiry/callback-sets-again", Fixture, NULL, fixture_set_up,
              test_callback_sets_again, fixture_tear_down);
  g_test_add ("/session-expiry/callback-sets-past-instant", Fixture, NULL, fixture_set_up,
              test_callback_sets_past_instant, fixture_tear_down);
  g_test_add ("/session-expiry/many-in-order", Fixture, NULL, fixture_set_up,
              test_many_in_order, fixture_tear_down);

  return g_test_run ();
}
