/* SPDX-License-Identifier: Apache-2.0 */
/* Configuration reload (SIGHUP): validates the new file, swaps in its
 * cameras, jurisdictions and token keys, records what changed in the audit
 * log, connects cameras to a changed source, and ends only the sessions the
 * new configuration no longer allows: those whose token key is gone and
 * those the access rules now deny. */
#include "hub/hub-runtime.h"

#include <string.h>

/* Warns about each changed setting that only a restart applies: the running
 * hub keeps its listener, state store, workers and DTLS identity. */
static void
warn_start_only_settings (const CimsConfig *running, const CimsConfig *loaded)
{
  g_autofree char *running_listen = g_strdup_printf ("%s:%u", running->http_host, running->http_port);
  g_autofree char *loaded_listen = g_strdup_printf ("%s:%u", loaded->http_host, loaded->http_port);
  g_autofree char *running_workers = g_strdup_printf ("%u", running->media_workers);
  g_autofree char *loaded_workers = g_strdup_printf ("%u", loaded->media_workers);
  const struct {
    const char *name;
    const char *running;
    const char *loaded;
  } settings[] = {
    { "http_listen", running_listen, loaded_listen },
    { "state_dir", running->state_dir, loaded->state_dir },
    { "media_workers", running_workers, loaded_workers },
    { "dtls_certificate", running->dtls_certificate_path, loaded->dtls_certificate_path },
    { "dtls_private_key", running->dtls_private_key_path, loaded->dtls_private_key_path },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (settings); i++) {
    if (g_strcmp0 (settings[i].running, settings[i].loaded) == 0)
      continue;

    g_warning ("hub.%s changed from \"%s\" to \"%s\", which takes effect only when the hub restarts",
               settings[i].name, settings[i].running ? settings[i].running : "",
               settings[i].loaded ? settings[i].loaded : "");
  }
}

/* What a reload changed in the parties and keys, as members of the
 * config-loaded record's details. */
typedef struct {
  GPtrArray *added;             /* "jurisdiction boston", "agency state-police", "camera bos-0009" */
  GPtrArray *removed;
  GPtrArray *changed;           /* "jurisdiction everett: participates", ... */
} ConfigChanges;

static void
config_changes_clear (ConfigChanges *changes)
{
  g_clear_pointer (&changes->added, g_ptr_array_unref);
  g_clear_pointer (&changes->removed, g_ptr_array_unref);
  g_clear_pointer (&changes->changed, g_ptr_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ConfigChanges, config_changes_clear)

/* Notes a party's change of @field from @before to @after, if any. */
static void
changes_note_field (ConfigChanges *changes, const char *party, const char *field, const char *before,
                    const char *after)
{
  if (g_strcmp0 (before, after) != 0)
    g_ptr_array_add (changes->changed, g_strdup_printf ("%s: %s", party, field));
}

/* Notes the change of the key that @old_keyring and @new_keyring hold for
 * @issuer: a key file given new contents under the same path. */
static void
changes_note_key (ConfigChanges *changes, const char *party, const char *issuer,
                  const CimsAuthKeyring *old_keyring, const CimsAuthKeyring *new_keyring)
{
  changes_note_field (changes, party, "token key",
                      cims_auth_keyring_get_fingerprint (old_keyring, issuer),
                      cims_auth_keyring_get_fingerprint (new_keyring, issuer));
}

static void
changes_collect_jurisdictions (ConfigChanges *changes, const CimsConfig *old_config, const CimsConfig *new_config,
                               const CimsAuthKeyring *old_keyring, const CimsAuthKeyring *new_keyring)
{
  for (guint i = 0; i < new_config->jurisdictions->len; i++) {
    const CimsConfigJurisdiction *current = g_ptr_array_index (new_config->jurisdictions, i);
    const CimsConfigJurisdiction *before = cims_config_find_jurisdiction (old_config, current->id);
    g_autofree char *party = g_strdup_printf ("jurisdiction %s", current->id);

    if (before == NULL) {
      g_ptr_array_add (changes->added, g_steal_pointer (&party));
      continue;
    }
    changes_note_field (changes, party, "name", before->name, current->name);
    changes_note_field (changes, party, "participates", before->participates ? "yes" : "no",
                        current->participates ? "yes" : "no");
    changes_note_field (changes, party, "token_issuer", before->token_issuer, current->token_issuer);
    changes_note_field (changes, party, "token_key path", before->token_key_path, current->token_key_path);
    changes_note_key (changes, party, current->token_issuer, old_keyring, new_keyring);
  }

  for (guint i = 0; i < old_config->jurisdictions->len; i++) {
    const CimsConfigJurisdiction *before = g_ptr_array_index (old_config->jurisdictions, i);

    if (cims_config_find_jurisdiction (new_config, before->id) == NULL)
      g_ptr_array_add (changes->removed, g_strdup_printf ("jurisdiction %s", before->id));
  }
}

static void
changes_collect_agencies (ConfigChanges *changes, const CimsConfig *old_config, const CimsConfig *new_config,
                          const CimsAuthKeyring *old_keyring, const CimsAuthKeyring *new_keyring)
{
  for (guint i = 0; new_config->agencies != NULL && i < new_config->agencies->len; i++) {
    const CimsConfigAgency *current = g_ptr_array_index (new_config->agencies, i);
    const CimsConfigAgency *before = cims_config_find_agency (old_config, current->id);
    g_autofree char *party = g_strdup_printf ("agency %s", current->id);

    if (before == NULL) {
      g_ptr_array_add (changes->added, g_steal_pointer (&party));
      continue;
    }
    changes_note_field (changes, party, "name", before->name, current->name);
    changes_note_field (changes, party, "token_issuer", before->token_issuer, current->token_issuer);
    changes_note_field (changes, party, "token_key path", before->token_key_path, current->token_key_path);
    changes_note_key (changes, party, current->token_issuer, old_keyring, new_keyring);
  }

  for (guint i = 0; old_config->agencies != NULL && i < old_config->agencies->len; i++) {
    const CimsConfigAgency *before = g_ptr_array_index (old_config->agencies, i);

    if (cims_config_find_agency (new_config, before->id) == NULL)
      g_ptr_array_add (changes->removed, g_strdup_printf ("agency %s", before->id));
  }
}

/* Returns (transfer full) @periods as text, for comparing two of them. */
static char *
periods_to_text (GArray *periods)
{
  GString *text = g_string_new (NULL);

  for (guint i = 0; periods != NULL && i < periods->len; i++) {
    const CimsConfigPeriod *period = &g_array_index (periods, CimsConfigPeriod, i);

    g_string_append_printf (text, "%" G_GINT64_FORMAT "-%" G_GINT64_FORMAT ";", period->from_us, period->to_us);
  }
  return g_string_free (text, FALSE);
}

/* Notes each camera added, and each change of a kept camera that decides
 * who may watch it or what they see. A removed camera has a record of its
 * own. */
static void
changes_collect_cameras (ConfigChanges *changes, const CimsConfig *old_config, const CimsConfig *new_config)
{
  for (guint i = 0; i < new_config->cameras->len; i++) {
    const CimsConfigCamera *current = g_ptr_array_index (new_config->cameras, i);
    const CimsConfigCamera *before = cims_config_find_camera (old_config, current->id);
    g_autofree char *party = g_strdup_printf ("camera %s", current->id);
    g_autofree char *shared_before = NULL;
    g_autofree char *shared_now = NULL;
    g_autofree char *periods_before = NULL;
    g_autofree char *periods_now = NULL;

    if (before == NULL) {
      g_ptr_array_add (changes->added, g_steal_pointer (&party));
      continue;
    }

    shared_before = before->shared_with != NULL ? g_strjoinv (",", before->shared_with) : NULL;
    shared_now = current->shared_with != NULL ? g_strjoinv (",", current->shared_with) : NULL;
    periods_before = periods_to_text (before->out_of_service);
    periods_now = periods_to_text (current->out_of_service);
    changes_note_field (changes, party, "jurisdiction", before->jurisdiction, current->jurisdiction);
    changes_note_field (changes, party, "shared_with", shared_before, shared_now);
    changes_note_field (changes, party, "restricted", before->restricted ? "yes" : "no",
                        current->restricted ? "yes" : "no");
    changes_note_field (changes, party, "out_of_service", periods_before, periods_now);
    changes_note_field (changes, party, "source", before->source, current->source);
    changes_note_field (changes, party, "location", before->location, current->location);
  }
}

static void
builder_add_list (JsonBuilder *builder, const char *member, GPtrArray *items)
{
  json_builder_set_member_name (builder, member);
  json_builder_begin_array (builder);
  for (guint i = 0; i < items->len; i++)
    json_builder_add_string_value (builder, g_ptr_array_index (items, i));
  json_builder_end_array (builder);
}

/* Returns (transfer full) the details of a reload's config-loaded record:
 * the file, the camera count, and the parties, keys and cameras that were
 * added, removed or changed. Cameras removed, restricted or put out of
 * service also have records of their own. */
static char *
reload_details_new (const CimsConfig *old_config, const CimsConfig *new_config,
                    const CimsAuthKeyring *old_keyring, const CimsAuthKeyring *new_keyring)
{
  g_auto (ConfigChanges) changes = {
    g_ptr_array_new_with_free_func (g_free), g_ptr_array_new_with_free_func (g_free),
    g_ptr_array_new_with_free_func (g_free),
  };
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  changes_collect_jurisdictions (&changes, old_config, new_config, old_keyring, new_keyring);
  changes_collect_agencies (&changes, old_config, new_config, old_keyring, new_keyring);
  changes_collect_cameras (&changes, old_config, new_config);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "config");
  json_builder_add_string_value (builder, new_config->path);
  json_builder_set_member_name (builder, "cameras");
  json_builder_add_int_value (builder, new_config->cameras->len);
  json_builder_set_member_name (builder, "reload");
  json_builder_add_boolean_value (builder, TRUE);
  builder_add_list (builder, "added", changes.added);
  builder_add_list (builder, "removed", changes.removed);
  builder_add_list (builder, "changed", changes.changed);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  return json_to_string (root, FALSE);
}

/* Records a reload that the hub rejected, with the first line of @error:
 * the running configuration stays in force. */
static void
audit_rejected (CimsHub *hub, const GError *error)
{
  g_autofree char *first_line = g_strndup (error->message, strcspn (error->message, "\n"));
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *details = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "config");
  json_builder_add_string_value (builder, hub->config->path);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  details = json_to_string (root, FALSE);

  cims_hub_audit_event (hub, "config-rejected", NULL, first_line, details);
}

static void
audit_camera_changes (CimsHub *hub, const CimsConfig *old_config, const CimsConfig *new_config)
{
  gint64 now_us = g_get_real_time ();

  for (guint i = 0; i < new_config->cameras->len; i++) {
    const CimsConfigCamera *camera = g_ptr_array_index (new_config->cameras, i);
    const CimsConfigCamera *before = cims_config_find_camera (old_config, camera->id);
    gboolean was_out = before != NULL && cims_config_camera_is_out_of_service (before, now_us);

    if (camera->restricted && (before == NULL || !before->restricted))
      cims_hub_audit_event (hub, "camera-restricted", camera, "configuration reloaded", NULL);
    if (cims_config_camera_is_out_of_service (camera, now_us) && !was_out)
      cims_hub_audit_event (hub, "camera-out-of-service", camera, "configuration reloaded", NULL);
  }

  for (guint i = 0; i < old_config->cameras->len; i++) {
    const CimsConfigCamera *camera = g_ptr_array_index (old_config->cameras, i);

    if (cims_config_find_camera (new_config, camera->id) == NULL)
      cims_hub_audit_event (hub, "camera-removed", camera, "configuration reloaded", NULL);
  }
}

/* Connects a running camera source again when its camera's source URL or
 * login changed. A removed camera's source stops once its last viewer,
 * denied by the new configuration, has left. Main context. */
static void
update_camera_sources (CimsHub *hub)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, hub->sources);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    const CimsConfigCamera *camera = cims_config_find_camera (hub->config, cims_source_get_camera_id (value));

    if (cims_source_get_transcoder (value) == NULL && camera != NULL)
      cims_source_update_camera (value, camera);
  }
}

/* Ends every session whose token the new keyring would refuse: its
 * issuer was removed, its key file now contains another key, or the issuer
 * now belongs to another jurisdiction id (a renamed jurisdiction). The
 * token would get 401 on a new request, so the session must not outlive
 * it. Returns how many sessions ended. Main context. */
static guint
end_sessions_of_removed_keys (CimsHub *hub)
{
  g_autoptr (GPtrArray) sessions = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_viewer_session_unref);
  GHashTableIter iter;
  gpointer value;

  /* Ending a session edits the table, so collect them first. */
  g_hash_table_iter_init (&iter, hub->sessions);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    const CimsAuthIdentity *identity = cims_viewer_session_get_identity (value);

    if (cims_auth_keyring_check_identity (hub->keyring, identity) != NULL)
      g_ptr_array_add (sessions, cims_viewer_session_ref (value));
  }

  for (guint i = 0; i < sessions->len; i++) {
    CimsViewerSession *session = g_ptr_array_index (sessions, i);
    const CimsAuthIdentity *identity = cims_viewer_session_get_identity (session);
    g_autofree char *id = g_strdup (cims_viewer_session_get_id (session));

    cims_session_message (session, "the new configuration refuses the viewer's token (issuer \"%s\": %s), "
                          "ending the session", identity->issuer,
                          cims_auth_keyring_check_identity (hub->keyring, identity));
    cims_hub_session_end (hub, id, "token-key-removed");
  }

  return sessions->len;
}

gboolean
cims_hub_reload (CimsHub *hub, GError **error)
{
  GError *load_error = NULL;
  g_autoptr (CimsConfig) config = cims_config_load (hub->config->path, &load_error);
  g_autoptr (CimsAuthKeyring) keyring = NULL;
  g_autofree char *details = NULL;
  guint n_key_removed;
  guint n_denied;

  /* The keyring's message already names the file and line of each key. */
  if (config != NULL)
    keyring = cims_auth_keyring_new (config, &load_error);
  if (keyring == NULL) {
    audit_rejected (hub, load_error);
    g_propagate_error (error, load_error);
    return FALSE;
  }

  details = reload_details_new (hub->config, config, hub->keyring, keyring);

  audit_camera_changes (hub, hub->config, config);
  warn_start_only_settings (hub->start_config, config);

  /* Requests in flight still point into the old configuration, so it is
   * kept until the hub stops. */
  g_ptr_array_add (hub->retired_configs, hub->config);
  hub->config = g_steal_pointer (&config);
  cims_auth_keyring_free (hub->keyring);
  hub->keyring = g_steal_pointer (&keyring);

  cims_hub_audit_event (hub, "config-loaded", NULL, "reload", details);

  update_camera_sources (hub);
  cims_hub_keep_sources_update (hub);

  n_key_removed = end_sessions_of_removed_keys (hub);
  n_denied = cims_hub_access_recheck_all (hub, CIMS_ACCESS_TRIGGER_CONFIG_RELOADED);
  g_message ("configuration %s reloaded: cameras: %u; sessions ended: %u whose token the new "
             "configuration rejects, %u no longer allowed", hub->config->path, hub->config->cameras->len,
             n_key_removed, n_denied);
  return TRUE;
}
