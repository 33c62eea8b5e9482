CREATE VIEW order_summary AS
    SELECT o.id, u.email, o.total, o.status
      FROM orders o
      JOIN users u ON u.id = o.user_id;
COMMENT ON VIEW order_summary IS 'one row per order, for the back office';
