/* SPDX-License-Identifier: Apache-2.0 */
/* State shared by the files that load one configuration: the problem list
 * every check appends to, typed setting readers, value checks and the
 * per-section parsers. Only files in config/ include this header. */
#pragma once

#include <glib.h>

#include <libconfig.h>

#include "config/config.h"

G_BEGIN_DECLS

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (config_t, config_destroy)

/* Minimum number of ports hub.ice_udp_ports must span. Each viewer session takes one
 * port from the range, so a smaller range serves too few viewers to run. */
#define CIMS_CONFIG_MIN_ICE_PORTS 10

typedef struct {
  const char *path;             /* as given to cims_config_load, used in messages */
  char *base_dir;               /* absolute directory that relative paths resolve against */
  CimsConfig *config;           /* the model being filled */
  GArray *problems;             /* of CimsConfigProblem */
  GHashTable *first_ids;        /* "KIND\x1fID" -> config_setting_t of its first definition */
  GHashTable *issuers;          /* token_issuer -> description of its first owner */
} CimsConfigLoader;

typedef struct {
  char *file;
  int line;
  guint order;                  /* report order, keeps sorting stable */
  char *text;
} CimsConfigProblem;

/* config-reader.c: problem reports and typed setting readers. A reader that
 * finds a missing required setting or a wrong type reports it and returns
 * NULL or FALSE, so the caller only checks the value itself. */
void cims_config_loader_init (CimsConfigLoader *loader, const char *path, CimsConfig *config);
void cims_config_loader_clear (CimsConfigLoader *loader);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (CimsConfigLoader, cims_config_loader_clear)
void cims_config_loader_report (CimsConfigLoader *loader, const config_setting_t *setting,
                                const char *subject, const char *format, ...) G_GNUC_PRINTF (4, 5);
void cims_config_loader_report_member (CimsConfigLoader *loader, const config_setting_t *group,
                                       const char *name, const char *subject,
                                       const char *format, ...) G_GNUC_PRINTF (5, 6);
char *cims_config_loader_format_problems (CimsConfigLoader *loader);
char *cims_config_loader_claim_id (CimsConfigLoader *loader, const char *kind,
                                   const char *id, const config_setting_t *setting);
char *cims_config_entry_subject (const config_setting_t *entry, const char *kind,
                                 const char *id_name, int index);
gboolean cims_config_entry_is_group (CimsConfigLoader *loader, const config_setting_t *list,
                                     int index, const char *subject);
const char *cims_config_read_id (CimsConfigLoader *loader, const config_setting_t *entry,
                                 const char *name, const char *kind, const char *subject);

const char *cims_config_read_string (CimsConfigLoader *loader, const config_setting_t *group,
                                     const char *name, const char *subject, gboolean required);
gboolean cims_config_read_bool (CimsConfigLoader *loader, const config_setting_t *group,
                                const char *name, const char *subject,
                                gboolean required, gboolean default_value);
gboolean cims_config_read_uint (CimsConfigLoader *loader, const config_setting_t *group,
                                const char *name, const char *subject, gboolean required,
                                guint min, guint max, guint *value);
gboolean cims_config_read_uint_pair (CimsConfigLoader *loader, const config_setting_t *group,
                                     const char *name, const char *subject, gboolean required,
                                     guint min, guint max, guint *first, guint *second);
char **cims_config_read_strv (CimsConfigLoader *loader, const config_setting_t *group,
                              const char *name, const char *subject, gboolean required);
config_setting_t *cims_config_read_list (CimsConfigLoader *loader, const config_setting_t *group,
                                         const char *name, const char *subject, gboolean required);
char *cims_config_read_path (CimsConfigLoader *loader, const config_setting_t *group,
                             const char *name, const char *subject, gboolean required);

/* Reports each member of @group whose name is not in @known (NULL-ended),
 * naming the closest known name when it is one or two letters away, so a
 * misspelt setting such as `restriced` cannot go unnoticed. */
void cims_config_check_members (CimsConfigLoader *loader, const config_setting_t *group,
                                const char *subject, const char *const *known);

/* config-values.c: checks of single values, free of libconfig. */
gboolean cims_config_parse_date (const char *text, gint64 *midnight_us);
gboolean cims_config_parse_time_bound (const char *text, gboolean is_end, gint64 *time_us);
char *cims_config_check_source_url (const char *url);
char *cims_config_redact_url (const char *url);
gboolean cims_config_parse_host_port (const char *text, char **host, guint16 *port);
gboolean cims_config_ip_literal_is_valid (const char *text);
gboolean cims_config_origin_is_valid (const char *text);

/* One parser per top-level section. They run in dependency order
 * (jurisdictions, agencies, profiles, cameras, hub) and report problems
 * instead of stopping at the first. */
void cims_config_parse_jurisdictions (CimsConfigLoader *loader, const config_setting_t *root);
void cims_config_parse_agencies (CimsConfigLoader *loader, const config_setting_t *root);
void cims_config_parse_profiles (CimsConfigLoader *loader, const config_setting_t *root);
void cims_config_parse_cameras (CimsConfigLoader *loader, const config_setting_t *root);
void cims_config_parse_hub (CimsConfigLoader *loader, const config_setting_t *root);

/* config-model.c: releasing model entries. */
CimsConfig *cims_config_new_empty (const char *path);
void cims_config_jurisdiction_free (CimsConfigJurisdiction *jurisdiction);
void cims_config_agency_free (CimsConfigAgency *agency);
void cims_config_camera_free (CimsConfigCamera *camera);
void cims_config_profile_free (CimsConfigProfile *profile);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsConfigJurisdiction, cims_config_jurisdiction_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsConfigAgency, cims_config_agency_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsConfigCamera, cims_config_camera_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsConfigProfile, cims_config_profile_free)

G_END_DECLS
