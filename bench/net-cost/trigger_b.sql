DROP TRIGGER IF EXISTS "~duet_net" ON t; DROP TRIGGER IF EXISTS "~duet_net_statement" ON t;
CREATE OR REPLACE FUNCTION duet.net() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF TG_LEVEL = 'STATEMENT' THEN
    PERFORM pg_catalog.set_config('duet.dual_written', '', true);
    RETURN NULL;
  END IF;
  IF pg_catalog.pg_trigger_depth() = 1 AND pg_catalog.current_setting('duet.dual_written', true) = 'on' THEN
    RETURN NULL;
  END IF;
  RAISE EXCEPTION 'mirror called';
END $f$;
CREATE TRIGGER "~duet_net" AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION duet.net();
CREATE TRIGGER "~duet_net_statement" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON t FOR EACH STATEMENT EXECUTE FUNCTION duet.net();
