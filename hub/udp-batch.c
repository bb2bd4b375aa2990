/* SPDX-License-Identifier: Apache-2.0 */
/* Batched UDP sends to one destination: one sendmmsg() per batch, with each
 * run of equal-size datagrams (and a shorter last one) merged into a single
 * UDP GSO message. The FU-A fragments of a frame are all one size but the
 * last, so a frame's datagrams cross the IP stack as one or two buffers and
 * the kernel or the network card cuts them apart. */
#include "hub/udp-batch.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>

/* At most 64 segments per GSO send, the limit of the first kernels with UDP
 * GSO. One send carries at most 65,507 bytes of UDP payload. */
#define GSO_MAX_SEGMENTS 64
#define GSO_MAX_BYTES 65000
/* Larger datagrams go out alone: a GSO segment plus the IP and UDP headers
 * must fit a 1500-byte Ethernet MTU. A smaller path MTU makes the kernel
 * reject GSO with EMSGSIZE, and the batch falls back. */
#define GSO_MAX_SEGMENT_SIZE_IPV4 (1500 - 20 - 8)
#define GSO_MAX_SEGMENT_SIZE_IPV6 (1500 - 40 - 8)

/* The sendmmsg() messages for one batch. */
typedef struct {
  struct mmsghdr messages[CIMS_UDP_BATCH_MAX];
  union {
    char buffer[CMSG_SPACE (sizeof (guint16))];
    struct cmsghdr align;
  } controls[CIMS_UDP_BATCH_MAX];
  guint first[CIMS_UDP_BATCH_MAX];   /* index of the message's first datagram */
  guint count[CIMS_UDP_BATCH_MAX];   /* datagrams in the message */
  guint n_messages;
} BatchPlan;

/* Returns how many datagrams from @start on one message can carry. An empty
 * datagram goes alone, because a segment size of 0 turns GSO off. */
static guint
run_length (const struct iovec *datagrams, guint start, guint n_datagrams, size_t max_segment_size)
{
  size_t segment_size = datagrams[start].iov_len;
  guint max_count;
  guint end = start + 1;

  if (segment_size == 0 || segment_size > max_segment_size)
    return 1;

  max_count = MIN (GSO_MAX_SEGMENTS, GSO_MAX_BYTES / segment_size);
  while (end < n_datagrams && end - start < max_count && datagrams[end].iov_len == segment_size)
    end++;

  /* GSO allows the last segment to be shorter, but not empty. */
  if (end < n_datagrams && end - start < max_count && datagrams[end].iov_len < segment_size
      && datagrams[end].iov_len > 0)
    end++;

  return end - start;
}

static void
plan_set_segment_size (BatchPlan *plan, guint index, size_t segment_size)
{
  struct msghdr *header = &plan->messages[index].msg_hdr;
  struct cmsghdr *control;
  guint16 size = (guint16) segment_size;

  header->msg_control = plan->controls[index].buffer;
  header->msg_controllen = sizeof plan->controls[index].buffer;
  control = CMSG_FIRSTHDR (header);
  control->cmsg_level = SOL_UDP;
  control->cmsg_type = UDP_SEGMENT;
  control->cmsg_len = CMSG_LEN (sizeof size);
  memcpy (CMSG_DATA (control), &size, sizeof size);
}

static void
plan_build (BatchPlan *plan, const struct sockaddr *peer, socklen_t peer_size,
            const struct iovec *datagrams, guint n_datagrams, gboolean use_gso)
{
  size_t max_segment_size = 0;

  if (use_gso)
    max_segment_size = peer->sa_family == AF_INET6 ? GSO_MAX_SEGMENT_SIZE_IPV6 : GSO_MAX_SEGMENT_SIZE_IPV4;

  plan->n_messages = 0;
  for (guint i = 0; i < n_datagrams;) {
    guint index = plan->n_messages++;
    guint count = run_length (datagrams, i, n_datagrams, max_segment_size);
    struct msghdr *header = &plan->messages[index].msg_hdr;

    memset (&plan->messages[index], 0, sizeof plan->messages[index]);
    header->msg_name = (void *) peer;
    header->msg_namelen = peer_size;
    header->msg_iov = (struct iovec *) &datagrams[i];
    header->msg_iovlen = count;
    if (count > 1)
      plan_set_segment_size (plan, index, datagrams[i].iov_len);

    plan->first[index] = i;
    plan->count[index] = count;
    i += count;
  }
}

static void
result_add_messages (CimsUdpBatchResult *result, const BatchPlan *plan, const struct iovec *datagrams,
                     guint first_message, guint n_messages)
{
  for (guint m = first_message; m < first_message + n_messages; m++) {
    for (guint i = plan->first[m]; i < plan->first[m] + plan->count[m]; i++)
      result->n_bytes += datagrams[i].iov_len;
    result->n_sent += plan->count[m];
  }
}

/* Tells whether @error_code from a GSO message means that the route or the
 * kernel cannot segment it: EIO from a device without checksum offload, or
 * EMSGSIZE when a segment does not fit the path MTU. */
static gboolean
is_gso_rejection (int error_code)
{
  return error_code == EIO || error_code == EINVAL || error_code == EMSGSIZE || error_code == EOPNOTSUPP
         || error_code == ENOPROTOOPT;
}

void
cims_udp_send_batch (int fd, const struct sockaddr *peer, socklen_t peer_size, const struct iovec *datagrams,
                     guint n_datagrams, gboolean use_gso, CimsUdpBatchResult *result)
{
  BatchPlan plan;
  guint done = 0;

  g_return_if_fail (n_datagrams <= CIMS_UDP_BATCH_MAX);

  plan_build (&plan, peer, peer_size, datagrams, n_datagrams, use_gso);
  while (done < plan.n_messages) {
    int n_sent = sendmmsg (fd, plan.messages + done, plan.n_messages - done, MSG_DONTWAIT | MSG_NOSIGNAL);

    if (n_sent > 0) {
      result_add_messages (result, &plan, datagrams, done, (guint) n_sent);
      done += (guint) n_sent;
      continue;
    }
    if (n_sent < 0 && errno == EINTR)
      continue;

    /* The rest goes out without GSO, one datagram per message. */
    if (n_sent < 0 && plan.count[done] > 1 && is_gso_rejection (errno)) {
      result->gso_error = errno;
      cims_udp_send_batch (fd, peer, peer_size, datagrams + plan.first[done], n_datagrams - plan.first[done],
                           FALSE, result);
      return;
    }

    /* A full socket buffer or an unreachable peer: the rest is dropped. */
    return;
  }
}
