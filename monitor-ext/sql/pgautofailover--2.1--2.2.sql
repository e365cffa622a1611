-- The SQL API did not change between 2.1 and 2.2: only the version number.
\echo Use "ALTER EXTENSION pgautofailover UPDATE TO '2.2'" to load this file. \quit
