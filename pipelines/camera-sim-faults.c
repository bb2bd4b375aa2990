/* SPDX-License-Identifier: Apache-2.0 */
/* Stream faults of a simulated camera served by gst-rtsp-server: a pad probe
 * on the H.264 payloader that rewrites, drops or reorders RTP packets, and the
 * timer that toggles the picture size. Encoder and payloader settings of the
 * faults are chosen in camera-sim-factory.c. */
#include "camera-sim.h"

#include <gst/rtp/gstrtpbuffer.h>

/* The faults that this file implements on a gst-rtsp-server media. */
#define FAULTS_PROBED (CIMS_SIM_FAULT_SPROP_ONLY | CIMS_SIM_FAULT_BFRAMES | CIMS_SIM_FAULT_BIG_KEYFRAME \
                       | CIMS_SIM_FAULT_STAP_A | CIMS_SIM_FAULT_REORDER | CIMS_SIM_FAULT_SILENT \
                       | CIMS_SIM_FAULT_RESIZE | CIMS_SIM_FAULT_NO_MARKER)

/* fault=silent: RTP flows this long after the media starts, then stops. */
#define SILENT_AFTER_US (6 * G_USEC_PER_SEC)
/* fault=resize: seconds between picture size changes. */
#define RESIZE_INTERVAL_S 3

#define H264_NAL_IDR 5
#define H264_NAL_SPS 7
#define H264_NAL_PPS 8
#define H264_NAL_STAP_A 24
#define H264_NAL_FU_A 28

/* What the probe of one media remembers between packets. Used on the
 * payloader's streaming thread only. */
typedef struct {
  const CimsSimCamera *camera;
  guint16 n_dropped;             /* sequence numbers taken out so far */
  gboolean has_frame_timestamp;
  guint32 frame_timestamp;       /* RTP timestamp of the last picture packet */
  gint64 first_packet_us;
  gboolean is_silent;

  /* The access unit being counted for the keyframe log line. */
  guint32 unit_timestamp;
  guint unit_n_packets;
  guint unit_first_type;
  gboolean unit_is_keyframe;
  guint n_keyframes_logged;
} FaultProbe;

/* The size-toggling timer of one media. */
typedef struct {
  GstElement *capsfilter;
  guint width;
  guint height;
  gboolean is_small;
} FaultResize;

static guint
payload_nal_type (const guint8 *payload, guint size)
{
  if (size < 1)
    return 0;
  if ((payload[0] & 0x1f) == H264_NAL_FU_A && size >= 2)
    return payload[1] & 0x1f;
  if ((payload[0] & 0x1f) == H264_NAL_STAP_A && size >= 4)
    return payload[3] & 0x1f;

  return payload[0] & 0x1f;
}

static gboolean
payload_has_idr (const guint8 *payload, guint size)
{
  guint offset = 1;

  if (size < 1 || (payload[0] & 0x1f) != H264_NAL_STAP_A)
    return payload_nal_type (payload, size) == H264_NAL_IDR;

  /* The units of a STAP-A: a 16-bit size, then the NAL unit. */
  while (offset + 3 <= size) {
    guint unit_size = payload[offset] << 8 | payload[offset + 1];

    if ((payload[offset + 2] & 0x1f) == H264_NAL_IDR)
      return TRUE;
    offset += 2 + unit_size;
  }

  return FALSE;
}

/* Logs how many packets carried each of the first keyframes, so that a test
 * can check the fragment count or the STAP-A. */
static void
probe_count_unit (FaultProbe *probe, guint32 timestamp, const guint8 *payload, guint size)
{
  if (probe->unit_n_packets > 0 && timestamp != probe->unit_timestamp) {
    if (probe->unit_is_keyframe && probe->n_keyframes_logged < 5) {
      g_message ("camera=%s: keyframe sent in %u RTP packets, first NAL type %u",
                 probe->camera->mount_path, probe->unit_n_packets, probe->unit_first_type);
      probe->n_keyframes_logged++;
    }
    probe->unit_n_packets = 0;
  }

  if (probe->unit_n_packets == 0) {
    probe->unit_timestamp = timestamp;
    probe->unit_first_type = size > 0 ? payload[0] & 0x1f : 0;
    probe->unit_is_keyframe = FALSE;
  }
  probe->unit_n_packets++;
  probe->unit_is_keyframe |= payload_has_idr (payload, size);
}

/* Applies the per-packet faults to @buffer (writable). Returns FALSE when the
 * packet is to be dropped. */
static gboolean
probe_rewrite_packet (FaultProbe *probe, GstBuffer *buffer)
{
  CimsSimFaultFlags flags = probe->camera->faults.flags;
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  gboolean keeps = TRUE;
  guint8 *payload;
  guint size, type;

  if (!gst_rtp_buffer_map (buffer, GST_MAP_READWRITE, &rtp))
    return TRUE;

  payload = gst_rtp_buffer_get_payload (&rtp);
  size = gst_rtp_buffer_get_payload_len (&rtp);
  type = size > 0 ? payload[0] & 0x1f : 0;

  if ((flags & CIMS_SIM_FAULT_SPROP_ONLY) && (type == H264_NAL_SPS || type == H264_NAL_PPS)) {
    probe->n_dropped++;
    keeps = FALSE;
  } else {
    gst_rtp_buffer_set_seq (&rtp, gst_rtp_buffer_get_seq (&rtp) - probe->n_dropped);
  }

  if (keeps && (flags & CIMS_SIM_FAULT_BFRAMES)) {
    if (type == H264_NAL_SPS || type == H264_NAL_PPS) {
      if (probe->has_frame_timestamp)
        gst_rtp_buffer_set_timestamp (&rtp, probe->frame_timestamp);
      gst_rtp_buffer_set_marker (&rtp, TRUE);
    } else {
      probe->frame_timestamp = gst_rtp_buffer_get_timestamp (&rtp);
      probe->has_frame_timestamp = TRUE;
    }
  }

  if (keeps && (flags & (CIMS_SIM_FAULT_BIG_KEYFRAME | CIMS_SIM_FAULT_STAP_A)))
    probe_count_unit (probe, gst_rtp_buffer_get_timestamp (&rtp), payload, size);

  /* Last, so that the markers fault=bframes puts on parameter sets go too. */
  if (keeps && (flags & CIMS_SIM_FAULT_NO_MARKER))
    gst_rtp_buffer_set_marker (&rtp, FALSE);

  gst_rtp_buffer_unmap (&rtp);
  return keeps;
}

/* fault=reorder: swaps the packets of a list in adjacent pairs, then moves
 * the first packet two places later, e.g. 0 1 2 3 4 5 -> 0 3 1 2 5 4. */
static void
probe_reorder_list (GstBufferList *list)
{
  guint n = gst_buffer_list_length (list);
  GstBuffer *first;

  if (n < 4)
    return;

  for (guint i = 1; i + 1 < n; i += 2) {
    GstBuffer *a = gst_buffer_ref (gst_buffer_list_get (list, i));
    GstBuffer *b = gst_buffer_ref (gst_buffer_list_get (list, i + 1));

    gst_buffer_list_remove (list, i, 2);
    gst_buffer_list_insert (list, i, b);
    gst_buffer_list_insert (list, i + 1, a);
  }

  first = gst_buffer_ref (gst_buffer_list_get (list, 1));
  gst_buffer_list_remove (list, 1, 1);
  gst_buffer_list_insert (list, 3, first);
}

static gboolean
probe_is_silenced (FaultProbe *probe)
{
  gint64 now_us = g_get_monotonic_time ();

  if (!(probe->camera->faults.flags & CIMS_SIM_FAULT_SILENT))
    return FALSE;
  if (probe->first_packet_us == 0) {
    probe->first_packet_us = now_us;
    return FALSE;
  }
  if (now_us - probe->first_packet_us < SILENT_AFTER_US)
    return FALSE;

  if (!probe->is_silent)
    g_message ("camera=%s: stopped sending RTP, the session stays open", probe->camera->mount_path);
  probe->is_silent = TRUE;
  return TRUE;
}

static GstPadProbeReturn
probe_list (FaultProbe *probe, GstPadProbeInfo *info)
{
  GstBufferList *list = gst_buffer_list_make_writable (GST_PAD_PROBE_INFO_BUFFER_LIST (info));

  GST_PAD_PROBE_INFO_DATA (info) = list;
  for (guint i = 0; i < gst_buffer_list_length (list);) {
    GstBuffer *buffer = gst_buffer_list_get_writable (list, i);

    if (probe_rewrite_packet (probe, buffer))
      i++;
    else
      gst_buffer_list_remove (list, i, 1);
  }

  if (probe->camera->faults.flags & CIMS_SIM_FAULT_REORDER)
    probe_reorder_list (list);

  return gst_buffer_list_length (list) > 0 ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
}

static GstPadProbeReturn
probe_cb (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  FaultProbe *probe = user_data;
  GstBuffer *buffer;

  if (probe_is_silenced (probe))
    return GST_PAD_PROBE_DROP;

  if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    return probe_list (probe, info);

  buffer = gst_buffer_make_writable (GST_PAD_PROBE_INFO_BUFFER (info));
  GST_PAD_PROBE_INFO_DATA (info) = buffer;

  return probe_rewrite_packet (probe, buffer) ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
}

static gboolean
resize_toggle_cb (gpointer user_data)
{
  FaultResize *resize = user_data;
  guint width = resize->width, height = resize->height;
  g_autoptr(GstCaps) caps = NULL;

  resize->is_small = !resize->is_small;
  if (resize->is_small) {
    width = (width * 3 / 4) & ~1u;
    height = (height * 3 / 4) & ~1u;
  }

  caps = gst_caps_new_simple ("video/x-raw", "width", G_TYPE_INT, (int) width,
                              "height", G_TYPE_INT, (int) height, NULL);
  g_object_set (resize->capsfilter, "caps", caps, NULL);
  g_message ("picture size changed to %ux%u", width, height);

  return G_SOURCE_CONTINUE;
}

static void
resize_free (gpointer data)
{
  FaultResize *resize = data;

  gst_object_unref (resize->capsfilter);
  g_free (resize);
}

static void
resize_media_unprepared_cb (GstRTSPMedia *media, gpointer user_data)
{
  guint source_id = GPOINTER_TO_UINT (g_object_get_data (G_OBJECT (media), "cims-sim-resize"));

  if (source_id != 0)
    g_source_remove (source_id);
  g_object_set_data (G_OBJECT (media), "cims-sim-resize", NULL);
}

static void
faults_start_resize (const CimsSimCamera *camera, GstRTSPMedia *media, GstElement *bin)
{
  FaultResize *resize;
  guint source_id;
  GstElement *capsfilter = gst_bin_get_by_name (GST_BIN (bin), "resize");

  if (capsfilter == NULL)
    return;

  resize = g_new0 (FaultResize, 1);
  resize->capsfilter = capsfilter;
  resize->width = camera->width;
  resize->height = camera->height;
  source_id = g_timeout_add_seconds_full (G_PRIORITY_DEFAULT, RESIZE_INTERVAL_S, resize_toggle_cb,
                                          resize, resize_free);
  g_object_set_data (G_OBJECT (media), "cims-sim-resize", GUINT_TO_POINTER (source_id));
  g_signal_connect (media, "unprepared", G_CALLBACK (resize_media_unprepared_cb), NULL);
}

void
cims_sim_faults_configure_media (const CimsSimCamera *camera, GstRTSPMedia *media)
{
  g_autoptr(GstElement) bin = NULL;
  g_autoptr(GstElement) payloader = NULL;
  g_autoptr(GstPad) pad = NULL;
  FaultProbe *probe;

  if ((camera->faults.flags & FAULTS_PROBED) == 0)
    return;

  bin = gst_rtsp_media_get_element (media);
  payloader = gst_bin_get_by_name (GST_BIN (bin), "pay0");
  g_assert (payloader != NULL);
  pad = gst_element_get_static_pad (payloader, "src");

  probe = g_new0 (FaultProbe, 1);
  probe->camera = camera;
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST, probe_cb,
                     probe, g_free);

  if (camera->faults.flags & CIMS_SIM_FAULT_RESIZE)
    faults_start_resize (camera, media, bin);
}
