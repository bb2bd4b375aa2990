/* SPDX-License-Identifier: Apache-2.0 */
/* The lock on a state folder: one hub per state_dir. A second hub on the
 * same folder would take the first one's live sessions for a crashed run's
 * and write false stop records into the audit log. */
#include "hub/hub-runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_LOCK_FILE "cimshub.lock"
#define STATE_LOCK_PID_MAX 32

/* Returns the process id the lock file names, or NULL. */
static char *
lock_holder_read (int fd)
{
  char text[STATE_LOCK_PID_MAX] = { 0 };
  ssize_t n = pread (fd, text, sizeof text - 1, 0);

  if (n <= 0)
    return NULL;
  text[strcspn (text, "\n")] = '\0';
  return text[0] != '\0' ? g_strdup (text) : NULL;
}

/* Writes this process's id into the lock file, for the error a second hub
 * prints and for operators. */
static void
lock_holder_write (int fd, const char *path)
{
  char text[STATE_LOCK_PID_MAX];
  int length = g_snprintf (text, sizeof text, "%d\n", (int) getpid ());

  if (ftruncate (fd, 0) != 0 || pwrite (fd, text, (size_t) length, 0) != length)
    g_warning ("cannot write this hub's process id into %s: %s", path, g_strerror (errno));
}

/* Checks that @fd, opened from @path, is a regular file of this user, so
 * that writing the process id into it changes nothing else. */
static gboolean
lock_file_check (int fd, const char *path, GError **error)
{
  struct stat status;

  if (fstat (fd, &status) != 0) {
    g_set_error (error, CIMS_HUB_ERROR, CIMS_HUB_ERROR_FAILED, "Cannot read the state lock %s: %s", path,
                 g_strerror (errno));
    return FALSE;
  }

  if (!S_ISREG (status.st_mode) || status.st_uid != geteuid ()) {
    g_set_error (error, CIMS_HUB_ERROR, CIMS_HUB_ERROR_FAILED,
                 "The state lock %s is not a regular file owned by this user (uid %u); remove it, and "
                 "check who else can write to state_dir", path, (guint) geteuid ());
    return FALSE;
  }
  return TRUE;
}

/* Opens the lock file without following a symbolic link, so that another
 * local user cannot point it at a file of the hub's user. */
static int
lock_file_open (const char *path, GError **error)
{
  int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  int saved_errno = errno;
  const char *hint = "";

  if (fd < 0) {
    if (saved_errno == ELOOP)
      hint = " (it is a symbolic link; remove it)";
    else if (saved_errno == EACCES || saved_errno == EROFS)
      hint = " (the hub's user must be able to write to state_dir)";
    g_set_error (error, CIMS_HUB_ERROR, CIMS_HUB_ERROR_FAILED, "Cannot open the state lock %s: %s%s", path,
                 g_strerror (saved_errno), hint);
    return -1;
  }

  if (!lock_file_check (fd, path, error)) {
    close (fd);
    return -1;
  }
  return fd;
}

/* See hub-runtime.h. */
int
cims_state_lock_acquire (const char *folder, GError **error)
{
  g_autofree char *path = g_build_filename (folder, STATE_LOCK_FILE, NULL);
  g_autofree char *holder = NULL;
  int fd = lock_file_open (path, error);

  if (fd < 0)
    return -1;

  if (flock (fd, LOCK_EX | LOCK_NB) == 0) {
    lock_holder_write (fd, path);
    return fd;
  }

  if (errno != EWOULDBLOCK) {
    g_set_error (error, CIMS_HUB_ERROR, CIMS_HUB_ERROR_FAILED, "Cannot lock the state lock %s: %s", path,
                 g_strerror (errno));
  } else {
    holder = lock_holder_read (fd);
    g_set_error (error, CIMS_HUB_ERROR, CIMS_HUB_ERROR_FAILED,
                 "Another cimshub (process %s) is using state_dir %s. Stop it first, or give this hub a "
                 "state_dir of its own", holder != NULL ? holder : "id unknown", folder);
  }
  close (fd);
  return -1;
}

/* See hub-runtime.h. */
void
cims_state_lock_release (int fd)
{
  if (fd >= 0)
    close (fd);
}
