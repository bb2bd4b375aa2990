/* SPDX-License-Identifier: Apache-2.0 */
/* Collecting configuration problems as "FILE:LINE: message" lines, and
 * reading typed settings out of libconfig groups with those reports made
 * for missing settings and wrong types. Checks of the values are elsewhere. */
#include "config/config-private.h"

#include <string.h>

static void
problem_clear (CimsConfigProblem *problem)
{
  g_free (problem->file);
  g_free (problem->text);
}

void
cims_config_loader_init (CimsConfigLoader *loader, const char *path, CimsConfig *config)
{
  g_autofree char *absolute = g_canonicalize_filename (path, NULL);

  loader->path = path;
  loader->base_dir = g_path_get_dirname (absolute);
  loader->config = config;
  loader->problems = g_array_new (FALSE, TRUE, sizeof (CimsConfigProblem));
  g_array_set_clear_func (loader->problems, (GDestroyNotify) problem_clear);
  loader->first_ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  loader->issuers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
}

void
cims_config_loader_clear (CimsConfigLoader *loader)
{
  g_clear_pointer (&loader->base_dir, g_free);
  g_clear_pointer (&loader->problems, g_array_unref);
  g_clear_pointer (&loader->first_ids, g_hash_table_unref);
  g_clear_pointer (&loader->issuers, g_hash_table_unref);
}

/* Escapes control characters so that one problem stays one line, whatever
 * the offending value contains. */
static char *
escape_controls (const char *text)
{
  GString *escaped = g_string_sized_new (strlen (text));

  for (const char *p = text; *p != '\0'; p++)
    {
      guchar c = (guchar) *p;

      if (c < 0x20 || c == 0x7f)
        g_string_append_printf (escaped, "\\x%02x", c);
      else
        g_string_append_c (escaped, *p);
    }

  return g_string_free (escaped, FALSE);
}

static void
loader_add_problem (CimsConfigLoader *loader, const config_setting_t *setting,
                    const char *subject, const char *format, va_list args)
{
  g_autofree char *message = g_strdup_vprintf (format, args);
  g_autofree char *line_text = NULL;
  CimsConfigProblem problem = { 0 };
  const char *file = NULL;
  int line = 0;

  if (setting != NULL)
    {
      file = config_setting_source_file (setting);
      line = config_setting_source_line (setting);
    }

  /* The root group has no line of its own, so its problems point at line 1. */
  problem.file = g_strdup (file != NULL ? file : loader->path);
  problem.line = MAX (line, 1);
  problem.order = loader->problems->len;
  if (subject != NULL)
    line_text = g_strdup_printf ("%s: %s", subject, message);
  else
    line_text = g_steal_pointer (&message);
  problem.text = escape_controls (line_text);

  g_array_append_val (loader->problems, problem);
}

/* Records a problem at @setting's file and line (the file itself when
 * @setting is NULL). @subject names the entry, e.g. `camera "bos-0001"`,
 * or is NULL for top-level problems. */
void
cims_config_loader_report (CimsConfigLoader *loader, const config_setting_t *setting,
                           const char *subject, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  loader_add_problem (loader, setting, subject, format, args);
  va_end (args);
}

/* Records a problem at the line of @group's member @name, or at @group's
 * line when the member is absent. */
void
cims_config_loader_report_member (CimsConfigLoader *loader, const config_setting_t *group,
                                  const char *name, const char *subject,
                                  const char *format, ...)
{
  const config_setting_t *member = config_setting_get_member (group, name);
  va_list args;

  va_start (args, format);
  loader_add_problem (loader, member != NULL ? member : group, subject, format, args);
  va_end (args);
}

/* Sorts problems so that the main file's come first, then included files',
 * each by line, and problems on one line in the order they were found. */
static int
problem_compare (gconstpointer a, gconstpointer b, gpointer user_data)
{
  const CimsConfigProblem *pa = a;
  const CimsConfigProblem *pb = b;
  const char *main_path = user_data;
  gboolean a_is_main = g_strcmp0 (pa->file, main_path) == 0;
  gboolean b_is_main = g_strcmp0 (pb->file, main_path) == 0;
  int by_file;

  if (a_is_main != b_is_main)
    return a_is_main ? -1 : 1;

  by_file = g_strcmp0 (pa->file, pb->file);
  if (by_file != 0)
    return by_file;

  if (pa->line != pb->line)
    return pa->line < pb->line ? -1 : 1;

  return pa->order < pb->order ? -1 : (pa->order > pb->order);
}

/**
 * cims_config_loader_format_problems:
 * Returns: (transfer full) (nullable): every problem reported so far, one
 * "FILE:LINE: message" line each and sorted by position, or NULL when none.
 */
char *
cims_config_loader_format_problems (CimsConfigLoader *loader)
{
  GString *text;

  if (loader->problems->len == 0)
    return NULL;

  g_array_sort_with_data (loader->problems, problem_compare, (gpointer) loader->path);

  text = g_string_new (NULL);
  for (guint i = 0; i < loader->problems->len; i++)
    {
      const CimsConfigProblem *problem = &g_array_index (loader->problems, CimsConfigProblem, i);

      if (i > 0)
        g_string_append_c (text, '\n');
      g_string_append_printf (text, "%s:%d: %s", problem->file, problem->line, problem->text);
    }

  return g_string_free (text, FALSE);
}

/**
 * cims_config_loader_claim_id:
 * Records @setting as the first definition of @id among the entries of
 * @kind (e.g. "camera").
 * Returns: (transfer full) (nullable): NULL when @id is new; otherwise
 * "line N" (or "FILE:N" for another file) of the first definition.
 */
char *
cims_config_loader_claim_id (CimsConfigLoader *loader, const char *kind,
                             const char *id, const config_setting_t *setting)
{
  g_autofree char *key = g_strdup_printf ("%s\x1f%s", kind, id);
  const config_setting_t *first = g_hash_table_lookup (loader->first_ids, key);
  const char *first_file;

  if (first == NULL)
    {
      g_hash_table_insert (loader->first_ids, g_steal_pointer (&key), (gpointer) setting);
      return NULL;
    }

  first_file = config_setting_source_file (first);
  if (first_file == NULL || g_strcmp0 (first_file, config_setting_source_file (setting)) == 0)
    return g_strdup_printf ("line %u", config_setting_source_line (first));

  return g_strdup_printf ("%s:%u", first_file, config_setting_source_line (first));
}

static const char *
setting_type_describe (const config_setting_t *setting)
{
  switch (config_setting_type (setting))
    {
    case CONFIG_TYPE_GROUP:
      return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
      return "an integer";
    case CONFIG_TYPE_FLOAT:
      return "a floating-point number";
    case CONFIG_TYPE_STRING:
      return "a string";
    case CONFIG_TYPE_BOOL:
      return "a boolean";
    case CONFIG_TYPE_ARRAY:
      return "an array";
    case CONFIG_TYPE_LIST:
      return "a list";
    default:
      return "an unknown type";
    }
}

static config_setting_t *
read_member (CimsConfigLoader *loader, const config_setting_t *group,
             const char *name, const char *subject, gboolean required)
{
  config_setting_t *member = config_setting_get_member (group, name);

  if (member == NULL && required)
    cims_config_loader_report (loader, group, subject, "missing required setting \"%s\"", name);

  return member;
}

static void
report_wrong_type (CimsConfigLoader *loader, const config_setting_t *member,
                   const char *subject, const char *expected)
{
  cims_config_loader_report (loader, member, subject, "%s must be %s, found %s",
                             config_setting_name (member), expected,
                             setting_type_describe (member));
}

/**
 * cims_config_read_string:
 * Reads a non-empty string member of @group.
 * Returns: (transfer none) (nullable): the string, owned by libconfig, or
 * NULL when it is absent or invalid (reported unless absent and optional).
 */
const char *
cims_config_read_string (CimsConfigLoader *loader, const config_setting_t *group,
                         const char *name, const char *subject, gboolean required)
{
  config_setting_t *member = read_member (loader, group, name, subject, required);
  const char *value;

  if (member == NULL)
    return NULL;

  if (config_setting_type (member) != CONFIG_TYPE_STRING)
    {
      report_wrong_type (loader, member, subject, "a string");
      return NULL;
    }

  value = config_setting_get_string (member);
  if (value == NULL || value[0] == '\0')
    {
      cims_config_loader_report (loader, member, subject, "%s must not be empty", name);
      return NULL;
    }

  return value;
}

/* Returns the boolean member @name, or @default_value when it is absent
 * or not a boolean (reported unless absent and optional). */
gboolean
cims_config_read_bool (CimsConfigLoader *loader, const config_setting_t *group,
                       const char *name, const char *subject,
                       gboolean required, gboolean default_value)
{
  config_setting_t *member = read_member (loader, group, name, subject, required);

  if (member == NULL)
    return default_value;

  if (config_setting_type (member) != CONFIG_TYPE_BOOL)
    {
      report_wrong_type (loader, member, subject, "true or false");
      return default_value;
    }

  return config_setting_get_bool (member) ? TRUE : FALSE;
}

/* Checks that @setting is an integer in [min, max] and stores it. */
static gboolean
read_uint_value (CimsConfigLoader *loader, const config_setting_t *setting,
                 const char *label, const char *subject, guint min, guint max, guint *value)
{
  long long number;

  if (config_setting_type (setting) != CONFIG_TYPE_INT &&
      config_setting_type (setting) != CONFIG_TYPE_INT64)
    {
      cims_config_loader_report (loader, setting, subject, "%s must be an integer, found %s",
                                 label, setting_type_describe (setting));
      return FALSE;
    }

  /* config-load.c gives every integer literal of the main file the L suffix
   * and rejects one in an included file that would need it, so this is the
   * number as written, never one wrapped to 32 bits. */
  number = config_setting_get_int64 (setting);
  if (number < (long long) min || number > (long long) max)
    {
      cims_config_loader_report (loader, setting, subject, "%s %lld is out of range (%u to %u)",
                                 label, number, min, max);
      return FALSE;
    }

  *value = (guint) number;

  return TRUE;
}

/* Reads an integer member in [@min, @max] into @value. Returns FALSE and
 * leaves @value alone when it is absent (reported if required) or invalid
 * (reported), so a default set beforehand survives. */
gboolean
cims_config_read_uint (CimsConfigLoader *loader, const config_setting_t *group,
                       const char *name, const char *subject, gboolean required,
                       guint min, guint max, guint *value)
{
  config_setting_t *member = read_member (loader, group, name, subject, required);

  if (member == NULL)
    return FALSE;

  return read_uint_value (loader, member, name, subject, min, max, value);
}

/* Reads `name = [first, second]`, each in [@min, @max] and first <= second.
 * Returns FALSE, leaving the outputs alone, when absent or invalid. */
gboolean
cims_config_read_uint_pair (CimsConfigLoader *loader, const config_setting_t *group,
                            const char *name, const char *subject, gboolean required,
                            guint min, guint max, guint *first, guint *second)
{
  config_setting_t *member = read_member (loader, group, name, subject, required);
  g_autofree char *first_label = g_strdup_printf ("%s[0]", name);
  g_autofree char *second_label = g_strdup_printf ("%s[1]", name);
  guint a = 0;
  guint b = 0;

  if (member == NULL)
    return FALSE;

  if (config_setting_type (member) != CONFIG_TYPE_ARRAY || config_setting_length (member) != 2)
    {
      cims_config_loader_report (loader, member, subject,
                                 "%s must be an array of two integers [min, max]", name);
      return FALSE;
    }

  if (!read_uint_value (loader, config_setting_get_elem (member, 0), first_label, subject, min, max, &a) ||
      !read_uint_value (loader, config_setting_get_elem (member, 1), second_label, subject, min, max, &b))
    return FALSE;

  if (a > b)
    {
      cims_config_loader_report (loader, member, subject,
                                 "%s [%u, %u] is invalid: the minimum is above the maximum",
                                 name, a, b);
      return FALSE;
    }

  *first = a;
  *second = b;

  return TRUE;
}

/* Returns TRUE when @setting can hold a sequence: an array or list, and an
 * empty `[]` or `()` either way. */
static gboolean
setting_is_sequence (const config_setting_t *setting)
{
  return config_setting_type (setting) == CONFIG_TYPE_ARRAY ||
         config_setting_type (setting) == CONFIG_TYPE_LIST;
}

/**
 * cims_config_read_strv:
 * Reads an array or list of non-empty strings.
 * Returns: (transfer full) (nullable): a NULL-terminated copy, empty when
 * the member is absent and optional; NULL when it is invalid (reported) or
 * absent and required (reported).
 */
char **
cims_config_read_strv (CimsConfigLoader *loader, const config_setting_t *group,
                       const char *name, const char *subject, gboolean required)
{
  config_setting_t *member = read_member (loader, group, name, subject, required);
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();
  gboolean is_valid = TRUE;

  if (member == NULL)
    return required ? NULL : g_new0 (char *, 1);

  if (!setting_is_sequence (member))
    {
      report_wrong_type (loader, member, subject, "an array of strings");
      return NULL;
    }

  for (int i = 0; i < config_setting_length (member); i++)
    {
      const config_setting_t *element = config_setting_get_elem (member, i);
      const char *value = config_setting_get_string (element);

      if (config_setting_type (element) != CONFIG_TYPE_STRING || value == NULL || value[0] == '\0')
        {
          cims_config_loader_report (loader, element, subject,
                                     "%s[%d] must be a non-empty string", name, i);
          is_valid = FALSE;
          continue;
        }
      g_strv_builder_add (builder, value);
    }

  if (!is_valid)
    return NULL;

  return g_strv_builder_end (builder);
}

/**
 * cims_config_read_list:
 * Reads a list of groups, `( { ... }, ... )`. An empty `[]` also counts.
 * Returns: (transfer none) (nullable): the setting, or NULL when absent
 * (reported if required) or of another type (reported).
 */
config_setting_t *
cims_config_read_list (CimsConfigLoader *loader, const config_setting_t *group,
                       const char *name, const char *subject, gboolean required)
{
  config_setting_t *member = read_member (loader, group, name, subject, required);

  if (member == NULL)
    return NULL;

  if (!setting_is_sequence (member) ||
      (config_setting_type (member) == CONFIG_TYPE_ARRAY && config_setting_length (member) > 0))
    {
      report_wrong_type (loader, member, subject, "a list of groups ( { ... }, ... )");
      return NULL;
    }

  return member;
}

/**
 * cims_config_read_path:
 * Reads a file or directory path and resolves it against the directory of
 * the configuration file. The file need not exist yet.
 * Returns: (transfer full) (nullable): the absolute, canonical path, or
 * NULL when absent or invalid.
 */
char *
cims_config_read_path (CimsConfigLoader *loader, const config_setting_t *group,
                       const char *name, const char *subject, gboolean required)
{
  const char *value = cims_config_read_string (loader, group, name, subject, required);

  if (value == NULL)
    return NULL;

  return g_canonicalize_filename (value, loader->base_dir);
}

/**
 * cims_config_entry_subject:
 * Names entry @index (from 0) of a list for messages: `KIND "ID"` when the
 * entry has a string member @id_name, `KIND #N` (from 1) otherwise.
 * Returns: (transfer full): the subject.
 */
char *
cims_config_entry_subject (const config_setting_t *entry, const char *kind,
                           const char *id_name, int index)
{
  const config_setting_t *id = NULL;

  if (config_setting_type (entry) == CONFIG_TYPE_GROUP)
    id = config_setting_get_member (entry, id_name);

  if (id != NULL && config_setting_type (id) == CONFIG_TYPE_STRING)
    return g_strdup_printf ("%s \"%s\"", kind, config_setting_get_string (id));

  return g_strdup_printf ("%s #%d", kind, index + 1);
}

/* Reports entry @index of @list unless it is a group. @subject names the
 * entry that contains @list, or is NULL for a top-level list. */
gboolean
cims_config_entry_is_group (CimsConfigLoader *loader, const config_setting_t *list,
                            int index, const char *subject)
{
  const config_setting_t *entry = config_setting_get_elem (list, index);

  if (config_setting_type (entry) == CONFIG_TYPE_GROUP)
    return TRUE;

  cims_config_loader_report (loader, entry, subject, "%s entry #%d must be a group { ... }, found %s",
                             config_setting_name (list), index + 1, setting_type_describe (entry));

  return FALSE;
}

/**
 * cims_config_read_id:
 * Reads the identifier @name of an entry of @kind, checks its form with
 * cims_config_id_is_valid() and reports a second entry with the same one.
 * Returns: (transfer none) (nullable): the id, owned by libconfig, also
 * for a duplicate; NULL when absent or malformed.
 */
const char *
cims_config_read_id (CimsConfigLoader *loader, const config_setting_t *entry,
                     const char *name, const char *kind, const char *subject)
{
  const char *id = cims_config_read_string (loader, entry, name, subject, TRUE);
  g_autofree char *first = NULL;

  if (id == NULL)
    return NULL;

  if (!cims_config_id_is_valid (id))
    {
      cims_config_loader_report_member (loader, entry, name, subject,
                                        "%s \"%s\" is invalid: use 1 to 64 characters of a-z, 0-9, "
                                        "'.', '_' and '-', starting with a letter or digit",
                                        name, id);
      return NULL;
    }

  first = cims_config_loader_claim_id (loader, kind, id, entry);
  if (first != NULL)
    cims_config_loader_report (loader, entry, subject, "duplicate %s %s (first defined at %s)",
                               kind, name, first);

  return id;
}

/* Levenshtein distance between two setting names, capped at 3 since only
 * closer names are worth suggesting. */
static guint
name_distance (const char *a, const char *b)
{
  gsize len_a = strlen (a);
  gsize len_b = strlen (b);
  g_autofree guint *row = NULL;

  if (len_a > 64 || len_b > 64 || (len_a > len_b ? len_a - len_b : len_b - len_a) > 2)
    return 3;

  row = g_new (guint, len_b + 1);
  for (gsize j = 0; j <= len_b; j++)
    row[j] = (guint) j;

  for (gsize i = 1; i <= len_a; i++) {
    guint diagonal = row[0];

    row[0] = (guint) i;
    for (gsize j = 1; j <= len_b; j++) {
      guint above = row[j];
      guint cost = a[i - 1] == b[j - 1] ? 0 : 1;

      row[j] = MIN (MIN (row[j] + 1, row[j - 1] + 1), diagonal + cost);
      diagonal = above;
    }
  }

  return MIN (row[len_b], 3);
}

static const char *
closest_known_name (const char *name, const char *const *known)
{
  const char *closest = NULL;
  guint best = 3;

  for (guint i = 0; known[i] != NULL; i++) {
    guint distance = name_distance (name, known[i]);

    if (distance < best) {
      best = distance;
      closest = known[i];
    }
  }

  return closest;
}

void
cims_config_check_members (CimsConfigLoader *loader, const config_setting_t *group,
                           const char *subject, const char *const *known)
{
  for (int i = 0; i < config_setting_length (group); i++) {
    const config_setting_t *member = config_setting_get_elem (group, (unsigned int) i);
    const char *name = config_setting_name (member);
    const char *closest;

    if (name == NULL || g_strv_contains (known, name))
      continue;

    closest = closest_known_name (name, known);
    if (closest != NULL)
      cims_config_loader_report (loader, member, subject, "unknown setting \"%s\"; did you mean \"%s\"?",
                                 name, closest);
    else
      cims_config_loader_report (loader, member, subject, "unknown setting \"%s\"", name);
  }
}
