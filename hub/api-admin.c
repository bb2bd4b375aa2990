/* SPDX-License-Identifier: Apache-2.0 */
/* The admin API under /api/v1: grants, major incidents and sessions, and
 * the routing to the audit, archive-request and report resources. Every
 * call is checked against the caller's roles and jurisdiction; errors are
 * JSON naming the rule. The camera list is in http-server.c. */
#include "hub/hub-runtime.h"
#include "auth/report.h"

#include <string.h>

#define MAX_LIST_SIZE 4096

/* ---- JSON helpers ------------------------------------------------------- */

/* Returns: (transfer full): @time_us as ISO 8601 UTC text, or NULL after
 * the year 9999. */
static char *
time_dup_text (gint64 time_us)
{
  return cims_auth_time_text (time_us);
}

/* The grant as its audit records carry it, whether it allows viewing now,
 * and whether its row differs from its audit record (cims_hub_access_check_tables). */
static JsonObject *
grant_to_json (const CimsGrant *grant, gint64 now_us)
{
  JsonObject *object = cims_grant_to_json (grant);

  json_object_set_boolean_member (object, "active", cims_grant_is_active (grant, now_us));
  json_object_set_boolean_member (object, "disputed", grant->is_disputed);
  return object;
}

static JsonObject *
incident_to_json (const CimsIncident *incident, gint64 now_us)
{
  JsonObject *object = cims_incident_to_json (incident);

  json_object_set_boolean_member (object, "active", cims_incident_is_active (incident, now_us));
  json_object_set_boolean_member (object, "disputed", incident->is_disputed);
  return object;
}

/* Returns: (transfer full): @node as JSON text for an error message. A
 * number has at most 15 significant digits, because json-glib 1.6.6 writes
 * 600.9 as 600.89999999999998. */
static char *
node_dup_text (JsonNode *node)
{
  char number[G_ASCII_DTOSTR_BUF_SIZE];

  if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_DOUBLE)
    return g_strdup (g_ascii_formatd (number, sizeof number, "%.15g", json_node_get_double (node)));

  return json_to_string (node, FALSE);
}

/* Returns TRUE when @member is present and not null. */
static gboolean
member_is_set (JsonObject *object, const char *member)
{
  JsonNode *node = json_object_get_member (object, member);

  return node != NULL && !JSON_NODE_HOLDS_NULL (node);
}

/* Replies 400 naming the first member of @body that is not in @members
 * (NULL-terminated), so that a misspelt or unsupported member cannot be
 * dropped unnoticed. @what names the body, e.g. "grant". */
static gboolean
body_check_members (SoupServerMessage *msg, JsonObject *body, const char *const *members, const char *what)
{
  g_autoptr (GList) names = json_object_get_members (body);
  g_autofree char *known = NULL;
  g_autofree char *reason = NULL;

  for (GList *name = names; name != NULL; name = name->next) {
    if (g_strv_contains (members, name->data))
      continue;

    known = g_strjoinv (", ", (char **) members);
    reason = g_strdup_printf ("Unknown member \"%.64s\" in a %s; expected only %s.", (const char *) name->data,
                              what, known);
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "unknown-field", reason);
    return FALSE;
  }
  return TRUE;
}

/* Reads an optional string member; FALSE (after a 400) when it has another type. */
static gboolean
member_get_string (SoupServerMessage *msg, JsonObject *object, const char *member, const char **out)
{
  return cims_api_member_get_string (msg, object, member, FALSE, out);
}

static gboolean
member_get_strv (SoupServerMessage *msg, JsonObject *object, const char *member, char ***out)
{
  JsonNode *node = json_object_get_member (object, member);
  g_autoptr (GPtrArray) values = NULL;
  g_autofree char *text = NULL;
  g_autofree char *reason = NULL;
  JsonArray *array;

  *out = NULL;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;

  if (!JSON_NODE_HOLDS_ARRAY (node))
    goto invalid;

  array = json_node_get_array (node);
  if (json_array_get_length (array) > MAX_LIST_SIZE)
    goto invalid;

  values = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < json_array_get_length (array); i++) {
    JsonNode *element = json_array_get_element (array, i);
    if (!JSON_NODE_HOLDS_VALUE (element) || json_node_get_value_type (element) != G_TYPE_STRING)
      goto invalid;
    g_ptr_array_add (values, g_strdup (json_node_get_string (element)));
  }
  g_ptr_array_add (values, NULL);
  *out = (char **) g_ptr_array_free (g_steal_pointer (&values), FALSE);
  return TRUE;

invalid:
  text = node_dup_text (node);
  reason = g_strdup_printf ("\"%s\" value %.64s is invalid: expected an array of at most %d strings.", member,
                            text, MAX_LIST_SIZE);
  cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field", reason);
  return FALSE;
}

/* Reads an optional ISO 8601 time; @fallback_us when absent. */
static gboolean
member_get_time (SoupServerMessage *msg, JsonObject *object, const char *member, gint64 fallback_us,
                 gint64 *out)
{
  const char *text = NULL;
  g_autoptr (GDateTime) time = NULL;
  g_autofree char *reason = NULL;

  if (!member_get_string (msg, object, member, &text))
    return FALSE;

  *out = fallback_us;
  if (text == NULL)
    return TRUE;

  time = g_date_time_new_from_iso8601 (text, NULL);
  if (time != NULL) {
    *out = g_date_time_to_unix (time) * G_USEC_PER_SEC + g_date_time_get_microsecond (time);
    return TRUE;
  }

  reason = g_strdup_printf ("\"%s\" value \"%.64s\" is not an ISO 8601 time with a time zone, "
                            "e.g. 2026-12-04T18:00:00Z.", member, text);
  cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field", reason);
  return FALSE;
}

/* Reads an optional whole number of seconds from 1 to @max_s into @out_s,
 * which stays 0 when the member is absent or null. Another type (true,
 * "600", 600.0) or a value out of range gets a 400 naming the member, the
 * value and @max_source, where the maximum comes from. */
static gboolean
member_get_seconds (SoupServerMessage *msg, JsonObject *object, const char *member, gint64 max_s,
                    const char *max_source, gint64 *out_s)
{
  JsonNode *node = json_object_get_member (object, member);
  g_autofree char *text = NULL;
  g_autofree char *reason = NULL;

  *out_s = 0;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;

  /* The range check comes before any arithmetic on the value. */
  if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_INT64
      && json_node_get_int (node) >= 1 && json_node_get_int (node) <= max_s) {
    *out_s = json_node_get_int (node);
    return TRUE;
  }

  text = node_dup_text (node);
  reason = g_strdup_printf ("\"%s\" value %.64s is invalid: expected a whole number of seconds from 1 to %"
                            G_GINT64_FORMAT " (%s).", member, text, max_s, max_source);
  cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field", reason);
  return FALSE;
}

/* Replies 400 when @body gives both "ends_at" and "duration_s". */
static gboolean
body_check_one_end (SoupServerMessage *msg, JsonObject *body)
{
  if (!member_is_set (body, "ends_at") || !member_is_set (body, "duration_s"))
    return TRUE;

  cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field",
                         "Both \"ends_at\" and \"duration_s\" are set; give only one of them.");
  return FALSE;
}

/* Replies 400 naming the end when @ends_at_us is not after @now_us or
 * cannot be written as an ISO 8601 time. @what names the record, e.g.
 * "grant", and @source the members the end came from. */
static gboolean
end_check_future (SoupServerMessage *msg, const char *what, const char *source, gint64 ends_at_us,
                  gint64 now_us)
{
  g_autofree char *end = time_dup_text (ends_at_us);
  g_autofree char *reason = NULL;

  if (end == NULL)
    reason = g_strdup_printf ("The %s would end after 9999-12-31T23:59:59Z (%s); give an earlier end.", what,
                              source);
  else if (ends_at_us <= now_us)
    reason = g_strdup_printf ("The %s would end at %s (%s), which is in the past; give a later end.", what, end,
                              source);
  else
    return TRUE;

  cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field", reason);
  return FALSE;
}

/* ---- authorization helpers ------------------------------------------------ */

static gboolean
require_role (SoupServerMessage *msg, const CimsAuthIdentity *identity, const char *role)
{
  g_autofree char *reason = NULL;

  if (cims_auth_identity_has_role (identity, role) && !identity->is_agency)
    return TRUE;

  reason = g_strdup_printf ("This call needs the %s role of a participating jurisdiction; %s (%s) "
                            "does not have it.", role, identity->subject, identity->jurisdiction);
  cims_api_reply_forbidden (msg, "role-required", reason);
  return FALSE;
}

/* Checks that every camera in @cameras belongs to @owner. */
static gboolean
cameras_belong_to (CimsHub *hub, SoupServerMessage *msg, char **cameras, const char *owner, const char *what)
{
  for (guint i = 0; cameras != NULL && cameras[i] != NULL; i++) {
    const CimsConfigCamera *camera = cims_config_find_camera (hub->config, cameras[i]);
    g_autofree char *reason = NULL;

    if (camera == NULL) {
      reason = g_strdup_printf ("No camera has the id \"%.64s\".", cameras[i]);
      cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "unknown-camera", reason);
      return FALSE;
    }
    if (g_strcmp0 (camera->jurisdiction, owner) != 0) {
      reason = g_strdup_printf ("Camera %s belongs to %s; a %s of %s can only cover %s's own cameras.",
                                camera->id, camera->jurisdiction, what, owner, owner);
      cims_api_reply_forbidden (msg, "not-owner", reason);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
party_exists (CimsHub *hub, const char *id, CimsGranteeKind *kind)
{
  if (cims_config_find_jurisdiction (hub->config, id) != NULL) {
    *kind = CIMS_GRANTEE_JURISDICTION;
    return TRUE;
  }
  if (cims_config_find_agency (hub->config, id) != NULL) {
    *kind = CIMS_GRANTEE_AGENCY;
    return TRUE;
  }
  return FALSE;
}

/* ---- grants ------------------------------------------------------------------ */

/* Maximum grant "duration_s": ten years, as cimshubctl grants create
 * --duration allows. A grant may also be ongoing, with no end at all. */
#define GRANT_MAX_DURATION_S (G_GINT64_CONSTANT (10) * 366 * 24 * 3600)

static const char *const grant_members[] = {
  "grantee", "grantee_group", "cameras", "starts_at", "ends_at", "duration_s", "purpose", "incident_number", NULL
};

/* Sets the grant's end from "ends_at", or from "duration_s" counted from
 * its start. A grant with neither is ongoing (G_MAXINT64). Replies 400 when
 * both are given, or when the end is in the past or not after the start. */
static gboolean
grant_end_time (SoupServerMessage *msg, JsonObject *body, gint64 now_us, CimsGrant *grant)
{
  const char *source = "\"ends_at\"";
  g_autofree char *start = NULL;
  g_autofree char *end = NULL;
  g_autofree char *reason = NULL;
  gint64 duration_s = 0;

  if (!member_get_time (msg, body, "ends_at", G_MAXINT64, &grant->ends_at_us)
      || !member_get_seconds (msg, body, "duration_s", GRANT_MAX_DURATION_S, "ten years", &duration_s)
      || !body_check_one_end (msg, body))
    return FALSE;

  if (duration_s > 0) {
    grant->ends_at_us = grant->starts_at_us + duration_s * G_USEC_PER_SEC;
    source = "\"starts_at\" plus \"duration_s\"";
  }
  if (grant->ends_at_us == G_MAXINT64)
    return TRUE;

  if (!end_check_future (msg, "grant", source, grant->ends_at_us, now_us))
    return FALSE;

  if (grant->ends_at_us <= grant->starts_at_us) {
    start = time_dup_text (grant->starts_at_us);
    end = time_dup_text (grant->ends_at_us);
    reason = g_strdup_printf ("\"ends_at\" %s is not after \"starts_at\" %s; give a later end.", end, start);
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field", reason);
    return FALSE;
  }
  return TRUE;
}

/* Replies 400 unless @grantee names a configured jurisdiction or agency
 * other than the caller's own, whose kind goes to @kind. */
static gboolean
grantee_check (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity, const char *grantee,
               CimsGranteeKind *kind)
{
  g_autofree char *reason = NULL;

  if (grantee == NULL)
    reason = g_strdup ("\"grantee\" is required: the id of another configured jurisdiction or agency.");
  else if (!party_exists (hub, grantee, kind))
    reason = g_strdup_printf ("\"grantee\" \"%.64s\" is not a configured jurisdiction or agency.", grantee);
  else if (g_str_equal (grantee, identity->jurisdiction))
    reason = g_strdup_printf ("\"grantee\" \"%s\" is the grant authority's own jurisdiction; name another "
                              "jurisdiction or agency.", grantee);
  else
    return TRUE;

  cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-grantee", reason);
  return FALSE;
}

/* Replies 400 naming @number unless it is NULL or a valid incident number. */
static gboolean
incident_number_check (SoupServerMessage *msg, const char *number)
{
  g_autofree char *reason = NULL;

  if (number == NULL || cims_auth_incident_number_is_valid (number))
    return TRUE;

  reason = g_strdup_printf ("\"incident_number\" \"%.64s\" is malformed: 3 to 40 letters, digits and -/.:_ "
                            "expected.", number);
  cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field", reason);
  return FALSE;
}

static void
grants_create (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (CimsGrant) grant = g_new0 (CimsGrant, 1);
  gint64 now_us = g_get_real_time ();
  const char *grantee = NULL, *group = NULL, *purpose = NULL, *incident_number = NULL;
  g_autoptr (GError) error = NULL;
  JsonObject *body;

  if (!require_role (msg, identity, "grant-authority"))
    return;
  body = cims_api_body_parse (msg, parser);
  if (body == NULL)
    return;

  if (!body_check_members (msg, body, grant_members, "grant")
      || !member_get_string (msg, body, "grantee", &grantee) || !member_get_string (msg, body, "grantee_group", &group)
      || !member_get_string (msg, body, "purpose", &purpose)
      || !member_get_string (msg, body, "incident_number", &incident_number)
      || !member_get_strv (msg, body, "cameras", &grant->cameras)
      || !member_get_time (msg, body, "starts_at", now_us, &grant->starts_at_us)
      || !grant_end_time (msg, body, now_us, grant))
    return;

  if (!grantee_check (hub, msg, identity, grantee, &grant->grantee_kind))
    return;
  if (purpose == NULL || *purpose == '\0') {
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field", "\"purpose\" is required.");
    return;
  }
  if (!incident_number_check (msg, incident_number)
      || !cameras_belong_to (hub, msg, grant->cameras, identity->jurisdiction, "grant authority"))
    return;

  grant->owner = g_strdup (identity->jurisdiction);
  grant->grantee = g_strdup (grantee);
  grant->grantee_group = g_strdup (group);
  grant->purpose = g_strdup (purpose);
  grant->incident_number = g_strdup (incident_number);
  grant->authorized_by = g_strdup (identity->subject);
  grant->authorized_by_name = g_strdup (identity->name);
  grant->authorized_at_us = now_us;

  if (!cims_hub_access_grant_create (hub, identity, grant, &error)) {
    cims_api_reply_store_error (msg, error);
    return;
  }

  JsonObject *reply = json_object_new ();
  json_object_set_object_member (reply, "grant", grant_to_json (grant, now_us));
  cims_api_reply_object (msg, SOUP_STATUS_CREATED, reply);
}

static gboolean
identity_sees (const CimsAuthIdentity *identity, const char *owner, const char *other)
{
  return g_strcmp0 (identity->jurisdiction, owner) == 0 || g_strcmp0 (identity->jurisdiction, other) == 0;
}

static void
grants_list (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity)
{
  JsonObject *reply = json_object_new ();
  JsonArray *array = json_array_new ();
  gint64 now_us = g_get_real_time ();

  for (guint i = 0; i < hub->grants->len; i++) {
    const CimsGrant *grant = g_ptr_array_index (hub->grants, i);
    if (identity_sees (identity, grant->owner, grant->grantee))
      json_array_add_object_element (array, grant_to_json (grant, now_us));
  }
  json_object_set_array_member (reply, "grants", array);
  cims_api_reply_object (msg, SOUP_STATUS_OK, reply);
}

static void
grants_item (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity, const char *id)
{
  const CimsGrant *grant = cims_hub_access_find_grant (hub, id);
  const char *method = soup_server_message_get_method (msg);
  g_autoptr (GError) error = NULL;
  g_autofree char *reason = NULL;
  guint n_ended = 0;

  if (grant == NULL || !identity_sees (identity, grant->owner, grant->grantee)) {
    reason = g_strdup_printf ("No grant has the id \"%.64s\".", id);
    cims_http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not-found", reason);
    return;
  }

  if (g_str_equal (method, "GET")) {
    JsonObject *reply = json_object_new ();
    json_object_set_object_member (reply, "grant", grant_to_json (grant, g_get_real_time ()));
    cims_api_reply_object (msg, SOUP_STATUS_OK, reply);
    return;
  }

  if (!require_role (msg, identity, "grant-authority"))
    return;
  if (g_strcmp0 (grant->owner, identity->jurisdiction) != 0) {
    reason = g_strdup_printf ("Grant %s was made by %s; only a grant authority of %s can revoke it.",
                              grant->id, grant->owner, grant->owner);
    cims_api_reply_forbidden (msg, "not-owner", reason);
    return;
  }

  if (!cims_hub_access_grant_revoke (hub, identity, id, &n_ended, &error)) {
    cims_api_reply_store_error (msg, error);
    return;
  }

  JsonObject *reply = json_object_new ();
  json_object_set_object_member (reply, "grant", grant_to_json (cims_hub_access_find_grant (hub, id),
                                                                g_get_real_time ()));
  json_object_set_int_member (reply, "sessions_ended", n_ended);
  cims_api_reply_object (msg, SOUP_STATUS_OK, reply);
}

/* ---- incidents --------------------------------------------------------------- */

static gboolean
partners_valid (CimsHub *hub, SoupServerMessage *msg, char **partners)
{
  CimsGranteeKind kind;

  for (guint i = 0; partners != NULL && partners[i] != NULL; i++) {
    g_autofree char *reason = NULL;

    if (party_exists (hub, partners[i], &kind))
      continue;
    reason = g_strdup_printf ("Partner \"%.64s\" is not a configured jurisdiction or agency.", partners[i]);
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field", reason);
    return FALSE;
  }
  return TRUE;
}

static const char *const incident_members[] = {
  "incident_number", "description", "cameras", "partners", "ends_at", "duration_s", NULL
};

/* Sets the incident's end from "ends_at", or from "duration_s" counted
 * from now. Exactly one of them is required. Replies 400 when the end is
 * in the past or more than hub.incident_max_s from now. */
static gboolean
incident_end_time (CimsHub *hub, SoupServerMessage *msg, JsonObject *body, gint64 now_us, gint64 *ends_at_us)
{
  guint max_s = hub->config->incident_max_s;
  gint64 max_us = now_us + (gint64) max_s * G_USEC_PER_SEC;
  g_autofree char *end = NULL;
  g_autofree char *reason = NULL;
  gint64 duration_s = 0;

  if (!member_get_time (msg, body, "ends_at", 0, ends_at_us)
      || !member_get_seconds (msg, body, "duration_s", max_s, "hub.incident_max_s", &duration_s)
      || !body_check_one_end (msg, body))
    return FALSE;

  if (!member_is_set (body, "ends_at") && duration_s == 0) {
    reason = g_strdup_printf ("A major incident needs \"ends_at\", or \"duration_s\" from 1 to %u seconds.", max_s);
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field", reason);
    return FALSE;
  }

  /* duration_s is at most incident_max_s, which the configuration keeps to
   * 30 days, so the sum cannot overflow. */
  if (duration_s > 0)
    *ends_at_us = now_us + duration_s * G_USEC_PER_SEC;

  if (!end_check_future (msg, "major incident", "\"ends_at\"", *ends_at_us, now_us))
    return FALSE;

  if (*ends_at_us > max_us) {
    end = time_dup_text (*ends_at_us);
    reason = g_strdup_printf ("\"ends_at\" %s is more than %u s from now, the maximum length of a major "
                              "incident (hub.incident_max_s); give an earlier end.", end, max_s);
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "incident-too-long", reason);
    return FALSE;
  }
  return TRUE;
}

static void
incidents_create (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (CimsIncident) incident = g_new0 (CimsIncident, 1);
  gint64 now_us = g_get_real_time ();
  const char *number = NULL, *description = NULL;
  g_autoptr (GError) error = NULL;
  JsonObject *body;

  if (!require_role (msg, identity, "commander"))
    return;
  body = cims_api_body_parse (msg, parser);
  if (body == NULL)
    return;

  if (!body_check_members (msg, body, incident_members, "major incident")
      || !member_get_string (msg, body, "incident_number", &number)
      || !member_get_string (msg, body, "description", &description)
      || !member_get_strv (msg, body, "cameras", &incident->cameras)
      || !member_get_strv (msg, body, "partners", &incident->partners)
      || !incident_end_time (hub, msg, body, now_us, &incident->ends_at_us))
    return;

  if (number == NULL) {
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field",
                           "\"incident_number\" is required: 3 to 40 letters, digits and -/.:_.");
    return;
  }
  if (!incident_number_check (msg, number)
      || !cameras_belong_to (hub, msg, incident->cameras, identity->jurisdiction, "commander")
      || !partners_valid (hub, msg, incident->partners))
    return;

  incident->owner = g_strdup (identity->jurisdiction);
  incident->incident_number = g_strdup (number);
  incident->description = g_strdup (description);
  incident->starts_at_us = now_us;
  incident->declared_by = g_strdup (identity->subject);
  incident->declared_by_name = g_strdup (identity->name);

  if (!cims_hub_access_incident_start (hub, identity, incident, &error)) {
    cims_api_reply_store_error (msg, error);
    return;
  }

  JsonObject *reply = json_object_new ();
  json_object_set_object_member (reply, "incident", incident_to_json (incident, now_us));
  cims_api_reply_object (msg, SOUP_STATUS_CREATED, reply);
}

static gboolean
incident_visible_to (const CimsIncident *incident, const CimsAuthIdentity *identity)
{
  if (g_strcmp0 (incident->owner, identity->jurisdiction) == 0 || incident->partners == NULL)
    return TRUE;

  return g_strv_contains ((const char *const *) incident->partners, identity->jurisdiction);
}

static void
incidents_list (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity)
{
  JsonObject *reply = json_object_new ();
  JsonArray *array = json_array_new ();
  gint64 now_us = g_get_real_time ();

  for (guint i = 0; i < hub->incidents->len; i++) {
    const CimsIncident *incident = g_ptr_array_index (hub->incidents, i);
    if (incident_visible_to (incident, identity))
      json_array_add_object_element (array, incident_to_json (incident, now_us));
  }
  json_object_set_array_member (reply, "incidents", array);
  cims_api_reply_object (msg, SOUP_STATUS_OK, reply);
}

static void
incidents_item (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity, const char *id)
{
  const CimsIncident *incident = cims_hub_access_find_incident (hub, id);
  g_autoptr (GError) error = NULL;
  g_autofree char *reason = NULL;
  guint n_ended = 0;

  if (incident == NULL || !incident_visible_to (incident, identity)) {
    reason = g_strdup_printf ("No major incident has the id \"%.64s\".", id);
    cims_http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not-found", reason);
    return;
  }

  if (g_str_equal (soup_server_message_get_method (msg), "GET")) {
    JsonObject *reply = json_object_new ();
    json_object_set_object_member (reply, "incident", incident_to_json (incident, g_get_real_time ()));
    cims_api_reply_object (msg, SOUP_STATUS_OK, reply);
    return;
  }

  if (!require_role (msg, identity, "commander"))
    return;
  if (g_strcmp0 (incident->owner, identity->jurisdiction) != 0) {
    reason = g_strdup_printf ("Major incident %s covers %s's cameras; only a commander of %s can end it.",
                              incident->id, incident->owner, incident->owner);
    cims_api_reply_forbidden (msg, "not-owner", reason);
    return;
  }

  if (!cims_hub_access_incident_end (hub, identity, id, &n_ended, &error)) {
    cims_api_reply_store_error (msg, error);
    return;
  }

  JsonObject *reply = json_object_new ();
  json_object_set_object_member (reply, "incident",
                                 incident_to_json (cims_hub_access_find_incident (hub, id), g_get_real_time ()));
  json_object_set_int_member (reply, "sessions_ended", n_ended);
  cims_api_reply_object (msg, SOUP_STATUS_OK, reply);
}

/* ---- sessions ------------------------------------------------------------------ */

static gboolean
may_see_sessions (const CimsAuthIdentity *identity)
{
  return cims_auth_identity_has_role (identity, "system-administrator")
         || cims_auth_identity_has_role (identity, "auditor");
}

static void
sessions_list (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity)
{
  JsonObject *reply = json_object_new ();
  JsonArray *array = json_array_new ();
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, hub->sessions);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    CimsViewerSession *session = value;

    if (identity_sees (identity, cims_viewer_session_get_camera_owner (session),
                       cims_viewer_session_get_jurisdiction (session)))
      json_array_add_object_element (array, cims_viewer_session_to_json (session));
  }
  json_object_set_array_member (reply, "sessions", array);
  cims_api_reply_object (msg, SOUP_STATUS_OK, reply);
}

static void
sessions_item (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity, const char *id)
{
  CimsViewerSession *session = g_hash_table_lookup (hub->sessions, id);
  g_autofree char *reason = NULL;

  if (session == NULL || !identity_sees (identity, cims_viewer_session_get_camera_owner (session),
                                         cims_viewer_session_get_jurisdiction (session))) {
    reason = g_strdup_printf ("No session has the id \"%.64s\".", id);
    cims_http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not-found", reason);
    return;
  }

  if (g_str_equal (soup_server_message_get_method (msg), "GET")) {
    cims_api_reply_object (msg, SOUP_STATUS_OK, cims_viewer_session_to_json (session));
    return;
  }

  if (!cims_auth_identity_has_role (identity, "system-administrator")
      || g_strcmp0 (identity->jurisdiction, cims_viewer_session_get_camera_owner (session)) != 0) {
    reason = g_strdup_printf ("Only a system administrator of %s, which owns the camera, can end this session.",
                              cims_viewer_session_get_camera_owner (session));
    cims_api_reply_forbidden (msg, "not-owner", reason);
    return;
  }

  cims_hub_session_end (hub, id, "ended-by-administrator");
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
}

/* ---- routing ------------------------------------------------------------------- */

typedef void (*CollectionFunc) (CimsHub *, SoupServerMessage *, const CimsAuthIdentity *);
typedef void (*ItemFunc) (CimsHub *, SoupServerMessage *, const CimsAuthIdentity *, const char *);

typedef struct {
  const char *prefix;
  CollectionFunc list;
  CollectionFunc create;
  ItemFunc item;
  gboolean (*may_list) (const CimsAuthIdentity *);
} Collection;

static gboolean
may_list_any (const CimsAuthIdentity *identity)
{
  return TRUE;
}

static const Collection collections[] = {
  { "/api/v1/grants", grants_list, grants_create, grants_item, may_list_any },
  { "/api/v1/incidents", incidents_list, incidents_create, incidents_item, may_list_any },
  { "/api/v1/sessions", sessions_list, NULL, sessions_item, may_see_sessions },
};

static void
collection_dispatch (CimsHub *hub, SoupServerMessage *msg, const Collection *collection,
                     const CimsAuthIdentity *identity, const char *rest)
{
  const char *method = soup_server_message_get_method (msg);

  if (!collection->may_list (identity)) {
    cims_api_reply_forbidden (msg, "role-required", "This call needs the system-administrator or auditor role.");
    return;
  }

  if (*rest == '\0' && g_str_equal (method, "GET")) {
    collection->list (hub, msg, identity);
  } else if (*rest == '\0' && g_str_equal (method, "POST") && collection->create != NULL) {
    collection->create (hub, msg, identity);
  } else if (*rest == '/' && rest[1] != '\0' && strchr (rest + 1, '/') == NULL
             && (g_str_equal (method, "GET") || g_str_equal (method, "DELETE"))) {
    collection->item (hub, msg, identity, rest + 1);
  } else {
    cims_http_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method-not-allowed",
                           "That method is not supported on this resource.");
  }
}

/* Resources that route their own sub-paths and methods. */
typedef void (*ResourceFunc) (CimsHub *, SoupServerMessage *, const CimsAuthIdentity *, const char *,
                              GHashTable *);

typedef struct {
  const char *prefix;
  ResourceFunc handle;
} Resource;

static const Resource resources[] = {
  { "/api/v1/audit", cims_api_audit_handle },
  { "/api/v1/archive-requests", cims_api_archive_handle },
  { "/api/v1/reports", cims_api_reports_handle },
};

static gboolean
path_has_prefix (const char *path, const char *prefix)
{
  gsize length = strlen (prefix);

  return strncmp (path, prefix, length) == 0 && (path[length] == '\0' || path[length] == '/');
}

void
cims_api_handle (CimsHub *hub, SoupServerMessage *msg, const char *path, GHashTable *query)
{
  g_autoptr (CimsAuthIdentity) identity = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (resources); i++) {
    if (!path_has_prefix (path, resources[i].prefix))
      continue;

    identity = cims_http_authenticate (hub, msg);
    if (identity != NULL)
      resources[i].handle (hub, msg, identity, path + strlen (resources[i].prefix), query);
    return;
  }

  for (guint i = 0; i < G_N_ELEMENTS (collections); i++) {
    const Collection *collection = &collections[i];
    gsize length = strlen (collection->prefix);

    if (strncmp (path, collection->prefix, length) != 0 || (path[length] != '\0' && path[length] != '/'))
      continue;

    identity = cims_http_authenticate (hub, msg);
    if (identity != NULL)
      collection_dispatch (hub, msg, collection, identity, path + length);
    return;
  }

  cims_http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not-found", "No such API resource.");
}
