/* SPDX-License-Identifier: Apache-2.0 */
/* The hub daemon as a library: one CimsHub serves WHEP viewers, the admin
 * API, pages and metrics for one configuration. The program's entry point
 * is cimshub-main.c. */
#pragma once

#include <glib.h>

#include "config/config.h"

G_BEGIN_DECLS

#define CIMS_HUB_ERROR (cims_hub_error_quark ())
GQuark cims_hub_error_quark (void);

typedef enum {
  CIMS_HUB_ERROR_FAILED,
  CIMS_HUB_ERROR_TLS,           /* DTLS certificate or context could not be made */
  CIMS_HUB_ERROR_SRTP,
  CIMS_HUB_ERROR_LISTEN,        /* the HTTP address could not be bound */
  CIMS_HUB_ERROR_ICE,
  CIMS_HUB_ERROR_SESSION_ENDED, /* the session ended before its SDP answer was ready */
} CimsHubError;

typedef struct _CimsHub CimsHub;

/**
 * cims_hub_new:
 * Builds a hub for @config (transfer none: the hub takes a ref): loads the
 * token keys, makes or loads the DTLS certificate and starts the media
 * thread. Must be called on the thread that will run the main context.
 * Returns: (transfer full): the hub, or NULL with @error set.
 */
CimsHub *cims_hub_new (CimsConfig *config, GError **error);

/* Starts listening for HTTP on the configured address. */
gboolean cims_hub_start (CimsHub *hub, GError **error);

/* Ends every session (reason "hub-shutdown"), stops every source and the
 * HTTP listener, and cancels the annual report being computed. The hub can
 * then be freed. */
void cims_hub_stop (CimsHub *hub);

void cims_hub_free (CimsHub *hub);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsHub, cims_hub_free)

/* Reloads the configuration file the hub was started with: cameras,
 * jurisdictions, agencies and token keys change; sessions the new file no
 * longer allows end. The listen address, ICE ports and DTLS certificate
 * keep their old values until a restart. On error nothing changes. */
gboolean cims_hub_reload (CimsHub *hub, GError **error);

/* The port the HTTP server listens on (useful when configured as 0). */
guint16 cims_hub_get_http_port (CimsHub *hub);

G_END_DECLS
