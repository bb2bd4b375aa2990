/* SPDX-License-Identifier: Apache-2.0 */
/* Parsing the `jurisdictions` and `agencies` lists: the parties whose
 * identity providers sign viewer tokens. Each issuer may appear only once,
 * so a token maps to exactly one party. */
#include "config/config-private.h"

static const char *const jurisdiction_settings[] = {
  "id", "name", "participates", "token_issuer", "token_key", NULL,
};

static const char *const agency_settings[] = { "id", "name", "token_issuer", "token_key", NULL };

/* Records @issuer as belonging to @subject, or reports that an earlier
 * jurisdiction or agency already uses it. */
static void
issuer_claim (CimsConfigLoader *loader, const config_setting_t *entry,
              const char *issuer, const char *subject)
{
  const char *first_owner = g_hash_table_lookup (loader->issuers, issuer);

  if (first_owner != NULL)
    {
      cims_config_loader_report_member (loader, entry, "token_issuer", subject,
                                        "token_issuer \"%s\" is already used by %s",
                                        issuer, first_owner);
      return;
    }

  g_hash_table_insert (loader->issuers, g_strdup (issuer),
                       g_strdup_printf ("%s (line %u)", subject, config_setting_source_line (entry)));
}

static CimsConfigJurisdiction *
jurisdiction_parse (CimsConfigLoader *loader, const config_setting_t *entry, const char *subject)
{
  g_autoptr (CimsConfigJurisdiction) jurisdiction = g_new0 (CimsConfigJurisdiction, 1);

  jurisdiction->line = config_setting_source_line (entry);
  jurisdiction->id = g_strdup (cims_config_read_id (loader, entry, "id", "jurisdiction", subject));
  jurisdiction->name = g_strdup (cims_config_read_string (loader, entry, "name", subject, TRUE));
  jurisdiction->participates = cims_config_read_bool (loader, entry, "participates", subject, TRUE, FALSE);
  jurisdiction->token_issuer = g_strdup (cims_config_read_string (loader, entry, "token_issuer", subject, TRUE));
  jurisdiction->token_key_path = cims_config_read_path (loader, entry, "token_key", subject, TRUE);
  cims_config_check_members (loader, entry, subject, jurisdiction_settings);

  if (jurisdiction->token_issuer != NULL)
    issuer_claim (loader, entry, jurisdiction->token_issuer, subject);

  return g_steal_pointer (&jurisdiction);
}

void
cims_config_parse_jurisdictions (CimsConfigLoader *loader, const config_setting_t *root)
{
  const config_setting_t *list = cims_config_read_list (loader, root, "jurisdictions", NULL, TRUE);

  if (list == NULL)
    return;

  if (config_setting_length (list) == 0)
    {
      cims_config_loader_report (loader, list, NULL, "jurisdictions must list at least one jurisdiction");
      return;
    }

  for (int i = 0; i < config_setting_length (list); i++)
    {
      const config_setting_t *entry = config_setting_get_elem (list, i);
      g_autofree char *subject = cims_config_entry_subject (entry, "jurisdiction", "id", i);

      if (!cims_config_entry_is_group (loader, list, i, NULL))
        continue;
      g_ptr_array_add (loader->config->jurisdictions, jurisdiction_parse (loader, entry, subject));
    }
}

/* Agencies and jurisdictions share one id space, because a token's
 * `jurisdiction` claim may name either. */
static void
agency_check_id_is_free (CimsConfigLoader *loader, const config_setting_t *entry,
                         const char *id, const char *subject)
{
  const CimsConfigJurisdiction *jurisdiction = cims_config_find_jurisdiction (loader->config, id);

  if (jurisdiction == NULL)
    return;

  cims_config_loader_report_member (loader, entry, "id", subject,
                                    "id \"%s\" is already the id of jurisdiction \"%s\" (line %d)",
                                    id, jurisdiction->id, jurisdiction->line);
}

static CimsConfigAgency *
agency_parse (CimsConfigLoader *loader, const config_setting_t *entry, const char *subject)
{
  g_autoptr (CimsConfigAgency) agency = g_new0 (CimsConfigAgency, 1);

  agency->line = config_setting_source_line (entry);
  agency->id = g_strdup (cims_config_read_id (loader, entry, "id", "agency", subject));
  agency->name = g_strdup (cims_config_read_string (loader, entry, "name", subject, TRUE));
  agency->token_issuer = g_strdup (cims_config_read_string (loader, entry, "token_issuer", subject, TRUE));
  agency->token_key_path = cims_config_read_path (loader, entry, "token_key", subject, TRUE);
  cims_config_check_members (loader, entry, subject, agency_settings);

  if (agency->id != NULL)
    agency_check_id_is_free (loader, entry, agency->id, subject);

  if (agency->token_issuer != NULL)
    issuer_claim (loader, entry, agency->token_issuer, subject);

  return g_steal_pointer (&agency);
}

/* Parses the optional `agencies` list. It must run after the jurisdictions. */
void
cims_config_parse_agencies (CimsConfigLoader *loader, const config_setting_t *root)
{
  const config_setting_t *list = cims_config_read_list (loader, root, "agencies", NULL, FALSE);

  if (list == NULL)
    return;

  for (int i = 0; i < config_setting_length (list); i++)
    {
      const config_setting_t *entry = config_setting_get_elem (list, i);
      g_autofree char *subject = cims_config_entry_subject (entry, "agency", "id", i);

      if (!cims_config_entry_is_group (loader, list, i, NULL))
        continue;
      g_ptr_array_add (loader->config->agencies, agency_parse (loader, entry, subject));
    }
}
