/* SPDX-License-Identifier: Apache-2.0 */
/* Internals shared by the auth module's files: automatic cleanup for the
 * OpenSSL types they use and the key-type checks common to signing and
 * verifying. Code outside auth/ never includes this header. */
#pragma once

#include <glib.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

G_BEGIN_DECLS

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BIO, BIO_free_all)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (EVP_PKEY, EVP_PKEY_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (EVP_MD_CTX, EVP_MD_CTX_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ECDSA_SIG, ECDSA_SIG_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BIGNUM, BN_free)

/* Byte length of each half (r and s) of a raw ES256 signature. */
#define CIMS_AUTH_ES256_HALF_LEN 32

/* Smallest RSA modulus accepted for RS256, in bits. */
#define CIMS_AUTH_RSA_MIN_BITS 2048

/*
 * cims_auth_key_get_algorithm:
 * Returns the only JWS algorithm a key may be used with: "ES256" for an EC
 * P-256 key, "RS256" for an RSA key of at least 2048 bits, or NULL for any
 * other key. The string is static.
 */
const char *cims_auth_key_get_algorithm (EVP_PKEY *key);

/*
 * cims_auth_pem_file_read:
 * Reads the PEM file at @path, described as @what ("token key", "private
 * key") in messages, into a BIO_s_secmem() memory BIO, whose buffer OpenSSL
 * wipes when it is freed. The copy read from disk is wiped too. Fails with
 * CIMS_AUTH_ERROR_KEY when the file cannot be read or is over 1 MiB.
 * Returns: (transfer full): the BIO, or NULL with @error set.
 */
BIO *cims_auth_pem_file_read (const char *path, const char *what, GError **error);

/*
 * cims_auth_describe_openssl_error:
 * Pops the calling thread's OpenSSL error queue and returns its oldest entry
 * as text, or "no detail from OpenSSL" when the queue is empty. The queue is
 * left empty.
 * Returns: (transfer full)
 */
char *cims_auth_describe_openssl_error (void);

/*
 * cims_auth_quote_for_message:
 * Quotes an untrusted value (a claim, a request header) for an error
 * message or log line, so a crafted value cannot forge log lines. Control
 * characters, quotes and backslashes are escaped, and values over 64
 * characters are cut and end in "...". Valid UTF-8 is kept as it is, and
 * invalid UTF-8 becomes "(not UTF-8)".
 * Returns: (transfer full)
 */
char *cims_auth_quote_for_message (const char *value);

G_END_DECLS
