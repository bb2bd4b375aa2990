/* SPDX-License-Identifier: Apache-2.0 */
/* Types shared by the files of cimshub-whep-viewer, a WHEP client that runs
 * many WebRTC viewers in one process for tests and benchmarks. Each concept
 * (offer and answer, DTLS, SRTP, statistics, one viewer's life) has its file. */
#pragma once

#include <glib.h>
#include <libsoup/soup.h>

#include <agent.h>
#include <openssl/ssl.h>
#include <srtp2/srtp.h>

#include "hub/worker-loop.h"
#include "pipelines/pipelines.h"

G_BEGIN_DECLS

#define CIMS_WHEP_VIEWER_ERROR (cims_whep_viewer_error_quark ())
GQuark cims_whep_viewer_error_quark (void);

typedef enum {
  CIMS_WHEP_VIEWER_ERROR_FAILED,
  CIMS_WHEP_VIEWER_ERROR_INVALID_ANSWER,
  CIMS_WHEP_VIEWER_ERROR_TLS,
  CIMS_WHEP_VIEWER_ERROR_SRTP,
} CimsWhepViewerError;

typedef enum {
  CIMS_WHEP_VIEWER_SETUP_ACTPASS,
  CIMS_WHEP_VIEWER_SETUP_ACTIVE,   /* DTLS client */
  CIMS_WHEP_VIEWER_SETUP_PASSIVE,  /* DTLS server */
} CimsWhepViewerSetup;

const char *cims_whep_viewer_setup_to_string (CimsWhepViewerSetup setup);

/* How a viewer's session ended; the strings are the "ended_by" JSON values. */
typedef enum {
  CIMS_WHEP_VIEWER_END_NONE,
  CIMS_WHEP_VIEWER_END_CLOSE_NOTIFY,
  CIMS_WHEP_VIEWER_END_ICE_FAILED,
  CIMS_WHEP_VIEWER_END_IDLE,
  CIMS_WHEP_VIEWER_END_DURATION,
  CIMS_WHEP_VIEWER_END_POST_FAILED,
  CIMS_WHEP_VIEWER_END_ANSWER_INVALID,
  CIMS_WHEP_VIEWER_END_DTLS_FAILED,
  CIMS_WHEP_VIEWER_END_INTERRUPTED,  /* SIGINT or SIGTERM */
} CimsWhepViewerEnd;

const char *cims_whep_viewer_end_to_string (CimsWhepViewerEnd end);

/* Command-line settings, shared read-only by every viewer. */
typedef struct {
  char *base_url;
  char *camera_id;
  char *token;
  char *incident_number;
  char *client;
  guint n_viewers;
  guint ramp_ms;
  guint duration_s;
  guint idle_timeout_ms;
  guint pli_interval_ms;
  guint dtls_drops;               /* DTLS datagrams from the hub to drop on arrival */
  guint answer_delay_ms;          /* wait between the answer's arrival and applying it */
  CimsWhepViewerSetup setup;
  gboolean offers_vp8;
  gboolean offers_h265;
  gboolean omits_h264;          /* offer no H.264, e.g. a VP8-only client */
  gboolean has_bad_fingerprint;
  guint expected_status;          /* 0 when --expect-status was not given */
  char *srtp_profiles;            /* OpenSSL list, e.g. "SRTP_AES128_CM_SHA1_80" */
  gboolean prints_json;
  gboolean prints_events;
  char *local_address;            /* the ICE host candidate's address */
  gboolean is_janus;              /* Janus streaming plugin instead of WHEP */
  guint64 janus_mountpoint_id;    /* --camera, when is_janus */
  guint latency_after_ms;         /* latency samples count from this time on */
  gboolean takes_socket_timestamps;  /* kernel receive times: socket_latency histograms, join bursts */
} CimsWhepViewerOptions;

/* ---- offer and answer (whep-viewer-sdp.c) ------------------------------- */

typedef struct {
  const char *ice_ufrag;
  const char *ice_pwd;
  const char *fingerprint_sha256;  /* "AB:CD:..." */
  CimsWhepViewerSetup setup;
  GPtrArray *candidates;           /* "candidate:..." lines, transfer none */
  gboolean offers_vp8;
  gboolean offers_h265;
  gboolean omits_h264;          /* offer no H.264, e.g. a VP8-only client */
  /* Nonzero to build an answer to a remote offer instead: only this H.264
   * payload type, with the offer's mid. */
  guint8 answer_payload_type;
  const char *answer_mid;
} CimsWhepViewerOfferParams;

/* What the viewer needs from the hub's answer. */
typedef struct {
  char *ice_ufrag;
  char *ice_pwd;
  char *fingerprint_algorithm;     /* lowercase, e.g. "sha-256" */
  guint8 fingerprint[EVP_MAX_MD_SIZE];
  gsize fingerprint_size;
  CimsWhepViewerSetup setup;       /* the hub's role: ACTIVE or PASSIVE */
  guint8 payload_type;
  CimsCodec codec;
  guint32 ssrc;                    /* 0 when the answer has no a=ssrc */
  GPtrArray *candidates;           /* "a=candidate:..." lines */
  char *mid;                       /* NULL when the SDP has no a=mid */
} CimsWhepViewerAnswer;

/* Returns (transfer full) the SDP text of a recvonly video offer. */
char *cims_whep_viewer_offer_build (const CimsWhepViewerOfferParams *params);

/* Parses @text into @answer (cleared first). Fails with
 * CIMS_WHEP_VIEWER_ERROR_INVALID_ANSWER naming the missing or invalid part. */
gboolean cims_whep_viewer_answer_parse (const char *text, gsize size, CimsWhepViewerAnswer *answer,
                                        GError **error);
void cims_whep_viewer_answer_clear (CimsWhepViewerAnswer *answer);

/* Parses a remote offer (Janus's) into @answer like an answer, except that
 * a=setup:actpass is accepted and read as PASSIVE, because the viewer answers
 * with a=setup:active. */
gboolean cims_whep_viewer_remote_offer_parse (const char *text, gsize size, CimsWhepViewerAnswer *answer,
                                              GError **error);

/* ---- DTLS (whep-viewer-dtls.c) ----------------------------------------- */

/* The process's one certificate and DTLS context, shared by every viewer. */
typedef struct {
  SSL_CTX *ssl_ctx;
  char *fingerprint_sha256;
} CimsWhepViewerIdentity;

/* Makes an ECDSA P-256 self-signed certificate and a DTLS 1.2 context that
 * offers @srtp_profiles (NULL: GCM when libsrtp has it, then
 * SRTP_AES128_CM_SHA1_80). Returns (transfer full) or NULL with @error. */
CimsWhepViewerIdentity *cims_whep_viewer_identity_new (const char *srtp_profiles, GError **error);
void cims_whep_viewer_identity_free (CimsWhepViewerIdentity *identity);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsWhepViewerIdentity, cims_whep_viewer_identity_free)

typedef enum {
  CIMS_WHEP_VIEWER_DTLS_IN_PROGRESS,
  CIMS_WHEP_VIEWER_DTLS_CONNECTED,     /* handshake finished just now */
  CIMS_WHEP_VIEWER_DTLS_CLOSED,        /* the peer sent close_notify */
  CIMS_WHEP_VIEWER_DTLS_FAILED,
} CimsWhepViewerDtlsStatus;

/* One viewer's DTLS connection over its ICE component. */
typedef struct {
  SSL *ssl;
  NiceAgent *agent;                /* transfer none */
  guint stream_id;
  gboolean is_client;
  gboolean is_connected;
  gint64 started_us;
} CimsWhepViewerDtls;

gboolean cims_whep_viewer_dtls_start (CimsWhepViewerDtls *dtls, CimsWhepViewerIdentity *identity,
                                      NiceAgent *agent, guint stream_id, gboolean is_client);
CimsWhepViewerDtlsStatus cims_whep_viewer_dtls_handshake (CimsWhepViewerDtls *dtls);
CimsWhepViewerDtlsStatus cims_whep_viewer_dtls_receive (CimsWhepViewerDtls *dtls, const guint8 *data,
                                                        gsize size);
void cims_whep_viewer_dtls_handle_timeout (CimsWhepViewerDtls *dtls);
gboolean cims_whep_viewer_dtls_peer_matches (CimsWhepViewerDtls *dtls, const CimsWhepViewerAnswer *answer);
void cims_whep_viewer_dtls_clear (CimsWhepViewerDtls *dtls);

/* ---- SRTP (whep-viewer-srtp.c) ----------------------------------------- */

typedef struct {
  srtp_t inbound;                  /* the hub's RTP and RTCP */
  srtp_t outbound;                 /* our RTCP */
  const char *profile_name;        /* static string from OpenSSL */
} CimsWhepViewerSrtp;

gboolean cims_whep_viewer_srtp_start (CimsWhepViewerSrtp *srtp, SSL *ssl, gboolean is_client,
                                      GError **error);
/* Unprotects in place; returns the plain length or -1. */
int cims_whep_viewer_srtp_unprotect_rtp (CimsWhepViewerSrtp *srtp, guint8 *packet, gsize size);
int cims_whep_viewer_srtp_unprotect_rtcp (CimsWhepViewerSrtp *srtp, guint8 *packet, gsize size);
/* Protects @size bytes of RTCP in @packet (room for the trailer is needed);
 * returns the protected length or -1. */
int cims_whep_viewer_srtp_protect_rtcp (CimsWhepViewerSrtp *srtp, guint8 *packet, gsize size);
void cims_whep_viewer_srtp_clear (CimsWhepViewerSrtp *srtp);

/* ---- statistics and keyframe tracking (whep-viewer-stats.c) ------------ */

/* Reception statistics of one RTP stream; updated per packet without
 * allocating. Times are g_get_monotonic_time() microseconds. */
typedef struct {
  CimsCodec codec;
  guint32 clock_rate;

  guint64 n_packets;
  guint64 n_bytes;                 /* RTP bytes after SRTP removal */
  guint64 n_lost;
  gint64 first_packet_us;
  gint64 last_packet_us;
  gint64 first_keyframe_us;
  gint64 last_keyframe_us;
  gint64 longest_silence_us;       /* maximum time between two packets after the first keyframe */
  guint n_keyframes;               /* whole keyframes: every key part, no gap */
  guint width;                     /* of the first SPS */
  guint height;
  /* Every distinct size seen in an SPS, in order; the first 8 are kept. */
  guint n_sizes;
  guint sizes[8][2];

  /* Sequence tracking: extended highest sequence number and the reception
   * bitmap of the 64 numbers up to it (bit 0 is the highest). */
  gboolean has_sequence;
  guint32 base_seq;
  guint32 max_seq;
  guint64 received_bits;
  guint64 n_expected_prior;
  guint64 n_lost_prior;

  /* RFC 3550 interarrival jitter, in RTP timestamp units scaled by 16. */
  guint32 jitter_q4;
  gint64 last_transit;
  gboolean has_transit;

  /* The access unit being received. */
  guint32 unit_timestamp;
  guint32 unit_next_seq;
  guint unit_flags;
  gboolean unit_is_open;
  gboolean unit_is_contiguous;
  gboolean unit_has_slices;
  gboolean unit_has_vp8_keyframe;
} CimsWhepViewerStats;

void cims_whep_viewer_stats_init (CimsWhepViewerStats *stats, CimsCodec codec, guint32 clock_rate);

/* Accounts one plain RTP packet. Returns TRUE when it completes the first
 * whole keyframe (first_keyframe_us is then set). */
gboolean cims_whep_viewer_stats_add (CimsWhepViewerStats *stats, const guint8 *packet, gsize size,
                                     gint64 now_us);

/* Counts the numbers still missing at the end of the session as lost, and
 * the time from the last packet to @now_us as a silence. */
void cims_whep_viewer_stats_finish (CimsWhepViewerStats *stats, gint64 now_us);

guint32 cims_whep_viewer_stats_get_extended_max (const CimsWhepViewerStats *stats);
/* Returns the RFC 3550 fraction lost since the previous call (0-255). */
guint8 cims_whep_viewer_stats_take_fraction_lost (CimsWhepViewerStats *stats);

/* ---- latency (whep-viewer-latency.c) ------------------------------------ */

#define CIMS_WHEP_VIEWER_LATENCY_BUCKET_US 100
#define CIMS_WHEP_VIEWER_LATENCY_N_BUCKETS 20000   /* 0 to 2 s; the last bucket takes the rest */

/* Histogram of source-to-viewer latencies of one process, 0.1 ms buckets. */
typedef struct {
  guint64 counts[CIMS_WHEP_VIEWER_LATENCY_N_BUCKETS];
  guint64 n_samples;
} CimsWhepViewerLatency;

/* Reads the source's send time (CLOCK_REALTIME microseconds) from a plain RTP
 * packet carrying cimshub-source-gen's send-time SEI. Returns FALSE for any
 * other packet. */
gboolean cims_whep_viewer_send_time_parse (const guint8 *packet, gsize size, gint64 *send_time_us);
void cims_whep_viewer_latency_add (CimsWhepViewerLatency *latency, gint64 latency_us);
/* Turns on kernel receive timestamps for the UDP socket @fd, so that
 * cims_whep_viewer_socket_arrival_us() can read them. */
void cims_whep_viewer_socket_timestamps_enable (int fd);
/* Returns the time (CLOCK_REALTIME microseconds) at which the datagram last
 * read from @fd reached the socket, or -1 when the kernel has none. */
gint64 cims_whep_viewer_socket_arrival_us (int fd);
double cims_whep_viewer_latency_percentile_ms (const CimsWhepViewerLatency *latency, double fraction);

/* ---- Janus streaming plugin signalling (whep-viewer-janus.c) ------------- */

typedef struct _CimsWhepViewerJanus CimsWhepViewerJanus;

/* Called once per operation: with Janus's offer SDP (transfer none) after
 * watch, with neither after start and destroy, or with @error. */
typedef void (*CimsWhepViewerJanusFunc) (CimsWhepViewerJanus *janus, const char *offer, const GError *error,
                                         gpointer user_data);

/* Returns (transfer full) signalling for one viewer of mountpoint
 * @mountpoint_id at @base_url (".../janus"). @soup and @cancellable are
 * transfer none and must outlive it. */
CimsWhepViewerJanus *cims_whep_viewer_janus_new (SoupSession *soup, const char *base_url, guint64 mountpoint_id,
                                                 GCancellable *cancellable);
void cims_whep_viewer_janus_free (CimsWhepViewerJanus *janus);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsWhepViewerJanus, cims_whep_viewer_janus_free)
gboolean cims_whep_viewer_janus_has_session (CimsWhepViewerJanus *janus);
/* Creates a session, attaches janus.plugin.streaming, sends "watch" and
 * long-polls until the offer comes. Main context only. */
void cims_whep_viewer_janus_watch (CimsWhepViewerJanus *janus, CimsWhepViewerJanusFunc func, gpointer user_data);
/* Sends "start" with @answer as the JSEP answer. */
void cims_whep_viewer_janus_start (CimsWhepViewerJanus *janus, const char *answer, CimsWhepViewerJanusFunc func,
                                   gpointer user_data);
/* Destroys the Janus session; not cancelled by the viewer's cancellable. */
void cims_whep_viewer_janus_destroy (CimsWhepViewerJanus *janus, CimsWhepViewerJanusFunc func,
                                     gpointer user_data);

/* ---- RTCP (whep-viewer-rtcp.c) ----------------------------------------- */

typedef struct {
  guint32 ssrc;                    /* ours */
  guint32 media_ssrc;              /* the hub's */
  guint32 last_sr_ntp_middle;      /* middle 32 bits of the last SR's NTP time */
  gint64 last_sr_us;               /* when it arrived, 0 before any */
} CimsWhepViewerRtcp;

/* Writes a receiver report (with SDES CNAME), followed by a PLI when
 * @with_pli, into @buffer. Returns the size, 0 when it does not fit. */
gsize cims_whep_viewer_rtcp_build (CimsWhepViewerRtcp *rtcp, CimsWhepViewerStats *stats,
                                   const char *cname, gboolean with_pli, gint64 now_us,
                                   guint8 *buffer, gsize buffer_size);

/* Notes the hub's sender reports in a plain compound RTCP packet. */
void cims_whep_viewer_rtcp_parse (CimsWhepViewerRtcp *rtcp, const guint8 *packet, gsize size,
                                  gint64 now_us);

/* ---- one viewer (whep-viewer-session.c) -------------------------------- */

typedef struct _CimsWhepViewer CimsWhepViewer;

typedef void (*CimsWhepViewerEndedFunc) (CimsWhepViewer *viewer, gpointer user_data);

/* Resources shared by every viewer of the process. */
typedef struct {
  const CimsWhepViewerOptions *options;
  CimsWhepViewerIdentity *identity;
  SoupSession *soup;
  GMainContext *context;           /* the context of HTTP, timers and teardown */
  /* The epoll loop that runs @context and the viewers' ICE agents, these in
   * small contexts of their own: a GLib pass then visits the sources of a
   * few viewers, not of all of them. */
  CimsWorkerLoop *loop;
  gint64 real_minus_monotonic_us;  /* converts monotonic times to Unix times */
  gint64 latency_from_us;          /* monotonic time from which latency samples count */
  CimsWhepViewerLatency *latency;  /* the process's histogram, written by every viewer */
  CimsWhepViewerLatency *frame_latency;  /* histogram of latencies up to each frame's last packet */
  /* The same two, up to the kernel's receive time in the viewer's socket:
   * without the time the packet waited for this process to read it. NULL
   * without --socket-timestamps. */
  CimsWhepViewerLatency *socket_latency;
  CimsWhepViewerLatency *socket_frame_latency;
  CimsWhepViewerEndedFunc ended_func;
  gpointer ended_data;
} CimsWhepViewerShared;

/* Returns (transfer full) viewer number @index, not started yet. */
CimsWhepViewer *cims_whep_viewer_new (const CimsWhepViewerShared *shared, guint index);
void cims_whep_viewer_free (CimsWhepViewer *viewer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsWhepViewer, cims_whep_viewer_free)

/* Gathers candidates, then POSTs the offer. Main context only. */
void cims_whep_viewer_start (CimsWhepViewer *viewer);

/* Runs the viewer's timers (DTLS retransmission, RTCP, PLI, idle timeout,
 * duration); the caller calls it every few tens of milliseconds. */
void cims_whep_viewer_tick (CimsWhepViewer *viewer, gint64 now_us);

/* Ends the viewer as "interrupted" and DELETEs its session. */
void cims_whep_viewer_interrupt (CimsWhepViewer *viewer);

gboolean cims_whep_viewer_is_done (CimsWhepViewer *viewer);
/* Whether the viewer met the exit-status conditions for @options. */
gboolean cims_whep_viewer_is_successful (CimsWhepViewer *viewer);
/* Returns the first-keyframe time in ms after the POST, or -1. */
double cims_whep_viewer_get_first_keyframe_ms (CimsWhepViewer *viewer);
/* Returns (transfer full) the per-viewer result as JSON text (one line). */
char *cims_whep_viewer_result_to_json (CimsWhepViewer *viewer);
/* Returns (transfer full) an --events line of @event ("first-keyframe", "ended"). */
char *cims_whep_viewer_event_to_json (CimsWhepViewer *viewer, const char *event);

G_END_DECLS
