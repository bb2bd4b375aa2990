/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of hub/fd-budget.c: the soft open-file limit is raised to the
 * hard one, sessions are admitted on an estimate between counts, and a
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
  g_assert_true (cims_fd_budget_admit (&budget, now_us, &n_open));
  g_assert_cmpuint (n_open, ==, n_open_start);

  /* Within the recount interval the first session counts as its estimate. */
  open_fds (fds, CIMS_FD_BUDGET_PER_SESSION);
  g_assert_true (cims_fd_budget_admit (&budget, now_us + 1, &n_open));
  g_assert_cmpuint (n_open, ==, n_open_start + CIMS_FD_BUDGET_PER_SESSION);

  /* The estimate is full: a fresh count confirms it, and the third is refused. */
  open_fds (fds + CIMS_FD_BUDGET_PER_SESSION, CIMS_FD_BUDGET_PER_SESSION);
  g_assert_false (cims_fd_budget_admit (&budget, now_us + 2, &n_open));
  g_assert_cmpuint (n_open, ==, n_open_start + 2 * CIMS_FD_BUDGET_PER_SESSION);

  /* Descriptors closed since: the next request counts again and is admitted,
   * also within the recount interval. */
  close_fds (fds, G_N_ELEMENTS (fds));
  g_assert_true (cims_fd_budget_admit (&budget, now_us + 3, &n_open));
  g_assert_cmpuint (n_open, ==, n_open_start);
}

static void
test_estimate_alone_never_refuses (void)
{
  CimsFdBudget budget;
  guint64 n_open_start = cims_fd_count_open ();
  guint64 n_open = 0;
  gint64 now_us = 1000 * 1000;

  /* Admitted sessions that opened nothing yet: the estimate fills up, but a
   * fresh count shows room, so none is refused on the estimate alone. */
  cims_fd_budget_init (&budget, n_open_start + 64 + 2 * CIMS_FD_BUDGET_PER_SESSION);
  for (int i = 0; i < 5; i++)
    g_assert_true (cims_fd_budget_admit (&budget, now_us + i, &n_open));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/fd-budget/limit-raised", test_limit_raised);
  g_test_add_func ("/fd-budget/session-room", test_session_room);
  g_test_add_func ("/fd-budget/admit-and-refuse", test_admit_and_refuse);
  g_test_add_func ("/fd-budget/estimate-alone-never-refuses", test_estimate_alone_never_refuses);
  return g_test_run ();
}
