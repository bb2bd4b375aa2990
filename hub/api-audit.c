/* SPDX-License-Identifier: Apache-2.0 */
/* GET /api/v1/audit: audit records for auditors. An auditor reads the
 * records that involve their own jurisdiction (as the person's or the
 * camera owner's); a regional auditor named in hub.regional_auditors reads
 * every record. The query runs on the offload thread (api-offload.c), so a
 * wide one does not hold up the main context. The log itself is
 * auth/store-*.c. */
#include "hub/hub-runtime.h"

#include <string.h>

#include "auth/report.h"

#define AUDIT_DEFAULT_LIMIT 1000
#define AUDIT_MAX_LIMIT 10000

/* One audit query. Parsing fills @filter, whose strings the job owns, and
 * the offload thread fills @records, then @body from them. */
typedef struct {
  CimsAuditFilter filter;       /* without the jurisdiction */
  char *jurisdiction;           /* requested, before the auditor's scope is applied */
  char *scope;                  /* the auditor's jurisdiction, NULL for a regional auditor */
  GPtrArray *records;           /* of CimsAuditRecord, at most limit + 1, emptied once @body is built */
  char *body;                   /* the JSON reply */
  gsize body_size;
} AuditJob;

static AuditJob *
audit_job_new (void)
{
  AuditJob *job = g_new0 (AuditJob, 1);

  job->records = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_audit_record_free);
  return job;
}

static void
audit_job_free (AuditJob *job)
{
  g_free ((char *) job->filter.camera_id);
  g_free ((char *) job->filter.person_id);
  g_free ((char *) job->filter.incident_number);
  g_free ((char *) job->filter.event);
  g_free (job->jurisdiction);
  g_free (job->scope);
  g_ptr_array_unref (job->records);
  g_free (job->body);
  g_free (job);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AuditJob, audit_job_free)

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

/* Replies 400 listing the known events when the query's event is set and
 * not one of them, because a misspelt event would match no record. */
static gboolean
query_check_event (SoupServerMessage *msg, GHashTable *query)
{
  const char *event = query_get (query, "event");
  g_autofree char *known = NULL;
  g_autofree char *reason = NULL;

  if (event == NULL || cims_audit_event_is_known (event))
    return TRUE;

  known = g_strjoinv (", ", (char **) cims_audit_events);
  reason = g_strdup_printf ("Query parameter event=\"%.64s\" is not an audit event; expected one of %s.", event,
                            known);
  cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-parameter", reason);
  return FALSE;
}

/* Fills @job from the request's @query, copying its strings, or replies
 * 400 and returns FALSE. */
static gboolean
audit_query_parse (SoupServerMessage *msg, GHashTable *query, AuditJob *job)
{
  CimsAuditFilter *filter = &job->filter;

  if (!query_get_time (msg, query, "from", &filter->from_ms) || !query_get_time (msg, query, "to", &filter->to_ms)
      || !query_get_limit (msg, query, &filter->limit) || !query_check_event (msg, query))
    return FALSE;

  if (filter->from_ms != 0 && filter->to_ms != 0 && filter->to_ms <= filter->from_ms) {
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-parameter",
                           "Query parameter to must be after from.");
    return FALSE;
  }

  filter->camera_id = g_strdup (query_get (query, "camera"));
  filter->person_id = g_strdup (query_get (query, "person"));
  filter->incident_number = g_strdup (query_get (query, "incident_number"));
  filter->event = g_strdup (query_get (query, "event"));
  job->jurisdiction = g_strdup (query_get (query, "jurisdiction"));
  return TRUE;
}

static gboolean
record_involves (const CimsAuditRecord *record, const char *jurisdiction)
{
  return g_strcmp0 (record->person_jurisdiction, jurisdiction) == 0
         || g_strcmp0 (record->camera_owner, jurisdiction) == 0;
}

/* The records a walk keeps: those that involve @jurisdiction, or every
 * record when it is NULL, up to limit + 1. */
typedef struct {
  const char *jurisdiction;
  guint limit;
  GPtrArray *matches;           /* of CimsAuditRecord */
} AuditWalk;

static gboolean
record_keep_if_involved_cb (const CimsAuditRecord *record, gpointer user_data)
{
  AuditWalk *walk = user_data;

  if (walk->jurisdiction == NULL || record_involves (record, walk->jurisdiction))
    g_ptr_array_add (walk->matches, cims_audit_record_copy (record));

  return walk->matches->len <= walk->limit;
}

/* Returns (transfer full) the JSON reply with the first limit records of
 * @job, and its length in @size. */
static char *
audit_query_reply_build (const AuditJob *job, gsize *size)
{
  guint n_records = MIN (job->records->len, job->filter.limit);
  JsonArray *array = json_array_new ();
  JsonObject *reply;

  for (guint i = 0; i < n_records; i++)
    json_array_add_object_element (array, cims_audit_record_to_json (g_ptr_array_index (job->records, i)));

  reply = json_object_new ();
  json_object_set_array_member (reply, "records", array);
  json_object_set_boolean_member (reply, "truncated", job->records->len > job->filter.limit);
  json_object_set_string_member (reply, "scope", job->scope != NULL ? job->scope : "region");
  return cims_api_object_to_data (reply, size);
}

/* Offload thread. Reads the records of the query in the auditor's scope,
 * at most limit + 1 of them, so the reply can tell that more matched, and
 * builds the JSON reply from them. A
 * scoped auditor who filters on another jurisdiction gets the records that
 * involve both. The store filters on the auditor's, and the walk keeps
 * those that also involve the other and stops at limit + 1, so memory
 * stays bounded.
 * NOTE: that walk reads records of the auditor's jurisdiction until
 * limit + 1 involve the other, so a rare pairing over a large log keeps the
 * offload thread busy, and reports and audit queries queued behind it wait. */
static gboolean
audit_query_read (CimsStore *store, gpointer data, GCancellable *cancellable, GError **error)
{
  AuditJob *job = data;
  CimsAuditFilter filter = job->filter;
  AuditWalk walk = { NULL, job->filter.limit, job->records };

  filter.limit = job->filter.limit + 1;
  filter.jurisdiction = job->scope != NULL ? job->scope : job->jurisdiction;
  if (job->scope != NULL && job->jurisdiction != NULL && !g_str_equal (job->scope, job->jurisdiction)) {
    walk.jurisdiction = job->jurisdiction;
    filter.limit = 0;
  }

  if (!cims_store_audit_foreach (store, &filter, record_keep_if_involved_cb, &walk, cancellable, error))
    return FALSE;

  /* Built here rather than on the main context, because the JSON of 10,000
   * records took about 0.1 s to build and serialize on a 2-core VM. */
  job->body = audit_query_reply_build (job, &job->body_size);
  g_ptr_array_set_size (job->records, 0);
  return TRUE;
}

static void
audit_query_reply (SoupServerMessage *msg, gpointer data)
{
  AuditJob *job = data;

  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_TAKE, g_steal_pointer (&job->body),
                                    job->body_size);
}

static void
audit_list (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity, GHashTable *query)
{
  g_autoptr (AuditJob) job = audit_job_new ();
  g_autofree char *reason = NULL;

  if (!cims_auth_identity_has_role (identity, "auditor")) {
    reason = g_strdup_printf ("Reading the audit log needs the auditor role; %s (%s) does not have it.",
                              identity->subject, identity->jurisdiction);
    cims_api_reply_forbidden (msg, "role-required", reason);
    return;
  }
  if (!audit_query_parse (msg, query, job))
    return;

  if (!is_regional_auditor (hub, identity))
    job->scope = g_strdup (identity->jurisdiction);

  cims_api_offload_push (hub, msg,
                         g_strdup_printf ("audit query by %s (%s)", identity->subject, identity->jurisdiction),
                         audit_query_read, audit_query_reply, g_steal_pointer (&job),
                         (GDestroyNotify) audit_job_free);
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
