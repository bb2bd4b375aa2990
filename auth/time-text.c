/* SPDX-License-Identifier: Apache-2.0 */
/* The text of a point in time as the admin API, session lists and policy
 * reasons show it: ISO 8601 UTC with milliseconds, so that a grant's end
 * and the stop record it caused can be compared to the millisecond. */
#include "auth/auth.h"

char *
cims_auth_time_text (gint64 time_us)
{
  gint64 seconds = time_us / G_USEC_PER_SEC;
  gint64 remainder_us = time_us % G_USEC_PER_SEC;
  g_autoptr (GDateTime) time = NULL;
  g_autofree char *whole = NULL;

  /* Division rounds toward zero: move a time before 1970 down a second. */
  if (remainder_us < 0) {
    seconds--;
    remainder_us += G_USEC_PER_SEC;
  }

  time = g_date_time_new_from_unix_utc (seconds);
  if (time == NULL)
    return NULL;

  whole = g_date_time_format (time, "%Y-%m-%dT%H:%M:%S");
  return g_strdup_printf ("%s.%03dZ", whole, (int) (remainder_us / 1000));
}
