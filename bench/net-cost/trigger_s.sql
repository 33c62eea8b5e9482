DROP TRIGGER IF EXISTS "~duet_net" ON t; DROP TRIGGER IF EXISTS "~duet_net_statement" ON t;
CREATE OR REPLACE FUNCTION duet.nets_mirror(duet_op text, duet_old anyelement, duet_new anyelement)
RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  IF duet_op = 'DELETE' OR (duet_op = 'UPDATE' AND ROW(duet_old.id) IS DISTINCT FROM ROW(duet_new.id)) THEN
    DELETE FROM public.t__duet WHERE id = duet_old.id;
  END IF;
  IF duet_op <> 'DELETE' THEN
    IF EXISTS (SELECT 1 FROM public.t AS c WHERE c.id = duet_new.id) THEN
      INSERT INTO public.t__duet AS s (id, v, pad, __duet_deleted) SELECT c.id::bigint, c.v, c.pad, false FROM public.t AS c WHERE c.id = duet_new.id
        ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, pad = EXCLUDED.pad, __duet_deleted = false;
    ELSE
      DELETE FROM public.t__duet WHERE id = duet_new.id;
    END IF;
  END IF;
END $f$;
CREATE OR REPLACE FUNCTION duet.nets() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF TG_LEVEL = 'STATEMENT' THEN
    PERFORM pg_catalog.set_config('duet.dual_written', '', true);
    RETURN NULL;
  END IF;
  IF pg_catalog.pg_trigger_depth() = 1 AND pg_catalog.current_setting('duet.dual_written', true) = 'on' THEN
    RETURN NULL;
  END IF;
  PERFORM duet.nets_mirror(TG_OP, OLD, NEW);
  RETURN NULL;
END $f$;
CREATE TRIGGER "~duet_net" AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION duet.nets();
CREATE TRIGGER "~duet_net_statement" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON t FOR EACH STATEMENT EXECUTE FUNCTION duet.nets();
