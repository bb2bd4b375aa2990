/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of per-viewer RTP rewriting: header replacement, sequence and
 * timestamp continuity across epochs, synthetic packets and catch-up. */

#include "hub/hub-private.h"

#include <string.h>

#define VIEWER_SSRC 0xcafebabeu
#define VIEWER_PT 102
#define INITIAL_SEQ 1000
#define INITIAL_TS 5000u

typedef struct {
  guint16 seq;
  guint32 ts;
  gboolean marker;
  guint n_csrcs;
  gboolean has_extension;
  guint8 padding;
  const char *payload;
} TestPacketSpec;

/* Returns (transfer full) an RTP packet built from @spec. */
static CimsRtpPacket *
packet_make (const TestPacketSpec *spec, guint32 epoch, gint64 arrival_us)
{
  guint8 data[CIMS_RTP_MAX_PACKET];
  const char *payload = spec->payload != NULL ? spec->payload : "payload";
  gsize size = 12;
  guint i;

  memset (data, 0, sizeof (data));
  data[0] = 0x80 | (spec->padding > 0 ? 0x20 : 0) | (spec->has_extension ? 0x10 : 0) | spec->n_csrcs;
  data[1] = (spec->marker ? 0x80 : 0) | 96;
  data[2] = spec->seq >> 8;
  data[3] = spec->seq & 0xff;
  data[4] = spec->ts >> 24;
  data[5] = (spec->ts >> 16) & 0xff;
  data[6] = (spec->ts >> 8) & 0xff;
  data[7] = spec->ts & 0xff;
  data[8] = data[9] = data[10] = data[11] = 0x11;

  for (i = 0; i < spec->n_csrcs; i++) {
    memset (data + size, 0x22, 4);
    size += 4;
  }

  if (spec->has_extension) {
    /* profile 0xBEDE, one 32-bit word of extension data */
    data[size] = 0xbe;
    data[size + 1] = 0xde;
    data[size + 2] = 0;
    data[size + 3] = 1;
    memset (data + size + 4, 0x33, 4);
    size += 8;
  }

  memcpy (data + size, payload, strlen (payload));
  size += strlen (payload);

  if (spec->padding > 0) {
    memset (data + size, 0, spec->padding);
    size += spec->padding;
    data[size - 1] = spec->padding;
  }

  return cims_rtp_packet_new (data, size, epoch, arrival_us);
}

static CimsRtpPacket *
packet_simple (guint16 seq, guint32 ts, guint32 epoch, gint64 arrival_us)
{
  TestPacketSpec spec = { .seq = seq, .ts = ts };

  return packet_make (&spec, epoch, arrival_us);
}

static guint16
out_seq (const guint8 *out)
{
  return (guint16) (out[2] << 8 | out[3]);
}

static guint32
out_ts (const guint8 *out)
{
  return (guint32) out[4] << 24 | (guint32) out[5] << 16 | (guint32) out[6] << 8 | out[7];
}

static guint32
out_ssrc (const guint8 *out)
{
  return (guint32) out[8] << 24 | (guint32) out[9] << 16 | (guint32) out[10] << 8 | out[11];
}

/* Writes @packet (transfer full) and returns the output header's seq and ts. */
static void
write_packet (CimsRtpRewriter *rewriter, CimsRtpPacket *packet, guint16 *seq, guint32 *ts)
{
  g_autoptr (CimsRtpPacket) owned = packet;
  guint8 out[CIMS_RTP_MAX_PACKET];
  gsize size;

  g_assert_nonnull (owned);
  size = cims_rtp_rewriter_write (rewriter, owned, out, sizeof (out));
  g_assert_cmpuint (size, >=, 12);
  *seq = out_seq (out);
  *ts = out_ts (out);
}

static void
rewriter_init (CimsRtpRewriter *rewriter)
{
  cims_rtp_rewriter_init (rewriter, VIEWER_SSRC, VIEWER_PT, 90000, INITIAL_SEQ, INITIAL_TS);
}

static void
test_rtp_rewrite_replaces_header (void)
{
  static const char payload[] = "\x7c\x85 an IDR fragment";
  TestPacketSpec spec = {
    .seq = 31000, .ts = 123456789, .marker = TRUE, .n_csrcs = 2,
    .has_extension = TRUE, .padding = 4, .payload = payload,
  };
  g_autoptr (CimsRtpPacket) packet = packet_make (&spec, 1, 1000000);
  CimsRtpRewriter rewriter;
  guint8 out[CIMS_RTP_MAX_PACKET];
  gsize size;

  rewriter_init (&rewriter);
  g_assert_nonnull (packet);
  size = cims_rtp_rewriter_write (&rewriter, packet, out, sizeof (out));

  g_assert_cmpuint (size, ==, 12 + strlen (payload));
  g_assert_cmphex (out[0], ==, 0x80);
  g_assert_cmphex (out[1], ==, 0x80 | VIEWER_PT);
  g_assert_cmpuint (out_seq (out), ==, INITIAL_SEQ);
  g_assert_cmpuint (out_ts (out), ==, INITIAL_TS);
  g_assert_cmphex (out_ssrc (out), ==, VIEWER_SSRC);
  g_assert_cmpmem (out + 12, size - 12, payload, strlen (payload));
  g_assert_cmpuint (rewriter.packets_sent, ==, 1);
  g_assert_cmpuint (rewriter.octets_sent, ==, strlen (payload));
}

static void
test_rtp_rewrite_clears_marker (void)
{
  TestPacketSpec spec = { .seq = 1, .ts = 1, .marker = FALSE };
  g_autoptr (CimsRtpPacket) packet = packet_make (&spec, 1, 0);
  CimsRtpRewriter rewriter;
  guint8 out[CIMS_RTP_MAX_PACKET];

  rewriter_init (&rewriter);
  g_assert_cmpuint (cims_rtp_rewriter_write (&rewriter, packet, out, sizeof (out)), >, 0);
  g_assert_cmphex (out[1], ==, VIEWER_PT);
}

static void
test_rtp_rewrite_rejects_small_output (void)
{
  g_autoptr (CimsRtpPacket) packet = packet_simple (1, 1, 1, 0);
  CimsRtpRewriter rewriter;
  guint8 out[16];

  rewriter_init (&rewriter);
  g_assert_cmpuint (cims_rtp_rewriter_write (&rewriter, packet, out, sizeof (out)), ==, 0);
  g_assert_cmpuint (rewriter.packets_sent, ==, 0);
}

static void
test_rtp_rewrite_keeps_gaps_in_epoch (void)
{
  CimsRtpRewriter rewriter;
  guint16 seq;
  guint32 ts;

  rewriter_init (&rewriter);
  write_packet (&rewriter, packet_simple (100, 70000, 1, 0), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ);
  g_assert_cmpuint (ts, ==, INITIAL_TS);

  write_packet (&rewriter, packet_simple (101, 70000, 1, 1000), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 1);
  g_assert_cmpuint (ts, ==, INITIAL_TS);

  /* 102 to 104 were lost: the viewer must see the gap to NACK it. */
  write_packet (&rewriter, packet_simple (105, 79000, 1, 2000), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 5);
  g_assert_cmpuint (ts, ==, INITIAL_TS + 9000);

  /* A late packet keeps its place. */
  write_packet (&rewriter, packet_simple (103, 79000, 1, 3000), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 3);
  g_assert_cmpuint (rewriter.last_out_seq, ==, INITIAL_SEQ + 5);
}

static void
test_rtp_rewrite_continues_across_epochs (void)
{
  CimsRtpRewriter rewriter;
  guint16 seq;
  guint32 ts;

  rewriter_init (&rewriter);
  write_packet (&rewriter, packet_simple (100, 70000, 1, 10000000), &seq, &ts);
  write_packet (&rewriter, packet_simple (101, 79000, 1, 10100000), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 1);
  g_assert_cmpuint (ts, ==, INITIAL_TS + 9000);

  /* The camera reconnected 500 ms later with fresh numbering. */
  write_packet (&rewriter, packet_simple (40000, 3000000000u, 2, 10600000), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 2);
  g_assert_cmpuint (ts, ==, INITIAL_TS + 9000 + 45000);

  write_packet (&rewriter, packet_simple (40002, 3000009000u, 2, 10700000), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 4);
  g_assert_cmpuint (ts, ==, INITIAL_TS + 9000 + 45000 + 9000);
  g_assert_cmpuint (rewriter.epoch, ==, 2);
}

static void
test_rtp_rewrite_advances_ts_at_least_one_tick (void)
{
  CimsRtpRewriter rewriter;
  guint16 seq;
  guint32 ts;

  rewriter_init (&rewriter);
  write_packet (&rewriter, packet_simple (100, 70000, 1, 5000000), &seq, &ts);
  write_packet (&rewriter, packet_simple (9, 1, 2, 5000000), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 1);
  g_assert_cmpuint (ts, ==, INITIAL_TS + 1);
}

static void
test_rtp_rewrite_treats_jump_as_restart (void)
{
  CimsRtpRewriter rewriter;
  guint16 seq;
  guint32 ts;

  rewriter_init (&rewriter);
  write_packet (&rewriter, packet_simple (100, 70000, 1, 0), &seq, &ts);

  /* Forward by 3001 in the same epoch, 20 ms later. */
  write_packet (&rewriter, packet_simple (3101, 900000, 1, 20000), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 1);
  g_assert_cmpuint (ts, ==, INITIAL_TS + 1800);

  /* Backward by 3001, 10 ms later. */
  write_packet (&rewriter, packet_simple (100, 70000, 1, 30000), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 2);
  g_assert_cmpuint (ts, ==, INITIAL_TS + 1800 + 900);

  /* A jump of exactly 3000 is still a gap. */
  write_packet (&rewriter, packet_simple (3100, 73000, 1, 40000), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 2 + 3000);
  g_assert_cmpuint (ts, ==, INITIAL_TS + 1800 + 900 + 3000);
}

static void
test_rtp_rewrite_wraps_seq (void)
{
  CimsRtpRewriter rewriter;
  guint16 seq;
  guint32 ts;

  cims_rtp_rewriter_init (&rewriter, VIEWER_SSRC, VIEWER_PT, 90000, 65534, G_MAXUINT32 - 100);
  write_packet (&rewriter, packet_simple (65535, 4294967000u, 1, 0), &seq, &ts);
  g_assert_cmpuint (seq, ==, 65534);
  write_packet (&rewriter, packet_simple (0, 4294967000u, 1, 0), &seq, &ts);
  g_assert_cmpuint (seq, ==, 65535);
  write_packet (&rewriter, packet_simple (1, 200, 1, 0), &seq, &ts);
  g_assert_cmpuint (seq, ==, 0);
  g_assert_cmpuint (ts, ==, (guint32) (G_MAXUINT32 - 100 + 496));
  write_packet (&rewriter, packet_simple (3, 200, 1, 0), &seq, &ts);
  g_assert_cmpuint (seq, ==, 2);
}

static void
test_rtp_rewrite_synthetic_shifts_offset (void)
{
  CimsRtpRewriter rewriter;
  CimsRtpPacket *synthetic;
  guint16 seq, src_seq;
  guint32 ts;

  rewriter_init (&rewriter);
  write_packet (&rewriter, packet_simple (100, 70000, 1, 0), &seq, &ts);
  write_packet (&rewriter, packet_simple (101, 79000, 1, 0), &seq, &ts);

  synthetic = packet_simple (7, 88000, 1, 0);
  synthetic->is_synthetic = TRUE;
  write_packet (&rewriter, synthetic, &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 2);
  g_assert_cmpuint (ts, ==, INITIAL_TS + 18000);

  write_packet (&rewriter, packet_simple (102, 88000, 1, 0), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 3);
  write_packet (&rewriter, packet_simple (103, 88000, 1, 0), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 4);

  g_assert_true (cims_rtp_rewriter_map_seq_to_source (&rewriter, INITIAL_SEQ + 4, &src_seq));
  g_assert_cmpuint (src_seq, ==, 103);
  /* Sent under the offset before the shift: no longer mapped. */
  g_assert_false (cims_rtp_rewriter_map_seq_to_source (&rewriter, INITIAL_SEQ + 1, &src_seq));
  g_assert_false (cims_rtp_rewriter_map_seq_to_source (&rewriter, INITIAL_SEQ + 2, &src_seq));
}

static void
test_rtp_rewrite_synthetic_starts_stream (void)
{
  CimsRtpRewriter rewriter;
  CimsRtpPacket *synthetic;
  guint16 seq;
  guint32 ts;

  rewriter_init (&rewriter);
  synthetic = packet_simple (0, 123000, 4, 0);
  synthetic->is_synthetic = TRUE;
  write_packet (&rewriter, synthetic, &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ);
  g_assert_cmpuint (ts, ==, INITIAL_TS);

  write_packet (&rewriter, packet_simple (5000, 123000, 4, 0), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 1);
  g_assert_cmpuint (ts, ==, INITIAL_TS);

  write_packet (&rewriter, packet_simple (5002, 132000, 4, 0), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 3);
  g_assert_cmpuint (ts, ==, INITIAL_TS + 9000);
}

/* Writes three cached frames of two packets each, 100 ms apart at source. */
static void
catch_up_frames_write (CimsRtpRewriter *rewriter, guint16 first_seq, guint32 first_ts,
                       guint32 expected_first_ts)
{
  guint frame, i;

  cims_rtp_rewriter_begin_catch_up (rewriter);
  for (frame = 0; frame < 3; frame++) {
    for (i = 0; i < 2; i++) {
      guint16 seq;
      guint32 ts;

      write_packet (rewriter, packet_simple (first_seq + frame * 2 + i, first_ts + frame * 9000, 1, 0),
                    &seq, &ts);
      g_assert_cmpuint (ts, ==, expected_first_ts + frame * 90);
    }
  }
  cims_rtp_rewriter_end_catch_up (rewriter);
}

static void
test_rtp_rewrite_catch_up_steps_frames (void)
{
  CimsRtpRewriter rewriter;
  guint16 seq;
  guint32 ts;

  rewriter_init (&rewriter);
  catch_up_frames_write (&rewriter, 200, 1000000, INITIAL_TS);
  g_assert_cmpuint (rewriter.last_out_seq, ==, INITIAL_SEQ + 5);

  /* The next live frame is 100 ms after the last cached one. */
  write_packet (&rewriter, packet_simple (206, 1027000, 1, 0), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 6);
  g_assert_cmpuint (ts, ==, INITIAL_TS + 180 + 9000);
}

static void
test_rtp_rewrite_catch_up_after_output (void)
{
  CimsRtpRewriter rewriter;
  guint16 seq;
  guint32 ts;

  rewriter_init (&rewriter);
  write_packet (&rewriter, packet_simple (10, 500, 1, 0), &seq, &ts);

  /* The snapshot's numbering is unrelated; it continues the output. */
  catch_up_frames_write (&rewriter, 60000, 2000000, INITIAL_TS + 90);
  g_assert_cmpuint (rewriter.last_out_seq, ==, INITIAL_SEQ + 6);

  write_packet (&rewriter, packet_simple (60006, 2027000, 1, 0), &seq, &ts);
  g_assert_cmpuint (seq, ==, INITIAL_SEQ + 7);
  g_assert_cmpuint (ts, ==, INITIAL_TS + 90 + 180 + 9000);
}

/* Writes @packet (transfer full) again and returns the output timestamp. */
static guint32
write_again_ts (const CimsRtpRewriter *rewriter, CimsRtpPacket *packet)
{
  g_autoptr (CimsRtpPacket) owned = packet;
  guint8 out[CIMS_RTP_MAX_PACKET];
  gsize size = cims_rtp_rewriter_write_again (rewriter, owned, out, sizeof (out));

  g_assert_cmpuint (size, >=, 12);
  return out_ts (out);
}

/* A snapshot packet resent during the snapshot or after it, and a live
 * packet resent, each keep the timestamp they were first sent with. */
static void
test_rtp_rewrite_write_again_keeps_ts (void)
{
  CimsRtpRewriter rewriter;
  guint32 first_ts[3];
  guint32 live_ts;
  guint16 seq;
  guint32 ts;

  rewriter_init (&rewriter);
  cims_rtp_rewriter_begin_catch_up (&rewriter);
  for (guint frame = 0; frame < 3; frame++)
    write_packet (&rewriter, packet_simple (300 + frame, 1000000 + frame * 9000, 1, 0), &seq, &first_ts[frame]);

  g_assert_cmpuint (write_again_ts (&rewriter, packet_simple (300, 1000000, 1, 0)), ==, first_ts[0]);
  g_assert_cmpuint (write_again_ts (&rewriter, packet_simple (301, 1009000, 1, 0)), ==, first_ts[1]);

  cims_rtp_rewriter_end_catch_up (&rewriter);
  write_packet (&rewriter, packet_simple (303, 1027000, 1, 0), &seq, &live_ts);

  g_assert_cmpuint (write_again_ts (&rewriter, packet_simple (300, 1000000, 1, 0)), ==, first_ts[0]);
  g_assert_cmpuint (write_again_ts (&rewriter, packet_simple (302, 1018000, 1, 0)), ==, first_ts[2]);
  g_assert_cmpuint (write_again_ts (&rewriter, packet_simple (303, 1027000, 1, 0)), ==, live_ts);

  /* Writing again leaves the live stream where it was. */
  write_packet (&rewriter, packet_simple (304, 1036000, 1, 0), &seq, &ts);
  g_assert_cmpuint (ts, ==, live_ts + 9000);
}

static void
test_rtp_rewrite_maps_seq_to_source (void)
{
  CimsRtpRewriter rewriter;
  guint16 seq, src_seq = 0;
  guint32 ts;

  rewriter_init (&rewriter);
  g_assert_false (cims_rtp_rewriter_map_seq_to_source (&rewriter, INITIAL_SEQ, &src_seq));

  write_packet (&rewriter, packet_simple (65530, 0, 1, 0), &seq, &ts);
  write_packet (&rewriter, packet_simple (65535, 0, 1, 0), &seq, &ts);
  write_packet (&rewriter, packet_simple (4, 0, 1, 0), &seq, &ts);

  g_assert_true (cims_rtp_rewriter_map_seq_to_source (&rewriter, INITIAL_SEQ, &src_seq));
  g_assert_cmpuint (src_seq, ==, 65530);
  g_assert_true (cims_rtp_rewriter_map_seq_to_source (&rewriter, INITIAL_SEQ + 7, &src_seq));
  g_assert_cmpuint (src_seq, ==, 1);
  g_assert_true (cims_rtp_rewriter_map_seq_to_source (&rewriter, INITIAL_SEQ + 10, &src_seq));
  g_assert_cmpuint (src_seq, ==, 4);
  g_assert_false (cims_rtp_rewriter_map_seq_to_source (&rewriter, INITIAL_SEQ + 11, &src_seq));
  g_assert_false (cims_rtp_rewriter_map_seq_to_source (&rewriter, INITIAL_SEQ - 1, &src_seq));

  /* After a new epoch only the new packets map. */
  write_packet (&rewriter, packet_simple (777, 0, 2, 0), &seq, &ts);
  g_assert_false (cims_rtp_rewriter_map_seq_to_source (&rewriter, INITIAL_SEQ + 10, &src_seq));
  g_assert_true (cims_rtp_rewriter_map_seq_to_source (&rewriter, INITIAL_SEQ + 11, &src_seq));
  g_assert_cmpuint (src_seq, ==, 777);
}

static void
test_rtp_rewrite_counts_for_sender_report (void)
{
  CimsRtpRewriter rewriter;
  TestPacketSpec spec = { .seq = 1, .ts = 0, .payload = "0123456789", .padding = 8 };
  guint16 seq;
  guint32 ts;
  guint i;

  rewriter_init (&rewriter);
  for (i = 0; i < 5; i++) {
    spec.seq = 1 + i;
    write_packet (&rewriter, packet_make (&spec, 1, 0), &seq, &ts);
  }

  g_assert_cmpuint (rewriter.packets_sent, ==, 5);
  g_assert_cmpuint (rewriter.octets_sent, ==, 50);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/rtp-rewrite/replaces-header", test_rtp_rewrite_replaces_header);
  g_test_add_func ("/rtp-rewrite/clears-marker", test_rtp_rewrite_clears_marker);
  g_test_add_func ("/rtp-rewrite/rejects-small-output", test_rtp_rewrite_rejects_small_output);
  g_test_add_func ("/rtp-rewrite/keeps-gaps-in-epoch", test_rtp_rewrite_keeps_gaps_in_epoch);
  g_test_add_func ("/rtp-rewrite/continues-across-epochs", test_rtp_rewrite_continues_across_epochs);
  g_test_add_func ("/rtp-rewrite/advances-ts-at-least-one-tick", test_rtp_rewrite_advances_ts_at_least_one_tick);
  g_test_add_func ("/rtp-rewrite/treats-jump-as-restart", test_rtp_rewrite_treats_jump_as_restart);
  g_test_add_func ("/rtp-rewrite/wraps-seq", test_rtp_rewrite_wraps_seq);
  g_test_add_func ("/rtp-rewrite/synthetic-shifts-offset", test_rtp_rewrite_synthetic_shifts_offset);
  g_test_add_func ("/rtp-rewrite/synthetic-starts-stream", test_rtp_rewrite_synthetic_starts_stream);
  g_test_add_func ("/rtp-rewrite/catch-up-steps-frames", test_rtp_rewrite_catch_up_steps_frames);
  g_test_add_func ("/rtp-rewrite/catch-up-after-output", test_rtp_rewrite_catch_up_after_output);
  g_test_add_func ("/rtp-rewrite/maps-seq-to-source", test_rtp_rewrite_maps_seq_to_source);
  g_test_add_func ("/rtp-rewrite/write-again-keeps-ts", test_rtp_rewrite_write_again_keeps_ts);
  g_test_add_func ("/rtp-rewrite/counts-for-sender-report", test_rtp_rewrite_counts_for_sender_report);

  return g_test_run ();
}
