CREATE TABLE users (
    id bigserial PRIMARY KEY,
    email varchar(120) NOT NULL,
    name varchar(80),
    created_at timestamp NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE products (
    id serial PRIMARY KEY,
    sku varchar(32) NOT NULL,
    title text NOT NULL,
    price numeric(10,2) NOT NULL CHECK (price >= 0)
);

CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    status varchar(20) NOT NULL DEFAULT 'new',
    total numeric(12,2),
    placed_at timestamp
);
CREATE INDEX orders_user_id_idx ON orders (user_id);
