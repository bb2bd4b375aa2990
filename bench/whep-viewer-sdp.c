/* SPDX-License-Identifier: Apache-2.0 */
/* The viewer's SDP: builds its recvonly video offer and reads what it needs
 * from the hub's answer, both with GstSDPMessage. ICE and DTLS use the
 * results elsewhere. */
#include "bench/whep-viewer.h"

#include <string.h>

#include <gst/sdp/sdp.h>

/* Payload types as Chromium numbers them; the hub keeps the offer's. */
#define PAYLOAD_TYPE_H264_BASELINE 102
#define PAYLOAD_TYPE_H264_HIGH 104
#define PAYLOAD_TYPE_H265 106
#define PAYLOAD_TYPE_VP8 96

G_DEFINE_QUARK (cims-whep-viewer-error-quark, cims_whep_viewer_error)

const char *
cims_whep_viewer_setup_to_string (CimsWhepViewerSetup setup)
{
  switch (setup) {
  case CIMS_WHEP_VIEWER_SETUP_ACTIVE:
    return "active";
  case CIMS_WHEP_VIEWER_SETUP_PASSIVE:
    return "passive";
  case CIMS_WHEP_VIEWER_SETUP_ACTPASS:
  default:
    return "actpass";
  }
}

/* ---- offer ---------------------------------------------------------------- */

static void
media_add_printf (GstSDPMedia *media, const char *key, const char *format, ...) G_GNUC_PRINTF (3, 4);

static void
media_add_printf (GstSDPMedia *media, const char *key, const char *format, ...)
{
  va_list args;
  g_autofree char *value = NULL;

  va_start (args, format);
  value = g_strdup_vprintf (format, args);
  va_end (args);

  gst_sdp_media_add_attribute (media, key, value);
}

/* Adds one payload type with PLI feedback: the viewer sends PLIs, never
 * NACKs, so it offers no plain "nack". */
static void
media_codec_add (GstSDPMedia *media, guint payload_type, const char *rtpmap, const char *fmtp)
{
  media_add_printf (media, "rtpmap", "%u %s", payload_type, rtpmap);
  media_add_printf (media, "rtcp-fb", "%u nack pli", payload_type);
  if (fmtp != NULL)
    media_add_printf (media, "fmtp", "%u %s", payload_type, fmtp);
}

static void
media_formats_add (GstSDPMedia *media, const CimsWhepViewerOfferParams *params)
{
  if (!params->omits_h264) {
    gst_sdp_media_add_format (media, G_STRINGIFY (PAYLOAD_TYPE_H264_BASELINE));
    gst_sdp_media_add_format (media, G_STRINGIFY (PAYLOAD_TYPE_H264_HIGH));
  }
  if (params->offers_h265)
    gst_sdp_media_add_format (media, G_STRINGIFY (PAYLOAD_TYPE_H265));
  if (params->offers_vp8)
    gst_sdp_media_add_format (media, G_STRINGIFY (PAYLOAD_TYPE_VP8));

  if (!params->omits_h264) {
    media_codec_add (media, PAYLOAD_TYPE_H264_BASELINE, "H264/90000",
                     "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f");
    media_codec_add (media, PAYLOAD_TYPE_H264_HIGH, "H264/90000",
                     "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f");
  }
  if (params->offers_h265)
    media_codec_add (media, PAYLOAD_TYPE_H265, "H265/90000", NULL);
  if (params->offers_vp8)
    media_codec_add (media, PAYLOAD_TYPE_VP8, "VP8/90000", NULL);
}

/* The answer to a remote offer names only the offered H.264 payload type,
 * which Janus's streaming plugin sends as it came from the source. */
static void
media_answer_formats_add (GstSDPMedia *media, const CimsWhepViewerOfferParams *params)
{
  g_autofree char *format = g_strdup_printf ("%u", params->answer_payload_type);

  gst_sdp_media_add_format (media, format);
  media_codec_add (media, params->answer_payload_type, "H264/90000",
                   "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f");
}

static void
media_transport_add (GstSDPMedia *media, const CimsWhepViewerOfferParams *params)
{
  gst_sdp_media_add_attribute (media, "ice-ufrag", params->ice_ufrag);
  gst_sdp_media_add_attribute (media, "ice-pwd", params->ice_pwd);
  media_add_printf (media, "fingerprint", "sha-256 %s", params->fingerprint_sha256);
  gst_sdp_media_add_attribute (media, "setup", cims_whep_viewer_setup_to_string (params->setup));

  /* Every candidate is in the offer, so the hub needs no trickle (RFC 8840). */
  for (guint i = 0; params->candidates != NULL && i < params->candidates->len; i++) {
    const char *line = g_ptr_array_index (params->candidates, i);

    if (g_str_has_prefix (line, "a="))
      line += 2;
    if (g_str_has_prefix (line, "candidate:"))
      line += strlen ("candidate:");
    gst_sdp_media_add_attribute (media, "candidate", line);
  }
  gst_sdp_media_add_attribute (media, "end-of-candidates", NULL);
}

char *
cims_whep_viewer_offer_build (const CimsWhepViewerOfferParams *params)
{
  GstSDPMessage *msg = NULL;
  GstSDPMedia *media = NULL;
  g_autofree char *session_id = g_strdup_printf ("%u", g_random_int () & G_MAXINT32);
  char *text;

  gst_sdp_message_new (&msg);
  gst_sdp_message_set_version (msg, "0");
  gst_sdp_message_set_origin (msg, "-", session_id, "1", "IN", "IP4", "127.0.0.1");
  gst_sdp_message_set_session_name (msg, "-");
  gst_sdp_message_add_time (msg, "0", "0", NULL);
  if (params->answer_payload_type != 0) {
    g_autofree char *group = g_strdup_printf ("BUNDLE %s", params->answer_mid != NULL ? params->answer_mid : "0");

    gst_sdp_message_add_attribute (msg, "group", group);
  } else {
    gst_sdp_message_add_attribute (msg, "group", "BUNDLE 0");
  }

  gst_sdp_media_new (&media);
  gst_sdp_media_set_media (media, "video");
  gst_sdp_media_set_port_info (media, 9, 0);
  gst_sdp_media_set_proto (media, "UDP/TLS/RTP/SAVPF");
  gst_sdp_media_add_connection (media, "IN", "IP4", "0.0.0.0", 0, 0);
  if (params->answer_payload_type != 0)
    media_answer_formats_add (media, params);
  else
    media_formats_add (media, params);
  gst_sdp_media_add_attribute (media, "rtcp", "9 IN IP4 0.0.0.0");
  media_transport_add (media, params);
  gst_sdp_media_add_attribute (media, "mid", params->answer_mid != NULL ? params->answer_mid : "0");
  gst_sdp_media_add_attribute (media, "recvonly", NULL);
  gst_sdp_media_add_attribute (media, "rtcp-mux", NULL);
  gst_sdp_media_add_attribute (media, "rtcp-rsize", NULL);
  gst_sdp_message_add_media (msg, media);
  gst_sdp_media_free (media);

  text = gst_sdp_message_as_text (msg);
  gst_sdp_message_free (msg);

  return text;
}

/* ---- answer --------------------------------------------------------------- */

static gboolean
answer_error (GError **error, const char *format, ...) G_GNUC_PRINTF (2, 3);

static gboolean
answer_error (GError **error, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  g_set_error (error, CIMS_WHEP_VIEWER_ERROR, CIMS_WHEP_VIEWER_ERROR_INVALID_ANSWER,
               "Invalid SDP answer: %s", message);
  return FALSE;
}

static const char *
attribute_lookup (const GstSDPMessage *msg, const GstSDPMedia *media, const char *key)
{
  const char *value = gst_sdp_media_get_attribute_val (media, key);

  return value != NULL ? value : gst_sdp_message_get_attribute_val (msg, key);
}

static const GstSDPMedia *
answer_video_find (const GstSDPMessage *msg)
{
  for (guint i = 0; i < gst_sdp_message_medias_len (msg); i++) {
    const GstSDPMedia *media = gst_sdp_message_get_media (msg, i);

    if (g_strcmp0 (gst_sdp_media_get_media (media), "video") == 0 && gst_sdp_media_get_port (media) != 0)
      return media;
  }

  return NULL;
}

/* Parses "sha-256 AB:CD:..." into the answer's digest. */
static gboolean
answer_fingerprint_parse (CimsWhepViewerAnswer *answer, const char *value, GError **error)
{
  g_auto (GStrv) parts = value != NULL ? g_strsplit (value, " ", 2) : NULL;
  g_auto (GStrv) pairs = NULL;
  guint n_pairs;

  if (parts == NULL || parts[0] == NULL || parts[1] == NULL)
    return answer_error (error, "no a=fingerprint of the form \"<hash> <hex pairs>\"");

  pairs = g_strsplit (g_strstrip (parts[1]), ":", -1);
  n_pairs = g_strv_length (pairs);
  if (n_pairs == 0 || n_pairs > sizeof answer->fingerprint)
    return answer_error (error, "a=fingerprint has %u hex pairs", n_pairs);

  for (guint i = 0; i < n_pairs; i++) {
    if (strlen (pairs[i]) != 2 || !g_ascii_isxdigit (pairs[i][0]) || !g_ascii_isxdigit (pairs[i][1]))
      return answer_error (error, "a=fingerprint pair \"%s\" is not two hex digits", pairs[i]);
    answer->fingerprint[i] = g_ascii_xdigit_value (pairs[i][0]) << 4 | g_ascii_xdigit_value (pairs[i][1]);
  }

  answer->fingerprint_algorithm = g_ascii_strdown (parts[0], -1);
  answer->fingerprint_size = n_pairs;
  return TRUE;
}

static gboolean
answer_setup_parse (CimsWhepViewerAnswer *answer, const char *value, gboolean is_offer, GError **error)
{
  if (is_offer && g_strcmp0 (value, "actpass") == 0)
    answer->setup = CIMS_WHEP_VIEWER_SETUP_PASSIVE;
  else if (g_strcmp0 (value, "active") == 0)
    answer->setup = CIMS_WHEP_VIEWER_SETUP_ACTIVE;
  else if (g_strcmp0 (value, "passive") == 0)
    answer->setup = CIMS_WHEP_VIEWER_SETUP_PASSIVE;
  else
    return answer_error (error, "a=setup is \"%s\", expected active or passive",
                         value != NULL ? value : "(missing)");

  return TRUE;
}

static CimsCodec
codec_from_encoding (const char *rtpmap_rest)
{
  if (g_ascii_strncasecmp (rtpmap_rest, "H264/", 5) == 0)
    return CIMS_CODEC_H264;
  if (g_ascii_strncasecmp (rtpmap_rest, "H265/", 5) == 0)
    return CIMS_CODEC_H265;
  if (g_ascii_strncasecmp (rtpmap_rest, "VP8/", 4) == 0)
    return CIMS_CODEC_VP8;

  return CIMS_CODEC_UNKNOWN;
}

/* Takes the first format of the m-line and its a=rtpmap. */
static gboolean
answer_codec_parse (CimsWhepViewerAnswer *answer, const GstSDPMedia *video, GError **error)
{
  const char *format = gst_sdp_media_get_format (video, 0);
  guint64 payload_type = 0;

  if (format == NULL || !g_ascii_string_to_unsigned (format, 10, 0, 127, &payload_type, NULL))
    return answer_error (error, "the video m-line has no valid payload type");
  answer->payload_type = (guint8) payload_type;

  for (guint i = 0;; i++) {
    const char *rtpmap = gst_sdp_media_get_attribute_val_n (video, "rtpmap", i);
    char *rest = NULL;

    if (rtpmap == NULL)
      break;
    if (g_ascii_strtoull (rtpmap, &rest, 10) != payload_type || rest == rtpmap || *rest != ' ')
      continue;
    answer->codec = codec_from_encoding (rest + 1);
    break;
  }

  if (answer->codec == CIMS_CODEC_UNKNOWN)
    return answer_error (error, "no a=rtpmap with H264, H265 or VP8 for payload type %s", format);

  return TRUE;
}

static void
answer_ssrc_and_candidates_parse (CimsWhepViewerAnswer *answer, const GstSDPMedia *video)
{
  const char *ssrc = gst_sdp_media_get_attribute_val (video, "ssrc");

  if (ssrc != NULL)
    answer->ssrc = (guint32) g_ascii_strtoull (ssrc, NULL, 10);
  answer->mid = g_strdup (gst_sdp_media_get_attribute_val (video, "mid"));

  answer->candidates = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0;; i++) {
    const char *value = gst_sdp_media_get_attribute_val_n (video, "candidate", i);

    if (value == NULL)
      break;
    g_ptr_array_add (answer->candidates, g_strdup_printf ("a=candidate:%s", value));
  }
}

static gboolean
remote_description_parse (const char *text, gsize size, gboolean is_offer, CimsWhepViewerAnswer *answer,
                          GError **error)
{
  GstSDPMessage *msg = NULL;
  const GstSDPMedia *video;
  gboolean ok = FALSE;

  cims_whep_viewer_answer_clear (answer);
  gst_sdp_message_new (&msg);
  if (gst_sdp_message_parse_buffer ((const guint8 *) text, (guint) size, msg) != GST_SDP_OK) {
    answer_error (error, "GstSDPMessage could not parse it");
    goto out;
  }

  video = answer_video_find (msg);
  if (video == NULL) {
    answer_error (error, "no accepted video m-line");
    goto out;
  }

  answer->ice_ufrag = g_strdup (attribute_lookup (msg, video, "ice-ufrag"));
  answer->ice_pwd = g_strdup (attribute_lookup (msg, video, "ice-pwd"));
  if (answer->ice_ufrag == NULL || answer->ice_pwd == NULL) {
    answer_error (error, "no a=ice-ufrag or a=ice-pwd");
    goto out;
  }

  if (!answer_fingerprint_parse (answer, attribute_lookup (msg, video, "fingerprint"), error)
      || !answer_setup_parse (answer, attribute_lookup (msg, video, "setup"), is_offer, error)
      || !answer_codec_parse (answer, video, error))
    goto out;

  answer_ssrc_and_candidates_parse (answer, video);
  if (answer->candidates->len == 0) {
    answer_error (error, "no a=candidate on the video m-line");
    goto out;
  }
  ok = TRUE;

out:
  gst_sdp_message_free (msg);
  return ok;
}

gboolean
cims_whep_viewer_answer_parse (const char *text, gsize size, CimsWhepViewerAnswer *answer, GError **error)
{
  return remote_description_parse (text, size, FALSE, answer, error);
}

gboolean
cims_whep_viewer_remote_offer_parse (const char *text, gsize size, CimsWhepViewerAnswer *answer,
                                     GError **error)
{
  return remote_description_parse (text, size, TRUE, answer, error);
}

void
cims_whep_viewer_answer_clear (CimsWhepViewerAnswer *answer)
{
  g_clear_pointer (&answer->ice_ufrag, g_free);
  g_clear_pointer (&answer->ice_pwd, g_free);
  g_clear_pointer (&answer->fingerprint_algorithm, g_free);
  g_clear_pointer (&answer->candidates, g_ptr_array_unref);
  g_clear_pointer (&answer->mid, g_free);
  memset (answer, 0, sizeof *answer);
}
