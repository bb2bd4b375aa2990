/* SPDX-License-Identifier: Apache-2.0 */
/* Shared declarations of the camera simulator program: the parsed camera
 * description, the media factory that serves it, the footage loop and the
 * per-mount authentication. Nothing outside cimshub-camera-sim includes it. */
#pragma once

#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>

G_BEGIN_DECLS

#define CIMS_SIM_ERROR (cims_sim_error_quark ())
GQuark cims_sim_error_quark (void);

typedef enum {
  CIMS_SIM_ERROR_INVALID_SPEC,   /* a --camera value is malformed */
  CIMS_SIM_ERROR_MISSING_ELEMENT,
  CIMS_SIM_ERROR_FOOTAGE,        /* the footage file cannot be decoded */
} CimsSimError;

typedef enum {
  CIMS_SIM_CODEC_H264,
  CIMS_SIM_CODEC_H265,
} CimsSimCodec;

typedef enum {
  CIMS_SIM_AUDIO_NONE,
  CIMS_SIM_AUDIO_PCMA,
  CIMS_SIM_AUDIO_AAC,
  CIMS_SIM_AUDIO_OPUS,
} CimsSimAudio;

typedef enum {
  CIMS_SIM_SOURCE_PATTERN,
  CIMS_SIM_SOURCE_FILE,
} CimsSimSource;

/* Switches that make the simulated camera misbehave the way real cameras do.
 * Each is parsed from the camera's SPEC; `fault=` names the switches that have
 * no key of their own. */
typedef enum {
  /* Served by gst-rtsp-server, changed by pad probes or encoder settings. */
  CIMS_SIM_FAULT_SPROP_ONLY = 1 << 0,    /* SPS/PPS only in sprop-parameter-sets */
  CIMS_SIM_FAULT_RESIZE = 1 << 1,        /* picture size toggles every few seconds */
  CIMS_SIM_FAULT_BFRAMES = 1 << 2,       /* B-frames; SPS/PPS with the previous timestamp and marker */
  CIMS_SIM_FAULT_BIG_KEYFRAME = 1 << 3,  /* keyframes in more than 150 FU-A fragments */
  CIMS_SIM_FAULT_STAP_A = 1 << 4,        /* SPS, PPS and IDR in one STAP-A */
  CIMS_SIM_FAULT_REORDER = 1 << 5,       /* packets of a frame swapped in pairs, one moved two later */
  CIMS_SIM_FAULT_SILENT = 1 << 6,        /* RTP stops after a few seconds, the session stays open */
  CIMS_SIM_FAULT_UDP_REFUSED = 1 << 7,   /* SETUP over UDP answered 461 */
  CIMS_SIM_FAULT_NO_MARKER = 1 << 20,    /* RTP marker bit cleared on every packet */
  /* Served by the raw RTSP responder of camera-sim-raw.c. */
  CIMS_SIM_FAULT_BROKEN_AUDIO = 1 << 8,  /* audio track with empty config= and a wrong fmtp type */
  CIMS_SIM_FAULT_TCP_JUNK = 1 << 9,      /* stray bytes between frames, blank header line, early RTCP */
  CIMS_SIM_FAULT_EMPTY_NONCE = 1 << 10,  /* Digest challenge with nonce="" */
  CIMS_SIM_FAULT_BASIC_AND_DIGEST = 1 << 11, /* both challenges offered, Basic first */
  CIMS_SIM_FAULT_AUTH_DESCRIBE_ONLY = 1 << 12, /* only DESCRIBE checks credentials */
  CIMS_SIM_FAULT_GET_PARAMETER_454 = 1 << 13,  /* GET_PARAMETER answered 454, no keep-alive */
  CIMS_SIM_FAULT_GET_PARAMETER_UNLISTED = 1 << 14, /* GET_PARAMETER not in Public, no keep-alive */
  CIMS_SIM_FAULT_SHORT_TIMEOUT = 1 << 15,  /* Session timeout 8 s, enforced */
  CIMS_SIM_FAULT_REDIRECT = 1 << 16,     /* DESCRIBE answered 302 to a second port */
  CIMS_SIM_FAULT_METADATA_TRACK = 1 << 17, /* ONVIF metadata tracks ahead of the video */
  CIMS_SIM_FAULT_BAD_SDP = 1 << 18,      /* SDP without its v=, o= and s= lines */
  CIMS_SIM_FAULT_OPTIONS_BARE = 1 << 19, /* OPTIONS response without Public or Allow */
  CIMS_SIM_FAULT_INBAND_ONLY = 1 << 21,  /* fmtp without profile-level-id and sprop-parameter-sets */
} CimsSimFaultFlags;

/* The faults that need the raw RTSP responder instead of gst-rtsp-server. */
#define CIMS_SIM_FAULTS_RAW (CIMS_SIM_FAULT_BROKEN_AUDIO | CIMS_SIM_FAULT_TCP_JUNK \
                             | CIMS_SIM_FAULT_EMPTY_NONCE | CIMS_SIM_FAULT_BASIC_AND_DIGEST \
                             | CIMS_SIM_FAULT_AUTH_DESCRIBE_ONLY | CIMS_SIM_FAULT_GET_PARAMETER_454 \
                             | CIMS_SIM_FAULT_GET_PARAMETER_UNLISTED | CIMS_SIM_FAULT_SHORT_TIMEOUT \
                             | CIMS_SIM_FAULT_REDIRECT | CIMS_SIM_FAULT_METADATA_TRACK \
                             | CIMS_SIM_FAULT_BAD_SDP | CIMS_SIM_FAULT_OPTIONS_BARE \
                             | CIMS_SIM_FAULT_INBAND_ONLY)

typedef struct {
  gboolean is_tcp_only;          /* transport=tcp or fault=udp-refused: RTP over UDP is rejected */
  CimsSimFaultFlags flags;
} CimsSimFaults;

/* One simulated camera, i.e. one mount point. Sizes and rates that are 0 were
 * not given in the SPEC; cims_sim_camera_resolve() fills them in. */
typedef struct {
  char *spec;                    /* the --camera value, password hidden, for messages */
  char *mount_path;              /* "/bos-0001" */
  CimsSimCodec codec;
  char *h264_profile;            /* caps profile of the H.264 stream */
  guint width;
  guint height;
  guint fps;
  guint keyint_frames;           /* frames from one keyframe to the next */
  guint bitrate_kbps;
  CimsSimAudio audio;
  CimsSimSource source;
  char *pattern;                 /* videotestsrc pattern nick */
  char *user;                    /* NULL: the mount needs no login */
  char *password;                /* never logged */
  gboolean allows_basic;         /* auth=basic: Basic accepted besides Digest */
  CimsSimFaults faults;
  char *footage_path;            /* set by resolve when source is the file */
} CimsSimCamera;

/* Parses one --camera value. Returns (transfer full) the camera, or NULL with
 * CIMS_SIM_ERROR_INVALID_SPEC naming the key and value. Needs gst_init(). */
CimsSimCamera *cims_sim_camera_parse (const char *spec, GError **error);
void cims_sim_camera_free (CimsSimCamera *camera);

/* Returns (transfer full) @spec with the password value replaced by "***",
 * for messages. */
char *cims_sim_spec_redact (const char *spec);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsSimCamera, cims_sim_camera_free)

/* Chooses the picture source and fills in the sizes and rate not given.
 * @footage_path (nullable) is the --footage value or CIMS_TEST_FOOTAGE. A file
 * source whose footage is missing or undecodable falls back to the pattern
 * and logs a warning, so this cannot fail. Blocks while probing the file. */
void cims_sim_camera_resolve (CimsSimCamera *camera, const char *footage_path);

const char *cims_sim_codec_to_string (CimsSimCodec codec);
const char *cims_sim_audio_to_string (CimsSimAudio audio);

/* Builds (transfer full) the shared, live media factory that serves @camera,
 * or returns NULL with CIMS_SIM_ERROR_MISSING_ELEMENT when an encoder or
 * payloader it needs is not installed. The factory keeps a copy of what it
 * needs from @camera (transfer none). */
GstRTSPMediaFactory *cims_sim_factory_new (const CimsSimCamera *camera, GError **error);

/* Footage decoding loop that feeds one media's appsrc forever. */
typedef struct _CimsSimFootage CimsSimFootage;

/* Decodes the first frame of @path and returns its size and rounded frame
 * rate, or FALSE with CIMS_SIM_ERROR_FOOTAGE. Blocks for up to 10 s. */
gboolean cims_sim_footage_probe (const char *path, guint *width, guint *height,
                                 guint *fps, GError **error);

/* Starts decoding @path scaled to @width x @height at @fps into @appsrc
 * (transfer none: the loop keeps its own ref), from the start again at every
 * end of file. Returns (transfer full) the loop or NULL with @error. Must be
 * called and freed on the main context, which receives the loop's bus. */
CimsSimFootage *cims_sim_footage_start (const char *path, guint width, guint height,
                                        guint fps, GstElement *appsrc, GError **error);
void cims_sim_footage_free (CimsSimFootage *footage);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsSimFootage, cims_sim_footage_free)

/* RTSP authentication in which a mount with a user requires that user's
 * credentials, while mounts without a user stay open to anonymous clients.
 * Missing or wrong credentials get 401 with a challenge, and the valid
 * credentials of another mount's user get 403. */
#define CIMS_SIM_TYPE_AUTH (cims_sim_auth_get_type ())
G_DECLARE_FINAL_TYPE (CimsSimAuth, cims_sim_auth, CIMS_SIM, AUTH, GstRTSPAuth)

/* Returns (transfer full) an authenticator that accepts Digest only. */
CimsSimAuth *cims_sim_auth_new (void);

/* Registers @camera's user and protects @factory with it. Fails when the same
 * user was already registered with another password. */
gboolean cims_sim_auth_add_camera (CimsSimAuth *auth, const CimsSimCamera *camera,
                                   GstRTSPMediaFactory *factory, GError **error);

/* Adds the pad probes and timers of @camera's stream faults to a new media
 * of gst-rtsp-server. Does nothing for a camera without such faults. */
void cims_sim_faults_configure_media (const CimsSimCamera *camera, GstRTSPMedia *media);

/* The raw RTSP responder of one camera whose faults gst-rtsp-server cannot
 * produce: it answers RTSP itself and streams RTP interleaved over TCP. */
typedef struct _CimsSimRawServer CimsSimRawServer;

/* Starts listening on @address, port 0 (any free port), for @camera
 * (transfer none, must outlive the server). Returns (transfer full) the
 * server, or NULL with @error. Sessions run on their own threads. */
CimsSimRawServer *cims_sim_raw_server_start (const CimsSimCamera *camera, const char *address,
                                             GError **error);
guint16 cims_sim_raw_server_get_port (CimsSimRawServer *server);
void cims_sim_raw_server_free (CimsSimRawServer *server);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsSimRawServer, cims_sim_raw_server_free)

G_END_DECLS
