-- migrate:up
CREATE TYPE post_status AS ENUM ('draft', 'published');

CREATE TABLE authors (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    handle text NOT NULL,
    display_name text
);
CREATE UNIQUE INDEX authors_handle_key ON authors (handle);

CREATE TABLE posts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    author_id bigint NOT NULL REFERENCES authors (id),
    title text,
    body text NOT NULL DEFAULT '',
    status post_status NOT NULL DEFAULT 'draft',
    legacy_id int,
    published_at timestamptz
);

CREATE TABLE comments (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    post_id bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- migrate:down
DROP TABLE comments;
DROP TABLE posts;
DROP TABLE authors;
DROP TYPE post_status;
