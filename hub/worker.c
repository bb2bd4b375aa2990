/* SPDX-License-Identifier: Apache-2.0 */
/* Media workers: one thread per core, each owning its viewers' ICE agents,
 * DTLS, RTCP and send path. A source hands each packet to every worker with
 * viewers of it through a lock-free single-producer ring (a feed). The
 * per-viewer hot path so runs on one thread with no lock, and a slow worker
 * never delays the camera or another worker. */
#include "hub/hub-runtime.h"
#include "hub/worker-loop.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* RTCP sender reports go out once a second (RFC 3550 section 6.2 allows
 * far less; a second keeps the viewer's lip-sync and stats fresh). One
 * timer per worker serves all its sessions: a timer per session would add
 * a GLib pass of its viewer group per session and second. */
#define SENDER_REPORT_INTERVAL_MS 1000

/* Packets a feed may hold for a worker that is behind: about two seconds
 * of a 4 Mbit/s camera. Past it the source drops for that worker only. */
#define FEED_RING_SIZE 1024
/* Maximum packets that a drain hands each viewer in one call. */
#define FEED_DRAIN_BATCH 32
/* A drain hands packets to viewers for at most this long before the worker
 * serves its other work (joins, ICE, DTLS, RTCP) and then goes on. A
 * keyframe of 63 packets to 400 viewers is 25,200 datagrams, about 70 ms
 * at the relay floor's speed, and a joining viewer's SDP answer and DTLS
 * handshake used to wait behind it. */
#define FEED_DRAIN_BUDGET_US 2000
/* Datagrams handed out between two clock reads: about 0.2 ms at the relay
 * floor's speed. */
#define FEED_DRAIN_CLOCK_STRIDE 64

struct _CimsFeedRing {
  CimsRtpPacket *slots[FEED_RING_SIZE];
  atomic_uint head;             /* next slot the producer writes */
  atomic_uint tail;             /* next slot the consumer reads */
};

struct _CimsFeed {
  CimsWorker *worker;
  CimsSource *source;
  char *source_key;             /* the source's key in hub->sources, for the idle check */
  CimsFeedRing *ring;           /* shared with the source's producer */
  CimsKeyframeCache *cache;     /* this worker's own copy: no lock to read it */
  guint format_generation;
  GPtrArray *subscribers;       /* of CimsViewerSession (ref) */

  /* The batch being handed out, when a drain ran out of time part way:
   * the subscribers before @next_subscriber have it. */
  CimsRtpPacket *batch[FEED_DRAIN_BATCH];
  guint batch_length;
  guint next_subscriber;
  guint datagrams_since_clock;  /* handed out since the last clock read */
};

struct _CimsWorker {
  CimsHub *hub;
  guint index;
  GMainContext *context;        /* invokes from other threads and the report timer */
  CimsWorkerLoop *loop;         /* runs @context and the viewers' groups */
  GThread *thread;
  int wake_fd;                  /* eventfd the producers write to */
  GSource *report_source;
  GPtrArray *feeds;             /* of CimsFeed, worker thread only */
  guint first_feed;             /* where the next drain starts, so each feed gets its turn first */
  atomic_int n_sessions;
  atomic_int is_idle;           /* 1: drained and waiting; the next producer wakes it */
  /* On a cache line of its own: only this worker writes it. */
  CimsWorkerCounters counters __attribute__ ((aligned (64)));
};

/* ---- the ring (single producer, single consumer) ----------------------- */

CimsFeedRing *
cims_feed_ring_new (void)
{
  return g_new0 (CimsFeedRing, 1);
}

gboolean
cims_feed_ring_push (CimsFeedRing *ring, CimsRtpPacket *packet)
{
  guint head = atomic_load_explicit (&ring->head, memory_order_relaxed);
  guint tail = atomic_load_explicit (&ring->tail, memory_order_acquire);

  if (head - tail >= FEED_RING_SIZE)
    return FALSE;

  ring->slots[head % FEED_RING_SIZE] = packet;
  /* Sequentially consistent, paired with the worker's is_idle handshake. */
  atomic_store_explicit (&ring->head, head + 1, memory_order_seq_cst);
  return TRUE;
}

static gboolean
feed_ring_is_empty (CimsFeedRing *ring)
{
  return atomic_load_explicit (&ring->head, memory_order_seq_cst)
         == atomic_load_explicit (&ring->tail, memory_order_relaxed);
}

static CimsRtpPacket *
feed_ring_pop (CimsFeedRing *ring)
{
  guint tail = atomic_load_explicit (&ring->tail, memory_order_relaxed);
  guint head = atomic_load_explicit (&ring->head, memory_order_acquire);
  CimsRtpPacket *packet;

  if (tail == head)
    return NULL;

  packet = ring->slots[tail % FEED_RING_SIZE];
  atomic_store_explicit (&ring->tail, tail + 1, memory_order_release);
  return packet;
}

static void
feed_ring_free (CimsFeedRing *ring)
{
  CimsRtpPacket *packet;

  while ((packet = feed_ring_pop (ring)) != NULL)
    cims_rtp_packet_unref (packet);
  g_free (ring);
}

/* ---- feeds --------------------------------------------------------------- */

CimsKeyframeCache *
cims_feed_get_cache (CimsFeed *feed)
{
  return feed->cache;
}

/* Pops up to FEED_DRAIN_BATCH packets into the feed's batch and its
 * cache. Returns how many. */
static guint
feed_pop_batch (CimsFeed *feed)
{
  guint n = 0;

  while (n < FEED_DRAIN_BATCH && (feed->batch[n] = feed_ring_pop (feed->ring)) != NULL) {
    cims_keyframe_cache_push (feed->cache, feed->batch[n]);
    n++;
  }
  feed->batch_length = n;
  feed->next_subscriber = 0;
  return n;
}

static void
feed_batch_clear (CimsFeed *feed)
{
  for (guint i = 0; i < feed->batch_length; i++)
    cims_rtp_packet_unref (feed->batch[i]);
  feed->batch_length = 0;
  feed->next_subscriber = 0;
}

/* Hands the batch to the subscribers that lack it, each viewer its packets
 * in one sendmmsg(). Returns FALSE when @deadline_us passed first. */
static gboolean
feed_batch_deliver (CimsFeed *feed, gint64 deadline_us)
{
  while (feed->next_subscriber < feed->subscribers->len) {
    CimsViewerSession *session = g_ptr_array_index (feed->subscribers, feed->next_subscriber);

    cims_viewer_session_deliver (session, feed->cache, feed->batch, feed->batch_length);
    feed->next_subscriber++;
    feed->datagrams_since_clock += feed->batch_length;
    if (feed->datagrams_since_clock < FEED_DRAIN_CLOCK_STRIDE)
      continue;

    feed->datagrams_since_clock = 0;
    if (g_get_monotonic_time () >= deadline_us)
      return FALSE;
  }

  feed_batch_clear (feed);
  return TRUE;
}

/* Hands the queued packets to every subscriber a batch at a time until the
 * feed is empty or @deadline_us passed. Returns TRUE when it is empty. */
static gboolean
feed_drain (CimsFeed *feed, gint64 deadline_us)
{
  for (;;) {
    if (feed->batch_length == 0) {
      guint generation = cims_source_get_format_generation (feed->source);

      /* A new cache only between batches: the batch's packets are in the old one. */
      if (generation != feed->format_generation)
        feed->format_generation = cims_source_refresh_feed_cache (feed->source, &feed->cache);
      if (feed_pop_batch (feed) == 0)
        return TRUE;
    }

    if (!feed_batch_deliver (feed, deadline_us))
      return FALSE;
    if (g_get_monotonic_time () >= deadline_us)
      return feed_ring_is_empty (feed->ring);
  }
}

static CimsFeed *
feed_find (CimsWorker *worker, CimsSource *source)
{
  for (guint i = 0; i < worker->feeds->len; i++) {
    CimsFeed *feed = g_ptr_array_index (worker->feeds, i);

    if (feed->source == source)
      return feed;
  }
  return NULL;
}

CimsFeed *
cims_worker_subscribe (CimsWorker *worker, CimsSource *source, CimsViewerSession *session)
{
  CimsFeed *feed = feed_find (worker, source);

  if (feed == NULL) {
    feed = g_new0 (CimsFeed, 1);
    feed->worker = worker;
    feed->source = source;
    feed->source_key = g_strdup (cims_source_get_key (source));
    feed->subscribers = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_viewer_session_unref);
    feed->format_generation = cims_source_attach_feed (source, worker->index, &feed->ring, &feed->cache);
    g_ptr_array_add (worker->feeds, feed);
  }

  g_ptr_array_add (feed->subscribers, cims_viewer_session_ref (session));
  cims_source_count_subscriber (source, +1);
  return feed;
}

typedef struct {
  CimsHub *hub;
  char *source_key;
} IdleCheck;

static gboolean
idle_check_on_main_cb (gpointer user_data)
{
  IdleCheck *check = user_data;
  CimsSource *source = g_hash_table_lookup (check->hub->sources, check->source_key);

  if (source != NULL)
    cims_source_check_idle (source);

  g_free (check->source_key);
  g_free (check);
  return G_SOURCE_REMOVE;
}

void
cims_worker_unsubscribe (CimsWorker *worker, CimsFeed *feed, CimsViewerSession *session)
{
  IdleCheck *check;
  guint index;

  if (!g_ptr_array_find (feed->subscribers, session, &index))
    return;

  /* The subscribers after it move up one place in a batch part way out. */
  if (index < feed->next_subscriber)
    feed->next_subscriber--;
  g_ptr_array_remove_index (feed->subscribers, index);
  cims_source_count_subscriber (feed->source, -1);
  if (feed->subscribers->len > 0)
    return;

  /* The last viewer left: the source stops feeding this worker, and the
   * main context decides whether the camera is idle. */
  cims_source_detach_feed (feed->source, worker->index);
  feed_batch_clear (feed);
  feed_ring_free (feed->ring);
  cims_keyframe_cache_free (feed->cache);
  g_ptr_array_remove (worker->feeds, feed);

  check = g_new0 (IdleCheck, 1);
  check->hub = worker->hub;
  check->source_key = g_steal_pointer (&feed->source_key);
  g_main_context_invoke (worker->hub->main_context, idle_check_on_main_cb, check);

  g_ptr_array_unref (feed->subscribers);
  g_free (feed);
}

/* ---- the worker thread ---------------------------------------------------- */

static gboolean
feeds_have_packets (CimsWorker *worker)
{
  for (guint i = 0; i < worker->feeds->len; i++) {
    CimsFeed *feed = g_ptr_array_index (worker->feeds, i);

    if (feed->batch_length > 0 || !feed_ring_is_empty (feed->ring))
      return TRUE;
  }
  return FALSE;
}

/* Drains each feed once, starting with the one after where the last call
 * started, and stops at @deadline_us: the next call starts with the next
 * feed. Returns TRUE when all are empty. */
static gboolean
feeds_drain (CimsWorker *worker, gint64 deadline_us)
{
  guint n_feeds = worker->feeds->len;
  gboolean is_empty = TRUE;

  for (guint i = 0; i < n_feeds; i++) {
    CimsFeed *feed = g_ptr_array_index (worker->feeds, (worker->first_feed + i) % n_feeds);

    if (!feed_drain (feed, deadline_us)) {
      is_empty = FALSE;
      break;
    }
  }

  worker->first_feed = n_feeds > 0 ? (worker->first_feed + 1) % n_feeds : 0;
  return is_empty;
}

/* Writes the worker's wake-up eventfd, so that its loop calls wake_cb().
 * EAGAIN means the counter is already non-zero: the call will come. */
static void
wake_fd_signal (CimsWorker *worker)
{
  guint64 increment = 1;

  if (write (worker->wake_fd, &increment, sizeof increment) < 0 && errno != EAGAIN)
    g_warning ("worker %u: write() to its wake-up eventfd failed: %s", worker->index, g_strerror (errno));
}

/* Drains every feed until all are empty, straight from the worker loop's
 * epoll. After FEED_DRAIN_BUDGET_US, plus up to FEED_DRAIN_CLOCK_STRIDE
 * datagrams, it wakes itself again and returns, so that joins and
 * handshakes wait about that long behind the fan-out. The worker
 * announces it is idle before its last look, and a producer wakes it only
 * after taking that flag: packets queued while it drains cost no extra
 * wake-up. */
static void
wake_cb (int fd, gpointer user_data)
{
  CimsWorker *worker = user_data;
  gint64 deadline_us = g_get_monotonic_time () + FEED_DRAIN_BUDGET_US;
  guint64 count;

  if (read (fd, &count, sizeof count) < 0 && errno != EAGAIN)
    g_warning ("worker %u: read() of its wake-up eventfd failed: %s", worker->index, g_strerror (errno));

  for (;;) {
    /* Out of time: the loop serves its other ready work, then calls again. */
    if (!feeds_drain (worker, deadline_us)) {
      wake_fd_signal (worker);
      return;
    }

    atomic_store (&worker->is_idle, 1);
    if (!feeds_have_packets (worker))
      break;
    atomic_store (&worker->is_idle, 0);
  }
}

void
cims_worker_wake (CimsWorker *worker)
{
  if (atomic_exchange (&worker->is_idle, 0))
    wake_fd_signal (worker);
}

static gboolean
report_cb (gpointer user_data)
{
  CimsWorker *worker = user_data;

  for (guint i = 0; i < worker->feeds->len; i++) {
    CimsFeed *feed = g_ptr_array_index (worker->feeds, i);

    for (guint j = 0; j < feed->subscribers->len; j++)
      cims_viewer_session_send_report (g_ptr_array_index (feed->subscribers, j));
  }
  return G_SOURCE_CONTINUE;
}

static gpointer
worker_main (gpointer user_data)
{
  CimsWorker *worker = user_data;

  g_main_context_push_thread_default (worker->context);
  cims_worker_loop_run (worker->loop);
  g_main_context_pop_thread_default (worker->context);
  return NULL;
}

CimsWorker *
cims_worker_new (CimsHub *hub, guint index, GError **error)
{
  CimsWorker *worker;
  g_autofree char *name = g_strdup_printf ("cims-media-%u", index);
  CimsWorkerLoop *loop = cims_worker_loop_new (error);
  int fd;

  if (loop == NULL)
    return NULL;

  fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) {
    g_set_error (error, CIMS_HUB_ERROR, CIMS_HUB_ERROR_FAILED, "eventfd() failed: %s", g_strerror (errno));
    cims_worker_loop_free (loop);
    return NULL;
  }

  worker = g_aligned_alloc0 (1, sizeof (CimsWorker), 64);
  worker->hub = hub;
  worker->index = index;
  worker->wake_fd = fd;
  atomic_init (&worker->is_idle, 1);
  worker->feeds = g_ptr_array_new ();
  worker->context = g_main_context_new ();
  worker->loop = loop;
  cims_worker_loop_add_context (loop, worker->context);
  if (!cims_worker_loop_watch_fd (loop, fd, wake_cb, worker, error)) {
    cims_worker_loop_free (loop);
    g_main_context_unref (worker->context);
    g_ptr_array_unref (worker->feeds);
    close (fd);
    g_aligned_free (worker);
    return NULL;
  }

  worker->report_source = g_timeout_source_new (SENDER_REPORT_INTERVAL_MS);
  g_source_set_callback (worker->report_source, report_cb, worker, NULL);
  g_source_attach (worker->report_source, worker->context);
  worker->thread = g_thread_new (name, worker_main, worker);
  return worker;
}

static gboolean
quit_cb (gpointer user_data)
{
  cims_worker_loop_quit (user_data);
  return G_SOURCE_REMOVE;
}

void
cims_worker_free (CimsWorker *worker)
{
  if (worker == NULL)
    return;

  /* Teardowns already queued on the context run before the quit. */
  g_main_context_invoke (worker->context, quit_cb, worker->loop);
  g_thread_join (worker->thread);

  g_source_destroy (worker->report_source);
  g_source_unref (worker->report_source);
  cims_worker_loop_free (worker->loop);
  close (worker->wake_fd);
  g_warn_if_fail (worker->feeds->len == 0);
  g_ptr_array_unref (worker->feeds);
  g_main_context_unref (worker->context);
  g_aligned_free (worker);
}

GMainContext *
cims_worker_get_context (CimsWorker *worker)
{
  return worker->context;
}

GMainContext *
cims_worker_join_group (CimsWorker *worker)
{
  return cims_worker_loop_join_group (worker->loop);
}

void
cims_worker_leave_group (CimsWorker *worker, GMainContext *group_context)
{
  cims_worker_loop_leave_group (worker->loop, group_context);
}

CimsWorkerCounters *
cims_worker_get_counters (CimsWorker *worker)
{
  return &worker->counters;
}

guint64
cims_hub_worker_counters_sum (CimsHub *hub, gsize field_offset)
{
  guint64 total = 0;

  for (guint i = 0; i < hub->n_workers; i++) {
    atomic_uint_fast64_t *field = (atomic_uint_fast64_t *) ((guint8 *) &hub->workers[i]->counters + field_offset);
    total += atomic_load_explicit (field, memory_order_relaxed);
  }
  return total;
}

void
cims_worker_count_session (CimsWorker *worker, int delta)
{
  atomic_fetch_add (&worker->n_sessions, delta);
}

CimsWorker *
cims_hub_worker_pick (CimsHub *hub)
{
  CimsWorker *best = hub->workers[0];

  for (guint i = 1; i < hub->n_workers; i++)
    if (atomic_load (&hub->workers[i]->n_sessions) < atomic_load (&best->n_sessions))
      best = hub->workers[i];
  return best;
}
