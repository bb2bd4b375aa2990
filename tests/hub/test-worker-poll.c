/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the media workers' epoll-based poll function (hub/worker-poll.c):
 * a main context that uses it dispatches ready sockets, sources that share
 * an fd, more ready sockets than one epoll_wait() returns, timeouts, a
 * socket whose fd number was reused, and passes for GLib's wake-up fd alone
 * spaced out on a crowded context. */
#include "hub/hub-runtime.h"

#include <glib-unix.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define WAIT_LIMIT_US (2 * G_USEC_PER_SEC)
/* The poller's 250 ms rebuild interval with room for a loaded machine. */
#define REUSED_FD_LIMIT_US (1500 * 1000)

/* One connected socket pair: the test writes to @peer, the source watches @fd. */
typedef struct {
  int fd;
  int peer;
  guint n_dispatched;
  GIOCondition last_condition;
} Pair;

static void
pair_open (Pair *pair)
{
  int fds[2];

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), ==, 0);
  pair->fd = fds[0];
  pair->peer = fds[1];
  pair->n_dispatched = 0;
  pair->last_condition = 0;
}

static void
pair_close (Pair *pair)
{
  close (pair->fd);
  close (pair->peer);
}

static void
pair_send (Pair *pair)
{
  g_assert_cmpint (write (pair->peer, "x", 1), ==, 1);
}

/* Reads the datagram so that the fd stops being ready. */
static gboolean
on_readable (gint fd, GIOCondition condition, gpointer user_data)
{
  Pair *pair = user_data;
  char byte;

  pair->n_dispatched++;
  pair->last_condition = condition;
  if (read (fd, &byte, 1) < 0)
    g_assert_cmpint (errno, ==, EAGAIN);
  return G_SOURCE_CONTINUE;
}

/* Counts dispatches without reading, for sources that share an fd. */
static gboolean
on_readable_count (gint fd, GIOCondition condition, gpointer user_data)
{
  guint *n_dispatched = user_data;

  (*n_dispatched)++;
  return G_SOURCE_CONTINUE;
}

static GSource *
watch (GMainContext *context, Pair *pair)
{
  GSource *source = g_unix_fd_source_new (pair->fd, G_IO_IN);

  g_source_set_callback (source, G_SOURCE_FUNC (on_readable), pair, NULL);
  g_source_attach (source, context);
  return source;
}

static GMainContext *
context_new (void)
{
  GMainContext *context = g_main_context_new ();

  cims_worker_poll_install (context);
  return context;
}

static gboolean
on_tick (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

/* Iterates @context until @is_done returns TRUE or WAIT_LIMIT_US passes. A
 * 5 ms timer bounds each blocking pass. Returns the microseconds it took. */
static gint64
iterate_until (GMainContext *context, gboolean (*is_done) (gpointer), gpointer data)
{
  GSource *tick = g_timeout_source_new (5);
  gint64 start_us = g_get_monotonic_time ();

  g_source_set_callback (tick, on_tick, NULL, NULL);
  g_source_attach (tick, context);
  while (!is_done (data) && g_get_monotonic_time () - start_us < WAIT_LIMIT_US)
    g_main_context_iteration (context, TRUE);
  g_source_destroy (tick);
  g_source_unref (tick);
  return g_get_monotonic_time () - start_us;
}

static gboolean
pair_was_dispatched (gpointer data)
{
  return ((Pair *) data)->n_dispatched > 0;
}

static void
test_poll_dispatches_ready_socket (void)
{
  g_autoptr (GMainContext) context = context_new ();
  Pair quiet, ready;
  GSource *quiet_source, *ready_source;

  pair_open (&quiet);
  pair_open (&ready);
  quiet_source = watch (context, &quiet);
  ready_source = watch (context, &ready);

  g_main_context_iteration (context, FALSE);
  g_assert_cmpuint (ready.n_dispatched, ==, 0);

  pair_send (&ready);
  iterate_until (context, pair_was_dispatched, &ready);
  g_assert_cmpuint (ready.n_dispatched, ==, 1);
  g_assert_cmpuint (ready.last_condition & G_IO_IN, !=, 0);
  g_assert_cmpuint (quiet.n_dispatched, ==, 0);

  g_source_destroy (quiet_source);
  g_source_unref (quiet_source);
  g_source_destroy (ready_source);
  g_source_unref (ready_source);
  pair_close (&quiet);
  pair_close (&ready);
}

typedef struct {
  guint first;
  guint second;
} SharedCounts;

static gboolean
both_dispatched (gpointer data)
{
  SharedCounts *counts = data;

  return counts->first > 0 && counts->second > 0;
}

static void
test_poll_shared_fd_reaches_both (void)
{
  g_autoptr (GMainContext) context = context_new ();
  SharedCounts counts = { 0 };
  GSource *sources[2];
  Pair pair;

  pair_open (&pair);
  for (guint i = 0; i < 2; i++) {
    sources[i] = g_unix_fd_source_new (pair.fd, G_IO_IN);
    g_source_set_callback (sources[i], G_SOURCE_FUNC (on_readable_count), i == 0 ? &counts.first : &counts.second,
                           NULL);
    g_source_attach (sources[i], context);
  }

  pair_send (&pair);
  iterate_until (context, both_dispatched, &counts);
  g_assert_cmpuint (counts.first, >, 0);
  g_assert_cmpuint (counts.second, >, 0);

  for (guint i = 0; i < 2; i++) {
    g_source_destroy (sources[i]);
    g_source_unref (sources[i]);
  }
  pair_close (&pair);
}

#define MANY_PAIRS 300

typedef struct {
  Pair pairs[MANY_PAIRS];
} ManyPairs;

static gboolean
all_dispatched (gpointer data)
{
  ManyPairs *many = data;

  for (guint i = 0; i < MANY_PAIRS; i++) {
    if (many->pairs[i].n_dispatched == 0)
      return FALSE;
  }
  return TRUE;
}

/* More ready sockets than one epoll_wait() returns: the rest come on the
 * next passes. */
static void
test_poll_more_ready_than_one_wait (void)
{
  g_autoptr (GMainContext) context = context_new ();
  g_autofree ManyPairs *many = g_new0 (ManyPairs, 1);
  GSource *sources[MANY_PAIRS];

  for (guint i = 0; i < MANY_PAIRS; i++) {
    pair_open (&many->pairs[i]);
    sources[i] = watch (context, &many->pairs[i]);
  }
  for (guint i = 0; i < MANY_PAIRS; i++)
    pair_send (&many->pairs[i]);

  iterate_until (context, all_dispatched, many);
  g_assert_true (all_dispatched (many));

  for (guint i = 0; i < MANY_PAIRS; i++) {
    g_source_destroy (sources[i]);
    g_source_unref (sources[i]);
    pair_close (&many->pairs[i]);
  }
}

static gboolean
on_timeout (gpointer user_data)
{
  gboolean *has_fired = user_data;

  *has_fired = TRUE;
  return G_SOURCE_REMOVE;
}

static void
test_poll_wakes_for_timeout (void)
{
  g_autoptr (GMainContext) context = context_new ();
  gboolean has_fired = FALSE;
  GSource *timeout = g_timeout_source_new (30);
  gint64 start_us = g_get_monotonic_time ();
  Pair idle;
  GSource *idle_source;

  pair_open (&idle);
  idle_source = watch (context, &idle);
  g_source_set_callback (timeout, on_timeout, &has_fired, NULL);
  g_source_attach (timeout, context);

  while (!has_fired && g_get_monotonic_time () - start_us < WAIT_LIMIT_US)
    g_main_context_iteration (context, TRUE);
  g_assert_true (has_fired);
  g_assert_cmpint (g_get_monotonic_time () - start_us, >=, 30 * 1000);

  g_source_unref (timeout);
  g_source_destroy (idle_source);
  g_source_unref (idle_source);
  pair_close (&idle);
}

/* Iterates @context with no timer of its own until @pair was dispatched or
 * WAIT_LIMIT_US passed, so only the poller bounds each blocking pass.
 * Returns the microseconds it took. */
static gint64
iterate_idle_until_dispatched (GMainContext *context, Pair *pair)
{
  gboolean has_fired = FALSE;
  GSource *guard = g_timeout_source_new (WAIT_LIMIT_US / 1000);
  gint64 start_us = g_get_monotonic_time ();

  g_source_set_callback (guard, on_timeout, &has_fired, NULL);
  g_source_attach (guard, context);
  while (pair->n_dispatched == 0 && !has_fired)
    g_main_context_iteration (context, TRUE);
  g_source_destroy (guard);
  g_source_unref (guard);
  return g_get_monotonic_time () - start_us;
}

/* Iterates @context, with a 5 ms timer in it, until @pair was dispatched. */
static gint64
iterate_ticking_until_dispatched (GMainContext *context, Pair *pair)
{
  return iterate_until (context, pair_was_dispatched, pair);
}

/* A socket closed and replaced by one with the same fd number and the same
 * events between two passes can leave the poll set unchanged while epoll
 * has dropped the old registration. The periodic rebuild, every 250 ms,
 * catches it, and @iterate drives the context meanwhile. */
static void
check_reused_fd_is_watched (gint64 (*iterate) (GMainContext *, Pair *))
{
  g_autoptr (GMainContext) context = context_new ();
  Pair first, second;
  GSource *source;
  gint64 elapsed_us;
  int old_fd;

  pair_open (&first);
  source = watch (context, &first);
  pair_send (&first);
  iterate (context, &first);
  g_assert_cmpuint (first.n_dispatched, ==, 1);

  old_fd = first.fd;
  g_source_destroy (source);
  g_source_unref (source);
  pair_close (&first);
  pair_open (&second);
  g_assert_cmpint (second.fd, ==, old_fd);
  source = watch (context, &second);

  pair_send (&second);
  elapsed_us = iterate (context, &second);
  g_assert_cmpuint (second.n_dispatched, ==, 1);
  g_assert_cmpint (elapsed_us, <, REUSED_FD_LIMIT_US);

  g_source_destroy (source);
  g_source_unref (source);
  pair_close (&second);
}

static void
test_poll_reused_fd_is_watched (void)
{
  check_reused_fd_is_watched (iterate_ticking_until_dispatched);
}

/* With nothing else in the context to wake it, the poller itself must end
 * its pass by the next rebuild. */
static void
test_poll_reused_fd_idle_context (void)
{
  check_reused_fd_is_watched (iterate_idle_until_dispatched);
}

static gboolean
on_hang_up (gint fd, GIOCondition condition, gpointer user_data)
{
  Pair *pair = user_data;

  pair->n_dispatched++;
  pair->last_condition = condition;
  return G_SOURCE_REMOVE;
}

/* A source that watches only G_IO_HUP: GLib passes it with no event bits,
 * and epoll reports the hang-up anyway once the fd is registered. */
static void
test_poll_hang_up_only (void)
{
  g_autoptr (GMainContext) context = context_new ();
  GSource *source;
  Pair pair = { 0 };
  int fds[2];

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), ==, 0);
  pair.fd = fds[0];
  pair.peer = fds[1];
  source = g_unix_fd_source_new (pair.fd, G_IO_HUP);
  g_source_set_callback (source, G_SOURCE_FUNC (on_hang_up), &pair, NULL);
  g_source_attach (source, context);

  close (pair.peer);
  iterate_until (context, pair_was_dispatched, &pair);
  g_assert_cmpuint (pair.n_dispatched, ==, 1);
  g_assert_cmpuint (pair.last_condition & G_IO_HUP, !=, 0);

  g_source_unref (source);
  close (pair.fd);
}

/* Quiet fds, each with its own source. GLib polls each distinct fd once,
 * and the poller spaces a pass for its wake-up fd alone by 5 us per fd, so
 * by about 2 ms here. */
#define CROWD_FDS 400
#define CROWD_SPACING_US (CROWD_FDS * 5)

/* A quiet eventfd and its source, removed together. */
typedef struct {
  int fd;
  GSource *source;
  guint n_dispatched;           /* stays 0: nothing writes to @fd */
} QuietWatch;

static void
quiet_watch_free (gpointer data)
{
  QuietWatch *quiet = data;

  g_source_destroy (quiet->source);
  g_source_unref (quiet->source);
  close (quiet->fd);
  g_free (quiet);
}

/* A context with CROWD_FDS quiet eventfds and a ready pair. The poller is
 * given GLib's wake-up fd of the context. */
typedef struct {
  GMainContext *context;
  GPtrArray *quiet_watches;     /* of QuietWatch */
  Pair ready;
  GSource *ready_source;
} Crowd;

static void
crowd_init (Crowd *crowd)
{
  int wakeup_fd;

  crowd->context = g_main_context_new ();
  wakeup_fd = cims_worker_poll_install (crowd->context);
  g_assert_cmpint (wakeup_fd, >=, 0);
  cims_worker_poll_set_wakeup_fd (wakeup_fd);

  crowd->quiet_watches = g_ptr_array_new_with_free_func (quiet_watch_free);
  for (guint i = 0; i < CROWD_FDS; i++) {
    QuietWatch *quiet = g_new0 (QuietWatch, 1);

    quiet->fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    g_assert_cmpint (quiet->fd, >=, 0);
    quiet->source = g_unix_fd_source_new (quiet->fd, G_IO_IN);
    g_source_set_callback (quiet->source, G_SOURCE_FUNC (on_readable_count), &quiet->n_dispatched, NULL);
    g_source_attach (quiet->source, crowd->context);
    g_ptr_array_add (crowd->quiet_watches, quiet);
  }

  pair_open (&crowd->ready);
  crowd->ready_source = watch (crowd->context, &crowd->ready);
}

static void
crowd_clear (Crowd *crowd)
{
  g_source_destroy (crowd->ready_source);
  g_source_unref (crowd->ready_source);
  pair_close (&crowd->ready);
  g_ptr_array_unref (crowd->quiet_watches);
  g_main_context_unref (crowd->context);
}

/* Runs one pass that dispatches the ready pair, so the next pass counts
 * from now, and clears its count. */
static void
crowd_pass (Crowd *crowd)
{
  crowd->ready.n_dispatched = 0;
  pair_send (&crowd->ready);
  iterate_until (crowd->context, pair_was_dispatched, &crowd->ready);
  g_assert_cmpuint (crowd->ready.n_dispatched, ==, 1);
  crowd->ready.n_dispatched = 0;
}

/* GLib signals its wake-up fd when it dispatches an fd source, on its own
 * thread too. A pass for that alone waits for the spacing after the last. */
static void
test_poll_wakeup_alone_waits (void)
{
  Crowd crowd;
  gint64 start_us;

  crowd_init (&crowd);
  crowd_pass (&crowd);

  g_main_context_wakeup (crowd.context);
  start_us = g_get_monotonic_time ();
  g_main_context_iteration (crowd.context, TRUE);
  g_assert_cmpint (g_get_monotonic_time () - start_us, >=, CROWD_SPACING_US / 2);

  crowd_clear (&crowd);
}

/* A socket that is ready beside the wake-up fd starts its pass at once. The
 * best of three tries allows for a descheduled test thread. */
static void
test_poll_socket_beside_wakeup_at_once (void)
{
  gint64 best_us = G_MAXINT64;
  Crowd crowd;

  crowd_init (&crowd);
  for (guint i = 0; i < 3; i++) {
    gint64 start_us;

    crowd_pass (&crowd);
    g_main_context_wakeup (crowd.context);
    pair_send (&crowd.ready);
    start_us = g_get_monotonic_time ();
    while (crowd.ready.n_dispatched == 0 && g_get_monotonic_time () - start_us < WAIT_LIMIT_US)
      g_main_context_iteration (crowd.context, TRUE);
    best_us = MIN (best_us, g_get_monotonic_time () - start_us);
  }
  g_assert_cmpint (best_us, <, CROWD_SPACING_US / 2);

  crowd_clear (&crowd);
}

static gpointer
run_test (gpointer data)
{
  GTestFunc test = (GTestFunc) data;

  test ();
  return NULL;
}

/* Runs @data, a GTestFunc, on a thread of its own: the poller keeps its
 * state per thread, and a media worker iterates one context per thread. */
static void
test_in_thread (gconstpointer data)
{
  g_thread_join (g_thread_new ("poll-test", run_test, (gpointer) data));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_data_func ("/worker-poll/ready-socket", test_poll_dispatches_ready_socket, test_in_thread);
  g_test_add_data_func ("/worker-poll/shared-fd", test_poll_shared_fd_reaches_both, test_in_thread);
  g_test_add_data_func ("/worker-poll/more-than-one-wait", test_poll_more_ready_than_one_wait, test_in_thread);
  g_test_add_data_func ("/worker-poll/timeout", test_poll_wakes_for_timeout, test_in_thread);
  g_test_add_data_func ("/worker-poll/reused-fd", test_poll_reused_fd_is_watched, test_in_thread);
  g_test_add_data_func ("/worker-poll/reused-fd-idle", test_poll_reused_fd_idle_context, test_in_thread);
  g_test_add_data_func ("/worker-poll/hang-up-only", test_poll_hang_up_only, test_in_thread);
  g_test_add_data_func ("/worker-poll/wakeup-alone-waits", test_poll_wakeup_alone_waits, test_in_thread);
  g_test_add_data_func ("/worker-poll/socket-beside-wakeup", test_poll_socket_beside_wakeup_at_once,
                        test_in_thread);

  return g_test_run ();
}
