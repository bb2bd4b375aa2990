/* SPDX-License-Identifier: Apache-2.0 */
/* cimshubctl's admin subcommands: cameras, grants, major incidents and
 * viewing sessions through the hub's /api/v1 JSON API. The HTTP client and
 * table output are in cimshubctl-client.c. */

#include "hub/cimshubctl-private.h"

#include <string.h>

#include "auth/auth.h"
#include "config/config.h"

/* Maximum --duration accepted, in seconds (ten years). The hub applies its
 * own, shorter limit to incidents. */
#define DURATION_MAX_S (G_GINT64_CONSTANT (10) * 366 * 24 * 3600)

/* The rule for an incident's end, in the words of both incidents start's
 * help and its error. */
#define INCIDENT_END_RULE "give exactly one of --ends and --duration"

/* ------------------------------------------------------------------ */
/* Option parsing shared by the subcommands */

typedef struct {
  const char *parameter;        /* positional parameter, e.g. "ID", or NULL */
  const char *summary;
  const GOptionEntry *entries;  /* the subcommand's own options, or NULL */
} AdminCommandSpec;

/* Parses the subcommand's options and the client options. When @spec has
 * a parameter, *@argument is set to it (transfer none, owned by @argv).
 * Returns CTL_EXIT_OK, or CTL_EXIT_USAGE after printing why. */
static int
admin_parse (const AdminCommandSpec *spec, int argc, char **argv,
             CimsCtlClientOptions *options, const char **argument)
{
  g_autoptr(GOptionContext) context = g_option_context_new (spec->parameter);
  g_autoptr(GError) error = NULL;
  int n_expected = spec->parameter != NULL ? 2 : 1;

  g_option_context_set_summary (context, spec->summary);
  if (spec->entries != NULL)
    g_option_context_add_main_entries (context, spec->entries, NULL);
  cims_ctl_client_options_add (context, options);

  if (!g_option_context_parse (context, &argc, &argv, &error))
    return cims_ctl_usage_error (error->message);

  if (argc < n_expected) {
    g_autofree char *message = g_strdup_printf ("expected the %s argument", spec->parameter);
    return cims_ctl_usage_error (message);
  }

  if (argc > n_expected) {
    g_autofree char *message = g_strdup_printf ("unexpected argument \"%s\"", argv[n_expected]);
    return cims_ctl_usage_error (message);
  }

  if (argument != NULL)
    *argument = argv[1];

  return CTL_EXIT_OK;
}

/* Makes the client. Returns CTL_EXIT_OK, CTL_EXIT_USAGE for a missing
 * token or an invalid URL, or CTL_EXIT_FAILED for an unreadable token file. */
static int
admin_client_new (const CimsCtlClientOptions *options, CimsCtlClient **client)
{
  g_autoptr(GError) error = NULL;

  *client = cims_ctl_client_new (options, &error);
  if (*client != NULL)
    return CTL_EXIT_OK;

  if (error->domain == G_OPTION_ERROR)
    return cims_ctl_usage_error (error->message);

  fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
  return CTL_EXIT_FAILED;
}

/* Returns: (transfer full): @text as an ISO 8601 UTC time such as
 * "2025-06-15T15:06:40Z", or NULL with a G_OPTION_ERROR naming @option.
 * A time without a zone is taken as UTC. */
static GDateTime *
time_option_parse (const char *option, const char *text, GError **error)
{
  g_autoptr(GTimeZone) utc = g_time_zone_new_utc ();
  g_autoptr(GDateTime) time = g_date_time_new_from_iso8601 (text, utc);

  if (time == NULL) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "%s \"%s\" is not an ISO 8601 time, e.g. 2025-06-15T18:00:00Z", option, text);
    return NULL;
  }

  return g_date_time_to_utc (time);
}

/* Reads --duration, taken as text so that a given 0 differs from an
 * absent option. Fails with a G_OPTION_ERROR naming @text unless it is a
 * whole number of seconds from 1 to DURATION_MAX_S. */
static gboolean
duration_option_parse (const char *text, gint64 *duration_s, GError **error)
{
  guint64 value = 0;

  if (!g_ascii_string_to_unsigned (text, 10, 1, DURATION_MAX_S, &value, NULL)) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--duration \"%s\" is invalid: use a whole number of seconds from 1 to %" G_GINT64_FORMAT,
                 text, DURATION_MAX_S);
    return FALSE;
  }

  *duration_s = (gint64) value;
  return TRUE;
}

/* Splits a comma-separated list of ids and checks each.
 * Returns: (transfer full): the ids, NULL for a NULL @list, or NULL with a
 * G_OPTION_ERROR naming @option. */
static char **
id_list_option_parse (const char *option, const char *list, GError **error)
{
  g_auto(GStrv) ids = NULL;

  if (list == NULL)
    return NULL;

  ids = cims_ctl_split_list (list);
  if (ids[0] == NULL) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "%s lists no id", option);
    return NULL;
  }

  for (guint i = 0; ids[i] != NULL; i++) {
    if (!cims_config_id_is_valid (ids[i])) {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "%s: \"%s\" is not a valid id (1 to 64 of a-z 0-9 . _ -)", option, ids[i]);
      return NULL;
    }
  }

  return g_steal_pointer (&ids);
}

static gboolean
incident_number_option_check (const char *number, GError **error)
{
  if (!cims_auth_incident_number_is_valid (number)) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--incident-number \"%s\" is invalid: use 3 to 40 letters, digits or "
                 "-/.:_ characters, starting with a letter or digit", number);
    return FALSE;
  }

  return TRUE;
}

static void
builder_add_string_member (JsonBuilder *builder, const char *member, const char *value)
{
  if (value == NULL)
    return;

  json_builder_set_member_name (builder, member);
  json_builder_add_string_value (builder, value);
}

static void
builder_add_strv_member (JsonBuilder *builder, const char *member, char **values)
{
  if (values == NULL)
    return;

  json_builder_set_member_name (builder, member);
  json_builder_begin_array (builder);
  for (guint i = 0; values[i] != NULL; i++)
    json_builder_add_string_value (builder, values[i]);
  json_builder_end_array (builder);
}

static void
builder_add_time_member (JsonBuilder *builder, const char *member, GDateTime *time)
{
  g_autofree char *text = NULL;

  if (time == NULL)
    return;

  text = g_date_time_format_iso8601 (time);
  builder_add_string_member (builder, member, text);
}

/* ------------------------------------------------------------------ */
/* Printing results */

/* One line of a record printed as "Label:  value". */
typedef struct {
  const char *label;
  const char *member;
  const char *absent;           /* shown for null or a missing member */
} AdminField;

static const AdminField grant_fields[] = {
  { "ID", "id", "-" },
  { "Owner", "owner", "-" },
  { "Grantee", "grantee", "-" },
  { "Grantee kind", "grantee_kind", "-" },
  { "Group", "grantee_group", "any" },
  { "Cameras", "cameras", "all of the owner's" },
  { "Starts", "starts_at", "-" },
  { "Ends", "ends_at", "ongoing" },
  { "Purpose", "purpose", "-" },
  { "Incident number", "incident_number", "any" },
  { "Authorized by", "authorized_by_name", "-" },
  { "Authorized by id", "authorized_by", "-" },
  { "Authorized at", "authorized_at", "-" },
  { "Revoked by", "revoked_by", "-" },
  { "Revoked at", "revoked_at", "-" },
  { "Active", "active", "-" },
  { NULL, NULL, NULL }
};

static const AdminField incident_fields[] = {
  { "ID", "id", "-" },
  { "Owner", "owner", "-" },
  { "Incident number", "incident_number", "-" },
  { "Cameras", "cameras", "all of the owner's" },
  { "Partners", "partners", "every participating jurisdiction" },
  { "Starts", "starts_at", "-" },
  { "Ends", "ends_at", "-" },
  { "Description", "description", "-" },
  { "Declared by", "declared_by_name", "-" },
  { "Declared by id", "declared_by", "-" },
  { "Ended by", "ended_by", "-" },
  { "Ended at", "ended_at", "-" },
  { "Active", "active", "-" },
  { NULL, NULL, NULL }
};

static void
record_print (JsonObject *object, const AdminField *fields)
{
  int width = 0;

  for (guint i = 0; fields[i].label != NULL; i++)
    width = MAX (width, (int) strlen (fields[i].label) + 1);

  for (guint i = 0; fields[i].label != NULL; i++) {
    g_autofree char *label = g_strconcat (fields[i].label, ":", NULL);
    g_autofree char *value = cims_ctl_json_dup_text (object, fields[i].member, fields[i].absent);

    printf ("%-*s  %s\n", width, label, value);
  }
}

/* Prints the @member object of @response with @fields. */
static int
response_print_record (JsonNode *response, const char *member, const AdminField *fields)
{
  JsonObject *root = response != NULL && JSON_NODE_HOLDS_OBJECT (response)
      ? json_node_get_object (response) : NULL;
  JsonObject *object = cims_ctl_json_get_object (root, member);

  if (object == NULL) {
    fprintf (stderr, "%s: the hub's response has no \"%s\" object\n", g_get_prgname (), member);
    return CTL_EXIT_FAILED;
  }

  record_print (object, fields);
  return CTL_EXIT_OK;
}

/* Returns: (transfer full): "active", @stop_word when @stop_member is set,
 * "scheduled" before starts_at, else "expired". The local clock decides
 * between scheduled and expired. */
static char *
record_dup_state (JsonObject *object, const char *stop_member, const char *stop_word)
{
  g_autofree char *active = cims_ctl_json_dup_text (object, "active", "no");
  g_autofree char *stopped_at = cims_ctl_json_dup_text (object, stop_member, NULL);
  g_autofree char *starts_at = cims_ctl_json_dup_text (object, "starts_at", NULL);
  g_autoptr(GDateTime) starts = starts_at ? g_date_time_new_from_iso8601 (starts_at, NULL) : NULL;
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();

  if (strcmp (active, "yes") == 0)
    return g_strdup ("active");
  if (stopped_at != NULL)
    return g_strdup (stop_word);
  if (starts != NULL && g_date_time_compare (now, starts) < 0)
    return g_strdup ("scheduled");

  return g_strdup ("expired");
}

/* ------------------------------------------------------------------ */
/* Lists */

typedef struct {
  AdminCommandSpec command;
  const char *path;
  const char *member;           /* the array in the response */
  const char *const *headers;
  const char *empty_message;
  void (*add_row) (CimsCtlTable *table, JsonObject *object);
} AdminListSpec;

static int
admin_list_run (const AdminListSpec *spec, int argc, char **argv)
{
  g_auto(CimsCtlClientOptions) options = { 0 };
  g_autoptr(CimsCtlClient) client = NULL;
  g_autoptr(JsonNode) response = NULL;
  g_autoptr(CimsCtlTable) table = NULL;
  JsonArray *items;
  int status;

  status = admin_parse (&spec->command, argc, argv, &options, NULL);
  if (status == CTL_EXIT_OK)
    status = admin_client_new (&options, &client);
  if (status == CTL_EXIT_OK)
    status = cims_ctl_client_send (client, "GET", spec->path, NULL, &response);
  if (status != CTL_EXIT_OK || cims_ctl_client_prints_json (client))
    return status;

  items = cims_ctl_json_get_array (response != NULL && JSON_NODE_HOLDS_OBJECT (response)
                                   ? json_node_get_object (response) : NULL, spec->member);
  if (items == NULL) {
    fprintf (stderr, "%s: the hub's response has no \"%s\" array\n", g_get_prgname (), spec->member);
    return CTL_EXIT_FAILED;
  }

  if (json_array_get_length (items) == 0) {
    printf ("%s\n", spec->empty_message);
    return CTL_EXIT_OK;
  }

  table = cims_ctl_table_new (spec->headers);
  for (guint i = 0; i < json_array_get_length (items); i++) {
    JsonNode *node = json_array_get_element (items, i);

    if (JSON_NODE_HOLDS_OBJECT (node))
      spec->add_row (table, json_node_get_object (node));
  }
  cims_ctl_table_print (table, stdout);

  return CTL_EXIT_OK;
}

#define TEXT(object, member) cims_ctl_json_dup_text ((object), (member), "-")

static void
camera_add_row (CimsCtlTable *table, JsonObject *camera)
{
  cims_ctl_table_add_row (table, TEXT (camera, "id"), TEXT (camera, "jurisdiction"),
                          TEXT (camera, "location"), TEXT (camera, "brand_model"),
                          TEXT (camera, "installed"), TEXT (camera, "restricted"),
                          TEXT (camera, "out_of_service"), TEXT (camera, "viewable"),
                          TEXT (camera, "rule"));
}

static const char *const camera_headers[] = {
  "ID", "JURISDICTION", "LOCATION", "BRAND/MODEL", "INSTALLED", "RESTRICTED",
  "OUT OF SERVICE", "VIEWABLE", "RULE", NULL
};

static const AdminListSpec cameras_list_spec = {
  { NULL, "Lists every camera with whether the caller may watch it now.", NULL },
  "/api/v1/cameras", "cameras", camera_headers, "No cameras.", camera_add_row,
};

int
cims_ctl_cameras_list_run (int argc, char **argv)
{
  return admin_list_run (&cameras_list_spec, argc, argv);
}

/* "grantee/group" when the grant is narrowed to a group. */
static char *
grant_dup_grantee (JsonObject *grant)
{
  g_autofree char *grantee = TEXT (grant, "grantee");
  g_autofree char *group = cims_ctl_json_dup_text (grant, "grantee_group", NULL);

  if (group == NULL)
    return g_steal_pointer (&grantee);

  return g_strconcat (grantee, "/", group, NULL);
}

static void
grant_add_row (CimsCtlTable *table, JsonObject *grant)
{
  cims_ctl_table_add_row (table, TEXT (grant, "id"), TEXT (grant, "owner"),
                          grant_dup_grantee (grant),
                          cims_ctl_json_dup_text (grant, "cameras", "all"),
                          TEXT (grant, "starts_at"),
                          cims_ctl_json_dup_text (grant, "ends_at", "ongoing"),
                          cims_ctl_json_dup_text (grant, "incident_number", "any"),
                          record_dup_state (grant, "revoked_at", "revoked"),
                          TEXT (grant, "purpose"));
}

static const char *const grant_headers[] = {
  "ID", "OWNER", "GRANTEE", "CAMERAS", "STARTS", "ENDS", "INCIDENT", "STATE", "PURPOSE", NULL
};

static const AdminListSpec grants_list_spec = {
  { NULL, "Lists the grants the caller may see, revoked ones included, newest first.", NULL },
  "/api/v1/grants", "grants", grant_headers, "No grants.", grant_add_row,
};

int
cims_ctl_grants_list_run (int argc, char **argv)
{
  return admin_list_run (&grants_list_spec, argc, argv);
}

static void
incident_add_row (CimsCtlTable *table, JsonObject *incident)
{
  cims_ctl_table_add_row (table, TEXT (incident, "id"), TEXT (incident, "owner"),
                          TEXT (incident, "incident_number"),
                          cims_ctl_json_dup_text (incident, "cameras", "all"),
                          cims_ctl_json_dup_text (incident, "partners", "all participating"),
                          TEXT (incident, "starts_at"), TEXT (incident, "ends_at"),
                          record_dup_state (incident, "ended_at", "ended"),
                          TEXT (incident, "description"));
}

static const char *const incident_headers[] = {
  "ID", "OWNER", "NUMBER", "CAMERAS", "PARTNERS", "STARTS", "ENDS", "STATE", "DESCRIPTION", NULL
};

static const AdminListSpec incidents_list_spec = {
  { NULL, "Lists the major incidents (mass sharing), ended ones included.", NULL },
  "/api/v1/incidents", "incidents", incident_headers, "No major incidents.", incident_add_row,
};

int
cims_ctl_incidents_list_run (int argc, char **argv)
{
  return admin_list_run (&incidents_list_spec, argc, argv);
}

/* "Name (subject)". */
static char *
session_dup_viewer (JsonObject *session)
{
  g_autofree char *name = TEXT (session, "viewer_name");
  g_autofree char *subject = TEXT (session, "viewer_subject");

  return g_strdup_printf ("%s (%s)", name, subject);
}

static void
session_add_row (CimsCtlTable *table, JsonObject *session)
{
  cims_ctl_table_add_row (table, TEXT (session, "id"), TEXT (session, "camera_id"),
                          TEXT (session, "camera_owner"), session_dup_viewer (session),
                          TEXT (session, "viewer_jurisdiction"), TEXT (session, "viewer_address"),
                          TEXT (session, "allowed_by"), TEXT (session, "incident_number"),
                          TEXT (session, "started_at"), TEXT (session, "allowed_until"),
                          TEXT (session, "bytes_sent"));
}

static const char *const session_headers[] = {
  "ID", "CAMERA", "OWNER", "VIEWER", "FROM", "ADDRESS", "ALLOWED BY", "INCIDENT",
  "STARTED", "UNTIL", "BYTES SENT", NULL
};

static const AdminListSpec sessions_list_spec = {
  { NULL, "Lists the live viewing sessions the caller may see.", NULL },
  "/api/v1/sessions", "sessions", session_headers, "No viewing sessions.", session_add_row,
};

int
cims_ctl_sessions_list_run (int argc, char **argv)
{
  return admin_list_run (&sessions_list_spec, argc, argv);
}

/* ------------------------------------------------------------------ */
/* Single items: show, revoke, end */

typedef struct {
  AdminCommandSpec command;
  const char *method;
  const char *collection;       /* e.g. "/api/v1/grants" */
  const char *member;           /* the object in the response, or NULL for none */
  const char *done_format;      /* printf format taking the id, e.g. "Revoked grant %s." */
  const AdminField *fields;     /* printed instead of done_format when not NULL */
} AdminItemSpec;

/* Prints the sessions_ended count of a DELETE response, when it has one. */
static void
response_print_sessions_ended (JsonNode *response)
{
  JsonObject *root = response != NULL && JSON_NODE_HOLDS_OBJECT (response)
      ? json_node_get_object (response) : NULL;
  g_autofree char *n_ended = root != NULL ? cims_ctl_json_dup_text (root, "sessions_ended", NULL) : NULL;

  if (n_ended != NULL)
    printf ("Sessions ended: %s\n", n_ended);
}

static int
admin_item_run (const AdminItemSpec *spec, int argc, char **argv)
{
  g_auto(CimsCtlClientOptions) options = { 0 };
  g_autoptr(CimsCtlClient) client = NULL;
  g_autoptr(JsonNode) response = NULL;
  g_autofree char *escaped = NULL;
  g_autofree char *path = NULL;
  const char *id = NULL;
  int status;

  status = admin_parse (&spec->command, argc, argv, &options, &id);
  if (status == CTL_EXIT_OK)
    status = admin_client_new (&options, &client);
  if (status != CTL_EXIT_OK)
    return status;

  escaped = cims_ctl_path_escape (id);
  path = g_strconcat (spec->collection, "/", escaped, NULL);
  status = cims_ctl_client_send (client, spec->method, path, NULL, &response);
  if (status != CTL_EXIT_OK || cims_ctl_client_prints_json (client))
    return status;

  if (spec->fields != NULL)
    return response_print_record (response, spec->member, spec->fields);

  printf (spec->done_format, id);
  printf ("\n");
  response_print_sessions_ended (response);

  return CTL_EXIT_OK;
}

static const AdminItemSpec grants_show_spec = {
  { "ID", "Prints one grant.", NULL },
  "GET", "/api/v1/grants", "grant", NULL, grant_fields,
};

static const AdminItemSpec grants_revoke_spec = {
  { "ID", "Revokes a grant at once and ends the viewing sessions that depended on it.", NULL },
  "DELETE", "/api/v1/grants", "grant", "Revoked grant %s.", NULL,
};

static const AdminItemSpec incidents_end_spec = {
  { "ID", "Ends a major incident's mass sharing at once and the viewing sessions "
    "that depended on it.", NULL },
  "DELETE", "/api/v1/incidents", "incident", "Ended major incident %s.", NULL,
};

static const AdminItemSpec sessions_end_spec = {
  { "ID", "Ends one live viewing session.", NULL },
  "DELETE", "/api/v1/sessions", NULL, "Ended session %s.", NULL,
};

int
cims_ctl_grants_show_run (int argc, char **argv)
{
  return admin_item_run (&grants_show_spec, argc, argv);
}

int
cims_ctl_grants_revoke_run (int argc, char **argv)
{
  return admin_item_run (&grants_revoke_spec, argc, argv);
}

int
cims_ctl_incidents_end_run (int argc, char **argv)
{
  return admin_item_run (&incidents_end_spec, argc, argv);
}

int
cims_ctl_sessions_end_run (int argc, char **argv)
{
  return admin_item_run (&sessions_end_spec, argc, argv);
}

/* ------------------------------------------------------------------ */
/* Creating: grants create, incidents start */

/* Sends @body to @path with POST and prints the created @member. */
static int
admin_create_send (const CimsCtlClientOptions *options, const char *path, JsonBuilder *builder,
                   const char *member, const AdminField *fields)
{
  g_autoptr(CimsCtlClient) client = NULL;
  g_autoptr(JsonNode) body = json_builder_get_root (builder);
  g_autoptr(JsonNode) response = NULL;
  int status;

  status = admin_client_new (options, &client);
  if (status == CTL_EXIT_OK)
    status = cims_ctl_client_send (client, "POST", path, body, &response);
  if (status != CTL_EXIT_OK || cims_ctl_client_prints_json (client))
    return status;

  return response_print_record (response, member, fields);
}

typedef struct {
  char *grantee;
  char *group;
  char *cameras;
  char *starts;
  char *ends;
  char *duration;               /* seconds, as given */
  char *purpose;
  char *incident_number;
} GrantOptions;

static void
grant_options_clear (GrantOptions *options)
{
  g_clear_pointer (&options->grantee, g_free);
  g_clear_pointer (&options->group, g_free);
  g_clear_pointer (&options->cameras, g_free);
  g_clear_pointer (&options->starts, g_free);
  g_clear_pointer (&options->ends, g_free);
  g_clear_pointer (&options->duration, g_free);
  g_clear_pointer (&options->purpose, g_free);
  g_clear_pointer (&options->incident_number, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (GrantOptions, grant_options_clear)

/* Resolves --starts, --ends and --duration to the grant's times. *starts
 * stays NULL when --starts is absent (the hub then starts it now), and
 * *ends stays NULL for an ongoing grant or one given as a duration, which
 * goes in *duration_s (0 without one). The hub counts a duration from the
 * grant's start, so the grant lasts exactly that long. */
static gboolean
grant_options_get_times (const GrantOptions *options, GDateTime **starts, GDateTime **ends,
                         gint64 *duration_s, GError **error)
{
  g_autoptr(GDateTime) start = NULL;
  g_autoptr(GDateTime) end = NULL;

  if (options->ends != NULL && options->duration != NULL) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                 "give either --ends or --duration, not both");
    return FALSE;
  }

  if (options->starts != NULL && (start = time_option_parse ("--starts", options->starts, error)) == NULL)
    return FALSE;

  if (options->ends != NULL && (end = time_option_parse ("--ends", options->ends, error)) == NULL)
    return FALSE;

  *duration_s = 0;
  if (options->duration != NULL && !duration_option_parse (options->duration, duration_s, error))
    return FALSE;

  if (start != NULL && end != NULL && g_date_time_compare (end, start) <= 0) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--ends must be after --starts");
    return FALSE;
  }

  *starts = g_steal_pointer (&start);
  *ends = g_steal_pointer (&end);

  return TRUE;
}

static gboolean
text_is_blank (const char *text)
{
  for (const char *c = text; *c != '\0'; c++) {
    if (!g_ascii_isspace (*c))
      return FALSE;
  }

  return TRUE;
}

/* Checks the options and builds the request body.
 * Returns: (transfer full): the builder, or NULL with a G_OPTION_ERROR. */
static JsonBuilder *
grant_options_build_body (const GrantOptions *options, GError **error)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(GDateTime) starts = NULL;
  g_autoptr(GDateTime) ends = NULL;
  gint64 duration_s = 0;
  g_auto(GStrv) cameras = NULL;

  if (options->grantee == NULL || options->purpose == NULL) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "%s is required",
                 options->grantee == NULL ? "--grantee" : "--purpose");
    return NULL;
  }

  if (!cims_config_id_is_valid (options->grantee)) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--grantee \"%s\" is not a valid jurisdiction or agency id", options->grantee);
    return NULL;
  }

  if (text_is_blank (options->purpose)) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--purpose is empty");
    return NULL;
  }

  if ((options->cameras != NULL &&
       (cameras = id_list_option_parse ("--cameras", options->cameras, error)) == NULL) ||
      (options->incident_number != NULL &&
       !incident_number_option_check (options->incident_number, error)) ||
      !grant_options_get_times (options, &starts, &ends, &duration_s, error))
    return NULL;

  json_builder_begin_object (builder);
  builder_add_string_member (builder, "grantee", options->grantee);
  builder_add_string_member (builder, "grantee_group", options->group);
  builder_add_strv_member (builder, "cameras", cameras);
  builder_add_time_member (builder, "starts_at", starts);
  builder_add_time_member (builder, "ends_at", ends);
  if (duration_s > 0) {
    json_builder_set_member_name (builder, "duration_s");
    json_builder_add_int_value (builder, duration_s);
  }
  builder_add_string_member (builder, "purpose", options->purpose);
  builder_add_string_member (builder, "incident_number", options->incident_number);
  json_builder_end_object (builder);

  return g_steal_pointer (&builder);
}

int
cims_ctl_grants_create_run (int argc, char **argv)
{
  g_auto(GrantOptions) grant = { 0 };
  const GOptionEntry entries[] = {
    { "grantee", 0, 0, G_OPTION_ARG_STRING, &grant.grantee, "Jurisdiction or agency id that may watch", "J" },
    { "group", 0, 0, G_OPTION_ARG_STRING, &grant.group, "Only this group of the grantee (groups claim)", "G" },
    { "cameras", 0, 0, G_OPTION_ARG_STRING, &grant.cameras, "Comma-separated camera ids (default: all of yours)", "A,B" },
    { "starts", 0, 0, G_OPTION_ARG_STRING, &grant.starts, "Start, ISO 8601 UTC (default: now)", "ISO" },
    { "ends", 0, 0, G_OPTION_ARG_STRING, &grant.ends, "End, ISO 8601 UTC (default: ongoing)", "ISO" },
    { "duration", 0, 0, G_OPTION_ARG_STRING, &grant.duration, "End this many seconds after the start", "S" },
    { "purpose", 0, 0, G_OPTION_ARG_STRING, &grant.purpose, "Why the grant is made (required)", "TEXT" },
    { "incident-number", 0, 0, G_OPTION_ARG_STRING, &grant.incident_number, "Allow viewing only under this incident number", "N" },
    G_OPTION_ENTRY_NULL
  };
  const AdminCommandSpec spec = {
    NULL, "Grants another jurisdiction or an agency live viewing of your cameras.", entries,
  };
  g_auto(CimsCtlClientOptions) options = { 0 };
  g_autoptr(JsonBuilder) builder = NULL;
  g_autoptr(GError) error = NULL;
  int status;

  status = admin_parse (&spec, argc, argv, &options, NULL);
  if (status != CTL_EXIT_OK)
    return status;

  builder = grant_options_build_body (&grant, &error);
  if (builder == NULL)
    return cims_ctl_usage_error (error->message);

  return admin_create_send (&options, "/api/v1/grants", builder, "grant", grant_fields);
}

typedef struct {
  char *incident_number;
  char *cameras;
  char *partners;
  char *ends;
  char *duration;               /* seconds, as given */
  char *description;
} IncidentOptions;

static void
incident_options_clear (IncidentOptions *options)
{
  g_clear_pointer (&options->incident_number, g_free);
  g_clear_pointer (&options->cameras, g_free);
  g_clear_pointer (&options->partners, g_free);
  g_clear_pointer (&options->ends, g_free);
  g_clear_pointer (&options->duration, g_free);
  g_clear_pointer (&options->description, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (IncidentOptions, incident_options_clear)

/* Adds ends_at or duration_s: an incident always has an end, and the hub
 * counts a duration from its own clock. */
static gboolean
incident_options_add_end (const IncidentOptions *options, JsonBuilder *builder, GError **error)
{
  g_autoptr(GDateTime) ends = NULL;
  gint64 duration_s = 0;

  if ((options->ends == NULL) == (options->duration == NULL)) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                 INCIDENT_END_RULE ", because a major incident always has an end");
    return FALSE;
  }

  if (options->ends != NULL) {
    ends = time_option_parse ("--ends", options->ends, error);
    if (ends == NULL)
      return FALSE;
    builder_add_time_member (builder, "ends_at", ends);
    return TRUE;
  }

  if (!duration_option_parse (options->duration, &duration_s, error))
    return FALSE;

  json_builder_set_member_name (builder, "duration_s");
  json_builder_add_int_value (builder, duration_s);

  return TRUE;
}

/* Checks the options and builds the request body.
 * Returns: (transfer full): the builder, or NULL with a G_OPTION_ERROR. */
static JsonBuilder *
incident_options_build_body (const IncidentOptions *options, GError **error)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_auto(GStrv) cameras = NULL;
  g_auto(GStrv) partners = NULL;

  if (options->incident_number == NULL) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "--incident-number is required");
    return NULL;
  }

  if (!incident_number_option_check (options->incident_number, error) ||
      (options->cameras != NULL &&
       (cameras = id_list_option_parse ("--cameras", options->cameras, error)) == NULL) ||
      (options->partners != NULL &&
       (partners = id_list_option_parse ("--partners", options->partners, error)) == NULL))
    return NULL;

  json_builder_begin_object (builder);
  builder_add_string_member (builder, "incident_number", options->incident_number);
  builder_add_strv_member (builder, "cameras", cameras);
  builder_add_strv_member (builder, "partners", partners);
  if (!incident_options_add_end (options, builder, error))
    return NULL;
  builder_add_string_member (builder, "description", options->description);
  json_builder_end_object (builder);

  return g_steal_pointer (&builder);
}

int
cims_ctl_incidents_start_run (int argc, char **argv)
{
  g_auto(IncidentOptions) incident = { 0 };
  const GOptionEntry entries[] = {
    { "incident-number", 0, 0, G_OPTION_ARG_STRING, &incident.incident_number, "The incident's number (required)", "N" },
    { "cameras", 0, 0, G_OPTION_ARG_STRING, &incident.cameras, "Comma-separated camera ids (default: all of yours)", "A,B" },
    { "partners", 0, 0, G_OPTION_ARG_STRING, &incident.partners, "Comma-separated jurisdiction or agency ids (default: every participating jurisdiction)", "A,B" },
    { "ends", 0, 0, G_OPTION_ARG_STRING, &incident.ends, "End, ISO 8601 UTC (this or --duration, not both)", "ISO" },
    { "duration", 0, 0, G_OPTION_ARG_STRING, &incident.duration,
      "End this many seconds from now (this or --ends, not both)", "S" },
    { "description", 0, 0, G_OPTION_ARG_STRING, &incident.description, "What the incident is", "TEXT" },
    G_OPTION_ENTRY_NULL
  };
  const AdminCommandSpec spec = {
    NULL, "Starts mass sharing of your cameras for a major incident. A major incident always has an "
    "end, so " INCIDENT_END_RULE ".",
    entries,
  };
  g_auto(CimsCtlClientOptions) options = { 0 };
  g_autoptr(JsonBuilder) builder = NULL;
  g_autoptr(GError) error = NULL;
  int status;

  status = admin_parse (&spec, argc, argv, &options, NULL);
  if (status != CTL_EXIT_OK)
    return status;

  builder = incident_options_build_body (&incident, &error);
  if (builder == NULL)
    return cims_ctl_usage_error (error->message);

  return admin_create_send (&options, "/api/v1/incidents", builder, "incident", incident_fields);
}
