/* SPDX-License-Identifier: Apache-2.0 */
/* /api/v1/archive-requests: requests for recorded footage, their legal
 * review (civilians' requests) and a System Administrator's decision, each
 * step in the audit log. The hub serves live video only, so it records the
 * process but never serves footage. The requests are stored by auth/store. */
#include "hub/hub-runtime.h"

#include <string.h>

#include "auth/report.h"

static const char archive_note[] =
  "cimshub serves live video only: this archive-footage request and each review step are "
  "recorded in the audit log, but recorded footage is not served through the hub.";

static JsonObject *
archive_request_to_json (const CimsArchiveRequest *request)
{
  JsonObject *object = json_object_new ();

  json_object_set_string_member (object, "id", request->id);
  json_object_set_string_member (object, "camera_id", request->camera_id);
  json_object_set_string_member (object, "owner", request->owner);
  cims_api_object_set_time (object, "from", request->from_us);
  cims_api_object_set_time (object, "to", request->to_us);
  json_object_set_string_member (object, "requester_kind",
                                 cims_archive_requester_kind_to_string (request->requester_kind));
  json_object_set_string_member (object, "requester_id", request->requester_id);
  json_object_set_string_member (object, "requester_name", request->requester_name);
  json_object_set_string_member (object, "incident_number", request->incident_number);
  json_object_set_string_member (object, "purpose", request->purpose);
  json_object_set_string_member (object, "state", cims_archive_state_to_string (request->state));
  cims_api_object_set_time (object, "created_at", request->created_at_us);
  json_object_set_string_member (object, "legal_reviewed_by", request->legal_reviewed_by);
  cims_api_object_set_time (object, "legal_reviewed_at", request->legal_reviewed_at_us);
  json_object_set_string_member (object, "decided_by", request->decided_by);
  cims_api_object_set_time (object, "decided_at", request->decided_at_us);
  json_object_set_string_member (object, "decision_note", request->decision_note);
  return object;
}

static void
reply_request (SoupServerMessage *msg, guint status, const CimsArchiveRequest *request, gboolean is_audited)
{
  JsonObject *reply = json_object_new ();

  json_object_set_object_member (reply, "archive_request", archive_request_to_json (request));
  json_object_set_boolean_member (reply, "audit_recorded", is_audited);
  json_object_set_string_member (reply, "note", archive_note);
  cims_api_reply_object (msg, status, reply);
}

static gboolean
request_visible_to (const CimsArchiveRequest *request, const CimsAuthIdentity *identity)
{
  return g_strcmp0 (request->owner, identity->jurisdiction) == 0
         || g_strcmp0 (request->requester_id, identity->jurisdiction) == 0;
}

/* ---- create --------------------------------------------------------------------- */

/* Checks requester_kind against the token: staff of a participating
 * jurisdiction request as "jurisdiction", staff of an agency (or of a
 * non-participating member) as "agency", and anyone may enter a civilian's
 * request, naming the civilian. */
static gboolean
requester_check (SoupServerMessage *msg, const CimsAuthIdentity *identity, CimsArchiveRequesterKind kind,
                 const char *requester_name)
{
  if (kind == CIMS_ARCHIVE_REQUESTER_CIVILIAN && requester_name == NULL) {
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field",
                           "A civilian's request needs \"requester_name\": the member of the public who asks.");
    return FALSE;
  }
  if (kind == CIMS_ARCHIVE_REQUESTER_JURISDICTION && identity->is_agency) {
    cims_api_reply_forbidden (msg, "requester-kind",
                              "requester_kind \"jurisdiction\" needs a token of a participating jurisdiction; "
                              "an agency's staff request as \"agency\".");
    return FALSE;
  }
  if (kind == CIMS_ARCHIVE_REQUESTER_AGENCY && !identity->is_agency) {
    cims_api_reply_forbidden (msg, "requester-kind",
                              "requester_kind \"agency\" needs an agency's token; a participating "
                              "jurisdiction's staff request as \"jurisdiction\".");
    return FALSE;
  }
  return TRUE;
}

/* An agency or another jurisdiction must name the incident the footage is
 * for; a civilian's or the owner's own request may. */
static gboolean
incident_number_check (SoupServerMessage *msg, const CimsArchiveRequest *request, const char *number)
{
  gboolean is_required = request->requester_kind != CIMS_ARCHIVE_REQUESTER_CIVILIAN
                         && g_strcmp0 (request->requester_id, request->owner) != 0;

  if (number == NULL && is_required) {
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field",
                           "A request for another jurisdiction's footage needs \"incident_number\".");
    return FALSE;
  }
  if (number != NULL && !cims_auth_incident_number_is_valid (number)) {
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field",
                           "\"incident_number\" is malformed: 3 to 40 letters, digits and -/.:_ expected.");
    return FALSE;
  }
  return TRUE;
}

/* Fills @request from @body, or replies 400/403/404 and returns FALSE. */
static gboolean
archive_request_parse (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity, JsonObject *body,
                       CimsArchiveRequest *request)
{
  const char *camera_id = NULL, *kind = NULL, *name = NULL, *number = NULL, *purpose = NULL;
  const CimsConfigCamera *camera;
  g_autofree char *reason = NULL;

  if (!cims_api_member_get_string (msg, body, "camera_id", TRUE, &camera_id)
      || !cims_api_member_get_string (msg, body, "requester_kind", TRUE, &kind)
      || !cims_api_member_get_string (msg, body, "requester_name", FALSE, &name)
      || !cims_api_member_get_string (msg, body, "incident_number", FALSE, &number)
      || !cims_api_member_get_string (msg, body, "purpose", TRUE, &purpose)
      || !cims_api_member_get_time (msg, body, "from", &request->from_us)
      || !cims_api_member_get_time (msg, body, "to", &request->to_us))
    return FALSE;

  camera = cims_config_find_camera (hub->config, camera_id);
  if (camera == NULL) {
    reason = g_strdup_printf ("No camera has the id \"%.64s\".", camera_id);
    cims_http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "unknown-camera", reason);
    return FALSE;
  }
  if (!cims_archive_requester_kind_from_string (kind, &request->requester_kind)) {
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field",
                           "\"requester_kind\" must be \"agency\", \"civilian\" or \"jurisdiction\".");
    return FALSE;
  }
  if (request->to_us <= request->from_us || request->from_us > g_get_real_time ()) {
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field",
                           "The footage period needs \"from\" in the past and \"to\" after \"from\".");
    return FALSE;
  }
  if (name != NULL && *name == '\0')
    name = NULL;
  if (!requester_check (msg, identity, request->requester_kind, name))
    return FALSE;

  request->camera_id = g_strdup (camera->id);
  request->owner = g_strdup (camera->jurisdiction);
  request->requester_id = g_strdup (identity->jurisdiction);
  /* The person who asks: the civilian, or the token's holder. */
  request->requester_name = g_strdup (request->requester_kind == CIMS_ARCHIVE_REQUESTER_CIVILIAN
                                      ? name : identity->name);
  request->purpose = g_strdup (purpose);
  if (!incident_number_check (msg, request, number))
    return FALSE;
  request->incident_number = g_strdup (number);
  return TRUE;
}

static void
archive_create (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (CimsArchiveRequest) request = g_new0 (CimsArchiveRequest, 1);
  g_autoptr (GError) error = NULL;
  JsonObject *body = cims_api_body_parse (msg, parser);
  gboolean is_audited;

  if (body == NULL || !archive_request_parse (hub, msg, identity, body, request))
    return;

  request->created_at_us = g_get_real_time ();
  if (!cims_store_archive_request_insert (hub->store, request, &error)) {
    g_warning ("archive request for camera %s by %s (%s) could not be stored: %s", request->camera_id,
               identity->subject, identity->jurisdiction, error->message);
    cims_api_reply_store_error (msg, error);
    return;
  }

  g_message ("archive request %s for camera %s by %s (%s), %s, state %s", request->id, request->camera_id,
             identity->subject, identity->jurisdiction,
             cims_archive_requester_kind_to_string (request->requester_kind),
             cims_archive_state_to_string (request->state));
  is_audited = cims_hub_audit_archive_request (hub, "archive-requested", identity, request, request->purpose,
                                               NULL, NULL);
  reply_request (msg, SOUP_STATUS_CREATED, request, is_audited);
}

static void
archive_list (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity)
{
  g_autoptr (GPtrArray) requests = NULL;
  g_autoptr (GError) error = NULL;
  JsonObject *reply;
  JsonArray *array;

  requests = cims_store_archive_request_list (hub->store, &error);
  if (requests == NULL) {
    cims_api_reply_store_error (msg, error);
    return;
  }

  array = json_array_new ();
  for (guint i = 0; i < requests->len; i++) {
    const CimsArchiveRequest *request = g_ptr_array_index (requests, i);

    if (request_visible_to (request, identity))
      json_array_add_object_element (array, archive_request_to_json (request));
  }

  reply = json_object_new ();
  json_object_set_array_member (reply, "archive_requests", array);
  json_object_set_string_member (reply, "note", archive_note);
  cims_api_reply_object (msg, SOUP_STATUS_OK, reply);
}

/* ---- review steps ---------------------------------------------------------------- */

/* One review step: who may take it, from which state, and what each
 * decision leads to. */
typedef struct {
  const char *name;             /* path segment */
  const char *role;
  CimsArchiveState from_state;
  const char *yes;              /* decision names */
  const char *no;
  CimsArchiveState yes_state;
  const char *yes_event;
  const char *no_event;
} ArchiveStep;

static const ArchiveStep archive_steps[] = {
  { "legal-review", "legal", CIMS_ARCHIVE_STATE_PENDING_LEGAL_REVIEW, "cleared", "denied",
    CIMS_ARCHIVE_STATE_PENDING_APPROVAL, "archive-legal-reviewed", "archive-legal-reviewed" },
  { "decision", "system-administrator", CIMS_ARCHIVE_STATE_PENDING_APPROVAL, "approved", "denied",
    CIMS_ARCHIVE_STATE_APPROVED, "archive-approved", "archive-denied" },
};

/* Checks that @identity has the step's role in the owning jurisdiction
 * and that the request waits for this step; replies 403 or 409 if not. */
static gboolean
archive_step_allowed (SoupServerMessage *msg, const ArchiveStep *step, const CimsAuthIdentity *identity,
                      const CimsArchiveRequest *request)
{
  g_autofree char *reason = NULL;

  if (!cims_auth_identity_has_role (identity, step->role) || identity->is_agency
      || g_strcmp0 (identity->jurisdiction, request->owner) != 0) {
    reason = g_strdup_printf ("The %s of archive request %s needs the %s role of %s, which owns camera %s; "
                              "%s (%s) does not have it.", step->name, request->id, step->role,
                              request->owner, request->camera_id, identity->subject, identity->jurisdiction);
    cims_api_reply_forbidden (msg, "role-required", reason);
    return FALSE;
  }

  if (request->state != step->from_state) {
    reason = g_strdup_printf ("Archive request %s is %s; the %s is only possible while it is %s.", request->id,
                              cims_archive_state_to_string (request->state), step->name,
                              cims_archive_state_to_string (step->from_state));
    cims_http_reply_error (msg, SOUP_STATUS_CONFLICT, "wrong-state", reason);
    return FALSE;
  }
  return TRUE;
}

static void
archive_step (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity,
              const CimsArchiveRequest *request, const ArchiveStep *step)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (CimsArchiveRequest) updated = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *reason = NULL;
  const char *decision = NULL, *note = NULL;
  JsonObject *body;
  gboolean is_yes;
  gboolean is_audited;

  if (!archive_step_allowed (msg, step, identity, request))
    return;
  body = cims_api_body_parse (msg, parser);
  if (body == NULL || !cims_api_member_get_string (msg, body, "decision", TRUE, &decision)
      || !cims_api_member_get_string (msg, body, "note", FALSE, &note))
    return;

  is_yes = g_str_equal (decision, step->yes);
  if (!is_yes && !g_str_equal (decision, step->no)) {
    reason = g_strdup_printf ("\"decision\" must be \"%s\" or \"%s\".", step->yes, step->no);
    cims_http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid-field", reason);
    return;
  }

  if (!cims_store_archive_request_update_state (hub->store, request->id, step->from_state,
                                                is_yes ? step->yes_state : CIMS_ARCHIVE_STATE_DENIED,
                                                identity->subject, g_get_real_time (), note, &error)
      || (updated = cims_store_archive_request_get (hub->store, request->id, &error)) == NULL) {
    cims_api_reply_store_error (msg, error);
    return;
  }

  g_message ("archive request %s: %s %s by %s (%s), now %s", request->id, step->name, decision,
             identity->subject, identity->jurisdiction, cims_archive_state_to_string (updated->state));
  is_audited = cims_hub_audit_archive_request (hub, is_yes ? step->yes_event : step->no_event, identity,
                                               updated, decision, note, NULL);
  reply_request (msg, SOUP_STATUS_OK, updated, is_audited);
}

static void
archive_item (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity, const char *id,
              const char *action)
{
  const char *method = soup_server_message_get_method (msg);
  g_autoptr (CimsArchiveRequest) request = NULL;
  g_autoptr (GError) error = NULL;

  request = cims_store_archive_request_get (hub->store, id, &error);
  if (request == NULL && !g_error_matches (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_NOT_FOUND)) {
    cims_api_reply_store_error (msg, error);
    return;
  }
  if (request == NULL || !request_visible_to (request, identity)) {
    cims_http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not-found", "No such archive request.");
    return;
  }

  if (action == NULL) {
    if (g_str_equal (method, "GET"))
      reply_request (msg, SOUP_STATUS_OK, request, TRUE);
    else
      cims_api_reply_method_not_allowed (msg, "GET");
    return;
  }

  for (gsize i = 0; i < G_N_ELEMENTS (archive_steps); i++) {
    if (!g_str_equal (action, archive_steps[i].name))
      continue;
    if (g_str_equal (method, "POST"))
      archive_step (hub, msg, identity, request, &archive_steps[i]);
    else
      cims_api_reply_method_not_allowed (msg, "POST");
    return;
  }

  cims_http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not-found", "No such API resource.");
}

void
cims_api_archive_handle (CimsHub *hub, SoupServerMessage *msg, const CimsAuthIdentity *identity,
                         const char *rest, GHashTable *query)
{
  const char *method = soup_server_message_get_method (msg);
  g_auto (GStrv) segments = NULL;

  if (hub->store == NULL) {
    cims_http_reply_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "store-unavailable",
                           "The state store is not open.");
    return;
  }

  if (*rest == '\0') {
    if (g_str_equal (method, "GET"))
      archive_list (hub, msg, identity);
    else if (g_str_equal (method, "POST"))
      archive_create (hub, msg, identity);
    else
      cims_api_reply_method_not_allowed (msg, "GET, POST");
    return;
  }

  /* "/ID" or "/ID/ACTION". */
  segments = g_strsplit (rest + 1, "/", 3);
  if (segments[0][0] == '\0' || (segments[1] != NULL && (segments[1][0] == '\0' || segments[2] != NULL))) {
    cims_http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not-found", "No such API resource.");
    return;
  }

  archive_item (hub, msg, identity, segments[0], segments[1]);
}
