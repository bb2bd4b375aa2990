/* SPDX-License-Identifier: Apache-2.0 */
/* Internals shared by the files of the cimshubctl tool: exit statuses, the
 * admin API client with its common options, and table output. The daemon
 * never includes this header. */
#pragma once

#include <stdio.h>

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Exit statuses: 1 when the work failed, 2 when the command line is wrong. */
enum {
  CTL_EXIT_OK = 0,
  CTL_EXIT_FAILED = 1,
  CTL_EXIT_USAGE = 2,
};

/* Prints an option-parsing error of a subcommand and returns CTL_EXIT_USAGE. */
int cims_ctl_usage_error (const char *message);

/* Splits a comma-separated list, dropping blanks around and between items.
 * Returns: (transfer full): a NULL-terminated array, empty for NULL. */
char **cims_ctl_split_list (const char *list);

/* ---- admin API client ---------------------------------------------------- */

/* The options every admin subcommand takes. */
typedef struct {
  char *hub_url;                /* --hub; default $CIMSHUB_URL, else http://127.0.0.1:8080 */
  char *token;                  /* --token; default $CIMSHUB_TOKEN */
  char *token_path;             /* --token-file */
  gboolean print_json;          /* --json: print the hub's JSON as received */
} CimsCtlClientOptions;

void cims_ctl_client_options_clear (CimsCtlClientOptions *options);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (CimsCtlClientOptions, cims_ctl_client_options_clear)

/* Adds --hub, --token, --token-file and --json, writing to @options (which
 * must outlive the parse), to the main group of @context. */
void cims_ctl_client_options_add (GOptionContext *context, CimsCtlClientOptions *options);

typedef struct _CimsCtlClient CimsCtlClient;

/**
 * cims_ctl_client_new:
 * Resolves the hub URL and token from @options and the environment and
 * reads the token file. Fails with a G_OPTION_ERROR when the command line
 * (or the environment) gives no token or an invalid URL, and with a
 * G_FILE_ERROR when the token file cannot be read.
 * Returns: (transfer full): the client, or NULL with @error set.
 */
CimsCtlClient *cims_ctl_client_new (const CimsCtlClientOptions *options, GError **error);
void cims_ctl_client_free (CimsCtlClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsCtlClient, cims_ctl_client_free)

/* Returns TRUE when --json was given, so the caller prints nothing more. */
gboolean cims_ctl_client_prints_json (const CimsCtlClient *client);

/**
 * cims_ctl_client_send:
 * Sends @method @path (which starts with "/api/") to the hub with the
 * Bearer token and, when @body (transfer none) is not NULL, that JSON body.
 * On a 2xx response it prints the body when --json was given, stores the
 * parsed body (transfer full, NULL for an empty body) in *@response and
 * returns CTL_EXIT_OK. Otherwise it prints the hub's "reason" (or the HTTP
 * status) to stderr and returns CTL_EXIT_FAILED. Redirects are not
 * followed, so the token never goes to another address.
 */
int cims_ctl_client_send (CimsCtlClient *client, const char *method, const char *path,
                          JsonNode *body, JsonNode **response);

/* Returns: (transfer full): @id percent-encoded for one URL path segment. */
char *cims_ctl_path_escape (const char *id);

/* ---- output -------------------------------------------------------------- */

/* Returns: (transfer full): @member of @object as display text: strings as
 * they are, booleans as yes or no, integers in decimal, arrays of strings
 * joined with ",", and @absent for null or a missing member. Control
 * characters become "?", so hub data cannot drive the terminal. */
char *cims_ctl_json_dup_text (JsonObject *object, const char *member, const char *absent);

/* Returns (transfer none) the object @member of @object, or NULL when it is
 * missing or not an object. */
JsonObject *cims_ctl_json_get_object (JsonObject *object, const char *member);

/* Returns (transfer none) the array @member of @object, or NULL when it is
 * missing or not an array. */
JsonArray *cims_ctl_json_get_array (JsonObject *object, const char *member);

/* A text table printed with aligned columns. */
typedef struct _CimsCtlTable CimsCtlTable;

/* Returns: (transfer full): a table whose columns are the NULL-terminated
 * @headers. */
CimsCtlTable *cims_ctl_table_new (const char *const *headers);
void cims_ctl_table_free (CimsCtlTable *table);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsCtlTable, cims_ctl_table_free)

/* Adds a row of exactly as many `char *` cells (transfer full) as the
 * table has columns. */
void cims_ctl_table_add_row (CimsCtlTable *table, ...);

/* Prints the headers and rows, columns separated by two spaces. */
void cims_ctl_table_print (const CimsCtlTable *table, FILE *stream);

/* ---- admin subcommands --------------------------------------------------- */

/* Each runs one subcommand: argv[0] is the subcommand's last word and its
 * options follow. Each returns the exit status. */
int cims_ctl_cameras_list_run (int argc, char **argv);
int cims_ctl_grants_list_run (int argc, char **argv);
int cims_ctl_grants_show_run (int argc, char **argv);
int cims_ctl_grants_create_run (int argc, char **argv);
int cims_ctl_grants_revoke_run (int argc, char **argv);
int cims_ctl_incidents_list_run (int argc, char **argv);
int cims_ctl_incidents_start_run (int argc, char **argv);
int cims_ctl_incidents_end_run (int argc, char **argv);
int cims_ctl_sessions_list_run (int argc, char **argv);
int cims_ctl_sessions_end_run (int argc, char **argv);

G_END_DECLS
