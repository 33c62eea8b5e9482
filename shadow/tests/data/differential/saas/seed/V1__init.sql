INSERT INTO accounts (name, plan) SELECT 'Account ' || g, CASE WHEN g % 4 = 0 THEN 'pro' ELSE 'free' END FROM generate_series(1, 1500) g;
INSERT INTO members (account_id, user_email, role) SELECT id, 'owner@' || id, 'owner' FROM accounts;
INSERT INTO events (account_id, kind, created_at)
    SELECT a.id, 'login', timestamptz '2024-03-01' + (g || ' days')::interval
      FROM (SELECT id FROM accounts LIMIT 100) a, generate_series(1, 20) g;
INSERT INTO events (account_id, kind, created_at)
    SELECT id, 'import', timestamptz '2027-01-01' FROM accounts;
