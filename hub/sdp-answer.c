/* SPDX-License-Identifier: Apache-2.0 */
/* Writes the hub's SDP answer to a parsed WHEP offer: one sendonly video
 * m-line, every other m-line rejected. Parsing the offer is sdp-offer.c's job. */

#include "hub/hub-private.h"

#include <string.h>

#include <gst/sdp/sdp.h>

static const char *
codec_encoding_name (CimsCodec codec)
{
  switch (codec) {
  case CIMS_CODEC_H264:
    return "H264";
  case CIMS_CODEC_H265:
    return "H265";
  case CIMS_CODEC_VP8:
    return "VP8";
  case CIMS_CODEC_UNKNOWN:
  default:
    return NULL;
  }
}

static const char *
dtls_setup_to_string (CimsDtlsSetup setup)
{
  return setup == CIMS_DTLS_SETUP_ACTIVE ? "active" : "passive";
}

/* Adds a=<key>:<format> with printf-style formatting. */
static void
media_attribute_add_printf (GstSDPMedia *media, const char *key, const char *format, ...)
  G_GNUC_PRINTF (3, 4);

static void
media_attribute_add_printf (GstSDPMedia *media, const char *key, const char *format, ...)
{
  va_list args;
  g_autofree char *value = NULL;

  va_start (args, format);
  value = g_strdup_vprintf (format, args);
  va_end (args);

  gst_sdp_media_add_attribute (media, key, value);
}

static void
answer_session_add (GstSDPMessage *msg, const CimsSdpOffer *offer,
                    const CimsSdpAnswerParams *params)
{
  /* JSEP (RFC 8829) asks for a random 64-bit session id with the top bit
   * zero. */
  guint64 session_id = ((guint64) g_random_int () << 32 | g_random_int ()) & G_MAXINT64;
  g_autofree char *session_id_text = g_strdup_printf ("%" G_GUINT64_FORMAT, session_id);
  g_autofree char *version_text = g_strdup_printf ("%" G_GUINT64_FORMAT, params->session_version);

  gst_sdp_message_set_version (msg, "0");
  gst_sdp_message_set_origin (msg, "-", session_id_text, version_text, "IN", "IP4", "127.0.0.1");
  gst_sdp_message_set_session_name (msg, "-");
  gst_sdp_message_add_time (msg, "0", "0", NULL);

  /* Rejected m-lines leave the BUNDLE group (RFC 8843), so only the video
   * mid remains. */
  if (offer->has_bundle) {
    g_autofree char *group = g_strdup_printf ("BUNDLE %s", offer->video_mid);

    gst_sdp_message_add_attribute (msg, "group", group);
  }

  if (params->stream_id != NULL) {
    g_autofree char *semantic = g_strdup_printf (" WMS %s", params->stream_id);

    gst_sdp_message_add_attribute (msg, "msid-semantic", semantic);
  }
}

/* Adds ICE credentials, fingerprint and DTLS role. Rejected m-lines get
 * them too: they are outside the BUNDLE group, and a parser that expects a
 * transport description on each m-line then finds one. */
static void
media_transport_add (GstSDPMedia *media, const CimsSdpAnswerParams *params)
{
  gst_sdp_media_add_attribute (media, "ice-ufrag", params->ice_ufrag);
  gst_sdp_media_add_attribute (media, "ice-pwd", params->ice_pwd);
  media_attribute_add_printf (media, "fingerprint", "sha-256 %s", params->fingerprint_sha256);
  gst_sdp_media_add_attribute (media, "setup", dtls_setup_to_string (params->setup));
}

static void
video_feedback_add (GstSDPMedia *media, const CimsSdpCodec *codec)
{
  if (codec->has_nack)
    media_attribute_add_printf (media, "rtcp-fb", "%u nack", codec->payload_type);
  if (codec->has_nack_pli)
    media_attribute_add_printf (media, "rtcp-fb", "%u nack pli", codec->payload_type);
  if (codec->has_ccm_fir)
    media_attribute_add_printf (media, "rtcp-fb", "%u ccm fir", codec->payload_type);
}

static void
video_candidates_add (GstSDPMedia *media, const CimsSdpAnswerParams *params)
{
  guint i;

  for (i = 0; params->local_candidates != NULL && i < params->local_candidates->len; i++) {
    const char *candidate = g_ptr_array_index (params->local_candidates, i);

    if (g_str_has_prefix (candidate, "a="))
      candidate += 2;
    if (g_str_has_prefix (candidate, "candidate:"))
      candidate += strlen ("candidate:");
    gst_sdp_media_add_attribute (media, "candidate", candidate);
  }

  /* The hub gathers its candidates before it replies and never trickles
   * (RFC 8840). */
  gst_sdp_media_add_attribute (media, "end-of-candidates", NULL);
}

static void
video_media_fill (GstSDPMedia *media, const CimsSdpOffer *offer,
                  const CimsSdpAnswerParams *params)
{
  const CimsSdpCodec *codec = params->codec;
  const char *stream_id = params->stream_id != NULL ? params->stream_id : "-";
  g_autofree char *format = g_strdup_printf ("%u", codec->payload_type);

  gst_sdp_media_set_media (media, "video");
  gst_sdp_media_set_port_info (media, 9, 0);
  gst_sdp_media_set_proto (media, "UDP/TLS/RTP/SAVPF");
  gst_sdp_media_add_format (media, format);
  gst_sdp_media_add_connection (media, "IN", "IP4", "0.0.0.0", 0, 0);

  gst_sdp_media_add_attribute (media, "rtcp", "9 IN IP4 0.0.0.0");
  media_transport_add (media, params);
  gst_sdp_media_add_attribute (media, "mid", offer->video_mid);
  gst_sdp_media_add_attribute (media, offer->video_is_recvonly_or_sendrecv ? "sendonly" : "inactive", NULL);
  media_attribute_add_printf (media, "msid", "%s %s", stream_id, params->track_id);
  gst_sdp_media_add_attribute (media, "rtcp-mux", NULL);
  if (offer->has_rtcp_rsize)
    gst_sdp_media_add_attribute (media, "rtcp-rsize", NULL);

  media_attribute_add_printf (media, "rtpmap", "%u %s/%u", codec->payload_type,
                              codec_encoding_name (codec->codec), codec->clock_rate);
  if (params->fmtp != NULL)
    media_attribute_add_printf (media, "fmtp", "%u %s", codec->payload_type, params->fmtp);
  video_feedback_add (media, codec);

  media_attribute_add_printf (media, "ssrc", "%u cname:%s", params->ssrc, params->cname);
  media_attribute_add_printf (media, "ssrc", "%u msid:%s %s", params->ssrc, stream_id, params->track_id);
  video_candidates_add (media, params);
}

/* A rejected m-line keeps its media type, proto and at least one format,
 * with port 0 (RFC 3264). */
static void
rejected_media_fill (GstSDPMedia *media, const CimsSdpMline *mline,
                     const CimsSdpAnswerParams *params)
{
  gst_sdp_media_set_media (media, mline->media != NULL && mline->media[0] != '\0' ? mline->media : "video");
  gst_sdp_media_set_port_info (media, 0, 0);
  gst_sdp_media_set_proto (media, mline->proto != NULL && mline->proto[0] != '\0' ? mline->proto : "UDP/TLS/RTP/SAVPF");
  gst_sdp_media_add_format (media, mline->first_format != NULL && mline->first_format[0] != '\0'
                            ? mline->first_format : "0");
  gst_sdp_media_add_connection (media, "IN", "IP4", "0.0.0.0", 0, 0);

  media_transport_add (media, params);
  if (mline->mid != NULL)
    gst_sdp_media_add_attribute (media, "mid", mline->mid);
  gst_sdp_media_add_attribute (media, "inactive", NULL);
}

char *
cims_sdp_answer_build (const CimsSdpOffer *offer, const CimsSdpAnswerParams *params)
{
  GstSDPMessage *msg = NULL;
  char *text;
  guint i;

  g_return_val_if_fail (offer != NULL, NULL);
  g_return_val_if_fail (params != NULL, NULL);
  g_return_val_if_fail (params->codec != NULL, NULL);
  g_return_val_if_fail (codec_encoding_name (params->codec->codec) != NULL, NULL);
  g_return_val_if_fail (params->setup != CIMS_DTLS_SETUP_ACTPASS, NULL);
  g_return_val_if_fail (params->ice_ufrag != NULL && params->ice_pwd != NULL, NULL);
  g_return_val_if_fail (params->fingerprint_sha256 != NULL, NULL);
  g_return_val_if_fail (params->cname != NULL && params->track_id != NULL, NULL);

  gst_sdp_message_new (&msg);
  answer_session_add (msg, offer, params);

  /* One m-line per offered m-line, in offer order (RFC 3264, RFC 8829). */
  for (i = 0; i < offer->mlines->len; i++) {
    const CimsSdpMline *mline = &g_array_index (offer->mlines, CimsSdpMline, i);
    GstSDPMedia *media = NULL;

    gst_sdp_media_new (&media);
    if (i == offer->video_mline_index)
      video_media_fill (media, offer, params);
    else
      rejected_media_fill (media, mline, params);
    gst_sdp_message_add_media (msg, media);
    gst_sdp_media_free (media);
  }

  text = gst_sdp_message_as_text (msg);
  gst_sdp_message_free (msg);

  return text;
}
