// Package pgxsuite holds driver tests that run pgx v5 against PostgreSQL directly and through
// muxql, so that any difference between the two shows as a failing subtest named after its
// target ("direct" or "muxql").
//
// The addresses come from MUXQL_TEST_PG_DIRECT_URL and MUXQL_TEST_PG_MUXQL_URL (postgres://
// URLs); see ../README.md. All the code lives in the _test.go files.
package pgxsuite
