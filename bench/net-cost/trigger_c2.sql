DROP TRIGGER IF EXISTS "~duet_net" ON t; DROP TRIGGER IF EXISTS "~duet_net_statement" ON t;
CREATE OR REPLACE FUNCTION duet.netc() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  RAISE EXCEPTION 'mirror called';
END $f$;
CREATE TRIGGER "~duet_net" AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW
  WHEN (pg_catalog.pg_trigger_depth() > 0 OR pg_catalog.current_setting('duet.dual_written', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION duet.netc();
