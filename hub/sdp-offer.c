/* SPDX-License-Identifier: Apache-2.0 */
/* Parses a viewer's WHEP offer into what the hub needs to answer it: ICE
 * credentials, the DTLS fingerprint and role, and the video m-line's codecs.
 * Writing the answer is left to sdp-answer.c. */

#include "hub/hub-private.h"

#include <string.h>

#include <gio/gio.h>
#include <gst/sdp/sdp.h>

#define OFFER_MAX_BYTES (64 * 1024)
#define OFFER_MAX_LINE_BYTES 4096
#define OFFER_MAX_MLINES 16
#define OFFER_MAX_VIDEO_FORMATS 64
#define MESSAGE_VALUE_MAX_CHARS 64

/* RFC 6184 section 8.1: profile-level-id when the fmtp omits it. */
#define H264_DEFAULT_PROFILE_LEVEL_ID 0x42001f

static void
sdp_codec_clear (gpointer data)
{
  CimsSdpCodec *codec = data;

  g_clear_pointer (&codec->fmtp, g_free);
}

static void
sdp_mline_clear (gpointer data)
{
  CimsSdpMline *mline = data;

  g_clear_pointer (&mline->media, g_free);
  g_clear_pointer (&mline->proto, g_free);
  g_clear_pointer (&mline->first_format, g_free);
  g_clear_pointer (&mline->mid, g_free);
}

/* Returns (transfer full) @value escaped and shortened for an error message. */
static char *
value_for_message (const char *value)
{
  g_autofree char *escaped = g_strescape (value, NULL);

  if (g_utf8_strlen (escaped, -1) <= MESSAGE_VALUE_MAX_CHARS)
    return g_steal_pointer (&escaped);

  return g_strdup_printf ("%.*s...", MESSAGE_VALUE_MAX_CHARS, escaped);
}

static gboolean
offer_error (GError **error, const char *format, ...) G_GNUC_PRINTF (2, 3);

static gboolean
offer_error (GError **error, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, message);

  return FALSE;
}

/* ---- checks on the raw text, before GstSDPMessage parses it ------------ */

/* GstSDPMessage reads up to the first NUL, truncates lines at 8 KiB without
 * saying so and only warns about a wrong v= line, so the limits it does not
 * enforce are checked here on the raw text. */
static gboolean
offer_line_check (const char *line, gsize length, guint line_number,
                  gboolean is_first, GError **error)
{
  gsize i;

  if (length > OFFER_MAX_LINE_BYTES)
    return offer_error (error, "offer line %u is %" G_GSIZE_FORMAT " bytes long; at most %d are accepted",
                        line_number, length, OFFER_MAX_LINE_BYTES);

  for (i = 0; i < length; i++) {
    guchar c = line[i];

    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return offer_error (error, "offer line %u contains the control character 0x%02x",
                          line_number, c);
  }

  if (length < 2 || line[0] < 'a' || line[0] > 'z' || line[1] != '=')
    return offer_error (error, "offer line %u is not of the form <type>=<value>", line_number);

  if (is_first && (length != 3 || memcmp (line, "v=0", 3) != 0))
    return offer_error (error, "offer does not start with v=0");

  return TRUE;
}

static gboolean
offer_text_check (const char *text, gsize size, GError **error)
{
  const char *line = text;
  const char *end = text + size;
  guint line_number = 0;
  guint n_lines = 0;
  guint n_mlines = 0;

  if (size == 0)
    return offer_error (error, "offer is empty");

  if (size > OFFER_MAX_BYTES)
    return offer_error (error, "offer is %" G_GSIZE_FORMAT " bytes; at most %d are accepted",
                        size, OFFER_MAX_BYTES);

  if (memchr (text, '\0', size) != NULL)
    return offer_error (error, "offer contains a NUL byte");

  if (!g_utf8_validate_len (text, size, NULL))
    return offer_error (error, "offer is not valid UTF-8");

  while (line < end) {
    const char *newline = memchr (line, '\n', end - line);
    const char *line_end = newline != NULL ? newline : end;
    gsize length = line_end - line;

    line_number++;
    if (length > 0 && line[length - 1] == '\r')
      length--;

    /* Empty lines, such as after the final CRLF, carry nothing. */
    if (length > 0) {
      if (!offer_line_check (line, length, line_number, n_lines == 0, error))
        return FALSE;
      n_lines++;
      if (line[0] == 'm')
        n_mlines++;
    }

    line = newline != NULL ? newline + 1 : end;
  }

  if (n_lines == 0)
    return offer_error (error, "offer is empty");

  if (n_mlines > OFFER_MAX_MLINES)
    return offer_error (error, "offer has %u m-lines; at most %d are accepted",
                        n_mlines, OFFER_MAX_MLINES);

  return TRUE;
}

/* ---- small value parsers ----------------------------------------------- */

/* Parses a decimal number of 1 to @max_digits digits, no sign or spaces. */
static gboolean
decimal_parse (const char *text, gsize length, guint max_digits, guint64 max, guint64 *value)
{
  guint64 result = 0;
  gsize i;

  if (length == 0 || length > max_digits)
    return FALSE;

  for (i = 0; i < length; i++) {
    if (!g_ascii_isdigit (text[i]))
      return FALSE;
    result = result * 10 + (text[i] - '0');
  }

  if (result > max)
    return FALSE;

  *value = result;

  return TRUE;
}

static gboolean
payload_type_parse (const char *text, gsize length, guint8 *payload_type)
{
  guint64 value;

  if (!decimal_parse (text, length, 3, 127, &value))
    return FALSE;

  *payload_type = value;

  return TRUE;
}

/* Splits "<pt> <rest>" as in a=rtpmap, a=fmtp and a=rtcp-fb, or "* <rest>"
 * in a=rtcp-fb. Sets @rest to the text after the payload type, in @value. */
static gboolean
attribute_payload_type_split (const char *value, guint8 *payload_type,
                              gboolean *is_wildcard, const char **rest)
{
  const char *space = strchr (value, ' ');
  gsize length = space != NULL ? (gsize) (space - value) : strlen (value);

  *is_wildcard = length == 1 && value[0] == '*';
  if (!*is_wildcard && !payload_type_parse (value, length, payload_type))
    return FALSE;

  *rest = space != NULL ? space + 1 : value + length;
  while (**rest == ' ')
    (*rest)++;

  return TRUE;
}

/* RFC 8839 section 5.4: ice-char is ALPHA / DIGIT / "+" / "/". */
static gboolean
ice_string_is_valid (const char *value, gsize min_length, gsize max_length)
{
  gsize length = strlen (value);
  gsize i;

  if (length < min_length || length > max_length)
    return FALSE;

  for (i = 0; i < length; i++) {
    if (!g_ascii_isalnum (value[i]) && value[i] != '+' && value[i] != '/')
      return FALSE;
  }

  return TRUE;
}

/* RFC 4566 token-char, as used by a=mid (RFC 5888). */
static gboolean
token_is_valid (const char *value, gsize max_length)
{
  gsize length = strlen (value);
  gsize i;

  if (length == 0 || length > max_length)
    return FALSE;

  for (i = 0; i < length; i++) {
    guchar c = value[i];

    if (c <= 0x20 || c >= 0x7f || strchr ("\"(),/:;<=>?@[\\]", c) != NULL)
      return FALSE;
  }

  return TRUE;
}

/* ---- session and media attributes ------------------------------------- */

/* Returns (transfer none) the media-level value of @key, else the
 * session-level one, else NULL. */
static const char *
attribute_lookup (const GstSDPMessage *msg, const GstSDPMedia *media, const char *key)
{
  const char *value = gst_sdp_media_get_attribute_val (media, key);

  if (value != NULL)
    return value;

  return gst_sdp_message_get_attribute_val (msg, key);
}

static gboolean
media_has_attribute (const GstSDPMedia *media, const char *key)
{
  return gst_sdp_media_get_attribute_val (media, key) != NULL;
}

static gboolean
offer_ice_parse (CimsSdpOffer *offer, const GstSDPMessage *msg,
                 const GstSDPMedia *video, GError **error)
{
  const char *ufrag = attribute_lookup (msg, video, "ice-ufrag");
  const char *pwd = attribute_lookup (msg, video, "ice-pwd");

  if (ufrag == NULL)
    return offer_error (error, "offer has no a=ice-ufrag");

  if (!ice_string_is_valid (ufrag, 4, 256)) {
    g_autofree char *shown = value_for_message (ufrag);

    return offer_error (error, "a=ice-ufrag value \"%s\" is not 4 to 256 ICE characters", shown);
  }

  if (pwd == NULL)
    return offer_error (error, "offer has no a=ice-pwd");

  if (!ice_string_is_valid (pwd, 22, 256)) {
    g_autofree char *shown = value_for_message (pwd);

    return offer_error (error, "a=ice-pwd value \"%s\" is not 22 to 256 ICE characters", shown);
  }

  offer->ice_ufrag = g_strdup (ufrag);
  offer->ice_pwd = g_strdup (pwd);

  return TRUE;
}

/* Returns the digest size of a supported a=fingerprint hash, or 0. */
static gsize
fingerprint_digest_size (const char *algorithm)
{
  if (g_ascii_strcasecmp (algorithm, "sha-256") == 0)
    return 32;
  if (g_ascii_strcasecmp (algorithm, "sha-384") == 0)
    return 48;
  if (g_ascii_strcasecmp (algorithm, "sha-512") == 0)
    return 64;

  return 0;
}

/* Parses exactly @size colon-separated hex pairs ("AB:cd:..."). */
static gboolean
fingerprint_hex_parse (const char *hex, gsize size, guint8 *digest)
{
  gsize i;

  if (strlen (hex) != size * 3 - 1)
    return FALSE;

  for (i = 0; i < size; i++) {
    const char *pair = hex + i * 3;

    if (!g_ascii_isxdigit (pair[0]) || !g_ascii_isxdigit (pair[1]))
      return FALSE;
    if (i + 1 < size && pair[2] != ':')
      return FALSE;
    digest[i] = g_ascii_xdigit_value (pair[0]) << 4 | g_ascii_xdigit_value (pair[1]);
  }

  return TRUE;
}

/* Takes the first a=fingerprint with a supported hash (RFC 8122 allows
 * several), from the media level when it has any, else the session level. */
static gboolean
offer_fingerprint_parse (CimsSdpOffer *offer, const GstSDPMessage *msg,
                         const GstSDPMedia *video, GError **error)
{
  gboolean is_media_level = media_has_attribute (video, "fingerprint");
  const char *unsupported = NULL;
  guint i;

  for (i = 0;; i++) {
    const char *value = is_media_level
        ? gst_sdp_media_get_attribute_val_n (video, "fingerprint", i)
        : gst_sdp_message_get_attribute_val_n (msg, "fingerprint", i);
    g_auto (GStrv) parts = NULL;
    gsize digest_size;

    if (value == NULL)
      break;

    parts = g_strsplit (value, " ", 2);
    if (parts[0] == NULL || parts[1] == NULL)
      return offer_error (error, "a=fingerprint value is not \"<hash> <hex pairs>\"");

    digest_size = fingerprint_digest_size (parts[0]);
    if (digest_size == 0) {
      unsupported = value;
      continue;
    }

    g_strstrip (parts[1]);
    if (!fingerprint_hex_parse (parts[1], digest_size, offer->fingerprint)) {
      g_autofree char *shown = value_for_message (parts[1]);
      g_autofree char *algorithm = g_ascii_strdown (parts[0], -1);

      return offer_error (error, "a=fingerprint:%s value \"%s\" is not %" G_GSIZE_FORMAT " hex pairs",
                          algorithm, shown, digest_size);
    }

    offer->fingerprint_algorithm = g_ascii_strdown (parts[0], -1);
    offer->fingerprint_size = digest_size;

    return TRUE;
  }

  if (unsupported != NULL)
    return offer_error (error, "offer has no a=fingerprint with sha-256, sha-384 or sha-512");

  return offer_error (error, "offer has no a=fingerprint");
}

static gboolean
offer_setup_parse (CimsSdpOffer *offer, const GstSDPMessage *msg,
                   const GstSDPMedia *video, GError **error)
{
  const char *setup = attribute_lookup (msg, video, "setup");

  /* A WebRTC offerer must send a=setup:actpass, so a missing a=setup is
   * taken as actpass. */
  if (setup == NULL || strcmp (setup, "actpass") == 0)
    offer->setup = CIMS_DTLS_SETUP_ACTPASS;
  else if (strcmp (setup, "active") == 0)
    offer->setup = CIMS_DTLS_SETUP_ACTIVE;
  else if (strcmp (setup, "passive") == 0)
    offer->setup = CIMS_DTLS_SETUP_PASSIVE;
  else {
    g_autofree char *shown = value_for_message (setup);

    return offer_error (error, "a=setup value \"%s\" is not actpass, active or passive", shown);
  }

  return TRUE;
}

/* ---- the m-lines -------------------------------------------------------- */

static void
offer_mlines_collect (CimsSdpOffer *offer, const GstSDPMessage *msg)
{
  guint i;

  for (i = 0; i < gst_sdp_message_medias_len (msg); i++) {
    const GstSDPMedia *media = gst_sdp_message_get_media (msg, i);
    const char *mid = gst_sdp_media_get_attribute_val (media, "mid");
    CimsSdpMline mline = { 0 };

    mline.media = g_strdup (gst_sdp_media_get_media (media));
    mline.proto = g_strdup (gst_sdp_media_get_proto (media));
    if (gst_sdp_media_formats_len (media) > 0)
      mline.first_format = g_strdup (gst_sdp_media_get_format (media, 0));
    if (mid != NULL && token_is_valid (mid, 64))
      mline.mid = g_strdup (mid);
    g_array_append_val (offer->mlines, mline);
  }
}

/* Returns (transfer none) the first m=video line the hub can send on. */
static const GstSDPMedia *
offer_video_find (const GstSDPMessage *msg, guint *index)
{
  guint i;

  for (i = 0; i < gst_sdp_message_medias_len (msg); i++) {
    const GstSDPMedia *media = gst_sdp_message_get_media (msg, i);

    if (g_strcmp0 (gst_sdp_media_get_media (media), "video") == 0 &&
        gst_sdp_media_get_port (media) != 0 &&
        g_strcmp0 (gst_sdp_media_get_proto (media), "UDP/TLS/RTP/SAVPF") == 0) {
      *index = i;
      return media;
    }
  }

  return NULL;
}

static gboolean
offer_video_attributes_parse (CimsSdpOffer *offer, const GstSDPMessage *msg,
                              const GstSDPMedia *video, GError **error)
{
  const char *mid = gst_sdp_media_get_attribute_val (video, "mid");
  const char *direction_session = NULL;

  if (gst_sdp_media_get_port (video) > 65535)
    return offer_error (error, "m=video port %u is not a valid port", gst_sdp_media_get_port (video));

  if (!media_has_attribute (video, "rtcp-mux"))
    return offer_error (error, "offer has no a=rtcp-mux on its m=video line");

  if (mid != NULL && !token_is_valid (mid, 64)) {
    g_autofree char *shown = value_for_message (mid);

    return offer_error (error, "a=mid value \"%s\" is not a token of at most 64 characters", shown);
  }
  offer->video_mid = g_strdup (mid != NULL ? mid : "0");

  offer->has_rtcp_rsize = media_has_attribute (video, "rtcp-rsize");

  /* RFC 4566 section 6: the media-level direction overrides the session's,
   * and sendrecv is the default. */
  if (gst_sdp_message_get_attribute_val (msg, "sendonly") != NULL)
    direction_session = "sendonly";
  else if (gst_sdp_message_get_attribute_val (msg, "inactive") != NULL)
    direction_session = "inactive";

  if (media_has_attribute (video, "sendonly") || media_has_attribute (video, "inactive"))
    offer->video_is_recvonly_or_sendrecv = FALSE;
  else if (media_has_attribute (video, "recvonly") || media_has_attribute (video, "sendrecv"))
    offer->video_is_recvonly_or_sendrecv = TRUE;
  else
    offer->video_is_recvonly_or_sendrecv = direction_session == NULL;

  return TRUE;
}

/* Sets has_bundle when a BUNDLE group (RFC 8843) contains the video mid. */
static void
offer_bundle_parse (CimsSdpOffer *offer, const GstSDPMessage *msg, const GstSDPMedia *video)
{
  guint i;

  if (gst_sdp_media_get_attribute_val (video, "mid") == NULL)
    return;

  for (i = 0;; i++) {
    const char *group = gst_sdp_message_get_attribute_val_n (msg, "group", i);
    g_auto (GStrv) tokens = NULL;

    if (group == NULL)
      return;

    tokens = g_strsplit (group, " ", -1);
    if (g_strcmp0 (tokens[0], "BUNDLE") == 0 &&
        g_strv_contains ((const char *const *) tokens + 1, offer->video_mid)) {
      offer->has_bundle = TRUE;
      return;
    }
  }
}

static guint
media_candidates_collect (const GstSDPMedia *media, GPtrArray *candidates)
{
  guint n_added = 0;
  guint i;

  for (i = 0;; i++) {
    const char *value = gst_sdp_media_get_attribute_val_n (media, "candidate", i);

    if (value == NULL)
      return n_added;

    g_ptr_array_add (candidates, g_strdup_printf ("candidate:%s", value));
    n_added++;
  }
}

/* Takes the video m-line's candidates. A bundled offer may list them only on
 * another m-line of the group, so those are the fallback. */
static void
offer_candidates_collect (CimsSdpOffer *offer, const GstSDPMessage *msg, const GstSDPMedia *video)
{
  guint i;

  if (media_candidates_collect (video, offer->remote_candidates) > 0 || !offer->has_bundle)
    return;

  for (i = 0; i < gst_sdp_message_medias_len (msg); i++) {
    const GstSDPMedia *media = gst_sdp_message_get_media (msg, i);

    if (media == video || gst_sdp_media_get_port (media) == 0)
      continue;
    if (media_candidates_collect (media, offer->remote_candidates) > 0)
      return;
  }
}

/* ---- the video codecs -------------------------------------------------- */

static CimsSdpCodec *
offer_codec_find (CimsSdpOffer *offer, guint8 payload_type)
{
  guint i;

  for (i = 0; i < offer->video_codecs->len; i++) {
    CimsSdpCodec *codec = &g_array_index (offer->video_codecs, CimsSdpCodec, i);

    if (codec->payload_type == payload_type)
      return codec;
  }

  return NULL;
}

/* Returns (transfer none) the a=rtpmap value after "<pt> " for @payload_type. */
static const char *
media_rtpmap_find (const GstSDPMedia *media, guint8 payload_type)
{
  guint i;

  for (i = 0;; i++) {
    const char *value = gst_sdp_media_get_attribute_val_n (media, "rtpmap", i);
    const char *rest;
    guint8 pt;
    gboolean is_wildcard;

    if (value == NULL)
      return NULL;
    if (attribute_payload_type_split (value, &pt, &is_wildcard, &rest) &&
        !is_wildcard && pt == payload_type)
      return rest;
  }
}

static CimsCodec
codec_from_encoding_name (const char *name)
{
  if (g_ascii_strcasecmp (name, "H264") == 0)
    return CIMS_CODEC_H264;
  if (g_ascii_strcasecmp (name, "H265") == 0)
    return CIMS_CODEC_H265;
  if (g_ascii_strcasecmp (name, "VP8") == 0)
    return CIMS_CODEC_VP8;

  return CIMS_CODEC_UNKNOWN;
}

/* Parses "<encoding>/<clock rate>[/<channels>]" (RFC 4566 section 6). */
static gboolean
rtpmap_parse (const char *rtpmap, char **encoding, guint *clock_rate)
{
  g_auto (GStrv) parts = g_strsplit (rtpmap, "/", 3);
  guint64 rate;

  if (parts[0] == NULL || parts[0][0] == '\0' || parts[1] == NULL)
    return FALSE;

  g_strchomp (parts[1]);
  if (!decimal_parse (parts[1], strlen (parts[1]), 10, G_MAXUINT32, &rate) || rate == 0)
    return FALSE;

  *encoding = g_strdup (parts[0]);
  *clock_rate = rate;

  return TRUE;
}

static gboolean
video_format_add (CimsSdpOffer *offer, const GstSDPMedia *video, guint8 payload_type,
                  GError **error)
{
  const char *rtpmap = media_rtpmap_find (video, payload_type);
  g_autofree char *encoding = NULL;
  CimsSdpCodec codec = { 0 };
  guint clock_rate;

  /* Static payload types without a=rtpmap are none the hub can send. */
  if (rtpmap == NULL)
    return TRUE;

  if (!rtpmap_parse (rtpmap, &encoding, &clock_rate)) {
    g_autofree char *shown = value_for_message (rtpmap);

    return offer_error (error, "a=rtpmap:%u value \"%s\" is not <encoding>/<clock rate>",
                        payload_type, shown);
  }

  g_ptr_array_add (offer->video_encodings, g_strdup (encoding));

  /* RFC 6184, RFC 7798 and RFC 7741 fix the video clock at 90 kHz. */
  codec.codec = codec_from_encoding_name (encoding);
  if (codec.codec == CIMS_CODEC_UNKNOWN || clock_rate != 90000)
    return TRUE;

  codec.payload_type = payload_type;
  codec.clock_rate = clock_rate;
  codec.h264_profile_level_id = H264_DEFAULT_PROFILE_LEVEL_ID;
  g_array_append_val (offer->video_codecs, codec);

  return TRUE;
}

static gboolean
offer_video_formats_parse (CimsSdpOffer *offer, const GstSDPMedia *video, GError **error)
{
  guint n_formats = gst_sdp_media_formats_len (video);
  guint8 seen[128] = { 0 };
  guint i;

  if (n_formats > OFFER_MAX_VIDEO_FORMATS)
    return offer_error (error, "m=video has %u payload types; at most %d are accepted",
                        n_formats, OFFER_MAX_VIDEO_FORMATS);

  for (i = 0; i < n_formats; i++) {
    const char *format = gst_sdp_media_get_format (video, i);
    guint8 payload_type;

    if (!payload_type_parse (format, strlen (format), &payload_type)) {
      g_autofree char *shown = value_for_message (format);

      return offer_error (error, "m=video format \"%s\" is not an RTP payload type (0 to 127)", shown);
    }

    if (seen[payload_type])
      return offer_error (error, "m=video lists payload type %u twice", payload_type);
    seen[payload_type] = 1;

    if (!video_format_add (offer, video, payload_type, error))
      return FALSE;
  }

  return TRUE;
}

static gboolean
h264_fmtp_parameter_parse (CimsSdpCodec *codec, const char *key, const char *value,
                           GError **error)
{
  guint64 number;

  if (g_ascii_strcasecmp (key, "packetization-mode") == 0) {
    if (!decimal_parse (value, strlen (value), 1, 2, &number)) {
      g_autofree char *shown = value_for_message (value);

      return offer_error (error, "a=fmtp:%u packetization-mode \"%s\" is not 0, 1 or 2",
                          codec->payload_type, shown);
    }
    codec->h264_packetization_mode = number;
  } else if (g_ascii_strcasecmp (key, "profile-level-id") == 0) {
    gsize i;

    for (i = 0; value[i] != '\0' && g_ascii_isxdigit (value[i]); i++)
      ;
    if (i != 6 || value[i] != '\0') {
      g_autofree char *shown = value_for_message (value);

      return offer_error (error, "a=fmtp:%u profile-level-id \"%s\" is not 6 hex digits",
                          codec->payload_type, shown);
    }
    codec->h264_profile_level_id = g_ascii_strtoull (value, NULL, 16);
  }

  return TRUE;
}

/* Reads "key=value;key=value" (RFC 6184 section 8.2.1), for H.264 only. */
static gboolean
codec_fmtp_parse (CimsSdpCodec *codec, const char *params, GError **error)
{
  g_auto (GStrv) pairs = NULL;
  guint i;

  codec->fmtp = g_strdup (params);
  if (codec->codec != CIMS_CODEC_H264)
    return TRUE;

  pairs = g_strsplit (params, ";", -1);
  for (i = 0; pairs[i] != NULL; i++) {
    char *pair = g_strstrip (pairs[i]);
    char *equals = strchr (pair, '=');

    if (equals == NULL)
      continue;
    *equals = '\0';
    if (!h264_fmtp_parameter_parse (codec, g_strstrip (pair), g_strstrip (equals + 1), error))
      return FALSE;
  }

  return TRUE;
}

/* Links an RTX payload type (RFC 4588, "apt=<pt>") to its codec. */
static gboolean
rtx_fmtp_parse (CimsSdpOffer *offer, guint8 rtx_payload_type, const char *params,
                GError **error)
{
  g_auto (GStrv) pairs = g_strsplit (params, ";", -1);
  guint i;

  for (i = 0; pairs[i] != NULL; i++) {
    char *pair = g_strstrip (pairs[i]);
    CimsSdpCodec *codec;
    guint8 apt;

    if (!g_str_has_prefix (pair, "apt="))
      continue;

    if (!payload_type_parse (pair + 4, strlen (pair + 4), &apt)) {
      g_autofree char *shown = value_for_message (pair + 4);

      return offer_error (error, "a=fmtp:%u apt \"%s\" is not an RTP payload type",
                          rtx_payload_type, shown);
    }

    codec = offer_codec_find (offer, apt);
    if (codec != NULL)
      codec->rtx_payload_type = rtx_payload_type;
  }

  return TRUE;
}

static gboolean
media_payload_type_is_rtx (const GstSDPMedia *media, guint8 payload_type)
{
  const char *rtpmap = media_rtpmap_find (media, payload_type);

  return rtpmap != NULL && g_ascii_strncasecmp (rtpmap, "rtx/", 4) == 0;
}

static gboolean
offer_video_fmtp_parse (CimsSdpOffer *offer, const GstSDPMedia *video, GError **error)
{
  guint i;

  for (i = 0;; i++) {
    const char *value = gst_sdp_media_get_attribute_val_n (video, "fmtp", i);
    const char *params;
    CimsSdpCodec *codec;
    guint8 payload_type;
    gboolean is_wildcard;

    if (value == NULL)
      return TRUE;

    if (!attribute_payload_type_split (value, &payload_type, &is_wildcard, &params) || is_wildcard) {
      g_autofree char *shown = value_for_message (value);

      return offer_error (error, "a=fmtp value \"%s\" does not start with a payload type", shown);
    }

    codec = offer_codec_find (offer, payload_type);
    if (codec != NULL && codec->fmtp == NULL) {
      if (!codec_fmtp_parse (codec, params, error))
        return FALSE;
    } else if (codec == NULL && media_payload_type_is_rtx (video, payload_type)) {
      if (!rtx_fmtp_parse (offer, payload_type, params, error))
        return FALSE;
    }
  }
}

static void
codec_feedback_add (CimsSdpCodec *codec, const char *feedback)
{
  if (strcmp (feedback, "nack") == 0)
    codec->has_nack = TRUE;
  else if (strcmp (feedback, "nack pli") == 0)
    codec->has_nack_pli = TRUE;
  else if (strcmp (feedback, "ccm fir") == 0)
    codec->has_ccm_fir = TRUE;
  else if (strcmp (feedback, "transport-cc") == 0)
    codec->has_transport_cc = TRUE;
}

/* Applies a=rtcp-fb lines (RFC 4585 section 4.2), "*" to every codec. */
static void
offer_video_rtcp_fb_parse (CimsSdpOffer *offer, const GstSDPMedia *video)
{
  guint i, j;

  for (i = 0;; i++) {
    const char *value = gst_sdp_media_get_attribute_val_n (video, "rtcp-fb", i);
    g_autofree char *feedback = NULL;
    const char *rest;
    guint8 payload_type = 0;
    gboolean is_wildcard;

    if (value == NULL)
      return;
    if (!attribute_payload_type_split (value, &payload_type, &is_wildcard, &rest))
      continue;

    feedback = g_strstrip (g_strdup (rest));
    for (j = 0; j < offer->video_codecs->len; j++) {
      CimsSdpCodec *codec = &g_array_index (offer->video_codecs, CimsSdpCodec, j);

      if (is_wildcard || codec->payload_type == payload_type)
        codec_feedback_add (codec, feedback);
    }
  }
}

static gboolean
offer_video_codecs_parse (CimsSdpOffer *offer, const GstSDPMedia *video, GError **error)
{
  if (!offer_video_formats_parse (offer, video, error))
    return FALSE;

  if (!offer_video_fmtp_parse (offer, video, error))
    return FALSE;

  offer_video_rtcp_fb_parse (offer, video);

  return TRUE;
}

/* ---- entry points ------------------------------------------------------ */

static CimsSdpOffer *
sdp_offer_new (void)
{
  CimsSdpOffer *offer = g_new0 (CimsSdpOffer, 1);

  offer->video_codecs = g_array_new (FALSE, TRUE, sizeof (CimsSdpCodec));
  g_array_set_clear_func (offer->video_codecs, sdp_codec_clear);
  offer->mlines = g_array_new (FALSE, TRUE, sizeof (CimsSdpMline));
  g_array_set_clear_func (offer->mlines, sdp_mline_clear);
  offer->remote_candidates = g_ptr_array_new_with_free_func (g_free);
  offer->video_encodings = g_ptr_array_new_with_free_func (g_free);

  return offer;
}

static gboolean
offer_message_parse (CimsSdpOffer *offer, const GstSDPMessage *msg, GError **error)
{
  const GstSDPMedia *video;

  offer->n_mlines = gst_sdp_message_medias_len (msg);
  offer_mlines_collect (offer, msg);

  video = offer_video_find (msg, &offer->video_mline_index);
  if (video == NULL)
    return offer_error (error, "offer has no m=video line with a non-zero port and UDP/TLS/RTP/SAVPF");

  if (!offer_ice_parse (offer, msg, video, error) ||
      !offer_fingerprint_parse (offer, msg, video, error) ||
      !offer_setup_parse (offer, msg, video, error) ||
      !offer_video_attributes_parse (offer, msg, video, error) ||
      !offer_video_codecs_parse (offer, video, error))
    return FALSE;

  offer_bundle_parse (offer, msg, video);
  offer_candidates_collect (offer, msg, video);

  return TRUE;
}

CimsSdpOffer *
cims_sdp_offer_parse (const char *text, gsize size, GError **error)
{
  g_autoptr (CimsSdpOffer) offer = NULL;
  g_autofree char *terminated = NULL;
  GstSDPMessage *msg = NULL;
  gboolean is_parsed;

  g_return_val_if_fail (text != NULL || size == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!offer_text_check (text, size, error))
    return NULL;

  terminated = g_strndup (text, size);
  if (gst_sdp_message_new_from_text (terminated, &msg) != GST_SDP_OK) {
    offer_error (error, "offer is not an SDP message");
    return NULL;
  }

  offer = sdp_offer_new ();
  is_parsed = offer_message_parse (offer, msg, error);
  gst_sdp_message_free (msg);
  if (!is_parsed)
    return NULL;

  return g_steal_pointer (&offer);
}

void
cims_sdp_offer_free (CimsSdpOffer *offer)
{
  if (offer == NULL)
    return;

  g_free (offer->ice_ufrag);
  g_free (offer->ice_pwd);
  g_free (offer->fingerprint_algorithm);
  g_free (offer->video_mid);
  g_clear_pointer (&offer->video_codecs, g_array_unref);
  g_clear_pointer (&offer->mlines, g_array_unref);
  g_clear_pointer (&offer->remote_candidates, g_ptr_array_unref);
  g_clear_pointer (&offer->video_encodings, g_ptr_array_unref);
  g_free (offer);
}

/* The first byte of profile-level-id is profile_idc (RFC 6184 section 8.1). */
static guint8
h264_profile_idc (guint32 profile_level_id)
{
  return (profile_level_id >> 16) & 0xff;
}

const CimsSdpCodec *
cims_sdp_offer_choose_codec (const CimsSdpOffer *offer, CimsCodec codec,
                             guint32 camera_profile_level_id)
{
  const CimsSdpCodec *fallback = NULL;
  guint i;

  g_return_val_if_fail (offer != NULL, NULL);

  for (i = 0; i < offer->video_codecs->len; i++) {
    const CimsSdpCodec *entry = &g_array_index (offer->video_codecs, CimsSdpCodec, i);

    if (entry->codec != codec)
      continue;
    if (codec != CIMS_CODEC_H264)
      return entry;

    /* Relayed camera H.264 uses FU-A, which needs packetization-mode=1. */
    if (entry->h264_packetization_mode != 1)
      continue;
    if (h264_profile_idc (entry->h264_profile_level_id) == h264_profile_idc (camera_profile_level_id))
      return entry;
    if (fallback == NULL)
      fallback = entry;
  }

  return fallback;
}
