/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the media worker's sliced fan-out (hub/worker.c): resuming a
 * batch, viewers leaving or joining part way, the feeds' turns, stopping on
 * time and the last viewer's cleanup. worker.c runs as it is, with test
 * doubles and a fake clock. */
#include "hub/hub-runtime.h"
#include "hub/worker-loop.h"

#include <poll.h>
#include <unistd.h>

/* Fake time that one datagram handed to a viewer costs. It is so long that
 * a drain runs out of time at its first clock read, which comes part way
 * through a batch when a feed has more than a few viewers. Each test checks
 * that the cut it relies on happened. */
#define DATAGRAM_COST_US 50
/* Packets kept queued on a flooded feed: more than any one drain hands out. */
#define FLOOD_PACKETS 256
/* Bounds every run of drains, so that a worker that keeps waking itself fails. */
#define MAX_TURNS 1000
#define N_SOURCES 3
#define N_VIEWERS 10
/* RTP timestamp step of one frame: a 90 kHz clock at 30 frames per second. */
#define FRAME_TICKS 3000
#define FORMAT_GENERATION 1

/* H.264 NAL unit header bytes: nal_ref_idc 3, then the unit type. */
#define NAL_SLICE 0x61
#define NAL_IDR 0x65
#define NAL_SPS 0x67
#define NAL_PPS 0x68

static const char *const camera_ids[N_SOURCES] = { "camera-a", "camera-b", "camera-c" };

/* One cims_viewer_session_deliver() call, as the viewer received it. */
typedef struct {
  guint turn;
  CimsViewerSession *viewer;
  guint16 first_seq;
  guint16 last_seq;
  gboolean is_snapshot;
} Delivery;

typedef struct {
  CimsHub *hub;
  CimsWorker *worker;
  CimsSource *sources[N_SOURCES];
  GPtrArray *viewers;           /* of CimsViewerSession (the test's ref), in join order */
  GPtrArray *packets;           /* of CimsRtpPacket: the test's own ref to each packet pushed */
  GArray *deliveries;           /* of Delivery, in call order */
  guint turn;                   /* drains run so far */
} Fixture;

/* The fixture of the running test, for the doubles that worker.c calls. */
static Fixture *current_fixture;
static gint64 fake_now_us;
static CimsWorkerLoop *current_loop;

/* ---- fake clock ------------------------------------------------------------ */

/* The link wraps worker.c's g_get_monotonic_time() calls with this function
 * (-Wl,--wrap), and only deliveries advance it, so every deadline falls at
 * a known point. */
gint64 __wrap_g_get_monotonic_time (void);

gint64
__wrap_g_get_monotonic_time (void)
{
  return fake_now_us;
}

/* ---- test doubles: the hub's error domain and the event loop ---------------- */

G_DEFINE_QUARK (cims-hub-error-quark, cims_hub_error)

/* The loop records the wake-up handler and never runs: each test runs the
 * drains itself with worker_turn(). */
struct _CimsWorkerLoop {
  int wake_fd;
  CimsWorkerLoopFdFunc wake_func;
  gpointer wake_data;
};

CimsWorkerLoop *
cims_worker_loop_new (GError **error)
{
  current_loop = g_new0 (CimsWorkerLoop, 1);
  current_loop->wake_fd = -1;
  return current_loop;
}

void
cims_worker_loop_free (CimsWorkerLoop *loop)
{
  if (loop == current_loop)
    current_loop = NULL;
  g_free (loop);
}

gboolean
cims_worker_loop_watch_fd (CimsWorkerLoop *loop, int fd, CimsWorkerLoopFdFunc func,
                           gpointer user_data, GError **error)
{
  loop->wake_fd = fd;
  loop->wake_func = func;
  loop->wake_data = user_data;
  return TRUE;
}

void
cims_worker_loop_add_context (CimsWorkerLoop *loop, GMainContext *context)
{
}

void
cims_worker_loop_run (CimsWorkerLoop *loop)
{
}

void
cims_worker_loop_quit (CimsWorkerLoop *loop)
{
}

GMainContext *
cims_worker_loop_join_group (CimsWorkerLoop *loop)
{
  g_assert_not_reached ();
}

void
cims_worker_loop_leave_group (CimsWorkerLoop *loop, GMainContext *context)
{
  g_assert_not_reached ();
}

/* ---- test doubles: camera sources ------------------------------------------- */

struct _CimsSource {
  char *camera_id;
  char *key;                    /* in hub->sources: a transcode's key, unlike its camera's id */
  CimsFeedRing *ring;           /* the worker's ring while a feed is attached */
  int n_subscribers;
  guint n_idle_checks;
  guint16 next_seq;             /* also the number of packets pushed */
  guint32 next_timestamp;
};

static CimsSource *
source_new (const char *camera_id)
{
  CimsSource *source = g_new0 (CimsSource, 1);

  source->camera_id = g_strdup (camera_id);
  source->key = g_strdup_printf ("%s/wall/H264", camera_id);
  return source;
}

static void
source_free (CimsSource *source)
{
  g_assert_null (source->ring);
  g_free (source->camera_id);
  g_free (source->key);
  g_free (source);
}

const char *
cims_source_get_camera_id (CimsSource *source)
{
  return source->camera_id;
}

const char *
cims_source_get_key (CimsSource *source)
{
  return source->key;
}

void
cims_source_count_subscriber (CimsSource *source, int delta)
{
  source->n_subscribers += delta;
  g_assert_cmpint (source->n_subscribers, >=, 0);
}

/* The cache keeps a history long enough for every packet of a batch, so
 * that the deliver double can check the batch went into the cache first. */
guint
cims_source_attach_feed (CimsSource *source, guint worker_index, CimsFeedRing **ring,
                         CimsKeyframeCache **cache)
{
  g_assert_null (source->ring);

  source->ring = cims_feed_ring_new ();
  *ring = source->ring;
  *cache = cims_keyframe_cache_new (CIMS_CODEC_H264, 1024 * 1024, 1024);
  return FORMAT_GENERATION;
}

void
cims_source_detach_feed (CimsSource *source, guint worker_index)
{
  g_assert_nonnull (source->ring);
  source->ring = NULL;
}

guint
cims_source_get_format_generation (CimsSource *source)
{
  return FORMAT_GENERATION;
}

guint
cims_source_refresh_feed_cache (CimsSource *source, CimsKeyframeCache **cache)
{
  g_assert_not_reached ();
}

void
cims_source_check_idle (CimsSource *source)
{
  source->n_idle_checks++;
}

/* ---- test doubles: viewer sessions ------------------------------------------ */

struct _CimsViewerSession {
  gint ref_count;
  CimsSource *source;
  CimsFeed *feed;               /* while subscribed */
  gboolean waiting_for_keyframe;
  GArray *received_seqs;        /* of guint16, in the order received */
};

CimsViewerSession *
cims_viewer_session_ref (CimsViewerSession *session)
{
  session->ref_count++;
  return session;
}

void
cims_viewer_session_unref (CimsViewerSession *session)
{
  g_assert_cmpint (session->ref_count, >, 0);
  if (--session->ref_count > 0)
    return;

  g_array_unref (session->received_seqs);
  g_free (session);
}

/* The report timer's context never runs here. */
void
cims_viewer_session_send_report (CimsViewerSession *session)
{
  g_assert_not_reached ();
}

/* Asserts the contract of cims_viewer_session_deliver(): every packet is in
 * the cache before a viewer gets it. */
static void
packets_assert_cached (CimsKeyframeCache *cache, CimsRtpPacket *const *packets, guint n_packets)
{
  for (guint i = 0; i < n_packets; i++)
    g_assert_true (cims_keyframe_cache_lookup (cache, cims_rtp_packet_get_seq (packets[i])) == packets[i]);
}

static void
viewer_receive (CimsViewerSession *viewer, CimsRtpPacket *const *packets, guint n_packets,
                gboolean is_snapshot)
{
  Delivery delivery = {
    .turn = current_fixture->turn,
    .viewer = viewer,
    .first_seq = cims_rtp_packet_get_seq (packets[0]),
    .last_seq = cims_rtp_packet_get_seq (packets[n_packets - 1]),
    .is_snapshot = is_snapshot,
  };

  for (guint i = 0; i < n_packets; i++) {
    guint16 seq = cims_rtp_packet_get_seq (packets[i]);

    g_array_append_val (viewer->received_seqs, seq);
  }
  g_array_append_val (current_fixture->deliveries, delivery);
  fake_now_us += (gint64) n_packets * DATAGRAM_COST_US;
}

/* Records what the viewer receives, the way hub/viewer-media.c sends it: a
 * viewer that waits for a keyframe gets nothing until the cache has one,
 * then the cache's snapshot, which ends with @packets. Any other viewer
 * gets @packets. */
void
cims_viewer_session_deliver (CimsViewerSession *session, CimsKeyframeCache *cache,
                             CimsRtpPacket *const *packets, guint n_packets)
{
  g_autoptr (GPtrArray) snapshot = NULL;

  g_assert_nonnull (session->feed);
  g_assert_cmpint (session->ref_count, >, 1);
  g_assert_cmpuint (n_packets, >, 0);
  packets_assert_cached (cache, packets, n_packets);

  if (!session->waiting_for_keyframe) {
    viewer_receive (session, packets, n_packets, FALSE);
    return;
  }

  if (!cims_keyframe_cache_has_keyframe (cache))
    return;

  snapshot = cims_keyframe_cache_snapshot (cache);
  session->waiting_for_keyframe = FALSE;
  viewer_receive (session, (CimsRtpPacket *const *) snapshot->pdata, snapshot->len, TRUE);
}

/* ---- viewers joining and leaving --------------------------------------------- */

static CimsViewerSession *
viewer_join (Fixture *f, CimsSource *source, gboolean is_waiting_for_keyframe)
{
  CimsViewerSession *viewer = g_new0 (CimsViewerSession, 1);

  viewer->ref_count = 1;
  viewer->source = source;
  viewer->waiting_for_keyframe = is_waiting_for_keyframe;
  viewer->received_seqs = g_array_new (FALSE, FALSE, sizeof (guint16));
  viewer->feed = cims_worker_subscribe (f->worker, source, viewer);
  g_ptr_array_add (f->viewers, viewer);
  return viewer;
}

static void
viewer_leave (Fixture *f, CimsViewerSession *viewer)
{
  cims_worker_unsubscribe (f->worker, g_steal_pointer (&viewer->feed), viewer);
}

/* ---- the fixture ------------------------------------------------------------ */

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  current_fixture = f;
  fake_now_us = G_USEC_PER_SEC;

  /* Owned by this thread, so the idle check that the last viewer's leave
   * sends to the main context runs at once. */
  f->hub = g_new0 (CimsHub, 1);
  f->hub->main_context = g_main_context_new ();
  g_assert_true (g_main_context_acquire (f->hub->main_context));
  f->hub->sources = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < N_SOURCES; i++) {
    f->sources[i] = source_new (camera_ids[i]);
    g_hash_table_insert (f->hub->sources, f->sources[i]->key, f->sources[i]);
  }

  f->viewers = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_viewer_session_unref);
  f->packets = g_ptr_array_new ();
  f->deliveries = g_array_new (FALSE, FALSE, sizeof (Delivery));

  f->worker = cims_worker_new (f->hub, 0, &error);
  g_assert_no_error (error);
  g_assert_nonnull (current_loop);
}

static guint n_packets_freed;

static void
packet_freed_cb (gpointer data)
{
  n_packets_freed++;
}

/* Drops the test's own ref to every packet pushed and returns how many
 * packets that freed: all of them once the worker released its refs.
 * CimsRtpPacket is a GLib atomic refcounted box (pipelines/rtp-packet.c),
 * and g_atomic_rc_box_release_full() calls the clear function only when it
 * drops the last ref. */
static guint
fixture_release_packets (Fixture *f)
{
  n_packets_freed = 0;
  for (guint i = 0; i < f->packets->len; i++)
    g_atomic_rc_box_release_full (g_ptr_array_index (f->packets, i), packet_freed_cb);
  g_ptr_array_set_size (f->packets, 0);
  return n_packets_freed;
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  guint n_pushed = f->packets->len;

  for (guint i = 0; i < f->viewers->len; i++) {
    CimsViewerSession *viewer = g_ptr_array_index (f->viewers, i);

    if (viewer->feed != NULL)
      viewer_leave (f, viewer);
  }
  cims_worker_free (f->worker);

  /* Every packet is freed, and only the test still refers to a viewer. */
  g_assert_cmpuint (fixture_release_packets (f), ==, n_pushed);
  for (guint i = 0; i < f->viewers->len; i++)
    g_assert_cmpint (((CimsViewerSession *) g_ptr_array_index (f->viewers, i))->ref_count, ==, 1);

  g_ptr_array_unref (f->viewers);
  g_ptr_array_unref (f->packets);
  g_array_unref (f->deliveries);
  g_hash_table_unref (f->hub->sources);
  for (guint i = 0; i < N_SOURCES; i++)
    source_free (f->sources[i]);
  g_main_context_release (f->hub->main_context);
  g_main_context_unref (f->hub->main_context);
  g_free (f->hub);
  current_fixture = NULL;
}

/* ---- helpers ---------------------------------------------------------------- */

static CimsViewerSession *
viewer_get (Fixture *f, guint index)
{
  return g_ptr_array_index (f->viewers, index);
}

/* Asserts that @viewer received packets @first_seq to @last_seq, each
 * once and in order. */
static void
viewer_assert_received (CimsViewerSession *viewer, guint16 first_seq, guint16 last_seq)
{
  GArray *seqs = viewer->received_seqs;

  g_assert_cmpuint (seqs->len, ==, last_seq - first_seq + 1);
  for (guint i = 0; i < seqs->len; i++)
    g_assert_cmpuint (g_array_index (seqs, guint16, i), ==, first_seq + i);
}

/* Pushes one packet, carrying one NAL unit with the header @nal, onto the
 * source's ring, and keeps a ref to it. */
static void
source_push (Fixture *f, CimsSource *source, guint8 nal, guint32 timestamp)
{
  guint16 seq = source->next_seq++;
  guint8 data[] = {
    0x80, 96, seq >> 8, seq & 0xff,
    timestamp >> 24, (timestamp >> 16) & 0xff, (timestamp >> 8) & 0xff, timestamp & 0xff,
    0x12, 0x34, 0x56, 0x78,
    nal, 0x00, 0x01, 0x02,
  };
  CimsRtpPacket *packet = cims_rtp_packet_new (data, sizeof data, 0, fake_now_us);

  g_assert_nonnull (packet);
  g_ptr_array_add (f->packets, cims_rtp_packet_ref (packet));
  g_assert_true (cims_feed_ring_push (source->ring, packet));
}

/* Pushes @n_frames frames of one non-IDR slice each. */
static void
source_push_slices (Fixture *f, CimsSource *source, guint n_frames)
{
  for (guint i = 0; i < n_frames; i++) {
    source_push (f, source, NAL_SLICE, source->next_timestamp);
    source->next_timestamp += FRAME_TICKS;
  }
}

/* Pushes a keyframe of three packets: its SPS, PPS and IDR slice. */
static void
source_push_keyframe (Fixture *f, CimsSource *source)
{
  source_push (f, source, NAL_SPS, source->next_timestamp);
  source_push (f, source, NAL_PPS, source->next_timestamp);
  source_push (f, source, NAL_IDR, source->next_timestamp);
  source->next_timestamp += FRAME_TICKS;
}

/* Packets on the source's ring or in its batch: what its only viewer lacks. */
static guint
source_count_queued (CimsSource *source, CimsViewerSession *viewer)
{
  return source->next_seq - viewer->received_seqs->len;
}

static void
source_top_up (Fixture *f, CimsSource *source, CimsViewerSession *viewer)
{
  source_push_slices (f, source, FLOOD_PACKETS - source_count_queued (source, viewer));
}

/* Runs one drain, as the worker loop does when the eventfd is readable.
 * Returns TRUE when the drain ran out of time and woke the worker again. */
static gboolean
worker_turn (Fixture *f)
{
  struct pollfd poll_fd = { .fd = current_loop->wake_fd, .events = POLLIN };
  guint64 count;

  f->turn++;
  current_loop->wake_func (current_loop->wake_fd, current_loop->wake_data);

  g_assert_cmpint (poll (&poll_fd, 1, 0), >=, 0);
  if (!(poll_fd.revents & POLLIN))
    return FALSE;

  g_assert_cmpint (read (current_loop->wake_fd, &count, sizeof count), ==, sizeof count);
  return TRUE;
}

/* Runs drains until one finishes within its time. */
static void
worker_run_until_idle (Fixture *f)
{
  guint n_turns = 0;

  while (worker_turn (f))
    g_assert_cmpuint (++n_turns, <, MAX_TURNS);
}

/* Runs the first drain, which must run out of time part way through the
 * first batch: the viewers before the returned index have the batch, the
 * others have nothing yet. */
static guint
worker_turn_cut_mid_batch (Fixture *f)
{
  guint n_served = 0;
  guint batch_length;

  g_assert_true (worker_turn (f));

  while (n_served < f->viewers->len && viewer_get (f, n_served)->received_seqs->len > 0)
    n_served++;
  g_assert_cmpuint (n_served, >, 0);
  g_assert_cmpuint (n_served, <, f->viewers->len);

  batch_length = viewer_get (f, 0)->received_seqs->len;
  for (guint i = 0; i < n_served; i++)
    viewer_assert_received (viewer_get (f, i), 0, batch_length - 1);
  for (guint i = n_served; i < f->viewers->len; i++)
    g_assert_cmpuint (viewer_get (f, i)->received_seqs->len, ==, 0);
  return n_served;
}

static const Delivery *
delivery_first_of_turn (Fixture *f, guint turn)
{
  for (guint i = 0; i < f->deliveries->len; i++) {
    const Delivery *delivery = &g_array_index (f->deliveries, Delivery, i);

    if (delivery->turn == turn)
      return delivery;
  }
  return NULL;
}

static void
viewers_join (Fixture *f, CimsSource *source, guint n_viewers)
{
  for (guint i = 0; i < n_viewers; i++)
    viewer_join (f, source, FALSE);
}

/* ---- resuming a batch --------------------------------------------------------- */

static void
test_worker_fanout_resumes_at_first_viewer_lacking_batch (Fixture *f, gconstpointer data)
{
  CimsSource *source = f->sources[0];
  const Delivery *resumed;
  guint n_served;

  viewers_join (f, source, N_VIEWERS);
  source_push_slices (f, source, 64);

  n_served = worker_turn_cut_mid_batch (f);

  /* The next drain goes on with the same batch at the first viewer that
   * lacks it. */
  g_assert_true (worker_turn (f));
  resumed = delivery_first_of_turn (f, 2);
  g_assert_nonnull (resumed);
  g_assert_true (resumed->viewer == viewer_get (f, n_served));
  g_assert_cmpuint (resumed->first_seq, ==, 0);

  worker_run_until_idle (f);
  for (guint i = 0; i < N_VIEWERS; i++)
    viewer_assert_received (viewer_get (f, i), 0, 63);
}

/* ---- a viewer leaving part way ------------------------------------------------- */

typedef enum {
  LEAVER_BEFORE_CURSOR,         /* the first viewer, with another viewer between it and the cursor */
  LEAVER_AT_CURSOR,             /* the next to get the batch */
  LEAVER_AFTER_CURSOR,
} LeaverPlace;

/* One viewer leaves while a batch is part way out. Every other viewer gets
 * every packet once, and the leaver gets nothing more. */
static void
leave_mid_batch_check (Fixture *f, LeaverPlace place)
{
  CimsSource *source = f->sources[0];
  CimsViewerSession *leaver;
  guint n_served;
  guint leaver_index;
  guint n_leaver_seqs;

  viewers_join (f, source, N_VIEWERS);
  source_push_slices (f, source, 64);
  n_served = worker_turn_cut_mid_batch (f);

  switch (place) {
  case LEAVER_BEFORE_CURSOR:
    g_assert_cmpuint (n_served, >=, 2);
    leaver_index = 0;
    break;
  case LEAVER_AT_CURSOR:
    leaver_index = n_served;
    break;
  case LEAVER_AFTER_CURSOR:
  default:
    leaver_index = n_served + 1;
    break;
  }
  g_assert_cmpuint (leaver_index, <, N_VIEWERS);
  leaver = viewer_get (f, leaver_index);
  n_leaver_seqs = leaver->received_seqs->len;
  viewer_leave (f, leaver);

  worker_run_until_idle (f);
  for (guint i = 0; i < N_VIEWERS; i++) {
    if (i != leaver_index)
      viewer_assert_received (viewer_get (f, i), 0, 63);
  }
  g_assert_cmpuint (leaver->received_seqs->len, ==, n_leaver_seqs);
  g_assert_cmpint (source->n_subscribers, ==, N_VIEWERS - 1);
}

static void
test_worker_fanout_leave_before_cursor (Fixture *f, gconstpointer data)
{
  leave_mid_batch_check (f, LEAVER_BEFORE_CURSOR);
}

static void
test_worker_fanout_leave_at_cursor (Fixture *f, gconstpointer data)
{
  leave_mid_batch_check (f, LEAVER_AT_CURSOR);
}

static void
test_worker_fanout_leave_after_cursor (Fixture *f, gconstpointer data)
{
  leave_mid_batch_check (f, LEAVER_AFTER_CURSOR);
}

/* ---- a viewer joining part way ------------------------------------------------- */

/* A viewer that joins while a batch is part way out is last in line, so it
 * gets that batch. Like every new viewer it waits for a keyframe, and so
 * receives the cache's snapshot, which already ends with the batch: it then
 * has every packet from the keyframe on, once each. */
static void
test_worker_fanout_join_mid_batch_gets_snapshot (Fixture *f, gconstpointer data)
{
  CimsSource *source = f->sources[0];
  CimsViewerSession *joiner;
  const Delivery *first;
  guint batch_length;

  viewers_join (f, source, N_VIEWERS);
  source_push_keyframe (f, source);
  source_push_slices (f, source, 61);
  worker_turn_cut_mid_batch (f);
  batch_length = viewer_get (f, 0)->received_seqs->len;

  joiner = viewer_join (f, source, TRUE);
  worker_run_until_idle (f);

  first = NULL;
  for (guint i = 0; i < f->deliveries->len && first == NULL; i++) {
    const Delivery *delivery = &g_array_index (f->deliveries, Delivery, i);

    if (delivery->viewer == joiner)
      first = delivery;
  }
  g_assert_nonnull (first);
  g_assert_true (first->is_snapshot);
  g_assert_cmpuint (first->first_seq, ==, 0);
  g_assert_cmpuint (first->last_seq, ==, batch_length - 1);

  viewer_assert_received (joiner, 0, 63);
  for (guint i = 0; i < N_VIEWERS; i++)
    viewer_assert_received (viewer_get (f, i), 0, 63);
}

/* ---- the feeds' turns ----------------------------------------------------------- */

/* Every feed has more than a drain hands out: each drain starts with
 * another feed. */
static void
test_worker_fanout_feeds_take_first_turn_in_rotation (Fixture *f, gconstpointer data)
{
  CimsViewerSession *viewers[N_SOURCES];
  CimsSource *first_sources[N_SOURCES];

  for (guint i = 0; i < N_SOURCES; i++)
    viewers[i] = viewer_join (f, f->sources[i], FALSE);

  for (guint turn = 0; turn < N_SOURCES; turn++) {
    const Delivery *first;

    for (guint i = 0; i < N_SOURCES; i++)
      source_top_up (f, f->sources[i], viewers[i]);
    g_assert_true (worker_turn (f));

    first = delivery_first_of_turn (f, f->turn);
    g_assert_nonnull (first);
    first_sources[turn] = first->viewer->source;
    for (guint i = 0; i < turn; i++)
      g_assert_true (first_sources[i] != first_sources[turn]);
  }
}

/* One feed always has more than a drain hands out. The others still get
 * all their packets within one round of turns. */
static void
test_worker_fanout_flooded_feed_starves_no_other (Fixture *f, gconstpointer data)
{
  CimsSource *flooded = f->sources[0];
  CimsViewerSession *viewers[N_SOURCES];

  for (guint i = 0; i < N_SOURCES; i++)
    viewers[i] = viewer_join (f, f->sources[i], FALSE);
  for (guint i = 1; i < N_SOURCES; i++)
    source_push_slices (f, f->sources[i], 32);

  for (guint turn = 0; turn < N_SOURCES; turn++) {
    source_top_up (f, flooded, viewers[0]);
    g_assert_true (worker_turn (f));
    g_assert_cmpuint (source_count_queued (flooded, viewers[0]), >, 0);
  }

  for (guint i = 1; i < N_SOURCES; i++)
    viewer_assert_received (viewers[i], 0, 31);
}

/* The first feed's one viewer reaches the clock stride in the second batch,
 * and the drain is out of time there. That drain serves no other feed, even
 * those with packets queued. */
static void
test_worker_fanout_out_of_time_skips_other_feeds (Fixture *f, gconstpointer data)
{
  CimsSource *flooded = f->sources[0];
  CimsViewerSession *viewers[N_SOURCES];

  for (guint i = 0; i < N_SOURCES; i++)
    viewers[i] = viewer_join (f, f->sources[i], FALSE);
  source_push_slices (f, flooded, 96);
  for (guint i = 1; i < N_SOURCES; i++)
    source_push_slices (f, f->sources[i], 32);

  g_assert_true (worker_turn (f));
  viewer_assert_received (viewers[0], 0, 63);
  g_assert_cmpuint (source_count_queued (flooded, viewers[0]), >, 0);
  for (guint i = 1; i < N_SOURCES; i++)
    g_assert_cmpuint (viewers[i]->received_seqs->len, ==, 0);

  worker_run_until_idle (f);
  viewer_assert_received (viewers[0], 0, 95);
  for (guint i = 1; i < N_SOURCES; i++)
    viewer_assert_received (viewers[i], 0, 31);
}

/* ---- stopping on time ------------------------------------------------------------ */

/* Each feed counts its own datagrams towards the clock stride. The first
 * feed's only batch uses most of the drain's time. The second feed's first
 * batch of 32 datagrams passes the deadline below the stride, so no clock
 * read happens inside it. The drain still stops after that batch. */
static void
test_worker_fanout_stops_between_batches (Fixture *f, gconstpointer data)
{
  CimsViewerSession *first_viewer = viewer_join (f, f->sources[0], FALSE);
  CimsViewerSession *second_viewer = viewer_join (f, f->sources[1], FALSE);

  source_push_slices (f, f->sources[0], 32);
  source_push_slices (f, f->sources[1], 64);

  g_assert_true (worker_turn (f));
  viewer_assert_received (first_viewer, 0, 31);
  viewer_assert_received (second_viewer, 0, 31);

  worker_run_until_idle (f);
  viewer_assert_received (second_viewer, 0, 63);
}

/* ---- the last viewer leaving ------------------------------------------------------ */

/* The last viewer leaves while a batch is part way out and more packets are
 * queued: the feed lets go of every packet, in its batch, its cache and its
 * ring, and the source gets its idle check, found by its key. */
static void
test_worker_fanout_last_leave_frees_batch (Fixture *f, gconstpointer data)
{
  CimsSource *source = f->sources[0];
  guint n_deliveries;

  viewers_join (f, source, N_VIEWERS);
  source_push_slices (f, source, 96);
  worker_turn_cut_mid_batch (f);

  for (guint i = N_VIEWERS; i > 0; i--)
    viewer_leave (f, viewer_get (f, i - 1));

  g_assert_null (source->ring);
  g_assert_cmpint (source->n_subscribers, ==, 0);
  g_assert_cmpuint (source->n_idle_checks, ==, 1);
  g_assert_cmpuint (fixture_release_packets (f), ==, 96);

  /* The worker's next drain finds no feed. */
  n_deliveries = f->deliveries->len;
  g_assert_false (worker_turn (f));
  g_assert_cmpuint (f->deliveries->len, ==, n_deliveries);
}

typedef void (*FixtureTestFunc) (Fixture *f, gconstpointer data);

static const struct {
  const char *path;
  FixtureTestFunc func;
} fixture_tests[] = {
  { "/hub/worker-fanout/resumes-at-first-viewer-lacking-batch",
    test_worker_fanout_resumes_at_first_viewer_lacking_batch },
  { "/hub/worker-fanout/leave-before-cursor", test_worker_fanout_leave_before_cursor },
  { "/hub/worker-fanout/leave-at-cursor", test_worker_fanout_leave_at_cursor },
  { "/hub/worker-fanout/leave-after-cursor", test_worker_fanout_leave_after_cursor },
  { "/hub/worker-fanout/join-mid-batch-gets-snapshot", test_worker_fanout_join_mid_batch_gets_snapshot },
  { "/hub/worker-fanout/feeds-take-first-turn-in-rotation",
    test_worker_fanout_feeds_take_first_turn_in_rotation },
  { "/hub/worker-fanout/flooded-feed-starves-no-other", test_worker_fanout_flooded_feed_starves_no_other },
  { "/hub/worker-fanout/out-of-time-skips-other-feeds",
    test_worker_fanout_out_of_time_skips_other_feeds },
  { "/hub/worker-fanout/stops-between-batches", test_worker_fanout_stops_between_batches },
  { "/hub/worker-fanout/last-leave-frees-batch", test_worker_fanout_last_leave_frees_batch },
};

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (fixture_tests); i++)
    g_test_add (fixture_tests[i].path, Fixture, NULL, fixture_set_up, fixture_tests[i].func, fixture_tear_down);

  return g_test_run ();
}
