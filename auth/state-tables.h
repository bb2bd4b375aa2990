/* SPDX-License-Identifier: Apache-2.0 */
/* Checks the grants and incidents tables of a state database against the
 * audit records that carry each grant and incident (state-tables.c). Used
 * by cimshubctl audit verify and by the hub when it loads its grants. */
#pragma once

#include <glib.h>

#include "auth/store.h"

G_BEGIN_DECLS

typedef struct _CimsRecordedTables CimsRecordedTables;

CimsRecordedTables *cims_recorded_tables_new (void);
void cims_recorded_tables_free (CimsRecordedTables *tables);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CimsRecordedTables, cims_recorded_tables_free)

/* Keeps the grant or incident that @record carries, when it is one of their
 * records. Call it for every record of the verified chain, in order. */
void cims_recorded_tables_add (CimsRecordedTables *tables, const CimsAuditRecord *record);

/* Compares each of @grants (of CimsGrant) and @incidents (of CimsIncident),
 * the rows of the tables, with the latest record of it. Appends one line
 * per difference to @problems, and each row (transfer none) that differs
 * from its record, that no record names or that has no id to
 * @rejected_grants or @rejected_incidents (either may be NULL). Counts in
 * *@n_unchecked the rows whose records were written before records carried
 * the row. Records whose row is gone get a line too. */
void cims_recorded_tables_compare (CimsRecordedTables *tables, GPtrArray *grants, GPtrArray *incidents,
                                   GString *problems, GPtrArray *rejected_grants, GPtrArray *rejected_incidents,
                                   guint *n_unchecked);

/* Reads the grants and incidents tables of @store and compares them as
 * cims_recorded_tables_compare() does. Returns FALSE with @error set when a
 * table cannot be read. */
gboolean cims_recorded_tables_check (CimsRecordedTables *tables, CimsStore *store, GString *problems,
                                     guint *n_unchecked, GError **error);

G_END_DECLS
