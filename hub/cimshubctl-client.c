/* SPDX-License-Identifier: Apache-2.0 */
/* cimshubctl's admin API client: the options every admin subcommand takes,
 * one synchronous libsoup request per call, and the text tables the
 * subcommands print. The subcommands themselves are in cimshubctl-admin.c. */

#include "hub/cimshubctl-private.h"

#include <string.h>

#include <libsoup/soup.h>
#include <openssl/crypto.h>

#define DEFAULT_HUB_URL "http://127.0.0.1:8080"

/* Seconds a request may take, from connecting to the last byte. */
#define REQUEST_TIMEOUT_S 30

/* Maximum size of a token file, in bytes. Real tokens are a few KiB. */
#define TOKEN_FILE_MAX_LEN 65536

struct _CimsCtlClient {
  char *base_url;               /* without a trailing slash */
  char *authorization;          /* "Bearer TOKEN", wiped on free */
  gboolean print_json;
  SoupSession *session;
};

int
cims_ctl_usage_error (const char *message)
{
  fprintf (stderr, "%s: %s\nRun '%s --help' for its options.\n",
           g_get_prgname (), message, g_get_prgname ());
  return CTL_EXIT_USAGE;
}

char **
cims_ctl_split_list (const char *list)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
  g_auto(GStrv) items = list ? g_strsplit (list, ",", -1) : NULL;

  for (guint i = 0; items != NULL && items[i] != NULL; i++) {
    g_strstrip (items[i]);
    if (items[i][0] != '\0')
      g_strv_builder_add (builder, items[i]);
  }

  return g_strv_builder_end (builder);
}

/* ------------------------------------------------------------------ */
/* Options */

static void
secret_free (char *secret)
{
  if (secret == NULL)
    return;

  OPENSSL_cleanse (secret, strlen (secret));
  g_free (secret);
}

void
cims_ctl_client_options_clear (CimsCtlClientOptions *options)
{
  g_clear_pointer (&options->hub_url, g_free);
  g_clear_pointer (&options->token, secret_free);
  g_clear_pointer (&options->token_path, g_free);
}

void
cims_ctl_client_options_add (GOptionContext *context, CimsCtlClientOptions *options)
{
  const GOptionEntry entries[] = {
    { "hub", 0, 0, G_OPTION_ARG_STRING, &options->hub_url,
      "Hub base URL (default $CIMSHUB_URL, else " DEFAULT_HUB_URL ")", "URL" },
    { "token", 0, 0, G_OPTION_ARG_STRING, &options->token,
      "Bearer token (default $CIMSHUB_TOKEN); --token-file keeps it out of the process list", "TOKEN" },
    { "token-file", 0, 0, G_OPTION_ARG_FILENAME, &options->token_path,
      "File that contains the Bearer token", "FILE" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &options->print_json,
      "Print the hub's JSON response as received", NULL },
    G_OPTION_ENTRY_NULL
  };

  g_option_context_add_main_entries (context, entries, NULL);
}

/* A token goes into an HTTP header, so it must be printable ASCII without
 * spaces. */
static gboolean
token_is_valid (const char *token)
{
  if (token[0] == '\0')
    return FALSE;

  for (const char *c = token; *c != '\0'; c++) {
    if (*c <= ' ' || *c >= 0x7f)
      return FALSE;
  }

  return TRUE;
}

/* Returns: (transfer full): the token in @path without surrounding
 * whitespace, or NULL with a G_FILE_ERROR. The file's bytes are wiped. */
static char *
token_file_read (const char *path, GError **error)
{
  g_autoptr(GError) read_error = NULL;
  char *contents = NULL;
  gsize len = 0;
  char *token;

  if (!g_file_get_contents (path, &contents, &len, &read_error)) {
    g_set_error (error, G_FILE_ERROR, read_error->code, "cannot read the token file: %s",
                 read_error->message);
    return NULL;
  }

  if (len > TOKEN_FILE_MAX_LEN) {
    secret_free (contents);
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                 "token file %s is %" G_GSIZE_FORMAT " bytes, over the %d-byte limit",
                 path, len, TOKEN_FILE_MAX_LEN);
    return NULL;
  }

  token = g_strdup (g_strstrip (contents));
  OPENSSL_cleanse (contents, len);
  g_free (contents);

  return token;
}

/* Returns: (transfer full): the token from --token, --token-file or
 * $CIMSHUB_TOKEN, in that order, or NULL with @error set. */
static char *
client_options_dup_token (const CimsCtlClientOptions *options, GError **error)
{
  g_autofree char *token = NULL;
  const char *source = "--token";

  if (options->token != NULL && options->token_path != NULL) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                 "give either --token or --token-file, not both");
    return NULL;
  }

  if (options->token != NULL) {
    token = g_strdup (options->token);
  } else if (options->token_path != NULL) {
    token = token_file_read (options->token_path, error);
    if (token == NULL)
      return NULL;
    source = options->token_path;
  } else if (g_getenv ("CIMSHUB_TOKEN") != NULL) {
    token = g_strdup (g_getenv ("CIMSHUB_TOKEN"));
    source = "CIMSHUB_TOKEN";
  } else {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                 "a token is required: pass --token or --token-file, or set CIMSHUB_TOKEN");
    return NULL;
  }

  if (!token_is_valid (token)) {
    g_clear_pointer (&token, secret_free);
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "the token from %s is empty or contains spaces or control characters", source);
    return NULL;
  }

  return g_steal_pointer (&token);
}

/* Returns: (transfer full): the http or https base URL without a trailing
 * slash, or NULL with a G_OPTION_ERROR. */
static char *
client_options_dup_base_url (const CimsCtlClientOptions *options, GError **error)
{
  const char *url = options->hub_url;
  g_autoptr(GUri) uri = NULL;
  const char *scheme;
  gsize len;

  if (url == NULL)
    url = g_getenv ("CIMSHUB_URL");
  if (url == NULL)
    url = DEFAULT_HUB_URL;

  uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
  scheme = uri != NULL ? g_uri_get_scheme (uri) : NULL;
  if (scheme == NULL || (g_ascii_strcasecmp (scheme, "http") != 0 &&
                         g_ascii_strcasecmp (scheme, "https") != 0) ||
      g_uri_get_host (uri) == NULL || g_uri_get_query (uri) != NULL) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "hub URL \"%s\" is invalid; expected http://HOST:PORT or https://HOST:PORT", url);
    return NULL;
  }

  len = strlen (url);
  while (len > 0 && url[len - 1] == '/')
    len--;

  return g_strndup (url, len);
}

CimsCtlClient *
cims_ctl_client_new (const CimsCtlClientOptions *options, GError **error)
{
  g_autoptr(CimsCtlClient) client = g_new0 (CimsCtlClient, 1);
  g_autofree char *token = NULL;

  client->base_url = client_options_dup_base_url (options, error);
  if (client->base_url == NULL)
    return NULL;

  token = client_options_dup_token (options, error);
  if (token == NULL)
    return NULL;

  client->authorization = g_strconcat ("Bearer ", token, NULL);
  OPENSSL_cleanse (token, strlen (token));
  client->print_json = options->print_json;
  client->session = soup_session_new_with_options ("timeout", REQUEST_TIMEOUT_S,
                                                   "user-agent", "cimshubctl/" CIMS_VERSION,
                                                   NULL);

  /* NOTE: HTTP proxies from the environment are ignored, so the Bearer
   * token goes only to the hub; a hub behind a proxy is not reachable. */
  soup_session_set_proxy_resolver (client->session, NULL);

  return g_steal_pointer (&client);
}

void
cims_ctl_client_free (CimsCtlClient *client)
{
  if (client == NULL)
    return;

  g_free (client->base_url);
  secret_free (client->authorization);
  g_clear_object (&client->session);
  g_free (client);
}

gboolean
cims_ctl_client_prints_json (const CimsCtlClient *client)
{
  return client->print_json;
}

char *
cims_ctl_path_escape (const char *id)
{
  return g_uri_escape_string (id, NULL, FALSE);
}

/* ------------------------------------------------------------------ */
/* Requests */

static SoupMessage *
client_message_new (CimsCtlClient *client, const char *method, const char *path, JsonNode *body)
{
  g_autofree char *url = g_strconcat (client->base_url, path, NULL);
  SoupMessage *msg = soup_message_new (method, url);
  SoupMessageHeaders *headers;

  if (msg == NULL)
    return NULL;

  headers = soup_message_get_request_headers (msg);
  soup_message_headers_replace (headers, "Authorization", client->authorization);
  soup_message_headers_replace (headers, "Accept", "application/json");
  soup_message_add_flags (msg, SOUP_MESSAGE_NO_REDIRECT);

  if (body != NULL) {
    gsize len = 0;
    char *text = json_to_string (body, FALSE);
    g_autoptr(GBytes) bytes = NULL;

    len = strlen (text);
    bytes = g_bytes_new_take (text, len);
    soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
  }

  return msg;
}

/* Returns: (transfer full): @bytes parsed as JSON, or NULL (with @error
 * set) when they are not JSON. Empty bytes give NULL without an error. */
static JsonNode *
response_parse (GBytes *bytes, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  gsize len = 0;
  const char *data = g_bytes_get_data (bytes, &len);

  if (len == 0)
    return NULL;

  if (!json_parser_load_from_data (parser, data, (gssize) len, error))
    return NULL;

  return json_node_copy (json_parser_get_root (parser));
}

/* Prints the reason of an error response: the "reason" member of its JSON
 * body, else the HTTP status line. */
static void
response_print_error (SoupMessage *msg, JsonNode *root)
{
  guint status = soup_message_get_status (msg);
  const char *phrase = soup_message_get_reason_phrase (msg);
  JsonObject *object = root != NULL && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  g_autofree char *reason = object != NULL ? cims_ctl_json_dup_text (object, "reason", NULL) : NULL;

  if (reason != NULL)
    fprintf (stderr, "%s: %s (HTTP %u)\n", g_get_prgname (), reason, status);
  else
    fprintf (stderr, "%s: the hub responded with HTTP %u %s\n", g_get_prgname (), status,
             phrase != NULL ? phrase : "");
}

static void
response_print_raw (GBytes *bytes)
{
  gsize len = 0;
  const char *data = g_bytes_get_data (bytes, &len);

  if (len == 0)
    return;

  fwrite (data, 1, len, stdout);
  if (data[len - 1] != '\n')
    fputc ('\n', stdout);
}

int
cims_ctl_client_send (CimsCtlClient *client, const char *method, const char *path,
                      JsonNode *body, JsonNode **response)
{
  g_autoptr(SoupMessage) msg = client_message_new (client, method, path, body);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(JsonNode) root = NULL;
  guint status;

  *response = NULL;
  if (msg == NULL) {
    fprintf (stderr, "%s: cannot build a request for %s%s\n", g_get_prgname (),
             client->base_url, path);
    return CTL_EXIT_FAILED;
  }

  bytes = soup_session_send_and_read (client->session, msg, NULL, &error);
  if (bytes == NULL) {
    fprintf (stderr, "%s: cannot reach the hub at %s: %s\n", g_get_prgname (),
             client->base_url, error->message);
    return CTL_EXIT_FAILED;
  }

  status = soup_message_get_status (msg);
  root = response_parse (bytes, &error);
  if (!SOUP_STATUS_IS_SUCCESSFUL (status)) {
    response_print_error (msg, root);
    return CTL_EXIT_FAILED;
  }

  if (error != NULL) {
    fprintf (stderr, "%s: the hub's response to %s %s is not JSON: %s\n", g_get_prgname (),
             method, path, error->message);
    return CTL_EXIT_FAILED;
  }

  if (client->print_json)
    response_print_raw (bytes);

  *response = g_steal_pointer (&root);

  return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* Output */

/* Replaces control characters in @text (transfer full) with '?'. */
static char *
text_sanitize (char *text)
{
  for (char *c = text; *c != '\0'; c++) {
    if ((guchar) *c < 0x20 || *c == 0x7f)
      *c = '?';
  }

  return text;
}

static char *
json_array_dup_text (JsonArray *array)
{
  g_autoptr(GString) text = g_string_new (NULL);

  for (guint i = 0; i < json_array_get_length (array); i++) {
    JsonNode *element = json_array_get_element (array, i);

    if (i > 0)
      g_string_append_c (text, ',');
    if (JSON_NODE_HOLDS_VALUE (element) && json_node_get_value_type (element) == G_TYPE_STRING)
      g_string_append (text, json_node_get_string (element));
    else
      g_string_append (text, "?");
  }

  return g_string_free (g_steal_pointer (&text), FALSE);
}

static char *
json_value_dup_text (JsonNode *node)
{
  GType type = json_node_get_value_type (node);

  if (type == G_TYPE_STRING)
    return g_strdup (json_node_get_string (node));
  if (type == G_TYPE_BOOLEAN)
    return g_strdup (json_node_get_boolean (node) ? "yes" : "no");
  if (type == G_TYPE_INT64)
    return g_strdup_printf ("%" G_GINT64_FORMAT, json_node_get_int (node));
  if (type == G_TYPE_DOUBLE)
    return g_strdup_printf ("%g", json_node_get_double (node));

  return g_strdup ("?");
}

char *
cims_ctl_json_dup_text (JsonObject *object, const char *member, const char *absent)
{
  JsonNode *node = json_object_get_member (object, member);

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return g_strdup (absent);

  if (JSON_NODE_HOLDS_ARRAY (node))
    return text_sanitize (json_array_dup_text (json_node_get_array (node)));

  if (JSON_NODE_HOLDS_VALUE (node))
    return text_sanitize (json_value_dup_text (node));

  return g_strdup ("?");
}

JsonObject *
cims_ctl_json_get_object (JsonObject *object, const char *member)
{
  JsonNode *node = object != NULL ? json_object_get_member (object, member) : NULL;

  return node != NULL && JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
}

JsonArray *
cims_ctl_json_get_array (JsonObject *object, const char *member)
{
  JsonNode *node = object != NULL ? json_object_get_member (object, member) : NULL;

  return node != NULL && JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
}

struct _CimsCtlTable {
  guint n_columns;
  GPtrArray *rows;              /* of GStrv; the first row is the headers */
};

CimsCtlTable *
cims_ctl_table_new (const char *const *headers)
{
  CimsCtlTable *table = g_new0 (CimsCtlTable, 1);

  table->n_columns = g_strv_length ((char **) headers);
  table->rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  g_ptr_array_add (table->rows, g_strdupv ((char **) headers));

  return table;
}

void
cims_ctl_table_free (CimsCtlTable *table)
{
  if (table == NULL)
    return;

  g_ptr_array_unref (table->rows);
  g_free (table);
}

void
cims_ctl_table_add_row (CimsCtlTable *table, ...)
{
  char **cells = g_new0 (char *, table->n_columns + 1);
  va_list args;

  va_start (args, table);
  for (guint i = 0; i < table->n_columns; i++) {
    char *cell = va_arg (args, char *);

    cells[i] = cell != NULL ? text_sanitize (cell) : g_strdup ("-");
  }
  va_end (args);

  g_ptr_array_add (table->rows, cells);
}

void
cims_ctl_table_print (const CimsCtlTable *table, FILE *stream)
{
  g_autofree glong *widths = g_new0 (glong, table->n_columns);

  for (guint r = 0; r < table->rows->len; r++) {
    char **cells = g_ptr_array_index (table->rows, r);

    for (guint c = 0; c < table->n_columns; c++)
      widths[c] = MAX (widths[c], g_utf8_strlen (cells[c], -1));
  }

  for (guint r = 0; r < table->rows->len; r++) {
    char **cells = g_ptr_array_index (table->rows, r);
    g_autoptr(GString) line = g_string_new (NULL);

    for (guint c = 0; c < table->n_columns; c++) {
      gboolean is_last = c + 1 == table->n_columns;

      g_string_append (line, cells[c]);
      for (glong pad = g_utf8_strlen (cells[c], -1); !is_last && pad < widths[c] + 2; pad++)
        g_string_append_c (line, ' ');
    }
    fprintf (stream, "%s\n", line->str);
  }
}
