/* SPDX-License-Identifier: Apache-2.0 */
/* Loading a configuration file: reading it, parsing it with libconfig and
 * running the section parsers, which collect every problem before the load
 * fails. The checks themselves live in the config-*.c section files. */
#include "config/config.h"

#include <errno.h>
#include <string.h>

#include "config/config-private.h"

G_DEFINE_QUARK (cims-config-error-quark, cims_config_error)

/* libconfig 1.5, the version Debian 12 ships, converts an integer literal
 * without the L suffix to a 32-bit int with atoi() or strtoul(), and larger
 * values wrap: 999999999999 reads as -727379969 and 4294968296 as 1000. A
 * wrapped value may then pass a range check, and config_setting_get_int64()
 * returns it too. So the loader scans the text before libconfig does and
 * appends L to every integer literal that lacks it. libconfig then
 * reads each as a 64-bit integer, and the range checks see the number as
 * written. Widening only the large ones would break an array such as
 * [20000, 99999999999], whose elements libconfig requires to have one type. */

/* libconfig 1.5 stops at this include depth, so the scan does too. */
#define INCLUDE_MAX_DEPTH 10

typedef enum {
  LITERAL_FITS,                 /* libconfig 1.5 reads it as written, with or without L */
  LITERAL_NEEDS_SUFFIX,         /* outside the 32-bit range and without the L suffix */
  LITERAL_TOO_LARGE,            /* outside the 64-bit range, with or without L */
} LiteralRange;

typedef struct {
  const char *base_dir;         /* libconfig's include_dir */
  GString *widened;             /* the main text with L appended, or NULL in an included file */
  GString *problems;            /* "FILE:LINE: message" lines */
  guint depth;                  /* of the file being scanned; the main file is 0 */
  gboolean is_too_deep;         /* an include went past INCLUDE_MAX_DEPTH, so libconfig fails */
} IntegerScan;

static LiteralRange
literal_classify (const char *digits, gboolean is_hex, gboolean has_suffix)
{
  gboolean is_negative = digits[0] == '-';
  guint64 limit_32 = is_negative ? (guint64) G_MAXINT32 + 1 : G_MAXINT32;
  guint64 limit_64 = is_negative ? (guint64) G_MAXINT64 + 1 : G_MAXINT64;
  const char *start = digits + (digits[0] == '-' || digits[0] == '+');
  guint64 magnitude;

  errno = 0;
  magnitude = g_ascii_strtoull (is_hex ? start + 2 : start, NULL, is_hex ? 16 : 10);
  if (errno == ERANGE || magnitude > limit_64)
    return LITERAL_TOO_LARGE;

  if (has_suffix || magnitude <= limit_32)
    return LITERAL_FITS;

  return LITERAL_NEEDS_SUFFIX;
}

/* Returns the end of the number that starts at @start, which is a digit,
 * or a sign or '.' before one, as libconfig 1.5's scanner delimits it.
 * Sets *@is_integer, and for an integer *@digits_end (before any L),
 * *@is_hex and *@has_suffix. */
static const char *
number_skip (const char *start, gboolean *is_integer, const char **digits_end,
             gboolean *is_hex, gboolean *has_suffix)
{
  const char *p = start + (*start == '-' || *start == '+');

  *is_hex = p == start && p[0] == '0' && (p[1] == 'x' || p[1] == 'X') && g_ascii_isxdigit (p[2]);
  if (*is_hex)
    p += 2 + strspn (p + 2, "0123456789abcdefABCDEF");
  else
    p += strspn (p, "0123456789");

  *is_integer = TRUE;
  if (!*is_hex && *p == '.')
    {
      *is_integer = FALSE;
      p += 1 + strspn (p + 1, "0123456789");
    }

  if (!*is_hex && (*p == 'e' || *p == 'E') &&
      (g_ascii_isdigit (p[1]) || ((p[1] == '-' || p[1] == '+') && g_ascii_isdigit (p[2]))))
    {
      *is_integer = FALSE;
      p += 2 + strspn (p + 2, "0123456789");
    }

  *digits_end = p;
  *has_suffix = *is_integer && *p == 'L';
  if (*has_suffix)
    p += p[1] == 'L' ? 2 : 1;

  return p;
}

static void scan_file (IntegerScan *scan, const char *name);

/* Checks one integer literal, [@start, @digits_end), on @line of @file.
 * In the main file a literal without the L suffix gets it in
 * scan->widened, whose text up to *@copied is already written. */
static void
scan_literal (IntegerScan *scan, const char *file, int line, const char *start,
              const char *digits_end, gboolean is_hex, gboolean has_suffix, const char **copied)
{
  g_autofree char *digits = g_strndup (start, digits_end - start);
  LiteralRange range = literal_classify (digits, is_hex, has_suffix);

  if (range != LITERAL_TOO_LARGE && scan->widened != NULL)
    {
      if (!has_suffix)
        {
          g_string_append_len (scan->widened, *copied, digits_end - *copied);
          g_string_append_c (scan->widened, 'L');
          *copied = digits_end;
        }
      return;
    }

  if (range == LITERAL_FITS)
    return;

  if (scan->problems->len > 0)
    g_string_append_c (scan->problems, '\n');
  if (range == LITERAL_TOO_LARGE)
    g_string_append_printf (scan->problems, "%s:%d: integer %s is outside the 64-bit range",
                            file, line, digits);
  else
    g_string_append_printf (scan->problems, "%s:%d: integer %s needs 64 bits: write it as %sL, "
                            "because libconfig 1.5 wraps it to 32 bits in an included file",
                            file, line, digits, digits);
}

/* Skips a string, a comment or an @include directive at @p and returns
 * the character after it, or returns @p when none starts there. Counts the
 * newlines it skips in *@line and scans each included file. */
static const char *
skip_non_value (IntegerScan *scan, const char *p, const char *line_start, int *line)
{
  const char *end = p;

  if (*p == '"')
    {
      for (end = p + 1; *end != '\0' && *end != '"'; end++)
        {
          if (*end == '\\' && end[1] != '\0')
            end++;
          if (*end == '\n')
            (*line)++;
        }
      return *end == '"' ? end + 1 : end;
    }

  if (*p == '#' || g_str_has_prefix (p, "//"))
    return p + strcspn (p, "\n");

  if (g_str_has_prefix (p, "/*"))
    {
      for (end = p + 2; *end != '\0' && !g_str_has_prefix (end, "*/"); end++)
        {
          if (*end == '\n')
            (*line)++;
        }
      return *end != '\0' ? end + 2 : end;
    }

  /* libconfig takes `@include "FILE"` only after blanks at a line's start. */
  if (g_str_has_prefix (p, "@include") && strspn (line_start, " \t") == (gsize) (p - line_start) &&
      (p[8] == ' ' || p[8] == '\t'))
    {
      g_autoptr (GString) name = g_string_new (NULL);

      for (end = p + 8; *end == ' ' || *end == '\t'; end++)
        ;
      if (*end != '"')
        return end;

      for (end++; *end != '\0' && *end != '"' && *end != '\n'; end++)
        {
          if (*end == '\\' && (end[1] == '\\' || end[1] == '"'))
            end++;
          g_string_append_c (name, *end);
        }
      scan_file (scan, name->str);
      return *end == '"' ? end + 1 : end;
    }

  return p;
}

/* Scans @text, read from @file (as messages name it), for integer literals. */
static void
scan_text (IntegerScan *scan, const char *file, const char *text)
{
  const char *p = text;
  const char *line_start = text;
  const char *copied = text;
  int line = 1;

  while (*p != '\0')
    {
      const char *next = skip_non_value (scan, p, line_start, &line);
      gboolean is_integer, is_hex, has_suffix;
      const char *digits_end;

      if (next != p)
        p = next;
      else if (*p == '\n')
        {
          line++;
          line_start = ++p;
        }
      else if (g_ascii_isalpha (*p) || *p == '*')
        p += strspn (p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_*");
      else if (g_ascii_isdigit (*p) || (strchr ("-+.", *p) != NULL && (g_ascii_isdigit (p[1]) ||
                                                                     (p[1] == '.' && g_ascii_isdigit (p[2])))))
        {
          next = number_skip (p, &is_integer, &digits_end, &is_hex, &has_suffix);
          if (is_integer)
            scan_literal (scan, file, line, p, digits_end, is_hex, has_suffix, &copied);
          p = next;
        }
      else
        p++;
    }

  if (scan->widened != NULL)
    g_string_append (scan->widened, copied);
}

/* Scans the included file @name as libconfig opens it: relative to the
 * include directory, even when @name is absolute. A file that cannot be
 * read, and includes nested too deep, are left for libconfig to report.
 * After the first include that is too deep no other is scanned, so a file
 * that includes itself costs at most INCLUDE_MAX_DEPTH reads. */
static void
scan_file (IntegerScan *scan, const char *name)
{
  g_autofree char *path = g_strconcat (scan->base_dir, G_DIR_SEPARATOR_S, name, NULL);
  g_autofree char *text = NULL;
  GString *widened = scan->widened;

  if (scan->depth >= INCLUDE_MAX_DEPTH)
    scan->is_too_deep = TRUE;

  if (scan->is_too_deep || !g_file_get_contents (path, &text, NULL, NULL))
    return;

  scan->widened = NULL;
  scan->depth++;
  scan_text (scan, name, text);
  scan->depth--;
  scan->widened = widened;
}

/* Returns (transfer full) @text with an L after each integer literal that
 * lacks one. Fails with CIMS_CONFIG_ERROR_INVALID,
 * one "FILE:LINE: message" line per literal, when a literal is outside the
 * 64-bit range or an included file has one that needs the L. */
static char *
config_text_widen_integers (const char *text, const char *path, const char *base_dir, GError **error)
{
  g_autoptr (GString) widened = g_string_sized_new (strlen (text) + 16);
  g_autoptr (GString) problems = g_string_new (NULL);
  IntegerScan scan = { .base_dir = base_dir, .widened = widened, .problems = problems };

  scan_text (&scan, path, text);
  if (problems->len > 0)
    {
      g_set_error_literal (error, CIMS_CONFIG_ERROR, CIMS_CONFIG_ERROR_INVALID, problems->str);
      return NULL;
    }

  return g_string_free (g_steal_pointer (&widened), FALSE);
}

static int
text_line_at (const char *text, gsize offset)
{
  int line = 1;

  for (gsize i = 0; i < offset; i++)
    {
      if (text[i] == '\n')
        line++;
    }

  return line;
}

/* Parses @text into @document, reporting syntax errors as "FILE:LINE:". */
static gboolean
config_parse_text (config_t *document, CimsConfigLoader *loader,
                   const char *text, gsize length, GError **error)
{
  const char *nul = memchr (text, '\0', length);
  g_autofree char *widened = NULL;
  const char *file;

  /* libconfig reads a C string, so text after a NUL byte would vanish unseen. */
  if (nul != NULL)
    {
      g_set_error (error, CIMS_CONFIG_ERROR, CIMS_CONFIG_ERROR_SYNTAX,
                   "%s:%d: syntax error: NUL byte in the file", loader->path,
                   text_line_at (text, nul - text));
      return FALSE;
    }

  widened = config_text_widen_integers (text, loader->path, loader->base_dir, error);
  if (widened == NULL)
    return FALSE;

  /* Relative @include paths resolve against the file's own directory. */
  config_set_include_dir (document, loader->base_dir);

  if (config_read_string (document, widened))
    return TRUE;

  file = config_error_file (document);
  g_set_error (error, CIMS_CONFIG_ERROR, CIMS_CONFIG_ERROR_SYNTAX, "%s:%d: syntax error: %s",
               file != NULL ? file : loader->path, config_error_line (document),
               config_error_text (document));

  return FALSE;
}

static const char *const root_settings[] = {
  "hub", "jurisdictions", "agencies", "cameras", "viewer_profiles", NULL,
};

/* Runs the section parsers in dependency order: cameras need jurisdictions,
 * and the hub's default_profile needs the profiles. */
static void
config_parse_sections (CimsConfigLoader *loader, const config_setting_t *root)
{
  cims_config_parse_jurisdictions (loader, root);
  cims_config_parse_agencies (loader, root);
  cims_config_parse_profiles (loader, root);
  cims_config_parse_cameras (loader, root);
  cims_config_parse_hub (loader, root);
  cims_config_check_members (loader, root, NULL, root_settings);
}

/**
 * cims_config_load:
 * Reads and validates the libconfig file @path. Relative paths inside it
 * resolve against its directory. May run on any thread; it touches no
 * shared state.
 * Returns: (transfer full) (nullable): the configuration, or NULL with
 * @error set: CIMS_CONFIG_ERROR_READ when the file cannot be read,
 * CIMS_CONFIG_ERROR_SYNTAX with "FILE:LINE: syntax error: ...", or
 * CIMS_CONFIG_ERROR_INVALID with one "FILE:LINE: message" line per problem.
 */
CimsConfig *
cims_config_load (const char *path, GError **error)
{
  g_autoptr (GError) read_error = NULL;
  g_autoptr (CimsConfig) config = NULL;
  g_auto (config_t) document = { 0 };
  g_auto (CimsConfigLoader) loader = { 0 };
  g_autofree char *text = NULL;
  g_autofree char *problems = NULL;
  gsize length = 0;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  config_init (&document);

  if (!g_file_get_contents (path, &text, &length, &read_error))
    {
      g_set_error (error, CIMS_CONFIG_ERROR, CIMS_CONFIG_ERROR_READ,
                   "Cannot read the configuration file %s: %s", path, read_error->message);
      return NULL;
    }

  config = cims_config_new_empty (path);
  cims_config_loader_init (&loader, path, config);

  if (!config_parse_text (&document, &loader, text, length, error))
    return NULL;

  config_parse_sections (&loader, config_root_setting (&document));
  problems = cims_config_loader_format_problems (&loader);
  if (problems != NULL)
    {
      g_set_error_literal (error, CIMS_CONFIG_ERROR, CIMS_CONFIG_ERROR_INVALID, problems);
      return NULL;
    }

  g_debug ("loaded %s: %u jurisdictions, %u agencies, %u cameras, %u viewer profiles",
           path, config->jurisdictions->len, config->agencies->len,
           config->cameras->len, config->profiles->len);

  return g_steal_pointer (&config);
}
