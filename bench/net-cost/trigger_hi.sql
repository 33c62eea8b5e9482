DROP TRIGGER IF EXISTS "~duet_net" ON t; DROP TRIGGER IF EXISTS "~duet_net_statement" ON t;
CREATE OR REPLACE FUNCTION duet.nethi() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF TG_LEVEL = 'STATEMENT' THEN
    PERFORM pg_catalog.set_config('duet.dual_written', '', true);
    RETURN NULL;
  END IF;
  IF pg_catalog.pg_trigger_depth() = 1 AND pg_catalog.current_setting('duet.dual_written', true) = 'on' THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.id IS DISTINCT FROM NEW.id) THEN
    DELETE FROM public.t__duet WHERE id = OLD.id;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO public.t__duet AS s (id, v, pad, __duet_deleted) SELECT id::bigint, v, pad, false FROM public.t WHERE id = NEW.id
      ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, pad = EXCLUDED.pad, __duet_deleted = false;
  END IF;
  RETURN NULL;
END $f$;
CREATE TRIGGER "~duet_net" AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION duet.nethi();
CREATE TRIGGER "~duet_net_statement" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON t FOR EACH STATEMENT EXECUTE FUNCTION duet.nethi();
