-- PostgreSQL: controller indexes. Nothing to do: no PostgreSQL database predates the schema
-- SQLite has after this migration, which the other files here create directly.
SELECT 1;
