/* SPDX-License-Identifier: Apache-2.0 */
/* cimshub-floor: the relay's hardware floor. One thread, pinned to a core by
 * default, turns each 1200-byte H.264 RTP packet into K viewers' packets (hub
 * rewriter, the viewer's own srtp_protect, sendmmsg to loopback) and does
 * nothing else. */

#include <glib.h>

#include <errno.h>
#include <link.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <srtp2/srtp.h>

/* The rewriter is the hub's own per-viewer packet code, so the floor runs the
 * same rewriting code as the relay. */
#include "hub/fd-budget.h"
#include "hub/hub-private.h"

#define FLOOR_BATCH_MAX 64
#define FLOOR_SLOT_SIZE (CIMS_RTP_MAX_PACKET + SRTP_MAX_TRAILER_LEN)
#define FLOOR_CLOCK_RATE 90000
#define FLOOR_FRAME_RATE 25
#define FLOOR_CAMERA_PT 96
#define FLOOR_VIEWER_PT 102
#define FLOOR_MAX_VIEWERS 20000
#define FLOOR_RECV_POLL_MS 20
#define FLOOR_DRAIN_MAX_MS 1000
#define FLOOR_SEND_RETRIES 16

typedef enum {
  FLOOR_SUITE_GCM,
  FLOOR_SUITE_CM,
} FloorSuite;

/* One viewer: its rewriting state, SRTP context and receiving socket. */
typedef struct {
  CimsRtpRewriter rewriter;
  srtp_t srtp;
  struct sockaddr_in address;
} FloorViewer;

/* Loopback sockets standing in for the viewers, drained by one thread so that
 * the kernel delivers every packet it can and drops the rest on its own. */
typedef struct {
  int *fds;
  guint n_fds;
  int epoll_fd;
  int cpu;                      /* -1: not pinned */
  atomic_bool is_stopping;
  atomic_uint_fast64_t n_received;
  GThread *thread;
} FloorReceiver;

/* The sender's per-batch buffers: one slot, iovec and mmsghdr per message. */
typedef struct {
  guint8 slots[FLOOR_BATCH_MAX][FLOOR_SLOT_SIZE];
  struct iovec iovs[FLOOR_BATCH_MAX];
  struct mmsghdr messages[FLOOR_BATCH_MAX];
  guint n_queued;
  guint size;
} FloorBatch;

typedef struct {
  guint n_viewers;
  FloorSuite suite;
  guint64 n_source_packets;
  guint64 n_sent;
  guint64 n_dropped;            /* rewrite, protect or send failed */
  guint64 n_received;
  double user_s;
  double system_s;
  double wall_s;
} FloorResult;

typedef struct {
  char *viewers;
  char *suites;
  gint64 n_packets;             /* 0: n_deliveries / K */
  gint64 n_deliveries;
  double max_seconds;
  gint64 stream_bps;
  gint packet_size;
  gint batch_size;
  gint cpu;
  char *label;
  gboolean is_key_value;
} FloorOptions;

static FloorOptions options = {
  .n_deliveries = 2000000,
  .max_seconds = 20.0,
  .stream_bps = 2000000,
  .packet_size = 1200,
  .batch_size = FLOOR_BATCH_MAX,
  .cpu = 0,
};

/* ---- receiver ----------------------------------------------------------- */

static void
pin_current_thread (int cpu)
{
  cpu_set_t set;

  if (cpu < 0)
    return;

  CPU_ZERO (&set);
  CPU_SET (cpu, &set);
  if (sched_setaffinity (0, sizeof set, &set) != 0)
    g_printerr ("cimshub-floor: sched_setaffinity(%d) failed: %s; running unpinned\n",
                cpu, g_strerror (errno));
}

/* Reads whatever @fd holds, at most 16 batches, so one busy socket cannot
 * starve the others. Returns the number of datagrams read. */
static guint
receiver_drain_socket (int fd)
{
  static guint8 buffers[FLOOR_BATCH_MAX][FLOOR_SLOT_SIZE];
  struct iovec iovs[FLOOR_BATCH_MAX];
  struct mmsghdr messages[FLOOR_BATCH_MAX];
  guint n_read = 0;

  memset (messages, 0, sizeof messages);
  for (guint i = 0; i < FLOOR_BATCH_MAX; i++) {
    iovs[i].iov_base = buffers[i];
    iovs[i].iov_len = FLOOR_SLOT_SIZE;
    messages[i].msg_hdr.msg_iov = &iovs[i];
    messages[i].msg_hdr.msg_iovlen = 1;
  }

  for (guint round = 0; round < 16; round++) {
    int n = recvmmsg (fd, messages, FLOOR_BATCH_MAX, MSG_DONTWAIT, NULL);

    if (n <= 0)
      break;
    n_read += (guint) n;
  }

  return n_read;
}

static gpointer
receiver_thread (gpointer data)
{
  FloorReceiver *receiver = data;
  struct epoll_event events[FLOOR_BATCH_MAX];

  pin_current_thread (receiver->cpu);

  while (!atomic_load (&receiver->is_stopping)) {
    int n = epoll_wait (receiver->epoll_fd, events, FLOOR_BATCH_MAX, FLOOR_RECV_POLL_MS);

    for (int i = 0; i < n; i++) {
      guint n_read = receiver_drain_socket (events[i].data.fd);

      atomic_fetch_add (&receiver->n_received, n_read);
    }
  }

  return NULL;
}

static int
receiver_open_socket (struct sockaddr_in *address)
{
  socklen_t length = sizeof *address;
  int fd = socket (AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return -1;

  memset (address, 0, sizeof *address);
  address->sin_family = AF_INET;
  address->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (bind (fd, (struct sockaddr *) address, sizeof *address) != 0
      || getsockname (fd, (struct sockaddr *) address, &length) != 0) {
    close (fd);
    return -1;
  }

  return fd;
}

/* Opens @n_fds receiving sockets, storing each one's address in @addresses,
 * and starts the draining thread on @cpu. Exits the program on failure. */
static FloorReceiver *
receiver_start (guint n_fds, struct sockaddr_in *addresses, int cpu)
{
  FloorReceiver *receiver = g_new0 (FloorReceiver, 1);

  receiver->fds = g_new (int, n_fds);
  receiver->n_fds = n_fds;
  receiver->cpu = cpu;
  receiver->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
  if (receiver->epoll_fd < 0)
    g_error ("epoll_create1() failed: %s", g_strerror (errno));

  for (guint i = 0; i < n_fds; i++) {
    struct epoll_event event = { .events = EPOLLIN, .data.fd = -1 };

    receiver->fds[i] = receiver_open_socket (&addresses[i]);
    if (receiver->fds[i] < 0)
      g_error ("receiving socket %u of %u on 127.0.0.1 failed: %s (raise the open files limit)",
               i + 1, n_fds, g_strerror (errno));
    event.data.fd = receiver->fds[i];
    if (epoll_ctl (receiver->epoll_fd, EPOLL_CTL_ADD, receiver->fds[i], &event) != 0)
      g_error ("epoll_ctl() failed: %s", g_strerror (errno));
  }

  receiver->thread = g_thread_new ("floor-receiver", receiver_thread, receiver);
  return receiver;
}

static void
receiver_stop (FloorReceiver *receiver)
{
  atomic_store (&receiver->is_stopping, TRUE);
  g_thread_join (receiver->thread);

  for (guint i = 0; i < receiver->n_fds; i++)
    close (receiver->fds[i]);
  close (receiver->epoll_fd);
  g_free (receiver->fds);
  g_free (receiver);
}

/* Waits, at most FLOOR_DRAIN_MAX_MS, until the receive count stops growing
 * for two poll periods, and returns it. */
static guint64
receiver_settle (FloorReceiver *receiver)
{
  guint64 last = atomic_load (&receiver->n_received);
  guint n_quiet = 0;

  for (guint waited_ms = 0; waited_ms < FLOOR_DRAIN_MAX_MS && n_quiet < 2;
       waited_ms += FLOOR_RECV_POLL_MS) {
    guint64 now;

    g_usleep (FLOOR_RECV_POLL_MS * 1000);
    now = atomic_load (&receiver->n_received);
    n_quiet = now == last ? n_quiet + 1 : 0;
    last = now;
  }

  return last;
}

/* ---- viewers ------------------------------------------------------------ */

static void
viewer_init (FloorViewer *viewer, FloorSuite suite, const struct sockaddr_in *address)
{
  guint8 key[SRTP_AES_GCM_128_KEY_LEN_WSALT > SRTP_AES_ICM_128_KEY_LEN_WSALT
             ? SRTP_AES_GCM_128_KEY_LEN_WSALT : SRTP_AES_ICM_128_KEY_LEN_WSALT];
  srtp_policy_t policy;
  srtp_err_status_t status;

  memset (&policy, 0, sizeof policy);
  if (suite == FLOOR_SUITE_GCM) {
    srtp_crypto_policy_set_aes_gcm_128_16_auth (&policy.rtp);
    srtp_crypto_policy_set_aes_gcm_128_16_auth (&policy.rtcp);
  } else {
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80 (&policy.rtp);
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80 (&policy.rtcp);
  }

  /* Bench keys only: g_random is not a cryptographic generator. */
  for (gsize i = 0; i < sizeof key; i++)
    key[i] = (guint8) g_random_int ();
  policy.key = key;
  policy.ssrc.type = ssrc_any_outbound;

  status = srtp_create (&viewer->srtp, &policy);
  memset (key, 0, sizeof key);
  if (status != srtp_err_status_ok)
    g_error ("srtp_create() failed: libsrtp status %d", status);

  cims_rtp_rewriter_init (&viewer->rewriter, g_random_int (), FLOOR_VIEWER_PT,
                          FLOOR_CLOCK_RATE, (guint16) g_random_int (), g_random_int ());
  viewer->address = *address;
}

static FloorViewer *
viewers_new (guint n_viewers, FloorSuite suite, const struct sockaddr_in *addresses)
{
  FloorViewer *viewers = g_new0 (FloorViewer, n_viewers);

  for (guint i = 0; i < n_viewers; i++)
    viewer_init (&viewers[i], suite, &addresses[i]);

  return viewers;
}

static void
viewers_free (FloorViewer *viewers, guint n_viewers)
{
  for (guint i = 0; i < n_viewers; i++)
    srtp_dealloc (viewers[i].srtp);
  g_free (viewers);
}

/* ---- the camera's packets ----------------------------------------------- */

/* Fills @data with packet @index of an H.264 stream: an FU-A fragment of a
 * non-IDR slice (RFC 6184 section 5.8), FLOOR_FRAME_RATE frames a second,
 * the marker bit on each frame's last packet. */
static void
source_packet_fill (guint8 *data, gsize size, guint64 index, guint packets_per_frame)
{
  guint64 frame = index / packets_per_frame;
  guint position = (guint) (index % packets_per_frame);
  guint32 timestamp = (guint32) (frame * (FLOOR_CLOCK_RATE / FLOOR_FRAME_RATE));
  gboolean is_last = position == packets_per_frame - 1;

  data[0] = 0x80;
  data[1] = (guint8) ((is_last ? 0x80 : 0) | FLOOR_CAMERA_PT);
  data[2] = (guint8) (index >> 8);
  data[3] = (guint8) index;
  data[4] = (guint8) (timestamp >> 24);
  data[5] = (guint8) (timestamp >> 16);
  data[6] = (guint8) (timestamp >> 8);
  data[7] = (guint8) timestamp;
  memcpy (data + 8, "\x1c\xa3\x5e\x01", 4);          /* camera SSRC */

  data[12] = 0x40 | 28;                               /* FU indicator: NRI 2, FU-A */
  data[13] = (guint8) ((position == 0 ? 0x80 : 0) | (is_last ? 0x40 : 0) | 1);
  for (gsize i = 14; i < size; i++)
    data[i] = (guint8) (i * 131 + index);
}

/* ---- sending ------------------------------------------------------------ */

static void
batch_init (FloorBatch *batch, guint size)
{
  memset (batch, 0, sizeof *batch);
  batch->size = size;
  for (guint i = 0; i < FLOOR_BATCH_MAX; i++) {
    batch->iovs[i].iov_base = batch->slots[i];
    batch->messages[i].msg_hdr.msg_iov = &batch->iovs[i];
    batch->messages[i].msg_hdr.msg_iovlen = 1;
    batch->messages[i].msg_hdr.msg_namelen = sizeof (struct sockaddr_in);
  }
}

/* Sends the queued messages. On loopback the kernel hands each datagram
 * straight to the receiving socket and drops it there when that socket's
 * buffer is full, so a receiver that falls behind costs drops, not a stall.
 * NOTE: that receive-side delivery runs in this thread's softirq context and,
 * on kernels without IRQ time accounting, counts in its system time, so the
 * kernel share here is higher than for a send to a network card. */
static void
batch_flush (FloorBatch *batch, int fd, FloorResult *result)
{
  guint n_done = 0;

  for (guint attempt = 0; attempt < FLOOR_SEND_RETRIES && n_done < batch->n_queued; attempt++) {
    int n = sendmmsg (fd, batch->messages + n_done, batch->n_queued - n_done, 0);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      /* The first message failed: count it and carry on with the rest. */
      n_done++;
      result->n_dropped++;
      continue;
    }
    n_done += (guint) n;
    result->n_sent += (guint) n;
  }

  result->n_dropped += batch->n_queued - n_done;
  batch->n_queued = 0;
}

/* Rewrites, protects and queues @packet for every viewer, sending each full
 * batch: the relay's whole per-viewer work. */
static void
relay_packet (const CimsRtpPacket *packet, FloorViewer *viewers, guint n_viewers,
              FloorBatch *batch, int fd, FloorResult *result)
{
  for (guint v = 0; v < n_viewers; v++) {
    guint8 *slot = batch->slots[batch->n_queued];
    gsize size = cims_rtp_rewriter_write (&viewers[v].rewriter, packet, slot, CIMS_RTP_MAX_PACKET);
    int length = (int) size;

    if (size == 0 || srtp_protect (viewers[v].srtp, slot, &length) != srtp_err_status_ok) {
      result->n_dropped++;
      continue;
    }

    batch->iovs[batch->n_queued].iov_len = (size_t) length;
    batch->messages[batch->n_queued].msg_hdr.msg_name = &viewers[v].address;
    batch->n_queued++;
    if (batch->n_queued == batch->size)
      batch_flush (batch, fd, result);
  }

  if (batch->n_queued > 0)
    batch_flush (batch, fd, result);
}

/* NOTE: all viewers share this one socket so that sendmmsg can batch across
 * them, whereas the hub sends through one libnice socket per viewer. */
static int
sender_open_socket (void)
{
  struct sockaddr_in address = { .sin_family = AF_INET };
  int fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  if (fd < 0)
    g_error ("socket() failed: %s", g_strerror (errno));

  address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (bind (fd, (struct sockaddr *) &address, sizeof address) != 0)
    g_error ("bind() to 127.0.0.1 failed: %s", g_strerror (errno));

  return fd;
}

/* ---- one measured case --------------------------------------------------- */

static double
timeval_s (const struct timeval *tv)
{
  return (double) tv->tv_sec + (double) tv->tv_usec / 1e6;
}

/* Relays up to n_packets packets to @n_viewers viewers, stopping
 * early after options.max_seconds, and measures the calling thread's CPU
 * time (RUSAGE_THREAD) over the relaying alone. */
static void
run_case (FloorSuite suite, guint n_viewers, const struct sockaddr_in *addresses,
          FloorReceiver *receiver, int fd, FloorResult *result)
{
  g_autofree guint8 *data = g_malloc (options.packet_size);
  g_autofree FloorBatch *batch = g_new (FloorBatch, 1);
  FloorViewer *viewers = viewers_new (n_viewers, suite, addresses);
  guint packets_per_frame = MAX (1, (guint) (options.stream_bps / (8 * options.packet_size) / FLOOR_FRAME_RATE));
  gint64 deadline_us;
  gint64 start_us;
  struct rusage before, after;
  guint64 received_before;
  FloorResult warm_up = { 0 };
  guint64 index = 0;
  gint64 n_packets = options.n_packets > 0 ? options.n_packets
                     : MAX (1, options.n_deliveries / n_viewers);

  memset (result, 0, sizeof *result);
  result->n_viewers = n_viewers;
  result->suite = suite;
  batch_init (batch, (guint) options.batch_size);

  /* One packet each before measuring: libsrtp creates the per-SSRC stream
   * on the first protect of a new SSRC. */
  source_packet_fill (data, options.packet_size, index, packets_per_frame);
  {
    g_autoptr (CimsRtpPacket) packet = cims_rtp_packet_new (data, options.packet_size, 1, g_get_monotonic_time ());
    relay_packet (packet, viewers, n_viewers, batch, fd, &warm_up);
  }
  index++;
  received_before = receiver_settle (receiver);

  getrusage (RUSAGE_THREAD, &before);
  start_us = g_get_monotonic_time ();
  deadline_us = start_us + (gint64) (options.max_seconds * G_USEC_PER_SEC);
  for (gint64 i = 0; i < n_packets && g_get_monotonic_time () < deadline_us; i++, index++) {
    g_autoptr (CimsRtpPacket) packet = NULL;

    /* The ingest copy, as the hub makes one per packet from the camera. */
    source_packet_fill (data, options.packet_size, index, packets_per_frame);
    packet = cims_rtp_packet_new (data, options.packet_size, 1, g_get_monotonic_time ());
    relay_packet (packet, viewers, n_viewers, batch, fd, result);
    result->n_source_packets++;
  }
  result->wall_s = (double) (g_get_monotonic_time () - start_us) / G_USEC_PER_SEC;
  getrusage (RUSAGE_THREAD, &after);

  result->user_s = timeval_s (&after.ru_utime) - timeval_s (&before.ru_utime);
  result->system_s = timeval_s (&after.ru_stime) - timeval_s (&before.ru_stime);
  result->n_received = receiver_settle (receiver) - received_before;
  viewers_free (viewers, n_viewers);
}

/* ---- reporting ---------------------------------------------------------- */

static int
library_loaded_cb (struct dl_phdr_info *info, size_t size, void *data)
{
  const char *name = data;

  return info->dlpi_name != NULL && strstr (info->dlpi_name, name) != NULL;
}

/* Names the crypto library that libsrtp runs on, from what is mapped. */
static const char *
crypto_backend_name (void)
{
  if (dl_iterate_phdr (library_loaded_cb, (void *) "libnss3"))
    return "nss";
  if (dl_iterate_phdr (library_loaded_cb, (void *) "libcrypto"))
    return "openssl";
  return "libsrtp-builtin";
}

static double
stream_packets_per_s (void)
{
  return (double) options.stream_bps / (8.0 * options.packet_size);
}

static void
print_result (const FloorResult *result)
{
  const char *suite = result->suite == FLOOR_SUITE_GCM ? "AEAD_AES_128_GCM" : "AES_CM_128_HMAC_SHA1_80";
  double cpu_s = result->user_s + result->system_s;
  double per_cpu_s = cpu_s > 0 ? result->n_sent / cpu_s : 0;
  double per_user_s = result->user_s > 0 ? result->n_sent / result->user_s : 0;
  double per_wall_s = result->wall_s > 0 ? result->n_sent / result->wall_s : 0;
  double ns_per_packet = result->n_sent > 0 ? cpu_s * 1e9 / result->n_sent : 0;

  if (options.is_key_value) {
    printf ("result label=%s backend=%s suite=%s viewers=%u source_packets=%" G_GUINT64_FORMAT
            " sent=%" G_GUINT64_FORMAT " dropped=%" G_GUINT64_FORMAT " received=%" G_GUINT64_FORMAT
            " user_s=%.3f system_s=%.3f wall_s=%.3f packets_per_cpu_s=%.0f"
            " viewers_per_core=%.0f\n",
            options.label, crypto_backend_name (), suite, result->n_viewers,
            result->n_source_packets, result->n_sent, result->n_dropped, result->n_received,
            result->user_s, result->system_s, result->wall_s, per_cpu_s,
            per_cpu_s / stream_packets_per_s ());
    return;
  }

  printf ("| %s | %s | %u | %" G_GUINT64_FORMAT " | %" G_GUINT64_FORMAT " | %" G_GUINT64_FORMAT
          " | %.2f | %.2f | %.2f | %.0f | %.0f | **%.0f** | %.0f | %.0f |\n",
          crypto_backend_name (), suite, result->n_viewers, result->n_source_packets,
          result->n_sent, result->n_received, result->user_s, result->system_s, result->wall_s,
          ns_per_packet, per_cpu_s, per_cpu_s / stream_packets_per_s (),
          per_user_s / stream_packets_per_s (), per_wall_s / stream_packets_per_s ());
}

static void
print_header (void)
{
  if (options.is_key_value)
    return;

  printf ("libsrtp %s on %s; stream %" G_GINT64_FORMAT " bit/s of %d-byte packets = %.1f packets/s\n\n",
          srtp_get_version_string (), crypto_backend_name (), options.stream_bps,
          options.packet_size, stream_packets_per_s ());
  printf ("| crypto | suite | K | source pkts | sent | received | user s | sys s | wall s "
          "| CPU ns/pkt | pkts/CPU-s | viewers/core | user-only viewers/core | wall viewers/core |\n");
  printf ("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
}

/* ---- options ------------------------------------------------------------ */

static gboolean
parse_suites (const char *text, FloorSuite *suites, guint *n_suites, GError **error)
{
  g_auto (GStrv) names = g_strsplit (text, ",", -1);

  *n_suites = 0;
  for (guint i = 0; names[i] != NULL; i++) {
    if (*n_suites == 2) {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--suite lists more than two suites: %s", text);
      return FALSE;
    }
    if (g_ascii_strcasecmp (names[i], "gcm") == 0) {
      suites[(*n_suites)++] = FLOOR_SUITE_GCM;
    } else if (g_ascii_strcasecmp (names[i], "cm") == 0) {
      suites[(*n_suites)++] = FLOOR_SUITE_CM;
    } else {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--suite: unknown suite \"%s\" (expected gcm or cm)", names[i]);
      return FALSE;
    }
  }

  return TRUE;
}

static GArray *
parse_viewer_counts (const char *text, GError **error)
{
  g_auto (GStrv) items = g_strsplit (text, ",", -1);
  g_autoptr (GArray) counts = g_array_new (FALSE, FALSE, sizeof (guint));

  for (guint i = 0; items[i] != NULL; i++) {
    guint64 count = 0;

    if (!g_ascii_string_to_unsigned (items[i], 10, 1, FLOOR_MAX_VIEWERS, &count, error)) {
      g_prefix_error (error, "--viewers: ");
      return NULL;
    }
    g_array_append_val (counts, count);
  }

  return g_steal_pointer (&counts);
}

static gboolean
check_options (GError **error)
{
  if (options.n_packets < 0 || options.n_deliveries < 1
      || options.max_seconds <= 0 || options.max_seconds > 600) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--packets must not be negative, --deliveries must be positive "
                 "and --max-seconds in (0, 600]");
    return FALSE;
  }
  if (options.packet_size < 14 || options.packet_size > CIMS_RTP_MAX_PACKET) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--packet-size %d is outside 14..%d bytes", options.packet_size, CIMS_RTP_MAX_PACKET);
    return FALSE;
  }
  if (options.batch_size < 1 || options.batch_size > FLOOR_BATCH_MAX || options.stream_bps < 1) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--batch must be in 1..%d and --stream-bps positive", FLOOR_BATCH_MAX);
    return FALSE;
  }

  return TRUE;
}

static const GOptionEntry option_entries[] = {
  { "viewers", 'k', 0, G_OPTION_ARG_STRING, &options.viewers,
    "Comma-separated viewer counts K to measure (default 100,1000)", "K,K" },
  { "suite", 's', 0, G_OPTION_ARG_STRING, &options.suites,
    "Comma-separated SRTP suites: gcm (AEAD_AES_128_GCM), cm (AES_CM_128_HMAC_SHA1_80); default gcm,cm", "LIST" },
  { "packets", 'n', 0, G_OPTION_ARG_INT64, &options.n_packets,
    "Camera packets relayed per case (default: --deliveries divided by K)", "N" },
  { "deliveries", 'd', 0, G_OPTION_ARG_INT64, &options.n_deliveries,
    "Viewer packets per case when --packets is not given (default 2000000)", "N" },
  { "max-seconds", 't', 0, G_OPTION_ARG_DOUBLE, &options.max_seconds,
    "Wall-clock limit per case in seconds, at most 600 (default 20)", "S" },
  { "stream-bps", 0, 0, G_OPTION_ARG_INT64, &options.stream_bps,
    "Bit rate of one camera stream, sets the packets per second a viewer needs (default 2000000)", "BPS" },
  { "packet-size", 0, 0, G_OPTION_ARG_INT, &options.packet_size,
    "RTP packet size in bytes before SRTP (default 1200)", "BYTES" },
  { "batch", 0, 0, G_OPTION_ARG_INT, &options.batch_size,
    "Datagrams per sendmmsg() call, 1..64 (default 64)", "N" },
  { "cpu", 0, 0, G_OPTION_ARG_INT, &options.cpu,
    "CPU to pin the sending thread to, -1 for none; the receiver takes the next CPU (default 0)", "CPU" },
  { "label", 0, 0, G_OPTION_ARG_STRING, &options.label,
    "Name for this build in key=value output (default the crypto library)", "NAME" },
  { "key-value", 0, 0, G_OPTION_ARG_NONE, &options.is_key_value,
    "Print one key=value line per case instead of a Markdown table", NULL },
  { NULL },
};

/* ---- main ------------------------------------------------------------------ */

static int
receiver_cpu_for (int sender_cpu)
{
  long n_cpus = sysconf (_SC_NPROCESSORS_ONLN);

  if (sender_cpu < 0 || n_cpus < 2)
    return -1;

  return (int) ((sender_cpu + 1) % n_cpus);
}

int
main (int argc, char **argv)
{
  g_autoptr (GOptionContext) context = g_option_context_new ("- measure the SRTP relay floor");
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) counts = NULL;
  g_autofree struct sockaddr_in *addresses = NULL;
  FloorSuite suites[2];
  guint n_suites = 0;
  guint max_viewers = 0;
  guint64 previous_limit = 0;
  FloorReceiver *receiver;
  gboolean has_failed = FALSE;
  int fd;

  g_option_context_add_main_entries (context, option_entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error)
      || !check_options (&error)
      || !parse_suites (options.suites ? options.suites : "gcm,cm", suites, &n_suites, &error)
      || (counts = parse_viewer_counts (options.viewers ? options.viewers : "100,1000", &error)) == NULL) {
    g_printerr ("cimshub-floor: %s\n", error->message);
    return 2;
  }
  if (options.label == NULL)
    options.label = g_strdup (crypto_backend_name ());

  for (guint i = 0; i < counts->len; i++)
    max_viewers = MAX (max_viewers, g_array_index (counts, guint, i));

  if (srtp_init () != srtp_err_status_ok) {
    g_printerr ("cimshub-floor: srtp_init() failed\n");
    return 1;
  }
  /* Each viewer has its own receiving socket. */
  cims_fd_limit_raise (&previous_limit);
  addresses = g_new0 (struct sockaddr_in, max_viewers);
  receiver = receiver_start (max_viewers, addresses, receiver_cpu_for (options.cpu));
  fd = sender_open_socket ();
  pin_current_thread (options.cpu);

  print_header ();
  for (guint s = 0; s < n_suites; s++) {
    for (guint i = 0; i < counts->len; i++) {
      FloorResult result;

      run_case (suites[s], g_array_index (counts, guint, i), addresses, receiver, fd, &result);
      print_result (&result);
      fflush (stdout);
      has_failed |= result.n_sent == 0;
    }
  }

  close (fd);
  receiver_stop (receiver);
  srtp_shutdown ();

  if (has_failed)
    g_printerr ("cimshub-floor: a case sent no packets\n");
  return has_failed ? 1 : 0;
}
