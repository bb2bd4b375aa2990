/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the media worker's event loop (hub/worker-loop.c) on real
 * sockets. They cover ready sockets, shared fds, hang-ups and timers in
 * viewer groups, a pass of one group that leaves the others alone, and no
 * pass spent on GLib's own wake-up. They also cover an fd handler, calls
 * from other threads, and fd numbers reused within a group and across
 * groups. */
#include "hub/hub-runtime.h"
#include "hub/worker-loop.h"

#include <glib-unix.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define WAIT_LIMIT_US (3 * G_USEC_PER_SEC)
/* Well under the loop's one-second registration refresh, so that a socket
 * found only by that refresh fails the test. */
#define PROMPT_LIMIT_US (400 * 1000)
#define TICK_MS 5

/* One connected socket pair: the test writes to @peer, a source watches @fd. */
typedef struct {
  int fd;
  int peer;
  guint n_dispatched;
  GSource *source;
} Pair;

static void
pair_open (Pair *pair)
{
  int fds[2];

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), ==, 0);
  pair->fd = fds[0];
  pair->peer = fds[1];
  pair->n_dispatched = 0;
  pair->source = NULL;
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
  if (read (fd, &byte, 1) < 0)
    g_assert_cmpint (errno, ==, EAGAIN);
  return G_SOURCE_CONTINUE;
}

static void
pair_watch (Pair *pair, GMainContext *context)
{
  pair->source = g_unix_fd_source_new (pair->fd, G_IO_IN);
  g_source_set_callback (pair->source, G_SOURCE_FUNC (on_readable), pair, NULL);
  g_source_attach (pair->source, context);
}

static void
pair_close (Pair *pair)
{
  if (pair->source != NULL) {
    g_source_destroy (pair->source);
    g_source_unref (pair->source);
    pair->source = NULL;
  }
  close (pair->fd);
  close (pair->peer);
}

/* A loop with its own added context, run on the test thread. */
typedef struct {
  CimsWorkerLoop *loop;
  GMainContext *control;
} Harness;

static void
harness_init (Harness *harness)
{
  harness->loop = cims_worker_loop_new (NULL);
  g_assert_nonnull (harness->loop);
  harness->control = g_main_context_new ();
  cims_worker_loop_add_context (harness->loop, harness->control);
}

static void
harness_clear (Harness *harness)
{
  cims_worker_loop_free (harness->loop);
  g_main_context_unref (harness->control);
}

typedef struct {
  Harness *harness;
  gboolean (*is_done) (gpointer);
  gpointer data;
  gint64 start_us;
} Wait;

static gboolean
on_tick (gpointer user_data)
{
  Wait *wait = user_data;

  if (wait->is_done (wait->data) || g_get_monotonic_time () - wait->start_us >= WAIT_LIMIT_US)
    cims_worker_loop_quit (wait->harness->loop);
  return G_SOURCE_CONTINUE;
}

/* Runs the loop until @is_done returns TRUE, checked every TICK_MS by a
 * timer in the added context, or WAIT_LIMIT_US passes. Returns the
 * microseconds it took. */
static gint64
harness_run_until (Harness *harness, gboolean (*is_done) (gpointer), gpointer data)
{
  Wait wait = { harness, is_done, data, g_get_monotonic_time () };
  GSource *tick = g_timeout_source_new (TICK_MS);

  g_source_set_callback (tick, on_tick, &wait, NULL);
  g_source_attach (tick, harness->control);
  cims_worker_loop_run (harness->loop);
  g_source_destroy (tick);
  g_source_unref (tick);
  return g_get_monotonic_time () - wait.start_us;
}

static gboolean
pair_was_dispatched (gpointer data)
{
  return ((Pair *) data)->n_dispatched > 0;
}

static gboolean
always_done (gpointer data)
{
  return TRUE;
}

/* Runs the loop for one tick, so that the passes that joins asked for are
 * done and every group waits for its fds or timers. */
static void
harness_settle (Harness *harness)
{
  harness_run_until (harness, always_done, NULL);
}

/* The harness whose loop an idle source of its added context joins a
 * viewer of, from within a run. */
static Harness *running_harness;

/* Joins @n viewers and returns the context of the last one's group. */
static GMainContext *
join_viewers (Harness *harness, guint n)
{
  GMainContext *context = NULL;

  for (guint i = 0; i < n; i++)
    context = cims_worker_loop_join_group (harness->loop);
  return context;
}

static void
test_loop_dispatches_ready_socket (void)
{
  Harness harness;
  GMainContext *group;
  Pair quiet, ready;
  gint64 elapsed_us;

  harness_init (&harness);
  group = join_viewers (&harness, 1);
  pair_open (&quiet);
  pair_open (&ready);
  pair_watch (&quiet, group);
  pair_watch (&ready, group);
  harness_settle (&harness);

  pair_send (&ready);
  elapsed_us = harness_run_until (&harness, pair_was_dispatched, &ready);
  g_assert_cmpuint (ready.n_dispatched, ==, 1);
  g_assert_cmpuint (quiet.n_dispatched, ==, 0);
  g_assert_cmpint (elapsed_us, <, PROMPT_LIMIT_US);

  pair_close (&quiet);
  pair_close (&ready);
  harness_clear (&harness);
}

static gboolean
on_readable_count (gint fd, GIOCondition condition, gpointer user_data)
{
  (*(guint *) user_data)++;
  return G_SOURCE_CONTINUE;
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

/* Two sources of one group that watch one fd: epoll registers the fd once,
 * and both sources are dispatched. */
static void
test_loop_shared_fd_reaches_both (void)
{
  SharedCounts counts = { 0, 0 };
  Harness harness;
  GMainContext *group;
  GSource *sources[2];
  Pair pair;

  harness_init (&harness);
  group = join_viewers (&harness, 1);
  pair_open (&pair);
  for (guint i = 0; i < 2; i++) {
    sources[i] = g_unix_fd_source_new (pair.fd, G_IO_IN);
    g_source_set_callback (sources[i], G_SOURCE_FUNC (on_readable_count), i == 0 ? &counts.first : &counts.second,
                           NULL);
    g_source_attach (sources[i], group);
  }
  harness_settle (&harness);

  pair_send (&pair);
  harness_run_until (&harness, both_dispatched, &counts);
  g_assert_cmpuint (counts.first, >, 0);
  g_assert_cmpuint (counts.second, >, 0);

  for (guint i = 0; i < 2; i++) {
    g_source_destroy (sources[i]);
    g_source_unref (sources[i]);
  }
  pair_close (&pair);
  harness_clear (&harness);
}

/* More ready sockets than one epoll_wait() returns (256), spread over
 * viewer groups. */
#define MANY_PAIRS 300

static gboolean
all_dispatched (gpointer data)
{
  Pair *pairs = data;

  for (guint i = 0; i < MANY_PAIRS; i++) {
    if (pairs[i].n_dispatched == 0)
      return FALSE;
  }
  return TRUE;
}

static void
test_loop_more_ready_than_one_wait (void)
{
  g_autofree Pair *pairs = g_new0 (Pair, MANY_PAIRS);
  Harness harness;

  harness_init (&harness);
  for (guint i = 0; i < MANY_PAIRS; i++) {
    pair_open (&pairs[i]);
    pair_watch (&pairs[i], join_viewers (&harness, 1));
  }
  harness_settle (&harness);

  for (guint i = 0; i < MANY_PAIRS; i++)
    pair_send (&pairs[i]);
  harness_run_until (&harness, all_dispatched, pairs);
  g_assert_true (all_dispatched (pairs));

  for (guint i = 0; i < MANY_PAIRS; i++)
    pair_close (&pairs[i]);
  harness_clear (&harness);
}

static gboolean
on_hang_up (gint fd, GIOCondition condition, gpointer user_data)
{
  Pair *pair = user_data;

  pair->n_dispatched++;
  g_assert_cmpuint (condition & G_IO_HUP, !=, 0);
  return G_SOURCE_REMOVE;
}

/* A source that watches only G_IO_HUP has no event bits for epoll, which
 * reports the hang-up anyway once the fd is registered. */
static void
test_loop_hang_up_only (void)
{
  Harness harness;
  GSource *source;
  Pair pair = { 0 };
  gint64 elapsed_us;
  int fds[2];

  harness_init (&harness);
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), ==, 0);
  pair.fd = fds[0];
  pair.peer = fds[1];
  source = g_unix_fd_source_new (pair.fd, G_IO_HUP);
  g_source_set_callback (source, G_SOURCE_FUNC (on_hang_up), &pair, NULL);
  g_source_attach (source, join_viewers (&harness, 1));
  harness_settle (&harness);

  close (pair.peer);
  elapsed_us = harness_run_until (&harness, pair_was_dispatched, &pair);
  g_assert_cmpuint (pair.n_dispatched, ==, 1);
  g_assert_cmpint (elapsed_us, <, PROMPT_LIMIT_US);

  g_source_unref (source);
  close (pair.fd);
  harness_clear (&harness);
}

/* The viewers beyond one group's size go to a second group. */
static void
test_loop_groups_fill_up (void)
{
  Harness harness;
  GMainContext *first, *last;

  harness_init (&harness);
  first = join_viewers (&harness, 1);
  last = join_viewers (&harness, CIMS_WORKER_GROUP_SIZE - 1);
  g_assert_true (last == first);
  last = join_viewers (&harness, 1);
  g_assert_true (last != first);

  /* A place given back is taken before a new group is made. */
  cims_worker_loop_leave_group (harness.loop, first);
  g_assert_true (join_viewers (&harness, 1) == first);
  harness_clear (&harness);
}

#define ROUNDS 10

/* A source that counts how often GLib prepares it and is never ready. */
typedef struct {
  GSource source;
  guint n_prepared;
} CountingSource;

static gboolean
counting_prepare (GSource *source, gint *timeout_ms)
{
  ((CountingSource *) source)->n_prepared++;
  *timeout_ms = -1;
  return FALSE;
}

static GSourceFuncs counting_funcs = { .prepare = counting_prepare };

/* ROUNDS dispatches in one group run that group's passes only: a source
 * in another group is not prepared once more. The busy group needs one
 * pass per round and no more: GLib writes its wake-up fd after each fd
 * source it dispatches, and a loop that left that to a pass of its own
 * would run two per round. Each round runs the loop for at least one tick
 * of the added context, long enough for such a pass. */
static void
test_loop_pass_leaves_other_groups (void)
{
  Harness harness;
  GMainContext *busy, *other;
  CountingSource *counter;
  guint64 busy_passes_before;
  guint prepared_before;
  Pair pair;

  harness_init (&harness);
  other = join_viewers (&harness, CIMS_WORKER_GROUP_SIZE);
  busy = join_viewers (&harness, 1);
  g_assert_true (busy != other);
  counter = (CountingSource *) g_source_new (&counting_funcs, sizeof (CountingSource));
  g_source_attach (&counter->source, other);
  pair_open (&pair);
  pair_watch (&pair, busy);

  /* Settle: both groups have run the passes that their joins asked for. */
  pair_send (&pair);
  harness_run_until (&harness, pair_was_dispatched, &pair);
  prepared_before = counter->n_prepared;
  busy_passes_before = cims_worker_loop_get_group_passes (harness.loop, busy);

  for (guint i = 0; i < ROUNDS; i++) {
    pair.n_dispatched = 0;
    pair_send (&pair);
    harness_run_until (&harness, pair_was_dispatched, &pair);
    g_assert_cmpuint (pair.n_dispatched, ==, 1);
  }

  /* The one-second registration refresh may fall into the rounds. */
  g_assert_cmpuint (counter->n_prepared - prepared_before, <=, 2);
  g_assert_cmpuint (cims_worker_loop_get_group_passes (harness.loop, busy) - busy_passes_before, <=, ROUNDS + 2);

  pair_close (&pair);
  g_source_destroy (&counter->source);
  g_source_unref (&counter->source);
  harness_clear (&harness);
}

static gboolean
on_timeout (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

static gboolean
flag_is_set (gpointer data)
{
  return *(gboolean *) data;
}

static void
test_loop_timeout_in_group (void)
{
  Harness harness;
  gboolean has_fired = FALSE;
  GMainContext *group;
  GSource *timeout;
  gint64 elapsed_us;

  harness_init (&harness);
  group = join_viewers (&harness, 1);
  harness_settle (&harness);

  /* Made after the settling run, so that its 30 ms count from here.
   * Attached on the loop thread outside a pass of the group, so the test
   * wakes the context, as worker-loop.h requires. */
  timeout = g_timeout_source_new (30);
  g_source_set_callback (timeout, on_timeout, &has_fired, NULL);
  g_source_attach (timeout, group);
  g_main_context_wakeup (group);

  elapsed_us = harness_run_until (&harness, flag_is_set, &has_fired);
  g_assert_true (has_fired);
  g_assert_cmpint (elapsed_us, >=, 30 * 1000);
  g_assert_cmpint (elapsed_us, <, PROMPT_LIMIT_US);

  g_source_unref (timeout);
  harness_clear (&harness);
}

typedef struct {
  GThread *loop_thread;
  gboolean ran_on_loop_thread;
  guint n_calls;
} ThreadCheck;

static void
on_fd_handler (int fd, gpointer user_data)
{
  ThreadCheck *check = user_data;
  guint64 count;

  g_assert_cmpint (read (fd, &count, sizeof count), ==, sizeof count);
  check->ran_on_loop_thread = g_thread_self () == check->loop_thread;
  check->n_calls++;
}

static gboolean
was_called (gpointer data)
{
  return ((ThreadCheck *) data)->n_calls > 0;
}

static gpointer
write_eventfd (gpointer data)
{
  guint64 increment = 1;

  g_usleep (20 * 1000);
  g_assert_cmpint (write (GPOINTER_TO_INT (data), &increment, sizeof increment), ==, sizeof increment);
  return NULL;
}

/* A handler's fd is read on the loop thread with no GLib pass. */
static void
test_loop_fd_handler (void)
{
  ThreadCheck check = { g_thread_self (), FALSE, 0 };
  Harness harness;
  GThread *writer;
  int fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);

  harness_init (&harness);
  g_assert_true (cims_worker_loop_watch_fd (harness.loop, fd, on_fd_handler, &check, NULL));

  writer = g_thread_new ("writer", write_eventfd, GINT_TO_POINTER (fd));
  harness_run_until (&harness, was_called, &check);
  g_thread_join (writer);
  g_assert_cmpuint (check.n_calls, ==, 1);
  g_assert_true (check.ran_on_loop_thread);

  harness_clear (&harness);
  close (fd);
}

static gboolean
on_invoked (gpointer user_data)
{
  ThreadCheck *check = user_data;

  check->ran_on_loop_thread = g_thread_self () == check->loop_thread;
  check->n_calls++;
  return G_SOURCE_REMOVE;
}

typedef struct {
  GMainContext *context;
  ThreadCheck *check;
} InvokeRequest;

static gpointer
invoke_from_thread (gpointer data)
{
  InvokeRequest *request = data;

  g_usleep (20 * 1000);
  g_main_context_invoke (request->context, on_invoked, request->check);
  return NULL;
}

static gboolean
on_idle_join (gpointer user_data)
{
  GMainContext **group = user_data;

  *group = cims_worker_loop_join_group (running_harness->loop);
  return G_SOURCE_REMOVE;
}

/* Another thread's g_main_context_invoke() into a waiting group or the
 * added context runs on the loop thread at once. GLib wakes the context for
 * that thread's attach only because the loop thread owns it. The group is
 * made during a run, as a media worker makes its groups. */
static void
check_invoke_reaches_loop_thread (gboolean into_group)
{
  ThreadCheck check = { g_thread_self (), FALSE, 0 };
  Harness harness;
  InvokeRequest request;
  GThread *caller;
  gint64 elapsed_us;

  harness_init (&harness);
  request.context = harness.control;
  if (into_group) {
    GSource *idle = g_idle_source_new ();

    running_harness = &harness;
    request.context = NULL;
    g_source_set_callback (idle, on_idle_join, &request.context, NULL);
    g_source_attach (idle, harness.control);
    g_source_unref (idle);
  }
  harness_settle (&harness);
  g_assert_nonnull (request.context);
  request.check = &check;

  caller = g_thread_new ("caller", invoke_from_thread, &request);
  elapsed_us = harness_run_until (&harness, was_called, &check);
  g_thread_join (caller);
  g_assert_cmpuint (check.n_calls, ==, 1);
  g_assert_true (check.ran_on_loop_thread);
  g_assert_cmpint (elapsed_us, <, PROMPT_LIMIT_US);

  harness_clear (&harness);
}

static void
test_loop_invoke_into_added_context (void)
{
  check_invoke_reaches_loop_thread (FALSE);
}

static void
test_loop_invoke_into_group (void)
{
  check_invoke_reaches_loop_thread (TRUE);
}

/* A viewer leaves and the next one joins the same group between two of its
 * passes, and the new socket gets the old one's fd number. epoll dropped
 * the old registration, so the group's unchanged fd list is no proof that
 * the fd is watched. */
static void
test_loop_reused_fd_in_group (void)
{
  Harness harness;
  GMainContext *group;
  Pair first, second;
  gint64 elapsed_us;
  int old_fd;

  harness_init (&harness);
  group = join_viewers (&harness, 1);
  pair_open (&first);
  pair_watch (&first, group);
  pair_send (&first);
  harness_run_until (&harness, pair_was_dispatched, &first);
  g_assert_cmpuint (first.n_dispatched, ==, 1);

  old_fd = first.fd;
  pair_close (&first);
  cims_worker_loop_leave_group (harness.loop, group);
  g_assert_true (join_viewers (&harness, 1) == group);
  pair_open (&second);
  g_assert_cmpint (second.fd, ==, old_fd);
  pair_watch (&second, group);

  pair_send (&second);
  elapsed_us = harness_run_until (&harness, pair_was_dispatched, &second);
  g_assert_cmpuint (second.n_dispatched, ==, 1);
  g_assert_cmpint (elapsed_us, <, PROMPT_LIMIT_US);

  pair_close (&second);
  harness_clear (&harness);
}

static gboolean
dispatched_twice (gpointer data)
{
  return ((Pair *) data)->n_dispatched >= 2;
}

typedef struct {
  Harness *harness;
  GMainContext *context;
  guint64 before;
} PassCount;

static gboolean
group_has_passed (gpointer data)
{
  PassCount *passes = data;

  return cims_worker_loop_get_group_passes (passes->harness->loop, passes->context) > passes->before;
}

/* A socket closed in the second group gets its fd number reused in the
 * first, which runs its pass before the second. When the second group then
 * drops the fd from its list, it must leave the first group's registration
 * alone. */
static void
test_loop_reused_fd_across_groups (void)
{
  Harness harness;
  GMainContext *earlier, *later;
  PassCount passes;
  Pair first, second;
  gint64 elapsed_us;
  int old_fd;

  harness_init (&harness);
  earlier = join_viewers (&harness, CIMS_WORKER_GROUP_SIZE);
  later = join_viewers (&harness, 1);
  pair_open (&first);
  pair_watch (&first, later);
  pair_send (&first);
  harness_run_until (&harness, pair_was_dispatched, &first);

  old_fd = first.fd;
  passes.harness = &harness;
  passes.context = later;
  passes.before = cims_worker_loop_get_group_passes (harness.loop, later);
  pair_close (&first);
  pair_open (&second);
  g_assert_cmpint (second.fd, ==, old_fd);
  pair_watch (&second, earlier);

  pair_send (&second);
  elapsed_us = harness_run_until (&harness, pair_was_dispatched, &second);
  g_assert_cmpuint (second.n_dispatched, ==, 1);
  g_assert_cmpint (elapsed_us, <, PROMPT_LIMIT_US);

  /* The later group has run its pass without the closed socket: removing
   * the source woke it. */
  g_assert_true (group_has_passed (&passes));

  pair_send (&second);
  elapsed_us = harness_run_until (&harness, dispatched_twice, &second);
  g_assert_cmpuint (second.n_dispatched, ==, 2);
  g_assert_cmpint (elapsed_us, <, PROMPT_LIMIT_US);

  pair_close (&second);
  harness_clear (&harness);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/worker-loop/ready-socket", test_loop_dispatches_ready_socket);
  g_test_add_func ("/worker-loop/shared-fd", test_loop_shared_fd_reaches_both);
  g_test_add_func ("/worker-loop/more-than-one-wait", test_loop_more_ready_than_one_wait);
  g_test_add_func ("/worker-loop/hang-up-only", test_loop_hang_up_only);
  g_test_add_func ("/worker-loop/groups-fill-up", test_loop_groups_fill_up);
  g_test_add_func ("/worker-loop/pass-leaves-other-groups", test_loop_pass_leaves_other_groups);
  g_test_add_func ("/worker-loop/timeout-in-group", test_loop_timeout_in_group);
  g_test_add_func ("/worker-loop/fd-handler", test_loop_fd_handler);
  g_test_add_func ("/worker-loop/invoke-into-added-context", test_loop_invoke_into_added_context);
  g_test_add_func ("/worker-loop/invoke-into-group", test_loop_invoke_into_group);
  g_test_add_func ("/worker-loop/reused-fd-in-group", test_loop_reused_fd_in_group);
  g_test_add_func ("/worker-loop/reused-fd-across-groups", test_loop_reused_fd_across_groups);

  return g_test_run ();
}
