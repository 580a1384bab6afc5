-- +goose Up
-- The PostgreSQL migration of the same number makes these indexes cover
-- the common search probes; SQLite has no INCLUDE, so the covered columns
-- end the key.
DROP INDEX idx_reference_target;
CREATE INDEX idx_reference_target ON idx_reference (tenant, target_id, param, type, url, id, target_type);
DROP INDEX idx_date_res;
CREATE INDEX idx_date_res ON idx_date (tenant, type, id, param, low, high);
DROP INDEX idx_token_res;
CREATE INDEX idx_token_res ON idx_token (tenant, type, id, param, system, code);

-- +goose Down
DROP INDEX idx_token_res;
CREATE INDEX idx_token_res ON idx_token (tenant, type, id, param);
DROP INDEX idx_date_res;
CREATE INDEX idx_date_res ON idx_date (tenant, type, id, param);
DROP INDEX idx_reference_target;
CREATE INDEX idx_reference_target ON idx_reference (tenant, target_id, target_type, param, type, id);
