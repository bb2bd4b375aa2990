/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the relay-or-transcode decision: a table of browser-like
 * offers, cameras and viewer profiles with the expected mode, codec,
 * payload type and output size. */
#include "hub/hub-private.h"

#include <string.h>

#define FINGERPRINT_SHA256 \
  "5D:1A:0F:C3:9E:42:7B:88:A1:04:6C:D2:3F:E9:17:B5:" \
  "60:8E:2C:4A:F1:93:0D:7E:B8:25:C6:59:E3:1F:84:AB"

#define OFFER_HEAD \
  "v=0\r\n" \
  "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n" \
  "s=-\r\n" \
  "t=0 0\r\n" \
  "a=group:BUNDLE 0\r\n"

#define VIDEO_ATTRIBUTES \
  "c=IN IP4 0.0.0.0\r\n" \
  "a=ice-ufrag:Xk7e\r\n" \
  "a=ice-pwd:9dKyJ0m5fQY3rTz1bLhWc2Ns\r\n" \
  "a=fingerprint:sha-256 " FINGERPRINT_SHA256 "\r\n" \
  "a=setup:actpass\r\n" \
  "a=mid:0\r\n" \
  "a=recvonly\r\n" \
  "a=rtcp-mux\r\n"

/* Chromium 120 on Linux: VP8, VP9, H.264 constrained baseline and high in
 * both packetization modes, each with RTX. */
static const char chromium_offer[] =
  OFFER_HEAD
  "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 102 103 127 125 112 113\r\n"
  VIDEO_ATTRIBUTES
  "a=rtpmap:96 VP8/90000\r\n"
  "a=rtpmap:97 rtx/90000\r\n"
  "a=fmtp:97 apt=96\r\n"
  "a=rtpmap:98 VP9/90000\r\n"
  "a=fmtp:98 profile-id=0\r\n"
  "a=rtpmap:99 rtx/90000\r\n"
  "a=fmtp:99 apt=98\r\n"
  "a=rtpmap:102 H264/90000\r\n"
  "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
  "a=rtpmap:103 rtx/90000\r\n"
  "a=fmtp:103 apt=102\r\n"
  "a=rtpmap:127 H264/90000\r\n"
  "a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n"
  "a=rtpmap:125 rtx/90000\r\n"
  "a=fmtp:125 apt=127\r\n"
  "a=rtpmap:112 H264/90000\r\n"
  "a=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f\r\n"
  "a=rtpmap:113 rtx/90000\r\n"
  "a=fmtp:113 apt=112\r\n";

/* A client without H.264, as some Firefox builds without OpenH264. */
static const char vp8_only_offer[] =
  OFFER_HEAD
  "m=video 9 UDP/TLS/RTP/SAVPF 120 124\r\n"
  VIDEO_ATTRIBUTES
  "a=rtpmap:120 VP8/90000\r\n"
  "a=rtpmap:124 rtx/90000\r\n"
  "a=fmtp:124 apt=120\r\n";

/* Safari-like: H.265 first, then H.264 constrained baseline and VP8. */
static const char h265_offer[] =
  OFFER_HEAD
  "m=video 9 UDP/TLS/RTP/SAVPF 49 50 102 103 96\r\n"
  VIDEO_ATTRIBUTES
  "a=rtpmap:49 H265/90000\r\n"
  "a=fmtp:49 profile-id=1;tier-flag=0;level-id=120\r\n"
  "a=rtpmap:50 rtx/90000\r\n"
  "a=fmtp:50 apt=49\r\n"
  "a=rtpmap:102 H264/90000\r\n"
  "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
  "a=rtpmap:103 rtx/90000\r\n"
  "a=fmtp:103 apt=102\r\n"
  "a=rtpmap:96 VP8/90000\r\n";

static const char av1_only_offer[] =
  OFFER_HEAD
  "m=video 9 UDP/TLS/RTP/SAVPF 45 46\r\n"
  VIDEO_ATTRIBUTES
  "a=rtpmap:45 AV1/90000\r\n"
  "a=rtpmap:46 rtx/90000\r\n"
  "a=fmtp:46 apt=45\r\n";

static const CimsCameraVideo camera_h264_baseline_720 = { CIMS_CODEC_H264, 0x42e01f, 1280, 720, 30 };
static const CimsCameraVideo camera_h264_high_1080 = { CIMS_CODEC_H264, 0x640028, 1920, 1080, 30 };
static const CimsCameraVideo camera_h265_1080 = { CIMS_CODEC_H265, 0, 1920, 1080, 25 };
static const CimsCameraVideo camera_h264_size_unknown = { CIMS_CODEC_H264, 0x42e01f, 0, 0, 0 };

static char *browser_codecs[] = { "h264", "vp8", NULL };
static char *legacy_codecs[] = { "h264", NULL };
static char *hevc_codecs[] = { "h265", "h264", NULL };
static char *baseline_only[] = { "42e0", "4200", NULL };

static const CimsConfigProfile profile_browser = { "browser", browser_codecs, NULL, 1920, 1080, 30, 4000 };
static const CimsConfigProfile profile_legacy = { "legacy-640", legacy_codecs, NULL, 640, 360, 15, 600 };
static const CimsConfigProfile profile_hevc = { "hevc", hevc_codecs, NULL, 1920, 1080, 30, 4000 };
static const CimsConfigProfile profile_baseline = { "baseline", legacy_codecs, baseline_only, 1920, 1080, 30, 2000 };

typedef struct {
  const char *name;
  const char *offer;
  const CimsCameraVideo *camera;
  const CimsConfigProfile *profile;
  CimsNegotiationMode mode;
  CimsCodec codec;
  guint8 payload_type;
  guint width;
  guint height;
  guint fps;
  const char *reason_part;      /* NONE: the whole reason; else a phrase it contains, or NULL */
} NegotiateCase;

static const NegotiateCase cases[] = {
  /* Chromium */
  { "chromium, baseline 720p, browser", chromium_offer, &camera_h264_baseline_720, &profile_browser,
    CIMS_NEGOTIATION_RELAY, CIMS_CODEC_H264, 102, 1280, 720, 30, "relaying" },
  { "chromium, high 1080p, browser", chromium_offer, &camera_h264_high_1080, &profile_browser,
    CIMS_NEGOTIATION_RELAY, CIMS_CODEC_H264, 112, 1920, 1080, 30, "640028" },
  { "chromium, h265, browser", chromium_offer, &camera_h265_1080, &profile_browser,
    CIMS_NEGOTIATION_TRANSCODE, CIMS_CODEC_H264, 102, 1920, 1080, 25, "H.265 to H.264" },
  { "chromium, baseline 720p, legacy", chromium_offer, &camera_h264_baseline_720, &profile_legacy,
    CIMS_NEGOTIATION_TRANSCODE, CIMS_CODEC_H264, 102, 640, 360, 15, "larger than the profile allows" },
  { "chromium, high 1080p, legacy", chromium_offer, &camera_h264_high_1080, &profile_legacy,
    CIMS_NEGOTIATION_TRANSCODE, CIMS_CODEC_H264, 102, 640, 360, 15, NULL },
  { "chromium, h265, legacy", chromium_offer, &camera_h265_1080, &profile_legacy,
    CIMS_NEGOTIATION_TRANSCODE, CIMS_CODEC_H264, 102, 640, 360, 15, NULL },

  /* VP8 only */
  { "vp8-only, baseline 720p, browser", vp8_only_offer, &camera_h264_baseline_720, &profile_browser,
    CIMS_NEGOTIATION_TRANSCODE, CIMS_CODEC_VP8, 120, 1280, 720, 30, "to VP8" },
  { "vp8-only, high 1080p, browser", vp8_only_offer, &camera_h264_high_1080, &profile_browser,
    CIMS_NEGOTIATION_TRANSCODE, CIMS_CODEC_VP8, 120, 1920, 1080, 30, NULL },
  { "vp8-only, h265, browser", vp8_only_offer, &camera_h265_1080, &profile_browser,
    CIMS_NEGOTIATION_TRANSCODE, CIMS_CODEC_VP8, 120, 1920, 1080, 25, NULL },
  { "vp8-only, baseline 720p, legacy", vp8_only_offer, &camera_h264_baseline_720, &profile_legacy,
    CIMS_NEGOTIATION_NONE, CIMS_CODEC_UNKNOWN, 0, 0, 0, 0, "the offer has no codec the hub can produce: it offers VP8; the hub can send H.264" },
  { "vp8-only, h265, legacy", vp8_only_offer, &camera_h265_1080, &profile_legacy,
    CIMS_NEGOTIATION_NONE, CIMS_CODEC_UNKNOWN, 0, 0, 0, 0,
    "the offer has no codec the hub can produce: it offers VP8; the hub can send H.264" },

  /* H.265-capable */
  { "h265-capable, baseline 720p, browser", h265_offer, &camera_h264_baseline_720, &profile_browser,
    CIMS_NEGOTIATION_RELAY, CIMS_CODEC_H264, 102, 1280, 720, 30, NULL },
  { "h265-capable, high 1080p, browser", h265_offer, &camera_h264_high_1080, &profile_browser,
    CIMS_NEGOTIATION_TRANSCODE, CIMS_CODEC_H264, 102, 1920, 1080, 30, "camera's profile" },
  { "h265-capable, h265, browser", h265_offer, &camera_h265_1080, &profile_browser,
    CIMS_NEGOTIATION_TRANSCODE, CIMS_CODEC_H264, 102, 1920, 1080, 25, "does not allow the camera's codec" },
  { "h265-capable, h265, hevc", h265_offer, &camera_h265_1080, &profile_hevc,
    CIMS_NEGOTIATION_RELAY, CIMS_CODEC_H265, 49, 1920, 1080, 25, NULL },
  { "h265-capable, baseline 720p, legacy", h265_offer, &camera_h264_baseline_720, &profile_legacy,
    CIMS_NEGOTIATION_TRANSCODE, CIMS_CODEC_H264, 102, 640, 360, 15, NULL },
  { "h265-capable, h265, legacy", h265_offer, &camera_h265_1080, &profile_legacy,
    CIMS_NEGOTIATION_TRANSCODE, CIMS_CODEC_H264, 102, 640, 360, 15, NULL },

  /* AV1 only */
  { "av1-only, baseline 720p, browser", av1_only_offer, &camera_h264_baseline_720, &profile_browser,
    CIMS_NEGOTIATION_NONE, CIMS_CODEC_UNKNOWN, 0, 0, 0, 0,
    "the offer has no codec the hub can produce: it offers AV1; the hub can send H.264 or VP8" },
  { "av1-only, h265, browser", av1_only_offer, &camera_h265_1080, &profile_browser,
    CIMS_NEGOTIATION_NONE, CIMS_CODEC_UNKNOWN, 0, 0, 0, 0,
    "the offer has no codec the hub can produce: it offers AV1; the hub can send H.264 or VP8" },
  { "av1-only, high 1080p, legacy", av1_only_offer, &camera_h264_high_1080, &profile_legacy,
    CIMS_NEGOTIATION_NONE, CIMS_CODEC_UNKNOWN, 0, 0, 0, 0,
    "the offer has no codec the hub can produce: it offers AV1; the hub can send H.264" },

  /* Edges: an unknown size is no reason to transcode; h264_profiles limits relay. */
  { "chromium, size unknown, legacy", chromium_offer, &camera_h264_size_unknown, &profile_legacy,
    CIMS_NEGOTIATION_RELAY, CIMS_CODEC_H264, 102, 0, 0, 0, NULL },
  { "chromium, high 1080p, baseline-only profile", chromium_offer, &camera_h264_high_1080, &profile_baseline,
    CIMS_NEGOTIATION_TRANSCODE, CIMS_CODEC_H264, 102, 1920, 1080, 30, "H.264 profile" },
};

static void
test_negotiate_decides_table (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const NegotiateCase *c = &cases[i];
      g_autoptr(GError) error = NULL;
      g_autoptr(CimsSdpOffer) offer = cims_sdp_offer_parse (c->offer, strlen (c->offer), &error);
      CimsNegotiation negotiation;

      g_assert_no_error (error);
      cims_negotiation_decide (offer, c->camera, c->profile, &negotiation);
      g_test_message ("%s: %s", c->name, negotiation.reason);

      g_assert_cmpint (negotiation.mode, ==, c->mode);
      g_assert_cmpint (negotiation.output_codec, ==, c->codec);
      if (c->mode == CIMS_NEGOTIATION_NONE)
        {
          g_assert_null (negotiation.offer_codec);
        }
      else
        {
          g_assert_nonnull (negotiation.offer_codec);
          g_assert_cmpuint (negotiation.offer_codec->payload_type, ==, c->payload_type);
          g_assert_cmpint (negotiation.offer_codec->codec, ==, c->codec);
        }
      g_assert_cmpuint (negotiation.output_width, ==, c->width);
      g_assert_cmpuint (negotiation.output_height, ==, c->height);
      g_assert_cmpuint (negotiation.output_fps, ==, c->fps);
      if (c->mode == CIMS_NEGOTIATION_TRANSCODE)
        g_assert_cmpuint (negotiation.output_kbps, ==, c->profile->max_kbps);
      g_assert_cmpstr (negotiation.reason, !=, "");
      if (c->mode == CIMS_NEGOTIATION_NONE)
        g_assert_cmpstr (negotiation.reason, ==, c->reason_part);
      else if (c->reason_part != NULL && strstr (negotiation.reason, c->reason_part) == NULL)
        g_error ("%s: reason \"%s\" does not contain \"%s\"", c->name, negotiation.reason, c->reason_part);
    }
}

/* The transcoder's constrained-baseline output goes on a 42e0 entry even
 * when a high-profile entry comes first in the offer. */
static void
test_negotiate_prefers_constrained_baseline (void)
{
  static const char offer_text[] =
    OFFER_HEAD
    "m=video 9 UDP/TLS/RTP/SAVPF 112 106 102\r\n"
    VIDEO_ATTRIBUTES
    "a=rtpmap:112 H264/90000\r\n"
    "a=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f\r\n"
    "a=rtpmap:106 H264/90000\r\n"
    "a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n"
    "a=rtpmap:102 H264/90000\r\n"
    "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";
  g_autoptr(GError) error = NULL;
  g_autoptr(CimsSdpOffer) offer = cims_sdp_offer_parse (offer_text, strlen (offer_text), &error);
  CimsNegotiation negotiation;

  g_assert_no_error (error);
  cims_negotiation_decide (offer, &camera_h265_1080, &profile_legacy, &negotiation);

  g_assert_cmpint (negotiation.mode, ==, CIMS_NEGOTIATION_TRANSCODE);
  g_assert_cmpuint (negotiation.offer_codec->payload_type, ==, 102);
}

/* A baseline (4200) camera is relayed to a viewer that offers only
 * constrained baseline; a main-profile camera is not. */
static void
test_negotiate_relays_baseline_to_constrained_baseline (void)
{
  static const char offer_text[] =
    OFFER_HEAD
    "m=video 9 UDP/TLS/RTP/SAVPF 102\r\n"
    VIDEO_ATTRIBUTES
    "a=rtpmap:102 H264/90000\r\n"
    "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";
  const CimsCameraVideo baseline = { CIMS_CODEC_H264, 0x420028, 1280, 720, 30 };
  const CimsCameraVideo main_profile = { CIMS_CODEC_H264, 0x4d0028, 1280, 720, 30 };
  g_autoptr(GError) error = NULL;
  g_autoptr(CimsSdpOffer) offer = cims_sdp_offer_parse (offer_text, strlen (offer_text), &error);
  CimsNegotiation negotiation;

  g_assert_no_error (error);
  cims_negotiation_decide (offer, &baseline, &profile_browser, &negotiation);
  g_assert_cmpint (negotiation.mode, ==, CIMS_NEGOTIATION_RELAY);

  cims_negotiation_decide (offer, &main_profile, &profile_browser, &negotiation);
  g_assert_cmpint (negotiation.mode, ==, CIMS_NEGOTIATION_TRANSCODE);
  g_assert_cmpint (negotiation.output_codec, ==, CIMS_CODEC_H264);
}

static void
test_negotiate_reads_profile_level_id (void)
{
  const char *sprop_only = "packetization-mode=1;sprop-parameter-sets=Z0LAFdkBQfsBagwMDUoAAAMAAgAAAwB5HixckA==,"
                           "aMuMsg==;profile=constrained-baseline";

  g_assert_cmphex (cims_h264_profile_level_id_from_fmtp ("packetization-mode=1;profile-level-id=42e01f"),
                   ==, 0x42e01f);
  g_assert_cmphex (cims_h264_profile_level_id_from_fmtp ("profile-level-id=zz"), ==, 0);
  g_assert_cmphex (cims_h264_profile_level_id_from_fmtp (sprop_only), ==, 0);
  g_assert_cmphex (cims_h264_profile_level_id_from_fmtp ("packetization-mode=1"), ==, 0);
  g_assert_cmphex (cims_h264_profile_level_id_from_fmtp (NULL), ==, 0);
}

static void
test_negotiate_reads_sps_profile (void)
{
  /* This H.264 SPS starts 67 42 c0 15. A PPS (68 ...) carries no profile. */
  const guint8 sps[] = { 0x67, 0x42, 0xc0, 0x15, 0xd9, 0x01 };
  const guint8 pps[] = { 0x68, 0xcb, 0x8c, 0xb2 };

  g_assert_cmphex (cims_h264_sps_profile_level_id (sps, sizeof sps), ==, 0x42c015);
  g_assert_cmphex (cims_h264_sps_profile_level_id (pps, sizeof pps), ==, 0);
  g_assert_cmphex (cims_h264_sps_profile_level_id (sps, 3), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/hub/negotiate/decides-table", test_negotiate_decides_table);
  g_test_add_func ("/hub/negotiate/prefers-constrained-baseline", test_negotiate_prefers_constrained_baseline);
  g_test_add_func ("/hub/negotiate/reads-profile-level-id", test_negotiate_reads_profile_level_id);
  g_test_add_func ("/hub/negotiate/reads-sps-profile", test_negotiate_reads_sps_profile);
  g_test_add_func ("/hub/negotiate/relays-baseline-to-constrained-baseline",
                   test_negotiate_relays_baseline_to_constrained_baseline);

  return g_test_run ();
}
