/* SPDX-License-Identifier: Apache-2.0 */
/* GET /api/v1/audit: audit records for auditors. An auditor reads the
 * records that involve their own jurisdiction (as the person's or the
 * camera owner's); a regional auditor named in hub.regional_auditors reads
 * every record. The log itself is auth/store-*.c. */
#include "hub/hub-runtime.h"

#include <string.h>

#include "auth/report.h"

#define AUDIT_DEFAULT_LIMIT 1000
#define AUDIT_MAX_LIMIT 10000

/* A parsed query. The strings point into the request's query table. */
typedef struct {
  CimsAuditFilter filter;       /* without the jurisdiction */
  const char *jurisdiction;     /* requested, before the auditor's scope is applied */
} AuditQuery;

static gboolean
is_regional_auditor (CimsHub *hub, const CimsAuthIdentity *identity)
{
  g_autofree char *entry = g_strconcat (identity->jurisdiction, ":", identity->subject, NULL);
  char **auditors = hub->config->regional_auditors;

  return auditors != NULL && g_strv_contains ((const char *const *) auditors, entry);
}

/* Returns the query parameter @name, or NULL when absent or empty. */
static const char *
query_get (GHashTable *query, const char *name)
{
  const char *value = query != NULL ? g_hash_table_lookup (query, name) : NULL;

  return value != NULL && *value != '\0' ? value : NULL;
}

static gboolean
query_get_time (SoupServerMessage *msg, GHashTable *query, const char *name, gint64 *time_ms)
{
  const char *text = query_get (query, name);
  g_autofree char *reason = NULL;

  *time_ms = 0;
  if (text == NULL)
    return TRUE;

  if (cims_audit_time_parse_ms (text, time_ms) && *time_ms > 0)
    return TRUE;

  reason = g_strdup_printf ("Query parameter %s=\"%.64s\" is not an ISO 8601 time with a zone "
                            "(e.g. 2025-03-01T00:00:00Z) or a date (2025-03-01).", name, text);
  cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-parameter", reason);
  return FALSE;
}

static gboolean
query_get_limit (SoupServerMessage *msg, GHashTable *query, guint *limit)
{
  const char *text = query_get (query, "limit");
  g_autofree char *reason = NULL;
  guint64 value = 0;

  *limit = AUDIT_DEFAULT_LIMIT;
  if (text == NULL)
    return TRUE;

  if (g_ascii_string_to_unsigned (text, 10, 1, AUDIT_MAX_LIMIT, &value, NULL)) {
    *limit = (guint) value;
    return TRUE;
  }

  reason = g_strdup_printf ("Query parameter limit=\"%.32s\" must be a whole number from 1 to %d.",
                            text, AUDIT_MAX_LIMIT);
  cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-parameter", reason);
  return FALSE;
}

static gboolean
audit_query_parse (SoupServerMessage *msg, GHashTable *query, AuditQuery *out)
{
  CimsAuditFilter *filter = &out->filter;

  if (!query_get_time (msg, query, "from", &filter->from_ms) || !query_get_time (msg, query, "to", &filter->to_ms)
      || !query_get_limit (msg, query, &filter->limit))
    return FALSE;

  if (filter->from_ms != 0 && filter->to_ms != 0 && filter->to_ms <= filter->from_ms) {
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-parameter",
                           "Query parameter to must be after from.");
    return FALSE;
  }

  filter->camera_id = query_get (query, "camera");
  filter->person_id = query_get (query, "person");
  filter->incident_number = query_get (query, "incident_number");
  filter->event = query_get (query, "event");
  out->jurisdiction = query_get (query, "jurisdiction");
  return TRUE;
}

static gboolean
record_involves (const CimsAuditRecord *record, const char *jurisdiction)
{
  return g_strcmp0 (record->person_jurisdiction, jurisdiction) == 0
         || g_strcmp0 (record->camera_owner, jurisdiction) == 0;
}

/* The records a scoped auditor's walk keeps: those that involve the
 * requested jurisdiction, up to limit + 1. */
typedef struct {
  const char *jurisdiction;
  guint limit;
  GPtrArray *matches;           /* of CimsAuditRecord */
} AuditScopedWalk;

static gboolean
record_keep_if_involved_cb (const CimsAuditRecord *record, gpointer user_data)
{
  AuditScopedWalk *walk = user_data;

  if (record_involves (record, walk->jurisdiction))
    g_ptr_array_add (walk->matches, cims_audit_record_copy (record));

  return walk->matches->len <= walk->limit;
}

/* Runs @query in the auditor's scope and returns at most limit + 1
 * records, so the caller can tell that more matched. A scoped auditor who
 * filters on another jurisdiction gets the records that involve both. The
 * store filters on the auditor's, and the walk keeps those that also
 * involve the other and stops at limit + 1, so memory stays bounded.
 * NOTE: that walk runs on the main context and reads records of the
 * auditor's jurisdiction until limit + 1 involve the other, so a rare
 * pairing over a large log delays other requests. */
static GPtrArray *
audit_query_run (CimsStore *store, AuditQuery *query, const char *scope, GError **error)
{
  CimsAuditFilter filter = query->filter;
  g_autoptr (GPtrArray) matches =
    g_ptr_array_new_with_free_func ((GDestroyNotify) cims_audit_record_free);
  AuditScopedWalk walk = { query->jurisdiction, filter.limit, matches };

  filter.limit = filter.limit + 1;
  filter.jurisdiction = scope != NULL ? scope : query->jurisdiction;
  if (scope == NULL || query->jurisdiction == NULL || g_str_equal (scope, query->jurisdiction))
    return cims_store_audit_query (store, &filter, error);

  filter.limit = 0;
  if (!cims_store_audit_foreach (store, &filter, record_keep_if_involved_cb, &walk, NULL, error))
    return NULL;

  return g_steal_pointer (&matches);
}

static void
audit_list (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity, GHashTable *query)
{
  AuditQuery audit_query = { 0 };
  g_autoptr (GPtrArray) records = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *reason = NULL;
  gboolean is_regional = is_regional_auditor (hub, identity);
  JsonObject *reply;
  JsonArray *array;
  guint n_records;

  if (!cims_auth_identity_has_role (identity, "auditor")) {
    reason = g_strdup_printf ("Reading the audit log needs the auditor role; %s (%s) does not have it.",
                              identity->subject, identity->jurisdiction);
    cims_api_reply_forbidden (msg, "role-required", reason);
    return;
  }
  if (!audit_query_parse (msg, query, &audit_query))
    return;
  if (hub->store == NULL) {
    cims_http_reply_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "store-unavailable",
                           "The audit log is not open.");
    return;
  }

  records = audit_query_run (hub->store, &audit_query, is_regional ? NULL : identity->jurisdiction, &error);
  if (records == NULL) {
    g_warning ("audit query by %s (%s) failed: %s", identity->subject, identity->jurisdiction, error->message);
    cims_api_reply_store_error (msg, error);
    return;
  }

  n_records = MIN (records->len, audit_query.filter.limit);
  array = json_array_new ();
  for (guint i = 0; i < n_records; i++)
    json_array_add_object_element (array, cims_audit_record_to_json (g_ptr_array_index (records, i)));

  reply = json_object_new ();
  json_object_set_array_member (reply, "records", array);
  json_object_set_boolean_member (reply, "truncated", records->len > audit_query.filter.limit);
  json_object_set_string_member (reply, "scope", is_regional ? "region" : identity->jurisdiction);
  cims_api_reply_object (msg, SOUP_STATUS_OK, reply);
}

void
cims_api_audit_handle (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity,
                       const char *rest, GHashTable *query)
{
  if (*rest != '\0') {
    cims_http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not-found", "No such API resource.");
    return;
  }
  if (!g_str_equal (soup_server_message_get_method (msg), "GET")) {
    cims_api_reply_method_not_allowed (msg, "GET");
    return;
  }

  audit_list (hub, msg, identity, query);
}
