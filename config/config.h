/* SPDX-License-Identifier: Apache-2.0 */
/* The validated configuration model: hub settings, jurisdictions, agencies,
 * cameras with their inventory and viewer profiles. Parsing and validation
 * live in config-load.c; nothing here touches the network or GStreamer. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define CIMS_CONFIG_ERROR (cims_config_error_quark ())
GQuark cims_config_error_quark (void);

typedef enum {
  CIMS_CONFIG_ERROR_READ,       /* the file could not be read */
  CIMS_CONFIG_ERROR_SYNTAX,     /* libconfig could not parse it */
  CIMS_CONFIG_ERROR_INVALID,    /* parsed, but one or more values are invalid */
} CimsConfigError;

/* A closed time interval in UTC microseconds since the Unix epoch. A date
 * "YYYY-MM-DD" as `from` means 00:00:00 that day; as `to` it means the end
 * of that day, so `to` is exclusive at the next midnight. */
typedef struct {
  gint64 from_us;
  gint64 to_us;                 /* exclusive */
} CimsConfigPeriod;

typedef struct {
  char *id;                     /* e.g. "boston" */
  char *name;                   /* e.g. "Boston" */
  gboolean participates;        /* FALSE: owns no cameras, staff count as an agency */
  char *token_issuer;           /* the `iss` its identity provider puts in tokens */
  char *token_key_path;         /* PEM public key (EC P-256 or RSA) */
  int line;
} CimsConfigJurisdiction;

typedef struct {
  char *id;
  char *name;
  char *token_issuer;
  char *token_key_path;
  int line;
} CimsConfigAgency;

typedef struct {
  char *id;                     /* [a-z0-9][a-z0-9._-]{0,63} */
  char *jurisdiction;           /* owning jurisdiction id; it participates */
  char *location;
  char *brand_model;
  char *installed;              /* "YYYY-MM-DD" as written */
  char *source;                 /* rtsp:// or rtsps:// URL without credentials */
  char *source_username;        /* NULL when the camera needs no login */
  char *source_password;        /* never logged, never returned by the API */
  gboolean has_audio;           /* inventory fact; audio is dropped at ingest */
  char **shared_with;           /* NULL-terminated jurisdiction ids, may be empty */
  gboolean restricted;
  gboolean on_demand;           /* pulled only while viewed; FALSE: pulled from the start */
  GArray *out_of_service;       /* of CimsConfigPeriod */
  int line;
} CimsConfigCamera;

typedef struct {
  char *name;
  char **codecs;                /* NULL-terminated, lowercase: "h264", "h265", "vp8" */
  char **h264_profiles;         /* NULL-terminated profile-level-id prefixes, may be empty */
  guint max_width;
  guint max_height;
  guint max_fps;
  guint max_kbps;
  int line;
} CimsConfigProfile;

typedef struct {
  char *path;                   /* the file this was loaded from */

  char *http_host;              /* from hub.http_listen "HOST:PORT" */
  guint16 http_port;
  guint16 ice_port_min;         /* hub.ice_udp_ports = [min, max] */
  guint16 ice_port_max;
  char **public_addresses;      /* NULL-terminated IP literals, at least one */
  char *state_dir;
  guint idle_source_stop_s;     /* default 30 */
  guint source_connect_timeout_ms;   /* hub.source_connect_timeout_ms, default 8000 */
  guint reconnect_min_ms;       /* hub.reconnect_backoff_ms = [min, max], default [500, 30000] */
  guint reconnect_max_ms;
  guint ingest_latency_ms;      /* hub.ingest_latency_ms, rtspsrc jitter buffer, default 50 */
  guint incident_max_s;         /* hub.incident_max_s, longest major incident, default 72 h */
  guint whep_rate_per_client;   /* hub.whep_rate_per_client, WHEP requests/s per address, default 10 */
  guint whep_rate_total;        /* hub.whep_rate_total, WHEP requests/s in all, default 200 */
  guint max_sessions_per_user;  /* hub.max_sessions_per_user, default 16 */
  guint max_sessions_per_camera;/* hub.max_sessions_per_camera, default 2000 */
  guint media_workers;          /* hub.media_workers, 0 (default): one per processor */
  guint http_idle_timeout_s;    /* hub.http_idle_timeout_s, idle HTTP connection limit, default 60 */
  char *dtls_certificate_path;  /* optional PEM; NULL: make an ECDSA P-256 one at start */
  char *dtls_private_key_path;
  char **cors_origins;          /* NULL-terminated; "*" allowed for WHEP only */
  GPtrArray *trusted_proxies;   /* hub.trusted_proxies: of GInetAddressMask, reverse proxies whose
                                 * X-Forwarded-For names the viewer; empty by default */
  char *token_audience;         /* hub.token_audience, default "cimshub" */
  char *default_profile;        /* hub.default_profile, default: the first profile */
  char **regional_auditors;     /* hub.regional_auditors, "PARTY:SUBJECT" entries naming auditors
                                 * who may read every jurisdiction's audit records; NULL-terminated,
                                 * empty by default */

  GPtrArray *jurisdictions;     /* of CimsConfigJurisdiction */
  GPtrArray *agencies;          /* of CimsConfigAgency */
  GPtrArray *cameras;           /* of CimsConfigCamera, in file order */
  GPtrArray *profiles;          /* of CimsConfigProfile */

  /*< private >*/
  GHashTable *camera_index;
  gatomicrefcount ref_count;
} CimsConfig;

/**
 * cims_config_load:
 * Reads and validates a libconfig file. On failure the error message lists
 * every problem found, one per line, each as "FILE:LINE: message".
 * Returns: (transfer full): the configuration, or NULL with @error set.
 */
CimsConfig *cims_config_load (const char *path, GError **error);

CimsConfig *cims_config_ref (CimsConfig *config);
void cims_config_unref (CimsConfig *config);

/* Look-ups return (transfer none) pointers owned by @config, or NULL. */
const CimsConfigCamera *cims_config_find_camera (const CimsConfig *config, const char *id);
const CimsConfigJurisdiction *cims_config_find_jurisdiction (const CimsConfig *config, const char *id);
const CimsConfigAgency *cims_config_find_agency (const CimsConfig *config, const char *id);
const CimsConfigProfile *cims_config_find_profile (const CimsConfig *config, const char *name);

/* Returns TRUE when @now_us falls in one of the camera's out-of-service periods. */
gboolean cims_config_camera_is_out_of_service (const CimsConfigCamera *camera, gint64 now_us);

/* Returns TRUE when @id is a valid camera or jurisdiction id: 1 to 64 characters
 * of [a-z0-9._-], starting with a letter or digit, so it is safe in a URL path
 * and never names a parent directory. */
gboolean cims_config_id_is_valid (const char *id);

/* Returns TRUE when @client, a viewer's client version from its token or
 * WHEP URL, is 1 to 64 printable ASCII characters. It names a viewer
 * profile when it equals one's name, and goes into the audit log. */
gboolean cims_config_client_is_valid (const char *client);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsConfig, cims_config_unref)

G_END_DECLS
