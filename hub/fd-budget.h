/* SPDX-License-Identifier: Apache-2.0 */
/* The hub's budget of open file descriptors, which decides whether one more
 * viewer session fits (fd-budget.c). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Descriptors a new viewer session is assumed to take until the next count:
 * its ICE socket and main-loop wakeups, plus a camera ingest it may start. */
#define CIMS_FD_BUDGET_PER_SESSION 4
/* How long a count of the open descriptors is trusted. */
#define CIMS_FD_BUDGET_RECOUNT_US (100 * 1000)

/* The state of the budget. Main context only. */
typedef struct {
  guint64 limit;                /* the process's soft open-file limit */
  guint64 reserve;              /* descriptors kept free for camera ingest, HTTP and the database */
  guint64 n_open;               /* open descriptors at the last count */
  gint64 counted_us;            /* monotonic time of that count, 0 before the first */
  guint n_admitted;             /* sessions admitted since that count */
} CimsFdBudget;

/* Raises the process's soft open-file limit to its hard limit and returns
 * the soft limit in force afterwards. Sets @previous to the one before. */
guint64 cims_fd_limit_raise (guint64 *previous);

/* Sets up @budget for a process whose soft open-file limit is @limit. */
void cims_fd_budget_init (CimsFdBudget *budget, guint64 limit);

/* Returns how many viewer sessions fit in @budget's limit beside the
 * @n_open descriptors open now. */
guint64 cims_fd_budget_session_room (const CimsFdBudget *budget, guint64 n_open);

/* Returns the number of descriptors this process has open, or 0 when
 * /proc/self/fd cannot be read. */
guint64 cims_fd_count_open (void);

/* Tells whether one more viewer session fits at monotonic time @now_us, and
 * counts it as admitted when it does. A refusal always rests on a fresh
 * count. Sets @n_open to the open descriptors it judged by. */
gboolean cims_fd_budget_admit (CimsFdBudget *budget, gint64 now_us, guint64 *n_open);

G_END_DECLS
