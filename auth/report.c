/* SPDX-License-Identifier: Apache-2.0 */
/* Computes the annual transparency report from one year of audit records
 * and the configuration, and converts audit records and their times to
 * JSON and text. Rendering the report is report-render.c. */
#include "auth/report.h"

#include <stdlib.h>
#include <string.h>

#include "auth/store-private.h"

/* Listed first, in this order, so that every report has the same columns. */
static const char *const standard_permissions[] = { "view", "rewind", "download", "restrict", NULL };
static const char *const standard_roles[] = {
  "viewer", "system-administrator", "grant-authority", "commander", "auditor", "legal", NULL,
};

/* A person seen in the year's records. */
typedef struct {
  char *jurisdiction;
  char **permissions;           /* from the latest record with rights, or NULL */
  char **roles;
  char **acting_roles;          /* every role listed in the person's grant and incident records */
  gboolean has_rights;
} ReportUser;

static void
report_user_free (ReportUser *user)
{
  g_free (user->jurisdiction);
  g_strfreev (user->permissions);
  g_strfreev (user->roles);
  g_strfreev (user->acting_roles);
  g_free (user);
}

/* State of one computation. */
typedef struct {
  CimsAnnualReport *report;
  const CimsConfig *config;
  GHashTable *parties;          /* id -> CimsReportParty (borrowed from report->parties or unconfigured) */
  GPtrArray *unconfigured;      /* of CimsReportParty, owned until appended */
  GHashTable *users;            /* "JURISDICTION\x1fPERSON" -> ReportUser */
  CimsAuditChain chain;         /* advanced up to the first break only */
  guint64 previous_sequence;    /* of the last record read, 0 before the first */
} ReportBuilder;

void
cims_report_party_free (CimsReportParty *party)
{
  if (party == NULL)
    return;

  g_free (party->id);
  g_free (party->name);
  g_free (party->users_by_permission);
  g_free (party->users_by_role);
  g_free (party);
}

void
cims_annual_report_free (CimsAnnualReport *report)
{
  if (report == NULL)
    return;

  g_strfreev (report->permission_names);
  g_strfreev (report->role_names);
  g_clear_pointer (&report->parties, g_ptr_array_unref);
  g_free (report->chain_problem);
  g_clear_pointer (&report->sequence_gaps, g_array_unref);
  g_free (report->anchor);
  g_free (report->checkpoint_mismatches);
  g_free (report);
}

static CimsReportParty *
party_new (const char *id, const char *name, CimsReportPartyKind kind)
{
  CimsReportParty *party = g_new0 (CimsReportParty, 1);

  party->id = g_strdup (id);
  party->name = g_strdup (name != NULL ? name : id);
  party->kind = kind;
  return party;
}

/* Returns the row of @id, making an unconfigured one on first sight. */
static CimsReportParty *
builder_get_party (ReportBuilder *builder, const char *id)
{
  CimsReportParty *party = g_hash_table_lookup (builder->parties, id);

  if (party != NULL)
    return party;

  party = party_new (id, NULL, CIMS_REPORT_PARTY_UNCONFIGURED);
  g_ptr_array_add (builder->unconfigured, party);
  g_hash_table_insert (builder->parties, party->id, party);
  return party;
}

static void
builder_add_configured_parties (ReportBuilder *builder)
{
  const CimsConfig *config = builder->config;

  if (config == NULL)
    return;

  for (guint i = 0; i < config->jurisdictions->len; i++) {
    const CimsConfigJurisdiction *jurisdiction = g_ptr_array_index (config->jurisdictions, i);
    CimsReportParty *party = party_new (jurisdiction->id, jurisdiction->name,
                                        CIMS_REPORT_PARTY_JURISDICTION);

    g_ptr_array_add (builder->report->parties, party);
    g_hash_table_insert (builder->parties, party->id, party);
  }

  for (guint i = 0; i < config->agencies->len; i++) {
    const CimsConfigAgency *agency = g_ptr_array_index (config->agencies, i);
    CimsReportParty *party = party_new (agency->id, agency->name, CIMS_REPORT_PARTY_AGENCY);

    g_ptr_array_add (builder->report->parties, party);
    g_hash_table_insert (builder->parties, party->id, party);
  }
}

/* ---- cameras ----------------------------------------------------------------- */

/* Parses "YYYY-MM-DD" as 00:00 UTC that day. */
static gboolean
date_parse_us (const char *text, gint64 *time_us)
{
  static const char pattern[] = "dddd-dd-dd";
  g_autoptr (GDateTime) time = NULL;

  if (text == NULL || strlen (text) != sizeof pattern - 1)
    return FALSE;

  for (gsize i = 0; pattern[i] != '\0'; i++) {
    if (pattern[i] == 'd' ? !g_ascii_isdigit (text[i]) : text[i] != pattern[i])
      return FALSE;
  }

  time = g_date_time_new_utc (atoi (text), atoi (text + 5), atoi (text + 8), 0, 0, 0);
  if (time == NULL)
    return FALSE;

  *time_us = g_date_time_to_unix (time) * G_USEC_PER_SEC;
  return TRUE;
}

/* TRUE when some instant of [start_us, end_us) is outside every
 * out-of-service period of @camera. The periods may overlap and come in any
 * order, so the cursor moves past each period covering it until none does. */
static gboolean
camera_in_service_between (const CimsConfigCamera *camera, gint64 start_us, gint64 end_us)
{
  gint64 cursor_us = start_us;
  gboolean has_moved = TRUE;

  while (has_moved && cursor_us < end_us) {
    has_moved = FALSE;
    for (guint i = 0; camera->out_of_service != NULL && i < camera->out_of_service->len; i++) {
      const CimsConfigPeriod *period = &g_array_index (camera->out_of_service, CimsConfigPeriod, i);

      if (period->from_us <= cursor_us && cursor_us < period->to_us) {
        cursor_us = period->to_us;
        has_moved = TRUE;
      }
    }
  }

  return cursor_us < end_us;
}

/* NOTE: the inventory is the configuration in force now, so a camera that
 * was removed from it is not counted for past years. */
static void
builder_count_cameras (ReportBuilder *builder)
{
  const CimsConfig *config = builder->config;
  gint64 year_start_us = builder->report->from_ms * 1000;
  gint64 year_end_us = builder->report->to_ms * 1000;

  for (guint i = 0; config != NULL && i < config->cameras->len; i++) {
    const CimsConfigCamera *camera = g_ptr_array_index (config->cameras, i);
    gint64 installed_us = 0;

    if (!date_parse_us (camera->installed, &installed_us) || installed_us >= year_end_us)
      continue;

    if (camera_in_service_between (camera, MAX (installed_us, year_start_us), year_end_us))
      builder_get_party (builder, camera->jurisdiction)->n_cameras_in_service++;
  }
}

/* ---- records ------------------------------------------------------------------ */

static char **
json_member_dup_strv (JsonObject *object, const char *member)
{
  g_autoptr (GPtrArray) values = NULL;
  JsonNode *node = json_object_get_member (object, member);
  JsonArray *array;

  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node))
    return NULL;

  /* A name listed twice still counts the user once. */
  array = json_node_get_array (node);
  values = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < json_array_get_length (array); i++) {
    JsonNode *element = json_array_get_element (array, i);
    const char *value = JSON_NODE_HOLDS_VALUE (element) ? json_node_get_string (element) : NULL;

    if (value != NULL && !g_ptr_array_find_with_equal_func (values, value, g_str_equal, NULL))
      g_ptr_array_add (values, g_strdup (value));
  }
  g_ptr_array_add (values, NULL);
  return (char **) g_ptr_array_free (g_steal_pointer (&values), FALSE);
}

/* Events whose details list the rights of the person who acted, as
 * actor_permissions and actor_roles. */
static const char *const acting_events[] = {
  "grant-created", "grant-revoked", "incident-started", "incident-ended", NULL,
};

/* Keeps the rights that @details lists under @permissions_member and
 * @roles_member. Records written before rights were recorded lack them. */
static void
user_take_rights (ReportUser *user, JsonObject *details, const char *permissions_member,
                  const char *roles_member)
{
  char **permissions = json_member_dup_strv (details, permissions_member);

  if (permissions == NULL)
    return;

  g_strfreev (user->permissions);
  g_strfreev (user->roles);
  user->permissions = permissions;
  user->roles = json_member_dup_strv (details, roles_member);
  user->has_rights = TRUE;
}

/* Adds to @user's acting roles each role of @details' actor_roles. */
static void
user_add_acting_roles (ReportUser *user, JsonObject *details)
{
  g_auto (GStrv) roles = json_member_dup_strv (details, "actor_roles");
  g_autoptr (GStrvBuilder) merged = NULL;

  if (roles == NULL || roles[0] == NULL)
    return;

  merged = g_strv_builder_new ();
  if (user->acting_roles != NULL)
    g_strv_builder_addv (merged, (const char **) user->acting_roles);
  for (guint i = 0; roles[i] != NULL; i++) {
    if (user->acting_roles == NULL || !g_strv_contains ((const char *const *) user->acting_roles, roles[i]))
      g_strv_builder_add (merged, roles[i]);
  }

  g_strfreev (user->acting_roles);
  user->acting_roles = g_strv_builder_end (merged);
}

/* Keeps the rights a session-start, grant or incident record lists for
 * the person it names. */
static void
user_note_rights (ReportUser *user, const CimsAuditRecord *record)
{
  g_autoptr (JsonNode) root = NULL;
  JsonObject *details;
  gboolean is_acting;

  if (record->event == NULL || record->details == NULL)
    return;

  is_acting = g_strv_contains (acting_events, record->event);
  if (!is_acting && !g_str_equal (record->event, "session-start"))
    return;

  root = json_from_string (record->details, NULL);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return;

  details = json_node_get_object (root);
  if (!is_acting) {
    user_take_rights (user, details, "permissions", "roles");
    return;
  }

  user_take_rights (user, details, "actor_permissions", "actor_roles");
  user_add_acting_roles (user, details);
}

static void
builder_note_person (ReportBuilder *builder, const CimsAuditRecord *record)
{
  g_autofree char *key = NULL;
  ReportUser *user;

  if (record->person_id == NULL || record->person_jurisdiction == NULL)
    return;

  key = g_strconcat (record->person_jurisdiction, "\x1f", record->person_id, NULL);
  user = g_hash_table_lookup (builder->users, key);
  if (user == NULL) {
    user = g_new0 (ReportUser, 1);
    user->jurisdiction = g_strdup (record->person_jurisdiction);
    g_hash_table_insert (builder->users, g_steal_pointer (&key), user);
  }

  /* Records come in sequence order, so the last one seen is the latest. */
  user_note_rights (user, record);
}

static guint
record_month (gint64 time_ms)
{
  g_autoptr (GDateTime) time = g_date_time_new_from_unix_utc (time_ms / 1000);

  return time != NULL ? (guint) g_date_time_get_month (time) - 1 : 0;
}

static void
builder_count_record (ReportBuilder *builder, const CimsAuditRecord *record)
{
  const char *event = record->event;
  CimsReportParty *party;

  builder_note_person (builder, record);

  if (g_strcmp0 (event, "session-stop") == 0 && record->person_jurisdiction != NULL) {
    party = builder_get_party (builder, record->person_jurisdiction);
    party->n_viewing_sessions++;
    party->viewing_ms += record->duration_ms;
    party->monthly_sessions[record_month (record->time_ms)]++;
    return;
  }

  if (record->camera_owner == NULL)
    return;

  if (g_strcmp0 (event, "archive-approved") == 0)
    builder_get_party (builder, record->camera_owner)->n_archive_requests_approved++;
  else if (g_strcmp0 (event, "grant-created") == 0)
    builder_get_party (builder, record->camera_owner)->n_grants_created++;
  else if (g_strcmp0 (event, "incident-started") == 0)
    builder_get_party (builder, record->camera_owner)->n_incidents_started++;
}

/* ---- users and their rights ------------------------------------------------------ */

static int
string_compare_indirect (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* Returns the standard names followed by every other name the users have,
 * sorted. (transfer full) */
static char **
names_collect (const char *const *standard, GHashTable *users, gboolean roles)
{
  g_autoptr (GStrvBuilder) names = g_strv_builder_new ();
  g_autoptr (GPtrArray) extra = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer value;

  g_strv_builder_addv (names, (const char **) standard);

  g_hash_table_iter_init (&iter, users);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    ReportUser *user = value;
    char **lists[] = {
      roles ? user->roles : user->permissions,
      roles ? user->acting_roles : NULL,
    };

    for (guint l = 0; l < G_N_ELEMENTS (lists); l++) {
      for (guint i = 0; lists[l] != NULL && lists[l][i] != NULL; i++) {
        char *name = lists[l][i];

        if (!g_strv_contains (standard, name) && !g_ptr_array_find_with_equal_func (extra, name, g_str_equal, NULL))
          g_ptr_array_add (extra, name);
      }
    }
  }

  g_ptr_array_sort (extra, string_compare_indirect);
  for (guint i = 0; i < extra->len; i++)
    g_strv_builder_add (names, g_ptr_array_index (extra, i));
  return g_strv_builder_end (names);
}

static gboolean
strv_has (char **list, const char *name)
{
  return list != NULL && g_strv_contains ((const char *const *) list, name);
}

/* Counts once each name of @names found in @held or @also_held (may be NULL). */
static void
count_names (guint *counts, char **names, char **held, char **also_held)
{
  for (guint i = 0; names[i] != NULL; i++) {
    if (strv_has (held, names[i]) || strv_has (also_held, names[i]))
      counts[i]++;
  }
}

static void
builder_count_users (ReportBuilder *builder)
{
  CimsAnnualReport *report = builder->report;
  GHashTableIter iter;
  gpointer value;

  report->permission_names = names_collect (standard_permissions, builder->users, FALSE);
  report->role_names = names_collect (standard_roles, builder->users, TRUE);

  /* Every party gets its count arrays, whether or not it has users, so
   * the rows are made first. */
  g_hash_table_iter_init (&iter, builder->users);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    builder_get_party (builder, ((ReportUser *) value)->jurisdiction);

  g_hash_table_iter_init (&iter, builder->parties);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    CimsReportParty *party = value;

    party->users_by_permission = g_new0 (guint, g_strv_length (report->permission_names));
    party->users_by_role = g_new0 (guint, g_strv_length (report->role_names));
  }

  g_hash_table_iter_init (&iter, builder->users);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    ReportUser *user = value;
    CimsReportParty *party = builder_get_party (builder, user->jurisdiction);

    party->n_users++;
    if (!user->has_rights) {
      party->n_users_rights_unrecorded++;
      continue;
    }
    if (user->permissions[0] == NULL)
      party->n_users_without_permissions++;
    count_names (party->users_by_permission, report->permission_names, user->permissions, NULL);
    count_names (party->users_by_role, report->role_names, user->roles, user->acting_roles);
  }
}

/* ---- the report ------------------------------------------------------------------- */

static gint64
year_start_ms (int year)
{
  GDate first_day;
  GDate unix_epoch;

  /* GDate, unlike GDateTime, goes past 9999, so the last year has an end. */
  g_date_clear (&first_day, 1);
  g_date_set_dmy (&first_day, 1, G_DATE_JANUARY, (GDateYear) year);
  g_date_clear (&unix_epoch, 1);
  g_date_set_dmy (&unix_epoch, 1, G_DATE_JANUARY, 1970);
  return (gint64) g_date_days_between (&unix_epoch, &first_day) * 86400 * 1000;
}

static int
party_compare_ids (gconstpointer a, gconstpointer b)
{
  const CimsReportParty *left = *(CimsReportParty *const *) a;
  const CimsReportParty *right = *(CimsReportParty *const *) b;

  return strcmp (left->id, right->id);
}

/* Starts a computation of @year with the configured parties and cameras. */
static void
builder_init (ReportBuilder *builder, const CimsConfig *config, int year)
{
  CimsAnnualReport *report = g_new0 (CimsAnnualReport, 1);

  report->year = year;
  report->from_ms = year_start_ms (year);
  report->to_ms = year_start_ms (year + 1);
  report->has_camera_counts = config != NULL;
  report->parties = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_report_party_free);
  report->is_chain_intact = TRUE;
  report->sequence_gaps = g_array_new (FALSE, FALSE, sizeof (CimsReportSequenceGap));

  builder->report = report;
  builder->config = config;
  builder->parties = g_hash_table_new (g_str_hash, g_str_equal);
  builder->unconfigured = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_report_party_free);
  builder->users = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) report_user_free);
  cims_audit_chain_init (&builder->chain);

  builder_add_configured_parties (builder);
  builder_count_cameras (builder);
}

static void
report_add_gap (CimsAnnualReport *report, guint64 first_missing, guint64 last_missing)
{
  CimsReportSequenceGap gap = { first_missing, last_missing };

  report->n_sequence_gaps++;
  report->n_missing_records += last_missing - first_missing + 1;
  if (report->sequence_gaps->len < CIMS_REPORT_MAX_LISTED_GAPS)
    g_array_append_val (report->sequence_gaps, gap);
}

/* Notes an audit-log-mismatch record: a hub found that this log did not
 * match its recovery checkpoint, as after a restore or a replaced log. */
static void
builder_note_mismatch (ReportBuilder *builder, const CimsAuditRecord *record)
{
  CimsAnnualReport *report = builder->report;
  g_autofree char *listed = NULL;

  if (g_strcmp0 (record->event, "audit-log-mismatch") != 0)
    return;

  report->n_checkpoint_mismatches++;
  if (report->n_checkpoint_mismatches > CIMS_REPORT_MAX_LISTED_MISMATCHES)
    return;

  listed = report->checkpoint_mismatches;
  report->checkpoint_mismatches = g_strdup_printf ("%s%srecord %" G_GUINT64_FORMAT " (%s)", listed ? listed : "",
                                                   listed ? ", " : "", record->sequence,
                                                   record->reason ? record->reason : "no reason");
}

/* Checks @record against the record read before it: the gap in sequence
 * numbers between them, and the hash chain. */
static void
builder_check_chain (ReportBuilder *builder, const CimsAuditRecord *record)
{
  CimsAnnualReport *report = builder->report;
  g_autoptr (GError) error = NULL;

  report->n_chain_records++;
  builder_note_mismatch (builder, record);
  if (record->sequence > builder->previous_sequence + 1)
    report_add_gap (report, builder->previous_sequence + 1, record->sequence - 1);
  builder->previous_sequence = MAX (builder->previous_sequence, record->sequence);

  /* Past the first break no hash can be trusted to check the next record
   * against, so the chain is not followed further; gaps still are. */
  if (!report->is_chain_intact)
    return;

  if (!cims_audit_chain_check (&builder->chain, record, &report->chain_first_bad_sequence, &error)) {
    report->is_chain_intact = FALSE;
    report->chain_problem = g_strdup (error->message);
    g_clear_pointer (&report->anchor, g_free);
    return;
  }

  g_free (report->anchor);
  report->anchor = g_strdup_printf ("%" G_GUINT64_FORMAT ":%s", record->sequence, record->hash);
}

/* Checks every record of the log and counts those of the year. The store
 * hands them over in sequence order, so the first and the last of the year
 * bound the year's sequence numbers. */
static gboolean
builder_add_record_cb (const CimsAuditRecord *record, gpointer user_data)
{
  ReportBuilder *builder = user_data;
  CimsAnnualReport *report = builder->report;

  builder_check_chain (builder, record);

  /* Record times need not rise with sequence numbers (the clock may be
   * set back), so the year is picked by time from the whole log. */
  if (record->time_ms < report->from_ms || record->time_ms >= report->to_ms)
    return TRUE;

  if (report->n_audit_records == 0)
    report->first_sequence = record->sequence;
  report->last_sequence = record->sequence;
  report->n_audit_records++;
  builder_count_record (builder, record);
  return TRUE;
}

static void
builder_clear (ReportBuilder *builder)
{
  g_clear_pointer (&builder->report, cims_annual_report_free);
  g_clear_pointer (&builder->unconfigured, g_ptr_array_unref);
  g_clear_pointer (&builder->parties, g_hash_table_unref);
  g_clear_pointer (&builder->users, g_hash_table_unref);
}

/* Counts the users and returns the finished report. (transfer full) */
static CimsAnnualReport *
builder_finish (ReportBuilder *builder)
{
  builder_count_users (builder);

  /* Parties the log names but the configuration does not go last, by id. */
  g_ptr_array_sort (builder->unconfigured, party_compare_ids);
  g_ptr_array_extend_and_steal (builder->report->parties, g_steal_pointer (&builder->unconfigured));

  g_clear_pointer (&builder->parties, g_hash_table_unref);
  g_clear_pointer (&builder->users, g_hash_table_unref);
  return g_steal_pointer (&builder->report);
}

CimsAnnualReport *
cims_annual_report_compute (CimsStore *store, const CimsConfig *config, int year,
                            GCancellable *cancellable, GError **error)
{
  ReportBuilder builder = { 0 };

  if (year < CIMS_REPORT_MIN_YEAR || year > CIMS_REPORT_MAX_YEAR) {
    g_set_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_INVALID,
                 "year %d is out of range: expected %d to %d", year, CIMS_REPORT_MIN_YEAR,
                 CIMS_REPORT_MAX_YEAR);
    return NULL;
  }

  builder_init (&builder, config, year);

  /* Records are counted as the store reads them, so memory grows with the
   * number of people and parties in the year, not with the number of records.
   * The whole log is read, not only the year, because the chain can only be
   * checked from record 1. A record removed at either end of the year also
   * shows only as a gap next to a record of another year. */
  if (!cims_store_audit_foreach (store, NULL, builder_add_record_cb, &builder, cancellable, error)) {
    builder_clear (&builder);
    return NULL;
  }

  return builder_finish (&builder);
}

static void
counts_add (guint *sum, const guint *counts, guint n)
{
  for (guint i = 0; i < n; i++)
    sum[i] += counts[i];
}

CimsReportParty *
cims_annual_report_sum (const CimsAnnualReport *report)
{
  CimsReportParty *sum = party_new ("total", "Total", CIMS_REPORT_PARTY_TOTAL);
  guint n_permissions = g_strv_length (report->permission_names);
  guint n_roles = g_strv_length (report->role_names);

  sum->users_by_permission = g_new0 (guint, n_permissions);
  sum->users_by_role = g_new0 (guint, n_roles);

  for (guint i = 0; i < report->parties->len; i++) {
    const CimsReportParty *party = g_ptr_array_index (report->parties, i);

    sum->n_cameras_in_service += party->n_cameras_in_service;
    sum->n_users += party->n_users;
    counts_add (sum->users_by_permission, party->users_by_permission, n_permissions);
    counts_add (sum->users_by_role, party->users_by_role, n_roles);
    sum->n_users_without_permissions += party->n_users_without_permissions;
    sum->n_users_rights_unrecorded += party->n_users_rights_unrecorded;
    sum->n_archive_requests_approved += party->n_archive_requests_approved;
    sum->n_grants_created += party->n_grants_created;
    sum->n_incidents_started += party->n_incidents_started;
    sum->n_viewing_sessions += party->n_viewing_sessions;
    sum->viewing_ms += party->viewing_ms;
    counts_add (sum->monthly_sessions, party->monthly_sessions, 12);
  }

  return sum;
}

/* ---- audit records in JSON and times ------------------------------------------- */

char *
cims_audit_time_format_ms (gint64 time_ms)
{
  char *text = NULL;

  if (time_ms >= G_MININT64 / 1000 && time_ms <= G_MAXINT64 / 1000)
    text = cims_auth_time_text (time_ms * 1000);

  return text != NULL ? text : g_strdup_printf ("%" G_GINT64_FORMAT " ms", time_ms);
}

gboolean
cims_audit_time_parse_ms (const char *text, gint64 *time_ms)
{
  g_autoptr (GDateTime) time = NULL;
  gint64 midnight_us = 0;

  if (text == NULL)
    return FALSE;

  if (date_parse_us (text, &midnight_us)) {
    *time_ms = midnight_us / 1000;
    return TRUE;
  }

  time = g_date_time_new_from_iso8601 (text, NULL);
  if (time == NULL)
    return FALSE;

  *time_ms = g_date_time_to_unix (time) * 1000 + g_date_time_get_microsecond (time) / 1000;
  return TRUE;
}

static void
object_set_details (JsonObject *object, const char *details)
{
  JsonNode *node;

  if (details == NULL) {
    json_object_set_null_member (object, "details");
    return;
  }

  node = json_from_string (details, NULL);
  if (node != NULL)
    json_object_set_member (object, "details", node);
  else
    json_object_set_string_member (object, "details", details);
}

JsonObject *
cims_audit_record_to_json (const CimsAuditRecord *record)
{
  JsonObject *object = json_object_new ();
  g_autofree char *time = cims_audit_time_format_ms (record->time_ms);
  const struct {
    const char *member;
    const char *value;
  } texts[] = {
    { "event", record->event },
    { "person_id", record->person_id },
    { "person_name", record->person_name },
    { "person_jurisdiction", record->person_jurisdiction },
    { "camera_id", record->camera_id },
    { "camera_owner", record->camera_owner },
    { "camera_location", record->camera_location },
    { "session_id", record->session_id },
    { "grant_id", record->grant_id },
    { "incident_id", record->incident_id },
    { "incident_number", record->incident_number },
    { "viewer_address", record->viewer_address },
    { "client_version", record->client_version },
    { "reason", record->reason },
  };

  json_object_set_int_member (object, "sequence", (gint64) record->sequence);
  json_object_set_string_member (object, "time", time);
  json_object_set_int_member (object, "time_ms", record->time_ms);
  for (gsize i = 0; i < G_N_ELEMENTS (texts); i++)
    json_object_set_string_member (object, texts[i].member, texts[i].value);
  object_set_details (object, record->details);
  json_object_set_int_member (object, "bytes_sent", record->bytes_sent);
  json_object_set_int_member (object, "duration_ms", record->duration_ms);
  json_object_set_string_member (object, "previous_hash", record->previous_hash);
  json_object_set_string_member (object, "hash", record->hash);
  return object;
}

/* ---- grants, incidents and the details of the hub's access records ------------ */

static JsonArray *
strv_to_json_array (char **values)
{
  JsonArray *array = json_array_new ();

  for (guint i = 0; values != NULL && values[i] != NULL; i++)
    json_array_add_string_element (array, values[i]);
  return array;
}

/* Sets @member to @values, or to null when @values is NULL, which for the
 * cameras and partners of a grant or incident means "all". */
static void
object_set_strv_or_null (JsonObject *object, const char *member, char **values)
{
  if (values != NULL)
    json_object_set_array_member (object, member, strv_to_json_array (values));
  else
    json_object_set_null_member (object, member);
}

/* Sets @member to @time_us in ISO 8601 UTC, or to null for 0 (not set) and
 * G_MAXINT64 (no end). */
static void
object_set_time (JsonObject *object, const char *member, gint64 time_us)
{
  g_autofree char *text = NULL;

  if (time_us == 0 || time_us == G_MAXINT64) {
    json_object_set_null_member (object, member);
    return;
  }

  text = cims_audit_time_format_ms (time_us / 1000);
  json_object_set_string_member (object, member, text);
}

JsonObject *
cims_grant_to_json (const CimsGrant *grant)
{
  JsonObject *object = json_object_new ();

  json_object_set_string_member (object, "id", grant->id);
  json_object_set_string_member (object, "owner", grant->owner);
  json_object_set_string_member (object, "grantee_kind", cims_grantee_kind_to_string (grant->grantee_kind));
  json_object_set_string_member (object, "grantee", grant->grantee);
  json_object_set_string_member (object, "grantee_group", grant->grantee_group);
  object_set_strv_or_null (object, "cameras", grant->cameras);
  object_set_time (object, "starts_at", grant->starts_at_us);
  object_set_time (object, "ends_at", grant->ends_at_us);
  json_object_set_string_member (object, "purpose", grant->purpose);
  json_object_set_string_member (object, "incident_number", grant->incident_number);
  json_object_set_string_member (object, "authorized_by", grant->authorized_by);
  json_object_set_string_member (object, "authorized_by_name", grant->authorized_by_name);
  object_set_time (object, "authorized_at", grant->authorized_at_us);
  json_object_set_string_member (object, "revoked_by", grant->revoked_by);
  object_set_time (object, "revoked_at", grant->revoked_at_us);
  return object;
}

JsonObject *
cims_incident_to_json (const CimsIncident *incident)
{
  JsonObject *object = json_object_new ();

  json_object_set_string_member (object, "id", incident->id);
  json_object_set_string_member (object, "owner", incident->owner);
  json_object_set_string_member (object, "incident_number", incident->incident_number);
  object_set_strv_or_null (object, "cameras", incident->cameras);
  object_set_strv_or_null (object, "partners", incident->partners);
  object_set_time (object, "starts_at", incident->starts_at_us);
  object_set_time (object, "ends_at", incident->ends_at_us);
  json_object_set_string_member (object, "description", incident->description);
  json_object_set_string_member (object, "declared_by", incident->declared_by);
  json_object_set_string_member (object, "declared_by_name", incident->declared_by_name);
  json_object_set_string_member (object, "ended_by", incident->ended_by);
  object_set_time (object, "ended_at", incident->ended_at_us);
  return object;
}

/* Returns @object as compact JSON text, and drops the reference to
 * @object that the caller handed over. (transfer full) */
static char *
details_take_object (JsonObject *object)
{
  g_autoptr (JsonNode) root = json_node_init_object (json_node_alloc (), object);

  json_object_unref (object);
  return json_to_string (root, FALSE);
}

char *
cims_audit_details_from_identity (const CimsAuthIdentity *identity)
{
  JsonObject *object = json_object_new ();

  json_object_set_array_member (object, "permissions",
                                strv_to_json_array (identity != NULL ? identity->permissions : NULL));
  json_object_set_array_member (object, "roles", strv_to_json_array (identity != NULL ? identity->roles : NULL));
  return details_take_object (object);
}

/* Adds to a grant's or incident's @object the rights of the person who
 * acted, and the caller's note, then returns it as text. (transfer full) */
static char *
details_take_with_actor (JsonObject *object, const CimsAuthIdentity *actor, const char *note)
{
  json_object_set_array_member (object, "actor_permissions",
                                strv_to_json_array (actor != NULL ? actor->permissions : NULL));
  json_object_set_array_member (object, "actor_roles", strv_to_json_array (actor != NULL ? actor->roles : NULL));
  if (note != NULL)
    json_object_set_string_member (object, "note", note);
  return details_take_object (object);
}

char *
cims_audit_details_from_grant (const CimsGrant *grant, const CimsAuthIdentity *actor, const char *note)
{
  g_return_val_if_fail (grant != NULL, NULL);

  return details_take_with_actor (cims_grant_to_json (grant), actor, note);
}

char *
cims_audit_details_from_incident (const CimsIncident *incident, const CimsAuthIdentity *actor,
                                  const char *note)
{
  g_return_val_if_fail (incident != NULL, NULL);

  return details_take_with_actor (cims_incident_to_json (incident), actor, note);
}
