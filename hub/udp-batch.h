/* SPDX-License-Identifier: Apache-2.0 */
/* Batched UDP sends with GSO (udp-batch.c). */
#pragma once

#include <glib.h>
#include <sys/socket.h>
#include <sys/uio.h>

G_BEGIN_DECLS

/* Datagrams one cims_udp_send_batch() call takes. */
#define CIMS_UDP_BATCH_MAX 64

/* What one batch did: the caller zeroes it before the call. */
typedef struct {
  guint n_sent;                 /* datagrams the kernel took */
  guint64 n_bytes;
  int gso_error;                /* errno of a rejected GSO send, else 0 */
} CimsUdpBatchResult;

/* Sends @n_datagrams (at most CIMS_UDP_BATCH_MAX) datagrams to @peer on the
 * non-blocking UDP socket @fd, in order, with as few messages as GSO allows
 * when @use_gso. When the kernel rejects a GSO message, the rest goes out
 * without GSO and @result's gso_error is set to the errno. Datagrams after a failed
 * send (a full socket buffer) are not sent. */
void cims_udp_send_batch (int fd, const struct sockaddr *peer, socklen_t peer_size, const struct iovec *datagrams,
                          guint n_datagrams, gboolean use_gso, CimsUdpBatchResult *result);

G_END_DECLS
