DROP TRIGGER IF EXISTS "~duet_net" ON t; DROP TRIGGER IF EXISTS "~duet_net_statement" ON t;
CREATE OR REPLACE FUNCTION duet.netp() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.id IS DISTINCT FROM NEW.id) THEN
    DELETE FROM t__duet WHERE id = OLD.id;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO t__duet AS s (id, v, pad, __duet_deleted) SELECT id::bigint, v, pad, false FROM t WHERE id = NEW.id
      ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, pad = EXCLUDED.pad, __duet_deleted = false;
  END IF;
  RETURN NULL;
END $f$;
CREATE TRIGGER "~duet_net" AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION duet.netp();
