/* SPDX-License-Identifier: Apache-2.0 */
/* Replays every file of a fuzz target's corpus and regression folders once
 * through its LLVMFuzzerTestOneInput, as one g_test case per file, so the
 * normal build checks each seed and crash input without libFuzzer. */

#include <stdint.h>
#include <string.h>

#include <glib.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Only targets that need set-up define it. It is weak so the others link. */
int LLVMFuzzerInitialize (int *argc, char ***argv) __attribute__ ((weak));

static gint
name_compare (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(const char *const *) a, *(const char *const *) b);
}

static void
replay_file (gconstpointer user_data)
{
  const char *path = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize size = 0;

  g_file_get_contents (path, &contents, &size, &error);
  g_assert_no_error (error);

  g_assert_cmpint (LLVMFuzzerTestOneInput ((const uint8_t *) contents, size), ==, 0);
}

/* Adds one test per file of @dir, named /fuzz/TARGET/KIND/FILE, and returns
 * the number of files. A missing folder has none. */
static guint
replay_add_folder (const char *target, const char *kind, const char *dir)
{
  g_autoptr(GDir) folder = g_dir_open (dir, 0, NULL);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  if (folder == NULL)
    return 0;

  while ((name = g_dir_read_name (folder)) != NULL) {
    if (name[0] != '.')
      g_ptr_array_add (names, g_strdup (name));
  }
  g_ptr_array_sort (names, name_compare);

  for (guint i = 0; i < names->len; i++) {
    const char *file_name = g_ptr_array_index (names, i);
    g_autofree char *test_path = g_strdup_printf ("/fuzz/%s/%s/%s", target, kind, file_name);

    /* The path string lives until the process exits, as the test does. */
    g_test_add_data_func (test_path, g_build_filename (dir, file_name, NULL), replay_file);
  }

  return names->len;
}

/* Usage: fuzz-replay-TARGET CORPUS_DIR [REGRESSIONS_DIR]. The corpus must
 * hold at least one file, so a wrong path fails instead of testing nothing. */
int
main (int argc, char **argv)
{
  guint n_corpus;

  g_test_init (&argc, &argv, NULL);

  if (argc < 2) {
    g_printerr ("usage: %s CORPUS_DIR [REGRESSIONS_DIR]\n", argv[0]);
    return 2;
  }

  if (LLVMFuzzerInitialize != NULL)
    LLVMFuzzerInitialize (&argc, &argv);

  n_corpus = replay_add_folder (CIMS_FUZZ_TARGET, "corpus", argv[1]);
  if (n_corpus == 0) {
    g_printerr ("%s: no corpus files in %s\n", argv[0], argv[1]);
    return 1;
  }
  if (argc > 2)
    replay_add_folder (CIMS_FUZZ_TARGET, "regressions", argv[2]);

  return g_test_run ();
}
