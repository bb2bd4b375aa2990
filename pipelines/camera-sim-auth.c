/* SPDX-License-Identifier: Apache-2.0 */
/* Per-mount RTSP login for the camera simulator. GstRTSPAuth 1.22 responds
 * 404 to a client without the mount's role, and clients do not retry that, so
 * this subclass responds 401 with a challenge instead. Mounts without a user
 * stay open. Credentials come from the parsed camera SPEC. */
#include "camera-sim.h"

#include <string.h>

#define ANONYMOUS_ROLE "anonymous"

struct _CimsSimAuth {
  GstRTSPAuth parent_instance;

  GHashTable *passwords;   /* user name -> password, to reject conflicting SPECs */
};

G_DEFINE_FINAL_TYPE (CimsSimAuth, cims_sim_auth, GST_TYPE_RTSP_AUTH)

/* Sends @code, with the authentication challenge when it is 401. */
static void
auth_send_error (GstRTSPAuth *auth, GstRTSPContext *ctx, GstRTSPStatusCode code)
{
  GstRTSPAuthClass *klass = GST_RTSP_AUTH_GET_CLASS (auth);

  gst_rtsp_message_init_response (ctx->response, code, gst_rtsp_status_as_text (code),
                                  ctx->request);
  if (code == GST_RTSP_STS_UNAUTHORIZED)
    klass->generate_authenticate_header (auth, ctx);
  gst_rtsp_client_send_message (ctx->client, ctx->session, ctx->response);
}

/* Returns the role of the request's credentials, or NULL when they are
 * missing or wrong. */
static const char *
auth_get_role (GstRTSPAuth *auth, GstRTSPContext *ctx)
{
  GstRTSPAuthClass *klass = GST_RTSP_AUTH_GET_CLASS (auth);
  const char *role;

  /* Sets ctx->token from the Authorization header, or to the default
   * (anonymous) token when the credentials are missing or wrong. */
  if (ctx->token == NULL && !klass->authenticate (auth, ctx))
    return NULL;

  if (ctx->token == NULL)
    return NULL;

  role = gst_rtsp_token_get_string (ctx->token, GST_RTSP_TOKEN_MEDIA_FACTORY_ROLE);
  if (role == NULL || g_str_equal (role, ANONYMOUS_ROLE))
    return NULL;

  return role;
}

static gboolean
auth_check (GstRTSPAuth *auth, GstRTSPContext *ctx, const gchar *check)
{
  GstRTSPAuthClass *parent_class = GST_RTSP_AUTH_CLASS (cims_sim_auth_parent_class);
  const char *permission = GST_RTSP_PERM_MEDIA_FACTORY_ACCESS;
  g_autoptr(GstRTSPPermissions) perms = NULL;
  const char *role;

  if (!g_str_has_prefix (check, "auth.check.media.factory.") || ctx->factory == NULL)
    return parent_class->check (auth, ctx, check);

  /* A factory without permissions belongs to a camera without a user. */
  perms = gst_rtsp_media_factory_get_permissions (ctx->factory);
  if (perms == NULL)
    return TRUE;

  role = auth_get_role (auth, ctx);
  if (role == NULL) {
    g_debug ("rejected %s without valid credentials, sending 401", check);
    auth_send_error (auth, ctx, GST_RTSP_STS_UNAUTHORIZED);
    return FALSE;
  }

  if (g_str_equal (check, GST_RTSP_AUTH_CHECK_MEDIA_FACTORY_CONSTRUCT))
    permission = GST_RTSP_PERM_MEDIA_FACTORY_CONSTRUCT;

  if (gst_rtsp_permissions_is_allowed (perms, role, permission))
    return TRUE;

  /* Valid credentials of another camera's user: a 401 would make clients
   * such as rtspsrc resend the same credentials in a loop. */
  g_debug ("rejected %s for role %s, sending 403", check, role);
  auth_send_error (auth, ctx, GST_RTSP_STS_FORBIDDEN);
  return FALSE;
}

static void
auth_finalize (GObject *object)
{
  CimsSimAuth *self = CIMS_SIM_AUTH (object);

  g_clear_pointer (&self->passwords, g_hash_table_unref);

  G_OBJECT_CLASS (cims_sim_auth_parent_class)->finalize (object);
}

static void
cims_sim_auth_class_init (CimsSimAuthClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GstRTSPAuthClass *auth_class = GST_RTSP_AUTH_CLASS (klass);

  object_class->finalize = auth_finalize;
  auth_class->check = auth_check;
}

static void
cims_sim_auth_init (CimsSimAuth *self)
{
  self->passwords = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
}

/**
 * cims_sim_auth_new:
 * Creates the authenticator of the simulator's server. Anonymous clients get
 * a token whose role no protected mount allows; only Digest is accepted until
 * a camera with auth=basic is added.
 * Returns: (transfer full)
 */
CimsSimAuth *
cims_sim_auth_new (void)
{
  CimsSimAuth *auth = g_object_new (CIMS_SIM_TYPE_AUTH, NULL);
  g_autoptr(GstRTSPToken) anonymous =
    gst_rtsp_token_new (GST_RTSP_TOKEN_MEDIA_FACTORY_ROLE, G_TYPE_STRING, ANONYMOUS_ROLE, NULL);

  gst_rtsp_auth_set_default_token (GST_RTSP_AUTH (auth), anonymous);
  gst_rtsp_auth_set_supported_methods (GST_RTSP_AUTH (auth), GST_RTSP_AUTH_DIGEST);
  gst_rtsp_auth_set_realm (GST_RTSP_AUTH (auth), "cimshub-camera-sim");

  return auth;
}

static void
auth_enable_basic (CimsSimAuth *self, const CimsSimCamera *camera, GstRTSPToken *token)
{
  GstRTSPAuth *auth = GST_RTSP_AUTH (self);
  g_autofree char *basic = gst_rtsp_auth_make_basic (camera->user, camera->password);

  /* NOTE: the supported methods belong to the whole server, so once one
   * camera has auth=basic every 401 also offers Basic. Only the users of
   * auth=basic cameras are registered for it, so other users still need
   * Digest. */
  gst_rtsp_auth_set_supported_methods (auth, gst_rtsp_auth_get_supported_methods (auth) |
                                             GST_RTSP_AUTH_BASIC);
  gst_rtsp_auth_add_basic (auth, basic, token);
  memset (basic, 0, strlen (basic));
}

/**
 * cims_sim_auth_add_camera:
 * Registers the Digest credentials of @camera (transfer none) and allows only
 * its user's role to open @factory (transfer none). Cameras that share a user
 * share the role, so that user may open each of them. Returns FALSE with
 * CIMS_SIM_ERROR_INVALID_SPEC when the user was added before with another
 * password. Call before the server is attached.
 */
gboolean
cims_sim_auth_add_camera (CimsSimAuth *self, const CimsSimCamera *camera,
                          GstRTSPMediaFactory *factory, GError **error)
{
  g_autofree char *role = NULL;
  g_autoptr(GstRTSPToken) token = NULL;
  const char *known_password;

  g_return_val_if_fail (CIMS_SIM_IS_AUTH (self), FALSE);
  g_return_val_if_fail (camera->user != NULL && camera->password != NULL, FALSE);

  known_password = g_hash_table_lookup (self->passwords, camera->user);
  if (known_password != NULL && !g_str_equal (known_password, camera->password)) {
    g_set_error (error, CIMS_SIM_ERROR, CIMS_SIM_ERROR_INVALID_SPEC,
                 "user '%s' is given with two different passwords", camera->user);
    return FALSE;
  }
  g_hash_table_replace (self->passwords, g_strdup (camera->user), g_strdup (camera->password));

  role = g_strconcat ("user:", camera->user, NULL);
  token = gst_rtsp_token_new (GST_RTSP_TOKEN_MEDIA_FACTORY_ROLE, G_TYPE_STRING, role, NULL);
  gst_rtsp_auth_add_digest (GST_RTSP_AUTH (self), camera->user, camera->password, token);
  if (camera->allows_basic)
    auth_enable_basic (self, camera, token);

  gst_rtsp_media_factory_add_role (factory, role,
                                   GST_RTSP_PERM_MEDIA_FACTORY_ACCESS, G_TYPE_BOOLEAN, TRUE,
                                   GST_RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, G_TYPE_BOOLEAN, TRUE,
                                   NULL);
  return TRUE;
}
