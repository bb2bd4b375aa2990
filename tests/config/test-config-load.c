/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for loading and validating configuration files: a full valid
 * file, path resolution, each rejected value with its FILE:LINE, and the
 * shipped example and demo files (found through CIMS_CONFIG_DIR). */
#include "config/config.h"

#include <glib/gstdio.h>
#include <string.h>

/* A valid configuration that sets every setting the loader reads. The
 * rejection tests replace one piece of it at a time. */
static const char base_config[] =
  "hub: {\n"
  "  http_listen = \"127.0.0.1:8080\";\n"
  "  ice_udp_ports = [20000, 20999];\n"
  "  public_addresses = [\"127.0.0.1\", \"::1\"];\n"
  "  state_dir = \"state\";\n"
  "  idle_source_stop_s = 45;\n"
  "  source_connect_timeout_ms = 5000;\n"
  "  reconnect_backoff_ms = [250, 10000];\n"
  "  ingest_latency_ms = 80;\n"
  "  http_idle_timeout_s = 20;\n"
  "  dtls_certificate = \"tls/cert.pem\";\n"
  "  dtls_private_key = \"/etc/cimshub/key.pem\";\n"
  "  cors_origins = [\"*\", \"https://viewer.example\"];\n"
  "  token_audience = \"cims-test\";\n"
  "  default_profile = \"legacy-640\";\n"
  "};\n"
  "jurisdictions = (\n"
  "  { id = \"boston\"; name = \"Boston\"; participates = true;\n"
  "    token_issuer = \"https://idp.boston.example\";\n"
  "    token_key = \"keys/boston.pub.pem\"; },\n"
  "  { id = \"chelsea\"; name = \"Chelsea\"; participates = true;\n"
  "    token_issuer = \"https://idp.chelsea.example\";\n"
  "    token_key = \"../shared-keys/chelsea.pub.pem\"; },\n"
  "  { id = \"cambridge\"; name = \"Cambridge\"; participates = false;\n"
  "    token_issuer = \"https://idp.cambridge.example\";\n"
  "    token_key = \"/etc/cimshub/keys/cambridge.pub.pem\"; }\n"
  ");\n"
  "agencies = (\n"
  "  { id = \"state-police\"; name = \"State Police\";\n"
  "    token_issuer = \"https://idp.statepolice.example\";\n"
  "    token_key = \"keys/state-police.pub.pem\"; }\n"
  ");\n"
  "cameras = (\n"
  "  { id = \"bos-0001\"; jurisdiction = \"boston\";\n"
  "    location = \"Boylston St at Dartmouth St\";\n"
  "    brand_model = \"Axis Q6135-LE\"; installed = \"2019-05-02\";\n"
  "    source = \"rtsp://192.0.2.11/axis-media/media.amp\";\n"
  "    source_username = \"viewer\"; source_password = \"secret-pw\";\n"
  "    has_audio = true;\n"
  "    shared_with = [\"chelsea\"]; restricted = true; on_demand = false;\n"
  "    out_of_service = ( { from = \"2024-01-10\"; to = \"2024-02-01\"; },\n"
  "      { from = \"2024-03-01T08:00:00Z\"; to = \"2024-03-01T12:30:00Z\"; } ); },\n"
  "  { id = \"chl-0001\"; jurisdiction = \"chelsea\";\n"
  "    location = \"Broadway at Bellingham Square\";\n"
  "    brand_model = \"Bosch AUTODOME IP 5000i\"; installed = \"2020-08-11\";\n"
  "    source = \"rtsps://cam.chelsea.example:322/stream1\"; }\n"
  ");\n"
  "viewer_profiles = (\n"
  "  { name = \"browser\"; codecs = [\"h264\", \"vp8\"];\n"
  "    max_width = 1920; max_height = 1080; max_fps = 30; max_kbps = 4000; },\n"
  "  { name = \"legacy-640\"; codecs = [\"h264\"]; h264_profiles = [\"42E01F\", \"42\"];\n"
  "    max_width = 640; max_height = 360; max_fps = 15; max_kbps = 800; }\n"
  ");\n";

typedef struct {
  char *dir;
} Fixture;

static void
fixture_set_up (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  fixture->dir = g_dir_make_tmp ("cims-config-XXXXXX", &error);
  g_assert_no_error (error);
}

static void
remove_tree (const char *path)
{
  g_autoptr (GDir) dir = NULL;
  const char *name;

  if (!g_file_test (path, G_FILE_TEST_IS_DIR) || g_file_test (path, G_FILE_TEST_IS_SYMLINK))
    {
      g_remove (path);
      return;
    }

  dir = g_dir_open (path, 0, NULL);
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      remove_tree (child);
    }
  g_rmdir (path);
}

static void
fixture_tear_down (Fixture *fixture, gconstpointer data)
{
  remove_tree (fixture->dir);
  g_free (fixture->dir);
}

static char *
fixture_write (Fixture *fixture, const char *name, const char *text)
{
  g_autoptr (GError) error = NULL;
  char *path = g_build_filename (fixture->dir, name, NULL);

  g_file_set_contents (path, text, -1, &error);
  g_assert_no_error (error);

  return path;
}

/* Returns @text with its single occurrence of @old replaced by @new. */
static char *
text_replace (const char *text, const char *old, const char *new)
{
  const char *at = strstr (text, old);

  g_assert_nonnull (at);
  g_assert_null (strstr (at + 1, old));

  return g_strdup_printf ("%.*s%s%s", (int) (at - text), text, new, at + strlen (old));
}

/* Returns the 1-based line of the @occurrence-th (from 1) @needle. */
static int
text_line_of (const char *text, const char *needle, int occurrence)
{
  const char *at = text;
  int line = 1;

  for (int i = 0; i < occurrence; i++)
    {
      at = strstr (i == 0 ? at : at + 1, needle);
      g_assert_nonnull (at);
    }

  for (const char *p = text; p < at; p++)
    {
      if (*p == '\n')
        line++;
    }

  return line;
}

static char *
load_expect_invalid (const char *path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsConfig) config = cims_config_load (path, &error);

  g_assert_null (config);
  g_assert_error (error, CIMS_CONFIG_ERROR, CIMS_CONFIG_ERROR_INVALID);

  return g_strdup (error->message);
}

/* Asserts that one line of @message starts with "PATH:LINE: " and contains
 * @fragment. */
static void
assert_problem (const char *message, const char *path, int line, const char *fragment)
{
  g_auto (GStrv) lines = g_strsplit (message, "\n", -1);
  g_autofree char *prefix = g_strdup_printf ("%s:%d: ", path, line);

  for (guint i = 0; lines[i] != NULL; i++)
    {
      if (g_str_has_prefix (lines[i], prefix) && strstr (lines[i], fragment) != NULL)
        return;
    }

  g_test_message ("expected a line starting with \"%s\" containing \"%s\" in:\n%s",
                  prefix, fragment, message);
  g_test_fail ();
}

static const CimsConfigCamera *
find_camera_checked (const CimsConfig *config, const char *id)
{
  const CimsConfigCamera *camera = cims_config_find_camera (config, id);

  g_assert_nonnull (camera);
  g_assert_cmpstr (camera->id, ==, id);

  return camera;
}

static gint64
utc_us (int year, int month, int day, int hour, int minute, double seconds)
{
  g_autoptr (GDateTime) time = g_date_time_new_utc (year, month, day, hour, minute, seconds);

  g_assert_nonnull (time);

  return g_date_time_to_unix (time) * G_USEC_PER_SEC + g_date_time_get_microsecond (time);
}

static void
check_valid_hub (const CimsConfig *config, const char *dir)
{
  g_autofree char *state_dir = g_build_filename (dir, "state", NULL);
  g_autofree char *certificate = g_build_filename (dir, "tls", "cert.pem", NULL);
  const char *const addresses[] = { "127.0.0.1", "::1", NULL };
  const char *const origins[] = { "*", "https://viewer.example", NULL };

  g_assert_cmpstr (config->http_host, ==, "127.0.0.1");
  g_assert_cmpuint (config->http_port, ==, 8080);
  g_assert_cmpuint (config->ice_port_min, ==, 20000);
  g_assert_cmpuint (config->ice_port_max, ==, 20999);
  g_assert_true (g_strv_equal ((const char *const *) config->public_addresses, addresses));
  g_assert_cmpstr (config->state_dir, ==, state_dir);
  g_assert_cmpuint (config->idle_source_stop_s, ==, 45);
  g_assert_cmpuint (config->source_connect_timeout_ms, ==, 5000);
  g_assert_cmpuint (config->reconnect_min_ms, ==, 250);
  g_assert_cmpuint (config->reconnect_max_ms, ==, 10000);
  g_assert_cmpuint (config->ingest_latency_ms, ==, 80);
  g_assert_cmpuint (config->http_idle_timeout_s, ==, 20);
  g_assert_cmpstr (config->dtls_certificate_path, ==, certificate);
  g_assert_cmpstr (config->dtls_private_key_path, ==, "/etc/cimshub/key.pem");
  g_assert_true (g_strv_equal ((const char *const *) config->cors_origins, origins));
  g_assert_cmpstr (config->token_audience, ==, "cims-test");
  g_assert_cmpstr (config->default_profile, ==, "legacy-640");
}

static void
check_valid_parties (const CimsConfig *config, const char *dir)
{
  g_autofree char *boston_key = g_build_filename (dir, "keys", "boston.pub.pem", NULL);
  g_autofree char *parent = g_path_get_dirname (dir);
  g_autofree char *chelsea_key = g_build_filename (parent, "shared-keys", "chelsea.pub.pem", NULL);
  g_autofree char *agency_key = g_build_filename (dir, "keys", "state-police.pub.pem", NULL);
  const CimsConfigJurisdiction *boston;
  const CimsConfigJurisdiction *cambridge;
  const CimsConfigAgency *agency;

  g_assert_cmpuint (config->jurisdictions->len, ==, 3);
  boston = cims_config_find_jurisdiction (config, "boston");
  g_assert_nonnull (boston);
  g_assert_cmpstr (boston->name, ==, "Boston");
  g_assert_true (boston->participates);
  g_assert_cmpstr (boston->token_issuer, ==, "https://idp.boston.example");
  g_assert_cmpstr (boston->token_key_path, ==, boston_key);
  g_assert_cmpint (boston->line, ==, text_line_of (base_config, "{ id = \"boston\"", 1));
  g_assert_cmpstr (cims_config_find_jurisdiction (config, "chelsea")->token_key_path, ==, chelsea_key);
  cambridge = cims_config_find_jurisdiction (config, "cambridge");
  g_assert_nonnull (cambridge);
  g_assert_false (cambridge->participates);
  g_assert_cmpstr (cambridge->token_key_path, ==, "/etc/cimshub/keys/cambridge.pub.pem");
  g_assert_null (cims_config_find_jurisdiction (config, "revere"));

  g_assert_cmpuint (config->agencies->len, ==, 1);
  agency = cims_config_find_agency (config, "state-police");
  g_assert_nonnull (agency);
  g_assert_cmpstr (agency->name, ==, "State Police");
  g_assert_cmpstr (agency->token_issuer, ==, "https://idp.statepolice.example");
  g_assert_cmpstr (agency->token_key_path, ==, agency_key);
  g_assert_null (cims_config_find_agency (config, "boston"));
}

static void
check_valid_cameras (const CimsConfig *config)
{
  const char *const shared[] = { "chelsea", NULL };
  const CimsConfigCamera *bos;
  const CimsConfigCamera *chl;

  g_assert_cmpuint (config->cameras->len, ==, 2);
  bos = find_camera_checked (config, "bos-0001");
  g_assert_true (bos == g_ptr_array_index (config->cameras, 0));
  g_assert_cmpstr (bos->jurisdiction, ==, "boston");
  g_assert_cmpstr (bos->location, ==, "Boylston St at Dartmouth St");
  g_assert_cmpstr (bos->brand_model, ==, "Axis Q6135-LE");
  g_assert_cmpstr (bos->installed, ==, "2019-05-02");
  g_assert_cmpstr (bos->source, ==, "rtsp://192.0.2.11/axis-media/media.amp");
  g_assert_cmpstr (bos->source_username, ==, "viewer");
  g_assert_cmpstr (bos->source_password, ==, "secret-pw");
  g_assert_true (bos->has_audio);
  g_assert_true (g_strv_equal ((const char *const *) bos->shared_with, shared));
  g_assert_true (bos->restricted);
  g_assert_false (bos->on_demand);
  g_assert_cmpuint (bos->out_of_service->len, ==, 2);
  g_assert_cmpint (bos->line, ==, text_line_of (base_config, "{ id = \"bos-0001\"", 1));

  chl = find_camera_checked (config, "chl-0001");
  g_assert_cmpstr (chl->source, ==, "rtsps://cam.chelsea.example:322/stream1");
  g_assert_null (chl->source_username);
  g_assert_null (chl->source_password);
  g_assert_false (chl->has_audio);
  g_assert_nonnull (chl->shared_with);
  g_assert_null (chl->shared_with[0]);
  g_assert_false (chl->restricted);
  g_assert_true (chl->on_demand);
  g_assert_cmpuint (chl->out_of_service->len, ==, 0);
  g_assert_null (cims_config_find_camera (config, "bos-0002"));
}

static void
check_valid_profiles (const CimsConfig *config)
{
  const char *const browser_codecs[] = { "h264", "vp8", NULL };
  const char *const legacy_codecs[] = { "h264", NULL };
  const char *const legacy_h264[] = { "42e01f", "42", NULL };
  const CimsConfigProfile *browser = cims_config_find_profile (config, "browser");
  const CimsConfigProfile *legacy = cims_config_find_profile (config, "legacy-640");

  g_assert_cmpuint (config->profiles->len, ==, 2);
  g_assert_nonnull (browser);
  g_assert_true (g_strv_equal ((const char *const *) browser->codecs, browser_codecs));
  g_assert_nonnull (browser->h264_profiles);
  g_assert_null (browser->h264_profiles[0]);
  g_assert_cmpuint (browser->max_width, ==, 1920);
  g_assert_cmpuint (browser->max_height, ==, 1080);
  g_assert_cmpuint (browser->max_fps, ==, 30);
  g_assert_cmpuint (browser->max_kbps, ==, 4000);

  g_assert_nonnull (legacy);
  g_assert_true (g_strv_equal ((const char *const *) legacy->codecs, legacy_codecs));
  g_assert_true (g_strv_equal ((const char *const *) legacy->h264_profiles, legacy_h264));
  g_assert_cmpuint (legacy->max_width, ==, 640);
  g_assert_cmpuint (legacy->max_height, ==, 360);
  g_assert_cmpuint (legacy->max_fps, ==, 15);
  g_assert_cmpuint (legacy->max_kbps, ==, 800);
  g_assert_null (cims_config_find_profile (config, "mobile"));
}

static void
test_config_load_valid_file (Fixture *fixture, gconstpointer data)
{
  g_autofree char *path = fixture_write (fixture, "hub.conf", base_config);
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsConfig) config = cims_config_load (path, &error);

  g_assert_no_error (error);
  g_assert_nonnull (config);
  g_assert_cmpstr (config->path, ==, path);

  check_valid_hub (config, fixture->dir);
  check_valid_parties (config, fixture->dir);
  check_valid_cameras (config);
  check_valid_profiles (config);
}

static void
test_config_load_applies_defaults (Fixture *fixture, gconstpointer data)
{
  g_autofree char *text = g_strdup (base_config);
  const char *optional[] = {
    "  idle_source_stop_s = 45;\n", "  source_connect_timeout_ms = 5000;\n",
    "  reconnect_backoff_ms = [250, 10000];\n", "  ingest_latency_ms = 80;\n",
    "  http_idle_timeout_s = 20;\n", "  dtls_certificate = \"tls/cert.pem\";\n", "  dtls_private_key = \"/etc/cimshub/key.pem\";\n",
    "  cors_origins = [\"*\", \"https://viewer.example\"];\n", "  token_audience = \"cims-test\";\n",
    "  default_profile = \"legacy-640\";\n",
  };
  g_autofree char *path = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsConfig) config = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (optional); i++)
    {
      char *shorter = text_replace (text, optional[i], "");

      g_free (text);
      text = shorter;
    }
  path = fixture_write (fixture, "defaults.conf", text);
  config = cims_config_load (path, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (config->idle_source_stop_s, ==, 30);
  g_assert_cmpuint (config->source_connect_timeout_ms, ==, 8000);
  g_assert_cmpuint (config->reconnect_min_ms, ==, 500);
  g_assert_cmpuint (config->reconnect_max_ms, ==, 30000);
  g_assert_cmpuint (config->ingest_latency_ms, ==, 50);
  g_assert_cmpuint (config->http_idle_timeout_s, ==, 60);
  g_assert_null (config->dtls_certificate_path);
  g_assert_null (config->dtls_private_key_path);
  g_assert_nonnull (config->cors_origins);
  g_assert_null (config->cors_origins[0]);
  g_assert_cmpstr (config->token_audience, ==, "cimshub");
  g_assert_cmpstr (config->default_profile, ==, "browser");
}

static void
test_config_load_regional_auditors (Fixture *fixture, gconstpointer data)
{
  g_autofree char *text = text_replace (base_config, "  token_audience = \"cims-test\";\n",
                                        "  token_audience = \"cims-test\";\n"
                                        "  regional_auditors = [\"boston:auditor-1\", "
                                        "\"state-police:urn:ig:7\"];\n");
  g_autofree char *path = fixture_write (fixture, "auditors.conf", text);
  g_autofree char *default_path = fixture_write (fixture, "no-auditors.conf", base_config);
  const char *const expected[] = { "boston:auditor-1", "state-police:urn:ig:7", NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsConfig) config = cims_config_load (path, &error);
  g_autoptr (CimsConfig) default_config = NULL;

  g_assert_no_error (error);
  g_assert_true (g_strv_equal ((const char *const *) config->regional_auditors, expected));

  default_config = cims_config_load (default_path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (default_config->regional_auditors);
  g_assert_null (default_config->regional_auditors[0]);
}

/* Digits inside strings and comments are left as they are, a literal that
 * already has the L suffix is read as a 64-bit integer, and a hexadecimal
 * literal inside the 32-bit range keeps its value. */
static void
test_config_load_widens_only_integer_literals (Fixture *fixture, gconstpointer data)
{
  g_autofree char *with_location = text_replace (base_config, "location = \"Broadway at Bellingham Square\";",
                                                 "location = \"Route 99999999999, mile 4294968296\"; "
                                                 "# 99999999999\n /* 4294968296 */");
  g_autofree char *text = text_replace (with_location, "  ingest_latency_ms = 80;\n",
                                        "  ingest_latency_ms = 80;\n  incident_max_s = 7200L;\n"
                                        "  whep_rate_total = 0x1F4;\n");
  g_autofree char *path = fixture_write (fixture, "widen.conf", text);
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsConfig) config = cims_config_load (path, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (find_camera_checked (config, "chl-0001")->location, ==,
                   "Route 99999999999, mile 4294968296");
  g_assert_cmpuint (config->incident_max_s, ==, 7200);
  g_assert_cmpuint (config->whep_rate_total, ==, 500);
}

/* libconfig reads an included file itself, so a literal there cannot get
 * its L and is reported with the included file's name and line. */
static void
test_config_load_rejects_wide_integer_in_include (Fixture *fixture, gconstpointer data)
{
  g_autofree char *text = text_replace (base_config, "  ingest_latency_ms = 80;\n",
                                        "  ingest_latency_ms = 80;\n  @include \"limits.conf\"\n");
  g_autofree char *limits_path = fixture_write (fixture, "limits.conf",
                                                "whep_rate_total = 500;\nwhep_rate_per_client = 4294967306;\n");
  g_autofree char *path = fixture_write (fixture, "include.conf", text);
  g_autofree char *message = load_expect_invalid (path);

  assert_problem (message, "limits.conf", 2, "integer 4294967306 needs 64 bits: write it as 4294967306L");
}

static void
test_config_load_resolves_relative_config_path (Fixture *fixture, gconstpointer data)
{
  g_autofree char *path = fixture_write (fixture, "relative.conf", base_config);
  g_autofree char *saved_cwd = g_get_current_dir ();
  g_autofree char *expected_key = g_build_filename (fixture->dir, "keys", "boston.pub.pem", NULL);
  g_autofree char *expected_state = g_build_filename (fixture->dir, "state", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsConfig) config = NULL;

  g_assert_cmpint (g_chdir (fixture->dir), ==, 0);
  config = cims_config_load ("relative.conf", &error);
  g_assert_cmpint (g_chdir (saved_cwd), ==, 0);

  g_assert_no_error (error);
  g_assert_cmpstr (config->path, ==, "relative.conf");
  g_assert_cmpstr (cims_config_find_jurisdiction (config, "boston")->token_key_path, ==, expected_key);
  g_assert_cmpstr (config->state_dir, ==, expected_state);
}

static void
test_config_load_ref_counts (Fixture *fixture, gconstpointer data)
{
  g_autofree char *path = fixture_write (fixture, "ref.conf", base_config);
  CimsConfig *config = cims_config_load (path, NULL);
  const CimsConfigCamera *camera;

  g_assert_nonnull (config);
  g_assert_true (cims_config_ref (config) == config);
  cims_config_unref (config);

  /* Still alive after dropping the extra reference. */
  camera = cims_config_find_camera (config, "bos-0001");
  g_assert_cmpstr (camera->id, ==, "bos-0001");
  cims_config_unref (config);
}

/* A rejection case: replace @old in the base file by @new, then expect a
 * problem on the line holding the @occurrence-th @line_needle (in the
 * changed text) that contains @fragment. Occurrence 0 means line 1, where
 * problems of the file as a whole go. */
typedef struct {
  const char *test_path;
  const char *old;
  const char *new;
  const char *line_needle;
  int occurrence;
  const char *fragment;
} RejectCase;

static const RejectCase reject_cases[] = {
  /* Missing settings and wrong types. */
  { "missing-camera-location", "    location = \"Boylston St at Dartmouth St\";\n", "",
    "{ id = \"bos-0001\"", 1, "camera \"bos-0001\": missing required setting \"location\"" },
  { "missing-state-dir", "  state_dir = \"state\";\n", "",
    "hub: {", 1, "hub: missing required setting \"state_dir\"" },
  { "missing-participates", "name = \"Chelsea\"; participates = true;", "name = \"Chelsea\";",
    "{ id = \"chelsea\"", 1, "jurisdiction \"chelsea\": missing required setting \"participates\"" },
  { "missing-hub", "hub: {", "hub_renamed: {",
    NULL, 0, "missing required setting \"hub\"" },
  { "missing-viewer-profiles", "viewer_profiles = (", "profiles = (",
    NULL, 0, "missing required setting \"viewer_profiles\"" },
  { "wrong-type-bool", "has_audio = true;", "has_audio = \"yes\";",
    "has_audio", 1, "camera \"bos-0001\": has_audio must be true or false, found a string" },
  { "wrong-type-integer", "max_fps = 30;", "max_fps = \"30\";",
    "max_fps = \"30\"", 1, "viewer profile \"browser\": max_fps must be an integer, found a string" },
  { "wrong-type-string", "brand_model = \"Axis Q6135-LE\";", "brand_model = 6135;",
    "brand_model = 6135", 1, "camera \"bos-0001\": brand_model must be a string, found an integer" },
  { "wrong-type-port-range", "ice_udp_ports = [20000, 20999];", "ice_udp_ports = \"20000-20999\";",
    "ice_udp_ports", 1, "hub: ice_udp_ports must be an array of two integers" },
  { "empty-string", "location = \"Broadway at Bellingham Square\";", "location = \"\";",
    "location = \"\"", 1, "camera \"chl-0001\": location must not be empty" },

  /* Duplicates and clashes between entries. */
  { "duplicate-agency-jurisdiction-id", "{ id = \"state-police\";", "{ id = \"chelsea\";",
    "{ id = \"chelsea\"; name = \"State Police\"", 1,
    "agency \"chelsea\": id \"chelsea\" is already the id of jurisdiction \"chelsea\"" },
  { "duplicate-token-issuer", "token_issuer = \"https://idp.statepolice.example\";",
    "token_issuer = \"https://idp.chelsea.example\";",
    "token_issuer = \"https://idp.chelsea.example\"", 2,
    "agency \"state-police\": token_issuer \"https://idp.chelsea.example\" is already used by "
    "jurisdiction \"chelsea\"" },

  /* Owners and sharing partners. */
  { "unknown-owner", "jurisdiction = \"chelsea\";", "jurisdiction = \"revere\";",
    "jurisdiction = \"revere\"", 1,
    "camera \"chl-0001\": jurisdiction \"revere\" is not a configured jurisdiction" },
  { "non-participating-owner", "jurisdiction = \"chelsea\";", "jurisdiction = \"cambridge\";",
    "jurisdiction = \"cambridge\"", 1,
    "camera \"chl-0001\": jurisdiction \"cambridge\" does not take part in the camera network "
    "and cannot own cameras" },
  { "shared-with-unknown", "shared_with = [\"chelsea\"];", "shared_with = [\"chelsea\", \"revere\"];",
    "shared_with", 1, "camera \"bos-0001\": shared_with \"revere\" is not a configured jurisdiction" },
  { "shared-with-non-participating", "shared_with = [\"chelsea\"];",
    "shared_with = [\"chelsea\",\n      \"cambridge\"];",
    "\"cambridge\"];", 1, "camera \"bos-0001\": shared_with \"cambridge\" does not take part" },
  { "shared-with-owner", "shared_with = [\"chelsea\"];", "shared_with = [\"boston\"];",
    "shared_with", 1, "camera \"bos-0001\": shared_with names \"boston\", which already owns the camera" },

  /* Identifiers. */
  { "uppercase-camera-id", "{ id = \"chl-0001\";", "{ id = \"CHL-0001\";",
    "CHL-0001", 1, "camera \"CHL-0001\": id \"CHL-0001\" is invalid" },
  { "parent-directory-camera-id", "{ id = \"chl-0001\";", "{ id = \"../etc\";",
    "../etc", 1, "camera \"../etc\": id \"../etc\" is invalid" },
  { "slash-jurisdiction-id", "{ id = \"cambridge\";", "{ id = \"cam/bridge\";",
    "cam/bridge", 1, "jurisdiction \"cam/bridge\": id \"cam/bridge\" is invalid" },

  /* Camera sources. */
  { "source-bad-scheme", "source = \"rtsps://cam.chelsea.example:322/stream1\";", "source = \"htp://x\";",
    "htp://x", 1, "camera \"chl-0001\": source \"htp://x\" is not a valid rtsp:// or rtsps:// URL" },
  { "source-http", "source = \"rtsps://cam.chelsea.example:322/stream1\";",
    "source = \"http://192.0.2.40/stream\";",
    "http://192.0.2.40", 1, "source \"http://192.0.2.40/stream\" is not a valid rtsp:// or rtsps:// URL" },
  { "source-no-host", "source = \"rtsps://cam.chelsea.example:322/stream1\";", "source = \"rtsp:///stream\";",
    "rtsp:///stream", 1, "source \"rtsp:///stream\" is not a valid rtsp:// or rtsps:// URL: it names no host" },
  { "source-not-a-url", "source = \"rtsps://cam.chelsea.example:322/stream1\";", "source = \"camera 7\";",
    "camera 7", 1, "source \"camera 7\" is not a valid rtsp:// or rtsps:// URL" },
  { "source-credentials", "source = \"rtsps://cam.chelsea.example:322/stream1\";",
    "source = \"rtsp://admin:hunter2@192.0.2.40/stream\";",
    "hunter2", 1, "source \"rtsp://***@192.0.2.40/stream\" must not carry credentials in the URL" },
  { "on-demand-not-bool", "on_demand = false;", "on_demand = \"no\";",
    "on_demand", 1, "camera \"bos-0001\": on_demand must be true or false, found a string" },
  { "password-without-username", "source_username = \"viewer\"; ", "",
    "source_password", 1, "camera \"bos-0001\": source_password is set without source_username" },

  /* Dates and out-of-service periods. */
  { "installed-not-a-date", "installed = \"2020-08-11\";", "installed = \"2019-13-40\";",
    "2019-13-40", 1, "camera \"chl-0001\": installed \"2019-13-40\" is not a valid date (expected YYYY-MM-DD)" },
  { "installed-not-leap-year", "installed = \"2020-08-11\";", "installed = \"2019-02-29\";",
    "2019-02-29", 1, "installed \"2019-02-29\" is not a valid date" },
  { "installed-short-form", "installed = \"2020-08-11\";", "installed = \"2020-8-11\";",
    "2020-8-11", 1, "installed \"2020-8-11\" is not a valid date" },
  { "out-of-service-bad-from", "from = \"2024-01-10\";", "from = \"2024-01-32\";",
    "2024-01-32", 1, "camera \"bos-0001\": out_of_service from \"2024-01-32\" is not a valid date or time" },
  { "out-of-service-time-without-zone", "to = \"2024-03-01T12:30:00Z\";", "to = \"2024-03-01T12:30:00\";",
    "2024-03-01T12:30:00\"", 1, "out_of_service to \"2024-03-01T12:30:00\" is not a valid date or time" },
  { "out-of-service-to-before-from", "to = \"2024-02-01\";", "to = \"2024-01-09\";",
    "2024-01-09", 1, "camera \"bos-0001\": out_of_service to \"2024-01-09\" is not after from \"2024-01-10\"" },
  { "out-of-service-empty-period", "to = \"2024-03-01T12:30:00Z\";", "to = \"2024-03-01T08:00:00Z\";",
    "to = \"2024-03-01T08:00:00Z\"", 1, "out_of_service to \"2024-03-01T08:00:00Z\" is not after from" },

  /* Hub settings. */
  { "ice-ports-reversed", "ice_udp_ports = [20000, 20999];", "ice_udp_ports = [20999, 20000];",
    "ice_udp_ports", 1, "hub: ice_udp_ports [20999, 20000] is invalid: the minimum is above the maximum" },
  { "ice-ports-zero", "ice_udp_ports = [20000, 20999];", "ice_udp_ports = [0, 20999];",
    "ice_udp_ports", 1, "hub: ice_udp_ports[0] 0 is out of range (1 to 65535)" },
  { "ice-ports-above-65535", "ice_udp_ports = [20000, 20999];", "ice_udp_ports = [65000, 70000];",
    "ice_udp_ports", 1, "hub: ice_udp_ports[1] 70000 is out of range (1 to 65535)" },
  { "ice-ports-too-few", "ice_udp_ports = [20000, 20999];", "ice_udp_ports = [20000, 20003];",
    "ice_udp_ports", 1, "hub: ice_udp_ports [20000, 20003] spans 4 ports, fewer than the 10" },
  { "http-idle-zero", "http_idle_timeout_s = 20;", "http_idle_timeout_s = 0;",
    "http_idle_timeout_s", 1, "hub: http_idle_timeout_s 0 is out of range (1 to 3600)" },

  /* Integers beyond 32 bits, which libconfig 1.5 would wrap, are reported
   * as written: 4294968296 would wrap to 1000, -4294946297 to 20999 and
   * 0x100000FA0 to 4000, all inside their ranges. */
  { "integer-beyond-32-bits", "  ingest_latency_ms = 80;\n",
    "  ingest_latency_ms = 80;\n  incident_max_s = 999999999999;\n",
    "incident_max_s", 1, "hub: incident_max_s 999999999999 is out of range (60 to 2592000)" },
  { "integer-wrapping-into-range", "  ingest_latency_ms = 80;\n",
    "  ingest_latency_ms = 80;\n  whep_rate_total = 4294968296;\n",
    "whep_rate_total", 1, "hub: whep_rate_total 4294968296 is out of range (1 to 100000)" },
  { "negative-integer-wrapping-into-range", "ice_udp_ports = [20000, 20999];",
    "ice_udp_ports = [20000, -4294946297];",
    "ice_udp_ports", 1, "hub: ice_udp_ports[1] -4294946297 is out of range (1 to 65535)" },
  { "hex-integer-wrapping-into-range", "max_kbps = 4000;", "max_kbps = 0x100000FA0;",
    "max_kbps = 0x", 1, "viewer profile \"browser\": max_kbps 4294971296 is out of range" },
  { "integer-beyond-64-bits", "idle_source_stop_s = 45;", "idle_source_stop_s = 99999999999999999999;",
    "idle_source_stop_s", 1, "integer 99999999999999999999 is outside the 64-bit range" },
  /* Unknown settings, so that a misspelt one cannot go unnoticed. */
  { "unknown-camera-setting-suggests", "restricted = true;", "restriced = true;",
    "restriced", 1, "camera \"bos-0001\": unknown setting \"restriced\"; did you mean \"restricted\"?" },
  { "unknown-hub-setting", "  token_audience = \"cims-test\";\n",
    "  token_audience = \"cims-test\";\n  future_setting = 1;\n",
    "future_setting", 1, "hub: unknown setting \"future_setting\"" },
  { "unknown-period-setting", "{ from = \"2024-01-10\"; to = \"2024-02-01\"; }",
    "{ from = \"2024-01-10\"; to = \"2024-02-01\"; reason = \"x\"; }",
    "reason", 1, "camera \"bos-0001\": unknown setting \"reason\"" },
  { "unknown-jurisdiction-setting", "name = \"Chelsea\"; participates = true;",
    "name = \"Chelsea\"; participates = true; partcipates = true;",
    "partcipates", 1, "jurisdiction \"chelsea\": unknown setting \"partcipates\"; did you mean" },
  { "unknown-agency-setting", "{ id = \"state-police\"; name = \"State Police\";",
    "{ id = \"state-police\"; name = \"State Police\"; nmae = \"x\";",
    "nmae", 1, "agency \"state-police\": unknown setting \"nmae\"; did you mean \"name\"?" },
  { "unknown-profile-setting", "max_fps = 15; max_kbps = 800;", "max_fps = 15; max_kbps = 800; max_bps = 1;",
    "max_bps", 1, "viewer profile \"legacy-640\": unknown setting \"max_bps\"; did you mean" },
  { "unknown-top-level-setting", "viewer_profiles = (\n", "camera = ();\nviewer_profiles = (\n",
    "camera = ()", 1, "unknown setting \"camera\"; did you mean \"cameras\"?" },
  { "http-listen-no-port", "http_listen = \"127.0.0.1:8080\";", "http_listen = \"localhost\";",
    "http_listen", 1, "hub: http_listen \"localhost\" is not HOST:PORT" },
  { "http-listen-port-zero", "http_listen = \"127.0.0.1:8080\";", "http_listen = \"127.0.0.1:0\";",
    "http_listen", 1, "http_listen \"127.0.0.1:0\" is not HOST:PORT" },
  { "http-listen-port-too-big", "http_listen = \"127.0.0.1:8080\";", "http_listen = \"127.0.0.1:99999\";",
    "http_listen", 1, "http_listen \"127.0.0.1:99999\" is not HOST:PORT" },
  { "http-listen-bare-ipv6", "http_listen = \"127.0.0.1:8080\";", "http_listen = \"::1:8080\";",
    "http_listen", 1, "http_listen \"::1:8080\" is not HOST:PORT" },
  { "public-address-hostname", "public_addresses = [\"127.0.0.1\", \"::1\"];",
    "public_addresses = [\"127.0.0.1\",\n    \"hub.example\"];",
    "\"hub.example\"", 1, "hub: public_addresses entry \"hub.example\" is not a unicast IPv4 or IPv6" },
  { "public-address-any", "public_addresses = [\"127.0.0.1\", \"::1\"];", "public_addresses = [\"0.0.0.0\"];",
    "public_addresses", 1, "public_addresses entry \"0.0.0.0\" is not a unicast" },
  { "public-addresses-empty", "public_addresses = [\"127.0.0.1\", \"::1\"];", "public_addresses = [];",
    "public_addresses", 1, "hub: public_addresses must list at least one IP address" },
  { "dtls-certificate-without-key", "  dtls_private_key = \"/etc/cimshub/key.pem\";\n", "",
    "dtls_certificate", 1, "hub: dtls_certificate is set without dtls_private_key" },
  { "dtls-key-without-certificate", "  dtls_certificate = \"tls/cert.pem\";\n", "",
    "dtls_private_key", 1, "hub: dtls_private_key is set without dtls_certificate" },
  { "cors-origin-with-path", "cors_origins = [\"*\", \"https://viewer.example\"];",
    "cors_origins = [\"https://viewer.example/app\"];",
    "cors_origins", 1, "cors_origins entry \"https://viewer.example/app\" is not \"*\" or an origin" },
  { "trusted-proxy-hostname", "cors_origins = [\"*\", \"https://viewer.example\"];",
    "cors_origins = [\"*\"];\n  trusted_proxies = [\"proxy.example\"];",
    "trusted_proxies", 1, "trusted_proxies entry \"proxy.example\" is not an IP address or a network" },
  { "trusted-proxy-host-bits", "cors_origins = [\"*\", \"https://viewer.example\"];",
    "cors_origins = [\"*\"];\n  trusted_proxies = [\"10.0.0.1/8\"];",
    "trusted_proxies", 1, "trusted_proxies entry \"10.0.0.1/8\" is not an IP address or a network such as "
    "\"10.0.0.0/8\": " },
  { "trusted-proxy-ipv4-mapped", "cors_origins = [\"*\", \"https://viewer.example\"];",
    "cors_origins = [\"*\"];\n  trusted_proxies = [\"::ffff:127.0.0.1\"];",
    "trusted_proxies", 1, "trusted_proxies entry \"::ffff:127.0.0.1\" is an IPv4-mapped IPv6 address" },
  { "default-profile-unknown", "default_profile = \"legacy-640\";", "default_profile = \"mobile\";",
    "default_profile", 1, "hub: default_profile \"mobile\" is not a configured viewer profile" },

  /* Regional auditors. */
  { "regional-auditor-no-colon", "  token_audience = \"cims-test\";\n",
    "  token_audience = \"cims-test\";\n  regional_auditors = [\"boston-auditor\"];\n",
    "regional_auditors", 1, "hub: regional_auditors entry \"boston-auditor\" is not \"PARTY:SUBJECT\"" },
  { "regional-auditor-empty-subject", "  token_audience = \"cims-test\";\n",
    "  token_audience = \"cims-test\";\n  regional_auditors = [\"boston:\"];\n",
    "regional_auditors", 1, "hub: regional_auditors entry \"boston:\" is not \"PARTY:SUBJECT\"" },
  { "regional-auditor-unknown-party", "  token_audience = \"cims-test\";\n",
    "  token_audience = \"cims-test\";\n  regional_auditors = [\"revere:a-1\"];\n",
    "regional_auditors", 1, "hub: regional_auditors entry \"revere:a-1\": \"revere\" is not a configured" },
  { "regional-auditor-twice", "  token_audience = \"cims-test\";\n",
    "  token_audience = \"cims-test\";\n  regional_auditors = [\"boston:a-1\",\n    \"boston:a-1\"];\n",
    "\"boston:a-1\"];", 1, "hub: regional_auditors entry \"boston:a-1\" is listed twice" },

  /* Lists that must not be empty, and viewer profiles. */
  { "no-jurisdictions", "jurisdictions = (\n", "jurisdictions = ();\nunused_jurisdictions = (\n",
    "jurisdictions = ();", 1, "jurisdictions must list at least one jurisdiction" },
  { "no-viewer-profiles", "viewer_profiles = (\n", "viewer_profiles = ();\nunused_profiles = (\n",
    "viewer_profiles = ();", 1, "viewer_profiles must list at least one profile" },
  { "codec-unsupported", "codecs = [\"h264\", \"vp8\"];", "codecs = [\"h264\", \"av1\"];",
    "av1", 1, "viewer profile \"browser\": codec \"av1\" is not supported (expected h264, h265 or vp8)" },
  { "codecs-empty", "codecs = [\"h264\", \"vp8\"];", "codecs = [];",
    "codecs = []", 1, "viewer profile \"browser\": codecs must name at least one codec" },
  { "profile-width-zero", "max_width = 640;", "max_width = 0;",
    "max_width = 0", 1, "viewer profile \"legacy-640\": max_width 0 is out of range" },
  { "profile-kbps-zero", "max_kbps = 4000;", "max_kbps = 0;",
    "max_kbps = 0", 1, "viewer profile \"browser\": max_kbps 0 is out of range" },
  { "h264-profiles-without-h264", "codecs = [\"h264\"]; h264_profiles", "codecs = [\"vp8\"]; h264_profiles",
    "h264_profiles", 1, "h264_profiles is set but codecs does not include \"h264\"" },
  { "h264-profile-not-hex", "h264_profiles = [\"42E01F\", \"42\"];", "h264_profiles = [\"baseline\"];",
    "h264_profiles", 1, "h264_profiles entry \"baseline\" is not a profile-level-id prefix" },
};

static void
test_config_load_rejects (Fixture *fixture, gconstpointer data)
{
  const RejectCase *reject = data;
  g_autofree char *text = text_replace (base_config, reject->old, reject->new);
  g_autofree char *path = fixture_write (fixture, "reject.conf", text);
  g_autofree char *message = load_expect_invalid (path);
  int line = reject->occurrence > 0 ? text_line_of (text, reject->line_needle, reject->occurrence) : 1;

  assert_problem (message, path, line, reject->fragment);
}

/* The second definition is reported, pointing back at the first. */
static void
check_duplicate (Fixture *fixture, const char *old, const char *new,
                 const char *first_needle, const char *second_needle, const char *fragment)
{
  g_autofree char *text = text_replace (base_config, old, new);
  g_autofree char *path = fixture_write (fixture, "duplicate.conf", text);
  g_autofree char *message = load_expect_invalid (path);
  int first_line = text_line_of (text, first_needle, 1);
  int second_line = text_line_of (text, second_needle, 2);
  g_autofree char *expected = g_strdup_printf ("%s (first defined at line %d)", fragment, first_line);

  assert_problem (message, path, second_line, expected);
}

static void
test_config_load_rejects_duplicate_camera (Fixture *fixture, gconstpointer data)
{
  check_duplicate (fixture, "{ id = \"chl-0001\";", "{ id = \"bos-0001\";",
                   "{ id = \"bos-0001\"", "{ id = \"bos-0001\"",
                   "camera \"bos-0001\": duplicate camera id");
}

static void
test_config_load_rejects_duplicate_jurisdiction (Fixture *fixture, gconstpointer data)
{
  check_duplicate (fixture, "{ id = \"cambridge\";", "{ id = \"boston\";",
                   "{ id = \"boston\"", "{ id = \"boston\"",
                   "jurisdiction \"boston\": duplicate jurisdiction id");
}

static void
test_config_load_rejects_duplicate_agency (Fixture *fixture, gconstpointer data)
{
  check_duplicate (fixture, "    token_key = \"keys/state-police.pub.pem\"; }\n",
                   "    token_key = \"keys/state-police.pub.pem\"; },\n"
                   "  { id = \"state-police\"; name = \"Second\";\n"
                   "    token_issuer = \"https://idp.second.example\";\n"
                   "    token_key = \"keys/second.pub.pem\"; }\n",
                   "{ id = \"state-police\"", "{ id = \"state-police\"",
                   "agency \"state-police\": duplicate agency id");
}

static void
test_config_load_rejects_duplicate_profile (Fixture *fixture, gconstpointer data)
{
  check_duplicate (fixture, "{ name = \"legacy-640\";", "{ name = \"browser\";",
                   "{ name = \"browser\"", "{ name = \"browser\"",
                   "viewer profile \"browser\": duplicate viewer profile name");
}

static void
test_config_load_reports_every_problem (Fixture *fixture, gconstpointer data)
{
  g_autofree char *step1 = text_replace (base_config, "ice_udp_ports = [20000, 20999];",
                                         "ice_udp_ports = [20999, 20000];");
  g_autofree char *step2 = text_replace (step1, "installed = \"2020-08-11\";", "installed = \"2020-02-30\";");
  g_autofree char *text = text_replace (step2, "max_kbps = 800;", "max_kbps = 0;");
  g_autofree char *path = fixture_write (fixture, "many.conf", text);
  g_autofree char *message = load_expect_invalid (path);
  g_auto (GStrv) lines = g_strsplit (message, "\n", -1);
  int ports_line = text_line_of (text, "ice_udp_ports", 1);
  int installed_line = text_line_of (text, "2020-02-30", 1);
  int kbps_line = text_line_of (text, "max_kbps = 0", 1);

  g_assert_cmpuint (g_strv_length (lines), ==, 3);
  assert_problem (message, path, ports_line, "ice_udp_ports [20999, 20000] is invalid");
  assert_problem (message, path, installed_line, "installed \"2020-02-30\" is not a valid date");
  assert_problem (message, path, kbps_line, "max_kbps 0 is out of range");

  /* One line per problem, in file order. */
  g_assert_true (ports_line < installed_line && installed_line < kbps_line);
  g_assert_nonnull (strstr (lines[0], "ice_udp_ports"));
  g_assert_nonnull (strstr (lines[1], "installed"));
  g_assert_nonnull (strstr (lines[2], "max_kbps"));
}

static void
test_config_load_hides_source_password (Fixture *fixture, gconstpointer data)
{
  g_autofree char *step1 = text_replace (base_config, "source_password = \"secret-pw\";",
                                         "source_password = 42;");
  g_autofree char *text = text_replace (step1, "source = \"rtsps://cam.chelsea.example:322/stream1\";",
                                        "source = \"rtsp://admin:hunter2@192.0.2.40/stream\";");
  g_autofree char *path = fixture_write (fixture, "password.conf", text);
  g_autofree char *message = load_expect_invalid (path);

  assert_problem (message, path, text_line_of (text, "source_password", 1),
                  "source_password must be a string");
  g_assert_null (strstr (message, "hunter2"));
  g_assert_null (strstr (message, "admin"));
}

static void
test_config_load_escapes_control_characters (Fixture *fixture, gconstpointer data)
{
  g_autofree char *text = text_replace (base_config, "installed = \"2020-08-11\";",
                                        "installed = \"2020\\n08-11\";");
  g_autofree char *path = fixture_write (fixture, "control.conf", text);
  g_autofree char *message = load_expect_invalid (path);
  g_auto (GStrv) lines = g_strsplit (message, "\n", -1);

  g_assert_cmpuint (g_strv_length (lines), ==, 1);
  assert_problem (message, path, text_line_of (text, "installed = \"2020", 1),
                  "installed \"2020\\x0a08-11\" is not a valid date");
}

static void
test_config_load_rejects_syntax_error (Fixture *fixture, gconstpointer data)
{
  g_autofree char *text = text_replace (base_config, "max_fps = 15;", "max_fps = ;");
  g_autofree char *path = fixture_write (fixture, "syntax.conf", text);
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsConfig) config = cims_config_load (path, &error);
  g_autofree char *prefix = g_strdup_printf ("%s:%d: syntax error: ", path,
                                             text_line_of (text, "max_fps = ;", 1));

  g_assert_null (config);
  g_assert_error (error, CIMS_CONFIG_ERROR, CIMS_CONFIG_ERROR_SYNTAX);
  g_assert_true (g_str_has_prefix (error->message, prefix));
}

static void
test_config_load_rejects_nul_byte (Fixture *fixture, gconstpointer data)
{
  g_autofree char *path = g_build_filename (fixture->dir, "nul.conf", NULL);
  g_autofree char *prefix = g_strdup_printf ("%s:2: syntax error: ", path);
  static const char text[] = "hub: {\n  http_listen = \"a\0\";\n};\n";
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsConfig) config = NULL;

  g_file_set_contents (path, text, sizeof text - 1, &error);
  g_assert_no_error (error);
  config = cims_config_load (path, &error);

  g_assert_null (config);
  g_assert_error (error, CIMS_CONFIG_ERROR, CIMS_CONFIG_ERROR_SYNTAX);
  g_assert_true (g_str_has_prefix (error->message, prefix));
}

static void
test_config_load_rejects_missing_file (Fixture *fixture, gconstpointer data)
{
  g_autofree char *path = g_build_filename (fixture->dir, "absent.conf", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsConfig) config = cims_config_load (path, &error);

  g_assert_null (config);
  g_assert_error (error, CIMS_CONFIG_ERROR, CIMS_CONFIG_ERROR_READ);
  g_assert_nonnull (strstr (error->message, path));
}

static void
test_config_load_accepts_ipv6_listen (Fixture *fixture, gconstpointer data)
{
  g_autofree char *text = text_replace (base_config, "http_listen = \"127.0.0.1:8080\";",
                                        "http_listen = \"[::1]:8443\";");
  g_autofree char *path = fixture_write (fixture, "ipv6.conf", text);
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsConfig) config = cims_config_load (path, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (config->http_host, ==, "::1");
  g_assert_cmpuint (config->http_port, ==, 8443);
}

static void
test_config_load_out_of_service_boundaries (Fixture *fixture, gconstpointer data)
{
  g_autofree char *path = fixture_write (fixture, "periods.conf", base_config);
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsConfig) config = cims_config_load (path, &error);
  const CimsConfigCamera *bos;
  const CimsConfigCamera *chl;
  gint64 from_us = utc_us (2024, 1, 10, 0, 0, 0);
  gint64 to_end_us = utc_us (2024, 2, 2, 0, 0, 0);

  g_assert_no_error (error);
  bos = find_camera_checked (config, "bos-0001");
  chl = find_camera_checked (config, "chl-0001");

  /* "2024-01-10" to "2024-02-01": both whole days, the end exclusive. */
  g_assert_false (cims_config_camera_is_out_of_service (bos, from_us - 1));
  g_assert_true (cims_config_camera_is_out_of_service (bos, from_us));
  g_assert_true (cims_config_camera_is_out_of_service (bos, utc_us (2024, 1, 20, 12, 0, 0)));
  g_assert_true (cims_config_camera_is_out_of_service (bos, to_end_us - 1));
  g_assert_false (cims_config_camera_is_out_of_service (bos, to_end_us));

  /* 08:00:00Z to 12:30:00Z on 2024-03-01, the end exclusive. */
  g_assert_false (cims_config_camera_is_out_of_service (bos, utc_us (2024, 3, 1, 7, 59, 59)));
  g_assert_true (cims_config_camera_is_out_of_service (bos, utc_us (2024, 3, 1, 8, 0, 0)));
  g_assert_true (cims_config_camera_is_out_of_service (bos, utc_us (2024, 3, 1, 12, 29, 59)));
  g_assert_false (cims_config_camera_is_out_of_service (bos, utc_us (2024, 3, 1, 12, 30, 0)));

  g_assert_false (cims_config_camera_is_out_of_service (chl, utc_us (2024, 1, 20, 12, 0, 0)));
}

static void
test_config_id_is_valid (void)
{
  const char *const valid[] = { "bos-0001", "boston", "a", "0", "state-police", "cam.1_b", "a..b" };
  const char *const invalid[] = { "../x", "/etc", "", "a/b", "A", "Boston", "-a", ".hidden",
                                  "..", "a b", "caf\xc3\xa9" };
  g_autofree char *max_length = g_strnfill (64, 'a');
  g_autofree char *too_long = g_strnfill (65, 'a');

  for (guint i = 0; i < G_N_ELEMENTS (valid); i++)
    g_assert_true (cims_config_id_is_valid (valid[i]));

  for (guint i = 0; i < G_N_ELEMENTS (invalid); i++)
    {
      g_test_message ("id \"%s\"", invalid[i]);
      g_assert_false (cims_config_id_is_valid (invalid[i]));
    }

  g_assert_true (cims_config_id_is_valid (max_length));
  g_assert_false (cims_config_id_is_valid (too_long));
  g_assert_false (cims_config_id_is_valid (NULL));
}

static char *
shipped_config_path (const char *name)
{
  const char *dir = g_getenv ("CIMS_CONFIG_DIR");

  if (dir == NULL)
    return NULL;

  return g_build_filename (dir, name, NULL);
}

/* Every setting of the hub group, each of which the example must show,
 * set or commented out. */
static const char *const hub_setting_names[] = {
  "http_listen", "ice_udp_ports", "public_addresses", "state_dir", "idle_source_stop_s",
  "source_connect_timeout_ms", "reconnect_backoff_ms", "ingest_latency_ms", "incident_max_s",
  "whep_rate_per_client", "whep_rate_total", "max_sessions_per_user", "max_sessions_per_camera",
  "media_workers", "http_idle_timeout_s", "dtls_certificate", "dtls_private_key", "cors_origins",
  "trusted_proxies", "token_audience", "default_profile", "regional_auditors",
};

/* The example's lines that claim a default; without them the loader must
 * apply the same values. */
static const char *const example_default_lines[] = {
  "  source_connect_timeout_ms = 8000;\n", "  reconnect_backoff_ms = [500, 30000];", "  ingest_latency_ms = 50;",
  "  http_idle_timeout_s = 60;", "  incident_max_s = 259200;\n", "  whep_rate_per_client = 10;\n",
  "  whep_rate_total = 200;\n", "  max_sessions_per_user = 16;\n", "  max_sessions_per_camera = 2000;\n",
  "  media_workers = 0;\n",
};

static void
check_example_shows_every_hub_setting (const char *text)
{
  for (guint i = 0; i < G_N_ELEMENTS (hub_setting_names); i++)
    {
      g_autofree char *set = g_strdup_printf ("\n  %s = ", hub_setting_names[i]);
      g_autofree char *commented = g_strdup_printf ("\n  # %s = ", hub_setting_names[i]);

      g_test_message ("hub setting %s", hub_setting_names[i]);
      g_assert_true (strstr (text, set) != NULL || strstr (text, commented) != NULL);
    }
}

static void
check_example_defaults (Fixture *fixture, const char *text, const CimsConfig *example)
{
  g_autofree char *without = g_strdup (text);
  g_autofree char *path = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsConfig) defaults = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (example_default_lines); i++)
    {
      char *shorter = text_replace (without, example_default_lines[i], "");

      g_free (without);
      without = shorter;
    }
  path = fixture_write (fixture, "example-defaults.conf", without);
  defaults = cims_config_load (path, &error);
  g_assert_no_error (error);

  g_assert_cmpuint (example->source_connect_timeout_ms, ==, defaults->source_connect_timeout_ms);
  g_assert_cmpuint (example->reconnect_min_ms, ==, defaults->reconnect_min_ms);
  g_assert_cmpuint (example->reconnect_max_ms, ==, defaults->reconnect_max_ms);
  g_assert_cmpuint (example->ingest_latency_ms, ==, defaults->ingest_latency_ms);
  g_assert_cmpuint (example->http_idle_timeout_s, ==, defaults->http_idle_timeout_s);
  g_assert_cmpuint (example->incident_max_s, ==, defaults->incident_max_s);
  g_assert_cmpuint (example->whep_rate_per_client, ==, defaults->whep_rate_per_client);
  g_assert_cmpuint (example->whep_rate_total, ==, defaults->whep_rate_total);
  g_assert_cmpuint (example->max_sessions_per_user, ==, defaults->max_sessions_per_user);
  g_assert_cmpuint (example->max_sessions_per_camera, ==, defaults->max_sessions_per_camera);
  g_assert_cmpuint (example->media_workers, ==, defaults->media_workers);
}

static void
test_config_load_example_file (Fixture *fixture, gconstpointer data)
{
  g_autofree char *path = shipped_config_path ("example.conf");
  g_autofree char *text = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsConfig) config = NULL;
  const CimsConfigProfile *legacy;

  if (path == NULL)
    {
      g_test_skip ("CIMS_CONFIG_DIR is not set");
      return;
    }

  config = cims_config_load (path, &error);
  g_assert_no_error (error);
  g_assert_false (cims_config_find_jurisdiction (config, "cambridge")->participates);
  g_assert_nonnull (cims_config_find_agency (config, "state-police"));
  g_assert_cmpuint (config->cameras->len, >=, 3);
  legacy = cims_config_find_profile (config, "legacy-640");
  g_assert_nonnull (legacy);
  g_assert_cmpstr (legacy->codecs[0], ==, "h264");
  g_assert_null (legacy->codecs[1]);
  g_assert_cmpuint (legacy->max_width, ==, 640);
  g_assert_cmpuint (legacy->max_height, ==, 360);
  g_assert_cmpuint (legacy->max_fps, ==, 15);
  g_assert_cmpuint (legacy->max_kbps, ==, 800);
  g_assert_nonnull (config->regional_auditors[0]);

  g_file_get_contents (path, &text, NULL, &error);
  g_assert_no_error (error);
  check_example_shows_every_hub_setting (text);
  check_example_defaults (fixture, text, config);
}

static void
check_demo_config (const CimsConfig *config, const char *dir)
{
  g_autofree char *boston_key = g_build_filename (dir, "keys", "boston.pub.pem", NULL);
  const char *const camera_ids[] = { "bos-0001", "bos-0002", "chl-0001", "evt-0001", "som-0001" };
  const CimsConfigCamera *everett;

  g_assert_cmpstr (config->state_dir, ==, dir);
  g_assert_cmpstr (config->http_host, ==, "127.0.0.1");
  g_assert_cmpuint (config->http_port, ==, 8080);
  g_assert_cmpuint (config->ice_port_min, ==, 20000);
  g_assert_cmpuint (config->ice_port_max, ==, 20199);
  g_assert_cmpstr (cims_config_find_jurisdiction (config, "boston")->token_key_path, ==, boston_key);
  g_assert_cmpstr (cims_config_find_jurisdiction (config, "somerville")->token_issuer, ==,
                   "https://idp.somerville.demo.cimshub");
  g_assert_false (cims_config_find_jurisdiction (config, "cambridge")->participates);
  g_assert_nonnull (cims_config_find_agency (config, "state-police"));

  g_assert_cmpuint (config->cameras->len, ==, G_N_ELEMENTS (camera_ids));
  for (guint i = 0; i < G_N_ELEMENTS (camera_ids); i++)
    {
      const CimsConfigCamera *camera = find_camera_checked (config, camera_ids[i]);
      g_autofree char *source = g_strdup_printf ("rtsp://127.0.0.1:8554/%s", camera_ids[i]);

      g_assert_cmpstr (camera->source, ==, source);
    }

  g_assert_true (find_camera_checked (config, "bos-0001")->has_audio);
  everett = find_camera_checked (config, "evt-0001");
  g_assert_cmpstr (everett->shared_with[0], ==, "chelsea");
  g_assert_null (everett->shared_with[1]);
  g_assert_true (cims_config_camera_is_out_of_service (find_camera_checked (config, "som-0001"),
                                                       utc_us (2024, 3, 10, 12, 0, 0)));
  g_assert_nonnull (cims_config_find_profile (config, "browser"));
  g_assert_nonnull (cims_config_find_profile (config, "legacy-640"));
}

static void
test_config_load_demo_file (Fixture *fixture, gconstpointer data)
{
  g_autofree char *source_path = shipped_config_path ("demo.conf");
  g_autofree char *text = NULL;
  g_autofree char *path = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsConfig) config = NULL;

  if (source_path == NULL)
    {
      g_test_skip ("CIMS_CONFIG_DIR is not set");
      return;
    }

  /* Load it where the demo puts it: copied into a fresh state directory. */
  g_file_get_contents (source_path, &text, NULL, &error);
  g_assert_no_error (error);
  path = fixture_write (fixture, "demo.conf", text);
  config = cims_config_load (path, &error);

  g_assert_no_error (error);
  check_demo_config (config, fixture->dir);
}

static void
add_fixture_test (const char *test_path, gconstpointer data,
                  void (*test_func) (Fixture *, gconstpointer))
{
  g_test_add (test_path, Fixture, data, fixture_set_up, test_func, fixture_tear_down);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  add_fixture_test ("/config/load/valid-file", NULL, test_config_load_valid_file);
  add_fixture_test ("/config/load/applies-defaults", NULL, test_config_load_applies_defaults);
  add_fixture_test ("/config/load/resolves-relative-config-path", NULL,
                    test_config_load_resolves_relative_config_path);
  add_fixture_test ("/config/load/ref-counts", NULL, test_config_load_ref_counts);
  add_fixture_test ("/config/load/regional-auditors", NULL, test_config_load_regional_auditors);
  add_fixture_test ("/config/load/accepts-ipv6-listen", NULL, test_config_load_accepts_ipv6_listen);
  add_fixture_test ("/config/load/widens-only-integer-literals", NULL,
                    test_config_load_widens_only_integer_literals);
  add_fixture_test ("/config/load/rejects-wide-integer-in-include", NULL,
                    test_config_load_rejects_wide_integer_in_include);

  for (guint i = 0; i < G_N_ELEMENTS (reject_cases); i++)
    {
      g_autofree char *test_path = g_strdup_printf ("/config/load/rejects/%s", reject_cases[i].test_path);

      add_fixture_test (test_path, &reject_cases[i], test_config_load_rejects);
    }

  add_fixture_test ("/config/load/rejects-duplicate-camera", NULL, test_config_load_rejects_duplicate_camera);
  add_fixture_test ("/config/load/rejects-duplicate-jurisdiction", NULL,
                    test_config_load_rejects_duplicate_jurisdiction);
  add_fixture_test ("/config/load/rejects-duplicate-agency", NULL, test_config_load_rejects_duplicate_agency);
  add_fixture_test ("/config/load/rejects-duplicate-profile", NULL, test_config_load_rejects_duplicate_profile);
  add_fixture_test ("/config/load/reports-every-problem", NULL, test_config_load_reports_every_problem);
  add_fixture_test ("/config/load/hides-source-password", NULL, test_config_load_hides_source_password);
  add_fixture_test ("/config/load/escapes-control-characters", NULL,
                    test_config_load_escapes_control_characters);
  add_fixture_test ("/config/load/rejects-syntax-error", NULL, test_config_load_rejects_syntax_error);
  add_fixture_test ("/config/load/rejects-nul-byte", NULL, test_config_load_rejects_nul_byte);
  add_fixture_test ("/config/load/rejects-missing-file", NULL, test_config_load_rejects_missing_file);
  add_fixture_test ("/config/load/out-of-service-boundaries", NULL, test_config_load_out_of_service_boundaries);
  add_fixture_test ("/config/load/demo-file", NULL, test_config_load_demo_file);
  add_fixture_test ("/config/load/example-file", NULL, test_config_load_example_file);
  g_test_add_func ("/config/id-is-valid", test_config_id_is_valid);

  return g_test_run ();
}
