/* SPDX-License-Identifier: Apache-2.0 */
/* The hub's budget of open file descriptors. Each viewer session keeps an
 * ICE socket and wakeup descriptors open, and a camera's ingest its own
 * sockets and poll descriptors. When the process runs out, the next
 * socket() anywhere fails: a camera that reconnects, an HTTP connection or
 * the database. So the hub raises its soft limit to the hard one at start,
 * and refuses a new viewer while fewer than a reserve of descriptors are
 * free, which keeps every viewer and camera already served working. */
#include "hub/fd-budget.h"

#include <dirent.h>
#include <sys/resource.h>

/* Descriptors kept free: this many, or a sixteenth of a larger limit. The
 * minimum is an estimate of what a small hub's cameras need to reconnect. */
#define RESERVE_MIN 64

guint64
cims_fd_limit_raise (guint64 *previous)
{
  struct rlimit limit;

  if (getrlimit (RLIMIT_NOFILE, &limit) != 0) {
    *previous = 0;
    return 0;
  }

  *previous = limit.rlim_cur;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit (RLIMIT_NOFILE, &limit) != 0 || getrlimit (RLIMIT_NOFILE, &limit) != 0)
      return *previous;
  }

  return limit.rlim_cur;
}

void
cims_fd_budget_init (CimsFdBudget *budget, guint64 limit)
{
  budget->limit = limit;
  budget->reserve = MAX (RESERVE_MIN, limit / 16);
  budget->n_open = 0;
  budget->counted_us = 0;
  budget->n_pending = 0;
}

guint64
cims_fd_budget_session_room (const CimsFdBudget *budget, guint64 n_open)
{
  guint64 used = n_open + budget->reserve;

  if (used >= budget->limit)
    return 0;

  return (budget->limit - used) / CIMS_FD_BUDGET_PER_SESSION;
}

guint64
cims_fd_count_open (void)
{
  DIR *directory = opendir ("/proc/self/fd");
  struct dirent *entry;
  guint64 n_open = 0;

  if (directory == NULL)
    return 0;

  while ((entry = readdir (directory)) != NULL) {
    if (entry->d_name[0] != '.')
      n_open++;
  }

  closedir (directory);
  /* The directory's own descriptor was open while it was read. */
  return n_open > 0 ? n_open - 1 : 0;
}

static void
budget_recount (CimsFdBudget *budget, gint64 now_us)
{
  budget->n_open = cims_fd_count_open ();
  budget->counted_us = now_us;
}

/* Tells whether @n_needed more descriptors leave the reserve free. */
static gboolean
budget_fits (const CimsFdBudget *budget, guint n_needed)
{
  return budget->n_open + budget->n_pending + n_needed + budget->reserve <= budget->limit;
}

gboolean
cims_fd_budget_admit (CimsFdBudget *budget, gint64 now_us, guint n_needed, guint64 *n_open)
{
  /* RLIM_INFINITY or an unreadable limit: nothing to keep within. */
  if (budget->limit == 0 || budget->limit == RLIM_INFINITY) {
    *n_open = 0;
    return TRUE;
  }

  if (budget->counted_us == 0 || now_us - budget->counted_us >= CIMS_FD_BUDGET_RECOUNT_US)
    budget_recount (budget, now_us);
  if (!budget_fits (budget, n_needed) && budget->counted_us != now_us)
    budget_recount (budget, now_us);

  *n_open = budget->n_open + budget->n_pending;
  if (!budget_fits (budget, n_needed))
    return FALSE;

  budget->n_pending += n_needed;
  return TRUE;
}

/* Tells whether one more connection leaves half the reserve free. */
static gboolean
budget_fits_connection (const CimsFdBudget *budget)
{
  return budget->n_open + budget->n_pending + budget->reserve / 2 <= budget->limit;
}

gboolean
cims_fd_budget_admit_connection (CimsFdBudget *budget, gint64 now_us, guint64 *n_open)
{
  gboolean is_counted;
  gboolean fits;

  if (budget->limit == 0 || budget->limit == RLIM_INFINITY) {
    *n_open = 0;
    return TRUE;
  }

  /* Between counts, the connection's descriptor is one more than counted.
   * Counts stay at most one per interval even while connections are
   * refused: a count reads every open descriptor, and a flood of
   * connections must not make the main context read them all for each. */
  is_counted = budget->counted_us == 0 || now_us - budget->counted_us >= CIMS_FD_BUDGET_RECOUNT_US;
  if (is_counted)
    budget_recount (budget, now_us);
  else
    budget->n_open++;

  *n_open = budget->n_open + budget->n_pending;
  fits = budget_fits_connection (budget);

  /* A refused connection is closed at once, so it is not counted for the
   * connections that come before the next count. */
  if (!fits && !is_counted)
    budget->n_open--;
  return fits;
}

void
cims_fd_budget_settle (CimsFdBudget *budget, guint n_needed)
{
  guint64 n_settled = MIN (budget->n_pending, n_needed);

  /* Counted as open until the next count. */
  budget->n_pending -= n_settled;
  budget->n_open += n_settled;
}
