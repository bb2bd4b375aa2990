/* SPDX-License-Identifier: Apache-2.0 */
/* A strict RFC 8259 check of an admin API request body, run before
 * json-glib parses it. json-glib 1.6.6 (Debian 12) accepts block comments,
 * single-quoted strings, raw tabs in strings and hexadecimal and
 * leading-zero octal numbers. It also reads an integer outside 64 bits as a
 * wrapped value without an error, so a comment could hide a huge
 * duration_s from a looser scan. json_parser_set_strict () needs json-glib
 * 1.10. */
#include "hub/strict-json.h"

#include <stdarg.h>

#define STRICT_JSON_MAX_DEPTH 64

typedef struct {
  const char *data;
  gsize size;
  gsize offset;
  char *reason;
} StrictJsonCheck;

static gboolean strict_json_check_value (StrictJsonCheck *check, guint depth);

static gboolean G_GNUC_PRINTF (2, 3)
strict_json_fail (StrictJsonCheck *check, const char *format, ...)
{
  va_list args;
  g_autofree char *detail = NULL;

  va_start (args, format);
  detail = g_strdup_vprintf (format, args);
  va_end (args);
  check->reason = g_strdup_printf ("The body is not strict JSON at byte offset %" G_GSIZE_FORMAT ": %s.",
                                   check->offset, detail);
  return FALSE;
}

static gboolean
strict_json_is_space (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static gboolean
strict_json_is_at (const StrictJsonCheck *check, char c)
{
  return check->offset < check->size && check->data[check->offset] == c;
}

static gboolean
strict_json_is_at_digit (const StrictJsonCheck *check)
{
  return check->offset < check->size && g_ascii_isdigit (check->data[check->offset]);
}

/* Returns (transfer full) a name for the bytes at check->offset. Sets
 * @is_extension for the forms that lenient parsers accept: comments,
 * single-quoted strings and bare words. */
static char *
strict_json_describe_found (const StrictJsonCheck *check, gboolean *is_extension)
{
  const char *p = check->data + check->offset;
  gsize n_left = check->size - check->offset;
  gsize n = 0;

  *is_extension = FALSE;
  if (n_left == 0)
    return g_strdup ("the end of the body");

  if (*p == '#' || (n_left > 1 && *p == '/' && (p[1] == '*' || p[1] == '/'))) {
    *is_extension = TRUE;
    return g_strdup ("a comment");
  }
  if (*p == '\'') {
    *is_extension = TRUE;
    return g_strdup ("a single-quoted string");
  }
  if (g_ascii_isalpha (*p) || *p == '_' || *p == '$') {
    while (n < n_left && (g_ascii_isalnum (p[n]) || p[n] == '_' || p[n] == '$'))
      n++;
    *is_extension = TRUE;
    return g_strdup_printf ("the bare word %.*s", (int) MIN (n, 32), p);
  }

  if (strict_json_is_space (*p))
    return g_strdup ("whitespace");
  if (g_ascii_isgraph (*p))
    return g_strdup_printf ("'%c'", *p);
  return g_strdup_printf ("the byte 0x%02x", (guchar) *p);
}

static gboolean
strict_json_fail_unexpected (StrictJsonCheck *check, const char *expected)
{
  gboolean is_extension;
  g_autofree char *found = strict_json_describe_found (check, &is_extension);

  if (is_extension)
    return strict_json_fail (check, "%s is not allowed", found);
  return strict_json_fail (check, "expected %s, found %s", expected, found);
}

static void
strict_json_skip_space (StrictJsonCheck *check)
{
  while (check->offset < check->size && strict_json_is_space (check->data[check->offset]))
    check->offset++;
}

static gboolean
strict_json_check_digits (StrictJsonCheck *check, const char *expected)
{
  if (!strict_json_is_at_digit (check))
    return strict_json_fail_unexpected (check, expected);

  while (strict_json_is_at_digit (check))
    check->offset++;
  return TRUE;
}

/* Checks one number by the RFC 8259 grammar
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and, when it has neither
 * fraction nor exponent, that it fits in a gint64. */
static gboolean
strict_json_check_number (StrictJsonCheck *check)
{
  gsize start = check->offset;
  gboolean is_integer = TRUE;
  g_autofree char *text = NULL;

  if (strict_json_is_at (check, '-'))
    check->offset++;
  if (strict_json_is_at (check, '0')) {
    check->offset++;
    if (strict_json_is_at (check, 'x') || strict_json_is_at (check, 'X') || strict_json_is_at_digit (check)) {
      gboolean is_hexadecimal = !strict_json_is_at_digit (check);

      check->offset = start;
      return strict_json_fail (check, is_hexadecimal ? "a hexadecimal number is not allowed"
                                                     : "a number with a leading zero is not allowed");
    }
  } else if (!strict_json_check_digits (check, "a digit after '-'")) {
    return FALSE;
  }

  if (strict_json_is_at (check, '.')) {
    is_integer = FALSE;
    check->offset++;
    if (!strict_json_check_digits (check, "a digit after '.'"))
      return FALSE;
  }

  if (strict_json_is_at (check, 'e') || strict_json_is_at (check, 'E')) {
    is_integer = FALSE;
    check->offset++;
    if (strict_json_is_at (check, '+') || strict_json_is_at (check, '-'))
      check->offset++;
    if (!strict_json_check_digits (check, "a digit in the exponent"))
      return FALSE;
  }

  text = g_strndup (check->data + start, check->offset - start);
  if (is_integer && !g_ascii_string_to_signed (text, 10, G_MININT64, G_MAXINT64, NULL, NULL)) {
    check->offset = start;
    return strict_json_fail (check, "the integer %.64s%s is outside the 64-bit range", text,
                             strlen (text) > 64 ? "..." : "");
  }
  return TRUE;
}

/* Checks the escape at check->offset: RFC 8259 section 7 allows only
 * \" \\ \/ \b \f \n \r \t and \u with four hexadecimal digits. */
static gboolean
strict_json_check_escape (StrictJsonCheck *check)
{
  const char *p = check->data + check->offset;
  gsize n_left = check->size - check->offset;

  if (n_left < 2)
    return strict_json_fail (check, "the body ends inside a string");

  if (p[1] != '\0' && strchr ("\"\\/bfnrt", p[1]) != NULL) {
    check->offset += 2;
    return TRUE;
  }

  if (p[1] == 'u') {
    for (gsize i = 2; i < 6; i++) {
      if (i >= n_left || !g_ascii_isxdigit (p[i]))
        return strict_json_fail (check, "\\u must be followed by four hexadecimal digits");
    }
    check->offset += 6;
    return TRUE;
  }

  if (g_ascii_isgraph (p[1]))
    return strict_json_fail (check, "the escape \\%c is not allowed", p[1]);
  return strict_json_fail (check, "the escape of the byte 0x%02x is not allowed", (guchar) p[1]);
}

static gboolean
strict_json_check_string (StrictJsonCheck *check)
{
  check->offset++;
  while (check->offset < check->size) {
    guchar c = (guchar) check->data[check->offset];

    if (c == '"') {
      check->offset++;
      return TRUE;
    }
    if (c < 0x20)
      return strict_json_fail (check, "the control character 0x%02x in a string must be escaped", c);
    if (c == '\\') {
      if (!strict_json_check_escape (check))
        return FALSE;
    } else {
      check->offset++;
    }
  }
  return strict_json_fail (check, "the body ends inside a string");
}

/* Checks the object or array that starts at check->offset, which is at
 * nesting level @depth. */
static gboolean
strict_json_check_container (StrictJsonCheck *check, guint depth)
{
  gboolean is_object = strict_json_is_at (check, '{');
  char close = is_object ? '}' : ']';

  if (depth > STRICT_JSON_MAX_DEPTH)
    return strict_json_fail (check, "nesting deeper than %d levels is not allowed", STRICT_JSON_MAX_DEPTH);

  check->offset++;
  strict_json_skip_space (check);
  if (strict_json_is_at (check, close)) {
    check->offset++;
    return TRUE;
  }

  for (;;) {
    gsize comma;

    if (is_object) {
      if (!strict_json_is_at (check, '"'))
        return strict_json_fail_unexpected (check, "a member name in double quotes");
      if (!strict_json_check_string (check))
        return FALSE;
      strict_json_skip_space (check);
      if (!strict_json_is_at (check, ':'))
        return strict_json_fail_unexpected (check, "':'");
      check->offset++;
    }
    if (!strict_json_check_value (check, depth))
      return FALSE;

    strict_json_skip_space (check);
    if (strict_json_is_at (check, close)) {
      check->offset++;
      return TRUE;
    }
    if (!strict_json_is_at (check, ','))
      return strict_json_fail_unexpected (check, is_object ? "',' or '}'" : "',' or ']'");

    comma = check->offset++;
    strict_json_skip_space (check);
    if (strict_json_is_at (check, close)) {
      check->offset = comma;
      return strict_json_fail (check, "a trailing comma is not allowed");
    }
  }
}

static gboolean
strict_json_check_value (StrictJsonCheck *check, guint depth)
{
  static const char *const literals[] = { "true", "false", "null" };
  const char *p;
  gsize n_left;

  strict_json_skip_space (check);
  p = check->data + check->offset;
  n_left = check->size - check->offset;
  if (n_left == 0)
    return strict_json_fail_unexpected (check, "a value");

  if (*p == '{' || *p == '[')
    return strict_json_check_container (check, depth + 1);
  if (*p == '"')
    return strict_json_check_string (check);
  if (*p == '-' || g_ascii_isdigit (*p))
    return strict_json_check_number (check);

  /* A literal followed by a letter, e.g. truex, is a bare word. */
  for (gsize i = 0; i < G_N_ELEMENTS (literals); i++) {
    gsize length = strlen (literals[i]);

    if (n_left >= length && memcmp (p, literals[i], length) == 0
        && (n_left == length || !(g_ascii_isalnum (p[length]) || p[length] == '_' || p[length] == '$'))) {
      check->offset += length;
      return TRUE;
    }
  }
  return strict_json_fail_unexpected (check, "a value");
}

char *
cims_strict_json_check (const char *data, gsize size)
{
  StrictJsonCheck check = { data, size, 0, NULL };
  const char *end = NULL;

  strict_json_skip_space (&check);
  if (check.offset == size)
    return NULL;

  if (!strict_json_check_value (&check, 0))
    return check.reason;

  strict_json_skip_space (&check);
  if (check.offset < size) {
    strict_json_fail_unexpected (&check, "the end of the body");
    return check.reason;
  }

  if (!g_utf8_validate_len (data, size, &end)) {
    check.offset = (gsize) (end - data);
    strict_json_fail (&check, "the body is not valid UTF-8");
    return check.reason;
  }
  return NULL;
}

