-- The SQL API did not change between 2.0 and 2.1: only the version number.
\echo Use "ALTER EXTENSION pgautofailover UPDATE TO '2.1'" to load this file. \quit
