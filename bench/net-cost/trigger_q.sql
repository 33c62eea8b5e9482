DROP TRIGGER IF EXISTS "~duet_net" ON t; DROP TRIGGER IF EXISTS "~duet_net_statement" ON t;
CREATE OR REPLACE FUNCTION duet.netq() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO t__duet AS s (id, v, pad, __duet_deleted) VALUES (NEW.id, NEW.v, NEW.pad, false)
      ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, pad = EXCLUDED.pad, __duet_deleted = false;
  RETURN NULL;
END $f$;
CREATE TRIGGER "~duet_net" AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION duet.netq();
