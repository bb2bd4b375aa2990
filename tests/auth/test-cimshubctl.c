/* SPDX-License-Identifier: Apache-2.0 */
/* Runs the built cimshubctl (path in the CIMSHUBCTL environment variable):
 * tokens it mints verify with the library, check-config reports FILE:LINE,
 * and usage errors exit with status 2. */

#include <string.h>
#include <sys/wait.h>

#include <glib.h>

#include "auth/auth.h"
#include "auth-test-region.h"

static AuthTestRegion *region;
static CimsConfig *config;
static CimsAuthKeyring *keyring;
static const char *cimshubctl_path;

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

/* Runs cimshubctl with the NULL-terminated arguments and waits for it. */
static CtlResult *
ctl_run (const char *first_arg, ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  CtlResult *result = g_new0 (CtlResult, 1);
  int wait_status = 0;
  va_list args;

  g_ptr_array_add (argv, (char *) cimshubctl_path);
  va_start (args, first_arg);
  for (const char *arg = first_arg; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, (char *) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);

  g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                &result->out, &result->err, &wait_status, &error);
  g_assert_no_error (error);
  g_assert_true (WIFEXITED (wait_status));
  result->exit_status = WEXITSTATUS (wait_status);
  g_test_message ("exit %d, stderr: %s", result->exit_status, result->err);

  return result;
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
  g_autofree char *expected = g_strdup_printf ("%s: OK (4 jurisdictions, 1 agencies, "
                                               "4 cameras, 1 profiles)\n", region->config_path);

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
  g_assert_nonnull (strstr (result->err, "unknown subcommand \"token burn\""));
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

int
main (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);

  cimshubctl_path = g_getenv ("CIMSHUBCTL");
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
  g_test_add_func ("/auth/cimshubctl/check-config-requires-file", test_cimshubctl_check_config_requires_file);
  g_test_add_func ("/auth/cimshubctl/rejects-unknown-subcommand", test_cimshubctl_rejects_unknown_subcommand);
  g_test_add_func ("/auth/cimshubctl/rejects-unknown-token-subcommand", test_cimshubctl_rejects_unknown_token_subcommand);
  g_test_add_func ("/auth/cimshubctl/help-lists-subcommands", test_cimshubctl_help_lists_subcommands);
  status = g_test_run ();

  cims_auth_keyring_free (keyring);
  cims_config_unref (config);
  auth_test_region_free (region);

  return status;
}
