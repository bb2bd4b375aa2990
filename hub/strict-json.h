/* SPDX-License-Identifier: Apache-2.0 */
/* A strict RFC 8259 check of JSON request bodies (strict-json.c). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Returns (transfer full) why @data is not one strict RFC 8259 JSON text in
 * UTF-8, or NULL if it is. A body of only whitespace passes, because
 * json-glib reads it as no value, which the caller rejects as not an
 * object. */
char *cims_strict_json_check (const char *data, gsize size);

G_END_DECLS
