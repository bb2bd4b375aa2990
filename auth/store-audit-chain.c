/* SPDX-License-Identifier: Apache-2.0 */
/* The audit log's hash chain: the canonical form of a record, its SHA-256,
 * the check of one record against the one before it, and a verifying walk
 * over any backend's log. Every backend hashes and verifies through here,
 * so they all agree on the chain. */

#include "auth/store.h"

#include <string.h>

#include <openssl/evp.h>

#include "auth/store-private.h"

/* First item of the canonical form. A new form gets a new tag, so that a
 * record hashed under an older form can never verify under a newer one. */
#define AUDIT_CANONICAL_TAG "cims-audit-v1"

/* The previous_hash of record 1. */
static const char audit_zero_hash[CIMS_STORE_HASH_HEX_LEN + 1] =
  "0000000000000000000000000000000000000000000000000000000000000000";

/* Maximum length of a 64-bit integer in decimal: a sign and 19 or 20 digits. */
#define DECIMAL_MAX_LEN 21

/* Writes @value in decimal to the end of @buffer and returns where the text
 * starts. A verify or a report hashes every record of the log, and printf
 * was most of that time. */
static char *
decimal_format (char buffer[DECIMAL_MAX_LEN], guint64 value, gboolean is_negative)
{
  char *start = buffer + DECIMAL_MAX_LEN;

  do {
    *--start = (char) ('0' + value % 10);
    value /= 10;
  } while (value > 0);

  if (is_negative)
    *--start = '-';
  return start;
}

/* Appends @value as a netstring: its byte length in decimal, ':', the bytes,
 * ','. NULL is written as "~," which no netstring can be, so NULL and ""
 * hash differently. */
static void
canonical_append_bytes (GString *out, const char *value, gsize length)
{
  char buffer[DECIMAL_MAX_LEN];
  const char *digits = decimal_format (buffer, length, FALSE);

  g_string_append_len (out, digits, buffer + DECIMAL_MAX_LEN - digits);
  g_string_append_c (out, ':');
  g_string_append_len (out, value, (gssize) length);
  g_string_append_c (out, ',');
}

static void
canonical_append_text (GString *out, const char *value)
{
  if (value == NULL) {
    g_string_append (out, "~,");
    return;
  }

  canonical_append_bytes (out, value, strlen (value));
}

static void
canonical_append_int (GString *out, gint64 value)
{
  char buffer[DECIMAL_MAX_LEN];
  guint64 magnitude = value < 0 ? (guint64) 0 - (guint64) value : (guint64) value;
  const char *digits = decimal_format (buffer, magnitude, value < 0);

  canonical_append_bytes (out, digits, buffer + DECIMAL_MAX_LEN - digits);
}

/*
 * The canonical form is a sequence of netstrings (length-prefixed UTF-8, see
 * canonical_append_text) in this fixed order: the tag "cims-audit-v1",
 * sequence, time_ms, event, person_id, person_name, person_jurisdiction,
 * camera_id, camera_owner, camera_location, session_id, grant_id,
 * incident_id, incident_number, viewer_address, client_version, reason,
 * details, bytes_sent, duration_ms, previous_hash. Integers are written in
 * decimal. The length prefixes make the form unambiguous without escaping.
 * Returns: (transfer full)
 */
static GString *
audit_record_canonical_form (const CimsAuditRecord *record)
{
  GString *out = g_string_sized_new (512);
  char buffer[DECIMAL_MAX_LEN];
  const char *sequence = decimal_format (buffer, record->sequence, FALSE);

  canonical_append_text (out, AUDIT_CANONICAL_TAG);
  canonical_append_bytes (out, sequence, buffer + DECIMAL_MAX_LEN - sequence);
  canonical_append_int (out, record->time_ms);

  canonical_append_text (out, record->event);
  canonical_append_text (out, record->person_id);
  canonical_append_text (out, record->person_name);
  canonical_append_text (out, record->person_jurisdiction);
  canonical_append_text (out, record->camera_id);
  canonical_append_text (out, record->camera_owner);
  canonical_append_text (out, record->camera_location);
  canonical_append_text (out, record->session_id);
  canonical_append_text (out, record->grant_id);
  canonical_append_text (out, record->incident_id);
  canonical_append_text (out, record->incident_number);
  canonical_append_text (out, record->viewer_address);
  canonical_append_text (out, record->client_version);
  canonical_append_text (out, record->reason);
  canonical_append_text (out, record->details);

  canonical_append_int (out, record->bytes_sent);
  canonical_append_int (out, record->duration_ms);
  canonical_append_text (out, record->previous_hash);

  return out;
}

char *
cims_audit_record_compute_hash (const CimsAuditRecord *record)
{
  static const char hex_digits[] = "0123456789abcdef";
  g_autoptr(GString) form = audit_record_canonical_form (record);
  guint8 digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  char *hex;

  /* Hashing a buffer in memory has no input that can fail, so a failure
   * here means OpenSSL itself is unusable and no record can be chained. */
  if (EVP_Digest (form->str, form->len, digest, &digest_len, EVP_sha256 (), NULL) != 1)
    g_error ("EVP_Digest(SHA-256) failed while hashing an audit record");

  hex = g_malloc (digest_len * 2 + 1);
  for (unsigned int i = 0; i < digest_len; i++) {
    hex[2 * i] = hex_digits[digest[i] >> 4];
    hex[2 * i + 1] = hex_digits[digest[i] & 0x0f];
  }
  hex[digest_len * 2] = '\0';
  return hex;
}

void
cims_audit_chain_init (CimsAuditChain *chain)
{
  chain->next_sequence = 1;
  memcpy (chain->previous_hash, audit_zero_hash, sizeof chain->previous_hash);
}

static gboolean
chain_fail (guint64 sequence, guint64 *first_bad_sequence, GError **error, const char *format,
            ...) G_GNUC_PRINTF (4, 5);

static gboolean
chain_fail (guint64 sequence, guint64 *first_bad_sequence, GError **error, const char *format,
            ...)
{
  va_list args;
  g_autofree char *detail = NULL;

  va_start (args, format);
  detail = g_strdup_vprintf (format, args);
  va_end (args);

  *first_bad_sequence = sequence;
  g_set_error_literal (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_CHAIN_BROKEN, detail);
  return FALSE;
}

static gboolean
chain_check_sequence (CimsAuditChain *chain, const CimsAuditRecord *record,
                      guint64 *first_bad_sequence, GError **error)
{
  guint64 expected = chain->next_sequence;

  if (record->sequence == expected)
    return TRUE;

  if (record->sequence > expected && expected == 1)
    return chain_fail (expected, first_bad_sequence, error,
                       "record 1 is missing: the log starts at record %" G_GUINT64_FORMAT,
                       record->sequence);

  if (record->sequence > expected)
    return chain_fail (expected, first_bad_sequence, error,
                       "record %" G_GUINT64_FORMAT " is missing: record %" G_GUINT64_FORMAT
                       " is followed by record %" G_GUINT64_FORMAT,
                       expected, expected - 1, record->sequence);

  return chain_fail (expected, first_bad_sequence, error,
                     "record %" G_GUINT64_FORMAT " is out of order: it comes where record %"
                     G_GUINT64_FORMAT " belongs", record->sequence, expected);
}

/* The link check runs before the content check, so records that were
 * swapped or moved are reported as such at the first position they break. */
static gboolean
chain_check_link (CimsAuditChain *chain, const CimsAuditRecord *record,
                  guint64 *first_bad_sequence, GError **error)
{
  if (g_strcmp0 (record->previous_hash, chain->previous_hash) == 0)
    return TRUE;

  if (record->sequence == 1)
    return chain_fail (1, first_bad_sequence, error,
                       "record 1 does not start the chain: its previous_hash is not 64 zeros");

  return chain_fail (record->sequence, first_bad_sequence, error,
                     "record %" G_GUINT64_FORMAT " does not follow record %" G_GUINT64_FORMAT
                     ": its previous_hash does not match the hash of record %" G_GUINT64_FORMAT
                     " (records were moved or removed, or record %" G_GUINT64_FORMAT
                     " was changed and re-hashed)",
                     record->sequence, record->sequence - 1, record->sequence - 1,
                     record->sequence - 1);
}

gboolean
cims_audit_chain_check (CimsAuditChain *chain, const CimsAuditRecord *record,
                        guint64 *first_bad_sequence, GError **error)
{
  g_autofree char *hash = NULL;

  if (!chain_check_sequence (chain, record, first_bad_sequence, error))
    return FALSE;

  if (!chain_check_link (chain, record, first_bad_sequence, error))
    return FALSE;

  hash = cims_audit_record_compute_hash (record);
  if (g_strcmp0 (hash, record->hash) != 0)
    return chain_fail (record->sequence, first_bad_sequence, error,
                       "record %" G_GUINT64_FORMAT " was changed: its hash does not match "
                       "its content", record->sequence);

  /* The recomputed hash has the right length even when the stored one did not. */
  memcpy (chain->previous_hash, hash, sizeof chain->previous_hash);
  chain->next_sequence++;

  return TRUE;
}

/* The state of a cims_store_audit_verify_foreach() walk. */
typedef struct {
  CimsAuditChain chain;
  CimsAuditRecordFunc func;
  gpointer user_data;
  guint64 first_bad_sequence;
  GError *error;                /* the first break, which stopped the walk */
} ChainWalk;

static gboolean
chain_walk_record_cb (const CimsAuditRecord *record, gpointer user_data)
{
  ChainWalk *walk = user_data;

  if (!cims_audit_chain_check (&walk->chain, record, &walk->first_bad_sequence, &walk->error))
    return FALSE;

  return walk->func (record, walk->user_data);
}

gboolean
cims_store_audit_verify_foreach (CimsStore *store, CimsAuditRecordFunc func, gpointer user_data,
                                 guint64 *first_bad_sequence, GError **error)
{
  ChainWalk walk = { .func = func, .user_data = user_data };
  guint64 ignored = 0;

  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (func != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (first_bad_sequence == NULL)
    first_bad_sequence = &ignored;
  *first_bad_sequence = 0;

  cims_audit_chain_init (&walk.chain);
  if (!cims_store_audit_foreach (store, NULL, chain_walk_record_cb, &walk, NULL, error))
    return FALSE;

  if (walk.error != NULL) {
    *first_bad_sequence = walk.first_bad_sequence;
    g_propagate_error (error, walk.error);
    return FALSE;
  }

  return TRUE;
}
