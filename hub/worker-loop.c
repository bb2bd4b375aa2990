/* SPDX-License-Identifier: Apache-2.0 */
/* The event loop of a media worker thread. A GLib pass visits every source
 * of its context twice (prepare and check), and each viewer brings about
 * four: libnice's socket and cancellable and its consent and keep-alive
 * timers. With all of a worker's viewers in one context, every RTCP packet
 * from one viewer cost a walk over the sources of all of them, about 18%
 * of the hub's CPU at 800 viewers. Here the viewers share small contexts,
 * CIMS_WORKER_GROUP_SIZE to a group, and the loop runs a group's pass only
 * when one of its fds is ready or its next timeout is due. One epoll set
 * watches the fds of every group, and fd handlers (the frame wake-up) run
 * straight from it, with no GLib pass at all. */
#include "hub/worker-loop.h"

#include <gio/gio.h>

#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 256
/* A group's fds are registered again at least this often. epoll drops a
 * socket when it is closed, and a new socket that takes the closed one's fd
 * number within one pass of the same group leaves the group's fd list
 * unchanged. NOTE: such a socket goes unwatched for up to this long, and
 * every group runs a pass this often. */
#define LOOP_RESYNC_INTERVAL_US (1000 * 1000)
/* A group with an fd that epoll rejected runs a pass this often instead. */
#define LOOP_FALLBACK_INTERVAL_US (10 * 1000)

typedef enum {
  TARGET_GROUP,
  TARGET_HANDLER,
} TargetKind;

/* An fd of a group as registered in epoll: its events merged over all the
 * group's sources that watch it. */
typedef struct {
  int fd;
  guint32 events;
} WatchedFd;

typedef struct {
  TargetKind kind;              /* first: epoll's data.ptr points here */
  GMainContext *context;
  gboolean is_viewer_group;     /* FALSE: a context added by the owner */
  guint n_members;
  int wakeup_fd;                /* GLib's own wake-up fd of @context, or -1 */

  gint max_priority;
  GPollFD *fds;                 /* the poll set of the last query */
  gint n_fds;
  gint n_allocated;
  GArray *watched;              /* of WatchedFd, sorted by fd: what the group registered */
  GArray *next_watched;         /* scratch for the next registration */

  gint64 deadline_us;           /* G_MAXINT64: no timeout */
  gint64 synced_us;             /* when every fd was last registered again */
  gboolean needs_resync;        /* a viewer joined or left since */
  gboolean has_unwatched_fd;    /* epoll rejected an fd: pass every LOOP_FALLBACK_INTERVAL_US */
  gboolean is_ready;            /* epoll reported one of its fds */
  gboolean is_prepared;         /* queried, and waiting for its next pass */
  guint64 n_passes;
} LoopGroup;

typedef struct {
  TargetKind kind;              /* first: epoll's data.ptr points here */
  int fd;
  CimsWorkerLoopFdFunc func;
  gpointer user_data;
} FdHandler;

struct _CimsWorkerLoop {
  int epoll_fd;
  GPtrArray *groups;            /* of LoopGroup: added contexts first, then viewer groups */
  GPtrArray *handlers;          /* of FdHandler */
  GPtrArray *owner_by_fd;       /* LoopGroup by fd number: the group whose registration is in epoll */
  gboolean is_running;
  gboolean has_warned;
};

/* ---- groups -------------------------------------------------------------- */

/* With no source attached, the only fd a context's pass polls is its own
 * wake-up fd. */
static int
context_find_wakeup_fd (GMainContext *context)
{
  GPollFD fds[2];
  gint timeout_ms;
  gint priority;
  gint n_fds = 0;

  if (g_main_context_acquire (context)) {
    g_main_context_prepare (context, &priority);
    n_fds = g_main_context_query (context, priority, &timeout_ms, fds, G_N_ELEMENTS (fds));
    g_main_context_check (context, priority, fds, 0);
    g_main_context_release (context);
  }
  return n_fds == 1 ? fds[0].fd : -1;
}

static LoopGroup *
group_new (GMainContext *context, gboolean is_viewer_group)
{
  LoopGroup *group = g_new0 (LoopGroup, 1);

  group->kind = TARGET_GROUP;
  group->context = g_main_context_ref (context);
  group->is_viewer_group = is_viewer_group;
  group->wakeup_fd = context_find_wakeup_fd (context);
  if (group->wakeup_fd < 0)
    g_warning ("media worker: a context with sources already attached was added to the loop; each fd "
               "dispatch in it will cost one more pass");
  group->n_allocated = 8;
  group->fds = g_new0 (GPollFD, group->n_allocated);
  group->watched = g_array_new (FALSE, FALSE, sizeof (WatchedFd));
  group->next_watched = g_array_new (FALSE, FALSE, sizeof (WatchedFd));
  group->deadline_us = 0;
  group->needs_resync = TRUE;
  return group;
}

static void
group_free (gpointer data)
{
  LoopGroup *group = data;

  g_main_context_unref (group->context);
  g_free (group->fds);
  g_array_unref (group->watched);
  g_array_unref (group->next_watched);
  g_free (group);
}

static LoopGroup *
loop_find_group (CimsWorkerLoop *loop, GMainContext *context)
{
  for (guint i = 0; i < loop->groups->len; i++) {
    LoopGroup *group = g_ptr_array_index (loop->groups, i);

    if (group->context == context)
      return group;
  }
  return NULL;
}

/* ---- epoll registration ------------------------------------------------- */

static guint32
epoll_events_from_poll (gushort events)
{
  guint32 result = 0;

  if (events & G_IO_IN)
    result |= EPOLLIN;
  if (events & G_IO_OUT)
    result |= EPOLLOUT;
  if (events & G_IO_PRI)
    result |= EPOLLPRI;
  return result;
}

static LoopGroup *
loop_owner (CimsWorkerLoop *loop, int fd)
{
  if ((guint) fd >= loop->owner_by_fd->len)
    return NULL;
  return g_ptr_array_index (loop->owner_by_fd, fd);
}

static void
loop_set_owner (CimsWorkerLoop *loop, int fd, LoopGroup *group)
{
  if ((guint) fd >= loop->owner_by_fd->len)
    g_ptr_array_set_size (loop->owner_by_fd, fd + 1);
  g_ptr_array_index (loop->owner_by_fd, fd) = group;
}

/* Registers @fd for @group, or changes its registration. When another
 * group registered the fd number for a socket closed since, epoll has
 * dropped that registration (ENOENT), or it belongs to the new socket and
 * is taken over. Returns FALSE with errno set when epoll rejects the fd. An
 * fd closed since the query (EBADF) counts as done. */
static gboolean
loop_register (CimsWorkerLoop *loop, LoopGroup *group, int fd, guint32 events)
{
  struct epoll_event event = { .events = events, .data.ptr = group };
  int operation = loop_owner (loop, fd) != NULL ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

  if (epoll_ctl (loop->epoll_fd, operation, fd, &event) < 0) {
    if (errno == EBADF)
      return TRUE;

    if (errno == ENOENT)
      operation = EPOLL_CTL_ADD;
    else if (errno == EEXIST)
      operation = EPOLL_CTL_MOD;
    else
      return FALSE;
    if (epoll_ctl (loop->epoll_fd, operation, fd, &event) < 0)
      return FALSE;
  }

  loop_set_owner (loop, fd, group);
  return TRUE;
}

/* Deregisters @fd unless another group has registered its number since. */
static void
loop_unregister (CimsWorkerLoop *loop, LoopGroup *group, int fd)
{
  if (loop_owner (loop, fd) != group)
    return;

  /* A closed fd has left the epoll set already. */
  epoll_ctl (loop->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
  loop_set_owner (loop, fd, NULL);
}

static int
watched_fd_compare (gconstpointer a, gconstpointer b)
{
  const WatchedFd *first = a, *second = b;

  return (first->fd > second->fd) - (first->fd < second->fd);
}

/* Fills @group's next_watched from its poll set: one entry per fd, sorted,
 * with the events of every source that watches it. An fd watched for no
 * event (ERR and HUP only, which epoll always reports) is registered too. */
static void
group_collect_fds (LoopGroup *group)
{
  GArray *next = group->next_watched;
  guint n_merged = 0;

  g_array_set_size (next, 0);
  for (gint i = 0; i < group->n_fds; i++) {
    WatchedFd entry = { group->fds[i].fd, epoll_events_from_poll (group->fds[i].events) };

    if (entry.fd >= 0)
      g_array_append_val (next, entry);
  }
  g_array_sort (next, watched_fd_compare);

  for (guint i = 0; i < next->len; i++) {
    WatchedFd *entry = &g_array_index (next, WatchedFd, i);

    if (n_merged > 0 && g_array_index (next, WatchedFd, n_merged - 1).fd == entry->fd)
      g_array_index (next, WatchedFd, n_merged - 1).events |= entry->events;
    else
      g_array_index (next, WatchedFd, n_merged++) = *entry;
  }
  g_array_set_size (next, n_merged);
}

static void
loop_warn_once (CimsWorkerLoop *loop, int fd)
{
  if (loop->has_warned)
    return;

  loop->has_warned = TRUE;
  g_warning ("media worker: epoll_ctl() failed for fd %d: %s; its viewer group now runs a pass every %d ms "
             "instead of waiting for its fds",
             fd, g_strerror (errno), LOOP_FALLBACK_INTERVAL_US / 1000);
}

/* Brings epoll in line with @group's new poll set: new fds are added, fds
 * that left are removed, and changed events are modified. On a resync every
 * fd is registered again, which catches an fd number reused by a new socket.
 * Walks both sorted lists once. */
static void
group_sync_fds (CimsWorkerLoop *loop, LoopGroup *group, gboolean is_resync)
{
  GArray *old = group->watched, *next;
  guint i = 0, j = 0;

  group_collect_fds (group);
  next = group->next_watched;
  group->has_unwatched_fd = FALSE;

  while (i < old->len || j < next->len) {
    WatchedFd *was = i < old->len ? &g_array_index (old, WatchedFd, i) : NULL;
    WatchedFd *is = j < next->len ? &g_array_index (next, WatchedFd, j) : NULL;

    if (is == NULL || (was != NULL && was->fd < is->fd)) {
      loop_unregister (loop, group, was->fd);
      i++;
      continue;
    }

    if (was == NULL || was->fd > is->fd || was->events != is->events || is_resync
        || loop_owner (loop, is->fd) != group) {
      if (!loop_register (loop, group, is->fd, is->events)) {
        loop_warn_once (loop, is->fd);
        group->has_unwatched_fd = TRUE;
      }
    }
    if (was != NULL && was->fd == is->fd)
      i++;
    j++;
  }

  group->watched = next;
  group->next_watched = old;
}

/* Reads GLib's wake-up fd of @group's context. During a pass GLib writes it
 * whenever the poll set or a ready time changes, as after each fd source it
 * dispatches, and reads it only in the next pass's check. Left alone, each
 * dispatch would cost one more pass. Read right before prepare, it loses no
 * wake-up from another thread: that prepare finds what was attached or
 * invoked until now, and a later attach writes the fd again. An attach on
 * the loop thread outside a pass writes nothing, so its caller must call
 * g_main_context_wakeup(). */
static void
group_clear_wakeup (LoopGroup *group)
{
  guint64 count;

  if (group->wakeup_fd >= 0 && read (group->wakeup_fd, &count, sizeof count) < 0 && errno != EAGAIN)
    g_warning ("media worker: read() of a context's wake-up fd failed: %s", g_strerror (errno));
}

/* Prepares and queries @group's context, registers its fds and sets its
 * deadline. */
static void
group_prepare (CimsWorkerLoop *loop, LoopGroup *group)
{
  gint64 now_us = g_get_monotonic_time ();
  gboolean is_resync = group->needs_resync || now_us - group->synced_us >= LOOP_RESYNC_INTERVAL_US;
  gint timeout_ms;
  gint n_fds;

  g_main_context_prepare (group->context, &group->max_priority);
  while ((n_fds = g_main_context_query (group->context, group->max_priority, &timeout_ms, group->fds,
                                        group->n_allocated)) > group->n_allocated) {
    group->n_allocated = n_fds * 2;
    group->fds = g_renew (GPollFD, group->fds, group->n_allocated);
  }
  group->n_fds = n_fds;

  group_sync_fds (loop, group, is_resync);
  if (is_resync) {
    group->synced_us = now_us;
    group->needs_resync = FALSE;
  }

  group->is_prepared = TRUE;
  group->deadline_us = timeout_ms < 0 ? G_MAXINT64 : now_us + (gint64) timeout_ms * 1000;
  group->deadline_us = MIN (group->deadline_us, group->synced_us + LOOP_RESYNC_INTERVAL_US);
  if (group->has_unwatched_fd)
    group->deadline_us = MIN (group->deadline_us, now_us + LOOP_FALLBACK_INTERVAL_US);
}

/* One GLib pass of @group: reads the readiness of its fds with a poll()
 * that does not wait, dispatches what is ready, then prepares the next
 * pass. */
static void
group_pass (CimsWorkerLoop *loop, LoopGroup *group)
{
  group->is_ready = FALSE;
  group->n_passes++;

  if (group->n_fds > 0 && poll ((struct pollfd *) group->fds, group->n_fds, 0) < 0 && errno != EINTR)
    g_warning ("media worker: poll() of a group's %d fds failed: %s", group->n_fds, g_strerror (errno));

  if (g_main_context_check (group->context, group->max_priority, group->fds, group->n_fds))
    g_main_context_dispatch (group->context);

  group_clear_wakeup (group);
  group_prepare (loop, group);
}

/* ---- the loop ------------------------------------------------------------ */

CimsWorkerLoop *
cims_worker_loop_new (GError **error)
{
  CimsWorkerLoop *loop;
  int epoll_fd = epoll_create1 (EPOLL_CLOEXEC);

  if (epoll_fd < 0) {
    int code = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (code), "epoll_create1() failed: %s", g_strerror (code));
    return NULL;
  }

  loop = g_new0 (CimsWorkerLoop, 1);
  loop->epoll_fd = epoll_fd;
  loop->groups = g_ptr_array_new_with_free_func (group_free);
  loop->handlers = g_ptr_array_new_with_free_func (g_free);
  loop->owner_by_fd = g_ptr_array_new ();
  return loop;
}

void
cims_worker_loop_free (CimsWorkerLoop *loop)
{
  if (loop == NULL)
    return;

  close (loop->epoll_fd);
  g_ptr_array_unref (loop->groups);
  g_ptr_array_unref (loop->handlers);
  g_ptr_array_unref (loop->owner_by_fd);
  g_free (loop);
}

gboolean
cims_worker_loop_watch_fd (CimsWorkerLoop *loop, int fd, CimsWorkerLoopFdFunc func, gpointer user_data,
                           GError **error)
{
  FdHandler *handler = g_new0 (FdHandler, 1);
  struct epoll_event event = { .events = EPOLLIN, .data.ptr = handler };

  handler->kind = TARGET_HANDLER;
  handler->fd = fd;
  handler->func = func;
  handler->user_data = user_data;
  if (epoll_ctl (loop->epoll_fd, EPOLL_CTL_ADD, fd, &event) < 0) {
    int code = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (code), "epoll_ctl() could not add fd %d: %s", fd,
                 g_strerror (code));
    g_free (handler);
    return FALSE;
  }

  g_ptr_array_add (loop->handlers, handler);
  return TRUE;
}

void
cims_worker_loop_add_context (CimsWorkerLoop *loop, GMainContext *context)
{
  g_ptr_array_add (loop->groups, group_new (context, FALSE));
}

GMainContext *
cims_worker_loop_join_group (CimsWorkerLoop *loop)
{
  LoopGroup *chosen = NULL;
  g_autoptr (GMainContext) context = NULL;

  for (guint i = 0; i < loop->groups->len && chosen == NULL; i++) {
    LoopGroup *group = g_ptr_array_index (loop->groups, i);

    if (group->is_viewer_group && group->n_members < CIMS_WORKER_GROUP_SIZE)
      chosen = group;
  }

  if (chosen == NULL) {
    /* GLib lets only the owner of a context run prepare, query, check
     * and dispatch, and it writes the wake-up fd for another thread's
     * attach only when the context has an owner. */
    context = g_main_context_new ();
    g_main_context_acquire (context);
    chosen = group_new (context, TRUE);
    g_ptr_array_add (loop->groups, chosen);
    group_prepare (loop, chosen);
  }

  chosen->n_members++;
  chosen->needs_resync = TRUE;
  chosen->deadline_us = 0;
  return chosen->context;
}

void
cims_worker_loop_leave_group (CimsWorkerLoop *loop, GMainContext *context)
{
  LoopGroup *group = loop_find_group (loop, context);

  g_return_if_fail (group != NULL && group->n_members > 0);

  group->n_members--;
  group->needs_resync = TRUE;
  group->deadline_us = 0;
}

void
cims_worker_loop_quit (CimsWorkerLoop *loop)
{
  loop->is_running = FALSE;
}

guint64
cims_worker_loop_get_group_passes (CimsWorkerLoop *loop, GMainContext *context)
{
  LoopGroup *group = loop_find_group (loop, context);

  return group != NULL ? group->n_passes : 0;
}

/* Milliseconds until the earliest group deadline, rounded up, or -1. */
static int
loop_timeout_ms (CimsWorkerLoop *loop)
{
  gint64 earliest_us = G_MAXINT64;
  gint64 wait_us;

  for (guint i = 0; i < loop->groups->len; i++)
    earliest_us = MIN (earliest_us, ((LoopGroup *) g_ptr_array_index (loop->groups, i))->deadline_us);
  if (earliest_us == G_MAXINT64)
    return -1;

  wait_us = earliest_us - g_get_monotonic_time ();
  return (int) CLAMP ((wait_us + 999) / 1000, 0, G_MAXINT);
}

/* Runs the handlers whose fds epoll reported and marks the groups. */
static void
loop_dispatch_events (CimsWorkerLoop *loop, const struct epoll_event *events, int n_events)
{
  for (int i = 0; i < n_events; i++) {
    TargetKind *kind = events[i].data.ptr;

    if (*kind == TARGET_HANDLER) {
      FdHandler *handler = (FdHandler *) kind;

      handler->func (handler->fd, handler->user_data);
    } else {
      ((LoopGroup *) kind)->is_ready = TRUE;
    }
  }
}

/* Runs a pass of each group that is ready or due. A pass may add a group
 * (a viewer joins from an added context), so the count is read each time. */
static void
loop_run_groups (CimsWorkerLoop *loop)
{
  gint64 now_us = g_get_monotonic_time ();

  for (guint i = 0; i < loop->groups->len; i++) {
    LoopGroup *group = g_ptr_array_index (loop->groups, i);

    if (group->is_ready || group->deadline_us <= now_us)
      group_pass (loop, group);
  }
}

void
cims_worker_loop_run (CimsWorkerLoop *loop)
{
  struct epoll_event events[LOOP_MAX_EVENTS];

  /* A run after an earlier one finds the groups prepared already. */
  for (guint i = 0; i < loop->groups->len; i++) {
    LoopGroup *group = g_ptr_array_index (loop->groups, i);

    g_main_context_acquire (group->context);
    if (!group->is_prepared)
      group_prepare (loop, group);
  }

  loop->is_running = TRUE;
  while (loop->is_running) {
    int n_events = epoll_wait (loop->epoll_fd, events, LOOP_MAX_EVENTS, loop_timeout_ms (loop));

    if (n_events < 0 && errno != EINTR) {
      g_critical ("media worker: epoll_wait() failed: %s", g_strerror (errno));
      break;
    }

    loop_dispatch_events (loop, events, MAX (n_events, 0));
    loop_run_groups (loop);
  }

  for (guint i = 0; i < loop->groups->len; i++)
    g_main_context_release (((LoopGroup *) g_ptr_array_index (loop->groups, i))->context);
}
