/* SPDX-License-Identifier: Apache-2.0 */
/* Checks the grants and incidents tables of a state database against the
 * audit records that carry each grant and incident (cimshubctl-audit-tables.c). */
#pragma once

#include <glib.h>

#include "auth/store.h"

G_BEGIN_DECLS

typedef struct _CimsCtlRecordedTables CimsCtlRecordedTables;

CimsCtlRecordedTables *cims_ctl_recorded_tables_new (void);
void cims_ctl_recorded_tables_free (CimsCtlRecordedTables *tables);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsCtlRecordedTables, cims_ctl_recorded_tables_free)

/* Keeps what @record says about a grant or incident, when it is one of their
 * records. Call it for every record of the verified chain, in order. */
void cims_ctl_recorded_tables_add (CimsCtlRecordedTables *tables, const CimsAuditRecord *record);

/* Compares every row of the grants and incidents tables with the latest
 * record of it. Appends one line per difference to @problems, and counts in
 * *@n_unchecked the rows whose records are older than the details they
 * need. Returns FALSE with @error set when a table cannot be read. */
gboolean cims_ctl_recorded_tables_check (CimsCtlRecordedTables *tables, CimsStore *store, GString *problems,
                                         guint *n_unchecked, GError **error);

G_END_DECLS
