/* SPDX-License-Identifier: Apache-2.0 */
/* A viewer session's send path: rewriting and SRTP-protecting the source's
 * packets, keyframe snapshots for joins and PLIs, NACK retransmissions and
 * RTCP sender reports. The handshake that keys it is viewer-dtls.c. */
#include "hub/viewer-session-private.h"
#include "hub/udp-batch.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

/* A PLI resends the whole keyframe cache, so one viewer may trigger that at
 * most twice a second. */
#define PLI_MIN_INTERVAL_US (500 * 1000)

/* ---- sending ------------------------------------------------------------ */

/* Counts what the worker sent for this session. Only the session's worker
 * writes these counters, so they need no atomic read-modify-write: shared
 * atomics on the hot path would bounce one cache line between cores. */
static void
count_sent (CimsViewerSession *session, guint n_sent, guint64 n_bytes, guint n_dropped)
{
  CimsWorkerCounters *counters = cims_worker_get_counters (session->worker);

  CIMS_COUNTER_ADD (session->packets_sent, n_sent);
  CIMS_COUNTER_ADD (session->bytes_sent, n_bytes);
  CIMS_COUNTER_ADD (counters->packets_relayed, n_sent);
  CIMS_COUNTER_ADD (counters->bytes_relayed, n_bytes);
  if (n_dropped > 0)
    CIMS_COUNTER_ADD (counters->packets_dropped, n_dropped);
}

/* Sends one protected datagram to the viewer. */
static gboolean
send_datagram (CimsViewerSession *session, const guint8 *buffer, int length)
{
  ssize_t sent;

  if (session->send_socket == NULL)
    return nice_agent_send (session->agent, session->stream_id, 1, (guint) length,
                            (const char *) buffer) >= 0;

  /* A full socket buffer drops the packet for this viewer only: NACK or the
   * next keyframe repairs it, and no other viewer waits. */
  sent = sendto (g_socket_get_fd (session->send_socket), buffer, (size_t) length,
                 MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *) &session->peer,
                 session->peer_size);
  return sent == length;
}

/* Protects and sends one rewritten packet in @buffer (@size bytes of RTP,
 * with room for the SRTP trailer). */
static void
send_protected (CimsViewerSession *session, guint8 *buffer, gsize size)
{
  int length = (int) size;

  if (srtp_protect (session->srtp_out, buffer, &length) != srtp_err_status_ok
      || !send_datagram (session, buffer, length)) {
    count_sent (session, 0, 0, 1);
    return;
  }

  count_sent (session, 1, (guint64) length, 0);
}

void
cims_viewer_session_update_send_path (CimsViewerSession *session)
{
  NiceCandidate *local = NULL;
  NiceCandidate *remote = NULL;
  GSocket *socket;

  g_clear_object (&session->send_socket);

  /* NULL for TCP or relayed pairs, which keep going through libnice. */
  socket = nice_agent_get_selected_socket (session->agent, session->stream_id, 1);
  if (socket == NULL)
    return;

  if (!nice_agent_get_selected_pair (session->agent, session->stream_id, 1, &local, &remote)) {
    g_object_unref (socket);
    return;
  }

  /* DF set: the kernel then skips generating an IP id per datagram, a
   * measurable share of the send cost; RTP packets are sized below the MTU. */
  if (nice_address_ip_version (&remote->addr) == 4) {
    int discover = IP_PMTUDISC_DO;
    setsockopt (g_socket_get_fd (socket), IPPROTO_IP, IP_MTU_DISCOVER, &discover, sizeof discover);
  }

  memset (&session->peer, 0, sizeof session->peer);
  nice_address_copy_to_sockaddr (&remote->addr, (struct sockaddr *) &session->peer);
  session->peer_size = nice_address_ip_version (&remote->addr) == 6 ? sizeof (struct sockaddr_in6)
                                                                     : sizeof (struct sockaddr_in);
  session->send_socket = socket;
}

/* Datagrams handed to the kernel per sendmmsg() call. */
#define SEND_BATCH 32
G_STATIC_ASSERT (SEND_BATCH <= CIMS_UDP_BATCH_MAX);

typedef struct {
  guint8 data[CIMS_RTP_MAX_PACKET + SRTP_MAX_OVERHEAD];
} Datagram;

/* Sends @n protected datagrams to the viewer with one sendmmsg(), merged by
 * GSO unless the kernel rejected GSO for this viewer once. Returns how many
 * the kernel took. */
static guint
send_batch (CimsViewerSession *session, Datagram *datagrams, const int *lengths, guint n)
{
  struct iovec vectors[SEND_BATCH];
  CimsUdpBatchResult result = { 0 };
  guint n_sent = 0;

  if (session->send_socket == NULL) {
    for (guint i = 0; i < n; i++) {
      gboolean sent = send_datagram (session, datagrams[i].data, lengths[i]);
      count_sent (session, sent ? 1 : 0, sent ? (guint64) lengths[i] : 0, sent ? 0 : 1);
      n_sent += sent ? 1 : 0;
    }
    return n_sent;
  }

  for (guint i = 0; i < n; i++) {
    vectors[i].iov_base = datagrams[i].data;
    vectors[i].iov_len = (size_t) lengths[i];
  }

  cims_udp_send_batch (g_socket_get_fd (session->send_socket), (const struct sockaddr *) &session->peer,
                       session->peer_size, vectors, n, !session->is_gso_rejected, &result);
  if (result.gso_error != 0) {
    session->is_gso_rejected = TRUE;
    cims_session_message (session, "UDP GSO to this viewer failed (%s); sending each packet alone from now on",
                          g_strerror (result.gso_error));
  }

  count_sent (session, result.n_sent, result.n_bytes, n - result.n_sent);
  return result.n_sent;
}

/* Counts the relay delay of @n packets sent just now from a batch whose
 * first packet arrived at @first_arrival_us. Each packet counts at that
 * first, longest delay, so the histogram errs long by at most the time the
 * batch took to arrive. Only the session's worker writes these counters. */
static void
count_relay_delay (CimsViewerSession *session, gint64 first_arrival_us, guint n)
{
  CimsWorkerCounters *counters = cims_worker_get_counters (session->worker);
  gint64 delay_us = MAX (g_get_monotonic_time () - first_arrival_us, 0);

  CIMS_COUNTER_ADD (counters->relay_delay_counts[cims_relay_delay_bucket (delay_us)], n);
  CIMS_COUNTER_ADD (counters->relay_delay_sum_us, (guint64) delay_us * n);
}

/* Rewrites, protects and sends @n_packets packets, up to SEND_BATCH per
 * sendmmsg(). Live packets count in the relay-delay histogram; a keyframe
 * snapshot's do not. */
static void
send_packets (CimsViewerSession *session, CimsRtpPacket *const *packets, guint n_packets, gboolean is_live)
{
  Datagram datagrams[SEND_BATCH];
  int lengths[SEND_BATCH];
  gint64 first_arrival_us = 0;
  guint n = 0;
  guint n_sent;

  for (guint i = 0; i < n_packets; i++) {
    gsize size = cims_rtp_rewriter_write (&session->rewriter, packets[i], datagrams[n].data, CIMS_RTP_MAX_PACKET);

    lengths[n] = (int) size;
    if (size == 0 || srtp_protect (session->srtp_out, datagrams[n].data, &lengths[n]) != srtp_err_status_ok) {
      count_sent (session, 0, 0, 1);
      continue;
    }
    if (n == 0)
      first_arrival_us = packets[i]->arrival_us;
    if (++n == SEND_BATCH) {
      n_sent = send_batch (session, datagrams, lengths, n);
      if (is_live)
        count_relay_delay (session, first_arrival_us, n_sent);
      n = 0;
    }
  }

  if (n > 0) {
    n_sent = send_batch (session, datagrams, lengths, n);
    if (is_live)
      count_relay_delay (session, first_arrival_us, n_sent);
  }
}

/* A keyframe snapshot goes out SNAPSHOT_BURST_PACKETS at a time, one burst
 * every SNAPSHOT_PACE_INTERVAL_MS: 32,000 packets a second, about 300 Mbit/s
 * with 1,200-byte packets. A keyframe of 300 packets then arrives within
 * 10 ms. Sent at once, a keyframe of 1,600 packets overflowed the receive
 * buffer of a viewer busy with other work. */
#define SNAPSHOT_BURST_PACKETS 64
#define SNAPSHOT_PACE_INTERVAL_MS 2
/* A viewer that joins while a keyframe is still arriving gets the part
 * cached so far, and the rest is paced too as it arrives. Pacing ends when
 * a packet that ends the frame went out, or after this many empty bursts. */
#define SNAPSHOT_FRAME_END_WAIT_BURSTS 50

static void
snapshot_catch_up_end_if_sent (CimsViewerSession *session)
{
  const CimsSnapshotPacer *pacer = &session->snapshot_pacer;

  if (session->rewriter.is_catching_up && pacer->next >= pacer->snapshot_length)
    cims_rtp_rewriter_end_catch_up (&session->rewriter);
}

/* Sends the next burst of the snapshot in progress and of the live packets
 * queued behind it. Catch-up timestamps end with the snapshot's last packet.
 * Packets queued behind the snapshot stay out of the relay-delay histogram:
 * their wait is this viewer's join, not the relay. */
static void
snapshot_burst_send (CimsViewerSession *session)
{
  CimsSnapshotPacer *pacer = &session->snapshot_pacer;
  guint budget = SNAPSHOT_BURST_PACKETS;
  CimsRtpPacket *const *packets;
  gboolean is_snapshot;
  guint n;

  while (budget > 0 && (n = cims_snapshot_pacer_take (pacer, budget, &packets, &is_snapshot)) > 0) {
    send_packets (session, packets, n, FALSE);
    budget -= n;
    snapshot_catch_up_end_if_sent (session);
  }
  cims_snapshot_pacer_end_burst (pacer);

  /* An empty snapshot ends catch-up at once. */
  snapshot_catch_up_end_if_sent (session);
}

/* Ends pacing once every queued packet went out and the last one ended
 * its frame, or the wait for that frame's end is over. */
static gboolean
snapshot_pacing_finish_if_done (CimsViewerSession *session)
{
  if (!cims_snapshot_pacer_is_done (&session->snapshot_pacer, SNAPSHOT_FRAME_END_WAIT_BURSTS))
    return FALSE;

  cims_snapshot_pacer_clear (&session->snapshot_pacer);
  return TRUE;
}

static gboolean
snapshot_pace_cb (gpointer user_data)
{
  CimsViewerSession *session = user_data;

  /* Teardown, queued on this context, destroys the timer. Until then the
   * closed session sends nothing more. */
  if (atomic_load (&session->is_closed)) {
    session->snapshot_timer = NULL;
    return G_SOURCE_REMOVE;
  }

  snapshot_burst_send (session);
  if (!snapshot_pacing_finish_if_done (session))
    return G_SOURCE_CONTINUE;

  session->snapshot_timer = NULL;
  return G_SOURCE_REMOVE;
}

/* Dispatches the pacing timer and counts the next interval from the end of
 * the burst just sent. A GLib timeout counts it from the time that its
 * context cached at the prepare before the pass. When a pass ran more than
 * one interval after that prepare, the next burst was due at once, and the
 * bursts went out back to back. */
static gboolean
pace_timer_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  if (!callback (user_data))
    return G_SOURCE_REMOVE;

  g_source_set_ready_time (source, g_get_monotonic_time () + SNAPSHOT_PACE_INTERVAL_MS * 1000);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs pace_timer_funcs = { .dispatch = pace_timer_dispatch };

static GSource *
pace_timer_new (CimsViewerSession *session)
{
  GSource *timer = g_source_new (&pace_timer_funcs, sizeof (GSource));

  g_source_set_name (timer, "cimshub snapshot pacing");
  g_source_set_ready_time (timer, g_get_monotonic_time () + SNAPSHOT_PACE_INTERVAL_MS * 1000);
  g_source_set_callback (timer, snapshot_pace_cb, session, NULL);
  return timer;
}

/* Sends the cached keyframe and what followed it: the first burst now, the
 * rest from a pacing timer in the viewer group's context. */
static void
send_snapshot (CimsViewerSession *session, GPtrArray *snapshot)
{
  session->waiting_for_keyframe = FALSE;
  session->last_snapshot_us = g_get_monotonic_time ();
  CIMS_METRIC_ADD (session->hub, keyframe_snapshots_sent, 1);

  cims_rtp_rewriter_begin_catch_up (&session->rewriter);
  cims_snapshot_pacer_start (&session->snapshot_pacer, snapshot);
  snapshot_burst_send (session);
  if (snapshot_pacing_finish_if_done (session))
    return;

  session->snapshot_timer = pace_timer_new (session);
  g_source_attach (session->snapshot_timer, session->group_context);
  g_source_unref (session->snapshot_timer);
  /* This runs in the feed drain, outside any pass of the group, and an
   * attach on the owner thread does not wake the context. */
  g_main_context_wakeup (session->group_context);
}

void
cims_viewer_session_media_stop (CimsViewerSession *session)
{
  g_clear_pointer (&session->snapshot_timer, g_source_destroy);
  cims_snapshot_pacer_clear (&session->snapshot_pacer);
}

static gboolean
session_takes_pli (CimsViewerSession *session)
{
  /* A plain load first: the exchange is a full barrier, paid only on a PLI. */
  if (!atomic_load_explicit (&session->wants_keyframe, memory_order_relaxed)
      || !atomic_exchange (&session->wants_keyframe, 0))
    return FALSE;

  return g_get_monotonic_time () - session->last_snapshot_us >= PLI_MIN_INTERVAL_US;
}

void
cims_viewer_session_deliver (CimsViewerSession *session, CimsKeyframeCache *cache,
                             CimsRtpPacket *const *packets, guint n_packets)
{
  gboolean wants_snapshot;

  if (!atomic_load (&session->is_media_ready) || atomic_load (&session->is_closed))
    return;

  /* Behind a snapshot still being sent. A PLI that arrives meanwhile is
   * taken after it, within the PLI limit counted from the snapshot's start. */
  if (session->snapshot_timer != NULL) {
    cims_snapshot_pacer_queue (&session->snapshot_pacer, packets, n_packets);
    return;
  }

  wants_snapshot = session->waiting_for_keyframe || session_takes_pli (session);
  if (!wants_snapshot) {
    send_packets (session, packets, n_packets, TRUE);
  } else if (cims_keyframe_cache_has_keyframe (cache)) {
    send_snapshot (session, cims_keyframe_cache_snapshot (cache));
  } else if (!session->waiting_for_keyframe) {
    /* A PLI with no keyframe cached: the next keyframe reaches this viewer
     * in the normal stream. */
    send_packets (session, packets, n_packets, TRUE);
  }
}

/* ---- RTCP ---------------------------------------------------------------- */

static guint64
ntp_time_now (void)
{
  /* NTP counts from 1900, Unix from 1970: 2208988800 s apart. */
  gint64 now_us = g_get_real_time ();
  guint64 seconds = (guint64) (now_us / G_USEC_PER_SEC) + G_GUINT64_CONSTANT (2208988800);
  guint64 fraction = ((guint64) (now_us % G_USEC_PER_SEC) << 32) / G_USEC_PER_SEC;

  return (seconds << 32) | fraction;
}

void
cims_viewer_session_send_report (CimsViewerSession *session)
{
  guint8 buffer[256 + SRTP_MAX_OVERHEAD];
  CimsRtpRewriter *rewriter = &session->rewriter;
  gsize size;
  int length;
  guint32 rtp_ts;

  /* During a snapshot the last packet sent is an old cached one, so the RTP
   * time extrapolated from it would run ahead of the live packets. */
  if (session->srtp_out == NULL || !rewriter->started || atomic_load (&session->is_closed)
      || session->snapshot_timer != NULL)
    return;

  /* The RTP time now, extrapolated from the last packet sent. */
  rtp_ts = rewriter->last_out_ts
           + (guint32) ((g_get_monotonic_time () - rewriter->last_out_us) * rewriter->clock_rate
                        / G_USEC_PER_SEC);
  size = cims_rtcp_build_sender_report (buffer, 256, rewriter->ssrc, ntp_time_now (), rtp_ts,
                                        (guint32) rewriter->packets_sent,
                                        (guint32) rewriter->octets_sent, session->cname);
  length = (int) size;
  if (size > 0 && srtp_protect_rtcp (session->srtp_out, buffer, &length) == srtp_err_status_ok)
    send_datagram (session, buffer, length);
}

static void
retransmit (CimsViewerSession *session, guint16 out_seq)
{
  guint8 buffer[CIMS_RTP_MAX_PACKET + SRTP_MAX_OVERHEAD];
  CimsRtpPacket *packet;
  guint16 src_seq;
  gsize size;

  if (session->feed == NULL || !cims_rtp_rewriter_map_seq_to_source (&session->rewriter, out_seq, &src_seq))
    return;

  packet = cims_keyframe_cache_lookup (cims_feed_get_cache (session->feed), src_seq);
  if (packet == NULL)
    return;

  size = cims_rtp_rewriter_write_again (&session->rewriter, packet, buffer, CIMS_RTP_MAX_PACKET);
  if (size > 0) {
    send_protected (session, buffer, size);
    CIMS_METRIC_ADD (session->hub, retransmissions_sent, 1);
  }
}

void
cims_viewer_session_handle_rtcp (CimsViewerSession *session, const guint8 *data, gsize size)
{
  guint8 buffer[CIMS_RTP_MAX_PACKET];
  g_autoptr (GArray) nacked = g_array_new (FALSE, FALSE, sizeof (guint16));
  CimsRtcpSummary summary = { .nacked_seqs = nacked };
  int length = (int) size;

  if (size > sizeof buffer || session->srtp_in == NULL)
    return;

  memcpy (buffer, data, size);
  /* Replayed or damaged SRTCP is routine on lossy links: debug only. */
  if (srtp_unprotect_rtcp (session->srtp_in, buffer, &length) != srtp_err_status_ok) {
    cims_session_debug (session, "SRTCP packet of %" G_GSIZE_FORMAT " bytes failed to unprotect", size);
    return;
  }

  cims_rtcp_parse_compound (buffer, (gsize) length, session->ssrc, &summary);

  if (summary.feedback & (CIMS_RTCP_FEEDBACK_PLI | CIMS_RTCP_FEEDBACK_FIR)) {
    CimsTranscoder *transcoder = cims_source_get_transcoder (session->source);

    CIMS_METRIC_ADD (session->hub, plis_received, 1);
    atomic_store (&session->wants_keyframe, 1);
    /* The transcoder limits these to one per 500 ms over all its viewers. */
    if (transcoder != NULL)
      cims_transcoder_request_keyframe (transcoder);
  }

  if (summary.feedback & CIMS_RTCP_FEEDBACK_NACK) {
    CIMS_METRIC_ADD (session->hub, nacks_received, 1);
    for (guint i = 0; i < nacked->len; i++)
      retransmit (session, g_array_index (nacked, guint16, i));
  }
}

void
cims_viewer_session_media_start (CimsViewerSession *session)
{
  cims_rtp_rewriter_init (&session->rewriter, session->ssrc, session->codec.payload_type,
                          session->codec.clock_rate ? session->codec.clock_rate : 90000,
                          (guint16) cims_viewer_session_random_u32 (), cims_viewer_session_random_u32 ());
  session->waiting_for_keyframe = TRUE;
  cims_viewer_session_update_send_path (session);

  atomic_store (&session->is_media_ready, 1);
  /* The worker's one report timer sends this session's sender reports. */
  session->feed = cims_worker_subscribe (session->worker, session->source, session);
}
