/* SPDX-License-Identifier: Apache-2.0 */
/* Media pipelines: RTSP ingest of a camera into RTP packets, the codec-aware
 * classification of those packets, and the per-source keyframe cache and
 * packet history. Sending to viewers is the hub's job, not this module's. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define CIMS_PIPELINES_ERROR (cims_pipelines_error_quark ())
GQuark cims_pipelines_error_quark (void);

typedef enum {
  CIMS_PIPELINES_ERROR_FAILED,
  CIMS_PIPELINES_ERROR_UNSUPPORTED_CODEC,
} CimsPipelinesError;

typedef enum {
  CIMS_CODEC_UNKNOWN = 0,
  CIMS_CODEC_H264,
  CIMS_CODEC_H265,
  CIMS_CODEC_VP8,
} CimsCodec;

const char *cims_codec_to_string (CimsCodec codec);   /* "H264", "H265", "VP8" */

/* ---- RTP packets ------------------------------------------------------ */

#define CIMS_RTP_MAX_PACKET 1500

/* One RTP packet as received from a camera, immutable once shared.
 * Refcounted with cims_rtp_packet_ref/unref; any thread may hold a ref. */
typedef struct {
  guint32 epoch;                /* source epoch: changes when the camera reconnects */
  gint64 arrival_us;            /* g_get_monotonic_time() at arrival */
  gboolean is_synthetic;        /* made by the hub (parameter sets), not from the camera */
  guint16 size;
  guint8 data[];                /* the whole RTP packet, header included */
} CimsRtpPacket;

/* Returns (transfer full) a packet holding a copy of @data, or NULL when
 * @size is over CIMS_RTP_MAX_PACKET or under the 12-byte RTP header, or the
 * header is invalid: version not 2, or CSRC list, header extension or
 * padding not fitting in @size. */
CimsRtpPacket *cims_rtp_packet_new (const guint8 *data, gsize size, guint32 epoch, gint64 arrival_us);
CimsRtpPacket *cims_rtp_packet_ref (CimsRtpPacket *packet);
void cims_rtp_packet_unref (CimsRtpPacket *packet);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsRtpPacket, cims_rtp_packet_unref)

/* Header accessors; the packet was validated at creation. */
guint16 cims_rtp_packet_get_seq (const CimsRtpPacket *packet);
guint32 cims_rtp_packet_get_timestamp (const CimsRtpPacket *packet);
guint32 cims_rtp_packet_get_ssrc (const CimsRtpPacket *packet);
gboolean cims_rtp_packet_get_marker (const CimsRtpPacket *packet);
/* Sets the marker bit. Only the sole holder of a packet that has not been
 * shared yet may call it. */
void cims_rtp_packet_set_marker (CimsRtpPacket *packet);
guint8 cims_rtp_packet_get_payload_type (const CimsRtpPacket *packet);
/* The payload after CSRCs, header extension and before padding, or NULL
 * with *size 0 when the header is inconsistent. (transfer none) */
const guint8 *cims_rtp_packet_get_payload (const CimsRtpPacket *packet, gsize *size);

/* ---- codec-aware classification --------------------------------------- */

typedef enum {
  CIMS_NAL_FLAG_NONE = 0,
  CIMS_NAL_FLAG_PARAMETER_SET = 1 << 0,  /* SPS, PPS, or for H.265 also VPS */
  CIMS_NAL_FLAG_SPS = 1 << 1,
  CIMS_NAL_FLAG_PPS = 1 << 2,
  CIMS_NAL_FLAG_VPS = 1 << 3,
  CIMS_NAL_FLAG_KEYFRAME = 1 << 4,       /* an IDR slice (H.264 type 5; H.265 IDR/CRA/BLA) or its FU start */
  CIMS_NAL_FLAG_FRAGMENT_START = 1 << 5, /* FU-A / H.265 FU with the S bit */
  CIMS_NAL_FLAG_FRAGMENT_END = 1 << 6,
  CIMS_NAL_FLAG_FRAGMENT = 1 << 7,       /* any FU packet */
} CimsNalFlags;

/* Classifies one RTP payload of @codec: single NAL unit, STAP-A / AP
 * aggregation (every aggregated unit is inspected) or FU-A / FU fragment
 * (only the start fragment reports the fragmented unit's type). Never reads
 * past @size; malformed payloads return CIMS_NAL_FLAG_NONE. */
CimsNalFlags cims_nal_classify (CimsCodec codec, const guint8 *payload, gsize size);

/* Classifies one whole H.264 or H.265 NAL unit (header included, no start
 * code), e.g. an out-of-band parameter set. Other codecs return NONE. */
CimsNalFlags cims_nal_classify_unit (CimsCodec codec, const guint8 *nal, gsize size);

typedef void (*CimsNalUnitFunc) (const guint8 *nal, gsize size, gpointer user_data);

/* Calls @func for every whole NAL unit of an H.264 or H.265 RTP payload: the
 * unit of a single NAL unit packet, or each unit of a STAP-A / AP. Fragments
 * and other packet types are skipped. Returns FALSE when an aggregation is
 * malformed, after @func may have been called for the units before the fault.
 * @nal points into @payload (transfer none). */
gboolean cims_nal_foreach_unit (CimsCodec codec, const guint8 *payload, gsize size,
                                CimsNalUnitFunc func, gpointer user_data);

/* Parses the coded picture size, cropping included, from an H.264 or H.265
 * SPS NAL unit (header included) in sps-size.c. Returns FALSE when the unit
 * is truncated or unsupported. */
gboolean cims_sps_parse_size (CimsCodec codec, const guint8 *nal, gsize size,
                              guint *width, guint *height);

/* Returns the profile-level-id (profile_idc, constraint flags, level_idc)
 * of an H.264 SPS NAL unit, header included, or 0 when @nal is no SPS or is
 * too short. */
guint32 cims_h264_sps_profile_level_id (const guint8 *nal, gsize size);

/* ---- keyframe cache and packet history -------------------------------- */

/* Per-source memory of the packets since the latest keyframe, so a new
 * viewer starts with a whole keyframe at once, and a short history of recent
 * packets by sequence number for answering NACKs. Not thread-safe: the
 * caller (the source) serialises access. */
typedef struct _CimsKeyframeCache CimsKeyframeCache;

/* @max_bytes bounds the cache; past it the cache is emptied and waits for the
 * next keyframe. @history_size is the number of packets kept for NACK. */
CimsKeyframeCache *cims_keyframe_cache_new (CimsCodec codec, gsize max_bytes, guint history_size);
void cims_keyframe_cache_free (CimsKeyframeCache *cache);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsKeyframeCache, cims_keyframe_cache_free)

/* Sets out-of-band parameter sets (from the SDP's sprop-parameter-sets or
 * sprop-vps/sps/pps), each a raw NAL unit without start code. They are used
 * when a keyframe arrives without in-band parameter sets. In-band parameter
 * sets, once seen, replace them. (transfer none) */
void cims_keyframe_cache_set_parameter_sets (CimsKeyframeCache *cache, GPtrArray *nal_units /* of GBytes */);

/* Forgets everything: called when the source reconnects (new epoch). */
void cims_keyframe_cache_reset (CimsKeyframeCache *cache);

/**
 * cims_keyframe_cache_push:
 * Adds a packet (transfer none: the cache takes its own ref). Returns TRUE
 * when this packet makes the cache start a new keyframe, i.e. viewers that
 * wait for a keyframe should now be sent cims_keyframe_cache_snapshot().
 *
 * A keyframe starts at the first packet of the access unit (RTP timestamp)
 * that holds an IDR, or earlier at the parameter-set packets that immediately
 * precede it, even when those carry the previous frame's timestamp.
 * A packet whose epoch differs from the previous packet's resets the cache
 * first, as cims_keyframe_cache_reset() does. Synthetic packets are cached
 * but never enter the history.
 */
gboolean cims_keyframe_cache_push (CimsKeyframeCache *cache, CimsRtpPacket *packet);

/**
 * cims_keyframe_cache_snapshot:
 * Returns (transfer full) the packets a joining viewer needs, in order: the
 * latest keyframe from its first packet (preceded by synthetic parameter-set
 * packets carrying the keyframe's timestamp when it has none in-band) and
 * every packet since. Empty when no keyframe has been seen yet.
 */
GPtrArray *cims_keyframe_cache_snapshot (CimsKeyframeCache *cache);

gboolean cims_keyframe_cache_has_keyframe (CimsKeyframeCache *cache);

/* Returns (transfer none) the packet with this sequence number from the
 * history of the current epoch, or NULL. */
CimsRtpPacket *cims_keyframe_cache_lookup (CimsKeyframeCache *cache, guint16 seq);

/* ---- RTSP ingest ------------------------------------------------------ */

typedef struct _CimsIngest CimsIngest;

typedef struct {
  const char *camera_id;
  const char *url;
  const char *username;         /* may be NULL */
  const char *password;         /* may be NULL; never logged */
  guint latency_ms;
  guint connect_timeout_ms;
  guint reconnect_min_ms;
  guint reconnect_max_ms;
  guint last_epoch;             /* epochs continue after it: the last one of an ingest this replaces */
} CimsIngestSettings;

typedef enum {
  CIMS_INGEST_STATE_CONNECTING,
  CIMS_INGEST_STATE_PLAYING,     /* video RTP is flowing */
  CIMS_INGEST_STATE_RECONNECTING,
  CIMS_INGEST_STATE_STOPPED,
} CimsIngestState;

typedef struct {
  /* Called on a GStreamer streaming thread for every video RTP packet, in
   * order. (transfer none) */
  void (*on_packet) (CimsRtpPacket *packet, gpointer user_data);
  /* Called on a GStreamer streaming thread when the video track's format is
   * known or has changed (new epoch): codec, clock rate, payload type, fmtp
   * as in the camera's SDP, and out-of-band parameter sets (GBytes). */
  void (*on_format) (CimsCodec codec, guint clock_rate, const char *fmtp,
                     GPtrArray *parameter_sets, guint32 epoch, gpointer user_data);
  /* Called on the main context when the state changes. @message says why, for the log. */
  void (*on_state) (CimsIngestState state, const char *message, gpointer user_data);
} CimsIngestCallbacks;

/**
 * cims_ingest_new:
 * Prepares an RTSP pull of one camera; cims_ingest_start() connects. Only the
 * first video track is set up: audio and metadata tracks are never SETUP.
 * Must be created, started, stopped and freed on the main context.
 * Returns: (transfer full)
 */
CimsIngest *cims_ingest_new (const CimsIngestSettings *settings,
                             const CimsIngestCallbacks *callbacks,
                             gpointer user_data);
void cims_ingest_start (CimsIngest *ingest);
void cims_ingest_stop (CimsIngest *ingest);
void cims_ingest_free (CimsIngest *ingest);
CimsIngestState cims_ingest_get_state (CimsIngest *ingest);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsIngest, cims_ingest_free)

/* ---- transcode ---------------------------------------------------------- */

/* Decodes one camera's RTP, scales it to fit an output profile and encodes
 * it again as H.264 (constrained baseline) or VP8 RTP, for viewers that
 * cannot play the camera's own stream. One transcoder serves every viewer
 * of one (camera, output profile) pair. Sending to viewers is the hub's job. */
typedef struct _CimsTranscoder CimsTranscoder;

typedef struct {
  const char *camera_id;        /* for logs */
  const char *profile_name;     /* for logs */
  CimsCodec output_codec;       /* CIMS_CODEC_H264 or CIMS_CODEC_VP8 */
  guint max_width;              /* 0: no limit; the picture is never upscaled */
  guint max_height;             /* 0: no limit */
  guint max_fps;                /* 0: the camera's frame rate */
  guint max_kbps;               /* encoder target bitrate, > 0 */
  guint8 payload_type;          /* of the output RTP packets */
  guint32 ssrc;                 /* of the output RTP packets; 0 picks a random one */
} CimsTranscoderSettings;

typedef enum {
  CIMS_TRANSCODER_STATE_STOPPED,
  CIMS_TRANSCODER_STATE_WAITING,    /* started; no input format or no output yet */
  CIMS_TRANSCODER_STATE_RUNNING,    /* encoded packets are flowing */
  CIMS_TRANSCODER_STATE_RESTARTING, /* the pipeline failed and is rebuilt shortly */
} CimsTranscoderState;

typedef struct {
  /* Called on a GStreamer streaming thread for every encoded RTP packet, in
   * order. The packet's epoch increments each time the transcoder rebuilds
   * its pipeline, when sequence numbers and timestamps restart. It must not
   * call cims_transcoder_set_input_format(), _stop() or _free(), which join
   * this thread. (transfer none) */
  void (*on_packet) (CimsRtpPacket *packet, gpointer user_data);
  /* Called on the main context when the state changes. @message says why. */
  void (*on_state) (CimsTranscoderState state, const char *message, gpointer user_data);
} CimsTranscoderCallbacks;

typedef struct {
  CimsTranscoderState state;
  gboolean is_running;              /* state == RUNNING */
  guint64 n_packets_in;             /* RTP packets accepted by cims_transcoder_push() */
  guint64 n_packets_dropped;        /* pushed while no pipeline ran, or the input queue was full */
  guint64 n_packets_out;
  guint64 n_frames_in;              /* decoded frames */
  guint64 n_frames_out;             /* encoded frames */
  guint64 n_frames_dropped;         /* by the frame-rate limit and by QoS */
  guint64 n_keyframe_requests;      /* forwarded to the encoder */
  guint64 n_keyframe_requests_suppressed; /* within 500 ms of the previous forwarded one */
  guint64 n_forced_keyframes_out;   /* keyframes the encoder made on request */
  guint64 mean_encode_us;           /* per frame, from the encoder's sink pad to its src pad */
  guint64 max_encode_us;
  guint32 epoch;                    /* of the current output; 0 before the first pipeline */
  guint n_restarts;                 /* pipeline rebuilds after the first */
  guint input_width;                /* decoded size; 0 until the first frame is decoded */
  guint input_height;
  guint output_width;               /* 0 until the first frame is scaled */
  guint output_height;
} CimsTranscoderStats;

/**
 * cims_transcoder_new:
 * Prepares a transcoder; nothing runs until cims_transcoder_start(). Copies
 * @settings and @callbacks; on_packet is required. Must be created,
 * started, stopped and freed on one main context, the thread-default one at
 * this call.
 * Returns: (transfer full)
 */
CimsTranscoder *cims_transcoder_new (const CimsTranscoderSettings *settings,
                                     const CimsTranscoderCallbacks *callbacks,
                                     gpointer user_data);

/**
 * cims_transcoder_set_input_format:
 * Sets the camera's video format: codec (H.264 or H.265), RTP clock rate,
 * fmtp as in the camera's SDP ("key=value;key=value", may be NULL) and
 * out-of-band parameter sets (GBytes NAL units, may be NULL; used when the
 * fmtp has no sprop-* fields). Call it when the format is first known and
 * again on each new camera epoch. The same codec and clock rate update the
 * running pipeline's input caps in place; another codec or clock rate
 * rebuilds the pipeline. @epoch is the camera epoch the format belongs to:
 * on another codec, packets held for a pipeline being built that belong to
 * earlier epochs are dropped, and later ones kept. Any thread except the
 * transcoder's own streaming threads; it may block while a pipeline is
 * rebuilt. (transfer none)
 */
void cims_transcoder_set_input_format (CimsTranscoder *transcoder, CimsCodec codec,
                                       guint clock_rate, const char *fmtp,
                                       GPtrArray *parameter_sets, guint32 epoch);

/**
 * cims_transcoder_push:
 * Feeds one camera RTP packet (transfer none: the data are copied). Packets
 * of a new epoch continue the previous sequence numbers, so the depayloader
 * sees a discontinuity and not a restarted stream. Dropped and counted when
 * the transcoder is not started, has no input format or its input queue is
 * full. Called on the source's streaming thread, never blocks on encoding.
 */
void cims_transcoder_push (CimsTranscoder *transcoder, CimsRtpPacket *packet);

/**
 * cims_transcoder_request_keyframe:
 * Asks the encoder for a keyframe (a viewer joined or sent PLI/FIR). At most
 * one request per 500 ms reaches the encoder, however many viewers ask;
 * the others are counted in n_keyframe_requests_suppressed. Any thread.
 */
void cims_transcoder_request_keyframe (CimsTranscoder *transcoder);

/* Starts the transcoder: builds the pipeline when the input format is known,
 * otherwise when cims_transcoder_set_input_format() brings it. Main context.
 * NOTE: a pipeline started mid-stream decodes nothing until the camera's
 * next keyframe, so the caller should push the source's keyframe-cache
 * snapshot right after this call. */
void cims_transcoder_start (CimsTranscoder *transcoder);

/* Stops the pipeline; no callback runs after this returns. Main context. */
void cims_transcoder_stop (CimsTranscoder *transcoder);

/* Stops the transcoder if needed and frees it. Main context. */
void cims_transcoder_free (CimsTranscoder *transcoder);

/* Fills @stats (caller-allocated) with a consistent copy. Any thread. */
void cims_transcoder_get_stats (CimsTranscoder *transcoder, CimsTranscoderStats *stats);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsTranscoder, cims_transcoder_free)

/**
 * cims_transcode_fit_size:
 * Computes the largest picture that fits @max_width x @max_height (0: no
 * limit) with the display aspect ratio of a @width x @height picture of
 * pixel aspect ratio @par_n/@par_d, never larger than the input and with
 * even dimensions of at least 2, for square output pixels. Returns FALSE
 * when the input size or pixel aspect ratio is 0.
 */
gboolean cims_transcode_fit_size (guint width, guint height, guint par_n, guint par_d,
                                  guint max_width, guint max_height,
                                  guint *out_width, guint *out_height);

G_END_DECLS
