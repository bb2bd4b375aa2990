/* SPDX-License-Identifier: Apache-2.0 */
/* Turns what an appsink hands over (one buffer or a buffer list of RTP
 * packets) into CimsRtpPacket, for the ingest and the transcoder alike. */
#include "pipelines/pipelines-private.h"

CimsRtpPacket *
cims_rtp_packet_new_from_buffer (GstBuffer *buffer, guint32 epoch, gint64 arrival_us)
{
  CimsRtpPacket *packet;
  GstMapInfo map;

  if (!gst_buffer_map (buffer, &map, GST_MAP_READ))
    return NULL;
  packet = cims_rtp_packet_new (map.data, map.size, epoch, arrival_us);
  gst_buffer_unmap (buffer, &map);
  return packet;
}

GstFlowReturn
cims_appsink_pull_buffers (GstAppSink *appsink, CimsBufferFunc func, gpointer user_data)
{
  g_autoptr (GstSample) sample = gst_app_sink_pull_sample (appsink);
  GstBufferList *list;

  if (sample == NULL)
    return GST_FLOW_FLUSHING;

  list = gst_sample_get_buffer_list (sample);
  if (list == NULL) {
    func (gst_sample_get_buffer (sample), user_data);
    return GST_FLOW_OK;
  }

  for (guint i = 0; i < gst_buffer_list_length (list); i++)
    func (gst_buffer_list_get (list, i), user_data);
  return GST_FLOW_OK;
}
