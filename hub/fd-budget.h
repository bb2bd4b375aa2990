/* SPDX-License-Identifier: Apache-2.0 */
/* The hub's budget of open file descriptors, which decides whether one more
 * viewer session fits (fd-budget.c). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Descriptors a new viewer session is assumed to take: its ICE socket and
 * main-loop wakeups. About 2.2 were measured per session. */
#define CIMS_FD_BUDGET_PER_SESSION 4
/* Descriptors a request that starts a camera's ingest is assumed to take
 * on top: 16 to 20 were measured for an RTSP camera. */
#define CIMS_FD_BUDGET_PER_SOURCE 24
/* How long a count of the open descriptors is trusted. */
#define CIMS_FD_BUDGET_RECOUNT_US (100 * 1000)

/* The state of the budget. Main context only. */
typedef struct {
  guint64 limit;                /* the process's soft open-file limit */
  guint64 reserve;              /* descriptors kept free for camera ingest, HTTP and the database */
  guint64 n_open;               /* open descriptors at the last count */
  gint64 counted_us;            /* monotonic time of that count, 0 before the first */
  guint64 n_pending;            /* descriptors of admitted requests not yet settled */
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

/* Tells whether a request that needs @n_needed descriptors fits at
 * monotonic time @now_us beside the open ones and those of requests not
 * yet settled, and adds it to those when it does. A refusal always rests on
 * a fresh count. Sets @n_open to the descriptors it judged by. */
gboolean cims_fd_budget_admit (CimsFdBudget *budget, gint64 now_us, guint n_needed, guint64 *n_open);

/* Tells whether the hub keeps a new HTTP connection, whose descriptor is
 * already open, at monotonic time @now_us: while half the reserve is still
 * free. Viewers are refused at the whole reserve, so a flood of idle
 * connections cannot take the descriptors that camera ingest and the
 * database need. Counts at most once per CIMS_FD_BUDGET_RECOUNT_US, so a
 * refusal can rest on a count up to that old. Sets @n_open to the
 * descriptors it judged by. */
gboolean cims_fd_budget_admit_connection (CimsFdBudget *budget, gint64 now_us, guint64 *n_open);

/* Settles an admitted request of @n_needed descriptors once it ended. Its
 * descriptors then count as open until the next count, which shows whether
 * they are. Both err on the safe side. */
void cims_fd_budget_settle (CimsFdBudget *budget, guint n_needed);

G_END_DECLS
