/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for WHEP offers: cims_sdp_offer_parse, codec choice for each
 * camera codec, and cims_sdp_answer_build on every offer that parses. The
 * answer must itself parse as SDP with one m-line per offered m-line. */

#include <stdint.h>

#include <gio/gio.h>
#include <gst/sdp/sdp.h>

#include "hub/hub-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const guint32 camera_profile_level_ids[] = { 0x42e01f, 0x4d001f, 0x640028 };

static void
answer_check (const CimsSdpOffer *offer, const CimsSdpCodec *codec)
{
  g_autoptr(GPtrArray) candidates = g_ptr_array_new ();
  CimsSdpAnswerParams params = { 0 };
  g_autofree char *answer = NULL;
  GstSDPMessage *msg = NULL;

  g_ptr_array_add (candidates, "candidate:1 1 udp 2130706431 127.0.0.1 20000 typ host");
  params.ice_ufrag = "fUzZ";
  params.ice_pwd = "fuzzfuzzfuzzfuzzfuzzfuzz";
  params.fingerprint_sha256 = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:"
                              "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
  params.setup = offer->setup == CIMS_DTLS_SETUP_ACTIVE ? CIMS_DTLS_SETUP_PASSIVE
                                                        : CIMS_DTLS_SETUP_ACTIVE;
  params.codec = codec;
  params.fmtp = codec->fmtp;
  params.ssrc = 0x12345678;
  params.cname = "fuzz";
  params.stream_id = "stream";
  params.track_id = "track";
  params.local_candidates = candidates;
  params.session_version = 1;

  answer = cims_sdp_answer_build (offer, &params);
  g_assert_nonnull (answer);

  g_assert_cmpint (gst_sdp_message_new_from_text (answer, &msg), ==, GST_SDP_OK);
  g_assert_cmpuint (gst_sdp_message_medias_len (msg), ==, offer->n_mlines);
  gst_sdp_message_free (msg);
}

static void
offer_check (const CimsSdpOffer *offer)
{
  static const CimsCodec codecs[] = { CIMS_CODEC_H264, CIMS_CODEC_H265, CIMS_CODEC_VP8 };
  gboolean has_answered = FALSE;

  g_assert_nonnull (offer->ice_ufrag);
  g_assert_nonnull (offer->ice_pwd);
  g_assert_nonnull (offer->video_mid);
  g_assert_cmpuint (offer->fingerprint_size, <=, sizeof offer->fingerprint);
  g_assert_cmpuint (offer->mlines->len, ==, offer->n_mlines);
  g_assert_cmpuint (offer->video_mline_index, <, offer->n_mlines);

  for (guint i = 0; i < G_N_ELEMENTS (codecs); i++) {
    for (guint j = 0; j < G_N_ELEMENTS (camera_profile_level_ids); j++) {
      const CimsSdpCodec *codec = cims_sdp_offer_choose_codec (offer, codecs[i],
                                                               camera_profile_level_ids[j]);

      if (codec == NULL)
        continue;
      g_assert_cmpint (codec->codec, ==, codecs[i]);
      if (!has_answered) {
        answer_check (offer, codec);
        has_answered = TRUE;
      }
    }
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(CimsSdpOffer) offer = cims_sdp_offer_parse ((const char *) data, size, &error);

  if (offer == NULL) {
    g_assert_nonnull (error);
    g_assert_true (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA));
    return 0;
  }

  g_assert_no_error (error);
  offer_check (offer);

  return 0;
}
