-- +goose Up
-- Full-text search (_text: the narrative, _content: every text value of
-- the resource), written only by servers started with --full-text. The
-- FTS5 table indexes idx_text's content (external content, kept in step by
-- the triggers) with the Porter stemmer, like PostgreSQL's English
-- configuration.
CREATE TABLE idx_text (
    tenant  text NOT NULL,
    type    text NOT NULL,
    id      text NOT NULL,
    param   text NOT NULL,
    content text NOT NULL
);
CREATE INDEX idx_text_res ON idx_text (tenant, type, id, param);
CREATE VIRTUAL TABLE idx_text_fts USING fts5(content, content='idx_text', content_rowid='rowid', tokenize='porter unicode61 remove_diacritics 2');
-- +goose StatementBegin
CREATE TRIGGER idx_text_ai AFTER INSERT ON idx_text BEGIN
    INSERT INTO idx_text_fts (rowid, content) VALUES (new.rowid, new.content);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER idx_text_ad AFTER DELETE ON idx_text BEGIN
    INSERT INTO idx_text_fts (idx_text_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER idx_text_ad;
DROP TRIGGER idx_text_ai;
DROP TABLE idx_text_fts;
DROP TABLE idx_text;
