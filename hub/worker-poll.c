/* SPDX-License-Identifier: Apache-2.0 */
/* The poll function of a media worker's main context, built on epoll. Each
 * viewer adds its libnice socket to the worker's context, and poll() costs
 * kernel work for every one of those sockets on each main-loop pass. epoll
 * keeps the sockets registered between passes, so a pass costs kernel work
 * only for the sockets that are ready, and a viewer who joins or leaves
 * costs a few epoll_ctl() calls. */
#include "hub/hub-runtime.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* The epoll set is rebuilt from scratch at least this often. epoll drops a
 * socket when it is closed, and a new socket that takes the closed one's fd
 * number and place in the poll set before the next pass leaves the set
 * unchanged. NOTE: such a socket goes unwatched for up to this long, and an
 * idle worker wakes this often. */
#define POLLER_REBUILD_INTERVAL_US (250 * 1000)
#define POLLER_MAX_EVENTS 256
/* GLib 2.74 signals a context's wake-up fd each time it dispatches a source
 * that watches an fd, because it takes the fd out of the poll set and puts
 * it back, even on the context's own thread. Each dispatch of a viewer's
 * socket would thus start one more pass, which finds nothing to do but
 * visits every source. A pass for that wake-up alone therefore waits until
 * this long per watched fd has passed since the last pass, capped at
 * POLLER_MAX_PASS_SPACING_US, and the events that arrive meanwhile share it.
 * In two runs alternating with the old code at 800 viewers the hub used 3
 * to 10% less CPU, about this machine's spread from run to run. Another
 * thread's g_main_context_invoke() may wait as long, 4 ms at 800 viewers. */
#define POLLER_PASS_SPACING_PER_FD_US 5
#define POLLER_MAX_PASS_SPACING_US (5 * 1000)
/* Marks an fd as registered in registered_events, so that an fd watched
 * for no event (ERR and HUP only, which epoll always reports) counts too.
 * Never passed to epoll_ctl(). */
#define POLLER_REGISTERED (1u << 31)

/* One worker thread's epoll set and the poll set it was built from. */
typedef struct {
  int epoll_fd;
  gint64 rebuilt_us;
  gboolean has_warned;          /* a failed registration was logged */
  gboolean has_failed;          /* the last registration failed: poll() until the next rebuild */
  int wakeup_fd;                /* the GLib context's own wake-up fd, or -1 */
  gint64 last_pass_us;          /* when the last poll returned */

  GPollFD *last_fds;            /* copy of the poll set of the last pass */
  guint n_last_fds;

  GArray *registered_events;    /* guint32 by fd: POLLER_REGISTERED | epoll events, 0: not registered */
  GArray *registered_fds;       /* int: the fds registered in epoll_fd */

  GArray *first_index_by_fd;    /* gint: first entry of the poll set with that fd, or -1 */
  GArray *next_index;           /* gint: next entry with the same fd, or -1 */
} Poller;

static void
poller_close (Poller *poller)
{
  if (poller->epoll_fd >= 0)
    close (poller->epoll_fd);
  poller->epoll_fd = -1;

  if (poller->registered_events->len > 0)
    memset (poller->registered_events->data, 0, sizeof (guint32) * poller->registered_events->len);
  g_array_set_size (poller->registered_fds, 0);
}

static void
poller_free (gpointer data)
{
  Poller *poller = data;

  poller_close (poller);
  g_free (poller->last_fds);
  g_array_unref (poller->registered_events);
  g_array_unref (poller->registered_fds);
  g_array_unref (poller->first_index_by_fd);
  g_array_unref (poller->next_index);
  g_free (poller);
}

static GPrivate poller_key = G_PRIVATE_INIT (poller_free);

static Poller *
poller_get (void)
{
  Poller *poller = g_private_get (&poller_key);

  if (poller != NULL)
    return poller;

  poller = g_new0 (Poller, 1);
  poller->epoll_fd = -1;
  poller->wakeup_fd = -1;
  poller->registered_events = g_array_new (FALSE, TRUE, sizeof (guint32));
  poller->registered_fds = g_array_new (FALSE, FALSE, sizeof (int));
  poller->first_index_by_fd = g_array_new (FALSE, FALSE, sizeof (gint));
  poller->next_index = g_array_new (FALSE, FALSE, sizeof (gint));
  g_private_set (&poller_key, poller);
  return poller;
}

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

static gushort
poll_events_from_epoll (guint32 events)
{
  gushort result = 0;

  if (events & EPOLLIN)
    result |= G_IO_IN;
  if (events & EPOLLOUT)
    result |= G_IO_OUT;
  if (events & EPOLLPRI)
    result |= G_IO_PRI;
  if (events & EPOLLERR)
    result |= G_IO_ERR;
  if (events & EPOLLHUP)
    result |= G_IO_HUP;
  return result;
}

static gboolean
poller_set_unchanged (const Poller *poller, const GPollFD *fds, guint n_fds)
{
  if (poller->epoll_fd < 0 || n_fds != poller->n_last_fds)
    return FALSE;

  for (guint i = 0; i < n_fds; i++) {
    if (fds[i].fd != poller->last_fds[i].fd || fds[i].events != poller->last_fds[i].events)
      return FALSE;
  }

  return TRUE;
}

/* Tells whether @fds is the last poll set with entries added and none
 * removed, in which case no fd of the last set can have been closed. */
static gboolean
poller_set_only_grew (const Poller *poller, const GPollFD *fds, guint n_fds)
{
  guint j = 0;

  for (guint i = 0; i < poller->n_last_fds; i++) {
    while (j < n_fds && (fds[j].fd != poller->last_fds[i].fd || fds[j].events != poller->last_fds[i].events))
      j++;
    if (j == n_fds)
      return FALSE;
    j++;
  }

  return TRUE;
}

static gint
poller_first_index (const Poller *poller, int fd)
{
  if (fd < 0 || (guint) fd >= poller->first_index_by_fd->len)
    return -1;
  return g_array_index (poller->first_index_by_fd, gint, fd);
}

/* Chains the entries of the poll set by fd, so that one ready fd reaches
 * every source that watches it. */
static void
poller_index_fds (Poller *poller, const GPollFD *fds, guint n_fds)
{
  gint max_fd = -1;

  for (guint i = 0; i < n_fds; i++)
    max_fd = MAX (max_fd, fds[i].fd);

  g_array_set_size (poller->first_index_by_fd, (guint) (max_fd + 1));
  if (max_fd >= 0)
    memset (poller->first_index_by_fd->data, 0xff, sizeof (gint) * (gsize) (max_fd + 1));
  g_array_set_size (poller->next_index, n_fds);

  /* Backwards, so that each chain runs in poll-set order. */
  for (guint i = n_fds; i-- > 0;) {
    gint *first;

    g_array_index (poller->next_index, gint, i) = -1;
    if (fds[i].fd < 0)
      continue;

    first = &g_array_index (poller->first_index_by_fd, gint, fds[i].fd);
    g_array_index (poller->next_index, gint, i) = *first;
    *first = (gint) i;
  }
}

static guint32
poller_registered_events (const Poller *poller, int fd)
{
  if ((guint) fd >= poller->registered_events->len)
    return 0;
  return g_array_index (poller->registered_events, guint32, fd);
}

/* Registers @fd for @events, or changes its registration. Returns FALSE
 * with errno set when epoll fails. */
static gboolean
poller_watch (Poller *poller, int fd, guint32 events)
{
  struct epoll_event event = { .events = events & ~POLLER_REGISTERED, .data.fd = fd };
  gboolean is_new = poller_registered_events (poller, fd) == 0;

  if (epoll_ctl (poller->epoll_fd, is_new ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &event) < 0) {
    /* EBADF: the fd was closed after GLib listed it, and its source goes
     * away on this pass. ENOENT: it was closed and its number reused. */
    if (errno == EBADF)
      return TRUE;
    if (errno != ENOENT || epoll_ctl (poller->epoll_fd, EPOLL_CTL_ADD, fd, &event) < 0)
      return FALSE;
  }

  if ((guint) fd >= poller->registered_events->len)
    g_array_set_size (poller->registered_events, (guint) fd + 1);
  g_array_index (poller->registered_events, guint32, fd) = events;
  if (is_new)
    g_array_append_val (poller->registered_fds, fd);
  return TRUE;
}

/* Deregisters the fds that left the poll set. A closed fd has already left
 * the epoll set, so errors are ignored. */
static void
poller_forget_absent (Poller *poller)
{
  guint n_kept = 0;

  for (guint i = 0; i < poller->registered_fds->len; i++) {
    int fd = g_array_index (poller->registered_fds, int, i);

    if (poller_first_index (poller, fd) >= 0) {
      g_array_index (poller->registered_fds, int, n_kept++) = fd;
      continue;
    }

    epoll_ctl (poller->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    g_array_index (poller->registered_events, guint32, fd) = 0;
  }

  g_array_set_size (poller->registered_fds, n_kept);
}

/* Brings the epoll set in line with @fds. Returns FALSE with errno set when
 * epoll fails. */
static gboolean
poller_sync (Poller *poller, const GPollFD *fds, guint n_fds)
{
  if (poller->epoll_fd < 0) {
    poller->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
    if (poller->epoll_fd < 0)
      return FALSE;
    poller->rebuilt_us = g_get_monotonic_time ();
  }

  poller_index_fds (poller, fds, n_fds);
  for (guint i = 0; i < n_fds; i++) {
    guint32 events = POLLER_REGISTERED;

    if (poller_first_index (poller, fds[i].fd) != (gint) i)
      continue;

    for (gint j = (gint) i; j >= 0; j = g_array_index (poller->next_index, gint, j))
      events |= epoll_events_from_poll (fds[j].events);
    if (events != poller_registered_events (poller, fds[i].fd) && !poller_watch (poller, fds[i].fd, events))
      return FALSE;
  }
  poller_forget_absent (poller);

  g_free (poller->last_fds);
  poller->last_fds = g_memdup2 (fds, sizeof (GPollFD) * n_fds);
  poller->n_last_fds = n_fds;
  return TRUE;
}

/* Adds the new fds to the epoll set when the poll set only grew, and
 * rebuilds the set when entries left (one of them may have been closed and
 * its number reused) or when a rebuild is due. On failure it logs the error
 * once per thread and returns FALSE, and the caller uses poll() until the
 * next rebuild is due. */
static gboolean
poller_prepare (Poller *poller, const GPollFD *fds, guint n_fds)
{
  gint64 now_us = g_get_monotonic_time ();
  gboolean is_due = now_us - poller->rebuilt_us >= POLLER_REBUILD_INTERVAL_US;

  if (!is_due && poller->has_failed)
    return FALSE;
  if (!is_due && poller_set_unchanged (poller, fds, n_fds))
    return TRUE;

  if (is_due || !poller_set_only_grew (poller, fds, n_fds))
    poller_close (poller);
  poller->has_failed = !poller_sync (poller, fds, n_fds);
  if (!poller->has_failed)
    return TRUE;

  if (!poller->has_warned)
    g_warning ("media worker: epoll registration of %u fds failed: %s; polling with poll() instead",
               n_fds, g_strerror (errno));
  poller->has_warned = TRUE;
  poller_close (poller);
  poller->rebuilt_us = now_us;
  return FALSE;
}

/* Shortens @timeout_ms so that the pass ends by the next rebuild: a socket
 * that took a closed one's place is then watched within the interval even
 * when no other source wakes the context. */
static gint
poller_bound_timeout (const Poller *poller, gint timeout_ms)
{
  gint64 until_rebuild_us = poller->rebuilt_us + POLLER_REBUILD_INTERVAL_US - g_get_monotonic_time ();
  gint until_rebuild_ms = (gint) CLAMP ((until_rebuild_us + 999) / 1000, 0, POLLER_REBUILD_INTERVAL_US / 1000);

  if (timeout_ms < 0 || timeout_ms > until_rebuild_ms)
    return until_rebuild_ms;
  return timeout_ms;
}

/* Copies each epoll event to the entries of the poll set with its fd.
 * Returns how many entries are ready, as poll() does. */
static gint
poller_report (Poller *poller, GPollFD *fds, const struct epoll_event *events, int n_events)
{
  gint n_ready = 0;

  for (int i = 0; i < n_events; i++) {
    gushort revents = poll_events_from_epoll (events[i].events);

    for (gint j = poller_first_index (poller, events[i].data.fd); j >= 0;
         j = g_array_index (poller->next_index, gint, j)) {
      fds[j].revents = revents & (fds[j].events | G_IO_ERR | G_IO_HUP);
      if (fds[j].revents != 0)
        n_ready++;
    }
  }

  return n_ready;
}

/* Returns when the pass for @events may start: at once unless GLib's
 * wake-up fd is the only one ready, and GLib did not ask for a pass at once
 * (@timeout_ms 0). Else the pass spacing after the last pass, but never
 * after GLib's own timeout, which started at @poll_start_us. */
static gint64
poller_pass_start_us (const Poller *poller, guint n_fds, const struct epoll_event *events, int n_events,
                      gint timeout_ms, gint64 poll_start_us)
{
  gint64 spacing_us = MIN ((gint64) n_fds * POLLER_PASS_SPACING_PER_FD_US, POLLER_MAX_PASS_SPACING_US);
  gint64 start_us = poller->last_pass_us + spacing_us;

  if (timeout_ms == 0 || n_events != 1 || events[0].data.fd != poller->wakeup_fd)
    return 0;
  if (timeout_ms > 0)
    start_us = MIN (start_us, poll_start_us + (gint64) timeout_ms * 1000);
  return start_us;
}

/* Clears GLib's wake-up fd and waits until @start_us for any fd to become
 * ready, the wake-up fd included. Fills @events with the ready fds and
 * returns how many, or -1. GLib's own read of the wake-up fd at the end of
 * the pass then finds it empty, which it accepts. */
static int
poller_hold (Poller *poller, struct epoll_event *events, gint64 start_us)
{
  gint64 wait_us = start_us - g_get_monotonic_time ();
  guint64 count;
  int wait_ms;

  /* epoll reported it readable, so this read does not block. */
  if (read (poller->wakeup_fd, &count, sizeof count) < 0 && errno != EAGAIN)
    return epoll_wait (poller->epoll_fd, events, POLLER_MAX_EVENTS, 0);

  wait_ms = (int) ((MAX (wait_us, 0) + 999) / 1000);
  return epoll_wait (poller->epoll_fd, events, POLLER_MAX_EVENTS, wait_ms);
}

/* A GPollFunc with poll()'s contract. It keeps state per thread, so each
 * worker thread owns its epoll set. */
static gint
worker_poll (GPollFD *fds, guint n_fds, gint timeout_ms)
{
  Poller *poller = poller_get ();
  struct epoll_event events[POLLER_MAX_EVENTS];
  gint64 poll_start_us = g_get_monotonic_time ();
  gint64 pass_start_us;
  int n_events;

  if (!poller_prepare (poller, fds, n_fds))
    return g_poll (fds, n_fds, poller_bound_timeout (poller, timeout_ms));

  for (guint i = 0; i < n_fds; i++)
    fds[i].revents = 0;

  n_events = epoll_wait (poller->epoll_fd, events, POLLER_MAX_EVENTS, poller_bound_timeout (poller, timeout_ms));
  if (n_events < 0)
    return -1;

  pass_start_us = poller_pass_start_us (poller, n_fds, events, n_events, timeout_ms, poll_start_us);
  if (n_events > 0 && pass_start_us > g_get_monotonic_time ()) {
    n_events = poller_hold (poller, events, pass_start_us);
    if (n_events < 0)
      return -1;
  }

  poller->last_pass_us = g_get_monotonic_time ();
  return poller_report (poller, fds, events, n_events);
}

void
cims_worker_poll_set_wakeup_fd (int fd)
{
  poller_get ()->wakeup_fd = fd;
}

int
cims_worker_poll_install (GMainContext *context)
{
  GPollFD fds[2];
  gint timeout_ms;
  gint priority;
  gint n_fds = 0;

  /* With no source attached, the only fd a pass polls is the wake-up fd. */
  if (g_main_context_acquire (context)) {
    g_main_context_prepare (context, &priority);
    n_fds = g_main_context_query (context, priority, &timeout_ms, fds, G_N_ELEMENTS (fds));
    g_main_context_release (context);
  }

  g_main_context_set_poll_func (context, worker_poll);
  return n_fds == 1 ? fds[0].fd : -1;
}
