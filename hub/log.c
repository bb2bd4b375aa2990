/* SPDX-License-Identifier: Apache-2.0 */
/* Session-scoped structured logging: every line about a viewer session
 * carries its session id, camera id and the viewer's jurisdiction both as
 * structured fields and first in the message text. */
#include "hub/hub-runtime.h"

#include <stdarg.h>

void
cims_hub_log_session (GLogLevelFlags level, const char *session_id, const char *camera_id,
                      const char *jurisdiction, const char *format, ...)
{
  g_autofree char *text = NULL;
  g_autofree char *message = NULL;
  va_list args;

  if (level == G_LOG_LEVEL_DEBUG && g_log_writer_default_would_drop (level, G_LOG_DOMAIN))
    return;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);

  message = g_strdup_printf ("session=%s camera=%s jurisdiction=%s: %s",
                             session_id ? session_id : "-", camera_id ? camera_id : "-",
                             jurisdiction ? jurisdiction : "-", text);

  g_log_structured (G_LOG_DOMAIN, level,
                    "CIMS_SESSION_ID", session_id ? session_id : "",
                    "CIMS_CAMERA_ID", camera_id ? camera_id : "",
                    "CIMS_JURISDICTION", jurisdiction ? jurisdiction : "",
                    "MESSAGE", "%s", message);
}
