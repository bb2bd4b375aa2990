/* SPDX-License-Identifier: Apache-2.0 */
/* Long reads of the state store for the admin API, such as the annual
 * report and audit queries, run on a low-priority thread through a
 * read-only connection, and the reply is sent from the main context.
 * Stopping the hub cancels them. What each request reads and sends is in
 * its own api-*.c. */
#include "hub/hub-runtime.h"

#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>

/* The offload thread's nice value: background work beside the media. */
#define OFFLOAD_THREAD_NICE 10
/* Reads waiting or running at most. Past it a request gets 503 with
 * Retry-After, so that no client can queue reads without bound. */
#define OFFLOAD_JOBS_MAX 8
#define OFFLOAD_RETRY_AFTER_S "5"

/* One request whose read runs on the offload thread. The thread sets
 * @error when the read fails, then the main context replies to the paused
 * @msg. */
typedef struct {
  CimsHub *hub;
  SoupServerMessage *msg;
  char *description;            /* the request as log lines name it */
  char *store_path;
  CimsApiOffloadReadFunc read;
  CimsApiOffloadReplyFunc reply;
  gpointer data;
  GDestroyNotify data_free;
  GCancellable *cancellable;    /* the hub's, cancelled when it stops */
  GError *error;
} OffloadJob;

static void
offload_job_free (OffloadJob *job)
{
  g_object_unref (job->msg);
  g_free (job->description);
  g_free (job->store_path);
  g_clear_pointer (&job->data, job->data_free);
  g_object_unref (job->cancellable);
  g_clear_error (&job->error);
  g_free (job);
}

static gboolean
offload_reply_on_main_cb (gpointer user_data)
{
  OffloadJob *job = user_data;

  job->hub->n_offload_jobs--;

  /* A hub that stopped has closed every connection, this request's too,
   * so there is nothing to send the reply on. */
  if (job->hub->http == NULL) {
    if (g_error_matches (job->error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
      g_message ("%s stopped: the hub is stopping", job->description);
    offload_job_free (job);
    return G_SOURCE_REMOVE;
  }

  if (job->error == NULL) {
    job->reply (job->msg, job->data);
  } else {
    g_warning ("%s failed: %s", job->description, job->error->message);
    cims_api_reply_store_error (job->msg, job->error);
  }

  soup_server_message_unpause (job->msg);
  offload_job_free (job);
  return G_SOURCE_REMOVE;
}

/* Offload thread. A read can cover millions of records, so it goes
 * through a connection of its own. In WAL mode that read neither waits for
 * the main context's audit writes nor delays them. */
static void
offload_run (gpointer data, gpointer user_data)
{
  OffloadJob *job = data;
  CimsHub *hub = user_data;
  g_autoptr (CimsStore) store = NULL;

  /* On Linux a nice value set with a thread id applies to that thread only:
   * the read then yields the core to the media workers and the main loop. */
  if (setpriority (PRIO_PROCESS, (id_t) gettid (), OFFLOAD_THREAD_NICE) != 0)
    g_debug ("store read thread: setpriority(%d) failed: %s", OFFLOAD_THREAD_NICE, g_strerror (errno));

  /* A read queued behind the one running is skipped once the hub stops. */
  if (!g_cancellable_set_error_if_cancelled (job->cancellable, &job->error)) {
    store = cims_store_sqlite_open_reader (job->store_path, &job->error);
    if (store != NULL)
      job->read (store, job->data, job->cancellable, &job->error);
  }

  g_main_context_invoke (hub->main_context, offload_reply_on_main_cb, job);
}

/* On first use, makes the offload thread and the cancellable that stops
 * its reads. */
static void
offload_pool_ensure (CimsHub *hub)
{
  if (hub->offload_pool != NULL)
    return;

  /* One thread, so one read at a time: each read keeps a core busy, an
   * audit query keeps up to 10,001 records in memory, and the media workers
   * need the hub's cores first. A queued request keeps only its paused
   * message and its parameters. Exclusive: the thread keeps its nice value
   * to itself, where a shared pool thread would carry it on to GLib's and
   * GStreamer's other work. */
  hub->offload_pool = g_thread_pool_new (offload_run, hub, 1, TRUE, NULL);
  hub->offload_cancellable = g_cancellable_new ();
}

void
cims_api_offload_push (CimsHub *hub, SoupServerMessage *msg, char *description, CimsApiOffloadReadFunc read,
                       CimsApiOffloadReplyFunc reply, gpointer data, GDestroyNotify data_free)
{
  OffloadJob *job;

  if (hub->store_path == NULL) {
    cims_http_reply_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "store-unavailable",
                           "The audit log is not open.");
    g_free (description);
    data_free (data);
    return;
  }

  if (hub->n_offload_jobs >= OFFLOAD_JOBS_MAX) {
    g_message ("%s rejected: %u reads of the audit log are already queued or running", description,
               hub->n_offload_jobs);
    cims_http_reply_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "store-busy",
                           "Other reports and audit queries are already waiting. Try again in a few seconds.");
    soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Retry-After",
                                  OFFLOAD_RETRY_AFTER_S);
    g_free (description);
    data_free (data);
    return;
  }

  job = g_new0 (OffloadJob, 1);
  job->hub = hub;
  job->msg = g_object_ref (msg);
  job->description = description;
  job->store_path = g_strdup (hub->store_path);
  job->read = read;
  job->reply = reply;
  job->data = data;
  job->data_free = data_free;

  offload_pool_ensure (hub);
  job->cancellable = g_object_ref (hub->offload_cancellable);

  hub->n_offload_jobs++;
  soup_server_message_pause (msg);
  g_thread_pool_push (hub->offload_pool, job, NULL);
}

void
cims_api_offload_stop (CimsHub *hub)
{
  if (hub->offload_pool == NULL)
    return;

  /* The running read stops within a few hundred records' worth of
   * reading, also while SQLite sorts the records, and queued ones are
   * skipped. Their replies wait on the main context, which the hub owns to
   * the end and iterates once more before it is freed, and are dropped
   * there. */
  g_cancellable_cancel (hub->offload_cancellable);
  g_thread_pool_free (g_steal_pointer (&hub->offload_pool), FALSE, TRUE);
  g_clear_object (&hub->offload_cancellable);
}
