/* SPDX-License-Identifier: Apache-2.0 */
/* The choice between relaying a camera's stream and transcoding it for one
 * viewer, from the viewer's SDP offer and profile. Parsing the offer is
 * sdp-offer.c's job and running the transcode is pipelines/transcode.c's. */
#include "hub/hub-private.h"

#include <stdarg.h>
#include <string.h>

#define H264_PROFILE_IDC_BASELINE 0x42
/* constraint_set1_flag in the profile-iop byte (RFC 6184 section 8.1). With
 * profile_idc 0x42 it marks constrained baseline, "42e0xx" in SDP. */
#define H264_CONSTRAINT_SET1 0x40

/* The codecs the transcoder can produce, in the order they are preferred. */
static const CimsCodec transcode_outputs[] = { CIMS_CODEC_H264, CIMS_CODEC_VP8 };

/* ---- H.264 profile-level-id ------------------------------------------------ */

static guint8
h264_profile_idc (guint32 profile_level_id)
{
  return (profile_level_id >> 16) & 0xff;
}

static gboolean
h264_is_constrained_baseline (guint32 profile_level_id)
{
  return h264_profile_idc (profile_level_id) == H264_PROFILE_IDC_BASELINE
         && ((profile_level_id >> 8) & H264_CONSTRAINT_SET1) != 0;
}

/* Whether an offer entry of @offered accepts the camera's @camera stream.
 * Levels are not compared: WebRTC offers carry level-asymmetry-allowed=1,
 * and a decoder below the stream's level still decodes it in practice. */
static gboolean
h264_accepts_camera (guint32 offered, guint32 camera)
{
  if (h264_profile_idc (offered) == h264_profile_idc (camera))
    return TRUE;

  return h264_is_constrained_baseline (offered) && h264_profile_idc (camera) == H264_PROFILE_IDC_BASELINE;
}

/* Ranks an entry for the transcoder's constrained-baseline output: lower is
 * better. Baseline, main and high decoders all decode constrained baseline. */
static guint
h264_output_rank (guint32 offered)
{
  if (h264_is_constrained_baseline (offered))
    return 0;
  if (h264_profile_idc (offered) == H264_PROFILE_IDC_BASELINE)
    return 1;
  return 2;
}

/* ---- the viewer profile ----------------------------------------------------- */

static const char *
codec_config_name (CimsCodec codec)
{
  switch (codec)
    {
    case CIMS_CODEC_H264:
      return "h264";
    case CIMS_CODEC_H265:
      return "h265";
    case CIMS_CODEC_VP8:
      return "vp8";
    case CIMS_CODEC_UNKNOWN:
    default:
      return "";
    }
}

static const char *
codec_display_name (CimsCodec codec)
{
  switch (codec)
    {
    case CIMS_CODEC_H264:
      return "H.264";
    case CIMS_CODEC_H265:
      return "H.265";
    case CIMS_CODEC_VP8:
      return "VP8";
    case CIMS_CODEC_UNKNOWN:
    default:
      return "an unknown codec";
    }
}

static gboolean
profile_allows_codec (const CimsConfigProfile *profile, CimsCodec codec)
{
  return profile->codecs != NULL && g_strv_contains ((const char *const *) profile->codecs, codec_config_name (codec));
}

/* An empty h264_profiles list allows every H.264 profile. */
static gboolean
profile_allows_h264_profile (const CimsConfigProfile *profile, guint32 profile_level_id)
{
  char hex[7];

  if (profile->h264_profiles == NULL || profile->h264_profiles[0] == NULL)
    return TRUE;

  g_snprintf (hex, sizeof hex, "%06x", profile_level_id & 0xffffff);
  for (gsize i = 0; profile->h264_profiles[i] != NULL; i++)
    if (g_ascii_strncasecmp (hex, profile->h264_profiles[i], strlen (profile->h264_profiles[i])) == 0)
      return TRUE;

  return FALSE;
}

static gboolean
within_limit (guint value, guint limit)
{
  return value == 0 || limit == 0 || value <= limit;
}

/* ---- the offer ----------------------------------------------------------------- */

/* Returns (transfer none) the offer's entry that can carry the camera's
 * own stream, or NULL. An unknown camera profile (0) takes the first
 * packetization-mode=1 entry, as the hub cannot check it. */
static const CimsSdpCodec *
offer_find_relay_entry (const CimsSdpOffer *offer, const CimsCameraVideo *video)
{
  for (guint i = 0; i < offer->video_codecs->len; i++)
    {
      const CimsSdpCodec *entry = &g_array_index (offer->video_codecs, CimsSdpCodec, i);

      if (entry->codec != video->codec)
        continue;
      if (video->codec != CIMS_CODEC_H264)
        return entry;

      /* Camera H.264 is fragmented with FU-A, which needs packetization-mode=1. */
      if (entry->h264_packetization_mode == 1
          && (video->h264_profile_level_id == 0
              || h264_accepts_camera (entry->h264_profile_level_id, video->h264_profile_level_id)))
        return entry;
    }

  return NULL;
}

/* Returns (transfer none) the best entry for the transcoder's @codec
 * output, or NULL. */
static const CimsSdpCodec *
offer_find_output_entry (const CimsSdpOffer *offer, CimsCodec codec)
{
  const CimsSdpCodec *best = NULL;

  for (guint i = 0; i < offer->video_codecs->len; i++)
    {
      const CimsSdpCodec *entry = &g_array_index (offer->video_codecs, CimsSdpCodec, i);

      if (entry->codec != codec)
        continue;
      if (codec != CIMS_CODEC_H264)
        return entry;
      if (entry->h264_packetization_mode != 1)
        continue;
      if (best == NULL || h264_output_rank (entry->h264_profile_level_id) < h264_output_rank (best->h264_profile_level_id))
        best = entry;
    }

  return best;
}

static gboolean
encoding_is_codec (const char *encoding)
{
  static const char *const not_codecs[] = { "rtx", "red", "ulpfec", "flexfec-03" };

  for (gsize i = 0; i < G_N_ELEMENTS (not_codecs); i++)
    if (g_ascii_strcasecmp (encoding, not_codecs[i]) == 0)
      return FALSE;

  return TRUE;
}

/* Returns (transfer full) the offer's video codecs for a message, e.g.
 * "AV1, VP9", repair formats (RTX, RED, FEC) left out. */
static gchar *
offer_describe_encodings (const CimsSdpOffer *offer)
{
  GString *list = g_string_new (NULL);

  for (guint i = 0; offer->video_encodings != NULL && i < offer->video_encodings->len; i++)
    {
      const char *encoding = g_ptr_array_index (offer->video_encodings, i);

      if (!encoding_is_codec (encoding) || strstr (list->str, encoding) != NULL)
        continue;
      if (list->len > 0)
        g_string_append (list, ", ");
      g_string_append (list, encoding);
    }

  if (list->len == 0)
    g_string_append (list, "no video codec");

  return g_string_free (list, FALSE);
}

/* ---- the decision ----------------------------------------------------------------- */

static void G_GNUC_PRINTF (2, 3)
negotiation_set_reason (CimsNegotiation *negotiation, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  g_vsnprintf (negotiation->reason, sizeof negotiation->reason, format, args);
  va_end (args);
}

/* Returns NULL when the camera's stream can be relayed as is, otherwise a
 * static description of why not, for the reason text. */
static const char *
relay_obstacle (const CimsSdpOffer *offer, const CimsCameraVideo *video, const CimsConfigProfile *profile,
                const CimsSdpCodec **entry)
{
  *entry = NULL;

  if (!profile_allows_codec (profile, video->codec))
    return "the profile does not allow the camera's codec";
  if (video->codec == CIMS_CODEC_H264 && video->h264_profile_level_id != 0
      && !profile_allows_h264_profile (profile, video->h264_profile_level_id))
    return "the profile does not allow the camera's H.264 profile";

  *entry = offer_find_relay_entry (offer, video);
  if (*entry == NULL)
    return video->codec == CIMS_CODEC_H264
           ? "the offer has no H.264 entry with packetization-mode=1 and the camera's profile"
           : "the offer does not include the camera's codec";

  if (!within_limit (video->width, profile->max_width) || !within_limit (video->height, profile->max_height))
    return "the camera's picture is larger than the profile allows";
  if (!within_limit (video->fps, profile->max_fps))
    return "the camera's frame rate is higher than the profile allows";

  return NULL;
}

static void
negotiation_set_relay (CimsNegotiation *negotiation, const CimsCameraVideo *video, const CimsSdpCodec *entry)
{
  negotiation->mode = CIMS_NEGOTIATION_RELAY;
  negotiation->offer_codec = entry;
  negotiation->output_codec = video->codec;
  negotiation->output_width = video->width;
  negotiation->output_height = video->height;
  negotiation->output_fps = video->fps;
  negotiation->output_kbps = 0;

  if (video->codec == CIMS_CODEC_H264 && video->h264_profile_level_id == 0)
    negotiation_set_reason (negotiation, "relaying the camera's H.264 (profile-level-id unknown: its SDP "
                            "has neither profile-level-id nor an SPS) on payload type %u", entry->payload_type);
  else if (video->codec == CIMS_CODEC_H264)
    negotiation_set_reason (negotiation, "relaying the camera's H.264 (profile-level-id %06x) on payload type %u",
                            video->h264_profile_level_id, entry->payload_type);
  else
    negotiation_set_reason (negotiation, "relaying the camera's %s on payload type %u",
                            codec_display_name (video->codec), entry->payload_type);
}

/* The output is the camera's picture fitted into the profile's maximum,
 * or that maximum when the camera's size is not known yet. */
static void
negotiation_set_transcode (CimsNegotiation *negotiation, const CimsCameraVideo *video,
                           const CimsConfigProfile *profile, const CimsSdpCodec *entry, const char *why)
{
  negotiation->mode = CIMS_NEGOTIATION_TRANSCODE;
  negotiation->offer_codec = entry;
  negotiation->output_codec = entry->codec;
  negotiation->output_kbps = profile->max_kbps;

  if (!cims_transcode_fit_size (video->width, video->height, 1, 1, profile->max_width, profile->max_height,
                                &negotiation->output_width, &negotiation->output_height))
    {
      negotiation->output_width = profile->max_width;
      negotiation->output_height = profile->max_height;
    }
  negotiation->output_fps = video->fps == 0 ? profile->max_fps
                            : profile->max_fps == 0 ? video->fps : MIN (video->fps, profile->max_fps);

  negotiation_set_reason (negotiation, "transcoding %s to %s %ux%u at %u fps, %u kbit/s, on payload type %u: %s",
                          codec_display_name (video->codec), codec_display_name (entry->codec),
                          negotiation->output_width, negotiation->output_height, negotiation->output_fps,
                          negotiation->output_kbps, entry->payload_type, why);
}

/* Returns (transfer full) the codecs the hub could send to @profile, e.g.
 * "H.264 or VP8", or NULL when there are none. */
static gchar *
profile_describe_sendable (const CimsConfigProfile *profile, const CimsCameraVideo *video)
{
  GString *list = g_string_new (NULL);
  CimsCodec candidates[] = { video->codec, transcode_outputs[0], transcode_outputs[1] };

  for (gsize i = 0; i < G_N_ELEMENTS (candidates); i++)
    {
      const char *name = codec_display_name (candidates[i]);

      if (candidates[i] == CIMS_CODEC_UNKNOWN || !profile_allows_codec (profile, candidates[i])
          || strstr (list->str, name) != NULL)
        continue;
      if (list->len > 0)
        g_string_append (list, " or ");
      g_string_append (list, name);
    }

  if (list->len == 0)
    {
      g_string_free (list, TRUE);
      return NULL;
    }

  return g_string_free (list, FALSE);
}

static void
negotiation_set_none (CimsNegotiation *negotiation, const CimsSdpOffer *offer, const CimsCameraVideo *video,
                      const CimsConfigProfile *profile)
{
  g_autofree gchar *offered = offer_describe_encodings (offer);
  g_autofree gchar *sendable = profile_describe_sendable (profile, video);

  negotiation->mode = CIMS_NEGOTIATION_NONE;
  negotiation->offer_codec = NULL;
  negotiation->output_codec = CIMS_CODEC_UNKNOWN;

  if (sendable == NULL)
    negotiation_set_reason (negotiation, "viewer profile %s allows no codec the hub can send (H.264 or VP8, "
                            "or the camera's %s)", profile->name, codec_display_name (video->codec));
  else
    negotiation_set_reason (negotiation, "the offer has no codec the hub can produce: it offers %s; "
                            "the hub can send %s", offered, sendable);
}

/* See hub-private.h. */
void
cims_negotiation_decide (const CimsSdpOffer *offer, const CimsCameraVideo *video,
                         const CimsConfigProfile *profile, CimsNegotiation *negotiation)
{
  const CimsSdpCodec *entry = NULL;
  const char *obstacle;

  g_return_if_fail (offer != NULL && video != NULL && profile != NULL && negotiation != NULL);

  memset (negotiation, 0, sizeof *negotiation);

  obstacle = relay_obstacle (offer, video, profile, &entry);
  if (obstacle == NULL)
    {
      negotiation_set_relay (negotiation, video, entry);
      return;
    }

  /* The transcoder decodes H.264 and H.265 cameras only. */
  for (gsize i = 0; (video->codec == CIMS_CODEC_H264 || video->codec == CIMS_CODEC_H265)
                    && i < G_N_ELEMENTS (transcode_outputs); i++)
    {
      if (!profile_allows_codec (profile, transcode_outputs[i]))
        continue;
      entry = offer_find_output_entry (offer, transcode_outputs[i]);
      if (entry == NULL)
        continue;
      if (entry->codec == CIMS_CODEC_H264 && !profile_allows_h264_profile (profile, entry->h264_profile_level_id))
        continue;

      negotiation_set_transcode (negotiation, video, profile, entry, obstacle);
      return;
    }

  negotiation_set_none (negotiation, offer, video, profile);
}

/* Returns the value of fmtp parameter @name as a new string, or NULL. */
static char *
fmtp_parameter (const char *fmtp, const char *name)
{
  g_auto (GStrv) parameters = g_strsplit (fmtp, ";", -1);
  gsize name_len = strlen (name);

  for (guint i = 0; parameters[i] != NULL; i++) {
    const char *parameter = g_strstrip (parameters[i]);

    if (g_ascii_strncasecmp (parameter, name, name_len) == 0 && parameter[name_len] == '=')
      return g_strdup (parameter + name_len + 1);
  }

  return NULL;
}

guint32
cims_h264_profile_level_id_from_fmtp (const char *fmtp)
{
  g_autofree char *profile_level_id = NULL;

  if (fmtp == NULL)
    return 0;

  profile_level_id = fmtp_parameter (fmtp, "profile-level-id");
  if (profile_level_id == NULL || strlen (profile_level_id) != 6
      || strspn (profile_level_id, "0123456789abcdefABCDEF") != 6)
    return 0;

  return (guint32) g_ascii_strtoull (profile_level_id, NULL, 16);
}
