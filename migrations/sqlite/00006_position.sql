-- +goose Up
-- Location near: the position of a Location (decimal degrees). Searches
-- take a bounding box from the index, then the distance.
CREATE TABLE idx_position (
    tenant TEXT NOT NULL,
    type   TEXT NOT NULL,
    id     TEXT NOT NULL,
    param  TEXT NOT NULL,
    lat    REAL NOT NULL,
    lon    REAL NOT NULL
);
CREATE INDEX idx_position_res ON idx_position (tenant, type, id, param);
CREATE INDEX idx_position_lat ON idx_position (tenant, type, param, lat, lon, id);

-- +goose Down
DROP TABLE idx_position;
