/* SPDX-License-Identifier: Apache-2.0 */
/* Internal helpers shared by the pipelines module's GStreamer files. Code
 * outside pipelines/ does not include this header. */
#pragma once

#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include "pipelines/pipelines.h"

G_BEGIN_DECLS

/* Copies one RTP packet out of @buffer (transfer none). Returns (transfer
 * full) the packet, or NULL when the buffer cannot be mapped or is no valid
 * RTP packet. */
CimsRtpPacket *cims_rtp_packet_new_from_buffer (GstBuffer *buffer, guint32 epoch, gint64 arrival_us);

typedef void (*CimsBufferFunc) (GstBuffer *buffer, gpointer user_data);

/* Pulls the appsink's sample and calls @func for its buffer, or for each
 * buffer of its buffer list, in order. Returns GST_FLOW_FLUSHING when the
 * appsink has no sample (it is stopping), else GST_FLOW_OK. */
GstFlowReturn cims_appsink_pull_buffers (GstAppSink *appsink, CimsBufferFunc func, gpointer user_data);

/* Registers the RTSP extension of rtsp-keep-alive-ext.c. It runs once and
 * must run before the process creates its first rtspsrc. */
void cims_rtsp_keep_alive_ext_register (void);

G_END_DECLS
