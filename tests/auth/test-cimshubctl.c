/* SPDX-License-Identifier: Apache-2.0 */
/* Runs the built cimshubctl (path in the CIMSHUBCTL environment variable).
 * Tokens it mints verify with the library, check-config reports FILE:LINE,
 * as the hub's --check-config does (path in CIMSHUB), and usage errors exit
 * with status 2. The admin subcommands send the
 * expected requests to a mock admin API on 127.0.0.1 and print its canned
 * responses. The real hub's API is tested with the hub. */

#include <string.h>

#include <gio/gio.h>
#include <glib.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "auth/auth.h"
#include "auth-test-region.h"

/* Maximum time a cimshubctl run may take before the test fails, in seconds. */
#define RUN_TIMEOUT_S 30

#define TOKEN "test-token.abc-123"

static AuthTestRegion *region;
static CimsConfig *config;
static CimsAuthKeyring *keyring;
static const char *cimshubctl_path;
static const char *cimshub_path;     /* the hub, for its --check-config; NULL skips those checks */

typedef struct {
  int exit_status;
  char *out;
  char *err;
} CtlResult;

static void
ctl_result_free (CtlResult *result)
{
  g_free (result->out);
  g_free (result->err);
  g_free (result);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CtlResult, ctl_result_free)

typedef struct {
  gboolean is_done;
  gboolean is_timed_out;
  char *out;
  char *err;
  GError *error;
} RunState;

static void
run_communicate_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
  RunState *state = user_data;

  g_subprocess_communicate_utf8_finish (G_SUBPROCESS (source), result, &state->out,
                                        &state->err, &state->error);
  state->is_done = TRUE;
}

static gboolean
run_timeout_cb (gpointer user_data)
{
  RunState *state = user_data;

  state->is_timed_out = TRUE;
  return G_SOURCE_REMOVE;
}

/* Runs cimshubctl with @args while the default main context keeps
 * serving the mock hub. CIMSHUB_URL and CIMSHUB_TOKEN are unset unless
 * @env (NULL-terminated NAME=VALUE pairs, may be NULL) sets them. */
static CtlResult *
ctl_runv (const char *const *env, GPtrArray *args)
{
  g_autoptr(GSubprocessLauncher) launcher =
      g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  CtlResult *result = g_new0 (CtlResult, 1);
  RunState state = { 0 };
  guint timeout_id;

  g_subprocess_launcher_unsetenv (launcher, "CIMSHUB_URL");
  g_subprocess_launcher_unsetenv (launcher, "CIMSHUB_TOKEN");
  for (guint i = 0; env != NULL && env[i] != NULL; i++) {
    g_auto(GStrv) pair = g_strsplit (env[i], "=", 2);
    g_subprocess_launcher_setenv (launcher, pair[0], pair[1], TRUE);
  }

  process = g_subprocess_launcher_spawnv (launcher, (const char *const *) args->pdata, &error);
  g_assert_no_error (error);

  timeout_id = g_timeout_add_seconds (RUN_TIMEOUT_S, run_timeout_cb, &state);
  g_subprocess_communicate_utf8_async (process, NULL, NULL, run_communicate_cb, &state);
  while (!state.is_done && !state.is_timed_out)
    g_main_context_iteration (NULL, TRUE);
  g_assert_false (state.is_timed_out);
  g_source_remove (timeout_id);
  g_assert_no_error (state.error);

  g_subprocess_wait (process, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (process));
  result->exit_status = g_subprocess_get_exit_status (process);
  result->out = state.out;
  result->err = state.err;
  g_test_message ("exit %d, stdout:\n%s\nstderr: %s", result->exit_status, result->out, result->err);

  return result;
}

/* Runs cimshubctl with @env and the NULL-terminated arguments. */
static CtlResult *
ctl_run_with_env (const char *const *env, const char *first_arg, ...)
{
  g_autoptr(GPtrArray) args = g_ptr_array_new ();
  va_list ap;

  g_ptr_array_add (args, (char *) cimshubctl_path);
  va_start (ap, first_arg);
  for (const char *arg = first_arg; arg != NULL; arg = va_arg (ap, const char *))
    g_ptr_array_add (args, (char *) arg);
  va_end (ap);
  g_ptr_array_add (args, NULL);

  return ctl_runv (env, args);
}

/* Runs cimshubctl with the NULL-terminated arguments and waits for it. */
static CtlResult *
ctl_run (const char *first_arg, ...)
{
  g_autoptr(GPtrArray) args = g_ptr_array_new ();
  va_list ap;

  g_ptr_array_add (args, (char *) cimshubctl_path);
  va_start (ap, first_arg);
  for (const char *arg = first_arg; arg != NULL; arg = va_arg (ap, const char *))
    g_ptr_array_add (args, (char *) arg);
  va_end (ap);
  g_ptr_array_add (args, NULL);

  return ctl_runv (NULL, args);
}

/* Returns: (transfer full): the single line cimshubctl printed, without
 * its newline. */
static char *
ctl_result_dup_line (const CtlResult *result)
{
  gsize len = strlen (result->out);

  g_assert_cmpuint (len, >, 1);
  g_assert_cmpint (result->out[len - 1], ==, '\n');
  g_assert_null (memchr (result->out, '\n', len - 1));

  return g_strndup (result->out, len - 1);
}

static void
test_cimshubctl_mints_es256_token (void)
{
  g_autofree char *key = auth_test_region_get_private_key_path (region, "boston");
  gint64 before_us = g_get_real_time ();
  g_autoptr(CtlResult) result = ctl_run ("token", "mint", "--key", key,
                                         "--issuer", TEST_ISSUER_BOSTON, "--subject", "u-1001",
                                         "--name", "Pat Doe", "--jurisdiction", "boston",
                                         "--roles", "viewer,auditor", "--permissions", "view, restrict",
                                         "--ttl", "600", "--client", "wall-decoder/2.1",
                                         "--audience", TEST_AUDIENCE, NULL);
  gint64 after_us = g_get_real_time ();
  g_autofree char *token = NULL;
  g_autoptr(CimsAuthIdentity) identity = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (result->exit_status, ==, 0);
  token = ctl_result_dup_line (result);
  identity = cims_auth_token_verify (keyring, token, TEST_AUDIENCE, g_get_real_time (), &error);
  g_assert_no_error (error);

  g_assert_cmpstr (identity->issuer, ==, TEST_ISSUER_BOSTON);
  g_assert_cmpstr (identity->subject, ==, "u-1001");
  g_assert_cmpstr (identity->name, ==, "Pat Doe");
  g_assert_cmpstr (identity->jurisdiction, ==, "boston");
  g_assert_cmpuint (g_strv_length (identity->roles), ==, 2);
  g_assert_true (cims_auth_identity_has_role (identity, "viewer"));
  g_assert_true (cims_auth_identity_has_role (identity, "auditor"));
  g_assert_cmpuint (g_strv_length (identity->permissions), ==, 2);
  g_assert_true (cims_auth_identity_has_permission (identity, "view"));
  g_assert_true (cims_auth_identity_has_permission (identity, "restrict"));
  g_assert_cmpstr (identity->client, ==, "wall-decoder/2.1");
  g_assert_cmpint (identity->issued_at_us, >=, before_us / G_USEC_PER_SEC * G_USEC_PER_SEC);
  g_assert_cmpint (identity->issued_at_us, <=, after_us);
  g_assert_cmpint (identity->expires_at_us - identity->issued_at_us, ==, G_GINT64_CONSTANT (600) * G_USEC_PER_SEC);
}

static void
test_cimshubctl_mints_rs256_token (void)
{
  g_autofree char *key = auth_test_region_get_private_key_path (region, "chelsea");
  g_autoptr(CtlResult) result = ctl_run ("token", "mint", "--key", key,
                                         "--issuer", TEST_ISSUER_CHELSEA, "--subject", "c-77",
                                         "--name", "Ana Ruiz", "--jurisdiction", "chelsea", NULL);
  g_autofree char *token = NULL;
  g_autoptr(CimsAuthIdentity) identity = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (result->exit_status, ==, 0);
  token = ctl_result_dup_line (result);
  identity = cims_auth_token_verify (keyring, token, TEST_AUDIENCE, g_get_real_time (), &error);
  g_assert_no_error (error);

  g_assert_cmpstr (identity->jurisdiction, ==, "chelsea");
  g_assert_cmpuint (g_strv_length (identity->roles), ==, 0);
  g_assert_cmpuint (g_strv_length (identity->permissions), ==, 0);
  g_assert_null (identity->client);
  g_assert_cmpint (identity->expires_at_us - identity->issued_at_us, ==, G_GINT64_CONSTANT (3600) * G_USEC_PER_SEC);
}

static void
test_cimshubctl_mint_requires_key (void)
{
  g_autoptr(CtlResult) result = ctl_run ("token", "mint", "--issuer", TEST_ISSUER_BOSTON,
                                         "--subject", "u-1", "--name", "N",
                                         "--jurisdiction", "boston", NULL);

  g_assert_cmpint (result->exit_status, ==, 2);
  g_assert_cmpstr (result->out, ==, "");
  g_assert_nonnull (strstr (result->err, "--key is required"));
}

static void
test_cimshubctl_mint_reports_missing_key_file (void)
{
  g_autoptr(CtlResult) result = ctl_run ("token", "mint", "--key", "/nonexistent/key.pem",
                                         "--issuer", TEST_ISSUER_BOSTON, "--subject", "u-1",
                                         "--name", "N", "--jurisdiction", "boston", NULL);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_cmpstr (result->out, ==, "");
  g_assert_nonnull (strstr (result->err, "/nonexistent/key.pem"));
}

static void
test_cimshubctl_check_config_accepts_region (void)
{
  g_autoptr(CtlResult) result = ctl_run ("check-config", region->config_path, NULL);
  g_autofree char *expected = g_strdup_printf ("%s: OK (jurisdictions: 4, agencies: 1, "
                                               "cameras: 4, viewer profiles: 1)\n", region->config_path);

  g_assert_cmpint (result->exit_status, ==, 0);
  g_assert_cmpstr (result->out, ==, expected);
  g_assert_cmpstr (result->err, ==, "");
}

static void
test_cimshubctl_check_config_reports_syntax_line (void)
{
  g_autofree char *path = auth_test_region_write_file (region, "syntax.conf",
                                                       "hub: {\n"
                                                       "  http_listen = \"127.0.0.1:18080\";\n"
                                                       "  ice_udp_ports = ;\n"
                                                       "};\n");
  g_autofree char *prefix = g_strconcat (path, ":3: ", NULL);
  g_autoptr(CtlResult) result = ctl_run ("check-config", path, NULL);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_cmpstr (result->out, ==, "");
  g_assert_true (g_str_has_prefix (result->err, prefix));
}

/* Boston's entry starts on line 10 of the region config. Its key file does
 * not exist, which only the keyring notices. */
static void
test_cimshubctl_check_config_reports_key_line (void)
{
  g_autofree char *path = auth_test_region_write_config (region, "no-key.conf", "absent.pub.pem");
  g_autofree char *prefix = g_strconcat (path, ":10: ", NULL);
  g_autoptr(CtlResult) result = ctl_run ("check-config", path, NULL);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_cmpstr (result->out, ==, "");
  g_assert_true (g_str_has_prefix (result->err, prefix));
  g_assert_nonnull (strstr (result->err, "absent.pub.pem"));
}

/* Writes the region's config with the token_key of boston (line 10) and of
 * chelsea (line 13) naming files that do not exist.
 * Returns: (transfer full): the file's path. */
static char *
write_config_without_two_keys (void)
{
  g_autofree char *text = NULL;
  g_autoptr(GString) edited = NULL;
  g_autoptr(GError) error = NULL;

  g_file_get_contents (region->config_path, &text, NULL, &error);
  g_assert_no_error (error);
  edited = g_string_new (text);
  g_assert_cmpuint (g_string_replace (edited, "\"boston.pub.pem\"", "\"absent-boston.pub.pem\"", 0), ==, 1);
  g_assert_cmpuint (g_string_replace (edited, "\"chelsea.pub.pem\"", "\"absent-chelsea.pub.pem\"", 0), ==, 1);

  return auth_test_region_write_file (region, "two-absent-keys.conf", edited->str);
}

/* Checks that @err names the configuration @path on exactly two lines, one
 * "PATH:LINE: message" line for each absent key file, with the path once. */
static void
assert_reports_both_absent_keys (const char *err, const char *path)
{
  static const char *const expected[][2] = {
    { "10", "absent-boston.pub.pem" },
    { "13", "absent-chelsea.pub.pem" },
  };
  g_auto(GStrv) lines = g_strsplit (err, "\n", -1);
  g_autoptr(GPtrArray) config_lines = g_ptr_array_new ();

  /* Other lines, such as GStreamer's registry warnings, are not checked. */
  for (guint i = 0; lines[i] != NULL; i++) {
    if (strstr (lines[i], path) != NULL)
      g_ptr_array_add (config_lines, lines[i]);
  }

  g_assert_cmpuint (config_lines->len, ==, G_N_ELEMENTS (expected));
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++) {
    const char *line = g_ptr_array_index (config_lines, i);
    g_autofree char *prefix = g_strdup_printf ("%s:%s: ", path, expected[i][0]);

    g_assert_true (g_str_has_prefix (line, prefix));
    g_assert_null (strstr (line + strlen (prefix), path));
    g_assert_nonnull (strstr (line, expected[i][1]));
  }
}

static void
test_cimshubctl_check_config_reports_every_key (void)
{
  g_autofree char *path = write_config_without_two_keys ();
  g_autoptr(CtlResult) result = ctl_run ("check-config", path, NULL);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_cmpstr (result->out, ==, "");
  assert_reports_both_absent_keys (result->err, path);
}

/* The hub's own --check-config prints the same lines as cimshubctl. */
static void
test_cimshubctl_hub_check_config_reports_every_key (void)
{
  g_autofree char *path = write_config_without_two_keys ();
  g_autoptr(GPtrArray) args = g_ptr_array_new ();
  g_autoptr(CtlResult) result = NULL;

  if (cimshub_path == NULL) {
    g_test_skip ("CIMSHUB is not set");
    return;
  }

  g_ptr_array_add (args, (char *) cimshub_path);
  g_ptr_array_add (args, "--check-config");
  g_ptr_array_add (args, path);
  g_ptr_array_add (args, NULL);
  result = ctl_runv (NULL, args);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_cmpstr (result->out, ==, "");
  assert_reports_both_absent_keys (result->err, path);
}

static void
test_cimshubctl_check_config_requires_file (void)
{
  g_autoptr(CtlResult) result = ctl_run ("check-config", NULL);

  g_assert_cmpint (result->exit_status, ==, 2);
  g_assert_nonnull (strstr (result->err, "FILE"));
}

static void
test_cimshubctl_rejects_unknown_subcommand (void)
{
  g_autoptr(CtlResult) result = ctl_run ("frobnicate", NULL);

  g_assert_cmpint (result->exit_status, ==, 2);
  g_assert_cmpstr (result->out, ==, "");
  g_assert_nonnull (strstr (result->err, "unknown subcommand \"frobnicate\""));
}

static void
test_cimshubctl_rejects_unknown_token_subcommand (void)
{
  g_autoptr(CtlResult) result = ctl_run ("token", "burn", NULL);

  g_assert_cmpint (result->exit_status, ==, 2);
  g_assert_cmpstr (result->out, ==, "");
  g_assert_nonnull (strstr (result->err, "unknown subcommand \"token burn\""));
  g_assert_nonnull (strstr (result->err, "\n  mint "));
}

/* Each command group and the subcommands it must list, one per line. */
static const char *const command_groups[][6] = {
  { "cameras", "list", NULL },
  { "grants", "list", "show", "create", "revoke", NULL },
  { "incidents", "list", "start", "end", NULL },
  { "sessions", "list", "end", NULL },
  { "audit", "verify", "list", NULL },
  { "report", "annual", NULL },
  { "token", "mint", NULL },
};

/* Checks that @text lists every subcommand of @group as a line "  NAME ...". */
static void
assert_lists_group (const char *text, const char *const *group)
{
  g_autofree char *usage = g_strdup_printf ("Usage: cimshubctl %s SUBCOMMAND", group[0]);

  g_assert_nonnull (strstr (text, usage));
  for (guint i = 1; group[i] != NULL; i++) {
    g_autofree char *line = g_strdup_printf ("\n  %s ", group[i]);

    g_assert_nonnull (strstr (text, line));
  }
}

static void
test_cimshubctl_group_help_lists_subcommands (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (command_groups); i++) {
    g_autoptr(CtlResult) result = ctl_run (command_groups[i][0], "--help", NULL);

    g_assert_cmpint (result->exit_status, ==, 0);
    g_assert_cmpstr (result->err, ==, "");
    assert_lists_group (result->out, command_groups[i]);
  }
}

static void
test_cimshubctl_group_requires_subcommand (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (command_groups); i++) {
    g_autoptr(CtlResult) result = ctl_run (command_groups[i][0], NULL);
    g_autofree char *expected = g_strdup_printf ("missing subcommand after \"%s\"", command_groups[i][0]);

    g_assert_cmpint (result->exit_status, ==, 2);
    g_assert_cmpstr (result->out, ==, "");
    g_assert_nonnull (strstr (result->err, expected));
    assert_lists_group (result->err, command_groups[i]);
  }
}

static void
test_cimshubctl_help_lists_subcommands (void)
{
  const char *const help_args[] = { "--help", "help", NULL };

  for (guint i = 0; help_args[i] != NULL; i++) {
    g_autoptr(CtlResult) result = ctl_run (help_args[i], NULL);

    g_assert_cmpint (result->exit_status, ==, 0);
    g_assert_nonnull (strstr (result->out, "token mint"));
    g_assert_nonnull (strstr (result->out, "check-config"));
  }
}

/* ------------------------------------------------------------------ */
/* Admin subcommands against a mock admin API */

#define GRANT_ACTIVE_JSON \
  "{\"id\": \"g-00000000000000a1\", \"owner\": \"boston\", \"grantee_kind\": \"jurisdiction\"," \
  " \"grantee\": \"chelsea\", \"grantee_group\": \"detectives\"," \
  " \"cameras\": [\"bos-0001\", \"bos-0003\"], \"starts_at\": \"2025-06-15T12:00:00Z\"," \
  " \"ends_at\": null, \"purpose\": \"Joint operation on the waterfront\"," \
  " \"incident_number\": \"BPD-2025-0001\", \"authorized_by\": \"b-7\"," \
  " \"authorized_by_name\": \"Sam Chief\", \"authorized_at\": \"2025-06-15T11:58:00Z\"," \
  " \"revoked_by\": null, \"revoked_at\": null, \"active\": true}"

#define GRANT_REVOKED_JSON \
  "{\"id\": \"g-00000000000000a2\", \"owner\": \"boston\", \"grantee_kind\": \"agency\"," \
  " \"grantee\": \"state-police\", \"grantee_group\": null, \"cameras\": null," \
  " \"starts_at\": \"2025-06-01T08:00:00Z\", \"ends_at\": \"2025-06-30T08:00:00Z\"," \
  " \"purpose\": \"Parade\", \"incident_number\": null, \"authorized_by\": \"b-7\"," \
  " \"authorized_by_name\": \"Sam Chief\", \"authorized_at\": \"2025-06-01T07:00:00Z\"," \
  " \"revoked_by\": \"b-7\", \"revoked_at\": \"2025-06-02T09:00:00Z\", \"active\": false}"

#define GRANT_SCHEDULED_JSON \
  "{\"id\": \"g-00000000000000a3\", \"owner\": \"boston\", \"grantee_kind\": \"jurisdiction\"," \
  " \"grantee\": \"everett\", \"grantee_group\": null, \"cameras\": [\"bos-0002\"]," \
  " \"starts_at\": \"2099-01-01T00:00:00Z\", \"ends_at\": \"2099-01-02T00:00:00Z\"," \
  " \"purpose\": \"New Year\", \"incident_number\": null, \"authorized_by\": \"b-7\"," \
  " \"authorized_by_name\": \"Sam Chief\", \"authorized_at\": \"2025-06-01T07:00:00Z\"," \
  " \"revoked_by\": null, \"revoked_at\": null, \"active\": false}"

#define INCIDENT_JSON \
  "{\"id\": \"i-00000000000000b1\", \"owner\": \"boston\", \"incident_number\": \"BPD-2025-0042\"," \
  " \"cameras\": null, \"partners\": [\"chelsea\", \"state-police\"]," \
  " \"starts_at\": \"2025-06-15T14:00:00Z\", \"ends_at\": \"2025-06-15T20:00:00Z\"," \
  " \"description\": \"Marathon finish line\", \"declared_by\": \"b-9\"," \
  " \"declared_by_name\": \"Lee Commander\", \"ended_by\": null, \"ended_at\": null, \"active\": true}"

#define INCIDENT_ENDED_JSON \
  "{\"id\": \"i-00000000000000b2\", \"owner\": \"boston\", \"incident_number\": \"BPD-2025-0040\"," \
  " \"cameras\": [\"bos-0001\"], \"partners\": null," \
  " \"starts_at\": \"2025-06-10T14:00:00Z\", \"ends_at\": \"2025-06-10T20:00:00Z\"," \
  " \"description\": \"Street fair\", \"declared_by\": \"b-9\"," \
  " \"declared_by_name\": \"Lee Commander\", \"ended_by\": \"b-9\"," \
  " \"ended_at\": \"2025-06-10T18:00:00Z\", \"active\": false}"

/* A mock of the hub's admin API. It sends one canned response to every
 * request and records the last request. */
typedef struct {
  SoupServer *server;
  char *url;                    /* "http://127.0.0.1:PORT/" */
  guint status;
  char *answer;                 /* JSON text, or NULL for an empty body */
  const char *answer_type;

  guint n_requests;
  char *method;
  char *path;
  char *authorization;
  char *content_type;
  char *body;
} MockHub;

static void
mock_hub_request_cb (SoupServer *server, SoupServerMessage *msg, const char *path,
                     GHashTable *query, gpointer user_data)
{
  MockHub *hub = user_data;
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  SoupMessageBody *body = soup_server_message_get_request_body (msg);

  hub->n_requests++;
  g_free (hub->method);
  hub->method = g_strdup (soup_server_message_get_method (msg));
  g_free (hub->path);
  hub->path = g_strdup (g_uri_get_path (soup_server_message_get_uri (msg)));
  g_free (hub->authorization);
  hub->authorization = g_strdup (soup_message_headers_get_one (headers, "Authorization"));
  g_free (hub->content_type);
  hub->content_type = g_strdup (soup_message_headers_get_content_type (headers, NULL));
  g_free (hub->body);
  hub->body = g_strndup (body->data, body->length);

  soup_server_message_set_status (msg, hub->status, NULL);
  if (hub->answer != NULL)
    soup_server_message_set_response (msg, hub->answer_type, SOUP_MEMORY_COPY,
                                      hub->answer, strlen (hub->answer));
}

/* Returns: (transfer full): a mock listening on 127.0.0.1 that responds
 * with @status and @answer (JSON, may be NULL). */
static MockHub *
mock_hub_new (guint status, const char *answer)
{
  MockHub *hub = g_new0 (MockHub, 1);
  g_autoptr(GError) error = NULL;
  GSList *uris;

  hub->status = status;
  hub->answer = g_strdup (answer);
  hub->answer_type = "application/json";
  hub->server = soup_server_new (NULL, NULL);
  soup_server_add_handler (hub->server, NULL, mock_hub_request_cb, hub, NULL);
  soup_server_listen_local (hub->server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error);
  g_assert_no_error (error);

  uris = soup_server_get_uris (hub->server);
  g_assert_nonnull (uris);
  hub->url = g_uri_to_string (uris->data);
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);

  return hub;
}

static void
mock_hub_free (MockHub *hub)
{
  soup_server_disconnect (hub->server);
  g_object_unref (hub->server);
  g_free (hub->url);
  g_free (hub->answer);
  g_free (hub->method);
  g_free (hub->path);
  g_free (hub->authorization);
  g_free (hub->content_type);
  g_free (hub->body);
  g_free (hub);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MockHub, mock_hub_free)

/* Checks that the mock got exactly one @method @path request with the
 * test's Bearer token. */
static void
assert_request (const MockHub *hub, const char *method, const char *path)
{
  g_assert_cmpuint (hub->n_requests, ==, 1);
  g_assert_cmpstr (hub->method, ==, method);
  g_assert_cmpstr (hub->path, ==, path);
  g_assert_cmpstr (hub->authorization, ==, "Bearer " TOKEN);
}

/* Returns: (transfer full): the JSON object body of the mock's last
 * request, which must be a POST with Content-Type application/json. */
static JsonObject *
request_dup_body (const MockHub *hub)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  JsonNode *root;

  g_assert_cmpstr (hub->content_type, ==, "application/json");
  json_parser_load_from_data (parser, hub->body, -1, &error);
  g_assert_no_error (error);
  root = json_parser_get_root (parser);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (root));

  return json_object_ref (json_node_get_object (root));
}

/* Returns: (transfer full): the array member as one comma-separated text. */
static char *
body_dup_list (JsonObject *body, const char *member)
{
  JsonArray *array = json_object_get_array_member (body, member);
  g_autoptr(GString) text = g_string_new (NULL);

  for (guint i = 0; i < json_array_get_length (array); i++)
    g_string_append_printf (text, "%s%s", i > 0 ? "," : "", json_array_get_string_element (array, i));

  return g_string_free (g_steal_pointer (&text), FALSE);
}

/* Returns (transfer none) the output line that starts with @prefix. */
static const char *
output_find_line (char **lines, const char *prefix)
{
  for (guint i = 0; lines[i] != NULL; i++) {
    if (g_str_has_prefix (lines[i], prefix))
      return lines[i];
  }

  g_assert_not_reached ();
}

/* Checks that @value starts in @row at the column where @header starts in
 * the table's header line. */
static void
assert_column (const char *header_line, const char *row, const char *header, const char *value)
{
  const char *header_at = strstr (header_line, header);
  const char *value_at = strstr (row, value);

  g_assert_nonnull (header_at);
  g_assert_nonnull (value_at);
  g_assert_cmpint (value_at - row, ==, header_at - header_line);
}

static void
test_cimshubctl_cameras_list_prints_table (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_OK,
      "{\"cameras\": ["
      "{\"id\": \"bos-0001\", \"jurisdiction\": \"boston\", \"location\": \"Boylston St at Dartmouth St\","
      " \"brand_model\": \"Axis Q6135-LE\", \"installed\": \"2019-05-02\", \"restricted\": false,"
      " \"out_of_service\": false, \"viewable\": true, \"rule\": \"own-jurisdiction\", \"reason\": \"ok\"},"
      "{\"id\": \"bos-0002\", \"jurisdiction\": \"boston\", \"location\": \"Tremont St\\nat Park St\","
      " \"brand_model\": \"Axis P1455-LE\", \"installed\": \"2021-03-15\", \"restricted\": true,"
      " \"out_of_service\": false, \"viewable\": false, \"rule\": \"restricted\", \"reason\": \"no\"}]}");
  g_autoptr(CtlResult) result = ctl_run ("cameras", "list", "--hub", hub->url, "--token", TOKEN, NULL);
  g_auto(GStrv) lines = NULL;
  const char *header, *first, *second;

  g_assert_cmpint (result->exit_status, ==, 0);
  assert_request (hub, "GET", "/api/v1/cameras");
  g_assert_cmpstr (hub->body, ==, "");

  lines = g_strsplit (result->out, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 4);
  header = output_find_line (lines, "ID ");
  first = output_find_line (lines, "bos-0001 ");
  second = output_find_line (lines, "bos-0002 ");
  assert_column (header, first, "LOCATION", "Boylston St at Dartmouth St");
  assert_column (header, first, "VIEWABLE", "yes");
  assert_column (header, first, "RULE", "own-jurisdiction");
  assert_column (header, second, "LOCATION", "Tremont St?at Park St");
  assert_column (header, second, "RESTRICTED", "yes");
  assert_column (header, second, "RULE", "restricted");
}

static void
test_cimshubctl_cameras_list_prints_json (void)
{
  const char *answer = "{\"cameras\": []}";
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_OK, answer);
  g_autoptr(CtlResult) result = ctl_run ("cameras", "list", "--json", "--hub", hub->url,
                                         "--token", TOKEN, NULL);

  g_assert_cmpint (result->exit_status, ==, 0);
  assert_request (hub, "GET", "/api/v1/cameras");
  g_assert_cmpstr (result->out, ==, "{\"cameras\": []}\n");
}

static void
test_cimshubctl_grants_list_prints_table (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_OK,
      "{\"grants\": [" GRANT_ACTIVE_JSON ", " GRANT_REVOKED_JSON ", " GRANT_SCHEDULED_JSON "]}");
  g_autoptr(CtlResult) result = ctl_run ("grants", "list", "--hub", hub->url, "--token", TOKEN, NULL);
  g_auto(GStrv) lines = NULL;
  const char *header, *active, *revoked, *scheduled;

  g_assert_cmpint (result->exit_status, ==, 0);
  assert_request (hub, "GET", "/api/v1/grants");

  lines = g_strsplit (result->out, "\n", -1);
  header = output_find_line (lines, "ID ");
  active = output_find_line (lines, "g-00000000000000a1 ");
  revoked = output_find_line (lines, "g-00000000000000a2 ");
  scheduled = output_find_line (lines, "g-00000000000000a3 ");
  assert_column (header, active, "GRANTEE", "chelsea/detectives");
  assert_column (header, active, "CAMERAS", "bos-0001,bos-0003");
  assert_column (header, active, "ENDS", "ongoing");
  assert_column (header, active, "INCIDENT", "BPD-2025-0001");
  assert_column (header, active, "STATE", "active");
  assert_column (header, revoked, "GRANTEE", "state-police");
  assert_column (header, revoked, "CAMERAS", "all");
  assert_column (header, revoked, "STATE", "revoked");
  assert_column (header, scheduled, "STATE", "scheduled");
}

static void
test_cimshubctl_grants_list_reports_empty (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_OK, "{\"grants\": []}");
  g_autoptr(CtlResult) result = ctl_run ("grants", "list", "--hub", hub->url, "--token", TOKEN, NULL);

  g_assert_cmpint (result->exit_status, ==, 0);
  g_assert_cmpstr (result->out, ==, "No grants.\n");
}

static void
test_cimshubctl_grants_show_prints_grant (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_OK, "{\"grant\": " GRANT_ACTIVE_JSON "}");
  g_autoptr(CtlResult) result = ctl_run ("grants", "show", "g-00000000000000a1", "--hub", hub->url,
                                         "--token", TOKEN, NULL);
  g_auto(GStrv) lines = NULL;

  g_assert_cmpint (result->exit_status, ==, 0);
  assert_request (hub, "GET", "/api/v1/grants/g-00000000000000a1");

  lines = g_strsplit (result->out, "\n", -1);
  g_assert_cmpstr (output_find_line (lines, "Grantee:"), ==, "Grantee:           chelsea");
  g_assert_cmpstr (output_find_line (lines, "Group:"), ==, "Group:             detectives");
  g_assert_cmpstr (output_find_line (lines, "Ends:"), ==, "Ends:              ongoing");
  g_assert_cmpstr (output_find_line (lines, "Authorized by:"), ==, "Authorized by:     Sam Chief");
  g_assert_cmpstr (output_find_line (lines, "Revoked at:"), ==, "Revoked at:        -");
}

/* Reads one request from a connection to the raw mock below, stores its
 * request line and responds 404 with a JSON reason. */
static gboolean
raw_hub_incoming_cb (GSocketService *service, GSocketConnection *connection,
                     GObject *source, gpointer user_data)
{
  static const char answer[] = "{\"error\": \"not-found\", \"reason\": \"No such grant.\"}";
  char **request_line = user_data;
  g_autoptr(GDataInputStream) input =
      g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (connection)));
  GOutputStream *output = g_io_stream_get_output_stream (G_IO_STREAM (connection));
  g_autofree char *response = NULL;
  char *line;

  g_filter_input_stream_set_close_base_stream (G_FILTER_INPUT_STREAM (input), FALSE);
  g_data_input_stream_set_newline_type (input, G_DATA_STREAM_NEWLINE_TYPE_CR_LF);
  *request_line = g_data_input_stream_read_line (input, NULL, NULL, NULL);
  while ((line = g_data_input_stream_read_line (input, NULL, NULL, NULL)) != NULL && line[0] != '\0')
    g_free (line);
  g_free (line);

  response = g_strdup_printf ("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                              "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                              strlen (answer), answer);
  g_output_stream_write_all (output, response, strlen (response), NULL, NULL, NULL);
  g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);

  return TRUE;
}

/* An id is one path segment, so a slash in it is percent-encoded. A raw
 * socket server shows the request line as sent, before any decoding. */
static void
test_cimshubctl_grants_show_escapes_id (void)
{
  g_autoptr(GSocketService) service = g_socket_service_new ();
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any_port = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *request_line = NULL;
  g_autofree char *url = NULL;
  g_autoptr(CtlResult) result = NULL;

  g_socket_listener_add_address (G_SOCKET_LISTENER (service), any_port, G_SOCKET_TYPE_STREAM,
                                 G_SOCKET_PROTOCOL_TCP, NULL, &bound, &error);
  g_assert_no_error (error);
  g_signal_connect (service, "incoming", G_CALLBACK (raw_hub_incoming_cb), &request_line);
  url = g_strdup_printf ("http://127.0.0.1:%u", g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));

  result = ctl_run ("grants", "show", "g-1/../../sessions", "--hub", url, "--token", TOKEN, NULL);
  g_socket_service_stop (service);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_cmpstr (request_line, ==, "GET /api/v1/grants/g-1%2F..%2F..%2Fsessions HTTP/1.1");
  g_assert_nonnull (strstr (result->err, "No such grant. (HTTP 404)"));
}

static void
test_cimshubctl_grants_create_sends_every_field (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_CREATED, "{\"grant\": " GRANT_ACTIVE_JSON "}");
  g_autoptr(CtlResult) result = ctl_run ("grants", "create", "--grantee", "chelsea",
                                         "--group", "detectives", "--cameras", "bos-0001, bos-0003",
                                         "--starts", "2025-06-15T14:00:00+02:00",
                                         "--ends", "2025-06-16T12:00:00Z",
                                         "--purpose", "Joint operation on the waterfront",
                                         "--incident-number", "BPD-2025-0001",
                                         "--hub", hub->url, "--token", TOKEN, NULL);
  g_autoptr(JsonObject) body = NULL;
  g_autofree char *cameras = NULL;
  g_auto(GStrv) lines = NULL;

  g_assert_cmpint (result->exit_status, ==, 0);
  assert_request (hub, "POST", "/api/v1/grants");
  body = request_dup_body (hub);
  cameras = body_dup_list (body, "cameras");
  g_assert_cmpuint (json_object_get_size (body), ==, 7);
  g_assert_cmpstr (json_object_get_string_member (body, "grantee"), ==, "chelsea");
  g_assert_cmpstr (json_object_get_string_member (body, "grantee_group"), ==, "detectives");
  g_assert_cmpstr (cameras, ==, "bos-0001,bos-0003");
  g_assert_cmpstr (json_object_get_string_member (body, "starts_at"), ==, "2025-06-15T12:00:00Z");
  g_assert_cmpstr (json_object_get_string_member (body, "ends_at"), ==, "2025-06-16T12:00:00Z");
  g_assert_cmpstr (json_object_get_string_member (body, "purpose"), ==, "Joint operation on the waterfront");
  g_assert_cmpstr (json_object_get_string_member (body, "incident_number"), ==, "BPD-2025-0001");

  lines = g_strsplit (result->out, "\n", -1);
  g_assert_cmpstr (output_find_line (lines, "ID:"), ==, "ID:                g-00000000000000a1");
}

/* Without --starts, --ends or --cameras the hub applies its defaults:
 * start now, ongoing, all of the owner's cameras. */
static void
test_cimshubctl_grants_create_omits_unset_fields (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_CREATED, "{\"grant\": " GRANT_ACTIVE_JSON "}");
  g_autoptr(CtlResult) result = ctl_run ("grants", "create", "--grantee", "state-police",
                                         "--purpose", "Parade", "--hub", hub->url,
                                         "--token", TOKEN, NULL);
  g_autoptr(JsonObject) body = NULL;

  g_assert_cmpint (result->exit_status, ==, 0);
  assert_request (hub, "POST", "/api/v1/grants");
  body = request_dup_body (hub);
  g_assert_cmpuint (json_object_get_size (body), ==, 2);
  g_assert_cmpstr (json_object_get_string_member (body, "grantee"), ==, "state-police");
  g_assert_cmpstr (json_object_get_string_member (body, "purpose"), ==, "Parade");
}

/* A duration goes to the hub as duration_s, which counts it from the
 * grant's start, so the grant lasts exactly that long. */
static void
test_cimshubctl_grants_create_sends_duration_with_start (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_CREATED, "{\"grant\": " GRANT_ACTIVE_JSON "}");
  g_autoptr(CtlResult) result = ctl_run ("grants", "create", "--grantee", "chelsea",
                                         "--starts", "2025-06-15T12:00:00Z", "--duration", "5400",
                                         "--purpose", "Search", "--hub", hub->url,
                                         "--token", TOKEN, NULL);
  g_autoptr(JsonObject) body = NULL;

  g_assert_cmpint (result->exit_status, ==, 0);
  body = request_dup_body (hub);
  g_assert_cmpstr (json_object_get_string_member (body, "starts_at"), ==, "2025-06-15T12:00:00Z");
  g_assert_cmpint (json_object_get_int_member (body, "duration_s"), ==, 5400);
  g_assert_false (json_object_has_member (body, "ends_at"));
}

/* Without --starts the hub starts the grant now and counts the duration
 * from there, not from cimshubctl's clock. */
static void
test_cimshubctl_grants_create_sends_duration_alone (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_CREATED, "{\"grant\": " GRANT_ACTIVE_JSON "}");
  g_autoptr(CtlResult) result = ctl_run ("grants", "create", "--grantee", "chelsea",
                                         "--duration", "600", "--purpose", "Search",
                                         "--hub", hub->url, "--token", TOKEN, NULL);
  g_autoptr(JsonObject) body = NULL;

  g_assert_cmpint (result->exit_status, ==, 0);
  body = request_dup_body (hub);
  g_assert_false (json_object_has_member (body, "starts_at"));
  g_assert_false (json_object_has_member (body, "ends_at"));
  g_assert_cmpint (json_object_get_int_member (body, "duration_s"), ==, 600);
}

/* Each bad command line exits with status 2 before any request. */
static void
test_cimshubctl_grants_create_rejects_bad_options (void)
{
  const struct {
    const char *args[6];
    const char *message;
  } cases[] = {
    { { "--grantee", "chelsea", NULL }, "--purpose is required" },
    { { "--purpose", "Search", NULL }, "--grantee is required" },
    { { "--grantee", "Chelsea!", "--purpose", "Search", NULL }, "\"Chelsea!\" is not a valid" },
    { { "--grantee", "chelsea", "--purpose", " ", NULL }, "--purpose is empty" },
    { { "--grantee", "chelsea", "--purpose", "S", "--ends", "tomorrow" }, "\"tomorrow\" is not an ISO 8601 time" },
    { { "--grantee", "chelsea", "--purpose", "S", "--duration", "-5" }, "--duration \"-5\" is invalid" },
    { { "--grantee", "chelsea", "--purpose", "S", "--duration", "0" }, "--duration \"0\" is invalid" },
    { { "--grantee", "chelsea", "--purpose", "S", "--duration", "ten" }, "--duration \"ten\" is invalid" },
    { { "--grantee", "chelsea", "--purpose", "S", "--duration", "316224001" }, "--duration \"316224001\" is invalid" },
    { { "--grantee", "chelsea", "--purpose", "S", "--cameras", "bos 1" }, "\"bos 1\" is not a valid id" },
    { { "--grantee", "chelsea", "--purpose", "S", "--cameras", " , " }, "--cameras lists no id" },
    { { "--grantee", "chelsea", "--purpose", "S", "--incident-number", "x" }, "--incident-number \"x\" is invalid" },
  };
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_CREATED, "{\"grant\": " GRANT_ACTIVE_JSON "}");

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr(GPtrArray) args = g_ptr_array_new ();
    g_autoptr(CtlResult) result = NULL;
    const char *const tail[] = { "--hub", hub->url, "--token", TOKEN };

    g_ptr_array_add (args, (char *) cimshubctl_path);
    g_ptr_array_add (args, "grants");
    g_ptr_array_add (args, "create");
    for (guint j = 0; j < G_N_ELEMENTS (cases[i].args) && cases[i].args[j] != NULL; j++)
      g_ptr_array_add (args, (char *) cases[i].args[j]);
    for (guint j = 0; j < G_N_ELEMENTS (tail); j++)
      g_ptr_array_add (args, (char *) tail[j]);
    g_ptr_array_add (args, NULL);

    result = ctl_runv (NULL, args);
    g_assert_cmpint (result->exit_status, ==, 2);
    g_assert_nonnull (strstr (result->err, cases[i].message));
    g_assert_cmpstr (result->out, ==, "");
  }

  g_assert_cmpuint (hub->n_requests, ==, 0);
}

static void
test_cimshubctl_grants_create_rejects_ends_with_duration (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_CREATED, "{\"grant\": " GRANT_ACTIVE_JSON "}");
  g_autoptr(CtlResult) result = ctl_run ("grants", "create", "--grantee", "chelsea",
                                         "--ends", "2025-06-16T12:00:00Z", "--duration", "60",
                                         "--purpose", "Search", "--hub", hub->url,
                                         "--token", TOKEN, NULL);

  g_assert_cmpint (result->exit_status, ==, 2);
  g_assert_nonnull (strstr (result->err, "either --ends or --duration"));
  g_assert_cmpuint (hub->n_requests, ==, 0);
}

static void
test_cimshubctl_grants_revoke_sends_delete (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_OK,
                                         "{\"grant\": " GRANT_REVOKED_JSON ", \"sessions_ended\": 2}");
  g_autoptr(CtlResult) result = ctl_run ("grants", "revoke", "g-00000000000000a2", "--hub", hub->url,
                                         "--token", TOKEN, NULL);

  g_assert_cmpint (result->exit_status, ==, 0);
  assert_request (hub, "DELETE", "/api/v1/grants/g-00000000000000a2");
  g_assert_cmpstr (result->out, ==, "Revoked grant g-00000000000000a2.\nSessions ended: 2\n");
}

static void
test_cimshubctl_grants_revoke_requires_id (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_OK, "{}");
  g_autoptr(CtlResult) result = ctl_run ("grants", "revoke", "--hub", hub->url, "--token", TOKEN, NULL);

  g_assert_cmpint (result->exit_status, ==, 2);
  g_assert_nonnull (strstr (result->err, "expected the ID argument"));
  g_assert_cmpuint (hub->n_requests, ==, 0);
}

static void
test_cimshubctl_incidents_list_prints_table (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_OK,
      "{\"incidents\": [" INCIDENT_JSON ", " INCIDENT_ENDED_JSON "]}");
  g_autoptr(CtlResult) result = ctl_run ("incidents", "list", "--hub", hub->url, "--token", TOKEN, NULL);
  g_auto(GStrv) lines = NULL;
  const char *header, *active, *ended;

  g_assert_cmpint (result->exit_status, ==, 0);
  assert_request (hub, "GET", "/api/v1/incidents");

  lines = g_strsplit (result->out, "\n", -1);
  header = output_find_line (lines, "ID ");
  active = output_find_line (lines, "i-00000000000000b1 ");
  ended = output_find_line (lines, "i-00000000000000b2 ");
  assert_column (header, active, "NUMBER", "BPD-2025-0042");
  assert_column (header, active, "CAMERAS", "all");
  assert_column (header, active, "PARTNERS", "chelsea,state-police");
  assert_column (header, active, "STATE", "active");
  assert_column (header, active, "DESCRIPTION", "Marathon finish line");
  assert_column (header, ended, "PARTNERS", "all participating");
  assert_column (header, ended, "STATE", "ended");
}

static void
test_cimshubctl_incidents_start_sends_duration (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_CREATED, "{\"incident\": " INCIDENT_JSON "}");
  g_autoptr(CtlResult) result = ctl_run ("incidents", "start", "--incident-number", "BPD-2025-0042",
                                         "--cameras", "bos-0001,bos-0002",
                                         "--partners", "chelsea,state-police",
                                         "--duration", "21600",
                                         "--description", "Marathon finish line",
                                         "--hub", hub->url, "--token", TOKEN, NULL);
  g_autoptr(JsonObject) body = NULL;
  g_autofree char *cameras = NULL;
  g_autofree char *partners = NULL;
  g_auto(GStrv) lines = NULL;

  g_assert_cmpint (result->exit_status, ==, 0);
  assert_request (hub, "POST", "/api/v1/incidents");
  body = request_dup_body (hub);
  cameras = body_dup_list (body, "cameras");
  partners = body_dup_list (body, "partners");
  g_assert_cmpuint (json_object_get_size (body), ==, 5);
  g_assert_cmpstr (json_object_get_string_member (body, "incident_number"), ==, "BPD-2025-0042");
  g_assert_cmpstr (cameras, ==, "bos-0001,bos-0002");
  g_assert_cmpstr (partners, ==, "chelsea,state-police");
  g_assert_cmpint (json_object_get_int_member (body, "duration_s"), ==, 21600);
  g_assert_cmpstr (json_object_get_string_member (body, "description"), ==, "Marathon finish line");

  lines = g_strsplit (result->out, "\n", -1);
  g_assert_cmpstr (output_find_line (lines, "Partners:"), ==, "Partners:         chelsea,state-police");
  g_assert_cmpstr (output_find_line (lines, "Cameras:"), ==, "Cameras:          all of the owner's");
}

static void
test_cimshubctl_incidents_start_sends_ends (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_CREATED, "{\"incident\": " INCIDENT_JSON "}");
  g_autoptr(CtlResult) result = ctl_run ("incidents", "start", "--incident-number", "BPD-2025-0042",
                                         "--ends", "2025-06-15T20:00:00Z",
                                         "--hub", hub->url, "--token", TOKEN, NULL);
  g_autoptr(JsonObject) body = NULL;

  g_assert_cmpint (result->exit_status, ==, 0);
  body = request_dup_body (hub);
  g_assert_cmpuint (json_object_get_size (body), ==, 2);
  g_assert_cmpstr (json_object_get_string_member (body, "incident_number"), ==, "BPD-2025-0042");
  g_assert_cmpstr (json_object_get_string_member (body, "ends_at"), ==, "2025-06-15T20:00:00Z");
}

static void
test_cimshubctl_incidents_start_requires_one_end (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_CREATED, "{\"incident\": " INCIDENT_JSON "}");
  g_autoptr(CtlResult) none = ctl_run ("incidents", "start", "--incident-number", "BPD-2025-0042",
                                       "--hub", hub->url, "--token", TOKEN, NULL);
  g_autoptr(CtlResult) both = ctl_run ("incidents", "start", "--incident-number", "BPD-2025-0042",
                                       "--ends", "2025-06-15T20:00:00Z", "--duration", "60",
                                       "--hub", hub->url, "--token", TOKEN, NULL);
  g_autoptr(CtlResult) no_number = ctl_run ("incidents", "start", "--duration", "60",
                                            "--hub", hub->url, "--token", TOKEN, NULL);

  g_assert_cmpint (none->exit_status, ==, 2);
  g_assert_nonnull (strstr (none->err, "exactly one of --ends and --duration"));
  g_assert_cmpint (both->exit_status, ==, 2);
  g_assert_nonnull (strstr (both->err, "exactly one of --ends and --duration"));
  g_assert_cmpint (no_number->exit_status, ==, 2);
  g_assert_nonnull (strstr (no_number->err, "--incident-number is required"));
  g_assert_cmpuint (hub->n_requests, ==, 0);
}

/* The help states the rule for the end in the words of the error, so an
 * operator learns it before the first call. */
static void
test_cimshubctl_incidents_start_help_states_end_rule (void)
{
  const char *rule = "give exactly one of --ends and --duration";
  g_autoptr(CtlResult) help = ctl_run ("incidents", "start", "--help", NULL);
  g_autoptr(CtlResult) error = ctl_run ("incidents", "start", "--incident-number", "BPD-2025-0042",
                                        "--token", TOKEN, NULL);

  g_assert_cmpint (help->exit_status, ==, 0);
  g_assert_nonnull (strstr (help->out, rule));
  g_assert_nonnull (strstr (help->out, "(this or --duration, not both)"));
  g_assert_nonnull (strstr (help->out, "(this or --ends, not both)"));
  g_assert_cmpint (error->exit_status, ==, 2);
  g_assert_nonnull (strstr (error->err, rule));
}

/* A zero, negative or non-numeric --duration is an error, not a missing
 * option. */
static void
test_cimshubctl_incidents_start_rejects_bad_duration (void)
{
  const char *const durations[] = { "0", "-60", "60s" };
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_CREATED, "{\"incident\": " INCIDENT_JSON "}");

  for (guint i = 0; i < G_N_ELEMENTS (durations); i++) {
    g_autoptr(CtlResult) result = ctl_run ("incidents", "start", "--incident-number", "BPD-2025-0042",
                                           "--duration", durations[i], "--hub", hub->url, "--token", TOKEN, NULL);
    g_autofree char *message = g_strdup_printf ("--duration \"%s\" is invalid", durations[i]);

    g_assert_cmpint (result->exit_status, ==, 2);
    g_assert_nonnull (strstr (result->err, message));
  }

  g_assert_cmpuint (hub->n_requests, ==, 0);
}

static void
test_cimshubctl_incidents_end_sends_delete (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_OK,
                                         "{\"incident\": " INCIDENT_ENDED_JSON ", \"sessions_ended\": 0}");
  g_autoptr(CtlResult) result = ctl_run ("incidents", "end", "i-00000000000000b2", "--hub", hub->url,
                                         "--token", TOKEN, NULL);

  g_assert_cmpint (result->exit_status, ==, 0);
  assert_request (hub, "DELETE", "/api/v1/incidents/i-00000000000000b2");
  g_assert_cmpstr (result->out, ==, "Ended major incident i-00000000000000b2.\nSessions ended: 0\n");
}

static void
test_cimshubctl_sessions_list_prints_table (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_OK,
      "{\"sessions\": [{\"id\": \"s-0123\", \"camera_id\": \"bos-0001\", \"camera_owner\": \"boston\","
      " \"viewer_subject\": \"c-77\", \"viewer_name\": \"Ana Ruiz\", \"viewer_jurisdiction\": \"chelsea\","
      " \"viewer_address\": \"127.0.0.1\", \"client\": null, \"allowed_by\": \"grant\","
      " \"grant_id\": \"g-00000000000000a1\", \"incident_id\": null,"
      " \"incident_number\": \"BPD-2025-0001\", \"started_at\": \"2025-06-15T15:00:00Z\","
      " \"allowed_until\": \"2025-06-15T16:00:00Z\", \"bytes_sent\": 1048576, \"packets_sent\": 900}]}");
  g_autoptr(CtlResult) result = ctl_run ("sessions", "list", "--hub", hub->url, "--token", TOKEN, NULL);
  g_auto(GStrv) lines = NULL;
  const char *header, *row;

  g_assert_cmpint (result->exit_status, ==, 0);
  assert_request (hub, "GET", "/api/v1/sessions");

  lines = g_strsplit (result->out, "\n", -1);
  header = output_find_line (lines, "ID ");
  row = output_find_line (lines, "s-0123 ");
  assert_column (header, row, "CAMERA", "bos-0001");
  assert_column (header, row, "VIEWER", "Ana Ruiz (c-77)");
  assert_column (header, row, "FROM", "chelsea");
  assert_column (header, row, "ALLOWED BY", "grant");
  assert_column (header, row, "INCIDENT", "BPD-2025-0001");
  assert_column (header, row, "UNTIL", "2025-06-15T16:00:00Z");
  assert_column (header, row, "BYTES SENT", "1048576");
}

static void
test_cimshubctl_sessions_end_sends_delete (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_OK, NULL);
  g_autoptr(CtlResult) result = ctl_run ("sessions", "end", "s-0123", "--hub", hub->url,
                                         "--token", TOKEN, NULL);

  g_assert_cmpint (result->exit_status, ==, 0);
  assert_request (hub, "DELETE", "/api/v1/sessions/s-0123");
  g_assert_cmpstr (result->out, ==, "Ended session s-0123.\n");
}

static void
test_cimshubctl_admin_prints_error_reason (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_FORBIDDEN,
      "{\"error\": \"forbidden\", \"rule\": \"not-owner\", \"reason\": \"Grant g-1 was made by "
      "boston; only a grant authority of boston can revoke it.\"}");
  g_autoptr(CtlResult) result = ctl_run ("grants", "revoke", "g-1", "--json", "--hub", hub->url,
                                         "--token", TOKEN, NULL);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_cmpstr (result->out, ==, "");
  g_assert_cmpstr (result->err, ==, "cimshubctl grants revoke: Grant g-1 was made by boston; only a "
                   "grant authority of boston can revoke it. (HTTP 403)\n");
}

static void
test_cimshubctl_admin_reports_status_without_json (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_BAD_GATEWAY, "upstream failed");
  g_autoptr(CtlResult) result = NULL;

  hub->answer_type = "text/plain";
  result = ctl_run ("sessions", "list", "--hub", hub->url, "--token", TOKEN, NULL);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_cmpstr (result->out, ==, "");
  g_assert_nonnull (strstr (result->err, "HTTP 502 Bad Gateway"));
}

static void
test_cimshubctl_admin_rejects_non_json_success (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_OK, "<html>proxy login</html>");
  g_autoptr(CtlResult) result = NULL;

  hub->answer_type = "text/html";
  result = ctl_run ("grants", "list", "--hub", hub->url, "--token", TOKEN, NULL);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_nonnull (strstr (result->err, "is not JSON"));
}

static void
test_cimshubctl_admin_reads_token_file (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_OK, "{\"sessions\": []}");
  g_autofree char *path = auth_test_region_write_file (region, "token.txt", "  " TOKEN "\n");
  g_autoptr(CtlResult) result = ctl_run ("sessions", "list", "--hub", hub->url,
                                         "--token-file", path, NULL);

  g_assert_cmpint (result->exit_status, ==, 0);
  assert_request (hub, "GET", "/api/v1/sessions");
  g_assert_cmpstr (result->out, ==, "No viewing sessions.\n");
}

static void
test_cimshubctl_admin_reports_missing_token_file (void)
{
  g_autoptr(CtlResult) result = ctl_run ("sessions", "list", "--hub", "http://127.0.0.1:9",
                                         "--token-file", "/nonexistent/token", NULL);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_nonnull (strstr (result->err, "/nonexistent/token"));
}

static void
test_cimshubctl_admin_uses_environment (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_OK, "{\"incidents\": []}");
  g_autofree char *url_setting = g_strconcat ("CIMSHUB_URL=", hub->url, NULL);
  const char *const env[] = { url_setting, "CIMSHUB_TOKEN=" TOKEN, NULL };
  g_autoptr(CtlResult) result = ctl_run_with_env (env, "incidents", "list", NULL);

  g_assert_cmpint (result->exit_status, ==, 0);
  assert_request (hub, "GET", "/api/v1/incidents");
  g_assert_cmpstr (result->out, ==, "No major incidents.\n");
}

static void
test_cimshubctl_admin_requires_token (void)
{
  g_autoptr(MockHub) hub = mock_hub_new (SOUP_STATUS_OK, "{\"grants\": []}");
  g_autoptr(CtlResult) missing = ctl_run ("grants", "list", "--hub", hub->url, NULL);
  g_autoptr(CtlResult) spaced = ctl_run ("grants", "list", "--hub", hub->url, "--token", "a b", NULL);

  g_assert_cmpint (missing->exit_status, ==, 2);
  g_assert_nonnull (strstr (missing->err, "a token is required"));
  g_assert_cmpint (spaced->exit_status, ==, 2);
  g_assert_nonnull (strstr (spaced->err, "contains spaces or control characters"));
  g_assert_cmpuint (hub->n_requests, ==, 0);
}

static void
test_cimshubctl_admin_rejects_invalid_hub_url (void)
{
  g_autoptr(CtlResult) result = ctl_run ("grants", "list", "--hub", "ftp://127.0.0.1/",
                                         "--token", TOKEN, NULL);

  g_assert_cmpint (result->exit_status, ==, 2);
  g_assert_nonnull (strstr (result->err, "hub URL \"ftp://127.0.0.1/\" is invalid"));
}

/* A port that was just bound and released on 127.0.0.1 refuses the
 * connection. */
static void
test_cimshubctl_admin_reports_unreachable_hub (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                            G_SOCKET_PROTOCOL_TCP, &error);
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any_port = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autofree char *url = NULL;
  g_autoptr(CtlResult) result = NULL;

  g_assert_no_error (error);
  g_socket_bind (socket, any_port, FALSE, &error);
  g_assert_no_error (error);
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  url = g_strdup_printf ("http://127.0.0.1:%u", g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
  g_socket_close (socket, NULL);

  result = ctl_run ("cameras", "list", "--hub", url, "--token", TOKEN, NULL);

  g_assert_cmpint (result->exit_status, ==, 1);
  g_assert_cmpstr (result->out, ==, "");
  g_assert_nonnull (strstr (result->err, "cannot reach the hub at"));
}

int
main (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);

  cimshubctl_path = g_getenv ("CIMSHUBCTL");
  cimshub_path = g_getenv ("CIMSHUB");
  if (cimshubctl_path == NULL) {
    g_printerr ("Set CIMSHUBCTL to the path of the built cimshubctl; meson test does.\n");
    return 1;
  }

  region = auth_test_region_new ();
  config = cims_config_load (region->config_path, &error);
  g_assert_no_error (error);
  keyring = cims_auth_keyring_new (config, &error);
  g_assert_no_error (error);

  g_test_add_func ("/auth/cimshubctl/mints-es256-token", test_cimshubctl_mints_es256_token);
  g_test_add_func ("/auth/cimshubctl/mints-rs256-token", test_cimshubctl_mints_rs256_token);
  g_test_add_func ("/auth/cimshubctl/mint-requires-key", test_cimshubctl_mint_requires_key);
  g_test_add_func ("/auth/cimshubctl/mint-reports-missing-key-file", test_cimshubctl_mint_reports_missing_key_file);
  g_test_add_func ("/auth/cimshubctl/check-config-accepts-region", test_cimshubctl_check_config_accepts_region);
  g_test_add_func ("/auth/cimshubctl/check-config-reports-syntax-line", test_cimshubctl_check_config_reports_syntax_line);
  g_test_add_func ("/auth/cimshubctl/check-config-reports-key-line", test_cimshubctl_check_config_reports_key_line);
  g_test_add_func ("/auth/cimshubctl/check-config-reports-every-key", test_cimshubctl_check_config_reports_every_key);
  g_test_add_func ("/auth/cimshubctl/hub-check-config-reports-every-key",
                   test_cimshubctl_hub_check_config_reports_every_key);
  g_test_add_func ("/auth/cimshubctl/check-config-requires-file", test_cimshubctl_check_config_requires_file);
  g_test_add_func ("/auth/cimshubctl/rejects-unknown-subcommand", test_cimshubctl_rejects_unknown_subcommand);
  g_test_add_func ("/auth/cimshubctl/rejects-unknown-token-subcommand", test_cimshubctl_rejects_unknown_token_subcommand);
  g_test_add_func ("/auth/cimshubctl/help-lists-subcommands", test_cimshubctl_help_lists_subcommands);
  g_test_add_func ("/auth/cimshubctl/group-help-lists-subcommands", test_cimshubctl_group_help_lists_subcommands);
  g_test_add_func ("/auth/cimshubctl/group-requires-subcommand", test_cimshubctl_group_requires_subcommand);

  g_test_add_func ("/auth/cimshubctl/cameras-list-prints-table", test_cimshubctl_cameras_list_prints_table);
  g_test_add_func ("/auth/cimshubctl/cameras-list-prints-json", test_cimshubctl_cameras_list_prints_json);
  g_test_add_func ("/auth/cimshubctl/grants-list-prints-table", test_cimshubctl_grants_list_prints_table);
  g_test_add_func ("/auth/cimshubctl/grants-list-reports-empty", test_cimshubctl_grants_list_reports_empty);
  g_test_add_func ("/auth/cimshubctl/grants-show-prints-grant", test_cimshubctl_grants_show_prints_grant);
  g_test_add_func ("/auth/cimshubctl/grants-show-escapes-id", test_cimshubctl_grants_show_escapes_id);
  g_test_add_func ("/auth/cimshubctl/grants-create-sends-every-field", test_cimshubctl_grants_create_sends_every_field);
  g_test_add_func ("/auth/cimshubctl/grants-create-omits-unset-fields", test_cimshubctl_grants_create_omits_unset_fields);
  g_test_add_func ("/auth/cimshubctl/grants-create-sends-duration-with-start",
                   test_cimshubctl_grants_create_sends_duration_with_start);
  g_test_add_func ("/auth/cimshubctl/grants-create-sends-duration-alone", test_cimshubctl_grants_create_sends_duration_alone);
  g_test_add_func ("/auth/cimshubctl/grants-create-rejects-bad-options", test_cimshubctl_grants_create_rejects_bad_options);
  g_test_add_func ("/auth/cimshubctl/grants-create-rejects-ends-with-duration", test_cimshubctl_grants_create_rejects_ends_with_duration);
  g_test_add_func ("/auth/cimshubctl/grants-revoke-sends-delete", test_cimshubctl_grants_revoke_sends_delete);
  g_test_add_func ("/auth/cimshubctl/grants-revoke-requires-id", test_cimshubctl_grants_revoke_requires_id);
  g_test_add_func ("/auth/cimshubctl/incidents-list-prints-table", test_cimshubctl_incidents_list_prints_table);
  g_test_add_func ("/auth/cimshubctl/incidents-start-sends-duration", test_cimshubctl_incidents_start_sends_duration);
  g_test_add_func ("/auth/cimshubctl/incidents-start-sends-ends", test_cimshubctl_incidents_start_sends_ends);
  g_test_add_func ("/auth/cimshubctl/incidents-start-requires-one-end", test_cimshubctl_incidents_start_requires_one_end);
  g_test_add_func ("/auth/cimshubctl/incidents-start-help-states-end-rule",
                   test_cimshubctl_incidents_start_help_states_end_rule);
  g_test_add_func ("/auth/cimshubctl/incidents-start-rejects-bad-duration", test_cimshubctl_incidents_start_rejects_bad_duration);
  g_test_add_func ("/auth/cimshubctl/incidents-end-sends-delete", test_cimshubctl_incidents_end_sends_delete);
  g_test_add_func ("/auth/cimshubctl/sessions-list-prints-table", test_cimshubctl_sessions_list_prints_table);
  g_test_add_func ("/auth/cimshubctl/sessions-end-sends-delete", test_cimshubctl_sessions_end_sends_delete);
  g_test_add_func ("/auth/cimshubctl/admin-prints-error-reason", test_cimshubctl_admin_prints_error_reason);
  g_test_add_func ("/auth/cimshubctl/admin-reports-status-without-json", test_cimshubctl_admin_reports_status_without_json);
  g_test_add_func ("/auth/cimshubctl/admin-rejects-non-json-success", test_cimshubctl_admin_rejects_non_json_success);
  g_test_add_func ("/auth/cimshubctl/admin-reads-token-file", test_cimshubctl_admin_reads_token_file);
  g_test_add_func ("/auth/cimshubctl/admin-reports-missing-token-file", test_cimshubctl_admin_reports_missing_token_file);
  g_test_add_func ("/auth/cimshubctl/admin-uses-environment", test_cimshubctl_admin_uses_environment);
  g_test_add_func ("/auth/cimshubctl/admin-requires-token", test_cimshubctl_admin_requires_token);
  g_test_add_func ("/auth/cimshubctl/admin-rejects-invalid-hub-url", test_cimshubctl_admin_rejects_invalid_hub_url);
  g_test_add_func ("/auth/cimshubctl/admin-reports-unreachable-hub", test_cimshubctl_admin_reports_unreachable_hub);
  status = g_test_run ();

  cims_auth_keyring_free (keyring);
  cims_config_unref (config);
  auth_test_region_free (region);

  return status;
}
