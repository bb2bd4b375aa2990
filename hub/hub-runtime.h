/* SPDX-License-Identifier: Apache-2.0 */
/* Internal runtime objects of the hub: the hub state, camera sources with
 * their subscribers, viewer sessions (ICE, DTLS, SRTP), the DTLS identity,
 * metrics and session-scoped logging. Packet formats are in hub-private.h. */
#pragma once

#include <stdatomic.h>

#include <glib.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <openssl/ssl.h>

#include "auth/auth.h"
#include "config/config.h"
#include "hub/hub.h"
#include "hub/fd-budget.h"
#include "hub/hub-private.h"
#include "hub/relay-delay.h"
#include "hub/session-expiry.h"
#include "pipelines/pipelines.h"

G_BEGIN_DECLS

typedef struct _CimsSource CimsSource;
typedef struct _CimsRateLimiter CimsRateLimiter;
typedef struct _CimsWorker CimsWorker;
typedef struct _CimsFeed CimsFeed;
typedef struct _CimsFeedRing CimsFeedRing;
typedef struct _CimsHttpConnections CimsHttpConnections;

/* Maximum number of media worker threads. */
#define CIMS_MAX_WORKERS 64
typedef struct _CimsViewerSession CimsViewerSession;

/* ---- metrics (metrics.c) ---------------------------------------------- */

/* Counters updated from any thread with relaxed atomics (CIMS_METRIC_ADD). */
typedef struct {
  atomic_uint_fast64_t whep_requests;
  atomic_uint_fast64_t whep_responses_2xx;
  atomic_uint_fast64_t whep_responses_4xx;
  atomic_uint_fast64_t whep_responses_5xx;
  atomic_uint_fast64_t sessions_started;
  atomic_uint_fast64_t sessions_ended;
  atomic_int_fast64_t sessions_active;
  atomic_int_fast64_t sources_active;
  atomic_uint_fast64_t source_reconnects;
  atomic_uint_fast64_t packets_dropped;     /* SRTP protect or send failures */
  atomic_uint_fast64_t keyframe_snapshots_sent;
  atomic_uint_fast64_t nacks_received;
  atomic_uint_fast64_t retransmissions_sent;
  atomic_uint_fast64_t plis_received;
  atomic_uint_fast64_t dtls_failures;
  atomic_uint_fast64_t fingerprint_mismatches;
  atomic_uint_fast64_t ice_failures;
  atomic_uint_fast64_t audit_failures;      /* audit records that could not be written */
  atomic_uint_fast64_t sessions_refused_audit; /* WHEP requests refused because the audit log failed */
  atomic_uint_fast64_t whep_rate_limited;   /* WHEP requests answered 429 */
  atomic_uint_fast64_t whep_refused_open_files; /* WHEP requests refused at the open-file limit */
  atomic_uint_fast64_t http_refused_open_files; /* HTTP connections closed at the open-file limit */
  atomic_uint_fast64_t feed_overflows;      /* packets a lagging worker missed */
  atomic_int_fast64_t transcoders_active;
} CimsMetrics;

#define CIMS_METRIC_ADD(hub, field, n) \
  atomic_fetch_add_explicit (&(hub)->metrics.field, (n), memory_order_relaxed)
#define CIMS_METRIC_GET(hub, field) \
  ((gint64) atomic_load_explicit (&(hub)->metrics.field, memory_order_relaxed))

/* Writes every counter in Prometheus text format. (transfer full) */
char *cims_metrics_format (CimsHub *hub);

/* ---- DTLS identity (dtls-identity.c) ---------------------------------- */

typedef struct {
  SSL_CTX *ssl_ctx;             /* DTLS 1.2 context with use_srtp */
  char *fingerprint_sha256;     /* "AB:CD:..." of the certificate */
  gboolean has_gcm;             /* libsrtp here can do AEAD_AES_128_GCM */
} CimsDtlsIdentity;

/* Loads the configured certificate and key, or makes an ECDSA P-256
 * self-signed certificate when none is configured. (transfer full) */
CimsDtlsIdentity *cims_dtls_identity_new (const CimsConfig *config, GError **error);
void cims_dtls_identity_free (CimsDtlsIdentity *identity);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsDtlsIdentity, cims_dtls_identity_free)

/* ---- the hub (hub.c) -------------------------------------------------- */

struct _CimsHub {
  CimsConfig *config;
  CimsConfig *start_config;     /* the one the hub started with: what only a restart changes */
  CimsAuthKeyring *keyring;
  CimsDtlsIdentity *dtls;

  GMainContext *main_context;   /* HTTP, ingest, session lifecycle */
  gboolean owns_main_context;   /* acquired by the hub's thread from start to free */
  CimsWorker *workers[CIMS_MAX_WORKERS];  /* ICE, DTLS, RTCP and sending, per core */
  guint n_workers;

  GHashTable *sessions;         /* id -> CimsViewerSession (ref), main context only */
  CimsSessionExpiry *session_expiry;  /* when each session's allowance ends */
  GHashTable *sources;          /* camera id -> CimsSource, main context only */

  CimsStore *store;             /* grants, incidents, audit log */
  char *store_path;             /* its file, which the offload thread opens read-only */
  int state_lock_fd;            /* the lock on the store's folder (state-lock.c), -1 without */
  GThreadPool *offload_pool;    /* reads for reports and audit queries, one at a time (api-offload.c) */
  GCancellable *offload_cancellable; /* made with offload_pool, cancelled when the hub stops */
  guint n_offload_jobs;         /* reads queued or running, main context only */
  GPtrArray *grants;            /* of CimsGrant, every grant ever made, newest first */
  GPtrArray *incidents;         /* of CimsIncident, newest first */
  guint heartbeat_id;
  guint keep_sources_id;        /* the minute check of cameras pulled from the start */
  guint64 recovery_checkpoint;  /* sequence the recovery checkpoint file names, 0 when none is valid */
  gboolean is_recovery_complete; /* the start-up recovery read the log and wrote every stop it needed */
  GQueue audit_backlog;         /* of CimsAuditRecord waiting for a writable log */
  guint64 audit_last_sequence;  /* of the last record this hub appended, 0 before the first */
  guint n_audit_lost;           /* records dropped unwritten: backlog overflow or a failed flush at stop */
  guint audit_retry_id;
  gint64 audit_failed_at_us;    /* real time of the failed write since the last good one, or 0 */
  GPtrArray *retired_configs;   /* of CimsConfig replaced by reloads, kept until the hub stops */
  CimsRateLimiter *whep_limiter;
  CimsFdBudget fd_budget;       /* open descriptors left for new viewers (fd-budget.c) */
  gint64 fd_limit_logged_us;    /* when a refusal at the open-file limit was last logged */
  gint64 http_fd_limit_logged_us; /* when an HTTP connection closed at that limit was last logged */

  SoupServer *http;
  CimsHttpConnections *http_connections;
  guint16 http_port;
  GSocket *http_listener;       /* the listening socket, or NULL while it cannot be made again */
  GSocketAddress *http_address; /* where it listens */
  guint http_check_id;          /* the timer that checks that connections are accepted */
  guint64 http_requests;        /* requests started, main context only */
  guint64 http_requests_checked; /* http_requests at the last check that saw a queue */
  gboolean http_queue_seen;     /* the last check saw connections waiting to be accepted */
  gint64 started_us;
  CimsMetrics metrics;
};

/* Returns (transfer none) the running source of @camera, starting its ingest
 * when it is not running. Main context only. */
CimsSource *cims_hub_source_acquire (CimsHub *hub, const CimsConfigCamera *camera);

/* Returns (transfer none) the shared transcode of @camera for @profile in
 * @codec, starting it when none runs. Main context. */
CimsSource *cims_hub_transcode_acquire (CimsHub *hub, CimsSource *camera, const CimsConfigProfile *profile,
                                        CimsCodec codec);

/* Registers a session that has an answer and will receive media. */
void cims_hub_session_add (CimsHub *hub, CimsViewerSession *session);

/* Ends a session for @reason ("viewer-left", "viewer-timed-out",
 * "token-expired", "hub-shutdown", ...). Main context only. Returns FALSE
 * when no session has that id. */
gboolean cims_hub_session_end (CimsHub *hub, const char *session_id, const char *reason);

/* Moves the session's scheduled end to its current allowed-until instant. */
void cims_hub_session_reschedule (CimsHub *hub, CimsViewerSession *session);

/* ---- live authorization (access.c) ----------------------------------- */

typedef enum {
  CIMS_ACCESS_TRIGGER_TIMER,            /* an allowance or the token reached its end */
  CIMS_ACCESS_TRIGGER_GRANT_REVOKED,
  CIMS_ACCESS_TRIGGER_INCIDENT_ENDED,
  CIMS_ACCESS_TRIGGER_CONFIG_RELOADED,
  CIMS_ACCESS_TRIGGER_CAMERA_REMOVED,
} CimsAccessTrigger;

/* Compares the grants and incidents tables with the audit records that
 * carry them. A grant or incident whose row differs from its latest record,
 * or that no record names, was edited behind the hub: it is logged as
 * critical, dropped from the grants or incidents in force, and named in an
 * audit-log-mismatch record. Main context, at start. */
void cims_hub_access_check_tables (CimsHub *hub);

/* Takes the state lock when state_dir exists already, so a second hub on
 * a running hub's state_dir stops naming it before anything else fails. */
gboolean cims_hub_access_lock_existing (CimsHub *hub, GError **error);

/* Creates state_dir when missing, takes its lock unless held, opens the
 * state store there and loads grants and incidents. */
gboolean cims_hub_access_open (CimsHub *hub, GError **error);

/* Takes the lock that gives this process @folder (state-lock.c). Returns
 * the lock's descriptor, or -1 with @error naming the hub that holds it. */
int cims_state_lock_acquire (const char *folder, GError **error);
/* Gives the lock back; -1 is allowed. */
void cims_state_lock_release (int fd);

/* Returns the viewer's address for @msg: the TCP peer, or behind one of
 * trusted_proxies, the viewer that X-Forwarded-For names (client-address.c).
 * (transfer full) (nullable) */
char *cims_http_client_address (CimsHub *hub, SoupServerMessage *msg);

void cims_hub_access_decide (CimsHub *hub, const CimsAuthIdentity *identity,
                             const CimsConfigCamera *camera, const char *incident_number,
                             gint64 now_us, CimsAuthDecision *decision);

/* Decides again for a running session: keeps it (with a new end instant)
 * or ends it with the reason. Returns TRUE when it is still allowed. */
gboolean cims_hub_access_recheck_session (CimsHub *hub, CimsViewerSession *session,
                                          CimsAccessTrigger trigger);
/* Rechecks every session; returns how many ended. */
guint cims_hub_access_recheck_all (CimsHub *hub, CimsAccessTrigger trigger);

const CimsGrant *cims_hub_access_find_grant (CimsHub *hub, const char *id);
const CimsIncident *cims_hub_access_find_incident (CimsHub *hub, const char *id);
gboolean cims_hub_access_grant_create (CimsHub *hub, const CimsAuthIdentity *actor, CimsGrant *grant,
                                       GError **error);
gboolean cims_hub_access_grant_revoke (CimsHub *hub, const CimsAuthIdentity *actor, const char *grant_id,
                                       guint *n_ended, GError **error);
gboolean cims_hub_access_incident_start (CimsHub *hub, const CimsAuthIdentity *actor,
                                         CimsIncident *incident, GError **error);
gboolean cims_hub_access_incident_end (CimsHub *hub, const CimsAuthIdentity *actor,
                                       const char *incident_id, guint *n_ended, GError **error);

/* ---- audit records (audit.c) ------------------------------------------ */

/* Appends the session's start record; FALSE (logged, counted) when the
 * audit log cannot be written, and then the session must not start. */
gboolean cims_hub_audit_session_start (CimsHub *hub, CimsViewerSession *session,
                                       const CimsConfigCamera *camera, GError **error);
void cims_hub_audit_session_stop (CimsHub *hub, CimsViewerSession *session, const char *reason);
/* Adds @member to an audit record's details: @value, or null when NULL. */
void cims_hub_json_add_string_or_null (JsonBuilder *builder, const char *member, const char *value);
/* Records that a running session is now allowed by another grant, incident
 * or rule than before. Main context. */
void cims_hub_audit_session_allowance_changed (CimsHub *hub, CimsViewerSession *session,
                                               const char *previous_rule, const char *previous_grant_id,
                                               const char *previous_incident_id);

/* Writes the records still waiting for a writable log; at shutdown. */
void cims_hub_audit_flush (CimsHub *hub);
void cims_hub_audit_denied (CimsHub *hub, const CimsAuthIdentity *identity,
                            const CimsConfigCamera *camera, const char *incident_number,
                            const char *address, const char *rule);
void cims_hub_audit_grant (CimsHub *hub, const char *event, const CimsAuthIdentity *actor,
                           const CimsGrant *grant, const char *details);
void cims_hub_audit_incident (CimsHub *hub, const char *event, const CimsAuthIdentity *actor,
                              const CimsIncident *incident, const char *details);
void cims_hub_audit_event (CimsHub *hub, const char *event, const CimsConfigCamera *camera,
                           const char *reason, const char *details);
/* Appends one step of an archive-footage request: @event is
 * "archive-requested", "archive-legal-reviewed", "archive-approved" or
 * "archive-denied", @actor the person who took the step, @reason the
 * purpose or the decision, @note the reviewer's note (may be NULL). The
 * record carries the camera, its owner and the incident number; details
 * name the request, requester and footage period. FALSE (logged, counted)
 * when the audit log cannot be written. Main context. */
gboolean cims_hub_audit_archive_request (CimsHub *hub, const char *event,
                                         const CimsAuthIdentity *actor,
                                         const CimsArchiveRequest *request, const char *reason,
                                         const char *note, GError **error);

/* ---- admission limits (rate-limit.c) ---------------------------------- */

CimsRateLimiter *cims_rate_limiter_new (void);
void cims_rate_limiter_free (CimsRateLimiter *limiter);

/* Counts one request from @address against both limits (requests per
 * second). Returns 0 when it may proceed, else the seconds to wait for
 * Retry-After. Main context only. */
guint cims_rate_limiter_check (CimsRateLimiter *limiter, const char *address,
                               guint per_client_rate, guint total_rate);

/* ---- crash recovery (recovery.c) -------------------------------------- */

/* Writes the heartbeat file every few seconds from now on. */
void cims_hub_heartbeat_start (CimsHub *hub);
/* Records a stop for every session the log shows as still open, reading
 * only the session records after the recovery checkpoint, and moves the
 * checkpoint past them when every stop was written. Main context, before
 * the hub accepts sessions. */
void cims_hub_recover_sessions (CimsHub *hub);

/* ---- recovery checkpoint (recovery-checkpoint.c) ---------------------- */

/* Reads the checkpoint file beside the database and checks that the audit
 * log contains the record it names, with the same hash. Returns that
 * sequence, or 0 (read the whole log) when the file is missing, invalid or
 * does not match the log, after logging one line with the reason. These three
 * functions run on the main context. */
guint64 cims_hub_recovery_checkpoint_load (CimsHub *hub);

/* Writes @sequence as the new checkpoint, with that record's hash read from
 * the log, and sets hub->recovery_checkpoint. Only call when no session
 * whose start is at or before @sequence lacks a stop in the log. Returns
 * FALSE (logged) when the record cannot be read or the file not written;
 * the old checkpoint then stays, which is safe. */
gboolean cims_hub_recovery_checkpoint_write (CimsHub *hub, guint64 sequence);

/* At a clean stop, after every session's stop was appended and the backlog
 * flushed: moves the checkpoint to the last record this hub wrote, unless
 * the start-up recovery was incomplete or an audit record was lost. */
void cims_hub_recovery_checkpoint_advance (CimsHub *hub);

/* ---- admin API (api-admin.c) ------------------------------------------ */

void cims_api_handle (CimsHub *hub, SoupServerMessage *msg, const char *path, GHashTable *query);

/* Resources that route their own sub-paths and methods. @rest is the path
 * after the resource's prefix ("" or "/..."); @query may be NULL. Main
 * context. GET /api/v1/audit (api-audit.c), /api/v1/archive-requests
 * (api-archive.c), GET /api/v1/reports/annual (api-reports.c). */
void cims_api_audit_handle (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity,
                            const char *rest, GHashTable *query);
void cims_api_archive_handle (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity,
                              const char *rest, GHashTable *query);
void cims_api_reports_handle (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity,
                              const char *rest, GHashTable *query);

/* Reply helpers of those resources (api-json.c). reply_object takes
 * @object (transfer full). body_parse returns (transfer none) the body's
 * object, owned by @parser, or NULL after replying 400 or 413. The member
 * readers reply 400 naming the member and return FALSE when it is missing
 * (if @required), empty, or of another type; get_time wants ISO 8601 with
 * a zone. set_time writes null for 0. */
void cims_api_reply_object (SoupServerMessage *msg, guint status, JsonObject *object);
void cims_api_reply_forbidden (SoupServerMessage *msg, const char *rule, const char *reason);
void cims_api_reply_store_error (SoupServerMessage *msg, const GError *error);
void cims_api_reply_method_not_allowed (SoupServerMessage *msg, const char *allow);
JsonObject *cims_api_body_parse (SoupServerMessage *msg, JsonParser *parser);
gboolean cims_api_member_get_string (SoupServerMessage *msg, JsonObject *object, const char *member,
                                     gboolean required, const char **out);
gboolean cims_api_member_get_time (SoupServerMessage *msg, JsonObject *object, const char *member,
                                   gint64 *out_us);
void cims_api_object_set_time (JsonObject *object, const char *member, gint64 time_us);
/* Returns (transfer full) @object (transfer full) as the indented JSON text
 * that reply_object sends, and its length in @size. Any thread. */
char *cims_api_object_to_data (JsonObject *object, gsize *size);

/* ---- store reads off the main context (api-offload.c) ----------------- */

/* Reads what one request needs from @store, a read-only connection
 * (transfer none) opened for this call, and stores it in @data. Runs on the
 * offload thread, so it must not touch the hub. Checks @cancellable while
 * it reads. Returns FALSE with @error set on failure, with
 * G_IO_ERROR_CANCELLED when the hub is stopping. */
typedef gboolean (*CimsApiOffloadReadFunc) (CimsStore *store, gpointer data, GCancellable *cancellable,
                                            GError **error);
/* Replies to @msg from what the read stored in @data. Main context. */
typedef void (*CimsApiOffloadReplyFunc) (SoupServerMessage *msg, gpointer data);

/* Pauses @msg and queues @read on the hub's offload thread, a
 * low-priority thread that runs one read at a time. After a read that
 * succeeded, @reply sends the response on the main context. After one that
 * failed, the failure is logged and @msg gets the store error's status.
 * Replies 503 store-unavailable at once when the hub has no store file.
 * Takes @description (transfer full), the request as log lines name it,
 * e.g. "audit query by b-auditor (boston)", and @data (transfer full),
 * freed with @data_free on the main context. Main context. */
void cims_api_offload_push (CimsHub *hub, SoupServerMessage *msg, char *description,
                            CimsApiOffloadReadFunc read, CimsApiOffloadReplyFunc reply, gpointer data,
                            GDestroyNotify data_free);
/* Cancels the running read, skips the queued ones and waits for the
 * offload thread to end. Call after the HTTP server is gone: the requests'
 * replies are then dropped. Main context. */
void cims_api_offload_stop (CimsHub *hub);

/* ---- camera sources (source.c) ---------------------------------------- */

typedef void (*CimsSourceReadyFunc) (CimsSource *source, const GError *error, gpointer user_data);

CimsSource *cims_source_new (CimsHub *hub, const CimsConfigCamera *camera);

/* A shared transcode of @camera for @profile into @output_codec; starts at
 * once, fed from the camera's keyframe. Main context. (transfer full) */
CimsSource *cims_source_new_transcode (CimsHub *hub, CimsSource *camera, const CimsConfigProfile *profile,
                                       CimsCodec output_codec);
/* The hub->sources key of such a transcode. (transfer full) */
char *cims_source_transcode_key (const char *camera_id, const char *profile_name, CimsCodec codec);
const char *cims_source_get_key (CimsSource *source);
/* The camera's picture size from its SPS; 0 x 0 until known. Any thread. */
void cims_source_get_size (CimsSource *source, guint *width, guint *height);
/* The transcoder of a transcode source, else NULL. (transfer none) */
CimsTranscoder *cims_source_get_transcoder (CimsSource *source);
const char *cims_source_get_profile_name (CimsSource *source);
void cims_source_free (CimsSource *source);
const char *cims_source_get_camera_id (CimsSource *source);

/* Calls @func on the main context once the camera's video format is known,
 * or with an error after the configured connect timeout. Immediately when
 * the format is already known. */
void cims_source_when_ready (CimsSource *source, CimsSourceReadyFunc func, gpointer user_data);

/* The camera's current video format; valid after ready. */
CimsCodec cims_source_get_codec (CimsSource *source);
guint32 cims_source_get_profile_level_id (CimsSource *source);

/* Viewers subscribed through any worker; any thread. */
guint cims_source_get_n_subscribers (CimsSource *source);
void cims_source_count_subscriber (CimsSource *source, int delta);

/* Starts feeding worker @worker_index: makes its ring and a keyframe cache
 * seeded with the current keyframe. Returns the format generation the cache
 * matches. Worker thread. */
guint cims_source_attach_feed (CimsSource *source, guint worker_index, CimsFeedRing **ring,
                               CimsKeyframeCache **cache);
/* Stops feeding that worker; the caller frees the ring after. */
void cims_source_detach_feed (CimsSource *source, guint worker_index);
/* Changes when the camera's format or epoch changes; any thread. */
guint cims_source_get_format_generation (CimsSource *source);
/* Replaces a feed's cache with one for the current format. */
guint cims_source_refresh_feed_cache (CimsSource *source, CimsKeyframeCache **cache);

/* ---- media workers (worker.c) ------------------------------------------- */

/* Adds to a counter that one thread writes and others only read. */
#define CIMS_COUNTER_ADD(counter, n) \
  atomic_store_explicit (&(counter), atomic_load_explicit (&(counter), memory_order_relaxed) + (n), \
                         memory_order_relaxed)

/* Per-worker packet counters, summed into /metrics. */
typedef struct {
  atomic_uint_fast64_t packets_relayed;
  atomic_uint_fast64_t bytes_relayed;
  atomic_uint_fast64_t packets_dropped;
  atomic_uint_fast64_t relay_delay_counts[CIMS_RELAY_DELAY_N_BUCKETS];  /* relay-delay.c */
  atomic_uint_fast64_t relay_delay_sum_us;
} CimsWorkerCounters;

CimsWorkerCounters *cims_worker_get_counters (CimsWorker *worker);
/* Sums a field of every worker's counters; any thread. */
guint64 cims_hub_worker_counters_sum (CimsHub *hub, gsize field_offset);

CimsWorker *cims_worker_new (CimsHub *hub, guint index, GError **error);
/* Runs the teardowns already queued, then stops the thread. */
void cims_worker_free (CimsWorker *worker);
GMainContext *cims_worker_get_context (CimsWorker *worker);

/* The context of a viewer group with room for one more viewer, for the
 * viewer's ICE agent and timers (worker-loop.c); worker thread. */
GMainContext *cims_worker_join_group (CimsWorker *worker);
/* Gives back the viewer's place in that group; worker thread. */
void cims_worker_leave_group (CimsWorker *worker, GMainContext *group_context);

void cims_worker_count_session (CimsWorker *worker, int delta);
/* Wakes the worker to drain its feeds unless it is awake already; any
 * thread, after pushing. */
void cims_worker_wake (CimsWorker *worker);
/* The worker with the fewest sessions. */
CimsWorker *cims_hub_worker_pick (CimsHub *hub);

/* Adds @session to the worker's feed of @source, making the feed when it
 * is the first; worker thread. Returns (transfer none) the feed. */
CimsFeed *cims_worker_subscribe (CimsWorker *worker, CimsSource *source, CimsViewerSession *session);
/* Removes @session; the last one out frees the feed. Worker thread. */
void cims_worker_unsubscribe (CimsWorker *worker, CimsFeed *feed, CimsViewerSession *session);
/* The worker's own keyframe cache and packet history for that camera. */
CimsKeyframeCache *cims_feed_get_cache (CimsFeed *feed);

CimsFeedRing *cims_feed_ring_new (void);
/* Adds @packet (transfer full) unless the ring is full; producer only. */
gboolean cims_feed_ring_push (CimsFeedRing *ring, CimsRtpPacket *packet);

/* Stops a pending idle stop: a new viewer is coming. Main context. */
void cims_source_cancel_idle_stop (CimsSource *source);

/* Schedules the idle stop when no session of the camera is left, unless
 * the source is kept. Main context. */
void cims_source_check_idle (CimsSource *source);

/* Keeps the camera's ingest running without viewers, or lets it stop when
 * idle again, for @reason (logged). Main context. */
void cims_source_set_kept (CimsSource *source, gboolean is_kept, const char *reason);

/* Connects the camera's ingest again when @camera, from a reloaded
 * configuration, has another source URL or login. Main context. */
void cims_source_update_camera (CimsSource *source, const CimsConfigCamera *camera);

/* Connects the camera's ingest again when it gave up for good, as on an
 * unsupported codec. Main context. */
void cims_source_retry_stopped (CimsSource *source, const CimsConfigCamera *camera);

/* ---- cameras pulled from the start (kept-sources.c) ---------------------- */

/* Starts the ingest of every in-service camera with on_demand = false and
 * lets the others stop when idle; then again every minute, as cameras go
 * out of service or come back. Main context. */
void cims_hub_keep_sources_start (CimsHub *hub);
/* Applies a reloaded configuration at once. Main context. */
void cims_hub_keep_sources_update (CimsHub *hub);
void cims_hub_keep_sources_stop (CimsHub *hub);

/* ---- viewer sessions (viewer-session.c) -------------------------------- */

typedef void (*CimsViewerAnswerFunc) (CimsViewerSession *session, const char *answer,
                                      const GError *error, gpointer user_data);

typedef struct {
  const char *camera_id;
  const char *owner_jurisdiction;
  CimsAuthIdentity *identity;         /* (transfer full) */
  const char *remote_address;
  const char *client;                 /* from the WHEP query, else the token's claim */
  const char *incident_number;        /* X-Incident-Number, or NULL */
  const CimsAuthDecision *decision;   /* copied: rule, grant, incident, until */
} CimsViewerSessionInfo;

/* Makes a session with a fresh random id. Main context. (transfer full) */
CimsViewerSession *cims_viewer_session_new (CimsHub *hub, const CimsViewerSessionInfo *info);
CimsViewerSession *cims_viewer_session_ref (CimsViewerSession *session);
void cims_viewer_session_unref (CimsViewerSession *session);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsViewerSession, cims_viewer_session_unref)

const char *cims_viewer_session_get_id (CimsViewerSession *session);
const char *cims_viewer_session_get_camera_id (CimsViewerSession *session);
const char *cims_viewer_session_get_jurisdiction (CimsViewerSession *session);
gint64 cims_viewer_session_get_allowed_until (CimsViewerSession *session);
const CimsAuthIdentity *cims_viewer_session_get_identity (CimsViewerSession *session);
const char *cims_viewer_session_get_incident_number (CimsViewerSession *session);
const char *cims_viewer_session_get_grant_id (CimsViewerSession *session);
const char *cims_viewer_session_get_incident_id (CimsViewerSession *session);
const char *cims_viewer_session_get_rule_name (CimsViewerSession *session);
const char *cims_viewer_session_get_remote_address (CimsViewerSession *session);
const char *cims_viewer_session_get_client (CimsViewerSession *session);
const char *cims_viewer_session_get_camera_owner (CimsViewerSession *session);
/* The source the session is fed from, NULL before negotiation. */
CimsSource *cims_viewer_session_get_source (CimsViewerSession *session);
gint64 cims_viewer_session_get_started_real_us (CimsViewerSession *session);
guint64 cims_viewer_session_get_bytes_sent (CimsViewerSession *session);

/* Records a fresh decision for a running session: rule, grant, incident
 * and the instant the allowance ends. Main context. */
void cims_viewer_session_set_decision (CimsViewerSession *session, const CimsAuthDecision *decision);
JsonObject *cims_viewer_session_to_json (CimsViewerSession *session);

/**
 * cims_viewer_session_negotiate:
 * Sets up ICE for @offer (transfer none) on the media thread, gathers the
 * hub's candidates and calls @func on the main context with the SDP answer.
 * @codec is the offered payload type to send (transfer none, copied).
 */
void cims_viewer_session_negotiate (CimsViewerSession *session, CimsSource *source,
                                    const CimsSdpOffer *offer, const CimsSdpCodec *codec,
                                    const char *answer_fmtp,
                                    CimsViewerAnswerFunc func, gpointer user_data);

/* Sends an RTCP sender report; the session's worker calls it for all its
 * sessions from one timer. Worker thread. */
void cims_viewer_session_send_report (CimsViewerSession *session);

/* Stops media and frees the ICE agent, withdrawing consent. Main context. */
void cims_viewer_session_close (CimsViewerSession *session, const char *reason);

/* Sends the camera's next @n_packets packets, already pushed into @cache, to
 * the viewer, or the keyframe snapshot (which ends with them) when the viewer
 * waits for a keyframe or sent a PLI. The session's worker calls it for each
 * batch it drains. Worker thread; takes no lock. */
void cims_viewer_session_deliver (CimsViewerSession *session, CimsKeyframeCache *cache,
                                  CimsRtpPacket *const *packets, guint n_packets);

/* ---- HTTP (http-server.c, whep.c, web-page.c) -------------------------- */

gboolean cims_http_server_bind (CimsHub *hub, GError **error);
gboolean cims_http_server_start (CimsHub *hub, GError **error);

/* ---- HTTP connections (http-connection.c) ---- */

/* Returns (transfer full) the connection rules for @server (transfer none),
 * which must be freed after @server: a wait limit of
 * hub.http_idle_timeout_s on each client, and the release of the sockets
 * libsoup 3.2 keeps. */
CimsHttpConnections *cims_http_connections_new (CimsHub *hub, SoupServer *server);
void cims_http_connections_free (CimsHttpConnections *connections);

/* Marks the response to close its connection once written. */
void cims_http_connection_close_after (SoupServerMessage *msg);

/* Sets a JSON error body {"error": code, "reason": reason} and the status. */
void cims_http_reply_error (SoupServerMessage *msg, guint status, const char *code, const char *reason);


/* Returns (transfer full) the verified identity of the request's Bearer
 * token, or NULL after replying 401. */
CimsAuthIdentity *cims_http_authenticate (CimsHub *hub, SoupServerMessage *msg);

void cims_whep_handle (CimsHub *hub, SoupServerMessage *msg, const char *path, GHashTable *query);
void cims_web_page_handle (CimsHub *hub, SoupServerMessage *msg);

/* ---- logging (log.c) --------------------------------------------------- */

/* Logs a line about a session with CIMS_SESSION_ID, CIMS_CAMERA_ID and
 * CIMS_JURISDICTION fields and the same ids first in the text. */
void cims_hub_log_session (GLogLevelFlags level, const char *session_id, const char *camera_id,
                           const char *jurisdiction, const char *format, ...) G_GNUC_PRINTF (5, 6);

#define cims_session_message(s, ...) \
  cims_hub_log_session (G_LOG_LEVEL_MESSAGE, cims_viewer_session_get_id (s), \
                        cims_viewer_session_get_camera_id (s), \
                        cims_viewer_session_get_jurisdiction (s), __VA_ARGS__)
#define cims_session_warning(s, ...) \
  cims_hub_log_session (G_LOG_LEVEL_WARNING, cims_viewer_session_get_id (s), \
                        cims_viewer_session_get_camera_id (s), \
                        cims_viewer_session_get_jurisdiction (s), __VA_ARGS__)
#define cims_session_debug(s, ...) \
  cims_hub_log_session (G_LOG_LEVEL_DEBUG, cims_viewer_session_get_id (s), \
                        cims_viewer_session_get_camera_id (s), \
                        cims_viewer_session_get_jurisdiction (s), __VA_ARGS__)

G_END_DECLS
