/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the WHEP offer parser, the codec choice and the SDP answer,
 * starting from an offer as Chromium writes it for a recvonly viewer. */

#include "hub/hub-private.h"

#include <string.h>

#include <gio/gio.h>
#include <gst/sdp/sdp.h>

#define FINGERPRINT_SHA256 \
  "5D:1A:0F:C3:9E:42:7B:88:A1:04:6C:D2:3F:E9:17:B5:" \
  "60:8E:2C:4A:F1:93:0D:7E:B8:25:C6:59:E3:1F:84:AB"

/* A Chromium-style WHEP offer: audio and video transceivers, both recvonly,
 * bundled, trickle ICE so no candidates yet. */
static const char chromium_offer[] =
  "v=0\r\n"
  "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
  "s=-\r\n"
  "t=0 0\r\n"
  "a=group:BUNDLE 0 1\r\n"
  "a=extmap-allow-mixed\r\n"
  "a=msid-semantic: WMS\r\n"
  "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n"
  "c=IN IP4 0.0.0.0\r\n"
  "a=rtcp:9 IN IP4 0.0.0.0\r\n"
  "a=ice-ufrag:Xk7e\r\n"
  "a=ice-pwd:9dKyJ0m5fQY3rTz1bLhWc2Ns\r\n"
  "a=ice-options:trickle\r\n"
  "a=fingerprint:sha-256 " FINGERPRINT_SHA256 "\r\n"
  "a=setup:actpass\r\n"
  "a=mid:0\r\n"
  "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
  "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n"
  "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n"
  "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
  "a=recvonly\r\n"
  "a=rtcp-mux\r\n"
  "a=rtpmap:111 opus/48000/2\r\n"
  "a=rtcp-fb:111 transport-cc\r\n"
  "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
  "a=rtpmap:63 red/48000/2\r\n"
  "a=fmtp:63 111/111\r\n"
  "a=rtpmap:9 G722/8000\r\n"
  "a=rtpmap:0 PCMU/8000\r\n"
  "a=rtpmap:8 PCMA/8000\r\n"
  "a=rtpmap:13 CN/8000\r\n"
  "a=rtpmap:110 telephone-event/48000\r\n"
  "a=rtpmap:126 telephone-event/8000\r\n"
  "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107 108 109 127 125 39 40 98 99 100 101 112 113 116 117 118\r\n"
  "c=IN IP4 0.0.0.0\r\n"
  "a=rtcp:9 IN IP4 0.0.0.0\r\n"
  "a=ice-ufrag:Xk7e\r\n"
  "a=ice-pwd:9dKyJ0m5fQY3rTz1bLhWc2Ns\r\n"
  "a=ice-options:trickle\r\n"
  "a=fingerprint:sha-256 " FINGERPRINT_SHA256 "\r\n"
  "a=setup:actpass\r\n"
  "a=mid:1\r\n"
  "a=extmap:14 urn:ietf:params:rtp-hdrext:toffset\r\n"
  "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n"
  "a=extmap:13 urn:3gpp:video-orientation\r\n"
  "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n"
  "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
  "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n"
  "a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\n"
  "a=recvonly\r\n"
  "a=rtcp-mux\r\n"
  "a=rtcp-rsize\r\n"
  "a=rtpmap:96 VP8/90000\r\n"
  "a=rtcp-fb:96 goog-remb\r\n"
  "a=rtcp-fb:96 transport-cc\r\n"
  "a=rtcp-fb:96 ccm fir\r\n"
  "a=rtcp-fb:96 nack\r\n"
  "a=rtcp-fb:96 nack pli\r\n"
  "a=rtpmap:97 rtx/90000\r\n"
  "a=fmtp:97 apt=96\r\n"
  "a=rtpmap:102 H264/90000\r\n"
  "a=rtcp-fb:102 goog-remb\r\n"
  "a=rtcp-fb:102 transport-cc\r\n"
  "a=rtcp-fb:102 ccm fir\r\n"
  "a=rtcp-fb:102 nack\r\n"
  "a=rtcp-fb:102 nack pli\r\n"
  "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n"
  "a=rtpmap:103 rtx/90000\r\n"
  "a=fmtp:103 apt=102\r\n"
  "a=rtpmap:104 H264/90000\r\n"
  "a=rtcp-fb:104 goog-remb\r\n"
  "a=rtcp-fb:104 transport-cc\r\n"
  "a=rtcp-fb:104 ccm fir\r\n"
  "a=rtcp-fb:104 nack\r\n"
  "a=rtcp-fb:104 nack pli\r\n"
  "a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n"
  "a=rtpmap:105 rtx/90000\r\n"
  "a=fmtp:105 apt=104\r\n"
  "a=rtpmap:106 H264/90000\r\n"
  "a=rtcp-fb:106 goog-remb\r\n"
  "a=rtcp-fb:106 transport-cc\r\n"
  "a=rtcp-fb:106 ccm fir\r\n"
  "a=rtcp-fb:106 nack\r\n"
  "a=rtcp-fb:106 nack pli\r\n"
  "a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
  "a=rtpmap:107 rtx/90000\r\n"
  "a=fmtp:107 apt=106\r\n"
  "a=rtpmap:108 H264/90000\r\n"
  "a=rtcp-fb:108 goog-remb\r\n"
  "a=rtcp-fb:108 transport-cc\r\n"
  "a=rtcp-fb:108 ccm fir\r\n"
  "a=rtcp-fb:108 nack\r\n"
  "a=rtcp-fb:108 nack pli\r\n"
  "a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n"
  "a=rtpmap:109 rtx/90000\r\n"
  "a=fmtp:109 apt=108\r\n"
  "a=rtpmap:127 H264/90000\r\n"
  "a=rtcp-fb:127 goog-remb\r\n"
  "a=rtcp-fb:127 transport-cc\r\n"
  "a=rtcp-fb:127 ccm fir\r\n"
  "a=rtcp-fb:127 nack\r\n"
  "a=rtcp-fb:127 nack pli\r\n"
  "a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n"
  "a=rtpmap:125 rtx/90000\r\n"
  "a=fmtp:125 apt=127\r\n"
  "a=rtpmap:39 H264/90000\r\n"
  "a=rtcp-fb:39 goog-remb\r\n"
  "a=rtcp-fb:39 transport-cc\r\n"
  "a=rtcp-fb:39 ccm fir\r\n"
  "a=rtcp-fb:39 nack\r\n"
  "a=rtcp-fb:39 nack pli\r\n"
  "a=fmtp:39 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=4d001f\r\n"
  "a=rtpmap:40 rtx/90000\r\n"
  "a=fmtp:40 apt=39\r\n"
  "a=rtpmap:98 VP9/90000\r\n"
  "a=rtcp-fb:98 goog-remb\r\n"
  "a=rtcp-fb:98 transport-cc\r\n"
  "a=rtcp-fb:98 ccm fir\r\n"
  "a=rtcp-fb:98 nack\r\n"
  "a=rtcp-fb:98 nack pli\r\n"
  "a=fmtp:98 profile-id=0\r\n"
  "a=rtpmap:99 rtx/90000\r\n"
  "a=fmtp:99 apt=98\r\n"
  "a=rtpmap:100 VP9/90000\r\n"
  "a=rtcp-fb:100 goog-remb\r\n"
  "a=rtcp-fb:100 transport-cc\r\n"
  "a=rtcp-fb:100 ccm fir\r\n"
  "a=rtcp-fb:100 nack\r\n"
  "a=rtcp-fb:100 nack pli\r\n"
  "a=fmtp:100 profile-id=2\r\n"
  "a=rtpmap:101 rtx/90000\r\n"
  "a=fmtp:101 apt=100\r\n"
  "a=rtpmap:112 H264/90000\r\n"
  "a=rtcp-fb:112 goog-remb\r\n"
  "a=rtcp-fb:112 transport-cc\r\n"
  "a=rtcp-fb:112 ccm fir\r\n"
  "a=rtcp-fb:112 nack\r\n"
  "a=rtcp-fb:112 nack pli\r\n"
  "a=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\n"
  "a=rtpmap:113 rtx/90000\r\n"
  "a=fmtp:113 apt=112\r\n"
  "a=rtpmap:116 red/90000\r\n"
  "a=rtpmap:117 rtx/90000\r\n"
  "a=fmtp:117 apt=116\r\n"
  "a=rtpmap:118 ulpfec/90000\r\n";

/* Returns (transfer full) @text with every occurrence of @from replaced. */
static char *
text_replace (const char *text, const char *from, const char *to)
{
  g_auto (GStrv) parts = g_strsplit (text, from, -1);

  return g_strjoinv (to, parts);
}

/* Returns (transfer full) @text without the lines that start with @prefix. */
static char *
text_remove_lines (const char *text, const char *prefix)
{
  g_auto (GStrv) lines = g_strsplit (text, "\r\n", -1);
  GString *result = g_string_new (NULL);
  guint i;

  for (i = 0; lines[i] != NULL; i++) {
    if (lines[i][0] == '\0' || g_str_has_prefix (lines[i], prefix))
      continue;
    g_string_append_printf (result, "%s\r\n", lines[i]);
  }

  return g_string_free (result, FALSE);
}

static CimsSdpOffer *
offer_parse_text (const char *text, GError **error)
{
  return cims_sdp_offer_parse (text, strlen (text), error);
}

/* Parses @text, expects a G_IO_ERROR_INVALID_DATA error and checks that its
 * message contains @expected. */
static void
assert_offer_rejected (const char *text, gsize size, const char *expected)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsSdpOffer) offer = cims_sdp_offer_parse (text, size, &error);

  g_assert_null (offer);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  if (expected != NULL && strstr (error->message, expected) == NULL)
    g_error ("error message \"%s\" does not contain \"%s\"", error->message, expected);
}

static const CimsSdpCodec *
offer_codec_get (const CimsSdpOffer *offer, guint8 payload_type)
{
  guint i;

  for (i = 0; i < offer->video_codecs->len; i++) {
    const CimsSdpCodec *codec = &g_array_index (offer->video_codecs, CimsSdpCodec, i);

    if (codec->payload_type == payload_type)
      return codec;
  }

  return NULL;
}

/* ---- offer parsing ----------------------------------------------------- */

static void
test_sdp_offer_parses_chromium_offer (void)
{
  static const guint8 expected_pts[] = { 96, 102, 104, 106, 108, 127, 39, 112 };
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsSdpOffer) offer = offer_parse_text (chromium_offer, &error);
  const CimsSdpCodec *codec;
  guint i;

  g_assert_no_error (error);
  g_assert_nonnull (offer);

  g_assert_cmpstr (offer->ice_ufrag, ==, "Xk7e");
  g_assert_cmpstr (offer->ice_pwd, ==, "9dKyJ0m5fQY3rTz1bLhWc2Ns");
  g_assert_cmpstr (offer->fingerprint_algorithm, ==, "sha-256");
  g_assert_cmpuint (offer->fingerprint_size, ==, 32);
  g_assert_cmpuint (offer->fingerprint[0], ==, 0x5d);
  g_assert_cmpuint (offer->fingerprint[31], ==, 0xab);
  g_assert_cmpint (offer->setup, ==, CIMS_DTLS_SETUP_ACTPASS);
  g_assert_cmpstr (offer->video_mid, ==, "1");
  g_assert_cmpuint (offer->video_mline_index, ==, 1);
  g_assert_cmpuint (offer->n_mlines, ==, 2);
  g_assert_cmpuint (offer->mlines->len, ==, 2);
  g_assert_true (offer->has_bundle);
  g_assert_true (offer->has_rtcp_rsize);
  g_assert_true (offer->video_is_recvonly_or_sendrecv);
  g_assert_cmpuint (offer->remote_candidates->len, ==, 0);

  /* VP9, red, ulpfec and rtx are not codecs the hub sends. */
  g_assert_cmpuint (offer->video_codecs->len, ==, G_N_ELEMENTS (expected_pts));
  for (i = 0; i < G_N_ELEMENTS (expected_pts); i++)
    g_assert_cmpuint (g_array_index (offer->video_codecs, CimsSdpCodec, i).payload_type, ==, expected_pts[i]);

  codec = offer_codec_get (offer, 96);
  g_assert_cmpint (codec->codec, ==, CIMS_CODEC_VP8);
  g_assert_cmpuint (codec->rtx_payload_type, ==, 97);
  g_assert_null (codec->fmtp);

  codec = offer_codec_get (offer, 127);
  g_assert_cmpint (codec->codec, ==, CIMS_CODEC_H264);
  g_assert_cmpuint (codec->clock_rate, ==, 90000);
  g_assert_cmpuint (codec->h264_packetization_mode, ==, 1);
  g_assert_cmphex (codec->h264_profile_level_id, ==, 0x4d001f);
  g_assert_cmpuint (codec->rtx_payload_type, ==, 125);
  g_assert_cmpstr (codec->fmtp, ==, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f");
  g_assert_true (codec->has_nack);
  g_assert_true (codec->has_nack_pli);
  g_assert_true (codec->has_ccm_fir);
  g_assert_true (codec->has_transport_cc);

  codec = offer_codec_get (offer, 104);
  g_assert_cmpuint (codec->h264_packetization_mode, ==, 0);
  g_assert_cmphex (codec->h264_profile_level_id, ==, 0x42001f);
}

static void
test_sdp_offer_reads_mlines (void)
{
  g_autoptr (CimsSdpOffer) offer = offer_parse_text (chromium_offer, NULL);
  const CimsSdpMline *audio;

  g_assert_nonnull (offer);
  audio = &g_array_index (offer->mlines, CimsSdpMline, 0);
  g_assert_cmpstr (audio->media, ==, "audio");
  g_assert_cmpstr (audio->proto, ==, "UDP/TLS/RTP/SAVPF");
  g_assert_cmpstr (audio->first_format, ==, "111");
  g_assert_cmpstr (audio->mid, ==, "0");
}

static void
test_sdp_offer_rejects_missing_ice_ufrag (void)
{
  g_autofree char *text = text_remove_lines (chromium_offer, "a=ice-ufrag");

  assert_offer_rejected (text, strlen (text), "offer has no a=ice-ufrag");
}

static void
test_sdp_offer_rejects_missing_ice_pwd (void)
{
  g_autofree char *text = text_remove_lines (chromium_offer, "a=ice-pwd");

  assert_offer_rejected (text, strlen (text), "offer has no a=ice-pwd");
}

static void
test_sdp_offer_rejects_missing_fingerprint (void)
{
  g_autofree char *text = text_remove_lines (chromium_offer, "a=fingerprint");

  assert_offer_rejected (text, strlen (text), "offer has no a=fingerprint");
}

static void
test_sdp_offer_rejects_short_fingerprint (void)
{
  g_autofree char *text = text_replace (chromium_offer, FINGERPRINT_SHA256, "5D:1A:0F");

  assert_offer_rejected (text, strlen (text),
                         "a=fingerprint:sha-256 value \"5D:1A:0F\" is not 32 hex pairs");
}

static void
test_sdp_offer_rejects_malformed_fingerprint (void)
{
  static const char *const bad[] = {
    /* a non-hex digit */
    "5D:1A:0F:C3:9E:42:7B:88:A1:04:6C:D2:3F:E9:17:B5:60:8E:2C:4A:F1:93:0D:7E:B8:25:C6:59:E3:1F:84:AG",
    /* a dash in place of a colon */
    "5D:1A:0F:C3:9E:42:7B:88:A1:04:6C:D2:3F:E9:17:B5-60:8E:2C:4A:F1:93:0D:7E:B8:25:C6:59:E3:1F:84:AB",
    /* a trailing colon */
    "5D:1A:0F:C3:9E:42:7B:88:A1:04:6C:D2:3F:E9:17:B5:60:8E:2C:4A:F1:93:0D:7E:B8:25:C6:59:E3:1F:84:AB:",
    /* 33 pairs */
    "5D:1A:0F:C3:9E:42:7B:88:A1:04:6C:D2:3F:E9:17:B5:60:8E:2C:4A:F1:93:0D:7E:B8:25:C6:59:E3:1F:84:AB:00",
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree char *text = text_replace (chromium_offer, FINGERPRINT_SHA256, bad[i]);

    assert_offer_rejected (text, strlen (text), "is not 32 hex pairs");
  }
}

static void
test_sdp_offer_accepts_sha512_fingerprint (void)
{
  g_autoptr (GString) hex = g_string_new (NULL);
  g_autoptr (CimsSdpOffer) offer = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *fingerprint = NULL;
  g_autofree char *text = NULL;
  guint i;

  for (i = 0; i < 64; i++)
    g_string_append_printf (hex, "%s%02x", i > 0 ? ":" : "", i);
  fingerprint = g_strdup_printf ("SHA-512 %s", hex->str);
  text = text_replace (chromium_offer, "sha-256 " FINGERPRINT_SHA256, fingerprint);

  offer = offer_parse_text (text, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (offer->fingerprint_algorithm, ==, "sha-512");
  g_assert_cmpuint (offer->fingerprint_size, ==, 64);
  g_assert_cmpuint (offer->fingerprint[63], ==, 63);
}

static void
test_sdp_offer_rejects_sha1_fingerprint (void)
{
  g_autofree char *text = text_replace (chromium_offer, "sha-256 " FINGERPRINT_SHA256,
                                        "sha-1 5D:1A:0F:C3:9E:42:7B:88:A1:04:6C:D2:3F:E9:17:B5:60:8E:2C:4A");

  assert_offer_rejected (text, strlen (text), "no a=fingerprint with sha-256");
}

static void
test_sdp_offer_rejects_missing_video (void)
{
  g_autofree char *text = text_replace (chromium_offer, "m=video 9 ", "m=video 0 ");

  assert_offer_rejected (text, strlen (text), "offer has no m=video line");
}

static void
test_sdp_offer_rejects_plain_rtp_video (void)
{
  g_autofree char *text = text_replace (chromium_offer, "m=video 9 UDP/TLS/RTP/SAVPF", "m=video 9 RTP/AVP");

  assert_offer_rejected (text, strlen (text), "offer has no m=video line");
}

static void
test_sdp_offer_rejects_missing_rtcp_mux (void)
{
  g_autofree char *text = text_remove_lines (chromium_offer, "a=rtcp-mux");

  assert_offer_rejected (text, strlen (text), "a=rtcp-mux");
}

static void
test_sdp_offer_rejects_invalid_setup (void)
{
  g_autofree char *text = text_replace (chromium_offer, "a=setup:actpass", "a=setup:holdconn");

  assert_offer_rejected (text, strlen (text), "a=setup value \"holdconn\"");
}

static void
test_sdp_offer_reads_setup_roles (void)
{
  g_autofree char *active = text_replace (chromium_offer, "a=setup:actpass", "a=setup:active");
  g_autofree char *passive = text_replace (chromium_offer, "a=setup:actpass", "a=setup:passive");
  g_autofree char *missing = text_remove_lines (chromium_offer, "a=setup");
  g_autoptr (CimsSdpOffer) active_offer = offer_parse_text (active, NULL);
  g_autoptr (CimsSdpOffer) passive_offer = offer_parse_text (passive, NULL);
  g_autoptr (CimsSdpOffer) missing_offer = offer_parse_text (missing, NULL);

  g_assert_cmpint (active_offer->setup, ==, CIMS_DTLS_SETUP_ACTIVE);
  g_assert_cmpint (passive_offer->setup, ==, CIMS_DTLS_SETUP_PASSIVE);
  g_assert_cmpint (missing_offer->setup, ==, CIMS_DTLS_SETUP_ACTPASS);
}

static void
test_sdp_offer_rejects_17_mlines (void)
{
  g_autoptr (GString) text = g_string_new (chromium_offer);
  guint i;

  for (i = 2; i < 17; i++)
    g_string_append_printf (text, "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:%u\r\n", i);

  assert_offer_rejected (text->str, text->len, "offer has 17 m-lines; at most 16 are accepted");
}

static void
test_sdp_offer_accepts_16_mlines (void)
{
  g_autoptr (GString) text = g_string_new (chromium_offer);
  g_autoptr (CimsSdpOffer) offer = NULL;
  g_autoptr (GError) error = NULL;
  guint i;

  for (i = 2; i < 16; i++)
    g_string_append_printf (text, "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:%u\r\n", i);

  offer = cims_sdp_offer_parse (text->str, text->len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (offer->n_mlines, ==, 16);
}

static void
test_sdp_offer_rejects_65_kib (void)
{
  g_autoptr (GString) text = g_string_new (chromium_offer);

  while (text->len < 65 * 1024)
    g_string_append (text, "a=x-filler:0123456789012345678901234567890123456789\r\n");

  assert_offer_rejected (text->str, text->len, "at most 65536 are accepted");
}

static void
test_sdp_offer_rejects_binary_garbage (void)
{
  guint8 garbage[4096];
  guint round, i;

  for (round = 0; round < 64; round++) {
    g_autoptr (GRand) rand = g_rand_new_with_seed (round);

    for (i = 0; i < sizeof (garbage); i++)
      garbage[i] = g_rand_int_range (rand, 0, 256);
    assert_offer_rejected ((const char *) garbage, sizeof (garbage), NULL);
  }
}

static void
test_sdp_offer_rejects_malformed_text (void)
{
  static const struct {
    const char *text;
    const char *expected;
  } cases[] = {
    { "", "offer is empty" },
    { "\r\n\r\n", "offer is empty" },
    { "v=1\r\n", "does not start with v=0" },
    { "hello world", "not of the form <type>=<value>" },
    { "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", "no m=video line" },
    { "v=0\r\nm=video\r\n", "no m=video line" },
    { "v=0\r\nm=\r\n", "no m=video line" },
    { "v=0\r\nm=video 99999999999999999999 UDP/TLS/RTP/SAVPF 96\r\n", NULL },
    { "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 999999999999\r\na=ice-ufrag:abcd\r\n"
      "a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 " FINGERPRINT_SHA256 "\r\n"
      "a=rtcp-mux\r\n", "is not an RTP payload type" },
    { "v=0\r\na=\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=:\r\na=rtpmap:\r\n", NULL },
    { "v=0\r\nc=IN\r\nb=:\r\nm=video 9 UDP/TLS/RTP/SAVPF\r\nc=\r\n", NULL },
    { "v=0\rm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "control character" },
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    assert_offer_rejected (cases[i].text, strlen (cases[i].text), cases[i].expected);
}

static void
test_sdp_offer_rejects_overlong_line (void)
{
  g_autoptr (GString) text = g_string_new (chromium_offer);

  g_string_append (text, "a=x-long:");
  while (text->len < strlen (chromium_offer) + 5000)
    g_string_append_c (text, 'x');
  g_string_append (text, "\r\n");

  assert_offer_rejected (text->str, text->len, "bytes long; at most 4096 are accepted");
}

static void
test_sdp_offer_rejects_nul_byte (void)
{
  g_autofree char *text = g_strdup (chromium_offer);

  text[100] = '\0';
  assert_offer_rejected (text, strlen (chromium_offer), "NUL byte");
}

static void
test_sdp_offer_rejects_invalid_fmtp (void)
{
  g_autofree char *profile = text_replace (chromium_offer, "profile-level-id=4d001f\r\n", "profile-level-id=4d00zz\r\n");
  g_autofree char *mode = text_replace (chromium_offer, "packetization-mode=1;profile-level-id=4d001f",
                                        "packetization-mode=99999999999999999999;profile-level-id=4d001f");

  assert_offer_rejected (profile, strlen (profile), "a=fmtp:127 profile-level-id \"4d00zz\" is not 6 hex digits");
  assert_offer_rejected (mode, strlen (mode), "a=fmtp:127 packetization-mode");
}

static void
test_sdp_offer_accepts_session_level_credentials (void)
{
  g_autofree char *no_ufrag = text_remove_lines (chromium_offer, "a=ice-ufrag");
  g_autofree char *no_pwd = text_remove_lines (no_ufrag, "a=ice-pwd");
  g_autofree char *no_fingerprint = text_remove_lines (no_pwd, "a=fingerprint");
  g_autofree char *no_setup = text_remove_lines (no_fingerprint, "a=setup");
  g_autofree char *text = text_replace (no_setup, "a=msid-semantic: WMS\r\n",
                                        "a=msid-semantic: WMS\r\n"
                                        "a=ice-ufrag:Sess\r\n"
                                        "a=ice-pwd:sessionlevelpassword0123\r\n"
                                        "a=fingerprint:sha-256 " FINGERPRINT_SHA256 "\r\n"
                                        "a=setup:passive\r\n");
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsSdpOffer) offer = offer_parse_text (text, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (offer->ice_ufrag, ==, "Sess");
  g_assert_cmpstr (offer->ice_pwd, ==, "sessionlevelpassword0123");
  g_assert_cmpuint (offer->fingerprint_size, ==, 32);
  g_assert_cmpuint (offer->fingerprint[1], ==, 0x1a);
  g_assert_cmpint (offer->setup, ==, CIMS_DTLS_SETUP_PASSIVE);
}

static void
test_sdp_offer_collects_candidates (void)
{
  g_autofree char *text = text_replace (chromium_offer, "a=mid:1\r\n",
                                        "a=mid:1\r\n"
                                        "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0\r\n"
                                        "a=candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active\r\n");
  g_autoptr (CimsSdpOffer) offer = offer_parse_text (text, NULL);

  g_assert_nonnull (offer);
  g_assert_cmpuint (offer->remote_candidates->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (offer->remote_candidates, 0), ==,
                   "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0");
}

static void
test_sdp_offer_takes_bundled_candidates (void)
{
  g_autofree char *text = text_replace (chromium_offer, "a=mid:0\r\n",
                                        "a=mid:0\r\n"
                                        "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n");
  g_autoptr (CimsSdpOffer) offer = offer_parse_text (text, NULL);

  g_assert_nonnull (offer);
  g_assert_cmpuint (offer->remote_candidates->len, ==, 1);
}

static void
test_sdp_offer_reads_sendonly_video (void)
{
  g_autofree char *text = text_replace (chromium_offer, "a=recvonly", "a=sendonly");
  g_autoptr (CimsSdpOffer) offer = offer_parse_text (text, NULL);

  g_assert_nonnull (offer);
  g_assert_false (offer->video_is_recvonly_or_sendrecv);
}

static void
test_sdp_offer_without_bundle (void)
{
  g_autofree char *text = text_remove_lines (chromium_offer, "a=group:BUNDLE");
  g_autoptr (CimsSdpOffer) offer = offer_parse_text (text, NULL);

  g_assert_nonnull (offer);
  g_assert_false (offer->has_bundle);
}

static char *answer_build (const CimsSdpOffer *offer, CimsDtlsSetup setup,
                           const CimsSdpCodec *codec);

/* Mutates the offer at random (bytes, digits, whole lines) and checks that
 * every result is either rejected with an error or parsed and answerable. */
static void
test_sdp_offer_survives_mutations (void)
{
  static const char alphabet[] = "09:;/ =*-\r\nam";
  g_autoptr (GRand) rand = g_rand_new_with_seed (7);
  guint n_parsed = 0;
  guint round;

  for (round = 0; round < 3000; round++) {
    g_autoptr (GString) text = g_string_new (chromium_offer);
    g_autoptr (GError) error = NULL;
    g_autoptr (CimsSdpOffer) offer = NULL;
    guint n_mutations = g_rand_int_range (rand, 1, 6);
    guint i;

    for (i = 0; i < n_mutations; i++) {
      guint position = g_rand_int_range (rand, 0, text->len);

      switch (g_rand_int_range (rand, 0, 4)) {
      case 0:
        text->str[position] = alphabet[g_rand_int_range (rand, 0, sizeof (alphabet) - 1)];
        break;
      case 1:
        g_string_insert (text, position, "99999999999999999999");
        break;
      case 2:
        g_string_erase (text, position, MIN (40, text->len - position));
        break;
      default:
        g_string_insert_c (text, position, g_rand_int_range (rand, 1, 256));
        break;
      }
    }

    offer = cims_sdp_offer_parse (text->str, text->len, &error);
    if (offer == NULL) {
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
      continue;
    }

    n_parsed++;
    g_assert_no_error (error);
    g_assert_nonnull (offer->ice_ufrag);
    g_assert_cmpuint (offer->video_mline_index, <, offer->mlines->len);
    if (offer->video_codecs->len > 0) {
      g_autofree char *answer = answer_build (offer, CIMS_DTLS_SETUP_ACTIVE,
                                              &g_array_index (offer->video_codecs, CimsSdpCodec, 0));

      g_assert_nonnull (strstr (answer, "m=video 9 "));
    }
  }

  /* Both outcomes must occur, or the mutations test nothing. */
  g_test_message ("%u of %u mutated offers parsed", n_parsed, round);
  g_assert_cmpuint (n_parsed, >, 0);
  g_assert_cmpuint (n_parsed, <, round);
}

/* ---- codec choice ------------------------------------------------------ */

static void
test_sdp_offer_choose_codec_prefers_profile (void)
{
  g_autoptr (CimsSdpOffer) offer = offer_parse_text (chromium_offer, NULL);
  const CimsSdpCodec *codec;

  g_assert_nonnull (offer);

  codec = cims_sdp_offer_choose_codec (offer, CIMS_CODEC_H264, 0x4d0029);
  g_assert_nonnull (codec);
  g_assert_cmpuint (codec->payload_type, ==, 127);

  codec = cims_sdp_offer_choose_codec (offer, CIMS_CODEC_H264, 0x640032);
  g_assert_cmpuint (codec->payload_type, ==, 112);

  codec = cims_sdp_offer_choose_codec (offer, CIMS_CODEC_H264, 0x42e01f);
  g_assert_cmpuint (codec->payload_type, ==, 102);
  g_assert_cmpuint (codec->h264_packetization_mode, ==, 1);

  /* High 4:4:4 is not offered: any packetization-mode=1 entry will do. */
  codec = cims_sdp_offer_choose_codec (offer, CIMS_CODEC_H264, 0xf4001f);
  g_assert_cmpuint (codec->payload_type, ==, 102);

  codec = cims_sdp_offer_choose_codec (offer, CIMS_CODEC_VP8, 0);
  g_assert_cmpuint (codec->payload_type, ==, 96);

  g_assert_null (cims_sdp_offer_choose_codec (offer, CIMS_CODEC_H265, 0));
}

static void
test_sdp_offer_choose_codec_needs_mode_1 (void)
{
  g_autofree char *text = text_replace (chromium_offer, "packetization-mode=1", "packetization-mode=0");
  g_autoptr (CimsSdpOffer) offer = offer_parse_text (text, NULL);

  g_assert_nonnull (offer);
  g_assert_null (cims_sdp_offer_choose_codec (offer, CIMS_CODEC_H264, 0x42e01f));
}

/* ---- answer ------------------------------------------------------------ */

static char *
answer_build (const CimsSdpOffer *offer, CimsDtlsSetup setup, const CimsSdpCodec *codec)
{
  g_autoptr (GPtrArray) candidates = g_ptr_array_new ();
  CimsSdpAnswerParams params = {
    .ice_ufrag = "hubU",
    .ice_pwd = "hubpasswordhubpassword00",
    .fingerprint_sha256 = FINGERPRINT_SHA256,
    .setup = setup,
    .codec = codec,
    .fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f",
    .ssrc = 3735928559u,
    .cname = "cimshub-viewer",
    .stream_id = "cam-bos-0001",
    .track_id = "video0",
    .local_candidates = candidates,
    .session_version = 2,
  };

  g_ptr_array_add (candidates, "candidate:1 1 udp 2130706431 127.0.0.1 20000 typ host");
  g_ptr_array_add (candidates, "candidate:2 1 udp 2130706175 ::1 20001 typ host");

  return cims_sdp_answer_build (offer, &params);
}

static void
test_sdp_answer_rejects_all_but_video (void)
{
  g_autoptr (CimsSdpOffer) offer = offer_parse_text (chromium_offer, NULL);
  const CimsSdpCodec *codec = cims_sdp_offer_choose_codec (offer, CIMS_CODEC_H264, 0x4d001f);
  g_autofree char *answer = answer_build (offer, CIMS_DTLS_SETUP_ACTIVE, codec);
  GstSDPMessage *msg = NULL;
  const GstSDPMedia *audio, *video;
  guint n_open = 0;
  guint i;

  g_assert_nonnull (answer);
  g_assert_cmpint (gst_sdp_message_new (&msg), ==, GST_SDP_OK);
  g_assert_cmpint (gst_sdp_message_parse_buffer ((const guint8 *) answer, strlen (answer), msg), ==, GST_SDP_OK);

  g_assert_cmpuint (gst_sdp_message_medias_len (msg), ==, 2);
  for (i = 0; i < gst_sdp_message_medias_len (msg); i++) {
    if (gst_sdp_media_get_port (gst_sdp_message_get_media (msg, i)) != 0)
      n_open++;
  }
  g_assert_cmpuint (n_open, ==, 1);

  g_assert_cmpstr (gst_sdp_message_get_version (msg), ==, "0");
  g_assert_cmpstr (gst_sdp_message_get_origin (msg)->sess_version, ==, "2");
  g_assert_cmpstr (gst_sdp_message_get_origin (msg)->addr, ==, "127.0.0.1");
  g_assert_cmpstr (gst_sdp_message_get_attribute_val (msg, "group"), ==, "BUNDLE 1");

  audio = gst_sdp_message_get_media (msg, 0);
  g_assert_cmpstr (gst_sdp_media_get_media (audio), ==, "audio");
  g_assert_cmpuint (gst_sdp_media_get_port (audio), ==, 0);
  g_assert_cmpstr (gst_sdp_media_get_proto (audio), ==, "UDP/TLS/RTP/SAVPF");
  g_assert_cmpuint (gst_sdp_media_formats_len (audio), ==, 1);
  g_assert_cmpstr (gst_sdp_media_get_format (audio, 0), ==, "111");
  g_assert_cmpstr (gst_sdp_media_get_attribute_val (audio, "mid"), ==, "0");
  g_assert_nonnull (gst_sdp_media_get_attribute_val (audio, "inactive"));
  g_assert_null (gst_sdp_media_get_attribute_val (audio, "candidate"));

  video = gst_sdp_message_get_media (msg, 1);
  g_assert_cmpstr (gst_sdp_media_get_media (video), ==, "video");
  g_assert_cmpuint (gst_sdp_media_get_port (video), ==, 9);
  g_assert_cmpuint (gst_sdp_media_formats_len (video), ==, 1);
  g_assert_cmpstr (gst_sdp_media_get_format (video, 0), ==, "127");
  g_assert_cmpstr (gst_sdp_media_get_attribute_val (video, "mid"), ==, "1");
  g_assert_cmpstr (gst_sdp_media_get_attribute_val (video, "setup"), ==, "active");
  g_assert_cmpstr (gst_sdp_media_get_attribute_val (video, "fingerprint"), ==, "sha-256 " FINGERPRINT_SHA256);
  g_assert_cmpstr (gst_sdp_media_get_attribute_val (video, "ice-ufrag"), ==, "hubU");
  g_assert_cmpstr (gst_sdp_media_get_attribute_val (video, "ice-pwd"), ==, "hubpasswordhubpassword00");
  g_assert_cmpstr (gst_sdp_media_get_attribute_val (video, "rtpmap"), ==, "127 H264/90000");
  g_assert_cmpstr (gst_sdp_media_get_attribute_val (video, "fmtp"), ==,
                   "127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f");
  g_assert_cmpstr (gst_sdp_media_get_attribute_val_n (video, "rtcp-fb", 0), ==, "127 nack");
  g_assert_cmpstr (gst_sdp_media_get_attribute_val_n (video, "rtcp-fb", 1), ==, "127 nack pli");
  g_assert_cmpstr (gst_sdp_media_get_attribute_val_n (video, "rtcp-fb", 2), ==, "127 ccm fir");
  g_assert_null (gst_sdp_media_get_attribute_val_n (video, "rtcp-fb", 3));
  g_assert_cmpstr (gst_sdp_media_get_attribute_val_n (video, "ssrc", 0), ==, "3735928559 cname:cimshub-viewer");
  g_assert_cmpstr (gst_sdp_media_get_attribute_val_n (video, "ssrc", 1), ==, "3735928559 msid:cam-bos-0001 video0");
  g_assert_cmpstr (gst_sdp_media_get_attribute_val (video, "msid"), ==, "cam-bos-0001 video0");
  g_assert_cmpstr (gst_sdp_media_get_attribute_val_n (video, "candidate", 0), ==,
                   "1 1 udp 2130706431 127.0.0.1 20000 typ host");
  g_assert_cmpstr (gst_sdp_media_get_attribute_val_n (video, "candidate", 1), ==,
                   "2 1 udp 2130706175 ::1 20001 typ host");
  g_assert_nonnull (strstr (answer, "a=end-of-candidates\r\n"));
  g_assert_nonnull (strstr (answer, "a=sendonly\r\n"));
  g_assert_nonnull (strstr (answer, "a=rtcp-mux\r\n"));
  g_assert_nonnull (strstr (answer, "a=rtcp-rsize\r\n"));
  g_assert_null (strstr (answer, "a=recvonly"));
  g_assert_null (strstr (answer, "transport-cc"));

  gst_sdp_message_free (msg);
}

static void
test_sdp_answer_writes_passive_setup (void)
{
  g_autoptr (CimsSdpOffer) offer = offer_parse_text (chromium_offer, NULL);
  const CimsSdpCodec *codec = cims_sdp_offer_choose_codec (offer, CIMS_CODEC_VP8, 0);
  g_autofree char *answer = answer_build (offer, CIMS_DTLS_SETUP_PASSIVE, codec);

  g_assert_nonnull (strstr (answer, "a=setup:passive\r\n"));
  g_assert_null (strstr (answer, "a=setup:active"));
  g_assert_nonnull (strstr (answer, "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"));
  g_assert_nonnull (strstr (answer, "a=rtpmap:96 VP8/90000\r\n"));
  g_assert_nonnull (strstr (answer, "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\n"));
}

static void
test_sdp_answer_omits_bundle_when_not_offered (void)
{
  g_autofree char *text = text_remove_lines (chromium_offer, "a=group:BUNDLE");
  g_autoptr (CimsSdpOffer) offer = offer_parse_text (text, NULL);
  const CimsSdpCodec *codec = cims_sdp_offer_choose_codec (offer, CIMS_CODEC_H264, 0x42e01f);
  g_autofree char *answer = answer_build (offer, CIMS_DTLS_SETUP_ACTIVE, codec);

  g_assert_null (strstr (answer, "a=group:"));
}

static void
test_sdp_answer_keeps_feedback_offered (void)
{
  g_autofree char *text = text_remove_lines (chromium_offer, "a=rtcp-fb:127 ccm fir");
  g_autofree char *no_rsize = text_remove_lines (text, "a=rtcp-rsize");
  g_autoptr (CimsSdpOffer) offer = offer_parse_text (no_rsize, NULL);
  const CimsSdpCodec *codec = cims_sdp_offer_choose_codec (offer, CIMS_CODEC_H264, 0x4d001f);
  g_autofree char *answer = answer_build (offer, CIMS_DTLS_SETUP_ACTIVE, codec);

  g_assert_cmpuint (codec->payload_type, ==, 127);
  g_assert_nonnull (strstr (answer, "a=rtcp-fb:127 nack pli\r\n"));
  g_assert_null (strstr (answer, "ccm fir"));
  g_assert_null (strstr (answer, "rtcp-rsize"));
}

static void
test_sdp_answer_mirrors_application_mline (void)
{
  g_autoptr (GString) text = g_string_new (chromium_offer);
  g_autoptr (CimsSdpOffer) offer = NULL;
  const CimsSdpCodec *codec;
  g_autofree char *answer = NULL;

  g_string_append (text, "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
                         "c=IN IP4 0.0.0.0\r\na=mid:2\r\na=sctp-port:5000\r\n");
  offer = cims_sdp_offer_parse (text->str, text->len, NULL);
  g_assert_nonnull (offer);
  codec = cims_sdp_offer_choose_codec (offer, CIMS_CODEC_H264, 0x4d001f);
  answer = answer_build (offer, CIMS_DTLS_SETUP_ACTIVE, codec);

  g_assert_nonnull (strstr (answer, "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n"));
  g_assert_nonnull (strstr (answer, "a=mid:2\r\n"));
  g_assert_nonnull (strstr (answer, "a=group:BUNDLE 1\r\n"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/sdp/offer/parses-chromium-offer", test_sdp_offer_parses_chromium_offer);
  g_test_add_func ("/sdp/offer/reads-mlines", test_sdp_offer_reads_mlines);
  g_test_add_func ("/sdp/offer/rejects-missing-ice-ufrag", test_sdp_offer_rejects_missing_ice_ufrag);
  g_test_add_func ("/sdp/offer/rejects-missing-ice-pwd", test_sdp_offer_rejects_missing_ice_pwd);
  g_test_add_func ("/sdp/offer/rejects-missing-fingerprint", test_sdp_offer_rejects_missing_fingerprint);
  g_test_add_func ("/sdp/offer/rejects-short-fingerprint", test_sdp_offer_rejects_short_fingerprint);
  g_test_add_func ("/sdp/offer/rejects-malformed-fingerprint", test_sdp_offer_rejects_malformed_fingerprint);
  g_test_add_func ("/sdp/offer/accepts-sha512-fingerprint", test_sdp_offer_accepts_sha512_fingerprint);
  g_test_add_func ("/sdp/offer/rejects-sha1-fingerprint", test_sdp_offer_rejects_sha1_fingerprint);
  g_test_add_func ("/sdp/offer/rejects-missing-video", test_sdp_offer_rejects_missing_video);
  g_test_add_func ("/sdp/offer/rejects-plain-rtp-video", test_sdp_offer_rejects_plain_rtp_video);
  g_test_add_func ("/sdp/offer/rejects-missing-rtcp-mux", test_sdp_offer_rejects_missing_rtcp_mux);
  g_test_add_func ("/sdp/offer/rejects-invalid-setup", test_sdp_offer_rejects_invalid_setup);
  g_test_add_func ("/sdp/offer/reads-setup-roles", test_sdp_offer_reads_setup_roles);
  g_test_add_func ("/sdp/offer/rejects-17-mlines", test_sdp_offer_rejects_17_mlines);
  g_test_add_func ("/sdp/offer/accepts-16-mlines", test_sdp_offer_accepts_16_mlines);
  g_test_add_func ("/sdp/offer/rejects-65-kib", test_sdp_offer_rejects_65_kib);
  g_test_add_func ("/sdp/offer/rejects-binary-garbage", test_sdp_offer_rejects_binary_garbage);
  g_test_add_func ("/sdp/offer/rejects-malformed-text", test_sdp_offer_rejects_malformed_text);
  g_test_add_func ("/sdp/offer/rejects-overlong-line", test_sdp_offer_rejects_overlong_line);
  g_test_add_func ("/sdp/offer/rejects-nul-byte", test_sdp_offer_rejects_nul_byte);
  g_test_add_func ("/sdp/offer/rejects-invalid-fmtp", test_sdp_offer_rejects_invalid_fmtp);
  g_test_add_func ("/sdp/offer/accepts-session-level-credentials", test_sdp_offer_accepts_session_level_credentials);
  g_test_add_func ("/sdp/offer/collects-candidates", test_sdp_offer_collects_candidates);
  g_test_add_func ("/sdp/offer/takes-bundled-candidates", test_sdp_offer_takes_bundled_candidates);
  g_test_add_func ("/sdp/offer/reads-sendonly-video", test_sdp_offer_reads_sendonly_video);
  g_test_add_func ("/sdp/offer/without-bundle", test_sdp_offer_without_bundle);
  g_test_add_func ("/sdp/offer/survives-mutations", test_sdp_offer_survives_mutations);
  g_test_add_func ("/sdp/offer/choose-codec-prefers-profile", test_sdp_offer_choose_codec_prefers_profile);
  g_test_add_func ("/sdp/offer/choose-codec-needs-mode-1", test_sdp_offer_choose_codec_needs_mode_1);
  g_test_add_func ("/sdp/answer/rejects-all-but-video", test_sdp_answer_rejects_all_but_video);
  g_test_add_func ("/sdp/answer/writes-passive-setup", test_sdp_answer_writes_passive_setup);
  g_test_add_func ("/sdp/answer/omits-bundle-when-not-offered", test_sdp_answer_omits_bundle_when_not_offered);
  g_test_add_func ("/sdp/answer/keeps-feedback-offered", test_sdp_answer_keeps_feedback_offered);
  g_test_add_func ("/sdp/answer/mirrors-application-mline", test_sdp_answer_mirrors_application_mline);

  return g_test_run ();
}
