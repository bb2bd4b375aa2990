/* SPDX-License-Identifier: Apache-2.0 */
/* cimshub-camera-sim: an RTSP server that plays the part of cameras for tests,
 * benchmarks and the demo, one mount point per --camera SPEC. This file
 * contains the command line, the server and the signal handling. SPEC parsing,
 * media factories, footage looping and login are in the camera-sim-*.c files. */
#include "camera-sim.h"

#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

typedef struct {
  char *address;
  int port;
  char **camera_specs;
  char *footage_path;
} SimOptions;

static void
sim_options_clear (SimOptions *options)
{
  g_clear_pointer (&options->address, g_free);
  g_clear_pointer (&options->camera_specs, g_strfreev);
  g_clear_pointer (&options->footage_path, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (SimOptions, sim_options_clear)

static void
sim_exit_usage (const char *format, ...) G_GNUC_PRINTF (1, 2) G_GNUC_NORETURN;

static void
sim_exit_usage (const char *format, ...)
{
  va_list args;

  va_start (args, format);
  fputs ("cimshub-camera-sim: ", stderr);
  vfprintf (stderr, format, args);
  fputc ('\n', stderr);
  va_end (args);
  exit (EXIT_USAGE);
}

static void
sim_parse_options (int *argc, char ***argv, SimOptions *options)
{
  GOptionEntry entries[] = {
    { "address", 0, 0, G_OPTION_ARG_STRING, &options->address,
      "Address to listen on (default 127.0.0.1)", "ADDRESS" },
    { "port", 0, 0, G_OPTION_ARG_INT, &options->port,
      "TCP port for RTSP, 0 for any free port (default 8554)", "PORT" },
    { "camera", 0, 0, G_OPTION_ARG_STRING_ARRAY, &options->camera_specs,
      "One camera as comma-separated key=value: path, codec=h264|h265, profile, width, "
      "height, fps, keyint (frames), kbps, audio=none|pcma|aac|opus, source=pattern|file, "
      "pattern, user, password, auth=digest|basic, transport=any|tcp, fault; repeatable",
      "SPEC" },
    { "footage", 0, 0, G_OPTION_ARG_FILENAME, &options->footage_path,
      "Video file that source=file cameras loop (default: $CIMS_TEST_FOOTAGE)", "PATH" },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new ("- simulated RTSP cameras");
  g_autoptr(GError) error = NULL;

  options->port = 8554;
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_add_group (context, gst_init_get_option_group ());
  if (!g_option_context_parse (context, argc, argv, &error))
    sim_exit_usage ("%s", error->message);

  if (options->address == NULL)
    options->address = g_strdup ("127.0.0.1");
  if (options->port < 0 || options->port > 65535)
    sim_exit_usage ("invalid --port %d: expected 0 to 65535", options->port);
  if (options->camera_specs == NULL || options->camera_specs[0] == NULL)
    sim_exit_usage ("at least one --camera SPEC is required, e.g. --camera path=bos-0001");
  if (options->footage_path == NULL && g_getenv ("CIMS_TEST_FOOTAGE") != NULL)
    options->footage_path = g_strdup (g_getenv ("CIMS_TEST_FOOTAGE"));
}

/* Parses every SPEC, rejecting repeated mount paths. Exits with status 2 on
 * the first invalid one. */
static GPtrArray *
sim_parse_cameras (char **specs)
{
  g_autoptr(GPtrArray) cameras = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_sim_camera_free);
  g_autoptr(GHashTable) paths = g_hash_table_new (g_str_hash, g_str_equal);

  for (guint i = 0; specs[i] != NULL; i++) {
    g_autoptr(GError) error = NULL;
    CimsSimCamera *camera = cims_sim_camera_parse (specs[i], &error);

    if (camera == NULL) {
      g_autofree char *redacted = cims_sim_spec_redact (specs[i]);

      sim_exit_usage ("invalid --camera '%s': %s", redacted, error->message);
    }

    g_ptr_array_add (cameras, camera);
    if (!g_hash_table_add (paths, camera->mount_path))
      sim_exit_usage ("invalid --camera '%s': path '%s' is already used by another camera",
                      camera->spec, camera->mount_path);
  }

  return g_steal_pointer (&cameras);
}

/* Adds one mount per camera, and the authenticator when a camera has a user.
 * Exits with status 2 on conflicting credentials and 1 on a missing element. */
static void
sim_add_mounts (GstRTSPServer *server, GPtrArray *cameras)
{
  g_autoptr(GstRTSPMountPoints) mounts = gst_rtsp_server_get_mount_points (server);
  g_autoptr(CimsSimAuth) auth = NULL;

  for (guint i = 0; i < cameras->len; i++) {
    CimsSimCamera *camera = g_ptr_array_index (cameras, i);
    g_autoptr(GError) error = NULL;
    GstRTSPMediaFactory *factory;

    if (camera->faults.flags & CIMS_SIM_FAULTS_RAW)
      continue;

    factory = cims_sim_factory_new (camera, &error);
    if (factory == NULL) {
      g_printerr ("cimshub-camera-sim: camera %s cannot be served: %s\n",
                  camera->mount_path, error->message);
      exit (EXIT_FAILURE);
    }

    if (camera->user != NULL) {
      if (auth == NULL)
        auth = cims_sim_auth_new ();
      if (!cims_sim_auth_add_camera (auth, camera, factory, &error))
        sim_exit_usage ("invalid --camera '%s': %s", camera->spec, error->message);
    }

    /* The mount points take the factory (transfer full). */
    gst_rtsp_mount_points_add_factory (mounts, camera->mount_path, factory);
  }

  if (auth != NULL)
    gst_rtsp_server_set_auth (server, GST_RTSP_AUTH (auth));
}

/* Starts one raw RTSP responder, on its own port, for each camera whose
 * faults gst-rtsp-server cannot produce. Returns them in camera order, NULL
 * for the other cameras. Exits with status 1 when one cannot listen. */
static GPtrArray *
sim_start_raw_servers (GPtrArray *cameras, const char *address)
{
  g_autoptr(GPtrArray) servers = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_sim_raw_server_free);

  for (guint i = 0; i < cameras->len; i++) {
    CimsSimCamera *camera = g_ptr_array_index (cameras, i);
    g_autoptr(GError) error = NULL;
    CimsSimRawServer *raw = NULL;

    if (camera->faults.flags & CIMS_SIM_FAULTS_RAW) {
      raw = cims_sim_raw_server_start (camera, address, &error);
      if (raw == NULL) {
        g_printerr ("cimshub-camera-sim: camera %s cannot be served: %s\n",
                    camera->mount_path, error->message);
        exit (EXIT_FAILURE);
      }
    }
    g_ptr_array_add (servers, raw);
  }

  return g_steal_pointer (&servers);
}

/* Prints the line scripts wait for, one per mount, with the bound port. A
 * camera of the raw responder has a port of its own. */
static void
sim_print_ready (GstRTSPServer *server, const char *address, GPtrArray *cameras, GPtrArray *raw_servers)
{
  gboolean is_ipv6 = strchr (address, ':') != NULL;

  for (guint i = 0; i < cameras->len; i++) {
    CimsSimCamera *camera = g_ptr_array_index (cameras, i);
    CimsSimRawServer *raw = g_ptr_array_index (raw_servers, i);
    int port = raw != NULL ? cims_sim_raw_server_get_port (raw) : gst_rtsp_server_get_bound_port (server);

    printf ("cimshub-camera-sim: serving rtsp://%s%s%s:%d%s (%s %ux%u@%u, audio %s)\n",
            is_ipv6 ? "[" : "", address, is_ipv6 ? "]" : "", port, camera->mount_path,
            cims_sim_codec_to_string (camera->codec), camera->width, camera->height,
            camera->fps, cims_sim_audio_to_string (camera->audio));
  }
  fflush (stdout);
}

static gboolean
sim_quit_cb (gpointer user_data)
{
  GMainLoop *loop = user_data;

  g_message ("signal received, stopping");
  g_main_loop_quit (loop);
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  g_auto(SimOptions) options = { 0 };
  g_autoptr(GPtrArray) cameras = NULL;
  g_autoptr(GstRTSPServer) server = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_autoptr(GPtrArray) raw_servers = NULL;
  g_autofree char *service = NULL;
  guint server_source_id;

  /* stdout carries only the lines that scripts wait for. */
  g_log_writer_default_set_use_stderr (TRUE);
  sim_parse_options (&argc, &argv, &options);
  cameras = sim_parse_cameras (options.camera_specs);

  for (guint i = 0; i < cameras->len; i++)
    cims_sim_camera_resolve (g_ptr_array_index (cameras, i), options.footage_path);

  server = gst_rtsp_server_new ();
  service = g_strdup_printf ("%d", options.port);
  gst_rtsp_server_set_address (server, options.address);
  gst_rtsp_server_set_service (server, service);
  sim_add_mounts (server, cameras);

  server_source_id = gst_rtsp_server_attach (server, NULL);
  if (server_source_id == 0) {
    g_printerr ("cimshub-camera-sim: failed to listen on %s port %d\n",
                options.address, options.port);
    return EXIT_FAILURE;
  }

  raw_servers = sim_start_raw_servers (cameras, options.address);
  loop = g_main_loop_new (NULL, FALSE);
  g_unix_signal_add (SIGINT, sim_quit_cb, loop);
  g_unix_signal_add (SIGTERM, sim_quit_cb, loop);
  sim_print_ready (server, options.address, cameras, raw_servers);

  g_main_loop_run (loop);

  g_source_remove (server_source_id);
  return EXIT_SUCCESS;
}
