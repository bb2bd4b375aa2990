/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the annual transparency report: a store in a temporary
 * directory contains a known audit log (several jurisdictions, months and
 * years), and every figure of the report is checked against counts the
 * test makes from the same records, then found again in the CSV and HTML.
 * Copies of that log with a record deleted or changed check the report's
 * statement on the hash chain. The grant and incident records come from
 * the hub's own writer (hub/access.c and hub/audit.c) on a bare CimsHub
 * that has only a store. */
#include "auth/report.h"

#include <string.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include "hub/hub-runtime.h"

#define YEAR 2025

static const char report_config[] =
  "hub: {\n"
  "  http_listen = \"127.0.0.1:8080\";\n"
  "  ice_udp_ports = [20000, 20999];\n"
  "  public_addresses = [\"127.0.0.1\"];\n"
  "  state_dir = \"state\";\n"
  "};\n"
  "jurisdictions = (\n"
  "  { id = \"boston\"; name = \"Boston\"; participates = true;\n"
  "    token_issuer = \"https://idp.boston.test\"; token_key = \"keys/boston.pub.pem\"; },\n"
  "  { id = \"chelsea\"; name = \"Chelsea\"; participates = true;\n"
  "    token_issuer = \"https://idp.chelsea.test\"; token_key = \"keys/chelsea.pub.pem\"; },\n"
  "  { id = \"everett\"; name = \"Everett, \\\"City\\\"\"; participates = true;\n"
  "    token_issuer = \"https://idp.everett.test\"; token_key = \"keys/everett.pub.pem\"; },\n"
  "  { id = \"cambridge\"; name = \"Cambridge\"; participates = false;\n"
  "    token_issuer = \"https://idp.cambridge.test\"; token_key = \"keys/cambridge.pub.pem\"; }\n"
  ");\n"
  "agencies = (\n"
  "  { id = \"state-police\"; name = \"State Police\";\n"
  "    token_issuer = \"https://idp.statepolice.test\"; token_key = \"keys/sp.pub.pem\"; }\n"
  ");\n"
  "cameras = (\n"
  "  { id = \"bos-0001\"; jurisdiction = \"boston\"; location = \"A\"; brand_model = \"M\";\n"
  "    installed = \"2019-05-02\"; source = \"rtsp://192.0.2.1/a\"; },\n"
  "  { id = \"bos-0002\"; jurisdiction = \"boston\"; location = \"B\"; brand_model = \"M\";\n"
  "    installed = \"2025-06-01\"; source = \"rtsp://192.0.2.1/b\"; },\n"
  "  { id = \"bos-0003\"; jurisdiction = \"boston\"; location = \"C\"; brand_model = \"M\";\n"
  "    installed = \"2026-01-01\"; source = \"rtsp://192.0.2.1/c\"; },\n"
  "  { id = \"bos-0004\"; jurisdiction = \"boston\"; location = \"D\"; brand_model = \"M\";\n"
  "    installed = \"2020-01-01\"; source = \"rtsp://192.0.2.1/d\";\n"
  "    out_of_service = ( { from = \"2024-12-01\"; to = \"2026-01-31\"; } ); },\n"
  "  { id = \"chl-0001\"; jurisdiction = \"chelsea\"; location = \"E\"; brand_model = \"M\";\n"
  "    installed = \"2020-01-01\"; source = \"rtsp://192.0.2.1/e\";\n"
  "    out_of_service = ( { from = \"2025-06-15\"; to = \"2025-12-31\"; },\n"
  "                       { from = \"2025-01-01\"; to = \"2025-06-30\"; } ); },\n"
  "  { id = \"chl-0002\"; jurisdiction = \"chelsea\"; location = \"F\"; brand_model = \"M\";\n"
  "    installed = \"2025-12-31\"; source = \"rtsp://192.0.2.1/f\"; },\n"
  "  { id = \"evt-0001\"; jurisdiction = \"everett\"; location = \"G\"; brand_model = \"M\";\n"
  "    installed = \"2021-03-03\"; source = \"rtsp://192.0.2.1/g\";\n"
  "    out_of_service = ( { from = \"2025-03-01\"; to = \"2025-03-31\"; } ); }\n"
  ");\n"
  "viewer_profiles = (\n"
  "  { name = \"browser\"; codecs = [\"h264\"];\n"
  "    max_width = 1920; max_height = 1080; max_fps = 30; max_kbps = 4000; }\n"
  ");\n";

/* Cameras in service in YEAR per jurisdiction, read off the inventory
 * above: bos-0003 is installed after the year, bos-0004 and chl-0001 are
 * out of service for all of it (chl-0001 through two overlapping periods),
 * chl-0002 serves one day and evt-0001 is out for March only. */
static const struct {
  const char *jurisdiction;
  guint n_cameras;
} expected_cameras[] = {
  { "boston", 2 }, { "chelsea", 1 }, { "everett", 1 }, { "cambridge", 0 },
};

/* One audit record of the known log. */
typedef struct {
  const char *time;
  const char *event;
  const char *person_id;
  const char *person_jurisdiction;
  const char *camera_owner;
  gint64 duration_ms;
  const char *details;
} TestRecord;

static const TestRecord test_records[] = {
  { "2024-06-01T10:00:00Z", "grant-created", "ga-c", "chelsea", "chelsea", 0, NULL },
  { "2024-12-31T23:59:59Z", "session-stop", "b1", "boston", "boston", 1000, NULL },
  { "2025-01-01T00:00:00Z", "hub-started", NULL, NULL, NULL, 0, NULL },
  { "2025-01-05T09:00:00Z", "session-start", "b1", "boston", "boston", 0,
    "{\"permissions\":[\"view\"],\"roles\":[\"viewer\"]}" },
  { "2025-01-05T10:00:00Z", "session-stop", "b1", "boston", "boston", 3600000, NULL },
  { "2025-02-10T09:00:00Z", "session-start", "b2", "boston", "boston", 0,
    "{\"permissions\":[\"view\",\"restrict\"],\"roles\":[\"viewer\",\"auditor\"]}" },
  { "2025-02-10T09:30:00Z", "session-stop", "b2", "boston", "boston", 1800000, NULL },
  { "2025-03-01T12:00:00Z", "session-start", "c1", "chelsea", "chelsea", 0,
    "{\"permissions\":[\"view\"],\"roles\":[\"viewer\"]}" },
  { "2025-03-01T12:10:00Z", "session-stop", "c1", "chelsea", "chelsea", 600000, NULL },
  { "2025-03-02T08:00:00Z", "grant-created", "ga1", "boston", "boston", 0, NULL },
  { "2025-04-01T08:00:00Z", "session-start", "b1", "boston", "boston", 0,
    "{\"permissions\":[\"view\",\"rewind\"],\"roles\":[\"viewer\"]}" },
  { "2025-04-01T10:00:00Z", "session-stop", "b1", "boston", "boston", 7200000, NULL },
  { "2025-05-01T00:00:00Z", "incident-started", "cmd1", "chelsea", "chelsea", 0, NULL },
  { "2025-05-02T13:00:00Z", "session-start", "s1", "state-police", "chelsea", 0,
    "{\"permissions\":[\"view\"],\"roles\":[\"viewer\"]}" },
  { "2025-05-02T13:15:00Z", "session-stop", "s1", "state-police", "chelsea", 900000, NULL },
  { "2025-06-01T09:00:00Z", "archive-requested", "s1", "state-police", "boston", 0, NULL },
  { "2025-06-02T09:00:00Z", "archive-approved", "admin1", "boston", "boston", 0, NULL },
  { "2025-06-03T09:00:00Z", "archive-requested", "clerk1", "chelsea", "chelsea", 0, NULL },
  { "2025-06-04T09:00:00Z", "archive-legal-reviewed", "legal1", "chelsea", "chelsea", 0, NULL },
  { "2025-06-05T09:00:00Z", "archive-denied", "admin2", "chelsea", "chelsea", 0, NULL },
  { "2025-07-01T08:00:00Z", "grant-created", "ga1", "boston", "boston", 0, NULL },
  { "2025-07-02T08:00:00Z", "grant-revoked", "ga1", "boston", "boston", 0, NULL },
  { "2025-08-15T17:00:00Z", "request-denied", "e1", "everett", "boston", 0, NULL },
  { "2025-09-01T09:00:00Z", "session-start", "e2", "everett", "everett", 0,
    "{\"permissions\":[],\"roles\":[\"viewer\"]}" },
  { "2025-09-01T09:01:00Z", "session-stop", "e2", "everett", "everett", 60000, NULL },
  { "2025-10-10T10:00:00Z", "session-start", "r1", "revere", "boston", 0,
    "{\"permissions\":[\"view\"],\"roles\":[\"viewer\"]}" },
  { "2025-10-10T10:01:40Z", "session-stop", "r1", "revere", "boston", 100000, NULL },
  { "2025-11-11T11:00:00Z", "session-start", "b3", "boston", "boston", 0, NULL },
  { "2025-11-11T11:05:00Z", "session-stop", "b3", "boston", "boston", 300000, NULL },
  { "2025-12-31T23:59:59.999Z", "session-stop", "b2", "boston", "boston", 1000, NULL },
  { "2026-01-01T00:00:00Z", "session-stop", "b1", "boston", "boston", 5000, NULL },
  { "2026-01-02T00:00:00Z", "archive-approved", "admin2", "chelsea", "chelsea", 0, NULL },
};

static char *test_dir;
static CimsConfig *config;
static CimsStore *store;

static gint64
record_time_ms (const TestRecord *record)
{
  g_autoptr (GDateTime) time = g_date_time_new_from_iso8601 (record->time, NULL);

  g_assert_nonnull (time);
  return g_date_time_to_unix (time) * 1000 + g_date_time_get_microsecond (time) / 1000;
}

static gboolean
record_in_year (const TestRecord *record)
{
  g_autoptr (GDateTime) time = g_date_time_new_from_iso8601 (record->time, NULL);

  return g_date_time_get_year (time) == YEAR;
}

static int
record_month (const TestRecord *record)
{
  g_autoptr (GDateTime) time = g_date_time_new_from_iso8601 (record->time, NULL);

  return g_date_time_get_month (time) - 1;
}

/* ---- expected figures, counted from test_records ---------------------------------- */

static guint
expect_count (const char *event, const char *owner, const char *viewer)
{
  guint n = 0;

  for (gsize i = 0; i < G_N_ELEMENTS (test_records); i++) {
    const TestRecord *record = &test_records[i];

    if (!record_in_year (record) || g_strcmp0 (record->event, event) != 0)
      continue;
    if (owner != NULL && g_strcmp0 (record->camera_owner, owner) != 0)
      continue;
    if (viewer != NULL && g_strcmp0 (record->person_jurisdiction, viewer) != 0)
      continue;
    n++;
  }
  return n;
}

static gint64
expect_viewing_ms (const char *viewer)
{
  gint64 sum = 0;

  for (gsize i = 0; i < G_N_ELEMENTS (test_records); i++) {
    const TestRecord *record = &test_records[i];

    if (record_in_year (record) && g_str_equal (record->event, "session-stop")
        && g_strcmp0 (record->person_jurisdiction, viewer) == 0)
      sum += record->duration_ms;
  }
  return sum;
}

static guint
expect_monthly (const char *viewer, int month)
{
  guint n = 0;

  for (gsize i = 0; i < G_N_ELEMENTS (test_records); i++) {
    const TestRecord *record = &test_records[i];

    if (record_in_year (record) && g_str_equal (record->event, "session-stop")
        && g_strcmp0 (record->person_jurisdiction, viewer) == 0 && record_month (record) == month)
      n++;
  }
  return n;
}

/* Returns the distinct people of @jurisdiction in the year. (transfer container) */
static GPtrArray *
expect_people (const char *jurisdiction)
{
  GPtrArray *people = g_ptr_array_new ();

  for (gsize i = 0; i < G_N_ELEMENTS (test_records); i++) {
    const TestRecord *record = &test_records[i];

    if (record_in_year (record) && record->person_id != NULL
        && g_strcmp0 (record->person_jurisdiction, jurisdiction) == 0
        && !g_ptr_array_find_with_equal_func (people, record->person_id, g_str_equal, NULL))
      g_ptr_array_add (people, (gpointer) record->person_id);
  }
  return people;
}

/* Returns the details of the person's latest session-start with details. */
static const char *
expect_latest_rights (const char *jurisdiction, const char *person)
{
  const char *details = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (test_records); i++) {
    const TestRecord *record = &test_records[i];

    if (record_in_year (record) && g_str_equal (record->event, "session-start") && record->details != NULL
        && g_strcmp0 (record->person_jurisdiction, jurisdiction) == 0
        && g_strcmp0 (record->person_id, person) == 0)
      details = record->details;
  }
  return details;
}

/* Counts the people of @jurisdiction whose latest rights list @name in
 * @member ("permissions" or "roles"); a NULL @name counts those with an
 * empty permission list, and @member NULL those without recorded rights. */
static guint
expect_users_with (const char *jurisdiction, const char *member, const char *name)
{
  g_autoptr (GPtrArray) people = expect_people (jurisdiction);
  guint n = 0;

  for (guint i = 0; i < people->len; i++) {
    const char *details = expect_latest_rights (jurisdiction, g_ptr_array_index (people, i));
    g_autofree char *needle = NULL;

    if (member == NULL) {
      n += details == NULL;
      continue;
    }
    if (details == NULL)
      continue;
    needle = name != NULL ? g_strdup_printf ("\"%s\"", name) : g_strdup_printf ("\"%s\":[]", member);
    if (name == NULL) {
      n += strstr (details, needle) != NULL;
      continue;
    }
    /* The list of @member runs from its '[' to the next ']'. */
    {
      g_autofree char *key = g_strdup_printf ("\"%s\":[", member);
      const char *start = strstr (details, key);
      const char *end = start != NULL ? strchr (start, ']') : NULL;
      const char *hit = start != NULL ? strstr (start, needle) : NULL;

      n += hit != NULL && hit < end;
    }
  }
  return n;
}

/* ---- fixture ------------------------------------------------------------------------ */

static void
store_fill (CimsStore *target)
{
  for (gsize i = 0; i < G_N_ELEMENTS (test_records); i++) {
    const TestRecord *test = &test_records[i];
    g_autoptr (CimsAuditRecord) record = g_new0 (CimsAuditRecord, 1);
    g_autoptr (GError) error = NULL;

    record->time_ms = record_time_ms (test);
    record->event = g_strdup (test->event);
    record->person_id = g_strdup (test->person_id);
    record->person_jurisdiction = g_strdup (test->person_jurisdiction);
    record->camera_owner = g_strdup (test->camera_owner);
    record->duration_ms = test->duration_ms;
    record->details = g_strdup (test->details);
    record->reason = g_strdup ("test");

    g_assert_true (cims_store_audit_append (target, record, &error));
    g_assert_no_error (error);
  }
}

static const CimsReportParty *
report_find (const CimsAnnualReport *report, const char *id)
{
  for (guint i = 0; i < report->parties->len; i++) {
    const CimsReportParty *party = g_ptr_array_index (report->parties, i);

    if (g_str_equal (party->id, id))
      return party;
  }
  g_test_message ("the report has no row for %s", id);
  g_assert_not_reached ();
}

static int
names_index (char **names, const char *name)
{
  for (int i = 0; names[i] != NULL; i++) {
    if (g_str_equal (names[i], name))
      return i;
  }
  return -1;
}

static CimsAnnualReport *
report_compute (void)
{
  g_autoptr (GError) error = NULL;
  CimsAnnualReport *report = cims_annual_report_compute (store, config, YEAR, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (report);
  return report;
}

static const char *const report_parties[] = {
  "boston", "chelsea", "everett", "cambridge", "state-police", "revere",
};

/* ---- tests ------------------------------------------------------------------------------ */

static void
test_report_counts_cameras_in_service (void)
{
  g_autoptr (CimsAnnualReport) report = report_compute ();

  g_assert_true (report->has_camera_counts);
  for (gsize i = 0; i < G_N_ELEMENTS (expected_cameras); i++) {
    g_test_message ("cameras of %s", expected_cameras[i].jurisdiction);
    g_assert_cmpuint (report_find (report, expected_cameras[i].jurisdiction)->n_cameras_in_service, ==,
                      expected_cameras[i].n_cameras);
  }
}

static void
test_report_counts_users (void)
{
  g_autoptr (CimsAnnualReport) report = report_compute ();

  /* Literal figures, so a mistake shared by the test's counting and the
   * report's cannot pass: boston has b1, b2, b3, ga1, admin1. */
  g_assert_cmpuint (report_find (report, "boston")->n_users, ==, 5);
  g_assert_cmpuint (report_find (report, "revere")->kind, ==, CIMS_REPORT_PARTY_UNCONFIGURED);

  for (gsize i = 0; i < G_N_ELEMENTS (report_parties); i++) {
    const CimsReportParty *party = report_find (report, report_parties[i]);
    g_autoptr (GPtrArray) people = expect_people (report_parties[i]);

    g_test_message ("users of %s", report_parties[i]);
    g_assert_cmpuint (party->n_users, ==, people->len);
    g_assert_cmpuint (party->n_users_rights_unrecorded, ==, expect_users_with (report_parties[i], NULL, NULL));
    g_assert_cmpuint (party->n_users_without_permissions, ==,
                      expect_users_with (report_parties[i], "permissions", NULL));
  }
}

static void
test_report_counts_permission_levels (void)
{
  g_autoptr (CimsAnnualReport) report = report_compute ();
  const char *const permissions[] = { "view", "rewind", "download", "restrict" };
  const char *const roles[] = { "viewer", "auditor", "commander" };

  g_assert_cmpint (names_index (report->permission_names, "view"), ==, 0);
  g_assert_cmpint (names_index (report->role_names, "viewer"), ==, 0);

  /* b1's latest session-start lists view and rewind; b2's view and restrict. */
  g_assert_cmpuint (report_find (report, "boston")->users_by_permission[names_index (report->permission_names,
                                                                                       "rewind")], ==, 1);

  for (gsize i = 0; i < G_N_ELEMENTS (report_parties); i++) {
    const CimsReportParty *party = report_find (report, report_parties[i]);

    for (gsize p = 0; p < G_N_ELEMENTS (permissions); p++) {
      g_test_message ("%s users with permission %s", report_parties[i], permissions[p]);
      g_assert_cmpuint (party->users_by_permission[names_index (report->permission_names, permissions[p])], ==,
                        expect_users_with (report_parties[i], "permissions", permissions[p]));
    }
    for (gsize r = 0; r < G_N_ELEMENTS (roles); r++) {
      g_test_message ("%s users with role %s", report_parties[i], roles[r]);
      g_assert_cmpuint (party->users_by_role[names_index (report->role_names, roles[r])], ==,
                        expect_users_with (report_parties[i], "roles", roles[r]));
    }
  }
}

static void
test_report_counts_owner_events (void)
{
  g_autoptr (CimsAnnualReport) report = report_compute ();

  g_assert_cmpuint (report_find (report, "boston")->n_archive_requests_approved, ==, 1);
  g_assert_cmpuint (report_find (report, "chelsea")->n_archive_requests_approved, ==, 0);
  g_assert_cmpuint (report_find (report, "boston")->n_grants_created, ==, 2);

  for (gsize i = 0; i < G_N_ELEMENTS (report_parties); i++) {
    const CimsReportParty *party = report_find (report, report_parties[i]);

    g_test_message ("owner figures of %s", report_parties[i]);
    g_assert_cmpuint (party->n_archive_requests_approved, ==, expect_count ("archive-approved", party->id, NULL));
    g_assert_cmpuint (party->n_grants_created, ==, expect_count ("grant-created", party->id, NULL));
    g_assert_cmpuint (party->n_incidents_started, ==, expect_count ("incident-started", party->id, NULL));
  }
}

static void
test_report_counts_viewing (void)
{
  g_autoptr (CimsAnnualReport) report = report_compute ();

  g_assert_cmpuint (report_find (report, "boston")->n_viewing_sessions, ==, 5);
  g_assert_cmpint (report_find (report, "boston")->viewing_ms, ==, 3600000 + 1800000 + 7200000 + 300000 + 1000);
  g_assert_cmpuint (report_find (report, "boston")->monthly_sessions[11], ==, 1);

  for (gsize i = 0; i < G_N_ELEMENTS (report_parties); i++) {
    const CimsReportParty *party = report_find (report, report_parties[i]);

    g_test_message ("viewing of %s", report_parties[i]);
    g_assert_cmpuint (party->n_viewing_sessions, ==, expect_count ("session-stop", NULL, party->id));
    g_assert_cmpint (party->viewing_ms, ==, expect_viewing_ms (party->id));
    for (int month = 0; month < 12; month++)
      g_assert_cmpuint (party->monthly_sessions[month], ==, expect_monthly (party->id, month));
  }
}

static void
test_report_reconciles_with_log (void)
{
  g_autoptr (CimsAnnualReport) report = report_compute ();
  guint n_in_year = 0;
  guint64 first = 0, last = 0;

  for (gsize i = 0; i < G_N_ELEMENTS (test_records); i++) {
    if (!record_in_year (&test_records[i]))
      continue;
    n_in_year++;
    first = first == 0 ? i + 1 : first;
    last = i + 1;
  }

  g_assert_cmpuint (report->n_audit_records, ==, n_in_year);
  g_assert_cmpuint (report->first_sequence, ==, first);
  g_assert_cmpuint (report->last_sequence, ==, last);
}

/* Returns the CSV table titled @title: its rows from the header on. */
static char **
csv_table (const char *csv, const char *title)
{
  g_auto (GStrv) tables = g_strsplit (csv, "\r\n\r\n", -1);

  for (guint i = 0; tables[i] != NULL; i++) {
    if (g_str_has_prefix (tables[i], title))
      return g_strsplit (strstr (tables[i], "\r\n") + 2, "\r\n", -1);
  }
  g_test_message ("no CSV table titled %s", title);
  g_assert_not_reached ();
}

static const char *
csv_row (char **rows, const char *prefix)
{
  for (guint i = 0; rows[i] != NULL; i++) {
    if (g_str_has_prefix (rows[i], prefix))
      return rows[i];
  }
  g_test_message ("no CSV row starting with %s", prefix);
  g_assert_not_reached ();
}

static void
test_report_csv_contains_figures (void)
{
  g_autoptr (CimsAnnualReport) report = report_compute ();
  g_autofree char *csv = cims_annual_report_render (report, CIMS_REPORT_FORMAT_CSV);
  g_auto (GStrv) cameras = csv_table (csv, "Cameras in service");
  g_auto (GStrv) archive = csv_table (csv, "Archive-footage requests approved");
  g_auto (GStrv) real_time = csv_table (csv, "Real-time access granted");
  g_auto (GStrv) viewing = csv_table (csv, "Viewing sessions");
  g_auto (GStrv) monthly = csv_table (csv, "Monthly viewing sessions");
  g_autoptr (GString) boston_monthly = g_string_new ("boston,Boston");
  g_autofree char *boston_viewing = NULL;
  g_autofree char *boston_real_time = NULL;

  g_assert_cmpstr (cameras[0], ==, "jurisdiction,name,cameras_in_service");
  g_assert_cmpstr (csv_row (cameras, "boston,"), ==, "boston,Boston,2");
  g_assert_cmpstr (csv_row (cameras, "chelsea,"), ==, "chelsea,Chelsea,1");
  /* RFC 4180: a field with a comma or quote is quoted, quotes doubled. */
  g_assert_cmpstr (csv_row (cameras, "everett,"), ==, "everett,\"Everett, \"\"City\"\"\",1");
  g_assert_cmpstr (csv_row (cameras, "total,"), ==, "total,Total,4");
  g_assert_cmpstr (csv_row (archive, "boston,"), ==, "boston,Boston,1");

  boston_real_time = g_strdup_printf ("boston,Boston,%u,%u,%u", expect_count ("grant-created", "boston", NULL),
                                      expect_count ("incident-started", "boston", NULL),
                                      expect_count ("grant-created", "boston", NULL)
                                      + expect_count ("incident-started", "boston", NULL));
  g_assert_cmpstr (csv_row (real_time, "boston,"), ==, boston_real_time);

  boston_viewing = g_strdup_printf ("boston,Boston,%u,%.2f,%" G_GINT64_FORMAT,
                                    expect_count ("session-stop", NULL, "boston"),
                                    expect_viewing_ms ("boston") / 3600000.0, expect_viewing_ms ("boston"));
  g_assert_cmpstr (csv_row (viewing, "boston,"), ==, boston_viewing);

  for (int month = 0; month < 12; month++)
    g_string_append_printf (boston_monthly, ",%u", expect_monthly ("boston", month));
  g_string_append_printf (boston_monthly, ",%u", expect_count ("session-stop", NULL, "boston"));
  g_assert_cmpstr (csv_row (monthly, "boston,"), ==, boston_monthly->str);
  g_assert_cmpstr (monthly[0], ==, "jurisdiction,name,2025-01,2025-02,2025-03,2025-04,2025-05,2025-06,"
                                   "2025-07,2025-08,2025-09,2025-10,2025-11,2025-12,total");
  g_assert_nonnull (strstr (csv, "\r\n"));
}

static guint
count_substrings (const char *text, const char *needle)
{
  guint n = 0;

  for (const char *at = strstr (text, needle); at != NULL; at = strstr (at + 1, needle))
    n++;
  return n;
}

static void
test_report_html_is_self_contained (void)
{
  g_autoptr (CimsAnnualReport) report = report_compute ();
  g_autofree char *html = cims_annual_report_render (report, CIMS_REPORT_FORMAT_HTML);
  guint n_viewers = 0;

  g_assert_true (g_str_has_prefix (html, "<!DOCTYPE html>"));
  g_assert_null (strstr (html, "<script"));
  g_assert_null (strstr (html, "<link"));
  g_assert_null (strstr (html, "src="));
  g_assert_null (strstr (html, "href="));
  g_assert_null (strstr (html, "url("));
  g_assert_nonnull (strstr (html, "@media print"));
  g_assert_cmpuint (count_substrings (html, "<svg"), ==, 1);
  g_assert_nonnull (strstr (html, "Viewing sessions</text>"));
  g_assert_nonnull (strstr (html, "Month of 2025 (UTC)</text>"));
  g_assert_nonnull (strstr (html, "Everett, &quot;City&quot;"));

  /* One series, with its own legend entry, per party that viewed. */
  for (gsize i = 0; i < G_N_ELEMENTS (report_parties); i++) {
    g_autofree char *series = g_strdup_printf ("<g class=\"series\" data-jurisdiction=\"%s\">", report_parties[i]);
    guint n_sessions = expect_count ("session-stop", NULL, report_parties[i]);

    g_test_message ("series of %s", report_parties[i]);
    g_assert_cmpuint (count_substrings (html, series), ==, n_sessions > 0 ? 1 : 0);
    n_viewers += n_sessions > 0;
  }
  g_assert_cmpuint (count_substrings (html, "<g class=\"series\""), ==, n_viewers);
  g_assert_cmpuint (count_substrings (html, "<polyline"), ==, n_viewers);
}

static void
test_report_html_contains_figures (void)
{
  g_autoptr (CimsAnnualReport) report = report_compute ();
  g_autofree char *html = cims_annual_report_render (report, CIMS_REPORT_FORMAT_HTML);
  g_autofree char *viewing = g_strdup_printf ("<tr><td>Boston</td><td class=\"n\">%u</td><td class=\"n\">%.2f</td></tr>",
                                              expect_count ("session-stop", NULL, "boston"),
                                              expect_viewing_ms ("boston") / 3600000.0);
  g_autofree char *archive = g_strdup_printf ("<tr><td>Boston</td><td class=\"n\">%u</td></tr>",
                                              expect_count ("archive-approved", "boston", NULL));

  g_assert_nonnull (strstr (html, "<tr><td>Boston</td><td class=\"n\">2</td></tr>"));
  g_assert_nonnull (strstr (html, "<tr><td>Chelsea</td><td class=\"n\">1</td></tr>"));
  g_assert_nonnull (strstr (html, viewing));
  g_assert_nonnull (strstr (html, archive));
}

static void
test_report_json_matches_report (void)
{
  g_autoptr (CimsAnnualReport) report = report_compute ();
  g_autofree char *json = cims_annual_report_render (report, CIMS_REPORT_FORMAT_JSON);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) root = json_from_string (json, &error);
  JsonObject *object;
  JsonArray *parties;
  JsonObject *boston;
  g_autofree char *boston_hours = NULL;

  g_assert_no_error (error);
  object = json_node_get_object (root);
  g_assert_cmpint (json_object_get_int_member (object, "year"), ==, YEAR);
  g_assert_cmpstr (json_object_get_string_member (object, "from"), ==, "2025-01-01T00:00:00.000Z");
  parties = json_object_get_array_member (object, "jurisdictions");
  g_assert_cmpuint (json_array_get_length (parties), ==, report->parties->len);

  boston = json_array_get_object_element (parties, 0);
  g_assert_cmpstr (json_object_get_string_member (boston, "id"), ==, "boston");
  g_assert_cmpint (json_object_get_int_member (boston, "cameras_in_service"), ==, 2);
  g_assert_cmpint (json_object_get_int_member (boston, "viewing_sessions"), ==,
                   expect_count ("session-stop", NULL, "boston"));
  g_assert_cmpint (json_object_get_int_member (boston, "viewing_ms"), ==, expect_viewing_ms ("boston"));
  g_assert_cmpfloat_with_epsilon (json_object_get_double_member (boston, "viewing_hours"),
                                  expect_viewing_ms ("boston") / 3600000.0, 0.005);
  /* Hours are written with two decimals, not json-glib's 17 digits, and the
   * rewrite of numbers leaves strings with escaped quotes alone. */
  boston_hours = g_strdup_printf ("\"viewing_hours\" : %.2f,", expect_viewing_ms ("boston") / 3600000.0);
  g_assert_nonnull (strstr (json, boston_hours));
  g_assert_nonnull (strstr (json, "\"Everett, \\\"City\\\"\""));
  g_assert_cmpint (json_object_get_int_member (boston, "real_time_access_granted"), ==,
                   expect_count ("grant-created", "boston", NULL) + expect_count ("incident-started", "boston", NULL));
  g_assert_cmpint (json_object_get_int_member (json_object_get_object_member (boston, "users_by_permission"), "view"),
                   ==, expect_users_with ("boston", "permissions", "view"));
  g_assert_cmpstr (json_object_get_string_member (json_object_get_object_member (object, "total"), "kind"), ==,
                   "total");
}

static void
test_report_without_config (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsAnnualReport) report = cims_annual_report_compute (store, NULL, YEAR, NULL, &error);
  g_autofree char *json = NULL;

  g_assert_no_error (error);
  g_assert_false (report->has_camera_counts);
  g_assert_cmpuint (report_find (report, "boston")->n_viewing_sessions, ==,
                    expect_count ("session-stop", NULL, "boston"));
  json = cims_annual_report_render (report, CIMS_REPORT_FORMAT_JSON);
  g_assert_nonnull (strstr (json, "\"cameras_in_service\" : null"));
}

static void
test_report_rejects_bad_year (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsAnnualReport) report = cims_annual_report_compute (store, config, 1999, NULL, &error);

  g_assert_null (report);
  g_assert_error (error, CIMS_STORE_ERROR, CIMS_STORE_ERROR_INVALID);
}

static void
test_report_stops_when_cancelled (void)
{
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsAnnualReport) report = NULL;

  g_cancellable_cancel (cancellable);
  report = cims_annual_report_compute (store, config, YEAR, cancellable, &error);

  g_assert_null (report);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

static void
test_report_empty_year (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsAnnualReport) report = cims_annual_report_compute (store, config, 2030, NULL, &error);
  g_autofree char *html = NULL;

  g_assert_no_error (error);
  g_assert_cmpuint (report->n_audit_records, ==, 0);
  g_assert_cmpuint (report_find (report, "boston")->n_users, ==, 0);
  html = cims_annual_report_render (report, CIMS_REPORT_FORMAT_HTML);
  g_assert_nonnull (strstr (html, "No viewing sessions in 2030"));
}

/* The report of 9999, the last year, ends at 10000-01-01 and leaves out a
 * record of that instant. */
static void
test_report_last_year_ends (void)
{
  const gint64 times_ms[] = {
    G_GINT64_CONSTANT (253370764800000),    /* 9999-01-01T00:00:00Z */
    G_GINT64_CONSTANT (253402300799999),    /* 9999-12-31T23:59:59.999Z */
    G_GINT64_CONSTANT (253402300800000),    /* 10000-01-01T00:00:00Z */
  };
  g_autofree char *path = g_build_filename (test_dir, "last-year.db", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsStore) year_store = cims_store_sqlite_open (path, &error);
  g_autoptr (CimsAnnualReport) report = NULL;

  g_assert_no_error (error);
  for (gsize i = 0; i < G_N_ELEMENTS (times_ms); i++) {
    g_autoptr (CimsAuditRecord) record = g_new0 (CimsAuditRecord, 1);

    record->time_ms = times_ms[i];
    record->event = g_strdup ("session-stop");
    record->person_id = g_strdup ("b1");
    record->person_jurisdiction = g_strdup ("boston");
    record->reason = g_strdup ("test");
    g_assert_true (cims_store_audit_append (year_store, record, &error));
    g_assert_no_error (error);
  }

  report = cims_annual_report_compute (year_store, config, 9999, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (report->from_ms, ==, times_ms[0]);
  g_assert_cmpint (report->to_ms, ==, times_ms[2]);
  g_assert_cmpuint (report->n_audit_records, ==, 2);

  for (CimsReportFormat format = CIMS_REPORT_FORMAT_JSON; format <= CIMS_REPORT_FORMAT_HTML; format++) {
    g_autofree char *text = cims_annual_report_render (report, format);

    g_assert_nonnull (text);
  }
}

static void
test_report_audit_time_parse (void)
{
  gint64 time_ms = 0;
  g_autofree char *text = NULL;

  g_assert_true (cims_audit_time_parse_ms ("2025-03-01", &time_ms));
  g_assert_cmpint (time_ms, ==, G_GINT64_CONSTANT (1740787200000));
  g_assert_true (cims_audit_time_parse_ms ("2025-03-01T01:00:00.250+01:00", &time_ms));
  g_assert_cmpint (time_ms, ==, G_GINT64_CONSTANT (1740787200250));
  g_assert_false (cims_audit_time_parse_ms ("2025-3-01", &time_ms));
  g_assert_false (cims_audit_time_parse_ms ("2025-02-30", &time_ms));
  g_assert_false (cims_audit_time_parse_ms ("2025-03-01T00:00:00", &time_ms));
  text = cims_audit_time_format_ms (G_GINT64_CONSTANT (1740787200250));
  g_assert_cmpstr (text, ==, "2025-03-01T00:00:00.250Z");
}

/* ---- the hash chain --------------------------------------------------------------- */

/* Makes a store at @name in the test folder with the known log, runs @sql on
 * the file with the append-only triggers dropped, and opens it again.
 * (transfer full) */
static CimsStore *
store_new_tampered (const char *name, const char *sql)
{
  g_autofree char *path = g_build_filename (test_dir, name, NULL);
  g_autofree char *attack = g_strconcat ("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; ",
                                         sql, NULL);
  g_autoptr (GError) error = NULL;
  CimsStore *tampered = cims_store_sqlite_open (path, &error);
  sqlite3 *db = NULL;
  char *message = NULL;

  g_assert_no_error (error);
  store_fill (tampered);
  cims_store_free (tampered);

  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  if (sqlite3_exec (db, attack, NULL, NULL, &message) != SQLITE_OK)
    g_error ("%s failed: %s", attack, message);
  sqlite3_close (db);

  tampered = cims_store_sqlite_open (path, &error);
  g_assert_no_error (error);
  return tampered;
}

static JsonObject *
json_chain_of (const char *json, JsonNode **root)
{
  g_autoptr (GError) error = NULL;

  *root = json_from_string (json, &error);
  g_assert_no_error (error);
  return json_object_get_object_member (json_node_get_object (*root), "audit_chain");
}

/* Checks that every rendered form states @state ("intact" or "altered")
 * and, when altered, @first_bad and the single missing @gap (0: none). */
static void
assert_chain_stated (const CimsAnnualReport *report, const char *state, guint64 first_bad, guint64 gap)
{
  g_autofree char *json = cims_annual_report_render (report, CIMS_REPORT_FORMAT_JSON);
  g_autofree char *csv = cims_annual_report_render (report, CIMS_REPORT_FORMAT_CSV);
  g_autofree char *csv_long = cims_annual_report_render (report, CIMS_REPORT_FORMAT_CSV_LONG);
  g_autofree char *html = cims_annual_report_render (report, CIMS_REPORT_FORMAT_HTML);
  g_autoptr (JsonNode) root = NULL;
  JsonObject *chain = json_chain_of (json, &root);
  g_auto (GStrv) csv_rows = csv_table (csv, "Audit log integrity");
  g_autofree char *csv_expected = NULL;
  g_autofree char *long_state = g_strdup_printf ("audit_chain,,,state,%s\r\n", state);
  g_autofree char *html_state = g_strdup_printf ("id=\"audit-chain\" data-state=\"%s\"", state);
  gboolean is_intact = g_str_equal (state, "intact");
  g_autofree char *first_bad_text = is_intact ? g_strdup ("") : g_strdup_printf ("%" G_GUINT64_FORMAT, first_bad);
  g_autofree char *gap_text = gap == 0 ? g_strdup ("") : g_strdup_printf ("%" G_GUINT64_FORMAT, gap);

  g_test_message ("JSON audit_chain: %s", json_object_get_string_member (chain, "statement"));
  g_assert_cmpstr (json_object_get_string_member (chain, "state"), ==, state);
  if (is_intact)
    g_assert_true (json_object_get_null_member (chain, "first_bad_sequence"));
  else
    g_assert_cmpint (json_object_get_int_member (chain, "first_bad_sequence"), ==, first_bad);
  g_assert_cmpint (json_object_get_int_member (chain, "missing_records"), ==, gap != 0);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (chain, "sequence_gaps")), ==, gap != 0);

  g_assert_cmpstr (csv_rows[0], ==, "state,records_checked,first_bad_sequence,missing_records,missing_sequences,"
                                    "problem,anchor,checkpoint_mismatches,statement");
  if (is_intact)
    g_assert_cmpstr (json_object_get_string_member (chain, "anchor"), ==, report->anchor);
  else
    g_assert_true (json_object_get_null_member (chain, "anchor"));
  csv_expected = g_strdup_printf ("%s,%" G_GUINT64_FORMAT ",%s,%d,%s,", state, report->n_chain_records,
                                  first_bad_text, gap != 0, gap_text);
  g_assert_true (g_str_has_prefix (csv_rows[1], csv_expected));

  g_assert_nonnull (strstr (csv_long, long_state));
  if (!is_intact) {
    g_autofree char *long_first_bad = g_strdup_printf ("audit_chain,,,first_bad_sequence,%" G_GUINT64_FORMAT "\r\n",
                                                       first_bad);
    g_autofree char *html_first_bad = g_strdup_printf ("first breaks at record %" G_GUINT64_FORMAT ",", first_bad);

    g_assert_nonnull (strstr (csv_long, long_first_bad));
    g_assert_nonnull (strstr (html, html_first_bad));
  }

  /* Stated under the title, before the first table of figures. */
  g_assert_nonnull (strstr (html, html_state));
  g_assert_true (strstr (html, html_state) < strstr (html, "<table"));
}

static void
test_report_chain_intact (void)
{
  g_autoptr (CimsAnnualReport) report = report_compute ();
  g_autofree char *anchor_sequence = g_strdup_printf ("%" G_GSIZE_FORMAT ":", G_N_ELEMENTS (test_records));

  g_assert_true (report->is_chain_intact);
  g_assert_true (g_str_has_prefix (report->anchor, anchor_sequence));
  g_assert_cmpuint (strlen (report->anchor), ==, strlen (anchor_sequence) + 64);
  g_assert_cmpuint (report->n_chain_records, ==, G_N_ELEMENTS (test_records));
  g_assert_cmpuint (report->chain_first_bad_sequence, ==, 0);
  g_assert_cmpuint (report->n_sequence_gaps, ==, 0);
  assert_chain_stated (report, "intact", 0, 0);
}

/* A log that a hub found to differ from its recovery checkpoint keeps an
 * intact chain, but the report warns of the audit-log-mismatch record in
 * every form. */
static void
test_report_chain_mismatch_record (void)
{
  g_autofree char *path = g_build_filename (test_dir, "mismatch.db", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsStore) store = cims_store_sqlite_open (path, &error);
  g_autoptr (CimsAuditRecord) record = g_new0 (CimsAuditRecord, 1);
  g_autoptr (CimsAnnualReport) report = NULL;
  g_autofree char *csv = NULL;
  g_autofree char *html = NULL;

  g_assert_no_error (error);
  store_fill (store);
  record->time_ms = G_GINT64_CONSTANT (1767139200000); /* 2025-12-31 */
  record->event = g_strdup ("audit-log-mismatch");
  record->reason = g_strdup ("log-ends-before-checkpoint");
  g_assert_true (cims_store_audit_append (store, record, &error));

  report = cims_annual_report_compute (store, config, YEAR, NULL, &error);
  g_assert_no_error (error);
  csv = cims_annual_report_render (report, CIMS_REPORT_FORMAT_CSV);
  html = cims_annual_report_render (report, CIMS_REPORT_FORMAT_HTML);

  g_assert_true (report->is_chain_intact);
  g_assert_cmpuint (report->n_checkpoint_mismatches, ==, 1);
  g_assert_nonnull (strstr (csv, "WARNING: 1 audit-log-mismatch record (record "));
  g_assert_nonnull (strstr (csv, " (log-ends-before-checkpoint))"));
  g_assert_nonnull (strstr (html, "data-state=\"intact-with-mismatches\" role=\"alert\""));
}

/* Record 13 is Chelsea's incident-started of May. The report without it
 * still comes out, and names the missing record. */
static void
test_report_chain_deleted_record (void)
{
  g_autoptr (CimsStore) tampered = store_new_tampered ("deleted.db", "DELETE FROM audit_log WHERE sequence = 13");
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsAnnualReport) report = cims_annual_report_compute (tampered, config, YEAR, NULL, &error);
  const CimsReportSequenceGap *gap;

  g_assert_no_error (error);
  g_assert_nonnull (report);
  g_assert_false (report->is_chain_intact);
  g_assert_cmpuint (report->chain_first_bad_sequence, ==, 13);
  g_assert_nonnull (strstr (report->chain_problem, "record 13 is missing"));
  g_assert_cmpuint (report->n_chain_records, ==, G_N_ELEMENTS (test_records) - 1);
  g_assert_cmpuint (report->n_sequence_gaps, ==, 1);
  g_assert_cmpuint (report->n_missing_records, ==, 1);
  gap = &g_array_index (report->sequence_gaps, CimsReportSequenceGap, 0);
  g_assert_cmpuint (gap->first_missing, ==, 13);
  g_assert_cmpuint (gap->last_missing, ==, 13);
  g_assert_cmpuint (report_find (report, "chelsea")->n_incidents_started, ==, 0);
  assert_chain_stated (report, "altered", 13, 13);
}

/* A changed record leaves no gap, but its hash no longer matches. */
static void
test_report_chain_changed_record (void)
{
  g_autoptr (CimsStore) tampered = store_new_tampered ("changed.db",
                                                       "UPDATE audit_log SET camera_owner = 'everett' "
                                                       "WHERE sequence = 21");
  g_autoptr (GError) error = NULL;
  g_autoptr (CimsAnnualReport) report = cims_annual_report_compute (tampered, config, YEAR, NULL, &error);

  g_assert_no_error (error);
  g_assert_false (report->is_chain_intact);
  g_assert_cmpuint (report->chain_first_bad_sequence, ==, 21);
  g_assert_nonnull (strstr (report->chain_problem, "record 21 was changed"));
  g_assert_cmpuint (report->n_sequence_gaps, ==, 0);
  assert_chain_stated (report, "altered", 21, 0);
}

/* ---- grant and incident records from the hub ------------------------------------ */

static gint64
time_us_parse (const char *text)
{
  g_autoptr (GDateTime) time = g_date_time_new_from_iso8601 (text, NULL);

  g_assert_nonnull (time);
  return g_date_time_to_unix (time) * G_USEC_PER_SEC + g_date_time_get_microsecond (time);
}

/* A hub with only what its grant and incident paths use: a store, the
 * grant and incident lists, and an empty session table. */
typedef CimsHub TestHub;

static TestHub *
test_hub_new (const char *db_name)
{
  g_autofree char *path = g_build_filename (test_dir, db_name, NULL);
  g_autoptr (GError) error = NULL;
  CimsHub *hub = g_new0 (CimsHub, 1);

  hub->store = cims_store_sqlite_open (path, &error);
  g_assert_no_error (error);
  hub->grants = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_grant_free);
  hub->incidents = g_ptr_array_new_with_free_func ((GDestroyNotify) cims_incident_free);
  hub->sessions = g_hash_table_new (g_str_hash, g_str_equal);
  return hub;
}

static void
test_hub_free (TestHub *hub)
{
  g_assert_true (g_queue_is_empty (&hub->audit_backlog));
  cims_store_free (hub->store);
  g_ptr_array_unref (hub->grants);
  g_ptr_array_unref (hub->incidents);
  g_hash_table_unref (hub->sessions);
  g_free (hub);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestHub, test_hub_free)

static char *grant_authority_roles[] = { "grant-authority", NULL };
static char *commander_roles[] = { "commander", "viewer", NULL };
static char *view_permissions[] = { "view", NULL };

static const CimsAuthIdentity grant_authority = {
  .subject = "ga-bos", .name = "Pat Grant", .jurisdiction = "boston",
  .roles = grant_authority_roles, .permissions = view_permissions,
};
static const CimsAuthIdentity commander = {
  .subject = "cmd-bos", .name = "Sam Command", .jurisdiction = "boston",
  .roles = commander_roles, .permissions = view_permissions,
};

/* Returns the parsed details of the only @event record in @hub's log. */
static JsonNode *
details_of_only (CimsHub *hub, const char *event, CimsAuditRecord **record_out)
{
  CimsAuditFilter filter = { .event = event };
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) records = cims_store_audit_query (hub->store, &filter, &error);
  CimsAuditRecord *record;
  JsonNode *root;

  g_assert_no_error (error);
  g_assert_cmpuint (records->len, ==, 1);
  record = g_ptr_array_index (records, 0);
  g_assert_nonnull (record->details);
  root = json_from_string (record->details, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (root));
  if (record_out != NULL)
    *record_out = cims_audit_record_copy (record);
  return root;
}

static void
assert_strv_member (JsonObject *object, const char *member, const char *const *expected)
{
  JsonArray *array = json_object_get_array_member (object, member);

  g_test_message ("member %s", member);
  g_assert_nonnull (array);
  g_assert_cmpuint (json_array_get_length (array), ==, g_strv_length ((char **) expected));
  for (guint i = 0; expected[i] != NULL; i++)
    g_assert_cmpstr (json_array_get_string_element (array, i), ==, expected[i]);
}

static void
test_report_audit_details_grant (void)
{
  g_autoptr (TestHub) hub = test_hub_new ("grant-records.db");
  char *cameras[] = { "bos-0001", "bos-0002", NULL };
  CimsGrant grant = {
    .owner = "boston", .grantee_kind = CIMS_GRANTEE_AGENCY, .grantee = "state-police",
    .cameras = cameras, .purpose = "Parade route", .incident_number = "BPD-2025-000123",
    .authorized_by = "ga-bos", .authorized_by_name = "Pat Grant",
    .starts_at_us = time_us_parse ("2025-03-02T08:00:00Z"),
    .ends_at_us = time_us_parse ("2025-03-02T20:30:00.250Z"),
    .authorized_at_us = time_us_parse ("2025-03-01T16:00:00Z"),
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) created = NULL;
  g_autoptr (JsonNode) revoked = NULL;
  g_autoptr (CimsAuditRecord) record = NULL;
  g_autofree char *grant_id = NULL;
  JsonObject *details;
  guint n_ended = 0;

  g_assert_true (cims_hub_access_grant_create (hub, &grant_authority, &grant, &error));
  g_assert_no_error (error);
  grant_id = g_steal_pointer (&grant.id);

  created = details_of_only (hub, "grant-created", &record);
  details = json_node_get_object (created);
  g_assert_cmpstr (record->grant_id, ==, grant_id);
  g_assert_cmpstr (record->camera_owner, ==, "boston");
  g_assert_cmpstr (record->person_id, ==, "ga-bos");
  g_assert_cmpstr (json_object_get_string_member (details, "id"), ==, grant_id);
  g_assert_cmpstr (json_object_get_string_member (details, "grantee_kind"), ==, "agency");
  g_assert_cmpstr (json_object_get_string_member (details, "grantee"), ==, "state-police");
  assert_strv_member (details, "cameras", (const char *const *) cameras);
  g_assert_cmpstr (json_object_get_string_member (details, "starts_at"), ==, "2025-03-02T08:00:00.000Z");
  g_assert_cmpstr (json_object_get_string_member (details, "ends_at"), ==, "2025-03-02T20:30:00.250Z");
  g_assert_cmpstr (json_object_get_string_member (details, "incident_number"), ==, "BPD-2025-000123");
  g_assert_cmpstr (json_object_get_string_member (details, "purpose"), ==, "Parade route");
  g_assert_true (json_object_get_null_member (details, "revoked_at"));
  assert_strv_member (details, "actor_roles", (const char *const *) grant_authority_roles);

  g_assert_true (cims_hub_access_grant_revoke (hub, &grant_authority, grant_id, &n_ended, &error));
  g_assert_no_error (error);
  revoked = details_of_only (hub, "grant-revoked", NULL);
  details = json_node_get_object (revoked);
  g_assert_cmpstr (json_object_get_string_member (details, "id"), ==, grant_id);
  g_assert_cmpstr (json_object_get_string_member (details, "revoked_by"), ==, "ga-bos");
  g_assert_true (g_str_has_suffix (json_object_get_string_member (details, "revoked_at"), "Z"));
}

/* An ongoing grant over all of the owner's cameras writes null for both. */
static void
test_report_audit_details_ongoing_grant (void)
{
  g_autoptr (TestHub) hub = test_hub_new ("grant-ongoing.db");
  CimsGrant grant = {
    .owner = "boston", .grantee_kind = CIMS_GRANTEE_JURISDICTION, .grantee = "chelsea",
    .purpose = "Mutual aid", .authorized_by = "ga-bos",
    .starts_at_us = time_us_parse ("2025-03-02T08:00:00Z"), .ends_at_us = G_MAXINT64,
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) created = NULL;
  JsonObject *details;

  g_assert_true (cims_hub_access_grant_create (hub, &grant_authority, &grant, &error));
  g_assert_no_error (error);
  g_free (grant.id);

  created = details_of_only (hub, "grant-created", NULL);
  details = json_node_get_object (created);
  g_assert_cmpstr (json_object_get_string_member (details, "grantee"), ==, "chelsea");
  g_assert_true (json_object_get_null_member (details, "cameras"));
  g_assert_true (json_object_get_null_member (details, "ends_at"));
  g_assert_true (json_object_get_null_member (details, "incident_number"));
}

static void
test_report_audit_details_incident (void)
{
  g_autoptr (TestHub) hub = test_hub_new ("incident-records.db");
  char *partners[] = { "chelsea", "state-police", NULL };
  CimsIncident incident = {
    .owner = "boston", .incident_number = "BOS-MI-2025-7", .partners = partners,
    .description = "Marathon", .declared_by = "cmd-bos", .declared_by_name = "Sam Command",
    .starts_at_us = time_us_parse ("2025-04-21T06:00:00Z"),
    .ends_at_us = time_us_parse ("2025-04-21T22:00:00Z"),
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) started = NULL;
  g_autoptr (JsonNode) ended = NULL;
  g_autofree char *incident_id = NULL;
  JsonObject *details;
  guint n_ended = 0;

  g_assert_true (cims_hub_access_incident_start (hub, &commander, &incident, &error));
  g_assert_no_error (error);
  incident_id = g_steal_pointer (&incident.id);

  started = details_of_only (hub, "incident-started", NULL);
  details = json_node_get_object (started);
  g_assert_cmpstr (json_object_get_string_member (details, "id"), ==, incident_id);
  g_assert_cmpstr (json_object_get_string_member (details, "incident_number"), ==, "BOS-MI-2025-7");
  g_assert_true (json_object_get_null_member (details, "cameras"));
  assert_strv_member (details, "partners", (const char *const *) partners);
  g_assert_cmpstr (json_object_get_string_member (details, "ends_at"), ==, "2025-04-21T22:00:00.000Z");
  g_assert_cmpstr (json_object_get_string_member (details, "description"), ==, "Marathon");
  assert_strv_member (details, "actor_roles", (const char *const *) commander_roles);

  g_assert_true (cims_hub_access_incident_end (hub, &commander, incident_id, &n_ended, &error));
  g_assert_no_error (error);
  ended = details_of_only (hub, "incident-ended", NULL);
  details = json_node_get_object (ended);
  g_assert_cmpstr (json_object_get_string_member (details, "id"), ==, incident_id);
  g_assert_cmpstr (json_object_get_string_member (details, "ended_by"), ==, "cmd-bos");
  g_assert_true (g_str_has_suffix (json_object_get_string_member (details, "ended_at"), "Z"));
}

/* A grant authority who never watched, and a commander whose later
 * session's token lists only viewer, are counted in their roles from the
 * grant and incident records the hub wrote. */
static void
test_report_counts_acting_roles (void)
{
  g_autoptr (TestHub) hub = test_hub_new ("acting-roles.db");
  gint64 now_us = g_get_real_time ();
  CimsGrant grant = {
    .owner = "boston", .grantee_kind = CIMS_GRANTEE_JURISDICTION, .grantee = "chelsea",
    .purpose = "Parade", .authorized_by = "ga-bos",
    .starts_at_us = now_us, .ends_at_us = now_us + (gint64) G_USEC_PER_SEC * 3600,
  };
  CimsIncident incident = {
    .owner = "boston", .incident_number = "BOS-MI-1", .description = "Storm", .declared_by = "cmd-bos",
    .starts_at_us = now_us, .ends_at_us = now_us + (gint64) G_USEC_PER_SEC * 3600,
  };
  g_autoptr (CimsAuditRecord) viewing = g_new0 (CimsAuditRecord, 1);
  g_autoptr (CimsAuditRecord) created = NULL;
  g_autoptr (JsonNode) created_details = NULL;
  g_autoptr (CimsAnnualReport) report = NULL;
  g_autoptr (GDateTime) record_time = NULL;
  g_autoptr (GError) error = NULL;
  const CimsReportParty *boston;

  g_assert_true (cims_hub_access_grant_create (hub, &grant_authority, &grant, &error));
  g_assert_no_error (error);
  g_assert_true (cims_hub_access_incident_start (hub, &commander, &incident, &error));
  g_assert_no_error (error);
  g_free (grant.id);
  g_free (incident.id);

  created_details = details_of_only (hub, "grant-created", &created);
  viewing->time_ms = created->time_ms + 1;
  viewing->event = g_strdup ("session-start");
  viewing->person_id = g_strdup ("cmd-bos");
  viewing->person_jurisdiction = g_strdup ("boston");
  viewing->reason = g_strdup ("own-camera");
  viewing->details = g_strdup ("{\"permissions\":[\"view\"],\"roles\":[\"viewer\"]}");
  g_assert_true (cims_store_audit_append (hub->store, viewing, &error));
  g_assert_no_error (error);

  record_time = g_date_time_new_from_unix_utc (created->time_ms / 1000);
  report = cims_annual_report_compute (hub->store, config, g_date_time_get_year (record_time), NULL, &error);
  g_assert_no_error (error);
  boston = report_find (report, "boston");
  g_assert_cmpuint (boston->n_grants_created, ==, 1);
  g_assert_cmpuint (boston->n_incidents_started, ==, 1);
  g_assert_cmpuint (boston->n_users, ==, 2);
  g_assert_cmpuint (boston->n_users_rights_unrecorded, ==, 0);
  g_assert_cmpuint (boston->users_by_role[names_index (report->role_names, "grant-authority")], ==, 1);
  g_assert_cmpuint (boston->users_by_role[names_index (report->role_names, "commander")], ==, 1);
  g_assert_cmpuint (boston->users_by_role[names_index (report->role_names, "viewer")], ==, 1);
  g_assert_cmpuint (boston->users_by_permission[names_index (report->permission_names, "view")], ==, 2);
  g_assert_true (report->is_chain_intact);
}

/* Removes the test folder and every database and configuration file the
 * tests made in it. */
static void
test_dir_remove (void)
{
  g_autoptr (GDir) dir = g_dir_open (test_dir, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
    g_autofree char *path = g_build_filename (test_dir, name, NULL);

    g_unlink (path);
  }
  g_rmdir (test_dir);
  g_clear_pointer (&test_dir, g_free);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *config_path = NULL;
  g_autofree char *db_path = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);

  test_dir = g_dir_make_tmp ("cims-report-XXXXXX", &error);
  g_assert_no_error (error);
  config_path = g_build_filename (test_dir, "hub.conf", NULL);
  g_file_set_contents (config_path, report_config, -1, &error);
  g_assert_no_error (error);
  config = cims_config_load (config_path, &error);
  g_assert_no_error (error);
  db_path = g_build_filename (test_dir, "cimshub.db", NULL);
  store = cims_store_sqlite_open (db_path, &error);
  g_assert_no_error (error);
  store_fill (store);

  g_test_add_func ("/report/annual/counts-cameras-in-service", test_report_counts_cameras_in_service);
  g_test_add_func ("/report/annual/counts-users", test_report_counts_users);
  g_test_add_func ("/report/annual/counts-permission-levels", test_report_counts_permission_levels);
  g_test_add_func ("/report/annual/counts-owner-events", test_report_counts_owner_events);
  g_test_add_func ("/report/annual/counts-viewing", test_report_counts_viewing);
  g_test_add_func ("/report/annual/reconciles-with-log", test_report_reconciles_with_log);
  g_test_add_func ("/report/annual/csv-contains-figures", test_report_csv_contains_figures);
  g_test_add_func ("/report/annual/html-is-self-contained", test_report_html_is_self_contained);
  g_test_add_func ("/report/annual/html-contains-figures", test_report_html_contains_figures);
  g_test_add_func ("/report/annual/json-matches-report", test_report_json_matches_report);
  g_test_add_func ("/report/annual/without-config", test_report_without_config);
  g_test_add_func ("/report/annual/rejects-bad-year", test_report_rejects_bad_year);
  g_test_add_func ("/report/annual/empty-year", test_report_empty_year);
  g_test_add_func ("/report/annual/last-year-ends", test_report_last_year_ends);
  g_test_add_func ("/report/annual/stops-when-cancelled", test_report_stops_when_cancelled);
  g_test_add_func ("/report/audit-time/parse", test_report_audit_time_parse);
  g_test_add_func ("/report/annual/chain-intact", test_report_chain_intact);
  g_test_add_func ("/report/annual/chain-mismatch-record", test_report_chain_mismatch_record);
  g_test_add_func ("/report/annual/chain-deleted-record", test_report_chain_deleted_record);
  g_test_add_func ("/report/annual/chain-changed-record", test_report_chain_changed_record);
  g_test_add_func ("/report/annual/counts-acting-roles", test_report_counts_acting_roles);
  g_test_add_func ("/report/audit-details/grant", test_report_audit_details_grant);
  g_test_add_func ("/report/audit-details/ongoing-grant", test_report_audit_details_ongoing_grant);
  g_test_add_func ("/report/audit-details/incident", test_report_audit_details_incident);
  status = g_test_run ();

  cims_store_free (store);
  cims_config_unref (config);
  test_dir_remove ();
  return status;
}
