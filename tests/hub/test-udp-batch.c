/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of hub/udp-batch.c on loopback. A batch shaped like two frames (a
 * small packet, equal-size fragments and a shorter last one) must reach a
 * plain UDP socket as the same datagrams in the same order, with GSO and
 * without. */
#include "hub/udp-batch.h"

#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define RECEIVE_TIMEOUT_MS 2000

static int
socket_bound_to_loopback (struct sockaddr_in *address)
{
  int fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  socklen_t size = sizeof *address;
  struct timeval timeout = { .tv_sec = RECEIVE_TIMEOUT_MS / 1000 };
  int buffer_size = 4 * 1024 * 1024;

  g_assert_cmpint (fd, >=, 0);
  memset (address, 0, sizeof *address);
  address->sin_family = AF_INET;
  address->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  g_assert_cmpint (bind (fd, (struct sockaddr *) address, sizeof *address), ==, 0);
  g_assert_cmpint (getsockname (fd, (struct sockaddr *) address, &size), ==, 0);
  g_assert_cmpint (setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout), ==, 0);
  g_assert_cmpint (setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &buffer_size, sizeof buffer_size), ==, 0);
  return fd;
}

/* Fills datagram @index of @size bytes with a pattern that names it. */
static guint8 *
datagram_new (guint index, gsize size)
{
  guint8 *data = g_malloc (size);

  for (gsize i = 0; i < size; i++)
    data[i] = (guint8) (index * 31 + i);
  return data;
}

/* Reads @n datagrams from @receiver and checks each against @datagrams. */
static void
assert_received (int receiver, const struct iovec *datagrams, guint n)
{
  for (guint i = 0; i < n; i++) {
    guint8 received[2048];
    ssize_t length = recv (receiver, received, sizeof received, 0);

    g_assert_cmpint (length, ==, (ssize_t) datagrams[i].iov_len);
    g_assert_cmpmem (received, (gsize) length, datagrams[i].iov_base, datagrams[i].iov_len);
  }
}

static void
datagrams_free (struct iovec *datagrams, guint n)
{
  for (guint i = 0; i < n; i++)
    g_free (datagrams[i].iov_base);
}

/* Sends datagrams of @sizes from one loopback socket to another in one
 * batch, checks that each arrives whole and in order, and returns what
 * cims_udp_send_batch() reported. */
static CimsUdpBatchResult
send_and_receive (const gsize *sizes, guint n, gboolean use_gso)
{
  g_autofree struct iovec *datagrams = g_new0 (struct iovec, n);
  struct sockaddr_in receiver_address, sender_address;
  int receiver = socket_bound_to_loopback (&receiver_address);
  int sender = socket_bound_to_loopback (&sender_address);
  CimsUdpBatchResult result = { 0 };

  for (guint i = 0; i < n; i++) {
    datagrams[i].iov_base = datagram_new (i, MAX (sizes[i], 1));
    datagrams[i].iov_len = sizes[i];
  }

  cims_udp_send_batch (sender, (struct sockaddr *) &receiver_address, sizeof receiver_address, datagrams, n,
                       use_gso, &result);
  assert_received (receiver, datagrams, MIN (result.n_sent, n));

  datagrams_free (datagrams, n);
  close (sender);
  close (receiver);
  return result;
}

static void
check_batch (gboolean use_gso)
{
  static const gsize sizes[] = { 40, 1200, 1200, 1200, 1200, 1200, 700, 38, 1200, 1200, 1100, 1300, 1500 };
  guint64 n_bytes = 0;
  CimsUdpBatchResult result;

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    n_bytes += sizes[i];

  result = send_and_receive (sizes, G_N_ELEMENTS (sizes), use_gso);
  g_assert_cmpuint (result.n_sent, ==, G_N_ELEMENTS (sizes));
  g_assert_cmpuint (result.n_bytes, ==, n_bytes);
  g_assert_cmpint (result.gso_error, ==, 0);
}

static void
test_batch_with_gso (void)
{
  check_batch (TRUE);
}

static void
test_batch_without_gso (void)
{
  check_batch (FALSE);
}

/* A full batch of 1400-byte datagrams, more than one GSO send may carry:
 * the batch is split into several GSO messages and still arrives whole. */
static void
test_batch_full_run (void)
{
  gsize sizes[CIMS_UDP_BATCH_MAX];
  CimsUdpBatchResult result;

  for (guint i = 0; i < CIMS_UDP_BATCH_MAX; i++)
    sizes[i] = 1400;

  result = send_and_receive (sizes, CIMS_UDP_BATCH_MAX, TRUE);
  g_assert_cmpuint (result.n_sent, ==, CIMS_UDP_BATCH_MAX);
}

/* Brings loopback up in the calling process's own network namespace with
 * @mtu. Returns FALSE when the namespace cannot be made (not root). */
static gboolean
loopback_with_mtu (int mtu)
{
  struct ifreq request = { 0 };
  int fd;

  if (unshare (CLONE_NEWNET) != 0)
    return FALSE;

  fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint (fd, >=, 0);
  g_strlcpy (request.ifr_name, "lo", sizeof request.ifr_name);
  request.ifr_mtu = mtu;
  g_assert_cmpint (ioctl (fd, SIOCSIFMTU, &request), ==, 0);
  g_assert_cmpint (ioctl (fd, SIOCGIFFLAGS, &request), ==, 0);
  request.ifr_flags |= IFF_UP;
  g_assert_cmpint (ioctl (fd, SIOCSIFFLAGS, &request), ==, 0);
  close (fd);
  return TRUE;
}

/* A path MTU below the GSO segment size: the kernel rejects the GSO message
 * with EMSGSIZE, and the batch goes out again one datagram per message. */
static void
test_batch_small_mtu_falls_back (void)
{
  static const gsize sizes[] = { 100, 1200, 1200, 1200, 900 };
  CimsUdpBatchResult result;

  if (!g_test_subprocess ()) {
    if (getuid () != 0) {
      g_test_skip ("a network namespace of its own needs root");
      return;
    }
    g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_passed ();
    return;
  }

  g_assert_true (loopback_with_mtu (1000));
  result = send_and_receive (sizes, G_N_ELEMENTS (sizes), TRUE);
  g_assert_cmpint (result.gso_error, ==, EMSGSIZE);
  g_assert_cmpuint (result.n_sent, ==, G_N_ELEMENTS (sizes));
}

/* Empty datagrams: GSO would merge them away, so each goes alone. */
static void
test_batch_empty_datagrams (void)
{
  static const gsize sizes[] = { 0, 0, 100, 100, 0 };
  CimsUdpBatchResult result = send_and_receive (sizes, G_N_ELEMENTS (sizes), TRUE);

  g_assert_cmpuint (result.n_sent, ==, G_N_ELEMENTS (sizes));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/udp-batch/gso", test_batch_with_gso);
  g_test_add_func ("/udp-batch/no-gso", test_batch_without_gso);
  g_test_add_func ("/udp-batch/full-run", test_batch_full_run);
  g_test_add_func ("/udp-batch/small-mtu", test_batch_small_mtu_falls_back);
  g_test_add_func ("/udp-batch/empty", test_batch_empty_datagrams);

  return g_test_run ();
}
