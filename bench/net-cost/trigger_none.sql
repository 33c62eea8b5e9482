DROP TRIGGER IF EXISTS "~duet_net" ON t; DROP TRIGGER IF EXISTS "~duet_net_statement" ON t;
