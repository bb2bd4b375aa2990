/* SPDX-License-Identifier: Apache-2.0 */
/* The viewer session's state shared by its three files: lifecycle and ICE
 * (viewer-session.c), DTLS-SRTP (viewer-dtls.c) and the send path with RTCP
 * (viewer-media.c). Only those files include it. */
#pragma once

#include "hub/hub-runtime.h"
#include "hub/snapshot-pacer.h"

#include <stdatomic.h>
#include <sys/socket.h>

#include <agent.h>
#include <openssl/ssl.h>
#include <srtp2/srtp.h>

G_BEGIN_DECLS

/* Room for the SRTP authentication tag and SRTCP index after a packet. */
#define SRTP_MAX_OVERHEAD 32

struct _CimsViewerSession {
  gatomicrefcount ref_count;
  CimsHub *hub;

  char *id;
  char *camera_id;
  char *owner_jurisdiction;
  char *jurisdiction;
  char *subject;
  char *user_name;
  char *client;
  char *remote_address;
  char *rule_name;
  char *end_reason;             /* set once on the main context by close */
  char *grant_id;
  char *incident_id;
  char *incident_number;
  CimsAuthIdentity *identity;
  char *cname;
  guint32 ssrc;                 /* announced in the answer */
  gint64 allowed_until_us;
  gint64 started_real_us;
  gint64 started_us;

  /* The worker that owns the session; everything below runs on its
   * thread, so the send path takes no lock. */
  CimsWorker *worker;
  GMainContext *context;        /* the worker's own: calls from other threads */
  GMainContext *group_context;  /* the viewer group's: ICE agent and timers; NULL until negotiation */
  CimsFeed *feed;               /* NULL until media starts */
  NiceAgent *agent;
  guint stream_id;
  SSL *ssl;
  CimsDtlsSetup role;
  gboolean dtls_done;
  gint64 dtls_started_us;
  char *fingerprint_algorithm;
  guint8 fingerprint[64];
  gsize fingerprint_size;
  srtp_t srtp_in;
  GSource *dtls_timer;
  GSource *connect_timer;       /* ends the session unless DTLS completes in time */
  GPtrArray *remote_candidates;
  char *remote_ufrag;
  char *remote_pwd;
  const CimsSdpOffer *offer;    /* borrowed until the answer is delivered */
  CimsSdpCodec codec;
  char *answer_fmtp;
  CimsViewerAnswerFunc answer_func;
  gpointer answer_data;
  atomic_int answer_sent;       /* 1 once a thread delivered the SDP answer or its error */

  /* Send path. Media goes straight to the selected pair's UDP socket;
   * libnice keeps the socket for STUN and consent checks. */
  GSocket *send_socket;         /* NULL: send through nice_agent_send() */
  struct sockaddr_storage peer;
  socklen_t peer_size;
  gboolean is_gso_rejected;     /* the kernel rejected a GSO send to this viewer */
  srtp_t srtp_out;
  CimsRtpRewriter rewriter;
  gboolean waiting_for_keyframe;
  gint64 last_snapshot_us;      /* when the last snapshot started */
  CimsSnapshotPacer snapshot_pacer;
  GSource *snapshot_timer;      /* the timer of the next burst, or NULL unless a snapshot is in progress */

  CimsSource *source;
  atomic_int is_media_ready;
  atomic_int wants_keyframe;
  atomic_int is_closed;
  atomic_uint_fast64_t bytes_sent;
  atomic_uint_fast64_t packets_sent;
};

/* Asks the main context to end the session for @reason; media thread. */
void cims_viewer_session_fail (CimsViewerSession *session, const char *reason);
guint32 cims_viewer_session_random_u32 (void);

/* viewer-dtls.c, media thread */
void cims_viewer_session_dtls_start (CimsViewerSession *session);
void cims_viewer_session_handle_dtls (CimsViewerSession *session, const guint8 *data, gsize size);

/* viewer-media.c */
void cims_viewer_session_media_start (CimsViewerSession *session);
/* Drops a keyframe snapshot still being sent. Worker thread, at teardown. */
void cims_viewer_session_media_stop (CimsViewerSession *session);
/* Points the send path at the pair ICE selected; worker thread. */
void cims_viewer_session_update_send_path (CimsViewerSession *session);
void cims_viewer_session_handle_rtcp (CimsViewerSession *session, const guint8 *data, gsize size);

G_END_DECLS
