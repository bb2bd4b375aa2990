/* SPDX-License-Identifier: Apache-2.0 */
/* cimshubctl: administers a cimshub deployment from the shell. Each
 * subcommand is one row of the command table below and parses its own
 * options. The daemon itself is in cimshub-main.c. */

#include <locale.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include <openssl/crypto.h>

#include "auth/auth.h"
#include "config/config.h"
#include "hub/cimshubctl-private.h"
#include "hub/cimshubctl-store.h"

typedef struct {
  const char *name;             /* one or more words, e.g. "token mint" */
  const char *summary;
  /* Runs the subcommand. argv[0] is the subcommand's last word and the
   * options follow it. Returns the exit status. */
  int (*run) (int argc, char **argv);
} CtlCommand;

static int command_token_mint_run (int argc, char **argv);
static int command_check_config_run (int argc, char **argv);
static int command_help_run (int argc, char **argv);

static const CtlCommand commands[] = {
  { "cameras list", "List the cameras and whether you may watch each now", cims_ctl_cameras_list_run },
  { "grants list", "List grants", cims_ctl_grants_list_run },
  { "grants show", "Print one grant", cims_ctl_grants_show_run },
  { "grants create", "Grant another jurisdiction or agency live viewing", cims_ctl_grants_create_run },
  { "grants revoke", "Revoke a grant and end the sessions under it", cims_ctl_grants_revoke_run },
  { "incidents list", "List major incidents", cims_ctl_incidents_list_run },
  { "incidents start", "Start mass sharing for a major incident", cims_ctl_incidents_start_run },
  { "incidents end", "End a major incident and the sessions under it", cims_ctl_incidents_end_run },
  { "sessions list", "List live viewing sessions", cims_ctl_sessions_list_run },
  { "sessions end", "End one viewing session", cims_ctl_sessions_end_run },
  { "audit verify", "Check the audit log's hash chain in the state database", cims_ctl_audit_verify_run },
  { "audit list", "List audit records from the state database", cims_ctl_audit_list_run },
  { "report annual", "Compute the annual transparency report from the state database", cims_ctl_report_annual_run },
  { "token mint", "Print a signed development token (ES256 or RS256)", command_token_mint_run },
  { "check-config", "Validate a configuration file and load its token keys", command_check_config_run },
  { "help", "List the subcommands", command_help_run },
};

static void
ctl_print_usage (FILE *stream)
{
  fprintf (stream,
           "Usage: cimshubctl SUBCOMMAND [OPTION...]\n"
           "\n"
           "Administers a cimshub deployment from the shell. The admin subcommands\n"
           "(cameras, grants, incidents, sessions) call the hub's admin API at --hub\n"
           "with the Bearer token from --token, --token-file or CIMSHUB_TOKEN.\n"
           "\n"
           "Subcommands:\n");
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (stream, "  %-16s %s\n", commands[i].name, commands[i].summary);
  fprintf (stream,
           "\n"
           "Run 'cimshubctl SUBCOMMAND --help' for the options of a subcommand.\n");
}

static int
command_help_run (int argc, char **argv)
{
  ctl_print_usage (stdout);
  return CTL_EXIT_OK;
}

/* Returns the number of words of @name that match the start of @args, or 0
 * unless all of them do. */
static int
command_match (const CtlCommand *command, int n_args, char **args)
{
  g_auto(GStrv) words = g_strsplit (command->name, " ", -1);
  int n_words = (int) g_strv_length (words);

  if (n_words > n_args)
    return 0;

  for (int i = 0; i < n_words; i++) {
    if (strcmp (words[i], args[i]) != 0)
      return 0;
  }

  return n_words;
}

/* Returns TRUE when @command's first word is @group and more words follow,
 * as for "token mint" in the group "token". */
static gboolean
command_is_in_group (const CtlCommand *command, const char *group)
{
  gsize group_len = strlen (group);

  return strncmp (command->name, group, group_len) == 0 && command->name[group_len] == ' ';
}

/* Returns TRUE when @word starts a command of two or more words, such as
 * "token" in "token mint". */
static gboolean
command_group_exists (const char *word)
{
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++) {
    if (command_is_in_group (&commands[i], word))
      return TRUE;
  }

  return FALSE;
}

/* Prints the subcommands of @group, one line each with its summary. */
static void
ctl_print_group_usage (FILE *stream, const char *group)
{
  fprintf (stream, "Usage: cimshubctl %s SUBCOMMAND [OPTION...]\n\nSubcommands:\n", group);
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++) {
    if (command_is_in_group (&commands[i], group))
      fprintf (stream, "  %-8s %s\n", commands[i].name + strlen (group) + 1, commands[i].summary);
  }
  fprintf (stream, "\nRun 'cimshubctl %s SUBCOMMAND --help' for the options of a subcommand.\n", group);
}

static const CtlCommand *
command_lookup (int n_args, char **args, int *n_words)
{
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++) {
    *n_words = command_match (&commands[i], n_args, args);
    if (*n_words > 0)
      return &commands[i];
  }

  return NULL;
}


/* ------------------------------------------------------------------ */
/* token mint */

typedef struct {
  char *key_path;
  char *issuer;
  char *subject;
  char *name;
  char *jurisdiction;
  char *roles;
  char *permissions;
  char *client;
  char *audience;
  gint64 ttl_s;
} MintOptions;

static void
mint_options_clear (MintOptions *options)
{
  g_clear_pointer (&options->key_path, g_free);
  g_clear_pointer (&options->issuer, g_free);
  g_clear_pointer (&options->subject, g_free);
  g_clear_pointer (&options->name, g_free);
  g_clear_pointer (&options->jurisdiction, g_free);
  g_clear_pointer (&options->roles, g_free);
  g_clear_pointer (&options->permissions, g_free);
  g_clear_pointer (&options->client, g_free);
  g_clear_pointer (&options->audience, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (MintOptions, mint_options_clear)

/* Returns the name of the first required option that is missing, or NULL. */
static const char *
mint_options_get_missing (const MintOptions *options)
{
  if (options->key_path == NULL)
    return "--key";
  if (options->issuer == NULL)
    return "--issuer";
  if (options->subject == NULL)
    return "--subject";
  if (options->name == NULL)
    return "--name";
  if (options->jurisdiction == NULL)
    return "--jurisdiction";

  return NULL;
}

static gboolean
mint_options_parse (MintOptions *options, int argc, char **argv, GError **error)
{
  const GOptionEntry entries[] = {
    { "key", 0, 0, G_OPTION_ARG_FILENAME, &options->key_path, "PEM private key to sign with (EC P-256 or RSA)", "PEM" },
    { "issuer", 0, 0, G_OPTION_ARG_STRING, &options->issuer, "Issuer (iss), as configured as a token_issuer", "ISS" },
    { "subject", 0, 0, G_OPTION_ARG_STRING, &options->subject, "User id (sub)", "ID" },
    { "name", 0, 0, G_OPTION_ARG_STRING, &options->name, "User's full name", "NAME" },
    { "jurisdiction", 0, 0, G_OPTION_ARG_STRING, &options->jurisdiction, "Id of the issuer's jurisdiction or agency", "J" },
    { "roles", 0, 0, G_OPTION_ARG_STRING, &options->roles, "Comma-separated roles, e.g. viewer,auditor", "R,R" },
    { "permissions", 0, 0, G_OPTION_ARG_STRING, &options->permissions, "Comma-separated permissions, e.g. view,restrict", "P,P" },
    { "ttl", 0, 0, G_OPTION_ARG_INT64, &options->ttl_s, "Lifetime in seconds (default 3600)", "SECONDS" },
    { "client", 0, 0, G_OPTION_ARG_STRING, &options->client, "Viewer client version (client claim)", "C" },
    { "audience", 0, 0, G_OPTION_ARG_STRING, &options->audience, "Audience (aud claim), e.g. the hub's token_audience", "A" },
    G_OPTION_ENTRY_NULL
  };
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  const char *missing;

  g_option_context_set_summary (context, "Prints a signed token for development and tests; "
                                "production tokens come from each jurisdiction's identity provider.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, error))
    return FALSE;

  if (argc > 1) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "unexpected argument \"%s\"", argv[1]);
    return FALSE;
  }

  missing = mint_options_get_missing (options);
  if (missing != NULL) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "%s is required", missing);
    return FALSE;
  }

  if (options->ttl_s <= 0 || options->ttl_s > G_MAXINT32) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--ttl must be between 1 and %d seconds", G_MAXINT32);
    return FALSE;
  }

  return TRUE;
}

static int
command_token_mint_run (int argc, char **argv)
{
  g_auto(MintOptions) options = { .ttl_s = 3600 };
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) roles = NULL;
  g_auto(GStrv) permissions = NULL;
  g_autofree char *token = NULL;
  CimsAuthTokenClaims claims = { 0 };
  int status;

  if (!mint_options_parse (&options, argc, argv, &error))
    return cims_ctl_usage_error (error->message);

  roles = cims_ctl_split_list (options.roles);
  permissions = cims_ctl_split_list (options.permissions);
  claims = (CimsAuthTokenClaims) {
    .issuer = options.issuer, .subject = options.subject, .name = options.name,
    .jurisdiction = options.jurisdiction,
    .roles = (const char *const *) roles, .permissions = (const char *const *) permissions,
    .client = options.client, .audience = options.audience,
    .issued_at_s = g_get_real_time () / G_USEC_PER_SEC, .ttl_s = options.ttl_s,
  };

  token = cims_auth_token_mint (options.key_path, &claims, &error);
  if (token == NULL) {
    fprintf (stderr, "%s: %s\n", g_get_prgname (), error->message);
    return CTL_EXIT_FAILED;
  }

  status = (printf ("%s\n", token) < 0 || fflush (stdout) != 0) ? CTL_EXIT_FAILED : CTL_EXIT_OK;
  OPENSSL_cleanse (token, strlen (token));

  return status;
}

/* ------------------------------------------------------------------ */
/* check-config */

static int
command_check_config_run (int argc, char **argv)
{
  g_autoptr(GOptionContext) context = g_option_context_new ("FILE");
  g_autoptr(GError) error = NULL;
  g_autoptr(CimsConfig) config = NULL;
  g_autoptr(CimsAuthKeyring) keyring = NULL;

  g_option_context_set_summary (context, "Loads and validates FILE and reads every token key "
                                "it names. Prints \"FILE: OK (...)\" with the counts, or the "
                                "errors as FILE:LINE: message and exits with status 1.");
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return cims_ctl_usage_error (error->message);

  if (argc != 2)
    return cims_ctl_usage_error ("expected exactly one configuration FILE");

  config = cims_config_load (argv[1], &error);
  if (config == NULL) {
    fprintf (stderr, "%s\n", error->message);
    return CTL_EXIT_FAILED;
  }

  keyring = cims_auth_keyring_new (config, &error);
  if (keyring == NULL) {
    fprintf (stderr, "%s\n", error->message);
    return CTL_EXIT_FAILED;
  }

  printf ("%s: OK (jurisdictions: %u, agencies: %u, cameras: %u, viewer profiles: %u)\n", argv[1],
          config->jurisdictions->len, config->agencies->len,
          config->cameras->len, config->profiles->len);

  return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ */

static gboolean
arg_is_help (const char *arg)
{
  return strcmp (arg, "--help") == 0 || strcmp (arg, "-h") == 0 || strcmp (arg, "-?") == 0;
}

/* Runs "cimshubctl GROUP [WORD]" when WORD, which may be NULL, names none
 * of the group's subcommands. --help lists them on stdout and returns
 * CTL_EXIT_OK. A missing or unknown subcommand is reported and the list
 * printed on stderr, and CTL_EXIT_USAGE returned. */
static int
command_group_usage (const char *group, const char *word)
{
  if (word != NULL && arg_is_help (word)) {
    ctl_print_group_usage (stdout, group);
    return CTL_EXIT_OK;
  }

  if (word == NULL)
    fprintf (stderr, "cimshubctl: missing subcommand after \"%s\".\n", group);
  else
    fprintf (stderr, "cimshubctl: unknown subcommand \"%s %s\".\n", group, word);
  ctl_print_group_usage (stderr, group);

  return CTL_EXIT_USAGE;
}

int
main (int argc, char **argv)
{
  const CtlCommand *command;
  g_autofree char *prgname = NULL;
  int n_words = 0;

  setlocale (LC_ALL, "");

  if (argc < 2) {
    ctl_print_usage (stderr);
    return CTL_EXIT_USAGE;
  }

  if (arg_is_help (argv[1])) {
    ctl_print_usage (stdout);
    return CTL_EXIT_OK;
  }

  command = command_lookup (argc - 1, argv + 1, &n_words);
  if (command == NULL && command_group_exists (argv[1]))
    return command_group_usage (argv[1], argc > 2 ? argv[2] : NULL);

  if (command == NULL) {
    fprintf (stderr, "cimshubctl: unknown subcommand \"%s\". Run 'cimshubctl help' "
             "for the list.\n", argv[1]);
    return CTL_EXIT_USAGE;
  }

  /* Option errors and --help output then name the whole subcommand. */
  prgname = g_strconcat ("cimshubctl ", command->name, NULL);
  g_set_prgname (prgname);

  return command->run (argc - n_words, argv + n_words);
}
