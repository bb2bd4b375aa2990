/* SPDX-License-Identifier: Apache-2.0 */
/* The life of the hub's HTTP connections: one request each, a limit on how
 * long the hub waits for a silent client, and the release of the socket
 * that libsoup 3.2 keeps after each connection. Routing is in
 * http-server.c. */
#include "hub/hub-runtime.h"

#define LEAKED_SOCKET_SWEEP_S 2

struct _CimsHttpConnections {
  CimsHub *hub;
  gboolean releases_leaked_sockets;
  GPtrArray *accepted;          /* of GWeakRef *, sockets libsoup accepted */
  guint sweep_id;
};

static void
weak_ref_free (GWeakRef *ref)
{
  g_weak_ref_clear (ref);
  g_free (ref);
}

/* Returns whether @socket, which the caller holds one reference to, is
 * closed and held by nothing else but the reference libsoup 3.2 never
 * drops. Nothing else runs on the main context meanwhile, so no owner can
 * be part way through letting go. */
static gboolean
socket_is_leaked (GSocket *socket)
{
  return g_socket_is_closed (socket) && g_atomic_int_get (&G_OBJECT (socket)->ref_count) == 2;
}

/* Drops the leaked reference of every closed socket, and removes the
 * entries of sockets that are already gone. Keeps running while sockets are left to watch. */
static gboolean
leaked_sockets_sweep_cb (gpointer user_data)
{
  CimsHttpConnections *connections = user_data;

  for (guint i = connections->accepted->len; i > 0; i--) {
    GWeakRef *ref = g_ptr_array_index (connections->accepted, i - 1);
    GSocket *socket = g_weak_ref_get (ref);
    gboolean is_done = socket == NULL || socket_is_leaked (socket);

    if (socket != NULL && is_done)
      g_object_unref (socket);
    g_clear_object (&socket);
    if (is_done)
      g_ptr_array_remove_index_fast (connections->accepted, i - 1);
  }

  if (connections->accepted->len > 0)
    return G_SOURCE_CONTINUE;

  connections->sweep_id = 0;
  return G_SOURCE_REMOVE;
}

static void
leaked_socket_watch (CimsHttpConnections *connections, GSocket *socket)
{
  GWeakRef *ref = g_new0 (GWeakRef, 1);

  g_weak_ref_init (ref, socket);
  g_ptr_array_add (connections->accepted, ref);
  if (connections->sweep_id == 0)
    connections->sweep_id = g_timeout_add_seconds (LEAKED_SOCKET_SWEEP_S, leaked_sockets_sweep_cb,
                                                   connections);
}

/* Returns whether libsoup's listener kept its reference to @socket, seen
 * as libsoup accepts the connection: then the connection and the leaked
 * reference are its only two, before libsoup wraps the socket in a stream.
 * A libsoup that drops the reference at once leaves one, and its sockets
 * are not watched. */
static gboolean
listener_kept_socket (SoupServerMessage *msg, GSocket *socket)
{
  return soup_server_message_get_method (msg) == NULL && g_atomic_int_get (&G_OBJECT (socket)->ref_count) == 2;
}

/* Tells whether the hub keeps a connection it has just accepted, and
 * otherwise counts it and logs at most once a minute. */
static gboolean
connection_fits_budget (CimsHub *hub)
{
  gint64 now_us = g_get_monotonic_time ();
  guint64 n_open = 0;

  if (cims_fd_budget_admit_connection (&hub->fd_budget, now_us, &n_open))
    return TRUE;

  CIMS_METRIC_ADD (hub, http_refused_open_files, 1);
  if (hub->http_fd_limit_logged_us == 0 || now_us - hub->http_fd_limit_logged_us >= 60 * G_USEC_PER_SEC) {
    hub->http_fd_limit_logged_us = now_us;
    g_warning ("closing new HTTP connections unanswered: about %" G_GUINT64_FORMAT " of the open-file limit "
               "of %" G_GUINT64_FORMAT " are in use, and the last %" G_GUINT64_FORMAT " are kept for camera "
               "ingest and the database. Clients holding idle connections are the usual cause "
               "(hub.http_idle_timeout_s closes them; watch cimshub_http_refused_open_files_total); "
               "otherwise raise the limit (LimitNOFILE= in the systemd unit, or ulimit -n) and restart the hub",
               n_open, hub->fd_budget.limit, hub->fd_budget.reserve / 2);
  }
  return FALSE;
}

/* libsoup emits this as it accepts a connection, before the request
 * arrives. The socket gets the wait limit: a client that sends no request,
 * stops part way through one, or does not read the response for
 * hub.http_idle_timeout_s loses the connection, so it cannot hold a file
 * descriptor for ever.
 * NOTE: GSocket applies the limit to each wait, so a client that sends one
 * byte per interval keeps its connection and descriptor. */
static void
request_started_cb (SoupServer *server, SoupServerMessage *msg, gpointer user_data)
{
  CimsHttpConnections *connections = user_data;
  GSocket *socket = soup_server_message_get_socket (msg);

  if (socket == NULL)
    return;

  if (connections->releases_leaked_sockets && listener_kept_socket (msg, socket))
    leaked_socket_watch (connections, socket);

  if (!connection_fits_budget (connections->hub)) {
    /* libsoup reads end of file, closes the connection and frees its descriptor. */
    g_socket_shutdown (socket, TRUE, TRUE, NULL);
    return;
  }

  g_socket_set_timeout (socket, connections->hub->config->http_idle_timeout_s);
}

/* NOTE: libsoup 3.2.3's listener never drops its reference to the GSocket
 * it accepts, which would cost about 340 bytes per connection for as long as
 * the hub runs. The sweep drops it once libsoup has closed the socket and
 * let go of it everywhere else. Only the 3.2 series is watched, and only
 * sockets whose count shows the kept reference (listener_kept_socket). */
static gboolean
libsoup_leaks_accepted_sockets (void)
{
  return soup_get_major_version () == 3 && soup_get_minor_version () == 2;
}

CimsHttpConnections *
cims_http_connections_new (CimsHub *hub, SoupServer *server)
{
  CimsHttpConnections *connections = g_new0 (CimsHttpConnections, 1);

  connections->hub = hub;
  connections->accepted = g_ptr_array_new_with_free_func ((GDestroyNotify) weak_ref_free);
  connections->releases_leaked_sockets = libsoup_leaks_accepted_sockets ();
  g_signal_connect (server, "request-started", G_CALLBACK (request_started_cb), connections);
  return connections;
}

void
cims_http_connections_free (CimsHttpConnections *connections)
{
  if (connections == NULL)
    return;

  g_clear_handle_id (&connections->sweep_id, g_source_remove);
  g_ptr_array_unref (connections->accepted);
  g_free (connections);
}

/* Closes the connection once the response is written. libsoup 3.2 never
 * frees a kept-alive connection that its client closes, so each would keep
 * a file descriptor open until the hub stops. A connection per request
 * also keeps idle viewers' connections off the main loop, which visits
 * every open one on each pass. */
void
cims_http_connection_close_after (SoupServerMessage *msg)
{
  soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Connection", "close");
}
