/* SPDX-License-Identifier: Apache-2.0 */
/* Internal interfaces between the hub's files: SDP offer/answer, per-viewer
 * RTP rewriting, RTCP parsing and building. Code outside hub/ and tests/hub
 * does not include this header. */
#pragma once

#include <glib.h>

#include "config/config.h"
#include "pipelines/pipelines.h"

G_BEGIN_DECLS

/* ---- SDP offer and answer (sdp-offer.c, sdp-answer.c) ----------------- */

typedef enum {
  CIMS_DTLS_SETUP_ACTPASS,
  CIMS_DTLS_SETUP_ACTIVE,
  CIMS_DTLS_SETUP_PASSIVE,
} CimsDtlsSetup;

/* One codec the viewer offered for its video m-line. */
typedef struct {
  guint8 payload_type;
  CimsCodec codec;
  guint clock_rate;
  char *fmtp;                   /* raw fmtp value, or NULL */
  guint h264_packetization_mode;/* from fmtp, 0 when absent */
  guint32 h264_profile_level_id;/* from fmtp, 0x42001f when absent (RFC 6184 default) */
  guint8 rtx_payload_type;      /* the apt=PT RTX partner, or 0 */
  gboolean has_nack;
  gboolean has_nack_pli;
  gboolean has_ccm_fir;
  gboolean has_transport_cc;
} CimsSdpCodec;

/* One m-line of the offer as the answer must mirror it (RFC 3264:
 * the answer has the same m-lines in the same order). */
typedef struct {
  char *media;                  /* "audio", "video", "application", ... */
  char *proto;
  char *first_format;           /* or NULL when the m-line lists none */
  char *mid;                    /* or NULL when absent or not a valid token */
} CimsSdpMline;

/* What the hub needs from a WHEP offer. */
typedef struct {
  char *ice_ufrag;
  char *ice_pwd;
  char *fingerprint_algorithm;  /* lowercase, e.g. "sha-256" */
  guint8 fingerprint[64];       /* binary digest */
  gsize fingerprint_size;
  CimsDtlsSetup setup;
  char *video_mid;              /* the first video m-line's mid ("0" when absent) */
  guint video_mline_index;
  guint n_mlines;               /* every m-line, audio and application included */
  GArray *video_codecs;         /* of CimsSdpCodec, in offer order */
  GPtrArray *remote_candidates; /* of char*, "candidate:..." lines as offered */
  gboolean has_bundle;
  gboolean video_is_recvonly_or_sendrecv;
  gboolean has_rtcp_rsize;      /* a=rtcp-rsize on the video m-line (RFC 5506) */
  GArray *mlines;               /* of CimsSdpMline, every m-line in offer order */
  GPtrArray *video_encodings;   /* of char*, the a=rtpmap encoding name of every video
                                 * payload type in offer order, hub codec or not ("AV1") */
} CimsSdpOffer;

/**
 * cims_sdp_offer_parse:
 * Parses a WHEP offer with GstSDPMessage and checks what the hub needs: a
 * video m-line over UDP/TLS/RTP/SAVPF, ICE credentials, a sha-256 (or
 * sha-384/512) fingerprint, rtcp-mux. Rejects offers over 64 KiB or with more
 * than 16 m-lines or 64 codecs. The error message names the missing or
 * invalid field.
 * Returns: (transfer full): the offer, or NULL with a G_IO_ERROR_INVALID_DATA error.
 */
CimsSdpOffer *cims_sdp_offer_parse (const char *text, gsize size, GError **error);
void cims_sdp_offer_free (CimsSdpOffer *offer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsSdpOffer, cims_sdp_offer_free)

/**
 * cims_sdp_offer_choose_codec:
 * Picks the offered codec for relaying a @codec camera stream: same codec,
 * for H.264 packetization-mode=1 with the same profile_idc as
 * @camera_profile_level_id preferred, else any packetization-mode=1 entry.
 * Returns: (transfer none) the chosen entry, or NULL when none fits.
 */
const CimsSdpCodec *cims_sdp_offer_choose_codec (const CimsSdpOffer *offer,
                                                 CimsCodec codec,
                                                 guint32 camera_profile_level_id);

/* What the hub puts in its answer. */
typedef struct {
  const char *ice_ufrag;
  const char *ice_pwd;
  const char *fingerprint_sha256; /* "AB:CD:..." uppercase hex pairs */
  CimsDtlsSetup setup;          /* ACTIVE or PASSIVE: the hub's own role */
  const CimsSdpCodec *codec;    /* the chosen payload type */
  const char *fmtp;             /* fmtp to answer for it, or NULL */
  guint32 ssrc;
  const char *cname;
  const char *stream_id;        /* msid stream id */
  const char *track_id;         /* msid track id */
  GPtrArray *local_candidates;  /* of char*, "candidate:..." lines */
  guint64 session_version;
} CimsSdpAnswerParams;

/**
 * cims_sdp_answer_build:
 * Builds the answer for @offer: the chosen video m-line sendonly with
 * rtcp-mux, nack, nack pli and ccm fir feedback; every other m-line
 * (audio, application, further video) rejected with port 0, so no audio
 * track ever reaches the viewer. BUNDLE lists only the video mid.
 * Returns: (transfer full): the SDP text.
 */
char *cims_sdp_answer_build (const CimsSdpOffer *offer, const CimsSdpAnswerParams *params);

/* ---- per-viewer RTP rewriting (rtp-rewrite.c) -------------------------- */

/* Frames of a snapshot whose timestamps a retransmission can still restore:
 * 2 s at 30 frames per second. A NACK for an older frame goes unanswered. */
#define CIMS_RTP_REWRITER_CATCH_UP_FRAMES 64

/* State that turns a source's packets into one viewer's continuous stream:
 * the viewer's own SSRC, a sequence number space without jumps when the
 * camera reconnects, timestamps continuing across epochs, and the
 * negotiated payload type. Owned by one viewer session, used from one thread. */
typedef struct {
  guint32 ssrc;
  guint8 payload_type;
  guint32 clock_rate;

  gboolean started;
  guint32 epoch;                /* source epoch of the last packet */
  guint16 last_src_seq;
  guint32 last_src_ts;
  guint16 last_out_seq;
  guint32 last_out_ts;
  gint64 last_out_us;           /* arrival time of the last packet written */
  guint16 seq_offset;           /* out = src + offset within an epoch */
  guint32 ts_offset;
  gboolean is_ts_mapped;        /* ts_offset is valid for the current epoch */
  gboolean is_seq_mapped;       /* seq_offset is valid for the current epoch */
  guint16 first_mapped_out_seq; /* first output seq written with seq_offset */

  gboolean is_catching_up;      /* between begin_catch_up and end_catch_up */
  gboolean has_catch_up_frame;  /* a frame was written since begin_catch_up */
  guint32 catch_up_src_ts;      /* source timestamp of that frame */

  guint64 packets_sent;
  guint64 octets_sent;          /* payload octets, for RTCP SR */

  /* Last, so that the fields each packet touches share cache lines: the
   * last snapshot's frames, whose output timestamps a retransmission reuses. */
  guint n_catch_up_frames;      /* frames since begin_catch_up; the arrays keep the last ones */
  guint32 catch_up_frame_src_ts[CIMS_RTP_REWRITER_CATCH_UP_FRAMES];
  guint32 catch_up_frame_out_ts[CIMS_RTP_REWRITER_CATCH_UP_FRAMES];
} CimsRtpRewriter;

/* Sets up a caller-allocated @rewriter so that the first packet written gets
 * @initial_seq and @initial_ts (the viewer's random starting values). */
void cims_rtp_rewriter_init (CimsRtpRewriter *rewriter, guint32 ssrc,
                             guint8 payload_type, guint32 clock_rate,
                             guint16 initial_seq, guint32 initial_ts);

/**
 * cims_rtp_rewriter_write:
 * Writes @packet rewritten into @out (at least packet->size bytes): SSRC,
 * sequence number, timestamp and payload type replaced; CSRCs, header
 * extension and padding removed. Within one epoch, sequence gaps and
 * timestamp differences from the camera are kept (so the viewer can NACK
 * real losses); on a new epoch, or a sequence jump of more than 3000, the
 * output continues at last+1 with the timestamp advanced by the wall-clock
 * time since the last packet. A synthetic packet takes the next sequence
 * number and shifts the offset so later packets stay contiguous.
 * Returns: the output size, or 0 when the packet is malformed.
 */
gsize cims_rtp_rewriter_write (CimsRtpRewriter *rewriter, const CimsRtpPacket *packet,
                               guint8 *out, gsize out_size);

/**
 * cims_rtp_rewriter_begin_catch_up:
 * Prepares to send a keyframe-cache snapshot: the next packets, up to and
 * including the live edge, get timestamps one frame step apart (90 ticks,
 * 1 ms at 90 kHz) starting just after the last output, so the viewer
 * decodes the cached frames at once instead of playing them late. Live
 * packets then continue from there.
 * Call before writing the snapshot's first packet, and
 * cims_rtp_rewriter_end_catch_up() after its last.
 */
void cims_rtp_rewriter_begin_catch_up (CimsRtpRewriter *rewriter);
void cims_rtp_rewriter_end_catch_up (CimsRtpRewriter *rewriter);

/**
 * cims_rtp_rewriter_write_again:
 * Writes @packet, already sent, into @out as it was first sent, for a
 * retransmission, without changing @rewriter. A packet of a snapshot frame
 * gets the output timestamp that frame was given.
 * Returns: the output size, or 0 when the packet is malformed or its frame's
 * output timestamp is no longer known.
 */
gsize cims_rtp_rewriter_write_again (const CimsRtpRewriter *rewriter, const CimsRtpPacket *packet,
                                     guint8 *out, gsize out_size);

/* Maps a sequence number the viewer NACKed back to the source's, within the
 * current epoch. Returns FALSE when it cannot be mapped. */
gboolean cims_rtp_rewriter_map_seq_to_source (const CimsRtpRewriter *rewriter,
                                              guint16 out_seq, guint16 *src_seq);

/* ---- RTCP (rtcp.c) ----------------------------------------------------- */

typedef enum {
  CIMS_RTCP_FEEDBACK_NONE = 0,
  CIMS_RTCP_FEEDBACK_PLI = 1 << 0,
  CIMS_RTCP_FEEDBACK_FIR = 1 << 1,
  CIMS_RTCP_FEEDBACK_NACK = 1 << 2,
  CIMS_RTCP_FEEDBACK_RECEIVER_REPORT = 1 << 3,
} CimsRtcpFeedback;

typedef struct {
  CimsRtcpFeedback feedback;
  GArray *nacked_seqs;          /* of guint16, caller-owned, appended to */
  guint32 fraction_lost;        /* from the last report block, 0..255 */
  guint32 cumulative_lost;
  guint32 jitter;
} CimsRtcpSummary;

/**
 * cims_rtcp_parse_compound:
 * Walks a decrypted compound RTCP packet from a viewer and collects PLI, FIR,
 * generic NACK (RFC 4585 section 6.2.1, PID plus BLP bitmask) and receiver
 * report data about @media_ssrc. Stops at the first malformed sub-packet and
 * returns FALSE; what was collected before it is kept.
 */
gboolean cims_rtcp_parse_compound (const guint8 *data, gsize size, guint32 media_ssrc,
                                   CimsRtcpSummary *summary);

/* Writes an RTCP sender report with an SDES CNAME into @out. Returns its size,
 * or 0 when @out_size is too small. @ntp_time is NTP 32.32 fixed point. */
gsize cims_rtcp_build_sender_report (guint8 *out, gsize out_size, guint32 ssrc,
                                     guint64 ntp_time, guint32 rtp_ts,
                                     guint32 packet_count, guint32 octet_count,
                                     const char *cname);

/* ---- relay or transcode (negotiate.c) ---------------------------------- */

typedef enum {
  CIMS_NEGOTIATION_NONE,        /* nothing the viewer offered can be sent */
  CIMS_NEGOTIATION_RELAY,       /* the camera's own packets, rewritten per viewer */
  CIMS_NEGOTIATION_TRANSCODE,   /* a shared transcode for (camera, profile) */
} CimsNegotiationMode;

/* Returns the profile-level-id parameter of a camera's H.264 fmtp, or 0
 * when it is missing or invalid. Many cameras send only
 * sprop-parameter-sets: the source then reads the profile from the SPS.
 * Pure, any thread. */
guint32 cims_h264_profile_level_id_from_fmtp (const char *fmtp);

/* The camera's video as far as the hub has seen it when a viewer requests it. */
typedef struct {
  CimsCodec codec;
  guint32 h264_profile_level_id; /* from the camera's fmtp or SPS; 0 when unknown */
  guint width;                  /* 0 when unknown */
  guint height;                 /* 0 when unknown */
  guint fps;                    /* 0 when unknown */
} CimsCameraVideo;

typedef struct {
  CimsNegotiationMode mode;
  const CimsSdpCodec *offer_codec; /* (transfer none) the offer's entry to answer; NULL for NONE */
  CimsCodec output_codec;
  guint output_width;           /* relay: the camera's, 0 when unknown */
  guint output_height;
  guint output_fps;             /* 0 when unknown */
  guint output_kbps;            /* transcode: the profile's max_kbps; relay: 0 (the camera's) */
  char reason[320];             /* one sentence for the log, or the error for NONE */
} CimsNegotiation;

/**
 * cims_negotiation_decide:
 * Decides how a viewer with @offer and viewer profile @profile gets a
 * camera's @video. Relay when the offer accepts the camera's codec (H.264
 * with packetization-mode=1 and the same profile_idc, H.265 as offered),
 * the profile allows that codec (and, for H.264, the camera's
 * profile-level-id when the profile lists h264_profiles), and the camera's
 * size and rate are within the profile's maxima where known. Otherwise
 * transcode to H.264 constrained baseline (offer entries 42e0 first, then
 * other baseline, main and high entries, which all decode it), or to VP8
 * when the offer has no usable H.264 or the profile does not allow it.
 * NONE when neither fits, with a reason that names what the offer has and
 * what the hub could send. Pure: no I/O, any thread. Fills @negotiation
 * (caller-allocated); its offer_codec points into @offer (transfer none).
 */
void cims_negotiation_decide (const CimsSdpOffer *offer, const CimsCameraVideo *video,
                              const CimsConfigProfile *profile, CimsNegotiation *negotiation);

G_END_DECLS
