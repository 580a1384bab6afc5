-- +goose Up
-- Full-text search (_text: the narrative, _content: every text value of
-- the resource), written only by servers started with --full-text. One row
-- per resource and parameter; the GIN index is on the English text search
-- vector of the content, the expression the search compiler uses.
CREATE TABLE idx_text (
    tenant  text NOT NULL,
    type    text NOT NULL,
    id      text NOT NULL,
    param   text NOT NULL,                 -- _text or _content
    content text NOT NULL
);
CREATE INDEX idx_text_res ON idx_text (tenant, type, id, param);
CREATE INDEX idx_text_fts ON idx_text USING gin (to_tsvector('english', content));

-- +goose Down
DROP TABLE idx_text;
