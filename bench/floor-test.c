/* SPDX-License-Identifier: Apache-2.0 */
/* Smoke test of cimshub-floor: ten viewers for about a second per suite must
 * report packets sent, received on loopback and a positive rate. The program
 * path comes from CIMS_FLOOR_PROGRAM. */

#include <glib.h>

#include <string.h>
#include <sys/wait.h>

/* Runs cimshub-floor with @extra_args after the program path, stores the wait
 * status in @wait_status and returns the standard output. */
static char *
floor_run (const char * const *extra_args, int *wait_status)
{
  const char *program = g_getenv ("CIMS_FLOOR_PROGRAM");
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *standard_error = NULL;
  char *standard_output = NULL;

  g_assert_nonnull (program);
  g_ptr_array_add (argv, (gpointer) program);
  for (guint i = 0; extra_args[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) extra_args[i]);
  g_ptr_array_add (argv, NULL);

  g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                &standard_output, &standard_error, wait_status, &error);
  g_assert_no_error (error);
  if (standard_error != NULL && standard_error[0] != '\0')
    g_test_message ("cimshub-floor stderr: %s", standard_error);

  return standard_output;
}

/* Parses the one "result key=value ..." line of @output into a table. */
static GHashTable *
floor_parse_result (const char *output)
{
  g_autoptr (GHashTable) fields = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_auto (GStrv) lines = g_strsplit (output, "\n", -1);
  guint n_results = 0;

  for (guint i = 0; lines[i] != NULL; i++) {
    g_auto (GStrv) words = NULL;

    if (!g_str_has_prefix (lines[i], "result "))
      continue;
    n_results++;
    words = g_strsplit (lines[i] + strlen ("result "), " ", -1);
    for (guint w = 0; words[w] != NULL; w++) {
      char *equals = strchr (words[w], '=');

      if (equals != NULL)
        g_hash_table_insert (fields, g_strndup (words[w], equals - words[w]), g_strdup (equals + 1));
    }
  }
  g_assert_cmpuint (n_results, ==, 1);

  return g_steal_pointer (&fields);
}

static double
field_double (GHashTable *fields, const char *key)
{
  const char *value = g_hash_table_lookup (fields, key);

  g_assert_nonnull (value);
  return g_ascii_strtod (value, NULL);
}

/* Runs K=10 for one second with @suite and checks every reported count. */
static void
floor_check_suite (const char *suite, const char *suite_name)
{
  const char *args[] = { "--viewers", "10", "--suite", suite, "--packets", "100000000",
                         "--max-seconds", "1", "--cpu", "-1", "--key-value", NULL };
  g_autoptr (GHashTable) fields = NULL;
  g_autofree char *output = NULL;
  g_autoptr (GError) error = NULL;
  int wait_status = -1;
  double source_packets;

  output = floor_run (args, &wait_status);
  g_test_message ("%s", output);
  g_spawn_check_wait_status (wait_status, &error);
  g_assert_no_error (error);

  fields = floor_parse_result (output);
  g_assert_cmpstr (g_hash_table_lookup (fields, "suite"), ==, suite_name);
  g_assert_cmpfloat (field_double (fields, "viewers"), ==, 10);

  source_packets = field_double (fields, "source_packets");
  g_assert_cmpfloat (source_packets, >, 0);
  g_assert_cmpfloat (field_double (fields, "sent"), ==, source_packets * 10);
  g_assert_cmpfloat (field_double (fields, "dropped"), ==, 0);
  g_assert_cmpfloat (field_double (fields, "received"), >, 0);
  g_assert_cmpfloat (field_double (fields, "received"), <=, source_packets * 10);

  /* The packet limit is far out of reach, so the time limit ended the run. */
  g_assert_cmpfloat (field_double (fields, "wall_s"), >=, 0.9);
  g_assert_cmpfloat (field_double (fields, "packets_per_cpu_s"), >, 0);
  g_assert_cmpfloat (field_double (fields, "viewers_per_core"), >, 0);
}

static void
test_floor_gcm_reports_positive_rate (void)
{
  floor_check_suite ("gcm", "AEAD_AES_128_GCM");
}

static void
test_floor_cm_reports_positive_rate (void)
{
  floor_check_suite ("cm", "AES_CM_128_HMAC_SHA1_80");
}

static void
test_floor_rejects_unknown_suite (void)
{
  const char *args[] = { "--viewers", "10", "--suite", "aes256", "--key-value", NULL };
  g_autofree char *output = NULL;
  int wait_status = -1;

  output = floor_run (args, &wait_status);
  g_assert_true (WIFEXITED (wait_status));
  g_assert_cmpint (WEXITSTATUS (wait_status), ==, 2);
  g_assert_null (strstr (output, "result "));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/bench/floor/gcm-reports-positive-rate", test_floor_gcm_reports_positive_rate);
  g_test_add_func ("/bench/floor/cm-reports-positive-rate", test_floor_cm_reports_positive_rate);
  g_test_add_func ("/bench/floor/rejects-unknown-suite", test_floor_rejects_unknown_suite);

  return g_test_run ();
}
