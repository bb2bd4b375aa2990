/* SPDX-License-Identifier: Apache-2.0 */
/* The event loop of a media worker thread (worker-loop.c). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Viewers that share one GMainContext of a worker loop. */
#define CIMS_WORKER_GROUP_SIZE 16

typedef struct _CimsWorkerLoop CimsWorkerLoop;

/* Called on the loop thread when the watched fd is readable. */
typedef void (*CimsWorkerLoopFdFunc) (int fd, gpointer user_data);

CimsWorkerLoop *cims_worker_loop_new (GError **error);
/* Frees the loop and its groups' contexts, after cims_worker_loop_run()
 * returned or when it never ran. The contexts added with
 * cims_worker_loop_add_context() stay with their owners. */
void cims_worker_loop_free (CimsWorkerLoop *loop);

/* Runs @func whenever @fd is readable, straight from epoll with no GLib
 * pass. Before cims_worker_loop_run(). */
gboolean cims_worker_loop_watch_fd (CimsWorkerLoop *loop, int fd, CimsWorkerLoopFdFunc func,
                                    gpointer user_data, GError **error);
/* Runs @context's sources too, as a group of its own that no viewer joins.
 * @context must have no source attached yet. Before cims_worker_loop_run(). */
void cims_worker_loop_add_context (CimsWorkerLoop *loop, GMainContext *context);

/* Returns (transfer none) the context of a group with room for one more
 * viewer, making a group when all are full. Loop thread. A source attached
 * to it from the loop thread outside the group's own passes needs a
 * g_main_context_wakeup() to be seen. This call and
 * cims_worker_loop_leave_group() bring the group's next pass forward to the
 * current turn of the loop, so attaches made before that pass need none. */
GMainContext *cims_worker_loop_join_group (CimsWorkerLoop *loop);
/* Gives back the place that cims_worker_loop_join_group() returned @context
 * for, once the viewer's sources are gone or going. Loop thread. */
void cims_worker_loop_leave_group (CimsWorkerLoop *loop, GMainContext *context);

/* Acquires every context of the loop for the calling thread and runs until
 * cims_worker_loop_quit(). The thread that runs the loop must be the one
 * that joins groups, and a later run must be on that thread too. */
void cims_worker_loop_run (CimsWorkerLoop *loop);
/* Makes cims_worker_loop_run() return after the current pass. Loop thread. */
void cims_worker_loop_quit (CimsWorkerLoop *loop);

/* Returns how many GLib passes the loop ran for @context's group, for
 * tests. Loop thread. */
guint64 cims_worker_loop_get_group_passes (CimsWorkerLoop *loop, GMainContext *context);

G_END_DECLS
