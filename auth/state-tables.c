/* SPDX-License-Identifier: Apache-2.0 */
/* The grants and incidents tables against the audit log. Each grant and
 * incident record carries the whole grant or incident as it was after the
 * change it records, and the hash chain covers those details. A table row
 * that differs from its latest record was edited behind the hub, and a row
 * or record without the other was added or deleted behind it. */
#include "auth/state-tables.h"

#include <json-glib/json-glib.h>

#include "auth/report.h"

/* Maximum length, in bytes, of a value that a problem line quotes. */
#define PROBLEM_VALUE_MAX_BYTES 200

/* The latest record of one grant or incident. */
typedef struct {
  guint64 sequence;
  JsonObject *details;          /* NULL when the record has no usable details */
  gboolean is_legacy;           /* written before records carried the row: no details at all */
  gboolean is_in_table;
} RecordedRow;

struct _CimsRecordedTables {
  GHashTable *grants;           /* grant id -> RecordedRow */
  GHashTable *incidents;        /* incident id -> RecordedRow */
};

static void
recorded_row_free (RecordedRow *row)
{
  g_clear_pointer (&row->details, json_object_unref);
  g_free (row);
}

CimsRecordedTables *
cims_recorded_tables_new (void)
{
  CimsRecordedTables *tables = g_new0 (CimsRecordedTables, 1);

  tables->grants = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) recorded_row_free);
  tables->incidents = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) recorded_row_free);
  return tables;
}

void
cims_recorded_tables_free (CimsRecordedTables *tables)
{
  if (tables == NULL)
    return;

  g_hash_table_unref (tables->grants);
  g_hash_table_unref (tables->incidents);
  g_free (tables);
}

/* Returns (transfer full) the details of @record when they carry the row
 * whose id is @id, else NULL: details that do not are unusable, and the
 * row they should vouch for is not honoured. */
static JsonObject *
details_parse_row (const CimsAuditRecord *record, const char *id)
{
  g_autoptr (JsonNode) root = json_from_string (record->details, NULL);
  JsonObject *object;
  JsonNode *id_node;

  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return NULL;

  object = json_node_get_object (root);
  id_node = json_object_get_member (object, "id");
  if (id_node == NULL || json_node_get_value_type (id_node) != G_TYPE_STRING
      || g_strcmp0 (json_node_get_string (id_node), id) != 0)
    return NULL;

  return json_object_ref (object);
}

void
cims_recorded_tables_add (CimsRecordedTables *tables, const CimsAuditRecord *record)
{
  GHashTable *rows;
  const char *id;
  RecordedRow *row;

  if (g_strcmp0 (record->event, "grant-created") == 0 || g_strcmp0 (record->event, "grant-revoked") == 0) {
    rows = tables->grants;
    id = record->grant_id;
  } else if (g_strcmp0 (record->event, "incident-started") == 0
             || g_strcmp0 (record->event, "incident-ended") == 0) {
    rows = tables->incidents;
    id = record->incident_id;
  } else {
    return;
  }

  if (id == NULL)
    return;

  row = g_new0 (RecordedRow, 1);
  row->sequence = record->sequence;
  row->is_legacy = record->details == NULL;
  row->details = row->is_legacy ? NULL : details_parse_row (record, id);
  g_hash_table_replace (rows, g_strdup (id), row);
}

/* Appends to @problems the first member of @table_row that its record's
 * details give another value. Returns FALSE when there is one. */
static gboolean
row_compare (const char *kind, const char *id, JsonObject *table_row, const RecordedRow *recorded,
             GString *problems)
{
  g_autoptr (GList) members = json_object_get_members (table_row);

  for (GList *member = members; member != NULL; member = member->next) {
    JsonNode *recorded_node = json_object_get_member (recorded->details, member->data);
    g_autofree char *table_text = json_to_string (json_object_get_member (table_row, member->data), FALSE);
    g_autofree char *recorded_text = recorded_node != NULL ? json_to_string (recorded_node, FALSE)
                                                           : g_strdup ("(missing)");

    if (g_strcmp0 (table_text, recorded_text) == 0)
      continue;

    g_string_append_printf (problems, "%s %s: \"%s\" is %.*s in the %ss table but %.*s in audit record %"
                            G_GUINT64_FORMAT ", its latest: the row was edited, or its later records were "
                            "removed\n", kind, id, (const char *) member->data, PROBLEM_VALUE_MAX_BYTES,
                            table_text, kind, PROBLEM_VALUE_MAX_BYTES, recorded_text, recorded->sequence);
    return FALSE;
  }
  return TRUE;
}

/* Compares one table row, as @table_row, with its latest record in @rows.
 * Returns FALSE when they differ or no record names the row. */
static gboolean
row_check (GHashTable *rows, const char *kind, const char *id, JsonObject *table_row, GString *problems,
           guint *n_unchecked)
{
  RecordedRow *recorded;

  if (id == NULL) {
    g_string_append_printf (problems, "a row of the %ss table has no id\n", kind);
    return FALSE;
  }

  recorded = g_hash_table_lookup (rows, id);
  if (recorded == NULL) {
    g_string_append_printf (problems, "%s %.*s is in the %ss table, but no audit record names it\n", kind,
                            PROBLEM_VALUE_MAX_BYTES, id, kind);
    return FALSE;
  }

  recorded->is_in_table = TRUE;
  if (recorded->is_legacy) {
    (*n_unchecked)++;
    return TRUE;
  }

  if (recorded->details == NULL) {
    g_string_append_printf (problems, "%s %s: audit record %" G_GUINT64_FORMAT ", its latest, has details that "
                            "do not carry it\n", kind, id, recorded->sequence);
    return FALSE;
  }

  return row_compare (kind, id, table_row, recorded, problems);
}

/* Appends a line for each recorded grant or incident that has no row. */
static void
rows_check_deleted (GHashTable *rows, const char *kind, GString *problems)
{
  GHashTableIter iter;
  gpointer id, value;

  g_hash_table_iter_init (&iter, rows);
  while (g_hash_table_iter_next (&iter, &id, &value)) {
    const RecordedRow *recorded = value;

    if (!recorded->is_in_table)
      g_string_append_printf (problems, "audit record %" G_GUINT64_FORMAT " names %s %s, which the %ss table "
                              "does not have\n", recorded->sequence, kind, (const char *) id, kind);
  }
}

void
cims_recorded_tables_compare (CimsRecordedTables *tables, GPtrArray *grants, GPtrArray *incidents,
                              GString *problems, GPtrArray *rejected_grants, GPtrArray *rejected_incidents,
                              guint *n_unchecked)
{
  *n_unchecked = 0;
  for (guint i = 0; i < grants->len; i++) {
    CimsGrant *grant = g_ptr_array_index (grants, i);
    g_autoptr (JsonObject) row = cims_grant_to_json (grant);

    if (!row_check (tables->grants, "grant", grant->id, row, problems, n_unchecked) && rejected_grants != NULL)
      g_ptr_array_add (rejected_grants, grant);
  }

  for (guint i = 0; i < incidents->len; i++) {
    CimsIncident *incident = g_ptr_array_index (incidents, i);
    g_autoptr (JsonObject) row = cims_incident_to_json (incident);

    if (!row_check (tables->incidents, "incident", incident->id, row, problems, n_unchecked)
        && rejected_incidents != NULL)
      g_ptr_array_add (rejected_incidents, incident);
  }

  rows_check_deleted (tables->grants, "grant", problems);
  rows_check_deleted (tables->incidents, "incident", problems);
}

gboolean
cims_recorded_tables_check (CimsRecordedTables *tables, CimsStore *store, GString *problems,
                            guint *n_unchecked, GError **error)
{
  g_autoptr (GPtrArray) grants = cims_store_grant_list (store, error);
  g_autoptr (GPtrArray) incidents = NULL;

  if (grants == NULL)
    return FALSE;

  incidents = cims_store_incident_list (store, error);
  if (incidents == NULL)
    return FALSE;

  cims_recorded_tables_compare (tables, grants, incidents, problems, NULL, NULL, n_unchecked);
  return TRUE;
}
