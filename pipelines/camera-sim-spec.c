/* SPDX-License-Identifier: Apache-2.0 */
/* Parsing of the camera simulator's --camera SPEC (comma-separated key=value)
 * into a CimsSimCamera, and the defaults applied after it. Building the
 * media from the result is camera-sim-factory.c's job. */
#include "camera-sim.h"

#include <string.h>

G_DEFINE_QUARK (cims-sim-error-quark, cims_sim_error)

#define DEFAULT_WIDTH 1280
#define DEFAULT_HEIGHT 720
#define DEFAULT_FPS 25

typedef gboolean (*SpecKeyFunc) (CimsSimCamera *camera, const char *value, GError **error);

typedef struct {
  const char *key;
  SpecKeyFunc parse;
} SpecKey;

static gboolean
spec_fail (GError **error, const char *key, const char *value, const char *expected)
{
  g_set_error (error, CIMS_SIM_ERROR, CIMS_SIM_ERROR_INVALID_SPEC,
               "invalid value '%s' for key '%s': expected %s", value, key, expected);
  return FALSE;
}

static gboolean
spec_parse_uint (const char *key, const char *value, guint min, guint max,
                 guint *out, GError **error)
{
  guint64 number;
  g_autofree char *expected = NULL;

  if (g_ascii_string_to_unsigned (value, 10, min, max, &number, NULL)) {
    *out = (guint) number;
    return TRUE;
  }

  expected = g_strdup_printf ("an integer from %u to %u", min, max);
  return spec_fail (error, key, value, expected);
}

static gboolean
spec_parse_path (CimsSimCamera *camera, const char *value, GError **error)
{
  const char *allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./";

  if (*value == '\0' || strspn (value, allowed) != strlen (value) || strstr (value, "..") != NULL)
    return spec_fail (error, "path", value, "letters, digits and '-_./' without '..'");

  g_free (camera->mount_path);
  camera->mount_path = g_strconcat (value[0] == '/' ? "" : "/", value, NULL);
  return TRUE;
}

static gboolean
spec_parse_codec (CimsSimCamera *camera, const char *value, GError **error)
{
  if (g_str_equal (value, "h264"))
    camera->codec = CIMS_SIM_CODEC_H264;
  else if (g_str_equal (value, "h265"))
    camera->codec = CIMS_SIM_CODEC_H265;
  else
    return spec_fail (error, "codec", value, "h264 or h265");

  return TRUE;
}

static gboolean
spec_parse_profile (CimsSimCamera *camera, const char *value, GError **error)
{
  const char *profiles[] = { "constrained-baseline", "baseline", "main", "high", NULL };

  if (!g_strv_contains (profiles, value))
    return spec_fail (error, "profile", value, "constrained-baseline, baseline, main or high");

  g_free (camera->h264_profile);
  camera->h264_profile = g_strdup (value);
  return TRUE;
}

/* Encoders and payloaders need even sizes for 4:2:0 chroma. */
static gboolean
spec_parse_even_size (const char *key, const char *value, guint *out, GError **error)
{
  if (!spec_parse_uint (key, value, 16, 7680, out, error))
    return FALSE;

  if (*out % 2 != 0)
    return spec_fail (error, key, value, "an even number of pixels");

  return TRUE;
}

static gboolean
spec_parse_width (CimsSimCamera *camera, const char *value, GError **error)
{
  return spec_parse_even_size ("width", value, &camera->width, error);
}

static gboolean
spec_parse_height (CimsSimCamera *camera, const char *value, GError **error)
{
  return spec_parse_even_size ("height", value, &camera->height, error);
}

static gboolean
spec_parse_fps (CimsSimCamera *camera, const char *value, GError **error)
{
  return spec_parse_uint ("fps", value, 1, 120, &camera->fps, error);
}

static gboolean
spec_parse_keyint (CimsSimCamera *camera, const char *value, GError **error)
{
  return spec_parse_uint ("keyint", value, 1, 3000, &camera->keyint_frames, error);
}

static gboolean
spec_parse_kbps (CimsSimCamera *camera, const char *value, GError **error)
{
  return spec_parse_uint ("kbps", value, 16, 100000, &camera->bitrate_kbps, error);
}

static gboolean
spec_parse_audio (CimsSimCamera *camera, const char *value, GError **error)
{
  if (g_str_equal (value, "none"))
    camera->audio = CIMS_SIM_AUDIO_NONE;
  else if (g_str_equal (value, "pcma"))
    camera->audio = CIMS_SIM_AUDIO_PCMA;
  else if (g_str_equal (value, "aac"))
    camera->audio = CIMS_SIM_AUDIO_AAC;
  else if (g_str_equal (value, "opus"))
    camera->audio = CIMS_SIM_AUDIO_OPUS;
  else
    return spec_fail (error, "audio", value, "none, pcma, aac or opus");

  return TRUE;
}

static gboolean
spec_parse_source (CimsSimCamera *camera, const char *value, GError **error)
{
  if (g_str_equal (value, "pattern"))
    camera->source = CIMS_SIM_SOURCE_PATTERN;
  else if (g_str_equal (value, "file"))
    camera->source = CIMS_SIM_SOURCE_FILE;
  else
    return spec_fail (error, "source", value, "pattern or file");

  return TRUE;
}

static gboolean
spec_parse_user (CimsSimCamera *camera, const char *value, GError **error)
{
  if (*value == '\0' || strchr (value, ':') != NULL)
    return spec_fail (error, "user", value, "a non-empty name without ':'");

  g_free (camera->user);
  camera->user = g_strdup (value);
  return TRUE;
}

static gboolean
spec_parse_password (CimsSimCamera *camera, const char *value, GError **error)
{
  /* The value is a secret: the message does not repeat it. */
  if (*value == '\0') {
    g_set_error_literal (error, CIMS_SIM_ERROR, CIMS_SIM_ERROR_INVALID_SPEC,
                         "invalid value for key 'password': expected a non-empty password");
    return FALSE;
  }

  g_free (camera->password);
  camera->password = g_strdup (value);
  return TRUE;
}

static gboolean
spec_parse_auth (CimsSimCamera *camera, const char *value, GError **error)
{
  if (g_str_equal (value, "digest"))
    camera->allows_basic = FALSE;
  else if (g_str_equal (value, "basic"))
    camera->allows_basic = TRUE;
  else
    return spec_fail (error, "auth", value, "digest or basic");

  return TRUE;
}

static gboolean
spec_parse_pattern (CimsSimCamera *camera, const char *value, GError **error)
{
  g_autoptr(GstElement) testsrc = gst_element_factory_make ("videotestsrc", NULL);
  GParamSpec *pspec;
  GEnumClass *patterns;

  if (testsrc == NULL) {
    g_set_error_literal (error, CIMS_SIM_ERROR, CIMS_SIM_ERROR_MISSING_ELEMENT,
                         "element 'videotestsrc' is not installed (gstreamer1.0-plugins-base)");
    return FALSE;
  }
  gst_object_ref_sink (testsrc);

  pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (testsrc), "pattern");
  patterns = G_PARAM_SPEC_ENUM (pspec)->enum_class;
  if (g_enum_get_value_by_nick (patterns, value) == NULL)
    return spec_fail (error, "pattern", value, "a videotestsrc pattern name such as smpte or ball");

  g_free (camera->pattern);
  camera->pattern = g_strdup (value);
  return TRUE;
}

static gboolean
spec_parse_transport (CimsSimCamera *camera, const char *value, GError **error)
{
  if (g_str_equal (value, "any"))
    camera->faults.is_tcp_only = FALSE;
  else if (g_str_equal (value, "tcp"))
    camera->faults.is_tcp_only = TRUE;
  else
    return spec_fail (error, "transport", value, "any or tcp");

  return TRUE;
}

/* Fault names of `fault=`, each a switch of CimsSimFaultFlags. */
static const struct {
  const char *name;
  CimsSimFaultFlags flag;
} spec_fault_names[] = {
  { "sprop-only", CIMS_SIM_FAULT_SPROP_ONLY },
  { "resize", CIMS_SIM_FAULT_RESIZE },
  { "bframes", CIMS_SIM_FAULT_BFRAMES },
  { "big-keyframe", CIMS_SIM_FAULT_BIG_KEYFRAME },
  { "stap-a", CIMS_SIM_FAULT_STAP_A },
  { "reorder", CIMS_SIM_FAULT_REORDER },
  { "silent", CIMS_SIM_FAULT_SILENT },
  { "udp-refused", CIMS_SIM_FAULT_UDP_REFUSED },
  { "no-marker", CIMS_SIM_FAULT_NO_MARKER },
  { "broken-audio", CIMS_SIM_FAULT_BROKEN_AUDIO },
  { "tcp-junk", CIMS_SIM_FAULT_TCP_JUNK },
  { "empty-nonce", CIMS_SIM_FAULT_EMPTY_NONCE },
  { "basic-and-digest", CIMS_SIM_FAULT_BASIC_AND_DIGEST },
  { "auth-describe-only", CIMS_SIM_FAULT_AUTH_DESCRIBE_ONLY },
  { "get-parameter-454", CIMS_SIM_FAULT_GET_PARAMETER_454 },
  { "get-parameter-unlisted", CIMS_SIM_FAULT_GET_PARAMETER_UNLISTED },
  { "short-timeout", CIMS_SIM_FAULT_SHORT_TIMEOUT },
  { "redirect", CIMS_SIM_FAULT_REDIRECT },
  { "metadata-track", CIMS_SIM_FAULT_METADATA_TRACK },
  { "bad-sdp", CIMS_SIM_FAULT_BAD_SDP },
  { "options-bare", CIMS_SIM_FAULT_OPTIONS_BARE },
  { "inband-only", CIMS_SIM_FAULT_INBAND_ONLY },
};

static gboolean
spec_fault_lookup (const char *name, CimsSimFaultFlags *flag)
{
  for (gsize i = 0; i < G_N_ELEMENTS (spec_fault_names); i++) {
    if (g_str_equal (spec_fault_names[i].name, name)) {
      *flag = spec_fault_names[i].flag;
      return TRUE;
    }
  }

  return FALSE;
}

/* `fault=NAME+NAME` switches faults that have no key of their own. */
static gboolean
spec_parse_fault (CimsSimCamera *camera, const char *value, GError **error)
{
  g_auto(GStrv) names = g_strsplit (value, "+", -1);

  for (guint i = 0; names[i] != NULL; i++) {
    CimsSimFaultFlags flag;

    if (g_str_equal (names[i], "none"))
      continue;

    if (!spec_fault_lookup (names[i], &flag))
      return spec_fail (error, "fault", names[i],
                        "none or a '+'-separated list of sprop-only, resize, bframes, big-keyframe, "
                        "stap-a, reorder, silent, udp-refused, broken-audio, tcp-junk, empty-nonce, "
                        "basic-and-digest, auth-describe-only, get-parameter-454, "
                        "get-parameter-unlisted, short-timeout, redirect, metadata-track, bad-sdp, "
                        "options-bare, no-marker, inband-only");

    camera->faults.flags |= flag;
    if (flag == CIMS_SIM_FAULT_UDP_REFUSED)
      camera->faults.is_tcp_only = TRUE;
  }

  return TRUE;
}

static const SpecKey spec_keys[] = {
  { "path", spec_parse_path },
  { "codec", spec_parse_codec },
  { "profile", spec_parse_profile },
  { "width", spec_parse_width },
  { "height", spec_parse_height },
  { "fps", spec_parse_fps },
  { "keyint", spec_parse_keyint },
  { "kbps", spec_parse_kbps },
  { "audio", spec_parse_audio },
  { "source", spec_parse_source },
  { "user", spec_parse_user },
  { "password", spec_parse_password },
  { "auth", spec_parse_auth },
  { "pattern", spec_parse_pattern },
  { "transport", spec_parse_transport },
  { "fault", spec_parse_fault },
};

static const SpecKey *
spec_key_lookup (const char *key)
{
  for (gsize i = 0; i < G_N_ELEMENTS (spec_keys); i++) {
    if (g_str_equal (spec_keys[i].key, key))
      return &spec_keys[i];
  }

  return NULL;
}

static gboolean
spec_parse_item (CimsSimCamera *camera, const char *item, GHashTable *seen, GError **error)
{
  const char *equals = strchr (item, '=');
  g_autofree char *key = NULL;
  const SpecKey *spec_key;

  if (equals == NULL) {
    g_set_error (error, CIMS_SIM_ERROR, CIMS_SIM_ERROR_INVALID_SPEC,
                 "item '%s' is not key=value", item);
    return FALSE;
  }

  key = g_strndup (item, equals - item);
  spec_key = spec_key_lookup (key);
  if (spec_key == NULL) {
    g_set_error (error, CIMS_SIM_ERROR, CIMS_SIM_ERROR_INVALID_SPEC,
                 "unknown key '%s' (known: path, codec, profile, width, height, fps, keyint, "
                 "kbps, audio, source, user, password, auth, pattern, transport, fault)", key);
    return FALSE;
  }

  if (!g_hash_table_add (seen, g_strdup (key))) {
    g_set_error (error, CIMS_SIM_ERROR, CIMS_SIM_ERROR_INVALID_SPEC,
                 "key '%s' is given twice", key);
    return FALSE;
  }

  return spec_key->parse (camera, equals + 1, error);
}

/* Checks the rules that involve more than one key. */
static gboolean
spec_check_combination (CimsSimCamera *camera, GHashTable *seen, GError **error)
{
  const char *message = NULL;

  if (camera->mount_path == NULL)
    message = "key 'path' is missing";
  else if ((camera->width == 0) != (camera->height == 0))
    message = "keys 'width' and 'height' must be given together";
  else if ((camera->user == NULL) != (camera->password == NULL))
    message = "keys 'user' and 'password' must be given together";
  else if (g_hash_table_contains (seen, "auth") && camera->user == NULL)
    message = "key 'auth' needs 'user' and 'password'";
  else if (g_hash_table_contains (seen, "profile") && camera->codec != CIMS_SIM_CODEC_H264)
    message = "key 'profile' applies to codec=h264 only";
  else if (camera->faults.flags != 0 && camera->codec != CIMS_SIM_CODEC_H264)
    message = "key 'fault' applies to codec=h264 only";
  else if ((camera->faults.flags & CIMS_SIM_FAULTS_RAW) != 0
           && (camera->source == CIMS_SIM_SOURCE_FILE || camera->audio != CIMS_SIM_AUDIO_NONE))
    message = "faults of the raw RTSP responder need source=pattern and audio=none";

  if (message == NULL)
    return TRUE;

  g_set_error_literal (error, CIMS_SIM_ERROR, CIMS_SIM_ERROR_INVALID_SPEC, message);
  return FALSE;
}

char *
cims_sim_spec_redact (const char *spec)
{
  g_auto(GStrv) items = g_strsplit (spec, ",", -1);

  for (guint i = 0; items[i] != NULL; i++) {
    if (!g_str_has_prefix (g_strstrip (items[i]), "password="))
      continue;

    g_free (items[i]);
    items[i] = g_strdup ("password=***");
  }

  return g_strjoinv (",", items);
}

static CimsSimCamera *
camera_new_default (const char *spec)
{
  CimsSimCamera *camera = g_new0 (CimsSimCamera, 1);

  camera->spec = cims_sim_spec_redact (spec);
  camera->codec = CIMS_SIM_CODEC_H264;
  camera->h264_profile = g_strdup ("constrained-baseline");
  camera->keyint_frames = 50;
  camera->bitrate_kbps = 2000;
  camera->audio = CIMS_SIM_AUDIO_NONE;
  camera->source = CIMS_SIM_SOURCE_PATTERN;
  camera->pattern = g_strdup ("smpte");

  return camera;
}

CimsSimCamera *
cims_sim_camera_parse (const char *spec, GError **error)
{
  g_autoptr(CimsSimCamera) camera = NULL;
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_auto(GStrv) items = NULL;

  g_return_val_if_fail (spec != NULL, NULL);

  camera = camera_new_default (spec);
  items = g_strsplit (spec, ",", -1);
  for (guint i = 0; items[i] != NULL; i++) {
    g_strstrip (items[i]);
    if (items[i][0] == '\0')
      continue;

    if (!spec_parse_item (camera, items[i], seen, error))
      return NULL;
  }

  if (!spec_check_combination (camera, seen, error))
    return NULL;

  return g_steal_pointer (&camera);
}

void
cims_sim_camera_free (CimsSimCamera *camera)
{
  if (camera == NULL)
    return;

  g_free (camera->spec);
  g_free (camera->mount_path);
  g_free (camera->h264_profile);
  g_free (camera->pattern);
  g_free (camera->user);
  if (camera->password != NULL)
    memset (camera->password, 0, strlen (camera->password));
  g_free (camera->password);
  g_free (camera->footage_path);
  g_free (camera);
}

/* Switches a file camera to the footage when it decodes, taking its native
 * size and rate where the SPEC gave none. */
static gboolean
camera_resolve_footage (CimsSimCamera *camera, const char *footage_path)
{
  g_autoptr(GError) error = NULL;
  guint width, height, fps;

  if (footage_path == NULL || *footage_path == '\0') {
    g_warning ("camera=%s: source=file but neither --footage nor CIMS_TEST_FOOTAGE is set, "
               "serving the test pattern instead", camera->mount_path);
    return FALSE;
  }

  if (!cims_sim_footage_probe (footage_path, &width, &height, &fps, &error)) {
    g_warning ("camera=%s: %s; serving the test pattern instead",
               camera->mount_path, error->message);
    return FALSE;
  }

  if (camera->width == 0) {
    camera->width = width;
    camera->height = height;
  }
  if (camera->fps == 0)
    camera->fps = fps;
  camera->footage_path = g_strdup (footage_path);

  return TRUE;
}

void
cims_sim_camera_resolve (CimsSimCamera *camera, const char *footage_path)
{
  if (camera->source == CIMS_SIM_SOURCE_FILE && !camera_resolve_footage (camera, footage_path))
    camera->source = CIMS_SIM_SOURCE_PATTERN;

  if (camera->width == 0) {
    camera->width = DEFAULT_WIDTH;
    camera->height = DEFAULT_HEIGHT;
  }
  if (camera->fps == 0)
    camera->fps = DEFAULT_FPS;
}

const char *
cims_sim_codec_to_string (CimsSimCodec codec)
{
  return codec == CIMS_SIM_CODEC_H265 ? "h265" : "h264";
}

const char *
cims_sim_audio_to_string (CimsSimAudio audio)
{
  switch (audio) {
    case CIMS_SIM_AUDIO_PCMA:
      return "pcma";
    case CIMS_SIM_AUDIO_AAC:
      return "aac";
    case CIMS_SIM_AUDIO_OPUS:
      return "opus";
    case CIMS_SIM_AUDIO_NONE:
    default:
      return "none";
  }
}
