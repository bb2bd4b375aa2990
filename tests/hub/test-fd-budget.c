/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of hub/fd-budget.c: the soft open-file limit is raised to the
 * hard one, requests count until they settle, also across recounts, and a
 * refusal rests on a fresh count of the descriptors really open. */
#include "hub/fd-budget.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

static void
test_limit_raised (void)
{
  struct rlimit limit;
  guint64 previous = 0;
  guint64 raised;

  g_assert_cmpint (getrlimit (RLIMIT_NOFILE, &limit), ==, 0);
  if (limit.rlim_max < 256) {
    g_test_skip ("the hard open-file limit is below 256");
    return;
  }

  limit.rlim_cur = 128;
  g_assert_cmpint (setrlimit (RLIMIT_NOFILE, &limit), ==, 0);

  raised = cims_fd_limit_raise (&previous);
  g_assert_cmpuint (previous, ==, 128);
  g_assert_cmpuint (raised, ==, limit.rlim_max);
  g_assert_cmpint (getrlimit (RLIMIT_NOFILE, &limit), ==, 0);
  g_assert_cmpuint (limit.rlim_cur, ==, raised);
}

static void
test_session_room (void)
{
  CimsFdBudget budget;

  /* A limit of 1,024 keeps 64 free: 100 open leave room for 215 sessions. */
  cims_fd_budget_init (&budget, 1024);
  g_assert_cmpuint (budget.reserve, ==, 64);
  g_assert_cmpuint (cims_fd_budget_session_room (&budget, 100), ==, (1024 - 100 - 64) / CIMS_FD_BUDGET_PER_SESSION);
  g_assert_cmpuint (cims_fd_budget_session_room (&budget, 960), ==, 0);
  g_assert_cmpuint (cims_fd_budget_session_room (&budget, 2000), ==, 0);

  /* A large limit keeps a sixteenth free. */
  cims_fd_budget_init (&budget, 65536);
  g_assert_cmpuint (budget.reserve, ==, 4096);
}

/* Opens @n descriptors into @fds. */
static void
open_fds (int *fds, guint n)
{
  for (guint i = 0; i < n; i++) {
    fds[i] = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    g_assert_cmpint (fds[i], >=, 0);
  }
}

static void
close_fds (const int *fds, guint n)
{
  for (guint i = 0; i < n; i++)
    close (fds[i]);
}

static void
test_admit_and_refuse (void)
{
  CimsFdBudget budget;
  int fds[2 * CIMS_FD_BUDGET_PER_SESSION];
  guint64 n_open_start = cims_fd_count_open ();
  guint64 n_open = 0;
  gint64 now_us = 1000 * 1000;

  /* Room for two sessions above what is open now. */
  g_assert_cmpuint (n_open_start, >, 0);
  cims_fd_budget_init (&budget, n_open_start + 64 + 2 * CIMS_FD_BUDGET_PER_SESSION);
  g_assert_true (cims_fd_budget_admit (&budget, now_us, CIMS_FD_BUDGET_PER_SESSION, &n_open));
  g_assert_cmpuint (n_open, ==, n_open_start);

  /* The first request opened its descriptors and settled. */
  open_fds (fds, CIMS_FD_BUDGET_PER_SESSION);
  cims_fd_budget_settle (&budget, CIMS_FD_BUDGET_PER_SESSION);
  g_assert_true (cims_fd_budget_admit (&budget, now_us + 1, CIMS_FD_BUDGET_PER_SESSION, &n_open));
  open_fds (fds + CIMS_FD_BUDGET_PER_SESSION, CIMS_FD_BUDGET_PER_SESSION);
  cims_fd_budget_settle (&budget, CIMS_FD_BUDGET_PER_SESSION);

  /* The last count is stale, and a fresh one shows the room used up. */
  g_assert_false (cims_fd_budget_admit (&budget, now_us + 2, CIMS_FD_BUDGET_PER_SESSION, &n_open));
  g_assert_cmpuint (n_open, ==, n_open_start + 2 * CIMS_FD_BUDGET_PER_SESSION);
  g_assert_cmpuint (budget.n_pending, ==, 0);

  /* Descriptors closed since: the next request counts again and is admitted,
   * also within the recount interval. */
  close_fds (fds, G_N_ELEMENTS (fds));
  g_assert_true (cims_fd_budget_admit (&budget, now_us + 3, CIMS_FD_BUDGET_PER_SESSION, &n_open));
  g_assert_cmpuint (n_open, ==, n_open_start);
}

static void
test_pending_survive_recount (void)
{
  CimsFdBudget budget;
  guint64 n_open_start = cims_fd_count_open ();
  guint64 n_open = 0;
  gint64 now_us = 1000 * 1000;

  /* Requests whose camera has not connected yet have opened nothing, so a
   * fresh count misses them: they stay counted until settled. */
  cims_fd_budget_init (&budget, n_open_start + 64 + 2 * CIMS_FD_BUDGET_PER_SESSION);
  g_assert_true (cims_fd_budget_admit (&budget, now_us, CIMS_FD_BUDGET_PER_SESSION, &n_open));
  now_us += 2 * CIMS_FD_BUDGET_RECOUNT_US;
  g_assert_true (cims_fd_budget_admit (&budget, now_us, CIMS_FD_BUDGET_PER_SESSION, &n_open));
  now_us += 2 * CIMS_FD_BUDGET_RECOUNT_US;
  g_assert_false (cims_fd_budget_admit (&budget, now_us, CIMS_FD_BUDGET_PER_SESSION, &n_open));
  g_assert_cmpuint (n_open, ==, n_open_start + 2 * CIMS_FD_BUDGET_PER_SESSION);

  /* One of them ended without opening anything. */
  cims_fd_budget_settle (&budget, CIMS_FD_BUDGET_PER_SESSION);
  g_assert_true (cims_fd_budget_admit (&budget, now_us + 1, CIMS_FD_BUDGET_PER_SESSION, &n_open));
}

static void
test_camera_start_needs_more (void)
{
  CimsFdBudget budget;
  guint64 n_open_start = cims_fd_count_open ();
  guint64 n_open = 0;

  /* Room for a few sessions of a running camera, but not for a request
   * that also starts a camera's ingest. */
  cims_fd_budget_init (&budget, n_open_start + 64 + CIMS_FD_BUDGET_PER_SOURCE);
  g_assert_false (cims_fd_budget_admit (&budget, 1, CIMS_FD_BUDGET_PER_SESSION + CIMS_FD_BUDGET_PER_SOURCE,
                                        &n_open));
  g_assert_true (cims_fd_budget_admit (&budget, 2, CIMS_FD_BUDGET_PER_SESSION, &n_open));
  g_assert_cmpuint (budget.n_pending, ==, CIMS_FD_BUDGET_PER_SESSION);
}

/* A new HTTP connection is kept while half the reserve is free, so with
 * the reserve of 64 it is kept where a viewer is already refused, and closed
 * 32 descriptors short of the limit. */
static void
test_connection_keeps_half_reserve (void)
{
  CimsFdBudget budget;
  int fds[40];
  guint64 n_open_start = cims_fd_count_open ();
  guint64 n_open = 0;
  gint64 now_us = 1000 * 1000;

  cims_fd_budget_init (&budget, n_open_start + 64);
  g_assert_false (cims_fd_budget_admit (&budget, now_us, CIMS_FD_BUDGET_PER_SESSION, &n_open));
  g_assert_true (cims_fd_budget_admit_connection (&budget, now_us + 1, &n_open));

  /* Connections accepted within the recount interval count one each. */
  for (guint i = 0; i < 31; i++)
    g_assert_true (cims_fd_budget_admit_connection (&budget, now_us + 2, &n_open));
  g_assert_cmpuint (n_open, ==, n_open_start + 32);

  /* The 33rd within the interval is refused on the current count:
   * counting again for each refused connection would cost a flood dear. */
  g_assert_false (cims_fd_budget_admit_connection (&budget, now_us + 3, &n_open));
  g_assert_cmpuint (n_open, ==, n_open_start + 33);

  /* Refused connections are closed, so a flood of them does not add up. */
  for (guint i = 0; i < 10; i++)
    g_assert_false (cims_fd_budget_admit_connection (&budget, now_us + 4, &n_open));
  g_assert_cmpuint (n_open, ==, n_open_start + 33);

  /* 40 descriptors really open: the next interval's count refuses. */
  open_fds (fds, G_N_ELEMENTS (fds));
  now_us += CIMS_FD_BUDGET_RECOUNT_US;
  g_assert_false (cims_fd_budget_admit_connection (&budget, now_us, &n_open));
  g_assert_cmpuint (n_open, ==, n_open_start + G_N_ELEMENTS (fds));

  /* Closed again: the count after that admits. */
  close_fds (fds, G_N_ELEMENTS (fds));
  now_us += CIMS_FD_BUDGET_RECOUNT_US;
  g_assert_true (cims_fd_budget_admit_connection (&budget, now_us, &n_open));
  g_assert_cmpuint (n_open, ==, n_open_start);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/fd-budget/limit-raised", test_limit_raised);
  g_test_add_func ("/fd-budget/session-room", test_session_room);
  g_test_add_func ("/fd-budget/admit-and-refuse", test_admit_and_refuse);
  g_test_add_func ("/fd-budget/pending-survive-recount", test_pending_survive_recount);
  g_test_add_func ("/fd-budget/camera-start-needs-more", test_camera_start_needs_more);
  g_test_add_func ("/fd-budget/connection-keeps-half-reserve", test_connection_keeps_half_reserve);
  return g_test_run ();
}
