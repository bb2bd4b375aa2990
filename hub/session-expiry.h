/* SPDX-License-Identifier: Apache-2.0 */
/* One timer for the instants at which viewer sessions' allowances end
 * (session-expiry.c). What happens to a session at that instant (a new
 * access decision, or its end) stays with the caller. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _CimsSessionExpiry CimsSessionExpiry;

/* Called once for each session whose instant has come, after its entry was
 * taken out; it may set or remove any entry, this one included. */
typedef void (*CimsSessionExpiryFunc) (const char *session_id, gpointer user_data);

/* Returns (transfer full) a schedule whose one GSource, at G_PRIORITY_HIGH,
 * is attached to @context (transfer none) and calls @func there. */
CimsSessionExpiry *cims_session_expiry_new (GMainContext *context, CimsSessionExpiryFunc func,
                                            gpointer user_data);

/* Detaches the timer and frees every entry. */
void cims_session_expiry_free (CimsSessionExpiry *expiry);

/* Calls @func for @session_id (copied) at the wall-clock instant @until_us
 * (microseconds since the epoch, as g_get_real_time()), never before it.
 * Replaces the session's earlier instant. G_MAXINT64 means no end and only
 * removes the entry. An instant already past is due at once. */
void cims_session_expiry_set (CimsSessionExpiry *expiry, const char *session_id, gint64 until_us);

/* Removes @session_id's instant, if it has one. */
void cims_session_expiry_remove (CimsSessionExpiry *expiry, const char *session_id);

/* How many sessions have an instant pending. */
guint cims_session_expiry_get_n_pending (CimsSessionExpiry *expiry);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsSessionExpiry, cims_session_expiry_free)

G_END_DECLS
